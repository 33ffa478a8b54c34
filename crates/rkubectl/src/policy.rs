//! kubectl's presentation of RBAC PolicyRules, shared by `auth can-i --list` and `describe
//! role|clusterrole`: each rule broken down to one group, resource, verb and name (or one URL
//! and verb), single-resource rules compacted by appending their verbs, then a stable sort by
//! the rule's Go `String()`.

use serde_json::Value;

/// One rule after the breakdown (and compaction).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rule {
    /// Verbs, in the order they were met.
    pub verbs: Vec<String>,
    /// At most one API group.
    pub groups: Vec<String>,
    /// At most one resource.
    pub resources: Vec<String>,
    /// At most one resource name.
    pub names: Vec<String>,
    /// At most one non-resource URL.
    pub urls: Vec<String>,
}

fn bracketed(v: &[String]) -> String {
    format!("[{}]", v.join(" "))
}

impl Rule {
    /// The generated `PolicyRule.String()`, which kubectl sorts rules by.
    fn sort_key(&self) -> String {
        format!(
            "&PolicyRule{{Verbs:{},APIGroups:{},Resources:{},ResourceNames:{},NonResourceURLs:{},}}",
            bracketed(&self.verbs),
            bracketed(&self.groups),
            bracketed(&self.resources),
            bracketed(&self.names),
            bracketed(&self.urls)
        )
    }

    /// The four cells kubectl prints: `resource.group/subresource`, URLs, names, verbs.
    pub fn cells(&self) -> [String; 4] {
        [
            resource_group(&self.resources, &self.groups),
            bracketed(&self.urls),
            bracketed(&self.names),
            bracketed(&self.verbs),
        ]
    }
}

/// `BreakdownRule`: one rule per group, resource, verb and resource name; one per URL and verb.
fn breakdown(r: &Value) -> Vec<Rule> {
    let list = |f: &str| crate::discovery::strings(&r[f]);
    let (groups, resources, verbs, names, urls) =
        (list("apiGroups"), list("resources"), list("verbs"), list("resourceNames"), list("nonResourceURLs"));
    let mut out = Vec::new();
    for g in &groups {
        for res in &resources {
            for v in &verbs {
                let one = |names: Vec<String>| Rule {
                    verbs: vec![v.clone()],
                    groups: vec![g.clone()],
                    resources: vec![res.clone()],
                    names,
                    urls: Vec::new(),
                };
                if names.is_empty() {
                    out.push(one(Vec::new()));
                } else {
                    out.extend(names.iter().map(|n| one(vec![n.clone()])));
                }
            }
        }
    }
    for u in &urls {
        for v in &verbs {
            out.push(Rule { verbs: vec![v.clone()], urls: vec![u.clone()], ..Default::default() });
        }
    }
    out
}

/// `CompactRules`: single group/resource/name rules merged, their verbs appended in order.
fn compact(rules: Vec<Rule>) -> Vec<Rule> {
    let mut out: Vec<Rule> = Vec::new();
    let mut simple: Vec<Rule> = Vec::new();
    for r in rules {
        let is_simple = r.names.len() <= 1 && r.urls.is_empty() && r.groups.len() == 1 && r.resources.len() == 1;
        if !is_simple {
            out.push(r);
            continue;
        }
        match simple.iter_mut().find(|x| x.groups == r.groups && x.resources == r.resources && x.names == r.names) {
            Some(existing) => existing.verbs.extend(r.verbs),
            None => simple.push(r),
        }
    }
    out.extend(simple);
    out
}

/// The rules as kubectl lists them: broken down, compacted, sorted.
pub fn rules<'a>(policy_rules: impl IntoIterator<Item = &'a Value>) -> Vec<Rule> {
    let mut rules = compact(policy_rules.into_iter().flat_map(breakdown).collect());
    rules.sort_by_cached_key(Rule::sort_key);
    rules
}

/// `CombineResourceGroup`: `resource.group/subresource`.
fn resource_group(resources: &[String], groups: &[String]) -> String {
    let Some(first) = resources.first() else { return String::new() };
    let (res, sub) = match first.split_once('/') {
        Some((r, sub)) => (r, Some(sub)),
        None => (first.as_str(), None),
    };
    let mut out = res.to_string();
    if let Some(g) = groups.first().filter(|g| !g.is_empty()) {
        out.push('.');
        out.push_str(g);
    }
    if let Some(sub) = sub {
        out.push('/');
        out.push_str(sub);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rules_are_broken_down_compacted_and_sorted_as_kubectl_does() {
        let given = [
            json!({"apiGroups": ["apps"], "resources": ["deployments/scale"], "verbs": ["get", "patch"]}),
            json!({"apiGroups": [""], "resources": ["pods"], "verbs": ["list"], "resourceNames": ["a"]}),
            json!({"apiGroups": [""], "resources": ["pods"], "verbs": ["get"], "resourceNames": ["a"]}),
            json!({"nonResourceURLs": ["/healthz"], "verbs": ["get", "head"]}),
        ];
        let cells: Vec<[String; 4]> = rules(&given).iter().map(Rule::cells).collect();
        assert_eq!(
            cells,
            [
                ["deployments.apps/scale", "[]", "[]", "[get patch]"].map(String::from),
                ["", "[/healthz]", "[]", "[get]"].map(String::from),
                ["", "[/healthz]", "[]", "[head]"].map(String::from),
                ["pods", "[]", "[a]", "[list get]"].map(String::from),
            ]
        );
    }

    #[test]
    fn rules_break_down_compact_and_sort_like_kubectl() {
        let status = json!({
            "resourceRules": [
                {"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods", "services"]},
                {"verbs": ["watch"], "apiGroups": [""], "resources": ["pods"]},
                {"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]},
                {"verbs": ["get"], "apiGroups": ["apps"], "resources": ["deployments/scale"], "resourceNames": ["a", "b"]}
            ],
            "nonResourceRules": [{"verbs": ["get"], "nonResourceURLs": ["/healthz", "/api"]}]
        });
        let listed = ["resourceRules", "nonResourceRules"].map(|f| status[f].as_array().cloned().unwrap_or_default());
        let rules = rules(listed.iter().flatten());
        let shown: Vec<String> =
            rules.iter().map(|r| format!("{:?}{:?}{:?}{:?}", r.resources, r.names, r.urls, r.verbs)).collect();
        assert_eq!(
            shown,
            vec![
                r#"["*"][][]["*"]"#,
                r#"["pods"][][]["get", "list", "watch"]"#,
                r#"["services"][][]["get", "list"]"#,
                r#"[][]["/api"]["get"]"#,
                r#"[][]["/healthz"]["get"]"#,
                r#"["deployments/scale"]["a"][]["get"]"#,
                r#"["deployments/scale"]["b"][]["get"]"#,
            ]
        );
    }
}
