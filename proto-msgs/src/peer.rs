//! Node-to-node wire types: Raft messages as serde types (raft-rs protobuf types never
//! cross the network, DESIGN §8), peer frames and snapshot chunks.
//!
//! Two kinds of QUIC stream carry [`PeerFrame`]s, each frame in the versioned codec of
//! [`crate::frame`]:
//!
//! - the **Raft stream**, one unidirectional stream per direction per connection: a
//!   [`PeerFrame::Hello`] first, then [`PeerFrame::Raft`] batches that coalesce the messages
//!   of every shard bound for that node;
//! - a **snapshot stream**, one bidirectional stream per snapshot: a
//!   [`PeerFrame::SnapshotHeader`], then [`PeerFrame::SnapshotChunk`] frames each followed by
//!   exactly `len` raw bytes (raw so a multi-GB snapshot is not decoded byte by byte), then
//!   [`PeerFrame::SnapshotEnd`]; the receiver answers one [`PeerFrame::SnapshotReceived`] or
//!   [`PeerFrame::SnapshotRefused`] on the return half;
//! - a **forwarded-request stream**, one bidirectional stream per request that a node
//!   forwards to the node leading the request's shard (DESIGN §6, §8): exactly one
//!   [`PeerFrame::ForwardRequest`], then the end of the sending half; the receiver answers
//!   exactly one [`PeerFrame::ForwardResponse`] (bad input included: it is answered with an
//!   error response, never by closing the connection).
//!
//! A receiver tells the two kinds of bidirectional stream apart by their first frame.
//!
//! [`SnapshotVerifier`] is the receiver's check of chunk order, sizes and checksums.

use crate::ids::{LogIndex, NodeId, ShardId, Term};
use crate::limits::FRAME_OVERHEAD_BYTES;
use crate::native::{NativeRequest, NativeResponse};
use serde::{Deserialize, Serialize};

/// Largest peer frame a node sends or accepts. Raft batches are cut below it; one Raft
/// message larger than this (an entry far above `max-request-bytes`) cannot be sent and is
/// dropped with a warning.
pub const PEER_FRAME_BYTES_MAX: usize = 64 * 1024 * 1024;
/// Largest raw payload after one [`SnapshotChunk`] header. The receiver holds one chunk in
/// memory at a time, so this bounds a snapshot transfer's memory, not its size.
pub const SNAPSHOT_CHUNK_BYTES_MAX: usize = 1024 * 1024;
/// Largest [`PeerFrame::SnapshotRefused`] reason kept; longer reasons are cut.
pub const SNAPSHOT_REFUSED_REASON_BYTES_MAX: usize = 1024;

/// Largest [`PeerFrame::ForwardRequest`] payload a node with `--max-request-bytes`
/// `max_request_bytes` sends or accepts: the request plus the envelope room clients get
/// ([`FRAME_OVERHEAD_BYTES`]), never above [`PEER_FRAME_BYTES_MAX`].
pub fn forward_request_bytes_max(max_request_bytes: usize) -> usize {
    max_request_bytes.saturating_add(FRAME_OVERHEAD_BYTES).min(PEER_FRAME_BYTES_MAX)
}

/// raft-rs `MessageType`, variant for variant (`MsgHup` is `Hup`, and so on).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[allow(missing_docs)] // Each variant is raft-rs's message type of the same name.
pub enum RaftMessageType {
    #[default]
    Hup,
    Beat,
    Propose,
    Append,
    AppendResponse,
    RequestVote,
    RequestVoteResponse,
    Snapshot,
    Heartbeat,
    HeartbeatResponse,
    Unreachable,
    SnapStatus,
    CheckQuorum,
    TransferLeader,
    TimeoutNow,
    ReadIndex,
    ReadIndexResp,
    RequestPreVote,
    RequestPreVoteResponse,
}

/// raft-rs `EntryType`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RaftEntryType {
    /// A normal entry: `data` is a command for the state machine.
    #[default]
    Normal,
    /// `data` is a protobuf `ConfChange`.
    ConfChange,
    /// `data` is a protobuf `ConfChangeV2`.
    ConfChangeV2,
}

/// raft-rs `Entry` (without the deprecated, unused `sync_log`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RaftEntry {
    /// What `data` holds.
    pub entry_type: RaftEntryType,
    /// The term the entry was proposed in.
    pub term: Term,
    /// The entry's position in the log.
    pub index: LogIndex,
    /// The payload.
    pub data: Vec<u8>,
    /// Application context.
    pub context: Vec<u8>,
}

