//! Wire-level robustness tests for the `junction` binary: every test starts its
//! own router (port 0, addresses read from stdout), speaks RawSocket (TCP and
//! Unix) or WebSocket by hand, commits a protocol violation and checks the
//! router's reaction (handshake error reply, ABORT `wamp.error.protocol_violation`,
//! closed transport), then checks that a fresh session on the same router still
//! works (HELLO -> WELCOME, CALL of an unregistered procedure -> ERROR
//! `wamp.error.no_such_procedure`). Also RawSocket PING/PONG, the negotiated
//! maximum message length, WebSocket subprotocol negotiation, and what a frame
//! before HELLO can cost in memory.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use serde_json::{Value, json};

const READY_TIMEOUT: Duration = Duration::from_secs(20);
const IO_TIMEOUT: Duration = Duration::from_secs(10);

const HELLO: u64 = 1;
const WELCOME: u64 = 2;
const ABORT: u64 = 3;
const ERROR: u64 = 8;
const CALL: u64 = 48;
const YIELD: u64 = 70;

const SER_JSON: u8 = 1;
const SER_MSGPACK: u8 = 2;
const SER_CBOR: u8 = 3;

// ---------------------------------------------------------------------------
// router process
// ---------------------------------------------------------------------------

struct Router {
    child: Option<Child>,
    ws_url: Option<String>,
    rs_addr: Option<SocketAddr>,
    unix_path: Option<PathBuf>,
    stdout_lines: Vec<String>,
    _tmp: Option<TempDir>,
}

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!(
            "junction-pv-{tag}-{}-{:?}",
            std::process::id(),
            thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("create temp dir");
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Router {
    fn start(extra: &[&str]) -> Router {
        Router::start_with(extra, None)
    }

    fn start_with(extra: &[&str], tmp: Option<TempDir>) -> Router {
        let mut args = vec!["--ws", "127.0.0.1:0", "--rawsocket", "127.0.0.1:0"];
        args.extend_from_slice(extra);
        // router logs (stderr) go to target/tmp/protocol_violations/<test>.stderr.log
        let log_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("protocol_violations");
        std::fs::create_dir_all(&log_dir).expect("log dir");
        let test_name = thread::current().name().unwrap_or("unnamed").replace("::", "-");
        let log = std::fs::File::create(log_dir.join(format!("{test_name}.stderr.log"))).expect("log file");
        let mut child = Command::new(env!("CARGO_BIN_EXE_junction"))
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("spawn junction");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    // keep draining so the router never blocks on a full pipe
                    continue;
                }
            }
        });
        let mut r = Router {
            child: Some(child),
            ws_url: None,
            rs_addr: None,
            unix_path: None,
            stdout_lines: vec![],
            _tmp: tmp,
        };
        let deadline = std::time::Instant::now() + READY_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let line = match rx.recv_timeout(left) {
                Ok(l) => l,
                Err(e) => panic!("router not ready ({e:?}); stdout so far: {:?}", r.stdout_lines),
            };
            r.stdout_lines.push(line.clone());
            let parts: Vec<&str> = line.split_whitespace().collect();
            match parts.as_slice() {
                ["ready"] => break,
                ["listening", "websocket", url, ..] => r.ws_url = Some(url.to_string()),
                ["listening", "rawsocket", addr, ..] => {
                    if let Some(p) = addr.strip_prefix("unix:") {
                        r.unix_path = Some(PathBuf::from(p));
                    } else if let Some(a) = addr.strip_prefix("tcp://") {
                        r.rs_addr = Some(a.parse().expect("rawsocket address"));
                    }
                }
                _ => {}
            }
        }
        r
    }

    fn rs(&self) -> SocketAddr {
        self.rs_addr.expect("router has a RawSocket TCP listener")
    }

    fn ws_host_port(&self) -> (String, String) {
        let url = self.ws_url.as_ref().expect("router has a WebSocket listener");
        let rest = url.strip_prefix("ws://").expect("ws:// url");
        let (hostport, path) = rest.split_once('/').unwrap();
        (hostport.to_string(), format!("/{path}"))
    }

    /// Panics if the router process has exited.
    fn assert_alive(&mut self) {
        let child = self.child.as_mut().unwrap();
        if let Some(status) = child.try_wait().unwrap() {
            panic!("router exited unexpectedly: {status}");
        }
    }

    /// A fresh session still works: HELLO -> WELCOME, then CALL of an
    /// unregistered procedure -> ERROR no_such_procedure.
    fn assert_healthy(&mut self) {
        self.assert_alive();
        let mut s = RawSocket::connect_tcp(self.rs(), SER_JSON, 15);
        s.expect_handshake_ok(SER_JSON);
        let welcome = s.hello("realm1");
        assert_eq!(welcome[0], json!(WELCOME), "{welcome}");
        s.send_msg(&json!([CALL, 77, {}, "com.example.junction.not_registered", [1]]));
        let err = s.recv_msg().expect("reply to CALL");
        assert_eq!(err[0], json!(ERROR), "{err}");
        assert_eq!(err[1], json!(CALL), "{err}");
        assert_eq!(err[2], json!(77), "{err}");
        assert_eq!(err[4], json!("wamp.error.no_such_procedure"), "{err}");
        self.assert_alive();
    }
}

