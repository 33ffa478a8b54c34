//! `metrics.k8s.io/v1beta1`: NodeMetrics and PodMetrics built on request from each kubelet's
//! `/stats/summary`, so `kubectl top` and the HPA work without a separate metrics-server.

use crate::Server;
use rkube_api::{ApiError, LabelSelector, registry};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// The group this module serves.
pub const GROUP: &str = "metrics.k8s.io";
/// Its only version.
pub const VERSION: &str = "v1beta1";
const PREFIX: &str = "/apis/metrics.k8s.io/v1beta1";
/// How long one kubelet may take to answer before its node is left out.
const KUBELET_TIMEOUT: Duration = Duration::from_secs(5);

/// Whether `path` belongs to this group's version.
pub fn matches(path: &str) -> bool {
    path == PREFIX || path.starts_with(&format!("{PREFIX}/"))
}

/// The APIResourceList of metrics.k8s.io/v1beta1.
pub fn resource_list() -> Value {
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": format!("{GROUP}/{VERSION}"), "resources": [
        {"name": "nodes", "singularName": "", "namespaced": false, "kind": "NodeMetrics", "verbs": ["get", "list"]},
        {"name": "pods", "singularName": "", "namespaced": true, "kind": "PodMetrics", "verbs": ["get", "list"]},
    ]})
}

/// The group's entry in aggregated discovery.
pub fn aggregated_group() -> Value {
    let r = |name: &str, kind: &str, scope: &str| {
        json!({"resource": name, "responseKind": {"group": GROUP, "version": VERSION, "kind": kind},
               "scope": scope, "singularResource": "", "verbs": ["get", "list"]})
    };
    json!({"metadata": {"name": GROUP, "creationTimestamp": null}, "versions": [
        {"version": VERSION, "resources": [r("nodes", "NodeMetrics", "Cluster"), r("pods", "PodMetrics", "Namespaced")], "freshness": "Current"}
    ]})
}

/// The request: which objects, and the label selector.
enum Request<'a> {
    Discovery,
    Nodes(Option<&'a str>),
    Pods { namespace: Option<&'a str>, name: Option<&'a str> },
}

fn parse(path: &str) -> Option<Request<'_>> {
    let rest = path.strip_prefix(PREFIX)?.trim_matches('/');
    let segs: Vec<&str> = if rest.is_empty() { vec![] } else { rest.split('/').collect() };
    Some(match segs.as_slice() {
        [] => Request::Discovery,
        ["nodes"] => Request::Nodes(None),
        ["nodes", n] => Request::Nodes(Some(n)),
        ["pods"] => Request::Pods { namespace: None, name: None },
        ["namespaces", ns, "pods"] => Request::Pods { namespace: Some(ns), name: None },
        ["namespaces", ns, "pods", n] => Request::Pods { namespace: Some(ns), name: Some(n) },
        _ => return None,
    })
}

/// CPU in nanocores as Kubernetes writes it, e.g. `1234567n`.
fn cpu(nano_cores: u64) -> String {
    format!("{nano_cores}n")
}

/// Memory in KiB, e.g. `2048Ki`.
fn memory(bytes: u64) -> String {
    format!("{}Ki", bytes / 1024)
}

