//! Server-side apply and update bookkeeping through the public API, on the shapes kubectl and
//! helm send.

use jiff::Timestamp;
use rkube_fieldmanager::{Applied, FieldManagerError, Manager, Operation, apply, update};
use serde_json::{Value, json};

const T1: &str = "2024-01-02T03:04:05Z";
const T2: &str = "2024-01-02T04:00:00Z";
const T3: &str = "2024-01-02T05:00:00Z";

fn at(t: &str) -> Timestamp {
    t.parse().unwrap()
}

fn applier(name: &str) -> Manager<'_> {
    Manager { name, operation: Operation::Apply, api_version: "apps/v1", subresource: "" }
}

fn updater(name: &str) -> Manager<'_> {
    Manager { name, operation: Operation::Update, api_version: "apps/v1", subresource: "" }
}

fn deployment(replicas: i64, image: &str) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "nginx", "namespace": "default", "labels": {"app": "nginx"}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "nginx"}},
            "template": {
                "metadata": {"labels": {"app": "nginx"}},
                "spec": {"containers": [{"name": "nginx", "image": image, "ports": [{"containerPort": 80}]}]}
            }
        }
    })
}

/// What `kubectl apply --server-side` records for [`deployment`].
fn deployment_fields() -> Value {
    json!({
        "f:metadata": {"f:labels": {"f:app": {}}},
        "f:spec": {
            "f:replicas": {},
            "f:selector": {},
            "f:template": {
                "f:metadata": {"f:labels": {"f:app": {}}},
                "f:spec": {"f:containers": {"k:{\"name\":\"nginx\"}": {
                    ".": {},
                    "f:image": {},
                    "f:name": {},
                    "f:ports": {"k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {".": {}, "f:containerPort": {}}}
                }}}
            }
        }
    })
}

fn apply_ok(live: Option<&Value>, config: &Value, manager: &Manager<'_>, force: bool, t: &str) -> Value {
    let Applied { object } = apply(live, config, manager, force, at(t)).unwrap_or_else(|e| panic!("apply failed: {e}"));
    object
}

/// The managedFields entry of `manager` with `operation`, if any.
fn entry<'v>(object: &'v Value, manager: &str, operation: &str) -> Option<&'v Value> {
    object["metadata"]["managedFields"]
        .as_array()?
        .iter()
        .find(|e| e["manager"] == manager && e["operation"] == operation)
}

fn owned(object: &Value, manager: &str, operation: &str) -> Vec<String> {
    let fields = &entry(object, manager, operation).unwrap_or_else(|| panic!("no {manager} {operation} entry"))["fieldsV1"];
    rkube_fieldmanager::FieldSet::from_fields_v1(fields).unwrap().paths()
}

fn conflicts(err: FieldManagerError) -> Vec<(String, String)> {
    match err {
        FieldManagerError::Conflicts(c) => c.into_iter().map(|c| (c.message(), c.field)).collect(),
        other => panic!("expected conflicts, got {other:?}"),
    }
}

#[test]
fn apply_creates_the_object_with_kubernetes_managed_fields() {
    let config = deployment(3, "nginx:1.25");
    let created = apply_ok(None, &config, &applier("kubectl"), false, T1);
    let mut expected = config.clone();
    expected["metadata"]["managedFields"] = json!([{
        "manager": "kubectl",
        "operation": "Apply",
        "apiVersion": "apps/v1",
        "time": T1,
        "fieldsType": "FieldsV1",
        "fieldsV1": deployment_fields()
    }]);
    assert_eq!(created, expected);
}

