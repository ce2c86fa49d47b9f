//! The real [`Connector`]: opens `atoll_router::Client`s with the TLS trust and timeouts
//! from the global flags, and maps the router's errors onto atollctl's.

use crate::ctl::args::GlobalArgs;
use crate::ctl::client::{Connector, KvClient, WatchResponses};
use crate::ctl::error::CtlError;
use crate::ctl::limits::{CLIENT_RETRIES_MAX, RESPONSE_BYTES_MAX};
use atoll_proto::lease::*;
use atoll_proto::{
    CompactionRequest, CompactionResponse, DeleteRangeRequest, DeleteRangeResponse, PutRequest,
    PutResponse, RangeRequest, RangeResponse, StatusResponse, TxnRequest, TxnResponse,
    WatchCreateRequest, WatchRequest, WatchResponse,
};
use atoll_router::watch::{WatchReceiver, WatchSender};
use atoll_router::{Client, ClientConfig, ClientError, Trust};
use std::path::PathBuf;
use std::time::Duration;

/// Connects through the router library over QUIC.
#[derive(Clone, Debug)]
pub struct RouterConnector {
    cacert: Option<PathBuf>,
    data_dir: Option<PathBuf>,
    insecure_skip_tls_verify: bool,
    dial_timeout: Duration,
    command_timeout: Duration,
    /// `--user` and `--password` as given.
    user: Option<String>,
    password: Option<String>,
}

impl RouterConnector {
    /// A connector configured by the global flags.
    pub fn new(global: &GlobalArgs) -> Self {
        RouterConnector {
            cacert: global.cacert.clone(),
            data_dir: global.data_dir.clone(),
            insecure_skip_tls_verify: global.insecure_skip_tls_verify,
            dial_timeout: global.dial_timeout,
            command_timeout: global.command_timeout,
            user: global.user.clone(),
            password: global.password.clone(),
        }
    }

    /// etcdctl's `--user name[:password]` / `--password` (decision D21).
    fn credentials(&self) -> Result<Option<(String, String)>, CtlError> {
        let Some(user) = &self.user else { return Ok(None) };
        match (&self.password, user.split_once(':')) {
            (Some(_), Some(_)) => {
                Err(CtlError::bad_args("--user shouldn't contain \":\" if --password is given"))
            }
            (Some(password), None) => Ok(Some((user.clone(), password.clone()))),
            (None, Some((name, password))) => Ok(Some((name.into(), password.into()))),
            (None, None) => Err(CtlError::bad_args(
                "no password given for --user; pass --user name:password or --password",
            )),
        }
    }

    /// `--insecure-skip-tls-verify`, else `--cacert`, else the development CA of a local
    /// node (found through `--data-dir` or the per-user directory nodes write it to).
    fn trust(&self) -> Result<Trust, CtlError> {
        if self.insecure_skip_tls_verify {
            return Ok(Trust::InsecureSkipVerify);
        }
        atoll_router::tls::default_trust_anchors(self.cacert.as_deref(), self.data_dir.as_deref())
            .map(Trust::CaDer)
            .map_err(|e| CtlError::Trust { reason: e.to_string() })
    }

    fn map_error(&self, error: ClientError) -> CtlError {
        match error {
            ClientError::Connect { endpoint, reason } => {
                CtlError::Connect { endpoints: endpoint, dial_timeout: self.dial_timeout, reason }
            }
            ClientError::Timeout { .. } => CtlError::DeadlineExceeded {
                endpoints: String::new(),
                command_timeout: self.command_timeout,
            },
            // etcdctl exits with ExitBadArgs when the client configuration is unusable.
            ClientError::Config { .. } => CtlError::bad_args(error.to_string()),
            ClientError::Server(_)
            | ClientError::Transport { .. }
            | ClientError::Protocol { .. } => CtlError::Request { message: error.to_string() },
        }
    }
}

impl Connector for RouterConnector {
    type Client = RouterClient;

    async fn connect(&self, endpoints: &[String]) -> Result<RouterClient, CtlError> {
        let config = ClientConfig {
            endpoints: endpoints.to_vec(),
            trust: self.trust()?,
            server_name: None,
            dial_timeout: self.dial_timeout,
            request_timeout: self.command_timeout,
            retries_max: CLIENT_RETRIES_MAX,
            max_response_bytes: RESPONSE_BYTES_MAX,
        };
        let credentials = self.credentials()?;
        let client = Client::connect(config).await.map_err(|e| self.map_error(e))?;
        if let Some((name, password)) = credentials {
            client.authenticate(&name, &password).await.map_err(|e| self.map_error(e))?;
        }
        Ok(RouterClient { client, connector: self.clone(), endpoints: endpoints.join(",") })
    }
}

/// A connected router client.
#[derive(Debug)]
pub struct RouterClient {
    client: Client,
    connector: RouterConnector,
    endpoints: String,
}

impl RouterClient {
    fn map_error(&self, error: ClientError) -> CtlError {
        match self.connector.map_error(error) {
            CtlError::DeadlineExceeded { command_timeout, .. } => {
                CtlError::DeadlineExceeded { endpoints: self.endpoints.clone(), command_timeout }
            }
            other => other,
        }
    }
}

impl KvClient for RouterClient {
    async fn range(&self, req: RangeRequest) -> Result<RangeResponse, CtlError> {
        self.client.range(req).await.map_err(|e| self.map_error(e))
    }

