//! Pods and the pod template every workload shares: containers (ports, command, state,
//! resources, probes, environment, mounts), volumes, QoS class, node selectors, tolerations
//! and topology spread constraints, laid out as kubectl v1.33 lays them out.

use super::quantity::Quantity;
use super::text::{
    W, annotations, controller_of, labels, or_none, print_bool, put, q, rfc1123z, s, since, sorted_keys, tolerations,
};
use serde_json::Value;

/// `describePod` (events are appended by the caller).
pub fn pod(w: &mut W, p: &Value) {
    let m = &p["metadata"];
    let spec = &p["spec"];
    let st = &p["status"];
    put!(w, 0, "Name:\t{}\n", s(&m["name"]));
    put!(w, 0, "Namespace:\t{}\n", s(&m["namespace"]));
    if !spec["priority"].is_null() {
        put!(w, 0, "Priority:\t{}\n", s(&spec["priority"]));
    }
    if let Some(pc) = spec["priorityClassName"].as_str().filter(|v| !v.is_empty()) {
        put!(w, 0, "Priority Class Name:\t{pc}\n");
    }
    if let Some(rc) = spec["runtimeClassName"].as_str().filter(|v| !v.is_empty()) {
        put!(w, 0, "Runtime Class Name:\t{rc}\n");
    }
    if let Some(sa) = spec["serviceAccountName"].as_str().filter(|v| !v.is_empty()) {
        put!(w, 0, "Service Account:\t{sa}\n");
    }
    match spec["nodeName"].as_str().filter(|v| !v.is_empty()) {
        None => put!(w, 0, "Node:\t<none>\n"),
        Some(n) => put!(w, 0, "Node:\t{n}/{}\n", s(&st["hostIP"])),
    }
    if !st["startTime"].is_null() {
        put!(w, 0, "Start Time:\t{}\n", rfc1123z(&st["startTime"]));
    }
    labels(w, "Labels", &m["labels"]);
    annotations(w, "Annotations", &m["annotations"]);
    let phase = s(&st["phase"]);
    if !m["deletionTimestamp"].is_null() && phase != "Failed" && phase != "Succeeded" {
        put!(w, 0, "Status:\tTerminating (lasts {})\n", since(&m["deletionTimestamp"]));
        put!(w, 0, "Termination Grace Period:\t{}s\n", m["deletionGracePeriodSeconds"].as_i64().unwrap_or(0));
    } else {
        put!(w, 0, "Status:\t{phase}\n");
    }
    if let Some(r) = st["reason"].as_str().filter(|v| !v.is_empty()) {
        put!(w, 0, "Reason:\t{r}\n");
    }
    if let Some(msg) = st["message"].as_str().filter(|v| !v.is_empty()) {
        put!(w, 0, "Message:\t{msg}\n");
    }
    let seccomp = &spec["securityContext"]["seccompProfile"];
    if seccomp.is_object() {
        put!(w, 0, "SeccompProfile:\t{}\n", s(&seccomp["type"]));
        if seccomp["type"] == "Localhost" {
            put!(w, 0, "LocalhostProfile:\t{}\n", s(&seccomp["localhostProfile"]));
        }
    }
    put!(w, 0, "IP:\t{}\n", s(&st["podIP"]));
    match st["podIPs"].as_array().filter(|a| !a.is_empty()) {
        None => put!(w, 0, "IPs:\t<none>\n"),
        Some(ips) => {
            put!(w, 0, "IPs:\n");
            for ip in ips {
                put!(w, 1, "IP:\t{}\n", s(&ip["ip"]));
            }
        }
    }
    let controller = controller_of(p);
    if !controller.is_empty() {
        put!(w, 0, "Controlled By:\t{controller}\n");
    }
    if let Some(n) = st["nominatedNodeName"].as_str().filter(|v| !v.is_empty()) {
        put!(w, 0, "NominatedNodeName:\t{n}\n");
    }
    if spec["resources"].is_object() {
        put!(w, 0, "Resources:\n");
        resources(w, &spec["resources"], 1);
    }
    if spec["initContainers"].as_array().is_some_and(|a| !a.is_empty()) {
        containers(w, "Init Containers", &spec["initContainers"], Some(&st["initContainerStatuses"]), Some(p), "");
    }
    containers(w, "Containers", &spec["containers"], Some(&st["containerStatuses"]), Some(p), "");
    if spec["ephemeralContainers"].as_array().is_some_and(|a| !a.is_empty()) {
        containers(
            w,
            "Ephemeral Containers",
            &spec["ephemeralContainers"],
            Some(&st["ephemeralContainerStatuses"]),
            Some(p),
            "",
        );
    }
    let conditions = st["conditions"].as_array().cloned().unwrap_or_default();
    if let Some(gates) = spec["readinessGates"].as_array().filter(|g| !g.is_empty()) {
        put!(w, 0, "Readiness Gates:\n  Type\tStatus\n");
        for g in gates {
            let status = conditions
                .iter()
                .find(|c| c["type"] == g["conditionType"])
                .map(|c| s(&c["status"]))
                .unwrap_or_else(|| "<none>".into());
            put!(w, 1, "{} \t{status} \n", s(&g["conditionType"]));
        }
    }
    if !conditions.is_empty() {
        put!(w, 0, "Conditions:\n  Type\tStatus\n");
        for c in &conditions {
            put!(w, 1, "{} \t{} \n", s(&c["type"]), s(&c["status"]));
        }
    }
    volumes(w, &spec["volumes"], "");
    put!(w, 0, "QoS Class:\t{}\n", qos_class(p));
    labels(w, "Node-Selectors", &spec["nodeSelector"]);
    tolerations(w, "", "Tolerations", &spec["tolerations"]);
    topology_spread(w, &spec["topologySpreadConstraints"], "");
}

