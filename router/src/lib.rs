//! Atoll's client library: connects to nodes over QUIC, sends native requests, and retries
//! them on retryable errors with bounded backoff. It caches the shard map and the members'
//! client URLs and can send keyed writes straight to their shard's leader, following
//! `NotLeader` hints and refreshing on `WrongShard` ([`routed`]).
//!
//! It owns the client side of the native protocol (one request frame and one response frame
//! per bidirectional stream, ALPN `atoll-client/1`, plus long-lived watch streams) and where local clients find the CA to
//! trust. It must not depend on server-side crates or generate certificates: atollctl links
//! it and stays small.

#![warn(missing_docs)]

pub mod client;
pub mod config;
mod connection;
pub mod endpoint;
pub mod error;
pub mod limits;
pub mod merge;
pub mod retry;
pub mod routed;
pub mod shard_map;
pub mod tls;
pub mod watch;

pub use client::Client;
pub use config::{ClientConfig, Trust};
pub use error::{ClientError, TrustError};
