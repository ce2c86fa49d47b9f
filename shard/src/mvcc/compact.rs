//! Physical compaction: removing history below a shard's compacted revision in bounded
//! steps, run by the compactor actor off the apply path.
//!
//! etcd semantics (`keyIndex.compact`, `server/mvcc/key_index.go`): for each key, the newest
//! version at or below the compacted revision C stays unless it is a tombstone; everything
//! older goes. Change-log records below C go too (those at C stay: a watch may start at C).
//!
//! The change log drives the work: every version has a record at its revision, so the
//! records at or below C name every key that may have history to drop. A kept version whose
//! record was dropped by an earlier compaction is found again through the newer record that
//! makes it obsolete. Each step reads at most [`COMPACTION_SCAN_RECORDS_MAX`] records and
//! removes at most [`COMPACTION_BATCH_VERSIONS_MAX`] versions in one batch, together with a
//! cursor (the revision below which every record of the shard is done) in `raft_state`
//! under `shard_id ‖ b'k'` ([`crate::storage::records::StateTag`]). A step after a crash
//! resumes from the cursor; redoing part of a step is harmless because each step only
//! removes what is unreachable.

use crate::error::StorageError;
use crate::limits::{COMPACTION_BATCH_VERSIONS_MAX, COMPACTION_SCAN_RECORDS_MAX};
use crate::mvcc::apply_state::{compact_cursor_key, decode_cursor, encode_cursor};
use crate::mvcc::codec::{
    change_prefix, decode_change, decode_key, is_tombstone, last_version_key, split_change_key,
    version_key_encoded,
};
use crate::mvcc::store::MvccStore;
use fjall::{OwnedWriteBatch, Readable, Snapshot};
use std::collections::HashSet;
use std::ops::Bound;

/// How a key's compaction ended.
enum KeyOutcome {
    /// Everything removable is in the batch.
    Done,
    /// The step's version budget ran out first.
    OutOfBudget,
}

/// What one compaction step did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CompactProgress {
    /// No history below the compacted revision is left.
    pub finished: bool,
    /// Versions this step removed.
    pub versions_removed: usize,
}

impl MvccStore {
    /// Removes history below `compact_revision` in one bounded batch of at most
    /// [`COMPACTION_BATCH_VERSIONS_MAX`] versions; `Ok(true)` when no history below it is
    /// left. See [`MvccStore::compact_step_with`].
    pub fn compact_step(&self, compact_revision: i64) -> Result<bool, StorageError> {
        Ok(self.compact_step_with(compact_revision, COMPACTION_BATCH_VERSIONS_MAX)?.finished)
    }

    /// Removes history below `compact_revision` in one batch (one fjall write) of at most
    /// `versions_max` versions. Safe to call repeatedly and after a crash. The revision is
    /// capped at the persisted compacted revision, so history a read may still ask for is
    /// never removed. One compactor per shard: two concurrent callers would repeat work.
    pub fn compact_step_with(
        &self,
        compact_revision: i64,
        versions_max: usize,
    ) -> Result<CompactProgress, StorageError> {
        let snap = self.storage.db.snapshot();
        let target = compact_revision.min(self.apply_state_at(&snap)?.compact_revision);
        let cursor = match snap.get(&self.storage.raft_state, compact_cursor_key(self.shard))? {
            Some(bytes) => decode_cursor(&bytes)?,
            None => 0,
        };
        if target <= 0 || cursor > target {
            return Ok(CompactProgress { finished: true, versions_removed: 0 });
        }
        let upper = match target.checked_add(1) {
            Some(next) => Bound::Excluded(change_prefix(next).to_vec()),
            None => Bound::Unbounded,
        };
        let records = snap
            .range(&self.storage.changes, (Bound::Included(change_prefix(cursor).to_vec()), upper));
        let mut batch = self.storage.db.batch();
        let versions_max = versions_max.max(1);
        let mut versions_left = versions_max;
        let mut compacted_keys = HashSet::new();
        let mut reached = cursor;
        let mut finished = true;
        for (read, guard) in records.enumerate() {
            if read == COMPACTION_SCAN_RECORDS_MAX {
                finished = false;
                break;
            }
            let (key, record) = guard.into_inner()?;
            let (revision, encoded) = split_change_key(&key)?;
            decode_change(&record)?;
            reached = revision;
            if !self.range.contains(&decode_key(encoded)?) {
                continue;
            }
            if !compacted_keys.contains(encoded) {
                match self.compact_key(&snap, &mut batch, encoded, target, &mut versions_left)? {
                    KeyOutcome::Done => compacted_keys.insert(encoded.to_vec()),
                    KeyOutcome::OutOfBudget => {
                        finished = false;
                        break;
                    }
                };
            }
            if revision < target {
                batch.remove(&self.storage.changes, key);
            }
        }
        // Unfinished: resume at the revision of the last record read; the records of this
        // shard before it are gone and the others are skipped again cheaply. Finished: the
        // records at `target` stay and the next compaction starts with them.
        let next_cursor = if finished { target } else { reached };
        batch.insert(
            &self.storage.raft_state,
            compact_cursor_key(self.shard),
            encode_cursor(next_cursor),
        );
        batch.commit()?;
        Ok(CompactProgress { finished, versions_removed: versions_max - versions_left })
    }

    /// Sets the compaction cursor back to the start, so the next step rescans the shard's
    /// change log up to the compacted revision (after a step that overlapped a snapshot
    /// install, whose cursor may not describe the installed data).
    pub fn reset_compaction_cursor(&self) -> Result<(), StorageError> {
        let mut batch = self.storage.db.batch();
        batch.insert(&self.storage.raft_state, compact_cursor_key(self.shard), encode_cursor(0));
        batch.commit()?;
        Ok(())
    }

    /// Puts into `batch` the removal of every version of the key `encoded` older than its
    /// newest version at or below `target`, and of that version too when it is a tombstone.
    fn compact_key(
        &self,
        snap: &Snapshot,
        batch: &mut OwnedWriteBatch,
        encoded: &[u8],
        target: i64,
        versions_left: &mut usize,
    ) -> Result<KeyOutcome, StorageError> {
        let from = version_key_encoded(encoded, target);
        let mut versions = snap.range(&self.storage.mvcc, from..=last_version_key(encoded));
        let Some(newest) = versions.next() else {
            return Ok(KeyOutcome::Done);
        };
        let (newest_key, newest_record) = newest.into_inner()?;
        for older in versions {
            if *versions_left == 0 {
                return Ok(KeyOutcome::OutOfBudget);
            }
            batch.remove(&self.storage.mvcc, older.key()?);
            *versions_left -= 1;
        }
        if is_tombstone(&newest_record)? {
            // The tombstone goes only in a batch that also holds the last of the older
            // versions, so no read ever sees an older version come back.
            if *versions_left == 0 {
                return Ok(KeyOutcome::OutOfBudget);
            }
            batch.remove(&self.storage.mvcc, newest_key);
            *versions_left -= 1;
        }
        Ok(KeyOutcome::Done)
    }
}
