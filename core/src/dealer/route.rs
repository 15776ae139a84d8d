//! Routing a call to a callee: a client's CALL (first chunk or a later chunk of a
//! progressive call invocation), the router's own calls, an invocation arriving from
//! another node for a local callee, and an invocation that could not be sent.

use std::time::{Duration, Instant};

use super::action::{Action, Actions, Refusal, Violation};
use super::choose::{Registry, choose};
use super::record::{Call, Caller, Origin, Reroute, Served, Target, Timer};
use super::state::{Dealer, Outcome, error_message};
use crate::dict;
use crate::ids::{CallId, NodeId, RegistrationId, SessionId};
use crate::link::LinkMsg;
use crate::wamp::errors;
use crate::wamp::message::{self, Invocation, Message, Payload, code};
use crate::wamp::ppt;
use crate::wamp::uri::MatchPolicy;
use crate::wamp::value::{Dict, List, Value, dict_bool};

/// The feature a peer announces for progressive call invocations.
pub const PROGRESSIVE_INVOCATIONS: &str = "progressive_call_invocations";

/// How long an INVOCATION may wait for its callee to be told REGISTERED.
pub const HOLD_LIMIT: Duration = Duration::from_secs(1);

/// The action that sends an INVOCATION: by a deadline when it has one.
pub(super) fn send_invocation(callee: SessionId, inv: Invocation, start_by: Option<Instant>) -> Action {
    match start_by {
        Some(by) => Action::SendBy { session: callee, invocation: inv, by },
        None => Action::Send(callee, Message::Invocation(inv)),
    }
}

/// A call to route: what [`Dealer::dispatch`] needs, first time or again after
/// `wamp.error.unavailable`.
pub(super) struct Routing {
    pub(super) caller: Caller,
    pub(super) realm: std::sync::Arc<str>,
    pub(super) procedure: String,
    pub(super) options: Dict,
    pub(super) payload: Payload,
    pub(super) tried: Vec<(NodeId, SessionId)>,
    pub(super) trace: Option<Dict>,
    pub(super) exact_only: bool,
    /// When the call times out at the dealer, if it does: its invocation must not
    /// start on another node after that.
    pub(super) deadline: Option<Instant>,
}

/// Where a call went.
pub(super) struct Dispatched {
    pub(super) target: Target,
    pub(super) registration: RegistrationId,
    pub(super) disclose: bool,
    pub(super) reroute: Option<Box<Reroute>>,
}

/// An invocation arriving from another node for a local callee (`LinkMsg::Invoke`).
#[derive(Debug)]
pub struct LinkInvoke {
    /// The callee's realm.
    pub realm: String,
    /// The call's id on the caller's node.
    pub call: CallId,
    /// The local callee.
    pub callee: SessionId,
    /// The registration it serves.
    pub registration: RegistrationId,
    /// INVOCATION.Details, as the caller's node made them.
    pub details: Dict,
    /// The arguments.
    pub payload: Payload,
    /// What was left of the fence on arrival (see `LinkMsg::Invoke`): zero means
    /// the caller's node may already have answered the call, so it is refused.
    pub start_within: Option<Duration>,
}