/// `DescribePodTemplate`, shared by every workload kind.
pub fn template(w: &mut W, t: &Value) {
    put!(w, 0, "Pod Template:\n");
    if t.is_null() {
        put!(w, 1, "<unset>");
        return;
    }
    let m = &t["metadata"];
    let spec = &t["spec"];
    labels(w, "  Labels", &m["labels"]);
    if m["annotations"].as_object().is_some_and(|a| !a.is_empty()) {
        annotations(w, "  Annotations", &m["annotations"]);
    }
    if let Some(sa) = spec["serviceAccountName"].as_str().filter(|v| !v.is_empty()) {
        put!(w, 1, "Service Account:\t{sa}\n");
    }
    if spec["initContainers"].as_array().is_some_and(|a| !a.is_empty()) {
        containers(w, "Init Containers", &spec["initContainers"], None, None, "  ");
    }
    containers(w, "Containers", &spec["containers"], None, None, "  ");
    volumes(w, &spec["volumes"], "  ");
    topology_spread(w, &spec["topologySpreadConstraints"], "  ");
    if let Some(pc) = spec["priorityClassName"].as_str().filter(|v| !v.is_empty()) {
        put!(w, 1, "Priority Class Name:\t{pc}\n");
    }
    labels(w, "  Node-Selectors", &spec["nodeSelector"]);
    tolerations(w, "", "  Tolerations", &spec["tolerations"]);
}

/// `describeContainers`: statuses and the pod (for field references) only for real pods.
fn containers(w: &mut W, label: &str, list: &Value, statuses: Option<&Value>, pod: Option<&Value>, space: &str) {
    let items = list.as_array().cloned().unwrap_or_default();
    put!(w, 0, "{space}{label}:{}\n", if items.is_empty() { " <none>" } else { "" });
    for c in &items {
        let status = statuses
            .and_then(|st| st.as_array())
            .and_then(|a| a.iter().find(|x| x["name"] == c["name"]))
            .filter(|x| x.is_object());
        basic_info(w, c, status, space);
        command(w, c);
        if let Some(st) = status {
            container_state(w, st);
        }
        resources(w, &c["resources"], 2);
        for (field, title) in
            [("livenessProbe", "Liveness"), ("readinessProbe", "Readiness"), ("startupProbe", "Startup")]
        {
            if c[field].is_object() {
                put!(w, 2, "{title}:\t{}\n", probe(&c[field]));
            }
        }
        if c["envFrom"].as_array().is_some_and(|a| !a.is_empty()) {
            env_from(w, c);
        }
        env(w, c, pod);
        mounts(w, c);
    }
}

