//! The router's shard map against brute force: random maps and random ranges over a small
//! universe of keys, where the right answer is computed key by key. A failing case prints
//! its seed; rerun one with `ATOLL_TEST_SEED=<seed>`.

use atoll_proto::shard_map::{
    Epoch, Member, ReplicaDescriptor, ReplicaRole, ShardDescriptor, ShardMap,
};
use atoll_proto::{NodeId, ShardId, prefix_range_end};
use atoll_router::shard_map::{ShardMapCache, ShardMapError, ShardUpdate, bootstrap_map, validate};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Bytes keys are drawn from: the extremes and neighbours matter most ("\0" is etcd's
/// "no end", 0xff has no successor).
const ALPHABET: [u8; 5] = [0x00, 0x01, b'a', 0xfe, 0xff];

/// Every key of up to three bytes over [`ALPHABET`], the empty key included, sorted.
fn universe() -> Vec<Vec<u8>> {
    let mut keys = vec![Vec::new()];
    let mut last = vec![Vec::new()];
    for _ in 0..3 {
        last = last
            .iter()
            .flat_map(|k: &Vec<u8>| {
                ALPHABET.iter().map(move |b| {
                    let mut k = k.clone();
                    k.push(*b);
                    k
                })
            })
            .collect();
        keys.extend(last.iter().cloned());
    }
    keys.sort();
    keys
}

fn random_key(rng: &mut StdRng, min_len: usize) -> Vec<u8> {
    let len = rng.random_range(min_len..=3);
    (0..len).map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())]).collect()
}

fn seeds(cases: u64) -> Vec<u64> {
    match std::env::var("ATOLL_TEST_SEED") {
        Ok(seed) => vec![seed.parse().expect("ATOLL_TEST_SEED is a number")],
        Err(_) => (0..cases).collect(),
    }
}

fn voters(nodes: &[u64]) -> Vec<ReplicaDescriptor> {
    nodes.iter().map(|&n| ReplicaDescriptor { node: NodeId(n), role: ReplicaRole::Voter }).collect()
}

fn epoch(range_version: u64, conf_version: u64) -> Epoch {
    Epoch { range_version, conf_version }
}

fn shard(id: u64, start: &[u8], end: &[u8], epoch: Epoch) -> ShardDescriptor {
    ShardDescriptor {
        id: ShardId(id),
        start: start.to_vec(),
        end: end.to_vec(),
        epoch,
        replicas: voters(&[1, 2, 3]),
    }
}

/// A random valid map: distinct sorted boundaries over the alphabet, shuffled IDs from 1.
fn random_map(rng: &mut StdRng) -> ShardMap {
    let mut starts: Vec<Vec<u8>> =
        (0..rng.random_range(0..8)).map(|_| random_key(rng, 1)).collect();
    starts.push(Vec::new());
    starts.sort();
    starts.dedup();
    let mut ids: Vec<u64> = (1..=starts.len() as u64).collect();
    for i in (1..ids.len()).rev() {
        ids.swap(i, rng.random_range(0..=i));
    }
    let shards = starts
        .iter()
        .enumerate()
        .map(|(i, start)| {
            let end = starts.get(i + 1).cloned().unwrap_or_default();
            shard(ids[i], start, &end, epoch(1, 1))
        })
        .collect();
    ShardMap { version: 1, shards }
}

/// etcd's reading of `[key, range_end)`, key by key.
fn in_request(k: &[u8], key: &[u8], range_end: &[u8]) -> bool {
    match range_end {
        [] => k == key,
        [0] => k >= key,
        end => k >= key && k < end,
    }
}

#[test]
fn bootstrap_without_prefixes_is_one_shard_over_every_key() {
    let map = bootstrap_map(&[], &voters(&[7])).expect("bootstrap");
    assert_eq!(map.version, 1);
    assert_eq!(
        map.shards,
        vec![ShardDescriptor { replicas: voters(&[7]), ..shard(1, b"", b"", epoch(1, 1)) }]
    );
}

