//! A callee's answer reaching the caller: YIELD (final or progressive) and ERROR
//! from a local callee, their link counterparts from another node, and call
//! rerouting when the answer is `wamp.error.unavailable`.

use std::time::Instant;

use super::action::{Action, Actions, Refusal, Violation};
use super::choose::Registry;
use super::record::{Caller, Origin, Target};
use super::state::{Dealer, Outcome, error_message};
use crate::ids::{CallId, NodeId, SessionId};
use crate::link::LinkMsg;
use crate::wamp::message::{CallResult, Error, Message, Payload, Yield, code};
use crate::wamp::value::{Dict, dict_bool};
use crate::wamp::{errors, ppt};

impl Dealer {
    /// YIELD from a local callee.
    pub fn handle_yield(&mut self, callee: SessionId, m: Yield, now: Instant) -> Result<Actions, Violation> {
        let mut out = Actions::new();
        let Some(entry) = self.sessions.get(&callee) else { return Ok(out) };
        if ppt::in_use(&m.options) && !entry.peer.features.callee_passthru {
            return Err(Violation::PassthruNotAnnounced);
        }
        let progress = dict_bool(&m.options, "progress");
        let key = (callee, m.request);
        let origin = if progress {
            self.served.get(&key).filter(|s| s.held.is_none()).map(|s| s.origin)
        } else {
            self.served.remove(&key).map(|s| s.origin)
        };
        let Some(origin) = origin else {
            return if self.was_issued(callee, m.request) { Ok(out) } else { Err(Violation::UnknownYield) };
        };
        let mut details = Dict::new();
        ppt::forward(&m.options, &mut details);
        match origin {
            Origin::Local(call) => {
                let caller = self.calls.get(&call).map(|c| c.caller);
                if let Some(Caller::Session { session, .. }) = caller
                    && !details.is_empty()
                    && !self.sessions.get(&session).is_some_and(|s| s.peer.features.caller_passthru)
                {
                    let why = "the caller does not support payload passthru mode";
                    out.push(Action::Send(
                        callee,
                        error_message(code::YIELD, m.request, errors::FEATURE_NOT_SUPPORTED, why),
                    ));
                    self.end_call(call, Outcome::error(errors::FEATURE_NOT_SUPPORTED, why), now, &mut out);
                    return Ok(out);
                }
                self.deliver_result(call, progress, details, m.payload, now, &mut out);
            }
            Origin::Remote { node, call } => {
                if !progress {
                    self.remote.remove(&(node, call));
                    out.push(Action::ServedEnded { node, call, error: None });
                }
                out.push(Action::Link(node, LinkMsg::Yield { call, details, payload: m.payload, progress }));
            }
        }
        Ok(out)
    }

    /// ERROR (the answer to an INVOCATION) from a local callee.
    pub fn handle_invocation_error(
        &mut self,
        callee: SessionId,
        m: Error,
        registry: &dyn Registry,
        now: Instant,
    ) -> Result<Actions, Violation> {
        let mut out = Actions::new();
        let Some(served) = self.served.remove(&(callee, m.request)) else {
            return if self.was_issued(callee, m.request) || !self.sessions.contains_key(&callee) {
                Ok(out)
            } else {
                Err(Violation::UnknownError)
            };
        };
        self.held.remove(&(callee, m.request));
        match served.origin {
            Origin::Local(call) => {
                self.callee_error(call, m.error, m.details, m.payload, registry, now, &mut out)
            }
            Origin::Remote { node, call } => {
                self.remote.remove(&(node, call));
                out.push(Action::ServedEnded { node, call, error: Some(m.error.clone()) });
                let error = LinkMsg::Error { call, error: m.error, details: m.details, payload: m.payload };
                out.push(Action::Link(node, error));
            }
        }
        Ok(out)
    }

    /// `LinkMsg::Yield` from the node serving call `call`.
    pub fn handle_link_yield(
        &mut self,
        from: NodeId,
        call: CallId,
        details: Dict,
        payload: Payload,
        progress: bool,
        now: Instant,
    ) -> Actions {
        let mut out = Actions::new();
        if self.served_by(call, from) {
            self.deliver_result(call, progress, details, payload, now, &mut out);
        }
        out
    }

    /// `LinkMsg::Error` from the node serving call `call`.
    #[allow(clippy::too_many_arguments)]
    pub fn handle_link_error(
        &mut self,
        from: NodeId,
        call: CallId,
        error: String,
        details: Dict,
        payload: Payload,
        registry: &dyn Registry,
        now: Instant,
    ) -> Actions {
        let mut out = Actions::new();
        if self.served_by(call, from) {
            self.callee_error(call, error, details, payload, registry, now, &mut out);
        }
        out
    }

    /// True when call `call` is being served on node `node` (a late answer from a
    /// node the call was rerouted away from is dropped).
    fn served_by(&self, call: CallId, node: NodeId) -> bool {
        self.calls.get(&call).is_some_and(|c| c.target == Target::Remote { node })
    }

    /// Gives a caller a result: a progressive one only if it asked for them (and
    /// restarts the call's timeout), the final one only once.
    fn deliver_result(
        &mut self,
        id: CallId,
        progress: bool,
        mut details: Dict,
        payload: Payload,
        now: Instant,
        out: &mut Actions,
    ) {
        if !progress {
            self.end_call(id, Outcome::Result(details, payload), now, out);
            return;
        }
        let Some(call) = self.calls.get_mut(&id) else { return };
        call.touched = now;
        if let Caller::Session { session, request } = call.caller
            && call.receive_progress
        {
            details.insert("progress".into(), true.into());
            out.push(Action::Send(session, Message::Result(CallResult { request, details, payload })));
        }
    }

    /// The error answer of an invocation, at the caller's node. `wamp.error.unavailable`
    /// routes a client's call to the next callee by the registration's invoke policy,
    /// or becomes `wamp.error.no_available_callee` when none is left (call rerouting);
    /// any other error goes to the caller.
    #[allow(clippy::too_many_arguments)]
    fn callee_error(
        &mut self,
        id: CallId,
        error: String,
        details: Dict,
        payload: Payload,
        registry: &dyn Registry,
        now: Instant,
        out: &mut Actions,
    ) {
        let Some(call) = self.calls.get_mut(&id) else { return };
        if error != errors::UNAVAILABLE || call.caller == Caller::Router {
            self.end_call(id, Outcome::Error(error, details, payload), now, out);
            return;
        }
        let reroute = if call.input_open { None } else { call.reroute.take() };
        let refusal = match reroute {
            Some(r) => match self.reroute(id, *r, registry, now, out) {
                Ok(()) => return,
                Err(refusal) => refusal,
            },
            None => Refusal::NoAvailableCallee,
        };
        self.end_call(id, Outcome::error(refusal.uri(), refusal.message()), now, out);
    }
}
