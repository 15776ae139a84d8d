//! The MessagePack serializer (`wamp.2.msgpack`), through `rmp-serde`.
//!
//! `bin` is [`Value::Bytes`], `str` is [`Value::Str`]; extension types (but msgpackr's
//! `undefined`, read as nil: see `serde_value`), non-string map
//! keys and bytes after the value are decode errors. As `rmp-serde` does, a `str`
//! holding invalid UTF-8 reads as binary.

use std::io;

use serde::Deserialize;
use serde::Serialize;
use serde::de::IgnoredAny;

use super::serde_value::{Budget, deserialize_bounded, syntax};
use super::{DecodeError, MAX_DEPTH};
use crate::wamp::value::Value;

/// Encodes any serializable WAMP data as MessagePack.
pub(super) fn encode<T: Serialize + ?Sized>(v: &T) -> Vec<u8> {
    rmp_serde::to_vec(v).expect("MessagePack encoding into a Vec cannot fail")
}

/// Decodes one MessagePack value of at most `budget` values, which must span the
/// whole input.
pub(super) fn decode(bytes: &[u8], budget: &Budget) -> Result<Value, DecodeError> {
    let mut de = rmp_serde::Deserializer::from_read_ref(bytes);
    // Our own limit in the value visitor trips first; this one bounds the trailing check.
    de.set_max_depth(MAX_DEPTH + 2);
    let value = deserialize_bounded(&mut de, budget).map_err(syntax)?;
    match IgnoredAny::deserialize(&mut de) {
        Err(rmp_serde::decode::Error::InvalidMarkerRead(e)) if e.kind() == io::ErrorKind::UnexpectedEof => {
            Ok(value)
        }
        _ => Err(DecodeError::Syntax("bytes after the end of the value".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::super::Serializer;
    use super::super::samples::{check_spec_e2ee, hex, spec_messages};
    use super::*;
    use crate::dict;

    const SPEC_MSGPACK: [&str; 5] = [
        "9510ce0e49c1af80b2636f6d2e6d796170702e6d79746f7069633191ad48656c6c6f2c20776f726c6421",
        "9510ce3ade68b181ab666f72776172645f666f729183a773657373696f6ecece0a6a14a6617574686964a7636c69656e7431a861757468726f6c65a866726f6e74656e64b0636f6d2e6d796170702e746f70696332922aa474657374",
        "9524ce0095e526cf0000001a21a278be8091ad48656c6c6f2c206576656e7421",
        "9301b1636f6d2e6578616d706c652e7265616c6d81a5726f6c657382aa7375627363726962657280a97075626c697368657280",
        "9530ce00773bf780b6636f6d2e6d796170702e6d7970726f6365647572653191ad48656c6c6f2c20776f726c6421",
    ];

    #[test]
    fn msgpackr_undefined_extension_reads_as_nil() {
        // wampy.js (msgpackr) encodes `undefined` as fixext1 type 0 data 0: d4 00 00
        let bytes = hex("9320d40000a3616263");
        assert_eq!(
            Serializer::MsgPack.decode_value(&bytes).ok(),
            Some(Value::List(vec![Value::Int(32), Value::Null, Value::Str("abc".into())]))
        );
        let in_map = hex("81a172d40000");
        assert_eq!(
            Serializer::MsgPack.decode_value(&in_map).ok(),
            Some(Value::Dict(dict! { "r" => Value::Null }))
        );
        // any other extension is still refused
        assert!(Serializer::MsgPack.decode_value(&hex("91d40501")).is_err());
        assert!(Serializer::MsgPack.decode_value(&hex("91d50000ff")).is_err());
    }

    #[test]
    fn spec_vectors_decode() {
        for (h, want) in SPEC_MSGPACK.iter().zip(spec_messages()) {
            assert_eq!(Serializer::MsgPack.decode(&hex(h)).ok(), Some(want), "{h}");
        }
    }

    #[test]
    fn spec_vectors_encode_identically() {
        let [publish, _, event, _, call] = spec_messages();
        assert_eq!(encode(&publish), hex(SPEC_MSGPACK[0]));
        assert_eq!(encode(&event), hex(SPEC_MSGPACK[2]));
        assert_eq!(encode(&call), hex(SPEC_MSGPACK[4]));
    }

    #[test]
    fn spec_e2ee_vector_carries_binary() {
        let h = "9524cf00000001509c397ecf000000e891bf990882a8656e635f616c676fa963727970746f626f78ae656e635f73657269616c697a6572a76d73677061636bc41e83a5636f6c6f72a4626c7565a473697a65a56c61726765a5636f756e741e";
        check_spec_e2ee(Serializer::MsgPack, &hex(h));
    }

    #[test]
    fn scalar_types_decode() {
        // {"n": nil, "f": float32 1.0, "t": true, "i": -33, "b": bin [7]}
        let bytes = hex("85a16ec0a166ca3f800000a174c3a169d0dfa162c40107");
        let want = dict! {
            "n" => Value::Null,
            "f" => Value::Float(1.0),
            "t" => true,
            "i" => Value::Int(-33),
            "b" => Value::Bytes(vec![7]),
        };
        assert_eq!(Serializer::MsgPack.decode_value(&bytes).ok(), Some(Value::Dict(want)));
    }

    #[test]
    fn invalid_input_is_a_syntax_error() {
        let cases = [
            "",             // empty
            "c1",           // never-used marker
            "d40100",       // fixext 1
            "c70105ff",     // ext 8
            "810102",       // {1: 2}: integer key
            "81c4016101",   // {b"a": 1}: binary key
            "81a2ff6101",   // {"\xff\x61": 1}: key not UTF-8
            "dcffff",       // array16 of 65535 elements, none present
            "ddffffffff",   // array32 claiming 2^32-1 elements
            "dbffffffff61", // str32 longer than the input
            "93010203c0",   // trailing nil
        ];
        for h in cases {
            assert!(matches!(Serializer::MsgPack.decode_value(&hex(h)), Err(DecodeError::Syntax(_))), "{h}");
        }
    }
}
