//! The WAMP meta API: `wamp.session.*`, `wamp.registration.*` and
//! `wamp.subscription.*` procedures answered by the router itself, and the meta
//! events it publishes when sessions, registrations and subscriptions come and go.
//!
//! Registrations are answered from the replicated routing table and subscriptions
//! from this node's view of every node's interest ([`super::interest`]), so both are
//! cluster-wide. Sessions and per-session lists (callees are in the table;
//! subscribers are node-local) are answered from this node's state.

use std::sync::Arc;

use super::Router;
use super::handle::{SessionHandle, Testament};
use super::pubsub::{Publication, publish_meta, route};
use super::query::{self, Answer};
use super::realm::Realm;
use super::rpc::error_reply;
use crate::broker::Audience;
use crate::dict;
use crate::ids::{PublicationId, RegistrationId, SessionId, SubscriptionId, random_id};
use crate::table::Command;
use crate::wamp::errors;
use crate::wamp::message::{Call, CallResult, Error, Message, Payload, code};
use crate::wamp::uri::{self, MatchPolicy};
use crate::wamp::value::{Dict, List, Value};

/// `wamp.error.no_such_session`
pub const NO_SUCH_SESSION: &str = "wamp.error.no_such_session";
/// Default GOODBYE reason for a killed session.
pub const KILLED: &str = "wamp.close.killed";

/// True when `procedure` is answered by the meta API.
pub fn is_meta(procedure: &str) -> bool {
    procedure.starts_with("wamp.session.")
        || procedure.starts_with("wamp.registration.")
        || procedure.starts_with("wamp.subscription.")
}

fn err(uri: &str, why: impl Into<String>) -> Answer {
    Err((uri.to_owned(), why.into()))
}

fn one(v: impl Into<Value>) -> Answer {
    Ok(Payload::args(vec![v.into()]))
}

/// Handles a CALL to a meta procedure and answers it. What this node knows (the
/// replicated registrations and subscriptions, the caller's own testaments) is
/// answered at once; what needs the other nodes (their sessions and subscribers,
/// revocations) is answered from a task that asks them ([`super::query`]).
pub fn call(router: &Arc<Router>, realm: &Arc<Realm>, me: &Arc<SessionHandle>, m: Call) {
    let given = m.payload.arguments();
    let args = given.args.clone().unwrap_or_default();
    let kwargs = given.kwargs.clone().unwrap_or_default();
    drop(given);
    let name = m.procedure.split_once('.').map_or("", |(_, rest)| rest).to_owned();
    if name == "session.add_testament" || name == "session.flush_testaments" {
        // The session's own copy changes now, before its next message is handled;
        // the answer waits until the replicated copy is committed.
        let (answer, cmd) = testament_call(router, realm, me, &name[8..], &args, &kwargs);
        let Some(cmd) = cmd else { return reply(me, m, answer) };
        let (router, realm, me) = (router.clone(), realm.clone(), me.clone());
        tokio::spawn(async move {
            super::testament::replicate(&router, &realm.name, &me, cmd).await;
            reply(&me, m, answer);
        });
        return;
    }
    let now = match name.as_str() {
        p if p.starts_with("session.") => None,
        "registration.remove_callee" | "subscription.remove_subscriber" => None,
        "subscription.list_subscribers" | "subscription.count_subscribers" => None,
        p if p.starts_with("registration.") => Some(registration_call(router, realm, &p[13..], &args)),
        p if p.starts_with("subscription.") => {
            Some(subscription_call(router, realm, me, &p[13..], &args, &kwargs))
        }
        _ => Some(err(errors::NO_SUCH_PROCEDURE, "no such meta procedure")),
    };
    if let Some(answer) = now {
        reply(me, m, answer);
        return;
    }
    let (router, realm, me) = (router.clone(), realm.clone(), me.clone());
    tokio::spawn(async move {
        let answer = cluster_call(&router, &realm, &me, &name, &args, &kwargs).await;
        reply(&me, m, answer);
    });
}

