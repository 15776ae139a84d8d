//! Membership: joining, announcing incarnations, promoting learners, leaving.
//!
//! - A starting node *announces* itself: it sends `Join{id, addr, incarnation}` to
//!   the leader (found through its own Raft state, or through the configured peers /
//!   DNS name, following `LeaderHint`s). A node that leads does it locally, so the
//!   bootstrap node and a lone node go through the same path.
//! - The leader adds an unknown node as a learner (waiting until it has caught up),
//!   updates the address of a known one, commits `Announce` (a new incarnation purges
//!   the old one's routing entries), and promotes the node to voter when it is one of
//!   the `voters` lowest ids that are up ([`super::seats`]; the leader's
//!   [`super::upkeep`] loop moves the other seats). Membership changes are serialised.
//! - A node reports whether it started with no Raft state at all (`empty_log`). A
//!   voter id that does so is refused for good (the node exits): it may have voted
//!   before, and voting again with no memory of it could elect two leaders in one
//!   term. Remove it (`junction cluster remove`) and it joins again as a new member.
//!   Until it has joined, such a node also refuses to vote.
//! - `Leave` removes a node from the membership and purges its entries; the seats
//!   move on to the lowest ids that are up. Removing the leader first hands its
//!   leadership to another voter ([`super::transfer`]), whose turn it then is.
//! - If this node sees its own incarnation declared down (it was cut off longer than
//!   the lease and came back), it announces itself again; the router, which sees the
//!   same [`NodeDownEvent`](super::types::NodeDownEvent), re-proposes its interests.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::error::{ClientWriteError, RaftError};
use openraft::{BasicNode, ChangeMembers};

use super::ClusterError;
use super::network::CallError;
use super::node::{Cluster, WriteError};
use super::proto::{JoinReply, JoinRequest, Joined, LeaderHint, LeaveReply, join_reply, leave_reply};
use super::replicate::ReplicateError;
use super::seats::{self, SeatChange};
use super::types::Request;
use super::upkeep;

/// How long adding a learner may take (it must catch up with the log).
const ADD_LEARNER_TIMEOUT: Duration = Duration::from_secs(10);

type ChangeResult = Result<(), WriteError>;

fn map_change_err(e: RaftError<u64, ClientWriteError<u64, BasicNode>>) -> WriteError {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => WriteError::NotLeader(LeaderHint {
            leader_id: f.leader_id.unwrap_or(0),
            leader_addr: f.leader_node.map(|n| n.addr).unwrap_or_default(),
        }),
        other => WriteError::Failed(other.to_string()),
    }
}

/// Commits a membership change within `timeout`; with `retain`, voters it removes
/// stay learners.
pub(crate) async fn change(
    cluster: &Cluster,
    changes: ChangeMembers<u64, BasicNode>,
    timeout: Duration,
    retain: bool,
) -> ChangeResult {
    match tokio::time::timeout(timeout, cluster.raft.change_membership(changes, retain)).await {
        Err(_) => Err(WriteError::Failed(format!(
            "membership change not committed within {} ms",
            timeout.as_millis()
        ))),
        Ok(r) => r.map(|_| ()).map_err(map_change_err),
    }
}

/// Why the leader did not add a node.
#[derive(Debug)]
enum JoinError {
    /// Not the leader, or not now: retry.
    Write(WriteError),
    /// Never as it is: the reason says what to do.
    Refused(String),
}

impl From<WriteError> for JoinError {
    fn from(e: WriteError) -> JoinError {
        JoinError::Write(e)
    }
}

/// Leader side of `Join`.
pub async fn handle_join(cluster: &Cluster, req: &JoinRequest) -> JoinReply {
    let result = match join(cluster, req).await {
        Ok(j) => join_reply::Result::Joined(j),
        Err(JoinError::Write(WriteError::NotLeader(h))) => join_reply::Result::Forward(h),
        Err(JoinError::Write(WriteError::Failed(e))) => join_reply::Result::Error(e),
        Err(JoinError::Refused(e)) => join_reply::Result::Refused(e),
    };
    JoinReply { result: Some(result) }
}

