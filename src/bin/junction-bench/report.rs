//! The result of one scenario run: a flat JSON object printed once as a
//! machine-readable line (`RESULT {...}`) and once as a human table.

use serde_json::{Map, Value as Json, json};

use crate::cli::Common;
use crate::client::Endpoint;
use crate::stats::{Window, human, r2};

/// Prefix of the machine-readable line on stdout.
pub const RESULT_PREFIX: &str = "RESULT ";

/// One scenario run's figures.
pub struct Report {
    fields: Map<String, Json>,
}

impl Report {
    /// Starts a report with the fields every scenario has.
    pub fn new(scenario: &str, common: &Common, ep: &Endpoint, default_label: String) -> Report {
        let ser: junction::wamp::codec::Serializer = common.serializer.into();
        let unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let mut fields = Map::new();
        fields.insert("scenario".into(), scenario.into());
        fields.insert("label".into(), common.label.clone().unwrap_or(default_label).into());
        fields.insert("target".into(), common.target.clone().into());
        fields.insert("url".into(), common.url.clone().into());
        fields.insert("transport".into(), ep.transport().into());
        fields.insert("serializer".into(), ser.name().into());
        fields.insert("unix_time".into(), unix.into());
        fields.insert("client_threads".into(), common.threads.into());
        Report { fields }
    }

    /// Sets a field.
    pub fn set(&mut self, key: &str, value: impl Into<Json>) {
        self.fields.insert(key.to_owned(), value.into());
    }

    /// Sets the throughput fields from a measured window: `count` operations of
    /// `unit` (e.g. "calls") gives `rate` per second and `per_cpu_s` per router
    /// CPU-second; with router PIDs also each process's CPU seconds and the router's
    /// syscalls and context switches per operation (`syscalls_per_call`,
    /// `ctx_switches_per_delivery` ...).
    pub fn window(&mut self, w: &Window, count: u64, unit: &str) {
        let rate = count as f64 / w.seconds.max(1e-9);
        self.set("unit", unit);
        self.set("duration_s", r2(w.seconds));
        self.set("count", count);
        self.set("rate", r2(rate));
        if let Some(cpu) = w.router_cpu {
            self.set("router_cpu_s", r2(cpu));
            self.set("router_cpu_pct", r2(100.0 * cpu / w.seconds.max(1e-9)));
            self.set("per_cpu_s", if cpu > 0.0 { json!(r2(count as f64 / cpu)) } else { Json::Null });
        }
        if w.router_cpu_each.len() > 1 {
            let each: Map<String, Json> = w
                .router_cpu_each
                .iter()
                .map(|(pid, cpu)| (pid.to_string(), cpu.map_or(Json::Null, |c| json!(r2(c)))))
                .collect();
            self.set("router_cpu_s_by_pid", Json::Object(each));
            let list: Vec<Json> =
                w.router_cpu_each.iter().map(|(_, cpu)| cpu.map_or(Json::Null, |c| json!(r2(c)))).collect();
            self.set("router_cpu_s_each", list);
        }
        if let Some(k) = w.router_counters {
            let one = singular(unit);
            let per = |x: u64| if count > 0 { json!(per_op(x, count)) } else { Json::Null };
            self.set("router_syscr", k.syscr);
            self.set("router_syscw", k.syscw);
            self.set("router_ctx_voluntary", k.voluntary);
            self.set("router_ctx_involuntary", k.involuntary);
            self.set(&format!("syscalls_per_{one}"), per(k.syscr + k.syscw));
            self.set(&format!("ctx_switches_per_{one}"), per(k.voluntary + k.involuntary));
        }
        if let Some(n) = w.router_syscalls_perf {
            self.set("router_syscalls_perf", n);
            if count > 0 {
                self.set(&format!("perf_syscalls_per_{}", singular(unit)), per_op(n, count));
            }
        }
        if let Some(cpu) = w.client_cpu {
            self.set("client_cpu_s", r2(cpu));
        }
    }

    /// Records how the client wrote its frames: `batched` (queued frames written
    /// together) or `frame` (one write per frame).
    pub fn write_mode(&mut self, frame_by_frame: bool) {
        self.set("write_mode", if frame_by_frame { "frame" } else { "batched" });
    }

    /// Records the machine's load average at the end of the run.
    fn load(&mut self) {
        if let Some(l) = crate::proc::load_average() {
            self.set("loadavg_1m", l);
        }
    }

    /// The JSON object.
    pub fn json(&self) -> Json {
        Json::Object(self.fields.clone())
    }

    /// Prints the human table, then the `RESULT` line.
    pub fn emit(&mut self) {
        self.load();
        let label = self.fields.get("label").and_then(Json::as_str).unwrap_or("?");
        let target = self.fields.get("target").and_then(Json::as_str).unwrap_or("?");
        println!("== {label} ({target}) ==");
        for (k, v) in &self.fields {
            if matches!(k.as_str(), "label" | "target" | "unix_time") {
                continue;
            }
            println!("  {k:<22} {}", show(k, v));
        }
        println!("{RESULT_PREFIX}{}", self.json());
    }
}

/// `calls` -> `call`, `deliveries` -> `delivery`, for per-operation field names.
fn singular(unit: &str) -> String {
    if let Some(stem) = unit.strip_suffix("ies") {
        format!("{stem}y")
    } else {
        unit.strip_suffix('s').unwrap_or(unit).to_owned()
    }
}

/// `x / count` to three decimals.
fn per_op(x: u64, count: u64) -> f64 {
    (x as f64 / count as f64 * 1000.0).round() / 1000.0
}

fn show(key: &str, v: &Json) -> String {
    match v {
        Json::Object(m) => {
            let parts: Vec<String> = m.iter().map(|(k, v)| format!("{k}={}", show(k, v))).collect();
            let unit = if key.contains("latency") { " µs" } else { "" };
            format!("{}{unit}", parts.join(" "))
        }
        Json::Number(n) => match n.as_f64() {
            Some(x) if matches!(key, "rate" | "per_cpu_s" | "published_rate" | "delivered_rate") => {
                format!("{} ({x})", human(x))
            }
            _ => n.to_string(),
        },
        Json::String(s) => s.clone(),
        other => other.to_string(),
    }
}
