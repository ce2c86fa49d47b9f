//! `atoll-bench scenario`: a catalogue of named, self-contained measurements. Each starts its
//! own `atoll` on loopback in a temporary directory, measures, prints one JSON line per
//! measurement and removes everything it started, also on an error or ctrl-c (the guards in
//! [`node`]). `all` runs the whole catalogue; `--smoke` makes each finish in seconds.

mod authenticate;
pub mod cluster;
mod compaction_impact;
pub mod context;
mod count_only;
pub mod emit;
pub mod etcd_node;
mod etcd_put_get;
pub mod fixture;
mod idle_shards;
mod lease;
mod long_reads;
pub mod node;
pub(crate) mod ports;
mod prefix_limit;
pub mod proc_stat;
pub mod process;
mod put_get_clients;
pub mod put_loops;
mod queries;
mod restart;
pub mod watch;

use crate::cli::ScenarioArgs;
use anyhow::bail;
use context::ScenarioContext;
use emit::Summary;

/// A scenario of the catalogue.
#[derive(Clone, Copy, Debug)]
pub struct Entry {
    /// Its name on the command line.
    pub name: &'static str,
    /// What it measures, in one line.
    pub about: &'static str,
}

/// The comparison with etcd on one node each (`compare` with its defaults).
pub const COMPARE_1: &str = "compare";
/// The comparison with etcd on a 3-member cluster each.
pub const COMPARE_3: &str = "compare-3-nodes";

/// The catalogue, in the order `all` runs it.
pub const CATALOGUE: &[Entry] = &[
    Entry {
        name: put_get_clients::NAME,
        about: "put, then linearizable get, at 1/16/64/256 closed-loop clients on one connection: ops/s, p50, p99",
    },
    Entry {
        name: etcd_put_get::NAME,
        about: "same points as put-get-clients, against a real etcd (--etcd-bin, default /usr/bin/etcd) over its gRPC API, default durability; under --smoke skipped if etcd is missing",
    },
    Entry {
        name: etcd_put_get::GATEWAY_NAME,
        about: "same points as etcd-put-get, against Atoll through its etcd gRPC gateway with the same client (plaintext HTTP/2)",
    },
    Entry {
        name: restart::NAME,
        about: "N keys (1M), stop by SIGTERM and by kill -9, restart: ms from spawn to the first linearizable get",
    },
    Entry {
        name: count_only::NAME,
        about: "N keys (1M): ms of a count_only range over the whole prefix, median of 9",
    },
    Entry {
        name: prefix_limit::NAME,
        about: "N keys (1M): ms of a limit-100 prefix range over all N and over a 10,000-key prefix, median and p99",
    },
    Entry {
        name: long_reads::NAME,
        about: "100,000 keys: put p50/p99 and ops/s at 16 clients alone, then while 4 loops read the whole prefix unlimited (etcd 3.4's non-blocking reads); Atoll, and etcd when installed",
    },
    Entry {
        name: compaction_impact::NAME,
        about: "a history of 50,000 keys x 4 versions: put p50/p99 at 16 clients alone, then while a physical compaction removes it; Atoll, and etcd when installed",
    },
    Entry {
        name: watch::fan_out::NAME,
        about: "10,000 watchers of one prefix over 100 streams, a writer at 1,000 events/s: delivery p50/p99/max from write start, events lost (must be 0); Atoll native, gRPC gateway, and etcd",
    },
    Entry {
        name: watch::starvation::NAME,
        about: "a fast watcher's delivery p99 alone and with 1,000 slow prev_kv watchers sharing its stream plus 1,000 on a stream never read (etcd #16839, #17529); Atoll native, gRPC gateway, and etcd",
    },
    Entry {
        name: lease::throughput::NAME,
        about: "lease grant, keepalive and revoke ops/s, p50 and p99 at 64 clients on 3-member clusters (Atoll pre-split into five data shards) against etcd 3.4, medians of 3 fresh rounds, ratio table",
    },
    Entry {
        name: lease::storm::NAME,
        about: "100,000 leases with a key in each of two shards expiring together: time until all leases and keys are gone, put p99 of 16 writers before and during the drain; Atoll and etcd 3.4, 3 members each",
    },
    Entry {
        name: lease::churn::NAME,
        about: "16 loops grant, attach (two shards), renew, then revoke or let expire leases for 120 s after 20 s of warm-up: each member's RSS growth, the largest among followers (must stay flat); Atoll and etcd 3.4",
    },
    Entry {
        name: idle_shards::NAME,
        about: "3-node Atoll cluster pre-split into 1,001 idle shards (--initial-split), no traffic: CPU % of one core (from /proc/<pid>/stat over 30 s after 20 s settling) and RSS per node, and per shard against a one-shard cluster; Atoll alone (etcd has no shards)",
    },
    Entry {
        name: authenticate::NAME,
        about: "password Authenticate/s over gRPC at 16 loops, bcrypt cost 10, auth enabled by the scenario: Atoll's gateway and etcd 3.4 when installed, median of 3 fresh nodes each",
    },
    Entry {
        name: COMPARE_1,
        about: "Atoll (native and gRPC gateway) against etcd, one node each, started here: put and get at 16/64/256 clients, 3 alternating rounds, medians and ratios (as `atoll-bench compare`)",
    },
    Entry {
        name: COMPARE_3,
        about: "the same on a 3-member loopback cluster of each (as `atoll-bench compare --nodes 3`)",
    },
];

