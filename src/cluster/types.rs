//! The Raft type configuration and what the log carries.
//!
//! The log entries carry a [`Request`], which wraps the routing table's [`Command`]
//! and adds the cluster-level changes the routing table does not know about: a node
//! announcing its address and incarnation, and the leader declaring an incarnation
//! down. Keeping them in the same log as the routing commands makes node liveness
//! part of the same linearizable history (design.md: "Node liveness: node id →
//! address and incarnation"): a stale `Down` for an incarnation that already came
//! back is a no-op on every node alike.

use std::collections::BTreeMap;
use std::io::Cursor;

use serde::{Deserialize, Serialize};

use crate::table::{Command, Outcome};

openraft::declare_raft_types!(
    /// Junction's Raft types: routing requests in, routing outcomes out.
    pub TypeConfig:
        D = Request,
        R = Outcome,
        NodeId = u64,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = super::clock::PausedClockRuntime,
);

/// The Raft handle of a node.
pub type Raft = openraft::Raft<TypeConfig>;
/// A Raft node id.
pub type RaftNodeId = u64;
/// A log id.
pub type LogId = openraft::LogId<RaftNodeId>;
/// A log entry.
pub type Entry = openraft::Entry<TypeConfig>;
/// Membership as stored in the log / state machine.
pub type StoredMembership = openraft::StoredMembership<RaftNodeId, openraft::BasicNode>;
/// Errors of the storage layer.
pub type StorageError = openraft::StorageError<RaftNodeId>;
/// A snapshot.
pub type Snapshot = openraft::Snapshot<TypeConfig>;
/// Snapshot metadata.
pub type SnapshotMeta = openraft::SnapshotMeta<RaftNodeId, openraft::BasicNode>;

/// What a log entry asks the state machine to do.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Request {
    /// A routing-table change from the router.
    Route(Command),
    /// A node (re)started: it is reachable at `addr` with a new `incarnation`. If the
    /// table knew an older incarnation, its routing entries are purged first.
    Announce { node: u64, addr: String, incarnation: u64 },
    /// The leader lost contact with `node` for longer than the lease: purge the
    /// routing entries of that incarnation. Ignored if the node has re-announced
    /// with another incarnation since.
    Down { node: u64, incarnation: u64 },
    /// The node was removed from the cluster.
    Forget { node: u64 },
    /// Routing-table changes proposed together ([`super::proposals`]), applied in
    /// order; the outcome is `Outcome::Each`.
    Batch(Vec<Command>),
}

impl Request {
    /// What kind of request this is, for the `raft.propose` span.
    pub fn kind(&self) -> &'static str {
        match self {
            Request::Route(_) => "route",
            Request::Announce { .. } => "announce",
            Request::Down { .. } => "down",
            Request::Forget { .. } => "forget",
            Request::Batch(_) => "batch",
        }
    }

    /// How many routing commands the request carries (1 for the others).
    pub fn commands(&self) -> usize {
        match self {
            Request::Batch(cmds) => cmds.len(),
            _ => 1,
        }
    }

    /// The node this request speaks for, when only that node may send it: its own
    /// announcement or departure, and routing entries of its own sessions. With
    /// mutual TLS the forwarding node's certificate must name it
    /// ([`super::secure::Caller::speaks_for`]); `None` for entries any member may
    /// propose (`Forget` of a removed node, realm-wide state). The leader commits
    /// another node's `Down` itself, never through a forwarded write.
    pub fn origin(&self) -> Option<u64> {
        match self {
            Request::Batch(cmds) => cmds.iter().find_map(command_origin),
            Request::Announce { node, .. } | Request::Down { node, .. } => Some(*node),
            Request::Forget { .. } => None,
            Request::Route(cmd) => command_origin(cmd),
        }
    }

    /// Every node a batch speaks for (at most one for a valid batch: a node batches
    /// only its own sessions' commands).
    pub fn origins(&self) -> std::collections::BTreeSet<u64> {
        match self {
            Request::Batch(cmds) => cmds.iter().filter_map(command_origin).collect(),
            other => other.origin().into_iter().collect(),
        }
    }
}

/// The node a routing command speaks for (see [`Request::origin`]).
fn command_origin(cmd: &Command) -> Option<u64> {
    match cmd {
        Command::Subscribe { node, .. }
        | Command::Unsubscribe { node, .. }
        | Command::SessionGone { node, .. } => Some(node.0),
        Command::Register { callee, .. } => Some(callee.node.0),
        _ => None,
    }
}

/// What the replicated state knows about a node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// gRPC address.
    pub addr: String,
    /// Incarnation it last announced.
    pub incarnation: u64,
    /// False once `Down` was applied for that incarnation.
    pub up: bool,
}

/// Node liveness table: node id → address, incarnation, up.
pub type Nodes = BTreeMap<u64, NodeInfo>;

/// A node's routing entries were purged (it was declared down, left, or came back
/// with a new incarnation): calls in flight to it must fail.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeDownEvent {
    /// The node.
    pub node: u64,
    /// The incarnation that went away (0 if unknown).
    pub incarnation: u64,
    /// Log index of the entry that purged it.
    pub log_index: u64,
    /// Testaments its sessions left, by realm: published by `publisher`.
    pub testaments: Vec<(String, crate::table::StoredTestament)>,
    /// The surviving node that publishes them: the lowest id up after the purge
    /// (every node computes the same from the replicated liveness table).
    pub publisher: u64,
}
