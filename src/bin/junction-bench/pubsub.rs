//! The `pubsub` scenario: P publishers publish (acknowledged) to T topics, S
//! subscribers (subscriber i on topic i mod T) count deliveries, delivery latency and
//! losses. Every event carries `[publisher, sequence, sent_ns, payload]`; the sequence
//! runs per publisher and topic, so a subscriber sees a gap for every lost event.
//!
//! Flow control is closed-loop, as for RPC: a publisher keeps at most `--inflight`
//! publications unacknowledged, and all publishers together keep at most
//! `inflight × publishers × fan-out` deliveries outstanding, so the run measures the
//! sustainable rate instead of filling the router's queues. A subscriber the router
//! disconnects (slow-consumer policy) is reported, and gating then relies on acks only.
//!
//! With `--match prefix|wildcard` subscribers subscribe to patterns over the topic
//! space ([`TopicSpace`]); a subscriber then receives several topics, so events carry
//! the topic's index as a fifth argument and sequences are checked per publisher and
//! topic.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use hdrhistogram::Histogram;
use junction::dict;
use junction::ids::RequestId;
use junction::wamp::codec::Serializer;
use junction::wamp::message::{Message, Payload, Publish, Subscribe};
use junction::wamp::value::{Dict, Value};
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

use crate::cli::PubsubArgs;
use crate::client::Conn;
use crate::error::{BenchError, Result};
use crate::proc::Pids;
use crate::report::Report;
use crate::rpc::{join_many, payload_string, run_id};
use crate::stats::{self, Control, new_hist};
use crate::topics::TopicSpace;

/// How long subscribers may take to receive the last events once publishing stopped.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(3);

/// Delivery accounting shared by publishers and subscribers.
struct Flow {
    expected: AtomicU64,
    delivered: AtomicU64,
    /// Most deliveries outstanding before publishers wait.
    backlog: u64,
    /// Set when a subscriber was dropped: its events never arrive, so stop gating.
    gate_off: AtomicBool,
    /// One per publisher, notified when deliveries arrive.
    wake: Vec<Notify>,
}

impl Flow {
    fn blocked(&self) -> bool {
        !self.gate_off.load(Ordering::Relaxed)
            && self.expected.load(Ordering::Relaxed).saturating_sub(self.delivered.load(Ordering::Relaxed))
                >= self.backlog
    }
}

struct PubPlan {
    index: u64,
    topics: Arc<Vec<String>>,
    fanout: Arc<Vec<u64>>,
    window: usize,
    payload: String,
    interval: Option<Duration>,
    /// Add the topic's index to every event (pattern subscriptions).
    tagged: bool,
}

struct PubResult {
    /// Publications sent per topic (the last sequence number).
    sent: Vec<u64>,
    /// Publications sent in the measured phase.
    measured: u64,
    errors: u64,
}

