//! A client of any etcd v3 gRPC endpoint (etcd itself, or Atoll's gateway): one HTTP/2
//! connection (a tonic `Channel`, which multiplexes every request of every loop that uses
//! it, as clientv3 does), plain `http://` or TLS with a CA to trust. It sends the native
//! request types converted to etcd's messages ([`atoll_proto::etcd_convert`]) and answers native
//! types, so the workloads do not know which target they drive.

use crate::limits::{
    COMPACTION_TIMEOUT, ETCD_DIAL_TIMEOUT, ETCD_REQUEST_TIMEOUT, ETCD_RESPONSE_BYTES_MAX,
};
use atoll_proto::etcd::etcdserverpb as pb;
use atoll_proto::etcd::etcdserverpb::kv_client::KvClient;
use atoll_proto::etcd::etcdserverpb::lease_client::LeaseClient;
use atoll_proto::etcd::etcdserverpb::maintenance_client::MaintenanceClient;
use atoll_proto::etcd::etcdserverpb::watch_client::WatchClient;
use atoll_proto::etcd_convert::lease as lease_pb;
use atoll_proto::etcd_convert::{request, response};
use atoll_proto::kv::*;
use atoll_proto::lease::*;
use std::fmt;
use std::future::Future;
use std::time::Duration;
use tokio::sync::mpsc;
use tonic::Streaming;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

/// Where and how to reach etcd endpoints.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EtcdConfig {
    /// Endpoints as `host:port` or URLs; connection `i` dials endpoint `i mod len`.
    pub endpoints: Vec<String>,
    /// A CA certificate (PEM) to trust: endpoints are then dialled with TLS.
    pub ca_pem: Option<Vec<u8>>,
}

impl EtcdConfig {
    /// The URL of endpoint `index` (modulo the count): `host:port` gains `https://` when a CA
    /// is given, else `http://` (etcd's own default); a URL is used as it is.
    pub fn url(&self, index: usize) -> Option<String> {
        let endpoint = self.endpoints.get(index % self.endpoints.len().max(1))?;
        if endpoint.contains("://") {
            return Some(endpoint.clone());
        }
        let scheme = if self.ca_pem.is_some() { "https" } else { "http" };
        Some(format!("{scheme}://{endpoint}"))
    }
}

/// Why an etcd request failed.
#[derive(Debug)]
pub enum EtcdError {
    /// The endpoint could not be dialled.
    Connect {
        /// The URL dialled.
        endpoint: String,
        /// What went wrong.
        reason: String,
    },
    /// The server (or the gRPC transport) answered with a status.
    Status(tonic::Status),
    /// No answer within the request timeout.
    Timeout {
        /// The timeout.
        after: Duration,
    },
}

impl fmt::Display for EtcdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EtcdError::Connect { endpoint, reason } => {
                write!(f, "cannot connect to etcd endpoint {endpoint}: {reason}")
            }
            EtcdError::Status(status) => {
                // tonic's transport failures say only "transport error"; their causes follow.
                write!(f, "etcd answered {:?}: {}", status.code(), status.message())?;
                let mut source = std::error::Error::source(status);
                while let Some(cause) = source {
                    write!(f, ": {cause}")?;
                    source = cause.source();
                }
                Ok(())
            }
            EtcdError::Timeout { after } => write!(f, "no answer from etcd within {after:?}"),
        }
    }
}

impl std::error::Error for EtcdError {}

/// One connection to one etcd endpoint.
#[derive(Clone, Debug)]
pub struct EtcdClient {
    channel: Channel,
}

