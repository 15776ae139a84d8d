//! The cluster as the router sees it: one trait, [`Replicate`], implemented by
//! [`Cluster`]. The router commits routing commands, follows node purges and
//! changes the membership through it, and so needs none of the cluster's modules
//! (`membership`, `status`, the Raft log types).

use std::future::Future;
use std::pin::Pin;

use tokio::sync::broadcast;

use super::node::Cluster;
use super::report::NotReady;
use super::types::NodeDownEvent;
use crate::ids::NodeId;
use crate::table::{Command, Outcome};

/// A future answered by the cluster.
pub type Pending<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why the cluster did not commit a routing command or a membership change.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReplicateError {
    /// No leader committed the command in time; `last` is the last reason seen.
    #[error("no quorum: not committed within {timeout_ms} ms ({last})")]
    NoQuorum { timeout_ms: u128, last: String },
    /// Committed, but this node did not apply the entry in time.
    #[error("committed at index {index} but not applied on this node within {timeout_ms} ms")]
    NotApplied { index: u64, timeout_ms: u128 },
    /// The leader answered with an error.
    #[error("leader at {addr}: {message}")]
    Leader { addr: String, message: String },
    /// The leader answered with nothing.
    #[error("leader at {addr} sent an empty reply")]
    EmptyLeaderReply { addr: String },
    /// The request could not be encoded, sent or its answer decoded.
    #[error("{0}")]
    Call(String),
    /// No leader is known to send a membership change to.
    #[error("no leader known; retry once the cluster has one")]
    NoLeader,
    /// A node forwarded the membership change without naming the leader.
    #[error("no leader known; retry")]
    NoLeaderHint,
    /// The leader refused the membership change; its message.
    #[error("{0}")]
    Refused(String),
    /// A node answered the membership change with nothing.
    #[error("empty reply")]
    EmptyReply,
    /// The leader changed on every attempt.
    #[error("the leader kept moving; retry")]
    LeaderMoving,
}

impl ReplicateError {
    /// The failure's class, for `junction_raft_proposal_failures_total{reason}`
    /// and a failed span's `error.type`: one of
    /// [`PROPOSAL_FAILURES`](crate::observe::metrics::PROPOSAL_FAILURES).
    pub fn failure(&self) -> &'static str {
        match self {
            ReplicateError::NoQuorum { .. } | ReplicateError::NoLeader | ReplicateError::NoLeaderHint => {
                "no_quorum"
            }
            ReplicateError::NotApplied { .. } => "not_applied",
            ReplicateError::Leader { .. } | ReplicateError::Refused(_) => "refused",
            _ => "unreachable",
        }
    }
}

/// What the router asks of the cluster.
pub trait Replicate: Send + Sync {
    /// This node's id.
    fn node_id(&self) -> NodeId;
    /// This process's incarnation.
    fn incarnation(&self) -> u64;
    /// Commits a routing command and returns what applying it produced, once this
    /// node has applied it; the error says why it was not committed.
    fn commit(&self, cmd: Command) -> Pending<'_, Result<Outcome, ReplicateError>>;
    /// The nodes the replicated liveness table has up, this one included.
    fn nodes_up(&self) -> Vec<NodeId>;
    /// Node purges as they are applied on this node.
    fn node_down_events(&self) -> broadcast::Receiver<NodeDownEvent>;
    /// Leaves the cluster gracefully, then stops Raft and the gRPC server.
    fn retire(&self) -> Pending<'_, ()>;
    /// Node `node`'s role in the membership as this node sees it (`voter`,
    /// `learner`), `None` if it is not a member.
    fn role_of(&self, node: u64) -> Option<String>;
    /// Makes node `node` a voter (through the leader); the log index.
    fn promote(&self, node: u64) -> Pending<'_, Result<u64, ReplicateError>>;
    /// Removes node `node` from the cluster for good (through the leader); the log
    /// index.
    fn remove(&self, node: u64) -> Pending<'_, Result<u64, ReplicateError>>;
    /// The `cluster` part of the node's status document.
    fn status_document(&self) -> serde_json::Value;
    /// The Raft view and link states for the sampled gauges; `is_up` says whether a
    /// member's link is up when no link reporter is installed.
    fn sample(&self, is_up: &dyn Fn(u64) -> bool) -> crate::observe::status::Sample;
    /// `Ok(None)` when ready, `Ok(Some(index))` when ready but for applying up to the
    /// committed `index`.
    fn readiness(&self) -> Result<Option<u64>, NotReady>;
    /// Waits up to `limit` until the state machine applied `index`.
    fn wait_applied(&self, index: u64, limit: std::time::Duration) -> Pending<'_, bool>;
    /// The last log index the state machine applied.
    fn applied_index(&self) -> Option<u64>;
    /// True while this node is fenced (see [`super::fence`]): it starts no
    /// invocation and delivers no event that came over a link.
    fn fenced(&self) -> bool {
        false
    }
}

impl Replicate for Cluster {
    fn node_id(&self) -> NodeId {
        NodeId(self.id())
    }

    fn incarnation(&self) -> u64 {
        Cluster::incarnation(self)
    }

    fn commit(&self, cmd: Command) -> Pending<'_, Result<Outcome, ReplicateError>> {
        Box::pin(self.proposals.commit(cmd))
    }

    fn nodes_up(&self) -> Vec<NodeId> {
        self.replicated().nodes_up().into_iter().map(NodeId).collect()
    }

    fn node_down_events(&self) -> broadcast::Receiver<NodeDownEvent> {
        self.subscribe_node_down()
    }

    fn retire(&self) -> Pending<'_, ()> {
        Box::pin(Cluster::retire(self))
    }

    fn role_of(&self, node: u64) -> Option<String> {
        let status = super::status::build(self);
        status.members.into_iter().find(|m| m.node_id == node && m.role != "gone").map(|m| m.role)
    }

    fn promote(&self, node: u64) -> Pending<'_, Result<u64, ReplicateError>> {
        Box::pin(super::membership::promote(self, node))
    }

    fn remove(&self, node: u64) -> Pending<'_, Result<u64, ReplicateError>> {
        Box::pin(super::membership::remove(self, node))
    }

    fn status_document(&self) -> serde_json::Value {
        super::report::document(self)
    }

    fn sample(&self, is_up: &dyn Fn(u64) -> bool) -> crate::observe::status::Sample {
        super::report::sample(self, is_up)
    }

    fn readiness(&self) -> Result<Option<u64>, NotReady> {
        super::report::readiness(self)
    }

    fn wait_applied(&self, index: u64, limit: std::time::Duration) -> Pending<'_, bool> {
        Box::pin(super::report::wait_applied(self, index, limit))
    }

    fn applied_index(&self) -> Option<u64> {
        self.replicated().applied_index()
    }

    fn fenced(&self) -> bool {
        let now = std::time::Instant::now();
        let applied = || self.replicated().applied_index().unwrap_or(0);
        if !self.fence.is_fenced(now, applied) {
            return false;
        }
        // The leader proves contact from its voters' acknowledgements at each
        // liveness tick; a leader elected after the old one's silence would refuse
        // calls until then although a quorum already acknowledged it: prove it now.
        if self.is_leader() {
            super::liveness::prove_contact(self, now);
            return self.fence.is_fenced(now, applied);
        }
        true
    }
}
