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

/// How long the realm's dynamic authenticator may take to judge a ticket.
const AUTHENTICATOR_TIMEOUT: Duration = Duration::from_secs(10);

/// Logs `authid` in with `ticket` by the realm's ticket method, as a WAMP session's
/// HELLO and AUTHENTICATE would: static principals (plain or hashed tickets, checked
/// on the authentication threads) or the realm's dynamic ticket authenticator. The
/// bridge counts as a WebSocket transport for the method's `transports`, and as TLS
/// when it serves HTTPS (`tls_only`). The identity, or why not.
pub async fn ticket_login(
    router: &Arc<Router>,
    realm: &str,
    authid: Option<&str>,
    ticket: &str,
    tls: bool,
    peer: Option<std::net::SocketAddr>,
) -> Result<Identity, String> {
    use crate::auth::{self, Step};
    let realm = router.realm(realm).ok_or("no such realm")?;
    let methods = realm.auth();
    let Ok(Some(authenticator)) = methods.as_ref() else {
        return Err("the realm offers no ticket authentication".into());
    };
    let hello = auth::HelloAuth {
        authid: authid.map(str::to_owned),
        authmethods: vec!["ticket".into()],
        authextra: Dict::new(),
    };
    let ctx = auth::Context {
        realm: realm.name.clone(),
        session: SessionId(random_id()),
        now_ms: super::now_ms(),
        transport: auth::TransportInfo {
            kind: auth::TransportKind::WebSocket,
            tls,
            peer: peer
                .map(|p| format!("{}:{}:{}", if p.is_ipv4() { "tcp4" } else { "tcp6" }, p.ip(), p.port())),
            channel_bindings: Default::default(),
            client_cn: None,
        },
    };
    let mut step = authenticator.hello(&hello, ctx);
    let mut answered = false;
    loop {
        step = match step {
            Step::Welcome(p) if p.authmethod == crate::auth::ticket::METHOD => {
                return Ok(Identity {
                    authid: p.authid,
                    authrole: p.authrole,
                    authmethod: p.authmethod,
                    authprovider: p.authprovider,
                });
            }
            Step::Challenge(_, pending) if !answered => {
                answered = true;
                let msg =
                    crate::wamp::message::Authenticate { signature: ticket.to_owned(), extra: Dict::new() };
                let checked = router.auth_work.run(move || pending.authenticate(&msg, super::now_ms())).await;
                checked.ok_or("the ticket check failed")?
            }
            Step::Authenticator(call, pending) => {
                let home = realm.authenticator_realm.clone();
                let reply =
                    router.call_internal(&home, &call.procedure, call.args, AUTHENTICATOR_TIMEOUT).await;
                let reply = match reply {
                    Ok(p) => Ok(auth::dynamic::reply_value(&p.arguments())),
                    Err(f) => Err(auth::dynamic::CallFailure::from_error(&f.error, &f.args)),
                };
                let checked =
                    router.auth_work.run(move || pending.authenticator_reply(reply, super::now_ms()));
                checked.await.ok_or("the ticket check failed")?
            }
            Step::Abort(e) => return Err(e.to_string()),
            _ => return Err("ticket authentication did not complete".into()),
        };
    }
}