impl Drop for Router {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        if child.try_wait().ok().flatten().is_none() {
            // SIGTERM first (std only knows SIGKILL), then wait; SIGKILL as a fallback
            let pid = child.id();
            let termed =
                Command::new("kill").args(["-TERM", &pid.to_string()]).status().is_ok_and(|s| s.success());
            if !termed {
                let _ = child.kill();
            }
            let (tx, rx) = mpsc::channel();
            thread::spawn(move || {
                let _ = tx.send(child.wait());
            });
            if rx.recv_timeout(Duration::from_secs(10)).is_err() {
                let _ = Command::new("kill").arg("-KILL").arg(pid.to_string()).status();
                let _ = rx.recv_timeout(Duration::from_secs(10));
            }
        }
    }
}

// ---------------------------------------------------------------------------
// RawSocket client
// ---------------------------------------------------------------------------

trait Stream: Read + Write {}
impl<T: Read + Write> Stream for T {}

/// What reading from the router produced.
#[derive(Debug)]
enum Frame {
    Message(Vec<u8>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Other(u8, Vec<u8>),
    /// EOF or connection reset: the router closed the transport.
    Closed,
}

struct RawSocket {
    stream: Box<dyn Stream>,
    serializer: u8,
}

fn is_closed_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
    )
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut)
}

impl RawSocket {
    fn tcp(addr: SocketAddr) -> TcpStream {
        let s = TcpStream::connect_timeout(&addr, IO_TIMEOUT).expect("connect");
        s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
        s.set_nodelay(true).unwrap();
        s
    }

    /// Connect and send the 4-byte handshake (the reply is not read yet).
    fn connect_tcp(addr: SocketAddr, serializer: u8, max_len_exp: u8) -> RawSocket {
        let mut s = RawSocket { stream: Box::new(Self::tcp(addr)), serializer };
        s.write_all(&[0x7F, (max_len_exp << 4) | serializer, 0, 0]);
        s
    }

    fn connect_unix(path: &PathBuf, serializer: u8) -> RawSocket {
        let u = UnixStream::connect(path).expect("connect unix socket");
        u.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        u.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
        let mut s = RawSocket { stream: Box::new(u), serializer };
        s.write_all(&[0x7F, 0xF0 | serializer, 0, 0]);
        s
    }

    fn raw_tcp(addr: SocketAddr, serializer: u8) -> RawSocket {
        RawSocket { stream: Box::new(Self::tcp(addr)), serializer }
    }

    fn write_all(&mut self, data: &[u8]) {
        self.stream.write_all(data).expect("write to router");
        self.stream.flush().unwrap();
    }

    /// Write, tolerating the router having closed the connection already.
    fn write_lenient(&mut self, data: &[u8]) -> bool {
        match self.stream.write_all(data).and_then(|_| self.stream.flush()) {
            Ok(()) => true,
            Err(e) if is_closed_error(&e) => false,
            Err(e) => panic!("write failed: {e}"),
        }
    }

    /// Read the 4-byte handshake reply; `None` if the router closed instead.
    fn read_handshake(&mut self) -> Option<[u8; 4]> {
        let mut buf = [0u8; 4];
        match self.stream.read_exact(&mut buf) {
            Ok(()) => Some(buf),
            Err(e) if is_closed_error(&e) => None,
            Err(e) => panic!("reading handshake reply: {e}"),
        }
    }

    fn expect_handshake_ok(&mut self, serializer: u8) -> u8 {
        let reply = self.read_handshake().expect("handshake reply");
        assert_eq!(reply[0], 0x7F, "handshake reply {reply:02x?}");
        assert_eq!(reply[1] & 0x0F, serializer, "handshake reply {reply:02x?}");
        assert_eq!(&reply[2..], &[0, 0], "handshake reply {reply:02x?}");
        reply[1] >> 4
    }

    fn send_frame(&mut self, ftype: u8, payload: &[u8]) {
        let len = payload.len() as u32;
        assert!(len < (1 << 24));
        let mut buf = vec![ftype, (len >> 16) as u8, (len >> 8) as u8, len as u8];
        buf.extend_from_slice(payload);
        self.write_all(&buf);
    }