fn basic_info(w: &mut W, c: &Value, status: Option<&Value>, space: &str) {
    let indent = if space.is_empty() { "" } else { " " };
    put!(w, 1, "{indent}{}:\n", s(&c["name"]));
    if let Some(st) = status {
        put!(w, 2, "Container ID:\t{}\n", s(&st["containerID"]));
    }
    put!(w, 2, "Image:\t{}\n", s(&c["image"]));
    if let Some(st) = status {
        put!(w, 2, "Image ID:\t{}\n", s(&st["imageID"]));
    }
    let ports: Vec<&Value> = c["ports"].as_array().into_iter().flatten().collect();
    let proto = |p: &Value| p["protocol"].as_str().unwrap_or("TCP").to_string();
    let port_text: Vec<String> =
        ports.iter().map(|p| format!("{}/{}", p["containerPort"].as_i64().unwrap_or(0), proto(p))).collect();
    let host_text: Vec<String> =
        ports.iter().map(|p| format!("{}/{}", p["hostPort"].as_i64().unwrap_or(0), proto(p))).collect();
    let (port_text, host_text) = (port_text.join(", "), host_text.join(", "));
    if port_text.contains(',') {
        put!(w, 2, "Ports:\t{port_text}\n");
    } else {
        put!(w, 2, "Port:\t{}\n", or_none(port_text));
    }
    if host_text.contains(',') {
        put!(w, 2, "Host Ports:\t{host_text}\n");
    } else {
        put!(w, 2, "Host Port:\t{}\n", or_none(host_text));
    }
    let seccomp = &c["securityContext"]["seccompProfile"];
    if seccomp.is_object() {
        put!(w, 2, "SeccompProfile:\t{}\n", s(&seccomp["type"]));
        if seccomp["type"] == "Localhost" {
            put!(w, 3, "LocalhostProfile:\t{}\n", s(&seccomp["localhostProfile"]));
        }
    }
}

fn command(w: &mut W, c: &Value) {
    for (field, title) in [("command", "Command"), ("args", "Args")] {
        let Some(items) = c[field].as_array().filter(|a| !a.is_empty()) else { continue };
        put!(w, 2, "{title}:\n");
        for item in items {
            for line in s(item).split('\n') {
                put!(w, 3, "{line}\n");
            }
        }
    }
}

fn container_state(w: &mut W, st: &Value) {
    state(w, "State", &st["state"]);
    if st["lastState"]["terminated"].is_object() {
        state(w, "Last State", &st["lastState"]);
    }
    put!(w, 2, "Ready:\t{}\n", print_bool(st["ready"] == true));
    put!(w, 2, "Restart Count:\t{}\n", st["restartCount"].as_i64().unwrap_or(0));
}

fn state(w: &mut W, title: &str, st: &Value) {
    if st["running"].is_object() {
        put!(w, 2, "{title}:\tRunning\n");
        put!(w, 3, "Started:\t{}\n", rfc1123z(&st["running"]["startedAt"]));
    } else if st["waiting"].is_object() {
        put!(w, 2, "{title}:\tWaiting\n");
        if let Some(r) = st["waiting"]["reason"].as_str().filter(|v| !v.is_empty()) {
            put!(w, 3, "Reason:\t{r}\n");
        }
    } else if st["terminated"].is_object() {
        let t = &st["terminated"];
        put!(w, 2, "{title}:\tTerminated\n");
        if let Some(r) = t["reason"].as_str().filter(|v| !v.is_empty()) {
            put!(w, 3, "Reason:\t{r}\n");
        }
        if let Some(msg) = t["message"].as_str().filter(|v| !v.is_empty()) {
            put!(w, 3, "Message:\t{msg}\n");
        }
        put!(w, 3, "Exit Code:\t{}\n", t["exitCode"].as_i64().unwrap_or(0));
        if let Some(sig) = t["signal"].as_i64().filter(|v| *v > 0) {
            put!(w, 3, "Signal:\t{sig}\n");
        }
        put!(w, 3, "Started:\t{}\n", rfc1123z(&t["startedAt"]));
        put!(w, 3, "Finished:\t{}\n", rfc1123z(&t["finishedAt"]));
    } else {
        put!(w, 2, "{title}:\tWaiting\n");
    }
}

/// `describeResources`: Limits then Requests, each sorted by resource name.
fn resources(w: &mut W, r: &Value, level: usize) {
    for (field, title) in [("limits", "Limits"), ("requests", "Requests")] {
        let Some(m) = r[field].as_object().filter(|m| !m.is_empty()) else { continue };
        put!(w, level, "{title}:\n");
        for k in sorted_keys(m) {
            put!(w, level + 1, "{k}:\t{}\n", q(&m[k.as_str()]));
        }
    }
}

