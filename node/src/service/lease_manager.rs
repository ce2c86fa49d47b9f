//! The lease manager of a node: the meta shard's leader's lease state ([`LeaseCore`]) for
//! the term it leads in, and the bounds of the work it drives (revocations in flight,
//! checkpoint batches). Followers hold none (decision D16).
//!
//! It is not an actix actor: everything it does is routing through [`super::NodeService`]
//! on the IO runtime (proposals to the meta shard, deletions on every data shard, forwarded
//! to their leaders), so it is a struct the service's request tasks and one loop task share.
//! The core sits under a std mutex held only for in-memory steps of the core, never across
//! an await or IO, the exception to STYLE's "no shared mutex" that D12 also makes.

use atoll_proto::{AtollError, LeaseRecord, LeaseRef};
use atoll_shard::lease::LeaseCore;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, oneshot};

/// How often the leader looks for expired leases (etcd's revoke loop: every 500 ms).
pub const LEASE_EXPIRY_PASS: Duration = Duration::from_millis(500);
/// Revocations (of expired leases, or finishing a former leader's) running at once: four
/// seconds of the default rate, so a pass can take its whole budget (`rate / 2`) while the
/// revocations of earlier passes are still finishing (256 capped a storm at 512/s, and at
/// ~270/s with a revocation taking about a second under load; decision D24).
pub const LEASE_REVOCATIONS_IN_FLIGHT_MAX: usize = 4_096;
/// Revocations one batch finishes together: one `RevokeLeaseKeysBatch` entry per data shard
/// holding keys of any of them and one `RevokedBatch` entry (decision D24). A 1,000-lease
/// entry is about 16 KiB of lease references, far below `--max-request-bytes`.
pub const LEASE_REVOCATION_BATCH_LEASES_MAX: usize = 1_000;
/// Batches finishing at once; revocations ready meanwhile wait and go in the next batch
/// together, as writes wait for the log writer's next fsync (group commit).
pub const LEASE_REVOCATION_BATCHES_IN_FLIGHT_MAX: usize = 4;
/// Remaining TTLs one checkpoint entry carries (etcd's `leaseCheckpointRate` per entry).
pub const LEASE_CHECKPOINT_ENTRY_LEASES_MAX: usize = 1_000;
/// Remaining TTLs one checkpoint pass takes; the next pass continues after them.
pub const LEASE_CHECKPOINTS_PER_PASS_MAX: usize = 10_000;
/// Server-chosen IDs tried before a grant gives up (a collision of random 63-bit IDs).
pub const LEASE_ID_ATTEMPTS_MAX: usize = 3;

/// Lease settings of a node.
#[derive(Clone, Debug)]
pub struct LeaseConfig {
    /// A grant with a smaller TTL gets this one (etcd's `minTTL`).
    pub min_ttl_seconds: i64,
    /// Expired leases revoked per second at most (etcd's `leaseRevokeRate`).
    pub revoke_rate: u64,
    /// Interval of checkpoints; zero: none.
    pub checkpoint_interval: Duration,
    /// A new leader extends every lease by this (etcd's `Promote(electionTimeout)`).
    pub election_timeout: Duration,
}

/// The lease state a node holds while it leads the meta shard.
pub(super) struct LeaseManager {
    pub(super) config: LeaseConfig,
    origin: Instant,
    leading: Mutex<Leading>,
    /// Held while a new leader loads the records, so it loads once per term.
    pub(super) loading: tokio::sync::Mutex<()>,
    /// Permits for revocations in flight ([`LEASE_REVOCATIONS_IN_FLIGHT_MAX`]).
    pub(super) revocations: Arc<Semaphore>,
    next_checkpoint_ms: AtomicU64,
    /// What this node did while it led the meta shard, for its metrics.
    pub(super) counters: LeaseCounters,
    /// Revocations whose `Revoke` applied, waiting to be finished in a batch.
    finishing: Mutex<VecDeque<Finishing>>,
    /// Signalled when `finishing` gains one.
    pub(super) finishing_ready: Notify,
    /// Permits for batches finishing at once ([`LEASE_REVOCATION_BATCHES_IN_FLIGHT_MAX`]).
    pub(super) batches: Arc<Semaphore>,
}

/// A revocation whose first step (`Revoke` on the meta shard) applied, waiting for its
/// keys to be deleted and its record removed (decision D16's steps 2 and 3, batched D24).
pub(super) struct Finishing {
    /// The term of the lease state that started it.
    pub(super) term: u64,
    /// The lease and the grant being revoked.
    pub(super) lease: LeaseRef,
    /// Held until it finishes when it counts against [`LEASE_REVOCATIONS_IN_FLIGHT_MAX`]
    /// (an expiry's revocation or a former leader's; a client's revoke does not).
    #[allow(dead_code, reason = "held for its drop, which frees the slot")]
    pub(super) permit: Option<OwnedSemaphorePermit>,
    /// A client's revoke waiting for the outcome.
    pub(super) done: Option<oneshot::Sender<Result<(), AtollError>>>,
}

/// Lease work this node finished as the meta shard's leader, since it started (counters of
/// `/metrics`; another leader counts its own).
#[derive(Debug, Default)]
pub(super) struct LeaseCounters {
    /// Grants applied.
    pub(super) granted: AtomicU64,
    /// Revocations finished (all three steps, decision D16), whatever started them.
    pub(super) revoked: AtomicU64,
    /// Expired leases whose revocation started (their `Revoke` applied).
    pub(super) expired: AtomicU64,
}

