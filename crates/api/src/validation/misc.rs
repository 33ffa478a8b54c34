//! ConfigMap, Secret, Namespace, Events, HorizontalPodAutoscaler, Lease, PersistentVolume,
//! PersistentVolumeClaim and ControllerRevision.

use super::meta::{immutable, is_qualified_name, push_msgs};
use super::quantity::{QUANTITY_FORMAT_ERROR, parse_quantity};
use super::{Errs, NON_NEGATIVE, arr_at, at, index, int_at, is_set, join, key, non_negative, obj_at, str_at};
use crate::FieldError;
use serde_json::{Map, Value};

const CONFIG_KEY_MSG: &str = "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')";
/// Size limit of a ConfigMap's or Secret's data.
const MAX_DATA_SIZE: usize = 1024 * 1024;
const ACCESS_MODES: &[&str] = &["ReadOnlyMany", "ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod"];
/// The PersistentVolumeSpec fields that name a volume source (exactly one must be set).
pub const PV_SOURCES: &[&str] = &[
    "awsElasticBlockStore",
    "azureDisk",
    "azureFile",
    "cephfs",
    "cinder",
    "csi",
    "fc",
    "flexVolume",
    "flocker",
    "gcePersistentDisk",
    "glusterfs",
    "hostPath",
    "iscsi",
    "local",
    "nfs",
    "photonPersistentDisk",
    "portworxVolume",
    "quobyte",
    "rbd",
    "scaleIO",
    "storageos",
    "vsphereVolume",
];

/// Problems with a ConfigMap/Secret key.
fn config_key_problems(k: &str) -> Vec<String> {
    let mut msgs = Vec::new();
    if k.len() > 253 {
        msgs.push("must be no more than 253 characters".to_string());
    }
    if k.is_empty() || !k.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')) {
        msgs.push(CONFIG_KEY_MSG.to_string());
    }
    if k == "." {
        msgs.push("must not be '.'".to_string());
    } else if k == ".." {
        msgs.push("must not be '..'".to_string());
    } else if k.starts_with("..") {
        msgs.push("must not start with '..'".to_string());
    }
    msgs
}

/// Decoded length of a base64 string, without decoding it.
fn base64_len(s: &str) -> usize {
    let padding = s.bytes().rev().take_while(|b| *b == b'=').count();
    (s.len() / 4 * 3).saturating_sub(padding)
}

/// Validates the keys of a data map at `field`, returning the total size of its values.
fn data_keys(map: Option<&Map<String, Value>>, field: &str, base64: bool, errs: &mut Errs) -> usize {
    let mut total = 0;
    for (k, v) in map.into_iter().flatten() {
        push_msgs(errs, &key(field, k), k, config_key_problems(k));
        let s = v.as_str().unwrap_or_default();
        total += if base64 { base64_len(s) } else { s.len() };
    }
    total
}

/// Validates a ConfigMap.
pub(super) fn validate_configmap(obj: &Value, errs: &mut Errs) {
    let data = obj_at(obj, "data");
    let mut total = data_keys(data, "data", false, errs);
    let binary = obj_at(obj, "binaryData");
    total += data_keys(binary, "binaryData", true, errs);
    for k in binary.into_iter().flatten().map(|(k, _)| k) {
        if data.is_some_and(|d| d.contains_key(k)) {
            errs.push(FieldError::invalid(
                key("binaryData", k),
                &Value::from(k.as_str()),
                "duplicate of key present in data",
            ));
        }
    }
    if total > MAX_DATA_SIZE {
        errs.push(FieldError::too_long("data", MAX_DATA_SIZE));
    }
}

/// Immutable ConfigMaps and Secrets keep their data, and stay immutable.
fn immutable_data(new: &Value, old: &Value, fields: &[&str], errs: &mut Errs) {
    if old.get("immutable").and_then(Value::as_bool) != Some(true) {
        return;
    }
    if new.get("immutable").and_then(Value::as_bool) != Some(true) {
        errs.push(FieldError::forbidden("immutable", "field is immutable when `immutable` is set"));
    }
    for field in fields {
        if at(new, field) != at(old, field) {
            errs.push(FieldError::forbidden(*field, "field is immutable when `immutable` is set"));
        }
    }
}

/// ConfigMap update rules.
pub(super) fn validate_configmap_update(new: &Value, old: &Value, errs: &mut Errs) {
    immutable_data(new, old, &["data", "binaryData"], errs);
}

