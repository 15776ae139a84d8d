//! How calls end other than by their callee's answer: CANCEL (`skip`, `kill`,
//! `killnowait`), the dealer-side timeout, INTERRUPT from the caller's node, a
//! callee or caller leaving, the loss of a node, and an INVOCATION held back for a
//! REGISTERED that does not come. Also routing a call again (rerouting), which
//! replaces the call's target.

use std::time::Instant;

use super::action::{Action, Actions, Refusal};
use super::choose::Registry;
use super::record::{Caller, Reroute, Target, Timer};
use super::state::{Dealer, Outcome};
use crate::dict;
use crate::ids::{CallId, NodeId, RegistrationId, RequestId, SessionId};
use crate::link::LinkMsg;
use crate::wamp::errors;
use crate::wamp::message::{Cancel, Interrupt, Message, Payload};
use crate::wamp::value::{Dict, dict_str};

/// How a call is canceled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CancelMode {
    /// Answer the caller now; the callee is not told.
    Skip,
    /// Interrupt the callee; the caller gets the callee's answer.
    Kill,
    /// Answer the caller now and interrupt the callee.
    KillNoWait,
}

impl CancelMode {
    /// Parses CANCEL.Options.mode; absent means `killnowait` (as Crossbar.io does).
    pub fn parse(s: Option<&str>) -> Option<CancelMode> {
        match s {
            Some("skip") => Some(CancelMode::Skip),
            Some("kill") => Some(CancelMode::Kill),
            None | Some("killnowait") => Some(CancelMode::KillNoWait),
            Some(_) => None,
        }
    }

    /// The option value as the spec spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            CancelMode::Skip => "skip",
            CancelMode::Kill => "kill",
            CancelMode::KillNoWait => "killnowait",
        }
    }
}

impl Dealer {
    /// CANCEL from a caller.
    pub fn handle_cancel(&mut self, session: SessionId, m: Cancel, now: Instant) -> Actions {
        let mut out = Actions::new();
        let mode = CancelMode::parse(dict_str(&m.options, "mode")).unwrap_or(CancelMode::KillNoWait);
        let Some(&id) = self.by_request.get(&(session, m.request)) else { return out };
        let Some(target) = self.calls.get(&id).map(|c| c.target) else { return out };
        let interrupted =
            mode != CancelMode::Skip && self.interrupt(id, target, mode, errors::CANCELED, &mut out);
        if mode == CancelMode::Kill && interrupted {
            return out;
        }
        if self
            .end_call(id, Outcome::error(errors::CANCELED, "the call was canceled"), now, &mut out)
            .is_some()
        {
            self.detach(target);
        }
        out
    }

    /// `LinkMsg::Interrupt` from the caller's node, for an invocation served here.
    pub fn handle_link_interrupt(&mut self, from: NodeId, call: CallId, mode: &str, reason: &str) -> Actions {
        let mut out = Actions::new();
        let Some(&(callee, invocation)) = self.remote.get(&(from, call)) else { return out };
        let mode = CancelMode::parse(Some(mode)).unwrap_or(CancelMode::KillNoWait);
        let target = Target::Local { callee, invocation };
        let told = self.interrupt(call, target, mode, reason, &mut out);
        if mode == CancelMode::KillNoWait || !told {
            self.remote.remove(&(from, call));
            self.served.remove(&(callee, invocation));
            self.held.remove(&(callee, invocation));
            out.push(Action::ServedEnded { node: from, call, error: Some(reason.to_owned()) });
        }
        if mode == CancelMode::Kill && !told {
            let error = errors::CANCELED.to_owned();
            out.push(Action::Link(
                from,
                LinkMsg::Error { call, error, details: Dict::new(), payload: Payload::default() },
            ));
        }
        out
    }

    /// Runs the timers due at `now`: dealer-side call timeouts (a client's
    /// CALL.Options.timeout, the router's own deadline) and held invocations.
    pub fn handle_timeout(&mut self, now: Instant) -> Actions {
        let mut out = Actions::new();
        while let Some(&(at, timer)) = self.timers.first() {
            if at > now {
                break;
            }
            self.timers.pop_first();
            match timer {
                Timer::Call(id) => self.call_timed_out(id, now, &mut out),
                Timer::Held(callee, request) => self.hold_expired(callee, request, now, &mut out),
                Timer::Lost(id) => self.fence_passed(id, now, &mut out),
            }
        }
        out
    }

