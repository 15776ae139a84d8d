//! The gRPC data path between nodes: one long-lived stream per ordered node pair,
//! opened by the sender, carrying batches of [`LinkMsg`] frames.
//!
//! Sending never waits: each peer has a bounded queue (policy: when it is full, or
//! the link is down, `send` fails at once — a call is then answered
//! `wamp.error.canceled`, an event for that node is dropped and counted). A task per
//! peer connects lazily, drains the queue in batches onto the stream, and reconnects
//! with backoff; the link counts as down from a failure until a reconnect succeeds.
//! A stream opened *by* that peer ends the backoff ([`Redial`]): after a restart the
//! link to the node is back as soon as the node is, not up to a second later.
//! HTTP/2 keepalive PINGs ([`KEEPALIVE`]) find a peer that stopped answering.
//!
//! Frames are numbered ([`crate::link::seq`]): a frame gets its number when the
//! peer's queue accepts it, under the epoch of this process's links, and the
//! numbering goes on across reconnects. The queue of a broken link is discarded, so
//! the receiver sees the next batch start past the number it expected and counts a
//! gap and the frames missed (`junction_link_gaps`, `junction_link_frames_missed`);
//! the sender counts every frame it did not send, by reason
//! (`junction_link_frames_dropped`: link down, queue full, queue discarded). Answers
//! on a reply path are numbered under an epoch of their stream.
//!
//! Answers travel back on the stream that carried the call: a node that receives
//! INVOKEs from node A sends their YIELD/ERROR frames on the response half of A's
//! stream (its *reply path*), so a call and its answer share one connection and the
//! answer never depends on the reverse link. When a stream breaks, both ends notice:
//! every call routed to that node is answered at once
//! ([`LinkHandler::node_lost`]).
//!
//! What arrives goes to a [`LinkHandler`] (the router, installed by the wiring that
//! builds both), so this layer knows the link messages ([`crate::link`]) and not the
//! router.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use dashmap::DashMap;
use tokio::sync::mpsc;
use tonic::{Request, Response, Status, Streaming};

pub mod body;
mod convert;

/// Code generated from `proto/link.proto`.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod pb {
    tonic::include_proto!("junction.link");
}

use super::secure::Credentials;
use crate::ids::{NodeId, random_id};
use crate::link::seq::Receiving;
use crate::link::{LinkDown, LinkHandler, LinkMsg, Links};
use crate::observe::metrics::{DropReason, LinkCounters};
use convert::{from_frame, to_frame};
use pb::{link_client::LinkClient, link_server::Link};

/// Frames queued per peer before `send` refuses.
const QUEUE: usize = 65_536;
/// Frames per batch on the stream.
const BATCH: usize = 512;
/// Bytes of frames per batch: a batch is cut once its frames reach this size, so it
/// stays well under the gRPC message limit ([`super::network::MAX_MESSAGE`]) whatever
/// the payloads (a larger frame travels alone).
const BATCH_BYTES: usize = 4 * 1024 * 1024;
/// First reconnect delay after a link broke; doubled up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(50);
/// Longest reconnect delay.
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// HTTP/2 PING interval on a link, also while it is idle: a peer that stops
/// answering (paused, cut off without a reset) breaks the link after
/// [`KEEPALIVE_TIMEOUT`] more, instead of when the cluster declares it down.
pub const KEEPALIVE: Duration = Duration::from_secs(1);
/// How long a link PING may go unanswered.
pub const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(2);

/// Finds a node's gRPC address from the cluster membership.
pub type Resolver = Arc<dyn Fn(NodeId) -> Option<String> + Send + Sync>;

/// A frame queued for a peer, with its number.
struct Numbered {
    seq: u64,
    frame: pb::Frame,
}

struct Peer {
    tx: mpsc::Sender<Numbered>,
    /// The number of the next frame the queue accepts; held while queueing, so
    /// numbers follow the queue's order.
    next: parking_lot::Mutex<u64>,
    /// False while the link is known to be broken.
    up: Arc<AtomicBool>,
    counters: LinkCounters,
}

