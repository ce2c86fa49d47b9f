//! Hibernation of idle shards (decision D14; TiKV's "hibernate region" is the model). A leader
//! that finds nothing to do for `hibernate_idle_ticks` ticks stops ticking, and with it stops
//! heartbeating, and asks its followers to stop too; a follower stops only if its log and
//! commit index match the leader's. Anything wakes a replica: a proposal or a read on it, any
//! message from a peer, or the loss of its leader's node (reported by the transport).
//!
//! raft-rs keeps `election_elapsed` frozen while a replica does not tick, and judges vote
//! requests against the lease it implies (check-quorum and pre-vote: a replica that heard a
//! leader less than an election timeout ago ignores them). So a replica that wakes restarts
//! the count: a leader must not run its quorum check before its followers had a chance to
//! answer, and a follower must give its leader a whole election timeout to wake before it
//! campaigns. A follower that wakes tells its leader ([`ShardPayload::WakeUp`]), so it is never
//! left to time out against a live leader that still sleeps. Only the loss of the leader's
//! node ends the lease at once: the transport has then not heard from that node for longer
//! than an election timeout.

use super::replica_core::ReplicaCore;
use atoll_proto::peer::{RaftMessage, RaftMessageType, ShardPayload};
use atoll_proto::{LogIndex, NodeId, Term};
use raft::StateRole;

/// Whether a replica ticks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hibernation {
    /// Ticking; `idle_ticks` consecutive ticks found it leading with nothing to do.
    Awake {
        /// Consecutive idle ticks so far.
        idle_ticks: usize,
    },
    /// Not ticking until something wakes it.
    Hibernating,
}

/// Why a replica wakes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum WakeReason {
    /// A proposal or a read arrived at this replica.
    Local,
    /// A message from the replica `from` arrived.
    Message {
        /// The sender.
        from: u64,
    },
    /// The transport lost the connection to the leader's node.
    LeaderLost,
}

impl<W, R> ReplicaCore<W, R> {
    /// Whether the replica hibernates: its shell need not tick it.
    pub fn is_hibernating(&self) -> bool {
        self.hibernation == Hibernation::Hibernating
    }

    /// The hibernation state, for tests and status.
    pub fn hibernation(&self) -> Hibernation {
        self.hibernation
    }

    /// The node `node` is unreachable: the transport lost its connection to it. A follower
    /// whose leader lives there wakes with its leader's lease over, so it grants votes at
    /// once and campaigns within one election timeout. Others ignore it.
    pub fn on_peer_unreachable(&mut self, node: NodeId) {
        let raft = &self.raw.raft;
        if raft.state != StateRole::Follower || raft.leader_id != node.0 || node.0 == 0 {
            return;
        }
        self.wake(WakeReason::LeaderLost);
        // The transport gives up on a connection only after hearing nothing for its idle
        // timeout (5 s, D9), longer than any election timeout: had this replica ticked, its
        // lease would be over by now.
        let raft = &mut self.raw.raft;
        raft.election_elapsed = raft.election_elapsed.max(self.election_ticks);
        tracing::debug!(shard_id = self.shard.0, leader = node.0, "leader's node unreachable");
    }

    /// Called by an awake tick before Raft ticks: counts idle ticks of a leader and, at
    /// `hibernate_idle_ticks`, hibernates the shard instead of ticking. Returns whether it
    /// did.
    pub(super) fn hibernate_if_idle(&mut self) -> bool {
        if self.hibernate_idle_ticks == 0 || !self.leader_is_idle() {
            self.hibernation = Hibernation::Awake { idle_ticks: 0 };
            return false;
        }
        let idle_ticks = match self.hibernation {
            Hibernation::Awake { idle_ticks } => idle_ticks + 1,
            Hibernation::Hibernating => return true,
        };
        if idle_ticks < self.hibernate_idle_ticks {
            self.hibernation = Hibernation::Awake { idle_ticks };
            return false;
        }
        let raft = &self.raw.raft;
        let (term, index) = (raft.term, raft.raft_log.last_index());
        let followers: Vec<u64> =
            raft.prs().iter().map(|(id, _)| *id).filter(|id| *id != self.node_id).collect();
        for to in followers {
            let from = self.node_id;
            let notice =
                ShardPayload::Hibernate { from, to, term: Term(term), index: LogIndex(index) };
            self.send_payload(to, notice);
        }
        self.hibernation = Hibernation::Hibernating;
        tracing::debug!(shard_id = self.shard.0, term, index, "shard hibernates");
        true
    }

