//! Helpers on API objects every controller needs: controller ownerReferences, label selectors,
//! and pod readiness / availability as Kubernetes defines them.

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::{Metadata, Resource};
use std::collections::BTreeMap;

/// The ownerReference with `controller: true`, if any.
pub fn controller_of(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references.as_ref()?.iter().find(|r| r.controller == Some(true))
}

/// The controller ownerReference a child of `owner` carries (blocking the owner's foreground
/// deletion, as Kubernetes' controllers set it).
pub fn controller_reference<K: Resource + Metadata<Ty = ObjectMeta>>(owner: &K) -> OwnerReference {
    OwnerReference {
        api_version: K::API_VERSION.to_string(),
        kind: K::KIND.to_string(),
        name: owner.metadata().name.clone().unwrap_or_default(),
        uid: owner.metadata().uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// Whether `meta`'s controller is the object with `uid`.
pub fn is_controlled_by(meta: &ObjectMeta, uid: &str) -> bool {
    controller_of(meta).is_some_and(|r| r.uid == uid)
}

/// The `namespace/name` key of the controller that owns `meta`, if it is of `kind`.
pub fn controller_key(meta: &ObjectMeta, kind: &str) -> Option<String> {
    let owner = controller_of(meta).filter(|r| r.kind == kind)?;
    Some(match meta.namespace.as_deref() {
        Some(ns) if !ns.is_empty() => format!("{ns}/{}", owner.name),
        _ => owner.name.clone(),
    })
}

/// A parsed label selector. A missing selector matches nothing; an empty one everything, as
/// in Kubernetes' workload APIs.
#[derive(Debug, Clone)]
pub struct Selector(Option<rkube_api::selector::LabelSelector>);

impl Selector {
    /// Parses a metav1.LabelSelector; an invalid one matches nothing.
    pub fn new(selector: Option<&LabelSelector>) -> Selector {
        let parsed = selector.and_then(|s| {
            let value = serde_json::to_value(s).ok()?;
            rkube_api::selector::LabelSelector::from_object(&value).ok()
        });
        Selector(parsed)
    }

    /// Parses a selector in its query-string form (`app=web,tier in (a,b)`), as a Scale's
    /// `status.selector` carries it; an invalid one matches nothing.
    pub fn parse(text: &str) -> Selector {
        Selector(rkube_api::selector::LabelSelector::parse(text).ok())
    }

    /// A selector of exactly these labels (ReplicationController's map selector).
    pub fn from_map(labels: Option<&BTreeMap<String, String>>) -> Selector {
        Selector::new(labels.map(|l| LabelSelector { match_labels: Some(l.clone()), match_expressions: None }).as_ref())
    }

    /// Whether `labels` match.
    pub fn matches(&self, labels: Option<&BTreeMap<String, String>>) -> bool {
        let empty = BTreeMap::new();
        self.0.as_ref().is_some_and(|s| s.matches(labels.unwrap_or(&empty)))
    }

    /// True for a selector that matches everything (often a mistake for a workload).
    pub fn is_empty(&self) -> bool {
        self.0.as_ref().is_some_and(|s| s.is_empty())
    }
}

/// Whether a pod has the Ready condition True.
pub fn pod_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Whether a pod has been Ready for at least `min_ready_seconds` at `now`.
pub fn pod_available(pod: &Pod, min_ready_seconds: i32, now: jiff::Timestamp) -> bool {
    let Some(ready) = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready" && c.status == "True"))
    else {
        return false;
    };
    if min_ready_seconds <= 0 {
        return true;
    }
    ready
        .last_transition_time
        .as_ref()
        .is_some_and(|t| now.as_second() - t.0.as_second() >= i64::from(min_ready_seconds))
}

/// Whether a pod is finished (Succeeded or Failed) and so no longer counts as a replica.
pub fn pod_terminated(pod: &Pod) -> bool {
    matches!(pod.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Succeeded" | "Failed"))
}

/// Whether a pod counts as a live replica: not finished and not being deleted.
pub fn pod_active(pod: &Pod) -> bool {
    !pod_terminated(pod) && pod.metadata.deletion_timestamp.is_none()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn selectors_follow_workload_semantics() {
        let labels = BTreeMap::from([("app".to_string(), "web".to_string())]);
        assert!(!Selector::new(None).matches(Some(&labels)), "no selector matches nothing");
        let all = LabelSelector::default();
        assert!(Selector::new(Some(&all)).matches(Some(&labels)));
        let web: LabelSelector =
            serde_json::from_value(json!({"matchExpressions": [{"key": "app", "operator": "In", "values": ["web"]}]}))
                .unwrap();
        assert!(Selector::new(Some(&web)).matches(Some(&labels)));
        assert!(!Selector::new(Some(&web)).matches(None));
        assert!(Selector::from_map(Some(&labels)).matches(Some(&labels)));
    }

    #[test]
    fn availability_waits_for_min_ready_seconds() {
        let p = pod(
            json!({"status": {"conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}}),
        );
        let at = |s: &str| s.parse::<jiff::Timestamp>().unwrap();
        assert!(pod_ready(&p));
        assert!(pod_available(&p, 0, at("2026-01-01T00:00:00Z")));
        assert!(!pod_available(&p, 10, at("2026-01-01T00:00:05Z")));
        assert!(pod_available(&p, 10, at("2026-01-01T00:00:10Z")));
        let not_ready = pod(json!({"status": {"conditions": [{"type": "Ready", "status": "False"}]}}));
        assert!(!pod_available(&not_ready, 0, at("2026-01-01T00:00:00Z")));
    }

    #[test]
    fn controller_keys_come_from_the_controller_reference() {
        let p = pod(json!({"metadata": {"namespace": "ns", "name": "p", "ownerReferences": [
            {"apiVersion": "v1", "kind": "ConfigMap", "name": "other", "uid": "1"},
            {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web", "uid": "2", "controller": true}]}}));
        assert_eq!(controller_key(&p.metadata, "ReplicaSet").as_deref(), Some("ns/web"));
        assert_eq!(controller_key(&p.metadata, "Job"), None);
        assert!(is_controlled_by(&p.metadata, "2") && !is_controlled_by(&p.metadata, "1"));
    }
}
