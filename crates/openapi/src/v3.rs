//! OpenAPI v3.0 documents, one per group version, as kubectl (explain, field validation
//! discovery) reads them.

use crate::catalog::{self, Catalog};
use crate::paths::{self, Body, In, Operation, Param, PathItem};
use crate::schemas;
use serde_json::{Map, Value, json};

const REF_PREFIX: &str = "#/components/schemas/";

/// The media types object bodies are served in.
const MEDIA: &[&str] = &["application/json", "application/yaml", "application/vnd.kubernetes.protobuf"];
/// Additional media types of list and watch responses.
const STREAM_MEDIA: &[&str] = &["application/json;stream=watch", "application/vnd.kubernetes.protobuf;stream=watch"];
/// The content types a PATCH accepts.
pub(crate) const PATCH_TYPES: &[&str] = &[
    "application/apply-patch+yaml",
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
];

/// The document of one group version.
pub(crate) fn group_version(catalog: &Catalog, items: &[PathItem]) -> Value {
    let names = catalog::reachable(referenced(items), &catalog.definitions);
    document(names.iter().filter_map(|n| catalog.definitions.get_key_value(n)), items)
}

/// A v3 document of `items` whose components are exactly `definitions`.
pub(crate) fn document<'a>(
    definitions: impl IntoIterator<Item = (&'a String, &'a Value)>,
    items: &[PathItem],
) -> Value {
    let mut paths = Map::new();
    for item in items {
        paths.insert(item.path.clone(), path_item(item));
    }
    let mut components = Map::new();
    for (name, def) in definitions {
        components.insert(name.clone(), schema(def));
    }
    json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": crate::KUBERNETES_VERSION},
        "paths": paths,
        "components": {"schemas": components},
    })
}

/// Definitions the operations of `items` name directly.
pub(crate) fn referenced(items: &[PathItem]) -> impl Iterator<Item = &str> {
    items.iter().flat_map(|i| &i.operations).flat_map(|op| {
        let body = match &op.body {
            Some(Body::Object(def)) => Some(def.as_str()),
            Some(Body::Patch) => Some(schemas::PATCH),
            None => None,
        };
        body.into_iter().chain(op.responses.iter().map(|(_, def)| def.as_str()))
    })
}

fn path_item(item: &PathItem) -> Value {
    let mut out = Map::new();
    for op in &item.operations {
        out.insert(op.method.to_string(), operation(op));
    }
    out.insert("parameters".into(), item.params.iter().map(parameter).collect());
    Value::Object(out)
}

fn reference(def: &str) -> Value {
    json!({"$ref": format!("{REF_PREFIX}{def}")})
}

fn parameter(p: &Param) -> Value {
    let mut out = json!({
        "name": p.name,
        "in": match p.location { In::Path => "path", In::Query => "query" },
        "description": p.description,
        "schema": {"type": p.ty, "uniqueItems": true},
    });
    if p.required {
        out["required"] = true.into();
    }
    out
}

fn operation(op: &Operation) -> Value {
    let mut out = json!({
        "description": op.description,
        "operationId": op.operation_id,
        "tags": [op.tag],
        "x-kubernetes-action": op.action,
        "x-kubernetes-group-version-kind": {"group": op.gvk.0, "version": op.gvk.1, "kind": op.gvk.2},
    });
    if !op.params.is_empty() {
        out["parameters"] = op.params.iter().map(parameter).collect();
    }
    if let Some(body) = &op.body {
        let content: Map<String, Value> = match body {
            Body::Object(def) => [("*/*".to_string(), json!({"schema": reference(def)}))].into_iter().collect(),
            Body::Patch => {
                PATCH_TYPES.iter().map(|t| (t.to_string(), json!({"schema": reference(schemas::PATCH)}))).collect()
            }
        };
        let mut body = json!({"content": content});
        if op.method != "delete" {
            body["required"] = true.into();
        }
        out["requestBody"] = body;
    }
    let mut responses = Map::new();
    for (code, def) in &op.responses {
        let media = MEDIA.iter().chain(if op.streams { STREAM_MEDIA } else { &[] });
        let content: Map<String, Value> = media.map(|m| (m.to_string(), json!({"schema": reference(def)}))).collect();
        let description = match code {
            200 => "OK",
            201 => "Created",
            202 => "Accepted",
            _ => "",
        };
        responses.insert(code.to_string(), json!({"description": description, "content": content}));
    }
    responses.insert("401".into(), json!({"description": "Unauthorized"}));
    out["responses"] = Value::Object(responses);
    out
}

/// A definition as v3 writes it: references point into components, and a reference with
/// sibling keywords (a property's description) is wrapped in `allOf`, because OpenAPI 3.0
/// ignores siblings of `$ref`.
pub(crate) fn schema(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut out = Map::new();
            for (k, v) in map {
                // A string is a reference; anything else is a property named `$ref` (JSONSchemaProps).
                if k == "$ref" && v.is_string() {
                    continue;
                }
                out.insert(k.clone(), schema(v));
            }
            if let Some(target) = map.get("$ref").and_then(Value::as_str).and_then(schemas::ref_target) {
                if out.is_empty() {
                    out.insert("$ref".into(), format!("{REF_PREFIX}{target}").into());
                } else {
                    out.insert("allOf".into(), json!([reference(target)]));
                }
            }
            Value::Object(out)
        }
        Value::Array(items) => items.iter().map(schema).collect(),
        other => other.clone(),
    }
}

/// `api/v1` or `apis/<group>/<version>`: the key of a group version in the root document.
pub(crate) fn key(group: &str, version: &str) -> String {
    paths::prefix(group, version).trim_start_matches('/').to_string()
}
