//! What every scenario is given: the atoll binary, the store size, how many runs and how long
//! each throughput point lasts, all shortened by `--smoke`.

use super::emit::{Sink, emit_to, merged};
use crate::cli::{ScenarioFlags, SplitSpec, WatchFlags};
use crate::limits::{SMOKE_DURATION, SMOKE_KEYS};
use anyhow::{Context as _, bail};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::time::Duration;

/// Keys in the store of the "1m" scenarios (issue 2's figures are at one million keys).
pub const STORE_KEYS_DEFAULT: u64 = 1_000_000;
/// Measured phase of each throughput point.
pub const POINT_DURATION_DEFAULT: Duration = Duration::from_secs(5);
/// Warm-up before each throughput point (none under `--smoke`).
pub const POINT_WARMUP: Duration = Duration::from_secs(1);
/// Client counts of the throughput curves.
pub const CLIENT_POINTS_DEFAULT: [u64; 4] = [1, 16, 64, 256];

/// The settings of a scenario run.
#[derive(Clone, Debug)]
pub struct ScenarioContext {
    /// Everything in seconds, for CI.
    pub smoke: bool,
    /// The `atoll` binary to start.
    pub atoll_bin: PathBuf,
    /// The etcd binary of the comparison scenarios.
    pub etcd_bin: PathBuf,
    /// Keys of the large-store scenarios.
    pub store_keys: u64,
    /// Leases of lease-storm, when given; else its own default.
    pub storm_leases: Option<u64>,
    /// Warm-up and measured churn of lease-churn, when given; else its own defaults.
    pub churn_warmup: Option<Duration>,
    pub churn_duration: Option<Duration>,
    /// Runs per measurement, when given; else each scenario's own default.
    pub repeat: Option<u64>,
    /// Measured phase of a throughput point.
    pub duration: Duration,
    /// Warm-up before a throughput point.
    pub warmup: Duration,
    /// Client counts of the throughput curves.
    pub clients: Vec<u64>,
    /// Value length of loaded keys.
    pub value_size: usize,
    /// `--clients` as given, if it was (compare has its own default client points).
    pub clients_flag: Option<Vec<u64>>,
    /// Where scenarios that draw plots write them (`--plot-dir`); none: no plots.
    pub plot_dir: Option<PathBuf>,
    /// The watch scenarios' flags (each scenario picks its own defaults).
    pub watch: WatchFlags,
    /// `--initial-split` of idle-shards, if given.
    pub initial_split: Option<SplitSpec>,
    /// Where `suite` collects the measurements.
    pub sink: Option<Sink>,
}

impl ScenarioContext {
    /// The settings from the flags; `smoke` picks the small defaults.
    pub fn from_args(args: &ScenarioFlags, smoke: bool) -> anyhow::Result<ScenarioContext> {
        let atoll_bin = match &args.atoll_bin {
            Some(path) => path.clone(),
            None => default_atoll_bin()?,
        };
        let clients = match (&args.clients, smoke) {
            (Some(list), _) => list.0.clone(),
            (None, true) => vec![CLIENT_POINTS_DEFAULT[0]],
            (None, false) => CLIENT_POINTS_DEFAULT.to_vec(),
        };
        Ok(ScenarioContext {
            smoke,
            atoll_bin,
            etcd_bin: args.etcd_bin.clone().unwrap_or_else(super::etcd_node::default_etcd_bin),
            store_keys: args.keys.unwrap_or(if smoke { SMOKE_KEYS } else { STORE_KEYS_DEFAULT }),
            storm_leases: args.storm_leases,
            churn_warmup: args.churn_warmup,
            churn_duration: args.churn_duration,
            repeat: args.repeat,
            duration: args.duration.unwrap_or(if smoke {
                SMOKE_DURATION
            } else {
                POINT_DURATION_DEFAULT
            }),
            warmup: if smoke { Duration::ZERO } else { POINT_WARMUP },
            clients,
            value_size: args.value_size as usize,
            clients_flag: args.clients.as_ref().map(|list| list.0.clone()),
            plot_dir: args.plot_dir.clone(),
            watch: args.watch.clone(),
            initial_split: args.initial_split.clone(),
            sink: None,
        })
    }

    /// Prints one measurement line (and hands it to `suite`'s sink, if any).
    pub fn emit(
        &self,
        scenario: &str,
        metric: &str,
        value: f64,
        unit: &str,
        params: Value,
    ) -> anyhow::Result<()> {
        emit_to(self.sink.as_ref(), scenario, metric, value, unit, params)
    }

    /// Runs per measurement: `--repeat` if given, else `normal` (or `smoke` under `--smoke`).
    pub fn runs(&self, normal: u64, smoke: u64) -> u64 {
        self.repeat.unwrap_or(if self.smoke { smoke } else { normal }).max(1)
    }

    /// Parameters every measurement carries, plus `extra`.
    pub fn params(&self, extra: Value) -> Value {
        merged(json!({ "smoke": self.smoke }), extra)
    }

    /// Whether `who` (a scenario, a comparison) runs etcd: yes if it is installed. If not, a
    /// smoke run goes on without it, saying so on stderr (`without` says how it goes on), and
    /// a full run fails and says how to install it: CI needs no etcd, a measurement does.
    pub fn etcd_wanted(&self, who: &str, without: &str) -> anyhow::Result<bool> {
        if self.etcd_bin.is_file() {
            return Ok(true);
        }
        let how = "install it with `apt-get install -y etcd-server` or pass --etcd-bin";
        if self.smoke {
            eprintln!(
                "atoll-bench: {who}: no etcd at {} ({how}); {without}",
                self.etcd_bin.display()
            );
            return Ok(false);
        }
        bail!("no etcd at {}; {how}", self.etcd_bin.display())
    }
}

/// `atoll` next to this executable (both are built into the same target directory).
pub fn default_atoll_bin() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("cannot locate this executable")?;
    Ok(exe.with_file_name(format!("atoll{}", std::env::consts::EXE_SUFFIX)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser as _;

    fn must_context(args: &[&str]) -> ScenarioContext {
        let argv = ["atoll-bench", "scenario"].into_iter().chain(args.iter().copied());
        let cli = Cli::try_parse_from(argv).expect("parses");
        let Command::Scenario(s) = cli.command else { panic!("expected scenario") };
        ScenarioContext::from_args(&s.flags, cli.smoke).expect("context")
    }

    #[test]
    fn smoke_makes_everything_small() {
        let ctx = must_context(&["all", "--smoke"]);
        assert_eq!(
            (ctx.store_keys, ctx.duration, ctx.warmup),
            (SMOKE_KEYS, SMOKE_DURATION, Duration::ZERO)
        );
        assert_eq!(ctx.clients, vec![1]);
        assert_eq!(ctx.runs(200, 20), 20);
        let ctx = must_context(&["all"]);
        assert_eq!((ctx.store_keys, ctx.duration), (1_000_000, POINT_DURATION_DEFAULT));
        assert_eq!(ctx.clients, vec![1, 16, 64, 256]);
        assert_eq!(ctx.runs(200, 20), 200);
        assert!(ctx.atoll_bin.ends_with("atoll"));
    }

    #[test]
    fn flags_override_the_defaults() {
        let ctx = must_context(&["x", "--smoke", "--keys=5000", "--repeat=3", "--clients=2,4"]);
        assert_eq!((ctx.store_keys, ctx.runs(200, 20)), (5000, 3));
        assert_eq!(ctx.clients, vec![2, 4]);
        let params = ctx.params(json!({"keys": 5000}));
        assert_eq!(params, json!({"smoke": true, "keys": 5000}));
    }
}
