//! The routing table the proxy reads on every request: hosts (exact, then `*.` wildcards, then
//! rules without a host) to paths (Exact, then Prefix by Kubernetes' element-wise rules,
//! longest first) to backends, plus the certificates to serve by SNI. Built whole from the
//! informer caches ([`crate::table`]) and swapped in atomically, so a request never sees a
//! half-applied change. No I/O here.

use rustls::sign::CertifiedKey;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

/// Where a route sends requests: the ready endpoints of one Service port.
#[derive(Debug)]
pub struct Backend {
    /// `namespace/service:port`, for logs and error pages.
    pub name: String,
    /// Ready endpoints (address and the Service port's target port), deduplicated and sorted.
    pub endpoints: Vec<SocketAddr>,
    /// Round-robin position.
    next: AtomicUsize,
}

impl Backend {
    /// A backend over `endpoints`; round-robin starts at `start` so that a table rebuilt
    /// often does not keep sending the first request after each rebuild to the same endpoint.
    pub fn new(name: String, endpoints: Vec<SocketAddr>, start: usize) -> Backend {
        Backend { name, endpoints, next: AtomicUsize::new(start) }
    }

    /// The endpoints in the order this request should try them: round-robin picks the first,
    /// the others follow in turn (for retries after a connect failure).
    pub fn rotation(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        let n = self.endpoints.len();
        let start = if n == 0 { 0 } else { self.next.fetch_add(1, Ordering::Relaxed) % n };
        (0..n).map(move |i| self.endpoints[(start + i) % n])
    }
}

/// The paths of one host.
#[derive(Debug, Default)]
pub struct HostRoutes {
    /// Exact paths.
    exact: HashMap<String, Arc<Backend>>,
    /// Prefix paths, keyed without trailing slashes (so `/` is the empty key).
    prefix: HashMap<String, Arc<Backend>>,
    /// The `spec.defaultBackend` of the Ingress that first defined this host, for paths that
    /// match none of its rules.
    default_backend: Option<Arc<Backend>>,
}

/// How a rule's path matches, as `pathType` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathKind {
    /// The whole path, case-sensitively.
    Exact,
    /// Whole `/`-separated elements (ImplementationSpecific is treated as this too).
    Prefix,
}

impl HostRoutes {
    /// Adds a path; the first Ingress to claim a path keeps it (callers add oldest first).
    /// Returns false when the path was already taken.
    pub fn add(&mut self, kind: PathKind, path: &str, backend: Arc<Backend>) -> bool {
        let (map, key) = match kind {
            PathKind::Exact => (&mut self.exact, path.to_string()),
            PathKind::Prefix => (&mut self.prefix, prefix_key(path).to_string()),
        };
        match map.entry(key) {
            std::collections::hash_map::Entry::Occupied(_) => false,
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(backend);
                true
            }
        }
    }

    /// Sets the host's default backend unless one is set already.
    pub fn set_default(&mut self, backend: Arc<Backend>) {
        self.default_backend.get_or_insert(backend);
    }

    /// The backend for `path`: an Exact match, else the longest Prefix match, else the host's
    /// default backend. An Exact path never loses to a Prefix one: a Prefix that matches is
    /// never longer than the request path, which an Exact match equals.
    pub fn lookup(&self, path: &str) -> Option<&Arc<Backend>> {
        if let Some(b) = self.exact.get(path) {
            return Some(b);
        }
        if !self.prefix.is_empty() {
            // The request path's element-wise prefixes, longest first: `/a/b/` -> `/a/b`, `/a`, ``.
            let mut candidate = path.trim_end_matches('/');
            loop {
                if let Some(b) = self.prefix.get(candidate) {
                    return Some(b);
                }
                if candidate.is_empty() {
                    break;
                }
                candidate = &candidate[..candidate.rfind('/').unwrap_or(0)];
            }
        }
        self.default_backend.as_ref()
    }

    /// Number of paths.
    pub fn len(&self) -> usize {
        self.exact.len() + self.prefix.len()
    }

    /// True when the host has no paths.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The key of a Prefix path: Kubernetes ignores a trailing slash (`/foo/` matches `/foo`).
