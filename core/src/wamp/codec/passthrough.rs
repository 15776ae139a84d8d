//! Payload passthrough: decoding a message without decoding its payload, and encoding
//! a message whose payload is still in the bytes it arrived in.
//!
//! Decoding splits the frame into its list elements, decodes the ones before the
//! payload as usual, and only *checks* the payload: the same rules as a full decode
//! (nesting depth, the value budget, string and key types, no MessagePack extension,
//! JSON binary strings that are valid base64), without building a value. The payload
//! then stays a slice of the frame ([`Encoded`]). Anything the check is unsure of
//! (an extension such as msgpackr's `undefined`, which a full decode normalizes to
//! nil; a MessagePack string that is not UTF-8, which `rmp-serde` reads as binary; a
//! CBOR tag, `undefined`, half float or indefinite length, which the CBOR reader
//! normalizes; any error) makes [`split_decode`] return `None`, and the caller decodes
//! in full — which also gives malformed input the very error it always had.
//!
//! Encoding writes the elements before the payload through `serde`, then patches the
//! list's length (MessagePack and CBOR: one header byte, since a message has at most 7
//! elements) or its closing bracket (JSON) and appends the payload bytes.
//!
//! Between nodes a CBOR payload travels in the neutral MessagePack form (transcoded
//! once); MessagePack and JSON ones as they arrived (see `neutral`).

use bytes::Bytes;
use serde::de::DeserializeSeed;
use serde_json::value::RawValue;

use super::serde_value::{Budget, CheckSeed};
use super::{MAX_DEPTH, Serializer, cbor, json, msgpack};
use crate::wamp::message::{Encoded, Message, Payload};
use crate::wamp::value::{List, Value};

/// The most elements a message list has (ERROR with args and kwargs).
const MAX_ELEMENTS: usize = 7;

/// Decodes `frame` keeping its payload encoded, or `None` when the message carries no
/// payload, the serializer has no passthrough, or anything is unusual.
pub(super) fn split_decode(ser: Serializer, frame: &Bytes, max_values: usize) -> Option<Message> {
    let budget = Budget::new(max_values.min(frame.len()));
    match ser {
        Serializer::MsgPack => msgpack_message(frame, &budget),
        Serializer::Json => json_message(frame, &budget),
        Serializer::Cbor => cbor_message(frame, &budget),
    }
}

/// Turns the elements of a message into the message: the ones before the payload
/// decoded, the payload kept as `frame` slices.
fn assemble(
    ser: Serializer,
    frame: &Bytes,
    spans: &[(usize, usize)],
    decode: impl Fn(&[u8]) -> Option<Value>,
) -> Option<Message> {
    let code_span = spans.first()?;
    let code = decode(frame.get(code_span.0..code_span.1)?)?.as_u64()?;
    let at = Message::payload_index(code)?;
    let payload = spans.get(at..).filter(|p| matches!(p.len(), 1 | 2))?;
    let mut head = List::with_capacity(at);
    head.push(Value::from(code));
    for &(start, end) in spans.get(1..at)? {
        head.push(decode(frame.get(start..end)?)?);
    }
    let encoded = encoded(ser, frame, payload)?;
    Message::from_head(head, encoded, payload.len()).ok()
}

/// The payload elements at `spans` of `b` (args, and kwargs if present) as an encoded
/// payload, if they are a list (and a dictionary).
fn encoded(ser: Serializer, b: &Bytes, spans: &[(usize, usize)]) -> Option<Encoded> {
    let (&(args_start, args_end), kwargs) = match spans {
        [a] => (a, None),
        [a, k] => (a, Some(*k)),
        _ => return None,
    };
    let starts = |at: usize, list: bool| match ser {
        Serializer::Json => b.get(at) == Some(if list { &b'[' } else { &b'{' }),
        Serializer::MsgPack => b.get(at..).is_some_and(if list { msgpack_is_list } else { msgpack_is_map }),
        Serializer::Cbor => b.get(at).is_some_and(|&m| m >> 5 == if list { 4 } else { 5 } && m & 0x1f < 28),
    };
    if !starts(args_start, true) || kwargs.is_some_and(|k| !starts(k.0, false)) {
        return None;
    }
    // one slice for both (JSON may have a comma and spaces between them)
    let end = kwargs.map_or(args_end, |k| k.1);
    let kwargs_at = kwargs.map_or(end, |k| k.0);
    Encoded::new(ser, b.slice(args_start..end), args_end - args_start, kwargs_at - args_start)
}

