//! The HTTP bridge (`[bridge]`): services that speak no WAMP publish and call over
//! HTTP POST, on a listener of its own, in the realm `bridge.realm`.
//!
//! | route | body | answer |
//! | --- | --- | --- |
//! | `POST {path}/publish` | `{"topic", "args", "kwargs", "options"}` | 200 `{"id"}` with `options.acknowledge`, else 202 `{"id"}` |
//! | `POST {path}/call` | `{"procedure", "args", "kwargs", "options": {"timeout": ms}}` | 200 `{"args", "kwargs"}` |
//! | `GET {path}/openapi.json` | | the OpenAPI 3 document of these routes |
//!
//! Each request is a short-lived session of the router ([`crate::router::bridge`]):
//! authorized by its role like a session's PUBLISH or CALL, routed across the
//! cluster. A WAMP error answers `{"error": URI, "args", "kwargs"}` with the status
//! of [`status_of`]; the bridge's own refusals have the same shape.
//!
//! Credentials, checked in this order:
//! - `Authorization: Bearer TICKET`: a static ticket principal of the realm
//!   (`[realms.auth.ticket.principals]`), the first (by authid) whose ticket matches;
//!   or else a JWT, verified by the realm's ticket method (`[realms.auth.ticket.jwt]`);
//! - `Authorization: Basic base64(AUTHID:TICKET)`: the realm's ticket method as a
//!   WAMP session logs in with it (static principals or the dynamic authenticator,
//!   [`bridge::ticket_login`]);
//! - Crossbar.io's signed requests: query parameters `key`, `timestamp` (UTC,
//!   `2011-10-14T16:59:51.123Z`), `seq`, `nonce` and `signature`, the URL-safe
//!   base64 of HMAC-SHA256 under the key's secret over key, timestamp, seq, nonce
//!   and the body, concatenated; `bridge.keys` give each key's role;
//! - nothing: `bridge.anonymous_role`, when set; else 401.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::body::Bytes;
use axum::extract::connect_info::Connected;
use axum::extract::{ConnectInfo, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::IncomingStream;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::json;
use sha2::Sha256;

use super::tls::Tls;
use crate::auth::secret::StoredTicket;
use crate::config::BridgeConfig;
use crate::router::Router;
use crate::router::bridge::{self, Answer};
use crate::router::handle::Identity;
use crate::wamp::errors;
use crate::wamp::message::Payload;
use crate::wamp::value::{Dict, Value};

/// The bridge's own refusals.
pub const UNAUTHENTICATED: &str = "junction.bridge.unauthenticated";
/// The body is larger than `bridge.max_body`.
pub const BODY_TOO_LARGE: &str = "junction.bridge.body_too_large";
/// The client address made more requests than `bridge.rate` allows.
pub const RATE_LIMITED: &str = "junction.bridge.rate_limited";
/// The body is not the JSON document the route expects.
pub const BAD_REQUEST: &str = "junction.bridge.bad_request";

/// No route at this path.
pub const NO_SUCH_ROUTE: &str = "junction.bridge.no_such_route";
/// The node is draining: new requests go to another node.
pub const DRAINING: &str = "junction.bridge.draining";

/// How long a TLS handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Client addresses the rate limiter remembers before it forgets the idle ones.
const TRACKED_ADDRESSES: usize = 10_000;

/// A signing key of `bridge.keys`, resolved.
struct Key {
    secret: Vec<u8>,
    who: Identity,
}

/// The bridge's state, shared by its requests.
struct Bridge {
    router: Arc<Router>,
    cfg: BridgeConfig,
    realm: String,
    keys: HashMap<String, Key>,
    /// The realm's static ticket principals: authid, role, ticket.
    tickets: Arc<Vec<(String, String, StoredTicket)>>,
    /// Token buckets by client address: tokens left, when last filled.
    buckets: Mutex<HashMap<IpAddr, (f64, Instant)>>,
    /// Signatures seen within the timestamp window (a replay is refused).
    seen: Mutex<HashMap<Vec<u8>, Instant>>,
}

/// The client's address (the `ConnectInfo` of both the TCP and the TLS listener).
#[derive(Clone, Copy, Debug)]
pub struct Peer(pub SocketAddr);

impl Connected<IncomingStream<'_, tokio::net::TcpListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, tokio::net::TcpListener>) -> Self {
        Peer(*stream.remote_addr())
    }
}

