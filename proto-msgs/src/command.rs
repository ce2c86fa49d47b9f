//! Commands replicated through a shard's Raft log. They cross process boundaries inside Raft
//! messages, so they live here and are encoded with the same versioned codec as frames.

use crate::ids::ShardId;
use crate::kv::{CompactionRequest, DeleteRangeRequest, PutRequest, ResponseHeader, TxnRequest};
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
    /// Close revisions up to one: the shard never writes at or below it afterwards.
    Close(CloseRequest),
    /// A change to the lease records (meta shard only).
    Lease(crate::lease::LeaseOp),
    /// A Put or Txn attaching leases, with the grants they were checked against (data
    /// shards; decision D16).
    Leased(crate::lease::LeasedWrite),
    /// Deletes the keys attached to a revoked lease (data shards; decision D16).
    RevokeLeaseKeys(crate::lease::RevokeLeaseKeysRequest),
    /// A change of a member's attributes (meta shard only; decision D18).
    Member(crate::member::MemberWrite),
    /// Deletes the keys attached to several revoked leases in one entry (data shards;
    /// decision D24).
    RevokeLeaseKeysBatch(crate::lease::RevokeLeaseKeysBatchRequest),
    /// A change of the shard map record (meta shard only; decision D23).
    ShardMap(crate::shard_map::ShardMapWrite),
    /// A change of the auth store (meta shard only; decision D21).
    Auth(crate::auth::AuthOp),
}

impl WriteOp {
    /// Whether the write serves a lease revocation, which goes ahead of ordinary traffic:
    /// it is not refused by the bound on pending proposals (etcd 3.7 prioritises
    /// LeaseRevoke under overload, #20492), only by its own.
    pub fn is_revocation(&self) -> bool {
        matches!(
            self,
            WriteOp::Lease(
                crate::lease::LeaseOp::Revoke { .. }
                    | crate::lease::LeaseOp::Revoked { .. }
                    | crate::lease::LeaseOp::RevokeBatch { .. }
                    | crate::lease::LeaseOp::RevokedBatch { .. }
            ) | WriteOp::RevokeLeaseKeys(_)
                | WriteOp::RevokeLeaseKeysBatch(_)
        )
    }
}

/// Closes a shard's revisions up to `revision` (DESIGN §4, closed revisions): once applied,
/// every later write of the shard gets a higher revision, so a watch spanning shards may
/// deliver events up to it. Sent by nodes only (a watch merging shards asks the shard's
/// leader for it when the shard is idle); clients cannot send it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CloseRequest {
    /// The shard to close.
    pub shard: ShardId,
    /// Revisions up to this one are closed.
    pub revision: i64,
}

/// The answer to a [`CloseRequest`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CloseResponse {
    /// The header; `revision` is the shard's revision after the close (at least the one
    /// asked).
    pub header: ResponseHeader,
}
