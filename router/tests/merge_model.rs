//! Cross-shard Range merging against a model: random keys with random versions and
//! revisions, split at random points, asked random Range options. Each shard answers the
//! request `shard_request` gives it with the model's etcd semantics over its own keys; the
//! merged answer must equal the model's answer over every key. A failing case prints its
//! seed; rerun one with `ATOLL_TEST_SEED=<seed>`.
//!
//! The model is written from etcd v3.5's `applierV3backend.Range` (`server/etcdserver/apply.go`)
//! and `rangeKeys`, not from atoll-shard (the router must not depend on it); atoll-shard's
//! `mvcc/range.rs` follows the same rules and keeps sort ties in key order (D7).

use atoll_proto::shard_map::{ShardDescriptor, ShardMap};
use atoll_proto::{
    KeyValue, RangeRequest, RangeResponse, ResponseHeader, ShardId, SortOrder, SortTarget,
    prefix_range_end,
};
use atoll_router::merge::{merge_ranges, shard_request};
use atoll_router::shard_map::ShardMapCache;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// The revision every shard is read at.
const READ_REVISION: i64 = 1_000;

fn seeds(cases: u64) -> Vec<u64> {
    match std::env::var("ATOLL_TEST_SEED") {
        Ok(seed) => vec![seed.parse().expect("ATOLL_TEST_SEED is a number")],
        Err(_) => (0..cases).collect(),
    }
}

/// etcd's answer over `kvs` (live keys at the read revision, in key order).
fn model_range(kvs: &[KeyValue], req: &RangeRequest) -> RangeResponse {
    let in_range: Vec<&KeyValue> = kvs
        .iter()
        .filter(|kv| match req.range_end.as_slice() {
            [] => kv.key == req.key,
            [0] => kv.key >= req.key,
            end => kv.key >= req.key && kv.key.as_slice() < end,
        })
        .collect();
    let filtered = req.min_mod_revision != 0
        || req.max_mod_revision != 0
        || req.min_create_revision != 0
        || req.max_create_revision != 0;
    // apply.go: fetch everything when sorting or filtering; else limit + 1 for `more`.
    let fetch = if req.sort_order != SortOrder::None || filtered || req.limit <= 0 {
        usize::MAX
    } else {
        usize::try_from(req.limit.saturating_add(1)).unwrap_or(usize::MAX)
    };
    let mut out: Vec<KeyValue> = if req.count_only {
        Vec::new()
    } else {
        in_range.iter().take(fetch).map(|kv| (*kv).clone()).collect()
    };
    // pruneKVs: 0 means no bound.
    out.retain(|kv| {
        !(req.max_mod_revision != 0 && kv.mod_revision > req.max_mod_revision
            || req.min_mod_revision != 0 && kv.mod_revision < req.min_mod_revision
            || req.max_create_revision != 0 && kv.create_revision > req.max_create_revision
            || req.min_create_revision != 0 && kv.create_revision < req.min_create_revision)
    });
    let mut order = req.sort_order;
    if req.sort_target != SortTarget::Key && order == SortOrder::None {
        order = SortOrder::Ascend;
    }
    let target = |kv: &KeyValue| -> (Vec<u8>, i64) {
        match req.sort_target {
            SortTarget::Key => (kv.key.clone(), 0),
            SortTarget::Version => (Vec::new(), kv.version),
            SortTarget::Create => (Vec::new(), kv.create_revision),
            SortTarget::Mod => (Vec::new(), kv.mod_revision),
            SortTarget::Value => (kv.value.clone(), 0),
        }
    };
    match order {
        SortOrder::None => {}
        SortOrder::Ascend => out.sort_by_key(|kv| target(kv)),
        SortOrder::Descend => out.sort_by_key(|kv| std::cmp::Reverse(target(kv))),
    }
    if req.keys_only {
        out.iter_mut().for_each(|kv| kv.value.clear());
    }
    let mut more = false;
    if req.limit > 0 && out.len() as i64 > req.limit {
        out.truncate(req.limit as usize);
        more = true;
    }
    RangeResponse {
        header: ResponseHeader { revision: READ_REVISION, ..Default::default() },
        kvs: out,
        more,
        count: in_range.len() as i64,
    }
}

