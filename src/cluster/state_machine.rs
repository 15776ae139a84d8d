//! The Raft state machine: the shared [`RoutingTable`] plus the node liveness table.
//!
//! The table lives behind the same `Arc<RwLock<RoutingTable>>` that the node's
//! router reads (the table handed to [`Cluster::start`](super::node::Cluster::start)),
//! so a command is visible to the router the moment it is applied. Applying a [`Request`]:
//!
//! - `Route(cmd)` applies `cmd` to the table and returns its [`Outcome`];
//! - `Announce` records a node's address and incarnation; a new incarnation first
//!   purges the old one's entries (`Command::NodeDown`);
//! - `Down` purges the entries of that incarnation (stale ones are ignored);
//! - `Forget` purges the node and drops it from the liveness table.
//!
//! Every purge is also sent on a broadcast channel ([`NodeDownEvent`]) so the router
//! can fail the calls in flight to that node.
//!
//! Snapshots are the whole state (table, nodes, last applied log id, membership),
//! MessagePack-encoded; with a data directory the current snapshot is also kept in
//! `<data_dir>/snapshot.bin` and restored on start, so the log can be purged safely.

// openraft's StorageError is large by design; these helpers return it as the traits do.
#![allow(clippy::result_large_err)]

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use openraft::storage::RaftStateMachine;
use openraft::{EntryPayload, RaftSnapshotBuilder, StorageIOError};
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, watch};

use super::convert::{CodecError, decode, encode};
use super::types::{
    Entry, LogId, NodeDownEvent, NodeInfo, Nodes, Request, Snapshot, SnapshotMeta, StorageError,
    StoredMembership, TypeConfig,
};
use crate::ids::NodeId;
use crate::table::{Command, Outcome, RoutingTable};

/// Everything a snapshot holds.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SnapshotData {
    /// Last log id included.
    pub last_applied: Option<LogId>,
    /// Membership as of `last_applied`.
    pub last_membership: StoredMembership,
    /// The routing table.
    pub table: RoutingTable,
    /// The node liveness table.
    pub nodes: Nodes,
}

/// A snapshot as kept by the state machine.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta,
    data: Vec<u8>,
}

/// State shared by the state machine, its snapshot builders and the rest of the
/// node: what has been applied, readable at any time.
pub struct Replicated {
    /// The routing table (also held by the `Replica`).
    pub table: Arc<RwLock<RoutingTable>>,
    /// The node liveness table.
    nodes: RwLock<Nodes>,
    /// Index of the last applied entry (`None` before the first).
    applied: watch::Sender<Option<u64>>,
    /// Purges of nodes, as they are applied.
    down: broadcast::Sender<NodeDownEvent>,
    /// The latest snapshot.
    snapshot: Mutex<Option<StoredSnapshot>>,
    /// Where the snapshot is persisted, if anywhere.
    dir: Option<PathBuf>,
}

impl Replicated {
    /// A copy of the node liveness table.
    pub fn nodes(&self) -> Nodes {
        self.nodes.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The ids of the nodes the table has up (read in place: no copy of the table).
    pub fn nodes_up(&self) -> Vec<u64> {
        let nodes = self.nodes.read().unwrap_or_else(|e| e.into_inner());
        nodes.iter().filter(|(_, n)| n.up).map(|(&id, _)| id).collect()
    }

    /// What the table knows about one node.
    pub fn node(&self, id: u64) -> Option<NodeInfo> {
        self.nodes.read().unwrap_or_else(|e| e.into_inner()).get(&id).cloned()
    }

    /// Index of the last applied entry.
    pub fn applied_index(&self) -> Option<u64> {
        *self.applied.borrow()
    }

    /// Watches the last applied index.
    pub fn watch_applied(&self) -> watch::Receiver<Option<u64>> {
        self.applied.subscribe()
    }

    /// Node purges from now on.
    pub fn subscribe_node_down(&self) -> broadcast::Receiver<NodeDownEvent> {
        self.down.subscribe()
    }

    /// Waits until the entry at `index` has been applied here; false on timeout.
    pub async fn wait_applied(&self, index: u64, timeout: Duration) -> bool {
        let mut rx = self.applied.subscribe();
        let done = tokio::time::timeout(timeout, rx.wait_for(|a| a.is_some_and(|a| a >= index))).await;
        matches!(done, Ok(Ok(_)))
    }

    fn write_table(&self) -> std::sync::RwLockWriteGuard<'_, RoutingTable> {
        self.table.write().unwrap_or_else(|e| e.into_inner())
    }

