//! The cluster layer: the routing table ([`crate::table`]) replicated with Raft
//! (openraft), and the gRPC services between nodes. It imports no router code: the
//! router reaches it through [`Replicate`] and [`crate::link::Links`], and it
//! reaches the router through [`crate::link::LinkHandler`].
//!
//! - [`config`]: the `[cluster]` configuration section.
//! - [`types`]: the Raft type configuration and the log payload ([`types::Request`]).
//! - [`log_store`] / [`state_machine`]: storage (redb, on disk or in memory) and the
//!   state machine over the shared routing table and node liveness table.
//! - [`network`] / [`server`]: the Raft RPCs over tonic, client and server side.
//! - [`node`]: a running node ([`Cluster`]) and its write path.
//! - [`membership`] / [`liveness`]: joining, promotion, leaving; `NodeDown` by lease.
//! - [`seats`] / [`upkeep`]: which members vote (the lowest ids that are up), as a
//!   pure function, and the leader's loop that moves seats and forgets learners
//!   down longer than `forget_after`.
//! - [`transfer`]: handing leadership to another voter.
//! - [`status`]: `junction cluster status`.
//! - [`replicate`]: the cluster as the router sees it ([`Replicate`]): commit a
//!   routing command, follow node purges, change the membership.
//! - [`runtime`]: the `Link` service served from the start, connected to the
//!   router's [`LinkHandler`](crate::link::LinkHandler) once the wiring built it.
//! - [`proto`]: generated gRPC code for the Raft services.
//! - [`link`]: the data path: events, invocations and their answers between nodes
//!   over one gRPC stream per ordered node pair (`proto/link.proto`).
//!
//! A single node is a one-node cluster: the same code, an in-memory log, no gRPC
//! server unless `cluster.listen` is set.

pub mod clock;
pub mod convert;
pub mod fence;
pub mod link;
pub mod liveness;
pub mod log_store;
pub mod membership;
pub mod network;
pub mod node;
pub mod proposals;
pub mod proto;
pub mod replicate;
pub mod report;
pub mod runtime;
pub mod seats;
pub mod secure;
pub mod server;
pub mod state_machine;
pub mod status;
pub mod stream;
pub mod transfer;
pub mod types;
pub mod upkeep;

#[cfg(test)]
mod tests;

pub use crate::config::cluster as config;
pub use crate::config::cluster::ClusterConfig;
pub use node::{Cluster, LinkReporter, LinkState};
pub use replicate::{Replicate, ReplicateError};
pub use report::NotReady;
pub use status::status;
pub use types::NodeDownEvent;

/// Why the cluster layer could not start or answer.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The configuration is invalid.
    #[error("invalid cluster configuration: {0}")]
    Config(String),
    /// The Raft log or snapshot could not be opened.
    #[error("cluster storage: {0}")]
    Storage(String),
    /// Raft failed.
    #[error("raft: {0}")]
    Raft(String),
    /// The node could not join the cluster.
    #[error("cannot join the cluster: {0}")]
    Join(String),
    /// The leader refused this node for good (it must change before it may join).
    #[error("the cluster refused this node: {0}")]
    Refused(String),
    /// A call to another node failed.
    #[error("{0}")]
    Rpc(String),
}