/// `DescribeProbe`.
fn probe(p: &Value) -> String {
    let n = |f: &str| p[f].as_i64().unwrap_or(0);
    let attrs = format!(
        "delay={}s timeout={}s period={}s #success={} #failure={}",
        n("initialDelaySeconds"),
        n("timeoutSeconds"),
        n("periodSeconds"),
        n("successThreshold"),
        n("failureThreshold")
    );
    if p["exec"].is_object() {
        let cmd: Vec<String> = p["exec"]["command"].as_array().into_iter().flatten().map(s).collect();
        return format!("exec [{}] {attrs}", cmd.join(" "));
    }
    if p["httpGet"].is_object() {
        let h = &p["httpGet"];
        let scheme = s(&h["scheme"]).to_lowercase();
        let host = s(&h["host"]);
        let port = s(&h["port"]);
        let hostport = if port.is_empty() {
            host
        } else if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        let mut url = String::new();
        if !scheme.is_empty() {
            url.push_str(&scheme);
            url.push(':');
        }
        if !scheme.is_empty() || !hostport.is_empty() {
            url.push_str("//");
            url.push_str(&hostport);
        }
        let path = s(&h["path"]);
        if !path.is_empty() && !path.starts_with('/') && !hostport.is_empty() {
            url.push('/');
        }
        url.push_str(&path);
        return format!("http-get {url} {attrs}");
    }
    if p["tcpSocket"].is_object() {
        return format!("tcp-socket {}:{} {attrs}", s(&p["tcpSocket"]["host"]), s(&p["tcpSocket"]["port"]));
    }
    if p["grpc"].is_object() {
        return format!("grpc <pod>:{} {} {attrs}", s(&p["grpc"]["port"]), s(&p["grpc"]["service"]));
    }
    format!("unknown {attrs}")
}

fn env_from(w: &mut W, c: &Value) {
    put!(w, 2, "Environment Variables from:\n");
    for e in c["envFrom"].as_array().into_iter().flatten() {
        let (from, r) = if e["configMapRef"].is_object() {
            ("ConfigMap", &e["configMapRef"])
        } else if e["secretRef"].is_object() {
            ("Secret", &e["secretRef"])
        } else {
            ("", &Value::Null)
        };
        let optional = r["optional"] == true;
        match e["prefix"].as_str().filter(|p| !p.is_empty()) {
            None => put!(w, 3, "{}\t{from}\tOptional: {optional}\n", s(&r["name"])),
            Some(prefix) => put!(w, 3, "{}\t{from} with prefix '{prefix}'\tOptional: {optional}\n", s(&r["name"])),
        }
    }
}

fn env(w: &mut W, c: &Value, pod: Option<&Value>) {
    let list = c["env"].as_array().cloned().unwrap_or_default();
    put!(w, 2, "Environment:{}\n", if list.is_empty() { "\t<none>" } else { "" });
    for e in &list {
        let name = s(&e["name"]);
        let from = &e["valueFrom"];
        if !from.is_object() {
            for (i, line) in s(&e["value"]).split('\n').enumerate() {
                if i == 0 {
                    put!(w, 3, "{name}:\t{line}\n");
                } else {
                    put!(w, 3, "\t{line}\n");
                }
            }
            continue;
        }
        if from["fieldRef"].is_object() {
            let path = s(&from["fieldRef"]["fieldPath"]);
            let value = pod.map(|p| field_value(p, &path)).unwrap_or_default();
            put!(w, 3, "{name}:\t{value} ({}:{path})\n", s(&from["fieldRef"]["apiVersion"]));
        } else if from["resourceFieldRef"].is_object() {
            let r = &from["resourceFieldRef"];
            let resource = s(&r["resource"]);
            let mut value = resource_field_value(c, r);
            if value == "0" && (resource == "limits.cpu" || resource == "limits.memory") {
                value = "node allocatable".into();
            }
            put!(w, 3, "{name}:\t{value} ({resource})\n");
        } else if from["secretKeyRef"].is_object() {
            let r = &from["secretKeyRef"];
            put!(
                w,
                3,
                "{name}:\t<set to the key '{}' in secret '{}'>\tOptional: {}\n",
                s(&r["key"]),
                s(&r["name"]),
                r["optional"] == true
            );
        } else if from["configMapKeyRef"].is_object() {
            let r = &from["configMapKeyRef"];
            put!(
                w,
                3,
                "{name}:\t<set to the key '{}' of config map '{}'>\tOptional: {}\n",
                s(&r["key"]),
                s(&r["name"]),
                r["optional"] == true
            );
        }
    }
}