#[test]
fn a_split_prefix_owns_exactly_its_keys() {
    let map = bootstrap_map(&[b"/registry/pods/".to_vec()], &voters(&[1])).expect("bootstrap");
    let bounds: Vec<(&[u8], &[u8])> =
        map.shards.iter().map(|s| (s.start.as_slice(), s.end.as_slice())).collect();
    assert_eq!(
        bounds,
        vec![
            (&b""[..], &b"/registry/pods/"[..]),
            (b"/registry/pods/", b"/registry/pods0"),
            (b"/registry/pods0", b""),
        ]
    );
    let ids: Vec<u64> = map.shards.iter().map(|s| s.id.0).collect();
    assert_eq!(ids, vec![1, 2, 3]);
    let cache = ShardMapCache::new(map).expect("valid");
    assert_eq!(cache.shard_for_key(b"/registry/pods/default/a").id, ShardId(2));
    assert_eq!(cache.shard_for_key(b"/registry/pods0").id, ShardId(3));
    assert_eq!(cache.shard_for_key(b"/registry/pod").id, ShardId(1));
    let all_ff = bootstrap_map(&[b"\xff".to_vec()], &[]).expect("bootstrap");
    assert_eq!(all_ff.shards.len(), 2, "an all-0xff prefix runs to the end: no end boundary");
}

#[test]
fn bad_split_lists_are_refused_with_one_line_errors() {
    let e = bootstrap_map(&[b"/a/".to_vec(), Vec::new()], &[]).expect_err("empty prefix");
    assert_eq!(e, ShardMapError::EmptyPrefix { position: 2 });
    let e = bootstrap_map(&[b"/a/".to_vec(), b"/b\n".to_vec(), b"/b\n".to_vec()], &[])
        .expect_err("duplicate");
    assert_eq!(
        e.to_string(),
        "--initial-split: prefix '/b\\n' is given twice; list each prefix once"
    );
}

#[test]
fn bootstrap_gives_every_prefix_a_shard_that_mixes_no_other_keys() {
    let keys = universe();
    for seed in seeds(300) {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut prefixes: Vec<Vec<u8>> =
            (0..rng.random_range(0..5)).map(|_| random_key(&mut rng, 1)).collect();
        prefixes.sort();
        prefixes.dedup();
        let map =
            bootstrap_map(&prefixes, &voters(&[1])).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        validate(&map).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        for prefix in &prefixes {
            assert!(
                map.shards.iter().any(|s| &s.start == prefix),
                "seed {seed}: no shard starts at {prefix:?}"
            );
        }
        // Two keys in one shard start with exactly the same prefixes: no shard holds keys of
        // a prefix together with keys outside it.
        let cache = ShardMapCache::new(map).expect("valid");
        let owned_by =
            |k: &[u8]| prefixes.iter().filter(|p| k.starts_with(p)).cloned().collect::<Vec<_>>();
        let mut seen: std::collections::BTreeMap<ShardId, Vec<Vec<u8>>> = Default::default();
        for k in &keys {
            let id = cache.shard_for_key(k).id;
            let owners = owned_by(k);
            let first = seen.entry(id).or_insert_with(|| owners.clone());
            assert_eq!(first, &owners, "seed {seed}: shard {id} mixes prefixes at key {k:?}");
        }
    }
}

#[test]
fn validate_refuses_every_broken_map() {
    let good = ShardMap {
        version: 1,
        shards: vec![
            shard(1, b"", b"b", epoch(1, 1)),
            shard(2, b"b", b"d", epoch(1, 1)),
            shard(3, b"d", b"", epoch(1, 1)),
        ],
    };
    validate(&good).expect("good map");
    let broken = |f: &dyn Fn(&mut Vec<ShardDescriptor>)| {
        let mut m = good.clone();
        f(&mut m.shards);
        validate(&m).expect_err("broken map must be refused")
    };
    assert!(matches!(broken(&|s| s.clear()), ShardMapError::NoShards));
    assert!(matches!(
        broken(&|s| {
            s.remove(0);
        }),
        ShardMapError::FirstNotAtLowestKey { .. }
    ));
    assert!(matches!(
        broken(&|s| {
            s.pop();
        }),
        ShardMapError::LastIsBounded { .. }
    ));
    assert!(
        matches!(broken(&|s| s[1].end = b"c".to_vec()), ShardMapError::NotContiguous { .. }),
        "gap"
    );
    assert!(
        matches!(broken(&|s| s[1].start = b"a".to_vec()), ShardMapError::NotContiguous { .. }),
        "overlap"
    );
    assert!(
        matches!(broken(&|s| s[0].end = Vec::new()), ShardMapError::NotContiguous { .. }),
        "unbounded early"
    );
    assert!(matches!(broken(&|s| s.swap(1, 2)), ShardMapError::LastIsBounded { .. }));
    assert!(
        matches!(broken(&|s| s.swap(0, 1)), ShardMapError::FirstNotAtLowestKey { .. }),
        "out of order"
    );
    assert!(matches!(broken(&|s| s[2].id = ShardId(1)), ShardMapError::DuplicateId { .. }));
    assert!(matches!(broken(&|s| s[1].id = ShardId(0)), ShardMapError::MetaShardListed { .. }));
    let e = broken(&|s| {
        s[1].start = b"d".to_vec();
        s[0].end = b"d".to_vec();
    });
    assert!(matches!(e, ShardMapError::EmptyShard { .. }), "{e}");
    assert!(!e.to_string().contains('\n'));
}

