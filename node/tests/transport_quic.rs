//! The native QUIC transport end to end: a real server with a fake request handler, the
//! router's client, and raw streams for input no well-behaved client sends.

use atoll_node::certs::{TlsMaterial, ensure_dev_certs_with_trust_dir};
use atoll_node::transport::{QuicServer, QuicServerConfig, RequestHandler, TransportError};
use atoll_proto::frame::FRAME_HEADER_BYTES;
use atoll_proto::kv::*;
use atoll_proto::limits::FRAME_BYTES_MAX;
use atoll_proto::{AtollError, NativeRequest, NativeResponse, StatusResponse};
use atoll_proto::{decode_frame, encode_frame};
use atoll_router::tls::{ALPN_CLIENT, client_tls_config};
use atoll_router::{Client, ClientConfig, ClientError, Trust};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Request limit of the test servers: small, so oversized requests are cheap to build.
const TEST_MAX_REQUEST_BYTES: usize = 64 * 1024;
/// Upper bound on waiting for anything in these tests; hitting it is a failure.
const TEST_DEADLINE: Duration = Duration::from_secs(20);

/// Echoes keys and values back; a few keys act out server behaviour.
#[derive(Default)]
struct FakeHandler {
    calls: AtomicUsize,
    /// Answer `Busy` this many times before succeeding.
    busy_first: AtomicUsize,
}

impl RequestHandler for FakeHandler {
    fn handle(
        &self,
        req: NativeRequest,
    ) -> Pin<Box<dyn Future<Output = NativeResponse> + Send + 'static>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let busy = self
            .busy_first
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        Box::pin(async move {
            if busy {
                return NativeResponse::Error(AtollError::Busy { limit: "test-queue".into() });
            }
            answer(req).await
        })
    }
}

async fn answer(req: NativeRequest) -> NativeResponse {
    match req {
        NativeRequest::Put(p) if p.key == b"timeout" => NativeResponse::Error(AtollError::Timeout),
        NativeRequest::Put(p) => NativeResponse::Put(PutResponse {
            header: ResponseHeader { revision: p.value.len() as i64, ..Default::default() },
            prev_kv: Some(KeyValue { key: p.key, value: p.value, ..Default::default() }),
        }),
        NativeRequest::Range(r) if r.key == b"hang" => std::future::pending().await,
        NativeRequest::Range(r) if r.key == b"big" => NativeResponse::Range(RangeResponse {
            kvs: vec![KeyValue { key: r.key, value: vec![7; 2 << 20], ..Default::default() }],
            count: 1,
            ..Default::default()
        }),
        NativeRequest::Range(r) => NativeResponse::Range(RangeResponse {
            kvs: vec![KeyValue { key: r.key, ..Default::default() }],
            count: 1,
            ..Default::default()
        }),
        NativeRequest::Status(_) => {
            NativeResponse::Status(StatusResponse { version: "test".into(), ..Default::default() })
        }
        _ => NativeResponse::Error(AtollError::KeyNotFound),
    }
}

struct TestServer {
    server: QuicServer,
    handler: Arc<FakeHandler>,
    tls: TlsMaterial,
    _dir: tempfile::TempDir,
}

impl TestServer {
    fn endpoint(&self) -> String {
        self.server.local_addr().to_string()
    }

    fn trust(&self) -> Trust {
        must_trust(&self.tls)
    }

    async fn must_client(&self) -> Client {
        let cfg = ClientConfig::new(vec![self.endpoint()], self.trust());
        Client::connect(cfg).await.expect("client connects")
    }
}

fn init_logs() {
    let _ = tracing_subscriber::fmt().with_test_writer().with_env_filter("info").try_init();
}

fn must_trust(tls: &TlsMaterial) -> Trust {
    Trust::CaDer(tls.ca_certs_der().expect("ca parses").iter().map(|c| c.to_vec()).collect())
}

fn must_dev_certs(extra_hosts: &[String]) -> (TlsMaterial, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let tls = ensure_dev_certs_with_trust_dir(dir.path(), extra_hosts, None).expect("certs");
    (tls, dir)
}

