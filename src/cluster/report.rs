//! What the cluster reports about itself to the layers above, through
//! [`super::Replicate`]: the cluster part of the status document, the Raft and link
//! sample for the gauges, and whether this node is ready to serve.

use std::time::Duration;

use serde_json::{Value, json};

use super::node::Cluster;
use super::proto::StatusReply;
use crate::observe::metrics::RaftSample;
use crate::observe::status::Sample;

/// Why this node is not ready, as the readiness probe says it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NotReady {
    /// The Raft node stopped.
    #[error("the cluster node has stopped")]
    Stopped,
    /// This node is not in the membership.
    #[error("not a member of the cluster")]
    NotMember,
    /// No leader is known.
    #[error("no Raft leader known")]
    NoLeader,
}

/// The status with the state machine's own applied index (openraft's metrics may
/// trail it).
fn status(cluster: &Cluster) -> StatusReply {
    let mut s = super::status::build(cluster);
    s.applied_index = cluster.replicated().applied_index().map_or(s.applied_index, |i| i as i64);
    s
}

fn index(i: i64) -> Value {
    if i < 0 { Value::Null } else { i.into() }
}

/// The `cluster` part of `GET /api/status`: Raft role, term, leader, log indexes,
/// members and links.
pub fn document(cluster: &Cluster) -> Value {
    let s = status(cluster);
    let members: Vec<Value> = s
        .members
        .iter()
        .map(|m| {
            json!({
                "node": m.node_id,
                "addr": m.addr,
                "role": m.role,
                "up": m.up,
                "incarnation": m.incarnation,
                "matched_index": index(m.matched_index),
                "last_ack_ms": index(m.last_ack_ms),
            })
        })
        .collect();
    let links: Vec<Value> = s
        .links
        .iter()
        .map(|l| {
            json!({
                "node": l.node_id,
                "addr": l.addr,
                "state": l.state,
                "frames_sent": l.frames_sent,
                "frames_dropped": l.frames_dropped,
                "frames_missed": l.frames_missed,
            })
        })
        .collect();
    let leader = (s.leader_id != 0).then(|| json!({ "node": s.leader_id, "addr": s.leader_addr }));
    json!({
        "addr": s.addr,
        "state": s.state,
        "term": s.term,
        "leader": leader,
        "last_log_index": index(s.last_log_index),
        "committed_index": index(s.committed_index),
        "applied_index": index(s.applied_index),
        "snapshot_index": index(s.snapshot_index),
        "purged_index": index(s.purged_index),
        "incarnation": s.incarnation,
        "millis_since_quorum_ack": index(s.millis_since_quorum_ack),
        "members": members,
        "links": links,
    })
}

/// The Raft view and link states of this node, for the sampled gauges. Without a
/// link reporter, a member's link counts as up unless `is_up` says otherwise.
pub fn sample(cluster: &Cluster, is_up: &dyn Fn(u64) -> bool) -> Sample {
    let s = status(cluster);
    let raft = RaftSample {
        term: s.term,
        leader: s.leader_id,
        is_leader: s.leader_id != 0 && s.leader_id == s.node_id,
        last_log_index: s.last_log_index,
        commit_index: s.committed_index,
        applied_index: s.applied_index,
        members: s.members.iter().filter(|n| n.role != "gone").count() as i64,
        voters: s.members.iter().filter(|n| n.role == "voter").count() as i64,
    };
    let mut links = Vec::new();
    if s.links.is_empty() {
        for peer in s.members.iter().filter(|n| n.node_id != s.node_id && n.role != "gone") {
            links.push((peer.node_id, is_up(peer.node_id)));
        }
    }
    links.extend(s.links.iter().map(|l| (l.node_id, l.state == "up")));
    Sample { raft: Some(raft), links, ..Sample::default() }
}

/// `Ok(None)` when this node is ready, `Ok(Some(index))` when it is but for
/// applying the log up to the committed `index`.
pub fn readiness(cluster: &Cluster) -> Result<Option<u64>, NotReady> {
    if cluster.is_shut_down() {
        return Err(NotReady::Stopped);
    }
    let (member, leader) = {
        let metrics = cluster.raft().metrics();
        let m = metrics.borrow();
        (m.membership_config.membership().get_node(&cluster.id()).is_some(), m.current_leader)
    };
    if !member {
        return Err(NotReady::NotMember);
    }
    if leader.is_none() {
        return Err(NotReady::NoLeader);
    }
    let committed = cluster.committed_index();
    let applied = cluster.replicated().applied_index().map(|i| i as i64).unwrap_or(-1);
    Ok((committed >= 0 && applied < committed).then_some(committed as u64))
}

/// Waits up to `limit` until the state machine applied `index`; false if it did not.
pub async fn wait_applied(cluster: &Cluster, index: u64, limit: Duration) -> bool {
    cluster.replicated().wait_applied(index, limit).await
}
