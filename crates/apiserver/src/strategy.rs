//! What each kind does on create and update beyond generic metadata: which status it starts
//! with, what a main-resource write may not change, and how generation moves.

use crate::meta::{meta_mut, spec_part};
use crate::objects::Part;
use rkube_api::ResourceInfo;
use serde_json::{Value, json};

/// Adjusts a new object before defaulting: resets status the client may not set.
pub fn prepare_for_create(res: &ResourceInfo, obj: &mut Value) {
    fold_string_data(res, obj);
    match (res.group, res.kind) {
        ("", "Namespace") => obj["status"] = json!({"phase": "Active"}),
        ("", "Pod") => {
            let qos = qos_class(obj);
            obj["status"] = json!({"phase": "Pending", "qosClass": qos});
        }
        ("", "PersistentVolumeClaim") | ("", "PersistentVolume") => obj["status"] = json!({"phase": "Pending"}),
        // Nodes register themselves with their status; Endpoints-like kinds have none.
        ("", "Node") => {}
        _ if res.has_status => {
            if let Some(m) = obj.as_object_mut() {
                m.remove("status");
            }
        }
        _ => {}
    }
    if res.tracks_generation {
        meta_mut(obj).insert("generation".into(), json!(1));
    }
    if (res.group, res.kind) == ("apps", "DaemonSet") {
        set_template_generation(obj, 1);
    }
    if (res.group, res.kind) == (rkube_api::custom::GROUP, "CustomResourceDefinition") {
        // Deleting the definition must first delete its objects (see `crds`).
        let finalizers = meta_mut(obj).entry("finalizers").or_insert_with(|| json!([]));
        if let Some(list) = finalizers.as_array_mut()
            && !list.iter().any(|f| f == rkube_api::custom::CLEANUP_FINALIZER)
        {
            list.push(json!(rkube_api::custom::CLEANUP_FINALIZER));
        }
    }
}

/// The propagationPolicy a DELETE without one gets. Kubernetes keeps the old default for
/// these two kinds: their pods are orphaned (kubectl always says Background).
pub fn default_propagation(res: &ResourceInfo) -> Option<&'static str> {
    match (res.group, res.kind) {
        ("", "ReplicationController") | ("batch", "Job") => Some("Orphan"),
        _ => None,
    }
}

/// Fills in what depends on the object's final name and uid, once both are known: a Job
/// without `manualSelector` gets Kubernetes' generated selector on its uid and the job labels
/// on its pod template.
pub fn prepare_named(res: &ResourceInfo, obj: &mut Value) {
    if (res.group, res.kind) != ("batch", "Job") || obj.pointer("/spec/manualSelector") == Some(&json!(true)) {
        return;
    }
    let uid = obj.pointer("/metadata/uid").cloned().unwrap_or(Value::Null);
    let name = obj.pointer("/metadata/name").cloned().unwrap_or(Value::Null);
    let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) else { return };
    if spec.get("selector").is_none_or(Value::is_null) {
        spec.insert("selector".into(), json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}));
    }
    let Some(template) = spec.get_mut("template").and_then(Value::as_object_mut) else { return };
    let metadata = template.entry("metadata").or_insert_with(|| json!({}));
    if !metadata.is_object() {
        *metadata = json!({});
    }
    let labels = metadata.as_object_mut().map(|m| m.entry("labels").or_insert_with(|| json!({})));
    if let Some(labels) = labels.and_then(Value::as_object_mut) {
        for (key, value) in [
            ("batch.kubernetes.io/controller-uid", &uid),
            ("batch.kubernetes.io/job-name", &name),
            ("controller-uid", &uid),
            ("job-name", &name),
        ] {
            labels.insert(key.into(), value.clone());
        }
    }
}

