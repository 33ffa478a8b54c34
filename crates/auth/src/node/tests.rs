use super::*;
use crate::authn::UserInfo;
use serde_json::json;
use std::collections::BTreeMap;

/// An in-memory graph: pods by node, claims to volumes.
struct Graph {
    pods: Vec<(String, Arc<PodReferences>)>,
    volumes: BTreeMap<(String, String), String>,
}

impl NodeGraph for Graph {
    fn pods_on_node(&self, node: &str) -> Vec<Arc<PodReferences>> {
        self.pods.iter().filter(|(n, _)| n == node).map(|(_, p)| p.clone()).collect()
    }
    fn persistent_volume_of_claim(&self, namespace: &str, claim: &str) -> Option<String> {
        self.volumes.get(&(namespace.to_string(), claim.to_string())).cloned()
    }
}

fn pod(value: serde_json::Value) -> Pod {
    serde_json::from_value(value).unwrap()
}

fn web_pod() -> Pod {
    pod(json!({
        "metadata": {"name": "web-0", "namespace": "shop"},
        "spec": {
            "serviceAccountName": "web",
            "imagePullSecrets": [{"name": "registry-creds"}],
            "volumes": [
                {"name": "tls", "secret": {"secretName": "web-tls"}},
                {"name": "conf", "configMap": {"name": "web-conf"}},
                {"name": "data", "persistentVolumeClaim": {"claimName": "web-data"}},
                {"name": "scratch", "ephemeral": {"volumeClaimTemplate": {"spec": {}}}},
                {"name": "bundle", "projected": {"sources": [
                    {"secret": {"name": "projected-secret"}},
                    {"configMap": {"name": "projected-conf"}},
                    {"serviceAccountToken": {"path": "token"}}
                ]}},
                {"name": "csi", "csi": {"driver": "x", "nodePublishSecretRef": {"name": "csi-secret"}}}
            ],
            "initContainers": [{"name": "init", "envFrom": [{"configMapRef": {"name": "init-env"}}]}],
            "containers": [{
                "name": "app",
                "env": [
                    {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db-password", "key": "p"}}},
                    {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "modes", "key": "m"}}},
                    {"name": "PLAIN", "value": "x"}
                ],
                "envFrom": [{"secretRef": {"name": "env-secret"}}]
            }],
            "ephemeralContainers": [{"name": "debug", "envFrom": [{"secretRef": {"name": "debug-secret"}}]}]
        }
    }))
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[test]
fn pod_references_cover_volumes_env_and_pull_secrets() {
    let refs = pod_references(&web_pod());
    assert_eq!((refs.namespace.as_str(), refs.name.as_str(), refs.service_account.as_str()), ("shop", "web-0", "web"));
    assert_eq!(
        refs.secrets,
        set(&[
            "csi-secret",
            "db-password",
            "debug-secret",
            "env-secret",
            "projected-secret",
            "registry-creds",
            "web-tls"
        ])
    );
    assert_eq!(refs.config_maps, set(&["init-env", "modes", "projected-conf", "web-conf"]));
    assert_eq!(refs.persistent_volume_claims, set(&["web-0-scratch", "web-data"]));

    let bare = pod_references(&pod(json!({"metadata": {"name": "p", "namespace": "d"}, "spec": {"containers": []}})));
    assert_eq!(bare.service_account, "default");
    assert!(bare.secrets.is_empty() && bare.config_maps.is_empty() && bare.persistent_volume_claims.is_empty());
}

fn authorizer() -> NodeAuthorizer<Graph> {
    let other = pod_references(&pod(json!({
        "metadata": {"name": "db-0", "namespace": "shop"},
        "spec": {"volumes": [{"name": "s", "secret": {"secretName": "db-secret"}},
                             {"name": "d", "persistentVolumeClaim": {"claimName": "db-data"}}],
                 "containers": []}
    })));
    NodeAuthorizer::new(Graph {
        pods: vec![("n1".into(), Arc::new(pod_references(&web_pod()))), ("n2".into(), Arc::new(other))],
        volumes: BTreeMap::from([
            (("shop".to_string(), "web-data".to_string()), "pv-web".to_string()),
            (("shop".to_string(), "db-data".to_string()), "pv-db".to_string()),
        ]),
    })
}

fn node(name: &str) -> UserInfo {
    UserInfo::new(format!("system:node:{name}"), ["system:nodes"]).with_authenticated_group()
}

fn allowed(a: &NodeAuthorizer<Graph>, attrs: Attributes) -> bool {
    a.authorize(&attrs).is_allowed()
}

