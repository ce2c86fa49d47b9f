//! Node configuration. Every setting can come from a flag (named like etcd's where the concept
//! is the same), an `ATOLL_*` environment variable, or the TOML file given by `--config-file`.
//! Precedence: flag, then environment, then file, then the documented default.

mod compaction;

pub use compaction::{CompactionConfig, CompactionFlags};

use crate::identity::{NodeIdentity, cluster_id, member_id};
use crate::units::{parse_bytes, parse_duration};
use atoll_proto::NodeId;
use atoll_proto::limits::{MAX_REQUEST_BYTES_DEFAULT, MAX_TXN_OPS_DEFAULT};
use atoll_proto::shard_map::Member;
use atoll_router::shard_map::bootstrap_map;
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
    /// Cluster token (default "atoll-cluster"); member and cluster IDs are derived from it, so
    /// two clusters started with the same members but different tokens never mix.
    #[arg(long, env = "ATOLL_INITIAL_CLUSTER_TOKEN")]
    pub initial_cluster_token: Option<String>,
    /// Members of a new cluster, `name=https://host:port,...` (a name given twice has two
    /// peer URLs). Default: this node alone, `<name>=<initial-advertise-peer-urls>`.
    #[arg(long, env = "ATOLL_INITIAL_CLUSTER")]
    pub initial_cluster: Option<String>,
    /// Comma-separated peer URLs this node is reached on, as listed for it in
    /// --initial-cluster (default: --listen-peer-urls).
    #[arg(long, env = "ATOLL_INITIAL_ADVERTISE_PEER_URLS")]
    pub initial_advertise_peer_urls: Option<String>,
    /// `new` to bootstrap a cluster, `existing` to join a running one (default new). Both
    /// are ignored once the data directory holds an identity, as etcd ignores them.
    #[arg(long, env = "ATOLL_INITIAL_CLUSTER_STATE")]
    pub initial_cluster_state: Option<String>,
    /// Comma-separated key prefixes that each start a data shard of a new cluster, e.g.
    /// `/registry/events/,/registry/pods/` (default: one data shard for every key).
    #[arg(long, env = "ATOLL_INITIAL_SPLIT")]
    pub initial_split: Option<String>,
    /// Largest client request accepted, in bytes or with a unit (default 1.5MiB).
    #[arg(long, env = "ATOLL_MAX_REQUEST_BYTES")]
    pub max_request_bytes: Option<String>,
    /// Most operations in one txn branch (default 128).
    #[arg(long, env = "ATOLL_MAX_TXN_OPS")]
    pub max_txn_ops: Option<usize>,
    /// Raft log entries kept behind the applied index when the log is truncated; a replica
    /// further behind catches up by snapshot (default 10000).
    #[arg(long, env = "ATOLL_SNAPSHOT_CATCHUP_ENTRIES")]
    pub snapshot_catchup_entries: Option<u64>,
    /// Leader heartbeat interval, ms or with a unit (default 100ms).
    #[arg(long, env = "ATOLL_HEARTBEAT_INTERVAL")]
    pub heartbeat_interval: Option<String>,
    /// Election timeout, ms or with a unit (default 1000ms).
    #[arg(long, env = "ATOLL_ELECTION_TIMEOUT")]
    pub election_timeout: Option<String>,
    /// How often an idle watch that asked for progress notifications gets one, ms or with a
    /// unit (default 10m, etcd's flag of the same name).
    #[arg(long, env = "ATOLL_EXPERIMENTAL_WATCH_PROGRESS_NOTIFY_INTERVAL")]
    pub experimental_watch_progress_notify_interval: Option<String>,
    /// Most expired leases revoked per second (default 1000, etcd's leaseRevokeRate).
    #[arg(long, env = "ATOLL_LEASE_REVOKE_RATE")]
    pub lease_revoke_rate: Option<u64>,
    /// How often the meta shard's leader checkpoints remaining lease TTLs through Raft, so a
    /// leader change does not reset them; ms or with a unit, 0 turns checkpoints off
    /// (default 1m).
    #[arg(long, env = "ATOLL_LEASE_CHECKPOINT_INTERVAL")]
    pub lease_checkpoint_interval: Option<String>,
    /// etcd's check that refuses membership changes that could cost the quorum: too few
    /// started voters, or a voter the leader has not been connected to for 5 s (default
    /// true; `--strict-reconfig-check=false` turns it off).
    #[arg(
        long,
        env = "ATOLL_STRICT_RECONFIG_CHECK",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true"
    )]
    pub strict_reconfig_check: Option<bool>,
    /// bcrypt cost of the password hashes this node makes, 4 to 31 (default 10, etcd's).
    #[arg(long, env = "ATOLL_BCRYPT_COST")]
    pub bcrypt_cost: Option<u32>,
    /// Seconds an auth token stays valid (default 300, etcd's).
    #[arg(long, env = "ATOLL_AUTH_TOKEN_TTL")]
    pub auth_token_ttl: Option<u64>,
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
    /// Compaction and auto-compaction.
    #[command(flatten)]
    pub compaction: CompactionFlags,
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
    initial_cluster: Option<String>,
    initial_advertise_peer_urls: Option<Vec<String>>,
    initial_cluster_state: Option<String>,
    initial_split: Option<Vec<String>>,
    max_request_bytes: Option<String>,
    max_txn_ops: Option<usize>,
    snapshot_catchup_entries: Option<u64>,
    heartbeat_interval: Option<String>,
    election_timeout: Option<String>,
    experimental_watch_progress_notify_interval: Option<String>,
    lease_revoke_rate: Option<u64>,
    lease_checkpoint_interval: Option<String>,
    strict_reconfig_check: Option<bool>,
    bcrypt_cost: Option<u32>,
    auth_token_ttl: Option<u64>,
    cache_size: Option<String>,
    cert_file: Option<PathBuf>,
    key_file: Option<PathBuf>,
    trusted_ca_file: Option<PathBuf>,
    log_level: Option<String>,
    auto_compaction_mode: Option<String>,
    auto_compaction_retention: Option<String>,
    auto_compaction_busy_requests_per_second: Option<u64>,
    auto_compaction_max_deferral: Option<String>,
    compaction_batch_limit: Option<usize>,
    compaction_sleep_interval: Option<String>,
}

