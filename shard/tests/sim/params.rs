//! Everything a seed decides about a run before it starts: cluster shape, network hostility,
//! fault rates, disk and apply speed.

use crate::net::NetConfig;
use crate::rng::Rng;

#[derive(Clone, Debug)]
pub struct Params {
    pub nodes: u64,
    pub shards: u64,
    pub clients: usize,
    /// Faults and client traffic run until here (ms)...
    pub chaos_ms: u64,
    /// ...then the network heals, every node restarts, and the cluster settles this long.
    pub quiesce_ms: u64,
    pub tick_ms: u64,
    pub election_ticks: usize,
    pub net: NetConfig,
    /// Per fault draw (every `FAULT_EVERY_MS`), per mille.
    pub crash_per_mille: u64,
    pub partition_per_mille: u64,
    pub heal_per_mille: u64,
    pub clock_jump_per_mille: u64,
    /// Per node per ms: chance that the log writer syncs, that apply takes a batch.
    pub fsync_per_mille: u64,
    pub apply_per_mille: u64,
    /// A client gives up after this long: the outcome is then unknown.
    pub timeout_ms: u64,
    pub think_ms_max: u64,
    /// How long a node's transport takes to report a peer it lost (a crash, a partition
    /// that lasts): the real one's QUIC idle timeout is 5 election timeouts (D9, D14).
    pub unreachable_after_ms: u64,
    /// Log entries a replica keeps behind its applied index (`--snapshot-catchup-entries`):
    /// small, so replicas that were down or cut off catch up by snapshot (decision D20).
    pub log_retained_entries: u64,
}

/// How often faults are drawn during the chaos phase.
pub const FAULT_EVERY_MS: u64 = 25;

impl Params {
    pub fn from_seed(rng: &mut Rng) -> Params {
        let delay_ms_min = rng.between(1, 3);
        Params {
            nodes: if rng.chance(200) { 5 } else { 3 },
            shards: rng.between(2, 3),
            clients: rng.between(3, 5) as usize,
            chaos_ms: 2_000,
            quiesce_ms: 1_500,
            tick_ms: 10,
            election_ticks: 10,
            net: NetConfig {
                drop_per_mille: rng.between(0, 100),
                duplicate_per_mille: rng.between(0, 50),
                delay_ms_min,
                delay_ms_max: delay_ms_min + rng.between(0, 30),
            },
            crash_per_mille: rng.between(0, 60),
            partition_per_mille: rng.between(0, 60),
            heal_per_mille: rng.between(100, 300),
            clock_jump_per_mille: rng.between(0, 50),
            fsync_per_mille: rng.between(200, 800),
            apply_per_mille: rng.between(300, 900),
            timeout_ms: rng.between(200, 500),
            think_ms_max: rng.between(0, 20),
            // Drawn last, so the draws above stay what they were before hibernation.
            unreachable_after_ms: rng.between(10, 500),
            // Drawn after everything above, for the same reason.
            log_retained_entries: rng.between(3, 40),
        }
    }
}
