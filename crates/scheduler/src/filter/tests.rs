use super::*;
use crate::testutil::{anti_affinity, merge_pod, node, on, pod, pod_req};
use k8s_openapi::api::core::v1::Node;
use serde_json::{Value, json};

fn info(n: Node) -> NodeInfo {
    let mut c = SchedulerCache::default();
    c.add_node(n);
    c.nodes()[0].clone()
}

fn p(patch: Value) -> PodInfo {
    PodInfo::new(pod("p", patch))
}

fn reject(reason: &str) -> FilterResult {
    Err(Unschedulable(vec![Reason::Owned(reason.to_string())]))
}

fn toleration(v: Value) -> Toleration {
    serde_json::from_value(v).unwrap()
}

#[test]
fn toleration_matching() {
    let t = |v| toleration(v);
    // Equal (also the default operator) needs key and value to match.
    assert!(tolerates(&t(json!({"key": "k", "operator": "Equal", "value": "v"})), "k", "v", "NoSchedule"));
    assert!(tolerates(&t(json!({"key": "k", "value": "v"})), "k", "v", "NoSchedule"));
    assert!(!tolerates(&t(json!({"key": "k", "value": "v"})), "k", "w", "NoSchedule"));
    assert!(!tolerates(&t(json!({"key": "k", "value": "v"})), "j", "v", "NoSchedule"));
    assert!(tolerates(&t(json!({"key": "k"})), "k", "", "NoSchedule"));
    // Exists ignores the value; an empty key with Exists matches every key.
    assert!(tolerates(&t(json!({"key": "k", "operator": "Exists"})), "k", "anything", "NoExecute"));
    assert!(tolerates(&t(json!({"operator": "Exists"})), "any", "thing", "NoSchedule"));
    // Effects: empty matches all, otherwise equal.
    assert!(tolerates(&t(json!({"key": "k", "operator": "Exists", "effect": "NoSchedule"})), "k", "", "NoSchedule"));
    assert!(!tolerates(&t(json!({"key": "k", "operator": "Exists", "effect": "NoSchedule"})), "k", "", "NoExecute"));
    assert!(!tolerates(&t(json!({"operator": "Exists", "effect": "PreferNoSchedule"})), "k", "", "NoSchedule"));
    assert!(!tolerates(&t(json!({"key": "k", "operator": "Bogus"})), "k", "", "NoSchedule"));
}

