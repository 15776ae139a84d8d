//! The data path between nodes as a contract: the messages one node sends another
//! ([`LinkMsg`]) and the two seams between the router and the cluster layer that
//! carries them. The router sends through [`Links`], which the cluster implements
//! over gRPC streams; the cluster hands what arrives, and the loss of a node, to a
//! [`LinkHandler`], which the router implements. Neither layer imports the other.
//! How frames are numbered so a receiver counts what it missed: [`seq`]; how
//! interest changes are paced one batch in flight per node: [`pacing`].

pub mod pacing;
pub mod seq;

use crate::broker::retained::RetainedEvent;
use crate::ids::{CallId, NodeId, PublicationId, QueryId, RegistrationId, SessionId, SubscriptionId};
use crate::wamp::message::Payload;
use crate::wamp::uri::MatchPolicy;
use crate::wamp::value::Dict;

/// A data-path message to another node.
#[derive(Clone, Debug, PartialEq)]
pub enum LinkMsg {
    /// Deliver a publication to the receiving node's subscribers of `subscriptions`.
    Event {
        realm: String,
        topic: String,
        subscriptions: Vec<SubscriptionId>,
        publication: PublicationId,
        /// EVENT.Details common to all subscribers (publisher disclosure).
        details: Dict,
        /// Black/white listing rules, as PUBLISH options.
        audience: Dict,
        payload: Payload,
    },
    /// Invoke `callee` (a session on the receiving node) for call `call`.
    Invoke {
        realm: String,
        call: CallId,
        callee: SessionId,
        registration: RegistrationId,
        details: Dict,
        payload: Payload,
        /// The fence: how long the receiving node may still *start* the invocation.
        /// As sent, counted from the moment of sending (later the caller's node may
        /// answer the call with an error without waiting for it); as received, what
        /// was left of it on arrival — zero means too late, refuse it. `None` for a
        /// later chunk of an invocation already started. The cluster layer carries it
        /// as a wall-clock deadline.
        start_within: Option<std::time::Duration>,
    },
    /// A result of call `call`; `progress` for a progressive one. `details` carries
    /// RESULT.Details set by the callee's node (payload passthru options).
    Yield { call: CallId, details: Dict, payload: Payload, progress: bool },
    /// Interrupt the invocation serving call `call` (cancel or timeout at the caller's node).
    Interrupt { call: CallId, mode: String, reason: String },
    /// The error of call `call`.
    Error { call: CallId, error: String, details: Dict, payload: Payload },
    /// A meta API question about the receiving node's sessions (answered by its router).
    Query { id: QueryId, realm: String, op: String, payload: Payload },
    /// The answer to query `id`; `error` is empty on success.
    Answer { id: QueryId, error: String, payload: Payload },
    /// The sending node gained (`on`) or lost interest in `(realm, topic, policy)`;
    /// `seq` > 0 asks for an [`LinkMsg::InterestAck`].
    Interest { realm: String, topic: String, policy: MatchPolicy, on: bool, seq: u64 },
    /// The receiver applied the sender's change `seq` (an [`LinkMsg::Interest`] or a
    /// [`LinkMsg::Retained`]).
    InterestAck { seq: u64 },
    /// The sending node's whole interest in `realm`, replacing what the receiver knew.
    InterestSync { realm: String, entries: Vec<(String, MatchPolicy)> },
    /// A retained event of `topic` for the receiver to merge (last writer wins); a
    /// `seq` above 0 asks for an [`LinkMsg::InterestAck`]. A node's whole retained set
    /// goes as one of these per event whenever a link (re)connects.
    Retained { realm: String, topic: String, event: RetainedEvent, seq: u64 },
}

/// The link is down: the message could not be queued.
#[derive(Debug, Clone, thiserror::Error)]
#[error("no link to node {0}")]
pub struct LinkDown(pub NodeId);

/// Sends data-path messages to other nodes; implemented by the cluster layer.
pub trait Links: Send + Sync {
    /// Queues a message for `node` without waiting.
    fn send(&self, node: NodeId, msg: LinkMsg) -> Result<(), LinkDown>;
    /// False while the link to `node` is known to be broken.
    fn is_up(&self, node: NodeId) -> bool;
    /// True while `node`'s stream to this node is open: what it told this node
    /// over that stream (its subscription interest) holds until the stream ends.
    fn hears_from(&self, node: NodeId) -> bool {
        let _ = node;
        false
    }
}

/// Takes what other nodes send; implemented by the router, called by the cluster.
pub trait LinkHandler: Send + Sync {
    /// Handles a message node `from` sent.
    fn on_link(&self, from: NodeId, msg: LinkMsg);
    /// The link to `node` broke, or its stream ended: every call routed to it fails.
    fn node_lost(&self, node: NodeId);
    /// Connecting to `node` again after it was lost was refused: no process listens
    /// on its port, so nothing it was sent can still start there, and the calls it
    /// served need not wait out the fence.
    fn node_gone(&self, node: NodeId) {
        let _ = node;
    }
    /// The link to `node` (re)connected: what the receiver must know of this node
    /// (its subscription interest, the retained events it keeps) is sent again.
    fn link_up(&self, node: NodeId);
    /// The stream `node` sends on ended: what it told this node (its subscription
    /// interest) no longer holds; it sends it again when it reconnects.
    fn stream_ended(&self, node: NodeId);
}
