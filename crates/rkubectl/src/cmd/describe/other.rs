//! The remaining kinds kubectl has a describer for that rkube serves: EndpointSlice,
//! PodDisruptionBudget, Role, ClusterRole, RoleBinding, ClusterRoleBinding, StorageClass,
//! IngressClass, PersistentVolume, Ingress and HorizontalPodAutoscaler.

use super::Api;
use super::text::{W, annotations, format_label_selector, format_labels, go_list, labels, put, q, rfc1123z, s, since};
use crate::error::Result;
use serde_json::Value;

/// Describes `obj` when kubectl has a describer for its kind and returns the kind its events
/// are searched by (`Some("")` for a describer without events); `None`, with nothing written,
/// leaves the object to the generic describer.
pub fn describe(w: &mut W, api: &Api, group: &str, kind: &str, obj: &Value) -> Result<Option<&'static str>> {
    Ok(Some(match (group, kind) {
        ("discovery.k8s.io", "EndpointSlice") => {
            endpoint_slice(w, obj);
            "EndpointSlice"
        }
        ("policy", "PodDisruptionBudget") => {
            pdb(w, obj);
            "PodDisruptionBudget"
        }
        ("rbac.authorization.k8s.io", "Role" | "ClusterRole") => {
            role(w, obj);
            ""
        }
        ("rbac.authorization.k8s.io", "RoleBinding" | "ClusterRoleBinding") => {
            binding(w, obj);
            ""
        }
        ("storage.k8s.io", "StorageClass") => {
            storage_class(w, obj);
            "StorageClass"
        }
        ("networking.k8s.io", "IngressClass") => {
            ingress_class(w, obj);
            "IngressClass"
        }
        ("networking.k8s.io", "Ingress") => {
            ingress(w, api, obj);
            "Ingress"
        }
        ("", "PersistentVolume") => {
            persistent_volume(w, obj);
            "PersistentVolume"
        }
        ("autoscaling", "HorizontalPodAutoscaler") => {
            if obj["apiVersion"] == "autoscaling/v1" {
                hpa_v1(w, obj);
            } else {
                hpa_v2(w, obj);
            }
            "HorizontalPodAutoscaler"
        }
        _ => return Ok(None),
    }))
}

fn name_and_meta(w: &mut W, obj: &Value) {
    let m = &obj["metadata"];
    put!(w, 0, "Name:\t{}\n", s(&m["name"]));
    labels(w, "Labels", &m["labels"]);
    annotations(w, "Annotations", &m["annotations"]);
}

fn unset(v: &Value) -> String {
    if v.is_null() { "<unset>".into() } else { s(v) }
}

/// `describeEndpointSliceV1`.
fn endpoint_slice(w: &mut W, eps: &Value) {
    let m = &eps["metadata"];
    put!(w, 0, "Name:\t{}\n", s(&m["name"]));
    put!(w, 0, "Namespace:\t{}\n", s(&m["namespace"]));
    labels(w, "Labels", &m["labels"]);
    annotations(w, "Annotations", &m["annotations"]);
    put!(w, 0, "AddressType:\t{}\n", s(&eps["addressType"]));
    match eps["ports"].as_array().filter(|p| !p.is_empty()) {
        None => put!(w, 0, "Ports: <unset>\n"),
        Some(ports) => {
            put!(w, 0, "Ports:\n");
            put!(w, 1, "Name\tPort\tProtocol\n");
            put!(w, 1, "----\t----\t--------\n");
            for p in ports {
                let name = s(&p["name"]);
                let name = if name.is_empty() { "<unset>".into() } else { name };
                put!(w, 1, "{name}\t{}\t{}\n", unset(&p["port"]), s(&p["protocol"]));
            }
        }
    }
    match eps["endpoints"].as_array().filter(|e| !e.is_empty()) {
        None => put!(w, 0, "Endpoints: <none>\n"),
        Some(endpoints) => {
            put!(w, 0, "Endpoints:\n");
            for e in endpoints {
                let addrs: Vec<String> = e["addresses"].as_array().into_iter().flatten().map(s).collect();
                let addrs = if addrs.is_empty() { "<none>".into() } else { addrs.join(", ") };
                put!(w, 1, "- Addresses:\t{addrs}\n");
                put!(w, 2, "Conditions:\n");
                put!(w, 3, "Ready:\t{}\n", unset(&e["conditions"]["ready"]));
                put!(w, 2, "Hostname:\t{}\n", unset(&e["hostname"]));
                if e["targetRef"].is_object() {
                    put!(w, 2, "TargetRef:\t{}/{}\n", s(&e["targetRef"]["kind"]), s(&e["targetRef"]["name"]));
                }
                put!(w, 2, "NodeName:\t{}\n", unset(&e["nodeName"]));
                put!(w, 2, "Zone:\t{}\n", unset(&e["zone"]));
            }
        }
    }
}