fn must_start_with(tls: TlsMaterial, dir: tempfile::TempDir) -> TestServer {
    let handler = Arc::new(FakeHandler::default());
    let cfg = QuicServerConfig {
        listen: "127.0.0.1:0".parse().expect("addr"),
        tls: tls.clone(),
        max_request_bytes: TEST_MAX_REQUEST_BYTES,
    };
    let server = QuicServer::bind(cfg, handler.clone()).expect("server binds");
    tokio::spawn(server.clone().run());
    TestServer { server, handler, tls, _dir: dir }
}

fn must_start() -> TestServer {
    let (tls, dir) = must_dev_certs(&[]);
    must_start_with(tls, dir)
}

fn put(key: &[u8], value_bytes: usize) -> PutRequest {
    PutRequest { key: key.to_vec(), value: vec![b'v'; value_bytes], ..Default::default() }
}

#[tokio::test]
async fn requests_round_trip_and_statuses_come_from_the_named_endpoint() {
    init_logs();
    let server = must_start();
    let client = server.must_client().await;
    tracing::info!("phase: every typed call reaches the handler and comes back");
    let put_answer = client.put(put(b"k", 3)).await.expect("put");
    assert_eq!(put_answer.header.revision, 3);
    assert_eq!(put_answer.prev_kv.expect("echo").key, b"k");
    let range = RangeRequest { key: b"r".to_vec(), ..Default::default() };
    assert_eq!(client.range(range).await.expect("range").kvs[0].key, b"r");
    let status = client.status(&server.endpoint()).await.expect("status");
    assert_eq!(status.version, "test");
    assert_eq!(client.endpoints(), [server.endpoint()]);
    tracing::info!("phase: a server error keeps the server's exact text");
    let err =
        client.delete_range(DeleteRangeRequest::default()).await.expect_err("handler says no");
    assert!(matches!(err, ClientError::Server(AtollError::KeyNotFound)), "{err:?}");
    assert_eq!(err.to_string(), "etcdserver: key not found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_requests_share_one_client() {
    init_logs();
    let server = must_start();
    let client = server.must_client().await;
    tracing::info!("phase: 200 tasks send at once over clones of one client");
    let tasks: Vec<_> = (0..200usize)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move {
                let key = format!("key-{i}").into_bytes();
                let answer = client.put(put(&key, i)).await.expect("put");
                assert_eq!(answer.prev_kv.expect("echo").key, key);
                assert_eq!(answer.header.revision, i as i64);
            })
        })
        .collect();
    for task in tasks {
        tokio::time::timeout(TEST_DEADLINE, task).await.expect("in time").expect("task ok");
    }
    assert_eq!(server.handler.calls.load(Ordering::SeqCst), 200);
}

#[tokio::test]
async fn oversized_requests_are_refused_and_the_connection_stays_usable() {
    init_logs();
    let server = must_start();
    let client = server.must_client().await;
    tracing::info!("phase: a request over max-request-bytes gets etcd's error, small and huge");
    for value_bytes in [TEST_MAX_REQUEST_BYTES + 1, 4 << 20] {
        let err = client.put(put(b"k", value_bytes)).await.expect_err("too large");
        assert!(matches!(err, ClientError::Server(AtollError::RequestTooLarge { .. })), "{err:?}");
        assert_eq!(err.to_string(), "etcdserver: request is too large");
    }
    assert_eq!(server.handler.calls.load(Ordering::SeqCst), 0);
    tracing::info!("phase: the same client and connection still work");
    client.put(put(b"k", 10)).await.expect("small put after refusals");
}

