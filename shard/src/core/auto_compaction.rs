//! Auto-compaction policy, sans-IO: when a shard's leader proposes a Compact, and at which
//! revision. etcd's two modes (`--auto-compaction-mode`, `server/etcdserver/api/v3compactor`)
//! with Atoll's adaptive deferral (decision D17).
//!
//! - **periodic** (retention `R`): every `min(R, 1h) / 10` the shard's head revision is
//!   sampled into a window of `R / interval + 1` samples, so the oldest sample is the head of
//!   `R` ago. The first compaction comes `R` after start, later ones every `min(R, 1h)` after
//!   the last success, each at the oldest sample: `R` worth of history is kept.
//! - **revision** (retention `N`): every 5 minutes, compact so that the newest `N` revisions
//!   of the shard stay readable. Revisions are sparse (DESIGN §4), so the target is not
//!   `head - N` but the revision `N` writes below the head, which the caller finds in the
//!   change log ([`AutoAction::CompactRetaining`]).
//!
//! A due compaction is deferred while the shard serves more than the configured request
//! rate, for at most the maximum deferral; then it runs anyway. Only a leader compacts;
//! samples are taken whatever the role, as etcd's paused compactor keeps sampling.
//!
//! Time is a `Duration` since an origin the caller picks (a monotonic clock in the actor,
//! plain numbers in tests), so the policy runs without sleeping.

use std::collections::VecDeque;
use std::time::Duration;

/// etcd's revision-mode check interval (`revInterval`, `v3compactor/revision.go`).
pub const REVISION_CHECK_INTERVAL: Duration = Duration::from_secs(5 * 60);
/// etcd's `retryDivisor`: periodic mode samples the head 10 times per compaction interval.
const PERIODIC_RETRY_DIVISOR: u32 = 10;
/// The longest periodic compaction interval (etcd: a retention above 1 h compacts hourly).
const PERIODIC_INTERVAL_MAX: Duration = Duration::from_secs(60 * 60);
/// How soon a deferred compaction looks at the request rate again; the rate is measured
/// over this window while deferring.
pub const DEFER_RECHECK_INTERVAL: Duration = Duration::from_secs(1);
/// Shortest check interval, so a tiny retention cannot spin the actor.
const CHECK_INTERVAL_MIN: Duration = Duration::from_millis(10);

/// How much history auto-compaction keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retention {
    /// Keep this much time of history (`--auto-compaction-mode periodic`).
    Periodic(Duration),
    /// Keep this many revisions (`--auto-compaction-mode revision`).
    Revisions(u64),
}

/// Auto-compaction settings of a shard.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AutoCompactionConfig {
    /// What to keep; `None` turns auto-compaction off (etcd's retention 0).
    pub retention: Option<Retention>,
    /// A due compaction waits while the shard serves more requests per second than this
    /// (0: never waits).
    pub busy_requests_per_second: u64,
    /// The longest a due compaction waits for the rate to drop.
    pub max_deferral: Duration,
}

impl Default for AutoCompactionConfig {
    /// Off, as etcd's default; when on, defers above 5,000 requests/s for at most 10 min.
    fn default() -> Self {
        AutoCompactionConfig {
            retention: None,
            busy_requests_per_second: 5_000,
            max_deferral: Duration::from_secs(10 * 60),
        }
    }
}

/// What the shard looks like at a check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShardSample {
    /// Time since the policy's origin.
    pub now: Duration,
    /// The shard's newest revision as applied here.
    pub head_revision: i64,
    /// The shard's compacted revision as applied here.
    pub compact_revision: i64,
    /// Requests the shard served since the node started (a counter).
    pub requests_total: u64,
    /// Whether this replica leads the shard.
    pub leads: bool,
}

/// What to do now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AutoAction {
    /// Nothing.
    Wait,
    /// Propose a Compact at this revision.
    Compact {
        /// The revision to compact at.
        revision: i64,
    },
    /// Find the revision that keeps the newest `revisions` revisions of the shard readable,
    /// then propose a Compact there (through [`AutoCompactor::target_found`]).
    CompactRetaining {
        /// How many revisions stay.
        revisions: u64,
    },
}

/// A check's decision: the action, and when to check next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AutoPlan {
    /// What to do now.
    pub action: AutoAction,
    /// How long until the next check.
    pub next_check_in: Duration,
}

/// How a proposed auto-compaction ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AutoOutcome {
    /// Applied, or the shard was already compacted at or past it (etcd counts both alike).
    Compacted,
    /// Not applied (lost leadership, timeout, busy): tried again at the next check.
    Failed,
}

/// The auto-compaction state of one shard.
#[derive(Debug)]
pub struct AutoCompactor {
    retention: Retention,
    busy_requests_per_second: u64,
    max_deferral: Duration,
    /// Periodic: sampled head revisions, oldest first.
    samples: VecDeque<i64>,
    next_sample_at: Duration,
    /// When the next compaction is due.
    due_at: Duration,
    /// When the current deferral started.
    deferred_since: Option<Duration>,
    /// The previous check's time and request counter: the rate is measured between checks.
    rate_from: Option<(Duration, u64)>,
    /// A compaction was asked for and has not ended yet.
    in_flight: bool,
    /// Revision mode: the last revision compacted at (etcd skips a repeat).
    last_target: i64,
}

