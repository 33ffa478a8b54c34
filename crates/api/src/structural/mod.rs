//! Structural schemas of CustomResourceDefinitions (apiextensions.k8s.io/v1): parsing a version's
//! `openAPIV3Schema`, rejecting schemas that are not structural in Kubernetes' sense, and the
//! three things the API server does with one on every write of a custom object: prune unknown
//! fields, apply defaults, validate.
//!
//! `x-kubernetes-validations` (CEL rules) are compiled with the schema and evaluated on
//! validation; see [`cel`] for what of Kubernetes' CEL environment is supported.

mod cel;
mod parse;
mod prune;
mod validate;

#[cfg(test)]
mod cel_tests;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use regex::Regex;
use serde_json::Value;

use crate::FieldError;

/// A CRD version's openAPIV3Schema, checked and ready to prune, default and validate objects.
#[derive(Debug, Clone)]
pub struct Structural {
    root: Node,
}

/// How server-side apply merges the node at a path: the `x-kubernetes-list-type`,
/// `x-kubernetes-list-map-keys` and `x-kubernetes-map-type` extensions, as written in the schema
/// (absent extensions are `None`/empty; Kubernetes' defaults are "atomic" lists and "granular" maps).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListInfo {
    /// `x-kubernetes-list-type`: "atomic", "set" or "map".
    pub list_type: Option<String>,
    /// `x-kubernetes-list-map-keys`: the fields identifying an element of a "map" list.
    pub list_map_keys: Vec<String>,
    /// `x-kubernetes-map-type`: "granular" or "atomic".
    pub map_type: Option<String>,
}

/// What `additionalProperties` says.
#[derive(Debug, Clone)]
enum Additional {
    /// `true` or `false`.
    Allowed(bool),
    /// A schema every unlisted value must follow.
    Schema(Box<Node>),
}

/// One schema node: the structural part plus its value validations.
#[derive(Debug, Clone, Default)]
struct Node {
    ty: Option<String>,
    nullable: bool,
    properties: BTreeMap<String, Node>,
    additional: Option<Additional>,
    items: Option<Box<Node>>,
    default: Option<Value>,
    preserve_unknown: bool,
    embedded: bool,
    int_or_string: bool,
    list_type: Option<String>,
    list_map_keys: Vec<String>,
    map_type: Option<String>,
    enum_values: Option<Vec<Value>>,
    minimum: Option<f64>,
    maximum: Option<f64>,
    exclusive_minimum: bool,
    exclusive_maximum: bool,
    multiple_of: Option<f64>,
    min_length: Option<u64>,
    max_length: Option<u64>,
    pattern: Option<(String, Regex)>,
    format: Option<String>,
    min_items: Option<u64>,
    max_items: Option<u64>,
    unique_items: bool,
    min_properties: Option<u64>,
    max_properties: Option<u64>,
    required: Vec<String>,
    all_of: Vec<Node>,
    any_of: Vec<Node>,
    one_of: Vec<Node>,
    not: Option<Box<Node>>,
    /// Compiled `x-kubernetes-validations`.
    rules: Vec<cel::Rule>,
}

impl Node {
    /// The schema values under `key` of an object follow, if any.
    fn field(&self, key: &str) -> Option<&Node> {
        match self.properties.get(key) {
            Some(n) => Some(n),
            None => match &self.additional {
                Some(Additional::Schema(n)) => Some(n),
                _ => None,
            },
        }
    }

    /// The node at a path of field names, "[]" addressing array items.
    fn at(&self, path: &[&str]) -> Option<&Node> {
        let mut node = self;
        for seg in path {
            node = if *seg == "[]" { node.items.as_deref()? } else { node.field(seg)? };
        }
        Some(node)
    }
}

impl Structural {
    /// Parses `schema` (the JSON of openAPIV3Schema). `path` is the field path of the schema in
    /// the CRD, e.g. "spec.versions[0].schema.openAPIV3Schema", used in the returned errors.
    /// Errors when the schema is not structural in Kubernetes' sense.
    pub fn new(schema: &Value, path: &str) -> Result<Structural, Vec<FieldError>> {
        let mut errs = Vec::new();
        let root = parse::parse(schema, path, &mut errs);
        parse::check_structural(&root, path, &mut errs);
        if errs.is_empty() {
            Ok(Structural { root })
        } else {
            // Kubernetes sorts the violations so the message is stable across calls.
            errs.sort_by(|a, b| (&a.field, &a.message).cmp(&(&b.field, &b.message)));
            errs.dedup();
            Err(errs)
        }
    }

