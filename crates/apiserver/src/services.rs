//! Service ClusterIP and NodePort allocation, KEP-1880 style: every allocated IP and node
//! port is its own etcd key (`/registry/ipaddresses/<ip>`, `/registry/ranges/nodeports/<port>`)
//! written with the create-if-absent transaction, so two writers (also on different API
//! servers) can never hold the same value. The keys lie outside every served resource's prefix,
//! so the watch cache ignores them. Node ports are keyed by number only (protocol-agnostic):
//! one Service may use a number for both TCP and UDP, two Services may not share it at all.

use crate::meta::{meta_str, name_of};
use rand::Rng;
use rkube_api::{ApiError, FieldError, ResourceInfo, registry};
use rkube_storage::{StorageError, Store};
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;
use std::sync::Mutex;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Random candidates tried before falling back to a scan of the allocated keys.
const RANDOM_TRIES: usize = 8;
/// Interval of the repair pass that releases leaked allocations.
const REPAIR_INTERVAL: Duration = Duration::from_secs(180);

/// A bad `--service-cluster-ip-range` or `--service-node-port-range`.
#[derive(Debug, thiserror::Error)]
pub enum RangeError {
    /// The CIDR does not parse or is not IPv4.
    #[error("invalid --service-cluster-ip-range {0:?}: expected an IPv4 CIDR such as 10.96.0.0/12")]
    Cidr(String),
    /// The port range does not parse.
    #[error("invalid --service-node-port-range {0:?}: expected two ports such as 30000-32767")]
    Ports(String),
}

/// Which Service an allocation key belongs to.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Owner {
    namespace: String,
    name: String,
    uid: String,
}

/// The keys one write allocated, released again if the write fails.
#[derive(Debug, Default)]
pub struct Allocated {
    keys: Vec<String>,
}

/// Allocates and releases Service IPs and node ports.
pub struct Allocator {
    store: Store,
    /// Network address of the Service CIDR.
    network: u32,
    /// Number of addresses in the CIDR (network and broadcast included).
    size: u64,
    /// The CIDR as given, for messages.
    cidr: String,
    /// First and last node port.
    ports: (u16, u16),
    /// Allocation keys found leaked by the previous repair pass, by their mod revision.
    suspects: Mutex<HashMap<String, i64>>,
}

fn ip_key(ip: Ipv4Addr) -> String {
    format!("/registry/ipaddresses/{ip}")
}

fn port_key(port: u16) -> String {
    format!("/registry/ranges/nodeports/{port}")
}

fn services() -> &'static ResourceInfo {
    registry::lookup("", "v1", "services").expect("services are served")
}

fn needs_node_ports(spec: &Value) -> bool {
    matches!(spec["type"].as_str(), Some("NodePort" | "LoadBalancer"))
}

/// Whether a Service of this spec gets a cluster IP at all.
fn needs_ip(spec: &Value) -> bool {
    spec["type"].as_str() != Some("ExternalName") && spec["clusterIP"].as_str() != Some("None")
}

fn cluster_ip(spec: &Value) -> Option<&str> {
    spec["clusterIP"].as_str().filter(|ip| !ip.is_empty() && *ip != "None")
}