#[tokio::test]
async fn retries_follow_the_idempotency_rule() {
    init_logs();
    let server = must_start();
    let client = server.must_client().await;
    tracing::info!("phase: busy proves the put was not applied, so it is retried");
    server.handler.busy_first.store(2, Ordering::SeqCst);
    client.put(put(b"k", 1)).await.expect("put succeeds after busy answers");
    assert_eq!(server.handler.calls.load(Ordering::SeqCst), 3);
    tracing::info!("phase: a timed-out put may have been applied, so it is not resent");
    server.handler.calls.store(0, Ordering::SeqCst);
    let err = client.put(put(b"timeout", 1)).await.expect_err("timeout");
    assert!(matches!(err, ClientError::Server(AtollError::Timeout)), "{err:?}");
    assert_eq!(server.handler.calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn slow_and_oversized_answers_are_bounded() {
    init_logs();
    let server = must_start();
    tracing::info!("phase: no answer within request_timeout is a timeout");
    let mut cfg = ClientConfig::new(vec![server.endpoint()], server.trust());
    cfg.request_timeout = Duration::from_millis(300);
    let client = Client::connect(cfg).await.expect("connects");
    let hang = RangeRequest { key: b"hang".to_vec(), ..Default::default() };
    let err = client.range(hang).await.expect_err("hangs");
    assert!(matches!(err, ClientError::Timeout { .. }), "{err:?}");
    tracing::info!("phase: an answer over max_response_bytes is refused, not buffered");
    let mut cfg = ClientConfig::new(vec![server.endpoint()], server.trust());
    cfg.max_response_bytes = 1 << 20;
    let client = Client::connect(cfg).await.expect("connects");
    let big = RangeRequest { key: b"big".to_vec(), ..Default::default() };
    let err = client.range(big).await.expect_err("too big");
    assert!(err.to_string().contains("max_response_bytes"), "{err}");
}

/// Sends raw bytes on a fresh stream of `conn` and decodes the answer.
async fn must_exchange_raw(conn: &quinn::Connection, bytes: &[u8], finish: bool) -> NativeResponse {
    let (mut send, mut recv) = conn.open_bi().await.expect("stream opens");
    send.write_all(bytes).await.expect("writes");
    if finish {
        send.finish().expect("finishes");
    }
    let answer = tokio::time::timeout(TEST_DEADLINE, recv.read_to_end(1 << 20)).await;
    let answer = answer.expect("answer in time").expect("answer reads");
    decode_frame(&answer, FRAME_BYTES_MAX).expect("answer decodes")
}

async fn must_raw_connection(server: &TestServer, alpn: &[u8]) -> quinn::Connection {
    let endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().expect("addr")).expect("bind");
    let mut tls = client_tls_config(&server.trust()).expect("tls");
    tls.alpn_protocols = vec![alpn.to_vec()];
    let quic = quinn::crypto::rustls::QuicClientConfig::try_from(tls).expect("quic tls");
    let cfg = quinn::ClientConfig::new(Arc::new(quic));
    let connecting = endpoint.connect_with(cfg, server.server.local_addr(), "localhost");
    connecting.expect("dial starts").await.expect("handshake")
}

#[tokio::test]
async fn malformed_frames_get_error_answers_on_their_own_stream() {
    init_logs();
    let server = must_start();
    let conn = must_raw_connection(&server, ALPN_CLIENT).await;
    let good = encode_frame(&NativeRequest::Range(RangeRequest::default())).expect("encodes");
    tracing::info!("phase: a wrong version byte is answered as such");
    let mut wrong_version = good.clone();
    wrong_version[0] = 9;
    let answer = must_exchange_raw(&conn, &wrong_version, true).await;
    assert_eq!(answer, NativeResponse::Error(AtollError::UnsupportedVersion { version: 9 }));
    tracing::info!("phase: garbage, truncation and trailing bytes are malformed");
    let mut garbage = good[..FRAME_HEADER_BYTES].to_vec();
    garbage[1..5].copy_from_slice(&4u32.to_be_bytes());
    garbage.extend_from_slice(&[0xff; 4]);
    let trailing = [good.clone(), vec![0]].concat();
    for bad in [&garbage[..], &good[..3], &good[..good.len() - 1], &trailing[..], &[][..]] {
        let answer = must_exchange_raw(&conn, bad, true).await;
        assert!(
            matches!(answer, NativeResponse::Error(AtollError::Malformed { .. })),
            "{answer:?}"
        );
    }
    tracing::info!("phase: a header announcing too much is refused before the rest is sent");
    let mut huge = good[..FRAME_HEADER_BYTES].to_vec();
    huge[1..5].copy_from_slice(&u32::MAX.to_be_bytes());
    let answer = must_exchange_raw(&conn, &huge, false).await;
    let limit_bytes = TEST_MAX_REQUEST_BYTES as u64;
    let expected = AtollError::RequestTooLarge { request_bytes: u32::MAX as u64, limit_bytes };
    assert_eq!(answer, NativeResponse::Error(expected));
    tracing::info!("phase: the connection and the server still serve good requests");
    assert!(matches!(must_exchange_raw(&conn, &good, true).await, NativeResponse::Range(_)));
    assert_eq!(server.handler.calls.load(Ordering::SeqCst), 1);
    let client = server.must_client().await;
    client.status(&server.endpoint()).await.expect("server alive");
}

#[tokio::test]
async fn unknown_alpn_is_refused() {
    init_logs();
    let server = must_start();
    let endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().expect("addr")).expect("bind");
    let mut tls = client_tls_config(&server.trust()).expect("tls");
    tls.alpn_protocols = vec![b"atoll-bogus/1".to_vec()];
    let quic = quinn::crypto::rustls::QuicClientConfig::try_from(tls).expect("quic tls");
    let cfg = quinn::ClientConfig::new(Arc::new(quic));
    let connecting = endpoint.connect_with(cfg, server.server.local_addr(), "localhost");
    let result = tokio::time::timeout(TEST_DEADLINE, connecting.expect("dial starts")).await;
    let err = result.expect("handshake ends in time").expect_err("refused");
    // TLS alert 120 is no_application_protocol (RFC 7301 §3.2).
    let no_alpn = quinn::TransportErrorCode::crypto(120);
    let closed_for_alpn =
        matches!(&err, quinn::ConnectionError::ConnectionClosed(c) if c.error_code == no_alpn);
    assert!(closed_for_alpn, "{err:?}");
}

