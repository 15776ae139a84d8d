//! `rawsocket_frames` target: a byte stream as a router reads a RawSocket connection.
//!
//! The first four bytes are the client handshake; then frame headers and frames
//! follow until the input ends or a framing error would close the connection. Message
//! frames are decoded with the negotiated serializer (round trip checked); a header
//! that parses must re-encode to itself.

use junction::wamp::codec::Serializer;
use junction::wamp::rawsocket::{
    FrameKind, MAX_FRAME_LEN, encode_frame_header, encode_handshake, max_len_from_exponent,
    parse_client_handshake, parse_frame_header, parse_server_handshake,
};

use super::codec::decode_roundtrip;

/// Reads `data` as a RawSocket connection.
pub fn rawsocket_stream(data: &[u8]) {
    let Some((hs, mut rest)) = split4(data) else { return };
    // Both parsers must be total on any four bytes.
    let _ = parse_server_handshake(hs);
    let Ok(hello) = parse_client_handshake(hs) else { return };
    let reply = encode_handshake(hello.serializer_id, hello.max_len_exp);
    assert!(parse_server_handshake(reply).is_ok(), "our own handshake reply must parse: {reply:?}");
    let max = hello.max_len().min(MAX_FRAME_LEN);
    assert!(max <= max_len_from_exponent(15));
    let ser = Serializer::from_rawsocket_id(hello.serializer_id);
    while let Some((header, after)) = split4(rest) {
        let Ok((kind, len)) = parse_frame_header(header) else { return };
        if len <= MAX_FRAME_LEN {
            assert_eq!(
                parse_frame_header(encode_frame_header(kind, len)),
                Ok((kind, len)),
                "header round trip"
            );
        }
        if len > max || len > after.len() {
            return;
        }
        let (frame, next) = after.split_at(len);
        if let (FrameKind::Message, Some(ser)) = (kind, ser) {
            decode_roundtrip(ser, frame);
        }
        rest = next;
    }
}

fn split4(data: &[u8]) -> Option<([u8; 4], &[u8])> {
    let (head, rest) = data.split_first_chunk::<4>()?;
    Some((*head, rest))
}
