//! Node configuration. Every setting can come from a flag (named like etcd's where the concept
//! is the same), an `ATOLL_*` environment variable, or the TOML file given by `--config-file`.
//! Precedence: flag, then environment, then file, then the documented default.

use crate::units::{parse_bytes, parse_duration};
use atoll_proto::limits::{MAX_REQUEST_BYTES_DEFAULT, MAX_TXN_OPS_DEFAULT};
use clap::Parser;
use serde::Deserialize;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

/// Command-line flags of `atoll`. Each is optional so that the config file can fill it.
#[derive(Debug, Default, Parser)]
#[command(
    name = "atoll",
    version,
    about = "Atoll: a horizontally sharded, etcd-compatible key-value store"
)]
pub struct Flags {
    /// A tool to run instead of the node.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// TOML config file; flags and ATOLL_* variables override its values.
    #[arg(long, env = "ATOLL_CONFIG_FILE")]
    pub config_file: Option<PathBuf>,
    /// Human-readable name of this node.
    #[arg(long, env = "ATOLL_NAME")]
    pub name: Option<String>,
    /// Data directory (default ./atoll-data).
    #[arg(long, env = "ATOLL_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Comma-separated URLs to serve clients on (native QUIC on UDP).
    #[arg(long, env = "ATOLL_LISTEN_CLIENT_URLS")]
    pub listen_client_urls: Option<String>,
    /// Comma-separated client URLs to advertise to the cluster and clients.
    #[arg(long, env = "ATOLL_ADVERTISE_CLIENT_URLS")]
    pub advertise_client_urls: Option<String>,
    /// Comma-separated URLs for peer traffic (used once the node joins a multi-node cluster).
    #[arg(long, env = "ATOLL_LISTEN_PEER_URLS")]
    pub listen_peer_urls: Option<String>,
    /// Comma-separated URLs to serve /metrics and /health on (plain HTTP).
    #[arg(long, env = "ATOLL_LISTEN_METRICS_URLS")]
    pub listen_metrics_urls: Option<String>,
    /// Cluster token; the cluster ID is derived from it.
    #[arg(long, env = "ATOLL_INITIAL_CLUSTER_TOKEN")]
    pub initial_cluster_token: Option<String>,
    /// Largest client request accepted, in bytes or with a unit (default 1.5MiB).
    #[arg(long, env = "ATOLL_MAX_REQUEST_BYTES")]
    pub max_request_bytes: Option<String>,
    /// Most operations in one txn branch (default 128).
    #[arg(long, env = "ATOLL_MAX_TXN_OPS")]
    pub max_txn_ops: Option<usize>,
    /// Leader heartbeat interval, ms or with a unit (default 100ms).
    #[arg(long, env = "ATOLL_HEARTBEAT_INTERVAL")]
    pub heartbeat_interval: Option<String>,
    /// Election timeout, ms or with a unit (default 1000ms).
    #[arg(long, env = "ATOLL_ELECTION_TIMEOUT")]
    pub election_timeout: Option<String>,
    /// Block cache of the storage engine (default 64MiB).
    #[arg(long, env = "ATOLL_CACHE_SIZE")]
    pub cache_size: Option<String>,
    /// Node certificate (PEM); default: a development certificate in the data directory.
    #[arg(long, env = "ATOLL_CERT_FILE")]
    pub cert_file: Option<PathBuf>,
    /// Node private key (PEM).
    #[arg(long, env = "ATOLL_KEY_FILE")]
    pub key_file: Option<PathBuf>,
    /// CA that signed the node certificates (PEM).
    #[arg(long, env = "ATOLL_TRUSTED_CA_FILE")]
    pub trusted_ca_file: Option<PathBuf>,
    /// Log level: error, warn, info, debug or trace (default info).
    #[arg(long, env = "ATOLL_LOG_LEVEL")]
    pub log_level: Option<String>,
}

/// Tools of the `atoll` binary.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Create certificates for nodes that authenticate each other with mutual TLS.
    #[command(subcommand)]
    Certs(CertsCommand),
}

/// `atoll certs ...`.
#[derive(Debug, clap::Subcommand)]
pub enum CertsCommand {
    /// Create a cluster CA: <dir>/ca.pem and <dir>/ca-key.pem (never overwrites).
    Ca {
        /// Directory to write the CA into.
        #[arg(long)]
        dir: PathBuf,
    },
    /// Issue a node certificate signed by the CA in --ca-dir: <out>/node.pem, node-key.pem and
    /// a copy of ca.pem, for --cert-file, --key-file and --trusted-ca-file.
    Node {
        /// Directory holding ca.pem and ca-key.pem.
        #[arg(long)]
        ca_dir: PathBuf,
        /// Directory to write the node's files into.
        #[arg(long)]
        out: PathBuf,
        /// Comma-separated host names and IPs the certificate names, besides localhost,
        /// 127.0.0.1 and ::1.
        #[arg(long, value_delimiter = ',')]
        hosts: Vec<String>,
    },
}

