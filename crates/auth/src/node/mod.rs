//! The Node authorizer: confines a kubelet (`system:node:<name>` in `system:nodes`) to its
//! own node. It reads secrets, configmaps, PVCs, PVs and ServiceAccount tokens only when a
//! pod bound to the node references them, writes only its own Node, its own Lease in
//! `kube-node-lease`, and the status of pods bound to it; other requests are checked against
//! the `system:node` rules ([`crate::rbac::node_rules`]). It never denies: anything else is
//! NoOpinion, like Kubernetes', so RBAC can still grant more.
//!
//! The authorizer sees no request bodies, so two checks stay with admission in the API server
//! (Kubernetes' NodeRestriction): a created mirror pod must name this node in `spec.nodeName`,
//! and a created Node or Lease must carry the node's own name.

use crate::rbac::{Attributes, Authorizer, Decision, node_rules, rules_allow};
use k8s_openapi::api::core::v1::{Container, Pod};
use k8s_openapi::api::rbac::v1::PolicyRule;
use std::collections::BTreeSet;
use std::sync::Arc;

/// The namespace that holds node heartbeat Leases.
pub const NODE_LEASE_NAMESPACE: &str = "kube-node-lease";

/// What one pod lets its node read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodReferences {
    /// The pod's namespace.
    pub namespace: String,
    /// The pod's name.
    pub name: String,
    /// The ServiceAccount the pod runs as (`default` when unset).
    pub service_account: String,
    /// Secrets from volumes (incl. projected and volume-plugin secret refs), env, envFrom
    /// and imagePullSecrets.
    pub secrets: BTreeSet<String>,
    /// ConfigMaps from volumes (incl. projected), env and envFrom.
    pub config_maps: BTreeSet<String>,
    /// PersistentVolumeClaims from volumes, incl. the `<pod>-<volume>` claims of ephemeral volumes.
    pub persistent_volume_claims: BTreeSet<String>,
}

/// Everything in `pod` its node needs to read, for the API server's node graph.
pub fn pod_references(pod: &Pod) -> PodReferences {
    let mut refs = PodReferences {
        namespace: pod.metadata.namespace.clone().unwrap_or_default(),
        name: pod.metadata.name.clone().unwrap_or_default(),
        service_account: "default".to_string(),
        ..Default::default()
    };
    let Some(spec) = &pod.spec else {
        return refs;
    };
    if let Some(sa) = spec.service_account_name.as_ref().filter(|s| !s.is_empty()) {
        refs.service_account = sa.clone();
    }
    let mut secret = |name: &str| {
        if !name.is_empty() {
            refs.secrets.insert(name.to_string());
        }
    };
    for s in spec.image_pull_secrets.iter().flatten() {
        secret(&s.name);
    }
    for v in spec.volumes.iter().flatten() {
        if let Some(s) = &v.secret {
            secret(s.secret_name.as_deref().unwrap_or_default());
        }
        for p in v.projected.iter().flat_map(|p| p.sources.iter().flatten()) {
            if let Some(s) = &p.secret {
                secret(&s.name);
            }
        }
        if let Some(s) = &v.azure_file {
            secret(&s.secret_name);
        }
        let plugin_refs = [
            v.cephfs.as_ref().and_then(|s| s.secret_ref.as_ref()),
            v.cinder.as_ref().and_then(|s| s.secret_ref.as_ref()),
            v.csi.as_ref().and_then(|s| s.node_publish_secret_ref.as_ref()),
            v.flex_volume.as_ref().and_then(|s| s.secret_ref.as_ref()),
            v.iscsi.as_ref().and_then(|s| s.secret_ref.as_ref()),
            v.rbd.as_ref().and_then(|s| s.secret_ref.as_ref()),
            v.scale_io.as_ref().map(|s| &s.secret_ref),
            v.storageos.as_ref().and_then(|s| s.secret_ref.as_ref()),
        ];
        for r in plugin_refs.into_iter().flatten() {
            secret(&r.name);
        }
    }
    let containers =
        spec.containers.iter().chain(spec.init_containers.iter().flatten()).map(ContainerEnv::from).chain(
            spec.ephemeral_containers.iter().flatten().map(|c| ContainerEnv { env: &c.env, env_from: &c.env_from }),
        );
    for c in containers {
        for e in c.env.iter().flatten() {
            if let Some(s) = e.value_from.as_ref().and_then(|f| f.secret_key_ref.as_ref()) {
                secret(&s.name);
            }
        }
        for e in c.env_from.iter().flatten() {
            if let Some(s) = &e.secret_ref {
                secret(&s.name);
            }
        }
    }

    let mut config_map = |name: &str| {
        if !name.is_empty() {
            refs.config_maps.insert(name.to_string());
        }
    };
    for v in spec.volumes.iter().flatten() {
        if let Some(c) = &v.config_map {
            config_map(&c.name);
        }
        for p in v.projected.iter().flat_map(|p| p.sources.iter().flatten()) {
            if let Some(c) = &p.config_map {
                config_map(&c.name);
            }
        }
    }
    let containers =
        spec.containers.iter().chain(spec.init_containers.iter().flatten()).map(ContainerEnv::from).chain(
            spec.ephemeral_containers.iter().flatten().map(|c| ContainerEnv { env: &c.env, env_from: &c.env_from }),
        );
    for c in containers {
        for e in c.env.iter().flatten() {
            if let Some(k) = e.value_from.as_ref().and_then(|f| f.config_map_key_ref.as_ref()) {
                config_map(&k.name);
            }
        }
        for e in c.env_from.iter().flatten() {
            if let Some(c) = &e.config_map_ref {
                config_map(&c.name);
            }
        }
    }

    for v in spec.volumes.iter().flatten() {
        if let Some(c) = &v.persistent_volume_claim
            && !c.claim_name.is_empty()
        {
            refs.persistent_volume_claims.insert(c.claim_name.clone());
        }
        if v.ephemeral.is_some() && !refs.name.is_empty() {
            refs.persistent_volume_claims.insert(format!("{}-{}", refs.name, v.name));
        }
    }
    refs
}

