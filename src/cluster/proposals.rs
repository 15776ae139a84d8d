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
//! Group commit ([`Gathering`]): when a round is slow (it crosses the network to a
//! quorum), the next one waits a little for the sessions the last round answered —
//! a reconnecting client registers its procedures one after another, each as soon
//! as the previous is answered — so their commands share a round instead of
//! splitting into two alternating half-size batches, each paying a whole round.
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
/// until its timeout. Two always in flight (this at 0) measured 2026-12-05 with
/// `bench/churn.sh`: REGISTER churn on a node of 3 7.9-8.0k against 9.0-10.1k
/// cycles/s (the rounds, not their size, cost the cluster its CPU), a lone node +3 %.
pub const STUCK: Duration = Duration::from_millis(50);

/// The most commands in one entry.
pub const MAX_BATCH: usize = 256;

/// Rounds shorter than this never wait to gather (a lone node commits locally in
/// tens of microseconds: a wait would cost more than the round it saves).
pub const GATHER_ROUNDS_FROM: Duration = Duration::from_micros(300);

/// The longest a round waits to gather (the timer's granularity: any shorter wait
/// is rounded up to it).
pub const GATHER_WAIT: Duration = Duration::from_millis(1);

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
    let mut gathering = Gathering::default();
    let mut batch = Vec::with_capacity(MAX_BATCH);
    loop {
        let Some(slot) = lanes.take().await else { return };
        // this loop waits on the lane while its proposal runs, so the lane comes
        // back the moment that proposal ended: how long it ran
        let wanted = if slot.on_lane { gathering.wanted(queue.0.len(), lanes.lane_ran()) } else { 0 };
        // counted from the end of the last round: a command arriving after a pause
        // finds the wait over and goes at once
        let deadline = tokio::time::Instant::now() + GATHER_WAIT;
        if queue.0.recv_many(&mut batch, MAX_BATCH).await == 0 {
            return;
        }
        while batch.len() < wanted {
            match tokio::time::timeout_at(deadline, queue.0.recv()).await {
                Ok(Some(q)) => batch.push(q),
                Ok(None) | Err(_) => break,
            }
        }
        gathering.proposed(batch.len(), wanted);
        let Some(cluster) = cluster.upgrade() else { return };
        lanes.started(&slot);
        let taken = std::mem::replace(&mut batch, Vec::with_capacity(MAX_BATCH));
        tokio::spawn(async move {
            propose(&cluster, taken).await;
            drop(slot);
        });
    }
}

/// Group commit: how many commands the next round waits for.
///
/// A round answers its commands' sessions together; those that go on (the next
/// REGISTER of a reconnecting client) send their next command about one client
/// turnaround later. Proposed at once, the next round would carry only what queued
/// meanwhile, and the sessions just answered would wait for the round after it: the
/// load splits into two alternating batches, each paying a full round. So, after a
/// slow round ([`GATHER_ROUNDS_FROM`]), the next one waits — at most [`GATHER_WAIT`]
/// from the round's end — until the queue holds what was waiting then plus as many as
/// the last round carried. A wait that ran out (the answered sessions had nothing
/// more to send) is not repeated on the next round. Waiting for three quarters of
/// them instead (stragglers left to the next round) measured +12 % against +22 %
/// with a p99 near the base's (1.6 ms against 2.8 ms): the whole set is waited for.
#[derive(Debug, Default)]
struct Gathering {
    /// Commands in the last round proposed.
    last: usize,
    /// The last wait ran out before its commands arrived.
    missed: bool,
}

impl Gathering {
    /// The commands to wait for before proposing, `pending` being queued now and
    /// `round` the time the last round took; 0: propose what is there.
    fn wanted(&self, pending: usize, round: Duration) -> usize {
        if self.missed || round < GATHER_ROUNDS_FROM || self.last < 2 {
            return 0;
        }
        (pending + self.last).min(MAX_BATCH)
    }

    /// A round of `n` commands was proposed, after waiting for `wanted`.
    fn proposed(&mut self, n: usize, wanted: usize) {
        self.missed = n < wanted;
        self.last = n;
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

    /// How long since the lane's last proposal started: taken with the lane, how
    /// long that proposal ran.
    fn lane_ran(&self) -> Duration {
        self.lane_since.elapsed()
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

    #[test]
    fn group_commit_waits_for_the_sessions_a_slow_round_answered() {
        let slow = GATHER_ROUNDS_FROM;
        let mut g = Gathering::default();
        assert_eq!(g.wanted(3, slow), 0, "nothing to expect before a round");
        g.proposed(10, 0);
        assert_eq!(g.wanted(10, slow), 20, "what waits plus the sessions just answered");
        assert_eq!(g.wanted(0, slow), 10);
        assert_eq!(g.wanted(10, slow - Duration::from_micros(1)), 0, "a fast round never waits");
        g.proposed(MAX_BATCH, 0);
        assert_eq!(g.wanted(MAX_BATCH, slow), MAX_BATCH, "at most one entry's worth");
        g.proposed(1, 0);
        assert_eq!(g.wanted(5, slow), 0, "a lone command's session is not waited for");
    }

    #[test]
    fn group_commit_does_not_wait_again_after_a_wait_ran_out() {
        let slow = GATHER_ROUNDS_FROM * 2;
        let mut g = Gathering::default();
        g.proposed(8, 0);
        assert_eq!(g.wanted(0, slow), 8);
        g.proposed(5, 8);
        assert_eq!(g.wanted(0, slow), 0, "the answered sessions had nothing more to send");
        g.proposed(5, 0);
        assert_eq!(g.wanted(0, slow), 5, "waits again once a round went without");
    }

    #[tokio::test(start_paused = true)]
    async fn the_lane_comes_back_with_how_long_its_proposal_ran() {
        let mut lanes = Lanes::new();
        let first = lanes.take().await.expect("the lane is free");
        lanes.started(&first);
        tokio::time::advance(GATHER_ROUNDS_FROM).await;
        drop(first);
        let next = lanes.take().await.expect("the lane once its proposal ended");
        assert!(next.on_lane);
        assert_eq!(lanes.lane_ran(), GATHER_ROUNDS_FROM);
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
