//! The generated section of RESULTS.md: its text, and how it replaces the previous one
//! between the marker lines without touching the rest of the file.

use super::machine::Machine;
use crate::scenario::emit::{Measurement, Summary};
use anyhow::bail;
use std::fmt::Write as _;
use std::path::Path;

/// The line that opens the generated section.
pub const BEGIN_MARKER: &str =
    "<!-- BEGIN atoll-bench suite: generated, do not edit by hand; rerun `atoll-bench suite` -->";
/// The line that closes it.
pub const END_MARKER: &str = "<!-- END atoll-bench suite -->";

/// Everything one suite run found.
#[derive(Clone, Debug)]
pub struct SuiteRun {
    /// When it started, UTC.
    pub date: String,
    /// How long it took.
    pub minutes: f64,
    /// The commit it was built from.
    pub commit: String,
    /// The machine, read at the start.
    pub machine: Machine,
    /// The load average at the end.
    pub load_after: Option<f64>,
    /// Its arguments.
    pub command: String,
    /// A smoke run: its figures prove the scenarios run, they are no measurements.
    pub smoke: bool,
    /// The summaries scenarios wrote (the comparisons' tables...).
    pub summaries: Vec<Summary>,
    /// Every JSON line the scenarios emitted.
    pub measurements: Vec<Measurement>,
    /// Scenarios that failed.
    pub failed: Vec<String>,
}

/// `path` as a link from a file in `base`: relative when under it.
fn link(path: &Path, base: &Path) -> String {
    let relative = path.strip_prefix(base).unwrap_or(path);
    relative.display().to_string()
}

fn load_text(load: Option<f64>) -> String {
    load.map_or_else(|| "unknown".into(), |l| format!("{l:.2}"))
}

/// The section's text, markers included; plot links are relative to `results_dir`.
pub fn render_section(run: &SuiteRun, results_dir: &Path) -> String {
    let mut out = format!("{BEGIN_MARKER}\n## Latest `atoll-bench suite` run\n\n");
    let _ = writeln!(out, "- Date: {} (took {:.1} min)", run.date, run.minutes);
    let _ = writeln!(out, "- Commit: `{}`", run.commit);
    let _ = writeln!(
        out,
        "- Machine: {}; load average {} at the start, {} at the end",
        run.machine.describe(),
        load_text(run.machine.load_average),
        load_text(run.load_after)
    );
    let _ = writeln!(out, "- Command: `atoll-bench {}`", run.command);
    if run.smoke {
        out.push_str(
            "- **Smoke run**: seconds-long phases on tiny stores; the figures only show that \
             every scenario ran, they are not measurements.\n",
        );
    }
    if !run.failed.is_empty() {
        let _ = writeln!(out, "- **Failed scenarios**: {}", run.failed.join(", "));
    }
    out.push_str(
        "\nRatios are Atoll's median over etcd's at the same point: ops/s above 1 and p99 \
         below 1 favour Atoll. `atoll` is the native QUIC client; `atoll-grpc` is Atoll's \
         etcd gRPC gateway driven by the same gRPC client as `etcd`, so that pair compares \
         the servers alone. The machine is shared and noisy: compare figures within one run.\n",
    );
    for summary in &run.summaries {
        let _ = write!(out, "\n### `{}`\n\n{}\n", summary.scenario, summary.text);
        for plot in &summary.plots {
            let name =
                plot.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_default();
            let _ = writeln!(out, "![{name}]({})", link(plot, results_dir));
        }
    }
    out.push_str(&measurement_table(&run.measurements, &run.summaries));
    out.push_str(END_MARKER);
    out.push('\n');
    out
}

/// Every measurement of the scenarios that wrote no summary (those have their tables above),
/// with the parameters that tell two lines of one metric apart.
fn measurement_table(measurements: &[Measurement], summaries: &[Summary]) -> String {
    let summarised = |m: &&Measurement| summaries.iter().any(|s| s.scenario == m.scenario);
    let others: Vec<&Measurement> = measurements.iter().filter(|m| !summarised(m)).collect();
    if others.is_empty() {
        return String::new();
    }
    let mut out = String::from(
        "\n### Other scenarios\n\n| scenario | metric | point | value | unit |\n| --- | --- | --- | ---: | --- |\n",
    );
    for m in others {
        let point = ["target", "clients", "stop", "prefix", "readers"]
            .iter()
            .filter_map(|key| {
                m.params.get(*key).map(|v| format!("{key} {}", v.to_string().trim_matches('"')))
            })
            .collect::<Vec<_>>()
            .join(", ");
        let _ =
            writeln!(out, "| {} | {} | {point} | {} | {} |", m.scenario, m.metric, m.value, m.unit);
    }
    out.push('\n');
    out
}

