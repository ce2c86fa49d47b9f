//! etcdctl 3.4's `user`, `role` and `auth` commands and `--user` against Atoll (decision
//! D21): the output etcdctl prints against etcd, and etcd's errors.

mod support;

use support::cluster::TestCluster;
use support::etcdctl::{lines, must_fail, must_ok, must_wait_ready};

#[test]
fn etcdctl_manages_users_and_roles_and_authenticates() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cluster = TestCluster::must_prepare(dir.path(), 1, "/b/");
    cluster.must_start_all();
    let endpoints = cluster.endpoints(&[0]);
    must_wait_ready(&endpoints);
    let ep = endpoints[0].as_str();

    eprintln!("phase: users and roles while auth is disabled");
    assert_eq!(
        must_ok(ep, &["user", "add", "root", "--new-user-password=rootpw"]),
        "User root created\n"
    );
    assert_eq!(
        must_ok(ep, &["user", "add", "alice", "--new-user-password=alicepw"]),
        "User alice created\n"
    );
    assert_eq!(must_ok(ep, &["role", "add", "app"]), "Role app created\n");
    assert_eq!(
        must_ok(ep, &["role", "grant-permission", "app", "readwrite", "/b/app/", "--prefix=true"]),
        "Role app updated\n"
    );
    assert_eq!(
        must_ok(ep, &["role", "grant-permission", "app", "read", "/a/one"]),
        "Role app updated\n"
    );
    assert_eq!(
        must_ok(ep, &["user", "grant-role", "alice", "app"]),
        "Role app is granted to user alice\n"
    );
    assert_eq!(
        must_ok(ep, &["role", "get", "app"]),
        "Role app\nKV Read:\n\t/a/one\n\t[/b/app/, /b/app0) (prefix /b/app/)\nKV Write:\n\t[/b/app/, /b/app0) (prefix /b/app/)\n"
    );
    assert_eq!(must_ok(ep, &["user", "get", "alice"]), "User: alice\nRoles: app\n");
    assert_eq!(lines(&must_ok(ep, &["user", "list"])), ["alice", "root"]);
    let stderr = must_fail(ep, &["user", "grant-role", "alice", "missing"]);
    assert!(stderr.contains("etcdserver: role name not found"), "{stderr}");

    eprintln!("phase: etcdctl's auth enable adds the root role it needs");
    assert_eq!(must_ok(ep, &["auth", "enable"]), "Authentication Enabled\n");
    let stderr = must_fail(ep, &["get", "/b/app/x"]);
    assert!(stderr.contains("etcdserver: user name is empty"), "{stderr}");
    let stderr = must_fail(ep, &["--user", "alice:wrong", "get", "/b/app/x"]);
    assert!(
        stderr.contains("etcdserver: authentication failed, invalid user ID or password"),
        "{stderr}"
    );

    eprintln!("phase: alice inside and outside her permissions");
    assert_eq!(must_ok(ep, &["--user", "alice:alicepw", "put", "/b/app/x", "1"]), "OK\n");
    assert_eq!(
        lines(&must_ok(ep, &["--user", "alice:alicepw", "get", "/b/app/x"])),
        ["/b/app/x", "1"]
    );
    assert_eq!(must_ok(ep, &["--user", "alice:alicepw", "get", "/a/one"]), "");
    for args in [
        &["--user", "alice:alicepw", "put", "/a/one", "x"][..],
        &["--user", "alice:alicepw", "get", "/", "--prefix"],
        &["--user", "alice:alicepw", "user", "list"],
        &["--user", "alice:alicepw", "auth", "disable"],
    ] {
        let stderr = must_fail(ep, args);
        assert!(stderr.contains("etcdserver: permission denied"), "{args:?}: {stderr}");
    }

    eprintln!("phase: root manages");
    fn with_root<'a>(args: &[&'a str]) -> Vec<&'a str> {
        [&["--user", "root:rootpw"][..], args].concat()
    }
    let stderr = must_fail(ep, &with_root(&["user", "delete", "root"]));
    assert!(stderr.contains("etcdserver: invalid auth management"), "{stderr}");
    assert_eq!(
        must_ok(ep, &with_root(&["role", "revoke-permission", "app", "/a/one"])),
        "Permission of key /a/one is revoked from role app\n"
    );
    assert_eq!(
        must_ok(ep, &with_root(&["user", "revoke-role", "alice", "app"])),
        "Role app is revoked from user alice\n"
    );
    let stderr = must_fail(ep, &["--user", "alice:alicepw", "get", "/b/app/x"]);
    assert!(stderr.contains("etcdserver: permission denied"), "{stderr}");
    assert_eq!(must_ok(ep, &with_root(&["role", "delete", "app"])), "Role app deleted\n");
    assert_eq!(must_ok(ep, &with_root(&["user", "delete", "alice"])), "User alice deleted\n");
    assert_eq!(must_ok(ep, &with_root(&["auth", "disable"])), "Authentication Disabled\n");
    assert_eq!(lines(&must_ok(ep, &["get", "/b/app/x"])), ["/b/app/x", "1"]);
}
