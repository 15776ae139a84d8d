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
//!
//! **Frames with a deadline.** The INVOCATION of a call kept on another node is
//! queued with the instant after which that node may answer the call on its own
//! ([`Outbox::push_by`]). A frame still queued then — the process was paused between
//! queueing and writing it, or a backlog sat in front of it — is dropped unsent and its `too_late` callback runs (the
//! dealer answers the call canceled if it is still open), so the callee never runs an
//! invocation whose caller was told it failed.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

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
    /// Pushes between their check of `sealed` and their queueing: sealing waits
    /// for them, so that the last frame is queued after every frame let through.
    pushing: AtomicUsize,
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

/// What runs when a frame with a deadline was dropped unsent.
pub type TooLate = Box<dyn FnOnce() + Send>;

/// A queued frame, and its deadline if it has one.
struct Queued {
    frame: Bytes,
    deadline: Option<Box<(Instant, TooLate)>>,
}

/// The sending side, held by the session's handle.
#[derive(Clone)]
pub struct Outbox {
    tx: mpsc::Sender<Queued>,
    shared: Arc<Shared>,
}

/// The receiving side, owned by the connection task.
pub struct OutboxReceiver {
    rx: mpsc::Receiver<Queued>,
    shared: Arc<Shared>,
    /// Frames received and not yet sorted into a batch.
    received: Vec<Queued>,
}

/// Creates a queue bounded by `max_frames` and `max_bytes`.
pub fn outbox(max_frames: usize, max_bytes: usize) -> (Outbox, OutboxReceiver) {
    let (tx, rx) = mpsc::channel(max_frames.max(1));
    let shared = Arc::new(Shared {
        queued_bytes: AtomicUsize::new(0),
        max_bytes,
        overflowed: AtomicBool::new(false),
        sealed: AtomicBool::new(false),
        pushing: AtomicUsize::new(0),
        killed: std::sync::Mutex::new(None),
        wake: Notify::new(),
    });
    (Outbox { tx, shared: shared.clone() }, OutboxReceiver { rx, shared, received: Vec::new() })
}

impl Outbox {
    /// Queues a frame, or applies the slow-consumer policy.
    pub fn push(&self, frame: Bytes) -> Result<(), PushError> {
        self.push_queued(Queued { frame, deadline: None })
    }

    /// Queues a frame that must leave the queue by `by`; if it is still queued then,
    /// it is dropped and `too_late` runs (on the connection task).
    pub fn push_by(&self, frame: Bytes, by: Instant, too_late: TooLate) -> Result<(), PushError> {
        self.push_queued(Queued { frame, deadline: Some(Box::new((by, too_late))) })
    }

    fn push_queued(&self, queued: Queued) -> Result<(), PushError> {
        if self.shared.overflowed.load(Ordering::Relaxed) {
            return Err(PushError::Overflow);
        }
        // SeqCst on both sides (here and in `seal_with`): either this push sees the
        // seal, or the sealer sees it in progress and queues its last frame after it
        self.shared.pushing.fetch_add(1, Ordering::SeqCst);
        let pushed = if self.shared.sealed.load(Ordering::SeqCst) {
            Err(PushError::Closed)
        } else {
            self.enqueue(queued)
        };
        self.shared.pushing.fetch_sub(1, Ordering::SeqCst);
        pushed
    }

