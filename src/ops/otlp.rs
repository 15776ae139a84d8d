//! OTLP export of the metrics in [`crate::observe::metrics`]: observable instruments whose
//! callbacks read the same atomics the Prometheus endpoint shows, plus a histogram
//! instrument for call latency (OpenTelemetry has no observable histogram) that
//! [`crate::observe::metrics::call_latency`] records into only while this export runs.
//!
//! Every metric of the Prometheus endpoint goes out here too. Names follow
//! OpenTelemetry's dotted style (`junction.messages.received`; the process's own
//! use follows the semantic conventions: `process.memory.usage`, `process.cpu.time`,
//! `process.unix.file_descriptor.count`);
//! the exporter and its endpoint come from the standard `OTEL_EXPORTER_OTLP_*`
//! variables, the interval from `OTEL_METRIC_EXPORT_INTERVAL` (ms, default 60 s).

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Meter, MeterProvider as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;

use super::sampler;
use super::telemetry::ExporterError;
use crate::observe::histogram::LATENCY_BUCKETS;
use crate::observe::labeled::{Labeled, Labels};
use crate::observe::metrics::{self, TypeCounters, metrics};

/// Starts exporting the metrics over OTLP/gRPC. Must run inside a Tokio runtime.
pub fn start(resource: Resource) -> Result<SdkMeterProvider, ExporterError> {
    let exporter = opentelemetry_otlp::MetricExporter::builder()
        .with_tonic()
        .build()
        .map_err(|e| ExporterError::Build { signal: "metric", reason: e.to_string() })?;
    let exporter = super::quiet::Quiet::new("metrics", exporter);
    let provider =
        SdkMeterProvider::builder().with_resource(resource).with_periodic_exporter(exporter).build();
    register(&provider.meter("junction"));
    Ok(provider)
}

fn attrs(labels: &Labels) -> Vec<KeyValue> {
    labels.iter().map(|(k, v)| KeyValue::new(*k, v.clone())).collect()
}

fn gauge(meter: &Meter, name: &'static str, description: &'static str, g: Gauge) {
    meter
        .i64_observable_gauge(name)
        .with_description(description)
        .with_callback(move |o| {
            sampler::maybe_refresh();
            o.observe(g.get(), &[]);
        })
        .build();
}

fn counter(meter: &Meter, name: &'static str, description: &'static str, c: Counter) {
    meter
        .u64_observable_counter(name)
        .with_description(description)
        .with_callback(move |o| o.observe(c.get(), &[]))
        .build();
}

fn labeled_gauge(meter: &Meter, name: &'static str, description: &'static str, l: Labeled<Gauge>) {
    meter
        .i64_observable_gauge(name)
        .with_description(description)
        .with_callback(move |o| {
            sampler::maybe_refresh();
            for (labels, g) in l.list() {
                o.observe(g.get(), &attrs(&labels));
            }
        })
        .build();
}

fn labeled_counter(
    meter: &Meter,
    name: &'static str,
    description: &'static str,
    unit: &'static str,
    l: Labeled<Counter>,
) {
    meter
        .u64_observable_counter(name)
        .with_description(description)
        .with_unit(unit)
        .with_callback(move |o| {
            for (labels, c) in l.list() {
                o.observe(c.get(), &attrs(&labels));
            }
        })
        .build();
}

fn by_type(meter: &Meter, name: &'static str, description: &'static str, counters: TypeCounters) {
    meter
        .u64_observable_counter(name)
        .with_description(description)
        .with_callback(move |o| {
            for (n, v) in counters.counts().filter(|(_, v)| *v > 0) {
                o.observe(v, &[KeyValue::new("type", n)]);
            }
        })
        .build();
}

fn process(meter: &Meter) {
    let m = metrics();
    let (rss, fds, max_fds, cpu) =
        (m.process_rss.clone(), m.process_open_fds.clone(), m.process_max_fds.clone(), m.process_cpu.clone());
    meter
        .i64_observable_gauge("process.memory.usage")
        .with_description("Resident memory size")
        .with_unit("By")
        .with_callback(move |o| {
            sampler::maybe_refresh();
            o.observe(rss.get(), &[]);
        })
        .build();
    meter
        .f64_observable_counter("process.cpu.time")
        .with_description("User and system CPU time spent")
        .with_unit("s")
        .with_callback(move |o| {
            sampler::maybe_refresh();
            o.observe(cpu.get(), &[]);
        })
        .build();
    meter
        .i64_observable_gauge("process.unix.file_descriptor.count")
        .with_description("Open file descriptors")
        .with_unit("{file_descriptor}")
        .with_callback(move |o| {
            sampler::maybe_refresh();
            o.observe(fds.get(), &[]);
        })
        .build();
    gauge(meter, "process.unix.file_descriptor.limit", "Limit of open file descriptors", max_fds);
}