/// The value of a field reference as kubectl resolves it: its scheme converts only the name
/// and namespace field labels, so every other path shows empty.
fn field_value(p: &Value, path: &str) -> String {
    match path {
        "metadata.name" => s(&p["metadata"]["name"]),
        "metadata.namespace" => s(&p["metadata"]["namespace"]),
        _ => String::new(),
    }
}

/// `ExtractContainerResourceValue`: the container's own request or limit over the divisor.
fn resource_field_value(c: &Value, r: &Value) -> String {
    let resource = s(&r["resource"]);
    let Some((kind, name)) = resource.split_once('.') else { return String::new() };
    let field = if kind == "limits" { "limits" } else { "requests" };
    let value = Quantity::parse(&s(&c["resources"][field][name])).unwrap_or_default();
    let divisor = Quantity::parse(&s(&r["divisor"])).filter(|d| d.nanos != 0);
    if name == "cpu" {
        let d = divisor.map(|d| d.milli_value()).unwrap_or(1000).max(1);
        let v = value.milli_value();
        return ((v + d - 1).div_euclid(d)).to_string();
    }
    let d = divisor.map(|d| d.value()).unwrap_or(1).max(1);
    ((value.value() + d - 1).div_euclid(d)).to_string()
}

fn mounts(w: &mut W, c: &Value) {
    let mut list: Vec<&Value> = c["volumeMounts"].as_array().into_iter().flatten().collect();
    let none = if list.is_empty() { "\t<none>" } else { "" };
    put!(w, 2, "Mounts:{none}\n");
    list.sort_by_key(|m| s(&m["mountPath"]));
    for m in list {
        let mut flags = vec![if m["readOnly"] == true { "ro".to_string() } else { "rw".to_string() }];
        if let Some(sub) = m["subPath"].as_str().filter(|v| !v.is_empty()) {
            flags.push(format!("path={sub:?}"));
        }
        put!(w, 3, "{} from {} ({})\n", s(&m["mountPath"]), s(&m["name"]), flags.join(","));
    }
    let mut devices: Vec<&Value> = c["volumeDevices"].as_array().into_iter().flatten().collect();
    if !devices.is_empty() {
        put!(w, 2, "Devices:{none}\n");
        devices.sort_by_key(|d| s(&d["devicePath"]));
        for d in devices {
            put!(w, 3, "{} from {}\n", s(&d["devicePath"]), s(&d["name"]));
        }
    }
}

/// `describeVolumes`.
pub fn volumes(w: &mut W, list: &Value, space: &str) {
    let Some(vols) = list.as_array().filter(|a| !a.is_empty()) else {
        put!(w, 0, "{space}Volumes:\t<none>\n");
        return;
    };
    put!(w, 0, "{space}Volumes:\n");
    let indent = if space.is_empty() { "" } else { " " };
    for v in vols {
        put!(w, 1, "{indent}{}:\n", s(&v["name"]));
        volume_source(w, v);
    }
}

