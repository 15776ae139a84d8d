//! Fuzz target: arbitrary sequences of client messages from several clients, checked
//! against the session state machine and driven through the router in memory.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| junction_fuzz::session_sequence(data));
