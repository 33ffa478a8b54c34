//! Resource arguments as kubectl reads them (`TYPE[,TYPE...] [NAME...]` or `TYPE/NAME...`,
//! `all`), resolved against discovery, plus small helpers to address objects.

use crate::ctx::Ctx;
use crate::discovery::ApiResource;
use crate::error::{Error, Result};
use serde_json::Value;

/// One request: a resource type and optionally one object name.
#[derive(Debug, Clone)]
pub struct Target {
    /// The resource type.
    pub resource: ApiResource,
    /// The object name, or None for the whole collection.
    pub name: Option<String>,
}

/// Parsed resource arguments.
#[derive(Debug, Clone, Default)]
pub struct Targets {
    /// Requests in argument order.
    pub items: Vec<Target>,
    /// How many distinct types were requested (kubectl prints `kind/name` when > 1).
    pub distinct_types: usize,
    /// Exactly one object was named (`get pod x`), so output is that object, not a List.
    pub single_named: bool,
}

/// Resolves `args` (and `all`) into targets.
pub fn parse(ctx: &mut Ctx, args: &[String]) -> Result<Targets> {
    if args.is_empty() {
        return Err(Error::usage("you must specify the type of resource to get"));
    }
    let mut items = Vec::new();
    if args.iter().any(|a| a.contains('/')) {
        for a in args {
            let Some((ty, name)) = a.split_once('/') else {
                return Err(Error::usage(
                    "there is no need to specify a resource type as a separate argument when passing arguments in resource/name form (e.g. 'rkubectl get resource/<resource_name>' instead of 'rkubectl get resource resource/<resource_name>'",
                ));
            };
            if name.is_empty() {
                return Err(Error::usage(format!(
                    "arguments in resource/name form must have a single resource and name: {a}"
                )));
            }
            let resource = ctx.resource(ty)?;
            items.push(Target { resource, name: Some(name.to_string()) });
        }
    } else {
        let mut types = Vec::new();
        for ty in args[0].split(',').filter(|t| !t.is_empty()) {
            if ty == "all" {
                let d = ctx.discovery(false)?;
                for r in d.resources.iter().filter(|r| r.categories.iter().any(|c| c == "all")) {
                    if !types.contains(r) {
                        types.push(r.clone());
                    }
                }
            } else {
                let r = ctx.resource(ty)?;
                if !types.contains(&r) {
                    types.push(r);
                }
            }
        }
        let names = &args[1..];
        if names.is_empty() {
            items.extend(types.into_iter().map(|resource| Target { resource, name: None }));
        } else {
            for resource in types {
                for n in names {
                    items.push(Target { resource: resource.clone(), name: Some(n.clone()) });
                }
            }
        }
    }
    let mut kinds: Vec<&ApiResource> = Vec::new();
    for t in &items {
        if !kinds.contains(&&t.resource) {
            kinds.push(&t.resource);
        }
    }
    let distinct_types = kinds.len();
    let single_named = items.len() == 1 && items[0].name.is_some();
    Ok(Targets { items, distinct_types, single_named })
}

/// Adds `apiVersion`/`kind` to a list item that lacks them.
pub fn fill_type(obj: &mut Value, r: &ApiResource) {
    if let Some(map) = obj.as_object_mut() {
        map.entry("apiVersion").or_insert_with(|| Value::String(r.api_version()));
        map.entry("kind").or_insert_with(|| Value::String(r.kind.clone()));
    }
}

/// An object's metadata.name.
pub fn name_of(obj: &Value) -> &str {
    obj["metadata"]["name"].as_str().unwrap_or("")
}

/// An object's metadata.namespace.
pub fn namespace_of(obj: &Value) -> &str {
    obj["metadata"]["namespace"].as_str().unwrap_or("")
}

/// Percent-encodes a query value.
pub fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Lists a collection following `continue` tokens; returns (items, list resourceVersion).
pub fn list_all(
    ctx: &mut Ctx,
    r: &ApiResource,
    ns: Option<&str>,
    query: &[(String, String)],
) -> Result<(Vec<Value>, String)> {
    let client = ctx.client()?;
    let query: Vec<(&str, &str)> = query.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let (mut items, rv) = list_pages(&client, &r.collection(ns), &query)?;
    for item in &mut items {
        fill_type(item, r);
    }
    Ok((items, rv))
}

/// The objects the command line names, fetched. A bare type (no name) lists every object of
/// it (matching `selector`, if any) when `list_bare`, else it is kubectl's "no name" error.
pub fn fetch(
    ctx: &mut Ctx,
    args: &[String],
    list_bare: bool,
    selector: Option<&str>,
) -> Result<Vec<(ApiResource, Value)>> {
    let targets = parse(ctx, args)?;
    let client = ctx.client()?;
    let ns = ctx.namespace()?;
    let mut out = Vec::new();
    for t in targets.items {
        let ns = if t.resource.namespaced { ns.clone() } else { String::new() };
        match t.name {
            Some(name) => {
                let mut obj = client.get(&t.resource.item(&ns, &name))?;
                fill_type(&mut obj, &t.resource);
                out.push((t.resource, obj));
            }
            None if list_bare => {
                let query: Vec<(String, String)> =
                    selector.map(|s| vec![("labelSelector".to_string(), s.to_string())]).unwrap_or_default();
                let scope = t.resource.namespaced.then_some(ns.as_str());
                let (items, _) = list_all(ctx, &t.resource, scope, &query)?;
                out.extend(items.into_iter().map(|o| (t.resource.clone(), o)));
            }
            None => return Err(Error::usage("resource(s) were provided, but no name was specified")),
        }
    }
    Ok(out)
}

/// Every item of the collection at `path`, following `continue` tokens 500 items a page as
/// kubectl does, and the list's resourceVersion.
pub fn list_pages(client: &crate::client::Client, path: &str, query: &[(&str, &str)]) -> Result<(Vec<Value>, String)> {
    let mut items = Vec::new();
    let mut cont = String::new();
    loop {
        let mut q: Vec<String> = query.iter().map(|(k, v)| format!("{k}={}", enc(v))).collect();
        q.push("limit=500".into());
        if !cont.is_empty() {
            q.push(format!("continue={}", enc(&cont)));
        }
        let mut list = client.get(&format!("{path}?{}", q.join("&")))?;
        items.extend(list["items"].as_array_mut().map(std::mem::take).unwrap_or_default());
        cont = list["metadata"]["continue"].as_str().unwrap_or("").to_string();
        if cont.is_empty() {
            let rv = list["metadata"]["resourceVersion"].as_str().unwrap_or("").to_string();
            return Ok((items, rv));
        }
    }
}

/// The `not found` error client-go prints for a named object.
pub fn not_found(r: &ApiResource, name: &str) -> Error {
    Error::Api(crate::error::ApiError {
        code: 404,
        reason: "NotFound".into(),
        message: format!("{} \"{name}\" not found", r.resource_group()),
        context: String::new(),
        details: serde_json::Value::Null,
    })
}
