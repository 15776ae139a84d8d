//! Webhooks (`[[webhooks]]`, see `config::webhook`): HTTP services taking part in a
//! realm without speaking WAMP. Each webhook is a transport like the WebSocket one:
//! it drives a router [`Session`] with WAMP frames (JSON) and reads what the router
//! queues for it, so realm authentication and authorization, the cluster's routing
//! and the meta events apply to it as to any client.
//!
//! - A **subscriber** subscribes to its topic and POSTs each event, in order, as
//!   `{"topic", "publication", "args", "kwargs", "details"}`; a failed POST (no answer,
//!   or a status other than 2xx) is retried with exponential backoff up to `retries`
//!   times, then given up (counted). Events wait in a queue of `queue` entries;
//!   beyond that they are dropped and counted (`junction_webhook_events_total{outcome}`).
//! - A **callee** registers its procedure and serves each invocation with a POST of
//!   `{"procedure", "args", "kwargs", "details"}`, at most `concurrency` at once. A
//!   2xx answer is the RESULT: a JSON object with `args` and/or `kwargs` gives them,
//!   any other JSON value is the single result, an empty body no result. Another
//!   status is an ERROR: the body's `{"error": URI, "args", "kwargs"}` if it has one,
//!   else `wamp.error.runtime_error` with the status and the start of the body; no
//!   answer in `timeout_ms` is `wamp.error.runtime_error` too.
//!
//! A webhook whose session ends (the realm refused it, the node drains) tries again
//! after a pause, so a webhook configured before its realm allows it starts once it
//! does.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::json;
use tokio::sync::{Semaphore, mpsc};

use super::http_client::{HttpError, post_json};
use crate::config::webhook::{WebhookConfig, WebhookKind, parse_http_url};
use crate::dict;
use crate::ids::RequestId;
use crate::router::Router;
use crate::router::outbox::{OutboxReceiver, outbox};
use crate::router::session::Session;
use crate::wamp::codec::Serializer;
use crate::wamp::message::{
    Authenticate, Error, Event, Goodbye, Hello, Invocation, Message, Payload, Register, Subscribe, Yield,
    code,
};
use crate::wamp::value::{Dict, List, Value};

/// Pause before a webhook whose session ended joins again.
const REJOIN_AFTER: Duration = Duration::from_secs(2);

/// The error URI of a callee webhook that failed.
const RUNTIME_ERROR: &str = "wamp.error.runtime_error";

/// Starts every configured webhook; each runs until the router is gone.
pub fn start(router: &Arc<Router>, webhooks: &[WebhookConfig]) {
    for cfg in webhooks {
        let (router, cfg) = (Arc::downgrade(router), cfg.clone());
        tokio::spawn(async move {
            loop {
                let Some(r) = router.upgrade() else { return };
                let label = cfg.label();
                match run(r, &cfg).await {
                    Ok(()) => tracing::info!(webhook = %label, "webhook session ended; joining again"),
                    Err(e) => tracing::warn!(webhook = %label, error = %e, "webhook not running; retrying"),
                }
                tokio::time::sleep(REJOIN_AFTER).await;
            }
        });
    }
}

/// Joins, subscribes or registers, and serves until the session ends.
async fn run(router: Arc<Router>, cfg: &WebhookConfig) -> Result<(), String> {
    let mut s = Internal::join(router, cfg).await?;
    let mut options = Dict::new();
    if let Some(m) = &cfg.match_policy {
        options.insert("match".into(), Value::Str(m.clone()));
    }
    match cfg.kind {
        WebhookKind::Subscriber => {
            let sub =
                Message::Subscribe(Subscribe { request: RequestId(1), options, topic: cfg.uri().into() });
            match s.request(sub).await? {
                Message::Subscribed(_) => subscriber(s, cfg).await,
                other => Err(refusal("SUBSCRIBE", &other)),
            }
        }
        WebhookKind::Callee => {
            if let Some(p) = &cfg.invoke {
                options.insert("invoke".into(), Value::Str(p.clone()));
            }
            let reg =
                Message::Register(Register { request: RequestId(1), options, procedure: cfg.uri().into() });
            match s.request(reg).await? {
                Message::Registered(_) => callee(s, cfg).await,
                other => Err(refusal("REGISTER", &other)),
            }
        }
    }
}

