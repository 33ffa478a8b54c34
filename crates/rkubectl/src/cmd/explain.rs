//! `explain TYPE[.FIELD...]`: kubectl v1.33's plaintext explain, rendered from the server's
//! OpenAPI v3 document of the resource's group-version so that the bytes match kubectl's
//! (its `plaintext` template): the GVK header, descriptions wrapped by go-wordwrap's rules,
//! type names guessed from `$ref`/`items`/`additionalProperties`, enums, `-required-`,
//! `--recursive`, `--api-version`, and kubectl's errors on stdout/stderr as it splits them.

use crate::cli::ExplainArgs;
use crate::ctx::Ctx;
use crate::discovery::ApiResource;
use crate::error::{ApiError, Error, Result};
use serde_json::Value;
use std::collections::BTreeSet;
use std::fmt;

/// What kubectl asks for when `--output=plaintext-openapiv2` (its older renderer) is chosen.
const OPENAPI_V2_PROTOBUF: &str = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf";
/// How deep descriptions and type names follow `allOf`/`items`/`$ref`: kubectl has no bound
/// and would recurse forever on a self-referencing document; real documents stay far below.
const MAX_DEPTH: usize = 64;

/// Runs `explain`.
pub fn run(ctx: &mut Ctx, a: ExplainArgs) -> Result<()> {
    let input = match a.resource.as_slice() {
        [] => {
            return Err(Error::usage(
                "You must specify the type of resource to explain. Use \"rkubectl api-resources\" for a complete list of supported resources.",
            ));
        }
        [one] => one.clone(),
        _ => return Err(Error::usage("We accept only this format: explain RESOURCE")),
    };
    let api_version = a.api_version.clone().filter(|v| !v.is_empty());
    let (resource, fields) =
        if api_version.is_some() { split_exact(ctx, &input)? } else { split_with_matching_prefix(ctx, &input)? };
    let mut gvr = Gvr { group: resource.group.clone(), version: resource.version.clone(), resource: resource.plural };
    if a.output == "plaintext-openapiv2" {
        return openapi_v2(ctx, api_version.as_deref());
    }
    let client = ctx.client()?;
    let index = match client.get("/openapi/v3") {
        Ok(index) => index,
        // kubectl falls back to its OpenAPI v2 renderer when the server has no v3 index.
        Err(_) if a.output == "plaintext" => return openapi_v2(ctx, api_version.as_deref()),
        Err(e) => return Err(Error::usage(format!("failed to fetch list of groupVersions: {}", bare_message(&e)))),
    };
    if let Some(v) = &api_version {
        let (group, version) = parse_group_version(v)?;
        gvr.group = group;
        gvr.version = version;
    }
    let key = if gvr.group.is_empty() {
        format!("api/{}", gvr.version)
    } else {
        format!("apis/{}/{}", gvr.group, gvr.version)
    };
    let Some(url) = index["paths"][key.as_str()]["serverRelativeURL"].as_str() else {
        return Err(Error::usage(format!("couldn't find resource for \"{gvr}\"")));
    };
    let doc = client
        .get(url)
        .map_err(|e| Error::usage(format!("failed to fetch openapi schema for {key}: {}", bare_message(&e))))?;
    if a.output != "plaintext" {
        return Err(Error::usage(format!("unrecognized format: {}", a.output)));
    }
    tracing::debug!(gvr = %gvr, fields = ?fields, recursive = a.recursive, "explain");
    let rendered = render(&doc, &gvr, &fields, a.recursive);
    ctx.print(&rendered.text);
    match rendered.error {
        Some(message) => Err(Error::Exit { code: 1, message }),
        None => Ok(()),
    }
}

/// An error's text without the `error: ` kubectl adds when it prints it.
fn bare_message(e: &Error) -> String {
    match e {
        Error::Api(api) => api.message.clone(),
        Error::Usage(m) | Error::Config(m) | Error::Connect(m) => m.clone(),
        other => other.to_string(),
    }
}

/// kubectl's older renderer reads OpenAPI v2 as protobuf; rkubectl asks the same question so
/// the server's refusal reads the same, and says plainly when it would need that renderer.
fn openapi_v2(ctx: &mut Ctx, api_version: Option<&str>) -> Result<()> {
    if let Some(v) = api_version {
        parse_group_version(v)?;
    }
    let client = ctx.client()?;
    match client.send(reqwest::Method::GET, "/openapi/v2", OPENAPI_V2_PROTOBUF, None, false) {
        // client-go words a 406 this way whatever the body says.
        Err(Error::Api(e)) if e.code == 406 => Err(Error::Api(ApiError {
            code: 406,
            reason: "NotAcceptable".into(),
            message: "the server was unable to respond with a content type that the client supports".into(),
            context: String::new(),
            details: Value::Null,
        })),
        Err(e) => Err(e),
        Ok(_) => Err(Error::usage("--output=plaintext-openapiv2 is not supported by rkubectl; use --output=plaintext")),
    }
}

/// A group, version and resource, printed as apimachinery prints one.
#[derive(Debug, Clone)]
struct Gvr {
    group: String,
    version: String,
    resource: String,
}

