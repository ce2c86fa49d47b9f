//! A loopback cluster of real `atoll` processes sharing one CA.

use super::{START_DEADLINE, TestNode, free_port};
use atoll_router::{Client, ClientConfig, Trust};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// One member's fixed settings: restarting it reuses them.
pub struct MemberSpec {
    pub name: String,
    pub data_dir: PathBuf,
    pub client_port: u16,
    pub peer_port: u16,
    pub certs: PathBuf,
}

/// A cluster's members, started or not.
pub struct TestCluster {
    pub root: PathBuf,
    pub specs: Vec<MemberSpec>,
    pub nodes: Vec<Option<TestNode>>,
    pub initial_split: String,
    /// Flags every member starts with besides the cluster's own.
    pub extra_flags: Vec<String>,
}

impl TestCluster {
    /// Creates a CA and one certificate per member under `root`; starts nothing.
    pub fn must_prepare(root: &Path, members: usize, initial_split: &str) -> TestCluster {
        let ca = root.join("ca");
        atoll_node::certs::create_ca(&ca).expect("create ca");
        let specs: Vec<MemberSpec> = (1..=members)
            .map(|i| {
                let certs = root.join(format!("certs-{i}"));
                atoll_node::certs::issue_node_cert(&ca, &certs, &["127.0.0.1".to_string()])
                    .expect("issue node cert");
                MemberSpec {
                    name: format!("n{i}"),
                    data_dir: root.join(format!("n{i}")),
                    client_port: free_port(),
                    peer_port: free_port(),
                    certs,
                }
            })
            .collect();
        let nodes = specs.iter().map(|_| None).collect();
        TestCluster {
            root: root.to_path_buf(),
            specs,
            nodes,
            initial_split: initial_split.into(),
            extra_flags: Vec::new(),
        }
    }

    fn flags(&self, i: usize) -> Vec<String> {
        let spec = &self.specs[i];
        let initial_cluster = self
            .specs
            .iter()
            .map(|s| format!("{}=https://127.0.0.1:{}", s.name, s.peer_port))
            .collect::<Vec<_>>()
            .join(",");
        let peer_url = format!("https://127.0.0.1:{}", spec.peer_port);
        let mut flags = vec![
            "--name".into(),
            spec.name.clone(),
            "--initial-cluster".into(),
            initial_cluster,
            "--initial-advertise-peer-urls".into(),
            peer_url.clone(),
            "--listen-peer-urls".into(),
            peer_url,
            "--cert-file".into(),
            spec.certs.join("node.pem").display().to_string(),
            "--key-file".into(),
            spec.certs.join("node-key.pem").display().to_string(),
            "--trusted-ca-file".into(),
            self.root.join("ca/ca.pem").display().to_string(),
            // Short timeouts keep elections quick on loopback.
            "--heartbeat-interval".into(),
            "50".into(),
            "--election-timeout".into(),
            "500".into(),
        ];
        if !self.initial_split.is_empty() {
            flags.push("--initial-split".into());
            flags.push(self.initial_split.clone());
        }
        flags.extend(self.extra_flags.iter().cloned());
        flags
    }

    /// Prepares one more member (certificate, ports) for `member add`; starts nothing.
    /// Returns its index.
    pub fn must_prepare_joiner(&mut self) -> usize {
        let i = self.specs.len() + 1;
        let certs = self.root.join(format!("certs-{i}"));
        atoll_node::certs::issue_node_cert(
            &self.root.join("ca"),
            &certs,
            &["127.0.0.1".to_string()],
        )
        .expect("issue node cert");
        self.specs.push(MemberSpec {
            name: format!("n{i}"),
            data_dir: self.root.join(format!("n{i}")),
            client_port: free_port(),
            peer_port: free_port(),
            certs,
        });
        self.nodes.push(None);
        i - 1
    }

    /// The peer URL of member `i`.
    pub fn peer_url(&self, i: usize) -> String {
        format!("https://127.0.0.1:{}", self.specs[i].peer_port)
    }

    /// Starts member `i` joining the running cluster (`--initial-cluster-state existing`).
    pub fn must_start_joining(&mut self, i: usize) {
        let mut flags = self.flags(i);
        flags.extend(["--initial-cluster-state".to_string(), "existing".to_string()]);
        let refs: Vec<&str> = flags.iter().map(String::as_str).collect();
        let spec = &self.specs[i];
        self.nodes[i] = Some(TestNode::must_start_with(&spec.data_dir, spec.client_port, &refs));
    }

