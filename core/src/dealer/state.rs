//! The dealer's state machine: every call and invocation in flight on this node —
//! a local session's call served here or on another node, an invocation of a local
//! callee for a call kept on another node, and the router's own calls — in one
//! place, changed only by the `handle_*` steps, each of which returns the
//! [`Actions`] to carry out. Time comes in as an argument (`now`), so tests run it
//! on a virtual clock; the runner asks [`Dealer::next_deadline`] when to call
//! [`Dealer::handle_timeout`].
//!
//! The rule that holds it together: a call is answered exactly once, by whichever
//! step removes it from `calls` first ([`Dealer::end_call`]); an answer that finds
//! no call (canceled, timed out, caller gone) is dropped.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use super::action::{Action, Actions, Failure};
use super::record::{Call, Caller, Origin, Peer, Served, SessionEntry, Target, Timer};
use crate::ids::{CallId, IdMap, MAX_ID, NodeId, RequestId, SessionId};
use crate::link::LinkMsg;
use crate::wamp::message::{CallResult, Error, Message, Payload, code};
use crate::wamp::value::Dict;

/// One node's dealer.
#[derive(Debug)]
pub struct Dealer {
    /// This node.
    pub(super) node: NodeId,
    /// Local sessions, by id.
    pub(super) sessions: IdMap<SessionId, SessionEntry>,
    /// Calls made on this node, by id.
    pub(super) calls: IdMap<CallId, Call>,
    /// The calls of each local caller, by (session, CALL request id).
    pub(super) by_request: BTreeMap<(SessionId, RequestId), CallId>,
    /// Invocations of local callees, by (callee, INVOCATION request id).
    pub(super) served: BTreeMap<(SessionId, RequestId), Served>,
    /// Invocations served here for calls kept on other nodes, by (node, call): a
    /// hash map (two lookups per call that crosses nodes; a node's entries are
    /// gathered by a scan only when it is lost).
    pub(super) remote: IdMap<(NodeId, CallId), (SessionId, RequestId)>,
    /// Invocations held back until their callee was told REGISTERED.
    pub(super) held: BTreeSet<(SessionId, RequestId)>,
    /// Timers, by when they are due.
    pub(super) timers: BTreeSet<(Instant, Timer)>,
    /// Set when a timer became the earliest one; cleared by [`Dealer::take_wake`].
    wake: bool,
    /// State of the random invoke policy's generator.
    rng: u64,
    /// The cluster's lease: see [`Dealer::with_lease`].
    pub(super) lease: Option<std::time::Duration>,
}

/// How long after sending an `Invoke` its callee's node may still start it: three
/// quarters of the lease, leaving the rest for clock skew between the nodes (the
/// deadline crosses as wall-clock time) and for the frame's way through the node.
pub fn fence_start(lease: std::time::Duration) -> std::time::Duration {
    lease - lease / 4
}

/// How a call ended, as [`Dealer::end_call`] answers it.
pub(super) enum Outcome {
    /// RESULT with these details and payload.
    Result(Dict, Payload),
    /// ERROR with this URI, details and payload.
    Error(String, Dict, Payload),
}

impl Outcome {
    /// An error with one human-readable argument.
    pub fn error(uri: &str, why: &str) -> Outcome {
        Outcome::Error(uri.to_owned(), Dict::new(), Payload::args(vec![why.into()]))
    }
}

impl Dealer {
    /// An empty dealer of node `node`; `seed` feeds the random invoke policy.
    pub fn new(node: NodeId, seed: u64) -> Dealer {
        Dealer {
            node,
            sessions: IdMap::default(),
            calls: IdMap::default(),
            by_request: BTreeMap::new(),
            served: BTreeMap::new(),
            remote: IdMap::default(),
            held: BTreeSet::new(),
            timers: BTreeSet::new(),
            wake: false,
            rng: seed | 1,
            lease: None,
        }
    }