/// `existing` with its generated section replaced by `section` (appended after a blank line
/// when there is none yet). A begin marker without its end is an error: the hand-written text
/// after it would be lost.
pub fn replace_generated(existing: &str, section: &str) -> anyhow::Result<String> {
    let Some(begin) = existing.find(BEGIN_MARKER) else {
        let mut text = existing.trim_end().to_string();
        if !text.is_empty() {
            text.push_str("\n\n");
        }
        text.push_str(section);
        return Ok(text);
    };
    let Some(end) = existing[begin..].find(END_MARKER).map(|at| begin + at) else {
        bail!(
            "the results file has the suite's begin marker but not its end marker {END_MARKER:?}; restore it"
        )
    };
    let after = existing[end + END_MARKER.len()..].trim_start_matches('\n');
    let mut text = format!("{}{}", &existing[..begin], section);
    if !after.is_empty() {
        text.push('\n');
        text.push_str(after);
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const HISTORY: &str = "# Results\n\nHand-written history.\n";

    #[test]
    fn the_section_is_appended_once_then_replaced_in_place() {
        let first = replace_generated(HISTORY, &format!("{BEGIN_MARKER}\none\n{END_MARKER}\n"))
            .expect("append");
        assert!(first.starts_with(HISTORY));
        assert!(first.ends_with(&format!("{BEGIN_MARKER}\none\n{END_MARKER}\n")));
        let with_tail = format!("{first}\n## Later, by hand\n");
        let second = replace_generated(&with_tail, &format!("{BEGIN_MARKER}\ntwo\n{END_MARKER}\n"))
            .expect("replace");
        assert!(second.starts_with(HISTORY) && second.ends_with("## Later, by hand\n"), "{second}");
        assert!(second.contains("\ntwo\n") && !second.contains("\none\n"));
        assert_eq!(second.matches(BEGIN_MARKER).count(), 1);
        assert_eq!(replace_generated("", "S\n").expect("empty"), "S\n");
    }

    #[test]
    fn a_lost_end_marker_is_refused() {
        let broken = format!("{HISTORY}{BEGIN_MARKER}\nold\n");
        let err = replace_generated(&broken, "new").expect_err("no end");
        assert!(err.to_string().contains("end marker") && !err.to_string().contains('\n'));
    }

    #[test]
    fn the_section_names_machine_commit_and_every_figure() {
        let measurement = |scenario: &str, metric: &str, params| Measurement {
            scenario: scenario.into(),
            metric: metric.into(),
            value: 12.5,
            unit: "ms".into(),
            params,
        };
        let run = SuiteRun {
            date: "2026-11-22 04:00 UTC".into(),
            minutes: 3.25,
            commit: "abc1234".into(),
            machine: Machine {
                cores: 2,
                cpu_model: Some("EPYC".into()),
                memory_bytes: None,
                load_average: Some(1.5),
            },
            load_after: None,
            command: "suite --smoke".into(),
            smoke: true,
            summaries: vec![Summary {
                scenario: "compare".into(),
                text: "| system | ops/s |".into(),
                plots: vec!["benchmarks/plots/compare-put.svg".into()],
            }],
            measurements: vec![
                measurement("count-only-1m", "count_only_median_ms", json!({"keys": 5})),
                measurement(
                    "put-get-clients",
                    "put_p99_us",
                    json!({"clients": 16, "target": "native"}),
                ),
                measurement("compare", "put_ops_per_s", json!({})),
            ],
            failed: vec!["restart-1m".into()],
        };
        let text = render_section(&run, Path::new("benchmarks"));
        assert!(text.starts_with(BEGIN_MARKER) && text.ends_with(&format!("{END_MARKER}\n")));
        for needle in [
            "2026-11-22 04:00 UTC",
            "`abc1234`",
            "2 cores (EPYC), unknown RAM; load average 1.50 at the start, unknown at the end",
            "`atoll-bench suite --smoke`",
            "**Smoke run**",
            "**Failed scenarios**: restart-1m",
            "| count-only-1m | count_only_median_ms |  | 12.5 | ms |",
            "| put-get-clients | put_p99_us | target native, clients 16 | 12.5 | ms |",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in\n{text}");
        }
        assert!(!text.contains("| compare |"), "comparisons have their own tables");
        assert!(text.contains(
            "### `compare`\n\n| system | ops/s |\n![compare-put](plots/compare-put.svg)"
        ));
        assert_eq!(
            link(Path::new("benchmarks/plots/a.svg"), Path::new("benchmarks")),
            "plots/a.svg"
        );
    }
}
