//! The `junction.*` admin procedures, answered by the router itself for sessions of
//! the admin role (`[admin] role`, default `admin`; others get
//! `wamp.error.not_authorized`) — the WAMP face of the admin HTTP API:
//!
//! | procedure | answer |
//! | --- | --- |
//! | `junction.cluster.status()` | this node, its sessions per realm, and its view of the cluster (members, roles, leader, term, indexes, links) |
//! | `junction.cluster.add_node(id)` | makes a learner a voter (through the leader); the log index |
//! | `junction.cluster.remove_node(id)` | removes a node from the cluster for good (through the leader); the log index |
//! | `junction.session.list(realm=None)` | the sessions joined on this node, with their details |
//! | `junction.session.kill(id, reason=, message=)` | GOODBYE to a session on this node |
//! | `junction.config.reload()` | re-reads the configuration file: realms' authentication and roles take effect; `{applied, restart_required}`; a bad file changes nothing |
//! | `junction.stats()` | `{messages_in, messages_out, sessions}` totals on this node (the console's rates) |
//!
//! Role changes (`junction.role.*`) are in [`super::authorize`].

use super::Router;
use super::handle::SessionHandle;
use super::meta::KILLED;
use super::query::Answer;
use crate::wamp::errors;
use crate::wamp::message::Payload;
use crate::wamp::value::Value;

/// True for the procedures answered here.
pub fn is_admin_api(procedure: &str) -> bool {
    procedure.starts_with("junction.cluster.")
        || procedure.starts_with("junction.session.")
        || procedure == "junction.stats"
        || procedure == "junction.config.reload"
}

fn one(v: Value) -> Answer {
    Ok(Payload::args(vec![v]))
}

fn json(v: serde_json::Value) -> Value {
    serde_json::from_value(v).unwrap_or(Value::Null)
}

/// Answers an admin procedure.
pub async fn call(router: &Router, me: &SessionHandle, procedure: &str, p: &Payload) -> Answer {
    if me.identity.authrole != router.config.admin.role {
        return Err((errors::NOT_AUTHORIZED.into(), format!("{procedure} is for the admin role")));
    }
    let args = p.args.clone().unwrap_or_default();
    let kwargs = p.kwargs.clone().unwrap_or_default();
    let arg_u64 = |i: usize| args.get(i).and_then(Value::as_u64);
    match procedure {
        "junction.cluster.status" => {
            let readiness = crate::ops::health::check(Some(router)).await;
            one(json(crate::ops::api::status(router, readiness)))
        }
        "junction.cluster.add_node" => {
            let Some(id) = arg_u64(0) else {
                return Err((errors::INVALID_ARGUMENT.into(), "the node id is expected".into()));
            };
            let Some(cluster) = router.replica.cluster() else {
                return Err((errors::INVALID_ARGUMENT.into(), "not a cluster node".into()));
            };
            match crate::cluster::membership::promote(cluster, id).await {
                Ok(index) => one(index.into()),
                Err(e) => Err((errors::INVALID_ARGUMENT.into(), e)),
            }
        }
        "junction.cluster.remove_node" => {
            let Some(id) = arg_u64(0) else {
                return Err((errors::INVALID_ARGUMENT.into(), "the node id is expected".into()));
            };
            let Some(cluster) = router.replica.cluster() else {
                return Err((errors::INVALID_ARGUMENT.into(), "not a cluster node".into()));
            };
            match crate::cluster::membership::remove(cluster, id).await {
                Ok(index) => one(index.into()),
                Err(e) => Err((errors::CLUSTER_UNAVAILABLE.into(), e)),
            }
        }
        "junction.config.reload" => {
            let Some(loaded) = router.load_config() else {
                return Err((
                    errors::INVALID_ARGUMENT.into(),
                    "the router was started without --config".into(),
                ));
            };
            match loaded {
                Ok(cfg) => {
                    let r = router.reload(&cfg);
                    tracing::info!(applied = ?r.applied, restart_required = ?r.restart_required, "configuration reloaded");
                    let list = |v: Vec<String>| Value::List(v.into_iter().map(Value::from).collect());
                    one(Value::Dict(crate::dict! {
                        "applied" => list(r.applied),
                        "restart_required" => list(r.restart_required),
                    }))
                }
                Err(e) => Err((errors::INVALID_ARGUMENT.into(), format!("configuration not reloaded: {e}"))),
            }
        }
        "junction.stats" => {
            let m = crate::ops::metrics::metrics();
            let sum = |v: &Vec<prometheus_client::metrics::counter::Counter>| {
                v.iter().map(|c| c.get()).sum::<u64>()
            };
            let stats = crate::dict! {
                "messages_in" => sum(&m.messages_in),
                "messages_out" => sum(&m.messages_out),
                "sessions" => router.session_count() as u64,
            };
            one(Value::Dict(stats))
        }
        "junction.session.list" => {
            let realm = kwargs.get("realm").or(args.first()).and_then(Value::as_str);
            one(json(crate::ops::api::sessions(router, realm)))
        }
        "junction.session.kill" => {
            let Some(id) = arg_u64(0) else {
                return Err((errors::INVALID_ARGUMENT.into(), "the session id is expected".into()));
            };
            let reason = kwargs.get("reason").and_then(Value::as_str).unwrap_or(KILLED);
            let message = kwargs.get("message").and_then(Value::as_str).unwrap_or("");
            if crate::ops::api::kill(router, id, reason, message) {
                Ok(Payload::default())
            } else {
                Err((super::meta::NO_SUCH_SESSION.into(), "no session with that id on this node".into()))
            }
        }
        _ => Err((errors::NO_SUCH_PROCEDURE.into(), format!("no admin procedure {procedure}"))),
    }
}
