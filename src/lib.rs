//! Junction: a clustered WAMP router.
//!
//! The path of a message through the crate:
//!
//! 1. [`transport`] accepts a connection (WebSocket or RawSocket), negotiates the
//!    serializer and turns the byte stream into frames; one task per connection.
//! 2. [`wamp::codec`] decodes a frame into a typed [`wamp::Message`];
//!    [`wamp::session`] says whether it is legal in the session's state.
//! 3. [`router::session`] routes it: [`router::pubsub`] for the broker,
//!    [`router::rpc`] for the dealer.
//! 4. Both read the realm's routing table ([`router::table`]), a deterministic state
//!    machine built from the [`broker`] and [`dealer`] indexes and changed only by
//!    commands through [`router::replica`] (applied at once on one node, through
//!    Raft in a cluster).
//! 5. Replies, events and invocations are encoded once per serializer and pushed into
//!    each receiving session's bounded outbox ([`router::outbox`]); the connection task
//!    drains it onto the socket.
//!
//! Layers import only the layers above them: `ids`, `config`, `wamp`, `observe`,
//! `broker`, `dealer`, `router`, `transport`. [`observe`] is what the layers below
//! it report through (metrics, trace spans, the log filter) and the
//! [`observe::status::StatusSource`] interface the router implements. [`ops`]
//! (metrics and trace export, the admin HTTP server) imports only `ids`, `config`,
//! `auth` and `observe`: it sees the router as a `StatusSource`, and neither the
//! router nor the transports import it; `main` wires the two together.

pub mod auth;
pub mod broker;
pub mod cluster;
pub mod config;
pub mod dealer;
pub mod ids;
pub mod observe;
pub mod ops;
pub mod router;
pub mod transport;
pub mod wamp;
