//! Ready handling of the replica core (raft-rs async-append protocol): send messages, hand
//! entries and hard state to the log writer, hand committed entries to apply, confirm reads;
//! then react to `Persisted`, `Applied` and `LogTruncated`.

use crate::core::effects::{Effect, LogWrite, LogWriteDone};
use crate::core::replica_core::ReplicaCore;
use crate::limits::{READ_INDEX_RETRY_TICKS, READ_INDEX_RETRY_TICKS_MAX};
use crate::mvcc::ApplyState;
use crate::storage::TruncatedState;
use atoll_proto::NodeId;
use atoll_proto::peer::{ShardMessage, ShardPayload};
use raft::eraftpb::{Entry, Message as RaftMessage, MessageType};
use raft::{ReadState, StateRole, Storage as _};

impl<W, R> ReplicaCore<W, R> {
    /// Processes the pending Ready, if any, and asks for read indices of arrived reads.
    pub fn drive_ready(&mut self) {
        self.ready_wanted = false;
        if self.installing() {
            // Nothing of Raft's moves on until the snapshot is durable (D20); the install's
            // completion asks for a Ready again.
            return;
        }
        self.snapshot_housekeeping();
        self.request_read_index();
        if !self.raw.has_ready() {
            return;
        }
        let mut rd = self.raw.ready();
        let number = rd.number();
        self.send_messages(rd.take_messages());
        if !rd.snapshot().is_empty() {
            self.on_ready_snapshot(rd);
            return;
        }
        self.forward_committed(rd.take_committed_entries());
        self.on_read_states(rd.take_read_states());
        let entries = rd.take_entries();
        let hard_state = rd.hs().cloned();
        let persisted_messages = rd.take_persisted_messages();
        let last_index = entries.last().map_or(0, |e| e.index);
        let stale = self.raw.mut_store().append(&entries);
        if let Some(hs) = &hard_state {
            self.raw.mut_store().set_hard_state(hs.clone());
        }
        // raft-rs requires the entries to be readable through Storage before this call.
        self.raw.advance_append_async(rd);
        if entries.is_empty() && hard_state.is_none() && self.persists_in_flight == 0 {
            // Nothing to make durable and nothing earlier pending: persisted already.
            self.send_messages(persisted_messages);
            self.raw.on_persist_ready(number);
        } else {
            // Even an empty write goes through the writer when earlier Readies are in flight:
            // `on_persist_ready(n)` implies every Ready before n is durable.
            let done = LogWriteDone::Ready { number, last_index, messages: persisted_messages };
            self.persists_in_flight += 1;
            let write = LogWrite { entries, stale, hard_state, truncate: None, done };
            self.effects.push(Effect::Persist(write));
        }
        if self.raw.has_ready() {
            self.ready_wanted = true;
        }
    }

    /// A log write of a Ready is durable.
    pub fn on_persisted(&mut self, number: u64, last_index: u64, messages: Vec<RaftMessage>) {
        self.persists_in_flight -= 1;
        if last_index > 0 {
            self.raw.mut_store().on_persisted(last_index);
        }
        // Votes and append acknowledgements leave only now (Raft §5.1: persist before
        // replying), then Raft learns the Ready is durable.
        self.send_messages(messages);
        self.raw.on_persist_ready(number);
        self.ready_wanted = true;
        self.maybe_start_install();
    }

    /// Old log entries were deleted up to `truncated`, durably.
    pub fn on_log_truncated(&mut self, truncated: TruncatedState) {
        self.raw.mut_store().on_truncated(truncated);
        self.log_truncation_in_flight = false;
        self.maybe_start_install();
    }

    /// Committed entries were applied: the store is at `state`.
    pub fn on_applied(&mut self, state: ApplyState) {
        self.applied_index = state.applied_index;
        self.revision = state.revision;
        self.compact_revision = state.compact_revision;
        self.stamper.observe(state.revision);
        self.raw.advance_apply_to(state.applied_index);
        if self.campaign_after_apply.is_some_and(|last| state.applied_index >= last) {
            self.campaign_after_apply = None;
            self.campaign_if_sole_voter();
        }
        while self.reads_unapplied.front().is_some_and(|(i, _)| *i <= self.applied_index) {
            if let Some((_, reply)) = self.reads_unapplied.pop_front() {
                self.answer_read(reply);
            }
        }
        self.maybe_truncate_log();
        self.ready_wanted = true;
    }