fn msgpack_message(frame: &Bytes, budget: &Budget) -> Option<Message> {
    let mut pos = 0;
    let n = msgpack_len(frame, &mut pos, 0x90, 0xdc)?;
    if n > MAX_ELEMENTS || !budget.try_take() {
        return None;
    }
    let mut spans = [(0, 0); MAX_ELEMENTS];
    for span in spans.iter_mut().take(n) {
        let start = pos;
        pos = msgpack_skip(frame, pos, 1, budget)?;
        *span = (start, pos);
    }
    if pos != frame.len() {
        return None;
    }
    // the head elements were counted by the skip; decoding them again must not count twice
    let spans = spans.get(..n)?;
    assemble(Serializer::MsgPack, frame, spans, |b| msgpack::decode(b, &Budget::new(b.len())).ok())
}

fn json_message(frame: &Bytes, budget: &Budget) -> Option<Message> {
    if !budget.try_take() {
        return None;
    }
    let spans = json_spans(frame, budget)?;
    assemble(Serializer::Json, frame, &spans, |b| json::decode(b, &Budget::new(b.len())).ok())
}

fn cbor_message(frame: &Bytes, budget: &Budget) -> Option<Message> {
    let mut pos = 0;
    let (major, n) = cbor_head(frame, &mut pos)?;
    if major != 4 || n > MAX_ELEMENTS as u64 || !budget.try_take() {
        return None;
    }
    let mut spans = [(0, 0); MAX_ELEMENTS];
    for span in spans.iter_mut().take(n as usize) {
        let start = pos;
        pos = cbor_skip(frame, pos, 1, budget)?;
        *span = (start, pos);
    }
    if pos != frame.len() {
        return None;
    }
    let spans = spans.get(..n as usize)?;
    assemble(Serializer::Cbor, frame, spans, |b| cbor::decode(b, &Budget::new(b.len())).ok())
}

/// Where each element of the JSON list `b` (at most [`MAX_ELEMENTS`]) lies, each
/// checked as a full decode would (within `budget`).
fn json_spans(b: &[u8], budget: &Budget) -> Option<Vec<(usize, usize)>> {
    let elements: Vec<&RawValue> = serde_json::from_slice(b).ok()?;
    if elements.len() > MAX_ELEMENTS {
        return None;
    }
    let base = b.as_ptr() as usize;
    let mut spans = Vec::with_capacity(elements.len());
    for raw in &elements {
        let text = raw.get().as_bytes();
        let start = (text.as_ptr() as usize).checked_sub(base)?;
        CheckSeed::new(budget).deserialize(&mut serde_json::Deserializer::from_slice(text)).ok()?;
        spans.push((start, start + text.len()));
    }
    Some(spans)
}

/// Reads an array (`fix` = 0x90, `wide` = 0xdc) or map (0x80, 0xde) header's count.
fn msgpack_len(b: &[u8], pos: &mut usize, fix: u8, wide: u8) -> Option<usize> {
    let m = *b.get(*pos)?;
    *pos += 1;
    if m & 0xf0 == fix {
        return Some(usize::from(m & 0x0f));
    }
    let width = match m {
        _ if m == wide => 2,
        _ if m == wide + 1 => 4,
        _ => return None,
    };
    msgpack_uint(b, pos, width)
}

fn msgpack_uint(b: &[u8], pos: &mut usize, width: usize) -> Option<usize> {
    let bytes = b.get(*pos..*pos + width)?;
    *pos += width;
    usize::try_from(bytes.iter().fold(0u64, |acc, &x| (acc << 8) | u64::from(x))).ok()
}

fn msgpack_is_list(b: &[u8]) -> bool {
    matches!(b.first(), Some(0x90..=0x9f | 0xdc | 0xdd))
}

fn msgpack_is_map(b: &[u8]) -> bool {
    matches!(b.first(), Some(0x80..=0x8f | 0xde | 0xdf))
}