#[test]
fn lookups_match_brute_force_over_random_maps_and_ranges() {
    let keys = universe();
    for seed in seeds(400) {
        let mut rng = StdRng::seed_from_u64(seed);
        let map = random_map(&mut rng);
        let cache = ShardMapCache::new(map.clone()).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        for k in &keys {
            let owners: Vec<&ShardDescriptor> =
                map.shards.iter().filter(|s| s.contains(k)).collect();
            assert_eq!(owners.len(), 1, "seed {seed}: key {k:?} owned {} times", owners.len());
            assert_eq!(cache.shard_for_key(k), owners[0], "seed {seed}: key {k:?}");
        }
        for _ in 0..30 {
            let key = random_key(&mut rng, 0);
            let range_end = match rng.random_range(0..4) {
                0 => Vec::new(),
                1 => vec![0],
                2 => prefix_range_end(&key),
                _ => random_key(&mut rng, 1),
            };
            check_spans(&cache, &keys, &key, &range_end, seed);
        }
    }
}

fn check_spans(cache: &ShardMapCache, keys: &[Vec<u8>], key: &[u8], range_end: &[u8], seed: u64) {
    let spans = cache.shards_for_range(key, range_end);
    let ctx = format!("seed {seed}: range [{key:?}, {range_end:?})");
    // The shards touched, by interval arithmetic: those whose range meets the request's.
    let touched: Vec<ShardId> = cache
        .map()
        .shards
        .iter()
        .filter(|s| match range_end {
            [] => s.contains(key),
            [0] => s.end.is_empty() || key < s.end.as_slice(),
            end => {
                key < end
                    && end > s.start.as_slice()
                    && (s.end.is_empty() || key < s.end.as_slice())
            }
        })
        .map(|s| s.id)
        .collect();
    let got: Vec<ShardId> = spans.iter().map(|s| s.shard.id).collect();
    assert_eq!(got, touched, "{ctx}: shards in key order");
    for k in keys {
        let expected = in_request(k, key, range_end);
        let hits: Vec<ShardId> = spans
            .iter()
            .filter(|s| in_request(k, &s.key, &s.range_end))
            .map(|s| s.shard.id)
            .collect();
        match (expected, hits.as_slice()) {
            (false, []) => {}
            (true, [id]) => assert_eq!(
                *id,
                cache.shard_for_key(k).id,
                "{ctx}: key {k:?} sent to a shard that does not own it"
            ),
            (_, hits) => panic!("{ctx}: key {k:?} in request: {expected}, sent to shards {hits:?}"),
        }
    }
}

#[test]
fn a_shard_ending_at_nul_gets_the_empty_key_not_every_key() {
    let map = ShardMap {
        version: 1,
        shards: vec![shard(1, b"", b"\0", epoch(1, 1)), shard(2, b"\0", b"", epoch(1, 1))],
    };
    let cache = ShardMapCache::new(map).expect("valid");
    let spans = cache.shards_for_range(b"", b"\0");
    let clipped: Vec<(&[u8], &[u8])> =
        spans.iter().map(|s| (s.key.as_slice(), s.range_end.as_slice())).collect();
    assert_eq!(clipped, vec![(&b""[..], &b""[..]), (b"\0", b"\0")]);
}

#[test]
fn not_leader_hints_are_kept_only_for_known_replicas() {
    let map = bootstrap_map(&[b"m".to_vec()], &voters(&[1, 2, 3])).expect("bootstrap");
    let mut cache = ShardMapCache::new(map).expect("valid");
    assert_eq!(cache.leader_hint(ShardId(2)), None);
    assert_eq!(cache.on_not_leader(ShardId(2), Some(NodeId(3))), ShardUpdate::Applied);
    assert_eq!(cache.leader_hint(ShardId(2)), Some(NodeId(3)));
    assert_eq!(
        cache.on_not_leader(ShardId(2), Some(NodeId(9))),
        ShardUpdate::NeedsRefresh,
        "node 9 hosts no replica"
    );
    assert_eq!(cache.leader_hint(ShardId(2)), None);
    assert_eq!(cache.on_not_leader(ShardId(2), Some(NodeId(1))), ShardUpdate::Applied);
    assert_eq!(cache.on_not_leader(ShardId(2), None), ShardUpdate::Applied);
    assert_eq!(cache.leader_hint(ShardId(2)), None);
    assert_eq!(cache.on_not_leader(ShardId(42), None), ShardUpdate::NeedsRefresh, "unknown shard");
}

