//! Hibernation (decision D14) asserted on three real cores wired by an in-test network that
//! delivers everything at once: log writes count as durable when emitted, apply is immediate.

use super::*;
use crate::config::ReplicaConfig;
use crate::mvcc::{ApplyState, MvccStore, ShardRange};
use crate::storage::Storage;
use atoll_proto::peer::ShardPayload;
use atoll_proto::{NodeId, PutRequest, ShardId, WriteOp};
use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;

const SHARD: ShardId = ShardId(9);
const ELECTION_TICKS: usize = 10;
const IDLE_TICKS: usize = 3;

type Core = ReplicaCore<u32, u32>;

/// Three voters of one shard, with every message they send.
struct Trio {
    _dirs: Vec<tempfile::TempDir>,
    cores: Vec<Core>,
    in_flight: VecDeque<(u64, u64, ShardPayload)>,
    /// Every message sent, as (from, to, payload), since the last `take_sent`.
    sent: Vec<(u64, u64, ShardPayload)>,
    /// Nodes that are down: they neither receive, tick nor send.
    down: BTreeSet<u64>,
    /// Messages from the first node to the second are lost.
    cut: BTreeSet<(u64, u64)>,
    writes_done: Vec<u32>,
    reads_done: Vec<(u32, bool)>,
}

fn put() -> WriteOp {
    WriteOp::Put(PutRequest { key: b"k".to_vec(), value: b"v".to_vec(), ..Default::default() })
}

impl Trio {
    fn must_start() -> Trio {
        let mut dirs = Vec::new();
        let mut cores = Vec::new();
        for id in 1..=3u64 {
            let dir = tempfile::tempdir().expect("tempdir");
            let storage = Storage::open(dir.path(), 1 << 20).expect("open");
            let store = MvccStore::new(storage, SHARD, ShardRange::all());
            let config = ReplicaConfig {
                node_id: id,
                election_ticks: ELECTION_TICKS,
                hibernate_idle_ticks: IDLE_TICKS,
                ..ReplicaConfig::default()
            };
            let deps = ReplicaCoreDeps {
                shard: SHARD,
                config,
                initial_voters: &[1, 2, 3],
                initial_members: &[],
                initial_shard_map: None,
                store: &store,
                clock: Arc::new(SystemClock),
            };
            let mut core = ReplicaCore::new(deps).expect("core").0;
            core.start();
            cores.push(core);
            dirs.push(dir);
        }
        let mut trio = Trio {
            _dirs: dirs,
            cores,
            in_flight: VecDeque::new(),
            sent: Vec::new(),
            down: BTreeSet::new(),
            cut: BTreeSet::new(),
            writes_done: Vec::new(),
            reads_done: Vec::new(),
        };
        // Raft campaigns only once the bootstrap conf changes are applied.
        trio.settle();
        trio.core(1).raw.campaign().expect("campaign");
        trio.core(1).ready_wanted = true;
        trio.settle();
        assert!(trio.core(1).is_leader(), "node 1 won the first election");
        trio.take_sent();
        trio
    }

    fn core(&mut self, id: u64) -> &mut Core {
        &mut self.cores[id as usize - 1]
    }

    fn up(&self) -> Vec<u64> {
        (1..=3).filter(|id| !self.down.contains(id)).collect()
    }

    /// Runs every up core until no core wants a Ready and no message is in flight.
    fn settle(&mut self) {
        for _ in 0..1_000 {
            let mut busy = false;
            for id in self.up() {
                if self.core(id).wants_ready() {
                    self.core(id).drive_ready();
                }
                busy |= self.perform(id);
            }
            while let Some((from, to, payload)) = self.in_flight.pop_front() {
                busy = true;
                if !self.down.contains(&to) && !self.cut.contains(&(from, to)) {
                    self.core(to).step(payload);
                }
            }
            if !busy && self.up().iter().all(|id| !self.cores[*id as usize - 1].wants_ready()) {
                return;
            }
        }
        panic!("the trio never settled");
    }

