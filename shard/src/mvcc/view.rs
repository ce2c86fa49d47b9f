//! A read view of one shard: a fjall snapshot clipped to the shard's range, under two
//! in-memory layers that apply has not committed yet:
//! - the history of the earlier entries of the same apply batch (all committed entries of one
//!   Raft Ready go into one fjall batch, decision D1), with their revisions;
//! - the pending writes of the command being applied, so that reads inside a Txn see the
//!   Txn's own earlier writes (etcd's `storeTxnWrite.Range`).
//!
//! Both layers live only for one apply batch; nothing per key outlives it.

use crate::error::StorageError;
use crate::mvcc::codec::{decode_live, encode_key, escape_bound};
use crate::mvcc::scan::{StoredVersion, VersionScan, get_at};
use crate::mvcc::shard_range::{KeySpan, ShardRange};
use atoll_proto::KeyValue;
use fjall::{Keyspace, Snapshot};
use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::collections::btree_map;

/// Writes of the command being applied, by encoded key: `Some` is the key's new version,
/// `None` a delete. Each key appears once, so a revision holds at most one version per key.
pub(crate) type Overlay = BTreeMap<Vec<u8>, Option<KeyValue>>;

/// Versions written by earlier entries of the apply batch: encoded key → revision → version
/// (`None` a tombstone).
pub(crate) type History = BTreeMap<Vec<u8>, Versions>;

/// One key's versions in [`History`]: revision → version (`None` a tombstone).
pub(crate) type Versions = BTreeMap<i64, Option<KeyValue>>;

/// A key visible in a view.
pub(crate) enum Visible<'a> {
    /// A version read from storage, not decoded yet.
    Stored(StoredVersion),
    /// A version held in memory by apply.
    Pending(&'a KeyValue),
}

impl Visible<'_> {
    /// The key's mod revision, known without decoding.
    pub(crate) fn mod_revision(&self) -> i64 {
        match self {
            Visible::Stored(v) => v.mod_revision,
            Visible::Pending(kv) => kv.mod_revision,
        }
    }

    /// Decodes the full key-value pair; `with_value == false` leaves the value empty.
    pub(crate) fn to_key_value(&self, with_value: bool) -> Result<KeyValue, StorageError> {
        match self {
            Visible::Pending(kv) => {
                let mut kv = (*kv).clone();
                if !with_value {
                    kv.value.clear();
                }
                Ok(kv)
            }
            Visible::Stored(v) => {
                let live = decode_live(&v.record, with_value)?;
                Ok(KeyValue {
                    key: v.user_key()?,
                    create_revision: live.create_revision,
                    mod_revision: v.mod_revision,
                    version: live.version,
                    value: live.value,
                    lease: live.lease,
                })
            }
        }
    }
}

/// One shard's keys as of a snapshot plus apply's in-memory layers.
pub(crate) struct View<'a> {
    /// The snapshot read.
    pub snap: &'a Snapshot,
    /// The `mvcc` keyspace.
    pub mvcc: &'a Keyspace,
    /// The shard's range; keys outside it are invisible.
    pub shard: &'a ShardRange,
    /// Earlier entries of the apply batch.
    pub history: Option<&'a History>,
    /// Writes of the command being applied; seen only by reads at the newest revision.
    pub pending: Option<&'a Overlay>,
}

impl<'a> View<'a> {
    /// The live version of `key` at `revision`; the pending writes count when `with_pending`.
    pub(crate) fn get(
        &self,
        key: &[u8],
        revision: i64,
        with_pending: bool,
    ) -> Result<Option<KeyValue>, StorageError> {
        if !self.shard.contains(key) {
            return Ok(None);
        }
        let encoded = encode_key(key);
        if let Some(pending) = self.pending.filter(|_| with_pending).and_then(|p| p.get(&encoded)) {
            return Ok(pending.clone());
        }
        if let Some(versions) = self.history.and_then(|h| h.get(&encoded))
            && let Some((_, version)) = versions.range(..=revision).next_back()
        {
            return Ok(version.clone());
        }
        get_at(self.snap, self.mvcc, key, revision)?
            .map(|v| Visible::Stored(v).to_key_value(true))
            .transpose()
    }

    /// The live keys of `[key, range_end)` (etcd conventions) at `revision`, in key order.
    pub(crate) fn scan(
        &self,
        key: &[u8],
        range_end: &[u8],
        revision: i64,
        with_pending: bool,
    ) -> MergedScan<'a> {
        let span = self.shard.span(key, range_end);
        let memory = MemoryLayer {
            pending: self.pending.filter(|_| with_pending).map(|p| SpanIter::new(p, &span)),
            history: self.history.map(|h| SpanIter::new(h, &span)),
            revision,
            pending_peek: None,
            history_peek: None,
        };
        MergedScan {
            stored: VersionScan::new(self.snap, self.mvcc, &span, revision),
            stored_peek: None,
            memory,
            memory_peek: None,
        }
    }
}

