//! Command glue tests against an in-memory fake client: what is sent, what is printed
//! where, which exit code results, and that input errors fail before connecting.

use super::*;
use crate::ctl::args::Cli;
use atoll_proto::lease::*;
use atoll_proto::{
    AtollError, CompactionRequest, CompactionResponse, DeleteRangeRequest, DeleteRangeResponse,
    KeyValue, NativeRequest, NativeResponse, PutRequest, PutResponse, RangeResponse,
    ResponseHeader, ResponseOp, StatusRequest, StatusResponse, TxnRequest, TxnResponse,
    WatchCreateRequest, WatchResponse,
};
use atoll_proto::{Event, EventType};
use clap::Parser;
use std::cell::RefCell;
use std::rc::Rc;

type Responder = Box<dyn Fn(&NativeRequest) -> Result<NativeResponse, CtlError>>;

struct FakeState {
    requests: RefCell<Vec<NativeRequest>>,
    connects: RefCell<Vec<Vec<String>>>,
    responder: Responder,
    unreachable: Vec<String>,
    hang: bool,
    /// What a watch stream answers, in order; the stream ends after the last.
    watch_responses: RefCell<Vec<WatchResponse>>,
}

#[derive(Clone)]
struct Fake(Rc<FakeState>);

impl Fake {
    fn new(
        responder: impl Fn(&NativeRequest) -> Result<NativeResponse, CtlError> + 'static,
    ) -> Self {
        Fake(Rc::new(FakeState {
            requests: RefCell::new(Vec::new()),
            connects: RefCell::new(Vec::new()),
            responder: Box::new(responder),
            unreachable: Vec::new(),
            hang: false,
            watch_responses: RefCell::new(Vec::new()),
        }))
    }

    fn with_watch(self, responses: Vec<WatchResponse>) -> Self {
        *self.0.watch_responses.borrow_mut() = responses;
        self
    }

    fn with(self, unreachable: &[&str], hang: bool) -> Self {
        let Ok(state) = Rc::try_unwrap(self.0) else { panic!("fake already shared") };
        let unreachable = unreachable.iter().map(|s| s.to_string()).collect();
        Fake(Rc::new(FakeState { unreachable, hang, ..state }))
    }

    fn requests(&self) -> Vec<NativeRequest> {
        self.0.requests.borrow().clone()
    }

    fn connects(&self) -> Vec<Vec<String>> {
        self.0.connects.borrow().clone()
    }

    async fn call(&self, req: NativeRequest) -> Result<NativeResponse, CtlError> {
        self.0.requests.borrow_mut().push(req.clone());
        if self.0.hang {
            std::future::pending::<()>().await;
        }
        (self.0.responder)(&req)
    }
}

impl Connector for Fake {
    type Client = Fake;

    async fn connect(&self, endpoints: &[String]) -> Result<Fake, CtlError> {
        self.0.connects.borrow_mut().push(endpoints.to_vec());
        if endpoints.iter().any(|e| self.0.unreachable.contains(e)) {
            return Err(CtlError::Connect {
                endpoints: endpoints.join(","),
                dial_timeout: Duration::from_secs(2),
                reason: "connection refused".into(),
            });
        }
        Ok(self.clone())
    }
}

macro_rules! fake_call {
    ($self:ident, $variant:ident, $req:expr) => {
        match $self.call(NativeRequest::$variant($req)).await? {
            NativeResponse::$variant(resp) => Ok::<_, CtlError>(resp),
            other => panic!("fake answered {other:?}"),
        }
    };
}

