//! The load generator's single error type: a message, converted from every I/O,
//! WebSocket and codec error it meets. Network input never panics; it ends here.

use std::fmt;

/// Anything that went wrong while benchmarking.
#[derive(Debug)]
pub struct BenchError(pub String);

/// Result with [`BenchError`].
pub type Result<T> = std::result::Result<T, BenchError>;

impl BenchError {
    /// An error from a message.
    pub fn msg(s: impl Into<String>) -> Self {
        BenchError(s.into())
    }
}

impl fmt::Display for BenchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BenchError {}

impl From<std::io::Error> for BenchError {
    fn from(e: std::io::Error) -> Self {
        BenchError(format!("i/o: {e}"))
    }
}

impl From<tokio_tungstenite::tungstenite::Error> for BenchError {
    fn from(e: tokio_tungstenite::tungstenite::Error) -> Self {
        BenchError(format!("websocket: {e}"))
    }
}

impl From<junction::wamp::codec::DecodeError> for BenchError {
    fn from(e: junction::wamp::codec::DecodeError) -> Self {
        BenchError(format!("decode: {e}"))
    }
}

impl From<junction::wamp::rawsocket::RawSocketError> for BenchError {
    fn from(e: junction::wamp::rawsocket::RawSocketError) -> Self {
        BenchError(format!("rawsocket: {e}"))
    }
}

impl From<tokio::time::error::Elapsed> for BenchError {
    fn from(_: tokio::time::error::Elapsed) -> Self {
        BenchError("timed out".into())
    }
}
