//! Starts a node: opens storage, loads identity and certificates, starts the log writer, the
//! apply worker, the actor system with the shard replicas, and the QUIC endpoint; then waits
//! for a signal. Any storage failure poisons the node: it logs one line and exits non-zero.

use crate::certs::{self, TlsMaterial};
use crate::config::{NodeConfig, url_socket_addr};
use crate::identity::NodeIdentity;
use crate::service::{NodeService, ShardHandle};
use crate::transport::{QuicServer, QuicServerConfig};
use actix::Actor as _;
use anyhow::Context as _;
use atoll_proto::ShardId;
use atoll_shard::Storage;
use atoll_shard::actors::{PublishedState, ReplicaActor, ReplicaDeps};
use atoll_shard::apply_worker::{ApplyWorker, HeaderIdentity};
use atoll_shard::config::ReplicaConfig;
use atoll_shard::core::SystemClock;
use atoll_shard::mvcc::{MvccLimits, MvccStore, ShardRange};
use atoll_shard::storage::LogWriter;
use std::sync::Arc;

/// The data shard that covers every key until the shard map (replication issue) splits it.
pub const DATA_SHARD: ShardId = ShardId(1);

/// Exit code after a storage failure.
const EXIT_STORAGE_FAILED: i32 = 3;

/// Runs a node until SIGINT/SIGTERM.
pub fn run(cfg: NodeConfig) -> anyhow::Result<()> {
    let storage = Storage::open(&cfg.data_dir.join("db"), cfg.cache_bytes)?;
    let identity =
        NodeIdentity::load_or_create(&cfg.data_dir, &cfg.initial_cluster_token, &cfg.name)
            .map_err(anyhow::Error::msg)?;
    let tls = load_tls(&cfg)?;
    let fatal = |what: &'static str| {
        move |e: &atoll_shard::StorageError| {
            eprintln!("atoll: fatal: {what} failed: {e}; stopping");
            std::process::exit(EXIT_STORAGE_FAILED);
        }
    };
    let log_writer = LogWriter::spawn(storage.clone(), Box::new(fatal("log writer")))?;
    let applier = ApplyWorker::spawn(Box::new(fatal("apply")))?;
    let limits =
        MvccLimits { max_txn_ops: cfg.max_txn_ops, max_request_bytes: cfg.max_request_bytes };
    let published = Arc::new(PublishedState::default());
    let store = MvccStore::new(storage.clone(), DATA_SHARD, ShardRange::all());
    let replica = ReplicaActor::new(ReplicaDeps {
        shard: DATA_SHARD,
        config: replica_config(&cfg, identity.member_id),
        initial_voters: vec![identity.member_id],
        store: store.clone(),
        limits: limits.clone(),
        identity: HeaderIdentity { cluster_id: identity.cluster_id, member_id: identity.member_id },
        log_writer: log_writer.clone(),
        applier,
        clock: Arc::new(SystemClock),
        published: published.clone(),
    })?;
    let addr = start_actors(replica)?;
    let shard = ShardHandle { addr, store, published };
    let timeout = cfg.request_timeout();
    let service = NodeService::new(shard, storage, identity, limits, timeout, Some(log_writer));
    serve(&cfg, tls, service)
}

fn replica_config(cfg: &NodeConfig, node_id: u64) -> ReplicaConfig {
    ReplicaConfig {
        node_id,
        tick_interval: cfg.heartbeat_interval,
        election_ticks: cfg.election_ticks(),
        heartbeat_ticks: 1,
        ..ReplicaConfig::default()
    }
}

fn load_tls(cfg: &NodeConfig) -> anyhow::Result<TlsMaterial> {
    match &cfg.tls_files {
        Some((cert, key, ca)) => Ok(certs::load_tls(cert, key, ca)?),
        None => {
            let hosts = advertised_hosts(cfg);
            Ok(certs::ensure_dev_certs(&cfg.data_dir, &hosts)?)
        }
    }
}

fn advertised_hosts(cfg: &NodeConfig) -> Vec<String> {
    cfg.advertise_client_urls
        .iter()
        .chain(&cfg.listen_client_urls)
        .filter_map(|u| url_socket_addr(u).ok())
        .map(|a| a.ip().to_string())
        .collect()
}

/// Starts the actix system on its own thread with one arbiter per core and places the replica
/// on one of them; returns its address.
fn start_actors(replica: ReplicaActor) -> anyhow::Result<actix::Addr<ReplicaActor>> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new().name("atoll-actors".into()).spawn(move || {
        let system = actix::System::new();
        system.block_on(async move {
            let arbiter = actix::Arbiter::new();
            let addr = ReplicaActor::start_in_arbiter(&arbiter.handle(), move |_| replica);
            let _ = tx.send(addr);
        });
        if let Err(e) = system.run() {
            eprintln!("atoll: fatal: actor system stopped: {e}");
            std::process::exit(EXIT_STORAGE_FAILED);
        }
    })?;
    rx.recv().context("actor system failed to start")
}

fn serve(cfg: &NodeConfig, tls: TlsMaterial, service: NodeService) -> anyhow::Result<()> {
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().thread_name("atoll-io").build()?;
    runtime.block_on(async move {
        let mut servers = Vec::new();
        for url in &cfg.listen_client_urls {
            let listen = url_socket_addr(url)?;
            let server_cfg = QuicServerConfig {
                listen,
                tls: tls.clone(),
                max_request_bytes: cfg.max_request_bytes,
            };
            let server = QuicServer::bind(server_cfg, Arc::new(service.clone()))?;
            tracing::info!(addr = %server.local_addr(), name = %cfg.name, "serving native clients over quic");
            servers.push(server);
        }
        for url in &cfg.listen_metrics_urls {
            let listener = crate::http::bind(url_socket_addr(url)?).await.map_err(anyhow::Error::msg)?;
            tracing::info!(url = %url, "serving /metrics and /health");
            tokio::spawn(crate::http::serve(listener, service.clone()));
        }
        println!("atoll: ready to serve clients on {}", cfg.listen_client_urls.join(","));
        let tasks: Vec<_> = servers.into_iter().map(|s| tokio::spawn(s.run())).collect();
        shutdown_signal().await;
        tracing::info!("shutting down");
        for t in tasks {
            t.abort();
        }
        Ok(())
    })
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => return std::future::pending().await,
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
