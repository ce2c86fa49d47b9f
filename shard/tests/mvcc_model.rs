//! The store against a plain in-memory model of etcd's MVCC rules, on a long deterministic
//! history over keys with 0x00 and 0xFF bytes: every revision is read back (whole range,
//! limit, single keys), applied entry by entry and in Ready-sized batches, before and after
//! physical compaction. Keys get dozens of versions, so the scan's re-seek paths run.

#[allow(dead_code)]
mod mvcc_common;

use atoll_proto::{
    AtollError, CompactionRequest, KeyValue, PutRequest, RaftCommand, RangeRequest, RequestOp,
    TxnRequest, WriteOp,
};
use atoll_shard::mvcc::MvccLimits;
use mvcc_common::*;
use std::collections::BTreeMap;

const KEYS: [&[u8]; 10] = [
    b"\x00",
    b"\x00\x00",
    b"\x00\xff",
    b"a",
    b"a\x00",
    b"ab",
    b"b",
    b"\xff",
    b"\xff\x00",
    b"\xff\xff",
];
/// Writes in the history.
const OPS: u64 = 400;
/// Seed of the history; a failure names it.
const SEED: u64 = 0x5eed_a701;

/// etcd's rules, stated as simply as possible: per key, a list of (revision, version).
#[derive(Default)]
struct Model {
    keys: BTreeMap<Vec<u8>, Vec<(i64, Option<KeyValue>)>>,
    revision: i64,
}

impl Model {
    fn live(&self, key: &[u8], at: i64) -> Option<KeyValue> {
        let versions = self.keys.get(key)?;
        versions.iter().rev().find(|(r, _)| *r <= at).and_then(|(_, v)| v.clone())
    }

    fn put(&mut self, key: &[u8], value: &[u8], lease: i64, revision: i64) {
        let prev = self.live(key, self.revision);
        let kv = KeyValue {
            key: key.to_vec(),
            create_revision: prev.as_ref().map_or(revision, |p| p.create_revision),
            mod_revision: revision,
            version: prev.as_ref().map_or(1, |p| p.version + 1),
            value: value.to_vec(),
            lease,
        };
        self.keys.entry(key.to_vec()).or_default().push((revision, Some(kv)));
    }

    /// Deletes the live keys of `[start, end)`; whether any was deleted.
    fn delete(&mut self, start: &[u8], end: &[u8], revision: i64) -> bool {
        let live: Vec<Vec<u8>> = self
            .keys
            .keys()
            .filter(|k| k.as_slice() >= start && k.as_slice() < end)
            .filter(|k| self.live(k, self.revision).is_some())
            .cloned()
            .collect();
        for key in &live {
            self.keys.entry(key.clone()).or_default().push((revision, None));
        }
        !live.is_empty()
    }

    fn at(&self, at: i64) -> Vec<KeyValue> {
        self.keys.keys().filter_map(|k| self.live(k, at)).collect()
    }

    /// Versions physical compaction at `compacted` must leave for `key`, newest first.
    fn kept_revisions(&self, key: &[u8], compacted: i64) -> Vec<i64> {
        let versions = self.keys.get(key).map(Vec::as_slice).unwrap_or_default();
        let newer = versions.iter().filter(|(r, _)| *r > compacted).map(|(r, _)| *r);
        let newest_at = versions.iter().rev().find(|(r, _)| *r <= compacted);
        let kept = newest_at.filter(|(_, v)| v.is_some()).map(|(r, _)| *r);
        let mut out: Vec<i64> = newer.chain(kept).collect();
        out.sort_unstable_by(|a, b| b.cmp(a));
        out
    }
}

