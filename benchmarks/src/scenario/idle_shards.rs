//! `idle-shards`: what idle shards cost (issue 3's target: 1,000 idle shards under 10% of
//! one core). A 3-node loopback cluster ([`AtollCluster`], mutual TLS between peers) is
//! started pre-split (`--initial-split`: 500 prefixes by default, so 1,001 shards, every node
//! a replica of each), left without traffic to settle (elections, then hibernation, D14),
//! and each node's CPU is read from `/proc/<pid>/stat` over a window, with its RSS at the
//! end. The same is measured on a cluster with one data shard, so the cost per shard is the
//! difference divided by the extra shards. etcd has no shards: Atoll alone.

use super::cluster::AtollCluster;
use super::context::ScenarioContext;
use super::emit::{Summary, median};
use super::proc_stat::{cpu_percent, read_cpu_ticks, read_rss_kib, ticks_per_second};
use crate::cli::SplitSpec;
use anyhow::{Context as _, bail};
use serde_json::json;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

/// The scenario's name.
pub const NAME: &str = "idle-shards";
/// Members: the smallest cluster where every shard has followers to heartbeat.
const MEMBERS: usize = 3;
/// Prefixes of the default split (2N + 1 = 1,001 shards), and under `--smoke`.
const SPLIT_DEFAULT: u64 = 500;
const SPLIT_SMOKE: u64 = 20;
/// How long the cluster settles after serving before the window opens: elections of every
/// shard, then hibernation after its idle ticks.
const SETTLE_DEFAULT: Duration = Duration::from_secs(20);
const SETTLE_SMOKE: Duration = Duration::from_secs(1);
/// The CPU window.
const WINDOW_DEFAULT: Duration = Duration::from_secs(30);
const WINDOW_SMOKE: Duration = Duration::from_secs(1);

/// What one node cost over the window.
#[derive(Clone, Debug, PartialEq)]
struct NodeCost {
    node: String,
    cpu_percent: f64,
    rss_kib: u64,
}

/// One cluster measured.
#[derive(Clone, Debug)]
struct Measured {
    shards: usize,
    nodes: Vec<NodeCost>,
}

impl Measured {
    fn median_cpu(&self) -> f64 {
        median(&self.nodes.iter().map(|n| n.cpu_percent).collect::<Vec<_>>())
    }

    fn median_rss_kib(&self) -> f64 {
        median(&self.nodes.iter().map(|n| n.rss_kib as f64).collect::<Vec<_>>())
    }
}

/// Runs the scenario; returns its table for `suite`.
pub async fn run_scenario(ctx: &ScenarioContext) -> anyhow::Result<Summary> {
    let split = ctx.initial_split.clone().unwrap_or(SplitSpec::Count(if ctx.smoke {
        SPLIT_SMOKE
    } else {
        SPLIT_DEFAULT
    }));
    let prefixes = split.prefixes();
    if prefixes.is_empty() {
        bail!("--initial-split 0 leaves one data shard, nothing to compare; give at least 1");
    }
    let (settle, window) =
        if ctx.smoke { (SETTLE_SMOKE, WINDOW_SMOKE) } else { (SETTLE_DEFAULT, WINDOW_DEFAULT) };
    let base = measure(ctx, &[], settle, window).await?;
    let flags = vec!["--initial-split".to_string(), prefixes.join(",")];
    let split = measure(ctx, &flags, settle, window).await?;
    emit(ctx, &base, &split, window)?;
    let text = table(&base, &split, settle, window);
    eprintln!("{text}");
    Ok(Summary { scenario: NAME.into(), text, plots: Vec::new() })
}

async fn measure(
    ctx: &ScenarioContext,
    flags: &[String],
    settle: Duration,
    window: Duration,
) -> anyhow::Result<Measured> {
    let cluster = AtollCluster::start_with(&ctx.atoll_bin, NAME, MEMBERS, flags).await?;
    let shards = cluster.shard_count().await?;
    tokio::time::sleep(settle).await;
    let pids = cluster.pids();
    let before: Vec<u64> =
        pids.iter().map(|(_, pid)| read_cpu_ticks(*pid)).collect::<Result<_, _>>()?;
    let opened = Instant::now();
    tokio::time::sleep(window).await;
    let elapsed = opened.elapsed();
    let tick = ticks_per_second();
    let mut nodes = Vec::with_capacity(pids.len());
    for ((node, pid), before) in pids.into_iter().zip(before) {
        let after = read_cpu_ticks(pid).with_context(|| format!("node {node} exited"))?;
        let rss_kib = read_rss_kib(pid)?;
        nodes.push(NodeCost {
            node,
            cpu_percent: cpu_percent(before, after, tick, elapsed),
            rss_kib,
        });
    }
    drop(cluster);
    Ok(Measured { shards, nodes })
}

