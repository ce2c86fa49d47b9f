//! A stand-in server for tests: the native protocol (QUIC, ALPN `atoll-client/1`, one frame
//! each way per stream) over an in-memory map with just enough of etcd's semantics for the
//! workloads (put, get, prefix range with limit and count, txn with mod-revision compares),
//! and a one-shard map with no leader known, so routed writes come to it as `AtLeader`.
//! It can fail every n-th request with "too many requests" to exercise error counting.

use atoll_proto::kv::*;
use atoll_proto::shard_map::ShardMapResponse;
use atoll_proto::{AtollError, NativeRequest, NativeResponse, NodeId, decode_frame, encode_frame};
use atoll_router::tls::{ALPN_CLIENT, crypto_provider};
use atoll_router::{ClientConfig, Trust};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

/// Largest request the stand-in reads.
const REQUEST_BYTES_MAX: usize = 4 * 1024 * 1024;

/// The stand-in's state.
#[derive(Debug, Default)]
pub struct Store {
    /// Keys and their metadata.
    pub data: BTreeMap<Vec<u8>, KeyValue>,
    /// Last revision.
    pub revision: i64,
    /// Requests answered, failed ones included.
    pub requests: u64,
}

/// A running stand-in server; stops when dropped.
pub struct FakeServer {
    endpoint: quinn::Endpoint,
    addr: SocketAddr,
    /// What it holds.
    pub store: Arc<Mutex<Store>>,
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.endpoint.close(0u32.into(), b"test over");
    }
}

impl FakeServer {
    /// Starts on a free loopback port; with `fail_every = Some(n)`, request n, 2n, … fail.
    pub fn must_start(fail_every: Option<u64>) -> FakeServer {
        let certified =
            rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("cert");
        let cert = CertificateDer::from(certified.cert.der().to_vec());
        let key =
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(certified.signing_key.serialize_der()));
        let mut tls = rustls::ServerConfig::builder_with_provider(crypto_provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .expect("tls 1.3")
            .with_no_client_auth()
            .with_single_cert(vec![cert], key)
            .expect("server cert");
        tls.alpn_protocols = vec![ALPN_CLIENT.to_vec()];
        let quic = quinn::crypto::rustls::QuicServerConfig::try_from(tls).expect("quic tls");
        let config = quinn::ServerConfig::with_crypto(Arc::new(quic));
        let endpoint =
            quinn::Endpoint::server(config, "127.0.0.1:0".parse().expect("addr")).expect("bind");
        let addr = endpoint.local_addr().expect("local addr");
        let store = Arc::new(Mutex::new(Store::default()));
        tokio::spawn(accept_loop(endpoint.clone(), Arc::clone(&store), fail_every));
        FakeServer { endpoint, addr, store }
    }

    /// A client configuration for it: any certificate, no retries (so every injected failure
    /// reaches the caller).
    pub fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new(vec![self.addr.to_string()], Trust::InsecureSkipVerify);
        config.retries_max = 0;
        config
    }

    /// Keys currently held.
    pub fn keys(&self) -> usize {
        self.store.lock().expect("store").data.len()
    }
}

async fn accept_loop(endpoint: quinn::Endpoint, store: Arc<Mutex<Store>>, fail: Option<u64>) {
    while let Some(incoming) = endpoint.accept().await {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            let Ok(conn) = incoming.await else { return };
            while let Ok((mut send, mut recv)) = conn.accept_bi().await {
                let store = Arc::clone(&store);
                tokio::spawn(async move {
                    let Ok(bytes) = recv.read_to_end(REQUEST_BYTES_MAX).await else { return };
                    let response = match decode_frame::<NativeRequest>(&bytes, REQUEST_BYTES_MAX) {
                        Ok(req) => answer(&mut store.lock().expect("store"), fail, req),
                        Err(e) => {
                            NativeResponse::Error(AtollError::Malformed { reason: e.to_string() })
                        }
                    };
                    let frame = encode_frame(&response).expect("encode");
                    let _ = send.write_all(&frame).await;
                    let _ = send.finish();
                });
            }
        });
    }
}

