//! The daemon: informers on Services and EndpointSlices wake a sync loop that applies at
//! most one sync per `--min-sync-period` (changes in between are folded into the next) and
//! at least one per `--sync-period`; the cluster DNS server and, with `--network-policy`, the
//! NetworkPolicy enforcement (informers on Pods, Namespaces and NetworkPolicies, its own loop
//! and table) run beside it.

use crate::config::{Config, Resolved};
use crate::error::ProxyError;
use crate::metrics::Metrics;
use crate::proxier::{Proxier, SLICE_SERVICE_INDEX, collect_ports, route_to_local, slice_service};
use crate::rules::RulesConfig;
use crate::pacer::SyncPacer;
use crate::{dns, netpol, nft, sysctl};
use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use rkube_client::{Informer, ListParams, Store};
use rkube_daemon::Readiness;
use std::net::SocketAddrV4;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// How long the NetworkPolicy caches may take to fill before each warning.
const POLICY_SYNC_WARNING: Duration = Duration::from_secs(30);

/// Runs the proxy until `token` is cancelled. The table is left in place on exit, so
/// traffic keeps flowing while the proxy restarts; `--cleanup` removes it instead.
pub async fn run(config: Config, token: CancellationToken) -> Result<(), ProxyError> {
    let resolved = config.resolve()?;
    if config.cleanup {
        let removed = nft::delete_table(&config.nftables_table)?;
        let policy_table = netpol::table_name(&config.nftables_table);
        let removed_policies = nft::delete_table(&policy_table)?;
        tracing::info!(table = %config.nftables_table, removed, policy_table = %policy_table, removed_policies, "cleanup done");
        return Ok(());
    }
    // Refuse an unusable DNS listener before touching anything.
    let mut dns_config = config.dns_config.clone();
    dns_config.dns_listen = dns::bind_addresses(&dns_config.dns_listen, resolved.node_ips[0]);
    let dns_target = if config.dns { Some(dns::route_target(&dns_config.dns_listen)?) } else { None };
    sysctl::ensure();
    let client = config.api.client()?.with_field_manager("rkube-proxy");
    let metrics = Arc::new(Metrics::default());
    let readiness = Readiness::default();
    if config.healthz_port != 0 {
        let address = format!("{}:{}", config.bind_address, config.healthz_port);
        let m = metrics.clone();
        let bound = rkube_daemon::serve_health(&address, readiness.clone(), move || m.render(), token.clone())
            .await
            .map_err(|source| ProxyError::Health { address: address.clone(), source })?;
        tracing::info!(address = %bound, "serving /healthz, /readyz and /metrics");
    }

    let wake = Arc::new(Notify::new());
    let mut services = Informer::new(client.api::<Service>(None), ListParams::default());
    let mut slices = Informer::new(client.api::<EndpointSlice>(None), ListParams::default());
    let w = wake.clone();
    services.on_event(move |_| w.notify_one());
    let w = wake.clone();
    slices.on_event(move |_| w.notify_one());
    let (service_store, slice_store) = (services.store(), slices.store());
    slice_store.add_index(SLICE_SERVICE_INDEX, slice_service);
    let informers = token.child_token();
    tokio::spawn(services.run(informers.clone()));
    tokio::spawn(slices.run(informers.clone()));

    let policy_task = if config.network_policy {
        let wake = Arc::new(Notify::new());
        let mut pods = Informer::new(client.api::<Pod>(None), ListParams::default());
        let mut namespaces = Informer::new(client.api::<Namespace>(None), ListParams::default());
        let mut policies = Informer::new(client.api::<NetworkPolicy>(None), ListParams::default());
        let w = wake.clone();
        pods.on_event(move |_| w.notify_one());
        let w = wake.clone();
        namespaces.on_event(move |_| w.notify_one());
        let w = wake.clone();
        policies.on_event(move |_| w.notify_one());
        let sources = netpol::enforcer::Sources {
            pods: pods.store(),
            namespaces: namespaces.store(),
            policies: policies.store(),
            node: resolved.node_name.clone(),
            dns: dns_target,
        };
        tokio::spawn(pods.run(informers.clone()));
        tokio::spawn(namespaces.run(informers.clone()));
        tokio::spawn(policies.run(informers.clone()));
        let table = netpol::table_name(&config.nftables_table);
        let (min, period, token) = (config.min_sync_period, config.sync_period, token.clone());
        Some(tokio::spawn(async move {
            // A partial view could lift isolation that holds: wait for every cache first.
            let (p, n, np) = (sources.pods.clone(), sources.namespaces.clone(), sources.policies.clone());
            let synced = async move {
                p.wait_synced().await;
                n.wait_synced().await;
                np.wait_synced().await;
            };
            tokio::pin!(synced);
            loop {
                tokio::select! {
                    _ = &mut synced => break,
                    _ = tokio::time::sleep(POLICY_SYNC_WARNING) => {
                        // The usual cause is RBAC: Kubernetes' system:node-proxier role has no
                        // right to list Pods, Namespaces or NetworkPolicies.
                        tracing::warn!(
                            pods = sources.pods.is_synced(), namespaces = sources.namespaces.is_synced(),
                            policies = sources.policies.is_synced(),
                            "network policy caches not synced yet: may this proxy list and watch pods, namespaces and networkpolicies?"
                        );
                    }
                    _ = token.cancelled() => return,
                }
            }
            tracing::info!(table = %table, pods = sources.pods.len(), policies = sources.policies.len(), "enforcing network policies");
            netpol::enforcer::run_loop(table, sources, wake, min, period, token).await;
        }))
    } else {
        // Rules left by an earlier run would keep enforcing stale policies.
        let table = netpol::table_name(&config.nftables_table);
        match nft::delete_table(&table) {
            Ok(removed) => {
                tracing::info!(table = %table, removed, "network policies not enforced (--network-policy=false)")
            }
            Err(e) => tracing::warn!(table = %table, error = %e, "cannot remove the network policy table"),
        }
        None
    };

    let dns_task = match dns_target {
        Some(_) => {
            let (client, ip, token) = (client.clone(), config.cluster_dns_ip, token.clone());
            Some(tokio::spawn(async move {
                dns::ensure_service(&client, ip, &token).await;
                // The DNS server cancels the token it is given when its sockets fail; that
                // must not stop the proxy.
                if let Err(e) = rkube_dns::run(dns_config, client, token.child_token()).await {
                    tracing::error!(error = %e, "cluster DNS server stopped");
                }
            }))
        }
        None => None,
    };

    tokio::select! {
        _ = async { service_store.wait_synced().await; slice_store.wait_synced().await } => {}
        _ = token.cancelled() => {
            if let Some(task) = policy_task {
                let _ = task.await;
            }
            return Ok(());
        }
    }
    tracing::info!(
        table = %config.nftables_table, node = %resolved.node_name, services = service_store.len(),
        slices = slice_store.len(), "caches synced; programming nftables"
    );
    let caches = Caches { services: service_store, slices: slice_store, dns_target, node: resolved.node_name.clone() };
    sync_loop(&config, &resolved, caches, wake, metrics, readiness, &token).await;
    informers.cancel();
    if let Some(task) = policy_task {
        let _ = task.await;
    }
    if let Some(task) = dns_task {
        let _ = task.await;
    }
    Ok(())
}

