//! `x-kubernetes-validations`: CEL rules on schema nodes, compiled when the CRD is parsed and
//! evaluated on every write of a custom object, with Kubernetes' wording for failures.
//!
//! The CEL language itself comes from the `cel` crate (its standard library plus its `strings`,
//! `lists` and `math` extensions, and `matches` through `regex`). Kubernetes' own libraries
//! (quantity, ip, cidr, url, format, `isSorted`/`sum`/`min`/`max` on lists, semver, authorizer)
//! and the `duration`/`timestamp` types are not there: a rule calling one of the Kubernetes
//! functions is refused when the CRD is written, naming the function.
//!
//! Rules are evaluated on the structural nodes (properties, items, additionalProperties); rules
//! written inside allOf/anyOf/oneOf/not are compiled (and so checked) but not evaluated. Null
//! values are not evaluated, like absent ones.
//!
//! Cost: Kubernetes estimates a rule's cost from the schema's maxItems/maxLength and refuses
//! expensive rules. Here two cheap bounds replace the estimate: a rule (or messageExpression) may
//! be at most [`MAX_RULE_LEN`] bytes, and macros (all, exists, exists_one, map, filter) may nest at
//! most [`MAX_COMPREHENSION_DEPTH`] deep, so one rule's work stays polynomial of low degree in the
//! size of the object, which the API server already bounds.

use std::sync::{Arc, OnceLock};

use cel::common::ast::{EntryExpr, Expr, IdedEntryExpr, IdedExpr};
use cel::objects::{Key, OptionalValue};
use cel::{Context, Env, Program, Value as CelValue};
use serde_json::{Map, Value, json};

use super::{Additional, Node, child, index};
use crate::FieldError;

/// The longest rule or messageExpression accepted, in bytes.
pub(super) const MAX_RULE_LEN: usize = 8 * 1024;

/// How deep comprehension macros may nest in one expression.
pub(super) const MAX_COMPREHENSION_DEPTH: usize = 2;

/// Kubernetes CEL library functions this implementation lacks; a rule calling one is refused.
const UNSUPPORTED: &[&str] = &[
    "quantity",
    "isQuantity",
    "ip",
    "isIP",
    "cidr",
    "isCIDR",
    "url",
    "isURL",
    "isSorted",
    "sum",
    "min",
    "max",
    "semver",
    "isSemver",
    "format.named",
    "validate",
    "authorizer",
    "duration",
    "timestamp",
    "getDayOfWeek",
    "getHours",
];

/// The reasons a rule may give its failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reason {
    Invalid,
    Forbidden,
    Required,
    Duplicate,
}

/// One compiled `x-kubernetes-validations` entry.
#[derive(Debug, Clone)]
pub(super) struct Rule {
    source: String,
    program: Arc<Program>,
    message: Option<String>,
    message_expression: Option<Arc<Program>>,
    reason: Reason,
    field_path: Option<String>,
    /// The rule mentions `oldSelf`: a transition rule, evaluated on updates only.
    transition: bool,
    optional_old_self: bool,
}

/// The environment every rule is compiled and run in: the standard library plus the
/// extensions that match Kubernetes' strings and lists libraries best.
fn env() -> Arc<Env> {
    static ENV: OnceLock<Arc<Env>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Env::stdlib();
        // Registering into a fresh stdlib Env only fails on a name clash, which would be a bug in
        // the crate; the extension is then simply missing and its calls fail at evaluation.
        for ext in [cel::extensions::strings, cel::extensions::lists, cel::extensions::math] {
            let _ = env.add_extension(ext);
        }
        Arc::new(env)
    })
    .clone()
}

/// Parses and checks the `x-kubernetes-validations` of a schema node at `path`.
pub(super) fn parse_rules(v: Option<&Value>, path: &str, errs: &mut Vec<FieldError>) -> Vec<Rule> {
    let list_path = format!("{path}.x-kubernetes-validations");
    let items = match v {
        None | Some(Value::Null) => return Vec::new(),
        Some(Value::Array(a)) => a,
        Some(other) => {
            errs.push(FieldError::invalid(list_path, other, "must be a list of validation rules"));
            return Vec::new();
        }
    };
    let mut rules = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let ipath = index(&list_path, i);
        if let Some(rule) = parse_rule(item, &ipath, errs) {
            rules.push(rule);
        }
    }
    rules
}

