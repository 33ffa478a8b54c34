//! Tables for custom resources: the Name column followed by a CRD version's
//! `additionalPrinterColumns`, each cell read from the object with the column's simple JSONPath,
//! as Kubernetes' apiextensions-apiserver prints custom objects.

use jiff::Timestamp;
use serde_json::{Map, Value, json};

use crate::columns::NAME;
use crate::jsonpath::{JsonPathError, Template, text_of};
use crate::{IncludeObject, duration, fields, row, table_json};

/// The column types a CRD may declare.
const TYPES: [&str; 5] = ["integer", "number", "string", "boolean", "date"];

/// Go's zero `time.Time` (0001-01-01T00:00:00Z) in Unix seconds: Kubernetes prints it as unknown.
const GO_ZERO_TIME: i64 = -62_135_596_800;

/// One additionalPrinterColumn of a CRD version.
#[derive(Debug, Clone, PartialEq)]
pub struct CustomColumn {
    /// The column header.
    pub name: String,
    /// "integer", "number", "string", "boolean" or "date".
    pub type_: String,
    /// An OpenAPI format hint for clients ("" when unset).
    pub format: String,
    /// The column's description ("" when unset: the definition then names the JSONPath).
    pub description: String,
    /// 0 for default output; higher numbers are shown only in wide output.
    pub priority: i32,
    /// A simple JSONPath as in the CRD, e.g. ".spec.replicas" or
    /// ".status.conditions[?(@.type==\"Ready\")].status".
    pub json_path: String,
}

impl CustomColumn {
    /// Reads a CRD version's `additionalPrinterColumns` JSON array (missing/None -> Kubernetes'
    /// default, an Age column over .metadata.creationTimestamp). Errors name the bad column.
    pub fn from_crd(columns: Option<&Value>) -> Result<Vec<CustomColumn>, String> {
        let list = match columns {
            None | Some(Value::Null) => &[][..],
            Some(Value::Array(items)) => items.as_slice(),
            Some(other) => return Err(format!("additionalPrinterColumns must be a list, not {other}")),
        };
        // Kubernetes serves the Age column for an empty list as well as for a missing one.
        if list.is_empty() {
            return Ok(vec![CustomColumn::age()]);
        }
        list.iter().enumerate().map(|(index, col)| CustomColumn::parse(index, col)).collect()
    }

    /// The column Kubernetes serves when a CRD version declares none.
    fn age() -> CustomColumn {
        CustomColumn {
            name: "Age".into(),
            type_: "date".into(),
            format: String::new(),
            description: "Time the object was created, as recorded by the server (metadata.creationTimestamp).".into(),
            priority: 0,
            json_path: ".metadata.creationTimestamp".into(),
        }
    }

    /// One entry of the list; `index` only labels errors.
    fn parse(index: usize, col: &Value) -> Result<CustomColumn, String> {
        let label = match col.get("name").and_then(Value::as_str) {
            Some(name) if !name.is_empty() => format!("additionalPrinterColumns[{index}] ({name:?})"),
            _ => format!("additionalPrinterColumns[{index}]"),
        };
        let Some(obj) = col.as_object() else {
            return Err(format!("{label}: must be an object, not {col}"));
        };
        let name = text(obj, "name", true).map_err(|e| format!("{label}: {e}"))?;
        let type_ = text(obj, "type", true).map_err(|e| format!("{label}: {e}"))?;
        if !TYPES.contains(&type_.as_str()) {
            return Err(format!(
                "{label}: type: Unsupported value: {type_:?}: supported values: \"{}\"",
                TYPES.join("\", \"")
            ));
        }
        let format = text(obj, "format", false).map_err(|e| format!("{label}: {e}"))?;
        let description = text(obj, "description", false).map_err(|e| format!("{label}: {e}"))?;
        let json_path = text(obj, "jsonPath", true).map_err(|e| format!("{label}: {e}"))?;
        template(&json_path).map_err(|e| format!("{label}: jsonPath {json_path:?} is not a valid JSONPath: {e}"))?;
        let priority = match obj.get("priority") {
            None | Some(Value::Null) => 0,
            Some(p) => p
                .as_i64()
                .and_then(|p| i32::try_from(p).ok())
                .ok_or_else(|| format!("{label}: priority must be a 32-bit integer, not {p}"))?,
        };
        Ok(CustomColumn { name, type_, format, description, priority, json_path })
    }

