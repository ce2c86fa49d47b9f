//! Leases (ETCD_API.md §1.5): the client requests and answers, named after etcd's
//! `etcdserverpb` messages, and the commands the meta shard and the data shards replicate
//! for them (decision D16).

use crate::kv::ResponseHeader;
use serde::{Deserialize, Serialize};

/// etcd's `MaxLeaseTTL`: a grant above it is refused with "lease TTL exceeds maximum".
pub const LEASE_TTL_MAX_SECONDS: i64 = 9_000_000_000;

/// Asks for a lease (`LeaseGrantRequest`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseGrantRequest {
    /// Time to live in seconds; raised to the cluster's minimum.
    pub ttl: i64,
    /// The lease's ID; 0 lets the server choose one.
    pub id: i64,
}

/// The lease granted (`LeaseGrantResponse`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseGrantResponse {
    /// Response header.
    pub header: ResponseHeader,
    /// The lease's ID.
    pub id: i64,
    /// The TTL granted, in seconds (the minimum if less was asked).
    pub ttl: i64,
}

/// Revokes a lease and deletes every key attached to it (`LeaseRevokeRequest`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRevokeRequest {
    /// The lease.
    pub id: i64,
}

/// The answer to a revoke (`LeaseRevokeResponse`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRevokeResponse {
    /// Response header.
    pub header: ResponseHeader,
}

/// Renews a lease to its full TTL (`LeaseKeepAliveRequest`). Natively one request per
/// renewal (decision D16); the gRPC stream sends each of its requests this way.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseKeepAliveRequest {
    /// The lease.
    pub id: i64,
}

/// The answer to a keepalive (`LeaseKeepAliveResponse`); TTL 0 when the lease was not found,
/// as etcd answers on its stream.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseKeepAliveResponse {
    /// Response header.
    pub header: ResponseHeader,
    /// The lease.
    pub id: i64,
    /// The lease's TTL after renewal, in seconds; 0: not found.
    pub ttl: i64,
}

/// Asks how long a lease has left (`LeaseTimeToLiveRequest`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseTimeToLiveRequest {
    /// The lease.
    pub id: i64,
    /// Also list the keys attached to it, from every data shard.
    pub keys: bool,
}

/// How long a lease has left (`LeaseTimeToLiveResponse`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseTimeToLiveResponse {
    /// Response header.
    pub header: ResponseHeader,
    /// The lease.
    pub id: i64,
    /// Seconds left; -1 when the lease expired or does not exist (as etcd).
    pub ttl: i64,
    /// The TTL it was granted with.
    pub granted_ttl: i64,
    /// The attached keys, in key order, when asked.
    pub keys: Vec<Vec<u8>>,
}

/// Lists the leases (`LeaseLeasesRequest`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseLeasesRequest {}

/// Every lease (`LeaseLeasesResponse`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseLeasesResponse {
    /// Response header.
    pub header: ResponseHeader,
    /// Lease IDs in ascending order.
    pub ids: Vec<i64>,
}

/// One lease as a write attaches it: its ID and its grant's identity (the meta shard's Raft
/// index that granted it), so a data shard can tell a revoked lease from a later grant of the
/// same client-chosen ID (decision D16).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct LeaseRef {
    /// The lease ID.
    pub id: i64,
    /// The meta shard's log index of the grant.
    pub grant_index: u64,
}

/// A Put or Txn that attaches leases, with the grants it was checked against. Only nodes
/// build it, after asking the meta shard's leader (see [`LeaseLookupRequest`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeasedWrite {
    /// Every lease the write attaches, with its grant.
    pub leases: Vec<LeaseRef>,
    /// The write (a Put or a Txn).
    pub op: Box<crate::WriteOp>,
}

/// Asks the meta shard's leader for the grants of leases (nodes only).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseLookupRequest {
    /// The lease IDs.
    pub ids: Vec<i64>,
    /// The data shard the write attaching them goes to: the leader remembers it, so a
    /// revocation deletes keys only on shards that may hold some (decision D24).
    pub shard: crate::ShardId,
}

