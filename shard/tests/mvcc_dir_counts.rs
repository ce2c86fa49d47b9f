//! Directory counts (decision D8) against a model: after every step of a random history of
//! puts, deletes and Txns over `/`-structured keys, applied one entry at a time and in
//! Ready-sized batches, the count of every prefix range (answered from the counts) equals the
//! number of live keys the model holds under that prefix, and the keys returned with a limit
//! are the model's first keys. A store whose counts were lost is recounted at start-up.

#[allow(dead_code)]
mod mvcc_common;

use atoll_proto::{
    CompareResult, CompareTarget, RaftCommand, RequestOp, TxnRequest, WriteOp, prefix_range_end,
};
use atoll_shard::mvcc::{MvccLimits, ShardRange};
use mvcc_common::*;
use std::collections::BTreeSet;

/// Seed of the history; a failure names it.
const SEED: u64 = 0xd1c0_0075;
/// Writes in the history.
const OPS: usize = 600;

const DIRS: [&str; 5] = ["/a/", "/a/b/", "/a/b/c/", "/z/", "/"];

/// A key under one of `DIRS`.
fn random_key(rng: &mut Rng) -> Vec<u8> {
    let dir = rng.pick(&DIRS);
    format!("{dir}k{}", rng.next() % 6).into_bytes()
}

/// A random write and its effect on the model's set of live keys.
fn random_op(rng: &mut Rng, live: &mut BTreeSet<Vec<u8>>) -> WriteOp {
    match rng.next() % 10 {
        0..=5 => {
            let key = random_key(rng);
            live.insert(key.clone());
            put(&key, b"v")
        }
        6 | 7 => {
            let key = random_key(rng);
            live.remove(&key);
            del(&key, b"")
        }
        8 => {
            let dir = rng.pick(&DIRS).as_bytes();
            let end = prefix_range_end(dir);
            live.retain(|k| !(k.as_slice() >= dir && k.as_slice() < end.as_slice()));
            del(dir, &end)
        }
        _ => {
            // A Txn that creates one key and deletes another when the first is absent.
            let (create, remove) = (random_key(rng), random_key(rng));
            let absent = !live.contains(&create);
            if absent {
                if create != remove {
                    live.remove(&remove);
                }
                live.insert(create.clone());
            }
            let compare = atoll_proto::Compare {
                result: CompareResult::Equal,
                target: CompareTarget::Version(0),
                key: create.clone(),
                range_end: Vec::new(),
            };
            let success = if create == remove {
                vec![RequestOp::Put(put_req(&create, b"t"))]
            } else {
                vec![
                    RequestOp::Put(put_req(&create, b"t")),
                    RequestOp::DeleteRange(del_req(&remove, b"")),
                ]
            };
            WriteOp::Txn(TxnRequest { compare: vec![compare], success, failure: vec![] })
        }
    }
}

fn check_counts(fx: &Fixture, live: &BTreeSet<Vec<u8>>, step: usize) {
    let mut prefixes: Vec<Vec<u8>> = DIRS.iter().map(|d| d.as_bytes().to_vec()).collect();
    prefixes.push(b"/q/".to_vec());
    for prefix in prefixes {
        let end = prefix_range_end(&prefix);
        let want: Vec<&Vec<u8>> = live.iter().filter(|k| k.starts_with(&prefix)).collect();
        let mut req = range(&prefix, &end);
        req.limit = 2;
        let resp = fx.must_range(&req).expect("range");
        assert_eq!(resp.count, want.len() as i64, "seed {SEED:#x} step {step} prefix {prefix:?}");
        let got: Vec<&Vec<u8>> = resp.kvs.iter().map(|kv| &kv.key).collect();
        assert_eq!(got, want.iter().take(2).copied().collect::<Vec<_>>(), "step {step}");
        assert_eq!(resp.more, want.len() > 2, "step {step} prefix {prefix:?}");
        req.count_only = true;
        let only = fx.must_range(&req).expect("count only");
        assert_eq!(only.count, want.len() as i64, "count_only, step {step} prefix {prefix:?}");
    }
    let all = fx.must_range(&range(b"\0", b"\0")).expect("all");
    assert_eq!(all.count, live.len() as i64, "every key, step {step}");
}

#[test]
fn counts_follow_every_write_applied_singly() {
    let mut fx = Fixture::must_open();
    let mut rng = Rng(SEED);
    let mut live = BTreeSet::new();
    for step in 0..OPS {
        let op = random_op(&mut rng, &mut live);
        let _ = fx.must_apply(op);
        if step % 7 == 0 {
            check_counts(&fx, &live, step);
        }
    }
    check_counts(&fx, &live, OPS);
}

#[test]
fn counts_follow_writes_applied_in_batches() {
    let mut fx = Fixture::must_open();
    let mut rng = Rng(SEED ^ 1);
    let mut live = BTreeSet::new();
    let mut step = 0;
    while step < OPS {
        let batch = 1 + (rng.next() % 9) as usize;
        let entries: Vec<(u64, Option<RaftCommand>)> = (0..batch)
            .map(|i| {
                let index = fx.state.applied_index + 1 + i as u64;
                let op = random_op(&mut rng, &mut live);
                (index, Some(RaftCommand { revision_stamp: 100 * index as i64, op }))
            })
            .collect();
        fx.store.apply_entries(&mut fx.state, &entries, &MvccLimits::default()).expect("storage");
        step += batch;
        check_counts(&fx, &live, step);
    }
}

#[test]
fn lost_counts_are_rebuilt_at_start_up() {
    let mut fx =
        Fixture::must_open_range(ShardRange { start: b"/a/".to_vec(), end: b"/y".to_vec() });
    for key in ["/a/1", "/a/b/2", "/a/b/3", "/a/c/4"] {
        fx.must_apply(put(key.as_bytes(), b"v")).expect("put");
    }
    // A data directory from before the counts existed: no counts and no marker.
    let mut shard_prefix = SHARD.0.to_be_bytes().to_vec();
    shard_prefix.push(b'n');
    let keys: Vec<_> =
        fx.storage.raft_state.prefix(&shard_prefix).map(|g| g.key().expect("key")).collect();
    assert!(!keys.is_empty(), "apply wrote counts");
    for key in keys {
        fx.storage.raft_state.remove(key).expect("remove count");
    }
    let mut marker = SHARD.0.to_be_bytes().to_vec();
    marker.push(b'N');
    fx.storage.raft_state.remove(marker).expect("remove marker");

    let mut req = range(b"/a/b/", &prefix_range_end(b"/a/b/"));
    req.count_only = true;
    assert_eq!(fx.must_range(&req).expect("scan").count, 2, "without counts the scan counts");
    fx.store.prepare_dir_counts().expect("rebuild");
    assert_eq!(fx.must_range(&req).expect("counted").count, 2);
    fx.must_apply(put(b"/a/b/5", b"v")).expect("put");
    assert_eq!(fx.must_range(&req).expect("counted").count, 3);
    let mut fx = fx.must_reopen();
    fx.store.prepare_dir_counts().expect("already complete");
    fx.must_apply(del(b"/a/", &prefix_range_end(b"/a/"))).expect("delete all");
    assert_eq!(fx.must_range(&req).expect("counted").count, 0);
    let everything = fx.must_range(&range(b"\0", b"\0")).expect("all");
    assert_eq!(everything.count, 0);
}
