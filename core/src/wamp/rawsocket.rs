//! RawSocket transport framing (WAMP spec, "RawSocket Transport"), without I/O: the
//! 4-octet opening handshake in both directions and the 4-octet header before every
//! frame. All numbers are big-endian.
//!
//! Handshake: `0x7F`, then `LLLL SSSS` (maximum length exponent, serializer id) or, in
//! a router's refusal, `EEEE 0000` (error code), then two reserved zero octets.
//! Frame header: `RRRR XTTT` (reserved, 25th length bit, frame type), then a 24-bit
//! length. The `X` bit is set only for a payload of exactly 2^24 octets.

/// First octet of every handshake.
pub const MAGIC: u8 = 0x7F;

/// Largest length exponent: `2^(9 + 15)` = 16 MiB.
pub const MAX_LENGTH_EXPONENT: u8 = 15;

/// Largest payload a frame header can describe: 2^24 octets.
pub const MAX_FRAME_LEN: usize = 1 << 24;

/// Maximum message length for a handshake exponent: `2^(9 + exp)`; exponents above
/// [`MAX_LENGTH_EXPONENT`] count as that maximum.
pub fn max_len_from_exponent(exp: u8) -> usize {
    1 << (9 + exp.min(MAX_LENGTH_EXPONENT))
}

/// The smallest exponent whose length is at least `max_len`, capped at
/// [`MAX_LENGTH_EXPONENT`].
pub fn exponent_for_len(max_len: usize) -> u8 {
    (0..MAX_LENGTH_EXPONENT).find(|&exp| max_len_from_exponent(exp) >= max_len).unwrap_or(MAX_LENGTH_EXPONENT)
}

/// Why a router refuses a handshake; the value is the code sent on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    /// The requested serializer is not supported.
    #[error("serializer unsupported")]
    SerializerUnsupported = 1,
    /// The requested maximum message length is unacceptable.
    #[error("maximum message length unacceptable")]
    MaxLengthUnacceptable = 2,
    /// Reserved bits are set (an unsupported feature).
    #[error("use of reserved bits")]
    ReservedBitsUsed = 3,
    /// The router has reached its connection limit.
    #[error("maximum connection count reached")]
    MaxConnections = 4,
}

impl HandshakeError {
    /// The error for a wire code, if the spec defines it.
    pub fn from_code(code: u8) -> Option<HandshakeError> {
        match code {
            1 => Some(HandshakeError::SerializerUnsupported),
            2 => Some(HandshakeError::MaxLengthUnacceptable),
            3 => Some(HandshakeError::ReservedBitsUsed),
            4 => Some(HandshakeError::MaxConnections),
            _ => None,
        }
    }
}

/// A client's handshake request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientHello {
    /// Requested serializer (1 JSON, 2 MessagePack, 3 CBOR, ...); never 0.
    pub serializer_id: u8,
    /// Exponent of the longest message the client accepts (see [`max_len_from_exponent`]).
    pub max_len_exp: u8,
}

impl ClientHello {
    /// The longest message the client accepts, in octets.
    pub fn max_len(&self) -> usize {
        max_len_from_exponent(self.max_len_exp)
    }
}

/// How a router must answer a client handshake it cannot accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeReject {
    /// The first octet is not [`MAGIC`]: not RawSocket at all; close without a reply.
    BadMagic,
    /// Reply with [`encode_handshake_error`] and close.
    Error(HandshakeError),
}

/// Errors of RawSocket framing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RawSocketError {
    /// A handshake does not start with [`MAGIC`].
    #[error("not a RawSocket handshake (bad magic octet)")]
    BadMagic,
    /// Reserved bits of a handshake or frame header are set.
    #[error("reserved bits are set")]
    ReservedBits,
    /// The router refused the handshake with this error code.
    #[error("handshake refused by the router (code {0})")]
    Rejected(u8),
    /// A frame header names a frame type the spec does not define.
    #[error("unknown frame type {0}")]
    UnknownFrameType(u8),
    /// A frame header sets the 25th length bit together with other length bits.
    #[error("invalid frame length")]
    InvalidLength,
    /// A frame is longer than the limit negotiated in the handshake.
    #[error("frame of {len} octets exceeds the limit of {max}")]
    TooLong {
        /// Length announced by the frame header.
        len: usize,
        /// Negotiated limit.
        max: usize,
    },
}

