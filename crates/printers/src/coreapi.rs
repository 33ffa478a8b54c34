//! Core (v1) kinds other than pods and events: namespaces, nodes, services, endpoints,
//! configuration, storage claims and quotas.

use std::collections::BTreeSet;

use jiff::Timestamp;
use serde_json::{Map, Value};

use crate::columns::{AGE, Col, NAME, Printer};
use crate::duration::age;
use crate::fields::{
    annotation, at, count, deleting, format_labels, int_at, join_host_port, list, name, opt_str, or, quantity, str_at,
};

/// Namespaces.
pub(crate) static NAMESPACE: Printer =
    Printer::new(&[NAME, Col::text("Status", "The namespace's phase."), AGE], |obj, now| {
        vec![name(obj).into(), str_at(obj, "/status/phase").into(), age(obj, now)]
    });

/// Nodes.
pub(crate) static NODE: Printer = Printer::new(
    &[
        NAME,
        Col::text("Status", "Readiness of the node, and whether scheduling is disabled."),
        Col::text("Roles", "Roles taken from the node's node-role.kubernetes.io labels."),
        AGE,
        Col::text("Version", "Version of the node's kubelet."),
        Col::text("Internal-IP", "The node's first internal address.").wide(),
        Col::text("External-IP", "The node's first external address.").wide(),
        Col::text("OS-Image", "Operating system reported by the node.").wide(),
        Col::text("Kernel-Version", "Kernel version reported by the node.").wide(),
        Col::text("Container-Runtime", "Container runtime and version reported by the node.").wide(),
    ],
    node,
);

fn node(obj: &Value, now: Timestamp) -> Vec<Value> {
    let ready = list(obj, "/status/conditions").iter().rfind(|c| str_at(c, "/type") == "Ready");
    let mut status = vec![match ready {
        Some(c) if str_at(c, "/status") == "True" => "Ready",
        Some(_) => "NotReady",
        None => "Unknown",
    }];
    if crate::fields::bool_at(obj, "/spec/unschedulable") {
        status.push("SchedulingDisabled");
    }
    let roles = node_roles(obj);
    let address = |kind: &str| -> Value {
        let found = list(obj, "/status/addresses").iter().find(|a| str_at(a, "/type") == kind);
        found.map_or("<none>", |a| str_at(a, "/address")).into()
    };
    let info = |field: &str| -> Value { or(str_at(obj, &format!("/status/nodeInfo/{field}")), "<unknown>").into() };
    vec![
        name(obj).into(),
        status.join(",").into(),
        if roles.is_empty() { "<none>".into() } else { roles.join(",").into() },
        age(obj, now),
        str_at(obj, "/status/nodeInfo/kubeletVersion").into(),
        address("InternalIP"),
        address("ExternalIP"),
        info("osImage"),
        info("kernelVersion"),
        info("containerRuntimeVersion"),
    ]
}

/// Sorted roles from `node-role.kubernetes.io/<role>` label keys and the older
/// `kubernetes.io/role=<role>` label.
fn node_roles(node: &Value) -> Vec<String> {
    let Some(Value::Object(labels)) = at(node, "/metadata/labels") else { return Vec::new() };
    let mut roles = BTreeSet::new();
    for (key, value) in labels {
        if let Some(role) = key.strip_prefix("node-role.kubernetes.io/").filter(|r| !r.is_empty()) {
            roles.insert(role.to_string());
        } else if key == "kubernetes.io/role" && value.as_str().is_some_and(|v| !v.is_empty()) {
            roles.insert(value.as_str().unwrap_or_default().to_string());
        }
    }
    roles.into_iter().collect()
}

/// Services.
pub(crate) static SERVICE: Printer = Printer::new(
    &[
        NAME,
        Col::text("Type", "How the service is exposed."),
        Col::text("Cluster-IP", "The service's cluster-internal IP address."),
        Col::text("External-IP", "Addresses the service is reachable at from outside the cluster."),
        Col::text("Port(s)", "The service's ports, with node ports and protocols."),
        AGE,
        Col::text("Selector", "Labels of the pods the service routes to.").wide(),
    ],
    service,
);

