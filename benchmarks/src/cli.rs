//! The command line: `run`, `load` and `scenario`, their flags and the checks on each flag's
//! value. Flags are named like etcd's benchmark tool where the concept is the same
//! (`--clients`, `--conns` is `--connections` here, `--key-size`, `--val-size` is
//! `--value-size`, `--key-space-size` is `--key-space`, `--sequential-keys` is `--sequential`).

use crate::connect::{Target, TargetKind, split_endpoints};
use crate::limits::*;
use crate::units::{CountList, parse_count, parse_count_list, parse_duration};
use crate::workload::WorkloadKind;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::time::Duration;

/// atoll-bench: load generator and scenario suite for Atoll.
#[derive(Debug, Parser)]
#[command(name = "atoll-bench", version, about, propagate_version = true)]
pub struct Cli {
    /// Make everything finish in seconds (small key counts, 1 s phases, one client point):
    /// for CI, which checks that it completes, never its timings.
    #[arg(long, global = true)]
    pub smoke: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run one workload against running nodes; prints one JSON report line on stdout.
    Run(RunArgs),
    /// Bulk-load keys 0..N of a key space (txns of up to 128 puts); prints keys/s as JSON.
    Load(LoadArgs),
    /// Run a named scenario on nodes it starts and stops itself (`--list` shows them).
    Scenario(ScenarioArgs),
    /// Start Atoll and etcd on loopback, run the same points on each in alternation, print
    /// a table of medians and ratios (stderr) and JSON lines (stdout), then clean up.
    Compare(CompareArgs),
    /// Run the whole catalogue, compare included, and rewrite the generated section of
    /// benchmarks/RESULTS.md (plots into benchmarks/plots unless --plot-dir says otherwise).
    Suite(SuiteArgs),
}

/// Where to connect and how.
#[derive(Clone, Debug, Args)]
pub struct ConnectArgs {
    /// Protocol: Atoll's native QUIC protocol, or the etcd v3 gRPC API (etcd or any endpoint
    /// speaking it).
    #[arg(long, value_enum, default_value_t = TargetKind::Native)]
    pub target: TargetKind,
    /// Comma-separated endpoints: host:port (native: UDP, QUIC; etcd: TCP, plain http unless
    /// --cacert is given), or for etcd http:// or https:// URLs.
    #[arg(long, default_value = "127.0.0.1:2379")]
    pub endpoints: String,
    /// CA certificate (PEM) to trust; native default: the development CA of local nodes;
    /// etcd default: none, plain http.
    #[arg(long, conflicts_with = "insecure_skip_tls_verify")]
    pub cacert: Option<PathBuf>,
    /// Accept any server certificate (development only; native target only).
    #[arg(long)]
    pub insecure_skip_tls_verify: bool,
    /// Connections (QUIC, or HTTP/2 for etcd) the clients share round-robin (each multiplexes
    /// its clients' requests).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=CONNECTIONS_MAX as u64))]
    pub connections: u64,
}

impl ConnectArgs {
    /// The endpoints and trust as a [`Target`].
    pub fn target(&self) -> Target {
        Target {
            kind: self.target,
            endpoints: split_endpoints(&self.endpoints),
            cacert: self.cacert.clone(),
            insecure_skip_tls_verify: self.insecure_skip_tls_verify,
        }
    }
}

/// The keys and values a command uses.
#[derive(Clone, Debug, Args)]
pub struct KeyArgs {
    /// Prefix of every key written or read.
    #[arg(long, default_value = PREFIX_DEFAULT)]
    pub prefix: String,
    /// Key length in bytes, prefix included (default: just long enough).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=KEY_BYTES_MAX as u64))]
    pub key_size: Option<u64>,
    /// Value length in bytes.
    #[arg(long, default_value_t = VALUE_BYTES_DEFAULT as u64, value_parser = clap::value_parser!(u64).range(0..=VALUE_BYTES_MAX as u64))]
    pub value_size: u64,
    /// Seed of the random keys and of the value.
    #[arg(long, default_value_t = SEED_DEFAULT)]
    pub seed: u64,
}

