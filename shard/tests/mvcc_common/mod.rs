//! Shared fixture and builders of the MVCC test suites.
//!
//! Every write applied through [`Fixture::must_apply`] goes in at the next log index `i`
//! with the revision stamp `100 * i`, so a write that changes the store gets revision
//! `100 * i` exactly and the expected responses can name revisions.

pub mod table;
pub mod txn;

use atoll_proto::{
    AtollError, DeleteRangeRequest, KeyValue, PutRequest, RaftCommand, RangeRequest, RangeResponse,
    ResponseHeader, ShardId, WriteOp,
};
use atoll_shard::mvcc::{ApplyState, MvccLimits, MvccStore, ShardRange, WriteResponse};
use atoll_shard::{ShardError, Storage};
use std::path::Path;
use tempfile::TempDir;

/// The shard id every fixture uses.
pub const SHARD: ShardId = ShardId(7);
/// fjall cache of a test database.
const CACHE_BYTES: u64 = 8 << 20;

/// A store on a fresh database in a temporary directory.
pub struct Fixture {
    /// Removed on drop.
    pub dir: TempDir,
    /// The database.
    pub storage: Storage,
    /// The store under test.
    pub store: MvccStore,
    /// Its apply state as the replica would hold it.
    pub state: ApplyState,
}

impl Fixture {
    /// A fresh store owning every key.
    pub fn must_open() -> Fixture {
        Fixture::must_open_range(ShardRange::all())
    }

    /// A fresh store owning `range`.
    pub fn must_open_range(range: ShardRange) -> Fixture {
        let dir = tempfile::tempdir().expect("temp dir");
        let storage = must_storage(dir.path());
        let store = MvccStore::new(storage.clone(), SHARD, range);
        let state = store.load_apply_state().expect("load apply state");
        Fixture { dir, storage, store, state }
    }

    /// Drops the store and the database, reopens them and reloads the apply state.
    pub fn must_reopen(self) -> Fixture {
        let Fixture { dir, storage, store, .. } = self;
        let range = store.key_range().clone();
        drop(store);
        drop(storage);
        let storage = must_storage(dir.path());
        let store = MvccStore::new(storage.clone(), SHARD, range);
        let state = store.load_apply_state().expect("load apply state");
        Fixture { dir, storage, store, state }
    }

    /// Applies `op` at the next index with stamp `100 * index`.
    pub fn must_apply(&mut self, op: WriteOp) -> Result<WriteResponse, AtollError> {
        let index = self.state.applied_index + 1;
        let cmd = RaftCommand { revision_stamp: 100 * index as i64, op };
        self.store.apply(&mut self.state, index, &cmd, &MvccLimits::default()).expect("storage")
    }

    /// Applies every op of `ops`, ignoring request errors (a failed write is part of some
    /// setups: it must leave the revision alone).
    pub fn must_apply_all(&mut self, ops: &[WriteOp]) {
        for op in ops {
            let _ = self.must_apply(op.clone());
        }
    }

    /// Serves `req` from a fresh snapshot.
    pub fn must_range(&self, req: &RangeRequest) -> Result<RangeResponse, AtollError> {
        let snap = self.storage.db.snapshot();
        match self.store.range(&snap, req) {
            Ok(resp) => Ok(resp),
            Err(ShardError::Request(e)) => Err(e),
            Err(ShardError::Storage(e)) => panic!("storage failed: {e}"),
        }
    }

    /// The live keys and values at the newest revision (a compact state summary).
    pub fn must_dump(&self) -> Vec<KeyValue> {
        self.must_range(&range(b"\0", b"\0")).expect("dump").kvs
    }
}

/// Opens the database at `path`.
pub fn must_storage(path: &Path) -> Storage {
    Storage::open(path, CACHE_BYTES).expect("open storage")
}

/// The documented `mvcc` key encoding of a user key (escape 0x00, terminate 0x00 0x01).
pub fn encoded(key: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for &b in key {
        out.push(b);
        if b == 0 {
            out.push(0xff);
        }
    }
    out.extend_from_slice(&[0, 1]);
    out
}

/// Revisions of the stored versions of `key`, newest first, read from the raw keyspace.
pub fn must_stored_revisions(storage: &Storage, key: &[u8]) -> Vec<i64> {
    let mut revisions = Vec::new();
    for guard in storage.mvcc.prefix(encoded(key)) {
        let raw = guard.key().expect("key");
        let suffix: [u8; 8] = raw[raw.len() - 8..].try_into().expect("revision suffix");
        revisions.push(!u64::from_be_bytes(suffix) as i64);
    }
    revisions
}

