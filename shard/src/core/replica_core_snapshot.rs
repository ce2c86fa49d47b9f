//! Raft snapshots in the replica core (decision D20).
//!
//! Leader: raft-rs asks the log store for a snapshot when a follower needs entries the log
//! no longer has; the store answers "temporarily unavailable" and flags the request, and the
//! core asks its shell to generate one ([`Effect::GenerateSnapshot`]). Once generated, the
//! store offers it, raft-rs sends `MsgSnapshot`, and the core turns that message into
//! [`Effect::SendSnapshot`], whose outcome goes back to raft-rs as `report_snapshot`.
//!
//! Follower: a snapshot stream is verified into a file by the node, then stepped here with
//! its file. When raft-rs restores it, the Ready carries it: the core makes the log store
//! show the restored log at once (raft-rs reads it back before the next Ready), then holds
//! every later Ready until the install is durable. The install waits for this replica's log
//! writes in flight (an older write landing after it would resurrect old entries or an old
//! hard state) and runs on the apply worker behind every apply handed out before, so no
//! entry of the old log is applied over the snapshot.

use crate::core::effects::Effect;
use crate::core::replica_core::ReplicaCore;
use crate::mvcc::ApplyState;
use crate::snapshot::{GeneratedSnapshot, InstallRaftState};
use atoll_proto::NodeId;
use atoll_proto::peer::{RaftMessage as WireMessage, ShardMessage, ShardPayload};
use raft::eraftpb::Message as RaftMessage;
use raft::{Ready, SnapshotStatus};
use std::path::PathBuf;
use std::sync::Arc;

/// A restored snapshot waiting to be installed, and what to do once it is durable.
pub(crate) struct PendingInstall {
    path: PathBuf,
    index: u64,
    term: u64,
    /// The Ready that carried the snapshot: reported persisted after the install.
    number: u64,
    /// Messages that may leave only once the snapshot is durable (its acknowledgement).
    messages: Vec<RaftMessage>,
    raft: InstallRaftState,
    /// Handed to the shell already.
    started: bool,
}

/// Snapshot bookkeeping of one replica.
#[derive(Default)]
pub(crate) struct SnapshotState {
    /// Follower: the snapshot being installed; no Ready is processed meanwhile.
    pub(crate) install: Option<PendingInstall>,
    /// Follower: the received file raft-rs restored, by (index, term), until its Ready.
    received: Option<(u64, u64, PathBuf)>,
    /// Leader: a generation is under way.
    generating: bool,
    /// Leader: transfers whose outcome raft-rs must hear but that could not even start.
    failed_sends: Vec<u64>,
    /// Snapshots installed since start (a metric).
    pub(crate) installed: u64,
}

impl<W, R> ReplicaCore<W, R> {
    /// A snapshot stream from node `from` was verified into the file `path`; `message` is
    /// its `MsgSnapshot`. The file is kept if raft-rs restores the snapshot, else deleted.
    pub fn on_snapshot_received(&mut self, from: NodeId, message: WireMessage, path: PathBuf) {
        let meta = message.snapshot.as_ref().map(|s| (s.metadata.index.0, s.metadata.term.0));
        if self.snapshots.install.is_some() || meta.is_none() {
            // One install at a time; the leader retries after the transfer it reported.
            self.effects.push(Effect::DiscardSnapshot(path));
            return;
        }
        tracing::debug!(shard_id = self.shard.0, from = from.0, "snapshot stepped");
        self.step_raft(message);
        let restored = self.raw.raft.raft_log.unstable_snapshot().as_ref().map(|s| {
            let m = s.get_metadata();
            (m.index, m.term)
        });
        if restored.is_some() && restored == meta {
            let (index, term) = meta.unwrap_or_default();
            if let Some((_, _, older)) = self.snapshots.received.replace((index, term, path)) {
                self.effects.push(Effect::DiscardSnapshot(older));
            }
        } else {
            // Stale (the log already covers it) or refused: nothing to install.
            self.effects.push(Effect::DiscardSnapshot(path));
        }
    }

    /// The shell generated the snapshot Raft asked for (or could not).
    pub fn on_snapshot_generated(&mut self, result: Result<Arc<GeneratedSnapshot>, String>) {
        self.snapshots.generating = false;
        match result {
            Ok(snapshot) => {
                tracing::info!(
                    shard_id = self.shard.0,
                    index = snapshot.meta.index,
                    term = snapshot.meta.term,
                    bytes = snapshot.bytes,
                    "snapshot generated"
                );
                self.raw.mut_store().set_snapshot(snapshot);
            }
            // Raft asks again on a later heartbeat, and the next request tries again.
            Err(reason) => {
                tracing::warn!(shard_id = self.shard.0, reason = %reason, "snapshot not generated");
            }
        }
        self.ready_wanted = true;
    }

    /// A snapshot transfer to node `to` ended; Raft resumes replicating to it (success) or
    /// probes it again and sends another snapshot if it still needs one (failure).
    pub fn on_snapshot_sent(&mut self, to: NodeId, delivered: bool) {
        let status = if delivered { SnapshotStatus::Finish } else { SnapshotStatus::Failure };
        if !delivered {
            tracing::warn!(shard_id = self.shard.0, to = to.0, "snapshot transfer failed");
        }
        self.raw.report_snapshot(to.0, status);
        self.ready_wanted = true;
    }

