//! kubectl's JSONPath templates: literal text, `{.a.b}`, `{.items[*].x}`, indexes and slices,
//! `{..name}`, filters `[?(@.x=="y")]`, `{range ...}{end}` and `{"\n"}` literals. Missing keys
//! print nothing, as `kubectl -o jsonpath` does.

use serde_json::Value;

/// Why a template could not be parsed.
#[derive(Debug, thiserror::Error)]
pub enum JsonPathError {
    /// The template text is malformed.
    #[error("error parsing jsonpath {template}, {reason}")]
    Parse {
        /// The whole template.
        template: String,
        /// What was wrong.
        reason: String,
    },
}

#[derive(Debug, Clone)]
enum Node {
    Text(String),
    Expr(Vec<Step>),
    Range(Vec<Step>, Vec<Node>),
}

#[derive(Debug, Clone)]
enum Step {
    Field(String),
    AllFields,
    Recursive,
    Index(i64),
    Slice(Option<i64>, Option<i64>, Option<i64>),
    AllItems,
    Union(Vec<String>),
    Filter(Box<Filter>),
    Root,
}

#[derive(Debug, Clone)]
struct Filter {
    left: Vec<Step>,
    op: Option<String>,
    right: Operand,
}

#[derive(Debug, Clone)]
enum Operand {
    None,
    Path(Vec<Step>),
    Lit(Value),
}

/// A parsed template.
#[derive(Debug, Clone)]
pub struct Template {
    nodes: Vec<Node>,
}

impl Template {
    /// Parses a template such as `{.items[*].metadata.name}`.
    pub fn parse(text: &str) -> Result<Template, JsonPathError> {
        let err = |reason: &str| JsonPathError::Parse { template: text.to_string(), reason: reason.to_string() };
        let mut stack: Vec<(Vec<Step>, Vec<Node>)> = Vec::new();
        let mut nodes: Vec<Node> = Vec::new();
        let mut rest = text;
        while !rest.is_empty() {
            let Some(open) = rest.find('{') else {
                nodes.push(Node::Text(rest.to_string()));
                break;
            };
            if open > 0 {
                nodes.push(Node::Text(rest[..open].to_string()));
            }
            let close = matching_brace(&rest[open..]).ok_or_else(|| err("unclosed action"))?;
            let inner = rest[open + 1..open + close].trim();
            rest = &rest[open + close + 1..];
            if inner == "end" {
                let (steps, outer) = stack.pop().ok_or_else(|| err("not in range, nothing to end"))?;
                let body = std::mem::replace(&mut nodes, outer);
                nodes.push(Node::Range(steps, body));
            } else if let Some(expr) = inner.strip_prefix("range ") {
                let steps = parse_path(expr.trim()).map_err(|r| err(&r))?;
                stack.push((steps, std::mem::take(&mut nodes)));
            } else if inner.starts_with('"') || inner.starts_with('\'') {
                nodes.push(Node::Text(unquote(inner).map_err(|r| err(&r))?));
            } else {
                nodes.push(Node::Expr(parse_path(inner).map_err(|r| err(&r))?));
            }
        }
        if !stack.is_empty() {
            return Err(err("unclosed range"));
        }
        Ok(Template { nodes })
    }

    /// Renders the template against `data`.
    pub fn render(&self, data: &Value) -> String {
        let mut out = String::new();
        render_nodes(&self.nodes, data, data, &mut out);
        out
    }

    /// Every value each expression of the template selects (custom-columns use one expression).
    pub fn values(&self, data: &Value) -> Vec<Value> {
        let mut all = Vec::new();
        for node in &self.nodes {
            if let Node::Expr(steps) = node {
                all.extend(eval(steps, data, data).into_iter().cloned());
            }
        }
        all
    }
}

