//! Endpoints controller: every Service with a selector gets a core/v1 Endpoints object of the
//! same name listing the addresses of the pods it selects, ready and not ready, with each
//! Service port's targetPort resolved per pod. Services without a selector are left to their
//! users. Also home of the pod/Service helpers the EndpointSlice controller shares: which
//! pods belong in a Service's endpoints, port resolution, and the pod → Service mapping.

use crate::informers::SharedInformers;
use crate::objects::pod_ready;
use crate::{Action, Context, Controller, Error, Registration};
use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort, EndpointSubset, Endpoints, ObjectReference, Pod, Service, ServicePort,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use rkube_client::store::NAMESPACE_INDEX;
use rkube_client::{DeleteParams, Event, Store, WorkQueue, object_key};
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Annotation with the time of the earliest change (pod or Service) the object reflects.
pub const TRIGGER_TIME_ANNOTATION: &str = "endpoints.kubernetes.io/last-change-trigger-time";
/// Label Kubernetes' endpoint controller puts on the Endpoints it manages.
pub const MANAGED_BY_LABEL: &str = "endpoints.kubernetes.io/managed-by";
/// Value of [`MANAGED_BY_LABEL`] for this controller.
pub const MANAGED_BY: &str = "endpoint-controller";
/// Label marking the endpoints of a headless Service (clusterIP None).
pub const HEADLESS_LABEL: &str = "service.kubernetes.io/headless";
/// Annotation (value "truncated") on Endpoints cut down to [`MAX_ADDRESSES`].
pub const OVER_CAPACITY_ANNOTATION: &str = "endpoints.kubernetes.io/over-capacity";
/// Most addresses one Endpoints object lists; EndpointSlices carry the rest.
pub const MAX_ADDRESSES: usize = 1000;

/// Keeps every selector Service's Endpoints in step with its pods.
pub struct EndpointsController {
    ctx: Context,
    services: Store<Service>,
    pods: Store<Pod>,
    endpoints: Store<Endpoints>,
    triggers: Arc<TriggerTimes>,
}

/// Queues a Service on its own changes, on changes to the pods it selects, and when its
/// Endpoints are deleted or edited.
pub fn register(ctx: &Context, informers: &SharedInformers) -> Registration {
    let queue = WorkQueue::new();
    let triggers = Arc::new(TriggerTimes::default());
    queue_service_and_pod_changes(informers, &queue, &triggers);
    let q = queue.clone();
    informers.on_event::<Endpoints>(move |e| match e {
        // A deleted Endpoints comes back if its Service still selects pods.
        Event::Deleted(ep) => q.add(object_key(&ep.metadata)),
        // Edits to managed Endpoints are reverted; leftovers of deleted Services are removed.
        Event::Added(ep) | Event::Updated { new: ep, .. } if managed_by_us(&ep.metadata) => {
            q.add(object_key(&ep.metadata))
        }
        _ => {}
    });
    let controller = EndpointsController {
        ctx: ctx.clone(),
        services: informers.store(),
        pods: informers.store(),
        endpoints: informers.store(),
        triggers,
    };
    Registration::new(Arc::new(controller), queue)
}

fn managed_by_us(meta: &ObjectMeta) -> bool {
    meta.labels.as_ref().and_then(|l| l.get(MANAGED_BY_LABEL)).is_some_and(|v| v == MANAGED_BY)
}