fn opt_str(m: &Map<String, Value>, k: &str, path: &str, errs: &mut Vec<FieldError>) -> Option<String> {
    match m.get(k) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.trim().is_empty() => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => {
            errs.push(FieldError::invalid(format!("{path}.{k}"), other, "must be a string"));
            None
        }
    }
}

fn parse_rule(item: &Value, path: &str, errs: &mut Vec<FieldError>) -> Option<Rule> {
    let Some(m) = item.as_object() else {
        errs.push(FieldError::invalid(path, item, "must be a validation rule object"));
        return None;
    };
    let before = errs.len();
    let rule_path = format!("{path}.rule");
    let source = match m.get("rule") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
        _ => {
            errs.push(FieldError::required(rule_path, ""));
            return None;
        }
    };
    let program = compile(&source, &rule_path, errs);
    let message = opt_str(m, "message", path, errs);
    let message_expression = opt_str(m, "messageExpression", path, errs)
        .and_then(|src| compile(&src, &format!("{path}.messageExpression"), errs));
    let reason = match opt_str(m, "reason", path, errs).as_deref() {
        None | Some("FieldValueInvalid") => Reason::Invalid,
        Some("FieldValueForbidden") => Reason::Forbidden,
        Some("FieldValueRequired") => Reason::Required,
        Some("FieldValueDuplicate") => Reason::Duplicate,
        Some(other) => {
            errs.push(FieldError::not_supported(
                format!("{path}.reason"),
                &json!(other),
                &["FieldValueInvalid", "FieldValueForbidden", "FieldValueRequired", "FieldValueDuplicate"],
            ));
            Reason::Invalid
        }
    };
    let field_path = opt_str(m, "fieldPath", path, errs);
    let optional_old_self = matches!(m.get("optionalOldSelf"), Some(Value::Bool(true)));
    let program = program?;
    let transition = program.references().has_variable("oldSelf");
    if optional_old_self && !transition {
        errs.push(FieldError::invalid(
            format!("{path}.optionalOldSelf"),
            &json!(true),
            "may not be set if rule does not use oldSelf",
        ));
    }
    if errs.len() > before {
        return None;
    }
    Some(Rule { source, program, message, message_expression, reason, field_path, transition, optional_old_self })
}

/// Compiles one expression, reporting why it cannot be used at `path`.
fn compile(src: &str, path: &str, errs: &mut Vec<FieldError>) -> Option<Arc<Program>> {
    let fail = |errs: &mut Vec<FieldError>, why: String| {
        errs.push(FieldError::invalid(path, &json!(src), &format!("compilation failed: {why}")));
    };
    if src.len() > MAX_RULE_LEN {
        fail(errs, format!("expression is longer than {MAX_RULE_LEN} bytes"));
        return None;
    }
    let program = match env().compile(src) {
        Ok(p) => p,
        Err(e) => {
            // The parser's message can span lines (source excerpt and caret); one line reads better.
            let text = e.to_string().lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" ");
            fail(errs, text);
            return None;
        }
    };
    let refs = program.references();
    if let Some(f) = UNSUPPORTED.iter().find(|f| refs.has_function(f)) {
        fail(errs, format!("function {f:?} is not supported by this API server"));
        return None;
    }
    let depth = comprehension_depth(program.expression());
    if depth > MAX_COMPREHENSION_DEPTH {
        fail(
            errs,
            format!(
                "macros (all, exists, map, filter) nest {depth} deep, more than the {MAX_COMPREHENSION_DEPTH} allowed"
            ),
        );
        return None;
    }
    Some(Arc::new(program))
}

