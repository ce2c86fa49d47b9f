//! `atoll-bench compare`: starts Atoll (one node, or an N-member loopback cluster) and etcd
//! (Debian's `etcd-server`, same member count, plain HTTP, default durability) itself, loads
//! the same keys into both, and runs the same points (workload × clients) on each in
//! alternation, over several rounds: Atoll through its native QUIC protocol, Atoll through
//! its etcd gRPC gateway and etcd, the last two with the same gRPC client, so `atoll-grpc`
//! against `etcd` compares the servers alone. It prints one JSON line per run and per table
//! row on stdout, the table of medians and ratios on stderr, optionally draws one SVG per
//! workload, and stops every process and removes every directory it made, also on an error
//! or ctrl-c (the guards of [`crate::scenario::node`]).

pub mod summary;

use crate::cli::{CompareArgs, ScenarioFlags};
use crate::connect::ClientPool;
use crate::engine::{RunSpec, run};
use crate::keys::{KeySpace, make_value};
use crate::limits::{SEED_DEFAULT, SMOKE_DURATION, SMOKE_KEYS};
use crate::report::RunReport;
use crate::scenario::cluster::AtollCluster;
use crate::scenario::context::ScenarioContext;
use crate::scenario::emit::Summary;
use crate::scenario::etcd_node::{EtcdNode, etcd_version};
use crate::scenario::fixture::{SCENARIO_PREFIX, load_and_emit};
use crate::workload::WorkloadKind;
use anyhow::{Context as _, bail};
use serde_json::json;
use std::path::PathBuf;
use std::sync::Arc;
use summary::{Row, Sample, System, summarise, table_markdown, workload_panels};

/// Rounds when neither `--rounds` nor `--repeat` is given: the median of three damps one
/// disturbed round on a shared machine.
pub const ROUNDS_DEFAULT: u64 = 3;
/// Client counts of the points by default: moderate to heavy concurrency, where the servers
/// rather than the round trip set the pace.
pub const CLIENT_POINTS_DEFAULT: [u64; 3] = [16, 64, 256];
/// The one client count of a smoke run.
pub const CLIENT_POINTS_SMOKE: [u64; 1] = [16];
/// Keys loaded into each system, read and written at random.
pub const KEY_SPACE_DEFAULT: u64 = 10_000;

/// Everything that decides a comparison. What it shares with every scenario (binaries,
/// phases, value size, plots, smoke, where lines go) is its [`ScenarioContext`], derived once
/// by [`ScenarioContext::from_args`]; the rest is its own.
#[derive(Clone, Debug)]
pub struct ComparePlan {
    /// The settings shared with the scenarios; `duration` and `warmup` are each point's.
    pub ctx: ScenarioContext,
    /// The scenario name on its JSON lines (`compare`, `compare-3-nodes`).
    pub name: String,
    /// Members of each system.
    pub nodes: usize,
    /// Rounds; each point runs once per round on each system.
    pub rounds: u64,
    /// Workloads of the points.
    pub workloads: Vec<WorkloadKind>,
    /// Client counts of the points.
    pub clients: Vec<u64>,
    /// Connections per system.
    pub connections: usize,
    /// Keys loaded and used.
    pub key_space: u64,
}

impl ComparePlan {
    /// The plan of `compare`'s flags: the scenario settings they map onto, then compare's own.
    pub fn from_args(args: &CompareArgs, smoke: bool) -> anyhow::Result<ComparePlan> {
        if args.workloads.is_empty() {
            bail!("--workloads is empty; give one or more of put, get, range, txn-update, mixed");
        }
        let flags = ScenarioFlags {
            atoll_bin: args.atoll_bin.clone(),
            etcd_bin: args.etcd_bin.clone(),
            keys: Some(args.key_space),
            repeat: args.rounds,
            duration: args.duration,
            clients: args.clients.clone(),
            value_size: args.value_size,
            plot_dir: args.plot_dir.clone(),
            ..ScenarioFlags::default()
        };
        let mut ctx = ScenarioContext::from_args(&flags, smoke)?;
        // A smoke run stays seconds-long whatever --duration and --key-space say.
        if smoke {
            ctx.duration = ctx.duration.min(SMOKE_DURATION);
        } else if let Some(warmup) = args.warmup {
            ctx.warmup = warmup;
        }
        let mut plan = ComparePlan::from_context(&ctx, args.nodes as usize);
        // Each workload once, in the order first given (`Vec::dedup` drops only neighbours).
        plan.workloads.clear();
        for w in &args.workloads {
            if !plan.workloads.contains(w) {
                plan.workloads.push(*w);
            }
        }
        plan.connections = args.connections as usize;
        plan.key_space = if smoke { args.key_space.min(SMOKE_KEYS) } else { args.key_space };
        Ok(plan)
    }

