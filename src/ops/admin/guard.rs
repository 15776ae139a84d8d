//! Who may use the admin HTTP server. Every request except `GET /healthz`,
//! `/readyz` (and `/metrics` with `[admin] metrics_public = true`) must pass, in
//! this order:
//!
//! 1. `Host` (or the HTTP/2 authority) is an IP literal, `localhost` or one of
//!    `[admin] allowed_hosts`, else 403: a DNS-rebinding page names its own host.
//! 2. `Origin`, when present, is the server's own (`http(s)://` + `Host`) or one of
//!    `[admin] allowed_origins`, else 403: no cross-site request is served.
//! 3. `Authorization: Bearer TOKEN` carries the admin token (`[admin] token_file`
//!    or `JUNCTION_ADMIN_TOKEN`), compared in constant time, else 401 with
//!    `WWW-Authenticate: Bearer`. Without a configured token nothing passes: the
//!    server is closed by default.
//! 4. A request that changes something (any method but GET and HEAD) has
//!    `Content-Type: application/json`, else 415: an HTML form or a "simple"
//!    cross-site request can never be one.
//!
//! The token is never ambient (no cookie, no cached Basic credentials): a browser
//! sends it only when a page's script that knows it does, so a foreign page cannot
//! borrow it.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use axum::Json;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::auth::encoding::ct_eq_secret;
use crate::config::{ADMIN_TOKEN_ENV, ADMIN_TOKEN_FILE_ENV, AdminConfig, ConfigError};

/// Tokens shorter than this are accepted with a warning.
const SHORT_TOKEN: usize = 16;

/// The admin server's access rules, built once from `[admin]`.
#[derive(Debug)]
pub struct Guard {
    token: Option<String>,
    metrics_public: bool,
    allowed_hosts: Vec<String>,
    allowed_origins: Vec<String>,
}

/// Why a request is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The `Host` header names a host this server does not answer to.
    #[error("Host {0:?} is not an IP address, localhost or one of [admin] allowed_hosts")]
    Host(String),
    /// The request comes from a foreign web page.
    #[error("requests from origin {0:?} are refused (see [admin] allowed_origins)")]
    Origin(String),
    /// No token is configured: the API is closed.
    #[error(
        "the admin API is closed: no token is configured ([admin] token_file, {ADMIN_TOKEN_ENV} or \
         {ADMIN_TOKEN_FILE_ENV})"
    )]
    Closed,
    /// No `Authorization: Bearer` header.
    #[error("an Authorization: Bearer token is required")]
    Missing,
    /// A token that is not the admin token.
    #[error("the token is wrong")]
    Wrong,
    /// A change sent as something else than JSON.
    #[error("changes are accepted only with Content-Type: application/json")]
    NotJson,
}

