//! Node-pressure eviction: while memory, disk or PIDs are short, fail the lowest-ranked pod
//! (BestEffort before Burstable before Guaranteed, lower priority first) once per interval, as
//! the kubelet's hard eviction does. The pod's worker then stops its containers.

use crate::pods::status::qos_class;
use k8s_openapi::api::core::v1::Pod;
use rkube_client::{Client, EventRecorder, EventType, PatchType, Store};
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

fn qos_rank(pod: &Pod) -> u8 {
    match qos_class(pod) {
        "BestEffort" => 0,
        "Burstable" => 1,
        _ => 2,
    }
}

/// The pod to evict first among `pods`, if any may be evicted.
pub fn pick_victim(pods: &[Arc<Pod>]) -> Option<Arc<Pod>> {
    pods.iter()
        .filter(|p| !matches!(p.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Succeeded" | "Failed")))
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        // Critical system pods are never evicted for pressure.
        .filter(|p| p.spec.as_ref().and_then(|s| s.priority).unwrap_or(0) < 2_000_000_000)
        .min_by_key(|p| {
            (
                qos_rank(p),
                p.spec.as_ref().and_then(|s| s.priority).unwrap_or(0),
                p.metadata.creation_timestamp.clone().map(|t| std::cmp::Reverse(t.0)),
            )
        })
        .cloned()
}

/// Evicts one pod per `interval` while `pressure` reports a shortage.
pub async fn run(
    client: Client,
    recorder: EventRecorder,
    pods: Store<Pod>,
    pressure: Arc<Mutex<(bool, bool, bool)>>,
    interval: Duration,
    token: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = token.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
        let (memory, disk, pid) = *pressure.lock().unwrap_or_else(|e| e.into_inner());
        let resource = if memory {
            "memory"
        } else if disk {
            "ephemeral-storage"
        } else if pid {
            "pids"
        } else {
            continue;
        };
        let Some(victim) = pick_victim(&pods.list()) else { continue };
        let message = format!("The node was low on resource: {resource}. ");
        let api = client.api::<Pod>(victim.metadata.namespace.as_deref());
        let name = victim.metadata.name.clone().unwrap_or_default();
        let patch = json!({"status": {"phase": "Failed", "reason": "Evicted", "message": message,
            "conditions": [{"type": "DisruptionTarget", "status": "True", "reason": "TerminationByKubelet",
                "message": message, "lastTransitionTime": jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()}]}});
        match api.patch_status(&name, PatchType::StrategicMerge, &patch).await {
            Ok(_) => {
                tracing::warn!(pod = %name, resource, "evicted pod for node pressure");
                recorder.record(victim.as_ref(), EventType::Warning, "Evicted", &message);
            }
            Err(e) => tracing::warn!(pod = %name, error = %e, "evicting pod failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, priority: i32, limits: bool) -> Arc<Pod> {
        let resources = if limits {
            json!({"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "1", "memory": "1Gi"}})
        } else {
            json!({})
        };
        Arc::new(
            serde_json::from_value(json!({"metadata": {"name": name}, "spec": {"priority": priority,
                "containers": [{"name": "c", "resources": resources}]}}))
            .unwrap(),
        )
    }

    #[test]
    fn best_effort_and_low_priority_go_first() {
        let pods =
            vec![pod("guaranteed", 0, true), pod("besteffort-high", 100, false), pod("besteffort-low", 0, false)];
        assert_eq!(pick_victim(&pods).unwrap().metadata.name.as_deref(), Some("besteffort-low"));
        assert!(pick_victim(&[pod("critical", 2_000_001_000, false)]).is_none());
    }
}
