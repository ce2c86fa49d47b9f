//! The peer transport: node-to-node QUIC with mutual TLS (DESIGN §8).
//!
//! Peers have their own QUIC endpoint on the peer URL's port (2380/udp by default, decision
//! D5) with ALPN [`ALPN_PEER`]; a client certificate chaining to the cluster CA is mandatory
//! there. There is one connection per node pair: the node with the lower [`NodeId`] dials,
//! the other accepts, and each side opens one unidirectional Raft stream that starts with a
//! `Hello` (cluster ID, node ID) the other side checks before it delivers anything.
//!
//! [`PeerSender::send`] never blocks: it puts the message in the peer's bounded queue
//! ([`limits::PEER_QUEUE_MESSAGES_MAX`]) or drops it, counts the drop and warns at a limited
//! rate (Raft retransmits). A task per peer drains the queue, coalescing the messages of all
//! shards into one frame per flush, and re-dials with bounded backoff when the connection
//! dies. Snapshots go on a stream each, chunked and checksummed, into a [`SnapshotSink`]
//! that the receiver awaits chunk by chunk, so a snapshot never sits whole in memory.
//!
//! [`PeerSender::forward`] sends a client request to the node leading its shard (DESIGN
//! §6) on a bidirectional stream of its own, on the same connection whichever side dialed
//! it, and returns that node's answer, produced by its [`PeerInbox::serve_forwarded`].
//! Forwards in flight per peer are bounded
//! ([`limits::FORWARD_STREAMS_PER_CONNECTION_MAX`]) and timed
//! ([`limits::FORWARD_TIMEOUT`]); a receiver tells a forward from a snapshot by the
//! stream's first frame.
//!
//! This module only moves messages: what they mean is the [`PeerInbox`]'s business.

mod connection;
mod error;
mod forward;
mod frames;
mod join;
pub mod limits;
mod link;
mod sender;
mod snapshot;
mod stats;
mod transport;

pub use error::{PeerForwardError, PeerSendError, SnapshotSendError};
pub use join::join_cluster;
pub use sender::PeerSender;
pub use stats::PeerStats;
pub use transport::PeerTransport;

use crate::certs::TlsMaterial;
use atoll_proto::peer::{ShardMessage, SnapshotHeader};
use atoll_proto::{NativeRequest, NativeResponse, NodeId};
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;

/// ALPN of the peer protocol.
pub const ALPN_PEER: &[u8] = b"atoll-peer/1";
/// ALPN of the join exchange, the peer endpoint's only other protocol (decision D18).
pub const ALPN_JOIN: &[u8] = b"atoll-join/1";

/// Who this node is and whom it talks to.
#[derive(Clone, Debug)]
pub struct PeerTransportConfig {
    /// This node.
    pub node_id: NodeId,
    /// The cluster; connections from another cluster are refused.
    pub cluster_id: u64,
    /// The UDP address of the peer endpoint (port 0 picks a free one).
    pub listen: SocketAddr,
    /// The node's certificates; peers' certificates must chain to the same CA. A peer is
    /// dialed with its IP address as the TLS server name, so its certificate must name it.
    pub tls: TlsMaterial,
    /// The other nodes and their peer addresses (this node must not be among them).
    pub peers: HashMap<NodeId, SocketAddr>,
}

/// Where received messages go. Called from the transport's tasks; implementations hand the
/// messages on (e.g. `try_send` to actors) and must not block.
pub trait PeerInbox: Send + Sync + 'static {
    /// A batch of Raft messages from node `from`, in the order it sent them.
    fn deliver(&self, from: NodeId, batch: Vec<ShardMessage>);

    /// An identified connection to node `node` ended: the peer closed it, it was replaced by
    /// a newer one (the peer restarted), or nothing was heard from the peer for
    /// [`limits::PEER_IDLE_TIMEOUT`] (the peer died or is cut off). Messages sent to it since
    /// may be lost, and whatever the node led may be gone. Called once per connection, from
    /// the transport's tasks; must not block.
    fn peer_unreachable(&self, node: NodeId);

    /// Whether `node` is a member this node knows was removed from the cluster. Asked when
    /// a node outside the peer set connects: a removed member is refused as such, so that
    /// one removed while it was down learns it and stops.
    fn is_removed_member(&self, node: NodeId) -> bool;

    /// Peer `by` refused this node's connection because this member was removed from the
    /// cluster (decision D18). Called from the transport's tasks; must not block.
    fn removed_from_cluster(&self, by: NodeId);

    /// A snapshot stream opened (`header.from` is the verified sending node). Returns where
    /// its verified chunks go, or refuses it (the sender learns the reason).
    fn snapshot(&self, header: &SnapshotHeader) -> Result<Box<dyn SnapshotSink>, SinkRefused>;

    /// Answers a node joining the cluster (decision D18): who it is and what it hosts, or
    /// why it cannot join (one line).
    fn join(
        &self,
        req: &atoll_proto::member::JoinRequest,
    ) -> Result<atoll_proto::member::JoinResponse, String>;

    /// A request node `from` forwarded to this node. The transport awaits the returned
    /// future on the stream's own task and sends its answer back; errors are answered as
    /// [`NativeResponse::Error`]. Must not block before returning the future.
    fn serve_forwarded(
        &self,
        from: NodeId,
        req: NativeRequest,
    ) -> Pin<Box<dyn Future<Output = NativeResponse> + Send + 'static>>;
}

/// A future returned by a [`SnapshotSink`].
pub type SinkFuture<'a> = Pin<Box<dyn Future<Output = Result<(), SinkRefused>> + Send + 'a>>;

/// Receives one snapshot's bytes, in order, each chunk already checked against its crc32.
/// The transport awaits every call before reading more from the network, so a slow sink
/// slows the sender down (QUIC flow control) instead of filling memory.
pub trait SnapshotSink: Send + 'static {
    /// Takes the next chunk.
    fn write(&mut self, chunk: Vec<u8>) -> SinkFuture<'_>;

    /// Every byte arrived and the whole snapshot matched its checksum.
    fn finish(self: Box<Self>) -> SinkFuture<'static>;

    /// The transfer failed (`reason`, one line); discard what was written.
    fn abort(self: Box<Self>, reason: &str);
}

/// A receiver's refusal of a snapshot, sent back to the sender.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct SinkRefused {
    /// Why, one line.
    pub reason: String,
}
