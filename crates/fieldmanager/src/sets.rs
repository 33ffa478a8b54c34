//! Field sets computed from objects: what an applied configuration claims, and what changed
//! between two versions of an object.

use crate::error::FieldManagerError;
use crate::fieldset::FieldSet;
use crate::schema::{Indexed, Kind, Schema, json_eq};
use serde_json::{Map, Value};

/// The fields an applied configuration sets: its leaves (scalars, atomic values, nulls) and
/// its list items. Objects are not members themselves, only through their fields — an
/// applier owns `labels.app`, not `labels`.
pub(crate) fn applied(config: &Value, schema: Schema<'_>) -> Result<FieldSet, FieldManagerError> {
    let mut set = FieldSet::new();
    let mut path = Vec::new();
    if let Value::Object(fields) = config {
        applied_fields(&mut set, fields, schema, &mut path)?;
    }
    Ok(set)
}

fn applied_fields(
    set: &mut FieldSet,
    fields: &Map<String, Value>,
    schema: Schema<'_>,
    path: &mut Vec<String>,
) -> Result<(), FieldManagerError> {
    for (name, value) in fields {
        path.push(format!("f:{name}"));
        applied_value(set, value, schema.field(name), path)?;
        path.pop();
    }
    Ok(())
}

fn applied_value(set: &mut FieldSet, value: &Value, schema: Schema<'_>, path: &mut Vec<String>) -> Result<(), FieldManagerError> {
    let kind = schema.kind(value);
    match (kind, value) {
        (Kind::Fields, Value::Object(fields)) => applied_fields(set, fields, schema, path),
        (Kind::ListMap(_) | Kind::ListSet, _) => {
            let items = Indexed::config(value, &kind, path)?;
            for (element, item) in items.items {
                path.push(element);
                set.insert(path);
                if matches!(kind, Kind::ListMap(_)) {
                    applied_item(set, item, schema.item(), path)?;
                }
                path.pop();
            }
            Ok(())
        }
        _ => {
            set.insert(path);
            Ok(())
        }
    }
}

/// A list-map item's own fields (the item itself is already a member).
fn applied_item(set: &mut FieldSet, item: &Value, schema: Schema<'_>, path: &mut Vec<String>) -> Result<(), FieldManagerError> {
    match (schema.kind(item), item) {
        (Kind::Fields, Value::Object(fields)) => applied_fields(set, fields, schema, path),
        // An atomic item is owned whole through its own path.
        _ => Ok(()),
    }
}

/// Adds `value` at `path` and everything inside it, each object and list as a member too:
/// how Kubernetes records a value that appeared (or disappeared) as a whole.
fn whole(set: &mut FieldSet, value: &Value, schema: Schema<'_>, path: &mut Vec<String>) {
    set.insert(path);
    let kind = schema.kind(value);
    match (kind, value) {
        (Kind::Fields, Value::Object(fields)) => {
            for (name, child) in fields {
                path.push(format!("f:{name}"));
                whole(set, child, schema.field(name), path);
                path.pop();
            }
        }
        (Kind::ListMap(_) | Kind::ListSet, _) => {
            // A list that can't be keyed is owned only as a whole.
            if let Ok(items) = Indexed::new(value, &kind) {
                for (element, item) in items.items {
                    path.push(element);
                    whole(set, item, schema.item(), path);
                    path.pop();
                }
            }
        }
        _ => {}
    }
}

/// What changed between two versions of an object.
#[derive(Debug, Default)]
pub(crate) struct Diff {
    /// Paths that appeared, with everything inside them.
    pub added: FieldSet,
    /// Leaves whose value changed.
    pub modified: FieldSet,
    /// Paths that disappeared, with everything that was inside them.
    pub removed: FieldSet,
}

impl Diff {
    /// Whether nothing changed.
    pub(crate) fn is_empty(&self) -> bool {
        self.added.is_empty() && self.modified.is_empty() && self.removed.is_empty()
    }

    /// Applies `f` to each of the three sets.
    pub(crate) fn for_each_set(&mut self, mut f: impl FnMut(&mut FieldSet)) {
        f(&mut self.added);
        f(&mut self.modified);
        f(&mut self.removed);
    }
}

/// Compares two versions of an object. With `creating`, `old` stands for Kubernetes'
/// zero-valued new object, which already holds every struct not inside a list: those
/// appearing don't make their own paths members (so a created Deployment records
/// `f:spec` without `"."`, but a new `labels` map or list item with it).
pub(crate) fn compare(old: &Value, new: &Value, schema: Schema<'_>, creating: bool) -> Diff {
    let mut diff = Diff::default();
    compare_value(&mut diff, Some(old), Some(new), schema, &mut Vec::new(), creating);
    diff
}

