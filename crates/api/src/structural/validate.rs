//! Validating values against a schema with Kubernetes' wording (kube-openapi messages turned
//! into field errors the way the apiextensions API server does).

use std::collections::HashMap;

use serde_json::{Map, Value, json};

use super::{Additional, Node, child, index};
use crate::FieldError;

/// Validates `v` at `path` against `node`, appending errors.
pub(super) fn validate(node: &Node, v: &Value, path: &str, root: bool, errs: &mut Vec<FieldError>) {
    if v.is_null() {
        if node.nullable {
            return;
        }
        if let Some(t) = &node.ty {
            errs.push(type_error(path, t, "null"));
        } else if node.int_or_string {
            errs.push(type_error(path, "integer,string", "null"));
        }
        return;
    }
    let type_error = match &node.ty {
        Some(t) if !type_matches(t, v) => Some(type_error(path, t, type_name(v))),
        None if node.int_or_string && !(v.is_string() || type_matches("integer", v)) => {
            Some(type_error(path, "integer,string", type_name(v)))
        }
        _ => None,
    };
    let wrong_type = type_error.is_some();
    errs.extend(type_error);

    // Kubernetes reports enum violations even next to a type error.
    if let Some(values) = &node.enum_values
        && !values.iter().any(|e| json_eq(e, v))
    {
        let shown: Vec<String> = values.iter().map(plain).collect();
        let refs: Vec<&str> = shown.iter().map(String::as_str).collect();
        errs.push(FieldError::not_supported(path, v, &refs));
    }
    // The keywords of one type say nothing about a value of another; junctors still run.
    match v {
        _ if wrong_type => {}
        Value::Number(n) => {
            if let Some(f) = n.as_f64() {
                check_number(node, v, f, path, errs);
            }
        }
        Value::String(s) => check_string(node, v, s, path, errs),
        Value::Array(items) => check_array(node, items, path, errs),
        Value::Object(map) => check_object(node, map, path, root, errs),
        _ => {}
    }

    check_junctors(node, v, path, root, errs);
}

fn name(path: &str) -> &str {
    if path.is_empty() { "body" } else { path }
}

/// `<path> in body must be of type <want>: "<got>"`, with the found type as the value.
fn type_error(path: &str, want: &str, got: &str) -> FieldError {
    FieldError::invalid(path, &json!(got), &format!("{} in body must be of type {want}: {got:?}", name(path)))
}

fn type_matches(t: &str, v: &Value) -> bool {
    match t {
        "string" => v.is_string(),
        "boolean" => v.is_boolean(),
        "number" => v.is_number(),
        // JSON does not distinguish 2 and 2.0; any whole number is an integer.
        "integer" => v.as_i64().is_some() || v.as_u64().is_some() || v.as_f64().is_some_and(|f| f.fract() == 0.0),
        "object" => v.is_object(),
        "array" => v.is_array(),
        _ => true,
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => {
            if n.as_f64().is_some_and(|f| f.fract() == 0.0) {
                "integer"
            } else {
                "number"
            }
        }
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Equality where 1 and 1.0 are the same number.
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(i), Some(j)) => i == j,
            _ => x.as_f64() == y.as_f64(),
        },
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_eq(a, b)),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, a)| y.get(k).is_some_and(|b| json_eq(a, b)))
        }
        _ => a == b,
    }
}

/// The index of the second occurrence of every value that occurs more than once (Kubernetes
/// reports each duplicated value once).
fn repeats(items: &[Value]) -> Vec<usize> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let times = seen.entry(canonical(item)).or_insert(0);
        *times += 1;
        if *times == 2 {
            out.push(i);
        }
    }
    out
}

/// A string equal for equal JSON values: numbers by value (1 and 1.0 alike), object keys sorted.
fn canonical(v: &Value) -> String {
    match v {
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => i.to_string(),
            (_, Some(u), _) => u.to_string(),
            (_, _, Some(f)) if f.fract() == 0.0 && f.abs() < 9.0e15 => format!("{}", f as i64),
            _ => n.to_string(),
        },
        Value::Array(a) => format!("[{}]", a.iter().map(canonical).collect::<Vec<_>>().join(",")),
        Value::Object(m) => {
            let mut entries: Vec<(&String, &Value)> = m.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            let parts: Vec<String> = entries.iter().map(|(k, v)| format!("{k:?}:{}", canonical(v))).collect();
            format!("{{{}}}", parts.join(","))
        }
        other => other.to_string(),
    }
}

