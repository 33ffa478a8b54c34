//! The status a ReplicaSet or ReplicationController reports: replica counts from the pods it
//! owns, and the ReplicaFailure condition while creating or deleting pods fails. Both kinds
//! share these JSON field names, so one computation and one merge patch serve both.

use crate::objects::{Selector, pod_available, pod_ready};
use k8s_openapi::api::core::v1::Pod;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// The condition type set while pods cannot be created or deleted.
pub const REPLICA_FAILURE: &str = "ReplicaFailure";

/// One condition, as ReplicaSetCondition and ReplicationControllerCondition serialize.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// Condition type, e.g. "ReplicaFailure".
    #[serde(rename = "type")]
    pub type_: String,
    /// "True", "False" or "Unknown".
    pub status: String,
    /// When the status last changed (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
    /// Machine-readable cause.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Human-readable detail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// The status fields this controller owns (absent fields read as zero).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaStatus {
    /// Active pods owned.
    #[serde(default)]
    pub replicas: i32,
    /// Of those, the ones carrying every label of the template.
    #[serde(default)]
    pub fully_labeled_replicas: i32,
    /// Of those, the Ready ones.
    #[serde(default)]
    pub ready_replicas: i32,
    /// Of those, the ones Ready for at least minReadySeconds.
    #[serde(default)]
    pub available_replicas: i32,
    /// The generation this status describes.
    #[serde(default)]
    pub observed_generation: i64,
    /// ReplicaFailure, when present.
    #[serde(default)]
    pub conditions: Vec<Condition>,
}

impl ReplicaStatus {
    /// Reads the status of either kind from its serialized form.
    pub fn from_object_status(status: Option<Value>) -> ReplicaStatus {
        status.and_then(|v| serde_json::from_value(v).ok()).unwrap_or_default()
    }

    /// A merge patch that sets every field (conditions removed when there are none).
    pub fn to_patch(&self) -> Value {
        let conditions = if self.conditions.is_empty() { Value::Null } else { json!(self.conditions) };
        json!({"status": {
            "replicas": self.replicas,
            "fullyLabeledReplicas": self.fully_labeled_replicas,
            "readyReplicas": self.ready_replicas,
            "availableReplicas": self.available_replicas,
            "observedGeneration": self.observed_generation,
            "conditions": conditions,
        }})
    }
}

/// What the owner's spec says about counting.
pub struct Spec<'a> {
    /// Desired replicas.
    pub replicas: i32,
    /// Seconds a pod must be Ready to count as available.
    pub min_ready_seconds: i32,
    /// The template's labels (for fullyLabeledReplicas).
    pub template_labels: Option<&'a BTreeMap<String, String>>,
    /// metadata.generation.
    pub generation: i64,
}

/// The result of trying to create or delete pods this sync: Err carries the failure message.
pub type ManageOutcome<'a> = Result<(), &'a str>;

/// Computes the new status from the owned active `pods`, the old status and whether managing
/// replicas failed (sets or clears ReplicaFailure, as Kubernetes' calculateStatus).
pub fn compute(
    old: &ReplicaStatus,
    spec: &Spec<'_>,
    pods: &[Arc<Pod>],
    managed: ManageOutcome<'_>,
    now: jiff::Timestamp,
) -> ReplicaStatus {
    let template = Selector::from_map(Some(spec.template_labels.unwrap_or(&BTreeMap::new())));
    let mut status = ReplicaStatus {
        replicas: pods.len() as i32,
        observed_generation: spec.generation,
        conditions: old.conditions.clone(),
        ..Default::default()
    };
    for pod in pods {
        if template.matches(pod.metadata.labels.as_ref()) {
            status.fully_labeled_replicas += 1;
        }
        if pod_ready(pod) {
            status.ready_replicas += 1;
            if pod_available(pod, spec.min_ready_seconds, now) {
                status.available_replicas += 1;
            }
        }
    }
    let failing = status.conditions.iter().any(|c| c.type_ == REPLICA_FAILURE);
    match managed {
        // An existing condition keeps its first message and transition time.
        Err(message) if !failing => {
            let diff = pods.len() as i64 - i64::from(spec.replicas);
            let reason = if diff < 0 { "FailedCreate" } else { "FailedDelete" };
            status.conditions.push(Condition {
                type_: REPLICA_FAILURE.into(),
                status: "True".into(),
                last_transition_time: Some(now.to_string()),
                reason: Some(reason.into()),
                message: Some(message.into()),
            });
        }
        Ok(()) if failing => status.conditions.retain(|c| c.type_ != REPLICA_FAILURE),
        _ => {}
    }
    status
}

