//! The leader's membership upkeep: keeps the voter seats on the lowest ids that are
//! up ([`seats::next_change`], one change per tick) and removes learners that have
//! been down longer than `forget_after` ([`seats::to_forget`]).
//!
//! Runs on every node and acts only while it leads, and only once it has led for a
//! lease (its view of who is up has settled), while no leadership transfer runs and
//! the membership is not in a joint configuration. How long a member has been down
//! is this leader's own observation, counted from when it first saw the member down:
//! a new leader starts counting again, which can only delay a removal.
//!
//! A voter that is down keeps its seat for [`SEAT_GRACE_LEASES`] leases (30 s with
//! the default `lease_ms`): a restart does not move seats around.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::ChangeMembers;

use super::membership::change;
use super::node::{Cluster, WriteError};
use super::seats::{self, SeatChange, SeatView};
use super::transfer;
use super::types::Request;

/// How many leases a down voter keeps its seat.
pub const SEAT_GRACE_LEASES: u32 = 15;

/// How long the upkeep waits after a failed hand-over before trying again.
const HAND_OVER_BACKOFF: Duration = Duration::from_secs(30);

/// How far behind the leader's log a learner may be and still count as caught up.
const CATCH_UP_LAG: u64 = 100;

/// The leader's view of the membership, or `None` while it is not the leader or
/// the membership is joint. Voters in `in_grace` keep their seat while down.
pub(crate) fn view(cluster: &Cluster, in_grace: impl Fn(u64) -> bool) -> Option<SeatView> {
    if !cluster.is_leader() {
        return None;
    }
    let m = cluster.raft.metrics().borrow().clone();
    let membership = m.membership_config.membership();
    if membership.get_joint_config().len() != 1 {
        return None;
    }
    let voters: BTreeSet<u64> = membership.voter_ids().collect();
    let learners: BTreeSet<u64> = membership.learner_ids().collect();
    let nodes = cluster.state.nodes();
    let up: BTreeSet<u64> =
        voters.union(&learners).copied().filter(|id| nodes.get(id).is_some_and(|n| n.up)).collect();
    let last = m.last_log_index.unwrap_or(0);
    let caught_up = learners
        .iter()
        .copied()
        .filter(|id| {
            let matched = m.replication.as_ref().and_then(|r| r.get(id).cloned()).flatten();
            matched.is_some_and(|l| l.index + CATCH_UP_LAG >= last)
        })
        .collect();
    let in_grace = voters.iter().copied().filter(|id| !up.contains(id) && in_grace(*id)).collect();
    Some(SeatView {
        voters,
        learners,
        up,
        caught_up,
        in_grace,
        target: cluster.cfg.voters,
        leader: cluster.id,
    })
}

/// Waits up to `limit` until the leader's metrics show `node` has replicated the
/// log up to `index`; returns whether it has.
pub(crate) async fn wait_replicated(cluster: &Cluster, node: u64, index: u64, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    let mut metrics = cluster.raft.metrics();
    loop {
        let matched = {
            let m = metrics.borrow_and_update();
            m.replication.as_ref().and_then(|r| r.get(&node).cloned()).flatten().map(|l| l.index)
        };
        if matched.is_some_and(|i| i >= index) {
            return true;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || !cluster.is_leader() {
            return false;
        }
        tokio::time::timeout(left.min(Duration::from_millis(50)), metrics.changed()).await.ok();
    }
}

/// Applies a promotion or demotion (the caller holds the membership lock).
pub(crate) async fn apply(cluster: &Cluster, step: SeatChange) -> Result<(), WriteError> {
    let timeout = cluster.cfg.propose_timeout();
    match step {
        SeatChange::Promote(id) => {
            tracing::info!(node = id, "promoting learner to voter (lowest ids vote)");
            change(cluster, ChangeMembers::AddVoterIds(BTreeSet::from([id])), timeout, false).await
        }
        SeatChange::Demote(id) => {
            tracing::info!(node = id, "demoting voter to learner (lowest ids vote)");
            change(cluster, ChangeMembers::RemoveVoters(BTreeSet::from([id])), timeout, true).await
        }
        SeatChange::HandOver(to) => transfer::hand_over(cluster, Some(to)).await.map(|_| ()),
    }
}

/// Removes learner `id`, down too long, from the membership and the liveness table.
async fn forget(cluster: &Cluster, id: u64) -> Result<(), WriteError> {
    let _guard = cluster.membership_lock.lock().await;
    let still_learner =
        cluster.raft.metrics().borrow().membership_config.membership().learner_ids().any(|l| l == id);
    if !still_learner || cluster.state.node(id).is_some_and(|n| n.up) {
        return Ok(());
    }
    tracing::warn!(node = id, "learner down longer than cluster.forget_after_ms: removing it");
    let timeout = cluster.cfg.propose_timeout();
    change(cluster, ChangeMembers::RemoveNodes(BTreeSet::from([id])), timeout, false).await?;
    cluster.leader_write(Request::Forget { node: id }, timeout).await.map(|_| ())
}

/// The leader's upkeep loop; runs on every node, acts only while it leads.
pub async fn run(cluster: Arc<Cluster>) {
    let mut shutdown = cluster.shutdown_signal();
    let lease = cluster.cfg.lease();
    let mut tick =
        tokio::time::interval((lease / 4).clamp(Duration::from_millis(100), Duration::from_secs(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let grace = lease * SEAT_GRACE_LEASES;
    let mut leader_since: Option<Instant> = None;
    let mut down_since: BTreeMap<u64, Instant> = BTreeMap::new();
    // A failed hand-over paused writes for a while: do not retry at once.
    let mut no_hand_over_until: Option<Instant> = None;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
        if !cluster.is_leader() || cluster.is_handing_over() {
            leader_since = None;
            down_since.clear();
            continue;
        }
        let now = Instant::now();
        let since = *leader_since.get_or_insert(now);
        let Some(seen) = view(&cluster, |_| true) else { continue };
        let members: BTreeSet<u64> = seen.voters.union(&seen.learners).copied().collect();
        down_since.retain(|id, _| members.contains(id) && !seen.up.contains(id));
        for id in members.iter().filter(|id| !seen.up.contains(id)) {
            down_since.entry(*id).or_insert(now);
        }
        if now.saturating_duration_since(since) < lease {
            continue;
        }
        for id in seats::to_forget(&seen.learners, &down_since, now, cluster.cfg.forget_after()) {
            if let Err(e) = forget(&cluster, id).await {
                tracing::warn!(node = id, error = ?e, "could not remove a learner that is down");
            }
        }
        let guard = cluster.membership_lock.lock().await;
        let in_grace = |id| down_since.get(&id).is_some_and(|t| now.saturating_duration_since(*t) < grace);
        let Some(step) = view(&cluster, in_grace).and_then(|v| seats::next_change(&v)) else { continue };
        if matches!(step, SeatChange::HandOver(_)) {
            drop(guard);
            if no_hand_over_until.is_some_and(|t| now < t) {
                continue;
            }
            tracing::info!(
                node = cluster.id,
                ?step,
                "this leader gives up its voter seat: handing over first"
            );
        }
        if let Err(e) = apply(&cluster, step).await {
            tracing::warn!(?step, error = ?e, "voter seat change failed");
            if matches!(step, SeatChange::HandOver(_)) {
                no_hand_over_until = Some(Instant::now() + HAND_OVER_BACKOFF);
            }
        }
    }
}