/// raft-rs `ConfState`: the membership of a Raft group.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RaftConfState {
    /// Voters of the incoming configuration.
    pub voters: Vec<u64>,
    /// Learners.
    pub learners: Vec<u64>,
    /// Voters of the outgoing configuration (non-empty in joint consensus).
    pub voters_outgoing: Vec<u64>,
    /// Nodes that become learners when the outgoing configuration is left.
    pub learners_next: Vec<u64>,
    /// Whether Raft leaves the joint configuration by itself.
    pub auto_leave: bool,
}

/// raft-rs `SnapshotMetadata`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RaftSnapshotMetadata {
    /// The membership at `index`.
    pub conf_state: RaftConfState,
    /// The applied index the snapshot was taken at.
    pub index: LogIndex,
    /// The term of that index.
    pub term: Term,
}

/// raft-rs `Snapshot`. On the wire `data` is empty in practice: snapshot bytes travel on
/// their own stream (see the module documentation).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RaftSnapshot {
    /// Snapshot payload.
    pub data: Vec<u8>,
    /// Where the snapshot stands in the log.
    pub metadata: RaftSnapshotMetadata,
}

/// raft-rs `eraftpb::Message`, every field raft-rs 0.7 reads or writes. `to` and `from` are
/// raft-rs peer IDs of replicas, as raft-rs uses them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)] // Each field is raft-rs's field of the same name.
pub struct RaftMessage {
    pub msg_type: RaftMessageType,
    pub to: u64,
    pub from: u64,
    pub term: Term,
    pub log_term: Term,
    pub index: LogIndex,
    pub entries: Vec<RaftEntry>,
    pub commit: LogIndex,
    pub commit_term: Term,
    /// `None` where the protobuf message has no snapshot field set.
    pub snapshot: Option<RaftSnapshot>,
    pub request_snapshot: LogIndex,
    pub reject: bool,
    pub reject_hint: LogIndex,
    pub context: Vec<u8>,
    /// Read by raft-rs when `priority` is 0 (older senders).
    pub deprecated_priority: u64,
    pub priority: i64,
}

/// A message addressed to one shard's replica on the receiving node.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardMessage {
    /// The shard whose Raft group the message belongs to.
    pub shard: ShardId,
    /// The message.
    pub message: ShardPayload,
}

/// What a [`ShardMessage`] carries: a Raft message, or one of the two hibernation messages
/// the replicas of a shard exchange beside Raft (decision D14 in `docs/decisions.md`; TiKV's
/// "hibernate region" carries its equivalents outside the Raft message the same way). `from`
/// and `to` are replica IDs as in [`RaftMessage`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
// Nearly every payload is a Raft message: boxing it would allocate once per message to save
// memory on the rare hibernation messages.
#[allow(clippy::large_enum_variant)]
pub enum ShardPayload {
    /// A raft-rs message.
    Raft(RaftMessage),
    /// The leader `from` stops ticking: at `term`, every replica has the log up to `index`
    /// and it is committed. A follower whose log and commit index match stops ticking too;
    /// any other answers [`ShardPayload::WakeUp`].
    Hibernate {
        /// The hibernating leader.
        from: u64,
        /// The follower.
        to: u64,
        /// The leader's term.
        term: Term,
        /// The leader's last (and committed) index.
        index: LogIndex,
    },
    /// The replica `from` is awake and needs its leader `to` awake too (ticking, sending
    /// heartbeats), so that it does not time out against a live leader.
    WakeUp {
        /// The replica that woke.
        from: u64,
        /// Its leader.
        to: u64,
        /// The sender's term.
        term: Term,
    },
}

impl Default for ShardPayload {
    fn default() -> Self {
        ShardPayload::Raft(RaftMessage::default())
    }
}

impl ShardPayload {
    /// The replica the payload is for.
    pub fn to(&self) -> u64 {
        match self {
            ShardPayload::Raft(m) => m.to,
            ShardPayload::Hibernate { to, .. } | ShardPayload::WakeUp { to, .. } => *to,
        }
    }
}

/// Upper bound of the bytes varint bincode spends on one `u64`-sized field.
const VARINT_BYTES_MAX: usize = 9;
/// Upper bound of a [`RaftMessage`]'s bytes besides its byte fields and entries.
const MESSAGE_FIXED_BYTES_MAX: usize = 32 * VARINT_BYTES_MAX;
/// Upper bound of a [`RaftEntry`]'s bytes besides its byte fields.
const ENTRY_FIXED_BYTES_MAX: usize = 6 * VARINT_BYTES_MAX;

