//! The `junction` binary: parse flags and config, start the listeners, wait for a
//! signal, shut down gracefully. Wiring only; everything else lives in the library.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use junction::cluster::runtime::DataPath;
use junction::cluster::{Cluster, ClusterError};
use junction::config::{
    ADMIN_TOKEN_ENV, ADMIN_TOKEN_FILE_ENV, Config, ConfigError, DEFAULT_ADMIN_LISTEN, RealmConfig,
    parse_listen,
};
use junction::ids::NodeId;
use junction::ops;
use junction::ops::admin::Guard;
use junction::router::Router;
use junction::router::replica::Replica;
use junction::transport::listener::{self, Kind};
use junction::transport::tls::Tls;

mod cli;

/// A clustered WAMP router.
#[derive(Parser, Debug, Clone)]
#[command(name = "junction", version, about, after_help = cli::EXIT_HELP)]
struct Cli {
    /// Administration commands; none runs the router.
    #[command(subcommand)]
    command: Option<cli::Command>,
    /// TOML configuration file (also after a command: `junction cluster status --config FILE`).
    #[arg(long, env = "JUNCTION_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// How administration commands print their result: text, or one JSON document on
    /// stdout (errors too, as {"error": ...}).
    #[arg(long, value_enum, default_value_t = cli::Output::Text, global = true)]
    output: cli::Output,
    /// WebSocket listen address, IP:PORT or HOST:PORT (overrides the file); "" disables
    /// [default: the file's, else 127.0.0.1:8080].
    #[arg(long, env = "JUNCTION_WS")]
    ws: Option<String>,
    /// HTTP path of the WebSocket endpoint [default: the file's, else /ws].
    #[arg(long, env = "JUNCTION_WS_PATH")]
    ws_path: Option<String>,
    /// RawSocket TCP listen address, IP:PORT or HOST:PORT (overrides the file); ""
    /// disables [default: the file's, else 127.0.0.1:8081].
    #[arg(long, env = "JUNCTION_RAWSOCKET")]
    rawsocket: Option<String>,
    /// RawSocket Unix domain socket path [default: the file's, else none].
    #[arg(long, env = "JUNCTION_UNIX")]
    unix: Option<PathBuf>,
    /// Realm to serve (repeatable; replaces the configured realms) [default: the
    /// file's, else realm1].
    #[arg(long = "realm")]
    realms: Vec<String>,
    /// Largest message accepted, in bytes [default: the file's, else 16777216].
    #[arg(long, env = "JUNCTION_MAX_MESSAGE_SIZE")]
    max_message_size: Option<usize>,
    /// Log as JSON lines.
    #[arg(long, env = "JUNCTION_LOG_JSON")]
    log_json: bool,
    /// Admin HTTP listen address, IP:PORT or HOST:PORT (/healthz, /readyz, /metrics,
    /// /api); "" disables [default: the file's, else 127.0.0.1:8090].
    #[arg(long, env = "JUNCTION_ADMIN")]
    admin: Option<String>,
}

/// Every problem of a configuration that the start refuses, as the start finds it:
/// the values ([`Config::problems`]) and the listeners' TLS files. (The admin token
/// file is read after, when the admin server is enabled.)
fn startup_problems(cfg: &Config) -> Vec<(String, ConfigError)> {
    let mut out = cfg.problems();
    out.extend(junction::transport::tls::problems(cfg).into_iter().map(|(key, e)| (key.to_owned(), e)));
    out
}

fn load(cli: &Cli) -> Result<Config, ConfigError> {
    let mut cfg = match &cli.config {
        Some(path) => Config::parse_file(path)?,
        None => Config::default(),
    };
    if let Some(ws) = &cli.ws {
        parse_listen("--ws", ws)?;
        cfg.websocket.listen = ws.clone();
    }
    if let Some(p) = &cli.ws_path {
        cfg.websocket.path = p.clone();
    }
    if let Some(rs) = &cli.rawsocket {
        parse_listen("--rawsocket", rs)?;
        cfg.rawsocket.listen = rs.clone();
    }
    if cli.unix.is_some() {
        cfg.rawsocket.unix = cli.unix.clone();
    }
    if !cli.realms.is_empty() {
        let check = cfg.realms.first().map(|r| r.uri_check).unwrap_or_default();
        let auth = cfg.realms.first().and_then(|r| r.auth.clone());
        cfg.realms = cli
            .realms
            .iter()
            .map(|n| RealmConfig {
                name: n.clone(),
                uri_check: check,
                auth: auth.clone(),
                history: Vec::new(),
                roles: Vec::new(),
            })
            .collect();
    }
    if let Some(a) = &cli.admin {
        parse_listen("--admin", a)?;
        cfg.admin.listen = a.clone();
    }
    if let Some(m) = cli.max_message_size {
        cfg.limits.max_message_size = m;
    }
    cfg.log.json |= cli.log_json;
    match startup_problems(&cfg).into_iter().next() {
        Some((_, e)) => Err(e),
        None => Ok(cfg),
    }
}

