//! What etcd's Lock and Election servers borrow from its client library
//! (`client/v3/concurrency`: `session.go`, `key.go`), on the node's own request path: every
//! read, write, lease grant and watch goes through [`NodeService`] exactly as a gRPC client's
//! would, so the recipes route, forward and span shards like any request (decisions D11 and
//! "Lock and Election").
//!
//! - A *session* is the lease that holds an ownership key; lease 0 asks for a fresh one of
//!   etcd's default session TTL ([`session_lease`]).
//! - An *ownership key* is `<name>/<lease ID in lower-case hex>` ([`owner_key`]); the
//!   waiters of a name are ordered by the create revision of their keys, and the first one
//!   owns the lock or leads the election.
//! - [`wait_deletes`] waits until every key of a name created before ours is deleted.
//!
//! Where a name's keys span shards, two of them may carry the same create revision (shards
//! stamp revisions independently, D3); ties then go to the lower key, the order in which a
//! Range sorted by create revision lists them, so the owner every caller agrees on is the
//! one a `Leader` read answers.

use super::{AbortOnDrop, Gateway, unexpected};
use crate::service::NodeService;
use atoll_proto::watch::{EventType, WatchCreateRequest, WatchRequest, WatchResponse};
use atoll_proto::{
    AtollError, Compare, CompareResult, CompareTarget, DeleteRangeRequest, DeleteRangeResponse,
    KeyValue, LeaseGrantRequest, NativeRequest, NativeResponse, RangeRequest, RangeResponse,
    ResponseHeader, SortOrder, SortTarget, TxnRequest, TxnResponse, prefix_range_end,
};
use std::future::Future;
use tokio::sync::{mpsc, oneshot};
use tonic::{Code, Response, Status};

/// etcd's `defaultSessionTTL`: the TTL, in seconds, of the lease granted for a call that
/// names lease 0.
pub const SESSION_TTL_SECONDS: i64 = 60;
/// Watch responses queued ahead of a recipe that is busy with the previous one.
const WATCH_RESPONSES_QUEUED_MAX: usize = 16;