fn refusal(what: &str, answer: &Message) -> String {
    match answer {
        Message::Error(e) => format!("{what} refused: {}", e.error),
        other => format!("{what} answered with {other:?}"),
    }
}

/// The router session a webhook drives.
struct Internal {
    session: Session,
    rx: OutboxReceiver,
    pending: VecDeque<Bytes>,
}

impl Internal {
    /// Joins `cfg.realm`: with a ticket when one is configured, else anonymously.
    async fn join(router: Arc<Router>, cfg: &WebhookConfig) -> Result<Internal, String> {
        let (tx, rx) = outbox(4096, 16 << 20);
        let session = Session::new(router, Serializer::Json, tx, "webhook");
        let mut s = Internal { session, rx, pending: VecDeque::new() };
        let roles = dict! {
            "subscriber" => Value::Dict(dict! { "features" => Value::Dict(dict! {
                "pattern_based_subscription" => Value::Bool(true),
            }) }),
            "callee" => Value::Dict(dict! { "features" => Value::Dict(dict! {
                "pattern_based_registration" => Value::Bool(true),
                "shared_registration" => Value::Bool(true),
            }) }),
        };
        let mut details = dict! { "roles" => Value::Dict(roles) };
        if let Some(authid) = &cfg.authid {
            details.insert("authid".into(), Value::Str(authid.clone()));
            details.insert("authmethods".into(), Value::List(vec![Value::Str("ticket".into())]));
        }
        let answer = s.request(Message::Hello(Hello { realm: cfg.realm.clone(), details })).await?;
        let answer = match answer {
            Message::Challenge(_) => {
                let ticket = cfg.ticket.clone().unwrap_or_default();
                s.request(Message::Authenticate(Authenticate { signature: ticket, extra: Dict::new() }))
                    .await?
            }
            other => other,
        };
        match answer {
            Message::Welcome(_) => Ok(s),
            Message::Abort(a) => Err(format!("the realm refused the webhook's session: {}", a.reason)),
            other => Err(format!("unexpected answer to HELLO: {other:?}")),
        }
    }

    async fn send(&mut self, msg: &Message) {
        let frame = bytes::Bytes::from(Serializer::Json.encode(msg));
        self.session.on_frame(&frame).await;
    }

    /// Sends `msg` and returns the router's next message.
    async fn request(&mut self, msg: Message) -> Result<Message, String> {
        self.send(&msg).await;
        self.next().await.ok_or_else(|| "the session ended".to_owned())
    }

    /// The next message the router queued for this session; `None` once it closed.
    async fn next(&mut self) -> Option<Message> {
        loop {
            if let Some(frame) = self.pending.pop_front() {
                match Serializer::Json.decode(&frame) {
                    Ok(m) => return Some(m),
                    Err(e) => {
                        tracing::warn!(error = %e, "webhook: undecodable frame from the router");
                        continue;
                    }
                }
            }
            let mut batch = Vec::new();
            if self.rx.recv_many(&mut batch, 256).await == 0 {
                return None;
            }
            self.pending.extend(batch);
        }
    }

    /// Says (or answers) GOODBYE and leaves.
    async fn close(mut self) {
        let bye = Goodbye { details: Dict::new(), reason: crate::wamp::errors::GOODBYE_AND_OUT.into() };
        self.send(&Message::Goodbye(bye)).await;
        self.session.leave().await;
    }
}

/// JSON text of a WAMP value (binary as the WAMP JSON serializer writes it).
fn to_json(v: &Value) -> serde_json::Value {
    serde_json::from_slice(&Serializer::Json.encode_value(v)).unwrap_or(serde_json::Value::Null)
}

fn payload_json(p: &Payload) -> (serde_json::Value, serde_json::Value) {
    let p = p.arguments();
    let args = p.args.as_ref().map(|a| to_json(&Value::List(a.clone()))).unwrap_or(json!([]));
    let kwargs = p.kwargs.as_ref().map(|k| to_json(&Value::Dict(k.clone()))).unwrap_or(json!({}));
    (args, kwargs)
}