/// `describePodDisruptionBudgetV1`.
fn pdb(w: &mut W, p: &Value) {
    let spec = &p["spec"];
    let st = &p["status"];
    put!(w, 0, "Name:\t{}\n", s(&p["metadata"]["name"]));
    put!(w, 0, "Namespace:\t{}\n", s(&p["metadata"]["namespace"]));
    if !spec["minAvailable"].is_null() {
        put!(w, 0, "Min available:\t{}\n", s(&spec["minAvailable"]));
    } else if !spec["maxUnavailable"].is_null() {
        put!(w, 0, "Max unavailable:\t{}\n", s(&spec["maxUnavailable"]));
    }
    if spec["selector"].is_object() {
        put!(w, 0, "Selector:\t{}\n", format_label_selector(&spec["selector"]));
    } else {
        put!(w, 0, "Selector:\t<unset>\n");
    }
    let n = |f: &str| st[f].as_i64().unwrap_or(0);
    put!(w, 0, "Status:\n");
    put!(w, 2, "Allowed disruptions:\t{}\n", n("disruptionsAllowed"));
    put!(w, 2, "Current:\t{}\n", n("currentHealthy"));
    put!(w, 2, "Desired:\t{}\n", n("desiredHealthy"));
    put!(w, 2, "Total:\t{}\n", n("expectedPods"));
}

/// The Role and ClusterRole describers: rules broken down, compacted and sorted.
fn role(w: &mut W, r: &Value) {
    let rules = crate::policy::rules(r["rules"].as_array().into_iter().flatten());
    name_and_meta(w, r);
    put!(w, 0, "PolicyRule:\n");
    put!(w, 1, "Resources\tNon-Resource URLs\tResource Names\tVerbs\n");
    put!(w, 1, "---------\t-----------------\t--------------\t-----\n");
    for x in &rules {
        let [resource, urls, names, verbs] = x.cells();
        put!(w, 1, "{resource}\t{urls}\t{names}\t{verbs}\n");
    }
}

/// The RoleBinding and ClusterRoleBinding describers.
fn binding(w: &mut W, b: &Value) {
    name_and_meta(w, b);
    put!(w, 0, "Role:\n");
    put!(w, 1, "Kind:\t{}\n", s(&b["roleRef"]["kind"]));
    put!(w, 1, "Name:\t{}\n", s(&b["roleRef"]["name"]));
    put!(w, 0, "Subjects:\n");
    put!(w, 1, "Kind\tName\tNamespace\n");
    put!(w, 1, "----\t----\t---------\n");
    for x in b["subjects"].as_array().into_iter().flatten() {
        put!(w, 1, "{}\t{}\t{}\n", s(&x["kind"]), s(&x["name"]), s(&x["namespace"]));
    }
}

