//! `rollout status|restart|history|undo` for Deployments, and `wait --for=...`.

use crate::cli::{RolloutArgs, RolloutCommand, WaitArgs};
use crate::client::Client;
use crate::ctx::{Ctx, parse_duration};
use crate::discovery::ApiResource;
use crate::error::{Error, Result};
use crate::print::jsonpath::{Template, text_of};
use crate::print::table::tabwrite;
use crate::progress::Progress;
use crate::resource::{self, enc, name_of};
use reqwest::Method;
use serde_json::{Value, json};
use std::io::BufRead;
use std::time::{Duration, Instant};

/// Runs a `rollout` subcommand.
pub fn run(ctx: &mut Ctx, cmd: RolloutCommand) -> Result<()> {
    match cmd {
        RolloutCommand::Status(a) => status(ctx, a),
        RolloutCommand::Restart(a) => restart(ctx, a),
        RolloutCommand::History(a) => history(ctx, a),
        RolloutCommand::Undo(a) => undo(ctx, a),
        c @ (RolloutCommand::Pause(_) | RolloutCommand::Resume(_)) => crate::cmd::rollout_pause::run(ctx, c),
    }
}

/// The objects named on the command line; `rollout` knows Deployments, DaemonSets and
/// StatefulSets, as kubectl does.
fn targets(ctx: &mut Ctx, args: &[String]) -> Result<Vec<(ApiResource, String, String)>> {
    let targets = resource::parse(ctx, args)?;
    let ns = ctx.namespace()?;
    let mut out = Vec::new();
    for t in targets.items {
        let Some(n) = t.name else { return Err(Error::usage("resource(s) were provided, but no name was specified")) };
        if t.resource.group != "apps" || !matches!(t.resource.kind.as_str(), "Deployment" | "DaemonSet" | "StatefulSet")
        {
            return Err(Error::usage(format!(
                "no rollout support for {} (deployments, daemonsets and statefulsets only)",
                t.resource.kind_group()
            )));
        }
        out.push((t.resource, ns.clone(), n));
    }
    Ok(out)
}

/// kubectl's status message for a rollout target and whether its rollout is done.
pub fn rollout_status(kind: &str, obj: &Value) -> Result<(String, bool)> {
    match kind {
        "DaemonSet" => daemonset_status(obj),
        "StatefulSet" => statefulset_status(obj),
        _ => deployment_status(obj),
    }
}

