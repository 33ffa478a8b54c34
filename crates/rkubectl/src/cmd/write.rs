//! Verbs that write whole objects: `create -f` (and a few `create <kind>` generators),
//! `apply` (server-side apply), `replace`, `delete` (waiting through a watch) and `patch`.

use crate::cli::{ApplyArgs, CreateArgs, DeleteArgs, PatchArgs};
use crate::client::Client;
use crate::ctx::{Ctx, parse_duration};
use crate::discovery::ApiResource;
use crate::error::{ApiError, Error, Result};
use crate::manifest::{self, Doc};
use crate::print::Format;
use crate::resource::{self, enc, name_of};
use reqwest::Method;
use serde_json::{Value, json};
use std::io::BufRead;
use std::time::{Duration, Instant};

/// The namespace an object from a manifest goes to; kubectl refuses a mismatch with `-n`.
pub fn object_namespace(ctx: &mut Ctx, r: &ApiResource, obj: &Value) -> Result<String> {
    if !r.namespaced {
        return Ok(String::new());
    }
    let client = ctx.client()?;
    let own = resource::namespace_of(obj);
    if own.is_empty() {
        return Ok(client.namespace.clone());
    }
    if client.namespace_explicit && own != client.namespace {
        return Err(Error::usage(format!(
            "the namespace from the provided object \"{own}\" does not match the namespace \"{}\". You must pass '--namespace={own}' to perform this operation.",
            client.namespace
        )));
    }
    Ok(own.to_string())
}

fn dry_run_query(dry_run: Option<&str>) -> Result<(bool, &'static str)> {
    match dry_run {
        None | Some("none") => Ok((false, "")),
        Some("client") => Ok((true, "")),
        Some("server") => Ok((false, "dryRun=All")),
        Some(o) => {
            Err(Error::usage(format!("Invalid dry-run value ({o}). Must be \"none\", \"server\", or \"client\".")))
        }
    }
}

fn suffix(dry_run: Option<&str>) -> &'static str {
    match dry_run {
        Some("client") => " (dry run)",
        Some("server") => " (server dry run)",
        _ => "",
    }
}

/// Prints a written object per `-o` or as `kind/name verb`.
pub fn report_written(ctx: &mut Ctx, format: &Format, output: Option<&str>, obj: &Value, r: &ApiResource, verb: &str) {
    let mut obj = obj.clone();
    resource::fill_type(&mut obj, r);
    if output.is_none() {
        ctx.println(&format!("{}/{} {verb}", r.kind_group(), name_of(&obj)));
        return;
    }
    crate::cmd::get::strip_managed_fields(&mut obj);
    crate::cmd::get::print_objects(ctx, format, vec![obj], true, false);
}

/// Runs `f` on each manifest document with its resource and namespace; a document that fails
/// is reported and the others still go, as kubectl does.
fn each_document(ctx: &mut Ctx, docs: Vec<Doc>, mut f: impl FnMut(&mut Ctx, &Doc, ApiResource, String) -> Result<()>) {
    for d in docs {
        let mut one = || -> Result<()> {
            let r = ctx.resource_for_kind(
                d.object["apiVersion"].as_str().unwrap_or(""),
                d.object["kind"].as_str().unwrap_or(""),
            )?;
            let ns = object_namespace(ctx, &r, &d.object)?;
            f(ctx, &d, r, ns)
        };
        if let Err(e) = one() {
            ctx.report(&e);
        }
    }
}

/// Runs `create`.
pub fn create(ctx: &mut Ctx, a: CreateArgs) -> Result<()> {
    if let Some(what) = a.what.clone() {
        return crate::cmd::generate::run(ctx, what, &a);
    }
    let format = Format::parse(a.output.output.as_deref())?;
    let (client_dry, query) = dry_run_query(a.dry_run.as_deref())?;
    let docs = manifest::read(&a.files.filename, a.files.recursive)?;
    let client = ctx.client()?;
    let manager = a.field_manager.clone().unwrap_or_else(|| "rkubectl-create".into());
    each_document(ctx, docs, |ctx, d, r, ns| {
        let created = if client_dry {
            d.object.clone()
        } else {
            let mut q = vec![format!("fieldManager={}", enc(&manager))];
            if !query.is_empty() {
                q.push(query.to_string());
            }
            let path = format!("{}?{}", r.collection(Some(&ns)), q.join("&"));
            client.json(Method::POST, &path, "application/json", Some(("application/json", &d.object))).map_err(
                |e| {
                    with_context(
                        e,
                        if d.source.is_empty() {
                            String::new()
                        } else {
                            format!("error when creating \"{}\": ", d.source)
                        },
                    )
                },
            )?
        };
        let verb = format!("created{}", suffix(a.dry_run.as_deref()));
        report_written(ctx, &format, a.output.output.as_deref(), &created, &r, &verb);
        Ok(())
    });
    Ok(())
}

