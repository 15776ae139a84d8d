//! The process-wide metrics registry: cheap atomic counters, gauges and a latency
//! histogram that the router, transports and cluster update, rendered for the
//! Prometheus scrape endpoint (`/metrics`) and read by the OTLP exporter
//! (`ops::otlp`, which also hands over its call-latency instrument through
//! [`export_call_latency`]).
//!
//! Hot-path calls ([`message_in`], [`message_out`], [`call_latency`],
//! [`events_delivered`]) are one relaxed atomic add on a metric created up front:
//! no allocation, no lock. Labeled series (sessions, auth failures, peers) are looked
//! up once and kept by the caller ([`session_joined`] returns a guard, [`link`]
//! returns the peer's counters).

use std::sync::OnceLock;
use std::time::Instant;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::histogram::LatencyHistogram;
use super::labeled::Labeled;
use crate::wamp::message::code;

/// WAMP message types by code, with the `type` label they are counted under.
pub const MESSAGE_TYPES: [(u64, &str); 24] = [
    (code::HELLO, "hello"),
    (code::WELCOME, "welcome"),
    (code::ABORT, "abort"),
    (code::CHALLENGE, "challenge"),
    (code::AUTHENTICATE, "authenticate"),
    (code::GOODBYE, "goodbye"),
    (code::ERROR, "error"),
    (code::PUBLISH, "publish"),
    (code::PUBLISHED, "published"),
    (code::SUBSCRIBE, "subscribe"),
    (code::SUBSCRIBED, "subscribed"),
    (code::UNSUBSCRIBE, "unsubscribe"),
    (code::UNSUBSCRIBED, "unsubscribed"),
    (code::EVENT, "event"),
    (code::CALL, "call"),
    (code::CANCEL, "cancel"),
    (code::RESULT, "result"),
    (code::REGISTER, "register"),
    (code::REGISTERED, "registered"),
    (code::UNREGISTER, "unregister"),
    (code::UNREGISTERED, "unregistered"),
    (code::INVOCATION, "invocation"),
    (code::INTERRUPT, "interrupt"),
    (code::YIELD, "yield"),
];

/// The message types a router receives from clients (the `type` values of
/// `junction_messages_received_total`, with "other": a type only a router sends,
/// which is a protocol violation when a client sends it).
pub const RECEIVED_TYPES: [u64; 13] = [
    code::HELLO,
    code::ABORT,
    code::AUTHENTICATE,
    code::GOODBYE,
    code::ERROR,
    code::PUBLISH,
    code::SUBSCRIBE,
    code::UNSUBSCRIBE,
    code::CALL,
    code::CANCEL,
    code::REGISTER,
    code::UNREGISTER,
    code::YIELD,
];

/// The message types a router sends to clients (the `type` values of
/// `junction_messages_sent_total`; no other type is ever sent).
pub const SENT_TYPES: [u64; 14] = [
    code::WELCOME,
    code::ABORT,
    code::CHALLENGE,
    code::GOODBYE,
    code::ERROR,
    code::PUBLISHED,
    code::SUBSCRIBED,
    code::UNSUBSCRIBED,
    code::EVENT,
    code::RESULT,
    code::REGISTERED,
    code::UNREGISTERED,
    code::INVOCATION,
    code::INTERRUPT,
];

/// The `type` label of a message code ("other" for an unknown code).
pub fn type_name(code: u64) -> &'static str {
    MESSAGE_TYPES.iter().find(|t| t.0 == code).map(|t| t.1).unwrap_or("other")
}

/// Message counters by type for one direction: one counter per type that can
/// occur in that direction (created up front, so counting is one atomic add),
/// plus one for the rest, exposed as "other" only where it can occur.
#[derive(Clone, Debug)]
pub struct TypeCounters {
    /// The exposed `type` label values, in the order of `counters`.
    names: Vec<&'static str>,
    /// One per name, then (when "other" is not exposed) a hidden catch-all.
    counters: Vec<Counter>,
    /// Message code -> index into `counters`.
    index: [u8; 128],
}

impl TypeCounters {
    fn new(codes: &[u64], other: bool, family: &Labeled<Counter>) -> TypeCounters {
        let mut names: Vec<&'static str> = codes.iter().map(|c| type_name(*c)).collect();
        if other {
            names.push("other");
        }
        let mut counters: Vec<Counter> = names.iter().map(|n| family.get(&[("type", n)])).collect();
        if !other {
            counters.push(Counter::default());
        }
        let mut index = [codes.len() as u8; 128];
        for (i, c) in codes.iter().enumerate() {
            index[*c as usize] = i as u8;
        }
        TypeCounters { names, counters, index }
    }

