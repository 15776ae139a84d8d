//! Dealer operations: REGISTER, UNREGISTER, CALL, YIELD, ERROR, and a leaving
//! session's registrations and calls. Every CALL gets a RESULT or an ERROR: when a
//! callee leaves, each call it was serving is answered `wamp.error.canceled` at once.

use std::sync::Arc;

use super::handle::{PendingCall, PendingInvocation, SessionHandle};
use super::link::{self, LinkMsg, RemoteCall};
use super::realm::Realm;
use super::table::{Command, Outcome};
use super::{Router, now_ms};
use crate::dealer::{Callee, InvokePolicy, RegisterError};
use crate::dict;
use crate::ids::{RegistrationId, RequestId};
use crate::wamp::errors;
use crate::wamp::message::{
    Call, CallResult, Error, Invocation, Message, Payload, Register, Registered, Unregister, Unregistered,
    Yield, code,
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
    let details = match policy {
        MatchPolicy::Exact => Dict::new(),
        _ => dict! { "procedure" => m.procedure.as_str() },
    };
    if callee.node != router.node {
        call_remote(router, realm, me, m, callee, registration, details);
        return;
    }
    let Some(session) = realm.session(callee.session) else {
        reply(errors::NO_SUCH_PROCEDURE, "the callee has just left");
        return;
    };
    let Some(invocation) =
        session.start_invocation(PendingInvocation::Local { caller: me.id, call: m.request })
    else {
        reply(errors::CANCELED, "the callee has just left");
        return;
    };
    me.start_call(m.request, PendingCall::Local { callee: session.id, invocation });
    let inv = Invocation { request: invocation, registration, details, payload: m.payload };
    if session.send(&Message::Invocation(inv)).is_err() {
        session.forget_invocation(invocation);
        me.finish_call(m.request);
        reply(errors::CANCELED, "the callee could not take the invocation");
    }
}

/// Routes a call to a callee on another node; the call is kept here until the
/// answer comes back over the link or the node is lost.
fn call_remote(
    router: &Router,
    realm: &Realm,
    me: &Arc<SessionHandle>,
    m: Call,
    callee: Callee,
    registration: RegistrationId,
    details: Dict,
) {
    let Some(realm_arc) = router.realm(&realm.name) else { return };
    let call = router.next_call_id();
    router
        .remote_calls
        .insert(call, RemoteCall { realm: realm_arc, caller: me.id, request: m.request, node: callee.node });
    me.start_call(m.request, PendingCall::Remote { node: callee.node, call });
    let msg = LinkMsg::Invoke {
        realm: realm.name.clone(),
        call,
        callee: callee.session,
        registration,
        details,
        payload: m.payload,
    };
    if router.send_link(callee.node, msg).is_err() && router.remote_calls.remove(&call).is_some() {
        me.finish_call(m.request);
        let e = error_reply(code::CALL, m.request, errors::CANCELED, "no link to the callee's node");
        me.send(&e).ok();
    }
}

/// Handles YIELD from a callee.
pub fn yield_result(router: &Router, realm: &Realm, me: &SessionHandle, m: Yield) -> Result<(), Violation> {
    let Some(p) =
        me.finish_invocation(m.request).map_err(|_| Violation("YIELD for an unknown invocation"))?
    else {
        return Ok(());
    };
    match p {
        PendingInvocation::Local { caller, call } => {
            if let Some(caller) = realm.session(caller) {
                caller.finish_call(call);
                let result = CallResult { request: call, details: Dict::new(), payload: m.payload };
                caller.send(&Message::Result(result)).ok();
            }
        }
        PendingInvocation::Remote { node, call } => {
            link::answer_remote(router, node, LinkMsg::Yield { call, payload: m.payload });
        }
    }
    Ok(())
}

/// Handles ERROR (reply to INVOCATION) from a callee.
pub fn invocation_error(
    router: &Router,
    realm: &Realm,
    me: &SessionHandle,
    m: Error,
) -> Result<(), Violation> {
    let Some(p) =
        me.finish_invocation(m.request).map_err(|_| Violation("ERROR for an unknown invocation"))?
    else {
        return Ok(());
    };
    match p {
        PendingInvocation::Local { caller, call } => {
            if let Some(caller) = realm.session(caller) {
                caller.finish_call(call);
                let err = Error {
                    request_type: code::CALL,
                    request: call,
                    details: m.details,
                    error: m.error,
                    payload: m.payload,
                };
                caller.send(&Message::Error(err)).ok();
            }
        }
        PendingInvocation::Remote { node, call } => {
            let msg = LinkMsg::Error { call, error: m.error, details: m.details, payload: m.payload };
            link::answer_remote(router, node, msg);
        }
    }
    Ok(())
}

/// Answers the calls a leaving callee was serving, and detaches the calls a leaving
/// caller was waiting on (their late results are discarded).
pub fn leave(router: &Router, realm: &Realm, me: &SessionHandle) {
    const WHY: &str = "the callee left before answering";
    for (_, p) in me.take_invocations() {
        match p {
            PendingInvocation::Local { caller, call } => {
                if let Some(caller) = realm.session(caller) {
                    caller.finish_call(call);
                    caller.send(&error_reply(code::CALL, call, errors::CANCELED, WHY)).ok();
                }
            }
            PendingInvocation::Remote { node, call } => {
                let msg = LinkMsg::Error {
                    call,
                    error: errors::CANCELED.into(),
                    details: Dict::new(),
                    payload: Payload::args(vec![Value::from(WHY)]),
                };
                link::answer_remote(router, node, msg);
            }
        }
    }
    for (_, c) in me.take_calls() {
        match c {
            PendingCall::Local { callee, invocation } => {
                if let Some(callee) = realm.session(callee) {
                    callee.forget_invocation(invocation);
                }
            }
            PendingCall::Remote { call, .. } => {
                router.remote_calls.remove(&call);
            }
        }
    }
}
