//! The shard map as the router uses it: key to shard, range to shards (pure).
//!
//! - [`bootstrap_map`] builds a new cluster's map from the `--initial-split` prefixes.
//! - [`validate`] checks the invariant every map must keep: every key is owned by exactly one
//!   shard (contiguous, first shard at the empty key, last unbounded, no empty shard, unique
//!   IDs, no meta shard among the data shards).
//! - [`ShardMapCache`] is a client's or a node's copy of the map: it routes keys and ranges
//!   by binary search and takes fresher descriptors (`NotLeader` hints, newer epochs) without
//!   ever breaking that invariant.
//!
//! Keys follow etcd's `key`/`range_end` conventions (ETCD_API.md §1.3): an empty `range_end`
//! is the single key, `"\0"` means every key >= `key`, and an end at or below the key is
//! nothing. A shard's empty `end` means unbounded.

use atoll_proto::prefix_range_end;
use atoll_proto::shard_map::{
    Epoch, META_SHARD, Member, ReplicaDescriptor, ShardDescriptor, ShardMap,
};
use atoll_proto::{NodeId, ShardId};
use std::collections::{BTreeMap, BTreeSet};

/// The first data shard's ID; the meta shard is [`META_SHARD`] (0).
pub const FIRST_DATA_SHARD: ShardId = ShardId(1);

/// The epoch every shard of a new cluster starts at (TiKV starts regions at 1 as well, so
/// that 0 can never be mistaken for a real epoch).
pub const INITIAL_EPOCH: Epoch = Epoch { range_version: 1, conf_version: 1 };

/// The version of a new cluster's shard map.
pub const INITIAL_MAP_VERSION: u64 = 1;

/// Why a shard map or a split list is refused. Each message says what is wrong in one line.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ShardMapError {
    /// An `--initial-split` prefix is empty.
    #[error(
        "--initial-split: prefix {position} is empty; every split prefix needs at least one byte"
    )]
    EmptyPrefix {
        /// 1-based position of the prefix in the list.
        position: usize,
    },
    /// An `--initial-split` prefix is given twice.
    #[error("--initial-split: prefix '{prefix}' is given twice; list each prefix once")]
    DuplicatePrefix {
        /// The prefix, with non-printable bytes escaped.
        prefix: String,
    },
    /// The map has no data shard.
    #[error("shard map has no data shard; at least one shard must cover every key")]
    NoShards,
    /// The first shard does not start at the lowest key.
    #[error(
        "shard map does not cover the lowest keys: its first shard {shard} starts at '{start}' instead of the empty key"
    )]
    FirstNotAtLowestKey {
        /// The first shard.
        shard: ShardId,
        /// Its start, escaped.
        start: String,
    },
    /// The last shard is bounded.
    #[error(
        "shard map does not cover the highest keys: its last shard {shard} ends at '{end}' instead of being unbounded"
    )]
    LastIsBounded {
        /// The last shard.
        shard: ShardId,
        /// Its end, escaped.
        end: String,
    },
    /// Two neighbours leave a gap or overlap.
    #[error(
        "shard map is not contiguous: shard {left} ends at '{left_end}' but the next shard {right} starts at '{right_start}'"
    )]
    NotContiguous {
        /// The left shard.
        left: ShardId,
        /// Its end, escaped (empty: unbounded).
        left_end: String,
        /// The right shard.
        right: ShardId,
        /// Its start, escaped.
        right_start: String,
    },
    /// A shard's range holds no key.
    #[error("shard {shard} is empty: its start '{start}' is not below its end '{end}'")]
    EmptyShard {
        /// The shard.
        shard: ShardId,
        /// Its start, escaped.
        start: String,
        /// Its end, escaped.
        end: String,
    },
    /// Two shards share an ID.
    #[error("shard map lists shard {shard} twice; shard IDs must be unique")]
    DuplicateId {
        /// The repeated ID.
        shard: ShardId,
    },
    /// The meta shard is listed among the data shards.
    #[error(
        "shard map lists the meta shard {shard} as a data shard; the meta shard holds no user keys"
    )]
    MetaShardListed {
        /// The meta shard's ID.
        shard: ShardId,
    },
}

