//! This node's counters and sampled gauges for the operations layer: the
//! `/api/stats` and `junction.stats` document, built from [`crate::observe::metrics`]
//! (with call latency percentiles read from the call duration histogram), the
//! per-node document of `junction.cluster.stats` ([`node_stats`]: the counters plus
//! this node's links), and the [`Sample`] of Raft and link state that `ops` puts
//! into the gauges.

use serde_json::{Value, json};

use super::Router;
use crate::ids::NodeId;
use crate::observe::histogram::HistogramSnapshot;
use crate::observe::metrics::{TypeCounters, metrics};
use crate::observe::status::Sample;

/// `GET /api/stats`, `junction.stats`: this node's counters since it started. A
/// client gets rates from two samples and their `time_ms`. `call_latency` has the
/// p50/p90/p99 call durations since the start, in seconds (estimated from the
/// histogram, as Prometheus' `histogram_quantile` does; null before the first
/// call), and the histogram itself (`buckets`: `[upper bound, count]`, not
/// cumulative, the last bound null for +Inf), from which a client gets the
/// percentiles of an interval from two samples.
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
        "call_latency": latency(&calls),
        "events_delivered": m.events_delivered.get(),
        "events_dropped": m.events_dropped.get(),
        "slow_consumer_disconnects": m.slow_consumer_disconnects.get(),
    })
}

/// `junction.cluster.stats`, one node's part: [`stats`] plus this node's links to
/// the others (state, frames sent, dropped and missed), as in the cluster status
/// document.
pub fn node_stats(router: &Router) -> Value {
    let mut doc = stats(router);
    let links = router.replica.replicate().map(|c| c.status_document()["links"].take());
    doc["links"] = links.unwrap_or_else(|| json!([]));
    doc
}

/// The percentiles and buckets of a latency histogram (see [`stats`]).
fn latency(h: &HistogramSnapshot) -> Value {
    let q = |q: f64| percentile(h, q).map(|s| (s * 1e6).round() / 1e6);
    let buckets: Vec<Value> =
        h.buckets.iter().map(|(le, n)| json!([le.is_finite().then_some(*le), n])).collect();
    json!({ "p50": q(0.5), "p90": q(0.9), "p99": q(0.99), "buckets": buckets })
}

/// The `q` quantile of a histogram, interpolated linearly inside its bucket (the
/// first bucket starts at 0; one in the +Inf bucket is the highest finite bound).
/// `None` without observations.
pub fn percentile(h: &HistogramSnapshot, q: f64) -> Option<f64> {
    if h.count == 0 {
        return None;
    }
    let rank = q.clamp(0.0, 1.0) * h.count as f64;
    let (mut below, mut lower) = (0u64, 0.0);
    for &(upper, n) in &h.buckets {
        if n > 0 && (below + n) as f64 >= rank {
            if !upper.is_finite() {
                return Some(lower);
            }
            let into = (rank - below as f64).max(0.0) / n as f64;
            return Some(lower + (upper - lower) * into);
        }
        below += n;
        if upper.is_finite() {
            lower = upper;
        }
    }
    Some(lower)
}

/// The Raft view and link states of this node, its calls in flight and the
/// routes of each realm, for the sampled gauges.
pub fn sample(router: &Router) -> Sample {
    let mut sample = match router.replica.replicate() {
        Some(cluster) => cluster.sample(&|node| router.reachable(NodeId(node))),
        None => Sample::default(),
    };
    sample.calls_in_flight = Some(router.dealing.lock().calls_in_flight());
    sample.interest_lingering = Some(router.interest.lingering());
    for name in router.config.realms.iter().map(|r| r.name.as_str()) {
        let registrations =
            router.replica.read(|t| t.realm(name).map_or(0, |r| r.registrations.iter().count()));
        let subscriptions = router.interest.read(name, |idx| idx.iter().count());
        sample.routes.push((name.to_owned(), registrations, subscriptions));
    }
    sample
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::histogram::LatencyHistogram;

    #[test]
    fn percentiles_interpolate_inside_the_bucket() {
        let h = LatencyHistogram::default();
        assert_eq!(percentile(&h.snapshot(), 0.5), None);
        for _ in 0..90 {
            h.observe(0.0004); // (0.00025, 0.0005]
        }
        for _ in 0..10 {
            h.observe(0.02); // (0.01, 0.025]
        }
        let s = h.snapshot();
        let p50 = percentile(&s, 0.5).unwrap();
        assert!(p50 > 0.00025 && p50 <= 0.0005, "{p50}");
        let p90 = percentile(&s, 0.9).unwrap();
        assert!((p90 - 0.0005).abs() < 1e-12, "{p90}");
        let p99 = percentile(&s, 0.99).unwrap();
        assert!(p99 > 0.01 && p99 <= 0.025, "{p99}");
        h.observe(100.0);
        assert_eq!(percentile(&h.snapshot(), 1.0), Some(10.0)); // +Inf: the highest bound
        let doc = latency(&h.snapshot());
        assert_eq!(doc["buckets"].as_array().unwrap().len(), 17);
        assert_eq!(doc["buckets"][16], json!([null, 1]));
    }
}
