//! The raw relay: the transport's own ceiling. The server pairs two connections and
//! forwards frames between them without parsing them, on the same tokio +
//! tokio-tungstenite stack as the router (WebSocket paired by URL path; plain TCP
//! paired by an 8-byte key and copied byte for byte, RawSocket framing included).
//! The `relay` scenario sends the very CALL frames of the `rpc` scenario from A, B
//! echoes them, and A measures the round trip: two passes through the relay per
//! request, as an RPC makes two passes through a router. A relay started with
//! `--forward` passes each WebSocket connection on to another relay instead of
//! pairing it: A on the forwarding relay and B (`relay --echo-url`) on the other
//! cross two relay processes each way, the shape of a call whose callee is on
//! another node, with no routing work in either: what a second process costs per
//! request when it only moves messages (a reference for throughput across nodes; at
//! depth 1 the relay's own latency is above the router's).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{FutureExt, SinkExt, StreamExt};
use junction::ids::RequestId;
use junction::wamp::codec::Serializer;
use junction::wamp::message::Message;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::http::HeaderValue;

use crate::cli::{RelayArgs, RelayServerArgs};
use crate::client::{Conn, ConnectOpts, Endpoint};
use crate::error::{BenchError, Result};
use crate::proc::Pids;
use crate::report::Report;
use crate::rpc::{CallPlan, Echo, echo_loop, merge_callers, run_id, spawn_callers};
use crate::stats::{self, Control};

/// How long a connection waits for its partner.
const PAIR_TIMEOUT: Duration = Duration::from_secs(30);
/// Most frames forwarded per flush.
const BATCH: usize = 256;

/// Connections waiting for their partner, by pairing key.
type Waiting<T> = Arc<Mutex<HashMap<String, oneshot::Sender<T>>>>;

/// Pairs `conn` with the other connection of the same key: the first one waits and
/// gets the second; the second hands itself over and returns `None`.
async fn pair<T>(waiting: &Waiting<T>, key: String, conn: T) -> Option<(T, T)> {
    let (tx, rx) = oneshot::channel();
    let partner = {
        let mut w = waiting.lock().ok()?;
        match w.remove(&key) {
            Some(partner) => Some(partner),
            None => {
                w.insert(key.clone(), tx);
                None
            }
        }
    };
    if let Some(partner) = partner {
        partner.send(conn).ok();
        return None;
    }
    match tokio::time::timeout(PAIR_TIMEOUT, rx).await {
        Ok(Ok(other)) => Some((conn, other)),
        _ => {
            if let Ok(mut w) = waiting.lock() {
                w.remove(&key);
            }
            None
        }
    }
}

/// Runs the relay server until the process is killed.
pub async fn serve(args: RelayServerArgs) -> Result<()> {
    if !args.ws.is_empty() {
        let l = TcpListener::bind(&args.ws).await?;
        println!("listening websocket ws://{}/", l.local_addr()?);
        tokio::spawn(accept_ws(l, args.forward.clone()));
    }
    if !args.rawsocket.is_empty() {
        let l = TcpListener::bind(&args.rawsocket).await?;
        println!("listening rawsocket tcp://{}", l.local_addr()?);
        tokio::spawn(accept_tcp(l));
    }
    println!("ready");
    std::future::pending::<()>().await;
    Ok(())
}

async fn accept_ws(l: TcpListener, forward_to: Option<String>) {
    let waiting: Waiting<WebSocketStream<TcpStream>> = Arc::default();
    loop {
        let Ok((stream, _)) = l.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        stream.set_nodelay(true).ok();
        let waiting = waiting.clone();
        let forward_to = forward_to.clone();
        tokio::spawn(async move {
            let mut key = String::new();
            let mut protocol = None;
            #[allow(clippy::result_large_err)] // the error type is tungstenite's HTTP response
            let callback = |req: &Request, mut resp: Response| {
                key = req.uri().path().to_owned();
                protocol = req.headers().get("sec-websocket-protocol").cloned();
                let proto = protocol.as_ref().and_then(|v| v.to_str().ok());
                if let Some(first) = proto.and_then(|p| p.split(',').next())
                    && let Ok(v) = HeaderValue::from_str(first.trim())
                {
                    resp.headers_mut().insert("sec-websocket-protocol", v);
                }
                Ok(resp)
            };
            let Ok(ws) = tokio_tungstenite::accept_hdr_async(stream, callback).await else { return };
            if let Some(to) = &forward_to {
                match connect_onward(to, &key, protocol).await {
                    Ok(onward) => bridge(ws, onward).await,
                    Err(e) => eprintln!("relay: forwarding to {to}{key}: {e}"),
                }
            } else if let Some((a, b)) = pair(&waiting, key, ws).await {
                bridge(a, b).await;
            }
        });
    }
}

