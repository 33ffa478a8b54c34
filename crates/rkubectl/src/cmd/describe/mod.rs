//! `describe`: kubectl v1.33's describers, byte for byte. Each kind with a describer in kubectl
//! has one here, written the way kubectl writes it (a prefix writer whose `\t`-separated cells
//! go through Go's tabwriter rules, see [`text::W`]); every other kind gets kubectl's generic
//! describer; the object's Events come last.

mod core;
mod node;
mod other;
mod pod;
pub mod quantity;
mod text;
mod workloads;

use crate::cli::DescribeArgs;
use crate::client::Client;
use crate::ctx::Ctx;
use crate::discovery::ApiResource;
use crate::error::{Error, Result};
use crate::resource::{self, name_of};
use serde_json::Value;
use text::{W, annotations, labels, put, s, since};

/// Reads the extra objects a describer shows (pods, ReplicaSets, Leases, Events).
pub struct Api<'a> {
    client: &'a Client,
}

impl Api<'_> {
    /// One object or document.
    pub fn get(&self, path: &str) -> Result<Value> {
        self.client.get(path)
    }

    /// Every item of a collection, following `continue` tokens in pages of 500 as kubectl does.
    pub fn list(&self, path: &str, query: &[(&str, &str)]) -> Result<Vec<Value>> {
        crate::resource::list_pages(self.client, path, query).map(|(items, _)| items)
    }
}

/// Runs `describe`.
pub fn run(ctx: &mut Ctx, a: DescribeArgs) -> Result<()> {
    if a.resources.is_empty() {
        return Err(Error::usage(
            "You must specify the type of resource to describe. Use \"rkubectl api-resources\" for a complete list of supported resources.",
        ));
    }
    let targets = resource::parse(ctx, &a.resources)?;
    // Only `describe TYPE NAME` falls back to describing every object whose name starts with NAME.
    let prefix_form = a.resources.len() == 2 && targets.items.len() == 1;
    let ns = if a.all_namespaces { None } else { Some(ctx.namespace()?) };
    let client = ctx.client()?;
    let api = Api { client: &client };
    let mut objects: Vec<(ApiResource, Value)> = Vec::new();
    for t in targets.items {
        match &t.name {
            Some(n) => match client.get(&t.resource.item(ns.as_deref().unwrap_or(""), n)) {
                Ok(o) => objects.push((t.resource.clone(), o)),
                Err(e) if e.is_not_found() && prefix_form => {
                    return describe_matching(ctx, &api, &t.resource, ns.as_deref(), n, e, a.show_events);
                }
                Err(e) => ctx.report(&e),
            },
            None => {
                let mut q = Vec::new();
                if let Some(l) = &a.selector {
                    q.push(("labelSelector".to_string(), l.clone()));
                }
                let (items, _) = resource::list_all(ctx, &t.resource, ns.as_deref(), &q)?;
                objects.extend(items.into_iter().map(|o| (t.resource.clone(), o)));
            }
        }
    }
    if objects.is_empty() && !ctx.failed {
        match &ns {
            Some(ns) => ctx.eprintln(&format!("No resources found in {ns} namespace.")),
            None => ctx.eprintln("No resources found"),
        }
    }
    let mut first = true;
    for (r, obj) in &objects {
        match describe(&api, r, obj, a.show_events) {
            Ok(text) => {
                if !first {
                    ctx.print("\n\n");
                }
                first = false;
                ctx.print(&text);
            }
            Err(e) => ctx.report(&e),
        }
    }
    Ok(())
}

/// kubectl's `DescribeMatchingResources`: every object whose name starts with `prefix`, each
/// followed by a newline; the original NotFound when none does.
fn describe_matching(
    ctx: &mut Ctx,
    api: &Api,
    r: &ApiResource,
    ns: Option<&str>,
    prefix: &str,
    not_found: Error,
    show_events: bool,
) -> Result<()> {
    let (items, _) = resource::list_all(ctx, r, ns, &[])?;
    let matching: Vec<&Value> = items.iter().filter(|i| name_of(i).starts_with(prefix)).collect();
    if matching.is_empty() {
        return Err(not_found);
    }
    for obj in matching {
        let text = describe(api, r, obj, show_events)?;
        ctx.print(&format!("{text}\n"));
    }
    Ok(())
}

