//! The cluster zone in memory: the records of every Service, computed once per change of the
//! Service or its EndpointSlices, and the answers to queries read from them without any call
//! to the API server.
//!
//! Names follow Kubernetes' DNS specification and CoreDNS' kubernetes plugin:
//! - `<svc>.<ns>.svc.<domain>`: A/AAAA of the ClusterIPs; for a headless Service the ready
//!   endpoints' addresses; for an ExternalName Service a CNAME.
//! - `_<port>._<proto>.<svc>.<ns>.svc.<domain>`: SRV for each named port (SRV at the Service
//!   name itself lists every port).
//! - `<endpoint>.<svc>.<ns>.svc.<domain>`: each ready endpoint, by its `hostname` (StatefulSet
//!   pods, pods with hostname + subdomain) or else its dashed address (`10-0-0-7`).
//! - `<a-b-c-d>.<ns>.pod.<domain>`: the address the name spells (CoreDNS' "pods insecure").
//! - PTR for ClusterIPs and ready endpoint addresses.

use crate::sync::SERVICE_NAME_LABEL;
use hickory_server::proto::op::ResponseCode;
use hickory_server::proto::rr::rdata::{A, AAAA, CNAME, NS, PTR, SOA, SRV};
use hickory_server::proto::rr::{LowerName, Name, RData, Record, RecordType};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// How the zone answers: its domain and the TTLs of its records.
#[derive(Debug, Clone)]
pub struct ZoneSettings {
    /// The cluster domain, e.g. `cluster.local.`.
    pub domain: Name,
    /// TTL of positive answers, in seconds.
    pub ttl: u32,
    /// TTL of negative answers and the SOA minimum, in seconds.
    pub negative_ttl: u32,
}

impl ZoneSettings {
    /// Settings for `domain` (a DNS name, with or without the trailing dot).
    pub fn new(domain: &str, ttl: u32, negative_ttl: u32) -> Result<ZoneSettings, crate::Error> {
        let bad = |message: String| crate::Error::Domain { domain: domain.to_string(), message };
        let mut name = Name::from_ascii(domain.trim_end_matches('.')).map_err(|e| bad(e.to_string()))?;
        if name.is_root() {
            return Err(bad("the root cannot be the cluster domain".into()));
        }
        name.set_fqdn(true);
        Ok(ZoneSettings { domain: name.to_lowercase(), ttl, negative_ttl })
    }
}

/// What the zone says to one query.
#[derive(Debug, Clone, Default)]
pub struct Answer {
    /// NoError, NXDomain, or ServFail before the caches are filled.
    pub code: ResponseCode,
    /// The answer section.
    pub answers: Vec<Record>,
    /// The authority section (the SOA of negative answers).
    pub authorities: Vec<Record>,
    /// The additional section (addresses of SRV targets).
    pub additionals: Vec<Record>,
    /// The CNAME target an ExternalName answer points at, for the server to resolve further.
    pub follow: Option<Name>,
}

/// The records of the cluster zone; clones share them.
#[derive(Clone)]
pub struct Zone {
    settings: Arc<Settings>,
    inner: Arc<RwLock<Inner>>,
    /// Rotates multi-address answers so clients that take the first address spread out.
    rotation: Arc<AtomicUsize>,
}

struct Settings {
    zone: ZoneSettings,
    /// The domain's labels, lowercase, root last.
    labels: Vec<Vec<u8>>,
    soa_mname: Name,
    soa_rname: Name,
}

#[derive(Default)]
struct Inner {
    /// namespace -> service name -> records.
    namespaces: HashMap<String, HashMap<String, Arc<ServiceEntry>>>,
    /// address -> the names pointing at it (several Services may share an endpoint).
    reverse: HashMap<IpAddr, Vec<Name>>,
    serial: u32,
    synced: bool,
}

