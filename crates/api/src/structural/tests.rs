use serde_json::{Value, json};

use super::{ListInfo, Structural};
use crate::FieldError;

const P: &str = "spec.versions[0].schema.openAPIV3Schema";

fn schema(s: Value) -> Structural {
    match Structural::new(&s, P) {
        Ok(st) => st,
        Err(e) => panic!("schema rejected: {e:?}"),
    }
}

fn rejected(s: Value) -> Vec<String> {
    match Structural::new(&s, P) {
        Ok(_) => panic!("schema accepted: {s}"),
        Err(e) => e.iter().map(|e| format!("{}: {}", e.field, e.message)).collect(),
    }
}

fn messages(errs: &[FieldError]) -> Vec<String> {
    errs.iter().map(|e| format!("{}: {}", e.field, e.message)).collect()
}

fn spec(props: Value) -> Structural {
    schema(json!({"type": "object", "properties": {"spec": {"type": "object", "properties": props}}}))
}

/// Validation messages, compared without regard to order (map order is not part of the contract).
#[derive(Debug)]
struct Msgs(Vec<String>);

impl Msgs {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn len(&self) -> usize {
        self.0.len()
    }
}

impl PartialEq<Vec<&str>> for Msgs {
    fn eq(&self, other: &Vec<&str>) -> bool {
        let mut want: Vec<&str> = other.clone();
        want.sort_unstable();
        let mut got: Vec<&str> = self.0.iter().map(String::as_str).collect();
        got.sort_unstable();
        got == want
    }
}

fn check(st: &Structural, spec: Value) -> Msgs {
    Msgs(messages(&st.validate(&json!({"apiVersion": "x/v1", "kind": "X", "metadata": {"name": "a"}, "spec": spec}))))
}

#[test]
fn structural_rejects_missing_types_with_kubernetes_wording() {
    let errs = rejected(json!({
        "type": "object",
        "properties": {
            "spec": {"properties": {"list": {"type": "array", "items": {}}, "arr": {"type": "array"}}},
        }
    }));
    assert_eq!(
        errs,
        vec![
            format!("{P}.properties[spec].properties[arr].items: Required value: must be specified"),
            format!(
                "{P}.properties[spec].properties[list].items.type: Required value: must not be empty for specified array items"
            ),
            format!("{P}.properties[spec].type: Required value: must not be empty for specified object fields"),
        ]
    );
    let root = rejected(json!({"type": "string"}));
    assert_eq!(root, vec![format!("{P}.type: Invalid value: \"string\": must be object at the root")]);
    assert_eq!(rejected(json!({})), vec![format!("{P}.type: Required value: must not be empty at the root")]);
}

#[test]
fn structural_allows_untyped_int_or_string_and_preserve_unknown() {
    let st = spec(json!({
        "port": {"x-kubernetes-int-or-string": true, "anyOf": [{"type": "integer"}, {"type": "string"}]},
        "free": {"x-kubernetes-preserve-unknown-fields": true},
    }));
    assert!(check(&st, json!({"port": 80, "free": {"a": [1]}})).is_empty());
    assert!(check(&st, json!({"port": "http"})).is_empty());
    assert_eq!(
        check(&st, json!({"port": true})),
        vec![
            "spec.port: Invalid value: \"\": \"spec.port\" must validate at least one schema (anyOf)",
            "spec.port: Invalid value: \"boolean\": spec.port in body must be of type integer,string: \"boolean\"",
            "spec.port: Invalid value: \"boolean\": spec.port in body must be of type integer: \"boolean\"",
        ]
    );
}

#[test]
fn structural_rejects_properties_with_additional_properties_and_bad_metadata() {
    let errs = rejected(json!({
        "type": "object",
        "properties": {
            "metadata": {"type": "object", "properties": {"labels": {"type": "object"}}},
            "spec": {"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": {"type": "string"}},
        }
    }));
    assert_eq!(
        errs,
        vec![
            format!(
                "{P}.properties[metadata]: Forbidden: must not specify anything other than name and generateName, but metadata is implicitly specified"
            ),
            format!(
                "{P}.properties[spec].additionalProperties: Forbidden: additionalProperties and properties are mutual exclusive"
            ),
        ]
    );
    // Restricting name alone is fine.
    schema(
        json!({"type": "object", "properties": {"metadata": {"type": "object", "properties": {"name": {"type": "string", "maxLength": 10}}}}}),
    );
}

