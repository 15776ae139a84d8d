//! Leadership transfer (`junction cluster transfer-leader`), which openraft 0.9
//! does not offer as such.
//!
//! The leader hands over to an up voter (the one asked for, or the lowest-id voter
//! that is up):
//!
//! 1. it stops accepting writes ([`Cluster::is_handing_over`]) and waits until the
//!    target's log matches its own;
//! 2. it stops its heartbeats, so the other voters' leader lease (openraft rejects
//!    votes while it runs) expires after `2 × election_timeout_ms`;
//! 3. it asks the target over the `Elect` RPC to run for election: the target
//!    triggers `raft.trigger().elect()` until it leads or its time is up. Its log is
//!    complete, so the others grant their votes once their lease is over — before
//!    their own election timers (lease plus an election timeout) fire.
//!
//! Whatever happens, the old leader turns its heartbeats back on and accepts writes
//! again (a follower ignores both; if the transfer failed it simply still leads).
//! Any node takes the request and forwards it to the leader.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::network::Peers;
use super::node::{Cluster, WriteError};
use super::proto::{ElectReply, ElectRequest, LeaderHint, TransferReply, TransferRequest, transfer_reply};
use super::replicate::ReplicateError;
use super::secure::Credentials;
use super::status::AdminError;

/// How often the target triggers an election while it does not lead yet.
const ELECT_EVERY: Duration = Duration::from_millis(100);

/// How long the target may take to catch up with the leader's log.
const CATCH_UP: Duration = Duration::from_secs(3);

/// How long the target may try to win: the other voters' lease, plus room for a few
/// rounds of votes.
fn elect_window(cluster: &Cluster) -> Duration {
    Duration::from_millis(cluster.cfg.election_timeout_ms * 2 * 3 + 1000)
}

/// Resets the leader's write and heartbeat pause when the transfer ends.
struct Pause<'a>(&'a Cluster);

impl Drop for Pause<'_> {
    fn drop(&mut self) {
        self.0.raft.runtime_config().heartbeat(true);
        self.0.handing_over.store(false, Ordering::SeqCst);
    }
}

/// The voter to hand over to: `to` when given (it must be an up voter other than
/// this node), else the lowest-id voter that is up.
fn choose(cluster: &Cluster, to: Option<u64>) -> Result<u64, WriteError> {
    let voters: Vec<u64> =
        cluster.raft.metrics().borrow().membership_config.membership().voter_ids().collect();
    let nodes = cluster.state.nodes();
    let up = |id: &u64| nodes.get(id).is_some_and(|n| n.up);
    match to {
        Some(id) if !voters.contains(&id) => {
            Err(WriteError::Failed(format!("node {id} is not a voter: only a voter can lead")))
        }
        Some(id) if !up(&id) => Err(WriteError::Failed(format!("node {id} is down"))),
        Some(id) => Ok(id),
        None => voters
            .into_iter()
            .filter(|v| *v != cluster.id && up(v))
            .min()
            .ok_or_else(|| WriteError::Failed("no other voter is up to hand leadership to".into())),
    }
}

/// Leader side: hands leadership to `to` (or the best voter); returns the new leader.
pub(crate) async fn hand_over(cluster: &Cluster, to: Option<u64>) -> Result<u64, WriteError> {
    if !cluster.is_leader() {
        return Err(WriteError::NotLeader(cluster.hint()));
    }
    let target = choose(cluster, to)?;
    if target == cluster.id {
        return Ok(target);
    }
    let addr = cluster.node_addr(target).unwrap_or_default();
    if addr.is_empty() {
        return Err(WriteError::Failed(format!("node {target} has no known address")));
    }
    if cluster.handing_over.swap(true, Ordering::SeqCst) {
        return Err(WriteError::Failed("a leadership transfer is in progress already".into()));
    }
    let _pause = Pause(cluster);
    tracing::info!(node = cluster.id, target, "handing leadership over");
    wait_caught_up(cluster, target).await?;
    cluster.raft.runtime_config().heartbeat(false);
    let window = elect_window(cluster);
    let mut client = cluster.peers.client(&addr).map_err(|e| WriteError::Failed(e.to_string()))?;
    let req = ElectRequest { leader_id: cluster.id, timeout_ms: window.as_millis() as u64 };
    let reply = cluster
        .peers
        .call(&addr, window + Duration::from_secs(1), client.elect(req))
        .await
        .map_err(|e| WriteError::Failed(format!("node {target}: {e}")))?;
    if reply.leader {
        tracing::info!(node = cluster.id, target, "leadership handed over");
        Ok(target)
    } else {
        Err(WriteError::Failed(format!("node {target} did not become leader: {}", reply.error)))
    }
}

