//! Runs the built `atollctl` binary against the real QUIC transport and router client, with
//! a small in-memory KV behind the server instead of a node: proves the flags, the trust
//! lookup through `--data-dir`, the wire round trip and the printed output fit together.
//! (The end-to-end test against a real node lives with the node's tests.)

mod support;

use atoll_node::certs::ensure_dev_certs_with_trust_dir;
use atoll_node::transport::{QuicServer, QuicServerConfig, RequestHandler};
use atoll_proto::kv::*;
use atoll_proto::{AtollError, NativeRequest, NativeResponse, StatusResponse};
use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::Output;
use std::sync::{Arc, Mutex};

const MEMBER_ID: u64 = 0xabc;
const TEST_MAX_REQUEST_BYTES: usize = 1024 * 1024;

/// Just enough of etcd's KV semantics for atollctl's commands: ranges by key order,
/// revisions, prev_kv, value/mod compares, compaction errors.
#[derive(Default)]
struct MemKv {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    revision: i64,
    compacted: i64,
    kvs: BTreeMap<Vec<u8>, KeyValue>,
}

fn in_range(k: &[u8], key: &[u8], end: &[u8]) -> bool {
    match end {
        [] => k == key,
        [0] => k >= key,
        _ => k >= key && k < end,
    }
}

impl State {
    fn header(&self) -> ResponseHeader {
        ResponseHeader {
            cluster_id: 1,
            member_id: MEMBER_ID,
            revision: self.revision,
            raft_term: 2,
        }
    }

    fn put(&mut self, p: PutRequest) -> PutResponse {
        self.revision += 1;
        let prev = self.kvs.get(&p.key).cloned();
        let kv = KeyValue {
            key: p.key.clone(),
            create_revision: prev.as_ref().map_or(self.revision, |kv| kv.create_revision),
            mod_revision: self.revision,
            version: prev.as_ref().map_or(0, |kv| kv.version) + 1,
            value: p.value,
            lease: p.lease,
        };
        self.kvs.insert(p.key, kv);
        PutResponse { header: self.header(), prev_kv: prev.filter(|_| p.prev_kv) }
    }

    fn range(&self, r: &RangeRequest) -> Result<RangeResponse, AtollError> {
        if r.revision > 0 && r.revision <= self.compacted {
            return Err(AtollError::Compacted { compact_revision: self.compacted });
        }
        let found: Vec<KeyValue> = self
            .kvs
            .values()
            .filter(|kv| in_range(&kv.key, &r.key, &r.range_end))
            .cloned()
            .collect();
        let count = found.len() as i64;
        let kvs = if r.count_only { Vec::new() } else { found };
        Ok(RangeResponse { header: self.header(), kvs, more: false, count })
    }

    fn delete(&mut self, d: &DeleteRangeRequest) -> DeleteRangeResponse {
        let keys: Vec<Vec<u8>> =
            self.kvs.keys().filter(|k| in_range(k, &d.key, &d.range_end)).cloned().collect();
        if !keys.is_empty() {
            self.revision += 1;
        }
        let gone: Vec<KeyValue> = keys.iter().filter_map(|k| self.kvs.remove(k)).collect();
        let deleted = gone.len() as i64;
        let prev_kvs = if d.prev_kv { gone } else { Vec::new() };
        DeleteRangeResponse { header: self.header(), deleted, prev_kvs }
    }

    fn holds(&self, c: &Compare) -> bool {
        let kv = self.kvs.get(&c.key);
        let ordering = match &c.target {
            CompareTarget::Value(v) => kv.map(|kv| kv.value.as_slice()).cmp(&Some(v.as_slice())),
            CompareTarget::Mod(m) => kv.map_or(0, |kv| kv.mod_revision).cmp(m),
            CompareTarget::Create(m) => kv.map_or(0, |kv| kv.create_revision).cmp(m),
            CompareTarget::Version(m) => kv.map_or(0, |kv| kv.version).cmp(m),
            CompareTarget::Lease(m) => kv.map_or(0, |kv| kv.lease).cmp(m),
        };
        match c.result {
            CompareResult::Equal => ordering.is_eq(),
            CompareResult::NotEqual => ordering.is_ne(),
            CompareResult::Greater => ordering.is_gt(),
            CompareResult::Less => ordering.is_lt(),
        }
    }