fn matching_brace(s: &str) -> Option<usize> {
    let mut depth = 0;
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '"' | '\'' if depth > 0 => quote = Some(c),
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

fn unquote(s: &str) -> Result<String, String> {
    let q = s.chars().next().ok_or("empty literal")?;
    let body = s.strip_prefix(q).and_then(|b| b.strip_suffix(q)).ok_or("unterminated string literal")?;
    let mut out = String::new();
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some('r') => out.push('\r'),
                Some(o) => out.push(o),
                None => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    Ok(out)
}

fn parse_path(expr: &str) -> Result<Vec<Step>, String> {
    let chars: Vec<char> = expr.chars().collect();
    let mut steps = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '$' | '@' if i == 0 => {
                steps.push(Step::Root);
                i += 1;
            }
            '.' => {
                if chars.get(i + 1) == Some(&'.') {
                    steps.push(Step::Recursive);
                    i += 2;
                    continue;
                }
                i += 1;
                let mut name = String::new();
                while i < chars.len() && chars[i] != '.' && chars[i] != '[' {
                    if chars[i] == '\\' && i + 1 < chars.len() {
                        name.push(chars[i + 1]);
                        i += 2;
                        continue;
                    }
                    name.push(chars[i]);
                    i += 1;
                }
                if name == "*" {
                    steps.push(Step::AllFields);
                } else if !name.is_empty() {
                    steps.push(Step::Field(name));
                }
            }
            '[' => {
                let start = i + 1;
                let mut depth = 1;
                let mut j = start;
                let mut quote: Option<char> = None;
                while j < chars.len() {
                    let c = chars[j];
                    if let Some(q) = quote {
                        if c == q {
                            quote = None;
                        }
                    } else if c == '\'' || c == '"' {
                        quote = Some(c);
                    } else if c == '[' {
                        depth += 1;
                    } else if c == ']' {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    j += 1;
                }
                if j >= chars.len() {
                    return Err("unterminated array".into());
                }
                let inner: String = chars[start..j].iter().collect();
                steps.push(parse_bracket(inner.trim())?);
                i = j + 1;
            }
            c if c.is_whitespace() => i += 1,
            _ => {
                // A bare field name at the start (`metadata.name` without a leading dot).
                let mut name = String::new();
                while i < chars.len() && chars[i] != '.' && chars[i] != '[' {
                    name.push(chars[i]);
                    i += 1;
                }
                steps.push(Step::Field(name));
            }
        }
    }
    Ok(steps)
}

fn parse_bracket(inner: &str) -> Result<Step, String> {
    if inner == "*" {
        return Ok(Step::AllItems);
    }
    if let Some(f) = inner.strip_prefix("?(").and_then(|f| f.strip_suffix(')')) {
        return Ok(Step::Filter(Box::new(parse_filter(f.trim())?)));
    }
    if inner.starts_with('\'') || inner.starts_with('"') {
        let names = inner.split(',').map(|p| unquote(p.trim())).collect::<Result<Vec<_>, _>>()?;
        return Ok(Step::Union(names));
    }
    if inner.contains(':') {
        let parts: Vec<&str> = inner.split(':').collect();
        let num = |s: &str| -> Result<Option<i64>, String> {
            let s = s.trim();
            if s.is_empty() { Ok(None) } else { s.parse().map(Some).map_err(|_| format!("invalid array index {s}")) }
        };
        let start = num(parts[0])?;
        let end = num(parts.get(1).copied().unwrap_or(""))?;
        let step = num(parts.get(2).copied().unwrap_or(""))?;
        return Ok(Step::Slice(start, end, step));
    }
    inner.parse().map(Step::Index).map_err(|_| format!("invalid array index {inner}"))
}

fn parse_filter(f: &str) -> Result<Filter, String> {
    for op in ["==", "!=", "<=", ">=", "<", ">", "=~"] {
        if let Some(pos) = find_outside_quotes(f, op) {
            let left = parse_path(f[..pos].trim())?;
            let right_text = f[pos + op.len()..].trim();
            let right = if right_text.starts_with('"') || right_text.starts_with('\'') {
                Operand::Lit(Value::String(unquote(right_text)?))
            } else if right_text.starts_with('@') || right_text.starts_with('$') || right_text.starts_with('.') {
                Operand::Path(parse_path(right_text)?)
            } else if let Ok(n) = right_text.parse::<f64>() {
                Operand::Lit(serde_json::json!(n))
            } else {
                Operand::Lit(serde_json::from_str(right_text).unwrap_or(Value::String(right_text.to_string())))
            };
            return Ok(Filter { left, op: Some(op.to_string()), right });
        }
    }
    Ok(Filter { left: parse_path(f)?, op: None, right: Operand::None })
}

fn find_outside_quotes(s: &str, needle: &str) -> Option<usize> {
    let mut quote: Option<char> = None;
    for (i, c) in s.char_indices() {
        if let Some(q) = quote {
            if c == q {
                quote = None;
            }
            continue;
        }
        if c == '"' || c == '\'' {
            quote = Some(c);
            continue;
        }
        if s[i..].starts_with(needle) {
            return Some(i);
        }
    }
    None
}

