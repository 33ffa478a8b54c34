//! How each position of an object merges, from rkube-openapi's structure or deduced from
//! the value when the type (or the field) is unknown.

use crate::error::FieldManagerError;
use crate::fieldset::{Element, canonical_json, display_path, is_scalar};
use rkube_api::custom::CustomVersion;
use rkube_api::structural::SchemaRef;
use rkube_openapi::{ListType, Node, NodeKind};
use serde_json::{Map, Value};
use std::collections::HashSet;
use std::sync::Arc;

/// The type at one position: known from the schema, or deduced from the value (unknown kinds
/// such as custom resources, unknown fields, and untyped schema positions).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Schema<'a> {
    Typed(Node<'a>),
    /// A position in a custom resource's structural schema.
    Custom(SchemaRef<'a>),
    /// A custom object's root: its schema, with `metadata` typed as every object's.
    CustomRoot(SchemaRef<'a>),
    Deduced,
}

/// How a value at a position takes part in field sets and merges.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Kind<'a> {
    /// Owned and replaced as a whole: scalars, atomic lists/maps/structs, and values whose
    /// JSON type doesn't fit the schema.
    Leaf,
    /// An object whose keys are separate fields (granular struct or map).
    Fields,
    /// A list of objects identified by key fields.
    ListMap(Keys<'a>),
    /// A list of unique scalars.
    ListSet,
}

/// The key fields of a list-map.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Keys<'a> {
    /// `x-kubernetes-list-map-keys`.
    Listed(&'a [&'a str]),
    /// `x-kubernetes-list-map-keys` of a custom resource's schema.
    Custom(&'a [String]),
    /// The patch merge key of a list that declares no list type.
    Merge(&'a str),
}

impl<'a> Keys<'a> {
    fn names(&self) -> Vec<&'a str> {
        match self {
            Keys::Listed(names) => names.to_vec(),
            Keys::Custom(names) => names.iter().map(String::as_str).collect(),
            Keys::Merge(name) => vec![*name],
        }
    }
}

/// The custom resource version an object belongs to, if it is a custom object; its schema
/// is what [`Schema::of`] walks, so the caller keeps it alive.
pub(crate) fn custom_version(object: &Value) -> Option<Arc<CustomVersion>> {
    let api_version = object.get("apiVersion").and_then(Value::as_str).unwrap_or_default();
    let kind = object.get("kind").and_then(Value::as_str).unwrap_or_default();
    rkube_api::registry::lookup_kind(api_version, kind).and_then(rkube_api::custom::version_of)
}

impl<'a> Schema<'a> {
    /// The schema of an object: its custom resource's (from [`custom_version`]), else its
    /// built-in kind's by apiVersion and kind, else deduced.
    pub(crate) fn of(object: &Value, custom: Option<&'a CustomVersion>) -> Schema<'a> {
        if let Some(custom) = custom {
            return Schema::CustomRoot(custom.schema.root());
        }
        let api_version = object.get("apiVersion").and_then(Value::as_str).unwrap_or_default();
        let kind = object.get("kind").and_then(Value::as_str).unwrap_or_default();
        rkube_openapi::structure().root(api_version, kind).map_or(Schema::Deduced, Schema::Typed)
    }
}

impl<'a> Schema<'a> {
    /// How `value` merges at this position.
    pub(crate) fn kind(&self, value: &Value) -> Kind<'a> {
        let deduced = if value.is_object() { Kind::Fields } else { Kind::Leaf };
        let node = match self {
            Schema::Typed(node) => node,
            Schema::Custom(node) => return custom_kind(*node, value, deduced),
            Schema::CustomRoot(_) | Schema::Deduced => return deduced,
        };
        match node.kind() {
            NodeKind::Scalar => Kind::Leaf,
            NodeKind::Untyped => deduced,
            NodeKind::Struct | NodeKind::Map if value.is_object() && !node.is_atomic() => Kind::Fields,
            NodeKind::Struct | NodeKind::Map => Kind::Leaf,
            NodeKind::List if !value.is_array() => Kind::Leaf,
            NodeKind::List => match node.list_type() {
                ListType::Set => Kind::ListSet,
                ListType::Map(keys) => Kind::ListMap(Keys::Listed(keys)),
                // The SSA docs: without a list type, `patchStrategy: merge` with a merge key
                // means a list-map keyed by that key.
                ListType::Atomic => match (node.patch_strategy(), node.patch_merge_key()) {
                    (Some(strategy), Some(key)) if strategy.split(',').any(|s| s == "merge") => {
                        Kind::ListMap(Keys::Merge(key))
                    }
                    _ => Kind::Leaf,
                },
            },
        }
    }

    /// The type of a field (struct property or map value); unknown fields are deduced.
    pub(crate) fn field(&self, name: &str) -> Schema<'a> {
        match self {
            Schema::Typed(node) => node.field(name).map_or(Schema::Deduced, Schema::Typed),
            Schema::CustomRoot(_) if name == "metadata" => object_meta(),
            Schema::Custom(node) | Schema::CustomRoot(node) => node.field(name).map_or(Schema::Deduced, Schema::Custom),
            Schema::Deduced => Schema::Deduced,
        }
    }

    /// The type of list items.
    pub(crate) fn item(&self) -> Schema<'a> {
        match self {
            Schema::Typed(node) => node.item().map_or(Schema::Deduced, Schema::Typed),
            Schema::Custom(node) => node.items().map_or(Schema::Deduced, Schema::Custom),
            Schema::CustomRoot(_) | Schema::Deduced => Schema::Deduced,
        }
    }

    /// Whether this is a typed struct (which Kubernetes' zero-valued "old object" of a create
    /// already holds, so creating it doesn't make its own path a member).
    pub(crate) fn is_struct(&self) -> bool {
        match self {
            Schema::Typed(node) => node.kind() == NodeKind::Struct,
            Schema::CustomRoot(_) => true,
            Schema::Custom(node) => node.ty() == Some("object") && node.has_properties(),
            Schema::Deduced => false,
        }
    }
}