    fn txn(&mut self, t: TxnRequest) -> Result<TxnResponse, AtollError> {
        let succeeded = t.compare.iter().all(|c| self.holds(c));
        let ops = if succeeded { t.success } else { t.failure };
        let mut responses = Vec::new();
        for op in ops {
            responses.push(match op {
                RequestOp::Put(p) => ResponseOp::Put(self.put(p)),
                RequestOp::Range(r) => ResponseOp::Range(self.range(&r)?),
                RequestOp::DeleteRange(d) => ResponseOp::DeleteRange(self.delete(&d)),
                RequestOp::Txn(t) => ResponseOp::Txn(self.txn(t)?),
            });
        }
        Ok(TxnResponse { header: self.header(), succeeded, responses })
    }

    fn answer(&mut self, req: NativeRequest) -> Result<NativeResponse, AtollError> {
        Ok(match req {
            NativeRequest::Put(p) => NativeResponse::Put(self.put(p)),
            NativeRequest::Range(r) => NativeResponse::Range(self.range(&r)?),
            NativeRequest::DeleteRange(d) => NativeResponse::DeleteRange(self.delete(&d)),
            NativeRequest::Txn(t) => NativeResponse::Txn(self.txn(t)?),
            NativeRequest::Compact(c) => {
                self.compacted = c.revision;
                NativeResponse::Compact(CompactionResponse { header: self.header() })
            }
            NativeRequest::Status(_) => NativeResponse::Status(StatusResponse {
                header: self.header(),
                version: "3.4.0-test".into(),
                db_size: 20480,
                leader: MEMBER_ID,
                raft_index: 7,
                raft_term: 2,
                raft_applied_index: 7,
                ..StatusResponse::default()
            }),
            NativeRequest::HashKv(_)
            | NativeRequest::CompactShard(_)
            | NativeRequest::Watch(_)
            | NativeRequest::Close(_)
            | NativeRequest::LeaseGrant(_)
            | NativeRequest::LeaseRevoke(_)
            | NativeRequest::LeaseKeepAlive(_)
            | NativeRequest::LeaseTimeToLive(_)
            | NativeRequest::LeaseLeases(_)
            | NativeRequest::LeaseLookup(_)
            | NativeRequest::LeasedWrite(_)
            | NativeRequest::RevokeLeaseKeys(_)
            | NativeRequest::RevokeLeaseKeysBatch(_)
            | NativeRequest::MemberList(_)
            | NativeRequest::MemberAdd(_)
            | NativeRequest::MemberRemove(_)
            | NativeRequest::MemberPromote(_)
            | NativeRequest::MemberUpdate(_)
            | NativeRequest::MemberWrite(_)
            | NativeRequest::ShardMap(_)
            | NativeRequest::AtLeader(_)
            | NativeRequest::Auth(_)
            | NativeRequest::WithToken(_)
            | NativeRequest::AuthWrite(_) => NativeResponse::Error(AtollError::Malformed {
                reason: "not in the stand-in".into(),
            }),
        })
    }
}

impl RequestHandler for MemKv {
    fn handle(
        &self,
        req: NativeRequest,
    ) -> Pin<Box<dyn Future<Output = NativeResponse> + Send + 'static>> {
        let answer = match self.state.lock() {
            Ok(mut state) => state.answer(req).unwrap_or_else(NativeResponse::Error),
            Err(_) => NativeResponse::Error(AtollError::Stopping),
        };
        Box::pin(async move { answer })
    }
}

struct Ctl {
    home: PathBuf,
    data_dir: PathBuf,
    endpoint: String,
}

impl Ctl {
    /// Runs atollctl with the server's endpoint and data dir on a blocking thread, so the
    /// server keeps running on the runtime meanwhile.
    async fn must_run(&self, args: &[&str], stdin: &str) -> Output {
        let mut argv = vec![format!("--endpoints={}", self.endpoint)];
        argv.push(format!("--data-dir={}", self.data_dir.display()));
        argv.extend(args.iter().map(|a| a.to_string()));
        let (home, stdin) = (self.home.clone(), stdin.to_string());
        match tokio::task::spawn_blocking(move || must_spawn(&argv, &stdin, &home)).await {
            Ok(output) => output,
            Err(e) => panic!("atollctl thread: {e}"),
        }
    }

