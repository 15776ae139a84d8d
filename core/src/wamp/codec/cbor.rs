//! The CBOR serializer (`wamp.2.cbor`): encoding through `minicbor-serde`, decoding by
//! a small reader of its own.
//!
//! `minicbor-serde` refuses tags and `undefined` in self-describing decoding, so the
//! reader here handles RFC 8949 directly: byte strings are [`Value::Bytes`], tags are
//! skipped (bignums that fit 64 bits become integers), `undefined` is
//! [`Value::Null`], half floats decode, map keys must be text strings, indefinite
//! lengths are accepted, and bytes after the value are an error.

use serde::Serialize;

use super::serde_value::Budget;
use super::{DecodeError, MAX_DEPTH};
use crate::wamp::value::{Dict, List, Value};

/// Encodes any serializable WAMP data as CBOR (definite lengths, shortest integers).
pub(super) fn encode<T: Serialize + ?Sized>(v: &T) -> Vec<u8> {
    minicbor_serde::to_vec(v).expect("CBOR encoding into a Vec cannot fail")
}

/// Decodes one CBOR data item of at most `budget` values, which must span the whole
/// input.
pub(super) fn decode(bytes: &[u8], budget: &Budget) -> Result<Value, DecodeError> {
    let mut r = Reader { buf: bytes, pos: 0, budget };
    let v = r.item(0)?;
    if r.pos != bytes.len() {
        return Err(err("bytes after the end of the value"));
    }
    Ok(v)
}

fn err(what: &str) -> DecodeError {
    DecodeError::Syntax(format!("CBOR: {what}"))
}

/// Marker of an indefinite-length item's end.
const BREAK: u8 = 0xff;
/// Tags whose content is a big-endian unsigned (2) or negative (3) integer.
const TAG_POS_BIGNUM: u64 = 2;
const TAG_NEG_BIGNUM: u64 = 3;

/// What follows an initial byte: a count/value, or "indefinite" (additional info 31).
enum Arg {
    Val(u64),
    Indefinite,
}

/// Capacity reserved up front for a list, whatever length the input claims.
const MAX_PREALLOC: usize = 256;

struct Reader<'a, 'b> {
    buf: &'a [u8],
    pos: usize,
    budget: &'b Budget,
}

