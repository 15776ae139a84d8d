//! Fuzz target: an arbitrary byte stream read as a RawSocket connection: handshake,
//! then frame headers and frames, each message frame decoded.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| junction_fuzz::rawsocket_stream(data));