    fn encode(&self, v: &Value) -> Vec<u8> {
        match self.serializer {
            SER_JSON => serde_json::to_vec(v).unwrap(),
            SER_MSGPACK => rmp_serde::to_vec(v).unwrap(),
            SER_CBOR => minicbor_serde::to_vec(v).unwrap(),
            s => panic!("serializer {s}"),
        }
    }

    fn decode(&self, data: &[u8]) -> Value {
        let decoded: Result<Value, String> = match self.serializer {
            SER_JSON => serde_json::from_slice(data).map_err(|e| e.to_string()),
            SER_MSGPACK => rmp_serde::from_slice(data).map_err(|e| e.to_string()),
            SER_CBOR => minicbor_serde::from_slice(data).map_err(|e| e.to_string()),
            s => panic!("serializer {s}"),
        };
        decoded.unwrap_or_else(|e| panic!("router sent an undecodable message ({e}): {data:02x?}"))
    }

    fn send_msg(&mut self, v: &Value) {
        let data = self.encode(v);
        self.send_frame(0, &data);
    }

    fn read_frame(&mut self) -> Frame {
        let mut header = [0u8; 4];
        match self.stream.read_exact(&mut header) {
            Ok(()) => {}
            Err(e) if is_closed_error(&e) => return Frame::Closed,
            Err(e) if is_timeout(&e) => panic!("router neither answered nor closed within {IO_TIMEOUT:?}"),
            Err(e) => panic!("read: {e}"),
        }
        let len = u32::from_be_bytes([0, header[1], header[2], header[3]]) as usize;
        let mut payload = vec![0u8; len];
        match self.stream.read_exact(&mut payload) {
            Ok(()) => {}
            Err(e) if is_closed_error(&e) => panic!("router closed mid-frame (header {header:02x?})"),
            Err(e) => panic!("read payload: {e}"),
        }
        match header[0] & 0x07 {
            0 => Frame::Message(payload),
            1 => Frame::Ping(payload),
            2 => Frame::Pong(payload),
            t => Frame::Other(t, payload),
        }
    }

    /// Next WAMP message, answering router PINGs; `None` if the router closed.
    fn recv_msg(&mut self) -> Option<Value> {
        loop {
            match self.read_frame() {
                Frame::Message(p) => return Some(self.decode(&p)),
                Frame::Ping(p) => self.send_frame(2, &p),
                Frame::Pong(_) => {}
                Frame::Other(t, p) => panic!("router sent frame type {t}: {p:02x?}"),
                Frame::Closed => return None,
            }
        }
    }

    fn hello(&mut self, realm: &str) -> Value {
        self.send_msg(&json!([HELLO, realm, {"roles": {"caller": {}, "callee": {}, "publisher": {}, "subscriber": {}}}]));
        self.recv_msg().expect("reply to HELLO")
    }

    fn join(&mut self) {
        let w = self.hello("realm1");
        assert_eq!(w[0], json!(WELCOME), "{w}");
    }

    /// Everything the router sends until it closes the transport, up to `limit` messages.
    fn drain_until_closed_allowing(&mut self, limit: usize) -> Vec<Value> {
        let mut msgs = vec![];
        while let Some(m) = self.recv_msg() {
            msgs.push(m);
            assert!(msgs.len() <= limit, "router keeps talking instead of closing");
        }
        msgs
    }

    /// Everything the router sends until it closes the transport.
    fn drain_until_closed(&mut self) -> Vec<Value> {
        let mut msgs = vec![];
        while let Some(m) = self.recv_msg() {
            msgs.push(m);
            assert!(msgs.len() < 100, "router keeps talking instead of closing: {msgs:?}");
        }
        msgs
    }

    /// The router must send ABORT wamp.error.protocol_violation (as its last
    /// message) and then close the transport.
    fn expect_protocol_violation(&mut self) {
        let msgs = self.drain_until_closed();
        let last = msgs.last().unwrap_or_else(|| panic!("router closed without ABORT"));
        assert_eq!(last[0], json!(ABORT), "expected ABORT, got {msgs:?}");
        assert!(last[1].is_object(), "{last}");
        assert_eq!(last[2], json!("wamp.error.protocol_violation"), "{last}");
    }

    /// Read raw bytes until EOF (router closed); returns what was read.
    fn read_to_close(&mut self) -> Vec<u8> {
        let mut all = vec![];
        let mut buf = [0u8; 4096];
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => return all,
                Ok(n) => {
                    all.extend_from_slice(&buf[..n]);
                    assert!(all.len() < 1 << 20, "router keeps sending instead of closing");
                }
                Err(e) if is_closed_error(&e) => return all,
                Err(e) if is_timeout(&e) => {
                    panic!("router did not close the connection within {IO_TIMEOUT:?}")
                }
                Err(e) => panic!("read: {e}"),
            }
        }
    }
}

