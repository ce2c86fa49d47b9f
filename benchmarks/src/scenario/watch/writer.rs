//! The writer of the watch scenarios: puts keys `<prefix><seq>` at a target rate (open loop:
//! write `n` is due at `start + n / rate`, whatever happened before), and a log of when each
//! write started and at which revision it was acknowledged, which the watchers read to time
//! each event they receive.

use crate::backend::Backend;
use crate::keys::KeySpace;
use crate::schedule::intended_offset;
use crate::workload::put_request;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Marks a write that has not started.
const NOT_STARTED: u64 = u64::MAX;

/// When each write started and where it was acknowledged, shared by the writer and watchers.
#[derive(Debug)]
pub struct WriteLog {
    keys: KeySpace,
    base: Instant,
    started_ns: Vec<AtomicU64>,
    revision: Vec<AtomicI64>,
}

impl WriteLog {
    /// A log of at most `keys.size()` writes, timed from now.
    pub fn new(keys: KeySpace) -> WriteLog {
        let n = keys.size() as usize;
        WriteLog {
            keys,
            base: Instant::now(),
            started_ns: (0..n).map(|_| AtomicU64::new(NOT_STARTED)).collect(),
            revision: (0..n).map(|_| AtomicI64::new(0)).collect(),
        }
    }

    /// The keys written, one per write.
    pub fn keys(&self) -> &KeySpace {
        &self.keys
    }

    /// Writes planned.
    pub fn planned(&self) -> u64 {
        self.keys.size()
    }

    /// The write a key belongs to, if the writer writes it.
    pub fn seq_of(&self, key: &[u8]) -> Option<u64> {
        let digits = key.strip_prefix(self.keys.prefix())?;
        let seq: u64 = std::str::from_utf8(digits).ok()?.parse().ok()?;
        (seq < self.planned()).then_some(seq)
    }

    fn mark_started(&self, seq: u64, at: Instant) {
        let ns = at.saturating_duration_since(self.base).as_nanos() as u64;
        self.started_ns[seq as usize].store(ns, Ordering::Release);
    }

    fn mark_acked(&self, seq: u64, revision: i64) {
        self.revision[seq as usize].store(revision, Ordering::Release);
    }

    /// µs from the start of write `seq` to `at`; none if it never started.
    pub fn latency_us(&self, seq: u64, at: Instant) -> Option<u64> {
        let ns = self.started_ns.get(seq as usize)?.load(Ordering::Acquire);
        if ns == NOT_STARTED {
            return None;
        }
        let now_ns = at.saturating_duration_since(self.base).as_nanos() as u64;
        Some(now_ns.saturating_sub(ns) / 1_000)
    }

    /// Every acknowledged write as `(seq, revision)`.
    pub fn acked(&self) -> Vec<(u64, i64)> {
        let revisions = self.revision.iter().map(|r| r.load(Ordering::Acquire));
        revisions.enumerate().filter(|&(_, r)| r > 0).map(|(seq, r)| (seq as u64, r)).collect()
    }
}

/// What the writer did.
#[derive(Clone, Copy, Debug, Default)]
pub struct WriterReport {
    /// Acknowledged writes.
    pub acked: u64,
    /// Failed writes.
    pub failed: u64,
    /// From the first write due to the last answer.
    pub elapsed: Duration,
}

impl WriterReport {
    /// Acknowledged writes per second.
    pub fn acked_per_s(&self) -> f64 {
        self.acked as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Writes every key of `log` at `rate` writes per second from `loops` concurrent loops over
/// `client`, each write `value`.
pub async fn write_at_rate(
    client: &Backend,
    log: &Arc<WriteLog>,
    rate: f64,
    loops: usize,
    value: &Arc<Vec<u8>>,
) -> anyhow::Result<WriterReport> {
    let start = Instant::now();
    let tickets = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..loops.max(1))
        .map(|_| {
            let (client, log, tickets, value) =
                (client.clone(), Arc::clone(log), Arc::clone(&tickets), Arc::clone(value));
            tokio::spawn(async move {
                let (mut acked, mut failed) = (0u64, 0u64);
                loop {
                    let seq = tickets.fetch_add(1, Ordering::Relaxed);
                    if seq >= log.planned() {
                        return (acked, failed);
                    }
                    let due = start + intended_offset(seq, rate);
                    tokio::time::sleep_until(due.into()).await;
                    let began = Instant::now();
                    log.mark_started(seq, began);
                    match client.put(put_request(log.keys().key(seq), value.to_vec())).await {
                        Ok(answer) => {
                            log.mark_acked(seq, answer.header.revision);
                            acked += 1;
                        }
                        Err(_) => failed += 1,
                    }
                }
            })
        })
        .collect();
    let mut report = WriterReport::default();
    for task in tasks {
        let (acked, failed) = task.await?;
        report.acked += acked;
        report.failed += failed;
    }
    report.elapsed = start.elapsed();
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_map_back_to_their_write_and_latency_runs_from_its_start() {
        let log = WriteLog::new(KeySpace::new("/w/", 1000, None).expect("keys"));
        assert_eq!(log.seq_of(&log.keys().key(0)), Some(0));
        assert_eq!(log.seq_of(&log.keys().key(999)), Some(999));
        assert_eq!(log.seq_of(b"/w/x"), None);
        assert_eq!(log.seq_of(b"/other/0001"), None);
        assert_eq!(log.seq_of(b"/w/5000"), None, "beyond the plan");
        let t0 = log.base + Duration::from_millis(10);
        assert_eq!(log.latency_us(3, t0), None, "not started");
        log.mark_started(3, t0);
        assert_eq!(log.latency_us(3, t0 + Duration::from_micros(1500)), Some(1500));
        assert!(log.acked().is_empty());
        log.mark_acked(3, 42);
        assert_eq!(log.acked(), vec![(3, 42)]);
    }
}
