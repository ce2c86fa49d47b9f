//! The native client protocol: one request and one response per QUIC stream, each one frame
//! (see [`crate::frame`]), except a watch stream, which opens with [`NativeRequest::Watch`]
//! and stays open in both directions (see [`crate::watch`]).

use crate::error::AtollError;
use crate::kv::*;
use crate::lease::*;
use crate::watch::{WatchRequest, WatchResponse};
use serde::{Deserialize, Serialize};

/// A request from a native client (atollctl, the router library, atoll-bench).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum NativeRequest {
    /// Read a key or range.
    Range(RangeRequest),
    /// Write a key.
    Put(PutRequest),
    /// Delete a key or range.
    DeleteRange(DeleteRangeRequest),
    /// A transaction.
    Txn(TxnRequest),
    /// Discard history.
    Compact(CompactionRequest),
    /// The node's status.
    Status(StatusRequest),
    /// The hash of every local shard's state (etcd's HashKV, per shard).
    HashKv(HashKvRequest),
    /// Close a shard's revisions (between nodes only, see [`crate::CloseRequest`]).
    Close(crate::CloseRequest),
    /// Open a watch stream with its first request (normally a create); the stream stays
    /// open for more [`WatchRequest`] frames and carries [`NativeResponse::Watch`] back.
    Watch(WatchRequest),
    /// Discard the history of one shard only: what a node forwards to each shard's leader
    /// when it serves a [`NativeRequest::Compact`], which covers every shard.
    CompactShard(CompactShardRequest),
    /// Grant a lease.
    LeaseGrant(LeaseGrantRequest),
    /// Revoke a lease and delete its keys.
    LeaseRevoke(LeaseRevokeRequest),
    /// Renew a lease once (a keepalive stream sends one per renewal).
    LeaseKeepAlive(LeaseKeepAliveRequest),
    /// How long a lease has left.
    LeaseTimeToLive(LeaseTimeToLiveRequest),
    /// List the leases.
    LeaseLeases(LeaseLeasesRequest),
    /// Look up lease grants at the meta shard's leader (between nodes only).
    LeaseLookup(LeaseLookupRequest),
    /// A write attaching checked leases (between nodes only).
    LeasedWrite(LeasedWrite),
    /// Delete one data shard's keys of a revoked lease (between nodes only).
    RevokeLeaseKeys(RevokeLeaseKeysRequest),
    /// List the members.
    MemberList(crate::member::MemberListRequest),
    /// Add a member.
    MemberAdd(crate::member::MemberAddRequest),
    /// Remove a member.
    MemberRemove(crate::member::MemberIdRequest),
    /// Make a learner a voter.
    MemberPromote(crate::member::MemberIdRequest),
    /// Change a member's peer URLs.
    MemberUpdate(crate::member::MemberUpdateRequest),
    /// A change of a member's attributes, forwarded to the meta shard's leader (between
    /// nodes only: a node publishing its own name and client URLs).
    MemberWrite(crate::member::MemberWrite),
    /// Delete one data shard's keys of several revoked leases (between nodes only).
    RevokeLeaseKeysBatch(RevokeLeaseKeysBatchRequest),
    /// The shard map held by the meta shard, with its epoch (decision D23).
    ShardMap(crate::shard_map::ShardMapRequest),
    /// A keyed write sent by a router straight to the node it believes leads the write's
    /// shard: served only there; anywhere else answered `NotLeader` with the leader as the
    /// hint (or `WrongShard` for a stale map), never forwarded (DESIGN §6, decision D23).
    AtLeader(AtLeaderRequest),
    /// A request of etcd's `Auth` service (decision D21).
    Auth(crate::auth::AuthRequest),
    /// A request sent with a token (decision D21).
    WithToken(crate::auth::TokenRequest),
    /// A change of the auth store, forwarded to the meta shard's leader (between nodes
    /// only: the receiving node checked the caller and hashed any password).
    AuthWrite(crate::auth::AuthOp),
}

/// A keyed write (Put, DeleteRange or Txn within one shard) routed by the client to the
/// shard's leader, with the epoch of the shard map the client routed it by.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AtLeaderRequest {
    /// The version (epoch) of the client's shard map; a node whose map is newer answers
    /// `WrongShard` with its own, so the client refreshes.
    pub map_version: u64,
    /// The write.
    pub write: KeyedWrite,
}

/// A write whose keys name its shard. Its own type rather than a boxed [`NativeRequest`],
/// so a frame cannot nest requests without bound.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyedWrite {
    /// A put.
    Put(PutRequest),
    /// A delete of a key or range within one shard.
    DeleteRange(DeleteRangeRequest),
    /// A transaction within one shard.
    Txn(TxnRequest),
}

