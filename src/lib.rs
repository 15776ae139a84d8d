//! Junction: a clustered WAMP router.
//!
//! The path of a message through the crate:
//!
//! 1. [`transport`] accepts a connection (WebSocket or RawSocket), negotiates the
//!    serializer and turns the byte stream into frames; one task per connection.
//! 2. [`wamp::codec`] decodes a frame into a typed [`wamp::Message`];
//!    [`wamp::session`] says whether it is legal in the session's state.
//! 3. [`router::session`] routes it: [`router::pubsub`] runs the [`broker`]'s fan-out
//!    plan, [`router::rpc`] and [`router::dealing`] run the [`dealer`]'s state
//!    machine, which owns every call and invocation in flight on the node.
//! 4. Both read the realm's routing table ([`table`]), changed only by commands
//!    through [`router::replica`] (applied at once on one node, through Raft in a
//!    cluster).
//! 5. Replies, events and invocations are encoded once per serializer and pushed into
//!    each receiving session's bounded outbox ([`router::outbox`]); the connection task
//!    drains it onto the socket.
//!
//! The layers, each importing only those listed before it (`tests/layering.rs`
//! checks this):
//!
//! | module | owns | may import |
//! |---|---|---|
//! | core crate (`core/`): `ids`, `wamp`, `roles`, `broker`, `dealer`, `table`, `link` | the protocol without I/O: messages, codecs, URI rules, authorization rules, subscription and registration indexes, fan-out plans, the dealer's state machine, the routing table and its commands, the messages between nodes | one another; no async runtime |
//! | [`config`] | the configuration file and its checks | core, `auth` (its config types) |
//! | [`auth`] | authentication methods, secrets, TLS connection facts | core |
//! | [`observe`] | metrics, trace spans, the log filter, the `StatusSource` interface | core |
//! | [`cluster`] | Raft (openraft), the gRPC links, membership, liveness; implements [`link::Links`] and [`cluster::Replicate`] | core, `config`, `observe` |
//! | [`router`] | realms, sessions, outboxes, running the broker and dealer, meta/admin APIs; implements [`link::LinkHandler`] and `StatusSource` | core, `config`, `auth`, `observe`, and of `cluster` only its seam (`Replicate`, `NodeDownEvent`) |
//! | [`transport`] | listeners, WebSocket and RawSocket framing, TLS, the connection driver, the HTTP bridge (`transport::bridge`, over `router::bridge`) | core, `config`, `auth`, `observe`, `router` |
//! | [`ops`] | metrics and trace export, the admin HTTP server and console | core, `config`, `auth`, `observe` |
//!
//! `main.rs` builds the cluster and the router and connects them: the router sends
//! [`link::LinkMsg`]s through the cluster's [`link::Links`] and commits through
//! [`cluster::Replicate`]; the cluster hands what arrives to the router as its
//! [`link::LinkHandler`]; ops sees the router as a `StatusSource`.

pub use junction_core::{broker, dealer, dict, ids, link, table, wamp};

pub mod auth;
pub mod cluster;
pub mod config;
pub mod observe;
pub mod ops;
pub mod router;
pub mod transport;