impl Refusal {
    /// The HTTP status of the refusal.
    pub fn status(&self) -> StatusCode {
        match self {
            Refusal::Host(_) | Refusal::Origin(_) => StatusCode::FORBIDDEN,
            Refusal::Closed | Refusal::Missing | Refusal::Wrong => StatusCode::UNAUTHORIZED,
            Refusal::NotJson => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let body = Json(serde_json::json!({ "error": self.to_string() }));
        let mut response = (self.status(), body).into_response();
        let challenge = match self {
            Refusal::Wrong => Some(r#"Bearer realm="junction-admin", error="invalid_token""#),
            Refusal::Closed | Refusal::Missing => Some(r#"Bearer realm="junction-admin""#),
            _ => None,
        };
        if let Some(c) = challenge {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(c));
        }
        response
    }
}

impl Guard {
    /// The rules of `[admin]`, with the token from `JUNCTION_ADMIN_TOKEN` or
    /// `token_file`.
    pub fn from_config(admin: &AdminConfig) -> Result<Guard, ConfigError> {
        Ok(Guard::new(admin, admin.token()?))
    }

    /// The rules of `[admin]` with this token (`None`: closed).
    pub fn new(admin: &AdminConfig, token: Option<String>) -> Guard {
        let norm = |s: &String| s.trim().trim_end_matches(['.', '/']).to_ascii_lowercase();
        Guard {
            token,
            metrics_public: admin.metrics_public,
            allowed_hosts: admin.allowed_hosts.iter().map(norm).collect(),
            allowed_origins: admin.allowed_origins.iter().map(norm).collect(),
        }
    }

    /// Whether a token is configured.
    pub fn has_token(&self) -> bool {
        self.token.is_some()
    }

    /// Whether the configured token is shorter than advisable.
    pub fn token_is_short(&self) -> bool {
        self.token.as_ref().is_some_and(|t| t.len() < SHORT_TOKEN)
    }

    /// Routes served to anyone who reaches the port.
    pub fn is_public(&self, method: &Method, path: &str) -> bool {
        let read = method == Method::GET || method == Method::HEAD;
        read && (path == "/healthz" || path == "/readyz" || (self.metrics_public && path == "/metrics"))
    }

    /// Applies the rules to a request that is not public.
    pub fn admit(&self, method: &Method, uri: &Uri, headers: &HeaderMap) -> Result<(), Refusal> {
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| uri.authority().map(|a| a.as_str()))
            .unwrap_or_default();
        if !self.host_allowed(host) {
            return Err(Refusal::Host(host.to_owned()));
        }
        if let Some(origin) = headers.get(header::ORIGIN) {
            let origin = origin.to_str().unwrap_or("?");
            if !self.origin_allowed(origin, host) {
                return Err(Refusal::Origin(origin.to_owned()));
            }
        }
        self.authenticate(headers)?;
        if method != Method::GET && method != Method::HEAD && !is_json(headers) {
            return Err(Refusal::NotJson);
        }
        Ok(())
    }

    /// Checks the `Authorization: Bearer` header against the token.
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<(), Refusal> {
        let Some(expected) = &self.token else { return Err(Refusal::Closed) };
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .ok_or(Refusal::Missing)?;
        if ct_eq_secret(presented.as_bytes(), expected.as_bytes()) { Ok(()) } else { Err(Refusal::Wrong) }
    }

    /// An IP literal, `localhost` or an allowed name, with or without a port.
    fn host_allowed(&self, host: &str) -> bool {
        if let Some(rest) = host.strip_prefix('[') {
            let Some((ip, port)) = rest.split_once(']') else { return false };
            return ip.parse::<Ipv6Addr>().is_ok() && (port.is_empty() || is_port(port.strip_prefix(':')));
        }
        let name = match host.rsplit_once(':') {
            Some((name, port)) if is_port(Some(port)) => name,
            Some(_) => return false,
            None => host,
        };
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        !name.is_empty()
            && (name.parse::<Ipv4Addr>().is_ok() || name == "localhost" || self.allowed_hosts.contains(&name))
    }

    /// The server's own origin (as the browser reached it) or an allowed one.
    fn origin_allowed(&self, origin: &str, host: &str) -> bool {
        let origin = origin.trim().trim_end_matches('/').to_ascii_lowercase();
        let host = host.to_ascii_lowercase();
        let own = origin.strip_prefix("http://").or_else(|| origin.strip_prefix("https://"));
        own == Some(host.as_str()) || self.allowed_origins.contains(&origin)
    }
}

fn is_port(port: Option<&str>) -> bool {
    port.is_some_and(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()))
}

/// `Content-Type: application/json`, with or without parameters.
fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"))
}