/// Parses a client's handshake request (router side).
///
/// The serializer id is returned as sent, whatever it is (the caller decides whether it
/// is supported), except 0 which the spec calls illegal.
pub fn parse_client_handshake(b: [u8; 4]) -> Result<ClientHello, HandshakeReject> {
    let [magic, octet, r1, r2] = b;
    if magic != MAGIC {
        return Err(HandshakeReject::BadMagic);
    }
    if r1 != 0 || r2 != 0 {
        return Err(HandshakeReject::Error(HandshakeError::ReservedBitsUsed));
    }
    let serializer_id = octet & 0x0f;
    if serializer_id == 0 {
        return Err(HandshakeReject::Error(HandshakeError::SerializerUnsupported));
    }
    Ok(ClientHello { serializer_id, max_len_exp: octet >> 4 })
}

/// A handshake request (client) or acceptance (router): serializer id and length
/// exponent. Both are masked to their 4 bits; the exponent is capped at 15.
pub fn encode_handshake(serializer_id: u8, max_len_exp: u8) -> [u8; 4] {
    let exp = max_len_exp.min(MAX_LENGTH_EXPONENT);
    [MAGIC, (exp << 4) | (serializer_id & 0x0f), 0, 0]
}

/// A router's handshake refusal.
pub fn encode_handshake_error(e: HandshakeError) -> [u8; 4] {
    [MAGIC, (e as u8) << 4, 0, 0]
}

/// Parses a router's handshake reply (client side): the serializer it echoes and the
/// exponent of the longest message it accepts.
pub fn parse_server_handshake(b: [u8; 4]) -> Result<(u8, u8), RawSocketError> {
    let [magic, octet, r1, r2] = b;
    if magic != MAGIC {
        return Err(RawSocketError::BadMagic);
    }
    if r1 != 0 || r2 != 0 {
        return Err(RawSocketError::ReservedBits);
    }
    match octet & 0x0f {
        0 => Err(RawSocketError::Rejected(octet >> 4)),
        serializer => Ok((serializer, octet >> 4)),
    }
}

/// The type of a RawSocket frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    /// A serialized WAMP message.
    Message = 0,
    /// A ping; the peer must answer with a pong echoing the payload.
    Ping = 1,
    /// The answer to a ping.
    Pong = 2,
}

/// The 4-octet header of a frame carrying `len` octets.
///
/// # Panics
///
/// If `len` exceeds [`MAX_FRAME_LEN`] (2^24): callers must hold messages to the limit
/// the peer negotiated, which is never more.
pub fn encode_frame_header(kind: FrameKind, len: usize) -> [u8; 4] {
    assert!(len <= MAX_FRAME_LEN, "RawSocket frame of {len} octets is too long");
    let x = if len == MAX_FRAME_LEN { 0x08 } else { 0 };
    let [_, l1, l2, l3] = ((len & 0xff_ffff) as u32).to_be_bytes();
    [x | kind as u8, l1, l2, l3]
}

