//! The list, map and patch extensions Kubernetes' published OpenAPI carries for built-in types.
//!
//! k8s-openapi's schemas leave these out, yet strategic merge patch and server-side apply
//! cannot work without them: they say which lists merge by key and which are replaced whole.
//! The table is data: one entry per (definition, property) that Kubernetes annotates, plus the
//! definitions that are atomic structs. A property missing here is an atomic list (the default
//! for lists) or a granular struct/map.

/// `x-kubernetes-list-type` of a property.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ListKind {
    /// Not annotated (treated as atomic).
    Unset,
    /// Replaced as a whole.
    Atomic,
    /// Items are scalars, unique, merged as a set.
    Set,
    /// Items are objects identified by `keys`.
    Map,
}

/// `x-kubernetes-map-type` of a property (overriding the one of its type, if any).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum MapKind {
    /// Not annotated at the property: the type's own marking applies.
    Unset,
    /// Replaced as a whole.
    Atomic,
    /// Merged field by field even if the type itself is atomic.
    Granular,
}

/// The extensions of one property.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Ext {
    /// `x-kubernetes-list-type`.
    pub list: ListKind,
    /// `x-kubernetes-list-map-keys`, for [`ListKind::Map`].
    pub keys: &'static [&'static str],
    /// `x-kubernetes-patch-merge-key`.
    pub merge_key: Option<&'static str>,
    /// `x-kubernetes-patch-strategy`.
    pub strategy: Option<&'static str>,
    /// `x-kubernetes-map-type`.
    pub map: MapKind,
}

impl Ext {
    /// No extensions at all.
    pub const NONE: Ext = Ext { list: ListKind::Unset, keys: &[], merge_key: None, strategy: None, map: MapKind::Unset };

    /// Adds SMP's merge strategy with `key` as merge key.
    const fn merge(mut self, key: &'static str) -> Ext {
        self.merge_key = Some(key);
        self.strategy = Some("merge");
        self
    }

    /// Sets the patch strategy alone (sets of scalars merge without a key).
    const fn strategy(mut self, strategy: &'static str) -> Ext {
        self.strategy = Some(strategy);
        self
    }
}

/// A list replaced whole.
const fn atomic() -> Ext {
    Ext { list: ListKind::Atomic, ..Ext::NONE }
}

/// A list of unique scalars.
const fn set() -> Ext {
    Ext { list: ListKind::Set, ..Ext::NONE }
}

/// A list of objects keyed by `keys`.
const fn map(keys: &'static [&'static str]) -> Ext {
    Ext { list: ListKind::Map, keys, ..Ext::NONE }
}

/// A map or struct property replaced whole.
const fn atomic_map() -> Ext {
    Ext { map: MapKind::Atomic, ..Ext::NONE }
}

/// A struct property merged per field although its type is atomic.
const fn granular() -> Ext {
    Ext { map: MapKind::Granular, ..Ext::NONE }
}

/// A patch strategy on a struct property (DeploymentSpec.strategy's retainKeys).
const fn patch(strategy: &'static str) -> Ext {
    Ext::NONE.strategy(strategy)
}

/// The usual shape of `conditions`: keyed by type, merged by type.
const fn conditions() -> Ext {
    map(&["type"]).merge("type")
}

/// A list of objects keyed and merged by `name`.
const fn by_name() -> Ext {
    map(&["name"]).merge("name")
}

macro_rules! core {
    ($name:literal) => {
        concat!("io.k8s.api.core.v1.", $name)
    };
}
macro_rules! meta {
    ($name:literal) => {
        concat!("io.k8s.apimachinery.pkg.apis.meta.v1.", $name)
    };
}
macro_rules! apps {
    ($name:literal) => {
        concat!("io.k8s.api.apps.v1.", $name)
    };
}
macro_rules! batch {
    ($name:literal) => {
        concat!("io.k8s.api.batch.v1.", $name)
    };
}
macro_rules! networking {
    ($name:literal) => {
        concat!("io.k8s.api.networking.v1.", $name)
    };
}
macro_rules! discovery {
    ($name:literal) => {
        concat!("io.k8s.api.discovery.v1.", $name)
    };
}
macro_rules! rbac {
    ($name:literal) => {
        concat!("io.k8s.api.rbac.v1.", $name)
    };
}