    fn write_nodes(&self) -> std::sync::RwLockWriteGuard<'_, Nodes> {
        self.nodes.write().unwrap_or_else(|e| e.into_inner())
    }

    fn current_snapshot(&self) -> Option<StoredSnapshot> {
        self.snapshot.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn set_snapshot(&self, snap: StoredSnapshot) -> Result<(), StorageError> {
        if let Some(dir) = &self.dir {
            persist_snapshot(dir, &snap).map_err(|e| {
                StorageError::from(StorageIOError::write_snapshot(
                    Some(snap.meta.signature()),
                    openraft::AnyError::error(e),
                ))
            })?;
        }
        *self.snapshot.lock().unwrap_or_else(|e| e.into_inner()) = Some(snap);
        Ok(())
    }

    fn purge(&self, node: u64, incarnation: u64, log_index: u64) {
        let outcome = self.write_table().apply(Command::NodeDown { node: NodeId(node) });
        self.announce_down(node, incarnation, log_index, outcome);
    }

    /// Reports a purge, with the testaments it orphaned and who publishes them.
    fn announce_down(&self, node: u64, incarnation: u64, log_index: u64, outcome: Outcome) {
        let testaments = match outcome {
            Outcome::Orphaned(t) => t,
            _ => Vec::new(),
        };
        let publisher = self
            .nodes
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .find(|(id, n)| n.up && **id != node)
            .map_or(0, |(id, _)| *id);
        self.down.send(NodeDownEvent { node, incarnation, log_index, testaments, publisher }).ok();
    }

    /// Applies one request; returns its outcome.
    fn apply_request(&self, req: Request, log_index: u64) -> Outcome {
        match req {
            Request::Batch(cmds) => Outcome::Each(
                cmds.into_iter().map(|c| self.apply_request(Request::Route(c), log_index)).collect(),
            ),
            Request::Route(cmd) => {
                let down = match &cmd {
                    Command::NodeDown { node } => Some(node.0),
                    _ => None,
                };
                let outcome = self.write_table().apply(cmd);
                if let Some(node) = down {
                    let incarnation = {
                        let mut nodes = self.write_nodes();
                        nodes.get_mut(&node).map(|n| {
                            n.up = false;
                            n.incarnation
                        })
                    };
                    self.announce_down(node, incarnation.unwrap_or(0), log_index, outcome);
                    return Outcome::Done;
                }
                outcome
            }
            Request::Announce { node, addr, incarnation } => {
                let old = self
                    .write_nodes()
                    .insert(node, NodeInfo { addr, incarnation, up: true })
                    .filter(|old| old.incarnation != incarnation);
                if let Some(old) = old {
                    if old.up {
                        self.purge(node, old.incarnation, log_index);
                    } else {
                        // Already declared down (and reported): just make sure.
                        self.write_table().apply(Command::NodeDown { node: NodeId(node) });
                    }
                }
                Outcome::Done
            }
            Request::Down { node, incarnation } => {
                let hit = {
                    let mut nodes = self.write_nodes();
                    match nodes.get_mut(&node) {
                        Some(n) if n.incarnation == incarnation && n.up => {
                            n.up = false;
                            true
                        }
                        _ => false,
                    }
                };
                if hit {
                    self.purge(node, incarnation, log_index);
                }
                Outcome::Done
            }
            Request::Forget { node } => {
                let old = self.write_nodes().remove(&node);
                self.purge(node, old.map(|n| n.incarnation).unwrap_or(0), log_index);
                Outcome::Done
            }
        }
    }

    /// Replaces the whole state with a snapshot's; reports nodes whose incarnation
    /// disappeared as purged.
    fn restore(&self, data: SnapshotData, log_index: u64) {
        *self.write_table() = data.table;
        let old = std::mem::replace(&mut *self.write_nodes(), data.nodes.clone());
        for (id, info) in old {
            let gone = match data.nodes.get(&id) {
                Some(n) => n.incarnation != info.incarnation || (info.up && !n.up),
                None => true,
            };
            if gone && info.up {
                let ev = NodeDownEvent {
                    node: id,
                    incarnation: info.incarnation,
                    log_index,
                    testaments: Vec::new(),
                    publisher: 0,
                };
                self.down.send(ev).ok();
            }
        }
    }
}