    pub(super) fn send_messages(&mut self, messages: Vec<RaftMessage>) {
        for m in messages {
            if m.get_msg_type() == MessageType::MsgSnapshot {
                self.send_snapshot_message(&m);
                continue;
            }
            let to = m.to;
            self.send_payload(to, ShardPayload::Raft(crate::peer_codec::to_wire(&m)));
        }
    }

    /// Sends `message` to the replica `to` of this shard (replica IDs are node IDs).
    pub(super) fn send_payload(&mut self, to: u64, message: ShardPayload) {
        let msg = ShardMessage { shard: self.shard, message };
        self.effects.push(Effect::Send { to: NodeId(to), msg });
    }

    fn forward_committed(&mut self, entries: Vec<Entry>) {
        let Some(last) = entries.last().map(|e| e.index) else { return };
        let proposals = self.proposals.take_up_to(last);
        let conf_changes = self.apply_conf_entries(&entries);
        self.effects.push(Effect::Apply { entries, proposals, conf_changes });
    }

    /// Asks Raft for one read index covering every read that arrived since the last call.
    fn request_read_index(&mut self) {
        if self.reads_arrived.is_empty() {
            return;
        }
        // raft-rs silently drops a ReadIndex on a leader that has not yet committed an entry
        // of its term (Raft §6.4: the leader commits its no-op first). Hold the reads; the
        // Ready after that commit asks again.
        let raft = &self.raw.raft;
        if raft.state == StateRole::Leader && !raft.commit_to_current_term() {
            return;
        }
        let id = self.next_read_id;
        self.next_read_id += 1;
        self.raw.read_index(id.to_be_bytes().to_vec());
        let batch = std::mem::take(&mut self.reads_arrived);
        self.reads_unconfirmed.insert(id, (self.ticks, batch));
    }

    /// Puts read batches whose read index went unanswered for `read_retry_ticks` back in
    /// line for a new request; an answer to the old ID is then ignored. Each retry doubles
    /// the wait (`READ_INDEX_RETRY_TICKS_MAX` at most) until an answer arrives.
    pub(super) fn retry_stale_reads(&mut self) {
        let now = self.ticks;
        let wait = self.read_retry_ticks;
        let stale: Vec<u64> = self
            .reads_unconfirmed
            .iter()
            .filter(|(_, (asked, _))| now.saturating_sub(*asked) >= wait)
            .map(|(id, _)| *id)
            .collect();
        if !stale.is_empty() {
            self.read_retry_ticks = (wait * 2).min(READ_INDEX_RETRY_TICKS_MAX);
        }
        for id in stale {
            if let Some((_, replies)) = self.reads_unconfirmed.remove(&id) {
                self.reads_arrived.extend(replies);
            }
        }
    }

    pub(super) fn on_read_states(&mut self, states: Vec<ReadState>) {
        for rs in states {
            let Ok(id) = <[u8; 8]>::try_from(rs.request_ctx.as_slice()) else { continue };
            let Some((_, replies)) = self.reads_unconfirmed.remove(&u64::from_be_bytes(id)) else {
                continue;
            };
            self.read_retry_ticks = READ_INDEX_RETRY_TICKS;
            for reply in replies {
                if rs.index <= self.applied_index {
                    self.answer_read(reply);
                } else {
                    // Confirmed indices only grow, so the queue stays sorted.
                    self.reads_unapplied.push_back((rs.index, reply));
                }
            }
        }
    }

    /// Deletes log entries well behind the applied index so the log does not grow forever and
    /// a restart never replays more than `log_retained_entries`. Every replica, the leader
    /// included, keeps exactly that tail: a replica further behind than it gets a snapshot
    /// (D20), so a member that is down no longer makes the leader's log grow.
    fn maybe_truncate_log(&mut self) {
        let first = self.raw.store().first_index();
        let retained = self.log_retained_entries;
        if self.log_truncation_in_flight
            || self.installing()
            || self.applied_index < first + 2 * retained
        {
            return;
        }
        let index = self.applied_index - retained;
        let Ok(term) = self.raw.store().term(index) else { return };
        let truncated = TruncatedState { index, term };
        self.log_truncation_in_flight = true;
        self.effects.push(Effect::Persist(LogWrite {
            entries: Vec::new(),
            stale: None,
            hard_state: None,
            // Safe to delete: the entries are applied, and the apply batch is ahead of this
            // one in the journal, so it is durable whenever the deletion is.
            truncate: Some((first, truncated)),
            done: LogWriteDone::Truncated(truncated),
        }));
    }
}
