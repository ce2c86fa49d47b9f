//! What every server process a scenario starts (an `atoll` node, an etcd member) has in
//! common: a guard that kills and reaps it on drop (at the end, on an error, or when ctrl-c
//! drops the scenario), its exit polled with a deadline, and the wait until the processes
//! serve, which fails at once with the exit status and log tail of a member that died
//! instead of waiting out the deadline.

use super::node::log_tail;
use anyhow::{Context as _, bail};
use std::future::Future;
use std::path::PathBuf;
use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

/// How often an exit is polled for.
const EXIT_POLL: Duration = Duration::from_millis(2);

/// A child process, killed and reaped when dropped if still running.
#[derive(Debug)]
pub struct ChildGuard {
    child: Child,
}

impl ChildGuard {
    /// Guards `child`.
    pub fn new(child: Child) -> ChildGuard {
        ChildGuard { child }
    }

    /// Its process ID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its exit status, if it has exited (without waiting).
    pub fn exited(&mut self) -> anyhow::Result<Option<ExitStatus>> {
        self.child.try_wait().context("cannot poll a child process")
    }

    /// SIGKILL.
    pub fn kill(&mut self) -> anyhow::Result<()> {
        self.child.kill().context("cannot kill the process")
    }

    /// SIGTERM: a graceful shutdown.
    pub fn terminate(&mut self) -> anyhow::Result<()> {
        let pid = rustix::process::Pid::from_child(&self.child);
        rustix::process::kill_process(pid, rustix::process::Signal::TERM)
            .context("cannot send SIGTERM to the process")
    }

    /// Polls for the exit (with a deadline; never a blocking wait on the runtime).
    pub async fn wait_exit(&mut self, timeout: Duration) -> anyhow::Result<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.exited()? {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                bail!("the process did not exit within {timeout:?}");
            }
            tokio::time::sleep(EXIT_POLL).await;
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// One process that [`wait_serving`] watches: its name in messages, the process, its log.
pub struct Watched<'a> {
    /// `n1`, `e2`...
    pub name: String,
    /// The process.
    pub process: &'a mut ChildGuard,
    /// Where its stderr goes, quoted when it dies.
    pub log: PathBuf,
}

impl<'a> Watched<'a> {
    /// Member `name`'s `process`, whose stderr goes to `log`.
    pub fn new(name: String, process: &'a mut ChildGuard, log: PathBuf) -> Watched<'a> {
        Watched { name, process, log }
    }
}

/// How long and how often [`wait_serving`] probes.
#[derive(Clone, Copy, Debug)]
pub struct ServeWait {
    /// Give up after this long.
    pub timeout: Duration,
    /// Pause between two probes.
    pub poll: Duration,
}

/// Probes until `probe` succeeds: only then does `what` (a cluster, an etcd) serve. Before
/// each probe every member is checked, so a member that exited fails the wait at once with its
/// status and the end of its log, instead of after the whole timeout.
pub async fn wait_serving<F, Fut>(
    what: &str,
    members: &mut [Watched<'_>],
    wait: ServeWait,
    mut probe: F,
) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let started = Instant::now();
    let mut last_error = String::from("no probe answered");
    while started.elapsed() < wait.timeout {
        for member in members.iter_mut() {
            if let Some(status) = member.process.exited()? {
                bail!(
                    "{what}: member {} exited ({status}) before serving; {}",
                    member.name,
                    log_tail(&member.log)
                );
            }
        }
        match probe().await {
            Ok(()) => return Ok(()),
            Err(e) => last_error = format!("{e:#}"),
        }
        tokio::time::sleep(wait.poll).await;
    }
    let first = members.first().map(|m| format!("; member {}: {}", m.name, log_tail(&m.log)));
    bail!(
        "{what} did not serve within {:?} (last probe: {last_error}){}",
        wait.timeout,
        first.unwrap_or_default()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};

    fn must_spawn(script: &str) -> ChildGuard {
        let child = Command::new("/bin/sh")
            .args(["-c", script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("sh");
        ChildGuard::new(child)
    }

    #[tokio::test]
    async fn a_member_that_exits_fails_the_wait_at_once_with_its_status_and_log() {
        let log =
            std::env::temp_dir().join(format!("atoll-bench-test-wait-{}", std::process::id()));
        std::fs::write(&log, "starting\nfatal: cannot bind port\n").expect("log");
        let mut alive = must_spawn("exec sleep 60");
        let mut dead = must_spawn("exit 3");
        dead.wait_exit(Duration::from_secs(10)).await.expect("exits");
        let alive_pid = alive.pid();
        let mut members = [
            Watched { name: "n1".into(), process: &mut alive, log: log.clone() },
            Watched { name: "n2".into(), process: &mut dead, log: log.clone() },
        ];
        // A long timeout: the wait must end because n2 exited, not because time ran out.
        let wait = ServeWait { timeout: Duration::from_secs(600), poll: Duration::from_millis(5) };
        let started = Instant::now();
        let err =
            wait_serving("the cluster", &mut members, wait, || async { anyhow::bail!("not yet") })
                .await
                .expect_err("n2 died");
        assert!(started.elapsed() < Duration::from_secs(30));
        let text = err.to_string();
        assert!(text.contains("member n2 exited (exit status: 3)"), "{text}");
        assert!(text.contains("fatal: cannot bind port") && !text.contains('\n'), "{text}");
        drop(members);
        drop(alive);
        let stat = std::fs::read_to_string(format!("/proc/{alive_pid}/stat")).unwrap_or_default();
        assert!(stat.is_empty(), "the guard killed and reaped it: {stat}");
        let _ = std::fs::remove_file(log);
    }

    #[tokio::test]
    async fn serving_ends_the_wait_and_a_timeout_names_the_last_probe_error() {
        let mut alive = must_spawn("exec sleep 60");
        let log = PathBuf::from("/nonexistent/log");
        let mut members = [Watched { name: "e1".into(), process: &mut alive, log }];
        let quick =
            ServeWait { timeout: Duration::from_millis(50), poll: Duration::from_millis(5) };
        let mut probes = 0;
        wait_serving("etcd", &mut members, quick, || {
            probes += 1;
            let answer = if probes < 3 { Err(anyhow::anyhow!("refused")) } else { Ok(()) };
            async move { answer }
        })
        .await
        .expect("serves on the third probe");
        let err = wait_serving("etcd", &mut members, quick, || async {
            anyhow::bail!("connection refused")
        })
        .await
        .expect_err("never serves");
        assert!(err.to_string().contains("last probe: connection refused"), "{err}");
    }
}
