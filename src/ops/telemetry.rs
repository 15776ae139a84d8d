//! Logging and tracing setup: the `tracing` subscriber (text or JSON lines on
//! stderr, filtered by `RUST_LOG`, else `[log] level`, default `info,openraft=warn`; no
//! ANSI colours unless stderr is a terminal; the filter
//! can be replaced while running through [`crate::observe::log_filter`]), and OpenTelemetry export over
//! OTLP/gRPC when the standard variables ask for it:
//!
//! - traces when `OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`
//!   is set (spans of the [`spans`](crate::observe::spans) helpers, target `junction::trace`);
//! - metrics when `OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`
//!   is set ([`super::otlp`]);
//! - neither when `OTEL_SDK_DISABLED=true`, or `OTEL_TRACES_EXPORTER` /
//!   `OTEL_METRICS_EXPORTER` is `none`, or `[telemetry]` turns it off.
//!
//! The resource names the service (`service.name`, `[telemetry] service_name`,
//! default `junction`) and the node (`service.instance.id`, `junction.node.id`);
//! `OTEL_RESOURCE_ATTRIBUTES` and `OTEL_SERVICE_NAME` override any of them.
//! [`shutdown`] flushes both exporters.

use std::sync::{Mutex, OnceLock};

use opentelemetry::KeyValue;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use tracing_subscriber::filter::{EnvFilter, filter_fn};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, Registry, reload};

use crate::config::Config;

/// What [`init`] sets up.
#[derive(Clone, Debug, PartialEq)]
pub struct Options {
    /// JSON log lines instead of text.
    pub json: bool,
    /// Log filter when `RUST_LOG` is not set (`info,openraft=warn` when neither is).
    pub level: Option<String>,
    /// `service.name` unless `OTEL_SERVICE_NAME` is set.
    pub service_name: String,
    /// This node's id, as a resource attribute.
    pub node: u64,
    /// Fraction of new traces sampled (traces continuing a sampled parent always are).
    pub sample_ratio: f64,
    /// Export traces when an endpoint is configured.
    pub traces: bool,
    /// Export metrics when an endpoint is configured.
    pub metrics: bool,
}

impl Options {
    /// The options a configuration asks for.
    pub fn from_config(cfg: &Config) -> Options {
        Options {
            json: cfg.log.json,
            level: cfg.log.level.clone(),
            service_name: cfg.telemetry.service_name.clone(),
            node: cfg.cluster.node_id,
            sample_ratio: cfg.telemetry.sample_ratio,
            traces: cfg.telemetry.traces,
            metrics: cfg.telemetry.metrics,
        }
    }
}

struct Providers {
    tracer: Option<SdkTracerProvider>,
    meter: Option<SdkMeterProvider>,
}

static PROVIDERS: OnceLock<Mutex<Providers>> = OnceLock::new();

/// How long [`shutdown`] waits for each exporter to flush.
pub const SHUTDOWN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

fn env_on(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| !v.trim().is_empty())
}

fn env_is(name: &str, value: &str) -> bool {
    std::env::var(name).is_ok_and(|v| v.trim().eq_ignore_ascii_case(value))
}

/// Whether the environment asks for an OTLP exporter of `signal` ("TRACES" or "METRICS").
fn otlp_wanted(signal: &str) -> bool {
    !env_is("OTEL_SDK_DISABLED", "true")
        && !env_is(&format!("OTEL_{signal}_EXPORTER"), "none")
        && (env_on("OTEL_EXPORTER_OTLP_ENDPOINT") || env_on(&format!("OTEL_EXPORTER_OTLP_{signal}_ENDPOINT")))
}

/// The resource of both signals. Built-in values first — `service.name` from the
/// configuration (default `junction`), `service.version`, `service.instance.id` and
/// `junction.node.id` (this node's id), the SDK's `telemetry.sdk.*` — then
/// `OTEL_RESOURCE_ATTRIBUTES` over them, then `OTEL_SERVICE_NAME` over everything:
/// what the operator sets in the environment wins.
fn resource(opts: &Options) -> Resource {
    use opentelemetry_sdk::resource::{EnvResourceDetector, TelemetryResourceDetector};
    let mut b = Resource::builder_empty()
        .with_service_name(opts.service_name.clone())
        .with_attributes([
            KeyValue::new("service.version", env!("CARGO_PKG_VERSION")),
            KeyValue::new("service.instance.id", opts.node.to_string()),
            KeyValue::new("junction.node.id", opts.node as i64),
        ])
        .with_detector(Box::new(TelemetryResourceDetector))
        .with_detector(Box::new(EnvResourceDetector::new()));
    if let Ok(name) = std::env::var("OTEL_SERVICE_NAME")
        && !name.trim().is_empty()
    {
        b = b.with_service_name(name.trim().to_owned());
    }
    b.build()
}