impl EtcdClient {
    /// Dials endpoint `index` of `config` (modulo the count) and waits for the connection.
    pub async fn connect(config: &EtcdConfig, index: usize) -> Result<EtcdClient, EtcdError> {
        let Some(url) = config.url(index) else {
            return Err(EtcdError::Connect {
                endpoint: String::new(),
                reason: "no endpoints given; pass --endpoints host:port[,host:port...]".into(),
            });
        };
        let failed = |reason: String| EtcdError::Connect { endpoint: url.clone(), reason };
        let mut endpoint = Endpoint::from_shared(url.clone())
            .map_err(|e| failed(e.to_string()))?
            .connect_timeout(ETCD_DIAL_TIMEOUT)
            .tcp_nodelay(true);
        if let Some(pem) = &config.ca_pem {
            let tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem));
            endpoint = endpoint.tls_config(tls).map_err(|e| failed(e.to_string()))?;
        }
        let channel = endpoint.connect().await.map_err(|e| failed(error_chain(&e)))?;
        Ok(EtcdClient { channel })
    }

    /// A `KV` client on the connection (a handle: cheap to make per call).
    fn kv(&self) -> KvClient<Channel> {
        // etcd's own client accepts answers up to 2 GiB (MaxCallRecvMsgSize); tonic's default
        // of 4 MiB would fail an unlimited range over a large key space.
        KvClient::new(self.channel.clone())
            .max_decoding_message_size(ETCD_RESPONSE_BYTES_MAX)
            .max_encoding_message_size(ETCD_RESPONSE_BYTES_MAX)
    }

    /// A `Watch` client on the same connection (each `watch` call opens one more stream).
    pub fn watch_client(&self) -> WatchClient<Channel> {
        WatchClient::new(self.channel.clone()).max_decoding_message_size(ETCD_RESPONSE_BYTES_MAX)
    }

    /// A `Lease` client on the same connection.
    fn lease(&self) -> LeaseClient<Channel> {
        LeaseClient::new(self.channel.clone())
    }

    /// `Maintenance.Status` of the member this connection reaches: its own member ID and
    /// its leader's.
    pub async fn member_and_leader(&self) -> Result<(u64, u64), EtcdError> {
        let mut maintenance = MaintenanceClient::new(self.channel.clone());
        let status = timed(maintenance.status(pb::StatusRequest {})).await?;
        Ok((status.header.map_or(0, |h| h.member_id), status.leader))
    }

    /// `Lease.LeaseGrant`.
    pub async fn lease_grant(
        &self,
        req: LeaseGrantRequest,
    ) -> Result<LeaseGrantResponse, EtcdError> {
        let answer = timed(self.lease().lease_grant(lease_pb::grant_to_pb_request(req))).await?;
        Ok(lease_pb::grant_from_pb_response(answer))
    }

    /// `Lease.LeaseRevoke`.
    pub async fn lease_revoke(
        &self,
        req: LeaseRevokeRequest,
    ) -> Result<LeaseRevokeResponse, EtcdError> {
        let answer = timed(self.lease().lease_revoke(lease_pb::revoke_to_pb_request(req))).await?;
        Ok(lease_pb::revoke_from_pb_response(answer))
    }

    /// `Lease.LeaseLeases`.
    pub async fn lease_leases(&self) -> Result<LeaseLeasesResponse, EtcdError> {
        let answer = timed(self.lease().lease_leases(pb::LeaseLeasesRequest {})).await?;
        Ok(lease_pb::leases_from_pb_response(answer))
    }

    /// Opens a `Lease.LeaseKeepAlive` stream with its first renewal and returns the stream
    /// and that renewal's answer: one stream carries one loop's renewals, one at a time, as
    /// clientv3 keeps one stream for all its renewals. The first request is queued before
    /// the call, since etcd answers the call only once a request arrived.
    pub async fn lease_keep_alive_stream(
        &self,
        first: LeaseKeepAliveRequest,
    ) -> Result<(EtcdKeepAlive, LeaseKeepAliveResponse), EtcdError> {
        let (tx, queued) = mpsc::channel(1);
        // The queue is empty and its receiver alive: this send cannot fail.
        let _ = tx.try_send(lease_pb::keep_alive_to_pb_request(first));
        let requests = tonic::codegen::tokio_stream::wrappers::ReceiverStream::new(queued);
        let answers = timed(self.lease().lease_keep_alive(requests)).await?;
        let mut stream = EtcdKeepAlive { tx, answers };
        let answer = within_request_timeout(stream.next_answer()).await?;
        Ok((stream, answer))
    }

    /// `KV.Put`.
    pub async fn put(&self, req: PutRequest) -> Result<PutResponse, EtcdError> {
        let mut kv = self.kv();
        let answer = timed(kv.put(request::put_to_pb(req))).await?;
        Ok(response::put_from_pb(answer))
    }

    /// `KV.Range`.
    pub async fn range(&self, req: RangeRequest) -> Result<RangeResponse, EtcdError> {
        let mut kv = self.kv();
        let answer = timed(kv.range(request::range_to_pb(req))).await?;
        Ok(response::range_from_pb(answer))
    }

    /// `KV.Compact`; a physical one may take longer than the request timeout of the other
    /// calls, so it gets the compaction timeout.
    pub async fn compact(&self, req: CompactionRequest) -> Result<CompactionResponse, EtcdError> {
        let mut kv = self.kv();
        let answer = timed_within(COMPACTION_TIMEOUT, kv.compact(request::compact_to_pb(req)));
        let answer = answer.await?;
        Ok(CompactionResponse { header: response::header_from_pb(answer.header) })
    }

    /// `KV.Txn`.
    pub async fn txn(&self, req: TxnRequest) -> Result<TxnResponse, EtcdError> {
        let mut kv = self.kv();
        let answer = timed(kv.txn(request::txn_to_pb(req))).await?;
        Ok(response::txn_from_pb(answer))
    }
}

