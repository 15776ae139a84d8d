//! `decode_*` targets: bytes → `Serializer::decode`; a decoded message must encode and
//! decode back to itself.

use junction::wamp::codec::Serializer;
use junction::wamp::value::Value;

/// Decodes `data`; if that succeeds, checks two encode/decode round trips.
///
/// `serde_json` without its `float_roundtrip` feature parses some numbers (long
/// mantissas, e.g. integers beyond `u64::MAX`) one ULP off the correctly rounded
/// float, so a float can move by an ULP on every JSON round trip: see
/// `artifacts-found/README.md`. For JSON, floats are compared within 4 ULP; the
/// other serializers must round-trip exactly.
pub fn decode_roundtrip(ser: Serializer, data: &[u8]) {
    let Ok(mut prev) = ser.decode(data) else { return };
    let approx = ser == Serializer::Json;
    for round in 1..=2 {
        let next = match ser.decode(&ser.encode(&prev)) {
            Ok(m) => m,
            Err(e) => panic!("{} round {round}: re-encoding of {prev:?} does not decode: {e}", ser.name()),
        };
        let same = same_list(&prev.clone().into_list(), &next.clone().into_list(), approx);
        assert!(same, "{} round {round} changed the message:\n{prev:?}\n{next:?}", ser.name());
        prev = next;
    }
}

/// Structural equality; NaN equals NaN; with `approx`, floats may differ by 4 ULP.
fn same(a: &Value, b: &Value, approx: bool) -> bool {
    match (a, b) {
        (Value::Float(x), Value::Float(y)) => {
            x.to_bits() == y.to_bits()
                || (x.is_nan() && y.is_nan())
                || x == y
                || (approx && x.is_finite() && y.is_finite() && x.to_bits().abs_diff(y.to_bits()) <= 4)
        }
        (Value::List(x), Value::List(y)) => same_list(x, y, approx),
        (Value::Dict(x), Value::Dict(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|((k1, v1), (k2, v2))| k1 == k2 && same(v1, v2, approx))
        }
        _ => a == b,
    }
}

fn same_list(a: &[Value], b: &[Value], approx: bool) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same(x, y, approx))
}