/// An OTLP exporter that could not be built; the process runs on without it.
#[derive(Debug, thiserror::Error)]
pub enum ExporterError {
    /// The exporter of `signal` (`span`, `metric`) failed to build.
    #[error("cannot build the OTLP {signal} exporter: {reason}")]
    Build { signal: &'static str, reason: String },
}

fn tracer_provider(opts: &Options, resource: Resource) -> Result<SdkTracerProvider, ExporterError> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .build()
        .map_err(|e| ExporterError::Build { signal: "span", reason: e.to_string() })?;
    let exporter = super::quiet::Quiet::new("traces", exporter);
    let sampler = Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(opts.sample_ratio)));
    Ok(SdkTracerProvider::builder()
        .with_resource(resource)
        .with_sampler(sampler)
        .with_batch_exporter(exporter)
        .build())
}

/// Installs the global subscriber and the OTLP exporters. Call once, early, inside
/// a Tokio runtime context (`Runtime::enter`): the gRPC exporters need one.
pub fn init(opts: &Options) {
    let resource = resource(opts);
    let mut problems = Vec::new();
    let tracer = if opts.traces && otlp_wanted("TRACES") {
        tracer_provider(opts, resource.clone()).map_err(|e| problems.push(e)).ok()
    } else {
        None
    };
    let env = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        let default = crate::observe::log_filter::DEFAULT;
        EnvFilter::try_new(opts.level.as_deref().unwrap_or(default))
            .unwrap_or_else(|_| EnvFilter::new(default))
    });
    let (env, handle) = reload::Layer::new(env);
    // Colours only for a person watching a terminal, never in a file or a log collector.
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let mut layers: Vec<Box<dyn Layer<Registry> + Send + Sync>> = vec![if opts.json {
        fmt.json().with_current_span(true).with_span_list(false).with_filter(env).boxed()
    } else {
        fmt.with_filter(env).boxed()
    }];
    if let Some(provider) = &tracer {
        let layer = tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("junction"))
            .with_tracked_inactivity(false)
            .with_threads(false)
            .with_location(false)
            .with_filter(filter_fn(|m| m.target() == crate::observe::spans::TARGET));
        layers.push(layer.boxed());
    }
    match tracing_subscriber::registry().with(layers).try_init() {
        Ok(()) => {
            crate::observe::log_filter::install(handle);
        }
        Err(e) => eprintln!("junction: logging already initialised: {e}"),
    }
    crate::observe::spans::set_enabled(tracer.is_some());
    let meter = if opts.metrics && otlp_wanted("METRICS") {
        super::otlp::start(resource).map_err(|e| problems.push(e)).ok()
    } else {
        None
    };
    for p in problems {
        tracing::warn!("{p}; continuing without it");
    }
    tracing::info!(traces = tracer.is_some(), metrics = meter.is_some(), "OpenTelemetry export");
    PROVIDERS.set(Mutex::new(Providers { tracer, meter })).ok();
}

/// How many exporters (traces, metrics) send to an OTLP collector; each is flushed
/// at exit, within [`SHUTDOWN_TIMEOUT`].
pub fn exporters() -> u32 {
    PROVIDERS.get().map_or(0, |p| {
        let p = p.lock().unwrap_or_else(|e| e.into_inner());
        u32::from(p.tracer.is_some()) + u32::from(p.meter.is_some())
    })
}

/// Flushes and stops the OTLP exporters. Call at exit, outside async code but while
/// the Tokio runtime is still alive (the gRPC exporters run on it).
pub fn shutdown() {
    let Some(p) = PROVIDERS.get() else { return };
    let mut p = p.lock().unwrap_or_else(|e| e.into_inner());
    crate::observe::spans::set_enabled(false);
    if let Some(t) = p.tracer.take()
        && let Err(e) = t.shutdown_with_timeout(SHUTDOWN_TIMEOUT)
    {
        eprintln!("junction: flushing traces: {e}");
    }
    if let Some(m) = p.meter.take()
        && let Err(e) = m.shutdown_with_timeout(SHUTDOWN_TIMEOUT)
    {
        eprintln!("junction: flushing metrics: {e}");
    }
}