    /// The plan of the catalogue's compare scenario with `nodes` members.
    pub fn from_context(ctx: &ScenarioContext, nodes: usize) -> ComparePlan {
        ComparePlan {
            ctx: ctx.clone(),
            name: scenario_name(nodes),
            nodes,
            rounds: ctx.runs(ROUNDS_DEFAULT, 1),
            workloads: vec![WorkloadKind::Put, WorkloadKind::Get],
            clients: default_clients(ctx.clients_flag.clone(), ctx.smoke),
            connections: 1,
            key_space: KEY_SPACE_DEFAULT.min(ctx.store_keys),
        }
    }
}

fn default_clients(given: Option<Vec<u64>>, smoke: bool) -> Vec<u64> {
    match (given, smoke) {
        (Some(list), _) => list,
        (None, true) => CLIENT_POINTS_SMOKE.to_vec(),
        (None, false) => CLIENT_POINTS_DEFAULT.to_vec(),
    }
}

/// `compare` for one member, `compare-3-nodes` for three.
pub fn scenario_name(nodes: usize) -> String {
    if nodes == 1 { "compare".into() } else { format!("compare-{nodes}-nodes") }
}

/// What a comparison found.
#[derive(Clone, Debug)]
pub struct CompareOutcome {
    /// The plan it ran.
    pub plan: ComparePlan,
    /// The table: medians over rounds and ratios to etcd.
    pub rows: Vec<Row>,
    /// etcd's version, if etcd ran.
    pub etcd_version: Option<String>,
    /// The SVGs drawn, one per workload.
    pub plots: Vec<PathBuf>,
}

impl CompareOutcome {
    /// The heading and table `compare` prints.
    pub fn text(&self) -> String {
        let p = &self.plan;
        let (duration, warmup) = (p.ctx.duration, p.ctx.warmup);
        let etcd = match &self.etcd_version {
            Some(version) => format!("etcd {version}"),
            None => "no etcd (not installed; smoke run)".into(),
        };
        format!(
            "Atoll against {etcd}, {} member(s) each, {} round(s), medians over rounds; {} keys \
             of {} B, {} connection(s), {:?} per point after {:?} warm-up\n\n{}",
            p.nodes,
            p.rounds,
            p.key_space,
            p.ctx.value_size,
            p.connections,
            duration,
            warmup,
            table_markdown(&self.rows)
        )
    }
}

impl CompareOutcome {
    /// Its part of `suite`'s section of RESULTS.md.
    pub fn summary(&self) -> Summary {
        Summary { scenario: self.plan.name.clone(), text: self.text(), plots: self.plots.clone() }
    }
}

/// `atoll-bench compare`.
pub async fn compare_command(args: CompareArgs, smoke: bool) -> anyhow::Result<()> {
    let plan = ComparePlan::from_args(&args, smoke)?;
    let outcome = run_compare(&plan).await?;
    eprintln!("\n{}", outcome.text());
    Ok(())
}

/// The catalogue's compare scenario with `nodes` members; returns its table (for `suite`)
/// after printing it on stderr.
pub async fn run_scenario(ctx: &ScenarioContext, nodes: usize) -> anyhow::Result<Summary> {
    let plan = ComparePlan::from_context(ctx, nodes);
    let outcome = run_compare(&plan).await?;
    eprintln!("{}", outcome.text());
    Ok(outcome.summary())
}

/// One system under test and the pool its points use.
struct Contender<'a> {
    system: System,
    pool: &'a ClientPool,
}

