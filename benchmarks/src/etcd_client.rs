//! A client of any etcd v3 gRPC endpoint (etcd itself, or Atoll's gateway): one HTTP/2
//! connection (a tonic `Channel`, which multiplexes every request of every loop that uses
//! it, as clientv3 does), plain `http://` or TLS with a CA to trust. It sends the native
//! request types converted to etcd's messages ([`atoll_proto::etcd_convert`]) and answers native
//! types, so the workloads do not know which target they drive.

use crate::limits::{
    COMPACTION_TIMEOUT, ETCD_DIAL_TIMEOUT, ETCD_REQUEST_TIMEOUT, ETCD_RESPONSE_BYTES_MAX,
};
use atoll_proto::etcd::etcdserverpb::kv_client::KvClient;
use atoll_proto::etcd::etcdserverpb::watch_client::WatchClient;
use atoll_proto::etcd_convert::{request, response};
use atoll_proto::kv::*;
use std::fmt;
use std::future::Future;
use std::time::Duration;
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
                write!(f, "etcd answered {:?}: {}", status.code(), status.message())
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
