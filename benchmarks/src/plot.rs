//! SVG plots (the `plotters` crate, SVG backend only): line charts laid side by side, each a
//! panel with its own axes and legend. `run --plot` draws a run's throughput and latency
//! percentiles over time; `compare` draws, per workload, each system's throughput and p99
//! against the client count. Plots are built from numbers only, so they are tested on the
//! SVG text they produce.

use crate::csv::SecondRow;
use anyhow::{Context as _, anyhow};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;

/// Size of one panel in pixels: small enough to sit beside text in RESULTS.md.
const PANEL_PX: (u32, u32) = (480, 320);
/// Line colours, one per series in order (colour-blind-safe hues).
const COLOURS: [RGBColor; 6] = [
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(86, 180, 233),
    RGBColor(230, 159, 0),
];

/// One line of a panel.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    /// Its name in the legend.
    pub name: String,
    /// Its points, in x order.
    pub points: Vec<(f64, f64)>,
}

/// One chart.
#[derive(Clone, Debug, PartialEq)]
pub struct Panel {
    /// Title above the chart.
    pub title: String,
    /// Label of the x axis.
    pub x_desc: String,
    /// Label of the y axis.
    pub y_desc: String,
    /// The lines.
    pub series: Vec<Series>,
    /// Names of the x positions 0, 1, 2... (client counts), instead of numbers.
    pub x_names: Option<Vec<String>>,
}

/// The x and y ranges that hold every point, y from 0 and with some head room.
fn bounds(panel: &Panel) -> ((f64, f64), f64) {
    let points = panel.series.iter().flat_map(|s| s.points.iter());
    let (mut x_min, mut x_max, mut y_max) = (f64::MAX, f64::MIN, 0.0f64);
    for &(x, y) in points {
        x_min = x_min.min(x);
        x_max = x_max.max(x);
        y_max = y_max.max(y);
    }
    if x_min > x_max {
        (x_min, x_max) = (0.0, 1.0);
    }
    if x_max - x_min < 1.0 {
        x_max = x_min + 1.0;
    }
    let y_top = if y_max > 0.0 { y_max * 1.1 } else { 1.0 };
    ((x_min, x_max), y_top)
}

/// The SVG text of `panels` side by side under `title`.
pub fn render_svg(title: &str, panels: &[Panel]) -> anyhow::Result<String> {
    let mut svg = String::new();
    let width = PANEL_PX.0 * panels.len().max(1) as u32;
    {
        let root = SVGBackend::with_string(&mut svg, (width, PANEL_PX.1 + 30)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_error)?;
        let root = root.titled(title, ("sans-serif", 18)).map_err(plot_error)?;
        let areas = root.split_evenly((1, panels.len().max(1)));
        for (area, panel) in areas.iter().zip(panels) {
            draw_panel(area, panel)?;
        }
        root.present().map_err(plot_error)?;
    }
    Ok(svg)
}

fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    panel: &Panel,
) -> anyhow::Result<()>
where
    DB::ErrorType: 'static,
{
    let ((x_min, x_max), y_top) = bounds(panel);
    let mut chart = ChartBuilder::on(area)
        .caption(&panel.title, ("sans-serif", 15))
        .margin(8)
        .x_label_area_size(36)
        .y_label_area_size(60)
        .build_cartesian_2d(x_min..x_max, 0.0..y_top)
        .map_err(plot_error)?;
    let names = panel.x_names.clone();
    let name_of = move |x: &f64| match &names {
        // Only whole positions carry a name; plotters may ask for labels in between.
        Some(names) if (x - x.round()).abs() < 1e-9 && *x >= 0.0 => {
            names.get(x.round() as usize).cloned().unwrap_or_default()
        }
        Some(_) => String::new(),
        None => format!("{x}"),
    };
    let x_labels = panel.x_names.as_ref().map_or(10, |n| n.len().max(2));
    chart
        .configure_mesh()
        .x_desc(panel.x_desc.as_str())
        .y_desc(panel.y_desc.as_str())
        .x_labels(x_labels)
        .x_label_formatter(&name_of)
        .y_label_formatter(&axis_number)
        .draw()
        .map_err(plot_error)?;
    for (i, series) in panel.series.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        chart
            // Markers too, so a single point (one client count) still shows.
            .draw_series(
                LineSeries::new(series.points.iter().copied(), colour.stroke_width(2))
                    .point_size(3),
            )
            .map_err(plot_error)?
            .label(series.name.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], colour.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .border_style(BLACK)
        .background_style(WHITE.mix(0.85))
        .draw()
        .map_err(plot_error)?;
    Ok(())
}

