//! What the dealer's state machine asks its runner to do, and the typed errors it
//! answers with. The dealer never sends anything itself: each `handle_*` returns
//! [`Actions`], which the router carries out (encode and queue a message for a
//! session, send a frame to another node, hand an internal call its answer, end a
//! trace span). Timers are not actions: the runner asks [`super::Dealer::next_deadline`]
//! after each step and calls [`super::Dealer::handle_timeout`] when it is due.

use crate::ids::{CallId, NodeId, SessionId};
use crate::link::LinkMsg;
use crate::wamp::errors;
use crate::wamp::message::{Invocation, Message, Payload};
use crate::wamp::value::List;

/// One thing for the runner to do.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Queue a message for a session on this node.
    Send(SessionId, Message),
    /// Queue the INVOCATION of another node's call for a local callee; it must leave
    /// the queue for the callee's socket by `by`. If it is still queued then (this
    /// process was paused in between, or a backlog sat in front of it: the caller's
    /// node may have answered the call meanwhile), the runner drops it unsent and calls
    /// [`super::Dealer::handle_unwritten`].
    SendBy {
        /// The callee.
        session: SessionId,
        /// The INVOCATION.
        invocation: Invocation,
        /// When it is too late to send it.
        by: std::time::Instant,
    },
    /// Send a frame to another node.
    Link(NodeId, LinkMsg),
    /// Hand the router's own call its answer (it was the caller).
    Answer(CallId, Reply),
    /// A call made on this node ended: record its latency and end its trace span.
    CallEnded {
        /// The call.
        call: CallId,
        /// The error it ended with, if it failed.
        error: Option<String>,
        /// How long it was in flight (none when it was refused before routing).
        latency: Option<std::time::Duration>,
    },
    /// An invocation served here for a call kept on node `node` ended: end its span.
    ServedEnded {
        /// The caller's node.
        node: NodeId,
        /// The call's id on that node.
        call: CallId,
        /// The error it ended with, if it failed.
        error: Option<String>,
    },
}

/// The actions of one step, in the order they must be carried out.
pub type Actions = Vec<Action>;

/// How a call the router made itself ended: the result payload, or the error.
pub type Reply = Result<Payload, Failure>;

/// The error answer of a call: its URI and positional arguments.
#[derive(Clone, Debug, PartialEq)]
pub struct Failure {
    /// The error URI.
    pub error: String,
    /// `Arguments|list` of the ERROR.
    pub args: List,
}

impl Failure {
    /// A failure with one human-readable argument.
    pub fn new(error: &str, why: &str) -> Failure {
        Failure { error: error.to_owned(), args: vec![why.into()] }
    }
}

/// Why a call could not be routed to a callee. The caller gets ERROR with
/// [`Refusal::uri`] and [`Refusal::message`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// No registration matches the procedure.
    #[error("no callee registered for procedure")]
    NoSuchProcedure,
    /// Every callee answered `wamp.error.unavailable` (call rerouting).
    #[error("every callee of the procedure is unavailable")]
    NoAvailableCallee,
    /// The chosen callee left between the lookup and the invocation.
    #[error("the callee has just left")]
    CalleeLeft,
    /// The chosen callee did not announce payload passthru mode.
    #[error("the callee does not support payload passthru mode")]
    CalleeLacksPassthru,
    /// The chosen callee did not announce progressive call invocations.
    #[error("the callee does not support progressive call invocations")]
    CalleeLacksProgressiveInvocations,
    /// The callee's node could not be sent the invocation.
    #[error("no link to the callee's node")]
    NoLink,
    /// This node is fenced: it may have been declared down, so it starts no
    /// invocation until it is back in contact with the cluster.
    #[error("this node is cut off from the cluster")]
    Fenced,
}

impl Refusal {
    /// The error URI the caller gets.
    pub fn uri(self) -> &'static str {
        match self {
            Refusal::NoSuchProcedure | Refusal::CalleeLeft => errors::NO_SUCH_PROCEDURE,
            Refusal::NoAvailableCallee => errors::NO_AVAILABLE_CALLEE,
            Refusal::CalleeLacksPassthru | Refusal::CalleeLacksProgressiveInvocations => {
                errors::FEATURE_NOT_SUPPORTED
            }
            Refusal::NoLink => errors::CANCELED,
            Refusal::Fenced => errors::CLUSTER_UNAVAILABLE,
        }
    }

    /// The human-readable argument of the ERROR.
    pub fn message(self) -> &'static str {
        match self {
            Refusal::NoSuchProcedure => "no callee registered for procedure",
            Refusal::NoAvailableCallee => "every callee of the procedure is unavailable",
            Refusal::CalleeLeft => "the callee has just left",
            Refusal::CalleeLacksPassthru => "the callee does not support payload passthru mode",
            Refusal::CalleeLacksProgressiveInvocations => {
                "the callee does not support progressive call invocations"
            }
            Refusal::NoLink => "no link to the callee's node",
            Refusal::Fenced => "this node is cut off from the cluster; try again or another node",
        }
    }
}

/// A protocol violation by a client: the router aborts its session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Violation {
    /// CALL with the request id of a call in flight that takes no more input.
    #[error("CALL reuses the request id of a call in flight")]
    RequestReused,
    /// Payload passthru options from a peer that did not announce the feature.
    #[error("payload passthru used without announcing it")]
    PassthruNotAnnounced,
    /// YIELD for an invocation id the router never issued to this session.
    #[error("YIELD for an unknown invocation")]
    UnknownYield,
    /// ERROR for an invocation id the router never issued to this session.
    #[error("ERROR for an unknown invocation")]
    UnknownError,
}

impl Violation {
    /// The reason given in the ABORT.
    pub fn message(self) -> &'static str {
        match self {
            Violation::RequestReused => "CALL reuses the request id of a call in flight",
            Violation::PassthruNotAnnounced => "payload passthru used without announcing it",
            Violation::UnknownYield => "YIELD for an unknown invocation",
            Violation::UnknownError => "ERROR for an unknown invocation",
        }
    }
}
