//! WAMP over WebSocket: the HTTP upgrade on the configured path with subprotocol
//! negotiation (`wamp.2.json`, `wamp.2.msgpack`, `wamp.2.cbor`), then frames.
//! JSON travels in text frames, the binary serializers in binary frames.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::protocol::frame::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{self, Message as WsMessage, Utf8Bytes};

use std::collections::VecDeque;

use super::ws_guard::Guarded;
use super::{Accepted, FrameTransport, Incoming, batch, drive};
use crate::router::Router;
use crate::wamp::codec::Serializer;

/// Bytes read from the socket at a time.
const READ_BUFFER: usize = 4 * 1024;
/// Bytes gathered before a write reaches the socket (a batch is flushed anyway).
const WRITE_BUFFER: usize = 16 * 1024;

/// A negotiated WebSocket subprotocol: the serializer, and whether messages are batched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Subprotocol {
    /// The serializer.
    pub serializer: Serializer,
    /// `wamp.2.json.batched` / `wamp.2.msgpack.batched`.
    pub batched: bool,
}

impl Subprotocol {
    fn parse(s: &str) -> Option<Subprotocol> {
        match s.strip_suffix(".batched") {
            Some(base) => Serializer::from_subprotocol(base)
                .filter(|&ser| ser != Serializer::Cbor)
                .map(|serializer| Subprotocol { serializer, batched: true }),
            None => {
                Serializer::from_subprotocol(s).map(|serializer| Subprotocol { serializer, batched: false })
            }
        }
    }

    /// The subprotocol name.
    pub fn name(self) -> &'static str {
        match (self.serializer, self.batched) {
            (Serializer::Json, true) => "wamp.2.json.batched",
            (Serializer::MsgPack, true) => "wamp.2.msgpack.batched",
            (s, _) => s.subprotocol(),
        }
    }
}

/// Picks the first WAMP subprotocol of the client's list that we speak.
pub fn negotiate(header: Option<&str>) -> Option<Subprotocol> {
    header?.split(',').map(str::trim).find_map(Subprotocol::parse)
}

fn reject(status: StatusCode, why: &str) -> ErrorResponse {
    crate::observe::metrics::session_refused(crate::observe::metrics::Refused::Upgrade);
    let mut r = ErrorResponse::new(Some(why.to_owned()));
    *r.status_mut() = status;
    r
}

/// Accepts a WebSocket connection and runs its session. An opening handshake not
/// done by `accepted.deadline` is dropped.
#[allow(clippy::result_large_err)] // the handshake callback's error type is tungstenite's HTTP response
pub async fn serve<S>(router: Arc<Router>, stream: S, accepted: Accepted)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let path = router.config.websocket.path.clone();
    let allowed_origins = &router.config.websocket.allowed_origins;
    let max = router.config.limits.websocket_max();
    let mut chosen = None;
    let callback = |req: &Request, mut resp: Response| {
        if req.uri().path() != path {
            return Err(reject(StatusCode::NOT_FOUND, "no WAMP endpoint on this path"));
        }
        let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
        if !super::origin::allowed(header("origin"), header("host"), allowed_origins) {
            tracing::info!(origin = ?header("origin"), "websocket origin not allowed");
            return Err(reject(StatusCode::FORBIDDEN, "origin not allowed ([websocket] allowed_origins)"));
        }
        let offered = req.headers().get("sec-websocket-protocol").and_then(|v| v.to_str().ok());
        let Some(proto) = negotiate(offered) else {
            return Err(reject(
                StatusCode::BAD_REQUEST,
                "no supported WAMP subprotocol (wamp.2.json, wamp.2.msgpack, wamp.2.cbor)",
            ));
        };
        resp.headers_mut().insert("sec-websocket-protocol", HeaderValue::from_static(proto.name()));
        chosen = Some(proto);
        Ok(resp)
    };
    // A small read buffer keeps idle sessions cheap (tungstenite's default is 128 KiB
    // per connection); larger messages are still read, in more chunks.
    let config = WebSocketConfig::default()
        .max_message_size(Some(max))
        .max_frame_size(Some(max))
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER);
    let before_welcome = router.config.limits.before_welcome_max(max);
    let stream = Guarded::new(stream, Some(before_welcome));
    // the handshake and the session loop are boxed, so the connection's task does not
    // hold the handshake's state for its whole life (`listener::connection`)
    let handshake = Box::pin(tokio_tungstenite::accept_hdr_async_with_config(stream, callback, Some(config)));
    let ws = match tokio::time::timeout_at(accepted.deadline, handshake).await {
        Ok(Ok(ws)) => ws,
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "websocket handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!(peer = ?accepted.peer, "websocket handshake timed out");
            return;
        }
    };
    let Some(proto) = chosen else { return };
    let transport = WsTransport {
        ws,
        serializer: proto.serializer,
        batched: proto.batched,
        max_batch: router.config.limits.max_batch_messages,
        max_in: before_welcome,
        max_welcomed: max,
        max_before_welcome: before_welcome,
        pending: VecDeque::new(),
        too_big: false,
    };
    Box::pin(drive(router, transport, proto.serializer, accepted)).await;
}

