//! Watch streams: many watches on one client stream, each served by its own task from its
//! shard's watch hub, all writing into the stream's bounded response queue.
//!
//! - Fairness: every response carries a bounded batch of events, and tokio's channel serves
//!   waiting senders first come, first served, so a watcher with a long history takes turns
//!   with the others instead of starving them (etcd #16839, #17529). A client that stops
//!   reading stalls only its own stream; its watchers then lag in their hubs, which drop
//!   their buffers, and catch up from storage later.
//! - Progress (etcd ≥ 3.4.31, the fix of etcd #15220): a progress request is answered once
//!   every watcher of the stream has handed all its events up to some revision to the
//!   response queue and reported that revision; the answer carries the smallest, so every
//!   event the stream sends after it has a higher revision. A watcher that is catching up
//!   reports only once it has caught up, as etcd defers the notification until all its
//!   watchers are synced.
//! - A watch whose range spans shards merges one watcher per shard in revision order with
//!   closed revisions (`merged_watch.rs`, decision D13).

use super::merged_watch::{Closer, MergedWatcher};
use super::watch_task::{AnyWatcher, Report, WatcherTask};
use super::{NodeService, Origin};
use crate::transport::WatchStreamIo;
use atoll_proto::watch::INVALID_WATCH_ID;
use atoll_proto::{
    AtollError, NativeResponse, ResponseHeader, WatchCreateRequest, WatchRequest, WatchResponse,
};
use atoll_proto::{CloseRequest, ShardId, WriteOp};
use atoll_shard::actors::PublishedState;
use atoll_shard::watch::WatchSpec;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::task::{AbortHandle, JoinSet};

/// Watches one stream may hold; a create beyond it is refused.
pub const WATCHERS_PER_STREAM_MAX: usize = 4_096;
/// Reports (synced for a progress round, ended) the stream's watchers queue for the stream.
const WATCH_REPORTS_QUEUED_MAX: usize = 256;
/// etcd's default `--experimental-watch-progress-notify-interval`.
pub const WATCH_PROGRESS_INTERVAL_DEFAULT: Duration = Duration::from_secs(600);
/// Attempts to close a shard's revisions for a blocked merged watch before giving up (the
/// watch then waits for the shard's next write).
const CLOSE_ATTEMPTS_MAX: u32 = 10;
/// Pause after a failed close attempt, times the attempt number.
const CLOSE_RETRY_PAUSE: Duration = Duration::from_millis(100);
/// etcd's `mvcc.ErrWatcherDuplicateID`.
const DUPLICATE_WATCH_ID: &str = "mvcc: duplicate watch ID provided on the WatchStream";

/// A progress request being answered.
struct Round {
    epoch: u64,
    /// Watchers that have not reported yet.
    waiting: HashSet<i64>,
    /// The smallest revision reported so far.
    revision: i64,
}

/// One watch stream's state, owned by its task.
struct StreamState {
    service: NodeService,
    responses: mpsc::Sender<NativeResponse>,
    watchers: HashMap<i64, AbortHandle>,
    tasks: JoinSet<()>,
    next_auto_id: i64,
    epoch: watch::Sender<u64>,
    round: Option<Round>,
    reports: mpsc::Sender<Report>,
    caller: crate::auth::Caller,
}

impl NodeService {
    /// Serves one watch stream until the client ends its requests or goes away; dropping
    /// the future ends every watch of the stream.
    pub async fn serve_watch_stream(&self, io: WatchStreamIo) {
        let WatchStreamIo { mut requests, responses, caller } = io;
        let (reports, mut reports_rx) = mpsc::channel(WATCH_REPORTS_QUEUED_MAX);
        let mut stream = StreamState {
            service: self.clone(),
            responses,
            watchers: HashMap::new(),
            tasks: JoinSet::new(),
            next_auto_id: 0,
            epoch: watch::Sender::new(0),
            round: None,
            reports,
            caller,
        };
        loop {
            let open = tokio::select! {
                req = requests.recv() => match req {
                    Some(req) => stream.on_request(req).await,
                    None => false,
                },
                Some(report) = reports_rx.recv() => stream.on_report(report).await,
                Some(_) = stream.tasks.join_next(), if !stream.tasks.is_empty() => true,
            };
            if !open {
                break;
            }
        }
    }

