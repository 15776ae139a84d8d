//! Shared helpers of the `ops_*` integration tests: start the `junction` binary
//! (addresses read from its stdout), plain HTTP/1.1 requests to the admin port (with
//! or without its bearer token), and a minimal WAMP-over-WebSocket JSON client.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

pub const READY_TIMEOUT: Duration = Duration::from_secs(30);
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);

pub const HELLO: u64 = 1;
pub const WELCOME: u64 = 2;
pub const GOODBYE: u64 = 6;
pub const CALL: u64 = 48;
pub const RESULT: u64 = 50;
pub const REGISTER: u64 = 64;
pub const REGISTERED: u64 = 65;
pub const INVOCATION: u64 = 68;
pub const YIELD: u64 = 70;
pub const ERROR: u64 = 8;
pub const PUBLISH: u64 = 16;
pub const PUBLISHED: u64 = 17;
pub const SUBSCRIBE: u64 = 32;
pub const SUBSCRIBED: u64 = 33;
pub const EVENT: u64 = 36;

/// The admin token the tests give the router (`JUNCTION_ADMIN_TOKEN`).
pub const ADMIN_TOKEN: &str = "ops-test-admin-token-4f1d9a";
/// `Authorization` header value carrying [`ADMIN_TOKEN`].
pub const BEARER: &str = "Bearer ops-test-admin-token-4f1d9a";

/// A running `junction` process; killed on drop.
pub struct Node {
    child: Child,
    pub admin: Option<SocketAddr>,
    pub ws_url: Option<String>,
    pub stderr_path: PathBuf,
    pub stdout: Vec<String>,
}

/// A directory under the target dir for one test's files.
pub fn test_dir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ops").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("test dir");
    dir
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port()
}

impl Node {
    /// Starts `junction ARGS` with extra environment variables; returns once it
    /// printed `ready`. Its stderr goes to `dir/stderr-<tag>.log`.
    pub fn start(dir: &std::path::Path, tag: &str, args: &[&str], envs: &[(&str, &str)]) -> Node {
        let stderr_path = dir.join(format!("stderr-{tag}.log"));
        let log = std::fs::File::create(&stderr_path).expect("log file");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_junction"));
        cmd.args(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(log);
        for var in [
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
            "JUNCTION_ADMIN",
            "JUNCTION_ADMIN_TOKEN",
            "JUNCTION_ADMIN_TOKEN_FILE",
            "JUNCTION_CONFIG",
            "RUST_LOG",
            "OTEL_RESOURCE_ATTRIBUTES",
            "OTEL_SERVICE_NAME",
        ] {
            cmd.env_remove(var);
        }
        cmd.envs(envs.iter().copied());
        let mut child = cmd.spawn().expect("spawn junction");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });
        let mut node = Node { child, admin: None, ws_url: None, stderr_path, stdout: Vec::new() };
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match rx.recv_timeout(left) {
                Ok(l) => l,
                Err(e) => panic!(
                    "junction not ready ({e:?}); stdout {:?}; stderr:\n{}",
                    node.stdout,
                    node.stderr_tail()
                ),
            };
            node.stdout.push(line.clone());
            let parts: Vec<&str> = line.split_whitespace().collect();
            match parts.as_slice() {
                ["ready"] => break,
                ["listening", "admin", url, ..] => {
                    let addr = url.strip_prefix("http://").expect("http:// url");
                    node.admin = Some(addr.parse().expect("admin address"));
                }
                ["listening", "websocket", url, ..] => node.ws_url = Some(url.to_string()),
                _ => {}
            }
        }
        node
    }

    /// The admin address.
    pub fn admin(&self) -> SocketAddr {
        self.admin.expect("the node has an admin listener")
    }

    /// The WebSocket URL.
    pub fn ws(&self) -> &str {
        self.ws_url.as_deref().expect("the node has a WebSocket listener")
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM.
    pub fn sigterm(&self) {
        let status = Command::new("kill").arg("-TERM").arg(self.pid().to_string()).status().expect("kill");
        assert!(status.success());
    }

    /// Waits for the process to exit; `None` on timeout.
    pub fn wait(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(s)) = self.child.try_wait() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// The end of the node's stderr.
    pub fn stderr_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.stderr_path).unwrap_or_default();
        let start = text.len().saturating_sub(6000);
        let start = (start..text.len()).find(|i| text.is_char_boundary(*i)).unwrap_or(text.len());
        text[start..].to_string()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    /// A header's value (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// One HTTP/1.1 request (blocking), `Connection: close`. `Host` is `addr` and a