/// The config file's shape: the same settings as the flags, in kebab-case, with human units.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
struct FileConfig {
    name: Option<String>,
    data_dir: Option<PathBuf>,
    listen_client_urls: Option<Vec<String>>,
    advertise_client_urls: Option<Vec<String>>,
    listen_peer_urls: Option<Vec<String>>,
    listen_metrics_urls: Option<Vec<String>>,
    initial_cluster_token: Option<String>,
    max_request_bytes: Option<String>,
    max_txn_ops: Option<usize>,
    heartbeat_interval: Option<String>,
    election_timeout: Option<String>,
    cache_size: Option<String>,
    cert_file: Option<PathBuf>,
    key_file: Option<PathBuf>,
    trusted_ca_file: Option<PathBuf>,
    log_level: Option<String>,
}

/// The resolved configuration of a node.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeConfig {
    /// Node name (default "default", as etcd).
    pub name: String,
    /// Data directory (default `./atoll-data`).
    pub data_dir: PathBuf,
    /// Client URLs to listen on (default `https://127.0.0.1:2379`).
    pub listen_client_urls: Vec<String>,
    /// Client URLs to advertise (default: the listen URLs).
    pub advertise_client_urls: Vec<String>,
    /// Peer URLs (default `https://127.0.0.1:2380`).
    pub listen_peer_urls: Vec<String>,
    /// Metrics URLs (default none).
    pub listen_metrics_urls: Vec<String>,
    /// Cluster token (default "atoll-cluster").
    pub initial_cluster_token: String,
    /// Largest request (default 1.5 MiB, etcd's).
    pub max_request_bytes: usize,
    /// Most ops per txn branch (default 128, etcd's).
    pub max_txn_ops: usize,
    /// Heartbeat interval (default 100 ms, etcd's).
    pub heartbeat_interval: Duration,
    /// Election timeout (default 1 s, etcd's).
    pub election_timeout: Duration,
    /// Storage block cache (default 64 MiB).
    pub cache_bytes: u64,
    /// Operator-provided certificate, key and CA, all three or none.
    pub tls_files: Option<(PathBuf, PathBuf, PathBuf)>,
    /// Log level (default info).
    pub log_level: String,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            name: "default".into(),
            data_dir: PathBuf::from("./atoll-data"),
            listen_client_urls: vec!["https://127.0.0.1:2379".into()],
            advertise_client_urls: Vec::new(),
            listen_peer_urls: vec!["https://127.0.0.1:2380".into()],
            listen_metrics_urls: Vec::new(),
            initial_cluster_token: "atoll-cluster".into(),
            max_request_bytes: MAX_REQUEST_BYTES_DEFAULT,
            max_txn_ops: MAX_TXN_OPS_DEFAULT,
            heartbeat_interval: Duration::from_millis(100),
            election_timeout: Duration::from_millis(1000),
            cache_bytes: 64 << 20,
            tls_files: None,
            log_level: "info".into(),
        }
    }
}

/// A configuration error, worded for the operator.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

fn err(msg: impl Into<String>) -> ConfigError {
    ConfigError(msg.into())
}

