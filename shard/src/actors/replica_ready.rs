//! Ready handling of the replica actor (raft-rs async-append protocol): send messages, hand
//! entries and hard state to the log writer, hand committed entries to the apply worker,
//! confirm reads; then react to `Persisted` and `Applied`.

use super::messages::*;
use super::replica_actor::{ReadReply, ReplicaActor};
use crate::apply_worker::ApplyTask;
use crate::limits::RAFT_LOG_RETAINED_ENTRIES;
use crate::storage::{LogWriteTask, TruncatedState};
use actix::prelude::*;
use raft::ReadState;
use raft::StateRole;
use raft::Storage as _;
use raft::eraftpb::{Entry, Message as RaftMessage};

impl ReplicaActor {
    pub(super) fn drive_ready(&mut self, ctx: &mut Context<Self>) {
        self.request_read_index();
        if !self.raw.has_ready() {
            return;
        }
        let mut rd = self.raw.ready();
        let number = rd.number();
        self.send_messages(rd.take_messages());
        if !rd.snapshot().is_empty() {
            // Snapshots arrive only from a leader with peers; they come with replication.
            tracing::error!(shard_id = self.shard.0, "snapshot received but not supported yet");
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
            // Even an empty task goes through the writer when earlier Readies are in flight:
            // `on_persist_ready(n)` implies every Ready before n is durable.
            let addr = ctx.address();
            let task = LogWriteTask {
                shard: self.shard,
                entries,
                stale,
                hard_state,
                truncate: None,
                on_persisted: Box::new(move || {
                    addr.do_send(Persisted { number, last_index, messages: persisted_messages });
                }),
            };
            self.persists_in_flight += 1;
            self.submit_log_task(task);
        }
        self.published.publish(self.raw.raft.term, self.raw.raft.leader_id);
        if self.raw.has_ready() {
            self.schedule_ready(ctx);
        }
    }

    pub(super) fn send_messages(&mut self, messages: Vec<RaftMessage>) {
        // A single-node shard has no peers; replication adds the peer transport.
        for m in messages {
            tracing::warn!(shard_id = self.shard.0, to = m.to, "no transport for raft message");
        }
    }

    fn forward_committed(&mut self, entries: Vec<Entry>) {
        let Some(last) = entries.last().map(|e| e.index) else { return };
        let proposals = self.proposals.take_up_to(last);
        self.unsent_apply.push_back(ApplyTask::Apply { shard: self.shard, entries, proposals });
        self.retry_unsent();
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
        self.reads_unconfirmed.insert(id, std::mem::take(&mut self.reads_arrived));
    }

    fn on_read_states(&mut self, states: Vec<ReadState>) {
        for rs in states {
            let Ok(id) = <[u8; 8]>::try_from(rs.request_ctx.as_slice()) else { continue };
            let Some(replies) = self.reads_unconfirmed.remove(&u64::from_be_bytes(id)) else {
                continue;
            };
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

    fn answer_read(&self, reply: ReadReply) {
        let _ = reply.send(Ok(ReadReady { term: self.raw.raft.term }));
    }

    fn submit_log_task(&mut self, task: LogWriteTask) {
        self.unsent_log.push_back(task);
        self.retry_unsent();
    }

    /// Hands queued tasks to the log writer and the apply worker, in order, until one of the
    /// queues is full; the rest waits for the next tick or completion.
    pub(super) fn retry_unsent(&mut self) {
        while let Some(task) = self.unsent_log.pop_front() {
            if let Err(task) = self.log_writer.try_submit(task) {
                self.unsent_log.push_front(*task);
                break;
            }
        }
        while let Some(task) = self.unsent_apply.pop_front() {
            if let Err(task) = self.applier.try_submit(task) {
                self.unsent_apply.push_front(*task);
                break;
            }
        }
    }

    /// Deletes log entries well behind the applied index so the log does not grow forever and
    /// a restart never replays more than `RAFT_LOG_RETAINED_ENTRIES`.
    fn maybe_truncate_log(&mut self, ctx: &mut Context<Self>) {
        let first = self.raw.store().first_index();
        if self.log_truncation_in_flight
            || self.applied_index < first + 2 * RAFT_LOG_RETAINED_ENTRIES
        {
            return;
        }
        let index = self.applied_index - RAFT_LOG_RETAINED_ENTRIES;
        let Ok(term) = self.raw.store().term(index) else { return };
        let truncated = TruncatedState { index, term };
        let addr = ctx.address();
        self.log_truncation_in_flight = true;
        self.submit_log_task(LogWriteTask {
            shard: self.shard,
            entries: Vec::new(),
            stale: None,
            hard_state: None,
            // Safe to delete: the entries are applied, and the apply batch is ahead of this
            // one in the journal, so it is durable whenever the deletion is.
            truncate: Some((first, truncated)),
            on_persisted: Box::new(move || addr.do_send(LogTruncated(truncated))),
        });
    }
}

impl Handler<Persisted> for ReplicaActor {
    type Result = ();

    fn handle(&mut self, msg: Persisted, ctx: &mut Context<Self>) {
        self.persists_in_flight -= 1;
        if msg.last_index > 0 {
            self.raw.mut_store().on_persisted(msg.last_index);
        }
        self.send_messages(msg.messages);
        self.raw.on_persist_ready(msg.number);
        self.retry_unsent();
        self.schedule_ready(ctx);
    }
}

impl Handler<LogTruncated> for ReplicaActor {
    type Result = ();

    fn handle(&mut self, LogTruncated(truncated): LogTruncated, _: &mut Context<Self>) {
        self.raw.mut_store().on_truncated(truncated);
        self.log_truncation_in_flight = false;
    }
}

impl Handler<AppliedMsg> for ReplicaActor {
    type Result = ();

    fn handle(&mut self, AppliedMsg(applied): AppliedMsg, ctx: &mut Context<Self>) {
        let state = applied.state;
        self.applied_index = state.applied_index;
        self.revision = state.revision;
        self.compact_revision = state.compact_revision;
        self.stamper.observe(state.revision);
        self.raw.advance_apply_to(state.applied_index);
        while self.reads_unapplied.front().is_some_and(|(i, _)| *i <= self.applied_index) {
            if let Some((_, reply)) = self.reads_unapplied.pop_front() {
                self.answer_read(reply);
            }
        }
        self.maybe_truncate_log(ctx);
        self.schedule_ready(ctx);
    }
}
