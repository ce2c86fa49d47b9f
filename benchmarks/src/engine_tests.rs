//! The engine and the loader against the in-process stand-in server: operations and errors
//! are counted exactly, runs stop where asked, open-loop runs keep to their schedule, and
//! every workload completes. No timing is asserted beyond what the schedule itself implies.

use super::*;
use crate::fake_server::FakeServer;
use crate::keys::{KeySpace, make_value};
use crate::load::{LoadSpec, load};
use crate::workload::WorkloadKind;

/// Concurrent txn-updates of one key may lose their compare twice (a real conflict, as in
/// Kubernetes); any other error, or a conflict in another workload, fails the test.
fn assert_only_contention(errors: &std::collections::BTreeMap<String, u64>, kind: WorkloadKind) {
    let unexpected = |k: &String| kind != WorkloadKind::TxnUpdate || k != "txn_conflict";
    assert!(!errors.keys().any(unexpected), "{}: {errors:?}", kind.name());
}

fn spec(kind: WorkloadKind, clients: usize, stop: StopAt, pacing: Pacing) -> RunSpec {
    let workload = WorkloadSpec {
        kind,
        keys: KeySpace::new("/t/", 100, None).expect("key space"),
        sequential: true,
        value: Arc::new(make_value(16, 1)),
        serializable: false,
        range_limit: 10,
        read_ratio: 0.5,
        seed: 1,
        lease_ttl_s: 60,
    };
    RunSpec {
        workload: Arc::new(workload),
        clients,
        stop,
        warmup: Duration::ZERO,
        pacing,
        progress: false,
        keep_intervals: true,
    }
}

