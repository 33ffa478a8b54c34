//! The Kubernetes API model rkube serves, without I/O: the registry of resources (group,
//! version, kind, scope, subresources), Status errors, label and field selectors, and the
//! per-kind decoding, defaulting and validation every write goes through.

pub mod conversion;
pub mod cron;
pub mod custom;
pub mod duration;
pub mod error;
pub mod registry;
pub mod schema;
pub mod selector;
pub mod structural;
pub mod validation;

pub use error::{ApiError, FieldError, Target};
pub use registry::ResourceInfo;
pub use selector::{FieldSelector, LabelSelector};
