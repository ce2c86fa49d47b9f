//! Txn compares with etcd semantics (`applyCompare` / `compareKV`,
//! `server/etcdserver/apply.go`, v3.5).
//!
//! - A compare with a `range_end` holds when every live key of the range satisfies it.
//! - When no key is found, a VALUE compare is false ("nil == empty string in grpc; no way to
//!   represent missing value"); every other target compares a zero key-value pair, so a
//!   missing key has version 0, create 0, mod 0 and lease 0.

use crate::error::StorageError;
use crate::mvcc::view::View;
use atoll_proto::{Compare, CompareResult, CompareTarget, KeyValue};
use std::cmp::Ordering;

/// Whether every compare holds at `revision` (no overlay: etcd evaluates all compares of a
/// Txn, nested ones included, before the Txn writes anything).
pub(crate) fn compares_hold(
    view: &View<'_>,
    compares: &[Compare],
    revision: i64,
) -> Result<bool, StorageError> {
    for cmp in compares {
        if !compare_holds(view, cmp, revision)? {
            return Ok(false);
        }
    }
    Ok(true)
}

fn compare_holds(view: &View<'_>, cmp: &Compare, revision: i64) -> Result<bool, StorageError> {
    let with_value = matches!(cmp.target, CompareTarget::Value(_));
    let mut scan = view.scan(&cmp.key, &cmp.range_end, revision, false);
    let mut found = false;
    while let Some(visible) = scan.next_visible()? {
        found = true;
        if !compare_kv(cmp, &visible.to_key_value(with_value)?) {
            return Ok(false);
        }
    }
    if found {
        return Ok(true);
    }
    if with_value {
        return Ok(false);
    }
    Ok(compare_kv(cmp, &KeyValue::default()))
}

fn compare_kv(cmp: &Compare, kv: &KeyValue) -> bool {
    let order = match &cmp.target {
        CompareTarget::Version(v) => kv.version.cmp(v),
        CompareTarget::Create(v) => kv.create_revision.cmp(v),
        CompareTarget::Mod(v) => kv.mod_revision.cmp(v),
        CompareTarget::Lease(v) => kv.lease.cmp(v),
        CompareTarget::Value(v) => kv.value.as_slice().cmp(v.as_slice()),
    };
    match cmp.result {
        CompareResult::Equal => order == Ordering::Equal,
        CompareResult::NotEqual => order != Ordering::Equal,
        CompareResult::Greater => order == Ordering::Greater,
        CompareResult::Less => order == Ordering::Less,
    }
}
