//! The sans-IO replica core: one shard's `RawNode` and every decision the replica makes around
//! it (stamping proposals, batching read indices, the async-append protocol, truncating the
//! log). Events go in through methods; what to do comes out as [`Effect`]s. The replica actor
//! is a shell that feeds it and performs the effects; the deterministic simulation
//! (`shard/tests/sim/`) drives the very same core, so what it checks is what the node runs.
//! Ready handling lives in `replica_core_ready.rs`, hibernation in `replica_core_hibernate.rs`.

use crate::config::ReplicaConfig;
use crate::core::effects::Effect;
use crate::core::raft_logger::raft_logger;
use crate::core::replica_core_hibernate::{Hibernation, WakeReason};
use crate::core::replica_core_snapshot::SnapshotState;
use crate::core::replica_status::{ReadReady, ReplicaRole, ReplicaStatus};
use crate::core::{Clock, PendingProposals, RevisionStamper};
use crate::error::StorageError;
use crate::limits::{
    PENDING_PROPOSALS_MAX, READ_INDEX_RETRY_TICKS, REVOCATION_PROPOSALS_EXTRA_MAX,
};
use crate::mvcc::{ApplyState, MvccStore};
use crate::storage::RaftLogStore;
use crate::storage::raft_log::bootstrap_shard;
use atoll_proto::peer::{RaftMessage as WireMessage, RaftMessageType, ShardPayload};
use atoll_proto::{AtollError, NodeId, RaftCommand, ShardId, WriteOp, frame};
use raft::{RawNode, StateRole};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

/// Linearizable reads waiting in one replica before new ones are refused.
pub const PENDING_READS_MAX: usize = 16_384;

/// What the core needs to load a replica.
pub struct ReplicaCoreDeps<'a> {
    /// The shard.
    pub shard: ShardId,
    /// Raft settings.
    pub config: ReplicaConfig,
    /// The bootstrap voters, used only the first time the shard is created on this node;
    /// none for a node joining a running cluster.
    pub initial_voters: &'a [u64],
    /// The initial members' records, carried by the meta shard's bootstrap entries (only
    /// their IDs matter to other shards); used with `initial_voters`.
    pub initial_members: &'a [atoll_proto::shard_map::Member],
    /// The initial shard map, which the meta shard's bootstrap records after its conf
    /// changes (decision D23); used with `initial_voters`, ignored by data shards.
    pub initial_shard_map: Option<&'a atoll_proto::shard_map::ShardMap>,
    /// The MVCC store of the shard (its storage also holds the Raft log).
    pub store: &'a MvccStore,
    /// Wall clock for revision stamps.
    pub clock: Arc<dyn Clock>,
}

/// One replica's decisions. `W` answers a proposal, `R` answers a read.
pub struct ReplicaCore<W, R> {
    pub(super) shard: ShardId,
    pub(super) node_id: u64,
    pub(super) election_ticks: usize,
    /// Idle ticks before a leader hibernates its shard; 0: never.
    pub(super) hibernate_idle_ticks: usize,
    /// Whether the replica ticks (decision D14).
    pub(super) hibernation: Hibernation,
    pub(super) raw: RawNode<RaftLogStore>,
    clock: Arc<dyn Clock>,
    pub(super) stamper: RevisionStamper,
    pub(super) proposals: PendingProposals<W>,
    pub(super) applied_index: u64,
    pub(super) revision: i64,
    pub(super) compact_revision: i64,
    pub(super) next_read_id: u64,
    /// Reads that arrived since the last Ready; they share one read index (TiKV batches
    /// ReadIndex the same way: one heartbeat round confirms them all).
    pub(super) reads_arrived: Vec<R>,
    /// Read batches waiting for Raft to confirm their read index, by request ID, with the
    /// tick each was asked at: raft-rs drops a read index request it cannot serve (a follower
    /// without a leader, a leader that has not committed in its term, a message lost on the
    /// way), so batches unanswered for `READ_INDEX_RETRY_TICKS` are asked again under a new
    /// ID. A BTreeMap, so retries come out in one order on every run (simulation).
    pub(super) reads_unconfirmed: BTreeMap<u64, (u64, Vec<R>)>,
    /// Ticks before an unanswered read index is asked again (backs off, see the limit).
    pub(super) read_retry_ticks: u64,
    /// Ticks since the replica started.
    pub(super) ticks: u64,
    /// Reads with a confirmed index, waiting for apply to reach it (ascending index).
    pub(super) reads_unapplied: VecDeque<(u64, R)>,
    /// Log writes handed out and not yet reported durable.
    pub(super) persists_in_flight: usize,
    pub(super) log_truncation_in_flight: bool,
    /// The last bootstrap conf change handed to apply: once it is applied, campaign if this
    /// is the only voter.
    pub(super) campaign_after_apply: Option<u64>,
    /// Log entries kept behind the applied index when the log is truncated.
    pub(super) log_retained_entries: u64,
    /// Snapshots being generated, sent or installed (decision D20).
    pub(super) snapshots: SnapshotState,
    /// Whether the shell should call [`ReplicaCore::drive_ready`].
    pub(super) ready_wanted: bool,
    pub(super) effects: Vec<Effect<W, R>>,
}

