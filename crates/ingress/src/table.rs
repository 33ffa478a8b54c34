//! Builds a [`RouteTable`] from the informer caches: which Ingresses are this controller's
//! (by IngressClass), their rules and default backends (oldest Ingress first, so the first
//! to claim a host and path keeps it), each backend's ready endpoints (Service port by number
//! or name -> the EndpointSlices' port of the same name), and the certificates of their
//! `spec.tls`. Pure over the caches: no API calls.

use crate::routes::{Backend, PathKind, RouteTable};
use crate::tls::CertCache;
use k8s_openapi::api::core::v1::{Secret, Service, ServicePort};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressBackend, IngressClass};
use rkube_client::{Store, object_key};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// The label naming the Service an EndpointSlice belongs to.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// The IngressClass annotation that makes a class the default for Ingresses without one.
pub const DEFAULT_CLASS_ANNOTATION: &str = "ingressclass.kubernetes.io/is-default-class";
/// The annotation that named an Ingress' class before `spec.ingressClassName`.
pub const LEGACY_CLASS_ANNOTATION: &str = "kubernetes.io/ingress.class";
/// The EndpointSlice store index by owning Service (`namespace/name`).
pub const BY_SERVICE_INDEX: &str = "service";

/// Index function for [`BY_SERVICE_INDEX`].
pub fn slice_service(slice: &EndpointSlice) -> Vec<String> {
    let name = slice.metadata.labels.as_ref().and_then(|l| l.get(SERVICE_NAME_LABEL));
    match (slice.metadata.namespace.as_deref(), name) {
        (Some(ns), Some(name)) => vec![format!("{ns}/{name}")],
        _ => Vec::new(),
    }
}

/// Which Ingresses are ours.
#[derive(Debug, Clone)]
pub struct ClassPolicy {
    /// `--ingress-class`: the IngressClass this controller creates and serves.
    pub class_name: String,
    /// `--controller-class`: IngressClasses with this `spec.controller` are ours.
    pub controller: String,
}

impl ClassPolicy {
    /// True when `ingress` belongs to this controller: its class (`spec.ingressClassName`,
    /// else the legacy annotation) is one whose controller is ours, or it names no class and
    /// one of our classes is marked the default.
    pub fn handles(&self, ingress: &Ingress, classes: &Store<IngressClass>) -> bool {
        let named = ingress.spec.as_ref().and_then(|s| s.ingress_class_name.as_deref()).filter(|c| !c.is_empty());
        if let Some(class) = named {
            return match classes.get(class) {
                Some(c) => self.is_ours(&c),
                // Our own class before the cache has it (or if creating it failed).
                None => class == self.class_name,
            };
        }
        let legacy = ingress.metadata.annotations.as_ref().and_then(|a| a.get(LEGACY_CLASS_ANNOTATION));
        if let Some(class) = legacy {
            return *class == self.class_name;
        }
        classes.list().iter().any(|c| self.is_ours(c) && is_default_class(c))
    }

    fn is_ours(&self, class: &IngressClass) -> bool {
        class.spec.as_ref().and_then(|s| s.controller.as_deref()) == Some(self.controller.as_str())
    }
}

fn is_default_class(class: &IngressClass) -> bool {
    class.metadata.annotations.as_ref().and_then(|a| a.get(DEFAULT_CLASS_ANNOTATION)).map(String::as_str)
        == Some("true")
}

/// The caches a table is built from.
#[derive(Clone)]
pub struct Sources {
    /// Ingresses.
    pub ingresses: Store<Ingress>,
    /// IngressClasses.
    pub classes: Store<IngressClass>,
    /// Services.
    pub services: Store<Service>,
    /// EndpointSlices, with the [`BY_SERVICE_INDEX`] index.
    pub slices: Store<EndpointSlice>,
    /// `kubernetes.io/tls` Secrets.
    pub secrets: Store<Secret>,
}

