//! A real etcd that a scenario starts on loopback for comparison, in a temporary directory,
//! with the same guards as Atoll's nodes ([`super::node`]): dropping an [`EtcdNode`] (at the
//! end, on an error, or when ctrl-c drops the scenario) kills the process, waits for it, then
//! removes the directory. etcd keeps its defaults, its durability included (an fsync of the
//! WAL per commit); only the names, ports and data directory are given.

use super::node::{NodeDir, log_tail};
use super::ports::free_port;
use crate::etcd_client::{EtcdClient, EtcdConfig};
use crate::workload::get_request;
use anyhow::{Context as _, bail};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where Debian's `etcd-server` package installs etcd.
pub const ETCD_BIN_DEFAULT: &str = "/usr/bin/etcd";
/// How long etcd may take to serve a linearizable read after spawning: a fresh single member
/// elects itself after about one election timeout (1 s by default).
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// Pause between two readiness probes.
const READY_POLL: Duration = Duration::from_millis(50);
/// The member's name; any name works for a one-member cluster.
const MEMBER_NAME: &str = "bench";

/// An etcd process; killed and reaped on drop. Fields drop in order: the process is killed
/// before its directory is removed.
#[derive(Debug)]
pub struct EtcdNode {
    child: Child,
    dir: NodeDir,
    client_port: u16,
}

impl EtcdNode {
    /// Starts a fresh one-member etcd from `bin` and waits until it answers a linearizable
    /// read.
    pub async fn start(bin: &Path, tag: &str) -> anyhow::Result<EtcdNode> {
        let dir = NodeDir::create(tag)?;
        let client_port = free_port()?;
        let peer_port = free_port()?;
        let log = std::fs::File::create(dir.log_path())
            .with_context(|| format!("cannot create {}", dir.log_path().display()))?;
        let client_url = format!("http://127.0.0.1:{client_port}");
        let peer_url = format!("http://127.0.0.1:{peer_port}");
        let mut command = Command::new(bin);
        command
            .arg("--name")
            .arg(MEMBER_NAME)
            .arg("--data-dir")
            .arg(dir.data_dir())
            .args(["--listen-client-urls", &client_url, "--advertise-client-urls", &client_url])
            .args(["--listen-peer-urls", &peer_url, "--initial-advertise-peer-urls", &peer_url])
            .arg("--initial-cluster")
            .arg(format!("{MEMBER_NAME}={peer_url}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        let child = command.spawn().with_context(|| format!("cannot start {}", bin.display()))?;
        let mut node = EtcdNode { child, dir, client_port };
        node.wait_serving().await?;
        Ok(node)
    }

    /// The client endpoint configuration (plain http).
    pub fn config(&self) -> EtcdConfig {
        EtcdConfig { endpoints: vec![format!("127.0.0.1:{}", self.client_port)], ca_pem: None }
    }

    /// Probes until a linearizable read succeeds: only then has the member elected itself.
    async fn wait_serving(&mut self) -> anyhow::Result<()> {
        let started = Instant::now();
        let mut last_error = String::from("no probe answered");
        while started.elapsed() < READY_TIMEOUT {
            if let Some(status) = self.child.try_wait()? {
                bail!("etcd exited ({status}) before serving; {}", log_tail(&self.dir.log_path()));
            }
            match EtcdClient::connect(&self.config(), 0).await {
                Ok(client) => match client.range(get_request(b"/".to_vec(), false)).await {
                    Ok(_) => return Ok(()),
                    Err(e) => last_error = e.to_string(),
                },
                Err(e) => last_error = e.to_string(),
            }
            tokio::time::sleep(READY_POLL).await;
        }
        bail!(
            "etcd did not serve within {READY_TIMEOUT:?} (last probe: {last_error}); {}",
            log_tail(&self.dir.log_path())
        )
    }
}

impl Drop for EtcdNode {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
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

    #[tokio::test]
    async fn an_etcd_that_exits_at_once_is_reported_with_its_log_and_cleaned_up() {
        // /bin/false stands in for an etcd that refuses to start.
        let err =
            EtcdNode::start(Path::new("/bin/false"), "test-etcd-fail").await.expect_err("exits");
        let text = err.to_string();
        assert!(text.contains("exited") && !text.contains('\n'), "{text}");
    }
}
