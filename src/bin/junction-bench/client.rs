//! A minimal WAMP client connection on the crate's own codec, over WebSocket or
//! RawSocket (TCP), built for load generation: frames are queued with [`Conn::send`]
//! and written together by [`Conn::flush`] (one syscall per batch where possible), and
//! [`Conn::recv_frames`] returns every frame already buffered, not just one.
//!
//! In frame-by-frame mode ([`Conn::set_frame_by_frame`]) [`Conn::flush`] instead
//! writes and flushes every queued frame on its own, one write syscall per frame, the
//! way Autobahn|Python, wampy.js and most WAMP clients write.
//!
//! The same type also speaks to the raw relay ([`crate::relay`]): WebSocket without
//! WAMP, or plain TCP with RawSocket framing after an 8-byte pairing key.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use futures_util::{FutureExt, SinkExt, StreamExt};
use junction::dict;
use junction::ids::{RequestId, SessionId};
use junction::wamp::codec::Serializer;
use junction::wamp::message::{Goodbye, Hello, Message};
use junction::wamp::rawsocket::{self as rs, FrameKind};
use junction::wamp::value::Dict;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message as WsMessage, Utf8Bytes};

use crate::error::{BenchError, Result};

/// Most frames [`Conn::recv_frames`] hands back at once.
const MAX_BATCH: usize = 1024;
/// How long setup steps (handshakes, HELLO, REGISTER ...) may take.
pub const SETUP_TIMEOUT: Duration = Duration::from_secs(30);

/// Where to connect: a WAMP WebSocket URL or a RawSocket TCP address.
#[derive(Clone, Debug)]
pub enum Endpoint {
    /// `ws://host:port/path`.
    Ws {
        /// Resolved address.
        addr: SocketAddr,
        /// `host:port` as written, for the `Host` header.
        authority: String,
        /// HTTP path, starting with `/`.
        path: String,
    },
    /// `rs://host:port` (also `tcp://` and `rawsocket://`).
    Raw {
        /// Resolved address.
        addr: SocketAddr,
    },
}

impl Endpoint {
    /// Parses `ws://host:port/path` or `rs://host:port`.
    pub fn parse(url: &str) -> Result<Endpoint> {
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| BenchError::msg(format!("{url}: not a URL (ws://... or rs://...)")))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let addr = authority
            .to_socket_addrs()
            .map_err(|e| BenchError::msg(format!("{url}: {e}")))?
            .next()
            .ok_or_else(|| BenchError::msg(format!("{url}: no address")))?;
        match scheme {
            "ws" => Ok(Endpoint::Ws { addr, authority: authority.to_owned(), path: path.to_owned() }),
            "rs" | "tcp" | "rawsocket" => Ok(Endpoint::Raw { addr }),
            other => Err(BenchError::msg(format!("{url}: unsupported scheme {other:?} (ws, rs)"))),
        }
    }

    /// The resolved socket address.
    pub fn addr(&self) -> SocketAddr {
        match self {
            Endpoint::Ws { addr, .. } | Endpoint::Raw { addr } => *addr,
        }
    }

    /// `websocket` or `rawsocket`.
    pub fn transport(&self) -> &'static str {
        match self {
            Endpoint::Ws { .. } => "websocket",
            Endpoint::Raw { .. } => "rawsocket",
        }
    }

    /// The same endpoint with another HTTP path (WebSocket only).
    pub fn with_path(&self, new_path: &str) -> Endpoint {
        match self {
            Endpoint::Ws { addr, authority, .. } => {
                Endpoint::Ws { addr: *addr, authority: authority.clone(), path: new_path.to_owned() }
            }
            raw => raw.clone(),
        }
    }
}

/// How to open a connection.
#[derive(Clone, Debug, Default)]
pub struct ConnectOpts {
    /// Local address to bind before connecting (to use many source addresses).
    pub source: Option<IpAddr>,
    /// Small WebSocket buffers, for many idle connections.
    pub small_buffers: bool,
    /// Raw relay over TCP: send this pairing key instead of the RawSocket handshake.
    pub relay_key: Option<u64>,
}

enum Io {
    Ws { ws: Box<WebSocketStream<TcpStream>>, pending: Vec<WsMessage>, closed: bool },
    Raw { stream: TcpStream, rbuf: BytesMut, wbuf: Vec<u8> },
}