/// The resolved configuration of a node.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeConfig {
    /// Node name (default "default", as etcd).
    pub name: String,
    /// Data directory (default `./atoll-data`).
    pub data_dir: PathBuf,
    /// Client URLs to listen on (default `http://127.0.0.1:2379`, as etcd). The scheme is the
    /// etcd gRPC gateway's: `http` plaintext, `https` TLS; the native QUIC protocol on the
    /// same port (UDP) always uses TLS.
    pub listen_client_urls: Vec<String>,
    /// Client URLs to advertise (default: the listen URLs).
    pub advertise_client_urls: Vec<String>,
    /// Peer URLs (default `https://127.0.0.1:2380`).
    pub listen_peer_urls: Vec<String>,
    /// Metrics URLs (default none).
    pub listen_metrics_urls: Vec<String>,
    /// Cluster token (default "atoll-cluster").
    pub initial_cluster_token: String,
    /// How this node bootstraps or joins its cluster.
    pub cluster: ClusterConfig,
    /// Largest request (default 1.5 MiB, etcd's).
    pub max_request_bytes: usize,
    /// Most ops per txn branch (default 128, etcd's).
    pub max_txn_ops: usize,
    /// Raft log entries kept behind the applied index (default 10,000, decision D20).
    pub snapshot_catchup_entries: u64,
    /// Heartbeat interval (default 100 ms, etcd's).
    pub heartbeat_interval: Duration,
    /// Election timeout (default 1 s, etcd's).
    pub election_timeout: Duration,
    /// Interval of periodic watch progress notifications (default 10 min, etcd's).
    pub watch_progress_notify_interval: Duration,
    /// Expired leases revoked per second at most (default 1,000, etcd's).
    pub lease_revoke_rate: u64,
    /// Interval of lease checkpoints; zero: none (default 1 min, decision D16).
    pub lease_checkpoint_interval: Duration,
    /// etcd's strict reconfiguration check (default on, etcd's; decision D18).
    pub strict_reconfig_check: bool,
    /// bcrypt cost and token lifetime (etcd's `--bcrypt-cost` 10, `--auth-token-ttl` 300;
    /// decision D21).
    pub auth: crate::auth::AuthConfig,
    /// Storage block cache (default 64 MiB).
    pub cache_bytes: u64,
    /// Operator-provided certificate, key and CA, all three or none.
    pub tls_files: Option<(PathBuf, PathBuf, PathBuf)>,
    /// Log level (default info).
    pub log_level: String,
    /// Compaction and auto-compaction (default: etcd's pacing, auto-compaction off).
    pub compaction: CompactionConfig,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            name: "default".into(),
            data_dir: PathBuf::from("./atoll-data"),
            listen_client_urls: vec!["http://127.0.0.1:2379".into()],
            advertise_client_urls: Vec::new(),
            listen_peer_urls: vec!["https://127.0.0.1:2380".into()],
            listen_metrics_urls: Vec::new(),
            initial_cluster_token: "atoll-cluster".into(),
            cluster: ClusterConfig::single("default", &["https://127.0.0.1:2380".to_string()]),
            max_request_bytes: MAX_REQUEST_BYTES_DEFAULT,
            max_txn_ops: MAX_TXN_OPS_DEFAULT,
            snapshot_catchup_entries: atoll_shard::limits::RAFT_LOG_RETAINED_ENTRIES,
            heartbeat_interval: Duration::from_millis(100),
            election_timeout: Duration::from_millis(1000),
            watch_progress_notify_interval: Duration::from_secs(600),
            lease_revoke_rate: 1_000,
            lease_checkpoint_interval: Duration::from_secs(60),
            strict_reconfig_check: true,
            auth: crate::auth::AuthConfig::default(),
            cache_bytes: 64 << 20,
            tls_files: None,
            log_level: "info".into(),
            compaction: CompactionConfig::default(),
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
        let name = text(&flags.name, file.name).unwrap_or(d.name);
        let listen_peer_urls =
            list(&flags.listen_peer_urls, file.listen_peer_urls, d.listen_peer_urls);
        let advertise_peer_urls = list(
            &flags.initial_advertise_peer_urls,
            file.initial_advertise_peer_urls,
            listen_peer_urls.clone(),
        );
        let cluster = ClusterConfig::resolve(
            &name,
            advertise_peer_urls,
            text(&flags.initial_cluster, file.initial_cluster),
            text(&flags.initial_cluster_state, file.initial_cluster_state),
            flags.initial_split.as_deref().map(split_raw_list).or(file.initial_split),
        )?;
        let compaction = CompactionConfig::resolve(
            &flags.compaction,
            compaction::CompactionFile {
                auto_compaction_mode: file.auto_compaction_mode,
                auto_compaction_retention: file.auto_compaction_retention,
                auto_compaction_busy_requests_per_second: file
                    .auto_compaction_busy_requests_per_second,
                auto_compaction_max_deferral: file.auto_compaction_max_deferral,
                compaction_batch_limit: file.compaction_batch_limit,
                compaction_sleep_interval: file.compaction_sleep_interval,
            },
        )?;
        let max_request_bytes = bytes(
            "max-request-bytes",
            text(&flags.max_request_bytes, file.max_request_bytes),
            d.max_request_bytes as u64,
        )?;
        Ok(NodeConfig {
            name,
            data_dir: flags.data_dir.clone().or(file.data_dir).unwrap_or(d.data_dir),
            listen_client_urls,
            advertise_client_urls,
            listen_peer_urls,
            listen_metrics_urls: list(
                &flags.listen_metrics_urls,
                file.listen_metrics_urls,
                d.listen_metrics_urls,
            ),
            initial_cluster_token: text(&flags.initial_cluster_token, file.initial_cluster_token)
                .unwrap_or(d.initial_cluster_token),
            cluster,
            max_request_bytes: usize::try_from(max_request_bytes)
                .map_err(|_| err("--max-request-bytes is too large"))?,
            max_txn_ops: flags.max_txn_ops.or(file.max_txn_ops).unwrap_or(d.max_txn_ops),
            snapshot_catchup_entries: flags
                .snapshot_catchup_entries
                .or(file.snapshot_catchup_entries)
                .unwrap_or(d.snapshot_catchup_entries),
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
            watch_progress_notify_interval: duration(
                "experimental-watch-progress-notify-interval",
                text(
                    &flags.experimental_watch_progress_notify_interval,
                    file.experimental_watch_progress_notify_interval,
                ),
                d.watch_progress_notify_interval,
            )?,
            lease_revoke_rate: flags
                .lease_revoke_rate
                .or(file.lease_revoke_rate)
                .unwrap_or(d.lease_revoke_rate),
            lease_checkpoint_interval: duration(
                "lease-checkpoint-interval",
                text(&flags.lease_checkpoint_interval, file.lease_checkpoint_interval),
                d.lease_checkpoint_interval,
            )?,
            strict_reconfig_check: flags
                .strict_reconfig_check
                .or(file.strict_reconfig_check)
                .unwrap_or(d.strict_reconfig_check),
            auth: crate::auth::AuthConfig {
                bcrypt_cost: flags.bcrypt_cost.or(file.bcrypt_cost).unwrap_or(d.auth.bcrypt_cost),
                token_ttl: flags
                    .auth_token_ttl
                    .or(file.auth_token_ttl)
                    .map_or(d.auth.token_ttl, Duration::from_secs),
            },
            cache_bytes: bytes(
                "cache-size",
                text(&flags.cache_size, file.cache_size),
                d.cache_bytes,
            )?,
            tls_files,
            log_level: text(&flags.log_level, file.log_level).unwrap_or(d.log_level),
            compaction,
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
        if self.watch_progress_notify_interval.is_zero() {
            return Err(err("--experimental-watch-progress-notify-interval must not be zero"));
        }
        if self.lease_revoke_rate < 2 {
            // etcd's loop takes rate/2 leases per half-second pass; below 2 it takes none.
            return Err(err("--lease-revoke-rate must be at least 2 (leases per second)"));
        }
        if !(4..=31).contains(&self.auth.bcrypt_cost) {
            // bcrypt's own bounds (etcd refuses the same).
            return Err(err("--bcrypt-cost must be between 4 and 31"));
        }
        if self.auth.token_ttl.is_zero() {
            return Err(err("--auth-token-ttl must be at least 1 (seconds)"));
        }
        if self.max_txn_ops == 0 {
            return Err(err("--max-txn-ops must be at least 1"));
        }
        if self.snapshot_catchup_entries == 0 {
            return Err(err("--snapshot-catchup-entries must be at least 1"));
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
        self.cluster.validate(&self.name, &self.initial_cluster_token)?;
        self.compaction.validate()?;
        if !matches!(self.log_level.as_str(), "error" | "warn" | "info" | "debug" | "trace") {
            return Err(err(format!(
                "--log-level '{}': use error, warn, info, debug or trace",
                self.log_level
            )));
        }
        Ok(())
    }

    /// The members of a new cluster with their derived IDs (etcd's rule, so every node
    /// given the same flags derives the same IDs). Only this node's client URLs are known.
    pub fn initial_members(&self) -> Vec<Member> {
        self.cluster
            .initial_cluster
            .iter()
            .map(|m| Member {
                id: NodeId(member_id(&m.peer_urls, &self.initial_cluster_token)),
                name: m.name.clone(),
                peer_urls: m.peer_urls.clone(),
                client_urls: if m.name == self.name {
                    self.advertise_client_urls.clone()
                } else {
                    Vec::new()
                },
                is_learner: false,
            })
            .collect()
    }

    /// This node's member ID and the cluster ID as derived from the initial cluster flags;
    /// what a new data directory stores ([`NodeIdentity::load_or_init`]).
    pub fn initial_identity(&self) -> NodeIdentity {
        let ids: Vec<u64> = self.initial_members().iter().map(|m| m.id.0).collect();
        NodeIdentity {
            member_id: member_id(
                &self.cluster.initial_advertise_peer_urls,
                &self.initial_cluster_token,
            ),
            cluster_id: cluster_id(&ids),
        }
    }

    /// Election timeout in heartbeat ticks.
    pub fn election_ticks(&self) -> usize {
        (self.election_timeout.as_millis() / self.heartbeat_interval.as_millis().max(1)).max(2)
            as usize
    }

    /// etcd's minimum lease TTL in seconds: `ceil(3 * election ticks / 2 * heartbeat)`,
    /// so a lease outlives an election (etcd's `minTTL` in `server/etcdserver/server.go`).
    pub fn min_lease_ttl_seconds(&self) -> i64 {
        let ticks = (3 * self.election_ticks() / 2) as u128;
        let millis = ticks * self.heartbeat_interval.as_millis();
        i64::try_from(millis.div_ceil(1000)).unwrap_or(i64::MAX)
    }

    /// etcd's request timeout: 5 s plus two election timeouts.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(5) + self.election_timeout * 2
    }
}

