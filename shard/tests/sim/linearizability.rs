//! Per-key linearizability of the client history (each operation touches one key, and
//! linearizability is local, so keys are checked one by one). The model is an etcd key as a
//! register: put, get, delete, and a Txn compare-and-set. The search is Wing & Gong's with
//! Lowe's memoization (the algorithm behind porcupine and Knossos): linearize, one at a time,
//! an operation invoked before every pending answered operation returned; remember
//! (linearized set, state) pairs already explored. Operations with an unknown outcome may take
//! effect at any point after their invocation, or never.

use crate::history::{History, Op, OpKind, Outcome};
use std::collections::{BTreeMap, HashSet};

/// Most operations on one key (the linearized set is a `u128`).
pub const OPS_PER_KEY_MAX: usize = 128;
/// Search steps per key before giving up as inconclusive (never seen with these sizes).
const STEPS_MAX: u64 = 5_000_000;

type State = Option<u64>;

/// Checks every key; returns the number of operations checked.
pub fn check(history: &History) -> Result<usize, String> {
    let mut by_key: BTreeMap<usize, Vec<&Op>> = BTreeMap::new();
    for op in &history.ops {
        let counted = match op.outcome {
            Outcome::Failed | Outcome::Pending => false,
            // A read that got no answer constrains nothing.
            Outcome::Unknown => op.kind != OpKind::Get,
            _ => true,
        };
        if counted {
            by_key.entry(op.key).or_default().push(op);
        }
    }
    let mut checked = 0;
    for (key, mut ops) in by_key {
        if ops.len() > OPS_PER_KEY_MAX {
            return Err(format!("key {key}: {} operations, at most {OPS_PER_KEY_MAX}", ops.len()));
        }
        ops.sort_by_key(|o| o.invoke);
        let mut search = Search { ops: &ops, memo: HashSet::new(), steps: 0 };
        let definite: u128 = ops
            .iter()
            .enumerate()
            .filter(|(_, o)| o.response.is_some())
            .fold(0, |m, (i, _)| m | (1u128 << i));
        if !search.run(0, definite, None) {
            let detail: Vec<String> = ops.iter().map(|o| describe(o)).collect();
            return Err(format!(
                "linearizability: key {key} has no linearization{}:\n  {}",
                if search.steps >= STEPS_MAX { " (search budget exhausted)" } else { "" },
                detail.join("\n  ")
            ));
        }
        checked += ops.len();
    }
    Ok(checked)
}

struct Search<'a> {
    ops: &'a [&'a Op],
    memo: HashSet<(u128, State)>,
    steps: u64,
}

impl Search<'_> {
    fn run(&mut self, done: u128, definite: u128, state: State) -> bool {
        if done & definite == definite {
            return true;
        }
        self.steps += 1;
        if self.steps >= STEPS_MAX {
            return false;
        }
        // Every candidate must have been invoked before the earliest answer still pending.
        let horizon = (0..self.ops.len())
            .filter(|i| done & (1 << i) == 0)
            .filter_map(|i| self.ops[i].response)
            .min()
            .unwrap_or(u64::MAX);
        for i in 0..self.ops.len() {
            let op = self.ops[i];
            if op.invoke > horizon {
                break;
            }
            if done & (1 << i) != 0 {
                continue;
            }
            let Some(next) = step(state, op) else { continue };
            let now_done = done | (1 << i);
            if self.memo.insert((now_done, next)) && self.run(now_done, definite, next) {
                return true;
            }
        }
        false
    }
}

/// The register's transition for `op`, or `None` if its answer is impossible in `state`.
fn step(state: State, op: &Op) -> Option<State> {
    match (op.kind, op.outcome) {
        (OpKind::Put(v), Outcome::Put | Outcome::Unknown) => Some(Some(v)),
        (OpKind::Get, Outcome::Get(read)) => (read == state).then_some(state),
        (OpKind::Delete, Outcome::Delete { deleted }) => {
            (deleted == state.is_some()).then_some(None)
        }
        (OpKind::Delete, Outcome::Unknown) => Some(None),
        (OpKind::Cas { expect, new }, Outcome::Cas { ok: true, .. }) => {
            (state == Some(expect)).then_some(Some(new))
        }
        (OpKind::Cas { expect, .. }, Outcome::Cas { ok: false, read }) => {
            (state != Some(expect) && read == state).then_some(state)
        }
        (OpKind::Cas { expect, new }, Outcome::Unknown) => {
            Some(if state == Some(expect) { Some(new) } else { state })
        }
        _ => None,
    }
}

fn describe(o: &Op) -> String {
    let resp = o.response.map_or("?".to_string(), |r| r.to_string());
    format!("client {} [{}, {resp}] {:?} -> {:?}", o.client, o.invoke, o.kind, o.outcome)
}
