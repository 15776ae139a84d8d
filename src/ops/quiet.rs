//! OTLP exporters that do not flood the log when the collector is away.
//!
//! The SDK logs an ERROR for every failed export — one per batch of spans and one
//! per metric interval, forever, while no collector listens. [`Quiet`] wraps the
//! OTLP exporters instead: the first failure of a kind is one WARN line, the same
//! failure again within [`SUMMARY_EVERY`] is only counted, and after that a summary
//! says how many failed meanwhile; once an export succeeds again, one INFO line
//! says so. The SDK is told every export succeeded, so it logs nothing itself (the
//! data of a failed export is dropped either way).

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::metrics::Temporality;
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};

/// The same failure is logged again (as a summary) at most this often.
pub const SUMMARY_EVERY: Duration = Duration::from_secs(300);

/// Distinct failures remembered at once; more and the oldest are forgotten.
const KINDS: usize = 16;

/// How often one failure was seen since it was last logged.
#[derive(Debug)]
struct Seen {
    logged: Instant,
    since: u64,
}

/// An exporter of `signal` ("traces", "metrics") whose failures are logged
/// sparingly.
#[derive(Debug)]
pub struct Quiet<E> {
    inner: E,
    signal: &'static str,
    failures: Mutex<HashMap<String, Seen>>,
}

impl<E> Quiet<E> {
    /// Wraps `inner`.
    pub fn new(signal: &'static str, inner: E) -> Quiet<E> {
        Quiet { inner, signal, failures: Mutex::new(HashMap::new()) }
    }

    fn outcome(&self, result: OTelSdkResult) -> OTelSdkResult {
        match result {
            Ok(()) => self.succeeded(),
            Err(OTelSdkError::AlreadyShutdown) => return result,
            Err(e) => {
                self.failed(&e.to_string(), Instant::now());
            }
        }
        Ok(())
    }

    /// Logs a failure unless the same one was logged less than
    /// [`SUMMARY_EVERY`] ago; returns whether it logged.
    fn failed(&self, error: &str, now: Instant) -> bool {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let key = kind(error);
        match failures.get_mut(&key) {
            Some(seen) if now.duration_since(seen.logged) < SUMMARY_EVERY => {
                seen.since += 1;
                false
            }
            Some(seen) => {
                let (n, secs) = (seen.since + 1, now.duration_since(seen.logged).as_secs());
                tracing::warn!(
                    signal = self.signal,
                    failed = n,
                    "OTLP {} export still failing: {n} exports failed in the last {secs} s: {error}",
                    self.signal
                );
                *seen = Seen { logged: now, since: 0 };
                true
            }
            None => {
                if failures.len() >= KINDS
                    && let Some(oldest) =
                        failures.iter().min_by_key(|(_, s)| s.logged).map(|(k, _)| k.clone())
                {
                    failures.remove(&oldest);
                }
                tracing::warn!(
                    signal = self.signal,
                    "OTLP {} export failed: {error} (the same failure is summarized every {} s)",
                    self.signal,
                    SUMMARY_EVERY.as_secs()
                );
                failures.insert(key, Seen { logged: now, since: 0 });
                true
            }
        }
    }

    fn succeeded(&self) {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if !failures.is_empty() {
            failures.clear();
            tracing::info!(signal = self.signal, "OTLP {} export works again", self.signal);
        }
    }
}

/// A failure's kind: its message without numbers (ports, durations, error codes
/// vary between otherwise identical failures), at most 200 characters.
fn kind(error: &str) -> String {
    error.chars().filter(|c| !c.is_ascii_digit()).take(200).collect()
}

impl<E: SpanExporter> SpanExporter for Quiet<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let result = self.inner.export(batch).await;
        self.outcome(result)
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &opentelemetry_sdk::Resource) {
        self.inner.set_resource(resource);
    }
}

impl<E: PushMetricExporter + Debug> PushMetricExporter for Quiet<E> {
    async fn export(&self, metrics: &ResourceMetrics) -> OTelSdkResult {
        let result = self.inner.export(metrics).await;
        self.outcome(result)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn temporality(&self) -> Temporality {
        self.inner.temporality()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_is_logged_once_then_summarized() {
        let q = Quiet::new("metrics", ());
        let t0 = Instant::now();
        let refused = "gRPC code: Unavailable: tcp connect error: Connection refused (os error 111)";
        assert!(q.failed(refused, t0));
        assert!(!q.failed(refused, t0 + Duration::from_secs(1)));
        assert!(!q.failed(&refused.replace("111", "61"), t0 + Duration::from_secs(2)), "numbers differ");
        assert!(q.failed("gRPC code: Unimplemented", t0 + Duration::from_secs(3)), "another failure");
        assert!(q.failed(refused, t0 + SUMMARY_EVERY), "the summary");
        assert!(!q.failed(refused, t0 + SUMMARY_EVERY + Duration::from_secs(1)));
        q.succeeded();
        assert!(
            q.failed(refused, t0 + SUMMARY_EVERY + Duration::from_secs(2)),
            "failing again after a success"
        );
    }
}