impl Allocator {
    /// An allocator over the given CIDR and node port range (`30000-32767`).
    pub fn new(store: Store, cidr: &str, ports: &str) -> Result<Allocator, RangeError> {
        let bad = || RangeError::Cidr(cidr.to_string());
        let (addr, bits) = cidr.split_once('/').ok_or_else(bad)?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| bad())?;
        let bits: u32 = bits.parse().map_err(|_| bad())?;
        if !(1..=30).contains(&bits) {
            return Err(bad());
        }
        let mask = u32::MAX << (32 - bits);
        let bad_ports = || RangeError::Ports(ports.to_string());
        let (lo, hi) = ports.split_once('-').ok_or_else(bad_ports)?;
        let (lo, hi): (u16, u16) =
            (lo.trim().parse().map_err(|_| bad_ports())?, hi.trim().parse().map_err(|_| bad_ports())?);
        if lo == 0 || lo > hi {
            return Err(bad_ports());
        }
        Ok(Allocator {
            store,
            network: u32::from(addr) & mask,
            size: 1u64 << (32 - bits),
            cidr: cidr.to_string(),
            ports: (lo, hi),
            suspects: Mutex::default(),
        })
    }

    /// The first usable address, which Kubernetes gives to the `kubernetes` Service.
    pub fn first_ip(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.network + 1)
    }

    /// Whether `ip` is a usable address of the range (not network or broadcast).
    fn in_range(&self, ip: Ipv4Addr) -> bool {
        let offset = u64::from(u32::from(ip).wrapping_sub(self.network));
        offset >= 1 && offset < self.size - 1 && u32::from(ip) >= self.network
    }

    /// Checks what a dry run would allocate without writing anything.
    pub fn check(&self, res: &ResourceInfo, obj: &Value) -> Result<(), ApiError> {
        let spec = &obj["spec"];
        if needs_ip(spec)
            && let Some(ip) = cluster_ip(spec)
        {
            self.ip_in_range(res, obj, ip)?;
        }
        Ok(())
    }

    fn ip_error(&self, res: &ResourceInfo, obj: &Value, ip: &str, why: &str) -> ApiError {
        let detail = format!("failed to allocate IP {ip}: {why}");
        ApiError::invalid(res, name_of(obj), vec![FieldError::invalid("spec.clusterIPs", &json!([ip]), &detail)])
    }

    fn ip_in_range(&self, res: &ResourceInfo, obj: &Value, ip: &str) -> Result<Ipv4Addr, ApiError> {
        match ip.parse::<Ipv4Addr>() {
            Ok(addr) if self.in_range(addr) => Ok(addr),
            _ => Err(self.ip_error(
                res,
                obj,
                ip,
                &format!("provided IP is not in the valid range. The range of valid IPs is {}", self.cidr),
            )),
        }
    }

    fn owner_of(obj: &Value) -> Vec<u8> {
        let owner = Owner {
            namespace: meta_str(obj, "namespace").unwrap_or_default().into(),
            name: name_of(obj).into(),
            uid: meta_str(obj, "uid").unwrap_or_default().into(),
        };
        serde_json::to_vec(&owner).unwrap_or_default()
    }

    /// Writes one allocation key; `Ok(false)` when it is already taken.
    async fn claim(&self, key: &str, owner: &[u8], got: &mut Allocated) -> Result<bool, ApiError> {
        match self.store.create(key, owner.to_vec()).await {
            Ok(_) => {
                got.keys.push(key.to_string());
                Ok(true)
            }
            Err(StorageError::AlreadyExists { .. }) => Ok(false),
            Err(e) => Err(crate::error::storage_error(services(), "", e)),
        }
    }

    /// Allocates a free value among `count` candidates `first..first+count` (as keys made by
    /// `key_of`), preferring those past the first `reserved`: Kubernetes keeps the bottom of its
    /// ranges for values users pick themselves (a cluster DNS IP such as `.10`, a well-known
    /// node port) and hands them out only once the rest is full.
    async fn claim_any(
        &self,
        owner: &[u8],
        (first, count, reserved): (u64, u64, u64),
        prefix: &str,
        key_of: impl Fn(u64) -> String,
        got: &mut Allocated,
    ) -> Result<Option<u64>, ApiError> {
        let reserved = reserved.min(count);
        if let Some(n) = self.claim_in(owner, first + reserved, count - reserved, prefix, &key_of, got).await? {
            return Ok(Some(n));
        }
        self.claim_in(owner, first, reserved, prefix, &key_of, got).await
    }

    /// Allocates a free value among `first..first+count`: a few random tries, then a scan of
    /// what is taken from a random start.
    async fn claim_in(
        &self,
        owner: &[u8],
        first: u64,
        count: u64,
        prefix: &str,
        key_of: &impl Fn(u64) -> String,
        got: &mut Allocated,
    ) -> Result<Option<u64>, ApiError> {
        if count == 0 {
            return Ok(None);
        }
        for _ in 0..RANDOM_TRIES {
            let candidate = first + rand::rng().random_range(0..count);
            if self.claim(&key_of(candidate), owner, got).await? {
                return Ok(Some(candidate));
            }
        }
        let page =
            self.store.list(prefix, None, 0, 0).await.map_err(|e| crate::error::storage_error(services(), "", e))?;
        let taken: HashSet<String> = page.items.into_iter().map(|kv| kv.key).collect();
        let start = rand::rng().random_range(0..count);
        for step in 0..count {
            let candidate = first + (start + step) % count;
            let key = key_of(candidate);
            if !taken.contains(&key) && self.claim(&key, owner, got).await? {
                return Ok(Some(candidate));
            }
        }
        Ok(None)
    }

    /// Allocates the cluster IP and node ports a new Service (or an updated one, given its
    /// `old` version) needs and writes them into `obj`; answers what it allocated.
    pub async fn allocate(
        &self,
        res: &ResourceInfo,
        obj: &mut Value,
        old: Option<&Value>,
    ) -> Result<Allocated, ApiError> {
        let mut got = Allocated::default();
        match self.allocate_into(res, obj, old, &mut got).await {
            Ok(()) => Ok(got),
            Err(e) => {
                self.release_allocated(got).await;
                Err(e)
            }
        }
    }

    async fn allocate_into(
        &self,
        res: &ResourceInfo,
        obj: &mut Value,
        old: Option<&Value>,
        got: &mut Allocated,
    ) -> Result<(), ApiError> {
        let owner = Self::owner_of(obj);
        let old_ip = old.and_then(|o| cluster_ip(&o["spec"]).map(String::from));
        if needs_ip(&obj["spec"]) {
            // clusterIPs alone names the IP as well (clusterIP mirrors its first entry).
            let first = obj["spec"]["clusterIPs"][0].as_str().map(String::from);
            if obj["spec"]["clusterIP"].as_str().is_none_or(str::is_empty)
                && let Some(first) = first.filter(|f| !f.is_empty())
            {
                obj["spec"]["clusterIP"] = json!(first);
            }
            match cluster_ip(&obj["spec"]).map(String::from) {
                // Unchanged on update: already held.
                Some(ip) if old_ip.as_deref() == Some(ip.as_str()) => {}
                Some(ip) => {
                    let addr = self.ip_in_range(res, obj, &ip)?;
                    if !self.claim(&ip_key(addr), &owner, got).await? {
                        return Err(self.ip_error(res, obj, &ip, "provided IP is already allocated"));
                    }
                    obj["spec"]["clusterIPs"] = json!([ip]);
                }
                None => {
                    // Dynamic allocations skip the first address, the `kubernetes` Service's,
                    // and prefer the band above the static one (which starts at that address).
                    let first = u64::from(self.network) + 2;
                    let count = self.size.saturating_sub(3);
                    let reserved = static_band(self.size.saturating_sub(2), 16, 256).saturating_sub(1);
                    let key_of = |n: u64| ip_key(Ipv4Addr::from(n as u32));
                    let range = (first, count, reserved);
                    let Some(n) = self.claim_any(&owner, range, "/registry/ipaddresses/", key_of, got).await? else {
                        return Err(ApiError::Internal("failed to allocate a serviceIP: range is full".into()));
                    };
                    let ip = Ipv4Addr::from(n as u32).to_string();
                    obj["spec"]["clusterIP"] = json!(ip);
                    obj["spec"]["clusterIPs"] = json!([ip]);
                }
            }
            if cluster_ip(&obj["spec"]).is_some() {
                obj["spec"]["ipFamilies"] = json!(["IPv4"]);
                obj["spec"]["ipFamilyPolicy"] = json!("SingleStack");
            }
        }
        if !needs_node_ports(&obj["spec"]) {
            return Ok(());
        }
        let held: HashSet<i64> = old.map(|o| node_ports(&o["spec"]).into_iter().collect()).unwrap_or_default();
        let mut mine: HashSet<i64> = HashSet::new();
        let count = obj["spec"]["ports"].as_array().map_or(0, Vec::len);
        // Explicit node ports first, so dynamic ones do not take them.
        for i in 0..count {
            let np = obj["spec"]["ports"][i]["nodePort"].as_i64().unwrap_or(0);
            if np == 0 || held.contains(&np) || !mine.insert(np) {
                continue;
            }
            let path = format!("spec.ports[{i}].nodePort");
            let port = u16::try_from(np).ok().filter(|p| (self.ports.0..=self.ports.1).contains(p));
            let Some(port) = port else {
                let msg = format!(
                    "provided port is not in the valid range. The range of valid ports is {}-{}",
                    self.ports.0, self.ports.1
                );
                return Err(ApiError::invalid(res, name_of(obj), vec![FieldError::invalid(path, &json!(np), &msg)]));
            };
            if !self.claim(&port_key(port), &owner, got).await? {
                let e = FieldError::invalid(path, &json!(np), "provided port is already allocated");
                return Err(ApiError::invalid(res, name_of(obj), vec![e]));
            }
        }
        for i in 0..count {
            if obj["spec"]["ports"][i]["nodePort"].as_i64().unwrap_or(0) != 0 {
                continue;
            }
            // The same port number over another protocol shares its node port, as Kubernetes does.
            let port = obj["spec"]["ports"][i]["port"].clone();
            let shared = (0..count)
                .filter(|j| *j != i && obj["spec"]["ports"][*j]["port"] == port)
                .find_map(|j| obj["spec"]["ports"][j]["nodePort"].as_i64().filter(|n| *n != 0));
            let np = match shared {
                Some(np) => np,
                None => {
                    let (lo, hi) = (u64::from(self.ports.0), u64::from(self.ports.1));
                    let key_of = |n: u64| port_key(n as u16);
                    let range = (lo, hi - lo + 1, static_band(hi - lo + 1, 32, 128));
                    let got_port = self.claim_any(&owner, range, "/registry/ranges/nodeports/", key_of, got).await?;
                    let Some(n) = got_port else {
                        return Err(ApiError::Internal("failed to allocate a nodePort: range is full".into()));
                    };
                    n as i64
                }
            };
            obj["spec"]["ports"][i]["nodePort"] = json!(np);
        }
        Ok(())
    }

    /// Releases what a failed write allocated.
    pub async fn release_allocated(&self, got: Allocated) {
        for key in got.keys {
            if let Ok(Some(kv)) = self.store.get(&key).await {
                let _ = self.store.delete(&key, kv.mod_revision).await;
            }
        }
    }

    /// Deletes `key` if it still names `uid` as its owner.
    async fn release_key(&self, key: &str, uid: &str) {
        let Ok(Some(kv)) = self.store.get(key).await else { return };
        let owner: Option<Owner> = serde_json::from_slice(&kv.value).ok();
        if owner.is_some_and(|o| o.uid == uid)
            && let Err(e) = self.store.delete(key, kv.mod_revision).await
        {
            tracing::warn!(key, error = %e, "could not release a Service allocation");
        }
    }

    /// Releases what `old` holds and `new` (the same Service after an update, or None after
    /// its deletion) no longer does.
    pub async fn release(&self, old: &Value, new: Option<&Value>) {
        let uid = meta_str(old, "uid").unwrap_or_default().to_string();
        let new_ip = new.and_then(|n| cluster_ip(&n["spec"]));
        if let Some(ip) = cluster_ip(&old["spec"]).and_then(|ip| ip.parse::<Ipv4Addr>().ok())
            && new_ip != Some(ip.to_string().as_str())
        {
            self.release_key(&ip_key(ip), &uid).await;
        }
        let kept: HashSet<i64> = new.map(|n| node_ports(&n["spec"]).into_iter().collect()).unwrap_or_default();
        for np in node_ports(&old["spec"]) {
            if !kept.contains(&np)
                && let Ok(port) = u16::try_from(np)
            {
                self.release_key(&port_key(port), &uid).await;
            }
        }
    }

    /// One repair pass: an allocation whose owner no longer exists with that IP or port is
    /// released once it was found leaked by two passes in a row (a create in flight holds its
    /// keys for a moment before its Service is written).
    pub async fn repair(&self) -> Result<(), StorageError> {
        let mut leaked = HashMap::new();
        for prefix in ["/registry/ipaddresses/", "/registry/ranges/nodeports/"] {
            for kv in self.store.list(prefix, None, 0, 0).await?.items {
                let value = &kv.key[prefix.len()..];
                let owner: Option<Owner> = serde_json::from_slice(&kv.value).ok();
                let live = match &owner {
                    Some(o) => self.store.get(&services().key(Some(&o.namespace), &o.name)).await?,
                    None => None,
                };
                let svc = match live {
                    // An owner that cannot be read is assumed to hold its keys: never release on doubt.
                    Some(kv) => match crate::meta::decode_stored(&kv.value, kv.mod_revision) {
                        Ok(s) => Some(s),
                        Err(_) => continue,
                    },
                    None => None,
                };
                let holds = svc.is_some_and(|s| {
                    owner.as_ref().is_some_and(|o| meta_str(&s, "uid") == Some(o.uid.as_str()))
                        && if prefix.contains("ipaddresses") {
                            cluster_ip(&s["spec"]) == Some(value)
                        } else {
                            needs_node_ports(&s["spec"])
                                && node_ports(&s["spec"]).iter().any(|p| p.to_string() == value)
                        }
                });
                if !holds {
                    leaked.insert(kv.key.clone(), kv.mod_revision);
                }
            }
        }
        let previous = std::mem::take(&mut *self.suspects.lock().unwrap_or_else(|e| e.into_inner()));
        for (key, rev) in &leaked {
            if previous.get(key) == Some(rev) {
                tracing::info!(key, "releasing a leaked Service allocation");
                let _ = self.store.delete(key, *rev).await;
            }
        }
        leaked.retain(|k, r| previous.get(k) != Some(r));
        *self.suspects.lock().unwrap_or_else(|e| e.into_inner()) = leaked;
        Ok(())
    }

    /// Runs the repair pass at start and every few minutes until shutdown.
    pub fn spawn_repair(self: std::sync::Arc<Self>, shutdown: CancellationToken) {
        tokio::spawn(async move {
            loop {
                if let Err(e) = self.repair().await {
                    tracing::warn!(error = %e, "Service allocation repair failed");
                }
                tokio::select! {
                    _ = tokio::time::sleep(REPAIR_INTERVAL) => {}
                    _ = shutdown.cancelled() => return,
                }
            }
        });
    }
}

