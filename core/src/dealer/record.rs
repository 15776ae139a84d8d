//! What the dealer keeps of each call and invocation in flight, and of each local
//! session it routes for. Plain data, owned by [`super::Dealer`].

use std::time::{Duration, Instant};

use crate::ids::{CallId, NodeId, RegistrationId, RequestId, SessionId};
use crate::wamp::message::{Invocation, Payload};
use crate::wamp::value::Dict;

/// What the dealer needs to know of a local session: its realm, its identity (for
/// caller disclosure) and the features it announced in HELLO.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Peer {
    /// The realm the session joined.
    pub realm: std::sync::Arc<str>,
    /// WELCOME.Details.authid.
    pub authid: String,
    /// WELCOME.Details.authrole.
    pub authrole: String,
    /// The features it announced.
    pub features: Features,
}

/// The dealer features a session announced in HELLO.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Features {
    /// callee.call_canceling: it understands INTERRUPT.
    pub call_canceling: bool,
    /// callee.progressive_call_invocations.
    pub callee_progressive_invocations: bool,
    /// callee.payload_passthru_mode.
    pub callee_passthru: bool,
    /// caller.payload_passthru_mode.
    pub caller_passthru: bool,
}

/// A local session as the dealer keeps it.
#[derive(Debug)]
pub(super) struct SessionEntry {
    pub peer: Peer,
    /// The last INVOCATION request id issued to it (ids are sequential per session).
    pub last_invocation: u64,
    /// Calls it made that are in flight.
    pub calls: usize,
    /// The session is leaving (its GOODBYE said or sent, its cleanup under way): it
    /// gets no new invocation.
    pub leaving: bool,
}

/// Who made a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Caller {
    /// A session on this node, under its CALL request id.
    Session {
        /// The calling session.
        session: SessionId,
        /// Its CALL request id.
        request: RequestId,
    },
    /// The router itself (dynamic authenticator or authorizer).
    Router,
}

/// Where a call is being served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// By a callee on this node, under its INVOCATION request id.
    Local {
        /// The serving session.
        callee: SessionId,
        /// The INVOCATION request id.
        invocation: RequestId,
    },
    /// By a callee on another node, which knows the call by its [`CallId`].
    Remote {
        /// The callee's node.
        node: NodeId,
    },
}

/// What is kept of a call so it can be routed again when its callee answers
/// `wamp.error.unavailable` (call rerouting): only for registrations with more than
/// one callee and calls that are not progressive invocations.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Reroute {
    pub procedure: String,
    pub options: Dict,
    pub payload: Payload,
    /// Callees already invoked, as (node, session).
    pub tried: Vec<(NodeId, SessionId)>,
    /// The trace context the callee may join (`_traceparent`, `_tracestate`).
    pub trace: Option<crate::wamp::value::Dict>,
}

/// A call made on this node and not answered yet.
#[derive(Debug)]
pub(super) struct Call {
    pub realm: std::sync::Arc<str>,
    pub caller: Caller,
    pub target: Target,
    pub registration: RegistrationId,
    /// The caller asked for progressive results.
    pub receive_progress: bool,
    /// More CALL chunks may follow (progressive call invocations).
    pub input_open: bool,
    /// The caller is disclosed to the callee (for every chunk).
    pub disclose: bool,
    /// CALL.Options.timeout, run from the last progress.
    pub timeout: Option<Duration>,
    /// When the call last made progress (made, or a progressive result).
    pub touched: Instant,
    /// When the call was made.
    pub started: Instant,
    /// When its current target was invoked (the node-loss answer waits for the
    /// fence from here, see [`super::Dealer::handle_node_lost`]).
    pub invoked: Instant,
    /// The node its callee was on was lost; the call is answered when the fence
    /// has passed.
    pub lost: Option<NodeId>,
    pub reroute: Option<Box<Reroute>>,
}

impl Call {
    /// When the dealer-side timeout expires, if there is one.
    pub fn deadline(&self) -> Option<Instant> {
        self.timeout.map(|t| self.touched + t)
    }
}

/// Who waits for an invocation's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// A call kept on this node.
    Local(CallId),
    /// A call kept on node `node` under `call`.
    Remote {
        /// The caller's node.
        node: NodeId,
        /// The call's id there.
        call: CallId,
    },
}

/// An invocation of a local callee not answered yet.
#[derive(Debug)]
pub(super) struct Served {
    pub origin: Origin,
    /// The INVOCATION, held back until the callee was told REGISTERED.
    pub held: Option<Box<Invocation>>,
    /// For another node's call: the INVOCATION must be on its way to the callee by
    /// then, or the caller's node may have answered the call ([`Action::SendBy`]).
    ///
    /// [`Action::SendBy`]: super::action::Action::SendBy
    pub start_by: Option<Instant>,
}

/// A timer the dealer runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Timer {
    /// A call's dealer-side timeout (or an internal call's deadline).
    Call(CallId),
    /// How long an invocation may be held for its callee's REGISTERED.
    Held(SessionId, RequestId),
    /// A call whose callee's node was lost: answered once its invocation can no
    /// longer start there.
    Lost(CallId),
}