/// The extra cost per extra shard: `(split - base) / (shards - base shards)`.
fn per_shard(split: f64, base: f64, extra_shards: usize) -> f64 {
    if extra_shards == 0 { 0.0 } else { (split - base) / extra_shards as f64 }
}

fn emit(
    ctx: &ScenarioContext,
    base: &Measured,
    split: &Measured,
    window: Duration,
) -> anyhow::Result<()> {
    for m in [base, split] {
        for n in &m.nodes {
            let params = ctx.params(json!({
                "node": n.node, "shards": m.shards, "members": MEMBERS,
                "window_s": window.as_secs_f64(),
            }));
            ctx.emit(NAME, "cpu_percent_of_core", n.cpu_percent, "%", params.clone())?;
            ctx.emit(NAME, "rss_mib", n.rss_kib as f64 / 1024.0, "MiB", params)?;
        }
    }
    let extra = split.shards.saturating_sub(base.shards);
    let params = ctx.params(json!({
        "shards": split.shards, "base_shards": base.shards, "members": MEMBERS,
        "of": "median node, minus the one-data-shard cluster, over the extra shards",
    }));
    let cpu = per_shard(split.median_cpu(), base.median_cpu(), extra);
    ctx.emit(NAME, "cpu_percent_per_shard", cpu, "%", params.clone())?;
    let rss = per_shard(split.median_rss_kib(), base.median_rss_kib(), extra);
    ctx.emit(NAME, "rss_kib_per_shard", rss, "KiB", params)
}

fn table(base: &Measured, split: &Measured, settle: Duration, window: Duration) -> String {
    let mut out = format!(
        "{MEMBERS}-node loopback cluster, no traffic; {settle:?} to settle after serving, then \
         CPU (utime + stime from /proc/<pid>/stat) over {window:?} and RSS at its end; the \
         baseline is the same cluster with one data shard\n\n| node | shards | CPU % of one \
         core | RSS MiB | baseline ({} shards): CPU % | RSS MiB |\n| --- | ---: | ---: | ---: \
         | ---: | ---: |\n",
        base.shards
    );
    for (n, b) in split.nodes.iter().zip(&base.nodes) {
        let _ = writeln!(
            out,
            "| {} | {} | {:.2} | {:.1} | {:.2} | {:.1} |",
            n.node,
            split.shards,
            n.cpu_percent,
            n.rss_kib as f64 / 1024.0,
            b.cpu_percent,
            b.rss_kib as f64 / 1024.0
        );
    }
    let extra = split.shards.saturating_sub(base.shards);
    let _ = writeln!(
        out,
        "\nPer extra shard (median node): {:.4}% of one core, {:.1} KiB of RSS.",
        per_shard(split.median_cpu(), base.median_cpu(), extra),
        per_shard(split.median_rss_kib(), base.median_rss_kib(), extra)
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cost(node: &str, cpu: f64, rss_kib: u64) -> NodeCost {
        NodeCost { node: node.into(), cpu_percent: cpu, rss_kib }
    }

    #[test]
    fn the_cost_per_shard_is_the_difference_over_the_extra_shards() {
        let base = Measured {
            shards: 2,
            nodes: vec![cost("n1", 0.2, 20_000), cost("n2", 0.3, 21_000), cost("n3", 9.0, 22_000)],
        };
        let split = Measured {
            shards: 1_002,
            nodes: vec![cost("n1", 1.2, 30_000), cost("n2", 1.3, 31_000), cost("n3", 1.1, 32_000)],
        };
        assert_eq!(split.median_cpu(), 1.2);
        assert_eq!(per_shard(split.median_cpu(), base.median_cpu(), 1_000), (1.2 - 0.3) / 1_000.0);
        assert_eq!(per_shard(split.median_rss_kib(), base.median_rss_kib(), 1_000), 10.0);
        assert_eq!(per_shard(5.0, 1.0, 0), 0.0);
        let text = table(&base, &split, Duration::from_secs(20), Duration::from_secs(30));
        assert!(text.contains("| n2 | 1002 | 1.30 | 30.3 | 0.30 | 20.5 |"), "{text}");
        assert!(text.contains("0.0009% of one core, 10.0 KiB"), "{text}");
    }
}
