//! Gauges that are sampled rather than updated as things happen: readiness, the
//! drain flag, Raft state, link states, calls in flight and each realm's
//! registrations and subscriptions, read from the router this process runs through
//! its [`StatusSource`]; and the process's own memory, CPU time and file descriptors.
//!
//! [`attach`] hands the running router to the ops layer (the admin API reads it
//! too). Sampling happens on demand: before each `/metrics` scrape and when the
//! OTLP exporter collects, at most every [`MIN_INTERVAL_MS`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Instant;

use crate::observe::metrics::metrics;
use crate::observe::status::{NotReady, Readiness, StatusSource};

/// Samples closer together than this reuse the previous one.
pub const MIN_INTERVAL_MS: u64 = 250;

static SOURCE: OnceLock<Weak<dyn StatusSource>> = OnceLock::new();
static LAST_SAMPLE_MS: AtomicU64 = AtomicU64::new(0);

fn epoch() -> &'static Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now)
}

/// Hands the running router to the ops layer (once per process).
pub fn attach(source: &Arc<dyn StatusSource>) {
    if SOURCE.set(Arc::downgrade(source)).is_err() {
        tracing::debug!("a router was already attached to the ops layer");
    }
}

/// The router this process runs, once attached and while it lives.
pub fn source() -> Option<Arc<dyn StatusSource>> {
    SOURCE.get()?.upgrade()
}

/// The readiness verdict before a router is attached.
pub fn not_started() -> NotReady {
    NotReady("starting: not joined to the cluster yet".into())
}

/// The readiness verdict without waiting.
pub fn readiness_now(source: Option<&dyn StatusSource>) -> Readiness {
    source.map_or_else(|| Err(not_started()), |s| s.readiness_now())
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
    m.sample_process();
    let source = source();
    m.ready.set(i64::from(readiness_now(source.as_deref()).is_ok()));
    m.draining.set(i64::from(source.as_ref().is_some_and(|s| s.draining())));
    let Some(source) = source else { return };
    let sample = source.sample();
    if let Some(raft) = &sample.raft {
        m.set_raft(raft);
    }
    for (peer, up) in sample.links {
        m.set_link_up(peer, up);
    }
    if let Some(n) = sample.calls_in_flight {
        m.calls_in_flight.set(n as i64);
    }
    if let Some(n) = sample.interest_lingering {
        m.interest_lingering.set(n as i64);
    }
    for (realm, registrations, subscriptions) in &sample.routes {
        m.set_routes(realm, *registrations, *subscriptions);
    }
}