/// `describeStorageClass`.
fn storage_class(w: &mut W, sc: &Value) {
    let a = &sc["metadata"]["annotations"];
    let default = a["storageclass.kubernetes.io/is-default-class"] == "true"
        || a["storageclass.beta.kubernetes.io/is-default-class"] == "true";
    put!(w, 0, "Name:\t{}\n", s(&sc["metadata"]["name"]));
    put!(w, 0, "IsDefaultClass:\t{}\n", if default { "Yes" } else { "No" });
    put!(w, 0, "Annotations:\t{}\n", format_labels(a));
    put!(w, 0, "Provisioner:\t{}\n", s(&sc["provisioner"]));
    put!(w, 0, "Parameters:\t{}\n", format_labels(&sc["parameters"]));
    put!(w, 0, "AllowVolumeExpansion:\t{}\n", super::text::print_bool_ptr(&sc["allowVolumeExpansion"]));
    match sc["mountOptions"].as_array().filter(|o| !o.is_empty()) {
        None => put!(w, 0, "MountOptions:\t<none>\n"),
        Some(opts) => {
            put!(w, 0, "MountOptions:\n");
            for o in opts {
                put!(w, 1, "{}\n", s(o));
            }
        }
    }
    if let Some(p) = sc["reclaimPolicy"].as_str() {
        put!(w, 0, "ReclaimPolicy:\t{p}\n");
    }
    if let Some(m) = sc["volumeBindingMode"].as_str() {
        put!(w, 0, "VolumeBindingMode:\t{m}\n");
    }
    if let Some(topologies) = sc["allowedTopologies"].as_array() {
        put!(w, 0, "AllowedTopologies:\t");
        if topologies.is_empty() {
            put!(w, 0, "<none>\n");
        } else {
            put!(w, 0, "\n");
            for (i, term) in topologies.iter().enumerate() {
                put!(w, 1, "Term {i}:\t");
                // Topology requirements have no operator: they always mean `in`.
                term_requirements(w, 1, &term["matchLabelExpressions"], |_| "in".to_string());
            }
        }
    }
}

/// `describeIngressClassV1`.
fn ingress_class(w: &mut W, ic: &Value) {
    name_and_meta(w, ic);
    put!(w, 0, "Controller:\t{}\n", s(&ic["spec"]["controller"]));
    let p = &ic["spec"]["parameters"];
    if p.is_object() {
        put!(w, 0, "Parameters:\n");
        if let Some(g) = p["apiGroup"].as_str() {
            put!(w, 1, "APIGroup:\t{g}\n");
        }
        put!(w, 1, "Kind:\t{}\n", s(&p["kind"]));
        put!(w, 1, "Name:\t{}\n", s(&p["name"]));
    }
}

/// `describePersistentVolume`.
fn persistent_volume(w: &mut W, pv: &Value) {
    let m = &pv["metadata"];
    let spec = &pv["spec"];
    put!(w, 0, "Name:\t{}\n", s(&m["name"]));
    labels(w, "Labels", &m["labels"]);
    annotations(w, "Annotations", &m["annotations"]);
    put!(w, 0, "Finalizers:\t{}\n", go_list(&m["finalizers"]));
    let class = match m["annotations"]["volume.beta.kubernetes.io/storage-class"].as_str() {
        Some(c) => c.to_string(),
        None => s(&spec["storageClassName"]),
    };
    put!(w, 0, "StorageClass:\t{class}\n");
    if m["deletionTimestamp"].is_null() {
        put!(w, 0, "Status:\t{}\n", s(&pv["status"]["phase"]));
    } else {
        put!(w, 0, "Status:\tTerminating (lasts {})\n", since(&m["deletionTimestamp"]));
    }
    let claim = &spec["claimRef"];
    if claim.is_object() {
        put!(w, 0, "Claim:\t{}/{}\n", s(&claim["namespace"]), s(&claim["name"]));
    } else {
        put!(w, 0, "Claim:\t\n");
    }
    put!(w, 0, "Reclaim Policy:\t{}\n", s(&spec["persistentVolumeReclaimPolicy"]));
    let modes: Vec<String> = spec["accessModes"].as_array().into_iter().flatten().map(s).collect();
    let short: Vec<&str> =
        [("ReadWriteOnce", "RWO"), ("ReadOnlyMany", "ROX"), ("ReadWriteMany", "RWX"), ("ReadWriteOncePod", "RWOP")]
            .iter()
            .filter(|(long, _)| modes.iter().any(|m| m == long))
            .map(|(_, short)| *short)
            .collect();
    put!(w, 0, "Access Modes:\t{}\n", short.join(","));
    if let Some(mode) = spec["volumeMode"].as_str() {
        put!(w, 0, "VolumeMode:\t{mode}\n");
    }
    let storage = &spec["capacity"]["storage"];
    put!(w, 0, "Capacity:\t{}\n", if storage.is_null() { "0".to_string() } else { q(storage) });
    node_affinity(w, &spec["nodeAffinity"]);
    put!(w, 0, "Message:\t{}\n", s(&pv["status"]["message"]));
    put!(w, 0, "Source:\n");
    if let Some(local) = spec.get("local").filter(|l| l.is_object()) {
        put!(w, 2, "Type:\tLocalVolume (a persistent volume backed by local storage on a node)\n");
        put!(w, 0, "    Path:\t{}\n", s(&local["path"]));
    } else if let Some(csi) = spec.get("csi").filter(|c| c.is_object()) {
        put!(w, 2, "Type:\tCSI (a Container Storage Interface (CSI) volume source)\n");
        put!(w, 0, "    Driver:\t{}\n", s(&csi["driver"]));
        put!(w, 0, "    FSType:\t{}\n", s(&csi["fsType"]));
        put!(w, 0, "    VolumeHandle:\t{}\n", s(&csi["volumeHandle"]));
        put!(w, 0, "    ReadOnly:\t{}\n", csi["readOnly"] == true);
        put!(w, 2, "VolumeAttributes:\t");
        let pairs = super::text::sorted_pairs(&csi["volumeAttributes"]);
        if pairs.is_empty() {
            put!(w, 0, "<none>\n");
        }
        for (i, (k, v)) in pairs.iter().enumerate() {
            if i != 0 {
                put!(w, 2, "");
                put!(w, 2, "\t");
            }
            put!(w, 2, "{}\n", super::text::shorten(&format!("{k}={v}"), 140));
        }
    } else {
        super::pod::volume_source(w, spec);
    }
}

