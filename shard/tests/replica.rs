//! A replica actor with its log writer and apply worker, no network: proposals are answered
//! once durable and applied, reads right after start-up are answered (not dropped while the
//! new leader has not committed its first entry), state survives a restart, and with its
//! arbiter's ticker an idle replica hibernates and a write wakes it (decision D14).

use actix::Actor;
use atoll_proto::{PutRequest, RangeRequest, ShardId, WriteOp};
use atoll_shard::Storage;
use atoll_shard::actors::{
    GetStatus, Propose, PublishedState, ReadIndex, ReplicaActor, ReplicaDeps, ReplicaRole,
    TickedReplica, TickerActor,
};
use atoll_shard::apply_worker::{ApplyWorker, HeaderIdentity};
use atoll_shard::config::ReplicaConfig;
use atoll_shard::core::SystemClock;
use atoll_shard::mvcc::{MvccLimits, MvccStore, ShardRange, WriteResponse};
use atoll_shard::storage::LogWriter;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;

const SHARD: ShardId = ShardId(1);
const DEADLINE: Duration = Duration::from_secs(5);
const TICK: Duration = Duration::from_millis(20);

fn must_start(storage: &Storage) -> (actix::Addr<ReplicaActor>, MvccStore, Arc<PublishedState>) {
    let fatal = |e: &atoll_shard::StorageError| panic!("storage failed: {e}");
    let log_writer = LogWriter::spawn(storage.clone(), Box::new(fatal)).expect("log writer");
    let applier = ApplyWorker::spawn(Box::new(fatal)).expect("apply worker");
    let store = MvccStore::new(storage.clone(), SHARD, ShardRange::all());
    let config = ReplicaConfig { node_id: 7, tick_interval: TICK, ..ReplicaConfig::default() };
    let published = Arc::new(PublishedState::default());
    let replica = ReplicaActor::new(ReplicaDeps {
        shard: SHARD,
        config,
        initial_voters: vec![7],
        initial_members: Vec::new(),
        initial_shard_map: None,
        store: store.clone(),
        limits: MvccLimits::default(),
        identity: HeaderIdentity { cluster_id: 1, member_id: 7 },
        log_writer,
        applier,
        clock: Arc::new(SystemClock),
        published: published.clone(),
        peers: Arc::new(atoll_shard::actors::NoPeers),
        compactor: atoll_shard::config::CompactorConfig::default(),
    })
    .expect("replica");
    (replica.start(), store, published)
}

async fn must_wait_for(what: &str, cond: impl Fn() -> bool) {
    let start = std::time::Instant::now();
    while !cond() {
        assert!(start.elapsed() < DEADLINE, "{what}: not within {DEADLINE:?}");
        tokio::time::sleep(TICK).await;
    }
}

async fn must_read_index(addr: &actix::Addr<ReplicaActor>) {
    let (tx, rx) = oneshot::channel();
    addr.try_send(ReadIndex { reply: tx }).expect("mailbox");
    let answer = tokio::time::timeout(DEADLINE, rx).await.expect("read answered, not dropped");
    answer.expect("reply sent").expect("read index confirmed");
}

async fn must_put(addr: &actix::Addr<ReplicaActor>, key: &str, value: &str) -> i64 {
    let (tx, rx) = oneshot::channel();
    let op =
        WriteOp::Put(PutRequest { key: key.into(), value: value.into(), ..Default::default() });
    addr.try_send(Propose { op, reply: tx }).expect("mailbox");
    match tokio::time::timeout(DEADLINE, rx)
        .await
        .expect("answered")
        .expect("sent")
        .expect("applied")
    {
        WriteResponse::Put(r) => r.header.revision,
        other => panic!("unexpected {other:?}"),
    }
}

#[actix_rt::test]
async fn reads_at_start_up_writes_and_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = Storage::open(dir.path(), 1 << 20).expect("open");
    eprintln!("phase: a new sole voter elects itself once its bootstrap entry is applied");
    let (addr, store, published) = must_start(&storage);
    must_wait_for("the first leader", || published.leader() == 7).await;
    must_read_index(&addr).await;
    eprintln!("phase: writes are answered with increasing revisions");
    let r1 = must_put(&addr, "a", "1").await;
    let r2 = must_put(&addr, "a", "2").await;
    assert!(r2 > r1);
    must_read_index(&addr).await;
    let got = store
        .range(&storage.db.snapshot(), &RangeRequest { key: b"a".to_vec(), ..Default::default() })
        .expect("range");
    assert_eq!(got.kvs[0].value, b"2");
    assert_eq!(got.kvs[0].version, 2);
    let status = addr.send(GetStatus).await.expect("status");
    assert_eq!(status.role, ReplicaRole::Leader);
    assert_eq!(status.revision, r2);

    eprintln!("phase: after a restart, a read sent before the election completes is answered");
    addr.do_send(StopForTest);
    drop(addr);
    let (addr, _store, published) = must_start(&storage);
    must_read_index(&addr).await;
    let r3 = must_put(&addr, "a", "3").await;
    assert!(r3 > r2, "revisions keep increasing across a restart");
    let status = addr.send(GetStatus).await.expect("status");
    assert!(status.term >= 2, "a new term after restart");

    eprintln!("phase: ticked by a ticker, the idle replica hibernates; a write wakes it");
    assert!(!published.is_hibernating(), "nothing ticked it yet");
    let ticked = vec![TickedReplica { addr: addr.clone(), published: published.clone() }];
    let _ticker = TickerActor::new(TICK, ticked).start();
    must_wait_for("the idle replica hibernates", || published.is_hibernating()).await;
    assert!(addr.send(GetStatus).await.expect("status").hibernating);
    let r4 = must_put(&addr, "a", "4").await;
    assert!(r4 > r3);
    must_read_index(&addr).await;
    must_wait_for("it hibernates again", || published.is_hibernating()).await;
}

/// Stops an actor (test only).
#[derive(actix::Message)]
#[rtype(result = "()")]
struct StopForTest;

impl actix::Handler<StopForTest> for ReplicaActor {
    type Result = ();
    fn handle(&mut self, _: StopForTest, ctx: &mut Self::Context) {
        actix::ActorContext::stop(ctx);
    }
}
