//! The replica actor: owns one shard's `RawNode`, turns client proposals and reads into Raft
//! operations, hands appends to the log writer and committed entries to the apply worker.
//! Ready handling lives in `replica_ready.rs`.

use super::messages::*;
use crate::apply_worker::{ApplyHandle, ApplyTask, HeaderIdentity, WriteReply};
use crate::config::ReplicaConfig;
use crate::core::raft_logger::raft_logger;
use crate::core::{Clock, PendingProposals, RevisionStamper};
use crate::error::StorageError;
use crate::limits::PENDING_PROPOSALS_MAX;
use crate::mvcc::{ApplyState, MvccLimits, MvccStore};
use crate::storage::raft_log::bootstrap_conf_state;
use crate::storage::{LogWriteTask, LogWriterHandle, RaftLogStore};
use actix::prelude::*;
use atoll_proto::{AtollError, NodeId, RaftCommand, ShardId, frame};
use raft::RawNode;
use raft::StateRole;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

/// Messages a replica's mailbox holds before `try_send` answers `Busy`.
pub const REPLICA_MAILBOX_MAX: usize = 8_192;
/// Linearizable reads waiting in one replica before new ones are refused.
pub const PENDING_READS_MAX: usize = 16_384;

/// Everything a replica needs from the node.
pub struct ReplicaDeps {
    /// The shard.
    pub shard: ShardId,
    /// Raft settings.
    pub config: ReplicaConfig,
    /// The bootstrap voters, used only the first time the shard is created on this node.
    pub initial_voters: Vec<u64>,
    /// The MVCC store of the shard.
    pub store: MvccStore,
    /// Request limits.
    pub limits: MvccLimits,
    /// Identity stamped on response headers.
    pub identity: HeaderIdentity,
    /// The node's log writer.
    pub log_writer: LogWriterHandle,
    /// The node's apply worker.
    pub applier: ApplyHandle,
    /// Wall clock for revision stamps.
    pub clock: Arc<dyn Clock>,
    /// Where the replica publishes its term and leader.
    pub published: Arc<PublishedState>,
}

/// One replica of one shard.
pub struct ReplicaActor {
    pub(super) shard: ShardId,
    pub(super) config: ReplicaConfig,
    pub(super) raw: RawNode<RaftLogStore>,
    pub(super) log_writer: LogWriterHandle,
    pub(super) applier: ApplyHandle,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) stamper: RevisionStamper,
    pub(super) proposals: PendingProposals<WriteReply>,
    pub(super) applied_index: u64,
    pub(super) revision: i64,
    pub(super) compact_revision: i64,
    pub(super) next_read_id: u64,
    /// Reads that arrived since the last Ready; they share one read index (TiKV batches
    /// ReadIndex the same way: one heartbeat round confirms them all).
    pub(super) reads_arrived: Vec<ReadReply>,
    /// Read batches waiting for Raft to confirm their read index, by request ID.
    pub(super) reads_unconfirmed: HashMap<u64, Vec<ReadReply>>,
    /// Reads with a confirmed index, waiting for apply to reach it (ascending index).
    pub(super) reads_unapplied: VecDeque<(u64, ReadReply)>,
    /// Log tasks refused by a full log-writer queue, retried in order.
    pub(super) unsent_log: VecDeque<LogWriteTask>,
    /// Apply tasks refused by a full apply queue, retried in order.
    pub(super) unsent_apply: VecDeque<ApplyTask>,
    /// Readies handed to the log writer and not yet persisted.
    pub(super) persists_in_flight: usize,
    pub(super) ready_scheduled: bool,
    pub(super) log_truncation_in_flight: bool,
    pub(super) published: Arc<PublishedState>,
    /// What `started` registers with the apply worker.
    registration: Option<(MvccStore, MvccLimits, HeaderIdentity, ApplyState)>,
}

/// Where a read's answer goes.
pub type ReadReply = tokio::sync::oneshot::Sender<Result<ReadReady, AtollError>>;

impl ReplicaActor {
    /// Builds the replica: loads its log and apply state, registers it with the apply worker
    /// and creates the `RawNode`. Runs on the caller's thread (start-up, not an arbiter).
    pub fn new(deps: ReplicaDeps) -> Result<ReplicaActor, StorageError> {
        let ReplicaDeps { shard, config, initial_voters, store, limits, identity, .. } = deps;
        let state = store.load_apply_state()?;
        let conf = bootstrap_conf_state(store.storage(), shard, &initial_voters)?;
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
        Ok(ReplicaActor {
            shard,
            config,
            raw,
            log_writer: deps.log_writer,
            applier: deps.applier,
            clock: deps.clock,
            stamper,
            proposals: PendingProposals::default(),
            applied_index: state.applied_index,
            revision: state.revision,
            compact_revision: state.compact_revision,
            next_read_id: 1,
            reads_arrived: Vec::new(),
            reads_unconfirmed: HashMap::new(),
            reads_unapplied: VecDeque::new(),
            unsent_log: VecDeque::new(),
            unsent_apply: VecDeque::new(),
            persists_in_flight: 0,
            ready_scheduled: false,
            log_truncation_in_flight: false,
            registration: Some((store, limits, identity, state)),
            published: deps.published,
        })
    }

