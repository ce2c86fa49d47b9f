//! What `compare` makes of its runs: the median over rounds of each system's throughput and
//! latency at each point, the ratios to etcd, the table and the plots. Pure functions of the
//! samples, so they are tested without a server.

use crate::plot::{Panel, Series};
use crate::report::RunReport;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// The systems `compare` measures, in the order of the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum System {
    /// Atoll through its native protocol (QUIC with TLS, `atoll-router`'s client).
    Atoll,
    /// Atoll through its etcd gRPC gateway, with the same client as etcd's line.
    AtollGrpc,
    /// etcd 3.4 through its gRPC API.
    Etcd,
}

impl System {
    /// The name in tables and JSON lines.
    pub fn name(self) -> &'static str {
        match self {
            System::Atoll => "atoll",
            System::AtollGrpc => "atoll-grpc",
            System::Etcd => "etcd",
        }
    }
}

/// One run of one point on one system.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// Which system.
    pub system: System,
    /// Workload name.
    pub workload: String,
    /// Concurrent request loops.
    pub clients: u64,
    /// Successful operations per second.
    pub ops_per_s: f64,
    /// Median latency, µs.
    pub p50_us: u64,
    /// 99th percentile latency, µs.
    pub p99_us: u64,
    /// Failed operations.
    pub errors: u64,
}

impl Sample {
    /// The sample of `report`, measured on `system`.
    pub fn from_report(system: System, report: &RunReport) -> Sample {
        Sample {
            system,
            workload: report.workload.clone(),
            clients: report.clients as u64,
            ops_per_s: report.ops_per_s,
            p50_us: report.latency_us.p50,
            p99_us: report.latency_us.p99,
            errors: report.errors.values().sum(),
        }
    }
}

/// One line of the table: a system at a point, medians over the rounds.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Row {
    /// Which system.
    pub system: System,
    /// Workload name.
    pub workload: String,
    /// Concurrent request loops.
    pub clients: u64,
    /// Rounds measured.
    pub rounds: usize,
    /// Median throughput over the rounds.
    pub ops_per_s: f64,
    /// Median of the rounds' p50, ms.
    pub p50_ms: f64,
    /// Median of the rounds' p99, ms.
    pub p99_ms: f64,
    /// Failed operations over all rounds.
    pub errors: u64,
    /// `ops_per_s` over etcd's at the same point (above 1: more throughput than etcd).
    pub ops_ratio: Option<f64>,
    /// `p99_ms` over etcd's at the same point (below 1: a lower tail than etcd).
    pub p99_ratio: Option<f64>,
}

fn median(values: impl Iterator<Item = f64>) -> f64 {
    crate::scenario::emit::median(&values.collect::<Vec<_>>())
}

fn ratio(value: f64, base: f64) -> Option<f64> {
    (base > 0.0).then(|| crate::report::round3(value / base))
}

/// The rows of `samples`: workloads in the order they first appear, then clients ascending,
/// then systems in [`System`] order. Ratios compare medians, and are missing without an etcd
/// row at the point.
pub fn summarise(samples: &[Sample]) -> Vec<Row> {
    let mut workloads: Vec<&str> = Vec::new();
    let mut groups: BTreeMap<(usize, u64, System), Vec<&Sample>> = BTreeMap::new();
    for sample in samples {
        let index = match workloads.iter().position(|w| *w == sample.workload) {
            Some(index) => index,
            None => {
                workloads.push(&sample.workload);
                workloads.len() - 1
            }
        };
        groups.entry((index, sample.clients, sample.system)).or_default().push(sample);
    }
    let mut rows: Vec<Row> = groups
        .into_iter()
        .map(|((_, clients, system), group)| Row {
            system,
            workload: group[0].workload.clone(),
            clients,
            rounds: group.len(),
            ops_per_s: median(group.iter().map(|s| s.ops_per_s)),
            p50_ms: median(group.iter().map(|s| s.p50_us as f64 / 1000.0)),
            p99_ms: median(group.iter().map(|s| s.p99_us as f64 / 1000.0)),
            errors: group.iter().map(|s| s.errors).sum(),
            ops_ratio: None,
            p99_ratio: None,
        })
        .collect();
    let etcd: Vec<Row> = rows.iter().filter(|r| r.system == System::Etcd).cloned().collect();
    for row in &mut rows {
        let base = etcd.iter().find(|e| e.workload == row.workload && e.clients == row.clients);
        if let Some(base) = base {
            row.ops_ratio = ratio(row.ops_per_s, base.ops_per_s);
            row.p99_ratio = ratio(row.p99_ms, base.p99_ms);
        }
    }
    rows
}

/// Thousands separated by commas, no decimals: `12,345`.
pub fn thousands(value: f64) -> String {
    let digits = format!("{:.0}", value.max(0.0));
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The Markdown table of `rows`.
pub fn table_markdown(rows: &[Row]) -> String {
    let mut out = String::from(
        "| system | workload | clients | ops/s | p50 ms | p99 ms | ops/s ÷ etcd | p99 ÷ etcd | errors |\n\
         | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
    );
    let shown = |r: Option<f64>| r.map_or_else(|| "–".to_string(), |r| format!("{r:.2}"));
    for r in rows {
        // Writing to a String cannot fail.
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {:.2} | {:.2} | {} | {} | {} |",
            r.system.name(),
            r.workload,
            r.clients,
            thousands(r.ops_per_s),
            r.p50_ms,
            r.p99_ms,
            shown(r.ops_ratio),
            shown(r.p99_ratio),
            r.errors
        );
    }
    out
}

