//! YAML output shaped like kubectl's (JSON converted by go-yaml v2): sorted keys in go-yaml's
//! "natural" order, indentless sequences, 2-space indent, plain scalars where go-yaml would use
//! them, quoting where a plain string would read back as another type, literal blocks for
//! multi-line strings, and long scalars folded after column 80.

use serde_json::Value;
use std::cmp::Ordering;

/// Width after which go-yaml breaks long scalars at a space.
const BEST_WIDTH: usize = 80;

/// Renders a JSON value as a YAML document (always ending with a newline).
pub fn to_string(value: &Value) -> String {
    let mut w = Writer { out: String::new(), column: 0 };
    match value {
        Value::Object(map) if !map.is_empty() => w.map_body(map, 0),
        Value::Array(items) if !items.is_empty() => w.seq_body(items, 0),
        other => {
            w.node_inline(other, 0);
            w.newline();
        }
    }
    w.out
}

/// go-yaml v2's key order: letters compare by code point, runs of digits compare as numbers.
pub fn key_cmp(a: &str, b: &str) -> Ordering {
    if key_less(a, b) {
        Ordering::Less
    } else if key_less(b, a) {
        Ordering::Greater
    } else {
        Ordering::Equal
    }
}

fn key_less(a: &str, b: &str) -> bool {
    let ar: Vec<char> = a.chars().collect();
    let br: Vec<char> = b.chars().collect();
    let mut digits = false;
    let mut i = 0;
    while i < ar.len() && i < br.len() {
        if ar[i] == br[i] {
            digits = ar[i].is_ascii_digit();
            i += 1;
            continue;
        }
        let al = ar[i].is_alphabetic();
        let bl = br[i].is_alphabetic();
        if al && bl {
            return ar[i] < br[i];
        }
        if al || bl {
            return if digits { al } else { bl };
        }
        let (mut an, mut bn) = (0i64, 0i64);
        if ar[i] == '0' || br[i] == '0' {
            let mut j = i;
            while j > 0 && ar[j - 1].is_ascii_digit() {
                j -= 1;
                if ar[j] != '0' {
                    an = 1;
                    bn = 1;
                    break;
                }
            }
        }
        let mut ai = i;
        while ai < ar.len() && ar[ai].is_ascii_digit() {
            an = an.saturating_mul(10).saturating_add(i64::from(ar[ai] as u8 - b'0'));
            ai += 1;
        }
        let mut bi = i;
        while bi < br.len() && br[bi].is_ascii_digit() {
            bn = bn.saturating_mul(10).saturating_add(i64::from(br[bi] as u8 - b'0'));
            bi += 1;
        }
        if an != bn {
            return an < bn;
        }
        if ai != bi {
            return ai < bi;
        }
        return ar[i] < br[i];
    }
    ar.len() < br.len()
}

struct Writer {
    out: String,
    column: usize,
}

#[derive(Clone, Copy, PartialEq)]
enum Style {
    Plain,
    Single,
    Double,
    Literal,
}

impl Writer {
    fn push(&mut self, s: &str) {
        self.out.push_str(s);
        match s.rfind('\n') {
            Some(pos) => self.column = s[pos + 1..].chars().count(),
            None => self.column += s.chars().count(),
        }
    }

    fn push_char(&mut self, c: char) {
        self.out.push(c);
        if c == '\n' {
            self.column = 0;
        } else {
            self.column += 1;
        }
    }

    fn newline(&mut self) {
        self.push_char('\n');
    }

    fn indent(&mut self, n: usize) {
        self.newline();
        for _ in 0..n {
            self.push_char(' ');
        }
    }

    fn spaces(&mut self, n: usize) {
        for _ in 0..n {
            self.push_char(' ');
        }
    }

    /// Entries of a non-empty map whose keys start at column `indent`; the cursor is already at
    /// that column for the first key. Leaves the cursor after a newline.
    fn map_body(&mut self, map: &serde_json::Map<String, Value>, indent: usize) {
        let mut keys: Vec<&String> = map.keys().collect();
        keys.sort_by(|a, b| key_cmp(a, b));
        for (i, key) in keys.into_iter().enumerate() {
            if i > 0 {
                self.spaces(indent);
            }
            self.scalar(key, indent, true);
            self.push_char(':');
            self.value_after_key(&map[key.as_str()], indent);
        }
    }

