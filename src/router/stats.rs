//! This node's counters and sampled gauges for the operations layer: the
//! `/api/stats` and `junction.stats` document, built from [`crate::observe::metrics`],
//! and the [`Sample`] of Raft and link state that `ops` puts into the gauges.

use serde_json::{Value, json};

use super::Router;
use crate::ids::NodeId;
use crate::observe::metrics::{TypeCounters, metrics};
use crate::observe::status::Sample;

/// `GET /api/stats`, `junction.stats`: this node's counters since it started. A
/// client gets rates from two samples and their `time_ms`.
pub fn stats(router: &Router) -> Value {
    let m = metrics();
    let by_type = |counters: &TypeCounters| {
        let mut out = serde_json::Map::new();
        for (name, n) in counters.counts().filter(|(_, n)| *n > 0) {
            out.insert(name.to_owned(), n.into());
        }
        out
    };
    let calls = m.call_latency.snapshot();
    let now_ms = super::now_ms();
    let started_ms = u64::try_from(m.start_time.get()).unwrap_or(0).saturating_mul(1000);
    json!({
        "node": router.node.0,
        "time_ms": now_ms,
        "uptime_ms": now_ms.saturating_sub(started_ms),
        "sessions": router.session_count(),
        "messages_in": m.messages_in.total(),
        "messages_out": m.messages_out.total(),
        "messages_in_by_type": by_type(&m.messages_in),
        "messages_out_by_type": by_type(&m.messages_out),
        "calls_completed": calls.count,
        "call_seconds_total": calls.sum,
        "events_delivered": m.events_delivered.get(),
        "events_dropped": m.events_dropped.get(),
        "slow_consumer_disconnects": m.slow_consumer_disconnects.get(),
    })
}

/// The Raft view and link states of this node, its calls in flight and the
/// routes of each realm, for the sampled gauges.
pub fn sample(router: &Router) -> Sample {
    let mut sample = match router.replica.replicate() {
        Some(cluster) => cluster.sample(&|node| router.reachable(NodeId(node))),
        None => Sample::default(),
    };
    sample.calls_in_flight = Some(router.dealing.lock().calls_in_flight());
    for name in router.config.realms.iter().map(|r| r.name.as_str()) {
        let registrations =
            router.replica.read(|t| t.realm(name).map_or(0, |r| r.registrations.iter().count()));
        let subscriptions = router.interest.read(name, |idx| idx.iter().count());
        sample.routes.push((name.to_owned(), registrations, subscriptions));
    }
    sample
}
