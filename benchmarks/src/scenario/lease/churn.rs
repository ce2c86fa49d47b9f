//! `lease-churn` (issue 4: "a soak of lease churn keeps follower memory flat"): loops grant
//! a lease, attach a key to it in each of two data shards, renew it once, then revoke it
//! (even leases) or leave it to expire at the minimum TTL (odd ones), on a 3-member cluster,
//! for a while. Each member's RSS (`/proc/<pid>/status`) is sampled after a warm-up of the
//! same churn (caches and allocator pools fill first) and again once the churn stopped and
//! the last leases expired; the lines give each member's growth and the largest growth
//! among the followers (members not leading the leases: Atoll's meta shard, etcd's
//! cluster). etcd 3.4 kept an expiry heap on followers that grew with every lease (decision
//! D16); Atoll's followers keep no lease state, so theirs should stay flat.

use super::{CONNECTIONS, Cluster, System, keys_left, lease_key_spaces, leases_left, systems};
use crate::backend::{Backend, BackendError};
use crate::connect::ClientPool;
use crate::etcd_client::EtcdClient;
use crate::keys::{KeySpace, make_value};
use crate::limits::SEED_DEFAULT;
use crate::scenario::context::ScenarioContext;
use crate::scenario::emit::{Summary, merged};
use crate::scenario::proc_stat::read_rss_kib;
use crate::workload::lease_id;
use anyhow::{anyhow, bail};
use atoll_proto::kv::PutRequest;
use atoll_proto::lease::{LeaseGrantRequest, LeaseRevokeRequest};
use serde_json::{Value, json};
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The scenario's name.
pub const NAME: &str = "lease-churn";
/// Churn before the first sample, and measured churn (full and smoke).
const WARMUP: Duration = Duration::from_secs(20);
const WARMUP_SMOKE: Duration = Duration::ZERO;
const CHURN: Duration = Duration::from_secs(120);
const CHURN_SMOKE: Duration = Duration::from_secs(2);
/// Concurrent churn loops.
const LOOPS: u64 = 16;
/// TTL asked for leases left to expire: below every server's minimum, so each gets the
/// minimum (2 s with default timeouts) and expires soon.
const EXPIRING_TTL_S: i64 = 1;
/// TTL of leases the loop revokes itself.
const REVOKED_TTL_S: i64 = 60;
/// Keys per shard the churn writes (lease `n` takes key `n mod KEYS`), so the store stays
/// small and memory growth is not the data's.
const KEYS: u64 = 1_000;
/// Memory is sampled this often during the measured churn, so a plateau shows.
const SAMPLE_EVERY: Duration = Duration::from_secs(30);
/// How long the last expiring leases may take to be revoked before the final sample.
const DRAIN_MAX: Duration = Duration::from_secs(60);
const DRAIN_POLL: Duration = Duration::from_millis(250);

/// One member's RSS at the two samples, and every [`SAMPLE_EVERY`] in between.
struct MemberRss {
    name: String,
    leads: bool,
    start_kib: u64,
    end_kib: u64,
    samples_kib: Vec<u64>,
}

impl MemberRss {
    fn growth_kib(&self) -> i64 {
        self.end_kib as i64 - self.start_kib as i64
    }
}

/// What one system's churn measured.
struct Churned {
    system: System,
    members: Vec<MemberRss>,
    leases: u64,
    elapsed: Duration,
    errors: u64,
}

impl Churned {
    fn max_follower_growth_kib(&self) -> i64 {
        self.members.iter().filter(|m| !m.leads).map(MemberRss::growth_kib).max().unwrap_or(0)
    }
}

