//! The text machinery every describer shares: kubectl's prefix writer (two spaces a level)
//! feeding Go's tabwriter rules (a cell ends at `\t`, padding 2, a line without tabs ends the
//! column blocks), and the small formatters kubectl uses for labels, annotations, taints,
//! tolerations, selectors, times and ages.

use super::quantity;
use crate::print::table::tabwrite;
use serde_json::{Map, Value};
use std::fmt::Write as _;

/// Text written the way kubectl's describers write it: `\t` ends a cell, `\n` a line; the
/// cells are aligned only when the description is complete, exactly as Go's tabwriter does.
#[derive(Default)]
pub struct W {
    buf: String,
    /// Extra levels added to every write (kubectl's nested prefix writer).
    pub nest: usize,
}

impl W {
    /// Writes `args` after `level` indentation steps (kubectl's `PrefixWriter.Write`).
    pub fn put(&mut self, level: usize, args: std::fmt::Arguments<'_>) {
        for _ in 0..level + self.nest {
            self.buf.push_str("  ");
        }
        let text = args.to_string();
        // kubectl escapes terminal control sequences in everything it describes.
        for c in text.chars() {
            match c {
                '\x1b' => self.buf.push_str("^["),
                '\r' => self.buf.push_str("\\r"),
                c => self.buf.push(c),
            }
        }
    }

    /// The aligned text.
    pub fn text(&self) -> String {
        if self.buf.is_empty() {
            return String::new();
        }
        let complete = self.buf.ends_with('\n');
        let body = if complete { &self.buf[..self.buf.len() - 1] } else { &self.buf[..] };
        let lines: Vec<Vec<String>> = body.split('\n').map(|l| l.split('\t').map(str::to_string).collect()).collect();
        let mut out = tabwrite(&lines, 2);
        if !complete {
            out.pop();
        }
        out
    }
}

/// `format_args!` into a [`W`] at a level.
macro_rules! put {
    ($w:expr, $level:expr, $($arg:tt)*) => {
        $w.put($level, format_args!($($arg)*))
    };
}
pub(crate) use put;

/// A JSON scalar as Go's `%v` prints it; null is empty.
pub fn s(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `"<none>"` for empty text.
pub fn or_none(text: String) -> String {
    if text.is_empty() { "<none>".into() } else { text }
}

/// Go's `%v` of a string slice: `[a b]`.
pub fn go_list(v: &Value) -> String {
    let items: Vec<String> = v.as_array().into_iter().flatten().map(s).collect();
    format!("[{}]", items.join(" "))
}

/// A string map's entries sorted by key.
pub fn sorted_pairs(m: &Value) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> =
        m.as_object().into_iter().flatten().map(|(k, v)| (k.clone(), s(v))).collect();
    pairs.sort();
    pairs
}

/// `printLabelsMultilineWithIndent`: the first pair on the title's line, the rest under it.
pub fn labels_indent(w: &mut W, initial: &str, title: &str, inner: &str, labels: &Value) {
    put!(w, 0, "{initial}{title}:{inner}");
    let pairs = sorted_pairs(labels);
    if pairs.is_empty() {
        put!(w, 0, "<none>\n");
        return;
    }
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i != 0 {
            put!(w, 0, "{initial}");
            put!(w, 0, "{inner}");
        }
        put!(w, 0, "{k}={v}\n");
    }
}

/// `printLabelsMultiline`.
pub fn labels(w: &mut W, title: &str, labels: &Value) {
    labels_indent(w, "", title, "\t", labels);
}

const MAX_ANNOTATION_LEN: usize = 140;

