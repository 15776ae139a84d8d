//! One client session as seen by its connection task: decode, check the message
//! against the session state machine, route it, and clean up when it ends.
//!
//! The transport driver feeds frames to [`Session::on_frame`] and writes whatever the
//! session queued in its outbox. Protocol violations are answered with ABORT
//! `wamp.error.protocol_violation` and [`Flow::Close`]; the session's registrations
//! and subscriptions are removed before the transport closes.

use std::sync::Arc;

use bytes::Bytes;

use super::handle::{Identity, SessionHandle};
use super::limits::{self, Seat};
use super::outbox::Outbox;
use super::realm::Realm;
use super::{AGENT, Router, authorize, meta, pubsub, rpc};
use crate::auth;
use crate::auth::roles::{Action, Asked};
use crate::dealer;
use crate::dict;
use crate::ids::{SessionId, random_id};
use crate::observe::metrics::{Refused, session_refused as refused};
use crate::table::Command;
use crate::wamp::codec::Serializer;
use crate::wamp::message::{Abort, Authenticate, Goodbye, Hello, Message, Welcome, code};
use crate::wamp::session::{Phase, Step, classify};
use crate::wamp::uri::MatchPolicy;
use crate::wamp::value::{Dict, Value};
use crate::wamp::value::{dict_bool, dict_str};
use crate::wamp::{errors, ppt};

/// How long a dynamic authenticator may take to answer.
const AUTHENTICATOR_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// What the transport should do after a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Keep reading.
    Continue,
    /// Flush the outbox and close the transport.
    Close,
}

/// The router side of one transport connection.
pub struct Session {
    router: Arc<Router>,
    serializer: Serializer,
    outbox: Outbox,
    phase: Phase,
    joined: Option<(Arc<Realm>, Arc<SessionHandle>)>,
    /// The transport's name, for metrics.
    transport: &'static str,
    /// Counts the session in `junction_sessions` while it is joined.
    gauge: Option<crate::observe::metrics::SessionGauge>,
    /// The authentication handshake in progress (CHALLENGE sent).
    challenged: Option<Challenged>,
    /// The method being tried, for the auth-failure metric.
    auth_method: &'static str,
    /// The client's address (none over a Unix socket), for the per-address limits.
    peer: Option<std::net::SocketAddr>,
    /// What the TLS handshake established (TLS listeners only).
    tls: Option<Arc<crate::auth::TlsInfo>>,
    /// The session's place in the node's session counts, from HELLO until it leaves.
    seat: Option<Seat>,
}

/// A session between CHALLENGE and AUTHENTICATE.
struct Challenged {
    realm: Arc<Realm>,
    id: SessionId,
    roles: Dict,
    pending: auth::Pending,
}

impl Session {
    /// A session on a fresh transport that negotiated `serializer`.
    pub fn new(router: Arc<Router>, serializer: Serializer, outbox: Outbox, transport: &'static str) -> Self {
        Session {
            router,
            serializer,
            outbox,
            phase: Phase::AwaitingHello,
            joined: None,
            transport,
            gauge: None,
            challenged: None,
            auth_method: "hello",
            peer: None,
            tls: None,
            seat: None,
        }
    }

    /// Sets the client's address (TCP connections), for the per-address limits and
    /// the dynamic authenticator's `transport.peer`.
    pub fn set_peer(&mut self, peer: Option<std::net::SocketAddr>) {
        self.peer = peer;
    }

    /// Sets what the TLS handshake established (channel bindings, client certificate).
    pub fn set_tls(&mut self, tls: Option<Arc<crate::auth::TlsInfo>>) {
        self.tls = tls;
    }

    /// The connection did not complete the WAMP handshake in time: ABORT
    /// `junction.error.handshake_timeout` (the transport closes after it).
    pub async fn handshake_timeout(&mut self) {
        let ms = self.router.config.limits.handshake_timeout_ms;
        tracing::info!(peer = ?self.peer, "WAMP handshake timed out");
        refused(Refused::HandshakeTimeout);
        self.send(&Message::Abort(Abort {
            details: dict! { "message" => format!("no WELCOME within {ms} ms of connecting") },
            reason: limits::HANDSHAKE_TIMEOUT.into(),
        }));
        self.leave().await;
    }