impl KvClient for Fake {
    async fn range(&self, req: RangeRequest) -> Result<RangeResponse, CtlError> {
        fake_call!(self, Range, req)
    }
    async fn put(&self, req: PutRequest) -> Result<PutResponse, CtlError> {
        fake_call!(self, Put, req)
    }
    async fn delete_range(&self, req: DeleteRangeRequest) -> Result<DeleteRangeResponse, CtlError> {
        fake_call!(self, DeleteRange, req)
    }
    async fn txn(&self, req: TxnRequest) -> Result<TxnResponse, CtlError> {
        fake_call!(self, Txn, req)
    }
    async fn compact(&self, req: CompactionRequest) -> Result<CompactionResponse, CtlError> {
        fake_call!(self, Compact, req)
    }
    async fn lease_grant(&self, req: LeaseGrantRequest) -> Result<LeaseGrantResponse, CtlError> {
        fake_call!(self, LeaseGrant, req)
    }
    async fn lease_revoke(&self, req: LeaseRevokeRequest) -> Result<LeaseRevokeResponse, CtlError> {
        fake_call!(self, LeaseRevoke, req)
    }
    async fn lease_keep_alive(
        &self,
        req: LeaseKeepAliveRequest,
    ) -> Result<LeaseKeepAliveResponse, CtlError> {
        fake_call!(self, LeaseKeepAlive, req)
    }
    async fn lease_time_to_live(
        &self,
        req: LeaseTimeToLiveRequest,
    ) -> Result<LeaseTimeToLiveResponse, CtlError> {
        fake_call!(self, LeaseTimeToLive, req)
    }
    async fn lease_leases(&self, req: LeaseLeasesRequest) -> Result<LeaseLeasesResponse, CtlError> {
        fake_call!(self, LeaseLeases, req)
    }
    async fn members(
        &self,
        req: NativeRequest,
    ) -> Result<atoll_proto::member::MembersResponse, CtlError> {
        match self.call(req).await? {
            NativeResponse::Members(resp) => Ok(resp),
            other => panic!("fake answered {other:?}"),
        }
    }
    async fn shard_map(
        &self,
        req: atoll_proto::shard_map::ShardMapRequest,
    ) -> Result<atoll_proto::shard_map::ShardMapResponse, CtlError> {
        match self.call(NativeRequest::ShardMap(req)).await? {
            NativeResponse::ShardMap(resp) => Ok(resp),
            other => panic!("fake answered {other:?}"),
        }
    }
    async fn status(&self, endpoint: &str) -> Result<StatusResponse, CtlError> {
        if endpoint.starts_with("down") {
            return Err(CtlError::Request { message: format!("cannot reach {endpoint}") });
        }
        let mut status: StatusResponse = fake_call!(self, Status, StatusRequest {})?;
        status.version = endpoint.to_string();
        Ok(status)
    }

    type Watch = std::vec::IntoIter<WatchResponse>;

    async fn watch(&self, req: WatchCreateRequest) -> Result<Self::Watch, CtlError> {
        let opening = NativeRequest::Watch(atoll_proto::WatchRequest::Create(req));
        self.0.requests.borrow_mut().push(opening);
        Ok(self.0.watch_responses.take().into_iter())
    }
}

impl WatchResponses for std::vec::IntoIter<WatchResponse> {
    async fn next(&mut self) -> Result<Option<WatchResponse>, CtlError> {
        Ok(Iterator::next(self))
    }
}

struct Outcome {
    result: Result<(), CtlError>,
    stdout: String,
    stderr: String,
}

impl Outcome {
    fn code(&self) -> u8 {
        self.result.as_ref().err().map_or(0, CtlError::exit_code)
    }

    fn error(&self) -> String {
        self.result.as_ref().err().map(|e| e.to_string()).unwrap_or_default()
    }
}

