//! EndpointSlice controller: every Service with a selector gets discovery.k8s.io/v1
//! EndpointSlices (`<service>-<random>`, owned by the Service) listing its pods' endpoints
//! with ready/serving/terminating conditions, grouped by the set of ports each pod offers and
//! at most `--max-endpoints-per-slice` to a slice. Slices are updated in place where possible,
//! filled before new ones are created, and removed when stale; a Service without endpoints
//! keeps one empty placeholder slice, as in Kubernetes.

use crate::controllers::endpoints::{
    HEADLESS_LABEL, TRIGGER_TIME_ANNOTATION, TriggerTimes, find_port, hostname_for, include_pod, pod_ip, pod_reference,
    queue_service_and_pod_changes, selected_pods, service_families, service_selector,
};
use crate::informers::SharedInformers;
use crate::objects::{controller_reference, pod_ready};
use crate::{Action, Context, Controller, Error, Registration};
use k8s_openapi::api::core::v1::{Node, Pod, Service};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use rkube_client::store::NAMESPACE_INDEX;
use rkube_client::{DeleteParams, Event, Store, WorkQueue};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Label naming the Service a slice belongs to.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// Label naming the controller that manages a slice.
pub const MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";
/// Value of [`MANAGED_BY_LABEL`] for this controller.
pub const CONTROLLER_NAME: &str = "endpointslice-controller.k8s.io";
/// Node label holding the node's zone.
pub const ZONE_LABEL: &str = "topology.kubernetes.io/zone";

/// How long a write may take to show up in the cache before it is no longer waited for.
const TRACK_TTL: Duration = Duration::from_secs(10);

/// Keeps every selector Service's EndpointSlices in step with its pods.
pub struct EndpointSliceController {
    ctx: Context,
    services: Store<Service>,
    pods: Store<Pod>,
    nodes: Store<Node>,
    slices: Store<EndpointSlice>,
    triggers: Arc<TriggerTimes>,
    tracker: SliceTracker,
    max_per_slice: usize,
}

/// Queues a Service on its own changes, on changes to the pods it selects, and on changes to
/// the slices it owns.
pub fn register(ctx: &Context, informers: &SharedInformers) -> Registration {
    let queue = WorkQueue::new();
    let triggers = Arc::new(TriggerTimes::default());
    queue_service_and_pod_changes(informers, &queue, &triggers);
    let q = queue.clone();
    informers.on_event::<EndpointSlice>(move |e| {
        let (Event::Added(s) | Event::Updated { new: s, .. } | Event::Deleted(s)) = e;
        if let Some(key) = service_key(s) {
            q.add(key);
        }
    });
    let controller = EndpointSliceController {
        ctx: ctx.clone(),
        services: informers.store(),
        pods: informers.store(),
        nodes: informers.store(),
        slices: informers.store(),
        triggers,
        tracker: SliceTracker::default(),
        max_per_slice: ctx.config.max_endpoints_per_slice.max(1),
    };
    Registration::new(Arc::new(controller), queue)
}

/// The `namespace/service` key of a slice this controller manages.
fn service_key(slice: &EndpointSlice) -> Option<String> {
    let labels = slice.metadata.labels.as_ref()?;
    if labels.get(MANAGED_BY_LABEL).map(String::as_str) != Some(CONTROLLER_NAME) {
        return None;
    }
    let service = labels.get(SERVICE_NAME_LABEL)?;
    Some(format!("{}/{service}", slice.metadata.namespace.as_deref().unwrap_or("default")))
}

