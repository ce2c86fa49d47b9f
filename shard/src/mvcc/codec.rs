//! Byte layouts of the `mvcc` and `changes` keyspaces (DESIGN §5).
//!
//! - A user key is encoded order-preservingly: every 0x00 becomes 0x00 0xFF and the key ends
//!   with 0x00 0x01. Encoded keys sort exactly like raw keys and none is a prefix of another,
//!   so `encoded key ‖ suffix` never interleaves two user keys.
//! - `mvcc`: `encoded key ‖ !revision (u64 BE)` → version record. The revision is inverted so
//!   that a forward scan meets the newest version of a key first: a read at the current
//!   revision decides each key on its first entry.
//! - `changes`: `revision (u64 BE) ‖ encoded key` → change record, the revision-ordered log
//!   used by watch and compaction.
//!
//! Every record starts with a version byte; decoding never panics and reports
//! [`StorageError::BadRecord`] on bytes it does not understand.

use crate::error::StorageError;

/// Version byte of every record this module writes.
pub(crate) const RECORD_V1: u8 = 1;
/// Record kind: a live version (or, in the change log, a put).
const KIND_PUT: u8 = 0;
/// Record kind: a tombstone (or, in the change log, a delete).
const KIND_TOMBSTONE: u8 = 1;
/// Bytes of the revision suffix of an `mvcc` key and prefix of a `changes` key.
pub(crate) const REVISION_BYTES: usize = 8;
/// Fixed part of a live version record: version byte, kind, create, version, lease.
const PUT_HEADER_BYTES: usize = 2 + 3 * 8;

/// Appends the order-preserving encoding of `user_key` (escaped, terminated) to `out`.
pub(crate) fn encode_key_into(user_key: &[u8], out: &mut Vec<u8>) {
    escape_into(user_key, out);
    out.extend_from_slice(&[0x00, 0x01]);
}

/// The order-preserving encoding of `user_key`.
pub(crate) fn encode_key(user_key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(user_key.len() + 2 + REVISION_BYTES);
    encode_key_into(user_key, &mut out);
    out
}

/// The escaped bytes of `user_key` without the terminator. Every encoded key of a user key
/// `k` satisfies `encode(k) < escape(end)` exactly when `k < end`, so this is the exclusive
/// upper bound of a scan over `[.., end)`.
pub(crate) fn escape_bound(user_key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(user_key.len() + 1);
    escape_into(user_key, &mut out);
    out
}

fn escape_into(user_key: &[u8], out: &mut Vec<u8>) {
    for &b in user_key {
        out.push(b);
        if b == 0x00 {
            out.push(0xFF);
        }
    }
}

/// Decodes an encoded key (escaped, terminated) back into the user key.
pub(crate) fn decode_key(encoded: &[u8]) -> Result<Vec<u8>, StorageError> {
    let bad = |detail: &str| StorageError::BadRecord { what: "mvcc key", detail: detail.into() };
    let mut out = Vec::with_capacity(encoded.len());
    let mut i = 0;
    while i < encoded.len() {
        let b = encoded[i];
        if b != 0x00 {
            out.push(b);
            i += 1;
            continue;
        }
        match encoded.get(i + 1) {
            Some(0xFF) => {
                out.push(0x00);
                i += 2;
            }
            Some(0x01) if i + 2 == encoded.len() => return Ok(out),
            Some(0x01) => return Err(bad("bytes after the key terminator")),
            _ => return Err(bad("invalid escape sequence")),
        }
    }
    Err(bad("missing key terminator"))
}

/// The inverted big-endian revision suffix of an `mvcc` key.
pub(crate) fn inverted_revision(revision: i64) -> [u8; REVISION_BYTES] {
    // Revisions are positive, so the cast is the identity; inverting makes newer sort first.
    (!(revision as u64)).to_be_bytes()
}

/// The `mvcc` key of `user_key` at `revision`.
#[cfg(test)]
pub(crate) fn version_key(user_key: &[u8], revision: i64) -> Vec<u8> {
    let mut out = encode_key(user_key);
    out.extend_from_slice(&inverted_revision(revision));
    out
}

/// The `mvcc` key of an already encoded key at `revision`.
pub(crate) fn version_key_encoded(encoded: &[u8], revision: i64) -> Vec<u8> {
    let mut out = Vec::with_capacity(encoded.len() + REVISION_BYTES);
    out.extend_from_slice(encoded);
    out.extend_from_slice(&inverted_revision(revision));
    out
}

