//! The controllers end to end with the real kubectl: a real etcd, rkube-apiserver,
//! rkube-scheduler and rkube-controller-manager, Node objects, and a kubelet stand-in that
//! writes pod status (no containers run). `rollout status`, `scale`, `set image`,
//! `rollout undo`, `wait --for=condition=complete`, `delete deployment` and
//! `delete namespace` behave as against Kubernetes.

mod support;

use rkube_testkit::Daemon;
use std::time::Duration;
use support::kubelet::KubeletStandIn;
use support::*;

struct ControlPlane {
    env: Env,
    scheduler: Daemon,
    controllers: Daemon,
    kubelet: KubeletStandIn,
}

impl ControlPlane {
    fn start(nodes: usize) -> ControlPlane {
        Self::start_with(nodes, &[], &[])
    }

    fn start_with(nodes: usize, api_args: &[&str], cm_args: &[&str]) -> ControlPlane {
        let env = Env::start_with(api_args);
        let scheduler = Daemon::start("rkube-scheduler", &env.api, &["--leader-elect=false"]).expect("scheduler");
        let mut args = vec!["--leader-elect=false"];
        args.extend_from_slice(cm_args);
        let controllers = Daemon::start("rkube-controller-manager", &env.api, &args).expect("controller-manager");
        for i in 0..nodes {
            let node = format!(
                "apiVersion: v1\nkind: Node\nmetadata:\n  name: node-{i}\n  labels: {{kubernetes.io/hostname: node-{i}}}\nstatus:\n  allocatable: {{cpu: \"8\", memory: 32Gi, pods: \"110\"}}\n  conditions: [{{type: Ready, status: \"True\"}}]\n"
            );
            env.clean(&["create", "-f", &env.manifest(&format!("node-{i}.yaml"), &node)]);
        }
        let kubelet = KubeletStandIn::start(&env.api.url());
        ControlPlane { env, scheduler, controllers, kubelet }
    }

    /// Runs kubectl and asserts success; on failure shows the daemons' logs.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.env.run(args);
        assert!(
            out.code == 0,
            "kubectl {args:?}: exit {}\nstdout: {}\nstderr: {}\ncontroller-manager:\n{}\nscheduler:\n{}",
            out.code,
            out.stdout,
            out.stderr,
            self.controllers.log_tail(),
            self.scheduler.log_tail()
        );
        out.stdout
    }

    /// Polls `kubectl args` until its output satisfies `done`.
    fn until(&self, args: &[&str], what: &str, done: impl Fn(&str) -> bool) -> String {
        let logs = || format!("controller-manager:\n{}", self.controllers.log_tail());
        self.env.until(args, what, Duration::from_secs(60), done, logs)
    }
}