    /// Carries out one core's effects; returns whether there were any.
    fn perform(&mut self, id: u64) -> bool {
        let effects = self.core(id).take_effects();
        let any = !effects.is_empty();
        for effect in effects {
            match effect {
                Effect::Send { to, msg } => {
                    self.sent.push((id, to.0, msg.message.clone()));
                    self.in_flight.push_back((id, to.0, msg.message));
                }
                Effect::Persist(write) => match write.done {
                    LogWriteDone::Ready { number, last_index, messages } => {
                        self.core(id).on_persisted(number, last_index, messages);
                    }
                    LogWriteDone::Truncated(t) => self.core(id).on_log_truncated(t),
                },
                Effect::Apply { entries, proposals, .. } => {
                    let last = entries.last().map_or(0, |e| e.index);
                    let state = ApplyState { applied_index: last, ..ApplyState::default() };
                    self.core(id).on_applied(state);
                    self.writes_done.extend(proposals.into_iter().map(|p| p.reply));
                }
                Effect::WriteFailed(reply, _) => self.writes_done.push(reply),
                Effect::ReadDone(reply, answer) => self.reads_done.push((reply, answer.is_ok())),
                _ => panic!("the trio never truncates its log, so it never uses a snapshot"),
            }
        }
        any
    }

    fn tick(&mut self, ids: &[u64]) {
        for &id in ids {
            self.core(id).tick();
        }
        self.settle();
    }

    fn tick_up(&mut self, times: usize) {
        for _ in 0..times {
            let up = self.up();
            self.tick(&up);
        }
    }

    fn take_sent(&mut self) -> Vec<(u64, u64, ShardPayload)> {
        std::mem::take(&mut self.sent)
    }

    fn hibernating(&self) -> Vec<bool> {
        self.cores.iter().map(|c| c.is_hibernating()).collect()
    }

    /// Ticks until the whole shard hibernates; returns the ticks it took.
    fn must_hibernate(&mut self) -> usize {
        for ticks in 1..=4 * ELECTION_TICKS {
            self.tick_up(1);
            if self.hibernating() == [true, true, true] {
                return ticks;
            }
        }
        panic!("the shard did not hibernate: {:?}", self.hibernating());
    }
}

fn is_wake_up(p: &ShardPayload) -> bool {
    matches!(p, ShardPayload::WakeUp { .. })
}

#[test]
fn an_idle_leader_hibernates_after_its_idle_ticks_and_its_followers_with_it() {
    let mut trio = Trio::must_start();
    let ticks = trio.must_hibernate();
    // The first tick may still find the followers' commit index unconfirmed; at most one more.
    assert!((IDLE_TICKS..=IDLE_TICKS + 1).contains(&ticks), "hibernated after {ticks} ticks");
    let sent = trio.take_sent();
    let notices: Vec<(u64, u64)> = sent
        .iter()
        .filter(|(_, _, p)| matches!(p, ShardPayload::Hibernate { .. }))
        .map(|(from, to, _)| (*from, *to))
        .collect();
    assert_eq!(notices, vec![(1, 2), (1, 3)], "the leader asks each follower once");
    assert!(!sent.iter().any(|(_, _, p)| is_wake_up(p)), "nobody disagreed");

    // Hibernating: ticks send nothing, not even heartbeats, and Raft's clocks stand still.
    let elapsed: Vec<usize> = trio.cores.iter().map(|c| c.raw.raft.election_elapsed).collect();
    trio.tick_up(5 * ELECTION_TICKS);
    assert!(trio.take_sent().is_empty(), "a hibernating shard is silent");
    let after: Vec<usize> = trio.cores.iter().map(|c| c.raw.raft.election_elapsed).collect();
    assert_eq!(elapsed, after);
    assert!(trio.core(2).status().hibernating);
}

#[test]
fn a_proposal_wakes_the_shard_which_commits_it_and_hibernates_again() {
    let mut trio = Trio::must_start();
    trio.must_hibernate();
    trio.take_sent();
    trio.core(1).propose(put(), 7);
    assert!(!trio.core(1).is_hibernating());
    trio.settle();
    assert_eq!(trio.writes_done, vec![7], "the write is applied without any tick");
    assert_eq!(trio.hibernating(), [false, false, false], "the appends woke the followers");
    let sent = trio.take_sent();
    let wake_ups: Vec<u64> =
        sent.iter().filter(|(_, _, p)| is_wake_up(p)).map(|(from, _, _)| *from).collect();
    assert_eq!(wake_ups, vec![2, 3], "each woken follower tells its leader");
    trio.must_hibernate();
    assert!(trio.core(1).is_leader());
}

#[test]
fn a_read_on_a_follower_wakes_the_leader_and_is_answered() {
    let mut trio = Trio::must_start();
    trio.must_hibernate();
    trio.take_sent();
    trio.core(3).read_index(5);
    trio.settle();
    assert_eq!(trio.reads_done, vec![(5, true)], "the read index is confirmed");
    let sent = trio.take_sent();
    let (from, to, first) = &sent[0];
    assert_eq!((*from, *to), (3, 1));
    assert!(is_wake_up(first), "the follower's first message wakes its leader: {first:?}");
    assert!(!trio.core(1).is_hibernating());
}

