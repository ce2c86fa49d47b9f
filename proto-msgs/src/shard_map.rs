//! The shard map: which shard owns which key range, its epoch and its replicas (DESIGN §6);
//! and cluster membership records.
//!
//! These are plain records as the meta shard stores them and as nodes and smart clients
//! exchange them. Lookup, validation and updates live in `atoll-router`'s `shard_map`.

use crate::ids::{NodeId, ShardId};
use serde::{Deserialize, Serialize};

/// The meta shard: it holds the shard map, membership, leases, users/roles and alarms, and
/// no user key. It is never listed in [`ShardMap::shards`].
pub const META_SHARD: ShardId = ShardId::META;

/// A shard's epoch (DESIGN §1): bumped by split and merge (`range_version`) and by
/// membership change (`conf_version`). Every routed request carries it, so a replica can
/// tell a request routed with a stale shard map (TiKV's `RegionEpoch{version, conf_ver}`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Epoch {
    /// Bumped whenever the shard's key range changes (split, merge).
    pub range_version: u64,
    /// Bumped whenever the shard's replica set changes (add, remove, promote).
    pub conf_version: u64,
}

impl Epoch {
    /// Whether `self` is strictly newer than `other`: no component older and at least one
    /// newer. Two epochs where each is ahead in one component are not comparable, and
    /// neither is newer (a shard's epoch only ever grows, so this means one of them is
    /// corrupt or from another shard).
    pub fn is_newer_than(&self, other: &Epoch) -> bool {
        self.range_version >= other.range_version
            && self.conf_version >= other.conf_version
            && self != other
    }
}

/// What part a replica plays in its shard's Raft group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ReplicaRole {
    /// Votes in elections and counts toward the commit quorum.
    Voter,
    /// Receives the log but neither votes nor counts toward quorum (DESIGN §7).
    Learner,
}

/// One replica of a shard: the node hosting it and its role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ReplicaDescriptor {
    /// The node that hosts the replica.
    pub node: NodeId,
    /// Voter or learner.
    pub role: ReplicaRole,
}

/// One shard: its key range `[start, end)`, its epoch and its replicas.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ShardDescriptor {
    /// The shard's ID; data shards start at 1 ([`META_SHARD`] is 0).
    pub id: ShardId,
    /// First key of the shard, inclusive; empty for the lowest key.
    pub start: Vec<u8>,
    /// End of the shard, exclusive; empty for unbounded (the last shard).
    pub end: Vec<u8>,
    /// The shard's current epoch.
    pub epoch: Epoch,
    /// The replicas, voters and learners, in no particular order.
    pub replicas: Vec<ReplicaDescriptor>,
}

impl ShardDescriptor {
    /// Whether `key` lies in `[start, end)`.
    pub fn contains(&self, key: &[u8]) -> bool {
        key >= self.start.as_slice() && (self.end.is_empty() || key < self.end.as_slice())
    }
}

/// The ordered list of data shards. A valid map covers every key exactly once: the first
/// shard starts at the empty key, each shard ends where the next starts, the last is
/// unbounded.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ShardMap {
    /// Bumped by the meta shard on every change of the map; a client keeps the newest.
    pub version: u64,
    /// Data shards in key order.
    pub shards: Vec<ShardDescriptor>,
}

/// A change of the shard map record the meta shard holds (decision D23). Replicated
/// through the meta shard's log; appended to [`crate::WriteOp`], never reordered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ShardMapWrite {
    /// Writes `map` if the meta shard holds no map yet, and nothing otherwise: the entry a
    /// new cluster's meta log carries right after its bootstrap conf changes, and the one a
    /// meta leader proposes for a data directory from before the map moved into the meta
    /// shard (its `shard-map.json`). Applying it twice, or two of them, keeps the first.
    Init {
        /// The map; its `version` is the map's epoch.
        map: ShardMap,
    },
}

/// Asks any node for the shard map its meta shard holds, with the members' client URLs so
/// a router can reach every replica a map or a `NotLeader` hint names.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardMapRequest {
    /// Read through the meta shard's leader (a read index) rather than the serving node's
    /// applied state.
    pub linearizable: bool,
}

/// The answer to a [`ShardMapRequest`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardMapResponse {
    /// Response header (the meta shard's).
    pub header: crate::ResponseHeader,
    /// The map; `version` is its epoch.
    pub map: ShardMap,
    /// The current leader of each data shard as the serving node sees it (0: none known),
    /// in the order of `map.shards`.
    pub leaders: Vec<NodeId>,
    /// Every member, with its client URLs.
    pub members: Vec<Member>,
    /// Whether the map comes from the meta shard; false only on a node started from a data
    /// directory of before decision D23 whose `shard-map.json` the meta leader has not
    /// recorded in the meta shard yet.
    pub from_meta_shard: bool,
}

/// A member of the cluster, as etcd's `Cluster.MemberList` reports it (ETCD_API.md §1.6).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Member {
    /// The member ID, equal to the node's Raft ID; never 0.
    pub id: NodeId,
    /// The node's `--name`; empty while a member added with `member add` has not started.
    pub name: String,
    /// URLs peers reach the node on.
    pub peer_urls: Vec<String>,
    /// URLs clients reach the node on.
    pub client_urls: Vec<String>,
    /// Whether the node joined as a learner of every shard it hosts.
    pub is_learner: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn epoch(range_version: u64, conf_version: u64) -> Epoch {
        Epoch { range_version, conf_version }
    }

    #[test]
    fn an_epoch_is_newer_only_when_no_component_is_older() {
        assert!(epoch(2, 1).is_newer_than(&epoch(1, 1)));
        assert!(epoch(1, 2).is_newer_than(&epoch(1, 1)));
        assert!(!epoch(1, 1).is_newer_than(&epoch(1, 1)));
        assert!(!epoch(1, 1).is_newer_than(&epoch(2, 1)));
        assert!(!epoch(2, 1).is_newer_than(&epoch(1, 2)), "incomparable is not newer");
        assert!(!epoch(1, 2).is_newer_than(&epoch(2, 1)), "incomparable is not newer");
    }

    #[test]
    fn a_descriptor_contains_its_start_and_not_its_end() {
        let shard = |start: &[u8], end: &[u8]| ShardDescriptor {
            id: ShardId(1),
            start: start.to_vec(),
            end: end.to_vec(),
            epoch: Epoch::default(),
            replicas: Vec::new(),
        };
        let mid = shard(b"b", b"d");
        assert!(mid.contains(b"b") && mid.contains(b"c\xff") && !mid.contains(b"d"));
        assert!(!mid.contains(b"a"));
        let last = shard(b"d", b"");
        assert!(last.contains(b"d") && last.contains(b"\xff\xff") && !last.contains(b"c"));
    }

    #[test]
    fn shard_map_round_trips_through_bincode() {
        let map = ShardMap {
            version: 3,
            shards: vec![ShardDescriptor {
                id: ShardId(1),
                start: Vec::new(),
                end: Vec::new(),
                epoch: epoch(1, 2),
                replicas: vec![
                    ReplicaDescriptor { node: NodeId(7), role: ReplicaRole::Voter },
                    ReplicaDescriptor { node: NodeId(9), role: ReplicaRole::Learner },
                ],
            }],
        };
        let config = bincode::config::standard();
        let bytes = bincode::serde::encode_to_vec(&map, config).expect("encode");
        let (back, _): (ShardMap, usize) =
            bincode::serde::decode_from_slice(&bytes, config).expect("decode");
        assert_eq!(back, map);
    }
}