impl Controller for EndpointsController {
    fn name(&self) -> &'static str {
        "endpoint"
    }

    async fn reconcile(&self, key: &str) -> Result<Action, Error> {
        let (namespace, name) = key.split_once('/').unwrap_or(("default", key));
        let api = self.ctx.client.api::<Endpoints>(Some(namespace));
        let Some(service) = self.services.get(key) else {
            // Kubernetes removes the Endpoints of a deleted Service explicitly.
            self.triggers.forget(key);
            if self.endpoints.get(key).is_some() {
                match api.delete(name, &DeleteParams::default()).await {
                    Ok(()) => tracing::info!(endpoints = key, "deleted the Endpoints of a deleted Service"),
                    Err(e) if e.is_not_found() => {}
                    Err(e) => return Err(e.into()),
                }
            }
            return Ok(Action::Done);
        };
        if service.metadata.deletion_timestamp.is_some() {
            return Ok(Action::Done);
        }
        let Some(selector) = service_selector(&service) else { return Ok(Action::Done) };
        let trigger = self.triggers.take(key);
        let outcome = self.sync(&service, selector, trigger).await;
        // Only Done means the trigger time reached the Endpoints: a create that raced our own
        // earlier one (AlreadyExists, requeued) must carry it into the next attempt.
        if !matches!(outcome, Ok(Action::Done))
            && let Some(t) = trigger
        {
            self.triggers.restore(key, t);
        }
        outcome
    }
}

impl EndpointsController {
    async fn sync(
        &self,
        service: &Service,
        selector: &BTreeMap<String, String>,
        trigger: Option<jiff::Timestamp>,
    ) -> Result<Action, Error> {
        let key = object_key(&service.metadata);
        let namespace = service.metadata.namespace.as_deref().unwrap_or("default");
        let name = service.metadata.name.as_deref().unwrap_or_default();
        let pods = selected_pods(&self.pods, namespace, selector);
        let mut subsets = build_subsets(service, &pods);
        let truncated = truncate(&mut subsets, MAX_ADDRESSES);
        let mut labels = service.metadata.labels.clone().unwrap_or_default();
        if is_headless(service) {
            labels.insert(HEADLESS_LABEL.to_string(), String::new());
        }
        labels.insert(MANAGED_BY_LABEL.to_string(), MANAGED_BY.to_string());

        let current = self.endpoints.get(&key);
        if let Some(current) = &current
            && normalized(current.subsets.clone().unwrap_or_default()) == subsets
            && current.metadata.labels.clone().unwrap_or_default() == labels
            && current.metadata.annotations.as_ref().is_some_and(|a| a.contains_key(OVER_CAPACITY_ANNOTATION))
                == truncated
        {
            return Ok(Action::Done);
        }
        let mut desired = match &current {
            Some(c) => (**c).clone(),
            None => Endpoints {
                metadata: ObjectMeta {
                    name: Some(name.to_string()),
                    namespace: Some(namespace.to_string()),
                    ..Default::default()
                },
                ..Default::default()
            },
        };
        desired.metadata.labels = Some(labels);
        let annotations = desired.metadata.annotations.get_or_insert_with(BTreeMap::new);
        match trigger {
            Some(t) => annotations.insert(TRIGGER_TIME_ANNOTATION.to_string(), t.to_string()),
            None => annotations.remove(TRIGGER_TIME_ANNOTATION),
        };
        if truncated {
            annotations.insert(OVER_CAPACITY_ANNOTATION.to_string(), "truncated".to_string());
        } else {
            annotations.remove(OVER_CAPACITY_ANNOTATION);
        }
        if annotations.is_empty() {
            desired.metadata.annotations = None;
        }
        let ready: usize = subsets.iter().map(|s| s.addresses.as_ref().map_or(0, Vec::len)).sum();
        let not_ready: usize = subsets.iter().map(|s| s.not_ready_addresses.as_ref().map_or(0, Vec::len)).sum();
        desired.subsets = if subsets.is_empty() { None } else { Some(subsets) };
        let api = self.ctx.client.api::<Endpoints>(Some(namespace));
        let written = if current.is_some() { api.update(&desired).await } else { api.create(&desired).await };
        match written {
            Ok(_) => {
                tracing::debug!(endpoints = %key, ready, not_ready, "wrote Endpoints");
                Ok(Action::Done)
            }
            // The cache has not seen our earlier create yet; look again shortly.
            Err(e) if e.is_already_exists() => Ok(Action::RequeueAfter(Duration::from_millis(200))),
            // The namespace is being deleted or is gone.
            Err(e) if current.is_none() && (e.code() == Some(403) || e.is_not_found()) => Ok(Action::Done),
            Err(e) => Err(e.into()),
        }
    }
}

