//! On-disk records of the Raft log and Raft state keyspaces: keys, a version byte on every
//! value, and decoders that report bad bytes instead of panicking (STYLE: storage and wire).
//!
//! Keys: `raft_log` = `shard (u64 BE) ‖ index (u64 BE)`; `raft_state` = `shard (u64 BE) ‖ tag`.

use crate::error::StorageError;
use crate::storage::Storage;
use atoll_proto::ShardId;
use fjall::OwnedWriteBatch;
use raft::eraftpb::{ConfState, Entry, EntryType, HardState};
use serde::{Serialize, de::DeserializeOwned};

/// Version byte that starts every record written by this build.
const RECORD_VERSION: u8 = 1;

/// Which per-shard record of the `raft_state` keyspace. This enum is the one registry of the
/// tags: every record of `raft_state`, whichever module writes it, takes its tag from here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum StateTag {
    /// The Raft hard state (term, vote, commit).
    HardState = b'h',
    /// The Raft conf state (voters, learners).
    ConfState = b'c',
    /// Where the log was last truncated.
    Truncated = b't',
    /// The MVCC apply state (applied index, revision, compacted revision).
    Apply = b'a',
    /// The MVCC compaction cursor (physical compaction done below this revision).
    CompactCursor = b'k',
    /// The hash the compactor took at the compacted revision (`mvcc::compact_hash`).
    CompactHash = b'H',
    /// Directory counts: `shard_id ‖ b'n' ‖ prefix`, one record per counted prefix
    /// (`mvcc::dir_counts`).
    DirCount = b'n',
    /// Marker: the shard's directory counts are complete.
    DirCountsReady = b'N',
}

/// Key of a shard's record in `raft_state`.
pub fn state_key(shard: ShardId, tag: StateTag) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[..8].copy_from_slice(&shard.0.to_be_bytes());
    k[8] = tag as u8;
    k
}

/// Key of a shard's log entry in `raft_log`.
pub fn log_key(shard: ShardId, index: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&shard.0.to_be_bytes());
    k[8..].copy_from_slice(&index.to_be_bytes());
    k
}

/// Encodes a record: version byte then bincode.
pub fn encode_record<T: Serialize>(what: &'static str, value: &T) -> Result<Vec<u8>, StorageError> {
    let mut out = vec![RECORD_VERSION];
    bincode::serde::encode_into_std_write(value, &mut out, bincode::config::standard())
        .map_err(|e| StorageError::BadRecord { what, detail: e.to_string() })?;
    Ok(out)
}

/// Decodes a record written by [`encode_record`].
pub fn decode_record<T: DeserializeOwned>(
    what: &'static str,
    bytes: &[u8],
) -> Result<T, StorageError> {
    let bad = |detail: String| StorageError::BadRecord { what, detail };
    match bytes.split_first() {
        Some((&RECORD_VERSION, body)) => {
            let (value, used) = bincode::serde::decode_from_slice(
                body,
                bincode::config::standard().with_limit::<{ 256 << 20 }>(),
            )
            .map_err(|e| bad(e.to_string()))?;
            if used != body.len() {
                return Err(bad(format!("{} trailing bytes", body.len() - used)));
            }
            Ok(value)
        }
        Some((v, _)) => Err(bad(format!("unknown record version {v}, expected {RECORD_VERSION}"))),
        None => Err(bad("empty record".to_string())),
    }
}

/// Loads a serde record of `raft_state`.
pub fn load_state<T: DeserializeOwned>(
    storage: &Storage,
    shard: ShardId,
    tag: StateTag,
) -> Result<Option<T>, StorageError> {
    match storage.raft_state.get(state_key(shard, tag))? {
        Some(bytes) => Ok(Some(decode_record(tag_name(tag), &bytes)?)),
        None => Ok(None),
    }
}

/// Adds a serde record of `raft_state` to a batch.
pub fn put_state<T: Serialize>(
    storage: &Storage,
    batch: &mut OwnedWriteBatch,
    shard: ShardId,
    tag: StateTag,
    value: &T,
) -> Result<(), StorageError> {
    let bytes = encode_record(tag_name(tag), value)?;
    batch.insert(&storage.raft_state, state_key(shard, tag), bytes);
    Ok(())
}

fn tag_name(tag: StateTag) -> &'static str {
    match tag {
        StateTag::HardState => "raft hard state",
        StateTag::ConfState => "raft conf state",
        StateTag::Truncated => "raft truncated state",
        StateTag::Apply => "apply state",
        StateTag::CompactCursor => "compaction cursor",
        StateTag::CompactHash => "compaction hash",
        StateTag::DirCount => "directory count",
        StateTag::DirCountsReady => "directory counts marker",
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct StoredHardState {
    term: u64,
    vote: u64,
    commit: u64,
}

/// A conf state as records and snapshot files hold it (raft-rs's type is protobuf's).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StoredConfState {
    voters: Vec<u64>,
    learners: Vec<u64>,
    voters_outgoing: Vec<u64>,
    learners_next: Vec<u64>,
    auto_leave: bool,
}

impl StoredConfState {
    /// Whether `node` has a replica in this membership, as a voter or a learner, in either
    /// half of a joint configuration.
    pub fn includes(&self, node: u64) -> bool {
        [&self.voters, &self.learners, &self.voters_outgoing, &self.learners_next]
            .into_iter()
            .any(|ids| ids.contains(&node))
    }
}

impl From<&ConfState> for StoredConfState {
    fn from(cs: &ConfState) -> StoredConfState {
        StoredConfState {
            voters: cs.voters.clone(),
            learners: cs.learners.clone(),
            voters_outgoing: cs.voters_outgoing.clone(),
            learners_next: cs.learners_next.clone(),
            auto_leave: cs.auto_leave,
        }
    }
}

