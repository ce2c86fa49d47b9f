//! A real etcd that a scenario starts on loopback for comparison, in a temporary directory,
//! with the same guards as Atoll's nodes ([`super::node`]): dropping an [`EtcdNode`] (at the
//! end, on an error, or when ctrl-c drops the scenario) kills the process, waits for it, then
//! removes the directory. etcd keeps its defaults, its durability included (an fsync of the
//! WAL per commit); only the names, ports and data directory are given.

use super::node::NodeDir;
use super::ports::free_port;
use super::process::{ChildGuard, ServeWait, Watched, wait_serving};
use crate::etcd_client::{EtcdClient, EtcdConfig};
use crate::workload::get_request;
use anyhow::{Context as _, bail};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// Where Debian's `etcd-server` package installs etcd.
pub const ETCD_BIN_DEFAULT: &str = "/usr/bin/etcd";
/// How long etcd may take to serve a linearizable read after spawning (a fresh single member
/// elects itself after about one election timeout, 1 s by default), and the pause between
/// probes.
const SERVE_WAIT: ServeWait =
    ServeWait { timeout: Duration::from_secs(60), poll: Duration::from_millis(50) };
/// Most members a comparison starts.
pub const MEMBERS_MAX: usize = 7;

/// One etcd process and its directory; killed and reaped on drop, before the directory is
/// removed (fields drop in order).
#[derive(Debug)]
struct EtcdMember {
    process: ChildGuard,
    dir: NodeDir,
    client_port: u16,
}

/// A running etcd cluster of one or more members; every member is killed and its directory
/// removed on drop.
#[derive(Debug)]
pub struct EtcdNode {
    members: Vec<EtcdMember>,
}

/// A member's name: `e1`, `e2`...
fn member_name(index: usize) -> String {
    format!("e{}", index + 1)
}

/// The flags of member `index` of a cluster whose members use `ports` (client, peer): etcd's
/// defaults otherwise, its durability included.
pub fn member_args(
    index: usize,
    ports: &[(u16, u16)],
    data_dir: &Path,
    token: &str,
) -> Vec<String> {
    let cluster = ports
        .iter()
        .enumerate()
        .map(|(i, (_, peer))| format!("{}=http://127.0.0.1:{peer}", member_name(i)))
        .collect::<Vec<_>>()
        .join(",");
    let (client, peer) = ports[index];
    let client_url = format!("http://127.0.0.1:{client}");
    let peer_url = format!("http://127.0.0.1:{peer}");
    vec![
        "--name".into(),
        member_name(index),
        "--data-dir".into(),
        data_dir.display().to_string(),
        "--listen-client-urls".into(),
        client_url.clone(),
        "--advertise-client-urls".into(),
        client_url,
        "--listen-peer-urls".into(),
        peer_url.clone(),
        "--initial-advertise-peer-urls".into(),
        peer_url,
        "--initial-cluster".into(),
        cluster,
        "--initial-cluster-state".into(),
        "new".into(),
        "--initial-cluster-token".into(),
        token.into(),
    ]
}

impl EtcdNode {
    /// Starts a fresh one-member etcd from `bin` and waits until it answers a linearizable
    /// read.
    pub async fn start(bin: &Path, tag: &str) -> anyhow::Result<EtcdNode> {
        EtcdNode::start_members(bin, tag, 1).await
    }