/// One volume source's `Type:` line and fields (also a PersistentVolume's source).
pub fn volume_source(w: &mut W, v: &Value) {
    let b = |x: &Value| x == true;
    if let Some(h) = v.get("hostPath").filter(|x| x.is_object()) {
        put!(w, 2, "Type:\tHostPath (bare host directory volume)\n");
        put!(w, 0, "    Path:\t{}\n", s(&h["path"]));
        let kind = if h["type"].is_null() { "<none>".to_string() } else { s(&h["type"]) };
        put!(w, 0, "    HostPathType:\t{kind}\n");
    } else if let Some(e) = v.get("emptyDir").filter(|x| x.is_object()) {
        let limit = Quantity::parse(&s(&e["sizeLimit"])).filter(|q| q.nanos > 0).map(|q| q.canonical());
        put!(w, 2, "Type:\tEmptyDir (a temporary directory that shares a pod's lifetime)\n");
        put!(w, 0, "    Medium:\t{}\n", s(&e["medium"]));
        put!(w, 0, "    SizeLimit:\t{}\n", limit.unwrap_or_else(|| "<unset>".into()));
    } else if let Some(g) = v.get("gitRepo").filter(|x| x.is_object()) {
        put!(w, 2, "Type:\tGitRepo (a volume that is pulled from git when the pod is created)\n");
        put!(w, 0, "    Repository:\t{}\n", s(&g["repository"]));
        put!(w, 0, "    Revision:\t{}\n", s(&g["revision"]));
    } else if let Some(sec) = v.get("secret").filter(|x| x.is_object()) {
        put!(w, 2, "Type:\tSecret (a volume populated by a Secret)\n");
        put!(w, 0, "    SecretName:\t{}\n", s(&sec["secretName"]));
        put!(w, 0, "    Optional:\t{}\n", b(&sec["optional"]));
    } else if let Some(cm) = v.get("configMap").filter(|x| x.is_object()) {
        put!(w, 2, "Type:\tConfigMap (a volume populated by a ConfigMap)\n");
        put!(w, 0, "    Name:\t{}\n", s(&cm["name"]));
        put!(w, 0, "    Optional:\t{}\n", b(&cm["optional"]));
    } else if let Some(n) = v.get("nfs").filter(|x| x.is_object()) {
        put!(w, 2, "Type:\tNFS (an NFS mount that lasts the lifetime of a pod)\n");
        put!(w, 0, "    Server:\t{}\n", s(&n["server"]));
        put!(w, 0, "    Path:\t{}\n", s(&n["path"]));
        put!(w, 0, "    ReadOnly:\t{}\n", b(&n["readOnly"]));
    } else if let Some(c) = v.get("persistentVolumeClaim").filter(|x| x.is_object()) {
        put!(w, 2, "Type:\tPersistentVolumeClaim (a reference to a PersistentVolumeClaim in the same namespace)\n");
        put!(w, 0, "    ClaimName:\t{}\n", s(&c["claimName"]));
        put!(w, 0, "    ReadOnly:\t{}\n", b(&c["readOnly"]));
    } else if let Some(e) = v.get("ephemeral").filter(|x| x.is_object()) {
        put!(
            w,
            2,
            "Type:\tEphemeralVolume (an inline specification for a volume that gets created and deleted with the pod)\n"
        );
        let t = &e["volumeClaimTemplate"];
        if t.is_object() {
            let claim = serde_json::json!({"metadata": t["metadata"], "spec": t["spec"]});
            // kubectl writes the claim through a writer nested two levels deeper.
            w.nest += 2;
            super::core::pvc_fields(w, &claim, false);
            w.nest -= 2;
        }
    } else if let Some(d) = v.get("downwardAPI").filter(|x| x.is_object()) {
        put!(w, 2, "Type:\tDownwardAPI (a volume populated by information about the pod)\n    Items:\n");
        for item in d["items"].as_array().into_iter().flatten() {
            if item["fieldRef"].is_object() {
                put!(w, 3, "{} -> {}\n", s(&item["fieldRef"]["fieldPath"]), s(&item["path"]));
            }
            if item["resourceFieldRef"].is_object() {
                put!(w, 3, "{} -> {}\n", s(&item["resourceFieldRef"]["resource"]), s(&item["path"]));
            }
        }
    } else if let Some(p) = v.get("projected").filter(|x| x.is_object()) {
        put!(w, 2, "Type:\tProjected (a volume that contains injected data from multiple sources)\n");
        for src in p["sources"].as_array().into_iter().flatten() {
            if src["secret"].is_object() {
                put!(
                    w,
                    2,
                    "SecretName:\t{}\n    Optional:\t{}\n",
                    s(&src["secret"]["name"]),
                    b(&src["secret"]["optional"])
                );
            } else if src["downwardAPI"].is_object() {
                put!(w, 2, "DownwardAPI:\ttrue\n");
            } else if src["configMap"].is_object() {
                put!(
                    w,
                    2,
                    "ConfigMapName:\t{}\n    Optional:\t{}\n",
                    s(&src["configMap"]["name"]),
                    b(&src["configMap"]["optional"])
                );
            } else if src["serviceAccountToken"].is_object() {
                put!(
                    w,
                    2,
                    "TokenExpirationSeconds:\t{}\n",
                    src["serviceAccountToken"]["expirationSeconds"].as_i64().unwrap_or(0)
                );
            }
        }
    } else if let Some(c) = v.get("csi").filter(|x| x.is_object()) {
        put!(w, 2, "Type:\tCSI (a Container Storage Interface (CSI) volume source)\n");
        put!(w, 0, "    Driver:\t{}\n", s(&c["driver"]));
        put!(w, 0, "    FSType:\t{}\n", s(&c["fsType"]));
        put!(w, 0, "    ReadOnly:\t{}\n", b(&c["readOnly"]));
        put!(w, 2, "VolumeAttributes:\t");
        let pairs = super::text::sorted_pairs(&c["volumeAttributes"]);
        if pairs.is_empty() {
            put!(w, 0, "<none>\n");
        }
        for (i, (k, val)) in pairs.iter().enumerate() {
            if i != 0 {
                put!(w, 2, "");
                put!(w, 2, "\t");
            }
            put!(w, 2, "{}\n", super::text::shorten(&format!("{k}={val}"), 140));
        }
    } else if let Some(i) = v.get("image").filter(|x| x.is_object()) {
        put!(w, 2, "Type:\tImage (a container image or OCI artifact)\n");
        put!(w, 0, "    Reference:\t{}\n", s(&i["reference"]));
        put!(w, 0, "    PullPolicy:\t{}\n", s(&i["pullPolicy"]));
    } else {
        put!(w, 1, "<unknown>\n");
    }
}