    /// Items of a non-empty sequence whose dashes sit at column `indent`.
    fn seq_body(&mut self, items: &[Value], indent: usize) {
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                self.spaces(indent);
            }
            self.push("- ");
            match item {
                Value::Object(map) if !map.is_empty() => self.map_body(map, indent + 2),
                Value::Array(inner) if !inner.is_empty() => self.seq_body(inner, indent + 2),
                other => {
                    self.node_inline(other, indent);
                    self.newline();
                }
            }
        }
    }

    fn value_after_key(&mut self, value: &Value, key_indent: usize) {
        match value {
            Value::Object(map) if !map.is_empty() => {
                self.indent(key_indent + 2);
                self.map_body(map, key_indent + 2);
            }
            Value::Array(items) if !items.is_empty() => {
                self.indent(key_indent);
                self.seq_body(items, key_indent);
            }
            other => {
                self.push_char(' ');
                self.node_inline(other, key_indent);
                self.newline();
            }
        }
    }

    /// A scalar or empty collection written where the owner (key or dash) is at `owner`.
    fn node_inline(&mut self, value: &Value, owner: usize) {
        match value {
            Value::Null => self.push("null"),
            Value::Bool(b) => self.push(if *b { "true" } else { "false" }),
            Value::Number(n) => {
                let s = number(n);
                self.push(&s);
            }
            Value::String(s) => self.scalar(s, owner, false),
            Value::Array(_) => self.push("[]"),
            Value::Object(_) => self.push("{}"),
        }
    }

    fn scalar(&mut self, s: &str, owner: usize, is_key: bool) {
        let indent = owner + 2;
        match style_for(s, is_key) {
            Style::Plain => self.plain(s, indent, !is_key),
            Style::Single => self.single(s, indent, !is_key),
            Style::Double => self.double(s, indent, !is_key),
            Style::Literal => self.literal(s, indent),
        }
    }

    fn plain(&mut self, s: &str, indent: usize, breaks: bool) {
        let chars: Vec<char> = s.chars().collect();
        let mut spaces = false;
        for (i, &c) in chars.iter().enumerate() {
            if c == ' ' {
                let next_space = chars.get(i + 1) == Some(&' ');
                if breaks && !spaces && self.column > BEST_WIDTH && !next_space {
                    self.indent(indent);
                } else {
                    self.push_char(c);
                }
                spaces = true;
            } else {
                self.push_char(c);
                spaces = false;
            }
        }
    }

    fn single(&mut self, s: &str, indent: usize, breaks: bool) {
        let chars: Vec<char> = s.chars().collect();
        self.push_char('\'');
        let mut spaces = false;
        for (i, &c) in chars.iter().enumerate() {
            if c == ' ' {
                let next_space = chars.get(i + 1) == Some(&' ');
                if breaks && !spaces && self.column > BEST_WIDTH && i != 0 && i + 1 != chars.len() && !next_space {
                    self.indent(indent);
                } else {
                    self.push_char(c);
                }
                spaces = true;
            } else {
                if c == '\'' {
                    self.push_char('\'');
                }
                self.push_char(c);
                spaces = false;
            }
        }
        self.push_char('\'');
    }

    fn double(&mut self, s: &str, indent: usize, breaks: bool) {
        let chars: Vec<char> = s.chars().collect();
        self.push_char('"');
        let mut spaces = false;
        for (i, &c) in chars.iter().enumerate() {
            if !printable(c) || c == '\u{feff}' || c == '\n' || c == '"' || c == '\\' {
                self.push_char('\\');
                match c {
                    '\0' => self.push_char('0'),
                    '\u{7}' => self.push_char('a'),
                    '\u{8}' => self.push_char('b'),
                    '\t' => self.push_char('t'),
                    '\n' => self.push_char('n'),
                    '\u{b}' => self.push_char('v'),
                    '\u{c}' => self.push_char('f'),
                    '\r' => self.push_char('r'),
                    '\u{1b}' => self.push_char('e'),
                    '"' => self.push_char('"'),
                    '\\' => self.push_char('\\'),
                    '\u{85}' => self.push_char('N'),
                    '\u{a0}' => self.push_char('_'),
                    '\u{2028}' => self.push_char('L'),
                    '\u{2029}' => self.push_char('P'),
                    other => {
                        let v = other as u32;
                        let text = if v <= 0xff {
                            format!("x{v:02X}")
                        } else if v <= 0xffff {
                            format!("u{v:04X}")
                        } else {
                            format!("U{v:08X}")
                        };
                        self.push(&text);
                    }
                }
                spaces = false;
            } else if c == ' ' {
                if breaks && !spaces && self.column > BEST_WIDTH && i != 0 && i + 1 != chars.len() {
                    self.indent(indent);
                    if chars.get(i + 1) == Some(&' ') {
                        self.push_char('\\');
                    }
                } else {
                    self.push_char(c);
                }
                spaces = true;
            } else {
                self.push_char(c);
                spaces = false;
            }
        }
        self.push_char('"');
    }

    fn literal(&mut self, s: &str, indent: usize) {
        self.push_char('|');
        if s.starts_with(' ') || s.starts_with('\n') {
            self.push_char('2');
        }
        if !s.ends_with('\n') {
            self.push_char('-');
        } else if s == "\n" || s.ends_with("\n\n") {
            self.push_char('+');
        }
        let body = s.strip_suffix('\n').unwrap_or(s);
        for line in body.split('\n') {
            self.newline();
            if !line.is_empty() {
                self.spaces(indent);
                self.push(line);
            }
        }
    }
}