    /// Whether this replica leads with nothing to do: no proposal, read, log write or log
    /// truncation pending, everything committed and applied, every replica matched at the
    /// last index, no membership change or leader transfer under way, and no message of
    /// Raft's left to hand out (so the notices follow the last heartbeats, never overtake
    /// them).
    fn leader_is_idle(&self) -> bool {
        let raft = &self.raw.raft;
        let last = raft.raft_log.last_index();
        raft.state == StateRole::Leader
            && self.proposals.is_empty()
            && self.reads_pending() == 0
            && raft.pending_read_count() == 0
            && self.persists_in_flight == 0
            && !self.log_truncation_in_flight
            && raft.raft_log.committed == last
            && self.applied_index == last
            && raft.lead_transferee.is_none()
            && raft.pending_conf_index <= self.applied_index
            && raft.prs().iter().all(|(_, pr)| pr.matched == last)
            && !self.raw.has_ready()
    }

    /// Whether a hibernating replica handles `m` without waking: a plain heartbeat from its
    /// leader (a follower), or the answer to one from a replica with the whole log (a
    /// leader). Both carry nothing that needs a timer, and both are what arrives last
    /// before a shard sleeps: heartbeats and their answers still on the way when the
    /// notices go out, which a network may deliver after them. Stepping them keeps a leader
    /// that is awake in touch; a heartbeat carrying a read (its context) or any other message
    /// wakes the replica.
    pub(super) fn answers_asleep(&self, m: &RaftMessage) -> bool {
        let raft = &self.raw.raft;
        if !self.is_hibernating() || m.term.0 != raft.term || !m.context.is_empty() {
            return false;
        }
        match m.msg_type {
            RaftMessageType::Heartbeat => {
                raft.state == StateRole::Follower && m.from == raft.leader_id
            }
            RaftMessageType::HeartbeatResponse => {
                let last = raft.raft_log.last_index();
                raft.state == StateRole::Leader
                    && raft.prs().get(m.from).is_some_and(|pr| pr.matched == last)
            }
            _ => false,
        }
    }

    /// The leader `from` hibernates at `term` with every replica at `index`, committed.
    pub(super) fn on_hibernate(&mut self, from: u64, term: u64, index: u64) {
        if self.follower_in_step(from, term, index) {
            if !self.is_hibernating() {
                tracing::debug!(shard_id = self.shard.0, term, index, "shard hibernates");
            }
            self.hibernation = Hibernation::Hibernating;
            return;
        }
        // Out of step (a lost heartbeat left the commit index behind, a newer term, a write
        // in flight): the sender must not sleep while this replica still needs it. Waking it
        // costs one message; leaving it asleep would cost an election timeout and a
        // pre-vote round before the shard settles.
        self.wake(WakeReason::Message { from });
        let wake =
            ShardPayload::WakeUp { from: self.node_id, to: from, term: Term(self.raw.raft.term) };
        self.send_payload(from, wake);
    }

    fn follower_in_step(&self, from: u64, term: u64, index: u64) -> bool {
        let raft = &self.raw.raft;
        raft.state == StateRole::Follower
            && raft.term == term
            && raft.leader_id == from
            && raft.raft_log.last_index() == index
            && raft.raft_log.committed == index
            && self.reads_pending() == 0
            && self.persists_in_flight == 0
            // An install under way holds its acknowledgement until durable (D20).
            && !self.installing()
    }

    /// Wakes a hibernating replica (nothing to do if it is awake). Its election count starts
    /// over, and a follower tells its leader, unless the leader is known to be gone.
    pub(super) fn wake(&mut self, reason: WakeReason) {
        if !self.is_hibernating() {
            return;
        }
        self.hibernation = Hibernation::Awake { idle_ticks: 0 };
        self.raw.raft.election_elapsed = 0;
        // Ticking again is all a leader needs: its first tick sends heartbeats.
        let raft = &self.raw.raft;
        let leader = raft.leader_id;
        if raft.state == StateRole::Follower
            && leader != 0
            && leader != self.node_id
            && reason != WakeReason::LeaderLost
        {
            // Even when the leader's own message woke this replica: the message may be an
            // old heartbeat that overtook the leader's request to hibernate, and the leader
            // may be asleep. An awake leader ignores the notice.
            let wake =
                ShardPayload::WakeUp { from: self.node_id, to: leader, term: Term(raft.term) };
            self.send_payload(leader, wake);
        }
        self.ready_wanted = true;
        tracing::debug!(shard_id = self.shard.0, ?reason, "replica wakes");
    }
}