/// One `LeaseKeepAlive` stream, used for one renewal at a time.
#[derive(Debug)]
pub struct EtcdKeepAlive {
    tx: mpsc::Sender<pb::LeaseKeepAliveRequest>,
    answers: Streaming<pb::LeaseKeepAliveResponse>,
}

impl EtcdKeepAlive {
    /// Renews one lease and waits for its answer (TTL 0: the lease is gone, as etcd answers).
    pub async fn renew(
        &mut self,
        req: LeaseKeepAliveRequest,
    ) -> Result<LeaseKeepAliveResponse, EtcdError> {
        within_request_timeout(async {
            let sent = self.tx.send(lease_pb::keep_alive_to_pb_request(req)).await;
            sent.map_err(|_| stream_ended())?;
            self.next_answer().await
        })
        .await
    }

    async fn next_answer(&mut self) -> Result<LeaseKeepAliveResponse, tonic::Status> {
        let answer = self.answers.message().await?.ok_or_else(stream_ended)?;
        Ok(lease_pb::keep_alive_from_pb_response(answer))
    }
}

fn stream_ended() -> tonic::Status {
    tonic::Status::unavailable("the keepalive stream ended")
}

/// Waits for `work` up to the request timeout.
async fn within_request_timeout<T>(
    work: impl Future<Output = Result<T, tonic::Status>>,
) -> Result<T, EtcdError> {
    match tokio::time::timeout(ETCD_REQUEST_TIMEOUT, work).await {
        Ok(Ok(answer)) => Ok(answer),
        Ok(Err(status)) => Err(EtcdError::Status(status)),
        Err(_) => Err(EtcdError::Timeout { after: ETCD_REQUEST_TIMEOUT }),
    }
}

/// Runs one call with the request timeout and unwraps its answer.
pub(crate) async fn timed<T>(
    call: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> Result<T, EtcdError> {
    timed_within(ETCD_REQUEST_TIMEOUT, call).await
}

/// Runs one call within `limit` and unwraps its answer.
async fn timed_within<T>(
    limit: Duration,
    call: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> Result<T, EtcdError> {
    match tokio::time::timeout(limit, call).await {
        Ok(Ok(response)) => Ok(response.into_inner()),
        Ok(Err(status)) => Err(EtcdError::Status(status)),
        Err(_) => Err(EtcdError::Timeout { after: limit }),
    }
}

/// An error and its sources on one line (tonic's transport error alone says only
/// "transport error").
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_gain_the_scheme_of_their_trust() {
        let mut config =
            EtcdConfig { endpoints: vec!["a:1".into(), "https://b:2".into()], ca_pem: None };
        assert_eq!(config.url(0).as_deref(), Some("http://a:1"));
        assert_eq!(config.url(1).as_deref(), Some("https://b:2"));
        assert_eq!(config.url(2).as_deref(), Some("http://a:1"), "round-robin");
        config.ca_pem = Some(b"pem".to_vec());
        assert_eq!(config.url(0).as_deref(), Some("https://a:1"));
        assert_eq!(EtcdConfig::default().url(0), None);
    }

    #[tokio::test]
    async fn a_dead_endpoint_is_a_connect_error_naming_it() {
        let port = crate::scenario::ports::free_port().expect("port");
        let config = EtcdConfig { endpoints: vec![format!("127.0.0.1:{port}")], ca_pem: None };
        let err = EtcdClient::connect(&config, 0).await.expect_err("nothing listens");
        assert!(matches!(err, EtcdError::Connect { .. }), "{err}");
        assert!(err.to_string().contains(&format!("http://127.0.0.1:{port}")), "{err}");
    }
}
