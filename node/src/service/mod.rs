//! The request service: turns native client requests into replica proposals and snapshot
//! reads. Writes go through Raft; linearizable reads wait for a ReadIndex and then read a fjall
//! snapshot on the blocking pool, so a long scan never delays Raft or writes (DESIGN §3).
//!
//! Requests are routed by key to the shard that owns them (`shards.rs`). A write whose shard
//! is led by another node is forwarded to that node (DESIGN §6: any node accepts any
//! request); reads are served here, followers included, through ReadIndex. A Range over
//! several shards reads every one at one revision and merges the answers (`range.rs`); a
//! DeleteRange over several shards deletes shard by shard; a Txn
//! over several shards is refused.

mod auth;
mod lease;
mod lease_expiry;
mod lease_manager;
mod lease_revocation;
mod members;
mod merged_watch;
mod range;
mod range_stream;
mod shard_map;
mod shards;
mod watch;
mod watch_task;

pub use lease_manager::LeaseConfig;
pub use members::{MEMBERSHIP_POLL, PeerSet, Removed};
pub use range_stream::{RANGE_STREAM_FIRST_CHUNK_KEYS, RangeChunk};
pub use shards::{ShardHandle, ShardSet};
pub use watch::{WATCH_PROGRESS_INTERVAL_DEFAULT, WATCHERS_PER_STREAM_MAX};

use crate::identity::NodeIdentity;
use crate::transport::{RequestHandler, WatchStreamIo};
use atoll_proto::*;
use atoll_shard::Storage;
use atoll_shard::actors::{
    GetStatus, Propose, ReadIndex, ReplicaStatus, TransferLeader, WaitCompacted,
};
use atoll_shard::mvcc::{MvccLimits, WriteResponse, validate_write};
use atoll_shard::storage::LogWriterHandle;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::{Semaphore, oneshot};
use tokio::time::Instant;

/// How long a request waits between looks for a shard leader during an election.
const LEADER_POLL: Duration = Duration::from_millis(20);
/// The longest a `Compact { physical: true }` waits for this node's removal of the history
/// (etcd waits as long as its client does; clients' own deadlines usually come first).
const PHYSICAL_COMPACTION_WAIT_MAX: Duration = Duration::from_secs(10 * 60);

/// Sends a request to the node that leads its shard and returns that node's answer.
pub trait Forwarder: Send + Sync + 'static {
    /// Forwards `req` to node `to`; the answer is the one `to` gives.
    fn forward(
        &self,
        to: NodeId,
        req: NativeRequest,
    ) -> Pin<Box<dyn Future<Output = Result<NativeResponse, AtollError>> + Send + 'static>>;
}

/// Snapshot reads running at once; more wait for a permit (the read pool's bound).
pub const READS_IN_FLIGHT_MAX: usize = 64;

/// Serves native requests for the node.
#[derive(Clone)]
pub struct NodeService {
    inner: Arc<Inner>,
}

struct Inner {
    shards: ShardSet,
    storage: Storage,
    identity: NodeIdentity,
    limits: MvccLimits,
    request_timeout: Duration,
    reads: Semaphore,
    counters: RequestCounters,
    log_writer: Option<LogWriterHandle>,
    forwarder: Option<Arc<dyn Forwarder>>,
    /// Interval of periodic watch progress notifications, in milliseconds.
    watch_progress_interval_ms: AtomicU64,
    /// Per shard, the highest revision a `Close` proposal is in flight for (at most one
    /// per shard: merged watches share it).
    closing: std::sync::Mutex<std::collections::HashMap<ShardId, i64>>,
    /// The lease manager, once started (decision D16).
    leases: std::sync::OnceLock<Arc<lease_manager::LeaseManager>>,
    /// This node's copy of the auth store and its auth settings (decision D21).
    auth: auth::AuthState,
    /// Whether this member is a learner, with the meta shard's records generation it was
    /// read at (decision D22).
    learner: std::sync::RwLock<Option<(u64, bool)>>,
    /// The peer that refused this node as a member removed from the cluster, if one did
    /// (decision D18: a member removed while it was down learns it so).
    removed_by: std::sync::OnceLock<NodeId>,
    /// The peer transport's view of the other members, once the membership task started
    /// (none in a cluster without one).
    peers: std::sync::OnceLock<Arc<dyn members::PeerSet>>,
    /// Whether membership changes go through etcd's strict reconfiguration check.
    strict_reconfig_check: std::sync::atomic::AtomicBool,
}

/// Requests served, by outcome; read by `/metrics`.
#[derive(Default)]
struct RequestCounters {
    reads: AtomicU64,
    writes: AtomicU64,
    errors: AtomicU64,
    forwarded: AtomicU64,
}

/// Where a write may go when this node does not lead its shard.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Origin {
    /// From a client: forwarded to the shard leader.
    Client,
    /// Forwarded by another node: served here or refused, never forwarded again.
    Peer,
}