/// One object's description.
fn describe(api: &Api, r: &ApiResource, obj: &Value, show_events: bool) -> Result<String> {
    let mut w = W::default();
    // Which involved-object kind the events are searched by (none for pods), or no events.
    let events_kind: Option<&str> = match (r.group.as_str(), r.kind.as_str()) {
        ("", "Pod") => {
            pod::pod(&mut w, obj);
            Some("")
        }
        ("", "Node") => {
            node::node(&mut w, api, obj)?;
            if show_events {
                node_events(&mut w, api, obj);
            }
            None
        }
        ("", "Service") => {
            core::service(&mut w, api, obj);
            Some("Service")
        }
        ("", "Endpoints") => {
            core::endpoints(&mut w, obj);
            Some("Endpoints")
        }
        ("", "Namespace") => {
            core::namespace(&mut w, api, obj)?;
            None
        }
        ("", "ConfigMap") => {
            core::config_map(&mut w, obj);
            if show_events {
                // kubectl fails the ConfigMap's description when its events cannot be read.
                let items = search_events(api, obj, Some("ConfigMap"), None)?;
                describe_events(&mut w, items);
            }
            None
        }
        ("", "Secret") => {
            core::secret(&mut w, obj);
            None
        }
        ("", "ServiceAccount") => {
            core::service_account(&mut w, api, obj);
            Some("ServiceAccount")
        }
        ("", "PersistentVolumeClaim") => {
            core::pvc(&mut w, api, obj)?;
            Some("PersistentVolumeClaim")
        }
        ("", "ReplicationController") => {
            workloads::replication_controller(&mut w, api, obj)?;
            Some("ReplicationController")
        }
        ("apps", "Deployment") => {
            workloads::deployment(&mut w, api, obj);
            Some("Deployment")
        }
        ("apps", "ReplicaSet") => {
            workloads::replica_set(&mut w, api, obj);
            Some("ReplicaSet")
        }
        ("apps", "DaemonSet") => {
            workloads::daemon_set(&mut w, api, obj)?;
            Some("DaemonSet")
        }
        ("apps", "StatefulSet") => {
            workloads::stateful_set(&mut w, api, obj)?;
            Some("StatefulSet")
        }
        ("batch", "Job") => {
            workloads::job(&mut w, obj);
            Some("Job")
        }
        ("batch", "CronJob") => {
            workloads::cron_job(&mut w, obj);
            Some("CronJob")
        }
        (group, kind) => match other::describe(&mut w, api, group, kind, obj)? {
            Some("") => None,
            Some(kind) => Some(kind),
            None => {
                generic(&mut w, obj);
                Some(r.kind.as_str())
            }
        },
    };
    if show_events && let Some(kind) = events_kind {
        let kind = if kind.is_empty() { None } else { Some(kind) };
        let items = search_events(api, obj, kind, None).unwrap_or_default();
        describe_events(&mut w, items);
    }
    Ok(w.text())
}

/// kubectl searches a Node's events twice: by its uid (controllers) and by its name used as
/// uid (the kubelet), and shows both.
fn node_events(w: &mut W, api: &Api, n: &Value) {
    let mut items = search_events(api, n, Some("Node"), None).unwrap_or_default();
    items.extend(search_events(api, n, Some("Node"), Some(s(&n["metadata"]["name"]))).unwrap_or_default());
    describe_events(w, items);
}

/// `searchEvents`: the events whose involved object has this name, namespace, kind (when given)
/// and uid.
fn search_events(api: &Api, obj: &Value, kind: Option<&str>, uid: Option<String>) -> Result<Vec<Value>> {
    let m = &obj["metadata"];
    let ns = s(&m["namespace"]);
    let mut sel = vec![format!("involvedObject.name={}", s(&m["name"])), format!("involvedObject.namespace={ns}")];
    if let Some(kind) = kind {
        sel.push(format!("involvedObject.kind={kind}"));
    }
    let uid = uid.unwrap_or_else(|| s(&m["uid"]));
    if !uid.is_empty() {
        sel.push(format!("involvedObject.uid={uid}"));
    }
    let path = if ns.is_empty() { "/api/v1/events".to_string() } else { format!("/api/v1/namespaces/{ns}/events") };
    api.list(&path, &[("fieldSelector", &sel.join(","))])
}

