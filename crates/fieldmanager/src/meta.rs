//! Object metadata the server owns: never in anyone's field set, and not changeable by apply.

use crate::fieldset::FieldSet;
use serde_json::Value;

/// Metadata fields Kubernetes strips from every field set (identity and server-set fields).
const UNOWNED_METADATA: &[&str] =
    &["name", "namespace", "creationTimestamp", "selfLink", "uid", "clusterName", "generation", "resourceVersion"];

/// Metadata the server sets, which an applied configuration can't change: apply keeps the
/// live values (resourceVersion in a config is a precondition the caller checks).
const SERVER_METADATA: &[&str] = &[
    "uid",
    "resourceVersion",
    "creationTimestamp",
    "generation",
    "selfLink",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
];

/// Removes the paths no manager owns: apiVersion, kind, metadata itself (not its fields),
/// the identity and server-set metadata fields, and everything under managedFields.
pub(crate) fn strip(set: &mut FieldSet) {
    set.remove_member(&["f:apiVersion"]);
    set.remove_member(&["f:kind"]);
    set.remove_member(&["f:metadata"]);
    for name in UNOWNED_METADATA {
        set.remove_member(&["f:metadata".to_string(), format!("f:{name}")]);
    }
    set.remove_subtree(&["f:metadata", "f:managedFields"]);
}

/// Takes `metadata.managedFields` out of an object.
pub(crate) fn take_managed_fields(object: &mut Value) -> Option<Value> {
    object.get_mut("metadata")?.as_object_mut()?.remove("managedFields")
}

/// Gives `merged` the live object's server-set metadata back.
pub(crate) fn restore_server_metadata(merged: &mut Value, live: &Value) {
    let Some(metadata) = merged.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    let live_metadata = live.get("metadata").and_then(Value::as_object);
    for name in SERVER_METADATA {
        match live_metadata.and_then(|m| m.get(*name)) {
            Some(value) => metadata.insert((*name).to_string(), value.clone()),
            None => metadata.remove(*name),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strips_identity_and_server_fields() {
        let mut set = FieldSet::from_fields_v1(&json!({
            "f:apiVersion": {}, "f:kind": {},
            "f:metadata": {".": {}, "f:name": {}, "f:namespace": {}, "f:uid": {}, "f:resourceVersion": {},
                           "f:labels": {"f:app": {}}, "f:managedFields": {".": {}, "f:x": {}}},
            "f:spec": {"f:replicas": {}}
        }))
        .unwrap();
        strip(&mut set);
        assert_eq!(set.paths(), vec![".metadata.labels.app", ".spec.replicas"]);
    }

    #[test]
    fn restores_server_metadata() {
        let live = json!({"metadata": {"name": "a", "uid": "u1", "resourceVersion": "7"}});
        let mut merged = json!({"metadata": {"name": "a", "uid": "forged", "resourceVersion": "3", "generation": 9}});
        restore_server_metadata(&mut merged, &live);
        assert_eq!(merged, live);
    }
}
