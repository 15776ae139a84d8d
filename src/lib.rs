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
//! 4. Both read the realm's routing table ([`table`]), a deterministic state
//!    machine built from the [`broker`] and [`dealer`] indexes and changed only by
//!    commands through [`router::replica`] (applied at once on one node, through
//!    Raft in a cluster).
//! 5. Replies, events and invocations are encoded once per serializer and pushed into
//!    each receiving session's bounded outbox ([`router::outbox`]); the connection task
//!    drains it onto the socket.
//!
//! Layers import only the layers above them: `ids`, `config`, `wamp`, `broker`,
//! `dealer`, `table`, `router`, `transport`. The routing table and its commands
//! ([`table`]) sit below both the router and the cluster, so the cluster replicates
//! them without knowing the router.

pub mod auth;
pub mod broker;
pub mod cluster;
pub mod config;
pub mod dealer;
pub mod ids;
pub mod link;
pub mod ops;
pub mod router;
pub mod table;
pub mod transport;
pub mod wamp;
