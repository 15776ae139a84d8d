//! Command-line interface: one subcommand per scenario (`rpc`, `pubsub`,
//! `sessions`, `relay`), the raw relay server (`relay-server`), and the offline
//! tools that read result lines (`compare` prints the comparison table, `chart`
//! draws the SVG).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use junction::wamp::codec::Serializer;

/// Load generator for WAMP routers (Junction, Crossbar.io, ...) and the raw relay.
#[derive(Parser, Debug)]
#[command(name = "junction-bench", version, about)]
pub struct Cli {
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// RPC: callers call an echo procedure registered by callees.
    Rpc(RpcArgs),
    /// Pub/sub: publishers publish, subscribers count deliveries and losses.
    Pubsub(PubsubArgs),
    /// Many idle sessions: connect time and router memory per session.
    Sessions(SessionsArgs),
    /// Route churn: new-topic SUBSCRIBEs (or new REGISTERs) per second.
    Churn(ChurnArgs),
    /// The HTTP bridge: calls or publications POSTed over keep-alive connections.
    Http(HttpArgs),
    /// Reconnect storm: N sessions with K subscriptions each drop at once and
    /// reconnect; the time until every subscription is back.
    Storm(StormArgs),
    /// Request/echo through the raw relay, the transport's ceiling for `rpc`.
    Relay(RelayArgs),
    /// Runs the raw relay server (pairs connections and forwards frames unparsed).
    RelayServer(RelayServerArgs),
    /// Prints the comparison table of a results file (JSON lines).
    Compare(CompareArgs),
    /// Draws the comparison chart (SVG) of a results file.
    Chart(ChartArgs),
}

/// Serializer names on the command line.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Ser {
    /// wamp.2.json
    Json,
    /// wamp.2.msgpack
    Msgpack,
    /// wamp.2.cbor
    Cbor,
}

impl From<Ser> for Serializer {
    fn from(s: Ser) -> Self {
        match s {
            Ser::Json => Serializer::Json,
            Ser::Msgpack => Serializer::MsgPack,
            Ser::Cbor => Serializer::Cbor,
        }
    }
}

/// Options every scenario takes.
#[derive(Args, Debug, Clone)]
pub struct Common {
    /// Router URL: ws://host:port/path (WebSocket) or rs://host:port (RawSocket).
    #[arg(long, default_value = "ws://127.0.0.1:8080/ws")]
    pub url: String,
    /// Realm to join.
    #[arg(long, default_value = "realm1")]
    pub realm: String,
    /// Serializer.
    #[arg(long, value_enum, default_value = "msgpack")]
    pub serializer: Ser,
    /// Measured duration in seconds.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Warm-up before measuring, in seconds.
    #[arg(long, default_value_t = 2.0)]
    pub warmup: f64,
    /// PIDs of the router's processes (comma separated or repeated) for CPU time and RSS.
    #[arg(long = "router-pid", value_delimiter = ',')]
    pub router_pid: Vec<u32>,
    /// Name of the system under test in the results (junction, crossbar, relay ...).
    #[arg(long, default_value = "unknown")]
    pub target: String,
    /// Label of this scenario run in the results (default: derived from the options).
    #[arg(long)]
    pub label: Option<String>,
    /// Load generator threads (1 = a single-threaded runtime).
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
    /// With `--router-pid`: also count every router syscall (recv, sendto, epoll_wait,
    /// futex ... which `/proc/PID/io` misses) with `perf stat` during the measured window.
    #[arg(long)]
    pub perf_syscalls: bool,
}

/// `rpc` options.
#[derive(Args, Debug, Clone)]
pub struct RpcArgs {
    #[command(flatten)]
    pub common: Common,
    /// Caller sessions.
    #[arg(long, default_value_t = 1)]
    pub callers: usize,
    /// Callee sessions (more than one share the registration round-robin).
    #[arg(long, default_value_t = 1)]
    pub callees: usize,
    /// Calls in flight per caller.
    #[arg(long, default_value_t = 128)]
    pub inflight: usize,
    /// Payload bytes per call (one string argument, echoed back).
    #[arg(long, default_value_t = 64)]
    pub payload: usize,
    /// Limit to this many calls per second in total (0 = as fast as possible).
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// Procedure to register and call (a run-unique suffix is added).
    #[arg(long, default_value = "bench.echo")]
    pub procedure: String,
    /// Connect the callees here instead of `--url` (e.g. another node of a cluster,
    /// to measure cross-node calls).
    #[arg(long)]
    pub callee_url: Option<String>,
    /// Write and flush every WAMP frame on its own (one write syscall per frame, as
    /// Autobahn|Python, wampy.js and most clients do) instead of writing queued
    /// frames together.
    #[arg(long)]
    pub frame_by_frame: bool,
}

