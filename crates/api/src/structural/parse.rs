//! Reading an openAPIV3Schema into [`Node`]s and checking Kubernetes' structural rules.

use regex::Regex;
use serde_json::{Map, Value, json};

use super::{Additional, Node};
use crate::FieldError;

/// The types a structural schema may name.
const TYPES: &[&str] = &["array", "boolean", "integer", "number", "object", "string"];

/// Where a node sits; the wording of a missing `type` depends on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    Root,
    Item,
    Field,
}

/// How a node is reached.
#[derive(Debug, Clone, Copy)]
struct Ctx {
    level: Level,
    /// Under allOf/anyOf/oneOf/not: only value validations are allowed.
    nested: bool,
    /// This nested node is one of the two `anyOf` branches of the int-or-string idiom,
    /// which may name a type.
    type_allowed: bool,
    /// The node's own `anyOf` is allowed to be the int-or-string idiom (first `allOf` entry).
    skip_any_of: bool,
}

/// Parses the root schema, reporting malformed keywords and structural violations into `errs`.
pub(super) fn parse(schema: &Value, path: &str, errs: &mut Vec<FieldError>) -> Node {
    let ctx = Ctx { level: Level::Root, nested: false, type_allowed: false, skip_any_of: false };
    parse_node(schema, path, ctx, errs)
}

/// Checks that everything value validations mention is also in the structural part.
pub(super) fn check_structural(root: &Node, path: &str, errs: &mut Vec<FieldError>) {
    completeness(root, path, errs);
}

fn key(path: &str, k: &str) -> String {
    format!("{path}.properties[{k}]")
}

fn sub(path: &str, k: &str) -> String {
    format!("{path}.{k}")
}

/// `[{type: integer}, {type: string}]`: the anyOf Kubernetes allows with x-kubernetes-int-or-string.
fn is_int_or_string_any_of(v: Option<&Value>) -> bool {
    v.is_some_and(|v| *v == json!([{"type": "integer"}, {"type": "string"}]))
}