impl From<StoredConfState> for ConfState {
    fn from(s: StoredConfState) -> ConfState {
        ConfState {
            voters: s.voters,
            learners: s.learners,
            voters_outgoing: s.voters_outgoing,
            learners_next: s.learners_next,
            auto_leave: s.auto_leave,
            ..ConfState::default()
        }
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct StoredEntry {
    entry_type: u8,
    term: u64,
    index: u64,
    data: Vec<u8>,
    context: Vec<u8>,
}

/// Loads a shard's hard state.
pub fn load_hard_state(
    storage: &Storage,
    shard: ShardId,
) -> Result<Option<HardState>, StorageError> {
    let stored: Option<StoredHardState> = load_state(storage, shard, StateTag::HardState)?;
    Ok(stored.map(|s| HardState {
        term: s.term,
        vote: s.vote,
        commit: s.commit,
        ..HardState::default()
    }))
}

/// Adds a shard's hard state to a batch.
pub fn put_hard_state(
    storage: &Storage,
    batch: &mut OwnedWriteBatch,
    shard: ShardId,
    hs: &HardState,
) -> Result<(), StorageError> {
    let stored = StoredHardState { term: hs.term, vote: hs.vote, commit: hs.commit };
    put_state(storage, batch, shard, StateTag::HardState, &stored)
}

/// Loads a shard's conf state.
pub fn load_conf_state(
    storage: &Storage,
    shard: ShardId,
) -> Result<Option<ConfState>, StorageError> {
    let stored: Option<StoredConfState> = load_state(storage, shard, StateTag::ConfState)?;
    Ok(stored.map(ConfState::from))
}

/// Loads a shard's conf state as of a database snapshot.
pub fn load_conf_state_at(
    snap: &fjall::Snapshot,
    storage: &Storage,
    shard: ShardId,
) -> Result<Option<ConfState>, StorageError> {
    use fjall::Readable as _;
    let tag = StateTag::ConfState;
    match snap.get(&storage.raft_state, state_key(shard, tag))? {
        Some(bytes) => Ok(Some(decode_record::<StoredConfState>(tag_name(tag), &bytes)?.into())),
        None => Ok(None),
    }
}

/// Adds a shard's conf state to a batch.
pub fn put_conf_state(
    storage: &Storage,
    batch: &mut OwnedWriteBatch,
    shard: ShardId,
    cs: &ConfState,
) -> Result<(), StorageError> {
    put_state(storage, batch, shard, StateTag::ConfState, &StoredConfState::from(cs))
}

/// Encodes a log entry.
pub fn encode_entry(e: &Entry) -> Result<Vec<u8>, StorageError> {
    let stored = StoredEntry {
        entry_type: e.get_entry_type() as u8,
        term: e.term,
        index: e.index,
        data: e.data.to_vec(),
        context: e.context.to_vec(),
    };
    encode_record("raft log entry", &stored)
}

/// Decodes a log entry.
pub fn decode_entry(bytes: &[u8]) -> Result<Entry, StorageError> {
    let s: StoredEntry = decode_record("raft log entry", bytes)?;
    let entry_type = match s.entry_type {
        0 => EntryType::EntryNormal,
        1 => EntryType::EntryConfChange,
        2 => EntryType::EntryConfChangeV2,
        other => {
            return Err(StorageError::BadRecord {
                what: "raft log entry",
                detail: format!("unknown entry type {other}"),
            });
        }
    };
    Ok(Entry {
        entry_type,
        term: s.term,
        index: s.index,
        data: s.data.into(),
        context: s.context.into(),
        ..Entry::default()
    })
}

/// Loads one log entry.
pub fn load_entry(
    storage: &Storage,
    shard: ShardId,
    index: u64,
) -> Result<Option<Entry>, StorageError> {
    match storage.raft_log.get(log_key(shard, index))? {
        Some(bytes) => Ok(Some(decode_entry(&bytes)?)),
        None => Ok(None),
    }
}

/// The highest index in a shard's log on disk.
pub fn last_log_index(storage: &Storage, shard: ShardId) -> Result<Option<u64>, StorageError> {
    let lo = log_key(shard, 0);
    let hi = log_key(shard, u64::MAX);
    match storage.raft_log.range(lo..=hi).next_back() {
        Some(guard) => {
            let key = guard.key()?;
            let idx: [u8; 8] =
                key.get(8..16).and_then(|s| s.try_into().ok()).ok_or(StorageError::BadRecord {
                    what: "raft log key",
                    detail: format!("{} bytes", key.len()),
                })?;
            Ok(Some(u64::from_be_bytes(idx)))
        }
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_and_bad_bytes_are_errors() {
        let mut e = Entry::default();
        e.set_entry_type(EntryType::EntryConfChange);
        e.term = 3;
        e.index = 9;
        e.data = vec![1, 2, 3].into();
        e.context = vec![4].into();
        let bytes = encode_entry(&e).expect("encodes");
        let back = decode_entry(&bytes).expect("decodes");
        assert_eq!(back, e);
        assert!(decode_entry(&[]).is_err());
        assert!(decode_entry(&[9, 0]).is_err());
        for cut in 0..bytes.len() {
            let _ = decode_entry(&bytes[..cut]);
        }
    }

    #[test]
    fn keys_sort_by_shard_then_index() {
        assert!(log_key(ShardId(1), u64::MAX) < log_key(ShardId(2), 0));
        assert!(log_key(ShardId(1), 255) < log_key(ShardId(1), 256));
    }
}
