//! Core kinds without pods of their own: Service, Endpoints, Namespace (with its quotas and
//! limit ranges), ConfigMap, Secret (sizes, never values), ServiceAccount and
//! PersistentVolumeClaim.

use super::Api;
use super::quantity::Quantity;
use super::text::{W, annotations, format_labels, go_list, labels, put, q, rfc1123z, s, since, sorted_keys};
use crate::error::Result;
use base64::Engine as _;
use serde_json::Value;

fn header(w: &mut W, obj: &Value) {
    put!(w, 0, "Name:\t{}\n", s(&obj["metadata"]["name"]));
    put!(w, 0, "Namespace:\t{}\n", s(&obj["metadata"]["namespace"]));
}

/// `describeService`, its endpoints read from the EndpointSlices labelled with its name.
pub fn service(w: &mut W, api: &Api, svc: &Value) {
    let m = &svc["metadata"];
    let spec = &svc["spec"];
    let ns = s(&m["namespace"]);
    let slices = api
        .list(
            &format!("/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices"),
            &[("labelSelector", &format!("kubernetes.io/service-name={}", s(&m["name"])))],
        )
        .unwrap_or_default();
    header(w, svc);
    labels(w, "Labels", &m["labels"]);
    annotations(w, "Annotations", &m["annotations"]);
    put!(w, 0, "Selector:\t{}\n", format_labels(&spec["selector"]));
    put!(w, 0, "Type:\t{}\n", s(&spec["type"]));
    if !spec["ipFamilyPolicy"].is_null() {
        put!(w, 0, "IP Family Policy:\t{}\n", s(&spec["ipFamilyPolicy"]));
    }
    let joined = |v: &Value, sep: &str| v.as_array().into_iter().flatten().map(s).collect::<Vec<_>>().join(sep);
    let families = joined(&spec["ipFamilies"], ",");
    put!(w, 0, "IP Families:\t{}\n", if families.is_empty() { "<none>".into() } else { families });
    put!(w, 0, "IP:\t{}\n", s(&spec["clusterIP"]));
    let ips = joined(&spec["clusterIPs"], ",");
    put!(w, 0, "IPs:\t{}\n", if ips.is_empty() { "<none>".into() } else { ips });
    let external = joined(&spec["externalIPs"], ",");
    if !external.is_empty() {
        put!(w, 0, "External IPs:\t{external}\n");
    }
    if let Some(ip) = spec["loadBalancerIP"].as_str().filter(|v| !v.is_empty()) {
        put!(w, 0, "Desired LoadBalancer IP:\t{ip}\n");
    }
    if let Some(name) = spec["externalName"].as_str().filter(|v| !v.is_empty()) {
        put!(w, 0, "External Name:\t{name}\n");
    }
    let ingress: Vec<String> = svc["status"]["loadBalancer"]["ingress"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|i| match i["ip"].as_str().filter(|v| !v.is_empty()) {
            Some(ip) if i["ipMode"].is_string() => format!("{ip} ({})", s(&i["ipMode"])),
            Some(ip) => ip.to_string(),
            None => s(&i["hostname"]),
        })
        .collect();
    if !ingress.is_empty() {
        put!(w, 0, "LoadBalancer Ingress:\t{}\n", ingress.join(", "));
    }
    for p in spec["ports"].as_array().into_iter().flatten() {
        let port_name = s(&p["name"]);
        let name = if port_name.is_empty() { "<unset>".to_string() } else { port_name.clone() };
        let proto = s(&p["protocol"]);
        put!(w, 0, "Port:\t{name}\t{}/{proto}\n", p["port"].as_i64().unwrap_or(0));
        put!(w, 0, "TargetPort:\t{}/{proto}\n", s(&p["targetPort"]));
        if let Some(app) = p["appProtocol"].as_str() {
            put!(w, 0, "AppProtocol:\t{app}\n");
        }
        if let Some(np) = p["nodePort"].as_i64().filter(|v| *v != 0) {
            put!(w, 0, "NodePort:\t{name}\t{np}/{proto}\n");
        }
        put!(w, 0, "Endpoints:\t{}\n", slice_endpoints(&slices, &port_name));
    }
    put!(w, 0, "Session Affinity:\t{}\n", s(&spec["sessionAffinity"]));
    if let Some(p) = spec["externalTrafficPolicy"].as_str().filter(|v| !v.is_empty()) {
        put!(w, 0, "External Traffic Policy:\t{p}\n");
    }
    if let Some(p) = spec["internalTrafficPolicy"].as_str() {
        put!(w, 0, "Internal Traffic Policy:\t{p}\n");
    }
    if let Some(p) = spec["healthCheckNodePort"].as_i64().filter(|v| *v != 0) {
        put!(w, 0, "HealthCheck NodePort:\t{p}\n");
    }
    let ranges = joined(&spec["loadBalancerSourceRanges"], ",");
    if !ranges.is_empty() {
        put!(w, 0, "LoadBalancer Source Ranges:\t{ranges}\n");
    }
    if let Some(t) = spec["trafficDistribution"].as_str() {
        put!(w, 0, "Traffic Distribution:\t{t}\n");
    }
}

