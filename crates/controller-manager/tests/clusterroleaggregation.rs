//! ClusterRole aggregation against a real API server: a ClusterRole with an aggregationRule
//! gathers the rules of the ClusterRoles its selectors pick, follows their changes, and drops
//! what a removed role gave it.

mod common;

use common::Cluster;
use k8s_openapi::api::rbac::v1::ClusterRole;
use rkube_client::DeleteParams;
use serde_json::json;

fn role(name: &str, labels: serde_json::Value, resources: &[&str]) -> ClusterRole {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": labels},
        "rules": [{"apiGroups": ["example.com"], "resources": resources, "verbs": ["get", "list"]}],
    }))
    .unwrap()
}

fn resources(role: &ClusterRole) -> Vec<String> {
    let mut all: Vec<String> =
        role.rules.iter().flatten().flat_map(|r| r.resources.clone().unwrap_or_default()).collect();
    all.sort();
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aggregated_roles_gather_and_drop_the_rules_of_the_roles_they_select() {
    let c = Cluster::start("clusterrole-aggregation", &[]);
    let roles = c.api::<ClusterRole>(None);
    let monitoring: ClusterRole = serde_json::from_value(json!({
        "metadata": {"name": "monitoring"},
        "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"aggregate-to-monitoring": "true"}}]},
    }))
    .unwrap();
    roles.create(&monitoring).await.unwrap();
    roles.create(&role("widgets-reader", json!({"aggregate-to-monitoring": "true"}), &["widgets"])).await.unwrap();
    roles.create(&role("gadgets-reader", json!({"aggregate-to-monitoring": "true"}), &["gadgets"])).await.unwrap();
    roles.create(&role("unrelated", json!({}), &["secrets-of-others"])).await.unwrap();

    let want = vec!["gadgets".to_string(), "widgets".to_string()];
    c.eventually(20, "monitoring with the rules of both selected roles", || async {
        roles.get("monitoring").await.ok().filter(|r| resources(r) == want)
    })
    .await;

    roles.delete("gadgets-reader", &DeleteParams::default()).await.unwrap();
    let want = vec!["widgets".to_string()];
    c.eventually(20, "monitoring without the deleted role's rules", || async {
        roles.get("monitoring").await.ok().filter(|r| resources(r) == want)
    })
    .await;
}