/// Parses a frame header into its type and payload length.
pub fn parse_frame_header(b: [u8; 4]) -> Result<(FrameKind, usize), RawSocketError> {
    let [first, l1, l2, l3] = b;
    if first & 0xf0 != 0 {
        return Err(RawSocketError::ReservedBits);
    }
    let kind = match first & 0x07 {
        0 => FrameKind::Message,
        1 => FrameKind::Ping,
        2 => FrameKind::Pong,
        other => return Err(RawSocketError::UnknownFrameType(other)),
    };
    let len = u32::from_be_bytes([0, l1, l2, l3]) as usize;
    match (first & 0x08 != 0, len) {
        (false, len) => Ok((kind, len)),
        (true, 0) => Ok((kind, MAX_FRAME_LEN)),
        (true, _) => Err(RawSocketError::InvalidLength),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exponents_and_lengths() {
        assert_eq!(max_len_from_exponent(0), 512);
        assert_eq!(max_len_from_exponent(15), 16 * 1024 * 1024);
        assert_eq!(max_len_from_exponent(200), 16 * 1024 * 1024);
        assert_eq!(exponent_for_len(0), 0);
        assert_eq!(exponent_for_len(512), 0);
        assert_eq!(exponent_for_len(513), 1);
        assert_eq!(exponent_for_len(65_536), 7);
        assert_eq!(exponent_for_len(MAX_FRAME_LEN), 15);
        assert_eq!(exponent_for_len(usize::MAX), 15);
        for exp in 0..=MAX_LENGTH_EXPONENT {
            assert_eq!(exponent_for_len(max_len_from_exponent(exp)), exp);
        }
    }

    #[test]
    fn client_handshake() {
        let hello = parse_client_handshake([0x7f, 0xf2, 0, 0]);
        assert_eq!(hello, Ok(ClientHello { serializer_id: 2, max_len_exp: 15 }));
        assert_eq!(hello.map(|h| h.max_len()), Ok(MAX_FRAME_LEN));
        let unknown = parse_client_handshake([0x7f, 0x07, 0, 0]);
        assert_eq!(unknown, Ok(ClientHello { serializer_id: 7, max_len_exp: 0 }));
        assert_eq!(parse_client_handshake(*b"GET "), Err(HandshakeReject::BadMagic));
        let reserved = Err(HandshakeReject::Error(HandshakeError::ReservedBitsUsed));
        assert_eq!(parse_client_handshake([0x7f, 0xf1, 0, 1]), reserved);
        assert_eq!(parse_client_handshake([0x7f, 0xf1, 0x80, 0]), reserved);
        let illegal = Err(HandshakeReject::Error(HandshakeError::SerializerUnsupported));
        assert_eq!(parse_client_handshake([0x7f, 0xf0, 0, 0]), illegal);
    }

    #[test]
    fn handshake_encoding() {
        assert_eq!(encode_handshake(1, 15), [0x7f, 0xf1, 0, 0]);
        assert_eq!(encode_handshake(3, 4), [0x7f, 0x43, 0, 0]);
        assert_eq!(encode_handshake(2, 99), [0x7f, 0xf2, 0, 0]);
        for ser in 1..16 {
            for exp in 0..=MAX_LENGTH_EXPONENT {
                let b = encode_handshake(ser, exp);
                let want = ClientHello { serializer_id: ser, max_len_exp: exp };
                assert_eq!(parse_client_handshake(b), Ok(want));
                assert_eq!(parse_server_handshake(b), Ok((ser, exp)));
            }
        }
    }

    #[test]
    fn handshake_errors() {
        let all = [
            HandshakeError::SerializerUnsupported,
            HandshakeError::MaxLengthUnacceptable,
            HandshakeError::ReservedBitsUsed,
            HandshakeError::MaxConnections,
        ];
        for e in all {
            let b = encode_handshake_error(e);
            assert_eq!(b, [0x7f, (e as u8) << 4, 0, 0]);
            assert_eq!(parse_server_handshake(b), Err(RawSocketError::Rejected(e as u8)));
            assert_eq!(HandshakeError::from_code(e as u8), Some(e));
        }
        assert_eq!(encode_handshake_error(HandshakeError::SerializerUnsupported)[1], 0x10);
        assert_eq!(HandshakeError::from_code(0), None);
        assert_eq!(HandshakeError::from_code(5), None);
        assert_eq!(parse_server_handshake([0x7e, 0xf1, 0, 0]), Err(RawSocketError::BadMagic));
        assert_eq!(parse_server_handshake([0x7f, 0xf1, 1, 0]), Err(RawSocketError::ReservedBits));
    }

    #[test]
    fn frame_headers_round_trip() {
        for kind in [FrameKind::Message, FrameKind::Ping, FrameKind::Pong] {
            for len in [0, 1, 255, 256, 65_535, 0x12_3456, MAX_FRAME_LEN - 1, MAX_FRAME_LEN] {
                assert_eq!(parse_frame_header(encode_frame_header(kind, len)), Ok((kind, len)));
            }
        }
        assert_eq!(encode_frame_header(FrameKind::Message, 0x11_2233), [0, 0x11, 0x22, 0x33]);
        assert_eq!(encode_frame_header(FrameKind::Ping, 5), [1, 0, 0, 5]);
        assert_eq!(encode_frame_header(FrameKind::Pong, MAX_FRAME_LEN), [0x0a, 0, 0, 0]);
        assert_eq!(encode_frame_header(FrameKind::Message, MAX_FRAME_LEN - 1), [0, 0xff, 0xff, 0xff]);
    }

    #[test]
    fn bad_frame_headers() {
        assert_eq!(parse_frame_header([0x10, 0, 0, 1]), Err(RawSocketError::ReservedBits));
        assert_eq!(parse_frame_header([0x80, 0, 0, 1]), Err(RawSocketError::ReservedBits));
        for t in 3..8 {
            assert_eq!(parse_frame_header([t, 0, 0, 1]), Err(RawSocketError::UnknownFrameType(t)));
        }
        assert_eq!(parse_frame_header([0x08, 0, 0, 1]), Err(RawSocketError::InvalidLength));
        for first in 0..=255u8 {
            let ok = parse_frame_header([first, 1, 2, 3]).is_ok();
            assert_eq!(ok, first <= 2, "{first:#04x}");
        }
    }

    #[test]
    #[should_panic(expected = "too long")]
    fn oversized_frame_header_panics() {
        encode_frame_header(FrameKind::Message, MAX_FRAME_LEN + 1);
    }
}
