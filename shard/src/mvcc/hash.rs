//! The hash of a shard's MVCC state at a revision (etcd's `HashKV`, per shard), to compare
//! replicas: two replicas that applied the same log report the same hash at the same
//! revision.
//!
//! What is hashed must not depend on how far the local physical compaction got, which differs
//! between replicas: every version above the compacted revision up to the asked one, plus,
//! per key, the newest version at or below the compacted revision when it is live (the one
//! compaction keeps). Older versions and tombstones at or below it are skipped whether or not
//! they are still on disk.

use crate::error::{ShardError, StorageError};
use crate::mvcc::codec::{encode_key, escape_bound, is_tombstone, split_version_key};
use crate::mvcc::shard_range::KeySpan;
use crate::mvcc::store::MvccStore;
use crate::mvcc::write_txn::read_revision;
use fjall::{Readable, Snapshot};

/// A shard's hash at a revision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StateHash {
    /// crc32 (IEEE) of the hashed versions, in key then revision order.
    pub hash: u32,
    /// The revision the hash covers.
    pub revision: i64,
    /// The shard's compacted revision.
    pub compact_revision: i64,
    /// The applied Raft index of the state hashed: replicas agree at equal indexes.
    pub applied_index: u64,
}

impl MvccStore {
    /// Hashes the shard as of `snap` at `revision` (`<= 0`: the current revision). A
    /// revision above the current one is `FutureRevision`, below the compacted one
    /// `Compacted`, as for a Range.
    pub fn hash_kv(&self, snap: &Snapshot, revision: i64) -> Result<StateHash, ShardError> {
        let state = self.apply_state_at(snap)?;
        let (compacted, applied_index) = (state.compact_revision, state.applied_index);
        let revision = read_revision(revision, state.revision, compacted)?;
        let mut hasher = crc32fast::Hasher::new();
        let KeySpan::Range { start, end } = self.range.span(&[0], &[0]) else {
            // The shard owns no key.
            let hash = hasher.finalize();
            return Ok(StateHash { hash, revision, compact_revision: compacted, applied_index });
        };
        let lower = encode_key(&start);
        let iter = match end.as_deref().map(escape_bound) {
            Some(upper) => snap.range(&self.storage.mvcc, lower..upper),
            None => snap.range(&self.storage.mvcc, lower..),
        };
        let mut current: Vec<u8> = Vec::new();
        let mut kept_at_compaction = false;
        for guard in iter {
            let (key, record) = guard.into_inner().map_err(StorageError::from)?;
            let (encoded, version_revision) = split_version_key(&key)?;
            if encoded != current.as_slice() {
                current.clear();
                current.extend_from_slice(encoded);
                kept_at_compaction = false;
            }
            if version_revision > revision {
                continue;
            }
            if version_revision <= compacted {
                // Only the newest version at or below the compacted revision survives it.
                if kept_at_compaction {
                    continue;
                }
                kept_at_compaction = true;
                if is_tombstone(&record)? {
                    continue;
                }
            }
            hasher.update(&key);
            hasher.update(&record);
        }
        let hash = hasher.finalize();
        Ok(StateHash { hash, revision, compact_revision: compacted, applied_index })
    }
}
