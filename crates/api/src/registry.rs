//! The table of served resources: what Kubernetes calls the RESTMapper plus the bits of each
//! resource's strategy that are data rather than code. Built-in resources are a static table;
//! those CustomResourceDefinitions define are registered beside it at run time ([`set_custom`]).

use std::sync::{Mutex, RwLock};

/// One served resource in one group/version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResourceInfo {
    /// API group; "" for the legacy core group.
    pub group: &'static str,
    /// API version within the group.
    pub version: &'static str,
    /// Kind of one object, e.g. "Pod".
    pub kind: &'static str,
    /// Plural resource name used in paths, e.g. "pods".
    pub plural: &'static str,
    /// Singular name, e.g. "pod".
    pub singular: &'static str,
    /// Whether objects live in a namespace.
    pub namespaced: bool,
    /// kubectl short names.
    pub short_names: &'static [&'static str],
    /// Discovery categories, e.g. "all".
    pub categories: &'static [&'static str],
    /// Whether the `status` subresource exists (main-resource writes then ignore status).
    pub has_status: bool,
    /// Whether the `scale` subresource exists.
    pub has_scale: bool,
    /// Whether metadata.generation tracks spec changes.
    pub tracks_generation: bool,
    /// Group and resource whose etcd keys hold this resource's objects (versions of one
    /// resource share storage).
    pub storage: (&'static str, &'static str),
    /// Defined by a CustomResourceDefinition rather than built in.
    pub custom: bool,
}

impl ResourceInfo {
    /// `apiVersion` as written in objects: "v1" or "apps/v1".
    pub fn api_version(&self) -> String {
        if self.group.is_empty() { self.version.to_string() } else { format!("{}/{}", self.group, self.version) }
    }

    /// Kind of the list object, e.g. "PodList".
    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }

    /// The group-qualified resource name used in error messages: "pods", "deployments.apps".
    pub fn qualified(&self) -> String {
        if self.group.is_empty() { self.plural.to_string() } else { format!("{}.{}", self.plural, self.group) }
    }

    /// etcd key prefix of this resource (without namespace), ending in '/'.
    pub fn key_prefix(&self) -> String {
        let (g, r) = self.storage;
        format!("/registry/{}/{}/", if g.is_empty() { "core" } else { g }, r)
    }

    /// etcd key of one object.
    pub fn key(&self, namespace: Option<&str>, name: &str) -> String {
        match namespace {
            Some(ns) if self.namespaced => format!("{}{}/{}", self.key_prefix(), ns, name),
            _ => format!("{}{}", self.key_prefix(), name),
        }
    }

    /// etcd key prefix of one namespace's objects (or of all, for None), ending in '/'.
    pub fn namespace_prefix(&self, namespace: Option<&str>) -> String {
        match namespace {
            Some(ns) if self.namespaced => format!("{}{}/", self.key_prefix(), ns),
            _ => self.key_prefix(),
        }
    }

    /// Subresources served besides the object itself.
    pub fn subresources(&self) -> Vec<&'static str> {
        let mut subs = Vec::new();
        if self.has_status {
            subs.push("status");
        }
        if self.has_scale {
            subs.push("scale");
        }
        if self.kind == "Pod" {
            subs.push("binding");
        }
        if self.kind == "Namespace" {
            subs.push("finalize");
        }
        if self.kind == "CertificateSigningRequest" {
            subs.push("approval");
        }
        subs
    }
}

const ALL: &[&str] = &["all"];
const API_EXTENSIONS: &[&str] = &["api-extensions"];
const NONE: &[&str] = &[];

const fn res(
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    plural: &'static str,
    singular: &'static str,
    namespaced: bool,
    short_names: &'static [&'static str],
) -> ResourceInfo {
    ResourceInfo {
        group,
        version,
        kind,
        plural,
        singular,
        namespaced,
        short_names,
        categories: NONE,
        has_status: false,
        has_scale: false,
        tracks_generation: false,
        storage: (group, plural),
        custom: false,
    }
}

