//! `watch-starvation`: can slow watchers hold up a fast one? etcd #16839 and #17529 report
//! watchers starved by others sharing their stream or server (a large backlog of prev_kv
//! events in front of them). Two phases on one server, each with a writer at a target rate
//! (200 events/s) on a prefix of its own:
//!
//! - **alone**: a fast watcher on its own stream (`fast-own`, own connection) and another
//!   on a second stream (`fast-same`), both read at once;
//! - **with slow**: the same two, plus S `prev_kv` watchers (1,000) joining `fast-same`'s
//!   stream, whose reader pauses 1 ms after each of their responses (a consumer doing work
//!   per event), and S more on a third stream that is never read after its creates (a
//!   consumer that hung).
//!
//! It reports each fast watcher's delivery p99 (write start to arrival) in both phases and the
//! ratio. `fast-own` shows what the server lets the slow ones do to others; `fast-same` also
//! pays for sharing a stream whose reader is slow, which no server can hide. The fast
//! watchers' events are checked as in `watch-fan-out` (lost must be 0).

use super::tally::{Delivery, judge};
use super::watchers::{Pace, StreamOutcome, StreamPlan};
use super::{Contender, WATCHERS_PER_STREAM_MAX, check_deliveries, each_round, run_phase};
use crate::compare::summary::System;
use crate::recorder::latency_histogram;
use crate::report::LatencySummary;
use crate::scenario::context::ScenarioContext;
use crate::scenario::emit::{Summary, median, merged};
use anyhow::bail;
use serde_json::json;
use std::fmt::Write as _;
use std::time::Duration;

/// The scenario's name.
pub const NAME: &str = "watch-starvation";
/// Slow watchers on each slow stream, by default and under `--smoke`.
const SLOW_DEFAULT: u64 = 1_000;
const SLOW_SMOKE: u64 = 100;
/// Events written per second, by default and under `--smoke`.
const RATE_DEFAULT: f64 = 200.0;
const RATE_SMOKE: f64 = 100.0;
/// The slow reader's pause after each response of a slow watcher.
const SLOW_PAUSE: Duration = Duration::from_millis(1);
/// How long the fast watchers may take to receive the last write after the writer ends.
const DRAIN_DEFAULT: Duration = Duration::from_secs(10);
const DRAIN_SMOKE: Duration = Duration::from_secs(2);
/// Connections: the fast watcher's own, the slow-read stream's, the stalled stream's, so a
/// stalled stream cannot hold up the others through its connection's flow control.
const CONNECTIONS: usize = 3;
/// The two phases.
const PHASES: [&str; 2] = ["alone", "with_slow"];

/// What one run is made of.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Settings {
    slow: u64,
    rate: f64,
    writes: u64,
    drain: Duration,
}

impl Settings {
    fn from_ctx(ctx: &ScenarioContext) -> anyhow::Result<Settings> {
        let w = &ctx.watch;
        let slow = w.slow_watchers.unwrap_or(if ctx.smoke { SLOW_SMOKE } else { SLOW_DEFAULT });
        if slow + 1 > WATCHERS_PER_STREAM_MAX {
            bail!(
                "--slow-watchers {slow} plus the fast watcher exceed the {WATCHERS_PER_STREAM_MAX} \
                 watchers Atoll allows on one stream; give at most {}",
                WATCHERS_PER_STREAM_MAX - 1
            );
        }
        let rate = w.event_rate.unwrap_or(if ctx.smoke { RATE_SMOKE } else { RATE_DEFAULT });
        let writes = ((rate * ctx.duration.as_secs_f64()).ceil() as u64).max(1);
        let drain = if ctx.smoke { DRAIN_SMOKE } else { DRAIN_DEFAULT };
        Ok(Settings { slow, rate, writes, drain })
    }

