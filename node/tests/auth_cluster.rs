//! Auth (decision D21) through the `etcd-client` crate on a 3-node cluster with several
//! shards: root, a user and a role with a prefix permission; enabling auth; the user reads
//! and writes inside its prefix and is refused outside it with etcd's error; a token from one
//! member works on another; a wrong password and a forged token are refused; the store
//! survives a restart; disabling auth.

mod support;

use etcd_client::{Client, ConnectOptions, GetOptions, Permission, WatchOptions};
use std::time::Duration;
use support::cluster::TestCluster;
use support::etcd::{must_connect, status};
use tonic::Code;

async fn must_connect_as(endpoint: &str, user: &str, password: &str) -> Client {
    let options = ConnectOptions::new().with_user(user, password);
    Client::connect([endpoint], Some(options)).await.expect("connect and authenticate")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_roles_and_permissions_are_enforced_on_every_member() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cluster = TestCluster::must_prepare(dir.path(), 3, "/b/,/m/");
    cluster.must_start_all();
    let endpoints = cluster.endpoints(&[0, 1, 2]);
    let mut admin = must_connect(&endpoints[0]).await;

    eprintln!("phase: the store is created through one member, seen through another");
    admin.user_add("root", "rootpw", None).await.expect("add root");
    let (code, message) = status(admin.auth_enable().await);
    assert_eq!(
        (code, message.as_str()),
        (Code::FailedPrecondition, "etcdserver: root user does not have root role")
    );
    admin.role_add("root").await.expect("add root role");
    admin.user_grant_role("root", "root").await.expect("grant root");
    admin.user_add("alice", "alicepw", None).await.expect("add alice");
    let (code, message) = status(admin.user_add("alice", "x", None).await);
    assert_eq!(
        (code, message.as_str()),
        (Code::FailedPrecondition, "etcdserver: user name already exists")
    );
    admin.role_add("app").await.expect("add role");
    let (code, message) = status(admin.role_add("app").await);
    assert_eq!(
        (code, message.as_str()),
        (Code::FailedPrecondition, "etcdserver: role name already exists")
    );
    // A prefix spanning two shards' boundary is fine: permissions are about keys.
    let perm = Permission::read_write("/b/app/").with_prefix();
    admin.role_grant_permission("app", perm).await.expect("grant permission");
    admin.user_grant_role("alice", "app").await.expect("grant role");
    let (code, message) = status(admin.user_grant_role("alice", "missing").await);
    assert_eq!(
        (code, message.as_str()),
        (Code::FailedPrecondition, "etcdserver: role name not found")
    );
    let mut other = must_connect(&endpoints[1]).await;
    let roles = other.user_get("alice").await.expect("user get");
    assert_eq!(roles.roles(), ["app"]);
    let perms = other.role_get("app").await.expect("role get").permissions();
    assert_eq!(perms.len(), 1);
    assert_eq!((perms[0].key(), perms[0].range_end()), (&b"/b/app/"[..], &b"/b/app0"[..]));
    let mut users = other.user_list().await.expect("user list").users().to_vec();
    users.sort();
    assert_eq!(users, ["alice", "root"]);

    eprintln!("phase: auth enabled; no token, a wrong password, a forged token");
    admin.auth_enable().await.expect("enable");
    let (code, message) = status(admin.get("/b/app/x", None).await);
    assert_eq!((code, message.as_str()), (Code::InvalidArgument, "etcdserver: user name is empty"));
    // Another member enforces auth once it applied the change (a few milliseconds).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while other.get("/b/app/x", None).await.is_ok() {
        assert!(std::time::Instant::now() < deadline, "member 1 never applied the enable");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (code, message) = status(other.get("/b/app/x", None).await);
    assert_eq!((code, message.as_str()), (Code::InvalidArgument, "etcdserver: user name is empty"));
    let wrong = Client::connect(
        [endpoints[2].as_str()],
        Some(ConnectOptions::new().with_user("alice", "nope")),
    )
    .await;
    let (code, message) = status(wrong.map(drop));
    assert_eq!(
        (code, message.as_str()),
        (Code::InvalidArgument, "etcdserver: authentication failed, invalid user ID or password")
    );
    let plain = Client::connect([endpoints[2].as_str()], None).await.expect("connect");
    let token =
        plain.auth_client().authenticate("alice".into(), "alicepw".into()).await.expect("auth");
    let forged = format!("{}x", token.token());
    let forged_client = tonic_get_with_token(&endpoints[2], &forged).await;
    assert_eq!(
        forged_client,
        (Code::Unauthenticated, "etcdserver: invalid auth token".to_string())
    );
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", endpoints[1]))
        .expect("endpoint")
        .connect()
        .await
        .expect("connect");
    let mut raw = atoll_proto::etcd::etcdserverpb::auth_client::AuthClient::new(channel);
    let status_now = raw
        .auth_status(atoll_proto::etcd::etcdserverpb::AuthStatusRequest {})
        .await
        .expect("auth status needs no token")
        .into_inner();
    assert!(status_now.enabled && status_now.auth_revision > 0, "{status_now:?}");

    eprintln!("phase: alice inside and outside her prefix, through every member");
    let mut alice_a = must_connect_as(&endpoints[0], "alice", "alicepw").await;
    let mut alice_c = must_connect_as(&endpoints[2], "alice", "alicepw").await;
    alice_a.put("/b/app/1", "one", None).await.expect("put inside");
    let got = alice_c.get("/b/app/", Some(GetOptions::new().with_prefix())).await.expect("get");
    assert_eq!(got.kvs()[0].value(), b"one");
    let denied = [
        status(alice_a.put("/m/secret", "x", None).await),
        status(alice_c.get("/m/secret", None).await),
        status(alice_c.get("/b/", Some(GetOptions::new().with_prefix())).await),
        status(alice_a.delete("/b/app0", None).await),
        status(alice_a.user_list().await),
        status(alice_a.auth_disable().await),
    ];
    for (code, message) in denied {
        assert_eq!(
            (code, message.as_str()),
            (Code::PermissionDenied, "etcdserver: permission denied")
        );
    }
    assert_eq!(alice_c.user_get("alice").await.expect("own user").roles(), ["app"]);
    let mut watch =
        alice_a.watch("/m/", Some(WatchOptions::new().with_prefix())).await.expect("watch stream");
    let refused = tokio::time::timeout(Duration::from_secs(10), watch.message())
        .await
        .expect("in time")
        .expect("ok")
        .expect("an answer");
    assert!(refused.canceled(), "{refused:?}");
    assert_eq!(
        refused.cancel_reason(),
        "rpc error: code = PermissionDenied desc = etcdserver: permission denied"
    );

    eprintln!("phase: a token issued by one member is good on the others");
    let token =
        alice_a.auth_client().authenticate("alice".into(), "alicepw".into()).await.expect("auth");
    for endpoint in &endpoints {
        let (code, message) = tonic_get_with_token(endpoint, token.token()).await;
        assert_eq!((code, message.as_str()), (Code::Ok, ""), "on {endpoint}");
    }

    eprintln!("phase: root manages; tokens before the change are stale");
    let mut root = must_connect_as(&endpoints[1], "root", "rootpw").await;
    let (code, message) = status(root.user_delete("root").await);
    assert_eq!(
        (code, message.as_str()),
        (Code::InvalidArgument, "etcdserver: invalid auth management")
    );
    let (code, message) = status(root.user_revoke_role("alice", "other").await);
    assert_eq!(
        (code, message.as_str()),
        (Code::FailedPrecondition, "etcdserver: role is not granted to the user")
    );
    let (code, message) = status(root.role_revoke_permission("app", "/nope", None).await);
    assert_eq!(
        (code, message.as_str()),
        (Code::FailedPrecondition, "etcdserver: permission is not granted to the role")
    );
    root.put("/m/secret", "root may", None).await.expect("root writes anywhere");
    let (code, message) = tonic_get_with_token(&endpoints[0], token.token()).await;
    assert_eq!(
        (code, message.as_str()),
        (Code::Ok, ""),
        "failed checks change nothing, so the revision holds"
    );
    root.user_add("bob", "bobpw", None).await.expect("add bob");
    let (code, message) = tonic_get_with_token(&endpoints[0], token.token()).await;
    assert_eq!(
        (code, message.as_str()),
        (Code::InvalidArgument, "etcdserver: revision of auth store is old")
    );

    eprintln!("phase: a restart keeps the store");
    drop((alice_a, alice_c, root, admin, other, plain));
    cluster.kill9(0);
    cluster.must_start(0);
    let mut root = must_connect_as_patiently(&endpoints[0], "root", "rootpw").await;
    let mut users = root.user_list().await.expect("user list").users().to_vec();
    users.sort();
    assert_eq!(users, ["alice", "bob", "root"]);
    let mut alice = must_connect_as(&endpoints[0], "alice", "alicepw").await;
    let got = alice.get("/b/app/1", None).await.expect("get after restart");
    assert_eq!(got.kvs()[0].value(), b"one");

    eprintln!("phase: disabled again, no token is needed");
    root.auth_disable().await.expect("disable");
    let mut anyone = Client::connect([endpoints[2].as_str()], None).await.expect("connect");
    let got = anyone.get("/m/secret", None).await.expect("get without a token");
    assert_eq!(got.kvs()[0].value(), b"root may");
}

