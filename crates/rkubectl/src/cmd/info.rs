//! Cluster-level information: `api-resources`, `api-versions`, `version`, `cluster-info`
//! (`explain` lives in its own module).

use crate::cli::{ApiResourcesArgs, VersionArgs};
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