#[test]
fn reapplying_the_same_config_changes_nothing() {
    let config = deployment(3, "nginx:1.25");
    let created = apply_ok(None, &config, &applier("kubectl"), false, T1);
    let again = apply_ok(Some(&created), &config, &applier("kubectl"), false, T2);
    assert_eq!(serde_json::to_string(&again).unwrap(), serde_json::to_string(&created).unwrap());
    // Also once the server has defaulted and stamped the object.
    let mut stored = created.clone();
    stored["metadata"]["uid"] = json!("u-1");
    stored["metadata"]["resourceVersion"] = json!("42");
    stored["spec"]["template"]["spec"]["containers"][0]["ports"][0]["protocol"] = json!("TCP");
    stored["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] = json!("IfNotPresent");
    stored["spec"]["strategy"] = json!({"type": "RollingUpdate"});
    stored["status"] = json!({"replicas": 3});
    let again = apply_ok(Some(&stored), &config, &applier("kubectl"), false, T2);
    assert_eq!(serde_json::to_string(&again).unwrap(), serde_json::to_string(&stored).unwrap());
}

#[test]
fn changing_an_applied_value_bumps_the_time() {
    let created = apply_ok(None, &deployment(3, "nginx:1.25"), &applier("kubectl"), false, T1);
    let changed = apply_ok(Some(&created), &deployment(3, "nginx:1.27"), &applier("kubectl"), false, T2);
    assert_eq!(changed["spec"]["template"]["spec"]["containers"][0]["image"], "nginx:1.27");
    assert_eq!(entry(&changed, "kubectl", "Apply").unwrap()["time"], T2);
    assert_eq!(entry(&changed, "kubectl", "Apply").unwrap()["fieldsV1"], deployment_fields());
}

#[test]
fn fields_dropped_from_the_config_are_removed() {
    let mut first = deployment(3, "nginx:1.25");
    first["metadata"]["labels"]["tier"] = json!("web");
    first["spec"]["template"]["spec"]["containers"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "sidecar", "image": "busybox"}));
    let created = apply_ok(None, &first, &applier("kubectl"), false, T1);
    let mut second = deployment(3, "nginx:1.25");
    second["spec"].as_object_mut().unwrap().remove("replicas");
    let applied = apply_ok(Some(&created), &second, &applier("kubectl"), false, T2);
    assert!(applied["spec"].get("replicas").is_none());
    assert_eq!(applied["metadata"]["labels"], json!({"app": "nginx"}));
    let containers = applied["spec"]["template"]["spec"]["containers"].as_array().unwrap();
    assert_eq!(containers.len(), 1);
    assert_eq!(containers[0]["name"], "nginx");
    assert!(!owned(&applied, "kubectl", "Apply").contains(&".spec.replicas".to_string()));
}

#[test]
fn appliers_setting_the_same_value_share_it() {
    let created = apply_ok(None, &deployment(3, "nginx:1.25"), &applier("kubectl"), false, T1);
    let replicas_only = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "nginx"}, "spec": {"replicas": 3}});
    let shared = apply_ok(Some(&created), &replicas_only, &applier("handover-to-hpa"), false, T2);
    assert_eq!(owned(&shared, "handover-to-hpa", "Apply"), vec![".spec.replicas"]);
    assert!(owned(&shared, "kubectl", "Apply").contains(&".spec.replicas".to_string()));
    // The first applier drops replicas: the value stays, now owned by the other one alone.
    let mut without = deployment(3, "nginx:1.25");
    without["spec"].as_object_mut().unwrap().remove("replicas");
    let handed = apply_ok(Some(&shared), &without, &applier("kubectl"), false, T3);
    assert_eq!(handed["spec"]["replicas"], 3);
    assert!(!owned(&handed, "kubectl", "Apply").contains(&".spec.replicas".to_string()));
    assert_eq!(owned(&handed, "handover-to-hpa", "Apply"), vec![".spec.replicas"]);
}

#[test]
fn changing_another_appliers_value_conflicts_unless_forced() {
    let created = apply_ok(None, &deployment(3, "nginx:1.25"), &applier("kubectl"), false, T1);
    let other = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "nginx"}, "spec": {"replicas": 5}});
    let err = apply(Some(&created), &other, &applier("helm"), false, at(T2)).unwrap_err();
    assert_eq!(err.to_string(), "Apply failed with 1 conflict: conflict with \"kubectl\": .spec.replicas");
    assert_eq!(conflicts(err), vec![("conflict with \"kubectl\"".to_string(), ".spec.replicas".to_string())]);

    let forced = apply_ok(Some(&created), &other, &applier("helm"), true, T2);
    assert_eq!(forced["spec"]["replicas"], 5);
    assert_eq!(owned(&forced, "helm", "Apply"), vec![".spec.replicas"]);
    assert!(!owned(&forced, "kubectl", "Apply").contains(&".spec.replicas".to_string()));
    // kubectl's entry lost a field to someone else: its time stays.
    assert_eq!(entry(&forced, "kubectl", "Apply").unwrap()["time"], T1);
}