fn parse_node(v: &Value, path: &str, ctx: Ctx, errs: &mut Vec<FieldError>) -> Node {
    let Some(m) = v.as_object() else {
        errs.push(FieldError::invalid(path, v, "must be a schema object"));
        return Node::default();
    };
    let mut n = Node::default();
    if m.contains_key("$ref") {
        errs.push(FieldError::forbidden(sub(path, "$ref"), "$ref is not supported"));
    }
    match m.get("type") {
        None => {}
        Some(Value::String(s)) if s.is_empty() => {}
        Some(Value::String(s)) if TYPES.contains(&s.as_str()) => n.ty = Some(s.clone()),
        Some(Value::String(s)) => {
            errs.push(FieldError::not_supported(sub(path, "type"), &json!(s), TYPES));
            // Keep it so the missing-type rule does not report the same field twice.
            n.ty = Some(s.clone());
        }
        Some(other) => errs.push(FieldError::invalid(sub(path, "type"), other, "must be a string")),
    }
    n.nullable = get_bool(m, "nullable", path, errs);
    n.default = m.get("default").cloned();
    n.preserve_unknown = get_bool(m, "x-kubernetes-preserve-unknown-fields", path, errs);
    n.embedded = get_bool(m, "x-kubernetes-embedded-resource", path, errs);
    n.int_or_string = get_bool(m, "x-kubernetes-int-or-string", path, errs);
    n.list_type = get_str(m, "x-kubernetes-list-type", path, errs);
    n.list_map_keys = get_str_list(m, "x-kubernetes-list-map-keys", path, errs);
    n.map_type = get_str(m, "x-kubernetes-map-type", path, errs);
    n.enum_values = match m.get("enum") {
        None => None,
        Some(Value::Array(a)) => Some(a.clone()),
        Some(other) => {
            errs.push(FieldError::invalid(sub(path, "enum"), other, "must be an array"));
            None
        }
    };
    n.minimum = get_num(m, "minimum", path, errs);
    n.maximum = get_num(m, "maximum", path, errs);
    n.exclusive_minimum = get_bool(m, "exclusiveMinimum", path, errs);
    n.exclusive_maximum = get_bool(m, "exclusiveMaximum", path, errs);
    n.multiple_of = get_num(m, "multipleOf", path, errs);
    if let Some(f) = n.multiple_of
        && f <= 0.0
    {
        errs.push(FieldError::invalid(sub(path, "multipleOf"), &json!(f), "must be greater than zero"));
        n.multiple_of = None;
    }
    n.min_length = get_count(m, "minLength", path, errs);
    n.max_length = get_count(m, "maxLength", path, errs);
    n.min_items = get_count(m, "minItems", path, errs);
    n.max_items = get_count(m, "maxItems", path, errs);
    n.min_properties = get_count(m, "minProperties", path, errs);
    n.max_properties = get_count(m, "maxProperties", path, errs);
    n.unique_items = get_bool(m, "uniqueItems", path, errs);
    n.required = get_str_list(m, "required", path, errs);
    n.format = get_str(m, "format", path, errs);
    n.rules = super::cel::parse_rules(m.get("x-kubernetes-validations"), path, errs);
    if let Some(p) = get_str(m, "pattern", path, errs) {
        match Regex::new(&p) {
            Ok(re) => n.pattern = Some((p, re)),
            Err(e) => {
                // The regex crate's message spans lines (source, caret, reason); keep the reason.
                let text = e.to_string();
                let reason = text.lines().last().unwrap_or_default().trim_start_matches("error: ").to_string();
                errs.push(FieldError::invalid(
                    sub(path, "pattern"),
                    &json!(p),
                    &format!("must be a valid regular expression, but isn't: {reason}"),
                ));
            }
        }
    }

    let field_ctx = Ctx { level: Level::Field, nested: ctx.nested, type_allowed: false, skip_any_of: false };
    match m.get("properties") {
        None => {}
        Some(Value::Object(props)) => {
            for (k, pv) in props {
                n.properties.insert(k.clone(), parse_node(pv, &key(path, k), field_ctx, errs));
            }
        }
        Some(other) => errs.push(FieldError::invalid(sub(path, "properties"), other, "must be an object")),
    }
    n.additional = match m.get("additionalProperties") {
        None => None,
        Some(Value::Bool(b)) => Some(Additional::Allowed(*b)),
        Some(s @ Value::Object(_)) => {
            Some(Additional::Schema(Box::new(parse_node(s, &sub(path, "additionalProperties"), field_ctx, errs))))
        }
        Some(other) => {
            errs.push(FieldError::invalid(sub(path, "additionalProperties"), other, "must be a boolean or a schema"));
            None
        }
    };
    match m.get("items") {
        None => {}
        Some(Value::Array(_)) => {
            errs.push(FieldError::forbidden(sub(path, "items"), "items must be a schema object and not an array"))
        }
        Some(iv) => {
            let item_ctx = Ctx { level: Level::Item, ..field_ctx };
            n.items = Some(Box::new(parse_node(iv, &sub(path, "items"), item_ctx, errs)));
        }
    }

    // Value validations: their subschemas may only restrict values, never shape them.
    let skip_any_of = ctx.skip_any_of || is_int_or_string_any_of(m.get("anyOf"));
    let skip_first_all_of_any_of = m
        .get("allOf")
        .and_then(|a| a.as_array())
        .and_then(|a| a.first())
        .is_some_and(|first| is_int_or_string_any_of(first.get("anyOf")));
    let nested = Ctx { level: ctx.level, nested: true, type_allowed: false, skip_any_of: false };
    n.all_of =
        parse_list(m, "allOf", path, errs, |i| Ctx { skip_any_of: i == 0 && skip_first_all_of_any_of, ..nested });
    n.any_of = parse_list(m, "anyOf", path, errs, |_| Ctx { type_allowed: skip_any_of, ..nested });
    n.one_of = parse_list(m, "oneOf", path, errs, |_| nested);
    n.not = m.get("not").map(|nv| Box::new(parse_node(nv, &sub(path, "not"), nested, errs)));

    if ctx.nested {
        check_nested(m, &n, path, ctx, errs);
    } else {
        check_invariants(m, &n, path, ctx.level, errs);
    }
    check_extensions(&n, path, errs);
    n
}