/// Carries over from `old` what a write through this path may not change: status on the main
/// resource, everything but status on the status subresource, and system metadata always.
pub fn prepare_for_update(res: &ResourceInfo, new: &mut Value, old: &Value, part: Part) {
    fold_string_data(res, new);
    if (res.group, res.kind) == ("", "Service") && part == Part::Main {
        crate::services::patch_allocated_values(new, old);
    }
    if part == Part::Status {
        let status = new.get("status").cloned();
        let mut merged = old.clone();
        match status {
            Some(s) => merged["status"] = s,
            None => {
                if let Some(m) = merged.as_object_mut() {
                    m.remove("status");
                }
            }
        }
        // A status write carries the client's resourceVersion as its precondition.
        if let Some(rv) = new.pointer("/metadata/resourceVersion").cloned() {
            meta_mut(&mut merged).insert("resourceVersion".into(), rv);
        }
        *new = merged;
    } else if res.has_status && part != Part::Whole {
        match old.get("status") {
            Some(s) => new["status"] = s.clone(),
            None => {
                if let Some(m) = new.as_object_mut() {
                    m.remove("status");
                }
            }
        }
    }
    for field in ["uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "generation"] {
        let m = meta_mut(new);
        match old.get("metadata").and_then(|om| om.get(field)) {
            Some(v) => {
                m.insert(field.into(), v.clone());
            }
            None => {
                m.remove(field);
            }
        }
    }
    if res.tracks_generation && spec_part(new) != spec_part(old) {
        let generation = old.pointer("/metadata/generation").and_then(Value::as_i64).unwrap_or(0) + 1;
        meta_mut(new).insert("generation".into(), json!(generation));
        if (res.group, res.kind) == ("apps", "DaemonSet")
            && new.pointer("/spec/template") != old.pointer("/spec/template")
        {
            set_template_generation(new, generation);
        }
    }
}

/// Kubernetes records the generation at which a DaemonSet's template last changed in this
/// annotation; the DaemonSet controller labels pods with it (`pod-template-generation`).
fn set_template_generation(obj: &mut Value, generation: i64) {
    let m = meta_mut(obj);
    let annotations = m.entry("annotations").or_insert_with(|| json!({}));
    if !annotations.is_object() {
        *annotations = json!({});
    }
    if let Some(a) = annotations.as_object_mut() {
        a.insert("deprecated.daemonset.template.generation".into(), json!(generation.to_string()));
    }
}

/// A Secret's write-only `stringData` is merged into `data` (base64), overriding equal keys,
/// and never stored, as Kubernetes' conversion does.
fn fold_string_data(res: &ResourceInfo, obj: &mut Value) {
    use base64::Engine;
    if !res.group.is_empty() || res.kind != "Secret" {
        return;
    }
    let Some(Value::Object(strings)) = obj.as_object_mut().and_then(|m| m.remove("stringData")) else { return };
    if !obj["data"].is_object() {
        obj["data"] = json!({});
    }
    for (k, v) in strings {
        let text = v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string());
        obj["data"][k] = Value::String(base64::engine::general_purpose::STANDARD.encode(text));
    }
}