// ---------------------------------------------------------------------------
// RawSocket handshake
// ---------------------------------------------------------------------------

#[test]
fn handshake_echoes_serializer_and_max_length_15() {
    let mut router = Router::start(&[]);
    for ser in [SER_JSON, SER_MSGPACK, SER_CBOR] {
        for client_exp in [9u8, 15] {
            let mut s = RawSocket::connect_tcp(router.rs(), ser, client_exp);
            let reply = s.read_handshake().expect("handshake reply");
            assert_eq!(reply, [0x7F, 0xF0 | ser, 0, 0], "serializer {ser}, client exp {client_exp}");
            let w = s.hello("realm1");
            assert_eq!(w[0], json!(WELCOME), "serializer {ser}: {w}");
            assert!(w[1].as_u64().is_some_and(|id| (1..=1u64 << 53).contains(&id)), "{w}");
            assert!(w[2]["roles"]["broker"].is_object(), "{w}");
            assert!(w[2]["roles"]["dealer"].is_object(), "{w}");
        }
    }
    router.assert_healthy();
}

#[test]
fn message_over_the_clients_maximum_closes_instead_of_hanging() {
    // A client accepting only 512-byte messages cannot receive the (larger) WELCOME:
    // the router must not send it (spec), and must not leave the client waiting.
    let mut router = Router::start(&[]);
    let mut s = RawSocket::connect_tcp(router.rs(), SER_JSON, 0);
    assert_eq!(s.read_handshake().expect("handshake reply"), [0x7F, 0xF0 | SER_JSON, 0, 0]);
    s.send_msg(&json!([HELLO, "realm1", {"roles": {"caller": {}}}]));
    assert!(s.drain_until_closed().is_empty(), "no message over 512 bytes may be sent");
    router.assert_healthy();
}

#[test]
fn unsupported_serializer_gets_error_reply() {
    let mut router = Router::start(&[]);
    for ser in [7u8, 15] {
        let mut s = RawSocket::connect_tcp(router.rs(), ser, 15);
        let reply = s.read_handshake().expect("handshake error reply");
        assert_eq!(reply, [0x7F, 0x10, 0, 0], "serializer id {ser}");
        let rest = s.read_to_close();
        assert!(rest.is_empty(), "bytes after handshake error: {rest:02x?}");
    }
    router.assert_healthy();
}

#[test]
fn bad_magic_byte_closes_connection() {
    let mut router = Router::start(&[]);
    for first in [[0x7Eu8, 0xF1, 0, 0], [0x00, 0x00, 0x00, 0x00], *b"GET "] {
        let mut s = RawSocket::raw_tcp(router.rs(), SER_JSON);
        s.write_lenient(&first);
        s.write_lenient(b"/ HTTP/1.1\r\nHost: x\r\n\r\n");
        let got = s.read_to_close();
        // no RawSocket handshake reply of any kind
        assert!(got.first() != Some(&0x7F), "router answered a non-RawSocket client: {got:02x?}");
    }
    router.assert_healthy();
}

#[test]
fn nonzero_reserved_handshake_bytes_are_refused() {
    let mut router = Router::start(&[]);
    let mut s = RawSocket::raw_tcp(router.rs(), SER_JSON);
    s.write_lenient(&[0x7F, 0xF1, 0x01, 0x00]);
    let got = s.read_to_close();
    // either close straight away or reply "use of reserved bits" (error 3) first
    assert!(got.is_empty() || got == [0x7F, 0x30, 0, 0], "reply to reserved bits: {got:02x?}");
    router.assert_healthy();
}

// ---------------------------------------------------------------------------
// protocol violations after the handshake
// ---------------------------------------------------------------------------

#[test]
fn undecodable_json_frame_before_hello() {
    let mut router = Router::start(&[]);
    let mut s = RawSocket::connect_tcp(router.rs(), SER_JSON, 15);
    s.expect_handshake_ok(SER_JSON);
    s.send_frame(0, b"\xff\xfe this is {[ not json");
    s.expect_protocol_violation();
    router.assert_healthy();
}

#[test]
fn undecodable_frames_in_session() {
    let mut router = Router::start(&[]);
    let garbage: [(u8, &[u8]); 3] = [
        (SER_JSON, b"[1, \"realm1\", {"),
        (SER_MSGPACK, b"\xc1\xc1\xc1\xc1"), // 0xc1 is never used in MessagePack
        (SER_CBOR, b"\xff\x1c\x1c"),        // stray break, reserved additional info
    ];
    for (ser, bytes) in garbage {
        let mut s = RawSocket::connect_tcp(router.rs(), ser, 15);
        s.expect_handshake_ok(ser);
        s.join();
        s.send_frame(0, bytes);
        s.expect_protocol_violation();
        router.assert_healthy();
    }
}

