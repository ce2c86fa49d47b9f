//! The frame codec: `[version: u8][payload length: u32 big-endian][bincode payload]`.
//!
//! Decoders check the version and the length prefix against a limit before allocating and
//! never panic on bad input (DESIGN §8). bincode itself is also capped at
//! [`FRAME_BYTES_MAX`] so a length inside a payload cannot ask for more memory than that.

use crate::limits::FRAME_BYTES_MAX;
use serde::{Serialize, de::DeserializeOwned};

/// The only frame version this build speaks.
pub const FRAME_VERSION: u8 = 1;
/// Bytes before the payload: version and length.
pub const FRAME_HEADER_BYTES: usize = 5;

type Config = bincode::config::Configuration<
    bincode::config::BigEndian,
    bincode::config::Varint,
    bincode::config::Limit<FRAME_BYTES_MAX>,
>;

fn config() -> Config {
    bincode::config::standard().with_big_endian().with_limit::<FRAME_BYTES_MAX>()
}

/// Why a frame could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Fewer bytes than a header.
    #[error("frame is truncated: {got} bytes, need at least {need}")]
    Truncated {
        /// Bytes received.
        got: usize,
        /// Bytes needed.
        need: usize,
    },
    /// The version byte is not [`FRAME_VERSION`].
    #[error("unsupported frame version {version} (this build speaks {FRAME_VERSION})")]
    UnsupportedVersion {
        /// The version received.
        version: u8,
    },
    /// The length prefix is above the limit.
    #[error("frame of {len} bytes is over the limit of {max} bytes")]
    TooLarge {
        /// The announced payload length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The payload is shorter or longer than its length prefix says.
    #[error("frame payload is {got} bytes but its header says {expected}")]
    LengthMismatch {
        /// Bytes announced.
        expected: usize,
        /// Bytes present.
        got: usize,
    },
    /// The message could not be encoded (larger than [`FRAME_BYTES_MAX`]).
    #[error("message does not encode: {reason}")]
    Encode {
        /// The encoder's complaint.
        reason: String,
    },
    /// The payload is not a valid message.
    #[error("frame payload does not decode: {reason}")]
    Decode {
        /// The decoder's complaint.
        reason: String,
    },
}

/// Encodes `msg` as one frame.
pub fn encode_frame<T: Serialize>(msg: &T) -> Result<Vec<u8>, FrameError> {
    let mut out = vec![FRAME_VERSION, 0, 0, 0, 0];
    bincode::serde::encode_into_std_write(msg, &mut out, config())
        .map_err(|e| FrameError::Encode { reason: e.to_string() })?;
    let len = out.len() - FRAME_HEADER_BYTES;
    let len32 =
        u32::try_from(len).map_err(|_| FrameError::TooLarge { len, max: FRAME_BYTES_MAX })?;
    out[1..FRAME_HEADER_BYTES].copy_from_slice(&len32.to_be_bytes());
    Ok(out)
}

/// Reads the header of a frame and returns the payload length it announces, after checking
/// the version and that the length is at most `max_bytes`.
pub fn frame_payload_len(header: &[u8], max_bytes: usize) -> Result<usize, FrameError> {
    if header.len() < FRAME_HEADER_BYTES {
        return Err(FrameError::Truncated { got: header.len(), need: FRAME_HEADER_BYTES });
    }
    if header[0] != FRAME_VERSION {
        return Err(FrameError::UnsupportedVersion { version: header[0] });
    }
    let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
    let max = max_bytes.min(FRAME_BYTES_MAX);
    if len > max {
        return Err(FrameError::TooLarge { len, max });
    }
    Ok(len)
}

/// Decodes exactly one frame from `bytes`, refusing a payload longer than `max_bytes`.
pub fn decode_frame<T: DeserializeOwned>(bytes: &[u8], max_bytes: usize) -> Result<T, FrameError> {
    let expected = frame_payload_len(bytes, max_bytes)?;
    let payload = &bytes[FRAME_HEADER_BYTES..];
    if payload.len() != expected {
        return Err(FrameError::LengthMismatch { expected, got: payload.len() });
    }
    decode_payload(payload)
}