impl NodeService {
    /// A service over the node's local replicas. `forwarder` reaches other nodes (none in a
    /// single-node cluster); `log_writer` is only read for `/metrics`.
    pub fn new(
        shards: ShardSet,
        storage: Storage,
        identity: NodeIdentity,
        limits: MvccLimits,
        request_timeout: Duration,
        log_writer: Option<LogWriterHandle>,
        forwarder: Option<Arc<dyn Forwarder>>,
    ) -> NodeService {
        let reads = Semaphore::new(READS_IN_FLIGHT_MAX);
        let counters = RequestCounters::default();
        let inner = Inner {
            shards,
            storage,
            identity,
            limits,
            request_timeout,
            reads,
            counters,
            log_writer,
            forwarder,
            watch_progress_interval_ms: AtomicU64::new(millis(WATCH_PROGRESS_INTERVAL_DEFAULT)),
            closing: std::sync::Mutex::new(std::collections::HashMap::new()),
            leases: std::sync::OnceLock::new(),
            auth: auth::AuthState::default(),
            learner: std::sync::RwLock::new(None),
            removed_by: std::sync::OnceLock::new(),
            peers: std::sync::OnceLock::new(),
            strict_reconfig_check: std::sync::atomic::AtomicBool::new(true),
        };
        NodeService { inner: Arc::new(inner) }
    }

    /// Starts the lease manager and its expiry loop on `runtime`: the loop acts only while
    /// this node leads the meta shard. Called once; a second call is ignored.
    pub fn start_lease_manager(&self, runtime: &tokio::runtime::Runtime, config: LeaseConfig) {
        let manager = Arc::new(lease_manager::LeaseManager::new(config));
        if self.inner.leases.set(manager).is_err() {
            tracing::warn!("lease manager started twice; keeping the first");
            return;
        }
        runtime.spawn(self.clone().run_lease_expiry());
        runtime.spawn(self.clone().run_lease_revocations());
    }

    /// The node's storage (backups read it).
    pub fn storage(&self) -> &Storage {
        &self.inner.storage
    }

    /// Sets how often watches that asked for progress notifications get one while idle
    /// (etcd's `--experimental-watch-progress-notify-interval`); applies to watches created
    /// afterwards.
    pub fn set_watch_progress_interval(&self, every: Duration) {
        self.inner.watch_progress_interval_ms.store(millis(every).max(1), Ordering::Relaxed);
    }

    fn watch_progress_interval(&self) -> Duration {
        Duration::from_millis(self.inner.watch_progress_interval_ms.load(Ordering::Relaxed))
    }

    /// etcd's MoveLeader for a sharded node: every shard this node leads hands its
    /// leadership to `target`, and the call returns once `target` leads them all (or the
    /// request timeout passes). A node that leads no shard answers "not leader", as an
    /// etcd member that is not the leader does; a target that is not a voter is refused.
    pub async fn move_leader(&self, target: NodeId) -> Result<(), AtollError> {
        let me = self.inner.identity.member_id;
        let led: Vec<(ShardId, &ShardHandle)> =
            self.inner.shards.handles().filter(|(_, h)| h.published.leader() == me).collect();
        if led.is_empty() {
            let leader_hint = self.inner.shards.first().map(|(_, h)| NodeId(h.published.leader()));
            let shard = self.inner.shards.first().map_or(ShardId(0), |(id, _)| id);
            return Err(AtollError::NotLeader { shard, leader_hint });
        }
        if target.0 == me {
            return Ok(());
        }
        for (_, handle) in &led {
            let asked = handle.addr.send(TransferLeader(target));
            tokio::time::timeout(self.inner.request_timeout, asked)
                .await
                .map_err(|_| AtollError::Timeout)?
                .map_err(|_| AtollError::Stopping)??;
        }
        let deadline = Instant::now() + self.inner.request_timeout;
        while !led.iter().all(|(_, h)| h.published.leader() == target.0) {
            if Instant::now() >= deadline {
                return Err(AtollError::Timeout);
            }
            tokio::time::sleep(LEADER_POLL).await;
        }
        Ok(())
    }

    /// Serves one request from a client, unchecked: for the node's own callers (the
    /// gateway after its checks, its recipes). Clients' requests go through
    /// [`NodeService::serve_as`].
    pub async fn serve(&self, req: NativeRequest) -> NativeResponse {
        self.serve_from(req, Origin::Client).await
    }

    /// Serves one request another node forwarded here because this node leads its shard.
    pub async fn serve_forwarded(&self, req: NativeRequest) -> NativeResponse {
        self.serve_from(req, Origin::Peer).await
    }