async fn must_run(fake: &Fake, args: &[&str], stdin: &str) -> Outcome {
    let cli = match Cli::try_parse_from(std::iter::once("atollctl").chain(args.iter().copied())) {
        Ok(cli) => cli,
        Err(e) => panic!("parse {args:?}: {e}"),
    };
    let (mut input, mut stdout, mut stderr) = (stdin.as_bytes(), Vec::new(), Vec::new());
    let mut io = CtlIo { stdin: &mut input, stdout: &mut stdout, stderr: &mut stderr };
    let result = execute(&cli, fake, &mut io).await;
    Outcome {
        result,
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

fn header() -> ResponseHeader {
    ResponseHeader { cluster_id: 1, member_id: 2, revision: 9, raft_term: 3 }
}

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: value.into(),
        create_revision: 4,
        mod_revision: 9,
        version: 2,
        lease: 0,
    }
}

/// The lease the fake grants and knows.
const LEASE: i64 = 0x694d_77aa_9e38_260f;
/// A lease the fake says is gone.
const GONE: i64 = 1;

/// A fake that answers each request kind with a fixed response.
fn answering() -> Fake {
    Fake::new(|req| {
        Ok(match req {
            NativeRequest::Range(r) if r.count_only => NativeResponse::Range(RangeResponse {
                header: header(),
                count: 7,
                ..Default::default()
            }),
            NativeRequest::Range(_) => NativeResponse::Range(RangeResponse {
                header: header(),
                kvs: vec![kv("foo", "bar"), kv("foo2", "baz")],
                count: 2,
                more: false,
            }),
            NativeRequest::Put(p) => NativeResponse::Put(PutResponse {
                header: header(),
                prev_kv: p.prev_kv.then(|| kv("k", "old")),
            }),
            NativeRequest::DeleteRange(d) => NativeResponse::DeleteRange(DeleteRangeResponse {
                header: header(),
                deleted: 1,
                prev_kvs: if d.prev_kv { vec![kv("k", "gone")] } else { vec![] },
            }),
            NativeRequest::Txn(t) => NativeResponse::Txn(TxnResponse {
                header: header(),
                succeeded: !t.compare.is_empty(),
                responses: vec![ResponseOp::Put(PutResponse::default())],
            }),
            NativeRequest::Compact(_) => {
                NativeResponse::Compact(CompactionResponse { header: header() })
            }
            NativeRequest::Status(_) => NativeResponse::Status(StatusResponse {
                header: header(),
                leader: 2,
                db_size: 20480,
                raft_term: 3,
                raft_index: 10,
                raft_applied_index: 10,
                ..Default::default()
            }),
            NativeRequest::LeaseGrant(r) => NativeResponse::LeaseGrant(LeaseGrantResponse {
                header: header(),
                id: LEASE,
                ttl: r.ttl.max(2),
            }),
            NativeRequest::LeaseRevoke(r) if r.id == GONE => {
                return Err(CtlError::Request { message: AtollError::LeaseNotFound.to_string() });
            }
            NativeRequest::LeaseRevoke(_) => {
                NativeResponse::LeaseRevoke(LeaseRevokeResponse { header: header() })
            }
            NativeRequest::LeaseKeepAlive(r) => {
                let ttl = if r.id == GONE { 0 } else { 60 };
                NativeResponse::LeaseKeepAlive(LeaseKeepAliveResponse {
                    header: header(),
                    id: r.id,
                    ttl,
                })
            }
            NativeRequest::LeaseTimeToLive(r) if r.id == GONE => {
                NativeResponse::LeaseTimeToLive(LeaseTimeToLiveResponse {
                    header: header(),
                    id: r.id,
                    ttl: -1,
                    ..Default::default()
                })
            }
            NativeRequest::LeaseTimeToLive(r) => {
                NativeResponse::LeaseTimeToLive(LeaseTimeToLiveResponse {
                    header: header(),
                    id: r.id,
                    ttl: 59,
                    granted_ttl: 60,
                    keys: if r.keys { vec![b"foo".to_vec(), b"zoo".to_vec()] } else { vec![] },
                })
            }
            NativeRequest::LeaseLeases(_) => NativeResponse::LeaseLeases(LeaseLeasesResponse {
                header: header(),
                ids: vec![GONE, LEASE],
            }),
            NativeRequest::HashKv(_)
            | NativeRequest::CompactShard(_)
            | NativeRequest::Watch(_)
            | NativeRequest::Close(_)
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
                reason:
                    "atollctl sends no hashkv, shard compaction, close, member or node-only lease \
                         request, and watches on a stream"
                        .into(),
            }),
        })
    })
}

