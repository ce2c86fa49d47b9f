//! The replica actor: a thin shell around [`ReplicaCore`]. It feeds the core client proposals,
//! reads, Raft messages, ticks and completions, and performs the effects the core returns:
//! messages to the peer sink, log writes to the log writer, committed entries to the apply
//! worker, answers to callers. Effects and completions live in `replica_ready.rs`.

use super::compactor_actor::{CompactRevisionApplied, CompactorActor, CompactorDeps};
use super::messages::*;
use super::peers::PeerSink;
use crate::apply_worker::{ApplyHandle, ApplyTask, HeaderIdentity, WriteReply};
use crate::config::{CompactorConfig, ReplicaConfig};
use crate::core::{Clock, ReplicaCore, ReplicaCoreDeps};
use crate::error::StorageError;
use crate::mvcc::{ApplyState, MvccLimits, MvccStore};
use crate::storage::{LogWriteTask, LogWriterHandle};
use actix::prelude::*;
use atoll_proto::AtollError;
use std::collections::VecDeque;
use std::sync::Arc;

pub use crate::core::PENDING_READS_MAX;

/// Messages a replica's mailbox holds before `try_send` answers `Busy`.
pub const REPLICA_MAILBOX_MAX: usize = 8_192;

/// Everything a replica needs from the node.
pub struct ReplicaDeps {
    /// The shard.
    pub shard: atoll_proto::ShardId,
    /// Raft settings.
    pub config: ReplicaConfig,
    /// The bootstrap voters, used only the first time the shard is created on this node;
    /// none for a node joining a running cluster.
    pub initial_voters: Vec<u64>,
    /// The initial members' records, which the meta shard's bootstrap entries carry.
    pub initial_members: Vec<atoll_proto::shard_map::Member>,
    /// The initial shard map, which the meta shard's bootstrap entries record after the
    /// conf changes (decision D23); ignored by data shards.
    pub initial_shard_map: Option<atoll_proto::shard_map::ShardMap>,
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
    /// Where Raft messages for other nodes go.
    pub peers: Arc<dyn PeerSink>,
    /// How the shard's compactor works.
    pub compactor: CompactorConfig,
}

/// One replica of one shard.
pub struct ReplicaActor {
    pub(super) core: ReplicaCore<WriteReply, ReadReply>,
    pub(super) config: ReplicaConfig,
    pub(super) log_writer: LogWriterHandle,
    pub(super) applier: ApplyHandle,
    /// Log tasks refused by a full log-writer queue, retried in order.
    pub(super) unsent_log: VecDeque<LogWriteTask>,
    /// Apply tasks refused by a full apply queue, retried in order.
    pub(super) unsent_apply: VecDeque<ApplyTask>,
    pub(super) ready_scheduled: bool,
    pub(super) published: Arc<PublishedState>,
    pub(super) peers: Arc<dyn PeerSink>,
    /// What `started` registers with the apply worker.
    registration: Option<(MvccStore, MvccLimits, HeaderIdentity, ApplyState)>,
    /// What `started` starts the compactor with: its config and the kept hash's revision.
    compactor_start: Option<(CompactorConfig, i64)>,
    /// The shard's compactor, once started.
    pub(super) compactor: Option<Addr<CompactorActor>>,
    /// The compacted revision last told to the compactor.
    pub(super) compact_revision_told: i64,
}

/// Where a read's answer goes.
pub type ReadReply = tokio::sync::oneshot::Sender<Result<ReadReady, AtollError>>;

impl ReplicaActor {
    /// Builds the replica: loads its log and apply state and creates the core. Runs on the
    /// caller's thread (start-up, not an arbiter).
    pub fn new(deps: ReplicaDeps) -> Result<ReplicaActor, StorageError> {
        let ReplicaDeps {
            shard,
            config,
            initial_voters,
            initial_members,
            initial_shard_map,
            store,
            limits,
            identity,
            ..
        } = deps;
        let hashed_at = store.compaction_hash()?.map_or(0, |(revision, _)| revision);
        let (core, state) = ReplicaCore::new(ReplicaCoreDeps {
            shard,
            config: config.clone(),
            initial_voters: &initial_voters,
            initial_members: &initial_members,
            initial_shard_map: initial_shard_map.as_ref(),
            store: &store,
            clock: deps.clock,
        })?;
        Ok(ReplicaActor {
            core,
            config,
            log_writer: deps.log_writer,
            applier: deps.applier,
            unsent_log: VecDeque::new(),
            unsent_apply: VecDeque::new(),
            ready_scheduled: false,
            compact_revision_told: state.compact_revision,
            registration: Some((store, limits, identity, state)),
            compactor_start: Some((deps.compactor, hashed_at)),
            compactor: None,
            published: deps.published,
            peers: deps.peers,
        })
    }

    /// Starts the shard's compactor on this arbiter; it needs the replica's address to
    /// propose auto-compactions, so it starts in `started`.
    fn start_compactor(&mut self, ctx: &mut Context<Self>) {
        let Some((config, hashed_at)) = self.compactor_start.take() else { return };
        let Some((store, _, _, state)) = &self.registration else { return };
        self.published.publish_applied(state.revision, state.compact_revision);
        let deps = CompactorDeps {
            store: store.clone(),
            config,
            replica: ctx.address().recipient(),
            published: self.published.clone(),
            node_id: self.config.node_id,
            compact_revision: state.compact_revision,
            hashed_at,
        };
        self.compactor = Some(CompactorActor::new(deps).start());
    }

    /// Tells the compactor about a compacted revision apply recorded.
    pub(super) fn tell_compactor(&mut self, compact_revision: i64) {
        if compact_revision <= self.compact_revision_told {
            return;
        }
        self.compact_revision_told = compact_revision;
        if let Some(compactor) = &self.compactor {
            // do_send: the compactor must learn every new compacted revision.
            compactor.do_send(CompactRevisionApplied(compact_revision));
        }
    }

