//! Messages shared by the replica actor and its callers.

use crate::apply_worker::{Applied, WriteReply};
use actix::Message;
use atoll_proto::{AtollError, NodeId, WriteOp};
use std::sync::atomic::{AtomicU64, Ordering};

/// Propose a write; the result arrives on `reply` once applied.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Propose {
    /// The write, already validated.
    pub op: WriteOp,
    /// Where the result goes.
    pub reply: WriteReply,
}

/// What a linearizable read waits for: the replica applied everything committed when the read
/// arrived, so a fjall snapshot taken now reflects every acknowledged write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadReady {
    /// Raft term of the shard when the read index was confirmed.
    pub term: u64,
}

/// Ask for a read index (Raft §6.4); answered once it is applied locally.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ReadIndex {
    /// Where the answer goes.
    pub reply: tokio::sync::oneshot::Sender<Result<ReadReady, AtollError>>,
}

/// Entries of one Ready are durable.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Persisted {
    /// The Ready's number.
    pub number: u64,
    /// Last index written by it, 0 if none.
    pub last_index: u64,
    /// Messages to send only now that the Ready is durable (votes, append acks).
    pub messages: Vec<raft::eraftpb::Message>,
}

/// Old log entries were deleted up to this state.
#[derive(Message)]
#[rtype(result = "()")]
pub struct LogTruncated(pub crate::storage::TruncatedState);

/// Committed entries were applied.
#[derive(Message)]
#[rtype(result = "()")]
pub struct AppliedMsg(pub Applied);

/// Ask for the replica's status.
#[derive(Message)]
#[rtype(result = "ReplicaStatus")]
pub struct GetStatus;

/// Role of a replica in its shard.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplicaRole {
    /// Leads the shard.
    Leader,
    /// Follows a leader.
    Follower,
    /// Campaigning.
    Candidate,
    /// Pre-campaigning.
    PreCandidate,
}

/// A replica's published status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaStatus {
    /// Its role.
    pub role: ReplicaRole,
    /// The leader it knows, if any.
    pub leader: Option<NodeId>,
    /// Current term.
    pub term: u64,
    /// Commit index.
    pub commit_index: u64,
    /// Last log index.
    pub last_index: u64,
    /// Applied index.
    pub applied_index: u64,
    /// Store revision.
    pub revision: i64,
    /// Compacted revision.
    pub compact_revision: i64,
    /// Whether this replica is a learner.
    pub is_learner: bool,
}

/// Scalars a replica publishes for lock-free readers (the request service fills response
/// headers of serializable reads from them without a mailbox round trip).
#[derive(Debug, Default)]
pub struct PublishedState {
    term: AtomicU64,
    leader: AtomicU64,
}

impl PublishedState {
    /// The replica's current term.
    pub fn term(&self) -> u64 {
        self.term.load(Ordering::Relaxed)
    }

    /// The leader's ID, 0 when unknown.
    pub fn leader(&self) -> u64 {
        self.leader.load(Ordering::Relaxed)
    }

    pub(crate) fn publish(&self, term: u64, leader: u64) {
        self.term.store(term, Ordering::Relaxed);
        self.leader.store(leader, Ordering::Relaxed);
    }
}