impl fmt::Display for Gvr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}, Resource={}", self.group, self.version, self.resource)
    }
}

/// `group/version`, `version` or `group/` as apimachinery's ParseGroupVersion reads them.
fn parse_group_version(s: &str) -> Result<(String, String)> {
    if s.is_empty() || s == "/" {
        return Ok((String::new(), String::new()));
    }
    match s.matches('/').count() {
        0 => Ok((String::new(), s.to_string())),
        1 => {
            let (g, v) = s.split_once('/').unwrap_or((s, ""));
            Ok((g.to_string(), v.to_string()))
        }
        _ => Err(Error::usage(format!("unexpected GroupVersion string: {s}"))),
    }
}

/// Every resource the name matches, in discovery's priority order (kubectl's ResourcesFor
/// behind its short-name expander, with the expander's warning about ambiguous short names).
fn resources_for(ctx: &mut Ctx, name: &str) -> Result<Vec<ApiResource>> {
    let lower = name.to_lowercase();
    let d = ctx.discovery(false)?;
    let mut found = match_resources(&d, &lower);
    if found.0.is_empty() && d.from_cache {
        found = match_resources(&ctx.discovery(true)?, &lower);
    }
    let (resources, warnings) = found;
    for w in warnings {
        ctx.eprintln(&format!("Warning: {w}"));
    }
    if resources.is_empty() {
        // kubectl prints a no-match error without its `error: ` prefix.
        return Err(Error::Exit { code: 1, message: format!("the server doesn't have a resource type \"{name}\"") });
    }
    Ok(resources)
}

/// The resources a lower-case name matches, and the warnings kubectl's expander prints: a
/// plural or singular name matches as it is; otherwise a short name expands to the plural of
/// the first resource carrying it (any group when that resource is in the core group).
fn match_resources(d: &crate::discovery::Discovery, lower: &str) -> (Vec<ApiResource>, Vec<String>) {
    let exact: Vec<ApiResource> =
        d.resources.iter().filter(|r| r.plural == lower || r.singular == lower).cloned().collect();
    if !exact.is_empty() {
        return (exact, Vec::new());
    }
    let mut expanded: Option<(&str, &str)> = None;
    let mut warnings = Vec::new();
    for r in d.resources.iter().filter(|r| r.short_names.iter().any(|s| s == lower)) {
        match expanded {
            None => expanded = Some((r.group.as_str(), r.plural.as_str())),
            Some((g, p)) if g == r.group && p == r.plural => {}
            Some(_) => {
                let w =
                    format!("short name \"{lower}\" could also match lower priority resource {}", r.resource_group());
                if !warnings.contains(&w) {
                    warnings.push(w);
                }
            }
        }
    }
    let Some((group, plural)) = expanded else { return (Vec::new(), warnings) };
    let resources =
        d.resources.iter().filter(|r| r.plural == plural && (group.is_empty() || r.group == group)).cloned().collect();
    (resources, warnings)
}

/// The field names of `nodes`, or `message` when any node is not a plain field.
fn only_fields(nodes: &[PathNode], message: &str) -> Result<Vec<String>> {
    nodes
        .iter()
        .map(|n| match n {
            PathNode::Field(f) => Ok(f.clone()),
            _ => Err(Error::usage(message)),
        })
        .collect()
}

/// The resource named by the first node and the remaining nodes as fields (`--api-version`).
fn split_exact(ctx: &mut Ctx, input: &str) -> Result<(ApiResource, Vec<String>)> {
    let nodes = json_path_nodes(input).map_err(Error::usage)?;
    let Some(PathNode::Field(name)) = nodes.first() else {
        return Err(Error::usage("invalid jsonpath syntax, first node must be field node"));
    };
    let resource = resources_for(ctx, name)?.remove(0);
    let fields = only_fields(&nodes[1..], "invalid jsonpath syntax, all nodes must be field nodes")?;
    Ok((resource, fields))
}

/// kubectl's default split: the first resource whose `resource.group` prefixes the input wins,
/// so `deployments.apps.spec` names the apps group; otherwise the highest-priority match.
fn split_with_matching_prefix(ctx: &mut Ctx, input: &str) -> Result<(ApiResource, Vec<String>)> {
    const NOT_FIELD: &str = "invalid jsonpath syntax, first node must be field node";
    let nodes = json_path_nodes(input).map_err(Error::usage)?;
    let Some(PathNode::Field(name)) = nodes.first() else {
        return Err(Error::usage(NOT_FIELD));
    };
    let candidates = resources_for(ctx, name)?;
    for r in &candidates {
        let Some(suffix) = input.strip_prefix(r.resource_group().as_str()) else { continue };
        let mut fields = Vec::new();
        if !suffix.is_empty() {
            let suffix_nodes = json_path_nodes(suffix).map_err(Error::usage)?;
            // The suffix starts with its separating dot, parsed as a first node to skip.
            if suffix_nodes.len() > 1 {
                fields = only_fields(&suffix_nodes[1..], NOT_FIELD)?;
            }
        }
        return Ok((r.clone(), fields));
    }
    let fields = only_fields(&nodes[1..], NOT_FIELD)?;
    let first = candidates.into_iter().next().ok_or_else(|| Error::usage(NOT_FIELD))?;
    Ok((first, fields))
}

