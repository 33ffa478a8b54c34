//! Discovery documents (/version, /api, /apis, per group-version resource lists), generated
//! from the resource registry so they list exactly what is served.

use rkube_api::{ResourceInfo, registry};
use serde_json::{Value, json};

/// The Kubernetes version whose API rkube serves.
pub const KUBE_MINOR: &str = "33";

/// `/version`.
pub fn version() -> Value {
    json!({
        "major": "1",
        "minor": KUBE_MINOR,
        "emulationMajor": "1",
        "emulationMinor": KUBE_MINOR,
        "gitVersion": format!("v1.{KUBE_MINOR}.0+rkube-{}", env!("CARGO_PKG_VERSION")),
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": "",
        "goVersion": "rust",
        "compiler": "rustc",
        "platform": format!("{}/{}", std::env::consts::OS, go_arch()),
    })
}

fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// `/api`.
pub fn legacy_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

fn group_json(group: &str, versions: &[&str]) -> Value {
    let vs: Vec<Value> =
        versions.iter().map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v})).collect();
    json!({"name": group, "versions": vs, "preferredVersion": vs[0]})
}

/// `/apis`.
pub fn group_list() -> Value {
    let mut groups: Vec<Value> = registry::served_groups()
        .into_iter()
        .filter(|(g, _)| !g.is_empty())
        .map(|(g, vs)| group_json(g, &vs))
        .collect();
    groups.push(group_json(crate::metrics::GROUP, &[crate::metrics::VERSION]));
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `/apis/{group}`, if the group is served.
pub fn group(name: &str) -> Option<Value> {
    let metrics = (crate::metrics::GROUP, vec![crate::metrics::VERSION]);
    let mut groups = registry::served_groups();
    groups.push(metrics);
    groups.into_iter().find(|(g, _)| *g == name && !g.is_empty()).map(|(g, vs)| {
        let mut v = group_json(g, &vs);
        v["kind"] = json!("APIGroup");
        v["apiVersion"] = json!("v1");
        v
    })
}

const OBJECT_VERBS: &[&str] = &["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"];

/// Verbs of a resource; Kubernetes offers no deletecollection on namespaces.
fn verbs(r: &ResourceInfo) -> &'static [&'static str] {
    if r.kind == "Namespace" && r.group.is_empty() {
        &["create", "delete", "get", "list", "patch", "update", "watch"]
    } else {
        OBJECT_VERBS
    }
}

/// What a subresource answers with and which verbs it takes.
struct Subresource {
    kind: &'static str,
    group_version: Option<(&'static str, &'static str)>,
    verbs: &'static [&'static str],
}

fn subresource(r: &ResourceInfo, sub: &str) -> Subresource {
    match sub {
        "scale" => Subresource {
            kind: "Scale",
            group_version: Some(("autoscaling", "v1")),
            verbs: &["get", "patch", "update"],
        },
        "binding" => Subresource { kind: "Binding", group_version: None, verbs: &["create"] },
        "token" => Subresource {
            kind: "TokenRequest",
            group_version: Some(("authentication.k8s.io", "v1")),
            verbs: &["create"],
        },
        "eviction" => Subresource { kind: "Eviction", group_version: Some(("policy", "v1")), verbs: &["create"] },
        "finalize" => Subresource { kind: r.kind, group_version: None, verbs: &["update"] },
        _ => Subresource { kind: r.kind, group_version: None, verbs: &["get", "patch", "update"] },
    }
}

/// The registry's subresources plus those served by their own handlers
/// (`serviceaccounts/token`, `pods/eviction`).
fn subresources(r: &ResourceInfo) -> Vec<&'static str> {
    let mut subs = r.subresources();
    if r.kind == "Pod" && r.group.is_empty() {
        subs.push("eviction");
    }
    if r.kind == "ServiceAccount" && r.group.is_empty() {
        subs.push("token");
    }
    subs
}

fn resource_entry(r: &ResourceInfo) -> Value {
    let mut v = json!({
        "name": r.plural,
        "singularName": r.singular,
        "namespaced": r.namespaced,
        "kind": r.kind,
        "verbs": verbs(r),
    });
    if !r.short_names.is_empty() {
        v["shortNames"] = json!(r.short_names);
    }
    if !r.categories.is_empty() {
        v["categories"] = json!(r.categories);
    }
    v
}

fn subresource_entry(r: &ResourceInfo, sub: &str) -> Value {
    let s = subresource(r, sub);
    let mut v = json!({
        "name": format!("{}/{sub}", r.plural),
        "singularName": "",
        "namespaced": r.namespaced,
        "kind": s.kind,
        "verbs": s.verbs,
    });
    if let Some((g, ver)) = s.group_version {
        v["group"] = json!(g);
        v["version"] = json!(ver);
    }
    v
}

