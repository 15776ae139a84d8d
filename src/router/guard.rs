//! Checks that go beyond a message's own URI and action, closing ways around
//! authorization:
//!
//! - **Procedures the router calls.** A realm's dynamic authenticators and
//!   authorizers are called by exact URI only ([`crate::dealer::Dealer::handle_internal_call`]), and only the role
//!   the configuration names (`authenticator_role`, `authorizer_role`) may register
//!   them, so no other session can take their calls (and the tickets in them).
//! - **Meta procedures that act on other sessions** (removing a callee or subscriber,
//!   killing sessions) in a realm that serves such procedures need an explicit
//!   permission: a static permission whose URI names the `wamp.` namespace, or a
//!   dynamic authorizer's yes. A realm without roles refuses them there.
//! - **Testaments** are publications made later on the session's behalf:
//!   `wamp.session.add_testament` needs the publish permission on the topic.
//! - **Event history** is what a subscription received: `wamp.subscription.get_events`
//!   needs the subscribe permission on the subscription's topic or pattern.

use super::Router;
use super::authorize;
use super::handle::SessionHandle;
use super::realm::Realm;
use crate::auth::roles::{Action, Asked};
use crate::ids::SubscriptionId;
use crate::wamp::message::Message;
use crate::wamp::uri::{self, MatchPolicy};
use crate::wamp::value::Value;

/// Meta procedures that remove or end other sessions' state.
const ACTING_ON_OTHERS: &[&str] = &[
    "wamp.registration.remove_callee",
    "wamp.subscription.remove_subscriber",
    "wamp.session.kill",
    "wamp.session.kill_by_authid",
    "wamp.session.kill_by_authrole",
    "wamp.session.kill_all",
];

/// The meta procedure that leaves a testament.
const ADD_TESTAMENT: &str = "wamp.session.add_testament";

/// The meta procedure that reads a subscription's event history.
const GET_EVENTS: &str = "wamp.subscription.get_events";

/// The only role that may register `procedure` in `realm`, when the router calls it
/// there (a dynamic authenticator of a realm served here, or an authorizer of one of
/// this realm's roles).
pub fn registrant(router: &Router, realm: &Realm, procedure: &str) -> Option<String> {
    for served in router.realms().filter(|r| r.authenticator_realm == realm.name) {
        let a = served.authenticators();
        if a.procedures.iter().any(|p| p == procedure) {
            return Some(a.role.clone());
        }
    }
    authorize::authorizers(router, realm).into_iter().find(|(p, _)| p == procedure).map(|(_, role)| role)
}

/// True when the router calls procedures registered in `realm`.
pub fn serves_router(router: &Router, realm: &Realm) -> bool {
    router.realms().any(|r| r.authenticator_realm == realm.name && !r.authenticators().procedures.is_empty())
        || !authorize::authorizers(router, realm).is_empty()
}

/// Why a request is refused (`wamp.error.not_authorized`), as the ERROR says it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// A procedure the router calls, registered by another role.
    #[error("only role {role:?} may register {procedure} (the router calls it)")]
    NotTheRegistrant {
        /// The role that may register it.
        role: String,
        /// The procedure.
        procedure: String,
    },
    /// A meta procedure acting on other sessions, without an explicit permission.
    #[error("{0} needs an explicit permission in a realm serving authenticators or authorizers")]
    NeedsExplicitPermission(String),
    /// The role lacks the permission the request implies.
    #[error("session is not authorized to {action} {uri} ({what})")]
    Implied {
        /// The action needed.
        action: &'static str,
        /// On what.
        uri: String,
        /// What for.
        what: &'static str,
    },
}

/// Checks `msg` (already authorized by its own URI) for the rules above; `Err` says
/// why it is refused.
pub async fn check(router: &Router, realm: &Realm, me: &SessionHandle, msg: &Message) -> Result<(), Refused> {
    match msg {
        Message::Register(m) => match registrant(router, realm, &m.procedure) {
            Some(role) if role != me.identity.authrole => {
                Err(Refused::NotTheRegistrant { role, procedure: m.procedure.clone() })
            }
            _ => Ok(()),
        },
        Message::Call(m) if ACTING_ON_OTHERS.contains(&m.procedure.as_str()) => {
            if serves_router(router, realm)
                && !authorize::explicitly_allowed(router, realm, me, &m.procedure).await
            {
                return Err(Refused::NeedsExplicitPermission(m.procedure.clone()));
            }
            Ok(())
        }
        Message::Call(m) if m.procedure == ADD_TESTAMENT && authorize::enforced(router, realm) => {
            // a reserved topic is refused as an invalid URI by the meta API, like PUBLISH
            let first = first_arg(m);
            let Some(topic) = first.as_ref().and_then(Value::as_str).filter(|t| !uri::is_reserved(t)) else {
                return Ok(());
            };
            let asked = Asked { uri: topic, policy: MatchPolicy::Exact, action: Action::Publish };
            require(router, realm, me, asked, "testament").await
        }
        Message::Call(m) if m.procedure == GET_EVENTS && authorize::enforced(router, realm) => {
            let Some(id) = first_arg(m).as_ref().and_then(Value::as_u64) else { return Ok(()) };
            let pattern = router
                .interest
                .read(&realm.name, |idx| idx.get(SubscriptionId(id)).map(|s| (s.uri.clone(), s.policy)));
            let Some((uri, policy)) = pattern else { return Ok(()) }; // answered: no such subscription
            let asked = Asked { uri: &uri, policy, action: Action::Subscribe };
            require(router, realm, me, asked, "to read its event history").await
        }
        _ => Ok(()),
    }
}

fn first_arg(m: &crate::wamp::message::Call) -> Option<Value> {
    m.payload.arguments().args.as_ref()?.first().cloned()
}

/// `Err` naming the action and `what` it was needed for, unless the role allows it.
async fn require(
    router: &Router,
    realm: &Realm,
    me: &SessionHandle,
    asked: Asked<'_>,
    what: &'static str,
) -> Result<(), Refused> {
    if authorize::check(router, realm, me, asked).await.allow {
        Ok(())
    } else {
        Err(Refused::Implied { action: asked.action.as_str(), uri: asked.uri.to_owned(), what })
    }
}