/// One node of client-go's JSONPath parse of `{.TYPE.field...}`; explain uses plain fields.
#[derive(Debug, Clone, PartialEq)]
enum PathNode {
    /// `.name`
    Field(String),
    /// `..`
    Recursive,
    /// Anything else (index, filter, wildcard, literal): valid JSONPath, not a field.
    Other,
}

/// Parses `input` the way kubectl does (`{.` + input without a trailing dot + `}`), with
/// client-go's JSONPath error messages.
fn json_path_nodes(input: &str) -> std::result::Result<Vec<PathNode>, String> {
    let trimmed = input.strip_suffix('.').unwrap_or(input);
    let mut p = PathParser::new(&format!("{{.{trimmed}}}"));
    let outer = p.parse_text()?;
    if outer.len() != 1 {
        return Err("must pass in 1 jsonpath string".into());
    }
    Ok(outer.into_iter().flatten().next().unwrap_or_default())
}

/// Parses `{text}` and returns the nodes of its one action (client-go's parseAction).
fn parse_action_text(text: &str) -> std::result::Result<Vec<PathNode>, String> {
    let mut p = PathParser::new(&format!("{{{text}}}"));
    Ok(p.parse_text()?.into_iter().flatten().next().unwrap_or_default())
}

/// A character-level reimplementation of client-go's JSONPath template parser, far enough to
/// tell fields from other nodes and to fail with the same messages.
struct PathParser {
    chars: Vec<char>,
    pos: usize,
}

impl PathParser {
    fn new(text: &str) -> PathParser {
        PathParser { chars: text.chars().collect(), pos: 0 }
    }

    fn next(&mut self) -> Option<char> {
        let c = self.chars.get(self.pos).copied();
        if c.is_some() {
            self.pos += 1;
        }
        c
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn starts_with(&self, prefix: &str) -> bool {
        prefix.chars().enumerate().all(|(i, c)| self.chars.get(self.pos + i) == Some(&c))
    }

    fn text(&self, from: usize, to: usize) -> String {
        self.chars[from..to].iter().collect()
    }

    /// Top level: text between actions (`None`) and actions (their nodes).
    fn parse_text(&mut self) -> std::result::Result<Vec<Option<Vec<PathNode>>>, String> {
        let mut outer = Vec::new();
        let mut start = self.pos;
        loop {
            if self.peek() == Some('{') {
                if self.pos > start {
                    outer.push(None);
                }
                self.pos += 1;
                outer.push(Some(self.parse_action()?));
                start = self.pos;
                continue;
            }
            if self.next().is_none() {
                break;
            }
        }
        if self.pos > start {
            outer.push(None);
        }
        Ok(outer)
    }

    fn parse_action(&mut self) -> std::result::Result<Vec<PathNode>, String> {
        let mut nodes = Vec::new();
        loop {
            if self.starts_with("}") {
                self.pos += 1;
                return Ok(nodes);
            }
            if self.starts_with("[?(") {
                self.pos += 3;
                self.parse_filter()?;
                nodes.push(PathNode::Other);
                continue;
            }
            if self.starts_with("..") {
                if nodes.last() == Some(&PathNode::Recursive) {
                    return Err("invalid multiple recursive descent".into());
                }
                self.pos += 2;
                nodes.push(PathNode::Recursive);
                if self.peek().is_some_and(is_alphanumeric) {
                    nodes.push(self.parse_field());
                }
                continue;
            }
            match self.next() {
                None | Some('\r') | Some('\n') => return Err("unclosed action".into()),
                Some(' ') | Some('@') | Some('$') => {}
                Some('[') => nodes.extend(self.parse_array()?),
                Some(q @ ('"' | '\'')) => {
                    self.parse_quote(q)?;
                    nodes.push(PathNode::Other);
                }
                Some('.') => nodes.push(self.parse_field()),
                Some(c) if c == '+' || c == '-' || c.is_numeric() => {
                    self.pos -= 1;
                    self.parse_number()?;
                    nodes.push(PathNode::Other);
                }
                Some(c) if is_alphanumeric(c) => {
                    while self.peek().is_some_and(|c| !is_terminator(c)) {
                        self.pos += 1;
                    }
                    nodes.push(PathNode::Other);
                }
                Some(c) => return Err(format!("unrecognized character in action: {}", go_rune(c))),
            }
        }
    }

    /// A field name up to the next unescaped terminator; `\` escapes and is dropped.
    fn parse_field(&mut self) -> PathNode {
        let start = self.pos;
        while let Some(c) = self.peek() {
            if c == '\\' {
                self.pos += 1;
                self.next();
            } else if is_terminator(c) {
                break;
            } else {
                self.pos += 1;
            }
        }
        let value = self.text(start, self.pos);
        if value == "*" { PathNode::Other } else { PathNode::Field(value.replace('\\', "")) }
    }

    /// `[...]` after its `[`: unions, `'key'` (which yields fields), slices and indexes.
    fn parse_array(&mut self) -> std::result::Result<Vec<PathNode>, String> {
        let start = self.pos;
        loop {
            match self.next() {
                None | Some('\n') => return Err("unterminated array".into()),
                Some(']') => break,
                Some(_) => {}
            }
        }
        let mut text = self.text(start, self.pos - 1);
        if text == "*" {
            text = ":".into();
        }
        let parts: Vec<&str> = text.split(',').collect();
        if parts.len() > 1 {
            for part in parts {
                parse_action_text(&format!("[{}]", part.trim_matches(' ')))?;
            }
            return Ok(vec![PathNode::Other]);
        }
        if let Some(key) = text.strip_prefix('\'').and_then(|t| t.strip_suffix('\'')).filter(|k| !k.contains('\'')) {
            return parse_action_text(&format!(".{key}"));
        }
        check_slice(&text)?;
        Ok(vec![PathNode::Other])
    }

    /// `[?(...)]` after its `[?(`, up to the closing `)]` outside quotes.
    fn parse_filter(&mut self) -> std::result::Result<(), String> {
        let (mut begin, mut end, mut pair) = (false, false, '"');
        loop {
            match self.next() {
                None | Some('\n') => return Err("unterminated filter".into()),
                Some(q @ ('"' | '\'')) => {
                    if !begin {
                        begin = true;
                        pair = q;
                    } else if q == pair && self.pos >= 2 && self.chars[self.pos - 2] != '\\' {
                        end = true;
                    }
                }
                Some(')') if begin == end => break,
                Some(_) => {}
            }
        }
        if self.next() != Some(']') {
            return Err("unclosed array expect ]".into());
        }
        Ok(())
    }

    /// A quoted literal after its opening quote.
    fn parse_quote(&mut self, quote: char) -> std::result::Result<(), String> {
        loop {
            match self.next() {
                None | Some('\n') => return Err("unterminated quoted string".into()),
                Some(c) if c == quote && self.pos >= 2 && self.chars[self.pos - 2] != '\\' => return Ok(()),
                Some(_) => {}
            }
        }
    }

    fn parse_number(&mut self) -> std::result::Result<(), String> {
        let start = self.pos;
        if matches!(self.peek(), Some('+') | Some('-')) {
            self.pos += 1;
        }
        while self.peek().is_some_and(|c| c == '.' || c.is_numeric()) {
            self.pos += 1;
        }
        let value = self.text(start, self.pos);
        if value.parse::<i64>().is_ok() || value.parse::<f64>().is_ok() {
            Ok(())
        } else {
            Err(format!("cannot parse number {value}"))
        }
    }
}

/// Checks an index or slice (`1`, `-1`, `1:3`, `::2`) as client-go's slice pattern does.
fn check_slice(text: &str) -> std::result::Result<(), String> {
    let invalid = || format!("invalid array index {text}");
    let parts: Vec<&str> = text.split(':').collect();
    if parts.len() > 3 {
        return Err(invalid());
    }
    for p in &parts {
        let digits = p.strip_prefix('-').unwrap_or(p);
        if !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid());
        }
    }
    for p in parts.iter().filter(|p| !p.is_empty()) {
        if p.parse::<i64>().is_err() {
            return Err(format!("array index {p} is not a number"));
        }
    }
    Ok(())
}

