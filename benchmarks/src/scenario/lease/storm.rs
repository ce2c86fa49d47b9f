//! `lease-storm` (issues 4 and 6): 100,000 leases, each with a key in two data shards
//! (`/lease/a/` and `/lease/b/`), all expiring together. How long until every lease is
//! gone and every attached key deleted, and what does the drain cost ordinary writes?
//!
//! Leases expire together because each is granted with the seconds left to one common
//! deadline (TTLs have second granularity, so expiries fall within one second after it).
//! The deadline is set from a calibration: a few throw-away leases are granted, given keys
//! and revoked first, and the deadline leaves twice the time their rate predicts for the
//! whole set-up, plus a margin; if the set-up outruns it anyway (an attach is refused
//! because its lease already expired), the scenario fails and says so rather than measure
//! a spread-out storm. From a few seconds before the deadline until the drain ends, 16
//! closed-loop writers put keys of their own shard: `put_*_alone` before the deadline,
//! `put_*_during_drain` after. Both systems revoke at their default pace, 1,000 leases/s
//! (etcd's `leaseRevokeRate`, Atoll's `--lease-revoke-rate`), so the drain takes about
//! 100 s either way; what differs is what it costs the writes and how close each gets.

use super::{
    CONNECTIONS, Cluster, LEASE_PREFIXES, WRITE_PREFIX, attach_keys, keys_left, lease_key_spaces,
    leases_left, must_equal, systems,
};
use crate::backend::Backend;
use crate::connect::ClientPool;
use crate::keys::{KeySpace, make_value};
use crate::limits::SEED_DEFAULT;
use crate::scenario::context::ScenarioContext;
use crate::scenario::emit::{Summary, median, merged};
use crate::scenario::put_loops::{Puts, put_loops};
use crate::workload::lease_id;
use anyhow::{anyhow, bail};
use atoll_proto::lease::{LeaseGrantRequest, LeaseRevokeRequest};
use serde_json::{Value, json};
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The scenario's name.
pub const NAME: &str = "lease-storm";
/// Leases of a full run, and of a smoke run.
const LEASES_DEFAULT: u64 = 100_000;
const LEASES_SMOKE: u64 = 300;
/// Concurrent grant and attach loops of the set-up.
const SETUP_LOOPS: u64 = 64;
/// Closed-loop writers during the storm, and the keys they write.
const WRITERS: u64 = 16;
const WRITE_KEYS: u64 = 1_000;
/// Writes measured before the deadline (the baseline), full and smoke.
const BASELINE: Duration = Duration::from_secs(5);
const BASELINE_SMOKE: Duration = Duration::from_secs(1);
/// Leases of the calibration: 1% of the storm's, within these bounds.
const CALIBRATION_MIN: u64 = 50;
const CALIBRATION_MAX: u64 = 1_000;
/// Slack of the deadline over the set-up time the calibration predicts.
const SETUP_SLACK_FACTOR: f64 = 2.0;
const SETUP_MARGIN: Duration = Duration::from_secs(5);
/// Fewest seconds left to the deadline at which a lease may still be granted: the servers
/// raise a shorter TTL to their minimum (2 s with default timeouts), which would move it.
const TTL_FLOOR_S: i64 = 3;
/// TTL of the calibration's leases (revoked by the scenario, never expired).
const CALIBRATION_TTL_S: i64 = 600;
/// How often the drain is checked, and how long it may take at most.
const DRAIN_POLL: Duration = Duration::from_millis(500);
const DRAIN_MAX: Duration = Duration::from_secs(900);
/// Rounds when `--repeat` is not given: each is several minutes per system.
const ROUNDS_DEFAULT: u64 = 1;

/// What one storm measured.
struct Storm {
    setup: Duration,
    grants_per_s: f64,
    leases_gone: Duration,
    keys_gone: Duration,
    alone: Puts,
    during: Puts,
}

impl Storm {
    fn drain(&self) -> Duration {
        self.leases_gone.max(self.keys_gone)
    }
}

