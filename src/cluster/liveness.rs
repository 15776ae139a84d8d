//! Node liveness, run by the leader.
//!
//! The leader's Raft RPCs (heartbeats every `heartbeat_ms` included) record when
//! each node last answered ([`Peers::health`](super::network::Peers::health)). Every
//! heartbeat interval the leader checks each node the liveness table lists as up:
//!
//! - no answer for longer than the lease (`lease_ms`, default 2 s), counted from the
//!   last answer or from when this node became leader, whichever is later; or
//! - every connection refused for longer than [`REFUSED_GRACE`] (counted from when
//!   this node became leader at the earliest): nothing listens on
//!   the node's port any more, so its process is gone (`kill -9`); waiting out the
//!   whole lease would only delay the standby. A restarted process comes back with a
//!   new incarnation anyway.
//!
//! A node's lease also counts from when this leader first saw its current
//! incarnation up (a restarted process is not judged by its predecessor's silence),
//! and from the end of a stall of this process (a leader resuming from a pause must
//! not declare the others down from its stale view).
//!
//! A leader handing leadership over ([`super::transfer`]) stops its heartbeats, so
//! it checks nothing meanwhile, and counts leases again afterwards.
//!
//! Then it commits `Down{node, incarnation}`, which purges that incarnation's
//! subscriptions interest and callees on every node. Membership is left alone: a
//! node that comes back (same or new incarnation) announces itself again.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::node::Cluster;
use super::types::Request;

/// How long connections must keep being refused before a node is declared down
/// ahead of the lease.
pub const REFUSED_GRACE: Duration = Duration::from_millis(500);

/// Whether a node whose last answer was `last_ok` (refused since `refused_since`)
/// is down at `now`, for a leader that took over at `leader_since`.
pub fn is_down(
    now: Instant,
    leader_since: Instant,
    last_ok: Option<Instant>,
    refused_since: Option<Instant>,
    lease: Duration,
) -> bool {
    let last = last_ok.map_or(leader_since, |t| t.max(leader_since));
    if now.saturating_duration_since(last) > lease {
        return true;
    }
    let grace = REFUSED_GRACE.min(lease);
    refused_since.is_some_and(|r| now.saturating_duration_since(r.max(leader_since)) > grace)
}

/// The leader's liveness loop; runs on every node, acts only while it leads.
pub async fn run(cluster: Arc<Cluster>) {
    let mut shutdown = cluster.shutdown_signal();
    let mut tick = tokio::time::interval(cluster.cfg.heartbeat());
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let lease = cluster.cfg.lease();
    let mut leader_since: Option<Instant> = None;
    // Down already proposed for (node, incarnation), so a slow commit is not repeated.
    let mut proposed: HashMap<u64, u64> = HashMap::new();
    // When this leader first saw each node's current incarnation up: a restarted
    // node's lease counts from its new incarnation, not from answers its previous
    // process gave (or did not give).
    let mut seen: HashMap<u64, (u64, Instant)> = HashMap::new();
    let mut last_tick = Instant::now();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
        let woke = Instant::now();
        if woke.saturating_duration_since(last_tick) > lease / 2 {
            // this process was stalled (paused, starved): what it saw of the others
            // is stale, so leases count again from now
            tracing::info!(
                stalled_ms = woke.saturating_duration_since(last_tick).as_millis() as u64,
                "liveness check resumed after a stall"
            );
            leader_since = None;
        }
        last_tick = woke;
        prove_contact(&cluster, woke);
        if !cluster.is_leader() || cluster.is_handing_over() {
            // (a leader handing over sends no heartbeats: the silence is its own)
            leader_since = None;
            proposed.clear();
            seen.clear();
            continue;
        }
        let since = *leader_since.get_or_insert_with(Instant::now);
        let now = Instant::now();
        for (node, info) in cluster.state.nodes() {
            if node == cluster.id || !info.up || proposed.get(&node) == Some(&info.incarnation) {
                continue;
            }
            let first_seen = match seen.get(&node) {
                Some(&(inc, at)) if inc == info.incarnation => at,
                _ => {
                    seen.insert(node, (info.incarnation, now));
                    now
                }
            };
            let h = cluster.peers.health(node);
            if !is_down(now, since.max(first_seen), h.last_ok, h.refused_since, lease) {
                continue;
            }
            tracing::warn!(
                node,
                incarnation = info.incarnation,
                addr = %info.addr,
                "node unreachable beyond its lease: declaring it down"
            );
            proposed.insert(node, info.incarnation);
            let req = Request::Down { node, incarnation: info.incarnation };
            if let Err(e) = cluster.leader_write(req, cluster.cfg.propose_timeout()).await {
                tracing::warn!(node, error = ?e, "could not commit NodeDown");
                proposed.remove(&node);
            }
        }
    }
}

/// On the leader: records when a quorum of voters last acknowledged it (see
/// [`super::fence`]); a node that is the only voter is never fenced.
fn prove_contact(cluster: &Cluster, now: Instant) {
    let (voters, leader): (Vec<u64>, _) = {
        let m = cluster.raft.metrics();
        let m = m.borrow();
        (m.membership_config.membership().voter_ids().collect(), m.current_leader)
    };
    cluster.fence.set_alone(voters == [cluster.id]);
    if leader != Some(cluster.id) {
        return;
    }
    let acked =
        voters.iter().filter(|&&v| v != cluster.id).map(|&v| cluster.peers.health(v).acked_sent).collect();
    if let Some(at) = super::fence::quorum_contact(now, voters.len(), acked) {
        cluster.fence.contact(at, now, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_and_refusal_rules() {
        let t0 = Instant::now();
        let lease = Duration::from_millis(2000);
        let at = |ms| t0 + Duration::from_millis(ms);
        // Fresh leader: grace of one lease even without any answer.
        assert!(!is_down(at(1000), t0, None, None, lease));
        assert!(is_down(at(2100), t0, None, None, lease));
        // Answers keep it up.
        assert!(!is_down(at(5000), t0, Some(at(4000)), None, lease));
        // Refused connections take it down after the grace.
        assert!(!is_down(at(5300), t0, Some(at(4900)), Some(at(5000)), lease));
        assert!(is_down(at(5600), t0, Some(at(4900)), Some(at(5000)), lease));
        // Refusals count from when this leader took over at the earliest.
        assert!(!is_down(at(1000), at(600), None, Some(at(0)), lease));
        assert!(is_down(at(1200), at(600), None, Some(at(0)), lease));
    }
}