/// How a value merges at a position of a custom resource's schema: lists are atomic unless
/// `x-kubernetes-list-type` says set or map, objects granular unless `x-kubernetes-map-type`
/// says atomic, as Kubernetes reads structural schemas.
fn custom_kind<'a>(node: SchemaRef<'a>, value: &Value, deduced: Kind<'a>) -> Kind<'a> {
    match node.ty() {
        Some("array") if value.is_array() => match node.list_type() {
            Some("set") => Kind::ListSet,
            Some("map") => Kind::ListMap(Keys::Custom(node.list_map_keys())),
            _ => Kind::Leaf,
        },
        Some("object") if value.is_object() && node.map_type() != Some("atomic") => Kind::Fields,
        // Untyped positions (int-or-string, preserve-unknown-fields) go by the value.
        None => deduced,
        _ => Kind::Leaf,
    }
}

/// ObjectMeta's schema, as every built-in kind has it (a custom object's metadata is one too).
fn object_meta<'a>() -> Schema<'a> {
    rkube_openapi::structure()
        .root("v1", "ConfigMap")
        .and_then(|root| root.field("metadata"))
        .map_or(Schema::Deduced, Schema::Typed)
}

/// The value Kubernetes defaults a missing key field to, when it has one. Only `protocol`
/// (ports of containers, services, endpoints) is defaulted among built-in list-map keys, and
/// configs routinely leave it out.
pub(crate) fn key_default(field: &str) -> Option<Value> {
    (field == "protocol").then(|| Value::from("TCP"))
}

/// The element string naming a list item: `k:{...}` for list-maps, `v:...` for sets.
fn item_element(item: &Value, kind: &Kind<'_>) -> Result<String, String> {
    let Kind::ListMap(keys) = kind else {
        return Ok(format!("v:{}", canonical_json(item)));
    };
    let Value::Object(fields) = item else {
        return Err(format!("expected an object element in a list keyed by {:?}, got {item}", keys.names()));
    };
    let mut key = Map::new();
    for name in keys.names() {
        let value = match fields.get(name) {
            Some(v) if is_scalar(v) => v.clone(),
            Some(v) if !v.is_null() => return Err(format!("key field {name:?} must be a scalar, got {v}")),
            _ => key_default(name).ok_or_else(|| {
                format!("associative list with keys has an element that omits key field {name:?} (and doesn't have default value)")
            })?,
        };
        key.insert(name.to_string(), value);
    }
    Ok(Element::Key(key).render())
}

/// A list's items with their element strings, in list order.
pub(crate) struct Indexed<'v> {
    pub items: Vec<(String, &'v Value)>,
    /// Whether some element string occurs twice (Kubernetes tolerates that in stored objects).
    pub duplicates: bool,
}

