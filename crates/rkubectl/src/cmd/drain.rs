//! `drain`: cordon the node, then evict (or, where the server has no `pods/eviction`, delete
//! after checking PodDisruptionBudgets here) every pod on it that kubectl's filters allow, and
//! wait until they are gone.
//!
//! rkube's API server serves `pods/eviction`, which enforces the PodDisruptionBudgets itself
//! (a refusal is a 429, retried every 5 s as kubectl does); the client-side budget check is
//! only for servers with PDBs but no Eviction API.

use crate::ctx::{Ctx, parse_duration};
use crate::error::{Error, Result};
use crate::resource::{enc, name_of, namespace_of};
use clap::Args;
use reqwest::Method;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// `drain`.
#[derive(Debug, Clone, Args)]
pub struct DrainArgs {
    /// Node names.
    pub nodes: Vec<String>,
    /// Continue even if there are pods not managed by a controller.
    #[arg(long)]
    pub force: bool,
    /// Ignore DaemonSet-managed pods.
    #[arg(long)]
    pub ignore_daemonsets: bool,
    /// Continue even if there are pods using emptyDir (their data is lost).
    #[arg(long)]
    pub delete_emptydir_data: bool,
    /// Seconds given to each pod to terminate gracefully (-1: the pod's own).
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    pub grace_period: i64,
    /// How long to wait before giving up (0: forever).
    #[arg(long, default_value = "0s")]
    pub timeout: String,
    /// Label selector to filter pods on the node.
    #[arg(long)]
    pub pod_selector: Option<String>,
    /// Selector (label query) for the nodes.
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// Delete pods instead of evicting them, bypassing PodDisruptionBudgets.
    #[arg(long)]
    pub disable_eviction: bool,
    /// Must be "none", "server", or "client".
    #[arg(long, num_args = 0..=1, default_missing_value = "client", require_equals = true)]
    pub dry_run: Option<String>,
}

/// What kubectl's filters decided for one pod.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Verdict {
    Delete,
    Warn(&'static str),
    Skip,
    Refuse(&'static str),
}

const DAEMONSET_FATAL: &str = "DaemonSet-managed Pods (use --ignore-daemonsets to ignore)";
const DAEMONSET_WARNING: &str = "ignoring DaemonSet-managed Pods";
const LOCAL_STORAGE_FATAL: &str = "Pods with local storage (use --delete-emptydir-data to override)";
const LOCAL_STORAGE_WARNING: &str = "deleting Pods with local storage";
const UNMANAGED_FATAL: &str = "cannot delete Pods that declare no controller (use --force to override)";
const UNMANAGED_WARNING: &str = "deleting Pods that declare no controller";

fn finished(pod: &Value) -> bool {
    matches!(pod["status"]["phase"].as_str(), Some("Succeeded" | "Failed"))
}

fn controller(pod: &Value) -> Option<&Value> {
    pod["metadata"]["ownerReferences"].as_array()?.iter().find(|o| o["controller"] == true)
}

/// kubectl's filter chain: the first filter that refuses or skips decides; otherwise the last
/// filter's verdict stands (so an earlier warning can be overwritten, as in kubectl).
fn judge(pod: &Value, a: &DrainArgs) -> Verdict {
    let filters: [&dyn Fn() -> Verdict; 4] = [
        &|| match controller(pod) {
            Some(c) if c["kind"] == "DaemonSet" && !finished(pod) => {
                if a.ignore_daemonsets {
                    Verdict::Warn(DAEMONSET_WARNING)
                } else {
                    Verdict::Refuse(DAEMONSET_FATAL)
                }
            }
            _ => Verdict::Delete,
        },
        &|| {
            if pod["metadata"]["annotations"]["kubernetes.io/config.mirror"].is_string() {
                Verdict::Skip
            } else {
                Verdict::Delete
            }
        },
        &|| {
            let local = pod["spec"]["volumes"].as_array().into_iter().flatten().any(|v| v["emptyDir"].is_object());
            if !local || finished(pod) {
                Verdict::Delete
            } else if a.delete_emptydir_data {
                Verdict::Warn(LOCAL_STORAGE_WARNING)
            } else {
                Verdict::Refuse(LOCAL_STORAGE_FATAL)
            }
        },
        &|| {
            if controller(pod).is_some() || finished(pod) {
                Verdict::Delete
            } else if a.force {
                Verdict::Warn(UNMANAGED_WARNING)
            } else {
                Verdict::Refuse(UNMANAGED_FATAL)
            }
        },
    ];
    let mut verdict = Verdict::Delete;
    for f in filters {
        verdict = f();
        // A DaemonSet warning means the pod is left alone: kubectl's status is "don't delete".
        if matches!(verdict, Verdict::Refuse(_) | Verdict::Skip | Verdict::Warn(DAEMONSET_WARNING)) {
            break;
        }
    }
    verdict
}

fn dry_suffix(dry: &str) -> &'static str {
    match dry {
        "client" => " (dry run)",
        "server" => " (server dry run)",
        _ => "",
    }
}

