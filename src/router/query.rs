//! Questions one node asks the others about their sessions: the cluster-wide half of
//! the session meta API (`wamp.session.list` on node A lists node B's sessions too),
//! subscriber lists, and revocations, which must run on the node holding the session.
//!
//! A question travels as [`LinkMsg::Query`] and its answer as [`LinkMsg::Answer`] on
//! the same gRPC stream. [`ask`] waits at most [`QUERY_TIMEOUT`]; a node that does not
//! answer in time (or whose link is down) is left out of a fan-out and logged, so a
//! meta call is always answered. [`answer_here`] is what every node answers, the
//! asking node included: one code path for one node and many.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;

use super::Router;
use super::meta::{self, NO_SUCH_SESSION};
use super::realm::Realm;
use super::revoke;
use crate::ids::{NodeId, QueryId, RegistrationId, SessionId, SubscriptionId};
use crate::link::LinkMsg;
use crate::wamp::errors;
use crate::wamp::message::Payload;
use crate::wamp::value::{Dict, List, Value};

/// How long a node waits for another node's answer.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(2);

/// A meta answer: the result payload, or an error URI and message.
pub type Answer = Result<Payload, (String, String)>;

fn fail(uri: &str, why: impl Into<String>) -> Answer {
    Err((uri.to_owned(), why.into()))
}

fn one(v: impl Into<Value>) -> Answer {
    Ok(Payload::args(vec![v.into()]))
}

/// Asks `node` about realm `realm` and waits for the answer.
pub async fn ask(router: &Router, node: NodeId, realm: &str, op: &str, payload: Payload) -> Answer {
    let id = router.next_query_id();
    let (tx, rx) = oneshot::channel();
    router.queries.insert(id, tx);
    let msg = LinkMsg::Query { id, realm: realm.to_owned(), op: op.to_owned(), payload };
    if router.send_link(node, msg).is_err() {
        router.queries.remove(&id);
        return fail(errors::CANCELED, format!("no link to node {node}"));
    }
    match tokio::time::timeout(QUERY_TIMEOUT, rx).await {
        Ok(Ok(answer)) => answer,
        _ => {
            router.queries.remove(&id);
            fail(errors::CANCELED, format!("node {node} did not answer"))
        }
    }
}

/// Asks every other node that is up, concurrently; returns the answers of the nodes
/// that gave one (others are logged and left out).
pub async fn ask_peers(router: &Router, realm: &str, op: &str, payload: &Payload) -> Vec<(NodeId, Answer)> {
    let peers = router.replica.peers(router.node);
    let asks = peers.iter().map(|&n| async move { (n, ask(router, n, realm, op, payload.clone()).await) });
    let answers = futures_util::future::join_all(asks).await;
    answers
        .into_iter()
        .filter(|(node, a)| match a {
            Err((uri, why)) if uri == errors::CANCELED => {
                tracing::warn!(%node, %op, reason = %why, "node left out of a meta query");
                false
            }
            _ => true,
        })
        .collect()
}

/// Answers a question from node `from` (on a task: some answers wait for a commit).
pub fn on_query(router: &Router, from: NodeId, id: QueryId, realm: String, op: String, payload: Payload) {
    let Some(router) = router.arc() else { return };
    tokio::spawn(async move {
        let answer = match router.realm(&realm) {
            Some(realm) => answer_here(&router, &realm, &op, &payload).await,
            None => fail(errors::NO_SUCH_REALM, "no such realm on this node"),
        };
        let (error, payload) = match answer {
            Ok(p) => (String::new(), p),
            Err((uri, why)) => (uri, Payload::args(vec![why.into()])),
        };
        router.send_link(from, LinkMsg::Answer { id, error, payload }).ok();
    });
}

/// Hands an answer to the task waiting for it.
pub fn on_answer(router: &Router, id: QueryId, error: String, payload: Payload) {
    if let Some((_, tx)) = router.queries.remove(&id) {
        let answer = if error.is_empty() {
            Ok(payload)
        } else {
            let given = payload.arguments();
            let why = given.args.as_ref().and_then(|a| a.first()).and_then(Value::as_str).unwrap_or("");
            Err((error, why.to_owned()))
        };
        tx.send(answer).ok();
    }
}

fn arg_u64(args: &List, i: usize) -> Option<u64> {
    args.get(i).and_then(Value::as_u64)
}

fn ids(sessions: impl Iterator<Item = SessionId>) -> Value {
    Value::List(sessions.map(|s| Value::from(s.0)).collect())
}