/// `/api/v1` or `/apis/{group}/{version}`, if served.
pub fn resource_list(group: &str, version: &str) -> Option<Value> {
    let resources: Vec<&ResourceInfo> = registry::served_in_group_version(group, version);
    if resources.is_empty() {
        return None;
    }
    let mut entries = Vec::new();
    for r in resources {
        entries.push(resource_entry(r));
        for sub in subresources(r) {
            entries.push(subresource_entry(r, sub));
        }
    }
    let gv = if group.is_empty() { version.to_string() } else { format!("{group}/{version}") };
    Some(json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": entries}))
}

/// Media type of aggregated discovery (apidiscovery.k8s.io/v2), which kubectl asks for first.
pub const AGGREGATED_MEDIA_TYPE: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// Whether an Accept header asks for aggregated discovery v2.
pub fn wants_aggregated(accept: &str) -> bool {
    accept.split(',').any(|range| {
        let params: Vec<&str> = range.split(';').map(str::trim).collect();
        params.first() == Some(&"application/json")
            && params.contains(&"g=apidiscovery.k8s.io")
            && params.contains(&"v=v2")
            && params.contains(&"as=APIGroupDiscoveryList")
    })
}

fn aggregated_resource(r: &ResourceInfo) -> Value {
    let mut v = json!({
        "resource": r.plural,
        "responseKind": {"group": r.group, "version": r.version, "kind": r.kind},
        "scope": if r.namespaced { "Namespaced" } else { "Cluster" },
        "singularResource": r.singular,
        "verbs": verbs(r),
    });
    if !r.short_names.is_empty() {
        v["shortNames"] = json!(r.short_names);
    }
    if !r.categories.is_empty() {
        v["categories"] = json!(r.categories);
    }
    let subs: Vec<Value> = subresources(r)
        .into_iter()
        .map(|sub| {
            let s = subresource(r, sub);
            let (g, ver) = s.group_version.unwrap_or((r.group, r.version));
            json!({"subresource": sub, "responseKind": {"group": g, "version": ver, "kind": s.kind}, "verbs": s.verbs})
        })
        .collect();
    if !subs.is_empty() {
        v["subresources"] = json!(subs);
    }
    v
}

/// Aggregated discovery for `/api` (legacy = true, the core group only) or `/apis` (every
/// named group): one document with every group, version and resource.
pub fn aggregated(legacy: bool) -> Value {
    let mut items: Vec<Value> = registry::served_groups()
        .into_iter()
        .filter(|(g, _)| g.is_empty() == legacy)
        .map(|(g, versions)| {
            let versions: Vec<Value> = versions
                .iter()
                .map(|v| {
                    let resources: Vec<Value> =
                        registry::served_in_group_version(g, v).into_iter().map(aggregated_resource).collect();
                    json!({"version": v, "resources": resources, "freshness": "Current"})
                })
                .collect();
            let metadata = if g.is_empty() {
                json!({"creationTimestamp": null})
            } else {
                json!({"name": g, "creationTimestamp": null})
            };
            json!({"metadata": metadata, "versions": versions})
        })
        .collect();
    if !legacy {
        items.push(crate::metrics::aggregated_group());
    }
    json!({"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2", "metadata": {}, "items": items})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovery_lists_what_is_served() {
        let core = resource_list("", "v1").unwrap();
        let names: Vec<&str> =
            core["resources"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap()).collect();
        assert!(names.contains(&"pods") && names.contains(&"pods/status") && names.contains(&"pods/binding"));
        assert!(names.contains(&"replicationcontrollers/scale"));
        let apps = resource_list("apps", "v1").unwrap();
        let deploy = apps["resources"].as_array().unwrap().iter().find(|r| r["name"] == "deployments").unwrap();
        assert_eq!(deploy["shortNames"], json!(["deploy"]));
        assert_eq!(deploy["categories"], json!(["all"]));
        assert!(resource_list("apps", "v2").is_none());
        let groups = group_list();
        let hpa = groups["groups"].as_array().unwrap().iter().find(|g| g["name"] == "autoscaling").unwrap();
        assert_eq!(hpa["preferredVersion"]["version"], "v2");
        assert!(group("nope").is_none());
    }

    #[test]
    fn aggregated_discovery_has_scopes_verbs_and_subresources() {
        assert!(wants_aggregated(
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"
        ));
        assert!(!wants_aggregated("application/json, */*"));
        let core = aggregated(true);
        assert_eq!(core["items"].as_array().unwrap().len(), 1);
        let resources = core["items"][0]["versions"][0]["resources"].as_array().unwrap();
        let ns = resources.iter().find(|r| r["resource"] == "namespaces").unwrap();
        assert_eq!(ns["scope"], "Cluster");
        assert!(!ns["verbs"].as_array().unwrap().contains(&json!("deletecollection")));
        let rc = resources.iter().find(|r| r["resource"] == "replicationcontrollers").unwrap();
        let scale = rc["subresources"].as_array().unwrap().iter().find(|s| s["subresource"] == "scale").unwrap();
        assert_eq!(scale["responseKind"], json!({"group": "autoscaling", "version": "v1", "kind": "Scale"}));
        let named = aggregated(false);
        let autoscaling =
            named["items"].as_array().unwrap().iter().find(|g| g["metadata"]["name"] == "autoscaling").unwrap();
        assert_eq!(autoscaling["versions"][0]["version"], "v2");
    }
}
