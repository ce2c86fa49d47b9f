//! Membership of one shard's Raft group (decision D18): proposing conf changes, applying the
//! committed ones to Raft's configuration, and a data shard's leader following the cluster's
//! membership.
//!
//! Raft's configuration changes when a conf change entry is handed out as committed, before
//! the apply worker reaches it: Raft only needs the order of conf changes, and the apply batch
//! records the resulting conf state with the entry's applied index, so a restart resumes from
//! the configuration of its applied index and replays what follows.

use crate::core::effects::{ConfChangeOutcome, Effect};
use crate::core::replica_core::ReplicaCore;
use crate::core::replica_core_hibernate::WakeReason;
use crate::limits::LEARNER_READY_PERCENT;
use crate::storage::raft_log::conf_change_v2;
use atoll_proto::member::ConfChangeContext;
use atoll_proto::{AtollError, NodeId, frame};
use protobuf::Message as _;
use raft::StateRole;
use raft::eraftpb::{ConfChange, ConfChangeType, ConfChangeV2, Entry, EntryType};
use std::collections::BTreeSet;

/// One replica a data shard should have: its node and whether it is a learner.
pub type DesiredReplica = (NodeId, bool);

impl<W, R> ReplicaCore<W, R> {
    /// Proposes a conf change: one change is simple, several go through joint consensus and
    /// leave it automatically. Refused while another is in flight.
    pub fn propose_conf_change(
        &mut self,
        changes: Vec<(NodeId, ConfChangeType)>,
        context: ConfChangeContext,
        reply: W,
    ) {
        self.wake(WakeReason::Local);
        match self.check_can_change_conf().and_then(|()| self.propose_changes(changes, &context)) {
            Ok(index) => {
                for stale in self.proposals.push(index, self.raw.raft.term, reply) {
                    self.effects.push(Effect::WriteFailed(stale.reply, AtollError::LeaderChanged));
                }
            }
            Err(e) => self.effects.push(Effect::WriteFailed(reply, e)),
        }
    }

    /// Whether `node` is a learner of this shard that has caught up with the leader (etcd's
    /// rule: its match is at least 90% of the leader's). Asked of the leader only.
    pub fn learner_ready(&self, node: NodeId) -> Result<(), AtollError> {
        if self.raw.raft.state != StateRole::Leader {
            return Err(self.not_leader());
        }
        let prs = self.raw.raft.prs();
        if !prs.conf().learners().contains(&node.0) {
            return Err(if prs.get(node.0).is_some() {
                AtollError::MemberNotLearner
            } else {
                AtollError::MemberNotFound
            });
        }
        if self.caught_up(node.0) { Ok(()) } else { Err(AtollError::LearnerNotReady) }
    }

    /// A data shard's leader brings its replicas in line with `desired`, the membership of
    /// the cluster: a missing member joins as a learner (a voter is promoted only once it has
    /// caught up, so an empty replica never counts toward the quorum), a learner that should
    /// vote is promoted when caught up, a replica of a removed member is removed. A leader
    /// that must go hands leadership to a voter that stays, which then removes it. All the
    /// changes of one call form one conf change. Does nothing while another is in flight.
    pub fn follow_members(&mut self, desired: &[DesiredReplica]) {
        if desired.is_empty() || self.check_can_change_conf().is_err() {
            return;
        }
        let conf = self.raw.raft.prs().conf().to_conf_state();
        let voters: BTreeSet<u64> = conf.voters.iter().copied().collect();
        let learners: BTreeSet<u64> = conf.learners.iter().copied().collect();
        let wanted: BTreeSet<u64> = desired.iter().map(|(n, _)| n.0).collect();
        if !wanted.contains(&self.node_id) {
            self.hand_over_leadership(desired);
            return;
        }
        let mut changes = Vec::new();
        for &(node, is_learner) in desired {
            let id = node.0;
            let present = voters.contains(&id) || learners.contains(&id);
            if !present {
                changes.push((node, ConfChangeType::AddLearnerNode));
            } else if !is_learner && learners.contains(&id) && self.caught_up(id) {
                changes.push((node, ConfChangeType::AddNode));
            }
        }
        for id in voters.iter().chain(&learners).filter(|id| !wanted.contains(id)) {
            changes.push((NodeId(*id), ConfChangeType::RemoveNode));
        }
        if changes.is_empty() {
            return;
        }
        tracing::info!(shard_id = self.shard.0, ?changes, "following the cluster's membership");
        // A hibernating shard wakes to replicate it. Nobody waits for the answer: the next
        // call sees the outcome in the configuration.
        self.wake(WakeReason::Local);
        let _ = self.propose_changes(changes, &ConfChangeContext::Follow);
    }

