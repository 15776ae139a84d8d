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
use tokio_tungstenite::tungstenite::{self, Message as WsMessage, Utf8Bytes};

use super::{FrameTransport, Incoming, drive};
use crate::router::Router;
use crate::wamp::codec::Serializer;

/// Picks the first WAMP subprotocol of the client's list that we speak.
pub fn negotiate(header: Option<&str>) -> Option<Serializer> {
    header?.split(',').map(str::trim).find_map(Serializer::from_subprotocol)
}

fn reject(status: StatusCode, why: &str) -> ErrorResponse {
    let mut r = ErrorResponse::new(Some(why.to_owned()));
    *r.status_mut() = status;
    r
}

/// Accepts a WebSocket connection and runs its session.
#[allow(clippy::result_large_err)] // the handshake callback's error type is tungstenite's HTTP response
pub async fn serve<S>(router: Arc<Router>, stream: S)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let path = router.config.websocket.path.clone();
    let max = router.config.limits.max_message_size;
    let mut chosen = None;
    let callback = |req: &Request, mut resp: Response| {
        if req.uri().path() != path {
            return Err(reject(StatusCode::NOT_FOUND, "no WAMP endpoint on this path"));
        }
        let offered = req.headers().get("sec-websocket-protocol").and_then(|v| v.to_str().ok());
        let Some(ser) = negotiate(offered) else {
            return Err(reject(
                StatusCode::BAD_REQUEST,
                "no supported WAMP subprotocol (wamp.2.json, wamp.2.msgpack, wamp.2.cbor)",
            ));
        };
        resp.headers_mut().insert("sec-websocket-protocol", HeaderValue::from_static(ser.subprotocol()));
        chosen = Some(ser);
        Ok(resp)
    };
    let config = WebSocketConfig::default().max_message_size(Some(max)).max_frame_size(Some(max));
    let ws = match tokio_tungstenite::accept_hdr_async_with_config(stream, callback, Some(config)).await {
        Ok(ws) => ws,
        Err(e) => {
            tracing::debug!(error = %e, "websocket handshake failed");
            return;
        }
    };
    let Some(serializer) = chosen else { return };
    drive(router, WsTransport { ws, serializer }, serializer).await;
}

struct WsTransport<S> {
    ws: WebSocketStream<S>,
    serializer: Serializer,
}

impl<S> FrameTransport for WsTransport<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    async fn recv(&mut self) -> std::io::Result<Option<Incoming>> {
        loop {
            let msg = match self.ws.next().await {
                None => return Ok(None),
                Some(Ok(m)) => m,
                Some(Err(tungstenite::Error::Capacity(e))) => {
                    return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()));
                }
                Some(Err(e)) => return Err(std::io::Error::other(e.to_string())),
            };
            match msg {
                WsMessage::Text(t) => return Ok(Some(Incoming::Frame(Bytes::from(t)))),
                WsMessage::Binary(b) => return Ok(Some(Incoming::Frame(b))),
                WsMessage::Close(_) => return Ok(None),
                WsMessage::Ping(_) | WsMessage::Pong(_) | WsMessage::Frame(_) => {}
            }
        }
    }

    async fn send(&mut self, frames: &[Bytes]) -> std::io::Result<()> {
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

    async fn close(&mut self) {
        self.ws.close(None).await.ok();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation_takes_the_first_supported() {
        assert_eq!(negotiate(Some("wamp.2.cbor, wamp.2.json")), Some(Serializer::Cbor));
        assert_eq!(negotiate(Some("foo,wamp.2.msgpack")), Some(Serializer::MsgPack));
        assert_eq!(negotiate(Some("wamp.2.ubjson")), None);
        assert_eq!(negotiate(None), None);
    }
}
