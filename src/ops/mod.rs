//! Operations: observability (metrics, traces, logs) and health/management.
//!
//! - [`metrics`]: the process-wide metrics and the cheap calls that update them;
//!   [`histogram`] and [`labeled`] are its building blocks, [`sampler`] fills the
//!   gauges read from the router (Raft, links, queues), [`otlp`] exports them.
//! - [`telemetry`]: the `tracing` subscriber (text/JSON logs with trace ids) and
//!   the OTLP trace exporter; [`spans`]: the spans of calls and publications and
//!   W3C `traceparent` propagation.
//! - [`health`]: readiness and the graceful-drain flag; [`admin`]: the admin HTTP
//!   server (`/healthz`, `/readyz`, `/metrics`, `/api/...`) whose JSON is built by
//!   [`api`].
//!
//! State here is process-wide (one router per process): the router is handed over
//! once with [`attach`].

pub mod admin;
pub mod api;
pub mod health;
pub mod histogram;
pub mod labeled;
pub mod metrics;
pub mod otlp;
pub mod sampler;
pub mod spans;
pub mod telemetry;

pub use health::{begin_drain, draining};
pub use sampler::attach;
