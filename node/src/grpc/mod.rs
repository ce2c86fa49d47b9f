//! The etcd v3 gRPC gateway: a tonic server on the client URLs over TCP (beside the native
//! QUIC protocol on the same port number over UDP), so etcdctl, etcd's client libraries and
//! Kubernetes talk to Atoll unchanged (DESIGN §2, ETCD_API.md).
//!
//! Every request goes through [`NodeService`], the same router the native protocol uses, so a
//! sharded cluster looks like one etcd: a key goes to its shard, writes reach the shard's
//! leader wherever the client connected, and ranges over several shards are merged. Errors
//! keep etcd's text and gRPC code ([`status_of`]).
//!
//! Services: KV, Watch, Lease, Maintenance, Cluster, Auth, Lock and Election. Lock and
//! Election are etcd's recipes (`concurrency.rs`) run on the node against that same request
//! path, as etcd runs them against its own in-process client.
//!
//! On a learner member, a layer in front of every service refuses what etcd's learners
//! refuse, with etcd's error (`learner_gate.rs`, decision D22).

mod auth;
mod cluster;
mod concurrency;
mod election;
mod kv;
mod learner_gate;
mod lease;
mod lock;
mod maintenance;
mod watch;

use crate::auth::Caller;
use crate::certs::TlsMaterial;
use crate::service::NodeService;
use atoll_proto::etcd::etcdserverpb as pb;
use atoll_proto::etcd::{v3electionpb, v3lockpb};
use atoll_proto::etcd_convert::response::header_to_pb;
use atoll_proto::{AtollError, NativeRequest, NativeResponse};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tonic::codegen::tokio_stream::Stream;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Identity, Server, ServerTlsConfig};
use tonic::{Code, Status};

/// Bytes a gRPC message may carry beyond `--max-request-bytes` (etcd's
/// `grpcOverheadBytes`), so a request just over the limit still decodes and is refused with
/// etcd's own "request is too large".
pub const GRPC_OVERHEAD_BYTES: usize = 512 * 1024;
/// Interval of HTTP/2 keepalive pings to idle clients (etcd's `--grpc-keepalive-interval`).
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(2 * 60 * 60);
/// How long a keepalive ping may go unanswered (etcd's `--grpc-keepalive-timeout`).
pub const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);

/// What the gateway needs besides the request service.
#[derive(Clone)]
pub struct GatewayConfig {
    /// `--max-request-bytes`.
    pub max_request_bytes: usize,
    /// TLS for `https://` client URLs; `None` serves plaintext (`http://`).
    pub tls: Option<TlsMaterial>,
}

/// Backups streamed at once; more are refused as etcd refuses excess requests.
pub const SNAPSHOTS_IN_FLIGHT_MAX: usize = 2;
/// Backup chunks buffered per stream ahead of a slow client.
pub const SNAPSHOT_CHUNKS_BUFFERED: usize = 8;

/// Lock, Campaign and Observe calls served at once (each may wait long, holding a watch);
/// more are refused as `Busy`.
pub const LOCK_AND_ELECTION_CALLS_MAX: usize = 10_000;

/// State shared by the gateway's services.
struct Gateway {
    service: NodeService,
    snapshots: Arc<tokio::sync::Semaphore>,
    recipes: Arc<tokio::sync::Semaphore>,
}

impl Gateway {
    /// Serves `req` for `caller` through the node's request service (checked while auth
    /// is enabled); an error answer becomes its gRPC status.
    async fn call(&self, caller: &Caller, req: NativeRequest) -> Result<NativeResponse, Status> {
        match self.service.serve_as(caller.clone(), req).await {
            NativeResponse::Error(e) => Err(status_of(e)),
            ok => Ok(ok),
        }
    }

    /// Whether `caller` may use the lock or election keys of `key`: the name's prefix
    /// `key/` when `prefix`, else the one key; read and write (etcd's recipes read and
    /// write them through the caller's own client, checked key by key).
    async fn check_recipe_keys(
        &self,
        caller: &Caller,
        key: &[u8],
        prefix: bool,
    ) -> Result<(), Status> {
        use atoll_proto::auth::PermissionType::{Read, Write};
        let (key, end) = if prefix {
            let p = concurrency::key_prefix(key);
            let end = atoll_proto::prefix_range_end(&p);
            (p, end)
        } else {
            (key.to_vec(), Vec::new())
        };
        for access in [Read, Write] {
            self.service.authorize_range(caller, &key, &end, access).await.map_err(status_of)?;
        }
        Ok(())
    }

    /// Room for one more waiting lock or election call, or `Busy`.
    fn recipe_permit(&self) -> Result<tokio::sync::OwnedSemaphorePermit, Status> {
        self.recipes.clone().try_acquire_owned().map_err(|_| {
            status_of(AtollError::Busy { limit: "lock_and_election_calls_max".into() })
        })
    }

    /// A header for answers that are not about one key ([`NodeService::header`]).
    fn header(&self) -> Option<pb::ResponseHeader> {
        header_to_pb(self.service.header())
    }
}