    /// Opens a watcher on each shard `req` covers, merged when there are several; the
    /// error is a cancel reason.
    async fn open_watcher(
        &self,
        req: &WatchCreateRequest,
    ) -> Result<(AnyWatcher, i64, Arc<PublishedState>), String> {
        let shards = &self.inner.shards;
        let mut parts: Vec<(ShardId, WatchSpec)> = shards
            .spans(&req.key, &req.range_end)
            .into_iter()
            .map(|span| {
                let spec = WatchSpec {
                    key: span.key,
                    range_end: span.range_end,
                    ..WatchSpec::from_request(req)
                };
                (span.shard.id, spec)
            })
            .collect();
        if parts.is_empty() {
            let (first, _) = shards.first().ok_or("no shard to watch")?;
            parts.push((first, WatchSpec::from_request(req)));
        }
        let mut stores = Vec::with_capacity(parts.len());
        for (shard, spec) in parts {
            stores.push((
                shard,
                shards.handle(shard).map_err(|e| e.to_string())?.store.clone(),
                spec,
            ));
        }
        let published =
            Arc::clone(&shards.handle(stores[0].0).map_err(|e| e.to_string())?.published);
        let start = req.start_revision;
        // Joining may read a shard's revision from storage once: off the async workers.
        let (mut watchers, revision) = tokio::task::spawn_blocking(move || {
            let mut watchers = Vec::with_capacity(stores.len());
            let mut revision = 0;
            for (shard, store, spec) in stores {
                let watcher = store.watch(spec, start).map_err(|e| e.to_wire().to_string())?;
                revision = revision.max(store.watch_hub().published_revision().unwrap_or(0));
                watchers.push((shard, watcher));
            }
            Ok::<_, String>((watchers, revision))
        })
        .await
        .map_err(|_| AtollError::Stopping.to_string())??;
        let watcher = match watchers.pop() {
            Some((_, one)) if watchers.is_empty() => AnyWatcher::One(one),
            Some(last) => {
                watchers.push(last);
                AnyWatcher::Merged(MergedWatcher::new(watchers, self.closer()))
            }
            None => return Err("no shard to watch".into()),
        };
        Ok((watcher, revision, published))
    }

    /// How merged watches ask an idle shard to close revisions: one `Close` proposal per
    /// shard at a time through its leader (forwarded like a write); a request at or below
    /// one in flight is dropped, since that one covers it.
    fn closer(&self) -> Closer {
        let service = self.clone();
        Arc::new(move |shard: ShardId, revision: i64| {
            {
                let mut closing = service.inner.closing.lock().unwrap_or_else(|e| e.into_inner());
                if closing.get(&shard).is_some_and(|r| *r >= revision) {
                    return;
                }
                closing.insert(shard, revision);
            }
            let service = service.clone();
            tokio::spawn(async move {
                // A merged watch blocked on this shard waits for the close: retried through
                // elections (each attempt already waits for a leader), within a bound.
                for attempt in 1..=CLOSE_ATTEMPTS_MAX {
                    let op = WriteOp::Close(CloseRequest { shard, revision });
                    match service.write_on(shard, op, Origin::Client).await {
                        Ok(_) => break,
                        Err(e) => {
                            tracing::debug!(shard_id = shard.0, attempt, error = %e, "closing revisions failed");
                            tokio::time::sleep(CLOSE_RETRY_PAUSE * attempt).await;
                        }
                    }
                }
                let mut closing = service.inner.closing.lock().unwrap_or_else(|e| e.into_inner());
                if closing.get(&shard) == Some(&revision) {
                    closing.remove(&shard);
                }
            });
        })
    }