#[tokio::test]
async fn trust_decides_the_handshake() {
    init_logs();
    let server = must_start();
    tracing::info!("phase: a client trusting another CA fails with a hint");
    let (other_tls, _other_dir) = must_dev_certs(&[]);
    let cfg = ClientConfig::new(vec![server.endpoint()], must_trust(&other_tls));
    let err = Client::connect(cfg).await.expect_err("untrusted server");
    let text = err.to_string();
    assert!(matches!(err, ClientError::Connect { .. }), "{err:?}");
    assert!(text.contains("not signed by a trusted CA") && text.contains("--cacert"), "{text}");
    tracing::info!("phase: a wrong server name fails, skipping verification succeeds");
    let mut cfg = ClientConfig::new(vec![server.endpoint()], server.trust());
    cfg.server_name = Some("elsewhere.test".into());
    let err = Client::connect(cfg).await.expect_err("name mismatch");
    assert!(err.to_string().contains("not valid for name"), "{err}");
    let cfg = ClientConfig::new(vec![server.endpoint()], Trust::InsecureSkipVerify);
    Client::connect(cfg).await.expect("insecure client connects");
}

#[tokio::test]
async fn extra_hosts_are_certified_and_endpoints_fail_over() {
    init_logs();
    let (tls, dir) = must_dev_certs(&["atoll.test".to_string()]);
    let server = must_start_with(tls, dir);
    tracing::info!("phase: an extra host name in the certificate is accepted");
    let mut cfg = ClientConfig::new(vec![format!("https://{}", server.endpoint())], server.trust());
    cfg.server_name = Some("atoll.test".into());
    Client::connect(cfg).await.expect("extra host trusted");
    tracing::info!("phase: a dead first endpoint is skipped");
    let dead = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let dead_endpoint = dead.local_addr().expect("addr").to_string();
    let mut cfg = ClientConfig::new(vec![dead_endpoint, server.endpoint()], server.trust());
    cfg.dial_timeout = Duration::from_secs(1);
    let client = Client::connect(cfg).await.expect("second endpoint reachable");
    client.put(put(b"k", 1)).await.expect("put via second endpoint");
}

#[tokio::test]
async fn bind_conflicts_are_one_line_and_close_stops_the_server() {
    init_logs();
    let server = must_start();
    let addr = server.server.local_addr();
    tracing::info!("phase: a second server on the same port says so");
    let cfg = QuicServerConfig { listen: addr, tls: server.tls.clone(), max_request_bytes: 1024 };
    let err = QuicServer::bind(cfg, server.handler.clone()).expect_err("port taken");
    assert!(matches!(err, TransportError::Bind { .. }), "{err:?}");
    assert_eq!(err.to_string(), format!("cannot listen on {addr}/udp: address in use"));
    tracing::info!("phase: close ends run");
    let (tls, dir) = must_dev_certs(&[]);
    let cfg = QuicServerConfig {
        listen: "127.0.0.1:0".parse().expect("addr"),
        tls,
        max_request_bytes: 1024,
    };
    let other = QuicServer::bind(cfg, server.handler.clone()).expect("binds");
    let running = tokio::spawn(other.clone().run());
    other.close();
    tokio::time::timeout(TEST_DEADLINE, running).await.expect("run ends").expect("no panic");
    drop(dir);
}