/// Counts one event of webhook `label` by `outcome` (delivered, dropped, failed).
fn count(label: &str, outcome: &'static str) {
    crate::observe::metrics::webhook_event(label, outcome);
}

/// Reads events and queues them for the poster until the session ends.
async fn subscriber(mut s: Internal, cfg: &WebhookConfig) -> Result<(), String> {
    let label = cfg.label();
    let (tx, rx) = mpsc::channel::<serde_json::Value>(cfg.queue);
    let poster = tokio::spawn(post_events(cfg.clone(), rx));
    while let Some(msg) = s.next().await {
        match msg {
            Message::Event(Event { publication, details, payload, .. }) => {
                let (args, kwargs) = payload_json(&payload);
                let topic = details.get("topic").and_then(Value::as_str).unwrap_or(cfg.uri()).to_owned();
                let body = json!({
                    "topic": topic, "publication": publication.0, "args": args, "kwargs": kwargs,
                    "details": to_json(&Value::Dict(details)),
                });
                if tx.try_send(body).is_err() {
                    count(&label, "dropped");
                }
            }
            Message::Goodbye(_) => break,
            _ => {}
        }
    }
    drop(tx);
    s.close().await;
    poster.await.ok();
    Ok(())
}

/// POSTs queued events one at a time, in order, with retries.
async fn post_events(cfg: WebhookConfig, mut rx: mpsc::Receiver<serde_json::Value>) {
    let label = cfg.label();
    let Ok((authority, path)) = parse_http_url(&cfg.url) else { return };
    let headers: Vec<(String, String)> = cfg.headers.clone().into_iter().collect();
    let timeout = Duration::from_millis(cfg.timeout_ms);
    while let Some(body) = rx.recv().await {
        let body = serde_json::to_vec(&body).unwrap_or_default();
        let mut delay = Duration::from_millis(cfg.backoff_ms);
        let mut attempt = 0;
        loop {
            let why = match post_json(&authority, &path, &headers, body.clone(), timeout).await {
                Ok((status, _)) if (200..300).contains(&status) => {
                    count(&label, "delivered");
                    break;
                }
                Ok((status, _)) => format!("HTTP {status}"),
                Err(e) => e.to_string(),
            };
            if attempt >= cfg.retries {
                tracing::warn!(webhook = %label, reason = %why, attempts = attempt + 1, "event not delivered; given up");
                count(&label, "failed");
                break;
            }
            tracing::debug!(webhook = %label, reason = %why, "event not delivered yet; retrying");
            attempt += 1;
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_millis(cfg.backoff_max_ms));
        }
    }
}

/// Serves invocations by POSTing them until the session ends.
async fn callee(mut s: Internal, cfg: &WebhookConfig) -> Result<(), String> {
    let slots = Arc::new(Semaphore::new(cfg.concurrency));
    let (answers_tx, mut answers) = mpsc::channel::<Message>(cfg.concurrency.max(1) * 2);
    let (authority, path) = parse_http_url(&cfg.url)?;
    let headers: Arc<Vec<(String, String)>> = Arc::new(cfg.headers.clone().into_iter().collect());
    let timeout = Duration::from_millis(cfg.timeout_ms);
    loop {
        tokio::select! {
            msg = s.next() => match msg {
                Some(Message::Invocation(inv)) => {
                    let Ok(slot) = slots.clone().acquire_owned().await else { break };
                    let (tx, authority, path, headers) = (answers_tx.clone(), authority.clone(), path.clone(), headers.clone());
                    let procedure = inv.details.get("procedure").and_then(Value::as_str).unwrap_or(cfg.uri()).to_owned();
                    tokio::spawn(async move {
                        let answer = invoke(&authority, &path, &headers, timeout, &procedure, inv).await;
                        tx.send(answer).await.ok();
                        drop(slot);
                    });
                }
                Some(Message::Goodbye(_)) | None => break,
                Some(_) => {}
            },
            Some(answer) = answers.recv() => s.send(&answer).await,
        }
    }
    s.close().await;
    Ok(())
}