fn render_nodes(nodes: &[Node], root: &Value, current: &Value, out: &mut String) {
    for node in nodes {
        match node {
            Node::Text(t) => out.push_str(t),
            Node::Expr(steps) => {
                let values = eval(steps, root, current);
                let texts: Vec<String> = values.iter().map(|v| text_of(v)).collect();
                out.push_str(&texts.join(" "));
            }
            Node::Range(steps, body) => {
                for v in eval(steps, root, current) {
                    render_nodes(body, root, v, out);
                }
            }
        }
    }
}

/// How a selected value prints: strings raw, floats as Go's `%v`, everything else as compact JSON.
pub fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "null".into(),
        Value::Number(n) if n.is_f64() => go_float(n.as_f64().unwrap_or(0.0)),
        other => compact(other),
    }
}

/// A float as Go's `fmt` prints it with `%v`: the shortest digits that round-trip, in exponent
/// form ("1e+06", "2.5e-05") when the decimal exponent is below -4 or at least 6.
pub fn go_float(f: f64) -> String {
    if !f.is_finite() {
        // JSON has no NaN or infinities; Go would print these words.
        return if f.is_nan() {
            "NaN".into()
        } else if f > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    let sci = format!("{f:e}");
    let Some((mantissa, exp)) = sci.split_once('e') else { return format!("{f}") };
    let exp: i32 = exp.parse().unwrap_or(0);
    if f != 0.0 && !(-4..6).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        return format!("{mantissa}e{sign}{:02}", exp.unsigned_abs());
    }
    format!("{f}")
}

/// Compact JSON as Go's encoding/json writes it: object keys in byte order and `<`, `>`, `&`,
/// U+2028 and U+2029 escaped.
pub fn compact(v: &Value) -> String {
    let mut out = String::new();
    write_compact(v, &mut out);
    out
}

fn write_compact(v: &Value, out: &mut String) {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(k, out);
                out.push(':');
                write_compact(&map[k.as_str()], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_compact(item, out);
            }
            out.push(']');
        }
        Value::String(s) => write_string(s, out),
        other => out.push_str(&other.to_string()),
    }
}

fn write_string(s: &str, out: &mut String) {
    // serde_json's escapes never contain these characters, so replacing them afterwards is safe.
    let quoted = Value::String(s.to_string()).to_string();
    for c in quoted.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
}

fn eval<'a>(steps: &[Step], root: &'a Value, current: &'a Value) -> Vec<&'a Value> {
    let mut cur: Vec<&Value> = vec![current];
    for step in steps {
        let mut next = Vec::new();
        for v in cur {
            apply(step, root, v, &mut next);
        }
        cur = next;
    }
    cur
}

fn apply<'a>(step: &Step, root: &'a Value, v: &'a Value, next: &mut Vec<&'a Value>) {
    match step {
        Step::Root => next.push(v),
        Step::Field(name) => {
            if let Some(child) = v.get(name.as_str()) {
                next.push(child);
            }
        }
        Step::Union(names) => {
            for name in names {
                if let Some(child) = v.get(name.as_str()) {
                    next.push(child);
                }
            }
        }
        Step::AllFields => match v {
            Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                next.extend(keys.into_iter().map(|k| &map[k.as_str()]));
            }
            Value::Array(items) => next.extend(items.iter()),
            _ => {}
        },
        Step::AllItems => match v {
            Value::Array(items) => next.extend(items.iter()),
            Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                next.extend(keys.into_iter().map(|k| &map[k.as_str()]));
            }
            _ => {}
        },
        Step::Recursive => collect_all(v, next),
        Step::Index(i) => {
            if let Value::Array(items) = v {
                let len = items.len() as i64;
                let idx = if *i < 0 { len + i } else { *i };
                if (0..len).contains(&idx) {
                    next.push(&items[idx as usize]);
                }
            }
        }
        Step::Slice(start, end, step) => {
            if let Value::Array(items) = v {
                let len = items.len() as i64;
                let norm = |x: i64| if x < 0 { (len + x).max(0) } else { x.min(len) };
                let s = start.map(norm).unwrap_or(0);
                let e = end.map(norm).unwrap_or(len);
                let st = step.unwrap_or(1).max(1);
                let mut i = s;
                while i < e {
                    next.push(&items[i as usize]);
                    i += st;
                }
            }
        }
        Step::Filter(f) => {
            let candidates: Vec<&Value> = match v {
                Value::Array(items) => items.iter().collect(),
                other => vec![other],
            };
            for c in candidates {
                if filter_matches(f, root, c) {
                    next.push(c);
                }
            }
        }
    }
}

