//! After the storm: every reconnected session counts the EVENTs it receives while a
//! separate publisher (possibly on another node) publishes one acknowledged event
//! to every topic; all N×K must arrive, each once.

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

/// What the verification saw.
pub struct Verified {
    /// Events the publisher's PUBLISHED acknowledged.
    pub published: u64,
    /// Events delivered to the subscribers.
    pub delivered: u64,
    /// Sessions that received exactly their K events.
    pub complete_sessions: u64,
    /// From the first PUBLISH to the last delivery (or the timeout).
    pub seconds: f64,
}

/// Reads `conn` until `stop`, counting EVENTs in `total`; returns this session's count.
async fn count_events(mut conn: Conn, total: Arc<AtomicU64>, mut stop: watch::Receiver<bool>) -> u64 {
    let mut msgs = Vec::new();
    let mut mine = 0u64;
    loop {
        msgs.clear();
        tokio::select! {
            r = conn.recv_msgs(&mut msgs) => {
                let n = msgs.iter().filter(|m| matches!(m, Message::Event(_))).count() as u64;
                mine += n;
                total.fetch_add(n, Ordering::Relaxed);
                if !matches!(r, Ok(true)) {
                    return mine;
                }
            }
            _ = stop.changed() => return mine,
        }
    }
}

/// Publishes one event per topic from a session at `url` and waits for every delivery.
pub async fn run(
    conns: Vec<Conn>,
    plan: &Plan,
    url: &str,
    timeout: Duration,
    errors: &Tally,
) -> Result<Verified> {
    let expected = (conns.len() * plan.topics) as u64;
    let total = Arc::new(AtomicU64::new(0));
    let (stop_tx, stop_rx) = watch::channel(false);
    let readers: Vec<_> =
        conns.into_iter().map(|c| tokio::spawn(count_events(c, total.clone(), stop_rx.clone()))).collect();
    let start = Instant::now();
    let ep = Endpoint::parse(url)?;
    let sessions = readers.len();
    let published = publish_all(&ep, plan, sessions, errors).await?;
    let deadline = start + timeout;
    while total.load(Ordering::Relaxed) < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let seconds = start.elapsed().as_secs_f64();
    // Late duplicates would still show up: give them a moment.
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop_tx.send_replace(true);
    let mut complete_sessions = 0;
    for r in readers {
        if r.await.map_err(|e| BenchError::msg(e.to_string()))? == plan.topics as u64 {
            complete_sessions += 1;
        }
    }
    Ok(Verified { published, delivered: total.load(Ordering::Relaxed), complete_sessions, seconds })
}

/// Publishes to every topic of `sessions` sessions, at most [`WINDOW`] unacknowledged.
async fn publish_all(ep: &Endpoint, plan: &Plan, sessions: usize, errors: &Tally) -> Result<u64> {
    let mut conn = Conn::connect(ep, plan.ser, &ConnectOpts::default()).await?;
    conn.join(&plan.realm).await?;
    let total = sessions * plan.topics;
    let (mut sent, mut answered, mut acked) = (0usize, 0usize, 0u64);
    let mut msgs = Vec::new();
    while answered < total {
        while sent < total && sent - answered < WINDOW {
            let (i, k) = (sent / plan.topics, sent % plan.topics);
            sent += 1;
            conn.send(&Message::Publish(Publish {
                request: RequestId(sent as u64),
                options: dict! { "acknowledge" => true },
                topic: plan.topic(i, k),
                payload: Payload::args(vec![Value::from(sent as u64)]),
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