fn split_list(s: &str) -> Vec<String> {
    s.split(',').map(str::trim).filter(|p| !p.is_empty()).map(String::from).collect()
}

/// Splits a comma list keeping empty entries, so that validation can refuse them instead of
/// silently dropping a typo such as `/a/,,/b/`. An empty flag is an empty list.
fn split_raw_list(s: &str) -> Vec<String> {
    if s.is_empty() { Vec::new() } else { s.split(',').map(String::from).collect() }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `--initial-cluster-state`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClusterState {
    /// Bootstrap a new cluster from `--initial-cluster` (the default).
    New,
    /// Join a running cluster that this node was added to.
    Existing,
}

/// One member of `--initial-cluster`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InitialMember {
    /// The member's `--name`.
    pub name: String,
    /// Its peer URLs, in the order given.
    pub peer_urls: Vec<String>,
}

/// How a node bootstraps or joins its cluster: etcd's `--initial-*` flags, plus the
/// prefixes the first shard map is split at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterConfig {
    /// This node's peer URLs as the cluster knows them (default: the listen peer URLs).
    pub initial_advertise_peer_urls: Vec<String>,
    /// The members of a new cluster, in the order given (default: this node alone).
    pub initial_cluster: Vec<InitialMember>,
    /// New or existing (default new).
    pub initial_cluster_state: ClusterState,
    /// Prefixes that each start a data shard of a new cluster (default none).
    pub initial_split: Vec<Vec<u8>>,
}