impl<'a> Reader<'a, '_> {
    fn byte(&mut self) -> Result<u8, DecodeError> {
        let b = *self.buf.get(self.pos).ok_or_else(|| err("unexpected end of input"))?;
        self.pos += 1;
        Ok(b)
    }

    fn take(&mut self, n: u64) -> Result<&'a [u8], DecodeError> {
        let end = usize::try_from(n)
            .ok()
            .and_then(|n| self.pos.checked_add(n))
            .filter(|&end| end <= self.buf.len())
            .ok_or_else(|| err("length runs past the end of input"))?;
        let s = self.buf.get(self.pos..end).ok_or_else(|| err("unexpected end of input"))?;
        self.pos = end;
        Ok(s)
    }

    fn uint(&mut self, n: usize) -> Result<u64, DecodeError> {
        Ok(self.take(n as u64)?.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
    }

    /// Reads the argument of an initial byte's additional information.
    fn arg(&mut self, info: u8) -> Result<Arg, DecodeError> {
        Ok(Arg::Val(match info {
            0..=23 => u64::from(info),
            24 => self.uint(1)?,
            25 => self.uint(2)?,
            26 => self.uint(4)?,
            27 => self.uint(8)?,
            31 => return Ok(Arg::Indefinite),
            _ => return Err(err("reserved additional information")),
        }))
    }

    /// Consumes a break marker if one is next.
    fn at_break(&mut self) -> Result<bool, DecodeError> {
        match self.buf.get(self.pos) {
            Some(&BREAK) => {
                self.pos += 1;
                Ok(true)
            }
            Some(_) => Ok(false),
            None => Err(err("unterminated indefinite-length item")),
        }
    }

    /// Reads one data item nested in `depth` containers. Tags are skipped in a loop,
    /// so a chain of them costs no stack.
    fn item(&mut self, depth: usize) -> Result<Value, DecodeError> {
        if !self.budget.try_take() {
            return Err(err("too many values"));
        }
        let mut tag = None;
        loop {
            let initial = self.byte()?;
            let (major, info) = (initial >> 5, initial & 0x1f);
            if major == 6 {
                match self.arg(info)? {
                    Arg::Val(t) => tag = Some(t),
                    Arg::Indefinite => return Err(err("indefinite tag")),
                }
                continue;
            }
            let v = self.untagged(major, info, depth)?;
            return match (tag, v) {
                (Some(TAG_POS_BIGNUM), Value::Bytes(b)) => bignum(&b).map(Value::from),
                (Some(TAG_NEG_BIGNUM), Value::Bytes(b)) => bignum(&b)
                    .ok()
                    .and_then(|n| i64::try_from(n).ok())
                    .map(|n| Value::Int(-1 - n))
                    .ok_or_else(|| err("negative bignum out of range")),
                (_, v) => Ok(v),
            };
        }
    }

    fn untagged(&mut self, major: u8, info: u8, depth: usize) -> Result<Value, DecodeError> {
        match (major, self.arg_or_simple(major, info)?) {
            (0, Arg::Val(n)) => Ok(Value::from(n)),
            (1, Arg::Val(n)) => {
                i64::try_from(n).map(|n| Value::Int(-1 - n)).map_err(|_| err("negative integer out of range"))
            }
            (2, arg) => self.string(2, arg).map(Value::Bytes),
            (3, arg) => match String::from_utf8(self.string(3, arg)?) {
                Ok(s) if s.starts_with('\0') => {
                    Err(err("a string may not start with U+0000 (reserved for binary in JSON)"))
                }
                Ok(s) => Ok(Value::Str(s)),
                Err(_) => Err(err("text string is not UTF-8")),
            },
            (4, arg) => self.list(arg, child(depth)?).map(Value::List),
            (5, arg) => self.dict(arg, child(depth)?).map(Value::Dict),
            (7, _) => self.simple(info),
            _ => Err(err("indefinite length on an integer")),
        }
    }

    /// Major type 7 interprets its additional information itself.
    fn arg_or_simple(&mut self, major: u8, info: u8) -> Result<Arg, DecodeError> {
        if major == 7 { Ok(Arg::Val(0)) } else { self.arg(info) }
    }

    fn simple(&mut self, info: u8) -> Result<Value, DecodeError> {
        match info {
            20 => Ok(Value::Bool(false)),
            21 => Ok(Value::Bool(true)),
            22 | 23 => Ok(Value::Null),
            25 => Ok(Value::Float(f16_to_f64(self.uint(2)? as u16))),
            26 => Ok(Value::Float(f64::from(f32::from_bits(self.uint(4)? as u32)))),
            27 => Ok(Value::Float(f64::from_bits(self.uint(8)?))),
            31 => Err(err("break outside an indefinite-length item")),
            _ => Err(err("unsupported simple value")),
        }
    }

    /// The content of a byte (major 2) or text (major 3) string, chunks joined.
    fn string(&mut self, major: u8, arg: Arg) -> Result<Vec<u8>, DecodeError> {
        match arg {
            Arg::Val(n) => Ok(self.take(n)?.to_vec()),
            Arg::Indefinite => {
                let mut out = Vec::new();
                while !self.at_break()? {
                    let initial = self.byte()?;
                    if initial >> 5 != major {
                        return Err(err("chunk of the wrong type in an indefinite string"));
                    }
                    match self.arg(initial & 0x1f)? {
                        Arg::Val(n) => out.extend_from_slice(self.take(n)?),
                        Arg::Indefinite => return Err(err("nested indefinite string")),
                    }
                }
                Ok(out)
            }
        }
    }

    fn list(&mut self, arg: Arg, depth: usize) -> Result<List, DecodeError> {
        match arg {
            Arg::Val(n) => {
                let n = self.claimed_len(n)?;
                let mut list = List::with_capacity(n.min(MAX_PREALLOC));
                for _ in 0..n {
                    list.push(self.item(depth)?);
                }
                Ok(list)
            }
            Arg::Indefinite => {
                let mut list = List::new();
                while !self.at_break()? {
                    list.push(self.item(depth)?);
                }
                Ok(list)
            }
        }
    }

    fn dict(&mut self, arg: Arg, depth: usize) -> Result<Dict, DecodeError> {
        let mut dict = Dict::new();
        match arg {
            Arg::Val(n) => {
                for _ in 0..self.claimed_len(n)? {
                    self.entry(&mut dict, depth)?;
                }
            }
            Arg::Indefinite => {
                while !self.at_break()? {
                    self.entry(&mut dict, depth)?;
                }
            }
        }
        Ok(dict)
    }

    fn entry(&mut self, dict: &mut Dict, depth: usize) -> Result<(), DecodeError> {
        match self.item(depth)? {
            Value::Str(k) => {
                let v = self.item(depth)?;
                dict.insert(k, v);
                Ok(())
            }
            _ => Err(err("map key is not a text string")),
        }
    }

    /// A container's element count, rejected when the input cannot hold that many.
    fn claimed_len(&self, n: u64) -> Result<usize, DecodeError> {
        let left = self.buf.len().saturating_sub(self.pos);
        usize::try_from(n).ok().filter(|&n| n <= left).ok_or_else(|| err("container longer than the input"))
    }
}