/// One sample of `/metrics`: name, help, type, value.
pub type MetricSample = (&'static str, &'static str, &'static str, String);

/// The core and the term it belongs to; `core` is `None` while not leading or not loaded.
#[derive(Default)]
struct Leading {
    term: u64,
    core: Option<LeaseCore>,
}

impl LeaseManager {
    pub(super) fn new(config: LeaseConfig) -> LeaseManager {
        LeaseManager {
            config,
            origin: Instant::now(),
            leading: Mutex::new(Leading::default()),
            loading: tokio::sync::Mutex::new(()),
            revocations: Arc::new(Semaphore::new(LEASE_REVOCATIONS_IN_FLIGHT_MAX)),
            next_checkpoint_ms: AtomicU64::new(0),
            counters: LeaseCounters::default(),
            finishing: Mutex::new(VecDeque::new()),
            finishing_ready: Notify::new(),
            batches: Arc::new(Semaphore::new(LEASE_REVOCATION_BATCHES_IN_FLIGHT_MAX)),
        }
    }

    /// Queues a revocation to be finished in the next batch.
    pub(super) fn queue_finish(&self, finishing: Finishing) {
        self.finishing.lock().unwrap_or_else(|p| p.into_inner()).push_back(finishing);
        self.finishing_ready.notify_one();
    }

    /// Up to `max` revocations waiting to be finished, oldest first.
    pub(super) fn take_finishing(&self, max: usize) -> Vec<Finishing> {
        let mut queue = self.finishing.lock().unwrap_or_else(|p| p.into_inner());
        let n = max.min(queue.len());
        queue.drain(..n).collect()
    }

    /// The lease samples of `/metrics`. A follower holds no lease state (decision D16), so
    /// its gauges are 0, the expiry heap's included.
    pub(super) fn metric_samples(&self) -> Vec<MetricSample> {
        let stats = self.lock().core.as_ref().map(|core| core.stats(self.now_ms()));
        let stats = stats.unwrap_or_default();
        let count = |c: &AtomicU64| c.load(Ordering::Relaxed).to_string();
        vec![
            (
                "atoll_lease_granted_total",
                "Leases this node granted as the meta shard's leader.",
                "counter",
                count(&self.counters.granted),
            ),
            (
                "atoll_lease_revoked_total",
                "Revocations (a client's or an expiry's) this node finished as the meta shard's leader.",
                "counter",
                count(&self.counters.revoked),
            ),
            (
                "atoll_lease_expired_total",
                "Expired leases whose revocation this node started as the meta shard's leader.",
                "counter",
                count(&self.counters.expired),
            ),
            (
                "atoll_lease_active",
                "Live leases in this node's lease state (0 unless it leads the meta shard).",
                "gauge",
                stats.active.to_string(),
            ),
            (
                "atoll_lease_revocation_backlog",
                "Leases expired or being revoked whose revocation has not finished.",
                "gauge",
                stats.revocation_backlog.to_string(),
            ),
            (
                "atoll_lease_expiry_heap_entries",
                "Entries of the leader's expiry heap, stale ones included (0 on followers).",
                "gauge",
                stats.heap_entries.to_string(),
            ),
        ]
    }

    /// Milliseconds on the manager's monotonic clock.
    pub(super) fn now_ms(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Leading> {
        // A panic under the lock cannot leave the core half-changed in a way later steps
        // would misread more than losing it would; keep serving.
        self.leading.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Whether the state of `term` is loaded.
    pub(super) fn holds(&self, term: u64) -> bool {
        let leading = self.lock();
        leading.term == term && leading.core.is_some()
    }

    /// Installs the state of a new leader of `term` from the records it applied.
    pub(super) fn promote(&self, term: u64, records: Vec<LeaseRecord>) {
        let extend_ms = u64::try_from(self.config.election_timeout.as_millis()).unwrap_or(0);
        let core = LeaseCore::promote(records, self.now_ms(), extend_ms);
        *self.lock() = Leading { term, core: Some(core) };
        self.next_checkpoint_ms.store(self.now_ms() + self.checkpoint_ms(), Ordering::Relaxed);
        tracing::info!(term, "meta shard leader holds the lease state");
    }

    /// This node no longer leads (or lost track of a grant's outcome): the state is dropped
    /// and, when leading again, loaded anew from the records.
    pub(super) fn step_down(&self) {
        let mut leading = self.lock();
        if leading.core.take().is_some() {
            tracing::info!(term = leading.term, "lease state dropped");
        }
    }

    /// Runs `f` on the core if it still belongs to `term`.
    pub(super) fn with_core<R>(&self, term: u64, f: impl FnOnce(&mut LeaseCore) -> R) -> Option<R> {
        let mut leading = self.lock();
        if leading.term != term {
            return None;
        }
        leading.core.as_mut().map(f)
    }

    fn checkpoint_ms(&self) -> u64 {
        u64::try_from(self.config.checkpoint_interval.as_millis()).unwrap_or(u64::MAX)
    }

    /// The checkpoint interval in ms if a checkpoint pass is due now (and schedules the
    /// next); `None` otherwise or with checkpoints off.
    pub(super) fn checkpoint_due(&self, now_ms: u64) -> Option<u64> {
        let interval = self.checkpoint_ms();
        if interval == 0 || now_ms < self.next_checkpoint_ms.load(Ordering::Relaxed) {
            return None;
        }
        self.next_checkpoint_ms.store(now_ms.saturating_add(interval), Ordering::Relaxed);
        Some(interval)
    }

    /// Leases one expiry pass may take: half the per-second rate (etcd takes
    /// `leaseRevokeRate / 2` per 500 ms pass), within the revocations that may start.
    pub(super) fn pass_budget(&self) -> usize {
        let rate = usize::try_from(self.config.revoke_rate / 2).unwrap_or(usize::MAX);
        rate.min(self.revocations.available_permits())
    }
}
