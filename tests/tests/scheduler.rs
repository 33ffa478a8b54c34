//! rkube-scheduler end to end: real etcd, rkube-apiserver and rkube-scheduler processes, Node
//! objects and pods created by the real kubectl. Pods land where nodeSelector, node affinity,
//! taints and tolerations, cordons, resources and pod anti-affinity say; pods that fit nowhere
//! explain why in `kubectl describe`, and are placed once a node arrives that fits them; a
//! standby scheduler takes over when the leader is killed.

mod support;

use rkube_testkit::Daemon;
use serde_json::Value;
use std::time::{Duration, Instant};
use support::*;

fn node(name: &str, cpu: &str, memory: &str, labels: &str, extra_spec: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Node
metadata:
  name: {name}
  labels:
    kubernetes.io/hostname: {name}
{labels}
spec:
{extra_spec}
status:
  capacity: {{cpu: "{cpu}", memory: {memory}, pods: "110"}}
  allocatable: {{cpu: "{cpu}", memory: {memory}, pods: "110"}}
  conditions:
  - type: Ready
    status: "True"
    reason: KubeletReady
    message: ready
"#
    )
}

fn pod(name: &str, cpu: &str, extra_spec: &str, labels: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: {name}
  labels:
    app: {name}
{labels}
spec:
{extra_spec}
  containers:
  - name: main
    image: registry.local/pause:1
    resources:
      requests: {{cpu: "{cpu}", memory: 64Mi}}
"#
    )
}