impl ClusterConfig {
    /// A new cluster of one member, `name` at `peer_urls`: what a node without
    /// `--initial-cluster` bootstraps, as etcd's default `default=<advertise URLs>`.
    pub fn single(name: &str, peer_urls: &[String]) -> ClusterConfig {
        ClusterConfig {
            initial_advertise_peer_urls: peer_urls.to_vec(),
            initial_cluster: vec![InitialMember {
                name: name.to_string(),
                peer_urls: peer_urls.to_vec(),
            }],
            initial_cluster_state: ClusterState::New,
            initial_split: Vec::new(),
        }
    }

    fn resolve(
        name: &str,
        advertise_peer_urls: Vec<String>,
        initial_cluster: Option<String>,
        state: Option<String>,
        split: Option<Vec<String>>,
    ) -> Result<ClusterConfig, ConfigError> {
        let initial_cluster = match initial_cluster {
            Some(text) => parse_initial_cluster(&text)?,
            None => ClusterConfig::single(name, &advertise_peer_urls).initial_cluster,
        };
        let initial_cluster_state = match state.as_deref() {
            None | Some("new") => ClusterState::New,
            Some("existing") => ClusterState::Existing,
            Some(other) => {
                return Err(err(format!("--initial-cluster-state '{other}': use new or existing")));
            }
        };
        Ok(ClusterConfig {
            initial_advertise_peer_urls: advertise_peer_urls,
            initial_cluster,
            initial_cluster_state,
            initial_split: split.unwrap_or_default().into_iter().map(String::into_bytes).collect(),
        })
    }

