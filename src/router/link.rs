//! The data path between nodes, as the router sees it: what it does with what another
//! node sends ([`LinkMsg`], through the router's [`LinkHandler`]). The cluster layer
//! carries messages over gRPC streams ([`crate::link::Links`]); a one-node cluster
//! never has a remote node in its routing table, so nothing is ever sent — the same
//! code path.
//!
//! The caller's node keeps a call ([`RemoteCall`], keyed by a node-local call id);
//! the callee's node keeps the invocation. When a node is lost, every call routed to it
//! is answered `wamp.error.canceled` at once.

use std::sync::Arc;

use super::Router;
use super::handle::PendingInvocation;
use super::internal::{self, ROUTER};
use super::realm::Realm;
use super::{calls, pubsub};
use crate::broker::Audience;
use crate::dict;
use crate::ids::{NodeId, RegistrationId, RequestId, SessionId, SubscriptionId};
use crate::link::{LinkHandler, LinkMsg};
use crate::wamp::errors;
use crate::wamp::message::{Invocation, Message, Payload};
use crate::wamp::uri::MatchPolicy;
use crate::wamp::value::Dict;

/// A call made on this node and served on another.
pub struct RemoteCall {
    /// The caller's realm.
    pub realm: Arc<Realm>,
    /// The calling session.
    pub caller: SessionId,
    /// The caller's CALL request id.
    pub request: RequestId,
    /// The node serving the call.
    pub node: NodeId,
}

impl LinkHandler for Router {
    fn on_link(&self, from: NodeId, msg: LinkMsg) {
        on_link(self, from, msg);
    }

    fn node_lost(&self, node: NodeId) {
        on_node_lost(self, node);
    }
}

/// Handles a message another node sent.
fn on_link(router: &Router, from: NodeId, msg: LinkMsg) {
    match msg {
        LinkMsg::Event { realm, topic, subscriptions, publication, details, audience, payload } => {
            let Some(realm) = router.realm(&realm) else { return };
            let audience = Audience::from_options(&audience).unwrap_or_default();
            let matches: Vec<(SubscriptionId, MatchPolicy)> = router.replica.read(|t| {
                let Some(r) = t.realm(&realm.name) else { return Vec::new() };
                subscriptions
                    .iter()
                    .filter_map(|id| r.subscriptions.get(*id).map(|s| (s.id, s.policy)))
                    .collect()
            });
            let span = match details.get(crate::observe::spans::TRACEPARENT_KEY) {
                Some(tp) if crate::observe::spans::enabled() => {
                    crate::observe::spans::event_span(&realm.name, &topic, router.node.0, tp.as_str())
                }
                _ => tracing::Span::none(),
            };
            let _entered = span.enter();
            pubsub::deliver(&realm, &matches, &topic, publication, details, payload, &audience, None);
        }
        LinkMsg::Invoke { realm, call, callee, registration, details, payload } => {
            invoke_here(router, from, realm, call, callee, registration, details, payload);
        }
        LinkMsg::Yield { call, details, payload, progress } => {
            let caller = if progress {
                router.remote_calls.get(&call).map(|c| (c.realm.clone(), c.caller, c.request))
            } else {
                router.remote_calls.remove(&call).map(|(_, c)| (c.realm, c.caller, c.request))
            };
            if let Some((_, ROUTER, request)) = caller {
                if !progress {
                    internal::answer(router, request, Ok(payload));
                }
            } else if let Some((realm, caller, request)) = caller
                && let Some(caller) = realm.session(caller)
            {
                calls::deliver_result(&caller, request, progress, details, payload);
            }
        }
        LinkMsg::Error { call, error, details, payload } => match router.remote_calls.remove(&call) {
            Some((_, c)) if c.caller == ROUTER => {
                internal::answer(router, c.request, Err((error, payload.args.unwrap_or_default())));
            }
            Some((_, c)) => {
                if let Some(caller) = c.realm.session(c.caller) {
                    calls::callee_error(router, &c.realm, &caller, c.request, error, details, payload);
                }
            }
            None => {}
        },
        LinkMsg::Query { id, realm, op, payload } => {
            super::query::on_query(router, from, id, realm, op, payload)
        }
        LinkMsg::Answer { id, error, payload } => super::query::on_answer(router, id, error, payload),
        LinkMsg::Interrupt { call, mode, reason } => {
            let Some(entry) = router.remote_invocations.get(&(from, call)).map(|e| e.clone()) else { return };
            let (realm, callee, invocation) = entry;
            let Some(realm) = router.realm(&realm) else { return };
            let mode = calls::CancelMode::parse(Some(&mode)).unwrap_or(calls::CancelMode::KillNoWait);
            let told = calls::interrupt_local(&realm, callee, invocation, mode, &reason);
            if mode == calls::CancelMode::KillNoWait || !told {
                router.remote_invocations.remove(&(from, call));
                crate::observe::spans::pending().end((from.0, call), Some(&reason));
                if let Some(s) = realm.session(callee) {
                    s.forget_invocation(invocation);
                }
            }
            if mode == calls::CancelMode::Kill && !told {
                let e = LinkMsg::Error {
                    call,
                    error: errors::CANCELED.into(),
                    details: Dict::new(),
                    payload: Payload::default(),
                };
                router.send_link(from, e).ok();
            }
        }
    }
}

