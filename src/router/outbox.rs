//! A session's bounded outbound queue, and the slow-consumer policy.
//!
//! Everything the router sends to a session (replies, events, invocations) is an
//! encoded frame pushed into this queue without waiting; the connection task drains
//! it onto the socket in batches. The queue is bounded twice: by frame count and by
//! queued bytes.
//!
//! **Slow-consumer policy.** A push never blocks the router. When a push would
//! exceed either bound, the frame is dropped, the queue is marked *overflowed* and
//! the connection task is woken: it discards what is queued, sends ABORT
//! `junction.error.slow_consumer` and closes the transport; the session's calls in
//! flight are answered by the normal leave path. The queue bounds are the grace a
//! consumer gets (by default 8192 frames or 64 MiB, configurable under `[limits]`),
//! so the router's memory per session stays bounded whatever the client does.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use bytes::Bytes;
use tokio::sync::{Notify, mpsc};

/// Why a frame was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushError {
    /// The queue overflowed; the session is being disconnected.
    Overflow,
    /// The session's connection is gone.
    Closed,
}

struct Shared {
    queued_bytes: AtomicUsize,
    max_bytes: usize,
    overflowed: AtomicBool,
    /// Set once the router said GOODBYE on its own initiative: nothing may follow it.
    sealed: AtomicBool,
    /// Set when the router kills the session (meta API): GOODBYE reason and message.
    killed: std::sync::Mutex<Option<(String, String)>>,
    wake: Notify,
}

/// Why the connection task must end the session on the router's initiative.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Eviction {
    /// The outbound queue overflowed (slow consumer).
    SlowConsumer,
    /// The session was killed, with this GOODBYE reason and message.
    Killed { reason: String, message: String },
}

/// The sending side, held by the session's handle.
#[derive(Clone)]
pub struct Outbox {
    tx: mpsc::Sender<Bytes>,
    shared: Arc<Shared>,
}

/// The receiving side, owned by the connection task.
pub struct OutboxReceiver {
    rx: mpsc::Receiver<Bytes>,
    shared: Arc<Shared>,
}

/// Creates a queue bounded by `max_frames` and `max_bytes`.
pub fn outbox(max_frames: usize, max_bytes: usize) -> (Outbox, OutboxReceiver) {
    let (tx, rx) = mpsc::channel(max_frames.max(1));
    let shared = Arc::new(Shared {
        queued_bytes: AtomicUsize::new(0),
        max_bytes,
        overflowed: AtomicBool::new(false),
        sealed: AtomicBool::new(false),
        killed: std::sync::Mutex::new(None),
        wake: Notify::new(),
    });
    (Outbox { tx, shared: shared.clone() }, OutboxReceiver { rx, shared })
}

impl Outbox {
    /// Queues a frame, or applies the slow-consumer policy.
    pub fn push(&self, frame: Bytes) -> Result<(), PushError> {
        if self.shared.overflowed.load(Ordering::Relaxed) {
            return Err(PushError::Overflow);
        }
        if self.shared.sealed.load(Ordering::Acquire) {
            return Err(PushError::Closed);
        }
        let len = frame.len();
        let queued = self.shared.queued_bytes.fetch_add(len, Ordering::Relaxed) + len;
        let result = if queued > self.shared.max_bytes {
            Err(mpsc::error::TrySendError::Full(frame))
        } else {
            self.tx.try_send(frame)
        };
        match result {
            Ok(()) => Ok(()),
            Err(e) => {
                self.shared.queued_bytes.fetch_sub(len, Ordering::Relaxed);
                match e {
                    mpsc::error::TrySendError::Closed(_) => Err(PushError::Closed),
                    mpsc::error::TrySendError::Full(_) => {
                        self.shared.overflowed.store(true, Ordering::Relaxed);
                        self.shared.wake.notify_one();
                        Err(PushError::Overflow)
                    }
                }
            }
        }
    }

    /// Refuses every frame from now on (as if the connection were gone): the router
    /// just queued its GOODBYE, and a client that heard GOODBYE takes any later
    /// INVOCATION or EVENT for a protocol violation.
    pub fn seal(&self) {
        self.shared.sealed.store(true, Ordering::Release);
    }

