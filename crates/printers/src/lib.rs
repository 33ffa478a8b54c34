//! Server-side printing: meta.k8s.io/v1 Table columns and rows for each kind, as kubectl get shows them.
//! The crate owns the column definitions and cell computations of Kubernetes' built-in printers
//! (pod status reasons, human-readable ages, selectors...) and the default Name / Created At table
//! used for every other kind. Objects come in as Kubernetes JSON; nothing here touches storage.

mod autoscaling;
mod batch;
mod cluster;
mod columns;
mod coreapi;
pub mod custom;
mod duration;
mod events;
mod fields;
pub mod jsonpath;
mod networking;
mod pod;
mod storage;
mod workloads;

use jiff::Timestamp;
use serde_json::{Map, Value, json};

use columns::{Col, NAME, Printer};
pub use custom::{CustomColumn, custom_columns, custom_table};

/// Which object to embed in each row (query parameter includeObject).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum IncludeObject {
    /// Rows carry no object.
    None,
    /// Rows carry a `PartialObjectMetadata` with the object's metadata (the Kubernetes default).
    #[default]
    Metadata,
    /// Rows carry the whole object.
    Object,
}

impl IncludeObject {
    /// Parses the `includeObject` query parameter: "None", "Metadata" or "Object".
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "None" => Some(Self::None),
            "Metadata" => Some(Self::Metadata),
            "Object" => Some(Self::Object),
            _ => None,
        }
    }
}

/// The Table for a list of objects of one kind. `group` is the API group ("" for core, "apps", ...).
/// `list_meta` is the list's metadata ({resourceVersion, continue, remainingItemCount}) copied into the Table.
/// `now` is the time AGE columns are computed against.
///
/// Every column is printed, wide ones included: like Kubernetes, the server leaves hiding the
/// priority-1 columns to the client. With `no_headers` the column definitions are null, as
/// Kubernetes sends them when the request asked for `noHeaders` (kubectl does so for watch
/// events after the first).
pub fn table(
    group: &str,
    kind: &str,
    objects: &[Value],
    list_meta: Value,
    include: IncludeObject,
    no_headers: bool,
    now: Timestamp,
) -> Value {
    let printer = printer(group, kind);
    let mut ordered: Vec<&Value> = objects.iter().collect();
    if let Some(order) = printer.order {
        ordered.sort_by(|a, b| order(a, b));
    }
    let rows: Vec<Value> = ordered
        .into_iter()
        .map(|obj| row((printer.cells)(obj, now), (printer.conditions)(obj), obj, include))
        .collect();
    let columns = if no_headers { Value::Null } else { Value::from(column_json(printer)) };
    table_json(columns, rows, list_meta)
}

/// The Table envelope around column definitions (null with noHeaders) and rows.
fn table_json(columns: Value, rows: Vec<Value>, list_meta: Value) -> Value {
    let metadata = if list_meta.is_null() { json!({}) } else { list_meta };
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
        "columnDefinitions": columns,
        "rows": rows,
    })
}

/// The column definitions for a kind (used e.g. for watch events, where each event carries a one-row Table).
pub fn columns(group: &str, kind: &str) -> Vec<Value> {
    column_json(printer(group, kind))
}

fn column_json(printer: &Printer) -> Vec<Value> {
    printer.columns.iter().map(|c| c.to_json()).collect()
}

/// One row: its cells, its conditions, and the object embedded as `include` asks.
fn row(cells: Vec<Value>, conditions: Option<Value>, obj: &Value, include: IncludeObject) -> Value {
    let mut row = Map::new();
    row.insert("cells".into(), Value::from(cells));
    if let Some(conditions) = conditions {
        row.insert("conditions".into(), conditions);
    }
    let embedded = match include {
        IncludeObject::None => None,
        IncludeObject::Metadata => Some(json!({
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": obj.get("metadata").cloned().unwrap_or_else(|| json!({})),
        })),
        IncludeObject::Object => Some(obj.clone()),
    };
    if let Some(embedded) = embedded {
        row.insert("object".into(), embedded);
    }
    Value::Object(row)
}

/// Kinds without a printer of their own (Role, ClusterRole, LimitRange, custom resources...)
/// get the generic table: the name and the creation time as an RFC 3339 date.
static DEFAULT: Printer =
    Printer::new(&[NAME, Col { ty: "date", ..Col::text("Created At", "Time the object was created.") }], |obj, _| {
        let created = duration::rfc3339(fields::opt_str(obj, "/metadata/creationTimestamp"));
        vec![fields::name(obj).into(), created.into()]
    });

