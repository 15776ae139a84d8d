//! Measurement plumbing shared by the scenarios: the run phase (warm-up, measure,
//! drain) every worker reads, a monotonic nanosecond clock, latency histograms and
//! their percentile summary, and the timed window that samples the router's CPU
//! time (and syscall / context-switch counters) at its edges while a progress bar runs on stderr.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{Value as Json, json};

use crate::proc::{self, Pids};

/// Workers run but do not record yet.
pub const WARMUP: u8 = 0;
/// Workers record.
pub const MEASURE: u8 = 1;
/// Workers stop issuing new work and finish what is in flight.
pub const DRAIN: u8 = 2;

/// State shared by the coordinator and all workers of one scenario run.
pub struct Control {
    phase: AtomicU8,
    /// Operations completed in the measured phase (for the progress bar).
    pub measured: AtomicU64,
    base: Instant,
    stop: tokio::sync::watch::Sender<bool>,
    failure: std::sync::Mutex<Option<String>>,
}

impl Control {
    /// A new control block in the warm-up phase.
    pub fn new() -> Arc<Control> {
        let (stop, _) = tokio::sync::watch::channel(false);
        Arc::new(Control {
            phase: AtomicU8::new(WARMUP),
            measured: AtomicU64::new(0),
            base: Instant::now(),
            stop,
            failure: std::sync::Mutex::new(None),
        })
    }

    /// The current phase.
    pub fn phase(&self) -> u8 {
        self.phase.load(Ordering::Relaxed)
    }

    /// True while results count.
    pub fn measuring(&self) -> bool {
        self.phase() == MEASURE
    }

    /// True once no new work may start.
    pub fn draining(&self) -> bool {
        self.phase() >= DRAIN
    }

    fn set_phase(&self, p: u8) {
        self.phase.store(p, Ordering::Relaxed);
        if p >= DRAIN {
            self.stop.send_replace(true);
        }
    }

    /// Nanoseconds since the control block was made (one clock for all workers).
    pub fn now_ns(&self) -> u64 {
        self.base.elapsed().as_nanos() as u64
    }

    /// Records that a worker failed (the first failure is kept) and ends the run early.
    pub fn fail(&self, why: String) {
        if let Ok(mut f) = self.failure.lock() {
            f.get_or_insert(why);
        }
        self.set_phase(DRAIN);
    }

    /// The first worker failure, if any.
    pub fn failure(&self) -> Option<String> {
        self.failure.lock().ok().and_then(|f| f.clone())
    }

    /// A receiver that changes when draining starts.
    pub fn stop_signal(&self) -> tokio::sync::watch::Receiver<bool> {
        self.stop.subscribe()
    }
}

/// Waits until `rx` reads true (draining started).
pub async fn stopped(rx: &mut tokio::sync::watch::Receiver<bool>) {
    while !*rx.borrow_and_update() {
        if rx.changed().await.is_err() {
            return;
        }
    }
}

/// Most a paced sender may fall behind its schedule and then catch up in a burst.
const MAX_PACING_LAG: Duration = Duration::from_millis(5);

/// Pacing at one send per `interval`: true (and the schedule advanced) when a send
/// is due at `now`. Timers fire with millisecond granularity, so a sender woken late
/// catches up on what it missed, up to [`MAX_PACING_LAG`].
pub fn pace(next_due: &mut tokio::time::Instant, interval: Duration, now: tokio::time::Instant) -> bool {
    if now < *next_due {
        return false;
    }
    let floor = now.checked_sub(MAX_PACING_LAG).unwrap_or(now);
    *next_due = (*next_due + interval).max(floor);
    true
}

/// A latency histogram in nanoseconds (1 ns .. 60 s, 3 significant digits).
pub fn new_hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("constant histogram bounds are valid")
}

/// Percentiles of a nanosecond histogram, in microseconds, as JSON.
pub fn latency_json(h: &Histogram<u64>) -> Json {
    if h.is_empty() {
        return Json::Null;
    }
    let us = |ns: u64| (ns as f64 / 10.0).round() / 100.0;
    json!({
        "p50": us(h.value_at_quantile(0.50)),
        "p90": us(h.value_at_quantile(0.90)),
        "p99": us(h.value_at_quantile(0.99)),
        "p999": us(h.value_at_quantile(0.999)),
        "max": us(h.max()),
        "mean": (h.mean() / 10.0).round() / 100.0,
    })
}

