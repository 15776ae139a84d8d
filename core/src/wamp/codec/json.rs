//! The JSON serializer (`wamp.2.json`), through `serde_json`.
//!
//! Binary values travel as strings `"\u0000" + base64` (standard alphabet, padded on
//! encode, padding optional on decode); any decoded string starting with `\u0000` is
//! binary, and bad base64 after it is a decode error. Integers decode to
//! [`Value::Int`] or, above `i64::MAX`, [`Value::UInt`]; numbers with a fraction or
//! exponent stay floats. `serde_json` itself stops nesting at 127 levels.

use serde::Serialize;

use super::DecodeError;
use super::serde_value::{Budget, deserialize_bounded, syntax};
use crate::wamp::value::Value;

/// Encodes any serializable WAMP data as compact JSON.
pub(super) fn encode<T: Serialize + ?Sized>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).expect("JSON encoding of string-keyed data into a Vec cannot fail")
}

/// Decodes one JSON value of at most `budget` values; only whitespace may follow it.
pub(super) fn decode(bytes: &[u8], budget: &Budget) -> Result<Value, DecodeError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = deserialize_bounded(&mut de, budget).map_err(syntax)?;
    de.end().map_err(syntax)?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::super::Serializer;
    use super::super::samples::{check_spec_e2ee, hex, spec_messages};
    use super::*;
    use crate::dict;

    const SPEC_JSON: [&str; 5] = [
        r#"[16,239714735,{},"com.myapp.mytopic1",["Hello, world!"]]"#,
        r#"[16,987654321,{"forward_for":[{"session":3456789012,"authid":"client1","authrole":"frontend"}]},"com.myapp.topic2",[42,"test"]]"#,
        r#"[36,9823526,112233445566,{},["Hello, event!"]]"#,
        r#"[1, "com.example.realm", {"roles": {"subscriber": {}, "publisher": {}}}]"#,
        r#"[48, 7814135, {}, "com.myapp.myprocedure1", ["Hello, world!"]]"#,
    ];

    #[test]
    fn spec_vectors_decode() {
        for (text, want) in SPEC_JSON.iter().zip(spec_messages()) {
            assert_eq!(Serializer::Json.decode(text.as_bytes()).ok(), Some(want), "{text}");
        }
        let spaced = r#"[16, 239714735, {}, "com.myapp.mytopic1", ["Hello, world!"]]"#;
        let [publish, ..] = spec_messages();
        assert_eq!(Serializer::Json.decode(spaced.as_bytes()).ok(), Some(publish));
    }

    #[test]
    fn spec_vectors_encode_compactly() {
        let [publish, _, event, _, call] = spec_messages();
        assert_eq!(Serializer::Json.encode(&publish), SPEC_JSON[0].as_bytes());
        assert_eq!(Serializer::Json.encode(&event), SPEC_JSON[2].as_bytes());
        let compact_call = r#"[48,7814135,{},"com.myapp.myprocedure1",["Hello, world!"]]"#;
        assert_eq!(Serializer::Json.encode(&call), compact_call.as_bytes());
    }

    #[test]
    fn spec_e2ee_vector_carries_binary() {
        let text = r#"[36,5647382910,998877665544,{"enc_algo":"cryptobox","enc_serializer":"msgpack"},"\u0000g6Vjb2xvcqRibHVlpHNpemWlbGFyZ2WlY291bnQe"]"#;
        check_spec_e2ee(Serializer::Json, text.as_bytes());
    }

    #[test]
    fn binary_convention_follows_the_spec_example() {
        let bytes = hex("10e3ff9053075c526f5fc06d4fe37cdb");
        let text = br#""\u0000EOP/kFMHXFJvX8BtT+N82w==""#;
        assert_eq!(encode(&Value::Bytes(bytes.clone())), text);
        assert_eq!(Serializer::Json.decode_value(text).ok(), Some(Value::Bytes(bytes.clone())));
        let unpadded = br#""\u0000EOP/kFMHXFJvX8BtT+N82w""#;
        assert_eq!(Serializer::Json.decode_value(unpadded).ok(), Some(Value::Bytes(bytes)));
        assert_eq!(Serializer::Json.decode_value(br#""\u0000""#).ok(), Some(Value::Bytes(vec![])));
    }

    #[test]
    fn bad_base64_after_nul_is_an_error() {
        for text in [r#""\u0000!!!!""#, r#""\u0000EOP/kF=MH""#, r#"["\u0000a"]"#] {
            assert!(
                matches!(Serializer::Json.decode_value(text.as_bytes()), Err(DecodeError::Syntax(_))),
                "{text}"
            );
        }
    }

    #[test]
    fn strings_and_keys_without_leading_nul_stay_strings() {
        assert_eq!(Serializer::Json.decode_value(br#""a\u0000b""#).ok(), Some(Value::Str("a\0b".into())));
        let d = Serializer::Json.decode_value(br#"{"\u0000AQID": "x"}"#).ok();
        assert_eq!(d, Some(Value::Dict(dict! {"\0AQID" => "x"})));
    }

    #[test]
    fn numbers_are_classified() {
        let cases = [
            ("5", Value::Int(5)),
            ("-5", Value::Int(-5)),
            ("9223372036854775807", Value::Int(i64::MAX)),
            ("9223372036854775808", Value::UInt(1 << 63)),
            ("18446744073709551615", Value::UInt(u64::MAX)),
            ("-9223372036854775808", Value::Int(i64::MIN)),
            ("1.0", Value::Float(1.0)),
            ("1e2", Value::Float(100.0)),
        ];
        for (text, want) in cases {
            assert_eq!(Serializer::Json.decode_value(text.as_bytes()).ok(), Some(want), "{text}");
        }
        assert_eq!(encode(&Value::Float(1.0)), b"1.0");
    }

    #[test]
    fn malformed_json_is_a_syntax_error() {
        let cases: [&[u8]; 7] =
            [b"", b"[1,", b"[1,\"x\",{}]]", b"\xff\xfe", b"[1,\"\xff\",{}]", b"nul", b"{1: 2}"];
        for bytes in cases {
            assert!(matches!(Serializer::Json.decode_value(bytes), Err(DecodeError::Syntax(_))), "{bytes:?}");
        }
        assert!(Serializer::Json.decode_value(b" [1,\"r\",{}]\n").is_ok());
    }
}
