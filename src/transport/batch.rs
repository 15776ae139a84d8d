//! WAMP-over-Batched-WebSocket framing (`wamp.2.json.batched`,
//! `wamp.2.msgpack.batched`): several WAMP messages in one WebSocket message.
//! MessagePack messages are each preceded by their length as a big-endian `u32`.
//! JSON messages are each followed by a separator: the spec writes it `\30` and calls
//! it the record separator (0x1e), but Autobahn reads `\30` as an octal escape and
//! uses 0x18. We interoperate with Autobahn: we send 0x18 and accept either (the last
//! byte of a batch says which one the peer uses). A batch of zero messages, an empty
//! message in a batch, and a batch of more than `limits.max_batch_messages` messages
//! are errors; the messages are counted before any is taken out.

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

const TOO_MANY: BatchError = BatchError("more messages than limits.max_batch_messages");
const EMPTY_MESSAGE: BatchError = BatchError("empty message");

/// Splits one WebSocket message into at most `max` WAMP messages.
pub fn split(serializer: Serializer, frame: Bytes, max: usize) -> Result<Vec<Bytes>, BatchError> {
    let mut out = Vec::new();
    match serializer {
        Serializer::Json => {
            let sep = match frame.last() {
                Some(&b) if b == SEP_AUTOBAHN || b == SEP_SPEC => b,
                _ => return Err(BatchError("JSON batch not terminated by a separator")),
            };
            if frame.iter().filter(|&&b| b == sep).count() > max {
                return Err(TOO_MANY);
            }
            let mut start = 0;
            for (i, _) in frame.iter().enumerate().filter(|&(_, &b)| b == sep) {
                if i == start {
                    return Err(EMPTY_MESSAGE);
                }
                out.push(frame.slice(start..i));
                start = i + 1;
            }
        }
        _ => {
            let mut rest = frame;
            while !rest.is_empty() {
                if out.len() == max {
                    return Err(TOO_MANY);
                }
                let len_bytes: [u8; 4] =
                    rest.get(..4).and_then(|b| b.try_into().ok()).ok_or(BatchError("truncated length"))?;
                let len = u32::from_be_bytes(len_bytes) as usize;
                if len == 0 {
                    return Err(EMPTY_MESSAGE);
                }
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
            assert_eq!(split(s, join(s, &msgs), 2), Ok(msgs.clone()));
        }
    }

    #[test]
    fn json_accepts_the_spec_separator_too() {
        let batch = Bytes::from_static(b"[1]\x1e[2]\x1e");
        assert_eq!(
            split(Serializer::Json, batch, 2),
            Ok(vec![Bytes::from_static(b"[1]"), Bytes::from_static(b"[2]")])
        );
    }

    #[test]
    fn malformed_batches_are_errors() {
        assert!(split(Serializer::Json, Bytes::from_static(b"[1]"), 8).is_err());
        assert!(split(Serializer::Json, Bytes::new(), 8).is_err());
        assert!(split(Serializer::MsgPack, Bytes::from_static(&[0, 0, 0, 9, 1]), 8).is_err());
        assert!(split(Serializer::MsgPack, Bytes::from_static(&[0, 0]), 8).is_err());
        assert!(split(Serializer::MsgPack, Bytes::new(), 8).is_err());
    }

    #[test]
    fn a_batch_over_the_message_cap_is_refused() {
        let msgs = vec![Bytes::from_static(b"[1]"); 5];
        for s in [Serializer::Json, Serializer::MsgPack] {
            assert_eq!(split(s, join(s, &msgs), 4), Err(TOO_MANY), "{s:?}");
            assert_eq!(split(s, join(s, &msgs), 5).map(|v| v.len()), Ok(5), "{s:?}");
        }
    }

    #[test]
    fn a_frame_of_separators_is_refused_without_splitting() {
        let separators = Bytes::from(vec![SEP_AUTOBAHN; 1 << 20]);
        assert_eq!(split(Serializer::Json, separators, 1024), Err(TOO_MANY));
        let few = Bytes::from_static(&[SEP_SPEC, SEP_SPEC]);
        assert_eq!(split(Serializer::Json, few, 1024), Err(EMPTY_MESSAGE));
        let empty_msgpack = Bytes::from_static(&[0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(split(Serializer::MsgPack, empty_msgpack, 1024), Err(EMPTY_MESSAGE));
    }
}