impl NodeConfig {
    /// Resolves flags (which clap already merged with the environment) over the config file
    /// over the defaults, then validates.
    pub fn load(flags: &Flags) -> Result<NodeConfig, ConfigError> {
        let file = match &flags.config_file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| err(format!("cannot read config file {}: {e}", path.display())))?;
                toml::from_str::<FileConfig>(&text).map_err(|e| {
                    err(format!("config file {}: {}", path.display(), one_line(&e.to_string())))
                })?
            }
            None => FileConfig::default(),
        };
        let cfg = Self::merge(flags, file)?;
        cfg.validate()?;
        Ok(cfg)
    }

    fn merge(flags: &Flags, file: FileConfig) -> Result<NodeConfig, ConfigError> {
        let d = NodeConfig::default();
        let list = |flag: &Option<String>, file: Option<Vec<String>>, default: Vec<String>| {
            flag.as_deref().map(split_list).or(file).unwrap_or(default)
        };
        let text = |flag: &Option<String>, file: Option<String>| flag.clone().or(file);
        let duration = |name: &str, v: Option<String>, default: Duration| match v {
            Some(t) => parse_duration(&t).map_err(|e| err(format!("--{name}: {e}"))),
            None => Ok(default),
        };
        let bytes = |name: &str, v: Option<String>, default: u64| match v {
            Some(t) => parse_bytes(&t).map_err(|e| err(format!("--{name}: {e}"))),
            None => Ok(default),
        };
        let listen_client_urls =
            list(&flags.listen_client_urls, file.listen_client_urls, d.listen_client_urls);
        let advertise_client_urls = list(
            &flags.advertise_client_urls,
            file.advertise_client_urls,
            listen_client_urls.clone(),
        );
        let tls = (
            flags.cert_file.clone().or(file.cert_file),
            flags.key_file.clone().or(file.key_file),
            flags.trusted_ca_file.clone().or(file.trusted_ca_file),
        );
        let tls_files = match tls {
            (Some(c), Some(k), Some(ca)) => Some((c, k, ca)),
            (None, None, None) => None,
            _ => {
                return Err(err(
                    "--cert-file, --key-file and --trusted-ca-file go together: give all three or none",
                ));
            }
        };
        let max_request_bytes = bytes(
            "max-request-bytes",
            text(&flags.max_request_bytes, file.max_request_bytes),
            d.max_request_bytes as u64,
        )?;
        Ok(NodeConfig {
            name: text(&flags.name, file.name).unwrap_or(d.name),
            data_dir: flags.data_dir.clone().or(file.data_dir).unwrap_or(d.data_dir),
            listen_client_urls,
            advertise_client_urls,
            listen_peer_urls: list(
                &flags.listen_peer_urls,
                file.listen_peer_urls,
                d.listen_peer_urls,
            ),
            listen_metrics_urls: list(
                &flags.listen_metrics_urls,
                file.listen_metrics_urls,
                d.listen_metrics_urls,
            ),
            initial_cluster_token: text(&flags.initial_cluster_token, file.initial_cluster_token)
                .unwrap_or(d.initial_cluster_token),
            max_request_bytes: usize::try_from(max_request_bytes)
                .map_err(|_| err("--max-request-bytes is too large"))?,
            max_txn_ops: flags.max_txn_ops.or(file.max_txn_ops).unwrap_or(d.max_txn_ops),
            heartbeat_interval: duration(
                "heartbeat-interval",
                text(&flags.heartbeat_interval, file.heartbeat_interval),
                d.heartbeat_interval,
            )?,
            election_timeout: duration(
                "election-timeout",
                text(&flags.election_timeout, file.election_timeout),
                d.election_timeout,
            )?,
            cache_bytes: bytes(
                "cache-size",
                text(&flags.cache_size, file.cache_size),
                d.cache_bytes,
            )?,
            tls_files,
            log_level: text(&flags.log_level, file.log_level).unwrap_or(d.log_level),
        })
    }

    /// Checks relations between settings.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.name.is_empty() {
            return Err(err("--name must not be empty"));
        }
        if self.heartbeat_interval.is_zero() {
            return Err(err("--heartbeat-interval must be above 0"));
        }
        if self.election_timeout < self.heartbeat_interval * 5 {
            return Err(err(format!(
                "--election-timeout ({:?}) must be at least 5 times --heartbeat-interval ({:?})",
                self.election_timeout, self.heartbeat_interval
            )));
        }
        if self.max_request_bytes == 0 || self.max_request_bytes > 64 << 20 {
            return Err(err("--max-request-bytes must be between 1 byte and 64MiB"));
        }
        if self.max_txn_ops == 0 {
            return Err(err("--max-txn-ops must be at least 1"));
        }
        if self.listen_client_urls.is_empty() {
            return Err(err("--listen-client-urls must name at least one URL"));
        }
        for url in self
            .listen_client_urls
            .iter()
            .chain(&self.listen_peer_urls)
            .chain(&self.listen_metrics_urls)
        {
            url_socket_addr(url)?;
        }
        if !matches!(self.log_level.as_str(), "error" | "warn" | "info" | "debug" | "trace") {
            return Err(err(format!(
                "--log-level '{}': use error, warn, info, debug or trace",
                self.log_level
            )));
        }
        Ok(())
    }

    /// Election timeout in heartbeat ticks.
    pub fn election_ticks(&self) -> usize {
        (self.election_timeout.as_millis() / self.heartbeat_interval.as_millis().max(1)).max(2)
            as usize
    }

    /// etcd's request timeout: 5 s plus two election timeouts.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(5) + self.election_timeout * 2
    }
}

fn split_list(s: &str) -> Vec<String> {
    s.split(',').map(str::trim).filter(|p| !p.is_empty()).map(String::from).collect()
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The socket address of a URL such as `https://127.0.0.1:2379` or `http://localhost:2379`.
pub fn url_socket_addr(url: &str) -> Result<SocketAddr, ConfigError> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .or_else(|| url.strip_prefix("unix://").and(None))
        .ok_or_else(|| err(format!("URL '{url}' must start with https:// or http://")))?;
    let host_port = rest.trim_end_matches('/');
    host_port
        .to_socket_addrs()
        .map_err(|e| err(format!("URL '{url}' does not name a host:port ({e})")))?
        .next()
        .ok_or_else(|| err(format!("URL '{url}' resolves to no address")))
}

#[cfg(test)]
mod tests;