/// Property extensions, grouped by definition.
pub(crate) static PROPERTIES: &[(&str, &[(&str, Ext)])] = &[
    // --- meta.v1
    (
        meta!("ObjectMeta"),
        &[
            ("finalizers", set().strategy("merge")),
            ("managedFields", atomic()),
            ("ownerReferences", map(&["uid"]).merge("uid")),
        ],
    ),
    (meta!("LabelSelector"), &[("matchExpressions", atomic())]),
    (meta!("LabelSelectorRequirement"), &[("values", atomic())]),
    (meta!("StatusDetails"), &[("causes", atomic())]),
    (meta!("DeleteOptions"), &[("dryRun", atomic())]),
    (meta!("APIResourceList"), &[("resources", atomic())]),
    (meta!("APIResource"), &[("categories", atomic()), ("shortNames", atomic())]),
    // --- core.v1: pods
    (
        core!("PodSpec"),
        &[
            ("containers", by_name()),
            ("ephemeralContainers", by_name()),
            ("hostAliases", map(&["ip"]).merge("ip")),
            ("imagePullSecrets", by_name()),
            ("initContainers", by_name()),
            ("nodeSelector", atomic_map()),
            ("readinessGates", atomic()),
            ("resourceClaims", map(&["name"]).merge("name").strategy("merge,retainKeys")),
            ("schedulingGates", by_name()),
            ("tolerations", atomic()),
            (
                "topologySpreadConstraints",
                map(&["topologyKey", "whenUnsatisfiable"]).merge("topologyKey"),
            ),
            ("volumes", map(&["name"]).merge("name").strategy("merge,retainKeys")),
        ],
    ),
    (
        core!("Container"),
        &[
            ("args", atomic()),
            ("command", atomic()),
            ("env", by_name()),
            ("envFrom", atomic()),
            ("ports", map(&["containerPort", "protocol"]).merge("containerPort")),
            ("resizePolicy", atomic()),
            ("volumeDevices", map(&["devicePath"]).merge("devicePath")),
            ("volumeMounts", map(&["mountPath"]).merge("mountPath")),
        ],
    ),
    (
        core!("EphemeralContainer"),
        &[
            ("args", atomic()),
            ("command", atomic()),
            ("env", by_name()),
            ("envFrom", atomic()),
            ("ports", map(&["containerPort", "protocol"]).merge("containerPort")),
            ("resizePolicy", atomic()),
            ("volumeDevices", map(&["devicePath"]).merge("devicePath")),
            ("volumeMounts", map(&["mountPath"]).merge("mountPath")),
        ],
    ),
    (
        core!("PodStatus"),
        &[
            ("conditions", conditions()),
            ("containerStatuses", atomic()),
            ("ephemeralContainerStatuses", atomic()),
            ("hostIPs", atomic().merge("ip")),
            ("initContainerStatuses", atomic()),
            ("podIPs", map(&["ip"]).merge("ip")),
            ("resourceClaimStatuses", map(&["name"]).merge("name").strategy("merge,retainKeys")),
        ],
    ),
    (
        core!("ContainerStatus"),
        &[("allocatedResourcesStatus", by_name()), ("volumeMounts", map(&["mountPath"]).merge("mountPath"))],
    ),
    (core!("ResourceStatus"), &[("resources", map(&["resourceID"]))]),
    (core!("ResourceRequirements"), &[("claims", map(&["name"]))]),
    (core!("PodDNSConfig"), &[("nameservers", atomic()), ("options", atomic()), ("searches", atomic())]),
    (core!("PodSecurityContext"), &[("supplementalGroups", atomic()), ("sysctls", atomic())]),
    (core!("LinuxContainerUser"), &[("supplementalGroups", atomic())]),
    (core!("Capabilities"), &[("add", atomic()), ("drop", atomic())]),
    (core!("ExecAction"), &[("command", atomic())]),
    (core!("HTTPGetAction"), &[("httpHeaders", atomic())]),
    (core!("HostAlias"), &[("hostnames", atomic())]),
    (core!("TopologySpreadConstraint"), &[("matchLabelKeys", atomic())]),
    // --- core.v1: scheduling constraints
    (core!("NodeAffinity"), &[("preferredDuringSchedulingIgnoredDuringExecution", atomic())]),
    (core!("NodeSelector"), &[("nodeSelectorTerms", atomic())]),
    (core!("NodeSelectorTerm"), &[("matchExpressions", atomic()), ("matchFields", atomic())]),
    (core!("NodeSelectorRequirement"), &[("values", atomic())]),
    (
        core!("PodAffinity"),
        &[
            ("preferredDuringSchedulingIgnoredDuringExecution", atomic()),
            ("requiredDuringSchedulingIgnoredDuringExecution", atomic()),
        ],
    ),
    (
        core!("PodAntiAffinity"),
        &[
            ("preferredDuringSchedulingIgnoredDuringExecution", atomic()),
            ("requiredDuringSchedulingIgnoredDuringExecution", atomic()),
        ],
    ),
    (
        core!("PodAffinityTerm"),
        &[("matchLabelKeys", atomic()), ("mismatchLabelKeys", atomic()), ("namespaces", atomic())],
    ),
    (core!("TopologySelectorTerm"), &[("matchLabelExpressions", atomic())]),
    (core!("TopologySelectorLabelRequirement"), &[("values", atomic())]),
    // --- core.v1: volumes
    (core!("ConfigMapVolumeSource"), &[("items", atomic())]),
    (core!("SecretVolumeSource"), &[("items", atomic())]),
    (core!("ConfigMapProjection"), &[("items", atomic())]),
    (core!("SecretProjection"), &[("items", atomic())]),
    (core!("DownwardAPIVolumeSource"), &[("items", atomic())]),
    (core!("DownwardAPIProjection"), &[("items", atomic())]),
    (core!("ProjectedVolumeSource"), &[("sources", atomic())]),
    (core!("CephFSVolumeSource"), &[("monitors", atomic())]),
    (core!("CephFSPersistentVolumeSource"), &[("monitors", atomic())]),
    (core!("RBDVolumeSource"), &[("monitors", atomic())]),
    (core!("RBDPersistentVolumeSource"), &[("monitors", atomic())]),
    (core!("ISCSIVolumeSource"), &[("portals", atomic())]),
    (core!("ISCSIPersistentVolumeSource"), &[("portals", atomic())]),
    (core!("FCVolumeSource"), &[("targetWWNs", atomic()), ("wwids", atomic())]),
    (
        core!("PersistentVolumeSpec"),
        &[("accessModes", atomic()), ("claimRef", granular()), ("mountOptions", atomic())],
    ),
    (core!("PersistentVolumeClaimSpec"), &[("accessModes", atomic())]),
    (core!("PersistentVolumeClaimStatus"), &[("accessModes", atomic()), ("conditions", conditions())]),
    // --- core.v1: other kinds
    (
        core!("ServiceSpec"),
        &[
            ("clusterIPs", atomic()),
            ("externalIPs", atomic()),
            ("ipFamilies", atomic()),
            ("loadBalancerSourceRanges", atomic()),
            ("ports", map(&["port", "protocol"]).merge("port")),
            ("selector", atomic_map()),
        ],
    ),
    (core!("ServiceStatus"), &[("conditions", conditions())]),
    (core!("LoadBalancerStatus"), &[("ingress", atomic())]),
    (core!("LoadBalancerIngress"), &[("ports", atomic())]),
    (core!("Endpoints"), &[("subsets", atomic())]),
    (core!("EndpointSubset"), &[("addresses", atomic()), ("notReadyAddresses", atomic()), ("ports", atomic())]),
    (core!("NodeSpec"), &[("podCIDRs", set().strategy("merge")), ("taints", atomic())]),
    (
        core!("NodeStatus"),
        &[
            ("addresses", map(&["type"]).merge("type")),
            ("conditions", conditions()),
            ("images", atomic()),
            ("runtimeHandlers", atomic()),
            ("volumesAttached", atomic()),
            ("volumesInUse", atomic()),
        ],
    ),
    (core!("ContainerImage"), &[("names", atomic())]),
    (core!("NamespaceSpec"), &[("finalizers", atomic())]),
    (core!("NamespaceStatus"), &[("conditions", conditions())]),
    (core!("ReplicationControllerSpec"), &[("selector", atomic_map())]),
    (core!("ReplicationControllerStatus"), &[("conditions", conditions())]),
    // secrets has a merge key but no list type (so apply treats it as atomic).
    (core!("ServiceAccount"), &[("imagePullSecrets", atomic()), ("secrets", Ext::NONE.merge("name"))]),
    (core!("LimitRangeSpec"), &[("limits", atomic())]),
    (core!("ResourceQuotaSpec"), &[("scopes", atomic())]),
    (core!("ScopeSelector"), &[("matchExpressions", atomic())]),
    (core!("ScopedResourceSelectorRequirement"), &[("values", atomic())]),
    // --- apps.v1
    (apps!("DeploymentSpec"), &[("strategy", patch("retainKeys"))]),
    (apps!("DeploymentStatus"), &[("conditions", conditions())]),
    (apps!("ReplicaSetStatus"), &[("conditions", conditions())]),
    (apps!("DaemonSetStatus"), &[("conditions", conditions())]),
    (apps!("StatefulSetSpec"), &[("volumeClaimTemplates", atomic())]),
    (apps!("StatefulSetStatus"), &[("conditions", conditions())]),
    // --- batch.v1
    (batch!("JobStatus"), &[("conditions", atomic().merge("type"))]),
    (batch!("CronJobStatus"), &[("active", atomic())]),
    (batch!("PodFailurePolicy"), &[("rules", atomic())]),
    (batch!("PodFailurePolicyRule"), &[("onPodConditions", atomic())]),
    (batch!("PodFailurePolicyOnExitCodesRequirement"), &[("values", set())]),
    (batch!("SuccessPolicy"), &[("rules", atomic())]),
    (batch!("UncountedTerminatedPods"), &[("failed", set()), ("succeeded", set())]),
    // --- networking.v1
    (networking!("IngressSpec"), &[("rules", atomic()), ("tls", atomic())]),
    (networking!("IngressTLS"), &[("hosts", atomic())]),
    (networking!("HTTPIngressRuleValue"), &[("paths", atomic())]),
    (networking!("IngressLoadBalancerStatus"), &[("ingress", atomic())]),
    (networking!("IngressLoadBalancerIngress"), &[("ports", atomic())]),
    (networking!("NetworkPolicySpec"), &[("egress", atomic()), ("ingress", atomic()), ("policyTypes", atomic())]),
    (networking!("NetworkPolicyIngressRule"), &[("from", atomic()), ("ports", atomic())]),
    (networking!("NetworkPolicyEgressRule"), &[("ports", atomic()), ("to", atomic())]),
    (networking!("IPBlock"), &[("except", atomic())]),
    // --- autoscaling.v2
    ("io.k8s.api.autoscaling.v2.HorizontalPodAutoscalerSpec", &[("metrics", atomic())]),
    (
        "io.k8s.api.autoscaling.v2.HorizontalPodAutoscalerStatus",
        &[("conditions", conditions()), ("currentMetrics", atomic())],
    ),
    ("io.k8s.api.autoscaling.v2.HPAScalingRules", &[("policies", atomic())]),
    // --- discovery.v1
    (discovery!("EndpointSlice"), &[("endpoints", atomic()), ("ports", atomic())]),
    (discovery!("Endpoint"), &[("addresses", set())]),
    (discovery!("EndpointHints"), &[("forNodes", atomic()), ("forZones", atomic())]),
    // --- rbac.v1
    (rbac!("Role"), &[("rules", atomic())]),
    (rbac!("ClusterRole"), &[("rules", atomic())]),
    (rbac!("AggregationRule"), &[("clusterRoleSelectors", atomic())]),
    (
        rbac!("PolicyRule"),
        &[
            ("apiGroups", atomic()),
            ("nonResourceURLs", atomic()),
            ("resourceNames", atomic()),
            ("resources", atomic()),
            ("verbs", atomic()),
        ],
    ),
    (rbac!("RoleBinding"), &[("subjects", atomic())]),
    (rbac!("ClusterRoleBinding"), &[("subjects", atomic())]),
    // --- policy.v1, storage.v1
    // The selector is replaced whole by SMP too (an empty selector means something different
    // from a merged one).
    ("io.k8s.api.policy.v1.PodDisruptionBudgetSpec", &[("selector", patch("replace"))]),
    ("io.k8s.api.policy.v1.PodDisruptionBudgetStatus", &[("conditions", conditions())]),
    ("io.k8s.api.storage.v1.StorageClass", &[("allowedTopologies", atomic()), ("mountOptions", atomic())]),
];

