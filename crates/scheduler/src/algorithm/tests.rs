use super::*;
use crate::testutil::{anti_affinity, node, on, pod, pod_req};
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde_json::json;
use std::collections::HashSet;
use std::time::Instant;

fn rng() -> StdRng {
    StdRng::seed_from_u64(7)
}

fn cache_of(n: usize) -> SchedulerCache {
    let mut c = SchedulerCache::default();
    for i in 0..n {
        c.add_node(node(&format!("n{i}"), json!({})));
    }
    c
}

#[test]
fn number_of_feasible_nodes_to_find() {
    assert_eq!(num_feasible_nodes_to_find(0, 0), 0);
    assert_eq!(num_feasible_nodes_to_find(99, 0), 99);
    assert_eq!(num_feasible_nodes_to_find(100, 0), 100);
    assert_eq!(num_feasible_nodes_to_find(1000, 0), 420);
    assert_eq!(num_feasible_nodes_to_find(5000, 0), 500);
    assert_eq!(num_feasible_nodes_to_find(6000, 0), 300);
    assert_eq!(num_feasible_nodes_to_find(1000, 30), 300);
    assert_eq!(num_feasible_nodes_to_find(1000, 5), 100);
    assert_eq!(num_feasible_nodes_to_find(1000, 100), 1000);
}

