//! The per-shard apply state and the compaction cursor, both records of the `raft_state`
//! keyspace under `shard_id (u64 BE) ‖ tag`.
//!
//! The apply state is written in the same fjall batch as the data changes of the entry it
//! covers (DESIGN §5), so after a crash the applied index and the data always agree: an entry
//! is never applied twice nor skipped (the bug class behind etcd's consistent-index issues).

use crate::error::StorageError;
use crate::storage::records::{StateTag, state_key};
use atoll_proto::ShardId;

/// Version byte of both records.
const STATE_RECORD_V1: u8 = 1;
/// Encoded size of an apply state record: version, index, revision, compact revision.
const APPLY_STATE_BYTES: usize = 1 + 3 * 8;
/// Encoded size of a compaction cursor record: version, revision.
const CURSOR_BYTES: usize = 1 + 8;
/// Encoded size of a compaction hash record: version, revision, crc32.
const COMPACT_HASH_BYTES: usize = 1 + 8 + 4;

/// What a replica has applied: the last applied Raft log index, the store's current revision
/// and its compacted revision. Persisted atomically with the data it describes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ApplyState {
    /// Index of the last Raft log entry applied to the store.
    pub applied_index: u64,
    /// Revision of the last write that changed the store (0 for an empty store).
    pub revision: i64,
    /// Reads below this revision fail with `Compacted` (0: never compacted).
    pub compact_revision: i64,
}

impl ApplyState {
    /// Encodes the record (version byte first).
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(APPLY_STATE_BYTES);
        out.push(STATE_RECORD_V1);
        out.extend_from_slice(&self.applied_index.to_be_bytes());
        out.extend_from_slice(&self.revision.to_be_bytes());
        out.extend_from_slice(&self.compact_revision.to_be_bytes());
        out
    }

    /// Decodes a record written by [`ApplyState::encode`].
    pub(crate) fn decode(bytes: &[u8]) -> Result<ApplyState, StorageError> {
        if bytes.len() != APPLY_STATE_BYTES || bytes[0] != STATE_RECORD_V1 {
            return Err(StorageError::BadRecord {
                what: "apply state",
                detail: format!("{} bytes with version {:?}", bytes.len(), bytes.first()),
            });
        }
        Ok(ApplyState {
            applied_index: u64::from_be_bytes(word(bytes, 1)),
            revision: i64::from_be_bytes(word(bytes, 9)),
            compact_revision: i64::from_be_bytes(word(bytes, 17)),
        })
    }
}

/// Eight bytes at `at`; callers check the length first, missing bytes read as zero.
fn word(bytes: &[u8], at: usize) -> [u8; 8] {
    let mut out = [0; 8];
    if let Some(src) = bytes.get(at..at + 8) {
        out.copy_from_slice(src);
    }
    out
}

/// Key of a shard's apply state in `raft_state`: `shard_id ‖ b'a'`. Tags are registered in
/// [`StateTag`] so no two records of a shard share one.
pub(crate) fn apply_state_key(shard: ShardId) -> [u8; 9] {
    state_key(shard, StateTag::Apply)
}

/// Key of a shard's compaction cursor in `raft_state`.
pub(crate) fn compact_cursor_key(shard: ShardId) -> [u8; 9] {
    state_key(shard, StateTag::CompactCursor)
}

/// Encodes the compaction cursor: every change-log record of the shard below this revision
/// has been compacted.
pub(crate) fn encode_cursor(revision: i64) -> Vec<u8> {
    let mut out = Vec::with_capacity(CURSOR_BYTES);
    out.push(STATE_RECORD_V1);
    out.extend_from_slice(&revision.to_be_bytes());
    out
}

/// Decodes a compaction cursor record.
pub(crate) fn decode_cursor(bytes: &[u8]) -> Result<i64, StorageError> {
    if bytes.len() != CURSOR_BYTES || bytes[0] != STATE_RECORD_V1 {
        return Err(StorageError::BadRecord {
            what: "compaction cursor",
            detail: format!("{} bytes with version {:?}", bytes.len(), bytes.first()),
        });
    }
    Ok(i64::from_be_bytes(word(bytes, 1)))
}

/// Key of a shard's compaction hash in `raft_state`.
pub(crate) fn compact_hash_key(shard: ShardId) -> [u8; 9] {
    state_key(shard, StateTag::CompactHash)
}

/// Encodes the hash of the shard at compacted revision `revision`.
pub(crate) fn encode_compact_hash(revision: i64, hash: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(COMPACT_HASH_BYTES);
    out.push(STATE_RECORD_V1);
    out.extend_from_slice(&revision.to_be_bytes());
    out.extend_from_slice(&hash.to_be_bytes());
    out
}

/// Decodes a compaction hash record: (compacted revision, hash).
pub(crate) fn decode_compact_hash(bytes: &[u8]) -> Result<(i64, u32), StorageError> {
    if bytes.len() != COMPACT_HASH_BYTES || bytes[0] != STATE_RECORD_V1 {
        return Err(StorageError::BadRecord {
            what: "compaction hash",
            detail: format!("{} bytes with version {:?}", bytes.len(), bytes.first()),
        });
    }
    let mut hash = [0u8; 4];
    hash.copy_from_slice(&bytes[9..13]);
    Ok((i64::from_be_bytes(word(bytes, 1)), u32::from_be_bytes(hash)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apply_state_round_trips_and_rejects_bad_bytes() {
        let state = ApplyState { applied_index: 7, revision: 300, compact_revision: 100 };
        assert_eq!(ApplyState::decode(&state.encode()).ok(), Some(state));
        assert!(ApplyState::decode(&[]).is_err());
        assert!(ApplyState::decode(&[2; APPLY_STATE_BYTES]).is_err());
        assert_eq!(decode_cursor(&encode_cursor(42)).ok(), Some(42));
        assert!(decode_cursor(&[1, 2]).is_err());
        assert_eq!(decode_compact_hash(&encode_compact_hash(42, 7)).ok(), Some((42, 7)));
        assert!(decode_compact_hash(&encode_cursor(42)).is_err());
    }
}
