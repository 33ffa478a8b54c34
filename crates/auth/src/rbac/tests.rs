use super::*;
use crate::authn::{AUTHENTICATED_GROUP, UNAUTHENTICATED_GROUP};
use k8s_openapi::api::rbac::v1::{AggregationRule, RoleRef};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement, ObjectMeta};

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn rule(verbs: &[&str], groups: &[&str], resources: &[&str]) -> PolicyRule {
    PolicyRule {
        verbs: strings(verbs),
        api_groups: Some(strings(groups)),
        resources: Some(strings(resources)),
        ..Default::default()
    }
}

fn meta(name: &str, namespace: Option<&str>) -> ObjectMeta {
    ObjectMeta { name: Some(name.into()), namespace: namespace.map(Into::into), ..Default::default() }
}

fn cluster_role(name: &str, rules: Vec<PolicyRule>) -> ClusterRole {
    ClusterRole { metadata: meta(name, None), rules: Some(rules), aggregation_rule: None }
}

fn subject(kind: &str, name: &str, namespace: Option<&str>) -> Subject {
    Subject {
        kind: kind.into(),
        name: name.into(),
        namespace: namespace.map(Into::into),
        api_group: (kind != "ServiceAccount").then(|| "rbac.authorization.k8s.io".into()),
    }
}

fn role_binding(ns: &str, name: &str, kind: &str, role: &str, subjects: Vec<Subject>) -> RoleBinding {
    RoleBinding {
        metadata: meta(name, Some(ns)),
        role_ref: RoleRef { api_group: "rbac.authorization.k8s.io".into(), kind: kind.into(), name: role.into() },
        subjects: Some(subjects),
    }
}

fn cluster_binding(name: &str, role: &str, subjects: Vec<Subject>) -> ClusterRoleBinding {
    ClusterRoleBinding {
        metadata: meta(name, None),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "ClusterRole".into(),
            name: role.into(),
        },
        subjects: Some(subjects),
    }
}

fn user(name: &str, groups: &[&str]) -> UserInfo {
    UserInfo::new(name, groups.iter().copied()).with_authenticated_group()
}

fn authorizer() -> RbacAuthorizer<StaticRbacSource> {
    let (mut cluster_roles, mut cluster_bindings) = bootstrap_policy();
    cluster_roles.extend([
        cluster_role(
            "app-secret-reader",
            vec![PolicyRule { resource_names: Some(strings(&["app-config"])), ..rule(&["get"], &[""], &["secrets"]) }],
        ),
        cluster_role(
            "deployer",
            vec![rule(&["get", "update", "patch"], &["apps"], &["deployments", "deployments/scale"])],
        ),
        cluster_role("scaler", vec![rule(&["update"], &["*"], &["*/scale"])]),
        cluster_role(
            "metrics-reader",
            vec![PolicyRule {
                verbs: strings(&["get"]),
                non_resource_urls: Some(strings(&["/metrics", "/logs/*"])),
                ..Default::default()
            }],
        ),
        cluster_role("node-lister", vec![rule(&["list"], &[""], &["nodes"])]),
    ]);
    cluster_bindings.extend([
        cluster_binding("monitoring", "metrics-reader", vec![subject("Group", "monitoring", None)]),
        cluster_binding("root", "cluster-admin", vec![subject("User", "root", None)]),
        cluster_binding("autoscaler", "scaler", vec![subject("ServiceAccount", "hpa", Some("kube-system"))]),
        cluster_binding("nodes-for-erin", "node-lister", vec![subject("User", "erin", None)]),
    ]);
    let roles = vec![Role {
        metadata: meta("pod-reader", Some("default")),
        rules: Some(vec![rule(&["get", "list", "watch"], &[""], &["pods"])]),
    }];
    let bindings = vec![
        role_binding("default", "alice-pods", "Role", "pod-reader", vec![subject("User", "alice", None)]),
        role_binding(
            "default",
            "devs-secret",
            "ClusterRole",
            "app-secret-reader",
            vec![subject("Group", "devs", None)],
        ),
        // A ServiceAccount subject without a namespace means the binding's namespace.
        role_binding(
            "ci",
            "builder-deploys",
            "ClusterRole",
            "deployer",
            vec![subject("ServiceAccount", "builder", None)],
        ),
        role_binding("default", "viewers", "ClusterRole", "view", vec![subject("User", "viewer", None)]),
        role_binding("default", "editors", "ClusterRole", "edit", vec![subject("User", "editor", None)]),
        role_binding("default", "admins", "ClusterRole", "admin", vec![subject("User", "nsadmin", None)]),
        role_binding("default", "broken", "Role", "ghost", vec![subject("User", "frank", None)]),
        role_binding("default", "broken2", "ClusterRole", "phantom", vec![subject("User", "frank", None)]),
    ];
    RbacAuthorizer::new(StaticRbacSource::new(roles, bindings, cluster_roles, cluster_bindings))
}

