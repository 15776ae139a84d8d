//! The `junction.*` admin procedures, answered by the router itself for sessions of
//! the admin role (`[admin] role`, default `admin`; others get
//! `wamp.error.not_authorized`) — the WAMP face of the admin HTTP API
//! ([`super::status`] and [`super::stats`] build the documents of both):
//!
//! | procedure | answer |
//! | --- | --- |
//! | `junction.cluster.status()` | this node, its sessions per realm, its view of the cluster (members, roles, leader, term, indexes, links), and `nodes`: the session ids of every reachable node, per realm |
//! | `junction.cluster.add_node(id, voter=false)` | `{node, role, log_index?}`: checks that node `id` joined (a node joins by itself, as a learner); with `voter` makes it a voter (through the leader) |
//! | `junction.cluster.remove_node(id)` | removes a node from the cluster for good (through the leader); the log index |
//! | `junction.session.list(realm=None)` | the sessions joined on this node, with their details |
//! | `junction.session.kill(id, reason=, message=)` | GOODBYE to a session, on this node or (asked over the links) on the node holding it |
//! | `junction.registration.callees(id)` | `{registration, procedure, callees: [{session, node}]}`: a registration of this realm and the node each callee is connected to |
//! | `junction.config.reload()` | re-reads the configuration: realms' authentication and roles, `[log] level`; `{applied, restart_required}`; a bad file changes nothing |
//! | `junction.stats()` | this node's message, call and event counters and call latency percentiles ([`super::stats::stats`]) |
//! | `junction.cluster.stats()` | `{nodes: [...]}`: the same document of every reachable node plus its links to the others ([`super::stats::node_stats`], asked over the links; a node that does not answer in time is `{node, answered: false}`) |
//!
//! Role changes (`junction.role.*`) are in [`super::authorize`].

use serde_json::json;

use super::Router;
use super::handle::SessionHandle;
use super::meta::KILLED;
use super::query::{self, Answer};
use super::realm::Realm;
use crate::cluster::Replicate;
use crate::wamp::errors;
use crate::wamp::message::Payload;
use crate::wamp::value::{Dict, List, Value};

/// True for the procedures answered here.
pub fn is_admin_api(procedure: &str) -> bool {
    procedure.starts_with("junction.cluster.")
        || procedure.starts_with("junction.session.")
        || procedure == "junction.stats"
        || procedure == "junction.config.reload"
        || procedure == "junction.registration.callees"
}

fn one(v: serde_json::Value) -> Answer {
    Ok(Payload::args(vec![serde_json::from_value(v).unwrap_or(Value::Null)]))
}

fn invalid(why: impl Into<String>) -> Answer {
    Err((errors::INVALID_ARGUMENT.into(), why.into()))
}

/// Answers an admin procedure.
pub async fn call(
    router: &Router,
    realm: &Realm,
    me: &SessionHandle,
    procedure: &str,
    p: &Payload,
) -> Answer {
    if !super::authorize::is_admin(router, realm, me) {
        return Err((
            errors::NOT_AUTHORIZED.into(),
            format!("{procedure} is for the admin role in the admin realm ([admin] role and realm)"),
        ));
    }
    let given = p.arguments();
    let args = given.args.clone().unwrap_or_default();
    let kwargs = given.kwargs.clone().unwrap_or_default();
    drop(given);
    match procedure {
        "junction.cluster.status" => cluster_status(router).await,
        "junction.cluster.stats" => cluster_stats(router, realm).await,
        "junction.cluster.add_node" | "junction.cluster.remove_node" => {
            let Some(id) = args.first().and_then(Value::as_u64) else {
                return invalid("the node id is expected");
            };
            let Some(cluster) = router.replica.replicate() else {
                return invalid("not a cluster node");
            };
            if procedure.ends_with("add_node") {
                let voter = kwargs.get("voter").or(args.get(1)).and_then(Value::as_bool).unwrap_or(false);
                add_node(cluster.as_ref(), id, voter).await
            } else {
                match cluster.remove(id).await {
                    Ok(index) => one(index.into()),
                    Err(e) => Err((errors::CLUSTER_UNAVAILABLE.into(), e.to_string())),
                }
            }
        }
        "junction.config.reload" => reload(router),
        "junction.stats" => one(super::stats::stats(router)),
        "junction.session.list" => {
            let realm = kwargs.get("realm").or(args.first()).and_then(Value::as_str);
            one(super::status::sessions(router, realm))
        }
        "junction.session.kill" => kill(router, &args, &kwargs).await,
        "junction.registration.callees" => callees(router, realm, &args),
        _ => Err((errors::NO_SUCH_PROCEDURE.into(), format!("no admin procedure {procedure}"))),
    }
}