/// The two panels of `workload`'s plot: each system's throughput and p99 against the client
/// count.
pub fn workload_panels(rows: &[Row], workload: &str) -> Vec<Panel> {
    let mine: Vec<&Row> = rows.iter().filter(|r| r.workload == workload).collect();
    let mut clients: Vec<u64> = mine.iter().map(|r| r.clients).collect();
    clients.sort_unstable();
    clients.dedup();
    let mut systems: Vec<System> = mine.iter().map(|r| r.system).collect();
    systems.sort_unstable();
    systems.dedup();
    let series = |value: &dyn Fn(&Row) -> f64| -> Vec<Series> {
        systems
            .iter()
            .map(|&system| Series {
                name: system.name().into(),
                points: mine
                    .iter()
                    .filter(|r| r.system == system)
                    .filter_map(|r| {
                        let x = clients.iter().position(|c| *c == r.clients)?;
                        Some((x as f64, value(r)))
                    })
                    .collect(),
            })
            .collect()
    };
    let x_names = Some(clients.iter().map(u64::to_string).collect());
    vec![
        Panel {
            title: format!("{workload}: throughput (median)"),
            x_desc: "clients".into(),
            y_desc: "ops/s".into(),
            series: series(&|r| r.ops_per_s),
            x_names: x_names.clone(),
        },
        Panel {
            title: format!("{workload}: p99 latency (median)"),
            x_desc: "clients".into(),
            y_desc: "ms".into(),
            series: series(&|r| r.p99_ms),
            x_names,
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(system: System, workload: &str, clients: u64, ops: f64, p99_us: u64) -> Sample {
        Sample {
            system,
            workload: workload.into(),
            clients,
            ops_per_s: ops,
            p50_us: p99_us / 4,
            p99_us,
            errors: 0,
        }
    }

    fn three_rounds() -> Vec<Sample> {
        let mut samples = Vec::new();
        for (round, noise) in [1.0, 0.5, 1.1].into_iter().enumerate() {
            samples.push(sample(System::Etcd, "put", 16, 1000.0 * noise, 4000));
            samples.push(sample(System::Atoll, "put", 16, 2000.0 * noise, 2000));
            samples.push(sample(System::AtollGrpc, "get", 16, 3000.0, 1000 + round as u64));
            samples.push(sample(System::Etcd, "get", 16, 1500.0, 2000));
        }
        samples
    }

    #[test]
    fn rows_are_medians_over_rounds_with_ratios_to_etcd() {
        let rows = summarise(&three_rounds());
        let order: Vec<(&str, System)> =
            rows.iter().map(|r| (r.workload.as_str(), r.system)).collect();
        assert_eq!(
            order,
            vec![
                ("put", System::Atoll),
                ("put", System::Etcd),
                ("get", System::AtollGrpc),
                ("get", System::Etcd)
            ]
        );
        let atoll = &rows[0];
        assert_eq!((atoll.rounds, atoll.ops_per_s, atoll.p99_ms), (3, 2000.0, 2.0));
        assert_eq!((atoll.ops_ratio, atoll.p99_ratio), (Some(2.0), Some(0.5)));
        assert_eq!(rows[1].ops_ratio, Some(1.0));
        assert_eq!((rows[2].ops_ratio, rows[2].p99_ms), (Some(2.0), 1.001));
    }

    #[test]
    fn without_etcd_there_is_no_ratio() {
        let rows = summarise(&[sample(System::Atoll, "put", 1, 10.0, 100)]);
        assert_eq!((rows[0].ops_ratio, rows[0].p99_ratio), (None, None));
        assert!(
            table_markdown(&rows).contains("| atoll | put | 1 | 10 | 0.03 | 0.10 | – | – | 0 |")
        );
    }

    #[test]
    fn the_table_has_one_line_per_row_and_readable_numbers() {
        let rows = summarise(&three_rounds());
        let table = table_markdown(&rows);
        assert_eq!(table.lines().count(), 2 + rows.len());
        assert!(
            table.contains("| atoll | put | 16 | 2,000 | 0.50 | 2.00 | 2.00 | 0.50 | 0 |"),
            "{table}"
        );
        assert_eq!(thousands(1234567.4), "1,234,567");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(thousands(0.0), "0");
    }

    #[test]
    fn panels_put_each_system_on_the_client_positions() {
        let mut samples = three_rounds();
        samples.push(sample(System::Etcd, "put", 64, 5000.0, 9000));
        let rows = summarise(&samples);
        let panels = workload_panels(&rows, "put");
        assert_eq!(panels[0].x_names, Some(vec!["16".to_string(), "64".to_string()]));
        let names: Vec<&str> = panels[0].series.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, vec!["atoll", "etcd"]);
        assert_eq!(panels[0].series[1].points, vec![(0.0, 1000.0), (1.0, 5000.0)]);
        assert_eq!(panels[1].series[0].points, vec![(0.0, 2.0)]);
    }
}