/// `printAnnotationsMultiline`: `key: value`, long or multi-line values on their own lines,
/// the last-applied-configuration annotation left out.
pub fn annotations(w: &mut W, title: &str, annotations: &Value) {
    put!(w, 0, "{title}:\t");
    let pairs: Vec<(String, String)> = sorted_pairs(annotations)
        .into_iter()
        .filter(|(k, _)| k != "kubectl.kubernetes.io/last-applied-configuration")
        .collect();
    if pairs.is_empty() {
        put!(w, 0, "<none>\n");
        return;
    }
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i != 0 {
            put!(w, 0, "\t");
        }
        let value = v.strip_suffix('\n').unwrap_or(v);
        if value.len() + k.len() + 2 > MAX_ANNOTATION_LEN || value.contains('\n') {
            put!(w, 0, "{k}:\n");
            for line in value.split('\n') {
                put!(w, 0, "\t  {}\n", shorten(line, MAX_ANNOTATION_LEN - 2));
            }
        } else {
            put!(w, 0, "{k}: {value}\n");
        }
    }
}

/// The first `max` bytes of `text` and `...` when it is longer.
pub fn shorten(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &text[..end])
}

/// `Taint.ToString()`.
pub fn taint(t: &Value) -> String {
    let (key, value, effect) = (s(&t["key"]), s(&t["value"]), s(&t["effect"]));
    match (value.is_empty(), effect.is_empty()) {
        (true, true) => key,
        (false, true) => format!("{key}={value}:"),
        (true, false) => format!("{key}:{effect}"),
        (false, false) => format!("{key}={value}:{effect}"),
    }
}

/// `printTaintsMultilineWithIndent`, sorted by effect then key.
pub fn taints(w: &mut W, title: &str, taints: &Value) {
    put!(w, 0, "{title}:\t");
    let mut list: Vec<&Value> = taints.as_array().into_iter().flatten().collect();
    if list.is_empty() {
        put!(w, 0, "<none>\n");
        return;
    }
    list.sort_by_key(|t| format!("{},{}", s(&t["effect"]), s(&t["key"])));
    for (i, t) in list.iter().enumerate() {
        if i != 0 {
            put!(w, 0, "\t");
        }
        put!(w, 0, "{}\n", taint(t));
    }
}

/// `printTolerationsMultilineWithIndent`, sorted by key.
pub fn tolerations(w: &mut W, initial: &str, title: &str, tolerations: &Value) {
    put!(w, 0, "{initial}{title}:\t");
    let mut list: Vec<&Value> = tolerations.as_array().into_iter().flatten().collect();
    if list.is_empty() {
        put!(w, 0, "<none>\n");
        return;
    }
    list.sort_by_key(|t| s(&t["key"]));
    for (i, t) in list.iter().enumerate() {
        if i != 0 {
            put!(w, 0, "{initial}");
            put!(w, 0, "\t");
        }
        let (key, value, effect) = (s(&t["key"]), s(&t["value"]), s(&t["effect"]));
        let mut text = key.clone();
        if !value.is_empty() {
            let _ = write!(text, "={value}");
        }
        if !effect.is_empty() {
            let _ = write!(text, ":{effect}");
        }
        if t["operator"] == "Exists" && value.is_empty() {
            text.push_str(if key.is_empty() && effect.is_empty() { "op=Exists" } else { " op=Exists" });
        }
        if let Some(secs) = t["tolerationSeconds"].as_i64() {
            let _ = write!(text, " for {secs}s");
        }
        put!(w, 0, "{text}\n");
    }
}

/// `labels.FormatLabels`: `a=1,b=2` sorted, `<none>` when empty.
pub fn format_labels(m: &Value) -> String {
    let pairs: Vec<String> = sorted_pairs(m).into_iter().map(|(k, v)| format!("{k}={v}")).collect();
    or_none(pairs.join(","))
}