impl ShardMessage {
    /// An upper bound of this message's encoded size, cheap to compute, so a sender can cut
    /// batches below [`PEER_FRAME_BYTES_MAX`] before encoding them.
    pub fn encoded_bytes_max(&self) -> usize {
        let m = match &self.message {
            ShardPayload::Raft(m) => m,
            // Four varint fields and the variant tag.
            ShardPayload::Hibernate { .. } | ShardPayload::WakeUp { .. } => {
                return MESSAGE_FIXED_BYTES_MAX;
            }
        };
        let entries: usize =
            m.entries.iter().map(|e| ENTRY_FIXED_BYTES_MAX + e.data.len() + e.context.len()).sum();
        let snapshot = m.snapshot.as_ref().map_or(0, |s| {
            let c = &s.metadata.conf_state;
            let ids = c.voters.len() + c.learners.len();
            let ids = ids + c.voters_outgoing.len() + c.learners_next.len();
            s.data.len() + (ids + 8) * VARINT_BYTES_MAX
        });
        MESSAGE_FIXED_BYTES_MAX + m.context.len() + entries + snapshot
    }
}

/// Opens a snapshot stream: what the snapshot is for and how many bytes follow.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotHeader {
    /// The shard the snapshot belongs to.
    pub shard: ShardId,
    /// The sending node.
    pub from: NodeId,
    /// The receiving node.
    pub to: NodeId,
    /// The `MsgSnapshot` carrying the snapshot metadata (its data travels in the chunks).
    pub message: RaftMessage,
    /// Bytes in all chunks together.
    pub total_bytes: u64,
}

/// Announces one chunk: exactly `len` raw bytes follow this frame on the stream.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotChunk {
    /// Position of the chunk's first byte in the snapshot.
    pub offset: u64,
    /// Raw bytes following, at most [`SNAPSHOT_CHUNK_BYTES_MAX`].
    pub len: u32,
    /// CRC-32 (IEEE) of those bytes.
    pub crc32: u32,
}

impl SnapshotChunk {
    /// The header for `data` starting at `offset`.
    pub fn for_data(offset: u64, data: &[u8]) -> SnapshotChunk {
        SnapshotChunk {
            offset,
            len: u32::try_from(data.len()).unwrap_or(u32::MAX),
            crc32: crc32fast::hash(data),
        }
    }
}

/// Closes a snapshot stream: the checksum of the whole snapshot.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotEnd {
    /// CRC-32 (IEEE) of all chunk bytes in order.
    pub total_crc32: u32,
}

/// One frame on a peer stream.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PeerFrame {
    /// First frame of a Raft stream: who is speaking, in which cluster.
    Hello {
        /// The sender's cluster; a node of another cluster is refused.
        cluster_id: u64,
        /// The sending node.
        from: NodeId,
    },
    /// Raft messages of any shards, in the order they were sent.
    Raft(Vec<ShardMessage>),
    /// First frame of a snapshot stream (boxed: it is rare and much larger than the rest).
    SnapshotHeader(Box<SnapshotHeader>),
    /// A chunk header; its raw bytes follow.
    SnapshotChunk(SnapshotChunk),
    /// Last frame the snapshot sender writes.
    SnapshotEnd(SnapshotEnd),
    /// The receiver verified the whole snapshot and its sink accepted it.
    SnapshotReceived,
    /// The receiver refused or failed the snapshot.
    SnapshotRefused {
        /// Why, one line.
        reason: String,
    },
    // New variants go last: bincode encodes a variant by its position.
    /// The one frame a node writes on a forwarded-request stream: a client request it
    /// received and forwards to the node leading the request's shard.
    ForwardRequest(NativeRequest),
    /// The one frame answering a [`PeerFrame::ForwardRequest`]: the receiving node's answer,
    /// or its error when the stream's input was bad.
    ForwardResponse(NativeResponse),
    /// The one frame a joining node writes on a join connection (decision D18).
    Join(crate::member::JoinRequest),
    /// The answer to [`PeerFrame::Join`]: the joining node's identity and shards, or why it
    /// cannot join (one line).
    Joined(Result<crate::member::JoinResponse, String>),
}

