//! Limits of the peer transport, each named once. Frame and chunk sizes are wire limits and
//! live in `atoll_proto::peer`.

use std::time::Duration;

/// Raft messages queued for one peer node; a send to a full queue drops the message
/// (Raft retransmits) and counts it. 4096 holds several seconds of heartbeats and appends of
/// hundreds of shards while a connection is being (re)established.
pub const PEER_QUEUE_MESSAGES_MAX: usize = 4096;
/// Messages taken from a queue per flush; everything queued fits, so one flush is one frame
/// unless the frame byte limit cuts it.
pub const PEER_FLUSH_MESSAGES_MAX: usize = PEER_QUEUE_MESSAGES_MAX;
/// Bytes a batch frame may hold besides its messages' encoded bounds (frame header, enum
/// tag, vector length).
pub const PEER_FRAME_OVERHEAD_BYTES: usize = 64;
/// Largest control frame read: a Hello (read before its sender is identified, so an
/// unidentified peer cannot make a node buffer a large frame), a snapshot chunk header or a
/// snapshot verdict.
pub const PEER_CONTROL_FRAME_BYTES_MAX: usize = 4096;
/// Time an accepted connection has to identify itself with its Hello.
pub const PEER_HELLO_TIMEOUT: Duration = Duration::from_secs(5);
/// Keep-alive interval on peer connections: often enough that a quiet, healthy connection
/// never reaches [`PEER_IDLE_TIMEOUT`].
pub const PEER_KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(1);
/// A peer connection that has heard nothing for this long is dead and is re-dialed. Short
/// because a node that died without closing (kill -9, power loss) is only noticed this way.
pub const PEER_IDLE_TIMEOUT: Duration = Duration::from_secs(5);
/// Time one dial (QUIC and TLS handshake) may take.
pub const PEER_DIAL_TIMEOUT: Duration = Duration::from_secs(5);
/// First wait before re-dialing a peer after a failure; doubled per failure up to
/// [`PEER_REDIAL_BACKOFF_MAX`].
pub const PEER_REDIAL_BACKOFF_MIN: Duration = Duration::from_millis(50);
/// Longest wait between dials of an unreachable peer.
pub const PEER_REDIAL_BACKOFF_MAX: Duration = Duration::from_secs(2);
/// Time the node that does not dial a peer (the higher ID) waits for the peer's connection
/// before it dials the peer itself once (a knock): a member removed while it was down learns
/// it this way from peers that no longer dial it (decision D18).
pub const PEER_KNOCK_AFTER: Duration = Duration::from_secs(10);
/// Shortest interval between two warnings about the same kind of dropped messages, so a
/// dead peer does not flood the log; the warning reports how many were dropped meanwhile.
pub const PEER_DROP_WARN_INTERVAL: Duration = Duration::from_secs(5);
/// Connections the peer endpoint holds at once (peers are few; the rest are strangers).
pub const PEER_CONNECTIONS_MAX: usize = 1024;
/// Snapshot streams one connection may have open at once in each direction; a sender
/// opening more waits for one to complete. QUIC admits this many plus
/// [`FORWARD_STREAMS_PER_CONNECTION_MAX`] bidirectional streams per direction.
pub const SNAPSHOT_STREAMS_PER_CONNECTION_MAX: u32 = 4;
/// Forwarded requests one node may have in flight to one peer (one connection per node pair,
/// so per connection); a forward over the limit fails at once with a retryable error rather
/// than queueing behind the others. 256 in flight at a few milliseconds each (one leader
/// fsync) carries tens of thousands of forwarded writes per second between two nodes.
pub const FORWARD_STREAMS_PER_CONNECTION_MAX: u32 = 256;
/// Time a forward may wait for a connection to the leader's node. Short: a forward is a
/// client request on the clock, and a peer that is down is redialed with a backoff of up to
/// [`PEER_REDIAL_BACKOFF_MAX`], so waiting longer rarely helps; the client retries.
pub const FORWARD_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Time a forward may take from opening its stream to reading the answer. Longer than the
/// receiving node's own request timeout (etcd's 5 s plus two election timeouts, 7 s by
/// default), so the receiver's answer, even its own timeout error, normally comes first;
/// this catches a receiver that stopped answering while its connection stays up.
pub const FORWARD_TIMEOUT: Duration = Duration::from_secs(15);
/// Time a peer has to deliver the first frame of a bidirectional stream (a snapshot header
/// or a whole forwarded request, a few MiB at most) and, for a forwarded request, to finish
/// its half of the stream; a stream stalled longer is abandoned.
pub const PEER_STREAM_FIRST_FRAME_TIMEOUT: Duration = Duration::from_secs(10);
/// Time a snapshot sender may wait for a connection to the receiver.
pub const SNAPSHOT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Time a snapshot receiver waits for the next frame or chunk bytes; a sender stalled longer
/// is abandoned. Awaiting the receiver's sink does not count: that is back-pressure.
pub const SNAPSHOT_FRAME_TIMEOUT: Duration = Duration::from_secs(30);
/// Time a snapshot sender waits for the receiver's verdict after the last chunk (the
/// receiver's sink finishing, e.g. an fsync).
pub const SNAPSHOT_VERDICT_TIMEOUT: Duration = Duration::from_secs(120);
/// Receive window of one stream: enough in flight to fill a LAN link's bandwidth-delay
/// product, and the most a receiver buffers for a stream it is not reading.
pub const PEER_STREAM_RECEIVE_WINDOW_BYTES: u32 = 8 * 1024 * 1024;
/// Time [`super::PeerTransport::close`] waits for close frames to reach the peers.
pub const PEER_CLOSE_DRAIN_TIMEOUT: Duration = Duration::from_secs(1);
/// Largest piece of a frame read at once; buffers grow as bytes arrive.
pub const PEER_READ_CHUNK_BYTES: usize = 64 * 1024;