/// The env sources of a container or ephemeral container.
struct ContainerEnv<'a> {
    env: &'a Option<Vec<k8s_openapi::api::core::v1::EnvVar>>,
    env_from: &'a Option<Vec<k8s_openapi::api::core::v1::EnvFromSource>>,
}

impl<'a> From<&'a Container> for ContainerEnv<'a> {
    fn from(c: &'a Container) -> Self {
        ContainerEnv { env: &c.env, env_from: &c.env_from }
    }
}

/// The relationships the Node authorizer needs; the API server keeps them from its watch
/// cache (pods by `spec.nodeName`, [`pod_references`] of each, PVC -> PV bindings).
pub trait NodeGraph: Send + Sync {
    /// The pods bound to `node`.
    fn pods_on_node(&self, node: &str) -> Vec<Arc<PodReferences>>;
    /// The PersistentVolume the claim `namespace/claim` is bound to.
    fn persistent_volume_of_claim(&self, namespace: &str, claim: &str) -> Option<String>;
}

/// The Node authorizer over a [`NodeGraph`].
#[derive(Debug, Clone)]
pub struct NodeAuthorizer<G> {
    graph: G,
    rules: Vec<PolicyRule>,
}

impl<G: NodeGraph> NodeAuthorizer<G> {
    /// An authorizer reading `graph`, with [`node_rules`] for requests it does not subdivide.
    pub fn new(graph: G) -> Self {
        NodeAuthorizer { graph, rules: node_rules() }
    }

    /// The graph.
    pub fn graph(&self) -> &G {
        &self.graph
    }

    fn pods_with(&self, node: &str, namespace: &str, f: impl Fn(&PodReferences) -> bool) -> bool {
        self.graph.pods_on_node(node).iter().any(|p| p.namespace == namespace && f(p))
    }