/// `describeTopologySpreadConstraints`, sorted by topology key.
fn topology_spread(w: &mut W, list: &Value, space: &str) {
    let mut items: Vec<&Value> = list.as_array().into_iter().flatten().collect();
    if items.is_empty() {
        return;
    }
    items.sort_by_key(|t| s(&t["topologyKey"]));
    put!(w, 0, "{space}Topology Spread Constraints:\t");
    for (i, t) in items.iter().enumerate() {
        if i != 0 {
            put!(w, 0, "{space}");
            put!(w, 0, "\t");
        }
        put!(w, 0, "{}:", s(&t["topologyKey"]));
        put!(w, 0, "{}", s(&t["whenUnsatisfiable"]));
        put!(w, 0, " when max skew {} is exceeded", t["maxSkew"].as_i64().unwrap_or(0));
        if t["labelSelector"].is_object() {
            put!(w, 0, " for selector {}", super::text::format_label_selector(&t["labelSelector"]));
        }
        put!(w, 0, "\n");
    }
}

/// `qos.GetPodQOS`: the status' class, else computed from the containers' cpu and memory.
pub fn qos_class(p: &Value) -> String {
    if let Some(c) = p["status"]["qosClass"].as_str().filter(|v| !v.is_empty()) {
        return c.to_string();
    }
    let spec = &p["spec"];
    let mut requests: std::collections::BTreeMap<String, Quantity> = Default::default();
    let mut limits: std::collections::BTreeMap<String, Quantity> = Default::default();
    let mut guaranteed = true;
    let all = spec["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .chain(spec["initContainers"].as_array().into_iter().flatten());
    for c in all {
        for (k, v) in c["resources"]["requests"].as_object().into_iter().flatten() {
            if k != "cpu" && k != "memory" {
                continue;
            }
            if let Some(qv) = Quantity::parse(&s(v)).filter(|qv| qv.nanos > 0) {
                requests.entry(k.clone()).or_default().add(&qv);
            }
        }
        let mut found = std::collections::BTreeSet::new();
        for (k, v) in c["resources"]["limits"].as_object().into_iter().flatten() {
            if k != "cpu" && k != "memory" {
                continue;
            }
            if let Some(qv) = Quantity::parse(&s(v)).filter(|qv| qv.nanos > 0) {
                found.insert(k.clone());
                limits.entry(k.clone()).or_default().add(&qv);
            }
        }
        if found.len() != 2 {
            guaranteed = false;
        }
    }
    if requests.is_empty() && limits.is_empty() {
        return "BestEffort".into();
    }
    if guaranteed {
        for (k, r) in &requests {
            if limits.get(k).is_none_or(|l| l.nanos != r.nanos) {
                guaranteed = false;
                break;
            }
        }
    }
    if guaranteed && requests.len() == limits.len() { "Guaranteed".into() } else { "Burstable".into() }
}