fn random_bytes(rng: &mut StdRng, alphabet: &[u8], min: usize, max: usize) -> Vec<u8> {
    let len = rng.random_range(min..=max);
    (0..len).map(|_| alphabet[rng.random_range(0..alphabet.len())]).collect()
}

/// Up to 40 live keys over a small alphabet, with small versions and revisions so that sort
/// ties are common.
fn random_store(rng: &mut StdRng) -> Vec<KeyValue> {
    let mut kvs: Vec<KeyValue> = (0..rng.random_range(0..40))
        .map(|_| {
            let create_revision = rng.random_range(1..20);
            KeyValue {
                key: random_bytes(rng, b"abc\0\xff", 1, 3),
                create_revision,
                mod_revision: create_revision + rng.random_range(0..10),
                version: rng.random_range(1..4),
                value: random_bytes(rng, b"xy", 0, 2),
                lease: 0,
            }
        })
        .collect();
    kvs.sort_by(|a, b| a.key.cmp(&b.key));
    kvs.dedup_by(|a, b| a.key == b.key);
    kvs
}

fn random_map(rng: &mut StdRng) -> ShardMap {
    let mut starts: Vec<Vec<u8>> =
        (0..rng.random_range(0..6)).map(|_| random_bytes(rng, b"abc\0\xff", 1, 2)).collect();
    starts.push(Vec::new());
    starts.sort();
    starts.dedup();
    let shards = starts
        .iter()
        .enumerate()
        .map(|(i, start)| ShardDescriptor {
            id: ShardId(i as u64 + 1),
            start: start.clone(),
            end: starts.get(i + 1).cloned().unwrap_or_default(),
            epoch: Default::default(),
            replicas: Vec::new(),
        })
        .collect();
    ShardMap { version: 1, shards }
}

fn random_request(rng: &mut StdRng) -> RangeRequest {
    let key = random_bytes(rng, b"abc\0\xff", 1, 2);
    let range_end = match rng.random_range(0..5) {
        0 => Vec::new(),
        1 => vec![0],
        2 => prefix_range_end(&key),
        _ => random_bytes(rng, b"abc\0\xff", 1, 3),
    };
    let orders = [SortOrder::None, SortOrder::Ascend, SortOrder::Descend];
    let targets = [
        SortTarget::Key,
        SortTarget::Version,
        SortTarget::Create,
        SortTarget::Mod,
        SortTarget::Value,
    ];
    let maybe = |rng: &mut StdRng, max: i64| {
        if rng.random_bool(0.2) { rng.random_range(1..max) } else { 0 }
    };
    RangeRequest {
        key,
        range_end,
        limit: if rng.random_bool(0.6) { rng.random_range(1..8) } else { 0 },
        revision: 0,
        sort_order: orders[rng.random_range(0..orders.len())],
        sort_target: targets[rng.random_range(0..targets.len())],
        serializable: false,
        keys_only: rng.random_bool(0.3),
        count_only: rng.random_bool(0.15),
        min_mod_revision: maybe(rng, 25),
        max_mod_revision: maybe(rng, 25),
        min_create_revision: maybe(rng, 20),
        max_create_revision: maybe(rng, 20),
    }
}

/// Serves `req` the way a router does: clip to each shard, ask each shard, merge.
fn routed(cache: &ShardMapCache, store: &[KeyValue], req: &RangeRequest) -> RangeResponse {
    let parts = cache
        .shards_for_range(&req.key, &req.range_end)
        .into_iter()
        .map(|span| {
            let own: Vec<KeyValue> =
                store.iter().filter(|kv| span.shard.contains(&kv.key)).cloned().collect();
            model_range(&own, &shard_request(req, &span.key, &span.range_end))
        })
        .collect();
    merge_ranges(req, parts)
}