#[test]
fn well_formed_but_invalid_messages() {
    let mut router = Router::start(&[]);
    for bad in [
        json!({"not": "a list"}),
        json!([]),
        json!(["hello", "realm1", {}]),
        json!([CALL, "not an id", {}, "com.x"]),
    ] {
        let mut s = RawSocket::connect_tcp(router.rs(), SER_JSON, 15);
        s.expect_handshake_ok(SER_JSON);
        s.join();
        s.send_msg(&bad);
        s.expect_protocol_violation();
        router.assert_healthy();
    }
}

#[test]
fn garbage_frame_header_closes_connection() {
    let mut router = Router::start(&[]);
    let mut s = RawSocket::connect_tcp(router.rs(), SER_JSON, 15);
    s.expect_handshake_ok(SER_JSON);
    s.join();
    // reserved bits set and an unknown frame type (7)
    s.write_lenient(&[0xFF, 0x00, 0x00, 0x04, 1, 2, 3, 4]);
    let msgs = s.drain_until_closed();
    if let Some(last) = msgs.last() {
        assert_eq!(last[0], json!(ABORT), "{msgs:?}");
        assert_eq!(last[2], json!("wamp.error.protocol_violation"), "{msgs:?}");
    }
    router.assert_healthy();
}

#[test]
fn second_hello_aborts_session() {
    let mut router = Router::start(&[]);
    for ser in [SER_JSON, SER_MSGPACK, SER_CBOR] {
        let mut s = RawSocket::connect_tcp(router.rs(), ser, 15);
        s.expect_handshake_ok(ser);
        s.join();
        s.send_msg(&json!([HELLO, "realm1", {"roles": {"caller": {}}}]));
        s.expect_protocol_violation();
        router.assert_healthy();
    }
}

#[test]
fn call_before_hello_aborts() {
    let mut router = Router::start(&[]);
    for ser in [SER_JSON, SER_MSGPACK, SER_CBOR] {
        let mut s = RawSocket::connect_tcp(router.rs(), ser, 15);
        s.expect_handshake_ok(ser);
        s.send_msg(&json!([CALL, 1, {}, "com.example.proc", [1]]));
        s.expect_protocol_violation();
        router.assert_healthy();
    }
}

#[test]
fn yield_for_unknown_invocation_aborts() {
    let mut router = Router::start(&[]);
    let mut s = RawSocket::connect_tcp(router.rs(), SER_JSON, 15);
    s.expect_handshake_ok(SER_JSON);
    s.join();
    s.send_msg(&json!([YIELD, 123456789, {}, ["nobody asked"]]));
    s.expect_protocol_violation();
    router.assert_healthy();
}

#[test]
fn welcome_from_client_aborts() {
    let mut router = Router::start(&[]);
    let mut s = RawSocket::connect_tcp(router.rs(), SER_JSON, 15);
    s.expect_handshake_ok(SER_JSON);
    s.join();
    s.send_msg(&json!([WELCOME, 1, {}]));
    s.expect_protocol_violation();
    router.assert_healthy();
}

#[test]
fn violation_over_unix_socket() {
    let tmp = TempDir::new("unix");
    let sock = tmp.0.join("junction.sock");
    let sock_s = sock.to_str().unwrap().to_string();
    let mut router = Router::start_with(&["--unix", &sock_s], Some(tmp));
    assert_eq!(router.unix_path.as_ref(), Some(&sock), "stdout: {:?}", router.stdout_lines);

    let mut s = RawSocket::connect_unix(&sock, SER_JSON);
    s.expect_handshake_ok(SER_JSON);
    s.join();
    s.send_msg(&json!([HELLO, "realm1", {"roles": {"caller": {}}}]));
    s.expect_protocol_violation();

    // a fresh session over the same unix socket
    let mut s = RawSocket::connect_unix(&sock, SER_JSON);
    s.expect_handshake_ok(SER_JSON);
    s.join();
    s.send_msg(&json!([CALL, 5, {}, "com.example.unix.none", []]));
    let err = s.recv_msg().expect("ERROR");
    assert_eq!(err[0], json!(ERROR), "{err}");
    assert_eq!(err[4], json!("wamp.error.no_such_procedure"), "{err}");
    router.assert_healthy();
}

// ---------------------------------------------------------------------------
// PING / PONG and message size
// ---------------------------------------------------------------------------