/// Runs the scenario; returns its table for `suite`.
pub async fn run_scenario(ctx: &ScenarioContext) -> anyhow::Result<Summary> {
    let (warmup, churn) = if ctx.smoke { (WARMUP_SMOKE, CHURN_SMOKE) } else { (WARMUP, CHURN) };
    let warmup = ctx.churn_warmup.unwrap_or(warmup);
    let churn = ctx.churn_duration.unwrap_or(churn);
    let mut all = Vec::new();
    for system in systems(ctx, NAME)? {
        let cluster = Cluster::start(ctx, system, NAME).await?;
        let pool = cluster.pool(CONNECTIONS).await?;
        let counter = AtomicU64::new(0);
        churn_for(&pool, warmup, &counter).await?;
        let pids = cluster.pids();
        let rss_now = || -> anyhow::Result<Vec<u64>> {
            pids.iter()
                .map(|(name, pid)| read_rss_kib(*pid).map_err(|e| anyhow!("member {name}: {e}")))
                .collect()
        };
        let start = rss_now()?;
        let granted_before = counter.load(Ordering::Relaxed);
        let began = Instant::now();
        let mut errors = 0;
        let mut samples = Vec::new();
        while began.elapsed() < churn {
            let step = SAMPLE_EVERY.min(churn.saturating_sub(began.elapsed()));
            errors += churn_for(&pool, step, &counter).await?;
            samples.push(rss_now()?);
        }
        let elapsed = began.elapsed();
        wait_drained(&pool).await?;
        let leader = leader_index(&cluster, &pool).await?;
        let end = rss_now()?;
        let mut members = Vec::new();
        for (i, (name, _)) in pids.iter().enumerate() {
            members.push(MemberRss {
                name: name.clone(),
                leads: Some(i) == leader,
                start_kib: start[i],
                end_kib: end[i],
                samples_kib: samples.iter().map(|s| s[i]).collect(),
            });
        }
        let leases = counter.load(Ordering::Relaxed) - granted_before;
        let churned = Churned { system, members, leases, elapsed, errors };
        emit(ctx, &churned, warmup, cluster.params())?;
        all.push(churned);
    }
    let text = table(&all, warmup);
    eprintln!("{text}");
    Ok(Summary { scenario: NAME.into(), text, plots: Vec::new() })
}

/// Churns from [`LOOPS`] loops for `length`; returns the failed operations (a lease that
/// expired under a slow attach is one, and harmless). Fails if no lease went through.
async fn churn_for(
    pool: &ClientPool,
    length: Duration,
    counter: &AtomicU64,
) -> anyhow::Result<u64> {
    if length.is_zero() {
        return Ok(0);
    }
    let spaces = lease_key_spaces(KEYS)?;
    let value = Arc::new(make_value(64, SEED_DEFAULT));
    let until = Instant::now() + length;
    let done_before = counter.load(Ordering::Relaxed);
    let loops = (0..LOOPS as usize).map(|worker| {
        let (client, spaces, value) = (pool.client(worker), &spaces, &value);
        async move {
            let mut errors = 0u64;
            while Instant::now() < until {
                let n = counter.fetch_add(1, Ordering::Relaxed);
                if one_lease(client, spaces, value, n).await.is_err() {
                    errors += 1;
                }
            }
            errors
        }
    });
    let errors: u64 = futures::future::join_all(loops).await.into_iter().sum();
    let leases = counter.load(Ordering::Relaxed) - done_before;
    if errors >= leases {
        bail!("the churn completed no lease ({errors} failed)");
    }
    Ok(errors)
}

/// One lease's life: grant, a key in each shard, one renewal, then a revoke (even `n`) or
/// nothing (odd `n`: it expires).
async fn one_lease(
    client: &Backend,
    spaces: &[KeySpace],
    value: &[u8],
    n: u64,
) -> Result<(), BackendError> {
    let id = lease_id(n);
    let expires = n % 2 == 1;
    let ttl = if expires { EXPIRING_TTL_S } else { REVOKED_TTL_S };
    client.lease_grant(LeaseGrantRequest { ttl, id }).await?;
    for space in spaces {
        let key = space.key(n % KEYS);
        client
            .put(PutRequest { key, value: value.to_vec(), lease: id, ..Default::default() })
            .await?;
    }
    client.renewer().renew(id).await?;
    if !expires {
        client.lease_revoke(LeaseRevokeRequest { id }).await?;
    }
    Ok(())
}

/// Waits until every lease is gone and their keys with them (the expiring ones take the
/// minimum TTL plus the revocation).
async fn wait_drained(pool: &ClientPool) -> anyhow::Result<()> {
    let spaces = lease_key_spaces(KEYS)?;
    let began = Instant::now();
    loop {
        let (leases, keys) =
            (leases_left(pool.client(0)).await?, keys_left(pool.client(0), &spaces).await?);
        if leases == 0 && keys == 0 {
            return Ok(());
        }
        if began.elapsed() > DRAIN_MAX {
            bail!("{leases} leases and {keys} keys left {DRAIN_MAX:?} after the churn stopped");
        }
        tokio::time::sleep(DRAIN_POLL).await;
    }
}