/// Runs the comparison `plan` describes, emitting its JSON lines (also into its sink).
pub async fn run_compare(plan: &ComparePlan) -> anyhow::Result<CompareOutcome> {
    let ctx = &plan.ctx;
    if let Some(dir) = &ctx.plot_dir {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the plot directory {}", dir.display()))?;
    }
    let with_etcd = ctx.etcd_wanted(&plan.name, "measuring Atoll alone")?;
    let keys = KeySpace::new(SCENARIO_PREFIX, plan.key_space, None)?;
    let value = Arc::new(make_value(ctx.value_size, SEED_DEFAULT));
    // Locals drop in reverse order: every pool closes before the processes it talks to are
    // killed and their directories removed.
    let atoll = AtollCluster::start(&ctx.atoll_bin, &plan.name, plan.nodes).await?;
    let native = ClientPool::connect(&atoll.client_config()?, plan.connections).await?;
    let gateway = ClientPool::connect_etcd(&atoll.etcd_config(), plan.connections).await?;
    load_into(plan, "atoll", &native, &keys, &value).await?;
    let (etcd, etcd_pool, etcd_version) = if with_etcd {
        let etcd =
            EtcdNode::start_members(&ctx.etcd_bin, &format!("{}-etcd", plan.name), plan.nodes)
                .await?;
        let pool = ClientPool::connect_etcd(&etcd.config(), plan.connections).await?;
        load_into(plan, "etcd", &pool, &keys, &value).await?;
        (Some(etcd), Some(pool), etcd_version(&ctx.etcd_bin))
    } else {
        (None, None, None)
    };
    let mut contenders = vec![
        Contender { system: System::Atoll, pool: &native },
        Contender { system: System::AtollGrpc, pool: &gateway },
    ];
    if let Some(pool) = &etcd_pool {
        contenders.push(Contender { system: System::Etcd, pool });
    }
    let samples = run_rounds(plan, &contenders, &keys, &value).await?;
    let rows = summarise(&samples);
    emit_rows(plan, &rows)?;
    let plots = draw(plan, &rows)?;
    drop(contenders);
    drop((etcd_pool, etcd, gateway, native, atoll));
    Ok(CompareOutcome { plan: plan.clone(), rows, etcd_version, plots })
}

/// Loads the key space into one system, emitting its `load_keys_per_s` as every scenario does.
async fn load_into(
    plan: &ComparePlan,
    system: &str,
    pool: &ClientPool,
    keys: &KeySpace,
    value: &Arc<Vec<u8>>,
) -> anyhow::Result<()> {
    let extra = json!({ "system": system, "nodes": plan.nodes });
    load_and_emit(&plan.ctx, &plan.name, pool, keys, value, extra).await
}

