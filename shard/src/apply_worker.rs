//! The apply worker: a thread that applies committed entries of every shard on the node into
//! the MVCC store and answers the proposers.
//!
//! Apply leaves the replica actor because a fjall batch commit takes the journal lock, which
//! the log writer holds during every fsync: on an arbiter thread that wait would stall every
//! replica of the arbiter. Here all committed entries of one Ready go into one batch, so the
//! wait is paid once per Ready, not once per entry.
//!
//! A Compact costs apply one field of the apply state (logical compaction): removing the
//! history is the shard compactor's background work (`actors/compactor_actor.rs`), and
//! `Compact { physical: true }` waits for that on the node that took the request, so
//! nothing here ever waits for or does compaction work.

use crate::core::{ConfChangeOutcome, PendingProposal};
use crate::error::StorageError;
use crate::mvcc::{ApplyState, Applying, MvccLimits, MvccStore, WriteResponse};
use crate::snapshot::{GeneratedSnapshot, InstallRaftState, SnapshotError};
use atoll_proto::{AtollError, RaftCommand, ResponseHeader, ShardId, frame};
use raft::eraftpb::{Entry, EntryType};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};

/// Tasks the apply queue holds before `try_submit` refuses more.
pub const APPLY_QUEUE_TASKS_MAX: usize = 16_384;

/// Where a write's result goes.
pub type WriteReply = tokio::sync::oneshot::Sender<Result<WriteResponse, AtollError>>;
/// Called on the worker thread after each applied batch.
pub type AppliedCallback = Box<dyn Fn(Applied) + Send + 'static>;
/// Called once when storage fails.
pub type ApplyFatalCallback = Box<dyn Fn(&StorageError) + Send + 'static>;
/// Called once a snapshot is generated (on the generating thread) or could not be.
pub type SnapshotGeneratedCallback =
    Box<dyn FnOnce(Result<GeneratedSnapshot, SnapshotError>) + Send + 'static>;
/// Called on the worker thread once a snapshot is installed and durable.
pub type SnapshotInstalledCallback = Box<dyn FnOnce(ApplyState) + Send + 'static>;

/// What the replica learns after a batch is applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Applied {
    /// The shard's apply state after the batch.
    pub state: ApplyState,
}

/// Identity stamped on response headers.
#[derive(Clone, Copy, Debug, Default)]
pub struct HeaderIdentity {
    /// The cluster's ID.
    pub cluster_id: u64,
    /// This node's member ID.
    pub member_id: u64,
}

/// A unit of work for the apply worker.
pub enum ApplyTask {
    /// Start applying for a shard.
    Register {
        /// The shard.
        shard: ShardId,
        /// Its MVCC store.
        store: MvccStore,
        /// Its apply state as loaded.
        state: ApplyState,
        /// The term of the entry at the applied index, 0 if unknown (a snapshot waits
        /// for the next applied entry then).
        applied_term: u64,
        /// Request limits.
        limits: MvccLimits,
        /// Header identity.
        identity: HeaderIdentity,
        /// Told after each batch.
        on_applied: AppliedCallback,
    },
    /// Apply committed entries.
    Apply {
        /// The shard.
        shard: ShardId,
        /// Committed entries in order.
        entries: Vec<Entry>,
        /// Proposals whose index is within `entries`.
        proposals: Vec<PendingProposal<WriteReply>>,
        /// What Raft made of the conf change entries among `entries`.
        conf_changes: Vec<ConfChangeOutcome>,
    },
    /// Generate a snapshot of the shard as it stands after every task queued before: the
    /// database snapshot is taken here, between two batches, and written to a file on a
    /// thread of its own so applies of other shards do not wait for it (decision D20).
    GenerateSnapshot {
        /// The shard.
        shard: ShardId,
        /// Told the outcome.
        done: SnapshotGeneratedCallback,
    },
    /// Replace the shard's state with a verified snapshot file, after every task queued
    /// before (so no older entry is applied over it), durably; then delete the file.
    InstallSnapshot {
        /// The shard.
        shard: ShardId,
        /// The file.
        path: PathBuf,
        /// The snapshot's index.
        index: u64,
        /// The snapshot's term.
        term: u64,
        /// Raft's state written with it.
        raft: InstallRaftState,
        /// Told the new apply state.
        done: SnapshotInstalledCallback,
    },
}

