//! What `suite` records about where it ran: cores, memory and CPU model (from `/proc`), the
//! load average, the commit (`git rev-parse`) and the date, so a figure in RESULTS.md can be
//! judged against its machine.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

/// The machine a suite ran on.
#[derive(Clone, Debug, PartialEq)]
pub struct Machine {
    /// Cores this process may use.
    pub cores: usize,
    /// The CPU model (`model name` of /proc/cpuinfo), if known.
    pub cpu_model: Option<String>,
    /// Total memory in bytes (`MemTotal` of /proc/meminfo), if known.
    pub memory_bytes: Option<u64>,
    /// The one-minute load average at the time of reading, if known.
    pub load_average: Option<f64>,
}

impl Machine {
    /// Reads the machine from `/proc`; what cannot be read is left unknown.
    pub fn read() -> Machine {
        let proc_file = |name: &str| std::fs::read_to_string(Path::new("/proc").join(name)).ok();
        Machine {
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu_model: proc_file("cpuinfo").as_deref().and_then(cpu_model),
            memory_bytes: proc_file("meminfo").as_deref().and_then(memory_bytes),
            load_average: proc_file("loadavg").as_deref().and_then(load_average),
        }
    }

    /// One line: `2 cores (AMD EPYC 7B13), 23.4 GiB RAM`.
    pub fn describe(&self) -> String {
        let model = self.cpu_model.as_deref().map_or_else(String::new, |m| format!(" ({m})"));
        let memory = self
            .memory_bytes
            .map_or_else(|| "unknown RAM".into(), |b| format!("{:.1} GiB RAM", b as f64 / GIB));
        format!("{} cores{model}, {memory}", self.cores)
    }
}

const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

/// The first `model name` of a /proc/cpuinfo text.
pub fn cpu_model(cpuinfo: &str) -> Option<String> {
    cpuinfo.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        (key.trim() == "model name").then(|| value.split_whitespace().collect::<Vec<_>>().join(" "))
    })
}

/// `MemTotal` of a /proc/meminfo text, in bytes.
pub fn memory_bytes(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let mut words = line.split_whitespace().skip(1);
    let kib: u64 = words.next()?.parse().ok()?;
    (words.next() == Some("kB")).then_some(kib * 1024)
}

/// The one-minute load average of a /proc/loadavg text.
pub fn load_average(loadavg: &str) -> Option<f64> {
    loadavg.split_whitespace().next()?.parse().ok()
}

/// The short commit of the repository holding `dir`, with ` (+ uncommitted changes)` when
/// the work tree differs from it; `unknown` outside a repository or without git.
pub fn commit(dir: &Path) -> String {
    let git = |args: &[&str]| {
        let output = Command::new("git")
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .ok()?;
        output.status.success().then(|| String::from_utf8_lossy(&output.stdout).trim().to_string())
    };
    match git(&["rev-parse", "--short", "HEAD"]) {
        Some(hash) if !hash.is_empty() => {
            let dirty = git(&["status", "--porcelain", "--untracked-files=no"])
                .is_some_and(|s| !s.is_empty());
            if dirty { format!("{hash} (+ uncommitted changes)") } else { hash }
        }
        _ => "unknown".into(),
    }
}

/// Now, as `YYYY-MM-DD HH:MM UTC`.
pub fn utc_now() -> String {
    let seconds = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    utc_text(seconds)
}

/// `seconds` since the Unix epoch as `YYYY-MM-DD HH:MM UTC`.
pub fn utc_text(seconds: u64) -> String {
    let days = (seconds / 86_400) as i64;
    let (year, month, day) = civil_from_days(days);
    let minute_of_day = (seconds % 86_400) / 60;
    format!("{year:04}-{month:02}-{day:02} {:02}:{:02} UTC", minute_of_day / 60, minute_of_day % 60)
}

/// The proleptic Gregorian date of a day count since 1970-01-01, by eras of 400 years
/// (146,097 days each) counted from 0000-03-01, so the leap day ends a year.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_from_march + 2) / 5 + 1) as u32;
    let month = if month_from_march < 10 { month_from_march + 3 } else { month_from_march - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month as u32, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_texts_are_parsed() {
        let cpuinfo = "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC  7B13 64-Core Processor\n\nprocessor\t: 1\nmodel name\t: other\n";
        assert_eq!(cpu_model(cpuinfo).as_deref(), Some("AMD EPYC 7B13 64-Core Processor"));
        assert_eq!(cpu_model("processor : 0\n"), None);
        assert_eq!(
            memory_bytes("MemTotal:       24535816 kB\nMemFree: 1 kB\n"),
            Some(24_535_816 * 1024)
        );
        assert_eq!(memory_bytes("MemFree: 1 kB\n"), None);
        assert_eq!(load_average("2.41 1.98 1.50 3/412 12345\n"), Some(2.41));
        assert_eq!(load_average(""), None);
    }

    #[test]
    fn the_machine_reads_as_one_line() {
        let m = Machine {
            cores: 2,
            cpu_model: Some("AMD EPYC".into()),
            memory_bytes: Some(24 * 1024 * 1024 * 1024),
            load_average: None,
        };
        assert_eq!(m.describe(), "2 cores (AMD EPYC), 24.0 GiB RAM");
        let bare = Machine { cpu_model: None, memory_bytes: None, ..m };
        assert_eq!(bare.describe(), "2 cores, unknown RAM");
        assert!(Machine::read().cores >= 1);
    }

    #[test]
    fn dates_are_utc_calendar_dates() {
        assert_eq!(utc_text(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc_text(951_782_400), "2000-02-29 00:00 UTC");
        assert_eq!(utc_text(1_709_164_800 + 3_600 * 13 + 60 * 7), "2024-02-29 13:07 UTC");
        assert_eq!(utc_text(4_102_444_799), "2099-12-31 23:59 UTC");
    }

    #[test]
    fn outside_a_repository_the_commit_is_unknown() {
        assert_eq!(commit(Path::new("/")), "unknown");
    }
}
