//! The control side: informers on Ingresses, IngressClasses, Services, EndpointSlices and TLS
//! Secrets; a loop that rebuilds the routing table whenever something it depends on changes
//! (changes to Services and Secrets no served Ingress names are ignored); the IngressClass
//! created at start; and a worker that writes `status.loadBalancer` of the Ingresses served
//! when it differs from the published addresses.

use crate::metrics::Metrics;
use crate::routes::Router;
use crate::table::{self, ClassPolicy, SERVICE_NAME_LABEL, Sources};
use crate::tls::CertCache;
use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass, IngressClassSpec, IngressLoadBalancerIngress};
use rkube_client::{Backoff, Client, ClientError, Event, Informer, ListParams, PatchType, WorkQueue, object_key};
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

/// Which Service and Secret keys the current table depends on, and those seen changing while
/// a table was being built (whose relevance is known only once it is built).
#[derive(Default)]
struct InterestState {
    services: HashSet<String>,
    secrets: HashSet<String>,
    building: bool,
    missed: Vec<String>,
}

/// Decides which Service, EndpointSlice and Secret changes need a rebuild.
#[derive(Default)]
pub struct Interest(Mutex<InterestState>);

impl Interest {
    fn lock(&self) -> MutexGuard<'_, InterestState> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// True when a change to the Service (or its slices) `key` needs a rebuild.
    pub fn service_changed(&self, key: &str) -> bool {
        let mut s = self.lock();
        if s.services.contains(key) {
            return true;
        }
        if s.building {
            s.missed.push(format!("s:{key}"));
        }
        false
    }

    /// True when a change to the Secret `key` needs a rebuild.
    pub fn secret_changed(&self, key: &str) -> bool {
        let mut s = self.lock();
        if s.secrets.contains(key) {
            return true;
        }
        if s.building {
            s.missed.push(format!("t:{key}"));
        }
        false
    }

    fn begin_build(&self) {
        let mut s = self.lock();
        s.building = true;
        s.missed.clear();
    }

    /// Records what the new table depends on; true when something it depends on changed
    /// while it was being built.
    fn end_build(&self, services: HashSet<String>, secrets: HashSet<String>) -> bool {
        let mut s = self.lock();
        s.services = services;
        s.secrets = secrets;
        s.building = false;
        let missed = std::mem::take(&mut s.missed);
        missed.iter().any(|m| match m.split_at(2) {
            ("s:", key) => s.services.contains(key),
            (_, key) => s.secrets.contains(key),
        })
    }
}

/// What the controller needs besides the API client.
pub struct ControllerConfig {
    /// Which Ingresses are ours.
    pub policy: ClassPolicy,
    /// Namespace to watch; None for all.
    pub namespace: Option<String>,
    /// status.loadBalancer.ingress to publish; None to leave status alone.
    pub publish: Option<Vec<IngressLoadBalancerIngress>>,
    /// `--default-ssl-certificate`.
    pub default_cert: Option<String>,
}

/// The running control side.
pub struct Controller {
    client: Client,
    sources: Sources,
    config: ControllerConfig,
    router: Arc<Router>,
    metrics: Arc<Metrics>,
    wake: Arc<Notify>,
    interest: Arc<Interest>,
    status_queue: WorkQueue<String>,
    /// resourceVersion each Ingress had when its status was last written, so a cache that
    /// has not caught up yet does not cause a second write.
    patched_from: Mutex<HashMap<String, String>>,
    built: watch::Sender<bool>,
}

/// The status entries for `addresses`: IPs as `ip`, names as `hostname`.
pub fn load_balancer_status(addresses: &[String]) -> Vec<IngressLoadBalancerIngress> {
    addresses
        .iter()
        .map(|a| match a.parse::<IpAddr>() {
            Ok(_) => IngressLoadBalancerIngress { ip: Some(a.clone()), ..Default::default() },
            Err(_) => IngressLoadBalancerIngress { hostname: Some(a.clone()), ..Default::default() },
        })
        .collect()
}

