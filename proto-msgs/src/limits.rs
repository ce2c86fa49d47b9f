//! Named limits shared by the client and the server. Defaults follow etcd where the concept
//! exists (`--max-request-bytes`, `--max-txn-ops`).

/// etcd's default `--max-request-bytes`: 1.5 MiB.
pub const MAX_REQUEST_BYTES_DEFAULT: usize = 1_572_864;
/// etcd's default `--max-txn-ops`.
pub const MAX_TXN_OPS_DEFAULT: usize = 128;
/// Hard ceiling on one frame, whatever the configuration says; a decoder refuses a longer
/// length prefix before allocating anything.
pub const FRAME_BYTES_MAX: usize = 256 * 1024 * 1024;
/// Room left above `max-request-bytes` for the envelope of a request (etcd adds 512 KiB of
/// gRPC overhead for the same reason).
pub const FRAME_OVERHEAD_BYTES: usize = 512 * 1024;
/// Deepest nesting of a Txn inside a Txn that a decoder or the store accepts.
pub const TXN_NESTING_DEPTH_MAX: usize = 16;
