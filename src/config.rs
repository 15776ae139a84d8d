//! Configuration: the TOML file, merged with command-line flags, validated into
//! typed values. Every mistake is a [`ConfigError`] with a message that names the
//! offending key, never a panic.
//!
//! ```toml
//! [[realms]]
//! name = "realm1"
//! uri_check = "loose"        # or "strict"
//!
//! [websocket]
//! listen = "127.0.0.1:8080"  # "" disables the listener
//! path = "/ws"
//!
//! [rawsocket]
//! listen = "127.0.0.1:8081"  # "" disables the listener
//! unix = "/run/junction.sock" # optional
//!
//! [limits]                   # see `Limits` and the README for each one
//! max_message_size = 16777216 # bytes, per message, both transports
//! outbox_frames = 8192        # per-session outbound queue, frames
//! outbox_bytes = 67108864     # per-session outbound queue, bytes
//! shutdown_grace_ms = 2000    # wait for GOODBYE replies on shutdown
//! drain_timeout_ms = 10000    # on shutdown, invocations served here get this long to finish
//! handshake_timeout_ms = 10000
//! max_sessions = 100000       # per node; max_sessions_per_ip = 0 (no limit)
//! max_pending_calls = 10000   # per session, as caller
//! auth_failures_per_ip = 100  # per auth_failure_window_ms, then rate limited
//! max_message_size_before_welcome = 65536 # bytes, until WELCOME
//! max_message_elements = 262144 # decoded values per message
//! max_batch_messages = 1024   # WAMP messages per batched WebSocket message
//! max_subscriptions_per_session = 1000
//! max_registrations_per_session = 1000
//! max_testaments_per_session = 16
//! max_retained_events = 10000 # per realm, oldest dropped first
//! max_retained_bytes = 16777216 # per realm, oldest dropped first
//! max_history_bytes = 67108864 # per [[realms.history]] entry, oldest dropped first
//!
//! [log]
//! json = false
//!
//! [admin]
//! listen = "127.0.0.1:8090"  # /healthz, /readyz, /metrics, /api; "" disables
//! drain_delay_ms = 0         # on SIGTERM: readyz 503 this long before GOODBYEs
//! token_file = "/run/secrets/junction-admin-token" # bearer token (first line);
//!                            # JUNCTION_ADMIN_TOKEN, then JUNCTION_ADMIN_TOKEN_FILE win;
//!                            # none: the API answers 401
//! metrics_public = false     # true: /metrics without the token
//! allowed_hosts = []         # Host names accepted besides IP literals and localhost
//! allowed_origins = []       # browser Origins accepted besides the server's own
//!
//! [telemetry]                # OTLP export needs OTEL_EXPORTER_OTLP_ENDPOINT
//! service_name = "junction"
//! sample_ratio = 1.0         # fraction of new traces sampled
//! traces = true
//! metrics = true
//!
//! [cluster]                  # see `config::cluster`; absent = a one-node cluster
//! node_id = 1
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

pub mod cluster;
pub mod history;
pub mod webhook;

pub use cluster::ClusterConfig;
pub use history::HistoryConfig;

use crate::wamp::uri::{self, UriCheck};

/// A configuration problem, reported to the user as-is.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    /// The file is not valid TOML or has unknown/mistyped keys.
    #[error("invalid config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    /// A value is out of range or inconsistent.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// One realm.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RealmConfig {
    /// The realm's URI.
    pub name: String,
    /// How strictly URIs are checked in this realm.
    #[serde(default)]
    pub uri_check: UriCheck,
    /// Authentication (`[realms.auth]`); absent: anonymous clients only.
    #[serde(default)]
    pub auth: Option<crate::auth::AuthConfig>,
    /// Topics whose events are kept for `wamp.subscription.get_events` (`[[realms.history]]`).
    #[serde(default)]
    pub history: Vec<HistoryConfig>,
    /// Authorization roles (`[[realms.roles]]`); none: every action is allowed.
    #[serde(default)]
    pub roles: Vec<crate::auth::roles::RoleConfig>,
}

impl RealmConfig {
    /// The realm's authenticator with its secrets resolved (env, files), or why not.
    pub fn authenticator(&self) -> Result<Option<crate::auth::Authenticator>, ConfigError> {
        let Some(auth) = &self.auth else { return Ok(None) };
        let bad =
            |e: &dyn std::fmt::Display| ConfigError::Invalid(format!("realm {:?} auth: {e}", self.name));
        let mut auth = auth.clone();
        auth.resolve_secrets().map_err(|e| bad(&e))?;
        crate::auth::Authenticator::new(&auth).map(Some).map_err(|e| bad(&e))
    }
}

/// The WebSocket listener.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct WebSocketConfig {
    /// Listen address; empty disables.
    pub listen: String,
    /// HTTP path of the WAMP endpoint.
    pub path: String,
    /// Serve `wss://` instead of `ws://` (`[websocket.tls]`).
    pub tls: Option<TlsConfig>,
    /// Browser origins allowed besides the router's own host (see
    /// [`crate::transport::origin`]): exact, with `*` wildcards, or `"*"` for all.
    pub allowed_origins: Vec<String>,
}

impl Default for WebSocketConfig {
    fn default() -> Self {
        WebSocketConfig {
            listen: "127.0.0.1:8080".into(),
            path: "/ws".into(),
            tls: None,
            allowed_origins: Vec::new(),
        }
    }
}

/// A listener's TLS settings (`[websocket.tls]`, `[rawsocket.tls]`). The files are
/// read at start and again whenever they change.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// PEM CA certificates that client certificates must chain to; enables
    /// client-certificate authentication (authmethod `tls`).
    #[serde(default)]
    pub client_ca: Option<PathBuf>,
    /// With `client_ca`: `optional` (default) or `required`.
    #[serde(default)]
    pub client_auth: ClientAuth,
}