/// The text of `scenario --list`.
pub fn list_text() -> String {
    let width = CATALOGUE.iter().map(|e| e.name.len()).max().unwrap_or(0);
    let mut text: String =
        CATALOGUE.iter().map(|e| format!("{:width$}  {}\n", e.name, e.about)).collect();
    text.push_str(&format!("{:width$}  every scenario above, one after the other\n", "all"));
    text
}

/// Runs one scenario by name; returns the summary it writes into `suite`'s section, if it
/// writes one (the comparisons' tables), besides the lines it emitted.
pub async fn run_named(name: &str, ctx: &ScenarioContext) -> anyhow::Result<Option<Summary>> {
    let lines_only = match name {
        put_get_clients::NAME => put_get_clients::run_scenario(ctx).await,
        etcd_put_get::NAME => etcd_put_get::run_scenario(ctx).await,
        etcd_put_get::GATEWAY_NAME => etcd_put_get::run_gateway_scenario(ctx).await,
        restart::NAME => restart::run_scenario(ctx).await,
        count_only::NAME => count_only::run_scenario(ctx).await,
        prefix_limit::NAME => prefix_limit::run_scenario(ctx).await,
        long_reads::NAME => long_reads::run_scenario(ctx).await,
        compaction_impact::NAME => compaction_impact::run_scenario(ctx).await,
        watch::fan_out::NAME => return watch::fan_out::run_scenario(ctx).await.map(Some),
        watch::starvation::NAME => return watch::starvation::run_scenario(ctx).await.map(Some),
        idle_shards::NAME => return idle_shards::run_scenario(ctx).await.map(Some),
        lease::throughput::NAME => return lease::throughput::run_scenario(ctx).await.map(Some),
        lease::storm::NAME => return lease::storm::run_scenario(ctx).await.map(Some),
        lease::churn::NAME => return lease::churn::run_scenario(ctx).await.map(Some),
        authenticate::NAME => return authenticate::run_scenario(ctx).await.map(Some),
        COMPARE_1 => return crate::compare::run_scenario(ctx, 1).await.map(Some),
        COMPARE_3 => return crate::compare::run_scenario(ctx, 3).await.map(Some),
        other => {
            let names: Vec<&str> = CATALOGUE.iter().map(|e| e.name).collect();
            bail!("unknown scenario {other:?}; choose one of {} or all", names.join(", "))
        }
    };
    lines_only.map(|()| None)
}

/// `atoll-bench scenario`.
pub async fn scenario_command(args: ScenarioArgs, smoke: bool) -> anyhow::Result<()> {
    if args.list {
        print!("{}", list_text());
        return Ok(());
    }
    let Some(name) = args.name.as_deref() else { bail!("name a scenario, or pass --list") };
    let ctx = ScenarioContext::from_args(&args.flags, smoke)?;
    if name != "all" {
        return run_named(name, &ctx).await.map(drop);
    }
    // Every scenario runs even if one fails, so one failure does not hide the others' figures.
    let mut failed = Vec::new();
    for entry in CATALOGUE {
        eprintln!("atoll-bench: scenario {}", entry.name);
        if let Err(e) = run_named(entry.name, &ctx).await {
            eprintln!("atoll-bench: scenario {} failed: {e:#}", entry.name);
            failed.push(entry.name);
        }
    }
    if !failed.is_empty() {
        bail!("{} of {} scenarios failed: {}", failed.len(), CATALOGUE.len(), failed.join(", "));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::ScenarioFlags;

    #[test]
    fn the_list_names_every_scenario_once_with_an_explanation() {
        let text = list_text();
        for entry in CATALOGUE {
            let starts = text.lines().filter(|l| l.starts_with(&format!("{} ", entry.name)));
            assert_eq!(starts.count(), 1, "{}", entry.name);
            assert!(!entry.about.is_empty() && !entry.about.contains('\n'));
        }
        assert_eq!(text.lines().count(), CATALOGUE.len() + 1);
        assert!(text.lines().last().is_some_and(|l| l.starts_with("all ")));
    }

    /// Arguments naming `name` with an atoll binary that does not exist.
    fn args_without_binary(name: &str) -> ScenarioArgs {
        ScenarioArgs {
            name: Some(name.into()),
            list: false,
            flags: ScenarioFlags {
                atoll_bin: Some("/nonexistent/atoll".into()),
                etcd_bin: Some("/nonexistent/etcd".into()),
                value_size: 100,
                ..ScenarioFlags::default()
            },
        }
    }

    #[tokio::test]
    async fn unknown_names_list_the_catalogue() {
        let err = scenario_command(args_without_binary("nope"), true).await.expect_err("unknown");
        assert!(err.to_string().contains("restart-1m"), "{err}");
    }

    #[tokio::test]
    async fn a_missing_etcd_is_skipped_under_smoke_and_an_error_otherwise() {
        let args = args_without_binary("etcd-put-get");
        scenario_command(args.clone(), true).await.expect("skipped, not failed");
        let err = scenario_command(args, false).await.expect_err("no etcd");
        assert!(err.to_string().contains("apt-get install -y etcd-server"), "{err}");
    }

    #[tokio::test]
    async fn a_missing_binary_says_how_to_build_it() {
        let args = args_without_binary("count-only-1m");
        let err = scenario_command(args, true).await.expect_err("no binary");
        assert!(err.to_string().contains("cargo build --release --bin atoll"), "{err}");
    }
}
