//! Imperative verbs: `run`, `expose`, `scale` (scale subresource), `label`, `annotate`,
//! `taint`, `cordon`/`uncordon` and `set image`.

use crate::cli::{ExposeArgs, MetaArgs, NodeArgs, RunArgs, ScaleArgs, SetImageArgs, TaintArgs};
use crate::cmd::write::report_written;
use crate::ctx::Ctx;
use crate::discovery::ApiResource;
use crate::error::{Error, Result};
use crate::print::Format;
use crate::resource::{self, name_of};
use reqwest::Method;
use serde_json::{Map, Value, json};

fn parse_labels(text: &str) -> Result<Map<String, Value>> {
    let mut m = Map::new();
    for pair in text.split(',').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').ok_or_else(|| Error::usage(format!("invalid label spec: {pair}")))?;
        m.insert(k.to_string(), Value::String(v.to_string()));
    }
    Ok(m)
}

/// Runs `run`: one Pod like kubectl run.
pub fn run_pod(ctx: &mut Ctx, a: RunArgs) -> Result<()> {
    let format = Format::parse(a.output.output.as_deref())?;
    if a.image.is_empty() {
        return Err(Error::usage("--image is required"));
    }
    if !matches!(a.restart.as_str(), "Always" | "OnFailure" | "Never") {
        return Err(Error::usage(format!("invalid restart policy: {}", a.restart)));
    }
    let ns = ctx.namespace()?;
    let labels = match &a.labels {
        Some(l) => parse_labels(l)?,
        None => {
            let mut m = Map::new();
            m.insert("run".into(), Value::String(a.name.clone()));
            m
        }
    };
    let mut container = json!({"name": a.name, "image": a.image, "resources": {}});
    if !a.args.is_empty() {
        container[if a.command { "command" } else { "args" }] = json!(a.args);
    }
    if let Some(p) = &a.port {
        let port: i64 = p.parse().map_err(|_| Error::usage(format!("invalid port: {p}")))?;
        container["ports"] = json!([{"containerPort": port}]);
    }
    if !a.env.is_empty() {
        let env: Vec<Value> = a
            .env
            .iter()
            .map(|e| {
                let (k, v) = e.split_once('=').unwrap_or((e, ""));
                json!({"name": k, "value": v})
            })
            .collect();
        container["env"] = json!(env);
    }
    if let Some(p) = &a.image_pull_policy {
        container["imagePullPolicy"] = json!(p);
    }
    let mut meta = json!({"name": a.name, "labels": labels});
    if !a.annotations.is_empty() {
        meta["annotations"] = Value::Object(parse_labels(&a.annotations.join(","))?);
    }
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": meta,
        "spec": {"containers": [container], "dnsPolicy": "ClusterFirst", "restartPolicy": a.restart},
        "status": {}
    });
    let r = ctx.resource("pods")?;
    let client = ctx.client()?;
    let (created, verb) = match a.dry_run.as_deref() {
        Some("client") => (pod, "created (dry run)"),
        Some("server") => (
            client.json(
                Method::POST,
                &format!("{}?dryRun=All", r.collection(Some(&ns))),
                "application/json",
                Some(("application/json", &pod)),
            )?,
            "created (server dry run)",
        ),
        _ => (
            client.json(
                Method::POST,
                &r.collection(Some(&ns)),
                "application/json",
                Some(("application/json", &pod)),
            )?,
            "created",
        ),
    };
    report_written(ctx, &format, a.output.output.as_deref(), &created, &r, verb);
    Ok(())
}

/// One named object from `TYPE NAME` or `TYPE/NAME` arguments.
fn single(ctx: &mut Ctx, args: &[String]) -> Result<Vec<(ApiResource, String)>> {
    let targets = resource::parse(ctx, args)?;
    let mut out = Vec::new();
    for t in targets.items {
        let Some(n) = t.name else { return Err(Error::usage("resource(s) were provided, but no name was specified")) };
        out.push((t.resource, n));
    }
    Ok(out)
}

fn ns_for(ctx: &mut Ctx, r: &ApiResource) -> Result<String> {
    Ok(if r.namespaced { ctx.namespace()? } else { String::new() })
}