    /// True while a session is joined to a realm.
    pub fn is_joined(&self) -> bool {
        self.joined.is_some()
    }

    fn send(&self, msg: &Message) {
        crate::observe::metrics::message_out(msg.code());
        self.outbox.push(self.serializer.encode(msg).into()).ok();
    }

    /// Sends `msg` (a GOODBYE) as the last frame the session gets: nothing queued
    /// after it, even by a call routed to this session a moment before.
    fn send_last(&self, msg: &Message) {
        crate::observe::metrics::message_out(msg.code());
        self.outbox.seal_with(self.serializer.encode(msg).into()).ok();
    }

    /// Handles one incoming frame.
    pub async fn on_frame(&mut self, frame: &Bytes) -> Flow {
        let max_values = self.router.config.limits.max_message_elements;
        let msg = match self.serializer.decode_frame(frame, max_values) {
            Ok(m) => m,
            Err(e) => return self.violation(&format!("undecodable message: {e}")).await,
        };
        crate::observe::metrics::message_in(msg.code());
        // Joining and authenticating (once per session) are boxed: inline, their
        // states would size every frame's handling, which the session loop holds for
        // the connection's whole life (`transport::listener::connection`).
        match classify(self.phase, &msg) {
            Step::Join => match msg {
                Message::Hello(h) => Box::pin(self.join(h)).await,
                _ => Flow::Continue,
            },
            Step::Authenticate => match msg {
                Message::Authenticate(a) => Box::pin(self.authenticate(a)).await,
                _ => Flow::Continue,
            },
            Step::Route => match self.route(msg).await {
                Ok(()) => Flow::Continue,
                Err(rpc::Violation(why)) => self.violation(why).await,
            },
            Step::Leave => {
                // the session's routes are gone before the client hears GOODBYE
                self.leave().await;
                self.send(&goodbye(errors::GOODBYE_AND_OUT));
                Flow::Continue
            }
            Step::Closed | Step::Aborted => {
                self.leave().await;
                Flow::Close
            }
            Step::Ignore => Flow::Continue,
            Step::Violation(why) => self.violation(why).await,
        }
    }

    /// ABORTs with `wamp.error.protocol_violation`, drops the session's routes, and
    /// asks the transport to close.
    pub async fn violation(&mut self, why: &str) -> Flow {
        tracing::info!(reason = why, "protocol violation");
        self.send(&Message::Abort(Abort {
            details: dict! { "message" => why },
            reason: errors::PROTOCOL_VIOLATION.into(),
        }));
        self.leave().await;
        Flow::Close
    }

    async fn join(&mut self, hello: Hello) -> Flow {
        let ip = self.peer.map(|p| p.ip());
        match self.router.admission.admit(ip, tokio::time::Instant::now()) {
            Ok(seat) => self.seat = Some(seat),
            Err(refusal) => {
                tracing::info!(peer = ?self.peer, reason = refusal.uri(), "HELLO refused");
                refused(match refusal {
                    limits::Refusal::NodeFull(_) => Refused::MaxSessions,
                    limits::Refusal::AddressFull(_) => Refused::MaxSessionsPerIp,
                    limits::Refusal::RateLimited(_) => Refused::RateLimited,
                });
                self.send(&Message::Abort(Abort {
                    details: dict! { "message" => refusal.message() },
                    reason: refusal.uri().into(),
                }));
                return Flow::Close;
            }
        }
        let Some(realm) = self.router.realm(&hello.realm) else {
            refused(Refused::NoSuchRealm);
            self.send(&Message::Abort(Abort {
                details: dict! { "message" => format!("no realm {:?} on this router", hello.realm) },
                reason: errors::NO_SUCH_REALM.into(),
            }));
            return Flow::Close;
        };
        let id = SessionId(random_id());
        let roles = hello.details.get("roles").and_then(Value::as_dict).cloned().unwrap_or_default();
        let auth = realm.auth();
        let step = match auth.as_ref() {
            Ok(None) => auth::Step::Welcome(auth::Principal {
                authid: anonymous_authid(),
                authrole: "anonymous".into(),
                authmethod: "anonymous".into(),
                authprovider: "static".into(),
                authextra: Dict::new(),
            }),
            Ok(Some(authenticator)) => match auth::HelloAuth::from_details(&hello.details) {
                Ok(h) => authenticator.hello(&h, self.auth_context(&realm, id)),
                Err(e) => auth::Step::Abort(e),
            },
            Err(why) => {
                tracing::error!(realm = %realm.name, error = %why, "realm authentication is misconfigured");
                refused(Refused::AuthUnavailable);
                self.send(&Message::Abort(Abort {
                    details: dict! { "message" => "authentication is not available on this realm" },
                    reason: auth::error::AUTHENTICATION_FAILED.into(),
                }));
                return Flow::Close;
            }
        };
        self.auth_step(realm, id, roles, step).await
    }