/// Answers a CALL to a procedure the router itself serves.
pub fn reply(me: &SessionHandle, m: Call, answer: Answer) {
    let msg = match answer {
        Ok(payload) => Message::Result(CallResult { request: m.request, details: Dict::new(), payload }),
        Err((uri, why)) if uri == errors::NO_SUCH_PROCEDURE => {
            error_reply(code::CALL, m.request, &uri, &format!("{why}: {}", m.procedure))
        }
        Err((uri, why)) => Message::Error(Error {
            request_type: code::CALL,
            request: m.request,
            details: Dict::new(),
            error: uri,
            payload: Payload::args(vec![why.into()]),
        }),
    };
    me.send(&msg).ok();
}

/// Asks this node and every other node; the successful answers' first arguments.
async fn everywhere(router: &Arc<Router>, realm: &Arc<Realm>, op: &str, payload: Payload) -> Vec<Value> {
    let here = query::answer_here(router, realm, op, &payload).await;
    let there = query::ask_peers(router, &realm.name, op, &payload).await;
    std::iter::once(here)
        .chain(there.into_iter().map(|(_, a)| a))
        .filter_map(|a| a.ok()?.into_arguments().args?.into_iter().next())
        .collect()
}

/// Asks this node, then the others until one succeeds (the session lives on one node).
async fn wherever(router: &Arc<Router>, realm: &Arc<Realm>, op: &str, payload: Payload) -> Answer {
    let here = query::answer_here(router, realm, op, &payload).await;
    if !matches!(&here, Err((uri, _)) if uri == NO_SUCH_SESSION) {
        return here;
    }
    for (_, answer) in query::ask_peers(router, &realm.name, op, &payload).await {
        if !matches!(&answer, Err((uri, _)) if uri == NO_SUCH_SESSION) {
            return answer;
        }
    }
    here
}

/// Concatenates lists answered by several nodes.
fn concat(lists: Vec<Value>) -> Vec<Value> {
    lists.into_iter().filter_map(|v| v.as_list().cloned()).flatten().collect()
}

/// The cluster-wide meta procedures: sessions, subscribers and revocations.
async fn cluster_call(
    router: &Arc<Router>,
    realm: &Arc<Realm>,
    me: &Arc<SessionHandle>,
    name: &str,
    args: &List,
    kwargs: &Dict,
) -> Answer {
    let reason = kwargs.get("reason").and_then(Value::as_str).unwrap_or(KILLED);
    if name.starts_with("session.kill") && !uri::is_valid(reason, uri::UriCheck::Loose) {
        return err(errors::INVALID_URI, "reason must be a valid URI");
    }
    let with = |args: List| Payload::new(Some(args), Some(kwargs.clone()));
    match name {
        "session.count" | "session.list" => {
            let roles = role_filter(args).map(|r| Value::List(r.into_iter().map(Value::from).collect()));
            let ids = concat(
                everywhere(router, realm, "session.list", with(vec![roles.unwrap_or(Value::Null)])).await,
            );
            if name == "session.count" { one(ids.len() as u64) } else { one(ids) }
        }
        "session.get" | "session.kill" => {
            let Some(id) = arg_u64(args, 0) else {
                return err(errors::INVALID_ARGUMENT, "session id expected");
            };
            if name == "session.kill" && id == me.id.0 {
                return err(NO_SUCH_SESSION, "a session cannot kill itself");
            }
            wherever(router, realm, name, with(vec![id.into()])).await
        }
        "session.kill_by_authid" | "session.kill_by_authrole" => {
            let Some(key) = arg_str(args, 0) else { return err(errors::INVALID_ARGUMENT, "string expected") };
            let field = if name == "session.kill_by_authid" { "authid" } else { "authrole" };
            let q = with(vec![field.into(), key.into(), me.id.0.into()]);
            let killed = concat(everywhere(router, realm, "session.kill_by", q).await);
            if field == "authid" { one(killed) } else { one(killed.len() as u64) }
        }
        "session.kill_all" => {
            let killed =
                concat(everywhere(router, realm, "session.kill_all", with(vec![me.id.0.into()])).await);
            one(killed.len() as u64)
        }
        "subscription.list_subscribers" | "subscription.count_subscribers" => {
            let Some(id) = arg_u64(args, 0) else { return err(errors::INVALID_ARGUMENT, "id expected") };
            let known = router.interest.read(&realm.name, |idx| idx.get(SubscriptionId(id)).is_some());
            if !known {
                return err(errors::NO_SUCH_SUBSCRIPTION, "no subscription with that id");
            }
            let ids =
                concat(everywhere(router, realm, "subscription.subscribers", with(vec![id.into()])).await);
            if name == "subscription.list_subscribers" { one(ids) } else { one(ids.len() as u64) }
        }
        "registration.remove_callee" => {
            let (Some(id), Some(session)) = (arg_u64(args, 0), arg_u64(args, 1)) else {
                return err(errors::INVALID_ARGUMENT, "a registration id and a session id expected");
            };
            let node = router.replica.read(|t| {
                let reg = t.realm(&realm.name)?.registrations.get(RegistrationId(id))?;
                reg.callees.iter().find(|c| c.session.0 == session).map(|c| c.node)
            });
            let payload = with(vec![id.into(), session.into()]);
            match node {
                None => err(errors::NO_SUCH_REGISTRATION, "no such registration with that callee"),
                Some(n) if n == router.node => query::answer_here(router, realm, name, &payload).await,
                Some(n) => query::ask(router, n, &realm.name, name, payload).await,
            }
        }
        "subscription.remove_subscriber" => {
            let (Some(id), Some(session)) = (arg_u64(args, 0), arg_u64(args, 1)) else {
                return err(errors::INVALID_ARGUMENT, "a subscription id and a session id expected");
            };
            wherever(router, realm, name, with(vec![id.into(), session.into()])).await
        }
        _ => err(errors::NO_SUCH_PROCEDURE, "no such meta procedure"),
    }
}

