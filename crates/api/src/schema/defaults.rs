//! Kubernetes' defaulting (pkg/apis/*/v1/defaults.go, plus the defaults the ServiceAccount,
//! Priority and DefaultTolerationSeconds admission plugins add to Pods), on canonical JSON.
//!
//! Every default only fills a field that is absent or null, so applying twice is a no-op.

use crate::ResourceInfo;
use serde_json::{Map, Value, json};
use std::sync::atomic::{AtomicI64, Ordering};

type Obj = Map<String, Value>;

/// Applies the defaults of `res`'s kind to `obj`; other kinds and non-objects are left alone.
pub(super) fn apply(res: &ResourceInfo, obj: &mut Value) {
    let Some(root) = obj.as_object_mut() else { return };
    match (res.group, res.kind) {
        ("", "Pod") => pod(root),
        ("", "Service") => service(root),
        ("", "ReplicationController") => replication_controller(root),
        ("", "Namespace") => {
            if let Some(spec) = ensure(root, "spec") {
                set(spec, "finalizers", json!(["kubernetes"]));
            }
        }
        ("", "Secret") => set(root, "type", json!("Opaque")),
        ("", "PersistentVolumeClaim") => pvc(root),
        ("", "PersistentVolume") => {
            if let Some(spec) = ensure(root, "spec") {
                set(spec, "persistentVolumeReclaimPolicy", json!("Retain"));
                set(spec, "volumeMode", json!("Filesystem"));
            }
            if let Some(status) = ensure(root, "status") {
                set(status, "phase", json!("Pending"));
            }
        }
        ("", "Endpoints") => {
            for subset in each(root, "subsets") {
                default_protocols(subset, "ports");
            }
        }
        ("apps", "Deployment") => deployment(root),
        ("apps", "ReplicaSet") => {
            if let Some(spec) = ensure(root, "spec") {
                set(spec, "replicas", json!(1));
                template(spec, "template", TemplateOf::Workload);
            }
        }
        ("apps", "DaemonSet") => daemon_set(root),
        ("apps", "StatefulSet") => stateful_set(root),
        ("batch", "Job") => job(root),
        ("batch", "CronJob") => cron_job(root),
        ("autoscaling", "HorizontalPodAutoscaler") => hpa(root, res.version),
        ("discovery.k8s.io", "EndpointSlice") => default_protocols(root, "ports"),
        ("networking.k8s.io", "NetworkPolicy") => network_policy(root),
        _ => {}
    }
}

/// Sets `key` to `value` when it is absent or null.
fn set(m: &mut Obj, key: &str, value: Value) {
    if m.get(key).is_none_or(Value::is_null) {
        m.insert(key.to_string(), value);
    }
}

/// The object at `key`, created empty when absent or null; None when it holds a non-object.
fn ensure<'a>(m: &'a mut Obj, key: &str) -> Option<&'a mut Obj> {
    set(m, key, json!({}));
    m.get_mut(key)?.as_object_mut()
}

/// The object at `key` if there is one.
fn child<'a>(m: &'a mut Obj, key: &str) -> Option<&'a mut Obj> {
    m.get_mut(key)?.as_object_mut()
}

/// The object elements of the array at `key`.
fn each<'a>(m: &'a mut Obj, key: &str) -> impl Iterator<Item = &'a mut Obj> {
    m.get_mut(key).and_then(Value::as_array_mut).into_iter().flatten().filter_map(Value::as_object_mut)
}

fn is_unset(m: &Obj, key: &str) -> bool {
    m.get(key).is_none_or(Value::is_null)
}

/// Ports default to TCP; without policyTypes a policy is an Ingress policy, and an Egress one
/// too when it has egress rules.
fn network_policy(root: &mut Obj) {
    let Some(spec) = ensure(root, "spec") else { return };
    for direction in ["ingress", "egress"] {
        for rule in each(spec, direction) {
            default_protocols(rule, "ports");
        }
    }
    if is_unset(spec, "policyTypes") {
        let egress = spec.get("egress").and_then(Value::as_array).is_some_and(|e| !e.is_empty());
        let types = if egress { json!(["Ingress", "Egress"]) } else { json!(["Ingress"]) };
        spec.insert("policyTypes".into(), types);
    }
}

