//! Every type that crosses an Atoll process boundary: identifiers, the key-value request and
//! response messages (named after etcd's `etcdserverpb` so the gRPC gateway maps one to one),
//! the Raft commands replicated through shard logs, the stable wire error codes, and the frame
//! codec that carries all of them.
//!
//! This crate must not depend on a runtime, on IO or on storage: it is plain data plus pure
//! encode/decode functions, so every other crate (and a fuzzer) can use it.

#![warn(missing_docs)]

pub mod auth;
pub mod command;
pub mod error;
#[cfg(feature = "grpc")]
pub mod etcd;
#[cfg(feature = "grpc")]
pub mod etcd_convert;
pub mod frame;
pub mod ids;
pub mod kv;
pub mod lease;
pub mod limits;
pub mod member;
pub mod native;
pub mod peer;
pub mod shard_map;
pub mod watch;

pub use command::{CloseRequest, CloseResponse, RaftCommand, WriteOp};
pub use error::{AtollError, ErrorCode, GrpcCode};
pub use frame::{FrameError, decode_frame, encode_frame};
pub use ids::{LogIndex, NodeId, Revision, ShardId, Term};
pub use kv::*;
pub use lease::*;
pub use native::{
    AtLeaderRequest, CompactShardRequest, HashKvRequest, HashKvResponse, KeyedWrite, NativeRequest,
    NativeResponse, ShardHash, StatusRequest, StatusResponse,
};
pub use watch::{
    Event, EventType, WatchCancelRequest, WatchCreateRequest, WatchFilter, WatchProgressRequest,
    WatchRequest, WatchResponse,
};