    #[inline]
    fn of(&self, code: u64) -> &Counter {
        let i = self.index.get(code as usize).map_or(self.counters.len() - 1, |i| *i as usize);
        &self.counters[i]
    }

    /// Counts `n` messages of type `code`.
    #[inline]
    pub fn inc_by(&self, code: u64, n: u64) {
        self.of(code).inc_by(n);
    }

    /// The exposed types with their counts.
    pub fn counts(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        self.names.iter().copied().zip(self.counters.iter().map(Counter::get))
    }

    /// All messages counted.
    pub fn total(&self) -> u64 {
        self.counters.iter().map(Counter::get).sum()
    }
}

/// How a call made on this node ended (the `outcome` label of
/// `junction_calls_total`): a RESULT, an application ERROR from the callee, or the
/// router's own errors: canceled, timed out, no such procedure, no callee
/// reachable (unavailable, no available callee, cluster unavailable), or refused
/// (any other router error: not authorized, invalid argument, limits...).
pub const CALL_OUTCOMES: [&str; 7] =
    ["result", "error", "canceled", "timeout", "no_such_procedure", "unavailable", "refused"];

/// The outcome label of a call that ended with `error` (None: a RESULT).
pub fn call_outcome(error: Option<&str>) -> &'static str {
    use crate::wamp::errors;
    match error {
        None => "result",
        Some(errors::CANCELED) => "canceled",
        Some(errors::TIMEOUT) => "timeout",
        Some(errors::NO_SUCH_PROCEDURE) => "no_such_procedure",
        Some(errors::UNAVAILABLE | errors::NO_AVAILABLE_CALLEE | errors::CLUSTER_UNAVAILABLE) => {
            "unavailable"
        }
        Some(e) if e.starts_with("wamp.error.") || e.starts_with("junction.error.") => "refused",
        Some(_) => "error",
    }
}

/// Why a connection or HELLO was refused before a session joined (the `reason`
/// label of `junction_sessions_refused_total`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// `[limits] max_sessions` sessions are joined on this node.
    MaxSessions = 0,
    /// `[limits] max_sessions_per_ip` sessions come from the client's address.
    MaxSessionsPerIp,
    /// The address failed to authenticate too often.
    RateLimited,
    /// The HELLO named a realm this router does not serve.
    NoSuchRealm,
    /// Authentication failed (bad credentials, unknown authid, refused by an
    /// authenticator...).
    AuthFailed,
    /// The realm's authentication is misconfigured.
    AuthUnavailable,
    /// No WELCOME within `handshake_timeout_ms` of connecting.
    HandshakeTimeout,
    /// The node is draining: new connections are not accepted.
    Draining,
    /// A WebSocket upgrade was refused (path, origin, subprotocol).
    Upgrade,
}

/// The `reason` label values of `junction_sessions_refused_total`, in [`Refused`] order.
pub const REFUSED_REASONS: [&str; 9] = [
    "max_sessions",
    "max_sessions_per_ip",
    "rate_limited",
    "no_such_realm",
    "auth_failed",
    "auth_unavailable",
    "handshake_timeout",
    "draining",
    "upgrade",
];

/// Why a Raft proposal failed (the `reason` label of
/// `junction_raft_proposal_failures_total`): no leader committed it in time, it
/// was committed but not applied here in time, the leader refused it, or the
/// request to the leader failed.
pub const PROPOSAL_FAILURES: [&str; 4] = ["no_quorum", "not_applied", "refused", "unreachable"];

/// Raft state of this node, as sampled from openraft's metrics.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RaftSample {
    /// Current term.
    pub term: u64,
    /// Leader's node id, 0 when none is known.
    pub leader: u64,
    /// This node is the leader.
    pub is_leader: bool,
    /// Last log index (-1 for none).
    pub last_log_index: i64,
    /// Highest committed index known here (-1 for none).
    pub commit_index: i64,
    /// Last applied index (-1 for none).
    pub applied_index: i64,
    /// Members (voters and learners) in the membership.
    pub members: i64,
    /// Voters in the membership.
    pub voters: i64,
}

/// Raft gauges.
#[derive(Debug, Default)]
pub struct RaftGauges {
    pub term: Gauge,
    pub leader: Gauge,
    pub is_leader: Gauge,
    pub last_log_index: Gauge,
    pub commit_index: Gauge,
    pub applied_index: Gauge,
    pub apply_lag: Gauge,
    pub members: Gauge,
    pub voters: Gauge,
}

