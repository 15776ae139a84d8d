//! Transports: they only move frames. Each accepted connection gets one task that
//! negotiates the serializer, then runs [`drive`]: frames in go to the session, frames
//! the router queued in the session's outbox go out, in batches. The HTTP bridge
//! ([`bridge`]) is the exception: HTTP requests, each a short-lived session; and
//! [`webhook`]s drive a session of the router's own, speaking HTTP to a service
//! ([`http_client`]).

pub mod batch;
pub mod bridge;
pub mod http_client;
pub mod listener;
pub mod origin;
pub mod rawsocket;
pub mod tls;
pub mod webhook;
pub mod websocket;
pub mod ws_guard;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt, StreamExt};

use crate::dict;
use crate::router::Router;
use crate::router::outbox::{Eviction, OutboxReceiver, outbox};
use crate::router::session::{Flow, Session};
use crate::wamp::codec::Serializer;
use crate::wamp::errors;
use crate::wamp::message::{Abort, Message};

/// Most frames written in one batch.
const BATCH: usize = 256;

/// Most frames read and handled in a row before what they produced is written.
///
/// The loop reads first: every frame already received is handled before the answers
/// go out, so a client that writes frame by frame (one CALL per write, as most do)
/// gets its answers in one write rather than one each, and the session it calls is
/// woken once per burst. Writing waits for nothing: as soon as a read would block,
/// what is queued is sent; a burst longer than this is cut so answers keep flowing.
const READ_BURST: u32 = 64;

/// How long, at most, a closed connection goes on reading what the peer still sends
/// ([`FrameTransport::linger`]); below the shutdown budget's slack for the last replies.
pub const LINGER: Duration = Duration::from_millis(250);

/// How many bytes, at most, a closed connection reads and discards while lingering.
pub const LINGER_BYTES: usize = 1024 * 1024;

/// What a transport read produced.
pub enum Incoming {
    /// A complete WAMP message.
    Frame(Bytes),
    /// A transport-level ping that must be answered with this payload.
    Ping(Bytes),
    /// A transport-level pong: the peer is alive.
    Pong,
}

/// A framed, bidirectional connection after the handshake.
pub trait FrameTransport {
    /// The transport's name in metrics ("websocket", "rawsocket").
    const KIND: &'static str;
    /// The router sends keepalive pings on this transport.
    const PINGS: bool;
    /// The next incoming frame; `Ok(None)` when the peer closed. Must be cancel-safe.
    fn recv(&mut self) -> impl Future<Output = std::io::Result<Option<Incoming>>> + Send;
    /// Writes frames in one go (one syscall where possible) and flushes.
    fn send(&mut self, frames: &[Bytes]) -> impl Future<Output = std::io::Result<()>> + Send;
    /// Answers a transport-level ping.
    fn pong(&mut self, payload: Bytes) -> impl Future<Output = std::io::Result<()>> + Send;
    /// Sends a transport-level ping (keepalive).
    fn ping(&mut self) -> impl Future<Output = std::io::Result<()>> + Send;
    /// Closes the connection cleanly.
    fn close(&mut self) -> impl Future<Output = ()> + Send;
    /// Reads and discards what the peer still sends until it closes too, for at most
    /// [`LINGER`] and [`LINGER_BYTES`]. Dropping a socket with unread input makes the
    /// kernel answer the peer with a reset, and a reset can cost the peer what it had
    /// not read yet: the GOODBYE or ABORT the router wrote last (a callee killed while
    /// its YIELDs were in flight lost its GOODBYE that way).
    fn linger(&mut self) -> impl Future<Output = ()> + Send;
    /// Switches between the small message limit of a connection not (or no longer)
    /// welcomed, `limits.max_message_size_before_welcome`, and the transport's own.
    fn set_welcomed(&mut self, welcomed: bool);
}

/// What the listener knows about an accepted connection.
#[derive(Clone, Debug)]
pub struct Accepted {
    /// The client's address; none over a Unix socket.
    pub peer: Option<std::net::SocketAddr>,
    /// What the TLS handshake established, on a TLS listener.
    pub tls: Option<Arc<tls::TlsInfo>>,
    /// When the handshakes (transport, then WAMP up to WELCOME) must be done:
    /// accept time plus `limits.handshake_timeout_ms`.
    pub deadline: tokio::time::Instant,
}

impl Accepted {
    /// A connection accepted now.
    pub fn now(router: &Router, peer: Option<std::net::SocketAddr>) -> Accepted {
        Accepted {
            peer,
            tls: None,
            deadline: tokio::time::Instant::now() + router.config.limits.handshake_timeout(),
        }
    }
}

