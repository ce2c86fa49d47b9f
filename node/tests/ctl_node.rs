//! atollctl against a real node: the commands of the foundation issue, their etcdctl-shaped
//! output, and etcd's error text for a compacted revision.

mod support;

use std::process::Output;
use support::{TestNode, free_port, must_run_atollctl};

struct Ctl {
    endpoint: String,
    data_dir: std::path::PathBuf,
}

impl Ctl {
    fn run(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut all = vec!["--endpoints", &self.endpoint, "--data-dir"];
        let data_dir = self.data_dir.to_str().expect("utf8 path");
        all.push(data_dir);
        all.extend_from_slice(args);
        must_run_atollctl(&all, &[], stdin.unwrap_or(""), &self.data_dir)
    }

    fn must_ok(&self, args: &[&str]) -> String {
        self.must_ok_with(args, None)
    }

    fn must_ok_with(&self, args: &[&str], stdin: Option<&str>) -> String {
        let out = self.run(args, stdin);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "atollctl {args:?} failed: {stderr}");
        String::from_utf8(out.stdout).expect("utf8 stdout")
    }
}

#[test]
fn atollctl_drives_a_real_node() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = TestNode::must_start(dir.path(), free_port());
    let ctl = Ctl { endpoint: node.endpoint(), data_dir: dir.path().to_path_buf() };

    eprintln!("phase: put and get, simple output");
    assert_eq!(ctl.must_ok(&["put", "greeting", "hello"]), "OK\n");
    assert_eq!(ctl.must_ok(&["get", "greeting"]), "greeting\nhello\n");
    assert_eq!(ctl.must_ok(&["put", "greeting", "hi", "--prev-kv"]), "OK\ngreeting\nhello\n");
    assert_eq!(ctl.must_ok(&["get", "greeting", "--print-value-only"]), "hi\n");

    eprintln!("phase: prefix, limit, sort, count and json");
    for (k, v) in [("fruit/apple", "1"), ("fruit/banana", "22"), ("fruit/cherry", "333")] {
        ctl.must_ok(&["put", k, v]);
    }
    assert_eq!(
        ctl.must_ok(&["get", "fruit/", "--prefix", "--keys-only", "--limit", "2"]),
        "fruit/apple\n\nfruit/banana\n\n"
    );
    assert_eq!(
        ctl.must_ok(&[
            "get",
            "fruit/",
            "--prefix",
            "--sort-by",
            "VALUE",
            "--order",
            "DESCEND",
            "--print-value-only"
        ]),
        "333\n22\n1\n"
    );
    assert_eq!(ctl.must_ok(&["get", "fruit/", "--prefix", "--count-only"]).trim(), "3");
    let json: serde_json::Value = serde_json::from_str(
        &ctl.must_ok(&["get", "fruit/", "--prefix", "--limit", "1", "-w", "json"]),
    )
    .expect("json output");
    assert_eq!(json["count"], 3);
    assert_eq!(json["more"], true);
    assert_eq!(json["kvs"][0]["key"], "ZnJ1aXQvYXBwbGU=", "base64 of fruit/apple");
    assert!(json["header"]["revision"].as_i64().expect("revision") > 0);

    eprintln!("phase: txn from stdin in etcdctl's syntax");
    let txn = "value(\"greeting\") = \"hi\"\n\nput greeting bonjour\n\nput greeting nope\n\n";
    assert_eq!(ctl.must_ok_with(&["txn"], Some(txn)), "SUCCESS\n\nOK\n");
    assert_eq!(ctl.must_ok(&["get", "greeting", "--print-value-only"]), "bonjour\n");

    eprintln!("phase: delete with prev-kv");
    assert_eq!(ctl.must_ok(&["del", "fruit/", "--prefix"]), "3\n");
    assert_eq!(ctl.must_ok(&["get", "fruit/", "--prefix"]), "");

    eprintln!("phase: compaction and reading below it");
    let rev = json["header"]["revision"].as_i64().expect("revision");
    let now: serde_json::Value =
        serde_json::from_str(&ctl.must_ok(&["get", "greeting", "-w", "json"])).expect("json");
    let current = now["header"]["revision"].as_i64().expect("revision").to_string();
    assert_eq!(
        ctl.must_ok(&["compaction", &current, "--physical"]),
        format!("compacted revision {current}\n")
    );
    let out = ctl.run(&["get", "greeting", "--rev", &rev.to_string()], None);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "Error: etcdserver: mvcc: required revision has been compacted"
    );

    eprintln!("phase: endpoint status and health");
    let status = ctl.must_ok(&["endpoint", "status"]);
    assert!(status.starts_with(&format!("{}, ", node.endpoint())), "{status}");
    assert!(status.contains(", true, false, "), "leader, not learner: {status}");
    let health = ctl.run(&["endpoint", "health"], None);
    assert!(health.status.success());
    assert!(String::from_utf8_lossy(&health.stderr).contains("is healthy"));
}
