//! Taints and tolerations: the taints the node lifecycle controller manages (which follow
//! node conditions) and Kubernetes' rule for whether a toleration tolerates a taint.

use k8s_openapi::api::core::v1::{Node, Taint, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// Taint of a node whose Ready condition is False.
pub const NOT_READY: &str = "node.kubernetes.io/not-ready";
/// Taint of a node whose Ready condition is Unknown (its kubelet stopped reporting).
pub const UNREACHABLE: &str = "node.kubernetes.io/unreachable";
/// Taint of a node marked unschedulable (cordoned).
pub const UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";
/// The NoSchedule effect.
pub const NO_SCHEDULE: &str = "NoSchedule";
/// The NoExecute effect.
pub const NO_EXECUTE: &str = "NoExecute";

/// Node condition types whose status True adds a NoSchedule taint, and the taint key.
const PRESSURE_TAINTS: &[(&str, &str)] = &[
    ("MemoryPressure", "node.kubernetes.io/memory-pressure"),
    ("DiskPressure", "node.kubernetes.io/disk-pressure"),
    ("PIDPressure", "node.kubernetes.io/pid-pressure"),
    ("NetworkUnavailable", "node.kubernetes.io/network-unavailable"),
];

/// The status of the node's condition of `type_`, if it reports one.
pub fn condition_status<'a>(node: &'a Node, type_: &str) -> Option<&'a str> {
    node.status.as_ref()?.conditions.as_ref()?.iter().find(|c| c.type_ == type_).map(|c| c.status.as_str())
}

/// Every (key, effect) this controller owns; others' taints are never touched.
fn managed(key: &str, effect: &str) -> bool {
    match effect {
        NO_EXECUTE => key == NOT_READY || key == UNREACHABLE,
        NO_SCHEDULE => {
            key == NOT_READY
                || key == UNREACHABLE
                || key == UNSCHEDULABLE
                || PRESSURE_TAINTS.iter().any(|(_, k)| *k == key)
        }
        _ => false,
    }
}

/// The (key, effect) pairs the node's conditions call for: not-ready / unreachable for Ready
/// False / Unknown (both effects), the pressure taints, and unschedulable for a cordoned node.
/// A node that has not reported Ready yet keeps whatever NoExecute taints it has.
fn wanted(node: &Node) -> (Vec<(&'static str, &'static str)>, bool) {
    let mut want = Vec::new();
    let ready = condition_status(node, "Ready");
    let by_ready = match ready {
        Some("False") => Some(NOT_READY),
        Some("True") | None => None,
        Some(_) => Some(UNREACHABLE),
    };
    if let Some(key) = by_ready {
        want.push((key, NO_SCHEDULE));
        want.push((key, NO_EXECUTE));
    }
    for (condition, key) in PRESSURE_TAINTS {
        if condition_status(node, condition) == Some("True") {
            want.push((*key, NO_SCHEDULE));
        }
    }
    if node.spec.as_ref().and_then(|s| s.unschedulable) == Some(true) {
        want.push((UNSCHEDULABLE, NO_SCHEDULE));
    }
    (want, ready.is_some())
}

/// The node's taints as its conditions call for, or None when they already are. Taints of
/// other owners are kept; managed taints that stay keep their timeAdded.
pub fn desired_taints(node: &Node, now: jiff::Timestamp) -> Option<Vec<Taint>> {
    let current = node.spec.as_ref().and_then(|s| s.taints.clone()).unwrap_or_default();
    let (want, has_ready) = wanted(node);
    let keep = |t: &Taint| {
        if !managed(&t.key, &t.effect) || want.iter().any(|(k, e)| *k == t.key && *e == t.effect) {
            return true;
        }
        // Before the first Ready report there is nothing to judge NoExecute taints by.
        !has_ready && t.effect == NO_EXECUTE
    };
    let mut taints: Vec<Taint> = current.iter().filter(|t| keep(t)).cloned().collect();
    for (key, effect) in &want {
        if !taints.iter().any(|t| t.key == *key && t.effect == *effect) {
            taints.push(Taint {
                key: key.to_string(),
                effect: effect.to_string(),
                time_added: Some(Time(now)),
                value: None,
            });
        }
    }
    (taints != current).then_some(taints)
}