#[test]
fn structural_rejects_value_validations_that_add_types_or_fields() {
    let errs = rejected(json!({
        "type": "object",
        "properties": {"spec": {
            "type": "object",
            "properties": {"a": {"type": "string"}},
            "anyOf": [{"type": "object"}, {"properties": {"b": {"minLength": 1}}}, {"required": ["a"], "properties": {"a": {"description": "x"}}}],
        }}
    }));
    assert_eq!(
        errs,
        vec![
            format!("{P}.properties[spec].anyOf[0].type: Forbidden: must be empty to be structural"),
            format!(
                "{P}.properties[spec].anyOf[2].properties[a].description: Forbidden: must be empty to be structural"
            ),
            format!(
                "{P}.properties[spec].properties[b]: Required value: because it is defined in {P}.properties[spec].anyOf[1].properties[b]"
            ),
        ]
    );
}

#[test]
fn structural_rejects_bad_keywords_and_patterns() {
    let errs = rejected(json!({"type": "object", "properties": {
        "a": {"type": "strin"},
        "b": {"type": "string", "pattern": "(["},
        "c": {"$ref": "#/definitions/x"},
    }}));
    assert_eq!(errs.len(), 4, "{errs:?}");
    assert!(errs[1].ends_with("must be a valid regular expression, but isn't: unclosed character class"), "{errs:?}");
    assert!(
        errs[0]
            .starts_with(&format!("{P}.properties[a].type: Unsupported value: \"strin\": supported values: \"array\""))
    );
    assert!(
        errs[1].starts_with(&format!(
            "{P}.properties[b].pattern: Invalid value: \"([\": must be a valid regular expression"
        ))
    );
    assert_eq!(errs[2], format!("{P}.properties[c].$ref: Forbidden: $ref is not supported"));
    assert_eq!(
        errs[3],
        format!("{P}.properties[c].type: Required value: must not be empty for specified object fields")
    );
}

#[test]
fn prune_drops_unknown_nested_fields_and_reports_paths() {
    let st = spec(json!({
        "known": {"type": "object", "properties": {"x": {"type": "string"}}},
        "items": {"type": "array", "items": {"type": "object", "properties": {"name": {"type": "string"}}}},
    }));
    let mut obj = json!({
        "apiVersion": "x/v1", "kind": "X", "metadata": {"name": "a", "whatever": 1},
        "spec": {"known": {"x": "1", "y": 2}, "items": [{"name": "a", "bar": 1}, {"name": "b"}], "foo": true},
        "status": {},
    });
    let pruned = st.prune(&mut obj);
    assert_eq!(pruned, vec!["spec.foo", "spec.items[0].bar", "spec.known.y", "status"]);
    assert_eq!(
        obj,
        json!({
            "apiVersion": "x/v1", "kind": "X", "metadata": {"name": "a", "whatever": 1},
            "spec": {"known": {"x": "1"}, "items": [{"name": "a"}, {"name": "b"}]},
        })
    );
}

#[test]
fn prune_honours_preserve_unknown_additional_properties_and_embedded() {
    let st = spec(json!({
        "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true, "properties": {"k": {"type": "object"}}},
        "labels": {"type": "object", "additionalProperties": {"type": "object", "properties": {"v": {"type": "string"}}}},
        "template": {
            "type": "object", "x-kubernetes-embedded-resource": true,
            "properties": {"spec": {"type": "object", "properties": {"image": {"type": "string"}}}},
        },
        "anything": {"type": "object", "x-kubernetes-embedded-resource": true, "x-kubernetes-preserve-unknown-fields": true},
    }));
    let mut obj = json!({"spec": {
        "free": {"unknown": {"deep": 1}, "k": {"dropped": 1}},
        "labels": {"a": {"v": "1", "w": 2}},
        "template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {"a": "b"}}, "spec": {"image": "i", "x": 1}, "status": {}},
        "anything": {"apiVersion": "v1", "kind": "ConfigMap", "data": {"a": "b"}},
    }});
    let pruned = st.prune(&mut obj);
    assert_eq!(pruned, vec!["spec.free.k.dropped", "spec.labels.a.w", "spec.template.spec.x", "spec.template.status"]);
    assert_eq!(obj["spec"]["free"]["unknown"], json!({"deep": 1}));
    assert_eq!(obj["spec"]["template"]["metadata"], json!({"name": "p", "labels": {"a": "b"}}));
    assert_eq!(obj["spec"]["template"]["kind"], "Pod");
    assert_eq!(obj["spec"]["anything"]["data"], json!({"a": "b"}));

    // A boolean additionalProperties keeps scalars but has no schema for what is inside objects.
    let st = spec(
        json!({"loose": {"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": true}}),
    );
    let mut obj = json!({"spec": {"loose": {"a": "1", "b": 2, "c": {"d": 1}, "e": [{"f": 1}]}}});
    assert_eq!(st.prune(&mut obj), vec!["spec.loose.c.d", "spec.loose.e[0].f"]);
    assert_eq!(obj["spec"]["loose"], json!({"a": "1", "b": 2, "c": {}, "e": [{}]}));
}

