//! `atoll-bench suite`: runs the scenario catalogue (the comparisons with etcd included) and
//! rewrites the generated section of `benchmarks/RESULTS.md`: when and where it ran (machine,
//! commit), the tables of Atoll against etcd with links to their SVG plots (written beside
//! it, in `plots/`), and every other scenario's figures. The section sits between two marker
//! lines; the hand-written history around it is kept as it is.

pub mod machine;
pub mod section;

use crate::cli::SuiteArgs;
use crate::scenario::emit::Summary;
use crate::scenario::{self, CATALOGUE, context::ScenarioContext};
use anyhow::{Context as _, bail};
use machine::Machine;
use section::{SuiteRun, render_section, replace_generated};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// `atoll-bench suite`.
pub async fn suite_command(args: SuiteArgs, smoke: bool) -> anyhow::Result<()> {
    let results_dir = match args.results.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => Path::new(".").to_path_buf(),
    };
    if !results_dir.is_dir() {
        bail!(
            "no directory {} for --results {}; run from the repository root or pass --results",
            results_dir.display(),
            args.results.display()
        );
    }
    let names = selected(&args.only)?;
    let mut flags = args.flags.clone();
    if flags.plot_dir.is_none() {
        flags.plot_dir = Some(results_dir.join("plots"));
    }
    let mut ctx = ScenarioContext::from_args(&flags, smoke)?;
    let sink = Arc::new(Mutex::new(Vec::new()));
    ctx.sink = Some(Arc::clone(&sink));
    let machine = Machine::read();
    let date = machine::utc_now();
    // Read before the run: commits made while it runs did not build the binaries measured.
    let commit = machine::commit(&results_dir);
    let started = Instant::now();
    let (summaries, failed) = run_all(&ctx, &names).await;
    let measurements = std::mem::take(&mut *sink.lock().unwrap_or_else(|p| p.into_inner()));
    let run = SuiteRun {
        date,
        minutes: started.elapsed().as_secs_f64() / 60.0,
        commit,
        machine,
        load_after: Machine::read().load_average,
        command: std::env::args().skip(1).collect::<Vec<_>>().join(" "),
        smoke,
        summaries,
        measurements,
        failed: failed.clone(),
    };
    let existing = match std::fs::read_to_string(&args.results) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", args.results.display())),
    };
    let text = replace_generated(&existing, &render_section(&run, &results_dir))?;
    std::fs::write(&args.results, text)
        .with_context(|| format!("cannot write {}", args.results.display()))?;
    eprintln!("atoll-bench: suite: rewrote the generated section of {}", args.results.display());
    if !failed.is_empty() {
        bail!("{} scenarios failed (listed in the results): {}", failed.len(), failed.join(", "));
    }
    Ok(())
}

/// The scenarios to run: `--only`'s, checked against the catalogue, or all of it.
fn selected(only: &[String]) -> anyhow::Result<Vec<&'static str>> {
    if only.is_empty() {
        return Ok(CATALOGUE.iter().map(|e| e.name).collect());
    }
    only.iter()
        .map(|name| match CATALOGUE.iter().find(|e| e.name == name.as_str()) {
            Some(entry) => Ok(entry.name),
            None => {
                let names: Vec<&str> = CATALOGUE.iter().map(|e| e.name).collect();
                bail!("unknown scenario {name:?} in --only; choose from {}", names.join(", "))
            }
        })
        .collect()
}

/// Runs every scenario named, even after one fails, so one failure does not hide the other
/// figures; returns the summaries they wrote and the names of the failed scenarios.
async fn run_all(ctx: &ScenarioContext, names: &[&str]) -> (Vec<Summary>, Vec<String>) {
    let mut summaries = Vec::new();
    let mut failed = Vec::new();
    for &name in names {
        eprintln!("atoll-bench: suite: scenario {name}");
        match scenario::run_named(name, ctx).await {
            Ok(summary) => summaries.extend(summary),
            Err(e) => {
                eprintln!("atoll-bench: suite: scenario {name} failed: {e:#}");
                failed.push(name.to_string());
            }
        }
    }
    (summaries, failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_names_scenarios_of_the_catalogue() {
        assert_eq!(selected(&[]).expect("all").len(), CATALOGUE.len());
        assert_eq!(selected(&["compare".into()]).expect("one"), vec!["compare"]);
        let err = selected(&["nope".into()]).expect_err("unknown");
        assert!(err.to_string().contains("count-only-1m"), "{err}");
    }
}
