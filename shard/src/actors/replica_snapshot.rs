//! The replica actor's side of Raft snapshots (decision D20): generation and install go to
//! the apply worker (ordered behind the shard's applies), transfers to the peer sink, and
//! each outcome comes back here as a message for the core.

use super::compactor_actor::StateReplaced;
use super::messages::ReceiveSnapshot;
use super::replica_actor::ReplicaActor;
use crate::apply_worker::ApplyTask;
use crate::mvcc::ApplyState;
use crate::snapshot::{GeneratedSnapshot, InstallRaftState, SnapshotError};
use actix::prelude::*;
use atoll_proto::NodeId;
use atoll_proto::peer::ShardMessage;
use std::path::PathBuf;
use std::sync::Arc;

/// A snapshot Raft asked for was generated (or why not).
#[derive(Message)]
#[rtype(result = "()")]
pub(super) struct SnapshotGenerated(Result<Arc<GeneratedSnapshot>, String>);

/// A snapshot transfer to a node ended.
#[derive(Message)]
#[rtype(result = "()")]
pub(super) struct SnapshotSent {
    to: NodeId,
    delivered: bool,
}

/// A snapshot is installed and durable; the store is at this state.
#[derive(Message)]
#[rtype(result = "()")]
pub(super) struct SnapshotInstalled(ApplyState);

impl ReplicaActor {
    /// Queues a generation behind the shard's applies.
    pub(super) fn generate_snapshot(&mut self, addr: Addr<ReplicaActor>) {
        let done = Box::new(move |result: Result<GeneratedSnapshot, SnapshotError>| {
            let result = result.map(Arc::new).map_err(|e| e.to_string());
            // do_send: a completion must never be dropped by a full mailbox.
            addr.do_send(SnapshotGenerated(result));
        });
        let task = ApplyTask::GenerateSnapshot { shard: self.core.shard(), done };
        self.unsent_apply.push_back(task);
        self.retry_unsent();
    }

    /// Hands a transfer to the peer sink.
    pub(super) fn send_snapshot(
        &self,
        to: NodeId,
        msg: ShardMessage,
        snapshot: Arc<GeneratedSnapshot>,
        addr: Addr<ReplicaActor>,
    ) {
        let done = Box::new(move |delivered| addr.do_send(SnapshotSent { to, delivered }));
        self.peers.send_snapshot(to, msg, snapshot, done);
    }

    /// Queues an install behind the shard's applies.
    pub(super) fn install_snapshot(
        &mut self,
        path: PathBuf,
        (index, term): (u64, u64),
        raft: InstallRaftState,
        addr: Addr<ReplicaActor>,
    ) {
        let done = Box::new(move |state| addr.do_send(SnapshotInstalled(state)));
        let shard = self.core.shard();
        let task = ApplyTask::InstallSnapshot { shard, path, index, term, raft, done };
        self.unsent_apply.push_back(task);
        self.retry_unsent();
    }
}

/// Deletes a snapshot file off the arbiter thread.
pub(super) fn discard_snapshot(path: PathBuf) {
    tokio::task::spawn_blocking(move || {
        if let Err(e) = std::fs::remove_file(&path) {
            tracing::warn!(path = %path.display(), error = %e, "snapshot file not removed");
        }
    });
}

impl Handler<ReceiveSnapshot> for ReplicaActor {
    type Result = ();

    fn handle(&mut self, msg: ReceiveSnapshot, ctx: &mut Context<Self>) {
        self.core.on_snapshot_received(msg.from, msg.message, msg.path);
        self.perform(ctx);
    }
}

impl Handler<SnapshotGenerated> for ReplicaActor {
    type Result = ();

    fn handle(&mut self, SnapshotGenerated(result): SnapshotGenerated, ctx: &mut Context<Self>) {
        self.core.on_snapshot_generated(result);
        self.perform(ctx);
    }
}

impl Handler<SnapshotSent> for ReplicaActor {
    type Result = ();

    fn handle(&mut self, msg: SnapshotSent, ctx: &mut Context<Self>) {
        self.core.on_snapshot_sent(msg.to, msg.delivered);
        self.perform(ctx);
    }
}

impl Handler<SnapshotInstalled> for ReplicaActor {
    type Result = ();

    fn handle(&mut self, SnapshotInstalled(state): SnapshotInstalled, ctx: &mut Context<Self>) {
        self.published.publish_applied(state.revision, state.compact_revision);
        // The compactor's state describes the replaced data: it starts over from the new
        // compacted revision and the cursor the snapshot brought (D17, D20).
        self.compact_revision_told = state.compact_revision;
        if let Some(compactor) = &self.compactor {
            // do_send: the compactor must learn of every install.
            compactor.do_send(StateReplaced { compact_revision: state.compact_revision });
        }
        self.core.on_snapshot_installed(state);
        self.published.publish_snapshots_installed(self.core.snapshots_installed());
        self.perform(ctx);
    }
}
