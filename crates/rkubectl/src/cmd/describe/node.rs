//! Nodes: roles, taints, the node's Lease, conditions, addresses, capacity, system info, the
//! non-terminated pods with their requests and limits as shares of allocatable, and the totals.

use super::Api;
use super::quantity::Quantity;
use super::text::{W, annotations, labels, put, q, rfc1123z, s, since, sorted_keys, taints};
use crate::error::Result;
use serde_json::Value;
use std::collections::BTreeMap;

/// `describeNode` (events are appended by the caller).
pub fn node(w: &mut W, api: &Api, n: &Value) -> Result<()> {
    let m = &n["metadata"];
    let spec = &n["spec"];
    let st = &n["status"];
    let name = s(&m["name"]);
    let selector = format!("spec.nodeName={name},status.phase!=Succeeded,status.phase!=Failed");
    let pods = match api.list("/api/v1/pods", &[("fieldSelector", &selector)]) {
        Ok(p) => Some(p),
        Err(e) if e.api().is_some_and(|a| a.code == 403) => None,
        Err(e) => return Err(e),
    };
    put!(w, 0, "Name:\t{name}\n");
    let roles = roles(&m["labels"]);
    put!(w, 0, "Roles:\t{}\n", if roles.is_empty() { "<none>".into() } else { roles.join(",") });
    labels(w, "Labels", &m["labels"]);
    annotations(w, "Annotations", &m["annotations"]);
    put!(w, 0, "CreationTimestamp:\t{}\n", rfc1123z(&m["creationTimestamp"]));
    taints(w, "Taints", &spec["taints"]);
    put!(w, 0, "Unschedulable:\t{}\n", spec["unschedulable"] == true);
    match api.get(&format!("/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{name}")) {
        Ok(lease) => {
            let ls = &lease["spec"];
            let or_unset = |v: &Value, time: bool| match v {
                Value::Null => "<unset>".to_string(),
                v if time => rfc1123z(v),
                v => s(v),
            };
            put!(w, 0, "Lease:\n");
            put!(w, 1, "HolderIdentity:\t{}\n", or_unset(&ls["holderIdentity"], false));
            put!(w, 1, "AcquireTime:\t{}\n", or_unset(&ls["acquireTime"], true));
            put!(w, 1, "RenewTime:\t{}\n", or_unset(&ls["renewTime"], true));
        }
        Err(e) => {
            let text = e.api().map(|a| a.message.clone()).unwrap_or_else(|| e.to_string());
            put!(w, 0, "Lease:\tFailed to get lease: {text}\n");
        }
    }
    if let Some(conds) = st["conditions"].as_array().filter(|c| !c.is_empty()) {
        put!(w, 0, "Conditions:\n  Type\tStatus\tLastHeartbeatTime\tLastTransitionTime\tReason\tMessage\n");
        put!(w, 1, "----\t------\t-----------------\t------------------\t------\t-------\n");
        for c in conds {
            put!(
                w,
                1,
                "{} \t{} \t{} \t{} \t{} \t{}\n",
                s(&c["type"]),
                s(&c["status"]),
                rfc1123z(&c["lastHeartbeatTime"]),
                rfc1123z(&c["lastTransitionTime"]),
                s(&c["reason"]),
                s(&c["message"])
            );
        }
    }
    put!(w, 0, "Addresses:\n");
    for a in st["addresses"].as_array().into_iter().flatten() {
        put!(w, 1, "{}:\t{}\n", s(&a["type"]), s(&a["address"]));
    }
    for (field, title) in [("capacity", "Capacity"), ("allocatable", "Allocatable")] {
        let Some(list) = st[field].as_object().filter(|l| !l.is_empty()) else { continue };
        put!(w, 0, "{title}:\n");
        for k in sorted_keys(list) {
            put!(w, 0, "  {k}:\t{}\n", q(&list[k.as_str()]));
        }
    }
    let info = &st["nodeInfo"];
    put!(w, 0, "System Info:\n");
    for (field, title) in [
        ("machineID", "Machine ID"),
        ("systemUUID", "System UUID"),
        ("bootID", "Boot ID"),
        ("kernelVersion", "Kernel Version"),
        ("osImage", "OS Image"),
        ("operatingSystem", "Operating System"),
        ("architecture", "Architecture"),
        ("containerRuntimeVersion", "Container Runtime Version"),
        ("kubeletVersion", "Kubelet Version"),
        ("kubeProxyVersion", "Kube-Proxy Version"),
    ] {
        put!(w, 0, "  {title}:\t{}\n", s(&info[field]));
    }
    if let Some(cidr) = spec["podCIDR"].as_str().filter(|c| !c.is_empty()) {
        put!(w, 0, "PodCIDR:\t{cidr}\n");
    }
    let cidrs: Vec<String> = spec["podCIDRs"].as_array().into_iter().flatten().map(s).collect();
    if !cidrs.is_empty() {
        put!(w, 0, "PodCIDRs:\t{}\n", cidrs.join(","));
    }
    if let Some(id) = spec["providerID"].as_str().filter(|c| !c.is_empty()) {
        put!(w, 0, "ProviderID:\t{id}\n");
    }
    match pods {
        Some(pods) => node_resources(w, n, &pods),
        None => put!(w, 0, "Pods:\tnot authorized\n"),
    }
    Ok(())
}

