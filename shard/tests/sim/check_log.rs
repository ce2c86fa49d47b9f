//! Log matching / leader completeness as seen from apply: every replica that commits an index
//! commits the same entry (term and bytes) there, and at the end every replica's log agrees
//! with it up to its commit index.

use crate::node::SimNode;
use atoll_proto::ShardId;
use raft::eraftpb::Entry;
use raft::{GetEntriesContext, Storage as _};
use std::collections::BTreeMap;

#[derive(Default)]
pub struct LogMatching {
    /// (shard, index) → (term, crc32 of data, first node that committed it).
    committed: BTreeMap<(ShardId, u64), (u64, u32, u64)>,
}

impl LogMatching {
    pub fn on_committed(
        &mut self,
        shard: ShardId,
        node: u64,
        entries: &[Entry],
    ) -> Result<(), String> {
        for e in entries {
            let seen = (e.term, crc32fast::hash(&e.data), node);
            let first = *self.committed.entry((shard, e.index)).or_insert(seen);
            if (first.0, first.1) != (seen.0, seen.1) {
                return Err(format!(
                    "log matching: shard {} index {}: node {} committed term {} but node {} \
                     committed term {} (or other bytes)",
                    shard.0, e.index, first.2, first.0, node, e.term
                ));
            }
        }
        Ok(())
    }

    /// Each live replica's log up to its commit index matches what was committed.
    pub fn check_logs(&self, nodes: &[SimNode]) -> Result<(), String> {
        for node in nodes.iter().filter(|n| n.is_up()) {
            for (shard, r) in &node.replicas {
                let raw = r.core.raft();
                let first = raw.raft.raft_log.first_index();
                let commit = raw.raft.raft_log.committed;
                if commit < first {
                    continue;
                }
                let entries = raw
                    .raft
                    .raft_log
                    .store
                    .entries(first, commit + 1, None, GetEntriesContext::empty(false))
                    .map_err(|e| format!("node {} shard {}: read log: {e}", node.id, shard.0))?;
                for e in &entries {
                    if let Some((term, crc, from)) = self.committed.get(&(*shard, e.index))
                        && (*term, *crc) != (e.term, crc32fast::hash(&e.data))
                    {
                        return Err(format!(
                            "log matching: node {} shard {} index {} has term {}, node {from} \
                             committed term {term}",
                            node.id, shard.0, e.index, e.term
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    pub fn entries(&self) -> usize {
        self.committed.len()
    }
}
