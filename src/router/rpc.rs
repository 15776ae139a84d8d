//! Dealer operations: REGISTER, UNREGISTER, CALL, YIELD, ERROR, and a leaving
//! session's registrations and calls. Every CALL gets a RESULT or an ERROR: when a
//! callee leaves, each call it was serving is answered `wamp.error.canceled` at once.

use std::sync::Arc;

use super::handle::{PendingCall, PendingInvocation, SessionHandle};
use super::realm::Realm;
use super::table::{Command, Outcome};
use super::{Router, now_ms};
use crate::dealer::{Callee, InvokePolicy, RegisterError};
use crate::dict;
use crate::ids::RequestId;
use crate::wamp::errors;
use crate::wamp::message::{
    Call, CallResult, Error, Invocation, Message, Payload, Register, Registered, Unregister, Unregistered, Yield,
    code,
};
use crate::wamp::uri::{self, MatchPolicy};
use crate::wamp::value::{Dict, Value, dict_str};

/// Crossbar.io's URI for a REGISTER whose invoke policy differs from the existing one.
pub const POLICY_CONFLICT: &str = "wamp.error.procedure_exists_invocation_policy_conflict";

/// An ERROR reply to a request, with a human-readable message as its only argument.
pub fn error_reply(request_type: u64, request: RequestId, uri: &str, message: &str) -> Message {
    Message::Error(Error {
        request_type,
        request,
        details: Dict::new(),
        error: uri.to_owned(),
        payload: Payload::args(vec![Value::from(message)]),
    })
}