/// Runs `drain`.
pub fn run(ctx: &mut Ctx, a: DrainArgs) -> Result<()> {
    let dry = a.dry_run.clone().unwrap_or_else(|| "none".into());
    if !matches!(dry.as_str(), "none" | "client" | "server") {
        return Err(Error::usage(format!(
            "Invalid dry-run value ({dry}). Must be \"none\", \"server\", or \"client\"."
        )));
    }
    let timeout = parse_duration(&a.timeout)?;
    let client = ctx.client()?;
    let mut nodes = a.nodes.clone();
    if let Some(l) = &a.selector {
        let list = client.get(&format!("/api/v1/nodes?labelSelector={}", enc(l)))?;
        nodes.extend(list["items"].as_array().into_iter().flatten().map(|n| name_of(n).to_string()));
    }
    if nodes.is_empty() {
        return Err(Error::usage("USAGE: drain NODE [flags]\nSee 'rkubectl drain -h' for help and examples"));
    }
    // Unknown nodes fail the whole command before anything is cordoned, as in kubectl.
    for node in &mut nodes {
        *node = node.strip_prefix("node/").or_else(|| node.strip_prefix("nodes/")).unwrap_or(node).to_string();
        client.get(&format!("/api/v1/nodes/{}", enc(node)))?;
    }
    let eviction = !a.disable_eviction && serves_eviction(ctx)?;
    let mut pending = Vec::new();
    let mut last_error = None;
    for node in nodes {
        match drain_node(ctx, &a, &node, &dry, timeout, eviction) {
            Ok(()) => {}
            Err(e) => {
                let text = match &e {
                    Error::Usage(m) => m.clone(),
                    other => other.to_string(),
                };
                ctx.eprintln(&format!(
                    "error: unable to drain node \"{node}\" due to error: {text}, continuing command..."
                ));
                pending.push(node);
                last_error = Some(e);
            }
        }
    }
    if let Some(e) = last_error {
        let mut text = String::from("There are pending nodes to be drained:\n");
        for n in &pending {
            text.push_str(&format!(" {n}\n"));
        }
        let detail = match e {
            Error::Usage(m) => m,
            other => other.to_string(),
        };
        // kubectl prints an aggregate one error per line.
        let detail = match detail.strip_prefix('[').and_then(|d| d.strip_suffix(']')) {
            Some(inner) => inner.replace(", cannot", "\ncannot").replace(", error when", "\nerror when"),
            None => detail,
        };
        text.push_str(&detail);
        return Err(Error::Exit { code: 1, message: text.trim_end().to_string() });
    }
    Ok(())
}

/// Whether `/api/v1` lists the `pods/eviction` subresource.
fn serves_eviction(ctx: &mut Ctx) -> Result<bool> {
    let list = ctx.client()?.get("/api/v1")?;
    Ok(list["resources"].as_array().into_iter().flatten().any(|r| r["name"] == "pods/eviction"))
}