    /// Checks the cluster settings of the node named `name`: well-formed peer URLs, each
    /// URL belonging to one member, this node listed with exactly its advertised URLs, and
    /// a usable split list.
    fn validate(&self, name: &str, token: &str) -> Result<(), ConfigError> {
        if self.initial_advertise_peer_urls.is_empty() {
            return Err(err("--initial-advertise-peer-urls must name at least one URL"));
        }
        for url in &self.initial_advertise_peer_urls {
            check_peer_url("--initial-advertise-peer-urls", url)?;
        }
        let mut seen = std::collections::BTreeSet::new();
        for member in &self.initial_cluster {
            for url in &member.peer_urls {
                check_peer_url("--initial-cluster", url)?;
                if !seen.insert(url.as_str()) {
                    return Err(err(format!(
                        "--initial-cluster lists peer URL '{url}' twice; each URL belongs to one member"
                    )));
                }
            }
        }
        let Some(me) = self.initial_cluster.iter().find(|m| m.name == name) else {
            return Err(err(format!(
                "--initial-cluster has no member named '{name}' (this node's --name); add {name}=<its peer URL>"
            )));
        };
        if sorted(&me.peer_urls) != sorted(&self.initial_advertise_peer_urls) {
            return Err(err(format!(
                "--initial-cluster gives '{name}' the peer URLs {} but --initial-advertise-peer-urls is {}; they must be the same",
                me.peer_urls.join(","),
                self.initial_advertise_peer_urls.join(",")
            )));
        }
        let ids: std::collections::BTreeSet<u64> =
            self.initial_cluster.iter().map(|m| member_id(&m.peer_urls, token)).collect();
        if ids.len() != self.initial_cluster.len() {
            return Err(err(
                "two --initial-cluster members derive the same member ID; change --initial-cluster-token",
            ));
        }
        bootstrap_map(&self.initial_split, &[]).map_err(|e| err(e.to_string()))?;
        Ok(())
    }
}

