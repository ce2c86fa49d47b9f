//! The auto-compaction policy driven by hand: time and request counts are plain numbers, so
//! nothing sleeps.

use super::*;

const SEC: Duration = Duration::from_secs(1);
const MIN: Duration = Duration::from_secs(60);

fn config(retention: Retention) -> AutoCompactionConfig {
    AutoCompactionConfig {
        retention: Some(retention),
        busy_requests_per_second: 100,
        max_deferral: 10 * SEC,
    }
}

fn sample(now: Duration, head_revision: i64, requests_total: u64) -> ShardSample {
    ShardSample { now, head_revision, compact_revision: 0, requests_total, leads: true }
}

#[test]
fn off_without_retention() {
    let cfg = AutoCompactionConfig { retention: None, ..AutoCompactionConfig::default() };
    assert!(AutoCompactor::new(&cfg, Duration::ZERO).is_none());
}

#[test]
fn periodic_keeps_the_retention_and_compacts_every_interval() {
    // Retention 10 min: samples every minute, first compaction after 10 min at the head of
    // 10 min ago, then every 10 min (the retention, being under an hour).
    let mut p = must_policy(Retention::Periodic(10 * MIN));
    let mut compacted = Vec::new();
    let mut now = Duration::ZERO;
    while now <= 30 * MIN {
        // The head revision is the minute number times 1000: easy to read back.
        let head = (now.as_secs() / 60 * 1000) as i64 + 1;
        let plan = p.on_check(sample(now, head, 0));
        if let AutoAction::Compact { revision } = plan.action {
            compacted.push((now.as_secs() / 60, revision));
            p.on_outcome(now, revision, AutoOutcome::Compacted);
        }
        assert!(plan.next_check_in <= MIN, "checks at least every sampling interval");
        now += plan.next_check_in;
    }
    assert_eq!(compacted, vec![(10, 1), (20, 10_001), (30, 20_001)]);
}

#[test]
fn periodic_over_an_hour_compacts_hourly_keeping_the_whole_window() {
    let mut p = must_policy(Retention::Periodic(3 * 60 * MIN));
    let mut compacted = Vec::new();
    let mut now = Duration::ZERO;
    while now <= 5 * 60 * MIN {
        let head = (now.as_secs() / 60) as i64 + 1;
        let plan = p.on_check(sample(now, head, 0));
        if let AutoAction::Compact { revision } = plan.action {
            compacted.push((now.as_secs() / 60, revision));
            p.on_outcome(now, revision, AutoOutcome::Compacted);
        }
        now += plan.next_check_in;
    }
    // First after 3 h at the head of 3 h ago, then hourly, each 3 h behind.
    assert_eq!(compacted, vec![(180, 1), (240, 61), (300, 121)]);
}

#[test]
fn only_a_leader_compacts_and_a_failure_is_retried() {
    let mut p = must_policy(Retention::Periodic(MIN));
    let mut now = Duration::ZERO;
    let mut follower_actions = Vec::new();
    while now < 2 * MIN {
        let s = ShardSample { leads: false, ..sample(now, 5 + now.as_secs() as i64, 0) };
        follower_actions.push(p.on_check(s).action);
        now += p.regular_interval();
    }
    assert!(follower_actions.iter().all(|a| *a == AutoAction::Wait));
    let plan = p.on_check(sample(now, 500, 0));
    let AutoAction::Compact { revision } = plan.action else { panic!("{plan:?}") };
    assert_eq!(revision, 5 + 60, "the head of one retention ago, sampled while following");
    assert_eq!(p.on_check(sample(now + SEC, 501, 0)).action, AutoAction::Wait, "one at a time");
    p.on_outcome(now + SEC, revision, AutoOutcome::Failed);
    let retry = p.on_check(sample(now + 7 * SEC, 502, 0));
    assert!(matches!(retry.action, AutoAction::Compact { .. }), "{retry:?}");
}

#[test]
fn revision_mode_asks_for_the_retained_count_every_five_minutes() {
    let mut p = must_policy(Retention::Revisions(1_000));
    let first = p.on_check(sample(Duration::ZERO, 10, 0));
    assert_eq!(first.action, AutoAction::Wait);
    assert_eq!(first.next_check_in, REVISION_CHECK_INTERVAL);
    let now = REVISION_CHECK_INTERVAL;
    let plan = p.on_check(sample(now, 20_000, 0));
    assert_eq!(plan.action, AutoAction::CompactRetaining { revisions: 1_000 });
    assert_eq!(p.target_found(now, Some(7_000), 0), Some(7_000));
    p.on_outcome(now, 7_000, AutoOutcome::Compacted);

    let later = 2 * REVISION_CHECK_INTERVAL;
    assert_eq!(
        p.on_check(sample(later, 20_000, 0)).action,
        AutoAction::CompactRetaining { revisions: 1_000 }
    );
    assert_eq!(p.target_found(later, Some(7_000), 0), None, "a repeat target is skipped");
    let again = 3 * REVISION_CHECK_INTERVAL;
    assert!(matches!(
        p.on_check(sample(again, 30_000, 0)).action,
        AutoAction::CompactRetaining { .. }
    ));
    assert_eq!(p.target_found(again, None, 0), None, "fewer revisions than kept");
    assert_eq!(p.target_found(again, Some(100), 200), None, "already compacted past it");
}

#[test]
fn a_busy_shard_defers_up_to_the_maximum_then_compacts() {
    let mut p = must_policy(Retention::Revisions(10));
    let mut now = Duration::ZERO;
    let mut requests = 0;
    p.on_check(sample(now, 1, requests));
    now = REVISION_CHECK_INTERVAL;
    // 1,000 requests/s over the last interval, above the threshold of 100.
    requests += 1_000 * REVISION_CHECK_INTERVAL.as_secs();
    let mut deferred = 0;
    loop {
        let plan = p.on_check(sample(now, 1, requests));
        if plan.action != AutoAction::Wait {
            assert_eq!(plan.action, AutoAction::CompactRetaining { revisions: 10 });
            break;
        }
        assert_eq!(plan.next_check_in, DEFER_RECHECK_INTERVAL);
        deferred += 1;
        now += plan.next_check_in;
        requests += 1_000;
    }
    assert_eq!(deferred, 10, "deferred for the 10 s maximum, then compacted anyway");
}

#[test]
fn a_deferral_ends_when_the_rate_drops() {
    let mut p = must_policy(Retention::Revisions(10));
    p.on_check(sample(Duration::ZERO, 1, 0));
    let due = REVISION_CHECK_INTERVAL;
    let busy = p.on_check(sample(due, 1, 1_000 * due.as_secs()));
    assert_eq!(busy.action, AutoAction::Wait);
    // 50 requests in the next second: under 100/s.
    let calm = p.on_check(sample(due + SEC, 1, 1_000 * due.as_secs() + 50));
    assert_eq!(calm.action, AutoAction::CompactRetaining { revisions: 10 });
}

fn must_policy(retention: Retention) -> AutoCompactor {
    AutoCompactor::new(&config(retention), Duration::ZERO).expect("retention set")
}