/// Validates a Secret, including the keys its type requires.
pub(super) fn validate_secret(obj: &Value, errs: &mut Errs) {
    let data = obj_at(obj, "data");
    let string_data = obj_at(obj, "stringData");
    let mut total = data_keys(data, "data", true, errs);
    total += data_keys(string_data, "stringData", false, errs);
    if total > MAX_DATA_SIZE {
        errs.push(FieldError::too_long("data", MAX_DATA_SIZE));
    }
    let has = |k: &str| data.is_some_and(|d| d.contains_key(k)) || string_data.is_some_and(|d| d.contains_key(k));
    let required: &[&str] = match str_at(obj, "type") {
        "kubernetes.io/dockercfg" => &[".dockercfg"],
        "kubernetes.io/dockerconfigjson" => &[".dockerconfigjson"],
        "kubernetes.io/ssh-auth" => &["ssh-privatekey"],
        "kubernetes.io/tls" => &["tls.crt", "tls.key"],
        "kubernetes.io/service-account-token" => {
            let annotation = "kubernetes.io/service-account.name";
            if str_at(at(at(obj, "metadata"), "annotations"), annotation).is_empty() {
                errs.push(FieldError::required(key("metadata.annotations", annotation), ""));
            }
            &[]
        }
        "kubernetes.io/basic-auth" => {
            if !has("username") && !has("password") {
                errs.push(FieldError::required(key("data", "username"), ""));
                errs.push(FieldError::required(key("data", "password"), ""));
            }
            &[]
        }
        _ => &[],
    };
    for k in required {
        if !has(k) {
            errs.push(FieldError::required(key("data", k), ""));
        }
    }
}

/// Secret update rules: the type never changes, immutable data stays.
pub(super) fn validate_secret_update(new: &Value, old: &Value, errs: &mut Errs) {
    immutable(at(new, "type"), at(old, "type"), "type", errs);
    immutable_data(new, old, &["data"], errs);
}

/// Validates a Namespace's finalizers (names come from [`super::meta`]).
pub(super) fn validate_namespace(obj: &Value, errs: &mut Errs) {
    for f in arr_at(at(obj, "spec"), "finalizers") {
        let name = f.as_str().unwrap_or_default();
        push_msgs(errs, "spec.finalizers", name, is_qualified_name(name));
        if !name.contains('/') && !["kubernetes", "orphan", "foregroundDeletion"].contains(&name) {
            errs.push(FieldError::invalid(
                "spec.finalizers",
                f,
                "name is neither a standard finalizer name nor is it fully qualified",
            ));
        }
    }
}

/// Validates a core/v1 Event: it must be about something, in a matching namespace.
pub(super) fn validate_core_event(obj: &Value, errs: &mut Errs) {
    let involved = at(obj, "involvedObject");
    if obj_at(obj, "involvedObject").is_none_or(Map::is_empty) {
        errs.push(FieldError::required("involvedObject", ""));
    }
    let ns = str_at(at(obj, "metadata"), "namespace");
    let involved_ns = str_at(involved, "namespace");
    // Events about cluster-scoped objects live in "default" (or nowhere).
    let consistent = if involved_ns.is_empty() { ns.is_empty() || ns == "default" } else { ns == involved_ns };
    if !consistent {
        errs.push(FieldError::invalid(
            "involvedObject.namespace",
            &Value::from(involved_ns),
            "does not match event.namespace",
        ));
    }
}

/// Validates an events.k8s.io/v1 Event, whose reporting fields are mandatory.
pub(super) fn validate_events_event(obj: &Value, errs: &mut Errs) {
    if !is_set(obj, "eventTime") {
        errs.push(FieldError::required("eventTime", ""));
    }
    for field in ["reportingController", "reportingInstance", "action", "reason"] {
        if str_at(obj, field).is_empty() {
            errs.push(FieldError::required(field, ""));
        }
    }
    let ty = str_at(obj, "type");
    if ty != "Normal" && ty != "Warning" {
        errs.push(FieldError::invalid("type", &Value::from(ty), &format!("has invalid value: {ty}")));
    }
    let ns = str_at(at(obj, "metadata"), "namespace");
    let regarding_ns = str_at(at(obj, "regarding"), "namespace");
    if !regarding_ns.is_empty() && regarding_ns != ns {
        errs.push(FieldError::invalid(
            "regarding.namespace",
            &Value::from(regarding_ns),
            "does not match event.namespace",
        ));
    }
}