fn prefix_key(path: &str) -> &str {
    path.trim_end_matches('/')
}

/// Certificates by the host names the Ingresses' `spec.tls` gives them.
#[derive(Debug, Default)]
pub struct CertTable {
    exact: HashMap<String, Arc<CertifiedKey>>,
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    /// For clients without SNI or names no Ingress lists: a `spec.tls` entry without hosts,
    /// else `--default-ssl-certificate`.
    default: Option<Arc<CertifiedKey>>,
}

impl CertTable {
    /// Serves `cert` for `host` (`*.example.com` covers one label) unless the host has one.
    pub fn add(&mut self, host: &str, cert: Arc<CertifiedKey>) {
        let host = normalize_host(host);
        match host.strip_prefix("*.") {
            Some(suffix) => self.wildcard.entry(suffix.to_string()).or_insert(cert),
            None => self.exact.entry(host).or_insert(cert),
        };
    }

    /// Serves `cert` to clients no host entry covers, unless a default is set already.
    pub fn set_default(&mut self, cert: Arc<CertifiedKey>) {
        self.default.get_or_insert(cert);
    }

    /// The certificate for the SNI name `server_name` (None: no name given).
    pub fn lookup(&self, server_name: Option<&str>) -> Option<&Arc<CertifiedKey>> {
        let found = server_name.map(normalize_host).and_then(|name| {
            self.exact.get(&name).or_else(|| wildcard_suffix(&name).and_then(|s| self.wildcard.get(s)))
        });
        found.or(self.default.as_ref())
    }

    /// Number of host names with a certificate.
    pub fn len(&self) -> usize {
        self.exact.len() + self.wildcard.len()
    }

    /// True when no host has a certificate.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The whole routing state: built at once, then swapped in.
#[derive(Debug, Default)]
pub struct RouteTable {
    exact_hosts: HashMap<String, HostRoutes>,
    /// `*.example.com` rules, keyed by `example.com`.
    wildcard_hosts: HashMap<String, HostRoutes>,
    /// Rules without a host.
    any_host: HostRoutes,
    /// The oldest handled Ingress' `spec.defaultBackend`: for hosts no rule names, and paths
    /// their host does not route.
    default_backend: Option<Arc<Backend>>,
    /// Certificates by SNI.
    pub certs: CertTable,
}

impl RouteTable {
    /// The paths of `host` (`""` for rules without a host), created on first use.
    pub fn host_mut(&mut self, host: &str) -> &mut HostRoutes {
        let host = normalize_host(host);
        if host.is_empty() {
            return &mut self.any_host;
        }
        match host.strip_prefix("*.") {
            Some(suffix) => self.wildcard_hosts.entry(suffix.to_string()).or_default(),
            None => self.exact_hosts.entry(host).or_default(),
        }
    }

    /// Sets the table-wide default backend unless one is set already.
    pub fn set_default(&mut self, backend: Arc<Backend>) {
        self.default_backend.get_or_insert(backend);
    }

    /// The backend for a request to `host` (the Host header, any port and case allowed) and
    /// `path`. The most specific host wins (exact, then wildcard, then rules without host);
    /// a path it does not route goes to its default backend, else the table's, as in
    /// Kubernetes' "the default backend handles what no rule matches".
    pub fn route(&self, host: &str, path: &str) -> Option<&Arc<Backend>> {
        let host = strip_port(host);
        let group = self.find_host(host).unwrap_or(&self.any_host);
        group.lookup(path).or(self.default_backend.as_ref())
    }

    fn find_host(&self, host: &str) -> Option<&HostRoutes> {
        if host.is_empty() {
            return None;
        }
        // Host names are short; this allocation is cheaper than a case-insensitive hash.
        let lower;
        let host = if host.bytes().any(|b| b.is_ascii_uppercase()) || host.ends_with('.') {
            lower = normalize_host(host);
            lower.as_str()
        } else {
            host
        };
        self.exact_hosts.get(host).or_else(|| wildcard_suffix(host).and_then(|s| self.wildcard_hosts.get(s)))
    }

