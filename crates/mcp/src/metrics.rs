//! Prometheus metrics in the text exposition format, without a registry
//! dependency: a few counters and a latency histogram per tool.
//!
//! Tool labels are only ever declared tool names (unknown names count as
//! `_unknown`), so a client cannot grow the label set.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25, 1.0, 5.0, 30.0,
];

#[derive(Default)]
struct ToolStats {
    /// By outcome: allowed_ok, allowed_error, denied, needs_approval, invalid.
    outcomes: RwLock<BTreeMap<&'static str, AtomicU64>>,
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

#[derive(Default)]
pub struct Metrics {
    tools: RwLock<BTreeMap<String, Arc<ToolStats>>>,
    auth_failures: AtomicU64,
    reloads_ok: AtomicU64,
    reloads_failed: AtomicU64,
    http_rejected: RwLock<BTreeMap<u16, AtomicU64>>,
}

impl Metrics {
    fn tool(&self, name: &str) -> Arc<ToolStats> {
        if let Some(t) = self
            .tools
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
        {
            return t.clone();
        }
        self.tools
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .entry(name.to_string())
            .or_default()
            .clone()
    }

    /// One finished tools/call. `tool` must be a declared name or `_unknown`.
    pub fn call(&self, tool: &str, outcome: &'static str, took: Duration) {
        let t = self.tool(tool);
        {
            let read = t.outcomes.read().unwrap_or_else(|e| e.into_inner());
            if let Some(c) = read.get(outcome) {
                c.fetch_add(1, Ordering::Relaxed);
            } else {
                drop(read);
                t.outcomes
                    .write()
                    .unwrap_or_else(|e| e.into_inner())
                    .entry(outcome)
                    .or_default()
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
        let secs = took.as_secs_f64();
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                t.buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        t.count.fetch_add(1, Ordering::Relaxed);
        t.sum_micros
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
    }

    pub fn auth_failure(&self) {
        self.auth_failures.fetch_add(1, Ordering::Relaxed);
    }

    pub fn reload(&self, ok: bool) {
        if ok {
            self.reloads_ok.fetch_add(1, Ordering::Relaxed);
        } else {
            self.reloads_failed.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn http_rejected(&self, status: u16) {
        let read = self.http_rejected.read().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = read.get(&status) {
            c.fetch_add(1, Ordering::Relaxed);
            return;
        }
        drop(read);
        self.http_rejected
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .entry(status)
            .or_default()
            .fetch_add(1, Ordering::Relaxed);
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let mut o = String::new();
        let tools = self.tools.read().unwrap_or_else(|e| e.into_inner());
        o.push_str("# HELP airlock_mcp_calls_total tools/call requests by tool and outcome.\n# TYPE airlock_mcp_calls_total counter\n");
        for (name, t) in tools.iter() {
            for (outcome, c) in t.outcomes.read().unwrap_or_else(|e| e.into_inner()).iter() {
                let _ = writeln!(
                    o,
                    "airlock_mcp_calls_total{{tool=\"{}\",outcome=\"{outcome}\"}} {}",
                    escape(name),
                    c.load(Ordering::Relaxed)
                );
            }
        }
        o.push_str("# HELP airlock_mcp_denials_total tools/call requests the policy denied.\n# TYPE airlock_mcp_denials_total counter\n");
        for (name, t) in tools.iter() {
            let denied = t
                .outcomes
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .get("denied")
                .map(|c| c.load(Ordering::Relaxed))
                .unwrap_or(0);
            let _ = writeln!(
                o,
                "airlock_mcp_denials_total{{tool=\"{}\"}} {denied}",
                escape(name)
            );
        }
        o.push_str("# HELP airlock_mcp_call_duration_seconds tools/call latency (decision and tool run).\n# TYPE airlock_mcp_call_duration_seconds histogram\n");
        for (name, t) in tools.iter() {
            let n = escape(name);
            for (i, b) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    o,
                    "airlock_mcp_call_duration_seconds_bucket{{tool=\"{n}\",le=\"{b}\"}} {}",
                    t.buckets[i].load(Ordering::Relaxed)
                );
            }
            let count = t.count.load(Ordering::Relaxed);
            let _ = writeln!(
                o,
                "airlock_mcp_call_duration_seconds_bucket{{tool=\"{n}\",le=\"+Inf\"}} {count}"
            );
            let _ = writeln!(
                o,
                "airlock_mcp_call_duration_seconds_sum{{tool=\"{n}\"}} {}",
                t.sum_micros.load(Ordering::Relaxed) as f64 / 1e6
            );
            let _ = writeln!(
                o,
                "airlock_mcp_call_duration_seconds_count{{tool=\"{n}\"}} {count}"
            );
        }
        let _ = writeln!(
            o,
            "# HELP airlock_mcp_auth_failures_total HTTP requests with a missing or unknown key.\n# TYPE airlock_mcp_auth_failures_total counter\nairlock_mcp_auth_failures_total {}",
            self.auth_failures.load(Ordering::Relaxed)
        );
        o.push_str("# HELP airlock_mcp_http_rejected_total HTTP requests refused before MCP handling, by status.\n# TYPE airlock_mcp_http_rejected_total counter\n");
        for (status, c) in self
            .http_rejected
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            let _ = writeln!(
                o,
                "airlock_mcp_http_rejected_total{{status=\"{status}\"}} {}",
                c.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(
            o,
            "# HELP airlock_mcp_reloads_total Config reloads by result.\n# TYPE airlock_mcp_reloads_total counter\nairlock_mcp_reloads_total{{result=\"ok\"}} {}\nairlock_mcp_reloads_total{{result=\"failed\"}} {}",
            self.reloads_ok.load(Ordering::Relaxed),
            self.reloads_failed.load(Ordering::Relaxed)
        );
        o
    }
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_cumulative_buckets() {
        let m = Metrics::default();
        m.call("echo", "allowed_ok", Duration::from_micros(300));
        m.call("echo", "denied", Duration::from_micros(20));
        m.auth_failure();
        let text = m.render();
        assert!(
            text.contains("airlock_mcp_calls_total{tool=\"echo\",outcome=\"allowed_ok\"} 1"),
            "{text}"
        );
        assert!(text.contains("airlock_mcp_denials_total{tool=\"echo\"} 1"));
        assert!(text
            .contains("airlock_mcp_call_duration_seconds_bucket{tool=\"echo\",le=\"0.0001\"} 1"));
        assert!(text
            .contains("airlock_mcp_call_duration_seconds_bucket{tool=\"echo\",le=\"0.0005\"} 2"));
        assert!(text.contains("airlock_mcp_call_duration_seconds_count{tool=\"echo\"} 2"));
        assert!(text.contains("airlock_mcp_auth_failures_total 1"));
    }
}