impl Zone {
    /// An empty zone; it answers SERVFAIL for cluster names until [`Zone::mark_synced`].
    pub fn new(settings: ZoneSettings) -> Zone {
        let labels = settings.domain.iter().map(|l| l.to_ascii_lowercase()).collect();
        let soa_mname = prefixed(&settings.domain, &["ns", "dns"]).unwrap_or_else(|| settings.domain.clone());
        let soa_rname = prefixed(&settings.domain, &["hostmaster"]).unwrap_or_else(|| settings.domain.clone());
        let serial = u32::try_from(now_secs()).unwrap_or(1);
        Zone {
            settings: Arc::new(Settings { zone: settings, labels, soa_mname, soa_rname }),
            inner: Arc::new(RwLock::new(Inner { serial, ..Inner::default() })),
            rotation: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// The zone's settings.
    pub fn settings(&self) -> &ZoneSettings {
        &self.settings.zone
    }

    // Each change is applied whole under the lock, so a poisoned lock still holds a
    // consistent zone.
    fn read(&self) -> RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Replaces the records of `service` with those computed from it and `slices` (the
    /// EndpointSlices labelled with its name).
    pub fn apply_service(&self, service: &Service, slices: &[Arc<EndpointSlice>]) {
        let namespace = service.metadata.namespace.as_deref().unwrap_or("default");
        let Some(name) = service.metadata.name.as_deref() else { return };
        let entry = build_entry(&self.settings.zone, namespace, name, service, slices);
        let mut inner = self.write();
        let old = match entry {
            Some(entry) => {
                for (ip, ptr) in &entry.ptrs {
                    inner.reverse.entry(*ip).or_default().push(ptr.clone());
                }
                inner.namespaces.entry(namespace.to_string()).or_default().insert(name.to_string(), Arc::new(entry))
            }
            None => remove_entry(&mut inner, namespace, name),
        };
        if let Some(old) = old {
            forget_ptrs(&mut inner, &old);
        }
        inner.serial = inner.serial.wrapping_add(1);
    }

    /// Removes the records of the Service `namespace/name`.
    pub fn remove_service(&self, namespace: &str, name: &str) {
        let mut inner = self.write();
        if let Some(old) = remove_entry(&mut inner, namespace, name) {
            forget_ptrs(&mut inner, &old);
            inner.serial = inner.serial.wrapping_add(1);
        }
    }

    /// The `namespace/name` keys of the Services the zone holds.
    pub fn service_keys(&self) -> Vec<String> {
        let inner = self.read();
        inner
            .namespaces
            .iter()
            .flat_map(|(ns, services)| services.keys().map(move |name| format!("{ns}/{name}")))
            .collect()
    }

    /// Declares the zone complete (the caches have been filled): from now on unknown names
    /// are NXDOMAIN rather than SERVFAIL.
    pub fn mark_synced(&self) {
        self.write().synced = true;
    }

    /// True once [`Zone::mark_synced`] has been called.
    pub fn is_synced(&self) -> bool {
        self.read().synced
    }

    /// Whether `name` is inside the cluster domain.
    pub fn contains(&self, name: &LowerName) -> bool {
        let domain = &self.settings.labels;
        let labels: Vec<&[u8]> = name.iter().collect();
        labels.len() >= domain.len()
            && labels[labels.len() - domain.len()..].iter().zip(domain).all(|(a, b)| a.eq_ignore_ascii_case(b))
    }

    /// The answer to a query of `qtype` for `name`, or None when the name is not the zone's
    /// to answer (outside the cluster domain, or an address nothing in the cluster has) and
    /// the query should be forwarded.
    pub fn lookup(&self, name: &LowerName, qtype: RecordType) -> Option<Answer> {
        if !self.contains(name) {
            return self.lookup_reverse(name, qtype);
        }
        let labels: Vec<&[u8]> = name.iter().collect();
        let domain = &self.settings.labels;
        let inner = self.read();
        if !inner.synced {
            return Some(Answer { code: ResponseCode::ServFail, ..Answer::default() });
        }
        // Every label of a name we hold is ASCII; anything else does not exist. A LowerName's
        // labels are lowercase already.
        let Ok(rel) = labels[..labels.len() - domain.len()]
            .iter()
            .map(|l| std::str::from_utf8(l))
            .collect::<Result<Vec<&str>, _>>()
        else {
            return Some(self.nxdomain(&inner));
        };
        let answer = match rel.as_slice() {
            [] => self.apex(&inner, qtype),
            [rest @ .., "svc"] => self.lookup_svc(&inner, rest, qtype, name),
            [rest @ .., "pod"] => self.lookup_pod(&inner, rest, qtype, name),
            _ => self.nxdomain(&inner),
        };
        Some(answer)
    }

    fn lookup_svc(&self, inner: &Inner, rel: &[&str], qtype: RecordType, name: &LowerName) -> Answer {
        match rel {
            [] => self.nodata(inner),
            [ns] => match inner.namespaces.get(*ns) {
                Some(services) if !services.is_empty() => self.nodata(inner),
                _ => self.nxdomain(inner),
            },
            [svc, ns] => match service(inner, ns, svc) {
                Some(entry) => self.service_answer(inner, &entry, qtype, name),
                None => self.nxdomain(inner),
            },
            [label, svc, ns] => {
                let Some(entry) = service(inner, ns, svc) else { return self.nxdomain(inner) };
                if let Some(proto) = label.strip_prefix('_') {
                    // `_tcp.<svc>`: the parent of SRV names exists without records.
                    return match entry.srv.iter().any(|s| s.proto == proto) {
                        true => self.nodata(inner),
                        false => self.nxdomain(inner),
                    };
                }
                match entry.hosts.get(*label) {
                    Some(host) => self.records(inner, addresses(&host.a, &host.aaaa, qtype, &self.rotation), vec![]),
                    None => self.nxdomain(inner),
                }
            }
            [port, proto, svc, ns] => {
                let Some(entry) = service(inner, ns, svc) else { return self.nxdomain(inner) };
                let (Some(port), Some(proto)) = (port.strip_prefix('_'), proto.strip_prefix('_')) else {
                    return self.nxdomain(inner);
                };
                let Some(set) = entry.srv.iter().find(|s| !port.is_empty() && s.port == port && s.proto == proto)
                else {
                    return self.nxdomain(inner);
                };
                match qtype {
                    RecordType::SRV | RecordType::ANY => {
                        let records = srv_records(Name::from(name), self.settings.zone.ttl, [set]);
                        self.records(inner, records, set.additionals.clone())
                    }
                    _ => self.nodata(inner),
                }
            }
            _ => self.nxdomain(inner),
        }
    }

    fn lookup_pod(&self, inner: &Inner, rel: &[&str], qtype: RecordType, name: &LowerName) -> Answer {
        match rel {
            [] | [_] => self.nodata(inner),
            [dashed, _ns] => {
                let Some(ip) = undash(dashed) else { return self.nxdomain(inner) };
                let owner = Name::from(name);
                let record = address_record(owner, self.settings.zone.ttl, ip);
                let fits = matches!(
                    (qtype, ip),
                    (RecordType::A | RecordType::ANY, IpAddr::V4(_))
                        | (RecordType::AAAA | RecordType::ANY, IpAddr::V6(_))
                );
                self.records(inner, if fits { vec![record] } else { vec![] }, vec![])
            }
            _ => self.nxdomain(inner),
        }
    }

    fn lookup_reverse(&self, name: &LowerName, qtype: RecordType) -> Option<Answer> {
        if !matches!(qtype, RecordType::PTR | RecordType::ANY) {
            return None;
        }
        let net = name.parse_arpa_name().ok()?;
        if net.prefix_len() != net.max_prefix_len() {
            return None;
        }
        let inner = self.read();
        let targets = inner.reverse.get(&net.addr())?;
        let owner = Name::from(name);
        let ttl = self.settings.zone.ttl;
        let answers =
            targets.iter().map(|t| Record::from_rdata(owner.clone(), ttl, RData::PTR(PTR(t.clone())))).collect();
        Some(Answer { answers, ..Answer::default() })
    }

    fn apex(&self, inner: &Inner, qtype: RecordType) -> Answer {
        let soa = self.soa(inner, self.settings.zone.ttl);
        let ns = Record::from_rdata(
            self.settings.zone.domain.clone(),
            self.settings.zone.ttl,
            RData::NS(NS(self.settings.soa_mname.clone())),
        );
        match qtype {
            RecordType::SOA => self.records(inner, vec![soa], vec![]),
            RecordType::NS => self.records(inner, vec![ns], vec![]),
            RecordType::ANY => self.records(inner, vec![soa, ns], vec![]),
            _ => self.nodata(inner),
        }
    }

    fn service_answer(&self, inner: &Inner, entry: &ServiceEntry, qtype: RecordType, name: &LowerName) -> Answer {
        if let Some(cname) = &entry.cname {
            // An ExternalName is an alias for every type.
            let follow = (qtype != RecordType::CNAME).then(|| entry.follow.clone()).flatten();
            return Answer { answers: vec![cname.clone()], follow, ..Answer::default() };
        }
        match qtype {
            RecordType::A | RecordType::AAAA => {
                self.records(inner, addresses(&entry.a, &entry.aaaa, qtype, &self.rotation), vec![])
            }
            RecordType::SRV => {
                let records = srv_records(Name::from(name), self.settings.zone.ttl, &entry.srv);
                self.records(inner, records, entry.srv_additionals())
            }
            RecordType::ANY => {
                let mut records = addresses(&entry.a, &entry.aaaa, qtype, &self.rotation);
                records.extend(srv_records(Name::from(name), self.settings.zone.ttl, &entry.srv));
                self.records(inner, records, vec![])
            }
            _ => self.nodata(inner),
        }
    }

    /// A positive answer, or NODATA when `answers` is empty.
    fn records(&self, inner: &Inner, answers: Vec<Record>, additionals: Vec<Record>) -> Answer {
        if answers.is_empty() {
            return self.nodata(inner);
        }
        Answer { answers, additionals, ..Answer::default() }
    }

    /// The name exists but has no records of the asked type.
    fn nodata(&self, inner: &Inner) -> Answer {
        Answer { authorities: vec![self.soa(inner, self.settings.zone.negative_ttl)], ..Answer::default() }
    }

    fn nxdomain(&self, inner: &Inner) -> Answer {
        Answer {
            code: ResponseCode::NXDomain,
            authorities: vec![self.soa(inner, self.settings.zone.negative_ttl)],
            ..Answer::default()
        }
    }

    fn soa(&self, inner: &Inner, ttl: u32) -> Record {
        let s = &self.settings;
        let negative = s.zone.negative_ttl;
        let soa = SOA::new(s.soa_mname.clone(), s.soa_rname.clone(), inner.serial, 7200, 1800, 86400, negative);
        Record::from_rdata(s.zone.domain.clone(), ttl, RData::SOA(soa))
    }
}

fn service(inner: &Inner, namespace: &str, name: &str) -> Option<Arc<ServiceEntry>> {
    inner.namespaces.get(namespace)?.get(name).cloned()
}

fn remove_entry(inner: &mut Inner, namespace: &str, name: &str) -> Option<Arc<ServiceEntry>> {
    let services = inner.namespaces.get_mut(namespace)?;
    let old = services.remove(name);
    if services.is_empty() {
        inner.namespaces.remove(namespace);
    }
    old
}

fn forget_ptrs(inner: &mut Inner, entry: &ServiceEntry) {
    for (ip, name) in &entry.ptrs {
        let Some(names) = inner.reverse.get_mut(ip) else { continue };
        if let Some(i) = names.iter().position(|n| n == name) {
            names.remove(i);
        }
        if names.is_empty() {
            inner.reverse.remove(ip);
        }
    }
}

/// SRV records under `owner` for every target of `sets`.
fn srv_records<'a>(owner: Name, ttl: u32, sets: impl IntoIterator<Item = &'a SrvSet>) -> Vec<Record> {
    sets.into_iter()
        .flat_map(|s| s.srvs.iter())
        .map(|srv| Record::from_rdata(owner.clone(), ttl, RData::SRV(srv.clone())))
        .collect()
}

/// The A and/or AAAA records the query type asks for, rotated by one per query.
fn addresses(a: &[Record], aaaa: &[Record], qtype: RecordType, rotation: &AtomicUsize) -> Vec<Record> {
    let rotate = |records: &[Record]| -> Vec<Record> {
        if records.len() < 2 {
            return records.to_vec();
        }
        let start = rotation.fetch_add(1, Ordering::Relaxed) % records.len();
        records[start..].iter().chain(&records[..start]).cloned().collect()
    };
    match qtype {
        RecordType::A => rotate(a),
        RecordType::AAAA => rotate(aaaa),
        _ => a.iter().chain(aaaa).cloned().collect(),
    }
}

/// The records of one Service.
#[derive(Debug, Default)]
struct ServiceEntry {
    a: Vec<Record>,
    aaaa: Vec<Record>,
    cname: Option<Record>,
    follow: Option<Name>,
    srv: Vec<SrvSet>,
    /// endpoint label -> its addresses.
    hosts: HashMap<String, Host>,
    /// The PTR records this Service contributes.
    ptrs: Vec<(IpAddr, Name)>,
}

impl ServiceEntry {
    /// The target addresses of every SRV record, once each.
    fn srv_additionals(&self) -> Vec<Record> {
        let mut out: Vec<Record> = Vec::new();
        for r in self.srv.iter().flat_map(|s| s.additionals.iter()) {
            if !out.contains(r) {
                out.push(r.clone());
            }
        }
        out
    }
}

/// SRV records of one `_<port>._<proto>` pair.
#[derive(Debug, Default)]
struct SrvSet {
    /// Port name, lowercase ("" for an unnamed port, which only the Service-wide SRV lists).
    port: String,
    /// "tcp", "udp" or "sctp".
    proto: String,
    srvs: Vec<SRV>,
    /// The addresses of the targets.
    additionals: Vec<Record>,
}

#[derive(Debug, Default)]
struct Host {
    a: Vec<Record>,
    aaaa: Vec<Record>,
}

/// A ready endpoint address with the ports of its slice.
struct ReadyEndpoint {
    ip: IpAddr,
    label: String,
    ports: Vec<(String, String, u16)>,
}

/// The records of a Service; None when it has no name we can serve.
fn build_entry(
    settings: &ZoneSettings,
    namespace: &str,
    name: &str,
    service: &Service,
    slices: &[Arc<EndpointSlice>],
) -> Option<ServiceEntry> {
    let Some(fqdn) = prefixed(&settings.domain, &[name, namespace, "svc"]) else {
        tracing::warn!(namespace, service = name, "service name is not a DNS name; no records");
        return None;
    };
    let ttl = settings.ttl;
    let spec = service.spec.clone().unwrap_or_default();
    let mut entry = ServiceEntry::default();
    if spec.type_.as_deref() == Some("ExternalName") {
        let external = spec.external_name.as_deref().unwrap_or_default().trim_end_matches('.');
        match Name::from_ascii(external) {
            Ok(mut target) if !external.is_empty() => {
                target.set_fqdn(true);
                entry.cname = Some(Record::from_rdata(fqdn, ttl, RData::CNAME(CNAME(target.clone()))));
                entry.follow = Some(target);
            }
            _ => tracing::warn!(namespace, service = name, external, "externalName is not a DNS name; no records"),
        }
        return Some(entry);
    }
    let headless = spec.cluster_ip.as_deref() == Some("None");
    let endpoints = ready_endpoints(service, slices);
    for ep in &endpoints {
        let Some(host) = prefixed(&fqdn, &[&ep.label]) else { continue };
        let record = address_record(host.clone(), ttl, ep.ip);
        let slot = entry.hosts.entry(ep.label.clone()).or_default();
        match ep.ip {
            IpAddr::V4(_) => slot.a.push(record),
            IpAddr::V6(_) => slot.aaaa.push(record),
        }
        entry.ptrs.push((ep.ip, host));
    }
    // SRV sets keyed by (port name, protocol), in a stable order.
    let mut sets: BTreeMap<(String, String), SrvSet> = BTreeMap::new();
    if headless {
        for ep in &endpoints {
            push_address(&mut entry, address_record(fqdn.clone(), ttl, ep.ip));
            let Some(host) = prefixed(&fqdn, &[&ep.label]) else { continue };
            for (port_name, proto, port) in &ep.ports {
                let set = sets.entry((port_name.clone(), proto.clone())).or_default();
                set.srvs.push(SRV::new(0, 0, *port, host.clone()));
                set.additionals.push(address_record(host.clone(), ttl, ep.ip));
            }
        }
    } else {
        let ips = spec
            .cluster_ips
            .clone()
            .filter(|ips| !ips.is_empty())
            .or_else(|| spec.cluster_ip.clone().map(|ip| vec![ip]));
        for ip in ips.unwrap_or_default().iter().filter_map(|ip| ip.parse::<IpAddr>().ok()) {
            push_address(&mut entry, address_record(fqdn.clone(), ttl, ip));
            entry.ptrs.push((ip, fqdn.clone()));
        }
        let additionals: Vec<Record> = entry.a.iter().chain(&entry.aaaa).cloned().collect();
        for port in spec.ports.iter().flatten() {
            let Ok(number) = u16::try_from(port.port) else { continue };
            let key = (port.name.clone().unwrap_or_default().to_ascii_lowercase(), protocol(port.protocol.as_deref()));
            let set = sets.entry(key).or_default();
            set.srvs.push(SRV::new(0, 0, number, fqdn.clone()));
            set.additionals.clone_from(&additionals);
        }
    }
    for ((port, proto), mut set) in sets {
        // Equal shares of 100, so clients that weigh targets spread evenly (RFC 2782).
        let weight = u16::try_from(100 / set.srvs.len().max(1)).unwrap_or(1).max(1);
        set.srvs = set.srvs.into_iter().map(|s| SRV::new(s.priority, weight, s.port, s.target)).collect();
        set.additionals.dedup();
        entry.srv.push(SrvSet { port, proto, ..set });
    }
    Some(entry)
}

fn push_address(entry: &mut ServiceEntry, record: Record) {
    match record.data {
        RData::AAAA(_) => entry.aaaa.push(record),
        _ => entry.a.push(record),
    }
}

/// The ready addresses of a Service's EndpointSlices, once each, with their slice's ports.
fn ready_endpoints(service: &Service, slices: &[Arc<EndpointSlice>]) -> Vec<ReadyEndpoint> {
    let name = service.metadata.name.as_deref().unwrap_or_default();
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    let mut slices: Vec<&Arc<EndpointSlice>> = slices
        .iter()
        .filter(|s| {
            s.metadata.labels.as_ref().and_then(|l| l.get(SERVICE_NAME_LABEL)).map(String::as_str) == Some(name)
        })
        .filter(|s| matches!(s.address_type.as_str(), "IPv4" | "IPv6"))
        .collect();
    // Stable order across rebuilds, so answers do not reshuffle on unrelated changes.
    slices.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    for slice in slices {
        let ports: Vec<(String, String, u16)> = slice
            .ports
            .iter()
            .flatten()
            .filter_map(|p| {
                let number = u16::try_from(p.port?).ok()?;
                Some((p.name.clone().unwrap_or_default().to_ascii_lowercase(), protocol(p.protocol.as_deref()), number))
            })
            .collect();
        for ep in &slice.endpoints {
            // A missing condition means ready (discovery.k8s.io/v1).
            if ep.conditions.as_ref().and_then(|c| c.ready) == Some(false) {
                continue;
            }
            for ip in ep.addresses.iter().filter_map(|a| a.parse::<IpAddr>().ok()) {
                if !seen.insert(ip) {
                    continue;
                }
                let label = match ep.hostname.as_deref() {
                    Some(h) if !h.is_empty() => h.to_ascii_lowercase(),
                    _ => dashed(ip),
                };
                out.push(ReadyEndpoint { ip, label, ports: ports.clone() });
            }
        }
    }
    out
}

fn protocol(p: Option<&str>) -> String {
    p.unwrap_or("TCP").to_ascii_lowercase()
}

fn address_record(name: Name, ttl: u32, ip: IpAddr) -> Record {
    match ip {
        IpAddr::V4(v4) => Record::from_rdata(name, ttl, RData::A(A(v4))),
        IpAddr::V6(v6) => Record::from_rdata(name, ttl, RData::AAAA(AAAA(v6))),
    }
}

/// `labels` (leftmost first) in front of `base`; None if one is not a valid label.
fn prefixed(base: &Name, labels: &[&str]) -> Option<Name> {
    let mut name = base.clone();
    for label in labels.iter().rev() {
        name = name.prepend_label(label.to_ascii_lowercase().as_str()).ok()?;
    }
    Some(name)
}

/// `10.0.0.7` -> `10-0-0-7`, `fd00::1` -> `fd00--1` (CoreDNS' endpoint and pod names).
pub fn dashed(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string().replace('.', "-"),
        IpAddr::V6(v6) => v6.to_string().replace(':', "-"),
    }
}

/// The inverse of [`dashed`].
fn undash(label: &str) -> Option<IpAddr> {
    if label.matches('-').count() == 3
        && let Ok(ip) = label.replace('-', ".").parse::<std::net::Ipv4Addr>()
    {
        return Some(IpAddr::V4(ip));
    }
    label.replace('-', ":").parse::<std::net::Ipv6Addr>().ok().map(IpAddr::V6)
}

/// Seconds since the epoch, for the initial SOA serial.
fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_server::proto::rr::RecordType as T;
    use serde_json::json;