#[test]
fn defaults_apply_nested_in_items_and_map_values_only_where_parents_exist() {
    let st = spec(json!({
        "replicas": {"type": "integer", "default": 1},
        "strategy": {"type": "object", "default": {}, "properties": {"kind": {"type": "string", "default": "Rolling"}}},
        "absent": {"type": "object", "properties": {"inner": {"type": "string", "default": "x"}}},
        "ports": {"type": "array", "items": {"type": "object", "properties": {"protocol": {"type": "string", "default": "TCP"}}}},
        "limits": {"type": "object", "additionalProperties": {"type": "object", "properties": {"max": {"type": "integer", "default": 5}}}},
    }));
    let mut obj = json!({"metadata": {"name": "a"}, "spec": {"ports": [{"port": 1}, {"protocol": "UDP"}], "limits": {"cpu": {}}}});
    st.apply_defaults(&mut obj);
    assert_eq!(
        obj["spec"],
        json!({
            "replicas": 1,
            "strategy": {"kind": "Rolling"},
            "ports": [{"port": 1, "protocol": "TCP"}, {"protocol": "UDP"}],
            "limits": {"cpu": {"max": 5}},
        })
    );
}

#[test]
fn defaults_replace_non_nullable_nulls_and_drop_the_rest() {
    let st = spec(json!({
        "a": {"type": "string", "default": "d"},
        "b": {"type": "string"},
        "c": {"type": "string", "nullable": true, "default": "d"},
        "d": {"type": "string", "nullable": true},
    }));
    let mut obj = json!({"spec": {"a": null, "b": null, "c": null, "d": null}});
    st.apply_defaults(&mut obj);
    assert_eq!(obj["spec"], json!({"a": "d", "c": null, "d": null}));
    assert!(check(&st, obj["spec"].clone()).is_empty());
}

#[test]
fn validate_type_messages() {
    let st = spec(json!({"replicas": {"type": "integer"}, "ratio": {"type": "number"}, "o": {"type": "object"}}));
    assert_eq!(
        check(&st, json!({"replicas": "string", "ratio": 1, "o": null})),
        vec![
            "spec.o: Invalid value: \"null\": spec.o in body must be of type object: \"null\"",
            "spec.replicas: Invalid value: \"string\": spec.replicas in body must be of type integer: \"string\"",
        ]
    );
    assert_eq!(
        check(&st, json!({"replicas": 1.5})),
        vec!["spec.replicas: Invalid value: \"number\": spec.replicas in body must be of type integer: \"number\""]
    );
    assert!(check(&st, json!({"replicas": 2.0})).is_empty());
}

#[test]
fn validate_enum_required_and_numbers() {
    let st = schema(json!({"type": "object", "properties": {"spec": {
        "type": "object",
        "required": ["size"],
        "properties": {
            "size": {"type": "integer", "minimum": 0, "maximum": 10, "multipleOf": 2},
            "mode": {"type": "string", "enum": ["a", "b"]},
            "ex": {"type": "number", "minimum": 1.5, "exclusiveMinimum": true, "maximum": 3, "exclusiveMaximum": true},
        },
    }}}));
    assert_eq!(
        check(&st, json!({"mode": "x", "ex": 1.5})),
        vec![
            "spec.size: Required value",
            "spec.ex: Invalid value: 1.5: spec.ex in body should be greater than 1.5",
            "spec.mode: Unsupported value: \"x\": supported values: \"a\", \"b\"",
        ]
    );
    assert_eq!(
        check(&st, json!({"size": -1, "ex": 3})),
        vec![
            "spec.ex: Invalid value: 3: spec.ex in body should be less than 3",
            "spec.size: Invalid value: -1: spec.size in body should be greater than or equal to 0",
            "spec.size: Invalid value: -1: spec.size in body should be a multiple of 2",
        ]
    );
    assert_eq!(
        check(&st, json!({"size": 4, "mode": true})),
        vec![
            "spec.mode: Invalid value: \"boolean\": spec.mode in body must be of type string: \"boolean\"",
            "spec.mode: Unsupported value: true: supported values: \"a\", \"b\"",
        ]
    );
    assert_eq!(
        check(&st, json!({"size": 12})),
        vec!["spec.size: Invalid value: 12: spec.size in body should be less than or equal to 10"]
    );
}

