//! Broker operations: SUBSCRIBE, UNSUBSCRIBE, PUBLISH, and a leaving session's
//! subscriptions. Who receives an event is the broker's fan-out plan
//! ([`crate::broker::plan`]); this executes it, encoding an event once per serializer.

use std::sync::Arc;

use bytes::Bytes;

use super::Router;
use super::handle::{SessionHandle, lock};
use super::realm::Realm;
use crate::broker::Audience;
use crate::broker::index::derive_id;
use crate::broker::plan::{self, Fanout, Group, Member};
use crate::ids::{PublicationId, SessionId, SubscriptionId, random_id};
use crate::link::LinkMsg;
use crate::observe::spans;
use crate::wamp::codec::neutral;
use crate::wamp::message::{
    Event, Message, Payload, Publish, Published, Subscribe, Subscribed, Unsubscribe, Unsubscribed, code,
};
use crate::wamp::uri::{self, MatchPolicy};
use crate::wamp::value::{Dict, Value, dict_bool, dict_str};
use crate::wamp::{errors, ppt};

use super::rpc::{Violation, error_reply};

/// Handles SUBSCRIBE.
pub async fn subscribe(router: &Router, realm: &Realm, me: &Arc<SessionHandle>, m: Subscribe) {
    let Some(policy) = MatchPolicy::parse(dict_str(&m.options, "match")) else {
        let e = error_reply(code::SUBSCRIBE, m.request, errors::INVALID_ARGUMENT, "unknown match policy");
        me.send(&e).ok();
        return;
    };
    if !uri::is_valid_pattern(&m.topic, policy, realm.uri_check) {
        let e = error_reply(code::SUBSCRIBE, m.request, errors::INVALID_URI, "invalid topic URI");
        me.send(&e).ok();
        return;
    }
    let id = derive_id(&realm.name, &m.topic, policy);
    if router.interest.collides(&realm.name, id, &m.topic, policy) {
        let why = "the subscription's id is taken by another topic of this realm (a hash collision): use another topic";
        me.send(&error_reply(code::SUBSCRIBE, m.request, errors::INVALID_ARGUMENT, why)).ok();
        return;
    }
    let max = router.config.limits.max_subscriptions_per_session;
    if let (held, false) = me.subscription_count(Some(id))
        && held >= max
    {
        let why = format!("at most {max} subscriptions per session (limits.max_subscriptions_per_session)");
        let e = error_reply(code::SUBSCRIBE, m.request, super::limits::TOO_MANY_SUBSCRIPTIONS, &why);
        me.send(&e).ok();
        return;
    }
    let subscribed = || {
        realm.add_subscriber(id, me.clone());
        me.set_subscribed(id, true);
        me.send(&Message::Subscribed(Subscribed { request: m.request, subscription: id })).ok();
    };
    let (created, wait) = {
        let _serial = lock(&realm.membership);
        let (_, created, wait) = router.interest.gain(router, realm, &m.topic, policy);
        let wait = router.interest.begin_subscribe(&realm.name, id, wait);
        if wait.is_none() {
            // the node's interest is known everywhere already: the subscriber is
            // added under the same lock, so a leave of the topic's last other
            // subscriber cannot withdraw the interest in between
            subscribed();
        }
        (created, wait)
    };
    if let Some(wait) = wait {
        let pending = Subscribing { router, realm, id };
        let silent = wait.wait(super::interest::ACK_LIMIT).await;
        if !silent.is_empty() {
            tracing::warn!(topic = %m.topic, nodes = ?silent, "subscribed without these nodes' acknowledgement");
        }
        {
            let _serial = lock(&realm.membership);
            subscribed();
        }
        drop(pending);
    }
    if created {
        let details =
            || router.interest.read(&realm.name, |idx| idx.get(id).map(super::meta::subscription_details));
        super::meta::on_create(router, realm, "wamp.subscription.on_create", me.id, details);
    }
    super::meta::on_route(router, realm, "wamp.subscription.on_subscribe", me.id, id.0);
    if dict_bool(&m.options, "get_retained") {
        send_retained(router, realm, me, id, &m.topic, policy);
    }
}