fn with_context(e: Error, context: String) -> Error {
    match e {
        Error::Api(api) => Error::Api(api.with_context(context)),
        other => other,
    }
}

/// Runs `replace -f`.
pub fn replace(ctx: &mut Ctx, a: CreateArgs) -> Result<()> {
    let format = Format::parse(a.output.output.as_deref())?;
    let (client_dry, query) = dry_run_query(a.dry_run.as_deref())?;
    let docs = manifest::read(&a.files.filename, a.files.recursive)?;
    let client = ctx.client()?;
    each_document(ctx, docs, |ctx, d, r, ns| {
        let name = name_of(&d.object).to_string();
        let replaced = if client_dry {
            d.object.clone()
        } else {
            let q = if query.is_empty() { String::new() } else { format!("?{query}") };
            let path = format!("{}{q}", r.item(&ns, &name));
            client
                .json(Method::PUT, &path, "application/json", Some(("application/json", &d.object)))
                .map_err(|e| with_context(e, format!("error when replacing \"{}\": ", d.source)))?
        };
        report_written(
            ctx,
            &format,
            a.output.output.as_deref(),
            &replaced,
            &r,
            &format!("replaced{}", suffix(a.dry_run.as_deref())),
        );
        Ok(())
    });
    Ok(())
}

/// Runs `apply -f` as a server-side apply; without `--server-side` a field conflict falls back
/// to a merge patch of the manifest, so objects created by other tools still update.
pub fn apply(ctx: &mut Ctx, a: ApplyArgs) -> Result<()> {
    let format = Format::parse(a.output.output.as_deref())?;
    let (client_dry, query) = dry_run_query(a.dry_run.as_deref())?;
    let docs = manifest::read(&a.files.filename, a.files.recursive)?;
    let client = ctx.client()?;
    each_document(ctx, docs, |ctx, d, r, ns| {
        let name = name_of(&d.object).to_string();
        if name.is_empty() {
            return Err(Error::usage(format!(
                "error when retrieving current configuration of:\nResource: \"{}\"\nfrom server for: \"{}\": resource name may not be empty",
                r.resource_group(),
                d.source
            )));
        }
        let path = r.item(&ns, &name);
        let before = match client.get(&path) {
            Ok(obj) => Some(obj),
            Err(e) if e.is_not_found() => None,
            Err(e) => return Err(e),
        };
        if client_dry {
            let verb = if before.is_some() { "configured" } else { "created" };
            report_written(
                ctx,
                &format,
                a.output.output.as_deref(),
                &d.object,
                &r,
                &format!("{verb}{}", suffix(a.dry_run.as_deref())),
            );
            return Ok(());
        }
        let mut q = vec![format!("fieldManager={}", enc(&a.field_manager))];
        if a.force_conflicts {
            q.push("force=true".into());
        }
        if !query.is_empty() {
            q.push(query.to_string());
        }
        let ssa = client.json(
            Method::PATCH,
            &format!("{path}?{}", q.join("&")),
            "application/json",
            Some(("application/apply-patch+yaml", &d.object)),
        );
        let after = match ssa {
            Ok(obj) => obj,
            Err(Error::Api(e)) if e.code == 409 && !a.server_side => {
                // Client-side apply never conflicts: write the manifest's fields over the live object.
                let mut mq = vec![format!("fieldManager={}", enc(&a.field_manager))];
                if !query.is_empty() {
                    mq.push(query.to_string());
                }
                client.json(
                    Method::PATCH,
                    &format!("{path}?{}", mq.join("&")),
                    "application/json",
                    Some(("application/merge-patch+json", &d.object)),
                )?
            }
            Err(e) => return Err(e),
        };
        let verb = if a.server_side {
            "serverside-applied".to_string()
        } else {
            match &before {
                None => "created".to_string(),
                Some(b) if b["metadata"]["resourceVersion"] == after["metadata"]["resourceVersion"] => {
                    "unchanged".to_string()
                }
                Some(_) => "configured".to_string(),
            }
        };
        report_written(
            ctx,
            &format,
            a.output.output.as_deref(),
            &after,
            &r,
            &format!("{verb}{}", suffix(a.dry_run.as_deref())),
        );
        Ok(())
    });
    Ok(())
}