fn number(n: &serde_json::Number) -> String {
    if n.is_i64() || n.is_u64() {
        return n.to_string();
    }
    let f = n.as_f64().unwrap_or(0.0);
    go_float(f)
}

/// Formats a float like Go's `strconv.FormatFloat(f, 'g', -1, 64)`.
pub fn go_float(f: f64) -> String {
    if f.is_nan() {
        return ".nan".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { ".inf".into() } else { "-.inf".into() };
    }
    if f == f.trunc() && f.abs() < 1e21 {
        return format!("{f}");
    }
    let exp = if f == 0.0 { 0 } else { f.abs().log10().floor() as i32 };
    if !(-4..21).contains(&exp) {
        let s = format!("{f:e}");
        // Rust writes 1e-7, Go writes 1e-07.
        if let Some((mant, e)) = s.split_once('e') {
            let (sign, digits) = if let Some(d) = e.strip_prefix('-') { ("-", d) } else { ("+", e) };
            let digits = if digits.len() < 2 { format!("0{digits}") } else { digits.to_string() };
            return format!("{mant}e{sign}{digits}");
        }
        return s;
    }
    format!("{f}")
}

fn printable(c: char) -> bool {
    let v = c as u32;
    v == 0x0a
        || (0x20..=0x7e).contains(&v)
        || v == 0x85
        || (0xa0..=0xd7ff).contains(&v)
        || ((0xe000..=0xfffd).contains(&v) && v != 0xfeff)
        || (0x10000..=0x10ffff).contains(&v)
}

fn style_for(s: &str, is_key: bool) -> Style {
    if s.is_empty() || resolves_to_non_string(s) {
        return Style::Double;
    }
    let a = analyze(s);
    if s.contains('\n') && !is_key {
        return if a.block_allowed { Style::Literal } else { Style::Double };
    }
    if a.block_plain_allowed {
        Style::Plain
    } else if a.single_quoted_allowed {
        Style::Single
    } else {
        Style::Double
    }
}

struct Analysis {
    block_plain_allowed: bool,
    single_quoted_allowed: bool,
    block_allowed: bool,
}

fn blankz(c: Option<&char>) -> bool {
    matches!(c, None | Some(' ' | '\t' | '\r' | '\n' | '\u{85}' | '\u{2028}' | '\u{2029}'))
}