impl Connected<IncomingStream<'_, TlsListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, TlsListener>) -> Self {
        Peer(*stream.remote_addr())
    }
}

/// Accepted connections whose TLS handshake completed (each handshake runs in its
/// own task, so a slow client delays nobody else).
pub struct TlsListener {
    local: SocketAddr,
    ready: tokio::sync::mpsc::Receiver<(tokio_rustls::server::TlsStream<tokio::net::TcpStream>, SocketAddr)>,
}

impl TlsListener {
    fn new(listener: tokio::net::TcpListener, tls: Arc<Tls>) -> std::io::Result<TlsListener> {
        let local = listener.local_addr()?;
        let (tx, ready) = tokio::sync::mpsc::channel(64);
        tls.watch("bridge");
        tokio::spawn(async move {
            loop {
                let (stream, peer) = match listener.accept().await {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::debug!(error = %e, "bridge accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                if tx.is_closed() {
                    return;
                }
                let (tls, tx) = (tls.clone(), tx.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.accept(stream)).await {
                        Ok(Ok((stream, _))) => {
                            tx.send((stream, peer)).await.ok();
                        }
                        _ => tracing::debug!(%peer, "bridge TLS handshake failed"),
                    }
                });
            }
        });
        Ok(TlsListener { local, ready })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(c) => c,
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.local)
    }
}

/// Binds the bridge, prints `listening bridge http(s)://ADDR{path}` and serves in
/// the background. Returns the bound address.
pub async fn start(
    router: Arc<Router>,
    addr: SocketAddr,
    tls: Option<Arc<Tls>>,
) -> Result<SocketAddr, String> {
    let state = Arc::new(Bridge::new(router)?);
    let path = state.cfg.path.clone();
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| e.to_string())?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    println!("listening bridge {scheme}://{local}{path}");
    if tls.is_none() && !local.ip().is_loopback() {
        tracing::warn!(%local, "the HTTP bridge serves plain HTTP on a non-loopback address: tickets, signatures and bodies travel in clear (set [bridge.tls] or put it behind a TLS proxy)");
    }
    if let Some(role) = &state.cfg.anonymous_role {
        tracing::info!(role, "the HTTP bridge admits requests without credentials as this role");
    }
    let app = app(state.clone());
    let mut stop = state.router.shutdown_signal();
    let stopped = async move {
        stop.wait_for(|down| *down).await.ok();
    };
    match tls {
        None => {
            let service = app.into_make_service_with_connect_info::<Peer>();
            tokio::spawn(async move {
                if let Err(e) = axum::serve(listener, service).with_graceful_shutdown(stopped).await {
                    tracing::warn!(error = %e, "bridge stopped");
                }
            });
        }
        Some(tls) => {
            let listener = TlsListener::new(listener, tls).map_err(|e| e.to_string())?;
            let service = app.into_make_service_with_connect_info::<Peer>();
            tokio::spawn(async move {
                if let Err(e) = axum::serve(listener, service).with_graceful_shutdown(stopped).await {
                    tracing::warn!(error = %e, "bridge stopped");
                }
            });
        }
    }
    Ok(local)
}

