//! The file a shard snapshot travels and waits in: written by the leader from one fjall
//! snapshot, streamed to the follower chunk by chunk, kept there until installed, and read
//! back record by record, so no side ever holds a whole snapshot in memory.
//!
//! Format version 1, integers big-endian:
//! ```text
//! magic "ATOLLSN1"
//! meta length (u32) ‖ meta        a versioned record: shard, index, term, conf state, range
//! record*   := space tag (u8: 1 raft_state, 2 mvcc, 3 changes, 4 leases)
//!              key length (u32) ‖ key ‖ value length (u32) ‖ value
//! end tag 0 ‖ record count (u64)
//! crc32 (IEEE, u32) of every byte before it
//! ```
//! The transport checks a crc32 per chunk and one of the whole stream; this trailer checks
//! the file itself when it is read back for install, so a file damaged on disk between
//! receipt and install is refused before anything is written.

use crate::error::StorageError;
use crate::snapshot::shard_records::RecordSpace;
use crate::storage::records::{StoredConfState, decode_record, encode_record};
use raft::eraftpb::ConfState;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

/// First bytes of a shard snapshot file.
pub const SNAPSHOT_MAGIC: &[u8; 8] = b"ATOLLSN1";
/// Largest meta record accepted (it holds a conf state and a key range).
const META_BYTES_MAX: u32 = 1 << 20;
/// Largest key or value accepted in a record: a value is at most a request (etcd's
/// `max-request-bytes` tops out far below), so a bigger length means a damaged file.
const RECORD_PART_BYTES_MAX: u32 = 64 << 20;
/// Tag that ends the records.
const END_TAG: u8 = 0;
/// Buffer of the file reader and writer.
const FILE_BUFFER_BYTES: usize = 256 * 1024;

/// What a snapshot is of: the shard, where it stands in the Raft log, the membership there
/// and the key range its records cover.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SnapshotMeta {
    /// The shard.
    pub shard: u64,
    /// The applied index the state was read at.
    pub index: u64,
    /// The term of the entry at `index`.
    pub term: u64,
    /// The membership at `index`.
    pub conf_state: StoredConfState,
    /// The shard's first key (inclusive).
    pub range_start: Vec<u8>,
    /// The shard's end (exclusive), empty for unbounded.
    pub range_end: Vec<u8>,
}

impl SnapshotMeta {
    /// The membership as raft-rs takes it.
    pub fn raft_conf_state(&self) -> ConfState {
        self.conf_state.clone().into()
    }
}

/// Why a snapshot could not be made, checked or installed.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// Storage failed (fatal for the node when installing).
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The file is not a valid snapshot: damaged, truncated or of another shard or index.
    #[error("snapshot file {path} refused: {detail}")]
    Corrupt {
        /// The file.
        path: String,
        /// What is wrong, one line.
        detail: String,
    },
    /// The snapshot cannot be made now (e.g. the term of the applied index is not known
    /// yet); Raft asks again.
    #[error("snapshot not available yet: {reason}")]
    Unavailable {
        /// Why.
        reason: String,
    },
}

impl SnapshotError {
    pub(crate) fn corrupt(path: &Path, detail: impl Into<String>) -> SnapshotError {
        SnapshotError::Corrupt { path: path.display().to_string(), detail: detail.into() }
    }
}

impl From<fjall::Error> for SnapshotError {
    fn from(e: fjall::Error) -> SnapshotError {
        SnapshotError::Storage(StorageError::Engine(e))
    }
}

impl From<std::io::Error> for SnapshotError {
    fn from(e: std::io::Error) -> SnapshotError {
        SnapshotError::Storage(StorageError::Io(e))
    }
}

/// Writes a snapshot file, hashing every byte.
pub(crate) struct SnapshotWriter {
    out: BufWriter<File>,
    hasher: crc32fast::Hasher,
    records: u64,
    bytes: u64,
}

impl SnapshotWriter {
    /// Creates `path` (truncating it) and writes the magic and `meta`.
    pub(crate) fn create(
        path: &Path,
        meta: &SnapshotMeta,
    ) -> Result<SnapshotWriter, SnapshotError> {
        let file = File::create(path)?;
        let mut w = SnapshotWriter {
            out: BufWriter::with_capacity(FILE_BUFFER_BYTES, file),
            hasher: crc32fast::Hasher::new(),
            records: 0,
            bytes: 0,
        };
        w.write(SNAPSHOT_MAGIC)?;
        let meta = encode_record("snapshot meta", meta)?;
        w.write(&part_length(&meta)?)?;
        w.write(&meta)?;
        Ok(w)
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), StorageError> {
        self.hasher.update(bytes);
        self.bytes += bytes.len() as u64;
        self.out.write_all(bytes)?;
        Ok(())
    }

    /// Appends one record.
    pub(crate) fn record(
        &mut self,
        space: RecordSpace,
        key: &[u8],
        value: &[u8],
    ) -> Result<(), StorageError> {
        self.write(&[space as u8])?;
        self.write(&part_length(key)?)?;
        self.write(key)?;
        self.write(&part_length(value)?)?;
        self.write(value)?;
        self.records += 1;
        Ok(())
    }

    /// Ends the records, appends the checksum and makes the file durable; returns its size.
    pub(crate) fn finish(mut self) -> Result<u64, SnapshotError> {
        self.write(&[END_TAG])?;
        let count = self.records.to_be_bytes();
        self.write(&count)?;
        let crc = self.hasher.clone().finalize().to_be_bytes();
        self.out.write_all(&crc)?;
        let file = self.out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        Ok(self.bytes + crc.len() as u64)
    }
}