/// The Service's selector, or None when this controller leaves it alone: no (or an empty)
/// selector, or an ExternalName Service.
pub fn service_selector(service: &Service) -> Option<&BTreeMap<String, String>> {
    let spec = service.spec.as_ref()?;
    if spec.type_.as_deref() == Some("ExternalName") {
        return None;
    }
    spec.selector.as_ref().filter(|s| !s.is_empty())
}

/// Whether a Service is headless (clusterIP None).
pub fn is_headless(service: &Service) -> bool {
    service.spec.as_ref().and_then(|s| s.cluster_ip.as_deref()) == Some("None")
}

/// Whether `labels` carry every key/value of `selector`.
pub fn selector_matches(selector: &BTreeMap<String, String>, labels: Option<&BTreeMap<String, String>>) -> bool {
    selector.iter().all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
}

/// The pods of `namespace` that `selector` selects.
pub fn selected_pods(pods: &Store<Pod>, namespace: &str, selector: &BTreeMap<String, String>) -> Vec<Arc<Pod>> {
    let mut selected: Vec<_> = pods
        .by_index(NAMESPACE_INDEX, namespace)
        .into_iter()
        .filter(|p| selector_matches(selector, p.metadata.labels.as_ref()))
        .collect();
    selected.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    selected
}

/// Whether a pod may appear in endpoints: it has an IP, is not finished, and (unless
/// `include_terminating`) is not being deleted.
pub fn include_pod(pod: &Pod, include_terminating: bool) -> bool {
    let status = pod.status.as_ref();
    if matches!(status.and_then(|s| s.phase.as_deref()), Some("Succeeded" | "Failed")) {
        return false;
    }
    let has_ip = status.is_some_and(|s| {
        s.pod_ip.as_deref().is_some_and(|ip| !ip.is_empty()) || s.pod_ips.as_ref().is_some_and(|ips| !ips.is_empty())
    });
    has_ip && (include_terminating || pod.metadata.deletion_timestamp.is_none())
}

/// The pod's IP of `family` ("IPv4" or "IPv6"), from `podIPs` or `podIP`.
pub fn pod_ip(pod: &Pod, family: &str) -> Option<String> {
    let status = pod.status.as_ref()?;
    let listed = status.pod_ips.iter().flatten().map(|p| p.ip.as_str());
    status.pod_ip.as_deref().into_iter().chain(listed).find_map(|ip| match ip.parse::<IpAddr>() {
        Ok(IpAddr::V4(_)) if family == "IPv4" => Some(ip.to_string()),
        Ok(IpAddr::V6(_)) if family == "IPv6" => Some(ip.to_string()),
        _ => None,
    })
}

/// The IP families a Service's endpoints are built for (spec.ipFamilies, IPv4 by default).
pub fn service_families(service: &Service) -> Vec<String> {
    let families: Vec<String> = service
        .spec
        .as_ref()
        .and_then(|s| s.ip_families.clone())
        .unwrap_or_default()
        .into_iter()
        .filter(|f| f == "IPv4" || f == "IPv6")
        .collect();
    if families.is_empty() { vec!["IPv4".to_string()] } else { families }
}

/// Whether the pod's endpoint carries its hostname: it has one and its subdomain names the
/// Service (so `<hostname>.<service>` resolves).
pub fn hostname_for(pod: &Pod, service: &Service) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    let hostname = spec.hostname.as_deref().filter(|h| !h.is_empty())?;
    let same_ns = pod.metadata.namespace == service.metadata.namespace;
    (same_ns && spec.subdomain.is_some() && spec.subdomain == service.metadata.name).then(|| hostname.to_string())
}

