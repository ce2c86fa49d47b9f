//! What one operation of each workload sends. Requests are built by pure functions (tested
//! here); [`OpGen`] picks the key and runs one operation against a client.

use crate::backend::{Backend, BackendError, Renewer};
use crate::keys::KeySpace;
use crate::limits::REVISION_CACHE_ENTRIES_MAX;
use atoll_proto::kv::*;
use atoll_proto::lease::{LeaseGrantRequest, LeaseRevokeRequest};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::collections::HashMap;
use std::sync::Arc;

/// The workloads of `atoll-bench run`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum WorkloadKind {
    /// Put one key.
    Put,
    /// Get one key.
    Get,
    /// A range from one key to the end of the prefix, with `--range-limit`.
    Range,
    /// Kubernetes' update shape: a txn that puts the key if its mod revision is the one last
    /// seen, else reads it; a failed compare is retried once with the fresh revision.
    TxnUpdate,
    /// Gets and puts in the proportion `--read-ratio`.
    Mixed,
    /// Grant the lease of the operation's key index (ID = index + 1, see [`lease_id`]) with
    /// `--lease-ttl`; a lease granted twice is answered "lease already exists".
    LeaseGrant,
    /// Renew the lease of the operation's key index once (etcd: over one `LeaseKeepAlive`
    /// stream per loop); a lease that is gone counts as `lease_gone`.
    LeaseKeepalive,
    /// Revoke the lease of the operation's key index (and delete its keys).
    LeaseRevoke,
}

impl WorkloadKind {
    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            WorkloadKind::Put => "put",
            WorkloadKind::Get => "get",
            WorkloadKind::Range => "range",
            WorkloadKind::TxnUpdate => "txn-update",
            WorkloadKind::Mixed => "mixed",
            WorkloadKind::LeaseGrant => "lease-grant",
            WorkloadKind::LeaseKeepalive => "lease-keepalive",
            WorkloadKind::LeaseRevoke => "lease-revoke",
        }
    }
}

/// Everything that decides what a workload sends.
#[derive(Clone, Debug)]
pub struct WorkloadSpec {
    /// Which workload.
    pub kind: WorkloadKind,
    /// The keys it touches.
    pub keys: KeySpace,
    /// Key `n mod size` for operation `n` instead of a random key.
    pub sequential: bool,
    /// The value every put writes.
    pub value: Arc<Vec<u8>>,
    /// Reads served by the local replica without a ReadIndex round.
    pub serializable: bool,
    /// Limit of the range workload.
    pub range_limit: i64,
    /// Fraction of reads in the mixed workload, 0.0 to 1.0.
    pub read_ratio: f64,
    /// Seed of the random key choice; each worker derives its own from it.
    pub seed: u64,
    /// TTL in seconds of the leases the lease-grant workload grants.
    pub lease_ttl_s: i64,
}

/// The lease ID the lease workloads give key index `index`: `index + 1` (0 would ask the
/// server to choose), so a grant run with `--sequential` makes the leases that keepalive and
/// revoke runs over the same key space find.
pub fn lease_id(index: u64) -> i64 {
    i64::try_from(index).unwrap_or(i64::MAX - 1).saturating_add(1)
}

/// A put of `value` to `key`.
pub fn put_request(key: Vec<u8>, value: Vec<u8>) -> PutRequest {
    PutRequest { key, value, ..PutRequest::default() }
}

/// A get of one key.
pub fn get_request(key: Vec<u8>, serializable: bool) -> RangeRequest {
    RangeRequest { key, serializable, ..RangeRequest::default() }
}

/// A range from `key` to `range_end` with at most `limit` keys.
pub fn range_request(key: Vec<u8>, range_end: Vec<u8>, limit: i64, serial: bool) -> RangeRequest {
    RangeRequest { key, range_end, limit, serializable: serial, ..RangeRequest::default() }
}

/// Kubernetes' optimistic update (`GuaranteedUpdate` in its etcd3 store): put `value` if the
/// key's mod revision is still `expected_mod_revision` (0: the key must not exist), else read
/// the key to learn its current revision.
pub fn txn_update_request(key: Vec<u8>, value: Vec<u8>, expected_mod_revision: i64) -> TxnRequest {
    TxnRequest {
        compare: vec![Compare {
            result: CompareResult::Equal,
            target: CompareTarget::Mod(expected_mod_revision),
            key: key.clone(),
            range_end: Vec::new(),
        }],
        success: vec![RequestOp::Put(put_request(key.clone(), value))],
        failure: vec![RequestOp::Range(get_request(key, false))],
    }
}

