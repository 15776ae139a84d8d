//! The `http` scenario: the HTTP bridge under load. C clients, each on its own
//! keep-alive HTTP/1.1 connection with one request at a time, POST calls (to an echo
//! callee registered over WebSocket, on `--callee-url` or `--url`) or publications
//! (to a topic one WebSocket subscriber drains) to `--bridge`; reports requests/s,
//! latency and requests per router CPU-second, for comparison with `rpc` and
//! `pubsub` at the same concurrency.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use junction::ids::RequestId;
use junction::wamp::codec::Serializer;
use junction::wamp::message::{Message, Register, Subscribe};
use junction::wamp::value::Dict;
use tokio::sync::watch;

use crate::cli::{HttpArgs, HttpKind};
use crate::client::Endpoint;
use crate::error::{BenchError, Result};
use crate::proc::Pids;
use crate::report::Report;
use crate::rpc::{Echo, echo_loop, join_many, payload_string, run_id};
use crate::stats::{self, Control, new_hist};

/// What one client measured.
struct ClientResult {
    count: u64,
    errors: u64,
    hist: hdrhistogram::Histogram<u64>,
}

/// `http://host:port/path` → (host:port, path without a trailing slash).
fn split(url: &str) -> Result<(String, String)> {
    let rest =
        url.strip_prefix("http://").ok_or_else(|| BenchError::msg("--bridge must be an http:// URL"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
        None => (rest, ""),
    };
    Ok((authority.to_owned(), path.to_owned()))
}

/// One client: a keep-alive connection posting `body` to `path` until the run ends.
async fn client(
    authority: String,
    path: String,
    auth: Option<String>,
    body: Bytes,
    ctl: Arc<Control>,
) -> Result<ClientResult> {
    let stream = tokio::net::TcpStream::connect(&authority).await?;
    stream.set_nodelay(true).ok();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| BenchError::msg(format!("HTTP handshake: {e}")))?;
    let driver = tokio::spawn(conn);
    let mut res = ClientResult { count: 0, errors: 0, hist: new_hist() };
    while !ctl.draining() {
        let mut req = hyper::Request::post(path.as_str())
            .header(hyper::header::HOST, authority.as_str())
            .header(hyper::header::CONTENT_TYPE, "application/json");
        if let Some(a) = &auth {
            req = req.header(hyper::header::AUTHORIZATION, a.as_str());
        }
        let req = req.body(Full::new(body.clone())).map_err(|e| BenchError::msg(e.to_string()))?;
        let t = Instant::now();
        sender.ready().await.map_err(|e| BenchError::msg(format!("HTTP connection: {e}")))?;
        let answer =
            sender.send_request(req).await.map_err(|e| BenchError::msg(format!("HTTP request: {e}")))?;
        let ok = answer.status().is_success();
        answer.into_body().collect().await.map_err(|e| BenchError::msg(format!("HTTP body: {e}")))?;
        if !ok {
            res.errors += 1;
            continue;
        }
        if ctl.measuring() {
            res.hist.record(t.elapsed().as_nanos() as u64).ok();
            res.count += 1;
            ctl.measured.fetch_add(1, Ordering::Relaxed);
        }
    }
    driver.abort();
    Ok(res)
}

/// Runs the scenario.
pub async fn run(args: HttpArgs) -> Result<Report> {
    let c = &args.common;
    let ep = Endpoint::parse(&c.url)?;
    let ser: Serializer = c.serializer.into();
    let (authority, base) = split(&args.bridge)?;
    let uri = format!("bench.http.{}", run_id());
    let payload = payload_string(args.payload);
    let (done_tx, done_rx) = watch::channel(false);
    let wamp_ep = match &args.callee_url {
        Some(url) => Endpoint::parse(url)?,
        None => ep.clone(),
    };
    let mut conn =
        join_many(&wamp_ep, ser, &c.realm, 1).await?.pop().ok_or_else(|| BenchError::msg("no session"))?;
    let (path, body) = match args.kind {
        HttpKind::Call => {
            let reg = Message::Register(Register {
                request: RequestId(1),
                options: Dict::new(),
                procedure: uri.clone(),
            });
            match conn.request(&reg, RequestId(1)).await? {
                Message::Registered(_) => {}
                other => return Err(BenchError::msg(format!("REGISTER answered {other:?}"))),
            }
            let body = serde_json::json!({ "procedure": uri, "args": [payload] });
            (format!("{base}/call"), body)
        }
        HttpKind::Publish => {
            let sub = Message::Subscribe(Subscribe {
                request: RequestId(1),
                options: Dict::new(),
                topic: uri.clone(),
            });
            match conn.request(&sub, RequestId(1)).await? {
                Message::Subscribed(_) => {}
                other => return Err(BenchError::msg(format!("SUBSCRIBE answered {other:?}"))),
            }
            let body =
                serde_json::json!({ "topic": uri, "args": [payload], "options": { "acknowledge": true } });
            (format!("{base}/publish"), body)
        }
    };
    // the subscriber drains its events the way the callee answers its invocations
    let wamp = tokio::spawn(echo_loop(conn, done_rx, Echo::Wamp));
    let body = Bytes::from(serde_json::to_vec(&body).map_err(|e| BenchError::msg(e.to_string()))?);
    let ctl = Control::new();
    let handles: Vec<_> = (0..args.connections.max(1))
        .map(|_| {
            tokio::spawn(client(
                authority.clone(),
                path.clone(),
                args.auth.clone(),
                body.clone(),
                ctl.clone(),
            ))
        })
        .collect();
    let pids = Pids(c.router_pid.clone());
    let window = stats::run_window(&ctl, c.warmup, c.duration, &pids, "requests", c.quiet).await;
    let mut hist = new_hist();
    let (mut count, mut errors) = (0, 0);
    for h in handles {
        let r = h.await.map_err(|e| BenchError::msg(e.to_string()))??;
        hist.add(&r.hist).ok();
        count += r.count;
        errors += r.errors;
    }
    done_tx.send_replace(true);
    wamp.await.ok();
    let kind = match args.kind {
        HttpKind::Call => "call",
        HttpKind::Publish => "publish",
    };
    let mut r = Report::new("http", c, &ep, format!("http-{kind}-c{}", args.connections));
    r.set("kind", kind);
    r.set("connections", args.connections);
    r.set("payload", args.payload);
    r.set("bridge", args.bridge.clone());
    r.window(&window, count, "requests");
    r.set("latency_us", stats::latency_json(&hist));
    r.set("errors", errors);
    Ok(r)
}
