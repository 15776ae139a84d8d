//! A lock-free latency histogram with fixed buckets, in seconds.
//!
//! `prometheus_client`'s own histogram takes a mutex per observation; this one is
//! one bucket increment and one sum increment (relaxed atomics), cheap enough for
//! every CALL. It encodes as a Prometheus histogram and is read by the OTLP bridge.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;

/// Upper bounds of the call-latency buckets, in seconds (+Inf is implied).
pub const LATENCY_BUCKETS: [f64; 16] =
    [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

#[derive(Debug, Default)]
struct Inner {
    /// Per-bucket (not cumulative) counts; the last one is +Inf.
    counts: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    /// Sum of observations in nanoseconds.
    sum_nanos: AtomicU64,
}

/// A histogram of durations in seconds; clones share the same counts.
#[derive(Clone, Debug, Default)]
pub struct LatencyHistogram(Arc<Inner>);

/// A consistent-enough copy of a histogram.
#[derive(Clone, Debug, PartialEq)]
pub struct HistogramSnapshot {
    /// Sum of observations, seconds.
    pub sum: f64,
    /// Number of observations.
    pub count: u64,
    /// (upper bound, count in this bucket), not cumulative; the last bound is +Inf.
    pub buckets: Vec<(f64, u64)>,
}

impl LatencyHistogram {
    /// Records one observation, in seconds.
    pub fn observe(&self, secs: f64) {
        let secs = if secs.is_finite() && secs > 0.0 { secs } else { 0.0 };
        let i = LATENCY_BUCKETS.iter().position(|b| secs <= *b).unwrap_or(LATENCY_BUCKETS.len());
        self.0.counts[i].fetch_add(1, Ordering::Relaxed);
        self.0.sum_nanos.fetch_add((secs * 1e9) as u64, Ordering::Relaxed);
    }

    /// The current counts.
    pub fn snapshot(&self) -> HistogramSnapshot {
        let bounds = LATENCY_BUCKETS.iter().copied().chain(std::iter::once(f64::INFINITY));
        let buckets: Vec<(f64, u64)> =
            bounds.zip(self.0.counts.iter()).map(|(b, c)| (b, c.load(Ordering::Relaxed))).collect();
        HistogramSnapshot {
            sum: self.0.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9,
            count: buckets.iter().map(|(_, c)| c).sum(),
            buckets,
        }
    }
}

impl EncodeMetric for LatencyHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let s = self.snapshot();
        encoder.encode_histogram::<NoLabelSet>(s.sum, s.count, &s.buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_their_bucket() {
        let h = LatencyHistogram::default();
        h.observe(0.0002);
        h.observe(0.003);
        h.observe(100.0);
        h.observe(f64::NAN);
        let s = h.snapshot();
        assert_eq!(s.count, 4);
        assert_eq!(s.buckets[0], (0.0001, 1)); // NaN counts as 0
        assert_eq!(s.buckets[1], (0.00025, 1));
        assert_eq!(s.buckets[5], (0.005, 1));
        assert_eq!(s.buckets.last().copied(), Some((f64::INFINITY, 1)));
        assert!((s.sum - 100.0032).abs() < 1e-6);
    }
}