/// What a sync reads.
struct Caches {
    services: Store<Service>,
    slices: Store<EndpointSlice>,
    dns_target: Option<SocketAddrV4>,
    node: String,
}

impl Caches {
    fn ports(&self) -> Vec<crate::model::ServicePort> {
        let mut ports = collect_ports(&self.services, &self.slices);
        if let Some(target) = self.dns_target {
            let key = format!("{}/{}", dns::NAMESPACE, dns::NAME);
            // A kube-dns with a selector is someone else's DNS: its own endpoints serve it.
            let selectorless = self
                .services
                .get(&key)
                .is_some_and(|s| s.spec.as_ref().and_then(|s| s.selector.as_ref()).is_none_or(|m| m.is_empty()));
            if selectorless {
                route_to_local(&mut ports, dns::NAMESPACE, dns::NAME, target, &self.node);
            }
        }
        ports
    }
}

async fn sync_loop(
    config: &Config,
    resolved: &Resolved,
    caches: Caches,
    wake: Arc<Notify>,
    metrics: Arc<Metrics>,
    readiness: Readiness,
    token: &CancellationToken,
) {
    let rules = RulesConfig {
        node_name: resolved.node_name.clone(),
        cluster_cidrs: resolved.cluster_cidrs.clone(),
        nodeport_addresses: resolved.nodeport_addresses.clone(),
        masquerade_all: config.masquerade_all,
    };
    let mut proxier = Some(Proxier::new(&config.nftables_table, rules));
    let caches = Arc::new(caches);
    let mut pacer = SyncPacer::new(config.min_sync_period, config.sync_period);
    loop {
        let Some(check) = pacer.next(&wake, token).await else { return };
        let Some(mut p) = proxier.take() else { return };
        let c = caches.clone();
        let joined = tokio::task::spawn_blocking(move || {
            let result = if check { p.check_table() } else { Ok(()) }.and_then(|()| p.sync(c.ports()));
            (p, result)
        })
        .await;
        let (p, result) = match joined {
            Ok(pair) => pair,
            Err(e) => {
                tracing::error!(error = %e, "sync task failed");
                return;
            }
        };
        proxier = Some(p);
        match result {
            Ok(stats) => {
                pacer.succeeded();
                metrics.synced(&stats);
                readiness.set(true);
                if stats.changed {
                    tracing::info!(
                        service_ports = stats.service_ports,
                        endpoints = stats.endpoints,
                        chains = stats.chains,
                        rules = stats.rules,
                        bytes = stats.script_bytes,
                        compute_ms = stats.compute.as_millis() as u64,
                        apply_ms = stats.apply.as_millis() as u64,
                        "synced nftables"
                    );
                } else {
                    tracing::debug!(service_ports = stats.service_ports, "nftables already up to date");
                }
            }
            Err(e) => {
                metrics.failed();
                let next = pacer.failed();
                tracing::error!(error = %e, retry_in = ?next, "sync failed");
            }
        }
    }
}
