//! Faults of the chaos phase: crashes and restarts, partitions and heals, clock jumps; and the
//! calm that ends it (heal, no more loss, every node back).

use crate::history::Outcome;
use crate::world::World;
use std::collections::BTreeMap;

impl World {
    pub fn inject_faults(&mut self) {
        let p = self.params.clone();
        let up: Vec<usize> = (0..self.nodes.len()).filter(|&i| self.nodes[i].is_up()).collect();
        // Up to all but one node down at once: quorum loss is part of the game.
        if up.len() > 1 && self.rng.chance(p.crash_per_mille) {
            let i = *self.rng.pick(&up).unwrap_or(&0);
            let downtime = self.rng.between(20, 600);
            self.crash(i);
            self.down_until.insert(i as u64, self.now + downtime);
        }
        if !self.net.is_partitioned() && self.rng.chance(p.partition_per_mille) {
            let groups: BTreeMap<u64, u64> =
                (1..=p.nodes).map(|id| (id, self.rng.below(2))).collect();
            // Each side's transport gives up on the other side's nodes, if it lasts.
            let lost: Vec<u64> = (1..=p.nodes).filter(|id| groups[id] != groups[&1]).collect();
            let kept: Vec<u64> = (1..=p.nodes).filter(|id| groups[id] == groups[&1]).collect();
            self.net.partition(groups);
            for (side, other) in [(&lost, &kept), (&kept, &lost)] {
                self.schedule_unreachable_between(side, other);
            }
            self.stats.partitions += 1;
        } else if self.net.is_partitioned() && self.rng.chance(p.heal_per_mille) {
            self.net.heal();
        }
        if self.rng.chance(p.clock_jump_per_mille) {
            let i = self.rng.below(p.nodes) as usize;
            // Backwards too: correctness must never depend on clocks (DESIGN §4, D3).
            self.skew_micros[i] = self.rng.between(0, 600_000) as i64 - 300_000;
        }
    }

    /// The chaos phase ends: the network heals and stops losing messages, every node is up.
    pub fn calm(&mut self) -> Result<(), String> {
        self.net.heal();
        self.net.config.drop_per_mille = 0;
        self.net.config.duplicate_per_mille = 0;
        for until in self.down_until.values_mut() {
            *until = self.now;
        }
        self.restart_due()
    }

    /// A crash: the node loses everything unsynced, its messages in flight, and its clients'
    /// requests stay unanswered (unknown outcome).
    pub fn crash(&mut self, i: usize) {
        let id = self.nodes[i].id;
        // Its watchers die with the process (before its storage closes).
        self.watches.on_crash(i);
        self.nodes[i].crash();
        self.net.forget(id);
        self.schedule_unreachable(id, false);
        self.stats.crashes += 1;
        let lost: Vec<u64> =
            self.requests.iter().filter(|(_, r)| r.node == id).map(|(k, _)| *k).collect();
        for req in lost {
            self.give_up(req);
        }
    }

    /// The nodes in `observers` will report each node in `lost` unreachable (if the partition
    /// between them lasts).
    fn schedule_unreachable_between(&mut self, observers: &[u64], lost: &[u64]) {
        let at = self.now + self.params.unreachable_after_ms;
        for &o in observers {
            for &l in lost {
                let observer = o as usize - 1;
                let report =
                    crate::world::UnreachableReport { at, observer, lost: l, by_partition: true };
                self.unreachable_reports.push(report);
            }
        }
    }

    pub fn restart_due(&mut self) -> Result<(), String> {
        let due: Vec<u64> =
            self.down_until.iter().filter(|(_, t)| **t <= self.now).map(|(i, _)| *i).collect();
        let voters = self.voters();
        for i in due {
            self.down_until.remove(&i);
            // A restarted machine's clock may have moved.
            self.skew_micros[i as usize] = self.rng.between(0, 200_000) as i64 - 100_000;
            self.nodes[i as usize].start(&self.shards, &voters)?;
        }
        Ok(())
    }

    /// Requests past their deadline: the client stops waiting, the outcome is unknown.
    pub fn timeouts(&mut self) {
        let late: Vec<u64> =
            self.requests.iter().filter(|(_, r)| r.deadline <= self.now).map(|(k, _)| *k).collect();
        for req in late {
            self.give_up(req);
        }
    }

    pub fn expire_all(&mut self) {
        let all: Vec<u64> = self.requests.keys().copied().collect();
        for req in all {
            self.give_up(req);
        }
    }

    fn give_up(&mut self, req: u64) {
        let Some(r) = self.requests.remove(&req) else { return };
        self.history.complete(r.op, Outcome::Unknown, None);
        self.stats.unknown += 1;
        let client = &mut self.clients[r.client];
        client.busy = false;
        client.leader_guess.remove(&r.shard);
        client.next_at = self.now + 1;
    }
}
