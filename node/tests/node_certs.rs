//! `atoll certs`: a cluster CA and node certificates made by the tool, a node started with
//! them serving a client that trusts the CA, and refusals as one-line errors.

mod support;

use atoll_proto::{PutRequest, RangeRequest};
use atoll_router::{Client, ClientConfig, Trust};
use std::path::Path;
use std::process::Command;
use support::{TestNode, free_port};

fn atoll(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_atoll")).args(args).output().expect("run atoll")
}

fn must_succeed(args: &[&str]) -> String {
    let out = atoll(args);
    assert!(out.status.success(), "atoll {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn must_fail_one_line(args: &[&str]) -> String {
    let out = atoll(args);
    assert!(!out.status.success(), "atoll {args:?} should fail");
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    stderr
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf8 path")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_serves_with_certificates_made_by_atoll_certs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ca, n1, data) = (dir.path().join("ca"), dir.path().join("n1"), dir.path().join("data"));
    eprintln!("phase: create a CA and a node certificate");
    must_succeed(&["certs", "ca", "--dir", path(&ca)]);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(ca.join("ca-key.pem")).expect("key").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let said = must_succeed(&[
        "certs",
        "node",
        "--ca-dir",
        path(&ca),
        "--out",
        path(&n1),
        "--hosts",
        "node1.example",
    ]);
    assert!(said.contains("--cert-file"), "{said}");
    eprintln!("phase: nothing is ever overwritten");
    assert!(must_fail_one_line(&["certs", "ca", "--dir", path(&ca)]).contains("ca-key.pem"));

    eprintln!("phase: a node started with them serves a client that trusts the CA");
    let port = free_port();
    let (cert, key, ca_copy) = (n1.join("node.pem"), n1.join("node-key.pem"), n1.join("ca.pem"));
    let _node = TestNode::must_start_with(
        &data,
        port,
        &[
            "--cert-file",
            path(&cert),
            "--key-file",
            path(&key),
            "--trusted-ca-file",
            path(&ca_copy),
        ],
    );
    assert!(!data.join("certs").exists(), "no development certificates when files are given");
    let trust = Trust::CaDer(atoll_router::tls::read_pem_certs(&ca.join("ca.pem")).expect("ca"));
    let client = Client::connect(ClientConfig::new(vec![format!("127.0.0.1:{port}")], trust))
        .await
        .expect("client trusting the cluster CA connects");
    client
        .put(PutRequest { key: b"k".to_vec(), value: b"v".to_vec(), ..Default::default() })
        .await
        .expect("put");
    let got =
        client.range(RangeRequest { key: b"k".to_vec(), ..Default::default() }).await.expect("get");
    assert_eq!(got.kvs[0].value, b"v");

    eprintln!("phase: a client trusting another CA is refused");
    let other = dir.path().join("other");
    must_succeed(&["certs", "ca", "--dir", path(&other)]);
    let trust = Trust::CaDer(atoll_router::tls::read_pem_certs(&other.join("ca.pem")).expect("ca"));
    let mut cfg = ClientConfig::new(vec![format!("127.0.0.1:{port}")], trust);
    cfg.retries_max = 0;
    assert!(
        Client::connect(cfg).await.is_err(),
        "a certificate from another CA must not be accepted"
    );

    eprintln!("phase: a CA whose key does not match its certificate is refused");
    std::fs::copy(ca.join("ca.pem"), other.join("ca.pem")).expect("mix CA files");
    let err = must_fail_one_line(&[
        "certs",
        "node",
        "--ca-dir",
        path(&other),
        "--out",
        path(&dir.path().join("n2")),
    ]);
    assert!(err.contains("atoll certs ca"), "{err}");
}
