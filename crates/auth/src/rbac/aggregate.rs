//! Aggregated ClusterRoles: a role with an `aggregationRule` holds the union of the rules of
//! every ClusterRole its label selectors pick (how `admin`, `edit` and `view` grow when a
//! CRD's roles carry `rbac.authorization.k8s.io/aggregate-to-*` labels).

use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use std::collections::BTreeMap;

/// The rules each aggregated ClusterRole in `cluster_roles` should hold, by role name: the
/// rules of every other ClusterRole a selector matches, in name order, without duplicates.
/// Aggregated roles that select other aggregated roles see their aggregated rules. A pure
/// function; a controller writes back the roles whose rules differ.
pub fn aggregate(cluster_roles: &[ClusterRole]) -> BTreeMap<String, Vec<PolicyRule>> {
    let mut roles: Vec<ClusterRole> = cluster_roles.to_vec();
    roles.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    // Each round lets rules travel one more aggregation level; a chain cannot be longer than
    // the number of roles, and a cycle stops changing once every member has the union.
    for _ in 0..roles.len().max(1) {
        let mut changed = false;
        for i in 0..roles.len() {
            let Some(rule) = roles[i].aggregation_rule.as_ref() else {
                continue;
            };
            let selectors = rule.cluster_role_selectors.clone().unwrap_or_default();
            let mut rules: Vec<PolicyRule> = Vec::new();
            for (j, source) in roles.iter().enumerate() {
                let labels = source.metadata.labels.clone().unwrap_or_default();
                if j == i || !selectors.iter().any(|s| label_selector_matches(s, &labels)) {
                    continue;
                }
                for r in source.rules.as_deref().unwrap_or_default() {
                    if !rules.contains(r) {
                        rules.push(r.clone());
                    }
                }
            }
            if roles[i].rules.as_ref() != Some(&rules) {
                roles[i].rules = Some(rules);
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    roles
        .into_iter()
        .filter(|r| r.aggregation_rule.is_some())
        .filter_map(|r| Some((r.metadata.name?, r.rules.unwrap_or_default())))
        .collect()
}

/// Replaces the rules of every aggregated role in `cluster_roles` with [`aggregate`]'s.
pub fn aggregate_in_place(cluster_roles: &mut [ClusterRole]) {
    let mut computed = aggregate(cluster_roles);
    for role in cluster_roles.iter_mut() {
        if let Some(name) = &role.metadata.name
            && let Some(rules) = computed.remove(name)
        {
            role.rules = Some(rules);
        }
    }
}

/// Whether `labels` satisfy `selector` (matchLabels and matchExpressions with In, NotIn,
/// Exists, DoesNotExist; an unknown operator matches nothing). An empty selector matches
/// everything, as in Kubernetes.
pub fn label_selector_matches(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    if let Some(required) = &selector.match_labels
        && !required.iter().all(|(k, v)| labels.get(k) == Some(v))
    {
        return false;
    }
    selector.match_expressions.as_deref().unwrap_or_default().iter().all(|expr| {
        let values = expr.values.as_deref().unwrap_or_default();
        let value = labels.get(&expr.key);
        match expr.operator.as_str() {
            "In" => value.is_some_and(|v| values.contains(v)),
            "NotIn" => value.is_none_or(|v| !values.contains(v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            _ => false,
        }
    })
}
