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
    /// CPU-second.
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
        if let Some(cpu) = w.client_cpu {
            self.set("client_cpu_s", r2(cpu));
        }
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
