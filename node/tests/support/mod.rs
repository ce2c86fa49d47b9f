//! Test support: real `atoll` processes on loopback with their own data directories.

#![allow(dead_code)]

pub mod cluster;
pub mod etcd;
pub mod etcdctl;

use atoll_router::{Client, ClientConfig, Trust};
use std::io::{BufRead, BufReader};
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long a node may take to print its ready line.
pub const START_DEADLINE: Duration = Duration::from_secs(30);

/// A loopback port free for both UDP and TCP (bound and released; the node binds it right
/// after): a client port serves native QUIC over UDP and etcd gRPC over TCP.
pub fn free_port() -> u16 {
    for _ in 0..50 {
        let sock = UdpSocket::bind("127.0.0.1:0").expect("bind an ephemeral udp port");
        let port = sock.local_addr().expect("local addr").port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no loopback port free for both UDP and TCP");
}

/// A free TCP port on loopback.
pub fn free_tcp_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral tcp port");
    l.local_addr().expect("local addr").port()
}

/// A running `atoll` process; killed on drop.
pub struct TestNode {
    pub child: Child,
    pub data_dir: PathBuf,
    pub port: u16,
    pub started: Instant,
    pub ready_after: Duration,
}

/// Command for the `atoll` binary built with the tests.
pub fn atoll_command(data_dir: &Path, port: u16, extra: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_atoll"));
    cmd.arg("--data-dir").arg(data_dir);
    // Plain gRPC on the port unless the test picks its own client URL.
    if !extra.contains(&"--listen-client-urls") {
        cmd.arg("--listen-client-urls").arg(format!("http://127.0.0.1:{port}"));
    }
    cmd.args(extra).env("ATOLL_LOG_LEVEL", "warn").stdin(Stdio::null());
    cmd
}

impl TestNode {
    /// Starts a node and waits for its ready line.
    pub fn must_start(data_dir: &Path, port: u16) -> TestNode {
        TestNode::must_start_with(data_dir, port, &[])
    }

    /// Starts a node with extra flags and waits for its ready line.
    pub fn must_start_with(data_dir: &Path, port: u16, extra: &[&str]) -> TestNode {
        let started = Instant::now();
        let mut child = atoll_command(data_dir, port, extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn atoll");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.contains("ready to serve clients") {
                    let _ = tx.send(());
                }
            }
        });
        if rx.recv_timeout(START_DEADLINE).is_err() {
            let _ = child.kill();
            panic!("atoll did not print its ready line within {START_DEADLINE:?}");
        }
        TestNode {
            child,
            data_dir: data_dir.to_path_buf(),
            port,
            started,
            ready_after: started.elapsed(),
        }
    }

    /// Starts a node that also serves its operator endpoints; returns it with their port.
    pub fn must_start_with_metrics(data_dir: &Path) -> (TestNode, u16) {
        let http = free_tcp_port();
        let metrics_url = format!("http://127.0.0.1:{http}");
        let node = TestNode::must_start_with(
            data_dir,
            free_port(),
            &["--listen-metrics-urls", &metrics_url],
        );
        (node, http)
    }

    /// The endpoint clients dial.
    pub fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// A client that trusts the node's development CA.
    pub async fn must_client(&self) -> Client {
        let ca = atoll_router::tls::read_pem_certs(&self.data_dir.join("certs/ca.pem"))
            .expect("dev CA readable");
        let mut cfg = ClientConfig::new(vec![self.endpoint()], Trust::CaDer(ca));
        cfg.request_timeout = Duration::from_secs(3);
        cfg.dial_timeout = Duration::from_secs(5);
        Client::connect(cfg).await.expect("client connects")
    }

    /// Kills the process with SIGKILL, as a crash would.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the built `atollctl` hermetically: no `ATOLLCTL_*` setting from the developer's shell,
/// `home` as HOME, XDG_DATA_HOME and working directory (so no development CA of a real node
/// on this machine is found by accident), `env` added, `stdin` written.
pub fn must_run_atollctl(
    args: &[&str],
    env: &[(&str, &str)],
    stdin: &str,
    home: &Path,
) -> std::process::Output {
    use std::io::Write;
    let mut command = Command::new(env!("CARGO_BIN_EXE_atollctl"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("ATOLLCTL_") {
            command.env_remove(name);
        }
    }
    let mut child = command
        .args(args)
        .envs(env.iter().copied())
        .env("HOME", home)
        .env("XDG_DATA_HOME", home)
        .current_dir(home)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn atollctl");
    if let Some(mut input) = child.stdin.take() {
        input.write_all(stdin.as_bytes()).expect("write atollctl's stdin");
    }
    child.wait_with_output().expect("wait for atollctl")
}

/// `GET path` from a node's operator endpoint on `port`: the status code and the body.
pub fn must_http_get(port: u16, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect http");
    write!(s, "GET {path} HTTP/1.1\r\nhost: localhost\r\n\r\n").expect("send");
    let mut text = String::new();
    s.read_to_string(&mut text).expect("read");
    let status = text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).expect("status");
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    (status, body)
}

/// The value of metric `name` on a node's `/metrics` (operator endpoint on `port`).
pub fn must_metric(port: u16, name: &str) -> u64 {
    let (status, body) = must_http_get(port, "/metrics");
    assert_eq!(status, 200);
    let sample = format!("{name} ");
    body.lines()
        .find_map(|l| l.strip_prefix(&sample).and_then(|v| v.trim().parse().ok()))
        .unwrap_or_else(|| panic!("no metric {name} in {body}"))
}