/// `atoll-bench run`.
#[derive(Clone, Debug, Args)]
pub struct RunArgs {
    /// Connection flags.
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// Key and value flags.
    #[command(flatten)]
    pub key: KeyArgs,
    /// The workload.
    #[arg(long, value_enum, default_value_t = WorkloadKind::Put)]
    pub workload: WorkloadKind,
    /// Concurrent request loops.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u64).range(1..=CLIENTS_MAX as u64))]
    pub clients: u64,
    /// Length of the measured phase (default 10s).
    #[arg(long, value_parser = parse_duration, conflicts_with = "total")]
    pub duration: Option<Duration>,
    /// Stop after this many operations instead of after a duration.
    #[arg(long, value_parser = parse_count)]
    pub total: Option<u64>,
    /// Unrecorded phase before the measured one.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub warmup: Duration,
    /// Number of distinct keys touched.
    #[arg(long, default_value_t = KEY_SPACE_DEFAULT, value_parser = parse_positive_count)]
    pub key_space: u64,
    /// Key n mod key-space for operation n, instead of random keys.
    #[arg(long)]
    pub sequential: bool,
    /// Open loop: target operations per second over all clients, latency counted from each
    /// operation's intended start. Default: closed loop.
    #[arg(long, value_parser = parse_rate)]
    pub rate: Option<f64>,
    /// Serve reads from the local replica without a ReadIndex round (may be stale).
    #[arg(long)]
    pub serializable: bool,
    /// Most keys per range (range workload).
    #[arg(long, default_value_t = RANGE_LIMIT_DEFAULT, value_parser = clap::value_parser!(i64).range(0..))]
    pub range_limit: i64,
    /// Fraction of gets in the mixed workload (0 to 1).
    #[arg(long, default_value_t = 0.9, value_parser = parse_ratio)]
    pub read_ratio: f64,
    /// TTL in seconds of the leases lease-grant grants (the server raises one below its
    /// minimum, 2 s by default, as etcd does).
    #[arg(long, default_value_t = LEASE_TTL_DEFAULT_S, value_parser = clap::value_parser!(i64).range(1..=LEASE_TTL_MAX_S))]
    pub lease_ttl: i64,
    /// Write per-second throughput and latency percentiles to this CSV file.
    #[arg(long)]
    pub csv: Option<PathBuf>,
    /// Draw throughput and latency percentiles per second into this SVG file.
    #[arg(long, value_parser = parse_svg_path)]
    pub plot: Option<PathBuf>,
}

/// `atoll-bench load`.
#[derive(Clone, Debug, Args)]
pub struct LoadArgs {
    /// Connection flags.
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// Key and value flags (the same defaults as `run`, so `run` reads what `load` wrote).
    #[command(flatten)]
    pub key: KeyArgs,
    /// Keys to write: indices 0..N of the key space.
    #[arg(long, default_value_t = KEY_SPACE_DEFAULT, value_parser = parse_positive_count)]
    pub keys: u64,
    /// Puts per txn (1: plain puts); capped at 128 and by the request size limit.
    #[arg(long, default_value_t = LOAD_BATCH_MAX as u64, value_parser = clap::value_parser!(u64).range(1..=LOAD_BATCH_MAX as u64))]
    pub batch: u64,
    /// Concurrent request loops.
    #[arg(long, default_value_t = LOAD_CLIENTS_DEFAULT as u64, value_parser = clap::value_parser!(u64).range(1..=CLIENTS_MAX as u64))]
    pub clients: u64,
}

/// `atoll-bench scenario`.
#[derive(Clone, Debug, Args)]
pub struct ScenarioArgs {
    /// Scenario to run, or `all` for the whole catalogue.
    #[arg(required_unless_present = "list")]
    pub name: Option<String>,
    /// Print the catalogue: each scenario's name and what it measures.
    #[arg(long)]
    pub list: bool,
    /// The settings every scenario takes.
    #[command(flatten)]
    pub flags: ScenarioFlags,
}

