//! Cluster-level information: `api-resources`, `api-versions`, `version`, `cluster-info`,
//! and a short `explain` from discovery.

use crate::cli::{ApiResourcesArgs, ExplainArgs, VersionArgs};
use crate::ctx::Ctx;
use crate::error::{Error, Result};
use crate::print::table::align;
use crate::print::{json, yaml};
use serde_json::json;

/// Runs `api-resources`.
pub fn api_resources(ctx: &mut Ctx, a: ApiResourcesArgs) -> Result<()> {
    let d = ctx.discovery(true)?;
    let mut rs: Vec<_> = d
        .resources
        .iter()
        .filter(|r| a.namespaced.is_none_or(|n| r.namespaced == n))
        .filter(|r| a.api_group.as_deref().is_none_or(|g| r.group == g))
        .filter(|r| a.verbs.iter().all(|v| r.verbs.contains(v)))
        .collect();
    match a.sort_by.as_deref() {
        Some("name") => rs.sort_by(|x, y| x.plural.cmp(&y.plural)),
        Some("kind") => rs.sort_by(|x, y| x.kind.cmp(&y.kind)),
        _ => rs.sort_by(|x, y| (&x.group, &x.plural).cmp(&(&y.group, &y.plural))),
    }
    if a.output.output.as_deref() == Some("name") {
        for r in rs {
            ctx.println(&r.resource_group());
        }
        return Ok(());
    }
    let wide = a.output.output.as_deref() == Some("wide");
    let mut lines = Vec::new();
    if !a.no_headers {
        let mut h: Vec<String> =
            ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"].iter().map(|s| s.to_string()).collect();
        if wide {
            h.push("VERBS".into());
            h.push("CATEGORIES".into());
        }
        lines.push(h);
    }
    for r in rs {
        let mut l =
            vec![r.plural.clone(), r.short_names.join(","), r.api_version(), r.namespaced.to_string(), r.kind.clone()];
        if wide {
            let mut verbs = r.verbs.clone();
            verbs.sort();
            l.push(verbs.join(","));
            l.push(r.categories.join(","));
        }
        lines.push(l);
    }
    let text = align(&lines);
    ctx.print(&text);
    Ok(())
}

/// Runs `api-versions`.
pub fn api_versions(ctx: &mut Ctx) -> Result<()> {
    let d = ctx.discovery(true)?;
    let mut v = d.group_versions.clone();
    v.sort();
    v.dedup();
    for gv in v {
        ctx.println(&gv);
    }
    Ok(())
}

/// Runs `version`.
pub fn version(ctx: &mut Ctx, a: VersionArgs) -> Result<()> {
    let client_version = json!({"major": "1", "minor": "33", "gitVersion": format!("v{}-rkubectl", env!("CARGO_PKG_VERSION")), "platform": format!("{}/{}", std::env::consts::OS, std::env::consts::ARCH)});
    let server = if a.client {
        None
    } else {
        let c = ctx.client()?;
        Some(c.get("/version")?)
    };
    match a.output.output.as_deref() {
        Some("json") | Some("yaml") => {
            let mut doc = json!({"clientVersion": client_version});
            if let Some(s) = &server {
                doc["serverVersion"] = s.clone();
            }
            let text =
                if a.output.output.as_deref() == Some("json") { json::to_string(&doc) } else { yaml::to_string(&doc) };
            ctx.print(&text);
        }
        Some(o) => return Err(Error::usage(format!("--output must be 'yaml' or 'json', not {o:?}"))),
        None => {
            ctx.println(&format!("Client Version: {}", client_version["gitVersion"].as_str().unwrap_or("")));
            if let Some(s) = server {
                ctx.println(&format!("Server Version: {}", s["gitVersion"].as_str().unwrap_or("")));
            }
        }
    }
    Ok(())
}