fn is_alphanumeric(c: char) -> bool {
    c == '_' || c.is_alphabetic() || c.is_numeric()
}

fn is_terminator(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n' | '.' | ',' | '[' | ']' | '$' | '@' | '{' | '}')
}

/// Go's `%#U`: `U+007B '{'`.
fn go_rune(c: char) -> String {
    let code = format!("U+{:04X}", c as u32);
    if c == ' ' || !(c.is_control() || c.is_whitespace()) { format!("{code} '{c}'") } else { code }
}

/// What rendering wrote to stdout, and the error kubectl would print after it.
#[derive(Debug)]
struct Rendered {
    text: String,
    error: Option<String>,
}

/// The `$ref`s already followed on the way to a schema (how kubectl stops at cycles).
type History = BTreeSet<String>;

/// Renders kubectl's plaintext explain of `fields` under the resource `gvr` from `doc`.
fn render(doc: &Value, gvr: &Gvr, fields: &[String], recursive: bool) -> Rendered {
    let prefix = if gvr.group.is_empty() { "/api".to_string() } else { format!("/apis/{}", gvr.group) };
    let (v, r) = (&gvr.version, &gvr.resource);
    let search = [
        format!("{prefix}/{v}/{r}"),
        format!("{prefix}/{v}/{r}/{{name}}"),
        format!("{prefix}/{v}/namespaces/{{namespace}}/{r}"),
        format!("{prefix}/{v}/namespaces/{{namespace}}/{r}/{{name}}"),
    ];
    // As in kubectl's template, a later path's operations overwrite an earlier path's GVK.
    let mut gvk = &Value::Null;
    for path in &search {
        let element = &doc["paths"][path.as_str()];
        if !truthy(element) {
            continue;
        }
        for method in ["get", "post", "put", "patch", "delete"] {
            let op = &element[method];
            if !truthy(op) {
                continue;
            }
            gvk = &op["x-kubernetes-group-version-kind"];
            if truthy(gvk) {
                break;
            }
        }
    }
    if !truthy(gvk) {
        return Rendered {
            text: String::new(),
            error: Some(format!("error: GVR ({gvr}) not found in OpenAPI schema")),
        };
    }
    let mut text = String::new();
    if truthy(&gvk["group"]) {
        text.push_str(&format!("GROUP:      {}\n", go_field(gvk, "group")));
    }
    text.push_str(&format!("KIND:       {}\n", go_field(gvk, "kind")));
    text.push_str(&format!("VERSION:    {}\n\n", go_field(gvk, "version")));

    let explainer = Explainer { doc, recursive };
    let mut body = None;
    if let Some(schemas) = doc["components"]["schemas"].as_object() {
        let mut names: Vec<&String> = schemas.keys().collect();
        names.sort();
        for name in names {
            let schema = &schemas[name.as_str()];
            let listed = schema["x-kubernetes-group-version-kind"].as_array().is_some_and(|l| l.contains(gvk));
            if listed {
                body = Some(explainer.output(schema, fields, &History::new(), 0));
                break;
            }
        }
    }
    let error = match body {
        None => Some(format!("error: GVK {} not found in OpenAPI schema", go_value(gvk))),
        Some(b) if b.is_empty() => {
            Some(format!("error: field \"{}\" does not exist", fields.last().map(String::as_str).unwrap_or("")))
        }
        Some(b) => {
            text.push_str(&b);
            text.push('\n');
            None
        }
    };
    Rendered { text, error }
}