    /// Applies the conf change entries among `entries` to Raft's configuration, in order.
    pub(super) fn apply_conf_entries(&mut self, entries: &[Entry]) -> Vec<ConfChangeOutcome> {
        let mut outcomes = Vec::new();
        let mut bootstrapped = None;
        for e in entries {
            let cc = match e.get_entry_type() {
                EntryType::EntryConfChangeV2 => ConfChangeV2::parse_from_bytes(e.get_data())
                    .map_err(|err| format!("conf change does not decode: {err}")),
                EntryType::EntryConfChange => ConfChange::parse_from_bytes(e.get_data())
                    .map(|v1| raft_proto_v1_to_v2(&v1))
                    .map_err(|err| format!("conf change does not decode: {err}")),
                EntryType::EntryNormal => continue,
            };
            let context = decode_context(e);
            if matches!(context, Some(ConfChangeContext::Bootstrap { .. })) {
                bootstrapped = Some(e.index);
            }
            let result = cc.and_then(|cc| {
                self.raw.apply_conf_change(&cc).map_err(|err| format!("raft refused it: {err}"))
            });
            let result = match result {
                Ok(cs) => {
                    self.raw.mut_store().set_conf_state(cs.clone());
                    Ok((cs, context))
                }
                Err(reason) => {
                    tracing::warn!(shard_id = self.shard.0, index = e.index, %reason, "conf change not applied");
                    Err(reason)
                }
            };
            outcomes.push(ConfChangeOutcome { index: e.index, result });
        }
        // A single-member cluster elects itself at once on its first start, as `start` does
        // on every later one; Raft campaigns only once its conf changes are applied.
        if bootstrapped.is_some() {
            self.campaign_after_apply = bootstrapped;
        }
        outcomes
    }

    /// Proposes one conf change; returns its log index.
    fn propose_changes(
        &mut self,
        changes: Vec<(NodeId, ConfChangeType)>,
        context: &ConfChangeContext,
    ) -> Result<u64, AtollError> {
        let context = frame::encode_frame(context)
            .map_err(|e| AtollError::Malformed { reason: e.to_string() })?;
        let cc = conf_change_v2(changes);
        let before = self.raw.raft.raft_log.last_index();
        if let Err(e) = self.raw.propose_conf_change(context, cc) {
            tracing::debug!(shard_id = self.shard.0, error = %e, "conf change dropped");
            return Err(self.not_leader());
        }
        let index = self.raw.raft.raft_log.last_index();
        if index == before {
            return Err(self.not_leader());
        }
        self.ready_wanted = true;
        Ok(index)
    }

    fn hand_over_leadership(&mut self, desired: &[DesiredReplica]) {
        let prs = self.raw.raft.prs();
        let conf = prs.conf().to_conf_state();
        let successor = desired
            .iter()
            .filter(|(n, learner)| !learner && conf.voters.contains(&n.0))
            .max_by_key(|(n, _)| prs.get(n.0).map_or(0, |p| p.matched))
            .map(|(n, _)| *n);
        if let Some(to) = successor {
            tracing::info!(
                shard_id = self.shard.0,
                to = to.0,
                "leaving the shard: handing over leadership"
            );
            let _ = self.transfer_leader(to);
        }
    }

    fn check_can_change_conf(&self) -> Result<(), AtollError> {
        let raft = &self.raw.raft;
        if raft.state != StateRole::Leader {
            return Err(self.not_leader());
        }
        let joint = !raft.prs().conf().to_conf_state().voters_outgoing.is_empty();
        if raft.has_pending_conf() || joint {
            return Err(AtollError::Busy { limit: "one membership change at a time".into() });
        }
        Ok(())
    }

    fn caught_up(&self, node: u64) -> bool {
        let leader_last = self.raw.raft.raft_log.last_index();
        let matched = self.raw.raft.prs().get(node).map_or(0, |p| p.matched);
        matched.saturating_mul(100) >= leader_last.saturating_mul(LEARNER_READY_PERCENT)
    }
}

/// A v1 conf change as the one-change v2 it means (raft-rs proposes only v2; a v1 entry can
/// only come from another implementation).
fn raft_proto_v1_to_v2(v1: &ConfChange) -> ConfChangeV2 {
    let mut cc = conf_change_v2([(NodeId(v1.node_id), v1.get_change_type())]);
    cc.context = v1.context.clone();
    cc
}

fn decode_context(e: &Entry) -> Option<ConfChangeContext> {
    if e.context.is_empty() {
        // raft-rs's own entry leaving a joint configuration carries none.
        return None;
    }
    match frame::decode_frame::<ConfChangeContext>(&e.context, atoll_proto::limits::FRAME_BYTES_MAX)
    {
        Ok(c) => Some(c),
        Err(err) => {
            tracing::error!(index = e.index, error = %err, "conf change context does not decode");
            None
        }
    }
}
