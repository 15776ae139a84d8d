//! Reads a results file (one JSON object per line, as printed after `RESULT `) and
//! prints the side-by-side table: each scenario label with Junction, Crossbar.io and
//! the raw relay, the ratios, the figures per router CPU-second, and the issue's
//! targets marked met or not.

use std::fmt::Write as _;
use std::path::Path;

use serde_json::Value as Json;

use crate::error::{BenchError, Result};
use crate::stats::human;

/// The runs of one scenario label, by target (latest line wins).
pub struct Row {
    /// Scenario label.
    pub label: String,
    /// `(target, result)` in first-seen order.
    pub runs: Vec<(String, Json)>,
}

impl Row {
    /// The result of a target (`junction`, `crossbar`, `relay`).
    pub fn get(&self, target: &str) -> Option<&Json> {
        self.runs.iter().find(|(t, _)| t == target).map(|(_, j)| j)
    }

    /// A number field of a target's result.
    pub fn num(&self, target: &str, key: &str) -> Option<f64> {
        self.get(target)?.get(key)?.as_f64()
    }

    /// A latency percentile (µs) of a target's result.
    pub fn lat(&self, target: &str, p: &str) -> Option<f64> {
        self.get(target)?.get("latency_us")?.get(p)?.as_f64()
    }

    /// The scenario kind of any of its runs.
    pub fn scenario(&self) -> &str {
        self.runs
            .iter()
            .find_map(|(_, j)| j.get("scenario").and_then(Json::as_str).filter(|s| *s != "relay"))
            .unwrap_or("relay")
    }
}

/// Loads a results file, grouped by label in first-seen order.
pub fn load(path: &Path) -> Result<Vec<Row>> {
    let text =
        std::fs::read_to_string(path).map_err(|e| BenchError::msg(format!("{}: {e}", path.display())))?;
    let mut rows: Vec<Row> = Vec::new();
    for line in text.lines() {
        let line = line.trim().trim_start_matches(crate::report::RESULT_PREFIX);
        if line.is_empty() {
            continue;
        }
        let j: Json =
            serde_json::from_str(line).map_err(|e| BenchError::msg(format!("{}: {e}", path.display())))?;
        let label = j.get("label").and_then(Json::as_str).unwrap_or("?").to_owned();
        let target = j.get("target").and_then(Json::as_str).unwrap_or("?").to_owned();
        let row = match rows.iter_mut().position(|r| r.label == label) {
            Some(i) => &mut rows[i],
            None => {
                rows.push(Row { label, runs: Vec::new() });
                let last = rows.len() - 1;
                &mut rows[last]
            }
        };
        match row.runs.iter_mut().find(|(t, _)| *t == target) {
            Some(slot) => slot.1 = j,
            None => row.runs.push((target, j)),
        }
    }
    Ok(rows)
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}×", a / b),
        _ => "–".into(),
    }
}

fn num(x: Option<f64>) -> String {
    x.map(human).unwrap_or_else(|| "–".into())
}

fn lat(row: &Row, target: &str) -> String {
    match (row.lat(target, "p50"), row.lat(target, "p99")) {
        (Some(a), Some(b)) => format!("{a:.0}/{b:.0}"),
        _ => "–".into(),
    }
}

/// Renders a table as aligned text or Markdown.
pub fn render(headers: &[&str], rows: &[Vec<String>], markdown: bool) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| -> String {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c}{}", " ".repeat(w.saturating_sub(c.chars().count()))))
            .collect();
        if markdown { format!("| {} |", padded.join(" | ")) } else { padded.join("  ") }
    };
    let mut out = String::new();
    out.push_str(&line(headers.to_vec()));
    out.push('\n');
    if markdown {
        let sep: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
        let _ = writeln!(out, "| {} |", sep.join(" | "));
    }
    for r in rows {
        out.push_str(&line(r.iter().map(String::as_str).collect()));
        out.push('\n');
    }
    out
}

/// The throughput table (rpc, pubsub, relay labels).
fn throughput_table(rows: &[Row], markdown: bool) -> String {
    let headers = [
        "scenario",
        "unit/s",
        "Junction",
        "Crossbar",
        "relay",
        "J/C",
        "J/relay",
        "J per CPU-s",
        "C per CPU-s",
        "J/C per CPU-s",
        "J CPU%",
        "C CPU%",
        "J p50/p99 µs",
        "C p50/p99 µs",
        "relay p50/p99 µs",
    ];
    let mut out = Vec::new();
    for r in rows.iter().filter(|r| r.scenario() != "sessions") {
        let unit = r.runs.first().and_then(|(_, j)| j.get("unit")).and_then(Json::as_str).unwrap_or("ops");
        let pct =
            |t: &str| r.num(t, "router_cpu_pct").map(|x| format!("{x:.0}")).unwrap_or_else(|| "–".into());
        out.push(vec![
            r.label.clone(),
            unit.to_owned(),
            num(r.num("junction", "rate")),
            num(r.num("crossbar", "rate")),
            num(r.num("relay", "rate")),
            ratio(r.num("junction", "rate"), r.num("crossbar", "rate")),
            ratio(r.num("junction", "rate"), r.num("relay", "rate")),
            num(r.num("junction", "per_cpu_s")),
            num(r.num("crossbar", "per_cpu_s")),
            ratio(r.num("junction", "per_cpu_s"), r.num("crossbar", "per_cpu_s")),
            pct("junction"),
            pct("crossbar"),
            lat(r, "junction"),
            lat(r, "crossbar"),
            lat(r, "relay"),
        ]);
    }
    render(&headers, &out, markdown)
}

