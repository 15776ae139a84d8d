//! `serde` glue shared by the codecs: `Serialize` for [`Value`] and, by reference and
//! in wire order, for [`Message`]; `Deserialize` for [`Value`] with a nesting limit.
//!
//! JSON is told apart from the binary formats by `is_human_readable()`: `serde_json`
//! reports `true` (serde's default), `rmp-serde` and `minicbor-serde` report `false`
//! (checked by a test). A human-readable format carries binary as the spec's
//! `"\u0000" + base64` string, the binary formats as native byte strings.

use std::cell::Cell;
use std::fmt;

use base64::Engine as _;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::ser::SerializeSeq;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::MAX_DEPTH;
use crate::wamp::message::{Arguments, Message, Payload};
use crate::wamp::value::{Dict, List, Value};

/// Standard alphabet; padding optional on decode (peers differ), always written on encode.
const BASE64_LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Capacity reserved up front for a list, whatever length the input claims.
const MAX_PREALLOC: usize = 256;

/// Writes binary as the JSON convention's string content: `\0` then padded base64.
struct JsonBinary<'a>(&'a [u8]);

impl fmt::Display for JsonBinary<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\0")?;
        base64::display::Base64Display::new(self.0, &STANDARD).fmt(f)
    }
}

/// Decodes the base64 part of a JSON binary string (the text after the leading `\0`).
fn decode_json_binary(b64: &str) -> Result<Vec<u8>, base64::DecodeError> {
    BASE64_LENIENT.decode(b64)
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Null => s.serialize_none(),
            Value::Bool(b) => s.serialize_bool(*b),
            Value::Int(i) => match u64::try_from(*i) {
                Ok(u) => s.serialize_u64(u),
                Err(_) => s.serialize_i64(*i),
            },
            Value::UInt(u) => s.serialize_u64(*u),
            Value::Float(f) => s.serialize_f64(*f),
            Value::Str(v) => s.serialize_str(v),
            Value::Bytes(b) if s.is_human_readable() => s.collect_str(&JsonBinary(b)),
            Value::Bytes(b) => s.serialize_bytes(b),
            Value::List(l) => l.serialize(s),
            Value::Dict(d) => d.serialize(s),
        }
    }
}

/// One element of a message list, borrowed from the typed message.
#[derive(Clone, Copy)]
enum Field<'a> {
    Int(u64),
    Str(&'a str),
    Dict(&'a Dict),
    List(&'a [Value]),
}

impl Serialize for Field<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match *self {
            Field::Int(n) => s.serialize_u64(n),
            Field::Str(v) => s.serialize_str(v),
            Field::Dict(d) => d.serialize(s),
            Field::List(l) => l.serialize(s),
        }
    }
}

/// The elements of one message, at most seven (ERROR with args and kwargs).
struct Fields<'a> {
    items: [Field<'a>; 7],
    len: usize,
}

impl<'a> Fields<'a> {
    fn new(head: &[Field<'a>]) -> Self {
        let mut f = Fields { items: [Field::Int(0); 7], len: 0 };
        for &h in head {
            f.push(h);
        }
        f
    }

    fn push(&mut self, field: Field<'a>) {
        if let Some(slot) = self.items.get_mut(self.len) {
            *slot = field;
            self.len += 1;
        }
    }

    /// Appends args/kwargs as `message.rs` does: kwargs force an (empty) args list.
    fn payload(mut self, p: &'a Arguments) -> Self {
        match (&p.args, &p.kwargs) {
            (None, None) => {}
            (Some(a), None) => self.push(Field::List(a)),
            (a, Some(k)) => {
                self.push(Field::List(a.as_deref().unwrap_or_default()));
                self.push(Field::Dict(k));
            }
        }
        self
    }

    fn serialize_seq<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let items = self.items.get(..self.len).unwrap_or_default();
        let mut seq = s.serialize_seq(Some(items.len()))?;
        for f in items {
            seq.serialize_element(f)?;
        }
        seq.end()
    }

