//! Seeded random inputs against every wire decoder: mutations of valid frames (bit flips,
//! byte overwrites, truncation, extension, length-prefix lies) and random bytes. A decoder may
//! refuse, never panic or allocate what the input does not hold. Stable Rust's stand-in for a
//! cargo-fuzz target (which needs a nightly toolchain this machine cannot fetch); the seed is
//! printed so a failure replays exactly.

mod fuzz_common;

use atoll_proto::frame::{FRAME_HEADER_BYTES, decode_frame};
use atoll_proto::limits::FRAME_BYTES_MAX;
use atoll_proto::*;
use fuzz_common::{CASES, XorShift, mutate};

fn samples() -> Vec<Vec<u8>> {
    let txn = TxnRequest {
        compare: vec![Compare {
            result: CompareResult::Less,
            target: CompareTarget::Mod(7),
            key: b"k".to_vec(),
            range_end: b"z".to_vec(),
        }],
        success: vec![RequestOp::Put(PutRequest {
            key: b"a".to_vec(),
            value: vec![1; 40],
            ..Default::default()
        })],
        failure: vec![RequestOp::Txn(TxnRequest::default())],
    };
    let kv = KeyValue {
        key: b"key".to_vec(),
        value: b"value".to_vec(),
        version: 3,
        ..Default::default()
    };
    let range = RangeRequest { key: b"a".to_vec(), limit: 5, ..Default::default() };
    let response =
        RangeResponse { kvs: vec![kv.clone(), kv.clone()], count: 2, ..Default::default() };
    let create = WatchCreateRequest {
        key: b"/registry/".to_vec(),
        range_end: b"/registry0".to_vec(),
        start_revision: 12,
        progress_notify: true,
        filters: vec![WatchFilter::NoDelete],
        prev_kv: true,
        watch_id: 7,
        fragment: false,
    };
    let events = WatchResponse {
        watch_id: 7,
        events: vec![
            Event { kind: EventType::Put, kv: kv.clone(), prev_kv: Some(kv.clone()) },
            Event { kind: EventType::Delete, kv, prev_kv: None },
        ],
        ..Default::default()
    };
    vec![
        encode_frame(&NativeRequest::Txn(txn.clone())).expect("encodes"),
        encode_frame(&NativeRequest::Range(range)).expect("encodes"),
        encode_frame(&NativeResponse::Range(response)).expect("encodes"),
        encode_frame(&NativeResponse::Error(AtollError::Busy { limit: "x".into() }))
            .expect("encodes"),
        encode_frame(&RaftCommand { revision_stamp: 99, op: WriteOp::Txn(txn) }).expect("encodes"),
        encode_frame(&NativeRequest::Watch(WatchRequest::Create(create.clone()))).expect("encodes"),
        encode_frame(&WatchRequest::Create(create)).expect("encodes"),
        encode_frame(&WatchRequest::Cancel(WatchCancelRequest { watch_id: 7 })).expect("encodes"),
        encode_frame(&NativeResponse::Watch(events)).expect("encodes"),
        encode_frame(&RaftCommand {
            revision_stamp: 5,
            op: WriteOp::Close(CloseRequest { shard: ShardId(3), revision: 77 }),
        })
        .expect("encodes"),
    ]
}

fn try_all(bytes: &[u8]) {
    let _ = decode_frame::<NativeRequest>(bytes, FRAME_BYTES_MAX);
    let _ = decode_frame::<NativeResponse>(bytes, FRAME_BYTES_MAX);
    let _ = decode_frame::<RaftCommand>(bytes, FRAME_BYTES_MAX);
    let _ = decode_frame::<WatchRequest>(bytes, FRAME_BYTES_MAX);
    if bytes.len() > FRAME_HEADER_BYTES {
        let _ = frame::decode_payload::<NativeRequest>(&bytes[FRAME_HEADER_BYTES..]);
    }
}

#[test]
fn mutated_and_random_frames_never_panic() {
    let mut rng = XorShift::from_env(0x5eed_a701_u64, "decode_fuzz");
    let samples = samples();
    for case in 0..CASES {
        let base = &samples[case % samples.len()];
        try_all(&mutate(&mut rng, base));
    }
}

#[test]
fn valid_samples_decode_as_their_type() {
    let s = samples();
    assert!(decode_frame::<NativeRequest>(&s[0], FRAME_BYTES_MAX).is_ok());
    assert!(decode_frame::<NativeRequest>(&s[1], FRAME_BYTES_MAX).is_ok());
    assert!(decode_frame::<NativeResponse>(&s[2], FRAME_BYTES_MAX).is_ok());
    assert!(decode_frame::<NativeResponse>(&s[3], FRAME_BYTES_MAX).is_ok());
    assert!(decode_frame::<RaftCommand>(&s[4], FRAME_BYTES_MAX).is_ok());
    assert!(decode_frame::<NativeRequest>(&s[5], FRAME_BYTES_MAX).is_ok());
    assert!(decode_frame::<WatchRequest>(&s[6], FRAME_BYTES_MAX).is_ok());
    assert!(decode_frame::<WatchRequest>(&s[7], FRAME_BYTES_MAX).is_ok());
    assert!(decode_frame::<NativeResponse>(&s[8], FRAME_BYTES_MAX).is_ok());
    assert!(decode_frame::<RaftCommand>(&s[9], FRAME_BYTES_MAX).is_ok());
    // A frame of one type is not silently read as another.
    assert!(decode_frame::<WatchRequest>(&s[5], FRAME_BYTES_MAX).is_err());
}
