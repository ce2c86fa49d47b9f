//! What a process costs, read from Linux's `/proc`: CPU time from `/proc/<pid>/stat`
//! (utime + stime, in clock ticks, over all its threads) and resident memory from
//! `/proc/<pid>/status` (`VmRSS`). Parsing is pure, so it is tested on sample texts.

use anyhow::{Context as _, anyhow};
use std::time::Duration;

/// Field number (1-based, as in proc(5)) of utime; stime follows it.
const UTIME_FIELD: usize = 14;
/// The first field after the command name: the state.
const STATE_FIELD: usize = 3;

/// utime + stime of the text of `/proc/<pid>/stat`, in clock ticks. The command name
/// (field 2) is in parentheses and may itself hold spaces and parentheses, so fields are
/// counted after the last `)`.
pub fn cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(UTIME_FIELD - STATE_FIELD);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// `VmRSS` of the text of `/proc/<pid>/status`, in KiB.
pub fn rss_kib(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let mut words = line["VmRSS:".len()..].split_whitespace();
    let kib = words.next()?.parse().ok()?;
    (words.next() == Some("kB")).then_some(kib)
}

/// CPU use between two samples of `cpu_ticks`, `window` apart, in % of one core.
pub fn cpu_percent(before: u64, after: u64, ticks_per_s: u64, window: Duration) -> f64 {
    let seconds = window.as_secs_f64();
    if seconds <= 0.0 || ticks_per_s == 0 {
        return 0.0;
    }
    after.saturating_sub(before) as f64 / ticks_per_s as f64 / seconds * 100.0
}

/// Clock ticks per second of `/proc`'s CPU times (`getconf CLK_TCK`).
pub fn ticks_per_second() -> u64 {
    rustix::param::clock_ticks_per_second()
}

/// The CPU ticks of process `pid` now.
pub fn read_cpu_ticks(pid: u32) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/stat");
    let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    cpu_ticks(&text).ok_or_else(|| anyhow!("{path} has no utime and stime fields"))
}

/// The resident memory of process `pid` now, in KiB.
pub fn read_rss_kib(pid: u32) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    rss_kib(&text).ok_or_else(|| anyhow!("{path} has no VmRSS line in kB"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real line of /proc/<pid>/stat, with utime 1234 and stime 56.
    const STAT: &str = "4242 (atoll) S 1 4242 4242 0 -1 4194560 5730 0 0 0 1234 56 0 0 20 0 \
                        9 0 12345 123456789 6789 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 0 \
                        17 1 0 0 0 0 0";

    #[test]
    fn cpu_ticks_are_utime_plus_stime_even_with_a_strange_command_name() {
        assert_eq!(cpu_ticks(STAT), Some(1290));
        let odd = STAT.replace("(atoll)", "(my (odd) name) x)");
        assert_eq!(cpu_ticks(&odd), Some(1290));
        assert_eq!(cpu_ticks("4242 (atoll) S 1 2"), None, "truncated");
        assert_eq!(cpu_ticks("no parenthesis"), None);
    }

    #[test]
    fn rss_is_read_from_the_vmrss_line() {
        let status = "Name:\tatoll\nVmPeak:\t  99999 kB\nVmRSS:\t   27316 kB\nThreads:\t9\n";
        assert_eq!(rss_kib(status), Some(27_316));
        assert_eq!(rss_kib("Name:\tkthreadd\n"), None, "kernel threads have none");
        assert_eq!(rss_kib("VmRSS:\t12 pages\n"), None);
    }

    #[test]
    fn cpu_percent_is_of_one_core_over_the_window() {
        let second = Duration::from_secs(1);
        assert_eq!(cpu_percent(100, 150, 100, second), 50.0);
        assert_eq!(cpu_percent(0, 300, 100, Duration::from_secs(30)), 10.0);
        assert_eq!(cpu_percent(0, 400, 100, second), 400.0, "several cores");
        assert_eq!(cpu_percent(150, 100, 100, second), 0.0, "never negative");
        assert_eq!(cpu_percent(0, 100, 100, Duration::ZERO), 0.0);
    }

    #[test]
    fn this_process_can_be_read() {
        let me = std::process::id();
        assert!(read_rss_kib(me).expect("rss") > 0);
        read_cpu_ticks(me).expect("ticks");
        assert!(ticks_per_second() > 0);
        assert!(read_cpu_ticks(u32::MAX).expect_err("no such pid").to_string().contains("/proc/"));
    }
}