fn compare_value(
    diff: &mut Diff,
    old: Option<&Value>,
    new: Option<&Value>,
    schema: Schema<'_>,
    path: &mut Vec<String>,
    zero_structs: bool,
) {
    match (old, new) {
        (None, None) => {}
        (None, Some(new)) if zero_structs && schema.is_struct() && matches!(schema.kind(new), Kind::Fields) => {
            let empty = Value::Object(Map::new());
            compare_value(diff, Some(&empty), Some(new), schema, path, zero_structs);
        }
        (None, Some(new)) => whole(&mut diff.added, new, schema, path),
        (Some(old), None) => whole(&mut diff.removed, old, schema, path),
        (Some(old), Some(new)) => match (schema.kind(old), schema.kind(new), old, new) {
            (Kind::Fields, Kind::Fields, Value::Object(o), Value::Object(n)) => {
                let names = o.keys().chain(n.keys().filter(|k| !o.contains_key(*k)));
                for name in names {
                    path.push(format!("f:{name}"));
                    compare_value(diff, o.get(name), n.get(name), schema.field(name), path, zero_structs);
                    path.pop();
                }
            }
            (kind @ (Kind::ListMap(_) | Kind::ListSet), Kind::ListMap(_) | Kind::ListSet, _, _) => {
                match (Indexed::new(old, &kind), Indexed::new(new, &kind)) {
                    (Ok(o), Ok(n)) if !o.duplicates && !n.duplicates => {
                        let elements = o.items.iter().chain(n.items.iter().filter(|(e, _)| o.get(e).is_none()));
                        for (element, _) in elements {
                            path.push(element.clone());
                            // Items of a created list are new whole, zero-valued structs or not.
                            compare_value(diff, o.get(element), n.get(element), schema.item(), path, false);
                            path.pop();
                        }
                    }
                    // Lists that can't be matched item by item change as a whole.
                    _ => compare_leaf(diff, old, new, path),
                }
            }
            _ => compare_leaf(diff, old, new, path),
        },
    }
}

fn compare_leaf(diff: &mut Diff, old: &Value, new: &Value, path: &[String]) {
    if !json_eq(old, new) {
        diff.modified.insert(path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment() -> Value {
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "nginx", "labels": {"app": "nginx"}},
            "spec": {
                "replicas": 3,
                "selector": {"matchLabels": {"app": "nginx"}},
                "template": {
                    "metadata": {"labels": {"app": "nginx"}},
                    "spec": {"containers": [{"name": "nginx", "image": "nginx:1.25", "ports": [{"containerPort": 80}]}]}
                }
            }
        })
    }

    #[test]
    fn applied_set_of_a_deployment() {
        let d = deployment();
        let set = applied(&d, Schema::of(&d, None)).unwrap();
        assert_eq!(
            set.to_fields_v1(),
            json!({
                "f:apiVersion": {},
                "f:kind": {},
                "f:metadata": {"f:labels": {"f:app": {}}, "f:name": {}},
                "f:spec": {
                    "f:replicas": {},
                    "f:selector": {},
                    "f:template": {
                        "f:metadata": {"f:labels": {"f:app": {}}},
                        "f:spec": {"f:containers": {"k:{\"name\":\"nginx\"}": {
                            ".": {},
                            "f:image": {},
                            "f:name": {},
                            "f:ports": {"k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {".": {}, "f:containerPort": {}}}
                        }}}
                    }
                }
            })
        );
    }

    #[test]
    fn creating_records_new_maps_and_items_whole() {
        let d = deployment();
        let diff = compare(&json!({}), &d, Schema::of(&d, None), true);
        let added = diff.added.to_fields_v1();
        assert_eq!(added["f:metadata"]["f:labels"], json!({".": {}, "f:app": {}}));
        assert!(added["f:spec"].get(".").is_none());
        assert_eq!(added["f:spec"]["f:selector"], json!({}));
        let container = &added["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"nginx\"}"];
        assert_eq!(container["f:ports"]["."], json!({}));
        assert!(diff.modified.is_empty() && diff.removed.is_empty());
    }

    #[test]
    fn compares_items_by_key() {
        let old = deployment();
        let mut new = deployment();
        new["spec"]["replicas"] = json!(5);
        new["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:1.27");
        new["metadata"]["labels"] = json!({"tier": "web"});
        let diff = compare(&old, &new, Schema::of(&old, None), false);
        assert_eq!(diff.modified.paths(), vec![
            ".spec.replicas",
            ".spec.template.spec.containers[name=\"nginx\"].image"
        ]);
        assert_eq!(diff.added.paths(), vec![".metadata.labels.tier"]);
        assert_eq!(diff.removed.paths(), vec![".metadata.labels.app"]);
        assert!(compare(&old, &old, Schema::of(&old, None), false).is_empty());
    }
}
