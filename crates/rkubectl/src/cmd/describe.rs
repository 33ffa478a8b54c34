//! `describe`: kubectl's `Key:<tab>value` layout aligned by a tabwriter (padding 2), with
//! specific sections for pods, nodes, services and deployments, a generic layout for
//! everything else, and the object's Events at the end.

use crate::cli::DescribeArgs;
use crate::ctx::Ctx;
use crate::discovery::ApiResource;
use crate::error::{Error, Result};
use crate::print::table::tabwrite;
use crate::resource::{self, enc, name_of};
use serde_json::Value;

/// Lines of cells (tab-separated in kubectl's describe).
#[derive(Default)]
struct Out {
    lines: Vec<Vec<String>>,
}

impl Out {
    fn kv(&mut self, indent: usize, key: &str, value: impl Into<String>) {
        self.lines.push(vec![format!("{}{key}:", " ".repeat(indent)), value.into()]);
    }

    fn line(&mut self, indent: usize, text: &str) {
        self.lines.push(vec![format!("{}{text}", " ".repeat(indent))]);
    }

    fn cells(&mut self, cells: Vec<String>) {
        self.lines.push(cells);
    }

    /// `Labels:` style map: first pair on the key's line, the rest under it.
    fn map(&mut self, indent: usize, key: &str, m: &Value, sep: &str) {
        let pairs: Vec<String> = match m.as_object() {
            Some(map) if !map.is_empty() => {
                let mut v: Vec<String> = map
                    .iter()
                    .map(|(k, v)| {
                        format!("{k}{sep}{}", v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string()))
                    })
                    .collect();
                v.sort();
                v
            }
            _ => vec!["<none>".into()],
        };
        for (i, p) in pairs.into_iter().enumerate() {
            if i == 0 {
                self.kv(indent, key, p);
            } else {
                self.cells(vec![String::new(), p]);
            }
        }
    }

    fn text(&self) -> String {
        tabwrite(&self.lines, 2)
    }
}