/// `printVolumeNodeAffinity`.
fn node_affinity(w: &mut W, affinity: &Value) {
    put!(w, 0, "Node Affinity:\t");
    let required = &affinity["required"];
    if !required.is_object() {
        put!(w, 0, "<none>\n");
        return;
    }
    put!(w, 0, "\n");
    put!(w, 1, "Required Terms:\t");
    let terms = required["nodeSelectorTerms"].as_array().cloned().unwrap_or_default();
    if terms.is_empty() {
        put!(w, 0, "<none>\n");
        return;
    }
    put!(w, 0, "\n");
    for (i, term) in terms.iter().enumerate() {
        put!(w, 2, "Term {i}:\t");
        term_requirements(w, 2, &term["matchExpressions"], |r| s(&r["operator"]).to_lowercase());
    }
}

/// The requirements of one selector term, `key op [values]` each, continuation lines at
/// `level`; `<none>` for a term without any.
fn term_requirements(w: &mut W, level: usize, requirements: &Value, operator: impl Fn(&Value) -> String) {
    let reqs: Vec<&Value> = requirements.as_array().into_iter().flatten().collect();
    if reqs.is_empty() {
        put!(w, 0, "<none>\n");
    }
    for (j, r) in reqs.iter().enumerate() {
        if j != 0 {
            put!(w, level, "\t");
        }
        let values: Vec<String> = r["values"].as_array().into_iter().flatten().map(s).collect();
        let mut text = format!("{} {}", s(&r["key"]), operator(r));
        if !values.is_empty() {
            text = format!("{text} [{}]", values.join(", "));
        }
        put!(w, 0, "{text}\n");
    }
}

