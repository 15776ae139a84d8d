//! The node's copy of the routing table, and the one way to change it: `propose`.
//!
//! On a single node a proposed command is applied at once. The cluster layer
//! replaces the commit step with Raft; callers are the same either way (one code
//! path): they propose a command, await its [`Outcome`], and read the table.

use std::sync::RwLock;

use super::table::{Command, Outcome, RoutingTable};

/// Why a command could not be committed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ProposeError {
    /// No quorum / no leader reachable: the change is refused rather than diverging.
    #[error("routing change not committed: {0}")]
    Unavailable(String),
}

/// The routing table and its commit path.
#[derive(Default)]
pub struct Replica {
    table: RwLock<RoutingTable>,
}

impl Replica {
    /// Commits a command and returns what applying it produced.
    pub async fn propose(&self, cmd: Command) -> Result<Outcome, ProposeError> {
        Ok(self.apply(cmd))
    }

    /// Applies a committed command to the local copy.
    pub fn apply(&self, cmd: Command) -> Outcome {
        self.table.write().unwrap_or_else(|e| e.into_inner()).apply(cmd)
    }

    /// Reads the table. Keep `f` short: it runs under the read lock.
    pub fn read<R>(&self, f: impl FnOnce(&RoutingTable) -> R) -> R {
        f(&self.table.read().unwrap_or_else(|e| e.into_inner()))
    }
}