fn drain_node(ctx: &mut Ctx, a: &DrainArgs, node: &str, dry: &str, timeout: Duration, eviction: bool) -> Result<()> {
    let client = ctx.client()?;
    let path = format!("/api/v1/nodes/{}", enc(node));
    let obj = client.get(&path)?;
    let suffix = dry_suffix(dry);
    if obj["spec"]["unschedulable"] == true {
        ctx.println(&format!("node/{node} already cordoned{suffix}"));
    } else {
        if dry != "client" {
            let q = if dry == "server" { "?dryRun=All" } else { "" };
            let body = json!({"spec": {"unschedulable": true}});
            client.json(
                Method::PATCH,
                &format!("{path}{q}"),
                "application/json",
                Some(("application/merge-patch+json", &body)),
            )?;
        }
        ctx.println(&format!("node/{node} cordoned{suffix}"));
    }
    let mut q = format!("fieldSelector={}", enc(&format!("spec.nodeName={node}")));
    if let Some(s) = &a.pod_selector {
        q.push_str(&format!("&labelSelector={}", enc(s)));
    }
    let pods = client.get(&format!("/api/v1/pods?{q}"))?["items"].as_array().cloned().unwrap_or_default();
    let mut errors: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    let mut warnings: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    let mut doomed = Vec::new();
    for pod in pods {
        let key = format!("{}/{}", namespace_of(&pod), name_of(&pod));
        match judge(&pod, a) {
            Verdict::Delete => doomed.push(pod),
            Verdict::Warn(DAEMONSET_WARNING) => warnings.entry(DAEMONSET_WARNING).or_default().push(key),
            Verdict::Warn(w) => {
                warnings.entry(w).or_default().push(key);
                doomed.push(pod);
            }
            Verdict::Skip => {}
            Verdict::Refuse(e) => errors.entry(e).or_default().push(key),
        }
    }
    if !errors.is_empty() {
        let all: Vec<String> =
            errors.iter().map(|(msg, pods)| format!("cannot delete {msg}: {}", pods.join(", "))).collect();
        let text = if all.len() == 1 { all[0].clone() } else { format!("[{}]", all.join(", ")) };
        return Err(Error::usage(text));
    }
    if !warnings.is_empty() {
        let text: Vec<String> = warnings.iter().map(|(msg, pods)| format!("{msg}: {}", pods.join(", "))).collect();
        ctx.eprintln(&format!("Warning: {}", text.join("; ")));
    }
    if dry != "none" {
        for pod in &doomed {
            ctx.println(&format!("evicting pod {}/{}{suffix}", namespace_of(pod), name_of(pod)));
        }
        ctx.println(&format!("node/{node} drained{suffix}"));
        return Ok(());
    }
    let deadline = (!timeout.is_zero()).then(|| Instant::now() + timeout);
    let mut waiting = Vec::new();
    for pod in &doomed {
        remove_pod(ctx, a, pod, eviction, deadline)?;
        waiting.push(pod.clone());
    }
    let verb = if eviction { "evicted" } else { "deleted" };
    wait_gone(ctx, waiting, verb, deadline, timeout)?;
    ctx.println(&format!("node/{node} drained"));
    Ok(())
}