/// A restarted member answers once it has a leader for the meta shard.
async fn must_connect_as_patiently(endpoint: &str, user: &str, password: &str) -> Client {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let options = ConnectOptions::new().with_user(user, password);
        match Client::connect([endpoint], Some(options)).await {
            Ok(client) => return client,
            Err(e) if std::time::Instant::now() < deadline => {
                eprintln!("{endpoint} not ready: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("{endpoint} never authenticated: {e}"),
        }
    }
}

/// A Range of `/b/app/1` with `token` in the gRPC metadata, as etcd clients send it: the
/// status code and message (`Ok` and "" on success).
async fn tonic_get_with_token(endpoint: &str, token: &str) -> (Code, String) {
    use atoll_proto::etcd::etcdserverpb as pb;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{endpoint}"))
        .expect("endpoint")
        .connect()
        .await
        .expect("connect");
    let mut kv = pb::kv_client::KvClient::new(channel);
    let mut req =
        tonic::Request::new(pb::RangeRequest { key: b"/b/app/1".to_vec(), ..Default::default() });
    req.metadata_mut().insert("token", token.parse().expect("ascii token"));
    match kv.range(req).await {
        Ok(_) => (Code::Ok, String::new()),
        Err(s) => (s.code(), s.message().to_string()),
    }
}