/// Parses `name=URL,name=URL,...`. A name given twice gets both URLs, as in etcd.
fn parse_initial_cluster(text: &str) -> Result<Vec<InitialMember>, ConfigError> {
    let mut members: Vec<InitialMember> = Vec::new();
    for entry in text.split(',').map(str::trim) {
        let parsed = entry.split_once('=').map(|(n, u)| (n.trim(), u.trim()));
        let Some((name, url)) = parsed.filter(|(n, u)| !n.is_empty() && !u.is_empty()) else {
            return Err(err(format!(
                "--initial-cluster entry '{entry}' must be name=URL, e.g. n1=https://10.0.0.1:2380"
            )));
        };
        match members.iter_mut().find(|m| m.name == name) {
            Some(member) => member.peer_urls.push(url.to_string()),
            None => members
                .push(InitialMember { name: name.to_string(), peer_urls: vec![url.to_string()] }),
        }
    }
    Ok(members)
}

/// Checks that `url` is `http(s)://host:port` with nothing after the port (etcd refuses a
/// path in a peer URL). The host is not resolved: peers' names may not resolve yet.
fn check_peer_url(flag: &str, url: &str) -> Result<(), ConfigError> {
    let bad = || err(format!("{flag}: URL '{url}' must look like https://host:port"));
    let rest =
        url.strip_prefix("https://").or_else(|| url.strip_prefix("http://")).ok_or_else(bad)?;
    let (host, port) = rest.rsplit_once(':').ok_or_else(bad)?;
    let port_ok = port.parse::<u16>().is_ok_and(|p| p != 0);
    if host.is_empty() || host.contains('/') || !port_ok {
        return Err(bad());
    }
    Ok(())
}

fn sorted(urls: &[String]) -> Vec<&str> {
    let mut v: Vec<&str> = urls.iter().map(String::as_str).collect();
    v.sort_unstable();
    v
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