impl Sources {
    /// Empty stores, the slice store indexed by Service.
    pub fn new() -> Sources {
        let slices = Store::new();
        slices.add_index(BY_SERVICE_INDEX, slice_service);
        Sources {
            ingresses: Store::new(),
            classes: Store::new(),
            services: Store::new(),
            slices,
            secrets: Store::new(),
        }
    }
}

impl Default for Sources {
    fn default() -> Self {
        Self::new()
    }
}

/// A built table and what it was built from.
pub struct Built {
    /// The routing table.
    pub table: RouteTable,
    /// The Ingresses it serves, oldest first.
    pub handled: Vec<Arc<Ingress>>,
    /// `namespace/name` of every Service those Ingresses name: changes to others (and to
    /// their EndpointSlices) cannot change the table.
    pub services: HashSet<String>,
    /// `namespace/name` of every Secret they (or `--default-ssl-certificate`) name.
    pub secrets: HashSet<String>,
    /// Number of distinct backends.
    pub backends: usize,
}

/// A Service port as an Ingress backend names it.
#[derive(Clone, PartialEq, Eq, Hash)]
enum PortRef {
    Number(i32),
    Name(String),
}

/// Builds the table. `default_cert` is `--default-ssl-certificate` (`namespace/name`).
pub fn build(sources: &Sources, policy: &ClassPolicy, certs: &mut CertCache, default_cert: Option<&str>) -> Built {
    let mut handled: Vec<Arc<Ingress>> =
        sources.ingresses.list().into_iter().filter(|i| policy.handles(i, &sources.classes)).collect();
    handled.sort_by(|a, b| {
        (&a.metadata.creation_timestamp, object_key(&a.metadata))
            .cmp(&(&b.metadata.creation_timestamp, object_key(&b.metadata)))
    });
    let mut builder = Builder { sources, backends: HashMap::new(), services: HashSet::new() };
    let mut table = RouteTable::default();
    let mut secrets = HashSet::new();
    for ingress in &handled {
        let ns = ingress.metadata.namespace.as_deref().unwrap_or("default");
        let Some(spec) = &ingress.spec else { continue };
        let default = spec.default_backend.as_ref().map(|b| builder.backend(ns, b));
        if let Some(d) = &default {
            table.set_default(d.clone());
        }
        for rule in spec.rules.iter().flatten() {
            let host = table.host_mut(rule.host.as_deref().unwrap_or_default());
            if let Some(d) = &default {
                host.set_default(d.clone());
            }
            for path in rule.http.iter().flat_map(|h| &h.paths) {
                let kind = if path.path_type == "Exact" { PathKind::Exact } else { PathKind::Prefix };
                let value = path.path.as_deref().filter(|p| !p.is_empty()).unwrap_or("/");
                let backend = builder.backend(ns, &path.backend);
                if !host.add(kind, value, backend) {
                    tracing::debug!(ingress = %object_key(&ingress.metadata), path = value, "path already routed by an older Ingress");
                }
            }
        }
        for tls in spec.tls.iter().flatten() {
            let Some(name) = tls.secret_name.as_deref().filter(|n| !n.is_empty()) else { continue };
            let key = format!("{ns}/{name}");
            secrets.insert(key.clone());
            let Some(cert) = load_cert(sources, certs, &key) else { continue };
            match tls.hosts.as_deref() {
                Some(hosts) if !hosts.is_empty() => hosts.iter().for_each(|h| table.certs.add(h, cert.clone())),
                _ => table.certs.set_default(cert),
            }
        }
    }
    if let Some(key) = default_cert {
        secrets.insert(key.to_string());
        if let Some(cert) = load_cert(sources, certs, key) {
            table.certs.set_default(cert);
        }
    }
    certs.retain(&secrets);
    let backends = builder.backends.len();
    Built { table, handled, services: builder.services, secrets, backends }
}

fn load_cert(sources: &Sources, certs: &mut CertCache, key: &str) -> Option<Arc<rustls::sign::CertifiedKey>> {
    let Some(secret) = sources.secrets.get(key) else {
        tracing::warn!(secret = key, "TLS secret not found (or not of type kubernetes.io/tls)");
        return None;
    };
    match certs.get(key, &secret) {
        Ok(c) => Some(c),
        Err(e) => {
            tracing::warn!(secret = key, error = %e, "TLS secret unusable");
            None
        }
    }
}

