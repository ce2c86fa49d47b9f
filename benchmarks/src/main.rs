//! atoll-bench: the load generator and scenario suite of Atoll.
//!
//! `run` drives one workload against running nodes (closed or open loop, HdrHistogram
//! latencies, one JSON line, optional CSV and SVG plot); `load` bulk-loads keys; `scenario`
//! runs named measurements on nodes it starts and cleans up itself; `compare` starts Atoll
//! and etcd and runs the same points on both; `suite` runs everything and rewrites the
//! generated section of RESULTS.md. It talks to nodes only through the public client
//! library (`atoll-router`) or, with `--target etcd`, the etcd v3 gRPC API (to Atoll's
//! gateway or to etcd itself, for comparison), as a user's program would, and must not link
//! server crates.

mod backend;
mod cli;
mod commands;
mod compare;
mod connect;
mod csv;
mod engine;
mod error_kind;
mod etcd_client;
#[cfg(test)]
mod fake_etcd;
#[cfg(test)]
mod fake_server;
mod keys;
mod limits;
mod load;
mod plot;
mod progress;
mod recorder;
mod report;
mod scenario;
mod schedule;
mod suite;
mod units;
mod watch_stream;
mod workload;

use clap::Parser as _;
use cli::{Cli, Command};
use std::process::ExitCode;

/// Exit code after ctrl-c or SIGTERM, as shells report a SIGINT death.
const EXIT_INTERRUPTED: u8 = 130;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("atoll-bench: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async {
        // On a signal the command's future is dropped, and with it the guards of any node it
        // started: the nodes are killed and their directories removed before exiting.
        tokio::select! {
            result = dispatch(cli) => result.map(|()| ExitCode::SUCCESS),
            () = interrupted() => {
                eprintln!("atoll-bench: interrupted; stopped the nodes it started");
                Ok(ExitCode::from(EXIT_INTERRUPTED))
            }
        }
    });
    match outcome {
        Ok(code) => code,
        Err(e) => {
            eprintln!("atoll-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn dispatch(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Run(args) => commands::run_command(args, cli.smoke).await,
        Command::Load(args) => commands::load_command(args, cli.smoke).await,
        Command::Scenario(args) => scenario::scenario_command(args, cli.smoke).await,
        Command::Compare(args) => compare::compare_command(args, cli.smoke).await,
        Command::Suite(args) => suite::suite_command(args, cli.smoke).await,
    }
}

/// Resolves on ctrl-c or SIGTERM.
async fn interrupted() {
    let ctrl_c = tokio::signal::ctrl_c();
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = ctrl_c.await;
        }
    }
}