/// A header with only the revision set, as the store fills it.
pub fn hdr(revision: i64) -> ResponseHeader {
    ResponseHeader { revision, ..Default::default() }
}

/// A key-value pair without a lease.
pub fn kv(key: &[u8], value: &[u8], create: i64, modified: i64, version: i64) -> KeyValue {
    KeyValue {
        key: key.to_vec(),
        create_revision: create,
        mod_revision: modified,
        version,
        value: value.to_vec(),
        lease: 0,
    }
}

/// A key-value pair with a lease.
pub fn kvl(
    key: &[u8],
    value: &[u8],
    create: i64,
    modified: i64,
    version: i64,
    lease: i64,
) -> KeyValue {
    KeyValue { lease, ..kv(key, value, create, modified, version) }
}

/// A put request.
pub fn put_req(key: &[u8], value: &[u8]) -> PutRequest {
    PutRequest { key: key.to_vec(), value: value.to_vec(), ..Default::default() }
}

/// `op` attaching `leases`, as a node sends it once the meta shard's leader vouched for them
/// (each at grant index 1; decision D16).
pub fn leased(op: WriteOp, leases: &[i64]) -> WriteOp {
    let leases =
        leases.iter().map(|id| atoll_proto::LeaseRef { id: *id, grant_index: 1 }).collect();
    WriteOp::Leased(atoll_proto::LeasedWrite { leases, op: Box::new(op) })
}

/// A put.
pub fn put(key: &[u8], value: &[u8]) -> WriteOp {
    WriteOp::Put(put_req(key, value))
}

/// A delete request of `[key, range_end)` (etcd conventions).
pub fn del_req(key: &[u8], range_end: &[u8]) -> DeleteRangeRequest {
    DeleteRangeRequest { key: key.to_vec(), range_end: range_end.to_vec(), prev_kv: false }
}

/// A delete of `[key, range_end)`.
pub fn del(key: &[u8], range_end: &[u8]) -> WriteOp {
    WriteOp::DeleteRange(del_req(key, range_end))
}

/// A range request of `[key, range_end)`.
pub fn range(key: &[u8], range_end: &[u8]) -> RangeRequest {
    RangeRequest { key: key.to_vec(), range_end: range_end.to_vec(), ..Default::default() }
}

/// A range response as the store answers it.
pub fn range_resp(revision: i64, kvs: Vec<KeyValue>, more: bool, count: i64) -> RangeResponse {
    RangeResponse { header: hdr(revision), kvs, more, count }
}

/// The standard history, one write per index (revision = 100 × index):
/// 100 put a=1, 200 put b=2, 300 put c=3, 400 put a=11, 500 delete b, 600 put d=4.
/// At 600: a (create 100, mod 400, version 2), c (300, 300, 1), d (600, 600, 1).
pub fn history() -> Vec<WriteOp> {
    vec![
        put(b"a", b"1"),
        put(b"b", b"2"),
        put(b"c", b"3"),
        put(b"a", b"11"),
        del(b"b", b""),
        put(b"d", b"4"),
    ]
}

/// `a` at revision 600 of [`history`].
pub fn a600() -> KeyValue {
    kv(b"a", b"11", 100, 400, 2)
}

/// `c` at revision 600 of [`history`].
pub fn c600() -> KeyValue {
    kv(b"c", b"3", 300, 300, 1)
}

/// `d` at revision 600 of [`history`].
pub fn d600() -> KeyValue {
    kv(b"d", b"4", 600, 600, 1)
}

/// Collects the mismatches of a table so one run reports every failing case.
#[derive(Default)]
pub struct Mismatches(Vec<String>);

impl Mismatches {
    /// Records a mismatch of case `name` when `got != want`.
    pub fn check<T: PartialEq + std::fmt::Debug>(&mut self, name: &str, got: &T, want: &T) {
        if got != want {
            self.0.push(format!("case {name}:\n   got {got:?}\n  want {want:?}"));
        }
    }

    /// Panics listing every mismatch, if any.
    pub fn must_be_empty(self, cases: usize) {
        assert!(
            self.0.is_empty(),
            "{} of {cases} cases failed:\n{}",
            self.0.len(),
            self.0.join("\n")
        );
    }
}

/// splitmix64: a fixed, dependency-free pseudo-random sequence for seeded histories.
pub struct Rng(pub u64);

impl Rng {
    /// The next value.
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// One element of `items`.
    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[(self.next() % items.len() as u64) as usize]
    }
}
