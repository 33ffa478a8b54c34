//! The downward API's lookups, shared by container environments (`env.rs`) and downwardAPI /
//! projected volumes (`volumes.rs`): pod fields by `fieldPath`, container resources by
//! `resource` and `divisor`, and the `key="value"` format of whole label and annotation maps.

use k8s_openapi::api::core::v1::{Container, Node, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use rkube_api::validation::quantity::parse_quantity;
use rkube_client::{Client, ClientError};
use std::collections::BTreeMap;
use tokio::sync::OnceCell;

/// A downward API reference that cannot be resolved; the texts are Kubernetes'.
#[derive(Debug, thiserror::Error)]
pub enum DownwardError {
    /// A `fieldRef.fieldPath` the downward API does not offer.
    #[error("unsupported fieldPath: {0}")]
    UnsupportedField(String),
    /// A `resourceFieldRef.resource` the downward API does not offer.
    #[error("unsupported container resource : {0}")]
    UnsupportedResource(String),
    /// `resourceFieldRef.containerName` names no container of the pod.
    #[error("cannot find container: {0}")]
    ContainerNotFound(String),
    /// A quantity (request, limit, allocatable or divisor) that does not parse.
    #[error("invalid quantity {quantity:?} for {what}: {message}")]
    Quantity {
        /// What the quantity is, e.g. "limits.cpu".
        what: String,
        /// The text that failed to parse.
        quantity: String,
        /// The parser's reason.
        message: String,
    },
    /// The node's allocatable resources (the default for unset limits) could not be read.
    #[error("reading node {node:?} for its allocatable resources: {source}")]
    Node {
        /// The node's name.
        node: String,
        /// The API error.
        source: Box<ClientError>,
    },
}

/// The value of one `fieldRef.fieldPath` of `pod`, as the kubelet renders it. `host_ip` and
/// `pod_ips` stand for the status fields, which the kubelet knows before the API does.
pub fn field_value(pod: &Pod, path: &str, host_ip: &str, pod_ips: &[String]) -> Result<String, DownwardError> {
    let meta = &pod.metadata;
    let spec = pod.spec.as_ref();
    if let Some((map, key)) = subscripted(path) {
        let values = match map {
            "metadata.labels" => meta.labels.as_ref(),
            "metadata.annotations" => meta.annotations.as_ref(),
            _ => return Err(DownwardError::UnsupportedField(path.to_string())),
        };
        return Ok(values.and_then(|m| m.get(key)).cloned().unwrap_or_default());
    }
    let value = match path {
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "metadata.labels" => format_map(meta.labels.as_ref()),
        "metadata.annotations" => format_map(meta.annotations.as_ref()),
        "spec.nodeName" => spec.and_then(|s| s.node_name.clone()).unwrap_or_default(),
        "spec.serviceAccountName" => spec.and_then(|s| s.service_account_name.clone()).unwrap_or_default(),
        "status.hostIP" | "status.hostIPs" => host_ip.to_string(),
        "status.podIP" => pod_ips.first().cloned().unwrap_or_default(),
        "status.podIPs" => pod_ips.join(","),
        _ => return Err(DownwardError::UnsupportedField(path.to_string())),
    };
    Ok(value)
}

/// Splits `metadata.labels['key']` into ("metadata.labels", "key").
fn subscripted(path: &str) -> Option<(&str, &str)> {
    let inner = path.strip_suffix("']")?;
    let (map, key) = inner.split_once("['")?;
    Some((map, key))
}

/// A label or annotation map as the downward API writes it: `key="value"` lines sorted by key,
/// values quoted Go-style, no trailing newline.
pub fn format_map(map: Option<&BTreeMap<String, String>>) -> String {
    map.into_iter().flatten().map(|(k, v)| format!("{k}={}", go_quote(v))).collect::<Vec<_>>().join("\n")
}

/// Quotes `s` the way Go's `%q` does, so files read the same as under Kubernetes.
pub use rkube_auth::rbac::go_quote;

/// The node's allocatable resources, read from the API at most once per use: they stand in
/// for a container's unset limits, and most pods never need them.
pub struct Allocatable<'a> {
    client: &'a Client,
    node: String,
    cell: OnceCell<BTreeMap<String, Quantity>>,
}

impl<'a> Allocatable<'a> {
    /// Allocatable resources of `node`, fetched on first use.
    pub fn new(client: &'a Client, node: &str) -> Self {
        Allocatable { client, node: node.to_string(), cell: OnceCell::new() }
    }

    async fn get(&self) -> Result<&BTreeMap<String, Quantity>, DownwardError> {
        self.cell
            .get_or_try_init(|| async {
                let node = self
                    .client
                    .api::<Node>(None)
                    .get(&self.node)
                    .await
                    .map_err(|e| DownwardError::Node { node: self.node.clone(), source: Box::new(e) })?;
                Ok(node.status.and_then(|s| s.allocatable).unwrap_or_default())
            })
            .await
    }
}

