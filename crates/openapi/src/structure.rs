//! A walkable model of the shape of every served type, for strategic merge patch and
//! server-side apply.
//!
//! Built once from the k8s-openapi schemas plus the extensions table: each schema becomes a
//! shape in an arena, definitions are shared (and may be recursive), and every struct property
//! carries the list/patch extensions Kubernetes publishes for it.

use crate::extensions::{self, Ext, ListKind, MapKind};
use crate::schemas::{self, Definitions};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::OnceLock;

/// The process-wide structure of all served types (built lazily once).
pub fn structure() -> &'static Structure {
    static STRUCTURE: OnceLock<Structure> = OnceLock::new();
    STRUCTURE.get_or_init(Structure::build)
}

/// The shapes of all served kinds, reachable through [`Structure::root`].
pub struct Structure {
    shapes: Vec<Shape>,
    roots: HashMap<(String, String), usize>,
}

impl fmt::Debug for Structure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Structure")
            .field("shapes", &self.shapes.len())
            .field("roots", &self.roots.len())
            .finish()
    }
}

/// What a position in an object holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeKind {
    /// A string, number, boolean, int-or-string, quantity or time.
    Scalar,
    /// An object with named properties.
    Struct,
    /// An object with arbitrary keys and values of one type (labels, data).
    Map,
    /// An array.
    List,
    /// Anything (RawExtension, FieldsV1, unknown types).
    Untyped,
}

/// How a list merges (`x-kubernetes-list-type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListType<'a> {
    /// Replaced as a whole.
    Atomic,
    /// Unique scalars, merged as a set.
    Set,
    /// Objects identified by the values of these keys (`x-kubernetes-list-map-keys`).
    Map(&'a [&'a str]),
}

/// A position in the structure: a type plus the extensions of the property holding it.
#[derive(Clone, Copy)]
pub struct Node<'a> {
    structure: &'a Structure,
    shape: usize,
    ext: &'a Ext,
}

impl fmt::Debug for Node<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shape = self.shape();
        f.debug_struct("Node")
            .field("kind", &shape.kind)
            .field("definition", &shape.definition)
            .field("ext", self.ext)
            .finish()
    }
}

/// One type in the arena.
#[derive(Debug)]
struct Shape {
    kind: NodeKind,
    /// Definition name, for shapes that are definitions (for debugging).
    definition: Option<String>,
    /// Struct properties.
    fields: BTreeMap<String, Slot>,
    /// List item or map value type.
    element: Option<usize>,
    /// `x-kubernetes-map-type: atomic` on the type itself.
    atomic: bool,
}

/// A struct property: its type and its extensions.
#[derive(Debug)]
struct Slot {
    shape: usize,
    ext: &'static Ext,
}

const SCALAR: usize = 0;
const UNTYPED: usize = 1;

impl Structure {
    /// Builds the structure of every kind the registry serves (and every other kind this
    /// crate has a schema for, which costs little and keeps lookups total).
    pub(crate) fn build() -> Structure {
        let kinds = schemas::KINDS;
        let defs = schemas::definitions(kinds.iter());
        let mut builder = Builder { defs: &defs, shapes: Vec::new(), by_definition: HashMap::new() };
        builder.shapes.push(Shape::leaf(NodeKind::Scalar));
        builder.shapes.push(Shape::leaf(NodeKind::Untyped));
        let mut roots = HashMap::new();
        for k in kinds {
            let shape = builder.definition(&(k.definition)());
            let api_version = if k.group.is_empty() { k.version.to_string() } else { format!("{}/{}", k.group, k.version) };
            roots.insert((api_version, k.kind.to_string()), shape);
        }
        Structure { shapes: builder.shapes, roots }
    }

    /// The top-level type of objects of this apiVersion/kind ("v1","Pod"; "apps/v1","Deployment").
    pub fn root(&self, api_version: &str, kind: &str) -> Option<Node<'_>> {
        let shape = *self.roots.get(&(api_version.to_string(), kind.to_string()))?;
        Some(Node { structure: self, shape, ext: &Ext::NONE })
    }
}

