//! Election safety (Raft §5.2): at most one leader per term per shard, ever.

use atoll_proto::ShardId;
use std::collections::BTreeMap;

#[derive(Default)]
pub struct ElectionSafety {
    leaders: BTreeMap<(ShardId, u64), u64>,
}

impl ElectionSafety {
    pub fn observe(&mut self, shard: ShardId, term: u64, node: u64) -> Result<(), String> {
        match self.leaders.insert((shard, term), node) {
            Some(other) if other != node => Err(format!(
                "election safety: shard {} term {term} has two leaders, nodes {other} and {node}",
                shard.0
            )),
            _ => Ok(()),
        }
    }

    pub fn terms(&self) -> usize {
        self.leaders.len()
    }
}
