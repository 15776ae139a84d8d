//! Junction's protocol core, without I/O: what the router decides, as plain data and
//! state machines that take the time as an argument. The `junction` crate re-exports
//! every module here under the same name and runs it over sockets, Raft and gRPC.
//!
//! - [`ids`]: typed identifiers.
//! - [`wamp`]: values, messages, codecs, URI rules, the per-session state machine.
//! - [`roles`]: authorization rules (static roles, pattern coverage, the authorizer's answer).
//! - [`broker`]: the subscription index and the fan-out plan of an event.
//! - [`dealer`]: the registration index, callee choice, and the state machine that
//!   owns every call and invocation in flight on a node.
//! - [`table`]: the replicated routing table and the commands that change it.
//! - [`link`]: the messages between nodes and the two seams that carry them.
//!
//! This crate depends on no async runtime; it cannot import the router, the
//! cluster or the transports, which live in the crate above it.

pub mod broker;
pub mod dealer;
pub mod ids;
pub mod link;
pub mod roles;
pub mod table;
pub mod wamp;
