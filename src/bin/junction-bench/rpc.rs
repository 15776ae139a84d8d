//! The `rpc` scenario: M callees register one echo procedure (shared round-robin when
//! M > 1), N callers each keep K calls in flight (optionally paced to a total rate),
//! and the run reports calls/s, latency percentiles and calls per router CPU-second.
//!
//! The caller and echo loops are shared with the raw relay measurement, which sends
//! the very same CALL frames through a relay that does not parse them.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use hdrhistogram::Histogram;
use junction::dict;
use junction::ids::RequestId;
use junction::wamp::codec::Serializer;
use junction::wamp::message::{Call, Message, Payload, Register, Yield};
use junction::wamp::value::{Dict, Value};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::cli::RpcArgs;
use crate::client::{Conn, ConnectOpts, Endpoint};
use crate::error::{BenchError, Result};
use crate::proc::Pids;
use crate::report::Report;
use crate::stats::{self, Control, new_hist};

/// How long callers wait for their last calls once draining starts.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(3);

/// What every caller sends.
pub struct CallPlan {
    /// Calls in flight per caller.
    pub inflight: usize,
    /// The CALL message; only its request id changes.
    pub call: Message,
    /// Time between calls of one caller when paced.
    pub interval: Option<Duration>,
}

impl CallPlan {
    /// A plan calling `procedure` with one string argument of `payload` bytes.
    pub fn new(procedure: &str, payload: usize, inflight: usize, rate: f64, callers: usize) -> CallPlan {
        let call = Message::Call(Call {
            request: RequestId(1),
            options: Dict::new(),
            procedure: procedure.to_owned(),
            payload: Payload::args(vec![Value::Str(payload_string(payload))]),
        });
        let interval = (rate > 0.0).then(|| Duration::from_secs_f64(callers as f64 / rate));
        CallPlan { inflight: inflight.max(1), call, interval }
    }
}

/// A printable payload of `n` bytes.
pub fn payload_string(n: usize) -> String {
    (0..n).map(|i| char::from(b'a' + (i % 26) as u8)).collect()
}

/// What one caller measured.
pub struct CallerResult {
    /// Round-trip latencies in the measured phase (ns).
    pub hist: Histogram<u64>,
    /// Calls completed in the measured phase.
    pub count: u64,
    /// Calls answered with ERROR (whole run).
    pub errors: u64,
}

/// Says which request a reply completes and whether it succeeded.
pub type ReplyOf = fn(&Message) -> Option<(RequestId, bool)>;

/// Replies of a router: RESULT or ERROR.
pub fn router_reply(m: &Message) -> Option<(RequestId, bool)> {
    match m {
        Message::Result(r) => Some((r.request, true)),
        Message::Error(e) => Some((e.request, false)),
        _ => None,
    }
}

/// Keeps `plan.inflight` calls going until draining, then waits for the last replies.
pub async fn caller_loop(
    mut conn: Conn,
    plan: Arc<CallPlan>,
    ctl: Arc<Control>,
    reply_of: ReplyOf,
) -> Result<CallerResult> {
    let ser = conn.serializer();
    let mut call = plan.call.clone();
    let mut sent_at: HashMap<u64, u64> = HashMap::with_capacity(plan.inflight * 2);
    let mut next_id = 1u64;
    let mut frames = Vec::new();
    let mut stop = ctl.stop_signal();
    let mut stop_seen = false;
    let mut next_due = Instant::now();
    let mut drain_deadline: Option<Instant> = None;
    let mut res = CallerResult { hist: new_hist(), count: 0, errors: 0 };
    loop {
        if ctl.draining() {
            if sent_at.is_empty() {
                break;
            }
            drain_deadline.get_or_insert_with(|| Instant::now() + DRAIN_TIMEOUT);
        } else {
            issue(&mut conn, &plan, &mut call, &mut sent_at, &mut next_id, &mut next_due, &ctl)?;
            conn.flush().await?;
        }
        let can_issue = !ctl.draining() && sent_at.len() < plan.inflight;
        frames.clear();
        tokio::select! {
            r = conn.recv_frames(&mut frames) => {
                if !r? {
                    return Err(BenchError::msg("the router closed the caller's connection"));
                }
            }
            () = stats::stopped(&mut stop), if !stop_seen => { stop_seen = true; continue; }
            () = tokio::time::sleep_until(next_due), if can_issue && plan.interval.is_some() => continue,
            () = sleep_until(drain_deadline), if drain_deadline.is_some() => break,
        }
        let now = ctl.now_ns();
        let measuring = ctl.measuring();
        let mut done = 0;
        for f in &frames {
            let m = ser.decode(f)?;
            match reply_of(&m) {
                Some((id, ok)) => {
                    if let Some(t) = sent_at.remove(&id.0) {
                        if measuring {
                            res.hist.saturating_record(now.saturating_sub(t).max(1));
                            done += 1;
                        }
                        if !ok {
                            res.errors += 1;
                        }
                    }
                }
                None => {
                    if let Message::Abort(a) = m {
                        return Err(BenchError::msg(format!("caller aborted by the router: {}", a.reason)));
                    }
                }
            }
        }
        res.count += done;
        ctl.measured.fetch_add(done, Ordering::Relaxed);
    }
    conn.close().await;
    Ok(res)
}