impl Dealer {
    /// CALL from a local session. `id` is a fresh call id (the runner allocates it, so
    /// it can open the call's trace span first); `trace` is what the callee may
    /// join the trace with (the `_traceparent` and `_tracestate` entries of its
    /// INVOCATION.Details). A CALL that reuses the request id of a progressive call
    /// invocation in flight is its next chunk. A new call beyond `max_pending` calls
    /// in flight (0: no limit) is refused.
    #[allow(clippy::too_many_arguments)]
    pub fn handle_call(
        &mut self,
        session: SessionId,
        id: CallId,
        m: message::Call,
        trace: Option<Dict>,
        max_pending: usize,
        registry: &dyn Registry,
        now: Instant,
    ) -> Result<Actions, Violation> {
        let mut out = Actions::new();
        if let Some(&existing) = self.by_request.get(&(session, m.request)) {
            if !self.calls.get(&existing).is_some_and(|c| c.input_open) {
                return Err(Violation::RequestReused);
            }
            self.continue_call(existing, m, &mut out);
            return Ok(out);
        }
        let Some(entry) = self.sessions.get(&session) else { return Ok(out) };
        if max_pending > 0 && entry.calls >= max_pending {
            let why = format!("at most {max_pending} calls in flight per session");
            out.push(Action::Send(
                session,
                error_message(code::CALL, m.request, errors::TOO_MANY_PENDING_CALLS, &why),
            ));
            let error = Some(errors::TOO_MANY_PENDING_CALLS.to_owned());
            out.push(Action::CallEnded { call: id, error, latency: None });
            return Ok(out);
        }
        let features = entry.peer.features;
        if ppt::in_use(&m.options) && !features.caller_passthru {
            return Err(Violation::PassthruNotAnnounced);
        }
        // A progressive CALL from a caller that did not announce
        // progressive_call_invocations is a protocol error by the spec, but wampy.js
        // sends them without announcing the feature: served, as the router supports
        // it (interoperating with the client; the callee must still announce it).
        let timeout = m.options.get("timeout").and_then(Value::as_u64).filter(|&ms| ms > 0);
        let routing = Routing {
            caller: Caller::Session { session, request: m.request },
            realm: entry.peer.realm.clone(),
            procedure: m.procedure,
            options: m.options,
            payload: m.payload,
            tried: Vec::new(),
            trace,
            exact_only: false,
            deadline: timeout.map(|ms| now + Duration::from_millis(ms)),
        };
        if let Err(refusal) =
            self.start(id, routing, timeout.map(Duration::from_millis), registry, now, &mut out)
        {
            out.push(Action::Send(
                session,
                error_message(code::CALL, m.request, refusal.uri(), refusal.message()),
            ));
            out.push(Action::CallEnded { call: id, error: Some(refusal.uri().to_owned()), latency: None });
        }
        Ok(out)
    }

    /// A call the router makes itself (dynamic authenticator or authorizer) to an
    /// exact registration of `procedure`; answered by [`Action::Answer`] under `id`,
    /// at the latest when `timeout` has passed.
    #[allow(clippy::too_many_arguments)]
    pub fn handle_internal_call(
        &mut self,
        id: CallId,
        realm: &str,
        procedure: &str,
        args: List,
        timeout: Duration,
        registry: &dyn Registry,
        now: Instant,
    ) -> Actions {
        let mut out = Actions::new();
        let routing = Routing {
            caller: Caller::Router,
            realm: realm.into(),
            procedure: procedure.to_owned(),
            options: Dict::new(),
            payload: Payload::args(args),
            tried: Vec::new(),
            trace: None,
            exact_only: true,
            deadline: Some(now + timeout),
        };
        if let Err(refusal) = self.start(id, routing, Some(timeout), registry, now, &mut out) {
            let failure = super::action::Failure::new(refusal.uri(), refusal.message());
            out.push(Action::Answer(id, Err(failure)));
        }
        out
    }

    /// Routes a new call and records it.
    fn start(
        &mut self,
        id: CallId,
        routing: Routing,
        timeout: Option<Duration>,
        registry: &dyn Registry,
        now: Instant,
        out: &mut Actions,
    ) -> Result<(), Refusal> {
        let receive_progress = dict_bool(&routing.options, "receive_progress");
        let input_open = dict_bool(&routing.options, "progress");
        let (caller, realm) = (routing.caller, routing.realm.clone());
        let d = self.dispatch(id, routing, registry, now, out)?;
        let call = Call {
            realm,
            caller,
            target: d.target,
            registration: d.registration,
            receive_progress,
            input_open,
            disclose: d.disclose,
            timeout,
            touched: now,
            started: now,
            invoked: now,
            lost: None,
            reroute: d.reroute,
        };
        self.insert_call(id, call);
        Ok(())
    }