/// Why a snapshot stream failed verification.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotCheckError {
    /// A chunk does not start where the previous one ended.
    #[error("snapshot chunk at offset {got}, expected offset {expected}")]
    OutOfOrder {
        /// Bytes received so far.
        expected: u64,
        /// The chunk's offset.
        got: u64,
    },
    /// A chunk is larger than [`SNAPSHOT_CHUNK_BYTES_MAX`] or empty.
    #[error("snapshot chunk of {len} bytes; chunks are 1 to {max} bytes")]
    BadChunkLength {
        /// The chunk's length.
        len: u64,
        /// The limit.
        max: usize,
    },
    /// The chunks add up to more than the header announced.
    #[error("snapshot chunks exceed the announced {total_bytes} bytes")]
    TooLong {
        /// Bytes announced.
        total_bytes: u64,
    },
    /// The end came before all announced bytes.
    #[error("snapshot ended after {received} of {total_bytes} bytes")]
    TooShort {
        /// Bytes received.
        received: u64,
        /// Bytes announced.
        total_bytes: u64,
    },
    /// A chunk's bytes do not match its checksum.
    #[error(
        "snapshot chunk at offset {offset}: crc32 {actual:#010x}, header says {expected:#010x}"
    )]
    ChunkChecksum {
        /// The chunk's offset.
        offset: u64,
        /// Checksum in the header.
        expected: u32,
        /// Checksum of the bytes.
        actual: u32,
    },
    /// The whole snapshot does not match its checksum.
    #[error("snapshot crc32 {actual:#010x}, sender says {expected:#010x}")]
    TotalChecksum {
        /// Checksum from the sender.
        expected: u32,
        /// Checksum of the bytes.
        actual: u32,
    },
}

/// The receiver's running check of one snapshot stream: chunks in order, within the limits
/// and the announced total, each matching its checksum, and the whole matching the final one.
#[derive(Clone, Debug)]
pub struct SnapshotVerifier {
    total_bytes: u64,
    received: u64,
    hasher: crc32fast::Hasher,
}

impl SnapshotVerifier {
    /// A verifier for a snapshot of `total_bytes`.
    pub fn new(total_bytes: u64) -> SnapshotVerifier {
        SnapshotVerifier { total_bytes, received: 0, hasher: crc32fast::Hasher::new() }
    }

    /// Bytes accepted so far.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Checks a chunk header before its bytes are read, so a lying length is refused
    /// before anything is allocated for it.
    pub fn check_header(&self, chunk: &SnapshotChunk) -> Result<(), SnapshotCheckError> {
        let len = u64::from(chunk.len);
        if chunk.len == 0 || len > SNAPSHOT_CHUNK_BYTES_MAX as u64 {
            return Err(SnapshotCheckError::BadChunkLength { len, max: SNAPSHOT_CHUNK_BYTES_MAX });
        }
        if chunk.offset != self.received {
            return Err(SnapshotCheckError::OutOfOrder {
                expected: self.received,
                got: chunk.offset,
            });
        }
        if self.received.saturating_add(len) > self.total_bytes {
            return Err(SnapshotCheckError::TooLong { total_bytes: self.total_bytes });
        }
        Ok(())
    }

    /// Checks a chunk and its bytes and, if they pass, counts them.
    pub fn accept_chunk(
        &mut self,
        chunk: &SnapshotChunk,
        data: &[u8],
    ) -> Result<(), SnapshotCheckError> {
        self.check_header(chunk)?;
        if data.len() as u64 != u64::from(chunk.len) {
            return Err(SnapshotCheckError::BadChunkLength {
                len: data.len() as u64,
                max: SNAPSHOT_CHUNK_BYTES_MAX,
            });
        }
        let actual = crc32fast::hash(data);
        if actual != chunk.crc32 {
            return Err(SnapshotCheckError::ChunkChecksum {
                offset: chunk.offset,
                expected: chunk.crc32,
                actual,
            });
        }
        self.hasher.update(data);
        self.received += u64::from(chunk.len);
        Ok(())
    }

