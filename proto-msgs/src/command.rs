//! Commands replicated through a shard's Raft log. They cross process boundaries inside Raft
//! messages, so they live here and are encoded with the same versioned codec as frames.

use crate::kv::{CompactionRequest, DeleteRangeRequest, PutRequest, TxnRequest};
use serde::{Deserialize, Serialize};

/// A write proposed to a shard's Raft group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RaftCommand {
    /// The revision the leader stamped: `max(last + 1, clock micros)`. Apply uses
    /// `max(stamp, applied + 1)` so every replica computes the same revision even if a new
    /// leader's clock is behind (DESIGN §4).
    pub revision_stamp: i64,
    /// The write.
    pub op: WriteOp,
}

/// One replicated write.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum WriteOp {
    /// A put.
    Put(PutRequest),
    /// A delete of a key or range.
    DeleteRange(DeleteRangeRequest),
    /// A transaction.
    Txn(TxnRequest),
    /// Discard history before a revision.
    Compact(CompactionRequest),
}
