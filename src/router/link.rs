//! The data path between nodes, as the router sees it: what it does with what another
//! node sends ([`LinkMsg`], through the router's [`LinkHandler`]). The cluster layer
//! carries messages over gRPC streams ([`crate::link::Links`]); a one-node cluster
//! never has a remote node in its routing table, so nothing is ever sent — the same
//! code path.
//!
//! Calls and invocations across nodes are the dealer's ([`crate::dealer::Dealer`]):
//! the caller's node keeps the call under its [`CallId`], the callee's node the
//! invocation; this module hands the link's RPC frames to it, and delivers events.

use super::Router;
use super::interest::Change;
use super::pubsub;
use crate::broker::Audience;
use crate::dealer::LinkInvoke;
use crate::ids::{CallId, NodeId, RegistrationId, SessionId, SubscriptionId};
use crate::link::{LinkHandler, LinkMsg};
use crate::wamp::uri::MatchPolicy;
use crate::wamp::value::Dict;

impl LinkHandler for Router {
    fn on_link(&self, from: NodeId, msg: LinkMsg) {
        on_link(self, from, msg);
    }

    fn node_gone(&self, node: NodeId) {
        self.deal(|d, _, now| d.handle_node_gone(node, now));
    }

    fn node_lost(&self, node: NodeId) {
        self.interest.forget_acks(self, node);
        self.retained.forget(node);
        on_node_lost(self, node);
    }

    fn link_up(&self, node: NodeId) {
        self.interest.sync_to(self, node);
        self.retained.sync_to(self, node);
    }

    fn stream_ended(&self, node: NodeId) {
        self.interest.drop_node(self, node);
    }
}

/// Handles a message another node sent.
fn on_link(router: &Router, from: NodeId, msg: LinkMsg) {
    match msg {
        LinkMsg::Event { realm, topic, subscriptions, publication, mut details, audience, payload } => {
            if router.fenced() {
                tracing::debug!(%topic, from = from.0, "fenced: event from another node dropped");
                return;
            }
            let Some(realm) = router.realm(&realm) else { return };
            let audience = Audience::from_options(&audience).unwrap_or_default();
            let matches: Vec<(SubscriptionId, MatchPolicy)> = router.interest.read(&realm.name, |idx| {
                subscriptions.iter().filter_map(|id| idx.get(*id).map(|s| (s.id, s.policy))).collect()
            });
            let span = match crate::observe::spans::Parent::of(&details) {
                parent @ crate::observe::spans::Parent::Remote { .. } => crate::observe::spans::event_span(
                    &realm.name,
                    &topic,
                    publication.0,
                    router.node.0,
                    parent,
                ),
                _ => tracing::Span::none(),
            };
            // the subscribers here join the trace under the event span
            if let Some(trace) = crate::observe::spans::trace_of(&span) {
                details.extend(trace);
            }
            let _entered = span.enter();
            let delivered =
                pubsub::deliver(&realm, &matches, &topic, publication, details, payload, &audience, None);
            crate::observe::spans::set_recipients(&span, delivered);
        }
        LinkMsg::Invoke { realm, call, callee, registration, mut details, payload, start_within } => {
            if crate::observe::spans::enabled() && !router.dealing.lock().serves(from, call) {
                invocation_span(router, from, &realm, call, callee, registration, &mut details);
            }
            let m = LinkInvoke { realm, call, callee, registration, details, payload, start_within };
            router.deal(|d, reg, now| d.handle_link_invoke(from, m, reg, now));
        }
        LinkMsg::Yield { call, details, payload, progress } => {
            router.deal(|d, _, now| d.handle_link_yield(from, call, details, payload, progress, now));
        }
        LinkMsg::Error { call, error, details, payload } => {
            router.deal(|d, reg, now| d.handle_link_error(from, call, error, details, payload, reg, now));
        }
        LinkMsg::Query { id, realm, op, payload } => {
            super::query::on_query(router, from, id, realm, op, payload)
        }
        LinkMsg::Answer { id, error, payload } => super::query::on_answer(router, id, error, payload),
        LinkMsg::Interrupt { call, mode, reason } => {
            router.deal(|d, _, _| d.handle_link_interrupt(from, call, &mode, &reason));
        }
        LinkMsg::Interest { realm, topic, policy, on, seq } => {
            router.interest.on_interest(router, from, Change { realm, topic, policy, on, seq });
        }
        LinkMsg::InterestAck { seq } => router.interest.on_ack(router, from, seq),
        LinkMsg::InterestSync { realm, entries } => router.interest.on_sync(from, &realm, &entries),
        LinkMsg::Retained { realm, topic, event, seq } => {
            router.retained.on_retained(router, &realm, &topic, event);
            if seq > 0 {
                router.send_link(from, LinkMsg::InterestAck { seq }).ok();
            }
        }
    }
}

/// Opens the span of an invocation served here for a call kept on node `from`, as a
/// child of the call's span (its `traceparent` came in the INVOCATION details), and
/// hands the callee this span's context instead.
fn invocation_span(
    router: &Router,
    from: NodeId,
    realm: &str,
    call: CallId,
    callee: SessionId,
    registration: RegistrationId,
    details: &mut Dict,
) {
    use crate::observe::spans;
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
        spans::Parent::of(details),
    );
    if let Some(trace) = spans::trace_of(&span) {
        details.extend(trace);
    }
    spans::pending().insert((from.0, call.0), span);
}

/// A node is gone (its link broke or the cluster declared it down): every call
/// routed to it is answered `wamp.error.canceled`, and the invocations served here
/// for calls kept there are interrupted.
pub fn on_node_lost(router: &Router, node: NodeId) {
    router.deal(|d, _, now| d.handle_node_lost(node, now));
    tracing::info!(%node, "node lost: calls routed to it were canceled");
}