    /// The `TableColumnDefinition`; a column without a description is described by its path,
    /// as Kubernetes does.
    fn definition(&self) -> Value {
        let description = if self.description.is_empty() {
            format!("Custom resource definition column (in JSONPath format): {}", self.json_path)
        } else {
            self.description.clone()
        };
        json!({
            "name": self.name,
            "type": self.type_,
            "format": self.format,
            "description": description,
            "priority": self.priority,
        })
    }

    /// The cell for `obj`; `path` is the parsed JSONPath (None when it does not parse).
    fn cell(&self, path: Option<&Template>, obj: &Value, now: Timestamp) -> Value {
        // Kubernetes treats the path as simple and keeps only the first value it selects, so a
        // filter matching several items shows the first one, not a list.
        let Some(value) = path.and_then(|p| p.values(obj).into_iter().next()) else {
            return Value::Null;
        };
        match (self.type_.as_str(), value) {
            // String columns print whatever the path selects, as kubectl's JSONPath would; a
            // null prints as Go's template placeholder.
            ("string", Value::Null) => "<no value>".into(),
            ("string", v) => text_of(&v).into(),
            // Every other type keeps values of that JSON type only; anything else is a null cell.
            ("integer", Value::Number(n)) => {
                // Fractions are truncated toward zero, as Go's float-to-int conversion does.
                n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)).map_or(Value::Null, Value::from)
            }
            ("number", Value::Number(n)) => number(&n),
            ("boolean", Value::Bool(b)) => b.into(),
            ("date", Value::String(s)) => date(&s, now).into(),
            _ => Value::Null,
        }
    }
}

/// A string field of a column; `required` ones must be present and non-empty.
fn text(obj: &Map<String, Value>, key: &str, required: bool) -> Result<String, String> {
    match obj.get(key) {
        Some(Value::String(s)) if !(required && s.is_empty()) => Ok(s.clone()),
        None | Some(Value::Null) if !required => Ok(String::new()),
        None | Some(Value::Null) | Some(Value::String(_)) => Err(format!("{key}: Required value")),
        Some(other) => Err(format!("{key} must be a string, not {other}")),
    }
}

/// The CRD's path as the template Kubernetes builds from it: `{<path>}`.
fn template(json_path: &str) -> Result<Template, JsonPathError> {
    Template::parse(&format!("{{{json_path}}}"))
}

/// A number cell. Kubernetes converts to a Go float64, whose JSON has no ".0" for whole values;
/// whole floats are therefore sent as integers.
fn number(n: &serde_json::Number) -> Value {
    match n.as_f64() {
        Some(f) if n.is_f64() && f.fract() == 0.0 && f.abs() < 9_007_199_254_740_992.0 => Value::from(f as i64),
        _ => Value::Number(n.clone()),
    }
}

/// A date cell: the age of the timestamp ("5m", "3d4h"), "<unknown>" for an unset time and
/// "<invalid>" for text that is not RFC 3339.
fn date(s: &str, now: Timestamp) -> String {
    if s.is_empty() || s == "null" {
        return "<unknown>".into();
    }
    match s.parse::<Timestamp>() {
        Ok(t) if t.as_second() == GO_ZERO_TIME && t.subsec_nanosecond() == 0 => "<unknown>".into(),
        Ok(t) => duration::human_duration(duration::between(t, now)),
        Err(_) => "<invalid>".into(),
    }
}

/// A Table of custom objects, with the same contract as `rkube_printers::table` (list_meta,
/// include, no_headers, now). The first column is always Name (format "name"), then `columns`.
pub fn custom_table(
    columns: &[CustomColumn],
    objects: &[Value],
    list_meta: Value,
    include: IncludeObject,
    no_headers: bool,
    now: Timestamp,
) -> Value {
    let paths: Vec<Option<Template>> = columns.iter().map(|c| template(&c.json_path).ok()).collect();
    let rows: Vec<Value> = objects
        .iter()
        .map(|obj| {
            let mut cells = Vec::with_capacity(columns.len() + 1);
            cells.push(Value::from(fields::name(obj)));
            cells.extend(columns.iter().zip(&paths).map(|(col, path)| col.cell(path.as_ref(), obj, now)));
            row(cells, None, obj, include)
        })
        .collect();
    let definitions = if no_headers { Value::Null } else { Value::from(custom_columns(columns)) };
    table_json(definitions, rows, list_meta)
}