/// A value as Go's `%v` prints it in "supported values" lists: strings bare, the rest as JSON.
fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A bound as Go's `%v` prints a float64: whole numbers without a fraction.
fn num(f: f64) -> String {
    if f.fract() == 0.0 && f.abs() < 1e15 { format!("{}", f as i64) } else { format!("{f}") }
}

fn check_number(node: &Node, v: &Value, f: f64, path: &str, errs: &mut Vec<FieldError>) {
    let n = name(path);
    if let Some(min) = node.minimum {
        if node.exclusive_minimum && f <= min {
            errs.push(FieldError::invalid(path, v, &format!("{n} in body should be greater than {}", num(min))));
        } else if f < min {
            errs.push(FieldError::invalid(
                path,
                v,
                &format!("{n} in body should be greater than or equal to {}", num(min)),
            ));
        }
    }
    if let Some(max) = node.maximum {
        if node.exclusive_maximum && f >= max {
            errs.push(FieldError::invalid(path, v, &format!("{n} in body should be less than {}", num(max))));
        } else if f > max {
            errs.push(FieldError::invalid(
                path,
                v,
                &format!("{n} in body should be less than or equal to {}", num(max)),
            ));
        }
    }
    if let Some(m) = node.multiple_of {
        let q = f / m;
        if (q - q.round()).abs() > 1e-9 {
            errs.push(FieldError::invalid(path, v, &format!("{n} in body should be a multiple of {}", num(m))));
        }
    }
    // int32/int64 bound integers; Kubernetes passes other formats on numbers unchecked.
    let limits = match node.format.as_deref() {
        Some("int32") => Some((i32::MIN as f64, i32::MAX as f64)),
        Some("int64") => Some((i64::MIN as f64, i64::MAX as f64)),
        _ => None,
    };
    if let Some((lo, hi)) = limits
        && (f < lo || f > hi || f.fract() != 0.0)
    {
        let fmt = node.format.as_deref().unwrap_or_default();
        errs.push(FieldError::invalid(path, v, &format!("{n} in body must be of type {fmt}: {:?}", v.to_string())));
    }
}

fn check_string(node: &Node, v: &Value, s: &str, path: &str, errs: &mut Vec<FieldError>) {
    let n = name(path);
    // Lengths count Unicode code points, as Go's utf8.RuneCountInString.
    let len = s.chars().count() as u64;
    if let Some(max) = node.max_length
        && len > max
    {
        errs.push(FieldError::too_long(path, usize::try_from(max).unwrap_or(usize::MAX)));
    }
    if let Some(min) = node.min_length
        && len < min
    {
        errs.push(FieldError::invalid(path, v, &format!("{n} in body should be at least {min} chars long")));
    }
    if let Some((src, re)) = &node.pattern
        && !re.is_match(s)
    {
        errs.push(FieldError::invalid(path, v, &format!("{n} in body should match '{src}'")));
    }
    if let Some(fmt) = &node.format
        && !format_ok(fmt, s)
    {
        errs.push(FieldError::invalid(path, v, &format!("{n} in body must be of type {fmt}: {s:?}")));
    }
}

/// Whether `s` is in string format `fmt`; unknown formats pass, as in Kubernetes.
fn format_ok(fmt: &str, s: &str) -> bool {
    match fmt {
        "date-time" | "datetime" => is_date_time(s),
        "date" => is_date(s),
        "int32" => s.parse::<i32>().is_ok(),
        "int64" => s.parse::<i64>().is_ok(),
        "uuid" => is_uuid(s),
        _ => true,
    }
}

fn digits(s: &str, n: usize) -> Option<u32> {
    if s.len() == n && s.bytes().all(|b| b.is_ascii_digit()) { s.parse().ok() } else { None }
}

