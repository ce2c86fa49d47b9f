//! A backup of a node's database: every record of the state keyspaces (Raft and apply state,
//! MVCC versions, the change log) read from one fjall snapshot, so the dump is consistent
//! across shards, followed by a SHA-256 of everything before it. The Raft log is left out: it
//! is not state, and a restore starts new logs.
//!
//! The layout follows etcd's snapshot convention, which etcd's clients check when they save
//! one (`etcdctl snapshot save` requires `size % 512 == 32`): a body padded to a multiple of
//! 512 bytes, then the 32-byte SHA-256 of the body. Format version 1, integers big-endian:
//! ```text
//! magic "ATOLLBK1"
//! record*   := keyspace tag (u8: 1 raft_state, 2 mvcc, 3 changes, 4 leases)
//!              key length (u32) ‖ key ‖ value length (u32) ‖ value
//! end tag 0, then zero bytes up to a multiple of 512
//! SHA-256 (32 bytes) of every byte before it
//! ```
//! The writer streams in chunks of at most [`BACKUP_CHUNK_BYTES`]; [`backup_size`] tells the
//! total beforehand (from the same snapshot) so a stream can say how much remains.

use crate::error::StorageError;
use crate::storage::Storage;
use fjall::{Keyspace, Readable, Snapshot};
use ring::digest::{Context, SHA256};

/// First bytes of a backup.
pub const BACKUP_MAGIC: &[u8; 8] = b"ATOLLBK1";
/// Largest chunk the writer hands out.
pub const BACKUP_CHUNK_BYTES: usize = 64 * 1024;
/// Bytes of the SHA-256 that ends a backup.
pub const BACKUP_CHECKSUM_BYTES: usize = 32;
/// The body is padded to a multiple of this (etcd's page alignment).
pub const BACKUP_ALIGN_BYTES: u64 = 512;
/// Tag that ends the records.
const END_TAG: u8 = 0;

/// The padded body length for `unpadded` bytes of magic, records and end tag.
fn padded(unpadded: u64) -> u64 {
    unpadded.div_ceil(BACKUP_ALIGN_BYTES) * BACKUP_ALIGN_BYTES
}

/// The keyspaces a backup holds, with their tags, in the order written.
fn keyspaces(storage: &Storage) -> [(u8, &Keyspace); 4] {
    [(1, &storage.raft_state), (2, &storage.mvcc), (3, &storage.changes), (4, &storage.leases)]
}

/// Bytes one record takes: tag, key length, key, value length, value.
fn record_bytes(key: &[u8], value: &[u8]) -> u64 {
    (1 + 4 + key.len() + 4 + value.len()) as u64
}

/// The exact size in bytes of the backup [`write_backup`] makes from `snap`.
pub fn backup_size(storage: &Storage, snap: &Snapshot) -> Result<u64, StorageError> {
    let mut body = (BACKUP_MAGIC.len() + 1) as u64;
    for (_, keyspace) in keyspaces(storage) {
        for guard in snap.iter(keyspace) {
            let (key, value) = guard.into_inner()?;
            body += record_bytes(&key, &value);
        }
    }
    Ok(padded(body) + BACKUP_CHECKSUM_BYTES as u64)
}

/// Cuts the backup's bytes into chunks for the sink while hashing and counting them.
struct Chunker<S> {
    sink: S,
    chunk: Vec<u8>,
    digest: Context,
    written: u64,
}

