//! Connections to the system under test: which protocol, which CA to trust, and a pool of
//! `M` clients (each its own connection) that request loops share round-robin.
//!
//! One client multiplexes every request of every loop that uses it over one connection (one
//! QUIC stream per request natively, a node allows 1,024 open streams per connection; one
//! HTTP/2 stream per request over gRPC), so one connection serves hundreds of loops;
//! `--connections` spreads them when a single connection's congestion window or a single
//! server connection task becomes the limit.

use crate::backend::Backend;
use crate::etcd_client::{EtcdClient, EtcdConfig};
use anyhow::{Context as _, bail};
use atoll_router::{Client, ClientConfig, Trust};
use std::path::{Path, PathBuf};

/// Which protocol the load generator speaks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum TargetKind {
    /// Atoll's native protocol over QUIC (`atoll-router`'s client).
    #[default]
    Native,
    /// The etcd v3 gRPC API: etcd itself, or any endpoint that speaks it.
    Etcd,
}

/// Where to connect and whom to trust, as given on the command line.
#[derive(Clone, Debug)]
pub struct Target {
    /// The protocol.
    pub kind: TargetKind,
    /// Endpoints, tried in order by each client.
    pub endpoints: Vec<String>,
    /// A CA file; without it, the development CAs a local node leaves behind.
    pub cacert: Option<PathBuf>,
    /// Accept any server certificate.
    pub insecure_skip_tls_verify: bool,
}

impl Target {
    /// The trust the clients use.
    pub fn trust(&self) -> anyhow::Result<Trust> {
        if self.insecure_skip_tls_verify {
            return Ok(Trust::InsecureSkipVerify);
        }
        trust_from_ca(self.cacert.as_deref())
    }

    /// A client configuration with the library's default limits.
    pub fn client_config(&self) -> anyhow::Result<ClientConfig> {
        if self.endpoints.is_empty() {
            bail!("no endpoints given; pass --endpoints host:port[,host:port...]");
        }
        Ok(ClientConfig::new(self.endpoints.clone(), self.trust()?))
    }

    /// The etcd client configuration: plain HTTP unless `--cacert` is given.
    pub fn etcd_config(&self) -> anyhow::Result<EtcdConfig> {
        if self.endpoints.is_empty() {
            bail!("no endpoints given; pass --endpoints host:port[,host:port...]");
        }
        if self.insecure_skip_tls_verify {
            bail!(
                "--insecure-skip-tls-verify is not supported with --target etcd; pass --cacert \
                 with the server's CA, or plain http:// endpoints"
            );
        }
        let ca_pem = match &self.cacert {
            Some(path) => Some(
                std::fs::read(path)
                    .with_context(|| format!("cannot read --cacert {}", path.display()))?,
            ),
            None => None,
        };
        Ok(EtcdConfig { endpoints: self.endpoints.clone(), ca_pem })
    }
}

/// Trusts the CA in `cacert`, or the development CAs found the way atollctl finds them.
pub fn trust_from_ca(cacert: Option<&Path>) -> anyhow::Result<Trust> {
    let anchors = atoll_router::tls::default_trust_anchors(cacert, None)?;
    Ok(Trust::CaDer(anchors))
}

/// Splits a comma-separated endpoint list, dropping empty entries.
pub fn split_endpoints(text: &str) -> Vec<String> {
    text.split(',').map(str::trim).filter(|e| !e.is_empty()).map(str::to_string).collect()
}

/// `M` independent clients; request loop `i` uses client `i mod M`.
#[derive(Clone, Debug)]
pub struct ClientPool {
    clients: Vec<Backend>,
}

impl ClientPool {
    /// Connects `connections` clients of the target's protocol.
    pub async fn connect_target(target: &Target, connections: usize) -> anyhow::Result<ClientPool> {
        match target.kind {
            TargetKind::Native => ClientPool::connect(&target.client_config()?, connections).await,
            TargetKind::Etcd => ClientPool::connect_etcd(&target.etcd_config()?, connections).await,
        }
    }

    /// Connects `connections` native clients with `config`, one after the other (each dial
    /// is quick and a failure is reported for the first one).
    pub async fn connect(config: &ClientConfig, connections: usize) -> anyhow::Result<ClientPool> {
        let mut clients = Vec::with_capacity(connections.max(1));
        for i in 0..connections.max(1) {
            let client = Client::connect(config.clone())
                .await
                .with_context(|| format!("connection {} of {connections}", i + 1))?;
            clients.push(Backend::Native(client));
        }
        Ok(ClientPool { clients })
    }

    /// Connects `connections` etcd gRPC clients; connection `i` dials endpoint `i mod N`.
    pub async fn connect_etcd(
        config: &EtcdConfig,
        connections: usize,
    ) -> anyhow::Result<ClientPool> {
        let mut clients = Vec::with_capacity(connections.max(1));
        for i in 0..connections.max(1) {
            let client = EtcdClient::connect(config, i)
                .await
                .with_context(|| format!("connection {} of {connections}", i + 1))?;
            clients.push(Backend::Etcd(client));
        }
        Ok(ClientPool { clients })
    }

    /// The client of request loop `worker`.
    pub fn client(&self, worker: usize) -> &Backend {
        &self.clients[worker % self.clients.len()]
    }

    /// Number of connections.
    pub fn connections(&self) -> usize {
        self.clients.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_lists_split_on_commas() {
        assert_eq!(split_endpoints("a:1, b:2,,"), vec!["a:1".to_string(), "b:2".to_string()]);
        assert!(split_endpoints("").is_empty());
    }

    #[test]
    fn insecure_trust_needs_no_ca_and_no_endpoints_is_refused() {
        let target = Target {
            kind: TargetKind::Native,
            endpoints: vec![],
            cacert: None,
            insecure_skip_tls_verify: true,
        };
        assert_eq!(target.trust().expect("insecure"), Trust::InsecureSkipVerify);
        let err = target.client_config().expect_err("no endpoints");
        assert!(err.to_string().contains("--endpoints"), "{err}");
    }

    #[test]
    fn etcd_targets_read_the_ca_and_refuse_skipping_verification() {
        let plain = Target {
            kind: TargetKind::Etcd,
            endpoints: vec!["127.0.0.1:2379".into()],
            cacert: None,
            insecure_skip_tls_verify: false,
        };
        let config = plain.etcd_config().expect("plain http");
        assert_eq!(
            (config.url(0).as_deref(), config.ca_pem),
            (Some("http://127.0.0.1:2379"), None)
        );
        let insecure = Target { insecure_skip_tls_verify: true, ..plain.clone() };
        let err = insecure.etcd_config().expect_err("refused");
        assert!(err.to_string().contains("--cacert"), "{err}");
        let missing = Target { cacert: Some("/nonexistent/ca.pem".into()), ..plain };
        let err = missing.etcd_config().expect_err("no such file");
        assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");
    }
}
