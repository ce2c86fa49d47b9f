//! atollctl, Atoll's etcdctl-compatible command-line client: its command line
//! ([`args`]), the etcdctl txn syntax ([`txn_syntax`]), the simple and JSON output formats
//! ([`output`], [`json`]) and the glue that sends requests ([`commands`]).
//!
//! Everything but [`commands`] and [`router_client`] is pure and unit-tested without a
//! server; [`commands`] is written against the [`client`] traits so it is tested with an
//! in-memory fake. Output and flags follow etcdctl v3.4 (`etcdctl/ctlv3/command/*.go`);
//! known differences are listed where they are made.

pub mod args;
pub mod client;
pub mod commands;
pub mod error;
pub mod go_fmt;
pub mod json;
pub mod limits;
pub mod output;
pub mod requests;
pub mod router_client;
pub mod txn_syntax;

pub use args::Cli;
pub use commands::CtlIo;
pub use error::CtlError;

use std::io::Write;

/// Runs a parsed command line against the cluster named by its `--endpoints`.
pub async fn run(cli: &Cli, io: &mut CtlIo<'_>) -> Result<(), CtlError> {
    let connector = router_client::RouterConnector::new(&cli.global);
    commands::execute(cli, &connector, io).await
}

/// Reports a command-line parse failure and returns the exit code. `--help` and
/// `--version` print as clap does and succeed; any other error becomes one
/// `Error: <message>` line on `stderr` and exit code 1 (etcdctl's code for a flag error).
pub fn report_parse_error(error: &clap::Error, stderr: &mut dyn Write) -> u8 {
    use clap::error::ErrorKind;
    match error.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = error.print();
            u8::try_from(error.exit_code()).unwrap_or(error::EXIT_ERROR)
        }
        _ => {
            let _ = writeln!(stderr, "Error: {}", args::one_line_error(error));
            error::EXIT_ERROR
        }
    }
}

/// Reports the outcome of [`run`] on `stderr` and returns the process exit code.
pub fn report_outcome(outcome: Result<(), CtlError>, stderr: &mut dyn Write) -> u8 {
    match outcome {
        Ok(()) => 0,
        Err(error) => {
            if !error.already_reported() {
                let _ = writeln!(stderr, "Error: {error}");
            }
            error.exit_code()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn parse_errors_become_one_error_line() {
        let mut stderr = Vec::new();
        let err = Cli::try_parse_from(["atollctl", "get", "k", "--bogus"]).err();
        let code = err.map(|e| report_parse_error(&e, &mut stderr));
        assert_eq!(code, Some(1));
        assert_eq!(
            String::from_utf8_lossy(&stderr),
            "Error: unexpected argument '--bogus' found\n"
        );
    }

    #[test]
    fn outcomes_map_to_exit_codes() {
        let mut stderr = Vec::new();
        assert_eq!(report_outcome(Ok(()), &mut stderr), 0);
        assert!(stderr.is_empty());
        assert_eq!(report_outcome(Err(CtlError::bad_args("nope")), &mut stderr), 128);
        assert_eq!(String::from_utf8_lossy(&stderr), "Error: nope\n");
        stderr.clear();
        assert_eq!(report_outcome(Err(CtlError::StatusFailed { failed: 2 }), &mut stderr), 1);
        assert!(stderr.is_empty());
    }
}
