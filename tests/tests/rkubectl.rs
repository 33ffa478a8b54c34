//! rkubectl against the real kubectl (v1.33) on the same real etcd + rkube-apiserver (+ the
//! scheduler, controller-manager and a kubelet stand-in where objects must move): the same
//! commands on the same objects must print the same stdout (ages normalised), the same errors
//! and exit codes; kubeconfig merging, context switching and `config view` redaction match.
//!
//! Build first: `cargo build -p rkubectl -p rkube-apiserver -p rkube-controller-manager
//! -p rkube-scheduler --bins`.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;
use support::rkubectl::*;
use support::*;

fn rk_ok(env: &Env, args: &[&str]) -> String {
    let out = rk(env, args);
    assert_eq!(
        out.code,
        0,
        "rkubectl {args:?} failed\nstdout: {}\nstderr: {}\nserver log:\n{}",
        out.stdout,
        out.stderr,
        env.api.log_tail()
    );
    out.stdout
}

/// Replaces ages (`5s`, `2m30s`, `3h`) by `AGE` and collapses runs of spaces, so tables printed
/// a second apart compare equal; column alignment is checked separately.
fn normalise(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let words: Vec<String> = line
            .split(' ')
            .filter(|w| !w.is_empty())
            .map(|w| if is_age(w) { "AGE".to_string() } else { w.to_string() })
            .collect();
        out.push_str(&words.join(" "));
        out.push('\n');
    }
    out
}

/// The column start offsets of a table's header line.
fn header_columns(table: &str) -> Vec<usize> {
    let header = table.lines().next().unwrap_or_default();
    let mut cols = Vec::new();
    let mut prev_space = true;
    let bytes = header.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        // Column starts follow 2+ spaces (headers like "NOMINATED NODE" have single spaces).
        if b != b' ' && (i == 0 || (prev_space && i >= 2 && bytes[i - 2] == b' ')) {
            cols.push(i);
        }
        prev_space = b == b' ';
    }
    cols
}

