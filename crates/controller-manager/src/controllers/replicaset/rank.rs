//! Which pods a scale-down deletes first: Kubernetes' ActivePods ranking, so the least useful
//! replicas (unscheduled, pending, not ready, crowded onto one node, just started) go before
//! long-running ready ones.

use crate::objects::pod_ready;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use std::collections::HashMap;
use std::sync::Arc;

/// Annotation by which users say how costly deleting a pod is (lower goes first).
pub const DELETION_COST: &str = "controller.kubernetes.io/pod-deletion-cost";

/// A sort key: pods with smaller keys are deleted first. Built field by field in the order of
/// Kubernetes' criteria, so the order is total (a comparator with ties resolved in different
/// places would not be, and Rust's sort may panic on such a comparator).
type Key = (bool, u8, bool, i32, i64, i64, i64, i64, String);

/// Sorts `pods` so the first ones are the best to delete. `related` are the pods of every
/// sibling owner (same controller, e.g. one Deployment's ReplicaSets): a pod on a node crowded
/// with related pods goes before one that is alone.
pub fn order_for_deletion(pods: &mut [Arc<Pod>], related: &[Arc<Pod>], now: jiff::Timestamp) {
    let mut per_node: HashMap<&str, i64> = HashMap::new();
    for p in related.iter().filter(|p| crate::objects::pod_active(p)) {
        *per_node.entry(node_of(p)).or_default() += 1;
    }
    let keys: HashMap<String, Key> = pods
        .iter()
        .map(|p| {
            let crowd = per_node.get(node_of(p)).copied().unwrap_or(0);
            (uid_of(p), key(p, crowd, now))
        })
        .collect();
    pods.sort_by(|a, b| keys.get(&uid_of(a)).cmp(&keys.get(&uid_of(b))));
}

fn key(pod: &Pod, crowd: i64, now: jiff::Timestamp) -> Key {
    let ready = pod_ready(pod);
    // Only compared between two ready pods: a not-ready one was already ordered first.
    let ready_age = if ready { age_bucket(ready_since(pod), now) } else { 0 };
    (
        !node_of(pod).is_empty(),
        phase_rank(pod),
        ready,
        deletion_cost(pod),
        -crowd,
        ready_age,
        -max_restarts(pod),
        age_bucket(pod.metadata.creation_timestamp.as_ref(), now),
        uid_of(pod),
    )
}

fn node_of(pod: &Pod) -> &str {
    pod.spec.as_ref().and_then(|s| s.node_name.as_deref()).unwrap_or_default()
}

fn uid_of(pod: &Pod) -> String {
    pod.metadata.uid.clone().unwrap_or_default()
}

/// Pending before Unknown before Running (a pod without a phase counts as Pending).
fn phase_rank(pod: &Pod) -> u8 {
    match pod.status.as_ref().and_then(|s| s.phase.as_deref()) {
        Some("Unknown") => 1,
        Some("Running") => 2,
        _ => 0,
    }
}

/// The annotation's value; an absent or unparsable one costs 0, as in Kubernetes.
fn deletion_cost(pod: &Pod) -> i32 {
    pod.metadata.annotations.as_ref().and_then(|a| a.get(DELETION_COST)).and_then(|v| v.parse().ok()).unwrap_or(0)
}

fn ready_since(pod: &Pod) -> Option<&Time> {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready" && c.status == "True"))
        .and_then(|c| c.last_transition_time.as_ref())
}

/// The most restarts of any container (sidecar init containers included).
fn max_restarts(pod: &Pod) -> i64 {
    let Some(status) = pod.status.as_ref() else { return 0 };
    let regular = status.container_statuses.iter().flatten();
    let init = status.init_container_statuses.iter().flatten();
    regular.chain(init).map(|c| i64::from(c.restart_count)).max().unwrap_or(0)
}

/// Age on a logarithmic scale (floor of log2 of nanoseconds), as Kubernetes'
/// LogarithmicScaleDown: pods of roughly the same age tie, so the order among them is left to
/// the later criteria instead of random start-up jitter. A missing time sorts first.
fn age_bucket(t: Option<&Time>, now: jiff::Timestamp) -> i64 {
    let Some(t) = t else { return i64::MIN };
    let nanos = now.as_nanosecond() - t.0.as_nanosecond();
    if nanos <= 0 { -1 } else { i64::from(127 - nanos.leading_zeros() as i32) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(uid: &str, node: &str, phase: &str, ready: bool, created: &str) -> Arc<Pod> {
        let status = if ready { "True" } else { "False" };
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": uid, "uid": uid, "creationTimestamp": created},
                "spec": {"nodeName": node, "containers": []},
                "status": {"phase": phase, "conditions": [
                    {"type": "Ready", "status": status, "lastTransitionTime": created}]},
            }))
            .unwrap(),
        )
    }

    fn names(pods: &[Arc<Pod>]) -> Vec<&str> {
        pods.iter().map(|p| p.metadata.name.as_deref().unwrap()).collect()
    }

    #[test]
    fn unscheduled_pending_not_ready_and_young_pods_go_first() {
        let now: jiff::Timestamp = "2026-01-01T10:00:00Z".parse().unwrap();
        let mut pods = vec![
            pod("old-ready", "n1", "Running", true, "2026-01-01T00:00:00Z"),
            pod("young-ready", "n1", "Running", true, "2026-01-01T09:59:58Z"),
            pod("running-not-ready", "n1", "Running", false, "2026-01-01T00:00:00Z"),
            pod("unknown", "n1", "Unknown", false, "2026-01-01T00:00:00Z"),
            pod("pending", "n1", "Pending", false, "2026-01-01T00:00:00Z"),
            pod("unscheduled", "", "Pending", false, "2026-01-01T00:00:00Z"),
        ];
        order_for_deletion(&mut pods, &[], now);
        assert_eq!(
            names(&pods),
            ["unscheduled", "pending", "unknown", "running-not-ready", "young-ready", "old-ready"]
        );
    }

    #[test]
    fn deletion_cost_and_crowded_nodes_come_before_age() {
        let now: jiff::Timestamp = "2026-01-01T10:00:00Z".parse().unwrap();
        let t = "2026-01-01T00:00:00Z";
        let (a, b, c) = (
            pod("a", "n1", "Running", true, t),
            pod("b", "n2", "Running", true, t),
            pod("c", "n3", "Running", true, t),
        );
        let mut cheap = (*c).clone();
        cheap.metadata.annotations = Some([(DELETION_COST.to_string(), "-5".to_string())].into());
        let related =
            vec![a.clone(), b.clone(), pod("x", "n2", "Running", true, t), pod("y", "n2", "Running", true, t)];
        let mut pods = vec![a.clone(), b.clone(), Arc::new(cheap)];
        order_for_deletion(&mut pods, &related, now);
        assert_eq!(names(&pods), ["c", "b", "a"], "cheapest first, then the pod on the crowded node");
    }
}