/// `YYYY-MM-DD` with a real month and day.
fn is_date(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return false;
    }
    let (Some(y), Some(m), Some(d)) = (digits(&s[0..4], 4), digits(&s[5..7], 2), digits(&s[8..10], 2)) else {
        return false;
    };
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1..=days).contains(&d)
}

/// RFC 3339 date-times, plus the variants Kubernetes' format checker accepts: lower-case
/// `t`/`z`, no seconds, no offset.
fn is_date_time(s: &str) -> bool {
    if s.len() < 16 || !s.is_char_boundary(10) || !is_date(&s[..10]) {
        return false;
    }
    let rest = &s[10..];
    let Some(time) = rest.strip_prefix(['T', 't', ' ']) else { return false };
    // Split off the zone: Z, or +hh:mm / -hh:mm / +hhmm at the end.
    let (clock, zone) = if let Some(c) = time.strip_suffix(['Z', 'z']) {
        (c, None)
    } else if let Some(pos) = time.rfind(['+', '-']) {
        (&time[..pos], Some(&time[pos + 1..]))
    } else {
        (time, None)
    };
    if let Some(z) = zone {
        // ASCII first: the slicing below must not split a multi-byte character.
        let ok = z.is_ascii()
            && match z.len() {
                5 => {
                    z.as_bytes()[2] == b':'
                        && digits(&z[..2], 2).is_some_and(|h| h < 24)
                        && digits(&z[3..], 2).is_some()
                }
                4 => digits(&z[..2], 2).is_some_and(|h| h < 24) && digits(&z[2..], 2).is_some(),
                _ => false,
            };
        if !ok {
            return false;
        }
    }
    let (hms, frac) = match clock.split_once('.') {
        Some((h, f)) => (h, Some(f)),
        None => (clock, None),
    };
    if let Some(f) = frac
        && (f.is_empty() || f.len() > 9 || !f.bytes().all(|b| b.is_ascii_digit()))
    {
        return false;
    }
    let parts: Vec<&str> = hms.split(':').collect();
    match parts.as_slice() {
        [h, m] if frac.is_none() => digits(h, 2).is_some_and(|h| h < 24) && digits(m, 2).is_some_and(|m| m < 60),
        [h, m, sec] => {
            digits(h, 2).is_some_and(|h| h < 24)
                && digits(m, 2).is_some_and(|m| m < 60)
                && digits(sec, 2).is_some_and(|s| s <= 60)
        }
        _ => false,
    }
}

fn is_uuid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups.iter().zip([8, 4, 4, 4, 12]).all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// A "Too many" error, as Kubernetes reports maxItems and maxProperties.
fn too_many(path: &str, actual: usize, max: u64) -> FieldError {
    FieldError {
        reason: "FieldValueTooMany",
        field: path.to_string(),
        message: format!("Too many: {actual}: must have at most {max} items"),
    }
}

fn check_array(node: &Node, items: &[Value], path: &str, errs: &mut Vec<FieldError>) {
    let n = name(path);
    if let Some(max) = node.max_items
        && items.len() as u64 > max
    {
        errs.push(too_many(path, items.len(), max));
    }
    if let Some(min) = node.min_items
        && (items.len() as u64) < min
    {
        errs.push(FieldError::invalid(
            path,
            &json!(items.len()),
            &format!("{n} in body should have at least {min} items"),
        ));
    }
    let set = node.unique_items || node.list_type.as_deref() == Some("set");
    if set {
        for i in repeats(items) {
            errs.push(FieldError::duplicate(index(path, i), &items[i]));
        }
    }
    if node.list_type.as_deref() == Some("map") {
        if let Some(i) = items.iter().position(|x| !x.is_object() && !x.is_null()) {
            errs.push(FieldError::invalid(
                index(path, i),
                &items[i],
                "must be an object for an array of list-type map",
            ));
        } else {
            // An element's identity is its key fields; null elements and absent keys count as unset.
            let keys: Vec<Value> = items
                .iter()
                .map(|x| {
                    let mut key = Map::new();
                    for k in &node.list_map_keys {
                        if let Some(kv) = x.get(k) {
                            key.insert(k.clone(), kv.clone());
                        }
                    }
                    Value::Object(key)
                })
                .collect();
            for i in repeats(&keys) {
                errs.push(FieldError::duplicate(index(path, i), &keys[i]));
            }
        }
    }
    if let Some(item) = &node.items {
        for (i, iv) in items.iter().enumerate() {
            validate(item, iv, &index(path, i), false, errs);
        }
    }
}

