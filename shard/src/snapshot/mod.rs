//! Raft snapshots of one shard (decision D20): generated on the leader from one fjall
//! snapshot into a file, streamed by the node's peer transport, verified and kept in a file
//! on the follower, and installed there in one fjall batch.
//!
//! This module reads and writes files and the database; it never decides when: the replica
//! core asks for a snapshot when raft-rs needs one and installs one when raft-rs restores it.

mod generate;
mod install;
mod shard_records;
mod snapshot_file;

pub use generate::{GeneratedSnapshot, clear_snapshot_dir, generate, snapshot_dir};
pub use install::InstallRaftState;
pub use shard_records::RecordSpace;
pub use snapshot_file::{SNAPSHOT_MAGIC, SnapshotError, SnapshotMeta, SnapshotReader, verify_file};
