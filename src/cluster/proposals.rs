//! Routing commands committed in batches: the commands that sessions on this node
//! propose while earlier proposals are still in flight go to Raft as one entry
//! ([`Request::Batch`]) — one forward to the leader, one replication round, one
//! apply — instead of one each. A lone command is proposed at once; one proposal
//! runs at a time, and commands arriving meanwhile wait and form the next batch, so
//! a burst (a reconnect storm registering its procedures) costs a few Raft rounds,
//! not one per REGISTER. A proposal that has run for [`STUCK`] (a leader that
//! stopped answering, an election) no longer holds the others up: up to
//! [`IN_FLIGHT`] run then. A queued command keeps its own deadline (the propose
//! timeout from when it was queued).
//!
//! A node of an older version cannot read a batch entry: upgrade every node before
//! sending it load (a rolling upgrade across this change is not supported).
//!
//! Each command gets its own outcome back (`Outcome::Each` unpacked in order); a
//! batch that was not committed fails every command in it with the same error.
//!
//! While traces are exported, a command remembers the span it was proposed in,
//! and the batch's `raft.propose` span ([`Cluster::propose_until`]) is a child of
//! the first such span in the batch.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tracing::{Instrument, Span};

use super::node::Cluster;
use super::replicate::ReplicateError;
use super::types::Request;
use crate::table::{Command, Outcome};

/// Proposals running at once, at most; what arrives meanwhile is batched. Only one
/// runs while it is younger than [`STUCK`]: the fewer rounds, the larger each batch.
/// Measured with `bench/churn.sh` (20 clients, REGISTER + UNREGISTER, this 2-core
/// machine, alternating rounds): one at a time against two, a lone node 19.7–21.4k
/// against 18.7–19.9k cycles/s, a node of 3 4.1–5.4k against 3.7–4.6k.
pub const IN_FLIGHT: usize = 2;

/// How long a proposal runs alone before the next may start beside it: one stuck on
/// a leader that stopped answering does not hold up every other command of the node
/// until its timeout.
pub const STUCK: Duration = Duration::from_millis(50);

/// The most commands in one entry.
pub const MAX_BATCH: usize = 256;

/// Commands waiting to be proposed, at most (a full queue makes proposers wait).
const QUEUE: usize = 16_384;

type Answer = oneshot::Sender<Result<Outcome, ReplicateError>>;

/// A command, when it was queued, where its outcome goes, and the span it was
/// proposed in (disabled when there is none, or traces are not exported).
type Queued = (Command, Instant, Answer, Span);

/// The queue of commands waiting to be proposed.
pub struct Proposals {
    tx: mpsc::Sender<Queued>,
}

/// The receiving end, for [`run`].
pub struct Queue(mpsc::Receiver<Queued>);

impl Proposals {
    /// An empty queue and its receiving end.
    pub fn new() -> (Proposals, Queue) {
        let (tx, rx) = mpsc::channel(QUEUE);
        (Proposals { tx }, Queue(rx))
    }

    /// Commits `cmd` (batched with others) and returns its outcome once this node
    /// applied it.
    pub async fn commit(&self, cmd: Command) -> Result<Outcome, ReplicateError> {
        let (tx, rx) = oneshot::channel();
        let span = if crate::observe::spans::enabled() { Span::current() } else { Span::none() };
        self.tx.send((cmd, Instant::now(), tx, span)).await.map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())?
    }
}

fn stopped() -> ReplicateError {
    ReplicateError::Call("the cluster node is stopping".into())
}

/// Proposes what the queue holds until the cluster is gone.
pub async fn run(cluster: Weak<Cluster>, mut queue: Queue) {
    let mut lanes = Lanes::new();
    let mut batch = Vec::with_capacity(MAX_BATCH);
    loop {
        let Some(slot) = lanes.take().await else { return };
        if queue.0.recv_many(&mut batch, MAX_BATCH).await == 0 {
            return;
        }
        let Some(cluster) = cluster.upgrade() else { return };
        lanes.started(&slot);
        let taken = std::mem::replace(&mut batch, Vec::with_capacity(MAX_BATCH));
        tokio::spawn(async move {
            propose(&cluster, taken).await;
            drop(slot);
        });
    }
}

/// The right to run one proposal: on the lane, or on a spare once the lane's
/// proposal has run for [`STUCK`].
struct Slot {
    _permit: OwnedSemaphorePermit,
    on_lane: bool,
}

/// Who may propose next: the lane when it is free, a spare once the lane's
/// proposal is older than [`STUCK`].
struct Lanes {
    lane: Arc<Semaphore>,
    spare: Arc<Semaphore>,
    /// When the lane's proposal started (tokio's clock, virtual in tests).
    lane_since: tokio::time::Instant,
}

