//! Configuration of a replica. Defaults follow etcd's timing (100 ms heartbeat, 1 s election).

use std::time::Duration;

/// How a replica drives Raft.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaConfig {
    /// This node's Raft ID within the shard (the node ID).
    pub node_id: u64,
    /// Length of one Raft tick.
    pub tick_interval: Duration,
    /// Ticks without a heartbeat before a follower campaigns.
    pub election_ticks: usize,
    /// Ticks between leader heartbeats.
    pub heartbeat_ticks: usize,
    /// Most bytes of entries in one append message.
    pub max_size_per_msg_bytes: u64,
    /// Most append messages in flight to one follower.
    pub max_inflight_msgs: usize,
    /// Most bytes of uncommitted entries a leader accepts before refusing proposals.
    pub max_uncommitted_bytes: u64,
    /// Ticks a leader must find nothing to do before its shard hibernates (stops ticking and
    /// heartbeating, decision D14); 0 never hibernates.
    pub hibernate_idle_ticks: usize,
    /// Log entries kept behind the applied index when the log is truncated (etcd's
    /// `--snapshot-catchup-entries`): a replica less than this far behind catches up from
    /// the log, one further behind by a snapshot (decision D20).
    pub log_retained_entries: u64,
}

impl Default for ReplicaConfig {
    /// etcd's defaults: `--heartbeat-interval 100ms`, `--election-timeout 1000ms`.
    fn default() -> Self {
        ReplicaConfig {
            node_id: 1,
            tick_interval: Duration::from_millis(100),
            election_ticks: 10,
            heartbeat_ticks: 1,
            max_size_per_msg_bytes: 1024 * 1024,
            max_inflight_msgs: 256,
            max_uncommitted_bytes: 128 * 1024 * 1024,
            // One election timeout: long enough that a shard in use does not flap between
            // hibernating and waking, short enough that an idle node soon stops paying for it.
            hibernate_idle_ticks: 10,
            log_retained_entries: crate::limits::RAFT_LOG_RETAINED_ENTRIES,
        }
    }
}

impl ReplicaConfig {
    /// Checks the relations between settings.
    pub fn validate(&self) -> Result<(), String> {
        if self.node_id == 0 {
            return Err("node id must not be 0 (Raft reserves it for 'none')".into());
        }
        if self.heartbeat_ticks == 0 {
            return Err("heartbeat ticks must be at least 1".into());
        }
        if self.election_ticks <= self.heartbeat_ticks {
            return Err(format!(
                "election timeout ({} ticks) must be longer than the heartbeat interval ({} ticks)",
                self.election_ticks, self.heartbeat_ticks
            ));
        }
        if self.log_retained_entries == 0 {
            return Err("snapshot catch-up entries must be at least 1".into());
        }
        if self.tick_interval.is_zero() {
            return Err("tick interval must not be zero".into());
        }
        Ok(())
    }

    /// The raft-rs configuration for this replica, with pre-vote and check-quorum on and
    /// ReadIndex in the safe mode (DESIGN §3).
    pub fn raft_config(&self, applied_index: u64) -> raft::Config {
        raft::Config {
            id: self.node_id,
            election_tick: self.election_ticks,
            heartbeat_tick: self.heartbeat_ticks,
            applied: applied_index,
            max_size_per_msg: self.max_size_per_msg_bytes,
            max_inflight_msgs: self.max_inflight_msgs,
            max_uncommitted_size: self.max_uncommitted_bytes,
            check_quorum: true,
            pre_vote: true,
            read_only_option: raft::ReadOnlyOption::Safe,
            ..raft::Config::default()
        }
    }
}

/// How a shard's compactor removes history and when it compacts by itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompactorConfig {
    /// Most versions one deletion batch removes (etcd's `--compaction-batch-limit`).
    pub batch_versions_max: usize,
    /// Pause between two batches, so compaction leaves the disk to writes (etcd's
    /// `--compaction-sleep-interval`).
    pub sleep_interval: Duration,
    /// Auto-compaction (off by default).
    pub auto: crate::core::AutoCompactionConfig,
}

impl Default for CompactorConfig {
    /// etcd 3.6's defaults: batches of 1,000, 10 ms apart; auto-compaction off.
    fn default() -> Self {
        CompactorConfig {
            batch_versions_max: 1_000,
            sleep_interval: Duration::from_millis(10),
            auto: crate::core::AutoCompactionConfig::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_relations_are_checked() {
        assert_eq!(ReplicaConfig::default().validate(), Ok(()));
        let bad = ReplicaConfig { election_ticks: 1, ..ReplicaConfig::default() };
        assert!(bad.validate().is_err());
        let zero = ReplicaConfig { node_id: 0, ..ReplicaConfig::default() };
        assert!(zero.validate().is_err());
    }
}
