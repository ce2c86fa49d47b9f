//! atollctl: commands, the etcdctl txn syntax and output formats.