/// An axis label without spurious decimals: `2000`, `12.5`, `0.25`.
fn axis_number(y: &f64) -> String {
    match y.abs() {
        a if a >= 100.0 || a == 0.0 => format!("{y:.0}"),
        a if a >= 1.0 => format!("{y:.1}"),
        _ => format!("{y:.2}"),
    }
}

fn plot_error<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("cannot draw the plot: {e:?}")
}

/// Writes `svg` to `path`.
pub fn write_svg(path: &Path, svg: &str) -> anyhow::Result<()> {
    std::fs::write(path, svg).with_context(|| format!("cannot write plot {}", path.display()))
}

/// The panels of one run: throughput per second, and p50, p99 and max latency per second.
pub fn run_panels(rows: &[SecondRow]) -> Vec<Panel> {
    let over_time = |name: &str, value: &dyn Fn(&SecondRow) -> f64| Series {
        name: name.into(),
        points: rows.iter().map(|r| (r.second as f64, value(r))).collect(),
    };
    let ms = |us: u64| us as f64 / 1000.0;
    vec![
        Panel {
            title: "throughput".into(),
            x_desc: "second of the measured phase".into(),
            y_desc: "ops/s".into(),
            series: vec![over_time("ops/s", &|r| r.ops_per_s)],
            x_names: None,
        },
        Panel {
            title: "latency per second".into(),
            x_desc: "second of the measured phase".into(),
            y_desc: "ms".into(),
            series: vec![
                over_time("p50", &|r| ms(r.p50_us)),
                over_time("p99", &|r| ms(r.p99_us)),
                over_time("max", &|r| ms(r.max_us)),
            ],
            x_names: None,
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(second: u64, ops: u64, p50_us: u64) -> SecondRow {
        SecondRow {
            second,
            ops,
            ops_per_s: ops as f64,
            p50_us,
            p99_us: p50_us * 3,
            max_us: p50_us * 5,
            errors: 0,
        }
    }

    #[test]
    fn a_run_plot_has_both_panels_and_every_series() {
        let rows = [row(0, 900, 1000), row(1, 1100, 1200), row(2, 1000, 1100)];
        let panels = run_panels(&rows);
        assert_eq!(panels[0].series[0].points, vec![(0.0, 900.0), (1.0, 1100.0), (2.0, 1000.0)]);
        assert_eq!(panels[1].series[1].points[1], (1.0, 3.6), "p99 in ms");
        let svg = render_svg("put, 16 clients", &panels).expect("svg");
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"), "{svg:.80}");
        for text in ["put, 16 clients", "throughput", "latency per second", "p50", "p99", "max"] {
            assert!(svg.contains(&format!("\n{text}\n</text>")), "missing {text}");
        }
        assert!(svg.contains("<polyline"), "lines drawn");
    }

    #[test]
    fn axis_numbers_keep_the_decimals_that_matter() {
        assert_eq!(axis_number(&2000.0), "2000");
        assert_eq!(axis_number(&0.0), "0");
        assert_eq!(axis_number(&12.5), "12.5");
        assert_eq!(axis_number(&0.25), "0.25");
    }

    #[test]
    fn named_positions_label_the_x_axis_and_empty_panels_still_draw() {
        let panel = Panel {
            title: "ops/s".into(),
            x_desc: "clients".into(),
            y_desc: "ops/s".into(),
            series: vec![Series { name: "etcd".into(), points: vec![(0.0, 5.0), (1.0, 7.0)] }],
            x_names: Some(vec!["16".into(), "256".into()]),
        };
        let svg = render_svg("put", std::slice::from_ref(&panel)).expect("svg");
        for text in ["16", "256", "etcd", "clients"] {
            assert!(svg.contains(&format!("\n{text}\n</text>")), "missing {text}");
        }
        let empty = Panel { series: vec![], ..panel };
        assert_eq!(bounds(&empty), ((0.0, 1.0), 1.0));
        render_svg("nothing", &[empty]).expect("an empty panel is not an error");
    }
}