/// The nesting level of a container's elements, or an error past [`MAX_DEPTH`].
fn child(depth: usize) -> Result<usize, DecodeError> {
    if depth >= MAX_DEPTH {
        return Err(err("nesting too deep"));
    }
    Ok(depth + 1)
}

/// A bignum's big-endian magnitude, when it fits 64 bits.
fn bignum(b: &[u8]) -> Result<u64, DecodeError> {
    let start = b.iter().position(|&x| x != 0).unwrap_or(b.len());
    let digits = b.get(start..).unwrap_or_default();
    if digits.len() > 8 {
        return Err(err("bignum out of the 64-bit range"));
    }
    Ok(digits.iter().fold(0u64, |acc, &x| (acc << 8) | u64::from(x)))
}

/// IEEE 754 half precision to double (RFC 8949, appendix D).
fn f16_to_f64(h: u16) -> f64 {
    let exp = i32::from((h >> 10) & 0x1f);
    let mant = f64::from(h & 0x3ff);
    let magnitude = match exp {
        0 => mant * 2f64.powi(-24),
        31 if mant == 0.0 => f64::INFINITY,
        31 => f64::NAN,
        _ => (1.0 + mant / 1024.0) * 2f64.powi(exp - 15),
    };
    if h & 0x8000 != 0 { -magnitude } else { magnitude }
}

#[cfg(test)]
mod tests {
    use super::super::Serializer;
    use super::super::samples::{check_spec_e2ee, hex, spec_messages};
    use super::*;
    use crate::dict;

    const SPEC_CBOR: [&str; 5] = [
        "85101a0e49c1afa072636f6d2e6d796170702e6d79746f70696331816d48656c6c6f2c20776f726c6421",
        "85101a3ade68b1a16b666f72776172645f666f7281a36773657373696f6e1ace0a6a146661757468696467636c69656e74316861757468726f6c656866726f6e74656e6470636f6d2e6d796170702e746f7069633282182a6474657374",
        "8518241a0095e5261b0000001a21a278bea0816d48656c6c6f2c206576656e7421",
        "830171636f6d2e6578616d706c652e7265616c6da165726f6c6573a26a73756273637269626572a0697075626c6973686572a0",
        "8518301a00773bf7a076636f6d2e6d796170702e6d7970726f63656475726531816d48656c6c6f2c20776f726c6421",
    ];

    fn dec(h: &str) -> Option<Value> {
        Serializer::Cbor.decode_value(&hex(h)).ok()
    }

    #[test]
    fn cbor_x_float_ids_read_as_integers() {
        // cbor-x (wampy.js) sends ids above 2^32 as float64: UNSUBSCRIBE 2 for subscription
        // 626477088666828 as 83 18 22 02 fb 43 01 ce 38 82 a3 a6 60
        let m = Serializer::Cbor.decode(&hex("83182202fb4301ce3882a3a660")).expect("decodes");
        let crate::wamp::message::Message::Unsubscribe(u) = m else { panic!("{m:?}") };
        assert_eq!(u.subscription.0, 626_477_088_666_828);
        // a fractional or negative float is still not an id
        assert!(Serializer::Cbor.decode(&hex("83182202fb3ff8000000000000")).is_err());
        assert!(Serializer::Cbor.decode(&hex("83182202fbc000000000000000")).is_err());
    }

    #[test]
    fn spec_vectors_decode() {
        for (h, want) in SPEC_CBOR.iter().zip(spec_messages()) {
            assert_eq!(Serializer::Cbor.decode(&hex(h)).ok(), Some(want), "{h}");
        }
    }

    #[test]
    fn spec_vectors_encode_identically() {
        let [publish, _, event, _, call] = spec_messages();
        assert_eq!(encode(&publish), hex(SPEC_CBOR[0]));
        assert_eq!(encode(&event), hex(SPEC_CBOR[2]));
        assert_eq!(encode(&call), hex(SPEC_CBOR[4]));
    }

