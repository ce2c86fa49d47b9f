//! The shard map as the meta shard holds it (decision D23): the native `ShardMap` request a
//! router asks any node, the keyed writes a router sends to the leader it believes in, and
//! the one-off migration of an older data directory's
//! `shard-map.json` into the meta shard.

use super::{NodeService, Origin};
use atoll_proto::shard_map::{ShardMap, ShardMapRequest, ShardMapResponse, ShardMapWrite};
use atoll_proto::{
    AtLeaderRequest, AtollError, KeyedWrite, NativeResponse, NodeId, ShardId, WriteOp,
};
use atoll_shard::mvcc::validate_write;
use tokio::time::Instant;

impl NodeService {
    /// The shard map the meta shard holds, with the leader of each data shard as this node
    /// sees it and the members' client URLs. Linearizable: after a read index of the meta
    /// shard, so a map changed before the request is in the answer.
    pub(super) async fn serve_shard_map(
        &self,
        req: ShardMapRequest,
    ) -> Result<NativeResponse, AtollError> {
        if req.linearizable {
            self.read_index(ShardId::META).await?;
        }
        // A data directory from before D23 serves the map it routes by until the meta leader
        // has recorded it (`migrate_shard_map`); both come from the same bootstrap flags.
        let recorded = self.meta_shard_map()?;
        let from_meta_shard = recorded.is_some();
        let map = recorded.unwrap_or_else(|| self.inner.shards.map().clone());
        let leaders = map
            .shards
            .iter()
            .map(|s| {
                let handle = self.inner.shards.handle(s.id);
                NodeId(handle.map_or(0, |h| h.published.leader()))
            })
            .collect();
        let meta_term = self.inner.shards.meta().published.term();
        Ok(NativeResponse::ShardMap(ShardMapResponse {
            header: self.header_at(meta_term),
            map,
            leaders,
            members: self.members()?,
            from_meta_shard,
        }))
    }

    /// The shard map as this node's meta replica has applied it; `None` before any.
    pub fn meta_shard_map(&self) -> Result<Option<ShardMap>, AtollError> {
        let storage = &self.inner.storage;
        atoll_shard::shard_map_record::load(storage, &storage.db.snapshot())
            .map_err(AtollError::from)
    }

    /// Records the map this node routes by in the meta shard when the meta shard holds none:
    /// a cluster whose data directories were created before the map moved into the meta
    /// shard. Only the meta leader proposes (to itself), so nothing is forwarded; `Init`
    /// keeps the first map, so several attempts, or several nodes, are harmless. Returns
    /// whether the meta shard holds a map afterwards.
    pub(super) async fn migrate_shard_map(&self) -> bool {
        match self.meta_shard_map() {
            Ok(Some(_)) => return true,
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the meta shard's shard map");
                return false;
            }
        }
        let me = self.inner.identity.member_id;
        if self.inner.shards.meta().published.leader() != me {
            return false;
        }
        let map = self.inner.shards.map().clone();
        let op = WriteOp::ShardMap(ShardMapWrite::Init { map });
        match self.write_on(ShardId::META, op, Origin::Peer).await {
            Ok(_) => {
                tracing::info!("recorded the data directory's shard map in the meta shard");
                true
            }
            Err(e) => {
                tracing::debug!(error = %e, "recording the shard map in the meta shard failed");
                false
            }
        }
    }
}

impl NodeService {
    /// A keyed write a router sent here believing this node leads its shard: served if so,
    /// else `NotLeader` naming the leader (the router follows the hint), or `WrongShard`
    /// with this node's map version when the router's map is older. A write that spans
    /// shards has no leader to go to and takes the ordinary path.
    pub(super) async fn serve_at_leader(
        &self,
        req: AtLeaderRequest,
    ) -> Result<NativeResponse, AtollError> {
        let op = match req.write {
            KeyedWrite::Put(r) => WriteOp::Put(r),
            KeyedWrite::DeleteRange(r) => WriteOp::DeleteRange(r),
            KeyedWrite::Txn(r) => WriteOp::Txn(r),
        };
        validate_write(&op, &self.inner.limits)?;
        let Some(shard) = self.inner.shards.single_shard_of(&op) else {
            return self.write(op, Origin::Client).await;
        };
        let version = self.inner.shards.map().version;
        if req.map_version < version {
            return Err(AtollError::WrongShard { shard, epoch: version });
        }
        let deadline = Instant::now() + self.inner.request_timeout;
        let leader = self.wait_for_leader(shard, deadline).await?.published.leader();
        if leader != self.inner.identity.member_id {
            return Err(AtollError::NotLeader { shard, leader_hint: Some(NodeId(leader)) });
        }
        // Leading now; should leadership move before the proposal, the ordinary path
        // forwards it rather than failing the write.
        self.write(op, Origin::Client).await
    }
}