/// Copies messages between `a` and `b`, both ways, until either side ends.
async fn bridge(a: WebSocketStream<TcpStream>, b: WebSocketStream<TcpStream>) {
    let (a_tx, a_rx) = a.split();
    let (b_tx, b_rx) = b.split();
    tokio::spawn(forward(a_rx, b_tx));
    forward(b_rx, a_tx).await;
}

/// The connection to the next relay for a connection accepted on `path`.
async fn connect_onward(
    to: &str,
    path: &str,
    protocol: Option<HeaderValue>,
) -> Result<WebSocketStream<TcpStream>> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let url = format!("{}{path}", to.trim_end_matches('/'));
    let mut req = url.as_str().into_client_request()?;
    if let Some(p) = protocol {
        req.headers_mut().insert("sec-websocket-protocol", p);
    }
    let authority = req
        .uri()
        .authority()
        .map(|a| a.to_string())
        .ok_or_else(|| BenchError::msg("no host in --forward"))?;
    let stream = TcpStream::connect(authority).await?;
    stream.set_nodelay(true)?;
    let (ws, _) = tokio_tungstenite::client_async(req, stream).await?;
    Ok(ws)
}

/// Forwards messages from `rx` to `tx`, writing everything already received at once.
async fn forward<R, W>(mut rx: R, mut tx: W)
where
    R: futures_util::Stream<Item = std::result::Result<WsMessage, tokio_tungstenite::tungstenite::Error>>
        + Unpin,
    W: futures_util::Sink<WsMessage> + Unpin,
{
    let data = |m: &WsMessage| m.is_binary() || m.is_text();
    while let Some(Ok(m)) = rx.next().await {
        if m.is_close() {
            break;
        }
        if data(&m) && tx.feed(m).await.is_err() {
            break;
        }
        for _ in 0..BATCH {
            match rx.next().now_or_never() {
                Some(Some(Ok(m))) if data(&m) => {
                    if tx.feed(m).await.is_err() {
                        return;
                    }
                }
                Some(Some(Ok(_))) => {}
                _ => break,
            }
        }
        if tx.flush().await.is_err() {
            break;
        }
    }
    tx.close().await.ok();
}

async fn accept_tcp(l: TcpListener) {
    let waiting: Waiting<TcpStream> = Arc::default();
    loop {
        let Ok((mut stream, _)) = l.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        stream.set_nodelay(true).ok();
        let waiting = waiting.clone();
        tokio::spawn(async move {
            let mut key = [0u8; 8];
            if stream.read_exact(&mut key).await.is_err() {
                return;
            }
            let key = u64::from_be_bytes(key).to_string();
            if let Some((mut a, mut b)) = pair(&waiting, key, stream).await {
                tokio::io::copy_bidirectional(&mut a, &mut b).await.ok();
            }
        });
    }
}

/// The echoed CALL completes the request it carries.
fn echoed_call(m: &Message) -> Option<(RequestId, bool)> {
    match m {
        Message::Call(c) => Some((c.request, true)),
        _ => None,
    }
}

/// Connects caller `a` at `ep` and its echoer `b` at `echo` under pairing key `key`.
async fn connect_pair(ep: &Endpoint, echo: &Endpoint, ser: Serializer, key: u64) -> Result<(Conn, Conn)> {
    let keyed = |ep: &Endpoint| match ep {
        Endpoint::Ws { .. } => (ep.with_path(&format!("/pair-{key}")), ConnectOpts::default()),
        Endpoint::Raw { .. } => (ep.clone(), ConnectOpts { relay_key: Some(key), ..ConnectOpts::default() }),
    };
    let (ep, opts) = keyed(ep);
    let a = Conn::connect(&ep, ser, &opts).await?;
    let (echo, opts) = keyed(echo);
    let b = Conn::connect(&echo, ser, &opts).await?;
    Ok((a, b))
}

