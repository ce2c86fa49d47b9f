//! `atoll` processes that a scenario starts on loopback, each in a temporary directory, and
//! the guards that clean up after them: dropping a [`Node`] (at the end, on an error, or when
//! ctrl-c drops the scenario) kills the process, waits for it, then removes the directory.

use super::ports::free_port;
use super::process::ChildGuard;
use anyhow::{Context as _, anyhow, bail};
use atoll_router::{ClientConfig, Trust};
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};

/// The line `atoll` prints on stdout once it serves clients.
const READY_LINE: &str = "atoll: ready to serve clients on";
/// How long a node may take to print its ready line: generous, as a restart may open a large
/// store on a slow, shared disk.
const READY_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a node may take to exit after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// Lines of the node's log quoted when it fails to start.
const LOG_TAIL_LINES: usize = 5;

/// Temporary directories made by this process, numbered so that several never collide.
static DIRS_MADE: AtomicU64 = AtomicU64::new(0);

/// A temporary directory holding a node's data directory, its log and its per-user data
/// directory (so its development CA copy lands here, not in the user's home). Removed on drop.
#[derive(Debug)]
pub struct NodeDir {
    root: PathBuf,
}

impl NodeDir {
    /// Creates `<tmp>/atoll-bench-<tag>-<pid>-<n>`.
    pub fn create(tag: &str) -> anyhow::Result<NodeDir> {
        let n = DIRS_MADE.fetch_add(1, Ordering::Relaxed);
        let name = format!("atoll-bench-{tag}-{}-{n}", std::process::id());
        let root = std::env::temp_dir().join(name);
        std::fs::create_dir_all(&root)
            .with_context(|| format!("cannot create temporary directory {}", root.display()))?;
        Ok(NodeDir { root })
    }

    /// The node's `--data-dir`.
    pub fn data_dir(&self) -> PathBuf {
        self.root.join("data")
    }

    /// The node's stderr.
    pub fn log_path(&self) -> PathBuf {
        self.root.join("node.log")
    }

    /// The development CA the node writes on first start.
    pub fn ca_path(&self) -> PathBuf {
        self.data_dir().join("certs/ca.pem")
    }

    fn xdg_data_home(&self) -> PathBuf {
        self.root.join("xdg")
    }

    /// The directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }
}

impl Drop for NodeDir {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.root) {
            eprintln!("atoll-bench: cannot remove {}: {e}", self.root.display());
        }
    }
}

/// How to stop a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopHow {
    /// SIGTERM: a graceful shutdown.
    Term,
    /// SIGKILL (kill -9): a crash.
    Kill,
}

/// A running `atoll` process; killed and reaped on drop.
#[derive(Debug)]
pub struct NodeProcess {
    process: ChildGuard,
    spawned_at: Instant,
    stdout_lines: UnboundedReceiver<String>,
}

impl NodeProcess {
    /// Starts `bin` on `dir`, serving clients on `client_port` and peers on `peer_port`, with
    /// `extra` flags (a cluster member's name, peers and certificates).
    pub fn spawn(
        bin: &Path,
        dir: &NodeDir,
        client_port: u16,
        peer_port: u16,
        extra: &[String],
    ) -> anyhow::Result<NodeProcess> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.log_path())
            .with_context(|| format!("cannot open {}", dir.log_path().display()))?;
        let mut command = Command::new(bin);
        command
            .arg("--data-dir")
            .arg(dir.data_dir())
            // Plaintext gRPC on the client port, as etcd's default; QUIC always uses TLS.
            .arg("--listen-client-urls")
            .arg(format!("http://127.0.0.1:{client_port}"))
            .arg("--listen-peer-urls")
            .arg(format!("https://127.0.0.1:{peer_port}"))
            .args(["--log-level", "warn"])
            .args(extra)
            .env("XDG_DATA_HOME", dir.xdg_data_home())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log);
        let spawned_at = Instant::now();
        let mut child =
            command.spawn().with_context(|| format!("cannot start {}", bin.display()))?;
        let stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout pipe to the node"))?;
        let (lines_tx, stdout_lines) = unbounded_channel();
        // A plain thread: the pipe is blocking, and it ends by itself at the node's exit.
        std::thread::Builder::new().name("atoll-stdout".into()).spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if lines_tx.send(line).is_err() {
                    break;
                }
            }
        })?;
        Ok(NodeProcess { process: ChildGuard::new(child), spawned_at, stdout_lines })
    }

    /// Its process ID.
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// The guard of the process, for [`super::process::wait_serving`].
    pub fn guard(&mut self) -> &mut ChildGuard {
        &mut self.process
    }

    /// When the process was started.
    pub fn spawned_at(&self) -> Instant {
        self.spawned_at
    }

    /// Waits for the ready line; returns the time since spawn. Fails with the log's last lines
    /// if the node exits first.
    pub async fn wait_ready(&mut self, log: &Path) -> anyhow::Result<Duration> {
        let deadline = self.spawned_at + READY_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                bail!("the node printed no ready line within {READY_TIMEOUT:?}; {}", log_tail(log));
            }
            match tokio::time::timeout(left, self.stdout_lines.recv()).await {
                Ok(Some(line)) if line.starts_with(READY_LINE) => {
                    return Ok(self.spawned_at.elapsed());
                }
                Ok(Some(_)) | Err(_) => {}
                Ok(None) => {
                    let status = self.process.wait_exit(STOP_TIMEOUT).await?;
                    bail!("the node exited ({status}) before serving; {}", log_tail(log));
                }
            }
        }
    }

    /// Stops the process; returns how long it took to exit.
    pub async fn stop(&mut self, how: StopHow) -> anyhow::Result<Duration> {
        let asked = Instant::now();
        match how {
            StopHow::Kill => self.process.kill()?,
            StopHow::Term => self.process.terminate()?,
        }
        self.process.wait_exit(STOP_TIMEOUT).await?;
        Ok(asked.elapsed())
    }
}