fn service(obj: &Value, now: Timestamp) -> Vec<Value> {
    // API defaulting fills in the type and mirrors clusterIP into clusterIPs; cope with
    // objects that skipped it.
    let svc_type = opt_str(obj, "/spec/type").unwrap_or("ClusterIP");
    let cluster_ip = list(obj, "/spec/clusterIPs").first().and_then(Value::as_str).or(opt_str(obj, "/spec/clusterIP"));
    let ports: Vec<String> = list(obj, "/spec/ports")
        .iter()
        .map(|p| {
            let protocol = opt_str(p, "/protocol").unwrap_or("TCP");
            match int_at(p, "/nodePort") {
                0 => format!("{}/{protocol}", int_at(p, "/port")),
                node_port => format!("{}:{node_port}/{protocol}", int_at(p, "/port")),
            }
        })
        .collect();
    vec![
        name(obj).into(),
        svc_type.into(),
        or(cluster_ip.unwrap_or(""), "<none>").into(),
        external_ip(obj, svc_type).into(),
        or(&ports.join(","), "<none>").into(),
        age(obj, now),
        format_labels(at(obj, "/spec/selector")).into(),
    ]
}

/// Load balancer ingress points (IP, else hostname), sorted and deduplicated. The server
/// prints wide, so the list is never clipped.
pub(crate) fn load_balancer_ingress(obj: &Value) -> Vec<String> {
    let points: BTreeSet<&str> = list(obj, "/status/loadBalancer/ingress")
        .iter()
        .map(|i| crate::fields::first_non_empty(str_at(i, "/ip"), str_at(i, "/hostname")))
        .filter(|s| !s.is_empty())
        .collect();
    points.into_iter().map(str::to_string).collect()
}

fn external_ip(svc: &Value, svc_type: &str) -> String {
    let external: Vec<&str> = list(svc, "/spec/externalIPs").iter().filter_map(Value::as_str).collect();
    match svc_type {
        "ClusterIP" | "NodePort" if external.is_empty() => "<none>".into(),
        "ClusterIP" | "NodePort" => external.join(","),
        "LoadBalancer" => {
            let mut all = load_balancer_ingress(svc);
            all.extend(external.iter().map(|s| s.to_string()));
            if all.is_empty() { "<pending>".into() } else { all.join(",") }
        }
        "ExternalName" => str_at(svc, "/spec/externalName").into(),
        _ => "<unknown>".into(),
    }
}

/// Endpoints.
pub(crate) static ENDPOINTS: Printer =
    Printer::new(&[NAME, Col::text("Endpoints", "Up to three ready addresses with their ports."), AGE], |obj, now| {
        vec![name(obj).into(), endpoints(obj).into(), age(obj, now)]
    });

/// "ip:port" for every address and port of every subset, the first three shown.
fn endpoints(obj: &Value) -> String {
    let subsets = list(obj, "/subsets");
    if subsets.is_empty() {
        return "<none>".into();
    }
    const MAX: usize = 3;
    let mut shown = Vec::new();
    let mut total = 0;
    for subset in subsets {
        let addresses = list(subset, "/addresses");
        let ips = addresses.iter().map(|a| str_at(a, "/ip"));
        let ports = list(subset, "/ports");
        // Headless services may publish addresses without ports.
        let entries: Vec<String> = if ports.is_empty() {
            ips.map(str::to_string).collect()
        } else {
            ports.iter().flat_map(|p| ips.clone().map(|ip| join_host_port(ip, int_at(p, "/port")))).collect()
        };
        total += entries.len();
        shown.extend(entries.into_iter().take(MAX - shown.len()));
    }
    let joined = shown.join(",");
    if total > MAX { format!("{joined} + {} more...", total - MAX) } else { joined }
}

/// ConfigMaps: DATA counts text and binary entries.
pub(crate) static CONFIG_MAP: Printer =
    Printer::new(&[NAME, Col::int("Data", "Number of data entries."), AGE], |obj, now| {
        vec![name(obj).into(), (count(obj, "/data") + count(obj, "/binaryData")).into(), age(obj, now)]
    });

/// Secrets.
pub(crate) static SECRET: Printer = Printer::new(
    &[NAME, Col::text("Type", "The secret's type."), Col::text("Data", "Number of data entries."), AGE],
    |obj, now| vec![name(obj).into(), str_at(obj, "/type").into(), count(obj, "/data").into(), age(obj, now)],
);

/// ServiceAccounts.
pub(crate) static SERVICE_ACCOUNT: Printer =
    Printer::new(&[NAME, Col::text("Secrets", "Number of secrets listed by the account."), AGE], |obj, now| {
        vec![name(obj).into(), count(obj, "/secrets").into(), age(obj, now)]
    });

