//! Errors that travel on the wire. Each variant has a stable numeric [`ErrorCode`] (never
//! reused) and, where etcd has the same error, etcd's exact text and gRPC code: clients match
//! on the strings (ETCD_API.md §1.9).

use crate::ids::{NodeId, ShardId};
use serde::{Deserialize, Serialize};

/// Stable wire code of an [`AtollError`]. Numbers are never reused.
pub type ErrorCode = u16;

/// gRPC status codes used by the gateway (numbering from the gRPC spec).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum GrpcCode {
    /// The request was malformed.
    InvalidArgument = 3,
    /// The deadline passed.
    DeadlineExceeded = 4,
    /// A named entity does not exist.
    NotFound = 5,
    /// The entity to create exists.
    AlreadyExists = 6,
    /// A caller is not allowed.
    PermissionDenied = 7,
    /// A resource ran out.
    ResourceExhausted = 8,
    /// The system is not in the state the operation needs.
    FailedPrecondition = 9,
    /// A revision outside the stored window.
    OutOfRange = 11,
    /// Not implemented here.
    Unimplemented = 12,
    /// An internal invariant broke.
    Internal = 13,
    /// Retry later.
    Unavailable = 14,
    /// Data was lost or corrupted.
    DataLoss = 15,
    /// Unauthenticated.
    Unauthenticated = 16,
}

