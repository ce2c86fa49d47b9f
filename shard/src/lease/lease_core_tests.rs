//! Unit tests of the lease manager's core: expiry, renewal, checkpoints, promotion.

use super::lease_core::*;
use atoll_proto::{LeaseRecord, LeaseRef, ShardId};

fn record(id: i64, ttl: i64) -> LeaseRecord {
    LeaseRecord {
        lease: LeaseRef { id, grant_index: id as u64 * 10 },
        ttl,
        remaining_ms: 0,
        revoking: false,
    }
}

#[test]
fn a_lease_expires_after_its_ttl_once_and_in_expiry_order() {
    let mut core = LeaseCore::default();
    core.granted(record(1, 10), 0);
    core.granted(record(2, 5), 0);
    assert!(core.take_expired(4_999, 10).is_empty());
    assert_eq!(core.take_expired(10_000, 10).iter().map(|l| l.id).collect::<Vec<_>>(), [2, 1]);
    // Taken once: both are now revoking and gone for clients.
    assert!(core.take_expired(20_000, 10).is_empty());
    assert_eq!(core.lookup(1), None);
    assert!(core.ids().is_empty());
    assert!(core.contains(1), "held until the revocation finishes");
    core.revoked(LeaseRef { id: 1, grant_index: 10 });
    assert!(!core.contains(1));
}

#[test]
fn expiry_takes_at_most_the_asked_number_per_pass() {
    let mut core = LeaseCore::default();
    for id in 1..=5 {
        core.granted(record(id, 1), 0);
    }
    assert_eq!(core.take_expired(1_000, 2).len(), 2);
    assert_eq!(core.take_expired(1_000, 2).len(), 2);
    assert_eq!(core.take_expired(1_000, 2).len(), 1);
}

#[test]
fn a_keepalive_extends_the_lease_and_asks_to_clear_a_checkpoint() {
    let mut core = LeaseCore::default();
    core.granted(record(1, 10), 0);
    let renewed = core.renew(1, 8_000).expect("renewed");
    assert_eq!(renewed, Renewed { ttl_seconds: 10, clear_checkpoint: false });
    assert!(core.take_expired(10_000, 10).is_empty(), "the old expiry no longer counts");
    assert_eq!(core.time_to_live(1, 10_000).map(|t| t.remaining_seconds), Some(8));
    assert_eq!(core.checkpoints(10_000, 1_000, 10), vec![(1, 8_000)]);
    assert!(core.renew(1, 10_000).expect("renewed").clear_checkpoint);
    assert!(!core.renew(1, 10_000).expect("renewed").clear_checkpoint);
    assert_eq!(core.renew(1, 20_000), None, "an expired lease is not renewed");
    assert_eq!(core.take_expired(20_000, 10).len(), 1);
    assert_eq!(core.renew(1, 20_000), None, "a revoking lease is not renewed");
}

#[test]
fn a_new_leader_continues_from_the_checkpoint_plus_an_election_timeout() {
    let mut checkpointed = record(1, 60);
    checkpointed.remaining_ms = 20_000;
    let mut revoking = record(2, 60);
    revoking.revoking = true;
    let mut core = LeaseCore::promote(vec![checkpointed, revoking, record(3, 60)], 100, 1_000);
    let ttl = core.time_to_live(1, 100).expect("held");
    assert_eq!((ttl.granted_seconds, ttl.remaining_seconds), (60, 21));
    assert_eq!(core.time_to_live(3, 100).map(|t| t.remaining_seconds), Some(61));
    assert_eq!(core.lookup(2), None, "a revoking lease is not live");
    assert_eq!(core.take_unfinished(10), vec![revoking.lease]);
    assert!(core.take_unfinished(10).is_empty());
    assert_eq!(core.take_expired(21_100, 10).iter().map(|l| l.id).collect::<Vec<_>>(), [1]);
}