/// A `LabelSelector` as `labels.Selector.String()` prints it: requirements sorted by key,
/// `k=v`, `k in (a,b)`, `k notin (a,b)`, `k`, `!k`; empty for "everything" and for none.
pub fn selector_string(sel: &Value) -> String {
    let mut reqs: Vec<(String, String)> = Vec::new();
    for (k, v) in sel["matchLabels"].as_object().into_iter().flatten() {
        reqs.push((k.clone(), format!("{k}={}", s(v))));
    }
    for e in sel["matchExpressions"].as_array().into_iter().flatten() {
        let key = s(&e["key"]);
        let mut values: Vec<String> = e["values"].as_array().into_iter().flatten().map(s).collect();
        values.sort();
        values.dedup();
        let text = match e["operator"].as_str().unwrap_or("") {
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" => key.clone(),
            "DoesNotExist" => format!("!{key}"),
            other => format!("{key} {other} ({})", values.join(",")),
        };
        reqs.push((key, text));
    }
    reqs.sort_by(|a, b| a.0.cmp(&b.0));
    reqs.into_iter().map(|(_, t)| t).collect::<Vec<_>>().join(",")
}

/// `metav1.FormatLabelSelector`: like [`selector_string`], `<none>` when empty.
pub fn format_label_selector(sel: &Value) -> String {
    or_none(selector_string(sel))
}

/// `time.RFC1123Z` in the local zone, as kubectl prints times; an unset time is Go's zero time.
pub fn rfc1123z(ts: &Value) -> String {
    let Some(t) = ts.as_str().and_then(|t| t.parse::<jiff::Timestamp>().ok()) else {
        return "Mon, 01 Jan 0001 00:00:00 +0000".into();
    };
    t.to_zoned(jiff::tz::TimeZone::system()).strftime("%a, %d %b %Y %H:%M:%S %z").to_string()
}

/// `translateTimestampSince`: the age of a timestamp, `<unknown>` when unset.
pub fn since(ts: &Value) -> String {
    match ts.as_str() {
        Some(t) if !t.is_empty() => super::age(t),
        _ => "<unknown>".into(),
    }
}

/// A quantity field in canonical form.
pub fn q(v: &Value) -> String {
    quantity::canonical(&s(v))
}

/// Sorted keys of a map.
pub fn sorted_keys(m: &Map<String, Value>) -> Vec<&String> {
    let mut keys: Vec<&String> = m.keys().collect();
    keys.sort();
    keys
}

/// `True`/`False`.
pub fn print_bool(b: bool) -> &'static str {
    if b { "True" } else { "False" }
}

/// `printBoolPtr`: `True`, `False` or `<unset>`.
pub fn print_bool_ptr(v: &Value) -> &'static str {
    match v.as_bool() {
        Some(b) => print_bool(b),
        None => "<unset>",
    }
}

/// The controller owner as `Kind/name`, empty when there is none.
pub fn controller_of(obj: &Value) -> String {
    obj["metadata"]["ownerReferences"]
        .as_array()
        .and_then(|refs| refs.iter().find(|r| r["controller"] == true))
        .map(|r| format!("{}/{}", s(&r["kind"]), s(&r["name"])))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn writer_aligns_like_go_tabwriter() {
        let mut w = W::default();
        put!(w, 0, "Name:\t{}\n", "web");
        labels(&mut w, "Labels", &json!({"b": "2", "a": "1"}));
        put!(w, 0, "Conditions:\n  Type\tStatus\n");
        put!(w, 1, "{} \t{}\n", "Available", "True");
        put!(w, 2, "Medium:\t\n");
        assert_eq!(
            w.text(),
            "Name:    web\nLabels:  a=1\n         b=2\nConditions:\n  Type        Status\n  Available   True\n    Medium:   \n"
        );
    }

    #[test]
    fn selectors_and_taints() {
        let sel = json!({"matchLabels": {"b": "2"}, "matchExpressions": [
            {"key": "a", "operator": "In", "values": ["y", "x"]}, {"key": "c", "operator": "DoesNotExist"}]});
        assert_eq!(selector_string(&sel), "a in (x,y),b=2,!c");
        assert_eq!(format_label_selector(&json!({})), "<none>");
        assert_eq!(taint(&json!({"key": "k", "value": "v", "effect": "NoSchedule"})), "k=v:NoSchedule");
        assert_eq!(taint(&json!({"key": "k", "effect": "NoExecute"})), "k:NoExecute");
        assert_eq!(rfc1123z(&Value::Null), "Mon, 01 Jan 0001 00:00:00 +0000");
    }
}