/// The pieces of kubectl's template, over one OpenAPI v3 document.
struct Explainer<'a> {
    doc: &'a Value,
    recursive: bool,
}

impl Explainer<'_> {
    /// A local `#/...` reference's target when it is a non-empty object (kubectl's resolveRef
    /// as the template tests it).
    fn resolve(&self, reference: &Value) -> Option<&Value> {
        let fragment = reference.as_str()?.strip_prefix('#').filter(|f| !f.is_empty())?;
        let mut cur = self.doc;
        for part in fragment.split('/').filter(|p| !p.is_empty()) {
            cur = cur.get(part).filter(|v| v.is_object())?;
        }
        Some(cur).filter(|v| truthy(v))
    }

    /// Follows the field path; with none left, prints DESCRIPTION and FIELDS. Empty when a
    /// field does not exist.
    fn output(&self, schema: &Value, path: &[String], history: &History, depth: usize) -> String {
        let reference = ref_of(schema);
        let resolved = self.resolve(&schema["$ref"]).unwrap_or(schema);
        let Some(first) = path.first() else {
            let mut out = String::from("DESCRIPTION:\n");
            let mut description = self.description(resolved, 0);
            if description.is_empty() {
                description = "<empty>".into();
            }
            out.push_str(&indent(4, &wrap(&description, 76)));
            out.push('\n');
            let fields = self.field_list(resolved, 1, &History::new());
            if !fields.is_empty() {
                out.push_str("FIELDS:\n");
                out.push_str(&fields);
            }
            return out;
        };
        if depth > MAX_DEPTH || (!reference.is_empty() && history.contains(&reference)) {
            return String::new();
        }
        let mut next = history.clone();
        next.insert(reference);
        let property = &resolved["properties"][first.as_str()];
        if truthy(&resolved["properties"]) && truthy(property) {
            let mut out = String::new();
            if path.len() == 1 {
                out.push_str(&format!("FIELD: {first} <{}>\n", self.type_guess(property, 0)));
                out.push_str(&extract_enum(property, true, None, 0));
                out.push_str("\n\n");
            }
            out.push_str(&self.output(property, &path[1..], &History::new(), depth + 1));
            return out;
        }
        if truthy(&resolved["items"]) {
            return self.output(&resolved["items"], path, &next, depth + 1);
        }
        if is_schema_map(&resolved["additionalProperties"]) {
            return self.output(&resolved["additionalProperties"], path, &next, depth + 1);
        }
        for sub in array(&resolved["allOf"]) {
            let out = self.output(sub, path, &next, depth + 1);
            if !out.is_empty() {
                return out;
            }
        }
        String::new()
    }

    /// The field lines of a schema (and of what it is made of: allOf, items, map values).
    fn field_list(&self, schema: &Value, level: usize, history: &History) -> String {
        let reference = ref_of(schema);
        if !reference.is_empty() && history.contains(&reference) {
            return String::new();
        }
        let mut next = history.clone();
        next.insert(reference);
        let resolved = self.resolve(&schema["$ref"]).unwrap_or(schema);
        let mut out = String::new();
        if let Some(props) = resolved["properties"].as_object() {
            let mut names: Vec<&String> = props.keys().collect();
            names.sort();
            for name in names {
                out.push_str(&self.field_detail(name, resolved, level));
                if self.recursive {
                    out.push_str(&self.field_list(&props[name.as_str()], level + 1, &next));
                }
            }
        }
        for sub in array(&resolved["allOf"]) {
            out.push_str(&self.field_list(sub, level, &next));
        }
        if truthy(&resolved["items"]) {
            out.push_str(&self.field_list(&resolved["items"], level, &next));
        }
        if is_schema_map(&resolved["additionalProperties"]) {
            out.push_str(&self.field_list(&resolved["additionalProperties"], level, &next));
        }
        out
    }

    /// `name<TAB><type>[ -required-][enum line]`, then (unless recursive) the wrapped description.
    fn field_detail(&self, name: &str, container: &Value, level: usize) -> String {
        let amount = level * 2;
        let field = &container["properties"][name];
        let mut out = indent(amount, name);
        out.push_str(&format!("\t<{}>", self.type_guess(field, 0)));
        if container["required"].as_array().is_some_and(|r| r.iter().any(|v| v == name)) {
            out.push_str(" -required-");
        }
        out.push_str(&extract_enum(field, false, Some(4), amount));
        out.push('\n');
        if !self.recursive {
            let description =
                if truthy(&field["description"]) { go_value(&field["description"]) } else { "<no description>".into() };
            out.push_str(&indent(amount + 2, &wrap(&description, 78usize.saturating_sub(amount))));
            out.push_str("\n\n");
        }
        out
    }

    /// The schema's description, then those of what it is made of, one per line.
    fn description(&self, schema: &Value, depth: usize) -> String {
        let s = self.resolve(&schema["$ref"]).unwrap_or(schema);
        if depth > MAX_DEPTH || !truthy(s) {
            return String::new();
        }
        let mut out = String::new();
        if truthy(&s["description"]) {
            out.push_str(&go_value(&s["description"]));
            out.push('\n');
        }
        for sub in array(&s["allOf"]) {
            out.push_str(&self.description(sub, depth + 1));
        }
        if truthy(&s["items"]) {
            out.push_str(&self.description(&s["items"], depth + 1));
        }
        if is_schema_map(&s["additionalProperties"]) {
            out.push_str(&self.description(&s["additionalProperties"], depth + 1));
        }
        out
    }

    /// kubectl's type hint: `string`, `Object`, `[]Container`, `map[string]Quantity`, ...
    fn type_guess(&self, s: &Value, depth: usize) -> String {
        // kubectl fails the whole template on an empty schema; a name is more useful.
        if depth > MAX_DEPTH || !truthy(s) {
            return "Object".into();
        }
        if truthy(&s["items"]) {
            return format!("[]{}", self.type_guess(&s["items"], depth + 1));
        }
        if is_schema_map(&s["additionalProperties"]) {
            return format!("map[string]{}", self.type_guess(&s["additionalProperties"], depth + 1));
        }
        if let Some([only]) = s["allOf"].as_array().map(Vec::as_slice)
            && !truthy(&s["properties"])
        {
            return self.type_guess(only, depth + 1);
        }
        if truthy(&s["$ref"]) {
            let reference = go_value(&s["$ref"]);
            return match self.resolve(&s["$ref"]) {
                Some(target) if truthy(&target["type"]) && target["type"] != "object" => go_value(&target["type"]),
                _ => {
                    let name = reference.rsplit('/').next().unwrap_or("");
                    let last = name.rsplit('.').next().unwrap_or("");
                    if last.is_empty() { "Object".into() } else { last.to_string() }
                }
            };
        }
        if s["type"] == "object" || !truthy(&s["type"]) { "Object".into() } else { go_value(&s["type"]) }
    }
}