/// The mod revision a txn-update's answer reveals: the new revision if it wrote, else the
/// key's current one from the failure branch's read (0 if the key is gone).
pub fn revision_after(response: &TxnResponse) -> i64 {
    if response.succeeded {
        return response.header.revision;
    }
    match response.responses.first() {
        Some(ResponseOp::Range(range)) => range.kvs.first().map_or(0, |kv| kv.mod_revision),
        _ => 0,
    }
}

/// Generates and runs the operations of one request loop.
pub struct OpGen {
    spec: Arc<WorkloadSpec>,
    rng: SmallRng,
    /// Last known mod revision per key index (txn-update); bounded, cleared when full.
    revisions: HashMap<u64, i64>,
    /// This loop's renewer (lease-keepalive), made at its first renewal.
    renewer: Option<Renewer>,
}

/// Why an operation failed: a client error, or a txn-update whose compare failed twice.
#[derive(Debug)]
pub enum OpError {
    /// The request failed.
    Client(BackendError),
    /// The key changed between the read and the retried update (a contended key).
    TxnConflict,
    /// A keepalive was answered TTL 0: the lease does not exist (any more).
    LeaseGone,
}

impl OpError {
    /// The name of this failure in a report's `errors` map.
    pub fn kind(&self) -> String {
        match self {
            OpError::Client(e) => e.kind(),
            OpError::TxnConflict => "txn_conflict".to_string(),
            OpError::LeaseGone => "lease_gone".to_string(),
        }
    }
}

impl From<BackendError> for OpError {
    fn from(e: BackendError) -> Self {
        OpError::Client(e)
    }
}