/// Runs `cluster-info`.
pub fn cluster_info(ctx: &mut Ctx) -> Result<()> {
    let client = ctx.client()?;
    // One request proves the server answers (kubectl fails the same way when it does not).
    client.get("/version")?;
    let color = ctx.is_terminal();
    let line = |what: &str, url: &str| {
        if color {
            format!("\x1b[0;32m{what}\x1b[0m is running at \x1b[0;33m{url}\x1b[0m")
        } else {
            format!("{what} is running at {url}")
        }
    };
    ctx.println(&line("Kubernetes control plane", client.server()));
    if let Ok(list) =
        client.get("/api/v1/namespaces/kube-system/services?labelSelector=kubernetes.io%2Fcluster-service%3Dtrue")
    {
        for svc in list["items"].as_array().into_iter().flatten() {
            let name = svc["metadata"]["labels"]["kubernetes.io/name"]
                .as_str()
                .unwrap_or_else(|| svc["metadata"]["name"].as_str().unwrap_or(""));
            let svc_name = svc["metadata"]["name"].as_str().unwrap_or("");
            let port = svc["spec"]["ports"][0]["name"].as_str().map(str::to_string).unwrap_or_default();
            let target = if port.is_empty() { svc_name.to_string() } else { format!("{svc_name}:{port}") };
            let url = format!("{}/api/v1/namespaces/kube-system/services/{target}/proxy", client.server());
            ctx.println(&line(name, &url));
        }
    }
    ctx.println("");
    ctx.println("To further debug and diagnose cluster problems, use 'rkubectl cluster-info dump'.");
    Ok(())
}

/// Runs `explain TYPE[.field...]` from discovery and the server's OpenAPI v3 schema.
pub fn explain(ctx: &mut Ctx, a: ExplainArgs) -> Result<()> {
    let mut parts = a.resource.split('.');
    let ty = parts.next().unwrap_or("");
    let fields: Vec<&str> = parts.collect();
    let r = ctx.resource(ty)?;
    let client = ctx.client()?;
    let path = if r.group.is_empty() {
        format!("/openapi/v3/api/{}", r.version)
    } else {
        format!("/openapi/v3/apis/{}/{}", r.group, r.version)
    };
    let doc = client.get(&path)?;
    let schemas = &doc["components"]["schemas"];
    let (key, mut schema) = schemas
        .as_object()
        .into_iter()
        .flatten()
        .find(|(_, s)| {
            s["x-kubernetes-group-version-kind"].as_array().into_iter().flatten().any(|g| {
                g["kind"] == r.kind.as_str() && g["group"] == r.group.as_str() && g["version"] == r.version.as_str()
            })
        })
        .map(|(k, s)| (k.clone(), s.clone()))
        .ok_or_else(|| Error::usage(format!("couldn't find resource for \"{}\"", r.resource_group())))?;
    let _ = key;
    let mut field_path = String::new();
    for f in &fields {
        let next = schema["properties"][*f].clone();
        if next.is_null() {
            return Err(Error::usage(format!("field \"{f}\" does not exist")));
        }
        schema = resolve_ref(schemas, next);
        field_path = format!("{field_path}.{f}");
    }
    ctx.println(&format!("GROUP:      {}", r.group));
    ctx.println(&format!("KIND:       {}", r.kind));
    ctx.println(&format!("VERSION:    {}", r.version));
    ctx.println("");
    if !field_path.is_empty() {
        ctx.println(&format!("FIELD: {} <{}>", fields.last().unwrap_or(&""), type_name(&schema)));
        ctx.println("");
    }
    ctx.println("DESCRIPTION:");
    for l in schema["description"].as_str().unwrap_or("<empty>").lines() {
        ctx.println(&format!("    {l}"));
    }
    if let Some(props) = schema["properties"].as_object() {
        ctx.println("    ");
        ctx.println("FIELDS:");
        let mut keys: Vec<&String> = props.keys().collect();
        keys.sort();
        let required: Vec<&str> =
            schema["required"].as_array().into_iter().flatten().filter_map(|v| v.as_str()).collect();
        for k in keys {
            let p = resolve_ref(schemas, props[k.as_str()].clone());
            let req = if required.contains(&k.as_str()) { " -required-" } else { "" };
            ctx.println(&format!("  {k}\t<{}>{req}", type_name(&p)));
            if let Some(d) = p["description"].as_str() {
                for l in d.lines() {
                    ctx.println(&format!("    {l}"));
                }
            }
            ctx.println("");
        }
    }
    Ok(())
}

fn resolve_ref(schemas: &serde_json::Value, mut s: serde_json::Value) -> serde_json::Value {
    for _ in 0..4 {
        let r = s["$ref"].as_str().or_else(|| s["allOf"][0]["$ref"].as_str()).map(str::to_string);
        let Some(r) = r else { break };
        let name = r.rsplit('/').next().unwrap_or("");
        let desc = s["description"].clone();
        s = schemas[name].clone();
        if !desc.is_null() && s["description"].is_null() {
            s["description"] = desc;
        }
    }
    s
}

fn type_name(s: &serde_json::Value) -> String {
    match s["type"].as_str() {
        Some("array") => format!("[]{}", s["items"]["type"].as_str().unwrap_or("Object")),
        Some("object") | None => "Object".into(),
        Some("integer") => "integer".into(),
        Some(t) => t.to_string(),
    }
}
