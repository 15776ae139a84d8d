//! This node's counters and sampled gauges for the operations layer: the
//! `/api/stats` and `junction.stats` document, built from [`crate::observe::metrics`],
//! and the [`Sample`] of Raft and link state that `ops` puts into the gauges.

use prometheus_client::metrics::counter::Counter;
use serde_json::{Value, json};

use super::Router;
use crate::ids::NodeId;
use crate::observe::metrics::{MESSAGE_TYPES, metrics};
use crate::observe::status::Sample;

/// `GET /api/stats`, `junction.stats`: this node's counters since it started. A
/// client gets rates from two samples and their `time_ms`.
pub fn stats(router: &Router) -> Value {
    let m = metrics();
    let types = MESSAGE_TYPES.iter().map(|t| t.1).chain(std::iter::once("other"));
    let by_type = |counters: &[Counter]| {
        let mut out = serde_json::Map::new();
        for (name, c) in types.clone().zip(counters) {
            if c.get() > 0 {
                out.insert(name.to_owned(), c.get().into());
            }
        }
        out
    };
    let total = |counters: &[Counter]| -> u64 { counters.iter().map(|c| c.get()).sum() };
    let calls = m.call_latency.snapshot();
    let now_ms = super::now_ms();
    let started_ms = u64::try_from(m.start_time.get()).unwrap_or(0).saturating_mul(1000);
    json!({
        "node": router.node.0,
        "time_ms": now_ms,
        "uptime_ms": now_ms.saturating_sub(started_ms),
        "sessions": router.session_count(),
        "messages_in": total(&m.messages_in),
        "messages_out": total(&m.messages_out),
        "messages_in_by_type": by_type(&m.messages_in),
        "messages_out_by_type": by_type(&m.messages_out),
        "calls_completed": calls.count,
        "call_seconds_total": calls.sum,
        "events_delivered": m.events_delivered.get(),
        "events_dropped": m.events_dropped.get(),
        "slow_consumer_disconnects": m.slow_consumer_disconnects.get(),
    })
}

/// The Raft view and link states of this node, for the sampled gauges.
pub fn sample(router: &Router) -> Sample {
    let Some(cluster) = router.replica.replicate() else { return Sample::default() };
    cluster.sample(&|node| router.reachable(NodeId(node)))
}