impl Controller {
    /// Starts the informers, the rebuild loop, the status worker and the IngressClass
    /// creation, all stopping when `cancel` fires.
    pub fn start(
        client: Client,
        config: ControllerConfig,
        router: Arc<Router>,
        metrics: Arc<Metrics>,
        cancel: CancellationToken,
    ) -> Arc<Controller> {
        let ns = config.namespace.as_deref();
        let mut ingresses = Informer::<Ingress>::new(client.api(ns), ListParams::default());
        let mut classes = Informer::<IngressClass>::new(client.api(None), ListParams::default());
        let mut services = Informer::<Service>::new(client.api(ns), ListParams::default());
        let mut slices = Informer::<EndpointSlice>::new(client.api(ns), ListParams::default());
        let mut secrets = Informer::<Secret>::new(client.api(ns), ListParams::fields("type=kubernetes.io/tls"));
        let sources = Sources {
            ingresses: ingresses.store(),
            classes: classes.store(),
            services: services.store(),
            slices: slices.store(),
            secrets: secrets.store(),
        };
        sources.slices.add_index(table::BY_SERVICE_INDEX, table::slice_service);
        let wake = Arc::new(Notify::new());
        let interest = Arc::new(Interest::default());
        let status_queue = WorkQueue::new();

        let (w, q) = (wake.clone(), status_queue.clone());
        ingresses.on_event(move |e| match e {
            // A status-only change (ours, typically) cannot change routing.
            Event::Updated { old, new }
                if old.spec == new.spec && old.metadata.annotations == new.metadata.annotations =>
            {
                q.add(object_key(&new.metadata))
            }
            _ => w.notify_one(),
        });
        let w = wake.clone();
        classes.on_event(move |_| w.notify_one());
        let (w, i) = (wake.clone(), interest.clone());
        services.on_event(move |e| {
            let (Event::Added(s) | Event::Updated { new: s, .. } | Event::Deleted(s)) = e;
            if i.service_changed(&object_key(&s.metadata)) {
                w.notify_one();
            }
        });
        let (w, i) = (wake.clone(), interest.clone());
        slices.on_event(move |e| {
            let (Event::Added(s) | Event::Updated { new: s, .. } | Event::Deleted(s)) = e;
            let service = s.metadata.labels.as_ref().and_then(|l| l.get(SERVICE_NAME_LABEL));
            if let (Some(ns), Some(service)) = (s.metadata.namespace.as_deref(), service)
                && i.service_changed(&format!("{ns}/{service}"))
            {
                w.notify_one();
            }
        });
        let (w, i) = (wake.clone(), interest.clone());
        secrets.on_event(move |e| {
            let (Event::Added(s) | Event::Updated { new: s, .. } | Event::Deleted(s)) = e;
            if i.secret_changed(&object_key(&s.metadata)) {
                w.notify_one();
            }
        });

        let controller = Arc::new(Controller {
            client,
            sources,
            config,
            router,
            metrics,
            wake,
            interest,
            status_queue,
            patched_from: Mutex::new(HashMap::new()),
            built: watch::channel(false).0,
        });
        tokio::spawn(ingresses.run(cancel.clone()));
        tokio::spawn(classes.run(cancel.clone()));
        tokio::spawn(services.run(cancel.clone()));
        tokio::spawn(slices.run(cancel.clone()));
        tokio::spawn(secrets.run(cancel.clone()));
        tokio::spawn(controller.clone().ensure_class(cancel.clone()));
        tokio::spawn(controller.clone().rebuild_loop(cancel.clone()));
        if controller.config.publish.is_some() {
            tokio::spawn(controller.clone().status_worker());
        }
        let queue = controller.status_queue.clone();
        tokio::spawn(async move {
            cancel.cancelled().await;
            queue.shut_down();
        });
        controller
    }

    /// Waits until the first routing table is in place (every cache listed).
    pub async fn wait_built(&self) {
        let mut rx = self.built.subscribe();
        let _ = rx.wait_for(|b| *b).await;
    }

    /// Creates the IngressClass `--ingress-class` unless it exists, retrying while the API
    /// server is away.
    async fn ensure_class(self: Arc<Self>, cancel: CancellationToken) {
        let api = self.client.api::<IngressClass>(None);
        let policy = &self.config.policy;
        let mut backoff = Backoff::default();
        while !cancel.is_cancelled() {
            let outcome = match api.get_opt(&policy.class_name).await {
                Ok(Some(existing)) => {
                    let controller = existing.spec.as_ref().and_then(|s| s.controller.as_deref()).unwrap_or_default();
                    if controller != policy.controller {
                        tracing::warn!(
                            class = %policy.class_name, controller,
                            "IngressClass exists with another controller; Ingresses of that class are not served"
                        );
                    }
                    return;
                }
                Ok(None) => {
                    let mut class = IngressClass {
                        spec: Some(IngressClassSpec { controller: Some(policy.controller.clone()), parameters: None }),
                        ..Default::default()
                    };
                    class.metadata.name = Some(policy.class_name.clone());
                    api.create(&class).await.map(|_| ())
                }
                Err(e) => Err(e),
            };
            match outcome {
                Ok(()) => {
                    tracing::info!(class = %policy.class_name, controller = %policy.controller, "created IngressClass");
                    return;
                }
                Err(e) if e.is_already_exists() => return,
                Err(e) => {
                    tracing::warn!(class = %policy.class_name, error = %e, "creating IngressClass failed; retrying")
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(backoff.next_delay()) => {}
                _ = cancel.cancelled() => {}
            }
        }
    }

    async fn rebuild_loop(self: Arc<Self>, cancel: CancellationToken) {
        let s = &self.sources;
        tokio::select! {
            _ = async {
                s.ingresses.wait_synced().await;
                s.classes.wait_synced().await;
                s.services.wait_synced().await;
                s.slices.wait_synced().await;
                s.secrets.wait_synced().await;
            } => {}
            _ = cancel.cancelled() => return,
        }
        let mut certs = CertCache::new(crate::tls::provider());
        loop {
            self.rebuild(&mut certs);
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = cancel.cancelled() => return,
            }
        }
    }

