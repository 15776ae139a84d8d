//! WAMP-over-Batched-WebSocket framing (`wamp.2.json.batched`,
//! `wamp.2.msgpack.batched`): several WAMP messages in one WebSocket message.
//! MessagePack messages are each preceded by their length as a big-endian `u32`.
//! JSON messages are each followed by a separator: the spec writes it `\30` and calls
//! it the record separator (0x1e), but Autobahn reads `\30` as an octal escape and
//! uses 0x18. We interoperate with Autobahn: we send 0x18 and accept either (the last
//! byte of a batch says which one the peer uses). A batch of zero messages is illegal.

use bytes::{Bytes, BytesMut};

use crate::wamp::codec::Serializer;

/// The separator Autobahn ends each JSON message of a batch with (`b"\30"`, octal).
const SEP_AUTOBAHN: u8 = 0x18;
/// The record separator the spec's prose names.
const SEP_SPEC: u8 = 0x1e;

/// A malformed batch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed batched WebSocket message: {0}")]
pub struct BatchError(&'static str);

/// Splits one WebSocket message into WAMP messages.
pub fn split(serializer: Serializer, frame: Bytes) -> Result<Vec<Bytes>, BatchError> {
    let mut out = Vec::new();
    match serializer {
        Serializer::Json => {
            let sep = match frame.last() {
                Some(&b) if b == SEP_AUTOBAHN || b == SEP_SPEC => b,
                _ => return Err(BatchError("JSON batch not terminated by a separator")),
            };
            let mut start = 0;
            for (i, _) in frame.iter().enumerate().filter(|&(_, &b)| b == sep) {
                out.push(frame.slice(start..i));
                start = i + 1;
            }
        }
        _ => {
            let mut rest = frame;
            while !rest.is_empty() {
                let len_bytes: [u8; 4] =
                    rest.get(..4).and_then(|b| b.try_into().ok()).ok_or(BatchError("truncated length"))?;
                let len = u32::from_be_bytes(len_bytes) as usize;
                if rest.len() < 4 + len {
                    return Err(BatchError("truncated message"));
                }
                out.push(rest.slice(4..4 + len));
                rest = rest.slice(4 + len..);
            }
        }
    }
    if out.is_empty() {
        return Err(BatchError("empty batch"));
    }
    Ok(out)
}

/// Packs WAMP messages into one WebSocket message.
pub fn join(serializer: Serializer, frames: &[Bytes]) -> Bytes {
    let total: usize = frames.iter().map(|f| f.len() + 4).sum();
    let mut out = BytesMut::with_capacity(total);
    for f in frames {
        if serializer == Serializer::Json {
            out.extend_from_slice(f);
            out.extend_from_slice(&[SEP_AUTOBAHN]);
        } else {
            out.extend_from_slice(&(f.len() as u32).to_be_bytes());
            out.extend_from_slice(f);
        }
    }
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_both_formats() {
        let msgs = vec![Bytes::from_static(b"[1,\"a\",{}]"), Bytes::from_static(b"[6,{},\"x\"]")];
        for s in [Serializer::Json, Serializer::MsgPack] {
            assert_eq!(split(s, join(s, &msgs)), Ok(msgs.clone()));
        }
    }

    #[test]
    fn json_accepts_the_spec_separator_too() {
        let batch = Bytes::from_static(b"[1]\x1e[2]\x1e");
        assert_eq!(
            split(Serializer::Json, batch),
            Ok(vec![Bytes::from_static(b"[1]"), Bytes::from_static(b"[2]")])
        );
    }

    #[test]
    fn malformed_batches_are_errors() {
        assert!(split(Serializer::Json, Bytes::from_static(b"[1]")).is_err());
        assert!(split(Serializer::Json, Bytes::new()).is_err());
        assert!(split(Serializer::MsgPack, Bytes::from_static(&[0, 0, 0, 9, 1])).is_err());
        assert!(split(Serializer::MsgPack, Bytes::from_static(&[0, 0])).is_err());
        assert!(split(Serializer::MsgPack, Bytes::new()).is_err());
    }
}