/// Runs `expose`: a Service selecting the object's pods.
pub fn expose(ctx: &mut Ctx, a: ExposeArgs) -> Result<()> {
    let format = Format::parse(a.output.output.as_deref())?;
    let objs = single(ctx, &a.resources)?;
    let client = ctx.client()?;
    let svc_r = ctx.resource("services")?;
    for (r, name) in objs {
        let ns = ns_for(ctx, &r)?;
        let obj = client.get(&r.item(&ns, &name))?;
        let selector = match &a.selector {
            Some(s) => Value::Object(parse_labels(s)?),
            None => match r.kind.as_str() {
                "Pod" | "Service" => obj["metadata"]["labels"].clone(),
                "ReplicationController" => obj["spec"]["selector"].clone(),
                _ => obj["spec"]["selector"]["matchLabels"].clone(),
            },
        };
        if r.kind == "Service" && a.selector.is_none() {
            // A service exposes its own selector.
        }
        if selector.as_object().is_none_or(|m| m.is_empty()) {
            return Err(Error::usage(format!(
                "couldn't retrieve selectors via --selector flag or introspection: the {} has no selector",
                r.kind_group()
            )));
        }
        let ports: Vec<Value> = if let Some(p) = &a.port {
            p.split(',')
                .map(|p| {
                    let port: i64 = p.parse().map_err(|_| Error::usage(format!("invalid port: {p}")))?;
                    let mut entry = json!({"port": port, "protocol": a.protocol});
                    entry["targetPort"] = match &a.target_port {
                        Some(t) => t.parse::<i64>().map(|n| json!(n)).unwrap_or_else(|_| json!(t)),
                        None => json!(port),
                    };
                    Ok(entry)
                })
                .collect::<Result<_>>()?
        } else {
            let containers = if r.kind == "Pod" {
                &obj["spec"]["containers"]
            } else {
                &obj["spec"]["template"]["spec"]["containers"]
            };
            let found: Vec<Value> = containers
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|c| c["ports"].as_array().cloned().unwrap_or_default())
                .map(|p| json!({"port": p["containerPort"], "protocol": p["protocol"].as_str().unwrap_or("TCP"), "targetPort": p["containerPort"]}))
                .collect();
            if found.is_empty() {
                return Err(Error::usage(
                    "couldn't find port via --port flag or introspection\nSee 'rkubectl expose -h' for help and examples",
                ));
            }
            found
        };
        let ports: Vec<Value> = if ports.len() > 1 {
            ports
                .into_iter()
                .enumerate()
                .map(|(i, mut p)| {
                    p["name"] = json!(format!("port-{}", i + 1));
                    p
                })
                .collect()
        } else {
            ports
        };
        let svc_name = a.name.clone().unwrap_or_else(|| name.clone());
        let mut svc = json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": svc_name, "labels": obj["metadata"]["labels"].clone()},
            "spec": {"ports": ports, "selector": selector}});
        if svc["metadata"]["labels"].is_null() {
            svc["metadata"].as_object_mut().map(|m| m.remove("labels"));
        }
        if let Some(t) = &a.service_type {
            svc["spec"]["type"] = json!(t);
        }
        let created = client.json(
            Method::POST,
            &svc_r.collection(Some(&ns)),
            "application/json",
            Some(("application/json", &svc)),
        )?;
        report_written(ctx, &format, a.output.output.as_deref(), &created, &svc_r, "exposed");
    }
    Ok(())
}

/// Runs `scale` through the scale subresource.
pub fn scale(ctx: &mut Ctx, a: ScaleArgs) -> Result<()> {
    let objs = if !a.files.filename.is_empty() {
        let mut v = Vec::new();
        for d in crate::manifest::read(&a.files.filename, a.files.recursive)? {
            let r = ctx.resource_for_kind(
                d.object["apiVersion"].as_str().unwrap_or(""),
                d.object["kind"].as_str().unwrap_or(""),
            )?;
            v.push((r, name_of(&d.object).to_string()));
        }
        v
    } else {
        single(ctx, &a.resources)?
    };
    let client = ctx.client()?;
    for (r, name) in objs {
        let ns = ns_for(ctx, &r)?;
        let path = format!("{}/scale", r.item(&ns, &name));
        if let Some(cur) = a.current_replicas {
            let s = client.get(&path)?;
            let have = s["spec"]["replicas"].as_i64().unwrap_or(0);
            if have != cur {
                ctx.report(&Error::usage(format!("Expected replicas to be {cur}, was {have}")));
                continue;
            }
        }
        let body = json!({"spec": {"replicas": a.replicas}});
        match client.json(Method::PATCH, &path, "application/json", Some(("application/merge-patch+json", &body))) {
            Ok(_) => ctx.println(&format!("{}/{name} scaled", r.kind_group())),
            Err(e) => ctx.report(&e),
        }
    }
    Ok(())
}

