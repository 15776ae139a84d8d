//! The `storm` scenario (a reconnect storm): N sessions each subscribe to K topics of
//! their own (new topics, so on a cluster node each is new node interest the other
//! nodes acknowledge), then all their sockets are closed at once and every session
//! reconnects (to the same node or another) as fast as it can, subscribing its K
//! topics again. Reports the storm time (the drop to the last of the N×K SUBSCRIBED),
//! sessions/s and subscribes/s, every refusal by reason, and each session's own
//! reconnect + resubscribe time. With `--verify-url`, a publisher there then sends
//! one event per topic and every one must be delivered.

mod phase;
mod session;
mod verify;

use std::sync::Arc;
use std::time::{Duration, Instant};

use junction::wamp::codec::Serializer;
use serde_json::json;
use tokio::sync::Semaphore;

use crate::cli::StormArgs;
use crate::client::Endpoint;
use crate::error::{BenchError, Result};
use crate::proc::{self, Pids};
use crate::report::Report;
use crate::rpc::run_id;
use crate::sessions::{MAX_SOURCES, PER_SOURCE};
use crate::stats::{self, r2};

use self::session::{Plan, Tally};

/// Runs the scenario.
pub async fn run(args: StormArgs) -> Result<Report> {
    let c = &args.common;
    let (n, k) = (args.sessions.max(1), args.topics.max(1));
    let nofile = proc::raise_nofile_limit();
    if let Some(lim) = nofile
        && (n as u64) + 64 > lim
    {
        eprintln!("junction-bench: warning: {n} sessions but an open-file limit of {lim}");
    }
    let storm_url = args.reconnect_url.clone().unwrap_or_else(|| c.url.clone());
    let storm_ep = Endpoint::parse(&storm_url)?;
    let sources = if args.sources > 0 { args.sources } else { n.div_ceil(PER_SOURCE).clamp(1, MAX_SOURCES) };
    let gate = Arc::new(Semaphore::new(args.connect_concurrency.max(1)));
    let base = format!("bench.storm.{}", run_id());
    let timeout = Duration::from_secs_f64(args.timeout);
    let ser: Serializer = c.serializer.into();
    let plan = |ep: Endpoint| {
        Arc::new(Plan {
            ep,
            ser,
            realm: c.realm.clone(),
            base: base.clone(),
            topics: k,
            sources,
            gate: gate.clone(),
            errors: Arc::new(Tally::default()),
            deadline: Instant::now() + timeout,
        })
    };

    let setup_plan = plan(Endpoint::parse(&c.url)?);
    let setup = phase::run(setup_plan.clone(), n, Instant::now(), "setup", c.quiet).await;
    if setup.failed > 0 {
        return Err(BenchError::msg(format!(
            "setup: {} of {n} sessions failed (first: {}); failures: {:?}",
            setup.failed,
            setup.first_error.unwrap_or_default(),
            setup_plan.errors.snapshot()
        )));
    }
    tokio::time::sleep(Duration::from_secs_f64(args.hold)).await;

    let pids = Pids(c.router_pid.clone());
    let storm_plan = plan(storm_ep.clone());
    let (cpu0, self0) = (pids.cpu_seconds(), proc::self_cpu_seconds());
    let overflows0 = proc::tcp_ext_counter("ListenOverflows");
    let t0 = Instant::now();
    drop(setup.conns); // every socket closed at once
    let storm = phase::run(storm_plan.clone(), n, t0, "storm", c.quiet).await;
    let (cpu1, self1) = (pids.cpu_seconds(), proc::self_cpu_seconds());
    let overflows1 = proc::tcp_ext_counter("ListenOverflows");

    let mut r = Report::new("storm", c, &storm_ep, format!("storm-{n}x{k}"));
    r.set("reconnect_url", storm_url.as_str());
    r.set("sessions", n);
    r.set("topics_per_session", k);
    r.set("subscriptions", n * k);
    r.set("connect_concurrency", args.connect_concurrency);
    r.set("sources", sources);
    if let Some(lim) = nofile {
        r.set("nofile_limit", lim);
    }
    r.set("setup_s", r2(setup.seconds));
    r.set("setup_errors", json!(setup_plan.errors.snapshot()));
    let secs = storm.seconds.max(1e-9);
    let ok = storm.conns.len();
    r.set("unit", "sessions");
    r.set("storm_s", r2(storm.seconds));
    r.set("rate", r2(ok as f64 / secs));
    r.set("subscribes_rate", r2((ok * k) as f64 / secs));
    r.set("reconnected", ok);
    r.set("failed", storm.failed);
    if let Some(e) = &storm.first_error {
        r.set("first_failure", e.as_str());
    }
    r.set("attempts", storm.attempts);
    let errors = storm_plan.errors.snapshot();
    r.set("error_count", errors.values().sum::<u64>());
    r.set("errors", json!(errors));
    r.set("session_latency_us", stats::latency_json(&storm.took));
    r.set("completed_at_us", stats::latency_json(&storm.completed));
    if let (Some(a), Some(b)) = (cpu0, cpu1) {
        r.set("router_cpu_s", r2(b - a));
    }
    if let (Some(a), Some(b)) = (self0, self1) {
        r.set("client_cpu_s", r2(b - a));
    }
    if let (Some(a), Some(b)) = (overflows0, overflows1) {
        // Machine-wide: connections dropped by a full accept queue during the storm.
        r.set("listen_overflows", b.saturating_sub(a));
    }

    if let Some(url) = &args.verify_url {
        let expected = (ok * k) as u64;
        let errors = Tally::default();
        let wait = Duration::from_secs_f64(args.verify_timeout);
        let v = verify::run(storm.conns, &storm_plan, url, wait, &errors).await?;
        r.set("verify_url", url.as_str());
        r.set("verify_expected", expected);
        r.set("verify_published", v.published);
        r.set("verify_delivered", v.delivered);
        r.set("verify_missing", expected.saturating_sub(v.delivered));
        r.set("verify_complete_sessions", v.complete_sessions);
        r.set("verify_silent_topics", v.silent_topics);
        r.set("verify_closed_sessions", v.closed_sessions);
        if let Some(why) = v.first_close {
            r.set("verify_first_close", why);
        }
        if !v.silent_sample.is_empty() {
            r.set("verify_silent_sample", json!(v.silent_sample));
        }
        r.set("verify_s", r2(v.seconds));
        r.set("verify_errors", json!(errors.snapshot()));
    }
    Ok(r)
}
