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

use crate::cli::CompareArgs;
use crate::connect::ClientPool;
use crate::engine::{RunSpec, run};
use crate::keys::{KeySpace, make_value};
use crate::limits::{SEED_DEFAULT, SMOKE_DURATION, SMOKE_KEYS};
use crate::progress::progress_wanted;
use crate::report::RunReport;
use crate::scenario::cluster::AtollCluster;
use crate::scenario::context::{POINT_DURATION_DEFAULT, POINT_WARMUP, ScenarioContext};
use crate::scenario::emit::{Sink, emit_to};
use crate::scenario::etcd_node::{EtcdNode, etcd_version};
use crate::scenario::fixture::SCENARIO_PREFIX;
use crate::schedule::{Pacing, StopAt};
use crate::workload::{WorkloadKind, WorkloadSpec};
use anyhow::{Context as _, bail};
use serde_json::json;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
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

/// Everything that decides a comparison.
#[derive(Clone, Debug)]
pub struct ComparePlan {
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
    /// Measured phase of a point.
    pub duration: Duration,
    /// Unrecorded phase before it.
    pub warmup: Duration,
    /// Connections per system.
    pub connections: usize,
    /// Keys loaded and used.
    pub key_space: u64,
    /// Value length.
    pub value_size: usize,
    /// The atoll binary.
    pub atoll_bin: PathBuf,
    /// The etcd binary.
    pub etcd_bin: PathBuf,
    /// Where to draw one SVG per workload.
    pub plot_dir: Option<PathBuf>,
    /// Seconds-long, for CI: a missing etcd is skipped instead of failing.
    pub smoke: bool,
}

impl ComparePlan {
    /// The plan of `compare`'s flags.
    pub fn from_args(args: &CompareArgs, smoke: bool) -> anyhow::Result<ComparePlan> {
        let atoll_bin = match &args.atoll_bin {
            Some(path) => path.clone(),
            None => crate::scenario::context::default_atoll_bin()?,
        };
        if args.workloads.is_empty() {
            bail!("--workloads is empty; give one or more of put, get, range, txn-update, mixed");
        }
        // Each workload once, in the order first given (`Vec::dedup` drops only neighbours).
        let mut workloads = Vec::new();
        for w in &args.workloads {
            if !workloads.contains(w) {
                workloads.push(*w);
            }
        }
        Ok(ComparePlan {
            name: scenario_name(args.nodes as usize),
            nodes: args.nodes as usize,
            rounds: args.rounds.unwrap_or(if smoke { 1 } else { ROUNDS_DEFAULT }),
            workloads,
            clients: default_clients(args.clients.as_ref().map(|c| c.0.clone()), smoke),
            duration: match (args.duration, smoke) {
                (Some(d), false) => d,
                (Some(d), true) => d.min(SMOKE_DURATION),
                (None, true) => SMOKE_DURATION,
                (None, false) => POINT_DURATION_DEFAULT,
            },
            warmup: if smoke { Duration::ZERO } else { args.warmup.unwrap_or(POINT_WARMUP) },
            connections: args.connections as usize,
            key_space: if smoke { args.key_space.min(SMOKE_KEYS) } else { args.key_space },
            value_size: args.value_size as usize,
            atoll_bin,
            etcd_bin: args
                .etcd_bin
                .clone()
                .unwrap_or_else(crate::scenario::etcd_node::default_etcd_bin),
            plot_dir: args.plot_dir.clone(),
            smoke,
        })
    }

    /// The plan of the catalogue's compare scenario with `nodes` members.
    pub fn from_context(ctx: &ScenarioContext, nodes: usize) -> ComparePlan {
        ComparePlan {
            name: scenario_name(nodes),
            nodes,
            rounds: ctx.runs(ROUNDS_DEFAULT, 1),
            workloads: vec![WorkloadKind::Put, WorkloadKind::Get],
            clients: default_clients(ctx.clients_flag.clone(), ctx.smoke),
            duration: ctx.duration,
            warmup: ctx.warmup,
            connections: 1,
            key_space: KEY_SPACE_DEFAULT.min(ctx.store_keys),
            value_size: ctx.value_size,
            atoll_bin: ctx.atoll_bin.clone(),
            etcd_bin: ctx.etcd_bin.clone(),
            plot_dir: ctx.plot_dir.clone(),
            smoke: ctx.smoke,
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
            p.value_size,
            p.connections,
            p.duration,
            p.warmup,
            table_markdown(&self.rows)
        )
    }
}