    fn auth_context(&self, realm: &Realm, session: SessionId) -> auth::Context {
        let kind = if self.transport == "websocket" {
            auth::TransportKind::WebSocket
        } else {
            auth::TransportKind::RawSocket
        };
        auth::Context {
            realm: realm.name.clone(),
            session,
            now_ms: super::now_ms(),
            transport: auth::TransportInfo {
                kind,
                tls: self.tls.is_some(),
                peer: self.peer.map(peer_name),
                channel_bindings: self.tls.as_ref().map(|t| t.bindings.clone()).unwrap_or_default(),
                client_cn: self.tls.as_ref().and_then(|t| t.client_cn.clone()),
            },
        }
    }

    /// Acts on a step of the authentication handshake. A dynamic authenticator is
    /// called right here: the connection reads nothing else until it answered.
    async fn auth_step(&mut self, realm: Arc<Realm>, id: SessionId, roles: Dict, step: auth::Step) -> Flow {
        let mut step = step;
        loop {
            return match step {
                auth::Step::Authenticator(call, pending) => {
                    let reply = self.call_authenticator(&realm, call).await;
                    let checked = self
                        .router
                        .auth_work
                        .run(move || pending.authenticator_reply(reply, super::now_ms()));
                    step = checked.await.unwrap_or_else(auth_check_failed);
                    continue;
                }
                auth::Step::Welcome(principal) => self.welcome(realm, id, roles, principal),
                auth::Step::Challenge(challenge, pending) => {
                    self.send(&Message::Challenge(challenge));
                    self.phase = Phase::Authenticating;
                    self.challenged = Some(Challenged { realm, id, roles, pending });
                    Flow::Continue
                }
                auth::Step::Abort(e) => {
                    crate::observe::metrics::auth_failure(self.auth_method);
                    refused(Refused::AuthFailed);
                    if let Some(seat) = self.seat.take() {
                        seat.failed(tokio::time::Instant::now());
                    }
                    tracing::info!(realm = %realm.name, reason = e.uri(), "authentication refused");
                    self.send(&Message::Abort(Abort {
                        details: e.abort_details(),
                        reason: e.uri().to_owned(),
                    }));
                    self.phase = Phase::AwaitingHello;
                    Flow::Close
                }
            };
        }
    }

    /// Calls the realm's dynamic authenticator procedure (registered by a client).
    async fn call_authenticator(
        &self,
        realm: &Realm,
        call: auth::dynamic::AuthenticatorCall,
    ) -> auth::dynamic::AuthenticatorReply {
        let Some(home) = self.router.realm(&realm.authenticator_realm) else {
            let why = format!("authenticator realm {:?} is not served", realm.authenticator_realm);
            return Err(auth::dynamic::CallFailure {
                error: errors::NO_SUCH_REALM.into(),
                message: Some(why),
            });
        };
        let reply =
            self.router.call_internal(&home.name, &call.procedure, call.args, AUTHENTICATOR_TIMEOUT).await;
        match reply {
            Ok(p) => Ok(auth::dynamic::reply_value(&p.arguments())),
            Err(f) => Err(auth::dynamic::CallFailure::from_error(&f.error, &f.args)),
        }
    }

