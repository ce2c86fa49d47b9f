//! The compactor of one shard (DESIGN §3), on its replica's arbiter. On every replica it
//! removes the history below the compacted revision that apply recorded (logical
//! compaction, immediate), in bounded batches paced by the sleep interval, then takes the
//! hash at that revision; where the replica leads it also runs auto-compaction (decision
//! D17), proposing Compact through the replica like any client.
//!
//! Each step is one blocking call on the blocking pool (one fjall batch, or one bounded
//! read), never on the arbiter; the actor keeps serving messages while it runs. The
//! actor takes no lock and holds nothing across a step but its own fields: a future Raft
//! snapshot install waits at most for the step in flight, and never the other way round
//! (decision D17 on etcd's compaction/snapshot deadlock).

use super::messages::{Propose, PublishedState, WaitCompacted};
use crate::config::CompactorConfig;
use crate::core::{AutoAction, AutoCompactor, AutoOutcome, ShardSample};
use crate::error::StorageError;
use crate::limits::{
    COMPACTION_HASH_STEP_VERSIONS_MAX, COMPACTION_WAITERS_MAX, RETENTION_STEP_RECORDS_MAX,
};
use crate::mvcc::{CompactProgress, CompactionHash, MvccStore, RetentionScan, RetentionStep};
use actix::prelude::*;
use atoll_proto::{AtollError, CompactionRequest, WriteOp};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Pause after a failed step before the next try. A failed fjall write poisons the
/// database, and apply's next write stops the node; a read error may be transient.
const STEP_RETRY_AFTER_ERROR: Duration = Duration::from_secs(1);
/// How long an auto-compaction proposal may take before it counts as failed.
const AUTO_PROPOSAL_TIMEOUT: Duration = Duration::from_secs(30);

/// Apply recorded a new compacted revision for the shard.
#[derive(Message)]
#[rtype(result = "()")]
pub struct CompactRevisionApplied(pub i64);

/// A Raft snapshot replaced the shard's data, compaction cursor and hash (decision D20).
#[derive(Message)]
#[rtype(result = "()")]
pub struct StateReplaced {
    /// The compacted revision the snapshot brought.
    pub compact_revision: i64,
}

/// What a compactor starts from.
pub struct CompactorDeps {
    /// The shard's store.
    pub store: MvccStore,
    /// Batching, pacing and auto-compaction.
    pub config: CompactorConfig,
    /// The replica, to propose auto-compactions to.
    pub replica: Recipient<Propose>,
    /// What the replica publishes (revisions, leader, request count); the compactor
    /// publishes its progress there too.
    pub published: Arc<PublishedState>,
    /// This node's ID (the replica leads when the published leader is it).
    pub node_id: u64,
    /// The compacted revision as loaded.
    pub compact_revision: i64,
    /// The revision of the kept compaction hash, 0 if none.
    pub hashed_at: i64,
}

/// The compactor of one shard.
pub struct CompactorActor {
    deps: CompactorDeps,
    /// The newest compacted revision apply recorded here.
    target: i64,
    /// The history below this revision is removed here.
    removed_below: i64,
    /// The hash being taken: its revision and progress.
    hashing: Option<(i64, CompactionHash)>,
    /// A blocking step is running or scheduled.
    stepping: bool,
    /// Snapshot installs seen; a deletion step that began before the latest one wrote its
    /// cursor from the replaced state.
    installs: u64,
    /// The persisted cursor may be ahead of the data (a step overlapped an install): the
    /// next step rescans the shard's change log from the start.
    cursor_suspect: bool,
    waiters: Vec<(i64, tokio::sync::oneshot::Sender<Result<(), AtollError>>)>,
    auto: Option<AutoCompactor>,
    origin: Instant,
}

impl CompactorActor {
    /// A compactor for the shard of `deps.store`.
    pub fn new(deps: CompactorDeps) -> CompactorActor {
        let origin = Instant::now();
        let auto = AutoCompactor::new(&deps.config.auto, Duration::ZERO);
        CompactorActor {
            target: deps.compact_revision,
            // Unknown until a step says so: the first step after a start finds where a
            // crash left the deletion (the persisted cursor) and finishes it.
            removed_below: 0,
            hashing: None,
            stepping: false,
            installs: 0,
            cursor_suspect: false,
            waiters: Vec::new(),
            auto,
            origin,
            deps,
        }
    }

    /// Runs the next step of the work left, if none is running.
    fn work(&mut self, ctx: &mut Context<Self>) {
        if self.stepping || self.target <= 0 {
            return;
        }
        if self.removed_below < self.target {
            self.hashing = None;
            self.delete_step(ctx);
        } else if self.deps.hashed_at < self.target {
            self.hash_step(ctx);
        }
    }

