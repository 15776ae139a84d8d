//! The life of a call after it was routed: results (final and progressive), errors,
//! cancels (`skip`, `kill`, `killnowait`), dealer-side timeouts, progressive call
//! invocations, and sessions leaving with calls in flight.
//!
//! The rule that holds everything together: a call is answered exactly once, by
//! whoever removes it from the caller's pending calls first (`finish_call`). An
//! answer arriving for a call that is no longer pending (canceled, timed out, caller
//! gone) is discarded.

use std::sync::Arc;
use std::time::Duration;

use super::Router;
use super::handle::{PendingCall, PendingInvocation, SessionHandle, Target};
use super::internal::{self, ROUTER};
use super::realm::Realm;
use super::rpc::{Violation, error_reply};
use crate::dict;
use crate::ids::{RequestId, SessionId};
use crate::link::LinkMsg;
use crate::wamp::message::{
    Call, CallResult, Cancel, Error, Interrupt, Invocation, Message, Payload, Yield, code,
};
use crate::wamp::value::{Dict, Value, dict_bool, dict_str};
use crate::wamp::{errors, ppt};

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

/// Sends the next chunk of a progressive call invocation to the same callee.
pub fn continue_call(router: &Router, realm: &Realm, me: &SessionHandle, pending: PendingCall, m: Call) {
    let progress = dict_bool(&m.options, "progress");
    if !progress {
        me.close_call_input(m.request);
    }
    let mut details = if progress {
        dict! { "progress" => true }
    } else {
        Dict::new()
    };
    if pending.disclose {
        disclose_caller(me, &mut details);
    }
    match pending.target {
        Target::Local { callee, invocation } => {
            let inv = Invocation {
                request: invocation,
                registration: pending.registration,
                details,
                payload: m.payload,
            };
            if let Some(s) = realm.session(callee) {
                s.send(&Message::Invocation(inv)).ok();
            }
        }
        Target::Remote { node, call } => {
            let msg = LinkMsg::Invoke {
                realm: realm.name.clone(),
                call,
                callee: SessionId(0),
                registration: pending.registration,
                details,
                payload: m.payload,
            };
            router.send_link(node, msg).ok();
        }
    }
}

/// Sends an INVOCATION once its callee has been told REGISTERED (the registration
/// was already committed, so a call could be routed to it first); if the REGISTER
/// does not complete within a second, the call is answered `wamp.error.canceled`.
pub fn invoke_after_registered(
    router: &Router,
    callee: Arc<SessionHandle>,
    inv: Invocation,
    origin: PendingInvocation,
) {
    let Some(router) = router.arc() else { return };
    tokio::spawn(async move {
        if callee.registered(inv.registration, Duration::from_secs(1)).await {
            callee.send(&Message::Invocation(inv)).ok();
            return;
        }
        if callee.finish_invocation(inv.request).ok().flatten().is_none() {
            return;
        }
        const WHY: &str = "the callee's registration did not complete";
        match origin {
            PendingInvocation::Local { caller: ROUTER, call } => {
                internal::answer(&router, call, Err((errors::CANCELED.into(), vec![Value::from(WHY)])));
            }
            PendingInvocation::Local { caller, call } => {
                let caller = router.realms().find_map(|r| r.session(caller));
                if let Some(caller) = caller {
                    deliver_error(
                        &caller,
                        call,
                        errors::CANCELED.into(),
                        Dict::new(),
                        Payload::args(vec![WHY.into()]),
                    );
                }
            }
            PendingInvocation::Remote { node, call } => {
                router.remote_invocations.remove(&(node, call));
                let payload = Payload::args(vec![WHY.into()]);
                let msg =
                    LinkMsg::Error { call, error: errors::CANCELED.into(), details: Dict::new(), payload };
                router.send_link(node, msg).ok();
            }
        }
    });
}

/// Adds the caller's identity to INVOCATION.Details (caller identification).
pub fn disclose_caller(caller: &SessionHandle, details: &mut Dict) {
    details.insert("caller".into(), caller.id.0.into());
    details.insert("caller_authid".into(), caller.identity.authid.as_str().into());
    details.insert("caller_authrole".into(), caller.identity.authrole.as_str().into());
}

/// Starts the dealer-side timer of a call with CALL.Options.timeout. The timeout runs
/// from the call's last progress: each progressive result restarts it.
pub fn arm_timeout(
    router: Arc<Router>,
    realm: Arc<Realm>,
    caller: Arc<SessionHandle>,
    request: RequestId,
    token: u64,
    ms: u64,
) {
    let limit = Duration::from_millis(ms);
    tokio::spawn(async move {
        loop {
            let Some(c) = caller.call(request).filter(|c| c.token == token) else { return };
            let due = c.touched + limit;
            if tokio::time::Instant::now() >= due {
                break;
            }
            tokio::time::sleep_until(due).await;
        }
        let Some(pending) = caller.fail_call(request, errors::TIMEOUT) else { return };
        let e = error_reply(code::CALL, request, errors::TIMEOUT, "the call timed out at the dealer");
        caller.send(&e).ok();
        interrupt(&router, &realm, pending.target, CancelMode::KillNoWait, errors::TIMEOUT);
    });
}

