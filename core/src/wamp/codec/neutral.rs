//! The serializer-neutral form of payloads and dictionaries used between nodes and in
//! the replicated table: MessagePack of the WAMP values (`[args|nil, kwargs|nil]` for
//! a payload). Compact, binary-safe, and decoded by the receiver into whatever its
//! clients speak. Empty payloads and dictionaries are empty byte strings.

use bytes::Bytes;

use super::{DecodeError, Serializer};
use crate::wamp::message::Payload;
use crate::wamp::value::{Dict, Value};

/// A payload as neutral bytes. A payload still in the MessagePack bytes it arrived in
/// is copied, not re-encoded.
pub fn encode_payload(p: &Payload) -> Vec<u8> {
    if p.is_empty() {
        return Vec::new();
    }
    if let Some(e) = p.encoded().filter(|e| e.serializer() == Serializer::MsgPack) {
        let kwargs = e.kwargs().unwrap_or(&[MSGPACK_NIL]);
        let mut out = Vec::with_capacity(1 + e.args().len() + kwargs.len());
        out.push(MSGPACK_PAIR);
        out.extend_from_slice(e.args());
        out.extend_from_slice(kwargs);
        return out;
    }
    let a = p.arguments();
    let args = a.args.clone().map(Value::List).unwrap_or(Value::Null);
    let kwargs = a.kwargs.clone().map(Value::Dict).unwrap_or(Value::Null);
    Serializer::MsgPack.encode_value(&Value::List(vec![args, kwargs]))
}

/// The `payload_format` of a link payload in MessagePack (`[args|nil, kwargs|nil]`).
pub const FORMAT_MSGPACK: u32 = 0;
/// The `payload_format` of a link payload in JSON (`[args]` or `[args,kwargs]`).
pub const FORMAT_JSON: u32 = 1;

/// A payload for another node, and its format: kept in JSON when it came from a
/// JSON client, so a JSON client there gets it without transcoding; MessagePack
/// otherwise ([`encode_payload`]).
pub fn encode_payload_tagged(p: &Payload) -> (Vec<u8>, u32) {
    match p.encoded().filter(|e| e.serializer() == Serializer::Json) {
        Some(e) => {
            let mut out = Vec::with_capacity(3 + e.args().len() + e.kwargs().map_or(0, <[u8]>::len));
            out.push(b'[');
            super::passthrough::push_json_elements(&mut out, e);
            out.push(b']');
            (out, FORMAT_JSON)
        }
        None => (encode_payload(p), FORMAT_MSGPACK),
    }
}

/// A payload from another node in `format` ([`encode_payload_tagged`]).
pub fn decode_payload_tagged(b: &Bytes, format: u32) -> Result<Payload, DecodeError> {
    match format {
        FORMAT_MSGPACK => decode_payload_bytes(b),
        FORMAT_JSON => super::passthrough::split_json_pair(b)
            .ok_or_else(|| DecodeError::Syntax("link payload: not a JSON [args] or [args, kwargs]".into())),
        other => Err(DecodeError::Syntax(format!("link payload: unknown format {other}"))),
    }
}

/// MessagePack's header of a two-element array, and its nil.
const MSGPACK_PAIR: u8 = 0x92;
const MSGPACK_NIL: u8 = 0xc0;

/// A payload from neutral bytes, kept encoded (slices of `b`) when it can be: a
/// node forwards it to its clients as it came.
pub fn decode_payload_bytes(b: &Bytes) -> Result<Payload, DecodeError> {
    match super::passthrough::split_neutral(b) {
        Some(p) => Ok(p),
        None => decode_payload(b),
    }
}

/// A payload from neutral bytes.
pub fn decode_payload(b: &[u8]) -> Result<Payload, DecodeError> {
    if b.is_empty() {
        return Ok(Payload::default());
    }
    let bad = |why: &str| DecodeError::Syntax(format!("neutral payload: {why}"));
    let Value::List(mut l) = Serializer::MsgPack.decode_value(b)? else { return Err(bad("not a list")) };
    if l.len() != 2 {
        return Err(bad("not [args, kwargs]"));
    }
    let kwargs = match l.pop() {
        Some(Value::Dict(d)) => Some(d),
        Some(Value::Null) => None,
        _ => return Err(bad("kwargs is not a dict")),
    };
    let args = match l.pop() {
        Some(Value::List(a)) => Some(a),
        Some(Value::Null) => None,
        _ => return Err(bad("args is not a list")),
    };
    Ok(Payload::new(args, kwargs))
}

/// A dictionary as neutral bytes.
pub fn encode_dict(d: &Dict) -> Vec<u8> {
    if d.is_empty() { Vec::new() } else { Serializer::MsgPack.encode_value(&Value::Dict(d.clone())) }
}

/// A dictionary from neutral bytes.
pub fn decode_dict(b: &[u8]) -> Result<Dict, DecodeError> {
    if b.is_empty() {
        return Ok(Dict::new());
    }
    match Serializer::MsgPack.decode_value(b)? {
        Value::Dict(d) => Ok(d),
        _ => Err(DecodeError::Syntax("neutral dict: not a dict".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dict;

    #[test]
    fn payloads_and_dicts_round_trip() {
        for p in [
            Payload::default(),
            Payload::args(vec![Value::Bytes(vec![0, 255]), Value::UInt(u64::MAX), Value::Float(0.5)]),
            Payload::new(None, Some(dict! { "k" => "v" })),
        ] {
            assert_eq!(decode_payload(&encode_payload(&p)).ok(), Some(p));
        }
        let d = dict! { "a" => 1u64 };
        assert_eq!(decode_dict(&encode_dict(&d)).ok(), Some(d));
        assert!(decode_payload(&[0xc1]).is_err());
        assert!(decode_dict(&encode_payload(&Payload::args(vec![]))).is_err());
    }
}
