//! The three WAMP serializers (JSON, MessagePack, CBOR): bytes to [`Message`] and back.
//!
//! Encoding walks the typed message by reference (no payload clone) through `serde`.
//! Decoding reads a [`Value`] (nesting limited to [`MAX_DEPTH`], values limited by a
//! budget) and hands its list to [`Message::from_list`]. JSON and MessagePack decode
//! through `serde`; CBOR has a small decoder of its own so tags, `undefined` and half
//! floats are accepted.
//!
//! Every decoded value (scalar, container, dictionary key) takes at least one byte of
//! input but some 32 bytes of memory, and a container's claimed length is never
//! trusted for pre-allocation. [`Serializer::decode_bounded`] caps the values of one
//! message at `min(max_values, input length)`, so what a message can cost in memory
//! is bounded by the configured `limits.max_message_elements`.

mod cbor;
mod json;
mod msgpack;
pub mod neutral;
mod passthrough;
mod serde_value;

#[cfg(test)]
mod samples;

use bytes::Bytes;

use crate::wamp::message::{Message, MessageError};
use crate::wamp::value::Value;

/// Deepest nesting of lists and dictionaries a decoded value may have; the message
/// list itself is level 1. Deeper input is a decode error, never a stack overflow.
/// (`serde_json` enforces its own, slightly lower limit of 127 levels.)
pub const MAX_DEPTH: usize = 128;

/// A WAMP serializer, as negotiated by WebSocket subprotocol or RawSocket handshake.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Serializer {
    /// `wamp.2.json`; binary travels as `"\u0000" + base64` strings.
    Json,
    /// `wamp.2.msgpack`.
    MsgPack,
    /// `wamp.2.cbor`.
    Cbor,
}

/// Why bytes could not be decoded into a message.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The bytes are not a well-formed value of the serialization format.
    #[error("malformed input: {0}")]
    Syntax(String),
    /// The value is well-formed but not a valid WAMP message.
    #[error(transparent)]
    Message(#[from] MessageError),
    /// The message holds more values than allowed (`limits.max_message_elements`).
    #[error("more than {max} values in one message (limits.max_message_elements)")]
    TooManyElements {
        /// The limit that was exceeded.
        max: usize,
    },
}

impl Serializer {
    /// Every serializer, in order of preference.
    pub const ALL: [Serializer; 3] = [Serializer::Json, Serializer::MsgPack, Serializer::Cbor];