/// Resolves backends, once per distinct Service port so routes share round-robin state.
struct Builder<'a> {
    sources: &'a Sources,
    backends: HashMap<(String, String, PortRef), Arc<Backend>>,
    services: HashSet<String>,
}

impl Builder<'_> {
    fn backend(&mut self, ns: &str, backend: &IngressBackend) -> Arc<Backend> {
        let Some(svc) = &backend.service else {
            // Resource backends (object storage and the like) are not something a proxy can serve.
            return Arc::new(Backend::new(format!("{ns}/<resource backend>"), Vec::new(), 0));
        };
        let port = svc.port.as_ref();
        let port = match (port.and_then(|p| p.name.clone()).filter(|n| !n.is_empty()), port.and_then(|p| p.number)) {
            (Some(name), _) => PortRef::Name(name),
            (None, Some(n)) => PortRef::Number(n),
            (None, None) => PortRef::Number(0),
        };
        let key = (ns.to_string(), svc.name.clone(), port);
        if let Some(b) = self.backends.get(&key) {
            return b.clone();
        }
        let service_key = format!("{ns}/{}", svc.name);
        self.services.insert(service_key.clone());
        let shown = match &key.2 {
            PortRef::Number(n) => format!("{service_key}:{n}"),
            PortRef::Name(n) => format!("{service_key}:{n}"),
        };
        let endpoints = self.endpoints(&service_key, &key.2);
        let backend = Arc::new(Backend::new(shown, endpoints, rand::random::<u32>() as usize));
        self.backends.insert(key, backend.clone());
        backend
    }

    /// The ready endpoints of a Service port; when none is ready, the serving ones that are
    /// terminating (as kube-proxy does, so a rollout's last old pod still answers).
    fn endpoints(&self, service_key: &str, port: &PortRef) -> Vec<SocketAddr> {
        let Some(service) = self.sources.services.get(service_key) else { return Vec::new() };
        let Some(service_port) = find_service_port(&service, port) else { return Vec::new() };
        let port_name = service_port.name.clone().unwrap_or_default();
        let protocol = service_port.protocol.as_deref().unwrap_or("TCP");
        let mut ready = BTreeSet::new();
        let mut fallback = BTreeSet::new();
        for slice in self.sources.slices.by_index(BY_SERVICE_INDEX, service_key) {
            if slice.address_type != "IPv4" && slice.address_type != "IPv6" {
                continue;
            }
            let slice_port = slice.ports.iter().flatten().find(|p| {
                p.name.as_deref().unwrap_or_default() == port_name && p.protocol.as_deref().unwrap_or("TCP") == protocol
            });
            let Some(number) = slice_port.and_then(|p| p.port).and_then(|p| u16::try_from(p).ok()) else { continue };
            for endpoint in &slice.endpoints {
                let Some(ip) = endpoint.addresses.first().and_then(|a| a.parse::<IpAddr>().ok()) else { continue };
                let conditions = endpoint.conditions.as_ref();
                // Unset conditions mean "ready" and "serving" (the API's documented reading).
                let is_ready = conditions.and_then(|c| c.ready).unwrap_or(true);
                let serving = conditions.and_then(|c| c.serving).unwrap_or(is_ready);
                let terminating = conditions.and_then(|c| c.terminating).unwrap_or(false);
                if is_ready {
                    ready.insert(SocketAddr::new(ip, number));
                } else if serving && terminating {
                    fallback.insert(SocketAddr::new(ip, number));
                }
            }
        }
        if ready.is_empty() { fallback.into_iter().collect() } else { ready.into_iter().collect() }
    }
}