/// An error answered to a client or a peer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum AtollError {
    /// The revision asked for was compacted away.
    #[error("etcdserver: mvcc: required revision has been compacted")]
    Compacted {
        /// The shard's compacted revision.
        compact_revision: i64,
    },
    /// The revision asked for is newer than the store.
    #[error("etcdserver: mvcc: required revision is a future revision")]
    FutureRevision {
        /// The store's current revision.
        current_revision: i64,
    },
    /// The request is larger than `--max-request-bytes`.
    #[error("etcdserver: request is too large")]
    RequestTooLarge {
        /// Size of the request.
        request_bytes: u64,
        /// The configured limit.
        limit_bytes: u64,
    },
    /// A Txn has more operations than `--max-txn-ops`.
    #[error("etcdserver: too many operations in txn request")]
    TooManyTxnOps {
        /// The configured limit.
        limit: u64,
    },
    /// A Txn branch writes the same key twice.
    #[error("etcdserver: duplicate key given in txn request")]
    DuplicateKey,
    /// `ignore_value`/`ignore_lease` on a key that does not exist.
    #[error("etcdserver: key not found")]
    KeyNotFound,
    /// The request has an empty key.
    #[error("etcdserver: key is not provided")]
    EmptyKey,
    /// `ignore_value` was set together with a value.
    #[error("etcdserver: value is provided")]
    ValueProvided,
    /// `ignore_lease` was set together with a lease.
    #[error("etcdserver: lease is provided")]
    LeaseProvided,
    /// The lease does not exist.
    #[error("etcdserver: requested lease not found")]
    LeaseNotFound,
    /// This replica does not lead the shard; try the hinted node.
    #[error("etcdserver: not leader")]
    NotLeader {
        /// The shard asked.
        shard: ShardId,
        /// The leader this replica believes in, if any.
        leader_hint: Option<NodeId>,
    },
    /// The shard has no leader right now.
    #[error("etcdserver: no leader")]
    NoLeader {
        /// The shard asked.
        shard: ShardId,
    },
    /// The request did not complete in time; it may or may not have been applied.
    #[error("etcdserver: request timed out")]
    Timeout,
    /// A queue is full; retry after backing off.
    #[error("etcdserver: too many requests")]
    Busy {
        /// The name of the full queue's limit.
        limit: String,
    },
    /// The request was routed with a stale shard map.
    #[error("atoll: key is not in shard {shard} at epoch {epoch}; refresh the shard map")]
    WrongShard {
        /// The shard asked.
        shard: ShardId,
        /// Its current epoch.
        epoch: u64,
    },
    /// A Txn touches keys of more than one shard.
    #[error("atoll: a txn whose keys span shards is not supported; keep its keys in one shard")]
    CrossShardTxn,
    /// The request could not be decoded or is invalid.
    #[error("atoll: malformed request: {reason}")]
    Malformed {
        /// What was wrong.
        reason: String,
    },
    /// The frame's version is unknown.
    #[error("atoll: unsupported frame version {version}; upgrade the client or the server")]
    UnsupportedVersion {
        /// The version byte received.
        version: u8,
    },
    /// The node stopped accepting writes after a storage failure (a failed fsync is never
    /// retried: DESIGN §5).
    #[error("atoll: node storage failed and the node is stopping: {reason}")]
    StorageFailed {
        /// The storage error.
        reason: String,
    },
    /// The node is shutting down.
    #[error("atoll: node is shutting down")]
    Stopping,
    /// The proposal's entry was replaced by a new leader's log: it was not applied.
    #[error("etcdserver: leader changed")]
    LeaderChanged,
    /// A leadership transfer names a node that is not a voter of the shard.
    #[error("etcdserver: bad leader transferee")]
    BadLeaderTransferee,
    /// A grant names a lease ID that exists.
    #[error("etcdserver: lease already exists")]
    LeaseExists,
    /// A grant asks for more than `MaxLeaseTTL` (etcd's `ErrGRPCLeaseTTLTooLarge`).
    #[error("etcdserver: too large lease TTL")]
    LeaseTtlTooLarge,
    /// `member add` chose an ID that a member has or had.
    #[error("etcdserver: member ID already exist")]
    MemberExists,
    /// `member add` or `member update` gave peer URLs another member has.
    #[error("etcdserver: Peer URLs already exists")]
    PeerUrlExists,
    /// No member has the ID (or it was removed).
    #[error("etcdserver: member not found")]
    MemberNotFound,
    /// `member promote` named a voter.
    #[error("etcdserver: can only promote a learner member")]
    MemberNotLearner,
    /// `member promote` named a learner that has not caught up with the leader.
    #[error("etcdserver: can only promote a learner member which is in sync with leader")]
    LearnerNotReady,
    /// Peer URLs that are not `http(s)://host:port`.
    #[error("etcdserver: given member URLs are invalid")]
    MemberBadUrls,
    /// The change would leave the voters without a quorum of started members.
    #[error("etcdserver: re-configuration failed due to not enough started members")]
    NotEnoughStartedMembers,
    /// A learner was asked for an RPC etcd's learners do not serve (decision D22).
    #[error("etcdserver: rpc not supported for learner")]
    NotSupportedForLearner,
    /// Auth request while auth is disabled.
    #[error("etcdserver: authentication is not enabled")]
    AuthNotEnabled,
    /// AuthEnable without a root user.
    #[error("etcdserver: root user does not exist")]
    RootUserNotExist,
    /// AuthEnable while the root user lacks the root role.
    #[error("etcdserver: root user does not have root role")]
    RootRoleNotExist,
    /// UserAdd of an existing user.
    #[error("etcdserver: user name already exists")]
    UserAlreadyExist,
    /// A user name is empty, or a request came without a token while auth is enabled.
    #[error("etcdserver: user name is empty")]
    UserEmpty,
    /// No such user.
    #[error("etcdserver: user name not found")]
    UserNotFound,
    /// RoleAdd of an existing role.
    #[error("etcdserver: role name already exists")]
    RoleAlreadyExist,
    /// No such role.
    #[error("etcdserver: role name not found")]
    RoleNotFound,
    /// A role name is empty.
    #[error("etcdserver: role name is empty")]
    RoleEmpty,
    /// Authenticate with a wrong user or password.
    #[error("etcdserver: authentication failed, invalid user ID or password")]
    AuthFailed,
    /// The caller may not do this.
    #[error("etcdserver: permission denied")]
    PermissionDenied,
    /// UserRevokeRole of a role the user does not hold.
    #[error("etcdserver: role is not granted to the user")]
    RoleNotGranted,
    /// RoleRevokePermission of a permission the role does not hold.
    #[error("etcdserver: permission is not granted to the role")]
    PermissionNotGranted,
    /// A token that is malformed, forged, expired or of an unknown user.
    #[error("etcdserver: invalid auth token")]
    InvalidAuthToken,
    /// Deleting root, or revoking root's root role, while auth is enabled.
    #[error("etcdserver: invalid auth management")]
    InvalidAuthMgmt,
    /// A token issued before the auth store last changed: authenticate again.
    #[error("etcdserver: revision of auth store is old")]
    AuthOldRevision,
    /// A voter change while a voter has not been connected to the meta leader for the last
    /// 5 s (the second half of etcd's strict reconfiguration check).
    #[error("etcdserver: unhealthy cluster")]
    Unhealthy,
}