    fn call_timed_out(&mut self, id: CallId, now: Instant, out: &mut Actions) {
        let Some(call) = self.calls.get(&id) else { return };
        let Some(due) = call.deadline() else { return };
        if due > now {
            // progress restarted the timeout since this timer was armed
            self.arm(due, Timer::Call(id));
            return;
        }
        let (target, caller) = (call.target, call.caller);
        let why = match caller {
            Caller::Router => "the procedure did not answer in time",
            Caller::Session { .. } => "the call timed out at the dealer",
        };
        self.end_call(id, Outcome::error(errors::TIMEOUT, why), now, out);
        if caller != Caller::Router {
            self.interrupt(id, target, CancelMode::KillNoWait, errors::TIMEOUT, out);
        }
        self.detach(target);
    }

    fn hold_expired(&mut self, callee: SessionId, request: RequestId, now: Instant, out: &mut Actions) {
        if !self.held.remove(&(callee, request)) {
            return;
        }
        let Some(served) = self.served.remove(&(callee, request)) else { return };
        let why = "the callee's registration did not complete";
        self.fail_origin(served.origin, errors::CANCELED, why, now, out);
    }

    /// A REGISTER of `callee` ended: INVOCATIONs held for `registered` go out;
    /// those held for a registration the session no longer waits for fail.
    pub fn handle_register_done(
        &mut self,
        callee: SessionId,
        registered: Option<RegistrationId>,
        registry: &dyn Registry,
        now: Instant,
    ) -> Actions {
        let mut out = Actions::new();
        let held: Vec<RequestId> = self
            .held
            .range((callee, RequestId(0))..=(callee, RequestId(u64::MAX)))
            .map(|&(_, r)| r)
            .collect();
        for request in held {
            let Some(served) = self.served.get_mut(&(callee, request)) else { continue };
            let Some(registration) = served.held.as_ref().map(|i| i.registration) else { continue };
            if Some(registration) == registered {
                let inv = *served.held.take().expect("held");
                let start_by = served.start_by;
                self.held.remove(&(callee, request));
                out.push(super::route::send_invocation(callee, inv, start_by));
            } else if !registry.awaits_registration(callee, registration) {
                self.hold_expired(callee, request, now, &mut out);
            }
        }
        out
    }

    /// The INVOCATION `request` of `callee` ([`Action::SendBy`]) was still queued at
    /// its deadline and was dropped unsent: the caller's node may have answered the
    /// call already; if it has not, it is answered `wamp.error.canceled` now.
    pub fn handle_unwritten(&mut self, callee: SessionId, request: RequestId, now: Instant) -> Actions {
        let mut out = Actions::new();
        // (only an INVOCATION that was sent has a deadline: none of these is held)
        if let Some(served) = self.served.remove(&(callee, request)) {
            let why = "the invocation was still queued for the callee when the caller's node could \
                       answer the call on its own";
            self.fail_origin(served.origin, errors::CANCELED, why, now, &mut out);
        }
        out
    }

    /// A local session left: the invocations it was serving are answered
    /// `wamp.error.canceled`, the calls it made are interrupted (`killnowait`).
    pub fn session_left(&mut self, session: SessionId, now: Instant) -> Actions {
        let mut out = Actions::new();
        let range = (session, RequestId(0))..=(session, RequestId(u64::MAX));
        let serving: Vec<RequestId> = self.served.range(range.clone()).map(|(&(_, r), _)| r).collect();
        for request in serving {
            self.held.remove(&(session, request));
            if let Some(served) = self.served.remove(&(session, request)) {
                self.fail_origin(
                    served.origin,
                    errors::CANCELED,
                    "the callee left before answering",
                    now,
                    &mut out,
                );
            }
        }
        let calls: Vec<CallId> = self.by_request.range(range).map(|(_, &id)| id).collect();
        for id in calls {
            let Some(call) = self.remove_call(id) else { continue };
            self.interrupt(id, call.target, CancelMode::KillNoWait, errors::CANCELED, &mut out);
            self.detach(call.target);
            out.push(Action::CallEnded { call: id, error: Some(errors::CANCELED.into()), latency: None });
        }
        self.sessions.remove(&session);
        out.retain(|a| !matches!(a, Action::Send(to, _) if *to == session));
        out
    }

    /// Node `node` is lost (its link broke or the cluster declared it down): every
    /// call served there is answered `wamp.error.canceled` — once its invocation can
    /// no longer start there (a lease after it was sent, see [`Dealer::with_lease`];
    /// at once when that has passed); every invocation served here for a call kept
    /// there is interrupted.
    pub fn handle_node_lost(&mut self, node: NodeId, now: Instant) -> Actions {
        let mut out = Actions::new();
        let lost: Vec<(CallId, Instant)> = self
            .calls
            .iter()
            .filter(|(_, c)| c.target == Target::Remote { node } && c.lost.is_none())
            .map(|(id, c)| (*id, c.invoked))
            .collect();
        for (id, invoked) in lost {
            match self.lease.map(|lease| invoked + lease).filter(|&at| at > now) {
                Some(at) => {
                    if let Some(call) = self.calls.get_mut(&id) {
                        call.lost = Some(node);
                    }
                    self.arm(at, Timer::Lost(id));
                }
                None => self.answer_lost(id, node, now, &mut out),
            }
        }
        let mut orphaned: Vec<(CallId, SessionId, RequestId)> = self
            .remote
            .iter()
            .filter(|((n, _), _)| *n == node)
            .map(|(&(_, call), &(s, r))| (call, s, r))
            .collect();
        orphaned.sort_unstable();
        for (call, callee, invocation) in orphaned {
            self.remote.remove(&(node, call));
            out.push(Action::ServedEnded { node, call, error: Some(errors::CANCELED.into()) });
            let target = Target::Local { callee, invocation };
            self.interrupt(call, target, CancelMode::KillNoWait, errors::CANCELED, &mut out);
            self.served.remove(&(callee, invocation));
            self.held.remove(&(callee, invocation));
        }
        out
    }