impl Lanes {
    /// A free lane and `IN_FLIGHT - 1` spares.
    fn new() -> Lanes {
        Lanes {
            lane: Arc::new(Semaphore::new(1)),
            spare: Arc::new(Semaphore::new(IN_FLIGHT - 1)),
            lane_since: tokio::time::Instant::now(),
        }
    }

    /// Waits for a slot: the lane as soon as it is free, a spare once the lane has
    /// been busy for [`STUCK`]. None when the semaphores are closed (never, here).
    async fn take(&self) -> Option<Slot> {
        tokio::select! {
            biased;
            permit = self.lane.clone().acquire_owned() => permit.ok().map(|p| Slot { _permit: p, on_lane: true }),
            permit = async {
                tokio::time::sleep_until(self.lane_since + STUCK).await;
                self.spare.clone().acquire_owned().await
            } => permit.ok().map(|p| Slot { _permit: p, on_lane: false }),
        }
    }

    /// The proposal holding `slot` starts now.
    fn started(&mut self, slot: &Slot) {
        if slot.on_lane {
            self.lane_since = tokio::time::Instant::now();
        }
    }
}

/// Proposes one batch and answers each command in it. The batch has the time left
/// to its oldest command: a command is never committed later than it would have
/// been proposed on its own.
async fn propose(cluster: &Cluster, batch: Vec<Queued>) {
    let timeout = cluster.cfg.propose_timeout();
    let now = Instant::now();
    let (batch, late): (Vec<Queued>, Vec<Queued>) =
        batch.into_iter().partition(|(_, queued, _, _)| *queued + timeout > now);
    for (_, _, answer, _) in late {
        let last = "waited in the proposal queue until its time was up".into();
        answer.send(Err(ReplicateError::NoQuorum { timeout_ms: timeout.as_millis(), last })).ok();
    }
    let Some(deadline) = batch.iter().map(|(_, queued, _, _)| *queued + timeout).min() else { return };
    let parent = batch.iter().map(|q| &q.3).find(|s| !s.is_disabled()).cloned().unwrap_or_else(Span::none);
    let (mut cmds, answers): (Vec<Command>, Vec<Answer>) =
        batch.into_iter().map(|(c, _, a, _)| (c, a)).unzip();
    let n = cmds.len();
    let req = match cmds.pop() {
        Some(cmd) if cmds.is_empty() => Request::Route(cmd),
        Some(cmd) => {
            cmds.push(cmd);
            Request::Batch(cmds)
        }
        None => return,
    };
    let result = match (n, cluster.propose_until(req, deadline).instrument(parent).await) {
        (1, Ok(outcome)) => Ok(Outcome::Each(vec![outcome])),
        (_, r) => r,
    };
    match result {
        Ok(Outcome::Each(outcomes)) if outcomes.len() == n => {
            for (answer, outcome) in answers.into_iter().zip(outcomes) {
                answer.send(Ok(outcome)).ok();
            }
        }
        Ok(other) => {
            let e = ReplicateError::Call(format!("a batch of {n} commands was answered {other:?}"));
            for answer in answers {
                answer.send(Err(e.clone())).ok();
            }
        }
        Err(e) => {
            for answer in answers {
                answer.send(Err(e.clone())).ok();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether `take` gives a slot without waiting (on the virtual clock).
    async fn ready(lanes: &Lanes) -> Option<Slot> {
        tokio::time::timeout(Duration::ZERO, lanes.take()).await.ok().flatten()
    }

    #[tokio::test(start_paused = true)]
    async fn proposals_run_one_at_a_time_until_one_is_stuck() {
        let mut lanes = Lanes::new();
        let first = lanes.take().await.expect("the lane is free");
        lanes.started(&first);
        assert!(first.on_lane);
        assert!(ready(&lanes).await.is_none(), "a second proposal started beside a young one");

        tokio::time::advance(STUCK - Duration::from_millis(1)).await;
        assert!(ready(&lanes).await.is_none(), "a spare before the lane's proposal was stuck");
        tokio::time::advance(Duration::from_millis(1)).await;
        let second = ready(&lanes).await.expect("a spare once the lane's proposal is stuck");
        assert!(!second.on_lane);
        lanes.started(&second);
        assert!(ready(&lanes).await.is_none(), "more than IN_FLIGHT proposals at once");

        drop(first);
        let third = ready(&lanes).await.expect("the lane once its proposal ended");
        assert!(third.on_lane);
        lanes.started(&third);
        drop(second);
        assert!(ready(&lanes).await.is_none(), "a spare beside a young proposal on the lane");
    }
}
