//! The lease metrics of a real node's `/metrics` move with lease work: grants, a client's
//! revoke and an expiry count; the live-lease gauge, the expiry heap and the revocation
//! backlog follow, and come back to zero once everything is revoked.

mod support;

use atoll_proto::{LeaseGrantRequest, LeaseRevokeRequest, PutRequest, RangeRequest};
use std::time::{Duration, Instant};
use support::{TestNode, must_metric};

const PATIENCE: Duration = Duration::from_secs(30);

/// Waits until metric `name` reads `want`.
fn must_reach(http: u16, name: &str, want: u64) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let got = must_metric(http, name);
        if got == want {
            return;
        }
        assert!(Instant::now() < deadline, "{name} stayed at {got}, expected {want}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_metrics_count_grants_revocations_and_expiries() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (node, http) = TestNode::must_start_with_metrics(dir.path());
    let client = node.must_client().await;

    eprintln!("phase: every lease metric is there, at zero, before any lease");
    for name in [
        "atoll_lease_granted_total",
        "atoll_lease_revoked_total",
        "atoll_lease_expired_total",
        "atoll_lease_active",
        "atoll_lease_revocation_backlog",
        "atoll_lease_expiry_heap_entries",
    ] {
        assert_eq!(must_metric(http, name), 0, "{name}");
    }

    eprintln!("phase: two grants count, and both leases are live");
    let long = client.lease_grant(LeaseGrantRequest { ttl: 600, id: 0 }).await.expect("grant");
    let short = client.lease_grant(LeaseGrantRequest { ttl: 600, id: 0 }).await.expect("grant");
    assert_eq!(must_metric(http, "atoll_lease_granted_total"), 2);
    assert_eq!(must_metric(http, "atoll_lease_active"), 2);
    assert_eq!(must_metric(http, "atoll_lease_expiry_heap_entries"), 2);

    eprintln!("phase: a client's revoke counts as a revocation, not an expiry");
    client.lease_revoke(LeaseRevokeRequest { id: long.id }).await.expect("revoke");
    assert_eq!(must_metric(http, "atoll_lease_revoked_total"), 1);
    assert_eq!(must_metric(http, "atoll_lease_active"), 1);

    eprintln!("phase: a lease with a key expires: counted, revoked, its key deleted");
    let grant = LeaseGrantRequest { ttl: 1, id: 0 };
    let expiring = client.lease_grant(grant).await.expect("grant");
    let put = PutRequest {
        key: b"/leased".to_vec(),
        value: b"v".to_vec(),
        lease: expiring.id,
        ..Default::default()
    };
    client.put(put).await.expect("attach");
    must_reach(http, "atoll_lease_expired_total", 1);
    must_reach(http, "atoll_lease_revoked_total", 2);
    let left = client.range(RangeRequest { key: b"/leased".to_vec(), ..Default::default() });
    assert_eq!(left.await.expect("range").count, 0, "the expired lease's key is deleted");
    assert_eq!(must_metric(http, "atoll_lease_granted_total"), 3);
    assert_eq!(must_metric(http, "atoll_lease_revocation_backlog"), 0);

    eprintln!("phase: revoking the last lease brings the gauges back to zero");
    client.lease_revoke(LeaseRevokeRequest { id: short.id }).await.expect("revoke");
    assert_eq!(must_metric(http, "atoll_lease_active"), 0);
    assert_eq!(must_metric(http, "atoll_lease_revoked_total"), 3);
    assert_eq!(must_metric(http, "atoll_lease_expired_total"), 1);
}