/// Runs the same command with both clients and asserts equal exit codes and stdout.
fn same(env: &Env, args: &[&str]) -> String {
    // Controllers and the kubelet stand-in may still be moving objects between the two runs:
    // retry until both clients saw the same state, then compare for real.
    let mut attempt = 0;
    let (k, r) = loop {
        let k = env.run(args);
        let r = rk(env, args);
        attempt += 1;
        if normalise(&k.stdout) == normalise(&r.stdout) || attempt >= 20 {
            break (k, r);
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    assert_eq!(
        k.code, r.code,
        "exit code of {args:?}\nkubectl: {}{}\nrkubectl: {}{}",
        k.stdout, k.stderr, r.stdout, r.stderr
    );
    assert_eq!(
        normalise(&k.stdout),
        normalise(&r.stdout),
        "stdout of {args:?}\n--- kubectl\n{}--- rkubectl\n{}",
        k.stdout,
        r.stdout
    );
    // Tables: the columns start at the same offsets (same widths, 3-space padding), unless an
    // age changed width between the two runs.
    if k.stdout.starts_with("NAME") || k.stdout.starts_with("NAMESPACE") {
        let ages_same_width = k.stdout.split_whitespace().filter(|w| is_age(w)).map(str::len).collect::<Vec<_>>()
            == r.stdout.split_whitespace().filter(|w| is_age(w)).map(str::len).collect::<Vec<_>>();
        if ages_same_width {
            assert_eq!(
                header_columns(&k.stdout),
                header_columns(&r.stdout),
                "column offsets of {args:?}\n{}\n{}",
                k.stdout,
                r.stdout
            );
        }
    }
    assert_eq!(k.stderr.trim(), r.stderr.trim(), "stderr of {args:?}");
    r.stdout
}

type Cluster = ControlPlane;

fn cluster() -> Cluster {
    Cluster::start(
        "apiVersion: v1\nkind: Node\nmetadata:\n  name: node-0\n  labels: {kubernetes.io/hostname: node-0}\nstatus:\n  allocatable: {cpu: \"8\", memory: 32Gi, pods: \"110\"}\n  conditions: [{type: Ready, status: \"True\"}]\n",
    )
}

const RC: &str = "apiVersion: v1
kind: ReplicationController
metadata:
  name: nginx
  labels: {app: nginx}
spec:
  replicas: 2
  selector: {app: nginx}
  template:
    metadata:
      labels: {app: nginx}
    spec:
      containers:
      - name: nginx
        image: nginx:1.27
        ports:
        - containerPort: 80
";

fn wait_pods(env: &Env, n: usize, c: &Cluster) {
    env.until(
        &["get", "pods", "-l", "app=nginx", "-o", "name"],
        "rc pods",
        Duration::from_secs(60),
        |out| out.lines().count() == n,
        || c.controllers.log_tail(),
    );
}

#[test]
fn seed_examples_match_kubectl() {
    let c = cluster();
    let env = &c.env;

    // create -f: same line as kubectl.
    let rc = env.manifest("rc.yaml", RC);
    assert_eq!(rk_ok(env, &["create", "-f", &rc]), "replicationcontroller/nginx created\n");
    wait_pods(env, 2, &c);

    // run: the pod is the one kubectl run creates.
    assert_eq!(
        rk_ok(env, &["run", "web", "--image=nginx:1.27", "--labels=app=web,tier=front", "--port=80"]),
        "pod/web created\n"
    );
    env.ok(&["run", "web2", "--image=nginx:1.27", "--labels=app=web,tier=front", "--port=80"]);
    let mine = env.json(&["get", "pod", "web"]);
    let theirs = env.json(&["get", "pod", "web2"]);
    assert_eq!(mine["spec"]["containers"][0]["ports"], theirs["spec"]["containers"][0]["ports"]);
    assert_eq!(mine["spec"]["containers"][0]["image"], theirs["spec"]["containers"][0]["image"]);
    assert_eq!(mine["spec"]["restartPolicy"], theirs["spec"]["restartPolicy"]);
    assert_eq!(mine["metadata"]["labels"], theirs["metadata"]["labels"]);
    rk_ok(env, &["run", "once", "--image=busybox", "--restart=Never", "--", "sleep", "5"]);
    let once = env.json(&["get", "pod", "once"]);
    assert_eq!(once["spec"]["restartPolicy"], "Never");
    assert_eq!(once["spec"]["containers"][0]["args"], serde_json::json!(["sleep", "5"]));
    assert_eq!(once["metadata"]["labels"]["run"], "once");

    // get rc,pods / get pods -A / get nodes: same tables.
    same(env, &["get", "rc,pods"]);
    same(env, &["get", "pods", "--all-namespaces"]);
    same(env, &["get", "nodes"]);

    // scale --replicas=3 rc nginx, through the scale subresource.
    assert_eq!(rk_ok(env, &["scale", "--replicas=3", "rc", "nginx"]), "replicationcontroller/nginx scaled\n");
    assert_eq!(env.stored("/api/v1/namespaces/default/replicationcontrollers/nginx")["spec"]["replicas"], 3);
    wait_pods(env, 3, &c);
    same(env, &["get", "rc,pods"]);

    // taint nodes --all, then remove it.
    assert_eq!(rk_ok(env, &["taint", "nodes", "--all", "dedicated=gpu:NoSchedule"]), "node/node-0 tainted\n");
    let node = env.stored("/api/v1/nodes/node-0");
    assert_eq!(
        node["spec"]["taints"],
        serde_json::json!([{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}])
    );
    let again = rk(env, &["taint", "nodes", "node-0", "dedicated=gpu:NoSchedule"]);
    let k_again = env.run(&["taint", "nodes", "node-0", "dedicated=gpu:NoSchedule"]);
    assert_eq!((again.code, again.stderr.trim()), (k_again.code, k_again.stderr.trim()));
    assert_eq!(rk_ok(env, &["taint", "nodes", "node-0", "dedicated:NoSchedule-"]), "node/node-0 untainted\n");
    assert!(env.stored("/api/v1/nodes/node-0")["spec"]["taints"].as_array().is_none_or(|t| t.is_empty()));

    // get|delete pod/service/rc.
    rk_ok(env, &["expose", "rc", "nginx", "--port=80"]);
    same(env, &["get", "pod/web", "service/nginx", "rc/nginx"]);
    same(env, &["get", "service", "nginx", "-o", "wide"]);
    assert_eq!(rk_ok(env, &["delete", "pod", "web"]), "pod \"web\" deleted\n");
    assert_eq!(rk_ok(env, &["delete", "service/nginx"]), "service \"nginx\" deleted\n");
    assert_eq!(rk_ok(env, &["delete", "rc", "nginx"]), "replicationcontroller \"nginx\" deleted\n");
    let (code, _) = env.rest("/api/v1/namespaces/default/pods/web");
    assert_eq!(code, 404, "delete waits until the pod is gone");
    same(env, &["get", "pod/web"]);
}

#[test]
fn output_formats_match_kubectl() {
    let c = cluster();
    let env = &c.env;
    env.create_fixture("shop");
    env.ok(&["create", "-f", &env.manifest("rc.yaml", RC)]);
    wait_pods(env, 2, &c);
    let special = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: odd\n  namespace: shop\n  annotations:\n    note: 'a: b'\n    html: '<b>&</b>'\ndata:\n  multi: |\n    line one\n    line two\n  num: \"80\"\n  yes: \"true\"\n  empty: \"\"\n  star: \"*\"\n  long: \"the quick brown fox jumps over the lazy dog and keeps running far beyond the eighty column mark of go-yaml\"\n";
    env.ok(&["create", "-f", &env.manifest("odd.yaml", special)]);

    for args in [
        vec!["get", "pods"],
        vec!["get", "pods", "-o", "wide"],
        vec!["get", "pods", "--show-labels"],
        vec!["get", "pods", "-A"],
        vec!["get", "pods,rc", "-A"],
        vec!["get", "rc,pods", "-o", "name"],
        vec!["get", "pods", "-o", "yaml"],
        vec!["get", "pods", "-o", "json"],
        vec!["get", "pod", "web", "-n", "shop", "-o", "yaml"],
        vec!["get", "pod", "web", "-n", "shop", "-o", "json"],
        vec!["get", "cm", "odd", "-n", "shop", "-o", "yaml"],
        vec!["get", "cm", "odd", "-n", "shop", "-o", "json"],
        vec!["get", "ns", "shop", "-o", "yaml"],
        vec!["get", "rc", "nginx", "-o", "yaml"],
        vec!["get", "configmaps", "-n", "shop"],
        vec!["get", "configmaps", "-n", "shop", "--no-headers"],
        vec!["get", "pods", "-o", "jsonpath={.items[*].metadata.name}"],
        vec![
            "get",
            "pods",
            "-o",
            "jsonpath={range .items[*]}{.metadata.name}{\"\\t\"}{.spec.containers[0].image}{\"\\n\"}{end}",
        ],
        vec![
            "get",
            "pods",
            "-A",
            "-o",
            "custom-columns=NS:.metadata.namespace,NAME:.metadata.name,IMAGES:.spec.containers[*].image,NODE:.spec.nodeName,X:.status.nothing",
        ],
        vec!["get", "pods", "--sort-by=.metadata.name"],
        vec!["get", "pods", "-l", "app=nginx", "-L", "app"],
        vec!["get", "all"],
        vec!["get", "all", "-A"],
        vec!["get", "namespaces"],
        vec!["get", "pods", "-n", "empty-ns"],
        vec!["get", "nodes", "-o", "wide"],
        vec!["get", "svc", "-A", "-o", "wide"],
        vec!["api-resources"],
        vec!["api-resources", "-o", "wide"],
        vec!["api-versions"],
    ] {
        same(env, &args);
    }
}

#[test]
fn errors_match_kubectl() {
    let env = Env::start();
    for args in [
        vec!["get", "pod", "nope"],
        vec!["get", "pods", "nope", "-o", "yaml"],
        vec!["get", "nosuchtype"],
        vec!["delete", "pod", "nope"],
        vec!["get", "pod", "a", "-n", "kube-system"],
        vec!["describe", "pod", "nope"],
    ] {
        let k = env.run(&args);
        let r = rk(&env, &args);
        assert_eq!(k.code, 1, "kubectl {args:?}: {}", k.stderr);
        assert_eq!(r.code, k.code, "exit code of rkubectl {args:?}: {}", r.stderr);
        assert_eq!(r.stderr.trim(), k.stderr.trim(), "stderr of {args:?}");
        assert_eq!(r.stdout, k.stdout, "stdout of {args:?}");
    }
    // AlreadyExists when creating twice.
    let path = env.manifest("cm.yaml", &configmap_yaml("default", "c1", "v"));
    rk_ok(&env, &["create", "-f", &path]);
    let k = env.run(&["create", "-f", &path]);
    let r = rk(&env, &["create", "-f", &path]);
    assert_eq!((r.code, r.stderr.trim()), (k.code, k.stderr.trim()));
    assert!(r.stderr.contains("Error from server (AlreadyExists): error when creating"), "{}", r.stderr);
    // No server at all.
    let mut cmd = Command::new(rkubectl_binary());
    cmd.args(["--server", "http://127.0.0.1:1", "get", "pods"])
        .env("HOME", env.dir.path())
        .env_remove("KUBECONFIG")
        .stdin(Stdio::null());
    let out = env.run_command(cmd, "rkubectl without a server");
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("The connection to the server 127.0.0.1:1 was refused"), "{}", out.stderr);
}

#[test]
fn apply_replace_delete_like_kubectl() {
    let env = Env::start();
    let path = env.manifest("fixture.yaml", &fixture("shop"));
    let out = rk_ok(&env, &["apply", "-f", &path]);
    assert_eq!(out, "namespace/shop created\nconfigmap/cfg created\npod/web created\n");
    assert_eq!(
        rk_ok(&env, &["apply", "-f", &path]),
        "namespace/shop unchanged\nconfigmap/cfg unchanged\npod/web unchanged\n"
    );
    let changed = fixture("shop").replace("color: blue", "color: red");
    let path2 = env.manifest("fixture2.yaml", &changed);
    assert_eq!(
        rk_ok(&env, &["apply", "-f", &path2]),
        "namespace/shop unchanged\nconfigmap/cfg configured\npod/web unchanged\n"
    );
    assert_eq!(env.stored("/api/v1/namespaces/shop/configmaps/cfg")["data"]["color"], "red");
    // An object created by kubectl (another field manager) still applies.
    env.ok(&["create", "-f", &env.manifest("c2.yaml", &configmap_yaml("shop", "c2", "one"))]);
    let c2 = env.manifest("c2b.yaml", &configmap_yaml("shop", "c2", "two"));
    assert_eq!(rk_ok(&env, &["apply", "-f", &c2]), "configmap/c2 configured\n");
    assert_eq!(
        rk_ok(&env, &["apply", "--server-side", "--force-conflicts", "-f", &c2]),
        "configmap/c2 serverside-applied\n"
    );
    // A directory and stdin.
    let dir = env.dir.path().join("manifests");
    std::fs::create_dir_all(dir.join("sub")).expect("dir");
    std::fs::write(dir.join("a.yaml"), configmap_yaml("shop", "from-dir", "1")).expect("write");
    std::fs::write(dir.join("sub/b.yaml"), configmap_yaml("shop", "from-subdir", "1")).expect("write");
    assert_eq!(rk_ok(&env, &["apply", "-f", &dir.to_string_lossy()]), "configmap/from-dir created\n");
    assert_eq!(
        rk_ok(&env, &["apply", "-R", "-f", &dir.to_string_lossy()]),
        "configmap/from-dir unchanged\nconfigmap/from-subdir created\n"
    );
    let mut cmd = Command::new(rkubectl_binary());
    cmd.arg("--kubeconfig")
        .arg(&env.kubeconfig)
        .args(["create", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(configmap_yaml("shop", "from-stdin", "1").as_bytes()).expect("write stdin");
    }
    let out = child.wait_with_output().expect("wait");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "configmap/from-stdin created\n");

    // replace, delete -l, delete -f.
    let replaced = env.manifest("rep.yaml", &configmap_yaml("shop", "cfg", "replaced"));
    assert_eq!(rk_ok(&env, &["replace", "-f", &replaced]), "configmap/cfg replaced\n");
    assert_eq!(env.stored("/api/v1/namespaces/shop/configmaps/cfg")["data"], serde_json::json!({"key": "replaced"}));
    assert_eq!(rk_ok(&env, &["label", "cm", "from-dir", "-n", "shop", "gone=yes"]), "configmap/from-dir labeled\n");
    let out = rk(&env, &["label", "cm", "from-dir", "-n", "shop", "gone=no"]);
    let k = env.run(&["label", "cm", "from-dir", "-n", "shop", "gone=no"]);
    assert_eq!((out.code, out.stderr.trim()), (k.code, k.stderr.trim()));
    assert_eq!(
        rk_ok(&env, &["annotate", "cm", "from-dir", "-n", "shop", "why=test"]),
        "configmap/from-dir annotated\n"
    );
    assert_eq!(rk_ok(&env, &["delete", "cm", "-n", "shop", "-l", "gone=yes"]), "configmap \"from-dir\" deleted\n");
    // The fixture without its namespace (deleting the namespace first would take the rest along).
    let without_ns = fixture("shop").split("---\n").skip(1).collect::<Vec<_>>().join("---\n");
    let objs = env.manifest("objs.yaml", &without_ns);
    assert_eq!(rk_ok(&env, &["delete", "-f", &objs]), "configmap \"cfg\" deleted\npod \"web\" deleted\n");
    assert_eq!(env.rest("/api/v1/namespaces/shop/pods/web").0, 404);
    assert_eq!(rk_ok(&env, &["delete", "namespace", "shop", "--wait=false"]), "namespace \"shop\" deleted\n");
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write kubeconfig");
    p
}

#[test]
fn kubeconfig_merge_switch_and_redaction() {
    let env = Env::start();
    let dir = env.dir.path();
    let server = env.api.url();
    let first = write(
        dir,
        "first",
        &format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: live\n  cluster:\n    server: {server}\n- name: remote\n  cluster:\n    server: https://10.0.0.1:6443\n    certificate-authority-data: Zm9vYmFy\nusers:\n- name: admin\n  user: {{}}\n- name: bob\n  user:\n    token: secret-token\n    client-key-data: Zm9vYmFy\n    username: u\n    password: p\ncontexts:\n- name: live\n  context: {{cluster: live, user: admin, namespace: kube-system}}\n- name: remote\n  context: {{cluster: remote, user: bob}}\n"
        ),
    );
    let second = write(
        dir,
        "second",
        "apiVersion: v1\nkind: Config\ncurrent-context: live\nclusters:\n- name: live\n  cluster:\n    server: http://127.0.0.1:1\ncontexts:\n- name: other\n  context: {cluster: live, user: admin, namespace: default}\n",
    );
    let chain = std::env::join_paths([&first, &second]).expect("join");
    let run = |bin: &Path, args: &[&str]| -> Out {
        let mut cmd = Command::new(bin);
        cmd.args(args).env("KUBECONFIG", &chain).env("HOME", dir).env("RUST_BACKTRACE", "0").stdin(Stdio::null());
        env.run_command(cmd, &format!("{} {args:?}", bin.display()))
    };
    let rkb = rkubectl_binary();
    for args in [
        vec!["config", "view"],
        vec!["config", "view", "--minify"],
        vec!["config", "view", "--raw"],
        vec!["config", "view", "-o", "json"],
        vec!["config", "view", "--context", "remote", "--minify"],
        vec!["config", "get-contexts"],
        vec!["config", "current-context"],
        vec!["config", "view", "-o", "jsonpath={.users[*].name}"],
    ] {
        let k = run(&env.kubectl, &args);
        let r = run(&rkb, &args);
        assert_eq!((r.code, &r.stdout), (k.code, &k.stdout), "{args:?}\nstderr: {}", r.stderr);
    }
    let view = run(&rkb, &["config", "view"]).stdout;
    assert!(view.contains("certificate-authority-data: DATA+OMITTED") && view.contains("token: REDACTED"), "{view}");
    assert!(!view.contains("secret-token"), "{view}");
    // The first file's cluster wins: the namespace of context live is kube-system, the server
    // the live one (the second file's broken server is ignored).
    let pods = run(&rkb, &["get", "pods"]);
    assert_eq!(pods.code, 0, "{}", pods.stderr);
    assert_eq!(pods.stderr.trim(), "No resources found in kube-system namespace.");
    // Context switching writes current-context where it is defined (the second file).
    assert_eq!(run(&rkb, &["config", "use-context", "other"]).stdout, "Switched to context \"other\".\n");
    assert!(std::fs::read_to_string(&second).expect("read").contains("current-context: other"));
    assert_eq!(run(&rkb, &["get", "pods"]).stderr.trim(), "No resources found in default namespace.");
    assert_eq!(
        run(&rkb, &["config", "set-context", "--current", "--namespace=kube-public"]).stdout,
        "Context \"other\" modified.\n"
    );
    assert_eq!(run(&rkb, &["get", "pods"]).stderr.trim(), "No resources found in kube-public namespace.");
    assert_eq!(
        run(&rkb, &["--context", "live", "get", "pods"]).stderr.trim(),
        "No resources found in kube-system namespace."
    );
    assert_eq!(run(&rkb, &["-n", "default", "get", "pods"]).stderr.trim(), "No resources found in default namespace.");
    // What kubectl reads back from the files rkubectl wrote is the same as what rkubectl reads.
    let k = run(&env.kubectl, &["config", "view"]);
    let r = run(&rkb, &["config", "view"]);
    assert_eq!(k.stdout, r.stdout);
    // A bearer token from --token reaches the server (rkube's apiserver without authn ignores it).
    let out = run(&rkb, &["--token", "abc", "get", "ns", "default", "-o", "name"]);
    assert_eq!(out.stdout, "namespace/default\n", "{}", out.stderr);
}