/// `atoll-bench compare`.
pub async fn compare_command(args: CompareArgs, smoke: bool) -> anyhow::Result<()> {
    let plan = ComparePlan::from_args(&args, smoke)?;
    let outcome = run_compare(&plan, None).await?;
    eprintln!("\n{}", outcome.text());
    Ok(())
}

/// The catalogue's compare scenario with `nodes` members; returns what it found (for
/// `suite`) after printing the table on stderr.
pub async fn run_scenario(ctx: &ScenarioContext, nodes: usize) -> anyhow::Result<CompareOutcome> {
    let plan = ComparePlan::from_context(ctx, nodes);
    let outcome = run_compare(&plan, ctx.sink.as_ref()).await?;
    eprintln!("{}", outcome.text());
    Ok(outcome)
}

/// One system under test and the pool its points use.
struct Contender<'a> {
    system: System,
    pool: &'a ClientPool,
}

/// Runs the comparison `plan` describes, emitting its JSON lines (also into `sink`).
pub async fn run_compare(
    plan: &ComparePlan,
    sink: Option<&Sink>,
) -> anyhow::Result<CompareOutcome> {
    if let Some(dir) = &plan.plot_dir {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the plot directory {}", dir.display()))?;
    }
    let with_etcd = etcd_wanted(plan)?;
    let keys = KeySpace::new(SCENARIO_PREFIX, plan.key_space, None)?;
    let value = Arc::new(make_value(plan.value_size, SEED_DEFAULT));
    // Locals drop in reverse order: every pool closes before the processes it talks to are
    // killed and their directories removed.
    let atoll = AtollCluster::start(&plan.atoll_bin, &plan.name, plan.nodes).await?;
    let native = ClientPool::connect(&atoll.client_config()?, plan.connections).await?;
    let gateway = ClientPool::connect_etcd(&atoll.etcd_config(), plan.connections).await?;
    load_into(plan, sink, "atoll", &native, &keys, &value).await?;
    let (etcd, etcd_pool, etcd_version) = if with_etcd {
        let etcd =
            EtcdNode::start_members(&plan.etcd_bin, &format!("{}-etcd", plan.name), plan.nodes)
                .await?;
        let pool = ClientPool::connect_etcd(&etcd.config(), plan.connections).await?;
        load_into(plan, sink, "etcd", &pool, &keys, &value).await?;
        (Some(etcd), Some(pool), etcd_version(&plan.etcd_bin))
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
    let samples = run_rounds(plan, sink, &contenders, &keys, &value).await?;
    let rows = summarise(&samples);
    emit_rows(plan, sink, &rows)?;
    let plots = draw(plan, &rows)?;
    drop(contenders);
    drop((etcd_pool, etcd, gateway, native, atoll));
    Ok(CompareOutcome { plan: plan.clone(), rows, etcd_version, plots })
}

/// Whether etcd runs: yes if installed; if not, a smoke run goes on without it and a full
/// run fails saying how to install it.
fn etcd_wanted(plan: &ComparePlan) -> anyhow::Result<bool> {
    if plan.etcd_bin.is_file() {
        return Ok(true);
    }
    let how = "install it with `apt-get install -y etcd-server` or pass --etcd-bin";
    if plan.smoke {
        eprintln!(
            "atoll-bench: {}: no etcd at {} ({how}); measuring Atoll alone",
            plan.name,
            plan.etcd_bin.display()
        );
        return Ok(false);
    }
    bail!("no etcd at {}; {how}", plan.etcd_bin.display())
}

async fn load_into(
    plan: &ComparePlan,
    sink: Option<&Sink>,
    system: &str,
    pool: &ClientPool,
    keys: &KeySpace,
    value: &Arc<Vec<u8>>,
) -> anyhow::Result<()> {
    let spec = crate::load::LoadSpec {
        keys: keys.clone(),
        value: Arc::clone(value),
        batch: crate::limits::LOAD_BATCH_MAX,
        clients: crate::limits::LOAD_CLIENTS_DEFAULT,
        progress: progress_wanted(),
    };
    let report = crate::load::load(pool, spec).await?;
    let params = json!({
        "smoke": plan.smoke, "system": system, "nodes": plan.nodes, "keys": report.keys,
        "duration_s": report.duration_s, "retries": report.retries,
    });
    emit_to(sink, &plan.name, "load_keys_per_s", report.keys_per_s, "keys/s", params)
}

/// Every round runs every point on every system; the order of the systems rotates by one per
/// round, so none always runs first (on a warm cache) or last.
async fn run_rounds(
    plan: &ComparePlan,
    sink: Option<&Sink>,
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
                    let spec = point_spec(plan, kind, keys, value, clients);
                    let report = run(contender.pool, &spec).await?.report;
                    if report.ops == 0 {
                        bail!(
                            "{} {} at {clients} clients completed no operation; errors: {:?}",
                            contender.system.name(),
                            kind.name(),
                            report.errors
                        );
                    }
                    emit_run(plan, sink, contender.system, round, &report)?;
                    samples.push(Sample::from_report(contender.system, &report));
                }
            }
        }
    }
    Ok(samples)
}