/// The largest `mvcc` key any version of `encoded` can have (revision 0, inverted).
pub(crate) fn last_version_key(encoded: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(encoded.len() + REVISION_BYTES);
    out.extend_from_slice(encoded);
    out.extend_from_slice(&[0xFF; REVISION_BYTES]);
    out
}

/// Splits an `mvcc` key into the encoded user key and the revision.
pub(crate) fn split_version_key(key: &[u8]) -> Result<(&[u8], i64), StorageError> {
    let bad = |detail: String| StorageError::BadRecord { what: "mvcc key", detail };
    if key.len() < 2 + REVISION_BYTES {
        return Err(bad(format!("{} bytes is shorter than any version key", key.len())));
    }
    let (encoded, suffix) = key.split_at(key.len() - REVISION_BYTES);
    let revision =
        read_revision(suffix, true).ok_or_else(|| bad("revision out of range".into()))?;
    Ok((encoded, revision))
}

/// The `changes` key of an already encoded key at `revision`.
pub(crate) fn change_key(revision: i64, encoded: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(REVISION_BYTES + encoded.len());
    out.extend_from_slice(&(revision as u64).to_be_bytes());
    out.extend_from_slice(encoded);
    out
}

/// The first `changes` key of `revision` (its revision prefix alone).
pub(crate) fn change_prefix(revision: i64) -> [u8; REVISION_BYTES] {
    (revision.max(0) as u64).to_be_bytes()
}

/// Splits a `changes` key into the revision and the encoded user key.
pub(crate) fn split_change_key(key: &[u8]) -> Result<(i64, &[u8]), StorageError> {
    let bad = |detail: &str| StorageError::BadRecord { what: "change key", detail: detail.into() };
    if key.len() < REVISION_BYTES + 2 {
        return Err(bad("shorter than any change key"));
    }
    let (prefix, encoded) = key.split_at(REVISION_BYTES);
    let revision = read_revision(prefix, false).ok_or_else(|| bad("revision out of range"))?;
    Ok((revision, encoded))
}

fn read_revision(bytes: &[u8], inverted: bool) -> Option<i64> {
    let raw = u64::from_be_bytes(bytes.try_into().ok()?);
    let raw = if inverted { !raw } else { raw };
    i64::try_from(raw).ok().filter(|r| *r > 0)
}

/// A decoded live version (the key and mod revision come from the `mvcc` key).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct LiveRecord {
    /// Revision of the write that created the key.
    pub create_revision: i64,
    /// Writes since creation.
    pub version: i64,
    /// Attached lease, 0 for none.
    pub lease: i64,
    /// The value (empty when decoded without values).
    pub value: Vec<u8>,
}

/// Encodes a live version record.
pub(crate) fn encode_live(create_revision: i64, version: i64, lease: i64, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(PUT_HEADER_BYTES + value.len());
    out.extend_from_slice(&[RECORD_V1, KIND_PUT]);
    out.extend_from_slice(&create_revision.to_be_bytes());
    out.extend_from_slice(&version.to_be_bytes());
    out.extend_from_slice(&lease.to_be_bytes());
    out.extend_from_slice(value);
    out
}

/// Encodes a tombstone record.
pub(crate) fn encode_tombstone() -> Vec<u8> {
    vec![RECORD_V1, KIND_TOMBSTONE]
}

/// Whether a version record is a tombstone; checks only the two header bytes so counting
/// keys never decodes values.
pub(crate) fn is_tombstone(record: &[u8]) -> Result<bool, StorageError> {
    match record {
        [RECORD_V1, KIND_TOMBSTONE] => Ok(true),
        [RECORD_V1, KIND_PUT, ..] if record.len() >= PUT_HEADER_BYTES => Ok(false),
        _ => Err(bad_version_record(record)),
    }
}

/// Decodes a live version record; with `with_value == false` the value is left empty
/// (`keys_only`), saving the copy.
pub(crate) fn decode_live(record: &[u8], with_value: bool) -> Result<LiveRecord, StorageError> {
    if is_tombstone(record)? {
        return Err(StorageError::BadRecord {
            what: "mvcc version",
            detail: "tombstone where a live version was expected".into(),
        });
    }
    let int = |at: usize| -> Result<i64, StorageError> {
        let bytes = record.get(at..at + 8).ok_or_else(|| bad_version_record(record))?;
        let arr: [u8; 8] = bytes.try_into().map_err(|_| bad_version_record(record))?;
        Ok(i64::from_be_bytes(arr))
    };
    let value = match record.get(PUT_HEADER_BYTES..) {
        Some(value) if with_value => value.to_vec(),
        _ => Vec::new(),
    };
    Ok(LiveRecord { create_revision: int(2)?, version: int(10)?, lease: int(18)?, value })
}