impl ResourceInfo {
    const fn status(mut self) -> Self {
        self.has_status = true;
        self
    }
    const fn scale(mut self) -> Self {
        self.has_scale = true;
        self
    }
    const fn all(mut self) -> Self {
        self.categories = ALL;
        self
    }
    const fn api_extensions(mut self) -> Self {
        self.categories = API_EXTENSIONS;
        self
    }
    const fn generation(mut self) -> Self {
        self.tracks_generation = true;
        self
    }
    const fn stored_as(mut self, group: &'static str, plural: &'static str) -> Self {
        self.storage = (group, plural);
        self
    }
}

/// Every resource the API server serves, in discovery order.
pub static RESOURCES: &[ResourceInfo] = &[
    res("", "v1", "Namespace", "namespaces", "namespace", false, &["ns"]).status(),
    res("", "v1", "Pod", "pods", "pod", true, &["po"]).status().all(),
    res("", "v1", "Service", "services", "service", true, &["svc"]).status().all(),
    res("", "v1", "Endpoints", "endpoints", "endpoints", true, &["ep"]),
    res("", "v1", "ConfigMap", "configmaps", "configmap", true, &["cm"]),
    res("", "v1", "Secret", "secrets", "secret", true, NONE),
    res("", "v1", "Node", "nodes", "node", false, &["no"]).status(),
    res("", "v1", "Event", "events", "event", true, &["ev"]),
    res("", "v1", "ReplicationController", "replicationcontrollers", "replicationcontroller", true, &["rc"])
        .status()
        .scale()
        .all()
        .generation(),
    res("", "v1", "ServiceAccount", "serviceaccounts", "serviceaccount", true, &["sa"]),
    res("", "v1", "PersistentVolume", "persistentvolumes", "persistentvolume", false, &["pv"]).status(),
    res("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims", "persistentvolumeclaim", true, &["pvc"]).status(),
    res("apps", "v1", "Deployment", "deployments", "deployment", true, &["deploy"]).status().scale().all().generation(),
    res("apps", "v1", "ReplicaSet", "replicasets", "replicaset", true, &["rs"]).status().scale().all().generation(),
    res("apps", "v1", "DaemonSet", "daemonsets", "daemonset", true, &["ds"]).status().all().generation(),
    res("apps", "v1", "StatefulSet", "statefulsets", "statefulset", true, &["sts"]).status().scale().all().generation(),
    res("apps", "v1", "ControllerRevision", "controllerrevisions", "controllerrevision", true, NONE),
    res("batch", "v1", "Job", "jobs", "job", true, NONE).status().all().generation(),
    res("batch", "v1", "CronJob", "cronjobs", "cronjob", true, &["cj"]).status().all().generation(),
    res("networking.k8s.io", "v1", "Ingress", "ingresses", "ingress", true, &["ing"]).status().generation(),
    res("networking.k8s.io", "v1", "IngressClass", "ingressclasses", "ingressclass", false, NONE),
    res("networking.k8s.io", "v1", "NetworkPolicy", "networkpolicies", "networkpolicy", true, &["netpol"]).generation(),
    res(
        "autoscaling",
        "v2",
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
        "horizontalpodautoscaler",
        true,
        &["hpa"],
    )
    .status()
    .all(),
    res(
        "autoscaling",
        "v1",
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
        "horizontalpodautoscaler",
        true,
        &["hpa"],
    )
    .status()
    .all()
    .stored_as("autoscaling", "horizontalpodautoscalers"),
    res("coordination.k8s.io", "v1", "Lease", "leases", "lease", true, NONE),
    res("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices", "endpointslice", true, NONE),
    res("events.k8s.io", "v1", "Event", "events", "event", true, &["ev"]).stored_as("", "events"),
    res("storage.k8s.io", "v1", "StorageClass", "storageclasses", "storageclass", false, &["sc"]),
    res("rbac.authorization.k8s.io", "v1", "Role", "roles", "role", true, NONE),
    res("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings", "rolebinding", true, NONE),
    res("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", "clusterrole", false, NONE),
    res(
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRoleBinding",
        "clusterrolebindings",
        "clusterrolebinding",
        false,
        NONE,
    ),
    res(
        "certificates.k8s.io",
        "v1",
        "CertificateSigningRequest",
        "certificatesigningrequests",
        "certificatesigningrequest",
        false,
        &["csr"],
    )
    .status(),
    res("policy", "v1", "PodDisruptionBudget", "poddisruptionbudgets", "poddisruptionbudget", true, &["pdb"])
        .status()
        .generation(),
    res(
        "apiextensions.k8s.io",
        "v1",
        "CustomResourceDefinition",
        "customresourcedefinitions",
        "customresourcedefinition",
        false,
        &["crd", "crds"],
    )
    .status()
    .api_extensions()
    .generation(),
];