    async fn authenticate(&mut self, msg: Authenticate) -> Flow {
        let Some(Challenged { realm, id, roles, pending }) = self.challenged.take() else {
            return Flow::Close;
        };
        self.auth_method = pending.method();
        let step = self.router.auth_work.run(move || pending.authenticate(&msg, super::now_ms())).await;
        self.auth_step(realm, id, roles, step.unwrap_or_else(auth_check_failed)).await
    }

    fn welcome(&mut self, realm: Arc<Realm>, id: SessionId, roles: Dict, p: auth::Principal) -> Flow {
        let identity = Identity {
            authid: p.authid.clone(),
            authrole: p.authrole.clone(),
            authmethod: p.authmethod.clone(),
            authprovider: p.authprovider.clone(),
        };
        if let Some(seat) = &mut self.seat {
            seat.authenticated();
        }
        let handle = Arc::new(SessionHandle::new(id, self.serializer, identity, roles, self.outbox.clone()));
        let mut details = welcome_details(&handle);
        if !p.authextra.is_empty() {
            details.insert("authextra".into(), Value::Dict(p.authextra));
        }
        self.router.dealing.lock().session_joined(id, dealer_peer(&realm, &handle));
        realm.sessions.insert(id, handle.clone());
        self.gauge = Some(crate::observe::metrics::session_joined(
            &realm.name,
            self.transport,
            self.serializer.name(),
        ));
        self.send(&Message::Welcome(Welcome { session: id, details }));
        meta::on_join(&self.router, &realm, &handle);
        tracing::debug!(session = %id, realm = %realm.name, serializer = self.serializer.name(), "joined");
        self.joined = Some((realm, handle));
        self.phase = Phase::Established;
        Flow::Continue
    }

    async fn route(&mut self, mut msg: Message) -> Result<(), rpc::Violation> {
        let Some((realm, me)) = self.joined.clone() else {
            return Ok(());
        };
        let router = &*self.router;
        if !permitted(router, &realm, &me, &mut msg).await {
            return Ok(());
        }
        match msg {
            Message::Publish(m) => pubsub::publish(router, &realm, &me, m).await?,
            Message::Subscribe(m) => pubsub::subscribe(router, &realm, &me, m).await,
            Message::Unsubscribe(m) => pubsub::unsubscribe(router, &realm, &me, m).await,
            Message::Call(m) => rpc::call(&self.router, &realm, &me, m)?,
            Message::Register(m) => rpc::register(router, &realm, &me, m).await,
            Message::Unregister(m) => rpc::unregister(router, &realm, &me, m).await,
            Message::Yield(m) => router.deal_checked(|d, _, now| d.handle_yield(me.id, m, now))?,
            Message::Error(m) => {
                router.deal_checked(|d, reg, now| d.handle_invocation_error(me.id, m, reg, now))?
            }
            Message::Cancel(m) => router.deal(|d, _, now| d.handle_cancel(me.id, m, now)),
            other => tracing::debug!(code = other.code(), "unrouted message"),
        }
        Ok(())
    }

    /// Router-initiated close (shutdown): sends GOODBYE and returns true when a
    /// reply should be awaited; false when there is no session to say goodbye to.
    pub fn begin_close(&mut self, reason: &str) -> bool {
        if self.phase != Phase::Established {
            return false;
        }
        self.stop_routing_to();
        self.send_last(&goodbye(reason));
        self.phase = Phase::Closing;
        true
    }

    /// Ends the session on the router's initiative (meta API kill): GOODBYE with
    /// `reason`, then the session leaves without waiting for the reply. No new
    /// invocation is routed to it from before the GOODBYE on, and nothing is sent
    /// after it.
    pub async fn kick(&mut self, reason: &str, message: &str) {
        self.stop_routing_to();
        if self.phase == Phase::Established {
            let mut bye = goodbye(reason);
            if let Message::Goodbye(g) = &mut bye
                && !message.is_empty()
            {
                g.details.insert("message".into(), message.into());
            }
            self.send_last(&bye);
        }
        self.leave().await;
    }

    /// The joined session, if any, starts leaving: the dealer sends it no new
    /// invocation (another callee gets the call), even while its cleanup commits.
    fn stop_routing_to(&self) {
        let Some((_, me)) = &self.joined else { return };
        if me.has_left() {
            return;
        }
        me.mark_left();
        let id = me.id;
        self.router.deal(|d, _, _| {
            d.session_leaving(id);
            crate::dealer::Actions::new()
        });
    }