/// `pubsub` options.
#[derive(Args, Debug, Clone)]
pub struct PubsubArgs {
    #[command(flatten)]
    pub common: Common,
    /// Publisher sessions.
    #[arg(long, default_value_t = 1)]
    pub publishers: usize,
    /// Subscriber sessions.
    #[arg(long, default_value_t = 10)]
    pub subscribers: usize,
    /// Topics: subscriber i subscribes to topic i mod T; publishers cycle through all.
    #[arg(long, default_value_t = 1)]
    pub topics: usize,
    /// Publications per publisher not yet acknowledged / not yet delivered to every subscriber.
    #[arg(long, default_value_t = 128)]
    pub inflight: usize,
    /// Payload bytes per event.
    #[arg(long, default_value_t = 64)]
    pub payload: usize,
    /// Limit to this many publications per second in total (0 = as fast as the window allows).
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// Topic prefix (a run-unique part is added).
    #[arg(long, default_value = "bench.topic")]
    pub topic: String,
    /// Connect the subscribers here instead of `--url` (e.g. another node of a
    /// cluster, to measure cross-node delivery). Repeat it to spread subscribers
    /// over several URLs round-robin (subscriber i on URL i mod N).
    #[arg(long)]
    pub subscriber_url: Vec<String>,
    /// Write and flush every WAMP frame on its own (one write syscall per frame, as
    /// Autobahn|Python, wampy.js and most clients do) instead of writing queued
    /// frames together.
    #[arg(long)]
    pub frame_by_frame: bool,
    /// How subscribers subscribe: `exact` (subscriber i on topic i mod T), or
    /// `prefix` / `wildcard` patterns over the topic space (see `--patterns`).
    #[arg(long = "match", value_enum, default_value = "exact")]
    pub match_policy: Match,
    /// With `--match prefix|wildcard`: N distinct patterns, subscriber i on pattern
    /// i mod N; topic t is `<topic>.g<t mod N>.t<t>.event`, matched by pattern g as
    /// prefix `<topic>.g<g>.` or wildcard `<topic>.g<g>..event`.
    #[arg(long, default_value_t = 1)]
    pub patterns: usize,
}

/// Subscription match policies on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Match {
    /// One concrete topic per subscriber.
    Exact,
    /// Prefix patterns.
    Prefix,
    /// Wildcard patterns.
    Wildcard,
}

/// `sessions` options.
#[derive(Args, Debug, Clone)]
pub struct SessionsArgs {
    #[command(flatten)]
    pub common: Common,
    /// Idle sessions to open.
    #[arg(long, default_value_t = 5000)]
    pub sessions: usize,
    /// Source addresses 127.0.0.2 ... to spread connections over (0 = one per 1,000 sessions).
    #[arg(long, default_value_t = 0)]
    pub sources: usize,
    /// Handshakes in progress at once.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Seconds to hold all sessions open before reading the router's memory.
    #[arg(long, default_value_t = 2.0)]
    pub hold: f64,
    /// Give up connecting after this many seconds.
    #[arg(long, default_value_t = 300.0)]
    pub timeout: f64,
}

/// What `churn` adds and removes.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ChurnKind {
    /// SUBSCRIBE to a new topic, then UNSUBSCRIBE.
    Subscribe,
    /// REGISTER a new procedure, then UNREGISTER.
    Register,
}

/// `churn` options.
#[derive(Args, Debug, Clone)]
pub struct ChurnArgs {
    #[command(flatten)]
    pub common: Common,
    /// Client sessions, each with one request at a time.
    #[arg(long, default_value_t = 20)]
    pub clients: usize,
    /// What each client adds and removes.
    #[arg(long, value_enum, default_value_t = ChurnKind::Subscribe)]
    pub kind: ChurnKind,
}

/// What `http` posts.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum HttpKind {
    /// `POST {bridge}/call` to an echo callee.
    Call,
    /// `POST {bridge}/publish` (acknowledged) to a topic one subscriber drains.
    Publish,
}