    /// Picks a callee and sends it the invocation (or holds it back until the callee
    /// was told REGISTERED).
    pub(super) fn dispatch(
        &mut self,
        id: CallId,
        mut r: Routing,
        registry: &dyn Registry,
        now: Instant,
        out: &mut Actions,
    ) -> Result<Dispatched, Refusal> {
        if registry.fenced() {
            return Err(Refusal::Fenced);
        }
        let random = self.random();
        let mut picked = None;
        let me = self.node;
        let this = &*self;
        registry.registration(&r.realm, &r.procedure, r.exact_only, &mut |reg| {
            picked = Some(choose(
                reg,
                &r.tried,
                |c| registry.reachable(c.node) && !(c.node == me && this.is_leaving(c.session)),
                || registry.next_turn(&r.realm, reg.id),
                random,
            ));
        });
        let choice = picked.unwrap_or(Err(Refusal::NoSuchProcedure))?;
        let progress = dict_bool(&r.options, "progress");
        let mut details = Dict::new();
        if choice.policy != MatchPolicy::Exact {
            details.insert("procedure".into(), r.procedure.as_str().into());
        }
        if dict_bool(&r.options, "receive_progress") {
            details.insert("receive_progress".into(), true.into());
        }
        if progress {
            details.insert("progress".into(), true.into());
        }
        ppt::forward(&r.options, &mut details);
        if let Some(trace) = &r.trace {
            details.extend(trace.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        let disclose = choice.callee.disclose_caller || dict_bool(&r.options, "disclose_me");
        if disclose {
            self.disclose(r.caller, &mut details);
        }
        let callee = choice.callee;
        // A progressive call invocation can't be re-routed (its first chunks went to
        // the unavailable callee); neither can a call with nobody else to go to.
        let reroutable = !progress && choice.callees > 1;
        let passthru = ppt::in_use(&r.options);
        let target = if callee.node == self.node {
            let Some(entry) = self.sessions.get(&callee.session) else { return Err(Refusal::CalleeLeft) };
            if passthru && !entry.peer.features.callee_passthru {
                return Err(Refusal::CalleeLacksPassthru);
            }
            if progress && !entry.peer.features.callee_progressive_invocations {
                return Err(Refusal::CalleeLacksProgressiveInvocations);
            }
            let payload = if reroutable { r.payload.clone() } else { std::mem::take(&mut r.payload) };
            let inv = Invocation {
                request: Default::default(),
                registration: choice.registration,
                details,
                payload,
            };
            let invocation = self
                .invoke_local(callee.session, Origin::Local(id), inv, None, registry, now, out)
                .ok_or(Refusal::CalleeLeft)?;
            Target::Local { callee: callee.session, invocation }
        } else {
            let payload = if reroutable { r.payload.clone() } else { std::mem::take(&mut r.payload) };
            let start_within = self.lease.map(|lease| {
                let fence = super::state::fence_start(lease);
                r.deadline.map_or(fence, |at| fence.min(at.saturating_duration_since(now)))
            });
            let invoke = LinkMsg::Invoke {
                realm: r.realm.to_string(),
                call: id,
                callee: callee.session,
                registration: choice.registration,
                details,
                payload,
                start_within,
            };
            out.push(Action::Link(callee.node, invoke));
            Target::Remote { node: callee.node }
        };
        let reroute = reroutable.then(|| {
            let mut tried = r.tried;
            tried.push((callee.node, callee.session));
            Box::new(Reroute {
                procedure: r.procedure,
                options: r.options,
                payload: r.payload,
                tried,
                trace: r.trace,
            })
        });
        Ok(Dispatched { target, registration: choice.registration, disclose, reroute })
    }

    /// Sends an INVOCATION (its request id is issued here) to a local callee, or
    /// holds it back while the callee waits for REGISTERED; `None` when the callee
    /// has left.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn invoke_local(
        &mut self,
        callee: SessionId,
        origin: Origin,
        mut inv: Invocation,
        start_by: Option<Instant>,
        registry: &dyn Registry,
        now: Instant,
        out: &mut Actions,
    ) -> Option<crate::ids::RequestId> {
        let request = self.next_invocation(callee)?;
        inv.request = request;
        if registry.awaits_registration(callee, inv.registration) {
            self.held.insert((callee, request));
            self.arm(now + HOLD_LIMIT, Timer::Held(callee, request));
            let served = Served { origin, held: Some(Box::new(inv)), start_by };
            self.served.insert((callee, request), served);
        } else {
            self.served.insert((callee, request), Served { origin, held: None, start_by });
            out.push(send_invocation(callee, inv, start_by));
        }
        Some(request)
    }

    /// The next chunk of a progressive call invocation, to the same callee.
    fn continue_call(&mut self, id: CallId, m: message::Call, out: &mut Actions) {
        let Some(call) = self.calls.get_mut(&id) else { return };
        let progress = dict_bool(&m.options, "progress");
        if !progress {
            call.input_open = false;
        }
        let mut details = if progress {
            dict! { "progress" => true }
        } else {
            Dict::new()
        };
        let (caller, target, registration, realm) =
            (call.caller, call.target, call.registration, call.realm.clone());
        if call.disclose {
            self.disclose(caller, &mut details);
        }
        match target {
            Target::Local { callee, invocation } => {
                let inv = Invocation { request: invocation, registration, details, payload: m.payload };
                out.push(Action::Send(callee, Message::Invocation(inv)));
            }
            Target::Remote { node } => {
                let invoke = LinkMsg::Invoke {
                    realm: realm.to_string(),
                    call: id,
                    callee: SessionId(0),
                    registration,
                    details,
                    payload: m.payload,
                    start_within: None,
                };
                out.push(Action::Link(node, invoke));
            }
        }
    }

    /// `LinkMsg::Invoke` from node `from`: invoke a local callee for a call kept
    /// there, or pass on the next chunk of a progressive call invocation.
    pub fn handle_link_invoke(
        &mut self,
        from: NodeId,
        m: LinkInvoke,
        registry: &dyn Registry,
        now: Instant,
    ) -> Actions {
        let mut out = Actions::new();
        if let Some(&(callee, request)) = self.remote.get(&(from, m.call)) {
            let inv =
                Invocation { request, registration: m.registration, details: m.details, payload: m.payload };
            out.push(Action::Send(callee, Message::Invocation(inv)));
            return out;
        }
        let features = self
            .sessions
            .get(&m.callee)
            .filter(|s| *s.peer.realm == *m.realm && !s.leaving)
            .map(|s| s.peer.features);
        // The other node chose the callee from its own table. If this node's table
        // does not list it (and its REGISTER is not in flight here, see `invoke_local`),
        // the callee unregistered or this node was purged — cut off or paused past
        // its lease, and the purge applied here on resuming: the caller's node
        // answered the call when it applied the same purge, so it must not start now.
        let listed = || {
            registry.lists_callee(&m.realm, m.registration, m.callee)
                || registry.awaits_registration(m.callee, m.registration)
        };
        let refusal = match features {
            None => Some((errors::CANCELED, "the callee has left")),
            Some(_) if !listed() => Some((errors::CANCELED, "the callee no longer holds the registration")),
            Some(f) if dict_bool(&m.details, "progress") && !f.callee_progressive_invocations => {
                Some((errors::FEATURE_NOT_SUPPORTED, Refusal::CalleeLacksProgressiveInvocations.message()))
            }
            Some(f) if ppt::in_use(&m.details) && !f.callee_passthru => {
                Some((errors::FEATURE_NOT_SUPPORTED, Refusal::CalleeLacksPassthru.message()))
            }
            Some(_) => None,
        };
        let late = m.start_within.is_some_and(|left| left.is_zero());
        let refusal = if late {
            Some((errors::CANCELED, "the invocation arrived after the call's deadline at the caller's node"))
        } else if registry.fenced() {
            Some((errors::CANCELED, Refusal::Fenced.message()))
        } else {
            refusal
        };
        let origin = Origin::Remote { node: from, call: m.call };
        if let Some((error, why)) = refusal {
            self.fail_origin(origin, error, why, now, &mut out);
            return out;
        }
        let inv = Invocation {
            request: Default::default(),
            registration: m.registration,
            details: m.details,
            payload: m.payload,
        };
        // the caller's node answers the call on its own once `start_within` has
        // passed (the fence, or the call's deadline): the INVOCATION must be on its
        // way by then
        let start_by = m.start_within.map(|left| now + left);
        if let Some(request) = self.invoke_local(m.callee, origin, inv, start_by, registry, now, &mut out) {
            self.remote.insert((from, m.call), (m.callee, request));
        }
        out
    }

    /// The invocation of call `id` could not be sent to node `node` (no link): the
    /// call fails as if the node had answered `wamp.error.canceled`.
    pub fn handle_unsent(&mut self, node: NodeId, id: CallId, now: Instant) -> Actions {
        let mut out = Actions::new();
        if self.calls.get(&id).is_some_and(|c| c.target == Target::Remote { node }) {
            let why = Refusal::NoLink;
            self.end_call(id, Outcome::error(why.uri(), why.message()), now, &mut out);
        }
        out
    }
}
