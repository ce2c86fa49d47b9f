//! Reading the change log for watches: the events of a key range between two revisions, in
//! revision order (keys in order within a revision, as apply publishes them), and the
//! previous key-values of events.
//!
//! The change log is shared by every shard on the node, so a read skips other shards' keys
//! and stops after a bounded number of records; the caller resumes from the returned cursor.

use crate::error::StorageError;
use crate::limits::{WATCH_CATCH_UP_SCAN_RECORDS_MAX, WATCH_STEP_BYTES_MAX, WATCH_STEP_EVENTS_MAX};
use crate::mvcc::codec::{
    ChangeKind, change_prefix, decode_change, decode_key, decode_live, encode_key,
    split_change_key, version_key_encoded,
};
use crate::mvcc::scan::get_at;
use crate::mvcc::store::MvccStore;
use crate::mvcc::view::Visible;
use crate::watch::WatchSpec;
use crate::watch::watch_hub::event_bytes;
use atoll_proto::{Event, EventType, KeyValue};
use fjall::{Readable, Snapshot};
use std::ops::Bound;

/// The result of one bounded change-log read.
#[derive(Debug)]
pub(crate) enum ChangeChunk {
    /// The first revision wanted was compacted away.
    Compacted {
        /// The shard's compacted revision.
        compact_revision: i64,
    },
    /// Events found, and where to continue (`None`: the range is done).
    Events {
        /// The events in order.
        events: Vec<Event>,
        /// The next change-log key to read.
        next: Option<Vec<u8>>,
    },
}

/// The change-log key where `revision` starts.
pub(crate) fn change_cursor(revision: i64) -> Vec<u8> {
    change_prefix(revision).to_vec()
}

/// The change-log key right after the change `event` came from.
pub(crate) fn cursor_after(event: &Event) -> Vec<u8> {
    let mut key = change_cursor(event.kv.mod_revision);
    key.extend_from_slice(&encode_key(&event.kv.key));
    // The smallest key above `key`: encoded keys are never a prefix of one another.
    key.push(0);
    key
}

fn revision_of_cursor(cursor: &[u8]) -> i64 {
    let mut word = [0u8; 8];
    if let Some(bytes) = cursor.get(..8) {
        word.copy_from_slice(bytes);
    }
    i64::try_from(u64::from_be_bytes(word)).unwrap_or(i64::MAX)
}

impl MvccStore {
    /// Reads the events `spec` wants from change-log key `from` up to revision `upto`
    /// (inclusive), with previous key-values when the spec asks for them: about
    /// [`WATCH_STEP_EVENTS_MAX`] events, [`WATCH_STEP_BYTES_MAX`] bytes and
    /// [`WATCH_CATCH_UP_SCAN_RECORDS_MAX`] records scanned, never ending inside the revision
    /// of an event it returns. `Compacted` when the shard's
    /// compacted revision is above the first revision wanted.
    pub(crate) fn read_changes(
        &self,
        spec: &WatchSpec,
        from: &[u8],
        upto: i64,
    ) -> Result<ChangeChunk, StorageError> {
        if revision_of_cursor(from) > upto {
            // Nothing to read (a watcher that rejoined with nothing published since).
            return Ok(ChangeChunk::Events { events: Vec::new(), next: None });
        }
        let snap = self.storage.db.snapshot();
        let state = self.apply_state_at(&snap)?;
        if revision_of_cursor(from) < state.compact_revision {
            return Ok(ChangeChunk::Compacted { compact_revision: state.compact_revision });
        }
        let upper = match upto.checked_add(1) {
            Some(next) => Bound::Excluded(change_prefix(next).to_vec()),
            None => Bound::Unbounded,
        };
        let records = snap.range(&self.storage.changes, (Bound::Included(from.to_vec()), upper));
        let mut events = Vec::new();
        let mut bytes = 0;
        for (scanned, guard) in records.enumerate() {
            let (key, record) = guard.into_inner()?;
            let (revision, encoded) = split_change_key(&key)?;
            let full = events.len() >= WATCH_STEP_EVENTS_MAX || bytes >= WATCH_STEP_BYTES_MAX;
            // Stop only between revisions once an event is taken: a revision is handed out
            // whole (see `crate::watch`).
            let inside = events.last().is_some_and(|e: &Event| e.kv.mod_revision == revision);
            if (scanned >= WATCH_CATCH_UP_SCAN_RECORDS_MAX || full) && !inside {
                // Resume at this record, which is not read yet.
                self.fill_prev_kvs(&snap, spec, &mut events)?;
                return Ok(ChangeChunk::Events { events, next: Some(key.to_vec()) });
            }
            let user_key = decode_key(encoded)?;
            if !self.range.contains(&user_key) || !spec.matches_key(&user_key) {
                continue;
            }
            let kind = match decode_change(&record)? {
                ChangeKind::Put => EventType::Put,
                ChangeKind::Delete => EventType::Delete,
            };
            if !spec.wants(kind) {
                continue;
            }
            let kv = match kind {
                EventType::Put => self.version_at(&snap, encoded, user_key, revision)?,
                EventType::Delete => {
                    KeyValue { key: user_key, mod_revision: revision, ..Default::default() }
                }
            };
            let event = Event { kind, kv, prev_kv: None };
            bytes += event_bytes(&event);
            events.push(event);
        }
        self.fill_prev_kvs(&snap, spec, &mut events)?;
        Ok(ChangeChunk::Events { events, next: None })
    }

    /// The version a put wrote at `revision`; the change log promises it exists.
    fn version_at(
        &self,
        snap: &Snapshot,
        encoded: &[u8],
        key: Vec<u8>,
        revision: i64,
    ) -> Result<KeyValue, StorageError> {
        let record = snap.get(&self.storage.mvcc, version_key_encoded(encoded, revision))?;
        let record = record.ok_or_else(|| StorageError::BadRecord {
            what: "change record",
            detail: format!("a put at revision {revision} has no version"),
        })?;
        let live = decode_live(&record, true)?;
        Ok(KeyValue {
            key,
            create_revision: live.create_revision,
            mod_revision: revision,
            version: live.version,
            value: live.value,
            lease: live.lease,
        })
    }

    /// Sets each event's previous key-value (the live version at the revision before it)
    /// when `spec` asks for them, as etcd's watch stream does; a version compacted away
    /// leaves it unset, as in etcd.
    pub(crate) fn fill_prev_kvs(
        &self,
        snap: &Snapshot,
        spec: &WatchSpec,
        events: &mut [Event],
    ) -> Result<(), StorageError> {
        if !spec.prev_kv {
            return Ok(());
        }
        for event in events {
            let before = event.kv.mod_revision - 1;
            event.prev_kv = match get_at(snap, &self.storage.mvcc, &event.kv.key, before)? {
                Some(v) => Some(Visible::Stored(v).to_key_value(true)?),
                None => None,
            };
        }
        Ok(())
    }

    /// Fills previous key-values of live events from a fresh snapshot.
    pub(crate) fn fill_prev_kvs_now(
        &self,
        spec: &WatchSpec,
        events: &mut [Event],
    ) -> Result<(), StorageError> {
        let snap = self.storage.db.snapshot();
        self.fill_prev_kvs(&snap, spec, events)
    }
}