fn int(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

fn only_rolling_update(obj: &Value) -> Result<()> {
    let strategy = obj["spec"]["updateStrategy"]["type"].as_str().unwrap_or("RollingUpdate");
    if strategy == "RollingUpdate" {
        Ok(())
    } else {
        Err(Error::usage("rollout status is only available for RollingUpdate strategy type"))
    }
}

/// kubectl's DaemonSet status message and whether the rollout is done.
pub fn daemonset_status(ds: &Value) -> Result<(String, bool)> {
    only_rolling_update(ds)?;
    let name = name_of(ds);
    let st = &ds["status"];
    if int(&ds["metadata"]["generation"]) > int(&st["observedGeneration"]) {
        return Ok(("Waiting for daemon set spec update to be observed...".into(), false));
    }
    let (desired, updated, available) =
        (int(&st["desiredNumberScheduled"]), int(&st["updatedNumberScheduled"]), int(&st["numberAvailable"]));
    if updated < desired {
        return Ok((
            format!(
                "Waiting for daemon set {name:?} rollout to finish: {updated} out of {desired} new pods have been updated..."
            ),
            false,
        ));
    }
    if available < desired {
        return Ok((
            format!(
                "Waiting for daemon set {name:?} rollout to finish: {available} of {desired} updated pods are available..."
            ),
            false,
        ));
    }
    Ok((format!("daemon set {name:?} successfully rolled out"), true))
}

/// kubectl's StatefulSet status message and whether the rollout is done.
pub fn statefulset_status(sts: &Value) -> Result<(String, bool)> {
    only_rolling_update(sts)?;
    let (spec, st) = (&sts["spec"], &sts["status"]);
    let observed = int(&st["observedGeneration"]);
    if observed == 0 || int(&sts["metadata"]["generation"]) > observed {
        return Ok(("Waiting for statefulset spec update to be observed...".into(), false));
    }
    let replicas = spec["replicas"].as_i64();
    if let Some(replicas) = replicas
        && int(&st["readyReplicas"]) < replicas
    {
        return Ok((format!("Waiting for {} pods to be ready...", replicas - int(&st["readyReplicas"])), false));
    }
    let updated = int(&st["updatedReplicas"]);
    let rolling = &spec["updateStrategy"]["rollingUpdate"];
    if !rolling.is_null() {
        if let (Some(replicas), Some(partition)) = (replicas, rolling["partition"].as_i64())
            && updated < replicas - partition
        {
            return Ok((
                format!(
                    "Waiting for partitioned roll out to finish: {updated} out of {} new pods have been updated...",
                    replicas - partition
                ),
                false,
            ));
        }
        return Ok((format!("partitioned roll out complete: {updated} new pods have been updated..."), true));
    }
    let (update_rev, current_rev) =
        (st["updateRevision"].as_str().unwrap_or(""), st["currentRevision"].as_str().unwrap_or(""));
    if update_rev != current_rev {
        return Ok((
            format!("waiting for statefulset rolling update to complete {updated} pods at revision {update_rev}..."),
            false,
        ));
    }
    Ok((
        format!(
            "statefulset rolling update complete {} pods at revision {current_rev}...",
            int(&st["currentReplicas"])
        ),
        true,
    ))
}

/// kubectl's deployment status message and whether the rollout is done.
pub fn deployment_status(d: &Value) -> Result<(String, bool)> {
    let name = name_of(d);
    let generation = d["metadata"]["generation"].as_i64().unwrap_or(0);
    let observed = d["status"]["observedGeneration"].as_i64().unwrap_or(0);
    if generation > observed {
        return Ok(("Waiting for deployment spec update to be observed...".into(), false));
    }
    for c in d["status"]["conditions"].as_array().into_iter().flatten() {
        if c["type"] == "Progressing" && c["reason"] == "ProgressDeadlineExceeded" {
            return Err(Error::usage(format!("deployment {name:?} exceeded its progress deadline")));
        }
    }
    let want = d["spec"]["replicas"].as_i64().unwrap_or(1);
    let updated = d["status"]["updatedReplicas"].as_i64().unwrap_or(0);
    let replicas = d["status"]["replicas"].as_i64().unwrap_or(0);
    let available = d["status"]["availableReplicas"].as_i64().unwrap_or(0);
    if updated < want {
        return Ok((
            format!(
                "Waiting for deployment {name:?} rollout to finish: {updated} out of {want} new replicas have been updated..."
            ),
            false,
        ));
    }
    if replicas > updated {
        return Ok((
            format!(
                "Waiting for deployment {name:?} rollout to finish: {} old replicas are pending termination...",
                replicas - updated
            ),
            false,
        ));
    }
    if available < updated {
        return Ok((
            format!(
                "Waiting for deployment {name:?} rollout to finish: {available} of {updated} updated replicas are available..."
            ),
            false,
        ));
    }
    Ok((format!("deployment {name:?} successfully rolled out"), true))
}

fn status(ctx: &mut Ctx, a: RolloutArgs) -> Result<()> {
    let client = ctx.client()?;
    let limit = match a.timeout.as_deref() {
        None | Some("0") | Some("0s") => Duration::from_secs(7 * 24 * 3600),
        Some(t) => parse_duration(t)?,
    };
    let deadline = Instant::now() + limit;
    for (r, ns, name) in targets(ctx, &a.resources)? {
        let mut last = String::new();
        let progress = Progress::start(format!("{}/{name}", r.kind_group()));
        if a.timeout.is_some() {
            progress.set_deadline(deadline);
        }
        loop {
            let d = client.get(&r.item(&ns, &name))?;
            let (msg, done) = rollout_status(&r.kind, &d)?;
            if msg != last {
                progress.clear();
                ctx.println(&msg);
                ctx.flush();
                last = msg;
            }
            if done || !a.watch {
                break;
            }
            if Instant::now() > deadline {
                return Err(Error::usage("timed out waiting for the condition"));
            }
            wait_for_change(&client, &r, &ns, &name, &d, deadline)?;
        }
    }
    Ok(())
}

/// Blocks until the object changes (one watch event) or the deadline passes.
pub fn wait_for_change(
    client: &Client,
    r: &ApiResource,
    ns: &str,
    name: &str,
    current: &Value,
    deadline: Instant,
) -> Result<()> {
    let secs = deadline.saturating_duration_since(Instant::now()).as_secs().clamp(1, 60);
    let rv = current["metadata"]["resourceVersion"].as_str().unwrap_or("");
    let mut path = format!(
        "{}?watch=1&fieldSelector={}&timeoutSeconds={secs}",
        r.collection(if r.namespaced { Some(ns) } else { None }),
        enc(&format!("metadata.name={name}"))
    );
    if !rv.is_empty() {
        path.push_str(&format!("&resourceVersion={}", enc(rv)));
    }
    let resp = client.stream(&path, "application/json")?;
    for line in std::io::BufReader::new(resp).lines() {
        let Ok(line) = line else { break };
        let Ok(ev) = serde_json::from_str::<Value>(&line) else { continue };
        if matches!(ev["type"].as_str(), Some("ADDED" | "MODIFIED" | "DELETED" | "ERROR")) {
            return Ok(());
        }
    }
    Ok(())
}

fn restart(ctx: &mut Ctx, a: RolloutArgs) -> Result<()> {
    let client = ctx.client()?;
    let now = jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
    for (r, ns, name) in targets(ctx, &a.resources)? {
        let body =
            json!({"spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": now}}}}});
        client.json(
            Method::PATCH,
            &r.item(&ns, &name),
            "application/json",
            Some(("application/merge-patch+json", &body)),
        )?;
        ctx.println(&format!("{}/{name} restarted", r.kind_group()));
    }
    Ok(())
}

