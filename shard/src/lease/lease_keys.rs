//! Keys and records of the `leases` keyspace (decision D16). Three kinds, each under its own
//! first byte, so none can collide with another or with a user key (user keys live in `mvcc`):
//! - `b'L' ‖ lease id (u64 BE)` → [`LeaseRecord`]: the meta shard's lease records;
//! - `b'i' ‖ lease id (u64 BE) ‖ encoded user key` → grant index: a data shard's lease → keys
//!   index (keys are unique across the shards of a node, so the index is shared like `mvcc`
//!   and every reader clips it to its shard's range);
//! - `b'r' ‖ shard id (u64 BE) ‖ lease id (u64 BE)` → grant index: the newest revoked grant of
//!   a lease on a data shard, so a write checked against it is refused after the revocation.

use crate::error::StorageError;
use crate::storage::records::{decode_record, encode_record};
use atoll_proto::{LeaseRecord, ShardId};

const RECORD_TAG: u8 = b'L';
const INDEX_TAG: u8 = b'i';
const REVOKED_TAG: u8 = b'r';
/// Version byte of index and revoked records.
const GRANT_V1: u8 = 1;

/// Key of a lease record.
pub(crate) fn record_key(id: i64) -> Vec<u8> {
    let mut k = Vec::with_capacity(9);
    k.push(RECORD_TAG);
    k.extend_from_slice(&(id as u64).to_be_bytes());
    k
}

/// The first byte every lease record key starts with.
pub(crate) fn record_prefix() -> Vec<u8> {
    vec![RECORD_TAG]
}

/// Key of one index entry: `lease` holds `encoded_key`.
pub(crate) fn index_key(lease: i64, encoded_key: &[u8]) -> Vec<u8> {
    let mut k = index_prefix(lease);
    k.extend_from_slice(encoded_key);
    k
}

/// The prefix of every index entry of `lease`.
pub(crate) fn index_prefix(lease: i64) -> Vec<u8> {
    let mut k = Vec::with_capacity(9);
    k.push(INDEX_TAG);
    k.extend_from_slice(&(lease as u64).to_be_bytes());
    k
}

/// The encoded user key of an index entry key.
pub(crate) fn index_entry_key(key: &[u8]) -> &[u8] {
    key.get(9..).unwrap_or_default()
}

/// Whether `key` is a lease index entry (of any lease, any shard).
pub(crate) fn is_index_key(key: &[u8]) -> bool {
    key.len() > 9 && key[0] == INDEX_TAG
}

/// The prefix of every revoked marker of `shard`.
pub(crate) fn revoked_shard_prefix(shard: ShardId) -> Vec<u8> {
    let mut k = Vec::with_capacity(9);
    k.push(REVOKED_TAG);
    k.extend_from_slice(&shard.0.to_be_bytes());
    k
}

/// Key of a shard's revoked marker of `lease`.
pub(crate) fn revoked_key(shard: ShardId, lease: i64) -> Vec<u8> {
    let mut k = revoked_shard_prefix(shard);
    k.extend_from_slice(&(lease as u64).to_be_bytes());
    k
}

/// Encodes a grant index (index entries and revoked markers).
pub(crate) fn encode_grant(grant_index: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(9);
    out.push(GRANT_V1);
    out.extend_from_slice(&grant_index.to_be_bytes());
    out
}

/// Decodes [`encode_grant`].
pub(crate) fn decode_grant(bytes: &[u8]) -> Result<u64, StorageError> {
    match bytes {
        [GRANT_V1, rest @ ..] if rest.len() == 8 => {
            let mut word = [0u8; 8];
            word.copy_from_slice(rest);
            Ok(u64::from_be_bytes(word))
        }
        _ => Err(StorageError::BadRecord {
            what: "lease grant",
            detail: format!("{} bytes with version {:?}", bytes.len(), bytes.first()),
        }),
    }
}

/// Encodes a lease record (version byte, then bincode).
pub(crate) fn encode_lease_record(record: &LeaseRecord) -> Result<Vec<u8>, StorageError> {
    encode_record("lease record", record)
}

/// Decodes [`encode_lease_record`].
pub(crate) fn decode_lease_record(bytes: &[u8]) -> Result<LeaseRecord, StorageError> {
    decode_record("lease record", bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use atoll_proto::LeaseRef;

    #[test]
    fn kinds_never_share_a_prefix_and_records_round_trip() {
        assert!(record_key(7).starts_with(&record_prefix()));
        assert!(!index_key(7, b"k").starts_with(&record_prefix()));
        assert_eq!(index_entry_key(&index_key(7, b"key")), b"key");
        assert!(index_key(7, b"k").starts_with(&index_prefix(7)));
        assert!(!index_key(8, b"k").starts_with(&index_prefix(7)));
        assert_ne!(revoked_key(ShardId(1), 7), revoked_key(ShardId(2), 7));
        assert_eq!(decode_grant(&encode_grant(42)).ok(), Some(42));
        assert!(decode_grant(&[2, 0]).is_err());
        let record = LeaseRecord {
            lease: LeaseRef { id: -5, grant_index: 9 },
            ttl: 60,
            remaining_ms: 1_000,
            revoking: true,
        };
        let bytes = encode_lease_record(&record).expect("encodes");
        assert_eq!(decode_lease_record(&bytes).ok(), Some(record));
    }
}