/// A SUBSCRIBE between announcing its interest and being answered: when it ends
/// (answered, or dropped because the session went away), the interest is released
/// unless a subscriber holds it.
struct Subscribing<'a> {
    router: &'a Router,
    realm: &'a Realm,
    id: SubscriptionId,
}

impl Drop for Subscribing<'_> {
    fn drop(&mut self) {
        let _serial = lock(&self.realm.membership);
        self.router.interest.end_subscribe(&self.realm.name, self.id);
        self.router.interest.release(self.router, self.realm, self.id);
    }
}

/// Sends a new subscriber the retained events its subscription matches.
fn send_retained(
    router: &Router,
    realm: &Realm,
    me: &SessionHandle,
    id: SubscriptionId,
    pattern: &str,
    policy: MatchPolicy,
) {
    let events = router.retained.matching(&realm.name, pattern, policy);
    let subscriber = member_of(me);
    for (topic, e) in events {
        let (Ok(details), Ok(payload)) =
            (neutral::decode_dict(&e.details), neutral::decode_payload(&e.payload))
        else {
            continue;
        };
        let audience = neutral::decode_dict(&e.audience).ok().and_then(|d| Audience::from_options(&d).ok());
        let Some(details) = plan::retained_details(details, &topic, policy, audience.as_ref(), &subscriber)
        else {
            continue;
        };
        let event = Event { subscription: id, publication: PublicationId(e.publication), details, payload };
        me.send(&Message::Event(event)).ok();
    }
}

/// Handles UNSUBSCRIBE.
pub async fn unsubscribe(router: &Router, realm: &Realm, me: &Arc<SessionHandle>, m: Unsubscribe) {
    let (held, wait) = {
        let _serial = lock(&realm.membership);
        let held = me.set_subscribed(m.subscription, false);
        let mut wait = None;
        if held {
            realm.remove_subscriber(m.subscription, me.id);
            // the acknowledgements decide `on_delete` on what every node applied;
            // nobody listening for it, nothing waits (delivery needs no wait: a
            // node delivers only to the subscribers it has)
            if listened(router, realm, "wamp.subscription.on_delete") {
                wait = router.interest.release_acknowledged(router, realm, m.subscription);
            } else {
                router.interest.release(router, realm, m.subscription);
            }
        }
        (held, wait)
    };
    if !held {
        let e = error_reply(code::UNSUBSCRIBE, m.request, errors::NO_SUCH_SUBSCRIPTION, "not subscribed");
        me.send(&e).ok();
        return;
    }
    if let Some(wait) = wait {
        wait.wait(super::interest::ACK_LIMIT).await;
        router.interest.finished(&wait);
    }
    me.send(&Message::Unsubscribed(Unsubscribed { request: m.request, details: None })).ok();
    subscription_left(router, realm, me.id, m.subscription);
}

/// True when a subscriber on any node would receive an event on `topic`.
fn listened(router: &Router, realm: &Realm, topic: &str) -> bool {
    router.interest.read(&realm.name, |idx| {
        let mut found = Vec::new();
        idx.matching(topic, &mut found);
        !found.is_empty()
    })
}

/// Publishes `on_unsubscribe`, and `on_delete` when the subscription is gone.
pub fn subscription_left(router: &Router, realm: &Realm, session: SessionId, id: SubscriptionId) {
    super::meta::on_route(router, realm, "wamp.subscription.on_unsubscribe", session, id.0);
    if router.interest.read(&realm.name, |idx| idx.get(id).is_none()) {
        super::meta::on_route(router, realm, "wamp.subscription.on_delete", session, id.0);
    }
}

