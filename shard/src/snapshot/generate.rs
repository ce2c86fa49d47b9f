//! Generation on the leader: one shard's state at its applied index, read from one fjall
//! snapshot into a snapshot file. The index, the records and the conf state all come from
//! that one database snapshot, so the metadata Raft sends describes exactly the bytes
//! streamed; the term comes from the apply worker, which knows the term of the last entry it
//! applied (the entry itself may not be in the leader's log on disk yet: a leader applies
//! what a quorum persisted, possibly before its own log writer did).

use crate::mvcc::MvccStore;
use crate::snapshot::shard_records::for_each_record;
use crate::snapshot::snapshot_file::{SnapshotError, SnapshotMeta, SnapshotWriter};
use crate::storage::records::{self, StoredConfState};
use std::path::{Path, PathBuf};

/// A snapshot file on the leader. Shared (`Arc`) by the replica, which offers it to Raft,
/// and every transfer that streams it; the file is deleted when the last one lets go.
#[derive(Debug)]
pub struct GeneratedSnapshot {
    /// The file.
    pub path: PathBuf,
    /// What it is a snapshot of.
    pub meta: SnapshotMeta,
    /// Its size in bytes.
    pub bytes: u64,
}

impl Drop for GeneratedSnapshot {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_file(&self.path) {
            tracing::warn!(path = %self.path.display(), error = %e, "snapshot file not removed");
        }
    }
}

/// The directory snapshot files live in: `snapshots/` inside the database directory
/// (fjall reads only its own `journals/` and `keyspaces/` there). Files in it are
/// transient: a start of the node empties it ([`clear_snapshot_dir`]).
pub fn snapshot_dir(store_path: &Path) -> PathBuf {
    store_path.join("snapshots")
}

/// Removes what a previous run left in the snapshot directory (generated files and
/// received ones not installed: Raft asks for a new snapshot if it still needs one) and
/// creates it.
pub fn clear_snapshot_dir(store_path: &Path) -> std::io::Result<()> {
    let dir = snapshot_dir(store_path);
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    std::fs::create_dir_all(&dir)
}

/// Writes the snapshot of `store`'s shard as of `snap` into the snapshot directory.
/// `term` is the term of the entry at the applied index in `snap`. Blocking: runs on a
/// thread of its own, never on an arbiter or the apply worker.
pub fn generate(
    store: &MvccStore,
    snap: &fjall::Snapshot,
    term: u64,
) -> Result<GeneratedSnapshot, SnapshotError> {
    let storage = store.storage();
    let state = store.apply_state_at(snap)?;
    let shard = store.shard();
    let conf = records::load_conf_state_at(snap, storage, shard)?.ok_or_else(|| {
        SnapshotError::Unavailable { reason: format!("shard {shard} has no conf state") }
    })?;
    let meta = SnapshotMeta {
        shard: shard.0,
        index: state.applied_index,
        term,
        conf_state: StoredConfState::from(&conf),
        range_start: store.key_range().start.clone(),
        range_end: store.key_range().end.clone(),
    };
    let dir = snapshot_dir(storage.path());
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(format!("gen-{}-{}-{}.snap", shard.0, meta.index, term));
    let partial = path.with_extension("part");
    let mut writer = SnapshotWriter::create(&partial, &meta)?;
    for_each_record(store, snap, |space, key, value| writer.record(space, key, value))?;
    let bytes = writer.finish()?;
    // Renamed only once complete and durable, so a file named `.snap` is always whole.
    std::fs::rename(&partial, &path)?;
    Ok(GeneratedSnapshot { path, meta, bytes })
}
