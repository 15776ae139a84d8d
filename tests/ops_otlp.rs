//! OpenTelemetry export of the `junction` binary, received by a real OTLP/gRPC
//! collector: a small tonic server implementing the OTLP `TraceService` and
//! `MetricsService` (opentelemetry-proto definitions). The router is pointed at it
//! with the standard `OTEL_EXPORTER_OTLP_ENDPOINT`.
//!
//! - spans and metrics arrive with the service and node in the resource, and JSON
//!   log lines written inside a span carry its trace id;
//! - a CALL's span continues the client's `_traceparent`, and the callee is handed
//!   the trace context in `INVOCATION.Details._traceparent`;
//! - a cross-node call is one trace: the callee node's invocation span is a child
//!   of the caller node's call span (the link carries the `traceparent` and the
//!   `tracestate`);
//! - span names are low-cardinality (`call`, `invocation`, `publish`, `event`,
//!   `raft.propose`), with the OpenTelemetry semantic-convention attributes and kinds,
//!   and `error.type` with status Error on a failed call;
//! - `OTEL_RESOURCE_ATTRIBUTES` and `OTEL_SERVICE_NAME` win over the built-in
//!   resource values;
//! - with no collector listening, a failed export is logged once, not every time.

mod ops_support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{Metric, metric};
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use ops_support::{ERROR, EVENT, Node, RESULT, Wamp, free_port, get_authed, test_dir};
use serde_json::{Value, json};

/// A span as received, with its resource's attributes.
#[derive(Clone, Debug)]
struct Received {
    resource: HashMap<String, String>,
    span: Span,
}

impl Received {
    fn trace_id(&self) -> String {
        hex(&self.span.trace_id)
    }
    fn attr(&self, key: &str) -> Option<String> {
        attrs(&self.span.attributes).remove(key)
    }
    fn kind(&self) -> SpanKind {
        SpanKind::try_from(self.span.kind).unwrap_or(SpanKind::Unspecified)
    }
}

/// Resource attributes of a batch.
type ResourceAttrs = HashMap<String, String>;

#[derive(Clone, Default)]
struct Collector {
    spans: Arc<Mutex<Vec<Received>>>,
    metrics: Arc<Mutex<Vec<(ResourceAttrs, Metric)>>>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn value_string(v: &Option<AnyValue>) -> String {
    match v.as_ref().and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        other => format!("{other:?}"),
    }
}

fn attrs(kvs: &[KeyValue]) -> HashMap<String, String> {
    kvs.iter().map(|kv| (kv.key.clone(), value_string(&kv.value))).collect()
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut spans = self.spans.lock().unwrap();
        for rs in request.into_inner().resource_spans {
            let resource = rs.resource.map(|r| attrs(&r.attributes)).unwrap_or_default();
            for ss in rs.scope_spans {
                for span in ss.spans {
                    spans.push(Received { resource: resource.clone(), span });
                }
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse { partial_success: None }))
    }
}

#[tonic::async_trait]
impl MetricsService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        let mut metrics = self.metrics.lock().unwrap();
        for rm in request.into_inner().resource_metrics {
            let resource = rm.resource.map(|r| attrs(&r.attributes)).unwrap_or_default();
            for sm in rm.scope_metrics {
                for m in sm.metrics {
                    metrics.push((resource.clone(), m));
                }
            }
        }
        Ok(tonic::Response::new(ExportMetricsServiceResponse { partial_success: None }))
    }
}

