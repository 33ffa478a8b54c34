//! Whether one RBAC PolicyRule covers a request.

use super::Attributes;
use k8s_openapi::api::rbac::v1::PolicyRule;

/// Whether any of `rules` allows `attrs`.
pub fn rules_allow(attrs: &Attributes, rules: &[PolicyRule]) -> bool {
    rules.iter().any(|rule| rule_allows(attrs, rule))
}

/// Whether `rule` allows `attrs`. Resource requests need the verb, API group, resource
/// (`res`, `res/sub`, `*` or `*/sub`) and, when the rule lists names, the object name to
/// match; non-resource requests need the verb and a URL (exact, `*`, or a `prefix*`).
pub fn rule_allows(attrs: &Attributes, rule: &PolicyRule) -> bool {
    if !has(&rule.verbs, &attrs.verb) {
        return false;
    }
    if attrs.resource_request {
        let groups = rule.api_groups.as_deref().unwrap_or_default();
        let resources = rule.resources.as_deref().unwrap_or_default();
        has(groups, &attrs.api_group)
            && resource_matches(resources, &attrs.combined_resource(), &attrs.subresource)
            && name_matches(rule.resource_names.as_deref().unwrap_or_default(), &attrs.name)
    } else {
        rule.non_resource_urls.as_deref().unwrap_or_default().iter().any(|url| url_matches(url, &attrs.path))
    }
}

fn has(list: &[String], value: &str) -> bool {
    list.iter().any(|v| v == "*" || v == value)
}

fn resource_matches(rule_resources: &[String], combined: &str, subresource: &str) -> bool {
    rule_resources.iter().any(|r| {
        r == "*"
            || r == combined
            // `*/scale` covers the scale subresource of every resource.
            || (!subresource.is_empty() && r.strip_prefix("*/") == Some(subresource))
    })
}

fn name_matches(names: &[String], name: &str) -> bool {
    names.is_empty() || names.iter().any(|n| n == name)
}

fn url_matches(rule_url: &str, path: &str) -> bool {
    if rule_url == "*" || rule_url == path {
        return true;
    }
    rule_url.strip_suffix('*').is_some_and(|prefix| path.starts_with(prefix))
}