/// One entry of a rollout's history.
struct Revision {
    number: i64,
    cause: Option<String>,
    /// The pod template it ran, as it would be written back on undo.
    template: Value,
}

/// The target's history, oldest first: a Deployment's ReplicaSets (numbered by their
/// `deployment.kubernetes.io/revision` annotation), a DaemonSet's or StatefulSet's
/// ControllerRevisions (their `revision`; `data` holds the template as a replace patch).
fn revisions(ctx: &mut Ctx, kind: &str, obj: &Value, ns: &str) -> Result<Vec<Revision>> {
    let deployment = kind == "Deployment";
    let history = ctx.resource(if deployment { "replicasets.apps" } else { "controllerrevisions.apps" })?;
    let uid = obj["metadata"]["uid"].as_str().unwrap_or("");
    let (items, _) = resource::list_all(ctx, &history, Some(ns), &[])?;
    let mut out: Vec<Revision> = items
        .into_iter()
        .filter(|i| i["metadata"]["ownerReferences"].as_array().into_iter().flatten().any(|o| o["uid"] == uid))
        .map(|i| {
            let annotations = &i["metadata"]["annotations"];
            let cause = annotations["kubernetes.io/change-cause"].as_str().map(str::to_string);
            if deployment {
                let number = annotations["deployment.kubernetes.io/revision"].as_str().and_then(|s| s.parse().ok());
                let mut template = i["spec"]["template"].clone();
                if let Some(labels) = template["metadata"]["labels"].as_object_mut() {
                    labels.remove("pod-template-hash");
                }
                Revision { number: number.unwrap_or(0), cause, template }
            } else {
                let mut template = i["data"]["spec"]["template"].clone();
                if let Some(t) = template.as_object_mut() {
                    t.remove("$patch");
                }
                Revision { number: int(&i["revision"]), cause, template }
            }
        })
        .collect();
    out.sort_by_key(|r| r.number);
    Ok(out)
}