    fn opt_dict(mut self, d: &'a Option<Dict>) -> Self {
        if let Some(d) = d {
            self.push(Field::Dict(d));
        }
        self
    }
}

impl Serialize for Message {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let (fields, payload) = head_fields(self);
        let decoded;
        let fields = match payload {
            None => fields,
            Some(Payload::Decoded(a)) => fields.payload(a),
            Some(Payload::Encoded(e)) => {
                decoded = e.decode();
                fields.payload(&decoded)
            }
        };
        fields.serialize_seq(s)
    }
}

/// A message without its payload: the elements before it, in a list of their own.
pub(crate) struct Head<'a>(pub(crate) &'a Message);

impl Serialize for Head<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        head_fields(self.0).0.serialize_seq(s)
    }
}

/// The elements of a message before its payload, and the payload.
fn head_fields(msg: &Message) -> (Fields<'_>, Option<&Payload>) {
    use Field::{Dict as D, Int, Str};
    use Message as M;
    let c = Int(msg.code());
    let fields = match msg {
        M::Hello(m) => Fields::new(&[c, Str(&m.realm), D(&m.details)]),
        M::Welcome(m) => Fields::new(&[c, Int(m.session.0), D(&m.details)]),
        M::Abort(m) => Fields::new(&[c, D(&m.details), Str(&m.reason)]),
        M::Challenge(m) => Fields::new(&[c, Str(&m.auth_method), D(&m.extra)]),
        M::Authenticate(m) => Fields::new(&[c, Str(&m.signature), D(&m.extra)]),
        M::Goodbye(m) => Fields::new(&[c, D(&m.details), Str(&m.reason)]),
        M::Error(m) => Fields::new(&[c, Int(m.request_type), Int(m.request.0), D(&m.details), Str(&m.error)]),
        M::Publish(m) => Fields::new(&[c, Int(m.request.0), D(&m.options), Str(&m.topic)]),
        M::Published(m) => Fields::new(&[c, Int(m.request.0), Int(m.publication.0)]),
        M::Subscribe(m) => Fields::new(&[c, Int(m.request.0), D(&m.options), Str(&m.topic)]),
        M::Subscribed(m) => Fields::new(&[c, Int(m.request.0), Int(m.subscription.0)]),
        M::Unsubscribe(m) => Fields::new(&[c, Int(m.request.0), Int(m.subscription.0)]),
        M::Unsubscribed(m) => Fields::new(&[c, Int(m.request.0)]).opt_dict(&m.details),
        M::Event(m) => Fields::new(&[c, Int(m.subscription.0), Int(m.publication.0), D(&m.details)]),
        M::Call(m) => Fields::new(&[c, Int(m.request.0), D(&m.options), Str(&m.procedure)]),
        M::Cancel(m) => Fields::new(&[c, Int(m.request.0), D(&m.options)]),
        M::Result(m) => Fields::new(&[c, Int(m.request.0), D(&m.details)]),
        M::Register(m) => Fields::new(&[c, Int(m.request.0), D(&m.options), Str(&m.procedure)]),
        M::Registered(m) => Fields::new(&[c, Int(m.request.0), Int(m.registration.0)]),
        M::Unregister(m) => Fields::new(&[c, Int(m.request.0), Int(m.registration.0)]),
        M::Unregistered(m) => Fields::new(&[c, Int(m.request.0)]).opt_dict(&m.details),
        M::Invocation(m) => Fields::new(&[c, Int(m.request.0), Int(m.registration.0), D(&m.details)]),
        M::Interrupt(m) => Fields::new(&[c, Int(m.request.0), D(&m.options)]),
        M::Yield(m) => Fields::new(&[c, Int(m.request.0), D(&m.options)]),
    };
    (fields, msg.payload())
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let budget = Budget::new(usize::MAX);
        ValueSeed { depth: 0, budget: &budget }.deserialize(d)
    }
}

/// How many more values a decode may produce: every value (scalar or container) and
/// every dictionary key takes one. One counter for the whole message, so a short
/// encoding (a MessagePack nil is one byte, a `Value` 32) cannot expand without bound.
pub(crate) struct Budget {
    left: Cell<usize>,
    exceeded: Cell<bool>,
}