fn allowed(a: &RbacAuthorizer<StaticRbacSource>, attrs: Attributes) -> bool {
    a.authorize(&attrs).is_allowed()
}

#[test]
fn role_through_role_binding_is_namespaced() {
    let a = authorizer();
    let alice = user("alice", &[]);
    let pods = |verb: &str| Attributes::resource(alice.clone(), verb, "", "pods");
    assert!(allowed(&a, pods("get").in_namespace("default").named("web-0")));
    assert!(allowed(&a, pods("list").in_namespace("default")));
    assert!(!allowed(&a, pods("delete").in_namespace("default").named("web-0")));
    assert!(!allowed(&a, pods("list").in_namespace("kube-system")));
    // A namespaced grant does not cover a cluster-wide list.
    assert!(!allowed(&a, pods("list")));
    // Nor a subresource of the resource.
    assert!(!allowed(&a, pods("get").in_namespace("default").named("web-0").with_subresource("log")));
    // Nor the same resource name in another group.
    assert!(!allowed(&a, Attributes::resource(alice.clone(), "get", "metrics.k8s.io", "pods").in_namespace("default")));
    let decision = a.authorize(&pods("get").in_namespace("default").named("x"));
    assert_eq!(
        decision,
        Decision::Allow(
            r#"RBAC: allowed by RoleBinding "alice-pods/default" of Role "pod-reader" to User "alice""#.into()
        )
    );
}

#[test]
fn cluster_role_through_role_binding_with_resource_names_and_groups() {
    let a = authorizer();
    let dev = user("dave", &["devs"]);
    let secret =
        |ns: &str, name: &str| Attributes::resource(dev.clone(), "get", "", "secrets").in_namespace(ns).named(name);
    assert!(allowed(&a, secret("default", "app-config")));
    assert!(!allowed(&a, secret("default", "db-password")));
    // resourceNames never match a request without a name.
    assert!(!allowed(&a, Attributes::resource(dev.clone(), "get", "", "secrets").in_namespace("default")));
    // The RoleBinding scopes the ClusterRole to its namespace.
    assert!(!allowed(&a, secret("kube-system", "app-config")));
    // Not in the group, not allowed.
    assert!(!allowed(
        &a,
        Attributes::resource(user("eve", &[]), "get", "", "secrets").in_namespace("default").named("app-config")
    ));
}

#[test]
fn service_account_subjects_subresources_and_wildcards() {
    let a = authorizer();
    let builder = UserInfo::service_account("ci", "builder");
    let deploy = |verb: &str, ns: &str| {
        Attributes::resource(builder.clone(), verb, "apps", "deployments").in_namespace(ns).named("web")
    };
    assert!(allowed(&a, deploy("update", "ci")));
    assert!(allowed(&a, deploy("patch", "ci").with_subresource("scale")));
    assert!(!allowed(&a, deploy("update", "ci").with_subresource("status")));
    assert!(!allowed(&a, deploy("delete", "ci")));
    assert!(!allowed(&a, deploy("update", "default")));
    // Same name, other namespace: another ServiceAccount.
    let impostor = UserInfo::service_account("default", "builder");
    assert!(!allowed(
        &a,
        Attributes::resource(impostor, "update", "apps", "deployments").in_namespace("ci").named("web")
    ));

    // `*/scale` in any group, for the ServiceAccount named with an explicit namespace.
    let hpa = UserInfo::service_account("kube-system", "hpa");
    let scale = |group: &str, resource: &str, sub: &str| {
        Attributes::resource(hpa.clone(), "update", group, resource).in_namespace("x").named("y").with_subresource(sub)
    };
    assert!(allowed(&a, scale("apps", "statefulsets", "scale")));
    assert!(allowed(&a, scale("example.com", "widgets", "scale")));
    assert!(!allowed(&a, scale("apps", "statefulsets", "status")));
    assert!(!allowed(&a, scale("apps", "statefulsets", "")));

    // `*` everywhere for cluster-admin.
    let root = user("root", &[]);
    assert!(allowed(
        &a,
        Attributes::resource(root.clone(), "escalate", "rbac.authorization.k8s.io", "clusterroles").named("x")
    ));
    assert!(allowed(
        &a,
        Attributes::resource(root.clone(), "delete", "", "pods").in_namespace("a").named("b").with_subresource("log")
    ));
    assert!(allowed(&a, Attributes::non_resource(root, "post", "/anything/at/all")));
}