/// The reference from an endpoint to its pod.
pub fn pod_reference(pod: &Pod) -> ObjectReference {
    ObjectReference {
        kind: Some("Pod".to_string()),
        namespace: pod.metadata.namespace.clone(),
        name: pod.metadata.name.clone(),
        uid: pod.metadata.uid.clone(),
        ..Default::default()
    }
}

/// The pod port a Service port's targetPort names: a number as is, a name looked up in the
/// pod's containers (and restartable init containers) with the same protocol. None when the
/// pod has no such port.
pub fn find_port(pod: &Pod, port: &ServicePort) -> Option<i32> {
    let protocol = port.protocol.as_deref().unwrap_or("TCP");
    match &port.target_port {
        None => Some(port.port),
        Some(IntOrString::Int(n)) if *n == 0 => Some(port.port),
        Some(IntOrString::Int(n)) => Some(*n),
        Some(IntOrString::String(name)) => {
            let spec = pod.spec.as_ref()?;
            let sidecars =
                spec.init_containers.iter().flatten().filter(|c| c.restart_policy.as_deref() == Some("Always"));
            spec.containers.iter().chain(sidecars).flat_map(|c| c.ports.iter().flatten()).find_map(|p| {
                (p.name.as_deref() == Some(name.as_str()) && p.protocol.as_deref().unwrap_or("TCP") == protocol)
                    .then_some(p.container_port)
            })
        }
    }
}

type AddressKey = (String, String);
type PortKey = (String, i32, String, Option<String>);

fn port_key(p: &EndpointPort) -> PortKey {
    (p.name.clone().unwrap_or_default(), p.port, p.protocol.clone().unwrap_or_default(), p.app_protocol.clone())
}

/// The subsets of a Service's Endpoints: every selected pod's address under each port it
/// offers, repacked as Kubernetes does so that ports served by exactly the same addresses
/// (with the same readiness) share one subset.
pub fn build_subsets(service: &Service, pods: &[Arc<Pod>]) -> Vec<EndpointSubset> {
    let spec = service.spec.clone().unwrap_or_default();
    let publish = spec.publish_not_ready_addresses == Some(true);
    let family = service_families(service).into_iter().next().unwrap_or_else(|| "IPv4".into());
    let service_ports = spec.ports.unwrap_or_default();
    // port (None: the portless sentinel of headless Services) -> address -> (address, ready)
    type Addresses = BTreeMap<AddressKey, (EndpointAddress, bool)>;
    let mut by_port: BTreeMap<Option<PortKey>, (Option<EndpointPort>, Addresses)> = BTreeMap::new();
    for pod in pods {
        if !include_pod(pod, publish) {
            continue;
        }
        let Some(ip) = pod_ip(pod, &family) else { continue };
        let address = EndpointAddress {
            ip: ip.clone(),
            hostname: hostname_for(pod, service),
            node_name: pod.spec.as_ref().and_then(|s| s.node_name.clone()).filter(|n| !n.is_empty()),
            target_ref: Some(pod_reference(pod)),
        };
        let ready = publish || pod_ready(pod);
        let akey = (ip, pod.metadata.uid.clone().unwrap_or_default());
        let mut offered: Vec<Option<EndpointPort>> = Vec::new();
        if service_ports.is_empty() {
            if is_headless(service) {
                offered.push(None);
            }
        } else {
            for sp in &service_ports {
                let Some(number) = find_port(pod, sp) else { continue };
                offered.push(Some(EndpointPort {
                    name: sp.name.clone().filter(|n| !n.is_empty()),
                    port: number,
                    protocol: Some(sp.protocol.clone().unwrap_or_else(|| "TCP".into())),
                    app_protocol: sp.app_protocol.clone(),
                }));
            }
        }
        for port in offered {
            let pkey = port.as_ref().map(port_key);
            let (_, addresses) = by_port.entry(pkey).or_insert_with(|| (port, BTreeMap::new()));
            let entry = addresses.entry(akey.clone()).or_insert_with(|| (address.clone(), ready));
            // Ready anywhere wins, as in Kubernetes' repacking.
            entry.1 |= ready;
        }
    }
    // Group ports by the exact set of (address, readiness) that serves them.
    type Signature = Vec<(AddressKey, bool)>;
    let mut groups: BTreeMap<Signature, (Addresses, Vec<EndpointPort>)> = BTreeMap::new();
    for (_, (port, addresses)) in by_port {
        let signature: Signature = addresses.iter().map(|(k, (_, r))| (k.clone(), *r)).collect();
        let group = groups.entry(signature).or_insert_with(|| (addresses, Vec::new()));
        group.1.extend(port);
    }
    groups
        .into_values()
        .map(|(addresses, ports)| {
            let (ready, not_ready): (Vec<_>, Vec<_>) = addresses.into_values().partition(|(_, r)| *r);
            let list = |v: Vec<(EndpointAddress, bool)>| {
                let v: Vec<EndpointAddress> = v.into_iter().map(|(a, _)| a).collect();
                (!v.is_empty()).then_some(v)
            };
            EndpointSubset {
                addresses: list(ready),
                not_ready_addresses: list(not_ready),
                ports: (!ports.is_empty()).then_some(ports),
            }
        })
        .collect()
}

