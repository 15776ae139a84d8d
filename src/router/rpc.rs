//! Dealer operations that start things: REGISTER, UNREGISTER and CALL (routing a
//! call to a callee on this or another node, with caller disclosure, progressive
//! call invocations and a dealer-side timeout). What happens to a call after that —
//! results, errors, cancels, timeouts, sessions leaving — is in [`super::calls`].

use std::sync::Arc;

use super::handle::{PendingCall, PendingInvocation, Reroute, SessionHandle, Target};
use super::link::RemoteCall;
use super::realm::Realm;
use super::{Router, now_ms};
use super::{admin, authorize, calls, meta};
use crate::dealer::{Callee, InvokePolicy, RegisterError};
use crate::ids::{NodeId, RegistrationId, RequestId, SessionId};
use crate::link::LinkMsg;
use crate::observe::spans;
use crate::table::{Command, Outcome};
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
    let max = router.config.limits.max_registrations_per_session;
    if me.registration_count() >= max {
        let why = format!("at most {max} registrations per session (limits.max_registrations_per_session)");
        reply(super::limits::TOO_MANY_REGISTRATIONS, &why);
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
    let _registering = me.registering();
    let registered = |id| {
        // REGISTERED goes out before the flag is set: an INVOCATION that waits for
        // the flag then follows it.
        me.send(&Message::Registered(Registered { request: m.request, registration: id })).ok();
        me.set_registered(id, true);
        registration_events(router, realm, me.id, id, true);
    };
    match router.replica.propose(cmd).await {
        Ok(Outcome::Registered(Ok(id))) => registered(id),
        Ok(Outcome::Registered(Err(RegisterError::PolicyConflict(p)))) => {
            reply(POLICY_CONFLICT, &format!("procedure is registered with invoke policy '{p}'"));
        }
        Ok(Outcome::Registered(Err(_))) => match unowned_entry(router, realm, me, &m.procedure, policy) {
            Some(id) => registered(id),
            None => {
                reply(errors::PROCEDURE_ALREADY_EXISTS, "procedure already registered");
            }
        },
        other => {
            reply(errors::CLUSTER_UNAVAILABLE, &format!("registration not committed: {other:?}"));
        }
    }
}

/// The registration of `procedure` in which the table lists this session as a callee
/// although the session does not hold it: a REGISTER of this session that was
/// committed without the session hearing of it (a forwarded proposal retried after
/// the leader stopped before answering, or one answered as not committed in time).
/// The session now takes it as its own, so it leaves with the session; messages of a
/// session are handled one at a time, so no REGISTER of it is in flight meanwhile.
fn unowned_entry(
    router: &Router,
    realm: &Realm,
    me: &SessionHandle,
    procedure: &str,
    policy: MatchPolicy,
) -> Option<RegistrationId> {
    let id = router.replica.read(|t| {
        let reg = t.realm(&realm.name)?.registrations.find(procedure, policy)?;
        reg.callees.iter().any(|c| c.node == router.node && c.session == me.id).then_some(reg.id)
    })?;
    (!me.holds_registration(id)).then_some(id)
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
    let max_pending = router.config.limits.max_pending_calls;
    if max_pending > 0 && me.pending_calls() >= max_pending {
        let why = format!("at most {max_pending} calls in flight per session");
        me.send(&error_reply(code::CALL, m.request, super::limits::TOO_MANY_PENDING_CALLS, &why)).ok();
        return Ok(());
    }
    if !uri::is_valid(&m.procedure, realm.uri_check) {
        me.send(&error_reply(code::CALL, m.request, errors::INVALID_URI, "invalid procedure URI")).ok();
        return Ok(());
    }
    if meta::is_meta(&m.procedure) {
        meta::call(router, realm, me, m);
        return Ok(());
    }
    if admin::is_admin_api(&m.procedure) {
        let (router, realm, me) = (router.clone(), realm.clone(), me.clone());
        tokio::spawn(async move {
            let answer = admin::call(&router, &realm, &me, &m.procedure, &m.payload).await;
            meta::reply(&me, m, answer);
        });
        return Ok(());
    }
    if authorize::is_role_api(&m.procedure) {
        let (router, realm, me) = (router.clone(), realm.clone(), me.clone());
        tokio::spawn(async move {
            let answer = authorize::role_api(&router, &realm, &me, &m.procedure, &m.payload).await;
            meta::reply(&me, m, answer);
        });
        return Ok(());
    }
    if ppt::in_use(&m.options) && !me.has_feature("caller", ppt::FEATURE) {
        return Err(Violation("payload passthru used without announcing it"));
    }
    if dict_bool(&m.options, "progress") && !me.has_feature("caller", PROGRESSIVE_INVOCATIONS) {
        return Err(Violation("progressive CALL without announcing progressive_call_invocations"));
    }
    let token = router.next_call_id();
    let timeout = m.options.get("timeout").and_then(Value::as_u64).filter(|&ms| ms > 0);
    let Call { request, options, procedure, payload } = m;
    if spans::enabled() {
        let parent = options.get(spans::TRACEPARENT_KEY).and_then(Value::as_str);
        let span =
            spans::call_span(&realm.name, &procedure, me.id.0, me.serializer.name(), router.node.0, parent);
        spans::pending().insert(spans::call_key(token), span);
    }
    let call = Routed { request, procedure: &procedure, options: &options, token, tried: Vec::new() };
    if let Err((uri, why)) = dispatch(router, realm, me, call, payload) {
        spans::pending().end(spans::call_key(token), Some(uri));
        me.send(&error_reply(code::CALL, request, uri, why)).ok();
        return Ok(());
    }
    if let Some(ms) = timeout {
        calls::arm_timeout(router.clone(), realm.clone(), me.clone(), request, token, ms);
    }
    Ok(())
}