/// Starts the admin HTTP server: before the node joins the cluster, so liveness
/// probes pass while it joins. The default address may be taken (several routers on
/// one host): then the server is skipped with a warning.
async fn start_admin(cfg: &Config, guard: Option<Guard>) -> Result<(), String> {
    let (Some(addr), Some(guard)) = (cfg.admin_addr(), guard) else { return Ok(()) };
    if !guard.has_token() {
        tracing::warn!(
            "no admin token ([admin] token_file, {ADMIN_TOKEN_ENV} or {ADMIN_TOKEN_FILE_ENV}): the admin API \
             and console answer 401; only /healthz and /readyz{} are served",
            if cfg.admin.metrics_public { " and /metrics" } else { "" }
        );
    } else if guard.token_is_short() {
        tracing::warn!("the admin token is shorter than 16 characters: use a long random one");
    }
    match ops::admin::start(addr, guard).await {
        Ok(_) => Ok(()),
        Err(e) if cfg.admin.listen == DEFAULT_ADMIN_LISTEN => {
            tracing::warn!(error = %e, %addr, "admin HTTP server not started (set --admin to choose an address)");
            Ok(())
        }
        Err(e) => Err(format!("cannot listen for admin HTTP on {addr}: {e}")),
    }
}

/// Starts this node: joins (or forms) the cluster with the data-path `Link` service
/// on its gRPC port (returning once this node is a member and has applied its own
/// announcement), builds the router over the replica of the routing table the
/// cluster applies to, connects the links to the other nodes to it both ways, and
/// follows node purges.
async fn start_node(cfg: &Config) -> Result<Arc<Router>, ClusterError> {
    let (data_path, routes) = DataPath::new(&cfg.cluster);
    let table = Arc::default();
    let cluster = Cluster::start(&cfg.cluster, Arc::clone(&table), routes).await?;
    let replica = Replica::new(table, cluster.clone());
    let router = Router::with_replica(cfg.clone(), NodeId(cluster.id()), replica);
    router.set_links(data_path.connect(&cluster, router.clone()));
    tokio::spawn(junction::router::purge::watch(router.clone()));
    tokio::spawn(junction::router::interest::keep_synced(Arc::downgrade(&router)));
    tokio::spawn(junction::router::retained::keep_synced(Arc::downgrade(&router)));
    tokio::spawn(junction::router::reconcile::run(Arc::downgrade(&router)));
    for realm in router.realms() {
        junction::router::history::pin(&router, realm);
    }
    Ok(router)
}