/// Decodes a payload whose frame header was already checked with [`frame_payload_len`].
pub fn decode_payload<T: DeserializeOwned>(payload: &[u8]) -> Result<T, FrameError> {
    let (msg, used) = bincode::serde::decode_from_slice(payload, config())
        .map_err(|e| FrameError::Decode { reason: e.to_string() })?;
    if used != payload.len() {
        return Err(FrameError::Decode {
            reason: format!("{} trailing bytes after the message", payload.len() - used),
        });
    }
    Ok(msg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::*;
    use crate::native::{NativeRequest, NativeResponse};
    use crate::{AtollError, RaftCommand, WriteOp};

    fn round_trip<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(msg: T) {
        let bytes = encode_frame(&msg).expect("encodes");
        let back: T = decode_frame(&bytes, FRAME_BYTES_MAX).expect("round trip decodes");
        assert_eq!(back, msg);
    }

    #[test]
    fn every_message_round_trips() {
        let put = PutRequest {
            key: b"k".to_vec(),
            value: vec![0, 255],
            lease: 7,
            prev_kv: true,
            ..Default::default()
        };
        let txn = TxnRequest {
            compare: vec![Compare {
                result: CompareResult::NotEqual,
                target: CompareTarget::Value(b"v".to_vec()),
                key: b"k".to_vec(),
                range_end: b"l".to_vec(),
            }],
            success: vec![RequestOp::Put(put.clone()), RequestOp::Txn(TxnRequest::default())],
            failure: vec![RequestOp::Range(RangeRequest { limit: 3, ..Default::default() })],
        };
        round_trip(NativeRequest::Put(put.clone()));
        round_trip(NativeRequest::Txn(txn.clone()));
        round_trip(NativeResponse::Error(AtollError::Compacted { compact_revision: 9 }));
        round_trip(NativeResponse::Range(RangeResponse {
            kvs: vec![KeyValue { key: b"a".to_vec(), version: 2, ..Default::default() }],
            more: true,
            count: 4,
            ..Default::default()
        }));
        round_trip(RaftCommand { revision_stamp: 42, op: WriteOp::Txn(txn) });
        let create = crate::WatchCreateRequest {
            key: b"a".to_vec(),
            range_end: vec![0],
            filters: vec![crate::WatchFilter::NoPut],
            watch_id: 3,
            ..Default::default()
        };
        round_trip(NativeRequest::Watch(crate::WatchRequest::Create(create)));
        round_trip(crate::WatchRequest::Progress(crate::WatchProgressRequest {}));
        round_trip(NativeResponse::Watch(crate::WatchResponse {
            watch_id: -1,
            events: vec![crate::Event {
                kind: crate::EventType::Delete,
                kv: KeyValue { key: b"a".to_vec(), mod_revision: 5, ..Default::default() },
                prev_kv: None,
            }],
            ..Default::default()
        }));
        let permission = crate::auth::Permission {
            perm_type: crate::auth::PermissionType::ReadWrite,
            key: b"/app/".to_vec(),
            range_end: b"/app0".to_vec(),
        };
        let grant =
            crate::auth::AuthRequest::RoleGrantPermission { role: "app".into(), permission };
        round_trip(NativeRequest::WithToken(crate::auth::TokenRequest {
            token: "t.t".into(),
            request: Box::new(NativeRequest::Auth(grant)),
        }));
        round_trip(NativeRequest::AuthWrite(crate::auth::AuthOp::UserAdd {
            name: "alice".into(),
            password_hash: "$2b$10$x".into(),
            no_password: false,
        }));
        round_trip(NativeResponse::Auth(crate::auth::AuthResponse {
            token: "t.t".into(),
            roles: vec!["app".into()],
            ..Default::default()
        }));
    }

    #[test]
    fn bad_frames_are_errors_not_panics() {
        let good = encode_frame(&NativeRequest::Put(PutRequest::default())).expect("encodes");
        assert!(matches!(
            decode_frame::<NativeRequest>(&good[..3], 1024),
            Err(FrameError::Truncated { .. })
        ));
        let mut wrong_version = good.clone();
        wrong_version[0] = 9;
        assert_eq!(
            decode_frame::<NativeRequest>(&wrong_version, 1024),
            Err(FrameError::UnsupportedVersion { version: 9 })
        );
        let mut huge = good.clone();
        huge[1..5].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(
            decode_frame::<NativeRequest>(&huge, 1024),
            Err(FrameError::TooLarge { .. })
        ));
        let mut short = good.clone();
        short.pop();
        assert!(matches!(
            decode_frame::<NativeRequest>(&short, 1024),
            Err(FrameError::LengthMismatch { .. })
        ));
        // A payload of garbage that claims a huge vector must not allocate it.
        let mut garbage = vec![FRAME_VERSION, 0, 0, 0, 6, 1, 0xfc, 0xff, 0xff, 0xff, 0x7f];
        garbage.truncate(11);
        assert!(decode_frame::<NativeRequest>(&garbage, 1024).is_err());
    }

    #[test]
    fn every_prefix_and_bit_flip_of_a_frame_is_handled() {
        let frame = encode_frame(&NativeRequest::Txn(TxnRequest {
            compare: vec![Compare::default()],
            success: vec![RequestOp::Put(PutRequest {
                key: b"abc".to_vec(),
                ..Default::default()
            })],
            failure: vec![],
        }))
        .expect("encodes");
        for cut in 0..frame.len() {
            let _ = decode_frame::<NativeRequest>(&frame[..cut], 1 << 20);
        }
        for i in 0..frame.len() {
            for bit in 0..8 {
                let mut flipped = frame.clone();
                flipped[i] ^= 1 << bit;
                let _ = decode_frame::<NativeRequest>(&flipped, 1 << 20);
            }
        }
    }
}
