//! Directory counts: the number of live keys under each `/`-terminated prefix of a shard,
//! kept on disk and updated by apply, so the exact `count` etcd returns with every Range costs
//! one point read instead of a scan when the range is such a prefix (decision D8).
//!
//! A key `/registry/pods/ns/a` counts under `""` (the whole shard), `/`, `/registry/`,
//! `/registry/pods/` and `/registry/pods/ns/`: every prefix that ends just after a `/`, up
//! to [`COUNTED_DEPTH_MAX`] of them and [`COUNTED_PREFIX_BYTES_MAX`] bytes. That is the shape
//! of the prefixes Kubernetes and most etcd users list (`get --prefix /registry/pods/`);
//! any other range is counted by its scan, as before.
//!
//! The counts live in `raft_state` under `shard_id ‖ b'n' ‖ prefix` (an absent record is
//! zero) and are written in the same batch as the data and the apply state, so they are
//! exactly as durable and as current as the apply state they ride with. Nothing is held in
//! memory. A marker record (`shard_id ‖ b'N'`) says the counts are complete: a fresh store
//! writes it with its first batch; a store written before counts existed is counted once by
//! [`MvccStore::prepare_dir_counts`] at start-up. Reads use the counts only where the marker
//! is present in their snapshot.

use crate::error::StorageError;
use crate::mvcc::codec::decode_key;
use crate::mvcc::scan::VersionScan;
use crate::mvcc::store::MvccStore;
use crate::mvcc::view::History;
use crate::storage::records::{StateTag, state_key};
use atoll_proto::{ShardId, prefix_range_end};
use fjall::{Keyspace, OwnedWriteBatch, Readable, Snapshot};
use std::collections::BTreeMap;

/// Most `/` a counted prefix holds: a key counts under at most this many prefixes plus the
/// whole shard, which bounds the records a create or a delete updates.
pub const COUNTED_DEPTH_MAX: usize = 8;
/// Longest counted prefix, in bytes.
pub const COUNTED_PREFIX_BYTES_MAX: usize = 512;

/// Version byte of a count record and of the marker.
const COUNT_RECORD_V1: u8 = 1;
/// Encoded size of a count record: version, count.
const COUNT_RECORD_BYTES: usize = 1 + 8;

/// Every counted prefix of `user_key`, shortest first, starting with the empty prefix.
pub(crate) fn counted_prefixes(user_key: &[u8]) -> impl Iterator<Item = &[u8]> {
    let slashes = user_key
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == b'/')
        .map(|(at, _)| at + 1)
        .take_while(|end| *end <= COUNTED_PREFIX_BYTES_MAX)
        .take(COUNTED_DEPTH_MAX);
    std::iter::once(0).chain(slashes).map(move |end| &user_key[..end])
}

/// The counted prefix a Range over `[key, range_end)` asks for exactly, if any: a prefix
/// range (`range_end` is the prefix's successor) whose prefix is counted, or every key
/// (`key = range_end = "\0"`, etcdctl's `get "" --prefix`).
pub(crate) fn counted_prefix_of(key: &[u8], range_end: &[u8]) -> Option<Vec<u8>> {
    if key == [0] && range_end == [0] {
        return Some(Vec::new());
    }
    let is_counted = key.last() == Some(&b'/')
        && key.len() <= COUNTED_PREFIX_BYTES_MAX
        && key.iter().filter(|b| **b == b'/').count() <= COUNTED_DEPTH_MAX;
    (is_counted && range_end == prefix_range_end(key).as_slice()).then(|| key.to_vec())
}

fn count_key(shard: ShardId, prefix: &[u8]) -> Vec<u8> {
    let mut key = state_key(shard, StateTag::DirCount).to_vec();
    key.extend_from_slice(prefix);
    key
}

fn ready_key(shard: ShardId) -> [u8; 9] {
    state_key(shard, StateTag::DirCountsReady)
}

fn decode_count(bytes: &[u8]) -> Result<i64, StorageError> {
    match bytes.split_first() {
        Some((&COUNT_RECORD_V1, body)) if bytes.len() == COUNT_RECORD_BYTES => {
            let mut word = [0; 8];
            word.copy_from_slice(body);
            Ok(i64::from_be_bytes(word))
        }
        _ => Err(StorageError::BadRecord {
            what: "directory count",
            detail: format!("{} bytes with version {:?}", bytes.len(), bytes.first()),
        }),
    }
}

fn encode_count(count: i64) -> Vec<u8> {
    let mut out = Vec::with_capacity(COUNT_RECORD_BYTES);
    out.push(COUNT_RECORD_V1);
    out.extend_from_slice(&count.to_be_bytes());
    out
}

/// The number of live keys of `shard` under `prefix` as of `snap`, or `None` when the
/// shard's counts are not complete in that snapshot.
pub(crate) fn load_count(
    snap: &Snapshot,
    raft_state: &Keyspace,
    shard: ShardId,
    prefix: &[u8],
) -> Result<Option<i64>, StorageError> {
    if snap.get(raft_state, ready_key(shard))?.is_none() {
        return Ok(None);
    }
    match snap.get(raft_state, count_key(shard, prefix))? {
        Some(bytes) => decode_count(&bytes).map(Some),
        None => Ok(Some(0)),
    }
}