/// What this node answers about its own sessions. Operations:
/// - `session.list [authroles|null]` → ids of the realm's sessions here
/// - `session.get [id]` → the session's details, or `wamp.error.no_such_session`
/// - `session.kill [id] {reason, message}` → killed, or `no_such_session`
/// - `session.kill_by [key, value, except]` (key `authid`/`authrole`) and
///   `session.kill_all [except]` `{reason, message}` → ids of the sessions killed
/// - `subscription.subscribers [subscription]` → ids of the local subscribers
/// - `subscription.remove_subscriber [subscription, session] {reason}`
/// - `registration.remove_callee [registration, session] {reason}`
/// - `node.stats` → this node's counters and links ([`super::stats::node_stats`];
///   the realm does not matter)
pub async fn answer_here(router: &Arc<Router>, realm: &Arc<Realm>, op: &str, payload: &Payload) -> Answer {
    let given = payload.arguments();
    let empty = List::new();
    let args = given.args.as_ref().unwrap_or(&empty);
    let no_kwargs = Dict::new();
    let kwargs = given.kwargs.as_ref().unwrap_or(&no_kwargs);
    let reason = kwargs.get("reason").and_then(Value::as_str).unwrap_or(meta::KILLED);
    let message = kwargs.get("message").and_then(Value::as_str).unwrap_or("");
    let kill = |victims: Vec<Arc<super::handle::SessionHandle>>| {
        for v in &victims {
            v.kill(reason, message);
        }
        one(ids(victims.iter().map(|s| s.id)))
    };
    match op {
        "session.list" => {
            let roles: Option<Vec<&str>> =
                args.first().and_then(Value::as_list).map(|l| l.iter().filter_map(Value::as_str).collect());
            let here = realm
                .sessions
                .iter()
                .filter(|s| roles.as_ref().is_none_or(|r| r.contains(&s.identity.authrole.as_str())))
                .map(|s| s.id)
                .collect::<Vec<_>>();
            one(ids(here.into_iter()))
        }
        "session.get" | "session.kill" => {
            let Some(id) = arg_u64(args, 0) else {
                return fail(errors::INVALID_ARGUMENT, "session id expected");
            };
            let Some(s) = realm.session(SessionId(id)) else {
                return fail(NO_SUCH_SESSION, "no session with that id");
            };
            if op == "session.get" {
                return one(meta::session_details(&s));
            }
            s.kill(reason, message);
            Ok(Payload::default())
        }
        "session.kill_by" | "session.kill_all" => {
            let (filter, except) = if op == "session.kill_all" {
                (None, arg_u64(args, 0))
            } else {
                let key = args.first().and_then(Value::as_str).unwrap_or("");
                let value = args.get(1).and_then(Value::as_str).unwrap_or("");
                (Some((key == "authid", value)), arg_u64(args, 2))
            };
            let victims = realm
                .sessions
                .iter()
                .filter(|s| Some(s.id.0) != except)
                .filter(|s| match filter {
                    None => true,
                    Some((true, v)) => s.identity.authid == v,
                    Some((false, v)) => s.identity.authrole == v,
                })
                .map(|s| s.clone())
                .collect();
            kill(victims)
        }
        "subscription.subscribers" => {
            let Some(id) = arg_u64(args, 0) else { return fail(errors::INVALID_ARGUMENT, "id expected") };
            let here = realm.subscribers(SubscriptionId(id)).unwrap_or_default();
            one(ids(here.iter().map(|s| s.id)))
        }
        "subscription.remove_subscriber" | "registration.remove_callee" => {
            let (Some(id), Some(session)) = (arg_u64(args, 0), arg_u64(args, 1)) else {
                return fail(errors::INVALID_ARGUMENT, "an id and a session id expected");
            };
            let Some(s) = realm.session(SessionId(session)) else {
                return fail(NO_SUCH_SESSION, "no session with that id");
            };
            let reason = kwargs.get("reason").and_then(Value::as_str);
            let done = if op == "registration.remove_callee" {
                revoke::registration(router, realm, &s, RegistrationId(id), reason).await
            } else {
                revoke::subscription(router, realm, &s, SubscriptionId(id), reason).await
            };
            match (done, op == "registration.remove_callee") {
                (true, _) => Ok(Payload::default()),
                (false, true) => fail(errors::NO_SUCH_REGISTRATION, "the session is not a callee of it"),
                (false, false) => fail(errors::NO_SUCH_SUBSCRIPTION, "the session is not subscribed to it"),
            }
        }
        "node.stats" => Ok(Payload::args(vec![
            serde_json::from_value(super::stats::node_stats(router)).unwrap_or(Value::Null),
        ])),
        _ => fail(errors::NO_SUCH_PROCEDURE, format!("unknown query {op}")),
    }
}