fn default_protocols(m: &mut Obj, key: &str) {
    for port in each(m, key) {
        set(port, "protocol", json!("TCP"));
    }
}

/// Which object a pod template belongs to; Job templates get no restartPolicy default so
/// that Job validation can insist on OnFailure/Never.
#[derive(Clone, Copy, PartialEq)]
enum TemplateOf {
    Workload,
    Job,
}

fn template(spec: &mut Obj, key: &str, of: TemplateOf) {
    let Some(tmpl) = child(spec, key) else { return };
    if let Some(pod_spec) = child(tmpl, "spec") {
        pod_spec_defaults(pod_spec, of == TemplateOf::Workload);
    }
}

fn pod(root: &mut Obj) {
    let Some(spec) = ensure(root, "spec") else { return };
    pod_spec_defaults(spec, true);
    set(spec, "enableServiceLinks", json!(true));

    // Requests default to limits for each resource that has a limit but no request.
    for key in ["containers", "initContainers"] {
        for c in each(spec, key) {
            let Some(res) = child(c, "resources") else { continue };
            let Some(limits) = res.get("limits").and_then(Value::as_object).cloned() else { continue };
            if limits.is_empty() {
                continue;
            }
            if let Some(requests) = ensure(res, "requests") {
                for (name, q) in limits {
                    set(requests, &name, q);
                }
            }
        }
    }

    // With the host's network the container port is the host port.
    if spec.get("hostNetwork").and_then(Value::as_bool) == Some(true) {
        for key in ["containers", "initContainers"] {
            for c in each(spec, key) {
                for port in each(c, "ports") {
                    if let Some(cp) = port.get("containerPort").cloned() {
                        set(port, "hostPort", cp);
                    }
                }
            }
        }
    }

    // ServiceAccount admission; the deprecated serviceAccount mirrors serviceAccountName.
    if is_unset(spec, "serviceAccountName")
        && let Some(old) = spec.get("serviceAccount").filter(|v| v.as_str().is_some_and(|s| !s.is_empty())).cloned()
    {
        spec.insert("serviceAccountName".into(), old);
    }
    set(spec, "serviceAccountName", json!("default"));
    if let Some(name) = spec.get("serviceAccountName").cloned() {
        set(spec, "serviceAccount", name);
    }

    // Priority admission: without a PriorityClass (and no global default class) a pod gets
    // priority 0; the two built-in system classes have fixed values.
    let class = spec.get("priorityClassName").and_then(Value::as_str).unwrap_or_default();
    let priority = match class {
        "" => Some(0),
        "system-cluster-critical" => Some(2_000_000_000),
        "system-node-critical" => Some(2_000_001_000),
        _ => None,
    };
    if let Some(p) = priority {
        set(spec, "priority", json!(p));
        set(spec, "preemptionPolicy", json!("PreemptLowerPriority"));
    }

    // DefaultTolerationSeconds admission.
    tolerate_for(spec, "node.kubernetes.io/not-ready", NOT_READY_TOLERATION_SECONDS.load(Ordering::Relaxed));
    tolerate_for(spec, "node.kubernetes.io/unreachable", UNREACHABLE_TOLERATION_SECONDS.load(Ordering::Relaxed));
}

static NOT_READY_TOLERATION_SECONDS: AtomicI64 = AtomicI64::new(300);
static UNREACHABLE_TOLERATION_SECONDS: AtomicI64 = AtomicI64::new(300);

/// Sets the tolerationSeconds the DefaultTolerationSeconds admission gives pods for the
/// not-ready and unreachable NoExecute taints (kube-apiserver's
/// `--default-not-ready-toleration-seconds` / `--default-unreachable-toleration-seconds`; 300 by
/// default). A process-wide setting, as admission configuration is.
pub fn set_default_toleration_seconds(not_ready: i64, unreachable: i64) {
    NOT_READY_TOLERATION_SECONDS.store(not_ready, Ordering::Relaxed);
    UNREACHABLE_TOLERATION_SECONDS.store(unreachable, Ordering::Relaxed);
}

