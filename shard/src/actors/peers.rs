//! How a replica reaches the replicas of its shard on other nodes. The node implements
//! [`PeerSink`] over its peer transport; this crate never sees the network (crate docs).

use crate::snapshot::GeneratedSnapshot;
use atoll_proto::NodeId;
use atoll_proto::peer::ShardMessage;
use std::sync::Arc;

/// Told whether a snapshot transfer was delivered (the receiver verified and kept it).
pub type SnapshotSendDone = Box<dyn FnOnce(bool) + Send + 'static>;

/// Sends Raft messages to other nodes. `send` is called from actor threads: it must never
/// block. A message it cannot queue is dropped (and counted by the implementation): Raft
/// retransmits whatever matters.
pub trait PeerSink: Send + Sync + 'static {
    /// Queues `msg` for node `to`.
    fn send(&self, to: NodeId, msg: ShardMessage);

    /// Streams `snapshot` to node `to` with its `MsgSnapshot` `msg`, on a stream of its own
    /// (decision D20), then calls `done` with the outcome. Must not block: the transfer
    /// runs elsewhere. A sink without a transport reports failure at once.
    fn send_snapshot(
        &self,
        to: NodeId,
        msg: ShardMessage,
        snapshot: Arc<GeneratedSnapshot>,
        done: SnapshotSendDone,
    ) {
        tracing::warn!(
            shard_id = msg.shard.0,
            to = to.0,
            index = snapshot.meta.index,
            "snapshot for a node this one has no transport to"
        );
        done(false);
    }
}

/// The sink of a node without peers (a single-node cluster): every shard has this node as
/// its only voter, so Raft never addresses another node; if it does, the message is logged.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoPeers;

impl PeerSink for NoPeers {
    fn send(&self, to: NodeId, msg: ShardMessage) {
        tracing::warn!(
            shard_id = msg.shard.0,
            to = to.0,
            "raft message for a node this one has no transport to"
        );
    }
}