/// Whether clients must present a certificate.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ClientAuth {
    /// Verified when presented.
    #[default]
    Optional,
    /// The TLS handshake fails without one.
    Required,
}

/// The RawSocket listeners.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RawSocketConfig {
    /// TCP listen address; empty disables.
    pub listen: String,
    /// Unix domain socket path, if any.
    pub unix: Option<PathBuf>,
    /// RawSocket over TLS on the TCP listener (`[rawsocket.tls]`).
    pub tls: Option<TlsConfig>,
}

impl Default for RawSocketConfig {
    fn default() -> Self {
        RawSocketConfig { listen: "127.0.0.1:8081".into(), unix: None, tls: None }
    }
}

/// Resource limits.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest message accepted or sent, in bytes (RawSocket caps it at 16 MiB).
    pub max_message_size: usize,
    /// Per-session outbound queue bound, in frames.
    pub outbox_frames: usize,
    /// Per-session outbound queue bound, in bytes.
    pub outbox_bytes: usize,
    /// How long shutdown waits for clients to answer GOODBYE, in milliseconds.
    pub shutdown_grace_ms: u64,
    /// On shutdown, after this node's registrations are withdrawn, how long the
    /// invocations its callees are serving get to finish before GOODBYE.
    pub drain_timeout_ms: u64,
    /// Largest message over WebSocket, if not `max_message_size`.
    pub websocket_max_message_size: Option<usize>,
    /// Largest message over RawSocket, if not `max_message_size` (announced in the
    /// handshake, rounded down to a power of two).
    pub rawsocket_max_message_size: Option<usize>,
    /// How long a connection may take from accept to WELCOME (transport handshake,
    /// HELLO, authentication), in milliseconds; also from a GOODBYE to the next HELLO.
    pub handshake_timeout_ms: u64,
    /// How often a connection that sent nothing is pinged (WebSocket PING, RawSocket
    /// PING frame), in milliseconds; a peer silent for two intervals after a ping is
    /// disconnected (so a dead callee's registrations go). 0: no pings.
    pub keepalive_interval_ms: u64,
    /// Joined sessions on this node; 0: no limit.
    pub max_sessions: usize,
    /// Joined sessions per source IP address (IPv6: per /64); 0: no limit.
    pub max_sessions_per_ip: usize,
    /// Calls one session may have in flight as caller; 0: no limit.
    pub max_pending_calls: usize,
    /// Failed authentications per source IP within `auth_failure_window_ms` after
    /// which its HELLOs are refused until the window ends; 0: no limit.
    pub auth_failures_per_ip: u32,
    /// The authentication-failure window, in milliseconds.
    pub auth_failure_window_ms: u64,
    /// Most source IPs whose authentication failures are tracked at once.
    pub auth_failure_tracked_ips: usize,
    /// Largest message a connection may send until it is welcomed (HELLO,
    /// AUTHENTICATE; again after a GOODBYE), in bytes, on every transport.
    pub max_message_size_before_welcome: usize,
    /// Most values (scalars, containers and dictionary keys) one decoded message may
    /// hold; each takes tens of bytes in memory however short its encoding.
    pub max_message_elements: usize,
    /// Most WAMP messages in one message of a batched WebSocket subprotocol.
    pub max_batch_messages: usize,
    /// Subscriptions one session may hold.
    pub max_subscriptions_per_session: usize,
    /// Registrations one session may hold.
    pub max_registrations_per_session: usize,
    /// Testaments one session may hold (`wamp.session.add_testament`).
    pub max_testaments_per_session: usize,
    /// Retained events kept per realm (one per topic); the oldest is dropped beyond it.
    pub max_retained_events: usize,
    /// Bytes of retained events (payload and details) kept per realm; the oldest are
    /// dropped beyond it.
    pub max_retained_bytes: usize,
    /// Bytes of memory the event history of one `[[realms.history]]` entry may take;
    /// the oldest events are dropped beyond it.
    pub max_history_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_size: 16 * 1024 * 1024,
            outbox_frames: 8192,
            outbox_bytes: 64 * 1024 * 1024,
            shutdown_grace_ms: 2000,
            drain_timeout_ms: 10_000,
            websocket_max_message_size: None,
            rawsocket_max_message_size: None,
            handshake_timeout_ms: 10_000,
            keepalive_interval_ms: 30_000,
            max_sessions: 100_000,
            max_sessions_per_ip: 0,
            max_pending_calls: 10_000,
            auth_failures_per_ip: 100,
            auth_failure_window_ms: 60_000,
            auth_failure_tracked_ips: 10_000,
            max_message_size_before_welcome: 64 * 1024,
            max_message_elements: 262_144,
            max_batch_messages: 1024,
            max_subscriptions_per_session: 1000,
            max_registrations_per_session: 1000,
            max_testaments_per_session: 16,
            max_retained_events: 10_000,
            max_retained_bytes: 16 * 1024 * 1024,
            max_history_bytes: 64 * 1024 * 1024,
        }
    }
}

impl Limits {
    /// The largest message accepted over WebSocket.
    pub fn websocket_max(&self) -> usize {
        self.websocket_max_message_size.unwrap_or(self.max_message_size)
    }

    /// The largest message accepted over RawSocket.
    pub fn rawsocket_max(&self) -> usize {
        self.rawsocket_max_message_size.unwrap_or(self.max_message_size)
    }

    /// The largest message accepted before WELCOME on a transport whose limit is `max`.
    pub fn before_welcome_max(&self, max: usize) -> usize {
        self.max_message_size_before_welcome.min(max)
    }

