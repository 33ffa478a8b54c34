//! Server-side apply: merge the applied configuration, prune what the applier stopped
//! applying, check conflicts, and record ownership.

use crate::error::{Conflict, FieldManagerError};
use crate::fieldset::FieldSet;
use crate::managed::{self, Entry};
use crate::schema::Schema;
use crate::{Applied, Manager, Operation, lastapplied, merge, meta, sets};
use jiff::Timestamp;
use serde_json::{Map, Value};

/// See [`crate::apply`].
pub(crate) fn apply(
    live: Option<&Value>,
    config: &Value,
    manager: &Manager<'_>,
    force: bool,
    now: Timestamp,
) -> Result<Applied, FieldManagerError> {
    validate(config, live)?;
    let custom = crate::schema::custom_version(config);
    let schema = Schema::of(config, custom.as_deref());
    let (live_body, original, mut entries) = match live {
        Some(live) => {
            let mut body = live.clone();
            let original = meta::take_managed_fields(&mut body);
            let entries = managed::decode(original.as_ref()).map_err(FieldManagerError::InvalidManagedFields)?;
            (body, original, entries)
        }
        None => (Value::Object(Map::new()), None, Vec::new()),
    };
    let initial = managed::encode(&entries);

    let mut applied_set = sets::applied(config, schema)?;
    meta::strip(&mut applied_set);
    let mut result = merge::merge(&live_body, config, schema)?;
    if live.is_some() {
        meta::restore_server_metadata(&mut result, &live_body);
    }

    let mine =
        entries.iter().position(|e| e.is(manager.name, Operation::Apply, manager.api_version, manager.subresource));
    prune(&mut result, &entries, mine, &applied_set);

    // What this apply changes; fields set to null count as changed even though they vanish.
    let mut diff = sets::compare(&live_body, &result, schema, false);
    diff.for_each_set(meta::strip);
    let mut changed = diff.added.clone();
    changed.union_with(&diff.modified);
    changed.union_with(&diff.removed.intersection(&applied_set));

    let conflicts: Vec<Conflict> = others(&entries, mine).flat_map(|e| e.conflicts(&changed)).collect();
    if !conflicts.is_empty() && !force {
        check_conflicts(conflicts, live.map(|_| &live_body), manager, schema)?;
    }

    for (i, entry) in entries.iter_mut().enumerate() {
        if Some(i) != mine {
            entry.fields.subtract(&changed);
            entry.fields.subtract(&diff.removed);
        }
    }
    // Ignoring identity and server-set fields, which a stored object may spell differently.
    let object_changed = !diff.is_empty();
    match mine {
        Some(i) => {
            let entry = &mut entries[i];
            if object_changed || entry.fields != applied_set {
                entry.time = Some(managed::format_time(now));
            }
            entry.fields = applied_set;
            entry.api_version = manager.api_version.to_string();
        }
        None => entries.push(Entry::new(
            manager.name,
            Operation::Apply,
            manager.api_version,
            manager.subresource,
            applied_set,
            now,
        )),
    }
    managed::cap_updates(&mut entries);

    if manager.name == lastapplied::KUBECTL {
        lastapplied::sync(&mut result, &live_body, config);
    }
    managed::store(&mut result, managed::encode(&entries), original, Some(&initial));
    Ok(Applied { object: result })
}

/// The entries other than the applier's own.
fn others(entries: &[Entry], mine: Option<usize>) -> impl Iterator<Item = &Entry> {
    entries.iter().enumerate().filter(move |(i, _)| Some(*i) != mine).map(|(_, e)| e)
}

/// Removes from `result` what the applier applied last time but not now, unless some other
/// manager owns that exact path too (then the applier just stops owning it).
fn prune(result: &mut Value, entries: &[Entry], mine: Option<usize>, applied_set: &FieldSet) {
    let Some(mine) = mine else { return };
    let mut stale = entries[mine].fields.difference(applied_set);
    for entry in others(entries, Some(mine)) {
        stale.subtract(&entry.fields);
    }
    merge::remove(result, &stale);
}

/// Fails with the conflicts, except that the "kubectl" applier takes over, as if forced, the
/// fields the client-side apply annotation still describes (see [`lastapplied`]).
fn check_conflicts(
    mut conflicts: Vec<Conflict>,
    live: Option<&Value>,
    manager: &Manager<'_>,
    schema: Schema<'_>,
) -> Result<(), FieldManagerError> {
    if manager.name == lastapplied::KUBECTL
        && let Some(allowed) = live.and_then(|l| lastapplied::allowed_conflicts(l, schema))
    {
        let allowed_paths = allowed.paths();
        conflicts.retain(|c| !allowed_paths.contains(&c.field));
        if conflicts.is_empty() {
            return Ok(());
        }
    }
    // Grouped by manager in Kubernetes' order (its identifier), paths in set order.
    conflicts.sort_by_cached_key(|c| managed::identifier(&c.manager, &c.operation, &c.api_version, &c.subresource));
    Err(FieldManagerError::Conflicts(conflicts))
}

/// Checks the configuration is an object naming the same object as `live`.
fn validate(config: &Value, live: Option<&Value>) -> Result<(), FieldManagerError> {
    let Value::Object(fields) = config else {
        return Err(FieldManagerError::invalid("", "the applied configuration must be an object"));
    };
    let text =
        |object: &Value, pointer: &str| object.pointer(pointer).and_then(Value::as_str).unwrap_or_default().to_string();
    for (field, what) in [("apiVersion", "version"), ("kind", "kind")] {
        let given = text(config, &format!("/{field}"));
        if given.is_empty() {
            return Err(FieldManagerError::invalid(format!(".{field}"), format!("{field} must be specified")));
        }
        if let Some(live) = live {
            let expected = text(live, &format!("/{field}"));
            if !expected.is_empty() && expected != given {
                return Err(FieldManagerError::invalid(
                    format!(".{field}"),
                    format!(
                        "Incorrect {what} specified in apply patch. Specified patch {what}: {given}, expected: {expected}"
                    ),
                ));
            }
        }
    }
    let Some(Value::Object(metadata)) = fields.get("metadata") else {
        return Err(FieldManagerError::invalid(".metadata", "metadata must be an object with a name"));
    };
    if metadata.get("managedFields").is_some_and(|m| !m.is_null()) {
        return Err(FieldManagerError::invalid(".metadata.managedFields", "metadata.managedFields must be nil"));
    }
    let name = text(config, "/metadata/name");
    if name.is_empty() {
        return Err(FieldManagerError::invalid(".metadata.name", "name is required"));
    }
    if let Some(live) = live {
        for field in ["name", "namespace"] {
            let (given, existing) =
                (text(config, &format!("/metadata/{field}")), text(live, &format!("/metadata/{field}")));
            if !given.is_empty() && !existing.is_empty() && given != existing {
                return Err(FieldManagerError::invalid(
                    format!(".metadata.{field}"),
                    format!(
                        "the {field} of the applied configuration ({given}) does not match the {field} of the existing object ({existing})"
                    ),
                ));
            }
        }
    }
    Ok(())
}