/// Pod QoS class from its containers' requests and limits (Guaranteed, Burstable, BestEffort).
pub fn qos_class(pod: &Value) -> &'static str {
    let containers: Vec<&Value> = ["containers", "initContainers"]
        .iter()
        .filter_map(|k| pod.pointer(&format!("/spec/{k}")).and_then(Value::as_array))
        .flatten()
        .collect();
    let mut any_set = false;
    let mut guaranteed = !containers.is_empty();
    for c in containers {
        let requests = c.pointer("/resources/requests").and_then(Value::as_object);
        let limits = c.pointer("/resources/limits").and_then(Value::as_object);
        let has = |m: Option<&serde_json::Map<String, Value>>, k: &str| m.is_some_and(|m| m.contains_key(k));
        if requests.is_some_and(|r| !r.is_empty()) || limits.is_some_and(|l| !l.is_empty()) {
            any_set = true;
        }
        for r in ["cpu", "memory"] {
            // A request defaults to its limit, so only a differing request breaks Guaranteed.
            let limit = limits.and_then(|l| l.get(r));
            let request = requests.and_then(|q| q.get(r));
            if !has(limits, r) || request.is_some_and(|q| Some(q) != limit) {
                guaranteed = false;
            }
        }
    }
    if !any_set {
        "BestEffort"
    } else if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(kind: &str) -> &'static ResourceInfo {
        rkube_api::registry::RESOURCES.iter().find(|r| r.kind == kind).unwrap()
    }

    #[test]
    fn qos_classes() {
        let pod = |res: Value| json!({"spec": {"containers": [{"name": "a", "resources": res}]}});
        assert_eq!(qos_class(&pod(json!({}))), "BestEffort");
        assert_eq!(qos_class(&pod(json!({"limits": {"cpu": "1", "memory": "1Gi"}}))), "Guaranteed");
        assert_eq!(qos_class(&pod(json!({"requests": {"cpu": "1"}}))), "Burstable");
        assert_eq!(
            qos_class(&pod(json!({"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "500m"}}))),
            "Burstable"
        );
    }

    #[test]
    fn jobs_get_a_selector_on_their_uid_and_the_job_labels() {
        let res = rkube_api::registry::lookup("batch", "v1", "jobs").unwrap();
        let mut job = json!({"metadata": {"name": "pi", "uid": "u-1"}, "spec": {"template": {"spec": {}}}});
        prepare_named(res, &mut job);
        assert_eq!(job["spec"]["selector"], json!({"matchLabels": {"batch.kubernetes.io/controller-uid": "u-1"}}));
        let labels = &job["spec"]["template"]["metadata"]["labels"];
        assert_eq!(labels["batch.kubernetes.io/job-name"], "pi");
        assert_eq!(labels["controller-uid"], "u-1");
        let mut manual =
            json!({"metadata": {"name": "m", "uid": "u-2"}, "spec": {"manualSelector": true, "template": {}}});
        prepare_named(res, &mut manual);
        assert!(manual["spec"].get("selector").is_none(), "a manual selector is the user's");
    }

    #[test]
    fn daemonsets_record_the_template_generation() {
        let res = rkube_api::registry::lookup("apps", "v1", "daemonsets").unwrap();
        let mut ds =
            json!({"metadata": {"name": "d"}, "spec": {"template": {"spec": {"containers": [{"image": "a"}]}}}});
        prepare_for_create(res, &mut ds);
        assert_eq!(ds["metadata"]["annotations"]["deprecated.daemonset.template.generation"], "1");
        let mut scaled = ds.clone();
        scaled["spec"]["minReadySeconds"] = json!(5);
        prepare_for_update(res, &mut scaled, &ds, Part::Main);
        assert_eq!(scaled["metadata"]["generation"], 2);
        assert_eq!(
            scaled["metadata"]["annotations"]["deprecated.daemonset.template.generation"], "1",
            "the template did not change"
        );
        let mut updated = scaled.clone();
        updated["spec"]["template"]["spec"]["containers"][0]["image"] = json!("b");
        prepare_for_update(res, &mut updated, &scaled, Part::Main);
        assert_eq!(updated["metadata"]["annotations"]["deprecated.daemonset.template.generation"], "3");
    }

    #[test]
    fn main_resource_update_keeps_status_and_bumps_generation_on_spec_change() {
        let deploy = res("Deployment");
        let old = json!({"metadata": {"name": "d", "generation": 3, "uid": "u"}, "spec": {"replicas": 1}, "status": {"replicas": 1}});
        let mut new = json!({"metadata": {"name": "d", "labels": {"a": "b"}}, "spec": {"replicas": 2}, "status": {"replicas": 9}});
        prepare_for_update(deploy, &mut new, &old, Part::Main);
        assert_eq!(new["status"]["replicas"], 1);
        assert_eq!(new["metadata"]["generation"], 4);
        assert_eq!(new["metadata"]["uid"], "u");
        let mut same_spec = json!({"metadata": {"name": "d", "labels": {"x": "y"}}, "spec": {"replicas": 1}});
        prepare_for_update(deploy, &mut same_spec, &old, Part::Main);
        assert_eq!(same_spec["metadata"]["generation"], 3);
    }

    #[test]
    fn status_update_changes_only_status() {
        let deploy = res("Deployment");
        let old = json!({"metadata": {"name": "d", "generation": 3, "labels": {"a": "b"}}, "spec": {"replicas": 1}});
        let mut new = json!({"metadata": {"name": "d", "labels": {}, "resourceVersion": "7"}, "spec": {"replicas": 5}, "status": {"readyReplicas": 1}});
        prepare_for_update(deploy, &mut new, &old, Part::Status);
        assert_eq!(new["spec"]["replicas"], 1);
        assert_eq!(new["metadata"]["labels"]["a"], "b");
        assert_eq!(new["metadata"]["resourceVersion"], "7");
        assert_eq!(new["status"]["readyReplicas"], 1);
        assert_eq!(new["metadata"]["generation"], 3);
    }
}