/// The node ports a Service spec uses.
/// The size of the static band at the bottom of a range of `size` values that dynamic
/// allocation avoids while it can: `size / step` kept between 16 and `max`, none when the
/// range is smaller than 16 (Kubernetes' service IP and node port static subranges use steps
/// 16 and 32, maxima 256 and 128).
fn static_band(size: u64, step: u64, max: u64) -> u64 {
    if size < 16 { 0 } else { (size / step).clamp(16, max) }
}

fn node_ports(spec: &Value) -> Vec<i64> {
    spec["ports"].as_array().into_iter().flatten().filter_map(|p| p["nodePort"].as_i64()).filter(|n| *n != 0).collect()
}

/// On update, carries over what the client left out but the Service already holds (its cluster
/// IP, the node ports of matching ports) and drops what the new type may not have, as
/// Kubernetes' Service strategy does.
pub fn patch_allocated_values(new: &mut Value, old: &Value) {
    let (old_spec, new_type) = (&old["spec"], new["spec"]["type"].as_str().unwrap_or("ClusterIP").to_string());
    let old_type = old_spec["type"].as_str().unwrap_or("ClusterIP");
    let Some(spec) = new.get_mut("spec").filter(|s| s.is_object()) else { return };
    if new_type == "ExternalName" {
        if old_type != "ExternalName"
            && spec["clusterIP"] == old_spec["clusterIP"]
            && let Some(m) = spec.as_object_mut()
        {
            for f in ["clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"] {
                m.remove(f);
            }
        }
    } else if old_type != "ExternalName"
        && spec["clusterIP"].as_str().is_none_or(str::is_empty)
        && spec["clusterIPs"].as_array().is_none_or(Vec::is_empty)
        && cluster_ip(old_spec).is_some()
    {
        spec["clusterIP"] = old_spec["clusterIP"].clone();
        spec["clusterIPs"] = old_spec["clusterIPs"].clone();
    }
    let needs = needs_node_ports(spec);
    if let Some(m) = spec.as_object_mut() {
        // Fields of the external types go with the type when the client left them as they were.
        let mut drop_unchanged = |field: &str, applies: bool| {
            if !applies && m.get(field).is_some() && m.get(field) == old_spec.get(field) {
                m.remove(field);
            }
        };
        drop_unchanged("externalTrafficPolicy", needs);
        drop_unchanged("healthCheckNodePort", needs);
        drop_unchanged("allocateLoadBalancerNodePorts", new_type == "LoadBalancer");
        drop_unchanged("loadBalancerClass", new_type == "LoadBalancer");
    }
    let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) else { return };
    let old_ports = old_spec["ports"].as_array().cloned().unwrap_or_default();
    for p in ports.iter_mut() {
        let matching = old_ports.iter().find(|o| o["port"] == p["port"] && o["protocol"] == p["protocol"]);
        let old_np = matching.and_then(|o| o["nodePort"].as_i64()).filter(|n| *n != 0);
        let np = p["nodePort"].as_i64().unwrap_or(0);
        if needs && np == 0 && needs_node_ports(old_spec) {
            if let Some(n) = old_np {
                p["nodePort"] = json!(n);
            }
        } else if !needs
            && np != 0
            && old_np == Some(np)
            && let Some(m) = p.as_object_mut()
        {
            // Leaving NodePort: the unchanged node ports go with the type.
            m.remove("nodePort");
        }
    }
}

