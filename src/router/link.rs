//! The data path between nodes, as the router sees it: what it sends to another node
//! ([`LinkMsg`]) and what it does with what another node sends. The cluster layer
//! carries these over gRPC streams ([`Links`]); a one-node cluster never has a remote
//! node in its routing table, so nothing here is ever sent — the same code path.
//!
//! The caller's node keeps a call ([`RemoteCall`], keyed by a node-local call id);
//! the callee's node keeps the invocation. When a node is lost, every call routed to it
//! is answered `wamp.error.canceled` at once.

use std::sync::Arc;

use super::Router;
use super::handle::PendingInvocation;
use super::realm::Realm;
use super::rpc::error_reply;
use crate::dict;
use crate::ids::{NodeId, PublicationId, RegistrationId, RequestId, SessionId, SubscriptionId};
use crate::wamp::errors;
use crate::wamp::message::{CallResult, Error, Event, Invocation, Message, Payload, code};
use crate::wamp::uri::MatchPolicy;
use crate::wamp::value::Dict;

/// A data-path message to another node.
#[derive(Clone, Debug, PartialEq)]
pub enum LinkMsg {
    /// Deliver a publication to the receiving node's subscribers of `subscriptions`.
    Event {
        realm: String,
        topic: String,
        subscriptions: Vec<SubscriptionId>,
        publication: PublicationId,
        payload: Payload,
    },
    /// Invoke `callee` (a session on the receiving node) for call `call`.
    Invoke {
        realm: String,
        call: u64,
        callee: SessionId,
        registration: RegistrationId,
        details: Dict,
        payload: Payload,
    },
    /// The result of call `call`.
    Yield { call: u64, payload: Payload },
    /// The error of call `call`.
    Error { call: u64, error: String, details: Dict, payload: Payload },
}

/// The link is down: the message could not be queued.
#[derive(Debug, Clone, thiserror::Error)]
#[error("no link to node {0}")]
pub struct LinkDown(pub NodeId);

/// Sends data-path messages to other nodes; implemented by the cluster layer.
pub trait Links: Send + Sync {
    /// Queues a message for `node` without waiting.
    fn send(&self, node: NodeId, msg: LinkMsg) -> Result<(), LinkDown>;
}

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

/// Handles a message another node sent.
pub fn on_link(router: &Router, from: NodeId, msg: LinkMsg) {
    match msg {
        LinkMsg::Event { realm, topic, subscriptions, publication, payload } => {
            let Some(realm) = router.realm(&realm) else { return };
            deliver_remote_event(router, &realm, &topic, &subscriptions, publication, payload);
        }
        LinkMsg::Invoke { realm, call, callee, registration, details, payload } => {
            let session = router.realm(&realm).and_then(|r| r.session(callee));
            let started = session.as_ref().and_then(|s| {
                let id = s.start_invocation(PendingInvocation::Remote { node: from, call })?;
                let inv = Invocation { request: id, registration, details, payload };
                s.send(&Message::Invocation(inv)).ok().map(|_| ())
            });
            if started.is_none() {
                let e = LinkMsg::Error {
                    call,
                    error: errors::CANCELED.into(),
                    details: Dict::new(),
                    payload: Payload::args(vec!["the callee has left".into()]),
                };
                router.send_link(from, e).ok();
            }
        }
        LinkMsg::Yield { call, payload } => complete(router, call, |request| {
            Message::Result(CallResult { request, details: Dict::new(), payload })
        }),
        LinkMsg::Error { call, error, details, payload } => complete(router, call, |request| {
            Message::Error(Error { request_type: code::CALL, request, details, error, payload })
        }),
    }
}

/// Answers the caller of remote call `call` with the message `answer` builds.
fn complete(router: &Router, call: u64, answer: impl FnOnce(RequestId) -> Message) {
    let Some((_, c)) = router.remote_calls.remove(&call) else { return };
    if let Some(caller) = c.realm.session(c.caller) {
        caller.finish_call(c.request);
        caller.send(&answer(c.request)).ok();
    }
}

fn deliver_remote_event(
    router: &Router,
    realm: &Realm,
    topic: &str,
    subscriptions: &[SubscriptionId],
    publication: PublicationId,
    payload: Payload,
) {
    let policies: Vec<(SubscriptionId, MatchPolicy)> = router.replica.read(|t| {
        let Some(r) = t.realm(&realm.name) else { return Vec::new() };
        subscriptions.iter().filter_map(|id| r.subscriptions.get(*id).map(|s| (s.id, s.policy))).collect()
    });
    let mut msg =
        Message::Event(Event { subscription: SubscriptionId(0), publication, details: Dict::new(), payload });
    for (id, policy) in policies {
        let Some(subscribers) = realm.subscribers(id) else { continue };
        if let Message::Event(e) = &mut msg {
            e.subscription = id;
            e.details = super::pubsub::event_details(policy, topic);
        }
        super::pubsub::fan_out(&msg, &subscribers, None);
    }
}

/// A node is gone (its link broke or the cluster declared it down): answer every call
/// routed to it with `wamp.error.canceled`, and forget invocations it was waiting on.
pub fn on_node_lost(router: &Router, node: NodeId) {
    let lost: Vec<u64> = router.remote_calls.iter().filter(|c| c.node == node).map(|c| *c.key()).collect();
    for call in lost {
        complete(router, call, |request| {
            let mut e = error_reply(code::CALL, request, errors::CANCELED, "the callee's node was lost");
            if let Message::Error(err) = &mut e {
                err.details = dict! { "node" => node.0 };
            }
            e
        });
    }
    tracing::info!(%node, "node lost: calls routed to it were canceled");
}

/// Sends the answer of an invocation to the node that keeps the call.
pub fn answer_remote(router: &Router, node: NodeId, msg: LinkMsg) {
    if let Err(e) = router.send_link(node, msg) {
        tracing::debug!(error = %e, "answer not delivered: the caller's node is gone");
    }
}
