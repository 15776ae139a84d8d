//! Draws the comparison chart (SVG, with `plotters`) from a results file: throughput
//! per scenario, latency percentiles (p50 solid, p99 light), and router memory per
//! idle session — Junction beside Crossbar.io and the raw relay. Log scales, since the
//! systems differ by orders of magnitude; every bar carries its value.

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::cli::ChartArgs;
use crate::compare::{Row, load};
use crate::error::{BenchError, Result};
use crate::stats::human;

const TARGETS: [(&str, &str, RGBColor); 3] = [
    ("junction", "Junction", RGBColor(31, 119, 180)),
    ("crossbar", "Crossbar.io", RGBColor(255, 127, 14)),
    ("relay", "raw relay", RGBColor(127, 127, 127)),
];

fn err<E: std::fmt::Debug>(e: E) -> BenchError {
    BenchError::msg(format!("chart: {e:?}"))
}

/// One group of bars: a label and, per target, a value (and a second, lighter one).
struct Group {
    label: String,
    bars: Vec<(usize, f64, Option<f64>)>,
}

fn groups(rows: &[Row], value: impl Fn(&Row, &str) -> Option<(f64, Option<f64>)>) -> Vec<Group> {
    rows.iter()
        .filter_map(|r| {
            let bars: Vec<(usize, f64, Option<f64>)> = TARGETS
                .iter()
                .enumerate()
                .filter_map(|(i, (t, _, _))| value(r, t).map(|(a, b)| (i, a, b)))
                .collect();
            (!bars.is_empty()).then(|| Group { label: r.label.clone(), bars })
        })
        .collect()
}

/// Draws one panel of grouped bars on a log scale.
fn panel(
    area: &DrawingArea<SVGBackend, Shift>,
    title: &str,
    unit: &str,
    gs: &[Group],
    legend: bool,
) -> Result<()> {
    if gs.is_empty() {
        return Ok(());
    }
    let max = gs.iter().flat_map(|g| g.bars.iter().map(|b| b.1.max(b.2.unwrap_or(0.0)))).fold(1.0, f64::max);
    let min = gs.iter().flat_map(|g| g.bars.iter().map(|b| b.1)).fold(max, f64::min).max(1e-3);
    let lo = 10f64.powf((min.log10() - 0.3).floor());
    let hi = max * 4.0;
    let n = gs.len() as f64;
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..n, (lo..hi).log_scale())
        .map_err(err)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_label_formatter(&|_| String::new())
        .y_desc(unit)
        .y_label_formatter(&|v| human(*v))
        .draw()
        .map_err(err)?;
    let width = 0.8 / TARGETS.len() as f64;
    let small = TextStyle::from(("sans-serif", 11).into_font()).pos(Pos::new(HPos::Center, VPos::Bottom));
    for (gi, g) in gs.iter().enumerate() {
        for &(ti, v, light) in &g.bars {
            let color = TARGETS[ti].2;
            let x0 = gi as f64 + 0.1 + ti as f64 * width;
            let x1 = x0 + width * 0.9;
            if let Some(l) = light {
                chart
                    .draw_series([Rectangle::new([(x0, lo), (x1, l)], color.mix(0.35).filled())])
                    .map_err(err)?;
                let t = Text::new(human(l), ((x0 + x1) / 2.0, l), small.clone());
                chart.draw_series([t]).map_err(err)?;
            }
            chart.draw_series([Rectangle::new([(x0, lo), (x1, v)], color.filled())]).map_err(err)?;
            if light.is_none() {
                let t = Text::new(human(v), ((x0 + x1) / 2.0, v), small.clone());
                chart.draw_series([t]).map_err(err)?;
            }
        }
        let (px, py) = chart.backend_coord(&(gi as f64 + 0.5, lo));
        // Shrink labels that would run into their neighbours (~0.6 em per character).
        let group_px = f64::from(area.dim_in_pixel().0) * 0.9 / n;
        let size = (group_px / (0.6 * g.label.chars().count().max(1) as f64)).clamp(8.0, 11.0);
        let style = TextStyle::from(("sans-serif", size).into_font()).pos(Pos::new(HPos::Center, VPos::Top));
        let root = area.clone();
        let (ox, oy) = root.get_base_pixel();
        root.draw(&Text::new(g.label.clone(), (px - ox, py - oy + 8), style)).map_err(err)?;
    }
    if legend {
        for (_, name, color) in TARGETS {
            chart
                .draw_series(std::iter::empty::<Rectangle<(f64, f64)>>())
                .map_err(err)?
                .label(name)
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled()));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .border_style(BLACK)
            .background_style(WHITE.mix(0.85))
            .draw()
            .map_err(err)?;
    }
    Ok(())
}

/// The `chart` command.
pub fn run(args: &ChartArgs) -> Result<()> {
    let rows = load(&args.input)?;
    if let Some(dir) = args.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let root = SVGBackend::new(&args.out, (1500, 1150)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let title = if args.title.is_empty() { "junction-bench".to_owned() } else { args.title.clone() };
    let root = root.titled(&title, ("sans-serif", 24)).map_err(err)?;
    let (top, bottom) = root.split_vertically(560);
    let (lat, mem) = bottom.split_horizontally(1150);
    let throughput: Vec<Row> = rows.into_iter().collect();
    let tp = groups(&throughput, |r, t| {
        (r.scenario() != "sessions").then(|| r.num(t, "rate")).flatten().map(|v| (v, None))
    });
    panel(&top, "Throughput (calls/s for RPC, deliveries/s for pub/sub)", "per second", &tp, true)?;
    let lt = groups(&throughput, |r, t| Some((r.lat(t, "p50")?, r.lat(t, "p99"))));
    panel(&lat, "Latency µs (solid p50, light p99)", "µs", &lt, false)?;
    let mm = groups(&throughput, |r, t| r.num(t, "rss_per_session_kib").map(|v| (v.max(0.01), None)));
    panel(&mem, "Router RSS per idle session", "KiB", &mm, false)?;
    root.present().map_err(err)?;
    println!("chart written to {}", args.out.display());
    Ok(())
}
