//! The node's copy of the routing table, and the one way to change it: `propose`.
//!
//! A proposed command is committed through Raft, behind the cluster's [`Replicate`]
//! seam: on the leader directly, from a follower by forwarding it to the leader and
//! waiting until this node has applied it (read-your-writes). A single node is a
//! one-node cluster, so callers are the same either way: they propose a command,
//! await its [`Outcome`], and read the table, which the Raft state machine updates
//! in place (the same `Arc<RwLock<RoutingTable>>`, handed to both by the wiring).
//!
//! [`Replica::default`] applies commands at once without Raft; it exists for tests
//! that build a router synchronously and must not be used by a running node.

use std::sync::{Arc, RwLock};

use tokio::sync::broadcast;

use crate::cluster::replicate::ReplicateError;
use crate::cluster::{NodeDownEvent, Replicate};
use crate::table::{Command, Outcome, RoutingTable};

/// Why a command could not be committed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ProposeError {
    /// No quorum / no leader reachable: the change is refused rather than diverging.
    #[error("routing change not committed: {0}")]
    Unavailable(#[from] ReplicateError),
}

/// The routing table and its commit path.
pub struct Replica {
    table: Arc<RwLock<RoutingTable>>,
    /// The cluster; `None` only for [`Replica::default`] (direct apply).
    cluster: Option<Arc<dyn Replicate>>,
    /// Node purges in direct mode (with Raft they come from the state machine).
    direct_down: broadcast::Sender<NodeDownEvent>,
}

impl Default for Replica {
    /// Direct apply, no Raft: for synchronous tests only.
    fn default() -> Self {
        Replica { table: Arc::default(), cluster: None, direct_down: broadcast::channel(16).0 }
    }
}

impl Replica {
    /// The replica of a running `cluster` whose state machine applies commands to
    /// `table`.
    pub fn new(table: Arc<RwLock<RoutingTable>>, cluster: Arc<dyn Replicate>) -> Replica {
        Replica { table, cluster: Some(cluster), direct_down: broadcast::channel(16).0 }
    }

    /// Commits a command and returns what applying it produced. When this returns,
    /// [`Replica::read`] on this node sees the change.
    pub async fn propose(&self, cmd: Command) -> Result<Outcome, ProposeError> {
        match &self.cluster {
            Some(c) => c.commit(cmd).await.map_err(ProposeError::Unavailable),
            None => {
                let down = match &cmd {
                    Command::NodeDown { node } => Some(node.0),
                    _ => None,
                };
                let outcome = self.table.write().unwrap_or_else(|e| e.into_inner()).apply(cmd);
                if let Some(node) = down {
                    let testaments = match outcome {
                        Outcome::Orphaned(t) => t,
                        _ => Vec::new(),
                    };
                    let ev = NodeDownEvent { node, incarnation: 0, log_index: 0, testaments, publisher: 0 };
                    self.direct_down.send(ev).ok();
                    return Ok(Outcome::Done);
                }
                Ok(outcome)
            }
        }
    }

    /// Reads the table. Keep `f` short: it runs under the read lock.
    pub fn read<R>(&self, f: impl FnOnce(&RoutingTable) -> R) -> R {
        f(&self.table.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// The other nodes the liveness table has up (none in direct mode or alone).
    pub fn peers(&self, me: crate::ids::NodeId) -> Vec<crate::ids::NodeId> {
        let Some(c) = &self.cluster else { return Vec::new() };
        c.nodes_up().into_iter().filter(|id| *id != me).collect()
    }

    /// The cluster behind this replica (`None` in direct mode).
    pub fn replicate(&self) -> Option<&Arc<dyn Replicate>> {
        self.cluster.as_ref()
    }

    /// Node purges as they are applied on this node: a node declared down (lease
    /// expired, killed), restarted with a new incarnation, or removed. Calls in
    /// flight to `event.node` must fail. An event for this very node means it was
    /// cut off long enough to be declared down: its interests and callees are gone
    /// from the table and must be proposed again (the cluster layer re-announces
    /// the node by itself).
    pub fn node_down_events(&self) -> broadcast::Receiver<NodeDownEvent> {
        match &self.cluster {
            Some(c) => c.node_down_events(),
            None => self.direct_down.subscribe(),
        }
    }

    /// Leaves gracefully: the other nodes purge this node's entries at once (not
    /// after the liveness lease), then Raft and the gRPC server stop. Call it once
    /// the node's sessions are gone.
    pub async fn shutdown(&self) {
        if let Some(c) = &self.cluster {
            c.retire().await;
        }
    }
}
