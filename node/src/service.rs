//! The request service: turns native client requests into replica proposals and snapshot
//! reads. Writes go through Raft; linearizable reads wait for a ReadIndex and then read a fjall
//! snapshot on the blocking pool, so a long scan never delays Raft or writes (DESIGN §3).

use crate::identity::NodeIdentity;
use crate::transport::RequestHandler;
use actix::Addr;
use atoll_proto::*;
use atoll_shard::Storage;
use atoll_shard::actors::{GetStatus, Propose, PublishedState, ReadIndex, ReplicaActor};
use atoll_shard::mvcc::{MvccLimits, MvccStore, WriteResponse, validate_range, validate_write};
use atoll_shard::storage::LogWriterHandle;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::{Semaphore, oneshot};

/// Snapshot reads running at once; more wait for a permit (the read pool's bound).
pub const READS_IN_FLIGHT_MAX: usize = 64;

/// One shard as the service sees it.
#[derive(Clone)]
pub struct ShardHandle {
    /// The replica actor.
    pub addr: Addr<ReplicaActor>,
    /// The shard's MVCC store.
    pub store: MvccStore,
    /// What the replica publishes.
    pub published: Arc<PublishedState>,
}

/// Serves native requests for the node.
#[derive(Clone)]
pub struct NodeService {
    inner: Arc<Inner>,
}

struct Inner {
    shard: ShardHandle,
    storage: Storage,
    identity: NodeIdentity,
    limits: MvccLimits,
    request_timeout: Duration,
    reads: Semaphore,
    counters: RequestCounters,
    log_writer: Option<LogWriterHandle>,
}

/// Requests served, by outcome; read by `/metrics`.
#[derive(Default)]
struct RequestCounters {
    reads: AtomicU64,
    writes: AtomicU64,
    errors: AtomicU64,
}

impl NodeService {
    /// A service for one data shard; `log_writer` is only read for `/metrics`.
    pub fn new(
        shard: ShardHandle,
        storage: Storage,
        identity: NodeIdentity,
        limits: MvccLimits,
        request_timeout: Duration,
        log_writer: Option<LogWriterHandle>,
    ) -> NodeService {
        let reads = Semaphore::new(READS_IN_FLIGHT_MAX);
        let counters = RequestCounters::default();
        let inner = Inner {
            shard,
            storage,
            identity,
            limits,
            request_timeout,
            reads,
            counters,
            log_writer,
        };
        NodeService { inner: Arc::new(inner) }
    }

    /// Serves one request.
    pub async fn serve(&self, req: NativeRequest) -> NativeResponse {
        let counters = &self.inner.counters;
        let counter = if matches!(req, NativeRequest::Range(_) | NativeRequest::Status(_)) {
            &counters.reads
        } else {
            &counters.writes
        };
        counter.fetch_add(1, Ordering::Relaxed);
        let result = match req {
            NativeRequest::Range(r) => self.range(r).await.map(NativeResponse::Range),
            NativeRequest::Put(r) => self.write(WriteOp::Put(r)).await,
            NativeRequest::DeleteRange(r) => self.write(WriteOp::DeleteRange(r)).await,
            NativeRequest::Txn(r) => self.write(WriteOp::Txn(r)).await,
            NativeRequest::Compact(r) => self.write(WriteOp::Compact(r)).await,
            NativeRequest::Status(_) => self.status().await.map(NativeResponse::Status),
        };
        result.unwrap_or_else(|e| {
            counters.errors.fetch_add(1, Ordering::Relaxed);
            NativeResponse::Error(e)
        })
    }

    /// Succeeds once a linearizable read index is confirmed and applied: the shard has a
    /// leader and this node follows it (etcd's /health does a linearizable read too).
    pub async fn check_health(&self, timeout: Duration) -> Result<(), AtollError> {
        tokio::time::timeout(timeout, self.read_index())
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
        if let Ok(Ok(status)) =
            tokio::time::timeout(Duration::from_secs(1), inner.shard.addr.send(GetStatus)).await
        {
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

    async fn range(&self, req: RangeRequest) -> Result<RangeResponse, AtollError> {
        validate_range(&req)?;
        let inner = &self.inner;
        let term =
            if req.serializable { inner.shard.published.term() } else { self.read_index().await? };
        let _permit = inner.reads.acquire().await.map_err(|_| AtollError::Stopping)?;
        let store = inner.shard.store.clone();
        let db = inner.storage.db.clone();
        let mut resp = tokio::task::spawn_blocking(move || store.range(&db.snapshot(), &req))
            .await
            .map_err(|_| AtollError::Stopping)?
            .map_err(|e| e.to_wire())?;
        self.fill(&mut resp.header, term);
        Ok(resp)
    }

    async fn read_index(&self) -> Result<u64, AtollError> {
        let (tx, rx) = oneshot::channel();
        self.inner.shard.addr.try_send(ReadIndex { reply: tx }).map_err(mailbox_error)?;
        let ready = self.wait(rx).await?;
        Ok(ready.term)
    }

    async fn write(&self, op: WriteOp) -> Result<NativeResponse, AtollError> {
        validate_write(&op, &self.inner.limits)?;
        let (tx, rx) = oneshot::channel();
        self.inner.shard.addr.try_send(Propose { op, reply: tx }).map_err(mailbox_error)?;
        Ok(match self.wait(rx).await? {
            WriteResponse::Put(r) => NativeResponse::Put(r),
            WriteResponse::DeleteRange(r) => NativeResponse::DeleteRange(r),
            WriteResponse::Txn(r) => NativeResponse::Txn(r),
            WriteResponse::Compact(r) => NativeResponse::Compact(r),
        })
    }

    async fn wait<T>(&self, rx: oneshot::Receiver<Result<T, AtollError>>) -> Result<T, AtollError> {
        match tokio::time::timeout(self.inner.request_timeout, rx).await {
            Ok(Ok(result)) => result,
            // The replica dropped the request: it is stopping.
            Ok(Err(_)) => Err(AtollError::Stopping),
            Err(_) => Err(AtollError::Timeout),
        }
    }

    async fn status(&self) -> Result<StatusResponse, AtollError> {
        let inner = &self.inner;
        let status = tokio::time::timeout(inner.request_timeout, inner.shard.addr.send(GetStatus))
            .await
            .map_err(|_| AtollError::Timeout)?
            .map_err(|_| AtollError::Stopping)?;
        let mut resp = StatusResponse {
            version: env!("CARGO_PKG_VERSION").to_string(),
            db_size: i64::try_from(inner.storage.disk_bytes()).unwrap_or(i64::MAX),
            leader: status.leader.map_or(0, |n| n.0),
            raft_index: status.last_index,
            raft_term: status.term,
            raft_applied_index: status.applied_index,
            is_learner: status.is_learner,
            ..StatusResponse::default()
        };
        resp.header.revision = status.revision;
        self.fill(&mut resp.header, status.term);
        Ok(resp)
    }

    fn fill(&self, header: &mut ResponseHeader, term: u64) {
        header.cluster_id = self.inner.identity.cluster_id;
        header.member_id = self.inner.identity.member_id;
        header.raft_term = term;
    }
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
        Box::pin(async move { this.serve(req).await })
    }
}