/// Cuts the subsets down to `max` addresses, ready ones first; returns whether any were cut.
fn truncate(subsets: &mut Vec<EndpointSubset>, max: usize) -> bool {
    let count = |v: &Option<Vec<EndpointAddress>>| v.as_ref().map_or(0, Vec::len);
    let total: usize = subsets.iter().map(|s| count(&s.addresses) + count(&s.not_ready_addresses)).sum();
    if total <= max {
        return false;
    }
    let mut budget = max;
    for s in subsets.iter_mut() {
        if let Some(a) = s.addresses.as_mut() {
            a.truncate(budget);
            budget -= a.len();
        }
    }
    for s in subsets.iter_mut() {
        if let Some(a) = s.not_ready_addresses.as_mut() {
            a.truncate(budget);
            budget -= a.len();
        }
    }
    for s in subsets.iter_mut() {
        s.addresses = s.addresses.take().filter(|a| !a.is_empty());
        s.not_ready_addresses = s.not_ready_addresses.take().filter(|a| !a.is_empty());
    }
    subsets.retain(|s| s.addresses.is_some() || s.not_ready_addresses.is_some());
    true
}

/// Subsets with empty lists as absent, so stored and computed subsets compare equal.
fn normalized(subsets: Vec<EndpointSubset>) -> Vec<EndpointSubset> {
    fn some<T>(v: Option<Vec<T>>) -> Option<Vec<T>> {
        v.filter(|v| !v.is_empty())
    }
    subsets
        .into_iter()
        .map(|s| EndpointSubset {
            addresses: some(s.addresses),
            not_ready_addresses: some(s.not_ready_addresses),
            ports: some(s.ports),
        })
        .collect()
}

/// Whether a pod changed in a way that can change endpoints.
pub fn pod_changed(old: &Pod, new: &Pod) -> bool {
    fn view(p: &Pod) -> impl PartialEq + '_ {
        let spec = p.spec.as_ref();
        let status = p.status.as_ref();
        (
            (
                p.metadata.labels.as_ref(),
                p.metadata.deletion_timestamp.is_some(),
                pod_ready(p),
                status.and_then(|s| s.pod_ip.as_ref()),
                status.and_then(|s| s.pod_ips.as_ref()),
                status.and_then(|s| s.phase.as_ref()),
            ),
            (spec.and_then(|s| s.node_name.as_ref()), spec.and_then(|s| s.hostname.as_ref())),
            spec.and_then(|s| s.subdomain.as_ref()),
        )
    }
    view(old) != view(new)
}

