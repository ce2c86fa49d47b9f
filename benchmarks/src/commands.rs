//! `run` and `load`: turn their flags into a run or a load, connect, and print the one JSON
//! line on stdout.

use crate::cli::{KeyArgs, LoadArgs, RunArgs};
use crate::connect::ClientPool;
use crate::engine::{RunSpec, run};
use crate::keys::{KeySpace, make_value};
use crate::limits::{SMOKE_DURATION, SMOKE_KEYS, SMOKE_TOTAL_MAX};
use crate::load::{LoadSpec, load};
use crate::progress::progress_wanted;
use crate::schedule::{Pacing, StopAt};
use crate::workload::WorkloadSpec;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Default length of the measured phase of `run`.
const RUN_DURATION_DEFAULT: Duration = Duration::from_secs(10);

/// The key space `size` keys under the flags' prefix and key size.
pub fn key_space(key: &KeyArgs, size: u64) -> anyhow::Result<KeySpace> {
    KeySpace::new(&key.prefix, size, key.key_size.map(|b| b as usize))
}

/// The run `args` describe; `smoke` shortens it to seconds.
pub fn run_spec(args: &RunArgs, smoke: bool) -> anyhow::Result<RunSpec> {
    let mut stop = match (args.duration, args.total) {
        (_, Some(total)) => StopAt::Total(total),
        (Some(duration), None) => StopAt::Elapsed(duration),
        (None, None) => StopAt::Elapsed(RUN_DURATION_DEFAULT),
    };
    let mut warmup = args.warmup;
    if smoke {
        stop = match stop {
            StopAt::Total(total) => StopAt::Total(total.min(SMOKE_TOTAL_MAX)),
            StopAt::Elapsed(d) => StopAt::Elapsed(d.min(SMOKE_DURATION)),
        };
        warmup = Duration::ZERO;
    }
    let workload = WorkloadSpec {
        kind: args.workload,
        keys: key_space(&args.key, args.key_space)?,
        sequential: args.sequential,
        value: Arc::new(make_value(args.key.value_size as usize, args.key.seed)),
        serializable: args.serializable,
        range_limit: args.range_limit,
        read_ratio: args.read_ratio,
        seed: args.key.seed,
        lease_ttl_s: args.lease_ttl,
    };
    Ok(RunSpec {
        workload: Arc::new(workload),
        clients: args.clients as usize,
        stop,
        warmup,
        pacing: args.rate.map_or(Pacing::Closed, |ops_per_s| Pacing::Open { ops_per_s }),
        progress: progress_wanted(),
        keep_intervals: args.csv.is_some() || args.plot.is_some(),
    })
}

/// `atoll-bench run`.
pub async fn run_command(args: RunArgs, smoke: bool) -> anyhow::Result<()> {
    let spec = run_spec(&args, smoke)?;
    for path in [&args.csv, &args.plot].into_iter().flatten() {
        check_writable_dir(path)?;
    }
    let target = args.connect.target();
    let pool = ClientPool::connect_target(&target, args.connect.connections as usize).await?;
    let outcome = run(&pool, &spec).await?;
    if let Some(path) = &args.csv {
        crate::csv::write_csv(path, &outcome.intervals)?;
    }
    if let Some(path) = &args.plot {
        let rows = crate::csv::second_rows(&outcome.intervals);
        let title = format!(
            "{} at {} clients ({:?} target)",
            outcome.report.workload, outcome.report.clients, args.connect.target
        )
        .to_lowercase();
        let svg = crate::plot::render_svg(&title, &crate::plot::run_panels(&rows))?;
        crate::plot::write_svg(path, &svg)?;
    }
    println!("{}", outcome.report.to_json_line()?);
    Ok(())
}

/// Fails before a run if the directory `path` would be written into does not exist, so a
/// typo costs no run.
pub fn check_writable_dir(path: &Path) -> anyhow::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        anyhow::bail!("cannot write {}: no directory {}", path.display(), dir.display());
    }
    Ok(())
}

/// The load `args` describe; `smoke` caps the key count.
pub fn load_spec(args: &LoadArgs, smoke: bool) -> anyhow::Result<LoadSpec> {
    let keys = if smoke { args.keys.min(SMOKE_KEYS) } else { args.keys };
    Ok(LoadSpec {
        keys: key_space(&args.key, keys)?,
        value: Arc::new(make_value(args.key.value_size as usize, args.key.seed)),
        batch: args.batch as usize,
        clients: args.clients as usize,
        progress: progress_wanted(),
    })
}

/// `atoll-bench load`.
pub async fn load_command(args: LoadArgs, smoke: bool) -> anyhow::Result<()> {
    let spec = load_spec(&args, smoke)?;
    let target = args.connect.target();
    let pool = ClientPool::connect_target(&target, args.connect.connections as usize).await?;
    let report = load(&pool, spec).await?;
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser as _;

    fn must_run_args(args: &[&str]) -> RunArgs {
        let argv = ["atoll-bench", "run"].into_iter().chain(args.iter().copied());
        match Cli::try_parse_from(argv).expect("parses").command {
            Command::Run(run) => run,
            other => panic!("expected run, got {other:?}"),
        }
    }

    #[test]
    fn flags_become_a_run() {
        let spec = run_spec(&must_run_args(&["--rate=100", "--total=50"]), false).expect("spec");
        assert_eq!(spec.pacing, Pacing::Open { ops_per_s: 100.0 });
        assert_eq!(spec.stop, StopAt::Total(50));
        let spec = run_spec(&must_run_args(&[]), false).expect("spec");
        assert_eq!(
            (spec.pacing, spec.stop),
            (Pacing::Closed, StopAt::Elapsed(RUN_DURATION_DEFAULT))
        );
        assert_eq!(spec.workload.value.len(), 256);
        assert!(!spec.keep_intervals);
        let spec = run_spec(&must_run_args(&["--plot=run.svg"]), false).expect("spec");
        assert!(spec.keep_intervals, "a plot needs the per-second rows");
    }

    #[test]
    fn output_files_need_an_existing_directory() {
        check_writable_dir(Path::new("run.svg")).expect("current directory");
        let err = check_writable_dir(Path::new("/nonexistent/dir/run.svg")).expect_err("no dir");
        assert!(err.to_string().contains("/nonexistent/dir"), "{err}");
    }

    #[test]
    fn smoke_shortens_runs_to_seconds() {
        let spec = run_spec(&must_run_args(&["--duration=1m", "--warmup=5s"]), true).expect("spec");
        assert_eq!((spec.stop, spec.warmup), (StopAt::Elapsed(SMOKE_DURATION), Duration::ZERO));
        let spec = run_spec(&must_run_args(&["--total=1M"]), true).expect("spec");
        assert_eq!(spec.stop, StopAt::Total(SMOKE_TOTAL_MAX));
    }

    #[test]
    fn a_key_size_too_small_for_the_key_space_is_an_error() {
        let err = run_spec(&must_run_args(&["--key-size=4"]), false).expect_err("too small");
        assert!(err.to_string().contains("--key-size"), "{err}");
    }
}
