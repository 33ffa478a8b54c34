//! Tests of validation: exact field paths and messages as Kubernetes reports them.

use super::*;
use crate::registry::RESOURCES;
use crate::schema::{apply_defaults, normalize};
use serde_json::json;

fn res(group: &str, version: &str, kind: &str) -> &'static ResourceInfo {
    RESOURCES.iter().find(|r| r.group == group && r.version == version && r.kind == kind).expect("kind is registered")
}

/// Decodes and defaults `obj` as the server would before validating it.
fn prepare(r: &ResourceInfo, obj: Value) -> Value {
    let mut v = normalize(r, &obj).expect("decodes").object;
    apply_defaults(r, &mut v);
    v
}

fn create(r: &ResourceInfo, obj: Value) -> Vec<FieldError> {
    validate_create(r, &prepare(r, obj))
}

fn fields(errs: &[FieldError]) -> Vec<&str> {
    errs.iter().map(|e| e.field.as_str()).collect()
}

fn pod(spec: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default"}, "spec": spec})
}

fn deployment(selector: Value, labels: Value) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "default"},
           "spec": {"selector": selector, "template": {"metadata": {"labels": labels},
                    "spec": {"containers": [{"name": "web", "image": "nginx"}]}}}})
}

#[test]
fn valid_objects_pass() {
    assert_eq!(create(res("", "v1", "Pod"), pod(json!({"containers": [{"name": "c", "image": "nginx"}]}))), vec![]);
    assert_eq!(
        create(
            res("apps", "v1", "Deployment"),
            deployment(json!({"matchLabels": {"app": "web"}}), json!({"app": "web"}))
        ),
        vec![]
    );
    let svc = json!({"metadata": {"name": "web", "namespace": "default"}, "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}});
    assert_eq!(create(res("", "v1", "Service"), svc), vec![]);
    let cm = json!({"metadata": {"name": "c", "namespace": "default"}, "data": {"a.conf": "x"}});
    assert_eq!(create(res("", "v1", "ConfigMap"), cm), vec![]);
    let ns = json!({"metadata": {"name": "team-a"}});
    assert_eq!(create(res("", "v1", "Namespace"), ns), vec![]);
    let job = json!({"metadata": {"name": "j", "namespace": "default"}, "spec": {"template": {"spec": {
        "restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}}});
    assert_eq!(create(res("batch", "v1", "Job"), job), vec![]);
    let cj = json!({"metadata": {"name": "cj", "namespace": "default"}, "spec": {"schedule": "*/5 * * * 1-5", "timeZone": "Europe/Berlin",
        "jobTemplate": {"spec": {"template": {"spec": {"restartPolicy": "OnFailure", "containers": [{"name": "c", "image": "busybox"}]}}}}}});
    assert_eq!(create(res("batch", "v1", "CronJob"), cj), vec![]);
    let sts = json!({"metadata": {"name": "db", "namespace": "default"}, "spec": {"serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
        "template": {"metadata": {"labels": {"app": "db"}}, "spec": {"containers": [{"name": "db", "image": "postgres:16"}]}}}});
    assert_eq!(create(res("apps", "v1", "StatefulSet"), sts), vec![]);
    let ds = json!({"metadata": {"name": "agent", "namespace": "kube-system"}, "spec": {"selector": {"matchLabels": {"app": "a"}},
        "template": {"metadata": {"labels": {"app": "a"}}, "spec": {"containers": [{"name": "a", "image": "agent:1"}]}}}});
    assert_eq!(create(res("apps", "v1", "DaemonSet"), ds), vec![]);
    let pvc = json!({"metadata": {"name": "data", "namespace": "default"}, "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}});
    assert_eq!(create(res("", "v1", "PersistentVolumeClaim"), pvc), vec![]);
    let hpa = json!({"metadata": {"name": "h", "namespace": "default"}, "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}, "maxReplicas": 5}});
    assert_eq!(create(res("autoscaling", "v2", "HorizontalPodAutoscaler"), hpa), vec![]);
    let ing = json!({"metadata": {"name": "i", "namespace": "default"}, "spec": {"rules": [{"host": "example.com", "http": {"paths": [
        {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}});
    assert_eq!(create(res("networking.k8s.io", "v1", "Ingress"), ing), vec![]);
}

#[test]
fn object_meta_names_and_labels() {
    let r = res("", "v1", "ConfigMap");
    let errs = create(r, json!({"metadata": {"namespace": "default"}}));
    assert_eq!(errs, vec![FieldError::required("metadata.name", "name or generateName is required")]);

    let errs = create(r, json!({"metadata": {"name": "Bad_Name", "namespace": "default"}}));
    assert_eq!(fields(&errs), vec!["metadata.name"]);
    assert_eq!(
        errs[0].message,
        "Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
    );

    let errs = create(res("", "v1", "Namespace"), json!({"metadata": {"name": "a.b"}}));
    assert_eq!(fields(&errs), vec!["metadata.name"]);
    assert!(errs[0].message.contains("RFC 1123 label"), "{}", errs[0].message);

    let errs = create(
        res("", "v1", "Service"),
        json!({"metadata": {"name": "1abc", "namespace": "default"}, "spec": {"ports": [{"port": 80}]}}),
    );
    assert_eq!(fields(&errs), vec!["metadata.name"]);

    let long = "a".repeat(64);
    let errs = create(
        r,
        json!({"metadata": {"name": "c", "namespace": "default",
        "labels": {"ok": "fine", "bad key": "v", "k": "bad value!", "example.com/x": long.clone()}}}),
    );
    assert_eq!(fields(&errs), vec!["metadata.labels"; 3], "{errs:?}");
    assert!(errs.iter().any(|e| e.message == "Invalid value: \"bad key\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"));
    assert!(errs.iter().any(|e| e.message.ends_with("must be no more than 63 characters")));

    let errs = create(
        r,
        json!({"metadata": {"name": "c", "namespace": "default", "annotations": {"a/b/c": "x", "big": "x".repeat(300 * 1024)}}}),
    );
    assert_eq!(fields(&errs), vec!["metadata.annotations", "metadata.annotations"]);
    assert_eq!(errs[1].reason, "FieldValueTooLong");

    let errs = create(
        r,
        json!({"metadata": {"name": "c", "namespace": "default", "finalizers": ["example.com/ok", "bad/fin/x"],
        "ownerReferences": [{"apiVersion": "v1", "kind": "A", "name": "a", "uid": "1", "controller": true},
                            {"apiVersion": "v1", "kind": "B", "name": "b", "uid": "", "controller": true}]}}),
    );
    assert_eq!(
        fields(&errs),
        vec!["metadata.ownerReferences.uid", "metadata.ownerReferences", "metadata.finalizers"],
        "{errs:?}"
    );

    let errs = create(r, json!({"metadata": {"name": "c"}}));
    assert_eq!(errs, vec![FieldError::required("metadata.namespace", "")]);
}

#[test]
fn pod_spec_errors_have_kubernetes_paths() {
    let r = res("", "v1", "Pod");
    assert_eq!(create(r, pod(json!({}))), vec![FieldError::required("spec.containers", "")]);

    let errs = create(
        r,
        pod(json!({
            "initContainers": [{"name": "dup", "image": "busybox"}],
            "containers": [
                {"name": "dup", "image": "nginx", "ports": [{"containerPort": 0}, {"containerPort": 70000, "protocol": "ICMP", "name": "Web"}],
                 "env": [{"name": ""}, {"name": "1BAD"}],
                 "volumeMounts": [{"name": "missing", "mountPath": "/x"}, {"name": "data", "mountPath": ""}],
                 "resources": {"requests": {"cpu": "2", "memory": "1Gi"}, "limits": {"cpu": "1", "memory": "2Gi"}}},
                {"name": "", "image": ""}],
            "volumes": [{"name": "data", "emptyDir": {}}, {"name": "data", "configMap": {"name": "c"}}],
            "restartPolicy": "Sometimes",
            "terminationGracePeriodSeconds": -1,
            "activeDeadlineSeconds": 0
        })),
    );
    let got = fields(&errs);
    for want in [
        "spec.volumes[1].name",
        "spec.containers[0].name",
        "spec.containers[0].ports[0].containerPort",
        "spec.containers[0].ports[1].name",
        "spec.containers[0].ports[1].containerPort",
        "spec.containers[0].ports[1].protocol",
        "spec.containers[0].env[0].name",
        "spec.containers[0].env[1].name",
        "spec.containers[0].volumeMounts[0].name",
        "spec.containers[0].volumeMounts[1].mountPath",
        "spec.containers[0].resources.requests[cpu]",
        "spec.containers[1].name",
        "spec.containers[1].image",
        "spec.restartPolicy",
        "spec.terminationGracePeriodSeconds",
        "spec.activeDeadlineSeconds",
    ] {
        assert!(got.contains(&want), "missing {want} in {errs:#?}");
    }
    let dup = errs.iter().find(|e| e.field == "spec.containers[0].name").unwrap();
    assert_eq!(dup.message, "Duplicate value: \"dup\"");
    let cpu = errs.iter().find(|e| e.field == "spec.containers[0].resources.requests[cpu]").unwrap();
    assert_eq!(cpu.message, "Invalid value: \"2\": must be less than or equal to cpu limit of 1");
    assert!(!got.contains(&"spec.containers[0].resources.requests[memory]"));
    let rp = errs.iter().find(|e| e.field == "spec.restartPolicy").unwrap();
    assert_eq!(rp.message, "Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\"");
    let vm = errs.iter().find(|e| e.field == "spec.containers[0].volumeMounts[0].name").unwrap();
    assert_eq!(vm.reason, "FieldValueNotFound");
}

#[test]
fn workload_selectors_and_templates() {
    let r = res("apps", "v1", "Deployment");
    let errs = create(r, deployment(json!({"matchLabels": {"app": "other"}}), json!({"app": "web", "tier": "fe"})));
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!(errs[0].field, "spec.template.metadata.labels");
    assert_eq!(
        errs[0].message,
        "Invalid value: map[string]string{\"app\":\"web\", \"tier\":\"fe\"}: `selector` does not match template `labels`"
    );

    let errs = create(r, deployment(json!(null), json!({"app": "web"})));
    assert_eq!(fields(&errs), vec!["spec.selector", "spec.template.metadata.labels"]);
    assert_eq!(errs[0].message, "Required value");

    let mut d = deployment(json!({"matchLabels": {"app": "web"}}), json!({"app": "web"}));
    d["spec"]["template"]["spec"]["restartPolicy"] = json!("Never");
    d["spec"]["replicas"] = json!(-1);
    d["spec"]["strategy"] = json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 0}});
    let errs = create(r, d);
    assert_eq!(
        fields(&errs),
        vec!["spec.replicas", "spec.template.spec.restartPolicy", "spec.strategy.rollingUpdate.maxUnavailable"]
    );
    assert_eq!(errs[1].message, "Unsupported value: \"Never\": supported values: \"Always\"");

    let mut d = deployment(json!({"matchLabels": {"app": "web"}}), json!({"app": "web"}));
    d["spec"]["strategy"] = json!({"type": "Recreate", "rollingUpdate": {"maxSurge": 1}});
    assert_eq!(fields(&create(r, d)), vec!["spec.strategy.rollingUpdate"]);

    let mut d = deployment(json!({"matchLabels": {"app": "web"}}), json!({"app": "web"}));
    d["spec"]["template"]["spec"]["containers"][0]["image"] = json!("");
    assert_eq!(fields(&create(r, d)), vec!["spec.template.spec.containers[0].image"]);

    let job = json!({"metadata": {"name": "j", "namespace": "default"}, "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "b"}]}}}});
    let errs = create(res("batch", "v1", "Job"), job);
    assert_eq!(
        errs,
        vec![FieldError::required("spec.template.spec.restartPolicy", "valid values: \"OnFailure\", \"Never\"")]
    );

    let cj = json!({"metadata": {"name": "cj", "namespace": "default"}, "spec": {"schedule": "61 * * *",
        "jobTemplate": {"spec": {"template": {"spec": {"restartPolicy": "Always", "containers": [{"name": "c", "image": "b"}]}}}}}});
    let errs = create(res("batch", "v1", "CronJob"), cj);
    assert_eq!(fields(&errs), vec!["spec.schedule", "spec.jobTemplate.spec.template.spec.restartPolicy"]);
    assert_eq!(errs[1].message, "Unsupported value: \"Always\": supported values: \"OnFailure\", \"Never\"");

    let rc = json!({"metadata": {"name": "rc", "namespace": "default"}, "spec": {"selector": {"app": "x"},
        "template": {"metadata": {"labels": {"app": "y"}}, "spec": {"containers": [{"name": "c", "image": "b"}]}}}});
    assert_eq!(fields(&create(res("", "v1", "ReplicationController"), rc)), vec!["spec.template.metadata.labels"]);
}

#[test]
fn cron_schedules() {
    use super::workloads::parse_cron;
    for ok in [
        "* * * * *",
        "0 0 1 1 0",
        "*/15 9-17 * JAN-dec mon-FRI",
        "@hourly",
        "@every 1h30m",
        "5,10 0 ? * *",
        "0 0 1/2 * *",
    ] {
        assert_eq!(parse_cron(ok), Ok(()), "{ok}");
    }
    for bad in [
        "",
        "* * * *",
        "60 * * * *",
        "* 24 * * *",
        "* * 0 * *",
        "* * * 13 *",
        "* * * * 7",
        "5-1 * * * *",
        "*/0 * * * *",
        "x * * * *",
        "@often",
    ] {
        assert!(parse_cron(bad).is_err(), "{bad}");
    }
    assert_eq!(parse_cron("60 * * * *"), Err("end of range (60) above maximum (59): 60".to_string()));
}

#[test]
fn service_rules() {
    let r = res("", "v1", "Service");
    let svc = |spec: Value| json!({"metadata": {"name": "s", "namespace": "default"}, "spec": spec});
    assert_eq!(fields(&create(r, svc(json!({})))), vec!["spec.ports"]);
    assert_eq!(create(r, svc(json!({"clusterIP": "None"}))), vec![]);
    assert_eq!(create(r, svc(json!({"type": "ExternalName", "externalName": "example.com"}))), vec![]);
    let errs = create(
        r,
        svc(json!({"type": "Weird", "clusterIP": "1.2.3", "sessionAffinity": "Sticky",
        "ports": [{"port": 0, "protocol": "ICMP"}, {"name": "a", "port": 80, "nodePort": 30000}]})),
    );
    assert_eq!(
        fields(&errs),
        vec![
            "spec.type",
            "spec.clusterIPs[0]",
            "spec.ports[0].name",
            "spec.ports[0].port",
            "spec.ports[0].protocol",
            "spec.sessionAffinity"
        ],
        "{errs:#?}"
    );
    let errs = create(r, svc(json!({"type": "ClusterIP", "ports": [{"port": 80, "nodePort": 30000}]})));
    assert_eq!(fields(&errs), vec!["spec.ports[0].nodePort"]);
    let errs = create(r, svc(json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 80}]})));
    assert_eq!(fields(&errs), vec!["spec.ports[0].nodePort"]);
    let errs = create(r, svc(json!({"ports": [{"name": "a", "port": 80}, {"name": "a", "port": 81}]})));
    assert_eq!(errs, vec![FieldError::duplicate("spec.ports[1].name", &json!("a"))]);
}

#[test]
fn config_and_storage() {
    let cm = json!({"metadata": {"name": "c", "namespace": "default"}, "data": {"bad key": "x", "..x": "y"}, "binaryData": {"..x": "eA=="}});
    let errs = create(res("", "v1", "ConfigMap"), cm);
    assert_eq!(fields(&errs), vec!["data[..x]", "data[bad key]", "binaryData[..x]", "binaryData[..x]"], "{errs:#?}");
    assert_eq!(
        errs[1].message,
        format!(
            "Invalid value: \"bad key\": {}",
            "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"
        )
    );

    let tls = json!({"metadata": {"name": "t", "namespace": "default"}, "type": "kubernetes.io/tls", "data": {"tls.crt": "eA=="}});
    assert_eq!(create(res("", "v1", "Secret"), tls), vec![FieldError::required("data[tls.key]", "")]);

    let pvc = json!({"metadata": {"name": "d", "namespace": "default"}, "spec": {}});
    assert_eq!(
        fields(&create(res("", "v1", "PersistentVolumeClaim"), pvc)),
        vec!["spec.accessModes", "spec.resources[storage]"]
    );
    let pv = json!({"metadata": {"name": "v"}, "spec": {"accessModes": ["ReadWriteOnce"]}});
    assert_eq!(fields(&create(res("", "v1", "PersistentVolume"), pv)), vec!["spec.capacity", "spec"]);

    let hpa = json!({"metadata": {"name": "h", "namespace": "default"}, "spec": {"scaleTargetRef": {}, "minReplicas": 5, "maxReplicas": 2}});
    assert_eq!(
        fields(&create(res("autoscaling", "v2", "HorizontalPodAutoscaler"), hpa)),
        vec!["spec.scaleTargetRef.kind", "spec.scaleTargetRef.name", "spec.maxReplicas"]
    );
    let lease = json!({"metadata": {"name": "l", "namespace": "default"}, "spec": {"leaseDurationSeconds": 0}});
    assert_eq!(fields(&create(res("coordination.k8s.io", "v1", "Lease"), lease)), vec!["spec.leaseDurationSeconds"]);
    let eps = json!({"metadata": {"name": "e", "namespace": "default"}, "addressType": "IPv4", "endpoints": [{"addresses": []}, {"addresses": ["::1"]}]});
    assert_eq!(
        fields(&create(res("discovery.k8s.io", "v1", "EndpointSlice"), eps)),
        vec!["endpoints[0].addresses", "endpoints[1].addresses[0]"]
    );
    let ing = json!({"metadata": {"name": "i", "namespace": "default"}, "spec": {"rules": [{"http": {"paths": [{"path": "x", "backend": {}}]}}]}});
    assert_eq!(
        fields(&create(res("networking.k8s.io", "v1", "Ingress"), ing)),
        vec!["spec.rules[0].http.paths[0].pathType", "spec.rules[0].http.paths[0].backend"]
    );
    let ev = json!({"metadata": {"name": "e", "namespace": "default"}});
    assert_eq!(fields(&create(res("", "v1", "Event"), ev)), vec!["involvedObject"]);
}

#[test]
fn updates_enforce_immutability() {
    let r = res("", "v1", "Pod");
    let old = prepare(r, pod(json!({"containers": [{"name": "c", "image": "nginx:1"}]})));
    let mut new = old.clone();
    new["spec"]["containers"][0]["image"] = json!("nginx:2");
    assert_eq!(validate_update(r, &new, &old), vec![]);
    new["spec"]["restartPolicy"] = json!("Never");
    new["metadata"]["name"] = json!("other");
    let errs = validate_update(r, &new, &old);
    assert_eq!(fields(&errs), vec!["metadata.name", "spec"]);
    assert!(
        errs[1]
            .message
            .starts_with("Forbidden: pod updates may not change fields other than `spec.containers[*].image`")
    );
    assert_eq!(errs[0].message, "Invalid value: \"other\": field is immutable");

    let r = res("apps", "v1", "Deployment");
    let old = prepare(r, deployment(json!({"matchLabels": {"app": "web"}}), json!({"app": "web"})));
    let new = prepare(r, deployment(json!({"matchLabels": {"app": "web", "x": "y"}}), json!({"app": "web", "x": "y"})));
    assert_eq!(fields(&validate_update(r, &new, &old)), vec!["spec.selector"]);

    let r = res("", "v1", "ConfigMap");
    let old =
        prepare(r, json!({"metadata": {"name": "c", "namespace": "default"}, "data": {"a": "1"}, "immutable": true}));
    let mut new = old.clone();
    new["data"]["a"] = json!("2");
    new["immutable"] = json!(false);
    assert_eq!(fields(&validate_update(r, &new, &old)), vec!["immutable", "data"]);

    let r = res("", "v1", "Secret");
    let old = prepare(r, json!({"metadata": {"name": "s", "namespace": "default"}}));
    let mut new = old.clone();
    new["type"] = json!("example.com/other");
    assert_eq!(fields(&validate_update(r, &new, &old)), vec!["type"]);

    let r = res("", "v1", "Service");
    let mut old =
        prepare(r, json!({"metadata": {"name": "s", "namespace": "default"}, "spec": {"ports": [{"port": 80}]}}));
    old["spec"]["clusterIP"] = json!("10.0.0.5");
    let mut new = old.clone();
    new["spec"]["clusterIP"] = json!("10.0.0.6");
    assert_eq!(fields(&validate_update(r, &new, &old)), vec!["spec.clusterIP"]);

    let r = res("apps", "v1", "StatefulSet");
    let sts = |svc: &str, replicas: i64| {
        json!({"metadata": {"name": "db", "namespace": "default"}, "spec": {"serviceName": svc, "replicas": replicas,
        "selector": {"matchLabels": {"app": "db"}}, "template": {"metadata": {"labels": {"app": "db"}}, "spec": {"containers": [{"name": "db", "image": "pg"}]}}}})
    };
    let old = prepare(r, sts("db", 1));
    assert_eq!(validate_update(r, &prepare(r, sts("db", 3)), &old), vec![]);
    assert_eq!(fields(&validate_update(r, &prepare(r, sts("other", 1)), &old)), vec!["spec"]);

    let r = res("", "v1", "PersistentVolumeClaim");
    let claim = |size: &str, mode: &str| {
        json!({"metadata": {"name": "d", "namespace": "default"},
        "spec": {"accessModes": [mode], "resources": {"requests": {"storage": size}}}})
    };
    let old = prepare(r, claim("1Gi", "ReadWriteOnce"));
    assert_eq!(validate_update(r, &prepare(r, claim("2Gi", "ReadWriteOnce")), &old), vec![]);
    assert_eq!(fields(&validate_update(r, &prepare(r, claim("1Gi", "ReadWriteMany")), &old)), vec!["spec"]);

    let r = res("batch", "v1", "Job");
    let job = |completions: i64| {
        json!({"metadata": {"name": "j", "namespace": "default"}, "spec": {"completions": completions,
        "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "b"}]}}}})
    };
    assert_eq!(fields(&validate_update(r, &prepare(r, job(2)), &prepare(r, job(1)))), vec!["spec.completions"]);
}

#[test]
fn wrong_json_types_never_panic() {
    let shapes = [
        json!(null),
        json!(1),
        json!({"metadata": 5, "spec": "x"}),
        json!({"metadata": {"name": 5, "labels": [1], "annotations": "a", "ownerReferences": {}}, "spec": {"containers": {}, "template": 1,
               "selector": [], "ports": "p", "rules": [1, {"http": 2}]}, "data": [1], "subsets": [{"ports": [1]}]}),
        json!({"spec": {"containers": [1, {"ports": [null, {"containerPort": "x"}], "resources": {"limits": {"cpu": 1}}}],
               "template": {"spec": {"containers": [[]]}}, "jobTemplate": {"spec": 1}}}),
    ];
    for r in RESOURCES {
        for s in &shapes {
            let _ = validate_create(r, s);
            let _ = validate_update(r, s, &shapes[3]);
        }
    }
}

#[test]
fn statefulset_containers_may_mount_their_claim_templates() {
    let sts = json!({"metadata": {"name": "db"}, "spec": {
        "replicas": 1, "serviceName": "db", "podManagementPolicy": "OrderedReady",
        "updateStrategy": {"type": "RollingUpdate"}, "revisionHistoryLimit": 10,
        "selector": {"matchLabels": {"app": "db"}},
        "template": {"metadata": {"labels": {"app": "db"}}, "spec": {"restartPolicy": "Always", "dnsPolicy": "ClusterFirst",
            "containers": [{"name": "db", "image": "postgres", "terminationMessagePolicy": "File", "imagePullPolicy": "Always",
                "volumeMounts": [{"name": "data", "mountPath": "/var/lib/data"}]}]}},
        "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "1Gi"}}}}]}});
    let errs = create(res("apps", "v1", "StatefulSet"), sts.clone());
    assert!(!errs.iter().any(|e| e.field.contains("volumeMounts")), "{errs:?}");
    let mut unknown = sts;
    unknown["spec"]["template"]["spec"]["containers"][0]["volumeMounts"][0]["name"] = json!("other");
    let errs = create(res("apps", "v1", "StatefulSet"), unknown);
    assert!(errs.iter().any(|e| e.field == "spec.template.spec.containers[0].volumeMounts[0].name"), "{errs:?}");
}

#[test]
fn network_policies_are_defaulted_and_validated() {
    let r = res("networking.k8s.io", "v1", "NetworkPolicy");
    let policy = |spec: Value| {
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
               "metadata": {"name": "np", "namespace": "default"}, "spec": spec})
    };
    let good = prepare(
        r,
        policy(json!({"podSelector": {"matchLabels": {"app": "db"}},
            "ingress": [{"from": [{"podSelector": {}}, {"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}}],
                         "ports": [{"port": 5432}, {"port": 8000, "endPort": 8080}]}],
            "egress": [{"to": [{"namespaceSelector": {"matchLabels": {"team": "a"}}, "podSelector": {}}]}]})),
    );
    assert_eq!(validate_create(r, &good), vec![]);
    assert_eq!(good["spec"]["policyTypes"], json!(["Ingress", "Egress"]));
    assert_eq!(good["spec"]["ingress"][0]["ports"][0]["protocol"], "TCP");
    let ingress_only = prepare(r, policy(json!({"podSelector": {}})));
    assert_eq!(ingress_only["spec"]["policyTypes"], json!(["Ingress"]));

    let errs = create(
        r,
        policy(json!({"podSelector": {},
            "ingress": [{"from": [{}, {"ipBlock": {"cidr": "10.0.0.0/8", "except": ["192.168.0.0/16", "10.0.0.0/8", "x"]},
                                       "podSelector": {}}],
                         "ports": [{"port": 80, "endPort": 70, "protocol": "ICMP"}, {"port": "http", "endPort": 90}, {"endPort": 5}]}],
            "policyTypes": ["Ingress", "Sideways"]})),
    );
    let shown: Vec<String> = errs.iter().map(|e| format!("{}: {}", e.field, e.message)).collect();
    for expected in [
        "spec.ingress[0].from[0]: Required value: must specify a peer",
        "spec.ingress[0].from[1]: Forbidden: may not specify both ipBlock and another peer",
        "spec.ingress[0].from[1].ipBlock.except[0]: Invalid value: \"192.168.0.0/16\": must be a strict subset of `cidr`",
        "spec.ingress[0].from[1].ipBlock.except[1]: Invalid value: \"10.0.0.0/8\": must be a strict subset of `cidr`",
        "spec.ingress[0].from[1].ipBlock.except[2]: Invalid value: \"x\": must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)",
        "spec.ingress[0].ports[0].endPort: Invalid value: 70: must be greater than or equal to `port`",
        "spec.ingress[0].ports[1].endPort: Forbidden: may not be specified when `port` is non-numeric",
        "spec.ingress[0].ports[2].port: Required value: must be specified when endPort is specified",
        "spec.policyTypes[1]: Unsupported value: \"Sideways\": supported values: \"Egress\", \"Ingress\"",
    ] {
        assert!(shown.iter().any(|s| s == expected), "missing {expected:?} in {shown:#?}");
    }
    assert!(shown.iter().any(|s| s.starts_with("spec.ingress[0].ports[0].protocol: Unsupported value: \"ICMP\"")), "{shown:#?}");
}
