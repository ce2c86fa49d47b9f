//! Checks made before a write is proposed; etcd makes them at its API layer
//! (`checkPutRequest`, `checkTxnRequest`, `checkIntervals` in
//! `server/etcdserver/api/v3rpc/key.go`, v3.5) and the request size check of
//! `processInternalRaftRequestOnce`.
//!
//! Apply re-runs the part that does not depend on configuration ([`check_shape`] without op
//! counts): a committed entry must give the same answer on every replica whatever each
//! node's `--max-txn-ops` says, and the store relies on each key being written at most once
//! per revision.

use crate::mvcc::interval_set::IntervalSet;
use crate::mvcc::mvcc_limits::MvccLimits;
use atoll_proto::limits::TXN_NESTING_DEPTH_MAX;
use atoll_proto::{AtollError, PutRequest, RangeRequest, RequestOp, TxnRequest, WriteOp};
use std::collections::BTreeSet;

/// Checks a Range before it is served: the key must not be empty (etcd `checkRangeRequest`).
pub fn validate_range(req: &RangeRequest) -> Result<(), AtollError> {
    if req.key.is_empty() {
        return Err(AtollError::EmptyKey);
    }
    Ok(())
}

/// Checks a write before it is proposed, in etcd's order: empty keys, `ignore_value` with a
/// value, `ignore_lease` with a lease, Txn op counts (each of compare, success and failure
/// alone; a nested Txn gets what its parent leaves, as etcd's `checkTxnRequest`), nesting
/// deeper than [`TXN_NESTING_DEPTH_MAX`], overlapping writes within a branch, and last the
/// encoded size against `max_request_bytes`.
pub fn validate_write(op: &WriteOp, limits: &MvccLimits) -> Result<(), AtollError> {
    check_shape(op, Some(limits.max_txn_ops))?;
    check_size(op, limits.max_request_bytes)
}

/// The structural checks; op counts only when `max_txn_ops` is given.
pub(crate) fn check_shape(op: &WriteOp, max_txn_ops: Option<usize>) -> Result<(), AtollError> {
    match op {
        WriteOp::Put(put) => check_put(put),
        WriteOp::DeleteRange(del) => non_empty(&del.key),
        WriteOp::Compact(_) => Ok(()),
        WriteOp::Close(c) if c.revision <= 0 => Err(AtollError::Malformed {
            reason: format!("close at revision {}; it must be positive", c.revision),
        }),
        WriteOp::Close(_)
        | WriteOp::Lease(_)
        | WriteOp::RevokeLeaseKeys(_)
        | WriteOp::RevokeLeaseKeysBatch(_)
        | WriteOp::Auth(_) => Ok(()),
        WriteOp::Member(atoll_proto::member::MemberWrite::UpdatePeerUrls { peer_urls, .. }) => {
            atoll_proto::member::check_peer_urls(peer_urls)
        }
        WriteOp::Member(atoll_proto::member::MemberWrite::Publish { .. }) => Ok(()),
        WriteOp::ShardMap(_) => Ok(()),
        WriteOp::Leased(leased) => match leased.op.as_ref() {
            inner @ (WriteOp::Put(_) | WriteOp::Txn(_)) => check_shape(inner, max_txn_ops),
            _ => {
                Err(AtollError::Malformed { reason: "only a put or a txn attaches leases".into() })
            }
        },
        WriteOp::Txn(txn) => {
            let counts = max_txn_ops.map(|max| OpBudget { configured: max, remaining: max });
            check_txn(txn, counts, 0)?;
            check_intervals(&txn.success, 0)?;
            check_intervals(&txn.failure, 0)?;
            Ok(())
        }
    }
}

/// The configured op limit and what is left of it for a nested Txn.
#[derive(Clone, Copy)]
struct OpBudget {
    configured: usize,
    remaining: usize,
}

fn non_empty(key: &[u8]) -> Result<(), AtollError> {
    if key.is_empty() { Err(AtollError::EmptyKey) } else { Ok(()) }
}

