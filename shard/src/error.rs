//! Errors of the shard crate. Storage failures are fatal and distinct from the retryable,
//! client-facing [`atoll_proto::AtollError`].

use atoll_proto::AtollError;

/// A failure of the node's storage. Fatal: after one, the node stops accepting writes and
/// exits (a failed fsync is never retried, DESIGN §5).
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// Another process holds the data directory.
    #[error(
        "data directory {path} is locked by another process; stop the other atoll or choose another --data-dir"
    )]
    Locked {
        /// The data directory.
        path: String,
    },
    /// The data directory exists but is not a valid Atoll/fjall database.
    #[error(
        "data directory {path} is corrupt or not an atoll data directory ({detail}); restore it from a backup or point --data-dir elsewhere"
    )]
    Corrupt {
        /// The data directory.
        path: String,
        /// What the storage engine reported.
        detail: String,
    },
    /// A record read back from storage does not decode.
    #[error("stored record {what} does not decode: {detail}")]
    BadRecord {
        /// Which record.
        what: &'static str,
        /// Decoder's complaint.
        detail: String,
    },
    /// The storage engine failed.
    #[error("storage engine error: {0}")]
    Engine(#[from] fjall::Error),
    /// Plain IO failed.
    #[error("storage io error: {0}")]
    Io(#[from] std::io::Error),
    /// A storage task on the blocking pool panicked or was cancelled (the runtime stops).
    #[error("storage task {what} did not finish: {detail}")]
    TaskFailed {
        /// Which task.
        what: &'static str,
        /// The runtime's report.
        detail: String,
    },
}

/// An error of a shard replica as seen by a request.
#[derive(Debug, thiserror::Error)]
pub enum ShardError {
    /// The request failed in a way the client can act on.
    #[error(transparent)]
    Request(#[from] AtollError),
    /// Storage failed: fatal for the node.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl ShardError {
    /// The error as it goes on the wire.
    pub fn to_wire(&self) -> AtollError {
        match self {
            ShardError::Request(e) => e.clone(),
            ShardError::Storage(e) => storage_failed(e),
        }
    }
}

/// A storage failure as a client sees it: the request failed, with the reason.
impl From<StorageError> for AtollError {
    fn from(e: StorageError) -> AtollError {
        storage_failed(&e)
    }
}

fn storage_failed(e: &StorageError) -> AtollError {
    AtollError::StorageFailed { reason: e.to_string() }
}
