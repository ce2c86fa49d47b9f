//! `atoll`: parse flags, load the config, install logging, run the node. Every start-up error
//! is one line on stderr and a non-zero exit; a panic is reported as one line too.

use atoll_node::certs::{self, CertError};
use atoll_node::config::{CertsCommand, Command, Flags, NodeConfig};
use clap::Parser;

/// Exit code for unusable flags or configuration (as clap's usage errors).
const EXIT_USAGE: i32 = 2;
/// Exit code for a start-up or run-time failure.
const EXIT_FAILURE: i32 = 1;

fn main() {
    std::panic::set_hook(Box::new(|info| {
        let location =
            info.location().map(|l| format!(" at {}:{}", l.file(), l.line())).unwrap_or_default();
        let payload = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        eprintln!("atoll: fatal: internal error{location}: {}", one_line(&payload));
    }));
    let flags = match Flags::try_parse() {
        Ok(flags) => flags,
        Err(e) if !e.use_stderr() => e.exit(),
        Err(e) => {
            eprintln!("atoll: error: {} (see atoll --help)", clap_first_line(&e));
            std::process::exit(EXIT_USAGE);
        }
    };
    if let Some(Command::Certs(certs)) = &flags.command {
        match run_certs(certs) {
            Ok(done) => println!("{done}"),
            Err(e) => {
                eprintln!("atoll: error: {e}");
                std::process::exit(EXIT_FAILURE);
            }
        }
        return;
    }
    let cfg = match NodeConfig::load(&flags) {
        Ok(cfg) => cfg,
        Err(e) => {
            eprintln!("atoll: error: {e}");
            std::process::exit(EXIT_USAGE);
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("ATOLL_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!(
            "{},raft=warn,fjall=warn,lsm_tree=warn",
            cfg.log_level
        ))
    });
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    if let Err(e) = atoll_node::supervisor::run(cfg) {
        eprintln!("atoll: error: {}", one_line(&error_chain(&e)));
        std::process::exit(EXIT_FAILURE);
    }
}

/// Runs `atoll certs ...`; returns what was written.
fn run_certs(cmd: &CertsCommand) -> Result<String, CertError> {
    match cmd {
        CertsCommand::Ca { dir } => {
            certs::create_ca(dir)?;
            Ok(format!("created CA {0}/ca.pem and key {0}/ca-key.pem", dir.display()))
        }
        CertsCommand::Node { ca_dir, out, hosts } => {
            certs::issue_node_cert(ca_dir, out, hosts)?;
            Ok(format!(
                "created {0}/node.pem, {0}/node-key.pem and {0}/ca.pem; start the node with --cert-file {0}/node.pem --key-file {0}/node-key.pem --trusted-ca-file {0}/ca.pem",
                out.display()
            ))
        }
    }
}

/// The error and its causes, skipping a cause whose text its parent already includes.
fn error_chain(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let part = cause.to_string();
        if !text.contains(&part) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&part);
        }
    }
    text
}

/// clap's message without its "error: " prefix, tips and usage block.
fn clap_first_line(e: &clap::Error) -> String {
    let rendered = e.to_string();
    let first = rendered.lines().find(|l| !l.trim().is_empty()).unwrap_or("invalid arguments");
    first.trim().trim_start_matches("error: ").to_string()
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}
