//! atollctl's errors and the exit codes they map to. The codes are etcdctl's
//! (`ctlv3/command/error.go`), so scripts written against etcdctl keep working: 1 for a
//! failed request, 3 for unparsable txn input, 4 for an unsupported flag value, 128 for
//! missing or conflicting arguments.

use crate::ctl::txn_syntax::TxnSyntaxError;
use std::time::Duration;

/// etcdctl's `ExitError`: the request failed.
pub const EXIT_ERROR: u8 = 1;
/// etcdctl's `ExitInvalidInput`: the txn (or other stdin) input could not be parsed.
pub const EXIT_INVALID_INPUT: u8 = 3;
/// etcdctl's `ExitBadFeature`: a flag was given a value that is not supported.
pub const EXIT_BAD_FEATURE: u8 = 4;
/// etcdctl's `ExitInterrupted`: a watch ended because the server canceled it.
pub const EXIT_INTERRUPTED: u8 = 5;
/// etcdctl's `ExitBadConnection`: a keepalive found its lease gone.
pub const EXIT_BAD_CONNECTION: u8 = 2;
/// etcdctl's `ExitBadArgs`: arguments are missing or conflict.
pub const EXIT_BAD_ARGS: u8 = 128;

/// Everything that can make an atollctl command fail. The `Display` text is what follows
/// `Error: ` on standard error.
#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    /// Arguments are missing, extra or in conflict (etcdctl's wording).
    #[error("{message}")]
    BadArgs {
        /// What was wrong, as etcdctl says it.
        message: String,
    },
    /// A flag has a value that is not supported, e.g. `--sort-by=SIZE`.
    #[error("{message}")]
    BadFeature {
        /// What was wrong, as etcdctl says it.
        message: String,
    },
    /// The txn read from standard input could not be parsed.
    #[error(transparent)]
    TxnSyntax(#[from] TxnSyntaxError),
    /// Standard input could not be read.
    #[error("reading standard input: {source}")]
    Stdin {
        /// The IO error.
        source: std::io::Error,
    },
    /// The TLS trust anchors could not be loaded.
    #[error("{reason}")]
    Trust {
        /// Why loading failed.
        reason: String,
    },
    /// No endpoint could be reached. The text starts like etcdctl's so scripts that match
    /// "context deadline exceeded" still do.
    #[error(
        "context deadline exceeded: could not connect to {endpoints} within {}: {reason}",
        crate::ctl::go_fmt::format_duration(*dial_timeout)
    )]
    Connect {
        /// The endpoints tried, comma separated.
        endpoints: String,
        /// The `--dial-timeout` in force.
        dial_timeout: Duration,
        /// Why the last attempt failed.
        reason: String,
    },
    /// A request did not complete within `--command-timeout`.
    #[error(
        "context deadline exceeded: no answer from {endpoints} within --command-timeout={}",
        crate::ctl::go_fmt::format_duration(*command_timeout)
    )]
    DeadlineExceeded {
        /// The endpoints in use, comma separated.
        endpoints: String,
        /// The `--command-timeout` in force.
        command_timeout: Duration,
    },
    /// The client library or the server reported an error; server errors keep etcd's exact
    /// text (e.g. "etcdserver: mvcc: required revision has been compacted").
    #[error("{message}")]
    Request {
        /// The error's text.
        message: String,
    },
    /// A keepalive found its lease expired or revoked (etcdctl exits with
    /// `ExitBadConnection` then).
    #[error("{message}")]
    LeaseLost {
        /// The error's text.
        message: String,
    },
    /// `endpoint health` found at least one unhealthy endpoint (already listed).
    #[error("unhealthy cluster")]
    Unhealthy,
    /// `endpoint status` failed for some endpoints; each failure was already written to
    /// standard error, so nothing more is printed (as etcdctl does).
    #[error("failed to get the status of {failed} endpoint(s)")]
    StatusFailed {
        /// How many endpoints failed.
        failed: usize,
    },
    /// The server ended the watch (etcdctl's last words after a watch).
    #[error("watch is canceled by the server")]
    WatchCanceled,
    /// Writing to standard output or standard error failed.
    #[error("writing output: {source}")]
    Output {
        /// The IO error.
        source: std::io::Error,
    },
}

impl CtlError {
    /// The process exit code for this error, following etcdctl.
    pub fn exit_code(&self) -> u8 {
        match self {
            CtlError::BadArgs { .. } => EXIT_BAD_ARGS,
            CtlError::BadFeature { .. } => EXIT_BAD_FEATURE,
            CtlError::WatchCanceled => EXIT_INTERRUPTED,
            CtlError::LeaseLost { .. } => EXIT_BAD_CONNECTION,
            CtlError::TxnSyntax(_) | CtlError::Stdin { .. } => EXIT_INVALID_INPUT,
            CtlError::Trust { .. }
            | CtlError::Connect { .. }
            | CtlError::DeadlineExceeded { .. }
            | CtlError::Request { .. }
            | CtlError::Unhealthy
            | CtlError::StatusFailed { .. }
            | CtlError::Output { .. } => EXIT_ERROR,
        }
    }

    /// Whether the error was already reported in full on standard error, so the caller must
    /// not print an `Error:` line for it.
    pub fn already_reported(&self) -> bool {
        matches!(self, CtlError::StatusFailed { .. })
    }

    /// Shorthand for [`CtlError::BadArgs`].
    pub fn bad_args(message: impl Into<String>) -> Self {
        CtlError::BadArgs { message: message.into() }
    }

    /// Shorthand for [`CtlError::BadFeature`].
    pub fn bad_feature(message: impl Into<String>) -> Self {
        CtlError::BadFeature { message: message.into() }
    }
}

impl From<std::io::Error> for CtlError {
    fn from(source: std::io::Error) -> Self {
        CtlError::Output { source }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_etcdctl() {
        assert_eq!(CtlError::bad_args("x").exit_code(), 128);
        assert_eq!(CtlError::bad_feature("x").exit_code(), 4);
        assert_eq!(CtlError::Request { message: "x".into() }.exit_code(), 1);
        assert_eq!(CtlError::Unhealthy.exit_code(), 1);
        let syntax = TxnSyntaxError::InvalidRequest { line: "x".into(), reason: "y".into() };
        assert_eq!(CtlError::from(syntax).exit_code(), 3);
    }

    #[test]
    fn connect_error_names_endpoint_and_timeout() {
        let e = CtlError::Connect {
            endpoints: "127.0.0.1:1".into(),
            dial_timeout: Duration::from_millis(1500),
            reason: "connection refused".into(),
        };
        assert_eq!(
            e.to_string(),
            "context deadline exceeded: could not connect to 127.0.0.1:1 within 1.5s: \
             connection refused"
        );
        assert!(!e.already_reported());
        assert!(CtlError::StatusFailed { failed: 1 }.already_reported());
    }

    #[test]
    fn server_text_is_kept_exactly() {
        let text = "etcdserver: mvcc: required revision has been compacted";
        assert_eq!(CtlError::Request { message: text.into() }.to_string(), text);
    }
}