    /// Asks the connection task to end the session with GOODBYE `reason`.
    pub fn kill(&self, reason: &str, message: &str) {
        *self.shared.killed.lock().unwrap_or_else(|e| e.into_inner()) = Some((reason.into(), message.into()));
        self.shared.wake.notify_one();
    }

    /// True once the connection task has gone away.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

impl OutboxReceiver {
    /// Waits for frames and moves up to `limit` of them into `batch`.
    /// Returns 0 only when every sender is gone.
    pub async fn recv_many(&mut self, batch: &mut Vec<Bytes>, limit: usize) -> usize {
        let n = self.rx.recv_many(batch, limit).await;
        self.release(batch);
        n
    }

    /// Takes whatever is queued right now, without waiting.
    pub fn drain_now(&mut self, batch: &mut Vec<Bytes>) {
        while let Ok(frame) = self.rx.try_recv() {
            batch.push(frame);
        }
        self.release(batch);
    }

    fn release(&self, batch: &[Bytes]) {
        let bytes: usize = batch.iter().map(Bytes::len).sum();
        self.shared.queued_bytes.fetch_sub(bytes, Ordering::Relaxed);
    }

    /// A watch on the slow-consumer signal that does not borrow the receiver.
    pub fn overflow_watch(&self) -> OverflowWatch {
        OverflowWatch(self.shared.clone())
    }

    /// Drops everything queued (used when the session is disconnected as slow).
    pub fn discard(&mut self) {
        let mut junk = Vec::new();
        self.drain_now(&mut junk);
    }
}

/// Resolves when the router evicts the session (slow consumer or killed).
pub struct OverflowWatch(Arc<Shared>);

impl OverflowWatch {
    /// Waits for an eviction.
    pub async fn evicted(&self) -> Eviction {
        loop {
            if self.0.overflowed.load(Ordering::Relaxed) {
                return Eviction::SlowConsumer;
            }
            if let Some((reason, message)) = self.0.killed.lock().unwrap_or_else(|e| e.into_inner()).take() {
                return Eviction::Killed { reason, message };
            }
            self.0.wake.notified().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frame_bound_overflows_and_stays_overflowed() {
        let (tx, mut rx) = outbox(2, 1 << 20);
        assert_eq!(tx.push(Bytes::from_static(b"a")), Ok(()));
        assert_eq!(tx.push(Bytes::from_static(b"b")), Ok(()));
        assert_eq!(tx.push(Bytes::from_static(b"c")), Err(PushError::Overflow));
        assert_eq!(rx.overflow_watch().evicted().await, Eviction::SlowConsumer);
        let mut batch = Vec::new();
        assert_eq!(rx.recv_many(&mut batch, 10).await, 2);
        assert_eq!(tx.push(Bytes::from_static(b"d")), Err(PushError::Overflow));
    }

    #[tokio::test]
    async fn byte_bound_overflows() {
        let (tx, mut rx) = outbox(100, 10);
        assert_eq!(tx.push(Bytes::from(vec![0u8; 6])), Ok(()));
        let mut batch = Vec::new();
        rx.recv_many(&mut batch, 10).await;
        assert_eq!(tx.push(Bytes::from(vec![0u8; 6])), Ok(()), "bytes are released once sent");
        assert_eq!(tx.push(Bytes::from(vec![0u8; 6])), Err(PushError::Overflow));
    }

    #[tokio::test]
    async fn nothing_is_queued_after_the_seal() {
        let (tx, mut rx) = outbox(8, 1 << 20);
        assert_eq!(tx.push(Bytes::from_static(b"goodbye")), Ok(()));
        tx.seal();
        assert_eq!(tx.push(Bytes::from_static(b"event")), Err(PushError::Closed));
        let mut batch = Vec::new();
        rx.drain_now(&mut batch);
        assert_eq!(batch, vec![Bytes::from_static(b"goodbye")]);
    }

    #[test]
    fn closed_receiver_is_reported() {
        let (tx, rx) = outbox(4, 100);
        drop(rx);
        assert_eq!(tx.push(Bytes::from_static(b"x")), Err(PushError::Closed));
        assert!(tx.is_closed());
    }
}
