//! Drives a run: `clients` request loops over a [`ClientPool`], an optional unrecorded
//! warm-up, then the measured phase, closed or open loop (see [`crate::schedule`]).
//!
//! Operations are numbered by one shared ticket counter, which gives the open-loop schedule
//! its order, sequential workloads their keys and `--total` its bound.

use crate::backend::Backend;
use crate::connect::ClientPool;
use crate::keys::KeySpace;
use crate::limits::{
    ERROR_PAUSE, LEASE_TTL_DEFAULT_S, RANGE_LIMIT_DEFAULT, SEED_DEFAULT, TIMER_SLACK,
};
use crate::progress::{Progress, progress_wanted};
use crate::recorder::{Interval, Recorded, Recorder};
use crate::report::{LatencySummary, RunReport, per_second, round3};
use crate::schedule::{Pacing, StopAt, intended_offset, latency, micros, sleep_before, within};
use crate::workload::{OpGen, WorkloadKind, WorkloadSpec};
use anyhow::anyhow;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A run to drive.
#[derive(Clone, Debug)]
pub struct RunSpec {
    /// What each operation sends.
    pub workload: Arc<WorkloadSpec>,
    /// Concurrent request loops.
    pub clients: usize,
    /// When the measured phase ends.
    pub stop: StopAt,
    /// Unrecorded phase before it.
    pub warmup: Duration,
    /// Closed or open loop.
    pub pacing: Pacing,
    /// Draw the live progress line.
    pub progress: bool,
    /// Keep one histogram per second (for `--csv`).
    pub keep_intervals: bool,
}

/// Read share of the `mixed` workload in the scenarios' closed-loop points (`run`'s default).
const CLOSED_LOOP_READ_RATIO: f64 = 0.9;

impl RunSpec {
    /// The closed-loop point every scenario and `compare` measure: `clients` loops of `kind`
    /// on random keys of `keys` (linearizable reads), each put writing `value`, `warmup`
    /// unrecorded then `duration` measured. One definition, so the scenarios and the
    /// comparison send the same requests at the same point.
    pub fn closed_loop(
        kind: WorkloadKind,
        keys: &KeySpace,
        value: &Arc<Vec<u8>>,
        clients: u64,
        duration: Duration,
        warmup: Duration,
    ) -> RunSpec {
        let workload = WorkloadSpec {
            kind,
            keys: keys.clone(),
            sequential: false,
            value: Arc::clone(value),
            serializable: false,
            range_limit: RANGE_LIMIT_DEFAULT,
            read_ratio: CLOSED_LOOP_READ_RATIO,
            seed: SEED_DEFAULT,
            lease_ttl_s: LEASE_TTL_DEFAULT_S,
        };
        RunSpec {
            workload: Arc::new(workload),
            clients: clients as usize,
            stop: StopAt::Elapsed(duration),
            warmup,
            pacing: Pacing::Closed,
            progress: progress_wanted(),
            keep_intervals: false,
        }
    }
}

/// The result of a run.
#[derive(Clone, Debug)]
pub struct RunOutcome {
    /// The final report.
    pub report: RunReport,
    /// Per-second rows, if kept.
    pub intervals: Vec<Interval>,
}

/// What the request loops of one phase share.
struct Phase {
    start: Instant,
    stop: StopAt,
    pacing: Pacing,
    tickets: AtomicU64,
    recorder: Recorder,
    workload: Arc<WorkloadSpec>,
}

/// Runs the warm-up (if any) and the measured phase, and reports the latter.
pub async fn run(pool: &ClientPool, spec: &RunSpec) -> anyhow::Result<RunOutcome> {
    let name = spec.workload.kind.name();
    if !spec.warmup.is_zero() {
        let warmup = StopAt::Elapsed(spec.warmup);
        drive(pool, spec, warmup, format!("{name} warm-up"), false).await?;
    }
    let (recorded, elapsed) = drive(pool, spec, spec.stop, name.to_string(), true).await?;
    let ops = recorded.latency.len();
    let report = RunReport {
        workload: name.to_string(),
        clients: spec.clients,
        ops,
        duration_s: round3(elapsed.as_secs_f64()),
        ops_per_s: round3(per_second(ops, elapsed)),
        latency_us: LatencySummary::from_histogram(&recorded.latency),
        errors: recorded.errors,
        connections: pool.connections(),
        mode: match spec.pacing {
            Pacing::Closed => "closed",
            Pacing::Open { .. } => "open",
        },
        rate_target: match spec.pacing {
            Pacing::Closed => None,
            Pacing::Open { ops_per_s } => Some(ops_per_s),
        },
    };
    Ok(RunOutcome { report, intervals: recorded.intervals })
}

/// Runs one phase to its end and returns what it recorded and how long it took.
async fn drive(
    pool: &ClientPool,
    spec: &RunSpec,
    stop: StopAt,
    label: String,
    measured: bool,
) -> anyhow::Result<(Recorded, Duration)> {
    let start = Instant::now();
    let shards = std::thread::available_parallelism().map_or(2, |n| n.get());
    let recorder = Recorder::new(shards, start, measured && spec.keep_intervals)?;
    let progress = Progress::start(label, recorder.counters(), spec.progress);
    let phase = Arc::new(Phase {
        start,
        stop,
        pacing: spec.pacing,
        tickets: AtomicU64::new(0),
        recorder,
        workload: Arc::clone(&spec.workload),
    });
    let loops: Vec<_> = (0..spec.clients)
        .map(|worker| {
            let client = pool.client(worker).clone();
            tokio::spawn(request_loop(Arc::clone(&phase), worker, client))
        })
        .collect();
    for handle in loops {
        handle.await.map_err(|e| anyhow!("a request loop failed: {e}"))??;
    }
    let elapsed = start.elapsed();
    drop(progress);
    let phase = Arc::try_unwrap(phase).map_err(|_| anyhow!("request loops still hold the run"))?;
    Ok((phase.recorder.finish()?, elapsed))
}

/// One request loop: takes the next ticket, waits for its due time (open loop), runs it and
/// records the outcome, until the phase ends.
async fn request_loop(phase: Arc<Phase>, worker: usize, client: Backend) -> anyhow::Result<()> {
    let mut ops = OpGen::new(Arc::clone(&phase.workload), worker);
    loop {
        let n = phase.tickets.fetch_add(1, Ordering::Relaxed);
        let due_offset = match phase.pacing {
            Pacing::Open { ops_per_s } => Some(intended_offset(n, ops_per_s)),
            Pacing::Closed => None,
        };
        if !within(phase.stop, n, due_offset.unwrap_or_else(|| phase.start.elapsed())) {
            return Ok(());
        }
        let due = due_offset.map(|offset| phase.start + offset);
        if let Some(wait) = due.and_then(|due| sleep_before(due, Instant::now(), TIMER_SLACK)) {
            tokio::time::sleep(wait).await;
        }
        let started = Instant::now();
        let result = ops.execute(&client, n).await;
        let ended = Instant::now();
        match result {
            Ok(()) => {
                let latency_us = micros(latency(due, started, ended));
                phase.recorder.record_ok(worker, ended, latency_us)?;
            }
            Err(error) => {
                phase.recorder.record_error(worker, ended, error.kind())?;
                if phase.pacing == Pacing::Closed {
                    tokio::time::sleep(ERROR_PAUSE).await;
                }
            }
        }
    }
}

#[cfg(test)]
#[path = "engine_tests.rs"]
mod tests;