/// The length of a string at `pos` (its marker), moving `pos` past the header.
fn msgpack_str_len(b: &[u8], pos: &mut usize) -> Option<usize> {
    let m = *b.get(*pos)?;
    *pos += 1;
    match m {
        0xa0..=0xbf => Some(usize::from(m & 0x1f)),
        0xd9 => msgpack_uint(b, pos, 1),
        0xda => msgpack_uint(b, pos, 2),
        0xdb => msgpack_uint(b, pos, 4),
        _ => None,
    }
}

/// Skips the string at `pos`, which must be UTF-8 (and, for a value rather than a
/// key, not start with U+0000: reserved for binary in JSON).
fn msgpack_skip_str(b: &[u8], mut pos: usize, key: bool) -> Option<usize> {
    let len = msgpack_str_len(b, &mut pos)?;
    let s = b.get(pos..pos.checked_add(len)?)?;
    let text = std::str::from_utf8(s).ok()?;
    (key || !text.starts_with('\0')).then_some(pos + len)
}

/// Skips the value at `pos` (nested `depth` containers deep), counting it and
/// everything in it against `budget`; the position after it, or `None` for anything
/// a full decode would refuse or change.
fn msgpack_skip(b: &[u8], pos: usize, depth: usize, budget: &Budget) -> Option<usize> {
    if !budget.try_take() {
        return None;
    }
    let m = *b.get(pos)?;
    let fixed = |n: usize| Some(pos + 1 + n).filter(|&end| end <= b.len());
    match m {
        0x00..=0x7f | 0xe0..=0xff | 0xc0 | 0xc2 | 0xc3 => fixed(0),
        0xcc | 0xd0 => fixed(1),
        0xcd | 0xd1 => fixed(2),
        0xce | 0xd2 | 0xca => fixed(4),
        0xcf | 0xd3 | 0xcb => fixed(8),
        0xa0..=0xbf | 0xd9..=0xdb => msgpack_skip_str(b, pos, false),
        0xc4..=0xc6 => {
            let mut p = pos + 1;
            let len = msgpack_uint(b, &mut p, 1 << (m - 0xc4))?;
            Some(p.checked_add(len)?).filter(|&end| end <= b.len())
        }
        0x90..=0x9f | 0xdc | 0xdd => {
            if depth >= MAX_DEPTH {
                return None;
            }
            let mut p = pos;
            let n = msgpack_len(b, &mut p, 0x90, 0xdc)?;
            for _ in 0..n {
                p = msgpack_skip(b, p, depth + 1, budget)?;
            }
            Some(p)
        }
        0x80..=0x8f | 0xde | 0xdf => {
            if depth >= MAX_DEPTH {
                return None;
            }
            let mut p = pos;
            let n = msgpack_len(b, &mut p, 0x80, 0xde)?;
            for _ in 0..n {
                if !budget.try_take() {
                    return None;
                }
                p = msgpack_skip_str(b, p, true)?;
                p = msgpack_skip(b, p, depth + 1, budget)?;
            }
            Some(p)
        }
        // never used (0xc1), extensions (0xc7..=0xc9, 0xd4..=0xd8): a full decode decides
        _ => None,
    }
}

/// Reads a CBOR initial byte and its definite argument at `pos`: the major type and
/// the count, length or value (`None` for indefinite lengths and reserved values).
fn cbor_head(b: &[u8], pos: &mut usize) -> Option<(u8, u64)> {
    let initial = *b.get(*pos)?;
    *pos += 1;
    let (major, info) = (initial >> 5, initial & 0x1f);
    let width = match info {
        0..=23 => return Some((major, u64::from(info))),
        24..=27 => 1usize << (info - 24),
        _ => return None,
    };
    let bytes = b.get(*pos..*pos + width)?;
    *pos += width;
    Some((major, bytes.iter().fold(0u64, |acc, &x| (acc << 8) | u64::from(x))))
}

/// Skips the text string at `pos`, which must be UTF-8 and not start with U+0000 (the
/// CBOR reader refuses that in keys and values alike).
fn cbor_skip_text(b: &[u8], pos: usize) -> Option<usize> {
    let mut p = pos;
    let (major, len) = cbor_head(b, &mut p)?;
    let end = p.checked_add(usize::try_from(len).ok()?)?;
    let text = std::str::from_utf8(b.get(p..end)?).ok()?;
    (major == 3 && !text.starts_with('\0')).then_some(end)
}