    async fn serve_from(&self, req: NativeRequest, origin: Origin) -> NativeResponse {
        let counters = &self.inner.counters;
        let reads = matches!(
            req,
            NativeRequest::Range(_) | NativeRequest::Status(_) | NativeRequest::HashKv(_)
        );
        let counter = if reads { &counters.reads } else { &counters.writes };
        counter.fetch_add(1, Ordering::Relaxed);
        let result = self.dispatch(req, origin).await;
        result.unwrap_or_else(|e| {
            counters.errors.fetch_add(1, Ordering::Relaxed);
            NativeResponse::Error(e)
        })
    }

    async fn dispatch(
        &self,
        req: NativeRequest,
        origin: Origin,
    ) -> Result<NativeResponse, AtollError> {
        // A node's part of a request it serves: from a client it could skip the node's checks
        // (e.g. vouch for a lease grant nobody checked).
        if origin == Origin::Client && req.is_peer_only() {
            return Err(AtollError::Malformed {
                reason: "this request is for nodes only; clients cannot send it".into(),
            });
        }
        match req {
            NativeRequest::Range(r) => self.range(r).await.map(NativeResponse::Range),
            NativeRequest::Put(r) => self.write(WriteOp::Put(r), origin).await,
            NativeRequest::DeleteRange(r) => self.write(WriteOp::DeleteRange(r), origin).await,
            NativeRequest::Txn(r) => self.write(WriteOp::Txn(r), origin).await,
            NativeRequest::Compact(r) => self.write(WriteOp::Compact(r), origin).await,
            // A merged watch or a cross-shard read on another node, forwarded here.
            NativeRequest::Close(r) => self.write(WriteOp::Close(r), origin).await,
            NativeRequest::Status(_) => self.status().await.map(NativeResponse::Status),
            NativeRequest::HashKv(r) => self.hash_kv(r).await.map(NativeResponse::HashKv),
            // A node's part of a Compact, forwarded here.
            NativeRequest::CompactShard(r) => {
                let op = WriteOp::Compact(r.compaction);
                validate_write(&op, &self.inner.limits)?;
                self.write_on(r.shard, op, origin).await
            }
            // The transport hands watch streams to `watch_stream`; one here came as a single
            // request (forwarded, or from a client that does not speak watch streams).
            NativeRequest::Watch(_) => Err(AtollError::Malformed {
                reason: "a watch needs its own stream; open one with the client's watch API".into(),
            }),
            NativeRequest::LeaseGrant(_)
            | NativeRequest::LeaseRevoke(_)
            | NativeRequest::LeaseKeepAlive(_)
            | NativeRequest::LeaseTimeToLive(_)
            | NativeRequest::LeaseLeases(_) => self.serve_lease(req, origin).await,
            NativeRequest::LeaseLookup(_) => self.serve_lease(req, origin).await,
            NativeRequest::LeasedWrite(w) => self.write(WriteOp::Leased(w), origin).await,
            NativeRequest::RevokeLeaseKeys(r) => {
                self.write(WriteOp::RevokeLeaseKeys(r), origin).await
            }
            NativeRequest::RevokeLeaseKeysBatch(r) => {
                self.write(WriteOp::RevokeLeaseKeysBatch(r), origin).await
            }
            NativeRequest::MemberList(_)
            | NativeRequest::MemberAdd(_)
            | NativeRequest::MemberRemove(_)
            | NativeRequest::MemberPromote(_)
            | NativeRequest::MemberUpdate(_) => self.serve_members(req, origin).await,
            NativeRequest::MemberWrite(w) => self.write(WriteOp::Member(w), origin).await,
            NativeRequest::ShardMap(r) => self.serve_shard_map(r).await,
            NativeRequest::AtLeader(r) => self.serve_at_leader(r).await,
            NativeRequest::Auth(a) => self.serve_auth(a, origin).await,
            NativeRequest::AuthWrite(op) => {
                self.write_on(ShardId::META, WriteOp::Auth(op), origin).await
            }
            // `serve_as` takes the token off a client's request; none reaches here.
            NativeRequest::WithToken(_) => Err(AtollError::Malformed {
                reason: "a token wraps a client's request once, on the client port".into(),
            }),
        }
    }

    /// Succeeds once a linearizable read index is confirmed and applied: the shard has a
    /// leader and this node follows it (etcd's /health does a linearizable read too).
    pub async fn check_health(&self, timeout: Duration) -> Result<(), AtollError> {
        let every_shard = self.inner.shards.handles().map(|(id, _)| self.read_index(id));
        tokio::time::timeout(timeout, futures::future::try_join_all(every_shard))
            .await
            .map_err(|_| AtollError::Timeout)?
            .map(|_| ())
    }