/// Creates the `kubernetes` Service in `default` with the first IP of the range, and points
/// its Endpoints at this API server; idempotent across restarts and several servers.
pub async fn bootstrap(registry: &crate::Registry, allocator: &Allocator, ip: &str, port: u16) {
    let opts = crate::objects::WriteOptions::default();
    let svc = json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "kubernetes", "namespace": "default",
            "labels": {"component": "apiserver", "provider": "kubernetes"}},
        "spec": {"type": "ClusterIP", "clusterIP": allocator.first_ip().to_string(), "sessionAffinity": "None",
            "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": port}]}});
    // Looked up first: creating it again would fail on its IP before its name.
    let exists = registry.get(services(), Some("default"), "kubernetes").await;
    if matches!(exists, Err(ApiError::NotFound { .. })) {
        match registry.create(services(), Some("default"), svc, &opts).await {
            Ok(_) => tracing::info!("created the kubernetes Service"),
            Err(ApiError::AlreadyExists { .. }) => {}
            Err(e) => tracing::warn!(error = %e, "could not create the kubernetes Service"),
        }
    }
    let Some(endpoints) = registry::lookup("", "v1", "endpoints") else { return };
    let subsets = json!([{"addresses": [{"ip": ip}], "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}]);
    let eps = json!({"apiVersion": "v1", "kind": "Endpoints",
        "metadata": {"name": "kubernetes", "namespace": "default",
            "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
        "subsets": subsets});
    match registry.create(endpoints, Some("default"), eps, &opts).await {
        Ok(_) => {}
        Err(ApiError::AlreadyExists { .. }) => {
            // Another server (or this one before a restart) wrote it: point it at this server,
            // keeping the other servers' addresses when they share the port.
            let result = registry
                .write(endpoints, Some("default"), "kubernetes", crate::objects::Part::Main, &opts, |old| {
                    let mut new = old.clone();
                    let old_port = old.pointer("/subsets/0/ports/0/port").and_then(Value::as_i64);
                    let same_port = old_port == Some(i64::from(port));
                    let mut addresses = if same_port {
                        old.pointer("/subsets/0/addresses").and_then(Value::as_array).cloned().unwrap_or_default()
                    } else {
                        Vec::new()
                    };
                    if !addresses.iter().any(|a| a["ip"] == ip) {
                        addresses.push(json!({"ip": ip}));
                    }
                    let ports = json!([{"name": "https", "port": port, "protocol": "TCP"}]);
                    new["subsets"] = json!([{"addresses": addresses, "ports": ports}]);
                    Ok(new)
                })
                .await;
            if let Err(e) = result {
                tracing::warn!(error = %e, "could not update the kubernetes Endpoints");
            }
        }
        Err(e) => tracing::warn!(error = %e, "could not create the kubernetes Endpoints"),
    }
    bootstrap_slice(registry, ip, port).await;
}

/// The `kubernetes` EndpointSlice (what proxies read), kept like the Endpoints: this server's
/// address added to those of other servers on the same port.
async fn bootstrap_slice(registry: &crate::Registry, ip: &str, port: u16) {
    let opts = crate::objects::WriteOptions::default();
    let Some(slices) = registry::lookup("discovery.k8s.io", "v1", "endpointslices") else { return };
    let ports = json!([{"name": "https", "port": port, "protocol": "TCP"}]);
    let endpoint =
        |ip: &str| json!({"addresses": [ip], "conditions": {"ready": true, "serving": true, "terminating": false}});
    let slice = json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "kubernetes", "namespace": "default", "labels": {"kubernetes.io/service-name": "kubernetes"}},
        "addressType": "IPv4", "endpoints": [endpoint(ip)], "ports": ports});
    match registry.create(slices, Some("default"), slice, &opts).await {
        Ok(_) => {}
        Err(ApiError::AlreadyExists { .. }) => {
            let result = registry
                .write(slices, Some("default"), "kubernetes", crate::objects::Part::Main, &opts, |old| {
                    let mut new = old.clone();
                    let same_port = old.pointer("/ports/0/port").and_then(Value::as_i64) == Some(i64::from(port));
                    let mut endpoints =
                        if same_port { old["endpoints"].as_array().cloned().unwrap_or_default() } else { Vec::new() };
                    if !endpoints.iter().any(|e| e["addresses"][0] == ip) {
                        endpoints.push(endpoint(ip));
                    }
                    new["endpoints"] = json!(endpoints);
                    new["ports"] = ports.clone();
                    Ok(new)
                })
                .await;
            if let Err(e) = result {
                tracing::warn!(error = %e, "could not update the kubernetes EndpointSlice");
            }
        }
        Err(e) => tracing::warn!(error = %e, "could not create the kubernetes EndpointSlice"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_bands_follow_kubernetes() {
        // Service IPs: a /24 keeps 16 addresses, a /12 the maximum of 256, a /28 none.
        assert_eq!(static_band(254, 16, 256), 16);
        assert_eq!(static_band((1 << 20) - 2, 16, 256), 256);
        assert_eq!(static_band(14, 16, 256), 0);
        // Node ports: the default 30000-32767 keeps 86, small ranges 16, large ones 128.
        assert_eq!(static_band(2768, 32, 128), 86);
        assert_eq!(static_band(100, 32, 128), 16);
        assert_eq!(static_band(30000, 32, 128), 128);
    }

    #[test]
    fn patch_keeps_allocated_values_and_drops_node_ports_with_the_type() {
        let old = json!({"spec": {"type": "NodePort", "clusterIP": "10.96.0.9", "clusterIPs": ["10.96.0.9"],
            "ports": [{"port": 80, "protocol": "TCP", "nodePort": 30080}]}});
        let mut new = json!({"spec": {"type": "NodePort", "ports": [{"port": 80, "protocol": "TCP"}]}});
        patch_allocated_values(&mut new, &old);
        assert_eq!(new["spec"]["clusterIP"], "10.96.0.9");
        assert_eq!(new["spec"]["ports"][0]["nodePort"], 30080);
        let mut to_cluster_ip = old.clone();
        to_cluster_ip["spec"]["type"] = json!("ClusterIP");
        patch_allocated_values(&mut to_cluster_ip, &old);
        assert!(to_cluster_ip["spec"]["ports"][0].get("nodePort").is_none());
    }
}