/// `ENUM:` lines (long view) or a `enum: a, b, c, d, ....` line (field lists, at most `limit`).
fn extract_enum(schema: &Value, long: bool, limit: Option<usize>, indent_amount: usize) -> String {
    let Some(values) = schema["enum"].as_array().filter(|v| !v.is_empty()) else {
        return String::new();
    };
    let mut out = if long { "ENUM:".to_string() } else { format!("\n{}enum: ", " ".repeat(indent_amount)) };
    for (i, v) in values.iter().enumerate() {
        if limit.is_some_and(|l| i >= l) {
            out.push_str(", ....");
            break;
        }
        if long {
            out.push_str("\n    ");
        } else if i > 0 {
            out.push_str(", ");
        }
        if v.as_str() == Some("") {
            out.push_str("\"\"");
        } else {
            out.push_str(&go_value(v));
        }
    }
    out
}

/// A schema's `$ref` as the template reads it (empty when absent).
fn ref_of(schema: &Value) -> String {
    if truthy(&schema["$ref"]) { go_value(&schema["$ref"]) } else { String::new() }
}

/// Go template truth: false, 0, "", empty arrays and maps and nil are false.
fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// `additionalProperties` that is a schema (not `true`/`false`) and so describes map values.
fn is_schema_map(v: &Value) -> bool {
    truthy(v) && !v.is_boolean()
}

fn array(v: &Value) -> &[Value] {
    v.as_array().map(Vec::as_slice).unwrap_or(&[])
}

/// A map entry as a Go template prints it (`<no value>` when the key is missing).
fn go_field(map: &Value, key: &str) -> String {
    map.get(key).map(go_value).unwrap_or_else(|| "<no value>".into())
}

