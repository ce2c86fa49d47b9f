//! Messages shared by the replica actor and its callers.

use crate::apply_worker::{Applied, WriteReply};
use actix::Message;
use atoll_proto::{AtollError, WriteOp};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

pub use crate::core::{ReadReady, ReplicaRole, ReplicaStatus};

/// Propose a write; the result arrives on `reply` once applied.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Propose {
    /// The write, already validated.
    pub op: WriteOp,
    /// Where the result goes.
    pub reply: WriteReply,
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

/// A message from the replica of the same shard on another node.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Step(pub atoll_proto::peer::ShardPayload);

/// One Raft tick, from the ticker of the replica's arbiter; a hibernating replica is not
/// sent any (decision D14).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Tick;

/// The peer transport lost its connection to `0`: replicas whose leader lives there wake
/// and elect another (decision D14).
#[derive(Message)]
#[rtype(result = "()")]
pub struct PeerUnreachable(pub atoll_proto::NodeId);

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

/// Hand the shard's leadership to another voter (etcd's MoveLeader); refused unless this
/// replica leads and the target is a voter.
#[derive(Message)]
#[rtype(result = "Result<(), atoll_proto::AtollError>")]
pub struct TransferLeader(pub atoll_proto::NodeId);

/// Propose a conf change (decision D18); answered once applied, like a write.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ProposeConfChange {
    /// The changes: one is simple, several go through joint consensus.
    pub changes: Vec<(atoll_proto::NodeId, raft::eraftpb::ConfChangeType)>,
    /// Why.
    pub context: atoll_proto::member::ConfChangeContext,
    /// Where the result goes.
    pub reply: crate::apply_worker::WriteReply,
}

/// A data shard's leader brings its replicas in line with the membership (decision D18);
/// anything else ignores it.
#[derive(Message)]
#[rtype(result = "()")]
pub struct FollowMembers(pub Vec<crate::core::DesiredReplica>);

/// Whether a learner has caught up with this leader (member promote).
#[derive(Message)]
#[rtype(result = "Result<(), atoll_proto::AtollError>")]
pub struct LearnerReady(pub atoll_proto::NodeId);

/// Wait until this node's replica physically removed the history below `revision` (etcd's
/// `Compact { physical: true }` waits for its local backend); answered at once if it has.
/// The replica hands it to its compactor.
#[derive(Message)]
#[rtype(result = "()")]
pub struct WaitCompacted {
    /// The compacted revision waited for.
    pub revision: i64,
    /// Told once the removal below `revision` finished.
    pub reply: tokio::sync::oneshot::Sender<Result<(), AtollError>>,
}

/// A snapshot stream for this replica's shard from node `from` was verified into the file
/// `path`; `message` is its `MsgSnapshot`. The replica installs it if Raft restores it and
/// deletes the file otherwise (decision D20).
#[derive(Message)]
#[rtype(result = "()")]
pub struct ReceiveSnapshot {
    /// The sending node.
    pub from: atoll_proto::NodeId,
    /// The `MsgSnapshot` with the snapshot's metadata.
    pub message: atoll_proto::peer::RaftMessage,
    /// The verified file.
    pub path: std::path::PathBuf,
}

/// Scalars a replica publishes for lock-free readers (the request service fills response
/// headers of serializable reads from them without a mailbox round trip; the ticker of the
/// replica's arbiter skips it while it hibernates).
#[derive(Debug, Default)]
pub struct PublishedState {
    term: AtomicU64,
    leader: AtomicU64,
    hibernating: AtomicBool,
    revision: AtomicI64,
    compact_revision: AtomicI64,
    requests: AtomicU64,
    compacted_physically: AtomicI64,
    versions_removed: AtomicU64,
    snapshots_installed: AtomicU64,
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

    /// Whether the replica hibernates: it needs no ticks until something wakes it.
    pub fn is_hibernating(&self) -> bool {
        self.hibernating.load(Ordering::Relaxed)
    }

    /// The shard's revision as applied here.
    pub fn revision(&self) -> i64 {
        self.revision.load(Ordering::Relaxed)
    }

    /// The shard's compacted revision as applied here (reads below it are refused).
    pub fn compact_revision(&self) -> i64 {
        self.compact_revision.load(Ordering::Relaxed)
    }

    /// Counts a request served for the shard (its rate defers auto-compaction).
    pub fn count_request(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    /// Requests counted since start.
    pub fn requests_total(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// The revision below which this replica removed the history (physical compaction).
    pub fn compacted_physically(&self) -> i64 {
        self.compacted_physically.load(Ordering::Relaxed)
    }

    /// Versions physical compaction removed since start.
    pub fn versions_removed_total(&self) -> u64 {
        self.versions_removed.load(Ordering::Relaxed)
    }

    /// Raft snapshots this replica installed since start (decision D20).
    pub fn snapshots_installed_total(&self) -> u64 {
        self.snapshots_installed.load(Ordering::Relaxed)
    }

    pub(crate) fn publish_snapshots_installed(&self, total: u64) {
        self.snapshots_installed.store(total, Ordering::Relaxed);
    }

    pub(crate) fn publish_applied(&self, revision: i64, compact_revision: i64) {
        self.revision.store(revision, Ordering::Relaxed);
        self.compact_revision.store(compact_revision, Ordering::Relaxed);
    }

    pub(crate) fn publish_compacted(&self, compacted_physically: i64, versions_removed: usize) {
        self.compacted_physically.store(compacted_physically, Ordering::Relaxed);
        self.versions_removed.fetch_add(versions_removed as u64, Ordering::Relaxed);
    }

    pub(crate) fn publish(&self, term: u64, leader: u64) {
        self.term.store(term, Ordering::Relaxed);
        self.leader.store(leader, Ordering::Relaxed);
    }

    pub(crate) fn publish_hibernating(&self, hibernating: bool) {
        self.hibernating.store(hibernating, Ordering::Relaxed);
    }
}
