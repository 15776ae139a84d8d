//! After the storm: every reconnected session counts the EVENTs it receives while a
//! separate publisher (possibly on another node) publishes one acknowledged event
//! to every topic; all N×K must arrive, each once. Each event carries its topic's
//! number (`i×K + k`), so the topics that got nothing can be named.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use junction::dict;
use junction::ids::RequestId;
use junction::wamp::Message;
use junction::wamp::message::{Payload, Publish};
use junction::wamp::value::Value;
use tokio::sync::watch;

use super::session::{Plan, Tally};
use crate::client::{Conn, ConnectOpts, Endpoint, SETUP_TIMEOUT};
use crate::error::{BenchError, Result};

/// Publications not yet acknowledged at once.
const WINDOW: usize = 1000;
/// Topics without an event named in the report, at most.
const MISSING_SAMPLE: usize = 10;

/// What the verification saw.
pub struct Verified {
    /// Events the publisher's PUBLISHED acknowledged.
    pub published: u64,
    /// Events delivered to the subscribers.
    pub delivered: u64,
    /// Sessions that received exactly one event on each of their K topics.
    pub complete_sessions: u64,
    /// Topics that received no event.
    pub silent_topics: u64,
    /// Sessions whose connection ended (closed by the router, or an error) while
    /// events were awaited.
    pub closed_sessions: u64,
    /// The first reason one ended.
    pub first_close: Option<String>,
    /// Some of them (URIs).
    pub silent_sample: Vec<String>,
    /// From the first PUBLISH to the last delivery (or the timeout).
    pub seconds: f64,
}

/// Reads session `index`'s `conn` until `stop`, counting EVENTs in `total`; returns
/// how many events each of its `k` topics received, and why the connection ended
/// early if it did.
async fn count_events(
    index: usize,
    k: usize,
    mut conn: Conn,
    total: Arc<AtomicU64>,
    mut stop: watch::Receiver<bool>,
) -> (Vec<u32>, Option<String>) {
    let mut per_topic = vec![0u32; k];
    let mut msgs = Vec::new();
    loop {
        msgs.clear();
        tokio::select! {
            r = conn.recv_msgs(&mut msgs) => {
                for m in &msgs {
                    if let Message::Event(e) = m {
                        total.fetch_add(1, Ordering::Relaxed);
                        let n = e.payload.arguments().args.as_ref().and_then(|a| a.first()).and_then(Value::as_u64);
                        if let Some(slot) = n
                            .and_then(|n| (n as usize).checked_sub(index * k))
                            .and_then(|t| per_topic.get_mut(t))
                        {
                            *slot += 1;
                        }
                    }
                }
                match r {
                    Ok(true) => {}
                    Ok(false) => return (per_topic, Some("closed by the router".into())),
                    Err(e) => return (per_topic, Some(e.to_string())),
                }
            }
            _ = stop.changed() => return (per_topic, None),
        }
    }
}

/// Publishes one event per topic from a session at `url` and waits up to `timeout`
/// after the last PUBLISHED for every delivery.
pub async fn run(
    conns: Vec<(usize, Conn)>,
    plan: &Plan,
    url: &str,
    timeout: Duration,
    errors: &Tally,
) -> Result<Verified> {
    let k = plan.topics;
    let expected = (conns.len() * k) as u64;
    let total = Arc::new(AtomicU64::new(0));
    let (stop_tx, stop_rx) = watch::channel(false);
    let readers: Vec<_> = conns
        .into_iter()
        .map(|(i, c)| (i, tokio::spawn(count_events(i, k, c, total.clone(), stop_rx.clone()))))
        .collect();
    let start = Instant::now();
    let ep = Endpoint::parse(url)?;
    let indexes: Vec<usize> = readers.iter().map(|(i, _)| *i).collect();
    let published = publish_all(&ep, plan, &indexes, errors).await?;
    let deadline = Instant::now() + timeout;
    while total.load(Ordering::Relaxed) < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let seconds = start.elapsed().as_secs_f64();
    // Late duplicates would still show up: give them a moment.
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop_tx.send_replace(true);
    let (mut complete_sessions, mut silent_topics, mut silent_sample) = (0, 0, Vec::new());
    let (mut closed_sessions, mut first_close) = (0, None);
    for (i, r) in readers {
        let (per_topic, closed) = r.await.map_err(|e| BenchError::msg(e.to_string()))?;
        if let Some(why) = closed {
            closed_sessions += 1;
            first_close.get_or_insert(format!("session {i}: {why}"));
        }
        if per_topic.iter().all(|&n| n == 1) {
            complete_sessions += 1;
        }
        for (t, _) in per_topic.iter().enumerate().filter(|(_, n)| **n == 0) {
            silent_topics += 1;
            if silent_sample.len() < MISSING_SAMPLE {
                silent_sample.push(plan.topic(i, t));
            }
        }
    }
    let delivered = total.load(Ordering::Relaxed);
    Ok(Verified {
        published,
        delivered,
        complete_sessions,
        silent_topics,
        closed_sessions,
        first_close,
        silent_sample,
        seconds,
    })
}

/// Publishes to every topic of the sessions `indexes`, at most [`WINDOW`] unacknowledged;
/// the event on session i's topic t carries `i×K + t`.
async fn publish_all(ep: &Endpoint, plan: &Plan, indexes: &[usize], errors: &Tally) -> Result<u64> {
    let mut conn = Conn::connect(ep, plan.ser, &ConnectOpts::default()).await?;
    conn.join(&plan.realm).await?;
    let k = plan.topics;
    let total = indexes.len() * k;
    let (mut sent, mut answered, mut acked) = (0usize, 0usize, 0u64);
    let mut msgs = Vec::new();
    while answered < total {
        while sent < total && sent - answered < WINDOW {
            let (i, t) = (indexes[sent / k], sent % k);
            sent += 1;
            conn.send(&Message::Publish(Publish {
                request: RequestId(sent as u64),
                options: dict! { "acknowledge" => true },
                topic: plan.topic(i, t),
                payload: Payload::args(vec![Value::from((i * k + t) as u64)]),
            }))?;
        }
        conn.flush().await?;
        msgs.clear();
        let open = tokio::time::timeout(SETUP_TIMEOUT, conn.recv_msgs(&mut msgs))
            .await
            .map_err(|_| BenchError::msg("PUBLISHED timed out"))??;
        for m in msgs.drain(..) {
            match m {
                Message::Published(_) => {
                    answered += 1;
                    acked += 1;
                }
                Message::Error(e) => {
                    answered += 1;
                    errors.add(format!("publish refused: {}", e.error));
                }
                Message::Abort(a) => {
                    return Err(BenchError::msg(format!("publisher aborted: {}", a.reason)));
                }
                _ => {}
            }
        }
        if !open {
            return Err(BenchError::msg("the router closed the publisher's connection"));
        }
    }
    conn.close().await;
    Ok(acked)
}
