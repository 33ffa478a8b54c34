//! One sync: Services and EndpointSlices in the caches -> [`ServicePort`]s -> the desired
//! [`Ruleset`] -> the smallest transaction that gets the kernel there. Synchronous (it runs
//! `nft`), so the daemon calls it from a blocking task; the benchmark calls it directly.

use crate::conntrack;
use crate::error::ProxyError;
use crate::model::{SERVICE_NAME_LABEL, ServicePort, service_ports};
use crate::nft::{self, Applied};
use crate::rules::{self, RulesConfig};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use rkube_client::{Store, object_key};
use std::net::SocketAddrV4;
use std::time::{Duration, Instant};

/// Index of EndpointSlices by the `namespace/name` of their Service.
pub const SLICE_SERVICE_INDEX: &str = "service";

/// Index function for [`SLICE_SERVICE_INDEX`].
pub fn slice_service(slice: &EndpointSlice) -> Vec<String> {
    let service = slice.metadata.labels.as_ref().and_then(|l| l.get(SERVICE_NAME_LABEL));
    match (slice.metadata.namespace.as_deref(), service) {
        (Some(ns), Some(name)) => vec![format!("{ns}/{name}")],
        _ => Vec::new(),
    }
}

/// Every routed Service port in the caches, in a stable order (`namespace/name`, protocol,
/// port), so that conflicting claims resolve the same way on every node.
pub fn collect_ports(services: &Store<Service>, slices: &Store<EndpointSlice>) -> Vec<ServicePort> {
    let mut ports = Vec::new();
    for service in services.list() {
        let own = slices.by_index(SLICE_SERVICE_INDEX, &object_key(&service.metadata));
        ports.extend(service_ports(&service, &own));
    }
    ports.sort_by(|a, b| {
        (&a.namespace, &a.service, a.protocol, a.port).cmp(&(&b.namespace, &b.service, b.protocol, b.port))
    });
    ports
}

/// Routes the ports of Service `namespace/name` (when it has no selector, i.e. nobody else
/// manages its endpoints) to `target` on this node: the cluster DNS Service to the DNS server
/// this process hosts. Returns whether the Service was found.
pub fn route_to_local(
    ports: &mut [ServicePort],
    namespace: &str,
    name: &str,
    target: SocketAddrV4,
    node: &str,
) -> bool {
    let mut found = false;
    for sp in ports.iter_mut().filter(|sp| sp.namespace == namespace && sp.service == name) {
        found = true;
        sp.endpoints = vec![crate::model::Endpoint {
            ip: *target.ip(),
            port: target.port(),
            node_name: Some(node.to_string()),
            ready: true,
            serving: true,
            terminating: false,
        }];
    }
    found
}

/// What one sync did.
#[derive(Debug, Clone, Default)]
pub struct SyncStats {
    /// Service ports routed.
    pub service_ports: usize,
    /// Endpoints over all Service ports.
    pub endpoints: usize,
    /// Chains in the table.
    pub chains: usize,
    /// Rules in the table.
    pub rules: usize,
    /// Whether the kernel was changed.
    pub changed: bool,
    /// Bytes of the transaction sent to nft (0 when nothing changed).
    pub script_bytes: usize,
    /// Time spent computing the ruleset and the transaction.
    pub compute: Duration,
    /// Time nft took to apply it.
    pub apply: Duration,
}

/// Keeps one nftables table in step with the Service ports it is given.
pub struct Proxier {
    table: String,
    rules: RulesConfig,
    /// What the kernel holds; None until read from it (at start, after a failure, or when the
    /// table was found missing).
    applied: Option<Applied>,
    last_ports: Vec<ServicePort>,
}

impl Proxier {
    /// A proxier for table `ip <table>`.
    pub fn new(table: &str, rules: RulesConfig) -> Proxier {
        Proxier { table: table.to_string(), rules, applied: None, last_ports: Vec::new() }
    }

    /// The table's name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// Forgets what the kernel holds when the table is gone (deleted by hand), so the next
    /// sync recreates it.
    pub fn check_table(&mut self) -> Result<(), ProxyError> {
        if self.applied.as_ref().is_some_and(|a| !a.is_empty()) && !nft::table_exists(&self.table)? {
            tracing::warn!(table = %self.table, "nftables table disappeared; recreating it");
            self.applied = None;
        }
        Ok(())
    }

    /// Makes the table route `ports`. On failure the kernel is left as it was (the
    /// transaction is all or nothing) and the next sync starts from the kernel's state.
    pub fn sync(&mut self, ports: Vec<ServicePort>) -> Result<SyncStats, ProxyError> {
        let started = Instant::now();
        let ruleset = rules::build(&self.rules, &ports);
        let mut stats = SyncStats {
            service_ports: ports.len(),
            endpoints: ports.iter().map(|p| p.endpoints.len()).sum(),
            chains: ruleset.chains.len(),
            rules: ruleset.rule_count(),
            ..Default::default()
        };
        let applied = match self.applied.take() {
            Some(a) => a,
            None => nft::read_table(&self.table)?,
        };
        let script = nft::transaction(&self.table, &applied, &ruleset);
        stats.compute = started.elapsed();
        if let Some(script) = script {
            stats.changed = true;
            stats.script_bytes = script.len();
            let applying = Instant::now();
            if let Err(first) = nft::apply(&script) {
                // The kernel may differ from what we believe (the table edited by hand):
                // rewrite everything from what is really there.
                tracing::warn!(table = %self.table, error = %first, "incremental update failed; rewriting the table");
                let applied = nft::read_table(&self.table)?;
                let script = nft::transaction(&self.table, &applied, &ruleset)
                    .unwrap_or_else(|| format!("add table ip {}\n", self.table));
                stats.script_bytes = script.len();
                nft::apply(&script)?;
            }
            stats.apply = applying.elapsed();
        }
        self.applied = Some(Applied::known(ruleset));
        conntrack::clear(&conntrack::stale_flows(&self.last_ports, &ports, &self.rules.node_name));
        let old_ports = std::mem::replace(&mut self.last_ports, ports);
        // Freeing the previous state (hundreds of thousands of strings at 10,000 Services)
        // takes about as long as computing the diff: let it happen off the sync's path.
        std::thread::spawn(move || drop((applied, old_ports)));
        Ok(stats)
    }
}