/// A call being routed to a callee: first time, or again after `wamp.error.unavailable`.
pub struct Routed<'a> {
    /// The caller's CALL request id.
    pub request: RequestId,
    /// The called procedure.
    pub procedure: &'a str,
    /// CALL.Options.
    pub options: &'a Dict,
    /// The call's unique token (also its id on the link).
    pub token: u64,
    /// Callees that answered `wamp.error.unavailable` already.
    pub tried: Vec<(NodeId, SessionId)>,
}

/// Picks the callee for a call among the registration's reachable callees not yet
/// tried, by the invoke policy (the rerouting rules: an unavailable callee "virtually
/// does not exist"). Returns the registration, its match policy, the callee and the
/// number of callees the registration has.
fn pick_callee(
    router: &Router,
    realm: &Realm,
    procedure: &str,
    tried: &[(NodeId, SessionId)],
) -> Result<(RegistrationId, MatchPolicy, Callee, usize), (&'static str, &'static str)> {
    router.replica.read(|t| {
        let Some(reg) = t.realm(&realm.name).and_then(|r| r.registrations.lookup(procedure)) else {
            return Err((errors::NO_SUCH_PROCEDURE, "no callee registered for procedure"));
        };
        let untried = |c: &&Callee| !tried.contains(&(c.node, c.session));
        let up: Vec<&Callee> =
            reg.callees.iter().filter(untried).filter(|c| router.reachable(c.node)).collect();
        let candidates = if up.is_empty() && tried.is_empty() { reg.callees.iter().collect() } else { up };
        if candidates.is_empty() {
            return Err((errors::NO_AVAILABLE_CALLEE, "every callee of the procedure is unavailable"));
        }
        let turn = if reg.invoke == InvokePolicy::RoundRobin { realm.next_turn(reg.id) } else { 0 };
        let random = if reg.invoke == InvokePolicy::Random { crate::ids::random_id() as usize } else { 0 };
        let callee = *candidates[reg.invoke.pick(candidates.len(), turn, random)];
        Ok((reg.id, reg.policy, callee, reg.callees.len()))
    })
}