/// The printer Kubernetes registers for a group and kind, or the default table.
fn printer(group: &str, kind: &str) -> &'static Printer {
    match (group, kind) {
        ("", "Pod") => &pod::POD,
        ("", "PodTemplate") => &pod::POD_TEMPLATE,
        ("", "Namespace") => &coreapi::NAMESPACE,
        ("", "Node") => &coreapi::NODE,
        ("", "Service") => &coreapi::SERVICE,
        ("", "Endpoints") => &coreapi::ENDPOINTS,
        ("", "ConfigMap") => &coreapi::CONFIG_MAP,
        ("", "Secret") => &coreapi::SECRET,
        ("", "ServiceAccount") => &coreapi::SERVICE_ACCOUNT,
        ("", "PersistentVolume") => &coreapi::PERSISTENT_VOLUME,
        ("", "PersistentVolumeClaim") => &coreapi::PERSISTENT_VOLUME_CLAIM,
        ("", "ResourceQuota") => &coreapi::RESOURCE_QUOTA,
        ("", "ComponentStatus") => &coreapi::COMPONENT_STATUS,
        ("", "ReplicationController") => &workloads::REPLICATION_CONTROLLER,
        ("", "Event") => &events::EVENT,
        ("events.k8s.io", "Event") => &events::EVENTS_EVENT,
        ("apps", "Deployment") => &workloads::DEPLOYMENT,
        ("apps", "ReplicaSet") => &workloads::REPLICA_SET,
        ("apps", "StatefulSet") => &workloads::STATEFUL_SET,
        ("apps", "DaemonSet") => &workloads::DAEMON_SET,
        ("apps", "ControllerRevision") => &workloads::CONTROLLER_REVISION,
        ("batch", "Job") => &batch::JOB,
        ("batch", "CronJob") => &batch::CRON_JOB,
        ("autoscaling", "HorizontalPodAutoscaler") => &autoscaling::HORIZONTAL_POD_AUTOSCALER,
        ("networking.k8s.io", "Ingress") => &networking::INGRESS,
        ("networking.k8s.io", "IngressClass") => &networking::INGRESS_CLASS,
        ("networking.k8s.io", "NetworkPolicy") => &networking::NETWORK_POLICY,
        ("networking.k8s.io", "ServiceCIDR") => &networking::SERVICE_CIDR,
        ("networking.k8s.io", "IPAddress") => &networking::IP_ADDRESS,
        ("discovery.k8s.io", "EndpointSlice") => &networking::ENDPOINT_SLICE,
        ("policy", "PodDisruptionBudget") => &cluster::POD_DISRUPTION_BUDGET,
        ("rbac.authorization.k8s.io", "RoleBinding") => &cluster::ROLE_BINDING,
        ("rbac.authorization.k8s.io", "ClusterRoleBinding") => &cluster::CLUSTER_ROLE_BINDING,
        ("scheduling.k8s.io", "PriorityClass") => &cluster::PRIORITY_CLASS,
        ("coordination.k8s.io", "Lease") => &cluster::LEASE,
        ("coordination.k8s.io", "LeaseCandidate") => &cluster::LEASE_CANDIDATE,
        ("node.k8s.io", "RuntimeClass") => &cluster::RUNTIME_CLASS,
        ("certificates.k8s.io", "CertificateSigningRequest") => &cluster::CERTIFICATE_SIGNING_REQUEST,
        ("admissionregistration.k8s.io", "MutatingWebhookConfiguration") => &cluster::MUTATING_WEBHOOK,
        ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration") => &cluster::VALIDATING_WEBHOOK,
        ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy") => &cluster::VALIDATING_ADMISSION_POLICY,
        ("admissionregistration.k8s.io", "ValidatingAdmissionPolicyBinding") => {
            &cluster::VALIDATING_ADMISSION_POLICY_BINDING
        }
        ("admissionregistration.k8s.io", "MutatingAdmissionPolicy") => &cluster::MUTATING_ADMISSION_POLICY,
        ("admissionregistration.k8s.io", "MutatingAdmissionPolicyBinding") => {
            &cluster::MUTATING_ADMISSION_POLICY_BINDING
        }
        ("flowcontrol.apiserver.k8s.io", "FlowSchema") => &cluster::FLOW_SCHEMA,
        ("flowcontrol.apiserver.k8s.io", "PriorityLevelConfiguration") => &cluster::PRIORITY_LEVEL,
        ("resource.k8s.io", "DeviceClass") => &cluster::DEVICE_CLASS,
        ("resource.k8s.io", "ResourceClaim") => &cluster::RESOURCE_CLAIM,
        ("resource.k8s.io", "ResourceClaimTemplate") => &cluster::RESOURCE_CLAIM_TEMPLATE,
        ("resource.k8s.io", "ResourceSlice") => &cluster::RESOURCE_SLICE,
        ("storage.k8s.io", "StorageClass") => &storage::STORAGE_CLASS,
        ("storage.k8s.io", "VolumeAttributesClass") => &storage::VOLUME_ATTRIBUTES_CLASS,
        ("storage.k8s.io", "VolumeAttachment") => &storage::VOLUME_ATTACHMENT,
        ("storage.k8s.io", "CSIDriver") => &storage::CSI_DRIVER,
        ("storage.k8s.io", "CSINode") => &storage::CSI_NODE,
        ("storage.k8s.io", "CSIStorageCapacity") => &storage::CSI_STORAGE_CAPACITY,
        _ => &DEFAULT,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Timestamp {
        "2024-05-01T12:00:00Z".parse().unwrap()
    }

    fn pod() -> Value {
        json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web", "namespace": "default", "resourceVersion": "42", "creationTimestamp": "2024-05-01T11:00:00Z"},
            "spec": {"containers": [{"name": "a", "image": "nginx"}]},
            "status": {"phase": "Succeeded"}})
    }

    #[test]
    fn include_object_parsing() {
        assert_eq!(IncludeObject::parse("None"), Some(IncludeObject::None));
        assert_eq!(IncludeObject::parse("Metadata"), Some(IncludeObject::Metadata));
        assert_eq!(IncludeObject::parse("Object"), Some(IncludeObject::Object));
        assert_eq!(IncludeObject::parse("object"), None);
        assert_eq!(IncludeObject::default(), IncludeObject::Metadata);
    }

    #[test]
    fn table_shape_with_metadata() {
        let meta = json!({"resourceVersion": "100", "continue": "abc"});
        let t = table("", "Pod", &[pod()], meta.clone(), IncludeObject::Metadata, false, now());
        assert_eq!(t["kind"], "Table");
        assert_eq!(t["apiVersion"], "meta.k8s.io/v1");
        assert_eq!(t["metadata"], meta);
        let cols = t["columnDefinitions"].as_array().unwrap();
        let names: Vec<&str> = cols.iter().map(|c| c["name"].as_str().unwrap()).collect();
        assert_eq!(
            names,
            ["Name", "Ready", "Status", "Restarts", "Age", "IP", "Node", "Nominated Node", "Readiness Gates"]
        );
        assert_eq!(
            cols[0],
            json!({"name": "Name", "type": "string", "format": "name", "description": cols[0]["description"], "priority": 0})
        );
        assert!(cols[5..].iter().all(|c| c["priority"] == 1));
        let row = &t["rows"][0];
        assert_eq!(
            row["cells"],
            json!(["web", "0/1", "Succeeded", "0", "60m", "<none>", "<none>", "<none>", "<none>"])
        );
        assert_eq!(row["conditions"][0]["type"], "Completed");
        assert_eq!(
            row["object"],
            json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": pod()["metadata"]})
        );
    }

    #[test]
    fn include_variants_and_no_headers() {
        let t = table("", "Pod", &[pod()], json!({}), IncludeObject::Object, true, now());
        assert_eq!(t["rows"][0]["object"], pod());
        assert!(t["columnDefinitions"].is_null());
        let t = table("", "Pod", &[pod()], Value::Null, IncludeObject::None, false, now());
        assert!(t["rows"][0].get("object").is_none());
        assert_eq!(t["metadata"], json!({}));
        let empty =
            table("apps", "Deployment", &[], json!({"resourceVersion": "7"}), IncludeObject::Metadata, false, now());
        assert_eq!(empty["rows"], json!([]));
    }

    #[test]
    fn default_table() {
        let role = json!({"metadata": {"name": "reader", "creationTimestamp": "2024-05-01T11:00:00Z"}, "rules": []});
        let t = table("rbac.authorization.k8s.io", "Role", &[role], json!({}), IncludeObject::None, false, now());
        assert_eq!(t["columnDefinitions"][1]["name"], "Created At");
        assert_eq!(t["columnDefinitions"][1]["type"], "date");
        assert_eq!(t["columnDefinitions"][0]["format"], "name");
        assert_eq!(t["rows"][0]["cells"], json!(["reader", "2024-05-01T11:00:00Z"]));
        // A kind is matched together with its group: a custom "Pod" is not a core pod.
        assert_eq!(columns("example.com", "Pod").len(), 2);
        assert_eq!(columns("", "LimitRange").len(), 2);
    }

    #[test]
    fn event_groups_share_columns() {
        assert_eq!(columns("", "Event"), columns("events.k8s.io", "Event"));
        let names: Vec<String> = columns("", "Event").iter().map(|c| c["name"].as_str().unwrap().to_string()).collect();
        assert_eq!(
            names,
            ["Last Seen", "Type", "Reason", "Object", "Subobject", "Source", "Message", "First Seen", "Count", "Name"]
        );
    }

    #[test]
    fn wide_columns_per_kind() {
        let wide = |group: &str, kind: &str| -> Vec<String> {
            columns(group, kind)
                .iter()
                .filter(|c| c["priority"] == 1)
                .map(|c| c["name"].as_str().unwrap().to_string())
                .collect()
        };
        assert_eq!(wide("apps", "Deployment"), ["Containers", "Images", "Selector"]);
        assert_eq!(wide("apps", "StatefulSet"), ["Containers", "Images"]);
        assert_eq!(wide("", "Node"), ["Internal-IP", "External-IP", "OS-Image", "Kernel-Version", "Container-Runtime"]);
        assert_eq!(wide("", "Service"), ["Selector"]);
        assert_eq!(wide("rbac.authorization.k8s.io", "ClusterRoleBinding"), ["Users", "Groups", "ServiceAccounts"]);
    }

    #[test]
    fn flow_schemas_are_listed_by_precedence() {
        let fs = |name: &str, precedence: i64| json!({"metadata": {"name": name}, "spec": {"matchingPrecedence": precedence}});
        let objects = [fs("global-default", 9900), fs("b", 500), fs("a", 500), fs("exempt", 1)];
        let t =
            table("flowcontrol.apiserver.k8s.io", "FlowSchema", &objects, json!({}), IncludeObject::None, true, now());
        let names: Vec<&str> = t["rows"].as_array().unwrap().iter().map(|r| r["cells"][0].as_str().unwrap()).collect();
        assert_eq!(names, ["exempt", "a", "b", "global-default"]);
    }

    /// Every printer yields exactly one cell per column (IPAddress excepted, whose Kubernetes
    /// printer emits an undeclared AGE cell).
    #[test]
    fn cells_match_columns() {
        let kinds = [
            ("", "Pod"),
            ("", "PodTemplate"),
            ("", "Namespace"),
            ("", "Node"),
            ("", "Service"),
            ("", "Endpoints"),
            ("", "ConfigMap"),
            ("", "Secret"),
            ("", "ServiceAccount"),
            ("", "PersistentVolume"),
            ("", "PersistentVolumeClaim"),
            ("", "ResourceQuota"),
            ("", "ComponentStatus"),
            ("", "ReplicationController"),
            ("", "Event"),
            ("events.k8s.io", "Event"),
            ("apps", "Deployment"),
            ("apps", "ReplicaSet"),
            ("apps", "StatefulSet"),
            ("apps", "DaemonSet"),
            ("apps", "ControllerRevision"),
            ("batch", "Job"),
            ("batch", "CronJob"),
            ("autoscaling", "HorizontalPodAutoscaler"),
            ("networking.k8s.io", "Ingress"),
            ("networking.k8s.io", "IngressClass"),
            ("networking.k8s.io", "NetworkPolicy"),
            ("networking.k8s.io", "ServiceCIDR"),
            ("discovery.k8s.io", "EndpointSlice"),
            ("policy", "PodDisruptionBudget"),
            ("rbac.authorization.k8s.io", "RoleBinding"),
            ("scheduling.k8s.io", "PriorityClass"),
            ("coordination.k8s.io", "Lease"),
            ("coordination.k8s.io", "LeaseCandidate"),
            ("node.k8s.io", "RuntimeClass"),
            ("certificates.k8s.io", "CertificateSigningRequest"),
            ("admissionregistration.k8s.io", "MutatingWebhookConfiguration"),
            ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy"),
            ("admissionregistration.k8s.io", "ValidatingAdmissionPolicyBinding"),
            ("admissionregistration.k8s.io", "MutatingAdmissionPolicy"),
            ("admissionregistration.k8s.io", "MutatingAdmissionPolicyBinding"),
            ("flowcontrol.apiserver.k8s.io", "FlowSchema"),
            ("flowcontrol.apiserver.k8s.io", "PriorityLevelConfiguration"),
            ("resource.k8s.io", "ResourceClaim"),
            ("resource.k8s.io", "ResourceSlice"),
            ("storage.k8s.io", "StorageClass"),
            ("storage.k8s.io", "VolumeAttachment"),
            ("storage.k8s.io", "CSIDriver"),
            ("storage.k8s.io", "CSINode"),
            ("storage.k8s.io", "CSIStorageCapacity"),
            ("storage.k8s.io", "VolumeAttributesClass"),
            ("", "Anything"),
        ];
        let bare = json!({"metadata": {"name": "x"}});
        for (group, kind) in kinds {
            let t = table(group, kind, std::slice::from_ref(&bare), json!({}), IncludeObject::None, false, now());
            let cells = t["rows"][0]["cells"].as_array().unwrap().len();
            assert_eq!(cells, columns(group, kind).len(), "{group}/{kind}");
        }
    }
}