    /// Fences remote invocations by the cluster's `lease` (how long a node may be
    /// unreachable before it is declared down). An `Invoke` may be started by the
    /// callee's node only within [`fence_start`] of being sent (and before the
    /// call's own deadline); a call whose callee's node is lost is answered
    /// `wamp.error.canceled` no sooner than `lease` after its invocation was sent.
    /// So no invocation starts after its caller was told the call failed, even
    /// when the callee's node was paused with the `Invoke` in its socket buffer:
    /// the check is made per frame, on arrival, against the sender's deadline,
    /// rather than by a node tracking its own contact with a quorum (which races
    /// the frames read right after a resume). Without a lease (tests of the state
    /// machine alone) nothing is fenced.
    pub fn with_lease(mut self, lease: std::time::Duration) -> Dealer {
        self.lease = Some(lease);
        self
    }

    /// A session joined on this node: it may now call and be invoked.
    pub fn session_joined(&mut self, session: SessionId, peer: Peer) {
        self.sessions.insert(session, SessionEntry { peer, last_invocation: 0, calls: 0, leaving: false });
    }

    /// A local session started leaving: from now on it gets no new invocation (a
    /// call goes to another callee, or is answered `wamp.error.canceled`), while
    /// what it serves already is answered when it has left ([`Dealer::session_left`]).
    pub fn session_leaving(&mut self, session: SessionId) {
        if let Some(entry) = self.sessions.get_mut(&session) {
            entry.leaving = true;
        }
    }

    /// True while `session` is a local session that started leaving.
    pub(super) fn is_leaving(&self, session: SessionId) -> bool {
        self.sessions.get(&session).is_some_and(|s| s.leaving)
    }

    /// True when `session` has a call in flight under `request`.
    pub fn has_call(&self, session: SessionId, request: RequestId) -> bool {
        self.by_request.contains_key(&(session, request))
    }

    /// True when an invocation for call `call` of node `node` is served here (a
    /// later chunk of a progressive call invocation continues it).
    pub fn serves(&self, node: NodeId, call: CallId) -> bool {
        self.remote.contains_key(&(node, call))
    }

    /// How many calls `session` has in flight.
    pub fn pending_calls(&self, session: SessionId) -> usize {
        self.sessions.get(&session).map_or(0, |s| s.calls)
    }

    /// True while any local callee has an invocation to answer.
    pub fn is_serving(&self) -> bool {
        !self.served.is_empty()
    }

    /// How many calls made on this node are in flight.
    pub fn calls_in_flight(&self) -> usize {
        self.calls.len()
    }

