//! Seeded random inputs against every wire decoder: mutations of valid frames (bit flips,
//! byte overwrites, truncation, extension, length-prefix lies) and random bytes. A decoder may
//! refuse, never panic or allocate what the input does not hold. Stable Rust's stand-in for a
//! cargo-fuzz target (which needs a nightly toolchain this machine cannot fetch); the seed is
//! printed so a failure replays exactly.

use atoll_proto::frame::{FRAME_HEADER_BYTES, decode_frame};
use atoll_proto::limits::FRAME_BYTES_MAX;
use atoll_proto::*;

/// Inputs tried per run.
const CASES: usize = 20_000;

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

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
    let response = RangeResponse { kvs: vec![kv.clone(), kv], count: 2, ..Default::default() };
    vec![
        encode_frame(&NativeRequest::Txn(txn.clone())).expect("encodes"),
        encode_frame(&NativeRequest::Range(range)).expect("encodes"),
        encode_frame(&NativeResponse::Range(response)).expect("encodes"),
        encode_frame(&NativeResponse::Error(AtollError::Busy { limit: "x".into() }))
            .expect("encodes"),
        encode_frame(&RaftCommand { revision_stamp: 99, op: WriteOp::Txn(txn) }).expect("encodes"),
    ]
}

fn mutate(rng: &mut XorShift, base: &[u8]) -> Vec<u8> {
    let mut b = base.to_vec();
    match rng.below(6) {
        0 => {
            let i = rng.below(b.len());
            b[i] ^= 1 << rng.below(8);
        }
        1 => {
            for _ in 0..=rng.below(8) {
                let i = rng.below(b.len());
                b[i] = rng.next() as u8;
            }
        }
        2 => b.truncate(rng.below(b.len())),
        3 => b.extend((0..rng.below(64)).map(|_| rng.next() as u8)),
        4 if b.len() >= FRAME_HEADER_BYTES => {
            // A length prefix that lies about the payload.
            let claimed = (rng.next() as u32).to_be_bytes();
            b[1..FRAME_HEADER_BYTES].copy_from_slice(&claimed);
        }
        _ => b = (0..rng.below(256)).map(|_| rng.next() as u8).collect(),
    }
    b
}

fn try_all(bytes: &[u8]) {
    let _ = decode_frame::<NativeRequest>(bytes, FRAME_BYTES_MAX);
    let _ = decode_frame::<NativeResponse>(bytes, FRAME_BYTES_MAX);
    let _ = decode_frame::<RaftCommand>(bytes, FRAME_BYTES_MAX);
    if bytes.len() > FRAME_HEADER_BYTES {
        let _ = frame::decode_payload::<NativeRequest>(&bytes[FRAME_HEADER_BYTES..]);
    }
}

#[test]
fn mutated_and_random_frames_never_panic() {
    let seed = std::env::var("ATOLL_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_a701_u64);
    eprintln!(
        "seed {seed} (replay: ATOLL_FUZZ_SEED={seed} cargo test -p atoll-proto --test decode_fuzz)"
    );
    let mut rng = XorShift(seed.max(1));
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
}