fn part_length(part: &[u8]) -> Result<[u8; 4], StorageError> {
    let len = u32::try_from(part.len()).ok().filter(|n| *n <= RECORD_PART_BYTES_MAX);
    len.map(u32::to_be_bytes).ok_or_else(|| StorageError::BadRecord {
        what: "snapshot record",
        detail: format!("{} bytes is above the record limit", part.len()),
    })
}

/// One record of a snapshot file: its keyspace, key and value.
pub type SnapshotRecord = (RecordSpace, Vec<u8>, Vec<u8>);

/// Reads a snapshot file record by record, checking lengths before allocating and the
/// count and checksum at the end ([`SnapshotReader::finish`]); a caller must not act on
/// what it read before `finish` succeeded.
pub struct SnapshotReader {
    input: BufReader<File>,
    path: PathBuf,
    hasher: crc32fast::Hasher,
    meta: SnapshotMeta,
    records: u64,
    ended: bool,
}

impl SnapshotReader {
    /// Opens `path` and reads its magic and meta.
    pub fn open(path: &Path) -> Result<SnapshotReader, SnapshotError> {
        let file = File::open(path)?;
        let mut r = SnapshotReader {
            input: BufReader::with_capacity(FILE_BUFFER_BYTES, file),
            path: path.to_path_buf(),
            hasher: crc32fast::Hasher::new(),
            meta: SnapshotMeta {
                shard: 0,
                index: 0,
                term: 0,
                conf_state: StoredConfState::default(),
                range_start: Vec::new(),
                range_end: Vec::new(),
            },
            records: 0,
            ended: false,
        };
        if r.read_exact(SNAPSHOT_MAGIC.len())? != SNAPSHOT_MAGIC {
            return Err(SnapshotError::corrupt(path, "not an Atoll shard snapshot (bad magic)"));
        }
        let len = r.read_u32()?;
        if len > META_BYTES_MAX {
            return Err(SnapshotError::corrupt(path, format!("meta of {len} bytes")));
        }
        let meta = r.read_exact(len as usize)?;
        r.meta = decode_record("snapshot meta", &meta)?;
        Ok(r)
    }

    /// The snapshot's meta (not yet verified by the checksum).
    pub fn meta(&self) -> &SnapshotMeta {
        &self.meta
    }

    /// The next record, or `None` after the last one.
    pub fn next_record(&mut self) -> Result<Option<SnapshotRecord>, SnapshotError> {
        if self.ended {
            return Ok(None);
        }
        let tag = self.read_exact(1)?[0];
        if tag == END_TAG {
            self.ended = true;
            return Ok(None);
        }
        let space = RecordSpace::from_tag(tag).ok_or_else(|| {
            SnapshotError::corrupt(&self.path, format!("unknown record tag {tag}"))
        })?;
        let key = self.read_part()?;
        let value = self.read_part()?;
        self.records += 1;
        Ok(Some((space, key, value)))
    }

    /// Reads the end: the record count and the checksum must match what was read, and
    /// nothing may follow.
    pub fn finish(mut self) -> Result<SnapshotMeta, SnapshotError> {
        while self.next_record()?.is_some() {}
        let count = u64::from_be_bytes(self.read_array()?);
        if count != self.records {
            let detail = format!("{} records read, {count} announced", self.records);
            return Err(SnapshotError::corrupt(&self.path, detail));
        }
        let computed = self.hasher.clone().finalize();
        let mut stored = [0u8; 4];
        self.input.read_exact(&mut stored).map_err(|e| self.short(e))?;
        let stored = u32::from_be_bytes(stored);
        if stored != computed {
            let detail =
                format!("checksum mismatch: stored {stored:#010x}, computed {computed:#010x}");
            return Err(SnapshotError::corrupt(&self.path, detail));
        }
        let mut rest = [0u8; 1];
        if self.input.read(&mut rest)? != 0 {
            return Err(SnapshotError::corrupt(&self.path, "bytes after the checksum"));
        }
        Ok(self.meta)
    }

    fn read_part(&mut self) -> Result<Vec<u8>, SnapshotError> {
        let len = self.read_u32()?;
        if len > RECORD_PART_BYTES_MAX {
            return Err(SnapshotError::corrupt(
                &self.path,
                format!("a record part of {len} bytes"),
            ));
        }
        self.read_exact(len as usize)
    }

    fn read_u32(&mut self) -> Result<u32, SnapshotError> {
        Ok(u32::from_be_bytes(self.read_array()?))
    }

    fn read_array<const N: usize>(&mut self) -> Result<[u8; N], SnapshotError> {
        let mut out = [0u8; N];
        self.input.read_exact(&mut out).map_err(|e| self.short(e))?;
        self.hasher.update(&out);
        Ok(out)
    }

    fn read_exact(&mut self, len: usize) -> Result<Vec<u8>, SnapshotError> {
        let mut out = vec![0u8; len];
        self.input.read_exact(&mut out).map_err(|e| self.short(e))?;
        self.hasher.update(&out);
        Ok(out)
    }

    fn short(&self, e: std::io::Error) -> SnapshotError {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            SnapshotError::corrupt(&self.path, "the file ends early")
        } else {
            SnapshotError::Storage(StorageError::Io(e))
        }
    }
}

/// Reads a whole snapshot file and checks it (every length, the count and the checksum)
/// without keeping its records; returns its meta.
pub fn verify_file(path: &Path) -> Result<SnapshotMeta, SnapshotError> {
    SnapshotReader::open(path)?.finish()
}
