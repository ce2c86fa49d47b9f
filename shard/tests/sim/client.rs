//! Simulated clients: each has at most one operation outstanding, on one of a few keys spread
//! over the shards, sent to the node it believes leads the shard (writes) or to any node
//! (linearizable reads, served through ReadIndex). Requests and answers are etcd's types.

use crate::history::{OpKind, Outcome};
use atoll_proto::{
    AtollError, Compare, CompareResult, CompareTarget, DeleteRangeRequest, PutRequest,
    RangeRequest, RequestOp, ResponseOp, ShardId, TxnRequest, WriteOp,
};
use atoll_shard::mvcc::WriteResponse;
use std::collections::BTreeMap;

#[derive(Default)]
pub struct Client {
    pub busy: bool,
    pub next_at: u64,
    /// The leader last heard of per shard (node id).
    pub leader_guess: BTreeMap<ShardId, u64>,
    /// The value last seen per key, to make compare-and-set likely to succeed.
    pub last_value: BTreeMap<usize, u64>,
}

/// A request in flight.
pub struct Request {
    pub client: usize,
    pub op: usize,
    pub node: u64,
    pub key: usize,
    pub shard: ShardId,
    pub kind: OpKind,
    pub deadline: u64,
}

pub fn value_bytes(v: u64) -> Vec<u8> {
    v.to_be_bytes().to_vec()
}

pub fn value_of(bytes: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(bytes.try_into().ok()?))
}

/// The write a client sends for `kind` on `key` (`Get` is a read, never proposed).
pub fn write_op(kind: OpKind, key: &[u8]) -> WriteOp {
    let put =
        |v: u64| PutRequest { key: key.to_vec(), value: value_bytes(v), ..Default::default() };
    match kind {
        OpKind::Put(v) => WriteOp::Put(put(v)),
        OpKind::Delete | OpKind::Get => {
            WriteOp::DeleteRange(DeleteRangeRequest { key: key.to_vec(), ..Default::default() })
        }
        OpKind::Cas { expect, new } => WriteOp::Txn(TxnRequest {
            compare: vec![Compare {
                result: CompareResult::Equal,
                target: CompareTarget::Value(value_bytes(expect)),
                key: key.to_vec(),
                range_end: Vec::new(),
            }],
            success: vec![RequestOp::Put(put(new))],
            failure: vec![RequestOp::Range(RangeRequest {
                key: key.to_vec(),
                ..Default::default()
            })],
        }),
    }
}

/// What an answered write tells the client: its outcome and the header's revision.
pub fn write_outcome(
    kind: OpKind,
    answer: Result<WriteResponse, AtollError>,
) -> Result<(Outcome, Option<i64>), String> {
    let resp = match answer {
        Ok(resp) => resp,
        Err(
            AtollError::NotLeader { .. }
            | AtollError::NoLeader { .. }
            | AtollError::LeaderChanged
            | AtollError::Busy { .. },
        ) => return Ok((Outcome::Failed, None)),
        Err(e) => return Err(format!("unexpected answer to {kind:?}: {e}")),
    };
    match (kind, resp) {
        (OpKind::Put(_), WriteResponse::Put(r)) => Ok((Outcome::Put, Some(r.header.revision))),
        (OpKind::Delete, WriteResponse::DeleteRange(r)) => {
            Ok((Outcome::Delete { deleted: r.deleted > 0 }, Some(r.header.revision)))
        }
        (OpKind::Cas { .. }, WriteResponse::Txn(r)) => {
            let read = match r.responses.first() {
                Some(ResponseOp::Range(rr)) if !r.succeeded => {
                    rr.kvs.first().and_then(|kv| value_of(&kv.value))
                }
                _ => None,
            };
            Ok((Outcome::Cas { ok: r.succeeded, read }, Some(r.header.revision)))
        }
        (kind, resp) => Err(format!("answer {resp:?} does not fit {kind:?}")),
    }
}
