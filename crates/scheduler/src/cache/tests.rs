use super::*;
use crate::pod_info::{AffinityTerm, Namespaces};
use crate::selector::Selector;
use crate::testutil::{anti_affinity, node, on, pod, pod_req};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde_json::json;

fn t0() -> Instant {
    Instant::now()
}

fn cache_with(nodes: &[&str]) -> SchedulerCache {
    let mut c = SchedulerCache::new(Duration::from_secs(30));
    for n in nodes {
        c.add_node(node(n, json!({})));
    }
    c
}

fn requested(c: &SchedulerCache, n: &str) -> Resources {
    c.node(n).unwrap().requested
}

#[test]
fn bound_pods_are_accounted_and_removed() {
    let mut c = cache_with(&["n1"]);
    c.add_pod(on(pod_req("a", "500m", "1Gi", json!({})), "n1"));
    c.add_pod(on(pod_req("b", "250m", "1Gi", json!({})), "n1"));
    assert_eq!(requested(&c, "n1"), Resources { milli_cpu: 750, memory: 2 << 30, ephemeral_storage: 0, pods: 2 });
    c.remove_pod("default/a");
    assert_eq!(requested(&c, "n1").milli_cpu, 250);
    assert_eq!(requested(&c, "n1").pods, 1);
    // Unscheduled pods aren't placed anywhere.
    c.add_pod(pod_req("c", "1", "1Gi", json!({})));
    assert_eq!(c.num_pods(), 1);
}

#[test]
fn update_replaces_old_accounting() {
    let mut c = cache_with(&["n1"]);
    c.add_pod(on(pod_req("a", "500m", "1Gi", json!({})), "n1"));
    c.update_pod(on(pod_req("a", "2", "1Gi", json!({})), "n1"));
    assert_eq!(requested(&c, "n1").milli_cpu, 2000);
    assert_eq!(requested(&c, "n1").pods, 1);
}

#[test]
fn finished_pods_release_their_resources() {
    let mut c = cache_with(&["n1"]);
    c.add_pod(on(pod_req("a", "1", "1Gi", json!({})), "n1"));
    c.update_pod(on(pod_req("a", "1", "1Gi", json!({"status": {"phase": "Succeeded"}})), "n1"));
    assert_eq!(requested(&c, "n1"), Resources::default());
    c.add_pod(on(pod_req("b", "1", "1Gi", json!({"status": {"phase": "Failed"}})), "n1"));
    assert_eq!(requested(&c, "n1"), Resources::default());
    assert_eq!(c.num_pods(), 0);
}

#[test]
fn assume_then_confirm_counts_once() {
    let mut c = cache_with(&["n1", "n2"]);
    let p = pod_req("a", "1", "1Gi", json!({}));
    let info = PodInfo::new(p.clone());
    c.assume_pod(&info, "n1", t0()).unwrap();
    assert!(c.is_assumed("default/a"));
    assert_eq!(requested(&c, "n1").milli_cpu, 1000);
    // An informer update from before the binding (no nodeName) keeps the assumption.
    c.update_pod(p.clone());
    assert!(c.is_assumed("default/a"));
    assert_eq!(requested(&c, "n1").milli_cpu, 1000);
    // The bound pod arrives: confirmed, not doubled.
    c.add_pod(on(p.clone(), "n1"));
    assert!(!c.is_assumed("default/a"));
    assert_eq!(requested(&c, "n1"), Resources { milli_cpu: 1000, memory: 1 << 30, ephemeral_storage: 0, pods: 1 });
    assert_eq!(c.num_pods(), 1);
    // Assuming an accounted pod again is refused.
    assert_eq!(c.assume_pod(&info, "n2", t0()), Err(CacheError::PodAlreadyInCache("default/a".into())));
    // A confirmed pod can't be forgotten.
    assert_eq!(c.forget_pod("default/a"), Err(CacheError::PodNotAssumed("default/a".into())));
    assert_eq!(requested(&c, "n1").milli_cpu, 1000);
}

#[test]
fn confirmation_on_another_node_moves_the_pod() {
    let mut c = cache_with(&["n1", "n2"]);
    let p = pod_req("a", "1", "1Gi", json!({}));
    c.assume_pod(&PodInfo::new(p.clone()), "n1", t0()).unwrap();
    c.add_pod(on(p, "n2"));
    assert_eq!(requested(&c, "n1"), Resources::default());
    assert_eq!(requested(&c, "n2").milli_cpu, 1000);
}

