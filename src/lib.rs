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
//! Between nodes, [`router`] sends [`link::LinkMsg`]s through [`link::Links`] and
//! takes what arrives as the [`link::LinkHandler`] it implements; [`cluster`] carries
//! them over gRPC and replicates the [`table`] with Raft, which the router's replica
//! commits to through [`cluster::Replicate`]. `main.rs` builds the cluster and the
//! router and connects them.
//!
//! Layers import only the layers above them: `ids`, `config`, `wamp`, `observe`,
//! `broker`, `dealer`, `table` and `link` (below both the router and the cluster),
//! `router`, `transport`. [`observe`] is what the layers below it report through
//! (metrics, trace spans, the log filter) and the [`observe::status::StatusSource`]
//! interface the router implements. [`cluster`] imports `table` and `link`, never the
//! router; the router reaches the cluster only through [`cluster::Replicate`] and the
//! node-down events it returns (its replica also keeps the concrete
//! [`cluster::Cluster`], for the status documents it hands to ops). [`ops`] (metrics
//! and trace export, the admin HTTP server) imports only `ids`, `config`, `auth` and
//! `observe`: it sees the router as a `StatusSource`, and neither the router nor the
//! transports import it; `main` wires them together.

pub use junction_core::{broker, dealer, dict, ids, link, table, wamp};

pub mod auth;
pub mod cluster;
pub mod config;
pub mod observe;
pub mod ops;
pub mod router;
pub mod transport;
