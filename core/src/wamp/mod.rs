//! The WAMP protocol itself, with no I/O: values, messages, codecs, URI rules and
//! the per-session state machine. Everything here is plain data and functions.

pub mod codec;
pub mod coverage;
pub mod errors;
pub mod message;
pub mod pattern;
pub mod payload;
pub mod ppt;
pub mod rawsocket;
pub mod session;
pub mod uri;
pub mod value;

pub use message::Message;

/// The WAMP option/details key carrying a W3C `traceparent` (CALL.Options,
/// PUBLISH.Options, INVOCATION.Details, EVENT.Details).
pub const TRACEPARENT_KEY: &str = "_traceparent";

/// The WAMP option/details key carrying the W3C `tracestate` that goes with
/// [`TRACEPARENT_KEY`], in the same places.
pub const TRACESTATE_KEY: &str = "_tracestate";
pub use value::{Dict, List, Value};
