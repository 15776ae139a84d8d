//! Trace spans for WAMP traffic, and W3C trace-context propagation.
//!
//! Spans are created only while traces are exported (`OTEL_EXPORTER_OTLP_*` set);
//! otherwise every helper returns [`Span::none()`] after one atomic load, so the hot
//! path pays nothing. A span's trace id is recorded as its `trace_id` field, so log
//! lines written inside it carry the id.
//!
//! Propagation: clients may pass a W3C `traceparent` under the WAMP option key
//! [`TRACEPARENT_KEY`] (`CALL.Options`, `PUBLISH.Options`); the router continues
//! that trace, puts the current `traceparent` into link frames so the other node's
//! span joins the same trace, and may hand it to callees/subscribers under the same
//! key in `INVOCATION.Details` / `EVENT.Details`.

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

/// The `tracing` target of every span exported as an OpenTelemetry span.
pub const TARGET: &str = "junction::trace";

pub use crate::wamp::TRACEPARENT_KEY;

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
    /// A W3C `traceparent` from a client option or a link frame.
    Traceparent(&'a str),
    /// A span on this node.
    Span(&'a Span),
}

impl<'a> From<Option<&'a str>> for Parent<'a> {
    fn from(tp: Option<&'a str>) -> Self {
        tp.map_or(Parent::None, Parent::Traceparent)
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
        Parent::Traceparent(tp) => Some(context_from_traceparent(tp)),
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

/// The span of a CALL on the caller's node, from CALL to RESULT/ERROR.
pub fn call_span<'a>(
    realm: &str,
    procedure: &str,
    caller_session: u64,
    serializer: &str,
    node: u64,
    parent: impl Into<Parent<'a>>,
) -> Span {
    if !enabled() {
        return Span::none();
    }
    let span = tracing::info_span!(
        target: TARGET, "wamp.call",
        otel.name = format!("call {procedure}"), otel.kind = "server", otel.status_code = Empty,
        wamp.realm = realm, wamp.procedure = procedure, wamp.caller = caller_session,
        wamp.serializer = serializer, junction.node = node, wamp.error = Empty, trace_id = Empty,
    );
    finish(span, parent.into())
}

/// The span of an INVOCATION on the callee's node, from INVOCATION to YIELD/ERROR
/// (a child of the call span, across nodes through the link's `traceparent`).
pub fn invocation_span<'a>(
    realm: &str,
    procedure: &str,
    callee_session: u64,
    node: u64,
    parent: impl Into<Parent<'a>>,
) -> Span {
    if !enabled() {
        return Span::none();
    }
    let span = tracing::info_span!(
        target: TARGET, "wamp.invocation",
        otel.name = format!("invocation {procedure}"), otel.kind = "server", otel.status_code = Empty,
        wamp.realm = realm, wamp.procedure = procedure, wamp.callee = callee_session,
        junction.node = node, wamp.error = Empty, trace_id = Empty,
    );
    finish(span, parent.into())
}

/// The span of a PUBLISH on the publisher's node (routing and local fan-out).
pub fn publish_span<'a>(
    realm: &str,
    topic: &str,
    publisher_session: u64,
    serializer: &str,
    node: u64,
    parent: impl Into<Parent<'a>>,
) -> Span {
    if !enabled() {
        return Span::none();
    }
    let span = tracing::info_span!(
        target: TARGET, "wamp.publish",
        otel.name = format!("publish {topic}"), otel.kind = "producer", otel.status_code = Empty,
        wamp.realm = realm, wamp.topic = topic, wamp.publisher = publisher_session,
        wamp.serializer = serializer, junction.node = node, wamp.recipients = Empty,
        wamp.error = Empty, trace_id = Empty,
    );
    finish(span, parent.into())
}

/// The span of delivering a publication that came over a link, on the
/// subscribers' node.
pub fn event_span<'a>(realm: &str, topic: &str, node: u64, parent: impl Into<Parent<'a>>) -> Span {
    if !enabled() {
        return Span::none();
    }
    let span = tracing::info_span!(
        target: TARGET, "wamp.event",
        otel.name = format!("event {topic}"), otel.kind = "consumer",
        wamp.realm = realm, wamp.topic = topic, junction.node = node, wamp.recipients = Empty,
        trace_id = Empty,
    );
    finish(span, parent.into())
}

/// The span of an admin API request.
pub fn admin_span(method: &str, path: &str) -> Span {
    if !enabled() {
        return Span::none();
    }
    let span = tracing::info_span!(
        target: TARGET, "admin.request",
        otel.name = format!("{method} {path}"), otel.kind = "server",
        http.request.method = method, url.path = path, trace_id = Empty,
    );
    finish(span, Parent::None)
}

/// Marks a span as failed with a WAMP error URI.
pub fn set_error(span: &Span, error_uri: &str) {
    if !span.is_disabled() {
        span.record("wamp.error", error_uri);
        span.record("otel.status_code", "ERROR");
    }
}

/// Records how many sessions a publication or event reached.
pub fn set_recipients(span: &Span, n: u64) {
    if !span.is_disabled() {
        span.record("wamp.recipients", n);
    }
}

/// The OpenTelemetry context of a W3C `traceparent` (an empty context when the
/// string is not a valid traceparent).
pub fn context_from_traceparent(traceparent: &str) -> Context {
    let carrier = HashMap::from([("traceparent".to_string(), traceparent.to_string())]);
    TraceContextPropagator::new().extract(&carrier)
}

/// The W3C `traceparent` of a span, to put into a link frame or a WAMP option;
/// `None` when the span is disabled (traces not exported).
pub fn traceparent_of(span: &Span) -> Option<String> {
    if span.is_disabled() {
        return None;
    }
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&span.context(), &mut carrier);
    carrier.remove("traceparent")
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

    /// The `traceparent` of a span in the store.
    pub fn traceparent(&self, key: (u64, u64)) -> Option<String> {
        if !enabled() || self.spans.is_empty() {
            return None;
        }
        self.spans.get(&key).and_then(|s| traceparent_of(&s))
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
        let cx = context_from_traceparent(tp);
        let sc = cx.span().span_context().clone();
        assert!(sc.is_valid());
        assert_eq!(sc.trace_id().to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert!(!context_from_traceparent("garbage").span().span_context().is_valid());
    }

    #[test]
    fn disabled_spans_cost_nothing() {
        assert!(call_span("r", "p", 1, "json", 1, None).is_disabled());
        assert_eq!(traceparent_of(&Span::none()), None);
        pending().insert((1, 1), Span::none());
        assert!(pending().remove((1, 1)).is_none());
        pending().end((1, 2), Some("wamp.error.canceled"));
    }
}
