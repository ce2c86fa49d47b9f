//! The MVCC store: etcd v3 semantics over the shared fjall keyspaces.