#[test]
fn validate_strings_lengths_pattern_formats() {
    let st = spec(json!({
        "name": {"type": "string", "pattern": "^[a-z]+$", "minLength": 2, "maxLength": 4},
        "at": {"type": "string", "format": "date-time"},
        "n": {"type": "integer", "format": "int32"},
        "other": {"type": "string", "format": "made-up"},
        "title": {"type": "string", "maxLength": 4},
    }));
    assert!(
        check(&st, json!({"title": "äöüß", "name": "ab", "at": "2024-02-29T10:00:00.5+02:00", "n": 5, "other": "?"}))
            .is_empty()
    );
    assert_eq!(
        check(&st, json!({"name": "X", "at": "2023-02-29T10:00:00Z", "n": 3_000_000_000u64})),
        vec![
            "spec.at: Invalid value: \"2023-02-29T10:00:00Z\": spec.at in body must be of type date-time: \"2023-02-29T10:00:00Z\"",
            "spec.n: Invalid value: 3000000000: spec.n in body must be of type int32: \"3000000000\"",
            "spec.name: Invalid value: \"X\": spec.name in body should be at least 2 chars long",
            "spec.name: Invalid value: \"X\": spec.name in body should match '^[a-z]+$'",
        ]
    );
    assert_eq!(check(&st, json!({"name": "abcde"})), vec!["spec.name: Too long: may not be more than 4 bytes"]);
    assert_eq!(check(&st, json!({"title": "äöüßx"})), vec!["spec.title: Too long: may not be more than 4 bytes"]);
    for ok in
        ["2024-01-01T00:00:00Z", "2024-01-01t00:00:00z", "2024-01-01T23:59:59.123456789-07:00", "2024-01-01T10:00Z"]
    {
        assert!(check(&st, json!({"at": ok})).is_empty(), "{ok}");
    }
    for bad in [
        "2024-01-01",
        "2024-13-01T00:00:00Z",
        "2024-01-01T24:00:00Z",
        "2024-01-01T00:00:00+2",
        "yesterday",
        "2024-01-01T00:00:00+aä0",
        "2024-01-01Tä0:00:00Z",
    ] {
        assert_eq!(check(&st, json!({"at": bad})).len(), 1, "{bad}");
    }
}

#[test]
fn validate_arrays_objects_and_list_types() {
    let st = spec(json!({
        "tags": {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 2, "x-kubernetes-list-type": "set"},
        "ports": {
            "type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
            "items": {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}, "port": {"type": "integer"}}},
        },
        "labels": {"type": "object", "minProperties": 1, "maxProperties": 2, "additionalProperties": {"type": "string"}},
        "uniq": {"type": "array", "uniqueItems": true, "items": {"type": "integer"}},
    }));
    assert_eq!(
        check(
            &st,
            json!({
                "tags": ["a", "b", "a", "a"],
                "ports": [{"name": "a", "port": 1}, {"name": "a", "port": 2}, {"port": "x"}],
                "labels": {"a": "1", "b": 2, "c": "3"},
                "uniq": [1, 1.0],
            })
        ),
        vec![
            "spec.labels: Too many: 3: must have at most 2 items",
            "spec.labels.b: Invalid value: \"integer\": spec.labels.b in body must be of type string: \"integer\"",
            "spec.ports[1]: Duplicate value: {\"name\":\"a\"}",
            "spec.ports[2].name: Required value",
            "spec.ports[2].port: Invalid value: \"string\": spec.ports[2].port in body must be of type integer: \"string\"",
            "spec.tags: Too many: 4: must have at most 2 items",
            "spec.tags[2]: Duplicate value: \"a\"",
            "spec.uniq[1]: Duplicate value: 1.0",
        ]
    );
    assert_eq!(
        check(&st, json!({"ports": [{"name": "a"}, "x"]})),
        vec![
            "spec.ports[1]: Invalid value: \"string\": spec.ports[1] in body must be of type object: \"string\"",
            "spec.ports[1]: Invalid value: \"x\": must be an object for an array of list-type map",
        ]
    );
    assert_eq!(
        check(&st, json!({"uniq": [{"b": 1, "a": 2}, {"a": 2.0, "b": 1}]})),
        vec![
            "spec.uniq[0]: Invalid value: \"object\": spec.uniq[0] in body must be of type integer: \"object\"",
            "spec.uniq[1]: Duplicate value: {\"a\":2.0,\"b\":1}",
            "spec.uniq[1]: Invalid value: \"object\": spec.uniq[1] in body must be of type integer: \"object\"",
        ]
    );
    assert_eq!(
        check(&st, json!({"tags": [], "labels": {}})),
        vec![
            "spec.labels: Invalid value: 0: spec.labels in body should have at least 1 properties",
            "spec.tags: Invalid value: 0: spec.tags in body should have at least 1 items",
        ]
    );
}