#[test]
fn scaling_with_an_update_makes_the_next_apply_conflict() {
    let created = apply_ok(None, &deployment(3, "nginx:1.25"), &applier("kubectl"), false, T1);
    let mut scaled = created.clone();
    scaled["spec"]["replicas"] = json!(5);
    let scaled = update(Some(&created), scaled, &updater("kubectl"), at(T2)).unwrap();
    assert_eq!(
        entry(&scaled, "kubectl", "Update").unwrap(),
        &json!({
            "manager": "kubectl", "operation": "Update", "apiVersion": "apps/v1", "time": T2,
            "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:replicas": {}}}
        })
    );
    assert!(!owned(&scaled, "kubectl", "Apply").contains(&".spec.replicas".to_string()));
    // Apply entries come first.
    assert_eq!(scaled["metadata"]["managedFields"][0]["operation"], "Apply");

    let err = apply(Some(&scaled), &deployment(3, "nginx:1.25"), &applier("kubectl"), false, at(T3)).unwrap_err();
    assert_eq!(err.to_string(), "Apply failed with 1 conflict: conflict with \"kubectl\" using apps/v1: .spec.replicas");
    assert_eq!(conflicts(err), vec![("conflict with \"kubectl\" using apps/v1".to_string(), ".spec.replicas".to_string())]);
    // Matching the live value shares the field instead.
    let shared = apply_ok(Some(&scaled), &deployment(5, "nginx:1.25"), &applier("kubectl"), false, T3);
    assert_eq!(owned(&shared, "kubectl", "Update"), vec![".spec.replicas"]);
    assert!(owned(&shared, "kubectl", "Apply").contains(&".spec.replicas".to_string()));
}

#[test]
fn several_conflicts_are_grouped_by_manager() {
    let created = apply_ok(None, &deployment(3, "nginx:1.25"), &applier("kubectl"), false, T1);
    let mut edited = created.clone();
    edited["metadata"]["labels"]["app"] = json!("web");
    let edited = update(Some(&created), edited, &updater("kubectl-edit"), at(T2)).unwrap();
    let err = apply(Some(&edited), &deployment(4, "nginx:1.27"), &applier("helm"), false, at(T3)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "Apply failed with 3 conflicts: conflicts with \"kubectl\":\n- .spec.replicas\n- .spec.template.spec.containers[name=\"nginx\"].image\nconflicts with \"kubectl-edit\" using apps/v1:\n- .metadata.labels.app"
    );
}

#[test]
fn containers_merge_by_name_and_ports_by_port_and_protocol() {
    let created = apply_ok(None, &deployment(3, "nginx:1.25"), &applier("kubectl"), false, T1);
    let sidecar = json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "nginx"},
        "spec": {"template": {"spec": {"containers": [
            {"name": "nginx", "ports": [{"containerPort": 9090, "protocol": "UDP", "name": "metrics"}]},
            {"name": "proxy", "image": "envoy"}
        ]}}}
    });
    let merged = apply_ok(Some(&created), &sidecar, &applier("mesh"), false, T2);
    assert_eq!(
        merged["spec"]["template"]["spec"]["containers"],
        json!([
            {"name": "nginx", "image": "nginx:1.25", "ports": [
                {"containerPort": 80},
                {"containerPort": 9090, "protocol": "UDP", "name": "metrics"}
            ]},
            {"name": "proxy", "image": "envoy"}
        ])
    );
    assert_eq!(
        entry(&merged, "mesh", "Apply").unwrap()["fieldsV1"],
        json!({"f:spec": {"f:template": {"f:spec": {"f:containers": {
            "k:{\"name\":\"nginx\"}": {".": {}, "f:name": {}, "f:ports": {
                "k:{\"containerPort\":9090,\"protocol\":\"UDP\"}": {".": {}, "f:containerPort": {}, "f:name": {}, "f:protocol": {}}
            }},
            "k:{\"name\":\"proxy\"}": {".": {}, "f:image": {}, "f:name": {}}
        }}}}})
    );
    // The mesh stops applying: its own container and port go, nginx (also kubectl's) stays.
    let bare = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "nginx"}});
    let back = apply_ok(Some(&merged), &bare, &applier("mesh"), false, T3);
    assert_eq!(back["spec"], created["spec"]);
    assert!(entry(&back, "mesh", "Apply").is_none());
}

