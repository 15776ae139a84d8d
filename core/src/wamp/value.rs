//! The dynamic value carried in WAMP payloads and option dictionaries.
//!
//! One type for all three serializers, so a payload published over MessagePack can be
//! delivered over JSON or CBOR without loss. Binary data is a distinct variant: over
//! JSON it travels as a string `"\u0000" + base64` (the spec's convention), over
//! MessagePack and CBOR as native byte strings. The codecs in [`super::codec`] do that
//! mapping; this module only holds the data and its accessors.

use std::collections::BTreeMap;

/// A WAMP dictionary: string keys, ordered so encodings are deterministic.
pub type Dict = BTreeMap<String, Value>;
/// A WAMP list.
pub type List = Vec<Value>;

/// Any value a WAMP message can carry.
#[derive(Clone, Debug, PartialEq, Default)]
pub enum Value {
    /// JSON `null`, MessagePack nil, CBOR null/undefined.
    #[default]
    Null,
    /// A boolean.
    Bool(bool),
    /// A signed integer (negative values, and non-negative ones that fit).
    Int(i64),
    /// An unsigned integer above `i64::MAX`.
    UInt(u64),
    /// A floating point number.
    Float(f64),
    /// A UTF-8 string.
    Str(String),
    /// Binary data.
    Bytes(Vec<u8>),
    /// A list.
    List(List),
    /// A dictionary.
    Dict(Dict),
}

/// The largest integer a float64 holds exactly (2^53).
const MAX_EXACT_FLOAT: f64 = 9_007_199_254_740_992.0;

impl Value {
    /// Roughly the bytes this value takes in memory, with everything it owns.
    pub fn memory_size(&self) -> usize {
        std::mem::size_of::<Value>()
            + match self {
                Value::Str(s) => s.len(),
                Value::Bytes(b) => b.len(),
                Value::List(l) => l.iter().map(Value::memory_size).sum(),
                Value::Dict(d) => {
                    d.iter().map(|(k, v)| std::mem::size_of::<String>() + k.len() + v.memory_size()).sum()
                }
                _ => 0,
            }
    }

    /// The value as a non-negative integer, if it is one.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Value::Int(i) if i >= 0 => Some(i as u64),
            Value::UInt(u) => Some(u),
            // cbor-x (wampy.js) sends every number above 2^32 as a float64, ids
            // included: an integral float up to 2^53 (where floats stop being exact)
            // is that integer
            Value::Float(f) if (0.0..=MAX_EXACT_FLOAT).contains(&f) && f.fract() == 0.0 => Some(f as u64),
            _ => None,
        }
    }

    /// The value as a string slice, if it is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The value as a boolean, if it is one.
    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            Value::Bool(b) => Some(b),
            _ => None,
        }
    }

    /// The value as a dictionary, if it is one.
    pub fn as_dict(&self) -> Option<&Dict> {
        match self {
            Value::Dict(d) => Some(d),
            _ => None,
        }
    }

    /// The value as a list, if it is one.
    pub fn as_list(&self) -> Option<&List> {
        match self {
            Value::List(l) => Some(l),
            _ => None,
        }
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Str(s.to_owned())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Str(s)
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}

impl From<u64> for Value {
    fn from(u: u64) -> Self {
        i64::try_from(u).map(Value::Int).unwrap_or(Value::UInt(u))
    }
}

impl From<i64> for Value {
    fn from(i: i64) -> Self {
        Value::Int(i)
    }
}

impl From<Dict> for Value {
    fn from(d: Dict) -> Self {
        Value::Dict(d)
    }
}

impl From<List> for Value {
    fn from(l: List) -> Self {
        Value::List(l)
    }
}

/// Builds a [`Dict`] from `key => value` pairs.
#[macro_export]
macro_rules! dict {
    () => { $crate::wamp::value::Dict::new() };
    ($($k:expr => $v:expr),+ $(,)?) => {{
        let mut d = $crate::wamp::value::Dict::new();
        $( d.insert(String::from($k), $crate::wamp::value::Value::from($v)); )+
        d
    }};
}

/// Reads a boolean option from a dictionary; absent or not a boolean reads as `false`.
pub fn dict_bool(d: &Dict, key: &str) -> bool {
    d.get(key).and_then(Value::as_bool).unwrap_or(false)
}

/// Reads a string option from a dictionary.
pub fn dict_str<'a>(d: &'a Dict, key: &str) -> Option<&'a str> {
    d.get(key).and_then(Value::as_str)
}