fn history(ctx: &mut Ctx, a: RolloutArgs) -> Result<()> {
    let client = ctx.client()?;
    for (r, ns, name) in targets(ctx, &a.resources)? {
        let d = client.get(&r.item(&ns, &name))?;
        let revs = revisions(ctx, &r.kind, &d, &ns)?;
        if a.revision > 0 {
            let Some(rev) = revs.iter().find(|rev| rev.number == a.revision) else {
                return Err(Error::usage("unable to find the specified revision"));
            };
            ctx.println(&format!("{}/{name} with revision #{}", r.kind_group(), a.revision));
            ctx.print(&crate::print::yaml::to_string(&rev.template));
            continue;
        }
        ctx.println(&format!("{}/{name} ", r.kind_group()));
        let mut lines = vec![vec!["REVISION".to_string(), "CHANGE-CAUSE".to_string()]];
        for rev in &revs {
            lines.push(vec![rev.number.to_string(), rev.cause.clone().unwrap_or_else(|| "<none>".into())]);
        }
        let text = tabwrite(&lines, 2);
        ctx.print(&text);
        ctx.println("");
    }
    Ok(())
}

fn undo(ctx: &mut Ctx, a: RolloutArgs) -> Result<()> {
    let client = ctx.client()?;
    for (r, ns, name) in targets(ctx, &a.resources)? {
        let mut d = client.get(&r.item(&ns, &name))?;
        let revs = revisions(ctx, &r.kind, &d, &ns)?;
        let target = if a.to_revision > 0 {
            revs.iter().find(|rev| rev.number == a.to_revision)
        } else if revs.len() >= 2 {
            revs.get(revs.len() - 2)
        } else {
            None
        };
        let Some(rev) = target else {
            return Err(Error::usage(if a.to_revision > 0 {
                format!("unable to find specified revision {} in history", a.to_revision)
            } else {
                format!("no rollout history found for {} {name:?}", r.kind.to_lowercase())
            }));
        };
        let template = rev.template.clone();
        if template == d["spec"]["template"] {
            ctx.println(&format!(
                "{}/{name} skipped rollback (current template already matches revision)",
                r.kind_group()
            ));
            continue;
        }
        d["spec"]["template"] = template;
        client.json(Method::PUT, &r.item(&ns, &name), "application/json", Some(("application/json", &d)))?;
        ctx.println(&format!("{}/{name} rolled back", r.kind_group()));
    }
    Ok(())
}

/// What `wait --for` checks.
enum Cond {
    Delete,
    Create,
    Condition(String, String),
    JsonPath(Template, Option<String>),
}

fn parse_for(text: &str) -> Result<Cond> {
    if text == "delete" {
        return Ok(Cond::Delete);
    }
    if text == "create" {
        return Ok(Cond::Create);
    }
    if let Some(c) = text.strip_prefix("condition=") {
        let (name, value) = c.split_once('=').unwrap_or((c, "true"));
        return Ok(Cond::Condition(name.to_lowercase(), value.to_lowercase()));
    }
    if let Some(j) = text.strip_prefix("jsonpath=") {
        // {.status.phase}=Running: split after the closing brace.
        let (expr, value) = match j.rfind('}') {
            Some(pos) => (&j[..=pos], j[pos + 1..].strip_prefix('=')),
            None => return Err(Error::usage(format!("unrecognized condition: \"{text}\""))),
        };
        let t = Template::parse(expr).map_err(|e| Error::usage(e.to_string()))?;
        return Ok(Cond::JsonPath(t, value.map(str::to_string)));
    }
    Err(Error::usage(format!("unrecognized condition: \"{text}\"")))
}

fn satisfied(cond: &Cond, obj: &Value) -> bool {
    match cond {
        Cond::Delete => false,
        Cond::Create => true,
        Cond::Condition(name, value) => obj["status"]["conditions"].as_array().into_iter().flatten().any(|c| {
            c["type"].as_str().is_some_and(|t| t.to_lowercase() == *name)
                && c["status"].as_str().is_some_and(|s| s.to_lowercase() == *value)
        }),
        Cond::JsonPath(t, value) => {
            let vals = t.values(obj);
            match value {
                None => !vals.is_empty(),
                Some(v) => vals.first().is_some_and(|x| text_of(x) == *v),
            }
        }
    }
}