impl KeyedWrite {
    /// The same write as a plain request.
    pub fn into_request(self) -> NativeRequest {
        match self {
            KeyedWrite::Put(r) => NativeRequest::Put(r),
            KeyedWrite::DeleteRange(r) => NativeRequest::DeleteRange(r),
            KeyedWrite::Txn(r) => NativeRequest::Txn(r),
        }
    }

    /// The key that names the write's shard: a Txn's first compared or written key.
    pub fn routing_key(&self) -> &[u8] {
        match self {
            KeyedWrite::Put(r) => &r.key,
            KeyedWrite::DeleteRange(r) => &r.key,
            KeyedWrite::Txn(t) => txn_first_key(t),
        }
    }
}

fn txn_first_key(txn: &TxnRequest) -> &[u8] {
    if let Some(c) = txn.compare.first() {
        return &c.key;
    }
    for op in txn.success.iter().chain(&txn.failure) {
        match op {
            RequestOp::Range(r) => return &r.key,
            RequestOp::Put(p) => return &p.key,
            RequestOp::DeleteRange(d) => return &d.key,
            RequestOp::Txn(t) => {
                let key = txn_first_key(t);
                if !key.is_empty() {
                    return key;
                }
            }
        }
    }
    &[]
}

/// A compaction of one shard.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompactShardRequest {
    /// The shard to compact.
    pub shard: crate::ShardId,
    /// What to compact.
    pub compaction: CompactionRequest,
}

impl NativeRequest {
    /// Whether sending the request twice has the same effect as sending it once, so a client
    /// may retry it after a timeout.
    pub fn is_idempotent(&self) -> bool {
        match self {
            NativeRequest::Range(_)
            | NativeRequest::Status(_)
            | NativeRequest::HashKv(_)
            | NativeRequest::Compact(_)
            | NativeRequest::CompactShard(_)
            | NativeRequest::Close(_)
            | NativeRequest::Watch(_)
            | NativeRequest::LeaseRevoke(_)
            | NativeRequest::LeaseKeepAlive(_)
            | NativeRequest::LeaseTimeToLive(_)
            | NativeRequest::LeaseLeases(_)
            | NativeRequest::LeaseLookup(_)
            | NativeRequest::RevokeLeaseKeys(_)
            | NativeRequest::RevokeLeaseKeysBatch(_)
            | NativeRequest::MemberList(_)
            | NativeRequest::MemberPromote(_)
            | NativeRequest::MemberUpdate(_)
            | NativeRequest::MemberWrite(_)
            | NativeRequest::ShardMap(_) => true,
            NativeRequest::AtLeader(r) => match &r.write {
                KeyedWrite::Txn(txn) => txn_is_read_only(txn),
                KeyedWrite::Put(_) | KeyedWrite::DeleteRange(_) => false,
            },
            NativeRequest::Txn(txn) => txn_is_read_only(txn),
            NativeRequest::Auth(a) => matches!(
                a,
                crate::auth::AuthRequest::Status
                    | crate::auth::AuthRequest::Authenticate { .. }
                    | crate::auth::AuthRequest::UserGet { .. }
                    | crate::auth::AuthRequest::UserList
                    | crate::auth::AuthRequest::RoleGet { .. }
                    | crate::auth::AuthRequest::RoleList
            ),
            NativeRequest::WithToken(t) => t.request.is_idempotent(),
            // A grant with a server-chosen ID sent twice grants two leases.
            NativeRequest::Put(_)
            | NativeRequest::DeleteRange(_)
            | NativeRequest::LeaseGrant(_)
            | NativeRequest::LeasedWrite(_)
            // A second add adds a second member; a second remove finds none.
            | NativeRequest::MemberAdd(_)
            | NativeRequest::MemberRemove(_)
            | NativeRequest::AuthWrite(_) => false,
        }
    }
}

