//! Starts a node: opens storage, loads identity and certificates, starts the peer transport
//! (clusters of more than one member), the log writer, the apply worker, the actor system
//! with the meta shard's replica, then, once the meta shard holds the shard map (decision
//! D23), a replica of every data shard, the QUIC endpoint and the etcd gRPC gateway;
//! then waits for a signal. Any storage failure poisons the node: it logs one line and exits
//! non-zero.

use crate::certs::{self, TlsMaterial};
use crate::cluster::{self, PeerBridge};
use crate::config::{ClusterState, NodeConfig, url_socket_addr};
use crate::grpc::{self, GatewayConfig};
use crate::identity::NodeIdentity;
use crate::service::{Forwarder, LeaseConfig, NodeService, ShardHandle, ShardSet};
use crate::service::{PeerSet, Removed};
use crate::transport::peer::{PeerTransport, PeerTransportConfig, join_cluster};
use crate::transport::{QuicServer, QuicServerConfig};
use actix::Actor as _;
use anyhow::Context as _;
use atoll_proto::member::{JoinRequest, JoinResponse};
use atoll_proto::shard_map::{Member, ReplicaRole};
use atoll_proto::{NodeId, ShardId};
use atoll_shard::Storage;
use atoll_shard::actors::{
    AddTickedReplicas, PublishedState, ReplicaActor, ReplicaDeps, TickedReplica, TickerActor,
};
use atoll_shard::apply_worker::{ApplyWorker, HeaderIdentity};
use atoll_shard::config::{CompactorConfig, ReplicaConfig};
use atoll_shard::core::{AutoCompactionConfig, SystemClock};
use atoll_shard::mvcc::{MvccLimits, MvccStore, ShardRange};
use atoll_shard::storage::LogWriter;
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;

/// Exit code after a storage failure.
const EXIT_STORAGE_FAILED: i32 = 3;