/// The sessions table.
fn sessions_table(rows: &[Row], markdown: bool) -> String {
    let headers =
        ["scenario", "target", "connected", "connect s", "sessions/s", "RSS/session KiB", "p99 connect µs"];
    let mut out = Vec::new();
    for r in rows.iter().filter(|r| r.scenario() == "sessions") {
        for (t, _) in &r.runs {
            let f = |k: &str| r.num(t, k);
            out.push(vec![
                r.label.clone(),
                t.clone(),
                f("connected").map(|x| format!("{x:.0}")).unwrap_or_default(),
                f("connect_s").map(|x| format!("{x:.2}")).unwrap_or_default(),
                num(f("rate")),
                f("rss_per_session_kib").map(|x| format!("{x:.2}")).unwrap_or_else(|| "–".into()),
                r.get(t)
                    .and_then(|j| j.get("connect_latency_us")?.get("p99")?.as_f64())
                    .map(|x| format!("{x:.0}"))
                    .unwrap_or_else(|| "–".into()),
            ]);
        }
    }
    if out.is_empty() { String::new() } else { render(&headers, &out, markdown) }
}

fn mark(ok: bool) -> &'static str {
    if ok { "met" } else { "NOT met" }
}

/// The targets, checked against the results.
fn targets(rows: &[Row]) -> Vec<String> {
    let mut out = Vec::new();
    for r in rows.iter().filter(|r| matches!(r.scenario(), "rpc" | "pubsub")) {
        let half = r.num("junction", "rate_limit").unwrap_or(0.0) > 0.0;
        if !half && let (Some(j), Some(c)) = (r.num("junction", "per_cpu_s"), r.num("crossbar", "per_cpu_s"))
        {
            let x = j / c.max(1e-9);
            out.push(format!(
                "{}: per router CPU-second {x:.1}× Crossbar (target ≥ 20×): {}",
                r.label,
                mark(x >= 20.0)
            ));
        }
        if !half && let (Some(j), Some(c)) = (r.num("junction", "rate"), r.num("crossbar", "rate")) {
            let x = j / c.max(1e-9);
            out.push(format!("{}: absolute {x:.1}× Crossbar (target ≥ 10×): {}", r.label, mark(x >= 10.0)));
        }
        if !half && let (Some(j), Some(rel)) = (r.num("junction", "rate"), r.num("relay", "rate")) {
            let x = 100.0 * j / rel.max(1e-9);
            out.push(format!("{}: {x:.0}% of the raw relay (target ≥ 60%): {}", r.label, mark(x >= 60.0)));
        }
        let Some(j) = r.get("junction") else { continue };
        let is = |k: &str, v: &str| j.get(k).and_then(Json::as_str) == Some(v);
        let inflight = j.get("inflight").and_then(Json::as_u64);
        if r.scenario() == "rpc"
            && inflight == Some(1)
            && is("transport", "websocket")
            && is("serializer", "msgpack")
            && let (Some(p50), Some(p99)) = (r.lat("junction", "p50"), r.lat("junction", "p99"))
        {
            out.push(format!(
                "{}: p50 {p50:.0} µs (≤ 50), p99 {p99:.0} µs (≤ 150): {}",
                r.label,
                mark(p50 <= 50.0 && p99 <= 150.0)
            ));
        }
        if half && let Some(p99) = r.lat("junction", "p99") {
            out.push(format!(
                "{}: p99 {p99:.0} µs at half of max throughput (target < 1000 µs): {}",
                r.label,
                mark(p99 < 1000.0)
            ));
        }
    }
    for r in rows.iter().filter(|r| r.scenario() == "sessions") {
        if let (Some(kib), Some(n)) =
            (r.num("junction", "rss_per_session_kib"), r.num("junction", "connected"))
        {
            out.push(format!(
                "{}: {n:.0} sessions at {kib:.2} KiB each (target 50,000 under 10 KiB): {}",
                r.label,
                mark(kib < 10.0 && n >= 50_000.0)
            ));
        }
    }
    out
}

/// Builds the whole comparison (tables and targets).
pub fn comparison(rows: &[Row], markdown: bool) -> String {
    let mut s = throughput_table(rows, markdown);
    let sessions = sessions_table(rows, markdown);
    if !sessions.is_empty() {
        s.push('\n');
        s.push_str(&sessions);
    }
    let t = targets(rows);
    if !t.is_empty() {
        s.push_str("\nTargets:\n");
        for line in t {
            let _ = writeln!(s, "{}{line}", if markdown { "- " } else { "  " });
        }
    }
    s
}

/// The `compare` command.
pub fn run(args: &crate::cli::CompareArgs) -> Result<()> {
    let rows = load(&args.input)?;
    print!("{}", comparison(&rows, false));
    if let Some(md) = &args.markdown {
        std::fs::write(md, comparison(&rows, true))
            .map_err(|e| BenchError::msg(format!("{}: {e}", md.display())))?;
    }
    Ok(())
}
