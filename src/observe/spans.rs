//! Trace spans for WAMP traffic, and W3C trace-context propagation.
//!
//! Spans are created only while traces are exported (`OTEL_EXPORTER_OTLP_*` set);
//! otherwise every helper returns [`Span::none()`] after one atomic load, so the hot
//! path pays nothing. A span's trace id is recorded as its `trace_id` field, so log
//! lines written inside it carry the id.
//!
//! Span names are low-cardinality — `call`, `invocation`, `publish`, `event`,
//! `raft.propose` — and the URI goes into attributes, following the OpenTelemetry
//! semantic conventions: RPC spans carry `rpc.system = "wamp"` and `rpc.method` (the
//! procedure), pub/sub spans `messaging.system = "wamp"`,
//! `messaging.destination.name` (the topic), `messaging.operation.type`,
//! `messaging.operation.name` and `messaging.message.id` (the publication id); a failed span has `error.type` (the WAMP error URI)
//! and status Error. Junction's own attributes (`wamp.realm`, `wamp.caller`,
//! `junction.node`, ...) come along.
//!
//! Span kinds, as the router sees each step:
//! - `call` (on the caller's node) is SERVER: the router receives the caller's CALL
//!   and answers it with RESULT or ERROR, it serves a request;
//! - `invocation` (on the callee's node, when the call came from another node) is
//!   CLIENT: the router sends INVOCATION to the callee session and waits for its
//!   YIELD, it is the client of the session implementing the procedure (whose own
//!   span, if its WAMP library makes one, is the SERVER side);
//! - `publish` is PRODUCER: the router sends the publication on to subscribers;
//! - `event` (delivering a publication to the subscribers of a node) is CONSUMER:
//!   it processes a message a producer sent (`messaging.operation.type = "process"`);
//! - `raft.propose` is INTERNAL.
//!
//! Propagation: clients may pass a W3C `traceparent` under the WAMP option key
//! [`TRACEPARENT_KEY`] (`CALL.Options`, `PUBLISH.Options`), and its `tracestate`
//! under [`TRACESTATE_KEY`]; the router continues that trace, puts the current
//! context (both keys) into link frames so the other node's span joins the same
//! trace, and hands it to callees/subscribers under the same keys in
//! `INVOCATION.Details` / `EVENT.Details`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};

use dashmap::DashMap;
use opentelemetry::Context;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing::Span;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::wamp::value::{Dict, Value};

/// The `tracing` target of every span exported as an OpenTelemetry span.
pub const TARGET: &str = "junction::trace";

pub use crate::wamp::{TRACEPARENT_KEY, TRACESTATE_KEY};

static ENABLED: AtomicBool = AtomicBool::new(false);

/// True while spans are exported (the helpers create real spans).
#[inline]
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

pub(crate) fn set_enabled(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
}

/// What a new span continues.
#[derive(Clone, Copy, Debug, Default)]
pub enum Parent<'a> {
    /// A new trace, or the current span if one is entered.
    #[default]
    None,
    /// A W3C `traceparent` (with its `tracestate`, if any) from client options or
    /// a link frame.
    Remote { traceparent: &'a str, tracestate: Option<&'a str> },
    /// A span on this node.
    Span(&'a Span),
}

impl<'a> Parent<'a> {
    /// The trace context in WAMP options or details (`_traceparent`, `_tracestate`).
    pub fn of(dict: &'a Dict) -> Parent<'a> {
        match dict.get(TRACEPARENT_KEY).and_then(Value::as_str) {
            Some(traceparent) => {
                Parent::Remote { traceparent, tracestate: dict.get(TRACESTATE_KEY).and_then(Value::as_str) }
            }
            None => Parent::None,
        }
    }
}

impl<'a> From<&'a Span> for Parent<'a> {
    fn from(span: &'a Span) -> Self {
        Parent::Span(span)
    }
}

/// Sets the parent and records the trace id of a fresh span.
fn finish(span: Span, parent: Parent<'_>) -> Span {
    let cx = match parent {
        Parent::None => None,
        Parent::Remote { traceparent, tracestate } => Some(context_from(traceparent, tracestate)),
        Parent::Span(p) => Some(p.context()),
    };
    if let Some(cx) = cx.filter(|cx| cx.span().span_context().is_valid())
        && let Err(e) = span.set_parent(cx)
    {
        tracing::debug!(error = %e, "span parent not set");
    }
    if let Some(id) = trace_id_of(&span) {
        span.record("trace_id", id.as_str());
    }
    span
}