async fn publisher(mut conn: Conn, plan: PubPlan, flow: Arc<Flow>, ctl: Arc<Control>) -> Result<PubResult> {
    let ser = conn.serializer();
    let topics = plan.topics.len();
    let mut res = PubResult { sent: vec![0; topics], measured: 0, errors: 0 };
    let mut unacked = 0usize;
    let mut next_req = 1u64;
    let mut turn = 0usize;
    let mut next_due = Instant::now();
    let mut frames = Vec::new();
    let mut stop = ctl.stop_signal();
    let mut stop_seen = false;
    let mut drain_deadline: Option<Instant> = None;
    let wake = flow.wake.get(plan.index as usize).ok_or_else(|| BenchError::msg("publisher index"))?;
    loop {
        if ctl.draining() {
            if unacked == 0 {
                break;
            }
            drain_deadline.get_or_insert_with(|| Instant::now() + SETTLE_TIMEOUT);
        } else {
            let now = Instant::now();
            while unacked < plan.window && !flow.blocked() {
                if let Some(iv) = plan.interval
                    && !stats::pace(&mut next_due, iv, now)
                {
                    break;
                }
                let t = turn % topics;
                turn += 1;
                let (Some(seq), Some(topic), Some(fan)) =
                    (res.sent.get_mut(t), plan.topics.get(t), plan.fanout.get(t))
                else {
                    break;
                };
                *seq += 1;
                let mut args = vec![
                    Value::from(plan.index),
                    Value::from(*seq),
                    Value::from(ctl.now_ns()),
                    Value::Str(plan.payload.clone()),
                ];
                if plan.tagged {
                    args.push(Value::from(t as u64));
                }
                let publish = Publish {
                    request: RequestId(next_req),
                    options: dict! { "acknowledge" => true },
                    topic: topic.clone(),
                    payload: Payload::args(args),
                };
                next_req += 1;
                conn.send(&Message::Publish(publish))?;
                flow.expected.fetch_add(*fan, Ordering::Relaxed);
                unacked += 1;
                if ctl.measuring() {
                    res.measured += 1;
                }
            }
            conn.flush().await?;
        }
        let gated = !ctl.draining() && unacked < plan.window && flow.blocked();
        let paced = !ctl.draining() && unacked < plan.window && plan.interval.is_some();
        frames.clear();
        tokio::select! {
            r = conn.recv_frames(&mut frames) => {
                if !r? {
                    return Err(BenchError::msg("the router closed the publisher's connection"));
                }
            }
            () = wake.notified(), if gated => continue,
            () = tokio::time::sleep(Duration::from_millis(100)), if gated => continue,
            () = tokio::time::sleep_until(next_due), if paced => continue,
            () = stats::stopped(&mut stop), if !stop_seen => { stop_seen = true; continue; }
            () = sleep_opt(drain_deadline), if drain_deadline.is_some() => break,
        }
        for f in &frames {
            match ser.decode(f)? {
                Message::Published(_) => unacked = unacked.saturating_sub(1),
                Message::Error(_) => {
                    unacked = unacked.saturating_sub(1);
                    res.errors += 1;
                }
                Message::Abort(a) => {
                    return Err(BenchError::msg(format!("publisher aborted by the router: {}", a.reason)));
                }
                _ => {}
            }
        }
    }
    conn.close().await;
    Ok(res)
}

async fn sleep_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

struct SubResult {
    /// The topics this subscriber receives.
    topics: Vec<usize>,
    /// Events received per (publisher, topic).
    received: HashMap<(usize, usize), u64>,
    /// Events that arrived with a sequence number at or below one already seen.
    out_of_order: u64,
    /// Deliveries in the measured phase.
    measured: u64,
    hist: Histogram<u64>,
    malformed: u64,
    /// Why the router dropped this subscriber, if it did.
    dropped: Option<String>,
}

async fn subscriber(
    mut conn: Conn,
    topics: Vec<usize>,
    publishers: usize,
    flow: Arc<Flow>,
    ctl: Arc<Control>,
    mut done: watch::Receiver<bool>,
) -> SubResult {
    let ser = conn.serializer();
    let own_topic = topics.first().copied().unwrap_or(0);
    let mut r = SubResult {
        topics,
        received: HashMap::new(),
        out_of_order: 0,
        measured: 0,
        hist: new_hist(),
        malformed: 0,
        dropped: None,
    };
    let mut last_seq: HashMap<(usize, usize), u64> = HashMap::new();
    let mut frames = Vec::new();
    loop {
        frames.clear();
        tokio::select! {
            res = conn.recv_frames(&mut frames) => match res {
                Ok(true) => {}
                Ok(false) => { r.dropped = Some("connection closed by the router".into()); break; }
                Err(e) => { r.dropped = Some(e.to_string()); break; }
            },
            () = stats::stopped(&mut done) => break,
        }
        let now = ctl.now_ns();
        let measuring = ctl.measuring();
        let mut n = 0u64;
        for f in &frames {
            let ev = match ser.decode(f) {
                Ok(Message::Event(ev)) => ev,
                Ok(Message::Abort(a)) => {
                    r.dropped = Some(a.reason);
                    break;
                }
                Ok(_) => continue,
                Err(_) => {
                    r.malformed += 1;
                    continue;
                }
            };
            let Some((p, seq, sent, topic)) = event_fields(ev.payload.arguments().args.as_deref(), own_topic)
            else {
                r.malformed += 1;
                continue;
            };
            if p >= publishers || !r.topics.contains(&topic) {
                r.malformed += 1;
                continue;
            }
            *r.received.entry((p, topic)).or_default() += 1;
            let last = last_seq.entry((p, topic)).or_default();
            if seq <= *last {
                r.out_of_order += 1;
            }
            *last = (*last).max(seq);
            n += 1;
            if measuring {
                r.hist.saturating_record(now.saturating_sub(sent).max(1));
            }
        }
        flow.delivered.fetch_add(n, Ordering::Relaxed);
        for w in &flow.wake {
            w.notify_one();
        }
        if measuring {
            r.measured += n;
            ctl.measured.fetch_add(n, Ordering::Relaxed);
        }
        if r.dropped.is_some() {
            break;
        }
    }
    if r.dropped.is_some() {
        flow.gate_off.store(true, Ordering::Relaxed);
        conn.shutdown().await;
    } else {
        conn.close().await;
    }
    r
}