/// Definitions marked `x-kubernetes-map-type: atomic`: structs replaced as a whole (references
/// and selectors whose fields only make sense together).
pub(crate) static ATOMIC_TYPES: &[&str] = &[
    meta!("LabelSelector"),
    meta!("OwnerReference"),
    core!("ConfigMapKeySelector"),
    core!("EndpointAddress"),
    core!("EndpointPort"),
    core!("LocalObjectReference"),
    core!("NodeSelector"),
    core!("NodeSelectorTerm"),
    core!("ObjectFieldSelector"),
    core!("ObjectReference"),
    core!("ResourceFieldSelector"),
    core!("ScopeSelector"),
    core!("SecretKeySelector"),
    core!("SecretReference"),
    core!("TopologySelectorTerm"),
    core!("TypedLocalObjectReference"),
    discovery!("EndpointPort"),
    rbac!("RoleRef"),
    rbac!("Subject"),
];

/// The extensions of `property` in `definition`, if Kubernetes annotates it.
pub(crate) fn property(definition: &str, property: &str) -> Option<&'static Ext> {
    PROPERTIES
        .iter()
        .find(|(d, _)| *d == definition)
        .and_then(|(_, props)| props.iter().find(|(p, _)| *p == property))
        .map(|(_, ext)| ext)
}

/// Whether `definition` is an atomic struct.
pub(crate) fn atomic_type(definition: &str) -> bool {
    ATOMIC_TYPES.contains(&definition)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schemas;

    /// Every annotated property exists in the schemas, so a typo cannot silently drop an extension.
    #[test]
    fn table_names_real_properties() {
        let defs = schemas::definitions(schemas::KINDS.iter());
        for (def, props) in PROPERTIES {
            let schema = defs.get(*def).unwrap_or_else(|| panic!("no definition {def}"));
            for (prop, ext) in *props {
                let p = schema["properties"].get(*prop).unwrap_or_else(|| panic!("no property {def}.{prop}"));
                if ext.list != ListKind::Unset {
                    assert_eq!(p["type"], "array", "{def}.{prop}");
                }
            }
        }
        for def in ATOMIC_TYPES {
            assert!(defs.contains_key(*def), "no definition {def}");
        }
    }
}