fn app(state: Arc<Bridge>) -> axum::Router {
    let path = state.cfg.path.trim_end_matches('/').to_owned();
    axum::Router::new()
        .route(&format!("{path}/publish"), post(publish))
        .route(&format!("{path}/call"), post(call))
        .route(&format!("{path}/openapi.json"), get(openapi_route))
        .fallback(|| async { refusal(StatusCode::NOT_FOUND, NO_SUCH_ROUTE, "no such route") })
        .with_state(state)
}

impl Bridge {
    fn new(router: Arc<Router>) -> Result<Bridge, String> {
        let cfg = router.config.bridge.clone();
        let realm = router.config.bridge_realm().ok_or("the bridge has no realm")?.to_owned();
        let mut keys = HashMap::new();
        for k in &cfg.keys {
            let secret = k.secret.resolve().map_err(|e| format!("bridge key {:?}: {e}", k.key))?;
            let who = Identity {
                authid: k.authid.clone().unwrap_or_else(|| k.key.clone()),
                authrole: k.role.clone(),
                authmethod: "signature".into(),
                authprovider: "bridge".into(),
            };
            let secret = secret.expose().unwrap_or_default().as_bytes().to_vec();
            keys.insert(k.key.clone(), Key { secret, who });
        }
        let mut tickets = Vec::new();
        let principals = router
            .config
            .realms
            .iter()
            .find(|r| r.name == realm)
            .and_then(|r| r.auth.as_ref())
            .and_then(|a| a.ticket.as_ref())
            .map(|t| t.principals.clone())
            .unwrap_or_default();
        for (authid, p) in principals {
            let what = format!("ticket principal {authid:?}");
            let resolved = p.ticket.resolve().map_err(|e| format!("{what}: {e}"))?;
            let stored = StoredTicket::parse(resolved.expose().unwrap_or_default())
                .map_err(|e| format!("{what}: {e}"))?;
            tickets.push((authid, p.role, stored));
        }
        Ok(Bridge {
            router,
            cfg,
            realm,
            keys,
            tickets: Arc::new(tickets),
            buckets: Mutex::default(),
            seen: Mutex::default(),
        })
    }

