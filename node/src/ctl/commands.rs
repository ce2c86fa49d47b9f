//! The glue of each command: check arguments and read standard input first (so bad input
//! fails before any network wait), then connect, send under `--command-timeout`, and print
//! in the chosen format. Every wait is bounded: connects by `--dial-timeout`, requests by
//! `--command-timeout`.

mod auth;
mod lease;
mod member;
mod shard;

use crate::ctl::args::{
    Cli, Command, CompactionArgs, DelArgs, EndpointCommand, GetArgs, GlobalArgs, OutputFormat,
    PutArgs, TxnArgs, WatchArgs,
};
use crate::ctl::client::{Connector, KvClient, WatchResponses};
use crate::ctl::error::CtlError;
use crate::ctl::limits::{DIAL_GRACE_MILLIS, STDIN_VALUE_BYTES_MAX};
use crate::ctl::output::{self, EndpointHealth, EndpointStatus, SimplePrinter};
use crate::ctl::requests::{
    compaction_request, delete_request, put_request, range_request, watch_request,
};
use crate::ctl::{json, txn_syntax};
use atoll_proto::{RangeRequest, WatchResponse};
use std::future::Future;
use std::io::{BufRead, Read, Write};
use std::pin::Pin;
use std::task::Poll;
use std::time::{Duration, Instant};

/// The key `endpoint health` reads, as etcdctl does: any answer to a linearizable read
/// proves the endpoint can reach a quorum.
const HEALTH_KEY: &[u8] = b"health";

/// The process's standard streams, borrowed so tests can substitute buffers.
pub struct CtlIo<'a> {
    /// Standard input (put values, txn input).
    pub stdin: &'a mut dyn BufRead,
    /// Standard output (results).
    pub stdout: &'a mut dyn Write,
    /// Standard error (per-endpoint failures, simple health lines).
    pub stderr: &'a mut dyn Write,
}

/// Runs the parsed command line with clients from `connector`.
pub async fn execute<C: Connector>(
    cli: &Cli,
    connector: &C,
    io: &mut CtlIo<'_>,
) -> Result<(), CtlError> {
    let session = Session::new(&cli.global, connector)?;
    match &cli.command {
        Command::Put(args) => session.put(args, io).await,
        Command::Get(args) => session.get(args, io).await,
        Command::Del(args) => session.del(args, io).await,
        Command::Txn(args) => session.txn(args, io).await,
        Command::Compaction(args) => session.compaction(args, io).await,
        Command::Endpoint(EndpointCommand::Status) => session.endpoint_status(io).await,
        Command::Endpoint(EndpointCommand::Health) => session.endpoint_health(io).await,
        Command::Watch(args) => session.watch(args, io).await,
        Command::Lease(cmd) => session.lease(cmd, io).await,
        Command::Member(cmd) => session.member(cmd, io).await,
        Command::Shard(cmd) => session.shard(cmd, io).await,
        Command::User(cmd) => session.user(cmd, io).await,
        Command::Role(cmd) => session.role(cmd, io).await,
        Command::Auth(cmd) => session.auth(cmd, io).await,
    }
}

/// clientv3's `WatchResponse.Err()` text for a canceled watch: compaction, the server's
/// reason, or (canceled without either) etcd's future-revision error.
fn watch_cancel_error(resp: &WatchResponse) -> String {
    if resp.compact_revision != 0 {
        "etcdserver: mvcc: required revision has been compacted".to_string()
    } else if !resp.cancel_reason.is_empty() {
        format!("rpc error: code = FailedPrecondition desc = {}", resp.cancel_reason)
    } else {
        "etcdserver: mvcc: required revision is a future revision".to_string()
    }
}

/// Normalizes `--endpoints`: trims each and drops empty entries (`a:1,,b:2`, a trailing
/// comma). Schemes such as `https://` are left for the client library, which ignores them.
pub fn normalize_endpoints(endpoints: &[String]) -> Result<Vec<String>, CtlError> {
    let normalized: Vec<String> =
        endpoints.iter().map(|e| e.trim()).filter(|e| !e.is_empty()).map(str::to_string).collect();
    if normalized.is_empty() {
        return Err(CtlError::bad_args("no endpoint given; set --endpoints host:port[,host:port]"));
    }
    Ok(normalized)
}

struct Session<'c, C> {
    connector: &'c C,
    endpoints: Vec<String>,
    dial_timeout: Duration,
    command_timeout: Duration,
    format: OutputFormat,
    hex: bool,
}

impl<'c, C: Connector> Session<'c, C> {
    fn new(global: &GlobalArgs, connector: &'c C) -> Result<Self, CtlError> {
        Ok(Session {
            connector,
            endpoints: normalize_endpoints(&global.endpoints)?,
            dial_timeout: global.dial_timeout,
            command_timeout: global.command_timeout,
            format: global.write_out,
            hex: global.hex,
        })
    }

