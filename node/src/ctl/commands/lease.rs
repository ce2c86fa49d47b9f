//! `lease grant | revoke | timetolive | list | keep-alive`, as etcdctl 3.4's
//! `ctlv3/command/lease_command.go`: its argument checks, messages, exit codes and output.
//!
//! `keep-alive` without `--once` renews the lease every third of its TTL (clientv3's
//! schedule) with one native request each (decision D16), printing each renewal, until the
//! lease is gone.

use super::{CtlIo, Session};
use crate::ctl::args::{LeaseCommand, OutputFormat};
use crate::ctl::client::{Connector, KvClient};
use crate::ctl::error::CtlError;
use crate::ctl::json;
use crate::ctl::requests::parse_lease_id;
use atoll_proto::lease::*;
use std::time::Duration;

/// The shortest pause between two renewals of a streaming keep-alive (clientv3 waits
/// TTL/3, at least 500 ms).
const KEEPALIVE_PAUSE_MIN: Duration = Duration::from_millis(500);

impl<C: Connector> Session<'_, C> {
    pub(super) async fn lease(
        &self,
        cmd: &LeaseCommand,
        io: &mut CtlIo<'_>,
    ) -> Result<(), CtlError> {
        match cmd {
            LeaseCommand::Grant { args } => self.lease_grant(args, io).await,
            LeaseCommand::Revoke { args } => self.lease_revoke(args, io).await,
            LeaseCommand::Timetolive { args, keys } => self.lease_ttl(args, *keys, io).await,
            LeaseCommand::List => self.lease_list(io).await,
            LeaseCommand::KeepAlive { args, once } => self.lease_keep_alive(args, *once, io).await,
        }
    }

    async fn lease_grant(&self, args: &[String], io: &mut CtlIo<'_>) -> Result<(), CtlError> {
        let [ttl] = args else {
            return Err(CtlError::bad_args("lease grant command needs TTL argument"));
        };
        let ttl: i64 = ttl.parse().map_err(|_| {
            CtlError::bad_args(format!(
                "bad TTL (strconv.ParseInt: parsing {ttl:?}: invalid syntax)"
            ))
        })?;
        let client = self.connect(&self.endpoints).await?;
        let resp = self.request(client.lease_grant(LeaseGrantRequest { ttl, id: 0 })).await;
        let resp = resp.map_err(|e| failed("failed to grant lease", e))?;
        match self.format {
            OutputFormat::Simple => {
                writeln!(io.stdout, "lease {:016x} granted with TTL({}s)", resp.id, resp.ttl)?
            }
            OutputFormat::Json => writeln!(io.stdout, "{}", json::lease_grant(&resp))?,
        }
        Ok(())
    }

    async fn lease_revoke(&self, args: &[String], io: &mut CtlIo<'_>) -> Result<(), CtlError> {
        let [id] = args else {
            return Err(CtlError::bad_args("lease revoke command needs 1 argument"));
        };
        let id = lease_id_arg(id)?;
        let client = self.connect(&self.endpoints).await?;
        let resp = self.request(client.lease_revoke(LeaseRevokeRequest { id })).await;
        let resp = resp.map_err(|e| failed("failed to revoke lease", e))?;
        match self.format {
            OutputFormat::Simple => writeln!(io.stdout, "lease {id:016x} revoked")?,
            OutputFormat::Json => writeln!(io.stdout, "{}", json::lease_revoke(&resp))?,
        }
        Ok(())
    }

    async fn lease_ttl(
        &self,
        args: &[String],
        keys: bool,
        io: &mut CtlIo<'_>,
    ) -> Result<(), CtlError> {
        let [id] = args else {
            return Err(CtlError::bad_args("lease timetolive command needs lease ID as argument"));
        };
        let id = lease_id_arg(id)?;
        let client = self.connect(&self.endpoints).await?;
        let resp =
            self.request(client.lease_time_to_live(LeaseTimeToLiveRequest { id, keys })).await?;
        match self.format {
            OutputFormat::Simple => writeln!(io.stdout, "{}", time_to_live_line(&resp, keys))?,
            OutputFormat::Json => writeln!(io.stdout, "{}", json::lease_time_to_live(&resp))?,
        }
        Ok(())
    }

    async fn lease_list(&self, io: &mut CtlIo<'_>) -> Result<(), CtlError> {
        let client = self.connect(&self.endpoints).await?;
        let resp = self.request(client.lease_leases(LeaseLeasesRequest {})).await;
        let resp = resp.map_err(|e| failed("failed to list leases", e))?;
        match self.format {
            OutputFormat::Simple => {
                writeln!(io.stdout, "found {} leases", resp.ids.len())?;
                for id in &resp.ids {
                    writeln!(io.stdout, "{id:016x}")?;
                }
            }
            OutputFormat::Json => writeln!(io.stdout, "{}", json::lease_leases(&resp))?,
        }
        Ok(())
    }

    async fn lease_keep_alive(
        &self,
        args: &[String],
        once: bool,
        io: &mut CtlIo<'_>,
    ) -> Result<(), CtlError> {
        let [id] = args else {
            return Err(CtlError::bad_args("lease keep-alive command needs lease ID as argument"));
        };
        let id = lease_id_arg(id)?;
        let client = self.connect(&self.endpoints).await?;
        loop {
            let resp = self.request(client.lease_keep_alive(LeaseKeepAliveRequest { id })).await?;
            if resp.ttl <= 0 {
                if once {
                    return Err(CtlError::LeaseLost { message: LEASE_NOT_FOUND.into() });
                }
                // etcdctl's streaming keep-alive ends with this line and exit code 0.
                writeln!(io.stdout, "lease {id:016x} expired or revoked.")?;
                return Ok(());
            }
            match self.format {
                OutputFormat::Simple => {
                    writeln!(io.stdout, "lease {id:016x} keepalived with TTL({})", resp.ttl)?
                }
                OutputFormat::Json => writeln!(io.stdout, "{}", json::lease_keep_alive(&resp))?,
            }
            io.stdout.flush()?;
            if once {
                return Ok(());
            }
            let pause = Duration::from_secs(u64::try_from(resp.ttl).unwrap_or(1)) / 3;
            tokio::time::sleep(pause.max(KEEPALIVE_PAUSE_MIN)).await;
        }
    }
}