/// Routes a call to a callee on this or another node and records it as pending.
/// On `Err`, nothing was sent and the caller is to be answered with the error.
pub fn dispatch(
    router: &Router,
    realm: &Realm,
    me: &SessionHandle,
    call: Routed<'_>,
    payload: Payload,
) -> Result<(), (&'static str, &'static str)> {
    let Routed { request, procedure, options, token, mut tried } = call;
    let (registration, policy, callee, callees) = pick_callee(router, realm, procedure, &tried)?;
    let passthru = ppt::in_use(options);
    let receive_progress = dict_bool(options, "receive_progress");
    let progress = dict_bool(options, "progress");
    let mut details = Dict::new();
    if policy != MatchPolicy::Exact {
        details.insert("procedure".into(), procedure.into());
    }
    if receive_progress {
        details.insert("receive_progress".into(), true.into());
    }
    if progress {
        details.insert("progress".into(), true.into());
    }
    ppt::forward(options, &mut details);
    // The callee may join the trace: the call span's context, or the client's as given.
    let traceparent = spans::pending()
        .traceparent(spans::call_key(token))
        .map(Value::from)
        .or_else(|| options.get(spans::TRACEPARENT_KEY).filter(|v| v.as_str().is_some()).cloned());
    if let Some(tp) = traceparent {
        details.insert(spans::TRACEPARENT_KEY.into(), tp);
    }
    let disclose = callee.disclose_caller || dict_bool(options, "disclose_me");
    if disclose {
        calls::disclose_caller(me, &mut details);
    }
    // A progressive call invocation can't be re-routed (its first chunks went to the
    // unavailable callee); neither can a call with nobody else to go to.
    let reroute = (!progress && callees > 1).then(|| {
        tried.push((callee.node, callee.session));
        Arc::new(Reroute {
            procedure: procedure.to_owned(),
            options: options.clone(),
            payload: payload.clone(),
            tried,
        })
    });
    let pending = |target| PendingCall {
        target,
        registration,
        receive_progress,
        input_open: progress,
        token,
        disclose,
        touched: tokio::time::Instant::now(),
        started: std::time::Instant::now(),
        reroute,
    };
    if callee.node == router.node {
        let Some(session) = realm.session(callee.session) else {
            return Err((errors::NO_SUCH_PROCEDURE, "the callee has just left"));
        };
        if passthru && !session.has_feature("callee", ppt::FEATURE) {
            return Err((errors::FEATURE_NOT_SUPPORTED, "the callee does not support payload passthru mode"));
        }
        if progress && !session.has_feature("callee", PROGRESSIVE_INVOCATIONS) {
            let why = "the callee does not support progressive call invocations";
            return Err((errors::FEATURE_NOT_SUPPORTED, why));
        }
        let origin = PendingInvocation::Local { caller: me.id, call: request };
        let Some(invocation) = session.start_invocation(origin) else {
            return Err((errors::CANCELED, "the callee has just left"));
        };
        // The call is recorded before the INVOCATION leaves, so a fast YIELD finds it.
        me.start_call(request, pending(Target::Local { callee: session.id, invocation }));
        let inv = Invocation { request: invocation, registration, details, payload };
        if session.awaits_registration(registration) {
            calls::invoke_after_registered(router, session, inv, origin);
        } else if session.send(&Message::Invocation(inv)).is_err() {
            session.forget_invocation(invocation);
            me.finish_call(request);
            return Err((errors::CANCELED, "the callee could not take the invocation"));
        }
    } else {
        let Some(caller_realm) = router.realm(&realm.name) else {
            return Err((errors::NO_SUCH_REALM, "the realm is gone"));
        };
        let remote = RemoteCall { realm: caller_realm, caller: me.id, request, node: callee.node };
        router.remote_calls.insert(token, remote);
        me.start_call(request, pending(Target::Remote { node: callee.node, call: token }));
        let msg = LinkMsg::Invoke {
            realm: realm.name.clone(),
            call: token,
            callee: callee.session,
            registration,
            details,
            payload,
        };
        if router.send_link(callee.node, msg).is_err() {
            router.remote_calls.remove(&token);
            me.finish_call(request);
            return Err((errors::CANCELED, "no link to the callee's node"));
        }
    }
    Ok(())
}