#[test]
fn node_reads_only_what_its_pods_reference() {
    let a = authorizer();
    let get = |resource: &str, ns: &str, name: &str| {
        Attributes::resource(node("n1"), "get", "", resource).in_namespace(ns).named(name)
    };
    assert!(allowed(&a, get("secrets", "shop", "web-tls")));
    assert!(allowed(&a, get("secrets", "shop", "db-password")));
    assert!(allowed(&a, get("configmaps", "shop", "web-conf")));
    assert!(allowed(&a, get("persistentvolumeclaims", "shop", "web-data")));
    assert!(allowed(&a, Attributes::resource(node("n1"), "get", "", "persistentvolumes").named("pv-web")));
    // A single-object watch (fieldSelector metadata.name) is fine too.
    assert!(allowed(
        &a,
        Attributes::resource(node("n1"), "watch", "", "secrets").in_namespace("shop").named("web-tls")
    ));

    // Another pod's secret, volume and claim; the same name in another namespace; a list.
    let denied = a.authorize(&get("secrets", "shop", "db-secret"));
    assert_eq!(denied, Decision::NoOpinion("no relationship found between node 'n1' and this object".into()));
    assert!(!allowed(&a, get("secrets", "other", "web-tls")));
    assert!(!allowed(&a, get("persistentvolumeclaims", "shop", "db-data")));
    assert!(!allowed(&a, Attributes::resource(node("n1"), "get", "", "persistentvolumes").named("pv-db")));
    assert!(!allowed(&a, Attributes::resource(node("n1"), "list", "", "secrets").in_namespace("shop")));
    assert!(!allowed(
        &a,
        Attributes::resource(node("n1"), "update", "", "secrets").in_namespace("shop").named("web-tls")
    ));
    // n2 reads db's secret, not web's.
    assert!(allowed(
        &a,
        Attributes::resource(node("n2"), "get", "", "secrets").in_namespace("shop").named("db-secret")
    ));
    assert!(!allowed(&a, Attributes::resource(node("n2"), "get", "", "secrets").in_namespace("shop").named("web-tls")));

    // Tokens only for the ServiceAccount its pods run as.
    let token = |sa: &str| {
        Attributes::resource(node("n1"), "create", "", "serviceaccounts")
            .in_namespace("shop")
            .named(sa)
            .with_subresource("token")
    };
    assert!(allowed(&a, token("web")));
    assert!(!allowed(&a, token("default")));
    assert!(!allowed(
        &a,
        Attributes::resource(node("n1"), "get", "", "serviceaccounts").in_namespace("shop").named("web")
    ));
}

#[test]
fn node_writes_only_its_own_objects() {
    let a = authorizer();
    let nodes = |verb: &str, name: &str, sub: &str| {
        Attributes::resource(node("n1"), verb, "", "nodes").named(name).with_subresource(sub)
    };
    assert!(allowed(&a, nodes("patch", "n1", "status")));
    assert!(allowed(&a, nodes("update", "n1", "")));
    assert!(!allowed(&a, nodes("patch", "n2", "status")));
    assert!(!allowed(&a, nodes("update", "n2", "")));
    assert!(allowed(&a, nodes("get", "n2", "")));
    assert!(allowed(&a, Attributes::resource(node("n1"), "create", "", "nodes")));
    assert!(!allowed(&a, nodes("delete", "n1", "")));

    let lease = |verb: &str, ns: &str, name: &str| {
        Attributes::resource(node("n1"), verb, "coordination.k8s.io", "leases").in_namespace(ns).named(name)
    };
    assert!(allowed(&a, lease("update", "kube-node-lease", "n1")));
    assert!(allowed(&a, lease("create", "kube-node-lease", "")));
    assert!(!allowed(&a, lease("update", "kube-node-lease", "n2")));
    assert!(!allowed(&a, lease("update", "kube-system", "n1")));
    assert!(!allowed(&a, lease("list", "kube-node-lease", "")));

    let pods = |verb: &str, name: &str, sub: &str| {
        Attributes::resource(node("n1"), verb, "", "pods").in_namespace("shop").named(name).with_subresource(sub)
    };
    assert!(allowed(&a, pods("patch", "web-0", "status")));
    assert!(!allowed(&a, pods("patch", "db-0", "status")));
    assert!(allowed(&a, pods("delete", "web-0", "")));
    assert!(!allowed(&a, pods("delete", "db-0", "")));
    assert!(allowed(&a, pods("get", "db-0", "")));
    assert!(allowed(&a, Attributes::resource(node("n1"), "list", "", "pods")));
    assert!(!allowed(&a, pods("update", "web-0", "")));
    assert!(!allowed(&a, pods("create", "web-0", "exec")));

    // Plain node rules: events yes, deployments no.
    assert!(allowed(&a, Attributes::resource(node("n1"), "create", "events.k8s.io", "events").in_namespace("shop")));
    assert!(!allowed(&a, Attributes::resource(node("n1"), "list", "apps", "deployments")));
}

#[test]
fn other_users_get_no_opinion() {
    let a = authorizer();
    let secret =
        |user: UserInfo| Attributes::resource(user, "get", "", "secrets").in_namespace("shop").named("web-tls");
    assert_eq!(a.authorize(&secret(UserInfo::new("alice", ["devs"]))), Decision::NoOpinion(String::new()));
    // The name alone is not enough: the group is required, and so is a node name.
    assert!(!allowed(&a, secret(UserInfo::new("system:node:n1", ["devs"]))));
    assert_eq!(
        a.authorize(&secret(UserInfo::new("kubelet", ["system:nodes"]))),
        Decision::NoOpinion("unknown node for user".into())
    );
}