fn collect_all<'a>(v: &'a Value, out: &mut Vec<&'a Value>) {
    out.push(v);
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            for k in keys {
                collect_all(&map[k.as_str()], out);
            }
        }
        Value::Array(items) => items.iter().for_each(|i| collect_all(i, out)),
        _ => {}
    }
}

fn filter_matches(f: &Filter, root: &Value, item: &Value) -> bool {
    let left = eval(&f.left, root, item);
    let Some(op) = &f.op else { return !left.is_empty() };
    let rights: Vec<Value> = match &f.right {
        Operand::None => return !left.is_empty(),
        Operand::Lit(v) => vec![v.clone()],
        Operand::Path(p) => eval(p, root, item).into_iter().cloned().collect(),
    };
    left.iter().any(|l| rights.iter().any(|r| compare(l, op, r)))
}

fn compare(l: &Value, op: &str, r: &Value) -> bool {
    if let (Some(a), Some(b)) = (num_of(l), num_of(r)) {
        return match op {
            "==" => a == b,
            "!=" => a != b,
            "<" => a < b,
            ">" => a > b,
            "<=" => a <= b,
            ">=" => a >= b,
            _ => false,
        };
    }
    let a = text_of(l);
    let b = text_of(r);
    match op {
        "==" => a == b,
        "!=" => a != b,
        "<" => a < b,
        ">" => a > b,
        "<=" => a <= b,
        ">=" => a >= b,
        _ => false,
    }
}

fn num_of(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_ranges_filters() {
        let data = json!({"items": [
            {"metadata": {"name": "a", "labels": {"app.kubernetes.io/name": "x"}}, "n": 1},
            {"metadata": {"name": "b"}, "n": 2}
        ]});
        let t = |s: &str| Template::parse(s).expect("parses").render(&data);
        assert_eq!(t("{.items[*].metadata.name}"), "a b");
        assert_eq!(t("{range .items[*]}{.metadata.name}{\"\\n\"}{end}"), "a\nb\n");
        assert_eq!(t("{.items[?(@.n==2)].metadata.name}"), "b");
        assert_eq!(t("{.items[?(@.metadata.name==\"a\")].n}"), "1");
        assert_eq!(t("{.items[-1].metadata.name}"), "b");
        assert_eq!(t("{.items[0].metadata.labels.app\\.kubernetes\\.io/name}"), "x");
        assert_eq!(t("{.items[0].metadata.labels}"), "{\"app.kubernetes.io/name\":\"x\"}");
        assert_eq!(t("{.missing}"), "");
        assert_eq!(t("n={.items[1].n}"), "n=2");
        assert!(Template::parse("{range .items[*]}").is_err());
    }

    #[test]
    fn floats_print_as_go_percent_v() {
        assert_eq!(go_float(2.5), "2.5");
        assert_eq!(go_float(3.0), "3");
        assert_eq!(go_float(-0.75), "-0.75");
        assert_eq!(go_float(123456.0), "123456");
        assert_eq!(go_float(1_000_000.0), "1e+06");
        assert_eq!(go_float(2_500_000.5), "2.5000005e+06");
        assert_eq!(go_float(0.0001), "0.0001");
        assert_eq!(go_float(0.00001), "1e-05");
        assert_eq!(go_float(1e-300), "1e-300");
        assert_eq!(go_float(0.0), "0");
        assert_eq!(text_of(&json!(1.5)), "1.5");
        assert_eq!(text_of(&json!(7)), "7");
    }

    #[test]
    fn compact_is_go_json() {
        assert_eq!(
            compact(&json!({"b": 1, "a": [2, {"d": null, "c": true}]})),
            "{\"a\":[2,{\"c\":true,\"d\":null}],\"b\":1}"
        );
        assert_eq!(
            compact(&json!({"k<": "a&b>\u{2028}\n\"q\""})),
            "{\"k\\u003c\":\"a\\u0026b\\u003e\\u2028\\n\\\"q\\\"\"}"
        );
        assert_eq!(text_of(&json!(["x", 1])), "[\"x\",1]");
    }
}