/// Runs the scenario; returns its table for `suite`.
pub async fn run_scenario(ctx: &ScenarioContext) -> anyhow::Result<Summary> {
    let leases = ctx.storm_leases.unwrap_or(if ctx.smoke { LEASES_SMOKE } else { LEASES_DEFAULT });
    let mut rows = Vec::new();
    for system in systems(ctx, NAME)? {
        let mut storms = Vec::new();
        let mut target = json!({});
        for _ in 0..ctx.runs(ROUNDS_DEFAULT, 1) {
            let cluster = Cluster::start(ctx, system, NAME).await?;
            let pool = cluster.pool(CONNECTIONS).await?;
            let admin = cluster.pool(1).await?;
            storms.push(storm(ctx, &pool, admin.client(0), leases).await?);
            target = cluster.params();
        }
        emit(ctx, &storms, leases, target)?;
        rows.push((system.name(), storms));
    }
    let text = table(&rows, leases);
    eprintln!("{text}");
    Ok(Summary { scenario: NAME.into(), text, plots: Vec::new() })
}

async fn storm(
    ctx: &ScenarioContext,
    pool: &ClientPool,
    admin: &Backend,
    leases: u64,
) -> anyhow::Result<Storm> {
    let value = Arc::new(make_value(ctx.value_size, SEED_DEFAULT));
    let spaces = lease_key_spaces(leases)?;
    let began = Instant::now();
    let per_lease = calibrate(pool, leases, &value).await?;
    let predicted = per_lease.mul_f64(leases as f64 * SETUP_SLACK_FACTOR);
    let deadline = Instant::now() + predicted + SETUP_MARGIN;
    let granting = Instant::now();
    let ids = grant_until(pool, leases, deadline).await?;
    let grants_per_s = leases as f64 / granting.elapsed().as_secs_f64().max(1e-9);
    attach_all(pool, &spaces, &ids, &value).await.map_err(|e| {
        anyhow!("{e}; if a lease was not found, the set-up outran the deadline it was given")
    })?;
    must_equal("keys attached", keys_left(admin, &spaces).await?, 2 * leases as i64)?;
    let setup = began.elapsed();
    let baseline = if ctx.smoke { BASELINE_SMOKE } else { BASELINE };
    if let Some(wait) = deadline.checked_duration_since(Instant::now() + baseline) {
        tokio::time::sleep(wait).await;
    }
    let writes = KeySpace::new(WRITE_PREFIX, WRITE_KEYS, None)?;
    let alone = put_loops(pool, WRITERS, &writes, &value, async {
        tokio::time::sleep_until(deadline.into()).await;
        Ok(())
    })
    .await?;
    let mut drained = Drained::default();
    let watch = wait_drained(admin, &spaces, deadline, &mut drained);
    let during = put_loops(pool, WRITERS, &writes, &value, watch).await?;
    let (Some(leases_gone), Some(keys_gone)) = (drained.leases_gone, drained.keys_gone) else {
        bail!("the drain ended without both leases and keys gone");
    };
    Ok(Storm { setup, grants_per_s, leases_gone, keys_gone, alone, during })
}