    fn enqueue(&self, queued: Queued) -> Result<(), PushError> {
        let len = queued.frame.len();
        let total = self.shared.queued_bytes.fetch_add(len, Ordering::Relaxed) + len;
        let result = if total > self.shared.max_bytes {
            Err(mpsc::error::TrySendError::Full(queued))
        } else {
            self.tx.try_send(queued)
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

    /// Queues `last` (the router's GOODBYE) as the last frame and refuses every
    /// frame from then on (as if the connection were gone): a client that heard
    /// GOODBYE takes any later INVOCATION or EVENT for a protocol violation. A push
    /// racing the seal is either refused or queued before `last`, never after.
    pub fn seal_with(&self, last: Bytes) -> Result<(), PushError> {
        self.shared.sealed.store(true, Ordering::SeqCst);
        // pushes in progress only queue without waiting: this is a short wait
        while self.shared.pushing.load(Ordering::SeqCst) != 0 {
            std::hint::spin_loop();
        }
        if self.shared.overflowed.load(Ordering::Relaxed) {
            return Err(PushError::Overflow);
        }
        self.enqueue(Queued { frame: last, deadline: None })
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
    /// Waits for frames and moves up to `limit` of them into `batch` (frames past
    /// their deadline are dropped, see [`Outbox::push_by`]). Returns how many were
    /// moved; 0 only when every sender is gone.
    pub async fn recv_many(&mut self, batch: &mut Vec<Bytes>, limit: usize) -> usize {
        loop {
            if self.rx.recv_many(&mut self.received, limit).await == 0 {
                return 0;
            }
            let moved = self.sort_into(batch);
            if moved > 0 {
                return moved;
            }
        }
    }

    /// Takes whatever is queued right now, without waiting.
    pub fn drain_now(&mut self, batch: &mut Vec<Bytes>) {
        while let Ok(queued) = self.rx.try_recv() {
            self.received.push(queued);
        }
        self.sort_into(batch);
    }

    /// Moves the received frames into `batch`, but for those past their deadline,
    /// whose callbacks run instead; releases their bytes. Returns how many moved.
    fn sort_into(&mut self, batch: &mut Vec<Bytes>) -> usize {
        let mut now = None;
        let before = batch.len();
        let mut bytes = 0;
        for q in self.received.drain(..) {
            bytes += q.frame.len();
            match q.deadline {
                Some(deadline) if *now.get_or_insert_with(Instant::now) > deadline.0 => (deadline.1)(),
                _ => batch.push(q.frame),
            }
        }
        self.shared.queued_bytes.fetch_sub(bytes, Ordering::Relaxed);
        batch.len() - before
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
        assert_eq!(tx.seal_with(Bytes::from_static(b"goodbye")), Ok(()));
        assert_eq!(tx.push(Bytes::from_static(b"event")), Err(PushError::Closed));
        let mut batch = Vec::new();
        rx.drain_now(&mut batch);
        assert_eq!(batch, vec![Bytes::from_static(b"goodbye")]);
    }

    #[test]
    fn a_push_racing_the_seal_is_refused_or_queued_before_the_last_frame() {
        const PUSHES: usize = 20_000;
        for _ in 0..200 {
            let (tx, mut rx) = outbox(1 << 16, 1 << 30);
            let go = Arc::new(std::sync::Barrier::new(4));
            let pushers: Vec<_> = (0..3)
                .map(|_| {
                    let (tx, go) = (tx.clone(), go.clone());
                    std::thread::spawn(move || {
                        go.wait();
                        // fewer than the outbox holds: a seal delayed past all of them
                        // (a busy machine) still finds room, and is not an overflow
                        for _ in 0..PUSHES {
                            if tx.push(Bytes::from_static(b"invocation")).is_err() {
                                break;
                            }
                        }
                    })
                })
                .collect();
            go.wait();
            assert_eq!(tx.seal_with(Bytes::from_static(b"goodbye")), Ok(()));
            for p in pushers {
                p.join().expect("pusher");
            }
            let mut batch = Vec::new();
            rx.drain_now(&mut batch);
            assert_eq!(batch.last(), Some(&Bytes::from_static(b"goodbye")), "a frame queued after the last");
        }
    }

    #[tokio::test]
    async fn a_frame_still_queued_at_its_deadline_is_dropped_and_reported() {
        let (tx, mut rx) = outbox(8, 1 << 20);
        let late = Arc::new(AtomicUsize::new(0));
        let now = Instant::now();
        let report = |n: usize| -> TooLate {
            let late = late.clone();
            Box::new(move || {
                late.fetch_add(n, Ordering::SeqCst);
            })
        };
        tx.push(Bytes::from_static(b"event")).unwrap();
        tx.push_by(Bytes::from_static(b"stale invocation"), now, report(1)).unwrap();
        let far = now + std::time::Duration::from_secs(3600);
        tx.push_by(Bytes::from_static(b"fresh invocation"), far, report(10)).unwrap();
        let mut batch = Vec::new();
        assert_eq!(rx.recv_many(&mut batch, 10).await, 2);
        assert_eq!(batch, vec![Bytes::from_static(b"event"), Bytes::from_static(b"fresh invocation")]);
        assert_eq!(late.load(Ordering::SeqCst), 1, "only the stale frame is reported");
        assert_eq!(
            tx.shared.queued_bytes.load(Ordering::SeqCst),
            0,
            "the dropped frame's bytes are released"
        );
        // a receive whose every frame was too late waits for the next one
        tx.push_by(Bytes::from_static(b"stale"), now, report(1)).unwrap();
        tx.push(Bytes::from_static(b"next")).unwrap();
        batch.clear();
        assert_eq!(rx.recv_many(&mut batch, 1).await, 1);
        assert_eq!(batch, vec![Bytes::from_static(b"next")]);
        assert_eq!(late.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn closed_receiver_is_reported() {
        let (tx, rx) = outbox(4, 100);
        drop(rx);
        assert_eq!(tx.push(Bytes::from_static(b"x")), Err(PushError::Closed));
        assert!(tx.is_closed());
    }
}