    /// Ends the joined session, if any: removes it from its realm and the routing
    /// table, and answers every call it was serving.
    pub async fn leave(&mut self) {
        self.stop_routing_to();
        self.phase = Phase::AwaitingHello;
        self.seat = None;
        let Some((realm, me)) = self.joined.take() else { return };
        self.gauge = None;
        let (subs, regs) = me.take_routes();
        pubsub::leave(&self.router, &realm, &me, &subs);
        if !regs.is_empty() || me.has_testaments() {
            let cmd = Command::SessionGone {
                realm: realm.name.clone(),
                node: self.router.node,
                session: me.id,
                registrations: regs.clone(),
                subscriptions: Vec::new(),
            };
            if let Err(e) = self.router.replica.propose(cmd).await {
                tracing::warn!(error = %e, session = %me.id, "session cleanup not committed");
            }
        }
        realm.sessions.remove(&me.id);
        self.router.deal(|d, _, now| d.session_left(me.id, now));
        for id in regs {
            rpc::registration_events(&self.router, &realm, me.id, id, false);
        }
        for id in subs {
            pubsub::subscription_left(&self.router, &realm, me.id, id);
        }
        meta::fire_testaments(&self.router, &realm, &me);
        meta::on_leave(&self.router, &realm, &me);
        tracing::debug!(session = %me.id, "left");
    }
}

/// Authorizes `msg` of session `me` by its role and checks it against the router's
/// guards; false (the request answered with the refusal) when it may not go on. A
/// permission that discloses the caller or publisher marks `msg` so.
pub(super) async fn permitted(router: &Router, realm: &Realm, me: &SessionHandle, msg: &mut Message) -> bool {
    if authorize::enforced(router, realm)
        && let Some((uri, policy, action)) = authorization_target(msg, router, me)
    {
        let decision = authorize::check(router, realm, me, Asked { uri: &uri, policy, action }).await;
        if !decision.allow {
            refuse(me, msg, &uri, action);
            return false;
        }
        if decision.disclose {
            disclose(msg);
        }
    }
    if let Err(why) = super::guard::check(router, realm, me, msg).await {
        refuse_because(me, msg, &why.to_string());
        return false;
    }
    true
}

/// The step of a check that could not complete (it panicked).
fn auth_check_failed() -> auth::Step {
    auth::Step::Abort(auth::AuthError::Failed("the authentication check failed".into()))
}

/// A peer address as Crossbar.io writes it (`tcp4:127.0.0.1:5555`).
fn peer_name(peer: std::net::SocketAddr) -> String {
    let family = if peer.is_ipv4() { "tcp4" } else { "tcp6" };
    format!("{family}:{}:{}", peer.ip(), peer.port())
}

/// The URI, match policy and action of a message that needs authorization. The later
/// chunks of a progressive call invocation were authorized with the first one. An
/// unknown `match` is checked as exact here and refused by the broker or dealer.
fn authorization_target(
    msg: &Message,
    router: &Router,
    me: &SessionHandle,
) -> Option<(String, MatchPolicy, Action)> {
    let policy =
        |options: &Dict| MatchPolicy::parse(dict_str(options, "match")).unwrap_or(MatchPolicy::Exact);
    match msg {
        Message::Call(m) if !router.dealing.lock().has_call(me.id, m.request) => {
            Some((m.procedure.clone(), MatchPolicy::Exact, Action::Call))
        }
        Message::Register(m) => Some((m.procedure.clone(), policy(&m.options), Action::Register)),
        Message::Publish(m) => Some((m.topic.clone(), MatchPolicy::Exact, Action::Publish)),
        Message::Subscribe(m) => Some((m.topic.clone(), policy(&m.options), Action::Subscribe)),
        _ => None,
    }
}

/// Answers a denied request with `wamp.error.not_authorized` (a PUBLISH only when
/// it asked for an acknowledgement).
fn refuse(me: &SessionHandle, msg: &Message, uri: &str, action: Action) {
    let why = format!("session is not authorized to {} {uri}", action.as_str());
    refuse_because(me, msg, &why);
}

