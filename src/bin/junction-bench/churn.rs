//! The `churn` scenario: how fast routes change. C clients each SUBSCRIBE to (or
//! REGISTER) a URI no one used before and UNSUBSCRIBE (UNREGISTER) it again, one
//! request at a time, for the measured window; reports new routes per second and
//! the latency of the SUBSCRIBE/REGISTER. On a cluster node this is the path that
//! needs the other nodes (interest acknowledgements, Raft commits), so the ratio to
//! a lone node shows what clustering costs per-user topics and reconnect storms.

use std::sync::Arc;
use std::time::Instant;

use junction::dict;
use junction::ids::RequestId;
use junction::wamp::Message;
use junction::wamp::codec::Serializer;
use junction::wamp::message::{Register, Subscribe, Unregister, Unsubscribe};
use junction::wamp::value::Dict;

use crate::cli::{ChurnArgs, ChurnKind};
use crate::client::{Conn, Endpoint};
use crate::error::{BenchError, Result};
use crate::proc::Pids;
use crate::report::Report;
use crate::rpc::{join_many, run_id};
use crate::stats::{self, Control, new_hist};

/// What one client measured.
struct ClientResult {
    count: u64,
    hist: hdrhistogram::Histogram<u64>,
}

/// Adds one route and removes it again; returns how long adding it took.
async fn one_change(
    conn: &mut Conn,
    kind: ChurnKind,
    uri: String,
    next: &mut u64,
) -> Result<std::time::Duration> {
    let mut request = || {
        *next += 1;
        RequestId(*next)
    };
    let (add, add_id) = match kind {
        ChurnKind::Subscribe => {
            let r = request();
            (Message::Subscribe(Subscribe { request: r, options: Dict::new(), topic: uri }), r)
        }
        ChurnKind::Register => {
            let r = request();
            (Message::Register(Register { request: r, options: dict! {}, procedure: uri }), r)
        }
    };
    let t = Instant::now();
    let reply = conn.request(&add, add_id).await?;
    let took = t.elapsed();
    let remove = match reply {
        Message::Subscribed(s) => {
            Message::Unsubscribe(Unsubscribe { request: request(), subscription: s.subscription })
        }
        Message::Registered(r) => {
            Message::Unregister(Unregister { request: request(), registration: r.registration })
        }
        Message::Error(e) => return Err(BenchError::msg(format!("route refused: {}", e.error))),
        other => return Err(BenchError::msg(format!("unexpected reply, message type {}", other.code()))),
    };
    let remove_id = match &remove {
        Message::Unsubscribe(u) => u.request,
        Message::Unregister(u) => u.request,
        _ => unreachable!("built above"),
    };
    conn.request(&remove, remove_id).await?;
    Ok(took)
}

async fn client_loop(
    mut conn: Conn,
    kind: ChurnKind,
    prefix: String,
    ctl: Arc<Control>,
) -> Result<ClientResult> {
    let mut stop = ctl.stop_signal();
    let mut hist = new_hist();
    let (mut count, mut next, mut n) = (0u64, 0u64, 0u64);
    while !*stop.borrow_and_update() {
        n += 1;
        let took = one_change(&mut conn, kind, format!("{prefix}.{n}"), &mut next).await?;
        if ctl.measuring() {
            count += 1;
            ctl.measured.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            hist.saturating_record(took.as_nanos() as u64);
        }
    }
    conn.close().await;
    Ok(ClientResult { count, hist })
}

/// Runs the scenario.
pub async fn run(args: ChurnArgs) -> Result<Report> {
    let c = &args.common;
    let ep = Endpoint::parse(&c.url)?;
    let ser: Serializer = c.serializer.into();
    let conns = join_many(&ep, ser, &c.realm, args.clients.max(1)).await?;
    let ctl = Control::new();
    let base = format!("bench.churn.{}", run_id());
    let handles: Vec<_> = conns
        .into_iter()
        .enumerate()
        .map(|(i, conn)| {
            let ctl = ctl.clone();
            let prefix = format!("{base}.c{i}");
            tokio::spawn(async move {
                let r = client_loop(conn, args.kind, prefix, ctl.clone()).await;
                if let Err(e) = &r {
                    ctl.fail(e.to_string());
                }
                r
            })
        })
        .collect();
    let unit = match args.kind {
        ChurnKind::Subscribe => "subscribes",
        ChurnKind::Register => "registers",
    };
    let pids = Pids(c.router_pid.clone());
    let window = stats::run_window(&ctl, c.warmup, c.duration, &pids, unit, c.quiet).await;
    let (mut count, mut hist) = (0u64, new_hist());
    for h in handles {
        let r = h.await.map_err(|e| BenchError::msg(e.to_string()))??;
        count += r.count;
        hist.add(&r.hist).ok();
    }
    if let Some(why) = ctl.failure() {
        return Err(BenchError::msg(why));
    }
    let mut r = Report::new("churn", c, &ep, format!("churn-{unit}-c{}", args.clients));
    r.set("clients", args.clients);
    r.window(&window, count, unit);
    r.set("latency_us", stats::latency_json(&hist));
    Ok(r)
}