/// Validates a HorizontalPodAutoscaler of autoscaling/v1 or v2.
pub(super) fn validate_hpa(obj: &Value, version: &str, errs: &mut Errs) {
    let spec = at(obj, "spec");
    let target = at(spec, "scaleTargetRef");
    for field in ["kind", "name"] {
        let v = str_at(target, field);
        let path = join("spec.scaleTargetRef", field);
        if v.is_empty() {
            errs.push(FieldError::required(path, ""));
        } else if v.contains('/') || v.contains('%') || v == "." || v == ".." {
            errs.push(FieldError::invalid(
                path,
                &Value::from(v),
                "may not contain '/' or '%', and may not be '.' or '..'",
            ));
        }
    }
    let min = int_at(spec, "minReplicas");
    if let Some(m) = min.filter(|m| *m < 1) {
        errs.push(FieldError::invalid("spec.minReplicas", &Value::from(m), "must be greater than or equal to 1"));
    }
    let max = int_at(spec, "maxReplicas").unwrap_or(0);
    if max < 1 {
        errs.push(FieldError::invalid("spec.maxReplicas", &Value::from(max), "must be greater than 0"));
    }
    if min.is_some_and(|m| max < m) {
        errs.push(FieldError::invalid(
            "spec.maxReplicas",
            &Value::from(max),
            "must be greater than or equal to `minReplicas`",
        ));
    }
    if version == "v1" {
        if let Some(t) = int_at(spec, "targetCPUUtilizationPercentage").filter(|t| *t < 1) {
            errs.push(FieldError::invalid(
                "spec.targetCPUUtilizationPercentage",
                &Value::from(t),
                "must be greater than 0",
            ));
        }
        return;
    }
    let types = ["ContainerResource", "External", "Object", "Pods", "Resource"];
    for (i, m) in arr_at(spec, "metrics").iter().enumerate() {
        let mpath = index("spec.metrics", i);
        match str_at(m, "type") {
            "" => errs.push(FieldError::required(join(&mpath, "type"), "must specify a metric source type")),
            t if types.contains(&t) => {
                let source = match t {
                    "ContainerResource" => "containerResource",
                    "External" => "external",
                    "Object" => "object",
                    "Pods" => "pods",
                    _ => "resource",
                };
                if !is_set(m, source) {
                    errs.push(FieldError::required(
                        join(&mpath, source),
                        &format!("must populate information for the given metric source (type {t})"),
                    ));
                }
                let target = at(at(m, source), "target");
                let target_types = ["AverageValue", "Utilization", "Value"];
                let tt = str_at(target, "type");
                if is_set(m, source) && !target_types.contains(&tt) {
                    errs.push(FieldError::not_supported(
                        join(&mpath, &format!("{source}.target.type")),
                        &Value::from(tt),
                        &target_types,
                    ));
                }
            }
            t => errs.push(FieldError::not_supported(join(&mpath, "type"), &Value::from(t), &types)),
        }
    }
}

/// Validates a Lease.
pub(super) fn validate_lease(obj: &Value, errs: &mut Errs) {
    let spec = at(obj, "spec");
    if let Some(d) = int_at(spec, "leaseDurationSeconds").filter(|d| *d <= 0) {
        errs.push(FieldError::invalid("spec.leaseDurationSeconds", &Value::from(d), "must be greater than 0"));
    }
    non_negative(spec, "leaseTransitions", "spec", errs);
}

fn access_modes(spec: &Value, path: &str, detail: &str, errs: &mut Errs) {
    let modes = arr_at(spec, "accessModes");
    if modes.is_empty() {
        errs.push(FieldError::required(join(path, "accessModes"), detail));
    }
    for m in modes {
        if !m.as_str().is_some_and(|s| ACCESS_MODES.contains(&s)) {
            errs.push(FieldError::not_supported(join(path, "accessModes"), m, ACCESS_MODES));
        }
    }
}

fn volume_mode(spec: &Value, path: &str, errs: &mut Errs) {
    let mode = str_at(spec, "volumeMode");
    if !mode.is_empty() && mode != "Block" && mode != "Filesystem" {
        errs.push(FieldError::not_supported(join(path, "volumeMode"), &Value::from(mode), &["Block", "Filesystem"]));
    }
}

