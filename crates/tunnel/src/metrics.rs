//! Prometheus text metrics for the gateway (no registry crate needed).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::Duration;

const BUCKETS: [f64; 10] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5, 2.5, 10.0,
];

#[derive(Default)]
pub struct Metrics {
    pub requests: Mutex<BTreeMap<u16, u64>>,
    pub agent_auth_failures: AtomicU64,
    pub link_auth_failures: AtomicU64,
    pub bytes_up: AtomicU64,
    pub bytes_down: AtomicU64,
    pub link_failures_midstream: AtomicU64,
    hist: [AtomicU64; 11],
    sum_micros: AtomicU64,
}

impl Metrics {
    pub fn request(&self, status: u16, took: Duration) {
        if let Ok(mut m) = self.requests.lock() {
            *m.entry(status).or_default() += 1;
        }
        let s = took.as_secs_f64();
        let i = BUCKETS
            .iter()
            .position(|&b| s <= b)
            .unwrap_or(BUCKETS.len());
        self.hist[i].fetch_add(1, Relaxed);
        self.sum_micros.fetch_add(took.as_micros() as u64, Relaxed);
    }

    pub fn render(&self, links: &BTreeMap<String, usize>) -> String {
        let mut o = String::new();
        let _ = writeln!(o, "# TYPE airlock_gateway_links_up gauge");
        for (t, n) in links {
            let _ = writeln!(o, "airlock_gateway_links_up{{tunnel=\"{t}\"}} {n}");
        }
        let _ = writeln!(o, "# TYPE airlock_gateway_requests_total counter");
        if let Ok(m) = self.requests.lock() {
            for (code, n) in m.iter() {
                let _ = writeln!(o, "airlock_gateway_requests_total{{code=\"{code}\"}} {n}");
            }
        }
        let _ = writeln!(o, "# TYPE airlock_gateway_auth_failures_total counter");
        let _ = writeln!(
            o,
            "airlock_gateway_auth_failures_total{{layer=\"agent\"}} {}",
            self.agent_auth_failures.load(Relaxed)
        );
        let _ = writeln!(
            o,
            "airlock_gateway_auth_failures_total{{layer=\"link\"}} {}",
            self.link_auth_failures.load(Relaxed)
        );
        let _ = writeln!(o, "# TYPE airlock_gateway_bytes_total counter");
        let _ = writeln!(
            o,
            "airlock_gateway_bytes_total{{direction=\"to_connector\"}} {}",
            self.bytes_up.load(Relaxed)
        );
        let _ = writeln!(
            o,
            "airlock_gateway_bytes_total{{direction=\"to_agent\"}} {}",
            self.bytes_down.load(Relaxed)
        );
        let _ = writeln!(
            o,
            "# TYPE airlock_gateway_midstream_link_failures_total counter"
        );
        let _ = writeln!(
            o,
            "airlock_gateway_midstream_link_failures_total {}",
            self.link_failures_midstream.load(Relaxed)
        );
        let _ = writeln!(
            o,
            "# TYPE airlock_gateway_request_duration_seconds histogram"
        );
        let mut cum = 0;
        for (i, b) in BUCKETS.iter().enumerate() {
            cum += self.hist[i].load(Relaxed);
            let _ = writeln!(
                o,
                "airlock_gateway_request_duration_seconds_bucket{{le=\"{b}\"}} {cum}"
            );
        }
        cum += self.hist[BUCKETS.len()].load(Relaxed);
        let _ = writeln!(
            o,
            "airlock_gateway_request_duration_seconds_bucket{{le=\"+Inf\"}} {cum}"
        );
        let _ = writeln!(
            o,
            "airlock_gateway_request_duration_seconds_sum {}",
            self.sum_micros.load(Relaxed) as f64 / 1e6
        );
        let _ = writeln!(o, "airlock_gateway_request_duration_seconds_count {cum}");
        o
    }
}