fn check_object(node: &Node, map: &Map<String, Value>, path: &str, root: bool, errs: &mut Vec<FieldError>) {
    let n = name(path);
    let count = map.len();
    if let Some(max) = node.max_properties
        && count as u64 > max
    {
        errs.push(too_many(path, count, max));
    }
    if let Some(min) = node.min_properties
        && (count as u64) < min
    {
        errs.push(FieldError::invalid(
            path,
            &json!(count),
            &format!("{n} in body should have at least {min} properties"),
        ));
    }
    for r in &node.required {
        if !map.contains_key(r) {
            errs.push(FieldError::required(child(path, r), ""));
        }
    }
    if node.embedded {
        for k in ["apiVersion", "kind"] {
            if map.get(k).and_then(Value::as_str).is_none_or(str::is_empty) {
                errs.push(FieldError::required(child(path, k), "must not be empty"));
            }
        }
    }
    for (k, fv) in map {
        // Root metadata is ObjectMeta, validated by the API machinery, not by the CRD schema.
        if root && k == "metadata" {
            continue;
        }
        let p = child(path, k);
        if let Some(prop) = node.properties.get(k) {
            validate(prop, fv, &p, false, errs);
            continue;
        }
        match &node.additional {
            Some(Additional::Schema(a)) => validate(a, fv, &p, false, errs),
            Some(Additional::Allowed(false)) => {
                errs.push(FieldError::forbidden(p, &format!("{n}.{k} in body is a forbidden property")));
            }
            _ => {}
        }
    }
}

/// A failed allOf/anyOf/oneOf/not. Kubernetes reports these with an empty value (and no field;
/// the field is kept here because it is the only pointer to where the problem is).
fn composite(path: &str, detail: String) -> FieldError {
    FieldError::invalid(path, &json!(""), &detail)
}

fn check_junctors(node: &Node, v: &Value, path: &str, root: bool, errs: &mut Vec<FieldError>) {
    let n = name(path);
    let run = |s: &Node| {
        let mut e = Vec::new();
        validate(s, v, path, root, &mut e);
        e
    };
    if !node.all_of.is_empty() {
        let results: Vec<Vec<FieldError>> = node.all_of.iter().map(run).collect();
        let passing = results.iter().filter(|e| e.is_empty()).count();
        if passing < results.len() {
            let suffix = if passing == 0 { ". None validated" } else { "" };
            errs.push(composite(path, format!("{n:?} must validate all the schemas (allOf){suffix}")));
            errs.extend(results.into_iter().flatten());
        }
    }
    if !node.any_of.is_empty() {
        let results: Vec<Vec<FieldError>> = node.any_of.iter().map(run).collect();
        if results.iter().all(|e| !e.is_empty()) {
            errs.push(composite(path, format!("{n:?} must validate at least one schema (anyOf)")));
            // Like kube-openapi, explain with the branch that came closest.
            if let Some(best) = results.into_iter().min_by_key(Vec::len) {
                errs.extend(best);
            }
        }
    }
    if !node.one_of.is_empty() {
        let results: Vec<Vec<FieldError>> = node.one_of.iter().map(run).collect();
        let passing = results.iter().filter(|e| e.is_empty()).count();
        if passing != 1 {
            errs.push(composite(path, format!("{n:?} must validate one and only one schema (oneOf)")));
            if passing == 0
                && let Some(best) = results.into_iter().min_by_key(Vec::len)
            {
                errs.extend(best);
            }
        }
    }
    if let Some(s) = &node.not
        && run(s).is_empty()
    {
        errs.push(composite(path, format!("{n:?} must not validate the schema (not)")));
    }
}
