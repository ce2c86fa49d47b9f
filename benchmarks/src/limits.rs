//! Every limit and default of the load generator in one place, each named once (STYLE
//! "Everything has a named limit").

use std::time::Duration;

/// Default key prefix of `run` and `load`: everything the tool writes lives under it, so
/// `atollctl del --prefix /bench/` cleans up.
pub const PREFIX_DEFAULT: &str = "/bench/";
/// Default number of distinct keys a workload touches.
pub const KEY_SPACE_DEFAULT: u64 = 100_000;
/// Default value size; etcd's benchmark tool also defaults to small values.
pub const VALUE_BYTES_DEFAULT: usize = 256;
/// Largest value `--value-size` accepts: below etcd's default 1.5 MiB request limit with room
/// for the key and the envelope.
pub const VALUE_BYTES_MAX: usize = 1024 * 1024;
/// Largest `--key-size`; etcd limits keys only through the request size, this keeps the
/// generator from building absurd keys by mistake.
pub const KEY_BYTES_MAX: usize = 64 * 1024;
/// How long an etcd target may take to accept a connection (clientv3's dial timeout is 5 s
/// in etcdctl).
pub const ETCD_DIAL_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one etcd request may take before it counts as a `timeout`: the native client's
/// default, so both targets give up alike.
pub const ETCD_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a physical compaction of a large history may take, over the etcd API or
/// Atoll's (the default request timeouts are shorter).
pub const COMPACTION_TIMEOUT: Duration = Duration::from_secs(600);
/// Largest gRPC message the etcd target sends or accepts: etcd's own client accepts up to
/// `math.MaxInt32` bytes (`MaxCallRecvMsgSize`), so an unlimited range answers as in etcdctl.
pub const ETCD_RESPONSE_BYTES_MAX: usize = i32::MAX as usize;
/// Most concurrent request loops; each is a cheap task, this bounds the damage of a typo.
pub const CLIENTS_MAX: usize = 100_000;
/// Most QUIC connections (`--connections`); each binds its own UDP sockets.
pub const CONNECTIONS_MAX: usize = 1024;
/// Default `--range-limit` of the range workload.
pub const RANGE_LIMIT_DEFAULT: i64 = 100;
/// Default seed of the key and value generators, so two runs touch the same keys.
pub const SEED_DEFAULT: u64 = 1;
/// Default TTL of the leases the lease-grant workload grants: long enough that none expires
/// during a run of a few minutes, so a later keepalive or revoke run finds them.
pub const LEASE_TTL_DEFAULT_S: i64 = 600;
/// Largest `--lease-ttl`: etcd's `MaxLeaseTTL`.
pub const LEASE_TTL_MAX_S: i64 = 9_000_000_000;

/// Upper bound of the latency histograms, in µs: one hour. Larger values are clamped (an
/// open-loop run far past saturation can queue that long).
pub const LATENCY_US_MAX: u64 = 3_600_000_000;
/// Significant digits of the whole-run latency histogram (0.1% precision).
pub const LATENCY_SIGFIG: u8 = 3;
/// Significant digits of the per-second histograms behind `--csv`: 1% precision keeps one
/// histogram per second small enough for long runs.
pub const INTERVAL_SIGFIG: u8 = 2;
/// Width of one row of `--csv`.
pub const INTERVAL: Duration = Duration::from_secs(1);
/// How often the live progress line is redrawn.
pub const PROGRESS_INTERVAL: Duration = Duration::from_secs(1);

/// An open-loop worker sleeps only when it is this far ahead of the schedule: the timer wheel
/// has 1 ms granularity, and latency is measured from the earlier of the intended and the
/// actual start (see `schedule::latency`), so starting slightly early loses nothing.
pub const TIMER_SLACK: Duration = Duration::from_millis(1);
/// A closed-loop worker whose request failed pauses this long, so a dead endpoint is not
/// hammered in a hot loop.
pub const ERROR_PAUSE: Duration = Duration::from_millis(10);
/// Entries of the per-worker mod-revision cache of txn-update; cleared when full.
pub const REVISION_CACHE_ENTRIES_MAX: usize = 65_536;

/// Most puts in one load txn: etcd's default `--max-txn-ops`.
pub const LOAD_BATCH_MAX: usize = atoll_proto::limits::MAX_TXN_OPS_DEFAULT;
/// Largest request the loader builds: two thirds of etcd's default 1.5 MiB request limit.
pub const LOAD_REQUEST_BYTES_MAX: usize = 1024 * 1024;
/// Bytes a put adds to a txn besides its key and value (envelope, flags), counted generously.
pub const PUT_OVERHEAD_BYTES: usize = 64;
/// Default concurrent batches of the loader.
pub const LOAD_CLIENTS_DEFAULT: usize = 32;
/// Attempts per load batch before the load gives up. A repeated batch only rewrites the same
/// values, so retrying is safe even after a timeout.
pub const LOAD_ATTEMPTS_MAX: u32 = 5;
/// Pause before re-sending a failed load batch.
pub const LOAD_RETRY_PAUSE: Duration = Duration::from_millis(200);

/// Watch requests (creates) queued for one gRPC watch stream before the sender waits: the
/// node's own bound on a stream's queued requests.
pub const WATCH_REQUESTS_QUEUED_MAX: usize = 64;

/// Most prefixes `--initial-split` generates: 2N+1 shards each on three nodes; this bounds
/// a typo, not the nodes.
pub const SPLIT_PREFIXES_MAX: u64 = 100_000;

/// Keys loaded by a scenario (or by `load`) under `--smoke`.
pub const SMOKE_KEYS: u64 = 2_000;
/// Length of a measured phase under `--smoke`.
pub const SMOKE_DURATION: Duration = Duration::from_secs(1);
/// Most operations of `run --total` under `--smoke`.
pub const SMOKE_TOTAL_MAX: u64 = 2_000;