#[tokio::test]
async fn put_sends_key_value_and_prints_ok() {
    let fake = answering();
    let out = must_run(&fake, &["put", "k", "v", "--prev-kv"], "").await;
    assert_eq!((out.code(), out.stdout.as_str()), (0, "OK\nk\nold\n"));
    let expected = PutRequest {
        key: b"k".to_vec(),
        value: b"v".to_vec(),
        prev_kv: true,
        ..Default::default()
    };
    assert_eq!(fake.requests(), [NativeRequest::Put(expected)]);
    assert_eq!(fake.connects(), [vec!["127.0.0.1:2379".to_string()]]);
}

#[tokio::test]
async fn put_reads_a_missing_value_from_stdin() {
    let fake = answering();
    let out = must_run(&fake, &["put", "k", "-w", "json"], "line one\nline two\n").await;
    assert_eq!(
        out.stdout,
        r#"{"header":{"cluster_id":1,"member_id":2,"revision":9,"raft_term":3}}"#.to_string()
            + "\n"
    );
    let NativeRequest::Put(put) = &fake.requests()[0] else { panic!("not a put") };
    assert_eq!(put.value, b"line one\nline two\n");
    let empty = must_run(&answering(), &["put", "k"], "").await;
    assert_eq!(empty.code(), 128);
}

#[tokio::test]
async fn get_prints_pairs_values_or_count() {
    let fake = answering();
    let out = must_run(&fake, &["get", "foo", "--prefix"], "").await;
    assert_eq!(out.stdout, "foo\nbar\nfoo2\nbaz\n");
    let NativeRequest::Range(r) = &fake.requests()[0] else { panic!("not a range") };
    assert_eq!((r.key.as_slice(), r.range_end.as_slice()), (&b"foo"[..], &b"fop"[..]));
    let out = must_run(&answering(), &["get", "foo", "--print-value-only"], "").await;
    assert_eq!(out.stdout, "bar\nbaz\n");
    let out = must_run(&answering(), &["get", "foo", "--count-only"], "").await;
    assert_eq!(out.stdout, "7\n");
    let out = must_run(&answering(), &["get", "foo", "--hex"], "").await;
    assert_eq!(
        out.stdout,
        "\\x66\\x6f\\x6f\n\\x62\\x61\\x72\n\\x66\\x6f\\x6f\\x32\n\\x62\\x61\\x7a\n"
    );
}

#[tokio::test]
async fn get_json_matches_etcdctl() {
    let out = must_run(&answering(), &["-w", "json", "get", "foo"], "").await;
    assert_eq!(
        out.stdout,
        concat!(
            r#"{"header":{"cluster_id":1,"member_id":2,"revision":9,"raft_term":3},"kvs":["#,
            r#"{"key":"Zm9v","create_revision":4,"mod_revision":9,"version":2,"value":"YmFy"},"#,
            r#"{"key":"Zm9vMg==","create_revision":4,"mod_revision":9,"version":2,"value":"YmF6"}],"count":2}"#,
            "\n"
        )
    );
}