/// `GetAccessModesAsString`: the short forms in a fixed order, duplicates dropped.
fn access_modes(modes: &[Value]) -> String {
    let has = |m: &str| modes.iter().any(|v| v.as_str() == Some(m));
    let known =
        [("ReadWriteOnce", "RWO"), ("ReadOnlyMany", "ROX"), ("ReadWriteMany", "RWX"), ("ReadWriteOncePod", "RWOP")];
    known.iter().filter(|(long, _)| has(long)).map(|(_, short)| *short).collect::<Vec<_>>().join(",")
}

/// The storage class: the legacy beta annotation still takes precedence over the field.
fn storage_class(obj: &Value) -> &str {
    annotation(obj, "volume.beta.kubernetes.io/storage-class").unwrap_or_else(|| str_at(obj, "/spec/storageClassName"))
}

/// The phase, or "Terminating" once deletion started.
fn phase_or_terminating(obj: &Value) -> &str {
    if deleting(obj) { "Terminating" } else { str_at(obj, "/status/phase") }
}

/// PersistentVolumes.
pub(crate) static PERSISTENT_VOLUME: Printer = Printer::new(
    &[
        NAME,
        Col::text("Capacity", "The volume's storage capacity."),
        Col::text("Access Modes", "How the volume can be mounted."),
        Col::text("Reclaim Policy", "What happens to the volume once released from its claim."),
        Col::text("Status", "The volume's phase."),
        Col::text("Claim", "The claim bound to the volume."),
        Col::text("StorageClass", "The volume's storage class."),
        Col::text("VolumeAttributesClass", "The volume's attributes class."),
        Col::text("Reason", "Why the volume is in its phase."),
        AGE,
        Col::text("VolumeMode", "Filesystem or Block.").wide(),
    ],
    |obj, now| {
        let claim = match at(obj, "/spec/claimRef") {
            Some(c) => format!("{}/{}", str_at(c, "/namespace"), str_at(c, "/name")),
            None => String::new(),
        };
        vec![
            name(obj).into(),
            quantity(at(obj, "/spec/capacity/storage")).into(),
            access_modes(list(obj, "/spec/accessModes")).into(),
            str_at(obj, "/spec/persistentVolumeReclaimPolicy").into(),
            phase_or_terminating(obj).into(),
            claim.into(),
            storage_class(obj).into(),
            opt_str(obj, "/spec/volumeAttributesClassName").unwrap_or("<unset>").into(),
            str_at(obj, "/status/reason").into(),
            age(obj, now),
            opt_str(obj, "/spec/volumeMode").unwrap_or("<unset>").into(),
        ]
    },
);

/// PersistentVolumeClaims.
pub(crate) static PERSISTENT_VOLUME_CLAIM: Printer = Printer::new(
    &[
        NAME,
        Col::text("Status", "The claim's phase."),
        Col::text("Volume", "The volume bound to the claim."),
        Col::text("Capacity", "Storage capacity of the bound volume."),
        Col::text("Access Modes", "How the bound volume can be mounted."),
        Col::text("StorageClass", "The claim's storage class."),
        Col::text("VolumeAttributesClass", "The claim's volume attributes class."),
        AGE,
        Col::text("VolumeMode", "Filesystem or Block.").wide(),
    ],
    |obj, now| {
        let volume = str_at(obj, "/spec/volumeName");
        // Capacity and access modes describe the bound volume, so they stay blank until binding.
        let (capacity, modes) = if volume.is_empty() {
            (String::new(), String::new())
        } else {
            (quantity(at(obj, "/status/capacity/storage")), access_modes(list(obj, "/status/accessModes")))
        };
        vec![
            name(obj).into(),
            phase_or_terminating(obj).into(),
            volume.into(),
            capacity.into(),
            modes.into(),
            storage_class(obj).into(),
            opt_str(obj, "/spec/volumeAttributesClassName").unwrap_or("<unset>").into(),
            age(obj, now),
            opt_str(obj, "/spec/volumeMode").unwrap_or("<unset>").into(),
        ]
    },
);

/// ResourceQuotas.
pub(crate) static RESOURCE_QUOTA: Printer = Printer::new(
    &[
        NAME,
        Col::text("Request", "Used out of hard limits for every quota except limits.*."),
        Col::text("Limit", "Used out of hard limits for the limits.* quotas."),
        AGE,
    ],
    |obj, now| {
        let empty = Map::new();
        let hard = at(obj, "/status/hard").and_then(Value::as_object).unwrap_or(&empty);
        let used = at(obj, "/status/used").and_then(Value::as_object).unwrap_or(&empty);
        let mut keys: Vec<&String> = hard.keys().collect();
        keys.sort();
        let (mut requests, mut limits) = (Vec::new(), Vec::new());
        for key in keys {
            let entry = format!("{key}: {}/{}", quantity(used.get(key)), quantity(hard.get(key)));
            let is_limit = key.split_once('.').is_some_and(|(first, _)| first == "limits");
            if is_limit { limits.push(entry) } else { requests.push(entry) }
        }
        vec![name(obj).into(), requests.join(", ").into(), limits.join(", ").into(), age(obj, now)]
    },
);

