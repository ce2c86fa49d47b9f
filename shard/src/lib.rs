//! One replica of one shard: the Raft driver (raft-rs `RawNode`), apply of committed entries
//! into the MVCC store on fjall, the per-node log writer that group-commits the Raft appends of
//! every replica, the reads served from fjall snapshots, the watch hub that serves
//! watches from the change log and from what apply publishes, and the compactor that removes
//! history below the compacted revision in the background and runs auto-compaction, and the
//! Raft snapshots of one shard (generated into a file, installed in one batch).
//!
//! This crate must not know about the network or the router; of the shard map it knows the
//! range a replica owns and, on the meta shard, how the map record is stored (decision D23): the node wires replicas to transports, and the router decides where keys go.

#![warn(missing_docs)]

pub mod actors;
pub mod apply_worker;
pub mod auth;
pub mod config;
pub mod core;
pub mod error;
pub mod lease;
pub mod limits;
pub mod member;
pub mod mvcc;
pub mod peer_codec;
pub mod shard_map_record;
pub mod snapshot;
pub mod storage;
pub mod watch;

pub use error::{ShardError, StorageError};
pub use storage::Storage;

/// Raft's conf change kinds, for callers that propose conf changes (decision D18).
pub use raft::eraftpb::ConfChangeType;
