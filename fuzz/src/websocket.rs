//! `websocket_frames` target: fuzzer bytes as the client side of a WebSocket
//! connection, served by the real transport ([`junction::transport::websocket::serve`]:
//! tungstenite's HTTP upgrade and frame parser, batching, the session, the router) over
//! an in-memory pipe.
//!
//! Input: byte 0 picks the subprotocol (bits 0-2: json, msgpack, cbor, json.batched,
//! msgpack.batched), how the upgrade request looks (bits 5-6: normal, no subprotocol,
//! wrong path), whether a valid HELLO frame goes first (bit 4) and whether the rest is
//! sent verbatim (bit 3). Otherwise the rest is a list of frames, each
//! `[b0 (FIN, RSV, opcode)] [b1: bit 7 masked, bits 0-6 length: < 126 as is, 126 a u16
//! follows (16-bit header), 127 a u16 follows (64-bit header)] [mask key] [payload]`;
//! the harness masks the payload, so the router reads the fuzzer's bytes.
//! Messages are limited to 1 KiB, so the size limit is reached too.
//!
//! Checked: no panic; the router's reply is an HTTP response, and after a 101 only
//! well-formed unmasked server frames follow: a data frame of the negotiated kind
//! (text for JSON) whose messages decode, nothing after a close frame; once the
//! connection is over, no session is left and no admission seat is held.

use std::sync::Arc;

use bytes::Bytes;
use junction::config::Config;
use junction::ids::NodeId;
use junction::router::Router;
use junction::transport::{Accepted, batch, websocket};
use junction::wamp::codec::Serializer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The subprotocols byte 0 chooses from: name, serializer, batched.
const PROTOCOLS: [(&str, Serializer, bool); 5] = [
    ("wamp.2.json", Serializer::Json, false),
    ("wamp.2.msgpack", Serializer::MsgPack, false),
    ("wamp.2.cbor", Serializer::Cbor, false),
    ("wamp.2.json.batched", Serializer::Json, true),
    ("wamp.2.msgpack.batched", Serializer::MsgPack, true),
];

/// Largest message the router accepts in this harness.
const MAX_MESSAGE: usize = 1024;

/// Serves `data` as one WebSocket connection, on a runtime of its own.
pub fn websocket_frames(data: &[u8]) {
    let Some((&head, rest)) = data.split_first() else { return };
    let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
    let (name, ser, batched) = PROTOCOLS[usize::from(head & 7) % PROTOCOLS.len()];
    let request = upgrade_request(name, (head >> 5) & 3);
    let mut input = Vec::new();
    if head & 0x10 != 0 {
        let hello = ser.encode(&hello());
        let hello = if batched { batch::join(ser, &[Bytes::from(hello)]).to_vec() } else { hello };
        push_frame(&mut input, if ser.is_binary() { 0x82 } else { 0x81 }, &hello, Some([1, 2, 3, 4]), 0);
    }
    if head & 0x08 != 0 {
        input.extend_from_slice(rest);
    } else {
        frames(rest, &mut input);
    }
    let (output, router) = rt.block_on(serve(request, input));
    assert_eq!(router.session_count(), 0, "a session was left behind");
    assert_eq!(router.admission.seated(), 0, "an admission seat was not given back");
    check_output(&output, ser, batched);
}

/// Runs the router's side of the connection: writes the upgrade `request`, then once
/// the router answered it (like a real client: tungstenite refuses bytes after the
/// request that arrive with it) the `frames`, then EOF; collects everything the router
/// sends until it closes.
async fn serve(request: Vec<u8>, frames: Vec<u8>) -> (Vec<u8>, Arc<Router>) {
    let mut config = Config::default();
    config.limits.websocket_max_message_size = Some(MAX_MESSAGE);
    let router = Router::new(config, NodeId(1));
    let (client, server) = tokio::io::duplex(64 * 1024);
    let (mut reader, mut writer) = tokio::io::split(client);
    let accepted = Accepted::now(&router, None);
    let (answered, upgraded) = tokio::sync::oneshot::channel();
    let write = async move {
        // The router may stop reading at any point: a failed write is normal.
        if writer.write_all(&request).await.is_err() {
            return;
        }
        if upgraded.await.is_ok() && writer.write_all(&frames).await.is_err() {
            return;
        }
        writer.shutdown().await.ok();
    };
    let read = async move {
        let mut bytes = Vec::new();
        let mut answered = Some(answered);
        while reader.read_buf(&mut bytes).await.is_ok_and(|n| n > 0) {
            if answered.is_some() && bytes.windows(4).any(|w| w == b"\r\n\r\n") {
                answered.take().map(|tx| tx.send(()));
            }
        }
        bytes
    };
    let ((), (), bytes) = tokio::join!(websocket::serve(router.clone(), server, accepted), write, read);
    (bytes, router)
}

fn upgrade_request(protocol: &str, variant: u8) -> Vec<u8> {
    let path = if variant == 2 { "/nope" } else { "/ws" };
    let mut r = format!(
        "GET {path} HTTP/1.1\r\nHost: fuzz\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
    );
    if variant != 1 {
        r.push_str(&format!("Sec-WebSocket-Protocol: {protocol}\r\n"));
    }
    r.push_str("\r\n");
    r.into_bytes()
}

fn hello() -> junction::wamp::message::Message {
    use junction::wamp::message::{Hello, Message};
    Message::Hello(Hello {
        realm: "realm1".into(),
        details: junction::dict! { "roles" => junction::dict! {} },
    })
}