    /// Takes a token of `ip`'s bucket; false when it is empty.
    fn admit(&self, ip: IpAddr, now: Instant) -> bool {
        let (rate, burst) = (self.cfg.rate, f64::from(self.cfg.burst));
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() >= TRACKED_ADDRESSES && !buckets.contains_key(&ip) {
            buckets.retain(|_, (tokens, at)| *tokens + now.duration_since(*at).as_secs_f64() * rate < burst);
            // none idle long enough to be full again: forget the one idle longest
            if buckets.len() >= TRACKED_ADDRESSES
                && let Some(oldest) = buckets.iter().min_by_key(|(_, (_, at))| *at).map(|(ip, _)| *ip)
            {
                buckets.remove(&oldest);
            }
        }
        let (tokens, at) = buckets.entry(ip).or_insert((burst, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * rate).min(burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Who the request is: by bearer ticket or JWT, Basic login, signature or the
    /// anonymous role.
    async fn authenticate(
        &self,
        peer: Peer,
        headers: &HeaderMap,
        query: &HashMap<String, String>,
        body: &[u8],
    ) -> Result<Identity, String> {
        if let Some(auth) = headers.get(header::AUTHORIZATION) {
            let value = auth.to_str().unwrap_or_default();
            if let Some(basic) = value.strip_prefix("Basic ").or_else(|| value.strip_prefix("basic ")) {
                let decoded = base64::engine::general_purpose::STANDARD
                    .decode(basic.trim())
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .ok_or("the Basic credentials are not base64 of AUTHID:TICKET")?;
                let (authid, ticket) =
                    decoded.split_once(':').ok_or("the Basic credentials are not AUTHID:TICKET")?;
                let (tls, peer) = (self.cfg.tls.is_some(), Some(peer.0));
                return bridge::ticket_login(&self.router, &self.realm, Some(authid), ticket, tls, peer)
                    .await;
            }
            let ticket = value
                .strip_prefix("Bearer ")
                .or_else(|| value.strip_prefix("bearer "))
                .map(|t| t.trim().to_owned())
                .ok_or("the Authorization header must be `Bearer TICKET` or `Basic base64(AUTHID:TICKET)`")?;
            let tickets = self.tickets.clone();
            let token = ticket.clone();
            let found = self
                .router
                .auth_work
                .run(move || {
                    tickets.iter().find(|(_, _, t)| t.verify(&ticket)).map(|(a, r, _)| (a.clone(), r.clone()))
                })
                .await
                .flatten();
            let Some((authid, authrole)) = found else {
                if looks_like_jwt(&token) {
                    // a JWT names its own authid: the realm's ticket method verifies
                    // it against the realm's keys (`[realms.auth.ticket.jwt]`)
                    let (tls, peer) = (self.cfg.tls.is_some(), Some(peer.0));
                    return bridge::ticket_login(&self.router, &self.realm, None, &token, tls, peer).await;
                }
                return Err("invalid ticket".into());
            };
            return Ok(Identity {
                authid,
                authrole,
                authmethod: "ticket".into(),
                authprovider: "static".into(),
            });
        }
        if query.contains_key("signature") || query.contains_key("key") {
            return self.verify_signature(query, body);
        }
        match &self.cfg.anonymous_role {
            Some(role) => Ok(Identity {
                authid: "anonymous".into(),
                authrole: role.clone(),
                authmethod: "anonymous".into(),
                authprovider: "static".into(),
            }),
            None => Err("credentials required: `Authorization: Bearer TICKET` or a signed request".into()),
        }
    }

    /// Crossbar.io's signed request: HMAC-SHA256(secret, key + timestamp + seq +
    /// nonce + body), URL-safe base64, within `timestamp_delta_limit` of now, once.
    fn verify_signature(&self, q: &HashMap<String, String>, body: &[u8]) -> Result<Identity, String> {
        let get =
            |name: &str| q.get(name).map(String::as_str).ok_or(format!("signed request without {name}"));
        let (key, timestamp, seq, nonce, signature) =
            (get("key")?, get("timestamp")?, get("seq")?, get("nonce")?, get("signature")?);
        let k = self.keys.get(key).ok_or("unknown key")?;
        if seq.parse::<u64>().is_err() || nonce.parse::<u64>().is_err() {
            return Err("seq and nonce must be integers".into());
        }
        let at = parse_utc(timestamp).ok_or("timestamp is not like 2011-10-14T16:59:51.123Z")?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        if at.abs_diff(now) > self.cfg.timestamp_delta_limit {
            return Err("timestamp too far from the router's clock".into());
        }
        let engine = base64::engine::GeneralPurpose::new(
            &base64::alphabet::URL_SAFE,
            base64::engine::GeneralPurposeConfig::new()
                .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
        );
        let sig = engine.decode(signature).map_err(|_| "signature is not URL-safe base64")?;
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&k.secret).map_err(|e| e.to_string())?;
        for part in [key.as_bytes(), timestamp.as_bytes(), seq.as_bytes(), nonce.as_bytes(), body] {
            mac.update(part);
        }
        mac.verify_slice(&sig).map_err(|_| "invalid signature")?;
        let window = Duration::from_secs(self.cfg.timestamp_delta_limit.saturating_mul(2).max(1));
        let now = Instant::now();
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.retain(|_, at| now.duration_since(*at) < window);
        if seen.insert(sig, now).is_some() {
            return Err("signed request replayed".into());
        }
        Ok(k.who.clone())
    }

    /// The steps every request takes before it reaches the router: rate limit,
    /// body limit, credentials, JSON body.
    async fn admit_request(
        &self,
        peer: Peer,
        req: Request,
    ) -> Result<(Identity, serde_json::Map<String, serde_json::Value>), Response> {
        if self.router.draining() {
            return Err(refusal(StatusCode::SERVICE_UNAVAILABLE, DRAINING, "the node is shutting down"));
        }
        if !self.admit(peer.0.ip(), Instant::now()) {
            return Err(refusal(
                StatusCode::TOO_MANY_REQUESTS,
                RATE_LIMITED,
                "too many requests from this address",
            ));
        }
        let too_large = || {
            let why = format!("the body is larger than {} bytes (bridge.max_body)", self.cfg.max_body);
            refusal(StatusCode::PAYLOAD_TOO_LARGE, BODY_TOO_LARGE, &why)
        };
        let length =
            req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
        if length.is_some_and(|n| n > self.cfg.max_body) {
            return Err(too_large());
        }
        let headers = req.headers().clone();
        let query =
            Query::<HashMap<String, String>>::try_from_uri(req.uri()).map(|q| q.0).unwrap_or_default();
        let body: Bytes =
            axum::body::to_bytes(req.into_body(), self.cfg.max_body).await.map_err(|_| too_large())?;
        let who = self
            .authenticate(peer, &headers, &query, &body)
            .await
            .map_err(|why| refusal(StatusCode::UNAUTHORIZED, UNAUTHENTICATED, &why))?;
        match serde_json::from_slice::<serde_json::Value>(&body) {
            Ok(serde_json::Value::Object(doc)) => Ok((who, doc)),
            _ => Err(refusal(StatusCode::BAD_REQUEST, BAD_REQUEST, "the body must be a JSON object")),
        }
    }
}

/// The URI, payload and options of a request body, or why it is not one.
fn parts(
    doc: &serde_json::Map<String, serde_json::Value>,
    uri_key: &str,
) -> Result<(String, Payload, Dict), String> {
    let uri = doc
        .get(uri_key)
        .and_then(|v| v.as_str())
        .ok_or_else(|| format!("{uri_key:?} (a string) is required"))?;
    let field = |name: &str, want_list: bool| -> Result<Option<Value>, String> {
        match doc.get(name) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(v) if (want_list && v.is_array()) || (!want_list && v.is_object()) => {
                serde_json::from_value::<Value>(v.clone()).map(Some).map_err(|e| format!("{name}: {e}"))
            }
            Some(_) => Err(format!("{name:?} must be {}", if want_list { "a list" } else { "an object" })),
        }
    };
    let args = field("args", true)?.and_then(|v| v.as_list().cloned());
    let kwargs = field("kwargs", false)?.and_then(|v| v.as_dict().cloned());
    let options = field("options", false)?.and_then(|v| v.as_dict().cloned()).unwrap_or_default();
    Ok((uri.to_owned(), Payload::new(args, kwargs), options))
}

async fn publish(
    State(b): State<Arc<Bridge>>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    req: Request,
) -> Response {
    let (who, doc) = match b.admit_request(peer, req).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    let (topic, payload, options) = match parts(&doc, "topic") {
        Ok(p) => p,
        Err(why) => return refusal(StatusCode::BAD_REQUEST, BAD_REQUEST, &why),
    };
    let acknowledge = options.get("acknowledge").and_then(Value::as_bool).unwrap_or(false);
    match bridge::publish(&b.router, &b.realm, who, topic, payload, options).await {
        Answer::Published(id) => {
            let status = if acknowledge { StatusCode::OK } else { StatusCode::ACCEPTED };
            (status, Json(json!({ "id": id.0 }))).into_response()
        }
        Answer::Error(uri, payload) => error_response(&uri, payload),
        Answer::Result(_) => {
            refusal(StatusCode::INTERNAL_SERVER_ERROR, errors::CANCELED, "unexpected answer")
        }
    }
}

async fn call(State(b): State<Arc<Bridge>>, ConnectInfo(peer): ConnectInfo<Peer>, req: Request) -> Response {
    let (who, doc) = match b.admit_request(peer, req).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    let (procedure, payload, options) = match parts(&doc, "procedure") {
        Ok(p) => p,
        Err(why) => return refusal(StatusCode::BAD_REQUEST, BAD_REQUEST, &why),
    };
    let most = b.cfg.call_timeout_ms;
    let ms = options.get("timeout").and_then(Value::as_u64).filter(|&t| t > 0).map_or(most, |t| t.min(most));
    match bridge::call(&b.router, &b.realm, who, procedure, payload, options, Duration::from_millis(ms)).await
    {
        Answer::Result(p) => (StatusCode::OK, Json(payload_json(p))).into_response(),
        Answer::Error(uri, payload) => error_response(&uri, payload),
        Answer::Published(_) => {
            refusal(StatusCode::INTERNAL_SERVER_ERROR, errors::CANCELED, "unexpected answer")
        }
    }
}

async fn openapi_route(State(b): State<Arc<Bridge>>) -> Response {
    Json(openapi(&b.cfg.path)).into_response()
}

fn payload_json(p: Payload) -> serde_json::Value {
    let p = p.into_arguments();
    let args = serde_json::to_value(Value::List(p.args.unwrap_or_default())).unwrap_or_default();
    let kwargs = serde_json::to_value(Value::Dict(p.kwargs.unwrap_or_default())).unwrap_or_default();
    json!({ "args": args, "kwargs": kwargs })
}

/// The HTTP status of a WAMP error:
///
/// | error | status |
/// | --- | --- |
/// | `wamp.error.invalid_argument`, `invalid_uri`, `protocol_violation` | 400 |
/// | `wamp.error.not_authorized`, `authorization_failed` | 403 |
/// | `wamp.error.no_such_procedure`, `no_such_realm` | 404 |
/// | `wamp.error.unavailable`, `no_available_callee`, `junction.error.cluster_unavailable` | 503 |
/// | `wamp.error.canceled`, `wamp.error.timeout` | 504 |
/// | any other `wamp.error.*` or `junction.*` (the router's) | 500 |
/// | any other URI (the callee's application error) | 502 |
pub fn status_of(uri: &str) -> StatusCode {
    match uri {
        errors::INVALID_ARGUMENT | errors::INVALID_URI | "wamp.error.protocol_violation" => {
            StatusCode::BAD_REQUEST
        }
        errors::NOT_AUTHORIZED | "wamp.error.authorization_failed" => StatusCode::FORBIDDEN,
        errors::NO_SUCH_PROCEDURE | errors::NO_SUCH_REALM => StatusCode::NOT_FOUND,
        errors::UNAVAILABLE | errors::NO_AVAILABLE_CALLEE | errors::CLUSTER_UNAVAILABLE => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        errors::CANCELED | errors::TIMEOUT => StatusCode::GATEWAY_TIMEOUT,
        u if u.starts_with("wamp.") || u.starts_with("junction.") => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::BAD_GATEWAY,
    }
}

fn error_response(uri: &str, payload: Payload) -> Response {
    let mut doc = payload_json(payload);
    doc["error"] = uri.into();
    (status_of(uri), Json(doc)).into_response()
}

fn refusal(status: StatusCode, uri: &str, why: &str) -> Response {
    (status, Json(json!({ "error": uri, "args": [why], "kwargs": {} }))).into_response()
}

/// Seconds since the epoch of a UTC timestamp like `2011-10-14T16:59:51.123Z`
/// (the fraction optional).
pub fn parse_utc(s: &str) -> Option<i64> {
    let s = s.strip_suffix('Z')?;
    let (date, time) = s.split_once('T')?;
    let num = |t: &str| t.parse::<i64>().ok();
    let mut d = date.split('-');
    let (y, m, day) = (num(d.next()?)?, num(d.next()?)?, num(d.next()?)?);
    let time = time.split('.').next()?;
    let mut t = time.split(':');
    let (h, min, sec) = (num(t.next()?)?, num(t.next()?)?, num(t.next()?)?);
    if d.next().is_some() || t.next().is_some() || !(1..=12).contains(&m) || !(1..=31).contains(&day) {
        return None;
    }
    if h > 23 || min > 59 || sec > 60 {
        return None;
    }
    // days from the civil date (Howard Hinnant's algorithm)
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + h * 3600 + min * 60 + sec)
}