fn analyze(s: &str) -> Analysis {
    let chars: Vec<char> = s.chars().collect();
    let mut block_indicators = s.starts_with("---") || s.starts_with("...");
    let (mut leading_space, mut leading_break, mut trailing_space, mut trailing_break) = (false, false, false, false);
    let (mut break_space, mut space_break, mut previous_space, mut previous_break) = (false, false, false, false);
    let (mut line_breaks, mut special) = (false, false);
    let mut preceded_by_whitespace = true;
    for (i, &c) in chars.iter().enumerate() {
        let followed_by_whitespace = blankz(chars.get(i + 1));
        let last = i + 1 == chars.len();
        if i == 0 {
            match c {
                '#' | ',' | '[' | ']' | '{' | '}' | '&' | '*' | '!' | '|' | '>' | '\'' | '"' | '%' | '@' | '`' => {
                    block_indicators = true;
                }
                '?' | ':' | '-' if followed_by_whitespace => block_indicators = true,
                _ => {}
            }
        } else {
            match c {
                ':' if followed_by_whitespace => block_indicators = true,
                '#' if preceded_by_whitespace => block_indicators = true,
                _ => {}
            }
        }
        if !printable(c) || c == '\u{feff}' {
            special = true;
        }
        if c == ' ' {
            if i == 0 {
                leading_space = true;
            }
            if last {
                trailing_space = true;
            }
            if previous_break {
                break_space = true;
            }
            previous_space = true;
            previous_break = false;
        } else if matches!(c, '\r' | '\n' | '\u{85}' | '\u{2028}' | '\u{2029}') {
            line_breaks = true;
            if i == 0 {
                leading_break = true;
            }
            if last {
                trailing_break = true;
            }
            if previous_space {
                space_break = true;
            }
            previous_break = true;
            previous_space = false;
        } else {
            previous_space = false;
            previous_break = false;
        }
        preceded_by_whitespace = blankz(Some(&c));
    }
    let mut a = Analysis { block_plain_allowed: true, single_quoted_allowed: true, block_allowed: true };
    if leading_space || leading_break || trailing_space || trailing_break {
        a.block_plain_allowed = false;
    }
    if trailing_space {
        a.block_allowed = false;
    }
    if break_space {
        a.block_plain_allowed = false;
        a.single_quoted_allowed = false;
    }
    if space_break || special {
        a.block_plain_allowed = false;
        a.single_quoted_allowed = false;
        a.block_allowed = false;
    }
    if line_breaks || block_indicators {
        a.block_plain_allowed = false;
    }
    a
}

/// Whether go-yaml v2 would read this plain string back as null, bool, number or timestamp.
fn resolves_to_non_string(s: &str) -> bool {
    const WORDS: &[&str] = &[
        "~", "null", "Null", "NULL", "y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO", "true", "True", "TRUE",
        "false", "False", "FALSE", "on", "On", "ON", "off", "Off", "OFF", ".inf", ".Inf", ".INF", "+.inf", "+.Inf",
        "+.INF", "-.inf", "-.Inf", "-.INF", ".nan", ".NaN", ".NAN", "<<",
    ];
    if WORDS.contains(&s) {
        return true;
    }
    let first = s.as_bytes()[0];
    if !(first.is_ascii_digit() || matches!(first, b'-' | b'+' | b'.')) {
        return false;
    }
    is_yaml_int(s) || is_yaml_float(s) || is_base60(s) || is_timestamp(s)
}

fn is_yaml_int(s: &str) -> bool {
    let plain: String = s.chars().filter(|&c| c != '_').collect();
    let body = plain.strip_prefix(['-', '+']).unwrap_or(&plain);
    if body.is_empty() {
        return false;
    }
    if let Some(hex) = body.strip_prefix("0x") {
        return !hex.is_empty() && hex.chars().all(|c| c.is_ascii_hexdigit());
    }
    if let Some(bin) = body.strip_prefix("0b") {
        return !bin.is_empty() && bin.chars().all(|c| c == '0' || c == '1');
    }
    body.chars().all(|c| c.is_ascii_digit())
}

fn is_yaml_float(s: &str) -> bool {
    let plain: String = s.chars().filter(|&c| c != '_').collect();
    let body = plain.strip_prefix(['-', '+']).unwrap_or(&plain);
    if body.is_empty() || body == "." {
        return false;
    }
    let (mant, exp) = match body.find(['e', 'E']) {
        Some(pos) => (&body[..pos], Some(&body[pos + 1..])),
        None => (body, None),
    };
    let mut dots = 0;
    let mut digits = 0;
    for c in mant.chars() {
        if c == '.' {
            dots += 1;
        } else if c.is_ascii_digit() {
            digits += 1;
        } else {
            return false;
        }
    }
    if dots > 1 || digits == 0 {
        return false;
    }
    match exp {
        None => true,
        Some(e) => {
            let e = e.strip_prefix(['-', '+']).unwrap_or(e);
            !e.is_empty() && e.chars().all(|c| c.is_ascii_digit())
        }
    }
}

