//! JSON schemas of the served kinds, taken from k8s-openapi's `JsonSchema` impls.
//!
//! The generator collects every definition a kind reaches under Kubernetes' own names
//! (`io.k8s.api.core.v1.Pod`). Definitions reference each other as `#/$defs/<name>`; the
//! documents rewrite that to their own reference style, the structure resolves it directly.

use k8s_openapi::api::{
    apps, autoscaling, batch, certificates, coordination, core, discovery, events, networking, policy, rbac,
    scheduling, storage,
};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiextensions;
use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
use schemars::{JsonSchema, SchemaGenerator, generate::SchemaSettings};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

/// A kind whose schema k8s-openapi provides.
pub(crate) struct KindSchema {
    /// API group; "" for core.
    pub group: &'static str,
    /// Version within the group.
    pub version: &'static str,
    /// Kind name.
    pub kind: &'static str,
    /// Name of the kind's definition, e.g. `io.k8s.api.core.v1.Pod`.
    pub definition: fn() -> std::borrow::Cow<'static, str>,
    /// Adds the kind's definition and everything it references to the generator.
    pub generate: fn(&mut SchemaGenerator),
}

macro_rules! kinds {
    ($($group:literal $version:literal $kind:literal => $ty:ty;)*) => {
        /// Every kind this crate can describe; the served ones are picked by the registry.
        pub(crate) static KINDS: &[KindSchema] = &[$(KindSchema {
            group: $group,
            version: $version,
            kind: $kind,
            definition: <$ty as JsonSchema>::schema_name,
            generate: |g| {
                g.subschema_for::<$ty>();
            },
        },)*];
    };
}

// More than the registry serves today, so that kinds added there later get schemas without a
// change here.
kinds! {
    "" "v1" "Namespace" => core::v1::Namespace;
    "" "v1" "Pod" => core::v1::Pod;
    "" "v1" "Service" => core::v1::Service;
    "" "v1" "Endpoints" => core::v1::Endpoints;
    "" "v1" "ConfigMap" => core::v1::ConfigMap;
    "" "v1" "Secret" => core::v1::Secret;
    "" "v1" "Node" => core::v1::Node;
    "" "v1" "Event" => core::v1::Event;
    "" "v1" "ReplicationController" => core::v1::ReplicationController;
    "" "v1" "ServiceAccount" => core::v1::ServiceAccount;
    "" "v1" "PersistentVolume" => core::v1::PersistentVolume;
    "" "v1" "PersistentVolumeClaim" => core::v1::PersistentVolumeClaim;
    "" "v1" "PodTemplate" => core::v1::PodTemplate;
    "" "v1" "LimitRange" => core::v1::LimitRange;
    "" "v1" "ResourceQuota" => core::v1::ResourceQuota;
    "" "v1" "Binding" => core::v1::Binding;
    "apps" "v1" "Deployment" => apps::v1::Deployment;
    "apps" "v1" "ReplicaSet" => apps::v1::ReplicaSet;
    "apps" "v1" "DaemonSet" => apps::v1::DaemonSet;
    "apps" "v1" "StatefulSet" => apps::v1::StatefulSet;
    "apps" "v1" "ControllerRevision" => apps::v1::ControllerRevision;
    "batch" "v1" "Job" => batch::v1::Job;
    "batch" "v1" "CronJob" => batch::v1::CronJob;
    "networking.k8s.io" "v1" "Ingress" => networking::v1::Ingress;
    "networking.k8s.io" "v1" "IngressClass" => networking::v1::IngressClass;
    "networking.k8s.io" "v1" "NetworkPolicy" => networking::v1::NetworkPolicy;
    "autoscaling" "v2" "HorizontalPodAutoscaler" => autoscaling::v2::HorizontalPodAutoscaler;
    "autoscaling" "v1" "HorizontalPodAutoscaler" => autoscaling::v1::HorizontalPodAutoscaler;
    "autoscaling" "v1" "Scale" => autoscaling::v1::Scale;
    "coordination.k8s.io" "v1" "Lease" => coordination::v1::Lease;
    "discovery.k8s.io" "v1" "EndpointSlice" => discovery::v1::EndpointSlice;
    "events.k8s.io" "v1" "Event" => events::v1::Event;
    "rbac.authorization.k8s.io" "v1" "Role" => rbac::v1::Role;
    "rbac.authorization.k8s.io" "v1" "ClusterRole" => rbac::v1::ClusterRole;
    "rbac.authorization.k8s.io" "v1" "RoleBinding" => rbac::v1::RoleBinding;
    "rbac.authorization.k8s.io" "v1" "ClusterRoleBinding" => rbac::v1::ClusterRoleBinding;
    "certificates.k8s.io" "v1" "CertificateSigningRequest" => certificates::v1::CertificateSigningRequest;
    "policy" "v1" "PodDisruptionBudget" => policy::v1::PodDisruptionBudget;
    "scheduling.k8s.io" "v1" "PriorityClass" => scheduling::v1::PriorityClass;
    "storage.k8s.io" "v1" "StorageClass" => storage::v1::StorageClass;
    "apiextensions.k8s.io" "v1" "CustomResourceDefinition" => apiextensions::CustomResourceDefinition;
}