/// The admin HTTP status document plus every reachable node's sessions (asked over
/// the links, like `wamp.session.list`; a node that does not answer in time is
/// listed with `answered: false`).
async fn cluster_status(router: &Router) -> Answer {
    let readiness = super::readiness::check(router).await;
    let mut status = super::status::status(router, readiness);
    let mut nodes: Vec<(u64, serde_json::Map<String, serde_json::Value>)> = Vec::new();
    let mut here = serde_json::Map::new();
    for realm in router.realms() {
        here.insert(realm.name.clone(), realm.sessions.iter().map(|s| s.id.0).collect());
    }
    nodes.push((router.node.0, here));
    for peer in router.replica.peers(router.node) {
        nodes.push((peer.0, serde_json::Map::new()));
    }
    for realm in router.realms() {
        for (node, answer) in query::ask_peers(router, &realm.name, "session.list", &Payload::default()).await
        {
            let ids = answer
                .ok()
                .and_then(|p| p.into_arguments().args?.into_iter().next())
                .and_then(|v| v.as_list().cloned());
            if let Some(entry) = nodes.iter_mut().find(|n| n.0 == node.0) {
                let ids: Vec<u64> = ids.unwrap_or_default().iter().filter_map(Value::as_u64).collect();
                entry.1.insert(realm.name.clone(), ids.into());
            }
        }
    }
    let realms = router.realms().count();
    let nodes: Vec<serde_json::Value> = nodes
        .into_iter()
        .map(|(node, sessions)| {
            json!({ "node": node, "answered": node == router.node.0 || sessions.len() == realms, "sessions": sessions })
        })
        .collect();
    status["nodes"] = nodes.into();
    one(status)
}

/// Every reachable node's [`super::stats::node_stats`], this node's first, then
/// the others by id; a node that did not answer is `{node, answered: false}`.
async fn cluster_stats(router: &Router, realm: &Realm) -> Answer {
    let mut here = super::stats::node_stats(router);
    here["answered"] = true.into();
    let mut nodes = vec![here];
    let answers = query::ask_peers(router, &realm.name, "node.stats", &Payload::default()).await;
    let mut peers = router.replica.peers(router.node);
    peers.sort_by_key(|n| n.0);
    for peer in peers {
        let answer = answers.iter().find(|(n, _)| *n == peer).and_then(|(_, a)| a.as_ref().ok());
        let doc = answer.and_then(|p| p.arguments().args.as_ref()?.first().cloned());
        let doc = doc.and_then(|v| serde_json::to_value(v).ok()).filter(serde_json::Value::is_object);
        nodes.push(match doc {
            Some(mut doc) => {
                doc["answered"] = true.into();
                doc
            }
            None => json!({ "node": peer.0, "answered": false }),
        });
    }
    one(json!({ "nodes": nodes }))
}

async fn add_node(cluster: &dyn Replicate, id: u64, voter: bool) -> Answer {
    let Some(role) = cluster.role_of(id) else {
        return invalid(format!(
            "node {id} is not a member of the cluster (as node {} sees it): start it with the \
             cluster's peers (or dns name) and it joins by itself as a learner",
            cluster.node_id().0
        ));
    };
    if !voter || role == "voter" {
        return one(json!({ "node": id, "role": role }));
    }
    match cluster.promote(id).await {
        Ok(index) => one(json!({ "node": id, "role": "voter", "log_index": index })),
        Err(e) => invalid(e.to_string()),
    }
}

/// `junction.config.reload`: what the router can change at run time
/// ([`super::reload`]).
fn reload(router: &Router) -> Answer {
    match super::reload::reload(router) {
        Ok(r) => one(json!({ "applied": r.applied, "restart_required": r.restart_required })),
        Err(e) => invalid(e.to_string()),
    }
}

/// Kills session `id` here, else asks the other nodes (each realm in turn: a
/// session lives in one) to kill it.
async fn kill(router: &Router, args: &List, kwargs: &Dict) -> Answer {
    let Some(id) = args.first().and_then(Value::as_u64) else {
        return invalid("the session id is expected");
    };
    let reason = kwargs.get("reason").and_then(Value::as_str).unwrap_or(KILLED);
    let message = kwargs.get("message").and_then(Value::as_str).unwrap_or("");
    if super::status::kill(router, id, reason, message) {
        return Ok(Payload::default());
    }
    let mut options = Dict::new();
    options.insert("reason".into(), reason.into());
    options.insert("message".into(), message.into());
    let ask = Payload::new(Some(vec![id.into()]), Some(options));
    for realm in router.realms() {
        for (node, answer) in query::ask_peers(router, &realm.name, "session.kill", &ask).await {
            if answer.is_ok() {
                tracing::info!(session = id, %node, reason, "session killed through the admin API");
                return Ok(Payload::default());
            }
        }
    }
    Err((super::meta::NO_SUCH_SESSION.into(), "no session with that id on any reachable node".into()))
}

/// `junction.registration.callees(id)`: the registration's callees with their nodes.
fn callees(router: &Router, realm: &Realm, args: &List) -> Answer {
    let Some(id) = args.first().and_then(Value::as_u64) else {
        return invalid("the registration id is expected");
    };
    let found = router.replica.read(|t| {
        let r = t.realm(&realm.name)?.registrations.get(crate::ids::RegistrationId(id))?;
        let callees: Vec<serde_json::Value> =
            r.callees.iter().map(|c| json!({ "session": c.session.0, "node": c.node.0 })).collect();
        Some(json!({ "registration": r.id.0, "procedure": r.uri, "callees": callees }))
    });
    match found {
        Some(doc) => one(doc),
        None => Err((errors::NO_SUCH_REGISTRATION.into(), "no registration with that id".into())),
    }
}