/// `[publisher, sequence, sent_ns, payload, topic?]` from an event's arguments (the
/// topic index defaults to `own_topic`).
fn event_fields(args: Option<&[Value]>, own_topic: usize) -> Option<(usize, u64, u64, usize)> {
    let args = args?;
    let p = args.first()?.as_u64()?;
    let seq = args.get(1)?.as_u64()?;
    let sent = args.get(2)?.as_u64()?;
    let topic = match args.get(4) {
        Some(t) => usize::try_from(t.as_u64()?).ok()?,
        None => own_topic,
    };
    Some((usize::try_from(p).ok()?, seq, sent, topic))
}

async fn subscribe(conn: &mut Conn, topic: &str, options: Dict) -> Result<()> {
    let req = RequestId(1);
    let msg = Message::Subscribe(Subscribe { request: req, options, topic: topic.to_owned() });
    match conn.request(&msg, req).await? {
        Message::Subscribed(_) => Ok(()),
        Message::Error(e) => Err(BenchError::msg(format!("SUBSCRIBE {topic} failed: {}", e.error))),
        other => Err(BenchError::msg(format!("SUBSCRIBE answered with message type {}", other.code()))),
    }
}

/// Runs the scenario.
pub async fn run(args: PubsubArgs) -> Result<Report> {
    let c = &args.common;
    let ep = crate::client::Endpoint::parse(&c.url)?;
    let ser: Serializer = c.serializer.into();
    let n_topics = args.topics.max(1);
    let n_pubs = args.publishers.max(1);
    let id = run_id();
    let space = TopicSpace::new(&format!("{}.{id}", args.topic), n_topics, args.match_policy, args.patterns);
    let topics: Arc<Vec<String>> = Arc::new(space.topics.clone());
    let fanout = space.fanout(args.subscribers);
    let avg_fanout = (fanout.iter().sum::<u64>() as f64 / n_topics as f64).max(1.0);
    let flow = Arc::new(Flow {
        expected: AtomicU64::new(0),
        delivered: AtomicU64::new(0),
        backlog: ((args.inflight.max(1) * n_pubs) as f64 * avg_fanout) as u64,
        gate_off: AtomicBool::new(false),
        wake: (0..n_pubs).map(|_| Notify::new()).collect(),
    });
    let ctl = Control::new();
    let (done_tx, done_rx) = watch::channel(false);
    let mut subs = Vec::new();
    let sub_eps = if args.subscriber_url.is_empty() {
        vec![crate::client::Endpoint::parse(&c.url)?]
    } else {
        args.subscriber_url.iter().map(|u| crate::client::Endpoint::parse(u)).collect::<Result<Vec<_>>>()?
    };
    let mut sub_conns = Vec::with_capacity(args.subscribers);
    for sub_ep in sub_eps.iter().cycle().take(args.subscribers) {
        sub_conns.extend(join_many(sub_ep, ser, &c.realm, 1).await?);
    }
    for (i, mut conn) in sub_conns.into_iter().enumerate() {
        conn.set_frame_by_frame(args.frame_by_frame);
        let (uri, options) = space.subscription(i);
        subscribe(&mut conn, &uri, options).await?;
        let mine = space.topics_of(i);
        subs.push(tokio::spawn(subscriber(conn, mine, n_pubs, flow.clone(), ctl.clone(), done_rx.clone())));
    }
    let fanout = Arc::new(fanout);
    let interval = (args.rate > 0.0).then(|| Duration::from_secs_f64(n_pubs as f64 / args.rate));
    let mut pubs = Vec::new();
    for (i, mut conn) in join_many(&ep, ser, &c.realm, n_pubs).await?.into_iter().enumerate() {
        conn.set_frame_by_frame(args.frame_by_frame);
        let plan = PubPlan {
            index: i as u64,
            topics: topics.clone(),
            fanout: fanout.clone(),
            window: args.inflight.max(1),
            payload: payload_string(args.payload),
            interval,
            tagged: space.is_pattern(),
        };
        let (flow, ctl) = (flow.clone(), ctl.clone());
        pubs.push(tokio::spawn(async move {
            let r = publisher(conn, plan, flow, ctl.clone()).await;
            if let Err(e) = &r {
                ctl.fail(e.to_string());
            }
            r
        }));
    }
    let pids = Pids(c.router_pid.clone());
    let window =
        stats::run_window_perf(&ctl, c.warmup, c.duration, &pids, "deliveries", c.quiet, c.perf_syscalls)
            .await;
    let mut sent: Vec<Vec<u64>> = Vec::new();
    let (mut published, mut pub_errors) = (0u64, 0u64);
    for h in pubs {
        match h.await {
            Ok(Ok(r)) => {
                published += r.measured;
                pub_errors += r.errors;
                sent.push(r.sent);
            }
            Ok(Err(e)) => ctl.fail(e.to_string()),
            Err(e) => ctl.fail(format!("publisher task: {e}")),
        }
    }
    let settle = Instant::now() + SETTLE_TIMEOUT;
    while flow.delivered.load(Ordering::Relaxed) < flow.expected.load(Ordering::Relaxed)
        && !flow.gate_off.load(Ordering::Relaxed)
        && Instant::now() < settle
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    done_tx.send_replace(true);
    let mut hist = new_hist();
    let (mut delivered, mut lost, mut ooo, mut malformed) = (0u64, 0u64, 0u64, 0u64);
    let mut dropped: Vec<String> = Vec::new();
    for h in subs {
        let s = h.await.map_err(|e| BenchError::msg(format!("subscriber task: {e}")))?;
        hist.add(&s.hist).map_err(|e| BenchError::msg(format!("histogram: {e:?}")))?;
        delivered += s.measured;
        ooo += s.out_of_order;
        malformed += s.malformed;
        match s.dropped {
            Some(why) => dropped.push(why),
            None => {
                for (p, per_topic) in sent.iter().enumerate() {
                    for &t in &s.topics {
                        let want = per_topic.get(t).copied().unwrap_or(0);
                        lost += want.saturating_sub(s.received.get(&(p, t)).copied().unwrap_or(0));
                    }
                }
            }
        }
    }
    if let Some(why) = ctl.failure() {
        return Err(BenchError::msg(why));
    }
    let short = if ep.transport() == "websocket" { "ws" } else { "rs" };
    let label = format!(
        "pubsub-{short}-{}-{}x{}-t{}{}{}",
        ser.name(),
        n_pubs,
        args.subscribers,
        n_topics,
        space.label_suffix(),
        if args.frame_by_frame { "-fbf" } else { "" }
    );
    let mut r = Report::new("pubsub", c, &ep, label);
    r.write_mode(args.frame_by_frame);
    if !args.subscriber_url.is_empty() {
        r.set("subscriber_urls", args.subscriber_url.clone());
    }
    r.set("publishers", n_pubs);
    r.set("subscribers", args.subscribers);
    r.set("topics", n_topics);
    r.set("match", format!("{:?}", args.match_policy).to_lowercase());
    if space.is_pattern() {
        r.set("patterns", args.patterns.max(1));
    }
    r.set("inflight", args.inflight);
    r.set("payload", args.payload);
    r.set("rate_limit", args.rate);
    r.window(&window, delivered, "deliveries");
    r.set("published", published);
    r.set("published_rate", stats::r2(published as f64 / window.seconds.max(1e-9)));
    r.set("latency_us", stats::latency_json(&hist));
    r.set("lost", lost);
    r.set("out_of_order", ooo);
    r.set("malformed", malformed);
    r.set("publish_errors", pub_errors);
    r.set("dropped_subscribers", dropped.len());
    if let Some(why) = dropped.first() {
        r.set("dropped_reason", why.clone());
    }
    Ok(r)
}
