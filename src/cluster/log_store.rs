//! The Raft log store: log entries, vote, committed and purged log ids.
//!
//! A node with a data directory keeps them in redb, in `<data_dir>/raft.redb` (every
//! append and vote is durable when the call returns: redb's default
//! `Durability::Immediate`). A node without one keeps them in a map in memory
//! ([`Memory`]): the entries themselves, not their encoding. It used redb's
//! in-memory backend before; a profile of REGISTER churn on a 3-node cluster put
//! redb's transactions and the decoding of entries read back at 29 % of a plain
//! follower's CPU and 16 % of the forwarding node's, for durability nothing needs in
//! memory.
//!
//! Besides openraft's state it keeps one flag of the node's own: the store was
//! empty when the node started and the node has not joined since (see
//! `cluster::membership`).
//!
//! On disk, entries are stored MessagePack-encoded under their index. The calls are
//! synchronous redb transactions made from openraft's storage task; they are short
//! (one fsync per batch of appended entries on disk, none in memory).
//!
//! The committed index is advisory (it only spares re-applying entries after a
//! restart), so it costs no transaction of its own: it is written with the next
//! append or purge. Purges after each snapshot drop the entries, so in memory the
//! log stays about a snapshot interval of entries
//! (`in_memory_the_log_holds_about_one_purge_interval_of_entries`).

// openraft's StorageError is large by design; these helpers return it as the traits do.
#![allow(clippy::result_large_err)]

use std::collections::{BTreeMap, HashMap};
use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{OptionalSend, RaftLogReader, StorageIOError, Vote};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use super::convert::{CodecError, decode, encode};
use super::types::{Entry, LogId, RaftNodeId, StorageError, TypeConfig};

const LOGS: TableDefinition<u64, &[u8]> = TableDefinition::new("raft_log");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("raft_meta");

const KEY_VOTE: &str = "vote";
const KEY_COMMITTED: &str = "committed";
const KEY_PURGED: &str = "last_purged";
const KEY_UNJOINED: &str = "unjoined";

/// The log store. Cheap to clone: clones share the database.
#[derive(Clone)]
pub struct LogStore {
    backend: Backend,
    /// Last committed index as told by openraft (-1 for none), for status.
    committed: Arc<AtomicI64>,
    /// The committed log id openraft saved last, until a write takes it to the store.
    unsaved_committed: Arc<Mutex<Option<Option<LogId>>>>,
}

/// Where the log is kept.
#[derive(Clone)]
enum Backend {
    /// In redb, on disk.
    Disk(Arc<Database>),
    /// In memory.
    Memory(Arc<Mutex<Memory>>),
}

/// A log kept in memory: the entries by index, and the meta values encoded as on
/// disk.
#[derive(Default)]
struct Memory {
    entries: BTreeMap<u64, Entry>,
    meta: HashMap<&'static str, Vec<u8>>,
}

/// The Raft log cannot be opened or written.
#[derive(Debug, thiserror::Error)]
pub enum LogStoreError {
    /// The data directory cannot be created.
    #[error("cannot create data directory {}: {reason}", path.display())]
    CreateDir { path: PathBuf, reason: String },
    /// The log file cannot be opened or created.
    #[error("cannot open Raft log {}: {reason}", path.display())]
    Open { path: PathBuf, reason: String },
    /// The tables cannot be created.
    #[error("Raft log: {0}")]
    Tables(String),
    /// A value does not encode.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// A write transaction failed.
    #[error("{0}")]
    Write(String),
}

fn write_failed(e: impl std::fmt::Display) -> LogStoreError {
    LogStoreError::Write(e.to_string())
}

fn read_err(e: impl std::fmt::Display) -> StorageError {
    StorageIOError::read_logs(openraft::AnyError::error(e.to_string())).into()
}

fn write_err(e: impl std::fmt::Display) -> StorageError {
    StorageIOError::write_logs(openraft::AnyError::error(e.to_string())).into()
}

fn vote_err(e: impl std::fmt::Display) -> StorageError {
    StorageIOError::write_vote(openraft::AnyError::error(e.to_string())).into()
}