    /// Checks the end of the stream: every announced byte arrived and the whole matches.
    pub fn finish(&self, end: &SnapshotEnd) -> Result<(), SnapshotCheckError> {
        if self.received != self.total_bytes {
            return Err(SnapshotCheckError::TooShort {
                received: self.received,
                total_bytes: self.total_bytes,
            });
        }
        let actual = self.hasher.clone().finalize();
        if actual != end.total_crc32 {
            return Err(SnapshotCheckError::TotalChecksum { expected: end.total_crc32, actual });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{decode_frame, encode_frame};

    fn full_message() -> ShardMessage {
        ShardMessage {
            shard: ShardId(7),
            message: ShardPayload::Raft(RaftMessage {
                msg_type: RaftMessageType::Append,
                to: 2,
                from: 1,
                term: Term(5),
                log_term: Term(4),
                index: LogIndex(100),
                entries: vec![RaftEntry {
                    entry_type: RaftEntryType::ConfChangeV2,
                    term: Term(5),
                    index: LogIndex(101),
                    data: vec![1, 2, 3],
                    context: vec![9],
                }],
                commit: LogIndex(99),
                commit_term: Term(4),
                snapshot: Some(RaftSnapshot {
                    data: vec![0xab; 10],
                    metadata: RaftSnapshotMetadata {
                        conf_state: RaftConfState {
                            voters: vec![1, 2, 3],
                            learners: vec![4],
                            voters_outgoing: vec![1, 2],
                            learners_next: vec![3],
                            auto_leave: true,
                        },
                        index: LogIndex(90),
                        term: Term(3),
                    },
                }),
                request_snapshot: LogIndex(88),
                reject: true,
                reject_hint: LogIndex(77),
                context: b"ctx".to_vec(),
                deprecated_priority: 6,
                priority: -3,
            }),
        }
    }

    fn raft(msg: &ShardMessage) -> RaftMessage {
        match &msg.message {
            ShardPayload::Raft(m) => m.clone(),
            other => panic!("not a raft message: {other:?}"),
        }
    }

    fn hibernation_messages() -> [ShardMessage; 2] {
        let hibernate = ShardPayload::Hibernate {
            from: u64::MAX,
            to: 2,
            term: Term(u64::MAX),
            index: LogIndex(u64::MAX),
        };
        let wake = ShardPayload::WakeUp { from: 3, to: u64::MAX, term: Term(u64::MAX) };
        [
            ShardMessage { shard: ShardId(u64::MAX), message: hibernate },
            ShardMessage { shard: ShardId(1), message: wake },
        ]
    }

    #[test]
    fn every_peer_frame_round_trips() {
        let frames = [
            PeerFrame::Hello { cluster_id: u64::MAX, from: NodeId(3) },
            PeerFrame::Raft(vec![full_message(), ShardMessage::default()]),
            PeerFrame::Raft(hibernation_messages().to_vec()),
            PeerFrame::SnapshotHeader(Box::new(SnapshotHeader {
                shard: ShardId(1),
                from: NodeId(1),
                to: NodeId(2),
                message: raft(&full_message()),
                total_bytes: 1 << 40,
            })),
            PeerFrame::SnapshotChunk(SnapshotChunk::for_data(4096, b"abc")),
            PeerFrame::SnapshotEnd(SnapshotEnd { total_crc32: 0xdead_beef }),
            PeerFrame::SnapshotReceived,
            PeerFrame::SnapshotRefused { reason: "no".into() },
            PeerFrame::ForwardRequest(NativeRequest::Put(crate::kv::PutRequest {
                key: b"/registry/pods/a".to_vec(),
                value: vec![0, 1, 255],
                lease: 9,
                prev_kv: true,
                ..Default::default()
            })),
            PeerFrame::ForwardResponse(NativeResponse::Error(crate::AtollError::NoLeader {
                shard: ShardId(3),
            })),
            PeerFrame::ForwardResponse(NativeResponse::Put(crate::kv::PutResponse::default())),
        ];
        for frame in frames {
            let bytes = encode_frame(&frame).expect("encodes");
            let back: PeerFrame = decode_frame(&bytes, PEER_FRAME_BYTES_MAX).expect("decodes");
            assert_eq!(back, frame);
        }
    }

    #[test]
    fn earlier_frames_keep_their_encoding() {
        // Appending the forward frames must not renumber the frames older nodes speak.
        let hello =
            encode_frame(&PeerFrame::Hello { cluster_id: 1, from: NodeId(2) }).expect("encodes");
        assert_eq!(&hello[crate::frame::FRAME_HEADER_BYTES..], &[0, 1, 2]);
        let received = encode_frame(&PeerFrame::SnapshotReceived).expect("encodes");
        assert_eq!(&received[crate::frame::FRAME_HEADER_BYTES..], &[5]);
        let forward = encode_frame(&PeerFrame::ForwardRequest(NativeRequest::Status(
            crate::native::StatusRequest {},
        )))
        .expect("encodes");
        assert_eq!(forward[crate::frame::FRAME_HEADER_BYTES], 7);
    }

    #[test]
    fn the_forward_limit_follows_max_request_bytes_up_to_the_frame_limit() {
        let default = crate::limits::MAX_REQUEST_BYTES_DEFAULT;
        assert_eq!(forward_request_bytes_max(default), default + FRAME_OVERHEAD_BYTES);
        assert_eq!(forward_request_bytes_max(usize::MAX), PEER_FRAME_BYTES_MAX);
        assert_eq!(forward_request_bytes_max(PEER_FRAME_BYTES_MAX), PEER_FRAME_BYTES_MAX);
    }

    #[test]
    fn the_size_bound_holds() {
        let mut big = raft(&full_message());
        big.entries = vec![
            RaftEntry {
                term: Term(u64::MAX),
                index: LogIndex(u64::MAX),
                data: vec![7; 5000],
                ..Default::default()
            };
            3
        ];
        big.term = Term(u64::MAX);
        big.commit = LogIndex(u64::MAX);
        big.priority = i64::MIN;
        let big = ShardMessage { shard: ShardId(u64::MAX), message: ShardPayload::Raft(big) };
        let [hibernate, wake] = hibernation_messages();
        for msg in [full_message(), big, ShardMessage::default(), hibernate, wake] {
            let encoded = encode_frame(&PeerFrame::Raft(vec![msg.clone()])).expect("encodes");
            let bound = msg.encoded_bytes_max();
            assert!(encoded.len() <= bound, "{} bytes above the bound {bound}", encoded.len());
        }
    }

    fn chunks(data: &[u8], size: usize) -> Vec<(SnapshotChunk, &[u8])> {
        let mut offset = 0u64;
        data.chunks(size)
            .map(|c| {
                let chunk = SnapshotChunk::for_data(offset, c);
                offset += c.len() as u64;
                (chunk, c)
            })
            .collect()
    }

    #[test]
    fn a_good_snapshot_verifies() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        let mut v = SnapshotVerifier::new(data.len() as u64);
        for (chunk, bytes) in chunks(&data, 3000) {
            v.accept_chunk(&chunk, bytes).expect("chunk verifies");
        }
        assert_eq!(v.received(), data.len() as u64);
        v.finish(&SnapshotEnd { total_crc32: crc32fast::hash(&data) }).expect("whole verifies");
    }

    #[test]
    fn a_corrupted_chunk_is_refused_and_not_counted() {
        let data = vec![5u8; 4000];
        let mut v = SnapshotVerifier::new(data.len() as u64);
        let parts = chunks(&data, 2000);
        v.accept_chunk(&parts[0].0, parts[0].1).expect("first chunk verifies");
        let mut corrupt = parts[1].1.to_vec();
        corrupt[17] ^= 0x40;
        let err = v.accept_chunk(&parts[1].0, &corrupt).expect_err("corrupt chunk");
        assert!(matches!(err, SnapshotCheckError::ChunkChecksum { offset: 2000, .. }), "{err}");
        assert_eq!(v.received(), 2000);
        let err = v.finish(&SnapshotEnd { total_crc32: crc32fast::hash(&data) });
        assert!(matches!(err, Err(SnapshotCheckError::TooShort { received: 2000, .. })));
    }

    #[test]
    fn order_lengths_and_totals_are_checked() {
        let data = vec![1u8; 100];
        let mut v = SnapshotVerifier::new(100);
        let skipped = SnapshotChunk::for_data(50, &data[50..]);
        assert!(matches!(
            v.accept_chunk(&skipped, &data[50..]),
            Err(SnapshotCheckError::OutOfOrder { expected: 0, got: 50 })
        ));
        let empty = SnapshotChunk::for_data(0, &[]);
        assert!(matches!(v.check_header(&empty), Err(SnapshotCheckError::BadChunkLength { .. })));
        let huge = SnapshotChunk { offset: 0, len: u32::MAX, crc32: 0 };
        assert!(matches!(v.check_header(&huge), Err(SnapshotCheckError::BadChunkLength { .. })));
        let long = SnapshotChunk { offset: 0, len: 101, crc32: 0 };
        assert!(matches!(v.check_header(&long), Err(SnapshotCheckError::TooLong { .. })));
        let lying = SnapshotChunk::for_data(0, &data);
        assert!(matches!(
            v.accept_chunk(&lying, &data[..99]),
            Err(SnapshotCheckError::BadChunkLength { len: 99, .. })
        ));
        v.accept_chunk(&lying, &data).expect("whole chunk verifies");
        let wrong_total = SnapshotEnd { total_crc32: crc32fast::hash(&data) ^ 1 };
        assert!(matches!(v.finish(&wrong_total), Err(SnapshotCheckError::TotalChecksum { .. })));
    }
}