#[test]
fn non_resource_urls_and_wildcard_suffixes() {
    let a = authorizer();
    let mon = user("prom", &["monitoring"]);
    let get = |path: &str| Attributes::non_resource(mon.clone(), "get", path);
    assert!(allowed(&a, get("/metrics")));
    assert!(allowed(&a, get("/logs/")));
    assert!(allowed(&a, get("/logs/kube-apiserver.log")));
    assert!(!allowed(&a, get("/logs")));
    assert!(!allowed(&a, get("/metricsz")));
    assert!(!allowed(&a, Attributes::non_resource(mon.clone(), "post", "/metrics")));
    // Discovery for every authenticated user, health for everyone.
    assert!(allowed(&a, get("/apis/apps/v1")));
    assert!(allowed(&a, get("/version")));
    let anon = UserInfo::anonymous();
    assert!(allowed(&a, Attributes::non_resource(anon.clone(), "get", "/healthz")));
    assert!(!allowed(&a, Attributes::non_resource(anon.clone(), "get", "/api")));
    assert!(!allowed(&a, Attributes::non_resource(anon, "get", "/metrics")));
    // A non-resource rule never matches a resource request, and the reverse.
    assert!(!allowed(&a, Attributes::resource(mon, "get", "", "metrics")));
}

#[test]
fn deny_messages_are_kubernetes_text() {
    let a = authorizer();
    let alice = user("alice", &[]);
    let list = Attributes::resource(alice.clone(), "list", "", "pods").in_namespace("kube-system");
    let decision = a.authorize(&list);
    assert_eq!(decision, Decision::NoOpinion(String::new()));
    assert_eq!(
        forbidden_message(&list),
        r#"User "alice" cannot list resource "pods" in API group "" in the namespace "kube-system""#
    );
    assert_eq!(
        forbidden_status_message(&list, decision.reason()),
        r#"pods is forbidden: User "alice" cannot list resource "pods" in API group "" in the namespace "kube-system""#
    );

    let nodes = Attributes::resource(alice.clone(), "list", "", "nodes");
    assert_eq!(
        forbidden_message(&nodes),
        r#"User "alice" cannot list resource "nodes" in API group "" at the cluster scope"#
    );

    let log = Attributes::resource(alice.clone(), "get", "", "pods")
        .in_namespace("default")
        .named("web-0")
        .with_subresource("log");
    assert_eq!(
        forbidden_status_message(&log, ""),
        r#"pods "web-0" is forbidden: User "alice" cannot get resource "pods/log" in API group "" in the namespace "default""#
    );

    let path = Attributes::non_resource(alice.clone(), "get", "/metrics");
    assert_eq!(forbidden_message(&path), r#"User "alice" cannot get path "/metrics""#);
    assert_eq!(forbidden_status_message(&path, ""), r#"forbidden: User "alice" cannot get path "/metrics""#);

    // Missing roles show up as the reason, appended after a colon.
    let frank =
        Attributes::resource(user("frank", &[]), "create", "apps", "deployments").in_namespace("default").named("web");
    let decision = a.authorize(&frank);
    assert_eq!(
        decision.reason(),
        r#"RBAC: [role.rbac.authorization.k8s.io "ghost" not found, clusterrole.rbac.authorization.k8s.io "phantom" not found]"#
    );
    assert_eq!(
        forbidden_status_message(&frank, decision.reason()),
        r#"deployments.apps "web" is forbidden: User "frank" cannot create resource "deployments" in API group "apps" in the namespace "default": RBAC: [role.rbac.authorization.k8s.io "ghost" not found, clusterrole.rbac.authorization.k8s.io "phantom" not found]"#
    );

    // Names are quoted as Go's %q, and HTML-looking text is escaped.
    let odd = Attributes::non_resource(UserInfo::new("a\"b\n<c>", Vec::<String>::new()), "get", "/x");
    assert_eq!(forbidden_message(&odd), "User \"a\\\"b\\n<c>\" cannot get path \"/x\"");
    assert_eq!(forbidden_status_message(&odd, ""), "forbidden: User \"a\\\"b\\n&lt;c&gt;\" cannot get path \"/x\"");
}

#[test]
fn aggregation_fills_admin_edit_and_view() {
    let (roles, bindings) = bootstrap_policy();
    let by_name = |n: &str| roles.iter().find(|r| r.metadata.name.as_deref() == Some(n)).unwrap();
    let rules_of = |n: &str| by_name(n).rules.clone().unwrap();
    let view = rules_of("view");
    let edit = rules_of("edit");
    let admin = rules_of("admin");
    assert!(!view.is_empty());
    assert_eq!(view, rules_of("system:aggregate-to-view"));
    assert!(view.iter().all(|r| edit.contains(r)), "edit includes view");
    assert!(rules_of("system:aggregate-to-edit").iter().all(|r| edit.contains(r)));
    assert!(edit.iter().all(|r| admin.contains(r)), "admin includes edit");
    assert!(rules_of("system:aggregate-to-admin").iter().all(|r| admin.contains(r)));

    // Every default object is marked like Kubernetes'.
    for meta in roles.iter().map(|r| &r.metadata).chain(bindings.iter().map(|b| &b.metadata)) {
        assert_eq!(meta.labels.as_ref().unwrap()[BOOTSTRAPPING_LABEL], "rbac-defaults");
        assert_eq!(meta.annotations.as_ref().unwrap()[AUTOUPDATE_ANNOTATION], "true");
    }

    let a = authorizer();
    let can = |who: &str, verb: &str, group: &str, resource: &str| {
        allowed(&a, Attributes::resource(user(who, &[]), verb, group, resource).in_namespace("default").named("x"))
    };
    assert!(can("viewer", "get", "", "pods"));
    assert!(can("viewer", "get", "apps", "deployments"));
    assert!(!can("viewer", "get", "", "secrets"));
    assert!(!can("viewer", "create", "", "pods"));
    assert!(can("editor", "get", "", "secrets"));
    assert!(can("editor", "create", "apps", "deployments"));
    assert!(can("editor", "get", "", "pods"));
    assert!(!can("editor", "create", "rbac.authorization.k8s.io", "rolebindings"));
    assert!(can("nsadmin", "create", "rbac.authorization.k8s.io", "rolebindings"));
    assert!(can("nsadmin", "delete", "", "secrets"));
    assert!(can("nsadmin", "list", "batch", "jobs"));
    assert!(!can("nsadmin", "create", "rbac.authorization.k8s.io", "clusterroles"));
}

#[test]
fn disruption_budgets_and_evictions_follow_the_default_roles() {
    let a = authorizer();
    let can = |who: &str, verb: &str, group: &str, resource: &str, sub: &str| {
        let attrs = Attributes::resource(user(who, &[]), verb, group, resource).in_namespace("default").named("x");
        allowed(&a, if sub.is_empty() { attrs } else { attrs.with_subresource(sub) })
    };
    // As in Kubernetes: view reads budgets and their status, edit (and so admin) writes
    // budgets and creates evictions; only view may not evict.
    assert!(can("viewer", "get", "policy", "poddisruptionbudgets", ""));
    assert!(can("viewer", "list", "policy", "poddisruptionbudgets", "status"));
    assert!(!can("viewer", "create", "policy", "poddisruptionbudgets", ""));
    assert!(!can("viewer", "create", "", "pods", "eviction"));
    for who in ["editor", "nsadmin"] {
        assert!(can(who, "create", "policy", "poddisruptionbudgets", ""), "{who}");
        assert!(can(who, "delete", "policy", "poddisruptionbudgets", ""), "{who}");
        assert!(can(who, "create", "", "pods", "eviction"), "{who}");
        assert!(!can(who, "update", "policy", "poddisruptionbudgets", "status"), "{who}");
    }
}

#[test]
fn aggregate_picks_up_labelled_roles_at_every_level() {
    let (mut roles, _) = bootstrap_policy();
    let widget_rule = rule(&["get", "list", "watch"], &["example.com"], &["widgets"]);
    let mut crd_role = cluster_role("widgets-view", vec![widget_rule.clone()]);
    crd_role.metadata.labels = Some([(AGGREGATE_TO_VIEW.to_string(), "true".to_string())].into());
    roles.push(crd_role);
    // Someone emptied `admin`; aggregation restores it.
    for r in roles.iter_mut().filter(|r| r.metadata.name.as_deref() == Some("admin")) {
        r.rules = Some(vec![]);
    }
    let computed = aggregate(&roles);
    assert_eq!(computed.keys().collect::<Vec<_>>(), ["admin", "edit", "view"]);
    for name in ["view", "edit", "admin"] {
        assert!(computed[name].contains(&widget_rule), "{name}");
    }
    assert!(
        !computed["view"].iter().any(|r| r.resources.as_deref().unwrap_or_default().contains(&"secrets".to_string()))
    );
    // No duplicates even though the rule reaches admin by two paths.
    assert_eq!(computed["admin"].iter().filter(|r| **r == widget_rule).count(), 1);
    aggregate_in_place(&mut roles);
    let admin = roles.iter().find(|r| r.metadata.name.as_deref() == Some("admin")).unwrap();
    assert_eq!(admin.rules.as_ref().unwrap(), &computed["admin"]);

    // matchExpressions select too; an aggregated role never includes itself.
    let mut selfish = ClusterRole {
        metadata: meta("selfish", None),
        rules: None,
        aggregation_rule: Some(AggregationRule {
            cluster_role_selectors: Some(vec![LabelSelector {
                match_labels: None,
                match_expressions: Some(vec![LabelSelectorRequirement {
                    key: "tier".into(),
                    operator: "In".into(),
                    values: Some(strings(&["gold", "silver"])),
                }]),
            }]),
        }),
    };
    selfish.metadata.labels = Some([("tier".to_string(), "gold".to_string())].into());
    let mut silver = cluster_role("silver", vec![widget_rule.clone()]);
    silver.metadata.labels = Some([("tier".to_string(), "silver".to_string())].into());
    let mut bronze = cluster_role("bronze", vec![rule(&["*"], &["*"], &["*"])]);
    bronze.metadata.labels = Some([("tier".to_string(), "bronze".to_string())].into());
    let computed = aggregate(&[selfish, silver, bronze]);
    assert_eq!(computed["selfish"], vec![widget_rule]);
}

#[test]
fn label_selectors() {
    let labels: BTreeMap<String, String> =
        [("a".to_string(), "1".to_string()), ("b".to_string(), "2".to_string())].into();
    let expr = |key: &str, op: &str, values: &[&str]| LabelSelector {
        match_labels: None,
        match_expressions: Some(vec![LabelSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: Some(strings(values)),
        }]),
    };
    assert!(label_selector_matches(&LabelSelector::default(), &labels));
    assert!(label_selector_matches(
        &LabelSelector { match_labels: Some([("a".to_string(), "1".to_string())].into()), match_expressions: None },
        &labels
    ));
    assert!(!label_selector_matches(
        &LabelSelector { match_labels: Some([("a".to_string(), "2".to_string())].into()), match_expressions: None },
        &labels
    ));
    assert!(label_selector_matches(&expr("a", "In", &["1", "3"]), &labels));
    assert!(!label_selector_matches(&expr("a", "NotIn", &["1"]), &labels));
    assert!(label_selector_matches(&expr("c", "NotIn", &["1"]), &labels));
    assert!(label_selector_matches(&expr("b", "Exists", &[]), &labels));
    assert!(label_selector_matches(&expr("c", "DoesNotExist", &[]), &labels));
    assert!(!label_selector_matches(&expr("a", "Gt", &["0"]), &labels));
}

#[test]
fn default_bindings_and_privileged_groups() {
    let a = authorizer();
    // cluster-admin is bound to system:masters.
    let master = user("someone", &["system:masters"]);
    assert!(allowed(&a, Attributes::resource(master.clone(), "delete", "", "nodes").named("n1")));
    // Component users get their roles.
    let scheduler = user("system:kube-scheduler", &[]);
    assert!(allowed(
        &a,
        Attributes::resource(scheduler.clone(), "create", "", "pods")
            .in_namespace("d")
            .named("p")
            .with_subresource("binding")
    ));
    assert!(!allowed(&a, Attributes::resource(scheduler, "create", "", "secrets").in_namespace("d")));
    let proxy = user("system:kube-proxy", &[]);
    assert!(allowed(&a, Attributes::resource(proxy.clone(), "watch", "discovery.k8s.io", "endpointslices")));
    assert!(!allowed(&a, Attributes::resource(proxy, "update", "", "services").in_namespace("d").named("s")));
    let kcm = user("system:kube-controller-manager", &[]);
    assert!(allowed(&a, Attributes::resource(kcm.clone(), "create", "apps", "replicasets").in_namespace("d")));
    assert!(!allowed(
        &a,
        Attributes::resource(kcm, "escalate", "rbac.authorization.k8s.io", "clusterroles").named("x")
    ));
    let joiner = UserInfo::new("system:bootstrap:abcdef", ["system:bootstrappers", AUTHENTICATED_GROUP]);
    assert!(allowed(
        &a,
        Attributes::resource(joiner.clone(), "create", "certificates.k8s.io", "certificatesigningrequests")
    ));
    assert!(!allowed(&a, Attributes::resource(joiner, "list", "", "secrets")));
    // system:node is bound to nobody: a kubelet gets nothing from RBAC alone.
    let kubelet = user("system:node:n1", &["system:nodes"]);
    assert!(!allowed(&a, Attributes::resource(kubelet, "get", "", "pods").in_namespace("d").named("p")));
    // Anonymous only gets health and version.
    let anon = UserInfo::anonymous();
    assert!(anon.in_group(UNAUTHENTICATED_GROUP));
    assert!(!allowed(&a, Attributes::resource(anon, "list", "", "namespaces")));

    // The union: privileged groups first, then RBAC; reasons of abstaining authorizers are kept.
    let empty = RbacAuthorizer::new(StaticRbacSource::default());
    let chain = Union(vec![Box::new(PrivilegedGroups::default()), Box::new(a)]);
    assert!(chain.authorize(&Attributes::resource(master, "create", "", "pods").in_namespace("x")).is_allowed());
    let erin = user("erin", &[]);
    assert!(chain.authorize(&Attributes::resource(erin.clone(), "list", "", "nodes")).is_allowed());
    assert!(!chain.authorize(&Attributes::resource(erin.clone(), "watch", "", "nodes")).is_allowed());
    assert!(!empty.authorize(&Attributes::resource(erin, "list", "", "nodes")).is_allowed());
    let frank = Attributes::resource(user("frank", &[]), "get", "", "pods").in_namespace("default");
    let reason = chain.authorize(&frank);
    assert!(matches!(&reason, Decision::NoOpinion(r) if r.contains("\"ghost\" not found")), "{reason:?}");
}

#[test]
fn rules_for_lists_what_applies() {
    let a = authorizer();
    let (rules, errors) = a.rules_for(&user("alice", &[]), "default");
    assert!(rules.iter().any(|r| r.resources.as_deref() == Some(&["pods".to_string()][..])));
    assert!(rules.iter().any(|r| r.non_resource_urls.is_some()), "discovery rules via system:authenticated");
    assert!(errors.is_empty());
    let (rules, _) = a.rules_for(&user("alice", &[]), "");
    assert!(!rules.iter().any(|r| r.resources.as_deref() == Some(&["pods".to_string()][..])));
    let (_, errors) = a.rules_for(&user("frank", &[]), "default");
    assert_eq!(errors.len(), 2);
}
