//! The hash the compactor takes at the compacted revision, as etcd computes `HashKV` at the
//! compact revision during its background compaction (3.5.5+, for `CompactHashCheck`). It
//! is taken in bounded steps after the deletion for that revision finished and is kept in
//! `raft_state` under `shard_id ‖ b'H'`; `hash_kv` answers from it at that revision. It is
//! deterministic: every replica that compacted at the same revision keeps the same hash.

use crate::error::StorageError;
use crate::mvcc::apply_state::{compact_hash_key, decode_compact_hash, encode_compact_hash};
use crate::mvcc::hash::HashProgress;
use crate::mvcc::store::MvccStore;

/// A hash at a compacted revision being taken.
#[derive(Clone, Debug, Default)]
pub struct CompactionHash {
    progress: HashProgress,
}

impl MvccStore {
    /// Reads at most `versions_max` version records towards the hash at compacted revision
    /// `revision`, from a fresh snapshot. Once the whole shard is read, keeps the hash
    /// (one small batch) and returns it. Call only while no compaction step runs for this
    /// shard, and only once the deletion for `revision` finished or not at all (the hash
    /// does not depend on it).
    pub fn compaction_hash_step(
        &self,
        revision: i64,
        hash: &mut CompactionHash,
        versions_max: usize,
    ) -> Result<Option<u32>, StorageError> {
        let snap = self.storage.db.snapshot();
        if !self.hash_versions(&snap, revision, revision, &mut hash.progress, versions_max)? {
            return Ok(None);
        }
        let value = hash.progress.hash();
        let mut batch = self.storage.db.batch();
        batch.insert(
            &self.storage.raft_state,
            compact_hash_key(self.shard),
            encode_compact_hash(revision, value),
        );
        batch.commit()?;
        Ok(Some(value))
    }

    /// The kept compaction hash: (compacted revision, hash), if one was taken.
    pub fn compaction_hash(&self) -> Result<Option<(i64, u32)>, StorageError> {
        match self.storage.raft_state.get(compact_hash_key(self.shard))? {
            Some(bytes) => Ok(Some(decode_compact_hash(&bytes)?)),
            None => Ok(None),
        }
    }
}
