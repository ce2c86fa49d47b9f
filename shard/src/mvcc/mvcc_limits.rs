//! Request limits the store enforces before a write is proposed.

use atoll_proto::limits::{MAX_REQUEST_BYTES_DEFAULT, MAX_TXN_OPS_DEFAULT};

/// Limits checked by [`crate::mvcc::validate_write`]: etcd's `--max-txn-ops` and
/// `--max-request-bytes`.
#[derive(Clone, Debug)]
pub struct MvccLimits {
    /// Most compares, success ops or failure ops of one Txn (each counted alone, as etcd).
    pub max_txn_ops: usize,
    /// Largest encoded write accepted.
    pub max_request_bytes: usize,
}

impl Default for MvccLimits {
    /// etcd's defaults: 128 ops per Txn, 1.5 MiB per request.
    fn default() -> Self {
        MvccLimits {
            max_txn_ops: MAX_TXN_OPS_DEFAULT,
            max_request_bytes: MAX_REQUEST_BYTES_DEFAULT,
        }
    }
}
