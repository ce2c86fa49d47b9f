//! The simulated network: every message gets a random delay (so messages reorder), may be
//! dropped or duplicated, and never crosses a partition. A crashed node's messages in flight,
//! to or from it, are lost.

use crate::rng::Rng;
use atoll_proto::peer::ShardMessage;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// How hostile the network is (per seed).
#[derive(Clone, Debug)]
pub struct NetConfig {
    pub drop_per_mille: u64,
    pub duplicate_per_mille: u64,
    pub delay_ms_min: u64,
    pub delay_ms_max: u64,
}

/// A message on the way.
pub struct Envelope {
    pub from: u64,
    pub to: u64,
    pub msg: ShardMessage,
    /// A snapshot's file travels with its `MsgSnapshot` (the real transport streams it).
    pub snapshot: Option<PathBuf>,
}

pub struct Network {
    pub config: NetConfig,
    /// By (delivery time, sequence number): equal times keep sending order.
    in_flight: BTreeMap<(u64, u64), Envelope>,
    seq: u64,
    /// Partition group per node (index = node id); nodes talk only within a group.
    groups: BTreeMap<u64, u64>,
    pub sent: u64,
    pub dropped: u64,
}

impl Network {
    pub fn new(config: NetConfig) -> Network {
        Network {
            config,
            in_flight: BTreeMap::new(),
            seq: 0,
            groups: BTreeMap::new(),
            sent: 0,
            dropped: 0,
        }
    }

    pub fn send(&mut self, now: u64, env: Envelope, rng: &mut Rng) {
        self.sent += 1;
        if !self.connected(env.from, env.to) || rng.chance(self.config.drop_per_mille) {
            self.dropped += 1;
            return;
        }
        if rng.chance(self.config.duplicate_per_mille) {
            let copy = Envelope {
                from: env.from,
                to: env.to,
                msg: env.msg.clone(),
                snapshot: env.snapshot.clone(),
            };
            self.enqueue(now, copy, rng);
        }
        self.enqueue(now, env, rng);
    }

    fn enqueue(&mut self, now: u64, env: Envelope, rng: &mut Rng) {
        let delay = rng.between(self.config.delay_ms_min, self.config.delay_ms_max);
        self.seq += 1;
        self.in_flight.insert((now + delay, self.seq), env);
    }

    /// Messages due by `now`, in delivery order; a partition cuts messages in flight too.
    pub fn due(&mut self, now: u64) -> Vec<Envelope> {
        let mut due = Vec::new();
        while let Some(entry) = self.in_flight.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let env = entry.remove();
            if self.connected(env.from, env.to) {
                due.push(env);
            } else {
                self.dropped += 1;
            }
        }
        due
    }

    /// Splits the nodes into groups; `groups[node] = group`.
    pub fn partition(&mut self, groups: BTreeMap<u64, u64>) {
        self.groups = groups;
    }

    pub fn heal(&mut self) {
        self.groups.clear();
    }

    pub fn is_idle(&self) -> bool {
        self.in_flight.is_empty()
    }

    pub fn is_partitioned(&self) -> bool {
        !self.groups.is_empty()
    }

    /// A node crashed: whatever it sent or was sent is gone.
    pub fn forget(&mut self, node: u64) {
        self.in_flight.retain(|_, e| e.from != node && e.to != node);
    }

    pub fn connected(&self, a: u64, b: u64) -> bool {
        self.groups.get(&a).copied().unwrap_or(0) == self.groups.get(&b).copied().unwrap_or(0)
    }
}
