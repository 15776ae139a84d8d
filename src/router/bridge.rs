//! The router's side of the HTTP bridge (`crate::transport::bridge`): a PUBLISH or
//! CALL made for an HTTP client that speaks no WAMP, as a session of its own would
//! make it. Each request joins a short-lived session with the identity the bridge
//! authenticated (invisible to the meta API's join and leave events), goes through
//! the same authorization, guards and routing as a client's message (so the cluster
//! fan-out, black/white lists, retain, shared registrations, call timeouts and
//! rerouting all apply), waits for the one answer and leaves.

use std::sync::Arc;
use std::time::Duration;

use super::Router;
use super::handle::{Identity, SessionHandle};
use super::realm::Realm;
use super::{outbox, pubsub, rpc, session};
use crate::ids::{PublicationId, RequestId, SessionId, random_id};
use crate::wamp::codec::Serializer;
use crate::wamp::errors;
use crate::wamp::message::{Call, Message, Payload, Publish};
use crate::wamp::value::{Dict, Value, dict_bool};

/// The answer of a bridged request.
#[derive(Debug, PartialEq)]
pub enum Answer {
    /// The event was published (PUBLISHED).
    Published(PublicationId),
    /// The call's final result.
    Result(Payload),
    /// An ERROR: its URI and payload.
    Error(String, Payload),
}

impl Answer {
    fn error(uri: &str, why: impl Into<String>) -> Answer {
        Answer::Error(uri.to_owned(), Payload::args(vec![Value::from(why.into())]))
    }
}

/// Publishes `topic` in `realm` as `who`. The publication is always acknowledged
/// inside the router, so the bridge learns its id and any refusal.
pub async fn publish(
    router: &Arc<Router>,
    realm: &str,
    who: Identity,
    topic: String,
    payload: Payload,
    mut options: Dict,
) -> Answer {
    options.insert("acknowledge".into(), true.into());
    let m = Publish { request: RequestId(1), options, topic, payload };
    // an acknowledged retained event waits for the nodes' acknowledgement, bounded
    let wait = super::interest::ACK_LIMIT + Duration::from_secs(5);
    request(router, realm, who, Message::Publish(m), wait).await
}

/// Calls `procedure` in `realm` as `who`; the dealer answers
/// `wamp.error.timeout`/`canceled` after `timeout`. Progressive results are not
/// asked for: the answer is the final result.
pub async fn call(
    router: &Arc<Router>,
    realm: &str,
    who: Identity,
    procedure: String,
    payload: Payload,
    mut options: Dict,
    timeout: Duration,
) -> Answer {
    for chunked in ["receive_progress", "progress"] {
        options.remove(chunked);
    }
    let ms = timeout.as_millis().max(1) as u64;
    options.insert("timeout".into(), ms.into());
    let m = Call { request: RequestId(1), options, procedure, payload };
    // the dealer's own timeout answers first; this only bounds a lost answer
    request(router, realm, who, Message::Call(m), timeout + Duration::from_secs(5)).await
}

/// A bridge session while it is joined; leaving when dropped (also when the HTTP
/// client goes away mid-call: the dealer then cancels the call).
struct Joined<'a> {
    router: &'a Router,
    realm: Arc<Realm>,
    me: Arc<SessionHandle>,
}

impl Drop for Joined<'_> {
    fn drop(&mut self) {
        self.me.mark_left();
        self.realm.sessions.remove(&self.me.id);
        let id = self.me.id;
        self.router.deal(|d, _, now| d.session_left(id, now));
    }
}

async fn request(
    router: &Arc<Router>,
    realm: &str,
    who: Identity,
    mut msg: Message,
    wait: Duration,
) -> Answer {
    let Some(realm) = router.realm(realm) else {
        return Answer::error(errors::NO_SUCH_REALM, format!("no realm {realm:?} on this router"));
    };
    let (out, mut answers) = outbox::outbox(16, router.config.limits.outbox_bytes);
    let id = SessionId(random_id());
    let me = Arc::new(SessionHandle::new(id, Serializer::Json, who, Dict::new(), out));
    router.dealing.lock().session_joined(id, session::dealer_peer(&realm, &me));
    realm.sessions.insert(id, me.clone());
    let joined = Joined { router, realm, me };
    let (realm, me) = (&joined.realm, &joined.me);
    if session::permitted(router, realm, me, &mut msg).await {
        let routed = match msg {
            Message::Publish(m) => pubsub::publish(router, realm, me, m).await,
            Message::Call(m) => rpc::call(router, realm, me, m),
            _ => Ok(()),
        };
        if let Err(v) = routed {
            return Answer::error(errors::INVALID_ARGUMENT, v.0);
        }
    }
    let deadline = tokio::time::Instant::now() + wait;
    let mut frames = Vec::new();
    loop {
        match tokio::time::timeout_at(deadline, answers.recv_many(&mut frames, 16)).await {
            Ok(0) | Err(_) => return Answer::error(errors::CANCELED, "no answer from the router in time"),
            Ok(_) => {}
        }
        for frame in frames.drain(..) {
            match Serializer::Json.decode(&frame) {
                Ok(Message::Published(p)) => return Answer::Published(p.publication),
                Ok(Message::Result(r)) if !dict_bool(&r.details, "progress") => {
                    return Answer::Result(r.payload);
                }
                Ok(Message::Error(e)) => return Answer::Error(e.error, e.payload),
                _ => {}
            }
        }
    }
}