fn point_spec(
    plan: &ComparePlan,
    kind: WorkloadKind,
    keys: &KeySpace,
    value: &Arc<Vec<u8>>,
    clients: u64,
) -> RunSpec {
    let workload = WorkloadSpec {
        kind,
        keys: keys.clone(),
        sequential: false,
        value: Arc::clone(value),
        serializable: false,
        range_limit: crate::limits::RANGE_LIMIT_DEFAULT,
        read_ratio: 0.9,
        seed: SEED_DEFAULT,
    };
    RunSpec {
        workload: Arc::new(workload),
        clients: clients as usize,
        stop: StopAt::Elapsed(plan.duration),
        warmup: plan.warmup,
        pacing: Pacing::Closed,
        progress: progress_wanted(),
        keep_intervals: false,
    }
}

fn emit_run(
    plan: &ComparePlan,
    sink: Option<&Sink>,
    system: System,
    round: u64,
    report: &RunReport,
) -> anyhow::Result<()> {
    let params = json!({
        "smoke": plan.smoke, "system": system, "nodes": plan.nodes, "round": round + 1,
        "clients": report.clients, "key_space": plan.key_space, "value_size": plan.value_size,
        "linearizable": true, "report": report,
    });
    let metric = format!("{}_ops_per_s", report.workload);
    emit_to(sink, &plan.name, &metric, report.ops_per_s, "ops/s", params)
}

fn emit_rows(plan: &ComparePlan, sink: Option<&Sink>, rows: &[Row]) -> anyhow::Result<()> {
    for row in rows {
        let params = json!({ "smoke": plan.smoke, "nodes": plan.nodes, "row": row });
        let metric = format!("{}_ops_per_s_median", row.workload);
        emit_to(sink, &plan.name, &metric, row.ops_per_s, "ops/s", params)?;
    }
    Ok(())
}

/// Draws one SVG per workload into the plot directory, if there is one.
fn draw(plan: &ComparePlan, rows: &[Row]) -> anyhow::Result<Vec<PathBuf>> {
    let Some(dir) = &plan.plot_dir else { return Ok(Vec::new()) };
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
    use clap::Parser as _;

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
        assert_eq!((plan.duration, plan.warmup), (POINT_DURATION_DEFAULT, POINT_WARMUP));
        let plan = must_plan(&["--smoke", "--nodes=3", "--duration=1m", "--key-space=1M"]);
        assert_eq!(
            (plan.name.as_str(), plan.rounds, plan.clients.clone()),
            ("compare-3-nodes", 1, vec![16])
        );
        assert_eq!(
            (plan.duration, plan.warmup, plan.key_space),
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
        let err = etcd_wanted(&plan).expect_err("no etcd");
        assert!(err.to_string().contains("apt-get install -y etcd-server"), "{err}");
        plan.smoke = true;
        assert!(!etcd_wanted(&plan).expect("skipped"));
        let err = run_compare(&plan, None).await.expect_err("no atoll either");
        assert!(err.to_string().contains("--atoll-bin"), "{err}");
    }
}