    fn rebuild(&self, certs: &mut CertCache) {
        let started = Instant::now();
        self.interest.begin_build();
        let built = table::build(&self.sources, &self.config.policy, certs, self.config.default_cert.as_deref());
        let routes = built.table.route_count();
        let handled: Vec<String> = built.handled.iter().map(|i| object_key(&i.metadata)).collect();
        self.router.swap(built.table);
        if self.interest.end_build(built.services, built.secrets) {
            self.wake.notify_one();
        }
        let took = started.elapsed();
        self.metrics.rebuilds.fetch_add(1, Ordering::Relaxed);
        self.metrics.last_rebuild_micros.store(took.as_micros() as u64, Ordering::Relaxed);
        self.metrics.routes.store(routes as u64, Ordering::Relaxed);
        self.metrics.ingresses.store(handled.len() as u64, Ordering::Relaxed);
        tracing::debug!(
            ingresses = handled.len(),
            routes,
            backends = built.backends,
            micros = took.as_micros() as u64,
            "routing table rebuilt"
        );
        if self.config.publish.is_some() {
            for key in handled {
                self.status_queue.add(key);
            }
        }
        self.built.send_replace(true);
    }

    async fn status_worker(self: Arc<Self>) {
        while let Some(key) = self.status_queue.get().await {
            match self.sync_status(&key).await {
                Ok(()) => self.status_queue.forget(&key),
                Err(e) => {
                    tracing::warn!(ingress = %key, error = %e, "writing Ingress status failed; retrying");
                    self.status_queue.add_rate_limited(key.clone());
                }
            }
            self.status_queue.done(&key);
        }
    }

    async fn sync_status(&self, key: &str) -> Result<(), ClientError> {
        let Some(publish) = &self.config.publish else { return Ok(()) };
        let Some(ingress) = self.sources.ingresses.get(key) else { return Ok(()) };
        if !self.config.policy.handles(&ingress, &self.sources.classes) {
            return Ok(());
        }
        let current = ingress.status.as_ref().and_then(|s| s.load_balancer.as_ref()).and_then(|l| l.ingress.as_ref());
        if current.map(Vec::as_slice).unwrap_or_default() == publish.as_slice() {
            return Ok(());
        }
        let rv = ingress.metadata.resource_version.clone().unwrap_or_default();
        if self.patched().get(key) == Some(&rv) {
            // Written already; the cache has not seen the write yet.
            return Ok(());
        }
        let ns = ingress.metadata.namespace.as_deref().unwrap_or("default");
        let name = ingress.metadata.name.as_deref().unwrap_or_default();
        let patch = json!({"status": {"loadBalancer": {"ingress": publish}}});
        match self.client.api::<Ingress>(Some(ns)).patch_status(name, PatchType::Merge, &patch).await {
            Ok(_) => {}
            Err(e) if e.is_not_found() => return Ok(()),
            Err(e) => return Err(e),
        }
        self.metrics.status_updates.fetch_add(1, Ordering::Relaxed);
        let shown: Vec<&str> = publish.iter().filter_map(|p| p.ip.as_deref().or(p.hostname.as_deref())).collect();
        tracing::info!(ingress = %key, addresses = %shown.join(","), "wrote Ingress status");
        let mut patched = self.patched();
        patched.insert(key.to_string(), rv);
        patched.retain(|k, _| self.sources.ingresses.get(k).is_some());
        Ok(())
    }

    fn patched(&self) -> MutexGuard<'_, HashMap<String, String>> {
        self.patched_from.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_seen_while_building_count_once_the_table_says_they_matter() {
        let i = Interest::default();
        assert!(!i.service_changed("ns/web"));
        assert!(!i.end_build(HashSet::from(["ns/web".to_string()]), HashSet::new()), "nothing missed");
        assert!(i.service_changed("ns/web"));
        assert!(!i.service_changed("ns/other"));
        i.begin_build();
        assert!(!i.service_changed("ns/new"));
        assert!(!i.secret_changed("ns/cert"));
        assert!(!i.secret_changed("ns/unrelated"));
        let rebuild = i.end_build(HashSet::from(["ns/new".to_string()]), HashSet::new());
        assert!(rebuild, "ns/new changed during the build that started depending on it");
        i.begin_build();
        i.secret_changed("ns/cert");
        assert!(i.end_build(HashSet::new(), HashSet::from(["ns/cert".to_string()])));
        i.begin_build();
        i.secret_changed("ns/unrelated");
        assert!(!i.end_build(HashSet::new(), HashSet::from(["ns/cert".to_string()])));
    }

    #[test]
    fn addresses_become_ips_or_hostnames() {
        let s = load_balancer_status(&["10.0.0.1".into(), "fd00::1".into(), "lb.example.com".into()]);
        assert_eq!(s[0].ip.as_deref(), Some("10.0.0.1"));
        assert_eq!(s[1].ip.as_deref(), Some("fd00::1"));
        assert_eq!(s[2].hostname.as_deref(), Some("lb.example.com"));
        assert_eq!(s[2].ip, None);
    }
}
