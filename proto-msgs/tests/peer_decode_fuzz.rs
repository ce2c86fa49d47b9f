//! Seeded random inputs against the peer frame decoder (the node-to-node counterpart of
//! `decode_fuzz.rs`): mutations of valid peer frames and random bytes. A decoder may refuse,
//! never panic or allocate what the input does not hold; the seed is printed so a failure
//! replays exactly.

mod fuzz_common;

use atoll_proto::frame::{FRAME_HEADER_BYTES, decode_frame, decode_payload};
use atoll_proto::peer::*;
use atoll_proto::*;
use fuzz_common::{CASES, XorShift, mutate};

fn message() -> RaftMessage {
    RaftMessage {
        msg_type: RaftMessageType::Snapshot,
        to: 3,
        from: 1,
        term: Term(8),
        index: LogIndex(1 << 33),
        entries: vec![RaftEntry {
            entry_type: RaftEntryType::ConfChange,
            term: Term(8),
            index: LogIndex(12),
            data: vec![3; 30],
            context: b"c".to_vec(),
        }],
        snapshot: Some(RaftSnapshot {
            data: vec![],
            metadata: RaftSnapshotMetadata {
                conf_state: RaftConfState {
                    voters: vec![1, 2, 3],
                    learners: vec![4, 5],
                    auto_leave: true,
                    ..Default::default()
                },
                index: LogIndex(11),
                term: Term(7),
            },
        }),
        priority: -1,
        ..Default::default()
    }
}

fn samples() -> Vec<Vec<u8>> {
    let batch = vec![
        ShardMessage { shard: ShardId(0), message: ShardPayload::Raft(message()) },
        ShardMessage { shard: ShardId(9), message: ShardPayload::default() },
        ShardMessage {
            shard: ShardId(3),
            message: ShardPayload::Hibernate { from: 1, to: 2, term: Term(4), index: LogIndex(9) },
        },
        ShardMessage {
            shard: ShardId(3),
            message: ShardPayload::WakeUp { from: 2, to: 1, term: Term(4) },
        },
    ];
    [
        PeerFrame::Hello { cluster_id: 0x1234_5678_9abc, from: NodeId(2) },
        PeerFrame::Raft(batch),
        PeerFrame::SnapshotHeader(Box::new(SnapshotHeader {
            shard: ShardId(4),
            from: NodeId(1),
            to: NodeId(2),
            message: message(),
            total_bytes: 5 << 30,
        })),
        PeerFrame::SnapshotChunk(SnapshotChunk::for_data(1 << 20, &[1, 2, 3])),
        PeerFrame::SnapshotEnd(SnapshotEnd { total_crc32: 77 }),
        PeerFrame::SnapshotRefused { reason: "disk full".into() },
        PeerFrame::ForwardRequest(NativeRequest::Put(PutRequest {
            key: b"/registry/pods/a".to_vec(),
            value: vec![7; 64],
            ..PutRequest::default()
        })),
        PeerFrame::ForwardResponse(NativeResponse::Range(RangeResponse {
            kvs: vec![KeyValue { key: b"k".to_vec(), value: b"v".to_vec(), ..KeyValue::default() }],
            count: 1,
            ..RangeResponse::default()
        })),
        PeerFrame::ForwardResponse(NativeResponse::Error(AtollError::LeaderChanged)),
    ]
    .iter()
    .map(|f| encode_frame(f).expect("encodes"))
    .collect()
}

#[test]
fn mutated_and_random_peer_frames_never_panic() {
    let mut rng = XorShift::from_env(0x9ee7_a701_u64, "peer_decode_fuzz");
    let samples = samples();
    let mut decoded = 0usize;
    for case in 0..CASES {
        let bytes = mutate(&mut rng, &samples[case % samples.len()]);
        if decode_frame::<PeerFrame>(&bytes, PEER_FRAME_BYTES_MAX).is_ok() {
            decoded += 1;
        }
        if bytes.len() > FRAME_HEADER_BYTES {
            let _ = decode_payload::<PeerFrame>(&bytes[FRAME_HEADER_BYTES..]);
        }
    }
    // Mutations must mostly be caught; if nearly all decoded, the fuzzer is not mutating.
    assert!(decoded < CASES / 2, "{decoded} of {CASES} mutated frames decoded");
}

#[test]
fn valid_samples_decode_and_a_huge_length_is_refused_unread() {
    for sample in samples() {
        assert!(decode_frame::<PeerFrame>(&sample, PEER_FRAME_BYTES_MAX).is_ok());
    }
    let mut huge = samples()[1].clone();
    huge[1..FRAME_HEADER_BYTES].copy_from_slice(&u32::MAX.to_be_bytes());
    assert!(matches!(
        decode_frame::<PeerFrame>(&huge, PEER_FRAME_BYTES_MAX),
        Err(FrameError::TooLarge { .. })
    ));
}