/// One object to delete.
struct Victim {
    r: ApiResource,
    ns: String,
    name: String,
}

/// Runs `delete`.
pub fn delete(ctx: &mut Ctx, a: DeleteArgs) -> Result<()> {
    let mut victims = Vec::new();
    let client = ctx.client()?;
    if !a.files.filename.is_empty() {
        for d in manifest::read(&a.files.filename, a.files.recursive)? {
            let r = ctx.resource_for_kind(
                d.object["apiVersion"].as_str().unwrap_or(""),
                d.object["kind"].as_str().unwrap_or(""),
            )?;
            let ns = object_namespace(ctx, &r, &d.object)?;
            victims.push(Victim { ns, name: name_of(&d.object).to_string(), r });
        }
    } else {
        if a.resources.is_empty() {
            return Err(Error::usage(
                "You must provide one or more resources by argument or filename.\nExample resource specifications include:\n   '-f rsrc.yaml'\n   '--filename=rsrc.json'\n   '<resource> <name>'\n   '<resource>'",
            ));
        }
        let targets = resource::parse(ctx, &a.resources)?;
        let ns = if a.all_namespaces { None } else { Some(client.namespace.clone()) };
        for t in targets.items {
            match t.name {
                Some(name) => victims.push(Victim {
                    ns: if t.resource.namespaced { client.namespace.clone() } else { String::new() },
                    name,
                    r: t.resource,
                }),
                None => {
                    if a.selector.is_none() && a.field_selector.is_none() && !a.all {
                        return Err(Error::usage("resource(s) were provided, but no name was specified"));
                    }
                    let mut query = Vec::new();
                    if let Some(l) = &a.selector {
                        query.push(("labelSelector".to_string(), l.clone()));
                    }
                    if let Some(f) = &a.field_selector {
                        query.push(("fieldSelector".to_string(), f.clone()));
                    }
                    let (items, _) = resource::list_all(ctx, &t.resource, ns.as_deref(), &query)?;
                    for i in items {
                        victims.push(Victim {
                            ns: resource::namespace_of(&i).to_string(),
                            name: name_of(&i).to_string(),
                            r: t.resource.clone(),
                        });
                    }
                }
            }
        }
        if victims.is_empty() {
            match ns {
                Some(ns) if !a.all_namespaces => ctx.eprintln(&format!("No resources found in {ns} namespace.")),
                _ => ctx.eprintln("No resources found"),
            }
            return Ok(());
        }
    }
    let mut opts = json!({"kind": "DeleteOptions", "apiVersion": "v1"});
    let policy = match a.cascade.as_deref() {
        None | Some("background") | Some("true") => "Background",
        Some("foreground") => "Foreground",
        Some("orphan") | Some("false") => "Orphan",
        Some(o) => {
            return Err(Error::usage(format!(
                "invalid cascade value ({o}). Must be \"background\", \"foreground\", or \"orphan\""
            )));
        }
    };
    opts["propagationPolicy"] = json!(policy);
    let grace = if a.now { 1 } else { a.grace_period };
    if a.force && grace == 0 {
        ctx.eprintln("Warning: Immediate deletion does not wait for confirmation that the running resource has been terminated. The resource may continue to run on the cluster indefinitely.");
    }
    if grace >= 0 {
        opts["gracePeriodSeconds"] = json!(grace);
    }
    let mut deleted = Vec::new();
    for v in victims {
        match client.json(
            Method::DELETE,
            &v.r.item(&v.ns, &v.name),
            "application/json",
            Some(("application/json", &opts)),
        ) {
            Ok(obj) => {
                if a.output.output.as_deref() == Some("name") {
                    ctx.println(&format!("{}/{}", v.r.kind_group(), v.name));
                } else {
                    ctx.println(&format!("{} \"{}\" deleted", v.r.kind_group(), v.name));
                }
                let uid = obj["metadata"]["uid"].as_str().map(str::to_string);
                deleted.push((v, uid));
            }
            Err(e) if e.is_not_found() && a.ignore_not_found => {}
            Err(e) => ctx.report(&e),
        }
    }
    ctx.flush();
    let wait = a.wait && !(a.force && grace == 0);
    if wait {
        let limit = match a.timeout.as_deref() {
            None | Some("0") | Some("0s") => Duration::from_secs(7 * 24 * 3600),
            Some(t) => parse_duration(t)?,
        };
        let deadline = Instant::now() + limit;
        for (v, uid) in deleted {
            if let Err(e) = wait_gone(&client, &v.r, &v.ns, &v.name, uid.as_deref(), deadline) {
                ctx.report(&e);
            }
        }
    }
    Ok(())
}