/// The middleware: public routes pass, the rest must be admitted. A browser that
/// opens `/console` without the token gets the console page with the 401 (the page
/// asks for the token; it shows nothing without it).
pub async fn check(State(guard): State<Arc<Guard>>, req: Request, next: Next) -> Response {
    if guard.is_public(req.method(), req.uri().path()) {
        return next.run(req).await;
    }
    match guard.admit(req.method(), req.uri(), req.headers()) {
        Ok(()) => next.run(req).await,
        Err(refusal) => {
            let path = req.uri().path();
            if refusal == Refusal::Wrong {
                tracing::warn!(method = %req.method(), path, "admin request with a wrong token");
            } else {
                tracing::debug!(method = %req.method(), path, %refusal, "admin request refused");
            }
            let login = matches!(refusal, Refusal::Closed | Refusal::Missing | Refusal::Wrong);
            let console = login && req.method() == Method::GET && path == "/console";
            let refused = refusal.into_response();
            if !console {
                return refused;
            }
            let mut page = super::console_page();
            *page.status_mut() = refused.status();
            if let Some(challenge) = refused.headers().get(header::WWW_AUTHENTICATE) {
                page.headers_mut().insert(header::WWW_AUTHENTICATE, challenge.clone());
            }
            page
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(token: Option<&str>) -> Guard {
        let admin = AdminConfig {
            allowed_hosts: vec!["Admin.Example.com".into()],
            allowed_origins: vec!["https://console.example.com/".into()],
            ..AdminConfig::default()
        };
        Guard::new(&admin, token.map(str::to_owned))
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    fn admit(g: &Guard, method: Method, pairs: &[(&'static str, &str)]) -> Result<(), Refusal> {
        g.admit(&method, &Uri::from_static("/api/sessions"), &headers(pairs))
    }

    const OK: &str = "Bearer s3cret-token-of-some-length";

    #[test]
    fn hosts_are_ip_literals_localhost_or_allowed_names() {
        let g = guard(Some("s3cret-token-of-some-length"));
        for host in [
            "127.0.0.1:8090",
            "10.1.2.3",
            "[::1]:8090",
            "[fe80::1]",
            "localhost:8090",
            "LOCALHOST",
            "admin.example.com",
            "admin.example.com.:80",
        ] {
            assert_eq!(admit(&g, Method::GET, &[("host", host), ("authorization", OK)]), Ok(()), "{host}");
        }
        for host in [
            "evil.example",
            "evil.example:8090",
            "127.0.0.1.evil.example",
            "[::1",
            "[::1]x",
            "localhost:80x",
            "",
            "admin.example.com.evil",
        ] {
            let refused = admit(&g, Method::GET, &[("host", host), ("authorization", OK)]);
            assert_eq!(refused, Err(Refusal::Host(host.into())), "{host}");
        }
    }

    #[test]
    fn origins_are_the_servers_own_or_allowed() {
        let g = guard(Some("s3cret-token-of-some-length"));
        let host = ("host", "127.0.0.1:8090");
        for origin in ["http://127.0.0.1:8090", "https://127.0.0.1:8090", "https://console.example.com"] {
            assert_eq!(admit(&g, Method::GET, &[host, ("origin", origin), ("authorization", OK)]), Ok(()));
        }
        for origin in ["http://evil.example", "http://127.0.0.1:8091", "null", "http://127.0.0.1"] {
            let refused = admit(&g, Method::GET, &[host, ("origin", origin), ("authorization", OK)]);
            assert_eq!(refused, Err(Refusal::Origin(origin.into())), "{origin}");
        }
    }

    #[test]
    fn the_bearer_token_must_match_and_a_missing_token_closes_everything() {
        let g = guard(Some("s3cret-token-of-some-length"));
        let host = ("host", "localhost");
        assert_eq!(admit(&g, Method::GET, &[host]), Err(Refusal::Missing));
        assert_eq!(
            admit(&g, Method::GET, &[host, ("authorization", "Basic czNjcmV0")]),
            Err(Refusal::Missing)
        );
        assert_eq!(admit(&g, Method::GET, &[host, ("authorization", "Bearer nope")]), Err(Refusal::Wrong));
        assert_eq!(
            admit(&g, Method::GET, &[host, ("authorization", "bearer  s3cret-token-of-some-length")]),
            Ok(())
        );
        let closed = guard(None);
        assert_eq!(admit(&closed, Method::GET, &[host, ("authorization", OK)]), Err(Refusal::Closed));
        assert_eq!(Refusal::Closed.status(), StatusCode::UNAUTHORIZED);
    }

    #[test]
    fn changes_must_be_json() {
        let g = guard(Some("s3cret-token-of-some-length"));
        let base = [("host", "localhost"), ("authorization", OK)];
        for ct in ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"] {
            let mut h = base.to_vec();
            h.push(("content-type", ct));
            assert_eq!(admit(&g, Method::POST, &h), Err(Refusal::NotJson), "{ct}");
        }
        assert_eq!(admit(&g, Method::POST, &base), Err(Refusal::NotJson));
        let mut h = base.to_vec();
        h.push(("content-type", "application/json; charset=utf-8"));
        assert_eq!(admit(&g, Method::POST, &h), Ok(()));
    }

    #[test]
    fn only_probes_and_optionally_metrics_are_public() {
        let closed = guard(None);
        assert!(closed.is_public(&Method::GET, "/healthz") && closed.is_public(&Method::GET, "/readyz"));
        assert!(!closed.is_public(&Method::GET, "/metrics") && !closed.is_public(&Method::POST, "/healthz"));
        let admin = AdminConfig { metrics_public: true, ..AdminConfig::default() };
        assert!(Guard::new(&admin, None).is_public(&Method::GET, "/metrics"));
        assert!(!Guard::new(&admin, None).is_public(&Method::GET, "/api/status"));
    }
}
