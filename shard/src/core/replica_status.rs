//! What a replica reports about itself: its role and indices, and what a confirmed read waits
//! for. Defined beside the core that computes them; the actor messages re-export them.

use atoll_proto::NodeId;

/// What a linearizable read waits for: the replica applied everything committed when the read
/// arrived, so a fjall snapshot taken now reflects every acknowledged write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadReady {
    /// Raft term of the shard when the read index was confirmed.
    pub term: u64,
}

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
    /// Whether the replica hibernates (does not tick, decision D14).
    pub hibernating: bool,
}
