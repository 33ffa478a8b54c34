//! `x-kubernetes-validations`: compiling with the schema, evaluating on create and update.

use serde_json::{Value, json};

use super::Structural;

const P: &str = "spec.versions[0].schema.openAPIV3Schema";

fn schema(s: Value) -> Structural {
    match Structural::new(&s, P) {
        Ok(st) => st,
        Err(e) => panic!("schema rejected: {e:?}"),
    }
}

/// A root schema whose `spec` is `spec_schema`.
fn with_spec(spec_schema: Value) -> Structural {
    schema(json!({"type": "object", "properties": {"spec": spec_schema}}))
}

fn obj(spec: Value) -> Value {
    json!({"apiVersion": "x/v1", "kind": "X", "metadata": {"name": "a"}, "spec": spec})
}

fn create(st: &Structural, spec: Value) -> Vec<String> {
    st.validate(&obj(spec)).iter().map(|e| format!("{}: {}", e.field, e.message)).collect()
}

fn update(st: &Structural, spec: Value, old: Value) -> Vec<String> {
    st.validate_update(&obj(spec), &obj(old)).iter().map(|e| format!("{}: {}", e.field, e.message)).collect()
}

fn min_max(rule: Value) -> Structural {
    with_spec(json!({
        "type": "object",
        "properties": {"min": {"type": "integer"}, "max": {"type": "integer"}},
        "x-kubernetes-validations": [rule],
    }))
}

#[test]
fn structural_cel_compile_error_names_the_rule_path() {
    let s = json!({"type": "object", "properties": {"spec": {
        "type": "object",
        "x-kubernetes-validations": [{"rule": "true"}, {"rule": "self.min <="}],
    }}});
    let errs = match Structural::new(&s, P) {
        Ok(_) => panic!("accepted a rule that does not compile"),
        Err(e) => e,
    };
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!(errs[0].field, format!("{P}.properties[spec].x-kubernetes-validations[1].rule"));
    assert_eq!(errs[0].reason, "FieldValueInvalid");
    assert!(errs[0].message.starts_with("Invalid value: \"self.min <=\": compilation failed: "), "{}", errs[0].message);
}

#[test]
fn structural_cel_unsupported_kubernetes_function_is_refused() {
    let s = json!({"type": "object", "properties": {"spec": {
        "type": "object",
        "properties": {"q": {"type": "string"}},
        "x-kubernetes-validations": [{"rule": "quantity(self.q).isGreaterThan(quantity('1'))"}],
    }}});
    let errs = Structural::new(&s, P).err().unwrap_or_default();
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(errs[0].message.contains("function \"quantity\" is not supported"), "{}", errs[0].message);
}

#[test]
fn structural_cel_object_rule_passes_and_fails() {
    let st = min_max(json!({"rule": "self.min <= self.max", "message": "min must not exceed max"}));
    assert!(create(&st, json!({"min": 1, "max": 2})).is_empty());
    assert_eq!(
        create(&st, json!({"min": 3, "max": 2})),
        vec!["spec: Invalid value: \"object\": min must not exceed max"]
    );
}

#[test]
fn structural_cel_messages_default_static_and_expression() {
    let default = min_max(json!({"rule": "self.min <= self.max"}));
    assert_eq!(
        create(&default, json!({"min": 3, "max": 2})),
        vec!["spec: Invalid value: \"object\": failed rule: self.min <= self.max"]
    );
    let expr = min_max(json!({
        "rule": "self.min <= self.max",
        "message": "static",
        "messageExpression": "'min ' + string(self.min) + ' exceeds max ' + string(self.max)",
    }));
    assert_eq!(
        create(&expr, json!({"min": 3, "max": 2})),
        vec!["spec: Invalid value: \"object\": min 3 exceeds max 2"]
    );
}