    fn printer(&self) -> SimplePrinter {
        SimplePrinter { hex: self.hex, value_only: false }
    }

    /// Connects, giving up shortly after the dial timeouts even if the client does not.
    async fn connect(&self, endpoints: &[String]) -> Result<C::Client, CtlError> {
        // The client dials endpoints in turn, each for up to `--dial-timeout`.
        let dials = u32::try_from(endpoints.len()).unwrap_or(u32::MAX).max(1);
        let limit =
            self.dial_timeout.saturating_mul(dials) + Duration::from_millis(DIAL_GRACE_MILLIS);
        match tokio::time::timeout(limit, self.connector.connect(endpoints)).await {
            Ok(result) => result,
            Err(_) => Err(CtlError::Connect {
                endpoints: endpoints.join(","),
                dial_timeout: self.dial_timeout,
                reason: "no answer".to_string(),
            }),
        }
    }

    /// Awaits one request under `--command-timeout` (etcdctl's `commandCtx`).
    async fn request<T>(
        &self,
        request: impl Future<Output = Result<T, CtlError>>,
    ) -> Result<T, CtlError> {
        match tokio::time::timeout(self.command_timeout, request).await {
            Ok(result) => result,
            Err(_) => Err(CtlError::DeadlineExceeded {
                endpoints: self.endpoints.join(","),
                command_timeout: self.command_timeout,
            }),
        }
    }

    /// `watch`: prints every response until the server ends the watch, as etcdctl's
    /// `printWatchCh`; only opening the stream is bounded by `--command-timeout`.
    async fn watch(&self, args: &WatchArgs, io: &mut CtlIo<'_>) -> Result<(), CtlError> {
        let req = watch_request(args)?;
        let client = self.connect(&self.endpoints).await?;
        let mut responses = self.request(client.watch(req)).await?;
        while let Some(resp) = responses.next().await? {
            if resp.created && !resp.canceled {
                // clientv3 consumes the created answer unless asked for it.
                continue;
            }
            if resp.canceled {
                writeln!(io.stderr, "watch was canceled ({})", watch_cancel_error(&resp))?;
            }
            if resp.is_progress_notify() {
                writeln!(io.stdout, "progress notify: {}", resp.header.revision)?;
            }
            match self.format {
                OutputFormat::Simple => io.stdout.write_all(&self.printer().watch(&resp))?,
                OutputFormat::Json => writeln!(io.stdout, "{}", json::watch(&resp))?,
            }
            io.stdout.flush()?;
            if resp.canceled {
                break;
            }
        }
        Err(CtlError::WatchCanceled)
    }

    async fn put(&self, args: &PutArgs, io: &mut CtlIo<'_>) -> Result<(), CtlError> {
        let req = put_request(args, || read_value(&mut *io.stdin, STDIN_VALUE_BYTES_MAX))?;
        let client = self.connect(&self.endpoints).await?;
        let resp = self.request(client.put(req)).await?;
        match self.format {
            OutputFormat::Simple => io.stdout.write_all(&self.printer().put(&resp))?,
            OutputFormat::Json => writeln!(io.stdout, "{}", json::put(&resp))?,
        }
        Ok(())
    }

    async fn get(&self, args: &GetArgs, io: &mut CtlIo<'_>) -> Result<(), CtlError> {
        let req = range_request(args)?;
        if args.print_value_only && self.format != OutputFormat::Simple {
            return Err(CtlError::bad_args("print-value-only is only for `--write-out=simple`"));
        }
        let client = self.connect(&self.endpoints).await?;
        let resp = self.request(client.range(req)).await?;
        let printer = SimplePrinter { value_only: args.print_value_only, ..self.printer() };
        match self.format {
            OutputFormat::Simple if args.count_only => {
                io.stdout.write_all(&printer.count(&resp))?
            }
            OutputFormat::Simple => io.stdout.write_all(&printer.get(&resp))?,
            OutputFormat::Json => writeln!(io.stdout, "{}", json::range(&resp))?,
        }
        Ok(())
    }

    async fn del(&self, args: &DelArgs, io: &mut CtlIo<'_>) -> Result<(), CtlError> {
        let req = delete_request(args)?;
        let client = self.connect(&self.endpoints).await?;
        let resp = self.request(client.delete_range(req)).await?;
        match self.format {
            OutputFormat::Simple => io.stdout.write_all(&self.printer().del(&resp))?,
            OutputFormat::Json => writeln!(io.stdout, "{}", json::delete_range(&resp))?,
        }
        Ok(())
    }