/// Runs a node until SIGINT/SIGTERM.
pub fn run(cfg: NodeConfig) -> anyhow::Result<()> {
    let storage = Storage::open(&cfg.data_dir.join("db"), cfg.cache_bytes)?;
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().thread_name("atoll-io").build()?;
    let joined = join_if_new(&cfg, &runtime)?;
    // A stored identity that differs from the flags is kept, and load_or_init says so.
    let (identity, _) = NodeIdentity::load_or_init(
        &cfg.data_dir,
        cfg.initial_identity(),
        cfg.cluster.initial_cluster_state,
    )
    .map_err(anyhow::Error::msg)?;
    let me = NodeId(identity.member_id);
    let peers = startup_peers(&cfg, &storage, me, joined.as_ref())?;
    if !peers.is_empty() && cfg.tls_files.is_none() {
        anyhow::bail!(
            "a cluster of {} members needs certificates from one CA: create them with `atoll \
             certs ca` and `atoll certs node`, then pass --cert-file, --key-file and \
             --trusted-ca-file",
            peers.len() + 1
        );
    }
    let tls = load_tls(&cfg)?;
    // Only a new cluster bootstraps its shards; a node joining a running one starts them
    // empty and learns everything from the leaders (decision D18), the shard map included
    // (D23): the join answer's copy is not used.
    let bootstrap = cfg.cluster.initial_cluster_state == ClusterState::New && joined.is_none();
    let legacy_map = cluster::read_legacy_map(&cfg)?;
    // The map the flags ask for, and what the meta shard's bootstrap records: an older data
    // directory's file if it has one (its meta shard was bootstrapped already, so this only
    // matters for one from before D16), else the flags' map.
    let wanted = bootstrap.then(|| cluster::initial_shard_map(&cfg)).transpose()?;
    let bootstrap_map = legacy_map.clone().or_else(|| wanted.clone());
    let bridge = Arc::new(PeerBridge::default());
    // Snapshot files of a previous run are transient: Raft asks again for what it needs.
    atoll_shard::snapshot::clear_snapshot_dir(storage.path())?;
    bridge.set_snapshot_dir(atoll_shard::snapshot::snapshot_dir(storage.path()));
    // A node with certificates can grow into a cluster (`member add`), so it listens for
    // peers even while it has none.
    let transport = if peers.is_empty() && cfg.tls_files.is_none() {
        None
    } else {
        let listen =
            url_socket_addr(cfg.listen_peer_urls.first().context("no --listen-peer-urls")?)?;
        let peer_cfg = PeerTransportConfig {
            node_id: me,
            cluster_id: identity.cluster_id,
            listen,
            tls: tls.clone(),
            peers,
        };
        let _guard = runtime.enter();
        let transport = PeerTransport::start(peer_cfg, bridge.clone())?;
        transport.set_max_request_bytes(cfg.max_request_bytes);
        bridge.set_sender(transport.sender());
        Some(Arc::new(transport))
    };
    let initial_members: Vec<Member> = if bootstrap {
        // The bootstrap entries must be the same bytes on every member: client URLs are
        // published by each member once it runs.
        cfg.initial_members().into_iter().map(|m| Member { client_urls: Vec::new(), ..m }).collect()
    } else {
        Vec::new()
    };
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
    let compactor = cfg.compaction.compactor_config();
    let replica_deps = |shard: ShardId, range: ShardRange, voters: Vec<u64>| ReplicaDeps {
        shard,
        config: replica_config(&cfg, identity.member_id),
        initial_voters: if bootstrap { voters } else { Vec::new() },
        initial_members: initial_members.clone(),
        initial_shard_map: bootstrap_map.clone().filter(|_| shard == ShardId::META),
        store: MvccStore::new(storage.clone(), shard, range),
        limits: limits.clone(),
        identity: HeaderIdentity { cluster_id: identity.cluster_id, member_id: identity.member_id },
        log_writer: log_writer.clone(),
        applier: applier.clone(),
        clock: Arc::new(SystemClock),
        published: Arc::new(PublishedState::default()),
        peers: bridge.clone(),
        compactor: if shard == ShardId::META {
            // The meta shard keeps no MVCC history: nothing to compact on a schedule.
            CompactorConfig { auto: AutoCompactionConfig::default(), ..compactor.clone() }
        } else {
            compactor.clone()
        },
    };
    // The meta shard (decision D16): every member a voter, on every member; an existing data
    // directory without one bootstraps it here exactly as a new one does. It starts first:
    // the data shards come from the shard map it holds (decision D23).
    let meta_voters = bootstrap_map.as_ref().and_then(|m| m.shards.first()).map(voters_of);
    let meta_deps = replica_deps(ShardId::META, meta_range(), meta_voters.unwrap_or_default());
    let mut actors = ActorSystem::start(cfg.heartbeat_interval)?;
    let mut meta = actors.place(vec![meta_deps])?;
    bridge.add_replicas(meta.iter().map(|(id, h)| (*id, h.addr.clone())).collect(), false);
    let (map, map_source) = cluster::await_shard_map(&storage, legacy_map, wanted.as_ref())?;
    let mut deps = Vec::new();
    for shard in &map.shards {
        let range = ShardRange { start: shard.start.clone(), end: shard.end.clone() };
        deps.push(replica_deps(shard.id, range, voters_of(shard)));
    }
    let handles = actors.place(deps)?;
    bridge.add_replicas(handles.iter().map(|(id, h)| (*id, h.addr.clone())).collect(), true);
    let meta = meta.remove(&ShardId::META).context("the meta shard did not start")?;
    let shards = ShardSet::new(map, handles, meta)?;
    let timeout = cfg.request_timeout();
    // The bridge forwards writes to shard leaders on other nodes and serves theirs here.
    let forwarder = transport.as_ref().map(|_| bridge.clone() as Arc<dyn Forwarder>);
    let service =
        NodeService::new(shards, storage, identity, limits, timeout, Some(log_writer), forwarder);
    service.set_watch_progress_interval(cfg.watch_progress_notify_interval);
    service.configure_auth(cfg.auth);
    service.set_strict_reconfig_check(cfg.strict_reconfig_check);
    service.start_lease_manager(&runtime, lease_config(&cfg));
    bridge.set_service(service.clone());
    if let Some(transport) = &transport {
        service.set_peer_set(transport.clone() as Arc<dyn PeerSet>);
    }
    let client_urls = cfg.advertise_client_urls.clone();
    let migrate = map_source == cluster::MapSource::LegacyFile;
    let removed = service.start_membership_task(&runtime, cfg.name.clone(), client_urls, migrate);
    serve(&cfg, runtime, tls, service, transport, removed)
}