async fn must_pool(server: &FakeServer, connections: usize) -> ClientPool {
    ClientPool::connect(&server.client_config(), connections).await.expect("connects")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_loop_run_counts_every_operation() {
    let server = FakeServer::must_start(None);
    let pool = must_pool(&server, 2).await;
    let outcome = run(&pool, &spec(WorkloadKind::Put, 8, StopAt::Total(500), Pacing::Closed))
        .await
        .expect("runs");
    let report = outcome.report;
    assert_eq!((report.ops, report.clients, report.connections), (500, 8, 2));
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!((report.mode, report.rate_target), ("closed", None));
    assert!(report.latency_us.p50 >= 1 && report.latency_us.p50 <= report.latency_us.max);
    assert_eq!(server.keys(), 100, "sequential puts cover the key space");
    let rows: u64 = outcome.intervals.iter().map(|row| row.latency.len()).sum();
    assert_eq!(rows, 500, "the per-second rows add up to the run");
}

#[tokio::test]
async fn failed_operations_are_counted_by_kind_and_not_as_ops() {
    let server = FakeServer::must_start(Some(5));
    let pool = must_pool(&server, 1).await;
    let report = run(&pool, &spec(WorkloadKind::Get, 4, StopAt::Total(100), Pacing::Closed))
        .await
        .expect("runs")
        .report;
    assert_eq!(report.ops, 80);
    assert_eq!(report.errors.get("server_busy"), Some(&20), "{:?}", report.errors);
    assert_eq!(report.errors.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_loop_run_keeps_to_its_schedule() {
    let server = FakeServer::must_start(None);
    let pool = must_pool(&server, 1).await;
    let pacing = Pacing::Open { ops_per_s: 400.0 };
    let report = run(&pool, &spec(WorkloadKind::Put, 4, StopAt::Total(100), pacing))
        .await
        .expect("runs")
        .report;
    assert_eq!(report.ops, 100);
    assert_eq!((report.mode, report.rate_target), ("open", Some(400.0)));
    // Operation 99 is not due before 99/400 s: the run cannot end sooner, however fast.
    assert!(report.duration_s >= 0.24, "{}", report.duration_s);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_by_duration_stop_and_every_workload_completes() {
    let server = FakeServer::must_start(None);
    let pool = must_pool(&server, 1).await;
    for kind in [
        WorkloadKind::Put,
        WorkloadKind::Get,
        WorkloadKind::Range,
        WorkloadKind::TxnUpdate,
        WorkloadKind::Mixed,
    ] {
        let stop = StopAt::Elapsed(Duration::from_millis(200));
        let report = run(&pool, &spec(kind, 4, stop, Pacing::Closed)).await.expect("runs").report;
        assert!(report.ops > 0, "{}: no operation", kind.name());
        assert_only_contention(&report.errors, kind);
        assert_eq!(report.workload, kind.name());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_loader_writes_every_key_in_batches() {
    let server = FakeServer::must_start(None);
    let pool = must_pool(&server, 1).await;
    let spec = LoadSpec {
        keys: KeySpace::new("/load/", 1000, None).expect("key space"),
        value: Arc::new(make_value(100, 1)),
        batch: 128,
        clients: 4,
        progress: false,
    };
    let report = load(&pool, spec).await.expect("loads");
    assert_eq!((report.keys, report.batch, report.requests, report.retries), (1000, 128, 8, 0));
    assert_eq!(server.keys(), 1000);
}

#[tokio::test]
async fn the_loader_resends_failed_batches() {
    let server = FakeServer::must_start(Some(7));
    let pool = must_pool(&server, 1).await;
    let spec = LoadSpec {
        keys: KeySpace::new("/load/", 300, None).expect("key space"),
        value: Arc::new(make_value(10, 1)),
        batch: 10,
        clients: 1,
        progress: false,
    };
    let report = load(&pool, spec).await.expect("loads despite failures");
    assert_eq!(server.keys(), 300);
    // 30 batches; requests 7, 14, 21 and 28 fail and are re-sent: 34 requests in all.
    assert_eq!((report.requests, report.retries), (34, 4), "{report:?}");
}

// The same engine through the etcd gRPC target, against the stand-in etcd.

async fn must_etcd_pool(server: &crate::fake_etcd::FakeEtcd, connections: usize) -> ClientPool {
    ClientPool::connect_etcd(&server.config(), connections).await.expect("connects")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_workload_runs_through_the_etcd_target() {
    let server = crate::fake_etcd::FakeEtcd::must_start(None).await;
    let pool = must_etcd_pool(&server, 2).await;
    let report = run(&pool, &spec(WorkloadKind::Put, 8, StopAt::Total(300), Pacing::Closed))
        .await
        .expect("runs")
        .report;
    assert_eq!((report.ops, report.connections), (300, 2));
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(server.keys(), 100, "sequential puts cover the key space");
    for kind in
        [WorkloadKind::Get, WorkloadKind::Range, WorkloadKind::TxnUpdate, WorkloadKind::Mixed]
    {
        let report = run(&pool, &spec(kind, 4, StopAt::Total(200), Pacing::Closed))
            .await
            .expect("runs")
            .report;
        let conflicts = report.errors.get("txn_conflict").copied().unwrap_or(0);
        assert_eq!(report.ops + conflicts, 200, "{}", kind.name());
        assert_only_contention(&report.errors, kind);
    }
}

#[tokio::test]
async fn etcd_failures_are_counted_by_grpc_code() {
    let server = crate::fake_etcd::FakeEtcd::must_start(Some(5)).await;
    let pool = must_etcd_pool(&server, 1).await;
    let report = run(&pool, &spec(WorkloadKind::Get, 4, StopAt::Total(100), Pacing::Closed))
        .await
        .expect("runs")
        .report;
    assert_eq!(report.ops, 80);
    assert_eq!(report.errors.get("grpc_resource_exhausted"), Some(&20), "{:?}", report.errors);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_loader_writes_every_key_through_the_etcd_target() {
    let server = crate::fake_etcd::FakeEtcd::must_start(Some(7)).await;
    let pool = must_etcd_pool(&server, 1).await;
    let spec = LoadSpec {
        keys: KeySpace::new("/load/", 1000, None).expect("key space"),
        value: Arc::new(make_value(100, 1)),
        batch: 128,
        clients: 1,
        progress: false,
    };
    let report = load(&pool, spec).await.expect("loads despite failures");
    assert_eq!(server.keys(), 1000);
    // 8 batches; request 7 fails and is re-sent.
    assert_eq!((report.requests, report.retries), (9, 1), "{report:?}");
}