fn bad_version_record(record: &[u8]) -> StorageError {
    let head: Vec<u8> = record.iter().take(4).copied().collect();
    StorageError::BadRecord {
        what: "mvcc version",
        detail: format!("{} bytes starting {head:02x?}", record.len()),
    }
}

/// What a change-log record says happened to its key at its revision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ChangeKind {
    /// The key was written; its version is in `mvcc` at the same revision.
    Put,
    /// The key was deleted.
    Delete,
}

/// Encodes a change-log record.
pub(crate) fn encode_change(kind: ChangeKind) -> Vec<u8> {
    match kind {
        ChangeKind::Put => vec![RECORD_V1, KIND_PUT],
        ChangeKind::Delete => vec![RECORD_V1, KIND_TOMBSTONE],
    }
}

/// Decodes a change-log record.
pub(crate) fn decode_change(record: &[u8]) -> Result<ChangeKind, StorageError> {
    match record {
        [RECORD_V1, KIND_PUT] => Ok(ChangeKind::Put),
        [RECORD_V1, KIND_TOMBSTONE] => Ok(ChangeKind::Delete),
        _ => Err(StorageError::BadRecord {
            what: "change record",
            detail: format!("unexpected bytes {record:02x?}"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_keys_sort_like_raw_keys_and_round_trip() {
        let keys: Vec<&[u8]> = vec![
            b"",
            b"\x00",
            b"\x00\x00",
            b"\x00\x01",
            b"\x00\xff",
            b"a",
            b"a\x00",
            b"a\x00b",
            b"a\x01",
            b"ab",
            b"\xff",
            b"\xff\x00",
            b"\xff\xff",
        ];
        for pair in keys.windows(2) {
            assert!(pair[0] < pair[1], "test keys must be sorted");
            let (a, b) = (version_key(pair[0], 5), version_key(pair[1], 900));
            assert!(a < b, "{:?} must sort before {:?}", pair[0], pair[1]);
            assert!(last_version_key(&encode_key(pair[0])) < version_key(pair[1], i64::MAX));
            assert!(encode_key(pair[0]) < escape_bound(pair[1]));
            assert!(encode_key(pair[1]) >= escape_bound(pair[1]));
        }
        for k in keys {
            assert_eq!(decode_key(&encode_key(k)).ok(), Some(k.to_vec()));
        }
    }

    #[test]
    fn newer_versions_sort_first() {
        assert!(version_key(b"k", 300) < version_key(b"k", 200));
        let key = version_key(b"k\x00", 7);
        let (encoded, rev) = split_version_key(&key).ok().unzip();
        assert_eq!(rev, Some(7));
        assert_eq!(encoded.map(|e| e.to_vec()), Some(encode_key(b"k\x00")));
    }

    #[test]
    fn bad_bytes_are_errors_not_panics() {
        assert!(decode_key(b"abc").is_err());
        assert!(decode_key(b"a\x00\x02").is_err());
        assert!(decode_key(b"a\x00\x01b").is_err());
        assert!(split_version_key(b"short").is_err());
        assert!(is_tombstone(&[]).is_err());
        assert!(is_tombstone(&[9, 0]).is_err());
        assert!(decode_live(&[RECORD_V1, KIND_PUT, 1, 2], true).is_err());
        assert!(decode_change(&[RECORD_V1]).is_err());
        assert!(split_change_key(&[0; 9]).is_err());
    }

    #[test]
    fn records_round_trip() {
        let rec = encode_live(100, 3, 7, b"val");
        assert_eq!(is_tombstone(&rec).ok(), Some(false));
        let live = decode_live(&rec, true).ok();
        let want =
            LiveRecord { create_revision: 100, version: 3, lease: 7, value: b"val".to_vec() };
        assert_eq!(live, Some(want));
        assert_eq!(is_tombstone(&encode_tombstone()).ok(), Some(true));
        assert_eq!(
            decode_change(&encode_change(ChangeKind::Delete)).ok(),
            Some(ChangeKind::Delete)
        );
    }
}
