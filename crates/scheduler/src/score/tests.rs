use super::*;
use crate::testutil::{node, on, pod, pod_req};
use serde_json::{Value, json};

fn owned(name: &str, uid: &str) -> Value {
    json!({"metadata": {"name": name, "ownerReferences": [
        {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": uid, "controller": true}
    ]}})
}

fn cache(nodes: &[(&str, Value)]) -> SchedulerCache {
    let mut c = SchedulerCache::default();
    for (n, patch) in nodes {
        c.add_node(node(n, patch.clone()));
    }
    c
}

fn all(c: &SchedulerCache) -> Vec<&NodeInfo> {
    c.nodes().iter().collect()
}

#[test]
fn least_allocated_prefers_emptier_nodes() {
    let mut c = cache(&[("n1", json!({})), ("n2", json!({}))]);
    c.add_pod(on(pod_req("a", "2", "4Gi", json!({})), "n1"));
    let p = PodInfo::new(pod_req("p", "1", "2Gi", json!({})));
    let (n1, n2) = (c.node("n1").unwrap(), c.node("n2").unwrap());
    // n1: cpu (4-3)/4 = 25, memory (8-6)/8 = 25; n2: cpu 75, memory 75.
    assert_eq!(least_allocated(&p, n1), 25);
    assert_eq!(least_allocated(&p, n2), 75);
    // Request-less pods count with the 100m/200Mi defaults.
    let bare = PodInfo::new(pod("b", json!({})));
    // cpu (4000-100)*100/4000 = 97, memory (8Gi-200Mi)*100/8Gi = 97.
    assert_eq!(least_allocated(&bare, n2), 97);
}

#[test]
fn balanced_allocation_prefers_even_usage() {
    let c = cache(&[("n1", json!({}))]);
    let n = c.node("n1").unwrap();
    // cpu 2/4 = 0.5 and memory 4/8 = 0.5: perfectly balanced.
    assert_eq!(balanced_allocation(&PodInfo::new(pod_req("p", "2", "4Gi", json!({}))), n), Some(100));
    // cpu 4/4 = 1, memory 0/8 ≈ 0: std 0.5.
    assert_eq!(balanced_allocation(&PodInfo::new(pod_req("p", "4", "1", json!({}))), n), Some(50));
    assert_eq!(balanced_allocation(&PodInfo::new(pod("p", json!({}))), n), None);
}

#[test]
fn prefer_no_schedule_taints_normalise_in_reverse() {
    let c = cache(&[
        ("clean", json!({})),
        ("one", json!({"spec": {"taints": [{"key": "a", "effect": "PreferNoSchedule"}]}})),
        (
            "two",
            json!({"spec": {"taints": [
                {"key": "a", "effect": "PreferNoSchedule"}, {"key": "b", "value": "x", "effect": "PreferNoSchedule"},
                {"key": "hard", "effect": "NoSchedule"},
            ]}}),
        ),
    ]);
    let p = PodInfo::new(pod("p", json!({})));
    let mut raw: Vec<i64> = all(&c).iter().map(|n| intolerable_prefer_no_schedule_taints(&p, n)).collect();
    assert_eq!(raw, [0, 1, 2]);
    default_normalize(&mut raw, true);
    assert_eq!(raw, [100, 50, 0]);
    let tolerant = PodInfo::new(pod("p", json!({"spec": {"tolerations": [{"key": "b", "operator": "Exists"}]}})));
    assert_eq!(intolerable_prefer_no_schedule_taints(&tolerant, c.node("two").unwrap()), 1);
    let mut zeros = vec![0, 0];
    default_normalize(&mut zeros, true);
    assert_eq!(zeros, [100, 100]);
}

#[test]
fn preferred_node_affinity_sums_weights() {
    let c = cache(&[
        ("ssd-a", json!({"metadata": {"labels": {"disk": "ssd", "zone": "a"}}})),
        ("ssd-b", json!({"metadata": {"labels": {"disk": "ssd", "zone": "b"}}})),
        ("hdd", json!({"metadata": {"labels": {"disk": "hdd"}}})),
    ]);
    let p = PodInfo::new(pod(
        "p",
        json!({"spec": {"affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 30, "preference": {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd"]}]}},
            {"weight": 10, "preference": {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}},
        ]}}}}),
    ));
    let mut raw: Vec<i64> = all(&c).iter().map(|n| preferred_node_affinity(&p, n)).collect();
    assert_eq!(raw, [40, 30, 0]);
    default_normalize(&mut raw, false);
    assert_eq!(raw, [100, 75, 0]);
}

