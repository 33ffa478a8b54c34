//! Resource usage for `kubectl top` and the HPA: the kubelet's `/stats/summary` (Kubernetes'
//! Summary API, the CPU and memory parts) from the node's /proc and the CRI's container stats.

use crate::cri::{Cri, api};
use crate::pods::spec::{LABEL_CONTAINER_NAME, LABEL_POD_NAME, LABEL_POD_NAMESPACE, LABEL_POD_UID};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A cumulative CPU reading, to turn into a rate against the next one.
#[derive(Debug, Clone, Copy)]
struct Sample {
    core_nanos: u64,
    at: Instant,
}

/// Computes CPU rates from cumulative counters between calls.
pub struct StatsProvider {
    cri: Cri,
    node_name: String,
    node_cpu: Mutex<Option<Sample>>,
    containers: Mutex<HashMap<String, Sample>>,
}

/// Non-idle CPU time of the whole machine from /proc/stat, in core-nanoseconds.
fn node_cpu_nanos() -> u64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = stat.lines().find(|l| l.starts_with("cpu ")) else { return 0 };
    let fields: Vec<u64> = line.split_whitespace().skip(1).filter_map(|v| v.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal: idle and iowait are not usage.
    let busy: u64 = fields.iter().enumerate().filter(|(i, _)| *i != 3 && *i != 4 && *i < 8).map(|(_, v)| v).sum();
    // USER_HZ is 100 on Linux.
    busy * 10_000_000
}

fn rate(prev: Option<Sample>, now: Sample) -> Option<u64> {
    let prev = prev?;
    let dt = now.at.checked_duration_since(prev.at)?.as_nanos();
    if dt == 0 {
        return None;
    }
    Some((u128::from(now.core_nanos.saturating_sub(prev.core_nanos)) * 1_000_000_000 / dt) as u64)
}

fn time_now() -> String {
    jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn value(v: &Option<api::UInt64Value>) -> Option<u64> {
    v.as_ref().map(|v| v.value)
}

impl StatsProvider {
    /// A provider for the node `node_name`.
    pub fn new(cri: Cri, node_name: String) -> StatsProvider {
        StatsProvider { cri, node_name, node_cpu: Mutex::default(), containers: Mutex::default() }
    }

    fn node_cpu_rate(&self) -> (u64, Option<u64>) {
        let now = Sample { core_nanos: node_cpu_nanos(), at: Instant::now() };
        let mut last = self.node_cpu.lock().unwrap_or_else(|e| e.into_inner());
        let r = rate(*last, now);
        // Keep the older sample while it is fresh, so rates span at least a second.
        if last.is_none_or(|l| now.at.duration_since(l.at) >= Duration::from_secs(1)) {
            *last = Some(now);
        }
        (now.core_nanos, r)
    }

    /// The Summary document: node CPU and memory, and per pod and container.
    pub async fn summary(&self) -> Result<Value, crate::cri::CriError> {
        let (mut node_nanos, mut node_rate) = self.node_cpu_rate();
        if node_rate.is_none() {
            // First call: a short second sample gives a rate at once.
            tokio::time::sleep(Duration::from_millis(200)).await;
            (node_nanos, node_rate) = self.node_cpu_rate();
        }
        let m = crate::node::MachineStats::read(std::path::Path::new("/"));
        let t = time_now();
        let node = json!({
            "nodeName": self.node_name,
            "cpu": {"time": t, "usageNanoCores": node_rate.unwrap_or(0), "usageCoreNanoSeconds": node_nanos},
            "memory": {"time": t, "availableBytes": m.memory_available,
                       "usageBytes": m.memory_total.saturating_sub(m.memory_available),
                       "workingSetBytes": m.memory_total.saturating_sub(m.memory_available)},
        });

        let stats = self
            .cri
            .runtime
            .clone()
            .list_container_stats(api::ListContainerStatsRequest { filter: None })
            .await?
            .into_inner()
            .stats;
        let running: std::collections::HashSet<String> = self
            .cri
            .list_containers()
            .await?
            .into_iter()
            .filter(|c| c.state == api::ContainerState::ContainerRunning as i32)
            .map(|c| c.id)
            .collect();
        let mut pods: BTreeMap<String, (Value, Vec<Value>, u64, u64)> = BTreeMap::new();
        let mut seen = self.containers.lock().unwrap_or_else(|e| e.into_inner());
        let mut fresh = HashMap::new();
        for s in stats {
            let Some(attrs) = &s.attributes else { continue };
            if !running.contains(&attrs.id) {
                continue;
            }
            let label = |k: &str| attrs.labels.get(k).cloned().unwrap_or_default();
            let uid = label(LABEL_POD_UID);
            let cpu = s.cpu.as_ref();
            let core_nanos = cpu.and_then(|c| value(&c.usage_core_nano_seconds)).unwrap_or(0);
            let now = Sample { core_nanos, at: Instant::now() };
            // containerd reports nanocores itself; fall back to our own rate when it does not.
            let nano_cores = cpu
                .and_then(|c| value(&c.usage_nano_cores))
                .filter(|v| *v > 0)
                .or_else(|| rate(seen.get(&attrs.id).copied(), now))
                .unwrap_or(0);
            fresh.insert(attrs.id.clone(), seen.get(&attrs.id).copied().unwrap_or(now));
            let working_set = s.memory.as_ref().and_then(|m| value(&m.working_set_bytes)).unwrap_or(0);
            let entry = pods.entry(uid.clone()).or_insert_with(|| {
                (
                    json!({"name": label(LABEL_POD_NAME), "namespace": label(LABEL_POD_NAMESPACE), "uid": uid}),
                    vec![],
                    0,
                    0,
                )
            });
            entry.1.push(json!({
                "name": label(LABEL_CONTAINER_NAME),
                "cpu": {"time": t, "usageNanoCores": nano_cores, "usageCoreNanoSeconds": core_nanos},
                "memory": {"time": t, "workingSetBytes": working_set},
            }));
            entry.2 += nano_cores;
            entry.3 += working_set;
        }
        *seen = fresh;
        let pods: Vec<Value> = pods
            .into_values()
            .map(|(pod_ref, containers, cpu, mem)| {
                json!({"podRef": pod_ref, "containers": containers,
                       "cpu": {"time": t, "usageNanoCores": cpu}, "memory": {"time": t, "workingSetBytes": mem}})
            })
            .collect();
        Ok(json!({"node": node, "pods": pods}))
    }
}

/// `GET /stats/summary` over `provider`.
pub fn router(provider: std::sync::Arc<StatsProvider>) -> axum::Router {
    use axum::http::StatusCode;
    use axum::response::IntoResponse;
    axum::Router::new().route(
        "/stats/summary",
        axum::routing::get(move || {
            let provider = provider.clone();
            async move {
                match provider.summary().await {
                    Ok(v) => ([(axum::http::header::CONTENT_TYPE, "application/json")], v.to_string()).into_response(),
                    Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
                }
            }
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_divide_counter_growth_by_elapsed_time() {
        let at = Instant::now();
        let prev = Sample { core_nanos: 1_000_000_000, at };
        let now = Sample { core_nanos: 1_500_000_000, at: at + Duration::from_secs(1) };
        assert_eq!(rate(Some(prev), now), Some(500_000_000));
        assert_eq!(rate(None, now), None);
        assert!(node_cpu_nanos() > 0);
    }
}
