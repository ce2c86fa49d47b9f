//! Opens the node's single fjall database and its shared keyspaces.

use crate::error::StorageError;
use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};
use std::path::{Path, PathBuf};

/// Keyspace of Raft log entries: `shard_id (u64 BE) ‖ index (u64 BE)` → encoded entry.
pub const RAFT_LOG: &str = "raft_log";
/// Keyspace of per-shard Raft and apply state: `shard_id (u64 BE) ‖ tag (u8)` → record.
pub const RAFT_STATE: &str = "raft_state";
/// Keyspace of MVCC versions: `encoded user key ‖ revision` → version record.
pub const MVCC: &str = "mvcc";
/// Keyspace of the revision-ordered change log: `revision ‖ encoded user key` → change.
pub const CHANGES: &str = "changes";
/// Keyspace of leases (decision D16): the meta shard's lease records and every data shard's
/// lease → keys index and revoked-lease markers, each kind under its own first byte
/// (`crate::lease::lease_keys`), never a user key.
pub const LEASES: &str = "leases";

/// Journal bytes kept before fjall flushes memtables to free old journals.
pub const JOURNAL_BYTES_MAX: u64 = 64 * 1024 * 1024;
/// Memtable size per keyspace; with five keyspaces the memtables fit in the journal cap.
pub const MEMTABLE_BYTES_MAX: u64 = 16 * 1024 * 1024;

/// The node's storage: one fjall database with the shared keyspaces. Cheap to clone; every
/// handle refers to the same database.
#[derive(Clone)]
pub struct Storage {
    /// The fjall database.
    pub db: Database,
    /// Raft log entries of every shard.
    pub raft_log: Keyspace,
    /// Hard state, conf state and apply state of every shard.
    pub raft_state: Keyspace,
    /// MVCC versions of every key of every shard on this node.
    pub mvcc: Keyspace,
    /// Revision-ordered change log of every shard on this node.
    pub changes: Keyspace,
    /// Lease records (meta shard), lease indexes and revoked markers (data shards).
    pub leases: Keyspace,
    path: PathBuf,
}

impl Storage {
    /// Opens (or creates) the database at `path`.
    ///
    /// Journal persistence is manual: writes reach the OS on commit, and only the log writer's
    /// `persist(SyncData)` makes them durable (group commit, DESIGN §3).
    pub fn open(path: &Path, cache_bytes: u64) -> Result<Storage, StorageError> {
        let shown = path.display().to_string();
        if path.exists() && !path.is_dir() {
            return Err(StorageError::Corrupt {
                path: shown,
                detail: "it is a file, not a directory".into(),
            });
        }
        std::fs::create_dir_all(path)?;
        let db = Database::builder(path)
            .cache_size(cache_bytes)
            .manual_journal_persist(true)
            // Recovery replays the journal into memtables: capping it (fjall's minimum) bounds
            // restart time whatever the key count (DESIGN §5: restart must not grow with it).
            .max_journaling_size(JOURNAL_BYTES_MAX)
            .open()
            .map_err(|e| classify_open_error(&shown, e))?;
        let open = |name: &str| {
            db.keyspace(name, || {
                KeyspaceCreateOptions::default().max_memtable_size(MEMTABLE_BYTES_MAX)
            })
            .map_err(|e| classify_open_error(&shown, e))
        };
        Ok(Storage {
            raft_log: open(RAFT_LOG)?,
            raft_state: open(RAFT_STATE)?,
            mvcc: open(MVCC)?,
            changes: open(CHANGES)?,
            leases: open(LEASES)?,
            db,
            path: path.to_path_buf(),
        })
    }

    /// The data directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Makes every write committed so far durable (fdatasync of the journal).
    pub fn sync(&self) -> Result<(), StorageError> {
        self.db.persist(PersistMode::SyncData)?;
        Ok(())
    }

    /// Bytes the database uses on disk.
    pub fn disk_bytes(&self) -> u64 {
        self.db.disk_space().unwrap_or(0)
    }
}

fn classify_open_error(path: &str, e: fjall::Error) -> StorageError {
    match e {
        fjall::Error::Locked => StorageError::Locked { path: path.to_string() },
        fjall::Error::Io(io) if io.kind() == std::io::ErrorKind::PermissionDenied => {
            StorageError::Io(io)
        }
        other => StorageError::Corrupt { path: path.to_string(), detail: format!("{other:?}") },
    }
}