    /// The install handed out by [`Effect::InstallSnapshot`] is durable: the store is at
    /// `state`. Raft learns the snapshot is persisted and applied, and Readies resume.
    pub fn on_snapshot_installed(&mut self, state: ApplyState) {
        let Some(install) = self.snapshots.install.take() else { return };
        self.snapshots.installed += 1;
        tracing::info!(
            shard_id = self.shard.0,
            index = install.index,
            term = install.term,
            revision = state.revision,
            "snapshot installed"
        );
        self.raw.on_persist_ready(install.number);
        // The acknowledgement of the snapshot leaves only now that it is durable.
        self.send_messages(install.messages);
        self.on_applied(state);
    }

    /// The term of the entry at the applied index, 0 when the log no longer knows it (the
    /// apply worker learns it from the next entry it applies).
    pub fn applied_term(&self) -> u64 {
        use raft::Storage as _;
        self.raw.store().term(self.applied_index).unwrap_or(0)
    }

    /// Snapshots this replica installed since it started.
    pub fn snapshots_installed(&self) -> u64 {
        self.snapshots.installed
    }

    /// Leader side, before a Ready: generation Raft asked for, and transfers that failed to
    /// start (reported here, outside the Ready's handling, as raft-rs requires).
    pub(super) fn snapshot_housekeeping(&mut self) {
        for to in std::mem::take(&mut self.snapshots.failed_sends) {
            self.raw.report_snapshot(to, SnapshotStatus::Failure);
        }
        if self.raw.store().take_snapshot_wanted() && !self.snapshots.generating {
            self.snapshots.generating = true;
            self.effects.push(Effect::GenerateSnapshot);
        }
    }

    /// An outgoing `MsgSnapshot`: its state goes on a stream of its own from the file the
    /// metadata was taken from.
    pub(super) fn send_snapshot_message(&mut self, m: &RaftMessage) {
        let index = m.get_snapshot().get_metadata().index;
        let snapshot = self.raw.store().generated_snapshot().filter(|g| g.meta.index == index);
        match snapshot {
            Some(snapshot) => {
                let snapshot = Arc::clone(snapshot);
                let payload = ShardPayload::Raft(crate::peer_codec::to_wire(m));
                let msg = ShardMessage { shard: self.shard, message: payload };
                self.effects.push(Effect::SendSnapshot { to: NodeId(m.to), msg, snapshot });
            }
            None => {
                tracing::error!(shard_id = self.shard.0, index, "snapshot to send has no file");
                self.snapshots.failed_sends.push(m.to);
            }
        }
    }

    /// A Ready that restores a snapshot: the log store shows the restored log now, the
    /// install is handed out once nothing older of this replica is being written.
    pub(super) fn on_ready_snapshot(&mut self, mut rd: Ready) {
        let number = rd.number();
        let meta = rd.snapshot().get_metadata().clone();
        let (index, term) = (meta.index, meta.term);
        self.on_read_states(rd.take_read_states());
        let entries = rd.take_entries();
        let messages = rd.take_persisted_messages();
        let store = self.raw.mut_store();
        store.restore_snapshot(index, term, meta.get_conf_state().clone());
        // Stale entries need no deletion: the install drops the shard's whole log.
        let _ = store.append(&entries);
        let mut hard_state = rd.hs().cloned().unwrap_or_else(|| store.hard_state().clone());
        hard_state.commit = hard_state.commit.max(index);
        store.set_hard_state(hard_state.clone());
        self.raw.advance_append_async(rd);
        let path = match self.snapshots.received.take() {
            Some((i, t, path)) if (i, t) == (index, term) => path,
            other => {
                // Only snapshots stepped with a file are restored; an empty path makes the
                // install fail loudly rather than leave Raft waiting forever.
                tracing::error!(shard_id = self.shard.0, index, "restored snapshot has no file");
                if let Some((_, _, path)) = other {
                    self.effects.push(Effect::DiscardSnapshot(path));
                }
                PathBuf::new()
            }
        };
        let raft = InstallRaftState { hard_state, entries };
        self.snapshots.install =
            Some(PendingInstall { path, index, term, number, messages, raft, started: false });
        self.maybe_start_install();
    }

    /// Hands the pending install out once no log write of this replica is in flight.
    pub(super) fn maybe_start_install(&mut self) {
        if self.persists_in_flight > 0 || self.log_truncation_in_flight {
            return;
        }
        let Some(install) = self.snapshots.install.as_mut().filter(|i| !i.started) else {
            return;
        };
        install.started = true;
        self.effects.push(Effect::InstallSnapshot {
            path: install.path.clone(),
            index: install.index,
            term: install.term,
            raft: install.raft.clone(),
        });
    }

    /// Whether a snapshot is being installed (Readies wait).
    pub(super) fn installing(&self) -> bool {
        self.snapshots.install.is_some()
    }
}