#[test]
fn structural_cel_string_rule_and_every_array_item() {
    let st = with_spec(json!({
        "type": "object",
        "properties": {
            "name": {"type": "string", "x-kubernetes-validations": [{"rule": "self.startsWith('a')"}]},
            "tags": {"type": "array", "items": {
                "type": "string",
                "x-kubernetes-validations": [{"rule": "self.matches('^[a-z]+$') && size(self) < 5", "message": "bad tag"}],
            }},
        },
    }));
    assert!(create(&st, json!({"name": "abc", "tags": ["x", "yz"]})).is_empty());
    let mut got = create(&st, json!({"name": "bcd", "tags": ["ok", "NO", "toolong"]}));
    got.sort();
    assert_eq!(
        got,
        vec![
            "spec.name: Invalid value: \"string\": failed rule: self.startsWith('a')",
            "spec.tags[1]: Invalid value: \"string\": bad tag",
            "spec.tags[2]: Invalid value: \"string\": bad tag",
        ]
    );
}

#[test]
fn structural_cel_macros_and_has() {
    let st = with_spec(json!({
        "type": "object",
        "properties": {
            "ports": {"type": "array", "items": {"type": "integer"}},
            "opt": {"type": "string"},
        },
        "x-kubernetes-validations": [
            {"rule": "self.ports.all(p, p > 0) && self.ports.exists(p, p == 80)", "message": "ports"},
            {"rule": "self.ports.filter(p, p > 1000).map(p, p * 2).size() <= 1", "message": "high"},
            {"rule": "!has(self.opt) || self.opt.endsWith('z') || self.opt.contains('q')", "message": "opt"},
        ],
    }));
    assert!(create(&st, json!({"ports": [80, 443]})).is_empty());
    assert!(create(&st, json!({"ports": [80], "opt": "xyz"})).is_empty());
    assert_eq!(
        create(&st, json!({"ports": [0, 2000, 3000], "opt": "abc"})),
        vec![
            "spec: Invalid value: \"object\": ports",
            "spec: Invalid value: \"object\": high",
            "spec: Invalid value: \"object\": opt",
        ]
    );
}

#[test]
fn structural_cel_reason_and_field_path() {
    let st = min_max(json!({
        "rule": "self.min <= self.max",
        "message": "too big",
        "reason": "FieldValueForbidden",
        "fieldPath": ".min",
    }));
    let errs = st.validate(&obj(json!({"min": 3, "max": 2})));
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].reason, "FieldValueForbidden");
    assert_eq!(format!("{}: {}", errs[0].field, errs[0].message), "spec.min: Forbidden: too big");
    let bad = json!({"type": "object", "properties": {"spec": {
        "type": "object", "x-kubernetes-validations": [{"rule": "true", "reason": "Nope"}],
    }}});
    assert!(Structural::new(&bad, P).is_err());
}

#[test]
fn structural_cel_transition_rule_immutability() {
    let st = with_spec(json!({
        "type": "object",
        "properties": {"id": {
            "type": "string",
            "x-kubernetes-validations": [{"rule": "self == oldSelf", "message": "Value is immutable"}],
        }},
    }));
    // Create: no old object, the rule is skipped.
    assert!(create(&st, json!({"id": "a"})).is_empty());
    assert!(update(&st, json!({"id": "a"}), json!({"id": "a"})).is_empty());
    assert_eq!(
        update(&st, json!({"id": "b"}), json!({"id": "a"})),
        vec!["spec.id: Invalid value: \"string\": Value is immutable"]
    );
    // Newly set on update: no old value at that path, skipped.
    assert!(update(&st, json!({"id": "b"}), json!({})).is_empty());
}