    /// The keepalive interval; `None` when pings are off.
    pub fn keepalive_interval(&self) -> Option<std::time::Duration> {
        (self.keepalive_interval_ms > 0).then(|| std::time::Duration::from_millis(self.keepalive_interval_ms))
    }

    /// The handshake deadline after accept (`handshake_timeout_ms`).
    pub fn handshake_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.handshake_timeout_ms)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: &str| Err(ConfigError::Invalid(format!("limits.{m}")));
        for (key, size) in [
            ("max_message_size", self.max_message_size),
            ("websocket_max_message_size", self.websocket_max()),
            ("rawsocket_max_message_size", self.rawsocket_max()),
        ] {
            if size < 1024 {
                return bad(&format!("{key} must be at least 1024"));
            }
        }
        let largest = self.max_message_size.max(self.websocket_max()).max(self.rawsocket_max());
        if self.outbox_frames == 0 || self.outbox_bytes < largest {
            return bad("outbox_frames must be > 0 and limits.outbox_bytes >= the largest message size");
        }
        if self.handshake_timeout_ms == 0 {
            return bad("handshake_timeout_ms must be > 0");
        }
        if self.auth_failures_per_ip > 0
            && (self.auth_failure_window_ms == 0 || self.auth_failure_tracked_ips == 0)
        {
            return bad("auth_failure_window_ms and auth_failure_tracked_ips must be > 0");
        }
        if self.max_message_size_before_welcome < 1024 {
            return bad("max_message_size_before_welcome must be at least 1024");
        }
        for (key, n) in [
            ("max_message_elements", self.max_message_elements),
            ("max_batch_messages", self.max_batch_messages),
            ("max_subscriptions_per_session", self.max_subscriptions_per_session),
            ("max_registrations_per_session", self.max_registrations_per_session),
            ("max_testaments_per_session", self.max_testaments_per_session),
            ("max_retained_events", self.max_retained_events),
            ("max_retained_bytes", self.max_retained_bytes),
            ("max_history_bytes", self.max_history_bytes),
        ] {
            if n == 0 {
                return bad(&format!("{key} must be > 0"));
            }
        }
        if self.max_message_elements < 64 {
            return bad("max_message_elements must be at least 64");
        }
        Ok(())
    }
}

/// Logging.
#[derive(Clone, Debug, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// JSON log lines instead of text.
    pub json: bool,
    /// Log filter (`RUST_LOG` syntax: `info`, `warn,junction=debug`); `RUST_LOG`
    /// overrides it at start, `junction.config.reload` applies a changed one.
    pub level: Option<String>,
}

/// The admin HTTP server (health, metrics, management API).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Listen address; empty disables. When the default address is taken, the
    /// server is skipped with a warning; an explicit address must bind.
    pub listen: String,
    /// The authrole allowed to call the `junction.*` admin procedures.
    pub role: String,
    /// The realm where `role` counts for administration; unset: no session is an
    /// administrator (the admin procedures answer `wamp.error.not_authorized`).
    pub realm: Option<String>,
    /// On SIGTERM, how long `/readyz` reports draining before clients are told to
    /// leave, in milliseconds (time for load balancers to notice).
    pub drain_delay_ms: u64,
    /// File whose first line is the bearer token of the admin API and console,
    /// read at start; [`ADMIN_TOKEN_ENV`] and [`ADMIN_TOKEN_FILE_ENV`] win over it.
    /// Without a token, every route but `/healthz`, `/readyz` (and `/metrics` when
    /// public) answers 401.
    pub token_file: Option<PathBuf>,
    /// Serve `/metrics` without the token (for a Prometheus that cannot send one).
    pub metrics_public: bool,
    /// Host names (without port) accepted in the `Host` header besides IP literals
    /// and `localhost`: the names clients use to reach this server. Anything else
    /// is refused (DNS rebinding).
    pub allowed_hosts: Vec<String>,
    /// Browser origins (`scheme://host[:port]`) accepted in the `Origin` header
    /// besides the server's own; a request from any other origin is refused.
    pub allowed_origins: Vec<String>,
}

/// The HTTP bridge (`[bridge]`): publish and call over HTTP POST, see
/// `crate::transport::bridge`. Off unless `listen` is set.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct BridgeConfig {
    /// Listen address; empty (the default) disables the bridge.
    pub listen: String,
    /// Path prefix of the routes (`{path}/publish`, `{path}/call`, `{path}/openapi.json`).
    pub path: String,
    /// The realm requests go to; unset: the first configured realm.
    pub realm: Option<String>,
    /// The role of a request without credentials; unset (the default): such a
    /// request answers 401.
    pub anonymous_role: Option<String>,
    /// Largest request body accepted, in bytes (413 past it).
    pub max_body: usize,
    /// Requests per second allowed per client address (429 past it), sustained.
    pub rate: f64,
    /// Requests a client address may make at once before the rate applies.
    pub burst: u32,
    /// Timeout of a call when the request gives none, and the most it may ask
    /// (`options.timeout`), in milliseconds.
    pub call_timeout_ms: u64,
    /// How far the timestamp of a signed request may be from the router's clock,
    /// in seconds (Crossbar.io's `timestamp_delta_limit`).
    pub timestamp_delta_limit: u64,
    /// Keys for signed requests (Crossbar.io's HTTP bridge signature scheme).
    pub keys: Vec<BridgeKey>,
    /// Serve HTTPS instead of HTTP (`[bridge.tls]`).
    pub tls: Option<TlsConfig>,
}

/// A key that signs bridge requests, and who the requests it signs are.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BridgeKey {
    /// The key, sent in the request's `key` query parameter.
    pub key: String,
    /// The shared secret the signature is computed with (inline, `{env}` or `{file}`).
    pub secret: crate::auth::Secret,
    /// The role the requests get.
    pub role: String,
    /// The authid the requests get; unset: the key.
    #[serde(default)]
    pub authid: Option<String>,
}