/// Handles CANCEL from a caller.
pub fn cancel(router: &Router, realm: &Realm, me: &SessionHandle, m: Cancel) {
    let mode = CancelMode::parse(dict_str(&m.options, "mode")).unwrap_or(CancelMode::KillNoWait);
    let Some(pending) = me.call(m.request) else { return };
    let interrupted =
        mode != CancelMode::Skip && interrupt(router, realm, pending.target, mode, errors::CANCELED);
    if mode == CancelMode::Kill && interrupted {
        return;
    }
    if me.fail_call(m.request, errors::CANCELED).is_some() {
        me.send(&error_reply(code::CALL, m.request, errors::CANCELED, "the call was canceled")).ok();
        detach(router, realm, pending.target);
    }
}

/// Sends INTERRUPT for a call's invocation. Returns true when the callee was told
/// (it announced `call_canceling`), and so will answer.
pub fn interrupt(router: &Router, realm: &Realm, target: Target, mode: CancelMode, reason: &str) -> bool {
    match target {
        Target::Local { callee, invocation } => interrupt_local(realm, callee, invocation, mode, reason),
        Target::Remote { node, call } => {
            let msg = LinkMsg::Interrupt { call, mode: mode.as_str().into(), reason: reason.into() };
            router.send_link(node, msg).is_ok()
        }
    }
}

/// Interrupts an invocation of a local callee, if it supports call canceling.
pub fn interrupt_local(
    realm: &Realm,
    callee: SessionId,
    invocation: RequestId,
    mode: CancelMode,
    reason: &str,
) -> bool {
    let Some(s) = realm.session(callee) else { return false };
    if !s.has_feature("callee", "call_canceling") {
        return false;
    }
    let options = dict! { "mode" => mode.as_str(), "reason" => reason };
    s.send(&Message::Interrupt(Interrupt { request: invocation, options })).ok();
    if mode == CancelMode::KillNoWait {
        s.forget_invocation(invocation);
    }
    true
}

/// Stops waiting for a target's answer: a late answer will be discarded.
fn detach(router: &Router, realm: &Realm, target: Target) {
    match target {
        Target::Local { callee, invocation } => {
            if let Some(s) = realm.session(callee) {
                s.forget_invocation(invocation);
            }
        }
        Target::Remote { call, .. } => {
            router.remote_calls.remove(&call);
        }
    }
}

/// Handles YIELD from a callee (progressive or final).
pub fn yield_result(router: &Router, realm: &Realm, me: &SessionHandle, m: Yield) -> Result<(), Violation> {
    let progress = dict_bool(&m.options, "progress");
    if ppt::in_use(&m.options) && !me.has_feature("callee", ppt::FEATURE) {
        return Err(Violation("payload passthru used without announcing it"));
    }
    let origin = if progress { me.invocation(m.request) } else { me.finish_invocation(m.request) };
    let Some(origin) = origin.map_err(|_| Violation("YIELD for an unknown invocation"))? else {
        return Ok(());
    };
    let mut details = Dict::new();
    ppt::forward(&m.options, &mut details);
    match origin {
        PendingInvocation::Local { caller: ROUTER, call } => {
            if !progress {
                internal::answer(router, call, Ok(m.payload));
            }
        }
        PendingInvocation::Local { caller, call } => {
            let Some(caller) = realm.session(caller) else { return Ok(()) };
            if !details.is_empty() && !caller.has_feature("caller", ppt::FEATURE) {
                let why = "the caller does not support payload passthru mode";
                me.send(&error_reply(code::YIELD, m.request, errors::FEATURE_NOT_SUPPORTED, why)).ok();
                let payload = Payload::args(vec![Value::from(why)]);
                deliver_error(&caller, call, errors::FEATURE_NOT_SUPPORTED.into(), Dict::new(), payload);
                return Ok(());
            }
            deliver_result(&caller, call, progress, details, m.payload);
        }
        PendingInvocation::Remote { node, call } => {
            if !progress {
                router.remote_invocations.remove(&(node, call));
                crate::observe::spans::pending().end((node.0, call), None);
            }
            router.send_link(node, LinkMsg::Yield { call, details, payload: m.payload, progress }).ok();
        }
    }
    Ok(())
}

