//! Watch delivery (issue 4): every watcher's events are exactly the shard's committed history
//! from its start revision on, filtered by its keys — no gap, no duplicate, nothing that was
//! not committed, strictly increasing revisions — across leader changes, crashes and
//! re-watches on other nodes; and once the cluster has settled, every watcher has received
//! all of it.
//!
//! The committed history is not read back through the watch code under test: it is rebuilt
//! from the committed Raft entries by a model of the writes the simulated clients send (put,
//! single-key delete, compare-and-set), and the model's revision after every applied index is
//! checked against every replica's apply state, so a model that drifted from apply is caught
//! too.

use crate::disk::decode_command;
use crate::node::AppliedBatch;
use atoll_proto::{
    CompareResult, CompareTarget, Event, EventType, RaftCommand, RequestOp, ShardId, TxnRequest,
    WriteOp,
};
use atoll_shard::watch::WatchSpec;
use std::collections::BTreeMap;

/// A key and the value a write gives it.
type KeyValuePair = (Vec<u8>, Vec<u8>);

/// One committed change of one key, as a watcher must deliver it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    pub revision: i64,
    pub key: Vec<u8>,
    pub kind: EventType,
    /// The new value (empty for a delete).
    pub value: Vec<u8>,
}

impl Change {
    pub fn of_event(e: &Event) -> Change {
        Change {
            revision: e.kv.mod_revision,
            key: e.kv.key.clone(),
            kind: e.kind,
            value: e.kv.value.clone(),
        }
    }
}

/// One shard's committed history, rebuilt from its committed entries.
#[derive(Default)]
struct ShardModel {
    /// Highest index modelled; `None` before the first applied batch.
    applied_index: Option<u64>,
    revision: i64,
    live: BTreeMap<Vec<u8>, Vec<u8>>,
    changes: Vec<Change>,
    /// The revision after each modelled index (checked against every replica).
    revision_at: BTreeMap<u64, i64>,
}

/// The committed history of every shard.
#[derive(Default)]
pub struct CommittedHistory {
    shards: BTreeMap<ShardId, ShardModel>,
}

/// Where a watcher stands in its shard's committed history.
#[derive(Clone, Debug, Default)]
pub struct WatchCursor {
    /// Index into the shard's changes of the next one to look at.
    next: usize,
    /// Events delivered so far.
    pub delivered: u64,
    /// Revision of the last event delivered (0: none yet).
    pub last_revision: i64,
    /// The revision the watch started from.
    pub start_revision: i64,
}

impl CommittedHistory {
    /// Models the entries of `b` not modelled yet and checks the replica's revision against
    /// the model's at every index the batch ends on.
    pub fn on_applied(&mut self, b: &AppliedBatch) -> Result<(), String> {
        let model = self.shards.entry(b.shard).or_default();
        let mut applied = match model.applied_index {
            Some(index) => index,
            None => {
                model.revision = b.before.revision;
                model.revision_at.insert(b.before.applied_index, b.before.revision);
                b.before.applied_index
            }
        };
        for e in &b.entries {
            if e.index <= applied {
                continue;
            }
            if e.index != applied + 1 {
                return Err(format!(
                    "watch model: shard {} applied index {} before {}",
                    b.shard.0,
                    e.index,
                    applied + 1
                ));
            }
            if let Some(cmd) = decode_command(e) {
                model.apply(cmd).map_err(|e| format!("watch model: shard {}: {e}", b.shard.0))?;
            }
            applied = e.index;
            model.revision_at.insert(applied, model.revision);
        }
        model.applied_index = Some(applied);
        match model.revision_at.get(&b.after.applied_index) {
            Some(r) if *r == b.after.revision => Ok(()),
            modelled => Err(format!(
                "watch model: shard {} node {} is at revision {} after index {}, the committed \
                 entries give {modelled:?}",
                b.shard.0, b.node, b.after.revision, b.after.applied_index
            )),
        }
    }

    /// The first revision of `shard`'s history at or after the `nth` change (for a watch
    /// that starts in the past); `None` while it has fewer changes.
    pub fn revision_of(&self, shard: ShardId, nth: usize) -> Option<i64> {
        self.shards.get(&shard)?.changes.get(nth).map(|c| c.revision)
    }

    /// A cursor for a watch of `shard` starting at `start_revision`.
    pub fn cursor(&self, shard: ShardId, start_revision: i64) -> WatchCursor {
        let changes = self.shards.get(&shard).map_or(&[][..], |m| &m.changes[..]);
        let next = changes.partition_point(|c| c.revision < start_revision);
        WatchCursor { next, delivered: 0, last_revision: 0, start_revision }
    }