/// `describeIngressV1`.
fn ingress(w: &mut W, api: &Api, ing: &Value) {
    let m = &ing["metadata"];
    let spec = &ing["spec"];
    let ns = s(&m["namespace"]);
    put!(w, 0, "Name:\t{}\n", s(&m["name"]));
    labels(w, "Labels", &m["labels"]);
    put!(w, 0, "Namespace:\t{ns}\n");
    let mut addresses: Vec<String> = ing["status"]["loadBalancer"]["ingress"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i["ip"].as_str().filter(|v| !v.is_empty()).or(i["hostname"].as_str().filter(|v| !v.is_empty())))
        .map(str::to_string)
        .collect();
    addresses.sort();
    addresses.dedup();
    put!(w, 0, "Address:\t{}\n", addresses.join(","));
    put!(w, 0, "Ingress Class:\t{}\n", spec["ingressClassName"].as_str().unwrap_or("<none>"));
    let default = if spec["defaultBackend"].is_object() {
        backend(api, &ns, &spec["defaultBackend"])
    } else {
        "<default>".to_string()
    };
    put!(w, 0, "Default backend:\t{default}\n");
    if let Some(tls) = spec["tls"].as_array().filter(|t| !t.is_empty()) {
        put!(w, 0, "TLS:\n");
        for t in tls {
            let hosts: Vec<String> = t["hosts"].as_array().into_iter().flatten().map(s).collect();
            match t["secretName"].as_str().filter(|v| !v.is_empty()) {
                None => put!(w, 1, "SNI routes {}\n", hosts.join(",")),
                Some(secret) => put!(w, 1, "{secret} terminates {}\n", hosts.join(",")),
            }
        }
    }
    put!(w, 0, "Rules:\n  Host\tPath\tBackends\n");
    put!(w, 1, "----\t----\t--------\n");
    let mut count = 0;
    for rule in spec["rules"].as_array().into_iter().flatten() {
        if !rule["http"].is_object() {
            continue;
        }
        count += 1;
        let host = rule["host"].as_str().filter(|h| !h.is_empty()).unwrap_or("*");
        put!(w, 1, "{host}\t\n");
        for p in rule["http"]["paths"].as_array().into_iter().flatten() {
            put!(w, 2, "\t{} \t{}\n", s(&p["path"]), backend(api, &ns, &p["backend"]));
        }
    }
    if count == 0 {
        put!(w, 1, "*\t*\t{default}\n");
    }
    annotations(w, "Annotations", &m["annotations"]);
}

/// `describeBackendV1`: `service:port (endpoints)` or the resource it points at.
fn backend(api: &Api, ns: &str, b: &Value) -> String {
    let svc = &b["service"];
    if svc.is_object() {
        let name = s(&svc["name"]);
        let number = svc["port"]["number"].as_i64().unwrap_or(0);
        let port_name = s(&svc["port"]["name"]);
        let text = if number != 0 { format!("{name}:{number}") } else { format!("{name}:{port_name}") };
        let selector = format!("kubernetes.io/service-name={name}");
        let slices = match api
            .list(&format!("/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices"), &[("labelSelector", &selector)])
        {
            Ok(l) => l,
            Err(e) => return format!("{text} (<error: {}>)", error_text(&e)),
        };
        let service = match api.get(&format!("/api/v1/namespaces/{ns}/services/{name}")) {
            Ok(v) => v,
            Err(e) => return format!("{text} (<error: {}>)", error_text(&e)),
        };
        let mut sp_name = String::new();
        for sp in service["spec"]["ports"].as_array().into_iter().flatten() {
            if (number != 0 && sp["port"].as_i64() == Some(number))
                || (!port_name.is_empty() && s(&sp["name"]) == port_name)
            {
                sp_name = s(&sp["name"]);
            }
        }
        return format!("{text} ({})", super::core::slice_endpoints(&slices, &sp_name));
    }
    let r = &b["resource"];
    if r.is_object() {
        let group = r["apiGroup"].as_str().unwrap_or("<none>");
        return format!("APIGroup: {group}, Kind: {}, Name: {}", s(&r["kind"]), s(&r["name"]));
    }
    String::new()
}

/// What client-go's error prints: the Status message for API errors.
fn error_text(e: &crate::error::Error) -> String {
    e.api().map(|a| a.message.clone()).unwrap_or_else(|| e.to_string())
}

/// A quantity field, `<nil>` when unset (Go's `(*Quantity).String()` of nil).
fn qn(v: &Value) -> String {
    if v.is_null() { "<nil>".into() } else { q(v) }
}

/// Go's `%q` of a plain string.
fn quoted(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_default()
}