/// Runs the client side: request/echo pairs through the relay.
pub async fn run(args: RelayArgs) -> Result<Report> {
    let c = &args.common;
    let ep = Endpoint::parse(&c.url)?;
    let echo_ep = match &args.echo_url {
        Some(u) => Endpoint::parse(u)?,
        None => ep.clone(),
    };
    let ser: Serializer = c.serializer.into();
    let salt: u64 = run_id().bytes().fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
    let (done_tx, done_rx) = watch::channel(false);
    let mut callers = Vec::new();
    let mut echoers = Vec::new();
    for i in 0..args.callers.max(1) {
        let (a, b) = connect_pair(&ep, &echo_ep, ser, salt.wrapping_add(i as u64)).await?;
        callers.push(a);
        echoers.push(tokio::spawn(echo_loop(b, done_rx.clone(), Echo::Raw)));
    }
    let ctl = Control::new();
    let plan = Arc::new(CallPlan::new("bench.relay", args.payload, args.inflight, args.rate, callers.len()));
    let handles = spawn_callers(callers, &plan, &ctl, echoed_call);
    let pids = Pids(c.router_pid.clone());
    let window = stats::run_window(&ctl, c.warmup, c.duration, &pids, "requests", c.quiet).await;
    let merged = merge_callers(handles, &ctl).await;
    done_tx.send_replace(true);
    for h in echoers {
        if let Ok(Err(e)) = h.await {
            eprintln!("echoer: {e}");
        }
    }
    let merged = merged.map_err(|e| BenchError::msg(format!("relay run failed: {e}")))?;
    let short = if ep.transport() == "websocket" { "ws" } else { "rs" };
    let hops = if args.echo_url.is_some() { "-chain" } else { "" };
    let label = format!("relay{hops}-{short}-{}-if{}", ser.name(), args.inflight);
    let mut r = Report::new("relay", c, &ep, label);
    r.set("echo_url", args.echo_url.clone().unwrap_or_else(|| c.url.clone()));
    r.set("callers", args.callers);
    r.set("inflight", args.inflight);
    r.set("payload", args.payload);
    r.set("rate_limit", args.rate);
    r.window(&window, merged.count, "calls");
    r.set("latency_us", stats::latency_json(&merged.hist));
    r.set("errors", merged.errors);
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn listener() -> (TcpListener, String) {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = format!("ws://{}", l.local_addr().expect("addr"));
        (l, addr)
    }

    async fn client(url: String) -> WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>> {
        tokio_tungstenite::connect_async(url).await.expect("connect").0
    }

    async fn next_binary<S>(ws: &mut S) -> Vec<u8>
    where
        S: futures_util::Stream<Item = std::result::Result<WsMessage, tokio_tungstenite::tungstenite::Error>>
            + Unpin,
    {
        let m = tokio::time::timeout(Duration::from_secs(5), ws.next()).await;
        match m {
            Ok(Some(Ok(WsMessage::Binary(b)))) => b.to_vec(),
            other => panic!("expected a binary message, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn relay_chain_carries_messages_both_ways_through_the_forwarding_relay() {
        let (pairing, pairing_url) = listener().await;
        let (forwarding, forwarding_url) = listener().await;
        tokio::spawn(accept_ws(pairing, None));
        tokio::spawn(accept_ws(forwarding, Some(pairing_url.clone())));

        let mut a = client(format!("{forwarding_url}/pair-7")).await;
        let mut b = client(format!("{pairing_url}/pair-7")).await;
        a.send(WsMessage::binary(b"request".to_vec())).await.expect("send");
        assert_eq!(next_binary(&mut b).await, b"request");
        b.send(WsMessage::binary(b"answer".to_vec())).await.expect("send");
        assert_eq!(next_binary(&mut a).await, b"answer");
    }
}