    /// `(name, help, type, value)` of every metric the node exports.
    pub async fn metric_samples(&self) -> Vec<(&'static str, &'static str, &'static str, String)> {
        let inner = &self.inner;
        let c = &inner.counters;
        let mut samples = vec![
            (
                "atoll_server_reads_total",
                "Read requests received.",
                "counter",
                c.reads.load(Ordering::Relaxed).to_string(),
            ),
            (
                "atoll_server_writes_total",
                "Write requests received.",
                "counter",
                c.writes.load(Ordering::Relaxed).to_string(),
            ),
            (
                "atoll_server_errors_total",
                "Requests answered with an error.",
                "counter",
                c.errors.load(Ordering::Relaxed).to_string(),
            ),
            (
                "atoll_storage_disk_bytes",
                "Bytes the storage engine uses on disk.",
                "gauge",
                inner.storage.disk_bytes().to_string(),
            ),
        ];
        if let Some(lw) = &inner.log_writer {
            let s = lw.stats();
            samples.push((
                "atoll_log_writer_syncs_total",
                "fsyncs of the log writer (one per group commit).",
                "counter",
                s.syncs.load(Ordering::Relaxed).to_string(),
            ));
            samples.push((
                "atoll_log_writer_entries_total",
                "Raft entries made durable.",
                "counter",
                s.entries.load(Ordering::Relaxed).to_string(),
            ));
            let secs = s.sync_micros.load(Ordering::Relaxed) as f64 / 1e6;
            samples.push((
                "atoll_log_writer_sync_seconds_total",
                "Time spent in fsync.",
                "counter",
                format!("{secs:.6}"),
            ));
        }
        let hubs = || inner.shards.handles().map(|(_, h)| h.store.watch_hub());
        samples.push((
            "atoll_watch_watchers",
            "Watches served by this node.",
            "gauge",
            hubs().map(|hub| hub.watcher_count()).sum::<usize>().to_string(),
        ));
        samples.push((
            "atoll_watch_buffered_events",
            "Events held in watch buffers (bounded per watch; lagging watches hold none).",
            "gauge",
            hubs().map(|hub| hub.buffered_events()).sum::<usize>().to_string(),
        ));
        let (replicas, hibernating) =
            inner.shards.handles().fold((0u64, 0u64), |(all, h), (_, s)| {
                (all + 1, h + u64::from(s.published.is_hibernating()))
            });
        samples.push((
            "atoll_shard_replicas",
            "Replicas this node hosts.",
            "gauge",
            replicas.to_string(),
        ));
        samples.push((
            "atoll_shard_replicas_hibernating",
            "Replicas that hibernate: their shard is idle and they do not tick (decision D14).",
            "gauge",
            hibernating.to_string(),
        ));
        samples.push((
            "atoll_mvcc_compaction_versions_removed_total",
            "Old versions physical compaction removed (decision D17).",
            "counter",
            inner
                .shards
                .handles()
                .map(|(_, h)| h.published.versions_removed_total())
                .sum::<u64>()
                .to_string(),
        ));
        samples.push((
            "atoll_raft_snapshots_installed_total",
            "Raft snapshots local replicas installed since start (decision D20).",
            "counter",
            inner
                .shards
                .handles()
                .map(|(_, h)| h.published.snapshots_installed_total())
                .sum::<u64>()
                .to_string(),
        ));
        samples.push((
            "atoll_mvcc_compaction_pending_shards",
            "Local replicas whose history below the compacted revision is not removed yet.",
            "gauge",
            inner
                .shards
                .handles()
                .filter(|(_, h)| {
                    h.published.compacted_physically() < h.published.compact_revision()
                })
                .count()
                .to_string(),
        ));
        samples.push((
            "atoll_server_forwarded_total",
            "Writes forwarded to the node leading their shard.",
            "counter",
            c.forwarded.load(Ordering::Relaxed).to_string(),
        ));
        if let Ok(manager) = self.lease_manager() {
            samples.extend(manager.metric_samples());
        }
        if let Ok(status) = self.first_shard_status(Duration::from_secs(1)).await {
            let is_leader = u64::from(status.role == atoll_shard::actors::ReplicaRole::Leader);
            samples.push((
                "atoll_shard_is_leader",
                "1 if this node leads the data shard.",
                "gauge",
                is_leader.to_string(),
            ));
            samples.push((
                "atoll_shard_raft_term",
                "Raft term of the data shard.",
                "gauge",
                status.term.to_string(),
            ));
            samples.push((
                "atoll_shard_applied_index",
                "Applied Raft index of the data shard.",
                "gauge",
                status.applied_index.to_string(),
            ));
            samples.push((
                "atoll_shard_revision",
                "Store revision of the data shard.",
                "gauge",
                status.revision.to_string(),
            ));
        }
        samples
    }

    /// Waits until `shard` has a leader, asks it for a read index and waits until this
    /// replica applied it; returns the shard's term.
    async fn read_index(&self, shard: ShardId) -> Result<u64, AtollError> {
        let deadline = Instant::now() + self.inner.request_timeout;
        let handle = self.wait_for_leader(shard, deadline).await?;
        let (tx, rx) = oneshot::channel();
        handle.addr.try_send(ReadIndex { reply: tx }).map_err(mailbox_error)?;
        let ready = self.wait(rx).await?;
        Ok(ready.term)
    }

