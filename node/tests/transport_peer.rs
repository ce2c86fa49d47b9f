//! The peer transport on loopback: batches in every direction, coalescing, reconnection
//! after a restart, bounded queues that drop and count, refusal of foreign certificates,
//! foreign clusters and unknown nodes, snapshots that arrive byte-exact or not at all, and
//! forwarded requests: answered by the receiving node from either side of a connection,
//! bounded in flight, bad input answered without harming the connection, dead peers
//! reported quickly; a removed member told so whichever side dials.

mod support;

use atoll_node::certs::{TlsMaterial, create_ca, issue_node_cert};
use atoll_node::transport::TransportError;
use atoll_node::transport::peer::limits::{
    FORWARD_CONNECT_TIMEOUT, FORWARD_STREAMS_PER_CONNECTION_MAX, PEER_KNOCK_AFTER,
    PEER_QUEUE_MESSAGES_MAX,
};
use atoll_node::transport::peer::{
    ALPN_PEER, PeerForwardError, PeerInbox, PeerSendError, PeerStats, PeerTransport,
    PeerTransportConfig, SinkFuture, SinkRefused, SnapshotSendError, SnapshotSink,
};
use atoll_proto::frame::{FRAME_HEADER_BYTES, FRAME_VERSION};
use atoll_proto::limits::MAX_REQUEST_BYTES_DEFAULT;
use atoll_proto::peer::{
    PeerFrame, RaftMessage, RaftMessageType, RaftSnapshot, RaftSnapshotMetadata, ShardMessage,
    ShardPayload, SnapshotChunk, SnapshotEnd, SnapshotHeader, forward_request_bytes_max,
};
use atoll_proto::{
    AtollError, KeyValue, LogIndex, NativeRequest, NativeResponse, NodeId, PutRequest, PutResponse,
    RangeRequest, ResponseHeader, ShardId, Term, decode_frame, encode_frame,
};
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// How long a condition may take to become true (reconnects wait out a redial backoff).
const DEADLINE: Duration = Duration::from_secs(20);
const CLUSTER: u64 = 0xa701;
/// A shard whose snapshots the test inbox refuses.
const REFUSED_SHARD: ShardId = ShardId(99);

fn init_logs() {
    let _ = tracing_subscriber::fmt().with_test_writer().with_env_filter("info").try_init();
}

/// Snapshots received whole: header and bytes.
type Received = Arc<Mutex<Vec<(SnapshotHeader, Vec<u8>)>>>;

/// Forwarded puts whose key starts with this wait until the inbox's gate opens.
const HELD_PREFIX: &[u8] = b"hold/";

/// What one node received.
struct Inbox {
    node: NodeId,
    messages: Arc<Mutex<Vec<(NodeId, ShardMessage)>>>,
    snapshots: Received,
    aborted: Arc<Mutex<Vec<String>>>,
    /// Forwarded requests being served now.
    forwards_in_flight: Arc<AtomicUsize>,
    /// Opens (true) the gate held forwards wait behind.
    gate: watch::Sender<bool>,
    /// Peers whose connection ended, in order.
    unreachable: Arc<Mutex<Vec<NodeId>>>,
    /// Members this node knows were removed from the cluster.
    removed: Mutex<Vec<NodeId>>,
    /// Peers that refused this node as a removed member, in order.
    told_removed: Mutex<Vec<NodeId>>,
}

impl Inbox {
    fn new(node: NodeId) -> Inbox {
        Inbox {
            node,
            messages: Arc::default(),
            snapshots: Arc::default(),
            aborted: Arc::default(),
            forwards_in_flight: Arc::default(),
            gate: watch::Sender::new(false),
            unreachable: Arc::default(),
            removed: Mutex::default(),
            told_removed: Mutex::default(),
        }
    }
}

/// The test inbox's answer to a put of `key` forwarded by node `from` to node `node`.
fn served_put(node: NodeId, from: NodeId, key: &[u8]) -> NativeResponse {
    NativeResponse::Put(PutResponse {
        header: ResponseHeader { member_id: node.0, ..Default::default() },
        prev_kv: Some(KeyValue { key: key.to_vec(), lease: from.0 as i64, ..Default::default() }),
    })
}

fn put(key: &[u8], value_bytes: usize) -> NativeRequest {
    NativeRequest::Put(PutRequest {
        key: key.to_vec(),
        value: vec![0x61; value_bytes],
        ..Default::default()
    })
}

impl Inbox {
    fn messages(&self) -> Vec<(NodeId, ShardMessage)> {
        self.messages.lock().expect("lock").clone()
    }

    fn unreachable(&self) -> Vec<NodeId> {
        self.unreachable.lock().expect("lock").clone()
    }

    fn told_removed(&self) -> Vec<NodeId> {
        self.told_removed.lock().expect("lock").clone()
    }

    fn count_from(&self, from: NodeId) -> usize {
        self.messages.lock().expect("lock").iter().filter(|(f, _)| *f == from).count()
    }
}

impl PeerInbox for Inbox {
    fn deliver(&self, from: NodeId, batch: Vec<ShardMessage>) {
        let mut messages = self.messages.lock().expect("lock");
        messages.extend(batch.into_iter().map(|m| (from, m)));
    }

    fn peer_unreachable(&self, node: NodeId) {
        self.unreachable.lock().expect("lock").push(node);
    }

    fn is_removed_member(&self, node: NodeId) -> bool {
        self.removed.lock().expect("lock").contains(&node)
    }

    fn removed_from_cluster(&self, by: NodeId) {
        self.told_removed.lock().expect("lock").push(by);
    }