    /// Node `node`, lost before, is gone for good (its process no longer listens):
    /// the calls waiting out its fence are answered now.
    pub fn handle_node_gone(&mut self, node: NodeId, now: Instant) -> Actions {
        let mut out = Actions::new();
        let waiting: Vec<CallId> = self
            .calls
            .iter()
            .filter(|(_, c)| c.lost == Some(node) && c.target == Target::Remote { node })
            .map(|(id, _)| *id)
            .collect();
        for id in waiting {
            self.answer_lost(id, node, now, &mut out);
        }
        out
    }

    /// Answers a call whose callee's node was lost.
    fn answer_lost(&mut self, id: CallId, node: NodeId, now: Instant, out: &mut Actions) {
        let payload = Payload::args(vec!["the callee's node was lost".into()]);
        let details = match self.calls.get(&id).map(|c| c.caller) {
            Some(Caller::Session { .. }) => dict! { "node" => node.0 },
            _ => Dict::new(),
        };
        self.end_call(id, Outcome::Error(errors::CANCELED.into(), details, payload), now, out);
    }

    /// The fence of a call whose callee's node was lost has passed: the invocation
    /// can no longer start there, so the call is answered.
    fn fence_passed(&mut self, id: CallId, now: Instant, out: &mut Actions) {
        let Some(call) = self.calls.get(&id) else { return };
        if let (Some(node), Target::Remote { node: target }) = (call.lost, call.target)
            && node == target
        {
            self.answer_lost(id, node, now, out);
        }
    }

    /// Sends INTERRUPT for a call's invocation. Returns true when the callee was told
    /// (a local callee that announced `call_canceling`, or the serving node), and so
    /// will answer.
    pub(super) fn interrupt(
        &mut self,
        id: CallId,
        target: Target,
        mode: CancelMode,
        reason: &str,
        out: &mut Actions,
    ) -> bool {
        match target {
            Target::Local { callee, invocation } => {
                if !self.sessions.get(&callee).is_some_and(|s| s.peer.features.call_canceling) {
                    return false;
                }
                if self.served.get(&(callee, invocation)).is_none_or(|s| s.held.is_some()) {
                    return false;
                }
                let options = dict! { "mode" => mode.as_str(), "reason" => reason };
                out.push(Action::Send(
                    callee,
                    Message::Interrupt(Interrupt { request: invocation, options }),
                ));
                if mode == CancelMode::KillNoWait {
                    self.served.remove(&(callee, invocation));
                }
                true
            }
            Target::Remote { node } => {
                let msg = LinkMsg::Interrupt { call: id, mode: mode.as_str().into(), reason: reason.into() };
                out.push(Action::Link(node, msg));
                true
            }
        }
    }

    /// Stops waiting for a target's answer: a late answer will be dropped.
    fn detach(&mut self, target: Target) {
        if let Target::Local { callee, invocation } = target {
            self.served.remove(&(callee, invocation));
            self.held.remove(&(callee, invocation));
        }
    }

    /// Routes call `id` again, to the next callee not tried yet.
    pub(super) fn reroute(
        &mut self,
        id: CallId,
        r: Reroute,
        registry: &dyn Registry,
        now: Instant,
        out: &mut Actions,
    ) -> Result<(), Refusal> {
        let Some(call) = self.calls.get(&id) else { return Ok(()) };
        let routing = super::route::Routing {
            caller: call.caller,
            realm: call.realm.clone(),
            procedure: r.procedure,
            options: r.options,
            payload: r.payload,
            tried: r.tried,
            trace: r.trace,
            exact_only: false,
            deadline: call.deadline(),
        };
        let d = self.dispatch(id, routing, registry, now, out)?;
        if let Some(call) = self.calls.get_mut(&id) {
            call.invoked = now;
            call.lost = None;
            call.target = d.target;
            call.registration = d.registration;
            call.reroute = d.reroute;
        }
        Ok(())
    }
}
