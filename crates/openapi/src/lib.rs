//! OpenAPI v2/v3 documents of the served types, and the structure (list keys, patch strategies) merge and apply need.
//!
//! Shapes come from k8s-openapi's JSON schemas; the list/map/patch extensions Kubernetes
//! publishes (and k8s-openapi omits) come from this crate's own table in `extensions`.

mod extensions;
#[allow(dead_code)] // until the documents use every name
mod schemas;
pub mod structure;

pub use structure::{ListType, Node, NodeKind, Structure, structure};
