//! Decoding objects through their typed k8s-openapi structs (which yields Kubernetes'
//! canonical JSON and finds unknown fields) and defaulting them.

mod defaults;

pub use defaults::set_default_toleration_seconds;

use crate::{ApiError, ResourceInfo};
use k8s_openapi::api;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// An object after decoding through its typed struct.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    /// Canonical JSON of the object: unknown fields dropped, known fields as the type renders them.
    pub object: Value,
    /// Paths of fields in the input that the type does not know, e.g. `spec.foo`.
    pub unknown_fields: Vec<String>,
}

/// Decodes `obj` as the kind of `res`; a value of the wrong type is a 400 BadRequest naming the field.
///
/// Kinds without a typed struct here pass through unchanged, with no unknown fields.
pub fn normalize(res: &ResourceInfo, obj: &Value) -> Result<Decoded, ApiError> {
    let Some(input) = obj.as_object() else {
        return Err(cannot_handle(res, &format!("json: cannot unmarshal {} into an object", json_type(obj))));
    };
    if res.custom {
        return normalize_custom(res, input);
    }
    // The typed structs insist on their own apiVersion/kind and render them themselves; the
    // caller checks those, and they must come back exactly as sent, so keep them out of decoding.
    let mut body = input.clone();
    body.remove("apiVersion");
    body.remove("kind");
    let mut body = Value::Object(body);
    coerce_numeric_quantities(&mut body, None);

    let Some(canonical) = roundtrip_for(res, body)? else {
        return Ok(Decoded { object: obj.clone(), unknown_fields: Vec::new() });
    };
    let mut object = match canonical {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    object.remove("apiVersion");
    object.remove("kind");
    for key in ["apiVersion", "kind"] {
        if let Some(v) = input.get(key) {
            object.insert(key.to_string(), v.clone());
        }
    }
    let object = Value::Object(object);
    let mut unknown_fields = Vec::new();
    find_unknown(obj, &object, "", &mut unknown_fields);
    Ok(Decoded { object, unknown_fields })
}

/// A custom object: its metadata decodes as ObjectMeta, the rest is pruned to its version's
/// schema (what is removed counts as unknown fields).
fn normalize_custom(res: &ResourceInfo, input: &Map<String, Value>) -> Result<Decoded, ApiError> {
    let mut object = Value::Object(input.clone());
    let mut unknown_fields = Vec::new();
    if let Some(metadata) = input.get("metadata") {
        let typed: ObjectMeta = serde_path_to_error::deserialize(metadata.clone()).map_err(|e| {
            cannot_handle(res, &format!("json: cannot unmarshal field metadata.{}: {}", e.path(), e.inner()))
        })?;
        let canonical =
            serde_json::to_value(&typed).map_err(|e| ApiError::Internal(format!("re-encoding metadata: {e}")))?;
        find_unknown(metadata, &canonical, "metadata", &mut unknown_fields);
        object["metadata"] = canonical;
    }
    if let Some(version) = crate::custom::version_of(res) {
        unknown_fields.extend(version.schema.prune(&mut object));
    }
    Ok(Decoded { object, unknown_fields })
}

/// Fills in the defaults Kubernetes' defaulting functions (and the defaulting admission
/// plugins) set for this kind, or a custom resource's schema holds. Idempotent, and never
/// overwrites a value that is set.
pub fn apply_defaults(res: &ResourceInfo, obj: &mut Value) {
    if res.custom {
        if let Some(version) = crate::custom::version_of(res) {
            version.schema.apply_defaults(obj);
        }
        return;
    }
    if (res.group, res.kind) == (crate::custom::GROUP, "CustomResourceDefinition") {
        crate::custom::apply_defaults(obj);
    }
    defaults::apply(res, obj);
}

fn cannot_handle(res: &ResourceInfo, detail: &str) -> ApiError {
    ApiError::BadRequest(format!(
        "{kind} in version \"{v}\" cannot be handled as a {kind}: {detail}",
        kind = res.kind,
        v = res.version
    ))
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Deserializes `body` as `T` and serializes it back; `Ok(None)` is never produced here.
fn roundtrip<T: DeserializeOwned + Serialize>(res: &ResourceInfo, body: Value) -> Result<Option<Value>, ApiError> {
    let typed: T = serde_path_to_error::deserialize(body).map_err(|e| {
        let path = e.path().to_string();
        cannot_handle(res, &format!("json: cannot unmarshal field {path}: {}", e.inner()))
    })?;
    serde_json::to_value(&typed).map(Some).map_err(|e| ApiError::Internal(format!("re-encoding {}: {e}", res.kind)))
}

/// Round-trips through the struct of `res`'s kind, or `Ok(None)` for a kind with no struct.
fn roundtrip_for(res: &ResourceInfo, body: Value) -> Result<Option<Value>, ApiError> {
    use api::{
        apps, autoscaling, batch, certificates, coordination, core, discovery, events, networking, policy, rbac,
        storage,
    };
    match (res.group, res.version, res.kind) {
        ("", "v1", "Namespace") => roundtrip::<core::v1::Namespace>(res, body),
        ("", "v1", "Pod") => roundtrip::<core::v1::Pod>(res, body),
        ("", "v1", "Service") => roundtrip::<core::v1::Service>(res, body),
        ("", "v1", "Endpoints") => roundtrip::<core::v1::Endpoints>(res, body),
        ("", "v1", "ConfigMap") => roundtrip::<core::v1::ConfigMap>(res, body),
        ("", "v1", "Secret") => roundtrip::<core::v1::Secret>(res, body),
        ("", "v1", "Node") => roundtrip::<core::v1::Node>(res, body),
        ("", "v1", "Event") => roundtrip::<core::v1::Event>(res, body),
        ("", "v1", "ReplicationController") => roundtrip::<core::v1::ReplicationController>(res, body),
        ("", "v1", "ServiceAccount") => roundtrip::<core::v1::ServiceAccount>(res, body),
        ("", "v1", "PersistentVolume") => roundtrip::<core::v1::PersistentVolume>(res, body),
        ("", "v1", "PersistentVolumeClaim") => roundtrip::<core::v1::PersistentVolumeClaim>(res, body),
        ("apps", "v1", "Deployment") => roundtrip::<apps::v1::Deployment>(res, body),
        ("apps", "v1", "ReplicaSet") => roundtrip::<apps::v1::ReplicaSet>(res, body),
        ("apps", "v1", "DaemonSet") => roundtrip::<apps::v1::DaemonSet>(res, body),
        ("apps", "v1", "StatefulSet") => roundtrip::<apps::v1::StatefulSet>(res, body),
        ("apps", "v1", "ControllerRevision") => roundtrip::<apps::v1::ControllerRevision>(res, body),
        ("batch", "v1", "Job") => roundtrip::<batch::v1::Job>(res, body),
        ("batch", "v1", "CronJob") => roundtrip::<batch::v1::CronJob>(res, body),
        ("networking.k8s.io", "v1", "Ingress") => roundtrip::<networking::v1::Ingress>(res, body),
        ("networking.k8s.io", "v1", "IngressClass") => roundtrip::<networking::v1::IngressClass>(res, body),
        ("networking.k8s.io", "v1", "NetworkPolicy") => roundtrip::<networking::v1::NetworkPolicy>(res, body),
        ("autoscaling", "v2", "HorizontalPodAutoscaler") => {
            roundtrip::<autoscaling::v2::HorizontalPodAutoscaler>(res, body)
        }
        ("autoscaling", "v1", "HorizontalPodAutoscaler") => {
            roundtrip::<autoscaling::v1::HorizontalPodAutoscaler>(res, body)
        }
        ("coordination.k8s.io", "v1", "Lease") => roundtrip::<coordination::v1::Lease>(res, body),
        ("discovery.k8s.io", "v1", "EndpointSlice") => roundtrip::<discovery::v1::EndpointSlice>(res, body),
        ("events.k8s.io", "v1", "Event") => roundtrip::<events::v1::Event>(res, body),
        ("storage.k8s.io", "v1", "StorageClass") => roundtrip::<storage::v1::StorageClass>(res, body),
        ("rbac.authorization.k8s.io", "v1", "Role") => roundtrip::<rbac::v1::Role>(res, body),
        ("rbac.authorization.k8s.io", "v1", "RoleBinding") => roundtrip::<rbac::v1::RoleBinding>(res, body),
        ("rbac.authorization.k8s.io", "v1", "ClusterRole") => roundtrip::<rbac::v1::ClusterRole>(res, body),
        ("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding") => {
            roundtrip::<rbac::v1::ClusterRoleBinding>(res, body)
        }
        ("certificates.k8s.io", "v1", "CertificateSigningRequest") => {
            roundtrip::<certificates::v1::CertificateSigningRequest>(res, body)
        }
        ("policy", "v1", "PodDisruptionBudget") => roundtrip::<policy::v1::PodDisruptionBudget>(res, body),
        ("apiextensions.k8s.io", "v1", "CustomResourceDefinition") => roundtrip::<
            k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
        >(res, body),
        _ => Ok(None),
    }
}

/// Maps whose values are all Quantities.
const QUANTITY_MAPS: &[&str] = &["limits", "requests", "capacity", "allocatable", "overhead", "allocatedResources"];

/// Turns JSON numbers where a Quantity belongs into strings. Kubernetes' Quantity accepts a
/// bare number (YAML `cpu: 1` reaches us as JSON `1`), but k8s-openapi's Quantity is a plain
/// string, so without this such manifests would be rejected.
fn coerce_numeric_quantities(v: &mut Value, parent_key: Option<&str>) {
    match v {
        Value::Object(m) => {
            let in_quantity_map = parent_key.is_some_and(|k| QUANTITY_MAPS.contains(&k));
            let in_metric_value = matches!(parent_key, Some("target" | "current"));
            for (k, child) in m.iter_mut() {
                let is_quantity =
                    in_quantity_map || k == "sizeLimit" || k == "averageValue" || (in_metric_value && k == "value");
                if is_quantity && let Value::Number(n) = child {
                    *child = Value::String(n.to_string());
                    continue;
                }
                coerce_numeric_quantities(child, Some(k));
            }
        }
        Value::Array(items) => {
            for item in items {
                coerce_numeric_quantities(item, None);
            }
        }
        _ => {}
    }
}

fn is_empty_container(v: &Value) -> bool {
    match v {
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

fn child_path(base: &str, key: &str) -> String {
    if base.is_empty() { key.to_string() } else { format!("{base}.{key}") }
}

/// Records every non-null input key that the canonical output lacks. Free-form maps
/// (labels, data, ...) round-trip whole, so only struct fields the type does not know go
/// missing; an empty `{}`/`[]` that a type drops is not a mistake of the client.
fn find_unknown(input: &Value, output: &Value, path: &str, out: &mut Vec<String>) {
    match (input, output) {
        (Value::Object(i), Value::Object(o)) => {
            for (k, iv) in i {
                let p = child_path(path, k);
                match o.get(k) {
                    Some(ov) => find_unknown(iv, ov, &p, out),
                    None if iv.is_null() || is_empty_container(iv) => {}
                    None => out.push(p),
                }
            }
        }
        (Value::Array(i), Value::Array(o)) => {
            for (idx, (iv, ov)) in i.iter().zip(o).enumerate() {
                find_unknown(iv, ov, &format!("{path}[{idx}]"), out);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::RESOURCES;
    use serde_json::json;

    fn res(group: &str, version: &str, kind: &str) -> &'static ResourceInfo {
        RESOURCES
            .iter()
            .find(|r| r.group == group && r.version == version && r.kind == kind)
            .expect("kind is registered")
    }

    #[test]
    fn unknown_fields_are_reported_with_paths_and_dropped() {
        let pod = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "bogusMeta": 1},
            "spec": {"foo": "bar", "containers": [{"name": "c", "image": "nginx", "bogus": true}]}
        });
        let d = normalize(res("", "v1", "Pod"), &pod).unwrap();
        let mut unknown = d.unknown_fields.clone();
        unknown.sort();
        assert_eq!(unknown, vec!["metadata.bogusMeta", "spec.containers[0].bogus", "spec.foo"]);
        assert!(d.object["spec"].get("foo").is_none());
        assert_eq!(d.object["apiVersion"], "v1");
        assert_eq!(d.object["kind"], "Pod");
    }

    #[test]
    fn realistic_objects_have_no_unknown_fields() {
        let deploy = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web", "example.com/tier": "fe"},
                         "annotations": {"note": "x", "deployment.kubernetes.io/revision": "1"},
                         "ownerReferences": [], "finalizers": []},
            "spec": {
                "replicas": 3,
                "selector": {"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "tier", "operator": "In", "values": ["fe"]}]},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 1}},
                "template": {
                    "metadata": {"labels": {"app": "web"}, "creationTimestamp": null},
                    "spec": {
                        "nodeSelector": {"disk": "ssd"},
                        "containers": [{
                            "name": "web", "image": "nginx:1.25",
                            "ports": [{"containerPort": 80, "name": "http", "protocol": "TCP"}],
                            "env": [{"name": "A", "value": "1"}, {"name": "B", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
                            "resources": {"limits": {"cpu": 1, "memory": "128Mi"}, "requests": {"cpu": "100m"}},
                            "readinessProbe": {"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 5},
                            "volumeMounts": [{"name": "cfg", "mountPath": "/etc/cfg"}]
                        }],
                        "volumes": [{"name": "cfg", "configMap": {"name": "cfg", "items": [{"key": "a", "path": "a"}]}},
                                    {"name": "tmp", "emptyDir": {}}],
                        "securityContext": {}
                    }
                }
            },
            "status": {}
        });
        let d = normalize(res("apps", "v1", "Deployment"), &deploy).unwrap();
        assert_eq!(d.unknown_fields, Vec::<String>::new());
        assert_eq!(d.object["metadata"]["labels"]["example.com/tier"], "fe");
        // A bare number where a Quantity belongs is accepted and kept as its string form.
        assert_eq!(d.object["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["cpu"], "1");

        let svc = json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "labels": {"a": "b"}},
            "spec": {"selector": {"app": "web"}, "type": "NodePort",
                     "ports": [{"port": 80, "targetPort": "http", "nodePort": 30080}, {"name": "x", "port": 81, "targetPort": 8081}]}
        });
        let d = normalize(res("", "v1", "Service"), &svc).unwrap();
        assert_eq!(d.unknown_fields, Vec::<String>::new());
        assert_eq!(d.object["spec"]["ports"][0]["targetPort"], "http");
        assert_eq!(d.object["spec"]["ports"][1]["targetPort"], 8081);

        let cm = json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c", "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"}},
            "data": {"a.conf": "x", "weird key?": "y"}, "binaryData": {"b": "aGk="}, "immutable": false
        });
        let d = normalize(res("", "v1", "ConfigMap"), &cm).unwrap();
        assert_eq!(d.unknown_fields, Vec::<String>::new());
        assert_eq!(d.object["binaryData"]["b"], "aGk=");

        let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
                            "stringData": {"u": "v"}, "data": {"p": "cGFzcw=="}, "type": "Opaque"});
        let d = normalize(res("", "v1", "Secret"), &secret).unwrap();
        assert_eq!(d.unknown_fields, Vec::<String>::new());
    }

    #[test]
    fn server_rendered_pod_has_no_unknown_fields() {
        // A Pod as a Kubernetes API server returns it, with system metadata and status.
        let pod = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {
                "name": "web-7d4b9c-xk2lp", "generateName": "web-7d4b9c-", "namespace": "default",
                "uid": "0b3c5d1e-0000-4000-8000-000000000001", "resourceVersion": "1234",
                "creationTimestamp": "2024-05-01T10:00:00Z", "labels": {"app": "web", "pod-template-hash": "7d4b9c"},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-7d4b9c",
                                     "uid": "0b3c5d1e-0000-4000-8000-000000000002", "controller": true, "blockOwnerDeletion": true}],
                "managedFields": [{"manager": "kube-controller-manager", "operation": "Update", "apiVersion": "v1",
                                   "time": "2024-05-01T10:00:00Z", "fieldsType": "FieldsV1",
                                   "fieldsV1": {"f:metadata": {"f:labels": {".": {}, "f:app": {}}}}}]
            },
            "spec": {
                "containers": [{"name": "web", "image": "nginx:1.25", "imagePullPolicy": "IfNotPresent",
                                "resources": {}, "terminationMessagePath": "/dev/termination-log",
                                "terminationMessagePolicy": "File",
                                "volumeMounts": [{"name": "kube-api-access-abcde", "readOnly": true,
                                                  "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}]}],
                "dnsPolicy": "ClusterFirst", "enableServiceLinks": true, "nodeName": "node-1",
                "preemptionPolicy": "PreemptLowerPriority", "priority": 0, "restartPolicy": "Always",
                "schedulerName": "default-scheduler", "securityContext": {}, "serviceAccount": "default",
                "serviceAccountName": "default", "terminationGracePeriodSeconds": 30,
                "tolerations": [{"effect": "NoExecute", "key": "node.kubernetes.io/not-ready", "operator": "Exists", "tolerationSeconds": 300}],
                "volumes": [{"name": "kube-api-access-abcde", "projected": {"defaultMode": 420, "sources": [
                    {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                    {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                    {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}]}}]
            },
            "status": {
                "phase": "Running", "hostIP": "10.0.0.1", "podIP": "10.244.0.5", "podIPs": [{"ip": "10.244.0.5"}],
                "qosClass": "BestEffort", "startTime": "2024-05-01T10:00:00Z",
                "conditions": [{"type": "Ready", "status": "True", "lastProbeTime": null, "lastTransitionTime": "2024-05-01T10:00:05Z"}],
                "containerStatuses": [{"name": "web", "ready": true, "restartCount": 0, "started": true, "image": "nginx:1.25",
                                       "imageID": "docker.io/library/nginx@sha256:abc", "containerID": "containerd://abc",
                                       "lastState": {}, "state": {"running": {"startedAt": "2024-05-01T10:00:04Z"}}}]
            }
        });
        let pods = res("", "v1", "Pod");
        let d = normalize(pods, &pod).unwrap();
        assert_eq!(d.unknown_fields, Vec::<String>::new());
        // Canonical output is a fixed point: decoding it again changes nothing.
        let again = normalize(pods, &d.object).unwrap();
        assert_eq!(again.object, d.object);
    }

    #[test]
    fn defaulted_objects_stay_canonical() {
        // Defaults only add fields the types know, so re-decoding a defaulted object finds nothing unknown.
        let tmpl = json!({"metadata": {"labels": {"app": "a"}},
                          "spec": {"containers": [{"name": "c", "image": "i", "ports": [{"containerPort": 80}],
                                                   "livenessProbe": {"httpGet": {"port": 80}}}],
                                   "volumes": [{"name": "v"}]}});
        let samples = [
            (res("", "v1", "Pod"), json!({"metadata": {"name": "p"}, "spec": tmpl["spec"].clone()})),
            (res("apps", "v1", "Deployment"), json!({"metadata": {"name": "d"}, "spec": {"template": tmpl.clone()}})),
            (
                res("apps", "v1", "StatefulSet"),
                json!({"metadata": {"name": "s"}, "spec": {"template": tmpl.clone(),
                "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {}}]}}),
            ),
            (res("apps", "v1", "DaemonSet"), json!({"metadata": {"name": "d"}, "spec": {"template": tmpl.clone()}})),
            (
                res("batch", "v1", "CronJob"),
                json!({"metadata": {"name": "c"}, "spec": {"schedule": "@hourly",
                "jobTemplate": {"spec": {"template": tmpl.clone()}}}}),
            ),
            (
                res("", "v1", "Service"),
                json!({"metadata": {"name": "s"}, "spec": {"type": "LoadBalancer", "sessionAffinity": "ClientIP",
                "ports": [{"port": 80}]}}),
            ),
            (
                res("autoscaling", "v2", "HorizontalPodAutoscaler"),
                json!({"metadata": {"name": "h"}, "spec": {"maxReplicas": 2}}),
            ),
        ];
        for (r, obj) in samples {
            let mut v = normalize(r, &obj).unwrap().object;
            apply_defaults(r, &mut v);
            let again = normalize(r, &v).unwrap();
            assert_eq!(again.unknown_fields, Vec::<String>::new(), "{}", r.kind);
            assert_eq!(again.object, v, "{} defaults are not in canonical form", r.kind);
        }
    }

    #[test]
    fn type_errors_name_the_field() {
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                         "spec": {"containers": [{"name": 5, "image": "x"}]}});
        let err = normalize(res("", "v1", "Pod"), &pod).unwrap_err();
        assert_eq!(err.code(), 400);
        let msg = err.to_string();
        assert!(msg.starts_with("Pod in version \"v1\" cannot be handled as a Pod: "), "{msg}");
        assert!(msg.contains("spec.containers[0].name"), "{msg}");
        assert!(msg.contains("invalid type"), "{msg}");
    }

    #[test]
    fn hpa_versions_use_their_own_types() {
        let v1 = json!({"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "h"},
                        "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "d"}, "maxReplicas": 3,
                                 "targetCPUUtilizationPercentage": 50}});
        let d = normalize(res("autoscaling", "v1", "HorizontalPodAutoscaler"), &v1).unwrap();
        assert_eq!(d.unknown_fields, Vec::<String>::new());
        let d2 = normalize(res("autoscaling", "v2", "HorizontalPodAutoscaler"), &v1).unwrap();
        assert_eq!(d2.unknown_fields, vec!["spec.targetCPUUtilizationPercentage"]);
    }

    #[test]
    fn non_objects_and_wrong_kinds_do_not_panic() {
        let pods = res("", "v1", "Pod");
        assert!(normalize(pods, &json!([1, 2])).is_err());
        assert!(normalize(pods, &json!({"spec": "nope"})).is_err());
        let d = normalize(pods, &json!({"apiVersion": "v2", "kind": "Other"})).unwrap();
        assert_eq!(d.object["apiVersion"], "v2");
        assert_eq!(d.object["kind"], "Other");
    }
}
