//! An Atoll cluster of N members that a comparison starts on loopback, set up as an operator
//! would (`deploy/local/up`): one CA made by `atoll certs ca`, one certificate per member by
//! `atoll certs node`, etcd's flags (`--name`, `--initial-cluster`, peer URLs over QUIC with
//! mutual TLS) and no initial split, so the data is one Raft group as in etcd. Default
//! heartbeat and election timeouts, as etcd keeps its own. Dropping the cluster kills every
//! member and removes every directory, also on an error or ctrl-c.

use super::node::{NodeDir, NodeProcess, check_atoll_bin};
use super::ports::free_port;
use super::process::{ServeWait, Watched, wait_serving};
use crate::etcd_client::{EtcdClient, EtcdConfig};
use crate::workload::get_request;
use anyhow::{Context as _, bail};
use atoll_router::{Client, ClientConfig, Trust};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// How long a fresh cluster may take to elect a leader and answer a linearizable read through
/// both protocols after every member printed its ready line, and the pause between probes.
const SERVE_WAIT: ServeWait =
    ServeWait { timeout: Duration::from_secs(60), poll: Duration::from_millis(50) };
/// Timeout of one readiness probe, so a probe sent before the election is retried soon.
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);

/// One member: its process, then its directory (fields drop in order: killed, then removed).
#[derive(Debug)]
struct Member {
    process: NodeProcess,
    dir: NodeDir,
    client_port: u16,
}

/// A running Atoll cluster. Members drop before the directory holding the CA.
#[derive(Debug)]
pub struct AtollCluster {
    members: Vec<Member>,
    certs: NodeDir,
}

/// A member's name: `n1`, `n2`...
fn member_name(index: usize) -> String {
    format!("n{}", index + 1)
}

/// The `--initial-cluster` value of members on `peer_ports`.
pub fn initial_cluster(peer_ports: &[u16]) -> String {
    let members = peer_ports
        .iter()
        .enumerate()
        .map(|(i, port)| format!("{}=https://127.0.0.1:{port}", member_name(i)));
    members.collect::<Vec<_>>().join(",")
}

/// The flags member `index` gets besides those of a single node: etcd's cluster flags and the
/// certificates `atoll certs` wrote under `certs`.
pub fn member_flags(index: usize, peer_ports: &[u16], certs: &Path) -> Vec<String> {
    let own = certs.join(format!("certs-{}", member_name(index)));
    let path = |p: PathBuf| p.display().to_string();
    vec![
        "--name".into(),
        member_name(index),
        "--initial-cluster".into(),
        initial_cluster(peer_ports),
        "--initial-advertise-peer-urls".into(),
        format!("https://127.0.0.1:{}", peer_ports[index]),
        "--cert-file".into(),
        path(own.join("node.pem")),
        "--key-file".into(),
        path(own.join("node-key.pem")),
        "--trusted-ca-file".into(),
        path(certs.join("ca/ca.pem")),
    ]
}

impl AtollCluster {
    /// Starts `members` fresh members from `bin` and waits until the cluster answers a
    /// linearizable read over QUIC and over gRPC.
    pub async fn start(bin: &Path, tag: &str, members: usize) -> anyhow::Result<AtollCluster> {
        AtollCluster::start_with(bin, tag, members, &[]).await
    }

    /// [`AtollCluster::start`] with `extra` flags for every member (`--initial-split`...).
    pub async fn start_with(
        bin: &Path,
        tag: &str,
        members: usize,
        extra: &[String],
    ) -> anyhow::Result<AtollCluster> {
        check_atoll_bin(bin)?;
        let certs = NodeDir::create(&format!("{tag}-certs"))?;
        make_certs(bin, certs.root(), members).await?;
        let peer_ports = (0..members).map(|_| free_port()).collect::<anyhow::Result<Vec<_>>>()?;
        let mut cluster = AtollCluster { members: Vec::with_capacity(members), certs };
        for index in 0..members {
            let dir = NodeDir::create(&format!("{tag}-{}", member_name(index)))?;
            let client_port = free_port()?;
            let mut flags = member_flags(index, &peer_ports, cluster.certs.root());
            flags.extend_from_slice(extra);
            let process = NodeProcess::spawn(bin, &dir, client_port, peer_ports[index], &flags)?;
            cluster.members.push(Member { process, dir, client_port });
        }
        for member in &mut cluster.members {
            let log = member.dir.log_path();
            member.process.wait_ready(&log).await?;
        }
        cluster.wait_serving().await?;
        Ok(cluster)
    }

    /// The members' names (`n1`...) and process IDs, first member first.
    pub fn pids(&self) -> Vec<(String, u32)> {
        let pids = self.members.iter().map(|m| m.process.pid());
        pids.enumerate().map(|(i, pid)| (member_name(i), pid)).collect()
    }

    /// Data shards in the cluster's map, as the meta shard holds it (decision D23).
    pub async fn shard_count(&self) -> anyhow::Result<usize> {
        let client = Client::connect(self.client_config()?).await?;
        let req = atoll_proto::shard_map::ShardMapRequest { linearizable: true };
        let resp = client.shard_map(req).await.context("cannot read the shard map")?;
        Ok(resp.map.shards.len())
    }