/// The settings of scenarios, shared by `scenario` and `suite`.
#[derive(Clone, Debug, Default, Args)]
pub struct ScenarioFlags {
    /// The atoll binary to start (default: `atoll` next to this executable).
    #[arg(long)]
    pub atoll_bin: Option<PathBuf>,
    /// The etcd binary of the etcd comparison scenarios (default: /usr/bin/etcd).
    #[arg(long)]
    pub etcd_bin: Option<PathBuf>,
    /// Keys in the store of the 1M scenarios (default 1000000; 2000 with --smoke).
    #[arg(long, value_parser = parse_positive_count)]
    pub keys: Option<u64>,
    /// Leases of lease-storm, all expiring together (default 100000; 300 with --smoke).
    #[arg(long, value_parser = parse_positive_count)]
    pub storm_leases: Option<u64>,
    /// Warm-up churn of lease-churn before its first memory sample (default 20s; none with
    /// --smoke).
    #[arg(long, value_parser = parse_duration)]
    pub churn_warmup: Option<Duration>,
    /// Measured churn of lease-churn (default 120s; 2s with --smoke); memory is sampled
    /// every 30 s of it.
    #[arg(long, value_parser = parse_duration)]
    pub churn_duration: Option<Duration>,
    /// Runs per measurement, of which the median is reported (default: per scenario; the
    /// rounds of compare).
    #[arg(long, value_parser = parse_positive_count)]
    pub repeat: Option<u64>,
    /// Measured phase of each throughput point (default 5s; 1s with --smoke).
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Client counts of put-get-clients (default 1,16,64,256; 1 with --smoke) and of compare
    /// (default 16,64,256).
    #[arg(long, value_parser = parse_count_list)]
    pub clients: Option<CountList>,
    /// Value length of the loaded keys.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(0..=VALUE_BYTES_MAX as u64))]
    pub value_size: u64,
    /// Directory where scenarios that draw (compare) write their SVG plots.
    #[arg(long)]
    pub plot_dir: Option<PathBuf>,
    /// The settings of the watch scenarios.
    #[command(flatten)]
    pub watch: WatchFlags,
    /// Pre-split of idle-shards: a number N (N prefixes /p000/, /p001/...: 2N+1 shards) or a
    /// comma list of prefixes, as atoll's --initial-split (default 500: 1,001 shards).
    #[arg(long, value_parser = parse_split)]
    pub initial_split: Option<SplitSpec>,
}

/// The settings of `watch-fan-out` and `watch-starvation`.
#[derive(Clone, Debug, Default, Args)]
pub struct WatchFlags {
    /// Watchers of watch-fan-out, all on one prefix (default 10000; 200 with --smoke).
    #[arg(long, value_parser = parse_positive_count)]
    pub watchers: Option<u64>,
    /// Watch streams the watchers are spread over (default 100; 10 with --smoke).
    #[arg(long, value_parser = parse_positive_count)]
    pub watch_streams: Option<u64>,
    /// Connections the watch streams are spread over (default 10; 2 with --smoke).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=CONNECTIONS_MAX as u64))]
    pub watch_connections: Option<u64>,
    /// Events written per second (default 1000 for watch-fan-out, 200 for watch-starvation;
    /// 100 with --smoke).
    #[arg(long, value_parser = parse_rate)]
    pub event_rate: Option<f64>,
    /// Slow prev_kv watchers on each of watch-starvation's two slow streams (default 1000;
    /// 100 with --smoke).
    #[arg(long, value_parser = parse_positive_count)]
    pub slow_watchers: Option<u64>,
}

/// `--initial-split`: how many generated prefixes, or which prefixes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SplitSpec {
    /// N prefixes `/p000/`, `/p001/`... (zero-padded to the width of N - 1).
    Count(u64),
    /// These prefixes.
    Prefixes(Vec<String>),
}

impl SplitSpec {
    /// The prefixes, as atoll's `--initial-split` takes them.
    pub fn prefixes(&self) -> Vec<String> {
        match self {
            SplitSpec::Count(n) => {
                let width = crate::keys::index_digits(*n);
                (0..*n).map(|i| format!("/p{i:0width$}/")).collect()
            }
            SplitSpec::Prefixes(list) => list.clone(),
        }
    }
}