/// `formatEndpointSlices` for one service port: ready `ip:port` pairs, at most three and a
/// count of the rest.
pub fn slice_endpoints(slices: &[Value], port_name: &str) -> String {
    if slices.is_empty() {
        return "<none>".into();
    }
    const MAX: usize = 3;
    let mut list: Vec<String> = Vec::new();
    let mut more = false;
    let mut count = 0usize;
    for slice in slices {
        let endpoints: Vec<&Value> = slice["endpoints"].as_array().into_iter().flatten().collect();
        let ready = |e: &Value| e["conditions"]["ready"] != false;
        let ports: Vec<&Value> = slice["ports"].as_array().into_iter().flatten().collect();
        if ports.is_empty() {
            for e in &endpoints {
                if list.len() == MAX {
                    more = true;
                }
                if !ready(e) {
                    continue;
                }
                if !more {
                    list.push(s(&e["addresses"][0]));
                }
                count += 1;
            }
            continue;
        }
        for port in ports {
            if s(&port["name"]) != port_name {
                continue;
            }
            for e in &endpoints {
                if list.len() == MAX {
                    more = true;
                }
                if !ready(e) {
                    continue;
                }
                if !more {
                    let addr = s(&e["addresses"][0]);
                    let num = port["port"].as_i64().unwrap_or(0);
                    list.push(if addr.contains(':') { format!("[{addr}]:{num}") } else { format!("{addr}:{num}") });
                }
                count += 1;
            }
        }
    }
    let text = list.join(",");
    if more { format!("{text} + {} more...", count.saturating_sub(MAX)) } else { text }
}

/// `describeEndpoints`.
pub fn endpoints(w: &mut W, ep: &Value) {
    let m = &ep["metadata"];
    header(w, ep);
    labels(w, "Labels", &m["labels"]);
    annotations(w, "Annotations", &m["annotations"]);
    put!(w, 0, "Subsets:\n");
    for subset in ep["subsets"].as_array().into_iter().flatten() {
        let ips = |field: &str| {
            let list: Vec<String> = subset[field].as_array().into_iter().flatten().map(|a| s(&a["ip"])).collect();
            if list.is_empty() { "<none>".to_string() } else { list.join(",") }
        };
        put!(w, 1, "Addresses:\t{}\n", ips("addresses"));
        put!(w, 1, "NotReadyAddresses:\t{}\n", ips("notReadyAddresses"));
        if let Some(ports) = subset["ports"].as_array().filter(|p| !p.is_empty()) {
            put!(w, 1, "Ports:\n");
            put!(w, 2, "Name\tPort\tProtocol\n");
            put!(w, 2, "----\t----\t--------\n");
            for p in ports {
                let name = s(&p["name"]);
                let name = if name.is_empty() { "<unset>".into() } else { name };
                put!(w, 2, "{name}\t{}\t{}\n", p["port"].as_i64().unwrap_or(0), s(&p["protocol"]));
            }
        }
        put!(w, 0, "\n");
    }
}