impl Controller for EndpointSliceController {
    fn name(&self) -> &'static str {
        "endpointslice"
    }

    async fn reconcile(&self, key: &str) -> Result<Action, Error> {
        let (namespace, _) = key.split_once('/').unwrap_or(("default", key));
        let owned: Vec<Arc<EndpointSlice>> = self
            .slices
            .by_index(NAMESPACE_INDEX, namespace)
            .into_iter()
            .filter(|s| service_key(s).as_deref() == Some(key))
            .collect();
        let Some(service) = self.services.get(key) else {
            // The garbage collector removes owned slices too; doing it here does not depend on it.
            self.triggers.forget(key);
            self.tracker.forget(key);
            let api = self.ctx.client.api::<EndpointSlice>(Some(namespace));
            for slice in owned {
                delete_slice(&api, &slice).await?;
            }
            return Ok(Action::Done);
        };
        if service.metadata.deletion_timestamp.is_some() {
            return Ok(Action::Done);
        }
        let Some(selector) = service_selector(&service) else { return Ok(Action::Done) };
        if self.tracker.stale(key, &owned) {
            // Our last writes have not reached the cache; acting now could duplicate slices.
            // Their events queue the Service again; this is only the fallback.
            tracing::debug!(service = key, "EndpointSlice cache behind our writes; waiting");
            return Ok(Action::RequeueAfter(Duration::from_millis(500)));
        }
        let trigger = self.triggers.take(key);
        let pods = selected_pods(&self.pods, namespace, selector);
        let outcome = self.sync(key, &service, &pods, owned, trigger).await;
        if outcome.is_err()
            && let Some(t) = trigger
        {
            self.triggers.restore(key, t);
        }
        outcome
    }
}

/// The writes one reconcile makes.
#[derive(Default)]
struct Plan {
    create: Vec<EndpointSlice>,
    update: Vec<EndpointSlice>,
    delete: Vec<Arc<EndpointSlice>>,
}

/// The endpoints of one port set: the ports (in Service order) and endpoints by pod.
struct Group {
    ports: Vec<EndpointPort>,
    endpoints: BTreeMap<String, Endpoint>,
}

type PortsKey = Vec<(String, i32, String, Option<String>)>;

fn ports_key(ports: &[EndpointPort]) -> PortsKey {
    let mut key: PortsKey = ports
        .iter()
        .map(|p| {
            (
                p.name.clone().unwrap_or_default(),
                p.port.unwrap_or_default(),
                p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                p.app_protocol.clone(),
            )
        })
        .collect();
    key.sort();
    key
}

/// The identity of an endpoint across syncs: its pod, else its first address.
fn endpoint_key(e: &Endpoint) -> String {
    match e.target_ref.as_ref().and_then(|r| r.uid.as_deref()) {
        Some(uid) if !uid.is_empty() => uid.to_string(),
        _ => e.addresses.first().cloned().unwrap_or_default(),
    }
}

impl EndpointSliceController {
    async fn sync(
        &self,
        key: &str,
        service: &Service,
        pods: &[Arc<Pod>],
        owned: Vec<Arc<EndpointSlice>>,
        trigger: Option<jiff::Timestamp>,
    ) -> Result<Action, Error> {
        let families = service_families(service);
        let mut plan = Plan::default();
        let mut by_type: BTreeMap<String, Vec<Arc<EndpointSlice>>> = BTreeMap::new();
        for slice in owned {
            if families.contains(&slice.address_type) {
                by_type.entry(slice.address_type.clone()).or_default().push(slice);
            } else {
                plan.delete.push(slice);
            }
        }
        let labels = slice_labels(service);
        for family in &families {
            let desired = self.desired(service, pods, family);
            let existing = by_type.remove(family).unwrap_or_default();
            self.plan_family(service, family, &labels, desired, existing, &mut plan);
        }
        if plan.create.is_empty() && plan.update.is_empty() && plan.delete.is_empty() {
            return Ok(Action::Done);
        }
        let namespace = service.metadata.namespace.as_deref().unwrap_or("default");
        let api = self.ctx.client.api::<EndpointSlice>(Some(namespace));
        let stamp = |mut s: EndpointSlice| {
            let annotations = s.metadata.annotations.get_or_insert_with(BTreeMap::new);
            match trigger {
                Some(t) => annotations.insert(TRIGGER_TIME_ANNOTATION.to_string(), t.to_string()),
                None => annotations.remove(TRIGGER_TIME_ANNOTATION),
            };
            if annotations.is_empty() {
                s.metadata.annotations = None;
            }
            s
        };
        let (created, updated, deleted) = (plan.create.len(), plan.update.len(), plan.delete.len());
        // Create and update before deleting, so the Service never has fewer endpoints than needed.
        for slice in plan.create {
            match api.create(&stamp(slice)).await {
                Ok(s) => self.tracker.written(key, &s),
                // The namespace is being deleted.
                Err(e) if e.code() == Some(403) || e.is_not_found() => return Ok(Action::Done),
                Err(e) => return Err(e.into()),
            }
        }
        for slice in plan.update {
            let s = api.update(&stamp(slice)).await?;
            self.tracker.written(key, &s);
        }
        for slice in plan.delete {
            delete_slice(&api, &slice).await?;
            self.tracker.deleted(key, &slice);
        }
        tracing::debug!(service = key, created, updated, deleted, "reconciled EndpointSlices");
        Ok(Action::Done)
    }