/// Every round runs every point on every system; the order of the systems rotates by one per
/// round, so none always runs first (on a warm cache) or last.
async fn run_rounds(
    plan: &ComparePlan,
    contenders: &[Contender<'_>],
    keys: &KeySpace,
    value: &Arc<Vec<u8>>,
) -> anyhow::Result<Vec<Sample>> {
    let mut samples = Vec::new();
    for round in 0..plan.rounds {
        eprintln!("atoll-bench: {}: round {} of {}", plan.name, round + 1, plan.rounds);
        for &clients in &plan.clients {
            for &kind in &plan.workloads {
                for turn in 0..contenders.len() {
                    let contender = &contenders[(turn + round as usize) % contenders.len()];
                    let spec = RunSpec::closed_loop(
                        kind,
                        keys,
                        value,
                        clients,
                        plan.ctx.duration,
                        plan.ctx.warmup,
                    );
                    let report = run(contender.pool, &spec).await?.report;
                    if report.ops == 0 {
                        bail!(
                            "{} {} at {clients} clients completed no operation; errors: {:?}",
                            contender.system.name(),
                            kind.name(),
                            report.errors
                        );
                    }
                    emit_run(plan, contender.system, round, &report)?;
                    samples.push(Sample::from_report(contender.system, &report));
                }
            }
        }
    }
    Ok(samples)
}

fn emit_run(
    plan: &ComparePlan,
    system: System,
    round: u64,
    report: &RunReport,
) -> anyhow::Result<()> {
    let ctx = &plan.ctx;
    let params = ctx.params(json!({
        "system": system, "nodes": plan.nodes, "round": round + 1,
        "clients": report.clients, "key_space": plan.key_space, "value_size": ctx.value_size,
        "linearizable": true, "report": report,
    }));
    let metric = format!("{}_ops_per_s", report.workload);
    ctx.emit(&plan.name, &metric, report.ops_per_s, "ops/s", params)
}

fn emit_rows(plan: &ComparePlan, rows: &[Row]) -> anyhow::Result<()> {
    for row in rows {
        let params = plan.ctx.params(json!({ "nodes": plan.nodes, "row": row }));
        let metric = format!("{}_ops_per_s_median", row.workload);
        plan.ctx.emit(&plan.name, &metric, row.ops_per_s, "ops/s", params)?;
    }
    Ok(())
}

/// Draws one SVG per workload into the plot directory, if there is one.
fn draw(plan: &ComparePlan, rows: &[Row]) -> anyhow::Result<Vec<PathBuf>> {
    let Some(dir) = &plan.ctx.plot_dir else { return Ok(Vec::new()) };
    let mut plots = Vec::new();
    for kind in &plan.workloads {
        let path = dir.join(format!("{}-{}.svg", plan.name, kind.name()));
        let title = format!(
            "{}: {} member(s) each, median of {} round(s)",
            kind.name(),
            plan.nodes,
            plan.rounds
        );
        let svg = crate::plot::render_svg(&title, &workload_panels(rows, kind.name()))?;
        crate::plot::write_svg(&path, &svg)?;
        plots.push(path);
    }
    Ok(plots)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use crate::scenario::context::{POINT_DURATION_DEFAULT, POINT_WARMUP};
    use clap::Parser as _;
    use std::time::Duration;

    fn must_plan(args: &[&str]) -> ComparePlan {
        let argv = ["atoll-bench", "compare", "--atoll-bin=/x/atoll"]
            .into_iter()
            .chain(args.iter().copied());
        let cli = Cli::try_parse_from(argv).expect("parses");
        let Command::Compare(c) = cli.command else { panic!("expected compare") };
        ComparePlan::from_args(&c, cli.smoke).expect("plan")
    }

    #[test]
    fn defaults_and_smoke() {
        let plan = must_plan(&[]);
        assert_eq!((plan.name.as_str(), plan.nodes, plan.rounds), ("compare", 1, 3));
        assert_eq!(plan.clients, vec![16, 64, 256]);
        assert_eq!((plan.ctx.duration, plan.ctx.warmup), (POINT_DURATION_DEFAULT, POINT_WARMUP));
        let plan = must_plan(&["--smoke", "--nodes=3", "--duration=1m", "--key-space=1M"]);
        assert_eq!(
            (plan.name.as_str(), plan.rounds, plan.clients.clone()),
            ("compare-3-nodes", 1, vec![16])
        );
        assert_eq!(
            (plan.ctx.duration, plan.ctx.warmup, plan.key_space),
            (SMOKE_DURATION, Duration::ZERO, SMOKE_KEYS)
        );
    }

    #[test]
    fn a_workload_given_twice_runs_once() {
        let plan = must_plan(&["--workloads=put,get,put"]);
        assert_eq!(plan.workloads, [WorkloadKind::Put, WorkloadKind::Get]);
    }

    #[tokio::test]
    async fn a_full_run_without_etcd_says_how_to_install_it_and_smoke_goes_on() {
        let mut plan = must_plan(&["--etcd-bin=/nonexistent/etcd"]);
        let err = plan.ctx.etcd_wanted("compare", "alone").expect_err("no etcd");
        assert!(err.to_string().contains("apt-get install -y etcd-server"), "{err}");
        plan.ctx.smoke = true;
        assert!(!plan.ctx.etcd_wanted("compare", "alone").expect("skipped"));
        let err = run_compare(&plan).await.expect_err("no atoll either");
        assert!(err.to_string().contains("--atoll-bin"), "{err}");
    }
}