/// A protocol violation detected while routing; the session is aborted.
#[derive(Debug)]
pub struct Violation(pub &'static str);

/// Handles REGISTER.
pub async fn register(router: &Router, realm: &Realm, me: &Arc<SessionHandle>, m: Register) {
    let reply = |uri: &str, msg: &str| me.send(&error_reply(code::REGISTER, m.request, uri, msg)).ok();
    let Some(policy) = MatchPolicy::parse(dict_str(&m.options, "match")) else {
        reply(errors::INVALID_ARGUMENT, "unknown match policy");
        return;
    };
    let Some(invoke) = InvokePolicy::parse(dict_str(&m.options, "invoke")) else {
        reply(errors::INVALID_ARGUMENT, "unknown invocation policy");
        return;
    };
    if !uri::is_valid_pattern(&m.procedure, policy, realm.uri_check) || uri::is_reserved(&m.procedure) {
        reply(errors::INVALID_URI, "invalid procedure URI");
        return;
    }
    let cmd = Command::Register {
        realm: realm.name.clone(),
        callee: Callee { node: router.node, session: me.id },
        procedure: m.procedure.clone(),
        policy,
        invoke,
        now_ms: now_ms(),
    };
    match router.replica.propose(cmd).await {
        Ok(Outcome::Registered(Ok(id))) => {
            me.set_registered(id, true);
            me.send(&Message::Registered(Registered { request: m.request, registration: id })).ok();
        }
        Ok(Outcome::Registered(Err(RegisterError::PolicyConflict(p)))) => {
            reply(POLICY_CONFLICT, &format!("procedure is registered with invoke policy '{p}'"));
        }
        Ok(Outcome::Registered(Err(_))) => {
            reply(errors::PROCEDURE_ALREADY_EXISTS, "procedure already registered");
        }
        other => {
            reply(errors::CLUSTER_UNAVAILABLE, &format!("registration not committed: {other:?}"));
        }
    }
}

/// Handles UNREGISTER.
pub async fn unregister(router: &Router, realm: &Realm, me: &Arc<SessionHandle>, m: Unregister) {
    if !me.set_registered(m.registration, false) {
        let e = error_reply(code::UNREGISTER, m.request, errors::NO_SUCH_REGISTRATION, "not registered");
        me.send(&e).ok();
        return;
    }
    let cmd = Command::Unregister { realm: realm.name.clone(), session: me.id, registration: m.registration };
    if let Err(e) = router.replica.propose(cmd).await {
        tracing::warn!(error = %e, "unregister not committed; the callee entry stays until the node leaves");
    }
    me.send(&Message::Unregistered(Unregistered { request: m.request, details: None })).ok();
}

/// Handles CALL: picks a callee by the registration's invoke policy and invokes it.
pub fn call(router: &Router, realm: &Realm, me: &Arc<SessionHandle>, m: Call) {
    let reply = |uri: &str, msg: &str| me.send(&error_reply(code::CALL, m.request, uri, msg)).ok();
    if !uri::is_valid(&m.procedure, realm.uri_check) {
        reply(errors::INVALID_URI, "invalid procedure URI");
        return;
    }
    let target = router.replica.read(|t| {
        let reg = t.realm(&realm.name)?.registrations.lookup(&m.procedure)?;
        let turn = if reg.invoke == InvokePolicy::RoundRobin { realm.next_turn(reg.id) } else { 0 };
        let random = if reg.invoke == InvokePolicy::Random { crate::ids::random_id() as usize } else { 0 };
        let callee = reg.callees.get(reg.invoke.pick(reg.callees.len(), turn, random)).copied()?;
        Some((reg.id, reg.policy, callee))
    });
    let Some((registration, policy, callee)) = target else {
        reply(errors::NO_SUCH_PROCEDURE, "no callee registered for procedure");
        return;
    };
    let Some(callee) = realm.session(callee.session) else {
        reply(errors::NO_SUCH_PROCEDURE, "the callee has just left");
        return;
    };
    let pending = PendingInvocation { caller: me.id, call: m.request };
    let Some(invocation) = callee.start_invocation(pending) else {
        reply(errors::CANCELED, "the callee has just left");
        return;
    };
    me.start_call(m.request, PendingCall { callee: callee.id, invocation });
    let details = match policy {
        MatchPolicy::Exact => Dict::new(),
        _ => dict! { "procedure" => m.procedure.as_str() },
    };
    let inv = Invocation { request: invocation, registration, details, payload: m.payload };
    if callee.send(&Message::Invocation(inv)).is_err() {
        callee.forget_invocation(invocation);
        me.finish_call(m.request);
        reply(errors::CANCELED, "the callee could not take the invocation");
    }
}

/// Handles YIELD from a callee.
pub fn yield_result(realm: &Realm, me: &SessionHandle, m: Yield) -> Result<(), Violation> {
    let Some(p) = me.finish_invocation(m.request).map_err(|_| Violation("YIELD for an unknown invocation"))? else {
        return Ok(());
    };
    if let Some(caller) = realm.session(p.caller) {
        caller.finish_call(p.call);
        let result = CallResult { request: p.call, details: Dict::new(), payload: m.payload };
        caller.send(&Message::Result(result)).ok();
    }
    Ok(())
}

/// Handles ERROR (reply to INVOCATION) from a callee.
pub fn invocation_error(realm: &Realm, me: &SessionHandle, m: Error) -> Result<(), Violation> {
    let Some(p) = me.finish_invocation(m.request).map_err(|_| Violation("ERROR for an unknown invocation"))? else {
        return Ok(());
    };
    if let Some(caller) = realm.session(p.caller) {
        caller.finish_call(p.call);
        let err = Error { request_type: code::CALL, request: p.call, details: m.details, error: m.error, payload: m.payload };
        caller.send(&Message::Error(err)).ok();
    }
    Ok(())
}

/// Answers the calls a leaving callee was serving, and detaches the calls a leaving
/// caller was waiting on (their late results are discarded).
pub fn leave(realm: &Realm, me: &SessionHandle) {
    for (_, p) in me.take_invocations() {
        if let Some(caller) = realm.session(p.caller) {
            caller.finish_call(p.call);
            let e = error_reply(code::CALL, p.call, errors::CANCELED, "the callee left before answering");
            caller.send(&e).ok();
        }
    }
    for (_, c) in me.take_calls() {
        if let Some(callee) = realm.session(c.callee) {
            callee.forget_invocation(c.invocation);
        }
    }
}

