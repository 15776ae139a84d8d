//! Fuzz target: arbitrary bytes through the cbor decoder; whatever decodes must survive
//! an encode/decode round trip unchanged.

#![no_main]

use junction::wamp::codec::Serializer;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| junction_fuzz::decode_roundtrip(Serializer::Cbor, data));