/// A decoded JSON value as Go's `%v` prints it (numbers are float64 there).
fn go_value(v: &Value) -> String {
    match v {
        Value::Null => "<nil>".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => rkube_printers::jsonpath::go_float(n.as_f64().unwrap_or(0.0)),
        Value::String(s) => s.clone(),
        Value::Array(a) => format!("[{}]", a.iter().map(go_value).collect::<Vec<_>>().join(" ")),
        Value::Object(o) => {
            let mut keys: Vec<&String> = o.keys().collect();
            keys.sort();
            let items: Vec<String> = keys.iter().map(|k| format!("{k}:{}", go_value(&o[k.as_str()]))).collect();
            format!("map[{}]", items.join(" "))
        }
    }
}


/// Prefixes every line (also the empty one after a trailing newline) with `amount` spaces.
fn indent(amount: usize, text: &str) -> String {
    let pad = " ".repeat(amount);
    format!("{pad}{}", text.replace('\n', &format!("\n{pad}")))
}

/// go-wordwrap v1.0.1's WrapString (what kubectl's `wrap` uses): breaks at whitespace so
/// lines stay within `limit` characters, keeps existing newlines, lets a word longer than
/// the limit overflow, drops the spaces at a break; `limit` 0 leaves the text as it is.
fn wrap(text: &str, limit: usize) -> String {
    if limit == 0 {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len() + text.len() / limit + 1);
    let mut current = 0usize;
    let (mut word, mut space) = (String::new(), String::new());
    let (mut word_len, mut space_len) = (0usize, 0usize);
    for c in text.chars() {
        if c == '\n' {
            if !word.is_empty() {
                out.push_str(&space);
                out.push_str(&word);
            } else if current + space_len <= limit {
                out.push_str(&space);
            }
            space.clear();
            word.clear();
            space_len = 0;
            word_len = 0;
            out.push('\n');
            current = 0;
        } else if c.is_whitespace() && c != '\u{a0}' {
            if space.is_empty() || !word.is_empty() {
                current += space_len + word_len;
                out.push_str(&space);
                out.push_str(&word);
                space.clear();
                word.clear();
                space_len = 0;
                word_len = 0;
            }
            space.push(c);
            space_len += 1;
        } else {
            word.push(c);
            word_len += 1;
            if current + space_len + word_len > limit && word_len < limit {
                out.push('\n');
                current = 0;
                space.clear();
                space_len = 0;
            }
        }
    }
    if word.is_empty() {
        if current + space_len <= limit {
            out.push_str(&space);
        }
    } else {
        out.push_str(&space);
        out.push_str(&word);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn wrap_breaks_at_spaces_keeps_newlines_and_long_words() {
        assert_eq!(wrap("aaa bbb ccc", 7), "aaa bbb\nccc");
        assert_eq!(wrap("aaa\nbbb ccc", 7), "aaa\nbbb ccc");
        assert_eq!(
            wrap("see https://example.com/a/very/long/url ok", 10),
            "see\nhttps://example.com/a/very/long/url\nok"
        );
        assert_eq!(wrap("trailing\n", 76), "trailing\n");
        assert_eq!(wrap("a  b", 0), "a  b");
        // Spaces at a break are dropped; a run of spaces is kept inside a line.
        assert_eq!(wrap("ab  cd ef", 5), "ab\ncd ef");
        assert_eq!(wrap("ab  cd", 10), "ab  cd");
    }

    #[test]
    fn indent_prefixes_the_line_after_a_trailing_newline() {
        assert_eq!(indent(4, "a\nb\n"), "    a\n    b\n    ");
        assert_eq!(indent(0, "x"), "x");
    }

    #[test]
    fn go_float_matches_go_percent_v() {
        use rkube_printers::jsonpath::go_float;
        assert_eq!(go_float(1.0), "1");
        assert_eq!(go_float(-2.5), "-2.5");
        assert_eq!(go_float(123456.0), "123456");
        assert_eq!(go_float(1_000_000.0), "1e+06");
        assert_eq!(go_float(1_234_567.0), "1.234567e+06");
        assert_eq!(go_float(0.0001), "0.0001");
        assert_eq!(go_float(0.00001), "1e-05");
    }

    #[test]
    fn json_path_nodes_follow_client_go() {
        let f = |s: &str| PathNode::Field(s.into());
        assert_eq!(json_path_nodes("pods.spec.").unwrap(), vec![f("pods"), f("spec")]);
        assert_eq!(json_path_nodes(".spec").unwrap(), vec![PathNode::Recursive, f("spec")]);
        assert_eq!(json_path_nodes("..spec").unwrap(), vec![PathNode::Recursive, f("spec")]);
        assert_eq!(json_path_nodes("pods['spec']").unwrap(), vec![f("pods"), f("spec")]);
        assert_eq!(json_path_nodes("pods[0]").unwrap(), vec![f("pods"), PathNode::Other]);
        assert_eq!(json_path_nodes("pods.spec.{a}").unwrap_err(), "unrecognized character in action: U+007B '{'");
        assert_eq!(json_path_nodes("pods[x]").unwrap_err(), "invalid array index x");
        assert_eq!(json_path_nodes("pods[-]").unwrap_err(), "array index - is not a number");
        assert_eq!(json_path_nodes("pods[0").unwrap_err(), "unterminated array");
        assert_eq!(json_path_nodes("pods}x").unwrap_err(), "must pass in 1 jsonpath string");
        assert_eq!(json_path_nodes("a\\.b").unwrap(), vec![f("a.b")]);
    }

    #[test]
    fn group_versions_parse_as_apimachinery_does() {
        assert_eq!(parse_group_version("batch/v1").unwrap(), ("batch".into(), "v1".into()));
        assert_eq!(parse_group_version("v1").unwrap(), (String::new(), "v1".into()));
        assert_eq!(
            parse_group_version("a/b/c").unwrap_err().to_string(),
            "error: unexpected GroupVersion string: a/b/c"
        );
    }

    /// A small document with what the API server omits today: enums and a cycle.
    fn doc() -> Value {
        json!({
            "paths": {"/apis/x.io/v1/namespaces/{namespace}/things": {
                "get": {"x-kubernetes-group-version-kind": {"group": "x.io", "kind": "Thing", "version": "v1"}}
            }},
            "components": {"schemas": {
                "io.x.Thing": {
                    "description": "A thing.",
                    "x-kubernetes-group-version-kind": [{"group": "x.io", "kind": "Thing", "version": "v1"}],
                    "required": ["spec"],
                    "properties": {
                        "spec": {"allOf": [{"$ref": "#/components/schemas/io.x.Spec"}], "description": "The spec."},
                        "policy": {"type": "string", "enum": ["", "A", "B", "C", "D"], "description": "Policy."},
                        "count": {"type": "integer", "format": "int32"},
                        "labels": {"type": "object", "additionalProperties": {"type": "string"}}
                    }
                },
                "io.x.Spec": {
                    "description": "Spec of a thing.",
                    "type": "object",
                    "properties": {
                        "children": {"type": "array", "items": {"$ref": "#/components/schemas/io.x.Spec"}},
                        "size": {"allOf": [{"$ref": "#/components/schemas/io.x.Quantity"}]},
                        "when": {"allOf": [{"$ref": "#/components/schemas/io.x.Time"}]}
                    }
                },
                "io.x.Quantity": {"description": "A quantity."},
                "io.x.Time": {"type": "string", "format": "date-time"}
            }}
        })
    }

    fn gvr() -> Gvr {
        Gvr { group: "x.io".into(), version: "v1".into(), resource: "things".into() }
    }

    #[test]
    fn renders_fields_types_enums_and_required() {
        let r = render(&doc(), &gvr(), &[], false);
        assert_eq!(r.error, None);
        assert_eq!(
            r.text,
            "GROUP:      x.io\nKIND:       Thing\nVERSION:    v1\n\nDESCRIPTION:\n    A thing.\n    \nFIELDS:\n\
             \x20 count\t<integer>\n    <no description>\n\n\
             \x20 labels\t<map[string]string>\n    <no description>\n\n\
             \x20 policy\t<string>\n  enum: \"\", A, B, C, ....\n    Policy.\n\n\
             \x20 spec\t<Spec> -required-\n    The spec.\n\n\n"
        );
    }

    #[test]
    fn renders_a_field_with_its_enum_and_both_descriptions() {
        let r = render(&doc(), &gvr(), &["policy".into()], false);
        assert_eq!(
            r.text,
            "GROUP:      x.io\nKIND:       Thing\nVERSION:    v1\n\nFIELD: policy <string>\nENUM:\n    \"\"\n    A\n    B\n    C\n    D\n\nDESCRIPTION:\n    Policy.\n    \n\n"
        );
        let r = render(&doc(), &gvr(), &["spec".into()], false);
        assert!(r.text.contains("FIELD: spec <Spec>\n\n\nDESCRIPTION:\n    The spec.\n    Spec of a thing.\n    \nFIELDS:\n  children\t<[]Spec>\n"), "{}", r.text);
        assert!(r.text.contains("  size\t<Quantity>\n") && r.text.contains("  when\t<string>\n"), "{}", r.text);
    }

    #[test]
    fn recursive_stops_at_cycles() {
        let r = render(&doc(), &gvr(), &["spec".into()], true);
        assert!(
            r.text.ends_with("FIELDS:\n  children\t<[]Spec>\n  size\t<Quantity>\n  when\t<string>\n\n"),
            "{}",
            r.text
        );
    }

    #[test]
    fn missing_fields_and_kinds_are_kubectls_errors() {
        let r = render(&doc(), &gvr(), &["nosuch".into(), "spec".into()], false);
        assert_eq!(r.text, "GROUP:      x.io\nKIND:       Thing\nVERSION:    v1\n\n");
        assert_eq!(r.error.as_deref(), Some("error: field \"spec\" does not exist"));
        let other = Gvr { group: "x.io".into(), version: "v1".into(), resource: "others".into() };
        let r = render(&doc(), &other, &[], false);
        assert_eq!(r.text, "");
        assert_eq!(r.error.as_deref(), Some("error: GVR (x.io/v1, Resource=others) not found in OpenAPI schema"));
        let mut d = doc();
        d["components"]["schemas"]["io.x.Thing"]["x-kubernetes-group-version-kind"] = json!([]);
        let r = render(&d, &gvr(), &[], false);
        assert_eq!(
            r.error.as_deref(),
            Some("error: GVK map[group:x.io kind:Thing version:v1] not found in OpenAPI schema")
        );
    }
}