fn find_service_port<'a>(service: &'a Service, port: &PortRef) -> Option<&'a ServicePort> {
    let ports = service.spec.as_ref()?.ports.as_ref()?;
    ports.iter().find(|p| match port {
        PortRef::Number(n) => p.port == *n,
        PortRef::Name(n) => p.name.as_deref() == Some(n.as_str()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj<T: k8s_openapi::serde::de::DeserializeOwned>(v: serde_json::Value) -> Arc<T> {
        Arc::new(serde_json::from_value(v).unwrap())
    }

    fn policy() -> ClassPolicy {
        ClassPolicy { class_name: "rkube".into(), controller: "rkube.io/ingress-controller".into() }
    }

    fn class(name: &str, controller: &str, default: bool) -> Arc<IngressClass> {
        let annotations = if default { json!({DEFAULT_CLASS_ANNOTATION: "true"}) } else { json!({}) };
        obj(json!({"metadata": {"name": name, "annotations": annotations}, "spec": {"controller": controller}}))
    }

    fn ingress(name: &str, created: &str, spec: serde_json::Value) -> Arc<Ingress> {
        obj(json!({"metadata": {"name": name, "namespace": "ns", "creationTimestamp": created}, "spec": spec}))
    }

    fn sources() -> Sources {
        let s = Sources::new();
        s.services.insert(obj(json!({"metadata": {"name": "web", "namespace": "ns"}, "spec": {"ports": [
            {"name": "http", "port": 80, "targetPort": 8080},
            {"name": "admin", "port": 81, "targetPort": "admin"},
        ]}})));
        s.slices.insert(obj(json!({
            "metadata": {"name": "web-1", "namespace": "ns", "labels": {SERVICE_NAME_LABEL: "web"}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}, {"name": "admin", "port": 9000}],
            "endpoints": [
                {"addresses": ["10.0.0.1"], "conditions": {"ready": true}},
                {"addresses": ["10.0.0.2"]},
                {"addresses": ["10.0.0.3"], "conditions": {"ready": false, "serving": true, "terminating": true}},
                {"addresses": ["10.0.0.4"], "conditions": {"ready": false}},
            ],
        })));
        s.slices.insert(obj(json!({
            "metadata": {"name": "web-2", "namespace": "ns", "labels": {SERVICE_NAME_LABEL: "web"}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080}],
            "endpoints": [{"addresses": ["10.0.0.1"]}, {"addresses": ["10.0.0.5"]}],
        })));
        s.classes.insert(class("rkube", "rkube.io/ingress-controller", false));
        s.classes.insert(class("other", "example.com/other", false));
        s
    }

    fn build_now(s: &Sources) -> Built {
        build(s, &policy(), &mut CertCache::new(crate::tls::provider()), None)
    }

    fn endpoints(b: &Built, host: &str, path: &str) -> Option<Vec<String>> {
        b.table.route(host, path).map(|b| b.endpoints.iter().map(|e| e.to_string()).collect())
    }

    #[test]
    fn classes_decide_which_ingresses_are_ours() {
        let s = sources();
        let rule = |port: serde_json::Value| {
            json!({"rules": [{"http": {"paths": [
            {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": port}}}]}}]})
        };
        let mut spec = rule(json!({"number": 80}));
        spec["ingressClassName"] = json!("rkube");
        s.ingresses.insert(ingress("mine", "2024-01-01T00:00:00Z", spec));
        let mut spec = rule(json!({"number": 80}));
        spec["ingressClassName"] = json!("other");
        s.ingresses.insert(ingress("theirs", "2024-01-01T00:00:00Z", spec));
        s.ingresses.insert(ingress("classless", "2024-01-01T00:00:00Z", rule(json!({"number": 80}))));
        let names = |b: &Built| b.handled.iter().map(|i| i.metadata.name.clone().unwrap()).collect::<Vec<_>>();
        assert_eq!(names(&build_now(&s)), vec!["mine"]);

        s.classes.insert(class("rkube", "rkube.io/ingress-controller", true));
        assert_eq!(names(&build_now(&s)), vec!["classless", "mine"], "our class became the default");

        let legacy: Arc<Ingress> = obj(json!({"metadata": {"name": "legacy", "namespace": "ns",
            "annotations": {LEGACY_CLASS_ANNOTATION: "other"}}, "spec": rule(json!({"number": 80}))}));
        assert!(!policy().handles(&legacy, &s.classes));
        let legacy_ours: Arc<Ingress> = obj(json!({"metadata": {"name": "legacy", "namespace": "ns",
            "annotations": {LEGACY_CLASS_ANNOTATION: "rkube"}}, "spec": rule(json!({"number": 80}))}));
        assert!(policy().handles(&legacy_ours, &s.classes));
    }

    #[test]
    fn backends_resolve_service_ports_to_ready_endpoint_ports() {
        let s = sources();
        s.ingresses.insert(ingress("i", "2024-01-01T00:00:00Z", json!({
            "ingressClassName": "rkube",
            "rules": [{"host": "a.com", "http": {"paths": [
                {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}},
                {"path": "/admin", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"name": "admin"}}}},
                {"path": "/missing", "pathType": "Prefix", "backend": {"service": {"name": "nope", "port": {"number": 80}}}},
                {"path": "/badport", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 99}}}},
            ]}}],
        })));
        let b = build_now(&s);
        assert_eq!(
            endpoints(&b, "a.com", "/x"),
            Some(vec!["10.0.0.1:8080".into(), "10.0.0.2:8080".into(), "10.0.0.5:8080".into()]),
            "ready endpoints of every slice, deduplicated; unready and terminating ones left out"
        );
        assert_eq!(endpoints(&b, "a.com", "/admin"), Some(vec!["10.0.0.1:9000".into(), "10.0.0.2:9000".into()]));
        assert_eq!(endpoints(&b, "a.com", "/missing"), Some(vec![]));
        assert_eq!(endpoints(&b, "a.com", "/badport"), Some(vec![]));
        assert_eq!(b.services, HashSet::from(["ns/web".to_string(), "ns/nope".to_string()]));
        assert_eq!(b.backends, 4);
    }

    #[test]
    fn terminating_serving_endpoints_stand_in_when_none_is_ready() {
        let s = sources();
        s.slices.remove("ns/web-2");
        s.slices.insert(obj(json!({
            "metadata": {"name": "web-1", "namespace": "ns", "labels": {SERVICE_NAME_LABEL: "web"}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080}],
            "endpoints": [{"addresses": ["10.0.0.3"], "conditions": {"ready": false, "serving": true, "terminating": true}}],
        })));
        s.ingresses.insert(ingress(
            "i",
            "2024-01-01T00:00:00Z",
            json!({"ingressClassName": "rkube",
            "defaultBackend": {"service": {"name": "web", "port": {"number": 80}}}}),
        ));
        assert_eq!(endpoints(&build_now(&s), "any", "/"), Some(vec!["10.0.0.3:8080".into()]));
    }

    #[test]
    fn the_oldest_ingress_keeps_a_contested_path_and_the_default_backend() {
        let s = sources();
        s.services.insert(obj(json!({"metadata": {"name": "other", "namespace": "ns"},
            "spec": {"ports": [{"name": "http", "port": 80}]}})));
        let spec = |svc: &str| {
            json!({"ingressClassName": "rkube",
            "defaultBackend": {"service": {"name": svc, "port": {"number": 80}}},
            "rules": [{"host": "a.com", "http": {"paths": [
                {"path": "/p", "pathType": "Exact", "backend": {"service": {"name": svc, "port": {"number": 80}}}}]}}]})
        };
        s.ingresses.insert(ingress("young", "2024-06-01T00:00:00Z", spec("other")));
        s.ingresses.insert(ingress("old", "2024-01-01T00:00:00Z", spec("web")));
        let b = build_now(&s);
        let name = |host: &str, path: &str| b.table.route(host, path).map(|b| b.name.clone());
        assert_eq!(name("a.com", "/p"), Some("ns/web:80".into()));
        assert_eq!(name("zzz", "/"), Some("ns/web:80".into()));
    }
}