fn parse_list(
    m: &Map<String, Value>,
    name: &str,
    path: &str,
    errs: &mut Vec<FieldError>,
    ctx: impl Fn(usize) -> Ctx,
) -> Vec<Node> {
    match m.get(name) {
        None => Vec::new(),
        Some(Value::Array(a)) => {
            a.iter().enumerate().map(|(i, v)| parse_node(v, &format!("{path}.{name}[{i}]"), ctx(i), errs)).collect()
        }
        Some(other) => {
            errs.push(FieldError::invalid(sub(path, name), other, "must be an array"));
            Vec::new()
        }
    }
}

/// The structural invariants of a node outside value validations.
fn check_invariants(m: &Map<String, Value>, n: &Node, path: &str, level: Level, errs: &mut Vec<FieldError>) {
    if n.ty.as_deref() == Some("array") && n.items.is_none() {
        errs.push(FieldError::required(sub(path, "items"), "must be specified"));
    }
    if n.embedded && n.ty.as_deref() != Some("object") {
        let msg = "must be object if x-kubernetes-embedded-resource is true";
        match &n.ty {
            None => errs.push(FieldError::required(sub(path, "type"), msg)),
            Some(t) => errs.push(FieldError::invalid(sub(path, "type"), &json!(t), msg)),
        }
    } else if n.ty.is_none() && !n.int_or_string && !n.preserve_unknown {
        let msg = match level {
            Level::Root => "must not be empty at the root",
            Level::Item => "must not be empty for specified array items",
            Level::Field => "must not be empty for specified object fields",
        };
        errs.push(FieldError::required(sub(path, "type"), msg));
    }
    if n.embedded && n.additional.is_some() {
        errs.push(FieldError::forbidden(
            sub(path, "additionalProperties"),
            "must not be used if x-kubernetes-embedded-resource is set",
        ));
    }
    if level == Level::Root {
        if let Some(t) = &n.ty
            && t != "object"
        {
            errs.push(FieldError::invalid(sub(path, "type"), &json!(t), "must be object at the root"));
        }
        if n.additional.is_some() {
            errs.push(FieldError::forbidden(sub(path, "additionalProperties"), "must not be used at the root"));
        }
    }
    if level == Level::Root || n.embedded {
        for (name, want) in [("kind", "string"), ("apiVersion", "string"), ("metadata", "object")] {
            if let Some(p) = n.properties.get(name)
                && p.ty.as_deref() != Some(want)
            {
                let shown = json!(p.ty.clone().unwrap_or_default());
                errs.push(FieldError::invalid(sub(&key(path, name), "type"), &shown, &format!("must be {want}")));
            }
        }
    }
    if level == Level::Root
        && let Some(meta) = m.get("properties").and_then(|p| p.get("metadata"))
        && !metadata_only_names(meta)
    {
        errs.push(FieldError::forbidden(
            key(path, "metadata"),
            "must not specify anything other than name and generateName, but metadata is implicitly specified",
        ));
    }
    if n.embedded && !n.preserve_unknown && n.properties.is_empty() {
        errs.push(FieldError::required(
            sub(path, "properties"),
            "must not be empty if x-kubernetes-embedded-resource is true without x-kubernetes-preserve-unknown-fields",
        ));
    }
}

/// Root metadata may only restrict name and generateName (and say it is an object).
fn metadata_only_names(meta: &Value) -> bool {
    let Some(m) = meta.as_object() else { return false };
    m.iter().all(|(k, v)| match k.as_str() {
        "type" | "default" => true,
        "properties" => v.as_object().is_some_and(|p| p.keys().all(|k| k == "name" || k == "generateName")),
        _ => false,
    })
}

