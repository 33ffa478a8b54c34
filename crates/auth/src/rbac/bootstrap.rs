//! The default ClusterRoles and ClusterRoleBindings an empty cluster starts with, modelled
//! on Kubernetes' bootstrap policy (names, labels, annotations, aggregation and bindings
//! as Kubernetes; the rule lists cover what rkube's components use).

use k8s_openapi::api::rbac::v1::{AggregationRule, ClusterRole, ClusterRoleBinding, PolicyRule, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use std::collections::BTreeMap;

/// Annotation telling the API server it may reconcile the object back to the defaults.
pub const AUTOUPDATE_ANNOTATION: &str = "rbac.authorization.kubernetes.io/autoupdate";
/// Label every default object carries: `kubernetes.io/bootstrapping: rbac-defaults`.
pub const BOOTSTRAPPING_LABEL: &str = "kubernetes.io/bootstrapping";
/// Label that makes a ClusterRole's rules part of `admin`.
pub const AGGREGATE_TO_ADMIN: &str = "rbac.authorization.k8s.io/aggregate-to-admin";
/// Label that makes a ClusterRole's rules part of `edit` (and so of `admin`).
pub const AGGREGATE_TO_EDIT: &str = "rbac.authorization.k8s.io/aggregate-to-edit";
/// Label that makes a ClusterRole's rules part of `view` (and so of `edit` and `admin`).
pub const AGGREGATE_TO_VIEW: &str = "rbac.authorization.k8s.io/aggregate-to-view";

const RBAC_GROUP: &str = "rbac.authorization.k8s.io";
const READ: &[&str] = &["get", "list", "watch"];
const WRITE: &[&str] = &["create", "delete", "deletecollection", "patch", "update"];
const EVENT_WRITE: &[&str] = &["create", "patch", "update"];

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn rule(verbs: &[&str], groups: &[&str], resources: &[&str]) -> PolicyRule {
    PolicyRule {
        verbs: strings(verbs),
        api_groups: Some(strings(groups)),
        resources: Some(strings(resources)),
        ..Default::default()
    }
}

fn named(mut rule: PolicyRule, names: &[&str]) -> PolicyRule {
    rule.resource_names = Some(strings(names));
    rule
}

fn urls(verbs: &[&str], urls: &[&str]) -> PolicyRule {
    PolicyRule { verbs: strings(verbs), non_resource_urls: Some(strings(urls)), ..Default::default() }
}

fn meta(name: &str, extra_labels: &[&str]) -> ObjectMeta {
    let mut labels = BTreeMap::from([(BOOTSTRAPPING_LABEL.to_string(), "rbac-defaults".to_string())]);
    for label in extra_labels {
        labels.insert(label.to_string(), "true".to_string());
    }
    ObjectMeta {
        name: Some(name.to_string()),
        labels: Some(labels),
        annotations: Some(BTreeMap::from([(AUTOUPDATE_ANNOTATION.to_string(), "true".to_string())])),
        ..Default::default()
    }
}

fn role(name: &str, rules: Vec<PolicyRule>) -> ClusterRole {
    ClusterRole { metadata: meta(name, &[]), rules: Some(rules), aggregation_rule: None }
}

fn labelled_role(name: &str, labels: &[&str], rules: Vec<PolicyRule>) -> ClusterRole {
    ClusterRole { metadata: meta(name, labels), rules: Some(rules), aggregation_rule: None }
}

/// A role whose rules are whatever roles labelled `select_label: "true"` hold.
fn aggregated(name: &str, labels: &[&str], select_label: &str) -> ClusterRole {
    ClusterRole {
        metadata: meta(name, labels),
        rules: Some(Vec::new()),
        aggregation_rule: Some(AggregationRule {
            cluster_role_selectors: Some(vec![LabelSelector {
                match_labels: Some(BTreeMap::from([(select_label.to_string(), "true".to_string())])),
                match_expressions: None,
            }]),
        }),
    }
}

fn subject(kind: &str, name: &str) -> Subject {
    Subject { kind: kind.into(), name: name.into(), api_group: Some(RBAC_GROUP.into()), namespace: None }
}

fn binding(role: &str, subjects: Vec<Subject>) -> ClusterRoleBinding {
    ClusterRoleBinding {
        metadata: meta(role, &[]),
        role_ref: RoleRef { api_group: RBAC_GROUP.into(), kind: "ClusterRole".into(), name: role.into() },
        // Kubernetes stores a binding without subjects with the field absent.
        subjects: if subjects.is_empty() { None } else { Some(subjects) },
    }
}

/// What a kubelet may do, before the Node authorizer narrows secrets, configmaps, volumes,
/// ServiceAccount tokens, leases, pod status and node writes to its own node.
pub fn node_rules() -> Vec<PolicyRule> {
    vec![
        rule(&["create"], &["authentication.k8s.io"], &["tokenreviews"]),
        rule(&["create"], &["authorization.k8s.io"], &["localsubjectaccessreviews", "subjectaccessreviews"]),
        rule(READ, &[""], &["services"]),
        rule(&["create", "get", "list", "watch"], &[""], &["nodes"]),
        rule(&["patch", "update"], &[""], &["nodes/status"]),
        rule(&["patch", "update"], &[""], &["nodes"]),
        rule(EVENT_WRITE, &["", "events.k8s.io"], &["events"]),
        rule(READ, &[""], &["pods"]),
        rule(&["create", "delete"], &[""], &["pods"]),
        rule(&["patch", "update"], &[""], &["pods/status"]),
        rule(&["create"], &[""], &["pods/eviction"]),
        rule(READ, &[""], &["configmaps", "secrets"]),
        rule(&["get"], &[""], &["persistentvolumeclaims", "persistentvolumes"]),
        rule(&["get"], &[""], &["endpoints"]),
        rule(&["patch", "update"], &[""], &["persistentvolumeclaims/status"]),
        rule(&["create"], &[""], &["serviceaccounts/token"]),
        rule(&["create", "get", "list", "watch"], &["certificates.k8s.io"], &["certificatesigningrequests"]),
        rule(&["create", "delete", "get", "patch", "update"], &["coordination.k8s.io"], &["leases"]),
        rule(&["get"], &["storage.k8s.io"], &["volumeattachments"]),
        rule(READ, &["storage.k8s.io"], &["csidrivers"]),
        rule(&["create", "delete", "get", "patch", "update"], &["storage.k8s.io"], &["csinodes"]),
        rule(READ, &["node.k8s.io"], &["runtimeclasses"]),
    ]
}

/// What rkube-ingress reads to route, and the status it writes.
fn ingress_rules() -> Vec<PolicyRule> {
    vec![
        rule(READ, &["networking.k8s.io"], &["ingresses", "ingressclasses"]),
        // It registers its own IngressClass ("rkube") at start.
        rule(&["create"], &["networking.k8s.io"], &["ingressclasses"]),
        rule(&["update", "patch"], &["networking.k8s.io"], &["ingresses/status"]),
        rule(READ, &[""], &["services", "secrets"]),
        rule(READ, &["discovery.k8s.io"], &["endpointslices"]),
        rule(EVENT_WRITE, &["", "events.k8s.io"], &["events"]),
    ]
}

/// What the kubelet's local-path provisioner manages besides the Node authorizer's grants.
fn local_path_provisioner_rules() -> Vec<PolicyRule> {
    vec![
        rule(&["create", "get", "list", "watch"], &["storage.k8s.io"], &["storageclasses"]),
        rule(&["create", "delete", "get", "list", "watch", "update", "patch"], &[""], &["persistentvolumes"]),
        rule(&["get", "list", "watch", "update", "patch"], &[""], &["persistentvolumeclaims"]),
    ]
}

fn view_rules() -> Vec<PolicyRule> {
    vec![
        rule(
            READ,
            &[""],
            &[
                "configmaps",
                "endpoints",
                "persistentvolumeclaims",
                "persistentvolumeclaims/status",
                "pods",
                "replicationcontrollers",
                "replicationcontrollers/scale",
                "serviceaccounts",
                "services",
                "services/status",
            ],
        ),
        rule(
            READ,
            &[""],
            &[
                "bindings",
                "events",
                "limitranges",
                "namespaces/status",
                "pods/log",
                "pods/status",
                "replicationcontrollers/status",
                "resourcequotas",
                "resourcequotas/status",
            ],
        ),
        rule(READ, &[""], &["namespaces"]),
        rule(READ, &["discovery.k8s.io"], &["endpointslices"]),
        rule(
            READ,
            &["apps"],
            &[
                "controllerrevisions",
                "daemonsets",
                "daemonsets/status",
                "deployments",
                "deployments/scale",
                "deployments/status",
                "replicasets",
                "replicasets/scale",
                "replicasets/status",
                "statefulsets",
                "statefulsets/scale",
                "statefulsets/status",
            ],
        ),
        rule(READ, &["autoscaling"], &["horizontalpodautoscalers", "horizontalpodautoscalers/status"]),
        rule(READ, &["batch"], &["cronjobs", "cronjobs/status", "jobs", "jobs/status"]),
        rule(READ, &["policy"], &["poddisruptionbudgets", "poddisruptionbudgets/status"]),
        rule(READ, &["networking.k8s.io"], &["ingresses", "ingresses/status", "networkpolicies"]),
        rule(READ, &["events.k8s.io"], &["events"]),
    ]
}

fn edit_rules() -> Vec<PolicyRule> {
    vec![
        rule(READ, &[""], &["pods/attach", "pods/exec", "pods/portforward", "pods/proxy", "secrets", "services/proxy"]),
        rule(&["impersonate"], &[""], &["serviceaccounts"]),
        rule(WRITE, &[""], &["pods", "pods/attach", "pods/exec", "pods/portforward", "pods/proxy"]),
        rule(&["create"], &[""], &["pods/eviction"]),
        rule(
            WRITE,
            &[""],
            &[
                "configmaps",
                "events",
                "persistentvolumeclaims",
                "replicationcontrollers",
                "replicationcontrollers/scale",
                "secrets",
                "serviceaccounts",
                "services",
                "services/proxy",
            ],
        ),
        rule(&["create"], &[""], &["serviceaccounts/token"]),
        rule(
            WRITE,
            &["apps"],
            &[
                "daemonsets",
                "deployments",
                "deployments/rollback",
                "deployments/scale",
                "replicasets",
                "replicasets/scale",
                "statefulsets",
                "statefulsets/scale",
            ],
        ),
        rule(WRITE, &["autoscaling"], &["horizontalpodautoscalers"]),
        rule(WRITE, &["batch"], &["cronjobs", "jobs"]),
        rule(WRITE, &["networking.k8s.io"], &["ingresses", "networkpolicies"]),
        rule(WRITE, &["policy"], &["poddisruptionbudgets"]),
    ]
}

fn admin_rules() -> Vec<PolicyRule> {
    vec![
        rule(&["create"], &["authorization.k8s.io"], &["localsubjectaccessreviews"]),
        rule(
            &["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
            &[RBAC_GROUP],
            &["rolebindings", "roles"],
        ),
    ]
}

fn scheduler_rules() -> Vec<PolicyRule> {
    vec![
        rule(EVENT_WRITE, &["", "events.k8s.io"], &["events"]),
        rule(&["create"], &["coordination.k8s.io"], &["leases"]),
        named(rule(&["get", "update"], &["coordination.k8s.io"], &["leases"]), &["kube-scheduler"]),
        rule(READ, &[""], &["nodes"]),
        rule(&["delete", "get", "list", "watch"], &[""], &["pods"]),
        rule(&["create"], &[""], &["bindings", "pods/binding"]),
        rule(&["patch", "update"], &[""], &["pods/status"]),
        rule(READ, &[""], &["replicationcontrollers", "services", "namespaces", "configmaps"]),
        rule(READ, &["apps"], &["replicasets", "statefulsets"]),
        rule(READ, &["policy"], &["poddisruptionbudgets"]),
        rule(READ, &[""], &["persistentvolumeclaims", "persistentvolumes"]),
        rule(&["create"], &["authentication.k8s.io"], &["tokenreviews"]),
        rule(&["create"], &["authorization.k8s.io"], &["subjectaccessreviews"]),
        rule(READ, &["storage.k8s.io"], &["csidrivers", "csinodes", "csistoragecapacities", "storageclasses"]),
        rule(READ, &["scheduling.k8s.io"], &["priorityclasses"]),
    ]
}

/// rkube's controller-manager runs every controller under one identity (Kubernetes gives each
/// its own ServiceAccount), so its role is the union: broad, but without RBAC escalation.
fn controller_manager_rules() -> Vec<PolicyRule> {
    vec![
        rule(
            &["*"],
            &[
                "",
                "apps",
                "autoscaling",
                "batch",
                "certificates.k8s.io",
                "coordination.k8s.io",
                "discovery.k8s.io",
                "events.k8s.io",
                "networking.k8s.io",
                "node.k8s.io",
                "policy",
                "resource.k8s.io",
                "scheduling.k8s.io",
                "storage.k8s.io",
            ],
            &["*"],
        ),
        rule(
            &["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
            &[RBAC_GROUP],
            &["*"],
        ),
        // The garbage collector and namespace deletion touch every resource, custom ones too.
        rule(&["delete", "deletecollection", "get", "list", "patch", "update", "watch"], &["*"], &["*"]),
        rule(&["create"], &["authentication.k8s.io"], &["tokenreviews"]),
        rule(&["create"], &["authorization.k8s.io"], &["subjectaccessreviews"]),
    ]
}

fn node_proxier_rules() -> Vec<PolicyRule> {
    vec![
        rule(&["list", "watch"], &[""], &["endpoints", "services"]),
        rule(READ, &[""], &["nodes"]),
        rule(EVENT_WRITE, &["", "events.k8s.io"], &["events"]),
        rule(&["list", "watch"], &["discovery.k8s.io"], &["endpointslices"]),
    ]
}

/// The user name in the API server's client certificate for kubelets.
pub const KUBELET_API_CLIENT: &str = "kube-apiserver-kubelet-client";

/// The default ClusterRoles (aggregated ones already filled in) and ClusterRoleBindings.
///
/// Bindings: `cluster-admin` to group `system:masters`; `system:discovery` and
/// `system:basic-user` to `system:authenticated`; `system:public-info-viewer` to
/// `system:authenticated` and `system:unauthenticated`; `system:kube-scheduler`,
/// `system:kube-controller-manager` and `system:node-proxier` to users `system:kube-scheduler`,
/// `system:kube-controller-manager` and `system:kube-proxy`; `system:kubelet-api-admin` to the
/// API server's kubelet client (`kube-apiserver-kubelet-client`); `system:service-account-issuer-discovery`
/// to `system:serviceaccounts`; `system:node-bootstrapper` to `system:bootstrappers` (what
/// kubeadm adds for joining nodes). `system:node` is bound to nobody: kubelets get their
/// rights from the Node authorizer, which confines them to their own node.
pub fn bootstrap_policy() -> (Vec<ClusterRole>, Vec<ClusterRoleBinding>) {
    let mut roles = vec![
        role("cluster-admin", vec![rule(&["*"], &["*"], &["*"]), urls(&["*"], &["*"])]),
        aggregated("admin", &[], AGGREGATE_TO_ADMIN),
        aggregated("edit", &[AGGREGATE_TO_ADMIN], AGGREGATE_TO_EDIT),
        aggregated("view", &[AGGREGATE_TO_EDIT], AGGREGATE_TO_VIEW),
        labelled_role("system:aggregate-to-admin", &[AGGREGATE_TO_ADMIN], admin_rules()),
        labelled_role("system:aggregate-to-edit", &[AGGREGATE_TO_EDIT], edit_rules()),
        labelled_role("system:aggregate-to-view", &[AGGREGATE_TO_VIEW], view_rules()),
        role(
            "system:discovery",
            vec![urls(
                &["get"],
                &[
                    "/api",
                    "/api/*",
                    "/apis",
                    "/apis/*",
                    "/healthz",
                    "/livez",
                    "/openapi",
                    "/openapi/*",
                    "/readyz",
                    "/version",
                    "/version/",
                ],
            )],
        ),
        role(
            "system:basic-user",
            vec![
                rule(&["create"], &["authorization.k8s.io"], &["selfsubjectaccessreviews", "selfsubjectrulesreviews"]),
                rule(&["create"], &["authentication.k8s.io"], &["selfsubjectreviews"]),
            ],
        ),
        role(
            "system:public-info-viewer",
            vec![urls(&["get"], &["/healthz", "/livez", "/readyz", "/version", "/version/"])],
        ),
        role(
            "system:service-account-issuer-discovery",
            vec![urls(
                &["get"],
                &[
                    "/.well-known/openid-configuration",
                    "/.well-known/openid-configuration/",
                    "/openid/v1/jwks",
                    "/openid/v1/jwks/",
                ],
            )],
        ),
        role("system:node", node_rules()),
        role("system:node-proxier", node_proxier_rules()),
        role(
            "system:kubelet-api-admin",
            vec![
                rule(&["get", "list", "watch", "proxy"], &[""], &["nodes"]),
                rule(&["*"], &[""], &["nodes/log", "nodes/metrics", "nodes/proxy", "nodes/stats"]),
            ],
        ),
        role("system:kube-scheduler", scheduler_rules()),
        role("system:kube-controller-manager", controller_manager_rules()),
        role(
            "system:node-bootstrapper",
            vec![rule(&["create", "get", "list", "watch"], &["certificates.k8s.io"], &["certificatesigningrequests"])],
        ),
        // rkube's own daemons beyond Kubernetes' set.
        role("system:rkube-ingress", ingress_rules()),
        role(
            "system:rkube-dns",
            vec![
                rule(&["create"], &[""], &["services"]),
                PolicyRule {
                    resource_names: Some(strings(&["kube-dns"])),
                    ..rule(&["get", "update", "patch"], &[""], &["services"])
                },
            ],
        ),
        role("system:rkube-local-path-provisioner", local_path_provisioner_rules()),
        // What rkube-proxy reads to enforce NetworkPolicies (a network plugin's role in Kubernetes).
        role(
            "system:rkube-network-policy",
            vec![
                rule(&["list", "watch"], &[""], &["pods", "namespaces"]),
                rule(&["list", "watch"], &["networking.k8s.io"], &["networkpolicies"]),
            ],
        ),
    ];
    super::aggregate_in_place(&mut roles);

    let bindings = vec![
        binding("cluster-admin", vec![subject("Group", "system:masters")]),
        binding("system:discovery", vec![subject("Group", "system:authenticated")]),
        binding("system:basic-user", vec![subject("Group", "system:authenticated")]),
        binding(
            "system:public-info-viewer",
            vec![subject("Group", "system:authenticated"), subject("Group", "system:unauthenticated")],
        ),
        binding("system:service-account-issuer-discovery", vec![subject("Group", "system:serviceaccounts")]),
        binding("system:node", vec![]),
        binding("system:node-proxier", vec![subject("User", "system:kube-proxy")]),
        // The API server's client certificate towards kubelets (logs, exec, stats), which ask
        // whether it may, as kubeadm binds it.
        binding("system:kubelet-api-admin", vec![subject("User", KUBELET_API_CLIENT)]),
        binding("system:kube-scheduler", vec![subject("User", "system:kube-scheduler")]),
        binding("system:kube-controller-manager", vec![subject("User", "system:kube-controller-manager")]),
        binding("system:node-bootstrapper", vec![subject("Group", "system:bootstrappers")]),
        binding("system:rkube-ingress", vec![subject("User", "system:rkube-ingress")]),
        // rkube-proxy creates the cluster DNS Service (kube-system/kube-dns) it answers behind.
        binding("system:rkube-dns", vec![subject("User", "system:kube-proxy")]),
        // Every kubelet runs the built-in local-path provisioner (StorageClass, PVs).
        binding("system:rkube-local-path-provisioner", vec![subject("Group", "system:nodes")]),
        binding("system:rkube-network-policy", vec![subject("User", "system:kube-proxy")]),
    ];
    (roles, bindings)
}