/// The span of a CALL on the caller's node, from CALL to RESULT/ERROR (SERVER).
pub fn call_span(
    realm: &str,
    procedure: &str,
    caller_session: u64,
    serializer: &str,
    node: u64,
    parent: Parent<'_>,
) -> Span {
    if !enabled() {
        return Span::none();
    }
    let span = tracing::info_span!(
        target: TARGET, "wamp.call",
        otel.name = "call", otel.kind = "server", otel.status_code = Empty, otel.status_description = Empty,
        rpc.system = "wamp", rpc.method = procedure, error.type = Empty,
        wamp.realm = realm, wamp.procedure = procedure, wamp.caller = caller_session,
        wamp.serializer = serializer, junction.node = node, trace_id = Empty,
    );
    finish(span, parent)
}

/// The span of an INVOCATION on the callee's node, from INVOCATION to YIELD/ERROR
/// (CLIENT; a child of the call span, across nodes through the link's
/// `traceparent`).
pub fn invocation_span(
    realm: &str,
    procedure: &str,
    callee_session: u64,
    node: u64,
    parent: Parent<'_>,
) -> Span {
    if !enabled() {
        return Span::none();
    }
    let span = tracing::info_span!(
        target: TARGET, "wamp.invocation",
        otel.name = "invocation", otel.kind = "client", otel.status_code = Empty,
        otel.status_description = Empty, rpc.system = "wamp", rpc.method = procedure, error.type = Empty,
        wamp.realm = realm, wamp.procedure = procedure, wamp.callee = callee_session,
        junction.node = node, trace_id = Empty,
    );
    finish(span, parent)
}

/// The span of a PUBLISH on the publisher's node (routing and local fan-out;
/// PRODUCER).
pub fn publish_span(
    realm: &str,
    topic: &str,
    publication: u64,
    publisher_session: u64,
    serializer: &str,
    node: u64,
    parent: Parent<'_>,
) -> Span {
    if !enabled() {
        return Span::none();
    }
    let span = tracing::info_span!(
        target: TARGET, "wamp.publish",
        otel.name = "publish", otel.kind = "producer", otel.status_code = Empty,
        otel.status_description = Empty, messaging.system = "wamp", messaging.destination.name = topic,
        messaging.operation.type = "send", messaging.operation.name = "publish",
        messaging.message.id = publication.to_string(), error.type = Empty,
        wamp.realm = realm, wamp.topic = topic, wamp.publisher = publisher_session,
        wamp.serializer = serializer, junction.node = node, trace_id = Empty,
    );
    finish(span, parent)
}

/// The span of delivering a publication to the subscribers on this node
/// (CONSUMER): a child of the publish span, on the publisher's node or, across
/// nodes, through the link's `traceparent`.
pub fn event_span(realm: &str, topic: &str, publication: u64, node: u64, parent: Parent<'_>) -> Span {
    if !enabled() {
        return Span::none();
    }
    let span = tracing::info_span!(
        target: TARGET, "wamp.event",
        otel.name = "event", otel.kind = "consumer",
        messaging.system = "wamp", messaging.destination.name = topic,
        messaging.operation.type = "process", messaging.operation.name = "event",
        messaging.message.id = publication.to_string(),
        wamp.realm = realm, wamp.topic = topic, junction.node = node, wamp.recipients = Empty,
        trace_id = Empty,
    );
    finish(span, parent)
}

/// The span of one Raft proposal (a command, or a batch of `commands`) from this
/// node until it is committed and applied here (INTERNAL), a child of the current
/// span or of `parent`.
pub fn propose_span(request: &'static str, commands: usize, node: u64, parent: Parent<'_>) -> Span {
    if !enabled() {
        return Span::none();
    }
    let span = tracing::info_span!(
        target: TARGET, "raft.propose",
        otel.name = "raft.propose", otel.kind = "internal", otel.status_code = Empty,
        otel.status_description = Empty, error.type = Empty,
        junction.raft.request = request, junction.raft.commands = commands as u64,
        junction.node = node, trace_id = Empty,
    );
    finish(span, parent)
}