    /// The members' client endpoints, first member first.
    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(|m| format!("127.0.0.1:{}", m.client_port)).collect()
    }

    /// A native client configuration for every member, trusting the cluster CA.
    pub fn client_config(&self) -> anyhow::Result<ClientConfig> {
        let cas = atoll_router::tls::read_pem_certs(&self.certs.root().join("ca/ca.pem"))?;
        Ok(ClientConfig::new(self.endpoints(), Trust::CaDer(cas)))
    }

    /// An etcd gRPC configuration for every member's gateway (plaintext, as the client URLs
    /// are `http://`).
    pub fn etcd_config(&self) -> EtcdConfig {
        EtcdConfig { endpoints: self.endpoints(), ca_pem: None }
    }

    /// Probes until a linearizable read succeeds through both protocols: only then is there a
    /// leader and does the gateway forward. A member that exits meanwhile fails it at once.
    async fn wait_serving(&mut self) -> anyhow::Result<()> {
        let mut config = self.client_config()?;
        config.dial_timeout = PROBE_TIMEOUT;
        config.request_timeout = PROBE_TIMEOUT;
        let etcd = self.etcd_config();
        let what = format!("the {}-member cluster", self.members.len());
        let members = self.members.iter_mut().enumerate();
        let mut watched: Vec<Watched<'_>> = members
            .map(|(i, m)| Watched::new(member_name(i), m.process.guard(), m.dir.log_path()))
            .collect();
        let (config, etcd) = (&config, &etcd);
        wait_serving(&what, &mut watched, SERVE_WAIT, || probe_both(config, etcd)).await
    }
}

async fn probe_both(native: &ClientConfig, etcd: &EtcdConfig) -> anyhow::Result<()> {
    let client = Client::connect(native.clone()).await?;
    client.range(get_request(b"/".to_vec(), false)).await?;
    let grpc = EtcdClient::connect(etcd, 0).await?;
    grpc.range(get_request(b"/".to_vec(), false)).await?;
    Ok(())
}

/// Runs `atoll certs ca` and `atoll certs node` for each member under `dir`.
async fn make_certs(bin: &Path, dir: &Path, members: usize) -> anyhow::Result<()> {
    let ca = dir.join("ca");
    let mut runs =
        vec![vec!["certs".into(), "ca".into(), "--dir".into(), ca.display().to_string()]];
    for index in 0..members {
        let out = dir.join(format!("certs-{}", member_name(index)));
        runs.push(vec![
            "certs".into(),
            "node".into(),
            "--ca-dir".into(),
            ca.display().to_string(),
            "--out".into(),
            out.display().to_string(),
            "--hosts".into(),
            "127.0.0.1".into(),
        ]);
    }
    let bin = bin.to_path_buf();
    // Short child processes, but still blocking ones: off the runtime's threads.
    tokio::task::spawn_blocking(move || {
        for args in runs {
            let output = Command::new(&bin)
                .args(&args)
                .stdin(Stdio::null())
                .output()
                .with_context(|| format!("cannot run {} {}", bin.display(), args.join(" ")))?;
            if !output.status.success() {
                let stderr = String::from_utf8_lossy(&output.stderr);
                bail!("`atoll {}` failed: {}", args[..2].join(" "), stderr.trim());
            }
        }
        Ok(())
    })
    .await?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_get_etcd_cluster_flags_and_their_own_certificates() {
        assert_eq!(
            initial_cluster(&[7001, 7002]),
            "n1=https://127.0.0.1:7001,n2=https://127.0.0.1:7002"
        );
        let flags = member_flags(1, &[7001, 7002, 7003], Path::new("/c"));
        let value = |flag: &str| {
            let at = flags.iter().position(|f| f == flag).expect(flag);
            flags[at + 1].clone()
        };
        assert_eq!(value("--name"), "n2");
        assert_eq!(value("--initial-advertise-peer-urls"), "https://127.0.0.1:7002");
        assert_eq!(value("--cert-file"), "/c/certs-n2/node.pem");
        assert_eq!(value("--key-file"), "/c/certs-n2/node-key.pem");
        assert_eq!(value("--trusted-ca-file"), "/c/ca/ca.pem");
        assert!(value("--initial-cluster").ends_with("n3=https://127.0.0.1:7003"));
    }

    #[tokio::test]
    async fn a_failing_certs_command_is_one_line_and_leaves_nothing_behind() {
        // /bin/false stands in for an atoll whose `certs ca` fails.
        let err = AtollCluster::start(Path::new("/bin/false"), "test-cluster", 3)
            .await
            .expect_err("certs fail");
        let text = err.to_string();
        assert!(text.contains("atoll certs ca") && !text.contains('\n'), "{text}");
        let leftovers = std::fs::read_dir(std::env::temp_dir())
            .expect("tmp")
            .filter_map(Result::ok)
            .filter(|e| {
                let name = e.file_name().to_string_lossy().to_string();
                name.starts_with(&format!("atoll-bench-test-cluster-certs-{}-", std::process::id()))
            })
            .count();
        assert_eq!(leftovers, 0);
    }
}
