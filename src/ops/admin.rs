//! The admin HTTP server, on its own port (`[admin] listen`, `--admin`):
//!
//! | route | answer |
//! | --- | --- |
//! | `GET /healthz` | 200 `ok` while the process runs (liveness) |
//! | `GET /readyz` | 200 `ready`, or 503 with the reason ([`super::health`]) |
//! | `GET /metrics` | Prometheus text 0.0.4, or OpenMetrics when the `Accept` header asks |
//! | `GET /api/status` | JSON: node, readiness, sessions per realm, Raft and cluster view |
//! | `GET /api/sessions[?realm=R]` | JSON list of the sessions joined on this node |
//! | `POST /api/sessions/{id}/kill` | GOODBYE to that session; optional JSON body `{"reason", "message"}` |
//! | `GET /api/stats` | JSON: this node's message, call and event counters ([`api::stats`]) |
//! | `GET /api/console-config` | JSON: the WebSocket URL and realm the console joins by default |
//! | `GET /console` | the web console (a WAMP client of the router, see `console/index.html`) |
//!
//! The server starts before the node joins the cluster (so liveness probes pass
//! while it joins); until [`super::attach`] hands it the router, `/readyz` answers
//! 503 and the API 503. It has no authentication: bind it to a private address.

use std::net::SocketAddr;
use std::sync::OnceLock;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, Request};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use tracing::Instrument;

use super::api::ConsoleConfig;
use super::{api, health, metrics, sampler, spans};
/// Default GOODBYE reason of a kill, as in the meta API.
const KILLED: &str = "wamp.close.killed";

/// What `/api/console-config` answers, set once the listeners are bound.
static CONSOLE: OnceLock<ConsoleConfig> = OnceLock::new();

/// Tells the console where this node's clients connect (once, by `main`).
pub fn set_console_config(config: ConsoleConfig) {
    CONSOLE.set(config).ok();
}

/// Binds the admin server, prints `listening admin http://ADDR` and serves in the
/// background. Returns the bound address.
pub async fn start(addr: SocketAddr) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    println!("listening admin http://{local}");
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app()).await {
            tracing::warn!(error = %e, "admin server stopped");
        }
    });
    Ok(local)
}

/// The admin routes.
pub fn app() -> axum::Router {
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

/// The web console: a static page that joins the router over WebSocket as a WAMP
/// client (`?url=ws://HOST:PORT/ws&realm=R`, optionally `&authid=A&ticket=T`; without
/// `url` it asks `/api/console-config`) and shows members, leader, sessions,
/// registrations, subscriptions and message rates.
async fn console() -> Response {
    const PAGE: &str = include_str!("console/index.html");
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], PAGE).into_response()
}

async fn console_config() -> Response {
    match CONSOLE.get() {
        Some(c) => Json(api::console_config(c)).into_response(),
        None => not_started(),
    }
}

async fn stats() -> Response {
    let Some(router) = sampler::router() else { return not_started() };
    Json(api::stats(&router)).into_response()
}

async fn readyz() -> Response {
    let router = sampler::router();
    let verdict = health::check(router.as_deref()).await;
    metrics::metrics().ready.set(i64::from(verdict.is_ok()));
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
    let Some(router) = sampler::router() else { return not_started() };
    let readiness = health::check_now(Some(&router));
    Json(api::status(&router, readiness)).into_response()
}

#[derive(Deserialize)]
struct SessionsQuery {
    realm: Option<String>,
}

async fn sessions(Query(q): Query<SessionsQuery>) -> Response {
    let Some(router) = sampler::router() else { return not_started() };
    Json(api::sessions(&router, q.realm.as_deref())).into_response()
}

#[derive(Deserialize, Default)]
struct KillBody {
    reason: Option<String>,
    message: Option<String>,
}

async fn kill(Path(id): Path<u64>, body: Bytes) -> Response {
    let Some(router) = sampler::router() else { return not_started() };
    let body: KillBody = if body.iter().all(u8::is_ascii_whitespace) {
        KillBody::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(b) => b,
            Err(e) => {
                let err = serde_json::json!({ "error": format!("invalid JSON body: {e}") });
                return (StatusCode::BAD_REQUEST, Json(err)).into_response();
            }
        }
    };
    let reason = body.reason.unwrap_or_else(|| KILLED.to_string());
    let message = body.message.unwrap_or_else(|| "killed through the admin API".to_string());
    if api::kill(&router, id, &reason, &message) {
        tracing::info!(session = id, reason = %reason, "session killed through the admin API");
        Json(serde_json::json!({ "killed": id })).into_response()
    } else {
        let err = serde_json::json!({ "error": format!("no session {id} on this node") });
        (StatusCode::NOT_FOUND, Json(err)).into_response()
    }
}