/// The storage group of custom resources: their keys are
/// `/registry/customresources/<group>/<plural>/...`, all under one prefix ([`CUSTOM_KEY_PREFIX`])
/// so the watch cache covers resources defined after it started.
pub const CUSTOM_STORAGE_GROUP: &str = "customresources";

/// The etcd key prefix under which every custom resource's objects live.
pub const CUSTOM_KEY_PREFIX: &str = "/registry/customresources/";

/// The custom resources served now, in discovery order.
static CUSTOM: RwLock<Vec<&'static ResourceInfo>> = RwLock::new(Vec::new());

/// Every custom resource ever registered: entries are leaked once and reused when a definition
/// is registered again, so the leak is bounded by the distinct definitions seen.
static INTERNED: Mutex<Vec<&'static ResourceInfo>> = Mutex::new(Vec::new());

/// Replaces the served custom resources (in discovery order: a group's preferred version first).
pub fn set_custom(resources: Vec<ResourceInfo>) -> Vec<&'static ResourceInfo> {
    let served: Vec<&'static ResourceInfo> = resources.into_iter().map(intern).collect();
    *CUSTOM.write().unwrap_or_else(|e| e.into_inner()) = served.clone();
    served
}

/// A `'static` copy of a custom resource's entry, leaked once per distinct entry.
pub fn intern(info: ResourceInfo) -> &'static ResourceInfo {
    let mut interned = INTERNED.lock().unwrap_or_else(|e| e.into_inner());
    match interned.iter().find(|i| ***i == info) {
        Some(existing) => existing,
        None => {
            let leaked: &'static ResourceInfo = Box::leak(Box::new(info));
            interned.push(leaked);
            leaked
        }
    }
}

/// A `'static` list of strings (short names, categories), leaked once per distinct list.
pub fn intern_strs(list: &[String]) -> &'static [&'static str] {
    static LISTS: Mutex<Vec<&'static [&'static str]>> = Mutex::new(Vec::new());
    let mut lists = LISTS.lock().unwrap_or_else(|e| e.into_inner());
    match lists.iter().find(|l| l.iter().copied().eq(list.iter().map(String::as_str))) {
        Some(existing) => existing,
        None => {
            let leaked: &'static [&'static str] =
                Box::leak(list.iter().map(|s| intern_str(s)).collect::<Vec<_>>().into_boxed_slice());
            lists.push(leaked);
            leaked
        }
    }
}

/// Leaks a string for a custom resource's name fields, once per distinct value.
pub fn intern_str(s: &str) -> &'static str {
    static STRINGS: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());
    let mut strings = STRINGS.lock().unwrap_or_else(|e| e.into_inner());
    match strings.iter().find(|i| **i == s) {
        Some(existing) => existing,
        None => {
            let leaked: &'static str = Box::leak(s.to_string().into_boxed_str());
            strings.push(leaked);
            leaked
        }
    }
}

