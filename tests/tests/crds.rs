//! CustomResourceDefinitions end to end, with the real kubectl v1.33 (default validation on)
//! and helm v4 against a real etcd and rkube-apiserver: a definition is established and served
//! in discovery, its objects are pruned, defaulted and validated by the schema, printed with
//! the CRD's columns, scaled and given status through subresources, served in every version,
//! and deleted with the definition.

mod support;

use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use support::*;

const CRD: &str = r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  scope: Namespaced
  names:
    plural: widgets
    singular: widget
    kind: Widget
    shortNames: [wd]
    categories: [all]
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [size]
            x-kubernetes-validations:
            - rule: "!has(self.replicas) || self.replicas <= self.size * 10"
              message: replicas must not exceed ten times the size
            properties:
              zone:
                type: string
                x-kubernetes-validations:
                - rule: self == oldSelf
                  message: zone is immutable
              size:
                type: integer
                minimum: 1
              mode:
                type: string
                enum: [fast, slow]
                default: fast
              replicas:
                type: integer
              labels:
                type: object
                additionalProperties:
                  type: string
              ports:
                type: array
                x-kubernetes-list-type: map
                x-kubernetes-list-map-keys: [name]
                items:
                  type: object
                  required: [name]
                  properties:
                    name:
                      type: string
                    port:
                      type: integer
          status:
            type: object
            properties:
              replicas:
                type: integer
              selector:
                type: string
    subresources:
      status: {}
      scale:
        specReplicasPath: .spec.replicas
        statusReplicasPath: .status.replicas
        labelSelectorPath: .status.selector
    additionalPrinterColumns:
    - name: Size
      type: integer
      jsonPath: .spec.size
    - name: Mode
      type: string
      jsonPath: .spec.mode
    - name: Age
      type: date
      jsonPath: .metadata.creationTimestamp
  - name: v1beta1
    served: true
    storage: false
    deprecated: true
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-preserve-unknown-fields: true
"#;

fn widget(name: &str, extra: &str) -> String {
    format!(
        "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: {name}\n  namespace: shop\nspec:\n  size: 3\n{extra}"
    )
}

/// An API server with the `shop` namespace and the Widget definition established.
fn with_widgets() -> Env {
    let env = Env::start();
    env.clean(&["create", "namespace", "shop"]);
    let out = env.clean(&["apply", "-f", &env.manifest("crd.yaml", CRD)]);
    assert_eq!(out.trim(), "customresourcedefinition.apiextensions.k8s.io/widgets.example.com created");
    let out = env.clean(&["wait", "--for=condition=Established", "crd/widgets.example.com", "--timeout=20s"]);
    assert_eq!(out.trim(), "customresourcedefinition.apiextensions.k8s.io/widgets.example.com condition met");
    env
}