/// Every metric of the process.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Joined sessions by realm, transport and serializer.
    pub sessions: Labeled<Gauge>,
    /// Messages received, by type ([`RECEIVED_TYPES`] and "other").
    pub messages_in: TypeCounters,
    /// Messages sent, by type ([`SENT_TYPES`]).
    pub messages_out: TypeCounters,
    /// CALL to RESULT/ERROR, seconds, as seen by the caller's node.
    pub call_latency: LatencyHistogram,
    /// Calls made on this node that ended, by outcome ([`CALL_OUTCOMES`]).
    pub calls: Labeled<Counter>,
    call_counters: Vec<Counter>,
    /// Calls made on this node in flight (sampled).
    pub calls_in_flight: Gauge,
    /// Subscription interest of this node's that lingers after its last local
    /// subscriber left, still held by the other nodes (sampled).
    pub interest_lingering: Gauge,
    /// Registrations in the routing table, by realm (sampled).
    pub registrations: Labeled<Gauge>,
    /// Subscriptions (topics with subscribers on any node), by realm (sampled).
    pub subscriptions: Labeled<Gauge>,
    /// Connections and HELLOs refused before a session joined, by [`REFUSED_REASONS`].
    pub sessions_refused: Labeled<Counter>,
    refused: Vec<Counter>,
    /// Raft proposals from this node, from proposing to applied here, seconds.
    pub raft_proposal_latency: LatencyHistogram,
    /// Raft proposals from this node that failed, by [`PROPOSAL_FAILURES`].
    pub raft_proposal_failures: Labeled<Counter>,
    /// Times the data-path link to a peer came up again after it broke, by peer.
    pub link_reconnects: Labeled<Counter>,
    /// Events of subscriber webhooks, by webhook and outcome (delivered, dropped
    /// from a full queue, failed after the retries).
    pub webhook_events: Labeled<Counter>,
    /// Resident set size of this process, bytes (sampled).
    pub process_rss: Gauge,
    /// User and system CPU time of this process, seconds (sampled).
    pub process_cpu: Counter<f64, std::sync::atomic::AtomicU64>,
    /// Open file descriptors of this process (sampled).
    pub process_open_fds: Gauge,
    /// This process's limit of open file descriptors (sampled).
    pub process_max_fds: Gauge,
    /// EVENTs queued to subscribers.
    pub events_delivered: Counter,
    /// EVENTs not queued (subscriber's queue full or gone).
    pub events_dropped: Counter,
    /// Bytes queued in all sessions' outbound queues (sampled).
    pub outbound_queue_bytes: Gauge,
    /// Frames in the fullest session's outbound queue (sampled).
    pub outbound_queue_frames_max: Gauge,
    /// Sessions disconnected because their outbound queue overflowed.
    pub slow_consumer_disconnects: Counter,
    /// Failed authentications, by method.
    pub auth_failures: Labeled<Counter>,
    /// Raft state.
    pub raft: RaftGauges,
    /// 1 when the data-path link to a peer is up, by peer.
    pub link_up: Labeled<Gauge>,
    /// Bytes sent to a peer over the data-path link.
    pub link_bytes_sent: Labeled<Counter>,
    /// Bytes received from a peer over the data-path link.
    pub link_bytes_received: Labeled<Counter>,
    /// Frames sent to a peer over the data-path link.
    pub link_frames_sent: Labeled<Counter>,
    /// Frames received from a peer over the data-path link.
    pub link_frames_received: Labeled<Counter>,
    /// Frames for a peer not sent, by peer and reason ([`DROP_REASONS`]).
    pub link_frames_dropped: Labeled<Counter>,
    /// Gaps in the numbering of the frames received from a peer.
    pub link_gaps: Labeled<Counter>,
    /// Frames a peer numbered that never arrived.
    pub link_frames_missed: Labeled<Counter>,
    /// 1 while `/readyz` would answer 200.
    pub ready: Gauge,
    /// 1 once a graceful drain started.
    pub draining: Gauge,
    /// Process start, seconds since the Unix epoch.
    pub start_time: Gauge,
}

/// The process-wide metrics.
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