impl Default for BridgeConfig {
    fn default() -> Self {
        BridgeConfig {
            listen: String::new(),
            path: "/bridge".into(),
            realm: None,
            anonymous_role: None,
            max_body: 64 * 1024,
            rate: 50.0,
            burst: 100,
            call_timeout_ms: 30_000,
            timestamp_delta_limit: 300,
            keys: Vec::new(),
            tls: None,
        }
    }
}

/// The admin server's default listen address.
pub const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:8090";

/// The environment variable holding the admin token; it wins over `admin.token_file`.
pub const ADMIN_TOKEN_ENV: &str = "JUNCTION_ADMIN_TOKEN";

/// The environment variable naming the admin token file; it wins over
/// `admin.token_file` (a container mounts its secret there).
pub const ADMIN_TOKEN_FILE_ENV: &str = "JUNCTION_ADMIN_TOKEN_FILE";

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            listen: DEFAULT_ADMIN_LISTEN.into(),
            role: "admin".into(),
            realm: None,
            drain_delay_ms: 0,
            token_file: None,
            metrics_public: false,
            allowed_hosts: Vec::new(),
            allowed_origins: Vec::new(),
        }
    }
}

impl AdminConfig {
    /// The admin token: `JUNCTION_ADMIN_TOKEN` when set and not empty, else the
    /// first line of the file `JUNCTION_ADMIN_TOKEN_FILE` or `token_file` names,
    /// else none (the API is closed).
    pub fn token(&self) -> Result<Option<String>, ConfigError> {
        let env = std::env::var(ADMIN_TOKEN_ENV).ok();
        let file = std::env::var_os(ADMIN_TOKEN_FILE_ENV).filter(|f| !f.is_empty()).map(PathBuf::from);
        self.token_from(env.as_deref(), file)
    }

    /// [`AdminConfig::token`] with the environment variables' values given.
    pub fn token_from(
        &self,
        env: Option<&str>,
        env_file: Option<PathBuf>,
    ) -> Result<Option<String>, ConfigError> {
        if let Some(token) = env.map(str::trim).filter(|t| !t.is_empty()) {
            return Ok(Some(token.to_owned()));
        }
        let (key, path) = match (env_file, &self.token_file) {
            (Some(path), _) => (ADMIN_TOKEN_FILE_ENV, path),
            (None, Some(path)) => ("admin.token_file", path.clone()),
            (None, None) => return Ok(None),
        };
        let text = std::fs::read_to_string(&path)
            .map_err(|e| ConfigError::Invalid(format!("{key} {}: cannot read it: {e}", path.display())))?;
        let token = text.lines().next().unwrap_or_default().trim();
        if token.is_empty() {
            return Err(ConfigError::Invalid(format!(
                "{key} {}: the first line (the token) is empty",
                path.display()
            )));
        }
        Ok(Some(token.to_owned()))
    }

    fn validate(&self) -> Result<(), ConfigError> {
        parse_listen("admin.listen", &self.listen)?;
        for h in &self.allowed_hosts {
            if h.is_empty() || h.contains(['/', ':', ' ', '@']) {
                return Err(ConfigError::Invalid(format!(
                    "admin.allowed_hosts: {h:?} is not a host name (no scheme, port or path)"
                )));
            }
        }
        for o in &self.allowed_origins {
            let rest = o.strip_prefix("http://").or_else(|| o.strip_prefix("https://"));
            if rest.is_none_or(|r| r.is_empty() || r.contains(['/', ' ', '@'])) {
                return Err(ConfigError::Invalid(format!(
                    "admin.allowed_origins: {o:?} is not an origin like https://console.example.com:8443"
                )));
            }
        }
        Ok(())
    }
}

/// OpenTelemetry export; the endpoint comes from `OTEL_EXPORTER_OTLP_*`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetryConfig {
    /// `service.name` (unless `OTEL_SERVICE_NAME` is set).
    pub service_name: String,
    /// Fraction of new traces sampled, 0.0 to 1.0.
    pub sample_ratio: f64,
    /// Export traces when an endpoint is set.
    pub traces: bool,
    /// Export metrics when an endpoint is set.
    pub metrics: bool,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        TelemetryConfig { service_name: "junction".into(), sample_ratio: 1.0, traces: true, metrics: true }
    }
}

/// The whole configuration.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Realms served; the default is one realm, `realm1`.
    pub realms: Vec<RealmConfig>,
    /// WebSocket listener.
    pub websocket: WebSocketConfig,
    /// RawSocket listeners.
    pub rawsocket: RawSocketConfig,
    /// Limits.
    pub limits: Limits,
    /// Logging.
    pub log: LogConfig,
    /// Admin HTTP server.
    #[serde(default)]
    pub admin: AdminConfig,
    /// OpenTelemetry export.
    #[serde(default)]
    pub telemetry: TelemetryConfig,
    /// Cluster membership and Raft; absent = a one-node cluster.
    #[serde(default)]
    pub cluster: ClusterConfig,
    /// HTTP services taking part as subscribers or callees (`[[webhooks]]`).
    #[serde(default)]
    pub webhooks: Vec<webhook::WebhookConfig>,
    /// The HTTP bridge; off by default.
    #[serde(default)]
    pub bridge: BridgeConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            realms: vec![RealmConfig {
                name: "realm1".into(),
                uri_check: UriCheck::Loose,
                auth: None,
                history: Vec::new(),
                roles: Vec::new(),
            }],
            websocket: WebSocketConfig::default(),
            rawsocket: RawSocketConfig::default(),
            limits: Limits::default(),
            log: LogConfig::default(),
            admin: AdminConfig::default(),
            telemetry: TelemetryConfig::default(),
            cluster: ClusterConfig::default(),
            webhooks: Vec::new(),
            bridge: BridgeConfig::default(),
        }
    }
}