    /// The streams of a phase: the fast ones, and with `slow` the slow ones too.
    fn plans(&self, with_slow: bool) -> Vec<StreamPlan> {
        let slow = if with_slow { self.slow as usize } else { 0 };
        let fast = |label, connection, slow, pace| StreamPlan {
            label,
            connection,
            measured: 1,
            slow,
            measured_prev_kv: true,
            pace,
        };
        let mut plans = vec![
            fast("fast-own", 0, 0, Pace::Fast),
            fast("fast-same", 1, slow, Pace::SlowWatchers(SLOW_PAUSE)),
        ];
        if with_slow {
            plans.push(StreamPlan {
                label: "stalled",
                connection: 2,
                measured: 0,
                slow,
                measured_prev_kv: true,
                pace: Pace::Stalled,
            });
        }
        plans
    }
}

/// One phase on one system: each fast watcher's latency, and what arrived.
#[derive(Clone, Debug)]
struct Phase {
    own: LatencySummary,
    same: LatencySummary,
    delivery: Delivery,
    slow_events: u64,
    errors: Vec<String>,
}

/// Both phases of one round on one system.
struct Sample {
    system: System,
    phases: [Phase; 2],
}

/// Runs the scenario; returns its table for `suite`.
pub async fn run_scenario(ctx: &ScenarioContext) -> anyhow::Result<Summary> {
    let settings = Settings::from_ctx(ctx)?;
    let samples = each_round(ctx, NAME, CONNECTIONS, async |c: &Contender, round| {
        let alone = measure(c, &settings, round, false).await?;
        let with_slow = measure(c, &settings, round, true).await?;
        let sample = Sample { system: c.system, phases: [alone, with_slow] };
        emit_sample(ctx, c, &settings, round, &sample)?;
        Ok(sample)
    })
    .await?;
    let text = table(&settings, ctx.runs(1, 1), &samples);
    eprintln!("{text}");
    let results = samples
        .iter()
        .flat_map(|s| s.phases.iter().map(|p| (s.system, &p.delivery, p.errors.as_slice())));
    check_deliveries("fast watchers", results)?;
    Ok(Summary { scenario: NAME.into(), text, plots: Vec::new() })
}

async fn measure(
    c: &Contender,
    settings: &Settings,
    round: u64,
    with_slow: bool,
) -> anyhow::Result<Phase> {
    let prefix = format!("/bench/starve/{round}/{}/", PHASES[usize::from(with_slow)]);
    let plans = settings.plans(with_slow);
    let (writes, rate, drain) = (settings.writes, settings.rate, settings.drain);
    let phase = run_phase(c, &prefix, writes, rate, &plans, drain).await?;
    let outcomes = &phase.streams;
    let of = |label: &str| -> anyhow::Result<LatencySummary> {
        let mut h = latency_histogram()?;
        for o in outcomes.iter().filter(|o| o.label == label) {
            h.add(&o.latency).map_err(|e| anyhow::anyhow!("cannot merge histograms: {e:?}"))?;
        }
        Ok(LatencySummary::from_histogram(&h))
    };
    Ok(Phase {
        own: of("fast-own")?,
        same: of("fast-same")?,
        delivery: judge(outcomes.iter().flat_map(|o| o.tallies.iter()), &phase.acked),
        slow_events: outcomes.iter().map(|o: &StreamOutcome| o.slow_events).sum(),
        errors: outcomes.iter().filter_map(|o| o.error.clone()).collect(),
    })
}

fn emit_sample(
    ctx: &ScenarioContext,
    c: &Contender,
    settings: &Settings,
    round: u64,
    s: &Sample,
) -> anyhow::Result<()> {
    for (name, p) in PHASES.iter().zip(&s.phases) {
        let d = &p.delivery;
        let params = ctx.params(merged(
            json!({
                "round": round + 1,
                "phase": name,
                "slow_watchers_per_stream": if *name == "alone" { 0 } else { settings.slow },
                "slow_pause_ms": SLOW_PAUSE.as_millis() as u64,
                "rate_target": settings.rate,
                "writes": settings.writes,
                "lost": d.lost,
                "undelivered": d.undelivered,
                "fast_watchers_behind": d.watchers_behind,
                "slow_events_received": p.slow_events,
                "stream_errors": p.errors,
                "latency_from": "write start",
            }),
            c.params(ctx),
        ));
        for (metric, value) in [
            (format!("fast_own_stream_p99_us_{name}"), p.own.p99),
            (format!("fast_same_stream_p99_us_{name}"), p.same.p99),
        ] {
            ctx.emit(NAME, &metric, value as f64, "us", params.clone())?;
        }
    }
    Ok(())
}