/// Runs a session over a connected transport until either side ends it.
pub async fn drive<T: FrameTransport + Send>(
    router: Arc<Router>,
    mut io: T,
    serializer: Serializer,
    accepted: Accepted,
) {
    let limits = &router.config.limits;
    let (tx, mut rx) = outbox(limits.outbox_frames, limits.outbox_bytes);
    let grace = Duration::from_millis(limits.shutdown_grace_ms);
    let mut session = Session::new(router.clone(), serializer, tx, T::KIND);
    session.set_peer(accepted.peer);
    session.set_tls(accepted.tls.clone());
    // Until WELCOME (and again after a GOODBYE) the session must join by this time.
    let mut join_deadline = Some(accepted.deadline);
    let mut shutdown = router.shutdown_signal();
    let mut closing_deadline: Option<tokio::time::Instant> = None;
    let mut batch = Vec::new();
    let overflow = rx.overflow_watch();
    // The connection's two signals, made once and polled only when they were woken
    // (`FuturesUnordered` polls a future only after its own waker fired). Made anew in
    // every turn of the loop, each registered and unregistered a waiter under a lock
    // per frame (kept but polled every turn, each still took that lock). Measured on a
    // lone node, calls per router CPU-second: +7 % at 128 in flight, +16 % with clients
    // that write frame by frame (bench/README, "Hot path").
    let mut signals: FuturesUnordered<BoxFuture<'_, Signal>> = FuturesUnordered::new();
    signals.push(overflow.evicted().map(Signal::Evicted).boxed());
    signals.push(async move { Signal::Shutdown(shutdown.changed().await.is_ok()) }.boxed());
    let mut keepalive = Keepalive::new(limits.keepalive_interval().filter(|_| T::PINGS));
    let mut burst = 0;
    loop {
        // biased: the connection's controls first (cheap to check), then reading
        // before writing (READ_BURST)
        tokio::select! {
            biased;
            Some(signal) = signals.next() => match signal {
                Signal::Evicted(Eviction::SlowConsumer) => {
                    tracing::warn!("slow consumer: outbound queue full, disconnecting");
                    crate::observe::metrics::slow_consumer_disconnect();
                    rx.discard();
                    let abort = Message::Abort(Abort {
                        details: dict! { "message" => "outbound queue overflowed: the client is not reading fast enough" },
                        reason: errors::SLOW_CONSUMER.into(),
                    });
                    // The client is not reading: give the ABORT a bounded chance, then drop it.
                    let frame = [Bytes::from(serializer.encode(&abort))];
                    tokio::time::timeout(grace, io.send(&frame)).await.ok();
                    tokio::time::timeout(grace, io.close()).await.ok();
                    break;
                }
                Signal::Evicted(Eviction::Killed { reason, message }) => {
                    session.kick(&reason, &message).await;
                    rx.drain_now(&mut batch);
                    io.send(&batch).await.ok();
                    io.close().await;
                    break;
                }
                Signal::Shutdown(true) => {
                    if !session.begin_close(errors::SYSTEM_SHUTDOWN) {
                        io.close().await;
                        break;
                    }
                    closing_deadline = Some(tokio::time::Instant::now() + grace);
                }
                // the router's signal is gone without a shutdown: none will come
                Signal::Shutdown(false) => {}
            },
            _ = keepalive.tick() => match keepalive.check() {
                Liveness::Alive => {}
                Liveness::Ping => {
                    if io.ping().await.is_err() {
                        break;
                    }
                }
                Liveness::Dead => {
                    tracing::info!(peer = ?accepted.peer, "keepalive: the peer answered no ping, disconnecting");
                    tokio::time::timeout(grace, io.close()).await.ok();
                    break;
                }
            },
            () = sleep_until(join_deadline), if join_deadline.is_some() => {
                session.handshake_timeout().await;
                rx.drain_now(&mut batch);
                tokio::time::timeout(grace, io.send(&batch)).await.ok();
                tokio::time::timeout(grace, io.close()).await.ok();
                break;
            }
            () = sleep_until(closing_deadline), if closing_deadline.is_some() => {
                rx.drain_now(&mut batch);
                io.send(&batch).await.ok();
                io.close().await;
                break;
            }
            incoming = io.recv() => match incoming {
                Ok(Some(Incoming::Frame(frame))) => {
                    keepalive.seen = true;
                    let (flow, sent) = handle_while_sending(&mut session, &frame, &mut rx, &mut io, &mut batch).await;
                    if !sent {
                        break;
                    }
                    burst += 1;
                    if burst == READ_BURST {
                        burst = 0;
                        rx.drain_now(&mut batch);
                        if !batch.is_empty() && io.send(&batch).await.is_err() {
                            break;
                        }
                        batch.clear();
                    }
                    if flow == Flow::Close {
                        rx.drain_now(&mut batch);
                        io.send(&batch).await.ok();
                        io.close().await;
                        break;
                    }
                    join_deadline = join_deadline_after(&session, join_deadline, limits.handshake_timeout());
                    io.set_welcomed(session.is_joined());
                }
                Ok(Some(Incoming::Ping(payload))) => {
                    keepalive.seen = true;
                    if io.pong(payload).await.is_err() {
                        break;
                    }
                }
                Ok(Some(Incoming::Pong)) => keepalive.seen = true,
                Ok(None) => break,
                Err(e) => {
                    tracing::debug!(error = %e, "transport read failed");
                    if e.kind() == std::io::ErrorKind::InvalidData {
                        session.violation(&e.to_string()).await;
                        rx.drain_now(&mut batch);
                        io.send(&batch).await.ok();
                        io.close().await;
                    }
                    break;
                }
            },
            n = rx.recv_many(&mut batch, BATCH) => {
                burst = 0;
                if n == 0 || io.send(&batch).await.is_err() {
                    break;
                }
                batch.clear();
            }
        }
    }
    session.leave().await;
    tokio::time::timeout(LINGER, io.linger()).await.ok();
}