impl Metrics {
    fn new() -> Metrics {
        let messages_in_family = Labeled::<Counter>::default();
        let messages_out_family = Labeled::<Counter>::default();
        let calls = Labeled::<Counter>::default();
        let call_counters = CALL_OUTCOMES.iter().map(|o| calls.get(&[("outcome", o)])).collect();
        let sessions_refused = Labeled::<Counter>::default();
        let refused = REFUSED_REASONS.iter().map(|r| sessions_refused.get(&[("reason", r)])).collect();
        let raft_proposal_failures = Labeled::<Counter>::default();
        for reason in PROPOSAL_FAILURES {
            raft_proposal_failures.get(&[("reason", reason)]);
        }
        let m = Metrics {
            registry: Registry::default(),
            sessions: Labeled::default(),
            messages_in: TypeCounters::new(&RECEIVED_TYPES, true, &messages_in_family),
            messages_out: TypeCounters::new(&SENT_TYPES, false, &messages_out_family),
            call_latency: LatencyHistogram::default(),
            calls,
            call_counters,
            calls_in_flight: Gauge::default(),
            interest_lingering: Gauge::default(),
            registrations: Labeled::default(),
            subscriptions: Labeled::default(),
            sessions_refused,
            refused,
            raft_proposal_latency: LatencyHistogram::default(),
            raft_proposal_failures,
            link_reconnects: Labeled::default(),
            webhook_events: Labeled::default(),
            process_rss: Gauge::default(),
            process_cpu: Counter::default(),
            process_open_fds: Gauge::default(),
            process_max_fds: Gauge::default(),
            events_delivered: Counter::default(),
            events_dropped: Counter::default(),
            outbound_queue_bytes: Gauge::default(),
            outbound_queue_frames_max: Gauge::default(),
            slow_consumer_disconnects: Counter::default(),
            auth_failures: Labeled::default(),
            raft: RaftGauges::default(),
            link_up: Labeled::default(),
            link_bytes_sent: Labeled::default(),
            link_bytes_received: Labeled::default(),
            link_frames_sent: Labeled::default(),
            link_frames_received: Labeled::default(),
            link_frames_dropped: Labeled::default(),
            link_gaps: Labeled::default(),
            link_frames_missed: Labeled::default(),
            ready: Gauge::default(),
            draining: Gauge::default(),
            start_time: Gauge::default(),
        };
        let started = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
        m.start_time.set(started.map(|d| d.as_secs() as i64).unwrap_or(0));
        let build_info = Labeled::<Gauge>::default();
        build_info.get(&[("version", env!("CARGO_PKG_VERSION"))]).set(1);
        let mut m = m;
        let r = &mut m.registry;
        r.register("junction_build_info", "Junction version (always 1)", build_info);
        r.register("junction_start_time_seconds", "Process start time, Unix seconds", m.start_time.clone());
        r.register("junction_ready", "1 while /readyz answers 200", m.ready.clone());
        r.register("junction_draining", "1 once a graceful drain started", m.draining.clone());
        r.register(
            "junction_sessions",
            "Joined WAMP sessions on this node by realm, transport and serializer",
            m.sessions.clone(),
        );
        r.register("junction_messages_received", "WAMP messages received, by type", messages_in_family);
        r.register("junction_messages_sent", "WAMP messages sent, by type", messages_out_family);
        r.register(
            "junction_call_duration_seconds",
            "Time from CALL to RESULT or ERROR on the caller's node",
            m.call_latency.clone(),
        );
        r.register("junction_calls", "Calls made on this node that ended, by outcome", m.calls.clone());
        r.register(
            "junction_calls_in_flight",
            "Calls made on this node in flight",
            m.calls_in_flight.clone(),
        );
        r.register(
            "junction_subscription_interest_lingering",
            "Subscriptions this node has no subscriber for any more that the other nodes still route to it (withdrawn within 2.5 s)",
            m.interest_lingering.clone(),
        );
        r.register(
            "junction_registrations",
            "Registrations (procedures) in the routing table, by realm",
            m.registrations.clone(),
        );
        r.register(
            "junction_subscriptions",
            "Subscriptions (topics with subscribers on any node), by realm",
            m.subscriptions.clone(),
        );
        r.register(
            "junction_sessions_refused",
            "Connections and HELLOs refused before a session joined, by reason",
            m.sessions_refused.clone(),
        );
        r.register("junction_events_delivered", "EVENTs queued to subscribers", m.events_delivered.clone());
        r.register(
            "junction_events_dropped",
            "EVENTs not delivered because the subscriber's queue was full or gone",
            m.events_dropped.clone(),
        );
        r.register(
            "junction_outbound_queue_bytes",
            "Bytes waiting in all sessions' outbound queues",
            m.outbound_queue_bytes.clone(),
        );
        r.register(
            "junction_outbound_queue_frames_max",
            "Frames waiting in the fullest session's outbound queue",
            m.outbound_queue_frames_max.clone(),
        );
        r.register(
            "junction_slow_consumer_disconnects",
            "Sessions disconnected because their outbound queue overflowed",
            m.slow_consumer_disconnects.clone(),
        );
        r.register("junction_auth_failures", "Failed authentications, by method", m.auth_failures.clone());
        let g = &m.raft;
        r.register("junction_raft_term", "Current Raft term", g.term.clone());
        r.register("junction_raft_leader_id", "Node id of the Raft leader, 0 when unknown", g.leader.clone());
        r.register("junction_raft_is_leader", "1 when this node is the Raft leader", g.is_leader.clone());
        r.register(
            "junction_raft_last_log_index",
            "Index of the last Raft log entry",
            g.last_log_index.clone(),
        );
        r.register(
            "junction_raft_commit_index",
            "Highest committed Raft index known here",
            g.commit_index.clone(),
        );
        r.register(
            "junction_raft_applied_index",
            "Last Raft index applied to the state machine",
            g.applied_index.clone(),
        );
        r.register(
            "junction_raft_apply_lag",
            "Committed but not yet applied Raft entries",
            g.apply_lag.clone(),
        );
        r.register(
            "junction_raft_members",
            "Members (voters and learners) of the Raft membership",
            g.members.clone(),
        );
        r.register("junction_raft_voters", "Voters of the Raft membership", g.voters.clone());
        r.register(
            "junction_raft_proposal_duration_seconds",
            "Raft proposals from this node, from proposing until applied here",
            m.raft_proposal_latency.clone(),
        );
        r.register(
            "junction_raft_proposal_failures",
            "Raft proposals from this node that failed, by reason",
            m.raft_proposal_failures.clone(),
        );
        r.register("junction_link_up", "1 when the data-path link to a peer is up", m.link_up.clone());
        r.register(
            "junction_link_bytes_sent",
            "Bytes sent to a peer over the data path",
            m.link_bytes_sent.clone(),
        );
        r.register(
            "junction_link_bytes_received",
            "Bytes received from a peer over the data path",
            m.link_bytes_received.clone(),
        );
        r.register(
            "junction_link_frames_sent",
            "Frames sent to a peer over the data path",
            m.link_frames_sent.clone(),
        );
        r.register(
            "junction_link_frames_received",
            "Frames received from a peer over the data path",
            m.link_frames_received.clone(),
        );
        r.register(
            "junction_link_frames_dropped",
            "Frames for a peer not sent: link down, queue full, or queue discarded when the link broke",
            m.link_frames_dropped.clone(),
        );
        r.register(
            "junction_link_gaps",
            "Gaps in the numbering of the frames received from a peer",
            m.link_gaps.clone(),
        );
        r.register(
            "junction_link_frames_missed",
            "Frames a peer numbered that never arrived",
            m.link_frames_missed.clone(),
        );
        r.register(
            "junction_link_reconnects",
            "Times the data-path link to a peer came up again after it broke",
            m.link_reconnects.clone(),
        );
        r.register(
            "junction_webhook_events",
            "Events of subscriber webhooks, by outcome: delivered, dropped (queue full), failed (retries spent)",
            m.webhook_events.clone(),
        );
        r.register("process_resident_memory_bytes", "Resident memory size, bytes", m.process_rss.clone());
        r.register("process_cpu_seconds", "User and system CPU time spent, seconds", m.process_cpu.clone());
        r.register("process_open_fds", "Open file descriptors", m.process_open_fds.clone());
        r.register("process_max_fds", "Limit of open file descriptors", m.process_max_fds.clone());
        m
    }

