//! No key owned by two shards: the shard ranges do not overlap, and every key a shard's store
//! shows lies in that shard's range and in no other shard's store on the node.

use crate::node::{ShardSpec, SimNode};
use std::collections::BTreeMap;

pub fn check(shards: &[ShardSpec], nodes: &[SimNode]) -> Result<(), String> {
    for (i, a) in shards.iter().enumerate() {
        for b in &shards[i + 1..] {
            let a_before_b = !a.range.end.is_empty() && a.range.end <= b.range.start;
            let b_before_a = !b.range.end.is_empty() && b.range.end <= a.range.start;
            if !a_before_b && !b_before_a {
                return Err(format!("shards {} and {} overlap", a.id.0, b.id.0));
            }
        }
    }
    for node in nodes.iter().filter(|n| n.is_up()) {
        let mut owner: BTreeMap<Vec<u8>, u64> = BTreeMap::new();
        for spec in shards {
            for key in node.all_keys(spec.id)? {
                if !spec.range.contains(&key) {
                    return Err(format!(
                        "node {}: shard {} shows key {key:?} outside its range",
                        node.id, spec.id.0
                    ));
                }
                if let Some(other) = owner.insert(key.clone(), spec.id.0) {
                    return Err(format!(
                        "node {}: key {key:?} owned by shards {other} and {}",
                        node.id, spec.id.0
                    ));
                }
            }
        }
    }
    Ok(())
}
