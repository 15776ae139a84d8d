//! Operations: observability export (metrics, traces, logs) and the admin server.
//!
//! - The metrics and spans themselves are recorded in [`crate::observe`], below the
//!   router; here [`sampler`] fills the gauges read from the router (readiness,
//!   drain, Raft, links) and [`otlp`] exports the metrics; [`quiet`] keeps a
//!   missing collector from flooding the log.
//! - [`telemetry`]: the `tracing` subscriber (text/JSON logs with trace ids) and
//!   the OTLP trace exporter of the [`crate::observe::spans`].
//! - [`shutdown`]: the graceful shutdown's bounded steps and their total.
//! - [`admin`]: the admin HTTP server (`/healthz`, `/readyz`, `/metrics`,
//!   `/api/...`); the router's documents come from the router, [`api`] holds the
//!   console's own.
//!
//! Ops sees the router only as a [`StatusSource`](crate::observe::status::StatusSource),
//! handed over once per process with [`attach`]; it imports neither the router nor
//! the transports, and they do not import ops.

pub mod admin;
pub mod api;
pub mod otlp;
pub mod quiet;
pub mod sampler;
pub mod shutdown;
pub mod telemetry;

pub use sampler::attach;
