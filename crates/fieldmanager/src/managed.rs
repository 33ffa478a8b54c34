//! `metadata.managedFields`: decoding entries, identifying managers, and encoding them back
//! in Kubernetes' order.

use crate::Operation;
use crate::error::{Conflict, quote};
use crate::fieldset::FieldSet;
use jiff::Timestamp;
use serde_json::{Map, Value};

/// Kubernetes keeps at most this many Update entries; older ones merge into a bucket.
const MAX_UPDATE_MANAGERS: usize = 10;
/// The bucket's manager name.
const ANCIENT_CHANGES: &str = "ancient-changes";

/// One managedFields entry.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Entry {
    pub manager: String,
    /// "Apply", "Update", or whatever a client wrote (kept so it can be rejected or dropped).
    pub operation: String,
    pub api_version: String,
    pub subresource: String,
    /// Kept as written, so untouched entries re-encode byte for byte.
    pub time: Option<String>,
    pub fields: FieldSet,
}

impl Entry {
    /// A fresh entry for a write.
    pub(crate) fn new(manager: &str, operation: Operation, api_version: &str, subresource: &str, fields: FieldSet, now: Timestamp) -> Entry {
        Entry {
            manager: manager.to_string(),
            operation: operation.as_str().to_string(),
            api_version: api_version.to_string(),
            subresource: subresource.to_string(),
            time: Some(format_time(now)),
            fields,
        }
    }

    /// Whether this entry is the one a write by `manager` with `operation` records into:
    /// appliers are one entry per name and subresource whatever apiVersion they use;
    /// updaters one per name, apiVersion and subresource.
    pub(crate) fn is(&self, manager: &str, operation: Operation, api_version: &str, subresource: &str) -> bool {
        self.manager == manager
            && self.operation == operation.as_str()
            && self.subresource == subresource
            && (operation == Operation::Apply || self.api_version == api_version)
    }

    fn same_manager(&self, other: &Entry) -> bool {
        let operation = if other.operation == "Apply" { Operation::Apply } else { Operation::Update };
        self.operation == other.operation && self.is(&other.manager, operation, &other.api_version, &other.subresource)
    }

    /// Kubernetes' manager identifier (the entry without fields and time, as JSON, apiVersion
    /// dropped for appliers): conflicts are grouped and ordered by it.
    pub(crate) fn identifier(&self) -> String {
        identifier(&self.manager, &self.operation, &self.api_version, &self.subresource)
    }

    /// The conflicts of this entry's fields with `changed`, in path order.
    pub(crate) fn conflicts(&self, changed: &FieldSet) -> Vec<Conflict> {
        self.fields
            .intersection(changed)
            .paths()
            .into_iter()
            .map(|field| Conflict {
                manager: self.manager.clone(),
                operation: self.operation.clone(),
                api_version: self.api_version.clone(),
                subresource: self.subresource.clone(),
                field,
            })
            .collect()
    }

    fn sort_time(&self) -> Timestamp {
        self.time.as_deref().and_then(|t| t.parse().ok()).unwrap_or(Timestamp::MIN)
    }

    fn encode(&self) -> Value {
        let mut out = Map::new();
        let mut put = |key: &str, value: &str| {
            if !value.is_empty() {
                out.insert(key.to_string(), Value::String(value.to_string()));
            }
        };
        put("manager", &self.manager);
        put("operation", &self.operation);
        put("apiVersion", &self.api_version);
        put("time", self.time.as_deref().unwrap_or_default());
        put("fieldsType", "FieldsV1");
        put("subresource", &self.subresource);
        out.insert("fieldsV1".to_string(), self.fields.to_fields_v1());
        Value::Object(out)
    }
}

/// See [`Entry::identifier`].
pub(crate) fn identifier(manager: &str, operation: &str, api_version: &str, subresource: &str) -> String {
    let mut out = format!("{{\"manager\":{}", quote(manager));
    if !operation.is_empty() {
        out.push_str(&format!(",\"operation\":{}", quote(operation)));
    }
    if operation != "Apply" && !api_version.is_empty() {
        out.push_str(&format!(",\"apiVersion\":{}", quote(api_version)));
    }
    if !subresource.is_empty() {
        out.push_str(&format!(",\"subresource\":{}", quote(subresource)));
    }
    out.push('}');
    out
}

