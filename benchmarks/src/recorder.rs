//! Collects the outcome of every operation of a run: latencies in µs in HdrHistograms, errors
//! counted by kind, and optionally one histogram per second for `--csv`.
//!
//! Request loops record into a few shards, each behind its own mutex (held for a histogram
//! increment), picked by loop number: on a small machine only a couple of loops run at once,
//! so contention is negligible, and memory does not grow with the number of loops.

use crate::limits::{INTERVAL, INTERVAL_SIGFIG, LATENCY_SIGFIG, LATENCY_US_MAX};
use anyhow::anyhow;
use hdrhistogram::Histogram;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

/// One row of the per-second series.
#[derive(Clone, Debug)]
pub struct Interval {
    /// Latencies of the operations that completed in this second.
    pub latency: Histogram<u64>,
    /// Operations that failed in this second.
    pub errors: u64,
}

/// Everything recorded, merged over the shards.
#[derive(Clone, Debug)]
pub struct Recorded {
    /// Latencies of the successful operations, in µs.
    pub latency: Histogram<u64>,
    /// Failed operations by kind.
    pub errors: BTreeMap<String, u64>,
    /// Per-second rows, if asked for; row `i` covers `[i s, i+1 s)` after the start.
    pub intervals: Vec<Interval>,
}

struct Shard {
    latency: Histogram<u64>,
    errors: BTreeMap<String, u64>,
    intervals: Vec<Interval>,
}

/// Running totals, readable while a run goes on (the progress line reads them).
#[derive(Debug, Default)]
pub struct Counters {
    /// Successful operations so far.
    pub succeeded: AtomicU64,
    /// Failed operations so far.
    pub failed: AtomicU64,
}

impl Counters {
    /// Successful and failed operations so far.
    pub fn get(&self) -> (u64, u64) {
        (self.succeeded.load(Ordering::Relaxed), self.failed.load(Ordering::Relaxed))
    }
}

/// Thread-safe recorder shared by the request loops of one run.
pub struct Recorder {
    shards: Vec<Mutex<Shard>>,
    start: Instant,
    keep_intervals: bool,
    counters: Arc<Counters>,
}

/// A histogram for whole-run latencies.
pub fn latency_histogram() -> anyhow::Result<Histogram<u64>> {
    Histogram::new_with_bounds(1, LATENCY_US_MAX, LATENCY_SIGFIG)
        .map_err(|e| anyhow!("cannot create a latency histogram: {e:?}"))
}

fn interval_histogram() -> anyhow::Result<Histogram<u64>> {
    Histogram::new_with_bounds(1, LATENCY_US_MAX, INTERVAL_SIGFIG)
        .map_err(|e| anyhow!("cannot create a latency histogram: {e:?}"))
}

impl Recorder {
    /// A recorder with `shards` shards whose per-second rows (if `keep_intervals`) count from
    /// `start`.
    pub fn new(shards: usize, start: Instant, keep_intervals: bool) -> anyhow::Result<Recorder> {
        let shards = (0..shards.max(1))
            .map(|_| {
                let shard = Shard {
                    latency: latency_histogram()?,
                    errors: BTreeMap::new(),
                    intervals: vec![],
                };
                Ok(Mutex::new(shard))
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(Recorder { shards, start, keep_intervals, counters: Arc::new(Counters::default()) })
    }

    fn shard(&self, worker: usize) -> MutexGuard<'_, Shard> {
        let shard = &self.shards[worker % self.shards.len()];
        // A panic while holding the lock leaves a histogram that is still valid.
        shard.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Records a successful operation of loop `worker` that ended at `ended`.
    pub fn record_ok(&self, worker: usize, ended: Instant, latency_us: u64) -> anyhow::Result<()> {
        self.counters.succeeded.fetch_add(1, Ordering::Relaxed);
        let mut shard = self.shard(worker);
        shard.latency.saturating_record(latency_us);
        if self.keep_intervals {
            let row = self.interval_row(&mut shard, ended)?;
            row.latency.saturating_record(latency_us);
        }
        Ok(())
    }

    /// Records a failed operation of loop `worker`.
    pub fn record_error(&self, worker: usize, ended: Instant, kind: String) -> anyhow::Result<()> {
        self.counters.failed.fetch_add(1, Ordering::Relaxed);
        let mut shard = self.shard(worker);
        *shard.errors.entry(kind).or_insert(0) += 1;
        if self.keep_intervals {
            self.interval_row(&mut shard, ended)?.errors += 1;
        }
        Ok(())
    }

    fn interval_row<'a>(
        &self,
        shard: &'a mut Shard,
        ended: Instant,
    ) -> anyhow::Result<&'a mut Interval> {
        let index = interval_index(self.start, ended);
        while shard.intervals.len() <= index {
            shard.intervals.push(Interval { latency: interval_histogram()?, errors: 0 });
        }
        Ok(&mut shard.intervals[index])
    }

