//! Errors of the client library. A server's answer keeps its exact text (clients match on
//! etcd's strings); the other variants say what failed and, where it helps, what to do.

use atoll_proto::AtollError;
use std::time::Duration;

/// Why a client call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with an error; its text is the server's, unchanged (for example
    /// "etcdserver: request is too large").
    #[error(transparent)]
    Server(AtollError),
    /// No connection could be made to the endpoint.
    #[error("cannot connect to {endpoint}: {reason}")]
    Connect {
        /// The endpoint (or endpoints) tried.
        endpoint: String,
        /// Why it failed.
        reason: String,
    },
    /// The connection or stream failed after the request was sent.
    #[error("transport error: {reason}")]
    Transport {
        /// What failed.
        reason: String,
    },
    /// No answer arrived in time. A write may or may not have been applied.
    #[error("no answer within {after:?}; a write may or may not have been applied")]
    Timeout {
        /// The time waited.
        after: Duration,
    },
    /// The server's answer broke the protocol (undecodable, too large, unexpected type).
    #[error("protocol error: {reason}")]
    Protocol {
        /// What was wrong.
        reason: String,
    },
    /// The client configuration is unusable (no endpoints, a bad endpoint, a bad CA).
    #[error("invalid client configuration: {reason}")]
    Config {
        /// What to fix.
        reason: String,
    },
}

/// Why trusted CA certificates could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    /// A CA file given explicitly cannot be read.
    #[error("cannot read CA file {path}: {reason}")]
    Unreadable {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// A CA file holds no PEM certificate.
    #[error("CA file {path} holds no PEM certificate; pass a PEM file with a CERTIFICATE block")]
    NoCertificate {
        /// The file.
        path: String,
    },
    /// No CA was given and none was found in the usual places.
    #[error(
        "no trusted CA found (looked in {searched}); pass --cacert <ca.pem>, or start a node \
         on this machine first so it writes its development CA, or pass \
         --insecure-skip-tls-verify"
    )]
    NothingFound {
        /// The places looked in.
        searched: String,
    },
}
