//! The watchers of the watch scenarios: watch streams opened over a pool of connections, each
//! read by its own task, which times every event of a measured watcher against the
//! [`WriteLog`] (from the start of its write to its arrival here) and tallies what arrived.
//!
//! Each stream is read by a pump task that forwards responses into a one-slot queue, and a
//! handler that takes them from there: the handler can then wait for the scenario's phase to
//! change without cancelling a read half-way through a frame, and a handler that stops taking
//! responses stops the stream being read, so the server sees a slow or stalled reader.

use super::tally::WatcherTally;
use super::writer::WriteLog;
use crate::connect::ClientPool;
use crate::recorder::latency_histogram;
use crate::watch_stream::{WatchRx, open_watch};
use anyhow::{Context as _, bail};
use atoll_proto::watch::{WatchCreateRequest, WatchResponse};
use hdrhistogram::Histogram;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

/// How often the end of the drain is polled for.
const DRAIN_POLL: Duration = Duration::from_millis(10);

/// How a stream's handler reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pace {
    /// Every response as soon as it arrives.
    Fast,
    /// Pauses this long after each response of a slow watcher (a consumer that does work per
    /// event), never after a measured watcher's.
    SlowWatchers(Duration),
    /// Reads the answers to its creates, then nothing more (a consumer that hung).
    Stalled,
}

/// One watch stream to open.
#[derive(Clone, Copy, Debug)]
pub struct StreamPlan {
    /// Its name in the results (`fast-own`, `fan-out`...).
    pub label: &'static str,
    /// Which connection of the pool carries it.
    pub connection: usize,
    /// Measured watchers (IDs `1..=measured`): every event timed and checked.
    pub measured: usize,
    /// Slow watchers after them, with `prev_kv`: counted, not timed.
    pub slow: usize,
    /// Whether the measured watchers ask for `prev_kv` too.
    pub measured_prev_kv: bool,
    /// How it is read.
    pub pace: Pace,
}

/// What one stream's watchers received.
#[derive(Debug)]
pub struct StreamOutcome {
    /// The plan's label.
    pub label: &'static str,
    /// One tally per measured watcher.
    pub tallies: Vec<WatcherTally>,
    /// Delivery latency of the measured watchers' first copies, µs.
    pub latency: Histogram<u64>,
    /// Events the slow watchers received.
    pub slow_events: u64,
    /// Why the stream ended early, if it did.
    pub error: Option<String>,
}

/// Where the scenario is: writing, drained up to a revision, or over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Running,
    Final(i64),
    Stop,
}

struct Stream {
    plan: StreamPlan,
    handler: JoinHandle<anyhow::Result<StreamOutcome>>,
    pump: JoinHandle<()>,
    // Kept open: dropping it would end the client's side of the stream.
    _tx: crate::watch_stream::WatchTx,
}

/// Every watch stream of one phase of a scenario.
pub struct WatchSet {
    streams: Vec<Stream>,
    phase: watch::Sender<Phase>,
    created: Arc<AtomicUsize>,
    watchers: usize,
}

impl WatchSet {
    /// Opens every stream of `plans` over `pool`, watching the prefix `log` writes.
    pub async fn open(
        pool: &ClientPool,
        plans: &[StreamPlan],
        log: &Arc<WriteLog>,
    ) -> anyhow::Result<WatchSet> {
        let (phase, _) = watch::channel(Phase::Running);
        let created = Arc::new(AtomicUsize::new(0));
        let mut set = WatchSet { streams: Vec::new(), phase, created, watchers: 0 };
        for (index, plan) in plans.iter().copied().enumerate() {
            let total = plan.measured + plan.slow;
            if total == 0 {
                continue;
            }
            let client = pool.client(plan.connection);
            let (mut tx, rx) = open_watch(client, create(log, &plan, 1))
                .await
                .with_context(|| format!("opening watch stream {} ({})", index + 1, plan.label))?;
            let (queue_tx, queue) = mpsc::channel(1);
            let pump = tokio::spawn(pump(rx, queue_tx));
            let handler = tokio::spawn(handle(
                plan,
                queue,
                Arc::clone(log),
                Arc::clone(&set.created),
                set.phase.subscribe(),
            ));
            for id in 2..=total {
                tx.create(create(log, &plan, id)).await?;
            }
            set.watchers += total;
            set.streams.push(Stream { plan, handler, pump, _tx: tx });
        }
        Ok(set)
    }

    /// Waits until every watch is created, so the writer starts after all of them.
    pub async fn wait_created(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        while self.created.load(Ordering::Relaxed) < self.watchers {
            if let Some(s) = self.streams.iter().find(|s| s.handler.is_finished()) {
                bail!("watch stream {:?} ended while its watches were created", s.plan.label);
            }
            if Instant::now() >= deadline {
                bail!(
                    "only {} of {} watches were created within {timeout:?}",
                    self.created.load(Ordering::Relaxed),
                    self.watchers
                );
            }
            tokio::time::sleep(DRAIN_POLL).await;
        }
        Ok(())
    }