impl<W, R> ReplicaCore<W, R> {
    /// Loads the replica's log and apply state and creates the `RawNode`, as at every start
    /// of the node. Returns the apply state, which the shell hands to whoever applies.
    pub fn new(deps: ReplicaCoreDeps<'_>) -> Result<(Self, ApplyState), StorageError> {
        let ReplicaCoreDeps {
            shard,
            config,
            initial_voters,
            initial_members,
            initial_shard_map,
            store,
            clock,
        } = deps;
        store.prepare_dir_counts()?;
        let state = store.load_apply_state()?;
        let conf = bootstrap_shard(
            store.storage(),
            shard,
            initial_voters,
            initial_members,
            initial_shard_map,
        )?;
        let mut log = RaftLogStore::open(store.storage().clone(), shard, conf)?;
        // The apply batch can reach the disk before the hard state that carries its commit
        // index; entries are applied only once committed, so raising commit is safe (TiKV
        // keeps the commit index in its apply state for the same reason).
        if log.hard_state().commit < state.applied_index {
            let mut hs = log.hard_state().clone();
            hs.commit = state.applied_index;
            log.set_hard_state(hs);
        }
        let logger = raft_logger(shard.0, config.node_id);
        let raw = RawNode::new(&config.raft_config(state.applied_index), log, &logger)
            .map_err(|e| StorageError::BadRecord { what: "raft state", detail: e.to_string() })?;
        let mut stamper = RevisionStamper::default();
        stamper.observe(state.revision);
        let core = ReplicaCore {
            shard,
            node_id: config.node_id,
            election_ticks: config.election_ticks,
            hibernate_idle_ticks: config.hibernate_idle_ticks,
            hibernation: Hibernation::Awake { idle_ticks: 0 },
            raw,
            clock,
            stamper,
            proposals: PendingProposals::default(),
            applied_index: state.applied_index,
            revision: state.revision,
            compact_revision: state.compact_revision,
            next_read_id: 1,
            reads_arrived: Vec::new(),
            reads_unconfirmed: BTreeMap::new(),
            read_retry_ticks: READ_INDEX_RETRY_TICKS,
            ticks: 0,
            reads_unapplied: VecDeque::new(),
            persists_in_flight: 0,
            log_truncation_in_flight: false,
            campaign_after_apply: None,
            log_retained_entries: config.log_retained_entries,
            snapshots: SnapshotState::default(),
            ready_wanted: false,
            effects: Vec::new(),
        };
        Ok((core, state))
    }

    /// The replica starts. A shard whose only voter is this node need not wait an election
    /// timeout after a restart: it campaigns at once, so the first read after start-up is fast.
    pub fn start(&mut self) {
        self.campaign_if_sole_voter();
        self.ready_wanted = true;
    }

    pub(super) fn campaign_if_sole_voter(&mut self) {
        let conf = self.raw.store().conf_state();
        let sole_voter = conf.voters == [self.node_id] && conf.voters_outgoing.is_empty();
        if sole_voter
            && self.raw.raft.state != StateRole::Leader
            && let Err(e) = self.raw.campaign()
        {
            tracing::warn!(shard_id = self.shard.0, error = %e, "campaign failed");
        }
    }

