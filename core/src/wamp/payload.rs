//! The payload of a message (`Arguments|list`, `ArgumentsKw|dict`): either decoded
//! values, or the bytes they arrived in.
//!
//! A router only forwards payloads, so the codecs keep a received payload as the
//! encoded bytes of its two elements ([`Encoded`], slices of the received frame:
//! no copy) and the encoder copies them into outgoing frames of the same serializer.
//! Only a peer on another serializer, or the router reading a payload itself (meta
//! procedures, webhooks, authorizers), decodes it: [`Payload::arguments`].
//! Cloning an encoded payload (fan-out, a call kept for a reroute) only counts a
//! reference.

use std::borrow::Cow;

use bytes::Bytes;

use super::codec::Serializer;
use super::value::{Dict, List, Value};

/// Decoded positional and keyword arguments.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Arguments {
    /// `Arguments|list`, absent when the sender left it out.
    pub args: Option<List>,
    /// `ArgumentsKw|dict`, absent when the sender left it out.
    pub kwargs: Option<Dict>,
}

/// Arguments as the encoded bytes of the message's list elements, in one serializer.
/// Built only by the codecs, from input they checked the way a full decode would.
/// Small (as small as [`Arguments`]): messages holding one move around a lot.
#[derive(Clone, Debug)]
pub struct Encoded {
    /// The encoded `Arguments|list` element, then the `ArgumentsKw|dict` element if
    /// present (adjacent in every message list, JSON with a comma between).
    bytes: Bytes,
    /// Where the args end in `bytes`.
    args_len: u32,
    /// Where the kwargs start in `bytes` (its length when there are none).
    kwargs_at: u32,
    serializer: Serializer,
}

impl Encoded {
    /// Arguments already checked to decode as a list (`bytes` up to `args_len`) and
    /// a dictionary (from `kwargs_at`, if not at the end) in `serializer`; `None` when
    /// the offsets do not fit.
    pub(crate) fn new(
        serializer: Serializer,
        bytes: Bytes,
        args_len: usize,
        kwargs_at: usize,
    ) -> Option<Encoded> {
        let fits = |n: usize| u32::try_from(n).ok().filter(|_| n <= bytes.len());
        let (args_len, kwargs_at) = (fits(args_len)?, fits(kwargs_at)?);
        (args_len <= kwargs_at).then_some(Encoded { bytes, args_len, kwargs_at, serializer })
    }

    /// The serializer the bytes are in.
    pub fn serializer(&self) -> Serializer {
        self.serializer
    }

    /// The encoded `Arguments|list`.
    pub fn args(&self) -> &[u8] {
        self.bytes.get(..self.args_len as usize).unwrap_or_default()
    }

    /// The encoded `ArgumentsKw|dict`, if present.
    pub fn kwargs(&self) -> Option<&[u8]> {
        self.bytes.get(self.kwargs_at as usize..).filter(|k| !k.is_empty())
    }

    /// The values. The bytes were checked when they were received, so this does not
    /// fail; should it anyway, the arguments read as absent.
    pub fn decode(&self) -> Arguments {
        let args = match self.serializer.decode_value(self.args()) {
            Ok(Value::List(l)) => Some(l),
            _ => None,
        };
        let kwargs = self.kwargs().and_then(|k| match self.serializer.decode_value(k) {
            Ok(Value::Dict(d)) => Some(d),
            _ => None,
        });
        debug_assert!(args.is_some() && kwargs.is_some() == self.kwargs().is_some(), "checked payload");
        Arguments { args, kwargs }
    }
}

/// The payload of ERROR, PUBLISH, EVENT, CALL, RESULT, INVOCATION and YIELD.
#[derive(Clone, Debug)]
pub enum Payload {
    /// Values, as the router builds them (or a codec without passthrough decodes them).
    Decoded(Arguments),
    /// The bytes the payload arrived in.
    Encoded(Encoded),
}

impl Default for Payload {
    fn default() -> Self {
        Payload::Decoded(Arguments::default())
    }
}

impl PartialEq for Payload {
    /// Equal when the values are: the encoding they travel in does not matter.
    fn eq(&self, other: &Payload) -> bool {
        *self.arguments() == *other.arguments()
    }
}

impl From<Arguments> for Payload {
    fn from(a: Arguments) -> Payload {
        Payload::Decoded(a)
    }
}

impl Payload {
    /// A payload of these values.
    pub fn new(args: Option<List>, kwargs: Option<Dict>) -> Self {
        Payload::Decoded(Arguments { args, kwargs })
    }

    /// A payload of positional arguments only.
    pub fn args(args: List) -> Self {
        Payload::new(Some(args), None)
    }

    /// True when neither args nor kwargs are present.
    pub fn is_empty(&self) -> bool {
        match self {
            Payload::Decoded(a) => a.args.is_none() && a.kwargs.is_none(),
            Payload::Encoded(_) => false,
        }
    }

    /// The values, decoded when the payload is still encoded.
    pub fn arguments(&self) -> Cow<'_, Arguments> {
        match self {
            Payload::Decoded(a) => Cow::Borrowed(a),
            Payload::Encoded(e) => Cow::Owned(e.decode()),
        }
    }

    /// The values, decoded when the payload is still encoded.
    pub fn into_arguments(self) -> Arguments {
        match self {
            Payload::Decoded(a) => a,
            Payload::Encoded(e) => e.decode(),
        }
    }

    /// The encoded form, when the payload is kept as received.
    pub fn encoded(&self) -> Option<&Encoded> {
        match self {
            Payload::Encoded(e) => Some(e),
            Payload::Decoded(_) => None,
        }
    }

    /// Roughly the bytes this payload takes in memory.
    pub fn memory_size(&self) -> usize {
        match self {
            Payload::Decoded(a) => {
                a.args.iter().flatten().map(Value::memory_size).sum::<usize>()
                    + a.kwargs.iter().flatten().map(|(k, v)| k.len() + v.memory_size()).sum::<usize>()
            }
            Payload::Encoded(e) => e.bytes.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_payload_kept_encoded_is_no_larger_than_a_decoded_one() {
        // messages, and the dealer's records holding them, move around a lot
        assert!(size_of::<Encoded>() <= size_of::<Arguments>(), "{}", size_of::<Encoded>());
        assert!(size_of::<Payload>() <= size_of::<Arguments>() + 8, "{}", size_of::<Payload>());
    }
}
