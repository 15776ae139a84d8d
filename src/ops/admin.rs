//! The admin HTTP server, on its own port (`[admin] listen`, `--admin`):
//!
//! | route | answer |
//! | --- | --- |
//! | `GET /healthz` | 200 `ok` while the process runs (liveness); public |
//! | `GET /readyz` | 200 `ready`, or 503 with the reason: the node can serve clients (listeners up, joined once, not fenced, not draining); `?cluster=1`: cluster health (member, leader known, caught up, not fenced); public |
//! | `GET /metrics` | Prometheus text 0.0.4, or OpenMetrics when the `Accept` header asks; public with `metrics_public` |
//! | `GET /api/status` | JSON: node, readiness, sessions per realm, Raft and cluster view |
//! | `GET /api/sessions[?realm=R]` | JSON list of the sessions joined on this node |
//! | `POST /api/sessions/{id}/kill` | GOODBYE to that session; `Content-Type: application/json`, body `{"reason", "message"}` (both optional: `{}` or empty) |
//! | `GET /api/stats` | JSON: this node's message, call and event counters |
//! | `GET /api/console-config` | JSON: this node's WebSocket URL as the browser reaches it (from the `Host` header, [`api::browser_url`]) and the realm the console joins by default |
//! | `GET /console` | the web console (a WAMP client of the router, see `console/index.html`) |
//!
//! Everything but the public routes needs `Authorization: Bearer TOKEN`, a `Host`
//! this server answers to and no foreign `Origin`; changes need a JSON body
//! ([`guard`]). Without a configured token only the public routes answer.
//!
//! The server starts before the node joins the cluster (so liveness probes pass
//! while it joins); until [`super::attach`] hands it the router (as a
//! [`StatusSource`](crate::observe::status::StatusSource)), `/readyz` answers 503
//! and the API 503. The JSON documents are the router's.

pub mod guard;

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, Request};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use tracing::Instrument;

pub use self::guard::{Guard, Refusal};
use super::api::ConsoleConfig;
use super::{api, sampler};
use crate::observe::{metrics, spans};

/// Default GOODBYE reason of a kill, as in the meta API.
const KILLED: &str = "wamp.close.killed";

/// What `/api/console-config` answers, set once the listeners are bound.
static CONSOLE: OnceLock<ConsoleConfig> = OnceLock::new();

/// The admin server's bound address (for the console's WebSocket URL).
static BOUND: OnceLock<SocketAddr> = OnceLock::new();

/// Tells the console where this node's clients connect (once, by `main`).
pub fn set_console_config(config: ConsoleConfig) {
    CONSOLE.set(config).ok();
}

/// Binds the admin server, prints `listening admin http://ADDR` and serves in the
/// background, admitting requests by `guard`. Returns the bound address.
pub async fn start(addr: SocketAddr, guard: Guard) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    BOUND.set(local).ok();
    println!("listening admin http://{local}");
    let app = app(Arc::new(guard));
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::warn!(error = %e, "admin server stopped");
        }
    });
    Ok(local)
}

/// The admin routes behind the guard.
pub fn app(guard: Arc<Guard>) -> axum::Router {
    let api = axum::Router::new()
        .route("/api/status", get(status))
        .route("/api/sessions", get(sessions))
        .route("/api/sessions/{id}/kill", post(kill))
        .route("/api/stats", get(stats))
        .route("/api/console-config", get(console_config))
        .layer(middleware::from_fn(traced));
    axum::Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(prometheus))
        .route("/console", get(console))
        .merge(api)
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(guard, guard::check))
}

async fn not_found() -> Response {
    (StatusCode::NOT_FOUND, Json(serde_json::json!({ "error": "no such route" }))).into_response()
}

/// Wraps an API request in a span (exported when tracing is on).
async fn traced(req: Request, next: Next) -> Response {
    if !spans::enabled() {
        return next.run(req).await;
    }
    let (method, path) = (req.method().to_string(), req.uri().path().to_string());
    let span = spans::admin_span(&method, &path);
    async move {
        tracing::debug!(method = %method, path = %path, "admin request");
        next.run(req).await
    }
    .instrument(span)
    .await
}