fn fit(n: usize, reasons: &[(&str, &[&'static str])]) -> FitError {
    FitError {
        num_all_nodes: n,
        node_reasons: reasons
            .iter()
            .map(|(node, rs)| (node.to_string(), rs.iter().map(|r| Reason::Borrowed(*r)).collect()))
            .collect(),
    }
}

#[test]
fn fit_error_message_reads_like_kubernetes() {
    let taint = "node(s) had untolerated taint {dedicated: gpu}";
    let e = fit(3, &[("a", &[taint]), ("b", &["Insufficient cpu"]), ("c", &[taint])]);
    assert_eq!(
        e.message(),
        "0/3 nodes are available: 1 Insufficient cpu, 2 node(s) had untolerated taint {dedicated: gpu}."
    );
    assert_eq!(e.to_string(), e.message());
    // One node can give several reasons; entries sort as whole strings, count included.
    let mut many: Vec<(String, Vec<Reason>)> =
        (0..10).map(|i| (format!("m{i}"), vec![Reason::Borrowed("node(s) were unschedulable")])).collect();
    many.push(("x".into(), vec!["Insufficient cpu".into(), "Insufficient memory".into()]));
    many.push(("y".into(), vec!["Insufficient memory".into()]));
    let e = FitError { num_all_nodes: 12, node_reasons: many };
    assert_eq!(
        e.message(),
        "0/12 nodes are available: 1 Insufficient cpu, 10 node(s) were unschedulable, 2 Insufficient memory."
    );
    assert_eq!(FitError { num_all_nodes: 0, node_reasons: vec![] }.message(), "no nodes available to schedule pods");
}

#[test]
fn condition_and_event_texts() {
    let e = fit(1, &[("a", &["Insufficient cpu"])]);
    let now = Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH);
    let c = e.condition(now.clone());
    assert_eq!((c.type_.as_str(), c.status.as_str()), ("PodScheduled", "False"));
    assert_eq!(c.reason.as_deref(), Some("Unschedulable"));
    assert_eq!(c.message.as_deref(), Some("0/1 nodes are available: 1 Insufficient cpu."));
    assert_eq!(c.last_transition_time, Some(now));
    let r = ScheduleResult { node_name: "n1".into(), evaluated: 1, feasible: 1 };
    assert_eq!(r.event_message(&PodInfo::new(pod("web", json!({})))), "Successfully assigned default/web to n1");
}

#[test]
fn no_nodes() {
    let c = SchedulerCache::default();
    let e = schedule(&PodInfo::new(pod("p", json!({}))), &c, &mut 0, &mut rng()).unwrap_err();
    assert_eq!(e.to_string(), "no nodes available to schedule pods");
}

#[test]
fn unschedulable_pod_reports_every_node() {
    let mut c = SchedulerCache::default();
    c.add_node(node("small", json!({"status": {"allocatable": {"cpu": "1", "memory": "1Gi"}}})));
    c.add_node(node(
        "gpu1",
        json!({"spec": {"taints": [{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]}}),
    ));
    c.add_node(node(
        "gpu2",
        json!({"spec": {"taints": [{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]}}),
    ));
    let p = PodInfo::new(pod_req("p", "2", "2Gi", json!({})));
    let e = schedule(&p, &c, &mut 1, &mut rng()).unwrap_err();
    assert_eq!(
        e.message(),
        "0/3 nodes are available: 1 Insufficient cpu, 1 Insufficient memory, 2 node(s) had untolerated taint {dedicated: gpu}."
    );
    assert_eq!(e.node_reasons.len(), 3);
}

#[test]
fn failure_evaluates_all_nodes_even_past_the_early_stop() {
    let mut c = cache_of(1000);
    // Only a handful of nodes fit, fewer than the 420 looked for: everything is evaluated.
    for i in 0..1000 {
        if i % 100 != 0 {
            c.update_node(node(&format!("n{i}"), json!({"spec": {"unschedulable": true}})));
        }
    }
    let p = PodInfo::new(pod("p", json!({})));
    let mut next = 0;
    let r = schedule(&p, &c, &mut next, &mut rng()).unwrap();
    assert_eq!((r.evaluated, r.feasible), (1000, 10));
    let big = PodInfo::new(pod_req("big", "64", "1Gi", json!({})));
    let e = schedule(&big, &c, &mut next, &mut rng()).unwrap_err();
    assert_eq!(e.node_reasons.len(), 1000);
    assert_eq!(e.message(), "0/1000 nodes are available: 10 Insufficient cpu, 990 node(s) were unschedulable.");
}

#[test]
fn stops_after_enough_feasible_nodes_and_rotates_the_start() {
    let c = cache_of(1000);
    let p = PodInfo::new(pod("p", json!({})));
    let mut next = 900;
    let r = schedule(&p, &c, &mut next, &mut rng()).unwrap();
    assert_eq!((r.evaluated, r.feasible), (420, 420));
    assert_eq!(next, (900 + 420) % 1000);
    // The chosen node is one of those evaluated: n900..n999, n0..n319 in cache order.
    let idx = c.nodes().iter().position(|n| n.name == r.node_name).unwrap();
    assert!(!(320..900).contains(&idx), "{idx}");
}

#[test]
fn picks_the_emptiest_node() {
    let mut c = cache_of(3);
    c.add_pod(on(pod_req("a", "3", "6Gi", json!({})), "n0"));
    c.add_pod(on(pod_req("b", "1", "2Gi", json!({})), "n2"));
    let p = PodInfo::new(pod_req("p", "500m", "1Gi", json!({})));
    for seed in 0..20 {
        let r = schedule(&p, &c, &mut 0, &mut StdRng::seed_from_u64(seed)).unwrap();
        assert_eq!(r.node_name, "n1");
    }
}

#[test]
fn ties_are_broken_at_random_among_the_best() {
    let mut c = cache_of(4);
    c.add_pod(on(pod_req("a", "2", "4Gi", json!({})), "n0"));
    c.add_pod(on(pod_req("b", "2", "4Gi", json!({})), "n2"));
    let p = PodInfo::new(pod_req("p", "500m", "1Gi", json!({})));
    let mut seen = HashSet::new();
    for seed in 0..200 {
        let r = schedule(&p, &c, &mut 0, &mut StdRng::seed_from_u64(seed)).unwrap();
        assert!(r.node_name == "n1" || r.node_name == "n3", "{}", r.node_name);
        seen.insert(r.node_name);
    }
    assert_eq!(seen.len(), 2);
}

#[test]
fn select_host_picks_only_maxima() {
    let mut counts = [0; 5];
    let mut r = rng();
    for _ in 0..3000 {
        counts[select_host(&[5, 9, 1, 9, 9], &mut r)] += 1;
    }
    assert_eq!((counts[0], counts[2]), (0, 0));
    for i in [1, 3, 4] {
        assert!((800..1200).contains(&counts[i]), "{counts:?}");
    }
    assert_eq!(select_host(&[3], &mut r), 0);
}

#[test]
fn assumed_pods_prevent_overcommit() {
    let mut c = SchedulerCache::default();
    c.add_node(node("n", json!({"status": {"allocatable": {"cpu": "2", "memory": "8Gi", "pods": "110"}}})));
    let now = Instant::now();
    for i in 0..2 {
        let p = PodInfo::new(pod_req(&format!("p{i}"), "1", "1Gi", json!({})));
        let r = schedule(&p, &c, &mut 0, &mut rng()).unwrap();
        c.assume_pod(&p, &r.node_name, now).unwrap();
    }
    let p = PodInfo::new(pod_req("p2", "1", "1Gi", json!({})));
    assert_eq!(
        schedule(&p, &c, &mut 0, &mut rng()).unwrap_err().message(),
        "0/1 nodes are available: 1 Insufficient cpu."
    );
    c.forget_pod("default/p0").unwrap();
    assert_eq!(schedule(&p, &c, &mut 0, &mut rng()).unwrap().node_name, "n");
}

/// A scaled-down run of the benchmark scenario: replicas with hostname anti-affinity on a
/// large cluster must all land on distinct nodes, and a plain workload must spread.
#[test]
fn anti_affine_replicas_land_on_distinct_nodes_at_scale() {
    let mut c = cache_of(600);
    for i in 0..600 {
        for j in 0..3 {
            c.add_pod(on(
                pod_req(
                    &format!("bg-{i}-{j}"),
                    "100m",
                    "128Mi",
                    json!({"metadata": {"labels": {"app": format!("bg{j}")}}}),
                ),
                &format!("n{i}"),
            ));
        }
    }
    let mut next = 0;
    let mut r = rng();
    let now = Instant::now();
    let mut used = HashSet::new();
    for i in 0..150 {
        let p = PodInfo::new(pod_req(&format!("web-{i}"), "100m", "128Mi", anti_affinity("web")));
        let res = schedule(&p, &c, &mut next, &mut r).unwrap();
        assert!(used.insert(res.node_name.clone()), "two replicas on {}", res.node_name);
        c.assume_pod(&p, &res.node_name, now).unwrap();
    }
    // Only 600 nodes: the 601st replica can't go anywhere.
    for i in 150..600 {
        let p = PodInfo::new(pod_req(&format!("web-{i}"), "100m", "128Mi", anti_affinity("web")));
        let res = schedule(&p, &c, &mut next, &mut r).unwrap();
        c.assume_pod(&p, &res.node_name, now).unwrap();
    }
    let p = PodInfo::new(pod_req("web-600", "100m", "128Mi", anti_affinity("web")));
    assert_eq!(
        schedule(&p, &c, &mut next, &mut r).unwrap_err().message(),
        "0/600 nodes are available: 600 node(s) didn't match pod anti-affinity rules."
    );
    // A pod the replicas' own terms select is kept off every node; an unrelated one is not.
    let web_like = PodInfo::new(pod("intruder", json!({"metadata": {"labels": {"app": "web"}}})));
    assert_eq!(
        schedule(&web_like, &c, &mut next, &mut r).unwrap_err().message(),
        "0/600 nodes are available: 600 node(s) didn't satisfy existing pods anti-affinity rules."
    );
    assert!(schedule(&PodInfo::new(pod("plain", json!({}))), &c, &mut next, &mut r).is_ok());
}

#[test]
fn same_owner_replicas_spread_over_nodes() {
    let mut c = cache_of(5);
    let owned = |i: usize| {
        PodInfo::new(pod(
            &format!("r{i}"),
            json!({"metadata": {"ownerReferences": [
                {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "rs-uid", "controller": true}
            ]}}),
        ))
    };
    let now = Instant::now();
    let mut next = 0;
    let mut r = rng();
    for i in 0..10 {
        let p = owned(i);
        let res = schedule(&p, &c, &mut next, &mut r).unwrap();
        c.assume_pod(&p, &res.node_name, now).unwrap();
    }
    for n in c.nodes() {
        assert_eq!(n.pods.len(), 2, "{}", n.name);
    }
}