    #[test]
    fn spec_e2ee_vector_carries_binary() {
        let h = "8518241b00000001509c397e1b000000e891bf9908a268656e635f616c676f6963727970746f626f786e656e635f73657269616c697a6572676d73677061636b581e83a5636f6c6f72a4626c7565a473697a65a56c61726765a5636f756e741e";
        check_spec_e2ee(Serializer::Cbor, &hex(h));
    }

    #[test]
    fn rfc8949_examples_decode() {
        let cases = [
            ("00", Value::Int(0)),
            ("1bffffffffffffffff", Value::UInt(u64::MAX)),
            ("3b7fffffffffffffff", Value::Int(i64::MIN)),
            ("20", Value::Int(-1)),
            ("3903e7", Value::Int(-1000)),
            ("f90000", Value::Float(0.0)),
            ("f93c00", Value::Float(1.0)),
            ("f97bff", Value::Float(65504.0)),
            ("f90001", Value::Float(5.960464477539063e-8)),
            ("f9c400", Value::Float(-4.0)),
            ("f97c00", Value::Float(f64::INFINITY)),
            ("fa47c35000", Value::Float(100000.0)),
            ("fb3ff199999999999a", Value::Float(1.1)),
            ("f4", Value::Bool(false)),
            ("f5", Value::Bool(true)),
            ("f6", Value::Null),
            ("f7", Value::Null),
            ("4401020304", Value::Bytes(vec![1, 2, 3, 4])),
            ("5f42010243030405ff", Value::Bytes(vec![1, 2, 3, 4, 5])),
            ("7f657374726561646d696e67ff", Value::Str("streaming".into())),
            ("62c3bc", Value::Str("ü".into())),
            ("9f018202039f0405ffff", dec("8301820203820405").unwrap_or_default()),
            (
                "bf61610161629f0203ffff",
                Value::Dict(dict! {"a" => 1u64, "b" => Value::List(vec![2u64.into(), 3u64.into()])}),
            ),
        ];
        for (h, want) in cases {
            assert_eq!(dec(h), Some(want), "{h}");
        }
        assert!(dec("f97e00").is_some_and(|v| matches!(v, Value::Float(f) if f.is_nan())));
    }

    #[test]
    fn tags_are_skipped_and_bignums_read() {
        let cases = [
            ("c074323031332d30332d32315432303a30343a30305a", Value::Str("2013-03-21T20:04:00Z".into())),
            ("c11a514b67b0", Value::Int(1_363_896_240)),
            ("d9d9f783010203", dec("83010203").unwrap_or_default()),
            (
                "d82076687474703a2f2f7777772e6578616d706c652e636f6d",
                Value::Str("http://www.example.com".into()),
            ),
            ("c248ffffffffffffffff", Value::UInt(u64::MAX)),
            ("c240", Value::Int(0)),
            ("c34107", Value::Int(-8)),
            ("c3487fffffffffffffff", Value::Int(i64::MIN)),
        ];
        for (h, want) in cases {
            assert_eq!(dec(h), Some(want), "{h}");
        }
        assert_eq!(dec("c249010000000000000000"), None, "2^64 does not fit");
    }

    #[test]
    fn invalid_input_is_a_syntax_error() {
        let cases = [
            "",                       // empty
            "1c",                     // reserved additional information
            "ff",                     // lone break
            "1f",                     // indefinite unsigned integer
            "f800",                   // simple value 0 (two-byte form)
            "e0",                     // simple value 0
            "a10102",                 // {1: 2}: integer key
            "a1410161",               // {h'01': ...}: byte-string key
            "6261ff",                 // text string not UTF-8
            "5f6161ff",               // text chunk in a byte string
            "9bffffffffffffffff",     // array claiming 2^64-1 elements
            "5b0000000100000000",     // byte string longer than the input
            "9f01",                   // unterminated indefinite array
            "3b7fffffffffffffff00",   // trailing byte
            "c349010000000000000000", // negative bignum below i64::MIN
            "3b8000000000000000",     // -2^63-1
            "df",                     // indefinite tag
        ];
        for h in cases {
            assert!(matches!(Serializer::Cbor.decode_value(&hex(h)), Err(DecodeError::Syntax(_))), "{h}");
        }
    }

    #[test]
    fn value_deserialize_works_with_minicbor_serde_too() {
        let bytes = encode(&Value::List(vec![Value::Bytes(vec![1]), Value::Int(-3), "x".into()]));
        let via_serde: Option<Value> = minicbor_serde::from_slice(&bytes).ok();
        assert_eq!(via_serde, Serializer::Cbor.decode_value(&bytes).ok());
    }
}
