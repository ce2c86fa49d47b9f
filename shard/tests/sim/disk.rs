//! The simulated disk side of a node: the records the log writer writes at a simulated fsync,
//! and the decoding apply does before `MvccStore::apply_entries`.

use atoll_proto::{RaftCommand, ShardId, frame};
use atoll_shard::Storage;
use atoll_shard::core::LogWrite;
use atoll_shard::storage::records::{self, StateTag};
use fjall::PersistMode;
use raft::eraftpb::{Entry, EntryType};

/// The records the real log writer writes for these tasks (`storage/log_writer.rs`).
pub fn write_log_batch(storage: &Storage, writes: &[(ShardId, LogWrite)]) -> Result<(), String> {
    let err = |e: &dyn std::fmt::Display| format!("log write: {e}");
    let mut batch = storage.db.batch();
    for (shard, w) in writes {
        if let Some((from, to)) = w.stale {
            for index in from..=to {
                batch.remove(&storage.raft_log, records::log_key(*shard, index).to_vec());
            }
        }
        for e in &w.entries {
            let value = records::encode_entry(e).map_err(|e| err(&e))?;
            batch.insert(&storage.raft_log, records::log_key(*shard, e.index).to_vec(), value);
        }
        if let Some(hs) = &w.hard_state {
            records::put_hard_state(storage, &mut batch, *shard, hs).map_err(|e| err(&e))?;
        }
        if let Some((first, truncated)) = w.truncate {
            for index in first..=truncated.index {
                batch.remove(&storage.raft_log, records::log_key(*shard, index).to_vec());
            }
            records::put_state(storage, &mut batch, *shard, StateTag::Truncated, &truncated)
                .map_err(|e| err(&e))?;
        }
    }
    if batch.is_empty() {
        return Ok(());
    }
    batch.commit().map_err(|e| err(&e))?;
    storage.db.persist(PersistMode::Buffer).map_err(|e| err(&e))
}

/// An entry's command, as the apply worker decodes it.
pub fn decode_command(e: &Entry) -> Option<RaftCommand> {
    if e.get_entry_type() != EntryType::EntryNormal || e.data.is_empty() {
        return None;
    }
    frame::decode_frame::<RaftCommand>(&e.data, atoll_proto::limits::FRAME_BYTES_MAX).ok()
}