/// Runs `label` (`field` = labels) or `annotate` (`field` = annotations).
pub fn label_or_annotate(ctx: &mut Ctx, a: MetaArgs, field: &str) -> Result<()> {
    let (verb, what) = if field == "labels" { ("labeled", "label") } else { ("annotated", "annotation") };
    let mut res_args = Vec::new();
    let mut changes: Vec<(String, Option<String>)> = Vec::new();
    for arg in &a.args {
        if let Some((k, v)) = arg.split_once('=') {
            changes.push((k.to_string(), Some(v.to_string())));
        } else if let Some(k) = arg.strip_suffix('-').filter(|k| !k.is_empty()) {
            changes.push((k.to_string(), None));
        } else {
            res_args.push(arg.clone());
        }
    }
    if changes.is_empty() && !a.list {
        return Err(Error::usage(format!("at least one {what} update is required")));
    }
    let mut objs: Vec<(ApiResource, String, String)> = Vec::new();
    if !a.files.filename.is_empty() {
        for d in crate::manifest::read(&a.files.filename, a.files.recursive)? {
            let r = ctx.resource_for_kind(
                d.object["apiVersion"].as_str().unwrap_or(""),
                d.object["kind"].as_str().unwrap_or(""),
            )?;
            let ns = crate::cmd::write::object_namespace(ctx, &r, &d.object)?;
            objs.push((r, ns, name_of(&d.object).to_string()));
        }
    } else {
        let targets = resource::parse(ctx, &res_args)?;
        for t in targets.items {
            let ns = ns_for(ctx, &t.resource)?;
            match t.name {
                Some(n) => objs.push((t.resource, ns, n)),
                None => {
                    if a.selector.is_none() && !a.all {
                        return Err(Error::usage("resource(s) were provided, but no name was specified"));
                    }
                    let mut q = Vec::new();
                    if let Some(l) = &a.selector {
                        q.push(("labelSelector".to_string(), l.clone()));
                    }
                    let nsq = if t.resource.namespaced { Some(ns.as_str()) } else { None };
                    let (items, _) = resource::list_all(ctx, &t.resource, nsq, &q)?;
                    for i in items {
                        objs.push((t.resource.clone(), ns.clone(), name_of(&i).to_string()));
                    }
                }
            }
        }
    }
    let client = ctx.client()?;
    for (r, ns, name) in objs {
        let result = (|| -> Result<()> {
            let obj = client.get(&r.item(&ns, &name))?;
            let current = obj["metadata"][field].as_object().cloned().unwrap_or_default();
            if a.list {
                let mut keys: Vec<&String> = current.keys().collect();
                keys.sort();
                for k in keys {
                    ctx.println(&format!("{k}={}", current[k.as_str()].as_str().unwrap_or("")));
                }
                return Ok(());
            }
            let mut patch = Map::new();
            for (k, v) in &changes {
                match v {
                    Some(v) => {
                        if let Some(old) = current.get(k).and_then(Value::as_str)
                            && old != v
                            && !a.overwrite
                        {
                            return Err(Error::usage(format!(
                                "'{k}' already has a value ({old}), and --overwrite is false"
                            )));
                        }
                        patch.insert(k.clone(), Value::String(v.clone()));
                    }
                    None => {
                        patch.insert(k.clone(), Value::Null);
                    }
                }
            }
            let body =
                json!({"metadata": {field: patch, "resourceVersion": obj["metadata"]["resourceVersion"].clone()}});
            let after = client.json(
                Method::PATCH,
                &r.item(&ns, &name),
                "application/json",
                Some(("application/merge-patch+json", &body)),
            )?;
            let same = after["metadata"]["resourceVersion"] == obj["metadata"]["resourceVersion"];
            let shown = if same { format!("{verb} (no change)") } else { verb.to_string() };
            ctx.println(&format!("{}/{name} {shown}", r.kind_group()));
            Ok(())
        })();
        if let Err(e) = result {
            ctx.report(&e);
        }
    }
    Ok(())
}

/// A parsed taint argument: add (key, value, effect) or remove (key, optional effect).
#[derive(Debug, Clone, PartialEq)]
enum TaintChange {
    Add { key: String, value: String, effect: String },
    Remove { key: String, effect: Option<String> },
}

