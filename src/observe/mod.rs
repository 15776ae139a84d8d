//! Instrumentation that the router, transports and cluster report through, below
//! all of them: the process-wide [`metrics`] (counters, gauges and the call-latency
//! histogram, built from [`histogram`] and [`labeled`]) and the trace [`spans`] of
//! calls and publications with W3C `traceparent` propagation; this [`process`]'s
//! resource use; the replaceable
//! [`log_filter`]; [`status`]: what a running router shows the operations layer
//! (readiness, status documents, gauges sampled on demand) without that layer
//! importing the router.
//!
//! Imports only [`crate::ids`] and [`crate::wamp`]; `ops` renders and exports what
//! is recorded here.

pub mod histogram;
pub mod labeled;
pub mod log_filter;
pub mod metrics;
pub mod process;
pub mod spans;
pub mod status;