/// `http` options.
#[derive(Args, Debug, Clone)]
pub struct HttpArgs {
    #[command(flatten)]
    pub common: Common,
    /// The bridge's base URL, e.g. `http://127.0.0.1:8088/bridge`.
    #[arg(long)]
    pub bridge: String,
    /// Calls or publications.
    #[arg(long, value_enum, default_value_t = HttpKind::Call)]
    pub kind: HttpKind,
    /// HTTP clients, each on its own keep-alive connection, one request at a time.
    #[arg(long, default_value_t = 32)]
    pub connections: usize,
    /// Bytes of the one string argument.
    #[arg(long, default_value_t = 64)]
    pub payload: usize,
    /// Where the echo callee or the subscriber joins (default: `--url`).
    #[arg(long)]
    pub callee_url: Option<String>,
    /// An `Authorization` header value for the bridge (e.g. `Bearer TICKET`).
    #[arg(long)]
    pub auth: Option<String>,
}

/// `storm` options.
#[derive(Args, Debug, Clone)]
pub struct StormArgs {
    #[command(flatten)]
    pub common: Common,
    /// Sessions that drop and reconnect.
    #[arg(long, default_value_t = 10_000)]
    pub sessions: usize,
    /// Topics each session subscribes to (distinct per session: new topics).
    #[arg(long, default_value_t = 10)]
    pub topics: usize,
    /// Connection attempts (TCP + transport handshake + HELLO/WELCOME) in progress at once.
    #[arg(long, default_value_t = 512)]
    pub connect_concurrency: usize,
    /// Reconnect here after the drop (default: `--url`, the same node).
    #[arg(long)]
    pub reconnect_url: Option<String>,
    /// After the storm, publish one event per topic from a session connected here
    /// (e.g. another node of the cluster) and count the deliveries.
    #[arg(long)]
    pub verify_url: Option<String>,
    /// Source addresses 127.0.0.2 ... to spread connections over (0 = one per 1,000 sessions).
    #[arg(long, default_value_t = 0)]
    pub sources: usize,
    /// Seconds to wait between setting up all sessions and dropping them.
    #[arg(long, default_value_t = 1.0)]
    pub hold: f64,
    /// Give up on the setup or the storm after this many seconds each.
    #[arg(long, default_value_t = 300.0)]
    pub timeout: f64,
    /// With `--verify-url`: wait this many seconds after the last PUBLISHED for deliveries.
    #[arg(long, default_value_t = 10.0)]
    pub verify_timeout: f64,
}

/// `relay` options (the client side of the ceiling measurement).
#[derive(Args, Debug, Clone)]
pub struct RelayArgs {
    #[command(flatten)]
    pub common: Common,
    /// Caller/echoer pairs.
    #[arg(long, default_value_t = 1)]
    pub callers: usize,
    /// Requests in flight per pair.
    #[arg(long, default_value_t = 128)]
    pub inflight: usize,
    /// Payload bytes per request (same message as an RPC CALL).
    #[arg(long, default_value_t = 64)]
    pub payload: usize,
    /// Limit to this many requests per second in total (0 = as fast as possible).
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// Where the echoers connect (default: --url). With a `relay-server --forward`
    /// at --url that forwards to this relay, requests cross two relay processes each
    /// way: the shape of a call whose callee is on another node.
    #[arg(long)]
    pub echo_url: Option<String>,
}

/// `relay-server` options.
#[derive(Args, Debug, Clone)]
pub struct RelayServerArgs {
    /// WebSocket listen address ("" to disable).
    #[arg(long, default_value = "127.0.0.1:8090")]
    pub ws: String,
    /// Plain TCP listen address for RawSocket-framed traffic ("" to disable).
    #[arg(long, default_value = "127.0.0.1:8091")]
    pub rawsocket: String,
    /// Runtime worker threads (default: one per core, like the router).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Instead of pairing WebSocket connections, open one to this relay
    /// (`ws://HOST:PORT`, the same path and subprotocol) for each accepted and copy
    /// frames both ways: a second hop, as a link between two nodes is.
    #[arg(long)]
    pub forward: Option<String>,
}

/// `compare` options.
#[derive(Args, Debug, Clone)]
pub struct CompareArgs {
    /// Results file (JSON lines as printed after `RESULT `).
    pub input: PathBuf,
    /// Also write the table as Markdown here.
    #[arg(long)]
    pub markdown: Option<PathBuf>,
}

/// `chart` options.
#[derive(Args, Debug, Clone)]
pub struct ChartArgs {
    /// Results file (JSON lines).
    pub input: PathBuf,
    /// SVG file to write.
    #[arg(long, default_value = "bench/results/latest.svg")]
    pub out: PathBuf,
    /// Title line (e.g. date and machine).
    #[arg(long, default_value = "")]
    pub title: String,
}