    /// Samples the process gauges (memory, CPU time, file descriptors) from
    /// `/proc/self` and `getrusage`; what cannot be read stays as it was.
    pub fn sample_process(&self) {
        if let Some(rss) = super::process::rss_bytes() {
            self.process_rss.set(rss as i64);
        }
        if let Some(cpu) = super::process::cpu_seconds() {
            let seen = self.process_cpu.get();
            if cpu > seen {
                self.process_cpu.inc_by(cpu - seen);
            }
        }
        if let Some(n) = super::process::open_fds() {
            self.process_open_fds.set(n as i64);
        }
        if let Some(n) = super::process::max_fds() {
            self.process_max_fds.set(n as i64);
        }
    }

    /// Sets the sampled registration and subscription counts of `realm`.
    pub fn set_routes(&self, realm: &str, registrations: usize, subscriptions: usize) {
        self.registrations.get(&[("realm", realm)]).set(registrations as i64);
        self.subscriptions.get(&[("realm", realm)]).set(subscriptions as i64);
    }

    /// Updates the Raft gauges.
    pub fn set_raft(&self, s: &RaftSample) {
        let g = &self.raft;
        g.term.set(s.term as i64);
        g.leader.set(s.leader as i64);
        g.is_leader.set(i64::from(s.is_leader));
        g.last_log_index.set(s.last_log_index);
        g.commit_index.set(s.commit_index);
        g.applied_index.set(s.applied_index);
        g.apply_lag.set((s.commit_index - s.applied_index).max(0));
        g.members.set(s.members);
        g.voters.set(s.voters);
    }