impl<'v> Indexed<'v> {
    /// Indexes the items of a list-map or set.
    pub(crate) fn new(list: &'v Value, kind: &Kind<'_>) -> Result<Indexed<'v>, String> {
        let items = list.as_array().map(Vec::as_slice).unwrap_or_default();
        let mut seen = HashSet::new();
        let mut duplicates = false;
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let element = item_element(item, kind).map_err(|e| format!("element {i}: {e}"))?;
            duplicates |= !seen.insert(element.clone());
            out.push((element, item));
        }
        Ok(Indexed { items: out, duplicates })
    }

    /// Indexes a list from an applied configuration, where every item must be well keyed and
    /// unique; errors name the list's path.
    pub(crate) fn config(list: &'v Value, kind: &Kind<'_>, path: &[String]) -> Result<Indexed<'v>, FieldManagerError> {
        let indexed = Indexed::new(list, kind).map_err(|e| FieldManagerError::invalid(display_path(path), e))?;
        if indexed.duplicates {
            let mut seen = HashSet::new();
            if let Some((element, _)) = indexed.items.iter().find(|(e, _)| !seen.insert(e)) {
                let key = display_path(std::slice::from_ref(element));
                return Err(FieldManagerError::invalid(display_path(path), format!("duplicate entries for key {key}")));
            }
        }
        Ok(indexed)
    }

    /// The first item with this element string.
    pub(crate) fn get(&self, element: &str) -> Option<&'v Value> {
        self.items.iter().find(|(e, _)| e == element).map(|(_, v)| *v)
    }
}

/// Whether two JSON values are equal, numbers by value (3 equals 3.0).
pub(crate) fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x == y || ((x.is_f64() || y.is_f64()) && x.as_f64() == y.as_f64()),
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(p, q)| json_eq(p, q)),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod_path(fields: &[&str]) -> Schema<'static> {
        let mut schema = Schema::of(&json!({"apiVersion": "v1", "kind": "Pod"}), None);
        for f in fields {
            schema = if *f == "[]" { schema.item() } else { schema.field(f) };
        }
        schema
    }

    #[test]
    fn keys_items_like_kubernetes() {
        let ports = pod_path(&["spec", "containers", "[]", "ports"]);
        let list = json!([{"containerPort": 80}, {"containerPort": 53, "protocol": "UDP", "name": "dns"}]);
        let kind = ports.kind(&list);
        let indexed = Indexed::new(&list, &kind).unwrap();
        let elements: Vec<&str> = indexed.items.iter().map(|(e, _)| e.as_str()).collect();
        assert_eq!(
            elements,
            vec!["k:{\"containerPort\":80,\"protocol\":\"TCP\"}", "k:{\"containerPort\":53,\"protocol\":\"UDP\"}"]
        );
        let finalizers = pod_path(&["metadata", "finalizers"]);
        let list = json!(["a", "b"]);
        let indexed = Indexed::new(&list, &finalizers.kind(&list)).unwrap();
        assert_eq!(indexed.items[1].0, "v:\"b\"");
    }

    #[test]
    fn config_lists_must_be_keyed_and_unique() {
        let containers = pod_path(&["spec", "containers"]);
        let path = vec!["f:spec".to_string(), "f:containers".to_string()];
        let missing = json!([{"image": "nginx"}]);
        let err = Indexed::config(&missing, &containers.kind(&missing), &path).err().unwrap();
        assert_eq!(
            err.to_string(),
            ".spec.containers: element 0: associative list with keys has an element that omits key field \"name\" (and doesn't have default value)"
        );
        let twice = json!([{"name": "a"}, {"name": "a"}]);
        let err = Indexed::config(&twice, &containers.kind(&twice), &path).err().unwrap();
        assert_eq!(err.to_string(), ".spec.containers: duplicate entries for key [name=\"a\"]");
    }

    #[test]
    fn unknown_types_are_deduced() {
        let schema = Schema::of(&json!({"apiVersion": "example.com/v1", "kind": "Widget"}), None);
        assert!(matches!(schema.kind(&json!({})), Kind::Fields));
        assert!(matches!(schema.field("spec").kind(&json!([1])), Kind::Leaf));
        assert!(json_eq(&json!({"a": [3]}), &json!({"a": [3.0]})));
        assert!(!json_eq(&json!({"a": 1}), &json!({"a": 1, "b": 2})));
    }
}