#[test]
fn validate_junctors_and_embedded_resources() {
    let st = spec(json!({
        "a": {"type": "string", "anyOf": [{"pattern": "^x"}, {"maxLength": 1}]},
        "b": {"type": "integer", "oneOf": [{"minimum": 0}, {"maximum": 10}]},
        "c": {"type": "integer", "not": {"minimum": 5}},
        "d": {"type": "string", "allOf": [{"minLength": 2}]},
        "t": {"type": "object", "x-kubernetes-embedded-resource": true, "x-kubernetes-preserve-unknown-fields": true},
    }));
    assert!(
        check(&st, json!({"a": "xyz", "b": -1, "c": 4, "d": "ab", "t": {"apiVersion": "v1", "kind": "Pod"}}))
            .is_empty()
    );
    assert_eq!(
        check(&st, json!({"a": "yz", "b": 5, "c": 6, "d": "a", "t": {"kind": ""}})),
        vec![
            "spec.a: Invalid value: \"\": \"spec.a\" must validate at least one schema (anyOf)",
            "spec.a: Invalid value: \"yz\": spec.a in body should match '^x'",
            "spec.b: Invalid value: \"\": \"spec.b\" must validate one and only one schema (oneOf)",
            "spec.c: Invalid value: \"\": \"spec.c\" must not validate the schema (not)",
            "spec.d: Invalid value: \"a\": spec.d in body should be at least 2 chars long",
            "spec.d: Invalid value: \"\": \"spec.d\" must validate all the schemas (allOf). None validated",
            "spec.t.apiVersion: Required value: must not be empty",
            "spec.t.kind: Required value: must not be empty",
        ]
    );
}

#[test]
fn type_at_and_list_info_follow_fields_and_items() {
    let st = spec(json!({
        "replicas": {"type": "integer"},
        "ports": {
            "type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name", "protocol"],
            "items": {"type": "object", "x-kubernetes-map-type": "atomic", "properties": {"name": {"type": "string"}}},
        },
        "labels": {"type": "object", "additionalProperties": {"type": "boolean"}},
    }));
    assert_eq!(st.type_at(&["spec", "replicas"]), Some("integer"));
    assert_eq!(st.type_at(&["spec", "ports", "[]", "name"]), Some("string"));
    assert_eq!(st.type_at(&["spec", "labels", "anykey"]), Some("boolean"));
    assert_eq!(st.type_at(&["spec", "nope"]), None);
    assert_eq!(
        st.list_info(&["spec", "ports"]),
        Some(ListInfo {
            list_type: Some("map".into()),
            list_map_keys: vec!["name".into(), "protocol".into()],
            map_type: None
        })
    );
    assert_eq!(st.list_info(&["spec", "ports", "[]"]).and_then(|l| l.map_type), Some("atomic".into()));
    assert_eq!(st.list_info(&["spec", "missing"]), None);
}

#[test]
fn root_metadata_is_neither_pruned_defaulted_nor_validated() {
    let st = schema(json!({"type": "object", "properties": {
        "metadata": {"type": "object", "properties": {"name": {"type": "string", "maxLength": 3}}},
        "spec": {"type": "object"},
    }}));
    let mut obj = json!({"apiVersion": "x/v1", "kind": "X", "metadata": {"name": "toolong", "labels": {"a": null}}});
    assert!(st.prune(&mut obj).is_empty());
    st.apply_defaults(&mut obj);
    assert_eq!(obj["metadata"], json!({"name": "toolong", "labels": {"a": null}}));
    assert!(st.validate(&obj).is_empty());
}