/// Skips the CBOR value at `pos` (nested `depth` containers deep) as
/// [`msgpack_skip`] does; `None` also for what the CBOR reader would normalize (tags,
/// `undefined`, half floats, indefinite lengths).
fn cbor_skip(b: &[u8], pos: usize, depth: usize, budget: &Budget) -> Option<usize> {
    if !budget.try_take() {
        return None;
    }
    let initial = *b.get(pos)?;
    if initial >> 5 == 7 {
        let width = match initial & 0x1f {
            20..=22 => 0,
            26 => 4,
            27 => 8,
            _ => return None,
        };
        return Some(pos + 1 + width).filter(|&end| end <= b.len());
    }
    let mut p = pos;
    let (major, n) = cbor_head(b, &mut p)?;
    match major {
        0 => Some(p),
        1 => (n <= i64::MAX as u64).then_some(p),
        2 => Some(p.checked_add(usize::try_from(n).ok()?)?).filter(|&end| end <= b.len()),
        3 => cbor_skip_text(b, pos),
        4 | 5 if depth >= MAX_DEPTH => None,
        4 => {
            for _ in 0..n {
                p = cbor_skip(b, p, depth + 1, budget)?;
            }
            Some(p)
        }
        5 => {
            for _ in 0..n {
                if !budget.try_take() {
                    return None;
                }
                p = cbor_skip_text(b, p)?;
                p = cbor_skip(b, p, depth + 1, budget)?;
            }
            Some(p)
        }
        _ => None,
    }
}

/// Encodes `msg` whose payload is `payload`, encoded in `ser`: the elements before
/// the payload through `serde`, then the payload's bytes.
pub(super) fn encode_spliced(ser: Serializer, msg: &Message, payload: &Encoded) -> Vec<u8> {
    let mut out = ser.encode_head(msg);
    let extra = 1 + usize::from(payload.kwargs().is_some());
    let room = payload.args().len() + payload.kwargs().map_or(0, <[u8]>::len) + 2;
    out.reserve(room);
    match ser {
        Serializer::Json => {
            // `[a,b,c]` → `[a,b,c,ARGS,KWARGS]`
            out.pop();
            out.push(b',');
            push_json_elements(&mut out, payload);
            out.push(b']');
        }
        Serializer::MsgPack | Serializer::Cbor => {
            // a fixarray (MessagePack 0x90 | n) or a short CBOR array (0x80 | n)
            if let Some(first) = out.first_mut() {
                *first += extra as u8;
            }
            out.extend_from_slice(payload.args());
            if let Some(k) = payload.kwargs() {
                out.extend_from_slice(k);
            }
        }
    }
    out
}

/// Appends a JSON payload's elements as they go in a list: `ARGS` or `ARGS,KWARGS`.
pub(super) fn push_json_elements(out: &mut Vec<u8>, payload: &Encoded) {
    out.extend_from_slice(payload.args());
    if let Some(k) = payload.kwargs() {
        out.push(b',');
        out.extend_from_slice(k);
    }
}

/// Splits a neutral payload (MessagePack `[args|nil, kwargs|nil]`, as nodes send each
/// other) into an encoded payload; `None` when it is empty, has no args (kwargs alone
/// need an args list the bytes lack) or anything is unusual.
pub(super) fn split_neutral(b: &Bytes) -> Option<Payload> {
    let budget = Budget::new(b.len());
    let mut pos = 0;
    if msgpack_len(b, &mut pos, 0x90, 0xdc)? != 2 {
        return None;
    }
    let args = (pos, msgpack_skip(b, pos, 1, &budget)?);
    let spans = match b.get(args.1)? {
        // nil: no kwargs
        0xc0 if args.1 + 1 == b.len() => vec![args],
        _ => {
            let kwargs = (args.1, msgpack_skip(b, args.1, 1, &budget)?);
            if kwargs.1 != b.len() {
                return None;
            }
            vec![args, kwargs]
        }
    };
    encoded(Serializer::MsgPack, b, &spans).map(Payload::Encoded)
}

/// Splits a link payload in JSON (`[args]` or `[args,kwargs]`, as a node sends what
/// a JSON client published or called with) into an encoded payload.
pub(super) fn split_json_pair(b: &Bytes) -> Option<Payload> {
    let spans = json_spans(b, &Budget::new(b.len()))?;
    encoded(Serializer::Json, b, &spans).map(Payload::Encoded)
}

