//! Errors of the peer transport, each one line saying what failed and for which peer.

use atoll_proto::NodeId;
use std::time::Duration;

/// Why [`super::PeerSender::send`] did not queue a message. The message is dropped; Raft
/// retransmits, so callers may ignore this or report the peer unreachable to Raft.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PeerSendError {
    /// The peer's queue is full: its connection is down or slower than the traffic.
    #[error("queue to node {peer} is full ({limit} messages); message dropped")]
    QueueFull {
        /// The peer.
        peer: NodeId,
        /// The queue's bound.
        limit: usize,
    },
    /// The node is not in the peer set.
    #[error("node {peer} is not a known peer; message dropped")]
    UnknownPeer {
        /// The addressee.
        peer: NodeId,
    },
    /// The transport was closed.
    #[error("peer transport is closed; message dropped")]
    Closed,
}

/// Why a snapshot was not delivered. Raft should report the snapshot failed and retry.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotSendError {
    /// The node is not in the peer set.
    #[error("node {peer} is not a known peer")]
    UnknownPeer {
        /// The addressee.
        peer: NodeId,
    },
    /// No connection to the peer came up in time.
    #[error("no connection to node {peer} within {waited:?}")]
    NotConnected {
        /// The addressee.
        peer: NodeId,
        /// How long the sender waited.
        waited: Duration,
    },
    /// The stream failed (connection lost, peer stopped reading, timeout).
    #[error("snapshot stream to node {peer} failed: {reason}")]
    Stream {
        /// The addressee.
        peer: NodeId,
        /// What happened.
        reason: String,
    },
    /// Reading the snapshot's bytes on this node failed.
    #[error("cannot read the snapshot to send: {reason}")]
    Source {
        /// The reader's error.
        reason: String,
    },
    /// The source held another number of bytes than announced.
    #[error("snapshot source has {read} bytes, {announced} were announced")]
    SourceLength {
        /// Bytes announced in the header.
        announced: u64,
        /// Bytes the source gave (stops counting just past `announced`).
        read: u64,
    },
    /// The receiver refused the snapshot or found it corrupt.
    #[error("node {peer} refused the snapshot: {reason}")]
    Refused {
        /// The addressee.
        peer: NodeId,
        /// The receiver's reason.
        reason: String,
    },
}

/// Why a forwarded request got no answer from the peer. Each says whether the request may
/// have reached the peer, which decides whether a non-idempotent request may be retried.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PeerForwardError {
    /// The node is not in the peer set. Nothing was sent.
    #[error("node {peer} is not a known peer; request not forwarded")]
    UnknownPeer {
        /// The addressee.
        peer: NodeId,
    },
    /// No connection to the peer came up in time. Nothing was sent.
    #[error("no connection to node {peer} within {waited:?}; request not forwarded")]
    NotConnected {
        /// The addressee.
        peer: NodeId,
        /// How long the forward waited.
        waited: Duration,
    },
    /// The forwards in flight to the peer are at their limit. Nothing was sent.
    #[error("{limit} requests already forwarded to node {peer}; request not forwarded")]
    Busy {
        /// The addressee.
        peer: NodeId,
        /// The in-flight limit.
        limit: u32,
    },
    /// The encoded request is larger than a forwarded request may be. Nothing was sent.
    #[error("request of {request_bytes} bytes is over the {limit_bytes}-byte forward limit")]
    TooLarge {
        /// The encoded request's size.
        request_bytes: u64,
        /// The limit.
        limit_bytes: u64,
    },
    /// The stream failed or the peer answered something that is not an answer.
    /// `request_sent` says whether the whole request had been handed to QUIC: if so, the
    /// peer may have acted on it.
    #[error("forward stream to node {peer} failed: {reason}")]
    Stream {
        /// The addressee.
        peer: NodeId,
        /// What happened.
        reason: String,
        /// Whether the whole request was written (the peer may have acted on it).
        request_sent: bool,
    },
    /// No answer within the forward timeout; the peer may have acted on the request.
    #[error("no answer from node {peer} within {waited:?}")]
    TimedOut {
        /// The addressee.
        peer: NodeId,
        /// How long the forward waited.
        waited: Duration,
    },
    /// The transport was closed. Nothing was sent.
    #[error("peer transport is closed; request not forwarded")]
    Closed,
}