/// `describeNamespace`, quotas and limit ranges omitted when the server serves neither.
pub fn namespace(w: &mut W, api: &Api, ns: &Value) -> Result<()> {
    let name = s(&ns["metadata"]["name"]);
    let optional = |path: String| match api.list(&path, &[]) {
        Ok(items) => Ok(Some(items)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    };
    let quotas = optional(format!("/api/v1/namespaces/{name}/resourcequotas"))?;
    let limit_ranges = optional(format!("/api/v1/namespaces/{name}/limitranges"))?;
    let m = &ns["metadata"];
    put!(w, 0, "Name:\t{name}\n");
    labels(w, "Labels", &m["labels"]);
    annotations(w, "Annotations", &m["annotations"]);
    put!(w, 0, "Status:\t{}\n", s(&ns["status"]["phase"]));
    if let Some(conds) = ns["status"]["conditions"].as_array().filter(|c| !c.is_empty()) {
        put!(w, 0, "Conditions:\n");
        put!(w, 1, "Type\tStatus\tLastTransitionTime\tReason\tMessage\n");
        put!(w, 1, "----\t------\t------------------\t------\t-------\n");
        for c in conds {
            put!(
                w,
                1,
                "{}\t{}\t{}\t{}\t{}\n",
                s(&c["type"]),
                s(&c["status"]),
                rfc1123z(&c["lastTransitionTime"]),
                s(&c["reason"]),
                s(&c["message"])
            );
        }
    }
    if let Some(mut quotas) = quotas {
        put!(w, 0, "\n");
        if quotas.is_empty() {
            put!(w, 0, "No resource quota.\n");
        } else {
            quotas.sort_by_key(|r| s(&r["metadata"]["name"]));
            put!(w, 0, "Resource Quotas\n");
            for rq in &quotas {
                quota_body(w, rq);
            }
        }
    }
    if let Some(ranges) = limit_ranges {
        put!(w, 0, "\n");
        if ranges.is_empty() {
            put!(w, 0, "No LimitRange resource.\n");
        } else {
            put!(
                w,
                0,
                "Resource Limits\n Type\tResource\tMin\tMax\tDefault Request\tDefault Limit\tMax Limit/Request Ratio\n"
            );
            put!(w, 0, " ----\t--------\t---\t---\t---------------\t-------------\t-----------------------\n");
            for lr in &ranges {
                limit_range_rows(w, lr, " ");
            }
        }
    }
    Ok(())
}

const SCOPE_HELP: [(&str, &str); 4] = [
    (
        "Terminating",
        "Matches all pods that have an active deadline. These pods have a limited lifespan on a node before being actively terminated by the system.",
    ),
    (
        "NotTerminating",
        "Matches all pods that do not have an active deadline. These pods usually include long running pods whose container command is not expected to terminate.",
    ),
    (
        "BestEffort",
        "Matches all pods that do not have resource requirements set. These pods have a best effort quality of service.",
    ),
    (
        "NotBestEffort",
        "Matches all pods that have at least one resource requirement set. These pods have a burstable or guaranteed quality of service.",
    ),
];

fn quota_body(w: &mut W, rq: &Value) {
    put!(w, 1, "Name:\t{}\n", s(&rq["metadata"]["name"]));
    let mut scopes: Vec<String> = rq["spec"]["scopes"].as_array().into_iter().flatten().map(s).collect();
    if !scopes.is_empty() {
        scopes.sort();
        put!(w, 1, "Scopes:\t{}\n", scopes.join(", "));
        for scope in &scopes {
            if let Some((_, help)) = SCOPE_HELP.iter().find(|(k, _)| k == scope) {
                put!(w, 1, "* {help}\n");
            }
        }
    }
    put!(w, 1, "Resource\tUsed\tHard\n");
    put!(w, 1, "--------\t---\t---\n");
    let hard = &rq["status"]["hard"];
    for k in hard.as_object().map(sorted_keys).unwrap_or_default() {
        let used = &rq["status"]["used"][k.as_str()];
        let used = if used.is_null() { "0".to_string() } else { q(used) };
        put!(w, 1, "{k}\t{used}\t{}\n", q(&hard[k.as_str()]));
    }
}

fn limit_range_rows(w: &mut W, lr: &Value, prefix: &str) {
    for item in lr["spec"]["limits"].as_array().into_iter().flatten() {
        let mut names: Vec<&String> = Vec::new();
        for field in ["max", "min", "default", "defaultRequest", "maxLimitRequestRatio"] {
            for k in item[field].as_object().into_iter().flatten().map(|(k, _)| k) {
                if !names.contains(&k) {
                    names.push(k);
                }
            }
        }
        names.sort();
        for k in names {
            let cell = |field: &str| {
                let v = &item[field][k.as_str()];
                if v.is_null() { "-".to_string() } else { q(v) }
            };
            put!(
                w,
                0,
                "{prefix}{}\t{k}\t{}\t{}\t{}\t{}\t{}\n",
                s(&item["type"]),
                cell("min"),
                cell("max"),
                cell("defaultRequest"),
                cell("default"),
                cell("maxLimitRequestRatio")
            );
        }
    }
}

/// `ConfigMapDescriber`: every data value in full, binary data as sizes.
pub fn config_map(w: &mut W, cm: &Value) {
    let m = &cm["metadata"];
    header(w, cm);
    labels(w, "Labels", &m["labels"]);
    annotations(w, "Annotations", &m["annotations"]);
    put!(w, 0, "\nData\n====\n");
    if let Some(data) = cm["data"].as_object() {
        for k in sorted_keys(data) {
            put!(w, 0, "{k}:\n----\n");
            put!(w, 0, "{}\n", s(&data[k.as_str()]));
            put!(w, 0, "\n");
        }
    }
    put!(w, 0, "\nBinaryData\n====\n");
    if let Some(data) = cm["binaryData"].as_object() {
        for k in sorted_keys(data) {
            put!(w, 0, "{k}: {} bytes\n", decoded_len(&data[k.as_str()]));
        }
    }
    put!(w, 0, "\n");
}

fn decoded_len(v: &Value) -> usize {
    base64::engine::general_purpose::STANDARD.decode(s(v)).map(|b| b.len()).unwrap_or(0)
}

/// `describeSecret`: the sizes of the values, never the values (a service-account token aside).
pub fn secret(w: &mut W, sec: &Value) {
    let m = &sec["metadata"];
    header(w, sec);
    labels(w, "Labels", &m["labels"]);
    annotations(w, "Annotations", &m["annotations"]);
    put!(w, 0, "\nType:\t{}\n", s(&sec["type"]));
    put!(w, 0, "\nData\n====\n");
    let token_type = sec["type"] == "kubernetes.io/service-account-token";
    if let Some(data) = sec["data"].as_object() {
        for k in sorted_keys(data) {
            let v = &data[k.as_str()];
            if token_type && k == "token" {
                let token = base64::engine::general_purpose::STANDARD.decode(s(v)).unwrap_or_default();
                put!(w, 0, "{k}:\t{}\n", String::from_utf8_lossy(&token));
            } else {
                put!(w, 0, "{k}:\t{} bytes\n", decoded_len(v));
            }
        }
    }
}

/// `describeServiceAccount`: pull secrets, mountable secrets and token secrets, the ones that
/// do not exist marked `(not found)`.
pub fn service_account(w: &mut W, api: &Api, sa: &Value) {
    let m = &sa["metadata"];
    let ns = s(&m["namespace"]);
    let names =
        |field: &str| -> Vec<String> { sa[field].as_array().into_iter().flatten().map(|r| s(&r["name"])).collect() };
    let (pull, mount) = (names("imagePullSecrets"), names("secrets"));
    let mut tokens: Vec<String> = Vec::new();
    let mut missing: Vec<String> = Vec::new();
    // A failed list still describes the account, without tokens and without "(not found)".
    if let Ok(secrets) = api.list(&format!("/api/v1/namespaces/{ns}/secrets"), &[]) {
        let existing: Vec<String> = secrets.iter().map(|x| s(&x["metadata"]["name"])).collect();
        for x in &secrets {
            let a = &x["metadata"]["annotations"];
            if x["type"] == "kubernetes.io/service-account-token"
                && a["kubernetes.io/service-account.name"] == m["name"]
                && a["kubernetes.io/service-account.uid"] == m["uid"]
            {
                tokens.push(s(&x["metadata"]["name"]));
            }
        }
        missing = mount.iter().chain(pull.iter()).filter(|n| !existing.contains(n)).cloned().collect();
    }
    header(w, sa);
    labels(w, "Labels", &m["labels"]);
    annotations(w, "Annotations", &m["annotations"]);
    for (title, list) in
        [("Image pull secrets:", &pull), ("Mountable secrets: ", &mount), ("Tokens:            ", &tokens)]
    {
        if list.is_empty() {
            put!(w, 0, "{title}\t<none>\n");
            continue;
        }
        let mut prefix = title;
        for name in list {
            if missing.contains(name) {
                put!(w, 0, "{prefix}\t{name} (not found)\n");
            } else {
                put!(w, 0, "{prefix}\t{name}\n");
            }
            prefix = "                   ";
        }
    }
}

/// `GetPersistentVolumeClaimClass`: the beta annotation first, then the spec field.
pub fn claim_class(c: &Value) -> String {
    match c["metadata"]["annotations"]["volume.beta.kubernetes.io/storage-class"].as_str() {
        Some(class) => class.to_string(),
        None => s(&c["spec"]["storageClassName"]),
    }
}

/// `GetAccessModesAsString`.
fn access_modes(modes: &Value) -> String {
    let list: Vec<String> = modes.as_array().into_iter().flatten().map(s).collect();
    let mut out = Vec::new();
    for (mode, short) in
        [("ReadWriteOnce", "RWO"), ("ReadOnlyMany", "ROX"), ("ReadWriteMany", "RWX"), ("ReadWriteOncePod", "RWOP")]
    {
        if list.iter().any(|m| m == mode) {
            out.push(short);
        }
    }
    out.join(",")
}

/// `printPersistentVolumeClaim`: also used for the claim template of an ephemeral volume.
pub fn pvc_fields(w: &mut W, c: &Value, full: bool) {
    let m = &c["metadata"];
    let spec = &c["spec"];
    if full {
        put!(w, 0, "Name:\t{}\n", s(&m["name"]));
        put!(w, 0, "Namespace:\t{}\n", s(&m["namespace"]));
    }
    put!(w, 0, "StorageClass:\t{}\n", claim_class(c));
    if full {
        if m["deletionTimestamp"].is_null() {
            put!(w, 0, "Status:\t{}\n", s(&c["status"]["phase"]));
        } else {
            put!(w, 0, "Status:\tTerminating (lasts {})\n", since(&m["deletionTimestamp"]));
        }
    }
    put!(w, 0, "Volume:\t{}\n", s(&spec["volumeName"]));
    labels(w, "Labels", &m["labels"]);
    annotations(w, "Annotations", &m["annotations"]);
    if full {
        put!(w, 0, "Finalizers:\t{}\n", go_list(&m["finalizers"]));
    }
    let bound = spec["volumeName"].as_str().is_some_and(|v| !v.is_empty());
    let (capacity, modes) = if bound {
        let cap = Quantity::parse(&s(&c["status"]["capacity"]["storage"])).unwrap_or_default();
        (cap.canonical(), access_modes(&c["status"]["accessModes"]))
    } else {
        (String::new(), String::new())
    };
    put!(w, 0, "Capacity:\t{capacity}\n");
    put!(w, 0, "Access Modes:\t{modes}\n");
    if let Some(mode) = spec["volumeMode"].as_str() {
        put!(w, 0, "VolumeMode:\t{mode}\n");
    }
    let ds = &spec["dataSource"];
    if ds.is_object() {
        put!(w, 0, "DataSource:\n");
        if let Some(g) = ds["apiGroup"].as_str() {
            put!(w, 1, "APIGroup:\t{g}\n");
        }
        put!(w, 1, "Kind:\t{}\n", s(&ds["kind"]));
        put!(w, 1, "Name:\t{}\n", s(&ds["name"]));
    }
}

/// `describePersistentVolumeClaim`: the claim, the pods using it, its conditions.
pub fn pvc(w: &mut W, api: &Api, c: &Value) -> Result<()> {
    let m = &c["metadata"];
    let ns = s(&m["namespace"]);
    let name = &m["name"];
    let pods = api.list(&format!("/api/v1/namespaces/{ns}/pods"), &[])?;
    let mut users: Vec<String> = Vec::new();
    for p in &pods {
        for v in p["spec"]["volumes"].as_array().into_iter().flatten() {
            if &v["persistentVolumeClaim"]["claimName"] == name {
                users.push(s(&p["metadata"]["name"]));
            }
        }
    }
    for owner in m["ownerReferences"].as_array().into_iter().flatten().filter(|o| o["kind"] == "Pod") {
        if let Some(p) = pods.iter().find(|p| p["metadata"]["uid"] == owner["uid"]) {
            let pod_name = s(&p["metadata"]["name"]);
            if !users.contains(&pod_name) {
                users.push(pod_name);
            }
        }
    }
    users.sort();
    pvc_fields(w, c, true);
    put!(w, 0, "Used By:\t");
    if users.is_empty() {
        put!(w, 0, "<none>\n");
    }
    for (i, u) in users.iter().enumerate() {
        if i != 0 {
            put!(w, 0, "\t");
        }
        put!(w, 0, "{u}\n");
    }
    if let Some(conds) = c["status"]["conditions"].as_array().filter(|c| !c.is_empty()) {
        put!(w, 0, "Conditions:\n");
        put!(w, 1, "Type\tStatus\tLastProbeTime\tLastTransitionTime\tReason\tMessage\n");
        put!(w, 1, "----\t------\t-----------------\t------------------\t------\t-------\n");
        for cond in conds {
            put!(
                w,
                1,
                "{} \t{} \t{} \t{} \t{} \t{}\n",
                s(&cond["type"]),
                s(&cond["status"]),
                rfc1123z(&cond["lastProbeTime"]),
                rfc1123z(&cond["lastTransitionTime"]),
                s(&cond["reason"]),
                s(&cond["message"])
            );
        }
    }
    Ok(())
}