/// Replaces `${NAME}` in `text` (outside comment lines) by the environment variable
/// `NAME` (`var`); `$${` stands for a literal `${`. A placeholder whose variable is
/// not set is an error naming the line. This lets one file serve every replica of a
/// StatefulSet (node id, advertise address from the pod's environment) and be
/// re-read as it is when it changes.
pub fn expand_env(text: &str, var: impl Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    for (n, line) in text.split_inclusive('\n').enumerate() {
        if line.trim_start().starts_with('#') || !line.contains("${") {
            out.push_str(line);
            continue;
        }
        let mut rest = line;
        while let Some(at) = rest.find("${") {
            if rest[..at].ends_with('$') {
                out.push_str(&rest[..at - 1]);
                out.push_str("${");
                rest = &rest[at + 2..];
                continue;
            }
            out.push_str(&rest[..at]);
            let after = &rest[at + 2..];
            let end = after.find('}').ok_or_else(|| format!("line {}: unterminated ${{", n + 1))?;
            let name = &after[..end];
            let valid = !name.is_empty()
                && !name.starts_with(|c: char| c.is_ascii_digit())
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                return Err(format!("line {}: ${{{name}}} is not a variable name", n + 1));
            }
            let value = var(name).ok_or_else(|| format!("line {}: ${{{name}}} is not set", n + 1))?;
            out.push_str(&value);
            rest = &after[end + 1..];
        }
        out.push_str(rest);
    }
    Ok(out)
}

impl Config {
    /// Reads and validates a TOML file (`${NAME}` replaced from the environment, see
    /// [`expand_env`]).
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let cfg = Config::parse_file(path)?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Reads and parses a TOML file without validating the values (see
    /// [`Config::problems`]).
    pub fn parse_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        let text = expand_env(&text, |name| std::env::var(name).ok())
            .map_err(|message| ConfigError::Parse { path: path.to_owned(), message })?;
        Config::parse_toml(&text).map_err(|e| match e {
            ConfigError::Parse { message, .. } => ConfigError::Parse { path: path.to_owned(), message },
            other => other,
        })
    }