    /// The newest revision among the local shards (the answer to a progress request on a
    /// stream without watches).
    async fn newest_local_revision(&self) -> i64 {
        let stores: Vec<_> = self.inner.shards.handles().map(|(_, h)| h.store.clone()).collect();
        let read = tokio::task::spawn_blocking(move || {
            stores
                .iter()
                .map(|s| match s.watch_hub().published_revision() {
                    Some(r) => r,
                    None => s.load_apply_state().map_or(0, |st| st.revision),
                })
                .max()
                .unwrap_or(0)
        });
        read.await.unwrap_or(0)
    }

    fn watch_header(&self, revision: i64, term: u64) -> ResponseHeader {
        let mut header = ResponseHeader { revision, ..Default::default() };
        self.fill(&mut header, term);
        header
    }
}

impl StreamState {
    /// Serves one request; `false` when the client is gone.
    async fn on_request(&mut self, req: WatchRequest) -> bool {
        match req {
            WatchRequest::Create(create) => self.on_create(create).await,
            WatchRequest::Cancel(cancel) => {
                let Some(task) = self.watchers.remove(&cancel.watch_id) else {
                    // etcd answers nothing for an unknown watch.
                    return true;
                };
                task.abort();
                let header = self.service.watch_header(0, 0);
                let response = WatchResponse {
                    header,
                    watch_id: cancel.watch_id,
                    canceled: true,
                    ..Default::default()
                };
                self.send(response).await && self.forget(cancel.watch_id).await
            }
            WatchRequest::Progress(_) => self.on_progress().await,
        }
    }

    async fn on_create(&mut self, req: WatchCreateRequest) -> bool {
        let read = atoll_proto::auth::PermissionType::Read;
        let allowed =
            self.service.authorize_range(&self.caller, &req.key, &req.range_end, read).await;
        if let Err(e) = allowed {
            // etcd's cancel reason is the gRPC status's text (`isWatchPermitted`).
            let reason = format!("rpc error: code = {} desc = {e}", grpc_code_name(&e));
            return self.refuse(req.watch_id, reason).await;
        }
        let id = match self.choose_id(req.watch_id) {
            Ok(id) => id,
            Err(reason) => return self.refuse(req.watch_id, reason).await,
        };
        let (watcher, revision, published) = match self.service.open_watcher(&req).await {
            Ok(opened) => opened,
            Err(reason) => return self.refuse(id, reason).await,
        };
        let header = self.service.watch_header(revision, published.term());
        // The created answer goes out before the watcher can send anything.
        let created = WatchResponse {
            header: header.clone(),
            watch_id: id,
            created: true,
            ..Default::default()
        };
        if !self.send(created).await {
            return false;
        }
        let interval = self.service.watch_progress_interval();
        let task = WatcherTask {
            id,
            responses: self.responses.clone(),
            reports: self.reports.clone(),
            epoch: self.epoch.subscribe(),
            progress_every: req.progress_notify.then_some(interval),
            fragment_bytes: req.fragment.then_some(self.service.inner.limits.max_request_bytes),
            header,
            published,
        };
        let abort = self.tasks.spawn(task.run(watcher));
        self.watchers.insert(id, abort);
        true
    }

    /// The watch ID for a create: the client's, or the lowest free one (etcd's
    /// `AutoWatchID` rule); the error is a cancel reason.
    fn choose_id(&mut self, asked: i64) -> Result<i64, String> {
        if self.watchers.len() >= WATCHERS_PER_STREAM_MAX {
            return Err(format!(
                "atoll: this stream already has {WATCHERS_PER_STREAM_MAX} watches; open another stream"
            ));
        }
        if asked < 0 {
            return Err(format!(
                "atoll: watch ID {asked} is negative; use 0 to let the server choose"
            ));
        }
        if asked != 0 {
            return if self.watchers.contains_key(&asked) {
                Err(DUPLICATE_WATCH_ID.into())
            } else {
                Ok(asked)
            };
        }
        while self.watchers.contains_key(&self.next_auto_id) {
            self.next_auto_id += 1;
        }
        let id = self.next_auto_id;
        self.next_auto_id += 1;
        Ok(id)
    }