/// The OpenAPI 3 document of the bridge's routes under `path`.
pub fn openapi(path: &str) -> serde_json::Value {
    let path = path.trim_end_matches('/');
    let error = json!({ "$ref": "#/components/schemas/Error" });
    let answer = |description: &str, schema: &serde_json::Value| json!({ "description": description, "content": { "application/json": { "schema": schema } } });
    let refusals = |ok: serde_json::Value| {
        let mut r = ok;
        for (code, what) in [
            ("400", "the body is not the expected JSON object, or wamp.error.invalid_argument / invalid_uri"),
            ("401", "no or wrong credentials (junction.bridge.unauthenticated)"),
            ("403", "the role may not do this (wamp.error.not_authorized)"),
            ("413", "the body is larger than bridge.max_body (junction.bridge.body_too_large)"),
            ("429", "too many requests from this address (junction.bridge.rate_limited)"),
            ("500", "another error of the router"),
            ("503", "the node is draining (junction.bridge.draining), or no callee is available"),
        ] {
            r[code] = answer(what, &error);
        }
        r
    };
    let publish_ok = json!({
        "200": answer("published, acknowledged (options.acknowledge)", &json!({ "$ref": "#/components/schemas/Published" })),
        "202": answer("published", &json!({ "$ref": "#/components/schemas/Published" })),
    });
    let mut call_ok = json!({ "200": answer("the call's final result", &json!({ "$ref": "#/components/schemas/Result" })) });
    for (code, what) in [
        ("404", "wamp.error.no_such_procedure"),
        ("502", "the callee answered with an application error"),
        ("503", "wamp.error.unavailable / no_available_callee: no callee could serve it"),
        ("504", "wamp.error.canceled / wamp.error.timeout"),
    ] {
        call_ok[code] = answer(what, &error);
    }
    let body = |schema: &str| json!({ "required": true, "content": { "application/json": { "schema": { "$ref": format!("#/components/schemas/{schema}") } } } });
    let signed = ["key", "timestamp", "seq", "nonce", "signature"]
        .iter()
        .map(|name| json!({ "name": name, "in": "query", "required": false, "schema": { "type": "string" } }))
        .collect::<Vec<_>>();
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "Junction HTTP bridge",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Publish and call in the router's realm over HTTP. Credentials: `Authorization: Bearer TICKET` (a ticket principal of the realm), `Authorization: Basic` AUTHID:TICKET (the realm's ticket method) or a Crossbar.io-style signed request (query parameters key, timestamp, seq, nonce, signature)."
        },
        "paths": {
            format!("{path}/publish"): {
                "post": {
                    "operationId": "publish",
                    "summary": "Publish an event to the subscribers on every node",
                    "parameters": signed,
                    "requestBody": body("PublishRequest"),
                    "responses": refusals(publish_ok),
                    "security": [{ "ticket": [] }, { "login": [] }, {}]
                }
            },
            format!("{path}/call"): {
                "post": {
                    "operationId": "call",
                    "summary": "Call a procedure registered on any node",
                    "parameters": signed,
                    "requestBody": body("CallRequest"),
                    "responses": refusals(call_ok),
                    "security": [{ "ticket": [] }, { "login": [] }, {}]
                }
            },
            format!("{path}/openapi.json"): {
                "get": {
                    "operationId": "openapi",
                    "summary": "This document",
                    "responses": { "200": { "description": "the OpenAPI document", "content": { "application/json": {} } } }
                }
            }
        },
        "components": {
            "securitySchemes": {
                "ticket": { "type": "http", "scheme": "bearer" },
                "login": { "type": "http", "scheme": "basic", "description": "AUTHID:TICKET, by the realm's ticket method" }
            },
            "schemas": {
                "PublishRequest": {
                    "type": "object",
                    "required": ["topic"],
                    "properties": {
                        "topic": { "type": "string" },
                        "args": { "type": "array", "items": {} },
                        "kwargs": { "type": "object" },
                        "options": { "type": "object", "description": "PUBLISH options: acknowledge, retain, exclude/eligible (and _authid, _authrole), disclose_me" }
                    }
                },
                "CallRequest": {
                    "type": "object",
                    "required": ["procedure"],
                    "properties": {
                        "procedure": { "type": "string" },
                        "args": { "type": "array", "items": {} },
                        "kwargs": { "type": "object" },
                        "options": {
                            "type": "object",
                            "properties": { "timeout": { "type": "integer", "description": "milliseconds, at most bridge.call_timeout_ms" } }
                        }
                    }
                },
                "Published": { "type": "object", "required": ["id"], "properties": { "id": { "type": "integer" } } },
                "Result": {
                    "type": "object",
                    "required": ["args", "kwargs"],
                    "properties": { "args": { "type": "array", "items": {} }, "kwargs": { "type": "object" } }
                },
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {
                        "error": { "type": "string", "description": "the WAMP error URI" },
                        "args": { "type": "array", "items": {} },
                        "kwargs": { "type": "object" }
                    }
                }
            }
        }
    })
}