/// Why a lock or election call failed. etcd's servers return their client library's errors
/// as they are, which gRPC sends as `Unknown` with the error's text ([`Self::into_status`]),
/// the store's errors included: the text is etcd's, the code is what etcd's clients see.
#[derive(Debug, thiserror::Error)]
pub enum RecipeError {
    /// etcd's `ErrElectionNotLeader`: the leader key given is not the current one.
    #[error("election: not leader")]
    NotLeader,
    /// etcd's `ErrElectionNoLeader`: nobody campaigns for the election.
    #[error("election: no leader")]
    NoLeader,
    /// etcd's (≥ 3.5) `ErrSessionExpired`: the lease of a waiting lock ended while it
    /// waited, so its key is gone and the lock was never held.
    #[error("mutex: session is expired")]
    MutexSessionExpired,
    /// The lease of a waiting campaign ended while it waited: Atoll's error, where etcd
    /// answers success with a key that is gone (docs/decisions.md, "Lock and Election").
    #[error("election: session expired")]
    ElectionSessionExpired,
    /// etcd's `ErrMissingLeaderKey`: Proclaim or Resign without a leader key.
    #[error("\"leader\" field must be provided")]
    MissingLeaderKey,
    /// The watch waiting for a deletion ended without an error.
    #[error("lost watcher waiting for delete")]
    LostWatcher,
    /// The watch waiting for a deletion was canceled by the server for `reason`.
    #[error("{reason}")]
    WatchCanceled {
        /// The server's cancel reason.
        reason: String,
    },
    /// The client went away (cancelled the call, or its deadline passed) while it waited.
    #[error("context canceled")]
    ClientGone,
    /// The store refused a request of the recipe.
    #[error(transparent)]
    Store(#[from] AtollError),
    /// The request service answered with the wrong kind of response: a bug.
    #[error("{0}")]
    Unexpected(Status),
}

impl RecipeError {
    /// The gRPC status etcd's lock and election servers answer: `Unknown` with the text.
    pub fn into_status(self) -> Status {
        match self {
            RecipeError::Unexpected(status) => status,
            other => Status::new(Code::Unknown, other.to_string()),
        }
    }
}

/// `<name>/`: the prefix under which a name's ownership keys live.
pub fn key_prefix(name: &[u8]) -> Vec<u8> {
    let mut prefix = name.to_vec();
    prefix.push(b'/');
    prefix
}

/// The ownership key of `lease` under `prefix`, formatted as Go's `%x` formats a lease ID
/// (lower-case hex, no padding, a minus sign for a negative ID).
pub fn owner_key(prefix: &[u8], lease: i64) -> Vec<u8> {
    let hex = if lease < 0 { format!("-{:x}", lease.unsigned_abs()) } else { format!("{lease:x}") };
    let mut key = prefix.to_vec();
    key.extend_from_slice(hex.as_bytes());
    key
}

/// The range of `prefix`'s keys with the oldest first (clientv3's `WithFirstCreate`).
pub fn first_created(prefix: &[u8]) -> RangeRequest {
    RangeRequest {
        key: prefix.to_vec(),
        range_end: prefix_range_end(prefix),
        limit: 1,
        sort_order: SortOrder::Ascend,
        sort_target: SortTarget::Create,
        ..RangeRequest::default()
    }
}

/// The newest key of `prefix` created at or below `max_create_revision` (clientv3's
/// `WithLastCreate` with `WithMaxCreateRev`).
fn last_created_up_to(prefix: &[u8], max_create_revision: i64) -> RangeRequest {
    RangeRequest { sort_order: SortOrder::Descend, max_create_revision, ..first_created(prefix) }
}

/// A key of `prefix` below `key` created at exactly `revision`: a tie `key` must wait for.
fn tie_below(prefix: &[u8], key: &[u8], revision: i64) -> RangeRequest {
    RangeRequest {
        key: prefix.to_vec(),
        range_end: key.to_vec(),
        limit: 1,
        min_create_revision: revision,
        max_create_revision: revision,
        keys_only: true,
        ..RangeRequest::default()
    }
}

/// The compare "`key` has create revision `revision`" (0: the key does not exist).
pub fn created_at(key: &[u8], revision: i64) -> Compare {
    Compare {
        result: CompareResult::Equal,
        target: CompareTarget::Create(revision),
        key: key.to_vec(),
        range_end: Vec::new(),
    }
}

/// The create revision of the ownership key a txn guarded by `created_at(key, 0)` left:
/// the txn's revision when it created the key, the key's own when it existed (the Range of
/// it the failure branch runs first).
pub fn own_revision(resp: &TxnResponse) -> Result<i64, RecipeError> {
    if resp.succeeded {
        return Ok(resp.header.revision);
    }
    match resp.responses.first() {
        Some(atoll_proto::ResponseOp::Range(r)) if !r.kvs.is_empty() => {
            Ok(r.kvs[0].create_revision)
        }
        other => Err(RecipeError::Unexpected(Status::internal(format!(
            "atoll: the ownership key's txn answered without the key: {other:?}"
        )))),
    }
}

/// The lease a call with `lease` holds its key with: a fresh one of
/// [`SESSION_TTL_SECONDS`] for 0, as etcd's `NewSession` grants; any other as given
/// (a lease that does not exist fails the write that would attach it).
pub async fn session_lease(service: &NodeService, lease: i64) -> Result<i64, RecipeError> {
    if lease != 0 {
        return Ok(lease);
    }
    let grant = LeaseGrantRequest { ttl: SESSION_TTL_SECONDS, id: 0 };
    match ask(service, NativeRequest::LeaseGrant(grant)).await? {
        NativeResponse::LeaseGrant(g) => Ok(g.id),
        other => Err(RecipeError::Unexpected(unexpected(&other))),
    }
}

/// Serves `req` through the node's request path; an error answer is the store's.
async fn ask(service: &NodeService, req: NativeRequest) -> Result<NativeResponse, RecipeError> {
    match service.serve(req).await {
        NativeResponse::Error(e) => Err(RecipeError::Store(e)),
        ok => Ok(ok),
    }
}

/// A Txn through the node's request path.
pub async fn txn(service: &NodeService, req: TxnRequest) -> Result<TxnResponse, RecipeError> {
    match ask(service, NativeRequest::Txn(req)).await? {
        NativeResponse::Txn(r) => Ok(r),
        other => Err(RecipeError::Unexpected(unexpected(&other))),
    }
}

/// A linearizable Range through the node's request path.
pub async fn range(service: &NodeService, req: RangeRequest) -> Result<RangeResponse, RecipeError> {
    match ask(service, NativeRequest::Range(req)).await? {
        NativeResponse::Range(r) => Ok(r),
        other => Err(RecipeError::Unexpected(unexpected(&other))),
    }
}

/// Deletes one key through the node's request path.
pub async fn delete(service: &NodeService, key: &[u8]) -> Result<DeleteRangeResponse, RecipeError> {
    let req = DeleteRangeRequest { key: key.to_vec(), ..DeleteRangeRequest::default() };
    match ask(service, NativeRequest::DeleteRange(req)).await? {
        NativeResponse::DeleteRange(r) => Ok(r),
        other => Err(RecipeError::Unexpected(unexpected(&other))),
    }
}

/// `key`'s current version with the header of its read, if it still exists with create
/// revision `create_revision` (the same incarnation: a lease ID can be granted again).
/// One key is one shard, so the header's revision is the one the key was read at.
pub async fn current(
    service: &NodeService,
    key: &[u8],
    create_revision: i64,
) -> Result<Option<(ResponseHeader, KeyValue)>, RecipeError> {
    let read =
        range(service, RangeRequest { key: key.to_vec(), ..RangeRequest::default() }).await?;
    let kv = read.kvs.into_iter().next().filter(|kv| kv.create_revision == create_revision);
    Ok(kv.map(|kv| (read.header, kv)))
}

/// Waits until every key of `prefix` that comes before ours (`key`, created at `revision`)
/// is deleted: etcd's `waitDeletes`, one predecessor at a time, newest first, each waited
/// for by a watch from the revision it was read at.
///
/// When the prefix spans shards (`spans_shards`), keys below ours created at our very
/// revision come first too (ties), and each predecessor is read again on its own before
/// its watch: a read across shards is a cut at one revision but its header carries the
/// newest shard's revision (D15), and a watch from there could miss the deletion.
pub async fn wait_deletes(
    service: &NodeService,
    prefix: &[u8],
    key: &[u8],
    revision: i64,
    spans_shards: bool,
) -> Result<(), RecipeError> {
    loop {
        let tie = if spans_shards {
            range(service, tie_below(prefix, key, revision)).await?
        } else {
            RangeResponse::default()
        };
        let found = if tie.kvs.is_empty() {
            range(service, last_created_up_to(prefix, revision - 1)).await?
        } else {
            tie
        };
        let Some(before) = found.kvs.into_iter().next() else {
            return Ok(());
        };
        let from = if spans_shards {
            match current(service, &before.key, before.create_revision).await? {
                Some((header, _)) => header.revision,
                // Deleted since: look for the next one.
                None => continue,
            }
        } else {
            found.header.revision
        };
        wait_delete(service, &before.key, from).await?;
    }
}

/// Waits for our turn (see [`wait_deletes`]) unless the client goes away first, then
/// answers the header of a read that found our key still there, or `None` if our lease
/// ended meanwhile and took the key: the turn came, but for nobody.
pub async fn wait_turn(
    service: &NodeService,
    prefix: &[u8],
    key: &[u8],
    revision: i64,
    spans_shards: bool,
    gone: &mut ClientGone,
) -> Result<Option<ResponseHeader>, RecipeError> {
    tokio::select! {
        waited = wait_deletes(service, prefix, key, revision, spans_shards) => waited?,
        () = gone.wait() => return Err(RecipeError::ClientGone),
    }
    let now = current(service, key, revision).await?;
    Ok(now.map(|(header, _)| header))
}

/// Waits for a deletion of `key` at or after `revision` (etcd's `waitDelete`).
async fn wait_delete(service: &NodeService, key: &[u8], revision: i64) -> Result<(), RecipeError> {
    let mut watch = Watch::open(service, key.to_vec(), Vec::new(), revision).await?;
    loop {
        let resp = watch.next().await?;
        if resp.events.iter().any(|e| e.kind == EventType::Delete) {
            return Ok(());
        }
    }
}

/// One watch on the node's own watch-stream path (the one gRPC and native watch streams
/// are served by); ends with the value.
pub struct Watch {
    /// Kept so the stream stays open: dropping it ends the stream.
    _requests: mpsc::Sender<WatchRequest>,
    responses: mpsc::Receiver<NativeResponse>,
    _serving: AbortOnDrop,
}

impl Watch {
    /// Watches `[key, range_end)` from `start_revision` (etcd's conventions).
    pub async fn open(
        service: &NodeService,
        key: Vec<u8>,
        range_end: Vec<u8>,
        start_revision: i64,
    ) -> Result<Watch, RecipeError> {
        let (requests, requests_rx) = mpsc::channel(1);
        let (responses_tx, responses) = mpsc::channel(WATCH_RESPONSES_QUEUED_MAX);
        let service = service.clone();
        let io = crate::transport::WatchStreamIo {
            requests: requests_rx,
            responses: responses_tx,
            caller: crate::auth::Caller::Node,
        };
        let serving =
            AbortOnDrop(tokio::spawn(async move { service.serve_watch_stream(io).await }));
        let create = WatchCreateRequest { key, range_end, start_revision, ..Default::default() };
        requests.send(WatchRequest::Create(create)).await.map_err(|_| RecipeError::LostWatcher)?;
        Ok(Watch { _requests: requests, responses, _serving: serving })
    }