/// Builds the shard map of a new cluster from the `--initial-split` prefixes: every prefix
/// gets a shard that owns exactly the keys starting with it, and the keys between prefixes
/// go to shards of their own. Without prefixes there is one data shard covering every key
/// (DESIGN §6). Shards are numbered from [`FIRST_DATA_SHARD`] in key order; every shard gets
/// `replicas` (the initial members, as voters) and [`INITIAL_EPOCH`].
///
/// A prefix alone is not enough as a boundary: with the single split `/registry/pods/`, the
/// shard starting there would also own `/registry/pods0` and everything after it. So each
/// prefix also ends a shard at [`prefix_range_end`] of it, and `a/` with `b/` gives
/// `["", a/) [a/, a0) [a0, b/) [b/, b0) [b0, ∞)`. A prefix nested in another (`/r/` and
/// `/r/pods/`) splits the outer prefix's keys: the inner prefix owns its own keys.
pub fn bootstrap_map(
    prefixes: &[Vec<u8>],
    replicas: &[ReplicaDescriptor],
) -> Result<ShardMap, ShardMapError> {
    let mut seen = BTreeSet::new();
    for (i, prefix) in prefixes.iter().enumerate() {
        if prefix.is_empty() {
            return Err(ShardMapError::EmptyPrefix { position: i + 1 });
        }
        if !seen.insert(prefix.as_slice()) {
            return Err(ShardMapError::DuplicatePrefix { prefix: escape(prefix) });
        }
    }
    // The empty key, each prefix and each prefix's end; "\0" from prefix_range_end means the
    // prefix runs to the end of the key space and adds no boundary.
    let mut boundaries: BTreeSet<Vec<u8>> = BTreeSet::from([Vec::new()]);
    for prefix in prefixes {
        boundaries.insert(prefix.clone());
        let end = prefix_range_end(prefix);
        if end != [0] {
            boundaries.insert(end);
        }
    }
    let starts: Vec<Vec<u8>> = boundaries.into_iter().collect();
    let shards = starts
        .iter()
        .enumerate()
        .map(|(i, start)| ShardDescriptor {
            id: ShardId(FIRST_DATA_SHARD.0 + i as u64),
            start: start.clone(),
            end: starts.get(i + 1).cloned().unwrap_or_default(),
            epoch: INITIAL_EPOCH,
            replicas: replicas.to_vec(),
        })
        .collect();
    let map = ShardMap { version: INITIAL_MAP_VERSION, shards };
    validate(&map)?;
    Ok(map)
}

/// Checks that `map` owns every key exactly once and names each shard once.
pub fn validate(map: &ShardMap) -> Result<(), ShardMapError> {
    let (first, last) = match (map.shards.first(), map.shards.last()) {
        (Some(first), Some(last)) => (first, last),
        _ => return Err(ShardMapError::NoShards),
    };
    if !first.start.is_empty() {
        return Err(ShardMapError::FirstNotAtLowestKey {
            shard: first.id,
            start: escape(&first.start),
        });
    }
    if !last.end.is_empty() {
        return Err(ShardMapError::LastIsBounded { shard: last.id, end: escape(&last.end) });
    }
    let mut ids = BTreeSet::new();
    for shard in &map.shards {
        if shard.id == META_SHARD {
            return Err(ShardMapError::MetaShardListed { shard: shard.id });
        }
        if !ids.insert(shard.id) {
            return Err(ShardMapError::DuplicateId { shard: shard.id });
        }
        if !shard.end.is_empty() && shard.start >= shard.end {
            return Err(ShardMapError::EmptyShard {
                shard: shard.id,
                start: escape(&shard.start),
                end: escape(&shard.end),
            });
        }
    }
    for pair in map.shards.windows(2) {
        let (left, right) = (&pair[0], &pair[1]);
        // An unbounded shard before the last one overlaps everything after it.
        if left.end.is_empty() || left.end != right.start {
            return Err(ShardMapError::NotContiguous {
                left: left.id,
                left_end: escape(&left.end),
                right: right.id,
                right_start: escape(&right.start),
            });
        }
    }
    Ok(())
}

/// The part of a request that falls into one shard, in etcd's conventions so it can be sent
/// to the shard as is: `range_end` empty for a single key, `"\0"` for no end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardSpan<'a> {
    /// The shard that owns these keys.
    pub shard: &'a ShardDescriptor,
    /// First key, inclusive.
    pub key: Vec<u8>,
    /// End, exclusive, in etcd's conventions.
    pub range_end: Vec<u8>,
}

/// What [`ShardMapCache::update_shard`] did with a descriptor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShardUpdate {
    /// The descriptor replaced older ones.
    Applied,
    /// The cache already knows something at least as new; nothing changed.
    Stale,
    /// The descriptor cannot be placed without leaving a key owned twice or by nobody;
    /// nothing changed. Fetch the whole map from the meta shard.
    NeedsRefresh,
}