impl OpGen {
    /// The generator of request loop `worker`; its random keys depend only on the seed and
    /// the worker number.
    pub fn new(spec: Arc<WorkloadSpec>, worker: usize) -> OpGen {
        let seed = spec.seed ^ (worker as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        OpGen { spec, rng: SmallRng::seed_from_u64(seed), revisions: HashMap::new(), renewer: None }
    }

    /// The key index of operation `n`.
    pub fn key_index(&mut self, n: u64) -> u64 {
        let size = self.spec.keys.size();
        if self.spec.sequential { n % size } else { self.rng.random_range(0..size) }
    }

    /// Runs operation `n`.
    pub async fn execute(&mut self, client: &Backend, n: u64) -> Result<(), OpError> {
        let spec = Arc::clone(&self.spec);
        let index = self.key_index(n);
        let key = spec.keys.key(index);
        match spec.kind {
            WorkloadKind::Put => self.put(client, key).await,
            WorkloadKind::Get => self.get(client, key).await,
            WorkloadKind::Range => {
                let (_, end) = spec.keys.prefix_range();
                let req = range_request(key, end, spec.range_limit, spec.serializable);
                client.range(req).await.map(drop).map_err(OpError::from)
            }
            WorkloadKind::TxnUpdate => self.txn_update(client, index, key).await,
            WorkloadKind::Mixed if self.rng.random_bool(spec.read_ratio) => {
                self.get(client, key).await
            }
            WorkloadKind::Mixed => self.put(client, key).await,
            WorkloadKind::LeaseGrant => {
                let req = LeaseGrantRequest { ttl: spec.lease_ttl_s, id: lease_id(index) };
                client.lease_grant(req).await.map(drop).map_err(OpError::from)
            }
            WorkloadKind::LeaseKeepalive => {
                let renewer = self.renewer.get_or_insert_with(|| client.renewer());
                match renewer.renew(lease_id(index)).await? {
                    answer if answer.ttl > 0 => Ok(()),
                    _ => Err(OpError::LeaseGone),
                }
            }
            WorkloadKind::LeaseRevoke => {
                let req = LeaseRevokeRequest { id: lease_id(index) };
                client.lease_revoke(req).await.map(drop).map_err(OpError::from)
            }
        }
    }

    async fn put(&self, client: &Backend, key: Vec<u8>) -> Result<(), OpError> {
        let req = put_request(key, self.spec.value.to_vec());
        client.put(req).await.map(drop).map_err(OpError::from)
    }

    async fn get(&self, client: &Backend, key: Vec<u8>) -> Result<(), OpError> {
        let req = get_request(key, self.spec.serializable);
        client.range(req).await.map(drop).map_err(OpError::from)
    }

    async fn txn_update(
        &mut self,
        client: &Backend,
        index: u64,
        key: Vec<u8>,
    ) -> Result<(), OpError> {
        let value = self.spec.value.to_vec();
        let mut expected = self.revisions.get(&index).copied().unwrap_or(0);
        // As Kubernetes does: on a failed compare, retry once with the revision just read.
        for _ in 0..2 {
            let req = txn_update_request(key.clone(), value.clone(), expected);
            let response = client.txn(req).await?;
            expected = revision_after(&response);
            if self.revisions.len() >= REVISION_CACHE_ENTRIES_MAX {
                self.revisions.clear();
            }
            self.revisions.insert(index, expected);
            if response.succeeded {
                return Ok(());
            }
        }
        Err(OpError::TxnConflict)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn must_spec(sequential: bool) -> Arc<WorkloadSpec> {
        Arc::new(WorkloadSpec {
            kind: WorkloadKind::Put,
            keys: KeySpace::new("/t/", 50, None).expect("key space"),
            sequential,
            value: Arc::new(b"v".to_vec()),
            serializable: false,
            range_limit: 10,
            read_ratio: 0.5,
            seed: 3,
            lease_ttl_s: 60,
        })
    }

    #[test]
    fn sequential_keys_follow_the_op_number() {
        let mut ops = OpGen::new(must_spec(true), 0);
        let got: Vec<u64> = [0, 1, 2, 49, 50, 51].iter().map(|n| ops.key_index(*n)).collect();
        assert_eq!(got, vec![0, 1, 2, 49, 0, 1]);
    }

    #[test]
    fn random_keys_are_reproducible_per_worker_and_within_the_space() {
        let draw = |worker| {
            let mut ops = OpGen::new(must_spec(false), worker);
            (0..200).map(|n| ops.key_index(n)).collect::<Vec<_>>()
        };
        assert_eq!(draw(1), draw(1));
        assert_ne!(draw(1), draw(2));
        assert!(draw(1).iter().all(|i| *i < 50));
        assert!(draw(1).iter().collect::<std::collections::HashSet<_>>().len() > 25);
    }

    #[test]
    fn txn_update_compares_the_mod_revision_then_puts_or_reads() {
        let txn = txn_update_request(b"k".to_vec(), b"v".to_vec(), 7);
        assert_eq!(txn.compare.len(), 1);
        assert_eq!(txn.compare[0].target, CompareTarget::Mod(7));
        assert_eq!(txn.compare[0].result, CompareResult::Equal);
        assert!(
            matches!(&txn.success[..], [RequestOp::Put(p)] if p.key == b"k" && p.value == b"v")
        );
        assert!(
            matches!(&txn.failure[..], [RequestOp::Range(r)] if r.key == b"k" && !r.serializable)
        );
    }

    #[test]
    fn the_revision_comes_from_the_branch_that_ran() {
        let mut wrote = TxnResponse { succeeded: true, ..TxnResponse::default() };
        wrote.header.revision = 12;
        assert_eq!(revision_after(&wrote), 12);
        let kv = KeyValue { key: b"k".to_vec(), mod_revision: 9, ..KeyValue::default() };
        let range = RangeResponse { kvs: vec![kv], count: 1, ..RangeResponse::default() };
        let read =
            TxnResponse { responses: vec![ResponseOp::Range(range)], ..TxnResponse::default() };
        assert_eq!(revision_after(&read), 9);
        assert_eq!(revision_after(&TxnResponse::default()), 0);
    }

    #[test]
    fn lease_ids_are_the_key_index_plus_one_so_none_asks_for_a_server_choice() {
        assert_eq!((lease_id(0), lease_id(41)), (1, 42));
        assert_eq!(lease_id(u64::MAX), i64::MAX, "saturates, never wraps to 0 or below");
        let names =
            [WorkloadKind::LeaseGrant, WorkloadKind::LeaseKeepalive, WorkloadKind::LeaseRevoke]
                .map(WorkloadKind::name);
        assert_eq!(names, ["lease-grant", "lease-keepalive", "lease-revoke"]);
    }

    #[test]
    fn reads_carry_the_serializable_flag_and_ranges_the_limit() {
        assert!(get_request(b"a".to_vec(), true).serializable);
        let r = range_request(b"a".to_vec(), b"b".to_vec(), 100, false);
        assert_eq!((r.limit, r.range_end.as_slice(), r.serializable), (100, &b"b"[..], false));
        assert!(r.count_only.eq(&false) && r.keys_only.eq(&false));
    }
}