/// Starts (or continues, for progressive call invocations) an invocation of a local
/// callee for a call kept on node `from`.
#[allow(clippy::too_many_arguments)]
fn invoke_here(
    router: &Router,
    from: NodeId,
    realm: String,
    call: u64,
    callee: SessionId,
    registration: RegistrationId,
    details: Dict,
    payload: Payload,
) {
    if let Some(existing) = router.remote_invocations.get(&(from, call)).map(|e| e.clone()) {
        let (realm, callee, invocation) = existing;
        if let Some(s) = router.realm(&realm).and_then(|r| r.session(callee)) {
            s.send(&Message::Invocation(Invocation { request: invocation, registration, details, payload }))
                .ok();
        }
        return;
    }
    let session = router.realm(&realm).and_then(|r| r.session(callee));
    let progressive = details.get("progress").and_then(crate::wamp::value::Value::as_bool).unwrap_or(false);
    let unsupported = |feature: &str| session.as_ref().is_some_and(|s| !s.has_feature("callee", feature));
    let missing = if progressive && unsupported(super::rpc::PROGRESSIVE_INVOCATIONS) {
        Some("the callee does not support progressive call invocations")
    } else if crate::wamp::ppt::in_use(&details) && unsupported(crate::wamp::ppt::FEATURE) {
        Some("the callee does not support payload passthru mode")
    } else {
        None
    };
    if let Some(why) = missing {
        let e = LinkMsg::Error {
            call,
            error: errors::FEATURE_NOT_SUPPORTED.into(),
            details: Dict::new(),
            payload: Payload::args(vec![why.into()]),
        };
        router.send_link(from, e).ok();
        return;
    }
    let mut details = details;
    if crate::observe::spans::enabled() {
        invocation_span(router, from, &realm, call, callee, registration, &mut details);
    }
    let started = session.as_ref().and_then(|s| {
        let origin = PendingInvocation::Remote { node: from, call };
        let id = s.start_invocation(origin)?;
        router.remote_invocations.insert((from, call), (realm.clone(), s.id, id));
        let inv = Invocation { request: id, registration, details, payload };
        if s.awaits_registration(registration) {
            calls::invoke_after_registered(router, s.clone(), inv, origin);
            return Some(());
        }
        s.send(&Message::Invocation(inv)).ok()
    });
    if started.is_none() {
        crate::observe::spans::pending().end((from.0, call), Some(errors::CANCELED));
        router.remote_invocations.remove(&(from, call));
        let e = LinkMsg::Error {
            call,
            error: errors::CANCELED.into(),
            details: Dict::new(),
            payload: Payload::args(vec!["the callee has left".into()]),
        };
        router.send_link(from, e).ok();
    }
}

/// Opens the span of an invocation served here for a call kept on node `from`, as a
/// child of the call's span (its `traceparent` came in the INVOCATION details), and
/// hands the callee this span's context instead.
fn invocation_span(
    router: &Router,
    from: NodeId,
    realm: &str,
    call: u64,
    callee: SessionId,
    registration: RegistrationId,
    details: &mut Dict,
) {
    use crate::observe::spans;
    let parent =
        details.get(spans::TRACEPARENT_KEY).and_then(crate::wamp::value::Value::as_str).map(str::to_owned);
    let procedure = details
        .get("procedure")
        .and_then(crate::wamp::value::Value::as_str)
        .map(str::to_owned)
        .or_else(|| {
            router.replica.read(|t| t.realm(realm)?.registrations.get(registration).map(|r| r.uri.clone()))
        });
    let span = spans::invocation_span(
        realm,
        procedure.as_deref().unwrap_or(""),
        callee.0,
        router.node.0,
        parent.as_deref(),
    );
    if let Some(tp) = spans::traceparent_of(&span) {
        details.insert(spans::TRACEPARENT_KEY.into(), tp.into());
    }
    spans::pending().insert((from.0, call), span);
}

/// A node is gone (its link broke or the cluster declared it down): answer every call
/// routed to it with `wamp.error.canceled`, and interrupt the invocations it was waiting on.
pub fn on_node_lost(router: &Router, node: NodeId) {
    let lost: Vec<u64> = router.remote_calls.iter().filter(|c| c.node == node).map(|c| *c.key()).collect();
    for call in lost {
        let Some((_, c)) = router.remote_calls.remove(&call) else { continue };
        if c.caller == ROUTER {
            let why = vec!["the callee's node was lost".into()];
            internal::answer(router, c.request, Err((errors::CANCELED.into(), why)));
        } else if let Some(caller) = c.realm.session(c.caller) {
            let payload = Payload::args(vec!["the callee's node was lost".into()]);
            calls::deliver_error(
                &caller,
                c.request,
                errors::CANCELED.into(),
                dict! { "node" => node.0 },
                payload,
            );
        }
    }
    let orphaned: Vec<(NodeId, u64)> =
        router.remote_invocations.iter().filter(|e| e.key().0 == node).map(|e| *e.key()).collect();
    for key in orphaned {
        let Some((_, (realm, callee, invocation))) = router.remote_invocations.remove(&key) else { continue };
        crate::observe::spans::pending().end((key.0.0, key.1), Some(errors::CANCELED));
        if let Some(realm) = router.realm(&realm) {
            calls::interrupt_local(
                &realm,
                callee,
                invocation,
                calls::CancelMode::KillNoWait,
                errors::CANCELED,
            );
            if let Some(s) = realm.session(callee) {
                s.forget_invocation(invocation);
            }
        }
    }
    tracing::info!(%node, "node lost: calls routed to it were canceled");
}