/// Sending side of the apply worker.
#[derive(Clone)]
pub struct ApplyHandle {
    tx: SyncSender<ApplyTask>,
}

impl ApplyHandle {
    /// Queues a task, giving it back (boxed) if the queue is full or the worker stopped.
    pub fn try_submit(&self, task: ApplyTask) -> Result<(), Box<ApplyTask>> {
        self.tx.try_send(task).map_err(|e| match e {
            TrySendError::Full(t) | TrySendError::Disconnected(t) => Box::new(t),
        })
    }
}

struct ShardApplier {
    store: MvccStore,
    state: ApplyState,
    applied_term: u64,
    limits: MvccLimits,
    identity: HeaderIdentity,
    on_applied: AppliedCallback,
}

/// The apply worker thread.
pub struct ApplyWorker;

impl ApplyWorker {
    /// Starts the worker thread.
    pub fn spawn(on_fatal: ApplyFatalCallback) -> std::io::Result<ApplyHandle> {
        let (tx, rx) = sync_channel(APPLY_QUEUE_TASKS_MAX);
        std::thread::Builder::new().name("atoll-apply".into()).spawn(move || {
            if let Err(e) = run(&rx) {
                tracing::error!(error = %e, "apply worker failed; node storage is poisoned");
                on_fatal(&e);
            }
        })?;
        Ok(ApplyHandle { tx })
    }
}

fn run(rx: &Receiver<ApplyTask>) -> Result<(), StorageError> {
    let mut shards: HashMap<ShardId, ShardApplier> = HashMap::new();
    while let Ok(task) = rx.recv() {
        match task {
            ApplyTask::Register {
                shard,
                store,
                state,
                applied_term,
                limits,
                identity,
                on_applied,
            } => {
                let applier =
                    ShardApplier { store, state, applied_term, limits, identity, on_applied };
                shards.insert(shard, applier);
            }
            ApplyTask::Apply { shard, entries, proposals, conf_changes } => match shards
                .get_mut(&shard)
            {
                Some(applier) => applier.apply(entries, proposals, &conf_changes)?,
                None => tracing::error!(shard_id = shard.0, "apply task for unregistered shard"),
            },
            ApplyTask::GenerateSnapshot { shard, done } => match shards.get(&shard) {
                Some(applier) => applier.generate_snapshot(done),
                None => done(Err(SnapshotError::Unavailable {
                    reason: format!("shard {shard} is not registered with the apply worker"),
                })),
            },
            ApplyTask::InstallSnapshot { shard, path, index, term, raft, done } => {
                match shards.get_mut(&shard) {
                    Some(applier) => applier.install_snapshot(&path, index, term, &raft, done)?,
                    None => tracing::error!(shard_id = shard.0, "install for unregistered shard"),
                }
            }
        }
    }
    Ok(())
}

impl ShardApplier {
    fn apply(
        &mut self,
        entries: Vec<Entry>,
        proposals: Vec<PendingProposal<WriteReply>>,
        conf_changes: &[ConfChangeOutcome],
    ) -> Result<(), StorageError> {
        let commands: Vec<Option<RaftCommand>> = entries.iter().map(decode_command).collect();
        let applying = applying(&entries, &commands, conf_changes);
        let results = self.store.apply_committed(&mut self.state, &applying, &self.limits)?;
        if let Some(last) = entries.last() {
            self.applied_term = last.term;
        }
        // Per applied index: its term and its result.
        let mut by_index: HashMap<u64, (u64, Result<WriteResponse, AtollError>)> =
            entries.iter().zip(results).map(|(e, result)| (e.index, (e.term, result))).collect();
        for p in proposals {
            match by_index.remove(&p.index) {
                Some((term, result)) if term == p.term => {
                    // The proposer may have given up (timeout); nobody to tell then.
                    let _ = p.reply.send(result.map(|r| self.stamp(r, term)));
                }
                // Another leader's entry took this index: the proposal was not applied.
                _ => {
                    let _ = p.reply.send(Err(AtollError::LeaderChanged));
                }
            }
        }
        (self.on_applied)(Applied { state: self.state });
        Ok(())
    }

