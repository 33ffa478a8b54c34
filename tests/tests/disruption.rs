//! PodDisruptionBudgets end to end with the real kubectl v1.33: `kubectl create pdb` and
//! `get pdb`, then `kubectl drain` and `rkubectl drain` of a node whose two pods share a
//! budget that allows one disruption. Each drain evicts one pod, is refused the other with
//! Kubernetes' "Cannot evict pod as it would violate the pod's disruption budget.", and
//! finishes once the Deployment's replacement is Ready on the other node. Two Node objects,
//! the scheduler, the controller-manager and a kubelet stand-in (which marks bound pods Ready
//! and confirms deletions) make this deterministic.

mod support;

use rkube_testkit::Daemon;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use support::kubelet::KubeletStandIn;
use support::*;

const VIOLATION: &str = "Cannot evict pod as it would violate the pod's disruption budget.";

/// A Deployment of two pods labelled app=web. Named `never-ready` so the kubelet stand-in
/// leaves its pods Running but not Ready: the test makes them Ready itself, so that a
/// replacement is Ready only once a drain has been refused.
fn deployment(name: &str) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
spec:
  replicas: 2
  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: web
        image: nginx:1.27
"
    )
}

struct Cluster {
    env: Env,
    controllers: Daemon,
    _scheduler: Daemon,
    _kubelet: KubeletStandIn,
}

