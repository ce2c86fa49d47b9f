//! How a replica reaches the replicas of its shard on other nodes. The node implements
//! [`PeerSink`] over its peer transport; this crate never sees the network (crate docs).

use atoll_proto::NodeId;
use atoll_proto::peer::ShardMessage;

/// Sends Raft messages to other nodes. `send` is called from actor threads: it must never
/// block. A message it cannot queue is dropped (and counted by the implementation): Raft
/// retransmits whatever matters.
pub trait PeerSink: Send + Sync + 'static {
    /// Queues `msg` for node `to`.
    fn send(&self, to: NodeId, msg: ShardMessage);
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