    /// The local replica of `shard` once it knows a leader (an election may be under way),
    /// or `NoLeader` at `deadline`.
    async fn wait_for_leader(
        &self,
        shard: ShardId,
        deadline: Instant,
    ) -> Result<&ShardHandle, AtollError> {
        let handle = self.inner.shards.handle(shard)?;
        while handle.published.leader() == 0 {
            if Instant::now() >= deadline {
                return Err(AtollError::NoLeader { shard });
            }
            tokio::time::sleep(LEADER_POLL).await;
        }
        Ok(handle)
    }

    async fn write(&self, op: WriteOp, origin: Origin) -> Result<NativeResponse, AtollError> {
        validate_write(&op, &self.inner.limits)?;
        if let WriteOp::Compact(c) = op {
            return self.compact_every_shard(c, origin).await.map(NativeResponse::Compact);
        }
        match self.inner.shards.single_shard_of(&op) {
            Some(shard) => {
                // The meta shard's leader learns the shard a lease is attached on (D24).
                let op = self.attach_leases(op, shard, origin).await?;
                self.write_on(shard, op, origin).await
            }
            None => match op {
                WriteOp::DeleteRange(d) => {
                    self.delete_across(d, origin).await.map(NativeResponse::DeleteRange)
                }
                _ => Err(AtollError::CrossShardTxn),
            },
        }
    }

    /// Applies `op` to `shard` through its leader, here or forwarded (see [`Self::until_led`]).
    async fn write_on(
        &self,
        shard: ShardId,
        op: WriteOp,
        origin: Origin,
    ) -> Result<NativeResponse, AtollError> {
        self.inner.shards.handle(shard)?.published.count_request();
        self.until_led(origin, |deadline| self.write_once(shard, op.clone(), origin, deadline))
            .await
    }

    /// Runs `attempt` (given the request's deadline) until it is not refused for want of a
    /// leader. A refusal that proves nothing was proposed (the replica asked is not, or no
    /// longer, the leader: an election under way) is retried until the request timeout for a
    /// client's request, so elections cost latency rather than errors; a forwarded request
    /// is answered as it is, its sender retries.
    async fn until_led<T, F, Fut>(&self, origin: Origin, mut attempt: F) -> Result<T, AtollError>
    where
        F: FnMut(Instant) -> Fut,
        Fut: Future<Output = Result<T, AtollError>>,
    {
        let deadline = Instant::now() + self.inner.request_timeout;
        loop {
            match attempt(deadline).await {
                Err(AtollError::NotLeader { .. } | AtollError::NoLeader { .. })
                    if origin == Origin::Client && Instant::now() + LEADER_POLL < deadline =>
                {
                    tokio::time::sleep(LEADER_POLL).await;
                }
                other => return other,
            }
        }
    }

    async fn write_once(
        &self,
        shard: ShardId,
        op: WriteOp,
        origin: Origin,
        deadline: Instant,
    ) -> Result<NativeResponse, AtollError> {
        let handle = self.wait_for_leader(shard, deadline).await?;
        let leader = handle.published.leader();
        if leader != self.inner.identity.member_id
            && origin == Origin::Client
            && self.inner.forwarder.is_some()
        {
            return self.forward(handle, leader, native_request(shard, op)?).await;
        }
        let rx = propose(handle, op).await?;
        Ok(native_response(self.wait(rx).await?))
    }

    /// Forwards `req` to `leader`, the leader of `handle`'s shard. A leader that dies with
    /// the request in flight would hold it until the peer connection times out; once this
    /// replica learns of another leader or of an election (a higher term), the answer is
    /// "leader changed", as etcd's: the write may or may not have been applied, so clients
    /// resend only idempotent requests.
    async fn forward(
        &self,
        handle: &ShardHandle,
        leader: u64,
        req: NativeRequest,
    ) -> Result<NativeResponse, AtollError> {
        let Some(forwarder) = &self.inner.forwarder else {
            return Err(AtollError::NotLeader {
                shard: handle.store.shard(),
                leader_hint: Some(NodeId(leader)),
            });
        };
        self.inner.counters.forwarded.fetch_add(1, Ordering::Relaxed);
        let term = handle.published.term();
        let forwarded = forwarder.forward(NodeId(leader), req);
        tokio::pin!(forwarded);
        let answer = loop {
            tokio::select! {
                answer = &mut forwarded => break answer?,
                () = tokio::time::sleep(LEADER_POLL) => {
                    let now = (handle.published.term(), handle.published.leader());
                    if leader_changed((term, leader), now) {
                        return Err(AtollError::LeaderChanged);
                    }
                }
            }
        };
        match answer {
            NativeResponse::Error(e) => Err(e),
            answer => Ok(answer),
        }
    }

