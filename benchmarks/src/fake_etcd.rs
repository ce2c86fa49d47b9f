//! A stand-in etcd for tests: the etcd v3 `KV` service over gRPC (plain HTTP/2 on a loopback
//! port), answering from the same in-memory store and logic as the native stand-in
//! ([`crate::fake_server`]), so the etcd target is tested end to end without an etcd binary.
//! Every n-th request can fail with etcd's "too many requests" (ResourceExhausted).

use crate::etcd_client::EtcdConfig;
use crate::fake_server::{Store, answer};
use atoll_proto::NativeRequest;
use atoll_proto::NativeResponse;
use atoll_proto::etcd::etcdserverpb as pb;
use atoll_proto::etcd::etcdserverpb::kv_server::{Kv, KvServer};
use atoll_proto::etcd_convert::{request, response};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tonic::{Request, Response, Status};

/// A running stand-in; the server task ends when the test's runtime does.
pub struct FakeEtcd {
    addr: SocketAddr,
    store: Arc<Mutex<Store>>,
}

struct Service {
    store: Arc<Mutex<Store>>,
    fail_every: Option<u64>,
}

impl FakeEtcd {
    /// Starts on a free loopback port; with `fail_every = Some(n)`, request n, 2n, … fail.
    pub async fn must_start(fail_every: Option<u64>) -> FakeEtcd {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let store = Arc::new(Mutex::new(Store::default()));
        let service = Service { store: Arc::clone(&store), fail_every };
        let incoming = tonic::transport::server::TcpIncoming::from(listener);
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(KvServer::new(service))
                .serve_with_incoming(incoming),
        );
        FakeEtcd { addr, store }
    }

    /// A client configuration for it: plain http.
    pub fn config(&self) -> EtcdConfig {
        EtcdConfig { endpoints: vec![self.addr.to_string()], ca_pem: None }
    }

    /// Keys currently held.
    pub fn keys(&self) -> usize {
        self.store.lock().expect("store").data.len()
    }
}

impl Service {
    fn call(&self, req: NativeRequest) -> Result<NativeResponse, Status> {
        match answer(&mut self.store.lock().expect("store"), self.fail_every, req) {
            NativeResponse::Error(_) => {
                Err(Status::resource_exhausted("etcdserver: too many requests"))
            }
            response => Ok(response),
        }
    }
}

#[tonic::async_trait]
impl Kv for Service {
    async fn range(
        &self,
        req: Request<pb::RangeRequest>,
    ) -> Result<Response<pb::RangeResponse>, Status> {
        match self.call(NativeRequest::Range(
            request::range_from_pb(req.into_inner())
                .map_err(|e| Status::invalid_argument(e.to_string()))?,
        ))? {
            NativeResponse::Range(r) => Ok(Response::new(response::range_to_pb(r))),
            other => Err(Status::internal(format!("{other:?}"))),
        }
    }

    async fn put(&self, req: Request<pb::PutRequest>) -> Result<Response<pb::PutResponse>, Status> {
        match self.call(NativeRequest::Put(request::put_from_pb(req.into_inner())))? {
            NativeResponse::Put(r) => Ok(Response::new(response::put_to_pb(r))),
            other => Err(Status::internal(format!("{other:?}"))),
        }
    }

    async fn txn(&self, req: Request<pb::TxnRequest>) -> Result<Response<pb::TxnResponse>, Status> {
        match self.call(NativeRequest::Txn(
            request::txn_from_pb(req.into_inner())
                .map_err(|e| Status::invalid_argument(e.to_string()))?,
        ))? {
            NativeResponse::Txn(r) => Ok(Response::new(response::txn_to_pb(r))),
            other => Err(Status::internal(format!("{other:?}"))),
        }
    }

    async fn delete_range(
        &self,
        _: Request<pb::DeleteRangeRequest>,
    ) -> Result<Response<pb::DeleteRangeResponse>, Status> {
        Err(Status::unimplemented("not in the stand-in"))
    }

    async fn compact(
        &self,
        _: Request<pb::CompactionRequest>,
    ) -> Result<Response<pb::CompactionResponse>, Status> {
        Err(Status::unimplemented("not in the stand-in"))
    }

    type RangeStreamStream = std::pin::Pin<
        Box<
            dyn tonic::codegen::tokio_stream::Stream<Item = Result<pb::RangeStreamResponse, Status>>
                + Send,
        >,
    >;

    async fn range_stream(
        &self,
        _: Request<pb::RangeRequest>,
    ) -> Result<Response<Self::RangeStreamStream>, Status> {
        Err(Status::unimplemented("not in the stand-in"))
    }
}