impl<S, E> Chunker<S>
where
    S: FnMut(Vec<u8>) -> Result<(), E>,
{
    fn write(&mut self, bytes: &[u8]) -> Result<(), BackupError<E>> {
        self.digest.update(bytes);
        self.written += bytes.len() as u64;
        let mut rest = bytes;
        while !rest.is_empty() {
            let room = BACKUP_CHUNK_BYTES - self.chunk.len();
            let (now, later) = rest.split_at(room.min(rest.len()));
            self.chunk.extend_from_slice(now);
            rest = later;
            if self.chunk.len() == BACKUP_CHUNK_BYTES {
                let full =
                    std::mem::replace(&mut self.chunk, Vec::with_capacity(BACKUP_CHUNK_BYTES));
                (self.sink)(full).map_err(BackupError::Sink)?;
            }
        }
        Ok(())
    }

    /// Ends the records, pads the body, appends its SHA-256 and hands out the last chunk.
    fn finish(mut self) -> Result<(), BackupError<E>> {
        self.write(&[END_TAG])?;
        let padding = padded(self.written) - self.written;
        self.write(&vec![0; padding as usize])?;
        let sum = self.digest.clone().finish();
        self.write(sum.as_ref())?;
        if self.chunk.is_empty() {
            return Ok(());
        }
        (self.sink)(self.chunk).map_err(BackupError::Sink)
    }
}

/// Writes the backup of `snap`, handing `sink` chunks of at most [`BACKUP_CHUNK_BYTES`] in
/// order. A sink error stops the backup and is returned.
pub fn write_backup<E>(
    storage: &Storage,
    snap: &Snapshot,
    sink: impl FnMut(Vec<u8>) -> Result<(), E>,
) -> Result<(), BackupError<E>> {
    let mut out = Chunker {
        sink,
        chunk: Vec::with_capacity(BACKUP_CHUNK_BYTES),
        digest: Context::new(&SHA256),
        written: 0,
    };
    out.write(BACKUP_MAGIC)?;
    for (tag, keyspace) in keyspaces(storage) {
        for guard in snap.iter(keyspace) {
            let (key, value) = guard.into_inner().map_err(StorageError::from)?;
            out.write(&[tag])?;
            out.write(&length(key.len())?)?;
            out.write(&key)?;
            out.write(&length(value.len())?)?;
            out.write(&value)?;
        }
    }
    out.finish()
}

fn length<E>(len: usize) -> Result<[u8; 4], BackupError<E>> {
    u32::try_from(len)
        .map(u32::to_be_bytes)
        .map_err(|_| BackupError::Corrupt(format!("a record of {len} bytes does not fit")))
}

/// One record of a backup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackupRecord {
    /// Keyspace tag (1 raft_state, 2 mvcc, 3 changes, 4 leases).
    pub keyspace: u8,
    /// The record's key.
    pub key: Vec<u8>,
    /// The record's value.
    pub value: Vec<u8>,
}

/// Parses and verifies a whole backup: the magic, every record and the SHA-256 trailer.
pub fn read_backup(
    bytes: &[u8],
) -> Result<Vec<BackupRecord>, BackupError<std::convert::Infallible>> {
    let corrupt = |what: &str| BackupError::Corrupt(what.to_string());
    let body_len = bytes
        .len()
        .checked_sub(BACKUP_CHECKSUM_BYTES)
        .filter(|n| *n > BACKUP_MAGIC.len())
        .ok_or_else(|| corrupt("too short to be a backup"))?;
    let (body, sum) = bytes.split_at(body_len);
    if !body.starts_with(BACKUP_MAGIC) {
        return Err(corrupt("not an Atoll backup (bad magic)"));
    }
    if ring::digest::digest(&SHA256, body).as_ref() != sum {
        return Err(corrupt("checksum mismatch: the backup is truncated or damaged"));
    }
    let mut rest = &body[BACKUP_MAGIC.len()..];
    let mut records = Vec::new();
    let take = |rest: &mut &[u8], n: usize| -> Result<Vec<u8>, BackupError<_>> {
        if rest.len() < n {
            return Err(corrupt("a record runs past the end"));
        }
        let (now, later) = rest.split_at(n);
        *rest = later;
        Ok(now.to_vec())
    };
    loop {
        let Some((&keyspace, after)) = rest.split_first() else {
            return Err(corrupt("the records do not end"));
        };
        rest = after;
        if keyspace == END_TAG {
            if rest.iter().any(|b| *b != 0) {
                return Err(corrupt("bytes after the end of the records"));
            }
            return Ok(records);
        }
        if !(1..=4).contains(&keyspace) {
            return Err(corrupt("unknown keyspace tag"));
        }
        let key_len = u32::from_be_bytes(take(&mut rest, 4)?.try_into().unwrap_or([0; 4]));
        let key = take(&mut rest, key_len as usize)?;
        let value_len = u32::from_be_bytes(take(&mut rest, 4)?.try_into().unwrap_or([0; 4]));
        let value = take(&mut rest, value_len as usize)?;
        records.push(BackupRecord { keyspace, key, value });
    }
}