    /// A DeleteRange over several shards: each shard deletes its part at its own revision
    /// (decision D10); the answer adds them up, prev_kvs in key order.
    async fn delete_across(
        &self,
        req: DeleteRangeRequest,
        origin: Origin,
    ) -> Result<DeleteRangeResponse, AtollError> {
        let parts: Vec<(ShardId, DeleteRangeRequest)> = self
            .inner
            .shards
            .spans(&req.key, &req.range_end)
            .into_iter()
            .map(|span| {
                let part =
                    DeleteRangeRequest { key: span.key, range_end: span.range_end, ..req.clone() };
                (span.shard.id, part)
            })
            .collect();
        let mut total = DeleteRangeResponse::default();
        for (shard, part) in parts {
            match self.write_on(shard, WriteOp::DeleteRange(part), origin).await? {
                NativeResponse::DeleteRange(r) => {
                    total.deleted += r.deleted;
                    total.prev_kvs.extend(r.prev_kvs);
                    total.header.revision = total.header.revision.max(r.header.revision);
                    total.header.raft_term = total.header.raft_term.max(r.header.raft_term);
                    total.header.cluster_id = r.header.cluster_id;
                    total.header.member_id = r.header.member_id;
                }
                other => return Err(unexpected(&other)),
            }
        }
        Ok(total)
    }