fn is_base60(s: &str) -> bool {
    // [-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?
    let body = s.strip_prefix(['-', '+']).unwrap_or(s);
    let (main, _frac) = match body.split_once('.') {
        Some((m, f)) => {
            if !f.chars().all(|c| c.is_ascii_digit() || c == '_') {
                return false;
            }
            (m, f)
        }
        None => (body, ""),
    };
    let mut parts = main.split(':');
    let Some(head) = parts.next() else { return false };
    if head.is_empty() || !head.as_bytes()[0].is_ascii_digit() || !head.chars().all(|c| c.is_ascii_digit() || c == '_')
    {
        return false;
    }
    let mut any = false;
    for p in parts {
        any = true;
        let ok = match p.len() {
            1 => p.as_bytes()[0].is_ascii_digit(),
            2 => (b'0'..=b'5').contains(&p.as_bytes()[0]) && p.as_bytes()[1].is_ascii_digit(),
            _ => false,
        };
        if !ok {
            return false;
        }
    }
    any
}

fn is_timestamp(s: &str) -> bool {
    // go-yaml v2 accepts these layouts (date, date + time with optional zone).
    let b = s.as_bytes();
    if b.len() < 8 {
        return false;
    }
    let date_end = s.find(['T', 't', ' ']).unwrap_or(s.len());
    let date = &s[..date_end];
    let mut it = date.split('-');
    let (Some(y), Some(m), Some(d), None) = (it.next(), it.next(), it.next(), it.next()) else { return false };
    let num =
        |p: &str, min: usize, max: usize| p.len() >= min && p.len() <= max && p.chars().all(|c| c.is_ascii_digit());
    if !(num(y, 4, 4) && num(m, 1, 2) && num(d, 1, 2)) {
        return false;
    }
    if date_end == s.len() {
        return true;
    }
    let rest = s[date_end + 1..].trim_start();
    let time_end = rest.find(|c: char| !(c.is_ascii_digit() || c == ':' || c == '.')).unwrap_or(rest.len());
    let time = &rest[..time_end];
    let hms: Vec<&str> = time.split('.').next().unwrap_or("").split(':').collect();
    if hms.len() != 3 || !hms.iter().all(|p| num(p, 1, 2)) {
        return false;
    }
    let zone = rest[time_end..].trim_start();
    zone.is_empty()
        || zone == "Z"
        || ((zone.starts_with('+') || zone.starts_with('-'))
            && zone[1..].chars().all(|c| c.is_ascii_digit() || c == ':')
            && zone.len() > 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn kubectl_shapes() {
        let v = json!({
            "kind": "Pod",
            "apiVersion": "v1",
            "metadata": {"name": "web", "creationTimestamp": "2024-01-02T03:04:05Z", "resourceVersion": "12",
                          "labels": {}, "annotations": {"a": "x: y", "b": "*", "c": "", "d": "true", "e": "line1\nline2\n"}},
            "spec": {"containers": [{"name": "c", "args": ["sleep", "3600"], "ports": []}], "n": 3, "f": 0.5, "z": null}
        });
        let text = to_string(&v);
        let want = "apiVersion: v1\nkind: Pod\nmetadata:\n  annotations:\n    a: 'x: y'\n    b: '*'\n    c: \"\"\n    d: \"true\"\n    e: |\n      line1\n      line2\n  creationTimestamp: \"2024-01-02T03:04:05Z\"\n  labels: {}\n  name: web\n  resourceVersion: \"12\"\nspec:\n  containers:\n  - args:\n    - sleep\n    - \"3600\"\n    name: c\n    ports: []\n  f: 0.5\n  \"n\": 3\n  z: null\n";
        assert_eq!(text, want);
    }

    #[test]
    fn natural_key_order() {
        assert_eq!(key_cmp("a9", "a10"), Ordering::Less);
        assert_eq!(key_cmp("a-b", "ab"), Ordering::Less);
        assert_eq!(key_cmp("B", "a"), Ordering::Less);
        assert_eq!(key_cmp("app", "app.kubernetes.io/name"), Ordering::Less);
    }

    #[test]
    fn long_plain_strings_fold_after_column_80() {
        let words = "word ".repeat(30);
        let v = json!({"message": words.trim_end()});
        let text = to_string(&v);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines.len() > 1, "{text}");
        assert!(lines[1].starts_with("  word"), "{text}");
        assert!(lines[0].len() <= 85, "{text}");
    }
}