#[test]
fn forget_restores_the_node() {
    let mut c = cache_with(&["n1"]);
    c.add_pod(on(pod_req("x", "100m", "1Mi", json!({"spec": {"containers": [
        {"name": "c", "resources": {"requests": {"cpu": "100m", "memory": "1Mi"}}, "ports": [{"containerPort": 80, "hostPort": 8080}]}
    ]}})), "n1"));
    let before = c.node("n1").unwrap().clone();
    let p = pod_req(
        "a",
        "1",
        "1Gi",
        json!({"metadata": {"ownerReferences": [
            {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "u1", "controller": true}
        ]}}),
    );
    let p = PodInfo::new(crate::testutil::merge_pod(p, anti_affinity("web")));
    c.assume_pod(&p, "n1", t0()).unwrap();
    assert_eq!(c.anti_affinity_terms().count(), 1);
    c.forget_pod("default/a").unwrap();
    let after = c.node("n1").unwrap();
    assert_eq!(after.requested, before.requested);
    assert_eq!(after.non_zero_requested, before.non_zero_requested);
    assert_eq!(after.used_host_ports, before.used_host_ports);
    assert!(after.owner_counts.is_empty());
    assert_eq!(after.pods.len(), 1);
    assert_eq!(c.anti_affinity_terms().count(), 0);
    assert!(!c.is_assumed("default/a"));
}

#[test]
fn assume_on_unknown_node_is_refused() {
    let mut c = cache_with(&["n1"]);
    let p = PodInfo::new(pod("a", json!({})));
    assert_eq!(c.assume_pod(&p, "nope", t0()), Err(CacheError::NodeNotFound("nope".into())));
    assert_eq!(c.num_pods(), 0);
}

#[test]
fn unconfirmed_assumptions_expire() {
    let mut c = cache_with(&["n1"]);
    let start = t0();
    c.assume_pod(&PodInfo::new(pod_req("a", "1", "1Gi", json!({}))), "n1", start).unwrap();
    c.assume_pod(&PodInfo::new(pod_req("b", "1", "1Gi", json!({}))), "n1", start).unwrap();
    // b's binding finished later, restarting its clock.
    c.finish_binding("default/b", start + Duration::from_secs(20));
    assert!(c.cleanup_expired_assumed(start + Duration::from_secs(29)).is_empty());
    assert_eq!(c.cleanup_expired_assumed(start + Duration::from_secs(30)), vec!["default/a".to_string()]);
    assert_eq!(requested(&c, "n1").milli_cpu, 1000);
    assert_eq!(c.cleanup_expired_assumed(start + Duration::from_secs(50)), vec!["default/b".to_string()]);
    assert_eq!(requested(&c, "n1"), Resources::default());
    // Confirmed pods never expire.
    let p = pod_req("c", "1", "1Gi", json!({}));
    c.assume_pod(&PodInfo::new(p.clone()), "n1", start).unwrap();
    c.add_pod(on(p, "n1"));
    assert!(c.cleanup_expired_assumed(start + Duration::from_secs(3600)).is_empty());
    assert_eq!(requested(&c, "n1").milli_cpu, 1000);
}

#[test]
fn removed_node_keeps_pods_until_they_go() {
    let mut c = cache_with(&["n1", "n2", "n3"]);
    c.add_pod(on(pod_req("a", "1", "1Gi", anti_affinity("web")), "n1"));
    c.remove_node("n1");
    assert_eq!(c.num_nodes(), 2);
    assert!(c.node("n1").is_none());
    // Index of the node swapped into n1's slot was fixed.
    assert_eq!(c.node("n3").unwrap().name, "n3");
    assert_eq!(c.node("n2").unwrap().name, "n2");
    // Queries skip the missing node without panicking.
    let b = PodInfo::new(pod("b", anti_affinity("web")));
    let state = crate::filter::InterPodAffinityState::new(&b, &c);
    for n in c.nodes() {
        assert_eq!(crate::filter::inter_pod_affinity(&state, &b, n), Ok(()));
    }
    // The node comes back: its pod is still accounted.
    c.add_node(node("n1", json!({})));
    assert_eq!(requested(&c, "n1").milli_cpu, 1000);
    c.remove_node("n1");
    c.remove_pod("default/a");
    c.remove_pod("default/a");
    c.add_node(node("n1", json!({})));
    assert_eq!(requested(&c, "n1"), Resources::default());
    assert_eq!(c.anti_affinity_terms().count(), 0);
}

#[test]
fn pods_on_a_node_not_yet_seen_are_kept() {
    let mut c = cache_with(&[]);
    c.add_pod(on(pod_req("a", "1", "1Gi", json!({})), "late"));
    assert_eq!(c.num_nodes(), 0);
    c.add_node(node("late", json!({})));
    assert_eq!(requested(&c, "late").milli_cpu, 1000);
}