    fn join(
        &self,
        req: &atoll_proto::member::JoinRequest,
    ) -> Result<atoll_proto::member::JoinResponse, String> {
        Err(format!("no member has the peer URLs {:?}", req.peer_urls))
    }

    fn snapshot(&self, header: &SnapshotHeader) -> Result<Box<dyn SnapshotSink>, SinkRefused> {
        if header.shard == REFUSED_SHARD {
            return Err(SinkRefused { reason: format!("shard {} is not here", header.shard) });
        }
        Ok(Box::new(Sink {
            header: header.clone(),
            data: Vec::new(),
            done: Arc::clone(&self.snapshots),
            aborted: Arc::clone(&self.aborted),
        }))
    }

    /// Answers puts with who served them for whom; holds `hold/` puts until the gate opens.
    fn serve_forwarded(
        &self,
        from: NodeId,
        req: NativeRequest,
    ) -> Pin<Box<dyn Future<Output = NativeResponse> + Send + 'static>> {
        let node = self.node;
        let in_flight = InFlight::new(&self.forwards_in_flight);
        let mut gate = self.gate.subscribe();
        Box::pin(async move {
            let _in_flight = in_flight;
            let NativeRequest::Put(put) = req else {
                let reason = "the test inbox serves puts only".to_string();
                return NativeResponse::Error(AtollError::Malformed { reason });
            };
            if put.key.starts_with(HELD_PREFIX) {
                let _ = gate.wait_for(|open| *open).await;
            }
            served_put(node, from, &put.key)
        })
    }
}

struct Sink {
    header: SnapshotHeader,
    data: Vec<u8>,
    done: Received,
    aborted: Arc<Mutex<Vec<String>>>,
}

impl SnapshotSink for Sink {
    fn write(&mut self, chunk: Vec<u8>) -> SinkFuture<'_> {
        self.data.extend_from_slice(&chunk);
        Box::pin(async { Ok(()) })
    }

    fn finish(self: Box<Self>) -> SinkFuture<'static> {
        self.done.lock().expect("lock").push((self.header, self.data));
        Box::pin(async { Ok(()) })
    }

    fn abort(self: Box<Self>, reason: &str) {
        self.aborted.lock().expect("lock").push(reason.to_string());
    }
}

/// Counts a forward in flight until dropped (also when its stream is abandoned).
struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    fn new(counter: &Arc<AtomicUsize>) -> InFlight {
        counter.fetch_add(1, Ordering::SeqCst);
        InFlight(Arc::clone(counter))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A cluster CA in `dir/ca` and `n` node certificates signed by it.
fn must_certs(dir: &Path, n: usize) -> Vec<TlsMaterial> {
    let ca = dir.join("ca");
    create_ca(&ca).expect("creates a CA");
    (0..n)
        .map(|i| issue_node_cert(&ca, &dir.join(format!("node{i}")), &[]).expect("issues"))
        .collect()
}

struct Node {
    transport: PeerTransport,
    inbox: Arc<Inbox>,
}

impl Node {
    fn id(&self) -> NodeId {
        self.transport.node_id()
    }

    fn addr(&self) -> SocketAddr {
        self.transport.local_addr()
    }

    fn stats(&self) -> PeerStats {
        self.transport.stats()
    }
}

fn must_start(
    id: u64,
    cluster_id: u64,
    listen: SocketAddr,
    tls: &TlsMaterial,
    peers: &[(u64, SocketAddr)],
) -> Node {
    start(id, cluster_id, listen, tls, peers).expect("starts")
}

/// Starts a node on the port a closed one used. In one process the old endpoint holds the
/// port until its connections have drained (three probe timeouts, longer for a connection
/// still in its handshake), so wait for it; a restarted process would not have to.
async fn must_restart(
    id: u64,
    listen: SocketAddr,
    tls: &TlsMaterial,
    peers: &[(u64, SocketAddr)],
) -> Node {
    let start_time = Instant::now();
    loop {
        match start(id, CLUSTER, listen, tls, peers) {
            Ok(node) => return node,
            Err(TransportError::Bind { .. }) if start_time.elapsed() < DEADLINE => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("node {id} does not restart on {listen}: {e}"),
        }
    }
}

fn start(
    id: u64,
    cluster_id: u64,
    listen: SocketAddr,
    tls: &TlsMaterial,
    peers: &[(u64, SocketAddr)],
) -> Result<Node, TransportError> {
    let inbox = Arc::new(Inbox::new(NodeId(id)));
    let cfg = PeerTransportConfig {
        node_id: NodeId(id),
        cluster_id,
        listen,
        tls: tls.clone(),
        peers: peers.iter().map(|(n, a)| (NodeId(*n), *a)).collect::<HashMap<_, _>>(),
    };
    let transport = PeerTransport::start(cfg, Arc::clone(&inbox) as Arc<dyn PeerInbox>)?;
    Ok(Node { transport, inbox })
}

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

fn reserved_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], support::free_port()))
}

/// Starts `tls.len()` nodes (IDs 1..) that all know each other.
fn must_start_mesh(tls: &[TlsMaterial]) -> Vec<Node> {
    let nodes: Vec<Node> = (0..tls.len())
        .map(|i| must_start(i as u64 + 1, CLUSTER, loopback(), &tls[i], &[]))
        .collect();
    for a in &nodes {
        for b in nodes.iter().filter(|b| b.id() != a.id()) {
            a.transport.set_peer(b.id(), b.addr()).expect("adds peer");
        }
    }
    nodes
}

fn msg(shard: u64, from: u64, to: u64, index: u64) -> ShardMessage {
    ShardMessage {
        shard: ShardId(shard),
        message: ShardPayload::Raft(RaftMessage {
            msg_type: RaftMessageType::Append,
            from,
            to,
            term: Term(1),
            index: LogIndex(index),
            ..Default::default()
        }),
    }
}

