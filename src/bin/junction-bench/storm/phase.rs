//! One phase of the storm (the setup, or the storm itself): every session is a task
//! that establishes itself (see [`super::session`]); the phase collects the
//! connections, each session's own time, and when each completed after the start.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::task::JoinSet;

use super::session::{Plan, establish};
use crate::client::Conn;
use crate::stats::{self, new_hist};

/// What a phase produced.
pub struct PhaseResult {
    /// The sessions that got all their subscriptions, with their indexes.
    pub conns: Vec<(usize, Conn)>,
    /// Sessions that gave up at the deadline.
    pub failed: u64,
    /// The first reason a session gave up.
    pub first_error: Option<String>,
    /// From the start to the last session's last SUBSCRIBED.
    pub seconds: f64,
    /// Per session: its first connection attempt to its last SUBSCRIBED (ns).
    pub took: Histogram<u64>,
    /// Per session: the start to its last SUBSCRIBED (ns).
    pub completed: Histogram<u64>,
    /// Connection attempts made, over all sessions.
    pub attempts: u64,
}

/// Runs sessions `0..n` of `plan` at once; `start` is the instant times count from.
pub async fn run(plan: Arc<Plan>, n: usize, start: Instant, what: &str, quiet: bool) -> PhaseResult {
    let mut set = JoinSet::new();
    for i in 0..n {
        let plan = plan.clone();
        set.spawn(async move { (establish(&plan, i).await, start.elapsed()) });
    }
    let bar = stats::progress_bar(n as u64, quiet);
    bar.set_message(what.to_owned());
    let mut r = PhaseResult {
        conns: Vec::with_capacity(n),
        failed: 0,
        first_error: None,
        seconds: 0.0,
        took: new_hist(),
        completed: new_hist(),
        attempts: 0,
    };
    let mut last = Duration::ZERO;
    while let Some(joined) = set.join_next().await {
        match joined {
            Ok((Ok(e), at)) => {
                last = last.max(at);
                r.took.saturating_record(e.took.as_nanos() as u64);
                r.completed.saturating_record(at.as_nanos() as u64);
                r.attempts += u64::from(e.attempts);
                r.conns.push((e.index, e.conn));
            }
            Ok((Err(e), _)) => {
                r.failed += 1;
                r.first_error.get_or_insert(e.to_string());
            }
            Err(e) => {
                r.failed += 1;
                r.first_error.get_or_insert(e.to_string());
            }
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    r.seconds = last.as_secs_f64();
    r
}
