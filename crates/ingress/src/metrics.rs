//! Counters served on `/metrics` in Prometheus' text format.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The ingress' counters; all monotonic except the gauges noted.
#[derive(Default)]
pub struct Metrics {
    /// Responses by status class (index 1 = 1xx ... 5 = 5xx).
    responses: [AtomicU64; 6],
    /// Sum of request durations, in microseconds.
    request_micros: AtomicU64,
    /// Connects to endpoints that failed.
    pub connect_failures: AtomicU64,
    /// Requests sent to another endpoint after a connect failure.
    pub retries: AtomicU64,
    /// Routing table rebuilds.
    pub rebuilds: AtomicU64,
    /// Gauge: duration of the last rebuild, in microseconds.
    pub last_rebuild_micros: AtomicU64,
    /// Gauge: routes in the current table.
    pub routes: AtomicU64,
    /// Gauge: Ingresses served.
    pub ingresses: AtomicU64,
    /// Ingress status writes.
    pub status_updates: AtomicU64,
}

impl Metrics {
    /// Counts one answered request.
    pub fn record_response(&self, status: u16, took: Duration) {
        let class = usize::from(status / 100).min(5);
        self.responses[class].fetch_add(1, Ordering::Relaxed);
        self.request_micros.fetch_add(took.as_micros() as u64, Ordering::Relaxed);
    }

    /// Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        out.push_str("# HELP rkube_ingress_requests_total Requests answered, by status class.\n");
        out.push_str("# TYPE rkube_ingress_requests_total counter\n");
        for (class, counter) in self.responses.iter().enumerate().skip(1) {
            let _ = writeln!(out, "rkube_ingress_requests_total{{code=\"{class}xx\"}} {}", get(counter));
        }
        let total: u64 = self.responses.iter().map(get).sum();
        let seconds = get(&self.request_micros) as f64 / 1e6;
        let rows: [(&str, &str, &str, String); 9] = [
            ("rkube_ingress_request_duration_seconds_sum", "counter", "Time spent on requests.", seconds.to_string()),
            ("rkube_ingress_request_duration_seconds_count", "counter", "Requests timed.", total.to_string()),
            (
                "rkube_ingress_upstream_connect_failures_total",
                "counter",
                "Connects to endpoints that failed.",
                get(&self.connect_failures).to_string(),
            ),
            (
                "rkube_ingress_upstream_retries_total",
                "counter",
                "Requests moved to another endpoint after a connect failure.",
                get(&self.retries).to_string(),
            ),
            (
                "rkube_ingress_table_rebuilds_total",
                "counter",
                "Routing table rebuilds.",
                get(&self.rebuilds).to_string(),
            ),
            (
                "rkube_ingress_table_rebuild_seconds",
                "gauge",
                "Duration of the last routing table rebuild.",
                (get(&self.last_rebuild_micros) as f64 / 1e6).to_string(),
            ),
            ("rkube_ingress_routes", "gauge", "Host and path routes served.", get(&self.routes).to_string()),
            ("rkube_ingress_ingresses", "gauge", "Ingresses served.", get(&self.ingresses).to_string()),
            (
                "rkube_ingress_status_updates_total",
                "counter",
                "Ingress status writes.",
                get(&self.status_updates).to_string(),
            ),
        ];
        for (name, kind, help, value) in rows {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_count_by_class() {
        let m = Metrics::default();
        m.record_response(200, Duration::from_millis(2));
        m.record_response(204, Duration::from_millis(2));
        m.record_response(503, Duration::from_millis(1));
        m.record_response(999, Duration::ZERO);
        let text = m.render();
        assert!(text.contains("rkube_ingress_requests_total{code=\"2xx\"} 2"), "{text}");
        assert!(text.contains("rkube_ingress_requests_total{code=\"5xx\"} 2"), "{text}");
        assert!(text.contains("rkube_ingress_request_duration_seconds_count 4"), "{text}");
    }
}
