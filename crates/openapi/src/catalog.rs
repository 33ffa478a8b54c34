//! The definitions of every served kind as the documents publish them: k8s-openapi's schemas
//! annotated with Kubernetes' list/map/patch extensions and group-version-kinds.
//!
//! References stay in the generator's `#/$defs/<name>` form here; each document format
//! rewrites them to its own.

use crate::extensions::{self, Ext, ListKind, MapKind};
use crate::schemas::{self, Definitions};
use rkube_api::registry::{self, ResourceInfo};
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet};

/// Annotated definitions plus which definition each served resource uses.
pub(crate) struct Catalog {
    /// Every definition by name.
    pub definitions: Definitions,
    /// (group, version, kind) of each served resource to its object and list definitions.
    pub kinds: BTreeMap<(&'static str, &'static str, &'static str), (String, String)>,
}

impl Catalog {
    /// The object and list definition names of a served resource.
    pub fn of(&self, res: &ResourceInfo) -> (&str, &str) {
        let (object, list) = &self.kinds[&(res.group, res.version, res.kind)];
        (object, list)
    }
}

/// A definition name for a served kind k8s-openapi has no schema for, in Kubernetes' style
/// (`io.k8s.api.<first label of group>.<version>.<Kind>`).
fn fallback_name(res: &ResourceInfo) -> String {
    let group = if res.group.is_empty() { "core" } else { res.group.split('.').next().unwrap_or(res.group) };
    format!("io.k8s.api.{group}.{}.{}", res.version, res.kind)
}

/// Builds the catalog of everything the registry serves.
pub(crate) fn build() -> Catalog {
    let served = registry::RESOURCES;
    let mut kinds_with_schema = Vec::new();
    let mut extra = Vec::new();
    for res in served {
        if let Some(k) = schemas::kind_schema(res.group, res.version, res.kind) {
            kinds_with_schema.push(k);
        }
        // Subresources bring their own kinds.
        if res.has_scale {
            extra.extend(schemas::kind_schema("autoscaling", "v1", "Scale"));
        }
        if res.subresources().contains(&"binding") {
            extra.extend(schemas::kind_schema("", "v1", "Binding"));
        }
    }
    let mut definitions = schemas::definitions(kinds_with_schema.iter().copied().chain(extra.iter().copied()));

    let mut kinds = BTreeMap::new();
    let mut gvks: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    let gvk = |g: &str, v: &str, k: &str| json!({"group": g, "version": v, "kind": k});
    for res in served {
        let object = match schemas::kind_schema(res.group, res.version, res.kind) {
            Some(k) => (k.definition)().into_owned(),
            None => {
                let name = fallback_name(res);
                definitions.insert(
                    name.clone(),
                    json!({
                        "description": format!("{} is served by this server; its schema is not published.", res.kind),
                        "type": "object",
                        "x-kubernetes-preserve-unknown-fields": true,
                    }),
                );
                definitions.insert(format!("{name}List"), schemas::list_schema(&name, res.kind));
                name
            }
        };
        let list = format!("{object}List");
        gvks.entry(object.clone()).or_default().push(gvk(res.group, res.version, res.kind));
        gvks.entry(list.clone()).or_default().push(gvk(res.group, res.version, &res.list_kind()));
        kinds.insert((res.group, res.version, res.kind), (object, list));
    }
    for (def, g, v, k) in [
        ("io.k8s.api.autoscaling.v1.Scale", "autoscaling", "v1", "Scale"),
        ("io.k8s.api.core.v1.Binding", "", "v1", "Binding"),
        (schemas::STATUS, "", "v1", "Status"),
    ] {
        if definitions.contains_key(def) {
            gvks.entry(def.to_string()).or_default().push(gvk(g, v, k));
        }
    }
    // Kubernetes registers these meta kinds in every group version it serves.
    for (group, versions) in registry::groups() {
        for version in versions {
            for (def, kind) in [(schemas::DELETE_OPTIONS, "DeleteOptions"), (schemas::WATCH_EVENT, "WatchEvent")] {
                gvks.entry(def.to_string()).or_default().push(gvk(group, version, kind));
            }
        }
    }
    for (def, list) in gvks {
        if let Some(Value::Object(schema)) = definitions.get_mut(&def) {
            schema.insert("x-kubernetes-group-version-kind".into(), Value::Array(list));
        }
    }
    annotate(&mut definitions);
    Catalog { definitions, kinds }
}

/// Writes the extensions table into the definitions, and undoes k8s-openapi's one departure
/// from Kubernetes' schemas: it marks `metadata` required on every kind (its structs always
/// carry one), which Kubernetes does not, and kubectl explain would show.
fn annotate(definitions: &mut Definitions) {
    for schema in definitions.values_mut() {
        let Some(Value::Array(required)) = schema.get_mut("required") else { continue };
        required.retain(|r| r != "metadata");
        if required.is_empty()
            && let Value::Object(schema) = schema
        {
            schema.remove("required");
        }
    }
    for (def, props) in extensions::PROPERTIES {
        let Some(schema) = definitions.get_mut(*def) else { continue };
        let Some(Value::Object(properties)) = schema.get_mut("properties") else { continue };
        for (prop, ext) in *props {
            if let Some(Value::Object(p)) = properties.get_mut(*prop) {
                write_ext(p, ext);
            }
        }
    }
    for def in extensions::ATOMIC_TYPES {
        if let Some(Value::Object(schema)) = definitions.get_mut(*def) {
            schema.insert("x-kubernetes-map-type".into(), "atomic".into());
        }
    }
}

fn write_ext(p: &mut Map<String, Value>, ext: &Ext) {
    let list = match ext.list {
        ListKind::Unset => None,
        ListKind::Atomic => Some("atomic"),
        ListKind::Set => Some("set"),
        ListKind::Map => Some("map"),
    };
    if let Some(list) = list {
        p.insert("x-kubernetes-list-type".into(), list.into());
    }
    if ext.list == ListKind::Map {
        p.insert("x-kubernetes-list-map-keys".into(), ext.keys.iter().map(|k| Value::from(*k)).collect());
    }
    if let Some(key) = ext.merge_key {
        p.insert("x-kubernetes-patch-merge-key".into(), key.into());
    }
    if let Some(strategy) = ext.strategy {
        p.insert("x-kubernetes-patch-strategy".into(), strategy.into());
    }
    match ext.map {
        MapKind::Unset => {}
        MapKind::Atomic => {
            p.insert("x-kubernetes-map-type".into(), "atomic".into());
        }
        MapKind::Granular => {
            p.insert("x-kubernetes-map-type".into(), "granular".into());
        }
    }
}

/// Adds to `out` every definition `value` references, directly or through other definitions.
pub(crate) fn collect_refs(value: &Value, definitions: &Definitions, out: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            if let Some(target) = map.get("$ref").and_then(Value::as_str).and_then(schemas::ref_target)
                && out.insert(target.to_string())
                && let Some(def) = definitions.get(target)
            {
                collect_refs(def, definitions, out);
            }
            for v in map.values() {
                collect_refs(v, definitions, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, definitions, out)),
        _ => {}
    }
}

/// The closure of `roots` under references.
pub(crate) fn reachable<'a>(roots: impl IntoIterator<Item = &'a str>, definitions: &Definitions) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for root in roots {
        if out.insert(root.to_string())
            && let Some(def) = definitions.get(root)
        {
            collect_refs(def, definitions, &mut out);
        }
    }
    out
}