/// `describeHorizontalPodAutoscalerV2`.
fn hpa_v2(w: &mut W, hpa: &Value) {
    let m = &hpa["metadata"];
    let spec = &hpa["spec"];
    let st = &hpa["status"];
    put!(w, 0, "Name:\t{}\n", s(&m["name"]));
    put!(w, 0, "Namespace:\t{}\n", s(&m["namespace"]));
    labels(w, "Labels", &m["labels"]);
    annotations(w, "Annotations", &m["annotations"]);
    put!(w, 0, "CreationTimestamp:\t{}\n", rfc1123z(&m["creationTimestamp"]));
    let target = &spec["scaleTargetRef"];
    put!(w, 0, "Reference:\t{}/{}\n", s(&target["kind"]), s(&target["name"]));
    put!(w, 0, "Metrics:\t( current / target )\n");
    let current = st["currentMetrics"].as_array().cloned().unwrap_or_default();
    for (i, metric) in spec["metrics"].as_array().into_iter().flatten().enumerate() {
        let cur = current.get(i).cloned().unwrap_or(Value::Null);
        match metric["type"].as_str().unwrap_or("") {
            "External" => {
                let ext = &metric["external"];
                let name = quoted(&s(&ext["metric"]["name"]));
                if !ext["target"]["averageValue"].is_null() {
                    let c = &cur["external"]["current"]["averageValue"];
                    let c = if cur["external"].is_object() && !c.is_null() { q(c) } else { "<unknown>".into() };
                    put!(w, 1, "{name} (target average value):\t{c} / {}\n", qn(&ext["target"]["averageValue"]));
                } else {
                    let c = if cur["external"].is_object() {
                        qn(&cur["external"]["current"]["value"])
                    } else {
                        "<unknown>".into()
                    };
                    put!(w, 1, "{name} (target value):\t{c} / {}\n", qn(&ext["target"]["value"]));
                }
            }
            "Pods" => {
                let pods = &metric["pods"];
                let c = if cur["pods"].is_object() {
                    qn(&cur["pods"]["current"]["averageValue"])
                } else {
                    "<unknown>".into()
                };
                put!(
                    w,
                    1,
                    "{} on pods:\t{c} / {}\n",
                    quoted(&s(&pods["metric"]["name"])),
                    qn(&pods["target"]["averageValue"])
                );
            }
            "Object" => {
                let obj = &metric["object"];
                put!(
                    w,
                    1,
                    "\"{}\" on {}/{} ",
                    s(&obj["metric"]["name"]),
                    s(&obj["describedObject"]["kind"]),
                    s(&obj["describedObject"]["name"])
                );
                let have = cur["object"].is_object();
                if obj["target"]["type"] == "AverageValue" {
                    let c = if have { qn(&cur["object"]["current"]["averageValue"]) } else { "<unknown>".into() };
                    put!(w, 0, "(target average value):\t{c} / {}\n", qn(&obj["target"]["averageValue"]));
                } else {
                    let c = if have { qn(&cur["object"]["current"]["value"]) } else { "<unknown>".into() };
                    put!(w, 0, "(target value):\t{c} / {}\n", qn(&obj["target"]["value"]));
                }
            }
            kind @ ("Resource" | "ContainerResource") => {
                let field = if kind == "Resource" { "resource" } else { "containerResource" };
                let r = &metric[field];
                if kind == "Resource" {
                    put!(w, 1, "resource {} on pods", s(&r["name"]));
                } else {
                    put!(w, 1, "resource {} of container \"{}\" on pods", s(&r["name"]), s(&r["container"]));
                }
                let have = cur[field].is_object();
                if !r["target"]["averageValue"].is_null() {
                    let c = if have { qn(&cur[field]["current"]["averageValue"]) } else { "<unknown>".into() };
                    put!(w, 0, ":\t{c} / {}\n", q(&r["target"]["averageValue"]));
                } else {
                    let util = &cur[field]["current"]["averageUtilization"];
                    let c = if have && !util.is_null() {
                        format!("{}% ({})", s(util), qn(&cur[field]["current"]["averageValue"]))
                    } else {
                        "<unknown>".into()
                    };
                    let t = match r["target"]["averageUtilization"].as_i64() {
                        Some(u) => format!("{u}%"),
                        None => "<auto>".into(),
                    };
                    put!(w, 1, "(as a percentage of request):\t{c} / {t}\n");
                }
            }
            other => put!(w, 1, "<unknown metric type {}>\n", quoted(other)),
        }
    }
    put!(w, 0, "Min replicas:\t{}\n", unset(&spec["minReplicas"]));
    put!(w, 0, "Max replicas:\t{}\n", spec["maxReplicas"].as_i64().unwrap_or(0));
    let behavior = &spec["behavior"];
    if behavior.is_object() {
        put!(w, 0, "Behavior:\n");
        for (field, title) in [("scaleUp", "Scale Up"), ("scaleDown", "Scale Down")] {
            let rules = &behavior[field];
            if !rules.is_object() {
                continue;
            }
            put!(w, 1, "{title}:\n");
            if let Some(secs) = rules["stabilizationWindowSeconds"].as_i64() {
                put!(w, 2, "Stabilization Window: {secs} seconds\n");
            }
            if let Some(policies) = rules["policies"].as_array().filter(|p| !p.is_empty()) {
                put!(w, 2, "Select Policy: {}\n", rules["selectPolicy"].as_str().unwrap_or("Max"));
                put!(w, 2, "Policies:\n");
                for p in policies {
                    put!(
                        w,
                        3,
                        "- Type: {}\tValue: {}\tPeriod: {} seconds\n",
                        s(&p["type"]),
                        p["value"].as_i64().unwrap_or(0),
                        p["periodSeconds"].as_i64().unwrap_or(0)
                    );
                }
            }
        }
    }
    put!(w, 0, "{} pods:\t", s(&target["kind"]));
    put!(
        w,
        0,
        "{} current / {} desired\n",
        st["currentReplicas"].as_i64().unwrap_or(0),
        st["desiredReplicas"].as_i64().unwrap_or(0)
    );
    if let Some(conds) = st["conditions"].as_array().filter(|c| !c.is_empty()) {
        put!(w, 0, "Conditions:\n");
        put!(w, 1, "Type\tStatus\tReason\tMessage\n");
        put!(w, 1, "----\t------\t------\t-------\n");
        for c in conds {
            put!(w, 1, "{}\t{}\t{}\t{}\n", s(&c["type"]), s(&c["status"]), s(&c["reason"]), s(&c["message"]));
        }
    }
}