fn register(meter: &Meter) {
    let m = metrics();
    labeled_gauge(
        meter,
        "junction.sessions",
        "Joined WAMP sessions by realm, transport and serializer",
        m.sessions.clone(),
    );
    by_type(meter, "junction.messages.received", "WAMP messages received, by type", m.messages_in.clone());
    by_type(meter, "junction.messages.sent", "WAMP messages sent, by type", m.messages_out.clone());
    labeled_counter(
        meter,
        "junction.calls",
        "Calls made on this node that ended, by outcome",
        "1",
        m.calls.clone(),
    );
    gauge(meter, "junction.calls.in_flight", "Calls made on this node in flight", m.calls_in_flight.clone());
    gauge(
        meter,
        "junction.subscription.interest.lingering",
        "Subscriptions this node has no subscriber for that the other nodes still route to it",
        m.interest_lingering.clone(),
    );
    labeled_gauge(meter, "junction.registrations", "Registrations by realm", m.registrations.clone());
    labeled_gauge(
        meter,
        "junction.subscriptions",
        "Subscriptions (topics with subscribers on any node) by realm",
        m.subscriptions.clone(),
    );
    labeled_counter(
        meter,
        "junction.sessions.refused",
        "Connections and HELLOs refused before a session joined, by reason",
        "1",
        m.sessions_refused.clone(),
    );
    counter(meter, "junction.events.delivered", "EVENTs queued to subscribers", m.events_delivered.clone());
    counter(meter, "junction.events.dropped", "EVENTs not delivered", m.events_dropped.clone());
    gauge(
        meter,
        "junction.outbound_queue.bytes",
        "Bytes in all outbound queues",
        m.outbound_queue_bytes.clone(),
    );
    gauge(
        meter,
        "junction.outbound_queue.frames_max",
        "Frames in the fullest outbound queue",
        m.outbound_queue_frames_max.clone(),
    );
    counter(
        meter,
        "junction.slow_consumer.disconnects",
        "Sessions disconnected as slow consumers",
        m.slow_consumer_disconnects.clone(),
    );
    labeled_counter(
        meter,
        "junction.auth.failures",
        "Failed authentications, by method",
        "1",
        m.auth_failures.clone(),
    );
    let r = &m.raft;
    gauge(meter, "junction.raft.term", "Current Raft term", r.term.clone());
    gauge(meter, "junction.raft.leader_id", "Raft leader's node id, 0 when unknown", r.leader.clone());
    gauge(meter, "junction.raft.is_leader", "1 when this node leads", r.is_leader.clone());
    gauge(meter, "junction.raft.last_log_index", "Last Raft log index", r.last_log_index.clone());
    gauge(
        meter,
        "junction.raft.commit_index",
        "Highest committed Raft index known here",
        r.commit_index.clone(),
    );
    gauge(meter, "junction.raft.applied_index", "Last applied Raft index", r.applied_index.clone());
    gauge(meter, "junction.raft.apply_lag", "Committed but not applied entries", r.apply_lag.clone());
    gauge(meter, "junction.raft.members", "Raft members", r.members.clone());
    gauge(meter, "junction.raft.voters", "Raft voters", r.voters.clone());
    labeled_counter(
        meter,
        "junction.raft.proposal.failures",
        "Raft proposals from this node that failed, by reason",
        "1",
        m.raft_proposal_failures.clone(),
    );
    labeled_gauge(meter, "junction.link.up", "1 when the data-path link to a peer is up", m.link_up.clone());
    labeled_counter(
        meter,
        "junction.link.bytes_sent",
        "Bytes sent to a peer",
        "By",
        m.link_bytes_sent.clone(),
    );
    labeled_counter(
        meter,
        "junction.link.bytes_received",
        "Bytes received from a peer",
        "By",
        m.link_bytes_received.clone(),
    );
    let frames: [(&'static str, &'static str, &Labeled<Counter>); 7] = [
        ("junction.webhook.events", "Events of subscriber webhooks, by outcome", &m.webhook_events),
        (
            "junction.link.reconnects",
            "Times the link to a peer came up again after it broke",
            &m.link_reconnects,
        ),
        ("junction.link.frames_sent", "Frames sent to a peer", &m.link_frames_sent),
        ("junction.link.frames_received", "Frames received from a peer", &m.link_frames_received),
        ("junction.link.frames_dropped", "Frames for a peer not sent, by reason", &m.link_frames_dropped),
        ("junction.link.gaps", "Gaps in the numbering of a peer's frames", &m.link_gaps),
        ("junction.link.frames_missed", "Frames a peer numbered that never arrived", &m.link_frames_missed),
    ];
    for (name, what, family) in frames {
        labeled_counter(meter, name, what, "1", family.clone());
    }
    gauge(meter, "junction.ready", "1 while /readyz answers 200", m.ready.clone());
    gauge(meter, "junction.draining", "1 once a graceful drain started", m.draining.clone());
    gauge(meter, "junction.start_time", "Process start time, Unix seconds", m.start_time.clone());
    let latency = meter
        .f64_histogram("junction.call.duration")
        .with_description("Time from CALL to RESULT or ERROR on the caller's node")
        .with_unit("s")
        .with_boundaries(LATENCY_BUCKETS.to_vec())
        .build();
    metrics::export_call_latency(latency);
    let proposals = meter
        .f64_histogram("junction.raft.proposal.duration")
        .with_description("Raft proposals from this node, from proposing until applied here")
        .with_unit("s")
        .with_boundaries(LATENCY_BUCKETS.to_vec())
        .build();
    metrics::export_proposal_latency(proposals);
    process(meter);
}