    /// Waits up to `drain` for every read stream's measured watchers to receive
    /// `final_revision`, then stops every stream and returns what each received.
    pub async fn finish(
        self,
        final_revision: i64,
        drain: Duration,
    ) -> anyhow::Result<Vec<StreamOutcome>> {
        self.phase.send_replace(Phase::Final(final_revision));
        let deadline = Instant::now() + drain;
        let read = |s: &&Stream| s.plan.pace != Pace::Stalled;
        while Instant::now() < deadline
            && self.streams.iter().filter(read).any(|s| !s.handler.is_finished())
        {
            tokio::time::sleep(DRAIN_POLL).await;
        }
        self.phase.send_replace(Phase::Stop);
        let mut outcomes = Vec::with_capacity(self.streams.len());
        for stream in self.streams {
            stream.pump.abort();
            outcomes.push(stream.handler.await.context("a watch stream's reader failed")??);
        }
        Ok(outcomes)
    }
}

fn create(log: &WriteLog, plan: &StreamPlan, id: usize) -> WatchCreateRequest {
    let (key, range_end) = log.keys().prefix_range();
    WatchCreateRequest {
        key,
        range_end,
        prev_kv: id > plan.measured || plan.measured_prev_kv,
        watch_id: id as i64,
        ..WatchCreateRequest::default()
    }
}

/// Reads the stream into `queue` until it ends, fails, or nobody takes from the queue.
async fn pump(mut rx: WatchRx, queue: mpsc::Sender<Result<WatchResponse, String>>) {
    loop {
        let item = match rx.recv().await {
            Ok(Some(response)) => Ok(response),
            Ok(None) => return,
            Err(e) => Err(e.to_string()),
        };
        let failed = item.is_err();
        if queue.send(item).await.is_err() || failed {
            return;
        }
    }
}

/// Takes the stream's responses until its measured watchers have everything up to the final
/// revision (or the scenario stops), tallying and timing their events.
async fn handle(
    plan: StreamPlan,
    mut queue: mpsc::Receiver<Result<WatchResponse, String>>,
    log: Arc<WriteLog>,
    created: Arc<AtomicUsize>,
    mut phase: watch::Receiver<Phase>,
) -> anyhow::Result<StreamOutcome> {
    let mut out = StreamOutcome {
        label: plan.label,
        tallies: (0..plan.measured).map(|_| WatcherTally::new(log.planned())).collect(),
        latency: latency_histogram()?,
        slow_events: 0,
        error: None,
    };
    let total = plan.measured + plan.slow;
    let mut mine_created = 0;
    loop {
        let now = *phase.borrow_and_update();
        let stalled = plan.pace == Pace::Stalled && mine_created == total;
        match now {
            Phase::Stop => break,
            Phase::Final(last) if !stalled && all_reached(&out.tallies, last) => break,
            _ => {}
        }
        tokio::select! {
            item = queue.recv(), if !stalled => match item {
                Some(Ok(response)) => {
                    let slow = on_response(&mut out, &plan, &log, &response);
                    if response.created {
                        mine_created += 1;
                        created.fetch_add(1, Ordering::Relaxed);
                    }
                    if let (true, Pace::SlowWatchers(pause)) = (slow, plan.pace) {
                        tokio::time::sleep(pause).await;
                    }
                }
                Some(Err(e)) => {
                    out.error = Some(e);
                    break;
                }
                None => {
                    out.error = Some("the server ended the stream".into());
                    break;
                }
            },
            changed = phase.changed() => if changed.is_err() { break },
        }
    }
    Ok(out)
}

fn all_reached(tallies: &[WatcherTally], revision: i64) -> bool {
    tallies.iter().all(|t| t.canceled || t.last_revision >= revision)
}

/// Tallies one response; true if it belongs to a slow watcher.
fn on_response(
    out: &mut StreamOutcome,
    plan: &StreamPlan,
    log: &WriteLog,
    response: &WatchResponse,
) -> bool {
    let Some(index) = usize::try_from(response.watch_id - 1).ok().filter(|&i| i < plan.measured)
    else {
        out.slow_events += response.events.len() as u64;
        return true;
    };
    let tally = &mut out.tallies[index];
    tally.canceled |= response.canceled;
    let arrived = Instant::now();
    for event in &response.events {
        let seq = log.seq_of(&event.kv.key);
        if tally.on_event(seq, event.kv.mod_revision)
            && let Some(us) = seq.and_then(|s| log.latency_us(s, arrived))
        {
            out.latency.saturating_record(us);
        }
    }
    false
}