async fn run(cfg: Config, admin_guard: Option<Guard>, reload_from: Option<Cli>) -> Result<(), String> {
    let signals = Signals::install()?;
    start_admin(&cfg, admin_guard).await?;
    let router = start_node(&cfg).await.map_err(|e| e.to_string())?;
    if let Some(cli) = reload_from {
        if let Some(path) = cli.config.clone() {
            tokio::spawn(junction::router::reload::watch(Arc::downgrade(&router), path));
        }
        router.set_config_loader(std::sync::Arc::new(move || load(&cli)));
    }
    let status: std::sync::Arc<dyn junction::observe::status::StatusSource> = router.clone();
    ops::attach(&status);
    let tls = |c: &Option<junction::config::TlsConfig>| {
        c.as_ref().map(Tls::load).transpose().map_err(|e| e.to_string())
    };
    let mut console = ops::api::ConsoleConfig {
        url: None,
        realm: cfg
            .admin
            .realm
            .clone()
            .or_else(|| cfg.realms.first().map(|r| r.name.clone()))
            .unwrap_or_default(),
        admin_role: cfg.admin.role.clone(),
    };
    if let Some(addr) = cfg.websocket_addr() {
        let local = listener::spawn_tcp(router.clone(), addr, Kind::WebSocket, tls(&cfg.websocket.tls)?)
            .await
            .map_err(|e| format!("cannot listen for WebSocket on {addr}: {e}"))?;
        let scheme = if cfg.websocket.tls.is_some() { "wss" } else { "ws" };
        console.url = Some(format!("{scheme}://{local}{}", cfg.websocket.path));
    }
    ops::admin::set_console_config(console);
    if let Some(addr) = cfg.rawsocket_addr() {
        listener::spawn_tcp(router.clone(), addr, Kind::RawSocket, tls(&cfg.rawsocket.tls)?)
            .await
            .map_err(|e| format!("cannot listen for RawSocket on {addr}: {e}"))?;
    }
    if let Some(path) = &cfg.rawsocket.unix {
        listener::spawn_unix(router.clone(), path)
            .await
            .map_err(|e| format!("cannot listen on Unix socket {}: {e}", path.display()))?;
    }
    if let Some(addr) = cfg.bridge_addr() {
        let tls = tls(&cfg.bridge.tls)?;
        let started = junction::transport::bridge::start(router.clone(), addr, tls).await;
        started.map_err(|e| format!("cannot listen for the HTTP bridge on {addr}: {e}"))?;
    }
    junction::transport::webhook::start(&router, &cfg.webhooks);
    router.set_listeners_up(true);
    println!("ready");
    tracing::info!(agent = junction::router::AGENT, realms = cfg.realms.len(), "router ready");
    let budget = ops::shutdown::budget(&cfg, ops::telemetry::exporters());
    tracing::info!(
        shutdown_budget_ms = budget.total().as_millis() as u64,
        steps = ?budget.steps,
        "a graceful shutdown takes at most this long (terminationGracePeriodSeconds must cover it plus preStop)"
    );
    signals.wait().await;
    ops::shutdown::watchdog(&budget);
    tracing::info!(sessions = router.session_count(), "shutting down");
    router.begin_drain();
    tokio::time::sleep(Duration::from_millis(cfg.admin.drain_delay_ms)).await;
    junction::router::drain::withdraw_registrations(&router, cfg.cluster.propose_timeout()).await;
    let idle =
        junction::router::drain::wait_idle(&router, Duration::from_millis(cfg.limits.drain_timeout_ms)).await;
    if !idle {
        tracing::warn!("calls still in flight after the drain timeout: they are answered with errors");
    }
    router.begin_shutdown();
    let deadline = tokio::time::Instant::now() + Duration::from_millis(cfg.limits.shutdown_grace_ms + 500);
    while router.session_count() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if tokio::time::timeout(ops::shutdown::LEAVE, router.replica.shutdown()).await.is_err() {
        tracing::warn!("leaving the cluster took longer than its bound; stopping anyway");
    }
    Ok(())
}

/// SIGINT/SIGTERM, installed before `ready` is printed so a signal right after it
/// drains instead of killing the process.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> Result<Signals, String> {
        use tokio::signal::unix::{SignalKind, signal};
        let err = |e: std::io::Error| format!("cannot install signal handlers: {e}");
        Ok(Signals {
            term: signal(SignalKind::terminate()).map_err(err)?,
            int: signal(SignalKind::interrupt()).map_err(err)?,
        })
    }

    async fn wait(mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
    }
}

/// The flags, or the exit: help and version on stdout (exit 0), a mistake on stderr
/// (or as `{"error": ...}` with `--output json`), exit 2.
fn parse_flags() -> Result<Cli, ExitCode> {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    match Cli::try_parse_from(&args) {
        Ok(cli) => Ok(cli),
        Err(e) if e.use_stderr() => {
            let json = args.windows(2).any(|w| w[0] == "--output" && w[1] == "json")
                || args.iter().any(|a| a == "--output=json");
            if json {
                let message = e.kind().as_str().map_or_else(|| e.to_string(), |k| format!("{k}: {e}"));
                println!("{}", serde_json::json!({ "error": message.trim(), "exit_code": 2 }));
                Err(ExitCode::from(2))
            } else {
                let _ = e.print();
                Err(ExitCode::from(2))
            }
        }
        Err(e) => {
            let _ = e.print();
            Err(ExitCode::SUCCESS)
        }
    }
}

fn main() -> ExitCode {
    let cli = match parse_flags() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    if let Some(cmd) = &cli.command {
        let result = cli::run(cmd, cli.config.as_deref(), cli.admin.as_deref());
        return cli::finish(cli.output, result);
    }
    let cfg = match load(&cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("junction: {e}");
            return ExitCode::from(2);
        }
    };
    // The admin token is read once, at start (a bad token file is a configuration error).
    let admin_guard = match cfg.admin_addr().map(|_| Guard::from_config(&cfg.admin)).transpose() {
        Ok(g) => g,
        Err(e) => {
            eprintln!("junction: {e}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("junction: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    {
        let _runtime = rt.enter(); // the OTLP exporters need a runtime
        ops::telemetry::init(&ops::telemetry::Options::from_config(&cfg));
    }
    let reload_from = cli.config.is_some().then(|| cli.clone());
    let result = rt.block_on(run(cfg, admin_guard, reload_from));
    ops::telemetry::shutdown();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("junction: {e}");
            ExitCode::FAILURE
        }
    }
}
