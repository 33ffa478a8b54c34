//! Microbenchmark of `schedule()`: µs per call at 100/1000/5000 nodes, for a plain pod and
//! for a pod with required anti-affinity on kubernetes.io/hostname. Run in release:
//! `cargo run --release -p rkube-scheduler --example schedule_bench`.

use k8s_openapi::api::core::v1::{
    Affinity, Container, Node, NodeCondition, NodeStatus, Pod, PodAffinityTerm, PodAntiAffinity, PodSpec,
    ResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rkube_scheduler::{PodInfo, SchedulerCache, schedule};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const HOSTNAME: &str = "kubernetes.io/hostname";
/// Background pods per node, so the cache is as full as a busy cluster's.
const PODS_PER_NODE: usize = 10;
/// Distinct background workloads; one of them carries hostname anti-affinity.
const APPS: usize = 50;

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn node(i: usize) -> Node {
    let name = format!("node-{i}");
    let zone = format!("zone-{}", i % 10);
    let alloc: BTreeMap<String, Quantity> = [("cpu", "32"), ("memory", "128Gi"), ("pods", "110")]
        .iter()
        .map(|(k, v)| (k.to_string(), Quantity(v.to_string())))
        .collect();
    Node {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            labels: Some(map(&[(HOSTNAME, &name), ("topology.kubernetes.io/zone", &zone)])),
            ..Default::default()
        },
        status: Some(NodeStatus {
            allocatable: Some(alloc),
            conditions: Some(vec![NodeCondition {
                type_: "Ready".into(),
                status: "True".into(),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn anti_affinity(app: &str) -> Affinity {
    Affinity {
        pod_anti_affinity: Some(PodAntiAffinity {
            required_during_scheduling_ignored_during_execution: Some(vec![PodAffinityTerm {
                label_selector: Some(LabelSelector { match_labels: Some(map(&[("app", app)])), ..Default::default() }),
                topology_key: HOSTNAME.into(),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn pod(name: &str, app: &str, node: Option<String>, anti: bool) -> Pod {
    let requests: BTreeMap<String, Quantity> =
        [("cpu", "100m"), ("memory", "128Mi")].iter().map(|(k, v)| (k.to_string(), Quantity(v.to_string()))).collect();
    Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("default".into()),
            labels: Some(map(&[("app", app), ("pod-template-hash", "abc123")])),
            owner_references: Some(vec![OwnerReference {
                api_version: "apps/v1".into(),
                kind: "ReplicaSet".into(),
                name: format!("{app}-abc123"),
                uid: format!("uid-{app}"),
                controller: Some(true),
                ..Default::default()
            }]),
            ..Default::default()
        },
        spec: Some(PodSpec {
            node_name: node,
            affinity: anti.then(|| anti_affinity(app)),
            containers: vec![Container {
                name: "c".into(),
                image: Some("registry.k8s.io/pause:3.10".into()),
                resources: Some(ResourceRequirements { requests: Some(requests), ..Default::default() }),
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn cluster(nodes: usize) -> SchedulerCache {
    let mut c = SchedulerCache::new(Duration::from_secs(30));
    for i in 0..nodes {
        c.add_node(node(i));
    }
    for i in 0..nodes {
        for j in 0..PODS_PER_NODE {
            let app = (i * PODS_PER_NODE + j) % APPS;
            // app-0 is a workload with hostname anti-affinity; keep one replica per node.
            let anti = app == 0;
            if anti && j != 0 {
                continue;
            }
            c.add_pod(pod(&format!("bg-{i}-{j}"), &format!("app-{app}"), Some(format!("node-{i}")), anti));
        }
    }
    // The benchmark's anti-affine workload already has a replica on a tenth of the nodes.
    for i in (0..nodes).step_by(10) {
        c.add_pod(pod(&format!("web-existing-{i}"), "web", Some(format!("node-{i}")), true));
    }
    c
}

/// Mean µs per schedule() of `pod` on an unchanged cache.
fn time_schedule(c: &SchedulerCache, pod: &PodInfo, iterations: usize) -> f64 {
    let mut rng = StdRng::seed_from_u64(1);
    let mut next = 0;
    for _ in 0..iterations / 10 {
        std::hint::black_box(schedule(pod, c, &mut next, &mut rng).expect("schedulable"));
    }
    let start = Instant::now();
    for _ in 0..iterations {
        std::hint::black_box(schedule(pod, c, &mut next, &mut rng).expect("schedulable"));
    }
    start.elapsed().as_secs_f64() * 1e6 / iterations as f64
}

/// Mean µs per pod for the whole per-pod path: PodInfo::new + schedule() + assume_pod().
fn time_pipeline(c: &mut SchedulerCache, anti: bool, pods: usize) -> f64 {
    let mut rng = StdRng::seed_from_u64(2);
    let mut next = 0;
    let now = Instant::now();
    let start = Instant::now();
    for i in 0..pods {
        let info = PodInfo::new(pod(&format!("p-{anti}-{i}"), if anti { "spread" } else { "batch" }, None, anti));
        let r = schedule(&info, c, &mut next, &mut rng).expect("schedulable");
        c.assume_pod(&info, &r.node_name, now).expect("assume");
    }
    start.elapsed().as_secs_f64() * 1e6 / pods as f64
}

fn main() {
    // `schedule_bench <nodes> <plain|anti|plain-pipeline|anti-pipeline>` runs one case only
    // (for a profiler).
    let args: Vec<String> = std::env::args().collect();
    if let [_, nodes, mode] = args.as_slice() {
        let nodes: usize = nodes.parse().expect("node count");
        let mut c = cluster(nodes);
        let us = match mode.as_str() {
            "plain" => time_schedule(&c, &PodInfo::new(pod("plain", "batch", None, false)), 20_000),
            "anti" => time_schedule(&c, &PodInfo::new(pod("web-new", "web", None, true)), 5_000),
            "plain-pipeline" => time_pipeline(&mut c, false, 5_000),
            "anti-pipeline" => time_pipeline(&mut c, true, nodes / 2),
            other => panic!("unknown mode {other}"),
        };
        println!("{nodes} nodes, {mode}: {us:.1} µs");
        return;
    }
    println!(
        "{:>6} {:>7} {:>12} {:>12} {:>14} {:>14}",
        "nodes", "pods", "plain µs", "anti µs", "plain+assume", "anti+assume"
    );
    for nodes in [100, 1000, 5000] {
        let mut c = cluster(nodes);
        let plain = PodInfo::new(pod("plain", "batch", None, false));
        let anti = PodInfo::new(pod("web-new", "web", None, true));
        let iterations = if nodes >= 5000 { 2000 } else { 5000 };
        let plain_us = time_schedule(&c, &plain, iterations);
        let anti_us = time_schedule(&c, &anti, iterations);
        let plain_pipe = time_pipeline(&mut c, false, 2000);
        let anti_pipe = time_pipeline(&mut c, true, (nodes / 2).min(2000));
        println!(
            "{nodes:>6} {:>7} {plain_us:>12.1} {anti_us:>12.1} {plain_pipe:>14.1} {anti_pipe:>14.1}",
            c.num_pods()
        );
    }
}