fn check_put(put: &PutRequest) -> Result<(), AtollError> {
    non_empty(&put.key)?;
    if put.ignore_value && !put.value.is_empty() {
        return Err(AtollError::ValueProvided);
    }
    if put.ignore_lease && put.lease != 0 {
        return Err(AtollError::LeaseProvided);
    }
    Ok(())
}

fn too_deep() -> AtollError {
    AtollError::Malformed {
        reason: format!(
            "txn nested deeper than {TXN_NESTING_DEPTH_MAX} levels; flatten the transaction"
        ),
    }
}

fn check_txn(txn: &TxnRequest, budget: Option<OpBudget>, depth: usize) -> Result<(), AtollError> {
    if depth > TXN_NESTING_DEPTH_MAX {
        return Err(too_deep());
    }
    let ops = txn.compare.len().max(txn.success.len()).max(txn.failure.len());
    if let Some(b) = budget
        && ops > b.remaining
    {
        return Err(AtollError::TooManyTxnOps { limit: b.configured as u64 });
    }
    for cmp in &txn.compare {
        non_empty(&cmp.key)?;
    }
    let nested = budget.map(|b| OpBudget { remaining: b.remaining - ops, ..b });
    for op in txn.success.iter().chain(&txn.failure) {
        match op {
            RequestOp::Range(r) => non_empty(&r.key)?,
            RequestOp::Put(p) => check_put(p)?,
            RequestOp::DeleteRange(d) => non_empty(&d.key)?,
            RequestOp::Txn(t) => check_txn(t, nested, depth + 1)?,
        }
    }
    Ok(())
}

/// etcd's `checkIntervals`: within what one execution can run, no key is put twice and no
/// put falls in a deleted range; the two branches of a nested Txn exclude each other, and
/// deletes may overlap deletes. Two etcd gaps are closed on purpose, because the change log
/// holds each key at most once per revision: a delete with `range_end = "\0"` covers every
/// key from its start (etcd's interval for it is empty), and a delete in a nested Txn
/// conflicts with puts of earlier sibling Txns too (etcd checks only later ones).
fn check_intervals(
    ops: &[RequestOp],
    depth: usize,
) -> Result<(BTreeSet<Vec<u8>>, IntervalSet), AtollError> {
    if depth > TXN_NESTING_DEPTH_MAX {
        return Err(too_deep());
    }
    let mut dels = IntervalSet::default();
    for op in ops {
        if let RequestOp::DeleteRange(d) = op {
            dels.insert_request_range(&d.key, &d.range_end);
        }
    }
    let mut puts = BTreeSet::new();
    for op in ops {
        let RequestOp::Txn(t) = op else { continue };
        let (then_puts, then_dels) = check_intervals(&t.success, depth + 1)?;
        let (else_puts, else_dels) = check_intervals(&t.failure, depth + 1)?;
        let child_puts: BTreeSet<Vec<u8>> = then_puts.into_iter().chain(else_puts).collect();
        if child_puts.iter().any(|k| puts.contains(k) || dels.contains(k))
            || then_dels.intersects_any(&puts)
            || else_dels.intersects_any(&puts)
        {
            return Err(AtollError::DuplicateKey);
        }
        puts.extend(child_puts);
        dels.union(&then_dels);
        dels.union(&else_dels);
    }
    for op in ops {
        let RequestOp::Put(p) = op else { continue };
        if dels.contains(&p.key) || !puts.insert(p.key.clone()) {
            return Err(AtollError::DuplicateKey);
        }
    }
    Ok((puts, dels))
}

/// etcd refuses a proposal whose encoding exceeds `--max-request-bytes`; the bincode size of
/// the op is within a few bytes of etcd's protobuf size for the same request.
fn check_size(op: &WriteOp, max_request_bytes: usize) -> Result<(), AtollError> {
    let mut size = bincode::enc::write::SizeWriter::default();
    let config = bincode::config::standard().with_big_endian();
    bincode::serde::encode_into_writer(op, &mut size, config)
        .map_err(|e| AtollError::Malformed { reason: format!("request does not encode: {e}") })?;
    if size.bytes_written > max_request_bytes {
        return Err(AtollError::RequestTooLarge {
            request_bytes: size.bytes_written as u64,
            limit_bytes: max_request_bytes as u64,
        });
    }
    Ok(())
}