/// Evicts (or deletes after the budget check) one pod, retrying every 5 s while a budget says no.
fn remove_pod(ctx: &mut Ctx, a: &DrainArgs, pod: &Value, eviction: bool, deadline: Option<Instant>) -> Result<()> {
    let client = ctx.client()?;
    let (ns, name) = (namespace_of(pod).to_string(), name_of(pod).to_string());
    let item = format!("/api/v1/namespaces/{}/pods/{}", enc(&ns), enc(&name));
    let mut delete_options = json!({});
    if a.grace_period >= 0 {
        delete_options["gracePeriodSeconds"] = json!(a.grace_period);
    }
    if eviction {
        ctx.println(&format!("evicting pod {ns}/{name}"));
    }
    loop {
        let refused = if eviction {
            let body = json!({"apiVersion": "policy/v1", "kind": "Eviction",
                "metadata": {"name": name, "namespace": ns}, "deleteOptions": delete_options});
            match client.json(
                Method::POST,
                &format!("{item}/eviction"),
                "application/json",
                Some(("application/json", &body)),
            ) {
                Ok(_) => None,
                Err(e) if e.is_not_found() => None,
                Err(e) if e.api().is_some_and(|x| x.code == 429) => {
                    Some(e.api().map(|x| x.message.clone()).unwrap_or_default())
                }
                Err(e) => return Err(e),
            }
        } else {
            match budget_blocks(ctx, pod)? {
                Some(msg) => Some(msg),
                None => {
                    match client.json(
                        Method::DELETE,
                        &item,
                        "application/json",
                        Some(("application/json", &delete_options)),
                    ) {
                        Ok(_) => None,
                        Err(e) if e.is_not_found() => None,
                        Err(e) => return Err(e),
                    }
                }
            }
        };
        let Some(why) = refused else { return Ok(()) };
        if deadline.is_some_and(|d| Instant::now() + Duration::from_secs(5) > d) {
            return Err(Error::usage(format!(
                "error when evicting pods/\"{name}\" -n \"{ns}\": global timeout reached"
            )));
        }
        ctx.eprintln(&format!("error when evicting pods/\"{name}\" -n \"{ns}\" (will retry after 5s): {why}"));
        std::thread::sleep(Duration::from_secs(5));
    }
}

/// The client-side PodDisruptionBudget check for servers without the Eviction API: a budget
/// selecting the pod with no disruption allowed blocks it (None when nothing blocks, or when the
/// server has no PDBs at all).
fn budget_blocks(ctx: &mut Ctx, pod: &Value) -> Result<Option<String>> {
    let client = ctx.client()?;
    let path = format!("/apis/policy/v1/namespaces/{}/poddisruptionbudgets", enc(namespace_of(pod)));
    let list = match client.get(&path) {
        Ok(l) => l,
        Err(e) if e.is_not_found() => return Ok(None),
        Err(e) => return Err(e),
    };
    let labels = &pod["metadata"]["labels"];
    for pdb in list["items"].as_array().into_iter().flatten() {
        if selects(&pdb["spec"]["selector"], labels) && pdb["status"]["disruptionsAllowed"].as_i64().unwrap_or(0) < 1 {
            return Ok(Some("Cannot evict pod as it would violate the pod's disruption budget.".into()));
        }
    }
    Ok(None)
}