/// etcd's text for a missing lease (clientv3's `KeepAliveOnce` answers it for TTL 0).
const LEASE_NOT_FOUND: &str = "etcdserver: requested lease not found";

/// etcdctl wraps server errors of some lease commands: `failed to grant lease (<error>)`.
fn failed(what: &str, e: CtlError) -> CtlError {
    match e {
        CtlError::Request { message } => {
            CtlError::Request { message: format!("{what} ({message})") }
        }
        other => other,
    }
}

/// A lease ID argument in hexadecimal, with etcdctl's message when it is not one.
fn lease_id_arg(text: &str) -> Result<i64, CtlError> {
    parse_lease_id(text).map_err(|_| {
        CtlError::bad_args(format!(
            "bad lease ID arg (strconv.ParseInt: parsing {text:?}: invalid syntax), expecting ID in Hex"
        ))
    })
}

/// etcdctl's simple `timetolive` line.
pub(crate) fn time_to_live_line(resp: &LeaseTimeToLiveResponse, keys: bool) -> String {
    if resp.ttl == -1 {
        return format!("lease {:016x} already expired", resp.id);
    }
    let mut line = format!(
        "lease {:016x} granted with TTL({}s), remaining({}s)",
        resp.id, resp.granted_ttl, resp.ttl
    );
    if keys {
        let names: Vec<String> =
            resp.keys.iter().map(|k| String::from_utf8_lossy(k).into_owned()).collect();
        line.push_str(&format!(", attached keys([{}])", names.join(" ")));
    }
    line
}