/// Waits until the pod has a node, or fails with what the scheduler said.
fn wait_bound(env: &Env, sched: &Daemon, name: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let pod = env.json(&["get", "pod", name]);
        if let Some(node) = pod["spec"]["nodeName"].as_str() {
            return node.to_string();
        }
        if Instant::now() > deadline {
            panic!("pod {name} was not bound: {}\nscheduler log:\n{}", pod["status"], sched.log_tail());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The PodScheduled condition once the scheduler has given up on the pod.
fn wait_unschedulable(env: &Env, sched: &Daemon, name: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let pod = env.json(&["get", "pod", name]);
        let cond = pod["status"]["conditions"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["type"] == "PodScheduled"))
            .cloned();
        if let Some(c) = cond.filter(|c| c["status"] == "False") {
            assert!(pod["spec"]["nodeName"].is_null(), "{pod}");
            return c;
        }
        if Instant::now() > deadline {
            panic!("pod {name} never marked unschedulable: {}\nscheduler log:\n{}", pod["status"], sched.log_tail());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn pods_land_where_the_rules_say_and_unschedulable_pods_explain_why() {
    let env = Env::start();
    let sched = Daemon::start("rkube-scheduler", &env.api, &["--leader-elect=false"]).expect("scheduler starts");
    let nodes = [
        node("node-a", "4", "8Gi", "    disk: ssd", "  {}"),
        node(
            "node-b",
            "8",
            "16Gi",
            "    accelerator: gpu",
            "  taints:\n  - {key: dedicated, value: gpu, effect: NoSchedule}",
        ),
        node("node-c", "8", "16Gi", "", "  unschedulable: true"),
    ]
    .join("---\n");
    let out = env.clean(&["create", "-f", &env.manifest("nodes.yaml", &nodes)]);
    assert!(out.contains("node/node-c created"), "{out}");

    // nodeSelector: only node-a has disk=ssd.
    env.clean(&["create", "-f", &env.manifest("ssd.yaml", &pod("ssd", "500m", "  nodeSelector: {disk: ssd}", ""))]);
    assert_eq!(wait_bound(&env, &sched, "ssd"), "node-a");

    // Required node affinity to the gpu node, with the toleration its taint needs.
    let gpu = "  tolerations:\n  - {key: dedicated, operator: Equal, value: gpu, effect: NoSchedule}\n  affinity:\n    nodeAffinity:\n      requiredDuringSchedulingIgnoredDuringExecution:\n        nodeSelectorTerms:\n        - matchExpressions:\n          - {key: accelerator, operator: In, values: [gpu]}";
    env.clean(&["create", "-f", &env.manifest("gpu.yaml", &pod("gpu", "1", gpu, ""))]);
    assert_eq!(wait_bound(&env, &sched, "gpu"), "node-b");

    // A plain pod can only go to node-a: node-b is tainted, node-c cordoned.
    env.clean(&["create", "-f", &env.manifest("plain.yaml", &pod("plain", "1", "", ""))]);
    assert_eq!(wait_bound(&env, &sched, "plain"), "node-a");

    // The Scheduled event is there for describe.
    let events = env.json(&["get", "events", "--field-selector", "involvedObject.name=ssd"]);
    let scheduled = events["items"].as_array().unwrap().iter().find(|e| e["reason"] == "Scheduled").cloned();
    let scheduled = scheduled.unwrap_or_else(|| panic!("no Scheduled event: {events}"));
    assert_eq!(scheduled["message"], "Successfully assigned default/ssd to node-a");
    assert_eq!(scheduled["type"], "Normal");

    // Too big for every node: it stays Pending, and says why, per node.
    env.clean(&["create", "-f", &env.manifest("huge.yaml", &pod("huge", "6", "", ""))]);
    let cond = wait_unschedulable(&env, &sched, "huge");
    assert_eq!(cond["reason"], "Unschedulable");
    let message = cond["message"].as_str().unwrap();
    assert_eq!(
        message,
        "0/3 nodes are available: 1 Insufficient cpu, 1 node(s) had untolerated taint {dedicated: gpu}, 1 node(s) were unschedulable.",
    );
    let describe = env.clean(&["describe", "pod", "huge"]);
    assert!(describe.contains("FailedScheduling"), "{describe}");
    assert!(describe.contains("0/3 nodes are available: 1 Insufficient cpu"), "{describe}");
    assert!(describe.contains("Status:           Pending") || describe.contains("Pending"), "{describe}");

    // Uncordoning node-c is a cluster change: the pod is retried and lands there.
    env.clean(&["uncordon", "node-c"]);
    assert_eq!(wait_bound(&env, &sched, "huge"), "node-c");

    // Required anti-affinity on hostname: one replica per node, the third has nowhere to go
    // (node-b is tainted, node-c and node-a already hold one each).
    let anti = "  affinity:\n    podAntiAffinity:\n      requiredDuringSchedulingIgnoredDuringExecution:\n      - topologyKey: kubernetes.io/hostname\n        labelSelector:\n          matchLabels: {spread: one-per-node}";
    let mut placed = Vec::new();
    for i in 0..3 {
        let name = format!("spread-{i}");
        env.clean(&[
            "create",
            "-f",
            &env.manifest(&format!("{name}.yaml"), &pod(&name, "100m", anti, "    spread: one-per-node")),
        ]);
        if i < 2 {
            placed.push(wait_bound(&env, &sched, &name));
        }
    }
    placed.sort();
    assert_eq!(placed, vec!["node-a", "node-c"]);
    let cond = wait_unschedulable(&env, &sched, "spread-2");
    let message = cond["message"].as_str().unwrap();
    assert!(message.starts_with("0/3 nodes are available: "), "{message}");
    assert!(message.contains("2 node(s) didn't match pod anti-affinity rules"), "{message}");
    assert!(message.contains("1 node(s) had untolerated taint {dedicated: gpu}"), "{message}");

    // Pods for another scheduler are left alone.
    env.clean(&[
        "create",
        "-f",
        &env.manifest("other.yaml", &pod("other", "100m", "  schedulerName: someone-else", "")),
    ]);
    std::thread::sleep(Duration::from_secs(2));
    let other = env.json(&["get", "pod", "other"]);
    assert!(other["spec"]["nodeName"].is_null(), "{other}");
    assert!(other["status"]["conditions"].is_null(), "the scheduler wrote no condition: {other}");
}

#[test]
fn standby_scheduler_takes_over_when_the_leader_is_killed() {
    let env = Env::start();
    let timings =
        ["--leader-elect-lease-duration=3s", "--leader-elect-renew-deadline=2s", "--leader-elect-retry-period=500ms"];
    let mut first = Daemon::start("rkube-scheduler", &env.api, &timings).expect("scheduler 1 starts");
    let holder = |env: &Env| {
        env.json(&["get", "lease", "-n", "kube-system", "kube-scheduler"])["spec"]["holderIdentity"]
            .as_str()
            .map(String::from)
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    while env.run(&["get", "lease", "-n", "kube-system", "kube-scheduler"]).code != 0 {
        assert!(Instant::now() < deadline, "no lease taken: {}", first.log_tail());
        std::thread::sleep(Duration::from_millis(100));
    }
    let leader = holder(&env).expect("a holder");
    let second = Daemon::start("rkube-scheduler", &env.api, &timings).expect("scheduler 2 starts");
    env.clean(&["create", "-f", &env.manifest("n.yaml", &node("node-a", "4", "8Gi", "", "  {}"))]);
    env.clean(&["create", "-f", &env.manifest("p1.yaml", &pod("before", "100m", "", ""))]);
    assert_eq!(wait_bound(&env, &first, "before"), "node-a");
    assert_eq!(holder(&env).as_deref(), Some(leader.as_str()), "the first scheduler still leads");

    first.kill();
    let killed = Instant::now();
    env.clean(&["create", "-f", &env.manifest("p2.yaml", &pod("after", "100m", "", ""))]);
    assert_eq!(wait_bound(&env, &second, "after"), "node-a");
    let took = killed.elapsed();
    let new_leader = holder(&env).expect("a holder");
    assert_ne!(new_leader, leader, "the standby holds the lease now");
    assert!(took < Duration::from_secs(15), "take-over took {took:?}");
    let lease = env.json(&["get", "lease", "-n", "kube-system", "kube-scheduler"]);
    assert_eq!(lease["spec"]["leaseTransitions"], 1, "{lease}");
    drop(second);
}