#[test]
fn node_update_keeps_pods_and_rereads_allocatable() {
    let mut c = cache_with(&["n1"]);
    c.add_pod(on(pod_req("a", "1", "1Gi", json!({})), "n1"));
    c.update_node(node("n1", json!({"status": {"allocatable": {"cpu": "2"}}})));
    let n = c.node("n1").unwrap();
    assert_eq!(n.allocatable.milli_cpu, 2000);
    assert_eq!(n.requested.milli_cpu, 1000);
    c.update_node(node("n1", json!({"status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}})));
    assert_eq!(c.node("n1").unwrap().readiness, Readiness::Unknown);
}

#[test]
fn host_ports_are_reference_counted() {
    let mut c = cache_with(&["n1"]);
    let with_port = |name: &str| {
        on(
            pod(
                name,
                json!({"spec": {"containers": [{"name": "c", "ports": [{"containerPort": 80, "hostPort": 80}]}]}}),
            ),
            "n1",
        )
    };
    c.add_pod(with_port("a"));
    c.add_pod(with_port("b"));
    let hp = HostPort { protocol: "TCP".into(), ip: "0.0.0.0".into(), port: 80 };
    assert_eq!(c.node("n1").unwrap().used_host_ports.get(&hp), Some(&2));
    c.remove_pod("default/a");
    assert!(c.node("n1").unwrap().host_port_conflicts(&hp));
    c.remove_pod("default/b");
    assert!(!c.node("n1").unwrap().host_port_conflicts(&hp));
}

fn term(ns: Namespaces, sel: serde_json::Value) -> AffinityTerm {
    let s: LabelSelector = serde_json::from_value(sel).unwrap();
    AffinityTerm { namespaces: ns, selector: Selector::from_label_selector(Some(&s)), topology_key: "k".into() }
}

fn matching(c: &SchedulerCache, t: &AffinityTerm) -> Vec<String> {
    let mut v = Vec::new();
    c.for_each_pod_matching(t, |p| v.push(p.key.clone()));
    v.sort();
    v
}

#[test]
fn label_index_finds_exactly_the_selected_pods() {
    let mut c = cache_with(&["n1"]);
    let labelled = |ns: &str, name: &str, labels: serde_json::Value| {
        on(pod(name, json!({"metadata": {"namespace": ns, "labels": labels}})), "n1")
    };
    c.add_pod(labelled("a", "web1", json!({"app": "web", "tier": "fe"})));
    c.add_pod(labelled("a", "web2", json!({"app": "web"})));
    c.add_pod(labelled("a", "db", json!({"app": "db"})));
    c.add_pod(labelled("b", "web3", json!({"app": "web"})));
    c.add_pod(labelled("b", "bare", json!({})));
    let only_a = || Namespaces::Only(vec!["a".into()]);
    assert_eq!(matching(&c, &term(only_a(), json!({"matchLabels": {"app": "web"}}))), ["a/web1", "a/web2"]);
    assert_eq!(
        matching(&c, &term(Namespaces::All, json!({"matchLabels": {"app": "web"}}))),
        ["a/web1", "a/web2", "b/web3"]
    );
    assert_eq!(
        matching(
            &c,
            &term(only_a(), json!({"matchExpressions": [{"key": "app", "operator": "In", "values": ["web", "db"]}]}))
        ),
        ["a/db", "a/web1", "a/web2"]
    );
    assert_eq!(
        matching(&c, &term(only_a(), json!({"matchExpressions": [{"key": "tier", "operator": "Exists"}]}))),
        ["a/web1"]
    );
    assert_eq!(
        matching(&c, &term(Namespaces::All, json!({"matchExpressions": [{"key": "app", "operator": "DoesNotExist"}]}))),
        ["b/bare"]
    );
    assert_eq!(
        matching(
            &c,
            &term(
                only_a(),
                json!({"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["fe"]}]})
            )
        ),
        ["a/web2"]
    );
    assert_eq!(matching(&c, &term(Namespaces::All, json!({}))).len(), 5);
    let none = AffinityTerm { namespaces: Namespaces::All, selector: Selector::Nothing, topology_key: "k".into() };
    assert!(matching(&c, &none).is_empty());
    c.remove_pod("a/web1");
    assert_eq!(matching(&c, &term(only_a(), json!({"matchLabels": {"app": "web"}}))), ["a/web2"]);
    assert!(
        matching(&c, &term(only_a(), json!({"matchExpressions": [{"key": "tier", "operator": "Exists"}]}))).is_empty()
    );
}

#[test]
fn identical_anti_affinity_terms_share_one_group() {
    let mut c = cache_with(&["n1", "n2"]);
    c.add_pod(on(pod("a", anti_affinity("web")), "n1"));
    c.add_pod(on(pod("b", anti_affinity("web")), "n1"));
    c.add_pod(on(pod("c", anti_affinity("web")), "n2"));
    let groups: Vec<_> = c.anti_affinity_terms().collect();
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0].1.nodes.get("n1"), Some(&2));
    assert_eq!(groups[0].1.nodes.get("n2"), Some(&1));
    c.remove_pod("default/a");
    c.remove_pod("default/c");
    let groups: Vec<_> = c.anti_affinity_terms().collect();
    assert_eq!(groups[0].1.nodes.len(), 1);
    assert_eq!(groups[0].1.nodes.get("n1"), Some(&1));
}
