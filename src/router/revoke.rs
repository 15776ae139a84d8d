//! Registration and subscription revocation: the router takes a registration or a
//! subscription away from a session (`wamp.registration.remove_callee`,
//! `wamp.subscription.remove_subscriber`, run on the node holding the session).
//!
//! A session that announced `registration_revocation` / `subscription_revocation`
//! is told with `[UNREGISTERED, 0, {registration, reason}]` /
//! `[UNSUBSCRIBED, 0, {subscription, reason}]`; one that did not is not told (the
//! spec forbids it), and can learn it from the `on_unregister` / `on_unsubscribe`
//! meta events, which are published either way.

use std::sync::Arc;

use super::Router;
use super::handle::SessionHandle;
use super::realm::Realm;
use super::{pubsub, rpc};
use crate::ids::{RegistrationId, RequestId, SubscriptionId};
use crate::table::Command;
use crate::wamp::message::{Message, Unregistered, Unsubscribed};
use crate::wamp::value::Dict;

/// The feature a callee announces to be told of revocations.
pub const REGISTRATION_REVOCATION: &str = "registration_revocation";
/// The feature a subscriber announces to be told of revocations.
pub const SUBSCRIPTION_REVOCATION: &str = "subscription_revocation";

fn details(key: &str, id: u64, reason: Option<&str>) -> Dict {
    let mut d = Dict::new();
    d.insert(key.into(), id.into());
    if let Some(r) = reason {
        d.insert("reason".into(), r.into());
    }
    d
}

/// Takes registration `id` from callee `s`. False when `s` is not its callee.
pub async fn registration(
    router: &Router,
    realm: &Realm,
    s: &Arc<SessionHandle>,
    id: RegistrationId,
    reason: Option<&str>,
) -> bool {
    if !s.set_registered(id, false) {
        return false;
    }
    let cmd = Command::Unregister { realm: realm.name.clone(), session: s.id, registration: id };
    if let Err(e) = router.replica.propose(cmd).await {
        tracing::warn!(error = %e, "revocation not committed; the callee entry stays until the node leaves");
    }
    if s.has_feature("callee", REGISTRATION_REVOCATION) {
        let details = Some(details("registration", id.0, reason));
        s.send(&Message::Unregistered(Unregistered { request: RequestId(0), details })).ok();
    }
    rpc::registration_events(router, realm, s.id, id, false);
    true
}

/// Takes subscription `id` from subscriber `s`. False when `s` is not subscribed.
pub async fn subscription(
    router: &Router,
    realm: &Realm,
    s: &Arc<SessionHandle>,
    id: SubscriptionId,
    reason: Option<&str>,
) -> bool {
    {
        let _serial = super::handle::lock(&realm.membership);
        if !s.set_subscribed(id, false) {
            return false;
        }
        realm.remove_subscriber(id, s.id);
        router.interest.release(router, realm, id);
    }
    if s.has_feature("subscriber", SUBSCRIPTION_REVOCATION) {
        let details = Some(details("subscription", id.0, reason));
        s.send(&Message::Unsubscribed(Unsubscribed { request: RequestId(0), details })).ok();
    }
    pubsub::subscription_left(router, realm, s.id, id);
    true
}