/// Whether a LabelSelector (matchLabels and matchExpressions) selects `labels`; an empty
/// selector selects everything, as for PDBs in policy/v1.
fn selects(selector: &Value, labels: &Value) -> bool {
    let get = |k: &str| labels[k].as_str();
    let labels_ok = selector["matchLabels"].as_object().into_iter().flatten().all(|(k, v)| get(k) == v.as_str());
    let exprs_ok = selector["matchExpressions"].as_array().into_iter().flatten().all(|e| {
        let key = e["key"].as_str().unwrap_or("");
        let values: Vec<&str> = e["values"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        match e["operator"].as_str() {
            Some("In") => get(key).is_some_and(|v| values.contains(&v)),
            Some("NotIn") => get(key).is_none_or(|v| !values.contains(&v)),
            Some("Exists") => get(key).is_some(),
            Some("DoesNotExist") => get(key).is_none(),
            _ => false,
        }
    });
    labels_ok && exprs_ok
}

/// Polls until every pod is gone (or replaced under the same name), printing each as it goes.
fn wait_gone(
    ctx: &mut Ctx,
    mut pods: Vec<Value>,
    verb: &str,
    deadline: Option<Instant>,
    timeout: Duration,
) -> Result<()> {
    let client = ctx.client()?;
    while !pods.is_empty() {
        let mut still = Vec::new();
        for pod in pods {
            let path = format!("/api/v1/namespaces/{}/pods/{}", enc(namespace_of(&pod)), enc(name_of(&pod)));
            let gone = match client.get(&path) {
                Ok(now) => now["metadata"]["uid"] != pod["metadata"]["uid"],
                Err(e) if e.is_not_found() => true,
                Err(e) => return Err(e),
            };
            if gone {
                ctx.println(&format!("pod/{} {verb}", name_of(&pod)));
                ctx.flush();
            } else {
                still.push(pod);
            }
        }
        pods = still;
        if pods.is_empty() {
            break;
        }
        if deadline.is_some_and(|d| Instant::now() > d) {
            let msgs: Vec<String> = pods
                .iter()
                .map(|p| {
                    format!(
                        "error when waiting for pod \"{}\" in namespace \"{}\" to terminate: global timeout reached: {}",
                        name_of(p),
                        namespace_of(p),
                        crate::cmd::describe::human_duration(timeout.as_secs() as i64)
                    )
                })
                .collect();
            let text = if msgs.len() == 1 { msgs[0].clone() } else { format!("[{}]", msgs.join(", ")) };
            return Err(Error::usage(text));
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> DrainArgs {
        DrainArgs {
            nodes: vec![],
            force: false,
            ignore_daemonsets: false,
            delete_emptydir_data: false,
            grace_period: -1,
            timeout: "0s".into(),
            pod_selector: None,
            selector: None,
            disable_eviction: false,
            dry_run: None,
        }
    }

    #[test]
    fn filters_decide_like_kubectl() {
        let bare = json!({"metadata": {"name": "b"}, "status": {"phase": "Running"}});
        let rs = json!({"metadata": {"name": "r", "ownerReferences": [{"kind": "ReplicaSet", "controller": true}]},
            "spec": {"volumes": [{"name": "v", "emptyDir": {}}]}, "status": {"phase": "Running"}});
        let ds = json!({"metadata": {"name": "d", "ownerReferences": [{"kind": "DaemonSet", "controller": true}]}});
        let done = json!({"metadata": {"name": "x"}, "status": {"phase": "Succeeded"}});
        let mirror = json!({"metadata": {"name": "m", "annotations": {"kubernetes.io/config.mirror": "h"}}});
        let a = args();
        assert_eq!(judge(&bare, &a), Verdict::Refuse(UNMANAGED_FATAL));
        assert_eq!(judge(&rs, &a), Verdict::Refuse(LOCAL_STORAGE_FATAL));
        assert_eq!(judge(&ds, &a), Verdict::Refuse(DAEMONSET_FATAL));
        assert_eq!(judge(&done, &a), Verdict::Delete);
        let a = DrainArgs { force: true, ignore_daemonsets: true, delete_emptydir_data: true, ..args() };
        assert_eq!(judge(&bare, &a), Verdict::Warn(UNMANAGED_WARNING));
        // The local-storage warning is overwritten by the next filter's okay, as in kubectl.
        assert_eq!(judge(&rs, &a), Verdict::Delete);
        assert_eq!(judge(&ds, &a), Verdict::Warn(DAEMONSET_WARNING));
        assert_eq!(judge(&mirror, &a), Verdict::Skip);
    }

    #[test]
    fn budgets_select_pods() {
        let labels = json!({"app": "web", "tier": "front"});
        assert!(selects(&json!({"matchLabels": {"app": "web"}}), &labels));
        assert!(!selects(&json!({"matchLabels": {"app": "db"}}), &labels));
        assert!(selects(
            &json!({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["front"]}]}),
            &labels
        ));
        assert!(!selects(&json!({"matchExpressions": [{"key": "x", "operator": "Exists"}]}), &labels));
        assert!(selects(&json!({}), &labels));
    }
}
