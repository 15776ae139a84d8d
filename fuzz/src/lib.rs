//! The bodies of Junction's fuzz targets, as plain functions (the targets in
//! `fuzz_targets/` are one-line wrappers). See `README.md` for how to run them.
//!
//! Each function panics when it finds a bug: a crash in the code under test, or a
//! broken invariant (a decoded message that does not survive a round trip, router
//! output that does not decode, a protocol violation the router let through, a
//! session left behind).

mod codec;
mod rawsocket;
mod session;
mod websocket;

pub use codec::decode_roundtrip;
pub use rawsocket::rawsocket_stream;
pub use session::session_sequence;
pub use websocket::websocket_frames;