    /// Registers the shard with the apply worker; needs the actor's address for the
    /// `Applied` callback, so it runs in `started`.
    fn register_with_applier(&mut self, ctx: &mut Context<Self>) {
        let Some((store, limits, identity, state)) = self.registration.take() else { return };
        let addr = ctx.address();
        let task = ApplyTask::Register {
            shard: self.core.shard(),
            store,
            state,
            applied_term: self.core.applied_term(),
            limits,
            identity,
            // do_send: a completion must never be dropped by a full mailbox.
            on_applied: Box::new(move |applied| addr.do_send(AppliedMsg(applied))),
        };
        self.unsent_apply.push_back(task);
        self.retry_unsent();
    }

    /// Tells the ticker whether this replica needs ticks: not while its core hibernates and
    /// no task waits for room in the log writer's or the apply worker's queue.
    pub(super) fn publish_hibernation(&self) {
        let idle = self.unsent_log.is_empty() && self.unsent_apply.is_empty();
        self.published.publish_hibernating(self.core.is_hibernating() && idle);
    }

    pub(super) fn schedule_ready(&mut self, ctx: &mut Context<Self>) {
        if !self.ready_scheduled {
            self.ready_scheduled = true;
            ctx.notify(DriveReady);
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
        self.start_compactor(ctx);
        self.register_with_applier(ctx);
        // Ticks come from the ticker of this arbiter (`TickerActor`), not a timer per replica.
        self.core.start();
        self.perform(ctx);
        tracing::info!(
            shard_id = self.core.shard().0,
            node_id = self.config.node_id,
            "replica started"
        );
    }
}

impl Handler<DriveReady> for ReplicaActor {
    type Result = ();

    fn handle(&mut self, _: DriveReady, ctx: &mut Context<Self>) {
        self.ready_scheduled = false;
        self.core.drive_ready();
        let (term, leader) = self.core.term_and_leader();
        self.published.publish(term, leader);
        self.perform(ctx);
    }
}

impl Handler<Propose> for ReplicaActor {
    type Result = ();

    fn handle(&mut self, msg: Propose, ctx: &mut Context<Self>) {
        // A follower answers NotLeader (from the core) whether or not storage failed.
        if self.core.is_leader() && self.log_writer.is_poisoned() {
            let reason = "the log writer failed; the node is stopping".to_string();
            let _ = msg.reply.send(Err(AtollError::StorageFailed { reason }));
            return;
        }
        self.core.propose(msg.op, msg.reply);
        self.perform(ctx);
    }
}

impl Handler<ReadIndex> for ReplicaActor {
    type Result = ();

    fn handle(&mut self, msg: ReadIndex, ctx: &mut Context<Self>) {
        self.core.read_index(msg.reply);
        self.perform(ctx);
    }
}

impl Handler<Step> for ReplicaActor {
    type Result = ();

    fn handle(&mut self, Step(wire): Step, ctx: &mut Context<Self>) {
        self.core.step(wire);
        self.perform(ctx);
    }
}

impl Handler<Tick> for ReplicaActor {
    type Result = ();

    fn handle(&mut self, _: Tick, ctx: &mut Context<Self>) {
        // The ticker may have read the flag just before the replica hibernated.
        self.core.tick();
        self.perform(ctx);
        // Tasks a full queue refused are retried on ticks: a replica holding some keeps
        // being ticked even while its core hibernates (`publish_hibernation`).
        self.retry_unsent();
        self.publish_hibernation();
    }
}

impl Handler<PeerUnreachable> for ReplicaActor {
    type Result = ();

    fn handle(&mut self, PeerUnreachable(node): PeerUnreachable, ctx: &mut Context<Self>) {
        self.core.on_peer_unreachable(node);
        self.perform(ctx);
    }
}

impl Handler<ProposeConfChange> for ReplicaActor {
    type Result = ();

    fn handle(&mut self, msg: ProposeConfChange, ctx: &mut Context<Self>) {
        self.core.propose_conf_change(msg.changes, msg.context, msg.reply);
        self.perform(ctx);
    }
}

impl Handler<FollowMembers> for ReplicaActor {
    type Result = ();

    fn handle(&mut self, FollowMembers(desired): FollowMembers, ctx: &mut Context<Self>) {
        self.core.follow_members(&desired);
        self.perform(ctx);
    }
}

impl Handler<LearnerReady> for ReplicaActor {
    type Result = Result<(), AtollError>;

    fn handle(&mut self, LearnerReady(node): LearnerReady, _: &mut Context<Self>) -> Self::Result {
        self.core.learner_ready(node)
    }
}

impl Handler<TransferLeader> for ReplicaActor {
    type Result = Result<(), AtollError>;

    fn handle(
        &mut self,
        TransferLeader(to): TransferLeader,
        ctx: &mut Context<Self>,
    ) -> Self::Result {
        let result = self.core.transfer_leader(to);
        self.perform(ctx);
        result
    }
}

impl Handler<WaitCompacted> for ReplicaActor {
    type Result = ();

    fn handle(&mut self, msg: WaitCompacted, _: &mut Context<Self>) {
        match &self.compactor {
            // do_send: the compactor bounds its waiters itself (`COMPACTION_WAITERS_MAX`).
            Some(compactor) => compactor.do_send(msg),
            None => {
                let _ = msg.reply.send(Err(AtollError::Stopping));
            }
        }
    }
}

impl Handler<GetStatus> for ReplicaActor {
    type Result = MessageResult<GetStatus>;

    fn handle(&mut self, _: GetStatus, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.core.status())
    }
}