    /// Answers a create that did not start a watch: created and canceled at once, as etcd.
    async fn refuse(&mut self, id: i64, reason: String) -> bool {
        let header = self.service.watch_header(0, 0);
        let response = WatchResponse {
            header,
            watch_id: id,
            created: true,
            canceled: true,
            cancel_reason: reason,
            ..Default::default()
        };
        self.send(response).await
    }

    /// Starts a progress round; a round already under way is replaced (its answer would be
    /// no fresher than this one's).
    async fn on_progress(&mut self) -> bool {
        let epoch = *self.epoch.borrow() + 1;
        self.epoch.send_replace(epoch);
        if self.watchers.is_empty() {
            self.round = None;
            let revision = self.service.newest_local_revision().await;
            return self.send_progress(revision).await;
        }
        let waiting = self.watchers.keys().copied().collect();
        self.round = Some(Round { epoch, waiting, revision: i64::MAX });
        true
    }

    async fn on_report(&mut self, report: Report) -> bool {
        match report {
            Report::Synced { id, epoch, revision } => {
                if let Some(round) = self.round.as_mut().filter(|r| r.epoch == epoch)
                    && round.waiting.remove(&id)
                {
                    round.revision = round.revision.min(revision);
                }
                self.finish_round().await
            }
            Report::Ended { id } => {
                self.watchers.remove(&id);
                self.forget(id).await
            }
        }
    }

    /// Drops watcher `id` from the progress round under way.
    async fn forget(&mut self, id: i64) -> bool {
        if let Some(round) = self.round.as_mut() {
            round.waiting.remove(&id);
        }
        self.finish_round().await
    }

    /// Answers the progress round once no watcher is left to report.
    async fn finish_round(&mut self) -> bool {
        let Some(round) = self.round.take_if(|r| r.waiting.is_empty()) else {
            return true;
        };
        let revision = if round.revision == i64::MAX {
            self.service.newest_local_revision().await
        } else {
            round.revision
        };
        self.send_progress(revision).await
    }

    async fn send_progress(&mut self, revision: i64) -> bool {
        let header = self.service.watch_header(revision, 0);
        let response = WatchResponse { header, watch_id: INVALID_WATCH_ID, ..Default::default() };
        self.send(response).await
    }

    async fn send(&self, response: WatchResponse) -> bool {
        self.responses.send(NativeResponse::Watch(response)).await.is_ok()
    }
}

/// The name Go's gRPC gives the code of `e`, as it appears in a status's text.
fn grpc_code_name(e: &atoll_proto::AtollError) -> &'static str {
    use atoll_proto::GrpcCode;
    match e.grpc_code() {
        GrpcCode::InvalidArgument => "InvalidArgument",
        GrpcCode::DeadlineExceeded => "DeadlineExceeded",
        GrpcCode::NotFound => "NotFound",
        GrpcCode::AlreadyExists => "AlreadyExists",
        GrpcCode::PermissionDenied => "PermissionDenied",
        GrpcCode::ResourceExhausted => "ResourceExhausted",
        GrpcCode::FailedPrecondition => "FailedPrecondition",
        GrpcCode::OutOfRange => "OutOfRange",
        GrpcCode::Unimplemented => "Unimplemented",
        GrpcCode::Internal => "Internal",
        GrpcCode::Unavailable => "Unavailable",
        GrpcCode::DataLoss => "DataLoss",
        GrpcCode::Unauthenticated => "Unauthenticated",
    }
}