/// One client connection.
pub struct Conn {
    ser: Serializer,
    io: Io,
    frame_by_frame: bool,
}

async fn tcp_connect(addr: SocketAddr, source: Option<IpAddr>) -> Result<TcpStream> {
    let sock = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    if let Some(ip) = source {
        bind_address_no_port(&sock)?;
        sock.bind(SocketAddr::new(ip, 0)).map_err(|e| BenchError::msg(format!("bind {ip}: {e}")))?;
    }
    let stream = sock.connect(addr).await.map_err(|e| BenchError::msg(format!("connect {addr}: {e}")))?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Sets `IP_BIND_ADDRESS_NO_PORT`: binding a source address then leaves the port to
/// `connect`, which may reuse it toward other destinations. Without it every
/// `bind(addr, 0)` searches for a port free on all destinations, which grows slow
/// (kernel time) as tens of thousands of ports are in use.
fn bind_address_no_port(sock: &TcpSocket) -> Result<()> {
    use std::os::fd::AsRawFd;
    let one: libc::c_int = 1;
    // SAFETY: a valid socket descriptor, and a pointer/length pair to a live c_int.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            (&raw const one).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    Ok(())
}

impl Conn {
    /// Connects and performs the transport handshake (not the WAMP one).
    pub async fn connect(ep: &Endpoint, ser: Serializer, opts: &ConnectOpts) -> Result<Conn> {
        tokio::time::timeout(SETUP_TIMEOUT, Self::connect_inner(ep, ser, opts)).await?
    }

    async fn connect_inner(ep: &Endpoint, ser: Serializer, opts: &ConnectOpts) -> Result<Conn> {
        let mut stream = tcp_connect(ep.addr(), opts.source).await?;
        match ep {
            Endpoint::Ws { authority, path, .. } => {
                let mut req = format!("ws://{authority}{path}").into_client_request()?;
                req.headers_mut()
                    .insert("Sec-WebSocket-Protocol", HeaderValue::from_static(ser.subprotocol()));
                let config = if opts.small_buffers {
                    WebSocketConfig::default().read_buffer_size(4096).write_buffer_size(4096)
                } else {
                    WebSocketConfig::default()
                };
                let (ws, _resp) =
                    tokio_tungstenite::client_async_with_config(req, stream, Some(config)).await?;
                Ok(Conn {
                    ser,
                    io: Io::Ws { ws: Box::new(ws), pending: Vec::new(), closed: false },
                    frame_by_frame: false,
                })
            }
            Endpoint::Raw { .. } => {
                if let Some(key) = opts.relay_key {
                    stream.write_all(&key.to_be_bytes()).await?;
                } else {
                    stream
                        .write_all(&rs::encode_handshake(ser.rawsocket_id(), rs::MAX_LENGTH_EXPONENT))
                        .await?;
                    let mut reply = [0u8; 4];
                    stream.read_exact(&mut reply).await?;
                    let (id, _exp) = rs::parse_server_handshake(reply)?;
                    if id != ser.rawsocket_id() {
                        return Err(BenchError::msg(format!("router answered serializer {id}")));
                    }
                }
                let cap = if opts.small_buffers { 512 } else { 64 * 1024 };
                Ok(Conn {
                    ser,
                    io: Io::Raw { stream, rbuf: BytesMut::with_capacity(cap), wbuf: Vec::with_capacity(cap) },
                    frame_by_frame: false,
                })
            }
        }
    }

    /// The negotiated serializer.
    pub fn serializer(&self) -> Serializer {
        self.ser
    }

    /// Frame-by-frame mode: [`Conn::flush`] writes each queued frame with its own
    /// write (and WebSocket flush) instead of all of them together.
    pub fn set_frame_by_frame(&mut self, on: bool) {
        self.frame_by_frame = on;
    }

    /// Queues an encoded frame; nothing is written before [`Conn::flush`].
    pub fn send_frame(&mut self, frame: Vec<u8>) -> Result<()> {
        match &mut self.io {
            Io::Ws { pending, .. } => {
                let msg = if self.ser.is_binary() {
                    WsMessage::Binary(Bytes::from(frame))
                } else {
                    let text = String::from_utf8(frame)
                        .map_err(|e| BenchError::msg(format!("non-UTF-8 JSON: {e}")))?;
                    WsMessage::Text(Utf8Bytes::from(text))
                };
                pending.push(msg);
            }
            Io::Raw { wbuf, .. } => {
                if frame.len() > rs::MAX_FRAME_LEN {
                    return Err(BenchError::msg("frame too long for RawSocket"));
                }
                wbuf.extend_from_slice(&rs::encode_frame_header(FrameKind::Message, frame.len()));
                wbuf.extend_from_slice(&frame);
            }
        }
        Ok(())
    }

    /// Encodes and queues a message.
    pub fn send(&mut self, msg: &Message) -> Result<()> {
        let frame = self.ser.encode(msg);
        self.send_frame(frame)
    }

    /// Writes everything queued: together, or one frame per write in frame-by-frame
    /// mode.
    pub async fn flush(&mut self) -> Result<()> {
        let fbf = self.frame_by_frame;
        match &mut self.io {
            Io::Ws { ws, pending, .. } => {
                if pending.is_empty() {
                    return Ok(());
                }
                for m in pending.drain(..) {
                    if fbf {
                        ws.send(m).await?;
                    } else {
                        ws.feed(m).await?;
                    }
                }
                if !fbf {
                    ws.flush().await?;
                }
            }
            Io::Raw { stream, wbuf, .. } => {
                if wbuf.is_empty() {
                    return Ok(());
                }
                if fbf {
                    let mut at = 0;
                    while at < wbuf.len() {
                        let end = raw_frame_end(wbuf, at)?;
                        stream.write_all(&wbuf[at..end]).await?;
                        at = end;
                    }
                } else {
                    stream.write_all(wbuf).await?;
                }
                wbuf.clear();
            }
        }
        Ok(())
    }

    /// Waits for at least one frame and appends every frame already received to
    /// `out`. Returns `false` once the peer closed. Cancel-safe.
    pub async fn recv_frames(&mut self, out: &mut Vec<Bytes>) -> Result<bool> {
        match &mut self.io {
            Io::Ws { ws, closed, .. } => {
                if *closed {
                    return Ok(false);
                }
                let first = match ws.next().await {
                    None => return Ok(false),
                    Some(m) => m?,
                };
                let mut push = |m: WsMessage, closed: &mut bool| match m {
                    WsMessage::Binary(b) => out.push(b),
                    WsMessage::Text(t) => out.push(Bytes::from(t)),
                    WsMessage::Close(_) => *closed = true,
                    _ => {}
                };
                push(first, closed);
                let mut n = 1;
                while !*closed && n < MAX_BATCH {
                    match ws.next().now_or_never() {
                        Some(Some(m)) => push(m?, closed),
                        Some(None) => *closed = true,
                        None => break,
                    }
                    n += 1;
                }
                Ok(!out.is_empty() || !*closed)
            }
            Io::Raw { stream, rbuf, wbuf } => loop {
                while let Some((kind, frame)) = next_raw_frame(rbuf)? {
                    match kind {
                        FrameKind::Message => out.push(frame),
                        FrameKind::Ping => {
                            wbuf.extend_from_slice(&rs::encode_frame_header(FrameKind::Pong, frame.len()));
                            wbuf.extend_from_slice(&frame);
                        }
                        FrameKind::Pong => {}
                    }
                }
                if !out.is_empty() {
                    return Ok(true);
                }
                if rbuf.capacity() - rbuf.len() < 4096 {
                    rbuf.reserve(64 * 1024);
                }
                if stream.read_buf(rbuf).await? == 0 {
                    return Ok(false);
                }
            },
        }
    }

    /// Like [`Conn::recv_frames`], decoded. Returns `false` once the peer closed.
    pub async fn recv_msgs(&mut self, out: &mut Vec<Message>) -> Result<bool> {
        let mut frames = Vec::new();
        let open = self.recv_frames(&mut frames).await?;
        for f in frames {
            out.push(self.ser.decode(&f)?);
        }
        Ok(open)
    }

    /// Sends HELLO for `realm` and waits for WELCOME.
    pub async fn join(&mut self, realm: &str) -> Result<SessionId> {
        let roles = dict! {
            "caller" => Dict::new(),
            "callee" => Dict::new(),
            "publisher" => Dict::new(),
            "subscriber" => Dict::new(),
        };
        let hello = Hello {
            realm: realm.to_owned(),
            details: dict! { "roles" => roles, "agent" => "junction-bench" },
        };
        self.send(&Message::Hello(hello))?;
        self.flush().await?;
        let reply = tokio::time::timeout(SETUP_TIMEOUT, self.next_msg()).await??;
        match reply {
            Message::Welcome(w) => Ok(w.session),
            Message::Abort(a) => Err(BenchError::msg(format!("router refused the session: {}", a.reason))),
            other => Err(BenchError::msg(format!("expected WELCOME, got message type {}", other.code()))),
        }
    }

    /// The next message, whatever it is.
    async fn next_msg(&mut self) -> Result<Message> {
        let mut frames = Vec::new();
        while frames.is_empty() {
            if !self.recv_frames(&mut frames).await? {
                return Err(BenchError::msg("connection closed by the router"));
            }
        }
        let first = frames.swap_remove(0);
        if !frames.is_empty() {
            return Err(BenchError::msg("unexpected extra frames during setup"));
        }
        Ok(self.ser.decode(&first)?)
    }

    /// Sends a request (REGISTER, SUBSCRIBE ...) and waits for the reply to it.
    pub async fn request(&mut self, msg: &Message, request: RequestId) -> Result<Message> {
        self.send(msg)?;
        self.flush().await?;
        tokio::time::timeout(SETUP_TIMEOUT, async {
            loop {
                let reply = self.next_msg().await?;
                if let Some(id) = reply_request(&reply)
                    && id == request
                {
                    return Ok(reply);
                }
                if let Message::Abort(a) = reply {
                    return Err(BenchError::msg(format!("router aborted the session: {}", a.reason)));
                }
            }
        })
        .await?
    }

    /// Says GOODBYE (waiting briefly for the answer) and closes the connection.
    pub async fn close(mut self) {
        let bye = Goodbye { details: Dict::new(), reason: "wamp.close.normal".into() };
        if self.send(&Message::Goodbye(bye)).is_ok() && self.flush().await.is_ok() {
            let wait = async {
                let mut msgs = Vec::new();
                while let Ok(true) = self.recv_msgs(&mut msgs).await {
                    if msgs.iter().any(|m| matches!(m, Message::Goodbye(_))) {
                        break;
                    }
                    msgs.clear();
                }
            };
            tokio::time::timeout(Duration::from_secs(1), wait).await.ok();
        }
        self.shutdown().await;
    }

    /// Closes the transport without a WAMP goodbye.
    pub async fn shutdown(self) {
        match self.io {
            Io::Ws { mut ws, .. } => {
                tokio::time::timeout(Duration::from_secs(1), WebSocketStream::close(&mut *ws, None))
                    .await
                    .ok();
            }
            Io::Raw { mut stream, .. } => {
                stream.shutdown().await.ok();
            }
        }
    }
}

/// Where the RawSocket frame starting at `at` of a send buffer ends.
fn raw_frame_end(buf: &[u8], at: usize) -> Result<usize> {
    let header = buf.get(at..at + 4).ok_or_else(|| BenchError::msg("truncated RawSocket frame"))?;
    let (_kind, len) = rs::parse_frame_header([header[0], header[1], header[2], header[3]])?;
    Ok((at + 4 + len).min(buf.len()))
}

/// Takes one complete RawSocket frame out of `buf`, if there is one.
fn next_raw_frame(buf: &mut BytesMut) -> Result<Option<(FrameKind, Bytes)>> {
    let Some(header) = buf.get(..4) else { return Ok(None) };
    let header = [header[0], header[1], header[2], header[3]];
    let (kind, len) = rs::parse_frame_header(header)?;
    if buf.len() < 4 + len {
        buf.reserve(4 + len - buf.len());
        return Ok(None);
    }
    buf.advance(4);
    Ok(Some((kind, buf.split_to(len).freeze())))
}

/// The request id a router reply answers, for the replies setup waits for.
fn reply_request(m: &Message) -> Option<RequestId> {
    match m {
        Message::Registered(r) => Some(r.request),
        Message::Subscribed(s) => Some(s.request),
        Message::Unregistered(u) => Some(u.request),
        Message::Unsubscribed(u) => Some(u.request),
        Message::Published(p) => Some(p.request),
        Message::Result(r) => Some(r.request),
        Message::Error(e) => Some(e.request),
        _ => None,
    }
}
