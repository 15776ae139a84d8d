//! Gauges that are sampled rather than updated as things happen: Raft state, link
//! states and outbound queue depth, read from the router this process runs.
//!
//! [`attach`] hands the running router to the ops layer (the admin API reads it
//! too). Sampling happens on demand: before each `/metrics` scrape and when the
//! OTLP exporter collects, at most every [`MIN_INTERVAL_MS`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Instant;

use super::health;
use crate::observe::metrics::{RaftSample, metrics};
use crate::router::Router;
use crate::router::handle::SessionHandle;

/// Samples closer together than this reuse the previous one.
pub const MIN_INTERVAL_MS: u64 = 250;

/// Reads one session's outbound queue depth: (frames, bytes).
pub type QueueProbe = fn(&SessionHandle) -> (usize, usize);

static ROUTER: OnceLock<Weak<Router>> = OnceLock::new();
static QUEUE_PROBE: OnceLock<QueueProbe> = OnceLock::new();
static LAST_SAMPLE_MS: AtomicU64 = AtomicU64::new(0);

fn epoch() -> &'static Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now)
}

/// Hands the running router to the ops layer (once per process).
pub fn attach(router: &Arc<Router>) {
    if ROUTER.set(Arc::downgrade(router)).is_err() {
        tracing::debug!("a router was already attached to the ops layer");
    }
}

/// The router this process runs, once attached and while it lives.
pub fn router() -> Option<Arc<Router>> {
    ROUTER.get()?.upgrade()
}

/// Installs the function that reads a session's outbound queue depth, so
/// `junction_outbound_queue_*` can be sampled.
pub fn set_queue_probe(probe: QueueProbe) {
    QUEUE_PROBE.set(probe).ok();
}

/// Samples now unless a sample was taken less than [`MIN_INTERVAL_MS`] ago.
pub fn maybe_refresh() {
    let now = epoch().elapsed().as_millis() as u64 + MIN_INTERVAL_MS;
    let last = LAST_SAMPLE_MS.load(Ordering::Relaxed);
    if now.saturating_sub(last) < MIN_INTERVAL_MS {
        return;
    }
    if LAST_SAMPLE_MS.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_ok() {
        refresh();
    }
}

/// Samples the router's state into the gauges.
pub fn refresh() {
    let m = metrics();
    let router = router();
    m.ready.set(i64::from(health::check_now(router.as_deref()).is_ok()));
    m.draining.set(i64::from(health::draining()));
    let Some(router) = router else { return };
    if let Some(cluster) = router.replica.cluster() {
        let s = crate::cluster::status::build(cluster);
        m.set_raft(&RaftSample {
            term: s.term,
            leader: s.leader_id,
            is_leader: s.leader_id != 0 && s.leader_id == s.node_id,
            last_log_index: s.last_log_index,
            commit_index: s.committed_index,
            // The state machine's own index: openraft's metrics may trail it.
            applied_index: cluster.replicated().applied_index().map_or(s.applied_index, |i| i as i64),
            members: s.members.iter().filter(|n| n.role != "gone").count() as i64,
            voters: s.members.iter().filter(|n| n.role == "voter").count() as i64,
        });
        if s.links.is_empty() {
            // No link reporter installed: "not known to be broken" per member.
            for peer in s.members.iter().filter(|n| n.node_id != s.node_id && n.role != "gone") {
                m.set_link_up(peer.node_id, router.reachable(crate::ids::NodeId(peer.node_id)));
            }
        }
        for l in &s.links {
            m.set_link_up(l.node_id, l.state == "up");
        }
    }
    if let Some(probe) = QUEUE_PROBE.get() {
        let (mut bytes, mut max_frames) = (0u64, 0u64);
        for name in router.config.realms.iter().map(|r| &r.name) {
            let Some(realm) = router.realm(name) else { continue };
            for s in realm.sessions.iter() {
                let (f, b) = probe(s.value());
                bytes += b as u64;
                max_frames = max_frames.max(f as u64);
            }
        }
        m.set_outbound_queue(bytes, max_frames);
    }
}