#[test]
fn preferred_pod_affinity_and_anti_affinity() {
    let mut c = cache(&[("n1", json!({})), ("n2", json!({})), ("n3", json!({}))]);
    c.add_pod(on(pod("cache", json!({"metadata": {"labels": {"app": "cache"}}})), "n1"));
    c.add_pod(on(pod("noisy", json!({"metadata": {"labels": {"app": "noisy"}}})), "n2"));
    let p = PodInfo::new(pod(
        "p",
        json!({"spec": {"affinity": {
            "podAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 10, "podAffinityTerm": {
                "labelSelector": {"matchLabels": {"app": "cache"}}, "topologyKey": "kubernetes.io/hostname"}}]},
            "podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 5, "podAffinityTerm": {
                "labelSelector": {"matchLabels": {"app": "noisy"}}, "topologyKey": "kubernetes.io/hostname"}}]},
        }}}),
    ));
    let s = InterPodAffinityScorer::new(&p, &c);
    let mut raw: Vec<i64> = all(&c).iter().map(|n| s.raw(n)).collect();
    assert_eq!(raw, [10, -5, 0]);
    min_max_normalize(&mut raw);
    assert_eq!(raw, [100, 0, 33]);
}

#[test]
fn existing_pods_preferences_attract_and_repel_the_incoming_pod() {
    let mut c = cache(&[("n1", json!({})), ("n2", json!({})), ("n3", json!({}))]);
    let term =
        |selector: Value| json!({"labelSelector": {"matchLabels": selector}, "topologyKey": "kubernetes.io/hostname"});
    c.add_pod(on(pod("friend", json!({"spec": {"affinity": {"podAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": [term(json!({"app": "web"}))],
        "preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 4, "podAffinityTerm": term(json!({"app": "web"}))}],
    }}}})), "n1"));
    c.add_pod(on(pod("foe", json!({"spec": {"affinity": {"podAntiAffinity": {
        "preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 7, "podAffinityTerm": term(json!({"app": "web"}))}],
    }}}})), "n2"));
    let web = PodInfo::new(pod("web", json!({"metadata": {"labels": {"app": "web"}}})));
    let s = InterPodAffinityScorer::new(&web, &c);
    // n1: hard weight 1 + preferred 4; n2: -7.
    assert_eq!(all(&c).iter().map(|n| s.raw(n)).collect::<Vec<_>>(), [5, -7, 0]);
    let db = PodInfo::new(pod("db", json!({"metadata": {"labels": {"app": "db"}}})));
    assert!(InterPodAffinityScorer::new(&db, &c).is_empty());
}

#[test]
fn spreads_pods_of_the_same_owner() {
    let mut c = cache(&[("n1", json!({})), ("n2", json!({})), ("n3", json!({}))]);
    c.add_pod(on(pod("a", owned("a", "rs1")), "n1"));
    c.add_pod(on(pod("b", owned("b", "rs1")), "n1"));
    c.add_pod(on(pod("c", owned("c", "rs1")), "n2"));
    c.add_pod(on(pod("x", owned("x", "other")), "n3"));
    let p = PodInfo::new(pod("p", owned("p", "rs1")));
    assert_eq!(spread(&p, &all(&c)), [0, 50, 100]);
    // No owner: no preference.
    assert_eq!(spread(&PodInfo::new(pod("q", json!({}))), &all(&c)), [0, 0, 0]);
    // An owner with no pods yet: all equal.
    assert_eq!(spread(&PodInfo::new(pod("r", owned("r", "new"))), &all(&c)), [100, 100, 100]);
}

#[test]
fn spreading_weighs_zones() {
    let zone = |z: &str| json!({"metadata": {"labels": {"topology.kubernetes.io/zone": z}}});
    let mut c = cache(&[("a1", zone("a")), ("a2", zone("a")), ("b1", zone("b"))]);
    c.add_pod(on(pod("x", owned("x", "rs")), "a1"));
    let p = PodInfo::new(pod("p", owned("p", "rs")));
    // a1: node 0, zone 0 -> 0; a2: node 100, zone 0 -> 33; b1: node 100, zone 100 -> 100.
    assert_eq!(spread(&p, &all(&c)), [0, 33, 100]);
}

#[test]
fn weighted_total_prefers_the_emptier_node() {
    let mut c = cache(&[("busy", json!({})), ("idle", json!({}))]);
    c.add_pod(on(pod_req("a", "3", "6Gi", json!({})), "busy"));
    let p = PodInfo::new(pod_req("p", "500m", "512Mi", json!({})));
    let totals = score_nodes(&p, &c, &all(&c));
    assert!(totals[1] > totals[0], "{totals:?}");
    // Taint weight 3, everything else cancels out on identical nodes.
    let c = cache(&[
        ("tainted", json!({"spec": {"taints": [{"key": "a", "effect": "PreferNoSchedule"}]}})),
        ("plain", json!({})),
    ]);
    let totals = score_nodes(&p, &c, &all(&c));
    assert_eq!(totals[1] - totals[0], 300);
}