    async fn txn(&self, args: &TxnArgs, io: &mut CtlIo<'_>) -> Result<(), CtlError> {
        if !args.args.is_empty() {
            return Err(CtlError::bad_args("txn command does not accept argument"));
        }
        let interactive = args.interactive;
        let stdout = &mut *io.stdout;
        let req = txn_syntax::read_txn(&mut *io.stdin, &mut |prompt| {
            if interactive {
                writeln!(stdout, "{prompt}")?;
                stdout.flush()?;
            }
            Ok(())
        })?;
        let client = self.connect(&self.endpoints).await?;
        let resp = self.request(client.txn(req)).await?;
        match self.format {
            OutputFormat::Simple => io.stdout.write_all(&self.printer().txn(&resp))?,
            OutputFormat::Json => writeln!(io.stdout, "{}", json::txn(&resp))?,
        }
        Ok(())
    }

    async fn compaction(&self, args: &CompactionArgs, io: &mut CtlIo<'_>) -> Result<(), CtlError> {
        let req = compaction_request(args)?;
        let revision = req.revision;
        let client = self.connect(&self.endpoints).await?;
        self.request(client.compact(req)).await?;
        // etcdctl prints this line whatever the output format.
        writeln!(io.stdout, "compacted revision {revision}")?;
        Ok(())
    }

    /// Asks each endpoint for its status through one client; a failing endpoint is
    /// reported on standard error and the others are still printed (as etcdctl does).
    async fn endpoint_status(&self, io: &mut CtlIo<'_>) -> Result<(), CtlError> {
        let client = self.connect(&self.endpoints).await?;
        let mut rows = Vec::new();
        let mut failed = 0;
        for endpoint in &self.endpoints {
            match self.request(client.status(endpoint)).await {
                Ok(status) => rows.push(EndpointStatus { endpoint: endpoint.clone(), status }),
                Err(e) => {
                    failed += 1;
                    writeln!(io.stderr, "Failed to get the status of endpoint {endpoint} ({e})")?;
                }
            }
        }
        match self.format {
            OutputFormat::Simple => {
                io.stdout.write_all(output::endpoint_status(&rows).as_bytes())?
            }
            OutputFormat::Json => writeln!(io.stdout, "{}", json::endpoint_status(&rows))?,
        }
        if failed > 0 {
            return Err(CtlError::StatusFailed { failed });
        }
        Ok(())
    }

    /// Checks every endpoint at once, each through its own client. Simple output goes to
    /// standard error, as etcdctl writes it there.
    async fn endpoint_health(&self, io: &mut CtlIo<'_>) -> Result<(), CtlError> {
        let checks = self.endpoints.iter().map(|endpoint| self.check_health(endpoint)).collect();
        let rows = join_all(checks).await;
        match self.format {
            OutputFormat::Simple => {
                io.stderr.write_all(output::endpoint_health(&rows).as_bytes())?
            }
            OutputFormat::Json => writeln!(io.stdout, "{}", json::endpoint_health(&rows))?,
        }
        if rows.iter().any(|row| row.error.is_some()) {
            return Err(CtlError::Unhealthy);
        }
        Ok(())
    }

    async fn check_health(&self, endpoint: &str) -> EndpointHealth {
        let started = Instant::now();
        let endpoints = [endpoint.to_string()];
        let result = async {
            let client = self.connect(&endpoints).await?;
            let read = RangeRequest { key: HEALTH_KEY.to_vec(), ..RangeRequest::default() };
            self.request(client.range(read)).await
        }
        .await;
        EndpointHealth {
            endpoint: endpoint.to_string(),
            took: started.elapsed(),
            error: result.err().map(|e| e.to_string()),
        }
    }
}

/// Reads a put value from standard input, refusing more than `limit_bytes`.
fn read_value(stdin: &mut dyn BufRead, limit_bytes: u64) -> Result<Vec<u8>, CtlError> {
    let mut value = Vec::new();
    stdin
        .take(limit_bytes.saturating_add(1))
        .read_to_end(&mut value)
        .map_err(|source| CtlError::Stdin { source })?;
    if value.len() as u64 > limit_bytes {
        return Err(CtlError::bad_args(format!(
            "the value read from standard input exceeds {limit_bytes} bytes"
        )));
    }
    Ok(value)
}

/// Drives futures concurrently and returns their outputs in order (a minimal
/// `futures::join_all`, enough for one health check per endpoint).
async fn join_all<F: Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut pending: Vec<Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = pending.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut all_ready = true;
        for (future, output) in pending.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(cx) {
                    Poll::Ready(value) => *output = Some(value),
                    Poll::Pending => all_ready = false,
                }
            }
        }
        if all_ready { Poll::Ready(()) } else { Poll::Pending }
    })
    .await;
    outputs.into_iter().flatten().collect()
}

#[cfg(test)]
#[path = "commands_tests.rs"]
mod tests;
