//! The common start of the scenarios: a fresh node with N keys loaded under `/bench/k/`,
//! a client of it, and a measurement of how fast the load went.

use super::context::ScenarioContext;
use super::emit::merged;
use super::node::Node;
use crate::connect::ClientPool;
use crate::keys::{KeySpace, make_value};
use crate::limits::{LOAD_BATCH_MAX, LOAD_CLIENTS_DEFAULT, SEED_DEFAULT};
use crate::load::{LoadSpec, load};
use crate::progress::progress_wanted;
use serde_json::json;
use std::sync::Arc;

/// Prefix of the keys scenarios load.
pub const SCENARIO_PREFIX: &str = "/bench/k/";

/// A running node holding a loaded key space. Fields drop in order: the clients close before
/// the node is killed and its directory removed.
pub struct Loaded {
    /// One client of the node.
    pub pool: ClientPool,
    /// The loaded keys.
    pub keys: KeySpace,
    /// The value every key holds.
    pub value: Arc<Vec<u8>>,
    /// The node.
    pub node: Node,
}

/// Starts a node for `scenario` and loads `keys` keys into it; emits `load_keys_per_s`.
pub async fn start_loaded(
    ctx: &ScenarioContext,
    scenario: &str,
    keys: u64,
) -> anyhow::Result<Loaded> {
    let node = Node::start(&ctx.atoll_bin, scenario).await?;
    let pool = ClientPool::connect(&node.client_config()?, 1).await?;
    let space = KeySpace::new(SCENARIO_PREFIX, keys, None)?;
    let value = Arc::new(make_value(ctx.value_size, SEED_DEFAULT));
    load_and_emit(ctx, scenario, &pool, &space, &value, json!({})).await?;
    Ok(Loaded { pool, keys: space, value, node })
}

/// Loads `keys` with `value` through `pool` and emits `load_keys_per_s` for `scenario`,
/// with `extra` among the parameters.
pub async fn load_and_emit(
    ctx: &ScenarioContext,
    scenario: &str,
    pool: &ClientPool,
    keys: &KeySpace,
    value: &Arc<Vec<u8>>,
    extra: serde_json::Value,
) -> anyhow::Result<()> {
    let spec = LoadSpec {
        keys: keys.clone(),
        value: Arc::clone(value),
        batch: LOAD_BATCH_MAX,
        clients: LOAD_CLIENTS_DEFAULT,
        progress: progress_wanted(),
    };
    let report = load(pool, spec).await?;
    let params = json!({
        "keys": report.keys,
        "batch": report.batch,
        "clients": report.clients,
        "value_size": ctx.value_size,
        "duration_s": report.duration_s,
        "retries": report.retries,
    });
    let params = ctx.params(merged(params, extra));
    ctx.emit(scenario, "load_keys_per_s", report.keys_per_s, "keys/s", params)
}