    async fn put(&self, req: PutRequest) -> Result<PutResponse, CtlError> {
        self.client.put(req).await.map_err(|e| self.map_error(e))
    }

    async fn delete_range(&self, req: DeleteRangeRequest) -> Result<DeleteRangeResponse, CtlError> {
        self.client.delete_range(req).await.map_err(|e| self.map_error(e))
    }

    async fn txn(&self, req: TxnRequest) -> Result<TxnResponse, CtlError> {
        self.client.txn(req).await.map_err(|e| self.map_error(e))
    }

    async fn compact(&self, req: CompactionRequest) -> Result<CompactionResponse, CtlError> {
        self.client.compact(req).await.map_err(|e| self.map_error(e))
    }

    async fn status(&self, endpoint: &str) -> Result<StatusResponse, CtlError> {
        self.client.status(endpoint).await.map_err(|e| self.map_error(e))
    }

    async fn lease_grant(&self, req: LeaseGrantRequest) -> Result<LeaseGrantResponse, CtlError> {
        self.client.lease_grant(req).await.map_err(|e| self.map_error(e))
    }

    async fn lease_revoke(&self, req: LeaseRevokeRequest) -> Result<LeaseRevokeResponse, CtlError> {
        self.client.lease_revoke(req).await.map_err(|e| self.map_error(e))
    }

    async fn lease_keep_alive(
        &self,
        req: LeaseKeepAliveRequest,
    ) -> Result<LeaseKeepAliveResponse, CtlError> {
        self.client.lease_keep_alive(req).await.map_err(|e| self.map_error(e))
    }

    async fn lease_time_to_live(
        &self,
        req: LeaseTimeToLiveRequest,
    ) -> Result<LeaseTimeToLiveResponse, CtlError> {
        self.client.lease_time_to_live(req).await.map_err(|e| self.map_error(e))
    }

    async fn lease_leases(&self, req: LeaseLeasesRequest) -> Result<LeaseLeasesResponse, CtlError> {
        self.client.lease_leases(req).await.map_err(|e| self.map_error(e))
    }

    async fn members(
        &self,
        req: atoll_proto::NativeRequest,
    ) -> Result<atoll_proto::member::MembersResponse, CtlError> {
        self.client.members(req).await.map_err(|e| self.map_error(e))
    }

    async fn shard_map(
        &self,
        req: atoll_proto::shard_map::ShardMapRequest,
    ) -> Result<atoll_proto::shard_map::ShardMapResponse, CtlError> {
        self.client.shard_map(req).await.map_err(|e| self.map_error(e))
    }

    async fn auth(
        &self,
        req: atoll_proto::auth::AuthRequest,
    ) -> Result<atoll_proto::auth::AuthResponse, CtlError> {
        self.client.auth(req).await.map_err(|e| self.map_error(e))
    }

    type Watch = RouterWatch;

    async fn watch(&self, req: WatchCreateRequest) -> Result<RouterWatch, CtlError> {
        let opened = self.client.watch(WatchRequest::Create(req)).await;
        let (sender, receiver) = opened.map_err(|e| self.map_error(e))?;
        Ok(RouterWatch { _sender: sender, receiver, connector: self.connector.clone() })
    }
}

/// An open watch stream of the router client.
pub struct RouterWatch {
    /// Kept open: dropping it would end the client's side and with it the stream.
    _sender: WatchSender,
    receiver: WatchReceiver,
    connector: RouterConnector,
}

impl WatchResponses for RouterWatch {
    async fn next(&mut self) -> Result<Option<WatchResponse>, CtlError> {
        self.receiver.recv().await.map_err(|e| self.connector.map_error(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use atoll_proto::AtollError;

    fn connector() -> RouterConnector {
        RouterConnector {
            cacert: None,
            data_dir: None,
            insecure_skip_tls_verify: true,
            dial_timeout: Duration::from_secs(2),
            command_timeout: Duration::from_secs(5),
            user: None,
            password: None,
        }
    }

    #[test]
    fn router_errors_map_to_etcdctl_style_errors() {
        let c = connector();
        let server =
            c.map_error(ClientError::Server(AtollError::Compacted { compact_revision: 3 }));
        assert_eq!(server.to_string(), "etcdserver: mvcc: required revision has been compacted");
        assert_eq!(server.exit_code(), 1);
        let connect = c.map_error(ClientError::Connect {
            endpoint: "127.0.0.1:1".into(),
            reason: "no answer within 2s".into(),
        });
        assert_eq!(
            connect.to_string(),
            "context deadline exceeded: could not connect to 127.0.0.1:1 within 2s: no answer within 2s"
        );
        let config =
            c.map_error(ClientError::Config { reason: "endpoint \"x\" has a path".into() });
        assert_eq!(config.exit_code(), 128);
        let timeout = c.map_error(ClientError::Timeout { after: Duration::from_secs(5) });
        assert!(timeout.to_string().starts_with("context deadline exceeded"));
    }

    #[test]
    fn insecure_flag_skips_ca_lookup() {
        assert!(matches!(connector().trust(), Ok(Trust::InsecureSkipVerify)));
        let missing = RouterConnector {
            insecure_skip_tls_verify: false,
            cacert: Some(PathBuf::from("/nonexistent/atollctl-test-ca.pem")),
            ..connector()
        };
        let err = missing.trust().err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("/nonexistent/atollctl-test-ca.pem"), "{err}");
    }
}
