//! Compaction settings: etcd's auto-compaction flags (`--auto-compaction-mode`,
//! `--auto-compaction-retention`) and batch pacing flags (3.6's `--compaction-batch-limit`,
//! `--compaction-sleep-interval`), plus Atoll's deferral under load (decision D17).

use super::{ConfigError, err};
use crate::units::parse_duration;
use atoll_shard::config::CompactorConfig;
use atoll_shard::core::{AutoCompactionConfig, Retention};
use std::time::Duration;

/// The compaction flags; each also an `ATOLL_*` variable and a config-file key.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct CompactionFlags {
    /// `periodic` (keep a duration of history) or `revision` (keep a number of revisions);
    /// default periodic, as etcd.
    #[arg(long, env = "ATOLL_AUTO_COMPACTION_MODE")]
    pub auto_compaction_mode: Option<String>,
    /// How much history auto-compaction keeps: periodic takes a duration (`30m`, `10h`) or
    /// a bare number of hours; revision takes a number of revisions. 0 (default) is off.
    #[arg(long, env = "ATOLL_AUTO_COMPACTION_RETENTION")]
    pub auto_compaction_retention: Option<String>,
    /// A due auto-compaction waits while its shard serves more requests per second than
    /// this (default 5000; 0 never waits).
    #[arg(long, env = "ATOLL_AUTO_COMPACTION_BUSY_REQUESTS_PER_SECOND")]
    pub auto_compaction_busy_requests_per_second: Option<u64>,
    /// The longest a due auto-compaction waits for a busy shard (default 10m).
    #[arg(long, env = "ATOLL_AUTO_COMPACTION_MAX_DEFERRAL")]
    pub auto_compaction_max_deferral: Option<String>,
    /// Most versions one compaction batch removes (default 1000, etcd's).
    #[arg(long, env = "ATOLL_COMPACTION_BATCH_LIMIT")]
    pub compaction_batch_limit: Option<usize>,
    /// Pause between two compaction batches (default 10ms, etcd's).
    #[arg(long, env = "ATOLL_COMPACTION_SLEEP_INTERVAL")]
    pub compaction_sleep_interval: Option<String>,
}

/// The same settings as read from the config file.
#[derive(Debug, Default)]
pub(super) struct CompactionFile {
    pub(super) auto_compaction_mode: Option<String>,
    pub(super) auto_compaction_retention: Option<String>,
    pub(super) auto_compaction_busy_requests_per_second: Option<u64>,
    pub(super) auto_compaction_max_deferral: Option<String>,
    pub(super) compaction_batch_limit: Option<usize>,
    pub(super) compaction_sleep_interval: Option<String>,
}

/// The resolved compaction settings of a node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompactionConfig {
    /// What auto-compaction keeps; `None` is off (default).
    pub retention: Option<Retention>,
    /// Deferral threshold in requests per second per shard (default 5000).
    pub busy_requests_per_second: u64,
    /// Longest deferral (default 10 min).
    pub max_deferral: Duration,
    /// Versions per deletion batch (default 1000).
    pub batch_limit: usize,
    /// Pause between batches (default 10 ms).
    pub sleep_interval: Duration,
}

impl Default for CompactionConfig {
    fn default() -> Self {
        let shard = CompactorConfig::default();
        CompactionConfig {
            retention: shard.auto.retention,
            busy_requests_per_second: shard.auto.busy_requests_per_second,
            max_deferral: shard.auto.max_deferral,
            batch_limit: shard.batch_versions_max,
            sleep_interval: shard.sleep_interval,
        }
    }
}

impl CompactionConfig {
    /// Flags over the file over the defaults.
    pub(super) fn resolve(
        flags: &CompactionFlags,
        file: CompactionFile,
    ) -> Result<CompactionConfig, ConfigError> {
        let d = CompactionConfig::default();
        let mode = flags.auto_compaction_mode.clone().or(file.auto_compaction_mode);
        let retention = flags.auto_compaction_retention.clone().or(file.auto_compaction_retention);
        let duration = |name: &str, v: Option<String>, default: Duration| match v {
            Some(t) => parse_duration(&t).map_err(|e| err(format!("--{name}: {e}"))),
            None => Ok(default),
        };
        Ok(CompactionConfig {
            retention: parse_retention(mode.as_deref(), retention.as_deref())?,
            busy_requests_per_second: flags
                .auto_compaction_busy_requests_per_second
                .or(file.auto_compaction_busy_requests_per_second)
                .unwrap_or(d.busy_requests_per_second),
            max_deferral: duration(
                "auto-compaction-max-deferral",
                flags.auto_compaction_max_deferral.clone().or(file.auto_compaction_max_deferral),
                d.max_deferral,
            )?,
            batch_limit: flags
                .compaction_batch_limit
                .or(file.compaction_batch_limit)
                .unwrap_or(d.batch_limit),
            sleep_interval: duration(
                "compaction-sleep-interval",
                flags.compaction_sleep_interval.clone().or(file.compaction_sleep_interval),
                d.sleep_interval,
            )?,
        })
    }