/// Fails with how to build it if there is no atoll binary at `bin`.
pub fn check_atoll_bin(bin: &Path) -> anyhow::Result<()> {
    if !bin.is_file() {
        bail!(
            "atoll binary not found at {}; build it with `cargo build --release --bin atoll` \
             or pass --atoll-bin",
            bin.display()
        );
    }
    Ok(())
}

/// The last lines of a node's log, on one line, for an error message.
pub(crate) fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let tail = &lines[lines.len().saturating_sub(LOG_TAIL_LINES)..];
    if tail.is_empty() {
        format!("its log {} is empty", log.display())
    } else {
        format!("its log ends: {}", tail.join(" | "))
    }
}

/// A node on loopback in its own temporary directory. Fields drop in order: the process is
/// killed before its directory is removed.
#[derive(Debug)]
pub struct Node {
    process: Option<NodeProcess>,
    dir: NodeDir,
    bin: PathBuf,
    client_port: u16,
    peer_port: u16,
}

impl Node {
    /// Starts a fresh node from `bin` and waits until it serves.
    pub async fn start(bin: &Path, tag: &str) -> anyhow::Result<Node> {
        check_atoll_bin(bin)?;
        let dir = NodeDir::create(tag)?;
        let client_port = free_port()?;
        let peer_port = free_port()?;
        let mut node = Node { process: None, dir, bin: bin.to_path_buf(), client_port, peer_port };
        node.spawn()?;
        node.wait_ready().await?;
        Ok(node)
    }

    /// Starts the process again on the same directory and ports; returns the spawn time.
    pub fn spawn(&mut self) -> anyhow::Result<Instant> {
        if self.process.is_some() {
            bail!("the node is already running");
        }
        let process =
            NodeProcess::spawn(&self.bin, &self.dir, self.client_port, self.peer_port, &[])?;
        let spawned_at = process.spawned_at();
        self.process = Some(process);
        Ok(spawned_at)
    }

    /// Waits for the ready line; returns the time since spawn.
    pub async fn wait_ready(&mut self) -> anyhow::Result<Duration> {
        let log = self.dir.log_path();
        let process = self.process.as_mut().ok_or_else(|| anyhow!("the node is not running"))?;
        process.wait_ready(&log).await
    }

    /// Stops the process; returns how long it took to exit.
    pub async fn stop(&mut self, how: StopHow) -> anyhow::Result<Duration> {
        let mut process = self.process.take().ok_or_else(|| anyhow!("the node is not running"))?;
        process.stop(how).await
    }

    /// The client endpoint.
    pub fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.client_port)
    }

    /// The node's directory.
    #[cfg(test)]
    pub(crate) fn dir(&self) -> &NodeDir {
        &self.dir
    }

    /// A client configuration trusting the node's development CA.
    pub fn client_config(&self) -> anyhow::Result<ClientConfig> {
        let cas = atoll_router::tls::read_pem_certs(&self.dir.ca_path())?;
        Ok(ClientConfig::new(vec![self.endpoint()], Trust::CaDer(cas)))
    }
}

#[cfg(test)]
#[path = "node_tests.rs"]
mod tests;