fn parse_taint(arg: &str) -> Result<TaintChange> {
    let bad = || Error::usage(format!("invalid taint spec: {arg}"));
    let effects = ["NoSchedule", "PreferNoSchedule", "NoExecute"];
    if let Some(rest) = arg.strip_suffix('-') {
        let (key, effect) = match rest.split_once(':') {
            Some((k, e)) => (k, Some(e.to_string())),
            None => (rest.split_once('=').map(|(k, _)| k).unwrap_or(rest), None),
        };
        if key.is_empty() || effect.as_deref().is_some_and(|e| !effects.contains(&e)) {
            return Err(bad());
        }
        return Ok(TaintChange::Remove { key: key.to_string(), effect });
    }
    let (kv, effect) = arg.split_once(':').ok_or_else(bad)?;
    if !effects.contains(&effect) {
        return Err(Error::usage(format!("invalid taint effect: {effect}, unsupported taint effect")));
    }
    let (key, value) = kv.split_once('=').unwrap_or((kv, ""));
    if key.is_empty() {
        return Err(bad());
    }
    Ok(TaintChange::Add { key: key.to_string(), value: value.to_string(), effect: effect.to_string() })
}

/// Runs `taint nodes NAME|--all|-l key=value:Effect ... key:Effect-`.
pub fn taint(ctx: &mut Ctx, a: TaintArgs) -> Result<()> {
    let mut it = a.args.iter();
    let Some(kind) = it.next() else { return Err(Error::usage("at least one taint update is required")) };
    let (kind, mut names) = match kind.split_once('/') {
        Some((k, n)) => (k.to_string(), vec![n.to_string()]),
        None => (kind.clone(), Vec::new()),
    };
    let r = ctx.resource(&kind)?;
    if r.kind != "Node" {
        return Err(Error::usage(format!("invalid resource type {kind}, only node types are supported")));
    }
    let mut changes = Vec::new();
    for arg in it {
        let is_change = arg.contains([':', '=']) || arg.ends_with('-');
        if !is_change && names.is_empty() && !a.all && a.selector.is_none() {
            names.push(arg.clone());
        } else {
            changes.push(parse_taint(arg)?);
        }
    }
    if changes.is_empty() {
        return Err(Error::usage("at least one taint update is required"));
    }
    let client = ctx.client()?;
    if a.all || a.selector.is_some() {
        let mut q = Vec::new();
        if let Some(l) = &a.selector {
            q.push(("labelSelector".to_string(), l.clone()));
        }
        let (items, _) = resource::list_all(ctx, &r, None, &q)?;
        names = items.iter().map(|i| name_of(i).to_string()).collect();
    } else if names.is_empty() {
        return Err(Error::usage("resource name may not be empty"));
    }
    for name in names {
        let result = (|| -> Result<()> {
            let node = client.get(&r.item("", &name))?;
            let mut taints: Vec<Value> = node["spec"]["taints"].as_array().cloned().unwrap_or_default();
            let mut removed = false;
            let mut added = false;
            for c in &changes {
                match c {
                    TaintChange::Add { key, value, effect } => {
                        let existing =
                            taints.iter().position(|t| t["key"] == key.as_str() && t["effect"] == effect.as_str());
                        match existing {
                            Some(i) => {
                                if !a.overwrite {
                                    return Err(Error::usage(format!(
                                        "node {name} already has {key} taint(s) with same effect(s) and --overwrite is false"
                                    )));
                                }
                                taints[i] = taint_value(key, value, effect);
                            }
                            None => taints.push(taint_value(key, value, effect)),
                        }
                        added = true;
                    }
                    TaintChange::Remove { key, effect } => {
                        let before = taints.len();
                        taints.retain(|t| {
                            !(t["key"] == key.as_str() && effect.as_deref().is_none_or(|e| t["effect"] == e))
                        });
                        if taints.len() == before {
                            let what = match effect {
                                Some(e) => format!("{key}:{e}"),
                                None => key.clone(),
                            };
                            return Err(Error::usage(format!("taint {what:?} not found")));
                        }
                        removed = true;
                    }
                }
            }
            let body = json!({"metadata": {"resourceVersion": node["metadata"]["resourceVersion"].clone()}, "spec": {"taints": taints}});
            client.json(
                Method::PATCH,
                &r.item("", &name),
                "application/json",
                Some(("application/merge-patch+json", &body)),
            )?;
            let verb = if removed && !added {
                "untainted"
            } else if added && !removed {
                "tainted"
            } else {
                "modified"
            };
            ctx.println(&format!("node/{name} {verb}"));
            Ok(())
        })();
        if let Err(e) = result {
            ctx.report(&e);
        }
    }
    Ok(())
}