    fn delete_step(&mut self, ctx: &mut Context<Self>) {
        self.stepping = true;
        let (store, target) = (self.deps.store.clone(), self.target);
        let versions_max = self.deps.config.batch_versions_max;
        let (installs, rescan) = (self.installs, std::mem::take(&mut self.cursor_suspect));
        let step = tokio::task::spawn_blocking(move || {
            if rescan {
                store.reset_compaction_cursor()?;
            }
            store.compact_step_with(target, versions_max)
        });
        ctx.spawn(step.into_actor(self).map(move |result, act, ctx| {
            if act.installs != installs {
                // A snapshot was installed while the step ran. What it removed was removable
                // in the new state too (the same committed log below both applied indexes,
                // and the compacted revision only grows), but the cursor it wrote may skip
                // history the snapshot brought: rescan, and count nothing as done.
                act.cursor_suspect = true;
                act.step_done(Ok(()), ctx);
                return;
            }
            let outcome = flatten(result).map(|progress| act.on_deleted(target, progress));
            act.step_done(outcome, ctx);
        }));
    }

    fn on_deleted(&mut self, target: i64, progress: CompactProgress) {
        let shard = self.deps.store.shard().0;
        if progress.finished {
            self.removed_below = target;
            tracing::debug!(shard_id = shard, revision = target, "compaction removed history");
            let (done, waiting): (Vec<_>, Vec<_>) =
                self.waiters.drain(..).partition(|(revision, _)| *revision <= target);
            self.waiters = waiting;
            for (_, reply) in done {
                let _ = reply.send(Ok(()));
            }
        }
        self.deps.published.publish_compacted(self.removed_below, progress.versions_removed);
    }

    fn hash_step(&mut self, ctx: &mut Context<Self>) {
        self.stepping = true;
        let target = self.target;
        // A hash begun for an older target is worthless: HashKV only uses the one at the
        // compacted revision.
        let mut hash = match self.hashing.take() {
            Some((revision, hash)) if revision == target => hash,
            _ => CompactionHash::default(),
        };
        let store = self.deps.store.clone();
        let step = tokio::task::spawn_blocking(move || {
            let found =
                store.compaction_hash_step(target, &mut hash, COMPACTION_HASH_STEP_VERSIONS_MAX);
            found.map(|found| (found, hash))
        });
        ctx.spawn(step.into_actor(self).map(move |result, act, ctx| {
            let outcome = flatten(result).map(|(found, hash)| match found {
                Some(value) => {
                    act.deps.hashed_at = target;
                    tracing::debug!(
                        shard_id = act.deps.store.shard().0,
                        revision = target,
                        hash = value,
                        "compaction hash kept"
                    );
                }
                None => act.hashing = Some((target, hash)),
            });
            act.step_done(outcome, ctx);
        }));
    }

    /// After a step: the next one after the pause, or a retry after an error.
    fn step_done(&mut self, outcome: Result<(), StorageError>, ctx: &mut Context<Self>) {
        let pause = match outcome {
            Ok(()) => self.deps.config.sleep_interval,
            Err(e) => {
                tracing::error!(shard_id = self.deps.store.shard().0, error = %e,
                    "compaction step failed; trying again");
                STEP_RETRY_AFTER_ERROR
            }
        };
        let more = self.removed_below < self.target || self.deps.hashed_at < self.target;
        if !more {
            self.stepping = false;
            return;
        }
        ctx.run_later(pause, |act, ctx| {
            act.stepping = false;
            act.work(ctx);
        });
    }

    fn auto_check(&mut self, ctx: &mut Context<Self>) {
        let published = &self.deps.published;
        let sample = ShardSample {
            now: self.origin.elapsed(),
            head_revision: published.revision(),
            compact_revision: published.compact_revision(),
            requests_total: published.requests_total(),
            leads: published.leader() == self.deps.node_id,
        };
        let Some(auto) = self.auto.as_mut() else { return };
        let plan = auto.on_check(sample);
        match plan.action {
            AutoAction::Wait => {}
            AutoAction::Compact { revision } => self.propose(revision, ctx),
            AutoAction::CompactRetaining { revisions } => self.find_retained(revisions, ctx),
        }
        ctx.run_later(plan.next_check_in, |act, ctx| act.auto_check(ctx));
    }