#[test]
fn ping_is_answered_with_pong() {
    let mut router = Router::start(&[]);
    let mut s = RawSocket::connect_tcp(router.rs(), SER_JSON, 15);
    s.expect_handshake_ok(SER_JSON);
    // before HELLO, inside a session, empty and binary payloads
    let payloads: [&[u8]; 2] = [b"junction-ping-1", b""];
    for p in payloads {
        s.send_frame(1, p);
        match s.read_frame() {
            Frame::Pong(got) => assert_eq!(got, p),
            other => panic!("expected PONG, got {other:?}"),
        }
    }
    s.join();
    let big: Vec<u8> = (0..=255u8).cycle().take(4000).collect();
    s.send_frame(1, &big);
    match s.read_frame() {
        Frame::Pong(got) => assert_eq!(got, big),
        other => panic!("expected PONG, got {other:?}"),
    }
    // the session is unaffected
    s.send_msg(&json!([CALL, 9, {}, "com.example.after_ping", []]));
    let err = s.recv_msg().expect("ERROR");
    assert_eq!(err[4], json!("wamp.error.no_such_procedure"), "{err}");
    router.assert_healthy();
}

#[test]
fn message_over_negotiated_max_length_closes() {
    let max: usize = 65536;
    let max_s = max.to_string();
    let mut router = Router::start(&["--max-message-size", &max_s]);
    let mut s = RawSocket::connect_tcp(router.rs(), SER_JSON, 15);
    let exp = s.expect_handshake_ok(SER_JSON);
    let announced = 1usize << (9 + exp as usize);
    assert!(announced <= max, "router announced {announced} bytes but accepts at most {max}");
    s.join();

    // just under the limit is fine
    let filler = "x".repeat(announced - 200);
    s.send_msg(&json!([CALL, 1, {}, "com.example.big", [filler]]));
    let err = s.recv_msg().expect("ERROR for a message under the limit");
    assert_eq!(err[4], json!("wamp.error.no_such_procedure"), "{err}");

    // over the limit: the router fails the connection (possibly ABORT first)
    let filler = "x".repeat(announced + 100);
    let data = serde_json::to_vec(&json!([CALL, 2, {}, "com.example.big", [filler]])).unwrap();
    assert!(data.len() > announced);
    let len = data.len() as u32;
    let mut frame = vec![0u8, (len >> 16) as u8, (len >> 8) as u8, len as u8];
    frame.extend_from_slice(&data);
    s.write_lenient(&frame);
    let msgs = s.drain_until_closed();
    for m in &msgs {
        assert_eq!(m[0], json!(ABORT), "router processed an oversized message: {msgs:?}");
    }
    router.assert_healthy();
}

// ---------------------------------------------------------------------------
// WebSocket
// ---------------------------------------------------------------------------

mod websocket {
    use super::*;
    use futures_util::{SinkExt, StreamExt};
    use tokio::time::timeout;
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;

    fn request(
        router: &Router,
        protocol: Option<&str>,
    ) -> tokio_tungstenite::tungstenite::handshake::client::Request {
        let mut req = router.ws_url.clone().unwrap().into_client_request().unwrap();
        if let Some(p) = protocol {
            req.headers_mut().insert("Sec-WebSocket-Protocol", p.parse().unwrap());
        }
        req
    }

    #[tokio::test]
    async fn json_subprotocol_hello_welcome() {
        let mut router = Router::start(&[]);
        let (mut ws, resp) =
            timeout(IO_TIMEOUT, tokio_tungstenite::connect_async(request(&router, Some("wamp.2.json"))))
                .await
                .expect("connect timeout")
                .expect("websocket handshake");
        assert_eq!(
            resp.headers().get("sec-websocket-protocol").map(|v| v.to_str().unwrap()),
            Some("wamp.2.json")
        );
        let hello = json!([HELLO, "realm1", {"roles": {"caller": {}}}]);
        ws.send(Message::text(hello.to_string())).await.unwrap();
        let msg = timeout(IO_TIMEOUT, ws.next()).await.expect("WELCOME timeout").expect("stream").unwrap();
        let Message::Text(text) = msg else { panic!("JSON must come as a text message: {msg:?}") };
        let welcome: Value = serde_json::from_str(text.as_str()).unwrap();
        assert_eq!(welcome[0], json!(WELCOME), "{welcome}");
        assert!(welcome[2]["roles"]["dealer"].is_object(), "{welcome}");

        // garbage text frame -> ABORT protocol_violation, then close
        ws.send(Message::text("this is not json")).await.unwrap();
        let mut got_abort = false;
        loop {
            match timeout(IO_TIMEOUT, ws.next()).await.expect("router neither answered nor closed") {
                Some(Ok(Message::Text(t))) => {
                    let v: Value = serde_json::from_str(t.as_str()).unwrap();
                    assert_eq!(v[0], json!(ABORT), "{v}");
                    assert_eq!(v[2], json!("wamp.error.protocol_violation"), "{v}");
                    got_abort = true;
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(other)) => panic!("unexpected {other:?}"),
            }
        }
        assert!(got_abort, "no ABORT before close");
        router.assert_healthy();
    }

