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

use super::network::Health;
use super::node::Cluster;
use super::types::{Nodes, Request};

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

/// What the leader's liveness check remembers between ticks: when it first saw
/// each node's current incarnation up. Plain data, so its rules are tested on a
/// virtual clock.
///
/// A node the table has down is forgotten: if it comes back — with a new
/// incarnation, or with the same one after a partition healed and it announced
/// itself again — its lease counts from when it was seen up again, and it is
/// declared down again when it goes silent again. (An earlier version kept the
/// `(node, incarnation)` pairs it had declared down for the whole leadership, so a
/// node that came back with the same incarnation and was then killed was never
/// declared down again — its callees and testaments waited for the next election.)
#[derive(Debug, Default)]
pub struct Watch {
    seen: HashMap<u64, (u64, Instant)>,
}

impl Watch {
    /// The nodes, with the incarnation to declare down, that are down at `now` for
    /// a leader whose leases count from `since`; `me` is this node.
    pub fn due(
        &mut self,
        now: Instant,
        since: Instant,
        lease: Duration,
        me: u64,
        nodes: &Nodes,
        health: impl Fn(u64) -> Health,
    ) -> Vec<(u64, u64)> {
        let mut due = Vec::new();
        for (&node, info) in nodes {
            if node == me {
                continue;
            }
            if !info.up {
                self.seen.remove(&node);
                continue;
            }
            let first_seen = match self.seen.get(&node) {
                Some(&(inc, at)) if inc == info.incarnation => at,
                _ => {
                    self.seen.insert(node, (info.incarnation, now));
                    now
                }
            };
            let h = health(node);
            if is_down(now, since.max(first_seen), h.last_ok, h.refused_since, lease) {
                due.push((node, info.incarnation));
            }
        }
        due
    }

    /// This node stopped leading: the next leadership watches afresh.
    pub fn clear(&mut self) {
        self.seen.clear();
    }
}

/// The leader's liveness loop; runs on every node, acts only while it leads.
pub async fn run(cluster: Arc<Cluster>) {
    let mut shutdown = cluster.shutdown_signal();
    let mut tick = tokio::time::interval(cluster.cfg.heartbeat());
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let lease = cluster.cfg.lease();
    let mut leader_since: Option<Instant> = None;
    let mut watch = Watch::default();
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
            watch.clear();
            continue;
        }
        let since = *leader_since.get_or_insert_with(Instant::now);
        let now = Instant::now();
        let nodes = cluster.state.nodes();
        // Each write returns once the leader applied it (the node shows down at the
        // next tick) or failed (tried again at the next tick: a Down applied twice
        // is a no-op).
        for (node, incarnation) in
            watch.due(now, since, lease, cluster.id, &nodes, |n| cluster.peers.health(n))
        {
            let addr = nodes.get(&node).map(|i| i.addr.as_str()).unwrap_or_default();
            tracing::warn!(node, incarnation, addr, "node unreachable beyond its lease: declaring it down");
            let req = Request::Down { node, incarnation };
            if let Err(e) = cluster.leader_write(req, cluster.cfg.propose_timeout()).await {
                tracing::warn!(node, error = ?e, "could not commit NodeDown");
            }
        }
    }
}

/// On the leader: records when a quorum of voters last acknowledged it (see
/// [`super::fence`]); a node that is the only voter is never fenced.
pub(crate) fn prove_contact(cluster: &Cluster, now: Instant) {
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
    use crate::cluster::types::NodeInfo;

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

    fn table(entries: &[(u64, u64, bool)]) -> Nodes {
        entries
            .iter()
            .map(|&(id, incarnation, up)| {
                (id, NodeInfo { addr: format!("10.0.0.{id}:7000"), incarnation, up })
            })
            .collect()
    }

    #[test]
    fn a_node_back_with_the_same_incarnation_is_declared_down_again_when_it_goes_silent() {
        let t0 = Instant::now();
        let lease = Duration::from_millis(2000);
        let at = |ms| t0 + Duration::from_millis(ms);
        let answered = |ms| move |_| Health { last_ok: Some(at(ms)), ..Health::default() };
        let mut watch = Watch::default();
        let up = table(&[(1, 10, true), (2, 20, true), (3, 30, true)]);
        assert!(watch.due(at(1000), t0, lease, 1, &up, answered(900)).is_empty());
        // node 3 is cut off: silent beyond the lease
        let silent = |n| {
            if n == 3 { Health { last_ok: Some(at(1000)), ..Health::default() } } else { answered(4000)(n) }
        };
        assert_eq!(watch.due(at(3500), t0, lease, 1, &up, silent), vec![(3, 30)]);
        // the Down is applied; the partition heals and node 3 announces itself again
        let down = table(&[(1, 10, true), (2, 20, true), (3, 30, false)]);
        assert!(watch.due(at(4000), t0, lease, 1, &down, answered(4000)).is_empty());
        assert!(watch.due(at(9000), t0, lease, 1, &up, answered(9000)).is_empty());
        // then it is killed: every connection refused
        let killed = |n| {
            if n == 3 {
                Health { last_ok: Some(at(9000)), refused_since: Some(at(9100)), ..Health::default() }
            } else {
                answered(9800)(n)
            }
        };
        assert!(watch.due(at(9500), t0, lease, 1, &up, killed).is_empty());
        assert_eq!(watch.due(at(9700), t0, lease, 1, &up, killed), vec![(3, 30)]);
    }

    #[test]
    fn a_node_seen_up_again_is_judged_from_then_not_from_its_silence_before() {
        let t0 = Instant::now();
        let lease = Duration::from_millis(2000);
        let at = |ms| t0 + Duration::from_millis(ms);
        let never = |_| Health::default();
        let mut watch = Watch::default();
        assert!(watch.due(at(0), t0, lease, 1, &table(&[(2, 20, true)]), never).is_empty());
        assert!(watch.due(at(1000), t0, lease, 1, &table(&[(2, 20, false)]), never).is_empty());
        // up again at 5 s (same incarnation): its lease counts from then
        assert!(watch.due(at(5000), t0, lease, 1, &table(&[(2, 20, true)]), never).is_empty());
        assert!(watch.due(at(6500), t0, lease, 1, &table(&[(2, 20, true)]), never).is_empty());
        assert_eq!(watch.due(at(7100), t0, lease, 1, &table(&[(2, 20, true)]), never), vec![(2, 20)]);
        // a new incarnation is judged from when it was first seen, too
        assert!(watch.due(at(7200), t0, lease, 1, &table(&[(2, 21, true)]), never).is_empty());
        assert_eq!(watch.due(at(9300), t0, lease, 1, &table(&[(2, 21, true)]), never), vec![(2, 21)]);
    }
}