/// Gives a caller a result: progressive ones only if it asked for them, the final one
/// only if the call is still pending.
pub fn deliver_result(
    caller: &SessionHandle,
    request: RequestId,
    progress: bool,
    mut details: Dict,
    payload: Payload,
) {
    if progress {
        caller.touch_call(request);
        if caller.call(request).is_some_and(|c| c.receive_progress) {
            details.insert("progress".into(), true.into());
            caller.send(&Message::Result(CallResult { request, details, payload })).ok();
        }
        return;
    }
    if caller.finish_call(request).is_some() {
        caller.send(&Message::Result(CallResult { request, details, payload })).ok();
    }
}

/// Gives a caller an error, if the call is still pending.
pub fn deliver_error(
    caller: &SessionHandle,
    request: RequestId,
    error: String,
    details: Dict,
    payload: Payload,
) {
    if caller.fail_call(request, &error).is_some() {
        let e = Error { request_type: code::CALL, request, details, error, payload };
        caller.send(&Message::Error(e)).ok();
    }
}

/// The error answer of an invocation, at the caller's node. `wamp.error.unavailable`
/// re-routes the call to the next callee by the registration's invoke policy, or
/// becomes `wamp.error.no_available_callee` when none is left (call rerouting); any
/// other error goes to the caller.
pub fn callee_error(
    router: &Router,
    realm: &Realm,
    caller: &SessionHandle,
    request: RequestId,
    error: String,
    details: Dict,
    payload: Payload,
) {
    if error != errors::UNAVAILABLE {
        deliver_error(caller, request, error, details, payload);
        return;
    }
    let Some(pending) = caller.call(request) else { return };
    let outcome = match pending.reroute.filter(|_| !pending.input_open) {
        Some(r) => {
            let call = super::rpc::Routed {
                request,
                procedure: &r.procedure,
                options: &r.options,
                token: pending.token,
                tried: r.tried.clone(),
            };
            super::rpc::dispatch(router, realm, caller, call, r.payload.clone())
        }
        None => Err((errors::NO_AVAILABLE_CALLEE, "every callee of the procedure is unavailable")),
    };
    if let Err((uri, why)) = outcome {
        deliver_error(caller, request, uri.into(), Dict::new(), Payload::args(vec![Value::from(why)]));
    }
}

/// Handles ERROR (reply to INVOCATION) from a callee.
pub fn invocation_error(
    router: &Router,
    realm: &Realm,
    me: &SessionHandle,
    m: Error,
) -> Result<(), Violation> {
    let origin = me.finish_invocation(m.request).map_err(|_| Violation("ERROR for an unknown invocation"))?;
    let Some(origin) = origin else { return Ok(()) };
    match origin {
        PendingInvocation::Local { caller: ROUTER, call } => {
            internal::answer(router, call, Err((m.error, m.payload.args.unwrap_or_default())));
        }
        PendingInvocation::Local { caller, call } => {
            if let Some(caller) = realm.session(caller) {
                callee_error(router, realm, &caller, call, m.error, m.details, m.payload);
            }
        }
        PendingInvocation::Remote { node, call } => {
            router.remote_invocations.remove(&(node, call));
            crate::observe::spans::pending().end((node.0, call), Some(&m.error));
            let msg = LinkMsg::Error { call, error: m.error, details: m.details, payload: m.payload };
            router.send_link(node, msg).ok();
        }
    }
    Ok(())
}

/// A session is leaving: answer the calls it was serving with `wamp.error.canceled`,
/// and interrupt (`killnowait`) the invocations serving the calls it made.
pub fn leave(router: &Router, realm: &Realm, me: &SessionHandle) {
    const WHY: &str = "the callee left before answering";
    for (_, origin) in me.take_invocations() {
        match origin {
            PendingInvocation::Local { caller: ROUTER, call } => {
                internal::answer(router, call, Err((errors::CANCELED.into(), vec![Value::from(WHY)])));
            }
            PendingInvocation::Local { caller, call } => {
                if let Some(caller) = realm.session(caller) {
                    let payload = Payload::args(vec![Value::from(WHY)]);
                    deliver_error(&caller, call, errors::CANCELED.into(), Dict::new(), payload);
                }
            }
            PendingInvocation::Remote { node, call } => {
                router.remote_invocations.remove(&(node, call));
                crate::observe::spans::pending().end((node.0, call), Some(errors::CANCELED));
                let msg = LinkMsg::Error {
                    call,
                    error: errors::CANCELED.into(),
                    details: Dict::new(),
                    payload: Payload::args(vec![Value::from(WHY)]),
                };
                router.send_link(node, msg).ok();
            }
        }
    }
    for (_, pending) in me.take_calls() {
        interrupt(router, realm, pending.target, CancelMode::KillNoWait, errors::CANCELED);
        detach(router, realm, pending.target);
    }
}