/// Handles PUBLISH: fans the event out to every matching local subscriber and sends
/// one frame to every other node with matching subscribers. With `retain`, the event
/// is also kept and sent to every node ([`super::retained`]); an acknowledged one is
/// answered once the nodes up have it.
pub async fn publish(
    router: &Router,
    realm: &Realm,
    me: &Arc<SessionHandle>,
    m: Publish,
) -> Result<(), Violation> {
    let acknowledge = dict_bool(&m.options, "acknowledge");
    let reply = |uri: &str, why: &str| {
        if acknowledge {
            me.send(&error_reply(code::PUBLISH, m.request, uri, why)).ok();
        }
        Ok(())
    };
    if !uri::is_valid(&m.topic, realm.uri_check) || uri::is_reserved(&m.topic) {
        return reply(errors::INVALID_URI, "invalid topic URI");
    }
    let audience = match Audience::from_options(&m.options) {
        Ok(a) => a,
        Err(e) => return reply(errors::INVALID_ARGUMENT, &e.to_string()),
    };
    let publication = PublicationId(random_id());
    if ppt::in_use(&m.options) && !me.has_feature("publisher", ppt::FEATURE) {
        return Err(Violation("payload passthru used without announcing it"));
    }
    let mut details = plan::disclosure(&m.options, &member_of(me));
    ppt::forward(&m.options, &mut details);
    let parent = spans::Parent::of(&m.options);
    let span = spans::publish_span(
        &realm.name,
        &m.topic,
        publication.0,
        me.id.0,
        me.serializer.name(),
        router.node.0,
        parent,
    );
    // Subscribers (on every node) may join the trace: the publish span's context, or
    // the publisher's as given.
    if let Some(trace) = spans::propagated(&span, &m.options) {
        details.extend(trace);
    }
    let retain = dict_bool(&m.options, "retain").then(|| super::retained::Publication {
        publication: publication.0,
        details: neutral::encode_dict(&details),
        payload: neutral::encode_payload(&m.payload),
        audience: neutral::encode_dict(&audience.to_options()),
    });
    let skip = plan::skipped(&m.options, me.id);
    let p = Publication { topic: &m.topic, id: publication, details, audience: &audience };
    span.in_scope(|| route(router, realm, p, m.payload, skip));
    drop(span);
    if let Some(event) = retain {
        match router.retained.publish(router, realm, &m.topic, event, acknowledge) {
            Ok(Some(wait)) => {
                let silent = wait.wait(super::interest::ACK_LIMIT).await;
                router.interest.finished(&wait);
                if !silent.is_empty() {
                    tracing::warn!(topic = %m.topic, nodes = ?silent, "retained without these nodes' acknowledgement");
                }
            }
            Ok(None) => {}
            Err(e) => {
                let why = format!("event delivered but not retained: {e}");
                return reply(super::limits::RETAINED_EVENT_TOO_LARGE, &why);
            }
        }
    }
    if acknowledge {
        me.send(&Message::Published(Published { request: m.request, publication })).ok();
    }
    Ok(())
}

/// A publication on its way to subscribers.
pub struct Publication<'a> {
    /// The concrete topic.
    pub topic: &'a str,
    /// Its id.
    pub id: PublicationId,
    /// EVENT.Details common to all subscribers.
    pub details: Dict,
    /// Who may receive it.
    pub audience: &'a Audience,
}

/// Routes a publication: local subscribers here, one frame per other node with
/// matching subscribers. `skip` is the publisher when it excluded itself.
pub fn route(router: &Router, realm: &Realm, p: Publication<'_>, payload: Payload, skip: Option<SessionId>) {
    let routes = router.interest.read(&realm.name, |idx| {
        let mut subs = Vec::new();
        idx.matching(p.topic, &mut subs);
        plan::routes(&subs, router.node)
    });
    for (node, subscriptions) in routes.remote {
        let msg = LinkMsg::Event {
            realm: realm.name.clone(),
            topic: p.topic.to_owned(),
            subscriptions,
            publication: p.id,
            details: p.details.clone(),
            audience: p.audience.to_options(),
            payload: payload.clone(),
        };
        if let Err(e) = router.send_link(node, msg) {
            tracing::debug!(error = %e, "event not forwarded");
        }
    }
    let mut details = p.details;
    let traced = spans::enabled() && !routes.local.is_empty() && details.contains_key(spans::TRACEPARENT_KEY);
    let span = if !traced {
        tracing::Span::none()
    } else {
        // a child of the publish span (the current one, or the trace the details
        // carry), handed to the local subscribers
        let parent = if tracing::Span::current().is_disabled() {
            spans::Parent::of(&details)
        } else {
            spans::Parent::None
        };
        let span = spans::event_span(&realm.name, p.topic, p.id.0, router.node.0, parent);
        if let Some(trace) = spans::trace_of(&span) {
            details.extend(trace);
        }
        span
    };
    let _entered = span.enter();
    let delivered = deliver(realm, &routes.local, p.topic, p.id, details, payload, p.audience, skip);
    spans::set_recipients(&span, delivered);
}