/// Answers a refused request with `wamp.error.not_authorized` and `why` (a PUBLISH
/// only when it asked for an acknowledgement).
fn refuse_because(me: &SessionHandle, msg: &Message, why: &str) {
    let (code, request) = match msg {
        Message::Call(m) => (code::CALL, m.request),
        Message::Register(m) => (code::REGISTER, m.request),
        Message::Subscribe(m) => (code::SUBSCRIBE, m.request),
        Message::Publish(m) if dict_bool(&m.options, "acknowledge") => (code::PUBLISH, m.request),
        _ => return,
    };
    tracing::debug!(session = %me.id, authrole = %me.identity.authrole, why, "not authorized");
    me.send(&rpc::error_reply(code, request, errors::NOT_AUTHORIZED, why)).ok();
}

/// The role's permission discloses the caller or publisher.
fn disclose(msg: &mut Message) {
    match msg {
        Message::Call(m) => {
            m.options.insert("disclose_me".into(), true.into());
        }
        Message::Publish(m) => {
            m.options.insert("disclose_me".into(), true.into());
        }
        _ => {}
    }
}

/// What the dealer keeps of a joining session.
pub(super) fn dealer_peer(realm: &Realm, s: &SessionHandle) -> dealer::Peer {
    let features = dealer::Features {
        call_canceling: s.has_feature("callee", "call_canceling"),
        callee_progressive_invocations: s.has_feature("callee", dealer::PROGRESSIVE_INVOCATIONS),
        callee_passthru: s.has_feature("callee", ppt::FEATURE),
        caller_passthru: s.has_feature("caller", ppt::FEATURE),
    };
    dealer::Peer {
        realm: realm.name.as_str().into(),
        authid: s.identity.authid.clone(),
        authrole: s.identity.authrole.clone(),
        features,
    }
}

fn goodbye(reason: &str) -> Message {
    Message::Goodbye(Goodbye { details: Dict::new(), reason: reason.into() })
}

/// Dealer features announced in WELCOME: each is implemented and covered by the
/// interop suites (`tests/python/test_feature_announcements.py` and the test file named
/// after each feature, listed in the README's feature table).
pub const DEALER_FEATURES: &[&str] = &[
    "shared_registration",
    "pattern_based_registration",
    "caller_identification",
    "progressive_call_results",
    "progressive_call_invocations",
    "call_canceling",
    "call_timeout",
    "call_reroute",
    "registration_revocation",
    "session_meta_api",
    "registration_meta_api",
    "testament_meta_api",
    "payload_passthru_mode",
];

/// Broker features announced in WELCOME.
pub const BROKER_FEATURES: &[&str] = &[
    "publisher_exclusion",
    "publisher_identification",
    "subscriber_blackwhite_listing",
    "pattern_based_subscription",
    "session_meta_api",
    "subscription_meta_api",
    "event_retention",
    "event_history",
    "subscription_revocation",
    "payload_passthru_mode",
];

fn features(names: &[&str]) -> Dict {
    names.iter().map(|n| ((*n).to_owned(), Value::Bool(true))).collect()
}

fn welcome_details(me: &SessionHandle) -> Dict {
    let broker = dict! { "features" => features(BROKER_FEATURES) };
    let dealer = dict! { "features" => features(DEALER_FEATURES) };
    let id = &me.identity;
    dict! {
        "roles" => dict! { "broker" => broker, "dealer" => dealer },
        "agent" => AGENT,
        "authid" => id.authid.as_str(),
        "authrole" => id.authrole.as_str(),
        "authmethod" => id.authmethod.as_str(),
        "authprovider" => id.authprovider.as_str(),
    }
}

/// A random authid for an anonymous session, in Crossbar.io's style (`XXXX-XXXX-...`).
fn anonymous_authid() -> String {
    use rand::RngExt;
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ3456789";
    let mut rng = rand::rng();
    let mut s = String::with_capacity(29);
    for i in 0..24 {
        if i > 0 && i % 4 == 0 {
            s.push('-');
        }
        s.push(ALPHABET[rng.random_range(0..ALPHABET.len())] as char);
    }
    s
}
