//! Ordinary writes (create, update, non-apply patch): the writer takes the fields it changed.

use crate::error::FieldManagerError;
use crate::managed::{self, Entry};
use crate::schema::Schema;
use crate::{Manager, Operation, meta, sets};
use jiff::Timestamp;
use serde_json::{Map, Value};

/// See [`crate::update`].
pub(crate) fn update(
    old: Option<&Value>,
    mut new: Value,
    manager: &Manager<'_>,
    now: Timestamp,
) -> Result<Value, FieldManagerError> {
    if !new.is_object() {
        return Err(FieldManagerError::invalid("", "the object must be a JSON object"));
    }
    let sent = meta::take_managed_fields(&mut new);
    let (old_body, stored) = match old {
        Some(old) => {
            let mut body = old.clone();
            let stored = meta::take_managed_fields(&mut body);
            (body, stored)
        }
        None => (Value::Object(Map::new()), None),
    };
    // Undecodable stored entries are reset, as Kubernetes does rather than failing a write.
    let stored_entries = managed::decode(stored.as_ref()).ok();
    // Entries the client sent replace the stored ones (that is how clients fix or reset
    // managedFields, `[{}]` clearing them); an empty or undecodable list means the client
    // doesn't know about them. Subresource writes can't touch them.
    let sent_entries = if manager.subresource.is_empty() {
        sent.as_ref().and_then(|s| managed::decode(Some(s)).ok()).filter(|e| !e.is_empty())
    } else {
        None
    };
    let overridden = sent_entries.is_some();
    let initial = stored_entries.as_deref().filter(|_| !overridden).map(managed::encode);
    let mut entries = sent_entries.or(stored_entries).unwrap_or_default();
    if old.is_some() && entries.is_empty() {
        // Kubernetes doesn't start tracking an existing object on update (only apply does).
        return Ok(new);
    }

    let custom = crate::schema::custom_version(&new);
    let schema = Schema::of(&new, custom.as_deref());
    let mut diff = sets::compare(&old_body, &new, schema, old.is_none());
    diff.for_each_set(meta::strip);
    if !diff.is_empty() {
        let mut changed = diff.added;
        changed.union_with(&diff.modified);
        let is_mine = |e: &Entry| e.is(manager.name, Operation::Update, manager.api_version, manager.subresource);
        for entry in entries.iter_mut().filter(|e| !is_mine(e)) {
            entry.fields.subtract(&changed);
            entry.fields.subtract(&diff.removed);
        }
        match entries.iter_mut().find(|e| is_mine(e)) {
            Some(entry) => {
                entry.fields.union_with(&changed);
                entry.fields.subtract(&diff.removed);
                entry.time = Some(managed::format_time(now));
            }
            None => entries.push(Entry::new(
                manager.name,
                Operation::Update,
                manager.api_version,
                manager.subresource,
                changed,
                now,
            )),
        }
    }
    managed::cap_updates(&mut entries);
    let encoded = managed::encode(&entries);
    if overridden {
        validate_operations(&encoded)?;
    }
    managed::store(&mut new, encoded, stored, initial.as_deref());
    Ok(new)
}

/// Client-written entries must name a real operation (Kubernetes' validation of
/// `metadata.managedFields`); the reset entry `{}` is gone by now, having no fields.
fn validate_operations(encoded: &[Value]) -> Result<(), FieldManagerError> {
    for (i, entry) in encoded.iter().enumerate() {
        let operation = entry.get("operation").and_then(Value::as_str).unwrap_or_default();
        if operation != "Apply" && operation != "Update" {
            return Err(FieldManagerError::invalid(
                format!(".metadata.managedFields[{i}].operation"),
                format!("Unsupported value: {operation:?}: supported values: \"Apply\", \"Update\""),
            ));
        }
    }
    Ok(())
}