    /// A client write, already validated. Its answer comes from apply, or as
    /// [`Effect::WriteFailed`] when it is refused or replaced by another leader's entry.
    pub fn propose(&mut self, op: WriteOp, reply: W) {
        self.wake(WakeReason::Local);
        if self.raw.raft.state != StateRole::Leader {
            let err = self.not_leader();
            self.effects.push(Effect::WriteFailed(reply, err));
            return;
        }
        // A lease revocation is admitted past the ordinary bound (decision D16).
        let (bound, limit) = if op.is_revocation() {
            (
                PENDING_PROPOSALS_MAX + REVOCATION_PROPOSALS_EXTRA_MAX,
                "revocation_proposals_extra_max",
            )
        } else {
            (PENDING_PROPOSALS_MAX, "pending_proposals_max")
        };
        if self.proposals.len() >= bound {
            let err = AtollError::Busy { limit: limit.into() };
            self.effects.push(Effect::WriteFailed(reply, err));
            return;
        }
        let cmd = RaftCommand { revision_stamp: self.stamper.next(self.clock.now_micros()), op };
        let data = match frame::encode_frame(&cmd) {
            Ok(d) => d,
            Err(e) => {
                let err = AtollError::Malformed { reason: e.to_string() };
                self.effects.push(Effect::WriteFailed(reply, err));
                return;
            }
        };
        let before = self.raw.raft.raft_log.last_index();
        if let Err(e) = self.raw.propose(vec![], data) {
            tracing::debug!(shard_id = self.shard.0, error = %e, "proposal dropped");
            let err = self.not_leader();
            self.effects.push(Effect::WriteFailed(reply, err));
            return;
        }
        let index = self.raw.raft.raft_log.last_index();
        if index == before {
            let err = self.not_leader();
            self.effects.push(Effect::WriteFailed(reply, err));
            return;
        }
        for stale in self.proposals.push(index, self.raw.raft.term, reply) {
            self.effects.push(Effect::WriteFailed(stale.reply, AtollError::LeaderChanged));
        }
        self.ready_wanted = true;
    }

    /// A linearizable read asks for a read index (Raft §6.4); answered once applied locally.
    pub fn read_index(&mut self, reply: R) {
        self.wake(WakeReason::Local);
        if self.raw.raft.leader_id == 0 {
            let err = AtollError::NoLeader { shard: self.shard };
            self.effects.push(Effect::ReadDone(reply, Err(err)));
            return;
        }
        if self.reads_pending() >= PENDING_READS_MAX {
            let err = AtollError::Busy { limit: "pending_reads_max".into() };
            self.effects.push(Effect::ReadDone(reply, Err(err)));
            return;
        }
        self.reads_arrived.push(reply);
        self.ready_wanted = true;
    }

    /// Asks Raft to hand this replica's leadership to the voter `to` (etcd's MoveLeader):
    /// the leader brings `to` up to date and tells it to campaign at once. Whether it took
    /// is seen in the published leader.
    pub fn transfer_leader(&mut self, to: NodeId) -> Result<(), AtollError> {
        self.wake(WakeReason::Local);
        if self.raw.raft.state != StateRole::Leader {
            return Err(self.not_leader());
        }
        if !self.raw.store().conf_state().voters.contains(&to.0) {
            return Err(AtollError::BadLeaderTransferee);
        }
        if to.0 != self.node_id {
            self.raw.transfer_leader(to.0);
            self.ready_wanted = true;
        }
        Ok(())
    }

    /// A message from the replica of the same shard on another node. Any message wakes a
    /// hibernating replica, except the leader's request to hibernate.
    pub fn step(&mut self, payload: ShardPayload) {
        if payload.to() != self.node_id {
            let to = payload.to();
            tracing::warn!(shard_id = self.shard.0, to, "raft message for another node");
            return;
        }
        let wire = match payload {
            ShardPayload::Raft(wire) => wire,
            ShardPayload::Hibernate { from, term, index, .. } => {
                self.on_hibernate(from, term.0, index.0);
                return;
            }
            ShardPayload::WakeUp { from, .. } => {
                self.wake(WakeReason::Message { from });
                return;
            }
        };
        if wire.msg_type == RaftMessageType::Snapshot {
            // A snapshot's state comes on a stream of its own, stepped with its file by
            // `on_snapshot_received`; one without a file cannot be installed.
            tracing::warn!(shard_id = self.shard.0, "snapshot message without its stream");
            return;
        }
        self.step_raft(wire);
    }