#[test]
fn deployment_rollout_scale_set_image_undo_and_delete() {
    let cp = ControlPlane::start(2);
    cp.ok(&["create", "deployment", "web", "--image=nginx:1.27", "--replicas=3"]);
    let out = cp.ok(&["rollout", "status", "deployment/web", "--timeout=60s"]);
    assert!(out.contains("successfully rolled out"), "{out}");
    let pods = cp.ok(&["get", "pods", "-l", "app=web", "-o", "name"]);
    assert_eq!(pods.lines().count(), 3, "{pods}");
    let described = cp.until(&["describe", "deployment", "web"], "the ScalingReplicaSet event", |o| {
        o.contains("ScalingReplicaSet")
    });
    assert!(described.contains("deployment-controller"), "events name their controller: {described}");

    cp.ok(&["scale", "deployment/web", "--replicas=5"]);
    cp.ok(&["rollout", "status", "deployment/web", "--timeout=60s"]);
    cp.until(&["get", "pods", "-l", "app=web", "-o", "name"], "5 pods", |o| o.lines().count() == 5);

    cp.ok(&["set", "image", "deployment/web", "nginx=nginx:1.28"]);
    let out = cp.ok(&["rollout", "status", "deployment/web", "--timeout=60s"]);
    assert!(out.contains("successfully rolled out"), "{out}");
    let images = cp.until(
        &["get", "pods", "-l", "app=web", "-o", "jsonpath={range .items[*]}{.spec.containers[0].image}{\"\\n\"}{end}"],
        "every pod on the new image",
        |o| o.lines().count() == 5 && o.lines().all(|l| l == "nginx:1.28"),
    );
    assert_eq!(images.lines().count(), 5);
    let rs = cp.ok(&["get", "rs", "-l", "app=web", "-o", "jsonpath={range .items[*]}{.spec.replicas}{\" \"}{end}"]);
    let mut replicas: Vec<&str> = rs.split_whitespace().collect();
    replicas.sort();
    assert_eq!(replicas, vec!["0", "5"], "old ReplicaSet scaled to 0, new to 5");

    cp.ok(&["rollout", "undo", "deployment/web"]);
    cp.ok(&["rollout", "status", "deployment/web", "--timeout=60s"]);
    let image = cp.ok(&["get", "deployment", "web", "-o", "jsonpath={.spec.template.spec.containers[0].image}"]);
    assert_eq!(image, "nginx:1.27");
    let history = cp.ok(&["rollout", "history", "deployment/web"]);
    assert!(history.contains('2') && history.contains('3'), "{history}");
    let revision = cp.ok(&[
        "get",
        "deployment",
        "web",
        "-o",
        "jsonpath={.metadata.annotations.deployment\\.kubernetes\\.io/revision}",
    ]);
    assert_eq!(revision, "3", "undo makes the first ReplicaSet revision 3");

    cp.ok(&["delete", "deployment", "web"]);
    cp.until(&["get", "rs,pods", "-l", "app=web", "-o", "name"], "ReplicaSets and pods collected", |o| {
        o.trim().is_empty()
    });
}

#[test]
fn job_completes_and_namespace_deletion_takes_everything() {
    let cp = ControlPlane::start(1);
    cp.ok(&["create", "namespace", "batch"]);
    cp.ok(&["create", "job", "once", "-n", "batch", "--image=busybox", "--", "true"]);
    let out = cp.ok(&["wait", "--for=condition=complete", "job/once", "-n", "batch", "--timeout=60s"]);
    assert!(out.contains("condition met"), "{out}");
    let succeeded = cp.ok(&["get", "job", "once", "-n", "batch", "-o", "jsonpath={.status.succeeded}"]);
    assert_eq!(succeeded, "1");

    cp.ok(&["create", "deployment", "api", "-n", "batch", "--image=nginx", "--replicas=2"]);
    cp.ok(&["rollout", "status", "deployment/api", "-n", "batch", "--timeout=60s"]);
    cp.ok(&["delete", "namespace", "batch", "--timeout=60s"]);
    let out = cp.env.run(&["get", "namespace", "batch"]);
    assert_ne!(out.code, 0, "the namespace is gone: {}", out.stdout);
    let left = cp.ok(&["get", "pods,rs,deploy,jobs", "-A", "-o", "name"]);
    assert!(left.trim().is_empty(), "nothing of the namespace is left: {left}");
}

/// The seeds' "node crashes" story: a node's kubelet stops, the node goes NotReady with the
/// unreachable taints, its pod is evicted once its toleration runs out, and the Deployment's
/// ReplicaSet replaces it on the healthy node.
#[test]
fn pods_of_a_crashed_node_are_replaced_on_a_healthy_one() {
    let cp = ControlPlane::start_with(
        2,
        &["--default-unreachable-toleration-seconds=2", "--default-not-ready-toleration-seconds=2"],
        &["--node-monitor-grace-period=3s", "--node-monitor-period=500ms"],
    );
    cp.ok(&["create", "deployment", "web", "--image=nginx", "--replicas=2"]);
    cp.ok(&["rollout", "status", "deployment/web", "--timeout=60s"]);
    let nodes =
        cp.ok(&["get", "pods", "-l", "app=web", "-o", "jsonpath={range .items[*]}{.spec.nodeName}{\" \"}{end}"]);
    let mut nodes: Vec<&str> = nodes.split_whitespace().collect();
    nodes.sort();
    assert_eq!(nodes, vec!["node-0", "node-1"], "the scheduler spreads the two replicas");

    cp.kubelet.kill_node("node-1");
    cp.until(
        &["get", "node", "node-1", "-o", "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}"],
        "node-1 Unknown",
        |o| o == "Unknown",
    );
    let taints = cp.ok(&["get", "node", "node-1", "-o", "jsonpath={.spec.taints[*].key}"]);
    assert!(taints.contains("node.kubernetes.io/unreachable"), "{taints}");
    let ready_on_healthy = |o: &str| o.lines().filter(|l| l.starts_with("node-0 True")).count() == 2;
    cp.until(
        &["get", "pods", "-l", "app=web", "-o", "jsonpath={range .items[*]}{.spec.nodeName} {.status.conditions[?(@.type==\"Ready\")].status}{\"\\n\"}{end}"],
        "two ready replicas on node-0",
        ready_on_healthy,
    );
    let out = cp.ok(&["rollout", "status", "deployment/web", "--timeout=60s"]);
    assert!(out.contains("successfully rolled out"), "{out}");
}