/// What ended a connection's wait for a signal.
enum Signal {
    /// The router evicted the session (slow consumer, or killed).
    Evicted(Eviction),
    /// The router is shutting down (`true`), or its signal is gone (`false`).
    Shutdown(bool),
}

/// Keepalive of one connection (`limits.keepalive_interval_ms`, on transports that
/// ping; TCP keepalive probes, set by the listener, cover every TCP connection): a tick every
/// interval; a frame, ping or pong from the peer marks it seen (a flag, no clock read
/// per frame). A tick after a silent interval sends a ping; the next silent one ends
/// the connection, so a dead peer goes 2 to 3 intervals after its last sign of life.
struct Keepalive {
    timer: Option<tokio::time::Interval>,
    /// Something arrived since the last tick.
    seen: bool,
    /// Silent intervals in a row.
    missed: u8,
}

/// What a keepalive tick found.
enum Liveness {
    Alive,
    Ping,
    Dead,
}

impl Keepalive {
    fn new(interval: Option<Duration>) -> Self {
        let timer = interval.map(|every| {
            let mut t = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            t
        });
        Keepalive { timer, seen: false, missed: 0 }
    }

    /// The next tick; never, when keepalive is off.
    async fn tick(&mut self) {
        match &mut self.timer {
            Some(t) => {
                t.tick().await;
            }
            None => std::future::pending().await,
        }
    }

    fn check(&mut self) -> Liveness {
        if std::mem::take(&mut self.seen) {
            self.missed = 0;
            return Liveness::Alive;
        }
        self.missed = self.missed.saturating_add(1);
        if self.missed == 1 { Liveness::Ping } else { Liveness::Dead }
    }
}

/// Lets the session handle one frame while the connection keeps sending what the
/// router queues for it: a request that waits (a SUBSCRIBE for its commit, a CALL for
/// a dynamic authorizer) does not stop events and results from going out, so the
/// client is not evicted as a slow consumer meanwhile. The next frame is read only
/// once this one is handled, which keeps the order WAMP requires. Returns the
/// session's flow and false when the connection failed while sending.
async fn handle_while_sending<T: FrameTransport + Send>(
    session: &mut Session,
    frame: &Bytes,
    rx: &mut OutboxReceiver,
    io: &mut T,
    batch: &mut Vec<Bytes>,
) -> (Flow, bool) {
    let handling = session.on_frame(frame);
    tokio::pin!(handling);
    let mut sending = true;
    loop {
        tokio::select! {
            biased;
            flow = &mut handling => return (flow, sending),
            n = rx.recv_many(batch, BATCH), if sending => {
                sending = n > 0 && io.send(batch).await.is_ok();
                batch.clear();
            }
        }
    }
}

/// The join deadline after a frame: none once joined; a fresh one when the session
/// is not joined (again, after a GOODBYE) and had none.
fn join_deadline_after(
    session: &Session,
    deadline: Option<tokio::time::Instant>,
    timeout: Duration,
) -> Option<tokio::time::Instant> {
    match session.is_joined() {
        true => None,
        false => deadline.or_else(|| Some(tokio::time::Instant::now() + timeout)),
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