/// The span of an admin API request (SERVER), named `{method} {http.route}` as
/// the HTTP conventions say: the route has `{id}` for a numeric path segment (a
/// session id), and a path outside the admin API's (a scanner's guess) has no
/// route, so the span is named by the method alone.
pub fn admin_span(method: &str, path: &str) -> Span {
    if !enabled() {
        return Span::none();
    }
    let route = http_route(path);
    let name = match &route {
        Some(r) => format!("{method} {r}"),
        None => method.to_owned(),
    };
    let span = tracing::info_span!(
        target: TARGET, "admin.request",
        otel.name = name, otel.kind = "server",
        http.request.method = method, http.route = route, url.path = path, trace_id = Empty,
    );
    finish(span, Parent::None)
}

/// The admin API's route of `path`: numeric segments become `{id}`; `None` outside
/// the admin API's paths.
fn http_route(path: &str) -> Option<String> {
    const PREFIXES: [&str; 5] = ["/api/", "/metrics", "/healthz", "/readyz", "/console"];
    if !PREFIXES.iter().any(|p| path.starts_with(p)) || path.len() > 64 {
        return None;
    }
    let segments = path
        .split('/')
        .map(|s| if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) { "{id}" } else { s });
    Some(segments.collect::<Vec<_>>().join("/"))
}

/// Marks a span as failed: `error.type` is `error` (a WAMP error URI, or a short
/// error class), and the status is Error with that description.
pub fn set_error(span: &Span, error: &str) {
    if !span.is_disabled() {
        span.record("error.type", error);
        span.record("otel.status_code", "ERROR");
        span.record("otel.status_description", error);
    }
}

/// Records how many sessions on this node an event span delivered to.
pub fn set_recipients(span: &Span, n: u64) {
    if !span.is_disabled() {
        span.record("wamp.recipients", n);
    }
}

/// The OpenTelemetry context of a W3C `traceparent` and `tracestate` (an empty
/// context when the traceparent is not valid).
pub fn context_from(traceparent: &str, tracestate: Option<&str>) -> Context {
    let mut carrier = HashMap::from([("traceparent".to_string(), traceparent.to_string())]);
    if let Some(ts) = tracestate {
        carrier.insert("tracestate".to_string(), ts.to_string());
    }
    TraceContextPropagator::new().extract(&carrier)
}

/// The W3C trace context of a span as WAMP details (`_traceparent`, and
/// `_tracestate` when the trace has one), to put into a link frame or hand to a
/// callee or subscriber; `None` when the span is disabled (traces not exported).
pub fn trace_of(span: &Span) -> Option<Dict> {
    if span.is_disabled() {
        return None;
    }
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&span.context(), &mut carrier);
    let tp = carrier.remove("traceparent")?;
    let mut d = Dict::new();
    d.insert(TRACEPARENT_KEY.into(), tp.into());
    if let Some(ts) = carrier.remove("tracestate").filter(|ts| !ts.is_empty()) {
        d.insert(TRACESTATE_KEY.into(), ts.into());
    }
    Some(d)
}

/// The trace context a client gave in `options` (`_traceparent` and
/// `_tracestate`, strings only), as given; `None` without a traceparent.
pub fn trace_given(options: &Dict) -> Option<Dict> {
    let tp = options.get(TRACEPARENT_KEY).filter(|v| v.as_str().is_some())?;
    let mut d = Dict::new();
    d.insert(TRACEPARENT_KEY.into(), tp.clone());
    if let Some(ts) = options.get(TRACESTATE_KEY).filter(|v| v.as_str().is_some()) {
        d.insert(TRACESTATE_KEY.into(), ts.clone());
    }
    Some(d)
}

/// What the next hop may join: `span`'s context while traces are exported, else
/// the client's context from `options` as given.
pub fn propagated(span: &Span, options: &Dict) -> Option<Dict> {
    trace_of(span).or_else(|| trace_given(options))
}

/// The span's trace id as 32 hex digits, if it has one.
pub fn trace_id_of(span: &Span) -> Option<String> {
    if span.is_disabled() {
        return None;
    }
    let cx = span.context();
    let sc = cx.span().span_context().clone();
    sc.is_valid().then(|| sc.trace_id().to_string())
}