#[test]
fn unschedulable_node() {
    let n = info(node("n", json!({"spec": {"unschedulable": true}})));
    assert_eq!(node_unschedulable(&p(json!({})), &n), reject("node(s) were unschedulable"));
    let tolerant = p(json!({"spec": {"tolerations": [
        {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"}
    ]}}));
    assert_eq!(node_unschedulable(&tolerant, &n), Ok(()));
    assert_eq!(node_unschedulable(&p(json!({})), &info(node("n", json!({})))), Ok(()));
}

#[test]
fn not_ready_node() {
    let not_ready = info(node("n", json!({"status": {"conditions": [{"type": "Ready", "status": "False"}]}})));
    assert_eq!(node_ready(&p(json!({})), &not_ready), reject("node(s) were not ready"));
    let no_conditions = info(node("n", json!({"status": {"conditions": []}})));
    assert_eq!(node_ready(&p(json!({})), &no_conditions), reject("node(s) were not ready"));
    let unknown = info(node("n", json!({"status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}})));
    assert_eq!(node_ready(&p(json!({})), &unknown), reject("node(s) were not ready"));
    let daemon = p(json!({"spec": {"tolerations": [
        {"key": "node.kubernetes.io/not-ready", "operator": "Exists"},
    ]}}));
    assert_eq!(node_ready(&daemon, &not_ready), Ok(()));
    assert_eq!(node_ready(&daemon, &unknown), reject("node(s) were not ready"));
    assert_eq!(node_ready(&p(json!({})), &info(node("n", json!({})))), Ok(()));
}

#[test]
fn requested_node_name() {
    let n = info(node("n1", json!({})));
    assert_eq!(node_name(&PodInfo::new(on(pod("p", json!({})), "n1")), &n), Ok(()));
    assert_eq!(
        node_name(&PodInfo::new(on(pod("p", json!({})), "n2")), &n),
        reject("node(s) didn't match the requested node name")
    );
    assert_eq!(node_name(&p(json!({})), &n), Ok(()));
}

#[test]
fn taints_must_be_tolerated() {
    let n = info(node(
        "n",
        json!({"spec": {"taints": [
            {"key": "soft", "effect": "PreferNoSchedule"},
            {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"},
            {"key": "node-role.kubernetes.io/control-plane", "effect": "NoExecute"},
        ]}}),
    ));
    assert_eq!(taint_toleration(&p(json!({})), &n), reject("node(s) had untolerated taint {dedicated: gpu}"));
    let gpu = json!({"key": "dedicated", "value": "gpu", "effect": "NoSchedule"});
    assert_eq!(
        taint_toleration(&p(json!({"spec": {"tolerations": [gpu]}})), &n),
        reject("node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }")
    );
    let cp = json!({"key": "node-role.kubernetes.io/control-plane", "operator": "Exists"});
    assert_eq!(taint_toleration(&p(json!({"spec": {"tolerations": [gpu, cp]}})), &n), Ok(()));
    assert_eq!(taint_toleration(&p(json!({"spec": {"tolerations": [{"operator": "Exists"}]}})), &n), Ok(()));
}

#[test]
fn node_selector_and_required_node_affinity() {
    let n = info(node("n1", json!({"metadata": {"labels": {"disk": "ssd", "zone": "a", "cores": "16"}}})));
    let no = reject("node(s) didn't match Pod's node affinity/selector");
    assert_eq!(node_affinity(&p(json!({"spec": {"nodeSelector": {"disk": "ssd"}}})), &n), Ok(()));
    assert_eq!(node_affinity(&p(json!({"spec": {"nodeSelector": {"disk": "hdd"}}})), &n), no);
    let affinity = |terms: Value| {
        p(json!({"spec": {"affinity": {"nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}
        }}}}))
    };
    // Terms are ORed.
    let two = affinity(json!([
        {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["b"]}]},
        {"matchExpressions": [{"key": "cores", "operator": "Gt", "values": ["8"]}]},
    ]));
    assert_eq!(node_affinity(&two, &n), Ok(()));
    let neither = affinity(json!([
        {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["b"]}]},
        {"matchExpressions": [{"key": "cores", "operator": "Lt", "values": ["8"]}]},
    ]));
    assert_eq!(node_affinity(&neither, &n), no);
    assert_eq!(node_affinity(&affinity(json!([])), &n), no);
    let by_name = affinity(json!([{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}]));
    assert_eq!(node_affinity(&by_name, &n), Ok(()));
    // nodeSelector and affinity must both hold.
    let mut both = two.pod.as_ref().clone();
    both.spec.as_mut().unwrap().node_selector = Some([("disk".to_string(), "hdd".to_string())].into());
    assert_eq!(node_affinity(&PodInfo::new(both), &n), no);
}

#[test]
fn host_port_conflicts() {
    let mut c = SchedulerCache::default();
    c.add_node(node("n", json!({})));
    let ports = |ports: Value| pod("x", json!({"spec": {"containers": [{"name": "c", "ports": ports}]}}));
    c.add_pod(on(ports(json!([{"containerPort": 1, "hostPort": 8080, "hostIP": "10.0.0.1"}])), "n"));
    c.add_pod(on(
        merge_pod(
            ports(json!([{"containerPort": 1, "hostPort": 53, "protocol": "UDP"}])),
            json!({"metadata": {"name": "y"}}),
        ),
        "n",
    ));
    let n = &c.nodes()[0];
    let wants = |v: Value| node_ports(&PodInfo::new(ports(v)), n);
    let busy = reject("node(s) didn't have free ports for the requested pod ports");
    assert_eq!(wants(json!([{"containerPort": 1, "hostPort": 8080, "hostIP": "10.0.0.1"}])), busy);
    assert_eq!(wants(json!([{"containerPort": 1, "hostPort": 8080, "hostIP": "10.0.0.2"}])), Ok(()));
    // 0.0.0.0 (or no IP) clashes with the port on any IP.
    assert_eq!(wants(json!([{"containerPort": 1, "hostPort": 8080}])), busy);
    assert_eq!(wants(json!([{"containerPort": 1, "hostPort": 8080, "protocol": "UDP"}])), Ok(()));
    // A specific IP clashes with a 0.0.0.0 binding.
    assert_eq!(wants(json!([{"containerPort": 1, "hostPort": 53, "protocol": "UDP", "hostIP": "10.0.0.9"}])), busy);
    assert_eq!(wants(json!([{"containerPort": 1, "hostPort": 53}])), Ok(()));
    // Container ports without hostPort don't count.
    assert_eq!(wants(json!([{"containerPort": 8080}])), Ok(()));
}

#[test]
fn resources_fit_lists_every_shortage() {
    let mut c = SchedulerCache::default();
    c.add_node(node(
        "n",
        json!({"status": {"allocatable": {"cpu": "2", "memory": "4Gi", "pods": "2", "ephemeral-storage": "1Gi"}}}),
    ));
    c.add_pod(on(pod_req("a", "1500m", "1Gi", json!({})), "n"));
    let n = &c.nodes()[0];
    assert_eq!(node_resources_fit(&PodInfo::new(pod_req("p", "500m", "3Gi", json!({}))), n), Ok(()));
    assert_eq!(
        node_resources_fit(&PodInfo::new(pod_req("p", "600m", "3Gi", json!({}))), n),
        reject("Insufficient cpu")
    );
    let greedy = pod(
        "p",
        json!({"spec": {"containers": [{"name": "c", "resources": {"requests": {
            "cpu": "1", "memory": "4Gi", "ephemeral-storage": "2Gi"
        }}}]}}),
    );
    assert_eq!(
        node_resources_fit(&PodInfo::new(greedy), n),
        Err(Unschedulable(vec![
            "Insufficient cpu".into(),
            "Insufficient memory".into(),
            "Insufficient ephemeral-storage".into()
        ]))
    );
    c.add_pod(on(pod("b", json!({})), "n"));
    let n = &c.nodes()[0];
    // A request-less pod still needs a pod slot.
    assert_eq!(node_resources_fit(&p(json!({})), n), reject("Too many pods"));
    assert_eq!(
        node_resources_fit(&PodInfo::new(pod_req("p", "1", "1Mi", json!({}))), n),
        Err(Unschedulable(vec!["Too many pods".into(), "Insufficient cpu".into()]))
    );
}

fn affinity_cache(nodes: &[(&str, &str)]) -> SchedulerCache {
    let mut c = SchedulerCache::default();
    for (name, zone) in nodes {
        c.add_node(node(name, json!({"metadata": {"labels": {"topology.kubernetes.io/zone": zone}}})));
    }
    c
}

fn ipa(c: &SchedulerCache, pod: &PodInfo) -> Vec<(String, FilterResult)> {
    let state = InterPodAffinityState::new(pod, c);
    c.nodes().iter().map(|n| (n.name.clone(), inter_pod_affinity(&state, pod, n))).collect()
}

fn verdict(c: &SchedulerCache, pod: &PodInfo, node: &str) -> FilterResult {
    ipa(c, pod).into_iter().find(|(n, _)| n == node).unwrap().1
}

#[test]
fn incoming_anti_affinity_on_hostname() {
    let mut c = affinity_cache(&[("n1", "a"), ("n2", "a")]);
    c.add_pod(on(pod("web-1", json!({"metadata": {"labels": {"app": "web"}}})), "n1"));
    let incoming = PodInfo::new(pod("web-2", anti_affinity("web")));
    assert_eq!(verdict(&c, &incoming, "n1"), reject("node(s) didn't match pod anti-affinity rules"));
    assert_eq!(verdict(&c, &incoming, "n2"), Ok(()));
    // Pods in other namespaces aren't considered (the term defaults to the pod's namespace).
    let other_ns =
        PodInfo::new(merge_pod(pod("web-2", anti_affinity("web")), json!({"metadata": {"namespace": "other"}})));
    assert_eq!(verdict(&c, &other_ns, "n1"), Ok(()));
}

#[test]
fn anti_affinity_on_zone_covers_the_whole_zone() {
    let mut c = affinity_cache(&[("n1", "a"), ("n2", "a"), ("n3", "b")]);
    c.add_node(node("n4", json!({})));
    c.add_pod(on(pod("web-1", json!({"metadata": {"labels": {"app": "web"}}})), "n1"));
    let incoming = PodInfo::new(pod(
        "web-2",
        json!({
            "metadata": {"labels": {"app": "web"}},
            "spec": {"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                {"labelSelector": {"matchLabels": {"app": "web"}}, "topologyKey": "topology.kubernetes.io/zone"}
            ]}}},
        }),
    ));
    let no = reject("node(s) didn't match pod anti-affinity rules");
    assert_eq!(verdict(&c, &incoming, "n1"), no);
    assert_eq!(verdict(&c, &incoming, "n2"), no);
    assert_eq!(verdict(&c, &incoming, "n3"), Ok(()));
    // A node without the topology label isn't in any domain.
    assert_eq!(verdict(&c, &incoming, "n4"), Ok(()));
}