/// Checks on the vendor extensions, wherever they appear.
fn check_extensions(n: &Node, path: &str, errs: &mut Vec<FieldError>) {
    if n.int_or_string && n.preserve_unknown {
        errs.push(FieldError::invalid(
            sub(path, "x-kubernetes-preserve-unknown-fields"),
            &json!(true),
            "must be false if x-kubernetes-int-or-string is true",
        ));
    }
    if n.int_or_string && n.embedded {
        errs.push(FieldError::invalid(
            sub(path, "x-kubernetes-embedded-resource"),
            &json!(true),
            "must be false if x-kubernetes-int-or-string is true",
        ));
    }
    // `additionalProperties: true` next to properties is allowed (and means little).
    if !n.properties.is_empty() && n.additional.as_ref().is_some_and(|a| !matches!(a, Additional::Allowed(true))) {
        errs.push(FieldError::forbidden(
            sub(path, "additionalProperties"),
            "additionalProperties and properties are mutual exclusive",
        ));
    }
    if let Some(lt) = &n.list_type {
        if !["atomic", "set", "map"].contains(&lt.as_str()) {
            errs.push(FieldError::not_supported(
                sub(path, "x-kubernetes-list-type"),
                &json!(lt),
                &["atomic", "set", "map"],
            ));
        } else if n.ty.as_deref() != Some("array") {
            errs.push(FieldError::invalid(
                sub(path, "x-kubernetes-list-type"),
                &json!(lt),
                "must only be used if type is array",
            ));
        }
        if lt == "map" && n.list_map_keys.is_empty() {
            errs.push(FieldError::required(
                sub(path, "x-kubernetes-list-map-keys"),
                "must not be empty if x-kubernetes-list-type is map",
            ));
        }
    }
    if !n.list_map_keys.is_empty() && n.list_type.as_deref() != Some("map") {
        errs.push(FieldError::forbidden(
            sub(path, "x-kubernetes-list-map-keys"),
            "must not be set if x-kubernetes-list-type is not map",
        ));
    }
    if let Some(mt) = &n.map_type
        && !["granular", "atomic"].contains(&mt.as_str())
    {
        errs.push(FieldError::not_supported(sub(path, "x-kubernetes-map-type"), &json!(mt), &["granular", "atomic"]));
    }
}

/// What a node under allOf/anyOf/oneOf/not must leave to the structural part.
fn check_nested(m: &Map<String, Value>, n: &Node, path: &str, ctx: Ctx, errs: &mut Vec<FieldError>) {
    if n.ty.is_some() && !ctx.type_allowed {
        errs.push(FieldError::forbidden(sub(path, "type"), "must be empty to be structural"));
    }
    let present = |k: &str| m.contains_key(k);
    if present("additionalProperties") {
        errs.push(FieldError::forbidden(sub(path, "additionalProperties"), "must be undefined to be structural"));
    }
    if present("default") {
        errs.push(FieldError::forbidden(sub(path, "default"), "must be undefined to be structural"));
    }
    for k in ["title", "description"] {
        if m.get(k).and_then(Value::as_str).is_some_and(|s| !s.is_empty()) {
            errs.push(FieldError::forbidden(sub(path, k), "must be empty to be structural"));
        }
    }
    let flags = [
        ("nullable", n.nullable),
        ("x-kubernetes-preserve-unknown-fields", n.preserve_unknown),
        ("x-kubernetes-embedded-resource", n.embedded),
        ("x-kubernetes-int-or-string", n.int_or_string),
    ];
    for (k, set) in flags {
        if set {
            errs.push(FieldError::forbidden(sub(path, k), "must be false to be structural"));
        }
    }
    if !n.list_map_keys.is_empty() {
        errs.push(FieldError::forbidden(sub(path, "x-kubernetes-list-map-keys"), "must be empty to be structural"));
    }
    if n.list_type.is_some() {
        errs.push(FieldError::forbidden(sub(path, "x-kubernetes-list-type"), "must be undefined to be structural"));
    }
    // Reasoning about metadata in value validations could restrict it in ways Kubernetes forbids.
    if n.properties.contains_key("metadata") {
        errs.push(FieldError::forbidden(key(path, "metadata"), "must not be specified in a nested context"));
    }
}

