//! Cluster status: what a node reports over the `Status` RPC, the text
//! `junction cluster status --node ADDR` prints, and the client side of
//! `junction cluster add` / `remove` (through any node, which forwards to the leader).

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use openraft::ServerState;

use super::ClusterError;
use super::convert::index_or_minus_one;
use super::network::{CallError, Peers};
use super::node::Cluster;
use super::proto::{LinkStatus, Member, StatusReply, StatusRequest};
use super::secure::Credentials;

fn state_name(s: ServerState) -> &'static str {
    match s {
        ServerState::Leader => "leader",
        ServerState::Follower => "follower",
        ServerState::Candidate => "candidate",
        ServerState::Learner => "learner",
        ServerState::Shutdown => "shutdown",
    }
}

/// This node's view of the cluster.
pub fn build(cluster: &Cluster) -> StatusReply {
    let metrics = cluster.raft.metrics().borrow().clone();
    let membership = metrics.membership_config.membership();
    let voters: Vec<u64> = membership.voter_ids().collect();
    let nodes = cluster.state.nodes();
    let is_leader = metrics.state == ServerState::Leader;
    let now = Instant::now();
    let mut members: Vec<Member> = membership
        .nodes()
        .map(|(id, node)| {
            let info = nodes.get(id);
            let (matched_index, last_ack_ms) = if is_leader && *id != cluster.id {
                let matched = metrics
                    .replication
                    .as_ref()
                    .and_then(|r| r.get(id))
                    .map(|l| index_or_minus_one(l.as_ref()))
                    .unwrap_or(-1);
                let ack = cluster
                    .peers
                    .health(*id)
                    .last_ok
                    .map(|t| now.saturating_duration_since(t).as_millis() as i64)
                    .unwrap_or(-1);
                (matched, ack)
            } else {
                (-1, -1)
            };
            Member {
                node_id: *id,
                addr: node.addr.clone(),
                role: if voters.contains(id) { "voter" } else { "learner" }.into(),
                incarnation: info.map(|n| n.incarnation).unwrap_or(0),
                up: info.is_none_or(|n| n.up),
                matched_index,
                last_ack_ms,
            }
        })
        .collect();
    for (id, info) in &nodes {
        if membership.get_node(id).is_none() {
            members.push(Member {
                node_id: *id,
                addr: info.addr.clone(),
                role: "gone".into(),
                incarnation: info.incarnation,
                up: info.up,
                matched_index: -1,
                last_ack_ms: -1,
            });
        }
    }
    let leader_addr = metrics
        .current_leader
        .and_then(|l| membership.get_node(&l))
        .map(|n| n.addr.clone())
        .unwrap_or_default();
    let links = cluster
        .link_states()
        .into_iter()
        .map(|l| LinkStatus {
            node_id: l.node,
            addr: l.addr,
            state: l.state,
            frames_sent: l.frames_sent,
            frames_dropped: l.frames_dropped,
            frames_missed: l.frames_missed,
        })
        .collect();
    StatusReply {
        node_id: cluster.id,
        addr: cluster.addr.clone(),
        state: state_name(metrics.state).into(),
        term: metrics.current_term,
        leader_id: metrics.current_leader.unwrap_or(0),
        leader_addr,
        last_log_index: metrics.last_log_index.map(|i| i as i64).unwrap_or(-1),
        committed_index: cluster.committed_index(),
        applied_index: index_or_minus_one(metrics.last_applied.as_ref()),
        snapshot_index: index_or_minus_one(metrics.snapshot.as_ref()),
        purged_index: index_or_minus_one(metrics.purged.as_ref()),
        members,
        links,
        millis_since_quorum_ack: metrics.millis_since_quorum_ack.map(|m| m as i64).unwrap_or(-1),
        incarnation: cluster.incarnation,
    }
}

fn idx(i: i64) -> String {
    if i < 0 { "-".into() } else { i.to_string() }
}

/// Renders a status reply as the text `junction cluster status` prints.
pub fn render(s: &StatusReply) -> String {
    let mut out = String::new();
    let leader =
        if s.leader_id == 0 { "none".to_string() } else { format!("{} ({})", s.leader_id, s.leader_addr) };
    let _ = writeln!(out, "node:      {} ({}) {}", s.node_id, s.addr, s.state);
    let _ = writeln!(out, "leader:    {leader}");
    let _ = writeln!(out, "term:      {}", s.term);
    let _ = writeln!(
        out,
        "log:       last {}  committed {}  applied {}  snapshot {}  purged {}",
        idx(s.last_log_index),
        idx(s.committed_index),
        idx(s.applied_index),
        idx(s.snapshot_index),
        idx(s.purged_index)
    );
    let _ = writeln!(out, "members:");
    let _ = writeln!(
        out,
        "  {:<6} {:<24} {:<8} {:<5} {:<18} {:>8} {:>8}",
        "ID", "ADDR", "ROLE", "UP", "INCARNATION", "MATCHED", "ACK-MS"
    );
    let mut members = s.members.clone();
    members.sort_by_key(|m| m.node_id);
    for m in &members {
        let _ = writeln!(
            out,
            "  {:<6} {:<24} {:<8} {:<5} {:<18} {:>8} {:>8}",
            m.node_id,
            m.addr,
            m.role,
            if m.up { "yes" } else { "no" },
            m.incarnation,
            idx(m.matched_index),
            idx(m.last_ack_ms)
        );
    }
    if !s.links.is_empty() {
        let _ = writeln!(out, "links:");
        for l in &s.links {
            let _ = writeln!(
                out,
                "  {:<6} {:<24} {:<5} frames sent {} dropped {} missed {}",
                l.node_id, l.addr, l.state, l.frames_sent, l.frames_dropped, l.frames_missed
            );
        }
    }
    out
}