    /// Registers the shard with the apply worker; needs the actor's address for the
    /// `Applied` callback, so it runs in `started`.
    fn register_with_applier(&mut self, ctx: &mut Context<Self>) {
        let Some((store, limits, identity, state)) = self.registration.take() else { return };
        let addr = ctx.address();
        let task = ApplyTask::Register {
            shard: self.shard,
            store,
            state,
            limits,
            identity,
            // do_send: a completion must never be dropped by a full mailbox.
            on_applied: Box::new(move |applied| addr.do_send(AppliedMsg(applied))),
        };
        self.unsent_apply.push_back(task);
        self.retry_unsent();
    }

    fn reads_pending(&self) -> usize {
        let unconfirmed: usize = self.reads_unconfirmed.values().map(Vec::len).sum();
        self.reads_arrived.len() + unconfirmed + self.reads_unapplied.len()
    }

    fn not_leader(&self) -> AtollError {
        match self.raw.raft.leader_id {
            0 => AtollError::NoLeader { shard: self.shard },
            id => AtollError::NotLeader { shard: self.shard, leader_hint: Some(NodeId(id)) },
        }
    }

    pub(super) fn schedule_ready(&mut self, ctx: &mut Context<Self>) {
        if !self.ready_scheduled {
            self.ready_scheduled = true;
            ctx.notify(DriveReady);
        }
    }

    fn status(&self) -> ReplicaStatus {
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
            is_learner: self.raw.store().conf_state().learners.contains(&self.config.node_id),
        }
    }
}

/// Internal: process the Ready now.
#[derive(Message)]
#[rtype(result = "()")]
pub(super) struct DriveReady;

impl Actor for ReplicaActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(REPLICA_MAILBOX_MAX);
        self.register_with_applier(ctx);
        ctx.run_interval(self.config.tick_interval, |act, ctx| {
            act.raw.tick();
            act.retry_unsent();
            act.schedule_ready(ctx);
        });
        // A shard whose only voter is this node need not wait an election timeout after a
        // restart: campaign at once, so the first read after start-up is fast.
        let conf = self.raw.store().conf_state();
        let sole_voter = conf.voters == [self.config.node_id] && conf.voters_outgoing.is_empty();
        if sole_voter && let Err(e) = self.raw.campaign() {
            tracing::warn!(shard_id = self.shard.0, error = %e, "campaign failed");
        }
        self.schedule_ready(ctx);
        tracing::info!(shard_id = self.shard.0, node_id = self.config.node_id, "replica started");
    }
}

impl Handler<DriveReady> for ReplicaActor {
    type Result = ();

    fn handle(&mut self, _: DriveReady, ctx: &mut Context<Self>) {
        self.ready_scheduled = false;
        self.drive_ready(ctx);
    }
}

impl Handler<Propose> for ReplicaActor {
    type Result = ();

    fn handle(&mut self, msg: Propose, ctx: &mut Context<Self>) {
        if self.raw.raft.state != StateRole::Leader {
            let _ = msg.reply.send(Err(self.not_leader()));
            return;
        }
        if self.log_writer.is_poisoned() {
            let reason = "the log writer failed; the node is stopping".to_string();
            let _ = msg.reply.send(Err(AtollError::StorageFailed { reason }));
            return;
        }
        if self.proposals.len() >= PENDING_PROPOSALS_MAX {
            let _ = msg.reply.send(Err(AtollError::Busy { limit: "pending_proposals_max".into() }));
            return;
        }
        let cmd =
            RaftCommand { revision_stamp: self.stamper.next(self.clock.now_micros()), op: msg.op };
        let data = match frame::encode_frame(&cmd) {
            Ok(d) => d,
            Err(e) => {
                let _ = msg.reply.send(Err(AtollError::Malformed { reason: e.to_string() }));
                return;
            }
        };
        let before = self.raw.raft.raft_log.last_index();
        if let Err(e) = self.raw.propose(vec![], data) {
            tracing::debug!(shard_id = self.shard.0, error = %e, "proposal dropped");
            let _ = msg.reply.send(Err(self.not_leader()));
            return;
        }
        let index = self.raw.raft.raft_log.last_index();
        if index == before {
            let _ = msg.reply.send(Err(self.not_leader()));
            return;
        }
        for stale in self.proposals.push(index, self.raw.raft.term, msg.reply) {
            let _ = stale.reply.send(Err(AtollError::LeaderChanged));
        }
        self.schedule_ready(ctx);
    }
}

impl Handler<ReadIndex> for ReplicaActor {
    type Result = ();

    fn handle(&mut self, msg: ReadIndex, ctx: &mut Context<Self>) {
        if self.raw.raft.leader_id == 0 {
            let _ = msg.reply.send(Err(AtollError::NoLeader { shard: self.shard }));
            return;
        }
        if self.reads_pending() >= PENDING_READS_MAX {
            let _ = msg.reply.send(Err(AtollError::Busy { limit: "pending_reads_max".into() }));
            return;
        }
        self.reads_arrived.push(msg.reply);
        self.schedule_ready(ctx);
    }
}

impl Handler<GetStatus> for ReplicaActor {
    type Result = MessageResult<GetStatus>;

    fn handle(&mut self, _: GetStatus, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.status())
    }
}
