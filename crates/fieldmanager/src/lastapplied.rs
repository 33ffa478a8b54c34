//! kubectl's move between client-side and server-side apply.
//!
//! Objects managed with client-side `kubectl apply` carry the
//! `kubectl.kubernetes.io/last-applied-configuration` annotation. For the default kubectl
//! server-side manager ("kubectl") Kubernetes lets apply take over, without conflicts, the
//! fields that annotation still describes accurately, and keeps the annotation in step with
//! what is applied so going back to client-side apply works too.

use crate::fieldset::{FieldSet, canonical_json};
use crate::schema::Schema;
use crate::sets;
use serde_json::{Map, Value};

const ANNOTATION: &str = "kubectl.kubernetes.io/last-applied-configuration";
/// The manager name `kubectl apply --server-side` uses by default; others opt out.
pub(crate) const KUBECTL: &str = "kubectl";
/// Kubernetes' limit on the total size of an object's annotations (keys plus values).
const ANNOTATIONS_SIZE_LIMIT: usize = 256 * 1024;

fn annotation(object: &Value) -> Option<&str> {
    object.get("metadata")?.get("annotations")?.get(ANNOTATION)?.as_str().filter(|s| !s.is_empty())
}

/// The fields whose conflicts the "kubectl" applier may override: those in the live object's
/// last-applied configuration whose live value still equals the one recorded there (a field
/// someone changed since, like replicas after `kubectl scale`, still conflicts).
pub(crate) fn allowed_conflicts(live: &Value, schema: Schema<'_>) -> Option<FieldSet> {
    let last: Value = serde_json::from_str(annotation(live)?).ok()?;
    if !last.is_object() {
        return None;
    }
    let mut allowed = sets::applied(&last, schema).ok()?;
    let diff = sets::compare(&last, live, schema, false);
    allowed.subtract(&diff.modified);
    allowed.subtract(&diff.removed);
    Some(allowed)
}

/// After a successful apply by "kubectl": if the live object had the annotation, rewrite it
/// with the applied configuration (minus the annotation itself), dropping it if it would
/// exceed the annotations size limit.
pub(crate) fn sync(result: &mut Value, live: &Value, config: &Value) {
    if annotation(live).is_none() {
        return;
    }
    let value = encode_last_applied(config);
    let Some(annotations) = result
        .get_mut("metadata")
        .and_then(Value::as_object_mut)
        .map(|m| m.entry("annotations").or_insert_with(|| Value::Object(Map::new())))
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    annotations.insert(ANNOTATION.to_string(), Value::String(value));
    let size: usize = annotations.iter().map(|(k, v)| k.len() + v.as_str().map_or(0, str::len)).sum();
    if size > ANNOTATIONS_SIZE_LIMIT {
        annotations.remove(ANNOTATION);
    }
}

/// The configuration as kubectl/Kubernetes write the annotation: Go's compact JSON (sorted
/// keys, HTML characters escaped) plus a newline, without the annotation itself.
fn encode_last_applied(config: &Value) -> String {
    let mut config = config.clone();
    if let Some(annotations) = config.pointer_mut("/metadata/annotations").and_then(Value::as_object_mut) {
        annotations.remove(ANNOTATION);
    }
    let json = canonical_json(&config)
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029");
    json + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn live(last: &Value, replicas: i64) -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "d", "annotations": {ANNOTATION: encode_last_applied(last)}},
            "spec": {"replicas": replicas, "paused": false}
        })
    }

    #[test]
    fn allows_fields_still_as_last_applied() {
        let last = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}, "spec": {"replicas": 2, "paused": false}});
        let schema = Schema::of(&last, None);
        let allowed = allowed_conflicts(&live(&last, 2), schema).unwrap();
        assert!(allowed.contains(&["f:spec", "f:replicas"]));
        let allowed = allowed_conflicts(&live(&last, 5), schema).unwrap();
        assert!(!allowed.contains(&["f:spec", "f:replicas"]));
        assert!(allowed.contains(&["f:spec", "f:paused"]));
        assert!(allowed_conflicts(&json!({"metadata": {}}), schema).is_none());
    }

    #[test]
    fn rewrites_the_annotation_like_go() {
        let last = json!({"metadata": {"name": "d"}});
        let config = json!({"metadata": {"name": "d", "annotations": {"a": "x<y&z"}}, "kind": "Deployment"});
        let mut result = live(&last, 1);
        sync(&mut result, &live(&last, 1), &config);
        assert_eq!(
            result["metadata"]["annotations"][ANNOTATION],
            "{\"kind\":\"Deployment\",\"metadata\":{\"annotations\":{\"a\":\"x\\u003cy\\u0026z\"},\"name\":\"d\"}}\n"
        );
    }
}