/// The Markdown table: medians over rounds of each fast watcher's p99 in both phases.
fn table(settings: &Settings, rounds: u64, samples: &[Sample]) -> String {
    let mut out = format!(
        "Writer at {} events/s ({} writes per phase); slow phase: {} prev_kv watchers on the \
         fast-same stream read with a {SLOW_PAUSE:?} pause per response, {} more on a stream \
         never read; {rounds} round(s), medians over rounds; latency from write start\n\n\
         | system | fast own stream p99 ms: alone | with slow | ratio | fast same stream p99 \
         ms: alone | with slow | ratio | lost |\n| --- | ---: | ---: | ---: | ---: | ---: | \
         ---: | ---: |\n",
        settings.rate, settings.writes, settings.slow, settings.slow
    );
    for system in [System::Atoll, System::AtollGrpc, System::Etcd] {
        let mine: Vec<&Sample> = samples.iter().filter(|s| s.system == system).collect();
        if mine.is_empty() {
            continue;
        }
        let med = |f: &dyn Fn(&Sample) -> u64| {
            median(&mine.iter().map(|s| f(s) as f64 / 1000.0).collect::<Vec<_>>())
        };
        let (own_a, own_s) = (med(&|s| s.phases[0].own.p99), med(&|s| s.phases[1].own.p99));
        let (same_a, same_s) = (med(&|s| s.phases[0].same.p99), med(&|s| s.phases[1].same.p99));
        let ratio = |a: f64, b: f64| if a > 0.0 { format!("{:.2}", b / a) } else { "—".into() };
        let lost: u64 = mine.iter().flat_map(|s| s.phases.iter()).map(|p| p.delivery.lost).sum();
        let _ = writeln!(
            out,
            "| {} | {own_a:.2} | {own_s:.2} | {} | {same_a:.2} | {same_s:.2} | {} | {lost} |",
            system.name(),
            ratio(own_a, own_s),
            ratio(same_a, same_s)
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::WatchFlags;

    fn must_settings(smoke: bool, watch: WatchFlags) -> anyhow::Result<Settings> {
        let flags = crate::cli::ScenarioFlags {
            atoll_bin: Some("/x/atoll".into()),
            value_size: 100,
            watch,
            ..Default::default()
        };
        Settings::from_ctx(&ScenarioContext::from_args(&flags, smoke).expect("context"))
    }

    #[test]
    fn the_slow_phase_adds_a_slow_read_and_a_stalled_stream_on_their_own_connections() {
        let s = must_settings(false, WatchFlags::default()).expect("settings");
        assert_eq!((s.slow, s.rate, s.writes), (1_000, 200.0, 1_000));
        let alone = s.plans(false);
        assert_eq!(alone.len(), 2);
        assert!(alone.iter().all(|p| p.measured == 1 && p.slow == 0));
        let with = s.plans(true);
        let shape: Vec<_> =
            with.iter().map(|p| (p.label, p.connection, p.measured, p.slow)).collect();
        assert_eq!(
            shape,
            [("fast-own", 0, 1, 0), ("fast-same", 1, 1, 1_000), ("stalled", 2, 0, 1_000)]
        );
        assert_eq!(with[1].pace, Pace::SlowWatchers(SLOW_PAUSE));
        assert_eq!(with[2].pace, Pace::Stalled);
        let smoke = must_settings(true, WatchFlags::default()).expect("smoke");
        assert_eq!((smoke.slow, smoke.writes), (100, 100));
    }

    #[test]
    fn more_slow_watchers_than_a_stream_holds_is_refused() {
        let flags = WatchFlags { slow_watchers: Some(4_096), ..WatchFlags::default() };
        let err = must_settings(false, flags).expect_err("too many");
        assert!(err.to_string().contains("at most 4095") && !err.to_string().contains('\n'));
    }
}