/// How deeply comprehensions nest in `e`.
fn comprehension_depth(e: &IdedExpr) -> usize {
    match &e.expr {
        Expr::Call(c) => {
            let target = c.target.as_deref().map_or(0, comprehension_depth);
            c.args.iter().map(comprehension_depth).max().unwrap_or(0).max(target)
        }
        Expr::Comprehension(c) => {
            let inner = [&c.accu_init, &c.loop_cond, &c.loop_step, &c.result]
                .into_iter()
                .map(comprehension_depth)
                .max()
                .unwrap_or(0);
            comprehension_depth(&c.iter_range).max(1 + inner)
        }
        Expr::List(l) => l.elements.iter().map(comprehension_depth).max().unwrap_or(0),
        Expr::Map(m) => entries_depth(&m.entries),
        Expr::Struct(s) => entries_depth(&s.entries),
        Expr::Select(s) => comprehension_depth(&s.operand),
        Expr::Ident(_) | Expr::Literal(_) | Expr::Unspecified => 0,
    }
}

/// The deepest comprehension nesting among the entries of a map or message literal.
fn entries_depth(entries: &[IdedEntryExpr]) -> usize {
    entries
        .iter()
        .map(|en| match &en.expr {
            EntryExpr::MapEntry(me) => comprehension_depth(&me.key).max(comprehension_depth(&me.value)),
            EntryExpr::StructField(sf) => comprehension_depth(&sf.value),
        })
        .max()
        .unwrap_or(0)
}

/// Evaluates the rules of `node` and of every node below it against `v` (and `old`, the value at
/// the same path in the old object on updates), appending failures.
pub(super) fn evaluate(
    node: &Node,
    v: &Value,
    old: Option<&Value>,
    path: &str,
    update: bool,
    errs: &mut Vec<FieldError>,
) {
    if v.is_null() {
        return;
    }
    if !node.rules.is_empty() {
        let this = to_cel(Some(node), v);
        let old_cel = old.filter(|o| !o.is_null()).map(|o| to_cel(Some(node), o));
        for rule in &node.rules {
            run_rule(rule, node, v, &this, old_cel.as_ref(), path, update, errs);
        }
    }
    match v {
        Value::Object(map) => {
            for (k, fv) in map {
                let sub = match node.properties.get(k) {
                    Some(p) => p,
                    None => match &node.additional {
                        Some(Additional::Schema(a)) => a,
                        _ => continue,
                    },
                };
                let old_fv = old.and_then(|o| o.get(k));
                evaluate(sub, fv, old_fv, &child(path, k), update, errs);
            }
        }
        Value::Array(items) => {
            let Some(item_node) = node.items.as_deref() else { return };
            let old_items = old.and_then(Value::as_array);
            for (i, iv) in items.iter().enumerate() {
                let old_iv = match (node.list_type.as_deref(), old_items) {
                    (Some("map"), Some(olds)) => correlate(&node.list_map_keys, iv, olds),
                    _ => None,
                };
                evaluate(item_node, iv, old_iv, &index(path, i), update, errs);
            }
        }
        _ => {}
    }
}

/// The item of a list-type map in the old list with the same key fields as `item`.
fn correlate<'a>(keys: &[String], item: &Value, olds: &'a [Value]) -> Option<&'a Value> {
    olds.iter().find(|o| keys.iter().all(|k| o.get(k) == item.get(k)))
}