    /// The desired endpoints of one address family, by port set.
    fn desired(&self, service: &Service, pods: &[Arc<Pod>], family: &str) -> BTreeMap<PortsKey, Group> {
        let spec = service.spec.clone().unwrap_or_default();
        let publish = spec.publish_not_ready_addresses == Some(true);
        let service_ports = spec.ports.unwrap_or_default();
        let mut groups: BTreeMap<PortsKey, Group> = BTreeMap::new();
        for pod in pods {
            // Terminating pods stay in slices, flagged, so consumers can drain them.
            if !include_pod(pod, true) {
                continue;
            }
            let Some(ip) = pod_ip(pod, family) else { continue };
            let node_name = pod.spec.as_ref().and_then(|s| s.node_name.clone()).filter(|n| !n.is_empty());
            let zone = node_name
                .as_deref()
                .and_then(|n| self.nodes.get(n))
                .and_then(|n| n.metadata.labels.as_ref().and_then(|l| l.get(ZONE_LABEL).cloned()))
                .filter(|z| !z.is_empty());
            let serving = pod_ready(pod);
            let terminating = pod.metadata.deletion_timestamp.is_some();
            let endpoint = Endpoint {
                addresses: vec![ip],
                conditions: Some(EndpointConditions {
                    // Never ready while terminating, unless not-ready addresses are published.
                    ready: Some(publish || (serving && !terminating)),
                    serving: Some(serving),
                    terminating: Some(terminating),
                }),
                hostname: hostname_for(pod, service),
                node_name,
                target_ref: Some(pod_reference(pod)),
                zone,
                ..Default::default()
            };
            let ports: Vec<EndpointPort> = service_ports
                .iter()
                .filter_map(|sp| {
                    let number = find_port(pod, sp)?;
                    Some(EndpointPort {
                        name: Some(sp.name.clone().unwrap_or_default()),
                        port: Some(number),
                        protocol: Some(sp.protocol.clone().unwrap_or_else(|| "TCP".into())),
                        app_protocol: sp.app_protocol.clone(),
                    })
                })
                .collect();
            let group = groups
                .entry(ports_key(&ports))
                .or_insert_with(|| Group { ports: ports.clone(), endpoints: BTreeMap::new() });
            group.endpoints.insert(endpoint_key(&endpoint), endpoint);
        }
        groups
    }

