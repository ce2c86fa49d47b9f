//! Revision-mode auto-compaction's target (decision D17): the revision below which the
//! newest `N` revisions of a shard lie. Revisions are sparse (clock microseconds, DESIGN §4),
//! so `head - N` would keep almost nothing; instead the change log is read backwards from
//! the head and the shard's distinct revisions counted. Compacting at the (N+1)-th newest
//! keeps N revisions above it readable, as etcd's `head - N` does with dense revisions.
//!
//! The change log is shared by every shard of the node, so the read is bounded per step
//! ([`RetentionScan`] resumes it) and other shards' records only cost their skip.

use crate::error::StorageError;
use crate::mvcc::codec::{decode_key, split_change_key};
use crate::mvcc::store::MvccStore;
use fjall::Readable;
use std::ops::Bound;

/// A backward count of a shard's revisions in the change log.
#[derive(Clone, Debug, Default)]
pub struct RetentionScan {
    /// Resume below this change-log key (exclusive); `None` before the first step.
    below: Option<Vec<u8>>,
    /// Distinct revisions of the shard counted so far.
    counted: u64,
    /// The last revision counted.
    last: i64,
}

/// Where a retention scan stands after a step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetentionStep {
    /// The revision to compact at: exactly the asked number of revisions lie above it.
    Found(i64),
    /// The shard holds no more revisions than are to be kept.
    TooFew,
    /// Not done; call again.
    More,
}

impl MvccStore {
    /// Continues `scan` for the revision that keeps the newest `keep` revisions of the shard,
    /// reading at most `records_max` change-log records.
    pub fn retention_step(
        &self,
        keep: u64,
        scan: &mut RetentionScan,
        records_max: usize,
    ) -> Result<RetentionStep, StorageError> {
        let snap = self.storage.db.snapshot();
        let upper = match scan.below.take() {
            Some(key) => Bound::Excluded(key),
            None => Bound::Unbounded,
        };
        let records = snap.range(&self.storage.changes, (Bound::Unbounded, upper)).rev();
        for (read, guard) in records.enumerate() {
            let key = guard.key()?;
            if read == records_max {
                // This record is not read yet: resume at it, inclusive.
                let mut next = key.to_vec();
                next.push(0);
                scan.below = Some(next);
                return Ok(RetentionStep::More);
            }
            let (revision, encoded) = split_change_key(&key)?;
            if revision == scan.last || !self.range.contains(&decode_key(encoded)?) {
                continue;
            }
            if scan.counted == keep {
                return Ok(RetentionStep::Found(revision));
            }
            scan.counted += 1;
            scan.last = revision;
        }
        Ok(RetentionStep::TooFew)
    }
}