    /// Parses and validates TOML text.
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        let cfg = Config::parse_toml(text)?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Parses TOML text without validating the values.
    pub fn parse_toml(text: &str) -> Result<Config, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse { path: PathBuf::new(), message: e.to_string() })
    }

    /// Checks values the types cannot express: the first of [`Config::problems`]. The
    /// listeners' TLS files are checked where they are loaded, by `transport::tls::validate`.
    pub fn validate(&self) -> Result<(), ConfigError> {
        match self.problems().into_iter().next() {
            Some((_, e)) => Err(e),
            None => Ok(()),
        }
    }

    /// Every problem [`Config::validate`] knows of, each with the section (or key) it
    /// is about: the first one of each realm and of each section. Empty: valid.
    pub fn problems(&self) -> Vec<(String, ConfigError)> {
        let mut out = Vec::new();
        if self.realms.is_empty() {
            out.push(("realms".to_owned(), ConfigError::Invalid("at least one realm is required".into())));
        }
        for i in 0..self.realms.len() {
            if let Err(e) = self.check_realm(i) {
                out.push((format!("realms[{i}]"), e));
            }
        }
        let mut section = |key: &str, r: Result<(), ConfigError>| {
            if let Err(e) = r {
                out.push((key.to_owned(), e));
            }
        };
        section(
            "admin",
            match &self.admin.realm {
                Some(admin) if !self.realms.iter().any(|r| &r.name == admin) => {
                    Err(ConfigError::Invalid(format!("admin.realm {admin:?} is not a configured realm")))
                }
                _ => self.admin.validate(),
            },
        );
        section(
            "websocket",
            parse_listen("websocket.listen", &self.websocket.listen).and_then(|_| {
                if self.websocket.path.starts_with('/') {
                    Ok(())
                } else {
                    Err(ConfigError::Invalid("websocket.path must start with '/'".into()))
                }
            }),
        );
        section("rawsocket", parse_listen("rawsocket.listen", &self.rawsocket.listen).map(|_| ()));
        let realms: Vec<String> = self.realms.iter().map(|r| r.name.clone()).collect();
        for (i, w) in self.webhooks.iter().enumerate() {
            section(&format!("webhooks[{i}]"), w.validate(&realms).map_err(ConfigError::Invalid));
        }
        section(
            "telemetry",
            if (0.0..=1.0).contains(&self.telemetry.sample_ratio) {
                Ok(())
            } else {
                Err(ConfigError::Invalid("telemetry.sample_ratio must be between 0.0 and 1.0".into()))
            },
        );
        if let Some(level) = &self.log.level {
            section(
                "log",
                tracing_subscriber::EnvFilter::try_new(level)
                    .map(|_| ())
                    .map_err(|e| ConfigError::Invalid(format!("log.level {level:?}: {e}"))),
            );
        }
        section("cluster", self.cluster.validate().map_err(|e| ConfigError::Invalid(e.to_string())));
        section("limits", self.limits.validate());
        section("bridge", self.check_bridge());
        out
    }

    /// The checks of realm `i`.
    fn check_realm(&self, i: usize) -> Result<(), ConfigError> {
        let r = &self.realms[i];
        if !uri::is_valid(&r.name, UriCheck::Loose) {
            return Err(ConfigError::Invalid(format!("realms[{i}].name {:?} is not a valid URI", r.name)));
        }
        if self.realms[..i].iter().any(|o| o.name == r.name) {
            return Err(ConfigError::Invalid(format!("realm {:?} is configured twice", r.name)));
        }
        r.authenticator()?;
        if let Some(home) = r.auth.as_ref().and_then(|a| a.authenticator_realm.as_ref())
            && !self.realms.iter().any(|o| &o.name == home)
        {
            return Err(ConfigError::Invalid(format!(
                "realm {:?}: authenticator_realm {home:?} is not a configured realm",
                r.name
            )));
        }
        if let Some(auth) = &r.auth
            && !auth.authenticators().is_empty()
            && auth.authenticator_role.as_deref().is_none_or(str::is_empty)
        {
            return Err(ConfigError::Invalid(format!(
                "realm {:?}: a dynamic authenticator needs [realms.auth] authenticator_role, \
                 the only role that may register it in realm {:?}",
                r.name,
                auth.authenticator_realm.as_deref().unwrap_or(&r.name)
            )));
        }
        for (j, role) in r.roles.iter().enumerate() {
            role.check().map_err(|e| ConfigError::Invalid(format!("realm {:?}: {e}", r.name)))?;
            if r.roles[..j].iter().any(|o| o.name == role.name) {
                return Err(ConfigError::Invalid(format!(
                    "realm {:?}: role {:?} is configured twice",
                    r.name, role.name
                )));
            }
        }
        for h in &r.history {
            h.policy().map_err(|e| ConfigError::Invalid(format!("realm {:?}: {e}", r.name)))?;
        }
        Ok(())
    }

    /// The checks of `[bridge]`.
    fn check_bridge(&self) -> Result<(), ConfigError> {
        let b = &self.bridge;
        parse_listen("bridge.listen", &b.listen)?;
        let bad = |why: String| Err(ConfigError::Invalid(why));
        if !b.path.starts_with('/') || b.path.len() > 1 && b.path.ends_with('/') {
            return bad("bridge.path must start with '/' and not end with one".into());
        }
        if let Some(realm) = &b.realm
            && !self.realms.iter().any(|r| &r.name == realm)
        {
            return bad(format!("bridge.realm {realm:?} is not a configured realm"));
        }
        if !(b.rate > 0.0 && b.rate.is_finite()) || b.burst == 0 {
            return bad("bridge.rate and bridge.burst must be positive".into());
        }
        if b.max_body == 0 || b.call_timeout_ms == 0 {
            return bad("bridge.max_body and bridge.call_timeout_ms must be positive".into());
        }
        for (i, k) in b.keys.iter().enumerate() {
            if k.key.is_empty() || k.role.is_empty() {
                return bad(format!("bridge.keys[{i}]: key and role are required"));
            }
            if b.keys[..i].iter().any(|o| o.key == k.key) {
                return bad(format!("bridge.keys: key {:?} is configured twice", k.key));
            }
            k.secret.resolve().map_err(|e| ConfigError::Invalid(format!("bridge.keys[{i}].secret: {e}")))?;
        }
        Ok(())
    }

    /// The bridge's listen address, if enabled.
    pub fn bridge_addr(&self) -> Option<SocketAddr> {
        parse_listen("bridge.listen", &self.bridge.listen).ok().flatten()
    }

    /// The bridge's realm: `bridge.realm`, else the first realm.
    pub fn bridge_realm(&self) -> Option<&str> {
        self.bridge.realm.as_deref().or_else(|| self.realms.first().map(|r| r.name.as_str()))
    }

    /// The WebSocket listen address, if enabled.
    pub fn websocket_addr(&self) -> Option<SocketAddr> {
        parse_listen("websocket.listen", &self.websocket.listen).ok().flatten()
    }

    /// The admin HTTP listen address, if enabled.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        parse_listen("admin.listen", &self.admin.listen).ok().flatten()
    }

    /// The RawSocket TCP listen address, if enabled.
    pub fn rawsocket_addr(&self) -> Option<SocketAddr> {
        parse_listen("rawsocket.listen", &self.rawsocket.listen).ok().flatten()
    }
}

/// Parses a listen address, `IP:PORT` or `HOST:PORT` (the name is resolved, an
/// IPv4 address preferred: `localhost:8080` is `127.0.0.1:8080`); empty means
/// disabled.
pub fn parse_listen(key: &str, s: &str) -> Result<Option<SocketAddr>, ConfigError> {
    if s.is_empty() {
        return Ok(None);
    }
    resolve_addr(s).map(Some).ok_or_else(|| {
        ConfigError::Invalid(format!(
            "{key} {s:?} is not an address like 127.0.0.1:8080 or localhost:8080 (or the name does not resolve)"
        ))
    })
}