/// Grants, attaches and revokes a few throw-away leases; returns the set-up time per lease
/// they took (grant and attach; the revocation is not counted).
async fn calibrate(pool: &ClientPool, leases: u64, value: &[u8]) -> anyhow::Result<Duration> {
    let count = (leases / 100).clamp(CALIBRATION_MIN, CALIBRATION_MAX);
    let spaces: Vec<KeySpace> = LEASE_PREFIXES
        .iter()
        .map(|p| KeySpace::new(&format!("{p}calibration/"), count, None))
        .collect::<anyhow::Result<_>>()?;
    // IDs above the storm's, so the storm's grants never meet one of them.
    let ids: Vec<i64> = (0..count).map(|i| lease_id(leases + i)).collect();
    let began = Instant::now();
    for_each_concurrently(pool, ids.len() as u64, |client, i| {
        let req = LeaseGrantRequest { ttl: CALIBRATION_TTL_S, id: ids[i as usize] };
        async move { client.lease_grant(req).await.map(drop).map_err(|e| anyhow!("{e}")) }
    })
    .await
    .map_err(|e| anyhow!("a calibration grant failed: {e}"))?;
    attach_all(pool, &spaces, &ids, value).await?;
    let took = began.elapsed();
    for_each_concurrently(pool, ids.len() as u64, |client, i| {
        let req = LeaseRevokeRequest { id: ids[i as usize] };
        async move { client.lease_revoke(req).await.map(drop).map_err(|e| anyhow!("{e}")) }
    })
    .await
    .map_err(|e| anyhow!("a calibration revoke failed: {e}"))?;
    must_equal(
        "calibration keys left after revoking",
        keys_left(pool.client(0), &spaces).await?,
        0,
    )?;
    Ok(took.div_f64(count as f64))
}

/// Grants leases `1..=leases`, each with the whole seconds left to `deadline`.
async fn grant_until(
    pool: &ClientPool,
    leases: u64,
    deadline: Instant,
) -> anyhow::Result<Vec<i64>> {
    for_each_concurrently(pool, leases, |client, i| async move {
        let left = deadline.saturating_duration_since(Instant::now());
        let ttl = left.as_secs_f64().ceil() as i64;
        if ttl < TTL_FLOOR_S {
            bail!(
                "the set-up outran its deadline ({ttl} s left at lease {i}): the machine is \
                 slower than the calibration measured; run again on a quieter machine"
            );
        }
        let answer = client
            .lease_grant(LeaseGrantRequest { ttl, id: lease_id(i) })
            .await
            .map_err(|e| anyhow!("granting lease {} failed: {e}", lease_id(i)))?;
        must_equal("granted TTL", answer.ttl, ttl)
    })
    .await?;
    Ok((0..leases).map(lease_id).collect())
}

/// Attaches a key in each of `spaces` to each lease of `ids`, in concurrent txns.
async fn attach_all(
    pool: &ClientPool,
    spaces: &[KeySpace],
    ids: &[i64],
    value: &[u8],
) -> anyhow::Result<()> {
    let batch = super::ATTACH_BATCH as u64;
    let chunks = (ids.len() as u64).div_ceil(batch);
    for_each_concurrently(pool, chunks, |client, chunk| async move {
        let first = chunk * batch;
        let end = (first + batch).min(ids.len() as u64);
        attach_keys(client, spaces, first, &ids[first as usize..end as usize], value).await?;
        Ok(())
    })
    .await
}

/// Runs `task(client, i)` for `i` in `0..count` from [`SETUP_LOOPS`] concurrent loops;
/// the first failure fails it all.
async fn for_each_concurrently<'a, F, Fut>(
    pool: &'a ClientPool,
    count: u64,
    task: F,
) -> anyhow::Result<()>
where
    F: Fn(&'a Backend, u64) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>> + 'a,
{
    let next = AtomicU64::new(0);
    let loops = (0..SETUP_LOOPS as usize).map(|worker| {
        let (next, task) = (&next, &task);
        async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    return Ok(());
                }
                task(pool.client(worker), i).await?;
            }
        }
    });
    futures::future::try_join_all(loops).await.map(drop)
}

/// When, after the deadline, the drain's two conditions first held.
#[derive(Default)]
struct Drained {
    leases_gone: Option<Duration>,
    keys_gone: Option<Duration>,
}