    fn decide(&self, node: &str, attrs: &Attributes) -> Result<(), String> {
        let verb = attrs.verb.as_str();
        let sub = attrs.subresource.as_str();
        let related = || format!("no relationship found between node '{node}' and this object");
        let rules = || {
            if rules_allow(attrs, &self.rules) { Ok(()) } else { Err(String::new()) }
        };
        match (attrs.api_group.as_str(), attrs.resource.as_str()) {
            ("", "secrets" | "configmaps") => {
                if !matches!(verb, "get" | "list" | "watch") || !sub.is_empty() {
                    return Err(format!("can only read {}", attrs.resource));
                }
                if attrs.name.is_empty() {
                    return Err("can only get individual resources of this type".into());
                }
                let secret = attrs.resource == "secrets";
                let found = self.pods_with(node, &attrs.namespace, |p| {
                    if secret { p.secrets.contains(&attrs.name) } else { p.config_maps.contains(&attrs.name) }
                });
                if found { Ok(()) } else { Err(related()) }
            }
            ("", "persistentvolumeclaims") => {
                let allowed_verb = match sub {
                    "" => verb == "get",
                    "status" => matches!(verb, "update" | "patch"),
                    _ => false,
                };
                if !allowed_verb || attrs.name.is_empty() {
                    return Err("can only get a persistentvolumeclaim or update its status".into());
                }
                let found =
                    self.pods_with(node, &attrs.namespace, |p| p.persistent_volume_claims.contains(&attrs.name));
                if found { Ok(()) } else { Err(related()) }
            }
            ("", "persistentvolumes") => {
                if verb != "get" || !sub.is_empty() || attrs.name.is_empty() {
                    return Err("can only get individual persistentvolumes".into());
                }
                let found = self.graph.pods_on_node(node).iter().any(|p| {
                    p.persistent_volume_claims.iter().any(|claim| {
                        self.graph.persistent_volume_of_claim(&p.namespace, claim).as_deref() == Some(&attrs.name)
                    })
                });
                if found { Ok(()) } else { Err(related()) }
            }
            ("", "serviceaccounts") => {
                if sub != "token" || verb != "create" || attrs.name.is_empty() {
                    return Err("can only create tokens for individual service accounts".into());
                }
                let found = self.pods_with(node, &attrs.namespace, |p| p.service_account == attrs.name);
                if found { Ok(()) } else { Err(related()) }
            }
            ("coordination.k8s.io", "leases") => {
                if !matches!(verb, "get" | "create" | "update" | "patch" | "delete") || !sub.is_empty() {
                    return Err("can only get, create, update, patch, or delete a node lease".into());
                }
                if attrs.namespace != NODE_LEASE_NAMESPACE {
                    return Err(format!("can only access leases in the {NODE_LEASE_NAMESPACE:?} system namespace"));
                }
                // On create the name is in the body; admission checks it.
                if verb != "create" && attrs.name != node {
                    return Err("can only access node lease with the same name as the requesting node".into());
                }
                Ok(())
            }
            ("", "nodes") => {
                let writes = matches!(verb, "update" | "patch" | "delete" | "deletecollection");
                if writes && attrs.name != node {
                    return Err("can only modify its own Node object".into());
                }
                rules()
            }
            ("", "pods") => {
                let on_node =
                    || !attrs.name.is_empty() && self.pods_with(node, &attrs.namespace, |p| p.name == attrs.name);
                match (sub, verb) {
                    ("status", "update" | "patch") | ("eviction", "create") | ("", "delete") => {
                        if on_node() {
                            Ok(())
                        } else {
                            Err(related())
                        }
                    }
                    _ => rules(),
                }
            }
            ("storage.k8s.io", "csinodes") => {
                if verb != "create" && attrs.name != node {
                    return Err("can only access its own CSINode object".into());
                }
                rules()
            }
            _ => rules(),
        }
    }
}

impl<G: NodeGraph> Authorizer for NodeAuthorizer<G> {
    fn authorize(&self, attrs: &Attributes) -> Decision {
        if !attrs.user.in_group(crate::authn::NODES_GROUP) {
            return Decision::NoOpinion(String::new());
        }
        let Some(node) = attrs.user.node_name() else {
            return Decision::NoOpinion("unknown node for user".into());
        };
        if !attrs.resource_request {
            return if rules_allow(attrs, &self.rules) {
                Decision::Allow(String::new())
            } else {
                Decision::NoOpinion(String::new())
            };
        }
        match self.decide(node, attrs) {
            Ok(()) => Decision::Allow(format!("node {node:?} may {} {}", attrs.verb, attrs.combined_resource())),
            Err(reason) => {
                tracing::debug!(node, verb = %attrs.verb, resource = %attrs.combined_resource(),
                    namespace = %attrs.namespace, name = %attrs.name, %reason, "node authorizer: no opinion");
                Decision::NoOpinion(reason)
            }
        }
    }
}

#[cfg(test)]
mod tests;
