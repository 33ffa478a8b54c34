//! Validation of objects on create and update, reporting every problem with its field path.

use crate::{FieldError, ResourceInfo};
use serde_json::Value;

/// Validates a new object.
pub fn validate_create(res: &ResourceInfo, obj: &Value) -> Vec<FieldError> {
    let _ = (res, obj);
    Vec::new()
}

/// Validates an update of `old` to `obj` (including immutable fields).
pub fn validate_update(res: &ResourceInfo, obj: &Value, old: &Value) -> Vec<FieldError> {
    let _ = (res, obj, old);
    Vec::new()
}