    /// The WebSocket subprotocol name.
    pub fn subprotocol(self) -> &'static str {
        match self {
            Serializer::Json => "wamp.2.json",
            Serializer::MsgPack => "wamp.2.msgpack",
            Serializer::Cbor => "wamp.2.cbor",
        }
    }

    /// The serializer for a WebSocket subprotocol name.
    pub fn from_subprotocol(s: &str) -> Option<Serializer> {
        Serializer::ALL.into_iter().find(|ser| ser.subprotocol() == s)
    }

    /// The serializer id in the RawSocket handshake.
    pub fn rawsocket_id(self) -> u8 {
        match self {
            Serializer::Json => 1,
            Serializer::MsgPack => 2,
            Serializer::Cbor => 3,
        }
    }

    /// The serializer for a RawSocket handshake id.
    pub fn from_rawsocket_id(id: u8) -> Option<Serializer> {
        Serializer::ALL.into_iter().find(|ser| ser.rawsocket_id() == id)
    }

    /// True when messages go in binary WebSocket frames (all but JSON, which uses text).
    pub fn is_binary(self) -> bool {
        self != Serializer::Json
    }

    /// A short name for logs and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Serializer::Json => "json",
            Serializer::MsgPack => "msgpack",
            Serializer::Cbor => "cbor",
        }
    }

    /// Encodes a message. A payload still in the bytes it arrived in is copied as is
    /// when it is in this serializer, and decoded and re-encoded otherwise.
    pub fn encode(self, msg: &Message) -> Vec<u8> {
        match msg.payload().and_then(|p| p.encoded()) {
            Some(e) if e.serializer() == self => passthrough::encode_spliced(self, msg, e),
            _ => self.encode_serialize(msg),
        }
    }

    /// Encodes the elements of a message before its payload, as a list.
    fn encode_head(self, msg: &Message) -> Vec<u8> {
        self.encode_serialize(&serde_value::Head(msg))
    }

    /// Decodes a received frame of at most `max_values` values, keeping its payload
    /// (args, kwargs) as slices of `frame` where the serializer allows: a router only
    /// forwards it (see [`passthrough`]).
    pub fn decode_frame(self, frame: &Bytes, max_values: usize) -> Result<Message, DecodeError> {
        match passthrough::split_decode(self, frame, max_values) {
            Some(msg) => Ok(msg),
            None => self.decode_bounded(frame, max_values),
        }
    }

    /// Decodes a message.
    pub fn decode(self, bytes: &[u8]) -> Result<Message, DecodeError> {
        self.decode_bounded(bytes, usize::MAX)
    }

    /// Decodes a message of at most `max_values` values (see the module documentation).
    pub fn decode_bounded(self, bytes: &[u8], max_values: usize) -> Result<Message, DecodeError> {
        match self.decode_value_bounded(bytes, max_values)? {
            Value::List(list) => Ok(Message::from_list(list)?),
            _ => Err(MessageError::NotAList.into()),
        }
    }

    /// Encodes a single value.
    pub fn encode_value(self, v: &Value) -> Vec<u8> {
        self.encode_serialize(v)
    }

    /// Decodes a single value; the whole input must be consumed.
    pub fn decode_value(self, bytes: &[u8]) -> Result<Value, DecodeError> {
        self.decode_value_bounded(bytes, usize::MAX)
    }

    /// Decodes a single value of at most `max_values` values; the whole input must be
    /// consumed.
    pub fn decode_value_bounded(self, bytes: &[u8], max_values: usize) -> Result<Value, DecodeError> {
        // Each value takes at least one byte: a longer count is never valid input.
        let budget = serde_value::Budget::new(max_values.min(bytes.len()));
        let decoded = match self {
            Serializer::Json => json::decode(bytes, &budget),
            Serializer::MsgPack => msgpack::decode(bytes, &budget),
            Serializer::Cbor => cbor::decode(bytes, &budget),
        };
        match decoded {
            Err(_) if budget.exceeded() && max_values < bytes.len() => {
                Err(DecodeError::TooManyElements { max: max_values })
            }
            other => other,
        }
    }

    fn encode_serialize<T: serde::Serialize + ?Sized>(self, v: &T) -> Vec<u8> {
        match self {
            Serializer::Json => json::encode(v),
            Serializer::MsgPack => msgpack::encode(v),
            Serializer::Cbor => cbor::encode(v),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::samples::{all_messages, publish_with_bytes};
    use super::*;
    use crate::dict;

    #[test]
    fn names_and_ids_round_trip() {
        for s in Serializer::ALL {
            assert_eq!(Serializer::from_subprotocol(s.subprotocol()), Some(s));
            assert_eq!(Serializer::from_rawsocket_id(s.rawsocket_id()), Some(s));
            assert!(s.subprotocol().ends_with(s.name()));
        }
        assert_eq!(Serializer::from_subprotocol("wamp.2.ubjson"), None);
        assert_eq!(Serializer::from_rawsocket_id(0), None);
        assert_eq!(Serializer::from_rawsocket_id(4), None);
        assert!(!Serializer::Json.is_binary());
        assert!(Serializer::MsgPack.is_binary() && Serializer::Cbor.is_binary());
    }

    #[test]
    fn every_message_round_trips_in_every_serializer() {
        let messages = all_messages();
        let mut codes: Vec<u64> = messages.iter().map(Message::code).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), 24, "every message type is covered");
        for s in Serializer::ALL {
            for m in &messages {
                let bytes = s.encode(m);
                let back = s.decode(&bytes);
                assert_eq!(back.as_ref().ok(), Some(m), "{} {m:?}: {back:?}", s.name());
            }
        }
    }

    #[test]
    fn kwargs_without_args_get_an_empty_args_list() {
        let with = |args| {
            Message::Yield(crate::wamp::message::Yield {
                request: crate::ids::RequestId(1),
                options: dict! {},
                payload: crate::wamp::message::Payload::new(args, Some(dict! {"k" => 1u64})),
            })
        };
        for s in Serializer::ALL {
            let bytes = s.encode(&with(None));
            assert_eq!(bytes, s.encode(&with(Some(vec![]))));
            assert_eq!(s.decode(&bytes).ok(), Some(with(Some(vec![]))));
        }
        let json = Serializer::Json.encode(&with(None));
        assert_eq!(json, br#"[70,1,{},[],{"k":1}]"#);
    }

    #[test]
    fn encoding_matches_into_list() {
        for s in Serializer::ALL {
            for m in all_messages() {
                let by_ref = s.encode(&m);
                let via_list = s.encode_value(&Value::List(m.into_list()));
                assert_eq!(by_ref, via_list, "{}", s.name());
            }
        }
    }

    #[test]
    fn binary_crosses_serializers() {
        let from_msgpack = Serializer::MsgPack.encode(&publish_with_bytes());
        let msg = Serializer::MsgPack.decode(&from_msgpack).expect("msgpack decodes");
        assert_eq!(msg, publish_with_bytes());

        let json = Serializer::Json.encode(&msg);
        let text = String::from_utf8(json.clone()).expect("JSON is UTF-8");
        assert!(text.contains(r#"["\u0000AAH/gA=="]"#), "{text}");
        assert_eq!(Serializer::Json.decode(&json).ok(), Some(msg.clone()));

        let cbor = Serializer::Cbor.encode(&msg);
        let bin = [0x44, 0x00, 0x01, 0xff, 0x80];
        assert!(cbor.windows(bin.len()).any(|w| w == bin), "{cbor:02x?}");
        assert_eq!(Serializer::Cbor.decode(&cbor).ok(), Some(msg));
    }

    #[test]
    fn numbers_survive_every_serializer() {
        let values = [
            Value::UInt(u64::MAX),
            Value::UInt(i64::MAX as u64 + 1),
            Value::Int(i64::MAX),
            Value::Int(i64::MIN),
            Value::Int(-1),
            Value::Int(0),
            Value::Float(1.0),
            Value::Float(-2.5e-300),
            Value::Float(f64::MAX),
        ];
        for s in Serializer::ALL {
            for v in &values {
                let back = s.decode_value(&s.encode_value(v));
                assert_eq!(back.as_ref().ok(), Some(v), "{}", s.name());
            }
        }
    }

    #[test]
    fn only_json_is_human_readable() {
        let v = Value::Bytes(vec![1, 2, 3]);
        assert_eq!(Serializer::Json.encode_value(&v), br#""\u0000AQID""#);
        assert_eq!(Serializer::MsgPack.encode_value(&v), [0xc4, 3, 1, 2, 3]);
        assert_eq!(Serializer::Cbor.encode_value(&v), [0x43, 1, 2, 3]);
    }

    #[test]
    fn decode_errors_are_classified() {
        let cases: [(Value, &str); 9] = [
            (Value::Dict(dict! {"a" => 1u64}), "NotAList"),
            (Value::List(vec![]), "NotAList"),
            (Value::List(vec!["hello".into()]), "NotAList"),
            (Value::List(vec![999u64.into(), 1u64.into()]), "UnknownType"),
            (Value::List(vec![1u64.into(), "realm".into()]), "Arity"),
            (Value::List(vec![1u64.into(), 5u64.into(), dict! {}.into()]), "Field"),
            (published(Value::Int(0)), "Field"),
            (published(Value::from((1u64 << 53) + 1)), "Field"),
            (published(Value::Int(-7)), "Field"),
        ];
        for s in Serializer::ALL {
            for (v, want) in &cases {
                let err = s.decode(&s.encode_value(v));
                let got = format!("{err:?}");
                assert!(got.contains(want), "{}: {v:?} gave {got}", s.name());
            }
        }
        let max_id = published(Value::from(1u64 << 53));
        for s in Serializer::ALL {
            assert!(s.decode(&s.encode_value(&max_id)).is_ok());
        }
    }

    fn published(publication: Value) -> Value {
        Value::List(vec![17u64.into(), 5u64.into(), publication])
    }

    fn nested(depth: usize) -> Value {
        (0..depth).fold(Value::Int(1), |v, _| Value::List(vec![v]))
    }

    #[test]
    fn nesting_is_limited() {
        for s in Serializer::ALL {
            let ok = s.encode_value(&nested(100));
            assert_eq!(s.decode_value(&ok).ok(), Some(nested(100)), "{}", s.name());
            let limit = s.encode_value(&nested(MAX_DEPTH));
            assert_eq!(s.decode_value(&limit).is_ok(), s != Serializer::Json, "{}", s.name());
            let deep = s.encode_value(&nested(MAX_DEPTH + 1));
            assert!(matches!(s.decode_value(&deep), Err(DecodeError::Syntax(_))), "{}", s.name());
        }
    }

    fn nils(n: usize) -> Value {
        Value::List(vec![Value::Null; n])
    }

    #[test]
    fn a_message_with_more_values_than_allowed_is_refused() {
        for s in Serializer::ALL {
            let bytes = s.encode_value(&nils(10_000));
            let err = s.decode_value_bounded(&bytes, 1000);
            assert!(matches!(err, Err(DecodeError::TooManyElements { max: 1000 })), "{}: {err:?}", s.name());
            assert_eq!(s.decode_value_bounded(&bytes, 10_001).ok(), Some(nils(10_000)), "{}", s.name());
        }
    }

    #[test]
    fn dictionary_keys_count_as_values() {
        let d: crate::wamp::value::Dict = (0..100).map(|i| (format!("k{i}"), Value::Null)).collect();
        for s in Serializer::ALL {
            let bytes = s.encode_value(&Value::Dict(d.clone()));
            assert!(s.decode_value_bounded(&bytes, 150).is_err(), "{}", s.name());
            assert!(s.decode_value_bounded(&bytes, 201).is_ok(), "{}", s.name());
        }
    }

    #[test]
    fn the_value_bound_never_refuses_a_valid_message_by_its_length() {
        for s in Serializer::ALL {
            for m in all_messages() {
                let bytes = s.encode(&m);
                assert_eq!(s.decode_bounded(&bytes, usize::MAX).ok(), Some(m), "{}", s.name());
            }
            let empty_dicts = Value::List(vec![Value::Dict(Default::default()); 50]);
            let bytes = s.encode_value(&empty_dicts);
            assert_eq!(s.decode_value(&bytes).ok(), Some(empty_dicts), "{}", s.name());
        }
    }

    #[test]
    fn a_huge_claimed_length_is_neither_trusted_nor_allocated() {
        // Array headers claiming 2^24 elements with a handful present.
        let msgpack = [0xdd, 0x01, 0x00, 0x00, 0x00, 0xc0, 0xc0];
        let cbor = [0x9a, 0x01, 0x00, 0x00, 0x00, 0xf6, 0xf6];
        assert!(matches!(Serializer::MsgPack.decode_value(&msgpack), Err(DecodeError::Syntax(_))));
        assert!(matches!(Serializer::Cbor.decode_value(&cbor), Err(DecodeError::Syntax(_))));
    }

    #[test]
    fn very_deep_input_does_not_overflow_the_stack() {
        let n = 100_000;
        let json: Vec<u8> = std::iter::repeat_n(b'[', n).collect();
        let msgpack: Vec<u8> = std::iter::repeat_n(0x91, n).collect();
        let cbor: Vec<u8> = std::iter::repeat_n(0x81, n).collect();
        let cbor_indef: Vec<u8> = std::iter::repeat_n(0x9f, n).collect();
        let cbor_tags: Vec<u8> = [0xd8, 0x20].repeat(n);
        assert!(Serializer::Json.decode_value(&json).is_err());
        assert!(Serializer::MsgPack.decode_value(&msgpack).is_err());
        assert!(Serializer::Cbor.decode_value(&cbor).is_err());
        assert!(Serializer::Cbor.decode_value(&cbor_indef).is_err());
        assert!(Serializer::Cbor.decode_value(&cbor_tags).is_err());
    }

    #[test]
    fn truncated_input_is_rejected() {
        for s in Serializer::ALL {
            for m in all_messages() {
                let bytes = s.encode(&m);
                for cut in 0..bytes.len() {
                    let prefix = bytes.get(..cut).unwrap_or_default();
                    assert!(s.decode(prefix).is_err(), "{} {m:?} cut at {cut}", s.name());
                }
            }
        }
    }

    #[test]
    fn trailing_bytes_are_rejected() {
        for s in Serializer::ALL {
            let mut bytes = s.encode(&publish_with_bytes());
            bytes.extend_from_slice(&s.encode_value(&Value::Int(1)));
            assert!(s.decode(&bytes).is_err(), "{}", s.name());
        }
    }

    #[test]
    fn mutated_input_never_panics() {
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for s in Serializer::ALL {
            for m in all_messages() {
                let original = s.encode(&m);
                for _ in 0..200 {
                    let mut bytes = original.clone();
                    for _ in 0..=(next() % 4) {
                        let i = (next() % bytes.len() as u64) as usize;
                        if let Some(b) = bytes.get_mut(i) {
                            *b = next() as u8;
                        }
                    }
                    let _ = s.decode(&bytes);
                }
            }
        }
    }

    #[test]
    fn nul_prefixed_strings_are_refused_where_json_could_not_carry_them() {
        use crate::wamp::value::Value;
        let nul = Value::List(vec![
            Value::from(16u64),
            Value::from(1u64),
            Value::Dict(Default::default()),
            Value::from("a.b"),
            Value::List(vec![Value::from("\0xyz")]),
        ]);
        for s in [Serializer::MsgPack, Serializer::Cbor] {
            assert!(s.decode(&s.encode_value(&nul)).is_err(), "{}", s.name());
        }
    }

    #[test]
    fn json_floats_round_trip_exactly() {
        let text = br#"[70,1,{},[],{"big":1844674407303199254740993}]"#;
        let first = Serializer::Json.decode(text).expect("decodes");
        let again = Serializer::Json.decode(&Serializer::Json.encode(&first)).expect("decodes");
        assert_eq!(first, again);
    }
}