fn s(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn or_none(v: &Value) -> String {
    let t = s(v);
    if t.is_empty() { "<none>".into() } else { t }
}

/// Runs `describe`.
pub fn run(ctx: &mut Ctx, a: DescribeArgs) -> Result<()> {
    if a.resources.is_empty() {
        return Err(Error::usage(
            "You must specify the type of resource to describe. Use \"rkubectl api-resources\" for a complete list of supported resources.",
        ));
    }
    let targets = resource::parse(ctx, &a.resources)?;
    let ns = if a.all_namespaces { None } else { Some(ctx.namespace()?) };
    let client = ctx.client()?;
    let mut objects: Vec<(ApiResource, Value)> = Vec::new();
    for t in targets.items {
        match &t.name {
            Some(n) => match client.get(&t.resource.item(ns.as_deref().unwrap_or(""), n)) {
                Ok(o) => objects.push((t.resource.clone(), o)),
                Err(e) if e.is_not_found() => {
                    // kubectl describes every object whose name starts with the argument.
                    let (items, _) = resource::list_all(ctx, &t.resource, ns.as_deref(), &[])?;
                    let matching: Vec<Value> =
                        items.into_iter().filter(|i| name_of(i).starts_with(n.as_str())).collect();
                    if matching.is_empty() {
                        ctx.report(&e);
                    }
                    objects.extend(matching.into_iter().map(|o| (t.resource.clone(), o)));
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
    for (i, (r, obj)) in objects.iter().enumerate() {
        if i > 0 {
            ctx.print("\n\n");
        }
        let mut out = Out::default();
        match r.kind.as_str() {
            "Pod" => pod(&mut out, obj),
            "Node" => node(&mut out, obj),
            "Service" => {
                let eps = service_endpoints(ctx, obj);
                service(&mut out, obj, &eps)
            }
            "Deployment" => deployment(&mut out, obj),
            _ => generic(&mut out, obj),
        }
        if a.show_events {
            events(ctx, &mut out, obj)?;
        }
        let text = out.text();
        ctx.print(&text);
    }
    Ok(())
}

fn header(out: &mut Out, obj: &Value) {
    let m = &obj["metadata"];
    out.kv(0, "Name", s(&m["name"]));
    if !m["namespace"].is_null() {
        out.kv(0, "Namespace", s(&m["namespace"]));
    }
}

fn pod(out: &mut Out, p: &Value) {
    let m = &p["metadata"];
    let spec = &p["spec"];
    let st = &p["status"];
    header(out, p);
    out.kv(
        0,
        "Priority",
        s(&spec["priority"]).chars().next().map(|_| s(&spec["priority"])).unwrap_or_else(|| "0".into()),
    );
    if let Some(pc) = spec["priorityClassName"].as_str() {
        out.kv(0, "Priority Class Name", pc);
    }
    out.kv(0, "Service Account", spec["serviceAccountName"].as_str().unwrap_or("default"));
    let node = match (spec["nodeName"].as_str(), st["hostIP"].as_str()) {
        (Some(n), Some(ip)) => format!("{n}/{ip}"),
        (Some(n), None) => n.to_string(),
        _ => "<none>".into(),
    };
    out.kv(0, "Node", node);
    if let Some(t) = st["startTime"].as_str() {
        out.kv(0, "Start Time", rfc1123(t));
    }
    out.map(0, "Labels", &m["labels"], "=");
    out.map(0, "Annotations", &m["annotations"], ": ");
    if let Some(ts) = m["deletionTimestamp"].as_str() {
        out.kv(0, "Status", format!("Terminating (lasts {})", crate::cmd::describe::age(ts)));
    } else {
        out.kv(0, "Status", s(&st["phase"]));
    }
    if let Some(reason) = st["reason"].as_str() {
        out.kv(0, "Reason", reason);
    }
    if let Some(msg) = st["message"].as_str() {
        out.kv(0, "Message", msg);
    }
    out.kv(0, "IP", s(&st["podIP"]));
    let ips: Vec<String> = st["podIPs"].as_array().into_iter().flatten().map(|i| s(&i["ip"])).collect();
    if ips.is_empty() {
        out.kv(0, "IPs", "<none>");
    } else {
        out.line(0, "IPs:");
        for ip in ips {
            out.kv(2, "IP", ip);
        }
    }
    if let Some(owner) = m["ownerReferences"].as_array().and_then(|o| o.iter().find(|o| o["controller"] == true)) {
        out.kv(0, "Controlled By", format!("{}/{}", s(&owner["kind"]), s(&owner["name"])));
    }
    for (field, title) in [("initContainers", "Init Containers"), ("containers", "Containers")] {
        let Some(cs) = spec[field].as_array() else { continue };
        out.line(0, &format!("{title}:"));
        let statuses = if field == "containers" { &st["containerStatuses"] } else { &st["initContainerStatuses"] };
        for c in cs {
            let cst = statuses
                .as_array()
                .and_then(|a| a.iter().find(|x| x["name"] == c["name"]))
                .cloned()
                .unwrap_or(Value::Null);
            container(out, c, &cst);
        }
    }
    if let Some(conds) = st["conditions"].as_array() {
        out.line(0, "Conditions:");
        out.cells(vec!["  Type".into(), "Status".into()]);
        for c in conds {
            out.cells(vec![format!("  {} ", s(&c["type"])), format!("{} ", s(&c["status"]))]);
        }
    }
    match spec["volumes"].as_array() {
        Some(vols) if !vols.is_empty() => {
            out.line(0, "Volumes:");
            for v in vols {
                out.line(2, &format!("{}:", s(&v["name"])));
                let kind = v.as_object().and_then(|o| o.keys().find(|k| *k != "name").cloned()).unwrap_or_default();
                out.kv(4, "Type", kind);
            }
        }
        _ => out.kv(0, "Volumes", "<none>"),
    }
    out.kv(0, "QoS Class", s(&st["qosClass"]));
    out.map(0, "Node-Selectors", &spec["nodeSelector"], "=");
    let tols: Vec<String> = spec["tolerations"].as_array().into_iter().flatten().map(toleration).collect();
    if tols.is_empty() {
        out.kv(0, "Tolerations", "<none>");
    } else {
        for (i, t) in tols.into_iter().enumerate() {
            if i == 0 {
                out.kv(0, "Tolerations", t);
            } else {
                out.cells(vec![String::new(), t]);
            }
        }
    }
}

fn toleration(t: &Value) -> String {
    let mut text = s(&t["key"]);
    if let Some(v) = t["value"].as_str() {
        text.push_str(&format!("={v}"));
    }
    if let Some(e) = t["effect"].as_str() {
        text.push_str(&format!(":{e}"));
    }
    if t["operator"] == "Exists" {
        text.push_str(" op=Exists");
    }
    if let Some(secs) = t["tolerationSeconds"].as_i64() {
        text.push_str(&format!(" for {secs}s"));
    }
    text
}

fn container(out: &mut Out, c: &Value, st: &Value) {
    out.line(2, &format!("{}:", s(&c["name"])));
    if let Some(id) = st["containerID"].as_str() {
        out.kv(4, "Container ID", id);
    }
    out.kv(4, "Image", s(&c["image"]));
    if !st.is_null() {
        out.kv(4, "Image ID", s(&st["imageID"]));
    }
    let ports: Vec<String> = c["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| format!("{}/{}", s(&p["containerPort"]), p["protocol"].as_str().unwrap_or("TCP")))
        .collect();
    if ports.is_empty() {
        out.kv(4, "Port", "<none>");
        out.kv(4, "Host Port", "<none>");
    } else {
        out.kv(4, "Port", ports.join(", "));
        let hp: Vec<String> = c["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| format!("{}/{}", p["hostPort"].as_i64().unwrap_or(0), p["protocol"].as_str().unwrap_or("TCP")))
            .collect();
        out.kv(4, "Host Port", hp.join(", "));
    }
    if let Some(cmd) = c["command"].as_array() {
        out.line(4, "Command:");
        for a in cmd {
            out.line(6, &s(a));
        }
    }
    if let Some(args) = c["args"].as_array() {
        out.line(4, "Args:");
        for a in args {
            out.line(6, &s(a));
        }
    }
    if !st.is_null() {
        state(out, "State", &st["state"]);
        if st["lastState"].as_object().is_some_and(|m| !m.is_empty()) {
            state(out, "Last State", &st["lastState"]);
        }
        out.kv(4, "Ready", if st["ready"] == true { "True" } else { "False" });
        out.kv(4, "Restart Count", s(&st["restartCount"]));
    }
    for (k, title) in [("limits", "Limits"), ("requests", "Requests")] {
        if let Some(m) = c["resources"][k].as_object().filter(|m| !m.is_empty()) {
            out.line(4, &format!("{title}:"));
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            for key in keys {
                out.kv(6, key, s(&m[key.as_str()]));
            }
        }
    }
    match c["env"].as_array() {
        Some(env) if !env.is_empty() => {
            out.line(4, "Environment:");
            for e in env {
                let value = if e["value"].is_string() { s(&e["value"]) } else { "<set from a reference>".into() };
                out.kv(6, &s(&e["name"]), value);
            }
        }
        _ => out.kv(4, "Environment", "<none>"),
    }
    match c["volumeMounts"].as_array() {
        Some(ms) if !ms.is_empty() => {
            out.line(4, "Mounts:");
            for mnt in ms {
                let ro = if mnt["readOnly"] == true { "ro" } else { "rw" };
                out.line(6, &format!("{} from {} ({ro})", s(&mnt["mountPath"]), s(&mnt["name"])));
            }
        }
        _ => out.kv(4, "Mounts", "<none>"),
    }
}

fn state(out: &mut Out, title: &str, st: &Value) {
    let Some((name, detail)) = st.as_object().and_then(|m| m.iter().next()) else {
        out.kv(4, title, "Waiting");
        return;
    };
    let mut cap = name.clone();
    if let Some(f) = cap.get_mut(0..1) {
        f.make_ascii_uppercase();
    }
    out.kv(4, title, cap);
    for (k, label) in [("reason", "Reason"), ("message", "Message"), ("exitCode", "Exit Code")] {
        if !detail[k].is_null() {
            out.kv(6, label, s(&detail[k]));
        }
    }
    for (k, label) in [("startedAt", "Started"), ("finishedAt", "Finished")] {
        if let Some(t) = detail[k].as_str() {
            out.kv(6, label, rfc1123(t));
        }
    }
}

fn node(out: &mut Out, n: &Value) {
    let m = &n["metadata"];
    let st = &n["status"];
    header(out, n);
    out.kv(0, "Roles", "<none>");
    out.map(0, "Labels", &m["labels"], "=");
    out.map(0, "Annotations", &m["annotations"], ": ");
    out.kv(0, "CreationTimestamp", rfc1123(m["creationTimestamp"].as_str().unwrap_or("")));
    let taints: Vec<String> = n["spec"]["taints"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| {
            let v = t["value"].as_str().map(|v| format!("={v}")).unwrap_or_default();
            format!("{}{v}:{}", s(&t["key"]), s(&t["effect"]))
        })
        .collect();
    if taints.is_empty() {
        out.kv(0, "Taints", "<none>");
    } else {
        for (i, t) in taints.into_iter().enumerate() {
            if i == 0 {
                out.kv(0, "Taints", t);
            } else {
                out.cells(vec![String::new(), t]);
            }
        }
    }
    out.kv(0, "Unschedulable", if n["spec"]["unschedulable"] == true { "true" } else { "false" });
    if let Some(conds) = st["conditions"].as_array() {
        out.line(0, "Conditions:");
        out.cells(vec![
            "  Type".into(),
            "Status".into(),
            "LastHeartbeatTime".into(),
            "LastTransitionTime".into(),
            "Reason".into(),
            "Message".into(),
        ]);
        out.cells(vec![
            "  ----".into(),
            "------".into(),
            "-----------------".into(),
            "------------------".into(),
            "------".into(),
            "-------".into(),
        ]);
        for c in conds {
            out.cells(vec![
                format!("  {}", s(&c["type"])),
                s(&c["status"]),
                rfc1123(c["lastHeartbeatTime"].as_str().unwrap_or("")),
                rfc1123(c["lastTransitionTime"].as_str().unwrap_or("")),
                s(&c["reason"]),
                s(&c["message"]),
            ]);
        }
    }
    if let Some(addrs) = st["addresses"].as_array() {
        out.line(0, "Addresses:");
        for a in addrs {
            out.kv(2, &s(&a["type"]), s(&a["address"]));
        }
    }
    for (k, title) in [("capacity", "Capacity"), ("allocatable", "Allocatable")] {
        if let Some(mm) = st[k].as_object() {
            out.line(0, &format!("{title}:"));
            let mut keys: Vec<&String> = mm.keys().collect();
            keys.sort();
            for key in keys {
                out.kv(2, key, s(&mm[key.as_str()]));
            }
        }
    }
    let info = &st["nodeInfo"];
    if info.is_object() {
        out.line(0, "System Info:");
        for (k, label) in [
            ("machineID", "Machine ID"),
            ("systemUUID", "System UUID"),
            ("bootID", "Boot ID"),
            ("kernelVersion", "Kernel Version"),
            ("osImage", "OS Image"),
            ("operatingSystem", "Operating System"),
            ("architecture", "Architecture"),
            ("containerRuntimeVersion", "Container Runtime Version"),
            ("kubeletVersion", "Kubelet Version"),
        ] {
            out.kv(2, label, s(&info[k]));
        }
    }
    if let Some(cidr) = n["spec"]["podCIDR"].as_str() {
        out.kv(0, "PodCIDR", cidr);
    }
}

/// `ip:port,...` of the Service's ready endpoints from its EndpointSlices.
fn service_endpoints(ctx: &mut Ctx, svc: &Value) -> String {
    let Ok(client) = ctx.client() else { return String::new() };
    let ns = svc["metadata"]["namespace"].as_str().unwrap_or("default");
    let sel = enc(&format!("kubernetes.io/service-name={}", s(&svc["metadata"]["name"])));
    let Ok(list) = client.get(&format!("/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices?labelSelector={sel}"))
    else {
        return String::new();
    };
    let mut out = Vec::new();
    for slice in list["items"].as_array().into_iter().flatten() {
        let ports: Vec<String> = slice["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p["port"].as_i64().map(|n| n.to_string()))
            .collect();
        for ep in slice["endpoints"].as_array().into_iter().flatten() {
            if ep["conditions"]["ready"] == false {
                continue;
            }
            for addr in ep["addresses"].as_array().into_iter().flatten() {
                if ports.is_empty() {
                    out.push(s(addr));
                }
                for p in &ports {
                    out.push(format!("{}:{p}", s(addr)));
                }
            }
        }
    }
    out.join(",")
}

fn service(out: &mut Out, svc: &Value, endpoints: &str) {
    let m = &svc["metadata"];
    let spec = &svc["spec"];
    header(out, svc);
    out.map(0, "Labels", &m["labels"], "=");
    out.map(0, "Annotations", &m["annotations"], ": ");
    let sel: Vec<String> =
        spec["selector"].as_object().into_iter().flatten().map(|(k, v)| format!("{k}={}", s(v))).collect();
    out.kv(0, "Selector", if sel.is_empty() { "<none>".into() } else { sel.join(",") });
    out.kv(0, "Type", spec["type"].as_str().unwrap_or("ClusterIP"));
    out.kv(0, "IP Family Policy", or_none(&spec["ipFamilyPolicy"]));
    let fams: Vec<String> = spec["ipFamilies"].as_array().into_iter().flatten().map(s).collect();
    out.kv(0, "IP Families", if fams.is_empty() { "<none>".into() } else { fams.join(",") });
    out.kv(0, "IP", or_none(&spec["clusterIP"]));
    let ips: Vec<String> = spec["clusterIPs"].as_array().into_iter().flatten().map(s).collect();
    out.kv(0, "IPs", if ips.is_empty() { "<none>".into() } else { ips.join(",") });
    for p in spec["ports"].as_array().into_iter().flatten() {
        let name = p["name"].as_str().unwrap_or("<unset>");
        out.kv(0, "Port", format!("{name}  {}/{}", s(&p["port"]), p["protocol"].as_str().unwrap_or("TCP")));
        out.kv(0, "TargetPort", format!("{}/{}", s(&p["targetPort"]), p["protocol"].as_str().unwrap_or("TCP")));
        if let Some(np) = p["nodePort"].as_i64() {
            out.kv(0, "NodePort", format!("{name}  {np}/{}", p["protocol"].as_str().unwrap_or("TCP")));
        }
        out.kv(0, "Endpoints", endpoints);
    }
    out.kv(0, "Session Affinity", spec["sessionAffinity"].as_str().unwrap_or("None"));
    out.kv(0, "Internal Traffic Policy", spec["internalTrafficPolicy"].as_str().unwrap_or("Cluster"));
}

fn deployment(out: &mut Out, d: &Value) {
    let m = &d["metadata"];
    let spec = &d["spec"];
    let st = &d["status"];
    header(out, d);
    out.kv(0, "CreationTimestamp", rfc1123(m["creationTimestamp"].as_str().unwrap_or("")));
    out.map(0, "Labels", &m["labels"], "=");
    out.map(0, "Annotations", &m["annotations"], ": ");
    let sel: Vec<String> = spec["selector"]["matchLabels"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", s(v)))
        .collect();
    out.kv(0, "Selector", sel.join(","));
    out.kv(
        0,
        "Replicas",
        format!(
            "{} desired | {} updated | {} total | {} available | {} unavailable",
            spec["replicas"].as_i64().unwrap_or(1),
            st["updatedReplicas"].as_i64().unwrap_or(0),
            st["replicas"].as_i64().unwrap_or(0),
            st["availableReplicas"].as_i64().unwrap_or(0),
            st["unavailableReplicas"].as_i64().unwrap_or(0)
        ),
    );
    out.kv(0, "StrategyType", spec["strategy"]["type"].as_str().unwrap_or("RollingUpdate"));
    out.kv(0, "MinReadySeconds", spec["minReadySeconds"].as_i64().unwrap_or(0).to_string());
    if let Some(ru) = spec["strategy"]["rollingUpdate"].as_object() {
        out.kv(
            0,
            "RollingUpdateStrategy",
            format!("{} max unavailable, {} max surge", s(&ru["maxUnavailable"]), s(&ru["maxSurge"])),
        );
    }
    out.line(0, "Pod Template:");
    out.map(2, "Labels", &spec["template"]["metadata"]["labels"], "=");
    out.line(2, "Containers:");
    for c in spec["template"]["spec"]["containers"].as_array().into_iter().flatten() {
        let mut inner = Out::default();
        container(&mut inner, c, &Value::Null);
        for mut l in inner.lines {
            if let Some(first) = l.first_mut() {
                *first = format!("  {first}");
            }
            out.lines.push(l);
        }
    }
    if let Some(conds) = st["conditions"].as_array() {
        out.line(0, "Conditions:");
        out.cells(vec!["  Type".into(), "Status".into(), "Reason".into()]);
        out.cells(vec!["  ----".into(), "------".into(), "------".into()]);
        for c in conds {
            out.cells(vec![format!("  {}", s(&c["type"])), s(&c["status"]), s(&c["reason"])]);
        }
    }
}

fn generic(out: &mut Out, obj: &Value) {
    let m = &obj["metadata"];
    header(out, obj);
    out.map(0, "Labels", &m["labels"], "=");
    out.map(0, "Annotations", &m["annotations"], ": ");
    out.kv(0, "API Version", s(&obj["apiVersion"]));
    out.kv(0, "Kind", s(&obj["kind"]));
    if let Some(map) = obj.as_object() {
        let mut keys: Vec<&String> =
            map.keys().filter(|k| !matches!(k.as_str(), "apiVersion" | "kind" | "metadata")).collect();
        keys.sort();
        for k in keys {
            nested(out, 0, &title(k), &map[k.as_str()]);
        }
    }
}

/// kubectl's generic describer title-cases field names (`clusterIP` -> `Cluster IP`).
fn title(k: &str) -> String {
    let mut out = String::new();
    for (i, c) in k.chars().enumerate() {
        if i == 0 {
            out.extend(c.to_uppercase());
        } else if c.is_uppercase() {
            out.push(' ');
            out.push(c);
        } else {
            out.push(c);
        }
    }
    out
}

fn nested(out: &mut Out, indent: usize, key: &str, v: &Value) {
    match v {
        Value::Object(map) => {
            out.line(indent, &format!("{key}:"));
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            for k in keys {
                nested(out, indent + 2, &title(k), &map[k.as_str()]);
            }
        }
        Value::Array(items) => {
            out.line(indent, &format!("{key}:"));
            for item in items {
                match item {
                    Value::Object(_) | Value::Array(_) => nested(out, indent + 2, "", item),
                    other => out.line(indent + 2, &s(other)),
                }
            }
        }
        other => out.kv(indent, key, s(other)),
    }
}

fn events(ctx: &mut Ctx, out: &mut Out, obj: &Value) -> Result<()> {
    let client = ctx.client()?;
    let m = &obj["metadata"];
    let mut sel = vec![format!("involvedObject.name={}", s(&m["name"]))];
    if let Some(ns) = m["namespace"].as_str() {
        sel.push(format!("involvedObject.namespace={ns}"));
    }
    if let Some(uid) = m["uid"].as_str() {
        sel.push(format!("involvedObject.uid={uid}"));
    }
    let ns = m["namespace"].as_str().unwrap_or("default");
    let path = format!("/api/v1/namespaces/{ns}/events?fieldSelector={}", enc(&sel.join(",")));
    let list = match client.get(&path) {
        Ok(l) => l,
        Err(_) => {
            out.kv(0, "Events", "<none>");
            return Ok(());
        }
    };
    let mut items: Vec<Value> = list["items"].as_array().cloned().unwrap_or_default();
    if items.is_empty() {
        out.kv(0, "Events", "<none>");
        return Ok(());
    }
    items.sort_by_key(|e| e["lastTimestamp"].as_str().or(e["eventTime"].as_str()).unwrap_or("").to_string());
    out.line(0, "Events:");
    out.cells(vec!["  Type".into(), "Reason".into(), "Age".into(), "From".into(), "Message".into()]);
    out.cells(vec!["  ----".into(), "------".into(), "----".into(), "----".into(), "-------".into()]);
    for e in items {
        let last = e["lastTimestamp"].as_str().or(e["eventTime"].as_str()).unwrap_or("");
        let count = e["count"].as_i64().unwrap_or(1);
        let first = e["firstTimestamp"].as_str().unwrap_or(last);
        let age_text = if count > 1 { format!("{} (x{count} over {})", age(last), age(first)) } else { age(last) };
        let from = e["source"]["component"].as_str().or(e["reportingComponent"].as_str()).unwrap_or("").to_string();
        let from = match e["source"]["host"].as_str() {
            Some(h) if !h.is_empty() => format!("{from}, {h}"),
            _ => from,
        };
        out.cells(vec![
            format!("  {}", s(&e["type"])),
            s(&e["reason"]),
            age_text,
            from,
            s(&e["message"]).trim().to_string(),
        ]);
    }
    Ok(())
}

/// Age of an RFC 3339 timestamp in kubectl's HumanDuration form (`5s`, `3m2s`, `4h`, `2d3h`).
pub fn age(ts: &str) -> String {
    let Ok(t) = ts.parse::<jiff::Timestamp>() else { return "<unknown>".into() };
    let secs = jiff::Timestamp::now().as_second() - t.as_second();
    human_duration(secs)
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

/// `Mon, 02 Jan 2006 15:04:05 -0700` as kubectl's describe prints times.
fn rfc1123(ts: &str) -> String {
    match ts.parse::<jiff::Timestamp>() {
        Ok(t) => t.strftime("%a, %d %b %Y %H:%M:%S +0000").to_string(),
        Err(_) => ts.to_string(),
    }
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
        assert_eq!(title("clusterIP"), "Cluster I P");
    }
}