/// Serves the gateway on `listener` until the task is dropped.
pub async fn serve(
    listener: TcpListener,
    service: NodeService,
    cfg: GatewayConfig,
) -> Result<(), tonic::transport::Error> {
    let snapshots = Arc::new(tokio::sync::Semaphore::new(SNAPSHOTS_IN_FLIGHT_MAX));
    let recipes = Arc::new(tokio::sync::Semaphore::new(LOCK_AND_ELECTION_CALLS_MAX));
    // A learner refuses what etcd's learners refuse, before any service sees it (D22).
    let gate = learner_gate::LearnerGateLayer { service: service.clone() };
    let gateway = Arc::new(Gateway { service, snapshots, recipes });
    let max_decode = cfg.max_request_bytes.saturating_add(GRPC_OVERHEAD_BYTES);
    let mut server = Server::builder()
        .http2_keepalive_interval(Some(KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(KEEPALIVE_TIMEOUT));
    if let Some(tls) = &cfg.tls {
        let identity = Identity::from_pem(&tls.cert_chain_pem, &tls.key_pem);
        server = server.tls_config(ServerTlsConfig::new().identity(identity))?;
    }
    let mut server = server.layer(gate);
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    server
        .add_service(
            pb::kv_server::KvServer::from_arc(Arc::new(kv::KvService(gateway.clone())))
                .max_decoding_message_size(max_decode)
                .max_encoding_message_size(usize::MAX),
        )
        .add_service(
            pb::maintenance_server::MaintenanceServer::from_arc(Arc::new(
                maintenance::MaintenanceService(gateway.clone()),
            ))
            .max_decoding_message_size(max_decode)
            .max_encoding_message_size(usize::MAX),
        )
        .add_service(pb::cluster_server::ClusterServer::from_arc(Arc::new(
            cluster::ClusterService(gateway.clone()),
        )))
        .add_service(pb::watch_server::WatchServer::from_arc(Arc::new(watch::WatchService(
            gateway.clone(),
        ))))
        .add_service(pb::lease_server::LeaseServer::from_arc(Arc::new(lease::LeaseService(
            gateway.clone(),
        ))))
        .add_service(pb::auth_server::AuthServer::from_arc(Arc::new(auth::AuthService(
            gateway.clone(),
        ))))
        .add_service(v3lockpb::lock_server::LockServer::from_arc(Arc::new(lock::LockService(
            gateway.clone(),
        ))))
        .add_service(v3electionpb::election_server::ElectionServer::from_arc(Arc::new(
            election::ElectionService(gateway),
        )))
        .serve_with_incoming(incoming)
        .await
}

/// The caller of a gRPC request: the token of its `token` metadata (or `authorization`, as
/// etcd's gateway passes it; `rpctypes/metadatafields.go`).
fn caller_of<T>(req: &tonic::Request<T>) -> Caller {
    let md = req.metadata();
    let token = md
        .get("token")
        .or_else(|| md.get("authorization"))
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    Caller::Client { token }
}

/// The gRPC status etcd answers for `e`, with etcd's text.
pub fn status_of(e: AtollError) -> Status {
    // GrpcCode carries the gRPC spec's numbers, which tonic's Code shares.
    Status::new(Code::from_i32(e.grpc_code() as i32), e.to_string())
}

/// A native answer of the wrong kind: a bug in the service, reported rather than hidden.
fn unexpected(resp: &NativeResponse) -> Status {
    Status::internal(format!("atoll: unexpected answer from the request service: {resp:?}"))
}

/// The answer to an RPC that Atoll does not provide yet: a clear error, never a pretend
/// success.
fn not_supported(rpc: &str) -> Status {
    Status::unimplemented(format!("atoll: {rpc} is not supported yet"))
}

/// A server stream as tonic's generated services take it.
type ResponseStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

/// What `task` sends on `answers`, as a server stream; dropping the stream (the client went
/// away or cancelled the RPC) ends `task`.
fn stream_of<T: Send + 'static>(
    answers: mpsc::Receiver<Result<T, Status>>,
    task: tokio::task::JoinHandle<()>,
) -> ResponseStream<T> {
    let guard = AbortOnDrop(task);
    Box::pin(futures::stream::unfold((answers, guard), |(mut rx, guard)| async move {
        let item = rx.recv().await?;
        Some((item, (rx, guard)))
    }))
}

/// Ends a task serving a stream when the stream's consumer drops it (the client went away
/// or cancelled the RPC).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_keep_etcds_code_and_text() {
        let s = status_of(AtollError::Compacted { compact_revision: 3 });
        assert_eq!(
            (s.code(), s.message()),
            (Code::OutOfRange, "etcdserver: mvcc: required revision has been compacted")
        );
        let s = status_of(AtollError::Busy { limit: "x".into() });
        assert_eq!(
            (s.code(), s.message()),
            (Code::ResourceExhausted, "etcdserver: too many requests")
        );
        let s = status_of(AtollError::NoLeader { shard: atoll_proto::ShardId(1) });
        assert_eq!((s.code(), s.message()), (Code::Unavailable, "etcdserver: no leader"));
        let s = status_of(AtollError::KeyNotFound);
        assert_eq!((s.code(), s.message()), (Code::InvalidArgument, "etcdserver: key not found"));
    }
}