#[test]
fn merged_ranges_equal_one_store_holding_every_key() {
    for seed in seeds(3_000) {
        let mut rng = StdRng::seed_from_u64(seed);
        let store = random_store(&mut rng);
        let cache = ShardMapCache::new(random_map(&mut rng)).expect("valid map");
        for _ in 0..20 {
            let req = random_request(&mut rng);
            let mut expected = model_range(&store, &req);
            let got = routed(&cache, &store, &req);
            if cache.shards_for_range(&req.key, &req.range_end).is_empty() {
                // No shard was asked: the caller fills the header.
                expected.header = ResponseHeader::default();
            }
            assert_eq!(
                got,
                expected,
                "seed {seed}: {req:?} over {} shards",
                cache.map().shards.len()
            );
        }
    }
}

#[test]
fn etcds_prefetch_sorts_only_the_first_keys_in_key_order() {
    // With no sort order, a non-KEY target, no filter and limit 1, etcd takes the first two
    // keys in key order and returns the lower version of the two. Here they lie in different
    // shards, and the second shard has a lower version further on that must not win.
    let kv = |key: &[u8], version| KeyValue {
        key: key.to_vec(),
        version,
        create_revision: 1,
        mod_revision: 1,
        ..Default::default()
    };
    let store = vec![kv(b"a", 3), kv(b"b", 2), kv(b"c", 1)];
    let map = ShardMap {
        version: 1,
        shards: vec![
            ShardDescriptor {
                id: ShardId(1),
                start: Vec::new(),
                end: b"b".to_vec(),
                epoch: Default::default(),
                replicas: Vec::new(),
            },
            ShardDescriptor {
                id: ShardId(2),
                start: b"b".to_vec(),
                end: Vec::new(),
                epoch: Default::default(),
                replicas: Vec::new(),
            },
        ],
    };
    let cache = ShardMapCache::new(map).expect("valid");
    let req = RangeRequest {
        key: b"a".to_vec(),
        range_end: vec![0],
        limit: 1,
        sort_target: SortTarget::Version,
        ..Default::default()
    };
    let got = routed(&cache, &store, &req);
    assert_eq!(got.kvs, vec![kv(b"b", 2)]);
    assert!(got.more);
    assert_eq!(got.count, 3);
    assert_eq!(got, model_range(&store, &req));
}

#[test]
fn header_revision_is_the_highest_of_the_parts_and_a_part_saying_more_counts() {
    let part = |revision, more, count, keys: &[&[u8]]| RangeResponse {
        header: ResponseHeader { cluster_id: 9, member_id: 4, revision, raft_term: 2 },
        kvs: keys.iter().map(|k| KeyValue { key: k.to_vec(), ..Default::default() }).collect(),
        more,
        count,
    };
    let req =
        RangeRequest { key: b"a".to_vec(), range_end: vec![0], limit: 2, ..Default::default() };
    let merged =
        merge_ranges(&req, vec![part(10, false, 1, &[b"a"]), part(12, true, 5, &[b"m", b"n"])]);
    assert_eq!(
        merged.header,
        ResponseHeader { cluster_id: 9, member_id: 4, revision: 12, raft_term: 2 }
    );
    assert_eq!(merged.count, 6);
    assert_eq!(merged.kvs.len(), 2);
    assert!(merged.more);
    let merged = merge_ranges(&req, vec![part(10, false, 1, &[b"a"]), part(10, false, 1, &[b"m"])]);
    assert!(!merged.more, "exactly limit keys: nothing more");
    let one_more = RangeRequest { limit: 3, ..req };
    let merged = merge_ranges(
        &one_more,
        vec![part(10, false, 1, &[b"a"]), part(10, true, 5, &[b"m", b"n", b"o"])],
    );
    assert_eq!(merged.kvs.len(), 3);
    assert!(merged.more, "a part that said more counts");
    assert_eq!(merge_ranges(&one_more, Vec::new()), RangeResponse::default());
}