/// The keys of the Services in the pod's namespace whose selector matches its labels.
pub fn services_selecting(services: &Store<Service>, pod: &Pod) -> Vec<String> {
    let Some(namespace) = pod.metadata.namespace.as_deref() else { return Vec::new() };
    services
        .by_index(NAMESPACE_INDEX, namespace)
        .into_iter()
        .filter(|s| service_selector(s).is_some_and(|sel| selector_matches(sel, pod.metadata.labels.as_ref())))
        .map(|s| object_key(&s.metadata))
        .collect()
}

/// Wires the handlers both endpoint controllers share: a Service queues itself; a pod change
/// that matters queues the Services selecting the pod before and after the change.
pub fn queue_service_and_pod_changes(
    informers: &SharedInformers,
    queue: &WorkQueue<String>,
    triggers: &Arc<TriggerTimes>,
) {
    let (q, t) = (queue.clone(), triggers.clone());
    informers.on_event::<Service>(move |e| {
        let (Event::Added(s) | Event::Updated { new: s, .. } | Event::Deleted(s)) = e;
        let key = object_key(&s.metadata);
        t.note(&key);
        q.add(key);
    });
    let services = informers.store::<Service>();
    let (q, t) = (queue.clone(), triggers.clone());
    informers.on_event::<Pod>(move |e| {
        let mut keys = match e {
            Event::Added(p) | Event::Deleted(p) => services_selecting(&services, p),
            Event::Updated { old, new } => {
                if !pod_changed(old, new) {
                    return;
                }
                let mut keys = services_selecting(&services, new);
                if old.metadata.labels != new.metadata.labels {
                    keys.extend(services_selecting(&services, old));
                }
                keys
            }
        };
        keys.sort();
        keys.dedup();
        for key in keys {
            t.note(&key);
            q.add(key);
        }
    });
}

/// When each Service's earliest not-yet-written change was seen, for the
/// last-change-trigger-time annotation.
#[derive(Default)]
pub struct TriggerTimes {
    pending: Mutex<HashMap<String, jiff::Timestamp>>,
}