    /// A Compact applies to every shard at the same revision. A shard whose newest revision
    /// is below it has nothing newer to keep and compacts at its newest; a shard never written
    /// has nothing to compact; a shard already compacted past it is done. `Compacted` only
    /// when every shard says so. `physical` answers once this node removed the history of
    /// every shard compacted (etcd waits for its local backend); the shards' leaders do
    /// not wait for theirs.
    async fn compact_every_shard(
        &self,
        req: CompactionRequest,
        origin: Origin,
    ) -> Result<CompactionResponse, AtollError> {
        let shards: Vec<ShardId> = self.inner.shards.handles().map(|(id, _)| id).collect();
        let mut answer: Option<CompactionResponse> = None;
        let mut first_error = None;
        let mut newest = 0;
        // Every shard is asked at the client's revision first: if all of them are below it,
        // it is in the future for the whole store and nothing is compacted, as in etcd. Only
        // then are the shards below it compacted at their own newest revision.
        let mut asked = Vec::with_capacity(shards.len());
        for shard in shards {
            let result = self.write_on(shard, WriteOp::Compact(req.clone()), origin).await;
            asked.push((shard, result));
        }
        let future = |r: &Result<NativeResponse, AtollError>| match r {
            Err(AtollError::FutureRevision { current_revision }) => Some(*current_revision),
            _ => None,
        };
        if asked.iter().all(|(_, r)| future(r).is_some()) {
            let current_revision = asked.iter().filter_map(|(_, r)| future(r)).max().unwrap_or(0);
            return Err(AtollError::FutureRevision { current_revision });
        }
        let mut compacted = Vec::new();
        for (shard, result) in asked {
            let mut compacted_at = req.revision;
            let result = match future(&result) {
                // Never written: nothing to compact.
                Some(0) => continue,
                Some(head) => {
                    newest = newest.max(head);
                    compacted_at = head;
                    let at_head = CompactionRequest { revision: head, ..req.clone() };
                    self.write_on(shard, WriteOp::Compact(at_head), origin).await
                }
                None => result,
            };
            match result {
                Ok(NativeResponse::Compact(r)) => {
                    compacted.push((shard, compacted_at));
                    newest = newest.max(r.header.revision);
                    answer.get_or_insert(r);
                }
                Ok(other) => return Err(unexpected(&other)),
                Err(AtollError::Compacted { .. }) if first_error.is_none() => {
                    first_error = result.err();
                }
                Err(AtollError::Compacted { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        if req.physical {
            // Every shard is compacted logically first; their compactors delete in parallel.
            let waits = compacted.into_iter().map(|(shard, at)| self.wait_compacted(shard, at));
            futures::future::try_join_all(waits).await?;
        }
        match (answer, first_error) {
            (Some(mut r), _) => {
                r.header.revision = newest;
                Ok(r)
            }
            (None, Some(e)) => Err(e),
            (None, None) => Err(AtollError::FutureRevision { current_revision: newest }),
        }
    }

    /// Waits until this node's replica of `shard` removed its history below `revision`.
    async fn wait_compacted(&self, shard: ShardId, revision: i64) -> Result<(), AtollError> {
        let handle = self.inner.shards.handle(shard)?;
        let (tx, rx) = oneshot::channel();
        handle.addr.try_send(WaitCompacted { revision, reply: tx }).map_err(mailbox_error)?;
        match tokio::time::timeout(PHYSICAL_COMPACTION_WAIT_MAX, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(AtollError::Stopping),
            Err(_) => Err(AtollError::Timeout),
        }
    }

    async fn wait<T>(&self, rx: oneshot::Receiver<Result<T, AtollError>>) -> Result<T, AtollError> {
        match tokio::time::timeout(self.inner.request_timeout, rx).await {
            Ok(Ok(result)) => result,
            // The replica dropped the request: it is stopping.
            Ok(Err(_)) => Err(AtollError::Stopping),
            Err(_) => Err(AtollError::Timeout),
        }
    }

    async fn first_shard_status(&self, timeout: Duration) -> Result<ReplicaStatus, AtollError> {
        let (_, handle) = self.inner.shards.first().ok_or(AtollError::Stopping)?;
        tokio::time::timeout(timeout, handle.addr.send(GetStatus))
            .await
            .map_err(|_| AtollError::Timeout)?
            .map_err(|_| AtollError::Stopping)
    }

    /// Hashes every local replica from one snapshot, each at the asked revision or its own
    /// current one; a local answer, like etcd's HashKV.
    async fn hash_kv(&self, req: HashKvRequest) -> Result<HashKvResponse, AtollError> {
        let inner = &self.inner;
        let stores: Vec<_> = inner.shards.handles().map(|(_, h)| h.store.clone()).collect();
        let db = inner.storage.db.clone();
        let _permit = inner.reads.acquire().await.map_err(|_| AtollError::Stopping)?;
        let hashes = tokio::task::spawn_blocking(move || {
            let snap = db.snapshot();
            stores
                .iter()
                .map(|store| {
                    let h = store.hash_kv(&snap, req.revision).map_err(|e| e.to_wire())?;
                    Ok(ShardHash {
                        shard: store.shard(),
                        revision: h.revision,
                        compact_revision: h.compact_revision,
                        applied_index: h.applied_index,
                        hash: h.hash,
                    })
                })
                .collect::<Result<Vec<_>, AtollError>>()
        })
        .await
        .map_err(|_| AtollError::Stopping)??;
        let mut resp = HashKvResponse { hashes, ..HashKvResponse::default() };
        resp.header.revision = resp.hashes.iter().map(|h| h.revision).max().unwrap_or(0);
        let term = inner.shards.first().map_or(0, |(_, h)| h.published.term());
        self.fill(&mut resp.header, term);
        Ok(resp)
    }

    async fn status(&self) -> Result<StatusResponse, AtollError> {
        let inner = &self.inner;
        let status = self.first_shard_status(inner.request_timeout).await?;
        let mut resp = StatusResponse {
            version: env!("CARGO_PKG_VERSION").to_string(),
            db_size: i64::try_from(inner.storage.disk_bytes()).unwrap_or(i64::MAX),
            leader: status.leader.map_or(0, |n| n.0),
            raft_index: status.last_index,
            raft_term: status.term,
            raft_applied_index: status.applied_index,
            // The member record says, as etcd's does; the data shard's own replica may
            // still be a learner a moment after a promotion (decision D22).
            is_learner: self.is_learner(),
            ..StatusResponse::default()
        };
        resp.header.revision = status.revision;
        self.fill(&mut resp.header, status.term);
        Ok(resp)
    }

    /// The header of an answer about no key (maintenance, cluster, auth): this member, the
    /// newest revision among its shards (etcd's header carries the store's current
    /// revision) and the first shard's term. Read from memory, not through a replica.
    pub fn header(&self) -> ResponseHeader {
        let term = self.inner.shards.first().map_or(0, |(_, h)| h.published.term());
        self.header_at(term)
    }

    /// Whether every key of `[key, range_end)` belongs to one shard, so a Txn may read the
    /// range whole (a Txn across shards is refused).
    pub fn in_one_shard(&self, key: &[u8], range_end: &[u8]) -> bool {
        self.inner.shards.spans(key, range_end).len() <= 1
    }

    /// [`NodeService::header`] with `term` (a lease answer carries the meta shard's).
    fn header_at(&self, term: u64) -> ResponseHeader {
        let shards = self.inner.shards.handles();
        let revision = shards.map(|(_, h)| h.published.revision()).max().unwrap_or(0);
        let mut header = ResponseHeader { revision, ..Default::default() };
        self.fill(&mut header, term);
        header
    }

    fn fill(&self, header: &mut ResponseHeader, term: u64) {
        header.cluster_id = self.inner.identity.cluster_id;
        header.member_id = self.inner.identity.member_id;
        header.raft_term = term;
    }
}

/// Whether a replica that saw `(term, leader)` when it forwarded a write and sees `now` has
/// learnt of another leader or of an election. A follower that merely pre-votes forgets its
/// leader for a moment without any election (pre-vote keeps the term, raft-rs sets no
/// leader): that alone is no leader change.
fn leader_changed((term, leader): (u64, u64), (term_now, leader_now): (u64, u64)) -> bool {
    term_now > term || (leader_now != 0 && leader_now != leader)
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The request that asks another node to apply `op` to `shard`. Keyed writes find their
/// shard by key there; a compaction names its shard, or the receiving node would compact
/// every shard, including those it does not lead.
fn native_request(shard: ShardId, op: WriteOp) -> Result<NativeRequest, AtollError> {
    Ok(match op {
        WriteOp::Put(r) => NativeRequest::Put(r),
        WriteOp::DeleteRange(r) => NativeRequest::DeleteRange(r),
        WriteOp::Txn(r) => NativeRequest::Txn(r),
        WriteOp::Compact(compaction) => {
            NativeRequest::CompactShard(CompactShardRequest { shard, compaction })
        }
        WriteOp::Close(r) => NativeRequest::Close(r),
        WriteOp::Leased(r) => NativeRequest::LeasedWrite(r),
        WriteOp::RevokeLeaseKeys(r) => NativeRequest::RevokeLeaseKeys(r),
        WriteOp::RevokeLeaseKeysBatch(r) => NativeRequest::RevokeLeaseKeysBatch(r),
        WriteOp::Member(w) => NativeRequest::MemberWrite(w),
        WriteOp::Auth(op) => NativeRequest::AuthWrite(op),
        // Only the meta shard's leader proposes lease record changes and the shard map
        // migration, to itself.
        WriteOp::Lease(_) | WriteOp::ShardMap(_) => {
            return Err(AtollError::NotLeader { shard: ShardId::META, leader_hint: None });
        }
    })
}

fn native_response(resp: WriteResponse) -> NativeResponse {
    match resp {
        WriteResponse::Put(r) => NativeResponse::Put(r),
        WriteResponse::DeleteRange(r) => NativeResponse::DeleteRange(r),
        WriteResponse::Txn(r) => NativeResponse::Txn(r),
        WriteResponse::Compact(r) => NativeResponse::Compact(r),
        WriteResponse::Close(r) => NativeResponse::Close(r),
        WriteResponse::RevokeLeaseKeys(r) => NativeResponse::RevokeLeaseKeys(r),
        WriteResponse::Membership(header) => {
            NativeResponse::Members(member::MembersResponse { header, ..Default::default() })
        }
        WriteResponse::Lease(r) => NativeResponse::Error(AtollError::Malformed {
            reason: format!("a lease record change has no client answer: {r:?}"),
        }),
    }
}

fn unexpected(resp: &NativeResponse) -> AtollError {
    match resp {
        NativeResponse::Error(e) => e.clone(),
        other => AtollError::Malformed { reason: format!("unexpected answer {other:?}") },
    }
}

/// Hands `op` to the local replica of `handle`'s shard; the answer comes on the receiver
/// once applied. A full mailbox refuses an ordinary write as `Busy`; a lease revocation waits
/// for room instead, ahead of nothing but never refused (decision D16).
async fn propose(
    handle: &ShardHandle,
    op: WriteOp,
) -> Result<oneshot::Receiver<Result<WriteResponse, AtollError>>, AtollError> {
    let (tx, rx) = oneshot::channel();
    let msg = Propose { op, reply: tx };
    if msg.op.is_revocation() {
        handle.addr.send(msg).await.map_err(|_| AtollError::Stopping)?;
    } else {
        handle.addr.try_send(msg).map_err(mailbox_error)?;
    }
    Ok(rx)
}

fn mailbox_error<M>(e: actix::prelude::SendError<M>) -> AtollError {
    match e {
        actix::prelude::SendError::Full(_) => {
            AtollError::Busy { limit: "replica_mailbox_max".into() }
        }
        actix::prelude::SendError::Closed(_) => AtollError::Stopping,
    }
}

impl RequestHandler for NodeService {
    fn handle(
        &self,
        req: NativeRequest,
    ) -> Pin<Box<dyn Future<Output = NativeResponse> + Send + 'static>> {
        let this = self.clone();
        // The client port: the token, if any, rides in the request (decision D21).
        let caller = crate::auth::Caller::Client { token: None };
        Box::pin(async move { this.serve_as(caller, req).await })
    }

    fn watch(&self, io: WatchStreamIo) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        let this = self.clone();
        Box::pin(async move { this.serve_watch_stream(io).await })
    }
}

#[cfg(test)]
mod tests {
    use super::leader_changed;

    #[test]
    fn a_pre_vote_is_no_leader_change_but_an_election_or_another_leader_is() {
        assert!(!leader_changed((5, 1), (5, 1)));
        assert!(!leader_changed((5, 1), (5, 0)), "pre-candidate: no leader, same term");
        assert!(leader_changed((5, 1), (6, 0)), "an election under way");
        assert!(leader_changed((5, 1), (6, 1)), "re-elected in a new term");
        assert!(leader_changed((5, 1), (5, 2)));
    }
}