/// The index of the member that holds the lease state: Atoll's meta shard leader (lease
/// answers carry its member ID), etcd's Raft leader.
async fn leader_index(cluster: &Cluster, pool: &ClientPool) -> anyhow::Result<Option<usize>> {
    let mut ids = Vec::new();
    let leader = match cluster {
        Cluster::Atoll(atoll, _) => {
            let Backend::Native(client) = pool.client(0) else { bail!("expected a native client") };
            for endpoint in atoll.endpoints() {
                ids.push(client.status(&endpoint).await?.header.member_id);
            }
            pool.client(0).lease_leases().await.map_err(|e| anyhow!("{e}"))?.header.member_id
        }
        Cluster::Etcd(etcd, _) => {
            let mut leader = 0;
            for i in 0..etcd.pids().len() {
                let (member, led_by) =
                    EtcdClient::connect(&etcd.config(), i).await?.member_and_leader().await?;
                ids.push(member);
                leader = led_by;
            }
            leader
        }
    };
    Ok(ids.iter().position(|id| *id == leader))
}

fn emit(
    ctx: &ScenarioContext,
    churned: &Churned,
    warmup: Duration,
    target: Value,
) -> anyhow::Result<()> {
    let members: Vec<Value> = churned
        .members
        .iter()
        .map(|m| {
            json!({ "member": m.name, "leads_leases": m.leads, "rss_kib_start": m.start_kib,
                    "rss_kib_end": m.end_kib, "growth_kib": m.growth_kib(),
                    "rss_kib_samples": m.samples_kib })
        })
        .collect();
    let params = ctx.params(merged(
        json!({
            "loops": LOOPS,
            "warmup_s": warmup.as_secs_f64(),
            "churn_s": churned.elapsed.as_secs_f64(),
            "leases": churned.leases,
            "failed": churned.errors,
            "keys_per_shard": KEYS,
            "members_rss": members,
        }),
        target,
    ));
    let per_s = churned.leases as f64 / churned.elapsed.as_secs_f64().max(1e-9);
    let growth = churned.max_follower_growth_kib() as f64;
    let start = churned.members.iter().filter(|m| !m.leads).map(|m| m.start_kib).max().unwrap_or(1);
    let lines = [
        ("churn_leases_per_s", per_s, "leases/s"),
        ("follower_rss_growth_max_kib", growth, "KiB"),
        ("follower_rss_growth_max_percent", growth / start.max(1) as f64 * 100.0, "%"),
        (
            "follower_rss_growth_kib_per_1000_leases",
            growth / (churned.leases.max(1) as f64 / 1000.0),
            "KiB",
        ),
    ];
    for (metric, value, unit) in lines {
        ctx.emit(NAME, metric, value, unit, params.clone())?;
    }
    Ok(())
}

fn table(all: &[Churned], warmup: Duration) -> String {
    let mut out = format!(
        "3-member clusters; {LOOPS} loops each grant a lease, put a key under each of two \
         prefixes (two data shards in Atoll) with it, renew it once, then revoke it or let it \
         expire (every other one); RSS after {warmup:?} of warm-up churn and again after the \
         churn and the last expiries; in between every {SAMPLE_EVERY:?} of churn\n\n| system \
         | member | holds leases | leases churned | RSS MiB start | RSS MiB end | growth MiB | \
         RSS MiB during |\n| --- | --- | --- | ---: | ---: | ---: | ---: | --- |\n"
    );
    for c in all {
        for m in &c.members {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {:.1} | {:.1} | {:+.1} | {} |",
                c.system.name(),
                m.name,
                if m.leads { "yes" } else { "no" },
                c.leases,
                m.start_kib as f64 / 1024.0,
                m.end_kib as f64 / 1024.0,
                m.growth_kib() as f64 / 1024.0,
                m.samples_kib
                    .iter()
                    .map(|k| format!("{:.0}", *k as f64 / 1024.0))
                    .collect::<Vec<_>>()
                    .join(" / ")
            );
        }
    }
    out
}
