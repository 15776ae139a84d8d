//! One storm session: connect (bounded by the shared connection-attempt semaphore),
//! join, and subscribe its K topics, pipelined, until all K are SUBSCRIBED. Any
//! failure is counted by its reason in the [`Tally`] and retried after a short
//! pause: a refused or lost connection reconnects and subscribes everything again,
//! a SUBSCRIBE answered with ERROR is sent again on the same session.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use junction::ids::RequestId;
use junction::wamp::Message;
use junction::wamp::codec::Serializer;
use junction::wamp::message::Subscribe;
use junction::wamp::value::Dict;
use tokio::sync::Semaphore;

use crate::client::{Conn, ConnectOpts, Endpoint, SETUP_TIMEOUT};
use crate::error::{BenchError, Result};
use crate::sessions::source_for;

/// Failures counted by reason (an ABORT or ERROR URI, or the transport error).
#[derive(Default)]
pub struct Tally(Mutex<BTreeMap<String, u64>>);

impl Tally {
    /// Counts one failure.
    pub fn add(&self, why: String) {
        if let Ok(mut m) = self.0.lock() {
            *m.entry(why).or_default() += 1;
        }
    }

    /// The counts so far.
    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        self.0.lock().map(|m| m.clone()).unwrap_or_default()
    }
}

/// What every session of one phase (setup or storm) shares.
pub struct Plan {
    /// Where to connect.
    pub ep: Endpoint,
    /// Serializer.
    pub ser: Serializer,
    /// Realm to join.
    pub realm: String,
    /// Topic prefix of this run; session i's topic k is `<base>.s<i>.t<k>`.
    pub base: String,
    /// Topics per session.
    pub topics: usize,
    /// Source addresses to spread connections over (0: the kernel's choice).
    pub sources: usize,
    /// Connection attempts in progress at once.
    pub gate: Arc<Semaphore>,
    /// Failures of this phase.
    pub errors: Arc<Tally>,
    /// No new attempt after this.
    pub deadline: Instant,
}

impl Plan {
    /// Session `i`'s topic `k`.
    pub fn topic(&self, i: usize, k: usize) -> String {
        format!("{}.s{i}.t{k}", self.base)
    }
}

/// A session with all its subscriptions.
pub struct Established {
    /// The session's index (its topics are `<base>.s<index>.t<k>`).
    pub index: usize,
    /// The joined connection.
    pub conn: Conn,
    /// From its first connection attempt (once admitted by the gate) to its last SUBSCRIBED.
    pub took: Duration,
    /// Connection attempts it needed.
    pub attempts: u32,
}

/// A short, per-session varied pause before a retry (10 to 99 ms).
fn backoff(i: usize, attempt: u32) -> Duration {
    let spread = (i as u64).wrapping_mul(7919).wrapping_add(u64::from(attempt).wrapping_mul(104_729)) % 90;
    Duration::from_millis(10 + spread)
}

/// Connects session `i`, joins and subscribes all its topics, retrying until the deadline.
pub async fn establish(plan: &Plan, i: usize) -> Result<Established> {
    let mut first: Option<Instant> = None;
    let mut attempts = 0u32;
    loop {
        if Instant::now() >= plan.deadline {
            return Err(BenchError::msg(format!("session {i}: gave up after {attempts} attempts")));
        }
        attempts += 1;
        let joined = {
            let _permit = plan.gate.acquire().await.map_err(|e| BenchError::msg(e.to_string()))?;
            first.get_or_insert_with(Instant::now);
            connect(plan, i).await
        };
        match joined {
            Ok(conn) => match subscribe_all(conn, plan, i).await {
                Ok(conn) => {
                    let took = first.map(|t| t.elapsed()).unwrap_or_default();
                    return Ok(Established { index: i, conn, took, attempts });
                }
                Err(e) => plan.errors.add(e.to_string()),
            },
            Err(e) => plan.errors.add(e.to_string()),
        }
        tokio::time::sleep(backoff(i, attempts)).await;
    }
}

async fn connect(plan: &Plan, i: usize) -> Result<Conn> {
    let opts =
        ConnectOpts { source: source_for(i, plan.sources, &plan.ep), small_buffers: true, relay_key: None };
    let mut conn = Conn::connect(&plan.ep, plan.ser, &opts).await?;
    conn.join(&plan.realm).await?;
    Ok(conn)
}

/// Sends all SUBSCRIBEs at once and waits for every SUBSCRIBED; those answered
/// with ERROR are counted and sent again.
async fn subscribe_all(mut conn: Conn, plan: &Plan, i: usize) -> Result<Conn> {
    let mut pending: HashMap<u64, usize> = HashMap::new();
    let mut todo: Vec<usize> = (0..plan.topics).collect();
    let mut refused = Vec::new();
    let (mut next, mut done, mut round) = (0u64, 0usize, 0u32);
    let mut msgs = Vec::new();
    while done < plan.topics {
        for k in todo.drain(..) {
            next += 1;
            pending.insert(next, k);
            let topic = plan.topic(i, k);
            conn.send(&Message::Subscribe(Subscribe {
                request: RequestId(next),
                options: Dict::new(),
                topic,
            }))?;
        }
        conn.flush().await?;
        msgs.clear();
        let open = tokio::time::timeout(SETUP_TIMEOUT, conn.recv_msgs(&mut msgs))
            .await
            .map_err(|_| BenchError::msg("SUBSCRIBED timed out"))??;
        for m in msgs.drain(..) {
            match m {
                Message::Subscribed(s) if pending.remove(&s.request.0).is_some() => done += 1,
                Message::Error(e) => {
                    if let Some(k) = pending.remove(&e.request.0) {
                        plan.errors.add(format!("subscribe refused: {}", e.error));
                        refused.push(k);
                    }
                }
                Message::Abort(a) => return Err(BenchError::msg(format!("router aborted: {}", a.reason))),
                _ => {}
            }
        }
        if !open && done < plan.topics {
            return Err(BenchError::msg("connection closed by the router"));
        }
        if !refused.is_empty() {
            round += 1;
            if Instant::now() >= plan.deadline {
                return Err(BenchError::msg("subscriptions refused until the deadline"));
            }
            tokio::time::sleep(backoff(i, round)).await;
            todo.append(&mut refused);
        }
    }
    Ok(conn)
}