/// Adds to `batch` the count changes made by the versions of one apply batch.
///
/// Whether a key was live before the batch follows from its first version in the batch: a
/// put of version 1 is a create (the key was absent or deleted), a later version is an update
/// of a live key, and a tombstone is only ever written over a live key. Whether it is live
/// after is its last version.
pub(crate) fn record_changes(
    batch: &mut OwnedWriteBatch,
    snap: &Snapshot,
    raft_state: &Keyspace,
    shard: ShardId,
    history: &History,
    fresh_store: bool,
) -> Result<(), StorageError> {
    let mut deltas: BTreeMap<Vec<u8>, i64> = BTreeMap::new();
    for (encoded, versions) in history {
        let (Some(first), Some(last)) = (versions.values().next(), versions.values().last()) else {
            continue;
        };
        let was_live = first.as_ref().is_none_or(|kv| kv.version > 1);
        let delta = match (was_live, last.is_some()) {
            (false, true) => 1,
            (true, false) => -1,
            _ => continue,
        };
        let user_key = decode_key(encoded)?;
        for prefix in counted_prefixes(&user_key) {
            *deltas.entry(prefix.to_vec()).or_default() += delta;
        }
    }
    for (prefix, delta) in deltas {
        if delta == 0 {
            continue;
        }
        let key = count_key(shard, &prefix);
        let before = match snap.get(raft_state, &key)? {
            Some(bytes) => decode_count(&bytes)?,
            None => 0,
        };
        match before.saturating_add(delta) {
            0 => batch.remove(raft_state, key),
            count => batch.insert(raft_state, key, encode_count(count)),
        }
    }
    if fresh_store {
        batch.insert(raft_state, ready_key(shard), vec![COUNT_RECORD_V1]);
    }
    Ok(())
}

impl MvccStore {
    /// Makes the shard's directory counts complete: a store that has applied entries but
    /// has no counts (written before they existed) is counted once, with one scan of its
    /// live keys, in one batch. Runs at start-up before the replica applies anything; a
    /// store whose counts are complete is left alone (one point read).
    pub fn prepare_dir_counts(&self) -> Result<(), StorageError> {
        let storage = &self.storage;
        let snap = storage.db.snapshot();
        if snap.get(&storage.raft_state, ready_key(self.shard))?.is_some() {
            return Ok(());
        }
        let state = self.apply_state_at(&snap)?;
        let mut batch = storage.db.batch();
        // Stale counts of an interrupted earlier attempt cannot exist (the marker and the
        // counts commit together), but a partial set written by apply before the marker can.
        let counts_prefix = count_key(self.shard, b"");
        for guard in snap.prefix(&storage.raft_state, counts_prefix) {
            batch.remove(&storage.raft_state, guard.key()?);
        }
        let mut counts: BTreeMap<Vec<u8>, i64> = BTreeMap::new();
        let mut scan =
            VersionScan::new(&snap, &storage.mvcc, &self.range.span(&[0], &[0]), state.revision);
        let mut keys: u64 = 0;
        while let Some(version) = scan.next_live()? {
            let user_key = version.user_key()?;
            for prefix in counted_prefixes(&user_key) {
                *counts.entry(prefix.to_vec()).or_default() += 1;
            }
            keys += 1;
        }
        for (prefix, count) in counts {
            batch.insert(&storage.raft_state, count_key(self.shard, &prefix), encode_count(count));
        }
        batch.insert(&storage.raft_state, ready_key(self.shard), vec![COUNT_RECORD_V1]);
        batch.commit()?;
        tracing::info!(shard_id = self.shard.0, keys, "directory counts built");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_counts_under_each_slash_terminated_prefix() {
        let prefixes: Vec<&[u8]> = counted_prefixes(b"/registry/pods/ns/a").collect();
        let expected: Vec<&[u8]> =
            vec![b"", b"/", b"/registry/", b"/registry/pods/", b"/registry/pods/ns/"];
        assert_eq!(prefixes, expected);
        let flat: Vec<&[u8]> = counted_prefixes(b"key").collect();
        assert_eq!(flat, vec![&b""[..]]);
        let trailing: Vec<&[u8]> = counted_prefixes(b"a/").collect();
        assert_eq!(trailing, vec![&b""[..], &b"a/"[..]]);
    }

    #[test]
    fn depth_and_length_are_bounded() {
        let deep = b"/".repeat(COUNTED_DEPTH_MAX + 5);
        assert_eq!(counted_prefixes(&deep).count(), COUNTED_DEPTH_MAX + 1);
        let mut long = vec![b'x'; COUNTED_PREFIX_BYTES_MAX];
        long.push(b'/');
        assert_eq!(
            counted_prefixes(&long).count(),
            1,
            "a prefix over the byte limit is not counted"
        );
    }

    #[test]
    fn only_exact_counted_prefix_ranges_are_answered_from_counts() {
        assert_eq!(counted_prefix_of(b"/a/", b"/a0"), Some(b"/a/".to_vec()));
        assert_eq!(counted_prefix_of(b"\0", b"\0"), Some(Vec::new()));
        assert_eq!(counted_prefix_of(b"/a", b"/b"), None, "not slash-terminated");
        assert_eq!(counted_prefix_of(b"/a/", b"/a/z"), None, "not the whole prefix");
        assert_eq!(counted_prefix_of(b"/a/", b""), None, "a single key");
        assert_eq!(counted_prefix_of(b"/a/", b"\0"), None, "from-key");
        let deep = b"/".repeat(COUNTED_DEPTH_MAX + 1);
        assert_eq!(counted_prefix_of(&deep, &prefix_range_end(&deep)), None);
    }

    #[test]
    fn count_records_round_trip_and_reject_garbage() {
        assert_eq!(decode_count(&encode_count(42)).ok(), Some(42));
        assert!(decode_count(&[1, 2, 3]).is_err());
        assert!(decode_count(&[9; COUNT_RECORD_BYTES]).is_err());
    }
}
