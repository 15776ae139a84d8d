//! The two streams a link writes, polled by the HTTP/2 connection itself: the
//! sender's queue as the request body ([`QueueBody`]) and the receiver's answers as
//! the response body ([`ReplyBody`]).
//!
//! Each was a task forwarding into a channel that tonic then read: one more task
//! wake-up per batch in each direction, on the latency path of every cross-node call.
//! Here the connection polls the queue directly, batching what is there when it polls.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use tokio::sync::mpsc;
use tokio_stream::Stream;
use tonic::Status;

use super::{BATCH, Numbered, Numbering, batches, pb};
use crate::ids::NodeId;
use crate::observe::metrics::LinkCounters;

/// A peer's queue, shared by the streams of its successive connections: only the
/// stream of the current connection (`generation`) takes frames from it.
pub(super) struct SharedQueue {
    rx: parking_lot::Mutex<mpsc::Receiver<Numbered>>,
    generation: AtomicU64,
}

impl SharedQueue {
    pub(super) fn new(rx: mpsc::Receiver<Numbered>) -> Arc<SharedQueue> {
        Arc::new(SharedQueue { rx: parking_lot::Mutex::new(rx), generation: AtomicU64::new(0) })
    }

    /// Ends the current connection's body: it takes nothing more from the queue.
    pub(super) fn retire(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Discards what is queued; how many frames.
    pub(super) fn discard(&self) -> u64 {
        let mut rx = self.rx.lock();
        let mut n = 0;
        while rx.try_recv().is_ok() {
            n += 1;
        }
        n
    }

    /// True once every sender is gone (the node is shutting down).
    pub(super) fn is_closed(&self) -> bool {
        self.rx.lock().is_closed()
    }
}

/// The request body of one connection to a peer: the queue's frames in numbered
/// batches, until the connection is retired or the queue closes.
pub(super) struct QueueBody {
    queue: Arc<SharedQueue>,
    generation: u64,
    me: NodeId,
    epoch: u64,
    counters: LinkCounters,
    ready: VecDeque<pb::Batch>,
    /// Where frames are taken from the queue, kept across polls: a buffer of
    /// [`BATCH`] frames made anew for every poll was a ~100 KB allocation each time,
    /// and glibc consolidates its free lists on every such request (2-3 % of a node's
    /// CPU in cross-node calls).
    taken: Vec<Numbered>,
}

impl QueueBody {
    /// The body of the next connection; retires the previous one's.
    pub(super) fn next(queue: &Arc<SharedQueue>, me: NodeId, epoch: u64, counters: LinkCounters) -> Self {
        let generation = queue.generation.fetch_add(1, Ordering::AcqRel) + 1;
        QueueBody {
            queue: queue.clone(),
            generation,
            me,
            epoch,
            counters,
            ready: VecDeque::new(),
            taken: Vec::new(),
        }
    }
}

impl Stream for QueueBody {
    type Item = pb::Batch;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<pb::Batch>> {
        if let Some(b) = self.ready.pop_front() {
            return Poll::Ready(Some(b));
        }
        if self.queue.generation.load(Ordering::Acquire) != self.generation {
            return Poll::Ready(None);
        }
        let this = &mut *self;
        let n = match this.queue.rx.lock().poll_recv_many(cx, &mut this.taken, BATCH) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(n) => n,
        };
        if n == 0 {
            return Poll::Ready(None);
        }
        let first_seq = this.taken.first().map_or(0, |f| f.seq);
        let frames = this.taken.drain(..).map(|f| f.frame).collect();
        self.counters.frames_sent.inc_by(n as u64);
        let (me, epoch) = (self.me, self.epoch);
        for batch in batches(me, epoch, first_seq, frames) {
            self.counters.bytes_sent.inc_by(prost::Message::encoded_len(&batch) as u64);
            self.ready.push_back(batch);
        }
        Poll::Ready(self.ready.pop_front())
    }
}

/// The response body of a stream from a peer: a refusal, if the stream is refused,
/// then the answers queued for the peer, numbered under an epoch of their own.
pub struct ReplyBody {
    refusal: mpsc::Receiver<Status>,
    answers: mpsc::Receiver<pb::Frame>,
    me: NodeId,
    numbering: Numbering,
    /// The peer's counters, known from its first batch.
    counters: Arc<OnceLock<LinkCounters>>,
    ready: VecDeque<pb::Batch>,
    /// Where answers are taken from the queue, kept across polls (see
    /// [`QueueBody`]'s).
    taken: Vec<pb::Frame>,
}

impl ReplyBody {
    pub(super) fn new(
        refusal: mpsc::Receiver<Status>,
        answers: mpsc::Receiver<pb::Frame>,
        me: NodeId,
        counters: Arc<OnceLock<LinkCounters>>,
    ) -> Self {
        ReplyBody {
            refusal,
            answers,
            me,
            numbering: Numbering::new(),
            counters,
            ready: VecDeque::new(),
            taken: Vec::new(),
        }
    }
}

impl Stream for ReplyBody {
    type Item = Result<pb::Batch, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if let Poll::Ready(Some(status)) = self.refusal.poll_recv(cx) {
            return Poll::Ready(Some(Err(status)));
        }
        if let Some(b) = self.ready.pop_front() {
            return Poll::Ready(Some(Ok(b)));
        }
        let this = &mut *self;
        match this.answers.poll_recv_many(cx, &mut this.taken, BATCH) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(0) => return Poll::Ready(None),
            Poll::Ready(_) => {}
        }
        let frames = this.taken.drain(..).collect();
        let me = this.me;
        let batches = this.numbering.batches(me, frames);
        for batch in batches {
            if let Some(c) = self.counters.get() {
                c.frames_sent.inc_by(batch.frames.len() as u64);
                c.bytes_sent.inc_by(prost::Message::encoded_len(&batch) as u64);
            }
            self.ready.push_back(batch);
        }
        Poll::Ready(self.ready.pop_front().map(Ok))
    }
}
