//! Conversion between the versions of one stored resource: objects are stored in one version
//! (core/v1 Event, autoscaling/v2 HorizontalPodAutoscaler) and served in every version.

use crate::ResourceInfo;
use serde_json::{Map, Value, json};

/// The resource whose version objects of `res` are stored in: the first registry entry
/// with the same storage key (autoscaling/v2 before v1, core/v1 Events before events.k8s.io).
pub fn storage_resource(res: &ResourceInfo) -> &'static ResourceInfo {
    if res.custom {
        // A custom resource whose definition just went away is its own storage version.
        return crate::custom::version_of(res).map_or_else(|| crate::registry::intern(*res), |v| v.storage);
    }
    crate::registry::RESOURCES
        .iter()
        .find(|r| r.storage == res.storage)
        .unwrap_or_else(|| panic!("{:?} has no storage version in the registry", res.storage))
}

/// Whether objects of `res` need converting to and from storage.
pub fn converts(res: &ResourceInfo) -> bool {
    let stored = storage_resource(res);
    (stored.group, stored.version, stored.plural) != (res.group, res.version, res.plural)
}

/// Converts an object of `res` into its storage version.
pub fn to_storage(res: &ResourceInfo, obj: &Value) -> Value {
    if res.custom {
        // Versions of a custom resource differ only in apiVersion (conversion strategy None).
        return with_api_version(obj, &storage_resource(res).api_version());
    }
    match (res.group, res.version, res.kind) {
        ("events.k8s.io", "v1", "Event") => event_to_core(obj),
        ("autoscaling", "v1", "HorizontalPodAutoscaler") => hpa_v1_to_v2(obj),
        _ => obj.clone(),
    }
}

/// Converts a stored object into the version of `res`.
pub fn from_storage(res: &ResourceInfo, obj: &Value) -> Value {
    if res.custom {
        return with_api_version(obj, &res.api_version());
    }
    match (res.group, res.version, res.kind) {
        ("events.k8s.io", "v1", "Event") => core_to_event(obj),
        ("autoscaling", "v1", "HorizontalPodAutoscaler") => hpa_v2_to_v1(obj),
        _ => obj.clone(),
    }
}

fn with_api_version(obj: &Value, api_version: &str) -> Value {
    let mut out = obj.clone();
    if let Some(m) = out.as_object_mut() {
        m.insert("apiVersion".into(), json!(api_version));
    }
    out
}

/// Field-selector names of `res` as the stored version's index knows them.
pub fn storage_field(res: &ResourceInfo, field: &str) -> String {
    if (res.group, res.kind) != ("events.k8s.io", "Event") {
        return field.to_string();
    }
    match field {
        "reportingController" => "reportingComponent".to_string(),
        f => match f.strip_prefix("regarding.") {
            Some(rest) => format!("involvedObject.{rest}"),
            None => f.to_string(),
        },
    }
}

/// Renames fields of a JSON object: (from, to) pairs; absent fields stay absent.
fn renamed(obj: &Value, pairs: &[(&str, &str)], api_version: &str) -> Value {
    let mut out: Map<String, Value> = obj.as_object().cloned().unwrap_or_default();
    for (from, to) in pairs {
        if let Some(v) = out.remove(*from) {
            out.insert(to.to_string(), v);
        }
    }
    out.insert("apiVersion".into(), json!(api_version));
    Value::Object(out)
}

const EVENT_FIELDS: &[(&str, &str)] = &[
    ("regarding", "involvedObject"),
    ("note", "message"),
    ("reportingController", "reportingComponent"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
];

fn event_to_core(obj: &Value) -> Value {
    renamed(obj, EVENT_FIELDS, "v1")
}

fn core_to_event(obj: &Value) -> Value {
    let back: Vec<(&str, &str)> = EVENT_FIELDS.iter().map(|(a, b)| (*b, *a)).collect();
    renamed(obj, &back, "events.k8s.io/v1")
}

/// Annotations in which autoscaling/v1 carries what only v2 can express, so a round trip
/// through v1 loses nothing (the annotation names are Kubernetes').
const HPA_METRICS: &str = "autoscaling.alpha.kubernetes.io/metrics";
const HPA_BEHAVIOR: &str = "autoscaling.alpha.kubernetes.io/behavior";
const HPA_CONDITIONS: &str = "autoscaling.alpha.kubernetes.io/conditions";
const HPA_CURRENT_METRICS: &str = "autoscaling.alpha.kubernetes.io/current-metrics";

fn is_cpu_utilization(m: &Value) -> bool {
    m["type"] == "Resource" && m["resource"]["name"] == "cpu" && m["resource"]["target"]["type"] == "Utilization"
}

fn take_annotation(obj: &mut Value, key: &str) -> Option<Value> {
    let annotations = obj.pointer_mut("/metadata/annotations")?.as_object_mut()?;
    let text = annotations.remove(key)?;
    if annotations.is_empty() {
        obj["metadata"].as_object_mut()?.remove("annotations");
    }
    serde_json::from_str(text.as_str()?).ok()
}

fn put_annotation(obj: &mut Value, key: &str, v: &Value) {
    if !obj["metadata"]["annotations"].is_object() {
        obj["metadata"]["annotations"] = json!({});
    }
    obj["metadata"]["annotations"][key] = json!(v.to_string());
}

fn hpa_v1_to_v2(obj: &Value) -> Value {
    let mut out = obj.clone();
    out["apiVersion"] = json!("autoscaling/v2");
    let mut metrics: Vec<Value> =
        take_annotation(&mut out, HPA_METRICS).and_then(|v| v.as_array().cloned()).unwrap_or_default();
    let behavior = take_annotation(&mut out, HPA_BEHAVIOR);
    let conditions = take_annotation(&mut out, HPA_CONDITIONS);
    let mut current: Vec<Value> =
        take_annotation(&mut out, HPA_CURRENT_METRICS).and_then(|v| v.as_array().cloned()).unwrap_or_default();
    if let Some(spec) = out.get_mut("spec").and_then(Value::as_object_mut) {
        if let Some(target) = spec.remove("targetCPUUtilizationPercentage") {
            metrics.insert(0, json!({"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": target}}}));
        }
        if !metrics.is_empty() {
            spec.insert("metrics".into(), json!(metrics));
        }
        if let Some(b) = behavior {
            spec.insert("behavior".into(), b);
        }
    }
    if let Some(status) = out.get_mut("status").and_then(Value::as_object_mut) {
        if let Some(cpu) = status.remove("currentCPUUtilizationPercentage") {
            current.insert(
                0,
                json!({"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": cpu}}}),
            );
        }
        if !current.is_empty() {
            status.insert("currentMetrics".into(), json!(current));
        }
        if let Some(c) = conditions {
            status.insert("conditions".into(), c);
        }
    }
    out
}

