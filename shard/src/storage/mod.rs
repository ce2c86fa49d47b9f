//! The node's fjall database and the keyspaces every shard shares (DESIGN §5): never a
//! keyspace per shard. Raft log records, the per-node log writer that group-commits them, and
//! the raft-rs `Storage` view of one replica's log.

pub mod backup;
mod keyspaces;
pub mod log_writer;
pub mod raft_log;
pub mod records;

pub use keyspaces::Storage;
pub use log_writer::{LogWriteTask, LogWriter, LogWriterHandle};
pub use raft_log::{RaftLogStore, TruncatedState};