/// Runs `wait`.
pub fn wait(ctx: &mut Ctx, a: WaitArgs) -> Result<()> {
    let cond = parse_for(&a.for_)?;
    let limit = parse_duration(&a.timeout)?;
    let deadline = Instant::now() + limit;
    let client = ctx.client()?;
    let targets = resource::parse(ctx, &a.resources)?;
    let ns = ctx.namespace()?;
    let mut objs: Vec<(ApiResource, String)> = Vec::new();
    for t in targets.items {
        match t.name {
            Some(n) => objs.push((t.resource, n)),
            None => {
                let mut q = Vec::new();
                if let Some(l) = &a.selector {
                    q.push(("labelSelector".to_string(), l.clone()));
                } else if !a.all {
                    return Err(Error::usage("resource(s) were provided, but no name was specified"));
                }
                let nsq = if t.resource.namespaced { Some(ns.as_str()) } else { None };
                let (items, _) = resource::list_all(ctx, &t.resource, nsq, &q)?;
                if items.is_empty() {
                    return Err(Error::usage("no matching resources found"));
                }
                objs.extend(items.iter().map(|i| (t.resource.clone(), name_of(i).to_string())));
            }
        }
    }
    for (r, name) in objs {
        let ons = if r.namespaced { ns.clone() } else { String::new() };
        let progress = Progress::start(format!("waiting for {}/{name}: {}", r.kind_group(), a.for_));
        progress.set_deadline(deadline);
        let result = (|| -> Result<()> {
            loop {
                match client.get(&r.item(&ons, &name)) {
                    Ok(obj) => {
                        if satisfied(&cond, &obj) {
                            progress.clear();
                            ctx.println(&format!("{}/{name} condition met", r.kind_group()));
                            return Ok(());
                        }
                        if Instant::now() >= deadline {
                            return Err(Error::usage(format!(
                                "timed out waiting for the condition on {}/{name}",
                                r.plural
                            )));
                        }
                        if matches!(cond, Cond::Delete) {
                            let uid = obj["metadata"]["uid"].as_str().map(str::to_string);
                            crate::cmd::write::wait_gone(&client, &r, &ons, &name, uid.as_deref(), deadline).map_err(
                                |_| Error::usage(format!("timed out waiting for the condition on {}/{name}", r.plural)),
                            )?;
                            progress.clear();
                            ctx.println(&format!("{}/{name} condition met", r.kind_group()));
                            return Ok(());
                        }
                        wait_for_change(&client, &r, &ons, &name, &obj, deadline)?;
                    }
                    Err(e) if e.is_not_found() => {
                        if matches!(cond, Cond::Delete) {
                            progress.clear();
                            ctx.println(&format!("{}/{name} condition met", r.kind_group()));
                            return Ok(());
                        }
                        if Instant::now() >= deadline {
                            return Err(e);
                        }
                        if !matches!(cond, Cond::Create) {
                            return Err(e);
                        }
                        wait_for_change(&client, &r, &ons, &name, &json!({}), deadline)?;
                    }
                    Err(e) => return Err(e),
                }
            }
        })();
        drop(progress);
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
    fn deployment_messages() {
        let d = json!({"metadata": {"name": "web", "generation": 2}, "spec": {"replicas": 3},
            "status": {"observedGeneration": 2, "updatedReplicas": 3, "replicas": 3, "availableReplicas": 1}});
        let (msg, done) = deployment_status(&d).expect("status");
        assert_eq!(msg, "Waiting for deployment \"web\" rollout to finish: 1 of 3 updated replicas are available...");
        assert!(!done);
        let d = json!({"metadata": {"name": "web", "generation": 2}, "spec": {"replicas": 3},
            "status": {"observedGeneration": 2, "updatedReplicas": 3, "replicas": 3, "availableReplicas": 3}});
        assert_eq!(
            deployment_status(&d).expect("status"),
            ("deployment \"web\" successfully rolled out".to_string(), true)
        );
    }

    #[test]
    fn wait_conditions() {
        let pod = json!({"status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}});
        assert!(satisfied(&parse_for("condition=Ready").expect("parse"), &pod));
        assert!(!satisfied(&parse_for("condition=Ready=false").expect("parse"), &pod));
        assert!(satisfied(&parse_for("jsonpath={.status.phase}=Running").expect("parse"), &pod));
        assert!(parse_for("bogus").is_err());
    }
}