/// Builds numbered batches: consecutive frames numbered from `next` under `epoch`.
struct Numbering {
    epoch: u64,
    next: u64,
}

impl Numbering {
    fn new() -> Self {
        Numbering { epoch: random_id(), next: 1 }
    }

    /// The batches of `frames` from node `from`, numbered.
    fn batches(&mut self, from: NodeId, frames: Vec<pb::Frame>) -> Vec<pb::Batch> {
        let first_seq = self.next;
        self.next += frames.len() as u64;
        batches(from, self.epoch, first_seq, frames)
    }
}

/// Cuts consecutive `frames` numbered from `first_seq` into batches of at most
/// [`BATCH_BYTES`] (a larger frame alone).
fn batches(from: NodeId, epoch: u64, first_seq: u64, frames: Vec<pb::Frame>) -> Vec<pb::Batch> {
    let total: usize = frames.iter().map(prost::Message::encoded_len).sum();
    if total <= BATCH_BYTES {
        // the usual case: one batch, the frames moved as they are
        return vec![pb::Batch { from_node: from.0, frames, epoch, first_seq }];
    }
    let mut out = Vec::new();
    let mut current = pb::Batch { from_node: from.0, frames: Vec::new(), epoch, first_seq };
    let mut bytes = 0;
    for (seq, frame) in (first_seq..).zip(frames) {
        let len = prost::Message::encoded_len(&frame);
        if !current.frames.is_empty() && bytes + len > BATCH_BYTES {
            let next = pb::Batch { from_node: from.0, frames: Vec::new(), epoch, first_seq: seq };
            out.push(std::mem::replace(&mut current, next));
            bytes = 0;
        }
        bytes += len;
        current.frames.push(frame);
    }
    if !current.frames.is_empty() {
        out.push(current);
    }
    out
}

/// Counts what a batch from a peer revealed: its frames, and a gap in their numbering.
fn arrived(counters: &LinkCounters, seen: &mut Receiving, node: NodeId, batch: &pb::Batch) {
    let n = batch.frames.len() as u64;
    counters.frames_received.inc_by(n);
    counters.bytes_received.inc_by(prost::Message::encoded_len(batch) as u64);
    let arrival = seen.arrive(batch.epoch, batch.first_seq, n);
    if arrival.gap() {
        counters.gaps.inc();
        counters.frames_missed.inc_by(arrival.missed);
        tracing::info!(%node, missed = arrival.missed, "link frames missed: a gap in their numbering");
    }
}

/// Reply paths: for each node whose stream to us is open, the queue of frames sent
/// back on that stream's response half.
pub type ReplyPaths = DashMap<NodeId, mpsc::Sender<pb::Frame>>;

/// Wakes the link to a node out of its reconnect backoff: a stream *from* that node
/// just opened, so it is up again and the link to it need not wait out the backoff
/// (after a restart, events for the node's subscribers would be dropped meanwhile).
#[derive(Default)]
pub struct Redial(DashMap<NodeId, Arc<tokio::sync::Notify>>);

impl Redial {
    fn waker(&self, node: NodeId) -> Arc<tokio::sync::Notify> {
        self.0.entry(node).or_default().clone()
    }

    /// Cuts the link to `node`'s current (or next) backoff short.
    fn kick(&self, node: NodeId) {
        self.waker(node).notify_one();
    }
}

/// Where the frames other nodes send are delivered: this node's id and its
/// handler. The gRPC server starts before the router exists (a node must serve Raft
/// to join), so it is set once the router is built.
pub struct Inbound {
    /// This node.
    pub node: NodeId,
    /// Takes the frames and the loss of a node.
    pub handler: Arc<dyn LinkHandler>,
}

/// The links from this node to every other node.
pub struct GrpcLinks {
    me: NodeId,
    handler: Weak<dyn LinkHandler>,
    /// Credentials for connecting to peers (the cluster's TLS, if any).
    creds: Credentials,
    resolve: Resolver,
    peers: DashMap<NodeId, Arc<Peer>>,
    replies: Arc<ReplyPaths>,
    redial: Arc<Redial>,
    /// The epoch this process numbers its frames under.
    epoch: u64,
    /// Events dropped because a link was down or full.
    pub dropped_events: AtomicU64,
}

