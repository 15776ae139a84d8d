//! The JSON documents of the admin HTTP API (the `junction.*` admin procedures
//! answer the same documents): node/cluster status, sessions, message counters,
//! and where the web console finds the router.

use prometheus_client::metrics::counter::Counter;
use serde_json::{Value, json};

use crate::cluster::proto::StatusReply;
use crate::router::Router;

/// `GET /api/status`: this node, its realms' session counts, and its view of the
/// cluster (Raft role, term, leader, log indexes, members, links).
pub fn status(router: &Router, readiness: Result<(), String>) -> Value {
    let mut sessions = serde_json::Map::new();
    for name in router.config.realms.iter().map(|r| &r.name) {
        let n = router.realm(name).map(|r| r.sessions.len()).unwrap_or(0);
        sessions.insert(name.clone(), n.into());
    }
    let cluster = router.replica.cluster().map(|c| {
        let mut s = crate::cluster::status::build(c);
        // The state machine's own index: openraft's metrics may trail it.
        s.applied_index = c.replicated().applied_index().map_or(s.applied_index, |i| i as i64);
        cluster_json(&s)
    });
    json!({
        "node": router.node.0,
        "version": env!("CARGO_PKG_VERSION"),
        "ready": readiness.is_ok(),
        "not_ready_reason": readiness.err(),
        "draining": super::health::draining(),
        "session_count": router.session_count(),
        "sessions": sessions,
        "cluster": cluster,
    })
}

fn index(i: i64) -> Value {
    if i < 0 { Value::Null } else { i.into() }
}

fn cluster_json(s: &StatusReply) -> Value {
    let members: Vec<Value> = s
        .members
        .iter()
        .map(|m| {
            json!({
                "node": m.node_id,
                "addr": m.addr,
                "role": m.role,
                "up": m.up,
                "incarnation": m.incarnation,
                "matched_index": index(m.matched_index),
                "last_ack_ms": index(m.last_ack_ms),
            })
        })
        .collect();
    let links: Vec<Value> =
        s.links.iter().map(|l| json!({ "node": l.node_id, "addr": l.addr, "state": l.state })).collect();
    let leader = (s.leader_id != 0).then(|| json!({ "node": s.leader_id, "addr": s.leader_addr }));
    json!({
        "addr": s.addr,
        "state": s.state,
        "term": s.term,
        "leader": leader,
        "last_log_index": index(s.last_log_index),
        "committed_index": index(s.committed_index),
        "applied_index": index(s.applied_index),
        "snapshot_index": index(s.snapshot_index),
        "purged_index": index(s.purged_index),
        "incarnation": s.incarnation,
        "millis_since_quorum_ack": index(s.millis_since_quorum_ack),
        "members": members,
        "links": links,
    })
}

/// `GET /api/sessions[?realm=R]`: the sessions joined on this node.
pub fn sessions(router: &Router, realm: Option<&str>) -> Value {
    let mut out = Vec::new();
    for name in router.config.realms.iter().map(|r| r.name.as_str()) {
        if realm.is_some_and(|r| r != name) {
            continue;
        }
        let Some(realm) = router.realm(name) else { continue };
        for s in realm.sessions.iter() {
            let id = &s.identity;
            out.push(json!({
                "session": s.id.0,
                "realm": name,
                "authid": id.authid,
                "authrole": id.authrole,
                "authmethod": id.authmethod,
                "authprovider": id.authprovider,
                "serializer": s.serializer.name(),
                "node": router.node.0,
                "pending_calls": s.pending_calls(),
            }));
        }
    }
    Value::Array(out)
}

/// Kills a session on this node with GOODBYE `reason`; false when no such session.
pub fn kill(router: &Router, session: u64, reason: &str, message: &str) -> bool {
    for name in router.config.realms.iter().map(|r| &r.name) {
        let Some(realm) = router.realm(name) else { continue };
        if let Some(s) = realm.session(crate::ids::SessionId(session)) {
            s.kill(reason, message);
            return true;
        }
    }
    false
}

/// `GET /api/stats`, `junction.stats`: this node's counters since it started, from
/// [`crate::observe::metrics`]. A client gets rates from two samples and their `time_ms`.
pub fn stats(router: &Router) -> Value {
    let m = crate::observe::metrics::metrics();
    let types = crate::observe::metrics::MESSAGE_TYPES.iter().map(|t| t.1).chain(std::iter::once("other"));
    let by_type = |counters: &[Counter]| {
        let mut out = serde_json::Map::new();
        for (name, c) in types.clone().zip(counters) {
            if c.get() > 0 {
                out.insert(name.to_owned(), c.get().into());
            }
        }
        out
    };
    let total = |counters: &[Counter]| -> u64 { counters.iter().map(|c| c.get()).sum() };
    let calls = m.call_latency.snapshot();
    let now_ms = crate::router::now_ms();
    let started_ms = u64::try_from(m.start_time.get()).unwrap_or(0).saturating_mul(1000);
    json!({
        "node": router.node.0,
        "time_ms": now_ms,
        "uptime_ms": now_ms.saturating_sub(started_ms),
        "sessions": router.session_count(),
        "messages_in": total(&m.messages_in),
        "messages_out": total(&m.messages_out),
        "messages_in_by_type": by_type(&m.messages_in),
        "messages_out_by_type": by_type(&m.messages_out),
        "calls_completed": calls.count,
        "call_seconds_total": calls.sum,
        "events_delivered": m.events_delivered.get(),
        "events_dropped": m.events_dropped.get(),
        "slow_consumer_disconnects": m.slow_consumer_disconnects.get(),
    })
}

/// Where this node's clients connect, for the web console (`GET /api/console-config`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ConsoleConfig {
    /// `ws://HOST:PORT/PATH` (or `wss://`) of the WebSocket listener, with the bound
    /// host; the page puts its own host in place of an unspecified one (`0.0.0.0`).
    pub url: Option<String>,
    /// The realm the console joins unless told otherwise.
    pub realm: String,
    /// The authrole the admin procedures need.
    pub admin_role: String,
}

/// `GET /api/console-config`.
pub fn console_config(c: &ConsoleConfig) -> Value {
    json!({ "url": c.url, "realm": c.realm, "admin_role": c.admin_role })
}
