//! `watch-fan-out`: how fast does one write reach many watchers? N watchers (10,000 by
//! default) watch one prefix, spread over S streams (100) on C connections (10); a writer puts
//! keys under the prefix at a target rate (1,000 events/s, open loop) for the phase's
//! duration. Every event is timed from the start of its write to its arrival at each watcher
//! (HdrHistogram: p50, p99, max) and every watcher's events are checked: a write it missed
//! below the last revision it received is **lost** (must be 0; the scenario fails otherwise),
//! as is a duplicate, a reordering or a cancel. Watchers still behind when the drain deadline
//! passes are reported, not failed: slowness is a figure, not an error. Measured on Atoll
//! natively, through its etcd gRPC gateway, and on etcd 3.4, in alternating rounds.

use super::tally::{Delivery, judge};
use super::watchers::{Pace, StreamOutcome, StreamPlan};
use super::writer::WriterReport;
use super::{Contender, WATCHERS_PER_STREAM_MAX, check_deliveries, each_round, run_phase};
use crate::compare::summary::{System, thousands};
use crate::recorder::latency_histogram;
use crate::report::LatencySummary;
use crate::scenario::context::ScenarioContext;
use crate::scenario::emit::{Summary, median, merged};
use anyhow::bail;
use serde_json::json;
use std::fmt::Write as _;
use std::time::Duration;

/// The scenario's name.
pub const NAME: &str = "watch-fan-out";
/// Watchers, streams and connections by default: many watchers of one prefix, as the
/// Kubernetes API servers' informers are, about 100 per stream.
const WATCHERS_DEFAULT: u64 = 10_000;
const STREAMS_DEFAULT: u64 = 100;
const CONNECTIONS_DEFAULT: u64 = 10;
/// The same under `--smoke`.
const WATCHERS_SMOKE: u64 = 200;
const STREAMS_SMOKE: u64 = 10;
const CONNECTIONS_SMOKE: u64 = 2;
/// Events written per second by default, and under `--smoke`.
const RATE_DEFAULT: f64 = 1_000.0;
const RATE_SMOKE: f64 = 100.0;
/// How long the watchers may take to receive the last write after the writer ends.
const DRAIN_DEFAULT: Duration = Duration::from_secs(30);
const DRAIN_SMOKE: Duration = Duration::from_secs(10);

/// What one run is made of.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Settings {
    /// Watchers of the prefix.
    pub watchers: u64,
    /// Streams they are spread over.
    pub streams: u64,
    /// Connections the streams are spread over.
    pub connections: u64,
    /// Target writes per second.
    pub rate: f64,
    /// Writes in all: the rate times the phase's duration.
    pub writes: u64,
    /// How long the watchers may take to catch up after the last write.
    pub drain: Duration,
}

impl Settings {
    /// The settings of `ctx`'s flags, checked against each other.
    pub fn from_ctx(ctx: &ScenarioContext) -> anyhow::Result<Settings> {
        let w = &ctx.watch;
        let pick = |given: Option<u64>, normal, smoke| {
            given.unwrap_or(if ctx.smoke { smoke } else { normal })
        };
        let watchers = pick(w.watchers, WATCHERS_DEFAULT, WATCHERS_SMOKE);
        let streams = pick(w.watch_streams, STREAMS_DEFAULT, STREAMS_SMOKE).min(watchers);
        let connections =
            pick(w.watch_connections, CONNECTIONS_DEFAULT, CONNECTIONS_SMOKE).min(streams);
        if watchers.div_ceil(streams) > WATCHERS_PER_STREAM_MAX {
            bail!(
                "--watchers {watchers} over --watch-streams {streams} puts {} on a stream; Atoll \
                 allows {WATCHERS_PER_STREAM_MAX}: raise --watch-streams",
                watchers.div_ceil(streams)
            );
        }
        let rate = w.event_rate.unwrap_or(if ctx.smoke { RATE_SMOKE } else { RATE_DEFAULT });
        let writes = ((rate * ctx.duration.as_secs_f64()).ceil() as u64).max(1);
        let drain = if ctx.smoke { DRAIN_SMOKE } else { DRAIN_DEFAULT };
        Ok(Settings { watchers, streams, connections, rate, writes, drain })
    }

