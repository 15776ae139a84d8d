//! The router's status as the operations layer sees it: the JSON documents of the
//! admin HTTP API (the `junction.*` admin procedures answer the same documents) —
//! node/cluster status and sessions — killing a session, and the
//! [`StatusSource`] implementation `main` hands to `ops`.

use serde_json::{Value, json};

use super::Router;
use crate::observe::status::{Readiness, ReadinessCheck, Sample, StatusSource};

/// `GET /api/status`: this node, its realms' session counts, and its view of the
/// cluster (Raft role, term, leader, log indexes, members, links).
pub fn status(router: &Router, readiness: Readiness) -> Value {
    let mut sessions = serde_json::Map::new();
    for name in router.config.realms.iter().map(|r| &r.name) {
        let n = router.realm(name).map(|r| r.sessions.len()).unwrap_or(0);
        sessions.insert(name.clone(), n.into());
    }
    let cluster = router.replica.replicate().map(|c| c.status_document());
    json!({
        "node": router.node.0,
        "version": env!("CARGO_PKG_VERSION"),
        "ready": readiness.is_ok(),
        "not_ready_reason": readiness.err().map(|e| e.0),
        "draining": router.draining(),
        "session_count": router.session_count(),
        "sessions": sessions,
        "cluster": cluster,
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
                "pending_calls": router.dealing.lock().pending_calls(s.id),
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

impl StatusSource for Router {
    fn readiness_now(&self) -> Readiness {
        super::readiness::check_now(self)
    }

    fn readiness(&self) -> ReadinessCheck<'_> {
        Box::pin(super::readiness::check(self))
    }

    fn cluster_readiness(&self) -> ReadinessCheck<'_> {
        Box::pin(super::readiness::check_cluster(self))
    }

    fn draining(&self) -> bool {
        Router::draining(self)
    }

    fn status(&self, readiness: Readiness) -> Value {
        status(self, readiness)
    }

    fn sessions(&self, realm: Option<&str>) -> Value {
        sessions(self, realm)
    }

    fn stats(&self) -> Value {
        super::stats::stats(self)
    }

    fn kill(&self, session: u64, reason: &str, message: &str) -> bool {
        kill(self, session, reason, message)
    }

    fn sample(&self) -> Sample {
        super::stats::sample(self)
    }
}