/// `describeHorizontalPodAutoscalerV1`.
fn hpa_v1(w: &mut W, hpa: &Value) {
    let m = &hpa["metadata"];
    let spec = &hpa["spec"];
    let st = &hpa["status"];
    put!(w, 0, "Name:\t{}\n", s(&m["name"]));
    put!(w, 0, "Namespace:\t{}\n", s(&m["namespace"]));
    labels(w, "Labels", &m["labels"]);
    annotations(w, "Annotations", &m["annotations"]);
    put!(w, 0, "CreationTimestamp:\t{}\n", rfc1123z(&m["creationTimestamp"]));
    let target = &spec["scaleTargetRef"];
    put!(w, 0, "Reference:\t{}/{}\n", s(&target["kind"]), s(&target["name"]));
    if let Some(t) = spec["targetCPUUtilizationPercentage"].as_i64() {
        put!(w, 0, "Target CPU utilization:\t{t}%\n");
        let c = st["currentCPUUtilizationPercentage"].as_i64().map(|c| c.to_string());
        put!(w, 0, "Current CPU utilization:\t{}%\n", c.unwrap_or_else(|| "<unknown>".into()));
    }
    put!(w, 0, "Min replicas:\t{}\n", unset(&spec["minReplicas"]));
    put!(w, 0, "Max replicas:\t{}\n", spec["maxReplicas"].as_i64().unwrap_or(0));
    put!(w, 0, "{} pods:\t", s(&target["kind"]));
    put!(
        w,
        0,
        "{} current / {} desired\n",
        st["currentReplicas"].as_i64().unwrap_or(0),
        st["desiredReplicas"].as_i64().unwrap_or(0)
    );
}