    /// Revision mode: counts the shard's revisions back from the head, a bounded step at a
    /// time, then proposes the compaction that keeps `revisions` of them.
    fn find_retained(&mut self, revisions: u64, ctx: &mut Context<Self>) {
        let store = self.deps.store.clone();
        let pause = self.deps.config.sleep_interval;
        let scan = async move {
            let mut scan = RetentionScan::default();
            loop {
                let store = store.clone();
                let step = tokio::task::spawn_blocking(move || {
                    let step =
                        store.retention_step(revisions, &mut scan, RETENTION_STEP_RECORDS_MAX);
                    step.map(|step| (step, scan))
                });
                let (step, next) = flatten(step.await)?;
                scan = next;
                match step {
                    RetentionStep::Found(revision) => return Ok(Some(revision)),
                    RetentionStep::TooFew => return Ok(None),
                    RetentionStep::More => tokio::time::sleep(pause).await,
                }
            }
        };
        ctx.spawn(scan.into_actor(self).map(
            |found: Result<Option<i64>, StorageError>, act, ctx| {
                let now = act.origin.elapsed();
                let compacted = act.deps.published.compact_revision();
                let Some(auto) = act.auto.as_mut() else { return };
                match found {
                    Ok(found) => {
                        if let Some(revision) = auto.target_found(now, found, compacted) {
                            act.propose(revision, ctx);
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "auto compaction could not read the change log");
                        auto.on_outcome(now, 0, AutoOutcome::Failed);
                    }
                }
            },
        ));
    }

    /// Proposes an auto-compaction at `revision` to the replica.
    fn propose(&mut self, revision: i64, ctx: &mut Context<Self>) {
        let shard = self.deps.store.shard().0;
        tracing::info!(shard_id = shard, revision, "auto compaction");
        let (reply, answer) = tokio::sync::oneshot::channel();
        let op = WriteOp::Compact(CompactionRequest { revision, physical: false });
        if self.deps.replica.try_send(Propose { op, reply }).is_err() {
            if let Some(auto) = self.auto.as_mut() {
                auto.on_outcome(self.origin.elapsed(), revision, AutoOutcome::Failed);
            }
            return;
        }
        let answered = tokio::time::timeout(AUTO_PROPOSAL_TIMEOUT, answer);
        ctx.spawn(answered.into_actor(self).map(move |answer, act, _| {
            let outcome = match answer {
                Ok(Ok(Ok(_) | Err(AtollError::Compacted { .. }))) => AutoOutcome::Compacted,
                Ok(Ok(Err(e))) => {
                    tracing::warn!(shard_id = shard, revision, error = %e, "auto compaction failed");
                    AutoOutcome::Failed
                }
                _ => AutoOutcome::Failed,
            };
            if let Some(auto) = act.auto.as_mut() {
                auto.on_outcome(act.origin.elapsed(), revision, outcome);
            }
        }));
    }
}

fn flatten<T>(
    joined: Result<Result<T, StorageError>, tokio::task::JoinError>,
) -> Result<T, StorageError> {
    joined
        .map_err(|e| StorageError::TaskFailed { what: "compaction step", detail: e.to_string() })?
}

impl Actor for CompactorActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        if let Some(auto) = &self.auto {
            ctx.run_later(auto.first_check_in(), |act, ctx| act.auto_check(ctx));
        }
        self.work(ctx);
    }
}

impl Handler<CompactRevisionApplied> for CompactorActor {
    type Result = ();

    fn handle(
        &mut self,
        CompactRevisionApplied(revision): CompactRevisionApplied,
        ctx: &mut Context<Self>,
    ) {
        if revision > self.target {
            self.target = revision;
            self.work(ctx);
        }
    }
}

impl Handler<StateReplaced> for CompactorActor {
    type Result = ();

    /// Never waits for a step in flight and holds nothing the install waits on: the install
    /// already happened (decision D17, etcd's compaction/restore deadlock).
    fn handle(&mut self, msg: StateReplaced, ctx: &mut Context<Self>) {
        self.installs += 1;
        self.target = self.target.max(msg.compact_revision);
        // Where the snapshot's deletion stands is found by the next step from its cursor.
        self.removed_below = 0;
        self.hashing = None;
        self.deps.hashed_at = 0;
        self.work(ctx);
    }
}

impl Handler<WaitCompacted> for CompactorActor {
    type Result = ();

    fn handle(&mut self, msg: WaitCompacted, _: &mut Context<Self>) {
        if msg.revision <= self.removed_below {
            let _ = msg.reply.send(Ok(()));
        } else if self.waiters.len() >= COMPACTION_WAITERS_MAX {
            let limit = "compaction_waiters_max".to_string();
            let _ = msg.reply.send(Err(AtollError::Busy { limit }));
        } else {
            self.waiters.push((msg.revision, msg.reply));
        }
    }
}