/// A copy of the shard map that routes keys and ranges to shards, plus the leader each
/// shard was last reported to have. It always holds a valid map ([`validate`]).
///
/// Descriptors learnt one at a time (after a split, merge or membership change) replace the
/// overlapping ones only when they are newer, as TiKV's client region cache does: a shard's
/// own epoch must be newer; another shard it overlaps must have an older range version.
/// Parts of an older shard that the fresh descriptor does not cover stay with the older
/// shard and its old epoch: requests routed there are refused with `WrongShard` by the
/// replica, which is what makes the caller refresh. The map's `version` only changes when
/// a whole map is taken with [`ShardMapCache::replace`].
#[derive(Clone, Debug)]
pub struct ShardMapCache {
    map: ShardMap,
    leaders: BTreeMap<ShardId, NodeId>,
    /// The client URLs of every member, from the last member list taken. A member added
    /// after bootstrap hosts a replica of every shard (decision D18) without being in the
    /// map's replica lists, so a `NotLeader` hint may name it.
    members: BTreeMap<NodeId, Vec<String>>,
}

impl ShardMapCache {
    /// A cache holding `map`, which must be valid.
    pub fn new(map: ShardMap) -> Result<ShardMapCache, ShardMapError> {
        validate(&map)?;
        Ok(ShardMapCache { map, leaders: BTreeMap::new(), members: BTreeMap::new() })
    }

    /// Takes the member list (with client URLs): hints naming these members are followed.
    /// Leader hints of members no longer listed are forgotten.
    pub fn set_members(&mut self, members: &[Member]) {
        self.members = members.iter().map(|m| (m.id, m.client_urls.clone())).collect();
        self.leaders.retain(|_, node| members.iter().any(|m| m.id == *node));
    }

    /// The client URLs of `node`, as the last member list gave them (empty if unknown or
    /// not published yet).
    pub fn client_urls(&self, node: NodeId) -> &[String] {
        self.members.get(&node).map_or(&[], Vec::as_slice)
    }

    /// The client URLs of the leader `shard` was last reported to have; empty when no
    /// leader is known or its URLs are not.
    pub fn leader_urls(&self, shard: ShardId) -> &[String] {
        self.leader_hint(shard).map_or(&[], |node| self.client_urls(node))
    }

    /// The cached map.
    pub fn map(&self) -> &ShardMap {
        &self.map
    }

    /// The shard that owns `key`.
    pub fn shard_for_key(&self, key: &[u8]) -> &ShardDescriptor {
        &self.map.shards[self.index_for_key(key)]
    }