/// The value of a `resourceFieldRef` of `container`: the request or limit divided by `divisor`
/// and rounded up; an unset limit of cpu, memory or ephemeral-storage reads as the node's
/// allocatable amount, as in Kubernetes.
pub async fn resource_value(
    container: &Container,
    resource: &str,
    divisor: Option<&Quantity>,
    allocatable: &Allocatable<'_>,
) -> Result<String, DownwardError> {
    let (section, name) = resource.split_once('.').ok_or_else(|| unsupported(resource))?;
    let known = matches!(name, "cpu" | "memory" | "ephemeral-storage") || name.starts_with("hugepages-");
    if !known || !matches!(section, "limits" | "requests") {
        return Err(unsupported(resource));
    }
    let resources = container.resources.as_ref();
    let set = match section {
        "limits" => resources.and_then(|r| r.limits.as_ref()),
        _ => resources.and_then(|r| r.requests.as_ref()),
    }
    .and_then(|m| m.get(name));
    let amount = match set {
        Some(q) => milli(q, resource)?,
        None if section == "limits" && !name.starts_with("hugepages-") => {
            allocatable.get().await?.get(name).map(|q| milli(q, resource)).transpose()?.unwrap_or(0)
        }
        None => 0,
    };
    let divisor = match divisor {
        Some(d) => milli(d, "divisor")?,
        None => 1000,
    };
    Ok(divide(amount, divisor, name == "cpu").to_string())
}

fn unsupported(resource: &str) -> DownwardError {
    DownwardError::UnsupportedResource(resource.to_string())
}

fn milli(q: &Quantity, what: &str) -> Result<i128, DownwardError> {
    parse_quantity(&q.0).map_err(|message| DownwardError::Quantity {
        what: what.to_string(),
        quantity: q.0.clone(),
        message,
    })
}

/// `amount / divisor` rounded up, both in milli-units. CPU divides milli-values; other
/// resources divide whole values (each rounded up first), which is how Kubernetes does it.
fn divide(amount: i128, divisor: i128, cpu: bool) -> i128 {
    let (a, d) = if cpu { (amount, divisor) } else { (ceil_div(amount, 1000), ceil_div(divisor, 1000)) };
    // A zero divisor is refused by validation; read it as 1 rather than fail.
    let d = if d <= 0 { 1 } else { d };
    ceil_div(a, d)
}

fn ceil_div(a: i128, d: i128) -> i128 {
    let q = a / d;
    if a % d != 0 && (a > 0) == (d > 0) { q + 1 } else { q }
}

/// The container named `name` among the pod's containers and init containers.
pub fn find_container<'p>(pod: &'p Pod, name: &str) -> Option<&'p Container> {
    let spec = pod.spec.as_ref()?;
    spec.containers.iter().chain(spec.init_containers.iter().flatten()).find(|c| c.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod() -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "prod", "uid": "u-1",
                "labels": {"app": "web", "tier": "front"},
                "annotations": {"note": "say \"hi\"\n", "a": "x"}},
            "spec": {"nodeName": "n1", "serviceAccountName": "sa1", "containers": [{"name": "c",
                "resources": {"limits": {"cpu": "250m", "memory": "64Mi"}, "requests": {"cpu": "100m"}}}]},
        }))
        .unwrap()
    }

    #[test]
    fn fields_resolve_as_kubernetes_renders_them() {
        let p = pod();
        let ips = vec!["10.0.0.5".to_string(), "fd00::5".to_string()];
        let v = |path| field_value(&p, path, "192.168.1.2", &ips).unwrap();
        assert_eq!(v("metadata.name"), "web");
        assert_eq!(v("metadata.namespace"), "prod");
        assert_eq!(v("metadata.uid"), "u-1");
        assert_eq!(v("metadata.labels"), "app=\"web\"\ntier=\"front\"");
        assert_eq!(v("metadata.annotations"), "a=\"x\"\nnote=\"say \\\"hi\\\"\\n\"");
        assert_eq!(v("metadata.labels['tier']"), "front");
        assert_eq!(v("metadata.annotations['missing']"), "");
        assert_eq!(v("spec.nodeName"), "n1");
        assert_eq!(v("spec.serviceAccountName"), "sa1");
        assert_eq!(v("status.hostIP"), "192.168.1.2");
        assert_eq!(v("status.podIP"), "10.0.0.5");
        assert_eq!(v("status.podIPs"), "10.0.0.5,fd00::5");
        let err = field_value(&p, "spec.hostname", "", &[]).unwrap_err();
        assert_eq!(err.to_string(), "unsupported fieldPath: spec.hostname");
        assert!(field_value(&p, "spec.nodeSelector['x']", "", &[]).is_err());
    }

    #[test]
    fn go_quoting_escapes_like_percent_q() {
        assert_eq!(go_quote("plain"), "\"plain\"");
        assert_eq!(go_quote("tab\there"), "\"tab\\there\"");
        assert_eq!(go_quote("\u{1}"), "\"\\x01\"");
        assert_eq!(go_quote("héllo"), "\"héllo\"");
        assert_eq!(format_map(None), "");
    }

    #[test]
    fn division_rounds_up_per_resource_kind() {
        // 250m cpu with divisor 1 is 1, with divisor 1m is 250.
        assert_eq!(divide(250, 1000, true), 1);
        assert_eq!(divide(250, 1, true), 250);
        // 64Mi with divisor 1Mi is 64, with 1 it is the byte count.
        let mi = 1_048_576_000_i128; // 1Mi in milli-units
        assert_eq!(divide(64 * mi, mi, false), 64);
        assert_eq!(divide(64 * mi + 1000, mi, false), 65);
        assert_eq!(divide(0, 1000, true), 0);
    }
}
