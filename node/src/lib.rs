//! The `atoll` server and the `atollctl` client as a library, so both binaries stay thin and
//! integration tests can drive the pieces: configuration, development certificates, the QUIC
//! transport, the etcd gRPC gateway, the request service that bridges the network to shard replicas, and atollctl's
//! commands and output formats.

#![warn(missing_docs)]

pub mod auth;
pub mod certs;
pub mod cluster;
pub mod config;
pub mod ctl;
pub mod durable_file;
pub mod grpc;
pub mod http;
pub mod identity;
pub mod service;
mod snapshot_sink;
pub mod supervisor;
pub mod transport;
pub mod units;
