//! One watch's task: hands its watcher's steps to the stream's bounded response queue,
//! reports to the stream when it is synced for a progress round or has ended, and sends
//! periodic progress notifications while idle.

use super::merged_watch::MergedWatcher;
use atoll_proto::{Event, NativeResponse, ResponseHeader, WatchResponse};
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
    /// The client asked for `fragment`: responses whose events exceed this many bytes are
    /// split (etcd splits at `--max-request-bytes`).
    pub(super) fragment_bytes: Option<usize>,
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
                    if !self.send_events(events, revision).await {
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

    /// Sends one step's events: in one response, as etcd does without `fragment` (a step
    /// holds whole revisions), or, when the client asked for `fragment`, in responses of at
    /// most `fragment_bytes` of events each (at least one event), every one but the last
    /// marked `fragment`, for the client to join.
    async fn send_events(&self, events: Vec<Event>, revision: i64) -> bool {
        let Some(limit) = self.fragment_bytes else {
            return self.send(WatchResponse { events, ..self.response(revision) }).await;
        };
        let mut pieces = fragments(events, limit).into_iter().peekable();
        while let Some(events) = pieces.next() {
            let fragment = pieces.peek().is_some();
            let response = WatchResponse { events, fragment, ..self.response(revision) };
            if !self.send(response).await {
                return false;
            }
        }
        true
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

/// Splits `events` into runs of at most `limit` bytes (as the wire counts keys and values),
/// each holding at least one event.
fn fragments(events: Vec<Event>, limit: usize) -> Vec<Vec<Event>> {
    let mut out: Vec<Vec<Event>> = Vec::new();
    let mut bytes = 0;
    for event in events {
        let size = atoll_shard::watch::event_bytes(&event);
        match out.last_mut() {
            Some(run) if bytes + size <= limit => run.push(event),
            _ => {
                bytes = 0;
                out.push(vec![event]);
            }
        }
        bytes += size;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use atoll_proto::{EventType, KeyValue};

    fn event(key: &str, value_bytes: usize) -> Event {
        let kv = KeyValue { key: key.into(), value: vec![b'v'; value_bytes], ..Default::default() };
        Event { kind: EventType::Put, kv, prev_kv: None }
    }

    #[test]
    fn fragments_hold_at_most_the_limit_and_at_least_one_event() {
        let sizes = |runs: &[Vec<Event>]| runs.iter().map(Vec::len).collect::<Vec<_>>();
        let events = vec![event("a", 400), event("b", 400), event("c", 2_000), event("d", 10)];
        let runs = fragments(events.clone(), 1_000);
        // a+b fit in 1,000 bytes with overheads; c alone is over the limit; d follows it.
        assert_eq!(sizes(&runs), vec![2, 1, 1]);
        assert_eq!(runs.concat(), events);
        assert_eq!(sizes(&fragments(events.clone(), usize::MAX)), vec![4]);
        assert!(fragments(Vec::new(), 10).is_empty());
    }
}
