//! The OpenAPI v2 (Swagger 2.0) document of everything served, JSON only.

use crate::catalog::Catalog;
use crate::paths::{Body, In, Operation, Param, PathItem};
use crate::schemas;
use crate::v3::PATCH_TYPES;
use serde_json::{Map, Value, json};

const REF_PREFIX: &str = "#/definitions/";
const PRODUCES: &[&str] = &["application/json", "application/yaml", "application/vnd.kubernetes.protobuf"];
const STREAM_PRODUCES: &[&str] = &["application/json;stream=watch", "application/vnd.kubernetes.protobuf;stream=watch"];

/// The whole v2 document.
pub(crate) fn document(catalog: &Catalog, items: &[PathItem]) -> Value {
    let mut paths = Map::new();
    for item in items {
        paths.insert(item.path.clone(), path_item(item));
    }
    let definitions: Map<String, Value> =
        catalog.definitions.iter().map(|(name, def)| (name.clone(), schema(def))).collect();
    json!({
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": crate::KUBERNETES_VERSION},
        "paths": paths,
        "definitions": definitions,
    })
}

fn reference(def: &str) -> Value {
    json!({"$ref": format!("{REF_PREFIX}{def}")})
}

fn path_item(item: &PathItem) -> Value {
    let mut out = Map::new();
    for op in &item.operations {
        out.insert(op.method.to_string(), operation(op));
    }
    out.insert("parameters".into(), item.params.iter().map(parameter).collect());
    Value::Object(out)
}

fn parameter(p: &Param) -> Value {
    let mut out = json!({
        "name": p.name,
        "in": match p.location { In::Path => "path", In::Query => "query" },
        "description": p.description,
        "type": p.ty,
        "uniqueItems": true,
    });
    if p.required {
        out["required"] = true.into();
    }
    out
}

fn operation(op: &Operation) -> Value {
    let consumes: &[&str] = match op.body {
        Some(Body::Patch) => PATCH_TYPES,
        _ => &["*/*"],
    };
    let produces: Vec<&str> =
        PRODUCES.iter().chain(if op.streams { STREAM_PRODUCES } else { &[] }).copied().collect();
    let mut params: Vec<Value> = Vec::new();
    if let Some(body) = &op.body {
        let def = match body {
            Body::Object(def) => def.as_str(),
            Body::Patch => schemas::PATCH,
        };
        params.push(json!({"name": "body", "in": "body", "required": op.method != "delete", "schema": reference(def)}));
    }
    params.extend(op.params.iter().map(parameter));
    let mut responses = Map::new();
    for (code, def) in &op.responses {
        let description = match code {
            200 => "OK",
            201 => "Created",
            202 => "Accepted",
            _ => "",
        };
        responses.insert(code.to_string(), json!({"description": description, "schema": reference(def)}));
    }
    responses.insert("401".into(), json!({"description": "Unauthorized"}));
    let mut out = json!({
        "description": op.description,
        "operationId": op.operation_id,
        "consumes": consumes,
        "produces": produces,
        "schemes": ["https"],
        "tags": [op.tag],
        "responses": responses,
        "x-kubernetes-action": op.action,
        "x-kubernetes-group-version-kind": {"group": op.gvk.0, "version": op.gvk.1, "kind": op.gvk.2},
    });
    if !params.is_empty() {
        out["parameters"] = Value::Array(params);
    }
    out
}

/// A definition as v2 writes it: only the reference style changes (Swagger 2.0 tools accept
/// a description beside `$ref`, and Kubernetes' own v2 document has them).
fn schema(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let v = match (k.as_str(), v.as_str().and_then(schemas::ref_target)) {
                        ("$ref", Some(target)) => Value::String(format!("{REF_PREFIX}{target}")),
                        _ => schema(v),
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        Value::Array(items) => items.iter().map(schema).collect(),
        other => other.clone(),
    }
}