#[test]
fn a_follower_out_of_step_refuses_to_hibernate_and_wakes_the_leader() {
    let mut trio = Trio::must_start();
    trio.must_hibernate();
    trio.core(1).propose(put(), 1);
    trio.settle();
    trio.take_sent();
    let index = trio.core(1).raft().raft.raft_log.last_index();
    let term = trio.core(1).raft().raft.term;
    // A notice from a leader further ahead than this follower.
    let ahead = ShardPayload::Hibernate {
        from: 1,
        to: 2,
        term: atoll_proto::Term(term),
        index: atoll_proto::LogIndex(index + 1),
    };
    trio.core(2).step(ahead);
    assert!(!trio.core(2).is_hibernating());
    trio.settle();
    let sent = trio.take_sent();
    assert!(sent.iter().any(|(from, to, p)| (*from, *to) == (2, 1) && is_wake_up(p)));
}

#[test]
fn the_loss_of_the_leaders_node_wakes_its_followers_who_elect_another_leader() {
    let mut trio = Trio::must_start();
    trio.must_hibernate();
    let term = trio.core(2).raft().raft.term;
    trio.down.insert(1);
    // Another node lost: nothing happens.
    trio.core(2).on_peer_unreachable(NodeId(3));
    assert!(trio.core(2).is_hibernating());
    for id in [2, 3] {
        trio.core(id).on_peer_unreachable(NodeId(1));
        assert!(!trio.core(id).is_hibernating());
        assert!(trio.core(id).raw.raft.election_elapsed >= ELECTION_TICKS, "lease over");
    }
    // Timeouts apart, so the two do not split the vote (raft-rs would draw them at random).
    trio.core(2).set_election_timeout(ELECTION_TICKS + 2);
    trio.core(3).set_election_timeout(2 * ELECTION_TICKS - 1);
    trio.settle();
    assert!(!trio.take_sent().iter().any(|(_, _, p)| is_wake_up(p)), "nobody to wake");
    // raft-rs draws timeouts in [election, 2 * election): with the lease over, a follower
    // campaigns within one election timeout, and the other grants its pre-vote at once.
    let mut ticks = 0;
    while ![2, 3].iter().any(|id| trio.cores[*id as usize - 1].is_leader()) {
        ticks += 1;
        assert!(ticks <= ELECTION_TICKS, "no new leader within an election timeout");
        trio.tick(&[2, 3]);
    }
    assert!(trio.core(2).raft().raft.term > term);
}

#[test]
fn a_woken_follower_cut_off_from_its_leader_does_not_depose_the_hibernating_leader() {
    let mut trio = Trio::must_start();
    trio.must_hibernate();
    let term = trio.core(1).raft().raft.term;
    // Node 2 wakes on a read, but nothing it sends reaches the leader: its pre-votes reach
    // node 3, which wakes with its lease restarted (so it refuses them) and wakes the leader.
    trio.cut.insert((2, 1));
    trio.core(2).read_index(1);
    trio.settle();
    assert!(trio.core(1).is_hibernating() && trio.core(3).is_hibernating());
    let mut pre_votes = 0;
    for _ in 0..4 * ELECTION_TICKS {
        trio.tick(&[1, 2, 3]);
        pre_votes += trio
            .take_sent()
            .iter()
            .filter(|(from, to, p)| {
                (*from, *to) == (2, 3)
                    && matches!(p, ShardPayload::Raft(m)
                        if m.msg_type == atoll_proto::peer::RaftMessageType::RequestPreVote)
            })
            .count();
    }
    assert!(pre_votes > 0, "node 2 timed out and asked node 3 for its pre-vote");
    assert!(trio.core(1).is_leader(), "the live leader keeps its shard");
    assert_eq!(trio.core(1).raft().raft.term, term, "no election happened");
    assert!(trio.reads_done.is_empty(), "the read cannot be confirmed yet");
    trio.cut.clear();
    // raft-rs draws each election timeout at random in [election, 2 * election): node 2 may
    // need up to two of them to hear from the leader again and ask anew.
    for _ in 0..3 * ELECTION_TICKS {
        if !trio.reads_done.is_empty() {
            break;
        }
        trio.tick(&[1, 2, 3]);
    }
    assert_eq!(trio.reads_done, vec![(1, true)], "the read was asked again and answered");
    assert_eq!(trio.core(1).raft().raft.term, term);
}
