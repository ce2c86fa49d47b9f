//! What the replica core asks its shell to do. The core never performs IO: each event it
//! handles appends effects, and the shell (the replica actor, or the simulator) carries them
//! out in order and reports completions back as events.

use crate::core::PendingProposal;
use crate::core::replica_status::ReadReady;
use crate::snapshot::{GeneratedSnapshot, InstallRaftState};
use crate::storage::TruncatedState;
use atoll_proto::member::ConfChangeContext;
use atoll_proto::peer::ShardMessage;
use atoll_proto::{AtollError, NodeId};
use raft::eraftpb::{ConfState, Entry, HardState, Message as RaftMessage};
use std::path::PathBuf;
use std::sync::Arc;

/// One thing for the shell to do. `W` answers a proposal, `R` answers a read.
pub enum Effect<W, R> {
    /// Send a Raft message to the replica of the same shard on node `to`.
    Send {
        /// Destination node.
        to: NodeId,
        /// The message, already in its wire form.
        msg: ShardMessage,
    },
    /// Make a log write durable, then report [`LogWrite::done`] back to the core.
    Persist(LogWrite),
    /// Apply committed entries in order, answer the proposals among them, then report the
    /// new apply state back to the core.
    Apply {
        /// Committed entries, in log order.
        entries: Vec<Entry>,
        /// Proposals whose index is within `entries`; answered by apply after matching the
        /// entry's term (a different term means another leader's entry took the index).
        proposals: Vec<PendingProposal<W>>,
        /// What Raft made of the conf change entries among `entries`, in log order; apply
        /// records each outcome with the entry (decision D18).
        conf_changes: Vec<ConfChangeOutcome>,
    },
    /// A proposal that will never be applied, or was refused before proposing.
    WriteFailed(W, AtollError),
    /// A read's answer: confirmed and applied locally, or refused.
    ReadDone(R, Result<ReadReady, AtollError>),
    /// Generate a snapshot of the shard at its applied index, after every apply handed out
    /// before, then report [`crate::core::ReplicaCore::on_snapshot_generated`].
    GenerateSnapshot,
    /// Stream `snapshot` to node `to` with `msg` (the `MsgSnapshot` with its metadata), then
    /// report [`crate::core::ReplicaCore::on_snapshot_sent`].
    SendSnapshot {
        /// Destination node.
        to: NodeId,
        /// The `MsgSnapshot`, in its wire form.
        msg: ShardMessage,
        /// The file to stream.
        snapshot: Arc<GeneratedSnapshot>,
    },
    /// Install the received snapshot file after every apply handed out before, make it
    /// durable, delete the file, then report
    /// [`crate::core::ReplicaCore::on_snapshot_installed`].
    InstallSnapshot {
        /// The verified file.
        path: PathBuf,
        /// The snapshot's index.
        index: u64,
        /// The snapshot's term.
        term: u64,
        /// Raft's state to write with it.
        raft: InstallRaftState,
    },
    /// Delete a received snapshot file Raft did not restore.
    DiscardSnapshot(PathBuf),
}

/// A committed conf change entry as the core applied it to Raft's configuration. The conf
/// state must reach storage in the same batch as the entry's applied index, so a restart
/// resumes from a configuration that matches its applied index.
#[derive(Clone, Debug, PartialEq)]
pub struct ConfChangeOutcome {
    /// The entry's index.
    pub index: u64,
    /// The configuration after the entry and why it was proposed, or why Raft refused it
    /// (the entry then changes nothing).
    pub result: Result<(ConfState, Option<ConfChangeContext>), String>,
}

/// A write for the node's log writer, with what to report once it is durable.
#[derive(Debug)]
pub struct LogWrite {
    /// New entries, in order.
    pub entries: Vec<Entry>,
    /// Inclusive index range of entries to delete because the log got shorter.
    pub stale: Option<(u64, u64)>,
    /// A new hard state, if it changed.
    pub hard_state: Option<HardState>,
    /// Delete entries from the first index up to the truncated state and record it.
    pub truncate: Option<(u64, TruncatedState)>,
    /// The completion to report once all of the above is durable.
    pub done: LogWriteDone,
}

/// The completion of a [`LogWrite`].
#[derive(Debug)]
pub enum LogWriteDone {
    /// Report [`crate::core::ReplicaCore::on_persisted`] with these.
    Ready {
        /// The Ready's number.
        number: u64,
        /// Last index written, 0 if none.
        last_index: u64,
        /// Messages that may leave only once the Ready is durable (votes, append acks).
        messages: Vec<RaftMessage>,
    },
    /// Report [`crate::core::ReplicaCore::on_log_truncated`] with this.
    Truncated(TruncatedState),
}