/// Adds a NoExecute toleration of `taint` for `seconds` unless one that covers it exists.
fn tolerate_for(spec: &mut Obj, taint: &str, seconds: i64) {
    let covered = spec.get("tolerations").and_then(Value::as_array).is_some_and(|ts| {
        ts.iter().any(|t| {
            let key = t.get("key").and_then(Value::as_str).unwrap_or_default();
            let effect = t.get("effect").and_then(Value::as_str).unwrap_or_default();
            (key == taint || key.is_empty()) && (effect == "NoExecute" || effect.is_empty())
        })
    });
    if covered {
        return;
    }
    set(spec, "tolerations", json!([]));
    if let Some(ts) = spec.get_mut("tolerations").and_then(Value::as_array_mut) {
        ts.push(json!({"key": taint, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": seconds}));
    }
}

/// SetDefaults_PodSpec and the defaults of everything inside a pod spec.
fn pod_spec_defaults(spec: &mut Obj, restart_always: bool) {
    set(spec, "dnsPolicy", json!("ClusterFirst"));
    if restart_always {
        set(spec, "restartPolicy", json!("Always"));
    }
    set(spec, "terminationGracePeriodSeconds", json!(30));
    set(spec, "securityContext", json!({}));
    set(spec, "schedulerName", json!("default-scheduler"));
    for key in ["containers", "initContainers"] {
        for c in each(spec, key) {
            container(c);
        }
    }
    for c in each(spec, "ephemeralContainers") {
        container(c);
    }
    for v in each(spec, "volumes") {
        volume(v);
    }
}

fn container(c: &mut Obj) {
    set(c, "terminationMessagePath", json!("/dev/termination-log"));
    set(c, "terminationMessagePolicy", json!("File"));
    if is_unset(c, "imagePullPolicy") {
        let image = c.get("image").and_then(Value::as_str).unwrap_or_default();
        c.insert("imagePullPolicy".into(), json!(pull_policy_for(image)));
    }
    set(c, "resources", json!({}));
    default_protocols(c, "ports");
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(p) = child(c, probe) {
            set(p, "timeoutSeconds", json!(1));
            set(p, "periodSeconds", json!(10));
            set(p, "successThreshold", json!(1));
            set(p, "failureThreshold", json!(3));
            http_get(p);
        }
    }
    if let Some(lifecycle) = child(c, "lifecycle") {
        for hook in ["postStart", "preStop"] {
            if let Some(h) = child(lifecycle, hook) {
                http_get(h);
            }
        }
    }
    for env in each(c, "env") {
        if let Some(field_ref) = child(env, "valueFrom").and_then(|vf| child(vf, "fieldRef")) {
            set(field_ref, "apiVersion", json!("v1"));
        }
    }
}

fn http_get(handler: &mut Obj) {
    if let Some(get) = child(handler, "httpGet") {
        set(get, "path", json!("/"));
        set(get, "scheme", json!("HTTP"));
    }
}

/// `:latest` or no tag pulls every time; a digest or any other tag pulls only when missing.
fn pull_policy_for(image: &str) -> &'static str {
    if image.contains('@') {
        return "IfNotPresent";
    }
    // The tag follows the last ':' after the last '/', so a registry port is not a tag.
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.rsplit_once(':') {
        Some((_, "latest")) | None => "Always",
        Some(_) => "IfNotPresent",
    }
}

fn volume(v: &mut Obj) {
    if crate::validation::pod::VOLUME_SOURCES.iter().all(|s| is_unset(v, s)) {
        v.insert("emptyDir".into(), json!({}));
    }
    for source in ["configMap", "secret", "downwardAPI", "projected"] {
        if let Some(s) = child(v, source) {
            set(s, "defaultMode", json!(420));
        }
    }
    if let Some(h) = child(v, "hostPath") {
        set(h, "type", json!(""));
    }
    if let Some(d) = child(v, "downwardAPI") {
        for item in each(d, "items") {
            if let Some(f) = child(item, "fieldRef") {
                set(f, "apiVersion", json!("v1"));
            }
        }
    }
    if let Some(p) = child(v, "projected") {
        for src in each(p, "sources") {
            if let Some(t) = child(src, "serviceAccountToken") {
                set(t, "expirationSeconds", json!(3600));
            }
            if let Some(d) = child(src, "downwardAPI") {
                for item in each(d, "items") {
                    if let Some(f) = child(item, "fieldRef") {
                        set(f, "apiVersion", json!("v1"));
                    }
                }
            }
        }
    }
}

fn service(root: &mut Obj) {
    let Some(spec) = ensure(root, "spec") else { return };
    set(spec, "type", json!("ClusterIP"));
    set(spec, "sessionAffinity", json!("None"));
    let ty = spec.get("type").and_then(Value::as_str).unwrap_or_default().to_string();
    for port in each(spec, "ports") {
        set(port, "protocol", json!("TCP"));
        // An unset targetPort (or Go's zero value 0) means "same as port".
        let target_missing = port.get("targetPort").is_none_or(|t| t.is_null() || t == &json!(0) || t == &json!(""));
        if target_missing && let Some(p) = port.get("port").cloned() {
            port.insert("targetPort".into(), p);
        }
    }
    if spec.get("sessionAffinity").and_then(Value::as_str) == Some("ClientIP")
        && let Some(cfg) = ensure(spec, "sessionAffinityConfig")
        && let Some(client_ip) = ensure(cfg, "clientIP")
    {
        set(client_ip, "timeoutSeconds", json!(10800));
    }
    if ty != "ExternalName" {
        set(spec, "internalTrafficPolicy", json!("Cluster"));
        set(spec, "ipFamilyPolicy", json!("SingleStack"));
        if spec.get("ipFamilies").and_then(Value::as_array).is_none_or(Vec::is_empty) {
            spec.insert("ipFamilies".into(), json!(["IPv4"]));
        }
    }
    if ty == "NodePort" || ty == "LoadBalancer" {
        set(spec, "externalTrafficPolicy", json!("Cluster"));
    }
    if ty == "LoadBalancer" {
        set(spec, "allocateLoadBalancerNodePorts", json!(true));
    }
}

/// Copies non-empty template labels to metadata.labels when those are empty (as Kubernetes
/// defaults ReplicationControllers and Jobs); returns the template labels.
fn labels_from_template(root: &mut Obj) -> Option<Map<String, Value>> {
    let template_labels = root
        .get("spec")
        .and_then(|s| s.get("template"))
        .and_then(|t| t.get("metadata"))
        .and_then(|m| m.get("labels"))
        .and_then(Value::as_object)
        .filter(|l| !l.is_empty())
        .cloned();
    if let Some(labels) = &template_labels
        && let Some(meta) = ensure(root, "metadata")
        && meta.get("labels").and_then(Value::as_object).is_none_or(Map::is_empty)
    {
        meta.insert("labels".into(), Value::Object(labels.clone()));
    }
    template_labels
}

fn replication_controller(root: &mut Obj) {
    let template_labels = labels_from_template(root);
    let Some(spec) = ensure(root, "spec") else { return };
    if let Some(labels) = template_labels
        && spec.get("selector").and_then(Value::as_object).is_none_or(Map::is_empty)
    {
        spec.insert("selector".into(), Value::Object(labels));
    }
    set(spec, "replicas", json!(1));
    template(spec, "template", TemplateOf::Workload);
}

fn deployment(root: &mut Obj) {
    let Some(spec) = ensure(root, "spec") else { return };
    set(spec, "replicas", json!(1));
    if let Some(strategy) = ensure(spec, "strategy") {
        set(strategy, "type", json!("RollingUpdate"));
        if strategy.get("type").and_then(Value::as_str) == Some("RollingUpdate")
            && let Some(ru) = ensure(strategy, "rollingUpdate")
        {
            set(ru, "maxUnavailable", json!("25%"));
            set(ru, "maxSurge", json!("25%"));
        }
    }
    set(spec, "revisionHistoryLimit", json!(10));
    set(spec, "progressDeadlineSeconds", json!(600));
    template(spec, "template", TemplateOf::Workload);
}

fn daemon_set(root: &mut Obj) {
    let Some(spec) = ensure(root, "spec") else { return };
    if let Some(strategy) = ensure(spec, "updateStrategy") {
        set(strategy, "type", json!("RollingUpdate"));
        if strategy.get("type").and_then(Value::as_str) == Some("RollingUpdate")
            && let Some(ru) = ensure(strategy, "rollingUpdate")
        {
            set(ru, "maxUnavailable", json!(1));
            set(ru, "maxSurge", json!(0));
        }
    }
    set(spec, "revisionHistoryLimit", json!(10));
    template(spec, "template", TemplateOf::Workload);
}

fn stateful_set(root: &mut Obj) {
    let Some(spec) = ensure(root, "spec") else { return };
    set(spec, "podManagementPolicy", json!("OrderedReady"));
    if let Some(strategy) = ensure(spec, "updateStrategy") {
        // Only a defaulted type brings a rollingUpdate block along, as in Kubernetes.
        if is_unset(strategy, "type") {
            strategy.insert("type".into(), json!("RollingUpdate"));
            set(strategy, "rollingUpdate", json!({}));
        }
        if strategy.get("type").and_then(Value::as_str) == Some("RollingUpdate")
            && let Some(ru) = child(strategy, "rollingUpdate")
        {
            set(ru, "partition", json!(0));
        }
    }
    if let Some(policy) = ensure(spec, "persistentVolumeClaimRetentionPolicy") {
        set(policy, "whenDeleted", json!("Retain"));
        set(policy, "whenScaled", json!("Retain"));
    }
    set(spec, "replicas", json!(1));
    set(spec, "revisionHistoryLimit", json!(10));
    for claim in each(spec, "volumeClaimTemplates") {
        pvc(claim);
    }
    template(spec, "template", TemplateOf::Workload);
}

fn pvc(root: &mut Obj) {
    if let Some(spec) = ensure(root, "spec") {
        set(spec, "volumeMode", json!("Filesystem"));
    }
    if let Some(status) = ensure(root, "status") {
        set(status, "phase", json!("Pending"));
    }
}

fn job(root: &mut Obj) {
    labels_from_template(root);
    let Some(spec) = ensure(root, "spec") else { return };
    // A non-parallel Job may leave both unset; then both are 1.
    if is_unset(spec, "completions") && is_unset(spec, "parallelism") {
        spec.insert("completions".into(), json!(1));
    }
    set(spec, "parallelism", json!(1));
    let backoff = if is_unset(spec, "backoffLimitPerIndex") { 6 } else { i32::MAX };
    set(spec, "backoffLimit", json!(backoff));
    set(spec, "completionMode", json!("NonIndexed"));
    set(spec, "suspend", json!(false));
    let replacement = if is_unset(spec, "podFailurePolicy") { "TerminatingOrFailed" } else { "Failed" };
    set(spec, "podReplacementPolicy", json!(replacement));
    if let Some(pfp) = child(spec, "podFailurePolicy") {
        for rule in each(pfp, "rules") {
            for cond in each(rule, "onPodConditions") {
                set(cond, "status", json!("True"));
            }
        }
    }
    template(spec, "template", TemplateOf::Job);
}

fn cron_job(root: &mut Obj) {
    let Some(spec) = ensure(root, "spec") else { return };
    set(spec, "concurrencyPolicy", json!("Allow"));
    set(spec, "suspend", json!(false));
    set(spec, "successfulJobsHistoryLimit", json!(3));
    set(spec, "failedJobsHistoryLimit", json!(1));
    if let Some(job_spec) = child(spec, "jobTemplate").and_then(|jt| child(jt, "spec")) {
        template(job_spec, "template", TemplateOf::Job);
    }
}

fn hpa(root: &mut Obj, version: &str) {
    let Some(spec) = ensure(root, "spec") else { return };
    set(spec, "minReplicas", json!(1));
    // autoscaling/v2 scales on 80% average CPU utilization when no metric is given.
    if version == "v2" && spec.get("metrics").and_then(Value::as_array).is_none_or(Vec::is_empty) {
        spec.insert(
            "metrics".into(),
            json!([{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}]),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::RESOURCES;

    fn res(group: &str, version: &str, kind: &str) -> &'static ResourceInfo {
        RESOURCES
            .iter()
            .find(|r| r.group == group && r.version == version && r.kind == kind)
            .expect("kind is registered")
    }

    /// Applies defaults twice, asserting the second pass changes nothing.
    fn defaulted(r: &ResourceInfo, mut v: Value) -> Value {
        apply(r, &mut v);
        let once = v.clone();
        apply(r, &mut v);
        assert_eq!(v, once, "defaults are not idempotent for {}", r.kind);
        v
    }

    #[test]
    fn pod_defaults() {
        let pod = json!({"metadata": {"name": "p"}, "spec": {"containers": [
            {"name": "a", "image": "nginx", "ports": [{"containerPort": 80}],
             "livenessProbe": {"httpGet": {"port": 80}},
             "resources": {"limits": {"cpu": "1"}},
             "env": [{"name": "N", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]},
            {"name": "b", "image": "nginx:1.25"},
            {"name": "c", "image": "nginx:latest", "imagePullPolicy": "Never"},
            {"name": "d", "image": "reg:5000/nginx@sha256:abc"},
            {"name": "e", "image": "reg:5000/nginx"}],
            "volumes": [{"name": "v"}, {"name": "cm", "configMap": {"name": "x"}}, {"name": "s", "secret": {"secretName": "x"}}]}});
        let p = defaulted(res("", "v1", "Pod"), pod);
        let s = &p["spec"];
        assert_eq!(s["restartPolicy"], "Always");
        assert_eq!(s["dnsPolicy"], "ClusterFirst");
        assert_eq!(s["terminationGracePeriodSeconds"], 30);
        assert_eq!(s["schedulerName"], "default-scheduler");
        assert_eq!(s["securityContext"], json!({}));
        assert_eq!(s["enableServiceLinks"], true);
        assert_eq!(s["priority"], 0);
        assert_eq!(s["preemptionPolicy"], "PreemptLowerPriority");
        assert_eq!(s["serviceAccountName"], "default");
        assert_eq!(s["serviceAccount"], "default");
        let c = &s["containers"];
        assert_eq!(c[0]["imagePullPolicy"], "Always");
        assert_eq!(c[1]["imagePullPolicy"], "IfNotPresent");
        assert_eq!(c[2]["imagePullPolicy"], "Never");
        assert_eq!(c[3]["imagePullPolicy"], "IfNotPresent");
        assert_eq!(c[4]["imagePullPolicy"], "Always");
        assert_eq!(c[0]["terminationMessagePath"], "/dev/termination-log");
        assert_eq!(c[0]["terminationMessagePolicy"], "File");
        assert_eq!(c[0]["ports"][0]["protocol"], "TCP");
        assert_eq!(c[1]["resources"], json!({}));
        assert_eq!(c[0]["resources"]["requests"]["cpu"], "1");
        assert_eq!(
            c[0]["livenessProbe"],
            json!({"httpGet": {"port": 80, "path": "/", "scheme": "HTTP"}, "timeoutSeconds": 1,
                   "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3})
        );
        assert_eq!(c[0]["env"][0]["valueFrom"]["fieldRef"]["apiVersion"], "v1");
        assert_eq!(s["volumes"][0]["emptyDir"], json!({}));
        assert_eq!(s["volumes"][1]["configMap"]["defaultMode"], 420);
        assert_eq!(s["volumes"][2]["secret"]["defaultMode"], 420);
        assert_eq!(
            s["tolerations"],
            json!([
                {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
                {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}
            ])
        );
    }

    #[test]
    fn set_values_are_kept() {
        let pod = json!({"spec": {"restartPolicy": "Never", "dnsPolicy": "Default", "terminationGracePeriodSeconds": 0,
            "serviceAccountName": "robot", "tolerations": [{"operator": "Exists"}], "containers": []}});
        let p = defaulted(res("", "v1", "Pod"), pod);
        assert_eq!(p["spec"]["restartPolicy"], "Never");
        assert_eq!(p["spec"]["dnsPolicy"], "Default");
        assert_eq!(p["spec"]["terminationGracePeriodSeconds"], 0);
        assert_eq!(p["spec"]["serviceAccountName"], "robot");
        assert_eq!(p["spec"]["tolerations"], json!([{"operator": "Exists"}]));
    }

    #[test]
    fn workload_defaults() {
        let tmpl =
            json!({"metadata": {"labels": {"app": "a"}}, "spec": {"containers": [{"name": "c", "image": "i:1"}]}});
        let d = defaulted(res("apps", "v1", "Deployment"), json!({"spec": {"template": tmpl.clone()}}));
        assert_eq!(d["spec"]["replicas"], 1);
        assert_eq!(
            d["spec"]["strategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}})
        );
        assert_eq!(d["spec"]["revisionHistoryLimit"], 10);
        assert_eq!(d["spec"]["progressDeadlineSeconds"], 600);
        let ts = &d["spec"]["template"]["spec"];
        assert_eq!(ts["restartPolicy"], "Always");
        assert_eq!(ts["containers"][0]["imagePullPolicy"], "IfNotPresent");
        // Pod-only defaults stay out of templates.
        assert!(ts.get("serviceAccountName").is_none());
        assert!(ts.get("tolerations").is_none());
        assert!(ts.get("enableServiceLinks").is_none());

        let d = defaulted(res("apps", "v1", "Deployment"), json!({"spec": {"strategy": {"type": "Recreate"}}}));
        assert_eq!(d["spec"]["strategy"], json!({"type": "Recreate"}));

        let ds = defaulted(res("apps", "v1", "DaemonSet"), json!({"spec": {"template": tmpl.clone()}}));
        assert_eq!(
            ds["spec"]["updateStrategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}})
        );
        assert_eq!(ds["spec"]["revisionHistoryLimit"], 10);

        let sts = defaulted(
            res("apps", "v1", "StatefulSet"),
            json!({"spec": {"template": tmpl.clone(), "volumeClaimTemplates": [{"metadata": {"name": "d"}, "spec": {}}]}}),
        );
        assert_eq!(sts["spec"]["replicas"], 1);
        assert_eq!(sts["spec"]["podManagementPolicy"], "OrderedReady");
        assert_eq!(sts["spec"]["updateStrategy"], json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}));
        assert_eq!(
            sts["spec"]["persistentVolumeClaimRetentionPolicy"],
            json!({"whenDeleted": "Retain", "whenScaled": "Retain"})
        );
        assert_eq!(sts["spec"]["volumeClaimTemplates"][0]["spec"]["volumeMode"], "Filesystem");

        let rs = defaulted(res("apps", "v1", "ReplicaSet"), json!({"spec": {"template": tmpl.clone()}}));
        assert_eq!(rs["spec"]["replicas"], 1);

        let rc = defaulted(res("", "v1", "ReplicationController"), json!({"spec": {"template": tmpl.clone()}}));
        assert_eq!(rc["spec"]["selector"], json!({"app": "a"}));
        assert_eq!(rc["metadata"]["labels"], json!({"app": "a"}));
        assert_eq!(rc["spec"]["replicas"], 1);
    }

    #[test]
    fn job_and_cronjob_defaults() {
        let tmpl = json!({"metadata": {"labels": {"app": "a"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}});
        let j = defaulted(res("batch", "v1", "Job"), json!({"spec": {"template": tmpl.clone()}}));
        let s = &j["spec"];
        assert_eq!((s["completions"].clone(), s["parallelism"].clone()), (json!(1), json!(1)));
        assert_eq!(s["backoffLimit"], 6);
        assert_eq!(s["completionMode"], "NonIndexed");
        assert_eq!(s["suspend"], false);
        assert_eq!(s["podReplacementPolicy"], "TerminatingOrFailed");
        assert!(s.get("manualSelector").is_none());
        assert!(s["template"]["spec"].get("restartPolicy").is_none());
        assert_eq!(j["metadata"]["labels"], json!({"app": "a"}));

        let j = defaulted(res("batch", "v1", "Job"), json!({"spec": {"parallelism": 3}}));
        assert!(j["spec"].get("completions").is_none());
        assert_eq!(j["spec"]["parallelism"], 3);

        let cj = defaulted(
            res("batch", "v1", "CronJob"),
            json!({"spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": tmpl}}}}),
        );
        let s = &cj["spec"];
        assert_eq!(s["concurrencyPolicy"], "Allow");
        assert_eq!(s["suspend"], false);
        assert_eq!(s["successfulJobsHistoryLimit"], 3);
        assert_eq!(s["failedJobsHistoryLimit"], 1);
        let pod_spec = &s["jobTemplate"]["spec"]["template"]["spec"];
        assert_eq!(pod_spec["dnsPolicy"], "ClusterFirst");
        assert!(pod_spec.get("restartPolicy").is_none());
    }

    #[test]
    fn service_defaults() {
        let svc = defaulted(
            res("", "v1", "Service"),
            json!({"spec": {"ports": [{"port": 80}, {"port": 81, "targetPort": "web"}]}}),
        );
        let s = &svc["spec"];
        assert_eq!(s["type"], "ClusterIP");
        assert_eq!(s["sessionAffinity"], "None");
        assert_eq!(s["ports"][0], json!({"port": 80, "targetPort": 80, "protocol": "TCP"}));
        assert_eq!(s["ports"][1]["targetPort"], "web");
        assert_eq!(s["internalTrafficPolicy"], "Cluster");
        assert_eq!(s["ipFamilyPolicy"], "SingleStack");
        assert_eq!(s["ipFamilies"], json!(["IPv4"]));
        assert!(s.get("externalTrafficPolicy").is_none());

        let np = defaulted(res("", "v1", "Service"), json!({"spec": {"type": "NodePort", "ports": [{"port": 80}]}}));
        assert_eq!(np["spec"]["externalTrafficPolicy"], "Cluster");

        let en =
            defaulted(res("", "v1", "Service"), json!({"spec": {"type": "ExternalName", "externalName": "x.com"}}));
        assert!(en["spec"].get("ipFamilies").is_none());
        assert!(en["spec"].get("internalTrafficPolicy").is_none());
    }

    #[test]
    fn other_defaults() {
        let ns = defaulted(res("", "v1", "Namespace"), json!({"metadata": {"name": "n"}}));
        assert_eq!(ns["spec"]["finalizers"], json!(["kubernetes"]));
        let secret = defaulted(res("", "v1", "Secret"), json!({}));
        assert_eq!(secret["type"], "Opaque");
        let pvc = defaulted(res("", "v1", "PersistentVolumeClaim"), json!({"spec": {}}));
        assert_eq!(pvc["spec"]["volumeMode"], "Filesystem");
        let pv = defaulted(res("", "v1", "PersistentVolume"), json!({"spec": {}}));
        assert_eq!(pv["spec"]["persistentVolumeReclaimPolicy"], "Retain");
        assert_eq!(pv["spec"]["volumeMode"], "Filesystem");
        let hpa = defaulted(res("autoscaling", "v2", "HorizontalPodAutoscaler"), json!({"spec": {"maxReplicas": 3}}));
        assert_eq!(hpa["spec"]["minReplicas"], 1);
        let eps = defaulted(res("discovery.k8s.io", "v1", "EndpointSlice"), json!({"ports": [{"port": 80}]}));
        assert_eq!(eps["ports"][0]["protocol"], "TCP");
    }

    #[test]
    fn odd_shapes_do_not_panic() {
        for r in RESOURCES {
            for v in [
                json!(null),
                json!([]),
                json!({"spec": 5}),
                json!({"spec": {"template": {"spec": {"containers": [1, "x"]}}}}),
            ] {
                let mut v = v;
                apply(r, &mut v);
            }
        }
    }
}