impl AutoCompactor {
    /// The policy for `config`, started at `now`; `None` when auto-compaction is off.
    pub fn new(config: &AutoCompactionConfig, now: Duration) -> Option<AutoCompactor> {
        let retention = config.retention?;
        let due_at = match retention {
            // etcd waits one whole retention before the first periodic compaction.
            Retention::Periodic(period) => now + period,
            Retention::Revisions(_) => now + REVISION_CHECK_INTERVAL,
        };
        Some(AutoCompactor {
            retention,
            busy_requests_per_second: config.busy_requests_per_second,
            max_deferral: config.max_deferral,
            samples: VecDeque::new(),
            next_sample_at: now,
            due_at,
            deferred_since: None,
            rate_from: None,
            in_flight: false,
            last_target: 0,
        })
    }

    /// Periodic mode's sampling interval, which is also how often it checks.
    fn sample_interval(period: Duration) -> Duration {
        (period.min(PERIODIC_INTERVAL_MAX) / PERIODIC_RETRY_DIVISOR).max(CHECK_INTERVAL_MIN)
    }

    /// How long until the next regular check.
    fn regular_interval(&self) -> Duration {
        match self.retention {
            Retention::Periodic(period) => Self::sample_interval(period),
            Retention::Revisions(_) => REVISION_CHECK_INTERVAL,
        }
    }

    /// The first check, right at start (it takes the first sample).
    pub fn first_check_in(&self) -> Duration {
        Duration::ZERO
    }

    /// A check: samples, measures the request rate, and decides.
    pub fn on_check(&mut self, s: ShardSample) -> AutoPlan {
        let rate = self.measure_rate(s.now, s.requests_total);
        if let Retention::Periodic(period) = self.retention
            && s.now >= self.next_sample_at
        {
            self.samples.push_back(s.head_revision);
            let interval = Self::sample_interval(period);
            let keep = usize::try_from(period.as_nanos() / interval.as_nanos().max(1))
                .unwrap_or(usize::MAX)
                .saturating_add(1);
            while self.samples.len() > keep {
                self.samples.pop_front();
            }
            self.next_sample_at = s.now + interval;
        }
        let wait = |next: Duration| AutoPlan { action: AutoAction::Wait, next_check_in: next };
        let regular = self.regular_interval().min(self.until_next_sample(s.now));
        if self.in_flight || !s.leads || s.now < self.due_at {
            self.deferred_since = None;
            return wait(regular.min(self.due_at.saturating_sub(s.now)).max(CHECK_INTERVAL_MIN));
        }
        let busy = self.busy_requests_per_second > 0 && rate > self.busy_requests_per_second;
        if busy {
            let since = *self.deferred_since.get_or_insert(s.now);
            if s.now.saturating_sub(since) < self.max_deferral {
                return wait(DEFER_RECHECK_INTERVAL);
            }
            tracing::info!(
                requests_per_second = rate,
                deferred_ms = s.now.saturating_sub(since).as_millis() as u64,
                "auto compaction deferred for the longest allowed; compacting under load"
            );
        }
        self.deferred_since = None;
        let action = match self.retention {
            Retention::Periodic(_) => match self.samples.front() {
                Some(&oldest) if oldest > s.compact_revision && oldest > 0 => {
                    AutoAction::Compact { revision: oldest }
                }
                // Nothing new to compact: as if it succeeded (etcd: ErrCompacted counts).
                _ => {
                    self.succeeded(s.now);
                    return wait(regular);
                }
            },
            Retention::Revisions(revisions) => AutoAction::CompactRetaining { revisions },
        };
        self.in_flight = true;
        AutoPlan { action, next_check_in: regular }
    }

    /// Revision mode: the revision [`AutoAction::CompactRetaining`] asked for was found
    /// (`None`: the shard holds fewer revisions than are kept). Returns the revision to
    /// compact at, if any; a repeat of the last target or a revision already compacted
    /// ends the attempt as done.
    pub fn target_found(
        &mut self,
        now: Duration,
        found: Option<i64>,
        compact_revision: i64,
    ) -> Option<i64> {
        match found {
            Some(revision) if revision > compact_revision && revision != self.last_target => {
                Some(revision)
            }
            _ => {
                self.succeeded(now);
                None
            }
        }
    }

    /// A compaction the policy asked for ended.
    pub fn on_outcome(&mut self, now: Duration, revision: i64, outcome: AutoOutcome) {
        match outcome {
            AutoOutcome::Compacted => {
                self.last_target = revision;
                self.succeeded(now);
            }
            AutoOutcome::Failed => {
                // Tried again at the next regular check.
                self.in_flight = false;
                self.due_at = now;
            }
        }
    }

    fn succeeded(&mut self, now: Duration) {
        self.in_flight = false;
        self.due_at = match self.retention {
            Retention::Periodic(period) => now + period.min(PERIODIC_INTERVAL_MAX),
            Retention::Revisions(_) => now + REVISION_CHECK_INTERVAL,
        };
    }

    fn until_next_sample(&self, now: Duration) -> Duration {
        match self.retention {
            Retention::Periodic(_) => self.next_sample_at.saturating_sub(now),
            Retention::Revisions(_) => Duration::MAX,
        }
    }

    /// Requests per second since the previous check (0 at the first).
    fn measure_rate(&mut self, now: Duration, requests_total: u64) -> u64 {
        let rate = match self.rate_from {
            Some((at, count)) if now > at => {
                let served = requests_total.saturating_sub(count) as f64;
                (served / (now - at).as_secs_f64()) as u64
            }
            _ => 0,
        };
        self.rate_from = Some((now, requests_total));
        rate
    }
}

#[cfg(test)]
#[path = "auto_compaction_tests.rs"]
mod tests;