struct WsTransport<S> {
    /// The stream under tungstenite holds messages to the limit before WELCOME.
    ws: WebSocketStream<Guarded<S>>,
    serializer: Serializer,
    /// Batched subprotocol: several WAMP messages per WebSocket message.
    batched: bool,
    /// Most WAMP messages in one batch.
    max_batch: usize,
    /// Largest message accepted now: one of the two below. tungstenite enforces the
    /// larger one while reading; the smaller one is enforced on the frame headers by
    /// [`Guarded`] and checked again before decoding.
    max_in: usize,
    /// Largest message accepted from a welcomed session.
    max_welcomed: usize,
    /// Largest message accepted until WELCOME.
    max_before_welcome: usize,
    /// Messages split from a batch and not yet handed out.
    pending: VecDeque<Bytes>,
    /// The client sent a message over the size limit: close with 1009 (Message Too Big).
    too_big: bool,
}

impl<S> FrameTransport for WsTransport<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    const KIND: &'static str = "websocket";
    const PINGS: bool = true;

    async fn recv(&mut self) -> std::io::Result<Option<Incoming>> {
        if let Some(frame) = self.pending.pop_front() {
            return Ok(Some(Incoming::Frame(frame)));
        }
        loop {
            let msg = match self.ws.next().await {
                None => return Ok(None),
                Some(Ok(m)) => m,
                Some(Err(tungstenite::Error::Capacity(e))) => {
                    self.too_big = true;
                    return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()));
                }
                Some(Err(e)) => match self.ws.get_mut().exceeded() {
                    Some(too_long) => {
                        self.too_big = true;
                        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, too_long));
                    }
                    None => return Err(std::io::Error::other(e.to_string())),
                },
            };
            let frame = match msg {
                WsMessage::Text(t) => Bytes::from(t),
                WsMessage::Binary(b) => b,
                WsMessage::Close(_) => return Ok(None),
                // tungstenite answers a ping itself; both are signs of life
                WsMessage::Ping(_) | WsMessage::Pong(_) => return Ok(Some(Incoming::Pong)),
                WsMessage::Frame(_) => continue,
            };
            if frame.len() > self.max_in {
                self.too_big = true;
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!(
                        "message of {} bytes exceeds the maximum of {} before WELCOME \
                         (limits.max_message_size_before_welcome)",
                        frame.len(),
                        self.max_in
                    ),
                ));
            }
            if !self.batched {
                return Ok(Some(Incoming::Frame(frame)));
            }
            let invalid =
                |e: batch::BatchError| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string());
            self.pending.extend(batch::split(self.serializer, frame, self.max_batch).map_err(invalid)?);
            if let Some(first) = self.pending.pop_front() {
                return Ok(Some(Incoming::Frame(first)));
            }
        }
    }

    async fn send(&mut self, frames: &[Bytes]) -> std::io::Result<()> {
        let joined;
        let frames = if self.batched && !frames.is_empty() {
            joined = [batch::join(self.serializer, frames)];
            &joined[..]
        } else {
            frames
        };
        for f in frames {
            let msg = if self.serializer.is_binary() {
                WsMessage::Binary(f.clone())
            } else {
                let text = Utf8Bytes::try_from(f.clone())
                    .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))?;
                WsMessage::Text(text)
            };
            self.ws.feed(msg).await.map_err(|e| std::io::Error::other(e.to_string()))?;
        }
        self.ws.flush().await.map_err(|e| std::io::Error::other(e.to_string()))
    }

    async fn pong(&mut self, _payload: Bytes) -> std::io::Result<()> {
        Ok(())
    }

    async fn ping(&mut self) -> std::io::Result<()> {
        self.ws.send(WsMessage::Ping(Bytes::new())).await.map_err(|e| std::io::Error::other(e.to_string()))
    }

    async fn close(&mut self) {
        let frame =
            self.too_big.then(|| CloseFrame { code: CloseCode::Size, reason: "message too big".into() });
        self.ws.close(frame).await.ok();
    }

    async fn linger(&mut self) {
        let mut left = super::LINGER_BYTES;
        while left > 0 {
            match self.ws.next().await {
                Some(Ok(m)) => left = left.saturating_sub(m.len()),
                Some(Err(_)) | None => return,
            }
        }
    }

    fn set_welcomed(&mut self, welcomed: bool) {
        self.max_in = if welcomed { self.max_welcomed } else { self.max_before_welcome };
        self.ws.get_mut().set_limit((!welcomed).then_some(self.max_before_welcome));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation_takes_the_first_supported() {
        let ser = |h| negotiate(Some(h)).map(|p| (p.serializer, p.batched));
        assert_eq!(ser("wamp.2.cbor, wamp.2.json"), Some((Serializer::Cbor, false)));
        assert_eq!(ser("foo,wamp.2.msgpack"), Some((Serializer::MsgPack, false)));
        assert_eq!(ser("wamp.2.json.batched"), Some((Serializer::Json, true)));
        assert_eq!(ser("wamp.2.cbor.batched"), None);
        assert_eq!(ser("wamp.2.ubjson"), None);
        assert_eq!(negotiate(None), None);
    }
}