/// Every lease asked for, with its grant; `LeaseNotFound` if any is missing or being revoked.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseLookupResponse {
    /// One per lease asked.
    pub leases: Vec<LeaseRef>,
}

/// Deletes the keys of one data shard attached to a revoked lease (nodes only; the meta
/// shard's leader sends one to every data shard while it revokes).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokeLeaseKeysRequest {
    /// The data shard.
    pub shard: crate::ShardId,
    /// The lease being revoked and its grant.
    pub lease: LeaseRef,
}

/// Deletes the keys of one data shard attached to several revoked leases, in one entry at
/// one revision (nodes only; the meta shard's leader batches revocations ready together,
/// decision D24). Each lease's part does what a [`RevokeLeaseKeysRequest`] of it would.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokeLeaseKeysBatchRequest {
    /// The data shard.
    pub shard: crate::ShardId,
    /// The leases being revoked, with their grants.
    pub leases: Vec<LeaseRef>,
}

/// What a data shard did for a [`RevokeLeaseKeysRequest`] or a
/// [`RevokeLeaseKeysBatchRequest`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokeLeaseKeysResponse {
    /// Header; `revision` is the deletes' revision (or the shard's, if none).
    pub header: ResponseHeader,
    /// Keys deleted.
    pub deleted: i64,
}

/// A change to the meta shard's lease records, replicated through its Raft log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LeaseOp {
    /// Creates a lease; refused with `LeaseExists` if the ID is taken.
    Grant {
        /// The lease ID (never 0).
        id: i64,
        /// TTL in seconds, already raised to the minimum and checked against the maximum.
        ttl: i64,
    },
    /// Starts a revocation: the lease is marked revoking (gone for clients) until every data
    /// shard deleted its keys; `LeaseNotFound` if absent or already revoking.
    Revoke {
        /// The lease.
        id: i64,
        /// The grant to revoke; 0: whichever holds the ID (a client's revoke). The expiry
        /// loop names the grant it saw expire, so it never revokes a later grant of the ID.
        grant_index: u64,
    },
    /// Ends a revocation: removes the record of that grant (a no-op for any other).
    Revoked {
        /// The lease and its grant.
        lease: LeaseRef,
    },
    /// Records remaining TTLs so a new leader does not reset them (etcd's checkpoints).
    Checkpoint {
        /// (lease, remaining milliseconds); 0 clears the checkpoint (full TTL again).
        remaining: Vec<(i64, i64)>,
    },
    /// [`LeaseOp::Revoke`] of several grants in one entry (decision D24): each one held
    /// and not revoking yet is marked revoking; the others are skipped, not refused.
    RevokeBatch {
        /// The leases and the grants to revoke (never 0).
        leases: Vec<LeaseRef>,
    },
    /// [`LeaseOp::Revoked`] of several grants in one entry (decision D24).
    RevokedBatch {
        /// The leases and their grants.
        leases: Vec<LeaseRef>,
    },
}

/// A lease record as the meta shard answers it after applying a [`LeaseOp`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRecord {
    /// The lease and its grant.
    pub lease: LeaseRef,
    /// TTL granted, seconds.
    pub ttl: i64,
    /// The last checkpointed remaining TTL in milliseconds; 0: none (the full TTL).
    pub remaining_ms: i64,
    /// A revocation started and has not finished.
    pub revoking: bool,
}

/// The meta shard's answer to an applied [`LeaseOp`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseOpResponse {
    /// Header (the meta shard has no revisions; 0).
    pub header: ResponseHeader,
    /// The record the op created or changed (Grant, Revoke); `None` otherwise.
    pub record: Option<LeaseRecord>,
    /// The leases a [`LeaseOp::RevokeBatch`] marked revoking; empty otherwise.
    pub revoking: Vec<LeaseRef>,
}