impl GrpcLinks {
    /// Links from node `me`, delivering what peers answer to `handler`, connecting
    /// with `creds` to peers found through `resolve`.
    pub fn new(
        me: NodeId,
        handler: Weak<dyn LinkHandler>,
        creds: Credentials,
        resolve: Resolver,
        replies: Arc<ReplyPaths>,
        redial: Arc<Redial>,
    ) -> Arc<GrpcLinks> {
        Arc::new(GrpcLinks {
            me,
            handler,
            creds,
            resolve,
            peers: DashMap::new(),
            replies,
            redial,
            epoch: random_id(),
            dropped_events: AtomicU64::new(0),
        })
    }

    fn peer(&self, node: NodeId) -> Arc<Peer> {
        let entry = self.peers.entry(node).or_insert_with(|| {
            let (tx, rx) = mpsc::channel(QUEUE);
            let up = Arc::new(AtomicBool::new(true));
            let counters = crate::observe::metrics::link(node.0);
            let peer = PeerTask {
                me: self.me,
                node,
                handler: self.handler.clone(),
                creds: self.creds.clone(),
                resolve: self.resolve.clone(),
                epoch: self.epoch,
                counters: counters.clone(),
                redial: self.redial.waker(node),
                was_connected: AtomicBool::new(false),
            };
            tokio::spawn(peer.run(rx, up.clone()));
            Arc::new(Peer { tx, next: parking_lot::Mutex::new(1), up, counters })
        });
        entry.clone()
    }
}

impl GrpcLinks {
    /// The state of every outbound link, for `junction cluster status`.
    pub fn states(&self) -> Vec<crate::cluster::LinkState> {
        let mut out: Vec<_> = self
            .peers
            .iter()
            .map(|p| crate::cluster::LinkState {
                node: p.key().0,
                addr: (self.resolve)(*p.key()).unwrap_or_default(),
                state: if p.up.load(Ordering::Relaxed) { "up" } else { "down" }.into(),
                frames_sent: p.counters.frames_sent.get(),
                frames_dropped: p.counters.dropped_total(),
                frames_missed: p.counters.frames_missed.get(),
            })
            .collect();
        out.sort_by_key(|l| l.node);
        out
    }
}

impl Links for GrpcLinks {
    fn send(&self, node: NodeId, msg: LinkMsg) -> Result<(), LinkDown> {
        if matches!(
            msg,
            LinkMsg::Yield { .. }
                | LinkMsg::Error { .. }
                | LinkMsg::Answer { .. }
                | LinkMsg::InterestAck { .. }
        ) {
            let reply = self.replies.get(&node).map(|r| r.clone());
            if let Some(reply) = reply {
                match reply.try_send(to_frame(&msg)) {
                    Ok(()) => return Ok(()),
                    Err(e) => tracing::debug!(%node, error = %e, "reply path unavailable, using the link"),
                }
            }
        }
        let peer = self.peer(node);
        let refused = if peer.up.load(Ordering::Relaxed) {
            let frame = to_frame(&msg);
            let mut next = peer.next.lock();
            match peer.tx.try_send(Numbered { seq: *next, frame }) {
                Ok(()) => {
                    *next += 1;
                    return Ok(());
                }
                Err(mpsc::error::TrySendError::Full(_)) => DropReason::Full,
                Err(mpsc::error::TrySendError::Closed(_)) => DropReason::Down,
            }
        } else {
            DropReason::Down
        };
        peer.counters.dropped(refused, 1);
        if matches!(msg, LinkMsg::Event { .. }) {
            self.dropped_events.fetch_add(1, Ordering::Relaxed);
        }
        Err(LinkDown(node))
    }

    fn is_up(&self, node: NodeId) -> bool {
        self.peers.get(&node).is_none_or(|p| p.up.load(Ordering::Relaxed))
    }

    fn hears_from(&self, node: NodeId) -> bool {
        self.replies.contains_key(&node)
    }
}