#[test]
fn structural_cel_transition_rules_in_lists() {
    let item = json!({
        "type": "object",
        "properties": {"name": {"type": "string"}, "size": {"type": "integer"}},
        "x-kubernetes-validations": [{"rule": "self.size >= oldSelf.size", "message": "may not shrink"}],
    });
    let map_list = with_spec(json!({"type": "object", "properties": {"disks": {
        "type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"], "items": item,
    }}}));
    let old = json!({"disks": [{"name": "a", "size": 5}, {"name": "b", "size": 5}]});
    // Reordered and "b" shrunk: correlated by key, so only "b" (now at index 0) fails.
    assert_eq!(
        update(&map_list, json!({"disks": [{"name": "b", "size": 1}, {"name": "a", "size": 9}]}), old.clone()),
        vec!["spec.disks[0]: Invalid value: \"object\": may not shrink"]
    );
    let atomic = with_spec(json!({"type": "object", "properties": {"disks": {"type": "array", "items": item}}}));
    assert!(update(&atomic, json!({"disks": [{"name": "b", "size": 1}]}), old).is_empty());
}

#[test]
fn structural_cel_evaluation_error_is_reported() {
    let st = with_spec(json!({
        "type": "object",
        "properties": {"a": {"type": "integer"}},
        "x-kubernetes-validations": [{"rule": "self.b == 1"}],
    }));
    let got = create(&st, json!({"a": 1}));
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0], "spec: Invalid value: \"object\": no such key: b evaluating rule: self.b == 1");
}

#[test]
fn structural_cel_numbers_and_additional_properties() {
    let st = with_spec(json!({
        "type": "object",
        "properties": {
            "ratio": {"type": "number", "x-kubernetes-validations": [{"rule": "self < 1.5"}]},
            "limits": {"type": "object", "additionalProperties": {
                "type": "integer", "x-kubernetes-validations": [{"rule": "self % 2 == 0", "message": "even"}],
            }},
        },
    }));
    assert!(create(&st, json!({"ratio": 1, "limits": {"a": 2, "b": 4}})).is_empty());
    let mut got = create(&st, json!({"ratio": 2, "limits": {"a": 3}}));
    got.sort();
    assert_eq!(
        got,
        vec![
            "spec.limits.a: Invalid value: \"integer\": even",
            "spec.ratio: Invalid value: \"number\": failed rule: self < 1.5"
        ]
    );
}

#[test]
fn structural_cel_cost_bounds() {
    let long = format!("{} == 1", "1 + ".repeat(3000));
    let deep = "self.l.all(a, self.l.all(b, self.l.all(c, a + b + c > 0)))";
    for rule in [long.as_str(), deep] {
        let s = json!({"type": "object", "properties": {"spec": {
            "type": "object",
            "properties": {"l": {"type": "array", "items": {"type": "integer"}}},
            "x-kubernetes-validations": [{"rule": rule}],
        }}});
        let errs = Structural::new(&s, P).err().unwrap_or_default();
        assert_eq!(errs.len(), 1, "{rule}: {errs:?}");
        assert!(errs[0].message.contains("compilation failed"), "{}", errs[0].message);
    }
}

#[test]
fn structural_cel_optional_old_self_runs_without_an_old_value() {
    let st = with_spec(json!({
        "type": "object",
        "properties": {"id": {
            "type": "string",
            "x-kubernetes-validations": [{
                "rule": "!oldSelf.hasValue() || self == oldSelf.value()",
                "message": "Value is immutable",
                "optionalOldSelf": true,
            }],
        }},
    }));
    assert!(create(&st, json!({"id": "a"})).is_empty());
    assert!(update(&st, json!({"id": "a"}), json!({"id": "a"})).is_empty());
    assert_eq!(
        update(&st, json!({"id": "b"}), json!({"id": "a"})),
        vec!["spec.id: Invalid value: \"string\": Value is immutable"]
    );
    // optionalOldSelf on a rule without oldSelf is refused, as Kubernetes does.
    let bad = json!({"type": "object", "properties": {"spec": {
        "type": "object", "x-kubernetes-validations": [{"rule": "true", "optionalOldSelf": true}],
    }}});
    assert!(Structural::new(&bad, P).is_err());
}