impl Budget {
    /// A budget of `n` values.
    pub(crate) fn new(n: usize) -> Budget {
        Budget { left: Cell::new(n), exceeded: Cell::new(false) }
    }

    /// Takes one value; false (and remembered) when none is left.
    pub(crate) fn try_take(&self) -> bool {
        match self.left.get().checked_sub(1) {
            Some(n) => {
                self.left.set(n);
                true
            }
            None => {
                self.exceeded.set(true);
                false
            }
        }
    }

    /// Takes one value, or fails when none is left.
    fn take<E: de::Error>(&self) -> Result<(), E> {
        match self.try_take() {
            true => Ok(()),
            false => Err(E::custom("too many values in one message")),
        }
    }

    /// True when a decode failed because the budget ran out.
    pub(crate) fn exceeded(&self) -> bool {
        self.exceeded.get()
    }
}

/// Decodes one value within `budget` values; the error says when the budget ran out.
pub(crate) fn deserialize_bounded<'de, D: Deserializer<'de>>(
    d: D,
    budget: &Budget,
) -> Result<Value, D::Error> {
    ValueSeed { depth: 0, budget }.deserialize(d)
}

/// Deserializes one value nested `depth` containers deep.
#[derive(Clone, Copy)]
struct ValueSeed<'b> {
    depth: usize,
    budget: &'b Budget,
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        self.budget.take()?;
        let json = d.is_human_readable();
        d.deserialize_any(ValueVisitor { depth: self.depth, json, budget: self.budget })
    }
}

struct ValueVisitor<'b> {
    depth: usize,
    json: bool,
    budget: &'b Budget,
}

impl<'b> ValueVisitor<'b> {
    /// The seed for the elements of a container opened at this level.
    fn child<E: de::Error>(&self) -> Result<ValueSeed<'b>, E> {
        if self.depth >= MAX_DEPTH {
            return Err(E::custom(format_args!("nesting deeper than {MAX_DEPTH} levels")));
        }
        Ok(ValueSeed { depth: self.depth + 1, budget: self.budget })
    }
    /// A string starting with U+0000 is binary over JSON; over MessagePack and CBOR it
    /// is refused, because no JSON peer could receive it (it would read as binary).
    fn string<E: de::Error>(&self, s: &str) -> Result<Option<Value>, E> {
        match s.strip_prefix('\0') {
            Some(b64) if self.json => decode_json_binary(b64)
                .map(|b| Some(Value::Bytes(b)))
                .map_err(|e| E::custom(format_args!("invalid base64 in binary string: {e}"))),
            Some(_) => Err(E::custom("a string may not start with U+0000 (reserved for binary in JSON)")),
            None => Ok(None),
        }
    }
}

/// Reads a MessagePack extension's `(type, data)`.
struct ExtVisitor;

impl<'de> Visitor<'de> for ExtVisitor {
    type Value = (i8, Vec<u8>);

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a MessagePack extension (type, data)")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(i8, Vec<u8>), A::Error> {
        let tag: i8 = seq.next_element()?.ok_or_else(|| de::Error::custom("extension without a type"))?;
        let data =
            seq.next_element::<ExtData>()?.ok_or_else(|| de::Error::custom("extension without data"))?;
        Ok((tag, data.0))
    }
}

/// An extension's data bytes.
struct ExtData(Vec<u8>);

impl<'de> Deserialize<'de> for ExtData {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<ExtData, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ExtData;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("extension data bytes")
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<ExtData, E> {
                Ok(ExtData(v.to_vec()))
            }
            fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<ExtData, E> {
                Ok(ExtData(v))
            }
        }
        d.deserialize_bytes(V)
    }
}

