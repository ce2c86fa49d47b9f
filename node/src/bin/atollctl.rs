//! `atollctl`: parse the command line, run the command on a single-threaded runtime, and
//! turn the outcome into etcdctl's exit codes. Everything else lives in `atoll_node::ctl`.

use atoll_node::ctl::{self, Cli, CtlIo};
use clap::Parser;
use std::io::{self, Write};
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => return ExitCode::from(ctl::report_parse_error(&error, &mut io::stderr())),
    };
    // One command, one connection: a current-thread runtime is enough and starts fastest.
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("Error: cannot start the async runtime: {error}");
            return ExitCode::from(ctl::error::EXIT_ERROR);
        }
    };
    let mut stdin = io::stdin().lock();
    let mut stdout = io::stdout().lock();
    let mut stderr = io::stderr();
    let outcome = runtime.block_on(async {
        let mut io = CtlIo { stdin: &mut stdin, stdout: &mut stdout, stderr: &mut stderr };
        ctl::run(&cli, &mut io).await
    });
    let flushed = stdout.flush();
    let outcome = outcome.and_then(|()| flushed.map_err(ctl::CtlError::from));
    ExitCode::from(ctl::report_outcome(outcome, &mut stderr))
}
