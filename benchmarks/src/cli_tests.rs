//! Tests of the command line: defaults, every knob, and refusals of bad values.

use super::*;

fn must_parse(args: &[&str]) -> Cli {
    let mut argv = vec!["atoll-bench"];
    argv.extend_from_slice(args);
    Cli::try_parse_from(argv).unwrap_or_else(|e| panic!("{args:?} should parse: {e}"))
}

fn must_run(args: &[&str]) -> RunArgs {
    let mut argv = vec!["run"];
    argv.extend_from_slice(args);
    match must_parse(&argv).command {
        Command::Run(run) => run,
        other => panic!("expected run, got {other:?}"),
    }
}

fn must_fail(args: &[&str]) -> String {
    let mut argv = vec!["atoll-bench"];
    argv.extend_from_slice(args);
    match Cli::try_parse_from(argv) {
        Ok(cli) => panic!("{args:?} should be refused, parsed {cli:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn run_defaults_are_a_closed_loop_put() {
    let run = must_run(&[]);
    assert_eq!(run.workload, WorkloadKind::Put);
    assert_eq!((run.clients, run.connect.connections), (16, 1));
    assert_eq!((run.duration, run.total, run.rate), (None, None, None));
    assert_eq!(run.warmup, Duration::from_secs(1));
    assert_eq!(run.key.prefix, "/bench/");
    assert_eq!((run.key_space, run.key.value_size, run.key.key_size), (100_000, 256, None));
    assert!(!run.sequential && !run.serializable && !run.connect.insecure_skip_tls_verify);
    assert_eq!(run.connect.target().endpoints, vec!["127.0.0.1:2379".to_string()]);
}

#[test]
fn run_takes_every_knob() {
    let run = must_run(&[
        "--endpoints=a:1,b:2",
        "--insecure-skip-tls-verify",
        "--clients=64",
        "--connections=4",
        "--duration=30s",
        "--warmup=500ms",
        "--workload=txn-update",
        "--key-size=32",
        "--value-size=1024",
        "--key-space=1M",
        "--sequential",
        "--rate=2500.5",
        "--serializable",
        "--range-limit=10",
        "--read-ratio=0.5",
        "--prefix=/x/",
        "--seed=9",
        "--csv=out.csv",
        "--plot=out.svg",
    ]);
    assert_eq!(run.connect.target().endpoints.len(), 2);
    assert!(run.connect.insecure_skip_tls_verify);
    assert_eq!((run.clients, run.connect.connections), (64, 4));
    assert_eq!(run.duration, Some(Duration::from_secs(30)));
    assert_eq!(run.warmup, Duration::from_millis(500));
    assert_eq!(run.workload, WorkloadKind::TxnUpdate);
    assert_eq!((run.key.key_size, run.key.value_size, run.key_space), (Some(32), 1024, 1_000_000));
    assert!(run.sequential && run.serializable);
    assert_eq!((run.rate, run.range_limit, run.read_ratio), (Some(2500.5), 10, 0.5));
    assert_eq!((run.key.prefix.as_str(), run.key.seed), ("/x/", 9));
    assert_eq!(run.csv, Some(PathBuf::from("out.csv")));
    assert_eq!(run.plot, Some(PathBuf::from("out.svg")));
    assert_eq!(must_run(&["--total", "1_000"]).total, Some(1000));
    for workload in ["put", "get", "range", "mixed"] {
        assert_eq!(must_run(&["--workload", workload]).workload.name(), workload);
    }
}

#[test]
fn bad_run_values_are_refused_with_a_reason() {
    assert!(must_fail(&["run", "--duration=1s", "--total=5"]).contains("cannot be used with"));
    assert!(must_fail(&["run", "--rate=0"]).contains("above 0"));
    assert!(must_fail(&["run", "--rate=fast"]).contains("above 0"));
    assert!(must_fail(&["run", "--read-ratio=1.5"]).contains("from 0 to 1"));
    assert!(must_fail(&["run", "--clients=0"]).contains("--clients"));
    assert!(must_fail(&["run", "--key-space=0"]).contains("at least 1"));
    assert!(must_fail(&["run", "--value-size=2000000"]).contains("--value-size"));
    assert!(must_fail(&["run", "--workload=scan"]).contains("txn-update"));
    assert!(must_fail(&["run", "--duration=soon"]).contains("10s"));
    assert!(
        must_fail(&["run", "--cacert=x", "--insecure-skip-tls-verify"]).contains("cannot be used")
    );
    assert!(must_fail(&["run", "--bogus"]).contains("--bogus"));
    assert!(must_fail(&["run", "--plot=out.png"]).contains(".svg"));
}

#[test]
fn load_defaults_match_run_so_run_reads_what_load_wrote() {
    let Command::Load(load) = must_parse(&["load"]).command else { panic!("expected load") };
    let run = must_run(&[]);
    assert_eq!(load.keys, run.key_space);
    assert_eq!(load.key.prefix, run.key.prefix);
    assert_eq!((load.batch, load.clients), (128, 32));
    let Command::Load(load) =
        must_parse(&["load", "--keys", "1000000", "--value-size", "100", "--prefix", "/bench/k/"])
            .command
    else {
        panic!("expected load")
    };
    assert_eq!(
        (load.keys, load.key.value_size, load.key.prefix.as_str()),
        (1_000_000, 100, "/bench/k/")
    );
    assert!(must_fail(&["load", "--batch=129"]).contains("--batch"));
}

#[test]
fn scenario_takes_a_name_or_list_and_smoke_anywhere() {
    let cli = must_parse(&["scenario", "all", "--smoke"]);
    assert!(cli.smoke);
    let Command::Scenario(s) = cli.command else { panic!("expected scenario") };
    assert_eq!(s.name.as_deref(), Some("all"));
    assert!(!s.list);
    let cli = must_parse(&["--smoke", "scenario", "--list"]);
    let Command::Scenario(s) = cli.command else { panic!("expected scenario") };
    assert!(cli.smoke && s.list && s.name.is_none());
    let cli = must_parse(&[
        "scenario",
        "put-get-clients",
        "--clients=1,8",
        "--keys=10k",
        "--repeat=5",
        "--duration=2s",
        "--atoll-bin=/bin/atoll",
    ]);
    let Command::Scenario(s) = cli.command else { panic!("expected scenario") };
    let f = &s.flags;
    assert_eq!(
        (f.clients.clone(), f.keys, f.repeat),
        (Some(CountList(vec![1, 8])), Some(10_000), Some(5))
    );
    assert_eq!(f.atoll_bin, Some(PathBuf::from("/bin/atoll")));
    assert!(must_fail(&["scenario"]).contains("<NAME>"));
}

#[test]
fn compare_takes_nodes_rounds_and_points() {
    let Command::Compare(c) = must_parse(&["compare"]).command else { panic!("expected compare") };
    assert_eq!((c.nodes, c.rounds, c.connections, c.key_space), (1, None, 1, 10_000));
    assert_eq!(c.workloads, vec![WorkloadKind::Put, WorkloadKind::Get]);
    let cli = must_parse(&[
        "compare",
        "--smoke",
        "--nodes=3",
        "--rounds=5",
        "--workloads=get,range",
        "--clients=8,32",
        "--plot-dir=plots",
    ]);
    let Command::Compare(c) = cli.command else { panic!("expected compare") };
    assert!(cli.smoke);
    assert_eq!((c.nodes, c.rounds, c.clients), (3, Some(5), Some(CountList(vec![8, 32]))));
    assert_eq!(c.workloads, vec![WorkloadKind::Get, WorkloadKind::Range]);
    assert_eq!(c.plot_dir, Some(PathBuf::from("plots")));
    assert!(must_fail(&["compare", "--nodes=0"]).contains("--nodes"));
    assert!(must_fail(&["compare", "--nodes=9"]).contains("--nodes"));
    assert!(must_fail(&["compare", "--rounds=0"]).contains("at least 1"));
    assert!(must_fail(&["compare", "--workloads=scan"]).contains("txn-update"));
}

#[test]
fn suite_rewrites_results_md_by_default() {
    let Command::Suite(s) = must_parse(&["suite"]).command else { panic!("expected suite") };
    assert_eq!(s.results, PathBuf::from("benchmarks/RESULTS.md"));
    assert!(s.only.is_empty() && s.flags.plot_dir.is_none());
    let cli = must_parse(&["suite", "--smoke", "--only=compare,count-only-1m", "--keys=5k"]);
    let Command::Suite(s) = cli.command else { panic!("expected suite") };
    assert_eq!(s.only, vec!["compare".to_string(), "count-only-1m".to_string()]);
    assert_eq!(s.flags.keys, Some(5000));
}

#[test]
fn watch_and_split_flags_parse_and_bad_values_are_refused_in_one_line() {
    let cli = must_parse(&[
        "scenario",
        "watch-fan-out",
        "--watchers=10k",
        "--watch-streams=50",
        "--watch-connections=5",
        "--event-rate=2000",
        "--slow-watchers=300",
        "--initial-split=3",
    ]);
    let Command::Scenario(s) = cli.command else { panic!("expected scenario") };
    let w = &s.flags.watch;
    assert_eq!(
        (w.watchers, w.watch_streams, w.watch_connections),
        (Some(10_000), Some(50), Some(5))
    );
    assert_eq!((w.event_rate, w.slow_watchers), (Some(2000.0), Some(300)));
    let split = s.flags.initial_split.expect("split");
    assert_eq!(split.prefixes(), ["/p0/", "/p1/", "/p2/"]);
    assert_eq!(SplitSpec::Count(500).prefixes()[499], "/p499/");
    assert_eq!(
        parse_split("/a/, /b/").expect("list"),
        SplitSpec::Prefixes(vec!["/a/".into(), "/b/".into()])
    );
    for (bad, needle) in
        [("/a/,,/b/", "prefix 2 of"), ("/a/,/a/", "given twice"), ("99999999999", "too many")]
    {
        let err = parse_split(bad).expect_err(bad);
        assert!(err.contains(needle) && !err.contains('\n'), "{err}");
    }
    assert!(must_fail(&["scenario", "x", "--watchers=0"]).contains("at least 1"));
    assert!(must_fail(&["scenario", "x", "--event-rate=-5"]).contains("rate"));
    assert!(must_fail(&["scenario", "x", "--watch-connections=0"]).contains("--watch-connections"));
}

#[test]
fn lease_workloads_take_a_ttl_within_etcds_bounds() {
    let run = must_run(&["--workload=lease-keepalive"]);
    assert_eq!((run.workload, run.lease_ttl), (WorkloadKind::LeaseKeepalive, 600));
    let run = must_run(&["--workload=lease-grant", "--lease-ttl=30", "--sequential"]);
    assert_eq!((run.workload, run.lease_ttl), (WorkloadKind::LeaseGrant, 30));
    assert_eq!(must_run(&["--workload=lease-revoke"]).workload, WorkloadKind::LeaseRevoke);
    let err = must_fail(&["run", "--workload=lease-grant", "--lease-ttl=0"]);
    assert!(err.contains("--lease-ttl"), "{err}");
    let err = must_fail(&["run", "--lease-ttl=9000000001"]);
    assert!(err.contains("--lease-ttl"), "{err}");
}