    fn generate_snapshot(&self, done: SnapshotGeneratedCallback) {
        if self.applied_term == 0 && self.state.applied_index > 0 {
            let reason = "the term of the applied index is not known yet".to_string();
            return done(Err(SnapshotError::Unavailable { reason }));
        }
        // Taken on this thread between two batches: the snapshot holds exactly the state
        // `self.state` describes, and `applied_term` is the term of its applied index.
        let snap = self.store.storage().db.snapshot();
        let (store, term) = (self.store.clone(), self.applied_term);
        let done = std::sync::Arc::new(std::sync::Mutex::new(Some(done)));
        let on_thread = std::sync::Arc::clone(&done);
        let spawned = std::thread::Builder::new().name("atoll-snapshot".into()).spawn(move || {
            let result = crate::snapshot::generate(&store, &snap, term);
            if let Some(done) = on_thread.lock().ok().and_then(|mut d| d.take()) {
                done(result);
            }
        });
        if let Err(e) = spawned
            && let Some(done) = done.lock().ok().and_then(|mut d| d.take())
        {
            done(Err(SnapshotError::from(e)));
        }
    }

    /// Installs a snapshot. Any failure is fatal for the node: Raft already treats the
    /// snapshot as this replica's log, and nothing was written unless the install
    /// committed, so a restart finds the old state and the leader sends a new snapshot.
    fn install_snapshot(
        &mut self,
        path: &std::path::Path,
        index: u64,
        term: u64,
        raft: &InstallRaftState,
        done: SnapshotInstalledCallback,
    ) -> Result<(), StorageError> {
        let state = self.store.install_snapshot(path, index, term, raft).map_err(|e| match e {
            SnapshotError::Storage(e) => e,
            other => StorageError::BadRecord { what: "raft snapshot", detail: other.to_string() },
        })?;
        self.state = state;
        self.applied_term = term;
        if let Err(e) = std::fs::remove_file(path) {
            tracing::warn!(path = %path.display(), error = %e, "installed snapshot not removed");
        }
        done(state);
        Ok(())
    }

    fn stamp(&self, mut resp: WriteResponse, term: u64) -> WriteResponse {
        let fill = |h: &mut ResponseHeader| {
            h.cluster_id = self.identity.cluster_id;
            h.member_id = self.identity.member_id;
            h.raft_term = term;
        };
        match &mut resp {
            WriteResponse::Put(r) => fill(&mut r.header),
            WriteResponse::DeleteRange(r) => fill(&mut r.header),
            WriteResponse::Txn(r) => fill(&mut r.header),
            WriteResponse::Compact(r) => fill(&mut r.header),
            WriteResponse::Close(r) => fill(&mut r.header),
            WriteResponse::Lease(r) => fill(&mut r.header),
            WriteResponse::RevokeLeaseKeys(r) => fill(&mut r.header),
            WriteResponse::Membership(h) => fill(h),
        }
        resp
    }
}

/// The committed entries as apply sees them: what the core decided for each conf change
/// entry, otherwise the entry's decoded command (`commands`, one per entry) or nothing.
pub fn applying<'a>(
    entries: &[Entry],
    commands: &'a [Option<RaftCommand>],
    conf_changes: &'a [ConfChangeOutcome],
) -> Vec<(u64, Applying<'a>)> {
    entries
        .iter()
        .zip(commands)
        .map(|(e, cmd)| {
            let conf = conf_changes.iter().find(|c| c.index == e.index);
            let applying = match (cmd, conf) {
                (_, Some(ConfChangeOutcome { result: Ok((cs, context)), .. })) => {
                    Applying::ConfChange(cs, context.as_ref())
                }
                (Some(cmd), None) => Applying::Command(cmd),
                _ => Applying::Nothing,
            };
            (e.index, applying)
        })
        .collect()
}

/// Decodes an entry's command; empty entries (a new leader's no-op) and conf changes carry
/// none. An undecodable command is logged and skipped identically on every replica.
fn decode_command(e: &Entry) -> Option<RaftCommand> {
    if e.get_entry_type() != EntryType::EntryNormal || e.data.is_empty() {
        return None;
    }
    match frame::decode_frame::<RaftCommand>(&e.data, atoll_proto::limits::FRAME_BYTES_MAX) {
        Ok(cmd) => Some(cmd),
        Err(err) => {
            tracing::error!(index = e.index, error = %err, "committed entry does not decode");
            None
        }
    }
}
