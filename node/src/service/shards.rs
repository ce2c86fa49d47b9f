//! The shards this node hosts and which of them owns a key: the static shard map of the
//! cluster (every node hosts a replica of every shard until replicas move) plus a handle on
//! each local replica.

use actix::Addr;
use atoll_proto::shard_map::ShardMap;
use atoll_proto::{AtollError, RequestOp, ShardId, TxnRequest, WriteOp};
use atoll_router::shard_map::{ShardMapCache, ShardMapError, ShardSpan};
use atoll_shard::actors::{PublishedState, ReplicaActor};
use atoll_shard::mvcc::MvccStore;
use std::collections::BTreeMap;
use std::sync::Arc;

/// One local replica as the service sees it.
#[derive(Clone)]
pub struct ShardHandle {
    /// The replica actor.
    pub addr: Addr<ReplicaActor>,
    /// The shard's MVCC store.
    pub store: MvccStore,
    /// What the replica publishes.
    pub published: Arc<PublishedState>,
}

/// The data shards of the cluster and the local replica of each, plus the local replica of
/// the meta shard, which holds no keys and is never routed to by key.
pub struct ShardSet {
    map: ShardMapCache,
    local: BTreeMap<ShardId, ShardHandle>,
    meta: ShardHandle,
}

impl ShardSet {
    /// A set routing by `map`; `local` must hold a replica of every shard of the map, `meta`
    /// is the meta shard's.
    pub fn new(
        map: ShardMap,
        local: BTreeMap<ShardId, ShardHandle>,
        meta: ShardHandle,
    ) -> Result<ShardSet, ShardMapError> {
        let map = ShardMapCache::new(map)?;
        Ok(ShardSet { map, local, meta })
    }

    /// The shard map this node routes by.
    pub fn map(&self) -> &ShardMap {
        self.map.map()
    }

    /// The local replica of the meta shard.
    pub fn meta(&self) -> &ShardHandle {
        &self.meta
    }

    /// The local replica of `shard` (the meta shard's too).
    pub fn handle(&self, shard: ShardId) -> Result<&ShardHandle, AtollError> {
        if shard == ShardId::META {
            return Ok(&self.meta);
        }
        // Every node hosts every shard of the static map; a miss is a routing bug, answered
        // as a retryable routing error rather than a panic.
        self.local.get(&shard).ok_or(AtollError::WrongShard { shard, epoch: 0 })
    }

    /// Every local replica of a data shard, in shard order.
    pub fn handles(&self) -> impl Iterator<Item = (ShardId, &ShardHandle)> {
        self.local.iter().map(|(id, h)| (*id, h))
    }

    /// The first data shard: the one `endpoint status` reports on.
    pub fn first(&self) -> Option<(ShardId, &ShardHandle)> {
        self.handles().next()
    }

    /// The shards `[key, range_end)` touches, each with the request clipped to it.
    pub fn spans(&self, key: &[u8], range_end: &[u8]) -> Vec<ShardSpan<'_>> {
        self.map.shards_for_range(key, range_end)
    }

    /// The one shard every key of `op` belongs to: a Put's key, a DeleteRange's range, every
    /// key a Txn compares, reads or writes (nested Txns included). A Txn or DeleteRange
    /// across shards has no such shard: `None`.
    pub fn single_shard_of(&self, op: &WriteOp) -> Option<ShardId> {
        let mut owner = None;
        let mut same = |key: &[u8], range_end: &[u8]| -> bool {
            self.spans(key, range_end).iter().all(|span| match owner {
                None => {
                    owner = Some(span.shard.id);
                    true
                }
                Some(id) => id == span.shard.id,
            })
        };
        let all_in_one = match op {
            // The common case: one key, one lookup, nothing allocated.
            WriteOp::Put(p) => return Some(self.map.shard_for_key(&p.key).id),
            WriteOp::DeleteRange(d) => same(&d.key, &d.range_end),
            WriteOp::Txn(t) => txn_keys_in_one(t, &mut same),
            WriteOp::Compact(_) => false,
            WriteOp::Close(c) => return Some(c.shard),
            WriteOp::Lease(_) | WriteOp::Member(_) | WriteOp::ShardMap(_) | WriteOp::Auth(_) => {
                return Some(ShardId::META);
            }
            WriteOp::RevokeLeaseKeys(r) => return Some(r.shard),
            WriteOp::RevokeLeaseKeysBatch(r) => return Some(r.shard),
            WriteOp::Leased(l) => return self.single_shard_of(&l.op),
        };
        if all_in_one { owner.or_else(|| self.first().map(|(id, _)| id)) } else { None }
    }
}

fn txn_keys_in_one(txn: &TxnRequest, same: &mut impl FnMut(&[u8], &[u8]) -> bool) -> bool {
    txn.compare.iter().all(|c| same(&c.key, &c.range_end))
        && txn.success.iter().chain(&txn.failure).all(|op| match op {
            RequestOp::Range(r) => same(&r.key, &r.range_end),
            RequestOp::Put(p) => same(&p.key, &[]),
            RequestOp::DeleteRange(d) => same(&d.key, &d.range_end),
            RequestOp::Txn(t) => txn_keys_in_one(t, same),
        })
}