impl TriggerTimes {
    fn with<T>(&self, f: impl FnOnce(&mut HashMap<String, jiff::Timestamp>) -> T) -> T {
        f(&mut self.pending.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// A change for `key` was seen now (an earlier pending one is kept).
    pub fn note(&self, key: &str) {
        self.with(|m| {
            m.entry(key.to_string()).or_insert_with(jiff::Timestamp::now);
        });
    }

    /// Takes the pending trigger time of `key`.
    pub fn take(&self, key: &str) -> Option<jiff::Timestamp> {
        self.with(|m| m.remove(key))
    }

    /// Puts back a trigger time whose write failed (keeping the earlier of two).
    pub fn restore(&self, key: &str, at: jiff::Timestamp) {
        self.with(|m| {
            let t = m.entry(key.to_string()).or_insert(at);
            *t = (*t).min(at);
        });
    }

    /// Drops `key` (its Service is gone).
    pub fn forget(&self, key: &str) {
        self.with(|m| {
            m.remove(key);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn service(v: serde_json::Value) -> Service {
        serde_json::from_value(v).unwrap()
    }

    fn pod(name: &str, ip: &str, ready: bool, ports: serde_json::Value) -> Arc<Pod> {
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": "ns", "uid": format!("uid-{name}"), "labels": {"app": "web"}},
                "spec": {"containers": [{"name": "c", "image": "i", "ports": ports}]},
                "status": {"phase": "Running", "podIP": ip,
                           "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]},
            }))
            .unwrap(),
        )
    }

    #[test]
    fn named_target_ports_resolve_per_pod_and_split_subsets() {
        let svc = service(json!({"metadata": {"name": "web", "namespace": "ns"}, "spec": {
            "selector": {"app": "web"},
            "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]}}));
        let pods = vec![
            pod("a", "10.0.0.1", true, json!([{"name": "http", "containerPort": 8080, "protocol": "TCP"}])),
            pod("b", "10.0.0.2", true, json!([{"name": "http", "containerPort": 9090, "protocol": "TCP"}])),
            pod("c", "10.0.0.3", false, json!([{"name": "http", "containerPort": 8080, "protocol": "TCP"}])),
            pod("d", "10.0.0.4", true, json!([{"name": "other", "containerPort": 8080, "protocol": "TCP"}])),
            pod("e", "", true, json!([{"name": "http", "containerPort": 8080, "protocol": "TCP"}])),
        ];
        let subsets = build_subsets(&svc, &pods);
        assert_eq!(subsets.len(), 2, "{subsets:?}");
        let by_port = |n: i32| subsets.iter().find(|s| s.ports.as_ref().unwrap()[0].port == n).unwrap();
        let ips = |v: &Option<Vec<EndpointAddress>>| v.iter().flatten().map(|a| a.ip.clone()).collect::<Vec<_>>();
        assert_eq!(ips(&by_port(8080).addresses), ["10.0.0.1"]);
        assert_eq!(ips(&by_port(8080).not_ready_addresses), ["10.0.0.3"]);
        assert_eq!(ips(&by_port(9090).addresses), ["10.0.0.2"]);
        assert_eq!(by_port(9090).ports.as_ref().unwrap()[0].name.as_deref(), Some("http"));
    }

    #[test]
    fn ports_served_by_the_same_addresses_share_a_subset() {
        let svc = service(json!({"metadata": {"name": "web", "namespace": "ns"}, "spec": {
            "selector": {"app": "web"}, "publishNotReadyAddresses": true,
            "ports": [{"name": "a", "port": 80, "targetPort": 80}, {"name": "b", "port": 81, "targetPort": 81}]}}));
        let pods = vec![pod("a", "10.0.0.1", false, json!([])), pod("b", "10.0.0.2", true, json!([]))];
        let subsets = build_subsets(&svc, &pods);
        assert_eq!(subsets.len(), 1);
        assert_eq!(subsets[0].ports.as_ref().unwrap().len(), 2);
        assert_eq!(subsets[0].addresses.as_ref().unwrap().len(), 2, "publishNotReadyAddresses makes all ready");
    }

    #[test]
    fn endpoints_beyond_capacity_are_cut_ready_first() {
        let svc = service(json!({"metadata": {"name": "web", "namespace": "ns"}, "spec": {
            "selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 80}]}}));
        let pods: Vec<_> =
            (0..6).map(|i| pod(&format!("p{i}"), &format!("10.0.0.{i}"), i % 2 == 0, json!([]))).collect();
        let mut subsets = build_subsets(&svc, &pods);
        assert!(!truncate(&mut subsets, 6));
        assert!(truncate(&mut subsets, 4));
        assert_eq!(subsets[0].addresses.as_ref().unwrap().len(), 3, "every ready address kept");
        assert_eq!(subsets[0].not_ready_addresses.as_ref().unwrap().len(), 1);
    }

    #[test]
    fn headless_services_without_ports_list_addresses_and_hostnames() {
        let svc = service(json!({"metadata": {"name": "db", "namespace": "ns"}, "spec": {
            "selector": {"app": "web"}, "clusterIP": "None"}}));
        let mut p = (*pod("a", "10.0.0.1", true, json!([]))).clone();
        let spec = p.spec.as_mut().unwrap();
        spec.hostname = Some("db-0".into());
        spec.subdomain = Some("db".into());
        let subsets = build_subsets(&svc, &[Arc::new(p)]);
        assert_eq!(subsets.len(), 1);
        assert!(subsets[0].ports.is_none());
        assert_eq!(subsets[0].addresses.as_ref().unwrap()[0].hostname.as_deref(), Some("db-0"));
    }
}
