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
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
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
}

impl NodeService {
    /// A service for one data shard.
    pub fn new(
        shard: ShardHandle,
        storage: Storage,
        identity: NodeIdentity,
        limits: MvccLimits,
        request_timeout: Duration,
    ) -> NodeService {
        let reads = Semaphore::new(READS_IN_FLIGHT_MAX);
        NodeService {
            inner: Arc::new(Inner { shard, storage, identity, limits, request_timeout, reads }),
        }
    }

    /// Serves one request.
    pub async fn serve(&self, req: NativeRequest) -> NativeResponse {
        let result = match req {
            NativeRequest::Range(r) => self.range(r).await.map(NativeResponse::Range),
            NativeRequest::Put(r) => self.write(WriteOp::Put(r)).await,
            NativeRequest::DeleteRange(r) => self.write(WriteOp::DeleteRange(r)).await,
            NativeRequest::Txn(r) => self.write(WriteOp::Txn(r)).await,
            NativeRequest::Compact(r) => self.write(WriteOp::Compact(r)).await,
            NativeRequest::Status(_) => self.status().await.map(NativeResponse::Status),
        };
        result.unwrap_or_else(NativeResponse::Error)
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