    /// The running totals, to watch the run.
    pub fn counters(&self) -> Arc<Counters> {
        Arc::clone(&self.counters)
    }

    /// Merges the shards.
    pub fn finish(self) -> anyhow::Result<Recorded> {
        let mut merged =
            Recorded { latency: latency_histogram()?, errors: BTreeMap::new(), intervals: vec![] };
        for shard in self.shards {
            let shard = shard.into_inner().unwrap_or_else(|poisoned| poisoned.into_inner());
            merge_into(&mut merged, shard)?;
        }
        Ok(merged)
    }
}

fn merge_into(merged: &mut Recorded, shard: Shard) -> anyhow::Result<()> {
    let add_error = |e| anyhow!("cannot merge latency histograms: {e:?}");
    merged.latency.add(&shard.latency).map_err(add_error)?;
    for (kind, count) in shard.errors {
        *merged.errors.entry(kind).or_insert(0) += count;
    }
    for (index, row) in shard.intervals.into_iter().enumerate() {
        if merged.intervals.len() <= index {
            merged.intervals.push(Interval { latency: interval_histogram()?, errors: 0 });
        }
        let target = &mut merged.intervals[index];
        target.latency.add(&row.latency).map_err(add_error)?;
        target.errors += row.errors;
    }
    Ok(())
}

/// The per-second row an operation that ended at `ended` belongs to.
pub fn interval_index(start: Instant, ended: Instant) -> usize {
    let elapsed = ended.saturating_duration_since(start);
    usize::try_from(elapsed.as_nanos() / INTERVAL.as_nanos()).unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn shards_merge_into_one_histogram_and_error_map() {
        let t0 = Instant::now();
        let recorder = Recorder::new(3, t0, true).expect("recorder");
        for worker in 0..10 {
            recorder.record_ok(worker, t0, 100 * (worker as u64 + 1)).expect("ok");
        }
        let later = t0 + Duration::from_millis(2500);
        recorder.record_error(4, later, "timeout".into()).expect("err");
        recorder.record_error(5, later, "timeout".into()).expect("err");
        recorder.record_error(6, t0, "server_busy".into()).expect("err");
        assert_eq!(recorder.counters().get(), (10, 3));
        let recorded = recorder.finish().expect("merge");
        assert_eq!(recorded.latency.len(), 10);
        assert_eq!(recorded.latency.max(), recorded.latency.highest_equivalent(1000));
        assert_eq!(recorded.errors.get("timeout"), Some(&2));
        assert_eq!(recorded.errors.get("server_busy"), Some(&1));
        assert_eq!(recorded.intervals.len(), 3);
        assert_eq!(recorded.intervals[0].latency.len(), 10);
        assert_eq!((recorded.intervals[0].errors, recorded.intervals[2].errors), (1, 2));
    }

    #[test]
    fn intervals_are_kept_only_when_asked() {
        let t0 = Instant::now();
        let recorder = Recorder::new(1, t0, false).expect("recorder");
        recorder.record_ok(0, t0 + Duration::from_secs(5), 10).expect("ok");
        assert!(recorder.finish().expect("merge").intervals.is_empty());
    }

    #[test]
    fn rows_are_whole_seconds_from_the_start() {
        let t0 = Instant::now();
        assert_eq!(interval_index(t0, t0), 0);
        assert_eq!(interval_index(t0, t0 + Duration::from_millis(999)), 0);
        assert_eq!(interval_index(t0, t0 + Duration::from_millis(1000)), 1);
        assert_eq!(interval_index(t0 + Duration::from_secs(1), t0), 0);
    }
}
