//! The graceful shutdown's time budget: every step after SIGTERM has a bound, their
//! sum is the longest a shutdown can take ([`budget`]), logged at start so an
//! operator can check it against Kubernetes' `terminationGracePeriodSeconds` (minus
//! the `preStop` sleep), and enforced by a watchdog ([`watchdog`]) that ends the
//! process if the steps somehow overrun it.
//!
//! Steps, in order: readiness 503 before anything else (`[admin] drain_delay_ms`);
//! this node's registrations withdrawn from the cluster (all at once, batched, within
//! one `[cluster] propose_timeout_ms`); invocations served here finish
//! (`[limits] drain_timeout_ms`); GOODBYE answered (`[limits] shutdown_grace_ms` +
//! 0.5 s); the node leaves the cluster ([`LEAVE`]); traces and metrics flushed to the
//! OTLP collector ([`telemetry::SHUTDOWN_TIMEOUT`] each).

use std::time::Duration;

use super::telemetry;
use crate::config::Config;

/// The bound on leaving the cluster: the departure announced (1 s) and Raft stopped.
pub const LEAVE: Duration = Duration::from_secs(3);

/// Added to the GOODBYE grace: the last replies in flight.
const GOODBYE_SLACK: Duration = Duration::from_millis(500);

/// Each step of a graceful shutdown with its bound.
#[derive(Debug, Clone, PartialEq)]
pub struct Budget {
    /// (step, bound), in order.
    pub steps: Vec<(&'static str, Duration)>,
}

impl Budget {
    /// The longest the whole shutdown can take.
    pub fn total(&self) -> Duration {
        self.steps.iter().map(|(_, d)| *d).sum()
    }

    /// The bound of one step.
    pub fn step(&self, name: &str) -> Duration {
        self.steps.iter().find(|(n, _)| *n == name).map_or(Duration::ZERO, |(_, d)| *d)
    }
}

/// The shutdown budget of a node configured by `cfg` that sends `exporters` OTLP
/// exporters' data (traces, metrics: each flushed at exit) to a collector.
pub fn budget(cfg: &Config, exporters: u32) -> Budget {
    let ms = Duration::from_millis;
    let flush = telemetry::SHUTDOWN_TIMEOUT * exporters;
    Budget {
        steps: vec![
            ("readiness 503 before draining", ms(cfg.admin.drain_delay_ms)),
            ("registrations withdrawn", cfg.cluster.propose_timeout()),
            ("invocations finish", ms(cfg.limits.drain_timeout_ms)),
            ("GOODBYE answered", ms(cfg.limits.shutdown_grace_ms) + GOODBYE_SLACK),
            ("cluster left", LEAVE),
            ("telemetry flushed", flush),
        ],
    }
}

/// Ends the process (exit code 1) if the shutdown that starts now is not over
/// within `budget` plus a second: a step that overran its bound must not let the
/// container be SIGKILLed mid-way with nothing logged.
pub fn watchdog(budget: &Budget) {
    let limit = budget.total() + Duration::from_secs(1);
    std::thread::Builder::new()
        .name("shutdown-watchdog".into())
        .spawn(move || {
            std::thread::sleep(limit);
            eprintln!("junction: shutdown overran its budget of {} ms; exiting", limit.as_millis());
            std::process::exit(1);
        })
        .ok();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shutdown_budget_is_the_sum_of_its_bounded_steps() {
        let cfg = Config::from_toml(
            "[admin]\ndrain_delay_ms = 500\n[limits]\ndrain_timeout_ms = 10000\nshutdown_grace_ms = 2000\n",
        )
        .expect("valid");
        let b = budget(&cfg, 2);
        assert_eq!(b.step("invocations finish"), Duration::from_secs(10));
        assert_eq!(b.step("GOODBYE answered"), Duration::from_millis(2500));
        assert_eq!(b.step("telemetry flushed"), telemetry::SHUTDOWN_TIMEOUT * 2);
        let sum = Duration::from_millis(500 + 3000 + 10_000 + 2500) + LEAVE + telemetry::SHUTDOWN_TIMEOUT * 2;
        assert_eq!(b.total(), sum);
        assert_eq!(budget(&cfg, 0).total(), sum - telemetry::SHUTDOWN_TIMEOUT * 2);
        assert_eq!(budget(&cfg, 1).total(), sum - telemetry::SHUTDOWN_TIMEOUT);
    }
}
