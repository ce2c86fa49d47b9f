//! `etcd-put-get`: the put and get points of `put-get-clients`, measured by the same code
//! through the etcd gRPC target against a real etcd (Debian's `etcd-server`, 3.4) started on
//! loopback with its default durability (an fsync of its WAL per commit, as Atoll fsyncs per
//! group commit), so the two scenarios' lines compare directly. Same key space, value size,
//! client counts, phases and one connection. etcd serves plain HTTP/2 gRPC; Atoll's figures
//! are over QUIC with TLS. Without etcd installed, `--smoke` skips it with a message; a
//! full run fails and says how to install it.

use super::context::ScenarioContext;
use super::etcd_node::{EtcdNode, etcd_version};
use super::fixture::{SCENARIO_PREFIX, load_and_emit};
use super::put_get_clients::{KEY_SPACE, measure_points};
use crate::connect::ClientPool;
use crate::keys::{KeySpace, make_value};
use crate::limits::SEED_DEFAULT;
use anyhow::bail;
use serde_json::json;
use std::sync::Arc;

/// The scenario's name.
pub const NAME: &str = "etcd-put-get";

/// Runs the scenario.
pub async fn run_scenario(ctx: &ScenarioContext) -> anyhow::Result<()> {
    if !ctx.etcd_bin.is_file() {
        let how = "install it with `apt-get install -y etcd-server` or pass --etcd-bin";
        if ctx.smoke {
            eprintln!(
                "atoll-bench: scenario {NAME} skipped: no etcd at {} ({how})",
                ctx.etcd_bin.display()
            );
            return Ok(());
        }
        bail!("no etcd at {}; {how}", ctx.etcd_bin.display());
    }
    let version = etcd_version(&ctx.etcd_bin).unwrap_or_else(|| "unknown".into());
    let node = EtcdNode::start(&ctx.etcd_bin, NAME).await?;
    let pool = ClientPool::connect_etcd(&node.config(), 1).await?;
    let keys = KeySpace::new(SCENARIO_PREFIX, KEY_SPACE.min(ctx.store_keys), None)?;
    let value = Arc::new(make_value(ctx.value_size, SEED_DEFAULT));
    let target = json!({ "target": "etcd", "etcd_version": version });
    load_and_emit(ctx, NAME, &pool, &keys, &value, target.clone()).await?;
    measure_points(ctx, NAME, &pool, &keys, &value, &target).await?;
    // The clients close before the node is killed and its directory removed.
    drop(pool);
    drop(node);
    Ok(())
}