/// `findNodeRoles`: `node-role.kubernetes.io/<role>` keys and `kubernetes.io/role` values.
fn roles(labels: &Value) -> Vec<String> {
    let mut roles: Vec<String> = Vec::new();
    for (k, v) in labels.as_object().into_iter().flatten() {
        if let Some(role) = k.strip_prefix("node-role.kubernetes.io/").filter(|r| !r.is_empty()) {
            roles.push(role.to_string());
        } else if k == "kubernetes.io/role" && !s(v).is_empty() {
            roles.push(s(v));
        }
    }
    roles.sort();
    roles.dedup();
    roles
}

type Resources = BTreeMap<String, Quantity>;

fn add_list(into: &mut Resources, list: &Value) {
    for (k, v) in list.as_object().into_iter().flatten() {
        let Some(qv) = Quantity::parse(&s(v)) else { continue };
        match into.get_mut(k) {
            Some(existing) => existing.add(&qv),
            None => {
                into.insert(k.clone(), qv);
            }
        }
    }
}

fn max_list(into: &mut Resources, other: &Resources) {
    for (k, v) in other {
        match into.get_mut(k) {
            Some(existing) if existing.nanos >= v.nanos => {}
            _ => {
                into.insert(k.clone(), *v);
            }
        }
    }
}

/// `PodRequests` / `PodLimits`: containers summed, restartable init containers added, the
/// largest one-shot init container (plus the sidecars started before it) as a floor, pod-level
/// resources overriding, the overhead added.
fn pod_resources(p: &Value, field: &str) -> Resources {
    let spec = &p["spec"];
    let mut total = Resources::new();
    for c in spec["containers"].as_array().into_iter().flatten() {
        add_list(&mut total, &c["resources"][field]);
    }
    let mut sidecars = Resources::new();
    let mut init_floor = Resources::new();
    for c in spec["initContainers"].as_array().into_iter().flatten() {
        let own = &c["resources"][field];
        let this = if c["restartPolicy"] == "Always" {
            add_list(&mut total, own);
            add_list(&mut sidecars, own);
            sidecars.clone()
        } else {
            let mut tmp = Resources::new();
            add_list(&mut tmp, own);
            for (k, v) in &sidecars {
                tmp.entry(k.clone()).or_default().add(v);
            }
            tmp
        };
        max_list(&mut init_floor, &this);
    }
    max_list(&mut total, &init_floor);
    for (k, v) in spec["resources"][field].as_object().into_iter().flatten() {
        if (k == "cpu" || k == "memory")
            && let Some(qv) = Quantity::parse(&s(v))
        {
            total.insert(k.clone(), qv);
        }
    }
    for (k, v) in spec["overhead"].as_object().into_iter().flatten() {
        let Some(qv) = Quantity::parse(&s(v)) else { continue };
        if field == "requests" {
            total.entry(k.clone()).or_default().add(&qv);
        } else if let Some(existing) = total.get_mut(k) {
            existing.add(&qv);
        }
    }
    total
}

