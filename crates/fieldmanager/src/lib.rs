//! Server-side apply: managedFields bookkeeping, field sets (fieldsV1), apply merges and conflicts.
//!
//! Works on objects in their Kubernetes JSON form, with merge semantics (list-maps, sets,
//! atomic values) from rkube-openapi's structure. The API server owns everything around it:
//! defaulting, validation, preconditions, status resets, storage and resourceVersions.

mod apply;
mod error;
mod fieldset;
mod lastapplied;
mod managed;
mod manager;
mod merge;
mod meta;
mod schema;
mod sets;
mod update;

pub use error::{Conflict, FieldManagerError};
pub use fieldset::FieldSet;
pub use manager::{Manager, Operation, default_manager_name};

use jiff::Timestamp;
use serde_json::Value;

/// The result of an apply.
#[derive(Clone, Debug, PartialEq)]
pub struct Applied {
    /// The object to store: live with the configuration merged in, fields the applier stopped
    /// applying removed, and managedFields updated. Byte-identical to live when the apply
    /// changes nothing (same values, same ownership), so re-applying a file is a no-op.
    pub object: Value,
}

/// Server-side apply of `config` (the request's applied configuration, parsed from YAML or
/// JSON) by `manager` onto `live` (`None` when the object doesn't exist yet: apply creates
/// it). `force` is `?force=true`: conflicting fields are taken from their other owners
/// instead of failing.
///
/// The configuration must be an object with apiVersion, kind and metadata.name matching
/// live, and without managedFields. Config values win; the applier owns exactly what the
/// config sets (apart from identity and server-set metadata); fields it applied before and
/// no longer does are removed unless another manager owns them too. A config `null`
/// removes the field. Changing a value another manager owns is a conflict.
pub fn apply(
    live: Option<&Value>,
    config: &Value,
    manager: &Manager<'_>,
    force: bool,
    now: Timestamp,
) -> Result<Applied, FieldManagerError> {
    apply::apply(live, config, manager, force, now)
}

/// Records an ordinary write (create, update, non-apply patch) by `manager` as an Update:
/// the fields that differ between `old` (`None` on create) and `new` become the manager's
/// and leave every other manager's set, and the returned object is `new` with its
/// managedFields updated.
///
/// managedFields in `new` as the client sent them replace the stored ones when they are a
/// non-empty, decodable list on the main resource (clients reset ownership with `[{}]`);
/// an empty list or none keeps the stored ones, so clients unaware of the field can't wipe
/// it (Kubernetes' documented behaviour). As in Kubernetes, an existing object without
/// managedFields isn't tracked by updates until something applies to it, and undecodable
/// stored managedFields are reset rather than failing the write.
pub fn update(old: Option<&Value>, new: Value, manager: &Manager<'_>, now: Timestamp) -> Result<Value, FieldManagerError> {
    update::update(old, new, manager, now)
}