    async fn must_succeed(&self, args: &[&str], stdin: &str) -> String {
        let output = self.must_run(args, stdin).await;
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(0), "{args:?}: {stderr}");
        String::from_utf8_lossy(&output.stdout).into_owned()
    }
}

fn must_spawn(args: &[String], stdin: &str, home: &Path) -> Output {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    support::must_run_atollctl(&args, &[], stdin, home)
}

fn must_start(data_dir: &Path) -> QuicServer {
    let tls = match ensure_dev_certs_with_trust_dir(data_dir, &[], None) {
        Ok(tls) => tls,
        Err(e) => panic!("dev certs: {e}"),
    };
    let cfg = QuicServerConfig {
        listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        tls,
        max_request_bytes: TEST_MAX_REQUEST_BYTES,
    };
    let server = match QuicServer::bind(cfg, Arc::new(MemKv::default())) {
        Ok(server) => server,
        Err(e) => panic!("bind: {e}"),
    };
    tokio::spawn(server.clone().run());
    server
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn atollctl_round_trips_through_the_quic_transport() {
    let dir = match tempfile::tempdir() {
        Ok(dir) => dir,
        Err(e) => panic!("tempdir: {e}"),
    };
    let data_dir = dir.path().join("data");
    let server = must_start(&data_dir);
    let endpoint = server.local_addr().to_string();
    let ctl = Ctl { home: dir.path().to_path_buf(), data_dir, endpoint: endpoint.clone() };

    eprintln!("phase: writes print OK, trusting the CA found through --data-dir");
    assert_eq!(ctl.must_succeed(&["put", "foo", "bar"], "").await, "OK\n");
    assert_eq!(ctl.must_succeed(&["put", "foo2"], "from stdin").await, "OK\n");

    eprintln!("phase: reads print key and value lines, or etcd's JSON");
    let all = ctl.must_succeed(&["get", "foo", "--prefix"], "").await;
    assert_eq!(all, "foo\nbar\nfoo2\nfrom stdin\n");
    assert_eq!(
        ctl.must_succeed(&["get", "foo", "-w", "json"], "").await,
        r#"{"header":{"cluster_id":1,"member_id":2748,"revision":2,"raft_term":2},"kvs":[{"key":"Zm9v","create_revision":1,"mod_revision":1,"version":1,"value":"YmFy"}],"count":1}"#
            .to_string()
            + "\n"
    );
    assert_eq!(ctl.must_succeed(&["get", "", "--from-key", "--count-only"], "").await, "2\n");

    eprintln!("phase: a txn read from stdin runs its success branch");
    let txn = "val(\"foo\") = \"bar\"\n\nput foo new\nget foo\n\nput foo old\n\n";
    assert_eq!(ctl.must_succeed(&["txn"], txn).await, "SUCCESS\n\nOK\n\nfoo\nnew\n");
    assert_eq!(ctl.must_succeed(&["get", "foo", "--print-value-only"], "").await, "new\n");

    eprintln!("phase: deletes print the count and the deleted pairs");
    let deleted = ctl.must_succeed(&["del", "foo", "--prefix", "--prev-kv"], "").await;
    assert_eq!(deleted, "2\nfoo\nnew\nfoo2\nfrom stdin\n");

    eprintln!("phase: after compaction, an old revision fails with etcd's exact text");
    assert_eq!(ctl.must_succeed(&["compaction", "3"], "").await, "compacted revision 3\n");
    let output = ctl.must_run(&["get", "foo", "--rev=2"], "").await;
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        "Error: etcdserver: mvcc: required revision has been compacted\n"
    );

    eprintln!("phase: endpoint status and health describe the endpoint");
    assert_eq!(
        ctl.must_succeed(&["endpoint", "status"], "").await,
        format!("{endpoint}, abc, 3.4.0-test, 20 kB, true, false, 2, 7, 7, \n")
    );
    let output = ctl.must_run(&["endpoint", "health"], "").await;
    assert_eq!(output.status.code(), Some(0));
    let health = String::from_utf8_lossy(&output.stderr);
    let prefix = format!("{endpoint} is healthy: successfully committed proposal: took = ");
    assert!(health.starts_with(&prefix), "{health}");
    server.close();
}
