//! One real node end to end with the real kubectl: etcd, rkube-apiserver, rkube-scheduler,
//! rkube-controller-manager, a real containerd and rkube-kubelet. `kubectl run`, `apply` of a
//! Deployment, `top`, `describe` of a crash-looping pod, `logs --previous`, an image that cannot
//! be pulled, a Secret volume on tmpfs, and a ClusterIP-free pod-to-pod fetch by pod IP.

mod support;

use rkube_testkit::{Daemon, KubeletNode, images};
use std::time::Duration;
use support::*;

struct Cluster {
    env: Env,
    scheduler: Daemon,
    controllers: Daemon,
    node: KubeletNode,
}

impl Cluster {
    fn start() -> Cluster {
        let env = Env::start();
        let node = KubeletNode::start(&env.api, "node-1", &[]).expect("kubelet starts");
        let scheduler = Daemon::start("rkube-scheduler", &env.api, &["--leader-elect=false"]).expect("scheduler");
        let controllers = Daemon::start(
            "rkube-controller-manager",
            &env.api,
            &["--leader-elect=false", "--horizontal-pod-autoscaler-sync-period=2s"],
        )
        .expect("controller-manager");
        let c = Cluster { env, scheduler, controllers, node };
        c.until(&["get", "nodes"], "node-1 Ready", |o| o.contains("node-1") && o.contains(" Ready"));
        c
    }

    fn logs(&self) -> String {
        format!(
            "kubelet:\n{}\nscheduler:\n{}\ncontroller-manager:\n{}",
            self.node.kubelet.log_tail(),
            self.scheduler.log_tail(),
            self.controllers.log_tail()
        )
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.env.run(args);
        assert!(out.code == 0, "kubectl {args:?}: exit {}\n{}\n{}\n{}", out.code, out.stdout, out.stderr, self.logs());
        out.stdout
    }

    /// Polls kubectl until its output satisfies `done`.
    fn until(&self, args: &[&str], what: &str, done: impl Fn(&str) -> bool) -> String {
        self.env.until(args, what, Duration::from_secs(90), done, || self.logs())
    }
}