/// Whether `toleration` tolerates `taint` (an empty effect or key matches any; operator
/// Exists ignores the value, Equal or empty compares it).
pub fn tolerates(toleration: &Toleration, taint: &Taint) -> bool {
    if toleration.effect.as_deref().is_some_and(|e| !e.is_empty() && e != taint.effect) {
        return false;
    }
    if toleration.key.as_deref().is_some_and(|k| !k.is_empty() && k != taint.key) {
        return false;
    }
    match toleration.operator.as_deref().unwrap_or("") {
        "Exists" => true,
        "" | "Equal" => toleration.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or(""),
        _ => false,
    }
}

/// How long a pod with `tolerations` may stay on a node with the NoExecute `taints`: None
/// when some taint is not tolerated (evict now), `Some(None)` for ever, `Some(Some(d))` for
/// the shortest tolerationSeconds among the tolerations used.
pub fn toleration_time(tolerations: &[Toleration], taints: &[Taint]) -> Option<Option<std::time::Duration>> {
    let mut shortest: Option<i64> = None;
    for taint in taints {
        let used: Vec<&Toleration> = tolerations.iter().filter(|t| tolerates(t, taint)).collect();
        if used.is_empty() {
            return None;
        }
        for t in used {
            if let Some(secs) = t.toleration_seconds {
                shortest = Some(shortest.map_or(secs, |s| s.min(secs)));
            }
        }
    }
    Some(shortest.map(|s| std::time::Duration::from_secs(s.max(0) as u64)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(v: serde_json::Value) -> Node {
        serde_json::from_value(v).unwrap()
    }

    fn taint(key: &str, effect: &str) -> Taint {
        Taint { key: key.into(), effect: effect.into(), ..Default::default() }
    }

    #[test]
    fn taints_follow_the_ready_condition_and_leave_others_alone() {
        let now = jiff::Timestamp::now();
        let unknown = node(json!({"spec": {"taints": [{"key": "user", "effect": "NoExecute"}]},
            "status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}}));
        let t = desired_taints(&unknown, now).unwrap();
        let keys: Vec<_> = t.iter().map(|t| (t.key.as_str(), t.effect.as_str())).collect();
        assert_eq!(keys, [("user", "NoExecute"), (UNREACHABLE, NO_SCHEDULE), (UNREACHABLE, NO_EXECUTE)]);
        assert!(t[2].time_added.is_some());

        let mut not_ready = unknown.clone();
        not_ready.spec.as_mut().unwrap().taints = Some(t);
        not_ready.status.as_mut().unwrap().conditions.as_mut().unwrap()[0].status = "False".into();
        let t = desired_taints(&not_ready, now).unwrap();
        let keys: Vec<_> = t.iter().map(|t| t.key.as_str()).collect();
        assert_eq!(keys, ["user", NOT_READY, NOT_READY]);

        let mut ready = not_ready.clone();
        ready.spec.as_mut().unwrap().taints = Some(t);
        ready.status.as_mut().unwrap().conditions.as_mut().unwrap()[0].status = "True".into();
        assert_eq!(desired_taints(&ready, now).unwrap(), vec![taint("user", NO_EXECUTE)]);
        ready.spec.as_mut().unwrap().taints = Some(vec![taint("user", NO_EXECUTE)]);
        assert_eq!(desired_taints(&ready, now), None, "nothing to change");
    }

    #[test]
    fn toleration_time_is_the_shortest_used() {
        let tol = |v: serde_json::Value| -> Toleration { serde_json::from_value(v).unwrap() };
        let taints = [taint(UNREACHABLE, NO_EXECUTE)];
        assert_eq!(toleration_time(&[], &taints), None);
        let forever = tol(json!({"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute"}));
        assert_eq!(toleration_time(std::slice::from_ref(&forever), &taints), Some(None));
        let two = tol(json!({"key": UNREACHABLE, "operator": "Exists", "tolerationSeconds": 2}));
        let d = toleration_time(&[forever, two], &taints);
        assert_eq!(d, Some(Some(std::time::Duration::from_secs(2))));
        let other = tol(json!({"key": NOT_READY, "operator": "Exists"}));
        assert_eq!(toleration_time(&[other], &taints), None);
        let everything = tol(json!({"operator": "Exists"}));
        assert_eq!(toleration_time(&[everything], &taints), Some(None));
        let wrong_value = tol(json!({"key": UNREACHABLE, "operator": "Equal", "value": "x"}));
        assert_eq!(toleration_time(&[wrong_value], &taints), None);
    }
}