/// Go's `int64(float64(a) / float64(b) * 100)`, including what amd64 makes of NaN and ±Inf.
fn percent(a: i128, b: i128) -> i64 {
    let f = a as f64 / b as f64 * 100.0;
    if f.is_finite() && f.abs() < 9.2e18 { f as i64 } else { i64::MIN }
}

fn guarded_percent(a: i128, b: i128) -> i64 {
    if b == 0 { 0 } else { percent(a, b) }
}

/// `describeNodeResource`.
fn node_resources(w: &mut W, n: &Value, pods: &[Value]) {
    let st = &n["status"];
    let alloc_json =
        if st["allocatable"].as_object().is_some_and(|a| !a.is_empty()) { &st["allocatable"] } else { &st["capacity"] };
    let mut alloc = Resources::new();
    add_list(&mut alloc, alloc_json);
    let get = |r: &Resources, k: &str| r.get(k).copied().unwrap_or_default();
    let cpu_alloc = get(&alloc, "cpu").milli_value();
    let mem_alloc = get(&alloc, "memory").value();
    put!(w, 0, "Non-terminated Pods:\t({} in total)\n", pods.len());
    put!(w, 1, "Namespace\tName\t\tCPU Requests\tCPU Limits\tMemory Requests\tMemory Limits\tAge\n");
    put!(w, 1, "---------\t----\t\t------------\t----------\t---------------\t-------------\t---\n");
    let mut reqs = Resources::new();
    let mut limits = Resources::new();
    for p in pods {
        let r = pod_resources(p, "requests");
        let l = pod_resources(p, "limits");
        let (cr, cl, mr, ml) = (get(&r, "cpu"), get(&l, "cpu"), get(&r, "memory"), get(&l, "memory"));
        put!(
            w,
            1,
            "{}\t{}\t\t{} ({}%)\t{} ({}%)\t{} ({}%)\t{} ({}%)\t{}\n",
            s(&p["metadata"]["namespace"]),
            s(&p["metadata"]["name"]),
            cr.canonical(),
            percent(cr.milli_value(), cpu_alloc),
            cl.canonical(),
            percent(cl.milli_value(), cpu_alloc),
            mr.canonical(),
            percent(mr.value(), mem_alloc),
            ml.canonical(),
            percent(ml.value(), mem_alloc),
            since(&p["metadata"]["creationTimestamp"])
        );
        for (k, v) in &r {
            reqs.entry(k.clone()).or_default().add(v);
        }
        for (k, v) in &l {
            limits.entry(k.clone()).or_default().add(v);
        }
    }
    put!(w, 0, "Allocated resources:\n  (Total limits may be over 100 percent, i.e., overcommitted.)\n");
    put!(w, 1, "Resource\tRequests\tLimits\n");
    put!(w, 1, "--------\t--------\t------\n");
    let eph_alloc = get(&alloc, "ephemeral-storage").value();
    for (name, total_alloc, milli) in
        [("cpu", cpu_alloc, true), ("memory", mem_alloc, false), ("ephemeral-storage", eph_alloc, false)]
    {
        let (r, l) = (get(&reqs, name), get(&limits, name));
        let (rv, lv) = if milli { (r.milli_value(), l.milli_value()) } else { (r.value(), l.value()) };
        put!(
            w,
            1,
            "{name}\t{} ({}%)\t{} ({}%)\n",
            r.canonical(),
            guarded_percent(rv, total_alloc),
            l.canonical(),
            guarded_percent(lv, total_alloc)
        );
    }
    let mut huge: Vec<&String> = Vec::new();
    let mut extended: Vec<&String> = Vec::new();
    for k in alloc.keys() {
        if k.starts_with("hugepages-") {
            huge.push(k);
        } else if !matches!(k.as_str(), "cpu" | "memory" | "ephemeral-storage" | "pods") {
            extended.push(k);
        }
    }
    for k in huge {
        let (r, l, a) = (get(&reqs, k), get(&limits, k), get(&alloc, k).value());
        put!(
            w,
            1,
            "{k}\t{} ({}%)\t{} ({}%)\n",
            r.canonical(),
            guarded_percent(r.value(), a),
            l.canonical(),
            guarded_percent(l.value(), a)
        );
    }
    for k in extended {
        put!(w, 1, "{k}\t{}\t{}\n", get(&reqs, k).canonical(), get(&limits, k).canonical());
    }
}