#[test]
fn pods_run_for_real_behind_kubectl() {
    let c = Cluster::start();
    let image = format!("--image={}", images::BUSYBOX_IMAGE);

    // kubectl run: scheduled, pulled (already present), Running with a pod IP.
    c.ok(&["run", "web", &image, "--image-pull-policy=IfNotPresent", "--", "httpd", "-f", "-p", "8080", "-h", "/etc"]);
    c.until(&["get", "pod", "web", "-o", "jsonpath={.status.phase}"], "web Running", |o| o == "Running");
    let ip = c.ok(&["get", "pod", "web", "-o", "jsonpath={.status.podIP}"]);
    assert!(!ip.is_empty());

    // A Deployment rolls out on real containers; one replica fetches from the web pod by IP.
    let deployment = format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app\nspec:\n  replicas: 2\n  selector:\n    matchLabels: {{app: app}}\n  template:\n    metadata:\n      labels: {{app: app}}\n    spec:\n      terminationGracePeriodSeconds: 1\n      containers:\n      - name: main\n        image: {}\n        imagePullPolicy: IfNotPresent\n        command: [sh, -c, \"trap 'exit 0' TERM; while true; do wget -q -O /tmp/got http://{ip}:8080/hostname; sleep 1; done\"]\n        readinessProbe:\n          exec: {{command: [test, -s, /tmp/got]}}\n          periodSeconds: 1\n",
        images::BUSYBOX_IMAGE
    );
    c.ok(&["apply", "-f", &c.env.manifest("app.yaml", &deployment)]);
    let out = c.ok(&["rollout", "status", "deployment/app", "--timeout=90s"]);
    assert!(out.contains("successfully rolled out"), "{out}");

    // kubectl top: metrics.k8s.io served from the kubelet's stats.
    let top = c.until(&["top", "pods"], "pod metrics", |o| o.contains("web") && o.contains("MEMORY"));
    assert!(top.contains("CPU(cores)"), "{top}");
    let top = c.until(&["top", "nodes"], "node metrics", |o| o.contains("node-1"));
    assert!(top.contains("CPU%") || top.contains("CPU(%)"), "{top}");

    // A crash-looping container: CrashLoopBackOff, described with its last exit, previous logs.
    c.ok(&["run", "crash", &image, "--image-pull-policy=IfNotPresent", "--", "sh", "-c", "echo oops; exit 4"]);
    c.until(&["get", "pod", "crash"], "CrashLoopBackOff", |o| o.contains("CrashLoopBackOff"));
    let described =
        c.until(&["describe", "pod", "crash"], "a described back-off", |o| o.contains("Back-off restarting"));
    assert!(described.contains("Last State:     Terminated"), "{described}");
    assert!(described.contains("Exit Code:    4"), "{described}");
    let previous = c.ok(&["logs", "crash", "--previous"]);
    assert_eq!(previous.trim(), "oops");

    // An image that cannot be pulled says which and why.
    c.ok(&["run", "missing", "--image=127.0.0.1:9/nothing:1"]);
    c.until(&["get", "pod", "missing"], "ErrImagePull", |o| {
        o.contains("ErrImagePull") || o.contains("ImagePullBackOff")
    });
    let described = c.until(&["describe", "pod", "missing"], "the pull failure event", |o| {
        o.contains("Failed to pull image \"127.0.0.1:9/nothing:1\"")
    });
    assert!(described.contains("Pulling image"), "{described}");

    // A Secret volume sits on tmpfs.
    c.ok(&["create", "secret", "generic", "creds", "--from-literal=password=s3cret"]);
    let pod = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: vault\nspec:\n  terminationGracePeriodSeconds: 1\n  volumes:\n  - name: creds\n    secret: {{secretName: creds}}\n  containers:\n  - name: main\n    image: {}\n    imagePullPolicy: IfNotPresent\n    command: [sh, -c, \"trap 'exit 0' TERM; while true; do sleep 1; done\"]\n    volumeMounts:\n    - {{name: creds, mountPath: /etc/creds}}\n",
        images::BUSYBOX_IMAGE
    );
    c.ok(&["apply", "-f", &c.env.manifest("vault.yaml", &pod)]);
    c.until(&["get", "pod", "vault", "-o", "jsonpath={.status.phase}"], "vault Running", |o| o == "Running");
    let mounts = c.ok(&["exec", "vault", "--", "sh", "-c", "grep /etc/creds /proc/mounts; cat /etc/creds/password"]);
    assert!(mounts.contains("tmpfs"), "{mounts}");
    assert!(mounts.contains("s3cret"), "{mounts}");

    // The HPA reads real usage through metrics.k8s.io: a busy pod at 10x its request scales out.
    let busy = format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: busy\nspec:\n  replicas: 1\n  selector:\n    matchLabels: {{app: busy}}\n  template:\n    metadata:\n      labels: {{app: busy}}\n    spec:\n      terminationGracePeriodSeconds: 1\n      containers:\n      - name: main\n        image: {}\n        imagePullPolicy: IfNotPresent\n        command: [sh, -c, \"trap 'exit 0' TERM; while true; do :; done\"]\n        resources:\n          requests: {{cpu: 20m}}\n          limits: {{cpu: 200m}}\n",
        images::BUSYBOX_IMAGE
    );
    c.ok(&["apply", "-f", &c.env.manifest("busy.yaml", &busy)]);
    c.ok(&["rollout", "status", "deployment/busy", "--timeout=60s"]);
    c.ok(&["autoscale", "deployment", "busy", "--cpu-percent=50", "--min=1", "--max=2"]);
    let hpa = c.until(&["get", "hpa", "busy"], "a measured utilization", |o| {
        o.lines().nth(1).is_some_and(|l| l.contains("cpu: ") && !l.contains("<unknown>"))
    });
    assert!(hpa.contains("/50%"), "{hpa}");
    c.until(&["get", "deployment", "busy", "-o", "jsonpath={.spec.replicas}"], "scaled out to 2", |o| o == "2");
    c.ok(&["delete", "deployment", "busy"]);

    // Deleting the Deployment takes its pods off the node.
    c.ok(&["delete", "deployment", "app"]);
    c.until(&["get", "pods", "-l", "app=app", "-o", "name"], "app pods gone", |o| o.trim().is_empty());
}