/// The custom resources served now.
pub fn custom() -> Vec<&'static ResourceInfo> {
    CUSTOM.read().unwrap_or_else(|e| e.into_inner()).clone()
}

/// Every served resource: the built-in ones, then the custom ones.
pub fn served() -> Vec<&'static ResourceInfo> {
    RESOURCES.iter().chain(custom()).collect()
}

/// Looks a resource (built-in or custom) up by group, version and plural name.
pub fn lookup(group: &str, version: &str, plural: &str) -> Option<&'static ResourceInfo> {
    let matches = |r: &&ResourceInfo| r.group == group && r.version == version && r.plural == plural;
    RESOURCES.iter().find(matches).or_else(|| find_custom(matches))
}

/// The first custom resource `matches` accepts, searched under the lock rather than on a copy.
fn find_custom(matches: impl Fn(&&'static ResourceInfo) -> bool) -> Option<&'static ResourceInfo> {
    CUSTOM.read().unwrap_or_else(|e| e.into_inner()).iter().copied().find(|r| matches(&r))
}

/// Looks a resource (built-in or custom) up by apiVersion and kind as written in an object.
pub fn lookup_kind(api_version: &str, kind: &str) -> Option<&'static ResourceInfo> {
    let matches = |r: &&ResourceInfo| r.kind == kind && r.api_version() == api_version;
    RESOURCES.iter().find(matches).or_else(|| find_custom(matches))
}

/// Built-in groups with their versions, preferred version first, in discovery order.
pub fn groups() -> Vec<(&'static str, Vec<&'static str>)> {
    groups_of(RESOURCES.iter())
}

/// Every served group (custom ones after the built-in ones) with its versions.
pub fn served_groups() -> Vec<(&'static str, Vec<&'static str>)> {
    groups_of(served().into_iter())
}

fn groups_of<'a>(resources: impl Iterator<Item = &'a ResourceInfo>) -> Vec<(&'static str, Vec<&'static str>)> {
    let mut out: Vec<(&'static str, Vec<&'static str>)> = Vec::new();
    for r in resources {
        match out.iter_mut().find(|(g, _)| *g == r.group) {
            Some((_, versions)) => {
                if !versions.contains(&r.version) {
                    versions.push(r.version);
                }
            }
            None => out.push((r.group, vec![r.version])),
        }
    }
    out
}

/// Built-in resources served in one group/version.
pub fn in_group_version(group: &str, version: &str) -> impl Iterator<Item = &'static ResourceInfo> {
    let (group, version) = (group.to_string(), version.to_string());
    RESOURCES.iter().filter(move |r| r.group == group && r.version == version)
}

/// Every resource (built-in or custom) served in one group/version.
pub fn served_in_group_version(group: &str, version: &str) -> Vec<&'static ResourceInfo> {
    served().into_iter().filter(|r| r.group == group && r.version == version).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_registry_layout() {
        let pods = lookup("", "v1", "pods").unwrap();
        assert_eq!(pods.key(Some("default"), "web"), "/registry/core/pods/default/web");
        let nodes = lookup("", "v1", "nodes").unwrap();
        assert_eq!(nodes.key(Some("ignored"), "n1"), "/registry/core/nodes/n1");
        let deploy = lookup_kind("apps/v1", "Deployment").unwrap();
        assert_eq!(deploy.key_prefix(), "/registry/apps/deployments/");
        assert_eq!(deploy.qualified(), "deployments.apps");
    }

    #[test]
    fn no_duplicate_group_version_resource() {
        for (i, a) in RESOURCES.iter().enumerate() {
            for b in &RESOURCES[i + 1..] {
                assert!(!(a.group == b.group && a.version == b.version && a.plural == b.plural), "{a:?}");
            }
        }
        assert_eq!(groups()[0], ("", vec!["v1"]));
        assert!(groups().contains(&("autoscaling", vec!["v2", "v1"])));
    }
}
