//! Name formats (Kubernetes' `IsDNS1123Label` and friends, with their exact messages) and
//! ObjectMeta validation shared by every kind.

use super::{Errs, arr_at, join, obj_at, str_at};
use crate::{FieldError, ResourceInfo};
use serde_json::{Map, Value};

const DNS1123_LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const DNS1123_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const DNS1035_LABEL_MSG: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";
const QUALIFIED_NAME_MSG: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";

/// Total size limit of all annotations of one object.
const TOTAL_ANNOTATION_SIZE: usize = 256 * 1024;

fn max_len(n: usize) -> String {
    format!("must be no more than {n} characters")
}

fn lower_alnum(c: u8) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

fn is_label_shape(s: &str) -> bool {
    let b = s.as_bytes();
    match (b.first(), b.last()) {
        (Some(&first), Some(&last)) => {
            lower_alnum(first) && lower_alnum(last) && b.iter().all(|&c| lower_alnum(c) || c == b'-')
        }
        _ => false,
    }
}

/// Problems with `s` as an RFC 1123 label (empty when valid), in Kubernetes' words.
pub fn is_dns1123_label(s: &str) -> Vec<String> {
    let mut msgs = Vec::new();
    if s.len() > 63 {
        msgs.push(max_len(63));
    }
    if !is_label_shape(s) {
        msgs.push(DNS1123_LABEL_MSG.to_string());
    }
    msgs
}

/// Problems with `s` as an RFC 1123 subdomain (empty when valid).
pub fn is_dns1123_subdomain(s: &str) -> Vec<String> {
    let mut msgs = Vec::new();
    if s.len() > 253 {
        msgs.push(max_len(253));
    }
    if !s.split('.').all(is_label_shape) {
        msgs.push(DNS1123_SUBDOMAIN_MSG.to_string());
    }
    msgs
}

/// Problems with `s` as an RFC 1035 label (a 1123 label starting with a letter).
pub fn is_dns1035_label(s: &str) -> Vec<String> {
    let mut msgs = Vec::new();
    if s.len() > 63 {
        msgs.push(max_len(63));
    }
    if !is_label_shape(s) || !s.as_bytes().first().is_some_and(u8::is_ascii_lowercase) {
        msgs.push(DNS1035_LABEL_MSG.to_string());
    }
    msgs
}

fn is_qualified_name_part(s: &str) -> bool {
    let b = s.as_bytes();
    match (b.first(), b.last()) {
        (Some(first), Some(last)) => {
            first.is_ascii_alphanumeric()
                && last.is_ascii_alphanumeric()
                && b.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        }
        _ => false,
    }
}

/// Problems with `s` as a qualified name (label key, annotation key, finalizer): an optional
/// DNS subdomain prefix and '/', then a name of at most 63 characters.
pub fn is_qualified_name(s: &str) -> Vec<String> {
    let mut msgs = Vec::new();
    let parts: Vec<&str> = s.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                msgs.push("prefix part must be non-empty".to_string());
            } else {
                msgs.extend(is_dns1123_subdomain(prefix).into_iter().map(|m| format!("prefix part {m}")));
            }
            *name
        }
        _ => {
            return vec![format!(
                "a qualified name {QUALIFIED_NAME_MSG} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
            )];
        }
    };
    if name.is_empty() {
        msgs.push("name part must be non-empty".to_string());
    } else if name.len() > 63 {
        msgs.push(format!("name part {}", max_len(63)));
    }
    if !name.is_empty() && !is_qualified_name_part(name) {
        msgs.push(format!("name part {QUALIFIED_NAME_MSG}"));
    }
    msgs
}

/// Problems with `s` as a label value (may be empty).
pub fn is_valid_label_value(s: &str) -> Vec<String> {
    let mut msgs = Vec::new();
    if s.len() > 63 {
        msgs.push(max_len(63));
    }
    if !s.is_empty() && !is_qualified_name_part(s) {
        msgs.push(LABEL_VALUE_MSG.to_string());
    }
    msgs
}

/// Pushes one Invalid error per message for `value` at `path`.
pub(super) fn push_msgs(errs: &mut Errs, path: &str, value: &str, msgs: Vec<String>) {
    for m in msgs {
        errs.push(FieldError::invalid(path, &Value::from(value), &m));
    }
}

/// A name that must be a DNS label; empty is Required.
pub(super) fn dns_label_field(errs: &mut Errs, path: &str, value: &str) {
    if value.is_empty() {
        errs.push(FieldError::required(path, ""));
    } else {
        push_msgs(errs, path, value, is_dns1123_label(value));
    }
}

/// Validates a label map at `path` (keys qualified names, values label values).
pub(super) fn validate_labels(labels: Option<&Map<String, Value>>, path: &str, errs: &mut Errs) {
    for (k, v) in labels.into_iter().flatten() {
        push_msgs(errs, path, k, is_qualified_name(k));
        let value = v.as_str().unwrap_or_default();
        push_msgs(errs, path, value, is_valid_label_value(value));
    }
}