    #[tokio::test]
    async fn msgpack_subprotocol_preferred_order() {
        let mut router = Router::start(&[]);
        let (mut ws, resp) = timeout(
            IO_TIMEOUT,
            tokio_tungstenite::connect_async(request(&router, Some("wamp.2.bogus, wamp.2.msgpack"))),
        )
        .await
        .unwrap()
        .expect("websocket handshake");
        assert_eq!(
            resp.headers().get("sec-websocket-protocol").map(|v| v.to_str().unwrap()),
            Some("wamp.2.msgpack")
        );
        let hello = rmp_serde::to_vec(&json!([HELLO, "realm1", {"roles": {"caller": {}}}])).unwrap();
        ws.send(Message::binary(hello)).await.unwrap();
        let msg = timeout(IO_TIMEOUT, ws.next()).await.unwrap().unwrap().unwrap();
        let Message::Binary(bin) = msg else { panic!("msgpack must come as a binary message: {msg:?}") };
        let welcome: Value = rmp_serde::from_slice(&bin).unwrap();
        assert_eq!(welcome[0], json!(WELCOME), "{welcome}");
        router.assert_healthy();
    }

    /// Raw HTTP upgrade so that the verdict is the server's, not the client library's.
    fn upgrade_status(router: &Router, path: &str, protocol: Option<&str>) -> (String, Vec<u8>) {
        let (hostport, _) = router.ws_host_port();
        let mut s = RawSocket::raw_tcp(hostport.parse().unwrap(), SER_JSON);
        let proto = protocol.map(|p| format!("Sec-WebSocket-Protocol: {p}\r\n")).unwrap_or_default();
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: {hostport}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{proto}\r\n"
        );
        s.write_all(req.as_bytes());
        // read the status line + headers
        let mut head = vec![];
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            match s.stream.read(&mut byte) {
                Ok(0) => break,
                Ok(_) => head.push(byte[0]),
                Err(e) if is_closed_error(&e) => break,
                Err(e) => panic!("reading upgrade response: {e}"),
            }
        }
        let text = String::from_utf8_lossy(&head).to_string();
        let status = text.lines().next().unwrap_or("").to_string();
        if status.contains(" 101 ") {
            // accepted at the HTTP level: say HELLO and see what comes back
            let hello = json!([HELLO, "realm1", {"roles": {"caller": {}}}]).to_string();
            let mut frame = vec![0x81u8, 0x80 | hello.len() as u8, 1, 2, 3, 4];
            frame.extend(hello.bytes().enumerate().map(|(i, b)| b ^ [1, 2, 3, 4][i % 4]));
            s.write_lenient(&frame);
            // first frame back (server frames are unmasked), or nothing if closed
            return match read_ws_frame(&mut s) {
                Some((opcode, payload)) if opcode == 0x1 || opcode == 0x2 => (status, payload),
                _ => (status, vec![]),
            };
        }
        (status, vec![])
    }

    /// One WebSocket frame from the server: (opcode, payload), or None on close.
    fn read_ws_frame(s: &mut RawSocket) -> Option<(u8, Vec<u8>)> {
        let mut read = |n: usize| -> Option<Vec<u8>> {
            let mut buf = vec![0u8; n];
            match s.stream.read_exact(&mut buf) {
                Ok(()) => Some(buf),
                Err(e) if is_closed_error(&e) => None,
                Err(e) => panic!("reading a websocket frame: {e}"),
            }
        };
        let h = read(2)?;
        let opcode = h[0] & 0x0F;
        let len = match h[1] & 0x7F {
            126 => u16::from_be_bytes(read(2)?.try_into().unwrap()) as usize,
            127 => u64::from_be_bytes(read(8)?.try_into().unwrap()) as usize,
            n => n as usize,
        };
        let payload = read(len)?;
        Some((opcode, payload))
    }

    #[test]
    fn missing_or_unknown_subprotocol_is_rejected() {
        let mut router = Router::start(&[]);
        let (_, path) = router.ws_host_port();
        for proto in [None, Some("wamp.2.bogus"), Some("mqtt")] {
            let (status, after) = upgrade_status(&router, &path, proto);
            if status.contains(" 101 ") {
                // accepted the upgrade: then it must close without a WELCOME
                assert!(
                    after.is_empty(),
                    "router answered HELLO without a WAMP subprotocol ({proto:?}): {after:?}"
                );
            } else {
                assert!(status.starts_with("HTTP/1.1 4"), "unexpected status {status:?} for {proto:?}");
            }
        }
        let (status, reply) = upgrade_status(&router, &path, Some("wamp.2.json"));
        assert!(status.contains(" 101 "), "a valid upgrade was refused: {status:?}");
        let welcome: Value = serde_json::from_slice(&reply).expect("WELCOME over the hand-made upgrade");
        assert_eq!(welcome[0], json!(WELCOME), "{welcome}");
        router.assert_healthy();
    }

    #[test]
    fn wrong_path_is_not_upgraded() {
        let mut router = Router::start(&[]);
        let (status, _) = upgrade_status(&router, "/not-the-wamp-path", Some("wamp.2.json"));
        assert!(!status.contains(" 101 "), "upgrade on a wrong path: {status:?}");
        router.assert_healthy();
    }
}

