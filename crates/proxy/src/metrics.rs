//! Prometheus metrics of the proxy's syncs (names after kube-proxy's where one exists).

use crate::proxier::SyncStats;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::SystemTime;

/// Counters and the figures of the last sync.
#[derive(Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    syncs: u64,
    failures: u64,
    changes: u64,
    last: SyncStats,
    last_success: Option<SystemTime>,
}

impl Metrics {
    /// Records a successful sync.
    pub fn synced(&self, stats: &SyncStats) {
        let mut m = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        m.syncs += 1;
        m.changes += u64::from(stats.changed);
        m.last = stats.clone();
        m.last_success = Some(SystemTime::now());
    }

    /// Records a failed sync.
    pub fn failed(&self) {
        let mut m = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        m.syncs += 1;
        m.failures += 1;
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let m = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = String::new();
        let mut line = |name: &str, kind: &str, help: &str, value: String| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}");
        };
        line(
            "rkube_proxy_syncs_total",
            "counter",
            "Syncs of the nftables table, failed ones included.",
            m.syncs.to_string(),
        );
        line(
            "rkube_proxy_sync_failures_total",
            "counter",
            "Syncs nft refused or could not run.",
            m.failures.to_string(),
        );
        line(
            "rkube_proxy_sync_changes_total",
            "counter",
            "Syncs that changed the kernel's rules.",
            m.changes.to_string(),
        );
        let last = &m.last;
        let seconds = (last.compute + last.apply).as_secs_f64();
        line(
            "rkube_proxy_sync_proxy_rules_duration_seconds",
            "gauge",
            "Duration of the last successful sync.",
            seconds.to_string(),
        );
        line(
            "rkube_proxy_sync_compute_seconds",
            "gauge",
            "Ruleset computation time of the last sync.",
            last.compute.as_secs_f64().to_string(),
        );
        line(
            "rkube_proxy_sync_apply_seconds",
            "gauge",
            "nft apply time of the last sync.",
            last.apply.as_secs_f64().to_string(),
        );
        let stamp = m
            .last_success
            .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        line(
            "rkube_proxy_sync_proxy_rules_last_timestamp_seconds",
            "gauge",
            "When the last sync succeeded.",
            stamp.to_string(),
        );
        line("rkube_proxy_service_ports", "gauge", "Service ports routed.", last.service_ports.to_string());
        line("rkube_proxy_endpoints", "gauge", "Endpoints over all routed Service ports.", last.endpoints.to_string());
        line("rkube_proxy_nftables_chains", "gauge", "Chains in the table.", last.chains.to_string());
        line("rkube_proxy_nftables_rules", "gauge", "Rules in the table.", last.rules.to_string());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counts() {
        let m = Metrics::default();
        m.synced(&SyncStats { changed: true, chains: 7, ..Default::default() });
        m.failed();
        let text = m.render();
        assert!(text.contains("rkube_proxy_syncs_total 2\n"), "{text}");
        assert!(text.contains("rkube_proxy_sync_failures_total 1\n"));
        assert!(text.contains("rkube_proxy_nftables_chains 7\n"));
    }
}