/// A count of prefixes, or a comma list of prefixes with none empty or repeated.
pub fn parse_split(text: &str) -> Result<SplitSpec, String> {
    let text = text.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return match text.parse::<u64>() {
            Ok(n) if n <= SPLIT_PREFIXES_MAX => Ok(SplitSpec::Count(n)),
            _ => Err(format!("{text:?} prefixes is too many; give at most {SPLIT_PREFIXES_MAX}")),
        };
    }
    let prefixes: Vec<String> = text.split(',').map(|p| p.trim().to_string()).collect();
    if let Some(at) = prefixes.iter().position(String::is_empty) {
        return Err(format!(
            "prefix {} of {text:?} is empty; give a count (e.g. 500) or prefixes like /a/,/b/",
            at + 1
        ));
    }
    for (i, p) in prefixes.iter().enumerate() {
        if prefixes[..i].contains(p) {
            return Err(format!("prefix {p:?} is given twice; give each prefix once"));
        }
    }
    Ok(SplitSpec::Prefixes(prefixes))
}

/// `atoll-bench compare`.
#[derive(Clone, Debug, Args)]
pub struct CompareArgs {
    /// Members of each system's cluster: 1, or 3 for a loopback cluster of each.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=7))]
    pub nodes: u64,
    /// Rounds: every point runs once per round on each system, in alternation (default 3;
    /// 1 with --smoke); the table gives the median over rounds.
    #[arg(long, value_parser = parse_positive_count)]
    pub rounds: Option<u64>,
    /// Workloads of the points (comma list of put, get, range, txn-update, mixed).
    #[arg(long, value_delimiter = ',', default_value = "put,get")]
    pub workloads: Vec<WorkloadKind>,
    /// Client counts of the points (default 16,64,256; 16 with --smoke).
    #[arg(long, value_parser = parse_count_list)]
    pub clients: Option<CountList>,
    /// Measured phase of each point (default 5s; 1s with --smoke).
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Unrecorded phase before each point (default 1s; none with --smoke).
    #[arg(long, value_parser = parse_duration)]
    pub warmup: Option<Duration>,
    /// Connections per system (QUIC or HTTP/2); etcd connection `j` dials member `j mod N`.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=CONNECTIONS_MAX as u64))]
    pub connections: u64,
    /// Keys loaded into each system before the points, read and written at random.
    #[arg(long, default_value_t = 10_000, value_parser = parse_positive_count)]
    pub key_space: u64,
    /// Value length of every key.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(0..=VALUE_BYTES_MAX as u64))]
    pub value_size: u64,
    /// The atoll binary to start (default: `atoll` next to this executable).
    #[arg(long)]
    pub atoll_bin: Option<PathBuf>,
    /// The etcd binary (default: /usr/bin/etcd, Debian's etcd-server).
    #[arg(long)]
    pub etcd_bin: Option<PathBuf>,
    /// Write one SVG per workload comparing the systems into this directory.
    #[arg(long)]
    pub plot_dir: Option<PathBuf>,
}

/// `atoll-bench suite`.
#[derive(Clone, Debug, Args)]
pub struct SuiteArgs {
    /// The settings of every scenario.
    #[command(flatten)]
    pub flags: ScenarioFlags,
    /// The results file whose generated section is rewritten (between its markers).
    #[arg(long, default_value = "benchmarks/RESULTS.md")]
    pub results: PathBuf,
    /// Run only these scenarios of the catalogue (comma list; default: all).
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
}

/// A path ending in `.svg` (plots are SVG only).
pub fn parse_svg_path(text: &str) -> Result<PathBuf, String> {
    let path = PathBuf::from(text);
    match path.extension() {
        Some(ext) if ext.eq_ignore_ascii_case("svg") => Ok(path),
        _ => Err(format!("{text:?} does not end in .svg; plots are written as SVG, e.g. run.svg")),
    }
}

/// A count of at least 1.
pub fn parse_positive_count(text: &str) -> Result<u64, String> {
    match parse_count(text)? {
        0 => Err(format!("{text:?} must be at least 1")),
        n => Ok(n),
    }
}

/// A rate in operations per second: a finite number above 0.
pub fn parse_rate(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(rate) if rate.is_finite() && rate > 0.0 => Ok(rate),
        _ => Err(format!("{text:?} is not a rate; give operations per second above 0, e.g. 5000")),
    }
}

/// A fraction from 0 to 1.
pub fn parse_ratio(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(ratio) if (0.0..=1.0).contains(&ratio) => Ok(ratio),
        _ => Err(format!("{text:?} is not a ratio; give a number from 0 to 1, e.g. 0.9")),
    }
}

#[cfg(test)]
#[path = "cli_tests.rs"]
mod tests;