    fn zone() -> Zone {
        let zone = Zone::new(ZoneSettings::new("cluster.local", 30, 5).unwrap());
        zone.mark_synced();
        zone
    }

    fn svc(v: serde_json::Value) -> Service {
        serde_json::from_value(v).unwrap()
    }

    fn slice(service: &str, name: &str, ports: serde_json::Value, endpoints: serde_json::Value) -> Arc<EndpointSlice> {
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": "demo", "labels": {SERVICE_NAME_LABEL: service}},
                "addressType": "IPv4", "ports": ports, "endpoints": endpoints,
            }))
            .unwrap(),
        )
    }

    fn q(zone: &Zone, name: &str, t: RecordType) -> Answer {
        zone.lookup(&LowerName::from(Name::from_ascii(name).unwrap()), t).expect("answered by the zone")
    }

    fn data(a: &Answer) -> Vec<String> {
        let mut v: Vec<String> = a.answers.iter().map(|r| r.data.to_string()).collect();
        v.sort();
        v
    }

    fn web() -> Service {
        svc(json!({"metadata": {"name": "web", "namespace": "demo"},
            "spec": {"clusterIP": "10.96.0.20", "clusterIPs": ["10.96.0.20"],
                     "ports": [{"name": "http", "port": 80, "protocol": "TCP"}, {"port": 9090, "protocol": "UDP"}]}}))
    }

    #[test]
    fn cluster_ip_service_records() {
        let zone = zone();
        let s = slice(
            "web",
            "web-1",
            json!([{"name": "http", "port": 8080}]),
            json!([
                {"addresses": ["10.250.0.5"], "conditions": {"ready": true}},
                {"addresses": ["10.250.0.6"], "conditions": {"ready": false}},
            ]),
        );
        zone.apply_service(&web(), &[s]);
        let a = q(&zone, "web.demo.svc.cluster.local.", T::A);
        assert_eq!(a.code, ResponseCode::NoError);
        assert_eq!(data(&a), ["10.96.0.20"]);
        // Case does not matter.
        assert_eq!(data(&q(&zone, "WEB.Demo.svc.Cluster.Local.", T::A)), ["10.96.0.20"]);
        // The name exists, without AAAA: NODATA with the SOA.
        let aaaa = q(&zone, "web.demo.svc.cluster.local.", T::AAAA);
        assert!(aaaa.code == ResponseCode::NoError && aaaa.answers.is_empty());
        assert_eq!(aaaa.authorities[0].record_type(), T::SOA);
        let srv = q(&zone, "_http._tcp.web.demo.svc.cluster.local.", T::SRV);
        assert_eq!(data(&srv), ["0 100 80 web.demo.svc.cluster.local."]);
        assert_eq!(srv.additionals.len(), 1);
        // The unnamed UDP port is only in the Service-wide SRV.
        assert_eq!(data(&q(&zone, "web.demo.svc.cluster.local.", T::SRV)).len(), 2);
        assert_eq!(q(&zone, "_http._udp.web.demo.svc.cluster.local.", T::SRV).code, ResponseCode::NXDomain);
        // Ready endpoints have names; unready ones do not.
        assert_eq!(data(&q(&zone, "10-250-0-5.web.demo.svc.cluster.local.", T::A)), ["10.250.0.5"]);
        assert_eq!(q(&zone, "10-250-0-6.web.demo.svc.cluster.local.", T::A).code, ResponseCode::NXDomain);
        // PTR of the ClusterIP and the endpoint.
        let ptr = zone.lookup(&LowerName::from(Name::from_ascii("20.0.96.10.in-addr.arpa.").unwrap()), T::PTR).unwrap();
        assert_eq!(data(&ptr), ["web.demo.svc.cluster.local."]);
        let ptr = zone.lookup(&LowerName::from(Name::from_ascii("5.0.250.10.in-addr.arpa.").unwrap()), T::PTR).unwrap();
        assert_eq!(data(&ptr), ["10-250-0-5.web.demo.svc.cluster.local."]);
        // Unknown addresses and names outside the domain are forwarded.
        assert!(zone.lookup(&LowerName::from(Name::from_ascii("6.0.250.10.in-addr.arpa.").unwrap()), T::PTR).is_none());
        assert!(zone.lookup(&LowerName::from(Name::from_ascii("example.com.").unwrap()), T::A).is_none());
        // Unknown names inside are NXDOMAIN with the SOA; search-path misses too.
        for name in
            ["nope.demo.svc.cluster.local.", "web.demo.svc.cluster.local.demo.svc.cluster.local.", "x.cluster.local."]
        {
            let a = q(&zone, name, T::A);
            assert_eq!(a.code, ResponseCode::NXDomain, "{name}");
            assert_eq!(a.authorities[0].record_type(), T::SOA);
        }
        // Namespace and apex names exist.
        assert_eq!(q(&zone, "demo.svc.cluster.local.", T::A).code, ResponseCode::NoError);
        assert_eq!(q(&zone, "other.svc.cluster.local.", T::A).code, ResponseCode::NXDomain);
        assert_eq!(q(&zone, "cluster.local.", T::SOA).answers.len(), 1);
        // Removal takes the records and the PTRs away.
        zone.remove_service("demo", "web");
        assert_eq!(q(&zone, "web.demo.svc.cluster.local.", T::A).code, ResponseCode::NXDomain);
        assert!(zone.lookup(&LowerName::from(Name::from_ascii("20.0.96.10.in-addr.arpa.").unwrap()), T::PTR).is_none());
    }

    #[test]
    fn headless_service_records() {
        let zone = zone();
        let db = svc(json!({"metadata": {"name": "db", "namespace": "demo"},
            "spec": {"clusterIP": "None", "ports": [{"name": "pg", "port": 5432}]}}));
        let s = slice(
            "db",
            "db-1",
            json!([{"name": "pg", "port": 5432, "protocol": "TCP"}]),
            json!([
                {"addresses": ["10.250.0.10"], "hostname": "db-0", "conditions": {"ready": true}},
                {"addresses": ["10.250.0.11"], "hostname": "db-1"},
                {"addresses": ["10.250.0.12"], "hostname": "db-2", "conditions": {"ready": false}},
            ]),
        );
        zone.apply_service(&db, &[s]);
        assert_eq!(data(&q(&zone, "db.demo.svc.cluster.local.", T::A)), ["10.250.0.10", "10.250.0.11"]);
        assert_eq!(data(&q(&zone, "db-0.db.demo.svc.cluster.local.", T::A)), ["10.250.0.10"]);
        assert_eq!(q(&zone, "db-2.db.demo.svc.cluster.local.", T::A).code, ResponseCode::NXDomain);
        let srv = q(&zone, "_pg._tcp.db.demo.svc.cluster.local.", T::SRV);
        assert_eq!(
            data(&srv),
            ["0 50 5432 db-0.db.demo.svc.cluster.local.", "0 50 5432 db-1.db.demo.svc.cluster.local."]
        );
        assert_eq!(srv.additionals.len(), 2);
        assert_eq!(q(&zone, "_tcp.db.demo.svc.cluster.local.", T::A).code, ResponseCode::NoError);
        let ptr =
            zone.lookup(&LowerName::from(Name::from_ascii("11.0.250.10.in-addr.arpa.").unwrap()), T::PTR).unwrap();
        assert_eq!(data(&ptr), ["db-1.db.demo.svc.cluster.local."]);
    }

    #[test]
    fn external_name_pods_and_sync_state() {
        let zone = Zone::new(ZoneSettings::new("cluster.local.", 30, 5).unwrap());
        assert_eq!(q(&zone, "web.demo.svc.cluster.local.", T::A).code, ResponseCode::ServFail, "not synced yet");
        zone.mark_synced();
        let ext = svc(json!({"metadata": {"name": "ext", "namespace": "demo"},
            "spec": {"type": "ExternalName", "externalName": "db.example.com"}}));
        zone.apply_service(&ext, &[]);
        let a = q(&zone, "ext.demo.svc.cluster.local.", T::A);
        assert_eq!(data(&a), ["db.example.com."]);
        assert_eq!(a.follow.as_ref().map(|n| n.to_string()).as_deref(), Some("db.example.com."));
        assert!(q(&zone, "ext.demo.svc.cluster.local.", T::CNAME).follow.is_none());
        assert_eq!(data(&q(&zone, "10-1-2-3.demo.pod.cluster.local.", T::A)), ["10.1.2.3"]);
        assert_eq!(data(&q(&zone, "fd00--5.demo.pod.cluster.local.", T::AAAA)), ["fd00::5"]);
        assert_eq!(q(&zone, "nonsense.demo.pod.cluster.local.", T::A).code, ResponseCode::NXDomain);
    }

    #[test]
    fn answers_rotate_and_shared_endpoints_keep_their_ptrs() {
        let zone = zone();
        let headless =
            |name: &str| svc(json!({"metadata": {"name": name, "namespace": "demo"}, "spec": {"clusterIP": "None"}}));
        let eps = json!([{"addresses": ["10.250.0.1"]}, {"addresses": ["10.250.0.2"]}, {"addresses": ["10.250.0.3"]}]);
        zone.apply_service(&headless("a"), &[slice("a", "a-1", json!([]), eps.clone())]);
        zone.apply_service(&headless("b"), &[slice("b", "b-1", json!([]), eps)]);
        let firsts: HashSet<String> =
            (0..6).map(|_| q(&zone, "a.demo.svc.cluster.local.", T::A).answers[0].data.to_string()).collect();
        assert_eq!(firsts.len(), 3, "each address comes first in turn");
        let ptr_of = |zone: &Zone| {
            let n = LowerName::from(Name::from_ascii("1.0.250.10.in-addr.arpa.").unwrap());
            zone.lookup(&n, T::PTR).map(|a| data(&a)).unwrap_or_default()
        };
        assert_eq!(ptr_of(&zone).len(), 2);
        zone.remove_service("demo", "a");
        assert_eq!(ptr_of(&zone), ["10-250-0-1.b.demo.svc.cluster.local."]);
    }
}