#[cfg(test)]
mod tests {
    use super::super::DecodeError;
    use super::super::neutral::{
        FORMAT_JSON, decode_payload_bytes, decode_payload_tagged, encode_payload, encode_payload_tagged,
    };
    use super::super::samples::{all_messages, hex};
    use super::*;
    use crate::wamp::value::Dict;

    const PASSTHROUGH: [Serializer; 3] = [Serializer::MsgPack, Serializer::Json, Serializer::Cbor];

    fn frame(b: &[u8]) -> Bytes {
        Bytes::copy_from_slice(b)
    }

    #[test]
    fn payloads_stay_encoded_and_re_encode_byte_for_byte() {
        for ser in PASSTHROUGH {
            for m in all_messages() {
                let bytes = ser.encode(&m);
                let back = ser.decode_frame(&frame(&bytes), usize::MAX).expect("decodes");
                assert_eq!(back, m, "{}", ser.name());
                let kept = back.payload().is_some_and(|p| p.encoded().is_some());
                assert_eq!(kept, m.payload().is_some_and(|p| !p.is_empty()), "{} {m:?}", ser.name());
                assert_eq!(ser.encode(&back), bytes, "{} {m:?}", ser.name());
            }
        }
    }

    #[test]
    fn a_payload_kept_encoded_is_transcoded_for_another_serializer() {
        for from in PASSTHROUGH {
            for m in all_messages() {
                let back = from.decode_frame(&frame(&from.encode(&m)), usize::MAX).expect("decodes");
                for to in Serializer::ALL {
                    assert_eq!(to.encode(&back), to.encode(&m), "{} -> {}", from.name(), to.name());
                }
            }
        }
    }