/// body is `Content-Type: application/json` unless `headers` say otherwise.
pub fn http(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Response {
    let mut s = TcpStream::connect_timeout(&addr, IO_TIMEOUT).expect("connect to admin");
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let has = |name: &str| headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(name));
    let mut req = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
    if !has("host") {
        req.push_str(&format!("Host: {addr}\r\n"));
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() && !has("content-type") {
        req.push_str("Content-Type: application/json\r\n");
    }
    if !body.is_empty() || method == "POST" {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).expect("send request");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read response");
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, rest) = text.split_once("\r\n\r\n").expect("HTTP head");
    let mut lines = head.split("\r\n");
    let status: u16 =
        lines.next().and_then(|l| l.split_whitespace().nth(1)).and_then(|c| c.parse().ok()).expect("status");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let chunked =
        headers.iter().any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    let body = if chunked { dechunk(rest) } else { rest.to_string() };
    Response { status, headers, body }
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// `GET path` without credentials.
pub fn get(addr: SocketAddr, path: &str) -> Response {
    http(addr, "GET", path, &[], "")
}

/// `GET path` with the admin token.
pub fn get_authed(addr: SocketAddr, path: &str) -> Response {
    http(addr, "GET", path, &[("Authorization", BEARER)], "")
}

/// `POST path` with the admin token and a JSON body.
pub fn post_authed(addr: SocketAddr, path: &str, json: &str) -> Response {
    http(addr, "POST", path, &[("Authorization", BEARER)], json)
}

/// Polls `GET path` (without credentials) until `ok(response)` holds; panics after `timeout`.
pub fn poll(addr: SocketAddr, path: &str, timeout: Duration, ok: impl Fn(&Response) -> bool) -> Response {
    poll_with(addr, path, &[], timeout, ok)
}

/// Polls `GET path` with the admin token until `ok(response)` holds.
pub fn poll_authed(
    addr: SocketAddr,
    path: &str,
    timeout: Duration,
    ok: impl Fn(&Response) -> bool,
) -> Response {
    poll_with(addr, path, &[("Authorization", BEARER)], timeout, ok)
}

fn poll_with(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    timeout: Duration,
    ok: impl Fn(&Response) -> bool,
) -> Response {
    let deadline = Instant::now() + timeout;
    loop {
        let r = http(addr, "GET", path, headers, "");
        if ok(&r) {
            return r;
        }
        if Instant::now() > deadline {
            panic!("GET {path} never matched; last answer {} {}", r.status, r.body);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A WAMP client speaking `wamp.2.json`.
pub struct Wamp {
    ws: Ws,
    next_request: u64,
    /// This session's id.
    pub session: u64,
}

impl Wamp {
    /// Connects and joins `realm` with the caller, callee, publisher and subscriber roles.
    pub async fn join(url: &str, realm: &str) -> Wamp {
        match Wamp::try_join(url, realm).await {
            Ok(w) => w,
            Err(reply) => panic!("expected WELCOME, got {reply}"),
        }
    }

    /// Connects and says HELLO to `realm`: the session, or the reply that was not
    /// a WELCOME (an ABORT).
    pub async fn try_join(url: &str, realm: &str) -> Result<Wamp, Value> {
        let mut req = url.into_client_request().expect("ws request");
        req.headers_mut().insert("Sec-WebSocket-Protocol", HeaderValue::from_static("wamp.2.json"));
        let (ws, _) = tokio::time::timeout(IO_TIMEOUT, tokio_tungstenite::connect_async(req))
            .await
            .expect("connect timeout")
            .expect("WebSocket connect");
        let mut w = Wamp { ws, next_request: 1, session: 0 };
        w.send(
            json!([HELLO, realm, {"roles": {"caller": {}, "callee": {}, "publisher": {}, "subscriber": {}}}]),
        )
        .await;
        let welcome = w.recv().await;
        if welcome[0] != WELCOME {
            return Err(welcome);
        }
        w.session = welcome[1].as_u64().expect("session id");
        Ok(w)
    }

    /// Sends one message.
    pub async fn send(&mut self, msg: Value) {
        self.ws.send(WsMessage::text(msg.to_string())).await.expect("ws send");
    }

    /// Receives the next WAMP message (panics on timeout or close).
    pub async fn recv(&mut self) -> Value {
        self.try_recv(IO_TIMEOUT).await.expect("connection closed or timed out")
    }

    /// The next WAMP message, `None` when the connection closed or `timeout` passed.
    pub async fn try_recv(&mut self, timeout: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let msg = tokio::time::timeout_at(deadline, self.ws.next()).await.ok()??.ok()?;
            match msg {
                WsMessage::Text(t) => return serde_json::from_str(t.as_str()).ok(),
                WsMessage::Binary(b) => return serde_json::from_slice(&b).ok(),
                WsMessage::Close(_) => return None,
                _ => continue,
            }
        }
    }

    /// A fresh request id.
    pub fn request(&mut self) -> u64 {
        self.next_request += 1;
        self.next_request
    }

    /// Registers `procedure`; returns the registration id.
    pub async fn register(&mut self, procedure: &str) -> u64 {
        let req = self.request();
        self.send(json!([REGISTER, req, {}, procedure])).await;
        let reply = self.recv().await;
        assert_eq!(reply[0], REGISTERED, "expected REGISTERED, got {reply}");
        reply[2].as_u64().expect("registration id")
    }

    /// Subscribes to `topic`; returns the subscription id.
    pub async fn subscribe(&mut self, topic: &str) -> u64 {
        let req = self.request();
        self.send(json!([SUBSCRIBE, req, {}, topic])).await;
        let reply = self.recv().await;
        assert_eq!(reply[0], SUBSCRIBED, "expected SUBSCRIBED, got {reply}");
        reply[2].as_u64().expect("subscription id")
    }

    /// Publishes to `topic` with `options` (add `acknowledge` to wait for PUBLISHED).
    pub async fn publish(&mut self, topic: &str, options: Value, args: Value) {
        let req = self.request();
        self.send(json!([PUBLISH, req, options, topic, args])).await;
    }

    /// Calls `procedure` with `options`; returns the RESULT (or ERROR) message.
    pub async fn call(&mut self, procedure: &str, options: Value, args: Value) -> Value {
        let req = self.request();
        self.send(json!([CALL, req, options, procedure, args])).await;
        self.recv().await
    }

    /// Serves invocations of one registration by returning the sum of the
    /// arguments, forever; sends each INVOCATION's details to `seen`.
    pub async fn serve_sum(mut self, seen: tokio::sync::mpsc::UnboundedSender<Value>) {
        while let Some(msg) = self.try_recv(Duration::from_secs(3600)).await {
            if msg[0] != INVOCATION {
                continue;
            }
            let sum: i64 = msg[4].as_array().map(|a| a.iter().filter_map(Value::as_i64).sum()).unwrap_or(0);
            let _ = seen.send(msg[3].clone());
            self.send(json!([YIELD, msg[1], {}, [sum]])).await;
        }
    }
}
