//! Calls the router itself makes to procedures registered by clients: the dynamic
//! authenticator and the dynamic authorizer. The router is the caller, known to
//! the dealer as session [`ROUTER`] (id 0, which no client session ever has), so the
//! invocation takes the same path as any call — to a callee on this node or, over the
//! link, on another — and its answer comes back here instead of to a session.
//!
//! Every internal call has a deadline; past it the call fails with
//! `wamp.error.timeout` and a late answer is discarded.

use std::time::Duration;

use tokio::sync::oneshot;

use super::Router;
use super::handle::PendingInvocation;
use super::link::RemoteCall;
use super::realm::Realm;
use crate::ids::{RequestId, SessionId};
use crate::link::LinkMsg;
use crate::wamp::errors;
use crate::wamp::message::{Invocation, Message, Payload};
use crate::wamp::uri::MatchPolicy;
use crate::wamp::value::{Dict, List, Value};

/// The session id the router calls as.
pub const ROUTER: SessionId = SessionId(0);

/// The outcome of an internal call: the result payload, or the error URI and its
/// positional arguments.
pub type Reply = Result<Payload, (String, List)>;

fn failed(uri: &str, why: &str) -> Reply {
    Err((uri.to_owned(), vec![Value::from(why)]))
}

/// Calls `procedure` in `realm` with `args` and waits at most `timeout` for the answer.
pub async fn call(router: &Router, realm: &Realm, procedure: &str, args: List, timeout: Duration) -> Reply {
    let picked = router.replica.read(|t| {
        // exact only: a pattern registration never receives the router's calls
        let reg = t.realm(&realm.name)?.registrations.find(procedure, MatchPolicy::Exact)?;
        let up: Vec<_> = reg.callees.iter().filter(|c| router.reachable(c.node)).collect();
        let turn = realm.next_turn(reg.id);
        let random = crate::ids::random_id() as usize;
        let callee = **up.get(reg.invoke.pick(up.len().max(1), turn, random))?;
        Some((reg.id, reg.policy, callee))
    });
    let Some((registration, policy, callee)) = picked else {
        return failed(errors::NO_SUCH_PROCEDURE, "no callee registered for procedure");
    };
    let id = router.next_call_id();
    let (tx, rx) = oneshot::channel();
    router.internal_calls.insert(id, tx);
    let mut details = Dict::new();
    if policy != MatchPolicy::Exact {
        details.insert("procedure".into(), procedure.into());
    }
    let payload = Payload::args(args);
    // the local callee's invocation, to forget on timeout
    let mut local = None;
    let sent = if callee.node == router.node {
        realm.session(callee.session).is_some_and(|s| {
            let origin = PendingInvocation::Local { caller: ROUTER, call: RequestId(id) };
            let Some(invocation) = s.start_invocation(origin) else { return false };
            let inv = Invocation { request: invocation, registration, details, payload };
            if s.send(&Message::Invocation(inv)).is_err() {
                s.forget_invocation(invocation);
                return false;
            }
            local = Some((s, invocation));
            true
        })
    } else {
        router.realm(&realm.name).is_some_and(|arc| {
            let remote = RemoteCall { realm: arc, caller: ROUTER, request: RequestId(id), node: callee.node };
            router.remote_calls.insert(id, remote);
            let msg = LinkMsg::Invoke {
                realm: realm.name.clone(),
                call: id,
                callee: callee.session,
                registration,
                details,
                payload,
            };
            router.send_link(callee.node, msg).is_ok()
        })
    };
    if !sent {
        router.internal_calls.remove(&id);
        router.remote_calls.remove(&id);
        return failed(errors::CANCELED, "the callee could not be reached");
    }
    match tokio::time::timeout(timeout, rx).await {
        Ok(Ok(reply)) => reply,
        _ => {
            router.internal_calls.remove(&id);
            router.remote_calls.remove(&id);
            if let Some((s, invocation)) = local {
                s.forget_invocation(invocation);
            }
            failed(errors::TIMEOUT, "the procedure did not answer in time")
        }
    }
}

/// Hands the answer of internal call `id` to the task waiting for it. Progressive
/// results are ignored: the router never asks for them.
pub fn answer(router: &Router, id: RequestId, reply: Reply) {
    if let Some((_, tx)) = router.internal_calls.remove(&id.0) {
        tx.send(reply).ok();
    }
}