/// The refusal of a voter id that comes back without any Raft state.
fn empty_voter(id: u64) -> String {
    format!(
        "node {id} is a voter but came back with an empty Raft log (its cluster.data_dir is new, was \
         wiped or is not set): it may have voted before, so it may not vote again as it is. Remove it \
         first (`junction cluster remove --id {id}`), then start it again: it joins as a new member"
    )
}

async fn join(cluster: &Cluster, req: &JoinRequest) -> Result<Joined, JoinError> {
    if !cluster.is_leader() {
        return Err(WriteError::NotLeader(cluster.hint()).into());
    }
    if cluster.is_handing_over() {
        return Err(WriteError::Failed("the leader is handing leadership over; retry".into()).into());
    }
    if req.node_id == 0 {
        return Err(JoinError::Refused("node id 0 is not allowed".into()));
    }
    if req.addr.is_empty() && req.node_id != cluster.id {
        return Err(JoinError::Refused(format!("node {} has no gRPC address to reach it at", req.node_id)));
    }
    let timeout = cluster.cfg.propose_timeout();
    let _guard = cluster.membership_lock.lock().await;
    let (known, is_voter) = {
        let m = cluster.raft.metrics();
        let m = m.borrow();
        let mem = m.membership_config.membership();
        (mem.get_node(&req.node_id).map(|n| n.addr.clone()), mem.voter_ids().any(|v| v == req.node_id))
    };
    if is_voter && req.empty_log && req.node_id != cluster.id {
        tracing::warn!(node = req.node_id, "refusing a voter that came back with an empty log");
        return Err(JoinError::Refused(empty_voter(req.node_id)));
    }
    let node = BasicNode::new(req.addr.clone());
    match known {
        None => {
            tracing::info!(node = req.node_id, addr = %req.addr, "adding learner");
            match tokio::time::timeout(ADD_LEARNER_TIMEOUT, cluster.raft.add_learner(req.node_id, node, true))
                .await
            {
                Err(_) => {
                    return Err(WriteError::Failed(format!(
                        "node {} did not catch up as a learner within {} s",
                        req.node_id,
                        ADD_LEARNER_TIMEOUT.as_secs()
                    ))
                    .into());
                }
                Ok(r) => r.map(|_| ()).map_err(map_change_err)?,
            }
        }
        Some(addr) if addr != req.addr => {
            tracing::info!(node = req.node_id, old = %addr, new = %req.addr, "node address changed");
            change(cluster, ChangeMembers::SetNodes(BTreeMap::from([(req.node_id, node)])), timeout, false)
                .await?;
        }
        Some(_) => {}
    }
    let announce =
        Request::Announce { node: req.node_id, addr: req.addr.clone(), incarnation: req.incarnation };
    let (_, log_index) = cluster.leader_write(announce, timeout).await?;
    let voter = is_voter || {
        // Its replication progress shows in the metrics a moment after the commit.
        upkeep::wait_replicated(cluster, req.node_id, log_index, ADD_LEARNER_TIMEOUT).await;
        promote_if_due(cluster, req.node_id).await?
    };
    Ok(Joined { voter, leader_id: cluster.id, log_index })
}

