//! Runs the built `atollctl` binary for the failures that need no server: bad flags, bad
//! arguments, bad txn input, missing trust anchors and an endpoint nobody listens on. Each
//! must end with one `Error:` line on stderr and etcdctl's exit code, quickly.

mod support;

use std::net::UdpSocket;
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};
use support::must_run_atollctl;

/// Generous bound for a command that must fail without waiting on the network; a debug
/// binary on a loaded 2-core machine can take a while just to start.
const PROMPT_FAILURE_MAX: Duration = Duration::from_secs(10);

fn must_run(args: &[&str], stdin: &str, home: &Path) -> Output {
    must_run_atollctl(args, &[], stdin, home)
}

fn must_run_with_env(args: &[&str], env: &[(&str, &str)], stdin: &str, home: &Path) -> Output {
    must_run_atollctl(args, env, stdin, home)
}

fn must_tempdir() -> tempfile::TempDir {
    match tempfile::tempdir() {
        Ok(dir) => dir,
        Err(e) => panic!("tempdir: {e}"),
    }
}

/// A loopback UDP port nobody listens on (QUIC runs over UDP).
fn must_closed_port() -> u16 {
    let socket = match UdpSocket::bind("127.0.0.1:0") {
        Ok(socket) => socket,
        Err(e) => panic!("bind: {e}"),
    };
    match socket.local_addr() {
        Ok(addr) => addr.port(),
        Err(e) => panic!("local_addr: {e}"),
    }
}

fn stderr_line(output: &Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(stderr.lines().count(), 1, "expected one stderr line, got {stderr:?}");
    assert!(stderr.starts_with("Error: "), "{stderr:?}");
    stderr.trim_end().to_string()
}

#[test]
fn bad_command_lines_fail_with_one_line() {
    let home = must_tempdir();
    eprintln!("phase: an unknown flag is a parse error, reported on one line");
    let output = must_run(&["get", "k", "--bogus"], "", home.path());
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(stderr_line(&output), "Error: unexpected argument '--bogus' found");
    assert!(output.stdout.is_empty());

    eprintln!("phase: a missing key gets etcdctl's message and ExitBadArgs");
    let output = must_run(&["get"], "", home.path());
    assert_eq!(output.status.code(), Some(128));
    assert_eq!(
        stderr_line(&output),
        "Error: get command needs one argument as key and an optional argument as range_end"
    );

    eprintln!("phase: bad txn input is ExitInvalidInput, before any connection attempt");
    let output = must_run(&["txn"], "mod(\"k\") ~ \"1\"\n\n\n", home.path());
    assert_eq!(output.status.code(), Some(3));
    assert!(stderr_line(&output).starts_with("Error: malformed comparison: mod(\"k\") ~ \"1\""));

    eprintln!("phase: --help prints usage and succeeds");
    let output = must_run(&["--help"], "", home.path());
    assert_eq!(output.status.code(), Some(0));
    let usage = String::from_utf8_lossy(&output.stdout);
    assert!(usage.contains("put") && usage.contains("--endpoints"), "{usage}");
}

#[test]
fn missing_trust_anchors_are_reported_with_what_to_do() {
    let home = must_tempdir();
    let data_dir = home.path().join("no-node-here");
    eprintln!("phase: no CA anywhere and no --insecure-skip-tls-verify: refuse, say how to fix");
    let started = Instant::now();
    let data_dir_arg = format!("--data-dir={}", data_dir.display());
    let output = must_run(&["get", "k", &data_dir_arg], "", home.path());
    assert!(started.elapsed() < PROMPT_FAILURE_MAX);
    assert_eq!(output.status.code(), Some(1));
    let line = stderr_line(&output);
    assert!(line.contains("--cacert"), "{line}");
}

#[test]
fn unreachable_endpoint_fails_within_the_dial_timeout() {
    let home = must_tempdir();
    let endpoint = format!("127.0.0.1:{}", must_closed_port());
    eprintln!("phase: nobody listens on {endpoint}; expect exit 1 after about --dial-timeout");
    let started = Instant::now();
    let endpoints = format!("--endpoints={endpoint}");
    let args = [
        "get",
        "k",
        &endpoints,
        "--insecure-skip-tls-verify",
        "--dial-timeout=1s",
        "--command-timeout=1s",
    ];
    let output = must_run(&args, "", home.path());
    let took = started.elapsed();
    assert_eq!(output.status.code(), Some(1));
    let line = stderr_line(&output);
    assert!(line.starts_with("Error: context deadline exceeded"), "{line}");
    assert!(line.contains(&endpoint), "{line}");
    // Dial timeout plus atollctl's grace and process start-up; never the 5 s default.
    assert!(took < Duration::from_secs(4), "took {took:?}");

    eprintln!("phase: the same settings through ATOLLCTL_* environment variables");
    let started = Instant::now();
    let env = [
        ("ATOLLCTL_ENDPOINTS", endpoint.as_str()),
        ("ATOLLCTL_INSECURE_SKIP_TLS_VERIFY", "1"),
        ("ATOLLCTL_DIAL_TIMEOUT", "1s"),
    ];
    let output = must_run_with_env(&["put", "k", "v"], &env, "", home.path());
    let took = started.elapsed();
    assert_eq!(output.status.code(), Some(1));
    let line = stderr_line(&output);
    assert!(line.starts_with("Error: context deadline exceeded"), "{line}");
    assert!(line.contains(&endpoint), "{line}");
    assert!(took < Duration::from_secs(4), "took {took:?}");
}