/// The deterministic history: ops for indexes 1..=OPS and the model after them.
fn history_and_model() -> (Vec<WriteOp>, Model) {
    let mut rng = Rng(SEED);
    let mut model = Model::default();
    let mut ops = Vec::new();
    for index in 1..=OPS {
        let revision = 100 * index as i64;
        let roll = rng.next() % 10;
        let (op, changed) = if roll < 6 {
            let (key, value, lease) = (rng.pick(&KEYS), format!("v{index}"), (roll % 2) as i64 * 7);
            model.put(key, value.as_bytes(), lease, revision);
            let put = WriteOp::Put(PutRequest { lease, ..put_req(key, value.as_bytes()) });
            (if lease == 0 { put } else { leased(put, &[lease]) }, true)
        } else if roll < 8 {
            let key = rng.pick(&KEYS);
            let mut end = key.to_vec();
            end.push(0);
            (del(key, b""), model.delete(key, &end, revision))
        } else if roll < 9 {
            let (a, b) = (rng.pick(&KEYS), rng.pick(&KEYS));
            let (start, end) = if a <= b { (a, b) } else { (b, a) };
            (del(start, end), model.delete(start, end, revision))
        } else {
            let (a, b) = (rng.pick(&KEYS), rng.pick(&KEYS));
            let success = if a == b { vec![a] } else { vec![a, b] };
            for key in &success {
                model.put(key, b"txn", 0, revision);
            }
            let success = success.into_iter().map(|k| RequestOp::Put(put_req(k, b"txn"))).collect();
            (WriteOp::Txn(TxnRequest { success, ..Default::default() }), true)
        };
        if changed {
            model.revision = revision;
        }
        ops.push(op);
    }
    (ops, model)
}

/// Every revision worth reading: each write's, the ones between, and one before all.
fn revisions(model: &Model) -> Vec<i64> {
    (0..=2 * model.revision / 100).map(|i| 50 * i).collect()
}

fn must_match_model(fx: &Fixture, model: &Model, from: i64) {
    for at in revisions(model).into_iter().filter(|r| *r >= from) {
        let want = model.at(at);
        let req = RangeRequest { revision: at.max(1), ..range(b"\0", b"\0") };
        let got = fx.must_range(&req).expect("range");
        assert_eq!(
            (got.kvs.as_slice(), got.count),
            (want.as_slice(), want.len() as i64),
            "seed {SEED:#x}, all keys at {at}"
        );
        let limited = fx.must_range(&RangeRequest { limit: 3, ..req.clone() }).expect("limit");
        assert_eq!(
            limited.kvs,
            want.iter().take(3).cloned().collect::<Vec<_>>(),
            "seed {SEED:#x}, limit at {at}"
        );
        assert_eq!(limited.more, want.len() > 3, "seed {SEED:#x}, more at {at}");
        for key in KEYS {
            let got = fx
                .must_range(&RangeRequest { revision: at.max(1), ..range(key, b"") })
                .expect("get");
            assert_eq!(
                got.kvs,
                model.live(key, at).into_iter().collect::<Vec<_>>(),
                "seed {SEED:#x}, {key:?} at {at}"
            );
        }
    }
}

#[test]
fn the_store_matches_the_model_at_every_revision() {
    let (ops, model) = history_and_model();
    eprintln!("entry by entry");
    let mut fx = Fixture::must_open();
    fx.must_apply_all(&ops);
    assert_eq!(fx.state.revision, model.revision);
    must_match_model(&fx, &model, 0);

    eprintln!("in Ready-sized batches of 7 entries: the same store");
    let mut batched = Fixture::must_open();
    let entries: Vec<(u64, Option<RaftCommand>)> = ops
        .iter()
        .enumerate()
        .map(|(i, op)| {
            (
                i as u64 + 1,
                Some(RaftCommand { revision_stamp: 100 * (i as i64 + 1), op: op.clone() }),
            )
        })
        .collect();
    for chunk in entries.chunks(7) {
        batched
            .store
            .apply_entries(&mut batched.state, chunk, &MvccLimits::default())
            .expect("apply");
    }
    assert_eq!(batched.state, fx.state);
    must_match_model(&batched, &model, 0);

    eprintln!("after physical compaction in the middle of the history");
    let compacted = model.revision / 2;
    let op = WriteOp::Compact(CompactionRequest { revision: compacted, physical: true });
    fx.must_apply(op).expect("compact");
    while !fx.store.compact_step(compacted).expect("compact step") {}
    let fx = fx.must_reopen();
    must_match_model(&fx, &model, compacted);
    let below = RangeRequest { revision: compacted - 1, ..range(b"\0", b"\0") };
    assert_eq!(fx.must_range(&below), Err(AtollError::Compacted { compact_revision: compacted }));
    for key in KEYS {
        let want = model.kept_revisions(key, compacted);
        assert_eq!(
            must_stored_revisions(&fx.storage, key),
            want,
            "seed {SEED:#x}, versions of {key:?}"
        );
    }
}
