//! The hash of a shard's MVCC state at a revision (etcd's `HashKV`, per shard), to compare
//! replicas: two replicas that applied the same log report the same hash at the same
//! revision.
//!
//! What is hashed must not depend on how far the local physical compaction got, which differs
//! between replicas: every version above the compacted revision up to the asked one, plus,
//! per key, the newest version at or below the compacted revision when it is live (the one
//! compaction keeps). Older versions and tombstones at or below it are skipped whether or not
//! they are still on disk.
//!
//! The same scan runs whole for a HashKV request and in bounded steps, each on a fresh
//! snapshot, for the hash the compactor keeps at the compacted revision
//! (`compact_hash.rs`). Steps may see different snapshots because what they read (versions
//! at or below the hashed revision) changes only by compaction, which the compactor does not
//! run while it hashes, and new writes land above it.

use crate::error::{ShardError, StorageError};
use crate::mvcc::apply_state::{compact_hash_key, decode_compact_hash};
use crate::mvcc::codec::{is_tombstone, split_version_key};
use crate::mvcc::store::MvccStore;
use crate::mvcc::write_txn::read_revision;
use fjall::{Readable, Snapshot};
use std::ops::Bound;

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

/// Where a hash scan stands: the crc so far and the version record to read next.
#[derive(Clone, Debug, Default)]
pub(crate) struct HashProgress {
    hasher: crc32fast::Hasher,
    /// The encoded key whose versions are being read.
    current: Vec<u8>,
    /// Whether `current`'s newest version at or below the compacted revision was seen.
    kept_at_compaction: bool,
    /// The `mvcc` key to read next (inclusive); `None` before the first step.
    resume_at: Option<Vec<u8>>,
}

impl HashProgress {
    /// The hash of everything read so far.
    pub(crate) fn hash(&self) -> u32 {
        self.hasher.clone().finalize()
    }
}

impl MvccStore {
    /// Hashes the shard as of `snap` at `revision` (`<= 0`: the current revision). A
    /// revision above the current one is `FutureRevision`, below the compacted one
    /// `Compacted`, as for a Range. At exactly the compacted revision, the hash the
    /// compactor kept for it answers when there is one, without a scan.
    pub fn hash_kv(&self, snap: &Snapshot, revision: i64) -> Result<StateHash, ShardError> {
        let state = self.apply_state_at(snap)?;
        let (compacted, applied_index) = (state.compact_revision, state.applied_index);
        let revision = read_revision(revision, state.revision, compacted)?;
        let kept = snap
            .get(&self.storage.raft_state, compact_hash_key(self.shard))
            .map_err(StorageError::from)?;
        let kept = match kept {
            Some(bytes) => Some(decode_compact_hash(&bytes)?),
            None => None,
        };
        let hash = match kept {
            Some((at, hash)) if at == revision && revision == compacted => hash,
            _ => {
                let mut progress = HashProgress::default();
                self.hash_versions(snap, compacted, revision, &mut progress, usize::MAX)?;
                progress.hash()
            }
        };
        Ok(StateHash { hash, revision, compact_revision: compacted, applied_index })
    }

    /// Feeds the versions of the shard that a hash at `revision` with compacted revision
    /// `compacted` covers into `progress`, reading at most `versions_max` records from
    /// where it stopped; `Ok(true)` once the whole shard is read.
    pub(crate) fn hash_versions(
        &self,
        snap: &Snapshot,
        compacted: i64,
        revision: i64,
        progress: &mut HashProgress,
        versions_max: usize,
    ) -> Result<bool, StorageError> {
        let Some((start, upper)) = self.range.encoded_bounds() else {
            // The shard owns no key.
            return Ok(true);
        };
        let lower = progress.resume_at.take().map_or(start, Bound::Included);
        let iter = snap.range(&self.storage.mvcc, (lower, upper));
        for (read, guard) in iter.enumerate() {
            let (key, record) = guard.into_inner()?;
            if read == versions_max {
                progress.resume_at = Some(key.to_vec());
                return Ok(false);
            }
            let (encoded, version_revision) = split_version_key(&key)?;
            if encoded != progress.current.as_slice() {
                progress.current.clear();
                progress.current.extend_from_slice(encoded);
                progress.kept_at_compaction = false;
            }
            if version_revision > revision {
                continue;
            }
            if version_revision <= compacted {
                // Only the newest version at or below the compacted revision survives it.
                if progress.kept_at_compaction {
                    continue;
                }
                progress.kept_at_compaction = true;
                if is_tombstone(&record)? {
                    continue;
                }
            }
            progress.hasher.update(&key);
            progress.hasher.update(&record);
        }
        Ok(true)
    }
}