/// The task keeping the stream to one peer alive.
struct PeerTask {
    me: NodeId,
    node: NodeId,
    handler: Weak<dyn LinkHandler>,
    creds: Credentials,
    resolve: Resolver,
    /// The epoch this process numbers its frames under.
    epoch: u64,
    counters: LinkCounters,
    /// Notified when a stream from the peer opens: reconnect now.
    redial: Arc<tokio::sync::Notify>,
    /// The link was up once: coming up again counts as a reconnect.
    was_connected: AtomicBool,
}

enum Pump {
    QueueClosed,
    Broken(String),
    /// Connecting was refused: nothing listens on the peer's port.
    Refused(String),
}

impl PeerTask {
    /// Connects, pumps the queue onto the stream, and reconnects with backoff.
    async fn run(self, rx: mpsc::Receiver<Numbered>, up: Arc<AtomicBool>) {
        let queue = body::SharedQueue::new(rx);
        let mut backoff = MIN_BACKOFF;
        // the node was lost and calls may wait out its fence
        let mut fencing = false;
        let mut answers = Receiving::default();
        loop {
            let mut gone = false;
            if let Some(addr) = (self.resolve)(self.node) {
                match self.pump(&addr, &queue, &up, &mut answers).await {
                    Pump::QueueClosed => return,
                    Pump::Broken(why) => tracing::info!(node = %self.node, %addr, reason = %why, "link down"),
                    Pump::Refused(why) => {
                        tracing::debug!(node = %self.node, %addr, reason = %why, "link refused");
                        gone = true;
                    }
                }
            }
            queue.retire();
            if queue.is_closed() {
                return;
            }
            let was_up = up.swap(false, Ordering::Relaxed);
            self.counters.dropped(DropReason::Discarded, queue.discard());
            let Some(handler) = self.handler.upgrade() else { return };
            if was_up {
                handler.node_lost(self.node);
                fencing = true;
                backoff = MIN_BACKOFF;
            }
            if gone && fencing {
                handler.node_gone(self.node);
                fencing = false;
            }
            drop(handler);
            tokio::select! {
                () = tokio::time::sleep(backoff) => backoff = (backoff * 2).min(MAX_BACKOFF),
                () = self.redial.notified() => backoff = MIN_BACKOFF,
            }
        }
    }

    async fn pump(
        &self,
        addr: &str,
        queue: &Arc<body::SharedQueue>,
        up: &AtomicBool,
        answers: &mut Receiving,
    ) -> Pump {
        let creds = &self.creds;
        let endpoint = match creds.endpoint(addr) {
            Ok(e) => e
                .connect_timeout(Duration::from_secs(1))
                .tcp_nodelay(true)
                .http2_keep_alive_interval(KEEPALIVE)
                .keep_alive_timeout(KEEPALIVE_TIMEOUT)
                .keep_alive_while_idle(true),
            Err(e) => return Pump::Broken(e.to_string()),
        };
        let channel = match endpoint.connect().await {
            Ok(c) => c,
            Err(e) if super::network::refused(&e) => return Pump::Refused(e.to_string()),
            Err(e) => return Pump::Broken(e.to_string()),
        };
        let mut client = LinkClient::with_interceptor(channel, creds.interceptor())
            .max_decoding_message_size(super::network::MAX_MESSAGE)
            .max_encoding_message_size(super::network::MAX_MESSAGE);
        let requests = body::QueueBody::next(queue, self.me, self.epoch, self.counters.clone());
        let mut responses = match client.stream(requests).await {
            Ok(r) => r.into_inner(),
            Err(e) => return Pump::Broken(e.to_string()),
        };
        up.store(true, Ordering::Relaxed);
        if self.was_connected.swap(true, Ordering::Relaxed) {
            self.counters.reconnects.inc();
        }
        if let Some(handler) = self.handler.upgrade() {
            handler.link_up(self.node);
        }
        // the request body takes the queue's frames itself (see `body`); this task
        // hands over what comes back: answers to the calls it carried
        loop {
            match responses.message().await {
                Ok(Some(batch)) => {
                    arrived(&self.counters, answers, self.node, &batch);
                    let Some(handler) = self.handler.upgrade() else { return Pump::QueueClosed };
                    deliver(handler.as_ref(), self.node, batch);
                }
                Ok(None) if queue.is_closed() => return Pump::QueueClosed,
                Ok(None) => return Pump::Broken("peer ended the stream".into()),
                Err(e) => return Pump::Broken(e.to_string()),
            }
        }
    }
}