/// Resident memory of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmRSS")
}

#[test]
fn slow_consumer_is_disconnected_and_memory_stays_bounded() {
    // A subscriber that stops reading while 40 MB of events are published: its
    // outbound queue (64 frames / 64 KiB here) overflows, it gets ABORT
    // junction.error.slow_consumer, and the router's memory does not grow with the flood.
    let tmp = TempDir::new("slow");
    let cfg = tmp.0.join("slow.toml");
    std::fs::write(&cfg, "[limits]\noutbox_frames = 64\noutbox_bytes = 65536\nmax_message_size = 4096\n")
        .expect("write config");
    let cfg_arg = cfg.to_string_lossy().to_string();
    let mut router = Router::start_with(&["--config", &cfg_arg, "--admin", ""], Some(tmp));
    let pid = router.child.as_ref().map(|c| c.id()).expect("router pid");
    let mut sub = RawSocket::connect_tcp(router.rs(), SER_JSON, 15);
    sub.read_handshake().expect("handshake");
    sub.join();
    sub.send_msg(&json!([32, 1, {}, "com.flood"]));
    assert_eq!(sub.recv_msg().expect("SUBSCRIBED")[0], json!(33));
    let mut publisher = RawSocket::connect_tcp(router.rs(), SER_JSON, 15);
    publisher.read_handshake().expect("handshake");
    publisher.join();
    let before = rss_kib(pid);
    let chunk = "x".repeat(1000);
    for i in 1..=40_000u64 {
        publisher.send_msg(&json!([16, i, {}, "com.flood", [chunk]]));
    }
    publisher.send_msg(&json!([16, 40_001, {"acknowledge": true}, "com.flood", []]));
    assert_eq!(publisher.recv_msg().expect("PUBLISHED")[0], json!(17), "the publisher is still served");
    let grown = rss_kib(pid).saturating_sub(before);
    assert!(grown < 20 * 1024, "router RSS grew by {grown} KiB during a 40 MB flood");
    let msgs = sub.drain_until_closed_allowing(50_000);
    let last = msgs.last().expect("something before the close");
    assert_eq!(last[0], json!(ABORT), "last message: {last}");
    assert_eq!(last[2], json!("junction.error.slow_consumer"), "{last}");
    assert!(msgs.len() < 40_000, "the slow subscriber got everything ({}): no overflow happened", msgs.len());
    router.assert_healthy();
}

/// Peak resident memory of a process so far, in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmHWM")
}

#[test]
fn msgpack_nils_frame_before_hello_is_refused_on_its_header() {
    // The security review's attack: one 16 MiB RawSocket frame before HELLO holding a
    // MessagePack array of 16 million nils (it once raised the router's peak memory by
    // some 530 MiB). Its header exceeds limits.max_message_size_before_welcome (64 KiB):
    // the router refuses it without reading the body, and its memory barely moves.
    let mut router = Router::start(&[]);
    let pid = router.child.as_ref().map(|c| c.id()).expect("router pid");
    let mut s = RawSocket::connect_tcp(router.rs(), SER_MSGPACK, 15);
    s.expect_handshake_ok(SER_MSGPACK);
    let before = rss_kib(pid);
    let len = (1usize << 24) - 1;
    let mut frame = vec![0, 0xff, 0xff, 0xff, 0xdd];
    frame.extend_from_slice(&((len - 5) as u32).to_be_bytes());
    frame.resize(4 + len, 0xc0);
    s.write_lenient(&frame);
    let msgs = s.drain_until_closed();
    for m in &msgs {
        assert_eq!(m[0], json!(ABORT), "the router processed the frame: {msgs:?}");
    }
    let grown = peak_rss_kib(pid).saturating_sub(before);
    assert!(grown < 8 * 1024, "router peak memory grew by {grown} KiB");
    router.assert_healthy();
}