    /// The streams: watchers spread evenly, streams round-robin over the connections.
    pub fn plans(&self) -> Vec<StreamPlan> {
        (0..self.streams)
            .map(|s| StreamPlan {
                label: "fan-out",
                connection: (s % self.connections) as usize,
                measured: (self.watchers / self.streams
                    + u64::from(s < self.watchers % self.streams))
                    as usize,
                slow: 0,
                measured_prev_kv: false,
                pace: Pace::Fast,
            })
            .collect()
    }
}

/// One round on one system.
struct Sample {
    system: System,
    latency: LatencySummary,
    delivery: Delivery,
    writer: WriterReport,
    errors: Vec<String>,
}

/// Runs the scenario; returns its table for `suite`.
pub async fn run_scenario(ctx: &ScenarioContext) -> anyhow::Result<Summary> {
    let settings = Settings::from_ctx(ctx)?;
    let connections = settings.connections as usize;
    let samples = each_round(ctx, NAME, connections, async |c: &Contender, round| {
        let prefix = format!("/bench/watch/{round}/");
        let (writes, rate, drain) = (settings.writes, settings.rate, settings.drain);
        let phase = run_phase(c, &prefix, writes, rate, &settings.plans(), drain).await?;
        let sample = sample(c.system, &phase.streams, &phase.acked, phase.writer)?;
        emit_sample(ctx, c, &settings, round, &sample)?;
        Ok(sample)
    })
    .await?;
    let text = table(&settings, ctx.runs(1, 1), &samples);
    eprintln!("{text}");
    let results = samples.iter().map(|s| (s.system, &s.delivery, s.errors.as_slice()));
    check_deliveries("watchers", results)?;
    Ok(Summary { scenario: NAME.into(), text, plots: Vec::new() })
}

fn sample(
    system: System,
    outcomes: &[StreamOutcome],
    acked: &[(u64, i64)],
    writer: WriterReport,
) -> anyhow::Result<Sample> {
    let mut latency = latency_histogram()?;
    for o in outcomes {
        latency.add(&o.latency).map_err(|e| anyhow::anyhow!("cannot merge histograms: {e:?}"))?;
    }
    let delivery = judge(outcomes.iter().flat_map(|o| o.tallies.iter()), acked);
    let errors = outcomes.iter().filter_map(|o| o.error.clone()).collect();
    Ok(Sample {
        system,
        latency: LatencySummary::from_histogram(&latency),
        delivery,
        writer,
        errors,
    })
}

fn emit_sample(
    ctx: &ScenarioContext,
    c: &Contender,
    settings: &Settings,
    round: u64,
    s: &Sample,
) -> anyhow::Result<()> {
    let d = &s.delivery;
    let params = ctx.params(merged(
        json!({
            "round": round + 1,
            "watchers": settings.watchers,
            "streams": settings.streams,
            "connections": settings.connections,
            "rate_target": settings.rate,
            "written_per_s": crate::report::round3(s.writer.acked_per_s()),
            "writes_acked": s.writer.acked,
            "writes_failed": s.writer.failed,
            "deliveries": d.received,
            "lost": d.lost,
            "undelivered": d.undelivered,
            "watchers_behind": d.watchers_behind,
            "duplicates": d.duplicates,
            "out_of_order": d.out_of_order,
            "canceled": d.canceled,
            "stream_errors": s.errors,
            "latency_from": "write start",
        }),
        c.params(ctx),
    ));
    for (metric, value, unit) in [
        ("delivery_p50_us", s.latency.p50 as f64, "us"),
        ("delivery_p99_us", s.latency.p99 as f64, "us"),
        ("delivery_max_us", s.latency.max as f64, "us"),
        ("events_lost", d.lost as f64, "events"),
        ("watchers_behind", d.watchers_behind as f64, "watchers"),
    ] {
        ctx.emit(NAME, metric, value, unit, params.clone())?;
    }
    Ok(())
}