/// Polls until no lease is listed and no key is left, noting when each first held (from
/// `deadline`) into `drained`; fails after [`DRAIN_MAX`].
async fn wait_drained(
    admin: &Backend,
    spaces: &[KeySpace],
    deadline: Instant,
    drained: &mut Drained,
) -> anyhow::Result<()> {
    loop {
        let leases = leases_left(admin).await?;
        let keys = keys_left(admin, spaces).await?;
        let since = Instant::now().saturating_duration_since(deadline);
        if leases == 0 {
            drained.leases_gone.get_or_insert(since);
        }
        if keys == 0 {
            drained.keys_gone.get_or_insert(since);
        }
        if drained.leases_gone.is_some() && drained.keys_gone.is_some() {
            return Ok(());
        }
        if since > DRAIN_MAX {
            bail!("{leases} leases and {keys} keys still left {DRAIN_MAX:?} after they expired");
        }
        tokio::time::sleep(DRAIN_POLL).await;
    }
}

fn emit(ctx: &ScenarioContext, storms: &[Storm], leases: u64, target: Value) -> anyhow::Result<()> {
    let series = |f: &dyn Fn(&Storm) -> f64| storms.iter().map(f).collect::<Vec<f64>>();
    let drain_s = series(&|s| s.drain().as_secs_f64());
    let params = ctx.params(merged(
        json!({
            "leases": leases,
            "keys_per_lease": LEASE_PREFIXES.len(),
            "lease_prefixes": LEASE_PREFIXES,
            "writers": WRITERS,
            "write_prefix": WRITE_PREFIX,
            "rounds": storms.len(),
            "drain_poll_ms": DRAIN_POLL.as_millis() as u64,
            "drain_s_by_round": drain_s,
            "setup_s_by_round": series(&|s| s.setup.as_secs_f64()),
            "put_errors": storms.iter().map(|s| s.alone.errors + s.during.errors).sum::<u64>(),
        }),
        target,
    ));
    let lines = [
        ("drain_s", median(&drain_s), "s"),
        ("leases_gone_s", median(&series(&|s| s.leases_gone.as_secs_f64())), "s"),
        ("keys_gone_s", median(&series(&|s| s.keys_gone.as_secs_f64())), "s"),
        ("drain_leases_per_s", leases as f64 / median(&drain_s).max(1e-9), "leases/s"),
        ("setup_grants_per_s", median(&series(&|s| s.grants_per_s)), "ops/s"),
        ("put_p50_us_alone", median(&series(&|s| s.alone.percentile(0.5))), "us"),
        ("put_p99_us_alone", median(&series(&|s| s.alone.percentile(0.99))), "us"),
        ("put_p50_us_during_drain", median(&series(&|s| s.during.percentile(0.5))), "us"),
        ("put_p99_us_during_drain", median(&series(&|s| s.during.percentile(0.99))), "us"),
        ("put_ops_per_s_during_drain", median(&series(&|s| s.during.ops_per_s())), "ops/s"),
    ];
    for (metric, value, unit) in lines {
        ctx.emit(NAME, metric, value, unit, params.clone())?;
    }
    Ok(())
}

fn table(rows: &[(&str, Vec<Storm>)], leases: u64) -> String {
    let mut out = format!(
        "{leases} leases, each with one key under {} and one under {} (two data shards), \
         expiring within one second of each other on 3-member clusters; {WRITERS} closed-loop \
         writers of other keys; drain = from the expiry until no lease is listed and no key \
         is left (checked every {DRAIN_POLL:?}); medians over rounds\n\n| system | drain s | \
         leases gone s | keys gone s | put p99 µs alone | put p99 µs during drain | put \
         ops/s during drain |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: |\n",
        LEASE_PREFIXES[0], LEASE_PREFIXES[1]
    );
    for (system, storms) in rows {
        let series = |f: &dyn Fn(&Storm) -> f64| median(&storms.iter().map(f).collect::<Vec<_>>());
        let _ = writeln!(
            out,
            "| {system} | {:.1} | {:.1} | {:.1} | {:.0} | {:.0} | {:.0} |",
            series(&|s| s.drain().as_secs_f64()),
            series(&|s| s.leases_gone.as_secs_f64()),
            series(&|s| s.keys_gone.as_secs_f64()),
            series(&|s| s.alone.percentile(0.99)),
            series(&|s| s.during.percentile(0.99)),
            series(&|s| s.during.ops_per_s()),
        );
    }
    out
}