/// Queues calls up to the in-flight limit (and the pacing, if any).
fn issue(
    conn: &mut Conn,
    plan: &CallPlan,
    call: &mut Message,
    sent_at: &mut HashMap<u64, u64>,
    next_id: &mut u64,
    next_due: &mut Instant,
    ctl: &Control,
) -> Result<()> {
    let now = Instant::now();
    while sent_at.len() < plan.inflight {
        if let Some(iv) = plan.interval
            && !stats::pace(next_due, iv, now)
        {
            break;
        }
        let id = *next_id;
        *next_id += 1;
        if let Message::Call(c) = call {
            c.request = RequestId(id);
        }
        conn.send(call)?;
        sent_at.insert(id, ctl.now_ns());
    }
    Ok(())
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// How an echoing peer answers.
#[derive(Clone, Copy, Debug)]
pub enum Echo {
    /// A WAMP callee: INVOCATION in, YIELD with the same arguments out.
    Wamp,
    /// A relay peer: every frame goes back unchanged.
    Raw,
}

/// Answers until `done` turns true or the connection closes; returns frames answered.
pub async fn echo_loop(mut conn: Conn, mut done: watch::Receiver<bool>, mode: Echo) -> Result<u64> {
    let ser: Serializer = conn.serializer();
    let mut frames = Vec::new();
    let mut answered = 0u64;
    loop {
        frames.clear();
        tokio::select! {
            r = conn.recv_frames(&mut frames) => {
                if !r? {
                    return Ok(answered);
                }
            }
            () = stats::stopped(&mut done) => break,
        }
        for f in frames.drain(..) {
            match mode {
                Echo::Raw => conn.send_frame(f.to_vec())?,
                Echo::Wamp => match ser.decode(&f)? {
                    Message::Invocation(inv) => {
                        let y = Yield { request: inv.request, options: Dict::new(), payload: inv.payload };
                        conn.send(&Message::Yield(y))?;
                    }
                    Message::Abort(a) => {
                        return Err(BenchError::msg(format!("callee aborted by the router: {}", a.reason)));
                    }
                    _ => {}
                },
            }
            answered += 1;
        }
        conn.flush().await?;
    }
    conn.close().await;
    Ok(answered)
}

/// A run-unique suffix for procedure and topic names.
pub fn run_id() -> String {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    format!("{}_{}", std::process::id(), ms % 100_000_000)
}

/// Connects and joins `n` sessions.
pub async fn join_many(ep: &Endpoint, ser: Serializer, realm: &str, n: usize) -> Result<Vec<Conn>> {
    let mut conns = Vec::with_capacity(n);
    for _ in 0..n {
        let mut c = Conn::connect(ep, ser, &ConnectOpts::default()).await?;
        c.join(realm).await?;
        conns.push(c);
    }
    Ok(conns)
}

/// Merged results of the callers.
pub struct Merged {
    /// All latencies.
    pub hist: Histogram<u64>,
    /// Calls completed while measuring.
    pub count: u64,
    /// Calls answered with an error.
    pub errors: u64,
}

/// Awaits the callers and merges what they measured.
pub async fn merge_callers(handles: Vec<JoinHandle<Result<CallerResult>>>, ctl: &Control) -> Result<Merged> {
    let mut m = Merged { hist: new_hist(), count: 0, errors: 0 };
    for h in handles {
        match h.await {
            Ok(Ok(r)) => {
                m.hist.add(&r.hist).map_err(|e| BenchError::msg(format!("histogram: {e:?}")))?;
                m.count += r.count;
                m.errors += r.errors;
            }
            Ok(Err(e)) => ctl.fail(e.to_string()),
            Err(e) => ctl.fail(format!("caller task: {e}")),
        }
    }
    match ctl.failure() {
        Some(why) => Err(BenchError::msg(why)),
        None => Ok(m),
    }
}

/// Spawns caller loops that report failures to `ctl` at once.
pub fn spawn_callers(
    conns: Vec<Conn>,
    plan: &Arc<CallPlan>,
    ctl: &Arc<Control>,
    reply_of: ReplyOf,
) -> Vec<JoinHandle<Result<CallerResult>>> {
    conns
        .into_iter()
        .map(|c| {
            let (plan, ctl) = (plan.clone(), ctl.clone());
            tokio::spawn(async move {
                let r = caller_loop(c, plan, ctl.clone(), reply_of).await;
                if let Err(e) = &r {
                    ctl.fail(e.to_string());
                }
                r
            })
        })
        .collect()
}

/// Runs the scenario.
pub async fn run(args: RpcArgs) -> Result<Report> {
    let c = &args.common;
    let ep = Endpoint::parse(&c.url)?;
    let ser: Serializer = c.serializer.into();
    let procedure = format!("{}.{}", args.procedure, run_id());
    let (done_tx, done_rx) = watch::channel(false);
    let mut callees = Vec::new();
    let callee_ep = match &args.callee_url {
        Some(url) => Endpoint::parse(url)?,
        None => Endpoint::parse(&c.url)?,
    };
    for mut conn in join_many(&callee_ep, ser, &c.realm, args.callees.max(1)).await? {
        conn.set_frame_by_frame(args.frame_by_frame);
        callees.push(register(conn, &procedure, args.callees > 1, done_rx.clone()).await?);
    }
    let mut callers = join_many(&ep, ser, &c.realm, args.callers.max(1)).await?;
    for conn in &mut callers {
        conn.set_frame_by_frame(args.frame_by_frame);
    }
    let ctl = Control::new();
    let plan = Arc::new(CallPlan::new(&procedure, args.payload, args.inflight, args.rate, callers.len()));
    let handles = spawn_callers(callers, &plan, &ctl, router_reply);
    let pids = Pids(c.router_pid.clone());
    let window =
        stats::run_window_perf(&ctl, c.warmup, c.duration, &pids, "calls", c.quiet, c.perf_syscalls).await;
    let merged = merge_callers(handles, &ctl).await;
    done_tx.send_replace(true);
    for h in callees {
        match h.await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => eprintln!("callee: {e}"),
            Err(e) => eprintln!("callee task: {e}"),
        }
    }
    let merged = merged?;
    let short = if ep.transport() == "websocket" { "ws" } else { "rs" };
    let fbf = if args.frame_by_frame { "-fbf" } else { "" };
    let label = format!("rpc-{short}-{}-if{}{fbf}", ser.name(), args.inflight);
    let mut r = Report::new("rpc", c, &ep, label);
    r.write_mode(args.frame_by_frame);
    r.set("callers", args.callers);
    r.set("callees", args.callees);
    r.set("inflight", args.inflight);
    r.set("payload", args.payload);
    r.set("callee_url", args.callee_url.clone().unwrap_or_else(|| c.url.clone()));
    r.set("rate_limit", args.rate);
    r.window(&window, merged.count, "calls");
    r.set("latency_us", stats::latency_json(&merged.hist));
    r.set("errors", merged.errors);
    Ok(r)
}

async fn register(
    mut conn: Conn,
    procedure: &str,
    shared: bool,
    done: watch::Receiver<bool>,
) -> Result<JoinHandle<Result<u64>>> {
    let options = if shared {
        dict! { "invoke" => "roundrobin" }
    } else {
        Dict::new()
    };
    let req = RequestId(1);
    let msg = Message::Register(Register { request: req, options, procedure: procedure.to_owned() });
    match conn.request(&msg, req).await? {
        Message::Registered(_) => Ok(tokio::spawn(echo_loop(conn, done, Echo::Wamp))),
        Message::Error(e) => Err(BenchError::msg(format!("REGISTER {procedure} failed: {}", e.error))),
        other => Err(BenchError::msg(format!("REGISTER answered with message type {}", other.code()))),
    }
}
