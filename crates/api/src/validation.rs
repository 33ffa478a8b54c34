//! Validation of objects on create and update, reporting every problem with its field path.
//!
//! Runs on the canonical, defaulted JSON (see [`crate::schema`]); every accessor tolerates
//! values of the wrong JSON type, so no input can make validation panic.

mod csr;
mod meta;
mod misc;
mod network;
mod pdb;
pub(crate) mod pod;
#[path = "quantity.rs"]
pub mod quantity;
mod workloads;

use crate::{FieldError, ResourceInfo};
use serde_json::{Map, Value};

pub use csr::{KEY_USAGES, has_pem_block};
pub use meta::{is_dns1035_label, is_dns1123_label, is_dns1123_subdomain, is_qualified_name, is_valid_label_value};
pub use misc::PV_SOURCES;

/// Errors collected by the checks.
type Errs = Vec<FieldError>;

/// Validates a new object.
pub fn validate_create(res: &ResourceInfo, obj: &Value) -> Vec<FieldError> {
    let mut errs = validate_object(res, obj, None);
    if (res.group, res.kind) == ("", "Pod") {
        pod::validate_pod_create(obj, &mut errs);
    }
    errs
}

/// Validates an update of `old` to `obj` (including immutable fields).
pub fn validate_update(res: &ResourceInfo, obj: &Value, old: &Value) -> Vec<FieldError> {
    let mut errs = validate_object(res, obj, Some(old));
    let null = Value::Null;
    meta::validate_object_meta_update(
        obj.get("metadata").unwrap_or(&null),
        old.get("metadata").unwrap_or(&null),
        &mut errs,
    );
    match (res.group, res.kind) {
        ("", "Pod") => pod::validate_pod_update(obj, old, &mut errs),
        ("", "Service") => network::validate_service_update(obj, old, &mut errs),
        ("", "ConfigMap") => misc::validate_configmap_update(obj, old, &mut errs),
        ("", "Secret") => misc::validate_secret_update(obj, old, &mut errs),
        ("", "PersistentVolumeClaim") => misc::validate_pvc_update(obj, old, &mut errs),
        ("apps", "Deployment" | "ReplicaSet" | "DaemonSet") => workloads::validate_selector_update(obj, old, &mut errs),
        ("apps", "StatefulSet") => workloads::validate_statefulset_update(obj, old, &mut errs),
        ("apps", "ControllerRevision") => misc::validate_controller_revision_update(obj, old, &mut errs),
        ("batch", "Job") => workloads::validate_job_update(obj, old, &mut errs),
        ("networking.k8s.io", "IngressClass") => network::validate_ingress_class_update(obj, old, &mut errs),
        ("certificates.k8s.io", "CertificateSigningRequest") => csr::validate_csr_update(obj, old, &mut errs),
        ("apiextensions.k8s.io", "CustomResourceDefinition") => {
            errs.extend(crate::custom::validate_scope_update(obj, old));
        }
        _ => {}
    }
    errs
}

/// Checks made on both create and update; `old` is the object an update replaces (custom
/// resources' transition rules compare against it).
fn validate_object(res: &ResourceInfo, obj: &Value, old: Option<&Value>) -> Errs {
    let mut errs = Vec::new();
    meta::validate_object_meta(res, at(obj, "metadata"), &mut errs);
    validate_kind(res, obj, old, &mut errs);
    errs
}