#[test]
fn labels_merge_key_by_key() {
    let cm = |labels: Value| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "labels": labels}});
    let m = |name| Manager { name, operation: Operation::Apply, api_version: "v1", subresource: "" };
    let first = apply_ok(None, &cm(json!({"a": "1"})), &m("one"), false, T1);
    let both = apply_ok(Some(&first), &cm(json!({"b": "2"})), &m("two"), false, T2);
    assert_eq!(both["metadata"]["labels"], json!({"a": "1", "b": "2"}));
    assert_eq!(owned(&both, "one", "Apply"), vec![".metadata.labels.a"]);
    assert_eq!(owned(&both, "two", "Apply"), vec![".metadata.labels.b"]);
    let dropped = apply_ok(Some(&both), &cm(json!({})), &m("one"), false, T3);
    assert_eq!(dropped["metadata"]["labels"], json!({"b": "2"}));
    assert_eq!(dropped["metadata"]["managedFields"].as_array().unwrap().len(), 1);
}

#[test]
fn update_records_created_objects_like_kubernetes() {
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "labels": {"a": "1"}}, "data": {"key": "v"}});
    let m = Manager { name: "kubectl-create", operation: Operation::Update, api_version: "v1", subresource: "" };
    let created = update(None, cm, &m, at(T1)).unwrap();
    assert_eq!(
        created["metadata"]["managedFields"],
        json!([{
            "manager": "kubectl-create", "operation": "Update", "apiVersion": "v1", "time": T1, "fieldsType": "FieldsV1",
            "fieldsV1": {"f:data": {".": {}, "f:key": {}}, "f:metadata": {"f:labels": {".": {}, "f:a": {}}}}
        }])
    );
    // A write that changes nothing leaves managedFields (and its times) alone.
    let same = update(Some(&created), created.clone(), &Manager { name: "other", ..m }, at(T2)).unwrap();
    assert_eq!(same, created);
}

#[test]
fn update_of_a_status_subresource_records_it() {
    let created = apply_ok(None, &deployment(3, "nginx:1.25"), &applier("kubectl"), false, T1);
    let mut new = created.clone();
    new["status"] = json!({"replicas": 3, "conditions": [{"type": "Available", "status": "True"}]});
    let m = Manager { name: "kube-controller-manager", operation: Operation::Update, api_version: "apps/v1", subresource: "status" };
    let written = update(Some(&created), new, &m, at(T2)).unwrap();
    let e = entry(&written, "kube-controller-manager", "Update").unwrap();
    assert_eq!(e["subresource"], "status");
    assert_eq!(
        e["fieldsV1"],
        json!({"f:status": {".": {}, "f:conditions": {".": {}, "k:{\"type\":\"Available\"}": {".": {}, "f:status": {}, "f:type": {}}}, "f:replicas": {}}})
    );
}

#[test]
fn clients_reset_managed_fields_with_an_empty_entry_not_an_empty_list() {
    let created = apply_ok(None, &deployment(3, "nginx:1.25"), &applier("kubectl"), false, T1);
    let mut new = created.clone();
    new["metadata"]["managedFields"] = json!([]);
    let kept = update(Some(&created), new, &updater("kubectl-patch"), at(T2)).unwrap();
    assert_eq!(kept, created);

    let mut new = created.clone();
    new["metadata"]["managedFields"] = json!([{}]);
    let reset = update(Some(&created), new.clone(), &updater("kubectl-patch"), at(T2)).unwrap();
    assert!(reset["metadata"].get("managedFields").is_none());
    // With other changes in the same request the writer owns just those.
    new["spec"]["paused"] = json!(true);
    let reset = update(Some(&created), new, &updater("kubectl-patch"), at(T2)).unwrap();
    assert_eq!(reset["metadata"]["managedFields"].as_array().unwrap().len(), 1);
    assert_eq!(owned(&reset, "kubectl-patch", "Update"), vec![".spec.paused"]);

    // And an untracked object stays untracked by updates.
    let mut changed = reset.clone();
    changed["spec"]["replicas"] = json!(1);
    let mut untracked = reset.clone();
    untracked["metadata"].as_object_mut().unwrap().remove("managedFields");
    changed["metadata"].as_object_mut().unwrap().remove("managedFields");
    let written = update(Some(&untracked), changed, &updater("x"), at(T3)).unwrap();
    assert!(written["metadata"].get("managedFields").is_none());
}