/// The k8s-openapi schema of one kind, if there is one.
pub(crate) fn kind_schema(group: &str, version: &str, kind: &str) -> Option<&'static KindSchema> {
    KINDS.iter().find(|k| k.group == group && k.version == version && k.kind == kind)
}

/// Prefix of references between definitions as the generator writes them.
pub(crate) const REF_PREFIX: &str = "#/$defs/";

/// Names of meta.v1 definitions that operations reference besides the kinds.
pub(crate) const STATUS: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Status";
/// See [`STATUS`].
pub(crate) const DELETE_OPTIONS: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions";
/// See [`STATUS`].
pub(crate) const PATCH: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Patch";
/// See [`STATUS`].
pub(crate) const WATCH_EVENT: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.WatchEvent";
/// See [`STATUS`].
pub(crate) const LIST_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta";
/// See [`STATUS`].
pub(crate) const OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";

/// A set of definitions by name, each a JSON schema referencing others as `#/$defs/<name>`.
pub(crate) type Definitions = BTreeMap<String, Value>;

/// A fresh generator whose references all go to `$defs` and which applies no transforms
/// (the documents do their own rewriting).
fn generator() -> SchemaGenerator {
    SchemaSettings::draft2020_12()
        .with(|s| {
            s.transforms.clear();
            s.meta_schema = None;
        })
        .into_generator()
}

/// Definitions for the given kinds plus the meta.v1 types operations use.
pub(crate) fn definitions<'a>(kinds: impl IntoIterator<Item = &'a KindSchema>) -> Definitions {
    let mut g = generator();
    g.subschema_for::<meta::Status>();
    g.subschema_for::<meta::DeleteOptions>();
    g.subschema_for::<meta::Patch>();
    g.subschema_for::<meta::WatchEvent<serde_json::Value>>();
    g.subschema_for::<meta::APIResourceList>();
    g.subschema_for::<meta::ListMeta>();
    let mut lists = Vec::new();
    for k in kinds {
        (k.generate)(&mut g);
        lists.push(((k.definition)().into_owned(), k.kind));
    }
    let mut defs: Definitions = g.take_definitions(false).into_iter().collect();
    for (def, kind) in lists {
        // Scale, Binding and the like have no list kind in Kubernetes.
        if matches!(kind, "Scale" | "Binding") {
            continue;
        }
        defs.insert(format!("{def}List"), list_schema(&def, kind));
    }
    defs
}

/// The `<Kind>List` definition, which k8s-openapi has no schema for (it uses a generic `List<T>`).
pub(crate) fn list_schema(item_def: &str, kind: &str) -> Value {
    let text = |s: &str| Value::String(s.to_string());
    let mut props = Map::new();
    props.insert(
        "apiVersion".into(),
        json!({
            "description": "APIVersion defines the versioned schema of this representation of an object. Servers should convert recognized schemas to the latest internal value, and may reject unrecognized values. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources",
            "type": "string",
        }),
    );
    props.insert(
        "items".into(),
        json!({
            "description": text(&format!("List of {kind} objects.")),
            "type": "array",
            "items": { "$ref": format!("{REF_PREFIX}{item_def}") },
        }),
    );
    props.insert(
        "kind".into(),
        json!({
            "description": "Kind is a string value representing the REST resource this object represents. Servers may infer this from the endpoint the client submits requests to. Cannot be updated. In CamelCase. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds",
            "type": "string",
        }),
    );
    props.insert(
        "metadata".into(),
        json!({
            "$ref": format!("{REF_PREFIX}{LIST_META}"),
            "description": "Standard list metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds",
        }),
    );
    json!({
        "description": text(&format!("{kind}List is a list of {kind} objects.")),
        "type": "object",
        "properties": props,
        "required": ["items"],
    })
}

/// The definition name a `$ref` points at, if it is one of ours.
pub(crate) fn ref_target(reference: &str) -> Option<&str> {
    reference.strip_prefix(REF_PREFIX)
}