    /// Checks the settings.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.batch_limit == 0 {
            return Err(err("--compaction-batch-limit must be at least 1"));
        }
        Ok(())
    }

    /// The shard compactor's configuration.
    pub fn compactor_config(&self) -> CompactorConfig {
        CompactorConfig {
            batch_versions_max: self.batch_limit,
            sleep_interval: self.sleep_interval,
            auto: AutoCompactionConfig {
                retention: self.retention,
                busy_requests_per_second: self.busy_requests_per_second,
                max_deferral: self.max_deferral,
            },
        }
    }
}

/// etcd's rules: periodic retention is a duration, or a bare number of hours; revision
/// retention a number of revisions; 0 turns auto-compaction off.
fn parse_retention(
    mode: Option<&str>,
    text: Option<&str>,
) -> Result<Option<Retention>, ConfigError> {
    let periodic = match mode.map(str::trim) {
        None | Some("periodic") => true,
        Some("revision") => false,
        Some(other) => {
            return Err(err(format!("--auto-compaction-mode '{other}': use periodic or revision")));
        }
    };
    let Some(text) = text.map(str::trim) else { return Ok(None) };
    let retention = if periodic {
        let period = match text.parse::<u64>() {
            Ok(hours) => Duration::from_secs(hours.saturating_mul(3600)),
            Err(_) => parse_duration(text).map_err(|_| {
                err(format!(
                    "--auto-compaction-retention '{text}': periodic mode takes a duration such \
                     as 30m or 10h, or a number of hours"
                ))
            })?,
        };
        (!period.is_zero()).then_some(Retention::Periodic(period))
    } else {
        let revisions = text.parse::<u64>().map_err(|_| {
            err(format!(
                "--auto-compaction-retention '{text}': revision mode takes a number of \
                 revisions, such as 1000"
            ))
        })?;
        (revisions > 0).then_some(Retention::Revisions(revisions))
    };
    Ok(retention)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn retention(mode: &str, text: &str) -> Result<Option<Retention>, String> {
        parse_retention(Some(mode), Some(text)).map_err(|e| e.to_string())
    }

    #[test]
    fn retention_follows_etcds_rules() {
        let hours = |h: u64| Ok(Some(Retention::Periodic(Duration::from_secs(h * 3600))));
        assert_eq!(retention("periodic", "1"), hours(1));
        assert_eq!(retention("periodic", "10h"), hours(10));
        assert_eq!(
            retention("periodic", "30m"),
            Ok(Some(Retention::Periodic(Duration::from_secs(1800))))
        );
        assert_eq!(retention("periodic", "0"), Ok(None));
        assert_eq!(retention("revision", "1000"), Ok(Some(Retention::Revisions(1000))));
        assert_eq!(retention("revision", "0"), Ok(None));
        assert_eq!(parse_retention(None, None).map_err(|e| e.to_string()), Ok(None));
        assert_eq!(
            parse_retention(None, Some("2")).map_err(|e| e.to_string()),
            hours(2),
            "periodic is the default mode"
        );
    }

    #[test]
    fn bad_retention_and_mode_are_one_line_errors() {
        assert_eq!(
            retention("revision", "1h"),
            Err("--auto-compaction-retention '1h': revision mode takes a number of revisions, \
                 such as 1000"
                .into())
        );
        assert_eq!(
            retention("periodic", "soon"),
            Err("--auto-compaction-retention 'soon': periodic mode takes a duration such as \
                 30m or 10h, or a number of hours"
                .into())
        );
        assert_eq!(
            retention("daily", "1"),
            Err("--auto-compaction-mode 'daily': use periodic or revision".into())
        );
    }
}
