//! The `etcd-client` crate (a real etcd v3 client library) as a test client, and a raw
//! tonic KV client for what that crate lacks (RangeStream).

use etcd_client::Client;
use std::time::{Duration, Instant};
use tonic::Code;

/// A client of the member `endpoint`, once it answers a linearizable get.
pub async fn must_connect(endpoint: &str) -> Client {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let attempt = async {
            let mut client = Client::connect([endpoint], None).await?;
            client.get("/ready-probe", None).await?;
            Ok::<_, etcd_client::Error>(client)
        };
        match attempt.await {
            Ok(client) => return client,
            Err(e) if Instant::now() < deadline => {
                eprintln!("{endpoint} not ready: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("{endpoint} never became ready: {e}"),
        }
    }
}

/// etcd's refusal of a membership change while the leader has not been connected to every
/// voter for its 5 s health interval (a cluster that just started, or a member down).
pub const UNHEALTHY: &str = "etcdserver: unhealthy cluster";

/// `member add`, asked again while the cluster is too young for etcd's strict
/// reconfiguration check ([`UNHEALTHY`]), as an operator would.
pub async fn must_member_add(
    client: &mut Client,
    peer_urls: &[&str],
    options: Option<etcd_client::MemberAddOptions>,
) -> etcd_client::MemberAddResponse {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match client.member_add(peer_urls.to_vec(), options.clone()).await {
            Ok(added) => return added,
            Err(etcd_client::Error::GRpcStatus(s))
                if s.message() == UNHEALTHY && Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("member add {peer_urls:?}: {e}"),
        }
    }
}

/// The gRPC status of a call that must fail.
pub fn status<T: std::fmt::Debug>(result: Result<T, etcd_client::Error>) -> (Code, String) {
    match result.expect_err("the call must fail") {
        etcd_client::Error::GRpcStatus(s) => (s.code(), s.message().to_string()),
        other => panic!("expected a gRPC status, got {other}"),
    }
}

/// A raw gRPC KV client of the member `endpoint` (plain HTTP/2), for RangeStream.
pub async fn must_kv_client(
    endpoint: &str,
) -> atoll_proto::etcd::etcdserverpb::kv_client::KvClient<tonic::transport::Channel> {
    let channel = tonic::transport::Channel::from_shared(format!("http://{endpoint}"))
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    atoll_proto::etcd::etcdserverpb::kv_client::KvClient::new(channel)
        .max_decoding_message_size(usize::MAX)
}
