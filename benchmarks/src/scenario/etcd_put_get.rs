//! `etcd-put-get` and `grpc-put-get`: the put and get points of `put-get-clients`, measured
//! by the same code through the etcd gRPC target, once against a real etcd (Debian's
//! `etcd-server`, 3.4) started on loopback with its default durability (an fsync of its WAL
//! per commit, as Atoll fsyncs per group commit) and once against Atoll's etcd gRPC gateway.
//! The two lines compare the servers through one client: same key space, value size, client
//! counts, phases and one plaintext HTTP/2 connection. Without etcd installed, `--smoke`
//! skips `etcd-put-get` with a message; a full run fails and says how to install it.

use super::context::ScenarioContext;
use super::etcd_node::{EtcdNode, etcd_version};
use super::fixture::{SCENARIO_PREFIX, load_and_emit};
use super::node::Node;
use super::put_get_clients::{KEY_SPACE, measure_points};
use crate::connect::ClientPool;
use crate::etcd_client::EtcdConfig;
use crate::keys::{KeySpace, make_value};
use crate::limits::SEED_DEFAULT;
use serde_json::json;
use std::sync::Arc;

/// The scenario against etcd.
pub const NAME: &str = "etcd-put-get";
/// The scenario against Atoll's gateway.
pub const GATEWAY_NAME: &str = "grpc-put-get";

/// Runs the scenario.
pub async fn run_scenario(ctx: &ScenarioContext) -> anyhow::Result<()> {
    if !ctx.etcd_wanted(NAME, "skipped")? {
        return Ok(());
    }
    let version = etcd_version(&ctx.etcd_bin).unwrap_or_else(|| "unknown".into());
    let node = EtcdNode::start(&ctx.etcd_bin, NAME).await?;
    let pool = ClientPool::connect_etcd(&node.config(), 1).await?;
    let target = json!({ "target": "etcd", "etcd_version": version });
    measure(ctx, NAME, &pool, target).await?;
    // The clients close before the node is killed and its directory removed.
    drop(pool);
    drop(node);
    Ok(())
}

/// Runs `grpc-put-get`: an Atoll node measured through its etcd gRPC gateway.
pub async fn run_gateway_scenario(ctx: &ScenarioContext) -> anyhow::Result<()> {
    let node = Node::start(&ctx.atoll_bin, GATEWAY_NAME).await?;
    let config = EtcdConfig { endpoints: vec![node.endpoint()], ca_pem: None };
    let pool = ClientPool::connect_etcd(&config, 1).await?;
    measure(ctx, GATEWAY_NAME, &pool, json!({ "target": "atoll-grpc" })).await?;
    drop(pool);
    drop(node);
    Ok(())
}

/// Loads the key space, then measures the put and get points.
async fn measure(
    ctx: &ScenarioContext,
    name: &str,
    pool: &ClientPool,
    target: serde_json::Value,
) -> anyhow::Result<()> {
    let keys = KeySpace::new(SCENARIO_PREFIX, KEY_SPACE.min(ctx.store_keys), None)?;
    let value = Arc::new(make_value(ctx.value_size, SEED_DEFAULT));
    load_and_emit(ctx, name, pool, &keys, &value, target.clone()).await?;
    measure_points(ctx, name, pool, &keys, &value, &target).await
}
