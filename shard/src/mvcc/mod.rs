//! The MVCC store: etcd v3 semantics (revisions, versions, tombstones, Range at a revision,
//! Txn, DeleteRange, Compact, prev_kv) over the node's shared fjall keyspaces (DESIGN §4–§5).
//!
//! Layout: `mvcc` holds `encoded key ‖ !revision` → version record, `changes` holds
//! `revision ‖ encoded key` → change record, and `raft_state` holds each shard's
//! [`ApplyState`] (written in the same batch as the data it covers) and compaction cursor.
//! Keys are not prefixed by shard: a shard is a key range, so a split is metadata only.
//!
//! This module must not hold anything per key in memory nor rebuild an index at start-up,
//! and must not sync the journal: the log writer owns durability (DESIGN §3).
//!
//! Where this store knowingly differs from etcd v3.5 (each choice is explained where it is
//! made):
//! - a nested `TxnResponse` header carries the revision; etcd leaves it zero;
//! - the Txn overlap check also refuses a put under a `range_end = "\0"` delete and a put in
//!   an earlier sibling Txn overlapping a later sibling's delete (etcd misses both), because
//!   the change log holds each key at most once per revision;
//! - a negative revision on a Range inside a Txn means the newest (etcd calls it compacted);
//! - `Compact(0)` answers `Compacted` (etcd accepts it once on a fresh store);
//! - sort ties keep key order (etcd's unstable sort does for up to 12 keys);
//! - a put outside the shard's range at apply answers `WrongShard` with epoch 0 (the replica,
//!   which knows the epoch, may fill it in);
//! - a put attaches a lease only inside a `WriteOp::Leased` naming the grant the meta shard's
//!   leader vouched for (decision D16); any other lease is refused as not found.

mod apply_batch;
mod apply_state;
mod change_read;
pub(crate) mod codec;
mod compact;
mod compact_hash;
mod compare;
mod dir_counts;
mod hash;
mod interval_set;
mod mvcc_limits;
mod range;
mod retention;
mod scan;
mod shard_range;
mod store;
mod validate;
mod view;
pub(crate) mod write_txn;

pub use apply_state::ApplyState;
pub(crate) use change_read::{ChangeChunk, change_cursor, cursor_after};
pub use compact::CompactProgress;
pub use compact_hash::CompactionHash;
pub use dir_counts::{COUNTED_DEPTH_MAX, COUNTED_PREFIX_BYTES_MAX};
pub use hash::StateHash;
pub use mvcc_limits::MvccLimits;
pub use range::Counting;
pub use retention::{RetentionScan, RetentionStep};
pub use shard_range::ShardRange;
pub use store::{Applying, MvccStore, WriteResponse};
pub use validate::{validate_range, validate_write};
