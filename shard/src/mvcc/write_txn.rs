//! Execution of one write (Put, DeleteRange or Txn) against a snapshot, collecting its
//! changes in an [`Overlay`] that the caller commits in one batch with the apply state.
//!
//! Follows etcd v3.5's `applierV3backend` (`server/etcdserver/apply.go`) and
//! `storeTxnWrite` (`server/mvcc/kvstore_txn.go`):
//! - every write of one command shares one revision; a command that changes nothing leaves
//!   the revision alone;
//! - a Txn first evaluates the compares of every Txn it will run, nested ones included,
//!   against the state before it (`compareToPath`), then checks its puts and ranges
//!   (`checkRequests`: `ignore_value`/`ignore_lease` on a missing key, a range at a future
//!   or compacted revision) and fails as a whole before writing anything;
//! - reads inside a Txn see its earlier writes;
//! - response headers carry the revision as of that operation: the new revision once the
//!   command has changed something, else the revision before it.

use crate::error::ShardError;
use crate::lease::{LeaseWrites, encode_grant, index_key};
use crate::mvcc::codec::encode_key;
use crate::mvcc::compare::compares_hold;
use crate::mvcc::range::{CountSource, evaluate_range};
use crate::mvcc::shard_range::ShardRange;
use crate::mvcc::view::{History, Overlay, View};
use atoll_proto::limits::TXN_NESTING_DEPTH_MAX;
use atoll_proto::{
    AtollError, DeleteRangeRequest, DeleteRangeResponse, KeyValue, LeaseRef, PutRequest,
    PutResponse, RangeRequest, RangeResponse, RequestOp, ResponseHeader, ResponseOp, ShardId,
    TxnRequest, TxnResponse,
};
use fjall::{Keyspace, Snapshot};

/// The branch a Txn takes and, in order, the paths of the Txns nested in that branch.
struct TxnPath {
    succeeded: bool,
    nested: Vec<TxnPath>,
}

/// One command being applied.
pub(crate) struct WriteTxn<'a> {
    /// State before the command.
    pub snap: &'a Snapshot,
    /// The `mvcc` keyspace.
    pub mvcc: &'a Keyspace,
    /// The shard applying.
    pub shard: ShardId,
    /// Its key range.
    pub range: &'a ShardRange,
    /// Store revision before the command.
    pub base_revision: i64,
    /// Reads below this revision are refused.
    pub compact_revision: i64,
    /// Revision of the command's writes.
    pub new_revision: i64,
    /// Versions written by earlier entries of the apply batch.
    pub history: &'a History,
    /// Writes so far.
    pub overlay: Overlay,
    /// The leases the command may attach, with the grants checked by the meta shard's
    /// leader (decision D16); a put attaching any other lease is refused.
    pub leases: &'a [LeaseRef],
    /// Changes to the lease → keys index so far, committed with the overlay.
    pub lease_writes: LeaseWrites,
}

/// Resolves the revision a read asks for (etcd `rangeKeys`): above the current revision is
/// `FutureRevision`, `<= 0` is the current revision, below the compacted one is `Compacted`.
pub(crate) fn read_revision(asked: i64, current: i64, compacted: i64) -> Result<i64, AtollError> {
    if asked > current {
        return Err(AtollError::FutureRevision { current_revision: current });
    }
    let revision = if asked <= 0 { current } else { asked };
    if revision < compacted {
        return Err(AtollError::Compacted { compact_revision: compacted });
    }
    Ok(revision)
}

fn header(revision: i64) -> ResponseHeader {
    ResponseHeader { revision, ..Default::default() }
}