impl Collector {
    /// Serves OTLP/gRPC on a fresh local port.
    async fn start() -> (Collector, SocketAddr) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let c = Collector::default();
        let server = tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(c.clone()))
            .add_service(MetricsServiceServer::new(c.clone()))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener));
        tokio::spawn(server);
        (c, addr)
    }

    /// Waits until a received span satisfies `f`.
    async fn span(&self, what: &str, f: impl Fn(&Received) -> bool) -> Received {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(s) = self.spans.lock().unwrap().iter().find(|s| f(s)) {
                return s.clone();
            }
            if Instant::now() > deadline {
                let names: Vec<String> =
                    self.spans.lock().unwrap().iter().map(|s| s.span.name.clone()).collect();
                panic!("no span {what} arrived; received: {names:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until a metric named `name` from node `node` satisfies `f`.
    async fn metric(&self, name: &str, node: u64, f: impl Fn(&Metric) -> bool) -> Metric {
        let deadline = Instant::now() + Duration::from_secs(15);
        let node = node.to_string();
        loop {
            let found = self.metrics.lock().unwrap().iter().rev().find_map(|(r, m)| {
                (m.name == name && r.get("junction.node.id") == Some(&node) && f(m)).then(|| m.clone())
            });
            if let Some(m) = found {
                return m;
            }
            if Instant::now() > deadline {
                let mut names: Vec<String> =
                    self.metrics.lock().unwrap().iter().map(|(_, m)| m.name.clone()).collect();
                names.sort();
                names.dedup();
                panic!("no metric {name} from node {node} matched; received: {names:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Integer value of a gauge or sum metric's first point (with `attr` = value, if given).
fn point(m: &Metric, attr: Option<(&str, &str)>) -> Option<i64> {
    use opentelemetry_proto::tonic::metrics::v1::number_data_point::Value as V;
    let points = match m.data.as_ref()? {
        metric::Data::Gauge(g) => &g.data_points,
        metric::Data::Sum(s) => &s.data_points,
        _ => return None,
    };
    let p = points
        .iter()
        .find(|p| attr.is_none_or(|(k, v)| attrs(&p.attributes).get(k).map(String::as_str) == Some(v)))?;
    match p.value? {
        V::AsInt(i) => Some(i),
        V::AsDouble(d) => Some(d as i64),
    }
}

fn histogram_count(m: &Metric) -> u64 {
    match m.data.as_ref() {
        Some(metric::Data::Histogram(h)) => h.data_points.iter().map(|p| p.count).sum(),
        _ => 0,
    }
}

fn otel_env(collector: SocketAddr) -> Vec<(&'static str, String)> {
    vec![
        ("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{collector}")),
        ("OTEL_METRIC_EXPORT_INTERVAL", "300".into()),
        ("OTEL_BSP_SCHEDULE_DELAY", "100".into()),
        ("RUST_LOG", "info,junction::ops=debug".into()),
    ]
}

fn start_node(dir: &std::path::Path, tag: &str, args: &[&str], env: &[(&'static str, String)]) -> Node {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Node::start(dir, tag, args, &env)
}

const SINGLE: [&str; 7] =
    ["--admin", "127.0.0.1:0", "--ws", "127.0.0.1:0", "--rawsocket", "127.0.0.1:0", "--log-json"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_metrics_and_log_trace_ids_reach_an_otlp_collector() {
    let (collector, addr) = Collector::start().await;
    let dir = test_dir("otlp-basic");
    let mut env = otel_env(addr);
    env.push(("JUNCTION_ADMIN_TOKEN", ops_support::ADMIN_TOKEN.into()));
    let node = start_node(&dir, "node", &SINGLE, &env);
    let admin = node.admin();
    let status = tokio::task::spawn_blocking(move || get_authed(admin, "/api/status")).await.unwrap();
    assert_eq!(status.status, 200);

    let span = collector.span("GET /api/status", |s| s.span.name == "GET /api/status").await;
    assert_eq!(span.resource.get("service.name").map(String::as_str), Some("junction"));
    assert_eq!(span.resource.get("junction.node.id").map(String::as_str), Some("1"));
    assert_eq!(span.resource.get("service.instance.id").map(String::as_str), Some("1"));
    assert_eq!(span.attr("url.path").as_deref(), Some("/api/status"));
    assert_eq!(span.attr("http.route").as_deref(), Some("/api/status"));
    assert_eq!(span.kind(), SpanKind::Server);
    let trace_id = span.trace_id();
    assert_eq!(trace_id.len(), 32);

    let term = collector.metric("junction.raft.term", 1, |m| point(m, None).is_some_and(|t| t >= 1)).await;
    assert!(matches!(term.data, Some(metric::Data::Gauge(_))));
    collector.metric("junction.ready", 1, |m| point(m, None) == Some(1)).await;
    let delivered = collector.metric("junction.events.delivered", 1, |m| point(m, None).is_some()).await;
    assert!(matches!(delivered.data, Some(metric::Data::Sum(ref s)) if s.is_monotonic));
    collector.metric("junction.raft.applied_index", 1, |m| point(m, None).is_some_and(|i| i >= 0)).await;

    // The JSON log line written inside the span carries its trace id.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let log = std::fs::read_to_string(&node.stderr_path).unwrap_or_default();
        let hit = log
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .any(|l| l["fields"]["message"] == "admin request" && l["span"]["trace_id"] == trace_id.as_str());
        if hit {
            break;
        }
        assert!(Instant::now() < deadline, "no log line with trace_id {trace_id}:\n{}", node.stderr_tail());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

const CLIENT_TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
const CLIENT_SPAN: &str = "b7ad6b7169203331";
const CLIENT_STATE: &str = "vendor=abc,other=1";

/// Calls `com.example.add` until the registration is visible on the caller's node.
async fn call_add(caller: &mut Wamp) -> Value {
    let traceparent = format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let options = json!({ "_traceparent": traceparent, "_tracestate": CLIENT_STATE });
        let reply = caller.call("com.example.add", options, json!([2, 3])).await;
        if reply[0] == RESULT || Instant::now() > deadline {
            return reply;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_continues_the_clients_trace() {
    let (collector, addr) = Collector::start().await;
    let dir = test_dir("otlp-call");
    let node = start_node(&dir, "node", &SINGLE, &otel_env(addr));
    let mut callee = Wamp::join(node.ws(), "realm1").await;
    callee.register("com.example.add").await;
    let (seen_tx, mut seen) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(callee.serve_sum(seen_tx));
    let mut caller = Wamp::join(node.ws(), "realm1").await;
    let reply = call_add(&mut caller).await;
    assert_eq!(reply[0], RESULT, "{reply}");
    assert_eq!(reply[3], json!([5]));

    let call = collector.span("call", |s| s.span.name == "call" && s.trace_id() == CLIENT_TRACE).await;
    assert_eq!(call.trace_id(), CLIENT_TRACE);
    assert_eq!(hex(&call.span.parent_span_id), CLIENT_SPAN);
    assert_eq!(call.kind(), SpanKind::Server);
    assert_eq!(call.span.trace_state, CLIENT_STATE, "the client's tracestate is continued");
    assert_eq!(call.attr("rpc.system").as_deref(), Some("wamp"));
    assert_eq!(call.attr("rpc.method").as_deref(), Some("com.example.add"));
    assert_eq!(call.attr("wamp.realm").as_deref(), Some("realm1"));
    assert_eq!(call.attr("wamp.procedure").as_deref(), Some("com.example.add"));
    assert_eq!(call.attr("wamp.caller"), Some(caller.session.to_string()));
    assert_eq!(call.attr("wamp.serializer").as_deref(), Some("json"));
    assert_eq!(call.attr("error.type"), None);
    // The callee is handed the trace context so it can join the trace.
    let details = seen.recv().await.expect("invocation details");
    let tp = details["_traceparent"].as_str().unwrap_or_default();
    assert!(tp.contains(CLIENT_TRACE), "INVOCATION.Details {details}");
    assert_eq!(details["_tracestate"], CLIENT_STATE, "INVOCATION.Details {details}");

    // A failed call: error.type is the error URI, the status Error.
    let reply = caller.call("com.example.missing", json!({}), json!([])).await;
    assert_eq!(reply[0], ERROR, "{reply}");
    let failed = collector
        .span("failed call", |s| {
            s.span.name == "call" && s.attr("rpc.method").as_deref() == Some("com.example.missing")
        })
        .await;
    assert_eq!(failed.attr("error.type").as_deref(), Some("wamp.error.no_such_procedure"));
    let status = failed.span.status.clone().unwrap_or_default();
    assert_eq!(status.code, StatusCode::Error as i32, "{status:?}");

    // Registering went through Raft: a raft.propose span.
    let propose = collector.span("raft.propose", |s| s.span.name == "raft.propose").await;
    assert_eq!(propose.kind(), SpanKind::Internal);
    assert!(propose.attr("junction.raft.request").is_some(), "{:?}", propose.span.attributes);
    assert!(propose.attr("junction.raft.commands").is_some(), "{:?}", propose.span.attributes);
    // No span is named after a URI.
    let names: Vec<String> = collector.spans.lock().unwrap().iter().map(|s| s.span.name.clone()).collect();
    assert!(names.iter().all(|n| !n.contains("com.example")), "{names:?}");

    collector
        .metric("junction.calls", 1, |m| point(m, Some(("outcome", "result"))).is_some_and(|n| n >= 1))
        .await;
    collector
        .metric("junction.calls", 1, |m| {
            point(m, Some(("outcome", "no_such_procedure"))).is_some_and(|n| n >= 1)
        })
        .await;
    collector.metric("junction.registrations", 1, |m| point(m, Some(("realm", "realm1"))) == Some(1)).await;
    collector.metric("process.memory.usage", 1, |m| point(m, None).is_some_and(|b| b > 1 << 20)).await;
    collector.metric("junction.raft.proposal.duration", 1, |m| histogram_count(m) >= 1).await;
    collector
        .metric("junction.messages.received", 1, |m| point(m, Some(("type", "call"))).is_some_and(|n| n >= 1))
        .await;
    collector.metric("junction.call.duration", 1, |m| histogram_count(m) >= 1).await;
    collector
        .metric("junction.sessions", 1, |m| {
            point(m, Some(("transport", "websocket"))).is_some_and(|n| n >= 2)
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cross_node_call_is_one_trace() {
    let (collector, addr) = Collector::start().await;
    let dir = test_dir("otlp-cluster");
    let (p1, p2) = (free_port(), free_port());
    let config = |id: u64, me: u16, peer: u16| {
        let path = dir.join(format!("node{id}.toml"));
        let text = format!(
            "[cluster]\nnode_id = {id}\nlisten = \"127.0.0.1:{me}\"\npeers = [\"127.0.0.1:{peer}\"]\n\
             bootstrap = {}\nvoters = 3\nephemeral = true\n",
            id == 1
        );
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_string()
    };
    let (c1, c2) = (config(1, p1, p2), config(2, p2, p1));
    let args = |c: &str| -> Vec<String> {
        ["--config", c].iter().chain(SINGLE.iter()).map(|s| s.to_string()).collect()
    };
    let env = otel_env(addr);
    let a1 = args(&c1);
    let node1 = start_node(&dir, "node1", &a1.iter().map(String::as_str).collect::<Vec<_>>(), &env);
    let a2 = args(&c2);
    let node2 = start_node(&dir, "node2", &a2.iter().map(String::as_str).collect::<Vec<_>>(), &env);

    let mut callee = Wamp::join(node2.ws(), "realm1").await;
    callee.register("com.example.add").await;
    let (seen_tx, _seen) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(callee.serve_sum(seen_tx));
    let mut caller = Wamp::join(node1.ws(), "realm1").await;
    let reply = call_add(&mut caller).await;
    assert_eq!(reply[0], RESULT, "{reply}");

    let on = |node: &'static str, name: &'static str| {
        move |s: &Received| {
            s.span.name == name
                && s.trace_id() == CLIENT_TRACE
                && s.resource.get("junction.node.id").map(String::as_str) == Some(node)
        }
    };
    let call = collector.span("call on node 1", on("1", "call")).await;
    let invocation = collector.span("invocation on node 2", on("2", "invocation")).await;
    assert_eq!(invocation.span.parent_span_id, call.span.span_id, "the invocation is a child of the call");
    assert_eq!(invocation.kind(), SpanKind::Client);
    assert_eq!(invocation.attr("rpc.method").as_deref(), Some("com.example.add"));
    assert_eq!(invocation.span.trace_state, CLIENT_STATE, "the link carries the tracestate");

    // A publication on node 1 delivered on node 2: one trace, tracestate included.
    let mut subscriber = Wamp::join(node2.ws(), "realm1").await;
    subscriber.subscribe("com.example.news").await;
    let mut publisher = Wamp::join(node1.ws(), "realm1").await;
    let traceparent = format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01");
    let options = json!({ "_traceparent": traceparent, "_tracestate": CLIENT_STATE });
    let deadline = Instant::now() + Duration::from_secs(10);
    let event = loop {
        // node 1 learns of the subscription over the link a moment later
        publisher.publish("com.example.news", options.clone(), json!([1])).await;
        if let Some(e) = subscriber.try_recv(Duration::from_millis(200)).await {
            break e;
        }
        assert!(Instant::now() < deadline, "no EVENT on node 2");
    };
    assert_eq!(event[3]["_tracestate"], CLIENT_STATE, "{event}");
    let delivered = collector.span("event on node 2", on("2", "event")).await;
    assert_eq!(delivered.kind(), SpanKind::Consumer);
    assert_eq!(delivered.span.trace_state, CLIENT_STATE, "the link carries the tracestate");
    let parent = delivered.span.parent_span_id.clone();
    let publish = collector
        .span("its publish span on node 1", move |s| s.span.name == "publish" && s.span.span_id == parent)
        .await;
    assert_eq!(publish.resource.get("junction.node.id").map(String::as_str), Some("1"));

    collector.metric("junction.link.up", 1, |m| point(m, Some(("peer", "2"))) == Some(1)).await;
    // the Invoke went out to node 2 and its Yield came back on the same stream
    collector
        .metric("junction.link.bytes_sent", 1, |m| point(m, Some(("peer", "2"))).is_some_and(|n| n > 0))
        .await;
    collector
        .metric("junction.link.bytes_received", 1, |m| point(m, Some(("peer", "2"))).is_some_and(|n| n > 0))
        .await;
    collector.metric("junction.raft.members", 2, |m| point(m, None) == Some(2)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publication_is_a_producer_span_and_its_delivery_a_consumer_span() {
    let (collector, addr) = Collector::start().await;
    let dir = test_dir("otlp-pubsub");
    let node = start_node(&dir, "node", &SINGLE, &otel_env(addr));
    let mut subscriber = Wamp::join(node.ws(), "realm1").await;
    subscriber.subscribe("com.example.news").await;
    let mut publisher = Wamp::join(node.ws(), "realm1").await;
    let traceparent = format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01");
    let options = json!({ "_traceparent": traceparent, "_tracestate": CLIENT_STATE, "exclude_me": true });
    publisher.publish("com.example.news", options, json!(["hello"])).await;
    let event = subscriber.recv().await;
    assert_eq!(event[0], EVENT, "{event}");
    let details = &event[3];
    assert!(details["_traceparent"].as_str().unwrap_or_default().contains(CLIENT_TRACE), "{details}");
    assert_eq!(details["_tracestate"], CLIENT_STATE, "EVENT.Details {details}");

    let publish =
        collector.span("publish", |s| s.span.name == "publish" && s.trace_id() == CLIENT_TRACE).await;
    assert_eq!(publish.kind(), SpanKind::Producer);
    assert_eq!(hex(&publish.span.parent_span_id), CLIENT_SPAN);
    assert_eq!(publish.attr("messaging.system").as_deref(), Some("wamp"));
    assert_eq!(publish.attr("messaging.destination.name").as_deref(), Some("com.example.news"));
    assert_eq!(publish.attr("messaging.operation.type").as_deref(), Some("send"));
    assert_eq!(publish.attr("messaging.operation.name").as_deref(), Some("publish"));
    assert_eq!(publish.span.trace_state, CLIENT_STATE);
    let delivered = collector.span("event", |s| s.span.name == "event" && s.trace_id() == CLIENT_TRACE).await;
    assert_eq!(delivered.kind(), SpanKind::Consumer);
    assert_eq!(delivered.span.parent_span_id, publish.span.span_id, "delivery is a child of the publication");
    assert_eq!(delivered.attr("messaging.operation.type").as_deref(), Some("process"));
    assert_eq!(delivered.attr("messaging.destination.name").as_deref(), Some("com.example.news"));
    assert_eq!(delivered.attr("wamp.recipients").as_deref(), Some("1"));
    assert_eq!(delivered.attr("messaging.message.id"), Some(event[2].to_string()), "the publication id");
    assert_eq!(publish.attr("messaging.message.id"), Some(event[2].to_string()));
    // the subscriber joins the trace under the delivery span
    let tp = details["_traceparent"].as_str().unwrap_or_default();
    assert!(tp.contains(&hex(&delivered.span.span_id)), "{tp} names the event span");
    collector
        .metric("junction.subscriptions", 1, |m| point(m, Some(("realm", "realm1"))).is_some_and(|n| n >= 1))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_environment_wins_over_built_in_resource_values() {
    let (collector, addr) = Collector::start().await;
    let dir = test_dir("otlp-resource");
    let config = dir.join("junction.toml");
    std::fs::write(&config, "[telemetry]\nservice_name = \"from-config\"\n").unwrap();
    let mut env = otel_env(addr);
    env.push(("JUNCTION_ADMIN_TOKEN", ops_support::ADMIN_TOKEN.into()));
    env.push((
        "OTEL_RESOURCE_ATTRIBUTES",
        "service.name=from-attributes,service.instance.id=edge-7,deployment.environment.name=staging".into(),
    ));
    let args: Vec<&str> = ["--config", config.to_str().unwrap()].into_iter().chain(SINGLE).collect();
    let node = start_node(&dir, "attrs", &args, &env);
    let admin = node.admin();
    tokio::task::spawn_blocking(move || get_authed(admin, "/api/status")).await.unwrap();
    let span = collector.span("an admin span", |s| s.span.name == "GET /api/status").await;
    let r = &span.resource;
    assert_eq!(r.get("service.name").map(String::as_str), Some("from-attributes"), "{r:?}");
    assert_eq!(r.get("service.instance.id").map(String::as_str), Some("edge-7"), "{r:?}");
    assert_eq!(r.get("deployment.environment.name").map(String::as_str), Some("staging"), "{r:?}");
    assert_eq!(r.get("junction.node.id").map(String::as_str), Some("1"), "built-in values stay: {r:?}");
    collector.metric("junction.ready", 1, |_| true).await;
    drop(node);

    // OTEL_SERVICE_NAME wins over both.
    let (collector, addr) = Collector::start().await;
    let mut env = otel_env(addr);
    env.push(("JUNCTION_ADMIN_TOKEN", ops_support::ADMIN_TOKEN.into()));
    env.push(("OTEL_RESOURCE_ATTRIBUTES", "service.name=from-attributes".into()));
    env.push(("OTEL_SERVICE_NAME", "from-service-name".into()));
    let node = start_node(&dir, "name", &args, &env);
    let admin = node.admin();
    tokio::task::spawn_blocking(move || get_authed(admin, "/api/status")).await.unwrap();
    let span = collector.span("an admin span", |s| s.span.name == "GET /api/status").await;
    assert_eq!(span.resource.get("service.name").map(String::as_str), Some("from-service-name"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_collector_is_one_warning_not_one_per_export() {
    let dir = test_dir("otlp-absent");
    let closed = free_port();
    let mut env = otel_env(format!("127.0.0.1:{closed}").parse().unwrap());
    env.push(("OTEL_METRIC_EXPORT_INTERVAL", "100".into()));
    env.push(("JUNCTION_ADMIN_TOKEN", ops_support::ADMIN_TOKEN.into()));
    let node = start_node(&dir, "node", &SINGLE, &env);
    let admin = node.admin();
    // spans to export for a few seconds: some 30 metric exports and a batch of
    // spans every 100 ms, all failing
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        tokio::task::spawn_blocking(move || get_authed(admin, "/api/status")).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let log = std::fs::read_to_string(&node.stderr_path).unwrap_or_default();
    let failures = |signal: &str| {
        log.lines().filter(|l| l.contains("export failed") && l.contains(&format!("OTLP {signal}"))).count()
    };
    assert_eq!(failures("metrics"), 1, "one warning for the failing metric exports:\n{log}");
    assert_eq!(failures("traces"), 1, "one warning for the failing span exports:\n{log}");
    let sdk_errors = log.lines().filter(|l| l.contains("ExportError") || l.contains("\"ERROR\"")).count();
    assert_eq!(sdk_errors, 0, "no error per failed export:\n{log}");
}