/// Hands a batch of frames from `node` to the handler.
fn deliver(handler: &dyn LinkHandler, node: NodeId, batch: pb::Batch) {
    for frame in batch.frames {
        match from_frame(frame) {
            Ok(msg) => handler.on_link(node, msg),
            Err(e) => tracing::warn!(%node, error = %e, "malformed link frame dropped"),
        }
    }
}

/// The receiving side: hands frames from other nodes to the local handler and sends
/// answers back on the same stream. The gRPC server starts before the router exists
/// (a node must serve Raft to join), so the handler arrives later through `slot`
/// ([`Inbound`]); streams opened before that are refused.
///
/// A stream speaks for one node: the `from_node` of its first batch. A later batch
/// naming another node ends the stream (`PERMISSION_DENIED`), and with mutual TLS
/// (`tls`) every `from_node` must be a node id the client certificate names
/// ([`crate::cluster::secure`]).
pub struct LinkService {
    slot: Arc<OnceLock<Inbound>>,
    replies: Arc<ReplyPaths>,
    redial: Arc<Redial>,
    tls: bool,
    /// The numbering each node's frames arrived with, across its streams.
    seen: Arc<DashMap<NodeId, Receiving>>,
}

impl LinkService {
    /// A service delivering to the handler `slot` will hold; `tls`: the cluster
    /// runs mutual TLS, so streams are bound to the certificate's node ids.
    pub fn new(
        slot: Arc<OnceLock<Inbound>>,
        replies: Arc<ReplyPaths>,
        redial: Arc<Redial>,
        tls: bool,
    ) -> Self {
        LinkService { slot, replies, redial, tls, seen: Arc::default() }
    }

    /// The node ids the client certificate names (`None`: no TLS, any id).
    fn allowed(&self, req: &Request<Streaming<pb::Batch>>) -> Result<Option<BTreeSet<u64>>, Status> {
        use crate::cluster::secure::{IdentityError, cert_node_ids};
        if !self.tls {
            return Ok(None);
        }
        let certs = req.peer_certs().ok_or(IdentityError::NoCertificate)?;
        let leaf = certs.first().ok_or(IdentityError::NoCertificate)?;
        let ids = cert_node_ids(leaf.as_ref())?;
        if ids.is_empty() {
            return Err(IdentityError::WrongNode { claimed: 0, named: Vec::new() }.into());
        }
        Ok(Some(ids))
    }
}

#[tonic::async_trait]
impl Link for LinkService {
    type StreamStream = body::ReplyBody;

    async fn stream(
        &self,
        req: Request<Streaming<pb::Batch>>,
    ) -> Result<Response<Self::StreamStream>, Status> {
        let allowed = self.allowed(&req)?;
        let inbound_to = self.slot.get().ok_or_else(|| Status::unavailable("router not started yet"))?;
        let (me, handler) = (inbound_to.node, inbound_to.handler.clone());
        let mut inbound = req.into_inner();
        let replies = self.replies.clone();
        let (refuse, refusal) = mpsc::channel(1);
        let (reply_tx, reply_rx) = mpsc::channel::<pb::Frame>(QUEUE);
        let seen = self.seen.clone();
        let redial = self.redial.clone();
        // the peer's counters, known from its first batch
        let counters: Arc<OnceLock<LinkCounters>> = Arc::default();
        let body = body::ReplyBody::new(refusal, reply_rx, me, counters.clone());
        tokio::spawn(async move {
            let mut from = None;
            while let Ok(Some(batch)) = inbound.message().await {
                let node = NodeId(batch.from_node);
                let named = allowed.as_ref().is_none_or(|ids| ids.contains(&node.0));
                if !named || from.is_some_and(|f| f != node) {
                    tracing::warn!(%node, first = ?from, "link stream refused: it speaks for another node");
                    let why = format!("this stream may not speak for node {node}");
                    refuse.send(Status::permission_denied(why)).await.ok();
                    break;
                }
                if from.is_none() {
                    counters.set(crate::observe::metrics::link(node.0)).ok();
                    replies.insert(node, reply_tx.clone());
                    redial.kick(node);
                    from = Some(node);
                }
                if let Some(c) = counters.get() {
                    arrived(c, &mut seen.entry(node).or_default(), node, &batch);
                }
                deliver(handler.as_ref(), node, batch);
            }
            if let Some(node) = from {
                stream_closed(&replies, handler.as_ref(), node, &reply_tx);
            }
        });
        Ok(Response::new(body))
    }
}

