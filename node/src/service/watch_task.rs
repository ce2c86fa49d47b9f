//! One watch's task: hands its watcher's steps to the stream's bounded response queue,
//! reports to the stream when it is synced for a progress round or has ended, and sends
//! periodic progress notifications while idle.

use super::merged_watch::MergedWatcher;
use atoll_proto::{NativeResponse, ResponseHeader, WatchResponse};
use atoll_shard::ShardError;
use atoll_shard::actors::PublishedState;
use atoll_shard::watch::{WatchStep, Watcher};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

/// What a watcher task tells its stream.
pub(super) enum Report {
    /// Every event of watcher `id` up to `revision` is in the response queue; sent once per
    /// progress round `epoch`.
    Synced {
        /// The watch.
        id: i64,
        /// The progress round.
        epoch: u64,
        /// Every event up to it is queued.
        revision: i64,
    },
    /// The watcher ended by itself (compaction or a failure) and sent its last response.
    Ended {
        /// The watch.
        id: i64,
    },
}

/// What a watcher task needs besides its watcher.
pub(super) struct WatcherTask {
    pub(super) id: i64,
    pub(super) responses: mpsc::Sender<NativeResponse>,
    pub(super) reports: mpsc::Sender<Report>,
    pub(super) epoch: watch::Receiver<u64>,
    pub(super) progress_every: Option<Duration>,
    pub(super) header: ResponseHeader,
    pub(super) published: Arc<PublishedState>,
}

/// A watch on one shard or merged over several.
pub(super) enum AnyWatcher {
    /// One shard.
    One(Watcher),
    /// Several shards, merged.
    Merged(MergedWatcher),
}

impl AnyWatcher {
    pub(super) async fn next_step(&mut self) -> Result<WatchStep, ShardError> {
        match self {
            AnyWatcher::One(w) => w.next_step().await,
            AnyWatcher::Merged(w) => w.next_step().await,
        }
    }

    pub(super) async fn changed(&self) {
        match self {
            AnyWatcher::One(w) => w.changed().await,
            AnyWatcher::Merged(w) => w.changed().await,
        }
    }
}

impl WatcherTask {
    /// Hands the watcher's events to the stream until the watch ends or is aborted.
    pub(super) async fn run(mut self, mut watcher: AnyWatcher) {
        // Progress rounds begun before this watcher existed do not wait for it.
        let mut reported = *self.epoch.borrow_and_update();
        let mut sent_since_tick = false;
        let mut next_tick = self.progress_every.map(|every| Instant::now() + every);
        loop {
            let step = match watcher.next_step().await {
                Ok(step) => step,
                Err(e) => {
                    let reason = e.to_wire().to_string();
                    tracing::warn!(error = %reason, "watch failed");
                    let response =
                        WatchResponse { canceled: true, cancel_reason: reason, ..self.response(0) };
                    self.end(response).await;
                    return;
                }
            };
            match step {
                WatchStep::Events { events, revision } => {
                    if !self.send(WatchResponse { events, ..self.response(revision) }).await {
                        return;
                    }
                    sent_since_tick = true;
                }
                WatchStep::Compacted { compact_revision } => {
                    let response =
                        WatchResponse { canceled: true, compact_revision, ..self.response(0) };
                    self.end(response).await;
                    return;
                }
                WatchStep::Synced { revision } => {
                    let epoch = *self.epoch.borrow_and_update();
                    if epoch > reported {
                        reported = epoch;
                        let report = Report::Synced { id: self.id, epoch, revision };
                        if self.reports.send(report).await.is_err() {
                            return;
                        }
                    }
                    if let (Some(every), Some(at)) = (self.progress_every, next_tick)
                        && Instant::now() >= at
                    {
                        // etcd notifies only watchers that sent nothing during the interval.
                        if !sent_since_tick && !self.send(self.response(revision)).await {
                            return;
                        }
                        sent_since_tick = false;
                        next_tick = Some(Instant::now() + every);
                    }
                    let tick = async {
                        match next_tick {
                            Some(at) => tokio::time::sleep_until(at).await,
                            None => std::future::pending().await,
                        }
                    };
                    tokio::select! {
                        () = watcher.changed() => {}
                        changed = self.epoch.changed() => if changed.is_err() { return },
                        () = tick => {}
                    }
                }
            }
        }
    }

    /// A response of this watch with a header at `revision`.
    fn response(&self, revision: i64) -> WatchResponse {
        let mut header = self.header.clone();
        header.revision = revision.max(header.revision);
        header.raft_term = self.published.term();
        WatchResponse { header, watch_id: self.id, ..Default::default() }
    }

    async fn send(&self, response: WatchResponse) -> bool {
        self.responses.send(NativeResponse::Watch(response)).await.is_ok()
    }

    /// Sends the watch's last response, then tells the stream it ended.
    async fn end(&self, response: WatchResponse) {
        if self.send(response).await {
            let _ = self.reports.send(Report::Ended { id: self.id }).await;
        }
    }
}
