//! Operations: observability (metrics, traces, logs) and health/management.
//!
//! - The metrics and spans themselves are recorded in [`crate::observe`], below the
//!   router; here [`sampler`] fills the gauges read from the router (Raft, links,
//!   queues) and [`otlp`] exports the metrics.
//! - [`telemetry`]: the `tracing` subscriber (text/JSON logs with trace ids) and
//!   the OTLP trace exporter of the [`crate::observe::spans`].
//! - [`health`]: readiness and the graceful-drain flag; [`admin`]: the admin HTTP
//!   server (`/healthz`, `/readyz`, `/metrics`, `/api/...`) whose JSON is built by
//!   [`api`].
//!
//! State here is process-wide (one router per process): the router is handed over
//! once with [`attach`].

pub mod admin;
pub mod api;
pub mod health;
pub mod otlp;
pub mod sampler;
pub mod telemetry;

pub use health::{begin_drain, draining};
pub use sampler::attach;