fn hpa_v2_to_v1(obj: &Value) -> Value {
    let mut out = obj.clone();
    out["apiVersion"] = json!("autoscaling/v1");
    let mut stash: Vec<(&str, Value)> = Vec::new();
    if let Some(spec) = out.get_mut("spec").and_then(Value::as_object_mut) {
        let metrics = spec.remove("metrics").and_then(|m| m.as_array().cloned()).unwrap_or_default();
        let (cpu, others): (Vec<Value>, Vec<Value>) = metrics.into_iter().partition(is_cpu_utilization);
        if let Some(target) = cpu.first().map(|m| m["resource"]["target"]["averageUtilization"].clone()) {
            spec.insert("targetCPUUtilizationPercentage".into(), target);
        }
        if !others.is_empty() {
            stash.push((HPA_METRICS, json!(others)));
        }
        if let Some(b) = spec.remove("behavior") {
            stash.push((HPA_BEHAVIOR, b));
        }
    }
    if let Some(status) = out.get_mut("status").and_then(Value::as_object_mut) {
        let current = status.remove("currentMetrics").and_then(|m| m.as_array().cloned()).unwrap_or_default();
        let (cpu, others): (Vec<Value>, Vec<Value>) =
            current.into_iter().partition(|m| m["type"] == "Resource" && m["resource"]["name"] == "cpu");
        if let Some(u) =
            cpu.first().map(|m| m["resource"]["current"]["averageUtilization"].clone()).filter(|u| !u.is_null())
        {
            status.insert("currentCPUUtilizationPercentage".into(), u);
        }
        if !others.is_empty() {
            stash.push((HPA_CURRENT_METRICS, json!(others)));
        }
        if let Some(c) = status.remove("conditions") {
            stash.push((HPA_CONDITIONS, c));
        }
    }
    for (k, v) in stash {
        put_annotation(&mut out, k, &v);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::lookup;

    fn res(group: &str, version: &str, plural: &str) -> &'static ResourceInfo {
        lookup(group, version, plural).unwrap()
    }

    #[test]
    fn events_share_core_storage() {
        let ev = res("events.k8s.io", "v1", "events");
        assert!(converts(ev));
        assert_eq!(storage_resource(ev).group, "");
        assert_eq!(ev.key_prefix(), res("", "v1", "events").key_prefix());
        let new = json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "e"},
            "regarding": {"kind": "Pod", "name": "p"}, "note": "hello", "reason": "Started", "reportingController": "kubelet",
            "deprecatedCount": 2});
        let core = to_storage(ev, &new);
        assert_eq!(core["apiVersion"], "v1");
        assert_eq!(core["involvedObject"]["name"], "p");
        assert_eq!(core["message"], "hello");
        assert_eq!(core["count"], 2);
        assert_eq!(from_storage(ev, &core), new);
        assert_eq!(storage_field(ev, "regarding.name"), "involvedObject.name");
    }

    #[test]
    fn hpa_v1_round_trips_through_v2_without_loss() {
        let v1 = res("autoscaling", "v1", "horizontalpodautoscalers");
        assert_eq!(v1.key_prefix(), res("autoscaling", "v2", "horizontalpodautoscalers").key_prefix());
        let stored = json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "h"},
            "spec": {"maxReplicas": 5, "metrics": [
                {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 60}}},
                {"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "1Gi"}}}],
                "behavior": {"scaleDown": {"stabilizationWindowSeconds": 30}}},
            "status": {"currentReplicas": 1, "desiredReplicas": 1, "conditions": [{"type": "AbleToScale", "status": "True"}]}});
        let old = from_storage(v1, &stored);
        assert_eq!(old["spec"]["targetCPUUtilizationPercentage"], 60);
        assert!(old["spec"].get("metrics").is_none());
        assert!(old["metadata"]["annotations"][HPA_METRICS].as_str().unwrap().contains("memory"));
        assert_eq!(to_storage(v1, &old), stored);
        let plain = json!({"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "h"},
            "spec": {"maxReplicas": 3, "targetCPUUtilizationPercentage": 50}});
        let v2 = to_storage(v1, &plain);
        assert_eq!(v2["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"], 50);
        assert_eq!(from_storage(v1, &v2), plain);
    }
}
