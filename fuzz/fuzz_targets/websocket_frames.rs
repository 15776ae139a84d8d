//! Fuzz target: an arbitrary byte stream as the client side of a WebSocket connection
//! (upgrade request, then frames), served by the real WebSocket transport and router.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| junction_fuzz::websocket_frames(data));
