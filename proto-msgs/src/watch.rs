//! Watch messages with etcd v3 semantics (`etcdserverpb.Watch*`, `mvccpb.Event`, ETCD_API.md
//! §1.4), carried on a long-lived native watch stream.
//!
//! A watch stream is a bidirectional QUIC stream whose first frame is a
//! [`crate::NativeRequest::Watch`]; every later client frame is a [`WatchRequest`] and every
//! server frame a [`crate::NativeResponse::Watch`] (or one final
//! [`crate::NativeResponse::Error`] when the stream itself fails). Many watches share one
//! stream, each named by a watch ID the client may choose, as in etcd 3.4+.

use crate::kv::{KeyValue, ResponseHeader};
use serde::{Deserialize, Serialize};

/// The watch ID etcd's clients use for "no watch": progress responses to a
/// [`WatchProgressRequest`] carry it (`clientv3.InvalidWatchID`).
pub const INVALID_WATCH_ID: i64 = -1;
/// The watch ID that asks the server to choose one (`clientv3.AutoWatchID`).
pub const AUTO_WATCH_ID: i64 = 0;

/// `mvccpb.Event.EventType`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventType {
    /// The key was written.
    #[default]
    Put,
    /// The key was deleted.
    Delete,
}

/// `mvccpb.Event`: one change of one key at one revision.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// What happened.
    pub kind: EventType,
    /// The key after the change; a delete carries only the key and its mod revision.
    pub kv: KeyValue,
    /// The key before the change, when the watch asked for `prev_kv` and it existed.
    pub prev_kv: Option<KeyValue>,
}

/// `WatchCreateRequest.FilterType`: events the server leaves out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum WatchFilter {
    /// No put events.
    NoPut,
    /// No delete events.
    NoDelete,
}

/// `WatchCreateRequest`: watch a key, a prefix or a range.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchCreateRequest {
    /// First key watched.
    pub key: Vec<u8>,
    /// End of the range (exclusive), etcd conventions: empty for the single key, `"\0"` for
    /// every key from `key` on.
    pub range_end: Vec<u8>,
    /// First revision delivered (inclusive); `<= 0` means "from now".
    pub start_revision: i64,
    /// Ask for periodic progress notifications while the watch is idle.
    pub progress_notify: bool,
    /// Events to leave out.
    pub filters: Vec<WatchFilter>,
    /// Deliver each event's previous key-value.
    pub prev_kv: bool,
    /// The client's ID for this watch; [`AUTO_WATCH_ID`] lets the server choose.
    pub watch_id: i64,
    /// Split a response whose events exceed the server's `--max-request-bytes` into
    /// several, all but the last marked `fragment` (etcd's `fragment`). Without it, a
    /// response holds whole revisions, however large one is.
    pub fragment: bool,
}

/// `WatchCancelRequest`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchCancelRequest {
    /// The watch to cancel.
    pub watch_id: i64,
}

/// `WatchProgressRequest`: ask for a progress notification for the whole stream.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchProgressRequest {}

/// `WatchRequest`: what a client sends on a watch stream.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum WatchRequest {
    /// Start a watch.
    Create(WatchCreateRequest),
    /// Stop a watch.
    Cancel(WatchCancelRequest),
    /// Ask for a progress notification.
    Progress(WatchProgressRequest),
}

/// `WatchResponse`.
///
/// `header.revision` of a response without events (a progress notification) means: every
/// later event of this watch (or, for [`INVALID_WATCH_ID`], of every watch of the stream)
/// has a higher revision.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchResponse {
    /// Response header.
    pub header: ResponseHeader,
    /// The watch this response belongs to; [`INVALID_WATCH_ID`] for a stream-wide progress
    /// notification.
    pub watch_id: i64,
    /// The answer to a create.
    pub created: bool,
    /// The watch ended; no more responses follow for it.
    pub canceled: bool,
    /// Set with `canceled` when the watch's next revision was compacted: the client must
    /// not retry from the same revision.
    pub compact_revision: i64,
    /// Why the watch was canceled, when not by the client.
    pub cancel_reason: String,
    /// More responses of the same batch follow (etcd's `fragment`; only on a watch created
    /// with `fragment`): the client joins them before handing the events out.
    pub fragment: bool,
    /// Events in revision order.
    pub events: Vec<Event>,
}

impl WatchResponse {
    /// Whether this is a progress notification (no events, not a create or cancel answer).
    pub fn is_progress_notify(&self) -> bool {
        self.events.is_empty() && !self.created && !self.canceled && self.compact_revision == 0
    }
}