#[test]
fn existing_pods_anti_affinity_is_symmetric() {
    let mut c = affinity_cache(&[("n1", "a"), ("n2", "a")]);
    // The existing pod wants no app=web next to it; the incoming web pod has no terms.
    c.add_pod(on(
        pod(
            "loner",
            json!({"spec": {"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                {"labelSelector": {"matchLabels": {"app": "web"}}, "topologyKey": "kubernetes.io/hostname"}
            ]}}}}),
        ),
        "n1",
    ));
    let web = PodInfo::new(pod("web", json!({"metadata": {"labels": {"app": "web"}}})));
    assert_eq!(verdict(&c, &web, "n1"), reject("node(s) didn't satisfy existing pods anti-affinity rules"));
    assert_eq!(verdict(&c, &web, "n2"), Ok(()));
    let db = PodInfo::new(pod("db", json!({"metadata": {"labels": {"app": "db"}}})));
    assert_eq!(verdict(&c, &db, "n1"), Ok(()));
    // Once the existing pod leaves, the node is fine again.
    c.remove_pod("default/loner");
    assert_eq!(verdict(&c, &web, "n1"), Ok(()));
}

#[test]
fn required_pod_affinity() {
    let mut c = affinity_cache(&[("n1", "a"), ("n2", "a"), ("n3", "b")]);
    let wants_cache = |labels: Value| {
        PodInfo::new(pod(
            "app",
            json!({
                "metadata": {"labels": labels},
                "spec": {"affinity": {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                    {"labelSelector": {"matchLabels": {"app": "cache"}}, "topologyKey": "topology.kubernetes.io/zone"}
                ]}}},
            }),
        ))
    };
    let no = reject("node(s) didn't match pod affinity rules");
    // No cache pod anywhere and the pod isn't a cache pod itself: nowhere.
    let app = wants_cache(json!({"app": "web"}));
    assert!(ipa(&c, &app).into_iter().all(|(_, r)| r == no));
    // The first pod of a self-affine group may go anywhere.
    let first_cache = wants_cache(json!({"app": "cache"}));
    assert!(ipa(&c, &first_cache).into_iter().all(|(_, r)| r.is_ok()));
    c.add_pod(on(pod("cache-1", json!({"metadata": {"labels": {"app": "cache"}}})), "n2"));
    assert_eq!(verdict(&c, &app, "n1"), Ok(()));
    assert_eq!(verdict(&c, &app, "n2"), Ok(()));
    assert_eq!(verdict(&c, &app, "n3"), no);
    // Once a cache pod exists, the self-affine pod must join it too.
    assert_eq!(verdict(&c, &first_cache, "n3"), no);
}