#[tokio::test]
async fn argument_errors_fail_before_connecting() {
    let fake = answering();
    let cases: [(&[&str], u8, &str); 5] = [
        (
            &["get"],
            128,
            "get command needs one argument as key and an optional argument as range_end",
        ),
        (
            &["get", "k", "-w", "json", "--print-value-only"],
            128,
            "print-value-only is only for `--write-out=simple`",
        ),
        (&["get", "k", "--consistency=x"], 4, r#"unknown consistency flag "x""#),
        (&["txn", "extra"], 128, "txn command does not accept argument"),
        (
            &["del", "k", "--endpoints", " , "],
            128,
            "no endpoint given; set --endpoints host:port[,host:port]",
        ),
    ];
    for (args, code, message) in cases {
        let out = must_run(&fake, args, "").await;
        assert_eq!((out.code(), out.error().as_str()), (code, message), "{args:?}");
    }
    assert!(fake.connects().is_empty());
}

#[tokio::test]
async fn del_prints_count_and_previous_pairs() {
    let fake = answering();
    let out = must_run(&fake, &["del", "k", "--prev-kv"], "").await;
    assert_eq!(out.stdout, "1\nk\ngone\n");
    let out = must_run(&fake, &["del", "k", "-w", "json"], "").await;
    assert_eq!(
        out.stdout,
        r#"{"header":{"cluster_id":1,"member_id":2,"revision":9,"raft_term":3},"deleted":1}"#
            .to_string()
            + "\n"
    );
}

#[tokio::test]
async fn txn_reads_stdin_and_prints_each_response() {
    let fake = answering();
    let input = "mod(\"k\") > \"0\"\n\nput k v\n\nput k w\n\n";
    let out = must_run(&fake, &["txn"], input).await;
    assert_eq!(out.stdout, "SUCCESS\n\nOK\n");
    let NativeRequest::Txn(t) = &fake.requests()[0] else { panic!("not a txn") };
    assert_eq!((t.compare.len(), t.success.len(), t.failure.len()), (1, 1, 1));
    let out = must_run(&fake, &["txn", "-i"], "\nput k v\n\n\n").await;
    assert_eq!(
        out.stdout,
        "compares:\nsuccess requests (get, put, del):\nfailure requests (get, put, del):\nFAILURE\n\nOK\n"
    );
    let out = must_run(&fake, &["txn", "-w", "json"], "\n\n\n").await;
    let expected = concat!(r#""responses":[{"Response":{"response_put":{"header":{}}}}]}"#, "\n");
    assert!(out.stdout.ends_with(expected), "{}", out.stdout);
}

#[tokio::test]
async fn txn_syntax_errors_exit_3_without_connecting() {
    let fake = answering();
    let out = must_run(&fake, &["txn"], "mod(\"k\") >> \"0\"\n\n\n\n").await;
    assert_eq!(out.code(), 3);
    assert_eq!(
        out.error(),
        r#"malformed comparison: mod("k") >> "0" (unknown operator ">>"; use =, !=, > or <)"#
    );
    assert!(fake.connects().is_empty());
}

#[tokio::test]
async fn compaction_prints_the_revision() {
    let fake = answering();
    let out = must_run(&fake, &["compaction", "5", "--physical", "-w", "json"], "").await;
    assert_eq!(out.stdout, "compacted revision 5\n");
    assert_eq!(
        fake.requests(),
        [NativeRequest::Compact(CompactionRequest { revision: 5, physical: true })]
    );
}

#[tokio::test]
async fn server_errors_keep_their_text() {
    let fake = Fake::new(|_| {
        Err(CtlError::Request {
            message: AtollError::Compacted { compact_revision: 3 }.to_string(),
        })
    });
    let out = must_run(&fake, &["get", "k", "--rev", "1"], "").await;
    assert_eq!(
        (out.code(), out.error().as_str()),
        (1, "etcdserver: mvcc: required revision has been compacted")
    );
    assert!(out.stdout.is_empty());
}

#[tokio::test]
async fn timeouts_and_unreachable_endpoints_are_bounded_errors() {
    let fake = answering().with(&[], true);
    let started = Instant::now();
    let out = must_run(&fake, &["get", "k", "--command-timeout=50ms"], "").await;
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(
        out.error(),
        "context deadline exceeded: no answer from 127.0.0.1:2379 within --command-timeout=50ms"
    );
    let fake = answering().with(&["127.0.0.1:1"], false);
    let out = must_run(&fake, &["put", "k", "v", "--endpoints=127.0.0.1:1"], "").await;
    assert_eq!(out.code(), 1);
    assert!(out.error().starts_with("context deadline exceeded: could not connect to 127.0.0.1:1"));
}

#[tokio::test]
async fn endpoint_status_prints_good_endpoints_and_reports_bad_ones() {
    let fake = answering();
    let out = must_run(&fake, &["endpoint", "status", "--endpoints=a:1,down:2"], "").await;
    assert_eq!(out.stdout, "a:1, 2, a:1, 20 kB, true, false, 3, 10, 10, \n");
    assert_eq!(out.stderr, "Failed to get the status of endpoint down:2 (cannot reach down:2)\n");
    assert!(matches!(out.result, Err(CtlError::StatusFailed { failed: 1 })));
    let out = must_run(&fake, &["endpoint", "status", "--endpoints=a:1", "-w", "json"], "").await;
    assert!(out.stdout.starts_with(r#"[{"Endpoint":"a:1","Status":{"header":{"#), "{}", out.stdout);
    assert_eq!(out.code(), 0);
}

#[tokio::test]
async fn endpoint_health_checks_each_endpoint_with_its_own_client() {
    let fake = answering().with(&["b:2"], false);
    let out = must_run(&fake, &["endpoint", "health", "--endpoints=a:1,b:2"], "").await;
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{}", out.stderr);
    assert!(lines[0].starts_with("a:1 is healthy: successfully committed proposal: took = "));
    assert!(
        lines[1]
            .starts_with("b:2 is unhealthy: failed to commit proposal: context deadline exceeded")
    );
    assert!(out.stdout.is_empty());
    assert_eq!(out.error(), "unhealthy cluster");
    assert_eq!(fake.connects(), [vec!["a:1".to_string()], vec!["b:2".to_string()]]);
    let NativeRequest::Range(read) = &fake.requests()[0] else { panic!("not a range") };
    assert_eq!((read.key.as_slice(), read.serializable), (HEALTH_KEY, false));
    let out = must_run(&answering(), &["endpoint", "health", "-w", "json"], "").await;
    assert!(out.stdout.starts_with(r#"[{"endpoint":"127.0.0.1:2379","health":true,"took":""#));
    assert_eq!(out.code(), 0);
}

#[tokio::test]
async fn join_all_keeps_input_order() {
    let delays = [30u64, 1, 10];
    let futures = delays
        .iter()
        .map(|ms| async move {
            tokio::time::sleep(Duration::from_millis(*ms)).await;
            *ms
        })
        .collect();
    assert_eq!(join_all(futures).await, delays);
}

#[test]
fn read_value_enforces_its_limit() {
    assert_eq!(read_value(&mut &b"abc"[..], 3).ok(), Some(b"abc".to_vec()));
    let err = read_value(&mut &b"abcd"[..], 3).err().map(|e| e.to_string());
    assert_eq!(err.as_deref(), Some("the value read from standard input exceeds 3 bytes"));
}

fn watch_responses() -> Vec<WatchResponse> {
    let put = Event { kind: EventType::Put, kv: kv("k", "v2"), prev_kv: Some(kv("k", "v1")) };
    let deleted = KeyValue { key: b"k".to_vec(), mod_revision: 10, ..Default::default() };
    let delete = Event { kind: EventType::Delete, kv: deleted, prev_kv: None };
    vec![
        WatchResponse { header: header(), created: true, ..Default::default() },
        WatchResponse { header: header(), events: vec![put, delete], ..Default::default() },
        WatchResponse { header: header(), ..Default::default() },
        WatchResponse {
            header: header(),
            canceled: true,
            compact_revision: 4,
            ..Default::default()
        },
    ]
}

#[tokio::test]
async fn watch_prints_events_like_etcdctl_until_the_server_cancels() {
    let fake = Fake::new(|_| panic!("no plain request")).with_watch(watch_responses());
    let out =
        must_run(&fake, &["--endpoints", "a:1", "watch", "k", "--prev-kv", "--rev", "3"], "").await;
    assert_eq!(out.stdout, "PUT\nk\nv1\nk\nv2\nDELETE\nk\n\nprogress notify: 9\n");
    assert_eq!(
        out.stderr,
        "watch was canceled (etcdserver: mvcc: required revision has been compacted)\n"
    );
    assert_eq!(out.error(), "watch is canceled by the server");
    assert_eq!(out.code(), 5);
    let create = WatchCreateRequest {
        key: b"k".to_vec(),
        start_revision: 3,
        prev_kv: true,
        ..Default::default()
    };
    let opened = NativeRequest::Watch(atoll_proto::WatchRequest::Create(create));
    assert_eq!(fake.requests(), vec![opened]);
}

#[tokio::test]
async fn watch_json_and_argument_errors() {
    let fake = Fake::new(|_| panic!("no plain request")).with_watch(watch_responses());
    let out =
        must_run(&fake, &["--endpoints", "a:1", "-w", "json", "watch", "p", "--prefix"], "").await;
    let header = r#"{"cluster_id":1,"member_id":2,"revision":9,"raft_term":3}"#;
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(
        lines[0],
        format!(
            r#"{{"Header":{header},"Events":[{{"kv":{{"key":"aw==","create_revision":4,"mod_revision":9,"version":2,"value":"djI="}},"prev_kv":{{"key":"aw==","create_revision":4,"mod_revision":9,"version":2,"value":"djE="}}}},{{"type":1,"kv":{{"key":"aw==","mod_revision":10}}}}],"CompactRevision":0,"Canceled":false,"Created":false}}"#
        )
    );
    assert_eq!(lines[1], "progress notify: 9");
    assert_eq!(lines.len(), 4);
    let Some(NativeRequest::Watch(atoll_proto::WatchRequest::Create(sent))) = fake.requests().pop()
    else {
        panic!("no watch opened");
    };
    assert_eq!((sent.key, sent.range_end), (b"p".to_vec(), b"q".to_vec()));

    for (args, error) in [
        (&["watch"][..], "bad number of arguments"),
        (&["watch", "a", "b", "--prefix"][..], "`range_end` and `--prefix` are mutually exclusive"),
    ] {
        let fake = Fake::new(|_| panic!("no request"));
        let mut all = vec!["--endpoints", "a:1"];
        all.extend_from_slice(args);
        let out = must_run(&fake, &all, "").await;
        assert_eq!((out.error().as_str(), out.code()), (error, 128));
        assert!(fake.connects().is_empty(), "bad arguments fail before connecting");
    }
}

#[tokio::test]
async fn lease_commands_print_as_etcdctl() {
    let fake = answering();
    let out = must_run(&fake, &["lease", "grant", "60"], "").await;
    assert_eq!(out.stdout, "lease 694d77aa9e38260f granted with TTL(60s)\n");
    let out = must_run(&fake, &["lease", "revoke", "694d77aa9e38260f"], "").await;
    assert_eq!(out.stdout, "lease 694d77aa9e38260f revoked\n");
    let out = must_run(&fake, &["lease", "keep-alive", "--once", "694d77aa9e38260f"], "").await;
    assert_eq!(out.stdout, "lease 694d77aa9e38260f keepalived with TTL(60)\n");
    let out = must_run(&fake, &["lease", "timetolive", "694d77aa9e38260f", "--keys"], "").await;
    assert_eq!(
        out.stdout,
        "lease 694d77aa9e38260f granted with TTL(60s), remaining(59s), attached keys([foo zoo])\n"
    );
    let out = must_run(&fake, &["lease", "timetolive", "1"], "").await;
    assert_eq!(out.stdout, "lease 0000000000000001 already expired\n");
    let out = must_run(&fake, &["lease", "list"], "").await;
    assert_eq!(out.stdout, "found 2 leases\n0000000000000001\n694d77aa9e38260f\n");
    assert_eq!(
        fake.requests()[..2],
        [
            NativeRequest::LeaseGrant(LeaseGrantRequest { ttl: 60, id: 0 }),
            NativeRequest::LeaseRevoke(LeaseRevokeRequest { id: LEASE }),
        ]
    );
}

#[tokio::test]
async fn lease_json_matches_etcdctl() {
    let fake = answering();
    let cases: [(&[&str], &str); 5] = [
        (
            &["lease", "grant", "60", "-w", "json"],
            r#"{"cluster_id":1,"member_id":2,"revision":9,"raft_term":3,"ID":7587852521871779343,"TTL":60,"Error":""}"#,
        ),
        (
            &["lease", "revoke", "694d77aa9e38260f", "-w", "json"],
            r#"{"header":{"cluster_id":1,"member_id":2,"revision":9,"raft_term":3}}"#,
        ),
        (
            &["lease", "keep-alive", "--once", "694d77aa9e38260f", "-w", "json"],
            r#"{"cluster_id":1,"member_id":2,"revision":9,"raft_term":3,"ID":7587852521871779343,"TTL":60}"#,
        ),
        (
            &["lease", "timetolive", "1", "-w", "json"],
            r#"{"cluster_id":1,"member_id":2,"revision":9,"raft_term":3,"id":1,"ttl":-1,"granted-ttl":0,"keys":null}"#,
        ),
        (
            &["lease", "list", "-w", "json"],
            r#"{"cluster_id":1,"member_id":2,"revision":9,"raft_term":3,"leases":[{"id":1},{"id":7587852521871779343}]}"#,
        ),
    ];
    for (args, want) in cases {
        let out = must_run(&fake, args, "").await;
        assert_eq!(out.stdout, format!("{want}\n"), "{args:?}");
    }
    let out =
        must_run(&fake, &["lease", "timetolive", "694d77aa9e38260f", "--keys", "-w", "json"], "")
            .await;
    assert!(
        out.stdout.contains(r#""ttl":59,"granted-ttl":60,"keys":["Zm9v","em9v"]}"#),
        "{}",
        out.stdout
    );
}

#[tokio::test]
async fn lease_errors_keep_etcdctls_words_and_exit_codes() {
    let fake = answering();
    let cases: [(&[&str], &str, u8); 7] = [
        (&["lease", "grant"], "lease grant command needs TTL argument", 128),
        (
            &["lease", "grant", "abc"],
            "bad TTL (strconv.ParseInt: parsing \"abc\": invalid syntax)",
            128,
        ),
        (
            &["lease", "revoke", "zz"],
            "bad lease ID arg (strconv.ParseInt: parsing \"zz\": invalid syntax), expecting ID in Hex",
            128,
        ),
        (&["lease", "revoke", "5", "6"], "lease revoke command needs 1 argument", 128),
        (&["lease", "timetolive"], "lease timetolive command needs lease ID as argument", 128),
        (
            &["lease", "revoke", "1"],
            "failed to revoke lease (etcdserver: requested lease not found)",
            1,
        ),
        (&["lease", "keep-alive", "--once", "1"], "etcdserver: requested lease not found", 2),
    ];
    for (args, message, code) in cases {
        let out = must_run(&fake, args, "").await;
        assert_eq!((out.error().as_str(), out.code()), (message, code), "{args:?}");
    }
    // A streaming keep-alive ends when its lease is gone, as etcdctl's.
    let out = must_run(&fake, &["lease", "keep-alive", "1"], "").await;
    assert_eq!(
        (out.stdout.as_str(), out.code()),
        ("lease 0000000000000001 expired or revoked.\n", 0)
    );
}