fn now() -> String {
    jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Objects of a kind from the watch cache, as JSON.
fn cached(server: &Server, plural: &str, namespace: Option<&str>) -> Vec<Value> {
    let Some(res) = registry::lookup("", "v1", plural) else { return vec![] };
    let list = server.registry.cache.list(&res.namespace_prefix(namespace), None, 0, &|_| true);
    list.items.iter().filter_map(|o| serde_json::from_slice(&o.bytes).ok()).collect()
}

fn labels(obj: &Value) -> BTreeMap<String, String> {
    serde_json::from_value(obj["metadata"]["labels"].clone()).unwrap_or_default()
}

/// Each node's stats summary, fetched from the kubelets in parallel; nodes that do not answer
/// are left out, as metrics-server leaves out what it cannot scrape.
async fn summaries(server: &Arc<Server>, nodes: &[String]) -> BTreeMap<String, Value> {
    let fetches = nodes.iter().map(|node| async move {
        let address = crate::podproxy::kubelet_address(server, node).await.ok()?;
        let fetch = async {
            let mut sender = server.kubelet.dial(&address).await.ok()?;
            let req =
                crate::podproxy::kubelet_request(http::Method::GET, &address, "/stats/summary", http::HeaderMap::new())
                    .ok()?;
            let resp = sender.send_request(req).await.ok()?;
            if !resp.status().is_success() {
                return None;
            }
            let body = http_body_util::BodyExt::collect(resp.into_body()).await.ok()?.to_bytes();
            serde_json::from_slice::<Value>(&body).ok()
        };
        let summary = tokio::time::timeout(KUBELET_TIMEOUT, fetch).await.ok()??;
        Some((node.clone(), summary))
    });
    futures::future::join_all(fetches).await.into_iter().flatten().collect()
}

/// Serves a request under `/apis/metrics.k8s.io/v1beta1`.
pub async fn serve(server: &Arc<Server>, path: &str, label_selector: &str) -> Result<Value, ApiError> {
    let not_found = || ApiError::NotFound { resource: String::new(), name: path.to_string() };
    let request = parse(path).ok_or_else(not_found)?;
    let selector = LabelSelector::parse(label_selector)?;
    let timestamp = now();
    match request {
        Request::Discovery => Ok(resource_list()),
        Request::Nodes(name) => {
            let nodes: Vec<Value> = cached(server, "nodes", None)
                .into_iter()
                .filter(|n| name.is_none_or(|want| n["metadata"]["name"] == want))
                .filter(|n| selector.matches(&labels(n)))
                .collect();
            let names: Vec<String> =
                nodes.iter().filter_map(|n| n["metadata"]["name"].as_str().map(String::from)).collect();
            let stats = summaries(server, &names).await;
            let items: Vec<Value> = nodes
                .iter()
                .filter_map(|n| {
                    let node_name = n["metadata"]["name"].as_str()?;
                    let s = stats.get(node_name)?;
                    Some(json!({
                        "kind": "NodeMetrics", "apiVersion": format!("{GROUP}/{VERSION}"),
                        "metadata": {"name": node_name, "labels": n["metadata"]["labels"], "creationTimestamp": timestamp},
                        "timestamp": s["node"]["cpu"]["time"], "window": "10s",
                        "usage": {"cpu": cpu(s["node"]["cpu"]["usageNanoCores"].as_u64().unwrap_or(0)),
                                  "memory": memory(s["node"]["memory"]["workingSetBytes"].as_u64().unwrap_or(0))},
                    }))
                })
                .collect();
            match name {
                Some(n) => items.into_iter().next().ok_or_else(|| ApiError::NotFound {
                    resource: format!("nodemetrics.{GROUP}"),
                    name: n.to_string(),
                }),
                None => Ok(
                    json!({"kind": "NodeMetricsList", "apiVersion": format!("{GROUP}/{VERSION}"), "metadata": {}, "items": items}),
                ),
            }
        }
        Request::Pods { namespace, name } => {
            let pods: Vec<Value> = cached(server, "pods", namespace)
                .into_iter()
                .filter(|p| name.is_none_or(|want| p["metadata"]["name"] == want))
                .filter(|p| selector.matches(&labels(p)))
                .filter(|p| p["status"]["phase"] == "Running")
                .collect();
            let mut nodes: Vec<String> =
                pods.iter().filter_map(|p| p["spec"]["nodeName"].as_str().map(String::from)).collect();
            nodes.sort();
            nodes.dedup();
            let stats = summaries(server, &nodes).await;
            let by_uid: BTreeMap<&str, &Value> = stats
                .values()
                .flat_map(|s| s["pods"].as_array().into_iter().flatten())
                .filter_map(|p| Some((p["podRef"]["uid"].as_str()?, p)))
                .collect();
            let items: Vec<Value> = pods
                .iter()
                .filter_map(|p| {
                    let s = by_uid.get(p["metadata"]["uid"].as_str()?)?;
                    let containers: Vec<Value> = s["containers"]
                        .as_array()?
                        .iter()
                        .map(|c| {
                            json!({"name": c["name"], "usage": {
                            "cpu": cpu(c["cpu"]["usageNanoCores"].as_u64().unwrap_or(0)),
                            "memory": memory(c["memory"]["workingSetBytes"].as_u64().unwrap_or(0))}})
                        })
                        .collect();
                    Some(json!({
                        "kind": "PodMetrics", "apiVersion": format!("{GROUP}/{VERSION}"),
                        "metadata": {"name": p["metadata"]["name"], "namespace": p["metadata"]["namespace"],
                                     "labels": p["metadata"]["labels"], "creationTimestamp": timestamp},
                        "timestamp": s["cpu"]["time"], "window": "10s", "containers": containers,
                    }))
                })
                .collect();
            match name {
                Some(n) => items
                    .into_iter()
                    .next()
                    .ok_or_else(|| ApiError::NotFound { resource: format!("podmetrics.{GROUP}"), name: n.to_string() }),
                None => Ok(
                    json!({"kind": "PodMetricsList", "apiVersion": format!("{GROUP}/{VERSION}"), "metadata": {}, "items": items}),
                ),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_quantities() {
        assert!(matches("/apis/metrics.k8s.io/v1beta1/nodes"));
        assert!(!matches("/apis/metrics.k8s.io/v1beta10"));
        assert!(matches!(
            parse("/apis/metrics.k8s.io/v1beta1/namespaces/a/pods/b"),
            Some(Request::Pods { namespace: Some("a"), name: Some("b") })
        ));
        assert!(parse("/apis/metrics.k8s.io/v1beta1/foo").is_none());
        assert_eq!((cpu(5_000_000), memory(4096)), ("5000000n".to_string(), "4Ki".to_string()));
    }
}
