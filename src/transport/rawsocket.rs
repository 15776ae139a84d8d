//! WAMP over RawSocket (TCP or Unix domain socket): the 4-byte handshake with
//! serializer and maximum-length negotiation, then length-prefixed frames, with
//! PING answered by PONG. Reading is buffered and cancel-safe; each batch of outgoing
//! frames is written with its headers in one buffer, so one syscall per batch.

use std::sync::Arc;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::{Accepted, FrameTransport, Incoming, drive};
use crate::router::Router;
use crate::wamp::codec::Serializer;
use crate::wamp::rawsocket::{self as rs, FrameKind, HandshakeError, HandshakeReject};

/// Performs the RawSocket handshake and runs the session. A client that does not
/// send its 4 handshake bytes by `accepted.deadline` is disconnected.
pub async fn serve<S>(router: Arc<Router>, mut stream: S, accepted: Accepted)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut hs = [0u8; 4];
    match tokio::time::timeout_at(accepted.deadline, stream.read_exact(&mut hs)).await {
        Ok(Ok(_)) => {}
        _ => return,
    }
    let hello = match rs::parse_client_handshake(hs) {
        Ok(h) => h,
        Err(HandshakeReject::BadMagic) => return,
        Err(HandshakeReject::Error(e)) => {
            stream.write_all(&rs::encode_handshake_error(e)).await.ok();
            return;
        }
    };
    let Some(serializer) = Serializer::from_rawsocket_id(hello.serializer_id) else {
        let reply = rs::encode_handshake_error(HandshakeError::SerializerUnsupported);
        stream.write_all(&reply).await.ok();
        return;
    };
    let max = router.config.limits.rawsocket_max();
    let ours = rs::exponent_for_len(max);
    if stream.write_all(&rs::encode_handshake(hello.serializer_id, ours)).await.is_err() {
        return;
    }
    let max_welcomed = rs::max_len_from_exponent(ours).min(max);
    let max_before_welcome = router.config.limits.before_welcome_max(max_welcomed);
    let transport = RsTransport {
        stream,
        buf: BytesMut::with_capacity(1024),
        max_in: max_before_welcome,
        max_welcomed,
        max_before_welcome,
        max_out: rs::max_len_from_exponent(hello.max_len_exp),
        out: Vec::new(),
    };
    // boxed: the connection's task keeps only a pointer to it (`listener::connection`)
    Box::pin(drive(router, transport, serializer, accepted)).await;
}

struct RsTransport<S> {
    stream: S,
    /// Bytes read but not yet consumed as frames.
    buf: BytesMut,
    /// Largest frame we accept now: one of the two below.
    max_in: usize,
    /// Largest frame we accept from a welcomed session (what we announced).
    max_welcomed: usize,
    /// Largest frame we accept until WELCOME.
    max_before_welcome: usize,
    /// Largest frame the client accepts (what it announced).
    max_out: usize,
    /// Reused write buffer.
    out: Vec<u8>,
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> RsTransport<S> {
    /// Takes one complete frame out of the buffer, if there is one.
    fn next_frame(&mut self) -> std::io::Result<Option<(FrameKind, Bytes)>> {
        if self.buf.len() < 4 {
            return Ok(None);
        }
        let header = [self.buf[0], self.buf[1], self.buf[2], self.buf[3]];
        let (kind, len) = rs::parse_frame_header(header).map_err(|e| {
            std::io::Error::new(std::io::ErrorKind::InvalidData, format!("bad frame header: {e:?}"))
        })?;
        // Checked on the header, before a byte of the body is read or allocated.
        if len > self.max_in {
            let limit = if self.max_in < self.max_welcomed {
                " before WELCOME (limits.max_message_size_before_welcome)"
            } else {
                ""
            };
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("message of {len} bytes exceeds the maximum of {}{limit}", self.max_in),
            ));
        }
        if self.buf.len() < 4 + len {
            self.buf.reserve(4 + len - self.buf.len());
            return Ok(None);
        }
        self.buf.advance(4);
        Ok(Some((kind, self.buf.split_to(len).freeze())))
    }

    fn push_frame(&mut self, kind: FrameKind, payload: &[u8]) {
        self.out.extend_from_slice(&rs::encode_frame_header(kind, payload.len()));
        self.out.extend_from_slice(payload);
    }

    async fn flush_out(&mut self) -> std::io::Result<()> {
        let r = self.stream.write_all(&self.out).await;
        self.out.clear();
        r
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> FrameTransport for RsTransport<S> {
    /// No RawSocket PINGs from the router: the spec defines them, but Autobahn|Python's
    /// asyncio RawSocket client (26.10) raises NotImplementedError on one and drops the
    /// connection. TCP keepalive probes (set by the listener) find dead peers instead.
    const PINGS: bool = false;
    const KIND: &'static str = "rawsocket";

    async fn recv(&mut self) -> std::io::Result<Option<Incoming>> {
        loop {
            match self.next_frame()? {
                Some((FrameKind::Message, b)) => return Ok(Some(Incoming::Frame(b))),
                Some((FrameKind::Ping, b)) => return Ok(Some(Incoming::Ping(b))),
                Some((FrameKind::Pong, _)) => return Ok(Some(Incoming::Pong)),
                None => {}
            }
            if self.stream.read_buf(&mut self.buf).await? == 0 {
                return Ok(None);
            }
        }
    }

    async fn send(&mut self, frames: &[Bytes]) -> std::io::Result<()> {
        for f in frames {
            if f.len() > self.max_out {
                // The spec forbids sending more than the client accepts, and dropping the
                // message would leave a request unanswered: end the connection instead.
                self.flush_out().await.ok();
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!(
                        "a {}-byte message exceeds the client's maximum of {} bytes",
                        f.len(),
                        self.max_out
                    ),
                ));
            }
            self.push_frame(FrameKind::Message, f);
        }
        self.flush_out().await
    }

    async fn pong(&mut self, payload: Bytes) -> std::io::Result<()> {
        self.push_frame(FrameKind::Pong, &payload);
        self.flush_out().await
    }

    async fn ping(&mut self) -> std::io::Result<()> {
        self.push_frame(FrameKind::Ping, &[]);
        self.flush_out().await
    }

    async fn close(&mut self) {
        self.stream.shutdown().await.ok();
    }

    async fn linger(&mut self) {
        let mut left = super::LINGER_BYTES;
        self.buf.clear();
        while left > 0 {
            match self.stream.read_buf(&mut self.buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => left = left.saturating_sub(n),
            }
            self.buf.clear();
        }
    }

    fn set_welcomed(&mut self, welcomed: bool) {
        self.max_in = if welcomed { self.max_welcomed } else { self.max_before_welcome };
    }
}