#[test]
fn namespaces_and_namespace_selector_of_terms() {
    let mut c = affinity_cache(&[("n1", "a"), ("n2", "a")]);
    c.add_pod(on(pod("web-1", json!({"metadata": {"namespace": "prod", "labels": {"app": "web"}}})), "n1"));
    let with_term = |extra: Value| {
        let mut t = json!({"labelSelector": {"matchLabels": {"app": "web"}}, "topologyKey": "kubernetes.io/hostname"});
        crate::testutil::merge(&mut t, extra);
        PodInfo::new(pod(
            "x",
            json!({"spec": {"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [t]}}}}),
        ))
    };
    let no = reject("node(s) didn't match pod anti-affinity rules");
    assert_eq!(verdict(&c, &with_term(json!({})), "n1"), Ok(()));
    assert_eq!(verdict(&c, &with_term(json!({"namespaces": ["prod"]})), "n1"), no);
    assert_eq!(verdict(&c, &with_term(json!({"namespaceSelector": {}})), "n1"), no);
    // A non-empty namespaceSelector can't be evaluated and falls back to the pod's namespace.
    assert_eq!(verdict(&c, &with_term(json!({"namespaceSelector": {"matchLabels": {"env": "prod"}}})), "n1"), Ok(()));
}

#[test]
fn filters_stop_at_the_first_failing_plugin() {
    let mut c = SchedulerCache::default();
    c.add_node(node("n", json!({"spec": {"unschedulable": true, "taints": [{"key": "k", "effect": "NoSchedule"}]}})));
    let big = PodInfo::new(pod_req("p", "100", "1Gi", json!({})));
    let state = InterPodAffinityState::new(&big, &c);
    assert_eq!(run_filters(&state, &big, &c.nodes()[0]), reject("node(s) were unschedulable"));
}