    /// Checks that `event` is the next change `spec` wants after `cursor`, and moves past it.
    pub fn deliver(
        &self,
        shard: ShardId,
        spec: &WatchSpec,
        cursor: &mut WatchCursor,
        event: &Event,
    ) -> Result<(), String> {
        let got = Change::of_event(event);
        let want = self.next_wanted(shard, spec, cursor);
        if want.as_ref() != Some(&got) {
            let what = match &want {
                _ if got.revision <= cursor.last_revision => "a duplicate or out of order",
                Some(w) if got.revision > w.revision => "a gap",
                Some(_) => "a different event",
                None => "an event that was never committed",
            };
            return Err(format!(
                "watch on shard {} {:?}..{:?}: {what}: delivered {got:?} after revision {}, the \
                 committed history has {want:?} next",
                shard.0, spec.key, spec.range_end, cursor.last_revision
            ));
        }
        cursor.next += 1;
        cursor.delivered += 1;
        cursor.last_revision = got.revision;
        Ok(())
    }

    /// Checks that a settled watch has received every change it wants.
    pub fn check_complete(
        &self,
        shard: ShardId,
        spec: &WatchSpec,
        cursor: &mut WatchCursor,
    ) -> Result<(), String> {
        match self.next_wanted(shard, spec, cursor) {
            None => Ok(()),
            Some(missing) => Err(format!(
                "watch on shard {} {:?}..{:?}: settled after {} events at revision {}, but \
                 never delivered {missing:?}",
                shard.0, spec.key, spec.range_end, cursor.delivered, cursor.last_revision
            )),
        }
    }

    /// The next change `spec` wants at or after the cursor; moves the cursor past the ones
    /// it does not want.
    fn next_wanted(
        &self,
        shard: ShardId,
        spec: &WatchSpec,
        cursor: &mut WatchCursor,
    ) -> Option<Change> {
        let changes = &self.shards.get(&shard)?.changes;
        while let Some(c) = changes.get(cursor.next) {
            if spec.matches_key(&c.key) && spec.wants(c.kind) {
                return Some(c.clone());
            }
            cursor.next += 1;
        }
        None
    }
}

impl ShardModel {
    /// Applies one committed command: etcd's semantics for the writes simulated clients send.
    fn apply(&mut self, cmd: RaftCommand) -> Result<(), String> {
        let revision = cmd.revision_stamp.max(self.revision + 1);
        match cmd.op {
            WriteOp::Put(p) => self.put(revision, vec![(p.key, p.value)]),
            WriteOp::DeleteRange(d) if d.range_end.is_empty() => {
                if self.live.remove(&d.key).is_some() {
                    self.revision = revision;
                    let change =
                        Change { revision, key: d.key, kind: EventType::Delete, value: Vec::new() };
                    self.changes.push(change);
                }
            }
            WriteOp::Txn(t) => {
                let puts = self.txn_puts(t)?;
                self.put(revision, puts);
            }
            other => return Err(format!("no model for {other:?}")),
        }
        Ok(())
    }

    /// Puts of one revision, in key order as apply publishes them (none: no new revision).
    fn put(&mut self, revision: i64, mut puts: Vec<KeyValuePair>) {
        if puts.is_empty() {
            return;
        }
        puts.sort();
        self.revision = revision;
        for (key, value) in puts {
            self.live.insert(key.clone(), value.clone());
            self.changes.push(Change { revision, key, kind: EventType::Put, value });
        }
    }

    /// The puts of the branch a compare-and-set takes: value compares on single keys (a
    /// missing key's value compare fails, as etcd's); the failure branch only reads.
    fn txn_puts(&self, t: TxnRequest) -> Result<Vec<KeyValuePair>, String> {
        let mut holds = true;
        for c in &t.compare {
            match (&c.target, c.result, c.range_end.is_empty()) {
                (CompareTarget::Value(v), CompareResult::Equal, true) => {
                    holds &= self.live.get(&c.key) == Some(v);
                }
                _ => return Err(format!("no model for the compare {c:?}")),
            }
        }
        let branch = if holds { t.success } else { t.failure };
        let mut puts = Vec::new();
        for op in branch {
            match op {
                RequestOp::Put(p) => puts.push((p.key, p.value)),
                RequestOp::Range(_) => {}
                other => return Err(format!("no model for the txn op {other:?}")),
            }
        }
        Ok(puts)
    }
}