#[test]
fn watch_prints_rows_as_they_change() {
    let env = Env::start();
    rk_ok(&env, &["create", "-f", &env.manifest("c.yaml", &configmap_yaml("default", "first", "1"))]);
    let mut cmd = Command::new(rkubectl_binary());
    cmd.arg("--kubeconfig")
        .arg(&env.kubeconfig)
        .args(["get", "configmaps", "-w"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("rkubectl -w spawns");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let next = |what: &str| rx.recv_timeout(Duration::from_secs(20)).unwrap_or_else(|_| panic!("no line for {what}"));
    assert!(next("header").starts_with("NAME"));
    // kube-root-ca.crt may or may not exist; wait for our row.
    let mut line = next("first row");
    while !line.starts_with("first ") {
        line = next("first row");
    }
    rk_ok(&env, &["create", "-f", &env.manifest("d.yaml", &configmap_yaml("default", "second", "2"))]);
    let mut line = next("second row");
    while !line.starts_with("second ") {
        line = next("second row");
    }
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn describe_and_discovery_cache() {
    let env = Env::start();
    env.create_fixture("shop");
    same(&env, &["describe", "pod", "web", "-n", "shop"]);
    same(&env, &["describe", "service", "kubernetes"]);
    // The discovery cache is written once and reused: a second run needs no discovery request.
    rk_ok(&env, &["get", "pods", "-n", "shop"]);
    let cache = env.dir.path().join("rk-cache").join("discovery");
    let files: Vec<_> = walk(&cache);
    assert!(files.iter().any(|f| f.ends_with("rkubectl.json")), "discovery cache files: {files:?}");
    let out = rk_ok(&env, &["version"]);
    assert!(out.starts_with("Client Version: v") && out.contains("Server Version: v1."), "{out}");
    let info = rk_ok(&env, &["cluster-info"]);
    assert!(info.starts_with(&format!("Kubernetes control plane is running at {}", env.api.url())), "{info}");
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// Runs rkubectl as the user of `kubeconfig`.
fn rk_as(env: &Env, kubeconfig: &Path, args: &[&str]) -> Out {
    let mut cmd = Command::new(rkubectl_binary());
    cmd.arg("--kubeconfig")
        .arg(kubeconfig)
        .arg("--cache-dir")
        .arg(env.dir.path().join("rk-cache"))
        .args(args)
        .env_remove("KUBECONFIG")
        .stdin(Stdio::null());
    env.run_command(cmd, &format!("rkubectl {args:?} as {}", kubeconfig.display()))
}

/// The same command as the same user with both clients: same exit code, stdout and stderr.
fn same_as(env: &Env, kubeconfig: &Path, args: &[&str]) -> Out {
    let k = env.run_as(kubeconfig, args);
    let r = rk_as(env, kubeconfig, args);
    assert_eq!((r.code, &r.stdout, &r.stderr), (k.code, &k.stdout, &k.stderr), "{args:?}");
    r
}

#[test]
fn auth_can_i_and_whoami_over_tls_with_rbac_like_kubectl() {
    let pki = rkube_testkit::TestPki::new().expect("pki");
    let tokens = pki.dir().join("tokens.csv");
    std::fs::write(&tokens, "bob-secret-token,bob,uid-bob,\"devs,qa\"\n").expect("tokens");
    let tokens = tokens.display().to_string();
    let env = Env::start_secure(&pki, &["--authorization-mode", "Node,RBAC", "--token-auth-file", &tokens]);
    let server = env.api.url();
    let alice = pki.kubeconfig(&server, "alice", &[]).expect("alice's kubeconfig");
    let bob = pki.token_kubeconfig(&server, "bob", "bob-secret-token").expect("bob's kubeconfig");
    env.ok(&["create", "namespace", "team"]);
    env.ok(&["create", "rolebinding", "alice-view", "-n", "team", "--clusterrole=view", "--user=alice"]);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while env.run_as(&alice, &["auth", "can-i", "list", "pods", "-n", "team"]).code != 0 {
        assert!(std::time::Instant::now() < deadline, "alice's RoleBinding never took effect");
        std::thread::sleep(Duration::from_millis(100));
    }
    // yes (0) / no (1), a client certificate over TLS, the admin and a token.
    assert_eq!(same_as(&env, &alice, &["auth", "can-i", "list", "configmaps", "-n", "team"]).stdout, "yes\n");
    let no = same_as(&env, &alice, &["auth", "can-i", "delete", "configmaps", "-n", "team"]);
    assert_eq!((no.code, no.stdout.as_str()), (1, "no\n"));
    for args in [
        &["auth", "can-i", "list", "configmaps"][..],
        &["auth", "can-i", "get", "pods/web", "-n", "team"],
        &["auth", "can-i", "get", "pods", "--subresource=log", "-n", "team"],
        &["auth", "can-i", "create", "deployments.apps", "-n", "team"],
        &["auth", "can-i", "get", "nosuchthings", "-n", "team"],
        &["auth", "can-i", "get", "/healthz"],
        &["auth", "can-i", "list", "pods", "-A"],
        &["auth", "can-i", "list", "pods", "-q", "-n", "team"],
        &["auth", "can-i", "--list", "-n", "team"],
        &["auth", "can-i", "--list", "-n", "team", "--no-headers"],
        &["auth", "can-i", "--list"],
        &["auth", "whoami"],
        &["auth", "whoami", "-o", "json"],
        &["auth", "whoami", "-o", "yaml"],
    ] {
        same_as(&env, &alice, args);
        same_as(&env, &bob, args);
    }
    same_as(&env, &env.kubeconfig, &["auth", "can-i", "*", "*"]);
    same_as(&env, &env.kubeconfig, &["auth", "whoami"]);
    let who = same_as(&env, &bob, &["auth", "whoami"]).stdout;
    assert!(who.contains("Username    bob") && who.contains("UID         uid-bob"), "{who}");
    // Not allowed at all: Forbidden from the server, as kubectl reports it.
    let out = same_as(&env, &alice, &["top", "pod", "-n", "team"]);
    assert_ne!(out.code, 0);
    // --tls-server-name: the certificate must name it instead of the URL's host (127.0.0.1).
    let named = ["--tls-server-name=localhost", "auth", "can-i", "list", "configmaps", "-n", "team"];
    assert_eq!(same_as(&env, &alice, &named).stdout, "yes\n");
    let wrong = ["--tls-server-name=wrong.example", "auth", "can-i", "list", "configmaps", "-n", "team"];
    let (r, k) = (rk_as(&env, &alice, &wrong), env.run_as(&alice, &wrong));
    assert_eq!((r.code, k.code), (1, 1), "rkubectl: {r:?}\nkubectl: {k:?}");
    assert!(r.stderr.contains("wrong.example") && k.stderr.contains("wrong.example"), "{r:?}\n{k:?}");
}

#[test]
fn autoscale_and_completion() {
    let env = Env::start();
    env.ok(&["create", "deployment", "web", "--image=nginx:1.27"]);
    env.ok(&["create", "deployment", "api", "--image=nginx:1.27"]);
    // Same objects from both clients (one per name), same lines, same errors.
    assert_eq!(
        rk_ok(&env, &["autoscale", "deployment", "web", "--min=2", "--max=5", "--cpu-percent=80"]),
        "horizontalpodautoscaler.autoscaling/web autoscaled\n"
    );
    env.ok(&["autoscale", "deployment", "api", "--min=2", "--max=5", "--cpu-percent=80"]);
    let mine = env.json(&["get", "hpa", "web"]);
    let theirs = env.json(&["get", "hpa", "api"]);
    assert_eq!(mine["apiVersion"], "autoscaling/v2");
    let mut theirs_spec = theirs["spec"].clone();
    theirs_spec["scaleTargetRef"]["name"] = "web".into();
    assert_eq!(mine["spec"], theirs_spec);
    rk_ok(&env, &["autoscale", "deploy/web", "--max=3", "--name=web-small"]);
    env.ok(&["autoscale", "deploy/api", "--max=3", "--name=api-small"]);
    // Without --cpu-percent or --min the server's defaults apply, for both alike.
    let (small, other) = (env.json(&["get", "hpa", "web-small"]), env.json(&["get", "hpa", "api-small"]));
    for field in ["metrics", "minReplicas", "maxReplicas"] {
        assert_eq!(small["spec"][field], other["spec"][field], "{field}");
    }
    for args in [
        &["autoscale", "deployment", "web", "--max=3"][..],
        &["autoscale", "deployment", "nope", "--max=3"],
        &["autoscale", "deployment", "web", "--min=2"],
        &["autoscale", "deployment", "web", "--max=3", "--name=x", "--dry-run=client", "-o", "yaml"],
        &["autoscale", "deployment", "web", "--max=3", "--name=x", "--dry-run=client"],
        &["autoscale", "deployment", "web", "--max=3", "--name=y", "--dry-run=server", "-o", "name"],
    ] {
        let k = env.run(args);
        let r = rk(&env, args);
        assert_eq!((r.code, &r.stdout, r.stderr.trim()), (k.code, &k.stdout, k.stderr.trim()), "{args:?}");
    }
    same(&env, &["get", "hpa"]);

    // completion: scripts the shells accept, naming the verbs.
    let bash = rk_ok(&env, &["completion", "bash"]);
    assert!(bash.contains("port-forward") && bash.contains("can-i"), "bash completion lacks verbs");
    let script = env.dir.path().join("rk.bash");
    std::fs::write(&script, &bash).expect("script written");
    let check = Command::new("bash").args(["-n", &script.to_string_lossy()]).output().expect("bash runs");
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stderr));
    assert!(rk_ok(&env, &["completion", "zsh"]).starts_with("#compdef rkubectl"));
    assert!(rk_ok(&env, &["completion", "fish"]).contains("complete -c rkubectl"));
    let out = rk(&env, &["completion", "ksh"]);
    assert_eq!((out.code, out.stderr.trim()), (1, "error: Unsupported shell type \"ksh\"."));
}

#[test]
fn drain_like_kubectl() {
    let c = cluster();
    let env = &c.env;
    let node1 = "apiVersion: v1\nkind: Node\nmetadata:\n  name: node-1\n  labels: {kubernetes.io/hostname: node-1}\nstatus:\n  allocatable: {cpu: \"8\", memory: 32Gi, pods: \"110\"}\n  conditions: [{type: Ready, status: \"True\"}]\n";
    env.clean(&["create", "-f", &env.manifest("node-1.yaml", node1)]);
    let ds = "apiVersion: apps/v1\nkind: DaemonSet\nmetadata:\n  name: agent\nspec:\n  selector: {matchLabels: {app: agent}}\n  template:\n    metadata: {labels: {app: agent}}\n    spec:\n      containers: [{name: a, image: busybox}]\n";
    env.ok(&["create", "-f", &env.manifest("ds.yaml", ds)]);
    for n in ["0", "1"] {
        let pod = format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: solo-{n}\nspec:\n  nodeName: node-{n}\n  terminationGracePeriodSeconds: 1\n  containers: [{{name: c, image: busybox}}]\n  volumes: [{{name: scratch, emptyDir: {{}}}}]\n"
        );
        env.ok(&["create", "-f", &env.manifest(&format!("solo-{n}.yaml"), &pod)]);
    }
    env.until(
        &["get", "pods", "-l", "app=agent", "-o", "jsonpath={.items[*].spec.nodeName}"],
        "a DaemonSet pod on each node",
        Duration::from_secs(60),
        |out| out.contains("node-0") && out.contains("node-1"),
        || c.controllers.log_tail(),
    );
    let agent = |node: &str| {
        env.ok(&[
            "get",
            "pods",
            "-l",
            "app=agent",
            "--field-selector",
            &format!("spec.nodeName={node}"),
            "-o",
            "jsonpath={.items[0].metadata.name}",
        ])
    };
    let (agent0, agent1) = (agent("node-0"), agent("node-1"));
    // rkubectl drains node-0, kubectl node-1; the outputs must match up to the names.
    let norm = |text: &str| {
        text.replace(&agent0, "AGENT")
            .replace(&agent1, "AGENT")
            .replace("solo-0", "SOLO")
            .replace("solo-1", "SOLO")
            .replace("node-0", "NODE")
            .replace("node-1", "NODE")
    };
    let both = |extra: &[&str]| {
        let mut r_args = vec!["drain", "node-0"];
        r_args.extend_from_slice(extra);
        let mut k_args = vec!["drain", "node-1"];
        k_args.extend_from_slice(extra);
        let r = rk(env, &r_args);
        let k = env.run(&k_args);
        assert_eq!(r.code, k.code, "{extra:?}\nrkubectl: {}{}\nkubectl: {}{}", r.stdout, r.stderr, k.stdout, k.stderr);
        assert_eq!(norm(&r.stdout), norm(&k.stdout), "stdout of drain {extra:?}");
        (norm(&r.stderr), norm(&k.stderr))
    };
    // Refusals: the bare pod's emptyDir stops it first (one error is compared exactly; several
    // come in kubectl's map order, so their lines are compared as a set).
    let (r, k) = both(&["--ignore-daemonsets"]);
    assert_eq!(r, k);
    assert!(
        r.contains("cannot delete Pods with local storage (use --delete-emptydir-data to override): default/SOLO"),
        "{r}"
    );
    let (r, k) = both(&["--ignore-daemonsets", "--delete-emptydir-data"]);
    assert_eq!(r, k);
    assert!(r.contains("cannot delete cannot delete Pods that declare no controller (use --force to override)"), "{r}");
    let (r, k) = both(&[]);
    let lines = |t: &str| {
        let mut l: Vec<String> = t.lines().skip(1).map(str::to_string).collect();
        l.sort();
        l
    };
    assert_eq!(lines(&r), lines(&k));
    same(env, &["get", "nodes"]);
    for n in ["node-0", "node-1"] {
        env.ok(&["uncordon", n]);
    }
    // Warnings come in kubectl's map order too.
    let warnings = |t: &str| {
        let mut w: Vec<String> =
            t.trim().strip_prefix("Warning: ").unwrap_or(t).split("; ").map(str::to_string).collect();
        w.sort();
        w
    };
    let (r, k) = both(&["--ignore-daemonsets", "--force", "--delete-emptydir-data", "--dry-run=client"]);
    assert_eq!(warnings(&r), warnings(&k));
    for n in ["node-0", "node-1"] {
        env.ok(&["uncordon", n]);
    }
    // The real thing: the bare pod is deleted and waited for, the DaemonSet's pod stays.
    let (r, k) = both(&["--ignore-daemonsets", "--force", "--delete-emptydir-data", "--timeout=60s"]);
    assert_eq!(warnings(&r), warnings(&k));
    assert_eq!(env.run(&["get", "pod", "solo-0"]).code, 1, "solo-0 was deleted");
    assert_eq!(env.ok(&["get", "node", "node-0", "-o", "jsonpath={.spec.unschedulable}"]), "true");
    assert_eq!(agent("node-0"), agent0, "the DaemonSet pod stays");
    same(env, &["get", "nodes"]);
    let k = env.run(&["drain", "nope"]);
    let r = rk(env, &["drain", "nope"]);
    assert_eq!((r.code, &r.stdout, &r.stderr), (k.code, &k.stdout, &k.stderr));
}

/// The same command from both clients with extra environment variables (an editor, a diff
/// program): (kubectl, rkubectl).
fn both_with_env(env: &Env, args: &[&str], vars: &[(&str, &str)]) -> (Out, Out) {
    let mut k = env.command(args);
    let mut r = Command::new(rkubectl_binary());
    r.arg("--kubeconfig")
        .arg(&env.kubeconfig)
        .arg("--cache-dir")
        .arg(env.dir.path().join("rk-cache"))
        .args(args)
        .env_remove("KUBECONFIG")
        .env_remove("KUBE_EDITOR")
        .env_remove("EDITOR")
        .env_remove("KUBECTL_EXTERNAL_DIFF")
        .stdin(Stdio::null());
    k.env_remove("KUBE_EDITOR").env_remove("EDITOR").env_remove("KUBECTL_EXTERNAL_DIFF");
    for (key, value) in vars {
        k.env(key, value);
        r.env(key, value);
    }
    (env.run_command(k, &format!("kubectl {args:?}")), env.run_command(r, &format!("rkubectl {args:?}")))
}

#[test]
fn edit_like_kubectl() {
    let env = Env::start();
    env.create_fixture("ed");
    // An editor that changes nothing: both cancel the same way.
    let (k, r) = both_with_env(&env, &["edit", "cm", "cfg", "-n", "ed"], &[("KUBE_EDITOR", "true")]);
    assert_eq!((k.code, k.stdout.as_str(), k.stderr.trim()), (r.code, r.stdout.as_str(), r.stderr.trim()));
    assert_eq!(r.stderr.trim(), "Edit cancelled, no changes made.");

    // A sed script as the editor (split on whitespace) that flips blue and red, so each client
    // makes a real change: same output, and the object flipped twice.
    let flip = "sed -i -e s/blue/red/ -e t -e s/red/blue/";
    let before = rv(&env.stored("/api/v1/namespaces/ed/configmaps/cfg"));
    let (k, r) = both_with_env(&env, &["edit", "configmap/cfg", "-n", "ed"], &[("KUBE_EDITOR", flip)]);
    assert_eq!((k.code, k.stdout.as_str(), k.stderr.trim()), (r.code, r.stdout.as_str(), r.stderr.trim()));
    assert_eq!(r.stdout, "configmap/cfg edited\n");
    assert_eq!(env.stored("/api/v1/namespaces/ed/configmaps/cfg")["data"]["color"], "blue");
    assert!(rv(&env.stored("/api/v1/namespaces/ed/configmaps/cfg")) > before + 1);
    // $EDITOR when $KUBE_EDITOR is unset.
    let (k, r) = both_with_env(&env, &["edit", "cm", "cfg", "-n", "ed"], &[("EDITOR", flip)]);
    assert_eq!((k.code, k.stdout.as_str()), (r.code, r.stdout.as_str()));
    assert_eq!(env.stored("/api/v1/namespaces/ed/configmaps/cfg")["data"]["color"], "blue");
    let (_, r) = both_with_env(&env, &["edit", "cm/cfg", "-n", "ed", "-o", "json"], &[("KUBE_EDITOR", "true")]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let mut cmd = Command::new(rkubectl_binary());
    cmd.arg("--kubeconfig")
        .arg(&env.kubeconfig)
        .args(["edit", "cm", "cfg", "-n", "ed"])
        .env_remove("EDITOR")
        .env("KUBE_EDITOR", "sed -i s/blue/green/")
        .stdin(Stdio::null());
    let r = env.run_command(cmd, "rkubectl edit");
    assert_eq!((r.code, r.stdout.as_str()), (0, "configmap/cfg edited\n"), "{}", r.stderr);
    assert_eq!(env.stored("/api/v1/namespaces/ed/configmaps/cfg")["data"]["color"], "green");
    // A server error keeps the file and says where.
    let script = env.dir.path().join("stale-editor.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\nsed -i 's/^  resourceVersion: .*/  resourceVersion: \"1\"/; s/green/stale/' \"$1\"\n",
    )
    .expect("script");
    Command::new("chmod").arg("755").arg(&script).status().expect("chmod");
    let editor = script.to_string_lossy().into_owned();
    let (k, r) = both_with_env(&env, &["edit", "cm", "cfg", "-n", "ed"], &[("KUBE_EDITOR", editor.as_str())]);
    assert_eq!(k.code, r.code, "kubectl: {}\nrkubectl: {}", k.stderr, r.stderr);
    assert!(r.stderr.contains("A copy of your changes has been stored to"), "{}", r.stderr);
    let kept = r.stderr.split('"').find(|p| p.contains("rkubectl-edit-")).expect("a kept file path");
    assert!(std::fs::read_to_string(kept).expect("kept file").contains("stale"));
    let _ = std::fs::remove_file(kept);

    // An invalid save reopens the file with the failure in its header, as kubectl does; the
    // second save fixes it. The editor logs every file it is given.
    let script = env.dir.path().join("fixing-editor.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\ncat \"$1\" >> \"$SEEN\"; echo ==== >> \"$SEEN\"\n\
         if grep -q '^  color:' \"$1\"; then sed -i 's/^  color:/  bad key!:/' \"$1\"; \
         else sed -i 's/^  bad key!:/  shade:/' \"$1\"; fi\n",
    )
    .expect("script");
    Command::new("chmod").arg("755").arg(&script).status().expect("chmod");
    let mut headers = Vec::new();
    for (client, cm) in [("kubectl", "k-cm"), ("rkubectl", "r-cm")] {
        env.ok(&["create", "configmap", cm, "-n", "ed", "--from-literal=color=green"]);
        let seen = env.dir.path().join(format!("seen-{client}"));
        let mut cmd = if client == "kubectl" {
            env.command(&["edit", "cm", cm, "-n", "ed"])
        } else {
            let mut c = Command::new(rkubectl_binary());
            c.arg("--kubeconfig").arg(&env.kubeconfig).args(["edit", "cm", cm, "-n", "ed"]).env_remove("KUBECONFIG");
            c
        };
        cmd.env_remove("EDITOR").env("KUBE_EDITOR", &script).env("SEEN", &seen).stdin(Stdio::null());
        let out = env.run_command(cmd, client);
        assert_eq!((out.code, out.stdout.clone()), (0, format!("configmap/{cm} edited\n")), "{client}: {out:?}");
        let stored = env.stored(&format!("/api/v1/namespaces/ed/configmaps/{cm}"));
        assert_eq!(stored["data"], serde_json::json!({"shade": "green"}), "{client}");
        let log = std::fs::read_to_string(&seen).expect("editor log");
        let opened: Vec<&str> = log.split("====\n").filter(|s| !s.is_empty()).collect();
        assert_eq!(opened.len(), 2, "{client} opened the editor twice: {log}");
        assert!(opened[1].contains("  bad key!: green"), "the reopened file holds the failed edit: {}", opened[1]);
        let header: Vec<String> =
            opened[1].lines().filter(|l| l.starts_with('#')).map(|l| l.replace(cm, "CM")).collect();
        headers.push(header);
    }
    assert_eq!(headers[1], headers[0], "rkubectl's reopened header is kubectl's");
    assert!(headers[1].iter().any(|l| l.contains("was not valid")), "{:?}", headers[1]);
}

#[test]
fn diff_like_kubectl() {
    let env = Env::start();
    env.create_fixture("df");
    let same_cm = env.manifest("same.yaml", fixture("df").split("---\n").nth(1).expect("configmap"));
    // kubectl's default client-side diff shows an empty annotations map the apiserver adds, so compare with its server-side diff.
    let (k, r) = both_with_env(&env, &["diff", "--server-side", "--force-conflicts", "-f", &same_cm], &[]);
    assert_eq!((k.code, r.code), (0, 0), "kubectl: {}{}\nrkubectl: {}{}", k.stdout, k.stderr, r.stdout, r.stderr);
    assert_eq!(r.stdout, "");
    let changed = env.manifest("changed.yaml", &configmap_yaml("df", "cfg", "new-value"));
    let (k, r) = both_with_env(&env, &["diff", "--server-side", "--force-conflicts", "-f", &changed], &[]);
    assert_eq!((k.code, r.code), (1, 1), "kubectl: {}{}\nrkubectl: {}{}", k.stdout, k.stderr, r.stdout, r.stderr);
    assert!(r.stdout.contains("+  key: new-value"), "{}", r.stdout);
    assert!(r.stdout.contains("LIVE-") && r.stdout.contains("MERGED-") && r.stdout.contains("v1.ConfigMap.df.cfg"));
    // A new object diffs against nothing; nothing was written.
    let fresh = env.manifest("fresh.yaml", &configmap_yaml("df", "fresh", "1"));
    let (k, r) = both_with_env(&env, &["diff", "--server-side", "--force-conflicts", "-f", &fresh], &[]);
    assert_eq!((k.code, r.code), (1, 1), "{}\n{}", k.stderr, r.stderr);
    assert!(r.stdout.contains("+  name: fresh"), "{}", r.stdout);
    assert_eq!(env.rest("/api/v1/namespaces/df/configmaps/fresh").0, 404);
    // An external diff program, and errors exit above 1.
    let (k, r) = both_with_env(
        &env,
        &["diff", "--server-side", "--force-conflicts", "-f", &changed],
        &[("KUBECTL_EXTERNAL_DIFF", "diff -q")],
    );
    assert_eq!((k.code, r.code), (1, 1), "{}\n{}", k.stderr, r.stderr);
    assert!(r.stdout.contains(" differ"), "{}", r.stdout);
    let (k, r) = both_with_env(&env, &["diff", "-f", "/nonexistent.yaml"], &[]);
    assert!(k.code > 1 && r.code > 1, "kubectl {} rkubectl {}", k.code, r.code);
    // Secret values never show: the same masked lines as kubectl's.
    env.ok(&[
        "-n",
        "df",
        "create",
        "secret",
        "generic",
        "creds",
        "--from-literal=user=admin",
        "--from-literal=pass=old",
    ]);
    let secret = env.manifest(
        "secret.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: creds\n  namespace: df\nstringData:\n  user: admin\n  pass: new\n  token: t0k3n\n",
    );
    let (k, r) = both_with_env(&env, &["diff", "--server-side", "--force-conflicts", "-f", &secret], &[]);
    assert_eq!((k.code, r.code), (1, 1), "kubectl: {}{}\nrkubectl: {}{}", k.stdout, k.stderr, r.stdout, r.stderr);
    let changes = |out: &str| -> Vec<String> {
        out.lines()
            .filter(|l| (l.starts_with('+') || l.starts_with('-')) && !l.starts_with("+++") && !l.starts_with("---"))
            .filter(|l| !l.contains("resourceVersion") && !l.contains("generation"))
            .map(str::to_string)
            .collect()
    };
    assert_eq!(changes(&r.stdout), changes(&k.stdout), "rkubectl:\n{}\nkubectl:\n{}", r.stdout, k.stdout);
    assert!(
        r.stdout.contains("-  pass: '*** (before)'") && r.stdout.contains("+  pass: '*** (after)'"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("+  token: '***'") && r.stdout.contains("   user: '***'"), "{}", r.stdout);
    assert!(!r.stdout.contains("YWRtaW4=") && !r.stdout.contains("bmV3"), "{}", r.stdout);
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// An etcd started by hand on a restored data dir, killed when dropped.
struct RestoredEtcd(std::process::Child);

impl Drop for RestoredEtcd {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn backup_and_restore_an_etcd_snapshot() {
    let etcd = rkube_testkit::Etcd::start().expect("etcd");
    let api = rkube_testkit::ApiServer::start(&etcd).expect("apiserver");
    let kubeconfig = api.kubeconfig().expect("kubeconfig");
    let dir = tempfile::Builder::new().prefix("rkube-backup-").tempdir().expect("dir");
    let run = |args: &[&str]| {
        let out = Command::new(rkubectl_binary())
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("rkubectl runs");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let manifest = dir.path().join("objs.yaml");
    let mut text = fixture("bk");
    for i in 0..3 {
        text.push_str("---\n");
        text.push_str(&configmap_yaml("bk", &format!("extra-{i}"), "v"));
    }
    std::fs::write(&manifest, text).expect("manifest");
    let (code, _, err) = run(&["create", "-f", &manifest.to_string_lossy()]);
    assert_eq!(code, 0, "{err}");

    let snap = dir.path().join("snap.db");
    let endpoint = etcd.endpoint();
    let (code, out, err) = run(&["backup", &snap.to_string_lossy(), "--etcd-servers", &endpoint]);
    assert_eq!(code, 0, "backup: {out}{err}");
    assert!(out.starts_with(&format!("Snapshot saved to {}", snap.display())), "{out}");
    assert!(out.contains("sha256 verified"), "{out}");
    let count = |resource: &str| -> u64 {
        out.lines()
            .find_map(|l| {
                let mut w = l.split_whitespace();
                (w.next() == Some(resource)).then(|| w.next().and_then(|n| n.parse().ok())).flatten()
            })
            .unwrap_or_else(|| panic!("no count for {resource} in\n{out}"))
    };
    // cfg + extra-0..2 (plus any the API server made itself, like kube-root-ca.crt).
    assert!(count("configmaps") >= 4, "{out}");
    assert!(count("pods") >= 1, "{out}");
    assert!(count("namespaces") >= 1, "{out}");
    let data = std::fs::read(&snap).expect("snapshot");
    assert!(data.len() > 32);
    // A corrupted copy is refused by restore before etcd's tool sees it.
    let bad = dir.path().join("bad.db");
    let mut corrupt = data.clone();
    corrupt[100] ^= 0xff;
    std::fs::write(&bad, corrupt).expect("write");
    let (code, _, err) =
        run(&["restore", &bad.to_string_lossy(), "--data-dir", &dir.path().join("x").to_string_lossy()]);
    assert_ne!(code, 0);
    assert!(err.contains("sha256"), "{err}");
    // A non-empty data dir is refused.
    let busy = dir.path().join("busy");
    std::fs::create_dir_all(&busy).expect("mkdir");
    std::fs::write(busy.join("f"), "x").expect("write");
    let (code, _, err) = run(&["restore", &snap.to_string_lossy(), "--data-dir", &busy.to_string_lossy()]);
    assert_ne!(code, 0);
    assert!(err.contains("not empty"), "{err}");

    let restored = dir.path().join("restored");
    let (code, out, err) = run(&["restore", &snap.to_string_lossy(), "--data-dir", &restored.to_string_lossy()]);
    assert_eq!(code, 0, "restore: {out}{err}");
    assert!(out.contains("with etcdctl") || out.contains("with etcdutl"), "{out}");
    assert!(restored.join("member").is_dir());

    let (client, peer) = (free_port(), free_port());
    let client_url = format!("http://127.0.0.1:{client}");
    let peer_url = format!("http://127.0.0.1:{peer}");
    let log = std::fs::File::create(dir.path().join("etcd2.log")).expect("log");
    let child = Command::new("etcd")
        .arg("--data-dir")
        .arg(&restored)
        .args(["--listen-client-urls", &client_url, "--advertise-client-urls", &client_url])
        .args(["--listen-peer-urls", &peer_url])
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("etcd on the restored dir");
    let _second = RestoredEtcd(child);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let keys = loop {
        let out = Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .args(["--endpoints", &client_url, "get", "--prefix", "/registry/", "--keys-only"])
            .output()
            .expect("etcdctl");
        if out.status.success() {
            break String::from_utf8_lossy(&out.stdout).into_owned();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "restored etcd never answered: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(dir.path().join("etcd2.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    for key in [
        "/registry/core/configmaps/bk/cfg",
        "/registry/core/configmaps/bk/extra-2",
        "/registry/core/pods/bk/web",
        "/registry/core/namespaces/bk",
    ] {
        assert!(keys.lines().any(|l| l == key), "{key} not in the restored etcd:\n{keys}");
    }
}

#[test]
fn waits_draw_a_status_line_only_on_a_terminal() {
    let env = Env::start();
    env.ok(&["create", "configmap", "settings", "--from-literal=a=1"]);
    let args = ["wait", "--for=condition=Ready", "configmap/settings", "--timeout=2s"];
    // Piped: exactly kubectl's output, no escape sequences.
    let (r, k) = (rk(&env, &args), env.run(&args));
    assert_eq!((r.code, &r.stdout, &r.stderr), (k.code, &k.stdout, &k.stderr));
    assert!(!r.stderr.contains('\u{1b}'));
    // On a pseudo-terminal: a spinner line with what is awaited and the time left, erased
    // before the error is printed.
    let inner = format!(
        "{} --kubeconfig {} --cache-dir {} {}",
        rkubectl_binary().display(),
        env.kubeconfig.display(),
        env.dir.path().join("rk-cache").display(),
        args.join(" ")
    );
    let out = Command::new("script")
        .args(["-qefc", &inner, "/dev/null"])
        .env_remove("KUBECONFIG")
        .env_remove("RKUBECTL_NO_PROGRESS")
        .env("TERM", "xterm")
        .stdin(Stdio::null())
        .output()
        .expect("script runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text:?}");
    assert!(text.contains("waiting for configmap/settings: condition=Ready ["), "{text:?}");
    assert!(text.contains(", timeout in 1s]") || text.contains(", timeout in 0s]"), "{text:?}");
    assert!(text.contains("\r\u{1b}[Kerror: timed out waiting for the condition on configmaps/settings"), "{text:?}");
}

const DAEMONSET: &str = "apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: agent
spec:
  selector:
    matchLabels: {app: agent}
  template:
    metadata:
      labels: {app: agent}
    spec:
      containers:
      - name: agent
        image: busybox:1
---
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: db
spec:
  replicas: 2
  serviceName: db
  selector:
    matchLabels: {app: db}
  template:
    metadata:
      labels: {app: db}
    spec:
      containers:
      - name: db
        image: busybox:1
";

/// `rollout status` waits with rkubectl first; kubectl then sees the finished rollout and
/// prints only the last line, which rkubectl must have ended with.
fn rollout_status_like_kubectl(env: &Env, target: &str) -> String {
    let args = ["rollout", "status", target, "--timeout=60s"];
    let r = rk(env, &args);
    assert_eq!(r.code, 0, "rkubectl {args:?}: {r:?}");
    let k = env.run(&args);
    assert_eq!(k.code, 0, "kubectl {args:?}: {k:?}");
    assert_eq!(r.stdout.lines().last(), k.stdout.lines().last(), "rkubectl:\n{}\nkubectl:\n{}", r.stdout, k.stdout);
    r.stdout
}

#[test]
fn rollout_of_daemonsets_and_statefulsets_like_kubectl() {
    let c = cluster();
    let env = &c.env;
    env.ok(&["create", "-f", &env.manifest("workloads.yaml", DAEMONSET)]);
    let done = rollout_status_like_kubectl(env, "ds/agent");
    assert!(done.ends_with("daemon set \"agent\" successfully rolled out\n"), "{done}");
    let done = rollout_status_like_kubectl(env, "statefulset/db");
    assert!(done.ends_with("partitioned roll out complete: 2 new pods have been updated...\n"), "{done}");

    // A new template makes revision 2 of each; history lists both like kubectl.
    for target in ["ds/agent", "sts/db"] {
        rk_ok(env, &["set", "image", target, "*=busybox:2"]);
        rollout_status_like_kubectl(env, target);
        let history = same(env, &["rollout", "history", target]);
        assert!(history.contains("REVISION  CHANGE-CAUSE\n1         <none>\n2         <none>\n"), "{history}");
    }
    // Undo goes back to revision 1's template, which becomes revision 3.
    let undo = rk_ok(env, &["rollout", "undo", "ds/agent"]);
    assert_eq!(undo, "daemonset.apps/agent rolled back\n");
    let image = env.ok(&["get", "ds", "agent", "-o", "jsonpath={.spec.template.spec.containers[0].image}"]);
    assert_eq!(image, "busybox:1");
    rollout_status_like_kubectl(env, "ds/agent");
    let history = same(env, &["rollout", "history", "ds/agent"]);
    assert!(history.contains("2         <none>\n3         <none>\n"), "{history}");
    // Restart stamps the template; the StatefulSet rolls again.
    assert_eq!(rk_ok(env, &["rollout", "restart", "sts/db"]), "statefulset.apps/db restarted\n");
    let stamp = env.ok(&[
        "get",
        "sts",
        "db",
        "-o",
        "jsonpath={.spec.template.metadata.annotations.kubectl\\.kubernetes\\.io/restartedAt}",
    ]);
    assert!(stamp.ends_with('Z'), "{stamp}");
    rollout_status_like_kubectl(env, "sts/db");
    // Kinds rollout does not know are refused.
    let refused = rk(env, &["rollout", "status", "configmap/x"]);
    assert_eq!(refused.code, 1, "{refused:?}");
}

#[test]
fn patch_like_kubectl() {
    let env = Env::start();
    env.create_fixture("pt");
    for args in [
        &["patch", "configmap", "cfg", "-n", "pt", "-p", r#"{"data":{"color":"teal"}}"#][..],
        &["patch", "configmap", "cfg", "-n", "pt", "-p", r#"{"data":{"color":"teal"}}"#],
        &["patch", "cm/cfg", "-n", "pt", "--type", "merge", "-p", r#"{"data":{"shade":"dark"}}"#],
        &[
            "patch",
            "cm",
            "cfg",
            "-n",
            "pt",
            "--type=json",
            "-p",
            r#"[{"op":"replace","path":"/data/shade","value":"light"}]"#,
        ],
        &["patch", "cm", "cfg", "-n", "pt", "--type=json", "-p", r#"[{"op":"remove","path":"/data/nothing"}]"#],
        &["patch", "cm", "cfg", "-n", "pt", "-p", "{not json"],
        &["patch", "cm", "cfg", "-n", "pt", "--type=merge", "-p", r#"{"data":{"bad key":"1"}}"#],
        &["patch", "cm", "cfg", "-n", "pt", "--type=merge", "-p", r#"{"data":{"bad key":"1","also bad":"2"}}"#],
        &["patch", "cm", "missing", "-n", "pt", "-p", "{}"],
        &["patch", "cm", "cfg", "-n", "pt", "--type=merge", "-p", r#"{"data":{"x":"1"}}"#, "--dry-run=server"],
        &["patch", "cm", "cfg", "-n", "pt", "--type=merge", "-p", r#"{"data":{"x":"1"}}"#, "--dry-run=client"],
        &["patch", "cm", "cfg", "-n", "pt", "--type=merge", "-p", r#"{"data":{"color":"teal"}}"#, "--dry-run=server"],
        &["patch", "cm", "cfg", "-n", "pt", "--type=merge", "-p", r#"{"data":{"y":"2"}}"#, "-o", "jsonpath={.data}"],
    ] {
        same(&env, args);
    }
    let stored = env.stored("/api/v1/namespaces/pt/configmaps/cfg");
    assert_eq!(stored["data"]["color"], "teal");
    assert_eq!(stored["data"]["shade"], "light");
    assert!(stored["data"]["x"].is_null(), "a dry run changes nothing: {stored}");
}