/// Promotes `node` if it is the seat change due now (the caller holds the
/// membership lock); a down voter keeps its seat here (the upkeep loop judges how
/// long it has been down). Returns whether `node` is a voter.
async fn promote_if_due(cluster: &Cluster, node: u64) -> Result<bool, WriteError> {
    let due = upkeep::view(cluster, |_| true).and_then(|v| seats::next_change(&v));
    if due != Some(SeatChange::Promote(node)) {
        return Ok(false);
    }
    match upkeep::apply(cluster, SeatChange::Promote(node)).await {
        Ok(()) => Ok(true),
        Err(WriteError::Failed(e)) => {
            tracing::warn!(node, error = %e, "promotion failed");
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

/// A membership change an operator asks any node for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdminChange {
    /// Remove the node for good.
    Remove,
    /// Make the learner a voter.
    Promote,
}

/// Removes `node_id` from the cluster, from any node: on the leader directly,
/// otherwise through the leader (following its hints). Returns the log index of the
/// removal.
pub async fn remove(cluster: &Cluster, node_id: u64) -> Result<u64, ReplicateError> {
    via_leader(cluster, node_id, AdminChange::Remove).await
}

/// Makes learner `node_id` a voter, from any node (through the leader).
pub async fn promote(cluster: &Cluster, node_id: u64) -> Result<u64, ReplicateError> {
    via_leader(cluster, node_id, AdminChange::Promote).await
}

/// Leader side of `Promote`.
async fn promote_here(cluster: &Cluster, node_id: u64) -> LeaveReply {
    let result = async {
        if !cluster.is_leader() {
            return Err(WriteError::NotLeader(cluster.hint()));
        }
        let _guard = cluster.membership_lock.lock().await;
        let (is_voter, is_learner) = {
            let m = cluster.raft.metrics();
            let m = m.borrow();
            let mem = m.membership_config.membership();
            (mem.voter_ids().any(|v| v == node_id), mem.learner_ids().any(|l| l == node_id))
        };
        if is_voter {
            return Err(WriteError::Failed(format!("node {node_id} is a voter already")));
        }
        if !is_learner {
            return Err(WriteError::Failed(format!(
                "node {node_id} is not a member: start it with the cluster's peers and it joins as a learner"
            )));
        }
        let timeout = cluster.cfg.propose_timeout();
        change(cluster, ChangeMembers::AddVoterIds(BTreeSet::from([node_id])), timeout, false).await?;
        Ok(cluster.raft.metrics().borrow().last_log_index.unwrap_or(0))
    }
    .await;
    let result = match result {
        Ok(i) => leave_reply::Result::LogIndex(i),
        Err(WriteError::NotLeader(h)) => leave_reply::Result::Forward(h),
        Err(WriteError::Failed(e)) => leave_reply::Result::Error(e),
    };
    LeaveReply { result: Some(result) }
}

async fn via_leader(cluster: &Cluster, node_id: u64, op: AdminChange) -> Result<u64, ReplicateError> {
    let mut target: Option<String> = None;
    for _ in 0..5 {
        let reply = match &target {
            None if cluster.is_leader() && op == AdminChange::Remove => handle_leave(cluster, node_id).await,
            None if cluster.is_leader() => promote_here(cluster, node_id).await,
            None => match cluster.leader() {
                Some((_, addr)) if !addr.is_empty() => {
                    target = Some(addr);
                    continue;
                }
                _ => return Err(ReplicateError::NoLeader),
            },
            Some(addr) => {
                let mut client =
                    cluster.peers.client(addr).map_err(|e| ReplicateError::Call(e.to_string()))?;
                let timeout = cluster.cfg.propose_timeout() * 3;
                let req = super::proto::LeaveRequest { node_id };
                match op {
                    AdminChange::Remove => cluster.peers.call(addr, timeout, client.leave(req)).await,
                    AdminChange::Promote => cluster.peers.call(addr, timeout, client.promote(req)).await,
                }
                .map_err(|e| ReplicateError::Call(e.to_string()))?
            }
        };
        match reply.result {
            Some(leave_reply::Result::LogIndex(i)) => return Ok(i),
            Some(leave_reply::Result::Forward(h)) if !h.leader_addr.is_empty() => {
                target = Some(h.leader_addr)
            }
            Some(leave_reply::Result::Forward(_)) => return Err(ReplicateError::NoLeaderHint),
            Some(leave_reply::Result::Error(e)) => return Err(ReplicateError::Refused(e)),
            None => return Err(ReplicateError::EmptyReply),
        }
    }
    Err(ReplicateError::LeaderMoving)
}

/// Leader side of `Leave`.
pub async fn handle_leave(cluster: &Cluster, node_id: u64) -> LeaveReply {
    let result = match leave(cluster, node_id).await {
        Ok(i) => leave_reply::Result::LogIndex(i),
        Err(WriteError::NotLeader(h)) => leave_reply::Result::Forward(h),
        Err(WriteError::Failed(e)) => leave_reply::Result::Error(e),
    };
    LeaveReply { result: Some(result) }
}

async fn leave(cluster: &Cluster, node_id: u64) -> Result<u64, WriteError> {
    if !cluster.is_leader() {
        return Err(WriteError::NotLeader(cluster.hint()));
    }
    if node_id == cluster.id {
        // The leader leaves last: another voter leads, and removes this node.
        let to = super::transfer::hand_over(cluster, None).await?;
        let addr = cluster.node_addr(to).unwrap_or_default();
        tracing::info!(node = cluster.id, leader = to, "handed leadership over before leaving");
        return Err(WriteError::NotLeader(LeaderHint { leader_id: to, leader_addr: addr }));
    }
    let timeout = cluster.cfg.propose_timeout();
    let _guard = cluster.membership_lock.lock().await;
    let (is_voter, is_member) = {
        let m = cluster.raft.metrics();
        let m = m.borrow();
        let mem = m.membership_config.membership();
        (mem.voter_ids().any(|v| v == node_id), mem.get_node(&node_id).is_some())
    };
    if is_voter {
        change(cluster, ChangeMembers::RemoveVoters(BTreeSet::from([node_id])), timeout, false).await?;
    } else if is_member {
        change(cluster, ChangeMembers::RemoveNodes(BTreeSet::from([node_id])), timeout, false).await?;
    }
    let (_, index) = cluster.leader_write(Request::Forget { node: node_id }, timeout).await?;
    // Keep the voter count: the lowest learner that is up takes the seat now.
    if let Some(SeatChange::Promote(l)) = upkeep::view(cluster, |_| true).and_then(|v| seats::next_change(&v))
        && let Err(e) = upkeep::apply(cluster, SeatChange::Promote(l)).await
    {
        tracing::warn!(node = l, error = ?e, "promotion failed");
    }
    Ok(index)
}

/// Where to send a `Join` when the leader is unknown: the configured peers, or the
/// addresses the DNS name resolves to; never this node itself.
pub async fn seeds(cluster: &Cluster) -> Vec<String> {
    let mut out: Vec<String> = cluster.cfg.peers.clone();
    if let Some(name) = &cluster.cfg.dns {
        match tokio::net::lookup_host(name.as_str()).await {
            Ok(addrs) => out.extend(addrs.map(|a| a.to_string())),
            Err(e) => tracing::debug!(dns = %name, error = %e, "cannot resolve cluster DNS name"),
        }
    }
    let own: Vec<String> = [Some(cluster.addr.clone()), cluster.local_addr().map(|a| a.to_string())]
        .into_iter()
        .flatten()
        .collect();
    out.retain(|a| !own.contains(a));
    out.sort();
    out.dedup();
    out
}

enum Attempt {
    Joined(Joined),
    Forward(LeaderHint),
    Failed(String),
    Refused(String),
}

async fn join_at(cluster: &Cluster, addr: &str, req: &JoinRequest) -> Attempt {
    let mut client = match cluster.peers.client(addr) {
        Ok(c) => c,
        Err(e) => return Attempt::Failed(e.to_string()),
    };
    // Adding a learner waits for it to catch up: give the leader time.
    let timeout = ADD_LEARNER_TIMEOUT + cluster.cfg.propose_timeout() * 3;
    match cluster.peers.call(addr, timeout, client.join(req.clone())).await {
        Ok(JoinReply { result: Some(join_reply::Result::Joined(j)) }) => Attempt::Joined(j),
        Ok(JoinReply { result: Some(join_reply::Result::Forward(h)) }) => Attempt::Forward(h),
        Ok(JoinReply { result: Some(join_reply::Result::Error(e)) }) => {
            Attempt::Failed(format!("{addr}: {e}"))
        }
        Ok(JoinReply { result: Some(join_reply::Result::Refused(e)) }) => Attempt::Refused(e),
        Ok(JoinReply { result: None }) => Attempt::Failed(format!("{addr}: empty reply")),
        Err(e @ CallError::Unreachable { .. }) | Err(e @ CallError::Failed { .. }) => {
            Attempt::Failed(e.to_string())
        }
    }
}

/// Announces this node (joining the cluster if needed); returns once this node has
/// applied its own announcement.
pub async fn announce(cluster: &Arc<Cluster>, timeout: Duration) -> Result<(), ClusterError> {
    let deadline = Instant::now() + timeout;
    let req = JoinRequest {
        node_id: cluster.id,
        addr: cluster.addr.clone(),
        incarnation: cluster.incarnation,
        empty_log: cluster.is_fresh(),
    };
    let mut last_err: String;
    let mut next: Option<String> = None;
    let mut turn = 0usize;
    let mut attempts = 0u32;
    loop {
        if cluster.is_shut_down() {
            return Err(ClusterError::Join("shut down while joining".into()));
        }
        let attempt = match (next.take(), cluster.leader()) {
            (Some(addr), _) => join_at(cluster, &addr, &req).await,
            (None, Some((id, _))) if id == cluster.id => match join(cluster, &req).await {
                Ok(j) => Attempt::Joined(j),
                Err(JoinError::Write(WriteError::NotLeader(h))) => Attempt::Forward(h),
                Err(JoinError::Write(WriteError::Failed(e))) => Attempt::Failed(e),
                Err(JoinError::Refused(e)) => Attempt::Refused(e),
            },
            (None, Some((_, addr))) if !addr.is_empty() => join_at(cluster, &addr, &req).await,
            _ => {
                let seeds = seeds(cluster).await;
                if seeds.is_empty() {
                    Attempt::Failed("no leader yet and no peers to ask".into())
                } else {
                    turn = turn.wrapping_add(1);
                    join_at(cluster, &seeds[turn % seeds.len()], &req).await
                }
            }
        };
        match attempt {
            Attempt::Refused(e) => {
                tracing::error!(node = cluster.id, reason = %e, "the cluster refused this node");
                return Err(ClusterError::Refused(e));
            }
            Attempt::Joined(j) => {
                cluster.set_joined();
                let left = deadline.saturating_duration_since(Instant::now()).max(Duration::from_secs(1));
                if cluster.state.wait_applied(j.log_index, left).await {
                    tracing::info!(
                        node = cluster.id,
                        voter = j.voter,
                        leader = j.leader_id,
                        "joined the cluster"
                    );
                    return Ok(());
                }
                last_err =
                    format!("joined, but did not apply the announcement (index {}) in time", j.log_index);
            }
            Attempt::Forward(h) if !h.leader_addr.is_empty() && h.leader_id != cluster.id => {
                next = Some(h.leader_addr);
                continue;
            }
            Attempt::Forward(_) => {
                last_err = "the contacted node knows no leader yet (is exactly one node started with \
                            cluster.bootstrap = true?)"
                    .into()
            }
            Attempt::Failed(e) => last_err = e,
        }
        attempts += 1;
        if attempts.is_multiple_of(25) {
            tracing::info!(node = cluster.id, error = %last_err, "still trying to join the cluster");
        }
        if Instant::now() >= deadline {
            return Err(ClusterError::Join(format!(
                "node {} could not join the cluster within {} ms: {last_err}",
                cluster.id,
                timeout.as_millis()
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Re-announces this node when its own incarnation is declared down while it runs.
pub async fn watch_self(cluster: Arc<Cluster>) {
    let mut events = cluster.subscribe_node_down();
    let mut shutdown = cluster.shutdown_signal();
    loop {
        let event = tokio::select! {
            e = events.recv() => e,
            _ = shutdown.wait_for(|s| *s) => return,
        };
        match event {
            Ok(e)
                if e.node == cluster.id && e.incarnation == cluster.incarnation && !cluster.is_retiring() =>
            {
                tracing::warn!(node = cluster.id, "this node was declared down; announcing itself again");
                while !cluster.is_shut_down() {
                    match announce(&cluster, cluster.cfg.join_timeout()).await {
                        Ok(()) => break,
                        Err(e) => tracing::warn!(error = %e, "re-announce failed"),
                    }
                }
            }
            Ok(_) => {}
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        }
    }
}
