//! Hibernation scenarios (decision D14) on a calm cluster: no faults and no client of its
//! own, a network that delays and reorders but loses nothing. Step by step: every shard
//! hibernates; a hibernating shard is silent; a read through a follower and a write wake it
//! and are answered; it hibernates again; the node leading it crashes, and once the other
//! nodes' transports report that node unreachable a new leader is elected within a bound;
//! a write goes through the new leader; the crashed node returns and every check of the
//! chaos runs passes (convergence, hibernation, logs, linearizability).

use crate::history::{OpKind, Outcome};
use crate::world::{Stats, World};
use atoll_proto::ShardId;

/// What one scenario measured.
#[derive(Debug, Default)]
pub struct ScenarioStats {
    pub hibernated_after_ms: u64,
    pub woke_and_answered_ms: u64,
    pub failover_ms: u64,
    pub failover_bound_ms: u64,
}

impl World {
    /// A world for a scenario: no chaos phase, no loss or duplication on the network.
    pub fn new_calm(seed: u64) -> Result<World, String> {
        let mut w = World::new(seed)?;
        // Watches are checked by the chaos run (`watchers.rs`), not here.
        w.watches = crate::watchers::Watches::none(seed)?;
        w.params.chaos_ms = 0;
        w.net.config.drop_per_mille = 0;
        w.net.config.duplicate_per_mille = 0;
        Ok(w)
    }

    /// Advances time until `done` holds; fails after `within_ms`. Returns the time it took.
    pub fn run_until(
        &mut self,
        within_ms: u64,
        what: &str,
        done: impl Fn(&World) -> bool,
    ) -> Result<u64, String> {
        let start = self.now;
        while !done(self) {
            if self.now - start >= within_ms {
                return Err(format!("{what}: not within {within_ms} ms (at {} ms)", self.now));
            }
            self.now += 1;
            let at = self.now;
            self.step().map_err(|e| format!("at {at} ms: {e}"))?;
        }
        Ok(self.now - start)
    }

    /// Runs `ms` milliseconds; fails only if an invariant check fails on the way.
    pub fn run_for(&mut self, ms: u64) -> Result<(), String> {
        let end = self.now + ms;
        self.run_until(ms, "run", |w| w.now >= end).map(drop)
    }

    pub fn election_ms(&self) -> u64 {
        self.params.tick_ms * self.params.election_ticks as u64
    }

    /// Whether every replica on every node that is up hibernates.
    pub fn all_hibernate(&self) -> bool {
        self.shards
            .iter()
            .all(|s| self.nodes.iter().filter(|n| n.is_up()).all(|n| n.is_hibernating(s.id)))
    }

    /// The node leading `shard` in the highest term among the nodes that are up.
    pub fn leader_of(&self, shard: ShardId) -> Option<(u64, u64)> {
        self.nodes
            .iter()
            .filter_map(|n| {
                let core = &n.replicas.get(&shard)?.core;
                core.is_leader().then(|| (n.id, core.term_and_leader().0))
            })
            .max_by_key(|(_, term)| *term)
    }

    /// Client 0 sends `kind` on key `key` through `node` and waits for the answer; returns
    /// its outcome and the time it took.
    fn must_answer(
        &mut self,
        key: usize,
        kind: OpKind,
        node: u64,
    ) -> Result<(Outcome, u64), String> {
        let op = self.history.ops.len();
        let req = self.send(0, key, kind, node);
        let bound = self.params.timeout_ms;
        let took = self.run_until(bound, "an answer", |w| !w.requests.contains_key(&req))?;
        Ok((self.history.ops[op].outcome, took))
    }

    /// Runs the scenario of this module; any deviation is an error.
    pub fn run_hibernation_scenario(mut self) -> Result<(Stats, ScenarioStats), String> {
        let mut out = ScenarioStats::default();
        self.start_all()?;
        out.hibernated_after_ms =
            self.run_until(3_000, "every shard hibernates", World::all_hibernate)?;

        // Hibernating: once the last messages sent before are delivered (heartbeats and
        // their answers may trail the notices), no replica ticks and nothing is sent.
        self.run_until(1_000, "the network drains", |w| w.net.is_idle())?;
        if !self.all_hibernate() {
            return Err("a message delivered after the shards hibernated woke one".into());
        }
        let (ticks, sent) = (self.awake_ticks(), self.net.sent);
        let quiet = 10 * self.election_ms();
        // A violation of an invariant in the quiet window fails the run.
        self.run_for(quiet)?;
        if (self.awake_ticks(), self.net.sent) != (ticks, sent) {
            return Err(format!(
                "a hibernating cluster ticked {} times and sent {} messages in {quiet} ms",
                self.awake_ticks() - ticks,
                self.net.sent - sent
            ));
        }

        // Traffic wakes it: a read through a follower, then a write through the leader.
        let key = 0;
        let shard = self.keys[key].1;
        let (leader, _) = self.leader_of(shard).ok_or("no leader before the reads")?;
        let follower = if leader == 1 { 2 } else { 1 };
        let (outcome, took) = self.must_answer(key, OpKind::Get, follower)?;
        if !matches!(outcome, Outcome::Get(_)) {
            return Err(format!("a read through hibernating follower {follower}: {outcome:?}"));
        }
        out.woke_and_answered_ms = took;
        let value = self.fresh_value();
        let (outcome, _) = self.must_answer(key, OpKind::Put(value), leader)?;
        if outcome != Outcome::Put {
            return Err(format!("a write through the woken leader {leader}: {outcome:?}"));
        }
        self.run_until(3_000, "every shard hibernates again", World::all_hibernate)?;

        // The hibernating leader's node dies: only the transports' reports wake the others.
        let (_, term) = self.leader_of(shard).ok_or("no leader before the crash")?;
        self.crash(leader as usize - 1);
        // The report, then at most one election timeout to the first campaign; the rest is
        // room for split votes: this network's delays reach a third of an election timeout,
        // so two followers often campaign before either hears the other (each round costs
        // up to two election timeouts).
        out.failover_bound_ms = self.params.unreachable_after_ms + 6 * self.election_ms();
        let failover = self.run_until(out.failover_bound_ms, "a new leader", |w| {
            w.leader_of(shard).is_some_and(|(node, t)| node != leader && t > term)
        });
        out.failover_ms = failover?;
        let (new_leader, _) = self.leader_of(shard).ok_or("the new leader vanished")?;
        let value = self.fresh_value();
        let (outcome, _) = self.must_answer(key, OpKind::Put(value), new_leader)?;
        if outcome != Outcome::Put {
            return Err(format!("a write through the new leader {new_leader}: {outcome:?}"));
        }

        // The node returns; then every check of the chaos runs.
        self.down_until.insert(leader - 1, self.now);
        self.run_for(self.params.quiesce_ms)?;
        Ok((self.finish()?, out))
    }

    fn awake_ticks(&self) -> u64 {
        self.nodes.iter().map(|n| n.awake_ticks).sum()
    }
}