/// RFC 3339 at second precision, as Kubernetes writes managedFields times.
pub(crate) fn format_time(now: Timestamp) -> String {
    now.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Decodes managedFields (`None`/`null` is no entries). Entries naming the same manager
/// are merged.
pub(crate) fn decode(value: Option<&Value>) -> Result<Vec<Entry>, String> {
    let items = match value {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(other) => return Err(format!("managedFields must be a list, got {other}")),
    };
    let mut entries: Vec<Entry> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let entry = decode_entry(item).map_err(|e| format!("entry {i}: {e}"))?;
        match entries.iter_mut().find(|e| e.same_manager(&entry)) {
            Some(existing) => {
                existing.fields.union_with(&entry.fields);
                if entry.time.is_some() {
                    existing.time = entry.time;
                }
            }
            None => entries.push(entry),
        }
    }
    Ok(entries)
}

fn decode_entry(item: &Value) -> Result<Entry, String> {
    let Value::Object(map) = item else {
        return Err(format!("expected an object, got {item}"));
    };
    let text = |key: &str| -> Result<String, String> {
        match map.get(key) {
            None | Some(Value::Null) => Ok(String::new()),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(other) => Err(format!("{key} must be a string, got {other}")),
        }
    };
    let fields_type = text("fieldsType")?;
    if !fields_type.is_empty() && fields_type != "FieldsV1" {
        return Err(format!("unsupported fieldsType {fields_type:?}"));
    }
    let fields = match map.get("fieldsV1") {
        None | Some(Value::Null) => FieldSet::new(),
        Some(doc) => FieldSet::from_fields_v1(doc).map_err(|e| match e {
            crate::FieldManagerError::InvalidManagedFields(m) => m,
            other => other.to_string(),
        })?,
    };
    let time = text("time")?;
    Ok(Entry {
        manager: text("manager")?,
        operation: text("operation")?,
        api_version: text("apiVersion")?,
        subresource: text("subresource")?,
        time: (!time.is_empty()).then_some(time),
        fields,
    })
}

/// Encodes the entries with a non-empty field set, Apply entries first, then oldest first
/// (then by manager, apiVersion, subresource), as Kubernetes orders them.
pub(crate) fn encode(entries: &[Entry]) -> Vec<Value> {
    let mut kept: Vec<&Entry> = entries.iter().filter(|e| !e.fields.is_empty()).collect();
    kept.sort_by(|a, b| {
        (a.operation != "Apply")
            .cmp(&(b.operation != "Apply"))
            .then_with(|| a.sort_time().cmp(&b.sort_time()))
            .then_with(|| a.manager.cmp(&b.manager))
            .then_with(|| a.api_version.cmp(&b.api_version))
            .then_with(|| a.subresource.cmp(&b.subresource))
    });
    kept.into_iter().map(Entry::encode).collect()
}

/// Puts encoded entries into `object`'s metadata (none: no managedFields field). When they
/// are exactly `initial`, the encoding of what was decoded from `original`, `original` is
/// stored as it was spelled, so writes that change no ownership leave it byte-identical.
pub(crate) fn store(object: &mut Value, encoded: Vec<Value>, original: Option<Value>, initial: Option<&[Value]>) {
    let value = match original {
        Some(original) if initial == Some(encoded.as_slice()) => original,
        _ if encoded.is_empty() => Value::Null,
        _ => Value::Array(encoded),
    };
    let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    if value.is_null() || value.as_array().is_some_and(Vec::is_empty) {
        metadata.remove("managedFields");
    } else {
        metadata.insert("managedFields".to_string(), value);
    }
}