/// A node started with `--initial-cluster-state existing` and no identity yet asks the
/// members in `--initial-cluster` who it is (decision D18) and stores the identity it is
/// given; `None` for every other start.
fn join_if_new(
    cfg: &NodeConfig,
    runtime: &tokio::runtime::Runtime,
) -> anyhow::Result<Option<JoinResponse>> {
    if cfg.cluster.initial_cluster_state != ClusterState::Existing
        || NodeIdentity::is_stored(&cfg.data_dir)
    {
        return Ok(None);
    }
    if cfg.tls_files.is_none() {
        anyhow::bail!(
            "joining a cluster (--initial-cluster-state existing) needs this node's certificate \
             from the cluster's CA: pass --cert-file, --key-file and --trusted-ca-file"
        );
    }
    let tls = load_tls(cfg)?;
    let own = &cfg.cluster.initial_advertise_peer_urls;
    let mut seeds = Vec::new();
    for m in cfg.initial_members() {
        if m.peer_urls != *own
            && let Some(url) = m.peer_urls.first()
        {
            seeds.push(url_socket_addr(url)?);
        }
    }
    let req = JoinRequest { peer_urls: own.clone() };
    let patience = cfg.request_timeout();
    let answer = runtime.block_on(join_cluster(&tls, &seeds, &req, patience))?;
    let identity = NodeIdentity { member_id: answer.member_id.0, cluster_id: answer.cluster_id };
    identity.store(&cfg.data_dir).map_err(anyhow::Error::msg)?;
    tracing::info!(
        member_id = %format_args!("{:x}", identity.member_id),
        cluster_id = %format_args!("{:x}", identity.cluster_id),
        "joined the cluster"
    );
    Ok(Some(answer))
}

/// The peers to dial at start: the members this node has applied, else (a new member's
/// first start) those its join answer named, else the initial cluster flags.
fn startup_peers(
    cfg: &NodeConfig,
    storage: &Storage,
    me: NodeId,
    joined: Option<&JoinResponse>,
) -> anyhow::Result<HashMap<NodeId, SocketAddr>> {
    let stored = atoll_shard::member::members(storage, &storage.db.snapshot())?;
    let members = match joined {
        _ if !stored.is_empty() => stored,
        Some(j) => j.members.clone(),
        None => cfg.initial_members(),
    };
    cluster::peer_addresses(&members, me)
}

/// The voters of a shard descriptor (the bootstrap voters of its Raft group).
fn voters_of(shard: &atoll_proto::shard_map::ShardDescriptor) -> Vec<u64> {
    shard.replicas.iter().filter(|r| r.role == ReplicaRole::Voter).map(|r| r.node.0).collect()
}

/// The meta shard holds no user keys: its range contains none (`[\0, \0)`), so a user
/// write that reached it by mistake is refused as a wrong shard.
fn meta_range() -> ShardRange {
    ShardRange { start: vec![0], end: vec![0] }
}

fn lease_config(cfg: &NodeConfig) -> LeaseConfig {
    LeaseConfig {
        min_ttl_seconds: cfg.min_lease_ttl_seconds(),
        revoke_rate: cfg.lease_revoke_rate,
        checkpoint_interval: cfg.lease_checkpoint_interval,
        election_timeout: cfg.election_timeout,
    }
}