/// Turns the structured part of the input into client frames.
fn frames(mut rest: &[u8], out: &mut Vec<u8>) {
    while let [b0, b1, tail @ ..] = rest {
        rest = tail;
        let (len, header_len) = match b1 & 0x7f {
            n @ 0..=125 => (usize::from(n), 0),
            n => {
                let Some((len, tail)) = rest.split_first_chunk::<2>() else { return };
                rest = tail;
                (usize::from(u16::from_be_bytes(*len)), if n == 126 { 16 } else { 64 })
            }
        };
        let key = if b1 & 0x80 != 0 {
            let Some((key, tail)) = rest.split_first_chunk::<4>() else { return };
            rest = tail;
            Some(*key)
        } else {
            None
        };
        let (payload, tail) = rest.split_at(len.min(rest.len()));
        rest = tail;
        push_frame_declared(out, *b0, payload, key, header_len, len);
    }
}

/// Appends a client frame carrying all of `payload`.
fn push_frame(out: &mut Vec<u8>, b0: u8, payload: &[u8], key: Option<[u8; 4]>, header_len: u8) {
    push_frame_declared(out, b0, payload, key, header_len, payload.len());
}

/// Appends a frame header declaring `declared` bytes (the input may end sooner), then
/// `payload` masked with `key`. `header_len`: 0 = shortest encoding, 16 or 64.
fn push_frame_declared(
    out: &mut Vec<u8>,
    b0: u8,
    payload: &[u8],
    key: Option<[u8; 4]>,
    header_len: u8,
    declared: usize,
) {
    out.push(b0);
    let mask = if key.is_some() { 0x80 } else { 0 };
    match header_len {
        0 if declared < 126 => out.push(mask | declared as u8),
        0 | 16 => {
            out.push(mask | 126);
            out.extend_from_slice(&(declared as u16).to_be_bytes());
        }
        _ => {
            out.push(mask | 127);
            out.extend_from_slice(&(declared as u64).to_be_bytes());
        }
    }
    match key {
        Some(k) => {
            out.extend_from_slice(&k);
            out.extend(payload.iter().enumerate().map(|(i, b)| b ^ k[i % 4]));
        }
        None => out.extend_from_slice(payload),
    }
}

/// Checks what the router sent: an HTTP response, then (after 101) server frames.
fn check_output(out: &[u8], ser: Serializer, batched: bool) {
    let Some(end) = out.windows(4).position(|w| w == b"\r\n\r\n") else {
        assert!(out.is_empty() || !out.starts_with(b"HTTP/1.1 101"), "a 101 response without its end");
        return;
    };
    let head = std::str::from_utf8(&out[..end]).expect("the HTTP response is text");
    assert!(head.starts_with("HTTP/1.1 "), "not an HTTP response: {head:?}");
    if !head.starts_with("HTTP/1.1 101") {
        return;
    }
    let mut rest = &out[end + 4..];
    let mut message: Option<(u8, Vec<u8>)> = None;
    while !rest.is_empty() {
        let (fin, opcode, payload, tail) = server_frame(rest);
        rest = tail;
        match opcode {
            0x8 => {
                assert!(rest.is_empty(), "frames after the close frame");
                if payload.len() >= 2 {
                    let code = u16::from_be_bytes([payload[0], payload[1]]);
                    assert!(matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999), "close code {code}");
                }
            }
            0x9 | 0xA => assert!(fin && payload.len() <= 125, "bad control frame"),
            0x1 | 0x2 => {
                assert!(message.is_none(), "a new data frame inside a fragmented message");
                message = Some((opcode, payload.to_vec()));
            }
            0x0 => message.as_mut().expect("continuation without a message").1.extend_from_slice(payload),
            other => panic!("router sent opcode {other:#x}"),
        }
        if fin && let Some((opcode, data)) = message.take() {
            check_message(opcode, data, ser, batched);
        }
    }
    assert!(message.is_none(), "the router left a fragmented message unfinished");
}

/// One unmasked server frame: (FIN, opcode, payload, rest).
fn server_frame(data: &[u8]) -> (bool, u8, &[u8], &[u8]) {
    assert!(data.len() >= 2, "truncated frame header");
    let (b0, b1) = (data[0], data[1]);
    assert_eq!(b0 & 0x70, 0, "RSV bits set by the router");
    assert_eq!(b1 & 0x80, 0, "the router masked a frame");
    let (len, at) = match b1 & 0x7f {
        126 => (usize::from(u16::from_be_bytes([data[2], data[3]])), 4),
        127 => {
            let n = u64::from_be_bytes(data[2..10].try_into().expect("8 bytes"));
            (usize::try_from(n).expect("length fits"), 10)
        }
        n => (usize::from(n), 2),
    };
    assert!(data.len() >= at + len, "truncated frame: {len} bytes announced, {} left", data.len() - at);
    (b0 & 0x80 != 0, b0 & 0x0f, &data[at..at + len], &data[at + len..])
}

fn check_message(opcode: u8, data: Vec<u8>, ser: Serializer, batched: bool) {
    let expected = if ser.is_binary() { 0x2 } else { 0x1 };
    assert_eq!(
        opcode,
        expected,
        "{} travels in {} frames",
        ser.name(),
        if expected == 1 { "text" } else { "binary" }
    );
    let messages = if batched {
        batch::split(ser, Bytes::from(data), usize::MAX).expect("router batch splits")
    } else {
        vec![Bytes::from(data)]
    };
    for m in messages {
        if let Err(e) = ser.decode(&m) {
            panic!("router output does not decode with {}: {e}", ser.name());
        }
    }
}