/// Spans of calls and invocations in flight, so the router's call structures stay
/// `Copy`. Keys are [`call_key`]`(token)` (`(0, token)`) for a call on the caller's
/// node, `(caller's node id, link call id)` for an invocation served for another
/// node (node ids are never 0). Insert when it starts, [`end`](PendingSpans::end) when it is
/// answered (or the session leaves): the span ends when it leaves the store.
#[derive(Debug, Default)]
pub struct PendingSpans {
    spans: DashMap<(u64, u64), Span>,
}

impl PendingSpans {
    /// Keeps `span` (nothing happens for a disabled span).
    pub fn insert(&self, key: (u64, u64), span: Span) {
        if enabled() && !span.is_disabled() {
            self.spans.insert(key, span);
        }
    }

    /// Ends the span of `key`, marked failed with `error` if given.
    #[inline]
    pub fn end(&self, key: (u64, u64), error: Option<&str>) {
        if let Some(span) = self.remove(key)
            && let Some(e) = error
        {
            set_error(&span, e);
        }
    }

    /// Marks the span of `key` failed with `error`, leaving it in the store (for
    /// paths where the span is ended elsewhere, e.g. centrally on `finish_call`).
    pub fn mark_error(&self, key: (u64, u64), error: &str) {
        if !enabled() || self.spans.is_empty() {
            return;
        }
        if let Some(span) = self.spans.get(&key) {
            set_error(&span, error);
        }
    }

    /// Takes the span of `key` out of the store.
    #[inline]
    pub fn remove(&self, key: (u64, u64)) -> Option<Span> {
        if !enabled() || self.spans.is_empty() {
            return None;
        }
        self.spans.remove(&key).map(|(_, s)| s)
    }

    /// The trace context (`_traceparent`, `_tracestate`) of a span in the store.
    pub fn trace(&self, key: (u64, u64)) -> Option<Dict> {
        if !enabled() || self.spans.is_empty() {
            return None;
        }
        self.spans.get(&key).and_then(|s| trace_of(&s))
    }

    /// Number of spans kept.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// True when no span is kept.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }
}

/// The store key of a call's span on the caller's node.
#[inline]
pub fn call_key(token: u64) -> (u64, u64) {
    (0, token)
}

/// The process-wide store of call and invocation spans.
pub fn pending() -> &'static PendingSpans {
    static PENDING: std::sync::OnceLock<PendingSpans> = std::sync::OnceLock::new();
    PENDING.get_or_init(PendingSpans::default)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_round_trips_through_a_context() {
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let cx = context_from(tp, Some("vendor=abc,other=1"));
        let sc = cx.span().span_context().clone();
        assert!(sc.is_valid());
        assert_eq!(sc.trace_id().to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(sc.trace_state().get("vendor"), Some("abc"));
        assert!(!context_from("garbage", None).span().span_context().is_valid());
    }

    #[test]
    fn a_clients_trace_context_is_passed_on_as_given() {
        let mut options = Dict::new();
        assert_eq!(trace_given(&options), None);
        options.insert(TRACESTATE_KEY.into(), "a=1".into());
        assert_eq!(trace_given(&options), None, "no tracestate without a traceparent");
        options
            .insert(TRACEPARENT_KEY.into(), "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into());
        let given = trace_given(&options).expect("a trace context");
        assert_eq!(given.get(TRACESTATE_KEY).and_then(Value::as_str), Some("a=1"));
        assert_eq!(propagated(&Span::none(), &options), Some(given));
        assert!(matches!(Parent::of(&options), Parent::Remote { tracestate: Some("a=1"), .. }));
    }

    #[test]
    fn admin_spans_are_named_by_route() {
        assert_eq!(http_route("/api/status").as_deref(), Some("/api/status"));
        assert_eq!(http_route("/api/sessions/4242/kill").as_deref(), Some("/api/sessions/{id}/kill"));
        assert_eq!(http_route("/wp-admin/setup.php"), None);
    }

    #[test]
    fn disabled_spans_cost_nothing() {
        assert!(call_span("r", "p", 1, "json", 1, Parent::None).is_disabled());
        assert_eq!(trace_of(&Span::none()), None);
        pending().insert((1, 1), Span::none());
        assert!(pending().remove((1, 1)).is_none());
        pending().end((1, 2), Some("wamp.error.canceled"));
    }
}