/// The Markdown table of medians over rounds per system, with the p99 ratio to etcd.
fn table(settings: &Settings, rounds: u64, samples: &[Sample]) -> String {
    let mut out = format!(
        "{} watchers on one prefix over {} streams and {} connections, writer at {} events/s \
         for {} writes, {rounds} round(s), medians over rounds; latency from the start of the \
         write to the event's arrival at each watcher\n\n| system | events/s written | \
         p50 ms | p99 ms | max ms | lost | watchers behind at the end | p99 ÷ etcd |\n| --- | \
         ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
        thousands(settings.watchers as f64),
        settings.streams,
        settings.connections,
        thousands(settings.rate),
        thousands(settings.writes as f64)
    );
    let p99_of = |system: System| {
        let of: Vec<f64> =
            samples.iter().filter(|s| s.system == system).map(|s| s.latency.p99 as f64).collect();
        (!of.is_empty()).then(|| median(&of))
    };
    let etcd_p99 = p99_of(System::Etcd);
    for system in [System::Atoll, System::AtollGrpc, System::Etcd] {
        let mine: Vec<&Sample> = samples.iter().filter(|s| s.system == system).collect();
        if mine.is_empty() {
            continue;
        }
        let med =
            |f: &dyn Fn(&Sample) -> f64| median(&mine.iter().map(|s| f(s)).collect::<Vec<_>>());
        let p99 = med(&|s| s.latency.p99 as f64);
        let ratio = match etcd_p99 {
            Some(base) if base > 0.0 => format!("{:.2}", p99 / base),
            _ => "—".into(),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {:.2} | {:.2} | {:.2} | {} | {} | {ratio} |",
            system.name(),
            thousands(med(&|s| s.writer.acked_per_s())),
            med(&|s| s.latency.p50 as f64) / 1000.0,
            p99 / 1000.0,
            med(&|s| s.latency.max as f64) / 1000.0,
            mine.iter().map(|s| s.delivery.lost).sum::<u64>(),
            med(&|s| s.delivery.watchers_behind as f64),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::WatchFlags;

    fn must_ctx(smoke: bool, watch: WatchFlags) -> ScenarioContext {
        let flags = crate::cli::ScenarioFlags {
            atoll_bin: Some("/x/atoll".into()),
            value_size: 100,
            watch,
            ..Default::default()
        };
        ScenarioContext::from_args(&flags, smoke).expect("context")
    }

    #[test]
    fn defaults_spread_ten_thousand_watchers_and_smoke_is_small() {
        let s = Settings::from_ctx(&must_ctx(false, WatchFlags::default())).expect("settings");
        assert_eq!((s.watchers, s.streams, s.connections, s.rate), (10_000, 100, 10, 1_000.0));
        assert_eq!(s.writes, 5_000, "1,000/s for the 5 s phase");
        let plans = s.plans();
        assert_eq!(plans.iter().map(|p| p.measured).sum::<usize>(), 10_000);
        assert_eq!(plans.iter().filter(|p| p.connection == 9).count(), 10);
        let s = Settings::from_ctx(&must_ctx(true, WatchFlags::default())).expect("smoke");
        assert_eq!((s.watchers, s.streams, s.writes), (200, 10, 100));
    }

    #[test]
    fn uneven_spreads_differ_by_one_and_too_many_per_stream_is_refused() {
        let flags =
            WatchFlags { watchers: Some(10), watch_streams: Some(4), ..WatchFlags::default() };
        let s = Settings::from_ctx(&must_ctx(true, flags)).expect("settings");
        let counts: Vec<usize> = s.plans().iter().map(|p| p.measured).collect();
        assert_eq!(counts, [3, 3, 2, 2]);
        let flags =
            WatchFlags { watchers: Some(10_000), watch_streams: Some(2), ..WatchFlags::default() };
        let err = Settings::from_ctx(&must_ctx(false, flags)).expect_err("5,000 per stream");
        assert!(
            err.to_string().contains("raise --watch-streams") && !err.to_string().contains('\n')
        );
    }
}
