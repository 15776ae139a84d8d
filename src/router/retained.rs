//! Retained events (PUBLISH.Options.retain), owned by the publishing node and
//! replicated on the links (cluster design v2), not through Raft: retaining an event
//! needs no quorum.
//!
//! - PUBLISH with `retain` on node A stamps the event with A's hybrid clock and
//!   A's id, keeps it here, and sends one `Retained` frame to every node up. Every
//!   node merges what it gets into its own copy, per realm: last writer wins by the
//!   stamp, bounded by `limits.max_retained_events` / `max_retained_bytes` with the
//!   oldest dropped first ([`crate::broker::retained`]). With `acknowledge`, PUBLISHED
//!   waits (at most [`super::interest::ACK_LIMIT`]) until every node up applied the
//!   event, as it waited for the Raft commit before: an acknowledged retained event
//!   survives the loss of its publisher's node.
//! - Whenever a link (re)connects, the node sends every retained event it keeps —
//!   its own and those it learned — so a restarted or new node, or one that missed
//!   frames while a link was broken, catches up. A node's retained events are not
//!   dropped with the node: other nodes keep serving them.
//! - A new subscriber with `get_retained` on any node gets, from that node's copy,
//!   the newest retained event of every topic it matches.
//!
//! Frames arrive in any order and more than once (a full set after every
//! reconnect); the merge makes that harmless.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::Router;
use super::handle::lock;
use super::interest::AckWait;
use super::realm::Realm;
use crate::broker::plan;
use crate::broker::retained::{Bounds, Clock, Offered, RetainedEvent, RetainedSet, Stamp};
use crate::ids::NodeId;
use crate::link::LinkMsg;
use crate::wamp::uri::MatchPolicy;

/// How often the retained events are offered again to nodes that have not had them.
const SYNC_EVERY: Duration = Duration::from_millis(500);

/// The retained events this node keeps, of every node.
#[derive(Default)]
pub struct RetainedEvents {
    realms: Mutex<HashMap<String, RetainedSet>>,
    clock: Mutex<Clock>,
    /// Nodes that have every retained event of this node (since their link last connected).
    synced: Mutex<HashSet<NodeId>>,
}

/// Microseconds since the Unix epoch.
fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// The bounds of a realm's retained events.
fn bounds(router: &Router) -> Bounds {
    let l = &router.config.limits;
    Bounds { max_events: l.max_retained_events as u64, max_bytes: l.max_retained_bytes as u64 }
}

/// The parts of a retained event a publication gives.
pub struct Publication {
    /// The publication id.
    pub publication: u64,
    /// EVENT.Details common to all subscribers, neutral-encoded.
    pub details: Vec<u8>,
    /// Args and kwargs, neutral-encoded.
    pub payload: Vec<u8>,
    /// Black/white listing rules, neutral-encoded.
    pub audience: Vec<u8>,
}

/// The event is larger than `limits.max_retained_bytes` by itself.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("larger than {0} bytes (limits.max_retained_bytes)")]
pub struct TooLarge(pub u64);

impl RetainedEvents {
    /// Keeps a publication of this node as the retained event of `topic` and sends
    /// it to every node up; with `acknowledged`, returns the acknowledgements to wait
    /// for (see [`super::interest::Interest::finished`]).
    pub fn publish(
        &self,
        router: &Router,
        realm: &Realm,
        topic: &str,
        p: Publication,
        acknowledged: bool,
    ) -> Result<Option<Arc<AckWait>>, TooLarge> {
        let time_us = lock(&self.clock).tick(now_us());
        let event = RetainedEvent {
            stamp: Stamp { time_us, node: router.node },
            publication: p.publication,
            details: p.details,
            payload: p.payload,
            audience: p.audience,
        };
        let bounds = bounds(router);
        if event.size(topic) > bounds.max_bytes {
            return Err(TooLarge(bounds.max_bytes));
        }
        let offered =
            lock(&self.realms).entry(realm.name.clone()).or_default().offer(topic, event.clone(), bounds);
        if offered != Offered::Kept {
            return Ok(None);
        }
        let frame = |seq| LinkMsg::Retained {
            realm: realm.name.clone(),
            topic: topic.to_owned(),
            event: event.clone(),
            seq,
        };
        if acknowledged {
            return Ok(Some(router.interest.announce(router, frame)));
        }
        for node in router.replica.peers(router.node) {
            if let Err(e) = router.send_link(node, frame(0)) {
                tracing::debug!(error = %e, "retained event not sent; the node gets it when its link reconnects");
            }
        }
        Ok(None)
    }

    /// Merges a retained event another node sent.
    pub fn on_retained(&self, router: &Router, realm: &str, topic: &str, event: RetainedEvent) {
        if router.realm(realm).is_none() {
            tracing::debug!(%realm, "retained event of a realm not served here dropped");
            return;
        }
        lock(&self.clock).observe(event.stamp.time_us);
        lock(&self.realms).entry(realm.to_owned()).or_default().offer(topic, event, bounds(router));
    }

    /// The retained events of `realm` a subscription of `(pattern, policy)` matches.
    pub fn matching(&self, realm: &str, pattern: &str, policy: MatchPolicy) -> Vec<(String, RetainedEvent)> {
        let realms = lock(&self.realms);
        let Some(set) = realms.get(realm) else { return Vec::new() };
        let matching = plan::retained_matching(set.events(), pattern, policy);
        matching.into_iter().map(|(t, e)| (t.to_owned(), e.clone())).collect()
    }

    /// Sends `node` every retained event kept here; true when all were queued.
    pub fn sync_to(&self, router: &Router, node: NodeId) -> bool {
        let all: Vec<(String, String, RetainedEvent)> = {
            let realms = lock(&self.realms);
            realms
                .iter()
                .flat_map(|(realm, set)| {
                    set.events().iter().map(|(topic, e)| (realm.clone(), topic.clone(), e.clone()))
                })
                .collect()
        };
        for (realm, topic, event) in all {
            if router.send_link(node, LinkMsg::Retained { realm, topic, event, seq: 0 }).is_err() {
                lock(&self.synced).remove(&node);
                return false;
            }
        }
        lock(&self.synced).insert(node);
        true
    }

    /// The link to `node` broke: it gets every retained event again once it is back.
    pub fn forget(&self, node: NodeId) {
        lock(&self.synced).remove(&node);
    }

    /// The nodes up that have not had every retained event of this node yet.
    fn unsynced(&self, router: &Router) -> Vec<NodeId> {
        let synced = lock(&self.synced);
        let peers = router.replica.peers(router.node).into_iter();
        peers.filter(|n| !synced.contains(n) && router.reachable(*n)).collect()
    }
}

/// Offers the retained events to every node up that has not had them (a sync cut
/// short by a full queue, a node never connected), until the router is gone.
pub async fn keep_synced(router: std::sync::Weak<Router>) {
    loop {
        tokio::time::sleep(SYNC_EVERY).await;
        let Some(r) = router.upgrade() else { return };
        for node in r.retained.unsynced(&r) {
            r.retained.sync_to(&r, node);
        }
    }
}
