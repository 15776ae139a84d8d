//! The `sessions` scenario: opens K idle sessions (transport handshake + HELLO/WELCOME),
//! spreading them over source addresses 127.0.0.2, 127.0.0.3 ... so more than one
//! address's worth of ephemeral ports can be used, holds them, and reports the time
//! to connect them all and the router's resident memory per session.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use junction::wamp::codec::Serializer;

use crate::cli::SessionsArgs;
use crate::client::{Conn, ConnectOpts, Endpoint};
use crate::error::{BenchError, Result};
use crate::proc::{self, Pids};
use crate::report::Report;
use crate::stats::{self, new_hist, r2};

/// Sessions per source address when `--sources` is 0. The ephemeral range holds ~28k
/// ports per address, but the kernel's port search for `connect` slows down
/// (quadratically over a run, in kernel time) as one address pair fills up: with
/// 19,000 sessions, 1 address took 11 s of system time, 16 addresses 1.3 s.
pub const PER_SOURCE: usize = 1_000;
/// Most source addresses used (127.0.0.2 ..= 127.0.0.251).
pub const MAX_SOURCES: usize = 250;

/// The source address of connection `i`, when the target is on loopback.
pub fn source_for(i: usize, sources: usize, ep: &Endpoint) -> Option<IpAddr> {
    if sources == 0 || !ep.addr().ip().is_loopback() || !ep.addr().is_ipv4() {
        return None;
    }
    let n = 2 + (i % sources) as u32;
    Some(IpAddr::V4(Ipv4Addr::from(u32::from(Ipv4Addr::new(127, 0, 0, 0)) + n)))
}

async fn open_one(ep: &Endpoint, ser: Serializer, realm: &str, source: Option<IpAddr>) -> Result<Conn> {
    let opts = ConnectOpts { source, small_buffers: true, relay_key: None };
    let mut c = Conn::connect(ep, ser, &opts).await?;
    c.join(realm).await?;
    Ok(c)
}

/// Runs the scenario.
pub async fn run(args: SessionsArgs) -> Result<Report> {
    let c = &args.common;
    let ep = Endpoint::parse(&c.url)?;
    let ser: Serializer = c.serializer.into();
    let k = args.sessions;
    let sources = if args.sources > 0 { args.sources } else { k.div_ceil(PER_SOURCE).clamp(1, MAX_SOURCES) };
    let pids = Pids(c.router_pid.clone());
    let rss0 = pids.rss_bytes();
    let cpu0 = pids.cpu_seconds();
    let self0 = proc::self_cpu_seconds();
    let bar = stats::progress_bar(k as u64, c.quiet);
    bar.set_message("sessions");
    let start = Instant::now();
    let deadline = Duration::from_secs_f64(args.timeout);
    let done = Arc::new(AtomicU64::new(0));
    let realm = c.realm.as_str();
    let attempts = futures_util::stream::iter(0..k)
        .map(|i| {
            let ep = &ep;
            let done = done.clone();
            async move {
                let t = Instant::now();
                let r = open_one(ep, ser, realm, source_for(i, sources, ep)).await;
                done.fetch_add(1, Ordering::Relaxed);
                r.map(|c| (c, t.elapsed()))
            }
        })
        .buffer_unordered(args.concurrency.max(1));
    tokio::pin!(attempts);
    let mut conns = Vec::with_capacity(k);
    let mut hist = new_hist();
    let mut failures = 0u64;
    let mut first_error: Option<BenchError> = None;
    let mut last_draw = Instant::now();
    let timed_out = loop {
        let next = tokio::time::timeout(deadline.saturating_sub(start.elapsed()), attempts.next()).await;
        match next {
            Err(_) => break true,
            Ok(None) => break false,
            Ok(Some(Ok((conn, took)))) => {
                hist.saturating_record(took.as_nanos() as u64);
                conns.push(conn);
            }
            Ok(Some(Err(e))) => {
                failures += 1;
                first_error.get_or_insert(e);
            }
        }
        if last_draw.elapsed() > Duration::from_millis(200) {
            bar.set_position(done.load(Ordering::Relaxed));
            last_draw = Instant::now();
        }
    };
    let connect_s = start.elapsed().as_secs_f64();
    bar.finish_and_clear();
    tokio::time::sleep(Duration::from_secs_f64(args.hold)).await;
    let rss1 = pids.rss_bytes();
    let cpu1 = pids.cpu_seconds();
    let self1 = proc::self_cpu_seconds();
    let open = conns.len();
    let mut r = Report::new("sessions", c, &ep, format!("sessions-{}", k));
    r.set("sessions", k);
    r.set("connected", open);
    r.set("failed", failures);
    r.set("timed_out", timed_out);
    r.set("sources", sources);
    r.set("connect_s", r2(connect_s));
    r.set("rate", r2(open as f64 / connect_s.max(1e-9)));
    r.set("unit", "sessions");
    r.set("connect_latency_us", stats::latency_json(&hist));
    if let (Some(a), Some(b)) = (rss0, rss1) {
        r.set("router_rss_before_kib", a / 1024);
        r.set("router_rss_after_kib", b / 1024);
        if open > 0 {
            r.set("rss_per_session_kib", r2((b as f64 - a as f64) / 1024.0 / open as f64));
        }
    }
    if let (Some(a), Some(b)) = (cpu0, cpu1) {
        r.set("router_cpu_s", r2(b - a));
        if b > a {
            r.set("per_cpu_s", r2(open as f64 / (b - a)));
        }
    }
    if let (Some(a), Some(b)) = (self0, self1) {
        r.set("client_cpu_s", r2(b - a));
    }
    if let Some(e) = first_error {
        r.set("first_error", e.to_string());
    }
    let closing = Instant::now();
    futures_util::stream::iter(conns).for_each_concurrent(256, |c| c.shutdown()).await;
    r.set("close_s", r2(closing.elapsed().as_secs_f64()));
    Ok(r)
}