/// `IP:PORT`, or `HOST:PORT` resolved (an IPv4 address preferred); `None` when it
/// is neither or the name does not resolve.
pub fn resolve_addr(s: &str) -> Option<SocketAddr> {
    if let Ok(addr) = s.parse() {
        return Some(addr);
    }
    let (host, port) = s.rsplit_once(':')?;
    if host.is_empty() || host.contains(['/', ' ', '[', ']']) || port.parse::<u16>().is_err() {
        return None;
    }
    let addrs: Vec<SocketAddr> = std::net::ToSocketAddrs::to_socket_addrs(s).ok()?.collect();
    addrs.iter().find(|a| a.is_ipv4()).or(addrs.first()).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_placeholders_expand_outside_comments() {
        let env = |n: &str| (n == "NODE").then(|| "3".to_owned());
        let text = "# ${UNSET} in a comment stays\nnode_id = ${NODE}\nliteral = \"$${NODE}\"\n";
        let out = expand_env(text, env).expect("expands");
        assert_eq!(out, "# ${UNSET} in a comment stays\nnode_id = 3\nliteral = \"${NODE}\"\n");
        assert_eq!(expand_env("a = 1\nb = ${MISSING}\n", env).unwrap_err(), "line 2: ${MISSING} is not set");
        assert!(expand_env("b = ${1X}\n", env).unwrap_err().contains("not a variable name"));
        assert!(expand_env("b = ${NODE\n", env).unwrap_err().contains("unterminated"));
    }

    #[test]
    fn defaults_serve_realm1_on_8080_and_8081() {
        let c = Config::from_toml("").expect("empty config is valid");
        assert_eq!(c.realms[0].name, "realm1");
        assert_eq!(c.websocket_addr(), "127.0.0.1:8080".parse().ok());
        assert_eq!(c.rawsocket_addr(), "127.0.0.1:8081".parse().ok());
        assert_eq!(c.websocket.path, "/ws");
    }

    #[test]
    fn the_bridge_is_off_by_default_and_its_section_is_checked() {
        let c = Config::from_toml("").expect("valid");
        assert_eq!(c.bridge_addr(), None);
        assert_eq!(c.bridge.path, "/bridge");
        assert_eq!(c.bridge_realm(), Some("realm1"));
        let c = Config::from_toml(
            "[bridge]\nlisten = \"127.0.0.1:0\"\n[[bridge.keys]]\nkey = \"k\"\nsecret = \"s\"\nrole = \"r\"\n",
        )
        .expect("valid");
        assert!(c.bridge_addr().is_some());
        for bad in [
            "[bridge]\npath = \"bridge\"\n",
            "[bridge]\nrealm = \"nowhere\"\n",
            "[bridge]\nrate = 0.0\n",
            "[bridge]\nmax_body = 0\n",
            "[[bridge.keys]]\nkey = \"k\"\nsecret = \"s\"\nrole = \"\"\n",
            "[[bridge.keys]]\nkey = \"k\"\nsecret = { env = \"JUNCTION_TEST_UNSET_BRIDGE_SECRET\" }\nrole = \"r\"\n",
        ] {
            let problems = Config::parse_toml(bad).expect("parses").problems();
            assert!(problems.iter().any(|(key, _)| key == "bridge"), "{bad}: {problems:?}");
        }
    }

    #[test]
    fn full_file_parses() {
        let c = Config::from_toml(
            "[[realms]]\nname = \"a\"\nuri_check = \"strict\"\n[websocket]\nlisten = \"\"\n\
             [rawsocket]\nunix = \"/tmp/j.sock\"\n[limits]\nmax_message_size = 4096\n",
        )
        .expect("valid");
        assert_eq!(c.realms[0].uri_check, UriCheck::Strict);
        assert_eq!(c.websocket_addr(), None);
        assert_eq!(c.rawsocket.unix.as_deref(), Some(Path::new("/tmp/j.sock")));
        assert_eq!(c.limits.max_message_size, 4096);
    }

    #[test]
    fn admin_and_telemetry_sections() {
        assert_eq!(Config::default().admin_addr(), "127.0.0.1:8090".parse().ok());
        let c = Config::from_toml(
            "[admin]\nlisten = \"\"\ndrain_delay_ms = 500\n[telemetry]\nsample_ratio = 0.25\ntraces = false\n",
        )
        .expect("valid");
        assert_eq!((c.admin_addr(), c.admin.drain_delay_ms), (None, 500));
        assert_eq!((c.telemetry.sample_ratio, c.telemetry.traces, c.telemetry.metrics), (0.25, false, true));
        assert!(Config::from_toml("[telemetry]\nsample_ratio = 2.0\n").is_err());
        let bad = Config::from_toml("[admin]\nlisten = \"x\"\n").map(|_| ()).map_err(|e| e.to_string());
        assert!(bad.is_err_and(|e| e.contains("admin.listen")));
    }

    #[test]
    fn admin_token_comes_from_the_environment_or_the_first_line_of_token_file() {
        let dir = std::env::temp_dir().join(format!("junction-admin-token-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("token");
        std::fs::write(&file, "  from-file \nsecond line\n").unwrap();
        let admin = AdminConfig { token_file: Some(file.clone()), ..AdminConfig::default() };
        assert_eq!(admin.token_from(None, None).unwrap().as_deref(), Some("from-file"));
        assert_eq!(admin.token_from(Some("from-env"), None).unwrap().as_deref(), Some("from-env"));
        assert_eq!(admin.token_from(Some("  "), None).unwrap().as_deref(), Some("from-file"), "empty: unset");
        assert_eq!(AdminConfig::default().token_from(None, None).unwrap(), None, "no token: closed");
        let other = dir.join("other");
        std::fs::write(&other, "from-env-file\n").unwrap();
        assert_eq!(admin.token_from(None, Some(other)).unwrap().as_deref(), Some("from-env-file"));
        std::fs::write(&file, "\n").unwrap();
        assert!(admin.token_from(None, None).is_err_and(|e| e.to_string().contains("admin.token_file")));
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(admin.token_from(None, None).is_err_and(|e| e.to_string().contains("cannot read")));
        let err = |t: &str| Config::from_toml(t).map(|_| ()).map_err(|e| e.to_string()).unwrap_err();
        assert!(err("[admin]\nallowed_hosts = [\"http://x\"]\n").contains("admin.allowed_hosts"));
        assert!(err("[admin]\nallowed_origins = [\"x.example\"]\n").contains("admin.allowed_origins"));
        let ok = "[admin]\nmetrics_public = true\nallowed_hosts = [\"a.example\"]\n\
                  allowed_origins = [\"https://c.example:8443\"]\n";
        assert!(Config::from_toml(ok).is_ok_and(|c| c.admin.metrics_public));
    }

    #[test]
    fn limits_section() {
        let c = Config::from_toml(
            "[limits]\nwebsocket_max_message_size = 2048\nhandshake_timeout_ms = 500\n\
             max_sessions_per_ip = 3\nmax_pending_calls = 7\nauth_failures_per_ip = 2\n",
        )
        .expect("valid");
        let l = &c.limits;
        assert_eq!((l.websocket_max(), l.rawsocket_max()), (2048, 16 * 1024 * 1024));
        assert_eq!(l.handshake_timeout(), std::time::Duration::from_millis(500));
        assert_eq!((l.max_sessions, l.max_sessions_per_ip, l.max_pending_calls), (100_000, 3, 7));
        let err = |t: &str| Config::from_toml(t).map(|_| ()).map_err(|e| e.to_string()).unwrap_err();
        assert!(err("[limits]\nrawsocket_max_message_size = 10\n").contains("rawsocket_max_message_size"));
        assert!(err("[limits]\nhandshake_timeout_ms = 0\n").contains("handshake_timeout_ms"));
        assert!(err("[limits]\nwebsocket_max_message_size = 134217728\n").contains("outbox_bytes"));
    }

    #[test]
    fn limits_on_what_connections_and_sessions_cost() {
        let l = Limits::default();
        assert_eq!(
            (l.max_message_size_before_welcome, l.max_message_elements, l.max_batch_messages),
            (65536, 262_144, 1024)
        );
        assert_eq!(
            (l.max_subscriptions_per_session, l.max_registrations_per_session, l.max_testaments_per_session),
            (1000, 1000, 16)
        );
        assert_eq!((l.max_retained_events, l.max_retained_bytes), (10_000, 16 << 20));
        assert_eq!(l.before_welcome_max(4096), 4096, "never more than the transport's own limit");
        let c = Config::from_toml(
            "[limits]\nmax_message_size_before_welcome = 2048\nmax_testaments_per_session = 2\n\
             max_retained_bytes = 4096\n",
        )
        .expect("valid");
        assert_eq!(c.limits.before_welcome_max(1 << 20), 2048);
        let err = |t: &str| Config::from_toml(t).map(|_| ()).map_err(|e| e.to_string()).unwrap_err();
        assert!(
            err("[limits]\nmax_message_size_before_welcome = 10\n")
                .contains("max_message_size_before_welcome")
        );
        for key in ["max_subscriptions_per_session", "max_retained_events", "max_batch_messages"] {
            assert!(err(&format!("[limits]\n{key} = 0\n")).contains(key), "{key}");
        }
    }

    #[test]
    fn every_limits_example_in_the_readme_uses_real_keys() {
        let readme = include_str!("../README.md");
        let blocks: Vec<&str> = readme
            .split("```toml\n")
            .skip(1)
            .filter_map(|b| b.split("```").next())
            .filter(|b| b.contains("[limits]"))
            .collect();
        assert!(blocks.len() >= 2, "the configuration reference and the production example");
        for b in blocks {
            let parsed: Result<Config, _> = toml::from_str(b);
            assert!(parsed.is_ok(), "{parsed:?}");
        }
    }

    #[test]
    fn addresses_may_name_a_host() {
        let c = Config::from_toml(
            "[websocket]\nlisten = \"localhost:8080\"\n[admin]\nlisten = \"localhost:0\"\n",
        )
        .expect("valid");
        assert_eq!(c.websocket_addr(), "127.0.0.1:8080".parse().ok(), "IPv4 preferred");
        assert_eq!(c.admin_addr().map(|a| a.port()), Some(0));
        assert_eq!(resolve_addr("[::1]:7001"), "[::1]:7001".parse().ok());
        for bad in ["localhost", ":80", "localhost:http", "a/b:80", "no-such-host.invalid:80"] {
            assert_eq!(resolve_addr(bad), None, "{bad}");
        }
        let c = Config::from_toml("[cluster]\nlisten = \"localhost:7001\"\n").expect("valid");
        assert_eq!(c.cluster.listen_addr(), "127.0.0.1:7001".parse().ok());
    }

    #[test]
    fn every_section_reports_its_first_problem() {
        let c = Config::parse_toml(
            "[[realms]]\nname = \"a b\"\n[[realms]]\nname = \"ok\"\n[[realms]]\nname = \"ok\"\n\
             [limits]\nmax_message_size = 10\n[telemetry]\nsample_ratio = 3.0\n[cluster]\nnode_id = 0\n",
        )
        .expect("parses");
        let sections: Vec<String> = c.problems().into_iter().map(|(s, _)| s).collect();
        assert_eq!(sections, ["realms[0]", "realms[2]", "telemetry", "cluster", "limits"]);
        let first = c.validate().map_err(|e| e.to_string()).unwrap_err();
        assert!(first.contains("realms[0].name"), "{first}");
        assert!(Config::default().problems().is_empty());
    }

    #[test]
    fn mistakes_are_clear_errors() {
        let unknown = Config::from_toml("[limits]\nmax_msg = 1\n").map(|_| ()).map_err(|e| e.to_string());
        assert!(unknown.is_err_and(|e| e.contains("max_msg")));
        let addr =
            Config::from_toml("[websocket]\nlisten = \"nope\"\n").map(|_| ()).map_err(|e| e.to_string());
        assert!(addr.is_err_and(|e| e.contains("websocket.listen")));
        let dup = Config::from_toml("[[realms]]\nname = \"a\"\n[[realms]]\nname = \"a\"\n").map(|_| ());
        assert!(dup.is_err());
        assert!(Config::from_toml("[[realms]]\nname = \"a b\"\n").is_err());
    }
}