/// Answers one request as the stand-in does, counting it and failing every n-th. The shard
/// map a routing client asks for first is not counted: it is no workload's request.
pub fn answer(store: &mut Store, fail_every: Option<u64>, req: NativeRequest) -> NativeResponse {
    let req = match req {
        NativeRequest::ShardMap(_) => return shard_map(store),
        NativeRequest::AtLeader(routed) => routed.write.into_request(),
        other => other,
    };
    store.requests += 1;
    if fail_every.is_some_and(|n| store.requests.is_multiple_of(n)) {
        return NativeResponse::Error(AtollError::Busy { limit: "fake".into() });
    }
    match req {
        NativeRequest::Put(put) => {
            store.revision += 1;
            NativeResponse::Put(apply_put(store, put))
        }
        NativeRequest::Range(range) => NativeResponse::Range(apply_range(store, &range)),
        NativeRequest::Txn(txn) => NativeResponse::Txn(apply_txn(store, txn)),
        _ => NativeResponse::Error(AtollError::Malformed { reason: "not in the fake".into() }),
    }
}

/// One data shard for every key, its leader unknown: routed writes go to this server.
fn shard_map(store: &Store) -> NativeResponse {
    match atoll_router::shard_map::bootstrap_map(&[], &[]) {
        Ok(map) => NativeResponse::ShardMap(ShardMapResponse {
            header: header(store),
            leaders: vec![NodeId(0); map.shards.len()],
            map,
            members: Vec::new(),
            from_meta_shard: true,
        }),
        Err(e) => NativeResponse::Error(AtollError::Malformed { reason: e.to_string() }),
    }
}

fn header(store: &Store) -> ResponseHeader {
    ResponseHeader { revision: store.revision, ..ResponseHeader::default() }
}

fn apply_put(store: &mut Store, put: PutRequest) -> PutResponse {
    let revision = store.revision;
    let kv = store.data.entry(put.key.clone()).or_insert_with(|| KeyValue {
        key: put.key,
        create_revision: revision,
        ..KeyValue::default()
    });
    kv.mod_revision = revision;
    kv.version += 1;
    kv.value = put.value;
    PutResponse { header: header(store), prev_kv: None }
}

fn apply_range(store: &Store, range: &RangeRequest) -> RangeResponse {
    let matching: Vec<&KeyValue> = if range.range_end.is_empty() {
        store.data.get(&range.key).into_iter().collect()
    } else {
        store
            .data
            .range(range.key.clone()..)
            .take_while(|(k, _)| range.range_end == [0] || **k < range.range_end)
            .map(|(_, kv)| kv)
            .collect()
    };
    let count = matching.len() as i64;
    let limit = if range.limit > 0 { range.limit as usize } else { usize::MAX };
    let kvs: Vec<KeyValue> = if range.count_only {
        Vec::new()
    } else {
        matching.iter().take(limit).map(|kv| (*kv).clone()).collect()
    };
    let more = matching.len() > limit;
    RangeResponse { header: header(store), kvs, more, count }
}

fn apply_txn(store: &mut Store, txn: TxnRequest) -> TxnResponse {
    let succeeded = txn.compare.iter().all(|c| {
        let current = store.data.get(&c.key);
        match c.target {
            CompareTarget::Mod(rev) => current.map_or(0, |kv| kv.mod_revision) == rev,
            _ => true,
        }
    });
    let ops = if succeeded { txn.success } else { txn.failure };
    if ops.iter().any(|op| matches!(op, RequestOp::Put(_))) {
        store.revision += 1;
    }
    let responses = ops
        .into_iter()
        .filter_map(|op| match op {
            RequestOp::Put(put) => Some(ResponseOp::Put(apply_put(store, put))),
            RequestOp::Range(range) => Some(ResponseOp::Range(apply_range(store, &range))),
            _ => None,
        })
        .collect();
    TxnResponse { header: header(store), succeeded, responses }
}
