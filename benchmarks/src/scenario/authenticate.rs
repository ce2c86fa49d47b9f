//! `authenticate` (issue 6): password Authenticate throughput over etcd's gRPC API, against
//! an Atoll node's gateway and, when installed, an etcd 3.4 node, both with auth enabled and
//! bcrypt at etcd's default cost 10. Each target gets a root user (with the root role), a
//! user to authenticate as, and auth enabled through the Auth service; then `clients` loops
//! call Authenticate for the point's duration, three fresh rounds, the median reported.
//! etcd 3.4 checks the password under its auth store's lock and sends every token through
//! Raft; Atoll checks on a pool sized to the cores, off every lock (decision D21).

use super::context::ScenarioContext;
use super::emit::{Summary, median};
use super::etcd_node::{EtcdNode, etcd_version};
use super::node::Node;
use crate::etcd_client::EtcdConfig;
use anyhow::{Context as _, bail};
use atoll_proto::etcd::etcdserverpb as pb;
use pb::auth_client::AuthClient;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tonic::transport::{Channel, Endpoint};

/// The scenario's name.
pub const NAME: &str = "authenticate";
/// Concurrent Authenticate loops (one connection each).
const CLIENTS: usize = 16;
/// Loops under `--smoke`.
const SMOKE_CLIENTS: usize = 2;
const USER: &str = "bench";
const PASSWORD: &str = "bench-password";

/// Runs the scenario.
pub async fn run_scenario(ctx: &ScenarioContext) -> anyhow::Result<Summary> {
    let rounds = ctx.runs(3, 1);
    let clients = if ctx.smoke { SMOKE_CLIENTS } else { CLIENTS };
    let mut rows = Vec::new();
    let mut atoll = Vec::new();
    for _ in 0..rounds {
        let node = Node::start(&ctx.atoll_bin, NAME).await?;
        let config = EtcdConfig { endpoints: vec![node.endpoint()], ca_pem: None };
        atoll.push(measure_target(ctx, &config, clients).await?);
        drop(node);
    }
    rows.push(("atoll (gRPC gateway)", median(&atoll)));
    emit(ctx, &atoll, clients, json!({ "target": "atoll-grpc" }))?;
    if ctx.etcd_wanted(NAME, "measuring Atoll alone")? {
        let version = etcd_version(&ctx.etcd_bin).unwrap_or_else(|| "unknown".into());
        let mut etcd = Vec::new();
        for _ in 0..rounds {
            let node = EtcdNode::start(&ctx.etcd_bin, NAME).await?;
            etcd.push(measure_target(ctx, &node.config(), clients).await?);
            drop(node);
        }
        rows.push(("etcd", median(&etcd)));
        emit(ctx, &etcd, clients, json!({ "target": "etcd", "etcd_version": version }))?;
    }
    let mut text = format!(
        "Password Authenticate over gRPC, {clients} loops, bcrypt cost 10, median of {rounds}:\n\n| target | Authenticate/s |\n|---|---|\n"
    );
    for (target, value) in &rows {
        text.push_str(&format!("| {target} | {value:.1} |\n"));
    }
    Ok(Summary { scenario: NAME.into(), text, plots: vec![] })
}

fn emit(
    ctx: &ScenarioContext,
    samples: &[f64],
    clients: usize,
    target: Value,
) -> anyhow::Result<()> {
    let params = ctx.params(json!({
        "clients": clients,
        "rounds": samples,
        "bcrypt_cost": 10,
        "seconds": ctx.duration.as_secs_f64(),
    }));
    let params = super::emit::merged(params, target);
    ctx.emit(NAME, "authenticate_ops_per_s", median(samples), "ops/s", params)
}

/// Prepares auth on the target at `config`, then counts successful Authenticates of
/// `clients` loops over the point's duration: Authenticates per second.
async fn measure_target(
    ctx: &ScenarioContext,
    config: &EtcdConfig,
    clients: usize,
) -> anyhow::Result<f64> {
    let url = config.url(0).context("no endpoint")?;
    let admin = connect(&url).await?;
    enable_auth(admin).await?;
    let mut loops = tokio::task::JoinSet::new();
    let deadline = Instant::now() + ctx.warmup + ctx.duration;
    let measured_from = Instant::now() + ctx.warmup;
    for _ in 0..clients {
        let mut client = connect(&url).await?;
        loops.spawn(async move {
            let mut ok = 0u64;
            while Instant::now() < deadline {
                let req = pb::AuthenticateRequest { name: USER.into(), password: PASSWORD.into() };
                let answer = client.authenticate(req).await;
                let token = answer.map_err(|s| anyhow::anyhow!("authenticate failed: {s}"))?;
                if token.into_inner().token.is_empty() {
                    bail!("authenticate answered an empty token");
                }
                if Instant::now() >= measured_from {
                    ok += 1;
                }
            }
            Ok::<u64, anyhow::Error>(ok)
        });
    }
    let mut total = 0u64;
    while let Some(done) = loops.join_next().await {
        total += done.context("an Authenticate loop panicked")??;
    }
    Ok(total as f64 / ctx.duration.as_secs_f64().max(f64::EPSILON))
}

/// A client of `url`, retried while the node starts serving.
async fn connect(url: &str) -> anyhow::Result<AuthClient<Channel>> {
    let endpoint = Endpoint::from_shared(url.to_string())?.connect_timeout(Duration::from_secs(5));
    let channel = endpoint.connect().await.with_context(|| format!("connecting to {url}"))?;
    Ok(AuthClient::new(channel))
}

/// Root with the root role, the benchmark's user, auth enabled: what `etcdctl user add`,
/// `user grant-role` and `auth enable` do. Retried while the node elects its leaders.
async fn enable_auth(mut admin: AuthClient<Channel>) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match admin.role_list(pb::AuthRoleListRequest {}).await {
            Ok(_) => break,
            Err(e) if Instant::now() < deadline => {
                eprintln!("atoll-bench: {NAME}: auth not ready yet: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => bail!("auth never became ready: {e}"),
        }
    }
    let add = |name: &str, password: &str| pb::AuthUserAddRequest {
        name: name.into(),
        password: password.into(),
        ..Default::default()
    };
    admin.user_add(add("root", "root-password")).await?;
    admin.role_add(pb::AuthRoleAddRequest { name: "root".into() }).await?;
    let grant = pb::AuthUserGrantRoleRequest { user: "root".into(), role: "root".into() };
    admin.user_grant_role(grant).await?;
    admin.user_add(add(USER, PASSWORD)).await?;
    admin.auth_enable(pb::AuthEnableRequest {}).await?;
    Ok(())
}