fn snapshot_path(dir: &Path) -> PathBuf {
    dir.join("snapshot.bin")
}

/// The snapshot file cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// The data directory cannot be created.
    #[error("cannot create data directory {}: {reason}", path.display())]
    CreateDir { path: PathBuf, reason: String },
    /// The snapshot file cannot be read.
    #[error("cannot read {}: {reason}", path.display())]
    Read { path: PathBuf, reason: String },
    /// The snapshot file does not decode.
    #[error("{}: {source}", path.display())]
    Corrupt { path: PathBuf, source: CodecError },
    /// The snapshot does not encode.
    #[error(transparent)]
    Encode(#[from] CodecError),
    /// The temporary file cannot be written.
    #[error("cannot write {}: {reason}", path.display())]
    Write { path: PathBuf, reason: String },
    /// The temporary file cannot replace the snapshot.
    #[error("cannot write snapshot: {0}")]
    Rename(String),
}

fn persist_snapshot(dir: &Path, snap: &StoredSnapshot) -> Result<(), SnapshotError> {
    let bytes = encode("snapshot", snap)?;
    let tmp = dir.join("snapshot.bin.tmp");
    std::fs::write(&tmp, &bytes)
        .map_err(|e| SnapshotError::Write { path: tmp.clone(), reason: e.to_string() })?;
    if let Ok(f) = std::fs::File::open(&tmp) {
        f.sync_all().ok();
    }
    std::fs::rename(&tmp, snapshot_path(dir)).map_err(|e| SnapshotError::Rename(e.to_string()))
}

/// The state machine given to openraft.
pub struct StateMachine {
    shared: Arc<Replicated>,
    last_applied: Option<LogId>,
    last_membership: StoredMembership,
    /// Counter making snapshot ids unique.
    snapshot_seq: u64,
}

