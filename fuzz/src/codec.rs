//! `decode_*` targets: bytes → `Serializer::decode`; a decoded message must encode and
//! decode back to itself.

use junction::wamp::codec::Serializer;
use junction::wamp::value::Value;

/// Decodes `data`; if that succeeds, checks two encode/decode round trips, exactly
/// (NaN equals NaN). JSON floats are exact since serde_json's `float_roundtrip`
/// feature is on (finding `artifacts-found/decode_json-float-not-roundtrip.json`).
pub fn decode_roundtrip(ser: Serializer, data: &[u8]) {
    let Ok(mut prev) = ser.decode(data) else { return };
    for round in 1..=2 {
        let next = match ser.decode(&ser.encode(&prev)) {
            Ok(m) => m,
            Err(e) => panic!("{} round {round}: re-encoding of {prev:?} does not decode: {e}", ser.name()),
        };
        let same = same_list(&prev.clone().into_list(), &next.clone().into_list());
        assert!(same, "{} round {round} changed the message:\n{prev:?}\n{next:?}", ser.name());
        prev = next;
    }
}

/// Structural equality in which NaN equals NaN.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Float(x), Value::Float(y)) => x == y || (x.is_nan() && y.is_nan()),
        (Value::List(x), Value::List(y)) => same_list(x, y),
        (Value::Dict(x), Value::Dict(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|((k1, v1), (k2, v2))| k1 == k2 && same(v1, v2))
        }
        _ => a == b,
    }
}

fn same_list(a: &[Value], b: &[Value]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same(x, y))
}
