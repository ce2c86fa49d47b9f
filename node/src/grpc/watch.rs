//! `etcdserverpb.Watch`: one bidirectional gRPC stream carries many watches, served by the
//! same watch-stream code as the native protocol (`NodeService::serve_watch_stream`), so
//! ordering, progress, fairness and bounded buffers are the same on both (decision D12).

use super::{AbortOnDrop, Gateway, ResponseStream, status_of};
use crate::transport::WatchStreamIo;
use crate::transport::limits::{WATCH_REQUESTS_QUEUED_MAX, WATCH_RESPONSES_QUEUED_MAX};
use atoll_proto::NativeResponse;
use atoll_proto::etcd::etcdserverpb as pb;
use atoll_proto::etcd_convert::watch::{request_from_pb, response_to_pb};
use futures::StreamExt as _;
use std::sync::Arc;
use tokio::sync::mpsc;
use tonic::{Request, Response, Status, Streaming};

/// The Watch service.
pub(super) struct WatchService(pub(super) Arc<Gateway>);

#[tonic::async_trait]
impl pb::watch_server::Watch for WatchService {
    type WatchStream = ResponseStream<pb::WatchResponse>;

    async fn watch(
        &self,
        req: Request<Streaming<pb::WatchRequest>>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let caller = super::caller_of(&req);
        let mut inbound = req.into_inner();
        let (requests_tx, requests) = mpsc::channel(WATCH_REQUESTS_QUEUED_MAX);
        let (responses, responses_rx) = mpsc::channel(WATCH_RESPONSES_QUEUED_MAX);
        let service = self.0.service.clone();
        let serving = tokio::spawn(async move {
            service.serve_watch_stream(WatchStreamIo { requests, responses, caller }).await;
        });
        // The client's requests, in order, until it ends its side or the stream breaks;
        // dropping the sender then tells the serving task that no more requests come.
        let reading = tokio::spawn(async move {
            while let Some(Ok(msg)) = inbound.next().await {
                let Some(req) = request_from_pb(msg) else { continue };
                if requests_tx.send(req).await.is_err() {
                    break;
                }
            }
        });
        // Dropped with the client's response stream, so its watchers leave their hubs at once.
        let tasks = (AbortOnDrop(serving), AbortOnDrop(reading));
        let stream = futures::stream::unfold((responses_rx, tasks), |(mut rx, tasks)| async move {
            let item = match rx.recv().await? {
                NativeResponse::Watch(w) => Ok(response_to_pb(w)),
                NativeResponse::Error(e) => Err(status_of(e)),
                other => Err(super::unexpected(&other)),
            };
            Some((item, (rx, tasks)))
        });
        Ok(Response::new(Box::pin(stream)))
    }
}