fn arg_u64(args: &List, i: usize) -> Option<u64> {
    args.get(i).and_then(Value::as_u64)
}

fn arg_str(args: &List, i: usize) -> Option<&str> {
    args.get(i).and_then(Value::as_str)
}

/// The session's details, as `wamp.session.get` and `on_join` give them.
pub fn session_details(s: &SessionHandle) -> Dict {
    let id = &s.identity;
    dict! {
        "session" => s.id.0,
        "authid" => id.authid.as_str(),
        "authrole" => id.authrole.as_str(),
        "authmethod" => id.authmethod.as_str(),
        "authprovider" => id.authprovider.as_str(),
        "serializer" => s.serializer.name(),
    }
}

fn role_filter(args: &List) -> Option<Vec<String>> {
    let list = args.first()?.as_list()?;
    Some(list.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
}

/// `add_testament` / `flush_testaments` on the session's own copy; the command that
/// replicates the change, if any.
fn testament_call(
    router: &Router,
    realm: &Realm,
    me: &Arc<SessionHandle>,
    name: &str,
    args: &List,
    kwargs: &Dict,
) -> (Answer, Option<Command>) {
    let Some(detached) = testament_scope(kwargs) else {
        return (err(errors::INVALID_ARGUMENT, "scope must be 'destroyed' or 'detached'"), None);
    };
    if name == "flush_testaments" {
        let flushed = me.flush_testaments(detached);
        let cmd = Command::FlushTestaments { realm: realm.name.clone(), session: me.id, detached };
        return (one(flushed as u64), Some(cmd));
    }
    let Some(topic) = arg_str(args, 0).filter(|t| uri::is_valid(t, realm.uri_check)) else {
        return (err(errors::INVALID_URI, "a valid topic URI expected"), None);
    };
    if uri::is_reserved(topic) {
        return (
            err(errors::INVALID_URI, format!("{topic} is in a namespace reserved for the router")),
            None,
        );
    }
    if let Err(e) = super::testament::check_count(router, me) {
        return (Err(e), None);
    }
    let payload = Payload::new(
        args.get(1).and_then(Value::as_list).cloned(),
        args.get(2).and_then(Value::as_dict).cloned(),
    );
    let options = kwargs.get("publish_options").and_then(Value::as_dict).cloned().unwrap_or_default();
    let testament = Testament { topic: topic.to_owned(), payload, options, detached };
    let cmd = super::testament::add_command(router, &realm.name, me, &testament);
    me.add_testament(testament);
    (Ok(Payload::default()), Some(cmd))
}

fn match_of(kwargs_or_options: Option<&Value>) -> MatchPolicy {
    let m = kwargs_or_options.and_then(Value::as_dict).and_then(|d| d.get("match")).and_then(Value::as_str);
    MatchPolicy::parse(m).unwrap_or(MatchPolicy::Exact)
}

fn registration_call(router: &Router, realm: &Realm, name: &str, args: &List) -> Answer {
    router.replica.read(|t| {
        let Some(regs) = t.realm(&realm.name).map(|r| &r.registrations) else {
            return registration_empty(name, args);
        };
        match name {
            "list" => {
                let mut by = [Vec::new(), Vec::new(), Vec::new()];
                for r in regs.iter() {
                    by[r.policy as usize].push(Value::from(r.id.0));
                }
                let [exact, prefix, wildcard] = by;
                one(dict! { "exact" => exact, "prefix" => prefix, "wildcard" => wildcard })
            }
            "lookup" => {
                let Some(uri) = arg_str(args, 0) else {
                    return err(errors::INVALID_ARGUMENT, "URI expected");
                };
                one(regs.find(uri, match_of(args.get(1))).map_or(Value::Null, |r| r.id.0.into()))
            }
            "match" => {
                let Some(uri) = arg_str(args, 0) else {
                    return err(errors::INVALID_ARGUMENT, "URI expected");
                };
                one(regs.lookup(uri).map_or(Value::Null, |r| r.id.0.into()))
            }
            "get" | "list_callees" | "count_callees" => {
                let Some(id) = arg_u64(args, 0) else { return err(errors::INVALID_ARGUMENT, "id expected") };
                let Some(r) = regs.get(RegistrationId(id)) else {
                    return err(errors::NO_SUCH_REGISTRATION, "no registration with that id");
                };
                match name {
                    "get" => one(registration_details(r)),
                    "list_callees" => {
                        one(r.callees.iter().map(|c| Value::from(c.session.0)).collect::<Vec<_>>())
                    }
                    _ => one(r.callees.len() as u64),
                }
            }
            _ => err(errors::NO_SUCH_PROCEDURE, "no such meta procedure"),
        }
    })
}

fn registration_empty(name: &str, args: &List) -> Answer {
    match name {
        "list" => one(dict! { "exact" => List::new(), "prefix" => List::new(), "wildcard" => List::new() }),
        "lookup" | "match" if arg_str(args, 0).is_some() => one(Value::Null),
        "get" | "list_callees" | "count_callees" => {
            err(errors::NO_SUCH_REGISTRATION, "no registration with that id")
        }
        _ => err(errors::NO_SUCH_PROCEDURE, "no such meta procedure"),
    }
}

fn subscription_call(
    router: &Router,
    realm: &Realm,
    me: &SessionHandle,
    name: &str,
    args: &List,
    kwargs: &Dict,
) -> Answer {
    let sub = |id: u64| router.interest.read(&realm.name, |idx| idx.get(SubscriptionId(id)).cloned());
    match name {
        "list" => router.interest.read(&realm.name, |idx| {
            let mut by = [Vec::new(), Vec::new(), Vec::new()];
            for s in idx.iter() {
                by[s.policy as usize].push(Value::from(s.id.0));
            }
            let [exact, prefix, wildcard] = by;
            one(dict! { "exact" => exact, "prefix" => prefix, "wildcard" => wildcard })
        }),
        "lookup" => {
            let Some(uri) = arg_str(args, 0) else { return err(errors::INVALID_ARGUMENT, "URI expected") };
            let policy = match_of(args.get(1));
            let id = router.interest.read(&realm.name, |idx| idx.find(uri, policy).map(|s| s.id.0));
            one(id.map_or(Value::Null, Value::from))
        }
        "match" => {
            let Some(uri) = arg_str(args, 0) else { return err(errors::INVALID_ARGUMENT, "URI expected") };
            let ids: Vec<Value> = router.interest.read(&realm.name, |idx| {
                let mut out = Vec::new();
                idx.matching(uri, &mut out);
                out.iter().map(|s| Value::from(s.id.0)).collect()
            });
            one(if ids.is_empty() { Value::Null } else { Value::List(ids) })
        }
        "get_events" => {
            let Some(id) = arg_u64(args, 0) else { return err(errors::INVALID_ARGUMENT, "id expected") };
            if sub(id).is_none() {
                return err(errors::NO_SUCH_SUBSCRIPTION, "no subscription with that id");
            }
            let Some(history) = realm.history(SubscriptionId(id)) else {
                return err(errors::INVALID_ARGUMENT, "no event history is kept for this subscription");
            };
            match super::history::Query::from_kwargs(kwargs) {
                Ok(q) => {
                    one(history.query(SubscriptionId(id), &q, &me.identity.authid, &me.identity.authrole))
                }
                Err(why) => err(errors::INVALID_ARGUMENT, why.to_string()),
            }
        }
        "get" => {
            let Some(id) = arg_u64(args, 0) else { return err(errors::INVALID_ARGUMENT, "id expected") };
            match sub(id) {
                Some(s) => one(subscription_details(&s)),
                None => err(errors::NO_SUCH_SUBSCRIPTION, "no subscription with that id"),
            }
        }
        _ => err(errors::NO_SUCH_PROCEDURE, "no such meta procedure"),
    }
}

fn testament_scope(kwargs: &Dict) -> Option<bool> {
    match kwargs.get("scope").and_then(Value::as_str) {
        None | Some("destroyed") => Some(false),
        Some("detached") => Some(true),
        Some(_) => None,
    }
}

/// Publishes a leaving session's testaments (detached scope first).
pub fn fire_testaments(router: &Router, realm: &Realm, s: &SessionHandle) {
    for t in s.take_testaments() {
        let audience = Audience::from_options(&t.options).unwrap_or_default();
        let p = Publication {
            topic: &t.topic,
            id: PublicationId(random_id()),
            details: Dict::new(),
            audience: &audience,
        };
        route(router, realm, p, t.payload, None);
    }
}

/// A registration as `wamp.registration.get` and `on_create` describe it.
pub fn registration_details(r: &crate::dealer::Registration) -> Dict {
    dict! {
        "id" => r.id.0,
        "created" => iso8601(r.created_ms),
        "uri" => r.uri.as_str(),
        "match" => r.policy.as_str(),
        "invoke" => r.invoke.as_str(),
    }
}

/// A subscription as `wamp.subscription.get` and `on_create` describe it.
pub fn subscription_details(s: &crate::broker::Subscription) -> Dict {
    dict! {
        "id" => s.id.0,
        "created" => iso8601(s.created_ms),
        "uri" => s.uri.as_str(),
        "match" => s.policy.as_str(),
    }
}

/// Publishes `wamp.session.on_join`.
pub fn on_join(router: &Router, realm: &Realm, s: &SessionHandle) {
    publish_meta(router, realm, "wamp.session.on_join", || Some(vec![session_details(s).into()]));
}

/// Publishes `wamp.session.on_leave`.
pub fn on_leave(router: &Router, realm: &Realm, s: &SessionHandle) {
    let args =
        || Some(vec![s.id.0.into(), s.identity.authid.as_str().into(), s.identity.authrole.as_str().into()]);
    publish_meta(router, realm, "wamp.session.on_leave", args);
}

/// Publishes a registration/subscription lifecycle event (`on_register`, ...).
pub fn on_route(router: &Router, realm: &Realm, topic: &str, session: SessionId, id: u64) {
    publish_meta(router, realm, topic, || Some(vec![session.0.into(), id.into()]));
}

/// Publishes `wamp.registration.on_create` / `wamp.subscription.on_create`; `details`
/// is built only when some node listens.
pub fn on_create(
    router: &Router,
    realm: &Realm,
    topic: &str,
    session: SessionId,
    details: impl FnOnce() -> Option<Dict>,
) {
    publish_meta(router, realm, topic, || details().map(|d| vec![session.0.into(), d.into()]));
}

/// Milliseconds since the epoch as an ISO 8601 UTC timestamp.
pub fn iso8601(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let (h, m, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}.{:03}Z", ms % 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_timestamps() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso8601(1_795_000_000_123), "2026-11-18T11:06:40.123Z");
        assert_eq!(iso8601(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn meta_namespace() {
        assert!(is_meta("wamp.session.count"));
        assert!(is_meta("wamp.registration.list"));
        assert!(!is_meta("wamp.foo"));
        assert!(!is_meta("com.session.count"));
    }
}