    /// Removes fields the schema does not know (honouring x-kubernetes-preserve-unknown-fields,
    /// additionalProperties, x-kubernetes-embedded-resource); returns the removed fields' paths
    /// as Kubernetes' "unknown field" warnings word them ("spec.foo", "spec.items[0].bar").
    /// At the root, apiVersion, kind and metadata are always kept and metadata is not pruned.
    /// The paths come sorted.
    pub fn prune(&self, obj: &mut Value) -> Vec<String> {
        let mut pruned = Vec::new();
        prune::prune(&self.root, obj, "", true, &mut pruned);
        pruned.sort();
        pruned
    }

    /// Applies `default`s (also inside array items and additionalProperties values), after
    /// dropping nulls where the schema is not nullable, as Kubernetes does.
    pub fn apply_defaults(&self, obj: &mut Value) {
        prune::drop_nulls(&self.root, obj, true);
        prune::default(&self.root, obj, true);
    }

    /// Validates `obj` (not its root metadata) against the schema, as on create; errors carry
    /// Kubernetes' field paths and messages. CEL rules are evaluated, except transition rules
    /// (those using `oldSelf`, unless they set `optionalOldSelf`).
    pub fn validate(&self, obj: &Value) -> Vec<FieldError> {
        let mut errs = Vec::new();
        validate::validate(&self.root, obj, "", true, &mut errs);
        cel::evaluate(&self.root, obj, None, "", false, &mut errs);
        errs
    }

    /// Validates `obj` replacing `old`, as on update: like [`Structural::validate`], plus the
    /// transition rules, with `oldSelf` bound wherever `old` has a value at the same path
    /// (list-type map items correlated by their keys; other list items are not correlated).
    pub fn validate_update(&self, obj: &Value, old: &Value) -> Vec<FieldError> {
        let mut errs = Vec::new();
        validate::validate(&self.root, obj, "", true, &mut errs);
        cel::evaluate(&self.root, obj, Some(old), "", true, &mut errs);
        errs
    }

    /// The `type` of the schema at a field path (e.g. ["spec", "replicas"]; "[]" addresses
    /// array items), for the scale subresource and printer columns.
    pub fn type_at(&self, path: &[&str]) -> Option<&str> {
        self.root.at(path)?.ty.as_deref()
    }

    /// The list/map extensions of the node at `path` (field names; array items addressed by
    /// the element "[]"), for server-side apply; `None` when the path leads nowhere.
    pub fn list_info(&self, path: &[&str]) -> Option<ListInfo> {
        let node = self.root.at(path)?;
        Some(ListInfo {
            list_type: node.list_type.clone(),
            list_map_keys: node.list_map_keys.clone(),
            map_type: node.map_type.clone(),
        })
    }
}

/// A position in a structural schema, for walking it beside an object (server-side apply).
#[derive(Debug, Clone, Copy)]
pub struct SchemaRef<'a>(&'a Node);

impl Structural {
    /// The root of the schema.
    pub fn root(&self) -> SchemaRef<'_> {
        SchemaRef(&self.root)
    }
}

impl<'a> SchemaRef<'a> {
    /// `type`, when the node declares one.
    pub fn ty(self) -> Option<&'a str> {
        self.0.ty.as_deref()
    }

    /// The schema of the value under `key` of an object (a property or additionalProperties).
    pub fn field(self, key: &str) -> Option<SchemaRef<'a>> {
        self.0.field(key).map(SchemaRef)
    }

    /// The schema of the items of an array.
    pub fn items(self) -> Option<SchemaRef<'a>> {
        self.0.items.as_deref().map(SchemaRef)
    }

    /// Whether the object declares properties (a struct rather than a map).
    pub fn has_properties(self) -> bool {
        !self.0.properties.is_empty()
    }

    /// `x-kubernetes-list-type`.
    pub fn list_type(self) -> Option<&'a str> {
        self.0.list_type.as_deref()
    }

    /// `x-kubernetes-list-map-keys`.
    pub fn list_map_keys(self) -> &'a [String] {
        &self.0.list_map_keys
    }

    /// `x-kubernetes-map-type`.
    pub fn map_type(self) -> Option<&'a str> {
        self.0.map_type.as_deref()
    }
}

/// `parent.key`, or `key` at the root.
fn child(path: &str, key: &str) -> String {
    if path.is_empty() { key.to_string() } else { format!("{path}.{key}") }
}

/// `parent[i]`.
fn index(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}
