//! Where pod resource metrics come from: the `metrics.k8s.io/v1beta1` PodMetrics API
//! (metrics-server, usually reached through the API server's aggregation layer), read over
//! HTTP(S) with the controller-manager's credentials. Behind [`MetricsSource`] so another
//! source can be plugged in.

use super::replicas::{Measured, PodMetric, PodMetrics};
use futures::future::BoxFuture;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// A source of per-pod resource usage.
pub trait MetricsSource: Send + Sync + 'static {
    /// Usage of `measured.resource` ("cpu", "memory") by the pods in `namespace` matching
    /// `selector` (label-selector syntax), summed over each pod's containers (or only
    /// `measured.container`), by pod name. A pod missing a sample is left out.
    fn resource_metrics<'a>(
        &'a self,
        namespace: &'a str,
        selector: &'a str,
        measured: Measured<'a>,
    ) -> BoxFuture<'a, Result<PodMetrics, String>>;
}

/// Reads PodMetricsList from `<base>/apis/metrics.k8s.io/v1beta1/namespaces/{ns}/pods`.
pub struct HttpMetrics {
    base: String,
    http: reqwest::Client,
}

impl HttpMetrics {
    /// A source at `base` (e.g. the API server's URL), reached with the CA, client
    /// certificate and token of `credentials`.
    pub fn new(base: &str, credentials: &rkube_client::Kubeconfig) -> Result<HttpMetrics, String> {
        let http = crate::http::client(credentials, Duration::from_secs(10))?;
        Ok(HttpMetrics { base: base.trim_end_matches('/').to_string(), http })
    }

    async fn fetch(&self, namespace: &str, selector: &str, measured: Measured<'_>) -> Result<PodMetrics, String> {
        let resource = measured.resource;
        let url = format!("{}/apis/metrics.k8s.io/v1beta1/namespaces/{namespace}/pods", self.base);
        let fail = |e: String| {
            format!(
                "unable to get metrics for resource {resource}: unable to fetch metrics from resource metrics API: {e}"
            )
        };
        let response =
            self.http.get(&url).query(&[("labelSelector", selector)]).send().await.map_err(|e| fail(e.to_string()))?;
        let status = response.status();
        if status == reqwest::StatusCode::NOT_FOUND {
            return Err(fail("the server could not find the requested resource (get pods.metrics.k8s.io)".into()));
        }
        if !status.is_success() {
            return Err(fail(format!("the server responded with {status} (get pods.metrics.k8s.io)")));
        }
        let list: PodMetricsList = response.json().await.map_err(|e| fail(format!("decoding PodMetricsList: {e}")))?;
        let metrics = parse(list, measured);
        if metrics.is_empty() {
            return Err(format!(
                "unable to get metrics for resource {resource}: no metrics returned from resource metrics API"
            ));
        }
        Ok(metrics)
    }
}

impl MetricsSource for HttpMetrics {
    fn resource_metrics<'a>(
        &'a self,
        namespace: &'a str,
        selector: &'a str,
        measured: Measured<'a>,
    ) -> BoxFuture<'a, Result<PodMetrics, String>> {
        Box::pin(self.fetch(namespace, selector, measured))
    }
}

/// A source that always fails, saying why no working source could be built.
pub struct Unavailable(pub String);

impl MetricsSource for Unavailable {
    fn resource_metrics<'a>(
        &'a self,
        _: &'a str,
        _: &'a str,
        _: Measured<'a>,
    ) -> BoxFuture<'a, Result<PodMetrics, String>> {
        Box::pin(async move { Err(self.0.clone()) })
    }
}

/// metrics.k8s.io/v1beta1 PodMetricsList (the fields the HPA reads).
#[derive(Debug, Deserialize)]
struct PodMetricsList {
    #[serde(default)]
    items: Vec<PodMetricsItem>,
}

#[derive(Debug, Deserialize)]
struct PodMetricsItem {
    #[serde(default)]
    metadata: Named,
    timestamp: Option<jiff::Timestamp>,
    window: Option<String>,
    #[serde(default)]
    containers: Vec<ContainerMetrics>,
}

#[derive(Debug, Default, Deserialize)]
struct Named {
    #[serde(default)]
    name: String,
}

#[derive(Debug, Deserialize)]
struct ContainerMetrics {
    #[serde(default)]
    name: String,
    #[serde(default)]
    usage: BTreeMap<String, String>,
}

fn parse(list: PodMetricsList, Measured { resource, container }: Measured<'_>) -> PodMetrics {
    let mut out = PodMetrics::new();
    'pods: for item in list.items {
        let containers: Vec<&ContainerMetrics> =
            item.containers.iter().filter(|c| container.is_none_or(|n| n == c.name)).collect();
        if containers.is_empty() {
            continue;
        }
        let mut total: i64 = 0;
        for c in containers {
            // One container without a sample makes the pod's sum meaningless.
            let Some(q) = c.usage.get(resource) else { continue 'pods };
            let Ok(milli) = rkube_api::validation::quantity::parse_quantity(q) else { continue 'pods };
            total = total.saturating_add(milli.clamp(0, i128::from(i64::MAX)) as i64);
        }
        let window =
            item.window.as_deref().and_then(rkube_api::duration::parse_go_duration).unwrap_or(Duration::from_secs(30));
        let timestamp = item.timestamp.unwrap_or_else(jiff::Timestamp::now);
        out.insert(item.metadata.name, PodMetric { value: total, timestamp, window });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pod_metrics_sum_containers_and_skip_incomplete_pods() {
        let json = json!({"kind": "PodMetricsList", "items": [
            {"metadata": {"name": "a"}, "timestamp": "2026-01-01T00:00:00Z", "window": "1m0s",
             "containers": [
                {"name": "x", "usage": {"cpu": "250m", "memory": "1Mi"}},
                {"name": "y", "usage": {"cpu": "1"}},
             ]},
            {"metadata": {"name": "b"}, "timestamp": "2026-01-01T00:00:00Z", "window": "30s",
             "containers": [{"name": "x", "usage": {"memory": "1Mi"}}]},
        ]});
        let list: PodMetricsList = serde_json::from_value(json.clone()).unwrap();
        let list_again: PodMetricsList = serde_json::from_value(json).unwrap();
        let m = parse(list, Measured { resource: "cpu", container: None });
        assert_eq!(m.len(), 1);
        assert_eq!(m["a"].value, 1250);
        assert_eq!(m["a"].window, Duration::from_secs(60));
        let m = parse(list_again, Measured { resource: "memory", container: Some("x") });
        assert_eq!((m["a"].value, m["b"].value), (1024 * 1024 * 1000, 1024 * 1024 * 1000));
    }
}
