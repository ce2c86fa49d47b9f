//! When each operation starts and how its latency is counted, as pure functions.
//!
//! Closed loop: every client sends its next request when the previous one is answered, and
//! latency is the service time. Open loop (`--rate R`): operation `n` is due at
//! `start + n / R` whatever happened before, and its latency runs from that intended start.
//! A stalled server thus shows up as latency for every request that should have been sent
//! during the stall, instead of as a pause that no request measures: the "coordinated
//! omission" of closed-loop tools (Gil Tene, "How NOT to measure latency", 2015).

use std::time::{Duration, Instant};

/// How operations are paced.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Pacing {
    /// Each client sends as soon as its previous request is answered.
    Closed,
    /// Operations are due at a fixed rate shared by all clients.
    Open {
        /// Target operations per second over all clients.
        ops_per_s: f64,
    },
}

/// When a run (or its warm-up) ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopAt {
    /// After this long.
    Elapsed(Duration),
    /// After this many operations (successful or not).
    Total(u64),
}

/// Offset from the start of the run at which operation `n` is due under an open loop.
pub fn intended_offset(n: u64, ops_per_s: f64) -> Duration {
    // Computed from n each time rather than accumulated, so rounding never drifts.
    Duration::from_secs_f64(n as f64 / ops_per_s)
}

/// Whether operation `n`, due at offset `due` (open loop) or started at `now` (closed loop),
/// is still part of a run that stops at `stop`.
pub fn within(stop: StopAt, n: u64, offset: Duration) -> bool {
    match stop {
        StopAt::Elapsed(length) => offset < length,
        StopAt::Total(total) => n < total,
    }
}

/// The latency to record for an operation that was due at `intended` (open loop only),
/// started at `started` and ended at `ended`: from the earlier of the two starts. A late start
/// counts the wait (coordinated omission); an early one, allowed by the timer slack, counts
/// only the real service time, never less.
pub fn latency(intended: Option<Instant>, started: Instant, ended: Instant) -> Duration {
    let from = intended.map_or(started, |due| due.min(started));
    ended.saturating_duration_since(from)
}

/// How long a worker should sleep before operation due at `due`, or `None` if it is due
/// within `slack` and should go now.
pub fn sleep_before(due: Instant, now: Instant, slack: Duration) -> Option<Duration> {
    let ahead = due.saturating_duration_since(now);
    (ahead > slack).then_some(ahead)
}

/// Microseconds, clamped to at least 1 (the histograms' lowest value).
pub fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_loop_ops_are_evenly_spaced_without_drift() {
        assert_eq!(intended_offset(0, 1000.0), Duration::ZERO);
        assert_eq!(intended_offset(1, 1000.0), Duration::from_millis(1));
        assert_eq!(intended_offset(2500, 1000.0), Duration::from_millis(2500));
        assert_eq!(intended_offset(3, 4.0), Duration::from_millis(750));
        // After ten million ops at 3 ops/s the schedule is still exact to the microsecond.
        let late = intended_offset(10_000_000, 3.0);
        assert_eq!(late.as_micros(), 3_333_333_333_333);
    }

    #[test]
    fn runs_stop_by_time_or_by_count() {
        let ten = StopAt::Elapsed(Duration::from_secs(10));
        assert!(within(ten, 1_000_000, Duration::from_millis(9_999)));
        assert!(!within(ten, 0, Duration::from_secs(10)));
        let total = StopAt::Total(5);
        assert!(within(total, 4, Duration::from_secs(3600)));
        assert!(!within(total, 5, Duration::ZERO));
    }

    #[test]
    fn late_starts_count_the_wait_and_early_starts_do_not_shrink_latency() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        // Due at 10 ms, started at 30 ms (workers were busy), ended at 35 ms: 25 ms.
        assert_eq!(latency(Some(t0 + ms(10)), t0 + ms(30), t0 + ms(35)), ms(25));
        // Started 1 ms early within the slack: the service time, 5 ms.
        assert_eq!(latency(Some(t0 + ms(10)), t0 + ms(9), t0 + ms(14)), ms(5));
        // Closed loop: the service time.
        assert_eq!(latency(None, t0 + ms(3), t0 + ms(4)), ms(1));
        assert_eq!(latency(None, t0 + ms(4), t0 + ms(3)), Duration::ZERO);
    }

    #[test]
    fn workers_sleep_only_when_ahead_by_more_than_the_slack() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        assert_eq!(sleep_before(t0 + ms(5), t0, ms(1)), Some(ms(5)));
        assert_eq!(sleep_before(t0 + ms(1), t0, ms(1)), None);
        assert_eq!(sleep_before(t0, t0 + ms(3), ms(1)), None);
    }

    #[test]
    fn micros_never_record_zero() {
        assert_eq!(micros(Duration::ZERO), 1);
        assert_eq!(micros(Duration::from_millis(2)), 2000);
    }
}