    #[test]
    fn json_with_spaces_and_binary_passes_through_and_transcodes() {
        let text = br#"[16, 7, {}, "com.example.bin", ["\u0000AAH/gA==", {"a": [1, 2.5]}], {"k": null}]"#;
        let m = Serializer::Json.decode_frame(&frame(text), usize::MAX).expect("decodes");
        let p = m.payload().expect("payload");
        assert!(p.encoded().is_some());
        let args = p.arguments().args.clone().expect("args");
        assert_eq!(args.first(), Some(&Value::Bytes(vec![0, 1, 0xff, 0x80])));
        let json = Serializer::Json.encode(&m);
        assert_eq!(json, br#"[16,7,{},"com.example.bin",["\u0000AAH/gA==", {"a": [1, 2.5]}],{"k": null}]"#);
        let full = Serializer::Json.decode(text).expect("decodes");
        assert_eq!(Serializer::MsgPack.encode(&m), Serializer::MsgPack.encode(&full));
    }

    #[test]
    fn what_a_full_decode_changes_or_refuses_is_decoded_in_full() {
        // msgpackr's `undefined` (d4 00 00) in args reads as nil, as without passthrough
        // [16, 1, {}, "t", [undefined]]
        let b = hex("95100180a17491d40000");
        let m = Serializer::MsgPack.decode_frame(&frame(&b), usize::MAX).expect("decodes");
        assert!(m.payload().is_some_and(|p| p.encoded().is_none()));
        assert_eq!(m.payload().map(|p| p.arguments().args.clone()), Some(Some(vec![Value::Null])));
        let bad: [&[u8]; 5] = [
            br#"[48, 1, {}, "p", {"not": "a list"}]"#,
            br#"[48, 1, {}, "p", [], ["not a dict"]]"#,
            br#"[48, 1, {}, "p", ["\u0000not base64!"]]"#,
            br#"[48, 1, {}, "p", [1], {}, "extra"]"#,
            br#"[48, 1, {}, "p", [1] "#,
        ];
        for text in bad {
            let split = Serializer::Json.decode_frame(&frame(text), usize::MAX).map_err(|e| e.to_string());
            let full = Serializer::Json.decode(text).map_err(|e| e.to_string());
            assert!(split.is_err(), "{}", String::from_utf8_lossy(text));
            assert_eq!(split, full.map(|_| unreachable!()), "{}", String::from_utf8_lossy(text));
        }
        // a MessagePack string starting with U+0000 is refused in a payload too
        let nul = hex("95300180a17091a20061");
        let split = Serializer::MsgPack.decode_frame(&frame(&nul), usize::MAX).map_err(|e| e.to_string());
        assert!(split.as_ref().is_err_and(|e| e.contains("U+0000")), "{split:?}");
    }

    #[test]
    fn the_value_budget_applies_to_a_payload_kept_encoded() {
        let text = br#"[48, 1, {}, "p", [1, 2, 3, 4, 5, 6, 7, 8]]"#;
        // 1 list + 4 head values + 1 args list + 8 numbers = 14
        for ser in PASSTHROUGH {
            let bytes = ser.encode(&Serializer::Json.decode(text).expect("decodes"));
            assert!(ser.decode_frame(&frame(&bytes), 14).is_ok(), "{}", ser.name());
            let over = ser.decode_frame(&frame(&bytes), 13);
            assert!(
                matches!(over, Err(DecodeError::TooManyElements { max: 13 })),
                "{}: {over:?}",
                ser.name()
            );
        }
    }

    #[test]
    fn deep_nesting_is_refused_as_without_passthrough() {
        let mut text = String::from(r#"[48, 1, {}, "p", "#);
        text.push_str(&"[".repeat(200));
        text.push_str(&"]".repeat(200));
        text.push(']');
        let mut deep = vec![0x95, 0x30, 0x01, 0x80, 0xa1, b'p'];
        deep.extend(std::iter::repeat_n(0x91, 200));
        deep.push(0x01);
        assert!(Serializer::MsgPack.decode_frame(&frame(&deep), usize::MAX).is_err());
        assert!(Serializer::Json.decode_frame(&frame(text.as_bytes()), usize::MAX).is_err());
    }

    #[test]
    fn neutral_payloads_pass_through_between_nodes() {
        for m in all_messages() {
            let Some(p) = m.payload().filter(|p| !p.is_empty()) else { continue };
            let from_client = Serializer::MsgPack
                .decode_frame(&frame(&Serializer::MsgPack.encode(&m)), usize::MAX)
                .expect("decodes");
            let kept = from_client.payload().expect("payload");
            let neutral = encode_payload(kept);
            assert_eq!(neutral, encode_payload(p), "copied bytes equal re-encoded ones");
            let across = decode_payload_bytes(&Bytes::from(neutral)).expect("decodes");
            assert!(across.encoded().is_some());
            assert_eq!(&across, p);
        }
        for m in all_messages() {
            let Some(p) = m.payload().filter(|p| !p.is_empty()) else { continue };
            let json = Serializer::Json
                .decode_frame(&frame(&Serializer::Json.encode(&m)), usize::MAX)
                .expect("decodes");
            let kept = json.payload().and_then(|p| p.encoded()).expect("kept");
            let (bytes, format) = encode_payload_tagged(json.payload().expect("payload"));
            assert_eq!(format, FORMAT_JSON);
            let across = decode_payload_tagged(&Bytes::from(bytes), format).expect("decodes");
            let e = across.encoded().expect("still encoded");
            assert_eq!(
                (e.serializer(), e.args(), e.kwargs()),
                (Serializer::Json, kept.args(), kept.kwargs())
            );
            assert_eq!(&across, p);
        }
        assert!(decode_payload_tagged(&Bytes::from_static(b"[{}]"), FORMAT_JSON).is_err());
        assert!(decode_payload_tagged(&Bytes::from_static(b"[[1]]"), 7).is_err());
        let kwargs_only = Payload::new(None, Some(crate::dict! {"k" => 1u64}));
        let across = decode_payload_bytes(&Bytes::from(encode_payload(&kwargs_only))).expect("decodes");
        assert_eq!(across, kwargs_only);
    }

    /// A small deterministic generator (xorshift), so a failure names its seed.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    fn random_str(r: &mut Rng) -> String {
        const PIECES: [&str; 10] = ["a", "é", "\"", "\\", "\n", "\u{1F600}", "\u{7f}", " ", "\u{0}x", "k"];
        (0..r.below(6)).map(|_| PIECES[r.below(PIECES.len() as u64) as usize]).collect()
    }

    fn random_value(r: &mut Rng, depth: u32) -> Value {
        match r.below(if depth > 3 { 8 } else { 10 }) {
            0 => Value::Null,
            1 => Value::Bool(r.below(2) == 1),
            2 => Value::Int(r.next() as i64 >> r.below(64)),
            3 => Value::UInt(u64::MAX - r.below(1000)),
            4 => Value::Float([0.5, -1.25e300, 3.0, 1e-7, f64::MAX][r.below(5) as usize]),
            5 | 6 => Value::Str(random_str(r)),
            7 => Value::Bytes((0..r.below(9)).map(|_| r.next() as u8).collect()),
            8 => Value::List((0..r.below(4)).map(|_| random_value(r, depth + 1)).collect()),
            _ => Value::Dict((0..r.below(4)).map(|_| (random_str(r), random_value(r, depth + 1))).collect()),
        }
    }

    /// A frame of a message that carries a payload, as a list of values.
    fn random_frame(r: &mut Rng) -> Value {
        let id = |r: &mut Rng| Value::Int(1 + r.below(1 << 53) as i64);
        let mut f: List = match r.below(7) {
            0 => vec![Value::Int(16), id(r), Value::Dict(Dict::new()), Value::Str("com.t".into())],
            1 => vec![Value::Int(36), id(r), id(r), Value::Dict(Dict::new())],
            2 => vec![Value::Int(48), id(r), Value::Dict(Dict::new()), Value::Str("com.p".into())],
            3 => vec![Value::Int(68), id(r), id(r), Value::Dict(Dict::new())],
            4 => vec![Value::Int(70), id(r), Value::Dict(Dict::new())],
            5 => vec![Value::Int(50), id(r), Value::Dict(Dict::new())],
            _ => vec![
                Value::Int(8),
                Value::Int(48),
                id(r),
                Value::Dict(Dict::new()),
                Value::Str("com.e".into()),
            ],
        };
        let args = Value::List((0..r.below(5)).map(|_| random_value(r, 1)).collect());
        match r.below(4) {
            0 => {}
            1 => f.push(args),
            _ => {
                f.push(args);
                f.push(Value::Dict((0..r.below(4)).map(|_| (random_str(r), random_value(r, 1))).collect()));
            }
        }
        Value::List(f)
    }

    /// What a decode gave, comparable across the two paths: the message as every
    /// serializer writes it (as text, so that a damaged frame's NaN equals itself),
    /// or the error's text. A payload kept encoded is written as
    /// the client sent it (JSON `1E2` or a 21-digit integer, map keys in its order),
    /// so the same serializer's output is compared by value; another's by bytes.
    fn outcome(m: Result<Message, DecodeError>) -> Result<String, String> {
        let written = |m: &Message, s: Serializer| {
            // (a MessagePack key starting with U+0000 does not read back from CBOR)
            let bytes = s.encode(m);
            s.decode_value(&bytes).unwrap_or(Value::Bytes(bytes))
        };
        m.map(|m| format!("{:?}", Serializer::ALL.map(|s| written(&m, s)))).map_err(|e| e.to_string())
    }

    /// Bytes that mean something in one of the serializers (JSON punctuation,
    /// MessagePack and CBOR headers, CBOR tags, `undefined`, half floats, breaks).
    const DAMAGE: &[u8] =
        b"0123456789[]{},:\"\\ \x00\xc0\x91\x80\xa1\xd4\x9f\xbf\xc1\xd8\xf7\xf9\xff\x1b\x7f";

    #[test]
    fn passthrough_agrees_with_a_full_decode_on_random_and_damaged_frames() {
        let mut r = Rng(0x9e37_79b9_7f4a_7c15);
        for round in 0..4000 {
            let ser = PASSTHROUGH[round % 3];
            let mut bytes = ser.encode_value(&random_frame(&mut r));
            if round % 3 != 0 {
                for _ in 0..1 + r.below(3) {
                    let at = r.below(bytes.len() as u64) as usize;
                    match r.below(3) {
                        0 => bytes[at] = r.next() as u8,
                        1 => bytes.truncate(at.max(1)),
                        _ => bytes.insert(at, DAMAGE[r.below(DAMAGE.len() as u64) as usize]),
                    }
                }
            }
            let budget = if r.below(4) == 0 { r.below(40) as usize } else { usize::MAX };
            let split = outcome(ser.decode_frame(&Bytes::from(bytes.clone()), budget));
            let full = outcome(ser.decode_bounded(&bytes, budget));
            assert_eq!(split, full, "round {round}, {}: {}", ser.name(), String::from_utf8_lossy(&bytes));
        }
    }
}
