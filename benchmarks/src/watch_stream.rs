//! Watch streams to the system under test, through either protocol: Atoll's native watch
//! stream (`atoll-router`, one bidirectional QUIC stream) or etcd's `Watch` RPC (one gRPC
//! bidirectional stream, etcd itself or Atoll's gateway). Both take native create requests
//! and answer native responses, so the watch scenarios measure every system with one code.

use crate::backend::{Backend, BackendError};
use crate::etcd_client::{EtcdError, timed};
use crate::limits::WATCH_REQUESTS_QUEUED_MAX;
use atoll_proto::etcd::etcdserverpb as pb;
use atoll_proto::etcd_convert::watch::{create_to_pb, response_from_pb};
use atoll_proto::watch::{WatchCreateRequest, WatchRequest, WatchResponse};
use atoll_router::watch::{WatchReceiver, WatchSender};
use tokio::sync::mpsc;
use tonic::Streaming;

/// The sending half of a watch stream.
pub enum WatchTx {
    /// Native.
    Native(WatchSender),
    /// gRPC: requests go through a bounded queue into the RPC's request stream.
    Etcd(mpsc::Sender<pb::WatchRequest>),
}

/// The receiving half of a watch stream.
pub enum WatchRx {
    /// Native.
    Native(WatchReceiver),
    /// gRPC.
    Etcd(Streaming<pb::WatchResponse>),
}

/// Opens a watch stream on `client` whose first request creates `first`.
pub async fn open_watch(
    client: &Backend,
    first: WatchCreateRequest,
) -> Result<(WatchTx, WatchRx), BackendError> {
    match client {
        Backend::Native(c) => {
            let (tx, rx) = c.watch(WatchRequest::Create(first)).await?;
            Ok((WatchTx::Native(tx), WatchRx::Native(rx)))
        }
        Backend::Etcd(c) => {
            let (tx, queued) = mpsc::channel(WATCH_REQUESTS_QUEUED_MAX);
            // The queue is empty and its receiver alive: this send cannot fail.
            let _ = tx.try_send(create_to_pb(first));
            let requests = tonic::codegen::tokio_stream::wrappers::ReceiverStream::new(queued);
            let mut watch = c.watch_client();
            let responses = timed(watch.watch(requests)).await?;
            Ok((WatchTx::Etcd(tx), WatchRx::Etcd(responses)))
        }
    }
}

impl WatchTx {
    /// Creates another watch on the stream.
    pub async fn create(&mut self, req: WatchCreateRequest) -> anyhow::Result<()> {
        match self {
            WatchTx::Native(tx) => tx.create(req).await?,
            WatchTx::Etcd(tx) => tx
                .send(create_to_pb(req))
                .await
                .map_err(|_| anyhow::anyhow!("the watch stream ended while creating watches"))?,
        }
        Ok(())
    }
}

impl WatchRx {
    /// The next response; `None` once the server ended the stream.
    pub async fn recv(&mut self) -> Result<Option<WatchResponse>, BackendError> {
        match self {
            WatchRx::Native(rx) => Ok(rx.recv().await?),
            WatchRx::Etcd(rx) => match rx.message().await {
                Ok(answer) => Ok(answer.map(response_from_pb)),
                Err(status) => Err(EtcdError::Status(status).into()),
            },
        }
    }
}
