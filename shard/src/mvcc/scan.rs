//! Reading versions at a revision from a fjall snapshot.
//!
//! A forward scan of `mvcc` meets each key's versions newest first, so the version visible at
//! revision R is the first entry of the key with a revision <= R. Entries of a key before it
//! (newer than R) and after it (older history) are skipped; when a key has many of them the
//! scan re-seeks past them instead of stepping through, so a range over keys with long
//! histories costs a seek per key, not a step per version.

use crate::error::StorageError;
use crate::mvcc::codec::{
    self, encode_key, escape_bound, inverted_revision, is_tombstone, last_version_key,
    split_version_key,
};
use crate::mvcc::shard_range::KeySpan;
use fjall::{Iter, Keyspace, Readable, Slice, Snapshot};
use std::ops::Bound;

/// Consecutive skipped entries of one key after which the scan re-seeks: stepping is cheaper
/// than a seek for a few entries, a seek is cheaper for many.
const SKIPS_BEFORE_RESEEK: usize = 8;

/// The version of a key visible at the read revision, not yet decoded.
#[derive(Clone, Debug)]
pub(crate) struct StoredVersion {
    /// The whole `mvcc` key (`encoded key ‖ !revision`), as fjall returned it: keeping the
    /// reference-counted slice saves a copy per key on every scan (counts included).
    pub version_key: Slice,
    /// The revision of this version (its mod revision).
    pub mod_revision: i64,
    /// The live version record (never a tombstone).
    pub record: Slice,
}

impl StoredVersion {
    /// The order-preserving encoding of the user key.
    pub(crate) fn encoded_key(&self) -> &[u8] {
        &self.version_key[..self.version_key.len() - codec::REVISION_BYTES]
    }

    /// Decodes the user key.
    pub(crate) fn user_key(&self) -> Result<Vec<u8>, StorageError> {
        codec::decode_key(self.encoded_key())
    }
}

/// Returns the version of `user_key` visible at `revision`, if it is live: one bounded seek
/// to `key ‖ !revision`, never a scan.
pub(crate) fn get_at(
    snap: &Snapshot,
    mvcc: &Keyspace,
    user_key: &[u8],
    revision: i64,
) -> Result<Option<StoredVersion>, StorageError> {
    let encoded = encode_key(user_key);
    let mut from = encoded.clone();
    from.extend_from_slice(&inverted_revision(revision));
    let to = last_version_key(&encoded);
    let Some(guard) = snap.range(mvcc, from..=to).next() else {
        return Ok(None);
    };
    let (key, record) = guard.into_inner()?;
    let (_, mod_revision) = split_version_key(&key)?;
    if is_tombstone(&record)? {
        return Ok(None);
    }
    Ok(Some(StoredVersion { version_key: key, mod_revision, record }))
}

/// Live versions visible at a revision over a span of keys, in key order.
pub(crate) struct VersionScan {
    snap: Snapshot,
    mvcc: Keyspace,
    revision: i64,
    upper: Bound<Vec<u8>>,
    iter: Option<Iter>,
    /// Encoded key whose entries are being read (a reused buffer: no allocation per key).
    current: Vec<u8>,
    /// Whether `current` holds a key yet.
    has_current: bool,
    /// Whether `current` already had its visible version decided.
    decided: bool,
    /// Entries of `current` skipped in a row.
    skipped: usize,
}

impl VersionScan {
    /// A scan of `span` at `revision`.
    pub(crate) fn new(snap: &Snapshot, mvcc: &Keyspace, span: &KeySpan, revision: i64) -> Self {
        let (lower, upper) = match span {
            KeySpan::Empty => (None, Bound::Unbounded),
            KeySpan::Single(key) => {
                let encoded = encode_key(key);
                let mut from = encoded.clone();
                from.extend_from_slice(&inverted_revision(revision));
                (Some(Bound::Included(from)), Bound::Included(last_version_key(&encoded)))
            }
            KeySpan::Range { start, end } => {
                let upper =
                    end.as_deref().map_or(Bound::Unbounded, |e| Bound::Excluded(escape_bound(e)));
                (Some(Bound::Included(encode_key(start))), upper)
            }
        };
        let mut scan = VersionScan {
            snap: snap.clone(),
            mvcc: mvcc.clone(),
            revision,
            upper,
            iter: None,
            current: Vec::new(),
            has_current: false,
            decided: false,
            skipped: 0,
        };
        if let Some(lower) = lower {
            scan.seek(lower);
        }
        scan
    }

    fn seek(&mut self, lower: Bound<Vec<u8>>) {
        let empty = match (&lower, &self.upper) {
            (Bound::Included(l) | Bound::Excluded(l), Bound::Excluded(u)) => l >= u,
            (Bound::Included(l), Bound::Included(u)) => l > u,
            (Bound::Excluded(l), Bound::Included(u)) => l >= u,
            _ => false,
        };
        // An inverted range is empty; fjall is never asked for one.
        self.iter = (!empty).then(|| self.snap.range(&self.mvcc, (lower, self.upper.clone())));
    }

    /// The next live key visible at the scan's revision, or `None` at the end.
    pub(crate) fn next_live(&mut self) -> Result<Option<StoredVersion>, StorageError> {
        loop {
            let Some(guard) = self.iter.as_mut().and_then(Iterator::next) else {
                return Ok(None);
            };
            let (key, record) = guard.into_inner()?;
            let (encoded, mod_revision) = split_version_key(&key)?;
            if !self.has_current || self.current != encoded {
                self.current.clear();
                self.current.extend_from_slice(encoded);
                self.has_current = true;
                self.decided = false;
                self.skipped = 0;
            }
            if self.decided || mod_revision > self.revision {
                self.skip_entry();
                continue;
            }
            // First entry of the key at or below the read revision: the visible version.
            self.decided = true;
            self.skipped = 0;
            if is_tombstone(&record)? {
                continue;
            }
            return Ok(Some(StoredVersion { version_key: key, mod_revision, record }));
        }
    }

    fn skip_entry(&mut self) {
        self.skipped += 1;
        if self.skipped < SKIPS_BEFORE_RESEEK {
            return;
        }
        self.skipped = 0;
        if !self.has_current {
            return;
        }
        let current = self.current.as_slice();
        let lower = if self.decided {
            Bound::Excluded(last_version_key(current))
        } else {
            let mut from = current.to_vec();
            from.extend_from_slice(&inverted_revision(self.revision));
            Bound::Included(from)
        };
        self.seek(lower);
    }
}
