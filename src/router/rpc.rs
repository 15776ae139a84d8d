//! Dealer operations at the router: REGISTER and UNREGISTER (through the routing
//! table), and CALL up to the point where the dealer's state machine
//! ([`crate::dealer::Dealer`], run by [`super::dealing`]) takes over: the meta, admin
//! and role APIs, the pending-call limit, URI checks and the call's trace span.

use std::sync::Arc;

use super::handle::SessionHandle;
use super::realm::Realm;
use super::{Router, now_ms};
use super::{admin, authorize, meta};
use crate::dealer::{Callee, InvokePolicy, RegisterError};
use crate::ids::{RegistrationId, RequestId, SessionId};
use crate::observe::spans;
use crate::table::{Command, Outcome};
use crate::wamp::errors;
use crate::wamp::message::{
    Call, Error, Message, Payload, Register, Registered, Unregister, Unregistered, code,
};
use crate::wamp::uri::{self, MatchPolicy};
use crate::wamp::value::{Dict, Value, dict_bool, dict_str};

/// First delay before an UNREGISTER that did not commit is proposed again; doubled
/// up to [`UNREGISTER_RETRY_MAX`].
const UNREGISTER_RETRY: std::time::Duration = std::time::Duration::from_millis(100);
/// Longest delay between two proposals of one UNREGISTER.
const UNREGISTER_RETRY_MAX: std::time::Duration = std::time::Duration::from_secs(1);

/// The URI for a REGISTER whose invoke policy differs from the existing one, as
/// Autobahn's `ApplicationError.PROCEDURE_EXISTS_INVOCATION_POLICY_CONFLICT` names it.
pub const POLICY_CONFLICT: &str = "wamp.error.procedure_exists_with_different_invocation_policy";

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
    let registering = me.registering();
    let done = match router.replica.propose(cmd).await {
        Ok(Outcome::Registered(Ok(id))) => Some(id),
        Ok(Outcome::Registered(Err(RegisterError::PolicyConflict(p)))) => {
            reply(POLICY_CONFLICT, &format!("procedure is registered with invoke policy '{p}'"));
            None
        }
        Ok(Outcome::Registered(Err(_))) => {
            let unowned = unowned_entry(router, realm, me, &m.procedure, policy);
            if unowned.is_none() {
                reply(errors::PROCEDURE_ALREADY_EXISTS, "procedure already registered");
            }
            unowned
        }
        other => {
            reply(errors::CLUSTER_UNAVAILABLE, &format!("registration not committed: {other:?}"));
            None
        }
    };
    if let Some(id) = done {
        // REGISTERED goes out before the INVOCATIONs the dealer held back for it.
        me.send(&Message::Registered(Registered { request: m.request, registration: id })).ok();
        me.set_registered(id, true);
    }
    drop(registering);
    router.deal(|d, reg, now| d.handle_register_done(me.id, done, reg, now));
    if let Some(id) = done {
        registration_events(router, realm, me.id, id, true);
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
    // UNREGISTERED only once the removal committed: retried until it does (or the
    // session leaves, whose cleanup and the reconciliation remove the entry)
    let cmd = Command::Unregister { realm: realm.name.clone(), session: me.id, registration: m.registration };
    let mut backoff = UNREGISTER_RETRY;
    while let Err(e) = router.replica.propose(cmd.clone()).await {
        if me.has_left() {
            return;
        }
        tracing::warn!(error = %e, registration = %m.registration, "unregister not committed yet; retrying");
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(UNREGISTER_RETRY_MAX);
    }
    me.send(&Message::Unregistered(Unregistered { request: m.request, details: None })).ok();
    registration_events(router, realm, me.id, m.registration, false);
}

/// Publishes the registration meta events after `session` registered (`on`) or left
/// registration `id`: `on_create`/`on_register`, or `on_unregister`/`on_delete`.
pub fn registration_events(router: &Router, realm: &Realm, session: SessionId, id: RegistrationId, on: bool) {
    let reg = router.replica.read(|t| t.realm(&realm.name).and_then(|r| r.registrations.get(id).cloned()));
    if on {
        if reg.as_ref().is_some_and(|r| r.callees.len() == 1) {
            let details = || reg.as_ref().map(meta::registration_details);
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

/// Handles CALL: the meta, admin and role APIs are answered here; every other call
/// (or the next chunk of a progressive call invocation) goes to the dealer, which
/// also applies the pending-call limit — one dealer step per CALL.
pub fn call(
    router: &Arc<Router>,
    realm: &Arc<Realm>,
    me: &Arc<SessionHandle>,
    m: Call,
) -> Result<(), Violation> {
    let valid = uri::is_valid(&m.procedure, realm.uri_check);
    let answered_here = !valid
        || meta::is_meta(&m.procedure)
        || admin::is_admin_api(&m.procedure)
        || authorize::is_role_api(&m.procedure);
    // a chunk of a call in flight goes to the dealer whatever its URI says
    let continued = (answered_here || spans::enabled()) && router.dealing.lock().has_call(me.id, m.request);
    if answered_here && !continued {
        answer_here(router, realm, me, m, valid);
        return Ok(());
    }
    let id = router.dealing.next_call_id();
    let mut trace = None;
    if !continued {
        // The callee may join the trace: the call span's context, or the client's as given.
        if spans::enabled() {
            let span = spans::call_span(
                &realm.name,
                &m.procedure,
                me.id.0,
                me.serializer.name(),
                router.node.0,
                spans::Parent::of(&m.options),
            );
            spans::pending().insert(spans::call_key(id.0), span);
            trace = spans::pending().trace(spans::call_key(id.0));
        }
        trace = trace.or_else(|| spans::trace_given(&m.options));
    }
    let max_pending = router.config.limits.max_pending_calls;
    let dealt = router.deal_checked(|d, reg, now| d.handle_call(me.id, id, m, trace, max_pending, reg, now));
    if dealt.is_err() {
        // the session is aborted for it: no call to wait for
        spans::pending().end(spans::call_key(id.0), Some(crate::wamp::errors::PROTOCOL_VIOLATION));
    }
    dealt
}

/// A CALL the router answers itself: an invalid URI, or the meta, admin or role API.
fn answer_here(router: &Arc<Router>, realm: &Arc<Realm>, me: &Arc<SessionHandle>, m: Call, valid: bool) {
    if !valid {
        me.send(&error_reply(code::CALL, m.request, errors::INVALID_URI, "invalid procedure URI")).ok();
    } else if meta::is_meta(&m.procedure) {
        meta::call(router, realm, me, m);
    } else if admin::is_admin_api(&m.procedure) {
        let (router, realm, me) = (router.clone(), realm.clone(), me.clone());
        tokio::spawn(async move {
            let answer = admin::call(&router, &realm, &me, &m.procedure, &m.payload).await;
            meta::reply(&me, m, answer);
        });
    } else {
        let (router, realm, me) = (router.clone(), realm.clone(), me.clone());
        tokio::spawn(async move {
            let answer = authorize::role_api(&router, &realm, &me, &m.procedure, &m.payload).await;
            meta::reply(&me, m, answer);
        });
    }
}