    /// Plans the writes that turn one family's `existing` slices into `desired`: endpoints
    /// stay in the slice that has them, slices being changed anyway are filled first, new
    /// slices take the rest, emptied slices go.
    fn plan_family(
        &self,
        service: &Service,
        family: &str,
        labels: &BTreeMap<String, String>,
        mut desired: BTreeMap<PortsKey, Group>,
        mut existing: Vec<Arc<EndpointSlice>>,
        plan: &mut Plan,
    ) {
        existing.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
        // (original, proposed, changed)
        let mut kept: Vec<(Arc<EndpointSlice>, EndpointSlice, bool)> = Vec::new();
        let mut dropped: Vec<Arc<EndpointSlice>> = Vec::new();
        for slice in existing {
            let key = ports_key(slice.ports.as_deref().unwrap_or_default());
            let Some(group) = desired.get_mut(&key) else {
                dropped.push(slice);
                continue;
            };
            let endpoints: Vec<Endpoint> =
                slice.endpoints.iter().filter_map(|e| group.endpoints.remove(&endpoint_key(e))).collect();
            let mut proposed = (*slice).clone();
            let changed = endpoints != slice.endpoints || proposed.metadata.labels.as_ref() != Some(labels);
            proposed.endpoints = endpoints;
            proposed.metadata.labels = Some(labels.clone());
            kept.push((slice, proposed, changed));
        }
        // Slices already being written take new endpoints first, so fewer slices are touched.
        kept.sort_by_key(|(_, _, changed)| !changed);
        for (key, group) in desired {
            let mut rest: Vec<Endpoint> = group.endpoints.into_values().collect();
            rest.reverse();
            for (_, proposed, changed) in kept.iter_mut() {
                if ports_key(proposed.ports.as_deref().unwrap_or_default()) != key {
                    continue;
                }
                while proposed.endpoints.len() < self.max_per_slice
                    && let Some(e) = rest.pop()
                {
                    proposed.endpoints.push(e);
                    *changed = true;
                }
            }
            rest.reverse();
            for chunk in rest.chunks(self.max_per_slice) {
                plan.create.push(new_slice(service, family, labels, &group.ports, chunk.to_vec()));
            }
        }
        let mut remaining = 0;
        for (original, proposed, changed) in kept {
            if proposed.endpoints.is_empty() {
                dropped.push(original);
            } else {
                remaining += 1;
                if changed {
                    plan.update.push(proposed);
                }
            }
        }
        // A Service without endpoints keeps exactly one empty placeholder slice.
        if remaining == 0 && plan.create.iter().all(|s| s.address_type != family) {
            dropped.sort_by_key(|s| !(s.endpoints.is_empty() && s.ports.as_ref().is_none_or(Vec::is_empty)));
            if dropped.is_empty() {
                plan.create.push(new_slice(service, family, labels, &[], Vec::new()));
            } else {
                let reused = dropped.remove(0);
                let mut placeholder = (*reused).clone();
                placeholder.endpoints = Vec::new();
                placeholder.ports = None;
                placeholder.metadata.labels = Some(labels.clone());
                if !reused.endpoints.is_empty()
                    || reused.ports.as_ref().is_some_and(|p| !p.is_empty())
                    || reused.metadata.labels.as_ref() != Some(labels)
                {
                    plan.update.push(placeholder);
                }
            }
        }
        plan.delete.extend(dropped);
    }
}

/// A slice's labels: the Service's, plus the service-name, managed-by and headless labels.
fn slice_labels(service: &Service) -> BTreeMap<String, String> {
    let mut labels = service.metadata.labels.clone().unwrap_or_default();
    labels.remove(SERVICE_NAME_LABEL);
    labels.remove(MANAGED_BY_LABEL);
    labels.remove(HEADLESS_LABEL);
    if crate::controllers::endpoints::is_headless(service) {
        labels.insert(HEADLESS_LABEL.to_string(), String::new());
    }
    labels.insert(SERVICE_NAME_LABEL.to_string(), service.metadata.name.clone().unwrap_or_default());
    labels.insert(MANAGED_BY_LABEL.to_string(), CONTROLLER_NAME.to_string());
    labels
}

