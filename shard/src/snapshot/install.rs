//! Install on a follower: the shard's state is replaced by a snapshot file's in ONE fjall
//! batch, which also sets Raft's state (hard state, conf state, truncated state) and drops
//! the shard's log. A batch commits whole or not at all, so a crash leaves the old state or
//! the new one, never a mix; the batch is synced before Raft hears the snapshot is
//! persisted. Nothing is written before the file's checksum was verified: records are read
//! into the batch and the batch is committed only after the trailer matched.
//!
//! The price of one batch is memory: fjall holds a batch whole until it commits, so an
//! install holds the shard's records once (the file itself is streamed). A sequence of
//! bounded batches behind a durable "install in progress" marker would lift that, at the
//! cost of reads that could see a half-installed shard; it is left for shards too big to
//! install this way.

use crate::mvcc::{ApplyState, MvccStore};
use crate::snapshot::shard_records::{RecordSpace, for_each_record, owns};
use crate::snapshot::snapshot_file::{SnapshotError, SnapshotMeta, SnapshotReader};
use crate::storage::TruncatedState;
use crate::storage::records::{self, StateTag, log_key, state_key};
use raft::eraftpb::{Entry, HardState};
use std::collections::HashSet;
use std::path::Path;

/// Raft's state to write with an installed snapshot.
#[derive(Clone, Debug, Default)]
pub struct InstallRaftState {
    /// The hard state after the snapshot (commit at least the snapshot's index).
    pub hard_state: HardState,
    /// Entries after the snapshot's index that arrived in the same Raft Ready.
    pub entries: Vec<Entry>,
}

impl MvccStore {
    /// Replaces this shard's state with the snapshot in `path`, which must be of this shard
    /// and range at `index` and `term`. Returns the new apply state. Watchers are told to
    /// catch up from the change log the snapshot brought (or are cancelled as compacted).
    pub fn install_snapshot(
        &self,
        path: &Path,
        index: u64,
        term: u64,
        raft: &InstallRaftState,
    ) -> Result<ApplyState, SnapshotError> {
        let mut reader = SnapshotReader::open(path)?;
        self.check_meta(path, reader.meta(), index, term)?;
        let storage = self.storage();
        let mut batch = storage.db.batch();
        let mut written: HashSet<(RecordSpace, Vec<u8>)> = HashSet::new();
        let mut state = None;
        let apply_key = state_key(self.shard(), StateTag::Apply);
        while let Some((space, key, value)) = reader.next_record()? {
            // A snapshot writes nothing outside its shard, whatever its bytes say.
            if !owns(self, space, &key)? {
                return Err(SnapshotError::corrupt(path, "a record outside the shard"));
            }
            if space == RecordSpace::RaftState && key == apply_key {
                state = Some(ApplyState::decode(&value)?);
            }
            batch.insert(space.keyspace(self), key.clone(), value);
            written.insert((space, key));
        }
        let meta = reader.finish()?;
        let state = state.ok_or_else(|| SnapshotError::corrupt(path, "no apply state"))?;
        if state.applied_index != index {
            let detail = format!("apply state at index {}, meta at {index}", state.applied_index);
            return Err(SnapshotError::corrupt(path, detail));
        }
        // What the replica had and the snapshot does not: removed in the same batch. Keys
        // the snapshot writes are not removed (a remove and an insert of one key in one
        // batch would have no defined order).
        let snap = storage.db.snapshot();
        for_each_record(self, &snap, |space, key, _| {
            if !written.contains(&(space, key.to_vec())) {
                batch.remove(space.keyspace(self), key.to_vec());
            }
            Ok(())
        })?;
        self.replace_raft_state(&mut batch, &snap, &meta, raft)?;
        batch.commit()?;
        // Durable before Raft learns the snapshot is persisted: the follower then
        // acknowledges the snapshot's index to the leader (Raft §5.1, persist before
        // replying), and the journal is shared, so this also covers every earlier write.
        storage.sync()?;
        // The snapshot may carry another auth store and other members (meta shard).
        self.records_generation.fetch_add(1, std::sync::atomic::Ordering::Release);
        self.watch_hub().publish_replaced(state.revision);
        Ok(state)
    }

    fn check_meta(
        &self,
        path: &Path,
        meta: &SnapshotMeta,
        index: u64,
        term: u64,
    ) -> Result<(), SnapshotError> {
        let range = self.key_range();
        if meta.shard != self.shard().0 || meta.index != index || meta.term != term {
            let detail = format!(
                "it is shard {} at index {} term {}, expected shard {} at index {index} term {term}",
                meta.shard,
                meta.index,
                meta.term,
                self.shard().0
            );
            return Err(SnapshotError::corrupt(path, detail));
        }
        if meta.range_start != range.start || meta.range_end != range.end {
            return Err(SnapshotError::corrupt(path, "its key range differs from this replica's"));
        }
        Ok(())
    }

    /// Puts Raft's side of the install into the batch: the shard's whole log goes, entries
    /// after the snapshot are written, and the hard, conf and truncated states are set.
    fn replace_raft_state(
        &self,
        batch: &mut fjall::OwnedWriteBatch,
        snap: &fjall::Snapshot,
        meta: &SnapshotMeta,
        raft: &InstallRaftState,
    ) -> Result<(), SnapshotError> {
        use fjall::Readable as _;
        let (storage, shard) = (self.storage(), self.shard());
        let log = snap.range(&storage.raft_log, log_key(shard, 0)..=log_key(shard, u64::MAX));
        for guard in log {
            batch.remove(&storage.raft_log, guard.key()?.to_vec());
        }
        for e in &raft.entries {
            let key = log_key(shard, e.index);
            batch.insert(&storage.raft_log, key.to_vec(), records::encode_entry(e)?);
        }
        records::put_hard_state(storage, batch, shard, &raft.hard_state)?;
        records::put_conf_state(storage, batch, shard, &meta.raft_conf_state())?;
        let truncated = TruncatedState { index: meta.index, term: meta.term };
        records::put_state(storage, batch, shard, StateTag::Truncated, &truncated)?;
        Ok(())
    }
}
