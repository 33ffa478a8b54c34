//! OpenAPI v2/v3 documents of the served types, and the structure (list keys, patch strategies) merge and apply need.
//!
//! Shapes come from k8s-openapi's JSON schemas; the list/map/patch extensions Kubernetes
//! publishes (and k8s-openapi omits) come from this crate's own table in `extensions`. Both
//! [`structure()`] and [`Documents`] are built once and then only read.

mod catalog;
mod documents;
mod extensions;
mod hash;
mod paths;
mod schemas;
pub mod structure;
mod v2;
mod v3;

pub use documents::Documents;
pub use structure::{ListType, Node, NodeKind, Structure, structure};

/// The Kubernetes version the documents claim (the API level k8s-openapi's schemas describe).
const KUBERNETES_VERSION: &str = "v1.33.0";