impl NativeRequest {
    /// Whether only nodes may send the request: a node's part of a request it is serving
    /// (closing revisions, compacting one shard, a write whose leases it checked, a lease
    /// lookup or key revocation). A client sending one could skip those checks.
    pub fn is_peer_only(&self) -> bool {
        match self {
            NativeRequest::Close(_)
            | NativeRequest::CompactShard(_)
            | NativeRequest::LeaseLookup(_)
            | NativeRequest::LeasedWrite(_)
            | NativeRequest::RevokeLeaseKeys(_)
            | NativeRequest::RevokeLeaseKeysBatch(_)
            | NativeRequest::MemberWrite(_)
            | NativeRequest::AuthWrite(_) => true,
            NativeRequest::Range(_)
            | NativeRequest::Put(_)
            | NativeRequest::DeleteRange(_)
            | NativeRequest::Txn(_)
            | NativeRequest::Compact(_)
            | NativeRequest::Status(_)
            | NativeRequest::HashKv(_)
            | NativeRequest::Watch(_)
            | NativeRequest::LeaseGrant(_)
            | NativeRequest::LeaseRevoke(_)
            | NativeRequest::LeaseKeepAlive(_)
            | NativeRequest::LeaseTimeToLive(_)
            | NativeRequest::LeaseLeases(_)
            | NativeRequest::MemberList(_)
            | NativeRequest::MemberAdd(_)
            | NativeRequest::MemberRemove(_)
            | NativeRequest::MemberPromote(_)
            | NativeRequest::MemberUpdate(_)
            | NativeRequest::ShardMap(_)
            | NativeRequest::AtLeader(_)
            | NativeRequest::Auth(_) => false,
            NativeRequest::WithToken(t) => t.request.is_peer_only(),
        }
    }
}

fn txn_is_read_only(txn: &TxnRequest) -> bool {
    txn.success.iter().chain(txn.failure.iter()).all(|op| match op {
        RequestOp::Range(_) => true,
        RequestOp::Txn(inner) => txn_is_read_only(inner),
        RequestOp::Put(_) | RequestOp::DeleteRange(_) => false,
    })
}

/// The answer to a [`NativeRequest`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum NativeResponse {
    /// Answer to a range read.
    Range(RangeResponse),
    /// Answer to a put.
    Put(PutResponse),
    /// Answer to a delete.
    DeleteRange(DeleteRangeResponse),
    /// Answer to a transaction.
    Txn(TxnResponse),
    /// Answer to a compaction.
    Compact(CompactionResponse),
    /// The node's status.
    Status(StatusResponse),
    /// The hashes of the node's shards.
    HashKv(HashKvResponse),
    /// Answer to a close.
    Close(crate::CloseResponse),
    /// One response on a watch stream.
    Watch(WatchResponse),
    /// A lease granted.
    LeaseGrant(LeaseGrantResponse),
    /// A lease revoked.
    LeaseRevoke(LeaseRevokeResponse),
    /// A lease renewed.
    LeaseKeepAlive(LeaseKeepAliveResponse),
    /// A lease's time to live.
    LeaseTimeToLive(LeaseTimeToLiveResponse),
    /// The leases.
    LeaseLeases(LeaseLeasesResponse),
    /// Lease grants looked up.
    LeaseLookup(LeaseLookupResponse),
    /// A data shard's keys of a revoked lease deleted.
    RevokeLeaseKeys(RevokeLeaseKeysResponse),
    /// The request failed.
    Error(AtollError),
    /// The members, after a change when the request was one.
    Members(crate::member::MembersResponse),
    /// The shard map.
    ShardMap(crate::shard_map::ShardMapResponse),
    /// The answer to an auth request (decision D21).
    Auth(crate::auth::AuthResponse),
}

/// Asks a node for its status (`etcdctl endpoint status`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusRequest {}

/// A node's status, shaped like etcd's `StatusResponse`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusResponse {
    /// Response header.
    pub header: ResponseHeader,
    /// The server's version.
    pub version: String,
    /// Bytes the node's storage uses on disk.
    pub db_size: i64,
    /// The member ID of the data shard's leader.
    pub leader: u64,
    /// The data shard's last Raft index.
    pub raft_index: u64,
    /// The data shard's Raft term.
    pub raft_term: u64,
    /// The data shard's applied index.
    pub raft_applied_index: u64,
    /// Alarms or other errors the node reports.
    pub errors: Vec<String>,
    /// Whether this member is a learner of the data shard.
    pub is_learner: bool,
}

/// Asks a node for the hash of each shard it hosts, as its replica holds it (etcd's
/// `HashKV`, per shard): replicas that applied the same log agree at the same revision.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HashKvRequest {
    /// Revision to hash at; `<= 0` is each shard's current revision.
    pub revision: i64,
}

/// One shard's hash on one node.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardHash {
    /// The shard.
    pub shard: crate::ShardId,
    /// Revision the hash covers.
    pub revision: i64,
    /// The shard's compacted revision.
    pub compact_revision: i64,
    /// Applied Raft index of the replica when hashed.
    pub applied_index: u64,
    /// crc32 of the state (see `MvccStore::hash_kv`).
    pub hash: u32,
}

/// The hashes of every shard a node hosts, in shard order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HashKvResponse {
    /// Response header.
    pub header: ResponseHeader,
    /// One per local shard.
    pub hashes: Vec<ShardHash>,
}