fn replica_config(cfg: &NodeConfig, node_id: u64) -> ReplicaConfig {
    ReplicaConfig {
        node_id,
        tick_interval: cfg.heartbeat_interval,
        election_ticks: cfg.election_ticks(),
        heartbeat_ticks: 1,
        log_retained_entries: cfg.snapshot_catchup_entries,
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

/// The actix system on its own thread with one arbiter per core, each with one ticker for
/// the replicas placed on it (DESIGN §3). Replicas are placed in two steps: the meta shard,
/// then the data shards its shard map names (decision D23).
struct ActorSystem {
    arbiters: Vec<actix::ArbiterHandle>,
    tickers: Vec<actix::Addr<TickerActor>>,
    /// Replicas placed so far; the next goes to arbiter `placed % arbiters`.
    placed: usize,
}

impl ActorSystem {
    fn start(tick_interval: std::time::Duration) -> anyhow::Result<ActorSystem> {
        let (tx, rx) = std::sync::mpsc::channel();
        let arbiters_count = std::thread::available_parallelism().map_or(1, |n| n.get());
        std::thread::Builder::new().name("atoll-actors".into()).spawn(move || {
            let system = actix::System::new();
            system.block_on(async move {
                let arbiters: Vec<actix::ArbiterHandle> =
                    (0..arbiters_count).map(|_| actix::Arbiter::new().handle()).collect();
                let tickers: Vec<_> = arbiters
                    .iter()
                    .map(|arbiter| {
                        TickerActor::start_in_arbiter(arbiter, move |_| {
                            TickerActor::new(tick_interval, Vec::new())
                        })
                    })
                    .collect();
                let _ = tx.send((arbiters, tickers));
            });
            if let Err(e) = system.run() {
                eprintln!("atoll: fatal: actor system stopped: {e}");
                std::process::exit(EXIT_STORAGE_FAILED);
            }
        })?;
        let (arbiters, tickers) = rx.recv().context("actor system failed to start")?;
        Ok(ActorSystem { arbiters, tickers, placed: 0 })
    }

    /// Builds the replicas of `deps` (on this thread: start-up loads their logs) and spreads
    /// them over the arbiters, each ticked by its arbiter's ticker.
    fn place(&mut self, deps: Vec<ReplicaDeps>) -> anyhow::Result<BTreeMap<ShardId, ShardHandle>> {
        let mut ticked: Vec<Vec<TickedReplica>> =
            self.arbiters.iter().map(|_| Vec::new()).collect();
        let mut handles = BTreeMap::new();
        for d in deps {
            let (id, store, published) = (d.shard, d.store.clone(), d.published.clone());
            let replica = ReplicaActor::new(d)?;
            let slot = self.placed % self.arbiters.len();
            self.placed += 1;
            let addr = ReplicaActor::start_in_arbiter(&self.arbiters[slot], move |_| replica);
            ticked[slot].push(TickedReplica { addr: addr.clone(), published: published.clone() });
            handles.insert(id, ShardHandle { addr, store, published });
        }
        for (ticker, replicas) in self.tickers.iter().zip(ticked) {
            if !replicas.is_empty() {
                ticker.do_send(AddTickedReplicas(replicas));
            }
        }
        Ok(handles)
    }
}

fn serve(
    cfg: &NodeConfig,
    runtime: tokio::runtime::Runtime,
    tls: TlsMaterial,
    service: NodeService,
    transport: Option<Arc<PeerTransport>>,
    removed: tokio::task::JoinHandle<Removed>,
) -> anyhow::Result<()> {
    runtime.block_on(async move {
        let mut servers = Vec::new();
        let mut gateways = Vec::new();
        for url in &cfg.listen_client_urls {
            let listen = url_socket_addr(url)?;
            let listener = tokio::net::TcpListener::bind(listen)
                .await
                .with_context(|| format!("cannot listen for etcd gRPC clients on {listen} (tcp)"))?;
            let gateway_cfg = GatewayConfig {
                max_request_bytes: cfg.max_request_bytes,
                tls: url.starts_with("https://").then(|| tls.clone()),
            };
            tracing::info!(addr = %listen, "serving etcd grpc clients over tcp");
            let gateway_service = service.clone();
            gateways.push(tokio::spawn(async move {
                if let Err(e) = grpc::serve(listener, gateway_service, gateway_cfg).await {
                    tracing::error!(error = %e, "etcd grpc gateway stopped");
                }
            }));
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
        let outcome = tokio::select! {
            () = shutdown_signal() => Ok(()),
            Ok(removed) = removed => {
                tracing::error!(member = %format!("{:x}", removed.0.0), "{removed}");
                Err(anyhow::anyhow!("{removed}"))
            }
        };
        tracing::info!("shutting down");
        for t in tasks.into_iter().chain(gateways) {
            t.abort();
        }
        if let Some(transport) = transport {
            transport.close().await;
        }
        outcome
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