impl StateMachine {
    /// A state machine over `table` (normally empty), persisting snapshots in `dir`
    /// when given and restoring the one found there.
    pub fn open(table: Arc<RwLock<RoutingTable>>, dir: Option<&Path>) -> Result<StateMachine, SnapshotError> {
        let (applied, _) = watch::channel(None);
        let (down, _) = broadcast::channel(1024);
        let shared = Arc::new(Replicated {
            table,
            nodes: RwLock::new(Nodes::new()),
            applied,
            down,
            snapshot: Mutex::new(None),
            dir: dir.map(Path::to_path_buf),
        });
        let mut sm = StateMachine {
            shared,
            last_applied: None,
            last_membership: StoredMembership::default(),
            snapshot_seq: 0,
        };
        if let Some(dir) = dir {
            std::fs::create_dir_all(dir)
                .map_err(|e| SnapshotError::CreateDir { path: dir.to_owned(), reason: e.to_string() })?;
            let path = snapshot_path(dir);
            match std::fs::read(&path) {
                Ok(bytes) => {
                    let snap: StoredSnapshot = decode("snapshot", &bytes)
                        .map_err(|source| SnapshotError::Corrupt { path: path.clone(), source })?;
                    let data: SnapshotData = decode("snapshot data", &snap.data)
                        .map_err(|source| SnapshotError::Corrupt { path: path.clone(), source })?;
                    sm.load(data);
                    *sm.shared.snapshot.lock().unwrap_or_else(|e| e.into_inner()) = Some(snap);
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(SnapshotError::Read { path, reason: e.to_string() }),
            }
        }
        Ok(sm)
    }

    /// The shared applied state.
    pub fn shared(&self) -> Arc<Replicated> {
        self.shared.clone()
    }

    fn load(&mut self, data: SnapshotData) {
        self.last_applied = data.last_applied;
        self.last_membership = data.last_membership.clone();
        let index = data.last_applied.map(|l| l.index);
        self.shared.restore(data, index.unwrap_or(0));
        self.shared.applied.send_replace(index);
    }
}

/// Builds a snapshot of the state as it was when the builder was made.
pub struct SnapshotBuilder {
    data: SnapshotData,
    shared: Arc<Replicated>,
    seq: u64,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot, StorageError> {
        let bytes = encode("snapshot data", &self.data).map_err(|e| {
            StorageError::from(StorageIOError::read_state_machine(openraft::AnyError::error(e)))
        })?;
        let snapshot_id = match &self.data.last_applied {
            Some(l) => format!("{}-{}-{}", l.leader_id, l.index, self.seq),
            None => format!("--{}", self.seq),
        };
        let meta = SnapshotMeta {
            last_log_id: self.data.last_applied,
            last_membership: self.data.last_membership.clone(),
            snapshot_id,
        };
        self.shared.set_snapshot(StoredSnapshot { meta: meta.clone(), data: bytes.clone() })?;
        Ok(Snapshot { meta, snapshot: Box::new(Cursor::new(bytes)) })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        Ok((self.last_applied, self.last_membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Outcome>, StorageError>
    where
        I: IntoIterator<Item = Entry> + openraft::OptionalSend,
        I::IntoIter: openraft::OptionalSend,
    {
        let mut out = Vec::new();
        for entry in entries {
            self.last_applied = Some(entry.log_id);
            let outcome = match entry.payload {
                EntryPayload::Blank => Outcome::Done,
                EntryPayload::Normal(req) => self.shared.apply_request(req, entry.log_id.index),
                EntryPayload::Membership(m) => {
                    self.last_membership = StoredMembership::new(Some(entry.log_id), m);
                    Outcome::Done
                }
            };
            out.push(outcome);
        }
        if let Some(l) = self.last_applied {
            self.shared.applied.send_replace(Some(l.index));
        }
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> SnapshotBuilder {
        self.snapshot_seq += 1;
        let table = self.shared.table.read().unwrap_or_else(|e| e.into_inner()).clone();
        SnapshotBuilder {
            data: SnapshotData {
                last_applied: self.last_applied,
                last_membership: self.last_membership.clone(),
                table,
                nodes: self.shared.nodes(),
            },
            shared: self.shared.clone(),
            seq: self.snapshot_seq,
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let bytes = snapshot.into_inner();
        let data: SnapshotData = decode("snapshot data", &bytes).map_err(|e| {
            StorageError::from(StorageIOError::read_snapshot(
                Some(meta.signature()),
                openraft::AnyError::error(e),
            ))
        })?;
        self.shared.set_snapshot(StoredSnapshot { meta: meta.clone(), data: bytes })?;
        self.load(SnapshotData {
            last_applied: meta.last_log_id,
            last_membership: meta.last_membership.clone(),
            ..data
        });
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, StorageError> {
        Ok(self
            .shared
            .current_snapshot()
            .map(|s| Snapshot { meta: s.meta, snapshot: Box::new(Cursor::new(s.data)) }))
    }
}