fn new_slice(
    service: &Service,
    family: &str,
    labels: &BTreeMap<String, String>,
    ports: &[EndpointPort],
    endpoints: Vec<Endpoint>,
) -> EndpointSlice {
    EndpointSlice {
        metadata: ObjectMeta {
            generate_name: Some(format!("{}-", service.metadata.name.as_deref().unwrap_or("endpointslice"))),
            namespace: service.metadata.namespace.clone(),
            labels: Some(labels.clone()),
            owner_references: Some(vec![controller_reference(service)]),
            ..Default::default()
        },
        address_type: family.to_string(),
        endpoints,
        ports: (!ports.is_empty()).then(|| ports.to_vec()),
    }
}

async fn delete_slice(api: &rkube_client::Api<EndpointSlice>, slice: &EndpointSlice) -> Result<(), Error> {
    let name = slice.metadata.name.as_deref().unwrap_or_default();
    let params = DeleteParams { precondition_uid: slice.metadata.uid.clone(), ..Default::default() };
    match api.delete(name, &params).await {
        Ok(()) => Ok(()),
        // Already gone, or replaced by a slice of the same name.
        Err(e) if e.is_not_found() || e.is_conflict() => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// What the cache must show before a Service's slices may be recomputed.
#[derive(Debug, Clone)]
enum Expect {
    /// The slice at this resourceVersion or later.
    AtLeast(String),
    /// The slice gone.
    Gone,
}

/// The writes of each Service not yet seen in the cache (Kubernetes' endpointSliceTracker):
/// a sync on a cache that has not caught up with our own creations would create them again.
#[derive(Default)]
struct SliceTracker {
    pending: Mutex<HashMap<String, Pending>>,
}

/// Slice name -> what the cache must show, and since when.
type Pending = HashMap<String, (Expect, Instant)>;

impl SliceTracker {
    fn with<T>(&self, f: impl FnOnce(&mut HashMap<String, Pending>) -> T) -> T {
        f(&mut self.pending.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn written(&self, key: &str, slice: &EndpointSlice) {
        let (Some(name), Some(rv)) = (slice.metadata.name.clone(), slice.metadata.resource_version.clone()) else {
            return;
        };
        self.with(|m| m.entry(key.to_string()).or_default().insert(name, (Expect::AtLeast(rv), Instant::now())));
    }

    fn deleted(&self, key: &str, slice: &EndpointSlice) {
        let Some(name) = slice.metadata.name.clone() else { return };
        self.with(|m| m.entry(key.to_string()).or_default().insert(name, (Expect::Gone, Instant::now())));
    }

    fn forget(&self, key: &str) {
        self.with(|m| m.remove(key));
    }

    /// Whether `cached` (the Service's slices in the cache) still lacks one of our writes;
    /// expectations that are met or too old are dropped.
    fn stale(&self, key: &str, cached: &[Arc<EndpointSlice>]) -> bool {
        self.with(|m| {
            let Some(pending) = m.get_mut(key) else { return false };
            pending.retain(|name, (expect, since)| {
                if since.elapsed() > TRACK_TTL {
                    return false;
                }
                let seen = cached.iter().find(|s| s.metadata.name.as_deref() == Some(name.as_str()));
                match (expect, seen) {
                    (Expect::Gone, None) => false,
                    (Expect::Gone, Some(_)) => true,
                    (Expect::AtLeast(_), None) => true,
                    (Expect::AtLeast(rv), Some(s)) => !at_least(s.metadata.resource_version.as_deref(), rv),
                }
            });
            let stale = !pending.is_empty();
            if !stale {
                m.remove(key);
            }
            stale
        })
    }
}

/// Whether resourceVersion `have` is `want` or newer (rkube's are etcd revisions).
fn at_least(have: Option<&str>, want: &str) -> bool {
    match (have.and_then(|h| h.parse::<u64>().ok()), want.parse::<u64>().ok()) {
        (Some(h), Some(w)) => h >= w,
        _ => have == Some(want),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn endpoint(uid: &str) -> Endpoint {
        Endpoint {
            addresses: vec![format!("10.0.0.{}", uid.len())],
            target_ref: Some(k8s_openapi::api::core::v1::ObjectReference {
                uid: Some(uid.into()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn controller(max: usize) -> EndpointSliceController {
        // Stores and a client that are never used by the planning functions under test.
        let client = rkube_client::Client::new("http://127.0.0.1:1").unwrap();
        let config = <crate::Config as clap::Parser>::parse_from(["x"]);
        let ctx = Context {
            recorder: rkube_client::EventRecorder::new(&client, "test", "test"),
            client,
            config: Arc::new(config),
        };
        EndpointSliceController {
            ctx,
            services: Store::new(),
            pods: Store::new(),
            nodes: Store::new(),
            slices: Store::new(),
            triggers: Arc::default(),
            tracker: SliceTracker::default(),
            max_per_slice: max,
        }
    }

    fn service() -> Service {
        serde_json::from_value(json!({"metadata": {"name": "web", "namespace": "ns", "uid": "s1"},
            "spec": {"selector": {"app": "web"}}}))
        .unwrap()
    }

    #[tokio::test]
    async fn endpoints_are_chunked_and_emptied_slices_become_the_placeholder() {
        let c = controller(2);
        let svc = service();
        let labels = slice_labels(&svc);
        let group = |uids: &[&str]| {
            let endpoints = uids.iter().map(|u| (u.to_string(), endpoint(u))).collect();
            BTreeMap::from([(Vec::new(), Group { ports: Vec::new(), endpoints })])
        };
        let mut plan = Plan::default();
        c.plan_family(&svc, "IPv4", &labels, group(&["a", "bb", "ccc"]), Vec::new(), &mut plan);
        assert_eq!(plan.create.iter().map(|s| s.endpoints.len()).collect::<Vec<_>>(), [2, 1]);

        // One existing slice keeps its endpoint and takes the new one; nothing is created.
        let mut existing = new_slice(&svc, "IPv4", &labels, &[], vec![endpoint("a")]);
        existing.metadata.name = Some("web-abcde".into());
        let existing = Arc::new(existing);
        let mut plan = Plan::default();
        c.plan_family(&svc, "IPv4", &labels, group(&["a", "bb"]), vec![existing.clone()], &mut plan);
        assert!(plan.create.is_empty() && plan.delete.is_empty());
        assert_eq!(plan.update.len(), 1);
        assert_eq!(plan.update[0].endpoints.len(), 2);

        // Unchanged: no writes.
        let mut plan = Plan::default();
        c.plan_family(&svc, "IPv4", &labels, group(&["a"]), vec![existing.clone()], &mut plan);
        assert!(plan.create.is_empty() && plan.update.is_empty() && plan.delete.is_empty());

        // No endpoints left: the slice is reused as the placeholder rather than replaced.
        let mut plan = Plan::default();
        c.plan_family(&svc, "IPv4", &labels, BTreeMap::new(), vec![existing], &mut plan);
        assert!(plan.create.is_empty() && plan.delete.is_empty());
        assert!(plan.update[0].endpoints.is_empty());
    }

    #[test]
    fn the_tracker_waits_for_our_writes() {
        let t = SliceTracker::default();
        let mut s = EndpointSlice::default();
        s.metadata.name = Some("web-1".into());
        s.metadata.resource_version = Some("10".into());
        t.written("ns/web", &s);
        assert!(t.stale("ns/web", &[]));
        let mut old = s.clone();
        old.metadata.resource_version = Some("9".into());
        assert!(t.stale("ns/web", &[Arc::new(old)]));
        assert!(!t.stale("ns/web", &[Arc::new(s.clone())]));
        t.deleted("ns/web", &s);
        assert!(t.stale("ns/web", &[Arc::new(s)]));
        assert!(!t.stale("ns/web", &[]));
    }
}
