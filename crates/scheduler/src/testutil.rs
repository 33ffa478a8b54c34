//! Builders for test nodes and pods: a JSON default merged with a per-test patch.

use k8s_openapi::api::core::v1::{Node, Pod};
use serde_json::{Value, json};

/// Merges `patch` into `base` like a JSON merge patch (objects merge, everything else replaces).
pub fn merge(base: &mut Value, patch: Value) {
    match (base, patch) {
        (Value::Object(b), Value::Object(p)) => {
            for (k, v) in p {
                merge(b.entry(k).or_insert(Value::Null), v);
            }
        }
        (b, p) => *b = p,
    }
}

/// A Ready node with 4 CPUs, 8Gi, 110 pods and its hostname label, patched.
pub fn node(name: &str, patch: Value) -> Node {
    let mut v = json!({
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
        "status": {
            "allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110", "ephemeral-storage": "100Gi"},
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    });
    merge(&mut v, patch);
    serde_json::from_value(v).expect("test node")
}

/// A pod in namespace "default" with one container without requests, patched.
pub fn pod(name: &str, patch: Value) -> Pod {
    let mut v = json!({
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"containers": [{"name": "c", "image": "i"}]},
    });
    merge(&mut v, patch);
    serde_json::from_value(v).expect("test pod")
}

/// The patch that gives a pod one container with these requests.
pub fn requests(cpu: &str, memory: &str) -> Value {
    json!({"spec": {"containers": [{"name": "c", "image": "i", "resources": {"requests": {"cpu": cpu, "memory": memory}}}]}})
}

/// A pod with these requests and the patch applied on top.
pub fn pod_req(name: &str, cpu: &str, memory: &str, patch: Value) -> Pod {
    let mut v = requests(cpu, memory);
    merge(&mut v, patch);
    pod(name, v)
}

/// The same pod bound to `node`.
pub fn on(mut p: Pod, node: &str) -> Pod {
    p.spec.get_or_insert_with(Default::default).node_name = Some(node.to_string());
    p
}

/// A patch giving a pod a required anti-affinity to pods labelled app=`app` on the same host.
pub fn anti_affinity(app: &str) -> Value {
    json!({
        "metadata": {"labels": {"app": app}},
        "spec": {"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {"matchLabels": {"app": app}}, "topologyKey": "kubernetes.io/hostname"}
        ]}}},
    })
}

/// The pod with a patch merged in.
pub fn merge_pod(p: Pod, patch: Value) -> Pod {
    let mut v = serde_json::to_value(p).expect("pod to json");
    merge(&mut v, patch);
    serde_json::from_value(v).expect("patched pod")
}