    /// Sets the state of the data-path link to `peer`.
    pub fn set_link_up(&self, peer: u64, up: bool) {
        self.link_up.get(&[("peer", &peer.to_string())]).set(i64::from(up));
    }

    /// Sets the sampled outbound queue depth.
    pub fn set_outbound_queue(&self, total_bytes: u64, max_frames: u64) {
        self.outbound_queue_bytes.set(total_bytes as i64);
        self.outbound_queue_frames_max.set(max_frames as i64);
    }

    /// The registry, OpenMetrics text (`application/openmetrics-text`).
    pub fn render_openmetrics(&self) -> String {
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::warn!(error = %e, "cannot encode metrics");
        }
        out
    }

    /// The registry in the Prometheus text format 0.0.4 (`text/plain; version=0.0.4`).
    pub fn render_prometheus(&self) -> String {
        to_prometheus_text(&self.render_openmetrics())
    }
}

/// Rewrites OpenMetrics text as Prometheus 0.0.4 text: counters' HELP and TYPE name
/// the `_total` series, and `# EOF` / `# UNIT` lines go.
pub fn to_prometheus_text(openmetrics: &str) -> String {
    let counters: Vec<&str> =
        openmetrics.lines().filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter")).collect();
    let mut out = String::with_capacity(openmetrics.len() + counters.len() * 16);
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let meta = ["# HELP ", "# TYPE "].iter().find_map(|p| Some((*p, line.strip_prefix(p)?)));
        match meta {
            Some((prefix, rest)) => {
                let name = rest.split(' ').next().unwrap_or_default();
                if counters.contains(&name) {
                    out.push_str(prefix);
                    out.push_str(name);
                    out.push_str("_total");
                    out.push_str(&rest[name.len()..]);
                } else {
                    out.push_str(line);
                }
            }
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

/// Counts one message received from a client (`code` is the WAMP message code).
#[inline]
pub fn message_in(code: u64) {
    metrics().messages_in.inc_by(code, 1);
}

/// Counts one message sent to a client.
#[inline]
pub fn message_out(code: u64) {
    metrics().messages_out.inc_by(code, 1);
}

/// Counts `n` messages of one type sent to clients (a fan-out).
#[inline]
pub fn messages_out(code: u64, n: u64) {
    metrics().messages_out.inc_by(code, n);
}

/// Counts a call made on this node that ended with `error` (None: a RESULT).
pub fn call_ended(error: Option<&str>) {
    let outcome = call_outcome(error);
    let m = metrics();
    if let Some(i) = CALL_OUTCOMES.iter().position(|o| *o == outcome) {
        m.call_counters[i].inc();
    }
}

/// Counts a connection or HELLO refused before a session joined.
pub fn session_refused(why: Refused) {
    metrics().refused[why as usize].inc();
}

/// The OTLP Raft-proposal-latency instrument, while OTLP metrics are exported.
static PROPOSAL_LATENCY_EXPORT: OnceLock<opentelemetry::metrics::Histogram<f64>> = OnceLock::new();

/// Records every later Raft proposal latency into `instrument` as well.
pub fn export_proposal_latency(instrument: opentelemetry::metrics::Histogram<f64>) {
    PROPOSAL_LATENCY_EXPORT.set(instrument).ok();
}

/// Records a Raft proposal that took `secs` and failed for `failure` (one of
/// [`PROPOSAL_FAILURES`]) if it did.
pub fn raft_proposal(secs: f64, failure: Option<&'static str>) {
    let m = metrics();
    m.raft_proposal_latency.observe(secs);
    if let Some(h) = PROPOSAL_LATENCY_EXPORT.get() {
        h.record(secs, &[]);
    }
    if let Some(why) = failure {
        m.raft_proposal_failures.get(&[("reason", why)]).inc();
    }
}

/// The OTLP call-latency instrument, while OTLP metrics are exported.
static CALL_LATENCY_EXPORT: OnceLock<opentelemetry::metrics::Histogram<f64>> = OnceLock::new();

/// Records every later call latency into `instrument` as well (once, by the OTLP
/// exporter when it starts).
pub fn export_call_latency(instrument: opentelemetry::metrics::Histogram<f64>) {
    CALL_LATENCY_EXPORT.set(instrument).ok();
}

/// Records a call's latency (CALL to RESULT/ERROR), seconds.
#[inline]
pub fn call_latency(secs: f64) {
    metrics().call_latency.observe(secs);
    if let Some(h) = CALL_LATENCY_EXPORT.get() {
        h.record(secs, &[]);
    }
}

/// Records a call's latency from when it started.
#[inline]
pub fn call_finished(started: Instant) {
    call_latency(started.elapsed().as_secs_f64());
}

/// Counts EVENTs queued to subscribers.
#[inline]
pub fn events_delivered(n: u64) {
    metrics().events_delivered.inc_by(n);
}

/// Counts EVENTs that could not be queued.
#[inline]
pub fn events_dropped(n: u64) {
    metrics().events_dropped.inc_by(n);
}

/// Counts a slow-consumer disconnect.
pub fn slow_consumer_disconnect() {
    metrics().slow_consumer_disconnects.inc();
}

/// Counts a failed authentication with `method` ("ticket", "wampcra", ...).
pub fn auth_failure(method: &str) {
    metrics().auth_failures.get(&[("method", method)]).inc();
}

/// Keeps a session counted in `junction_sessions` until dropped.
#[derive(Debug)]
#[must_use = "the session stops being counted when the guard is dropped"]
pub struct SessionGauge(Gauge);

impl Drop for SessionGauge {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Counts a joined session; keep the guard for as long as the session is joined.
/// `transport` is "websocket", "rawsocket" or "unix"; `serializer` "json",
/// "msgpack" or "cbor".
pub fn session_joined(realm: &str, transport: &str, serializer: &str) -> SessionGauge {
    let g = metrics().sessions.get(&[("realm", realm), ("transport", transport), ("serializer", serializer)]);
    g.inc();
    SessionGauge(g)
}

/// Why a frame for a peer was not sent (the `reason` label of
/// `junction_link_frames_dropped`): the link was down, its queue was full, or the
/// queue was discarded when the link broke.
pub const DROP_REASONS: [&str; 3] = ["down", "full", "discarded"];

/// The counters of the data-path link to one peer; keep them per stream.
#[derive(Clone, Debug)]
pub struct LinkCounters {
    /// Bytes sent to the peer.
    pub bytes_sent: Counter,
    /// Bytes received from the peer.
    pub bytes_received: Counter,
    /// Frames sent to the peer.
    pub frames_sent: Counter,
    /// Frames received from the peer.
    pub frames_received: Counter,
    /// Frames not sent, by [`DROP_REASONS`].
    pub dropped: [Counter; 3],
    /// Gaps in the numbering of the peer's frames.
    pub gaps: Counter,
    /// Frames the peer numbered that never arrived.
    pub frames_missed: Counter,
    /// Times the link came up again after it broke.
    pub reconnects: Counter,
}

/// Why a frame for a peer was not sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropReason {
    /// The link was down.
    Down = 0,
    /// The peer's queue was full.
    Full = 1,
    /// The queue was discarded when the link broke.
    Discarded = 2,
}

impl LinkCounters {
    /// Counts `n` frames not sent for `why`.
    pub fn dropped(&self, why: DropReason, n: u64) {
        self.dropped[why as usize].inc_by(n);
    }

    /// Frames not sent so far, all reasons.
    pub fn dropped_total(&self) -> u64 {
        self.dropped.iter().map(Counter::get).sum()
    }
}

/// Counts one event of subscriber webhook `webhook` by `outcome`.
pub fn webhook_event(webhook: &str, outcome: &'static str) {
    metrics().webhook_events.get(&[("webhook", webhook), ("outcome", outcome)]).inc();
}

/// The counters of the link to `peer`.
pub fn link(peer: u64) -> LinkCounters {
    let peer = peer.to_string();
    let m = metrics();
    let p = [("peer", peer.as_str())];
    LinkCounters {
        bytes_sent: m.link_bytes_sent.get(&p),
        bytes_received: m.link_bytes_received.get(&p),
        frames_sent: m.link_frames_sent.get(&p),
        frames_received: m.link_frames_received.get(&p),
        dropped: DROP_REASONS.map(|why| m.link_frames_dropped.get(&[("peer", &peer), ("reason", why)])),
        gaps: m.link_gaps.get(&p),
        frames_missed: m.link_frames_missed.get(&p),
        reconnects: m.link_reconnects.get(&p),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_map_to_type_labels() {
        assert_eq!(type_name(code::CALL), "call");
        assert_eq!(type_name(code::EVENT), "event");
        assert_eq!(type_name(code::YIELD), "yield");
        assert_eq!(type_name(7), "other");
        assert_eq!(type_name(u64::MAX), "other");
    }

    #[test]
    fn message_types_are_exposed_only_in_their_direction() {
        let m = metrics();
        let received: Vec<&str> = m.messages_in.counts().map(|(n, _)| n).collect();
        let sent: Vec<&str> = m.messages_out.counts().map(|(n, _)| n).collect();
        assert!(received.contains(&"call") && received.contains(&"yield") && received.contains(&"other"));
        assert!(!received.contains(&"welcome") && !received.contains(&"event"));
        assert!(sent.contains(&"event") && sent.contains(&"invocation"));
        assert!(!sent.contains(&"call") && !sent.contains(&"hello") && !sent.contains(&"other"));
        let before = m.messages_in.total();
        message_in(code::WELCOME); // a client sending WELCOME: counted as "other"
        assert!(m.messages_in.counts().any(|(n, c)| n == "other" && c >= 1));
        assert!(m.messages_in.total() > before);
        let text = m.render_prometheus();
        assert!(!text.contains("junction_messages_sent_total{type=\"call\"}"), "{text}");
        assert!(!text.contains("junction_messages_received_total{type=\"event\"}"), "{text}");
    }

    #[test]
    fn calls_are_counted_by_outcome() {
        assert_eq!(call_outcome(None), "result");
        assert_eq!(call_outcome(Some("wamp.error.canceled")), "canceled");
        assert_eq!(call_outcome(Some("wamp.error.timeout")), "timeout");
        assert_eq!(call_outcome(Some("wamp.error.no_such_procedure")), "no_such_procedure");
        assert_eq!(call_outcome(Some("wamp.error.no_available_callee")), "unavailable");
        assert_eq!(call_outcome(Some("wamp.error.not_authorized")), "refused");
        assert_eq!(call_outcome(Some("com.example.error.out_of_stock")), "error");
        call_ended(Some("wamp.error.timeout"));
        session_refused(Refused::Draining);
        raft_proposal(0.002, Some("no_quorum"));
        metrics().sample_process();
        let text = metrics().render_prometheus();
        for line in [
            "junction_calls_total{outcome=\"timeout\"} ",
            "junction_sessions_refused_total{reason=\"draining\"} ",
            "junction_raft_proposal_failures_total{reason=\"no_quorum\"} ",
            "# TYPE junction_raft_proposal_duration_seconds histogram",
            "# TYPE process_cpu_seconds_total counter",
            "process_resident_memory_bytes ",
        ] {
            assert!(text.contains(line), "{line:?} missing:\n{text}");
        }
    }

    #[test]
    fn prometheus_text_names_counters_total() {
        message_in(code::CALL);
        message_out(code::RESULT);
        let _s = session_joined("ops.test", "websocket", "json");
        let text = metrics().render_prometheus();
        assert!(text.contains("# TYPE junction_messages_received_total counter"), "{text}");
        assert!(text.contains("junction_messages_received_total{type=\"call\"} "), "{text}");
        assert!(
            text.contains(
                "junction_sessions{realm=\"ops.test\",transport=\"websocket\",serializer=\"json\"} 1"
            ),
            "{text}"
        );
        assert!(text.contains("# TYPE junction_call_duration_seconds histogram"), "{text}");
        assert!(!text.contains("# EOF"));
        let peer = link(77);
        peer.dropped(DropReason::Full, 2);
        peer.gaps.inc();
        let text = metrics().render_prometheus();
        assert!(text.contains("junction_link_frames_dropped_total{peer=\"77\",reason=\"full\"} 2"), "{text}");
        assert!(text.contains("junction_link_gaps_total{peer=\"77\"} 1"), "{text}");
        assert_eq!(peer.dropped_total(), 2);
        assert!(metrics().render_openmetrics().ends_with("# EOF\n"));
    }
}