fn taint_value(key: &str, value: &str, effect: &str) -> Value {
    let mut t = json!({"key": key, "effect": effect});
    if !value.is_empty() {
        t["value"] = json!(value);
    }
    t
}

/// Runs `cordon` (`unschedulable` true) or `uncordon`.
pub fn cordon(ctx: &mut Ctx, a: NodeArgs, unschedulable: bool) -> Result<()> {
    let r = ctx.resource("nodes")?;
    let client = ctx.client()?;
    let mut names = a.nodes.clone();
    if let Some(l) = &a.selector {
        let (items, _) = resource::list_all(ctx, &r, None, &[("labelSelector".to_string(), l.clone())])?;
        names.extend(items.iter().map(|i| name_of(i).to_string()));
    }
    if names.is_empty() {
        return Err(Error::usage("resource name may not be empty"));
    }
    let (done, already) =
        if unschedulable { ("cordoned", "already cordoned") } else { ("uncordoned", "already uncordoned") };
    for name in names {
        let name = name.strip_prefix("node/").or_else(|| name.strip_prefix("nodes/")).unwrap_or(&name).to_string();
        let result = (|| -> Result<()> {
            let node = client.get(&r.item("", &name))?;
            let is = node["spec"]["unschedulable"].as_bool().unwrap_or(false);
            if is == unschedulable {
                ctx.println(&format!("node/{name} {already}"));
                return Ok(());
            }
            let value = if unschedulable { json!(true) } else { Value::Null };
            let body = json!({"spec": {"unschedulable": value}});
            client.json(
                Method::PATCH,
                &r.item("", &name),
                "application/json",
                Some(("application/merge-patch+json", &body)),
            )?;
            ctx.println(&format!("node/{name} {done}"));
            Ok(())
        })();
        if let Err(e) = result {
            ctx.report(&e);
        }
    }
    Ok(())
}

/// Runs `set image TYPE NAME container=image ...` (`*` sets every container).
pub fn set_image(ctx: &mut Ctx, a: SetImageArgs) -> Result<()> {
    let (res_args, pairs): (Vec<String>, Vec<String>) = a.args.iter().cloned().partition(|s| !s.contains('='));
    if pairs.is_empty() {
        return Err(Error::usage("at least one image update is required"));
    }
    let objs = single(ctx, &res_args)?;
    let client = ctx.client()?;
    for (r, name) in objs {
        let ns = ns_for(ctx, &r)?;
        let result = (|| -> Result<()> {
            let mut obj = client.get(&r.item(&ns, &name))?;
            let spec_path: &[&str] = match r.kind.as_str() {
                "Pod" => &["spec"],
                "CronJob" => &["spec", "jobTemplate", "spec", "template", "spec"],
                _ => &["spec", "template", "spec"],
            };
            let mut spec = &mut obj;
            for p in spec_path {
                spec = &mut spec[*p];
            }
            let mut matched = false;
            for field in ["initContainers", "containers"] {
                if let Some(cs) = spec[field].as_array_mut() {
                    for c in cs {
                        for pair in &pairs {
                            let (cn, img) = pair.split_once('=').unwrap_or((pair, ""));
                            if cn == "*" || c["name"] == cn {
                                c["image"] = json!(img);
                                matched = true;
                            }
                        }
                    }
                }
            }
            if !matched {
                let cn = pairs[0].split_once('=').map(|(c, _)| c).unwrap_or("");
                return Err(Error::usage(format!("unable to find container named \"{cn}\"")));
            }
            client.json(Method::PUT, &r.item(&ns, &name), "application/json", Some(("application/json", &obj)))?;
            ctx.println(&format!("{}/{name} image updated", r.kind_group()));
            Ok(())
        })();
        if let Err(e) = result {
            ctx.report(&e);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn taint_specs() {
        assert_eq!(
            parse_taint("dedicated=gpu:NoSchedule").ok(),
            Some(TaintChange::Add { key: "dedicated".into(), value: "gpu".into(), effect: "NoSchedule".into() })
        );
        assert_eq!(
            parse_taint("k:NoExecute-").ok(),
            Some(TaintChange::Remove { key: "k".into(), effect: Some("NoExecute".into()) })
        );
        assert_eq!(parse_taint("k-").ok(), Some(TaintChange::Remove { key: "k".into(), effect: None }));
        assert!(parse_taint("k=v:Bogus").is_err());
        assert!(parse_taint("novalue").is_err());
    }
}