    /// Waits until the members `which` applied the same log of every shard, then requires
    /// the same revision and hash of each shard on each of them.
    pub async fn must_agree_on_hashes(&self, which: &[usize]) {
        let client = self.must_client(which).await;
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let mut answers = Vec::new();
            for endpoint in self.endpoints(which) {
                let req = atoll_proto::HashKvRequest::default();
                let resp = client.hash_kv(&endpoint, req).await.expect("hashkv");
                answers.push(resp.hashes);
            }
            let applied = |hashes: &Vec<atoll_proto::ShardHash>| -> Vec<u64> {
                hashes.iter().map(|h| h.applied_index).collect()
            };
            if answers.iter().all(|a| applied(a) == applied(&answers[0])) {
                for (i, hashes) in answers.iter().enumerate() {
                    assert_eq!(
                        hashes, &answers[0],
                        "member {i} differs from the first at the same index"
                    );
                }
                eprintln!("members {which:?} agree: {:?}", answers[0]);
                return;
            }
            assert!(std::time::Instant::now() < deadline, "members never caught up: {answers:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Starts member `i` (again, after a kill, from its data directory).
    pub fn must_start(&mut self, i: usize) {
        let flags = self.flags(i);
        let refs: Vec<&str> = flags.iter().map(String::as_str).collect();
        let spec = &self.specs[i];
        self.nodes[i] = Some(TestNode::must_start_with(&spec.data_dir, spec.client_port, &refs));
    }

    /// Starts every member.
    pub fn must_start_all(&mut self) {
        for i in 0..self.specs.len() {
            self.must_start(i);
        }
    }

    /// Waits until member `i`'s process ends by itself; its exit status, or `None` at the
    /// deadline (the process is then left running).
    pub fn wait_for_exit(
        &mut self,
        i: usize,
        within: Duration,
    ) -> Option<std::process::ExitStatus> {
        let node = self.nodes[i].as_mut().expect("member started");
        let deadline = std::time::Instant::now() + within;
        while std::time::Instant::now() < deadline {
            if let Some(status) = node.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// Starts member `i` from its data directory and waits for it to end by itself, as a
    /// member that must refuse to run does; its exit status and what it wrote to stderr.
    pub fn must_run_to_exit(
        &self,
        i: usize,
        within: Duration,
    ) -> (std::process::ExitStatus, String) {
        let flags = self.flags(i);
        let refs: Vec<&str> = flags.iter().map(String::as_str).collect();
        let spec = &self.specs[i];
        let log = self.root.join(format!("{}-exit.log", spec.name));
        let file = std::fs::File::create(&log).expect("log file");
        let mut child = super::atoll_command(&spec.data_dir, spec.client_port, &refs)
            .stdout(std::process::Stdio::null())
            .stderr(file)
            .spawn()
            .expect("spawn atoll");
        let deadline = std::time::Instant::now() + within;
        let status = loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                break status;
            }
            if std::time::Instant::now() >= deadline {
                let _ = child.kill();
                panic!("{} still runs after {within:?}", spec.name);
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        (status, std::fs::read_to_string(&log).unwrap_or_default())
    }

    /// Kills member `i` with SIGKILL.
    pub fn kill9(&mut self, i: usize) {
        if let Some(node) = self.nodes[i].take() {
            node.kill9();
        }
    }

    /// Client endpoints of the members `which`.
    pub fn endpoints(&self, which: &[usize]) -> Vec<String> {
        which.iter().map(|i| format!("127.0.0.1:{}", self.specs[*i].client_port)).collect()
    }

    /// A client of the members `which`, trusting the cluster CA.
    pub async fn must_client(&self, which: &[usize]) -> Client {
        let ca = atoll_router::tls::read_pem_certs(&self.root.join("ca/ca.pem")).expect("ca");
        let mut cfg = ClientConfig::new(self.endpoints(which), Trust::CaDer(ca));
        cfg.request_timeout = Duration::from_secs(5);
        cfg.dial_timeout = Duration::from_secs(5);
        let deadline = std::time::Instant::now() + START_DEADLINE;
        loop {
            match Client::connect(cfg.clone()).await {
                Ok(client) => return client,
                Err(e) if std::time::Instant::now() < deadline => {
                    eprintln!("client not connected yet: {e}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("client cannot connect: {e}"),
            }
        }
    }
}

/// Retries `op` until it succeeds or `patience` passes (the cluster electing leaders, writes
/// forwarded after a leader change); failing past it fails the test.
pub async fn until_ok<T, F, Fut>(patience: Duration, what: &str, mut op: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, atoll_router::ClientError>>,
{
    let deadline = std::time::Instant::now() + patience;
    loop {
        match op().await {
            Ok(v) => return v,
            Err(e) if std::time::Instant::now() < deadline => {
                eprintln!("{what}: {e}; retrying");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("{what}: {e}"),
        }
    }
}