    /// Steps a Raft message from another replica of the shard.
    pub(super) fn step_raft(&mut self, wire: WireMessage) {
        // Before stepping: a replica that did not tick must restart its election count
        // before Raft judges a vote request against its lease (D14).
        if !self.answers_asleep(&wire) {
            self.wake(WakeReason::Message { from: wire.from });
        }
        let msg = match crate::peer_codec::from_wire(wire) {
            Ok(msg) => msg,
            Err(e) => {
                tracing::warn!(shard_id = self.shard.0, error = %e, "raft message refused");
                return;
            }
        };
        if let Err(e) = self.raw.step(msg) {
            // Messages from unknown peers or stale terms: Raft's business, never fatal.
            tracing::debug!(shard_id = self.shard.0, error = %e, "raft step refused a message");
        }
        self.ready_wanted = true;
    }

    /// One Raft tick. A hibernating replica ignores it; an idle leader hibernates instead
    /// (D14).
    pub fn tick(&mut self) {
        if self.is_hibernating() || self.hibernate_if_idle() {
            return;
        }
        self.raw.tick();
        self.ticks += 1;
        self.retry_stale_reads();
        self.ready_wanted = true;
    }

    /// The effects produced since the last call, in the order they must be performed.
    pub fn take_effects(&mut self) -> Vec<Effect<W, R>> {
        std::mem::take(&mut self.effects)
    }

    /// Whether the shell should call [`ReplicaCore::drive_ready`] (soon, not necessarily at
    /// once: several events may share one Ready).
    pub fn wants_ready(&self) -> bool {
        self.ready_wanted
    }

    /// Replaces raft-rs's randomized election timeout, which it draws from a thread-local RNG
    /// the caller cannot seed. Only the simulation calls this, after every event, so that one
    /// seed replays one run; the value is clamped into raft-rs's allowed window.
    pub fn set_election_timeout(&mut self, ticks: usize) {
        // raft-rs's window with the default min/max: [election_tick, 2 * election_tick).
        let min = self.election_ticks;
        let ticks = ticks.clamp(min, 2 * min - 1);
        self.raw.raft.set_randomized_election_timeout(ticks);
    }

    /// The Raft node, for status and for the simulation's invariant checkers.
    pub fn raft(&self) -> &RawNode<RaftLogStore> {
        &self.raw
    }

    /// The shard.
    pub fn shard(&self) -> ShardId {
        self.shard
    }

    /// Whether this replica leads its shard.
    pub fn is_leader(&self) -> bool {
        self.raw.raft.state == StateRole::Leader
    }

    /// The current term and the leader this replica knows (0: none).
    pub fn term_and_leader(&self) -> (u64, u64) {
        (self.raw.raft.term, self.raw.raft.leader_id)
    }

    /// The replica's status.
    pub fn status(&self) -> ReplicaStatus {
        let raft = &self.raw.raft;
        let role = match raft.state {
            StateRole::Leader => ReplicaRole::Leader,
            StateRole::Follower => ReplicaRole::Follower,
            StateRole::Candidate => ReplicaRole::Candidate,
            StateRole::PreCandidate => ReplicaRole::PreCandidate,
        };
        ReplicaStatus {
            role,
            leader: (raft.leader_id != 0).then_some(NodeId(raft.leader_id)),
            term: raft.term,
            commit_index: raft.raft_log.committed,
            last_index: raft.raft_log.last_index(),
            applied_index: self.applied_index,
            revision: self.revision,
            compact_revision: self.compact_revision,
            is_learner: self.raw.store().conf_state().learners.contains(&self.node_id),
            hibernating: self.is_hibernating(),
        }
    }

    pub(super) fn reads_pending(&self) -> usize {
        let unconfirmed: usize = self.reads_unconfirmed.values().map(|(_, r)| r.len()).sum();
        self.reads_arrived.len() + unconfirmed + self.reads_unapplied.len()
    }

    pub(super) fn not_leader(&self) -> AtollError {
        match self.raw.raft.leader_id {
            0 => AtollError::NoLeader { shard: self.shard },
            id => AtollError::NotLeader { shard: self.shard, leader_hint: Some(NodeId(id)) },
        }
    }

    pub(super) fn answer_read(&mut self, reply: R) {
        let ready = ReadReady { term: self.raw.raft.term };
        self.effects.push(Effect::ReadDone(reply, Ok(ready)));
    }
}