/// Entries of an in-memory map inside a span, in key order.
struct SpanIter<'a, V> {
    iter: Option<btree_map::Range<'a, Vec<u8>, V>>,
    /// Exclusive upper bound (an escaped key), `None` for unbounded.
    upper: Option<Vec<u8>>,
    /// For a single-key span, the only key wanted.
    single: Option<Vec<u8>>,
}

impl<'a, V> SpanIter<'a, V> {
    fn new(map: &'a BTreeMap<Vec<u8>, V>, span: &KeySpan) -> Self {
        match span {
            KeySpan::Empty => SpanIter { iter: None, upper: None, single: None },
            KeySpan::Single(k) => {
                let encoded = encode_key(k);
                SpanIter {
                    iter: Some(map.range(encoded.clone()..)),
                    upper: None,
                    single: Some(encoded),
                }
            }
            KeySpan::Range { start, end } => SpanIter {
                iter: Some(map.range(encode_key(start)..)),
                upper: end.as_deref().map(escape_bound),
                single: None,
            },
        }
    }

    fn next(&mut self) -> Option<(&'a Vec<u8>, &'a V)> {
        let (key, value) = self.iter.as_mut()?.next()?;
        let past_single = self.single.as_ref().is_some_and(|s| s != key);
        let past_upper = self.upper.as_ref().is_some_and(|u| key >= u);
        if past_single || past_upper {
            self.iter = None;
            return None;
        }
        Some((key, value))
    }
}

/// A key decided by the in-memory layers: `None` is deleted there.
type Decided<'a> = (&'a Vec<u8>, Option<&'a KeyValue>);

/// The pending writes over the batch history: per key, the pending write if any, else the
/// newest history version at or below the revision, else nothing (storage decides).
struct MemoryLayer<'a> {
    pending: Option<SpanIter<'a, Option<KeyValue>>>,
    history: Option<SpanIter<'a, Versions>>,
    revision: i64,
    pending_peek: Option<(&'a Vec<u8>, &'a Option<KeyValue>)>,
    history_peek: Option<(&'a Vec<u8>, &'a Versions)>,
}

impl<'a> MemoryLayer<'a> {
    fn next(&mut self) -> Option<Decided<'a>> {
        loop {
            if self.pending_peek.is_none() {
                self.pending_peek = self.pending.as_mut().and_then(SpanIter::next);
            }
            if self.history_peek.is_none() {
                self.history_peek = self.history.as_mut().and_then(SpanIter::next);
            }
            let order = match (&self.pending_peek, &self.history_peek) {
                (None, None) => return None,
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (Some((p, _)), Some((h, _))) => p.cmp(h),
            };
            if order != Ordering::Greater {
                if order == Ordering::Equal {
                    self.history_peek = None;
                }
                return self.pending_peek.take().map(|(k, v)| (k, v.as_ref()));
            }
            let (key, versions) = self.history_peek.take()?;
            if let Some((_, version)) = versions.range(..=self.revision).next_back() {
                return Some((key, version.as_ref()));
            }
        }
    }
}

/// Storage versions merged with the in-memory layers; memory wins on equal keys.
pub(crate) struct MergedScan<'a> {
    stored: VersionScan,
    stored_peek: Option<StoredVersion>,
    memory: MemoryLayer<'a>,
    memory_peek: Option<Decided<'a>>,
}

impl<'a> MergedScan<'a> {
    /// The next live key, or `None` at the end.
    pub(crate) fn next_visible(&mut self) -> Result<Option<Visible<'a>>, StorageError> {
        loop {
            if self.stored_peek.is_none() {
                self.stored_peek = self.stored.next_live()?;
            }
            if self.memory_peek.is_none() {
                self.memory_peek = self.memory.next();
            }
            let order = match (&self.stored_peek, &self.memory_peek) {
                (None, None) => return Ok(None),
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (Some(s), Some((k, _))) => s.encoded_key().cmp(k.as_slice()),
            };
            if order == Ordering::Less {
                return Ok(self.stored_peek.take().map(Visible::Stored));
            }
            if order == Ordering::Equal {
                // A newer in-memory version shadows the stored one.
                self.stored_peek = None;
            }
            if let Some((_, Some(kv))) = self.memory_peek.take() {
                return Ok(Some(Visible::Pending(kv)));
            }
        }
    }

    /// Decodes every remaining live key; values only `with_value`.
    pub(crate) fn collect_all(mut self, with_value: bool) -> Result<Vec<KeyValue>, StorageError> {
        let mut out = Vec::new();
        while let Some(v) = self.next_visible()? {
            out.push(v.to_key_value(with_value)?);
        }
        Ok(out)
    }
}