#[test]
fn clients_can_rewrite_managed_fields() {
    // What kubectl does before its first server-side apply of a client-side applied object.
    let created = apply_ok(None, &deployment(3, "nginx:1.25"), &applier("kubectl"), false, T1);
    let mut new = created.clone();
    new["metadata"]["managedFields"][0]["manager"] = json!("renamed");
    let rewritten = update(Some(&created), new, &updater("kubectl"), at(T2)).unwrap();
    assert_eq!(owned(&rewritten, "renamed", "Apply"), owned(&created, "kubectl", "Apply"));
    assert!(entry(&rewritten, "kubectl", "Apply").is_none());

    let mut bad = created.clone();
    bad["metadata"]["managedFields"][0]["operation"] = json!("Merge");
    let err = update(Some(&created), bad, &updater("kubectl"), at(T2)).unwrap_err();
    assert!(err.to_string().contains("Unsupported value: \"Merge\""), "{err}");
}

#[test]
fn client_side_applied_fields_move_to_kubectl_server_side_apply() {
    let config = deployment(3, "nginx:1.25");
    let mut annotated = config.clone();
    annotated["metadata"]["annotations"] =
        json!({"kubectl.kubernetes.io/last-applied-configuration": serde_json::to_string(&config).unwrap() + "\n"});
    let csa = update(None, annotated, &updater("kubectl-client-side-apply"), at(T1)).unwrap();

    // Same manifest, newer image: the fields are client-side apply's, but still as it last
    // applied them, so "kubectl" takes them over and keeps the annotation current.
    let ssa = apply_ok(Some(&csa), &deployment(3, "nginx:1.27"), &applier("kubectl"), false, T2);
    assert_eq!(ssa["spec"]["template"]["spec"]["containers"][0]["image"], "nginx:1.27");
    let annotation = ssa["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"].as_str().unwrap();
    assert!(annotation.contains("nginx:1.27") && annotation.ends_with('\n'));
    assert_eq!(entry(&ssa, "kubectl", "Apply").unwrap()["fieldsV1"], deployment_fields());

    // After a scale the recorded replicas are stale: that one still conflicts.
    let mut scaled = csa.clone();
    scaled["spec"]["replicas"] = json!(7);
    let scaled = update(Some(&csa), scaled, &updater("kubectl-scale"), at(T2)).unwrap();
    let err = apply(Some(&scaled), &deployment(3, "nginx:1.27"), &applier("kubectl"), false, at(T3)).unwrap_err();
    assert_eq!(conflicts(err), vec![("conflict with \"kubectl-scale\" using apps/v1".to_string(), ".spec.replicas".to_string())]);
    // Other managers get no such help.
    let err = apply(Some(&csa), &deployment(3, "nginx:1.27"), &applier("helm"), false, at(T3)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "Apply failed with 1 conflict: conflict with \"kubectl-client-side-apply\" using apps/v1: .spec.template.spec.containers[name=\"nginx\"].image"
    );
}

#[test]
fn custom_resources_are_deduced() {
    let widget = |items: Value| json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"size": 1, "items": items}});
    let m = |name| Manager { name, operation: Operation::Apply, api_version: "example.com/v1", subresource: "" };
    let created = apply_ok(None, &widget(json!([1, 2])), &m("a"), false, T1);
    assert_eq!(entry(&created, "a", "Apply").unwrap()["fieldsV1"], json!({"f:spec": {"f:items": {}, "f:size": {}}}));
    let err = apply(Some(&created), &widget(json!([3])), &m("b"), false, at(T2)).unwrap_err();
    // Lists of unknown types are atomic; the equal size is shared, not a conflict.
    assert_eq!(err.to_string(), "Apply failed with 1 conflict: conflict with \"a\": .spec.items");
}