#[allow(clippy::too_many_arguments)]
fn run_rule(
    rule: &Rule,
    node: &Node,
    v: &Value,
    this: &CelValue,
    old: Option<&CelValue>,
    path: &str,
    update: bool,
    errs: &mut Vec<FieldError>,
) {
    let old_binding = if rule.transition {
        match (update, old, rule.optional_old_self) {
            (true, Some(o), false) => Some(o.clone()),
            (true, Some(o), true) => Some(CelValue::Opaque(Arc::new(OptionalValue::of(o.clone())))),
            (_, None, true) | (false, _, true) => Some(CelValue::Opaque(Arc::new(OptionalValue::none()))),
            // Without an old value a transition rule has nothing to compare against.
            _ => return,
        }
    } else {
        None
    };
    let mut ctx = Context::with_env(env());
    ctx.add_variable_from_value("self", this.clone());
    if let Some(o) = old_binding {
        ctx.add_variable_from_value("oldSelf", o);
    }
    let field = match &rule.field_path {
        Some(fp) => join_field_path(path, fp),
        None => path.to_string(),
    };
    let shown = json!(node.ty.clone().unwrap_or_else(|| type_name(v).to_string()));
    match rule.program.execute(&ctx) {
        Ok(CelValue::Bool(true)) => {}
        Ok(CelValue::Bool(false)) => {
            let message = failure_message(rule, &ctx);
            errs.push(match rule.reason {
                Reason::Invalid => FieldError::invalid(field, &shown, &message),
                Reason::Forbidden => FieldError::forbidden(field, &message),
                Reason::Required => FieldError::required(field, &message),
                Reason::Duplicate => FieldError::duplicate(field, &shown),
            });
        }
        Ok(other) => {
            let got = format!("{:?}", other.type_of());
            errs.push(FieldError::invalid(
                field,
                &shown,
                &format!("rule did not evaluate to a bool but to {got} evaluating rule: {}", rule.source),
            ));
        }
        Err(e) => {
            // cel-go, which Kubernetes uses, words its errors in lower case ("no such key: x").
            let text = e.to_string();
            let mut chars = text.chars();
            let text = match chars.next() {
                Some(c) => c.to_lowercase().chain(chars).collect::<String>(),
                None => text,
            };
            errs.push(FieldError::invalid(field, &shown, &format!("{text} evaluating rule: {}", rule.source)));
        }
    }
}

/// `message`, else the string messageExpression gives, else Kubernetes' default.
fn failure_message(rule: &Rule, ctx: &Context) -> String {
    if let Some(expr) = &rule.message_expression {
        match expr.execute(ctx) {
            Ok(CelValue::String(s)) if !s.trim().is_empty() => return s.to_string(),
            // Kubernetes falls back to the static message when the expression fails.
            Ok(_) | Err(_) => {}
        }
    }
    if let Some(m) = &rule.message {
        return m.clone();
    }
    format!("failed rule: {}", rule.source)
}

/// `fieldPath` (".a.b", "['a.b']" or "a") below the rule's node.
fn join_field_path(path: &str, fp: &str) -> String {
    let fp = fp.trim();
    if fp.starts_with('[') {
        return format!("{path}{fp}");
    }
    let rel = fp.strip_prefix('.').unwrap_or(fp);
    child(path, rel)
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// The CEL value of `v`, numbers typed by the schema: `number` fields are doubles even when the
/// JSON holds a whole number, `integer` ones ints.
fn to_cel(node: Option<&Node>, v: &Value) -> CelValue {
    match v {
        Value::Null => CelValue::Null,
        Value::Bool(b) => CelValue::Bool(*b),
        Value::Number(n) => {
            let ty = node.and_then(|n| n.ty.as_deref());
            if ty == Some("number") {
                return CelValue::Float(n.as_f64().unwrap_or(f64::NAN));
            }
            if let Some(i) = n.as_i64() {
                return CelValue::Int(i);
            }
            match n.as_f64() {
                Some(f) if ty == Some("integer") && f.fract() == 0.0 && f.abs() < 9.2e18 => CelValue::Int(f as i64),
                Some(f) => CelValue::Float(f),
                None => CelValue::Null,
            }
        }
        Value::String(s) => CelValue::String(Arc::new(s.clone())),
        Value::Array(items) => {
            let item_node = node.and_then(|n| n.items.as_deref());
            CelValue::List(Arc::new(items.iter().map(|i| to_cel(item_node, i)).collect()))
        }
        Value::Object(map) => {
            let entries = map
                .iter()
                .map(|(k, fv)| {
                    let sub = node.and_then(|n| n.field(k));
                    (Key::String(Arc::new(k.clone())), to_cel(sub, fv))
                })
                .collect::<std::collections::HashMap<Key, CelValue>>();
            CelValue::Map(cel::objects::Map { map: Arc::new(entries) })
        }
    }
}