/// Publishes a meta event (`wamp.session.on_join` ...) from the router itself. Its
/// arguments are built only when some node has interest in the topic (a subscriber or
/// kept history); `None` from `args`: what the event was about is gone, nothing is
/// published.
pub fn publish_meta(router: &Router, realm: &Realm, topic: &str, args: impl FnOnce() -> Option<Vec<Value>>) {
    if !listened(router, realm, topic) {
        return;
    }
    let Some(args) = args() else { return };
    let audience = Audience::default();
    let p = Publication { topic, id: PublicationId(random_id()), details: Dict::new(), audience: &audience };
    route(router, realm, p, Payload::args(args), None);
}

/// Delivers a publication to this node's subscribers of the matching subscriptions
/// (and to their event history), as the broker's fan-out plan says; returns how
/// many sessions it was queued to.
#[allow(clippy::too_many_arguments)]
pub(crate) fn deliver(
    realm: &Realm,
    matches: &[(SubscriptionId, MatchPolicy)],
    topic: &str,
    publication: PublicationId,
    details: Dict,
    payload: Payload,
    audience: &Audience,
    skip: Option<SessionId>,
) -> u64 {
    let mut delivered = 0;
    let fanout = Fanout { topic, details: &details, audience, skip };
    let mut msg =
        Message::Event(Event { subscription: SubscriptionId(0), publication, details: Dict::new(), payload });
    for &(id, policy) in matches {
        let history = realm.history(id);
        let subscribers = realm.subscribers(id);
        if history.is_none() && subscribers.is_none() {
            continue;
        }
        let members = subscribers.as_deref().map(members_of).unwrap_or_default();
        let planned = fanout.delivery(id, policy, &members);
        if let Message::Event(event) = &mut msg {
            if let Some(h) = history {
                h.record(topic, publication, &planned.details, &event.payload, audience);
            }
            event.subscription = planned.subscription;
            event.details = planned.details;
        }
        if let Some(subscribers) = &subscribers {
            delivered += execute(&msg, &planned.groups, subscribers);
        }
    }
    delivered
}

/// A session as the broker's plan sees it.
fn member_of(s: &SessionHandle) -> Member<'_> {
    Member {
        session: s.id,
        authid: &s.identity.authid,
        authrole: &s.identity.authrole,
        serializer: s.serializer,
    }
}

fn members_of(subscribers: &[Arc<SessionHandle>]) -> Vec<Member<'_>> {
    subscribers.iter().map(|s| member_of(s)).collect()
}

/// Sends one event to the planned receivers, encoding it once per serializer group;
/// returns how many it was queued to.
fn execute(msg: &Message, groups: &[Group], subscribers: &[Arc<SessionHandle>]) -> u64 {
    let (mut delivered, mut dropped) = (0u64, 0u64);
    for group in groups {
        let frame = Bytes::from(group.serializer.encode(msg));
        for s in group.members.iter().map(|&i| &subscribers[i]) {
            if s.send_frame(frame.clone()).is_err() {
                dropped += 1;
                tracing::debug!(session = %s.id, "event not queued: subscriber is slow or gone");
            } else {
                delivered += 1;
            }
        }
    }
    crate::observe::metrics::messages_out(code::EVENT, delivered);
    crate::observe::metrics::events_delivered(delivered);
    if dropped > 0 {
        crate::observe::metrics::events_dropped(dropped);
    }
    delivered
}

/// Drops a leaving session from its subscriptions, releasing this node's interest
/// in those it was the last local subscriber of.
pub fn leave(router: &Router, realm: &Realm, me: &SessionHandle, subscriptions: &[SubscriptionId]) {
    let _serial = lock(&realm.membership);
    for &id in subscriptions {
        realm.remove_subscriber(id, me.id);
        router.interest.release(router, realm, id);
    }
}