    /// The next response with events or progress; a cancel is an error (a compacted start
    /// revision is etcd's "compacted"), the stream's end [`RecipeError::LostWatcher`].
    pub async fn next(&mut self) -> Result<WatchResponse, RecipeError> {
        loop {
            let resp = match self.responses.recv().await {
                Some(NativeResponse::Watch(w)) => w,
                Some(NativeResponse::Error(e)) => return Err(RecipeError::Store(e)),
                Some(other) => return Err(RecipeError::Unexpected(unexpected(&other))),
                None => return Err(RecipeError::LostWatcher),
            };
            if resp.canceled {
                return Err(match resp.compact_revision {
                    0 => RecipeError::WatchCanceled { reason: resp.cancel_reason },
                    compact_revision => {
                        RecipeError::Store(AtollError::Compacted { compact_revision })
                    }
                });
            }
            if !resp.created {
                return Ok(resp);
            }
        }
    }
}

/// Resolves once the call that started a recipe is gone (see [`detached`]).
pub struct ClientGone(oneshot::Receiver<()>);

impl ClientGone {
    /// Waits until the client went away; never resolves while it waits for the answer.
    pub async fn wait(&mut self) {
        // The sender is never used: only its drop, with the call's future, resolves this.
        let _ = (&mut self.0).await;
    }