/// Column definitions only (for watch events after the first), as `rkube_printers::columns`.
pub fn custom_columns(columns: &[CustomColumn]) -> Vec<Value> {
    std::iter::once(NAME.to_json()).chain(columns.iter().map(CustomColumn::definition)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Timestamp {
        "2024-05-01T12:00:00Z".parse().expect("timestamp")
    }

    fn crd_columns() -> Value {
        json!([
            {"name": "Spec", "type": "string", "jsonPath": ".spec.cronSpec", "description": "The cron spec."},
            {"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas"},
            {"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status"},
            {"name": "Ratio", "type": "number", "format": "double", "jsonPath": ".status.ratio"},
            {"name": "Paused", "type": "boolean", "jsonPath": ".spec.paused"},
            {"name": "Started", "type": "date", "jsonPath": ".status.startTime"},
            {"name": "Image", "type": "string", "jsonPath": ".spec.image", "priority": 1},
        ])
    }

    fn crontab() -> Value {
        json!({
            "apiVersion": "stable.example.com/v1", "kind": "CronTab",
            "metadata": {"name": "every-minute", "namespace": "default", "creationTimestamp": "2024-05-01T11:00:00Z"},
            "spec": {"cronSpec": "* * * * */5", "replicas": 3, "paused": true, "image": "busybox"},
            "status": {"ratio": 0.75, "startTime": "2024-05-01T11:55:00Z", "conditions": [
                {"type": "Scheduled", "status": "True"},
                {"type": "Ready", "status": "False"},
            ]},
        })
    }

    fn cells(columns: &[CustomColumn], obj: Value) -> Value {
        let t = custom_table(columns, &[obj], json!({}), IncludeObject::None, true, now());
        t["rows"][0]["cells"].clone()
    }

    fn one(type_: &str, json_path: &str) -> Vec<CustomColumn> {
        CustomColumn::from_crd(Some(&json!([{"name": "C", "type": type_, "jsonPath": json_path}]))).expect("columns")
    }

    #[test]
    fn definitions_follow_the_crd() {
        let columns = CustomColumn::from_crd(Some(&crd_columns())).expect("columns");
        let defs = custom_columns(&columns);
        let names: Vec<&str> = defs.iter().map(|d| d["name"].as_str().expect("name")).collect();
        assert_eq!(names, ["Name", "Spec", "Replicas", "Ready", "Ratio", "Paused", "Started", "Image"]);
        assert_eq!(defs[0]["format"], "name");
        assert_eq!(defs[0]["type"], "string");
        assert_eq!(
            defs[1],
            json!({"name": "Spec", "type": "string", "format": "", "description": "The cron spec.", "priority": 0})
        );
        assert_eq!(
            defs[4],
            json!({"name": "Ratio", "type": "number", "format": "double",
                "description": "Custom resource definition column (in JSONPath format): .status.ratio", "priority": 0})
        );
        assert_eq!(defs[6]["type"], "date");
        // Priority carries over: kubectl hides such columns unless asked for wide output.
        assert_eq!(defs[7]["priority"], 1);
        assert!(defs[..7].iter().all(|d| d["priority"] == 0));
    }

    #[test]
    fn cells_per_type() {
        let columns = CustomColumn::from_crd(Some(&crd_columns())).expect("columns");
        // The server prints wide columns too; the date is an age, not the timestamp.
        assert_eq!(
            cells(&columns, crontab()),
            json!(["every-minute", "* * * * */5", 3, "False", 0.75, true, "5m", "busybox"])
        );
    }

    #[test]
    fn missing_values_are_null_cells() {
        let columns = CustomColumn::from_crd(Some(&crd_columns())).expect("columns");
        let bare = json!({"metadata": {"name": "bare"}});
        assert_eq!(cells(&columns, bare), json!(["bare", null, null, null, null, null, null, null]));
        // A filter that matches nothing is missing too.
        let mut not_ready = crontab();
        not_ready["status"]["conditions"] = json!([{"type": "Scheduled", "status": "True"}]);
        assert_eq!(cells(&columns, not_ready)[3], Value::Null);
    }

    #[test]
    fn wrong_types_are_null_or_converted() {
        let obj = json!({"metadata": {"name": "x"}, "spec": {
            "text": "3", "whole": 3, "frac": 2.7, "neg": -2.7, "float3": 3.0, "flag": "true",
            "map": {"b": "<x>", "a": [1, 2]}, "nothing": null, "big": 2500000.5,
        }});
        assert_eq!(cells(&one("integer", ".spec.text"), obj.clone())[1], Value::Null);
        assert_eq!(cells(&one("integer", ".spec.frac"), obj.clone())[1], json!(2));
        assert_eq!(cells(&one("integer", ".spec.neg"), obj.clone())[1], json!(-2));
        assert_eq!(cells(&one("number", ".spec.whole"), obj.clone())[1], json!(3));
        assert_eq!(serde_json::to_string(&cells(&one("number", ".spec.float3"), obj.clone())[1]).expect("json"), "3");
        assert_eq!(cells(&one("number", ".spec.text"), obj.clone())[1], Value::Null);
        assert_eq!(cells(&one("boolean", ".spec.flag"), obj.clone())[1], Value::Null);
        assert_eq!(cells(&one("date", ".spec.whole"), obj.clone())[1], Value::Null);
        assert_eq!(cells(&one("integer", ".spec.nothing"), obj.clone())[1], Value::Null);
        // String columns print any value as text.
        assert_eq!(cells(&one("string", ".spec.whole"), obj.clone())[1], "3");
        assert_eq!(cells(&one("string", ".spec.frac"), obj.clone())[1], "2.7");
        assert_eq!(cells(&one("string", ".spec.big"), obj.clone())[1], "2.5000005e+06");
        assert_eq!(cells(&one("string", ".spec.map"), obj.clone())[1], "{\"a\":[1,2],\"b\":\"\\u003cx\\u003e\"}");
        assert_eq!(cells(&one("string", ".spec.nothing"), obj.clone())[1], "<no value>");
        // Unknown types never come from a valid CRD; a hand-made column yields nulls.
        let odd = vec![CustomColumn { type_: "object".into(), ..one("string", ".spec.map")[0].clone() }];
        assert_eq!(cells(&odd, obj)[1], Value::Null);
    }

    #[test]
    fn dates() {
        let at =
            |ts: &str| cells(&one("date", ".spec.t"), json!({"metadata": {"name": "x"}, "spec": {"t": ts}}))[1].clone();
        assert_eq!(at("2024-05-01T11:00:00Z"), "60m");
        assert_eq!(at("2024-04-28T08:00:00Z"), "3d4h");
        assert_eq!(at("2024-05-01T13:00:00+02:00"), "60m");
        assert_eq!(at("2024-05-01T11:59:30.250Z"), "29s");
        assert_eq!(at("yesterday"), "<invalid>");
        assert_eq!(at(""), "<unknown>");
        assert_eq!(at("0001-01-01T00:00:00Z"), "<unknown>");
        // Far in the future: the human duration of a negative span.
        assert_eq!(at("2024-05-02T12:00:00Z"), "<invalid>");
    }

    #[test]
    fn multiple_matches_keep_the_first() {
        let obj = json!({"metadata": {"name": "x"}, "status": {"conditions": [
            {"type": "Ready", "status": "True", "n": 1},
            {"type": "Ready", "status": "False", "n": 2},
        ]}});
        assert_eq!(cells(&one("string", ".status.conditions[?(@.type==\"Ready\")].status"), obj.clone())[1], "True");
        assert_eq!(cells(&one("string", ".status.conditions[*].status"), obj.clone())[1], "True");
        assert_eq!(cells(&one("integer", ".status.conditions[*].n"), obj.clone())[1], json!(1));
        assert_eq!(cells(&one("integer", ".status.conditions[1].n"), obj)[1], json!(2));
    }

    #[test]
    fn default_age_column() {
        for declared in [None, Some(json!(null)), Some(json!([]))] {
            let columns = CustomColumn::from_crd(declared.as_ref()).expect("default");
            assert_eq!(columns.len(), 1);
            assert_eq!(columns[0].name, "Age");
            assert_eq!(columns[0].type_, "date");
            assert_eq!(columns[0].json_path, ".metadata.creationTimestamp");
            let defs = custom_columns(&columns);
            assert_eq!(defs.len(), 2);
            assert_eq!(defs[1]["name"], "Age");
            assert_eq!(defs[1]["type"], "date");
            assert_eq!(cells(&columns, crontab()), json!(["every-minute", "60m"]));
            assert_eq!(cells(&columns, json!({"metadata": {"name": "new"}})), json!(["new", null]));
        }
    }

    #[test]
    fn table_contract() {
        let columns = CustomColumn::from_crd(None).expect("default");
        let meta = json!({"resourceVersion": "9", "continue": "c"});
        let t = custom_table(&columns, &[crontab()], meta.clone(), IncludeObject::Metadata, false, now());
        assert_eq!(t["kind"], "Table");
        assert_eq!(t["apiVersion"], "meta.k8s.io/v1");
        assert_eq!(t["metadata"], meta);
        assert_eq!(t["columnDefinitions"].as_array().map(Vec::len), Some(2));
        assert_eq!(
            t["rows"][0]["object"],
            json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": crontab()["metadata"]})
        );
        assert!(t["rows"][0].get("conditions").is_none());
        let t = custom_table(&columns, &[crontab()], Value::Null, IncludeObject::Object, true, now());
        assert!(t["columnDefinitions"].is_null());
        assert_eq!(t["metadata"], json!({}));
        assert_eq!(t["rows"][0]["object"], crontab());
        let t = custom_table(&columns, &[crontab()], json!({}), IncludeObject::None, false, now());
        assert!(t["rows"][0].get("object").is_none());
        let empty = custom_table(&columns, &[], json!({}), IncludeObject::None, false, now());
        assert_eq!(empty["rows"], json!([]));
    }

    #[test]
    fn bad_columns_are_named() {
        let err = |cols: Value| CustomColumn::from_crd(Some(&cols)).expect_err("invalid");
        let e = err(
            json!([{"name": "A", "type": "string", "jsonPath": ".a"}, {"name": "B", "type": "text", "jsonPath": ".b"}]),
        );
        assert!(e.starts_with("additionalPrinterColumns[1] (\"B\"): type: Unsupported value: \"text\""), "{e}");
        let e = err(json!([{"name": "C", "type": "string"}]));
        assert_eq!(e, "additionalPrinterColumns[0] (\"C\"): jsonPath: Required value");
        let e = err(json!([{"type": "string", "jsonPath": ".a"}]));
        assert_eq!(e, "additionalPrinterColumns[0]: name: Required value");
        let e = err(json!([{"name": "D", "type": "string", "jsonPath": ".status.items[0"}]));
        assert!(
            e.starts_with("additionalPrinterColumns[0] (\"D\"): jsonPath \".status.items[0\" is not a valid"),
            "{e}"
        );
        let e = err(json!([{"name": "E", "type": "integer", "jsonPath": ".a", "priority": "high"}]));
        assert!(e.contains("(\"E\"): priority must be a 32-bit integer"), "{e}");
        let e = err(json!([{"name": "F", "type": "integer", "jsonPath": ".a", "priority": 4_294_967_296_i64}]));
        assert!(e.contains("(\"F\"): priority"), "{e}");
        let e = err(json!([{"name": "G", "type": 5, "jsonPath": ".a"}]));
        assert!(e.contains("(\"G\"): type must be a string"), "{e}");
        assert!(err(json!({"name": "H"})).contains("must be a list"));
        assert!(err(json!(["Age"])).starts_with("additionalPrinterColumns[0]: must be an object"));
    }

    #[test]
    fn optional_fields_default() {
        let columns =
            CustomColumn::from_crd(Some(&json!([{"name": "N", "type": "number", "jsonPath": ".n", "priority": 2}])))
                .expect("columns");
        assert_eq!(
            columns,
            [CustomColumn {
                name: "N".into(),
                type_: "number".into(),
                format: String::new(),
                description: String::new(),
                priority: 2,
                json_path: ".n".into(),
            }]
        );
    }
}
