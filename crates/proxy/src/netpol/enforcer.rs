//! Keeps table `ip <proxy table>-netpol` in step with the policies: informers on Pods,
//! Namespaces and NetworkPolicies wake a loop that recomputes the [`Enforcement`] and applies
//! the difference in one atomic `nft -f` transaction (at most one per `--min-sync-period`, at
//! least one check per `--sync-period`). The table only exists while some pod of this node is
//! isolated; it stays when the proxy exits, so policies keep holding across restarts.

use super::model::{Enforcement, PodView, PolicyView, compute, namespace_labels};
use super::rules;
use crate::error::ProxyError;
use crate::nft::{self, Applied};
use crate::pacer::SyncPacer;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use rkube_client::Store;
use std::net::SocketAddrV4;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// The policy table that goes with Service table `service_table`.
pub fn table_name(service_table: &str) -> String {
    format!("{service_table}-netpol")
}

/// Keeps one table in step with the [`Enforcement`]s it is given.
pub struct Enforcer {
    table: String,
    /// What the kernel holds; None until read from it.
    applied: Option<Applied>,
}

impl Enforcer {
    /// An enforcer of table `ip <table>`.
    pub fn new(table: &str) -> Enforcer {
        Enforcer { table: table.to_string(), applied: None }
    }

    /// Forgets what the kernel holds when the table was deleted by hand.
    pub fn check_table(&mut self) -> Result<(), ProxyError> {
        if self.applied.as_ref().is_some_and(|a| !a.is_empty()) && nft::read_table(&self.table)?.is_empty() {
            tracing::warn!(table = %self.table, "network policy table disappeared; recreating it");
            self.applied = None;
        }
        Ok(())
    }

    /// Makes the table enforce `e`; returns whether the kernel changed. All or nothing.
    pub fn sync(&mut self, e: &Enforcement) -> Result<bool, ProxyError> {
        if e.is_empty() {
            // Nothing isolated: no table, so traffic pays nothing for policies.
            if self.applied.as_ref().is_some_and(|a| a.is_empty()) {
                return Ok(false);
            }
            let removed = nft::delete_table(&self.table)?;
            self.applied = Some(Applied::default());
            return Ok(removed);
        }
        let ruleset = rules::build(e);
        let applied = match self.applied.take() {
            Some(a) => a,
            None => nft::read_table(&self.table)?,
        };
        let Some(script) = nft::transaction(&self.table, &applied, &ruleset) else {
            self.applied = Some(Applied::known(ruleset));
            return Ok(false);
        };
        if let Err(first) = nft::apply(&script) {
            tracing::warn!(table = %self.table, error = %first, "incremental update failed; rewriting the table");
            let applied = nft::read_table(&self.table)?;
            if let Some(script) = nft::transaction(&self.table, &applied, &ruleset) {
                nft::apply(&script)?;
            }
        }
        self.applied = Some(Applied::known(ruleset));
        Ok(true)
    }
}

/// What the enforcement is computed from.
pub struct Sources {
    /// Every pod of the cluster (peers) including this node's.
    pub pods: Store<Pod>,
    /// Namespaces, for namespaceSelectors.
    pub namespaces: Store<Namespace>,
    /// NetworkPolicies.
    pub policies: Store<NetworkPolicy>,
    /// This node's name.
    pub node: String,
    /// The cluster DNS server this proxy hosts, if any.
    pub dns: Option<SocketAddrV4>,
}

impl Sources {
    /// The enforcement the caches call for.
    pub fn enforcement(&self) -> Enforcement {
        let pods: Vec<PodView> = self.pods.list().iter().map(|p| PodView::from_pod(p)).collect();
        let namespaces = namespace_labels(&self.namespaces.list());
        let policies: Vec<PolicyView> = self.policies.list().iter().map(|p| PolicyView::from_policy(p)).collect();
        compute(&self.node, &pods, &namespaces, &policies, self.dns)
    }
}


/// Runs until `token` is cancelled: a sync at once, then one after each burst of changes
/// (`wake`), spaced by `min_sync_period`, and a check of the table every `sync_period`.
pub async fn run_loop(
    table: String,
    sources: Sources,
    wake: Arc<Notify>,
    min_sync_period: Duration,
    sync_period: Duration,
    token: CancellationToken,
) {
    let sources = Arc::new(sources);
    let mut enforcer = Some(Enforcer::new(&table));
    let mut pacer = SyncPacer::new(min_sync_period, sync_period);
    loop {
        let Some(check) = pacer.next(&wake, &token).await else { return };
        let Some(mut e) = enforcer.take() else { return };
        let s = sources.clone();
        let joined = tokio::task::spawn_blocking(move || {
            let wanted = s.enforcement();
            let pods = wanted.pods.len();
            let result = if check { e.check_table() } else { Ok(()) }.and_then(|()| e.sync(&wanted));
            (e, pods, result)
        })
        .await;
        let (e, pods, result) = match joined {
            Ok(triple) => triple,
            Err(err) => {
                tracing::error!(error = %err, "network policy sync task failed");
                return;
            }
        };
        enforcer = Some(e);
        match result {
            Ok(changed) => {
                pacer.succeeded();
                if changed {
                    tracing::info!(table = %table, isolated_pods = pods, "synced network policies");
                }
            }
            Err(err) => {
                let next = pacer.failed();
                tracing::error!(table = %table, error = %err, retry_in = ?next, "network policy sync failed");
            }
        }
    }
}
