//! The commands that change the routing table ([`Command`]), what applying one
//! produced ([`Outcome`]), and the replicated values they carry: testaments
//! ([`StoredTestament`]), and retained events ([`Retained`]) of older logs.

use serde::{Deserialize, Serialize};

use crate::dealer::{Callee, InvokePolicy, RegisterError};
use crate::ids::{NodeId, RegistrationId, SessionId, SubscriptionId};
use crate::roles::RoleConfig;
use crate::wamp::uri::MatchPolicy;

/// A change to the routing table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Command {
    /// `node` has a (first) local subscriber for `(topic, policy)`.
    Subscribe { realm: String, node: NodeId, topic: String, policy: MatchPolicy, now_ms: u64 },
    /// `node` has no local subscriber left on `subscription`.
    Unsubscribe { realm: String, node: NodeId, subscription: SubscriptionId },
    /// `callee` registers `(procedure, policy)` with invoke policy `invoke`.
    Register {
        realm: String,
        callee: Callee,
        procedure: String,
        policy: MatchPolicy,
        invoke: InvokePolicy,
        now_ms: u64,
    },
    /// `session` unregisters from `registration`.
    Unregister { realm: String, session: SessionId, registration: RegistrationId },
    /// A session left: drop its callee entries and the node's interest in the
    /// subscriptions it was the last local subscriber of. One command per leave.
    SessionGone {
        realm: String,
        node: NodeId,
        session: SessionId,
        registrations: Vec<RegistrationId>,
        subscriptions: Vec<SubscriptionId>,
    },
    /// A node is gone: purge its interest and callees everywhere.
    NodeDown { node: NodeId },
    /// Keep `event` as the retained event of `topic` (PUBLISH.Options.retain). Written
    /// by versions before cluster design v2, which replicated retained events through
    /// Raft; still decoded from older logs, and applied as a no-op: retained events are
    /// owned by the publishing node and replicated on the links now
    /// ([`crate::broker::retained`]).
    Retain {
        realm: String,
        topic: String,
        event: Retained,
        #[serde(default = "unbounded")]
        max_events: u64,
        #[serde(default = "unbounded")]
        max_bytes: u64,
    },
    /// A session added a testament (`wamp.session.add_testament`).
    AddTestament { realm: String, testament: StoredTestament },
    /// A session flushed its testaments of one scope.
    FlushTestaments { realm: String, session: SessionId, detached: bool },
    /// Define or replace a role at run time (`junction.role.set`).
    SetRole { realm: String, role: RoleConfig },
    /// Remove a role at run time (`junction.role.remove`), also one from the file.
    RemoveRole { realm: String, name: String },
}

/// A testament, replicated so that it is published even when the node of the session
/// that left it dies: the node purge hands the dead node's testaments to one
/// surviving node ([`Outcome::Orphaned`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredTestament {
    /// The session's node.
    pub node: NodeId,
    /// The session.
    pub session: SessionId,
    /// Topic to publish on.
    pub topic: String,
    /// Args and kwargs, neutral-encoded.
    pub payload: Vec<u8>,
    /// PUBLISH options, neutral-encoded.
    pub options: Vec<u8>,
    /// `detached` (true) or `destroyed` (false) scope.
    pub detached: bool,
}

/// A retained event as older logs carry it in [`Command::Retain`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Retained {
    /// The publication id.
    pub publication: u64,
    /// EVENT.Details common to all subscribers, neutral-encoded.
    pub details: Vec<u8>,
    /// Args and kwargs, neutral-encoded.
    pub payload: Vec<u8>,
    /// Black/white listing rules of the publication (PUBLISH options), neutral-encoded:
    /// a retained event reaches only the subscribers the original one could reach.
    #[serde(default)]
    pub audience: Vec<u8>,
    /// Order of retention in the realm (set by the table of older versions).
    #[serde(default)]
    pub seq: u64,
}

/// No bound (commands from before the bounds existed).
fn unbounded() -> u64 {
    u64::MAX
}

/// What applying a command produced.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Outcome {
    /// The subscription id (new or existing).
    Subscribed(SubscriptionId),
    /// The registration id, or why it was refused.
    Registered(Result<RegistrationId, RegisterError>),
    /// Whether the subscription/registration was deleted (its last interest left), or
    /// why the removal was refused.
    Removed(Result<bool, RegisterError>),
    /// Nothing to report.
    Done,
    /// What each command of a batch produced, in order (a cluster commits the
    /// commands proposed together as one entry).
    Each(Vec<Outcome>),
    /// A node was purged: the testaments its sessions left, by realm, to publish.
    Orphaned(Vec<(String, StoredTestament)>),
}