#[test]
fn a_definition_is_established_and_served_in_discovery() {
    let env = with_widgets();
    let crd = env.json(&["get", "crd", "widgets.example.com"]);
    let conditions = crd["status"]["conditions"].as_array().expect("conditions");
    for (ty, reason) in [("NamesAccepted", "NoConflicts"), ("Established", "InitialNamesAccepted")] {
        let c = conditions.iter().find(|c| c["type"] == ty).unwrap_or_else(|| panic!("{ty} in {crd}"));
        assert_eq!((c["status"].as_str(), c["reason"].as_str()), (Some("True"), Some(reason)), "{c}");
    }
    assert_eq!(crd["status"]["acceptedNames"]["listKind"], "WidgetList");
    assert_eq!(crd["status"]["storedVersions"], json!(["v1"]));
    assert_eq!(crd["metadata"]["finalizers"], json!(["customresourcecleanup.apiextensions.k8s.io"]));

    let resources = env.clean(&["api-resources", "--api-group=example.com", "--no-headers"]);
    let columns: Vec<&str> = resources.split_whitespace().collect();
    assert_eq!(columns, ["widgets", "wd", "example.com/v1", "true", "Widget"], "{resources}");
    let versions = env.clean(&["api-versions"]);
    assert!(
        versions.lines().any(|l| l == "example.com/v1") && versions.lines().any(|l| l == "example.com/v1beta1"),
        "{versions}"
    );
    // The preferred version is the highest-priority one, whatever the order in the CRD.
    let (code, group) = env.rest("/apis/example.com");
    assert_eq!((code, group["preferredVersion"]["version"].as_str()), (200, Some("v1")), "{group}");

    // kubectl explain reads the CRD's schema from the served OpenAPI v3 document.
    let explain = env.clean(&["explain", "widgets.spec"]);
    for line in [
        "KIND:       Widget",
        "VERSION:    v1",
        "FIELD: spec <Object>",
        "  mode\t<string>",
        "  size\t<integer> -required-",
    ] {
        assert!(explain.contains(line), "explain lacks {line:?}:\n{explain}");
    }
    let explain = env.clean(&["explain", "widgets.metadata.name"]);
    assert!(explain.contains("FIELD: name <string>"), "{explain}");

    // Once established, the definition is not rewritten (no status churn).
    let again = env.json(&["get", "crd", "widgets.example.com"]);
    assert_eq!(again["metadata"]["resourceVersion"], crd["metadata"]["resourceVersion"]);

    // A rule that does not compile makes the definition invalid.
    let broken =
        CRD.replace("rule: self == oldSelf", "rule: self ==").replace("widgets.example.com", "broken.example.com");
    let broken = broken.replace("plural: widgets", "plural: broken").replace("kind: Widget", "kind: Broken");
    let out = env.fails(&["apply", "-f", &env.manifest("broken.yaml", &broken)]);
    assert!(
        out.stderr.contains("x-kubernetes-validations[0].rule") && out.stderr.contains("compilation failed"),
        "{}",
        out.stderr
    );

    // A definition whose name does not match its names is refused in Kubernetes' words.
    let bad = CRD.replace("name: widgets.example.com", "name: gadgets.example.com");
    let out = env.fails(&["apply", "-f", &env.manifest("bad.yaml", &bad)]);
    assert!(
        out.stderr.contains(r#"The CustomResourceDefinition "gadgets.example.com" is invalid"#)
            && out.stderr.contains(
                r#"metadata.name: Invalid value: "gadgets.example.com": must be spec.names.plural+"."+spec.group"#
            ),
        "{}",
        out.stderr
    );
}

#[test]
fn objects_are_pruned_defaulted_validated_and_printed_with_the_definitions_columns() {
    let env = with_widgets();
    let out = env.clean(&["apply", "-f", &env.manifest("w1.yaml", &widget("w1", "  replicas: 1\n"))]);
    assert_eq!(out.trim(), "widget.example.com/w1 created");
    let w1 = env.json(&["get", "widget", "w1", "-n", "shop"]);
    assert_eq!(w1["spec"], json!({"size": 3, "mode": "fast", "replicas": 1}), "the default is applied: {w1}");
    assert_eq!(w1["metadata"]["generation"], 1);

    // Table columns from additionalPrinterColumns, also through the short name and `get all`.
    let table = env.clean(&["get", "wd", "-n", "shop"]);
    let lines: Vec<Vec<&str>> = table.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(lines[0], ["NAME", "SIZE", "MODE", "AGE"], "{table}");
    assert_eq!(&lines[1][..3], ["w1", "3", "fast"], "{table}");
    let all = env.clean(&["get", "all", "-n", "shop"]);
    assert!(all.contains("widget.example.com/w1"), "{all}");

    // kubectl's strict validation goes to the server, which names the unknown field.
    let extra = env.fails(&["apply", "-f", &env.manifest("w2.yaml", &widget("w2", "  colour: red\n"))]);
    assert!(extra.stderr.contains(r#"unknown field "spec.colour""#), "{}", extra.stderr);
    // Without validation the field is pruned.
    env.ok(&["apply", "--validate=false", "-f", &env.manifest("w2.yaml", &widget("w2", "  colour: red\n"))]);
    let w2 = env.json(&["get", "widget", "w2", "-n", "shop"]);
    assert!(w2["spec"].get("colour").is_none(), "{w2}");

    // Schema violations are 422 Invalid with field paths.
    let bad = widget("bad", "  mode: warp\n").replace("size: 3", "size: 0");
    let out = env.fails(&["apply", "-f", &env.manifest("bad.yaml", &bad)]);
    assert!(out.stderr.contains(r#"The Widget "bad" is invalid"#), "{}", out.stderr);
    assert!(
        out.stderr.contains(r#"spec.mode: Unsupported value: "warp": supported values: "fast", "slow""#),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("spec.size: Invalid value: 0: spec.size in body should be greater than or equal to 1"),
        "{}",
        out.stderr
    );
    let typed = widget("typed", "").replace("size: 3", "size: big");
    let out = env.fails(&["apply", "-f", &env.manifest("typed.yaml", &typed)]);
    assert!(
        out.stderr
            .contains(r#"spec.size: Invalid value: "string": spec.size in body must be of type integer: "string""#),
        "{}",
        out.stderr
    );
    let missing = "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: empty\n  namespace: shop\nspec: {}\n";
    let out = env.fails(&["apply", "-f", &env.manifest("missing.yaml", missing)]);
    assert!(out.stderr.contains("spec.size: Required value"), "{}", out.stderr);
    let (code, _) = env.rest("/apis/example.com/v1/namespaces/shop/widgets/bad");
    assert_eq!(code, 404, "nothing invalid is stored");

    // CEL rules (x-kubernetes-validations): one across fields, and a transition rule.
    let out = env.fails(&["apply", "-f", &env.manifest("big.yaml", &widget("big", "  replicas: 31\n"))]);
    assert!(
        out.stderr.contains(r#"spec: Invalid value: "object": replicas must not exceed ten times the size"#),
        "{}",
        out.stderr
    );
    env.clean(&["apply", "-f", &env.manifest("zoned.yaml", &widget("zoned", "  zone: a\n"))]);
    let out = env.fails(&["patch", "widget", "zoned", "-n", "shop", "--type=merge", "-p", r#"{"spec":{"zone":"b"}}"#]);
    assert!(out.stderr.contains(r#"spec.zone: Invalid value: "string": zone is immutable"#), "{}", out.stderr);
    env.clean(&["patch", "widget", "zoned", "-n", "shop", "--type=merge", "-p", r#"{"spec":{"size":4}}"#]);
}

#[test]
fn subresources_patches_versions_and_server_side_apply() {
    let env = with_widgets();
    env.clean(&["apply", "-f", &env.manifest("w1.yaml", &widget("w1", "  replicas: 1\n"))]);

    // scale writes spec.replicas through the scale subresource.
    assert_eq!(env.clean(&["scale", "widget/w1", "-n", "shop", "--replicas=4"]).trim(), "widget.example.com/w1 scaled");
    let w1 = env.json(&["get", "widget", "w1", "-n", "shop"]);
    assert_eq!((w1["spec"]["replicas"].as_i64(), w1["metadata"]["generation"].as_i64()), (Some(4), Some(2)), "{w1}");

    // status is ignored on the main resource and written through the status subresource.
    env.clean(&["patch", "widget", "w1", "-n", "shop", "--type=merge", "-p", r#"{"status":{"replicas":9}}"#]);
    assert!(env.json(&["get", "widget", "w1", "-n", "shop"])["status"].is_null());
    env.clean(&[
        "patch",
        "widget",
        "w1",
        "-n",
        "shop",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"replicas":4,"selector":"app=w1"}}"#,
    ]);
    let (code, scale) = env.rest("/apis/example.com/v1/namespaces/shop/widgets/w1/scale");
    assert_eq!(code, 200);
    assert_eq!(
        (scale["kind"].as_str(), &scale["spec"]["replicas"], &scale["status"]),
        (Some("Scale"), &json!(4), &json!({"replicas": 4, "selector": "app=w1"})),
        "{scale}"
    );

    // Custom resources have no strategic merge patch: kubectl's default patch type is refused.
    let out = env.fails(&["patch", "widget", "w1", "-n", "shop", "-p", r#"{"spec":{"size":5}}"#]);
    assert!(out.stderr.contains("the body of the request was in an unknown format"), "{}", out.stderr);
    env.clean(&[
        "patch",
        "widget",
        "w1",
        "-n",
        "shop",
        "--type=json",
        "-p",
        r#"[{"op":"replace","path":"/spec/size","value":5}]"#,
    ]);

    // Every served version reads the same object; the deprecated one with a warning.
    let out = env.run(&["get", "widgets.v1beta1.example.com", "w1", "-n", "shop", "-o", "json"]);
    assert_eq!(out.stderr.trim(), "Warning: example.com/v1beta1 Widget is deprecated");
    let beta: Value = serde_json::from_str(&out.stdout).expect("JSON");
    assert_eq!(
        (beta["apiVersion"].as_str(), &beta["spec"]["size"]),
        (Some("example.com/v1beta1"), &json!(5)),
        "{beta}"
    );

    // Server-side apply owns the fields it sets; applying the same file again changes nothing.
    let path = env.manifest("w3.yaml", &widget("w3", "  mode: slow\n"));
    assert_eq!(env.clean(&["apply", "--server-side", "-f", &path]).trim(), "widget.example.com/w3 serverside-applied");
    let before: Value = env.json(&["get", "widget", "w3", "-n", "shop"]);
    env.clean(&["apply", "--server-side", "-f", &path]);
    let after = env.json(&["get", "widget", "w3", "-n", "shop", "--show-managed-fields"]);
    assert_eq!(before["metadata"]["resourceVersion"], after["metadata"]["resourceVersion"]);
    let managers: Vec<&str> =
        after["metadata"]["managedFields"].as_array().unwrap().iter().filter_map(|m| m["manager"].as_str()).collect();
    assert_eq!(managers, ["kubectl"], "{after}");
    let conflict = env.fails(&[
        "apply",
        "--server-side",
        "--field-manager=other",
        "-f",
        &env.manifest("w3b.yaml", &widget("w3", "  mode: fast\n")),
    ]);
    assert!(conflict.stderr.contains("conflict") && conflict.stderr.contains(".spec.mode"), "{}", conflict.stderr);

    // A list the schema declares a map list is merged per key: two managers each own an entry.
    let ports = |name: &str, port: u16| {
        format!(
            "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w4\n  namespace: shop\nspec:\n  size: 1\n  ports:\n  - name: {name}\n    port: {port}\n"
        )
    };
    env.clean(&["apply", "--server-side", "--field-manager=a", "-f", &env.manifest("p1.yaml", &ports("http", 80))]);
    env.clean(&["apply", "--server-side", "--field-manager=b", "-f", &env.manifest("p2.yaml", &ports("https", 443))]);
    let w4 = env.json(&["get", "widget", "w4", "-n", "shop"]);
    assert_eq!(w4["spec"]["ports"], json!([{"name": "http", "port": 80}, {"name": "https", "port": 443}]), "{w4}");
}

#[test]
fn deleting_the_definition_deletes_its_objects_and_stops_serving_them() {
    let mut env = with_widgets();
    env.clean(&["apply", "-f", &env.manifest("w1.yaml", &widget("w1", ""))]);
    env.clean(&["apply", "-f", &env.manifest("w2.yaml", &widget("w2", ""))]);

    // Served again straight after an API server restart.
    env.api.restart().expect("API server restarts");
    let names = env.clean(&["get", "widgets", "-n", "shop", "-o", "name"]);
    assert_eq!(names.lines().collect::<Vec<_>>(), ["widget.example.com/w1", "widget.example.com/w2"]);

    // Namespace deletion covers custom objects too.
    env.clean(&["create", "namespace", "temp"]);
    env.clean(&[
        "apply",
        "-f",
        &env.manifest("t.yaml", &widget("t1", "").replace("namespace: shop", "namespace: temp")),
    ]);
    env.clean(&["delete", "namespace", "temp", "--timeout=30s"]);
    let (code, _) = env.rest("/apis/example.com/v1/namespaces/temp/widgets/t1");
    assert_eq!(code, 404);

    let out = env.clean(&["delete", "crd", "widgets.example.com", "--timeout=30s"]);
    assert_eq!(out.trim(), r#"customresourcedefinition.apiextensions.k8s.io "widgets.example.com" deleted"#);
    let (code, _) = env.rest("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.example.com");
    assert_eq!(code, 404);
    let (code, _) = env.rest("/apis/example.com/v1/namespaces/shop/widgets");
    assert_eq!(code, 404, "the resource is no longer served");
    // kubectl's discovery cache may still name the resource; either way the list is refused.
    let out = env.fails(&["get", "widgets", "-n", "shop"]);
    assert!(
        out.stderr.contains(r#"the server doesn't have a resource type "widgets""#)
            || out.stderr.contains(
                r#"Unable to list "example.com/v1, Resource=widgets": the server could not find the requested resource"#
            ),
        "{}",
        out.stderr
    );
    // Defining it again does not bring the old objects back.
    env.clean(&["apply", "-f", &env.manifest("crd.yaml", CRD)]);
    env.clean(&["wait", "--for=condition=Established", "crd/widgets.example.com", "--timeout=20s"]);
    env.until(
        &["get", "widgets", "-n", "shop", "-o", "name"],
        "the widgets resource is served again, empty",
        Duration::from_secs(20),
        |out| out.trim().is_empty(),
        || env.api.log_tail(),
    );
}

fn helm_binary() -> PathBuf {
    if let Some(h) = std::env::var_os("HELM").filter(|h| !h.is_empty()) {
        return PathBuf::from(h);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(".tools/bin/helm")
}

#[test]
fn helm_installs_a_chart_that_ships_its_crd() {
    let env = Env::start();
    env.clean(&["create", "namespace", "shop"]);
    let chart = env.dir.path().join("widgets");
    std::fs::create_dir_all(chart.join("crds")).unwrap();
    std::fs::create_dir_all(chart.join("templates")).unwrap();
    std::fs::write(chart.join("Chart.yaml"), "apiVersion: v2\nname: widgets\nversion: 0.1.0\n").unwrap();
    std::fs::write(chart.join("crds/widgets.yaml"), CRD).unwrap();
    std::fs::write(
        chart.join("templates/widget.yaml"),
        "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: {{ .Release.Name }}\nspec:\n  size: {{ .Values.size }}\n",
    )
    .unwrap();
    std::fs::write(chart.join("values.yaml"), "size: 2\n").unwrap();
    let helm = |args: &[&str]| {
        let mut cmd = Command::new(helm_binary());
        cmd.args(args)
            .arg("--kubeconfig")
            .arg(&env.kubeconfig)
            .env("HELM_CACHE_HOME", env.dir.path().join("helm-cache"))
            .env("HELM_CONFIG_HOME", env.dir.path().join("helm-config"))
            .env("HELM_DATA_HOME", env.dir.path().join("helm-data"));
        env.run_command(cmd, &format!("helm {args:?}"))
    };
    let out = helm(&["install", "big", chart.to_str().unwrap(), "-n", "shop", "--wait", "--timeout", "60s"]);
    assert_eq!(out.code, 0, "helm install: {}\n{}\n{}", out.stdout, out.stderr, env.api.log_tail());
    let w = env.json(&["get", "widget", "big", "-n", "shop"]);
    assert_eq!(w["spec"], json!({"size": 2, "mode": "fast"}), "{w}");
    let out = helm(&["upgrade", "big", chart.to_str().unwrap(), "-n", "shop", "--set", "size=7"]);
    assert_eq!(out.code, 0, "helm upgrade: {}\n{}", out.stdout, out.stderr);
    assert_eq!(env.json(&["get", "widget", "big", "-n", "shop"])["spec"]["size"], 7);
    let out = helm(&["uninstall", "big", "-n", "shop"]);
    assert_eq!(out.code, 0, "helm uninstall: {}\n{}", out.stdout, out.stderr);
    let (code, _) = env.rest("/apis/example.com/v1/namespaces/shop/widgets/big");
    assert_eq!(code, 404, "the release's Widget is gone");
    // helm keeps the CRD (it never deletes crds/), as with Kubernetes.
    env.ok(&["get", "crd", "widgets.example.com"]);
}

#[test]
fn rkubectl_prints_custom_resources_as_kubectl_does() {
    use support::rkubectl::same_bytes;
    let env = with_widgets();
    env.clean(&["apply", "-f", &env.manifest("w1.yaml", &widget("w1", "  replicas: 2\n  labels:\n    tier: web\n"))]);
    env.clean(&["apply", "-f", &env.manifest("w2.yaml", &widget("w2", "  mode: slow\n"))]);
    for args in [
        &["get", "widgets", "-n", "shop"][..],
        &["get", "wd", "-n", "shop", "-o", "wide"],
        &["get", "widget.example.com/w1", "-n", "shop", "-o", "yaml"],
        &["get", "widgets", "-A", "-o", "name"],
        &["get", "crd"],
        &["get", "widgets", "-n", "shop", "-o", "jsonpath={.items[*].spec.mode}"],
        &["describe", "widget", "w1", "-n", "shop"],
        &["api-resources", "--api-group=example.com"],
        &["explain", "widgets.spec.size"],
        &["get", "widgets", "nope", "-n", "shop"],
    ] {
        same_bytes(&env, args);
    }
    let scaled = support::rkubectl::rk(&env, &["scale", "widget/w2", "-n", "shop", "--replicas=3"]);
    assert_eq!(scaled.stdout.trim(), "widget.example.com/w2 scaled", "{}", scaled.stderr);
    assert_eq!(env.json(&["get", "widget", "w2", "-n", "shop"])["spec"]["replicas"], 3);
}

#[test]
fn daily_verbs_work_on_custom_objects() {
    let env = with_widgets();
    env.clean(&["apply", "-f", &env.manifest("w1.yaml", &widget("w1", ""))]);
    assert_eq!(env.clean(&["label", "widget", "w1", "-n", "shop", "tier=web"]).trim(), "widget.example.com/w1 labeled");
    assert_eq!(
        env.clean(&["annotate", "widget", "w1", "-n", "shop", "note=hi"]).trim(),
        "widget.example.com/w1 annotated"
    );
    assert_eq!(
        env.clean(&["get", "widgets", "-n", "shop", "-l", "tier=web", "-o", "name"]).trim(),
        "widget.example.com/w1"
    );

    // edit round-trips through the editor.
    let editor = env.manifest("editor.sh", "#!/bin/sh\nsed -i 's/size: 3/size: 8/' \"$1\"\n");
    std::fs::set_permissions(&editor, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mut cmd = env.command(&["edit", "widget", "w1", "-n", "shop"]);
    cmd.env("KUBE_EDITOR", &editor);
    let out = env.run_command(cmd, "kubectl edit widget");
    assert_eq!((out.code, out.stdout.trim()), (0, "widget.example.com/w1 edited"), "{}", out.stderr);
    assert_eq!(env.json(&["get", "widget", "w1", "-n", "shop"])["spec"]["size"], 8);

    // wait on a field, and a watch sees changes as tables.
    let mut watch =
        Watcher::start(&env, &["get", "widgets", "-n", "shop", "-w", "--output-watch-events", "-o", "json"]);
    let first = watch.next("the existing widget");
    assert_eq!((first["type"].as_str(), first["object"]["metadata"]["name"].as_str()), (Some("ADDED"), Some("w1")));
    env.clean(&["patch", "widget", "w1", "-n", "shop", "--type=merge", "-p", r#"{"spec":{"mode":"slow"}}"#]);
    let changed = watch.next("the patched widget");
    assert_eq!((changed["type"].as_str(), &changed["object"]["spec"]["mode"]), (Some("MODIFIED"), &json!("slow")));
    watch.stop();
    let out = env.clean(&["wait", "widget/w1", "-n", "shop", "--for=jsonpath={.spec.mode}=slow", "--timeout=10s"]);
    assert_eq!(out.trim(), "widget.example.com/w1 condition met");

    // delete --all, then the collection is empty.
    env.clean(&["apply", "-f", &env.manifest("w2.yaml", &widget("w2", ""))]);
    let out = env.clean(&["delete", "widgets", "--all", "-n", "shop"]);
    assert_eq!(out.lines().count(), 2, "{out}");
    assert_eq!(env.clean(&["get", "widgets", "-n", "shop", "-o", "name"]).trim(), "");
}