/// ComponentStatuses.
pub(crate) static COMPONENT_STATUS: Printer = Printer::new(
    &[
        NAME,
        Col::text("Status", "Healthy, Unhealthy or Unknown."),
        Col::text("Message", "Message of the health condition."),
        Col::text("Error", "Error of the health condition."),
    ],
    |obj, _| {
        let healthy = list(obj, "/conditions").iter().find(|c| str_at(c, "/type") == "Healthy");
        let (status, message, error) = match healthy {
            Some(c) if str_at(c, "/status") == "True" => ("Healthy", str_at(c, "/message"), str_at(c, "/error")),
            Some(c) => ("Unhealthy", str_at(c, "/message"), str_at(c, "/error")),
            None => ("Unknown", "", ""),
        };
        vec![name(obj).into(), status.into(), message.into(), error.into()]
    },
);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> Timestamp {
        "2024-05-01T12:00:00Z".parse().unwrap()
    }

    fn row(p: &Printer, obj: Value) -> Value {
        Value::from((p.cells)(&obj, now()))
    }

    #[test]
    fn node_row() {
        let n = json!({"metadata": {"name": "cp-1", "creationTimestamp": "2023-01-01T00:00:00Z",
                "labels": {"node-role.kubernetes.io/control-plane": "", "node-role.kubernetes.io/": "x", "kubernetes.io/role": "master"}},
            "spec": {"unschedulable": true},
            "status": {"conditions": [{"type": "MemoryPressure", "status": "False"}, {"type": "Ready", "status": "True"}],
                "addresses": [{"type": "Hostname", "address": "cp-1"}, {"type": "InternalIP", "address": "192.168.1.10"}],
                "nodeInfo": {"kubeletVersion": "v1.33.1", "osImage": "Debian GNU/Linux 12", "kernelVersion": "6.1.0",
                    "containerRuntimeVersion": "containerd://2.0.0"}}});
        assert_eq!(
            row(&NODE, n),
            json!([
                "cp-1",
                "Ready,SchedulingDisabled",
                "control-plane,master",
                "486d",
                "v1.33.1",
                "192.168.1.10",
                "<none>",
                "Debian GNU/Linux 12",
                "6.1.0",
                "containerd://2.0.0"
            ])
        );
        let blank =
            json!({"metadata": {"name": "n"}, "status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}});
        assert_eq!(
            row(&NODE, blank),
            json!([
                "n",
                "NotReady",
                "<none>",
                "<unknown>",
                "",
                "<none>",
                "<none>",
                "<unknown>",
                "<unknown>",
                "<unknown>"
            ])
        );
        assert_eq!(row(&NODE, json!({"metadata": {"name": "n"}}))[1], "Unknown");
    }

    #[test]
    fn service_rows() {
        let cluster = json!({"metadata": {"name": "kubernetes", "creationTimestamp": "2024-05-01T10:00:00Z"},
            "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.1", "clusterIPs": ["10.96.0.1"],
                "ports": [{"port": 443, "protocol": "TCP", "targetPort": 6443}]}});
        assert_eq!(
            row(&SERVICE, cluster),
            json!(["kubernetes", "ClusterIP", "10.96.0.1", "<none>", "443/TCP", "120m", "<none>"])
        );
        let lb = json!({"metadata": {"name": "web"},
            "spec": {"type": "LoadBalancer", "clusterIPs": ["10.96.3.4"], "selector": {"app": "web"},
                "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}]},
            "status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.9"}, {"hostname": "lb.example.com"}]}}});
        assert_eq!(
            row(&SERVICE, lb),
            json!([
                "web",
                "LoadBalancer",
                "10.96.3.4",
                "203.0.113.9,lb.example.com",
                "80:30080/TCP,53/UDP",
                "<unknown>",
                "app=web"
            ])
        );
        let pending = json!({"metadata": {"name": "p"}, "spec": {"type": "LoadBalancer"}});
        assert_eq!(row(&SERVICE, pending)[3], "<pending>");
        let headless = json!({"metadata": {"name": "h"}, "spec": {"clusterIP": "None", "externalIPs": ["1.2.3.4"]}});
        let r = row(&SERVICE, headless);
        assert_eq!((&r[2], &r[3], &r[4]), (&json!("None"), &json!("1.2.3.4"), &json!("<none>")));
        let external =
            json!({"metadata": {"name": "e"}, "spec": {"type": "ExternalName", "externalName": "db.example.com"}});
        assert_eq!(row(&SERVICE, external)[3], "db.example.com");
    }

    #[test]
    fn endpoints_rows() {
        let ep = json!({"metadata": {"name": "web"}, "subsets": [
            {"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}], "ports": [{"port": 80}, {"port": 443}]}]});
        assert_eq!(row(&ENDPOINTS, ep)[1], "10.0.0.1:80,10.0.0.2:80,10.0.0.1:443 + 1 more...");
        let headless = json!({"metadata": {"name": "h"}, "subsets": [{"addresses": [{"ip": "10.0.0.1"}]}]});
        assert_eq!(row(&ENDPOINTS, headless)[1], "10.0.0.1");
        assert_eq!(row(&ENDPOINTS, json!({"metadata": {"name": "e"}}))[1], "<none>");
    }

    #[test]
    fn config_and_secrets() {
        let cm = json!({"metadata": {"name": "c"}, "data": {"a": "1", "b": "2"}, "binaryData": {"c": "AA=="}});
        assert_eq!(row(&CONFIG_MAP, cm), json!(["c", 3, "<unknown>"]));
        let s = json!({"metadata": {"name": "s"}, "type": "Opaque", "data": {"k": "dg=="}});
        assert_eq!(row(&SECRET, s), json!(["s", "Opaque", 1, "<unknown>"]));
        let sa = json!({"metadata": {"name": "default"}});
        assert_eq!(row(&SERVICE_ACCOUNT, sa), json!(["default", 0, "<unknown>"]));
    }

    #[test]
    fn volumes_and_claims() {
        let pv = json!({"metadata": {"name": "pv1"},
            "spec": {"capacity": {"storage": "10Gi"}, "accessModes": ["ReadWriteMany", "ReadWriteOnce", "ReadWriteOnce"],
                "persistentVolumeReclaimPolicy": "Retain", "storageClassName": "fast",
                "claimRef": {"namespace": "default", "name": "data"}, "volumeMode": "Filesystem"},
            "status": {"phase": "Bound"}});
        assert_eq!(
            row(&PERSISTENT_VOLUME, pv),
            json!([
                "pv1",
                "10Gi",
                "RWO,RWX",
                "Retain",
                "Bound",
                "default/data",
                "fast",
                "<unset>",
                "",
                "<unknown>",
                "Filesystem"
            ])
        );
        let pending = json!({"metadata": {"name": "data", "annotations": {"volume.beta.kubernetes.io/storage-class": "old"}},
            "spec": {"storageClassName": "fast", "resources": {"requests": {"storage": "1Gi"}}}, "status": {"phase": "Pending"}});
        assert_eq!(
            row(&PERSISTENT_VOLUME_CLAIM, pending),
            json!(["data", "Pending", "", "", "", "old", "<unset>", "<unknown>", "<unset>"])
        );
        let bound = json!({"metadata": {"name": "data", "deletionTimestamp": "2024-05-01T11:00:00Z"},
            "spec": {"volumeName": "pv1", "storageClassName": "fast", "volumeMode": "Block"},
            "status": {"phase": "Bound", "capacity": {"storage": "10Gi"}, "accessModes": ["ReadWriteOncePod"]}});
        assert_eq!(
            row(&PERSISTENT_VOLUME_CLAIM, bound),
            json!(["data", "Terminating", "pv1", "10Gi", "RWOP", "fast", "<unset>", "<unknown>", "Block"])
        );
    }

    #[test]
    fn resource_quota_row() {
        let rq = json!({"metadata": {"name": "q"}, "status": {
            "hard": {"pods": "10", "limits.cpu": "4", "requests.memory": "1Gi", "limits.memory": "2Gi"},
            "used": {"pods": "3", "limits.cpu": "500m", "requests.memory": "256Mi"}}});
        assert_eq!(
            row(&RESOURCE_QUOTA, rq),
            json!([
                "q",
                "pods: 3/10, requests.memory: 256Mi/1Gi",
                "limits.cpu: 500m/4, limits.memory: 0/2Gi",
                "<unknown>"
            ])
        );
    }
}