/// Three base64url segments separated by dots: a JWT (a static ticket never is one
/// when JWT tickets are configured: the realm's ticket method tells them apart the
/// same way).
fn looks_like_jwt(token: &str) -> bool {
    let parts: Vec<&str> = token.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crossbar_timestamps_parse() {
        assert_eq!(parse_utc("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_utc("2011-10-14T16:59:51.123Z"), Some(1_318_611_591));
        assert_eq!(parse_utc("2024-02-29T12:00:00.5Z"), Some(1_709_208_000));
        assert_eq!(parse_utc("2011-10-14 16:59:51Z"), None);
        assert_eq!(parse_utc("2011-13-14T16:59:51Z"), None);
    }

    #[test]
    fn the_rate_limiter_refills_and_stays_bounded() {
        let router = Router::new(crate::config::Config::default(), crate::ids::NodeId(1));
        let mut b = Bridge::new(router).expect("bridge");
        b.cfg.burst = 2;
        b.cfg.rate = 1.0;
        let (ip, t0) = (IpAddr::from([10, 0, 0, 1]), Instant::now());
        assert!(b.admit(ip, t0) && b.admit(ip, t0));
        assert!(!b.admit(ip, t0), "the burst is spent");
        assert!(b.admit(ip, t0 + Duration::from_millis(1100)), "one token a second");
        for i in 0..(TRACKED_ADDRESSES as u32 + 10) {
            assert!(b.admit(IpAddr::from(i.to_be_bytes()), t0), "a new address gets its burst");
        }
        assert!(b.buckets.lock().unwrap().len() <= TRACKED_ADDRESSES);
    }

    #[test]
    fn errors_map_to_statuses() {
        assert_eq!(status_of(errors::NO_SUCH_PROCEDURE), StatusCode::NOT_FOUND);
        assert_eq!(status_of(errors::NOT_AUTHORIZED), StatusCode::FORBIDDEN);
        assert_eq!(status_of(errors::INVALID_ARGUMENT), StatusCode::BAD_REQUEST);
        assert_eq!(status_of(errors::CANCELED), StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(status_of(errors::TIMEOUT), StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(status_of("com.example.oops"), StatusCode::BAD_GATEWAY);
        assert_eq!(status_of("wamp.error.something_else"), StatusCode::INTERNAL_SERVER_ERROR);
    }
}