    /// Whether the client went away, without waiting.
    pub fn has_gone(&mut self) -> bool {
        matches!(self.0.try_recv(), Err(oneshot::error::TryRecvError::Closed))
    }
}

/// Runs `recipe`, a call that may wait long (Lock, Campaign), under one of the gateway's
/// permits for such calls, on a task of its own, and returns its answer. tonic drops a
/// call's future when the client cancels it or its deadline passes; the recipe then sees
/// [`ClientGone`] resolve instead of being stopped mid-way, so it can still clean up (delete
/// the key it queued, as etcd's `Mutex.Lock` does with the client's background context).
pub async fn detached<T, F, Fut>(gateway: &Gateway, recipe: F) -> Result<Response<T>, Status>
where
    F: FnOnce(NodeService, ClientGone) -> Fut + Send + 'static,
    Fut: Future<Output = Result<T, RecipeError>> + Send + 'static,
    T: Send + 'static,
{
    let permit = gateway.recipe_permit()?;
    let service = gateway.service.clone();
    let (_call_alive, gone) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let _permit = permit;
        recipe(service, ClientGone(gone)).await
    });
    match task.await {
        Ok(answer) => answer.map(Response::new).map_err(RecipeError::into_status),
        Err(e) => Err(Status::internal(format!("atoll: a lock or election task failed: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use atoll_proto::ResponseOp;

    #[test]
    fn ownership_keys_are_gos_hex_of_the_lease() {
        let prefix = key_prefix(b"my-lock");
        assert_eq!(prefix, b"my-lock/");
        assert_eq!(owner_key(&prefix, 0x2040_a251_1c70_910b), b"my-lock/2040a2511c70910b");
        assert_eq!(owner_key(&prefix, 0x1f), b"my-lock/1f", "no padding, lower case");
        assert_eq!(owner_key(&prefix, -0x1f), b"my-lock/-1f", "Go prints a sign, not bits");
        assert_eq!(owner_key(b"/", i64::MIN), b"/-8000000000000000");
    }

    #[test]
    fn the_queries_are_clientv3s() {
        let first = first_created(b"n/");
        assert_eq!((first.key.as_slice(), first.range_end.as_slice()), (&b"n/"[..], &b"n0"[..]));
        assert_eq!(
            (first.limit, first.sort_order, first.sort_target),
            (1, SortOrder::Ascend, SortTarget::Create)
        );
        let last = last_created_up_to(b"n/", 41);
        assert_eq!(
            (last.limit, last.sort_order, last.sort_target),
            (1, SortOrder::Descend, SortTarget::Create)
        );
        assert_eq!((last.range_end.as_slice(), last.max_create_revision), (&b"n0"[..], 41));
        let tie = tie_below(b"n/", b"n/7", 42);
        assert_eq!((tie.key.as_slice(), tie.range_end.as_slice()), (&b"n/"[..], &b"n/7"[..]));
        assert_eq!((tie.min_create_revision, tie.max_create_revision), (42, 42));
    }

    #[test]
    fn the_own_revision_is_the_txns_or_the_existing_keys() {
        let created = TxnResponse {
            header: ResponseHeader { revision: 9, ..Default::default() },
            succeeded: true,
            responses: vec![],
        };
        assert_eq!(own_revision(&created).expect("created"), 9);
        let kv = KeyValue { key: b"n/1".to_vec(), create_revision: 4, ..Default::default() };
        let existing = TxnResponse {
            header: ResponseHeader { revision: 9, ..Default::default() },
            succeeded: false,
            responses: vec![ResponseOp::Range(RangeResponse {
                kvs: vec![kv],
                ..Default::default()
            })],
        };
        assert_eq!(own_revision(&existing).expect("existing"), 4);
        let missing = TxnResponse { succeeded: false, ..Default::default() };
        assert!(matches!(own_revision(&missing), Err(RecipeError::Unexpected(_))));
    }

    #[test]
    fn errors_are_unknown_with_etcds_text() {
        for (err, text) in [
            (RecipeError::NotLeader, "election: not leader"),
            (RecipeError::NoLeader, "election: no leader"),
            (RecipeError::MutexSessionExpired, "mutex: session is expired"),
            (RecipeError::MissingLeaderKey, "\"leader\" field must be provided"),
            (
                RecipeError::Store(AtollError::LeaseNotFound),
                "etcdserver: requested lease not found",
            ),
        ] {
            let status = err.into_status();
            assert_eq!((status.code(), status.message()), (Code::Unknown, text));
        }
    }
}