/// `DescribeEvents`: oldest last-seen first (events never seen again keep their list order).
fn describe_events(w: &mut W, mut items: Vec<Value>) {
    if items.is_empty() {
        put!(w, 0, "Events:\t<none>\n");
        return;
    }
    let last_seen = |e: &Value| e["lastTimestamp"].as_str().and_then(|t| t.parse::<jiff::Timestamp>().ok());
    items.sort_by_key(|e| last_seen(e));
    put!(w, 0, "Events:\n  Type\tReason\tAge\tFrom\tMessage\n");
    put!(w, 1, "----\t------\t----\t----\t-------\n");
    for e in &items {
        let first = match e["eventTime"].as_str().filter(|t| !t.is_empty()) {
            Some(_) => since(&e["eventTime"]),
            None => since(&e["firstTimestamp"]),
        };
        let count = e["count"].as_i64().unwrap_or(0);
        let interval = if e["series"].is_object() {
            let series = &e["series"];
            format!("{} (x{} over {first})", since(&series["lastObservedTime"]), series["count"].as_i64().unwrap_or(0))
        } else if count > 1 {
            format!("{} (x{count} over {first})", since(&e["lastTimestamp"]))
        } else {
            first
        };
        let mut source = s(&e["source"]["component"]);
        if source.is_empty() {
            source = s(&e["reportingComponent"]);
        }
        put!(w, 1, "{}\t{}\t{interval}\t{source}\t{}\n", s(&e["type"]), s(&e["reason"]), s(&e["message"]).trim());
    }
}

/// kubectl's generic describer: name, namespace, labels, annotations, then every other field
/// with its name title-cased.
fn generic(w: &mut W, obj: &Value) {
    let m = &obj["metadata"];
    put!(w, 0, "Name:\t{}\n", s(&m["name"]));
    put!(w, 0, "Namespace:\t{}\n", s(&m["namespace"]));
    labels(w, "Labels", &m["labels"]);
    annotations(w, "Annotations", &m["annotations"]);
    content(w, 0, obj, "");
}

const GENERIC_SKIP: [&str; 5] =
    [".metadata.managedFields", ".metadata.name", ".metadata.namespace", ".metadata.labels", ".metadata.annotations"];

/// `printUnstructuredContent`: fields sorted, maps and lists nested one level deeper.
fn content(w: &mut W, level: usize, map: &Value, prefix: &str) {
    let Some(obj) = map.as_object() else { return };
    for field in text::sorted_keys(obj) {
        let path = format!("{prefix}.{field}");
        if GENERIC_SKIP.contains(&path.as_str()) {
            continue;
        }
        match &obj[field.as_str()] {
            v @ Value::Object(_) => {
                put!(w, level, "{}:\n", smart_label(field));
                content(w, level + 1, v, &path);
            }
            Value::Array(items) => {
                put!(w, level, "{}:\n", smart_label(field));
                for item in items {
                    match item {
                        Value::Object(_) => content(w, level + 1, item, &path),
                        other => put!(w, level + 1, "{}\n", go_value(other)),
                    }
                }
            }
            other => put!(w, level, "{}:\t{}\n", smart_label(field), go_value(other)),
        }
    }
}

/// A JSON value as Go's `%v` prints what it decodes to (`<nil>`, `map[...]`, `[...]`).
fn go_value(v: &Value) -> String {
    match v {
        Value::Null => "<nil>".into(),
        Value::String(s) => s.clone(),
        Value::Array(items) => format!("[{}]", items.iter().map(go_value).collect::<Vec<_>>().join(" ")),
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let parts: Vec<String> = keys.iter().map(|k| format!("{k}:{}", go_value(&m[k.as_str()]))).collect();
            format!("map[{}]", parts.join(" "))
        }
        other => other.to_string(),
    }
}