/// Waits until `target` has replicated this leader's whole log.
async fn wait_caught_up(cluster: &Cluster, target: u64) -> Result<(), WriteError> {
    let deadline = Instant::now() + CATCH_UP;
    let mut metrics = cluster.raft.metrics();
    loop {
        let (last, matched) = {
            let m = metrics.borrow_and_update();
            let matched = m.replication.as_ref().and_then(|r| r.get(&target).cloned()).flatten();
            (m.last_log_index, matched.map(|l| l.index))
        };
        if matched >= last {
            return Ok(());
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(WriteError::Failed(format!(
                "node {target} did not catch up with the leader's log (index {last:?}) within {} s",
                CATCH_UP.as_secs()
            )));
        }
        tokio::time::timeout(left.min(Duration::from_millis(50)), metrics.changed()).await.ok();
    }
}

/// Target side of a transfer: runs for election until this node leads.
pub async fn handle_elect(cluster: &Cluster, req: &ElectRequest) -> ElectReply {
    let refuse = |error: String| ElectReply { leader: false, error };
    let (leader, is_voter) = {
        let m = cluster.raft.metrics();
        let m = m.borrow();
        (m.current_leader, m.membership_config.membership().voter_ids().any(|v| v == cluster.id))
    };
    if leader != Some(req.leader_id) {
        return refuse(format!("node {} is not the leader this node follows ({leader:?})", req.leader_id));
    }
    if !is_voter {
        return refuse(format!("node {} is not a voter", cluster.id));
    }
    let window = Duration::from_millis(req.timeout_ms).min(elect_window(cluster));
    let deadline = Instant::now() + window;
    let mut metrics = cluster.raft.metrics();
    loop {
        if cluster.is_leader() {
            return ElectReply { leader: true, error: String::new() };
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || cluster.is_shut_down() {
            let now = cluster.leader().map(|(id, _)| id);
            return refuse(format!("not elected within {} ms (leader now: {now:?})", window.as_millis()));
        }
        if let Err(e) = cluster.raft.trigger().elect().await {
            return refuse(format!("cannot run for election: {e}"));
        }
        let until = Instant::now() + ELECT_EVERY.min(left);
        while Instant::now() < until && !cluster.is_leader() {
            let wait = until.saturating_duration_since(Instant::now());
            if tokio::time::timeout(wait, metrics.changed()).await.is_ok_and(|r| r.is_err()) {
                break;
            }
        }
    }
}

/// Leader side of `TransferLeader`.
pub async fn handle_transfer(cluster: &Cluster, to: Option<u64>) -> TransferReply {
    let result = match hand_over(cluster, to).await {
        Ok(id) => transfer_reply::Result::LeaderId(id),
        Err(WriteError::NotLeader(h)) => transfer_reply::Result::Forward(h),
        Err(WriteError::Failed(e)) => transfer_reply::Result::Error(e),
    };
    TransferReply { result: Some(result) }
}

/// Hands leadership over from any node: on the leader directly, otherwise through
/// it (following its hints). Returns the new leader.
pub async fn transfer(cluster: &Cluster, to: Option<u64>) -> Result<u64, ReplicateError> {
    let mut target: Option<String> = None;
    for _ in 0..5 {
        let reply = match &target {
            None if cluster.is_leader() => handle_transfer(cluster, to).await,
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
                let timeout = elect_window(cluster) + CATCH_UP + Duration::from_secs(2);
                let req = TransferRequest { to: to.unwrap_or(0) };
                cluster
                    .peers
                    .call(addr, timeout, client.transfer_leader(req))
                    .await
                    .map_err(|e| ReplicateError::Call(e.to_string()))?
            }
        };
        match reply.result {
            Some(transfer_reply::Result::LeaderId(id)) => return Ok(id),
            Some(transfer_reply::Result::Forward(LeaderHint { leader_addr, .. }))
                if !leader_addr.is_empty() =>
            {
                target = Some(leader_addr)
            }
            Some(transfer_reply::Result::Forward(_)) => return Err(ReplicateError::NoLeaderHint),
            Some(transfer_reply::Result::Error(e)) => return Err(ReplicateError::Refused(e)),
            None => return Err(ReplicateError::EmptyReply),
        }
    }
    Err(ReplicateError::LeaderMoving)
}

/// `junction cluster transfer-leader`: asks the node at `addr` to have the leader
/// hand over to `to` (or the best voter); returns (old leader, new leader).
pub async fn transfer_leader(
    addr: &str,
    to: Option<u64>,
    creds: Credentials,
) -> Result<(u64, u64), AdminError> {
    let peers = Peers::new(Duration::from_secs(2), creds);
    let mut client = peers.client(addr).map_err(|e| AdminError::Unreachable(e.to_string()))?;
    let before =
        peers.call(addr, Duration::from_secs(5), client.status(super::proto::StatusRequest {})).await?;
    let req = TransferRequest { to: to.unwrap_or(0) };
    let reply = peers.call(addr, Duration::from_secs(20), client.transfer_leader(req)).await?;
    match reply.result {
        Some(transfer_reply::Result::LeaderId(id)) => Ok((before.leader_id, id)),
        Some(transfer_reply::Result::Error(e)) => Err(AdminError::Refused(e)),
        Some(transfer_reply::Result::Forward(h)) => {
            Err(AdminError::Refused(format!("ask the leader, node {} at {}", h.leader_id, h.leader_addr)))
        }
        None => Err(AdminError::Refused(format!("{addr} gave an empty reply"))),
    }
}