/// Every property and items schema a value validation names must exist in the structural part.
fn completeness(s: &Node, path: &str, errs: &mut Vec<FieldError>) {
    for_each_junctor(s, path, &mut |v, vpath| check_specified(v, Some(s), path, &vpath, errs));
    if let Some(items) = &s.items {
        completeness(items, &sub(path, "items"), errs);
    }
    for (k, p) in &s.properties {
        completeness(p, &key(path, k), errs);
    }
    if let Some(Additional::Schema(a)) = &s.additional {
        completeness(a, &sub(path, "additionalProperties"), errs);
    }
}

fn for_each_junctor(n: &Node, path: &str, f: &mut impl FnMut(&Node, String)) {
    for (name, list) in [("allOf", &n.all_of), ("anyOf", &n.any_of), ("oneOf", &n.one_of)] {
        for (i, v) in list.iter().enumerate() {
            f(v, format!("{path}.{name}[{i}]"));
        }
    }
    if let Some(v) = &n.not {
        f(v, sub(path, "not"));
    }
}

fn check_specified(v: &Node, s: Option<&Node>, spath: &str, vpath: &str, errs: &mut Vec<FieldError>) {
    let Some(s) = s else {
        errs.push(FieldError::required(spath, &format!("because it is defined in {vpath}")));
        return;
    };
    for_each_junctor(v, vpath, &mut |c, cpath| check_specified(c, Some(s), spath, &cpath, errs));
    if let Some(vi) = &v.items {
        check_specified(vi, s.items.as_deref(), &sub(spath, "items"), &sub(vpath, "items"), errs);
    }
    for (k, vf) in &v.properties {
        match s.properties.get(k) {
            Some(sf) => check_specified(vf, Some(sf), &key(spath, k), &key(vpath, k), errs),
            None => {
                errs.push(FieldError::required(key(spath, k), &format!("because it is defined in {}", key(vpath, k))))
            }
        }
    }
}

fn get_bool(m: &Map<String, Value>, k: &str, path: &str, errs: &mut Vec<FieldError>) -> bool {
    match m.get(k) {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(other) => {
            errs.push(FieldError::invalid(sub(path, k), other, "must be a boolean"));
            false
        }
    }
}

fn get_num(m: &Map<String, Value>, k: &str, path: &str, errs: &mut Vec<FieldError>) -> Option<f64> {
    match m.get(k) {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => n.as_f64(),
        Some(other) => {
            errs.push(FieldError::invalid(sub(path, k), other, "must be a number"));
            None
        }
    }
}

fn get_count(m: &Map<String, Value>, k: &str, path: &str, errs: &mut Vec<FieldError>) -> Option<u64> {
    match m.get(k) {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_u64() {
            Some(n) => Some(n),
            None => {
                errs.push(FieldError::invalid(sub(path, k), v, "must be a non-negative integer"));
                None
            }
        },
    }
}

fn get_str(m: &Map<String, Value>, k: &str, path: &str, errs: &mut Vec<FieldError>) -> Option<String> {
    match m.get(k) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.is_empty() => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => {
            errs.push(FieldError::invalid(sub(path, k), other, "must be a string"));
            None
        }
    }
}

fn get_str_list(m: &Map<String, Value>, k: &str, path: &str, errs: &mut Vec<FieldError>) -> Vec<String> {
    match m.get(k) {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) if a.iter().all(Value::is_string) => {
            a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect()
        }
        Some(other) => {
            errs.push(FieldError::invalid(sub(path, k), other, "must be a list of strings"));
            Vec::new()
        }
    }
}