impl Shape {
    fn leaf(kind: NodeKind) -> Shape {
        Shape { kind, definition: None, fields: BTreeMap::new(), element: None, atomic: false }
    }
}

/// Turns schemas into shapes, each definition once.
struct Builder<'d> {
    defs: &'d Definitions,
    shapes: Vec<Shape>,
    by_definition: HashMap<String, usize>,
}

impl Builder<'_> {
    /// The shape of a named definition; an unknown name is untyped.
    fn definition(&mut self, name: &str) -> usize {
        if let Some(&id) = self.by_definition.get(name) {
            return id;
        }
        let Some(schema) = self.defs.get(name) else {
            return UNTYPED;
        };
        // Reserve the slot first so recursive types refer back to it.
        let id = self.shapes.len();
        self.shapes.push(Shape::leaf(NodeKind::Untyped));
        self.by_definition.insert(name.to_string(), id);
        let mut shape = self.shape_of(schema, Some(name));
        shape.definition = Some(name.to_string());
        shape.atomic = extensions::atomic_type(name);
        self.shapes[id] = shape;
        id
    }

    /// The shape id of an inline schema (or the definition it references).
    fn schema(&mut self, schema: &Value) -> usize {
        if let Some(target) = reference(schema) {
            return self.definition(target);
        }
        let shape = self.shape_of(schema, None);
        match shape.kind {
            NodeKind::Scalar => SCALAR,
            NodeKind::Untyped => UNTYPED,
            _ => {
                self.shapes.push(shape);
                self.shapes.len() - 1
            }
        }
    }

    /// Classifies one schema; `definition` names it when it is a definition's own schema, so
    /// its properties can pick up their extensions.
    fn shape_of(&mut self, schema: &Value, definition: Option<&str>) -> Shape {
        if let Some(target) = reference(schema) {
            // A definition that is only a reference: share the target's shape by copying its kind.
            let id = self.definition(target);
            return self.alias(id);
        }
        if schema.get("x-kubernetes-int-or-string").and_then(Value::as_bool) == Some(true) {
            return Shape::leaf(NodeKind::Scalar);
        }
        match schema.get("type").and_then(Value::as_str) {
            Some("string" | "integer" | "number" | "boolean") => Shape::leaf(NodeKind::Scalar),
            Some("array") => {
                let element = schema.get("items").map_or(UNTYPED, |items| self.schema(items));
                Shape { element: Some(element), ..Shape::leaf(NodeKind::List) }
            }
            Some("object") => {
                if let Some(props) = schema.get("properties").and_then(Value::as_object).filter(|p| !p.is_empty()) {
                    let mut fields = BTreeMap::new();
                    for (name, prop) in props {
                        let shape = self.schema(prop);
                        let ext = definition.and_then(|d| extensions::property(d, name)).unwrap_or(&Ext::NONE);
                        fields.insert(name.clone(), Slot { shape, ext });
                    }
                    Shape { fields, ..Shape::leaf(NodeKind::Struct) }
                } else if let Some(values) = schema.get("additionalProperties").filter(|v| v.is_object()) {
                    let element = self.schema(values);
                    Shape { element: Some(element), ..Shape::leaf(NodeKind::Map) }
                } else {
                    Shape::leaf(NodeKind::Untyped)
                }
            }
            _ => Shape::leaf(NodeKind::Untyped),
        }
    }

    /// A leaf shape standing for another (only for definitions that are bare references,
    /// which k8s-openapi does not produce; kept so such a schema degrades gracefully).
    fn alias(&self, id: usize) -> Shape {
        match self.shapes[id].kind {
            NodeKind::Scalar => Shape::leaf(NodeKind::Scalar),
            _ => Shape::leaf(NodeKind::Untyped),
        }
    }
}