/// The web console: a static page that asks for the admin token (kept in the tab's
/// `sessionStorage`, sent as `Authorization: Bearer` to `/api/console-config`),
/// joins the router over WebSocket as a WAMP client (`?url=ws://HOST:PORT/ws&realm=R`
/// or what `/api/console-config` says; anonymous, or ticket authentication typed
/// into the page) and shows members, leader, sessions, registrations (with their
/// callees' nodes), subscriptions, links, and charts of every node's rates and call
/// latency; with the admin role it can kill a session.
async fn console() -> Response {
    console_page()
}

/// The console page, also the body of a `/console` answered 401 (the login form).
fn console_page() -> Response {
    const PAGE: &str = include_str!("console/index.html");
    let headers = [
        (header::CONTENT_TYPE, "text/html; charset=utf-8"),
        (header::CACHE_CONTROL, "no-store"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
    ];
    (headers, PAGE).into_response()
}

async fn console_config(uri: Uri, headers: HeaderMap) -> Response {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let host = host.or_else(|| uri.authority().map(|a| a.as_str()));
    match CONSOLE.get() {
        Some(c) => Json(api::console_config(c, host, BOUND.get().copied())).into_response(),
        None => not_started(),
    }
}

async fn stats() -> Response {
    let Some(source) = sampler::source() else { return not_started() };
    Json(source.stats()).into_response()
}

/// `?cluster=1` asks for cluster health instead of "can serve clients".
#[derive(Deserialize, Default)]
struct ReadyQuery {
    cluster: Option<String>,
}

async fn readyz(Query(q): Query<ReadyQuery>) -> Response {
    let cluster = q.cluster.is_some_and(|v| !matches!(v.as_str(), "" | "0" | "false"));
    let verdict = match sampler::source() {
        Some(source) if cluster => source.cluster_readiness().await,
        Some(source) => source.readiness().await,
        None => Err(sampler::not_started()),
    };
    if !cluster {
        metrics::metrics().ready.set(i64::from(verdict.is_ok()));
    }
    match verdict {
        Ok(()) => (StatusCode::OK, "ready\n").into_response(),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")).into_response(),
    }
}

async fn prometheus(headers: HeaderMap) -> Response {
    sampler::maybe_refresh();
    let m = metrics::metrics();
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or_default();
    if accept.contains("application/openmetrics-text") {
        let ct = "application/openmetrics-text; version=1.0.0; charset=utf-8";
        ([(header::CONTENT_TYPE, ct)], m.render_openmetrics()).into_response()
    } else {
        ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], m.render_prometheus())
            .into_response()
    }
}

fn not_started() -> Response {
    (StatusCode::SERVICE_UNAVAILABLE, Json(serde_json::json!({ "error": "the router has not started yet" })))
        .into_response()
}

async fn status() -> Response {
    let Some(source) = sampler::source() else { return not_started() };
    let readiness = source.readiness_now();
    Json(source.status(readiness)).into_response()
}

#[derive(Deserialize)]
struct SessionsQuery {
    realm: Option<String>,
}

async fn sessions(Query(q): Query<SessionsQuery>) -> Response {
    let Some(source) = sampler::source() else { return not_started() };
    Json(source.sessions(q.realm.as_deref())).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KillBody {
    reason: Option<String>,
    message: Option<String>,
}

async fn kill(Path(id): Path<u64>, body: Bytes) -> Response {
    let Some(source) = sampler::source() else { return not_started() };
    // The guard let only `Content-Type: application/json` through; no body at all
    // means the defaults, as `{}` does.
    let body: &[u8] = if body.iter().all(u8::is_ascii_whitespace) { b"{}" } else { &body };
    let body: KillBody = match serde_json::from_slice(body) {
        Ok(b) => b,
        Err(e) => {
            let err = serde_json::json!({ "error": format!("the body must be a JSON object ({{}} for the defaults): {e}") });
            return (StatusCode::BAD_REQUEST, Json(err)).into_response();
        }
    };
    let reason = body.reason.unwrap_or_else(|| KILLED.to_string());
    let message = body.message.unwrap_or_else(|| "killed through the admin API".to_string());
    if source.kill(id, &reason, &message) {
        tracing::info!(session = id, reason = %reason, "session killed through the admin API");
        Json(serde_json::json!({ "killed": id })).into_response()
    } else {
        let err = serde_json::json!({ "error": format!("no session {id} on this node") });
        (StatusCode::NOT_FOUND, Json(err)).into_response()
    }
}