async fn must_wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < DEADLINE, "timed out after {DEADLINE:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_exchange_batches_in_every_direction() {
    init_logs();
    let dir = tempfile::tempdir().expect("temp dir");
    let nodes = must_start_mesh(&must_certs(dir.path(), 3));
    tracing::info!("phase: every node sends ten messages of three shards to every other node");
    for a in &nodes {
        let sender = a.transport.sender();
        for b in nodes.iter().filter(|b| b.id() != a.id()) {
            for i in 0..10 {
                sender.send(b.id(), msg(i % 3, a.id().0, b.id().0, i)).expect("queued");
            }
        }
    }
    for n in &nodes {
        must_wait_for("twenty messages at every node", || n.inbox.messages().len() == 20).await;
    }
    tracing::info!("phase: each sender's messages arrive complete and in order");
    for n in &nodes {
        for from in nodes.iter().filter(|f| f.id() != n.id()) {
            let got: Vec<ShardMessage> = n
                .inbox
                .messages()
                .into_iter()
                .filter(|(f, _)| *f == from.id())
                .map(|(_, m)| m)
                .collect();
            let want: Vec<ShardMessage> =
                (0..10).map(|i| msg(i % 3, from.id().0, n.id().0, i)).collect();
            assert_eq!(got, want, "node {} from node {}", n.id(), from.id());
        }
        let stats = n.stats();
        assert_eq!(stats.messages_received, 20);
        assert_eq!(stats.messages_sent, 20);
        assert_eq!(stats.messages_dropped_queue_full, 0);
    }
    for n in &nodes {
        n.transport.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_queued_before_the_connection_leave_in_one_frame() {
    init_logs();
    let dir = tempfile::tempdir().expect("temp dir");
    let tls = must_certs(dir.path(), 2);
    tracing::info!("phase: node 2 queues 500 messages for node 1, which is not up yet");
    let node1_addr = reserved_addr();
    let node2 = must_start(2, CLUSTER, loopback(), &tls[1], &[(1, node1_addr)]);
    let sender = node2.transport.sender();
    for i in 0..500 {
        sender.send(NodeId(1), msg(i % 7, 2, 1, i)).expect("queued");
    }
    assert_eq!(node2.stats().frames_sent, 0);
    tracing::info!("phase: node 1 comes up and dials; the queue leaves as one frame");
    let node1 = must_start(1, CLUSTER, node1_addr, &tls[0], &[(2, node2.addr())]);
    must_wait_for("500 messages at node 1", || node1.inbox.count_from(NodeId(2)) == 500).await;
    let stats = node2.stats();
    assert_eq!((stats.frames_sent, stats.messages_sent), (1, 500));
    assert_eq!((node1.stats().frames_received, node1.stats().messages_received), (1, 500));
    node1.transport.close().await;
    node2.transport.close().await;
}

/// Sends to `to` every 50 ms until `inbox` has a message from `from` (messages written to
/// a connection that died on the way are lost, as Raft expects).
async fn must_reach(from: &Node, to: NodeId, inbox: &Inbox, what: &str) {
    let start = Instant::now();
    let mut index = 0;
    while inbox.count_from(from.id()) == 0 {
        assert!(start.elapsed() < DEADLINE, "timed out after {DEADLINE:?}: {what}");
        let _ = from.transport.sender().send(to, msg(0, from.id().0, to.0, index));
        index += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_restarted_on_the_same_port_receives_again() {
    init_logs();
    let dir = tempfile::tempdir().expect("temp dir");
    let tls = must_certs(dir.path(), 2);
    let mut nodes = must_start_mesh(&tls);
    let (node1, node2) = (nodes.remove(0), nodes.remove(0));
    must_reach(&node1, NodeId(2), &node2.inbox, "node 1 reaches node 2").await;
    tracing::info!("phase: node 2 (the accepting side) restarts; node 1 re-dials it");
    let addr2 = node2.addr();
    assert!(node1.inbox.unreachable().is_empty(), "nothing was lost yet");
    node2.transport.close().await;
    drop(node2);
    // What wakes the shards node 2 led while they hibernate (decision D14).
    must_wait_for("node 1 hears node 2 is unreachable", || {
        node1.inbox.unreachable().contains(&NodeId(2))
    })
    .await;
    let node2 = must_restart(2, addr2, &tls[1], &[(1, node1.addr())]).await;
    must_reach(&node1, NodeId(2), &node2.inbox, "node 1 reaches restarted node 2").await;
    must_reach(&node2, NodeId(1), &node1.inbox, "restarted node 2 reaches node 1").await;
    tracing::info!("phase: node 1 (the dialing side) restarts; it dials node 2 again");
    let addr1 = node1.addr();
    node1.transport.close().await;
    drop(node1);
    let node1 = must_restart(1, addr1, &tls[0], &[(2, addr2)]).await;
    must_wait_for("node 2 hears node 1 was unreachable", || {
        node2.inbox.unreachable().contains(&NodeId(1))
    })
    .await;
    must_reach(&node2, NodeId(1), &node1.inbox, "node 2 reaches restarted node 1").await;
    must_reach(&node1, NodeId(2), &node2.inbox, "restarted node 1 reaches node 2").await;
    assert!(node1.stats().connect_attempts >= 1);
    node1.transport.close().await;
    node2.transport.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_drops_and_counts_and_other_peers_still_receive() {
    init_logs();
    let dir = tempfile::tempdir().expect("temp dir");
    let tls = must_certs(dir.path(), 2);
    tracing::info!("phase: node 3 is down; node 1's queue for it fills and then drops");
    let node2 = must_start(2, CLUSTER, loopback(), &tls[1], &[]);
    let node1 =
        must_start(1, CLUSTER, loopback(), &tls[0], &[(2, node2.addr()), (3, reserved_addr())]);
    node2.transport.set_peer(NodeId(1), node1.addr()).expect("adds peer");
    let sender = node1.transport.sender();
    let extra = 100;
    let mut refused = 0;
    for i in 0..(PEER_QUEUE_MESSAGES_MAX + extra) as u64 {
        match sender.send(NodeId(3), msg(1, 1, 3, i)) {
            Ok(()) => {}
            Err(PeerSendError::QueueFull { peer, limit }) => {
                assert_eq!((peer, limit), (NodeId(3), PEER_QUEUE_MESSAGES_MAX));
                refused += 1;
            }
            Err(e) => panic!("unexpected send error: {e}"),
        }
    }
    assert_eq!(refused, extra);
    assert_eq!(node1.stats().messages_dropped_queue_full, extra as u64);
    tracing::info!("phase: the dead peer does not hold up node 2");
    sender.send(NodeId(2), msg(1, 1, 2, 1)).expect("queued");
    must_wait_for("node 2 receives", || node2.inbox.count_from(NodeId(1)) == 1).await;
    tracing::info!("phase: a message to an unknown node is refused and counted");
    assert_eq!(
        sender.send(NodeId(9), msg(1, 1, 9, 1)),
        Err(PeerSendError::UnknownPeer { peer: NodeId(9) })
    );
    assert_eq!(node1.stats().messages_dropped_unknown_peer, 1);
    node1.transport.close().await;
    assert_eq!(sender.send(NodeId(2), msg(1, 1, 2, 2)), Err(PeerSendError::Closed));
    node2.transport.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_certificate_from_another_ca_is_refused() {
    init_logs();
    let dir = tempfile::tempdir().expect("temp dir");
    let good = must_certs(&dir.path().join("good"), 1);
    let foreign = must_certs(&dir.path().join("foreign"), 1);
    // The foreign node trusts both CAs, so it is the accepting node's check of the client
    // certificate that must refuse it.
    let foreign_tls = TlsMaterial {
        ca_cert_pem: format!("{}{}", foreign[0].ca_cert_pem, good[0].ca_cert_pem),
        ..foreign[0].clone()
    };
    let node2 = must_start(2, CLUSTER, loopback(), &good[0], &[]);
    let node1 = must_start(1, CLUSTER, loopback(), &foreign_tls, &[(2, node2.addr())]);
    node2.transport.set_peer(NodeId(1), node1.addr()).expect("adds peer");
    tracing::info!("phase: node 1 with a foreign certificate sends; node 2 refuses the handshake");
    for i in 0..10 {
        node1.transport.sender().send(NodeId(2), msg(0, 1, 2, i)).expect("queued");
    }
    must_wait_for("node 2 refuses a handshake", || node2.stats().connections_refused >= 2).await;
    must_wait_for("node 1 sees its dials fail", || node1.stats().connect_failures >= 2).await;
    assert!(node2.inbox.messages().is_empty());
    assert_eq!(node2.stats().messages_received, 0);
    assert_eq!(node1.stats().messages_sent, 0);
    node1.transport.close().await;
    node2.transport.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_without_a_certificate_is_refused() {
    init_logs();
    let dir = tempfile::tempdir().expect("temp dir");
    let tls = must_certs(dir.path(), 1);
    let node = must_start(2, CLUSTER, loopback(), &tls[0], &[(1, reserved_addr())]);
    tracing::info!("phase: a client that trusts the CA but has no certificate dials the peer port");
    let mut store = rustls::RootCertStore::empty();
    for der in tls[0].ca_certs_der().expect("ca") {
        store.add(der).expect("adds root");
    }
    let mut client =
        rustls::ClientConfig::builder_with_provider(atoll_router::tls::crypto_provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .expect("tls 1.3")
            .with_root_certificates(store)
            .with_no_client_auth();
    client.alpn_protocols = vec![ALPN_PEER.to_vec()];
    let quic = quinn::crypto::rustls::QuicClientConfig::try_from(client).expect("quic tls");
    let mut endpoint = quinn::Endpoint::client(loopback()).expect("client endpoint");
    endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(quic)));
    let connecting = endpoint.connect(node.addr(), "127.0.0.1").expect("dials");
    // The refusal must come from TLS, not from a missing Hello: a valid Hello is sent as
    // soon as the client considers the handshake done (in TLS 1.3 it may finish first).
    let reason = match connecting.await {
        Err(e) => e,
        Ok(conn) => {
            let hello = PeerFrame::Hello { cluster_id: CLUSTER, from: NodeId(1) };
            if let Ok(mut raft) = conn.open_uni().await {
                let _ = raft.write_all(&encode_frame(&hello).expect("encodes")).await;
            }
            tokio::time::timeout(DEADLINE, conn.closed()).await.expect("the node closes it")
        }
    };
    assert!(
        matches!(reason, quinn::ConnectionError::ConnectionClosed(_)),
        "refused by TLS, not by the application: {reason}"
    );
    must_wait_for("the node refuses the handshake", || node.stats().connections_refused >= 1).await;
    node.transport.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_cluster_or_unknown_node_is_refused() {
    init_logs();
    let dir = tempfile::tempdir().expect("temp dir");
    let tls = must_certs(dir.path(), 3);
    let node2 = must_start(2, CLUSTER, loopback(), &tls[1], &[]);
    tracing::info!("phase: node 1 of another cluster dials node 2");
    let node1 = must_start(1, CLUSTER + 1, loopback(), &tls[0], &[(2, node2.addr())]);
    node2.transport.set_peer(NodeId(1), node1.addr()).expect("adds peer");
    node1.transport.sender().send(NodeId(2), msg(0, 1, 2, 1)).expect("queued");
    must_wait_for("node 2 refuses node 1", || node2.stats().connections_refused >= 1).await;
    must_wait_for("node 1 sees the refusal", || node1.stats().connect_failures >= 1).await;
    tracing::info!("phase: node 0, unknown to node 2, dials it");
    let node0 = must_start(0, CLUSTER, loopback(), &tls[2], &[(2, node2.addr())]);
    node0.transport.sender().send(NodeId(2), msg(0, 0, 2, 1)).expect("queued");
    let refused_before = node2.stats().connections_refused;
    must_wait_for("node 2 refuses node 0", || {
        node2.stats().connections_refused > refused_before && node0.stats().connect_failures >= 1
    })
    .await;
    assert!(node2.inbox.messages().is_empty());
    assert_eq!(node2.stats().messages_received, 0);
    assert_eq!(node1.stats().messages_sent + node0.stats().messages_sent, 0);
    for n in [node0, node1, node2] {
        n.transport.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_member_is_told_so_whichever_side_should_dial() {
    init_logs();
    let dir = tempfile::tempdir().expect("temp dir");
    let tls = must_certs(dir.path(), 4);
    // Node 2 applied the removal of nodes 1 and 3 while they were down: neither is in its
    // peer set, and it dials neither. Both still count node 2 as a peer.
    let node2 = must_start(2, CLUSTER, loopback(), &tls[1], &[]);
    node2.inbox.removed.lock().expect("lock").extend([NodeId(1), NodeId(3)]);

    tracing::info!("phase: node 1, the lower ID, dials node 2 and is refused as removed");
    let node1 = must_start(1, CLUSTER, loopback(), &tls[0], &[(2, node2.addr())]);
    node1.transport.sender().send(NodeId(2), msg(0, 1, 2, 1)).expect("queued");
    must_wait_for("node 1 told it was removed", || !node1.inbox.told_removed().is_empty()).await;
    assert_eq!(node1.inbox.told_removed()[0], NodeId(2));

    tracing::info!("phase: node 3, the higher ID, waits for node 2, then knocks and is refused");
    let started = Instant::now();
    let node3 = must_start(3, CLUSTER, loopback(), &tls[2], &[(2, node2.addr())]);
    must_wait_for("node 3 told it was removed", || !node3.inbox.told_removed().is_empty()).await;
    assert_eq!(node3.inbox.told_removed()[0], NodeId(2));
    assert!(started.elapsed() >= PEER_KNOCK_AFTER, "a knock waits for the peer first");

    tracing::info!("phase: a node merely unknown is refused, not told it was removed");
    let node0 = must_start(0, CLUSTER, loopback(), &tls[3], &[(2, node2.addr())]);
    node0.transport.sender().send(NodeId(2), msg(0, 0, 2, 1)).expect("queued");
    must_wait_for("node 0 refused", || node0.stats().connect_failures >= 1).await;
    assert!(node0.inbox.told_removed().is_empty());
    assert!(node2.inbox.messages().is_empty());
    for n in [node0, node1, node2, node3] {
        n.transport.close().await;
    }
}

fn snapshot_message(index: u64) -> RaftMessage {
    RaftMessage {
        msg_type: RaftMessageType::Snapshot,
        from: 1,
        to: 2,
        term: Term(3),
        snapshot: Some(RaftSnapshot {
            data: vec![],
            metadata: RaftSnapshotMetadata {
                index: LogIndex(index),
                term: Term(3),
                ..Default::default()
            },
        }),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multi_megabyte_snapshot_arrives_byte_exact() {
    init_logs();
    let dir = tempfile::tempdir().expect("temp dir");
    let mut nodes = must_start_mesh(&must_certs(dir.path(), 2));
    let (node1, node2) = (nodes.remove(0), nodes.remove(0));
    let sender = node1.transport.sender();
    tracing::info!("phase: a 5 MiB snapshot arrives whole, in order, with its header");
    let mut seed = 0x1234_5678_u32;
    let data: Vec<u8> = (0..5 * 1024 * 1024 + 123)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            seed as u8
        })
        .collect();
    sender
        .send_snapshot(NodeId(2), ShardId(4), snapshot_message(77), data.len() as u64, &data[..])
        .await
        .expect("snapshot delivered");
    let received = node2.inbox.snapshots.lock().expect("lock").clone();
    assert_eq!(received.len(), 1);
    let (header, bytes) = &received[0];
    assert_eq!((header.shard, header.from, header.to), (ShardId(4), NodeId(1), NodeId(2)));
    assert_eq!(header.message, snapshot_message(77));
    assert_eq!(header.total_bytes, data.len() as u64);
    assert!(bytes == &data, "snapshot bytes differ");
    assert_eq!((node1.stats().snapshots_sent, node2.stats().snapshots_received), (1, 1));
    tracing::info!("phase: a source shorter than announced fails and the receiver discards it");
    let short =
        sender.send_snapshot(NodeId(2), ShardId(4), snapshot_message(78), 1000, &data[..600]).await;
    assert!(
        matches!(short, Err(SnapshotSendError::SourceLength { announced: 1000, read: 600 })),
        "{short:?}"
    );
    // The sender's reset may overtake its header, so the receiver may never learn that the
    // stream was a snapshot; either way nothing reaches a sink.
    must_wait_for("the receiver refuses the cut-off stream", || {
        let stats = node2.stats();
        stats.snapshots_refused + stats.streams_failed_unread == 1
    })
    .await;
    tracing::info!("phase: a snapshot the receiver refuses reports the receiver's reason");
    let refused =
        sender.send_snapshot(NodeId(2), REFUSED_SHARD, snapshot_message(79), 10, &data[..10]).await;
    match refused {
        Err(SnapshotSendError::Refused { peer, reason }) => {
            assert_eq!(peer, NodeId(2));
            assert!(reason.contains("not here"), "{reason}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(node2.inbox.snapshots.lock().expect("lock").len(), 1);
    node1.transport.close().await;
    node2.transport.close().await;
}

/// Dials `to` as node 1 with `tls`, says Hello like a real peer, and returns the connection
/// once `to` answered with its own Hello: a peer whose snapshot stream a test writes by hand.
async fn must_dial_raw(
    tls: &TlsMaterial,
    to: SocketAddr,
) -> (quinn::Endpoint, quinn::Connection, quinn::SendStream) {
    let client = tls.peer_client_config(&[ALPN_PEER]).expect("client tls");
    let quic = quinn::crypto::rustls::QuicClientConfig::try_from(client).expect("quic tls");
    let mut endpoint = quinn::Endpoint::client(loopback()).expect("client endpoint");
    endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(quic)));
    let conn = endpoint.connect(to, "127.0.0.1").expect("dials").await.expect("handshake");
    let mut raft = conn.open_uni().await.expect("raft stream");
    let hello = PeerFrame::Hello { cluster_id: CLUSTER, from: NodeId(1) };
    raft.write_all(&encode_frame(&hello).expect("encodes")).await.expect("hello sent");
    let mut answer = conn.accept_uni().await.expect("the node opens its raft stream");
    let mut header = [0u8; FRAME_HEADER_BYTES];
    answer.read_exact(&mut header).await.expect("the node says hello");
    (endpoint, conn, raft)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupted_snapshot_chunk_is_refused_and_the_sink_discarded() {
    init_logs();
    let dir = tempfile::tempdir().expect("temp dir");
    let tls = must_certs(dir.path(), 2);
    let node2 = must_start(2, CLUSTER, loopback(), &tls[1], &[]);
    // Node 2 never dials node 1 (the lower ID dials), so the address is never used.
    node2.transport.set_peer(NodeId(1), reserved_addr()).expect("adds peer");
    let (_endpoint, conn, _raft) = must_dial_raw(&tls[0], node2.addr()).await;
    tracing::info!("phase: a peer sends a chunk whose bytes do not match its crc32");
    let data = vec![0x5a_u8; 3000];
    let (mut send, mut recv) = conn.open_bi().await.expect("snapshot stream");
    let header = SnapshotHeader {
        shard: ShardId(4),
        from: NodeId(1),
        to: NodeId(2),
        message: snapshot_message(5),
        total_bytes: data.len() as u64,
    };
    let mut corrupt = data.clone();
    corrupt[1234] ^= 1;
    let mut wire = encode_frame(&PeerFrame::SnapshotHeader(Box::new(header))).expect("encodes");
    let chunk = SnapshotChunk::for_data(0, &data);
    wire.extend(encode_frame(&PeerFrame::SnapshotChunk(chunk)).expect("encodes"));
    wire.extend(&corrupt);
    let end = SnapshotEnd { total_crc32: chunk.crc32 };
    wire.extend(encode_frame(&PeerFrame::SnapshotEnd(end)).expect("encodes"));
    // The receiver may stop reading once it refuses; its verdict still arrives.
    let _ = send.write_all(&wire).await;
    let _ = send.finish();
    let verdict = recv.read_to_end(4096).await.expect("verdict");
    let verdict: PeerFrame = decode_frame(&verdict, 4096).expect("verdict decodes");
    match verdict {
        PeerFrame::SnapshotRefused { reason } => assert!(reason.contains("crc32"), "{reason}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(node2.inbox.snapshots.lock().expect("lock").is_empty());
    let aborted = node2.inbox.aborted.lock().expect("lock").clone();
    assert_eq!(aborted.len(), 1, "the sink is aborted once: {aborted:?}");
    assert_eq!(node2.stats().snapshots_refused, 1);
    node2.transport.close().await;
}

/// Forwards `req` from `from` to `to` and expects an answer.
async fn must_forward(from: &Node, to: NodeId, req: NativeRequest) -> NativeResponse {
    match from.transport.sender().forward(to, req).await {
        Ok(response) => response,
        Err(e) => panic!("forward from node {} to node {to} failed: {e}", from.id()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forwarded_request_is_answered_by_the_receiving_node_from_either_side() {
    init_logs();
    let dir = tempfile::tempdir().expect("temp dir");
    let mut nodes = must_start_mesh(&must_certs(dir.path(), 2));
    let (node1, node2) = (nodes.remove(0), nodes.remove(0));
    must_reach(&node1, NodeId(2), &node2.inbox, "node 1 reaches node 2").await;
    tracing::info!("phase: node 1 (the dialing side) forwards a put; node 2 serves it");
    let answer = must_forward(&node1, NodeId(2), put(b"/a", 10)).await;
    assert_eq!(answer, served_put(NodeId(2), NodeId(1), b"/a"));
    tracing::info!("phase: node 2 (the accepting side) opens a stream the other way");
    let answer = must_forward(&node2, NodeId(1), put(b"/b", 10)).await;
    assert_eq!(answer, served_put(NodeId(1), NodeId(2), b"/b"));
    tracing::info!("phase: the receiver's error answer comes back as an answer");
    let range = NativeRequest::Range(RangeRequest { key: b"/c".to_vec(), ..Default::default() });
    match must_forward(&node1, NodeId(2), range).await {
        NativeResponse::Error(AtollError::Malformed { reason }) => {
            assert!(reason.contains("puts only"), "{reason}");
        }
        other => panic!("expected the inbox's error, got {other:?}"),
    }
    tracing::info!("phase: a request of max-request-bytes passes; one above the limit is not sent");
    let big = must_forward(&node1, NodeId(2), put(b"/big", MAX_REQUEST_BYTES_DEFAULT)).await;
    assert_eq!(big, served_put(NodeId(2), NodeId(1), b"/big"));
    let limit = forward_request_bytes_max(MAX_REQUEST_BYTES_DEFAULT);
    let served_before = node2.stats().forwards_served;
    let too_big = node1.transport.sender().forward(NodeId(2), put(b"/huge", limit)).await;
    match too_big {
        Err(PeerForwardError::TooLarge { request_bytes, limit_bytes }) => {
            assert!(request_bytes > limit as u64, "{request_bytes}");
            assert_eq!(limit_bytes, limit as u64);
        }
        other => panic!("expected too large, got {other:?}"),
    }
    tracing::info!("phase: with a larger max-request-bytes on both nodes, it passes");
    for n in [&node1, &node2] {
        n.transport.set_max_request_bytes(2 * limit);
    }
    let huge = must_forward(&node1, NodeId(2), put(b"/huge", limit)).await;
    assert_eq!(huge, served_put(NodeId(2), NodeId(1), b"/huge"));
    assert_eq!(node2.stats().forwards_served, served_before + 1);
    let (stats1, stats2) = (node1.stats(), node2.stats());
    assert_eq!((stats1.forwards_sent, stats1.forwards_failed, stats1.forwards_served), (4, 1, 1));
    assert_eq!((stats2.forwards_sent, stats2.forwards_served, stats2.forwards_refused), (1, 4, 0));
    node1.transport.close().await;
    node2.transport.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_forwards_are_bounded_and_leave_room_for_snapshots() {
    init_logs();
    let dir = tempfile::tempdir().expect("temp dir");
    let mut nodes = must_start_mesh(&must_certs(dir.path(), 2));
    let (node1, node2) = (nodes.remove(0), nodes.remove(0));
    must_reach(&node1, NodeId(2), &node2.inbox, "node 1 reaches node 2").await;
    tracing::info!("phase: 200 concurrent forwards each get their own answer");
    let sender = node2.transport.sender();
    let tasks: Vec<_> = (0..200)
        .map(|i| tokio::spawn(sender.forward(NodeId(1), put(format!("/k{i}").as_bytes(), i))))
        .collect();
    for (i, task) in tasks.into_iter().enumerate() {
        let answer = task.await.expect("task").expect("answered");
        assert_eq!(answer, served_put(NodeId(1), NodeId(2), format!("/k{i}").as_bytes()));
    }
    tracing::info!("phase: the in-flight limit of forwards is held open at once on the receiver");
    let limit = FORWARD_STREAMS_PER_CONNECTION_MAX as usize;
    let held: Vec<_> = (0..limit)
        .map(|i| {
            let key = [HELD_PREFIX, format!("{i}").as_bytes()].concat();
            tokio::spawn(sender.forward(NodeId(1), put(&key, 1)))
        })
        .collect();
    let in_flight = Arc::clone(&node1.inbox.forwards_in_flight);
    must_wait_for("every held forward in flight at node 1", || {
        in_flight.load(Ordering::SeqCst) == limit
    })
    .await;
    tracing::info!("phase: one more forward is refused at once, without a stream");
    let over = sender.forward(NodeId(1), put(b"/over", 1)).await;
    assert_eq!(
        over,
        Err(PeerForwardError::Busy { peer: NodeId(1), limit: FORWARD_STREAMS_PER_CONNECTION_MAX })
    );
    tracing::info!("phase: a snapshot still gets a stream while the forwards hold theirs");
    let data = vec![7u8; 100_000];
    let mut snap = snapshot_message(9);
    (snap.from, snap.to) = (2, 1);
    sender
        .send_snapshot(NodeId(1), ShardId(4), snap, data.len() as u64, &data[..])
        .await
        .expect("snapshot delivered beside the held forwards");
    assert_eq!(node1.inbox.snapshots.lock().expect("lock").len(), 1);
    tracing::info!("phase: the gate opens and every held forward is answered");
    node1.inbox.gate.send_replace(true);
    for (i, task) in held.into_iter().enumerate() {
        let key = [HELD_PREFIX, format!("{i}").as_bytes()].concat();
        assert_eq!(task.await.expect("task"), Ok(served_put(NodeId(1), NodeId(2), &key)));
    }
    must_forward(&node2, NodeId(1), put(b"/after", 1)).await;
    assert_eq!(node2.stats().forwards_failed, 1);
    node1.transport.close().await;
    node2.transport.close().await;
}

/// Writes `wire` on a new stream of `conn`, finishes it and returns the node's answer.
async fn must_exchange_raw(conn: &quinn::Connection, wire: &[u8]) -> NativeResponse {
    let (mut send, mut recv) = conn.open_bi().await.expect("stream");
    // The node may stop reading once it refuses; its answer still arrives.
    let _ = send.write_all(wire).await;
    let _ = send.finish();
    let answer = tokio::time::timeout(DEADLINE, recv.read_to_end(1 << 20))
        .await
        .expect("answered in time")
        .expect("answer");
    match decode_frame::<PeerFrame>(&answer, 1 << 20).expect("answer decodes") {
        PeerFrame::ForwardResponse(response) => response,
        other => panic!("expected a forward response, got {other:?}"),
    }
}

fn malformed_reason(response: NativeResponse) -> String {
    match response {
        NativeResponse::Error(AtollError::Malformed { reason }) => reason,
        other => panic!("expected a malformed-request error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_on_a_forward_stream_is_answered_and_the_connection_keeps_working() {
    init_logs();
    let dir = tempfile::tempdir().expect("temp dir");
    let tls = must_certs(dir.path(), 2);
    let node2 = must_start(2, CLUSTER, loopback(), &tls[1], &[]);
    node2.transport.set_peer(NodeId(1), reserved_addr()).expect("adds peer");
    let (_endpoint, conn, mut raft) = must_dial_raw(&tls[0], node2.addr()).await;
    let limit = forward_request_bytes_max(MAX_REQUEST_BYTES_DEFAULT);
    tracing::info!("phase: a frame announcing 100 MiB is refused before its payload is read");
    let mut header = vec![FRAME_VERSION];
    header.extend_from_slice(&(100u32 << 20).to_be_bytes());
    let answer = must_exchange_raw(&conn, &header).await;
    assert_eq!(
        answer,
        NativeResponse::Error(AtollError::RequestTooLarge {
            request_bytes: 100 << 20,
            limit_bytes: limit as u64
        })
    );
    tracing::info!(
        "phase: an unknown frame version, garbage, a foreign first frame, trailing bytes"
    );
    let mut wrong_version = encode_frame(&PeerFrame::ForwardRequest(put(b"/v", 1))).expect("enc");
    wrong_version[0] = 9;
    let answer = must_exchange_raw(&conn, &wrong_version).await;
    assert_eq!(answer, NativeResponse::Error(AtollError::UnsupportedVersion { version: 9 }));
    let mut garbage = vec![FRAME_VERSION, 0, 0, 0, 16];
    garbage.extend_from_slice(&[0xff; 16]);
    let reason = malformed_reason(must_exchange_raw(&conn, &garbage).await);
    assert!(reason.contains("does not decode"), "{reason}");
    let foreign = encode_frame(&PeerFrame::SnapshotReceived).expect("encodes");
    let reason = malformed_reason(must_exchange_raw(&conn, &foreign).await);
    assert!(reason.contains("must start with"), "{reason}");
    let mut trailing = encode_frame(&PeerFrame::ForwardRequest(put(b"/t", 1))).expect("encodes");
    trailing.extend_from_slice(b"more");
    let reason = malformed_reason(must_exchange_raw(&conn, &trailing).await);
    assert!(reason.contains("one request per stream"), "{reason}");
    let truncated = encode_frame(&PeerFrame::ForwardRequest(put(b"/cut", 100))).expect("enc");
    let reason = malformed_reason(must_exchange_raw(&conn, &truncated[..50]).await);
    assert!(reason.contains("ended inside a frame"), "{reason}");
    assert_eq!(node2.stats().forwards_refused, 6);
    assert_eq!(node2.stats().forwards_served, 0);
    tracing::info!("phase: the same connection still serves a good forward and carries raft");
    let good = encode_frame(&PeerFrame::ForwardRequest(put(b"/ok", 5))).expect("encodes");
    assert_eq!(must_exchange_raw(&conn, &good).await, served_put(NodeId(2), NodeId(1), b"/ok"));
    let batch = PeerFrame::Raft(vec![msg(0, 1, 2, 1)]);
    raft.write_all(&encode_frame(&batch).expect("encodes")).await.expect("raft frame sent");
    must_wait_for("node 2 delivers the batch", || node2.inbox.count_from(NodeId(1)) == 1).await;
    assert!(conn.close_reason().is_none(), "closed: {:?}", conn.close_reason());
    node2.transport.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forward_to_an_unknown_or_dead_peer_fails_quickly() {
    init_logs();
    let dir = tempfile::tempdir().expect("temp dir");
    let tls = must_certs(dir.path(), 2);
    let node2 = must_start(2, CLUSTER, loopback(), &tls[1], &[]);
    let node1 =
        must_start(1, CLUSTER, loopback(), &tls[0], &[(2, node2.addr()), (3, reserved_addr())]);
    node2.transport.set_peer(NodeId(1), node1.addr()).expect("adds peer");
    let sender = node1.transport.sender();
    tracing::info!("phase: a node outside the peer set is refused at once");
    let unknown = sender.forward(NodeId(9), put(b"/u", 1)).await;
    assert_eq!(unknown, Err(PeerForwardError::UnknownPeer { peer: NodeId(9) }));
    tracing::info!("phase: a peer that never came up is reported after the connect timeout");
    let start = Instant::now();
    let dead = sender.forward(NodeId(3), put(b"/d", 1)).await;
    let waited = start.elapsed();
    assert_eq!(
        dead,
        Err(PeerForwardError::NotConnected { peer: NodeId(3), waited: FORWARD_CONNECT_TIMEOUT })
    );
    assert!(waited < FORWARD_CONNECT_TIMEOUT + Duration::from_secs(2), "took {waited:?}");
    let line = dead.expect_err("failed").to_string();
    assert!(line.contains("node 3") && !line.contains('\n'), "{line}");
    tracing::info!("phase: a peer that shuts down is reported without waiting for a timeout");
    must_forward(&node1, NodeId(2), put(b"/alive", 1)).await;
    node2.transport.close().await;
    let start = Instant::now();
    let gone = sender.forward(NodeId(2), put(b"/gone", 1)).await;
    let waited = start.elapsed();
    assert!(
        matches!(
            gone,
            Err(PeerForwardError::NotConnected { .. }
                | PeerForwardError::Stream { request_sent: false, .. })
        ),
        "{gone:?}"
    );
    assert!(waited < FORWARD_CONNECT_TIMEOUT + Duration::from_secs(2), "took {waited:?}");
    tracing::info!("phase: after close, forwards are refused");
    node1.transport.close().await;
    assert_eq!(sender.forward(NodeId(2), put(b"/c", 1)).await, Err(PeerForwardError::Closed));
}