/// Waits until the object is gone (or replaced by one with another uid), through a watch.
pub fn wait_gone(
    client: &Client,
    r: &ApiResource,
    ns: &str,
    name: &str,
    uid: Option<&str>,
    deadline: Instant,
) -> Result<()> {
    loop {
        let current = match client.get(&r.item(ns, name)) {
            Ok(obj) => obj,
            Err(e) if e.is_not_found() => return Ok(()),
            Err(e) => return Err(e),
        };
        if uid.is_some_and(|u| current["metadata"]["uid"].as_str() != Some(u)) {
            return Ok(());
        }
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(Error::usage(format!("timed out waiting for the condition on {}/{name}", r.plural)));
        }
        let rv = current["metadata"]["resourceVersion"].as_str().unwrap_or("");
        let secs = remaining.as_secs().clamp(1, 300);
        let path = format!(
            "{}?watch=1&fieldSelector={}&resourceVersion={}&timeoutSeconds={secs}",
            r.collection(if r.namespaced { Some(ns) } else { None }),
            enc(&format!("metadata.name={name}")),
            enc(rv)
        );
        let resp = client.stream(&path, "application/json")?;
        for line in std::io::BufReader::new(resp).lines() {
            let Ok(line) = line else { break };
            let Ok(ev) = serde_json::from_str::<Value>(&line) else { continue };
            if ev["type"] == "DELETED" {
                return Ok(());
            }
            if ev["type"] == "ERROR" {
                break;
            }
            if Instant::now() > deadline {
                break;
            }
        }
    }
}

/// Runs `patch`.
pub fn patch(ctx: &mut Ctx, a: PatchArgs) -> Result<()> {
    let format = Format::parse(a.output.output.as_deref())?;
    let targets = resource::parse(ctx, &a.resources)?;
    let client = ctx.client()?;
    let ct = match a.patch_type.as_str() {
        "json" => "application/json-patch+json",
        "merge" => "application/merge-patch+json",
        "strategic" => "application/strategic-merge-patch+json",
        o => return Err(Error::usage(format!("--type must be one of [json merge strategic], not \"{o}\""))),
    };
    // A client-side dry run has the server compute the result without keeping it, too: the
    // patch semantics (strategic merge above all) are the server's.
    let dry = match dry_run_query(a.dry_run.as_deref())? {
        (true, _) | (false, "dryRun=All") => "&dryRun=All",
        _ => "",
    };
    let body = match serde_json::from_str::<Value>(&a.patch).or_else(|_| serde_saphyr::from_str(&a.patch)) {
        Ok(v) => serde_json::to_vec(&v).unwrap_or_default(),
        // kubectl passes a patch it cannot read on to the server, which says what is wrong.
        Err(_) => a.patch.clone().into_bytes(),
    };
    for t in targets.items {
        let Some(name) = t.name else {
            return Err(Error::usage("resource(s) were provided, but no name was specified"));
        };
        let ns = if t.resource.namespaced { client.namespace.clone() } else { String::new() };
        let path = t.resource.item(&ns, &name);
        let before = client.get(&path)?;
        match client.json_from_bytes(
            Method::PATCH,
            &format!("{path}?fieldManager=rkubectl-patch{dry}"),
            "application/json",
            Some((ct, body.clone())),
        ) {
            Ok(after) => {
                let unchanged = if dry.is_empty() {
                    before["metadata"]["resourceVersion"] == after["metadata"]["resourceVersion"]
                } else {
                    strip_volatile(&before) == strip_volatile(&after)
                };
                // kubectl 1.33 names no dry run in patch's message.
                let verb = if unchanged { "patched (no change)" } else { "patched" };
                report_written(ctx, &format, a.output.output.as_deref(), &after, &t.resource, verb);
            }
            Err(e) => ctx.report(&e),
        }
    }
    Ok(())
}

/// The object without what every write changes (resourceVersion, managedFields, generation
/// aside), to tell whether a dry-run patch would change anything.
fn strip_volatile(obj: &Value) -> Value {
    let mut obj = obj.clone();
    if let Some(m) = obj["metadata"].as_object_mut() {
        for key in ["resourceVersion", "managedFields"] {
            m.remove(key);
        }
    }
    obj
}

/// A Status-shaped error for a client-side failure that should read like a server one.
pub fn server_error(code: u16, reason: &str, message: String) -> Error {
    Error::Api(ApiError { code, reason: reason.into(), message, context: String::new(), details: Value::Null })
}