/// Validates an annotation map at `path`: keys and total size.
pub(super) fn validate_annotations(annotations: Option<&Map<String, Value>>, path: &str, errs: &mut Errs) {
    let mut total = 0;
    for (k, v) in annotations.into_iter().flatten() {
        push_msgs(errs, path, k, is_qualified_name(&k.to_lowercase()));
        total += k.len() + v.as_str().map_or(0, str::len);
    }
    if total > TOTAL_ANNOTATION_SIZE {
        errs.push(FieldError::too_long(path, TOTAL_ANNOTATION_SIZE));
    }
}

/// Which name format a kind's objects must have.
fn name_problems(res: &ResourceInfo, name: &str) -> Vec<String> {
    match (res.group, res.kind) {
        ("", "Namespace") => is_dns1123_label(name),
        // Service names become DNS labels that must not start with a digit.
        ("", "Service") => is_dns1035_label(name),
        // RBAC names only need to be usable as a path segment ("system:node" and the like).
        ("rbac.authorization.k8s.io", _) => path_segment_name_problems(name),
        _ => is_dns1123_subdomain(name),
    }
}

/// Kubernetes' path segment name rule: not `.` or `..`, and no `/` or `%`.
fn path_segment_name_problems(name: &str) -> Vec<String> {
    if name == "." || name == ".." {
        return vec![format!("may not be '{name}'")];
    }
    ["/", "%"].iter().filter(|c| name.contains(**c)).map(|c| format!("may not contain '{c}'")).collect()
}

/// ObjectMeta checks common to every kind.
pub(super) fn validate_object_meta(res: &ResourceInfo, meta: &Value, errs: &mut Errs) {
    let name = str_at(meta, "name");
    if name.is_empty() {
        errs.push(FieldError::required("metadata.name", "name or generateName is required"));
    } else {
        push_msgs(errs, "metadata.name", name, name_problems(res, name));
    }
    let namespace = str_at(meta, "namespace");
    if res.namespaced {
        if namespace.is_empty() {
            errs.push(FieldError::required("metadata.namespace", ""));
        } else {
            push_msgs(errs, "metadata.namespace", namespace, is_dns1123_label(namespace));
        }
    } else if !namespace.is_empty() {
        errs.push(FieldError::forbidden("metadata.namespace", "not allowed on this type"));
    }
    if let Some(g) = meta.get("generation").and_then(Value::as_i64)
        && g < 0
    {
        errs.push(FieldError::invalid("metadata.generation", &Value::from(g), super::NON_NEGATIVE));
    }
    validate_labels(obj_at(meta, "labels"), "metadata.labels", errs);
    validate_annotations(obj_at(meta, "annotations"), "metadata.annotations", errs);
    validate_owner_references(arr_at(meta, "ownerReferences"), errs);
    validate_finalizers(arr_at(meta, "finalizers"), "metadata.finalizers", errs);
}

fn validate_owner_references(refs: &[Value], errs: &mut Errs) {
    let path = "metadata.ownerReferences";
    let mut controllers = Vec::new();
    for r in refs {
        for (field, what) in [("apiVersion", "version"), ("kind", "kind"), ("name", "name"), ("uid", "uid")] {
            if str_at(r, field).is_empty() {
                errs.push(FieldError::invalid(
                    join(path, field),
                    &Value::from(""),
                    &format!("{what} must not be empty"),
                ));
            }
        }
        if r.get("controller").and_then(Value::as_bool) == Some(true) {
            controllers.push(format!("{}/{}", str_at(r, "kind"), str_at(r, "name")));
        }
    }
    if controllers.len() > 1 {
        errs.push(FieldError::invalid(
            path,
            &Value::Array(refs.to_vec()),
            &format!(
                "Only one reference can have Controller set to true. Found \"true\" in references for {}",
                controllers.join(" and ")
            ),
        ));
    }
}

/// Finalizer names are qualified names; orphaning and foreground deletion exclude each other.
pub(super) fn validate_finalizers(finalizers: &[Value], path: &str, errs: &mut Errs) {
    let names: Vec<&str> = finalizers.iter().map(|f| f.as_str().unwrap_or_default()).collect();
    for name in &names {
        push_msgs(errs, path, name, is_qualified_name(name));
    }
    if names.contains(&"orphan") && names.contains(&"foregroundDeletion") {
        errs.push(FieldError::invalid(
            path,
            &Value::Array(finalizers.to_vec()),
            "finalizer orphan and foregroundDeletion cannot be both set",
        ));
    }
}

/// An Invalid "field is immutable" error when `new` differs from `old` at `path`.
pub(super) fn immutable(new: &Value, old: &Value, path: &str, errs: &mut Errs) {
    if new != old {
        errs.push(FieldError::invalid(path, new, "field is immutable"));
    }
}

/// ObjectMeta fields that may never change.
pub(super) fn validate_object_meta_update(new: &Value, old: &Value, errs: &mut Errs) {
    let null = Value::Null;
    immutable(new.get("name").unwrap_or(&null), old.get("name").unwrap_or(&null), "metadata.name", errs);
    // An omitted namespace, uid or creationTimestamp is filled from the stored object by the
    // server (as Kubernetes does), so only a different value is an attempt to change it.
    for field in ["namespace", "uid", "creationTimestamp"] {
        if let Some(v) = new.get(field).filter(|v| !v.is_null() && v.as_str() != Some(""))
            && old.get(field).is_some_and(|o| !o.is_null())
        {
            immutable(v, old.get(field).unwrap_or(&null), &join("metadata", field), errs);
        }
    }
}