/// The stream `node` sent on, answered through `reply`, ended. Only the node's current
/// stream speaks for it: when the node reconnected and an older stream ends after the
/// newer one opened (a connection that died during a partition, noticed after it
/// healed), what the new stream said stays, and so do the calls and invocations
/// carried since.
fn stream_closed(
    replies: &ReplyPaths,
    handler: &dyn LinkHandler,
    node: NodeId,
    reply: &mpsc::Sender<pb::Frame>,
) {
    if replies.remove_if(&node, |_, tx| tx.same_channel(reply)).is_some() {
        handler.stream_ended(node);
        handler.node_lost(node);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records the nodes it was told of.
    #[derive(Default)]
    struct Told(parking_lot::Mutex<Vec<(&'static str, u64)>>);

    impl LinkHandler for Told {
        fn on_link(&self, _: NodeId, _: LinkMsg) {}
        fn node_lost(&self, node: NodeId) {
            self.0.lock().push(("lost", node.0));
        }
        fn link_up(&self, _: NodeId) {}
        fn stream_ended(&self, node: NodeId) {
            self.0.lock().push(("ended", node.0));
        }
    }

    #[test]
    fn an_older_stream_ending_after_the_node_reconnected_loses_nothing() {
        let replies = ReplyPaths::default();
        let told = Told::default();
        let (old, _old_rx) = mpsc::channel(1);
        let (new, _new_rx) = mpsc::channel(1);
        replies.insert(NodeId(2), old.clone());
        replies.insert(NodeId(2), new.clone());
        stream_closed(&replies, &told, NodeId(2), &old);
        assert!(told.0.lock().is_empty(), "the node's current stream is open");
        assert!(replies.contains_key(&NodeId(2)));
        stream_closed(&replies, &told, NodeId(2), &new);
        assert_eq!(*told.0.lock(), [("ended", 2), ("lost", 2)]);
        assert!(!replies.contains_key(&NodeId(2)));
    }

    fn frame(payload_len: usize) -> pb::Frame {
        let yield_ = pb::Yield {
            call: 1,
            payload: vec![0; payload_len],
            progress: false,
            details: Vec::new(),
            payload_format: 0,
        };
        pb::Frame { kind: Some(pb::frame::Kind::Yield(yield_)) }
    }

    #[test]
    fn batches_are_cut_by_bytes_and_stay_numbered() {
        let frames =
            vec![frame(10), frame(BATCH_BYTES / 2), frame(BATCH_BYTES / 2), frame(BATCH_BYTES * 2), frame(1)];
        let out = batches(NodeId(1), 7, 40, frames);
        let shape: Vec<(u64, usize)> = out.iter().map(|b| (b.first_seq, b.frames.len())).collect();
        assert_eq!(shape, [(40, 2), (42, 1), (43, 1), (44, 1)]);
        assert!(out.iter().all(|b| b.epoch == 7 && b.from_node == 1));
        let mut n = Numbering { epoch: 3, next: 1 };
        assert_eq!(n.batches(NodeId(2), vec![frame(1), frame(1)])[0].first_seq, 1);
        assert_eq!(n.batches(NodeId(2), vec![frame(1)])[0].first_seq, 3);
    }
}
