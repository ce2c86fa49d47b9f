//! etcdctl 3.4 (Debian's `etcd-client` package, which `.ci/run` installs) as a test client:
//! one-shot commands, and long-running ones (`watch`, `lock`, `elect`) read line by line.

use std::io::BufRead as _;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The etcdctl binary; `ATOLL_ETCDCTL` overrides it.
pub fn etcdctl_path() -> String {
    std::env::var("ATOLL_ETCDCTL").unwrap_or_else(|_| "etcdctl".to_string())
}

/// etcdctl (API v3) against `endpoints` with `args`, its output piped.
fn command(endpoints: &str, args: &[&str]) -> Command {
    let mut command = Command::new(etcdctl_path());
    command.env("ETCDCTL_API", "3").arg("--endpoints").arg(endpoints).args(args);
    command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    command
}

fn spawn(mut command: Command) -> Child {
    command.spawn().unwrap_or_else(|e| {
        panic!(
            "cannot run {}: {e}; install Debian's etcd-client (apt-get install etcd-client) \
             or run .ci/run, which does",
            etcdctl_path()
        )
    })
}

/// Runs etcdctl (API v3) against `endpoints`, with `stdin` written to it.
pub fn etcdctl(endpoints: &str, args: &[&str], stdin: &str) -> Output {
    use std::io::Write as _;
    let mut command = command(endpoints, &["--command-timeout=10s"]);
    command.args(args);
    let mut child = spawn(command);
    child.stdin.take().expect("stdin").write_all(stdin.as_bytes()).expect("write stdin");
    child.wait_with_output().expect("etcdctl runs")
}

/// Runs etcdctl and returns its stdout, failing the test (with stderr) if it failed.
pub fn must_ok(endpoints: &str, args: &[&str]) -> String {
    let out = etcdctl(endpoints, args, "");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "etcdctl {args:?} failed: {stderr}");
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// [`must_ok`] for a membership change, run again while the cluster is too young for etcd's
/// strict reconfiguration check ("etcdserver: unhealthy cluster"), as an operator would.
pub fn must_ok_once_healthy(endpoints: &str, args: &[&str]) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = etcdctl(endpoints, args, "");
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.success() {
            return String::from_utf8(out.stdout).expect("utf-8 output");
        }
        assert!(
            stderr.contains("etcdserver: unhealthy cluster") && Instant::now() < deadline,
            "etcdctl {args:?} failed: {stderr}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Runs etcdctl expecting failure; returns stderr.
pub fn must_fail(endpoints: &str, args: &[&str]) -> String {
    let out = etcdctl(endpoints, args, "");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "etcdctl {args:?} succeeded: {stdout}");
    String::from_utf8(out.stderr).expect("utf-8 output")
}

pub fn lines(s: &str) -> Vec<&str> {
    s.lines().collect()
}

/// A long-running etcdctl whose stdout is read line by line; killed on drop.
pub struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Running {
    /// Starts `etcdctl args` against `endpoints`.
    pub fn start(endpoints: &str, args: &[&str]) -> Running {
        let mut command = command(endpoints, args);
        command.stdin(Stdio::null()).stderr(Stdio::null());
        let mut child = spawn(command);
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Running { child, lines }
    }

    /// The next `count` lines it prints, or fewer if `patience` passes first.
    pub fn lines(&self, count: usize, patience: Duration) -> Vec<String> {
        let deadline = Instant::now() + patience;
        let mut lines = Vec::new();
        while lines.len() < count {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => lines.push(line),
                Err(_) => break,
            }
        }
        lines
    }

    /// The line it prints within `patience`, if any.
    pub fn line_within(&self, patience: Duration) -> Option<String> {
        self.lines.recv_timeout(patience).ok()
    }

    /// Sends SIGINT (etcdctl's Ctrl-C: a lock holder unlocks, a candidate resigns) and
    /// waits for it to exit; returns whether it exited successfully.
    pub fn interrupt(mut self) -> bool {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-INT", &pid]).status().expect("kill runs");
        assert!(sent.success(), "cannot interrupt etcdctl {pid}");
        self.child.wait().expect("etcdctl exits").success()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `etcdctl watch ...` until it printed `count` lines (or 20 s passed), then stops it.
pub fn watch_lines(endpoints: &str, args: &[&str], count: usize) -> Vec<String> {
    Running::start(endpoints, args).lines(count, Duration::from_secs(20))
}

/// Waits until every member answers a linearizable get (each shard has a leader).
pub fn must_wait_ready(endpoints: &[String]) {
    let deadline = Instant::now() + Duration::from_secs(30);
    for endpoint in endpoints {
        loop {
            let out = etcdctl(endpoint, &["get", "/ready-probe"], "");
            if out.status.success() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{endpoint} not ready: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}
