//! State-machine safety: replicas that applied the same index have the same apply state
//! (revision, compacted revision) and the same data (`MvccStore::hash_kv`: every key and
//! version, so one revision has one value on every replica). Monotonic revisions: on each
//! replica the applied index only grows and the revision never goes back.

use crate::node::AppliedBatch;
use atoll_proto::ShardId;
use atoll_shard::mvcc::{ApplyState, StateHash};
use std::collections::BTreeMap;

#[derive(Default)]
pub struct StateMachineSafety {
    at_index: BTreeMap<(ShardId, u64), (ApplyState, Option<StateHash>, u64)>,
    compared: u64,
}

impl StateMachineSafety {
    pub fn on_applied(&mut self, b: &AppliedBatch) -> Result<(), String> {
        let (shard, node) = (b.shard.0, b.node);
        if b.after.applied_index <= b.before.applied_index || b.after.revision < b.before.revision {
            return Err(format!(
                "monotonic revisions: node {node} shard {shard} went from {:?} to {:?}",
                b.before, b.after
            ));
        }
        let key = (b.shard, b.after.applied_index);
        match self.at_index.get(&key) {
            None => {
                self.at_index.insert(key, (b.after, b.hash, node));
            }
            Some((state, hash, other)) => {
                self.compared += 1;
                if *state != b.after || *hash != b.hash {
                    return Err(format!(
                        "state-machine safety: shard {shard} at index {}: node {other} has \
                         {state:?} {hash:?}, node {node} has {:?} {:?}",
                        b.after.applied_index, b.after, b.hash
                    ));
                }
            }
        }
        Ok(())
    }

    /// Replica pairs compared at an equal applied index.
    pub fn compared(&self) -> u64 {
        self.compared
    }
}
