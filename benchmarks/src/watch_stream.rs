//! Watch streams to the system under test, through either protocol: Atoll's native watch
//! stream (`atoll-router`, one bidirectional QUIC stream) or etcd's `Watch` RPC (one gRPC
//! bidirectional stream, etcd itself or Atoll's gateway). Both take native create requests
//! and answer native responses, so the watch scenarios measure every system with one code.

use crate::backend::{Backend, BackendError};
use crate::etcd_client::EtcdError;
use crate::limits::{ETCD_REQUEST_TIMEOUT, WATCH_REQUESTS_QUEUED_MAX};
use atoll_proto::etcd::etcdserverpb as pb;
use atoll_proto::etcd::mvccpb;
use atoll_proto::etcd_convert::response::{header_from_pb, kv_from_pb};
use atoll_proto::watch::{Event, EventType, WatchCreateRequest, WatchRequest, WatchResponse};
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
            let opened = tokio::time::timeout(ETCD_REQUEST_TIMEOUT, watch.watch(requests)).await;
            match opened {
                Ok(Ok(response)) => Ok((WatchTx::Etcd(tx), WatchRx::Etcd(response.into_inner()))),
                Ok(Err(status)) => Err(EtcdError::Status(status).into()),
                Err(_) => Err(EtcdError::Timeout { after: ETCD_REQUEST_TIMEOUT }.into()),
            }
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

/// A native create as etcd's request.
fn create_to_pb(c: WatchCreateRequest) -> pb::WatchRequest {
    let create = pb::WatchCreateRequest {
        key: c.key,
        range_end: c.range_end,
        start_revision: c.start_revision,
        progress_notify: c.progress_notify,
        filters: Vec::new(),
        prev_kv: c.prev_kv,
        watch_id: c.watch_id,
        fragment: c.fragment,
    };
    pb::WatchRequest { request_union: Some(pb::watch_request::RequestUnion::CreateRequest(create)) }
}

/// An etcd watch response as the native one.
pub fn response_from_pb(r: pb::WatchResponse) -> WatchResponse {
    WatchResponse {
        header: header_from_pb(r.header),
        watch_id: r.watch_id,
        created: r.created,
        canceled: r.canceled,
        compact_revision: r.compact_revision,
        cancel_reason: r.cancel_reason,
        fragment: r.fragment,
        events: r.events.into_iter().map(event_from_pb).collect(),
    }
}

fn event_from_pb(e: mvccpb::Event) -> Event {
    let kind = if e.r#type == mvccpb::event::EventType::Delete as i32 {
        EventType::Delete
    } else {
        EventType::Put
    };
    Event { kind, kv: e.kv.map(kv_from_pb).unwrap_or_default(), prev_kv: e.prev_kv.map(kv_from_pb) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use atoll_proto::etcd_convert::watch::response_to_pb;
    use atoll_proto::kv::KeyValue;

    #[test]
    fn responses_come_back_as_the_gateway_sent_them() {
        let kv = |key: &[u8], rev| KeyValue {
            key: key.to_vec(),
            mod_revision: rev,
            value: b"v".to_vec(),
            ..KeyValue::default()
        };
        let native = WatchResponse {
            watch_id: 7,
            events: vec![
                Event { kind: EventType::Put, kv: kv(b"/a", 5), prev_kv: Some(kv(b"/a", 4)) },
                Event { kind: EventType::Delete, kv: kv(b"/b", 6), prev_kv: None },
            ],
            ..WatchResponse::default()
        };
        assert_eq!(response_from_pb(response_to_pb(native.clone())), native);
    }

    #[test]
    fn creates_keep_their_id_range_and_prev_kv() {
        let req = WatchCreateRequest {
            key: b"/w/".to_vec(),
            range_end: b"/w0".to_vec(),
            prev_kv: true,
            watch_id: 9,
            ..WatchCreateRequest::default()
        };
        let Some(pb::watch_request::RequestUnion::CreateRequest(c)) =
            create_to_pb(req).request_union
        else {
            panic!("a create")
        };
        assert_eq!(
            (c.key, c.range_end, c.prev_kv, c.watch_id),
            (b"/w/".to_vec(), b"/w0".to_vec(), true, 9)
        );
    }
}
