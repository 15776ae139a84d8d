//! Dealer operations that start things: REGISTER, UNREGISTER and CALL (routing a
//! call to a callee on this or another node, with caller disclosure, progressive
//! call invocations and a dealer-side timeout). What happens to a call after that —
//! results, errors, cancels, timeouts, sessions leaving — is in [`super::calls`].

use std::sync::Arc;

use super::handle::{PendingCall, PendingInvocation, SessionHandle, Target};
use super::link::{LinkMsg, RemoteCall};
use super::realm::Realm;
use super::table::{Command, Outcome};
use super::{Router, now_ms};
use super::{calls, meta};
use crate::dealer::{Callee, InvokePolicy, RegisterError};
use crate::ids::{RegistrationId, RequestId, SessionId};
use crate::wamp::message::{
    Call, Error, Invocation, Message, Payload, Register, Registered, Unregister, Unregistered, code,
};
use crate::wamp::uri::{self, MatchPolicy};
use crate::wamp::value::{Dict, Value, dict_bool, dict_str};
use crate::wamp::{errors, ppt};

/// The feature a caller and callee announce for progressive call invocations.
pub const PROGRESSIVE_INVOCATIONS: &str = "progressive_call_invocations";

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
        callee: Callee {
            node: router.node,
            session: me.id,
            disclose_caller: dict_bool(&m.options, "disclose_caller"),
        },
        procedure: m.procedure.clone(),
        policy,
        invoke,
        now_ms: now_ms(),
    };
    match router.replica.propose(cmd).await {
        Ok(Outcome::Registered(Ok(id))) => {
            me.set_registered(id, true);
            me.send(&Message::Registered(Registered { request: m.request, registration: id })).ok();
            registration_events(router, realm, me.id, id, true);
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
    registration_events(router, realm, me.id, m.registration, false);
}

/// Publishes the registration meta events after `session` registered (`on`) or left
/// registration `id`: `on_create`/`on_register`, or `on_unregister`/`on_delete`.
pub fn registration_events(router: &Router, realm: &Realm, session: SessionId, id: RegistrationId, on: bool) {
    let reg = router.replica.read(|t| t.realm(&realm.name).and_then(|r| r.registrations.get(id).cloned()));
    if on {
        if let Some(r) = reg.as_ref().filter(|r| r.callees.len() == 1) {
            let details = meta::registration_details(r);
            meta::on_create(router, realm, "wamp.registration.on_create", session, details);
        }
        meta::on_route(router, realm, "wamp.registration.on_register", session, id.0);
    } else {
        meta::on_route(router, realm, "wamp.registration.on_unregister", session, id.0);
        if reg.is_none() {
            meta::on_route(router, realm, "wamp.registration.on_delete", session, id.0);
        }
    }
}

/// Handles CALL: picks a callee by the registration's invoke policy and invokes it,
/// or continues a progressive call invocation.
pub fn call(
    router: &Arc<Router>,
    realm: &Arc<Realm>,
    me: &Arc<SessionHandle>,
    m: Call,
) -> Result<(), Violation> {
    if let Some(pending) = me.call(m.request) {
        if !pending.input_open {
            return Err(Violation("CALL reuses the request id of a call in flight"));
        }
        calls::continue_call(router, realm, me, pending, m);
        return Ok(());
    }
    let reply = |uri: &str, msg: &str| me.send(&error_reply(code::CALL, m.request, uri, msg)).ok();
    if !uri::is_valid(&m.procedure, realm.uri_check) {
        reply(errors::INVALID_URI, "invalid procedure URI");
        return Ok(());
    }
    if meta::is_meta(&m.procedure) {
        meta::call(router, realm, me, m);
        return Ok(());
    }
    let target = router.replica.read(|t| {
        let reg = t.realm(&realm.name)?.registrations.lookup(&m.procedure)?;
        let turn = if reg.invoke == InvokePolicy::RoundRobin { realm.next_turn(reg.id) } else { 0 };
        let random = if reg.invoke == InvokePolicy::Random { crate::ids::random_id() as usize } else { 0 };
        let callee = if reg.callees.iter().all(|c| router.reachable(c.node)) {
            *reg.callees.get(reg.invoke.pick(reg.callees.len(), turn, random))?
        } else {
            let up: Vec<&Callee> = reg.callees.iter().filter(|c| router.reachable(c.node)).collect();
            let candidates = if up.is_empty() { reg.callees.iter().collect() } else { up };
            **candidates.get(reg.invoke.pick(candidates.len(), turn, random))?
        };
        Some((reg.id, reg.policy, callee))
    });
    let Some((registration, policy, callee)) = target else {
        reply(errors::NO_SUCH_PROCEDURE, "no callee registered for procedure");
        return Ok(());
    };
    let passthru = ppt::in_use(&m.options);
    if passthru && !me.has_feature("caller", ppt::FEATURE) {
        return Err(Violation("payload passthru used without announcing it"));
    }
    let receive_progress = dict_bool(&m.options, "receive_progress");
    let progress = dict_bool(&m.options, "progress");
    if progress && !me.has_feature("caller", PROGRESSIVE_INVOCATIONS) {
        return Err(Violation("progressive CALL without announcing progressive_call_invocations"));
    }
    let mut details = Dict::new();
    if policy != MatchPolicy::Exact {
        details.insert("procedure".into(), m.procedure.as_str().into());
    }
    if receive_progress {
        details.insert("receive_progress".into(), true.into());
    }
    if progress {
        details.insert("progress".into(), true.into());
    }
    ppt::forward(&m.options, &mut details);
    let disclose = callee.disclose_caller || dict_bool(&m.options, "disclose_me");
    if disclose {
        calls::disclose_caller(me, &mut details);
    }
    let token = router.next_call_id();
    let pending = |target| PendingCall {
        target,
        registration,
        receive_progress,
        input_open: progress,
        token,
        disclose,
        touched: tokio::time::Instant::now(),
        started: std::time::Instant::now(),
    };
    if callee.node == router.node {
        let Some(session) = realm.session(callee.session) else {
            reply(errors::NO_SUCH_PROCEDURE, "the callee has just left");
            return Ok(());
        };
        if passthru && !session.has_feature("callee", ppt::FEATURE) {
            reply(errors::FEATURE_NOT_SUPPORTED, "the callee does not support payload passthru mode");
            return Ok(());
        }
        if progress && !session.has_feature("callee", PROGRESSIVE_INVOCATIONS) {
            reply(errors::FEATURE_NOT_SUPPORTED, "the callee does not support progressive call invocations");
            return Ok(());
        }
        let origin = PendingInvocation::Local { caller: me.id, call: m.request };
        let Some(invocation) = session.start_invocation(origin) else {
            reply(errors::CANCELED, "the callee has just left");
            return Ok(());
        };
        // The call is recorded before the INVOCATION leaves, so a fast YIELD finds it.
        me.start_call(m.request, pending(Target::Local { callee: session.id, invocation }));
        let inv = Invocation { request: invocation, registration, details, payload: m.payload };
        if session.send(&Message::Invocation(inv)).is_err() {
            session.forget_invocation(invocation);
            me.finish_call(m.request);
            reply(errors::CANCELED, "the callee could not take the invocation");
            return Ok(());
        }
    } else {
        let remote =
            RemoteCall { realm: realm.clone(), caller: me.id, request: m.request, node: callee.node };
        router.remote_calls.insert(token, remote);
        me.start_call(m.request, pending(Target::Remote { node: callee.node, call: token }));
        let msg = LinkMsg::Invoke {
            realm: realm.name.clone(),
            call: token,
            callee: callee.session,
            registration,
            details,
            payload: m.payload,
        };
        if router.send_link(callee.node, msg).is_err() {
            router.remote_calls.remove(&token);
            me.finish_call(m.request);
            reply(errors::CANCELED, "no link to the callee's node");
            return Ok(());
        }
    }
    if let Some(ms) = m.options.get("timeout").and_then(Value::as_u64).filter(|&ms| ms > 0) {
        calls::arm_timeout(router.clone(), realm.clone(), me.clone(), m.request, token, ms);
    }
    Ok(())
}
