//! Routing commands committed in batches: the commands that sessions on this node
//! propose while earlier proposals are still in flight go to Raft as one entry
//! ([`Request::Batch`]) — one forward to the leader, one replication round, one
//! apply — instead of one each. A lone command is proposed at once; at most
//! [`IN_FLIGHT`] proposals run at a time, and commands arriving meanwhile wait and
//! form the next batch, so a burst (a reconnect storm registering its procedures)
//! costs a few Raft rounds, not one per REGISTER. A queued command keeps its own
//! deadline (the propose timeout from when it was queued).
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

use std::sync::Weak;
use std::time::Instant;

use tokio::sync::{Semaphore, mpsc, oneshot};
use tracing::{Instrument, Span};

use super::node::Cluster;
use super::replicate::ReplicateError;
use super::types::Request;
use crate::table::{Command, Outcome};

/// Proposals running at once; what arrives meanwhile is batched. Measured with
/// `bench/churn.sh` (20 clients registering, this 2-core machine): a lone node does
/// 12.2k REGISTERs/s with 1 in flight, 10.9k with 2, 9.0k with 4, 5.5k with 16 (6.8k
/// unbatched); a node of 3 is latency-bound at 2.5–3.3k/s with any of them. Two, so
/// that one proposal stuck on a leader that stopped answering does not hold up
/// every other command of the node until its timeout.
pub const IN_FLIGHT: usize = 2;

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
    let slots = std::sync::Arc::new(Semaphore::new(IN_FLIGHT));
    let mut batch = Vec::with_capacity(MAX_BATCH);
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else { return };
        if queue.0.recv_many(&mut batch, MAX_BATCH).await == 0 {
            return;
        }
        let Some(cluster) = cluster.upgrade() else { return };
        let taken = std::mem::replace(&mut batch, Vec::with_capacity(MAX_BATCH));
        tokio::spawn(async move {
            propose(&cluster, taken).await;
            drop(slot);
        });
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
