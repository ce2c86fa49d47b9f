//! The replica actor's side of the core's effects: messages to the peer sink, log writes to
//! the log writer (their completion comes back as `Persisted` or `LogTruncated`), committed
//! entries to the apply worker (back as `AppliedMsg`), answers to callers.

use super::messages::*;
use super::replica_actor::ReplicaActor;
use crate::apply_worker::ApplyTask;
use crate::core::{Effect, LogWrite, LogWriteDone};
use crate::storage::LogWriteTask;
use actix::prelude::*;

impl ReplicaActor {
    /// Performs the core's effects in order, then schedules a Ready if the core wants one.
    pub(super) fn perform(&mut self, ctx: &mut Context<Self>) {
        let shard = self.core.shard();
        for effect in self.core.take_effects() {
            match effect {
                Effect::Send { to, msg } => self.peers.send(to, msg),
                Effect::Persist(write) => {
                    let task = log_task(shard, write, ctx.address());
                    self.unsent_log.push_back(task);
                    self.retry_unsent();
                }
                Effect::Apply { entries, proposals, conf_changes } => {
                    let task = ApplyTask::Apply { shard, entries, proposals, conf_changes };
                    self.unsent_apply.push_back(task);
                    self.retry_unsent();
                }
                Effect::WriteFailed(reply, err) => {
                    let _ = reply.send(Err(err));
                }
                Effect::ReadDone(reply, answer) => {
                    let _ = reply.send(answer);
                }
                Effect::GenerateSnapshot => self.generate_snapshot(ctx.address()),
                Effect::SendSnapshot { to, msg, snapshot } => {
                    self.send_snapshot(to, msg, snapshot, ctx.address());
                }
                Effect::InstallSnapshot { path, index, term, raft } => {
                    self.install_snapshot(path, (index, term), raft, ctx.address());
                }
                Effect::DiscardSnapshot(path) => super::replica_snapshot::discard_snapshot(path),
            }
        }
        if self.core.wants_ready() {
            self.schedule_ready(ctx);
        }
        self.publish_hibernation();
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
}

/// The log writer's task for a core's log write; its completion comes back to this actor.
fn log_task(
    shard: atoll_proto::ShardId,
    write: LogWrite,
    addr: Addr<ReplicaActor>,
) -> LogWriteTask {
    let LogWrite { entries, stale, hard_state, truncate, done } = write;
    // do_send: a completion must never be dropped by a full mailbox.
    let on_persisted: Box<dyn FnOnce() + Send> = match done {
        LogWriteDone::Ready { number, last_index, messages } => {
            Box::new(move || addr.do_send(Persisted { number, last_index, messages }))
        }
        LogWriteDone::Truncated(truncated) => {
            Box::new(move || addr.do_send(LogTruncated(truncated)))
        }
    };
    LogWriteTask { shard, entries, stale, hard_state, truncate, on_persisted }
}

impl Handler<Persisted> for ReplicaActor {
    type Result = ();

    fn handle(&mut self, msg: Persisted, ctx: &mut Context<Self>) {
        self.core.on_persisted(msg.number, msg.last_index, msg.messages);
        self.perform(ctx);
        self.retry_unsent();
    }
}

impl Handler<LogTruncated> for ReplicaActor {
    type Result = ();

    fn handle(&mut self, LogTruncated(truncated): LogTruncated, ctx: &mut Context<Self>) {
        self.core.on_log_truncated(truncated);
        self.perform(ctx);
    }
}

impl Handler<AppliedMsg> for ReplicaActor {
    type Result = ();

    fn handle(&mut self, AppliedMsg(applied): AppliedMsg, ctx: &mut Context<Self>) {
        let state = applied.state;
        self.published.publish_applied(state.revision, state.compact_revision);
        self.tell_compactor(state.compact_revision);
        self.core.on_applied(state);
        self.perform(ctx);
    }
}