#[test]
fn a_hint_naming_a_member_added_after_bootstrap_is_followed_once_the_members_are_known() {
    let map = bootstrap_map(&[b"m".to_vec()], &voters(&[1, 2, 3])).expect("bootstrap");
    let mut cache = ShardMapCache::new(map).expect("valid");
    let member = |id: u64, url: &str| Member {
        id: NodeId(id),
        client_urls: vec![url.to_string()],
        ..Member::default()
    };
    // Node 4 joined after the map was made: no replica list names it.
    assert_eq!(cache.on_not_leader(ShardId(2), Some(NodeId(4))), ShardUpdate::NeedsRefresh);
    assert_eq!(cache.leader_hint(ShardId(2)), None);
    assert!(cache.leader_urls(ShardId(2)).is_empty());
    let members: Vec<Member> =
        (1..=4).map(|id| member(id, &format!("http://127.0.0.{id}:2379"))).collect();
    cache.set_members(&members);
    assert_eq!(cache.on_not_leader(ShardId(2), Some(NodeId(4))), ShardUpdate::Applied);
    assert_eq!(cache.leader_hint(ShardId(2)), Some(NodeId(4)));
    assert_eq!(cache.leader_urls(ShardId(2)), ["http://127.0.0.4:2379".to_string()]);
    assert_eq!(cache.on_not_leader(ShardId(2), Some(NodeId(9))), ShardUpdate::NeedsRefresh);
    // A member removed since: its hint goes with it.
    cache.on_not_leader(ShardId(1), Some(NodeId(4)));
    cache.set_members(&members[..3]);
    assert_eq!(cache.leader_hint(ShardId(1)), None);
    assert_eq!(cache.client_urls(NodeId(4)), [] as [String; 0]);
}

#[test]
fn newer_descriptors_replace_older_ones_and_stale_ones_do_not() {
    let start = ShardMap { version: 1, shards: vec![shard(1, b"", b"", epoch(1, 1))] };
    let mut cache = ShardMapCache::new(start).expect("valid");
    cache.on_not_leader(ShardId(1), Some(NodeId(2)));
    // Shard 1 splits at "m": 2 takes [m, ∞). Learning the right half first leaves the left
    // with shard 1's old epoch, so requests there are refused and refresh the map.
    assert_eq!(cache.update_shard(shard(2, b"m", b"", epoch(2, 1))), ShardUpdate::Applied);
    assert_eq!(cache.shard_for_key(b"a").epoch, epoch(1, 1));
    assert_eq!(cache.leader_hint(ShardId(1)), Some(NodeId(2)), "shard 1's leader is unchanged");
    assert_eq!(cache.update_shard(shard(1, b"", b"m", epoch(2, 1))), ShardUpdate::Applied);
    assert_eq!(cache.update_shard(shard(1, b"", b"", epoch(1, 1))), ShardUpdate::Stale);
    assert_eq!(
        cache.update_shard(shard(1, b"", b"m", epoch(2, 1))),
        ShardUpdate::Stale,
        "same epoch"
    );
    // A membership change of shard 2.
    let mut moved = shard(2, b"m", b"", epoch(2, 2));
    moved.replicas = voters(&[1, 2, 4]);
    assert_eq!(cache.update_shard(moved.clone()), ShardUpdate::Applied);
    assert_eq!(cache.shard_for_key(b"z"), &moved);
    // Incomparable epochs are not newer.
    assert_eq!(cache.update_shard(shard(2, b"m", b"", epoch(3, 1))), ShardUpdate::Stale);
    // A merge: shard 1 absorbs shard 2.
    assert_eq!(cache.update_shard(shard(1, b"", b"", epoch(3, 2))), ShardUpdate::Applied);
    assert_eq!(cache.map().shards, vec![shard(1, b"", b"", epoch(3, 2))]);
    assert_eq!(cache.leader_hint(ShardId(1)), None, "the merged shard's leader is unknown");
    // A descriptor strictly inside another shard would leave two pieces of shard 1.
    assert_eq!(cache.update_shard(shard(5, b"c", b"f", epoch(4, 1))), ShardUpdate::NeedsRefresh);
    // A whole map replaces the cache only if its version is newer.
    let newer = ShardMap {
        version: 2,
        shards: vec![shard(1, b"", b"c", epoch(4, 2)), shard(5, b"c", b"", epoch(4, 1))],
    };
    assert_eq!(cache.replace(newer.clone()), Ok(true));
    assert_eq!(cache.replace(ShardMap { version: 2, ..newer.clone() }), Ok(false));
    assert!(cache.replace(ShardMap { version: 3, shards: Vec::new() }).is_err());
    assert_eq!(cache.map(), &newer);
}