    /// Every shard `[key, range_end)` touches, in key order, with the request clipped to it.
    /// Empty when the range holds no key (`range_end` at or below `key`).
    pub fn shards_for_range(&self, key: &[u8], range_end: &[u8]) -> Vec<ShardSpan<'_>> {
        if range_end.is_empty() {
            let shard = self.shard_for_key(key);
            return vec![ShardSpan { shard, key: key.to_vec(), range_end: Vec::new() }];
        }
        let asked_end = (range_end != [0]).then_some(range_end);
        if asked_end.is_some_and(|end| end <= key) {
            return Vec::new();
        }
        let mut spans = Vec::new();
        for shard in &self.map.shards[self.index_for_key(key)..] {
            if asked_end.is_some_and(|end| end <= shard.start.as_slice()) {
                break;
            }
            let start = key.max(shard.start.as_slice());
            let shard_end = (!shard.end.is_empty()).then_some(shard.end.as_slice());
            let end = match (asked_end, shard_end) {
                (Some(a), Some(s)) => Some(a.min(s)),
                (a, s) => a.or(s),
            };
            spans.push(ShardSpan { shard, key: start.to_vec(), range_end: encode_end(start, end) });
        }
        spans
    }

    /// Remembers `node` as the leader of `shard` (from a map answer listing leaders); a
    /// node that is neither a replica nor a known member is ignored.
    pub fn set_leader(&mut self, shard: ShardId, node: NodeId) {
        let _ = self.on_not_leader(shard, Some(node));
    }

    /// The leader `shard` was last reported to have, if any.
    pub fn leader_hint(&self, shard: ShardId) -> Option<NodeId> {
        self.leaders.get(&shard).copied()
    }

    /// Takes a `NotLeader { shard, leader_hint }` answer: remembers the hinted leader, or
    /// forgets the old one when there is no hint. A hint naming a node that is neither a
    /// replica in the cached descriptor nor a known member (one added after the map was
    /// taken, decision D18) is not kept: the answer is [`ShardUpdate::NeedsRefresh`], and
    /// the caller takes a fresh map and member list, then the hint again.
    pub fn on_not_leader(&mut self, shard: ShardId, leader_hint: Option<NodeId>) -> ShardUpdate {
        let Some(descriptor) = self.map.shards.iter().find(|s| s.id == shard) else {
            return ShardUpdate::NeedsRefresh;
        };
        match leader_hint {
            None => {
                self.leaders.remove(&shard);
                ShardUpdate::Applied
            }
            Some(node)
                if descriptor.replicas.iter().any(|r| r.node == node)
                    || self.members.contains_key(&node) =>
            {
                self.leaders.insert(shard, node);
                ShardUpdate::Applied
            }
            Some(_) => {
                self.leaders.remove(&shard);
                ShardUpdate::NeedsRefresh
            }
        }
    }

    /// Takes one fresh descriptor (from the meta shard, after a split, merge or membership
    /// change); see the type's documentation for when it wins.
    pub fn update_shard(&mut self, fresh: ShardDescriptor) -> ShardUpdate {
        let overlapping: Vec<usize> =
            (0..self.map.shards.len()).filter(|&i| overlaps(&self.map.shards[i], &fresh)).collect();
        let same_id_elsewhere = self
            .map
            .shards
            .iter()
            .enumerate()
            .any(|(i, s)| s.id == fresh.id && !overlapping.contains(&i));
        if same_id_elsewhere {
            return ShardUpdate::NeedsRefresh;
        }
        let newer = overlapping.iter().all(|&i| {
            let old = &self.map.shards[i];
            if old.id == fresh.id {
                fresh.epoch.is_newer_than(&old.epoch)
            } else {
                fresh.epoch.range_version > old.epoch.range_version
            }
        });
        if !newer {
            return ShardUpdate::Stale;
        }
        let (Some(&first), Some(&last)) = (overlapping.first(), overlapping.last()) else {
            // A valid map overlaps every non-empty range; only an empty one lands here.
            return ShardUpdate::NeedsRefresh;
        };
        let mut replacement = Vec::with_capacity(3);
        let head = &self.map.shards[first];
        if head.start < fresh.start {
            replacement.push(ShardDescriptor { end: fresh.start.clone(), ..head.clone() });
        }
        let tail = &self.map.shards[last];
        let tail_rest = !fresh.end.is_empty() && (tail.end.is_empty() || fresh.end < tail.end);
        let tail_rest =
            tail_rest.then(|| ShardDescriptor { start: fresh.end.clone(), ..tail.clone() });
        let fresh_id = fresh.id;
        replacement.push(fresh);
        replacement.extend(tail_rest);
        let mut shards = self.map.shards.clone();
        shards.splice(first..=last, replacement);
        let candidate = ShardMap { version: self.map.version, shards };
        if validate(&candidate).is_err() {
            return ShardUpdate::NeedsRefresh;
        }
        let removed: Vec<ShardId> = self.map.shards[first..=last].iter().map(|s| s.id).collect();
        self.map = candidate;
        for id in removed {
            if !self.map.shards.iter().any(|s| s.id == id) || id == fresh_id {
                self.leaders.remove(&id);
            }
        }
        ShardUpdate::Applied
    }

    /// Takes a whole map fetched from the meta shard if its version is newer than the
    /// cached one; returns whether it did. Leader hints of shards whose descriptor did not
    /// change are kept.
    pub fn replace(&mut self, map: ShardMap) -> Result<bool, ShardMapError> {
        validate(&map)?;
        if map.version <= self.map.version {
            return Ok(false);
        }
        self.leaders.retain(|id, _| {
            let old = self.map.shards.iter().find(|s| s.id == *id);
            let new = map.shards.iter().find(|s| s.id == *id);
            matches!((old, new), (Some(a), Some(b)) if a == b)
        });
        self.map = map;
        Ok(true)
    }

    /// Index of the shard owning `key`: the last shard starting at or below it. A valid map
    /// starts at the empty key, so there always is one.
    fn index_for_key(&self, key: &[u8]) -> usize {
        self.map.shards.partition_point(|s| s.start.as_slice() <= key).saturating_sub(1)
    }
}

/// Whether two descriptors' ranges share a key.
fn overlaps(a: &ShardDescriptor, b: &ShardDescriptor) -> bool {
    let below = |end: &[u8], start: &[u8]| !end.is_empty() && end <= start;
    !below(&a.end, &b.start) && !below(&b.end, &a.start)
}

/// `end` as an etcd `range_end` for a span starting at `start`: `None` (no end) is `"\0"`.
/// A bounded end of exactly `"\0"` cannot be written as a `range_end` (it would mean "no
/// end"); the only key below it is the empty key, so the span is that single key.
fn encode_end(start: &[u8], end: Option<&[u8]>) -> Vec<u8> {
    match end {
        None => vec![0],
        Some([0]) if start.is_empty() => Vec::new(),
        Some(end) => end.to_vec(),
    }
}

/// A key or prefix for an error message: printable ASCII as is, other bytes escaped.
fn escape(bytes: &[u8]) -> String {
    bytes.escape_ascii().to_string()
}