impl<'de> Visitor<'de> for ValueVisitor<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a WAMP value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Value, E> {
        if let Ok(i) = i64::try_from(v) {
            Ok(Value::Int(i))
        } else if let Ok(u) = u64::try_from(v) {
            Ok(Value::UInt(u))
        } else {
            Err(E::custom("integer out of the 64-bit range"))
        }
    }

    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Value, E> {
        u64::try_from(v).map(Value::from).map_err(|_| E::custom("integer out of the 64-bit range"))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Float(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(self.string(v)?.unwrap_or_else(|| Value::Str(v.to_owned())))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(self.string(&v)?.unwrap_or(Value::Str(v)))
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Value, E> {
        Ok(Value::Bytes(v.to_vec()))
    }

    fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Value, E> {
        Ok(Value::Bytes(v))
    }

    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        ValueSeed { depth: self.depth, budget: self.budget }.deserialize(d)
    }

    /// A MessagePack extension value (`rmp-serde` hands it over as a newtype of
    /// `(type, data)`). One is accepted: msgpackr (wampy.js) encodes JavaScript's
    /// `undefined` as fixext 1, type 0, data 0 (`d4 00 00`), e.g. in
    /// `SUBSCRIBE.Options.get_retained` when the application left it unset; it reads as
    /// nil (the spec has no extension types; Crossbar.io drops the connection, which
    /// leaves wampy.js users stuck). Every other extension is an error.
    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        match d.deserialize_tuple(2, ExtVisitor)? {
            (0, data) if data == [0] => Ok(Value::Null),
            (tag, _) => {
                Err(de::Error::custom(format_args!("MessagePack extension type {tag} is not supported")))
            }
        }
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let seed = self.child()?;
        let mut list = List::with_capacity(seq.size_hint().unwrap_or(0).min(MAX_PREALLOC));
        while let Some(v) = seq.next_element_seed(seed)? {
            list.push(v);
        }
        Ok(Value::List(list))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let seed = self.child()?;
        let mut dict = Dict::new();
        while let Some(k) = map.next_key_seed(KeySeed)? {
            self.budget.take()?;
            let v = map.next_value_seed(seed)?;
            dict.insert(k, v);
        }
        Ok(Value::Dict(dict))
    }
}

/// A dictionary key: a string and nothing else (not bytes, not a number).
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = String;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<String, D::Error> {
        d.deserialize_any(KeySeed)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string dictionary key")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        Ok(v.to_owned())
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<String, E> {
        Ok(v)
    }
}

/// Turns a serializer error into a string for [`super::DecodeError::Syntax`].
pub(crate) fn syntax<E: fmt::Display>(e: E) -> super::DecodeError {
    super::DecodeError::Syntax(e.to_string())
}

/// Checks one value the way [`ValueSeed`] decodes it (depth, budget, string keys,
/// binary strings) without building it: for payloads kept encoded.
#[derive(Clone, Copy)]
pub(crate) struct CheckSeed<'b> {
    depth: usize,
    budget: &'b Budget,
}

impl<'b> CheckSeed<'b> {
    /// A check of one element of the message list, within `budget` values.
    pub(crate) fn new(budget: &'b Budget) -> Self {
        CheckSeed { depth: 1, budget }
    }

    fn child<E: de::Error>(&self) -> Result<CheckSeed<'b>, E> {
        if self.depth >= MAX_DEPTH {
            return Err(E::custom(format_args!("nesting deeper than {MAX_DEPTH} levels")));
        }
        Ok(CheckSeed { depth: self.depth + 1, budget: self.budget })
    }
}

impl<'de> DeserializeSeed<'de> for CheckSeed<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        self.budget.take()?;
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for CheckSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a WAMP value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    /// Only JSON is checked this way: a string starting with U+0000 is binary and
    /// must be valid base64.
    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        match v.strip_prefix('\0') {
            Some(b64) => decode_json_binary(b64)
                .map(drop)
                .map_err(|e| E::custom(format_args!("invalid base64 in binary string: {e}"))),
            None => Ok(()),
        }
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let seed = self.child()?;
        while seq.next_element_seed(seed)?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let seed = self.child()?;
        while map.next_key_seed(KeySeed)?.is_some() {
            self.budget.take()?;
            map.next_value_seed(seed)?;
        }
        Ok(())
    }
}