fn validate_kind(res: &ResourceInfo, obj: &Value, old: Option<&Value>, errs: &mut Errs) {
    match (res.group, res.kind) {
        ("", "Pod") => pod::validate_pod(obj, errs),
        ("", "Service") => network::validate_service(obj, errs),
        ("", "Endpoints") => network::validate_endpoints(obj, errs),
        ("", "ConfigMap") => misc::validate_configmap(obj, errs),
        ("", "Secret") => misc::validate_secret(obj, errs),
        ("", "Namespace") => misc::validate_namespace(obj, errs),
        ("", "Event") => misc::validate_core_event(obj, errs),
        ("", "ReplicationController") => workloads::validate_replication_controller(obj, errs),
        ("", "PersistentVolume") => misc::validate_pv(obj, errs),
        ("", "PersistentVolumeClaim") => misc::validate_pvc(obj, errs),
        ("apps", "Deployment") => workloads::validate_deployment(obj, errs),
        ("apps", "ReplicaSet") => workloads::validate_replica_set(obj, errs),
        ("apps", "DaemonSet") => workloads::validate_daemon_set(obj, errs),
        ("apps", "StatefulSet") => workloads::validate_stateful_set(obj, errs),
        ("apps", "ControllerRevision") => misc::validate_controller_revision(obj, errs),
        ("batch", "Job") => workloads::validate_job(obj, errs),
        ("batch", "CronJob") => workloads::validate_cron_job(obj, errs),
        ("networking.k8s.io", "Ingress") => network::validate_ingress(obj, errs),
        ("networking.k8s.io", "IngressClass") => network::validate_ingress_class(obj, errs),
        ("networking.k8s.io", "NetworkPolicy") => network::validate_network_policy(obj, errs),
        ("autoscaling", "HorizontalPodAutoscaler") => misc::validate_hpa(obj, res.version, errs),
        ("coordination.k8s.io", "Lease") => misc::validate_lease(obj, errs),
        ("discovery.k8s.io", "EndpointSlice") => network::validate_endpoint_slice(obj, errs),
        ("events.k8s.io", "Event") => misc::validate_events_event(obj, errs),
        ("certificates.k8s.io", "CertificateSigningRequest") => csr::validate_csr(obj, errs),
        ("policy", "PodDisruptionBudget") => pdb::validate_pdb(obj, errs),
        ("apiextensions.k8s.io", "CustomResourceDefinition") => errs.extend(crate::custom::validate(obj)),
        _ if res.custom => {
            if let Some(version) = crate::custom::version_of(res) {
                errs.extend(match old {
                    Some(old) => version.schema.validate_update(obj, old),
                    None => version.schema.validate(obj),
                });
            }
        }
        _ => {}
    }
}

// ---- Helpers shared by the per-kind modules. ----

/// `base.key`, or `key` at the root.
fn join(base: &str, key: &str) -> String {
    if base.is_empty() { key.to_string() } else { format!("{base}.{key}") }
}

/// `base[i]`.
fn index(base: &str, i: usize) -> String {
    format!("{base}[{i}]")
}

/// `base[key]`, as Kubernetes writes map entries.
fn key(base: &str, k: &str) -> String {
    format!("{base}[{k}]")
}

/// The string at `k`, or "" when absent or not a string.
fn str_at<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or_default()
}

/// The integer at `k`, if it is one.
fn int_at(v: &Value, k: &str) -> Option<i64> {
    v.get(k).and_then(Value::as_i64)
}

/// The array at `k`, or empty.
fn arr_at<'a>(v: &'a Value, k: &str) -> &'a [Value] {
    v.get(k).and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default()
}

/// The object at `k`, if it is one.
fn obj_at<'a>(v: &'a Value, k: &str) -> Option<&'a Map<String, Value>> {
    v.get(k).and_then(Value::as_object)
}

/// Whether `k` holds something other than null.
fn is_set(v: &Value, k: &str) -> bool {
    v.get(k).is_some_and(|x| !x.is_null())
}

/// The value at `k`, or null.
fn at<'a>(v: &'a Value, k: &str) -> &'a Value {
    v.get(k).unwrap_or(&Value::Null)
}

/// FieldValueInvalid with a value rendered by the caller (e.g. Go's `map[string]string{...}`).
fn invalid_shown(field: impl Into<String>, shown: &str, detail: &str) -> FieldError {
    FieldError {
        reason: "FieldValueInvalid",
        field: field.into(),
        message: format!("Invalid value: {shown}: {detail}"),
    }
}

/// FieldValueNotFound, for references to things that do not exist (e.g. a volume).
fn not_found(field: impl Into<String>, value: &Value) -> FieldError {
    FieldError { reason: "FieldValueNotFound", field: field.into(), message: format!("Not found: {value}") }
}

/// FieldValueTooMany, for lists over their length limit.
fn too_many(field: impl Into<String>, actual: usize, max: usize) -> FieldError {
    FieldError {
        reason: "FieldValueTooMany",
        field: field.into(),
        message: format!("Too many: {actual}: must have at most {max} items"),
    }
}

const NON_NEGATIVE: &str = "must be greater than or equal to 0";

/// An integer field that may not be negative, when set.
fn non_negative(v: &Value, k: &str, path: &str, errs: &mut Errs) {
    if let Some(n) = v.get(k).and_then(Value::as_i64)
        && n < 0
    {
        errs.push(FieldError::invalid(join(path, k), &Value::from(n), NON_NEGATIVE));
    }
}

/// Go's `%#v` of a `map[string]string`, which Kubernetes prints for label mismatches.
fn go_string_map(m: Option<&Map<String, Value>>) -> String {
    match m {
        Some(m) if !m.is_empty() => {
            let entries: Vec<String> =
                m.iter().map(|(k, v)| format!("{k:?}:{:?}", v.as_str().unwrap_or_default())).collect();
            format!("map[string]string{{{}}}", entries.join(", "))
        }
        _ => "map[string]string(nil)".to_string(),
    }
}

#[cfg(test)]
mod tests;