/// The definition a `{"$ref": ...}` schema points at.
fn reference(schema: &Value) -> Option<&str> {
    schema.get("$ref").and_then(Value::as_str).and_then(schemas::ref_target)
}

impl<'a> Node<'a> {
    fn shape(&self) -> &'a Shape {
        &self.structure.shapes[self.shape]
    }

    fn at(&self, shape: usize, ext: &'a Ext) -> Node<'a> {
        Node { structure: self.structure, shape, ext }
    }

    /// What this position holds.
    pub fn kind(&self) -> NodeKind {
        self.shape().kind
    }

    /// Struct: the named property; Map: the value type for any key; else None.
    pub fn field(&self, name: &str) -> Option<Node<'a>> {
        let shape = self.shape();
        match shape.kind {
            NodeKind::Struct => shape.fields.get(name).map(|slot| self.at(slot.shape, slot.ext)),
            NodeKind::Map => shape.element.map(|e| self.at(e, &Ext::NONE)),
            _ => None,
        }
    }

    /// List: the element type.
    pub fn item(&self) -> Option<Node<'a>> {
        let shape = self.shape();
        match shape.kind {
            NodeKind::List => shape.element.map(|e| self.at(e, &Ext::NONE)),
            _ => None,
        }
    }

    /// For a List node: `x-kubernetes-list-type` (with its `list-map-keys`); Atomic by default.
    pub fn list_type(&self) -> ListType<'a> {
        match self.ext.list {
            ListKind::Set => ListType::Set,
            ListKind::Map => ListType::Map(self.ext.keys),
            ListKind::Atomic | ListKind::Unset => ListType::Atomic,
        }
    }

    /// `x-kubernetes-patch-merge-key` of this list field (strategic merge patch).
    pub fn patch_merge_key(&self) -> Option<&'a str> {
        self.ext.merge_key
    }

    /// `x-kubernetes-patch-strategy`: "merge", "retainKeys", "merge,retainKeys" or "replace".
    pub fn patch_strategy(&self) -> Option<&'a str> {
        self.ext.strategy
    }

    /// Whether this Struct/Map is replaced as a whole (`x-kubernetes-map-type: atomic`), either
    /// by its type or by the property holding it.
    pub fn is_atomic(&self) -> bool {
        match self.ext.map {
            MapKind::Atomic => true,
            MapKind::Granular => false,
            MapKind::Unset => self.shape().atomic,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path<'a>(mut node: Node<'a>, fields: &[&str]) -> Node<'a> {
        for f in fields {
            node = match *f {
                "[]" => node.item().unwrap_or_else(|| panic!("no item at {f}")),
                _ => node.field(f).unwrap_or_else(|| panic!("no field {f}")),
            };
        }
        node
    }

    #[test]
    fn deployment_containers_merge_by_name() {
        let d = structure().root("apps/v1", "Deployment").unwrap();
        assert_eq!(d.kind(), NodeKind::Struct);
        let containers = path(d, &["spec", "template", "spec", "containers"]);
        assert_eq!(containers.kind(), NodeKind::List);
        assert_eq!(containers.list_type(), ListType::Map(&["name"]));
        assert_eq!(containers.patch_merge_key(), Some("name"));
        assert_eq!(containers.patch_strategy(), Some("merge"));
        let ports = path(containers, &["[]", "ports"]);
        assert_eq!(ports.list_type(), ListType::Map(&["containerPort", "protocol"]));
        assert_eq!(ports.patch_merge_key(), Some("containerPort"));
        assert_eq!(path(ports, &["[]", "containerPort"]).kind(), NodeKind::Scalar);
        assert_eq!(path(d, &["spec", "replicas"]).kind(), NodeKind::Scalar);
        assert_eq!(path(d, &["spec", "strategy"]).patch_strategy(), Some("retainKeys"));
        let volumes = path(d, &["spec", "template", "spec", "volumes"]);
        assert_eq!(volumes.patch_strategy(), Some("merge,retainKeys"));
    }

    #[test]
    fn metadata_maps_and_lists() {
        let pod = structure().root("v1", "Pod").unwrap();
        let labels = path(pod, &["metadata", "labels"]);
        assert_eq!(labels.kind(), NodeKind::Map);
        assert!(!labels.is_atomic());
        assert_eq!(labels.field("app").unwrap().kind(), NodeKind::Scalar);
        let owners = path(pod, &["metadata", "ownerReferences"]);
        assert_eq!(owners.list_type(), ListType::Map(&["uid"]));
        assert_eq!(owners.patch_merge_key(), Some("uid"));
        assert!(owners.item().unwrap().is_atomic());
        let finalizers = path(pod, &["metadata", "finalizers"]);
        assert_eq!(finalizers.list_type(), ListType::Set);
        assert_eq!(finalizers.patch_strategy(), Some("merge"));
        assert_eq!(path(pod, &["metadata", "managedFields", "[]", "fieldsV1"]).kind(), NodeKind::Untyped);
        assert_eq!(path(pod, &["metadata", "creationTimestamp"]).kind(), NodeKind::Scalar);
        assert!(path(pod, &["spec", "nodeSelector"]).is_atomic());
        assert_eq!(path(pod, &["spec", "tolerations"]).list_type(), ListType::Atomic);
        assert_eq!(path(pod, &["spec", "containers", "[]", "command"]).list_type(), ListType::Atomic);
        assert_eq!(
            path(pod, &["spec", "containers", "[]", "resources", "limits", "cpu"]).kind(),
            NodeKind::Scalar
        );
        assert_eq!(path(pod, &["status", "conditions"]).patch_merge_key(), Some("type"));
    }

    #[test]
    fn other_kinds() {
        let s = structure();
        let cm = s.root("v1", "ConfigMap").unwrap();
        assert_eq!(cm.field("data").unwrap().kind(), NodeKind::Map);
        let svc = s.root("v1", "Service").unwrap();
        let ports = path(svc, &["spec", "ports"]);
        assert_eq!(ports.list_type(), ListType::Map(&["port", "protocol"]));
        assert_eq!(ports.patch_merge_key(), Some("port"));
        assert_eq!(path(svc, &["spec", "ports", "[]", "targetPort"]).kind(), NodeKind::Scalar);
        let rev = s.root("apps/v1", "ControllerRevision").unwrap();
        assert_eq!(rev.field("data").unwrap().kind(), NodeKind::Untyped);
        let sel = path(s.root("apps/v1", "Deployment").unwrap(), &["spec", "selector"]);
        assert_eq!(sel.kind(), NodeKind::Struct);
        assert!(sel.is_atomic());
        let pv = s.root("v1", "PersistentVolume").unwrap();
        assert!(!path(pv, &["spec", "claimRef"]).is_atomic());
        let pdb = s.root("policy/v1", "PodDisruptionBudget").unwrap();
        assert_eq!(path(pdb, &["spec", "selector"]).patch_strategy(), Some("replace"));
        let slice = s.root("discovery.k8s.io/v1", "EndpointSlice").unwrap();
        assert!(path(slice, &["ports", "[]"]).is_atomic());
        assert_eq!(path(slice, &["endpoints", "[]", "addresses"]).list_type(), ListType::Set);
        let job = s.root("batch/v1", "Job").unwrap();
        let conditions = path(job, &["status", "conditions"]);
        assert_eq!((conditions.list_type(), conditions.patch_merge_key()), (ListType::Atomic, Some("type")));
        assert!(s.root("v1", "Nope").is_none());
        assert!(s.root("apps/v1", "Pod").is_none());
        for r in rkube_api::registry::RESOURCES {
            assert!(s.root(&r.api_version(), r.kind).is_some(), "{} {}", r.api_version(), r.kind);
        }
    }
}