/// Folds the oldest Update entries into per-apiVersion "ancient-changes" entries while there
/// are more than Kubernetes' limit, so objects written by many updaters stay bounded.
pub(crate) fn cap_updates(entries: &mut Vec<Entry>) {
    entries.retain(|e| !e.fields.is_empty());
    loop {
        let updaters: Vec<usize> = (0..entries.len()).filter(|&i| entries[i].operation != "Apply").collect();
        if updaters.len() <= MAX_UPDATE_MANAGERS {
            return;
        }
        // The oldest updater that isn't a bucket (buckets absorb, they don't move).
        let Some(&oldest) = updaters
            .iter()
            .filter(|&&i| entries[i].manager != ANCIENT_CHANGES)
            .min_by(|&&a, &&b| (entries[a].sort_time(), entries[a].identifier()).cmp(&(entries[b].sort_time(), entries[b].identifier())))
        else {
            return;
        };
        let old = entries.remove(oldest);
        match entries.iter_mut().find(|e| e.is(ANCIENT_CHANGES, Operation::Update, &old.api_version, "")) {
            Some(bucket) => {
                bucket.fields.union_with(&old.fields);
                if old.sort_time() > bucket.sort_time() {
                    bucket.time = old.time;
                }
            }
            None => entries.push(Entry {
                manager: ANCIENT_CHANGES.to_string(),
                operation: "Update".to_string(),
                subresource: String::new(),
                ..old
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn stored() -> Value {
        json!([
            {"manager": "kubectl", "operation": "Apply", "apiVersion": "apps/v1", "time": "2024-01-02T03:04:05Z",
             "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:replicas": {}}}},
            {"manager": "kube-controller-manager", "operation": "Update", "apiVersion": "apps/v1", "time": "2024-01-01T00:00:00Z",
             "fieldsType": "FieldsV1", "fieldsV1": {"f:status": {"f:replicas": {}}}, "subresource": "status"},
            {"manager": "kubectl-edit", "operation": "Update", "apiVersion": "apps/v1", "time": "2024-01-03T00:00:00Z",
             "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:paused": {}}}}
        ])
    }

    #[test]
    fn round_trips_in_kubernetes_order() {
        let entries = decode(Some(&stored())).unwrap();
        assert_eq!(Value::Array(encode(&entries)), stored());
        let mut reversed = entries.clone();
        reversed.reverse();
        assert_eq!(Value::Array(encode(&reversed)), stored());
        assert_eq!(entries[1].identifier(), r#"{"manager":"kube-controller-manager","operation":"Update","apiVersion":"apps/v1","subresource":"status"}"#);
        assert_eq!(entries[0].identifier(), r#"{"manager":"kubectl","operation":"Apply"}"#);
    }

    #[test]
    fn decoding_rejects_garbage_but_accepts_the_reset_entry() {
        assert!(decode(Some(&json!({}))).is_err());
        assert!(decode(Some(&json!([1]))).is_err());
        assert!(decode(Some(&json!([{"fieldsType": "FieldsV2"}]))).is_err());
        assert!(decode(Some(&json!([{"fieldsV1": {"x": {}}}]))).is_err());
        assert!(decode(Some(&json!([{"manager": 3}]))).is_err());
        let reset = decode(Some(&json!([{}]))).unwrap();
        assert_eq!(reset.len(), 1);
        assert!(encode(&reset).is_empty());
    }

    #[test]
    fn caps_update_entries() {
        let mut entries: Vec<Entry> = (0..12)
            .map(|i| Entry {
                manager: format!("m{i:02}"),
                operation: "Update".into(),
                api_version: "v1".into(),
                subresource: String::new(),
                time: Some(format!("2024-01-01T00:00:{i:02}Z")),
                fields: FieldSet::from_fields_v1(&json!({format!("f:f{i}"): {}})).unwrap(),
            })
            .collect();
        cap_updates(&mut entries);
        assert_eq!(entries.len(), 10);
        let bucket = entries.iter().find(|e| e.manager == ANCIENT_CHANGES).unwrap();
        assert_eq!(bucket.fields.paths(), vec![".f0", ".f1", ".f2"]);
        assert_eq!(bucket.time.as_deref(), Some("2024-01-01T00:00:02Z"));
    }
}