/// `smartLabelFor`: `clusterIP` -> `Cluster IP`, `apiVersion` -> `API Version`; names with
/// anything but letters and `-` stay as they are.
fn smart_label(field: &str) -> String {
    if field.chars().any(|c| !c.is_alphabetic() && c != '-') {
        return field.to_string();
    }
    const ACRONYMS: [&str; 5] = ["API", "URL", "UID", "OSB", "GUID"];
    camel_split(field)
        .into_iter()
        .filter(|p| p != "_")
        .map(|p| {
            let upper = p.to_uppercase();
            if ACRONYMS.contains(&upper.as_str()) {
                upper
            } else {
                let mut c = p.chars();
                c.next().map(|f| f.to_uppercase().chain(c).collect()).unwrap_or_default()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// `camelcase.Split`: runs of lower, upper, digit and other characters, the last capital of
/// an upper run moved to a following lower run (`PDFLoader` -> `PDF`, `Loader`).
fn camel_split(text: &str) -> Vec<String> {
    let class = |c: char| {
        if c.is_lowercase() {
            1
        } else if c.is_uppercase() {
            2
        } else if c.is_numeric() {
            3
        } else {
            4
        }
    };
    let mut runs: Vec<Vec<char>> = Vec::new();
    let mut last = 0;
    for c in text.chars() {
        let k = class(c);
        match runs.last_mut() {
            Some(run) if k == last => run.push(c),
            _ => runs.push(vec![c]),
        }
        last = k;
    }
    for i in 0..runs.len().saturating_sub(1) {
        let upper_then_lower =
            runs[i].first().is_some_and(|c| c.is_uppercase()) && runs[i + 1].first().is_some_and(|c| c.is_lowercase());
        if upper_then_lower && let Some(moved) = runs[i].pop() {
            runs[i + 1].insert(0, moved);
        }
    }
    runs.into_iter().filter(|r| !r.is_empty()).map(|r| r.into_iter().collect()).collect()
}

/// Age of an RFC 3339 timestamp in kubectl's HumanDuration form (`5s`, `3m2s`, `4h`, `2d3h`).
pub fn age(ts: &str) -> String {
    let Ok(t) = ts.parse::<jiff::Timestamp>() else { return "<unknown>".into() };
    // Whole seconds of the exact difference, truncated as Go's `int(d.Seconds())` does: the
    // difference of whole-second timestamps is a second off for fractional timestamps.
    let nanos = jiff::Timestamp::now().as_nanosecond() - t.as_nanosecond();
    human_duration(i64::try_from(nanos / 1_000_000_000).unwrap_or(i64::MAX))
}

/// kubectl's `duration.HumanDuration`.
pub fn human_duration(secs: i64) -> String {
    if secs < -1 {
        return "<invalid>".into();
    }
    if secs < 0 {
        return "0s".into();
    }
    if secs < 120 {
        return format!("{secs}s");
    }
    let minutes = secs / 60;
    if minutes < 10 {
        let s = secs % 60;
        return if s == 0 { format!("{minutes}m") } else { format!("{minutes}m{s}s") };
    }
    if minutes < 180 {
        return format!("{minutes}m");
    }
    let hours = secs / 3600;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 { format!("{hours}h") } else { format!("{hours}h{m}m") };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 { format!("{}d", hours / 24) } else { format!("{}d{h}h", hours / 24) };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let d = (hours / 24) % 365;
        return if d == 0 { format!("{}y", hours / 24 / 365) } else { format!("{}y{d}d", hours / 24 / 365) };
    }
    format!("{}y", hours / 24 / 365)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_durations() {
        assert_eq!(human_duration(5), "5s");
        assert_eq!(human_duration(150), "2m30s");
        assert_eq!(human_duration(3600), "60m");
        assert_eq!(human_duration(5 * 3600 + 60), "5h1m");
        assert_eq!(human_duration(30 * 3600), "30h");
        assert_eq!(human_duration(3 * 86400), "3d");
    }

    #[test]
    fn smart_labels_split_camel_case() {
        assert_eq!(smart_label("clusterIP"), "Cluster IP");
        assert_eq!(smart_label("apiVersion"), "API Version");
        assert_eq!(smart_label("holderIdentity"), "Holder Identity");
        assert_eq!(smart_label("PDFLoader"), "PDF Loader");
        assert_eq!(smart_label("x_1"), "x_1");
    }
}