impl AtollError {
    /// The stable wire code of this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            AtollError::Compacted { .. } => 1,
            AtollError::FutureRevision { .. } => 2,
            AtollError::RequestTooLarge { .. } => 3,
            AtollError::TooManyTxnOps { .. } => 4,
            AtollError::DuplicateKey => 5,
            AtollError::KeyNotFound => 6,
            AtollError::EmptyKey => 7,
            AtollError::ValueProvided => 8,
            AtollError::LeaseProvided => 9,
            AtollError::LeaseNotFound => 10,
            AtollError::NotLeader { .. } => 11,
            AtollError::NoLeader { .. } => 12,
            AtollError::Timeout => 13,
            AtollError::Busy { .. } => 14,
            AtollError::WrongShard { .. } => 15,
            AtollError::CrossShardTxn => 16,
            AtollError::Malformed { .. } => 17,
            AtollError::UnsupportedVersion { .. } => 18,
            AtollError::StorageFailed { .. } => 19,
            AtollError::Stopping => 20,
            AtollError::LeaderChanged => 21,
            AtollError::BadLeaderTransferee => 22,
            AtollError::LeaseExists => 23,
            AtollError::LeaseTtlTooLarge => 24,
            AtollError::MemberExists => 25,
            AtollError::PeerUrlExists => 26,
            AtollError::MemberNotFound => 27,
            AtollError::MemberNotLearner => 28,
            AtollError::LearnerNotReady => 29,
            AtollError::MemberBadUrls => 30,
            AtollError::NotEnoughStartedMembers => 31,
            AtollError::NotSupportedForLearner => 32,
            AtollError::AuthNotEnabled => 33,
            AtollError::RootUserNotExist => 34,
            AtollError::RootRoleNotExist => 35,
            AtollError::UserAlreadyExist => 36,
            AtollError::UserEmpty => 37,
            AtollError::UserNotFound => 38,
            AtollError::RoleAlreadyExist => 39,
            AtollError::RoleNotFound => 40,
            AtollError::RoleEmpty => 41,
            AtollError::AuthFailed => 42,
            AtollError::PermissionDenied => 43,
            AtollError::RoleNotGranted => 44,
            AtollError::PermissionNotGranted => 45,
            AtollError::InvalidAuthToken => 46,
            AtollError::InvalidAuthMgmt => 47,
            AtollError::AuthOldRevision => 48,
            AtollError::Unhealthy => 49,
        }
    }

    /// The gRPC status code etcd answers with for the same error.
    pub fn grpc_code(&self) -> GrpcCode {
        match self {
            AtollError::Compacted { .. }
            | AtollError::FutureRevision { .. }
            | AtollError::LeaseTtlTooLarge => GrpcCode::OutOfRange,
            AtollError::RequestTooLarge { .. }
            | AtollError::TooManyTxnOps { .. }
            | AtollError::DuplicateKey
            | AtollError::KeyNotFound
            | AtollError::EmptyKey
            | AtollError::ValueProvided
            | AtollError::LeaseProvided
            | AtollError::CrossShardTxn
            | AtollError::Malformed { .. }
            | AtollError::UnsupportedVersion { .. } => GrpcCode::InvalidArgument,
            AtollError::LeaseNotFound | AtollError::MemberNotFound => GrpcCode::NotFound,
            AtollError::MemberExists | AtollError::PeerUrlExists => GrpcCode::AlreadyExists,
            AtollError::MemberBadUrls => GrpcCode::InvalidArgument,
            AtollError::NotLeader { .. }
            | AtollError::WrongShard { .. }
            | AtollError::BadLeaderTransferee
            | AtollError::LeaseExists
            | AtollError::MemberNotLearner
            | AtollError::LearnerNotReady
            | AtollError::NotEnoughStartedMembers
            | AtollError::NotSupportedForLearner
            | AtollError::AuthNotEnabled
            | AtollError::RootUserNotExist
            | AtollError::RootRoleNotExist
            | AtollError::UserAlreadyExist
            | AtollError::UserNotFound
            | AtollError::RoleAlreadyExist
            | AtollError::RoleNotFound
            | AtollError::RoleNotGranted
            | AtollError::PermissionNotGranted => GrpcCode::FailedPrecondition,
            AtollError::UserEmpty
            | AtollError::RoleEmpty
            | AtollError::AuthFailed
            | AtollError::InvalidAuthMgmt
            | AtollError::AuthOldRevision => GrpcCode::InvalidArgument,
            AtollError::PermissionDenied => GrpcCode::PermissionDenied,
            AtollError::InvalidAuthToken => GrpcCode::Unauthenticated,
            // etcd's ErrGRPCTooManyRequests.
            AtollError::Busy { .. } => GrpcCode::ResourceExhausted,
            AtollError::NoLeader { .. }
            | AtollError::Timeout
            | AtollError::Stopping
            | AtollError::LeaderChanged
            | AtollError::Unhealthy => GrpcCode::Unavailable,
            AtollError::StorageFailed { .. } => GrpcCode::Internal,
        }
    }

    /// Whether retrying the same request later can succeed without changing it. Non-idempotent
    /// requests must still not be retried after [`AtollError::Timeout`].
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            AtollError::NotLeader { .. }
                | AtollError::NoLeader { .. }
                | AtollError::Busy { .. }
                | AtollError::WrongShard { .. }
                | AtollError::Timeout
                | AtollError::LeaderChanged
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etcd_strings_are_exact() {
        let compacted = AtollError::Compacted { compact_revision: 5 };
        assert_eq!(compacted.to_string(), "etcdserver: mvcc: required revision has been compacted");
        let future = AtollError::FutureRevision { current_revision: 5 };
        assert_eq!(future.to_string(), "etcdserver: mvcc: required revision is a future revision");
        let large = AtollError::RequestTooLarge { request_bytes: 2, limit_bytes: 1 };
        assert_eq!(large.to_string(), "etcdserver: request is too large");
        assert_eq!(
            AtollError::TooManyTxnOps { limit: 128 }.to_string(),
            "etcdserver: too many operations in txn request"
        );
        assert_eq!(AtollError::LeaseNotFound.to_string(), "etcdserver: requested lease not found");
        assert_eq!(AtollError::LeaseExists.to_string(), "etcdserver: lease already exists");
        assert_eq!(AtollError::LeaseTtlTooLarge.to_string(), "etcdserver: too large lease TTL");
        assert_eq!(AtollError::LeaseTtlTooLarge.grpc_code(), GrpcCode::OutOfRange);
        assert_eq!(AtollError::LeaseExists.grpc_code(), GrpcCode::FailedPrecondition);
        let learner = AtollError::NotSupportedForLearner;
        assert_eq!(learner.to_string(), "etcdserver: rpc not supported for learner");
        assert_eq!(learner.grpc_code(), GrpcCode::FailedPrecondition);
        assert_eq!(AtollError::InvalidAuthToken.to_string(), "etcdserver: invalid auth token");
        assert_eq!(AtollError::InvalidAuthToken.grpc_code(), GrpcCode::Unauthenticated);
        assert_eq!(AtollError::PermissionDenied.grpc_code(), GrpcCode::PermissionDenied);
        assert_eq!(
            AtollError::AuthOldRevision.to_string(),
            "etcdserver: revision of auth store is old"
        );
        assert_eq!(AtollError::UserEmpty.grpc_code(), GrpcCode::InvalidArgument);
        assert_eq!(AtollError::Unhealthy.to_string(), "etcdserver: unhealthy cluster");
        assert_eq!(AtollError::Unhealthy.grpc_code(), GrpcCode::Unavailable);
    }
}