#[test]
fn invalid_configurations_are_rejected() {
    let live = apply_ok(None, &deployment(3, "nginx:1.25"), &applier("kubectl"), false, T1);
    let cases: Vec<(Value, &str)> = vec![
        (json!([1]), "the applied configuration must be an object"),
        (json!({"kind": "Deployment", "metadata": {"name": "nginx"}}), ".apiVersion: apiVersion must be specified"),
        (
            json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "nginx"}}),
            ".kind: Incorrect kind specified in apply patch. Specified patch kind: StatefulSet, expected: Deployment",
        ),
        (json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {}}), ".metadata.name: name is required"),
        (
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "other"}}),
            ".metadata.name: the name of the applied configuration (other) does not match the name of the existing object (nginx)",
        ),
        (
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "nginx", "managedFields": []}}),
            ".metadata.managedFields: metadata.managedFields must be nil",
        ),
        (
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "nginx"},
                   "spec": {"template": {"spec": {"containers": [{"name": "a"}, {"name": "a"}]}}}}),
            ".spec.template.spec.containers: duplicate entries for key [name=\"a\"]",
        ),
        (
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "nginx"},
                   "spec": {"template": {"spec": {"containers": [{"image": "a"}]}}}}),
            ".spec.template.spec.containers: element 0: associative list with keys has an element that omits key field \"name\" (and doesn't have default value)",
        ),
    ];
    for (config, message) in cases {
        let err = apply(Some(&live), &config, &applier("kubectl"), false, at(T2)).unwrap_err();
        assert!(matches!(err, FieldManagerError::Invalid { .. }), "{err:?}");
        assert_eq!(err.to_string(), message);
    }
    let mut broken = live.clone();
    broken["metadata"]["managedFields"] = json!([{"fieldsV1": {"bogus": {}}}]);
    let err = apply(Some(&broken), &deployment(3, "x"), &applier("kubectl"), false, at(T2)).unwrap_err();
    assert!(matches!(err, FieldManagerError::InvalidManagedFields(_)), "{err:?}");
    // Updates reset what they can't decode instead.
    let written = update(Some(&broken), live.clone(), &updater("x"), at(T2)).unwrap();
    assert_eq!(written["metadata"]["managedFields"], live["metadata"]["managedFields"]);
}

#[test]
fn arbitrary_input_never_panics() {
    let values = [
        json!(null),
        json!(1),
        json!("s"),
        json!([]),
        json!({}),
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": 3}}),
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": [null, 1, {"name": {"x": 1}}]}}),
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "finalizers": [{"a": 1}, {"a": 1}]}}),
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": [1]}, "spec": "x"}),
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "managedFields": "x"}, "spec": {"containers": [{"name": "a"}, {"name": "a"}]}}),
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "managedFields": [{"fieldsV1": {"f:spec": {"f:containers": {"k:{\"name\":\"a\"}": {}, "i:0": {}, "v:1": {}}}}}]},
               "spec": {"containers": [{"name": "a"}, {"name": "a"}]}}),
        json!({"apiVersion": 1, "kind": [], "metadata": 3}),
    ];
    for live in &values {
        for config in &values {
            for force in [false, true] {
                let _ = apply(Some(live), config, &applier("m"), force, at(T1));
                let _ = apply(None, config, &applier("m"), force, at(T1));
            }
            let _ = update(Some(live), config.clone(), &updater("m"), at(T1));
            let _ = update(None, config.clone(), &updater("m"), at(T1));
        }
    }
}

#[test]
fn applying_over_kubectl_create_conflicts_only_on_real_changes() {
    // `kubectl create deployment nginx --image=nginx --dry-run=client -o yaml`, as stored.
    let generated = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "nginx", "labels": {"app": "nginx"}},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "nginx"}},
            "strategy": {},
            "template": {
                "metadata": {"creationTimestamp": null, "labels": {"app": "nginx"}},
                "spec": {"containers": [{"name": "nginx", "image": "nginx", "resources": {}}]}
            }
        }
    });
    let created = update(None, generated.clone(), &updater("kubectl-create"), at(T1)).unwrap();
    assert_eq!(
        entry(&created, "kubectl-create", "Update").unwrap()["fieldsV1"],
        json!({
            "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
            "f:spec": {
                "f:replicas": {},
                "f:selector": {},
                "f:template": {
                    "f:metadata": {"f:creationTimestamp": {}, "f:labels": {".": {}, "f:app": {}}},
                    "f:spec": {"f:containers": {
                        ".": {},
                        "k:{\"name\":\"nginx\"}": {".": {}, "f:image": {}, "f:name": {}, "f:resources": {}}
                    }}
                }
            }
        })
    );
    // The same file applied: everything shared, nulls included, nothing changes.
    let shared = apply_ok(Some(&created), &generated, &applier("kubectl"), false, T2);
    assert_eq!(shared["spec"], created["spec"]);
    assert_eq!(owned(&shared, "kubectl", "Apply"), owned(&created, "kubectl-create", "Update")
        .into_iter()
        .filter(|p| !p.ends_with(".labels") && p != ".spec.template.spec.containers" && !p.ends_with(".resources"))
        .collect::<Vec<_>>());
    let mut newer = generated.clone();
    newer["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:1.27");
    let err = apply(Some(&shared), &newer, &applier("kubectl"), false, at(T3)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "Apply failed with 1 conflict: conflict with \"kubectl-create\" using apps/v1: .spec.template.spec.containers[name=\"nginx\"].image"
    );
}
