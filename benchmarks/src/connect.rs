//! Connections to the system under test: which CA to trust, and a pool of `M` clients (each
//! its own QUIC connection) that request loops share round-robin.
//!
//! One client multiplexes every request of every loop that uses it over one connection, one
//! QUIC stream per request (a node allows 1,024 open streams per connection), so one
//! connection serves hundreds of loops; `--connections` spreads them when a single
//! connection's congestion window or a single server connection task becomes the limit.

use anyhow::{Context as _, bail};
use atoll_router::{Client, ClientConfig, Trust};
use std::path::{Path, PathBuf};

/// Where to connect and whom to trust, as given on the command line.
#[derive(Clone, Debug)]
pub struct Target {
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
    clients: Vec<Client>,
}

impl ClientPool {
    /// Connects `connections` clients with `config`, one after the other (each dial is quick
    /// and a failure is reported for the first one).
    pub async fn connect(config: &ClientConfig, connections: usize) -> anyhow::Result<ClientPool> {
        let mut clients = Vec::with_capacity(connections.max(1));
        for i in 0..connections.max(1) {
            let client = Client::connect(config.clone())
                .await
                .with_context(|| format!("connection {} of {connections}", i + 1))?;
            clients.push(client);
        }
        Ok(ClientPool { clients })
    }

    /// The client of request loop `worker`.
    pub fn client(&self, worker: usize) -> &Client {
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
        let target = Target { endpoints: vec![], cacert: None, insecure_skip_tls_verify: true };
        assert_eq!(target.trust().expect("insecure"), Trust::InsecureSkipVerify);
        let err = target.client_config().expect_err("no endpoints");
        assert!(err.to_string().contains("--endpoints"), "{err}");
    }
}