impl<'a> WriteTxn<'a> {
    fn view(&self) -> View<'_> {
        View {
            snap: self.snap,
            mvcc: self.mvcc,
            shard: self.range,
            history: Some(self.history),
            pending: Some(&self.overlay),
        }
    }

    /// The store revision as seen by the next operation.
    fn current_revision(&self) -> i64 {
        if self.overlay.is_empty() { self.base_revision } else { self.new_revision }
    }

    /// A Put (etcd `applierV3backend.Put`).
    pub(crate) fn put(&mut self, req: &PutRequest) -> Result<PutResponse, ShardError> {
        if !self.range.contains(&req.key) {
            // The shard's range changed between proposal and apply (a split): the client
            // refreshes its shard map and retries. The replica knows the epoch; 0 here.
            return Err(AtollError::WrongShard { shard: self.shard, epoch: 0 }.into());
        }
        let prev = self.view().get(&req.key, self.base_revision, true)?;
        let prev = match prev {
            None if req.ignore_value || req.ignore_lease => {
                return Err(AtollError::KeyNotFound.into());
            }
            prev => prev,
        };
        let (create_revision, version) = match &prev {
            // A put after a delete finds no live version: it is a create (version 1).
            None => (self.new_revision, 1),
            Some(p) => (p.create_revision, p.version.saturating_add(1)),
        };
        let value = match &prev {
            Some(p) if req.ignore_value => p.value.clone(),
            _ => req.value.clone(),
        };
        let encoded = encode_key(&req.key);
        let lease = match &prev {
            Some(p) if req.ignore_lease => p.lease,
            _ => {
                self.attach(&encoded, prev.as_ref().map_or(0, |p| p.lease), req.lease)?;
                req.lease
            }
        };
        let kv = KeyValue {
            key: req.key.clone(),
            create_revision,
            mod_revision: self.new_revision,
            version,
            value,
            lease,
        };
        self.overlay.insert(encoded, Some(kv));
        Ok(PutResponse { header: header(self.new_revision), prev_kv: prev.filter(|_| req.prev_kv) })
    }

    /// A DeleteRange (etcd `applierV3backend.DeleteRange`): a tombstone per live key.
    pub(crate) fn delete_range(
        &mut self,
        req: &DeleteRangeRequest,
    ) -> Result<DeleteRangeResponse, ShardError> {
        let view = self.view();
        // Values are decoded only when they are returned.
        let scan = view.scan(&req.key, &req.range_end, self.base_revision, true);
        let found = scan.collect_all(req.prev_kv)?;
        for kv in &found {
            let encoded = encode_key(&kv.key);
            if kv.lease != 0 {
                self.lease_writes.insert(index_key(kv.lease, &encoded), None);
            }
            self.overlay.insert(encoded, None);
        }
        Ok(DeleteRangeResponse {
            header: header(self.current_revision()),
            deleted: found.len() as i64,
            prev_kvs: if req.prev_kv { found } else { Vec::new() },
        })
    }

    /// Moves a key's entry in the lease → keys index from `old` to `new` (0: none). A lease
    /// is attached only if the meta shard's leader vouched for it (etcd's `lessor.Lookup`
    /// before proposing; here carried in the command so every replica decides the same).
    fn attach(&mut self, encoded: &[u8], old: i64, new: i64) -> Result<(), ShardError> {
        let grant = match new {
            0 => None,
            id => match self.leases.iter().find(|l| l.id == id) {
                Some(l) => Some(l.grant_index),
                None => return Err(AtollError::LeaseNotFound.into()),
            },
        };
        if old != 0 {
            self.lease_writes.insert(index_key(old, encoded), None);
        }
        if let Some(grant) = grant {
            self.lease_writes.insert(index_key(new, encoded), Some(encode_grant(grant)));
        }
        Ok(())
    }

    /// A Range inside a Txn; its revision was checked by [`WriteTxn::txn`] beforehand.
    pub(crate) fn range(&self, req: &RangeRequest) -> Result<RangeResponse, ShardError> {
        let revision = read_revision(req.revision, self.base_revision, self.compact_revision)?;
        // Only a read at the newest revision sees the Txn's writes (etcd reads
        // `beginRev + 1` then; an explicit revision reads history).
        let with_pending = req.revision <= 0;
        let mut resp =
            evaluate_range(&self.view(), req, revision, with_pending, CountSource::Scan)?;
        resp.header = header(self.current_revision());
        Ok(resp)
    }

    /// A Txn, top level: compares, then checks, then execution.
    pub(crate) fn txn(&mut self, req: &TxnRequest) -> Result<TxnResponse, ShardError> {
        let path = self.plan(req, 0)?;
        self.check_puts(req, &path)?;
        self.check_ranges(req, &path)?;
        self.execute(req, &path)
    }

    fn plan(&self, req: &TxnRequest, depth: usize) -> Result<TxnPath, ShardError> {
        if depth > TXN_NESTING_DEPTH_MAX {
            let reason = format!("txn nested deeper than {TXN_NESTING_DEPTH_MAX} levels");
            return Err(AtollError::Malformed { reason }.into());
        }
        let succeeded = compares_hold(&self.view(), &req.compare, self.base_revision)?;
        let ops = if succeeded { &req.success } else { &req.failure };
        let mut nested = Vec::new();
        for op in ops {
            if let RequestOp::Txn(t) = op {
                nested.push(self.plan(t, depth + 1)?);
            }
        }
        Ok(TxnPath { succeeded, nested })
    }

    /// Whether `key` is live before the Txn.
    fn exists(&self, key: &[u8]) -> Result<bool, ShardError> {
        Ok(self.view().get(key, self.base_revision, false)?.is_some())
    }

    /// etcd `checkRequestPut`: `ignore_value`/`ignore_lease` need the key before the Txn.
    fn check_puts(&self, req: &TxnRequest, path: &TxnPath) -> Result<(), ShardError> {
        let mut nested = path.nested.iter();
        for op in if path.succeeded { &req.success } else { &req.failure } {
            match op {
                RequestOp::Put(p)
                    if (p.ignore_value || p.ignore_lease) && !self.exists(&p.key)? =>
                {
                    return Err(AtollError::KeyNotFound.into());
                }
                RequestOp::Txn(t) => self.check_puts(t, next_path(&mut nested)?)?,
                _ => {}
            }
        }
        Ok(())
    }

    /// etcd `checkRequestRange`: a range at a future or compacted revision fails the Txn.
    /// A negative revision means the newest, as the proto documents (etcd's check would call
    /// it compacted inside a Txn only).
    fn check_ranges(&self, req: &TxnRequest, path: &TxnPath) -> Result<(), ShardError> {
        let mut nested = path.nested.iter();
        for op in if path.succeeded { &req.success } else { &req.failure } {
            match op {
                RequestOp::Range(r) => {
                    read_revision(r.revision, self.base_revision, self.compact_revision)?;
                }
                RequestOp::Txn(t) => self.check_ranges(t, next_path(&mut nested)?)?,
                _ => {}
            }
        }
        Ok(())
    }

    fn execute(&mut self, req: &TxnRequest, path: &TxnPath) -> Result<TxnResponse, ShardError> {
        let ops = if path.succeeded { &req.success } else { &req.failure };
        let mut nested = path.nested.iter();
        let mut responses = Vec::with_capacity(ops.len());
        for op in ops {
            responses.push(match op {
                RequestOp::Range(r) => ResponseOp::Range(self.range(r)?),
                RequestOp::Put(p) => ResponseOp::Put(self.put(p)?),
                RequestOp::DeleteRange(d) => ResponseOp::DeleteRange(self.delete_range(d)?),
                RequestOp::Txn(t) => ResponseOp::Txn(self.execute(t, next_path(&mut nested)?)?),
            });
        }
        // etcd leaves a nested TxnResponse header at zero; it is filled here like the others
        // (the revision as of the end of that Txn) because a zero revision helps nobody.
        Ok(TxnResponse {
            header: header(self.current_revision()),
            succeeded: path.succeeded,
            responses,
        })
    }
}

fn next_path<'p>(nested: &mut std::slice::Iter<'p, TxnPath>) -> Result<&'p TxnPath, ShardError> {
    nested.next().ok_or_else(|| {
        AtollError::Malformed { reason: "txn changed while it was applied".into() }.into()
    })
}