/// What the measured window saw.
#[derive(Debug, Clone)]
pub struct Window {
    /// Wall-clock seconds of the measured phase.
    pub seconds: f64,
    /// Router CPU seconds used during it, if PIDs were given.
    pub router_cpu: Option<f64>,
    /// Load generator CPU seconds used during it.
    pub client_cpu: Option<f64>,
    /// CPU seconds of each router process (the `--router-pid` order).
    pub router_cpu_each: Vec<(u32, Option<f64>)>,
    /// Router syscalls and context switches during it, if PIDs were given and readable.
    pub router_counters: Option<proc::Counters>,
    /// Every router syscall during it, counted by perf (with `--perf-syscalls`).
    pub router_syscalls_perf: Option<u64>,
}

/// Runs warm-up, then the measured phase with a progress bar, then switches the
/// workers to draining. `unit` names what `ctl.measured` counts (for the bar).
pub async fn run_window(
    ctl: &Control,
    warmup: f64,
    duration: f64,
    pids: &Pids,
    unit: &str,
    quiet: bool,
) -> Window {
    run_window_perf(ctl, warmup, duration, pids, unit, quiet, false).await
}

/// [`run_window`], and with `perf` true also every router syscall counted by perf.
pub async fn run_window_perf(
    ctl: &Control,
    warmup: f64,
    duration: f64,
    pids: &Pids,
    unit: &str,
    quiet: bool,
    perf: bool,
) -> Window {
    let bar = progress_bar((duration * 1000.0) as u64, quiet);
    bar.set_message(format!("warming up {warmup:.1}s"));
    let warm_end = Instant::now() + Duration::from_secs_f64(warmup);
    while Instant::now() < warm_end && ctl.failure().is_none() {
        tokio::time::sleep(Duration::from_millis(50).min(warm_end.saturating_duration_since(Instant::now())))
            .await;
    }
    let cpu0 = pids.cpu_seconds();
    let each0 = pids.cpu_each();
    let counters0 = pids.counters();
    let perf = if perf { proc::PerfSyscalls::start(pids) } else { None };
    let self0 = proc::self_cpu_seconds();
    let t0 = Instant::now();
    ctl.set_phase(MEASURE);
    let end = t0 + Duration::from_secs_f64(duration);
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    loop {
        tick.tick().await;
        let now = Instant::now();
        if now >= end || ctl.failure().is_some() {
            break;
        }
        let secs = now.duration_since(t0).as_secs_f64();
        let n = ctl.measured.load(Ordering::Relaxed);
        bar.set_position((secs * 1000.0) as u64);
        bar.set_message(format!("{} {unit}/s", human(n as f64 / secs.max(1e-9))));
    }
    if ctl.failure().is_none() {
        tokio::time::sleep(end.saturating_duration_since(Instant::now())).await;
    }
    let seconds = t0.elapsed().as_secs_f64();
    ctl.set_phase(DRAIN);
    let cpu1 = pids.cpu_seconds();
    let counters1 = pids.counters();
    let router_syscalls_perf = perf.and_then(proc::PerfSyscalls::stop);
    let each1 = pids.cpu_each();
    let self1 = proc::self_cpu_seconds();
    bar.finish_and_clear();
    Window {
        seconds,
        router_cpu: cpu0.zip(cpu1).map(|(a, b)| b - a),
        client_cpu: self0.zip(self1).map(|(a, b)| b - a),
        router_cpu_each: pids
            .0
            .iter()
            .zip(each0.iter().zip(each1))
            .map(|(&pid, (a, b))| (pid, a.zip(b).map(|(a, b)| b - a)))
            .collect(),
        router_counters: counters0.zip(counters1).map(|(a, b)| a.delta(&b)),
        router_syscalls_perf,
    }
}

/// A progress bar on stderr (hidden when `quiet` or stderr is not a terminal).
pub fn progress_bar(len: u64, quiet: bool) -> ProgressBar {
    let target = if quiet { ProgressDrawTarget::hidden() } else { ProgressDrawTarget::stderr() };
    let bar = ProgressBar::with_draw_target(Some(len), target);
    if let Ok(style) =
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} {msg}")
    {
        bar.set_style(style);
    }
    bar
}

/// A number with a k/M suffix.
pub fn human(x: f64) -> String {
    if x >= 1e6 {
        format!("{:.2}M", x / 1e6)
    } else if x >= 1e3 {
        format!("{:.1}k", x / 1e3)
    } else {
        format!("{x:.0}")
    }
}

/// Rounds to two decimals for JSON output.
pub fn r2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}