    /// When [`Dealer::handle_timeout`] is next due.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.timers.first().map(|(at, _)| *at)
    }

    /// True (once) when a step armed a timer earlier than every other: a runner
    /// sleeping until the previous deadline must wake up and ask again.
    pub fn take_wake(&mut self) -> bool {
        std::mem::take(&mut self.wake)
    }

    pub(super) fn arm(&mut self, at: Instant, timer: Timer) {
        if self.next_deadline().is_none_or(|first| at < first) {
            self.wake = true;
        }
        self.timers.insert((at, timer));
    }

    pub(super) fn random(&mut self) -> u64 {
        // xorshift64
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        x
    }

    /// Issues the next INVOCATION request id of a local callee.
    pub(super) fn next_invocation(&mut self, callee: SessionId) -> Option<RequestId> {
        let entry = self.sessions.get_mut(&callee).filter(|s| !s.leaving)?;
        entry.last_invocation = if entry.last_invocation >= MAX_ID { 1 } else { entry.last_invocation + 1 };
        Some(RequestId(entry.last_invocation))
    }

    /// True when `request` was issued to `callee` as an INVOCATION id (an answer to
    /// it is late, not a protocol violation).
    pub(super) fn was_issued(&self, callee: SessionId, request: RequestId) -> bool {
        self.sessions.get(&callee).is_some_and(|s| request.0 <= s.last_invocation)
    }

    /// Records a new call.
    pub(super) fn insert_call(&mut self, id: CallId, call: Call) {
        if let Caller::Session { session, request } = call.caller {
            self.by_request.insert((session, request), id);
            if let Some(s) = self.sessions.get_mut(&session) {
                s.calls += 1;
            }
        }
        if let Some(at) = call.deadline() {
            self.arm(at, Timer::Call(id));
        }
        self.calls.insert(id, call);
    }

    /// Removes a call, if it is still in flight.
    pub(super) fn remove_call(&mut self, id: CallId) -> Option<Call> {
        let call = self.calls.remove(&id)?;
        if let Caller::Session { session, request } = call.caller {
            self.by_request.remove(&(session, request));
            if let Some(s) = self.sessions.get_mut(&session) {
                s.calls -= 1;
            }
        }
        Some(call)
    }

    /// Answers a call and forgets it; nothing happens when it was answered already.
    /// Returns where it was served.
    pub(super) fn end_call(
        &mut self,
        id: CallId,
        outcome: Outcome,
        now: Instant,
        out: &mut Actions,
    ) -> Option<Target> {
        let call = self.remove_call(id)?;
        let error = match &outcome {
            Outcome::Result(..) => None,
            Outcome::Error(uri, ..) => Some(uri.clone()),
        };
        match (call.caller, outcome) {
            (Caller::Router, Outcome::Result(_, payload)) => out.push(Action::Answer(id, Ok(payload))),
            (Caller::Router, Outcome::Error(error, _, payload)) => {
                let args = payload.into_arguments().args.unwrap_or_default();
                out.push(Action::Answer(id, Err(Failure { error, args })));
            }
            (Caller::Session { session, request }, Outcome::Result(details, payload)) => {
                out.push(Action::Send(session, Message::Result(CallResult { request, details, payload })));
            }
            (Caller::Session { session, request }, Outcome::Error(error, details, payload)) => {
                let e = Error { request_type: code::CALL, request, details, error, payload };
                out.push(Action::Send(session, Message::Error(e)));
            }
        }
        if call.caller != Caller::Router {
            out.push(Action::CallEnded {
                call: id,
                error,
                latency: Some(now.saturating_duration_since(call.started)),
            });
        }
        Some(call.target)
    }

    /// Answers whoever waits for an invocation that will not be answered.
    pub(super) fn fail_origin(
        &mut self,
        origin: Origin,
        error: &str,
        why: &str,
        now: Instant,
        out: &mut Actions,
    ) {
        match origin {
            Origin::Local(call) => {
                self.end_call(call, Outcome::error(error, why), now, out);
            }
            Origin::Remote { node, call } => {
                self.remote.remove(&(node, call));
                out.push(Action::ServedEnded { node, call, error: Some(error.to_owned()) });
                let payload = Payload::args(vec![why.into()]);
                out.push(Action::Link(
                    node,
                    LinkMsg::Error { call, error: error.to_owned(), details: Dict::new(), payload },
                ));
            }
        }
    }

    /// The identity of a local session, as INVOCATION.Details discloses it.
    pub(super) fn disclose(&self, caller: Caller, details: &mut Dict) {
        let Caller::Session { session, .. } = caller else { return };
        let Some(s) = self.sessions.get(&session) else { return };
        details.insert("caller".into(), session.0.into());
        details.insert("caller_authid".into(), s.peer.authid.as_str().into());
        details.insert("caller_authrole".into(), s.peer.authrole.as_str().into());
    }
}

/// An ERROR answering a request of type `request_type`, with one argument.
pub(super) fn error_message(request_type: u64, request: RequestId, uri: &str, why: &str) -> Message {
    Message::Error(Error {
        request_type,
        request,
        details: Dict::new(),
        error: uri.to_owned(),
        payload: Payload::args(vec![why.into()]),
    })
}