/// How long until the first Ready pod that is not yet available becomes so (None when there
/// is none), so the owner is looked at again then without waiting for a pod event.
pub fn next_availability(pods: &[Arc<Pod>], min_ready_seconds: i32, now: jiff::Timestamp) -> Option<Duration> {
    if min_ready_seconds <= 0 {
        return None;
    }
    pods.iter()
        .filter(|p| pod_ready(p) && !pod_available(p, min_ready_seconds, now))
        .filter_map(|p| {
            let since = p
                .status
                .as_ref()?
                .conditions
                .as_ref()?
                .iter()
                .find(|c| c.type_ == "Ready" && c.status == "True")?
                .last_transition_time
                .as_ref()?;
            // Availability is judged in whole seconds; aim just past the boundary.
            let due_ms = (since.0.as_second() + i64::from(min_ready_seconds)) * 1000;
            let wait_ms = (due_ms - now.as_millisecond()).max(0) + 100;
            Some(Duration::from_millis(wait_ms as u64))
        })
        .min()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(labels: Value, ready_since: Option<&str>) -> Arc<Pod> {
        let conditions = match ready_since {
            Some(t) => json!([{"type": "Ready", "status": "True", "lastTransitionTime": t}]),
            None => json!([{"type": "Ready", "status": "False"}]),
        };
        Arc::new(
            serde_json::from_value(json!({"metadata": {"labels": labels}, "status": {"conditions": conditions}}))
                .unwrap(),
        )
    }

    #[test]
    fn counts_and_failure_condition_follow_kubernetes() {
        let now: jiff::Timestamp = "2026-01-01T00:00:10Z".parse().unwrap();
        let labels = BTreeMap::from([("app".to_string(), "web".to_string()), ("tier".to_string(), "fe".to_string())]);
        let spec = Spec { replicas: 4, min_ready_seconds: 5, template_labels: Some(&labels), generation: 3 };
        let pods = vec![
            pod(json!({"app": "web", "tier": "fe"}), Some("2026-01-01T00:00:00Z")),
            pod(json!({"app": "web", "tier": "fe"}), Some("2026-01-01T00:00:08Z")),
            pod(json!({"app": "web"}), None),
        ];
        let failed = compute(&ReplicaStatus::default(), &spec, &pods, Err("quota exceeded"), now);
        assert_eq!(
            (failed.replicas, failed.fully_labeled_replicas, failed.ready_replicas, failed.available_replicas),
            (3, 2, 2, 1)
        );
        assert_eq!(failed.observed_generation, 3);
        assert_eq!(failed.conditions.len(), 1);
        assert_eq!(failed.conditions[0].reason.as_deref(), Some("FailedCreate"));
        let again = compute(&failed, &spec, &pods, Err("other"), now);
        assert_eq!(again.conditions, failed.conditions, "an existing failure is kept as it was");
        let fine = compute(&failed, &spec, &pods, Ok(()), now);
        assert!(fine.conditions.is_empty());
        assert_eq!(fine.to_patch()["status"]["conditions"], Value::Null);
        assert_eq!(next_availability(&pods, 5, now), Some(Duration::from_millis(3100)));
        assert_eq!(next_availability(&pods, 0, now), None);
    }
}