#[test]
fn a_failed_revocation_is_retried_and_a_stale_one_never_removes_a_new_grant() {
    let mut core = LeaseCore::default();
    core.granted(record(1, 1), 0);
    let taken = core.take_expired(1_000, 10);
    core.revoke_failed(taken[0], 1_000);
    assert_eq!(core.lookup(1), Some(taken[0]), "live again until the retry");
    assert!(core.take_expired(1_000 + REVOKE_RETRY_MS - 1, 10).is_empty());
    assert_eq!(core.take_expired(1_000 + REVOKE_RETRY_MS, 10), taken);
    core.revoked(LeaseRef { id: 1, grant_index: 999 });
    assert!(core.contains(1), "another grant's revocation leaves this one");
}

#[test]
fn checkpoint_passes_skip_short_leases_and_resume_after_the_cap() {
    let mut core = LeaseCore::default();
    for id in 1..=4 {
        core.granted(record(id, 100), 0);
    }
    core.granted(record(9, 1), 0);
    let first: Vec<i64> = core.checkpoints(0, 5_000, 2).iter().map(|c| c.0).collect();
    assert_eq!(first, [1, 2]);
    let second: Vec<i64> = core.checkpoints(0, 5_000, 2).iter().map(|c| c.0).collect();
    assert_eq!(second, [3, 4]);
    let third: Vec<i64> = core.checkpoints(0, 5_000, 10).iter().map(|c| c.0).collect();
    assert_eq!(third, [1, 2, 3, 4], "lease 9 expires before the next pass");
}

#[test]
fn stats_count_live_leases_and_every_revocation_not_finished() {
    let mut core = LeaseCore::default();
    assert_eq!(core.stats(0), LeaseStats::default(), "nothing held, no heap");
    for id in 1..=3 {
        core.granted(record(id, 1), 0);
    }
    core.granted(record(4, 60), 0);
    assert!(core.renew(4, 500).is_some());
    let stats = core.stats(500);
    assert_eq!((stats.active, stats.revocation_backlog, stats.heap_entries), (4, 0, 5));
    // At 1 s leases 1..=3 expired: waiting before they are taken, revoking after.
    assert_eq!(core.stats(1_000).revocation_backlog, 3);
    let taken = core.take_expired(1_000, 2);
    assert_eq!(core.stats(1_000), LeaseStats { active: 1, revocation_backlog: 3, heap_entries: 3 });
    core.revoked(taken[0]);
    core.finish_later(taken[1]);
    assert_eq!(core.stats(1_000).revocation_backlog, 2, "a queued revocation counts once");
    assert_eq!(core.take_unfinished(10), vec![taken[1]]);
    core.revoked(taken[1]);
    assert_eq!(core.stats(1_000).revocation_backlog, 1, "lease 3 is still to be taken");
    let mut revoking = record(7, 60);
    revoking.revoking = true;
    let promoted = LeaseCore::promote(vec![revoking], 0, 0);
    assert_eq!(promoted.stats(0).revocation_backlog, 1, "a former leader's, queued alone");
}

#[test]
fn a_revocation_visits_the_shards_attaches_were_approved_for_or_all_if_unknown() {
    let mut core = LeaseCore::default();
    core.granted(record(1, 10), 0);
    core.granted(record(2, 10), 0);
    let one = LeaseRef { id: 1, grant_index: 10 };
    assert_eq!(core.shards_of(one), Some(vec![]), "granted here, no attach yet");
    assert_eq!(core.attach(1, ShardId(3)), Some(one));
    assert_eq!(core.attach(1, ShardId(1)), Some(one));
    assert_eq!(core.attach(1, ShardId(3)), Some(one));
    assert_eq!(core.shards_of(one), Some(vec![ShardId(3), ShardId(1)]));
    // Another grant of the ID is not this one: unknown, so every shard.
    assert_eq!(core.shards_of(LeaseRef { id: 1, grant_index: 99 }), None);
    assert_eq!(core.attach(7, ShardId(1)), None, "no such lease");
    core.revoking(1);
    assert_eq!(core.attach(1, ShardId(2)), None, "no attach once revoking");
    assert_eq!(core.shards_of(one), Some(vec![ShardId(3), ShardId(1)]));
    core.revoked(one);
    assert_eq!(core.shards_of(one), None);
    // A lease a new leader loads was attached under an earlier leader: unknown.
    let promoted = LeaseCore::promote(vec![record(5, 60)], 0, 0);
    assert_eq!(promoted.shards_of(LeaseRef { id: 5, grant_index: 50 }), None);
}