/// The true shard map of a cluster as it splits, merges and changes replicas, with TiKV's
/// epoch rules: a split bumps both halves' range version, a merge takes the larger range
/// version plus one, a membership change bumps the conf version.
struct Truth {
    map: ShardMap,
    next_id: u64,
    history: Vec<ShardDescriptor>,
}

impl Truth {
    fn step(&mut self, rng: &mut StdRng) {
        let shards = &mut self.map.shards;
        let i = rng.random_range(0..shards.len());
        match rng.random_range(0..3) {
            0 => {
                let at = random_key(rng, 1);
                let s = &shards[i];
                if at <= s.start || (!s.end.is_empty() && at >= s.end) {
                    return;
                }
                let bumped = epoch(s.epoch.range_version + 1, s.epoch.conf_version);
                let mut left = ShardDescriptor { end: at.clone(), epoch: bumped, ..s.clone() };
                let mut right = ShardDescriptor { start: at, epoch: bumped, ..s.clone() };
                let new = if rng.random_bool(0.5) { &mut left } else { &mut right };
                new.id = ShardId(self.next_id);
                self.next_id += 1;
                self.history.extend([left.clone(), right.clone()]);
                shards.splice(i..=i, [left, right]);
            }
            1 if i + 1 < shards.len() => {
                let (l, r) = (&shards[i], &shards[i + 1]);
                let merged = ShardDescriptor {
                    id: if rng.random_bool(0.5) { l.id } else { r.id },
                    start: l.start.clone(),
                    end: r.end.clone(),
                    epoch: epoch(
                        l.epoch.range_version.max(r.epoch.range_version) + 1,
                        l.epoch.conf_version.max(r.epoch.conf_version),
                    ),
                    replicas: l.replicas.clone(),
                };
                self.history.push(merged.clone());
                shards.splice(i..=i + 1, [merged]);
            }
            _ => {
                let s = &mut shards[i];
                s.epoch.conf_version += 1;
                s.replicas = voters(&[rng.random_range(1..6), rng.random_range(6..9)]);
                self.history.push(s.clone());
            }
        }
        self.map.version += 1;
    }
}

#[test]
fn a_cache_fed_descriptors_in_any_order_stays_valid_and_never_goes_back() {
    let keys = universe();
    for seed in seeds(200) {
        let mut rng = StdRng::seed_from_u64(seed);
        let first = random_map(&mut rng);
        let next_id = first.shards.len() as u64 + 1;
        let mut truth = Truth { history: first.shards.clone(), map: first.clone(), next_id };
        let mut cache = ShardMapCache::new(first).expect("valid");
        for _ in 0..40 {
            truth.step(&mut rng);
            validate(&truth.map)
                .unwrap_or_else(|e| panic!("seed {seed}: the test's truth broke: {e}"));
            for _ in 0..3 {
                let fresh = truth.history[rng.random_range(0..truth.history.len())].clone();
                let before = cache.map().clone();
                let outcome = cache.update_shard(fresh.clone());
                validate(cache.map()).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
                match outcome {
                    ShardUpdate::Applied => {
                        assert!(cache.map().shards.contains(&fresh), "seed {seed}")
                    }
                    ShardUpdate::Stale | ShardUpdate::NeedsRefresh => {
                        assert_eq!(cache.map(), &before, "seed {seed}: {outcome:?} changed the map")
                    }
                }
                for k in &keys {
                    let (old, new) = (owner(&before, k), cache.shard_for_key(k));
                    assert!(
                        new.epoch.range_version >= old.epoch.range_version
                            && (new.id != old.id || !old.epoch.is_newer_than(&new.epoch)),
                        "seed {seed}: key {k:?} went back from {old:?} to {new:?}"
                    );
                }
            }
        }
        assert_eq!(cache.replace(truth.map.clone()), Ok(true), "seed {seed}");
        assert_eq!(cache.map(), &truth.map, "seed {seed}");
    }
}

fn owner<'a>(map: &'a ShardMap, key: &[u8]) -> &'a ShardDescriptor {
    map.shards.iter().find(|s| s.contains(key)).expect("a valid map owns every key")
}
