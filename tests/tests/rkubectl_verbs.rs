//! rkubectl's daily verbs against the real kubectl (v1.33) on one control plane (real etcd,
//! rkube-apiserver, scheduler, controller-manager and the kubelet stand-in): `rollout
//! pause|resume`, `set env|resources|serviceaccount`, `certificate approve|deny` and
//! `events`. A verb that changes state runs on twin objects, one per client; stdout, stderr
//! and exit codes must match once the twin's name is swapped, and so must the objects after.
//!
//! Build first: `cargo build -p rkubectl -p rkube-apiserver -p rkube-controller-manager
//! -p rkube-scheduler --bins`.

mod support;

use serde_json::{Value, json};
use std::time::Duration;
use support::rkubectl::*;
use support::*;

const NODE: &str = "apiVersion: v1
kind: Node
metadata:
  name: node-0
  labels: {kubernetes.io/hostname: node-0, kubernetes.io/os: linux}
spec:
  podCIDR: 10.244.0.0/24
status:
  capacity: {cpu: \"8\", memory: 32Gi, pods: \"110\"}
  allocatable: {cpu: \"8\", memory: 32Gi, pods: \"110\"}
  addresses: [{type: InternalIP, address: 10.0.0.10}, {type: Hostname, address: node-0}]
  conditions: [{type: Ready, status: \"True\", reason: KubeletReady, message: kubelet is posting ready status}]
";

/// The twins (`k-web` for kubectl, `r-web` for rkubectl) and what `--from` reads.
fn objects() -> String {
    let mut docs = vec![
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: verbs}\n".to_string(),
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg, namespace: verbs}\ndata: {db.host: db.local}\n"
            .to_string(),
        "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: builder, namespace: verbs}\n".to_string(),
    ];
    for name in ["k-web", "r-web"] {
        docs.push(format!(
            "apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}, namespace: verbs}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      containers:
      - name: web
        image: 127.0.0.1:5000/busybox:1
        env: [{{name: KEEP, value: \"1\"}}]
      - name: sidecar
        image: 127.0.0.1:5000/busybox:1
"
        ));
    }
    docs.join("---\n")
}

/// Runs `args` (with `{}` standing for the object name) with kubectl on `k_name` and with
/// rkubectl on `r_name`; outputs must match with the names swapped. Returns both outputs.
fn twin(env: &Env, args: &[&str], k_name: &str, r_name: &str) -> (Out, Out) {
    let fill = |name: &str| -> Vec<String> { args.iter().map(|a| a.replace("{}", name)).collect() };
    let k_args = fill(k_name);
    let r_args = fill(r_name);
    let k = env.run(&k_args.iter().map(String::as_str).collect::<Vec<_>>());
    let r = rk(env, &r_args.iter().map(String::as_str).collect::<Vec<_>>());
    let swap = |s: &str| s.replace(r_name, k_name);
    assert_eq!(
        k.code, r.code,
        "exit code of {args:?}\nkubectl: {}{}\nrkubectl: {}{}",
        k.stdout, k.stderr, r.stdout, r.stderr
    );
    assert_eq!(k.stdout, swap(&r.stdout), "stdout of {args:?}");
    assert_eq!(k.stderr.trim(), swap(&r.stderr).trim(), "stderr of {args:?}");
    (k, r)
}

/// The parts of a written object both twins must agree on: its spec (names swapped) and name.
fn comparable(obj: &Value, r_name: &str, k_name: &str) -> Value {
    let swap = |s: &str| if r_name.is_empty() { s.to_string() } else { s.replace(r_name, k_name) };
    let text = swap(&obj["spec"].to_string());
    let spec: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    json!({"name": swap(obj["metadata"]["name"].as_str().unwrap_or("")), "spec": spec})
}

/// Asserts the twin Deployments have the same spec (names swapped).
fn same_objects(env: &Env, kind: &str, k_name: &str, r_name: &str) {
    let k = env.json(&["-n", "verbs", "get", kind, k_name]);
    let r = env.json(&["-n", "verbs", "get", kind, r_name]);
    assert_eq!(comparable(&k, "", k_name)["spec"], comparable(&r, r_name, k_name)["spec"], "{kind} specs differ");
}

#[test]
fn daily_verbs_match_kubectl() {
    let cp = ControlPlane::start(NODE);
    let env = &cp.env;
    env.clean(&["create", "-f", &env.manifest("objects.yaml", &objects())]);

    rollout_pause_and_resume(env);
    set_env(env);
    set_resources_and_serviceaccount(env);
    certificates(env);
    events(env);
}

fn rollout_pause_and_resume(env: &Env) {
    let n = ["-n", "verbs"];
    let (k, _) = twin(env, &[n[0], n[1], "rollout", "pause", "deployment/{}"], "k-web", "r-web");
    assert_eq!(k.stdout, "deployment.apps/k-web paused\n");
    let (k, _) = twin(env, &[n[0], n[1], "rollout", "pause", "deployment/{}"], "k-web", "r-web");
    assert_eq!(k.code, 1);
    assert_eq!(k.stderr.trim(), "error: deployments.apps \"k-web\" is already paused");
    for name in ["k-web", "r-web"] {
        let d = env.json(&["-n", "verbs", "get", "deployment", name]);
        assert_eq!(d["spec"]["paused"], true, "{d}");
    }
    let (k, _) = twin(env, &[n[0], n[1], "rollout", "resume", "deployment", "{}"], "k-web", "r-web");
    assert_eq!(k.stdout, "deployment.apps/k-web resumed\n");
    twin(env, &[n[0], n[1], "rollout", "resume", "deployment/{}"], "k-web", "r-web");
    same_objects(env, "deployment", "k-web", "r-web");
    same_bytes(env, &["-n", "verbs", "rollout", "pause", "configmap/cfg"]);
    same_bytes(env, &["-n", "verbs", "rollout", "pause", "deployment/nope"]);
    same_bytes(env, &["-n", "verbs", "rollout", "pause"]);
    let (k, _) = twin(env, &[n[0], n[1], "rollout", "pause", "deployment/{}", "-o", "name"], "k-web", "r-web");
    assert_eq!(k.stdout, "deployment.apps/k-web\n");
    twin(env, &[n[0], n[1], "rollout", "resume", "deployment/{}"], "k-web", "r-web");
}

fn set_env(env: &Env) {
    let base = ["-n", "verbs", "set", "env", "deployment/{}"];
    let with = |extra: &[&'static str]| -> Vec<&str> { base.iter().copied().chain(extra.iter().copied()).collect() };
    let (k, _) = twin(env, &with(&["A=1", "B=two words"]), "k-web", "r-web");
    assert_eq!(k.stdout, "deployment.apps/k-web env updated\n");
    // Nothing changes: nothing is printed.
    let (k, _) = twin(env, &with(&["A=1"]), "k-web", "r-web");
    assert_eq!(k.stdout, "");
    let (k, _) = twin(env, &with(&["A=3", "--overwrite=false"]), "k-web", "r-web");
    assert_eq!(k.code, 1, "{}", k.stderr);
    twin(env, &with(&["B-", "-c", "web"]), "k-web", "r-web");
    twin(env, &with(&["--from=configmap/cfg", "--prefix=CFG_", "-c", "sidecar"]), "k-web", "r-web");
    twin(env, &with(&["-e", "C=3", "-c", "side*"]), "k-web", "r-web");
    twin(env, &with(&["-c", "nothing", "D=4"]), "k-web", "r-web");
    twin(env, &with(&["--list"]), "k-web", "r-web");
    twin(env, &with(&["E=5", "--dry-run=client", "-o", "name"]), "k-web", "r-web");
    twin(env, &with(&["E=5", "--dry-run=server"]), "k-web", "r-web");
    let k = env.run(&["-n", "verbs", "set", "env", "deployment/k-web", "F=6", "--dry-run=client", "-o", "json"]);
    let r = rk(env, &["-n", "verbs", "set", "env", "deployment/r-web", "F=6", "--dry-run=client", "-o", "json"]);
    let parse = |s: &str| serde_json::from_str::<Value>(s).unwrap_or(Value::Null);
    assert_eq!(comparable(&parse(&k.stdout), "", "k-web"), comparable(&parse(&r.stdout), "r-web", "k-web"));
    same_objects(env, "deployment", "k-web", "r-web");
    let d = env.json(&["-n", "verbs", "get", "deployment", "r-web"]);
    let web_env = &d["spec"]["template"]["spec"]["containers"][0]["env"];
    assert_eq!(web_env, &json!([{"name": "KEEP", "value": "1"}, {"name": "A", "value": "1"}]), "{d}");
    // Errors that change nothing, on one object.
    same_bytes(env, &["-n", "verbs", "set", "env", "deployment/k-web", "1A=x"]);
    same_bytes(env, &["-n", "verbs", "set", "env", "A=1", "deployment/k-web"]);
    same_bytes(env, &["-n", "verbs", "set", "env", "deployment/k-web", "A=1", "A-"]);
    same_bytes(env, &["-n", "verbs", "set", "env", "deployment/k-web", "--keys=x"]);
    same_bytes(env, &["-n", "verbs", "set", "env", "deployment/nope", "A=1"]);
}

fn set_resources_and_serviceaccount(env: &Env) {
    let base = ["-n", "verbs", "set", "resources", "deployment/{}"];
    let with = |extra: &[&'static str]| -> Vec<&str> { base.iter().copied().chain(extra.iter().copied()).collect() };
    let (k, _) =
        twin(env, &with(&["--limits=cpu=200m,memory=512Mi", "--requests=cpu=100m", "-c", "web"]), "k-web", "r-web");
    assert_eq!(k.stdout, "deployment.apps/k-web resource requirements updated\n");
    let (k, _) = twin(env, &with(&["--limits=cpu=200m"]), "k-web", "r-web");
    assert_eq!(k.stdout, "deployment.apps/k-web resource requirements updated\n", "the sidecar had no limits yet");
    twin(env, &with(&["--limits=cpu=200m", "-c", "nope"]), "k-web", "r-web");
    twin(env, &with(&[]), "k-web", "r-web");
    twin(env, &with(&["--requests=memory=64Mi", "--dry-run=client", "-o", "name"]), "k-web", "r-web");
    same_objects(env, "deployment", "k-web", "r-web");
    let d = env.json(&["-n", "verbs", "get", "deployment", "r-web"]);
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["resources"],
        json!({"limits": {"cpu": "200m", "memory": "512Mi"}, "requests": {"cpu": "100m"}}),
        "{d}"
    );

    let (k, _) = twin(env, &["-n", "verbs", "set", "serviceaccount", "deployment/{}", "builder"], "k-web", "r-web");
    assert_eq!(k.stdout, "deployment.apps/k-web serviceaccount updated\n");
    twin(env, &["-n", "verbs", "set", "sa", "deployment", "{}", "builder", "--dry-run=client"], "k-web", "r-web");
    same_bytes(env, &["-n", "verbs", "set", "serviceaccount"]);
    same_objects(env, "deployment", "k-web", "r-web");
    let d = env.json(&["-n", "verbs", "get", "deployment", "r-web"]);
    assert_eq!(d["spec"]["template"]["spec"]["serviceAccountName"], "builder", "{d}");
}

/// A CSR manifest for a client certificate, named `name`.
fn csr(name: &str) -> String {
    let (_key, pem) = rkube_auth::pki::generate_request(name, Some("team"), &[], &[]).expect("a certificate request");
    json!({
        "apiVersion": "certificates.k8s.io/v1",
        "kind": "CertificateSigningRequest",
        "metadata": {"name": name},
        "spec": {
            "request": base64_encode(pem.as_bytes()),
            "signerName": "kubernetes.io/kube-apiserver-client",
            "usages": ["client auth"],
        }
    })
    .to_string()
}

/// Standard base64 (the tests carry no base64 crate).
fn base64_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn conditions(env: &Env, name: &str) -> Vec<Value> {
    let c = env.json(&["get", "csr", name]);
    c["status"]["conditions"].as_array().cloned().unwrap_or_default()
}

fn certificates(env: &Env) {
    for name in ["k-csr", "r-csr", "k-deny", "r-deny"] {
        env.clean(&["create", "-f", &env.manifest(&format!("{name}.json"), &csr(name))]);
    }
    let (k, _) = twin(env, &["certificate", "approve", "{}"], "k-csr", "r-csr");
    assert_eq!(k.stdout, "certificatesigningrequest.certificates.k8s.io/k-csr approved\n");
    for name in ["k-csr", "r-csr"] {
        let conds = conditions(env, name);
        assert_eq!(conds.len(), 1, "{conds:?}");
        assert_eq!(conds[0]["type"], "Approved");
        assert_eq!(conds[0]["status"], "True");
        assert_eq!(conds[0]["reason"], "KubectlApprove");
        assert_eq!(conds[0]["message"], "This CSR was approved by kubectl certificate approve.");
    }
    // Approving again changes nothing and says so the same way; denying it now is refused.
    twin(env, &["certificate", "approve", "{}"], "k-csr", "r-csr");
    assert_eq!(conditions(env, "r-csr").len(), 1);
    twin(env, &["certificate", "approve", "{}", "--force"], "k-csr", "r-csr");
    let (k, _) = twin(env, &["certificate", "deny", "{}"], "k-csr", "r-csr");
    assert_eq!(k.code, 1);
    let (k, _) = twin(env, &["certificate", "deny", "{}"], "k-deny", "r-deny");
    assert_eq!(k.stdout, "certificatesigningrequest.certificates.k8s.io/k-deny denied\n");
    for name in ["k-deny", "r-deny"] {
        let conds = conditions(env, name);
        assert_eq!(conds.len(), 1, "{conds:?}");
        assert_eq!((&conds[0]["type"], &conds[0]["reason"]), (&json!("Denied"), &json!("KubectlDeny")));
    }
    twin(env, &["certificate", "approve", "{}", "-o", "name"], "k-deny", "r-deny");
    same_bytes(env, &["certificate", "approve", "nope"]);
    same_bytes(env, &["certificate", "approve"]);
}

/// An Event at a fixed time `secs_ago` seconds ago (a repeated one when `count` > 1).
fn event(name: &str, kind: &str, object: &str, kind_type: &str, reason: &str, secs_ago: i64, count: i64) -> String {
    let now = jiff::Timestamp::now();
    let at = |s: i64| (now - jiff::SignedDuration::from_secs(s)).strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
    json!({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": name, "namespace": "evs"},
        "involvedObject": {"kind": kind, "name": object, "namespace": "evs", "apiVersion": "v1"},
        "type": kind_type,
        "reason": reason,
        "message": format!("{reason} happened to {object}\nsecond line"),
        "firstTimestamp": at(secs_ago + 600),
        "lastTimestamp": at(secs_ago),
        "count": count,
        "source": {"component": "test"},
    })
    .to_string()
}

fn events(env: &Env) {
    env.clean(&["create", "namespace", "evs"]);
    same_bytes(env, &["-n", "evs", "events"]);
    let evs = [
        event("e1", "Pod", "alpha", "Normal", "Pulled", 30, 1),
        event("e2", "Pod", "beta", "Warning", "BackOff", 90, 7),
        event("e3", "ConfigMap", "cfg", "Normal", "Synced", 10, 1),
        event("e4", "Pod", "alpha", "Warning", "Failed", 4000, 2),
    ];
    for (i, e) in evs.iter().enumerate() {
        env.clean(&["create", "-f", &env.manifest(&format!("ev{i}.json"), e)]);
    }
    let table = same_bytes(env, &["-n", "evs", "events"]);
    assert_eq!(table.lines().count(), 9, "{table}");
    assert!(table.starts_with("LAST SEEN"), "{table}");
    same_bytes(env, &["-n", "evs", "events", "--types=Warning"]);
    same_bytes(env, &["-n", "evs", "events", "--types=warning,Normal", "--no-headers"]);
    same_bytes(env, &["-n", "evs", "events", "--for=pod/alpha"]);
    same_bytes(env, &["-n", "evs", "events", "--for", "configmaps/cfg", "-o", "name"]);
    same_bytes(env, &["-n", "evs", "events", "--for=pod/alpha", "-o", "json"]);
    same_bytes(env, &["-n", "evs", "events", "--types=Normal", "-o", "yaml"]);
    same_bytes(env, &["-n", "evs", "events", "--for=alpha"]);
    same_bytes(env, &["-n", "evs", "events", "--types=Bogus"]);
    same_bytes(env, &["events", "-A", "--types=Warning"]);
    // Events the controllers wrote about the twins in `verbs`.
    same_bytes(env, &["-n", "verbs", "events", "--for=deployment/k-web"]);
    // A watch prints the events already there, each flushed on its own.
    let watch = |cmd: std::process::Command| -> String {
        let mut child = {
            let mut c = cmd;
            c.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::null());
            c.spawn().expect("watch starts")
        };
        let out = drain(child.stdout.take().expect("stdout"));
        std::thread::sleep(Duration::from_secs(3));
        let _ = child.kill();
        let _ = child.wait();
        out.recv().unwrap_or_default()
    };
    let k = watch(env.command(&["-n", "evs", "events", "-w", "--types=Warning"]));
    let r = watch(rk_command(env, &["-n", "evs", "events", "-w", "--types=Warning"]));
    assert_eq!(mask_ages(&k), mask_ages(&r), "events -w\n--- kubectl\n{k}--- rkubectl\n{r}");
    assert_eq!(k.lines().count(), 5, "{k}");
}