    /// Number of (host, path) routes.
    pub fn route_count(&self) -> usize {
        self.exact_hosts.values().chain(self.wildcard_hosts.values()).map(HostRoutes::len).sum::<usize>()
            + self.any_host.len()
    }
}

/// A `RouteTable` shared by the proxy (readers, per request) and the controller (swaps in a
/// new one per change).
#[derive(Debug, Default)]
pub struct Router {
    table: RwLock<Arc<RouteTable>>,
}

impl Router {
    /// The current table; requests keep the one they started with.
    pub fn table(&self) -> Arc<RouteTable> {
        self.table.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Replaces the table.
    pub fn swap(&self, table: RouteTable) {
        *self.table.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(table);
    }
}

/// Lower-case, without a trailing dot: DNS names compare case-insensitively.
pub fn normalize_host(host: &str) -> String {
    host.trim_end_matches('.').to_ascii_lowercase()
}

/// The host of a Host header value (`example.com:8080`, `[::1]:80`).
pub fn strip_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

/// What a `*.` wildcard must equal for `host` to match it: everything after the first label
/// (Kubernetes: `*.foo.com` matches `bar.foo.com`, not `foo.com` nor `baz.bar.foo.com`).
fn wildcard_suffix(host: &str) -> Option<&str> {
    let (first, rest) = host.split_once('.')?;
    (!first.is_empty() && !rest.is_empty()).then_some(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backend(name: &str) -> Arc<Backend> {
        Arc::new(Backend::new(name.into(), vec![], 0))
    }

    fn hit(table: &RouteTable, host: &str, path: &str) -> Option<String> {
        table.route(host, path).map(|b| b.name.clone())
    }

    #[test]
    fn prefix_matches_whole_elements_as_kubernetes_documents() {
        // The examples table of the Kubernetes Ingress documentation.
        let cases = [
            (PathKind::Prefix, "/", "/anything", true),
            (PathKind::Exact, "/foo", "/foo", true),
            (PathKind::Exact, "/foo", "/bar", false),
            (PathKind::Exact, "/foo", "/foo/", false),
            (PathKind::Exact, "/foo/", "/foo", false),
            (PathKind::Prefix, "/foo", "/foo", true),
            (PathKind::Prefix, "/foo", "/foo/", true),
            (PathKind::Prefix, "/foo/", "/foo", true),
            (PathKind::Prefix, "/foo/", "/foo/", true),
            (PathKind::Prefix, "/aaa/bb", "/aaa/bbb", false),
            (PathKind::Prefix, "/aaa/bbb", "/aaa/bbb", true),
            (PathKind::Prefix, "/aaa/bbb/", "/aaa/bbb", true),
            (PathKind::Prefix, "/aaa/bbb", "/aaa/bbb/", true),
            (PathKind::Prefix, "/aaa/bbb", "/aaa/bbb/ccc", true),
            (PathKind::Prefix, "/aaa/bbb", "/aaa/bbbxyz", false),
        ];
        for (kind, rule, request, expected) in cases {
            let mut h = HostRoutes::default();
            h.add(kind, rule, backend("b"));
            assert_eq!(h.lookup(request).is_some(), expected, "{kind:?} {rule} vs {request}");
        }
    }

    #[test]
    fn longest_path_wins_and_exact_beats_an_equal_prefix() {
        let mut h = HostRoutes::default();
        h.add(PathKind::Prefix, "/", backend("root"));
        h.add(PathKind::Prefix, "/aaa", backend("aaa"));
        h.add(PathKind::Prefix, "/aaa/bbb", backend("bbb"));
        h.add(PathKind::Exact, "/aaa/bbb", backend("exact"));
        let name = |h: &HostRoutes, p: &str| h.lookup(p).map(|b| b.name.clone()).unwrap_or_default();
        assert_eq!(name(&h, "/aaa/bbb"), "exact");
        assert_eq!(name(&h, "/aaa/bbb/"), "bbb");
        assert_eq!(name(&h, "/aaa/bbb/c"), "bbb");
        assert_eq!(name(&h, "/aaa/ccc"), "aaa");
        assert_eq!(name(&h, "/zzz"), "root");
        assert!(!h.add(PathKind::Prefix, "/aaa/", backend("later")), "the first claim keeps the path");
        assert_eq!(name(&h, "/aaa/x"), "aaa");
    }

    #[test]
    fn hosts_match_exactly_then_by_one_label_wildcard_then_without_host() {
        let mut t = RouteTable::default();
        t.host_mut("foo.bar.com").add(PathKind::Prefix, "/", backend("exact"));
        t.host_mut("*.bar.com").add(PathKind::Prefix, "/", backend("wild"));
        t.host_mut("").add(PathKind::Prefix, "/", backend("any"));
        assert_eq!(hit(&t, "foo.bar.com", "/"), Some("exact".into()));
        assert_eq!(hit(&t, "FOO.Bar.com:8080", "/"), Some("exact".into()));
        assert_eq!(hit(&t, "foo.bar.com.", "/"), Some("exact".into()));
        assert_eq!(hit(&t, "baz.bar.com", "/"), Some("wild".into()));
        assert_eq!(hit(&t, "bar.com", "/"), Some("any".into()), "the wildcard needs a label");
        assert_eq!(hit(&t, "a.baz.bar.com", "/"), Some("any".into()), "the wildcard covers one label");
        assert_eq!(hit(&t, "other", "/"), Some("any".into()));
        assert_eq!(hit(&t, "", "/"), Some("any".into()));
        assert_eq!(hit(&t, "[::1]:80", "/"), Some("any".into()));
    }

    #[test]
    fn unmatched_paths_go_to_the_hosts_default_then_the_tables_then_nowhere() {
        let mut t = RouteTable::default();
        t.host_mut("a.com").add(PathKind::Exact, "/x", backend("x"));
        assert_eq!(hit(&t, "a.com", "/y"), None);
        t.set_default(backend("global"));
        assert_eq!(hit(&t, "a.com", "/y"), Some("global".into()));
        assert_eq!(hit(&t, "nohost.com", "/"), Some("global".into()));
        t.host_mut("a.com").set_default(backend("own"));
        assert_eq!(hit(&t, "a.com", "/y"), Some("own".into()));
        assert_eq!(hit(&t, "a.com", "/x"), Some("x".into()));
        assert_eq!(t.route_count(), 1);
    }

    #[test]
    fn rotation_is_round_robin_and_visits_every_endpoint_once() {
        let eps: Vec<SocketAddr> = (1..=3).map(|p| SocketAddr::from(([127, 0, 0, 1], p))).collect();
        let b = Backend::new("b".into(), eps.clone(), 0);
        let firsts: Vec<u16> = (0..6).map(|_| b.rotation().next().map(|a| a.port()).unwrap_or(0)).collect();
        assert_eq!(firsts, vec![1, 2, 3, 1, 2, 3]);
        let mut all: Vec<u16> = b.rotation().map(|a| a.port()).collect();
        assert_eq!(all.len(), 3);
        all.sort();
        assert_eq!(all, vec![1, 2, 3]);
        assert_eq!(Backend::new("e".into(), vec![], 7).rotation().count(), 0);
    }

    #[test]
    fn host_helpers() {
        assert_eq!(strip_port("a.com:80"), "a.com");
        assert_eq!(strip_port("a.com"), "a.com");
        assert_eq!(strip_port("[::1]:8080"), "::1");
        assert_eq!(wildcard_suffix("a.b.c"), Some("b.c"));
        assert_eq!(wildcard_suffix("localhost"), None);
        assert_eq!(wildcard_suffix(".b"), None);
    }
}
