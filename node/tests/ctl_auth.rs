//! atollctl's `user`, `role` and `auth` commands and `--user` over the native protocol
//! (decision D21): etcdctl's output, and the native port enforcing auth like the gateway.

mod support;

use std::process::Output;
use support::{TestNode, free_port, must_run_atollctl};

struct Ctl {
    endpoint: String,
    data_dir: std::path::PathBuf,
}

impl Ctl {
    fn run(&self, args: &[&str]) -> Output {
        let data_dir = self.data_dir.to_str().expect("utf8 path");
        let mut all = vec!["--endpoints", &self.endpoint, "--data-dir", data_dir];
        all.extend_from_slice(args);
        must_run_atollctl(&all, &[], "", &self.data_dir)
    }

    fn must_ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "atollctl {args:?} failed: {stderr}");
        String::from_utf8(out.stdout).expect("utf8 stdout")
    }

    fn must_fail(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(!out.status.success(), "atollctl {args:?} succeeded");
        String::from_utf8(out.stderr).expect("utf8 stderr")
    }
}

#[test]
fn atollctl_manages_auth_and_the_native_port_enforces_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = TestNode::must_start(dir.path(), free_port());
    let ctl = Ctl { endpoint: node.endpoint(), data_dir: dir.path().to_path_buf() };

    eprintln!("phase: users and roles with etcdctl's output");
    assert_eq!(ctl.must_ok(&["user", "add", "root:rootpw"]), "User root created\n");
    assert_eq!(
        ctl.must_ok(&["user", "add", "alice", "--new-user-password", "alicepw"]),
        "User alice created\n"
    );
    assert_eq!(ctl.must_ok(&["role", "add", "app"]), "Role app created\n");
    assert_eq!(
        ctl.must_ok(&["role", "grant-permission", "app", "readwrite", "/app/", "--prefix"]),
        "Role app updated\n"
    );
    assert_eq!(
        ctl.must_ok(&["user", "grant-role", "alice", "app"]),
        "Role app is granted to user alice\n"
    );
    assert_eq!(
        ctl.must_ok(&["role", "get", "app"]),
        "Role app\nKV Read:\n\t[/app/, /app0) (prefix /app/)\nKV Write:\n\t[/app/, /app0) (prefix /app/)\n"
    );
    assert_eq!(ctl.must_ok(&["user", "list"]), "alice\nroot\n");
    assert_eq!(ctl.must_ok(&["auth", "status"]), "Authentication Status: false\nAuthRevision: 5\n");

    eprintln!("phase: enabled; the native port wants a token");
    assert_eq!(ctl.must_ok(&["auth", "enable"]), "Authentication Enabled\n");
    let stderr = ctl.must_fail(&["get", "/app/x"]);
    assert!(stderr.contains("etcdserver: user name is empty"), "{stderr}");
    let stderr = ctl.must_fail(&["--user", "alice:nope", "get", "/app/x"]);
    assert!(
        stderr.contains("etcdserver: authentication failed, invalid user ID or password"),
        "{stderr}"
    );
    assert_eq!(ctl.must_ok(&["--user", "alice:alicepw", "put", "/app/x", "1"]), "OK\n");
    assert_eq!(
        ctl.must_ok(&["--user", "alice", "--password", "alicepw", "get", "/app/x"]),
        "/app/x\n1\n"
    );
    let stderr = ctl.must_fail(&["--user", "alice:alicepw", "put", "/other", "1"]);
    assert!(stderr.contains("etcdserver: permission denied"), "{stderr}");
    let stderr = ctl.must_fail(&["--user", "alice:alicepw", "user", "list"]);
    assert!(stderr.contains("etcdserver: permission denied"), "{stderr}");
    assert_eq!(
        ctl.must_ok(&["--user", "root:rootpw", "get", "/app/x", "--print-value-only"]),
        "1\n"
    );
    assert_eq!(
        ctl.must_ok(&["--user", "root:rootpw", "auth", "disable"]),
        "Authentication Disabled\n"
    );
    assert_eq!(ctl.must_ok(&["put", "/other", "2"]), "OK\n");
}
