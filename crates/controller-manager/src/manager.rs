//! Runs the enabled controllers while holding the leader Lease: one set of shared informers,
//! every controller registered on it, workers started once the caches have synced.

use crate::controllers::ALL;
use crate::informers::SharedInformers;
use crate::runtime::Metrics;
use crate::{Config, Context, Error};
use rkube_client::{EventRecorder, LeaderElectionConfig, LeaderElector};
use rkube_daemon::Readiness;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Runs the controller-manager until `cancel` fires; with leader election, only while leading.
pub async fn run(config: Config, cancel: CancellationToken) -> Result<(), Error> {
    let identity = LeaderElectionConfig::default_identity();
    let client = config.api.client()?.with_field_manager("rkube-controller-manager");
    let readiness = Readiness::default();
    let metrics = Arc::new(Metrics::default());
    if config.secure_port != 0 {
        let address = format!("{}:{}", config.bind_address, config.secure_port);
        let m = metrics.clone();
        rkube_daemon::serve_health(&address, readiness.clone(), move || m.text(), cancel.clone())
            .await
            .map_err(|source| Error::Health { address, source })?;
    }
    let ctx = Context {
        recorder: EventRecorder::new(&client, "controller-manager", &identity),
        client: client.clone(),
        config: Arc::new(config.clone()),
    };
    if !config.leader_elect {
        lead(ctx, metrics, readiness, cancel).await;
        return Ok(());
    }
    let election = LeaderElectionConfig {
        lease_duration: config.leader_elect_lease_duration,
        renew_deadline: config.leader_elect_renew_deadline,
        retry_period: config.leader_elect_retry_period,
        ..LeaderElectionConfig::new(
            &config.leader_elect_resource_namespace,
            &config.leader_elect_resource_name,
            &identity,
        )
    };
    LeaderElector::new(&client, election).run(cancel, move |leading| lead(ctx, metrics, readiness, leading)).await?;
    Ok(())
}

async fn lead(ctx: Context, metrics: Arc<Metrics>, readiness: Readiness, cancel: CancellationToken) {
    let informers = SharedInformers::new(ctx.client.clone());
    let registrations: Vec<_> = ALL
        .iter()
        .filter(|(name, _, _)| ctx.config.enabled(name) && crate::controllers::configured(&ctx, name))
        .map(|(_, component, register)| {
            let ctx = Context { recorder: ctx.recorder.for_component(component), ..ctx.clone() };
            register(&ctx, &informers)
        })
        .collect();
    informers.start(&cancel);
    tokio::select! {
        _ = informers.wait_synced() => {}
        _ = cancel.cancelled() => return,
    }
    tracing::info!(controllers = ?registrations.iter().map(|r| r.name).collect::<Vec<_>>(), "caches synced; starting controllers");
    let workers = ctx.config.concurrent_syncs;
    let handles: Vec<_> = registrations
        .into_iter()
        .map(|r| {
            let m = metrics.register(r.name, r.queue.clone());
            r.start(workers, m, cancel.clone())
        })
        .collect();
    readiness.set(true);
    for h in handles {
        let _ = h.await;
    }
    readiness.set(false);
}