    /// Starts a fresh etcd cluster of `members` members from `bin` and waits until it answers
    /// a linearizable read.
    pub async fn start_members(bin: &Path, tag: &str, members: usize) -> anyhow::Result<EtcdNode> {
        if members == 0 || members > MEMBERS_MAX {
            bail!("an etcd cluster has 1 to {MEMBERS_MAX} members, not {members}");
        }
        let ports = (0..members)
            .map(|_| Ok((free_port()?, free_port()?)))
            .collect::<anyhow::Result<Vec<_>>>()?;
        // A token of its own, so members of two runs can never join each other.
        let token = format!("atoll-bench-{tag}-{}-{}", std::process::id(), ports[0].0);
        let mut node = EtcdNode { members: Vec::with_capacity(members) };
        for index in 0..members {
            let dir = NodeDir::create(&format!("{tag}-{}", member_name(index)))?;
            let log = std::fs::File::create(dir.log_path())
                .with_context(|| format!("cannot create {}", dir.log_path().display()))?;
            let child = Command::new(bin)
                .args(member_args(index, &ports, &dir.data_dir(), &token))
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log)
                .spawn()
                .with_context(|| format!("cannot start {}", bin.display()))?;
            let process = ChildGuard::new(child);
            node.members.push(EtcdMember { process, dir, client_port: ports[index].0 });
        }
        node.wait_serving().await?;
        Ok(node)
    }

    /// The members' names (`e1`...) and process IDs, first member first.
    pub fn pids(&self) -> Vec<(String, u32)> {
        let pids = self.members.iter().map(|m| m.process.pid());
        pids.enumerate().map(|(i, pid)| (member_name(i), pid)).collect()
    }

    /// The client endpoint configuration (plain http), first member first.
    pub fn config(&self) -> EtcdConfig {
        let endpoints =
            self.members.iter().map(|m| format!("127.0.0.1:{}", m.client_port)).collect();
        EtcdConfig { endpoints, ca_pem: None }
    }

    /// Probes until a linearizable read succeeds: only then has a leader been elected. A
    /// member that exits meanwhile fails it at once.
    async fn wait_serving(&mut self) -> anyhow::Result<()> {
        let config = self.config();
        let members = self.members.iter_mut().enumerate();
        let mut watched: Vec<Watched<'_>> = members
            .map(|(i, m)| Watched::new(member_name(i), &mut m.process, m.dir.log_path()))
            .collect();
        wait_serving("etcd", &mut watched, SERVE_WAIT, || probe(&config)).await
    }
}

async fn probe(config: &EtcdConfig) -> anyhow::Result<()> {
    let client = EtcdClient::connect(config, 0).await?;
    client.range(get_request(b"/".to_vec(), false)).await?;
    Ok(())
}

/// The version `bin --version` reports (`etcd Version: 3.4.23` → `3.4.23`), if any.
pub fn etcd_version(bin: &Path) -> Option<String> {
    let output = Command::new(bin).arg("--version").stdin(Stdio::null()).output().ok()?;
    parse_version(&String::from_utf8_lossy(&output.stdout))
}

fn parse_version(text: &str) -> Option<String> {
    text.lines().find_map(|line| line.strip_prefix("etcd Version:")).map(|v| v.trim().to_string())
}

/// The etcd binary: `--etcd-bin`, else Debian's path.
pub fn default_etcd_bin() -> PathBuf {
    PathBuf::from(ETCD_BIN_DEFAULT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_line_is_parsed() {
        let text = "etcd Version: 3.4.23\nGit SHA: Not provided\nGo Version: go1.19.8\n";
        assert_eq!(parse_version(text).as_deref(), Some("3.4.23"));
        assert_eq!(parse_version("nothing"), None);
    }

    #[test]
    fn members_know_each_other_and_start_a_new_cluster() {
        let ports = [(1, 2), (3, 4), (5, 6)];
        let args = member_args(2, &ports, Path::new("/d"), "tok");
        let value = |flag: &str| {
            let at = args.iter().position(|f| f == flag).expect(flag);
            args[at + 1].clone()
        };
        assert_eq!(value("--name"), "e3");
        assert_eq!(value("--listen-client-urls"), "http://127.0.0.1:5");
        assert_eq!(value("--initial-advertise-peer-urls"), "http://127.0.0.1:6");
        assert_eq!(
            value("--initial-cluster"),
            "e1=http://127.0.0.1:2,e2=http://127.0.0.1:4,e3=http://127.0.0.1:6"
        );
        assert_eq!(
            (value("--initial-cluster-state"), value("--data-dir")),
            ("new".into(), "/d".into())
        );
    }

    #[tokio::test]
    async fn an_etcd_that_exits_at_once_is_reported_with_its_log_and_cleaned_up() {
        // /bin/false stands in for an etcd that refuses to start.
        let err =
            EtcdNode::start(Path::new("/bin/false"), "test-etcd-fail").await.expect_err("exits");
        let text = err.to_string();
        assert!(text.contains("exited") && !text.contains('\n'), "{text}");
    }
}
