//! Revisions as clients see them, per shard: if operation A was answered before B was
//! invoked, B's revision is at least A's, and strictly greater when B changed the store. Two
//! changing writes never share a revision.

use crate::history::{History, Outcome};
use std::collections::BTreeMap;

/// An answered operation: (invoke, response, revision, changed, index in the history).
type Answered = (u64, u64, i64, bool, usize);

pub fn check(history: &History) -> Result<(), String> {
    let mut by_shard: BTreeMap<u64, Vec<Answered>> = BTreeMap::new();
    for (i, op) in history.ops.iter().enumerate() {
        let (Some(resp), Some(rev)) = (op.response, op.revision) else { continue };
        if matches!(op.outcome, Outcome::Failed | Outcome::Unknown | Outcome::Pending) {
            continue;
        }
        by_shard.entry(op.shard).or_default().push((op.invoke, resp, rev, op.changed, i));
    }
    for (shard, ops) in by_shard {
        let mut seen: BTreeMap<i64, usize> = BTreeMap::new();
        for &(_, _, rev, changed, i) in &ops {
            if changed && let Some(j) = seen.insert(rev, i) {
                return Err(format!(
                    "monotonic revisions: shard {shard}: ops {j} and {i} both wrote revision {rev}"
                ));
            }
        }
        for a in &ops {
            for b in &ops {
                let before = a.1 < b.0;
                if before && (b.2 < a.2 || (b.3 && b.2 == a.2)) {
                    return Err(format!(
                        "monotonic revisions: shard {shard}: op {} (revision {}) finished \
                         before op {} (revision {}, changed: {}) began",
                        a.4, a.2, b.4, b.2, b.3
                    ));
                }
            }
        }
    }
    Ok(())
}