/// One invocation as an HTTP POST; the YIELD or ERROR to send.
async fn invoke(
    authority: &str,
    path: &str,
    headers: &[(String, String)],
    timeout: Duration,
    procedure: &str,
    inv: Invocation,
) -> Message {
    let (args, kwargs) = payload_json(&inv.payload);
    let body = json!({
        "procedure": procedure, "args": args, "kwargs": kwargs, "details": to_json(&Value::Dict(inv.details)),
    });
    let body = serde_json::to_vec(&body).unwrap_or_default();
    let fail = |error: &str, why: String| {
        Message::Error(Error {
            request_type: code::INVOCATION,
            request: inv.request,
            details: Dict::new(),
            error: error.to_owned(),
            payload: Payload::args(vec![Value::Str(why)]),
        })
    };
    match post_json(authority, path, headers, body, timeout).await {
        Ok((status, body)) if (200..300).contains(&status) => {
            let payload = match decode(&body) {
                Ok(v) => result_payload(v),
                Err(e) => return fail(RUNTIME_ERROR, format!("the webhook answered {status} with {e}")),
            };
            Message::Yield(Yield { request: inv.request, options: Dict::new(), payload })
        }
        Ok((status, body)) => match decode(&body) {
            Ok(Some(Value::Dict(mut d))) if d.get("error").and_then(Value::as_str).is_some() => {
                let error = d.remove("error").and_then(|e| e.as_str().map(str::to_owned)).unwrap_or_default();
                let args = match d.remove("args") {
                    Some(Value::List(l)) => Some(l),
                    _ => None,
                };
                let kwargs = match d.remove("kwargs") {
                    Some(Value::Dict(k)) => Some(k),
                    _ => None,
                };
                Message::Error(Error {
                    request_type: code::INVOCATION,
                    request: inv.request,
                    details: Dict::new(),
                    error,
                    payload: Payload::new(args, kwargs),
                })
            }
            _ => {
                let text = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
                fail(RUNTIME_ERROR, format!("the webhook answered HTTP {status}: {text}"))
            }
        },
        Err(HttpError::Timeout(ms)) => {
            fail(RUNTIME_ERROR, format!("the webhook did not answer within {ms} ms"))
        }
        Err(e) => fail(RUNTIME_ERROR, format!("the webhook could not be reached: {e}")),
    }
}

/// An HTTP body as a WAMP value (`None` when empty).
fn decode(body: &[u8]) -> Result<Option<Value>, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    Serializer::Json.decode_value(body).map(Some).map_err(|e| format!("a body that is not JSON ({e})"))
}

/// A 2xx body as a result: `{"args", "kwargs"}` as they are, any other value as the
/// single result.
fn result_payload(v: Option<Value>) -> Payload {
    match v {
        None => Payload::default(),
        Some(Value::Dict(mut d)) if d.keys().all(|k| k == "args" || k == "kwargs") && !d.is_empty() => {
            let args: Option<List> = match d.remove("args") {
                Some(Value::List(l)) => Some(l),
                _ => None,
            };
            let kwargs = match d.remove("kwargs") {
                Some(Value::Dict(k)) => Some(k),
                _ => None,
            };
            Payload::new(args.or_else(|| kwargs.as_ref().map(|_| Vec::new())), kwargs)
        }
        Some(other) => Payload::args(vec![other]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_answers_map_to_results() {
        assert_eq!(result_payload(None), Payload::default());
        let v = Serializer::Json.decode_value(br#"{"args":[1],"kwargs":{"a":2}}"#).ok();
        let p = result_payload(v).into_arguments();
        assert_eq!(p.args, Some(vec![Value::Int(1)]));
        assert_eq!(p.kwargs.and_then(|k| k.get("a").cloned()), Some(Value::Int(2)));
        let v = Serializer::Json.decode_value(br#"{"total":3}"#).ok();
        assert_eq!(
            result_payload(v).into_arguments().args.map(|a| a.len()),
            Some(1),
            "any other object is the single result"
        );
        assert!(decode(b"  ").unwrap().is_none());
        assert!(decode(b"not json").is_err());
    }
}