fn lock(m: &Mutex<Memory>) -> std::sync::MutexGuard<'_, Memory> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl LogStore {
    /// Opens (or creates) the store in `dir/raft.redb`.
    pub fn open(dir: &Path) -> Result<LogStore, LogStoreError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| LogStoreError::CreateDir { path: dir.to_owned(), reason: e.to_string() })?;
        let path = dir.join("raft.redb");
        let db = Database::create(&path)
            .map_err(|e| LogStoreError::Open { path: path.clone(), reason: e.to_string() })?;
        let tables = |e: redb::Error| LogStoreError::Tables(e.to_string());
        let txn = db.begin_write().map_err(|e| tables(e.into()))?;
        {
            txn.open_table(LOGS).map_err(|e| tables(e.into()))?;
            txn.open_table(META).map_err(|e| tables(e.into()))?;
        }
        txn.commit().map_err(|e| tables(e.into()))?;
        let store = LogStore::with(Backend::Disk(Arc::new(db)));
        if let Ok(Some(Some(c))) = store.get_meta::<Option<LogId>>(KEY_COMMITTED) {
            store.committed.store(c.index as i64, Ordering::Relaxed);
        }
        Ok(store)
    }

    /// An empty store in memory.
    pub fn in_memory() -> LogStore {
        LogStore::with(Backend::Memory(Arc::default()))
    }

    fn with(backend: Backend) -> LogStore {
        LogStore {
            backend,
            committed: Arc::new(AtomicI64::new(-1)),
            unsaved_committed: Arc::new(Mutex::new(None)),
        }
    }

    /// Whether the node marked this store as started empty and not joined since
    /// ([`LogStore::set_unjoined`]).
    pub fn unjoined(&self) -> Result<bool, LogStoreError> {
        let marked = self.get_meta::<bool>(KEY_UNJOINED).map_err(|e| LogStoreError::Tables(e.to_string()))?;
        Ok(marked.unwrap_or(false))
    }

    /// Marks this store as started empty and not joined yet (durably): a node
    /// refused for an empty log stays refused after it received entries meanwhile.
    pub fn set_unjoined(&self, unjoined: bool) -> Result<(), LogStoreError> {
        self.put_meta(KEY_UNJOINED, &unjoined)
    }

    /// The last committed index known to this node (-1 for none).
    pub fn committed_index(&self) -> Arc<AtomicI64> {
        self.committed.clone()
    }

    fn get_meta<T: serde::de::DeserializeOwned>(&self, key: &str) -> Result<Option<T>, StorageError> {
        let db = match &self.backend {
            Backend::Disk(db) => db,
            Backend::Memory(m) => {
                let m = lock(m);
                return m.meta.get(key).map(|v| decode("raft meta", v).map_err(read_err)).transpose();
            }
        };
        let txn = db.begin_read().map_err(read_err)?;
        let table = txn.open_table(META).map_err(read_err)?;
        match table.get(key).map_err(read_err)? {
            Some(v) => Ok(Some(decode("raft meta", v.value()).map_err(read_err)?)),
            None => Ok(None),
        }
    }

    /// Writes one meta value durably, with the committed log id if one is unsaved.
    fn put_meta<T: serde::Serialize>(&self, key: &'static str, value: &T) -> Result<(), LogStoreError> {
        let bytes = encode("raft meta", value)?;
        let db = match &self.backend {
            Backend::Disk(db) => db,
            Backend::Memory(m) => {
                lock(m).meta.insert(key, bytes);
                return Ok(());
            }
        };
        let txn = db.begin_write().map_err(write_failed)?;
        {
            let mut table = txn.open_table(META).map_err(write_failed)?;
            table.insert(key, bytes.as_slice()).map_err(write_failed)?;
            self.save_unsaved_committed(&mut table)?;
        }
        txn.commit().map_err(write_failed)
    }

    /// Writes the committed log id openraft saved last, if a write has not yet.
    fn save_unsaved_committed(&self, meta: &mut redb::Table<&str, &[u8]>) -> Result<(), LogStoreError> {
        let unsaved = self.unsaved_committed.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(committed) = unsaved {
            let bytes = encode("raft meta", &committed)?;
            meta.insert(KEY_COMMITTED, bytes.as_slice()).map_err(write_failed)?;
        }
        Ok(())
    }

    /// Writes `entries` (and the committed log id, if unsaved) in one transaction.
    fn append_entries(&self, entries: impl IntoIterator<Item = Entry>) -> Result<(), LogStoreError> {
        let db = match &self.backend {
            Backend::Disk(db) => db,
            Backend::Memory(m) => {
                let mut m = lock(m);
                for e in entries {
                    m.entries.insert(e.log_id.index, e);
                }
                return Ok(());
            }
        };
        let txn = db.begin_write().map_err(write_failed)?;
        {
            let mut table = txn.open_table(LOGS).map_err(write_failed)?;
            for e in entries {
                let bytes = encode("raft log entry", &e)?;
                table.insert(e.log_id.index, bytes.as_slice()).map_err(write_failed)?;
            }
            self.save_unsaved_committed(&mut txn.open_table(META).map_err(write_failed)?)?;
        }
        txn.commit().map_err(write_failed)
    }

    /// Entries held in memory (for the test of their bound).
    #[cfg(test)]
    fn entries_in_memory(&self) -> usize {
        match &self.backend {
            Backend::Memory(m) => lock(m).entries.len(),
            Backend::Disk(_) => 0,
        }
    }

    fn last_entry_id(&self) -> Result<Option<LogId>, StorageError> {
        let db = match &self.backend {
            Backend::Disk(db) => db,
            Backend::Memory(m) => return Ok(lock(m).entries.values().next_back().map(|e| e.log_id)),
        };
        let txn = db.begin_read().map_err(read_err)?;
        let table = txn.open_table(LOGS).map_err(read_err)?;
        match table.last().map_err(read_err)? {
            Some((_, v)) => {
                let e: Entry = decode("raft log entry", v.value()).map_err(read_err)?;
                Ok(Some(e.log_id))
            }
            None => Ok(None),
        }
    }

    /// Removes the entries whose index lies in `range`.
    fn remove_range(&self, range: (Bound<u64>, Bound<u64>)) -> Result<(), StorageError> {
        let db = match &self.backend {
            Backend::Disk(db) => db,
            Backend::Memory(m) => {
                let mut m = lock(m);
                let doomed: Vec<u64> = m.entries.range(range).map(|(i, _)| *i).collect();
                for i in doomed {
                    m.entries.remove(&i);
                }
                return Ok(());
            }
        };
        let txn = db.begin_write().map_err(write_err)?;
        {
            let mut table = txn.open_table(LOGS).map_err(write_err)?;
            table.retain_in::<u64, _>(range, |_, _| false).map_err(write_err)?;
        }
        txn.commit().map_err(write_err)
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let bounds = (range.start_bound().cloned(), range.end_bound().cloned());
        let db = match &self.backend {
            Backend::Disk(db) => db,
            Backend::Memory(m) => return Ok(lock(m).entries.range(bounds).map(|(_, e)| e.clone()).collect()),
        };
        let txn = db.begin_read().map_err(read_err)?;
        let table = txn.open_table(LOGS).map_err(read_err)?;
        let mut out = Vec::new();
        for item in table.range::<u64>(bounds).map_err(read_err)? {
            let (_, v) = item.map_err(read_err)?;
            out.push(decode("raft log entry", v.value()).map_err(read_err)?);
        }
        Ok(out)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let last_purged_log_id: Option<LogId> = self.get_meta(KEY_PURGED)?;
        let last_log_id = self.last_entry_id()?.or(last_purged_log_id);
        Ok(LogState { last_purged_log_id, last_log_id })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<RaftNodeId>) -> Result<(), StorageError> {
        self.put_meta(KEY_VOTE, vote).map_err(vote_err)
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<RaftNodeId>>, StorageError> {
        self.get_meta(KEY_VOTE)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        if let Some(c) = &committed {
            self.committed.store(c.index as i64, Ordering::Relaxed);
        }
        // Advisory: written with the next append, purge or vote (see the module doc).
        *self.unsaved_committed.lock().unwrap_or_else(|e| e.into_inner()) = Some(committed);
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        if let Some(unsaved) = *self.unsaved_committed.lock().unwrap_or_else(|e| e.into_inner()) {
            return Ok(unsaved);
        }
        Ok(self.get_meta::<Option<LogId>>(KEY_COMMITTED)?.flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let result = self.append_entries(entries);
        match result {
            Ok(()) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                callback.log_io_completed(Err(std::io::Error::other(e.to_string())));
                Err(write_err(e))
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.remove_range((Bound::Included(log_id.index), Bound::Unbounded))
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.put_meta(KEY_PURGED, &log_id).map_err(write_err)?;
        self.remove_range((Bound::Unbounded, Bound::Included(log_id.index)))
    }
}

#[cfg(test)]
mod tests {
    use openraft::{CommittedLeaderId, EntryPayload};

    use super::*;

    fn blank(index: u64) -> Entry {
        Entry { log_id: log_id(index), payload: EntryPayload::Blank }
    }

    fn log_id(index: u64) -> LogId {
        openraft::LogId::new(CommittedLeaderId::new(1, 1), index)
    }

    #[tokio::test]
    async fn the_committed_index_is_written_with_the_next_append_and_survives_a_restart() {
        let dir = std::env::temp_dir().join(format!("junction-committed-{}", crate::ids::random_id()));
        {
            let mut log = LogStore::open(&dir).expect("log");
            log.append_entries((1..=3).map(blank)).expect("append");
            log.save_committed(Some(log_id(2))).await.expect("save");
            // read back before any write took it to the store
            assert_eq!(log.read_committed().await.expect("read"), Some(log_id(2)));
            log.append_entries([blank(4)]).expect("append");
        }
        let mut log = LogStore::open(&dir).expect("log reopens");
        assert_eq!(log.read_committed().await.expect("read"), Some(log_id(2)));
        assert_eq!(log.committed_index().load(Ordering::Relaxed), 2);
        std::fs::remove_dir_all(&dir).ok();
    }

    #[tokio::test]
    async fn in_memory_the_log_holds_about_one_purge_interval_of_entries() {
        let mut log = LogStore::in_memory();
        let payload = |i: u64| Entry {
            log_id: log_id(i),
            payload: EntryPayload::Normal(super::super::types::Request::Announce {
                node: i,
                addr: "x".repeat(200),
                incarnation: i,
            }),
        };
        for round in 0..20u64 {
            for i in 0..1000 {
                let index = round * 1000 + i + 1;
                log.append_entries([payload(index)]).expect("append");
                log.save_committed(Some(log_id(index))).await.expect("save");
            }
            log.purge(log_id(round * 1000 + 900)).await.expect("purge");
            assert_eq!(log.entries_in_memory(), 100, "round {round}: the entries past the purge");
        }
        let state = log.get_log_state().await.expect("state");
        assert_eq!(state.last_purged_log_id, Some(log_id(19_900)));
        assert_eq!(state.last_log_id, Some(log_id(20_000)));
    }

    #[tokio::test]
    async fn in_memory_the_log_reads_truncates_and_keeps_its_vote_like_on_disk() {
        let dir = std::env::temp_dir().join(format!("junction-log-same-{}", crate::ids::random_id()));
        let disk = LogStore::open(&dir).expect("log");
        let memory = LogStore::in_memory();
        for mut log in [disk, memory] {
            log.append_entries((1..=5).map(blank)).expect("append");
            let read = log.try_get_log_entries(2..4).await.expect("read");
            assert_eq!(read.iter().map(|e| e.log_id.index).collect::<Vec<_>>(), [2, 3]);
            log.truncate(log_id(4)).await.expect("truncate");
            assert_eq!(log.get_log_state().await.expect("state").last_log_id, Some(log_id(3)));
            let vote = Vote::new(3, 2);
            log.save_vote(&vote).await.expect("vote");
            assert_eq!(log.read_vote().await.expect("vote"), Some(vote));
            log.set_unjoined(true).expect("flag");
            assert!(log.unjoined().expect("flag"));
            log.purge(log_id(3)).await.expect("purge");
            let state = log.get_log_state().await.expect("state");
            assert_eq!((state.last_purged_log_id, state.last_log_id), (Some(log_id(3)), Some(log_id(3))));
            assert!(log.try_get_log_entries(0..10).await.expect("read").is_empty());
        }
        std::fs::remove_dir_all(&dir).ok();
    }
}