#[test]
fn daemonset_and_statefulset_roll_out_with_kubectl() {
    let cp = ControlPlane::start(2);
    let ds = r#"apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec:
      containers: [{name: agent, image: "busybox:1"}]
"#;
    cp.ok(&["apply", "-f", &cp.env.manifest("ds.yaml", ds)]);
    let out = cp.ok(&["rollout", "status", "ds/agent", "--timeout=60s"]);
    assert!(out.contains("successfully rolled out"), "{out}");
    let nodes =
        cp.ok(&["get", "pods", "-l", "app=agent", "-o", "jsonpath={range .items[*]}{.spec.nodeName}{\" \"}{end}"]);
    let mut nodes: Vec<&str> = nodes.split_whitespace().collect();
    nodes.sort();
    assert_eq!(nodes, vec!["node-0", "node-1"], "one pod per node");

    let sts = r#"apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  serviceName: db
  replicas: 2
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      containers:
      - name: db
        image: "postgres:17"
        volumeMounts: [{name: data, mountPath: /var/lib/postgresql}]
  volumeClaimTemplates:
  - metadata: {name: data}
    spec:
      accessModes: [ReadWriteOnce]
      resources: {requests: {storage: 1Gi}}
"#;
    cp.ok(&["apply", "-f", &cp.env.manifest("sts.yaml", sts)]);
    let out = cp.ok(&["rollout", "status", "sts/db", "--timeout=60s"]);
    assert!(out.contains("roll out complete") || out.contains("rolling update complete"), "{out}");
    let pods = cp.ok(&["get", "pods", "-l", "app=db", "-o", "name"]);
    assert_eq!(pods.split_whitespace().collect::<Vec<_>>(), vec!["pod/db-0", "pod/db-1"]);
    let claims = cp.ok(&["get", "pvc", "-o", "name"]);
    assert_eq!(
        claims.split_whitespace().collect::<Vec<_>>(),
        vec!["persistentvolumeclaim/data-db-0", "persistentvolumeclaim/data-db-1"]
    );
}

/// `kubectl autoscale` creates an HPA the controller picks up. Nothing serves
/// `metrics.k8s.io` yet (the kubelet issue will), so it reports the missing metrics as
/// Kubernetes does and keeps the replicas within min/max.
#[test]
fn kubectl_autoscale_creates_an_hpa_that_reports_missing_metrics() {
    let cp = ControlPlane::start_with(1, &[], &["--horizontal-pod-autoscaler-sync-period=1s"]);
    cp.ok(&["create", "deployment", "web", "--image=nginx", "--replicas=1"]);
    cp.ok(&["set", "resources", "deployment/web", "--requests=cpu=100m"]);
    cp.ok(&["autoscale", "deployment", "web", "--min=2", "--max=4", "--cpu-percent=50"]);
    let reason = cp.until(
        &["get", "hpa", "web", "-o", "jsonpath={.status.conditions[?(@.type==\"ScalingActive\")].reason}"],
        "ScalingActive reason",
        |o| !o.is_empty(),
    );
    assert_eq!(reason, "FailedGetResourceMetric");
    cp.until(&["get", "deployment", "web", "-o", "jsonpath={.spec.replicas}"], "raised to minReplicas", |o| o == "2");
    let row = cp.ok(&["get", "hpa", "web"]);
    assert!(row.contains("cpu: <unknown>/50%"), "{row}");
}