/// Asks the node at `addr` for its status.
pub async fn fetch(addr: &str, creds: Credentials) -> Result<StatusReply, ClusterError> {
    let peers = Peers::new(Duration::from_secs(2), creds);
    let mut client = peers.client(addr).map_err(|e| ClusterError::Rpc(e.to_string()))?;
    peers
        .call(addr, Duration::from_secs(5), client.status(StatusRequest {}))
        .await
        .map_err(|e| ClusterError::Rpc(format!("cannot get the status of {addr}: {e}")))
}

/// Asks the node at `addr` for its status, telling an unreachable node (retry, or
/// ask another) from one that answered with an error.
pub async fn fetch_for_admin(addr: &str, creds: Credentials) -> Result<StatusReply, AdminError> {
    let peers = Peers::new(Duration::from_secs(2), creds);
    let mut client = peers.client(addr).map_err(|e| AdminError::Unreachable(e.to_string()))?;
    peers.call(addr, Duration::from_secs(5), client.status(StatusRequest {})).await.map_err(|e| {
        match AdminError::from(e) {
            AdminError::Unreachable(m) => {
                AdminError::Unreachable(format!("cannot get the status of {addr}: {m}"))
            }
            AdminError::Refused(m) => AdminError::Refused(format!("cannot get the status of {addr}: {m}")),
        }
    })
}

/// Asks the node at `addr` for its status and renders it.
pub async fn status(addr: &str, creds: Credentials) -> Result<String, ClusterError> {
    Ok(render(&fetch(addr, creds).await?))
}

/// Why `junction cluster add/remove` failed: the CLI exits 3 for the first (retry
/// or ask another node), 1 for the second (the message says what to change).
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The node given with `--node` could not be reached or did not answer in time.
    #[error("{0}")]
    Unreachable(String),
    /// The cluster refused or could not make the change.
    #[error("{0}")]
    Refused(String),
}

impl From<CallError> for AdminError {
    fn from(e: CallError) -> AdminError {
        match e {
            CallError::Unreachable { .. } => AdminError::Unreachable(e.to_string()),
            CallError::Failed { .. } => AdminError::Refused(e.to_string()),
        }
    }
}

/// `junction cluster add`: checks, through the node at `addr`, that node `node_id`
/// is a member (nodes join by themselves, as learners), and with `voter` makes it
/// a voter (the node at `addr` forwards that to the leader). Returns what happened,
/// as one line.
pub async fn add(addr: &str, node_id: u64, voter: bool, creds: Credentials) -> Result<String, AdminError> {
    let peers = Peers::new(Duration::from_secs(2), creds);
    let mut client = peers.client(addr).map_err(|e| AdminError::Unreachable(e.to_string()))?;
    let status = peers.call(addr, Duration::from_secs(5), client.status(StatusRequest {})).await?;
    let role =
        status.members.iter().find(|m| m.node_id == node_id && m.role != "gone").map(|m| m.role.clone());
    match role.as_deref() {
        None => Err(AdminError::Refused(format!(
            "node {node_id} is not a member of the cluster (as node {} sees it): start it with the \
             cluster's peers (or dns name) and it joins by itself as a learner, then run this again",
            status.node_id
        ))),
        Some("voter") if voter => Ok(format!("node {node_id} is a voter already")),
        Some(role) if !voter => Ok(format!("node {node_id} is a member ({role})")),
        Some(_) => {
            let index = admin_change(&peers, addr, node_id, true).await?;
            Ok(format!("node {node_id} is a voter (log index {index})"))
        }
    }
}

/// `junction cluster remove`: asks the node at `addr` to remove node `node_id` from
/// the cluster (it forwards the request to the leader); returns the log index of the
/// removal.
pub async fn remove(addr: &str, node_id: u64, creds: Credentials) -> Result<u64, AdminError> {
    let peers = Peers::new(Duration::from_secs(2), creds);
    admin_change(&peers, addr, node_id, false).await
}

async fn admin_change(peers: &Peers, addr: &str, node_id: u64, promote: bool) -> Result<u64, AdminError> {
    let mut client = peers.client(addr).map_err(|e| AdminError::Unreachable(e.to_string()))?;
    let req = super::proto::LeaveRequest { node_id };
    let reply = if promote {
        peers.call(addr, Duration::from_secs(15), client.promote(req)).await
    } else {
        peers.call(addr, Duration::from_secs(15), client.leave(req)).await
    }?;
    match reply.result {
        Some(super::proto::leave_reply::Result::LogIndex(i)) => Ok(i),
        Some(super::proto::leave_reply::Result::Error(e)) => Err(AdminError::Refused(e)),
        Some(super::proto::leave_reply::Result::Forward(h)) => {
            Err(AdminError::Refused(format!("ask the leader, node {} at {}", h.leader_id, h.leader_addr)))
        }
        None => Err(AdminError::Refused(format!("{addr} gave an empty reply"))),
    }
}