/// Why a backup failed.
#[derive(Debug, thiserror::Error)]
pub enum BackupError<E> {
    /// Reading the database failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The consumer of the chunks failed.
    #[error("backup consumer failed")]
    Sink(E),
    /// The bytes are not a valid backup.
    #[error("atoll: corrupt backup: {0}")]
    Corrupt(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn must_store() -> (tempfile::TempDir, Storage) {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = Storage::open(&dir.path().join("db"), 8 << 20).expect("open");
        (dir, storage)
    }

    fn must_fill(storage: &Storage) {
        for i in 0..3000u32 {
            let value = vec![u8::try_from(i % 251).unwrap_or(0); 40];
            storage.mvcc.insert(format!("k{i:05}"), value).expect("insert");
        }
        storage.changes.insert("c1", "change").expect("insert");
        storage.raft_state.insert("s1", "state").expect("insert");
    }

    fn must_backup(storage: &Storage) -> (u64, Vec<Vec<u8>>) {
        let snap = storage.db.snapshot();
        let size = backup_size(storage, &snap).expect("size");
        let mut chunks = Vec::new();
        write_backup::<()>(storage, &snap, |c| {
            chunks.push(c);
            Ok(())
        })
        .expect("backup");
        (size, chunks)
    }

    #[test]
    fn a_backup_holds_every_state_record_in_bounded_chunks() {
        let (_dir, storage) = must_store();
        must_fill(&storage);
        let (size, chunks) = must_backup(&storage);
        assert!(chunks.len() > 1, "3000 records need several chunks");
        assert!(chunks.iter().all(|c| !c.is_empty() && c.len() <= BACKUP_CHUNK_BYTES));
        let bytes: Vec<u8> = chunks.concat();
        assert_eq!(bytes.len() as u64, size, "the announced size is exact");
        assert_eq!(size % 512, 32, "etcd's clients check a 512-byte body plus a SHA-256");
        let records = read_backup(&bytes).expect("valid");
        assert_eq!(records.len(), 3002);
        assert_eq!(
            records[0],
            BackupRecord { keyspace: 1, key: b"s1".to_vec(), value: b"state".to_vec() }
        );
        assert_eq!(records[1].key, b"k00000");
        assert_eq!(
            records[3001],
            BackupRecord { keyspace: 3, key: b"c1".to_vec(), value: b"change".to_vec() }
        );
    }

    #[test]
    fn a_damaged_or_truncated_backup_is_refused() {
        let (_dir, storage) = must_store();
        must_fill(&storage);
        let bytes: Vec<u8> = must_backup(&storage).1.concat();
        let mut damaged = bytes.clone();
        damaged[100] ^= 1;
        let err = read_backup(&damaged).expect_err("refused");
        assert!(err.to_string().contains("checksum mismatch"), "{err}");
        assert!(read_backup(&bytes[..bytes.len() - 1]).is_err());
        assert!(read_backup(b"short").is_err());
    }

    #[test]
    fn a_sink_error_stops_the_backup() {
        let (_dir, storage) = must_store();
        must_fill(&storage);
        let snap = storage.db.snapshot();
        let mut calls = 0;
        let result = write_backup(&storage, &snap, |_| {
            calls += 1;
            Err("client went away")
        });
        assert!(matches!(result, Err(BackupError::Sink("client went away"))));
        assert_eq!(calls, 1);
    }
}