fn node_yaml(name: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Node\nmetadata:\n  name: {name}\n  labels: {{kubernetes.io/hostname: {name}}}\nstatus:\n  allocatable: {{cpu: \"8\", memory: 32Gi, pods: \"110\"}}\n  conditions: [{{type: Ready, status: \"True\"}}]\n"
    )
}

fn cluster() -> Cluster {
    let env = Env::start();
    let scheduler = Daemon::start("rkube-scheduler", &env.api, &["--leader-elect=false"]).expect("scheduler");
    let controllers =
        Daemon::start("rkube-controller-manager", &env.api, &["--leader-elect=false"]).expect("controller-manager");
    for n in ["node-0", "node-1"] {
        env.clean(&["create", "-f", &env.manifest(&format!("{n}.yaml"), &node_yaml(n))]);
    }
    let kubelet = KubeletStandIn::start(&env.api.url());
    Cluster { env, controllers, _scheduler: scheduler, _kubelet: kubelet }
}

fn rkubectl_command(env: &Env, args: &[&str]) -> Command {
    let binary: PathBuf = rkube_testkit::apiserver::bin_dir().join("rkubectl");
    assert!(binary.exists(), "{} does not exist: run `cargo build -p rkubectl` first", binary.display());
    let mut cmd = Command::new(binary);
    cmd.arg("--kubeconfig").arg(&env.kubeconfig).args(args).env_remove("KUBECONFIG").env("RUST_BACKTRACE", "0");
    cmd
}

impl Cluster {
    /// Waits until `kubectl args` prints `want` (after trimming).
    fn wait_for(&self, args: &[&str], want: &str) {
        let what = format!("{args:?} to print {want:?}");
        self.env.until(
            args,
            &what,
            Duration::from_secs(60),
            |out| out.trim() == want,
            || format!("controller-manager log:\n{}", self.controllers.log_tail()),
        );
    }

    /// The web pods not being deleted, on `node` (any node for None).
    fn web_pods(&self, node: Option<&str>) -> Vec<Value> {
        let mut args = vec!["get", "pods", "-l", "app=web"];
        let selector = node.map(|n| format!("spec.nodeName={n}"));
        if let Some(s) = &selector {
            args.extend(["--field-selector", s]);
        }
        let pods = self.env.json(&args);
        let items = pods["items"].as_array().cloned().unwrap_or_default();
        items.into_iter().filter(|p| p["metadata"]["deletionTimestamp"].is_null()).collect()
    }

    /// The names of the web pods on `node`, sorted.
    fn pods_on(&self, node: &str) -> Vec<String> {
        let mut names: Vec<String> =
            self.web_pods(Some(node)).iter().filter_map(|p| p["metadata"]["name"].as_str().map(String::from)).collect();
        names.sort();
        names
    }

    /// Plays the kubelet's readiness probe for the pods the stand-in started but left unready;
    /// returns how many it made Ready.
    fn make_running_pods_ready(&self) -> usize {
        let mut made = 0;
        for pod in self.web_pods(None) {
            let running = pod["status"]["phase"] == "Running";
            if running && !is_ready(&pod) {
                let name = pod["metadata"]["name"].as_str().unwrap_or_default();
                let patch = r#"{"status":{"conditions":[{"type":"ContainersReady","status":"True"},{"type":"Ready","status":"True"}]}}"#;
                self.env.ok(&["patch", "pod", name, "--subresource=status", "--type=strategic", "-p", patch]);
                made += 1;
            }
        }
        made
    }

    /// Both web pods Ready on `node` (the other node cordoned meanwhile) and the budget
    /// allowing exactly one disruption; returns the pod names.
    fn both_pods_on(&self, deployment: &str, node: &str, other: &str) -> Vec<String> {
        let env = &self.env;
        env.ok(&["cordon", other]);
        env.ok(&["uncordon", node]);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            self.make_running_pods_ready();
            let ready = self.web_pods(Some(node)).iter().filter(|p| is_ready(p)).count();
            if ready == 2 {
                break;
            }
            assert!(Instant::now() < deadline, "two Ready web pods on {node}: {:?}", self.web_pods(None));
            std::thread::sleep(Duration::from_millis(100));
        }
        self.wait_for(&["get", "deployment", deployment, "-o", "jsonpath={.status.readyReplicas}"], "2");
        self.wait_for(&["get", "pdb", "web", "-o", "jsonpath={.status.disruptionsAllowed}"], "1");
        let placed: Vec<(Value, Value, Value)> = self
            .web_pods(None)
            .iter()
            .map(|p| (p["metadata"]["name"].clone(), p["spec"]["nodeName"].clone(), p["status"]["phase"].clone()))
            .collect();
        assert_eq!(self.pods_on(node).len(), 2, "both pods on {node} while {other} is cordoned: {placed:?}");
        env.ok(&["uncordon", other]);
        self.pods_on(node)
    }

    /// Runs a drain in the background. Once it reports the budget's refusal on stderr, the
    /// replacement of the pod it did evict is made Ready, so its next retry succeeds. Returns
    /// the drain's output and the refusal line.
    fn drain_with_refusal(&self, mut cmd: Command) -> (Out, String) {
        let mut child =
            cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("drain starts");
        let stdout = drain(child.stdout.take().expect("stdout"));
        let stderr = child.stderr.take().expect("stderr");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut seen = Vec::new();
        let refusal = loop {
            match lines.recv_timeout(Duration::from_secs(30)) {
                Ok(line) if line.contains("will retry after 5s") => break line,
                Ok(line) => seen.push(line),
                Err(_) => {
                    let _ = child.kill();
                    panic!(
                        "the drain never reported the budget; stderr so far: {seen:?}\nstdout: {}",
                        stdout.recv().unwrap_or_default()
                    );
                }
            }
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.make_running_pods_ready() == 0 {
            assert!(Instant::now() < deadline, "no replacement pod came up: {:?}", self.web_pods(None));
            std::thread::sleep(Duration::from_millis(100));
        }
        let status = loop {
            if let Some(status) = child.try_wait().expect("waiting for the drain") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("the drain did not finish; stdout: {}", stdout.recv().unwrap_or_default());
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        seen.push(refusal.clone());
        seen.extend(lines.try_iter());
        let out = Out {
            code: status.code().unwrap_or(-1),
            stdout: stdout.recv().unwrap_or_default(),
            stderr: seen.join("\n"),
        };
        (out, refusal)
    }
}

/// Whether the pod's Ready condition is True.
fn is_ready(pod: &Value) -> bool {
    pod["status"]["conditions"].as_array().into_iter().flatten().any(|c| c["type"] == "Ready" && c["status"] == "True")
}

/// Checks a successful drain of `node` that evicted `pods` after one refusal.
fn assert_drained(out: &Out, refusal: &str, node: &str, pods: &[String]) {
    assert_eq!(out.code, 0, "drain failed\nstdout: {}\nstderr: {}", out.stdout, out.stderr);
    assert!(refusal.starts_with("error when evicting pods/\""), "{refusal}");
    assert!(refusal.ends_with(&format!("-n \"default\" (will retry after 5s): {VIOLATION}")), "{refusal}");
    assert!(pods.iter().any(|p| refusal.contains(p.as_str())), "{refusal}");
    for pod in pods {
        assert!(out.stdout.contains(&format!("evicting pod default/{pod}\n")), "{}", out.stdout);
        assert!(out.stdout.contains(&format!("pod/{pod} evicted\n")), "{}", out.stdout);
    }
    assert!(out.stdout.ends_with(&format!("node/{node} drained\n")), "{}", out.stdout);
}

#[test]
fn drain_honours_the_disruption_budget_with_kubectl_and_rkubectl() {
    let c = cluster();
    let env = &c.env;
    // Both pods on node-0 first: node-1 takes none while cordoned.
    env.ok(&["cordon", "node-1"]);
    env.clean(&["apply", "-f", &env.manifest("web.yaml", &deployment("never-ready"))]);
    assert_eq!(
        env.clean(&["create", "pdb", "web", "--selector=app=web", "--min-available=1"]).trim(),
        "poddisruptionbudget.policy/web created"
    );
    let on_node_0 = c.both_pods_on("never-ready", "node-0", "node-1");

    let table = env.clean(&["get", "pdb"]);
    let mut lines = table.lines();
    let header: Vec<&str> =
        lines.next().unwrap_or_default().split("   ").map(str::trim).filter(|s| !s.is_empty()).collect();
    assert_eq!(header, ["NAME", "MIN AVAILABLE", "MAX UNAVAILABLE", "ALLOWED DISRUPTIONS", "AGE"], "{table}");
    let row: Vec<&str> = lines.next().unwrap_or_default().split_whitespace().collect();
    assert_eq!(row[..4], ["web", "1", "N/A", "1"], "{table}");

    // kubectl drain: one eviction goes through, the other is refused and retried every 5 s
    // until the evicted pod's replacement is Ready on node-1.
    let (out, refusal) =
        c.drain_with_refusal(env.command(&["drain", "node-0", "--ignore-daemonsets", "--timeout=60s"]));
    assert_drained(&out, &refusal, "node-0", &on_node_0);
    assert!(c.pods_on("node-0").is_empty());

    // rkubectl drain of node-1, once both pods are back there.
    let on_node_1 = c.both_pods_on("never-ready", "node-1", "node-0");
    let cmd = rkubectl_command(env, &["drain", "node-1", "--ignore-daemonsets", "--timeout=60s"]);
    let (out, refusal) = c.drain_with_refusal(cmd);
    assert_drained(&out, &refusal, "node-1", &on_node_1);
    assert!(c.pods_on("node-1").is_empty());
}

#[test]
fn a_budget_that_allows_nothing_times_the_drain_out() {
    let c = cluster();
    let env = &c.env;
    env.ok(&["cordon", "node-1"]);
    env.clean(&["apply", "-f", &env.manifest("web.yaml", &deployment("web"))]);
    env.clean(&["create", "pdb", "web", "--selector=app=web", "--max-unavailable=0"]);
    c.wait_for(&["get", "deployment", "web", "-o", "jsonpath={.status.readyReplicas}"], "2");
    c.wait_for(&["get", "pdb", "web", "-o", "jsonpath={.status.currentHealthy}"], "2");
    assert_eq!(env.ok(&["get", "pdb", "web", "-o", "jsonpath={.status.disruptionsAllowed}"]), "0");
    env.ok(&["uncordon", "node-1"]);

    let out = env.run(&["drain", "node-0", "--ignore-daemonsets", "--timeout=8s"]);
    assert_eq!(out.code, 1, "stdout: {}\nstderr: {}", out.stdout, out.stderr);
    assert!(out.stderr.contains(VIOLATION), "{}", out.stderr);
    assert!(out.stderr.contains("global timeout reached"), "{}", out.stderr);
    assert_eq!(c.pods_on("node-0").len(), 2, "nothing was evicted");
    // The eviction API itself says why, in Kubernetes' words.
    let pod = &c.pods_on("node-0")[0];
    let eviction = format!(
        "{{\"apiVersion\":\"policy/v1\",\"kind\":\"Eviction\",\"metadata\":{{\"name\":\"{pod}\",\"namespace\":\"default\"}}}}"
    );
    let out = env.run(&[
        "create",
        "--raw",
        &format!("/api/v1/namespaces/default/pods/{pod}/eviction"),
        "-f",
        &env.manifest("ev.json", &eviction),
    ]);
    assert_eq!(
        (out.code, out.stderr.trim()),
        (1, format!("Error from server (TooManyRequests): {VIOLATION}").as_str())
    );
}