/// A storage quantity at `path` that must be present and positive.
fn positive_storage(q: Option<&Value>, path: &str, errs: &mut Errs) {
    let Some(q) = q else {
        errs.push(FieldError::required(path, ""));
        return;
    };
    match q.as_str().map(parse_quantity) {
        Some(Ok(n)) if n > 0 => {}
        Some(Ok(_)) => errs.push(FieldError::invalid(path, q, "must be greater than zero")),
        _ => errs.push(FieldError::invalid(path, q, QUANTITY_FORMAT_ERROR)),
    }
}

/// Validates a PersistentVolume.
pub(super) fn validate_pv(obj: &Value, errs: &mut Errs) {
    let spec = at(obj, "spec");
    match obj_at(spec, "capacity").filter(|c| !c.is_empty()) {
        None => errs.push(FieldError::required("spec.capacity", "")),
        Some(cap) => {
            if !cap.contains_key("storage") || cap.len() > 1 {
                errs.push(FieldError::not_supported("spec.capacity", at(spec, "capacity"), &["storage"]));
            }
            if let Some(q) = cap.get("storage") {
                positive_storage(Some(q), "spec.capacity[storage]", errs);
            }
        }
    }
    access_modes(spec, "spec", "", errs);
    let sources: Vec<&str> = PV_SOURCES.iter().copied().filter(|s| is_set(spec, s)).collect();
    match sources.as_slice() {
        [] => errs.push(FieldError::required("spec", "must specify a volume type")),
        [_] => {}
        [_, extra @ ..] => {
            for s in extra {
                errs.push(FieldError::forbidden(join("spec", s), "may not specify more than 1 volume type"));
            }
        }
    }
    for (source, field) in [
        ("hostPath", "path"),
        ("local", "path"),
        ("nfs", "path"),
        ("nfs", "server"),
        ("csi", "driver"),
        ("csi", "volumeHandle"),
    ] {
        if is_set(spec, source) && str_at(at(spec, source), field).is_empty() {
            errs.push(FieldError::required(format!("spec.{source}.{field}"), ""));
        }
    }
    if is_set(spec, "local") && !is_set(spec, "nodeAffinity") {
        errs.push(FieldError::required("spec.nodeAffinity", "Local volume requires node affinity"));
    }
    let policy = str_at(spec, "persistentVolumeReclaimPolicy");
    let policies = ["Delete", "Recycle", "Retain"];
    if !policy.is_empty() && !policies.contains(&policy) {
        errs.push(FieldError::not_supported("spec.persistentVolumeReclaimPolicy", &Value::from(policy), &policies));
    }
    volume_mode(spec, "spec", errs);
}

/// Validates a PersistentVolumeClaim.
pub(super) fn validate_pvc(obj: &Value, errs: &mut Errs) {
    let spec = at(obj, "spec");
    access_modes(spec, "spec", "at least 1 access mode is required", errs);
    positive_storage(at(at(spec, "resources"), "requests").get("storage"), "spec.resources[storage]", errs);
    volume_mode(spec, "spec", errs);
}

/// A claim's spec is fixed after creation except its requests, its volume attributes class,
/// and the one-time binding to a volume.
pub(super) fn validate_pvc_update(new: &Value, old: &Value, errs: &mut Errs) {
    let old_volume_name = str_at(at(old, "spec"), "volumeName").is_empty();
    let strip = |v: &Value| {
        let mut spec = at(v, "spec").clone();
        if let Some(m) = spec.as_object_mut() {
            m.remove("volumeAttributesClassName");
            if old_volume_name {
                m.remove("volumeName");
            }
            if let Some(res) = m.get_mut("resources").and_then(Value::as_object_mut) {
                res.remove("requests");
            }
        }
        spec
    };
    if strip(new) != strip(old) {
        errs.push(FieldError::forbidden(
            "spec",
            "spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims",
        ));
    }
}

/// Validates a ControllerRevision.
pub(super) fn validate_controller_revision(obj: &Value, errs: &mut Errs) {
    if let Some(r) = int_at(obj, "revision").filter(|r| *r < 0) {
        errs.push(FieldError::invalid("revision", &Value::from(r), NON_NEGATIVE));
    }
}

/// A ControllerRevision's data never changes.
pub(super) fn validate_controller_revision_update(new: &Value, old: &Value, errs: &mut Errs) {
    immutable(at(new, "data"), at(old, "data"), "data", errs);
}
