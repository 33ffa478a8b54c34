//! The kubelet: registers its Node and renews its Lease, runs the Pods bound to it through
//! containerd's CRI (sandboxes, images, containers, volumes, probes) and reports their status.

pub mod authz;
pub mod config;
pub mod cri;
pub mod downward;
pub mod env;
pub mod eviction;
pub mod handlers;
pub mod imageload;
pub mod images;
pub mod logs;
pub mod node;
pub mod pods;
pub mod probes;
pub mod provisioner;
pub mod server;
pub mod stats;
pub mod streaming;
pub mod volumes;

pub use config::Config;

use anyhow::Context;
use rkube_client::EventRecorder;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Runs the kubelet until `token` is cancelled. Containers keep running after it returns.
pub async fn run(config: Config, token: CancellationToken) -> anyhow::Result<()> {
    let node_name = config.node_name();
    let client = config.api.client()?.with_field_manager("kubelet");
    let cri = cri::Cri::connect(&config.container_runtime_endpoint)?;
    let version = loop {
        match cri.version().await {
            Ok(v) => break v,
            Err(e) => {
                tracing::warn!(endpoint = %config.container_runtime_endpoint, error = %e, "container runtime not reachable yet");
                tokio::select! {
                    _ = token.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
    };
    tracing::info!(node = %node_name, runtime = %version.runtime_name, version = %version.runtime_version, "connected to the container runtime");
    std::fs::create_dir_all(&config.root_dir).with_context(|| format!("creating {}", config.root_dir.display()))?;
    std::fs::create_dir_all(&config.pod_logs_dir)
        .with_context(|| format!("creating {}", config.pod_logs_dir.display()))?;

    let host_ip = config.node_ip.clone().unwrap_or_else(|| rkube_daemon::node_address().to_string());
    let listener = tokio::net::TcpListener::bind((config.address.as_str(), config.port))
        .await
        .with_context(|| format!("binding the kubelet port {}:{}", config.address, config.port))?;
    let kubelet_port = listener.local_addr()?.port();
    let stats = Arc::new(stats::StatsProvider::new(cri.clone(), node_name.clone()));
    let loader = imageload::ImageLoader::connect(&config.container_runtime_endpoint, cri.clone())?;
    let app = server::router(cri.clone(), token.clone()).merge(stats::router(stats)).merge(imageload::router(loader));
    let tls = config.tls.acceptor()?;
    let checks_certificates = tls.is_some() && config.tls.client_ca_file.is_some();
    let access = match (config.authorization_mode.as_str(), checks_certificates) {
        ("Webhook", true) => {
            let tokens = config.authentication_token_webhook;
            server::Access::Webhook(Arc::new(authz::WebhookAuthorizer::new(client.clone(), node_name.clone(), tokens)))
        }
        ("Webhook", false) => {
            anyhow::bail!("--authorization-mode=Webhook needs TLS with --client-ca-file to know who is calling")
        }
        (_, true) => server::Access::ClientCertificate,
        (_, false) => server::Access::Open,
    };
    tokio::spawn(server::serve_app(listener, app, tls, access, token.clone()));

    let readiness = rkube_daemon::Readiness::default();
    if config.healthz_port != 0 {
        let address = format!("{}:{}", config.address, config.healthz_port);
        rkube_daemon::serve_health(&address, readiness.clone(), String::new, token.clone()).await?;
    }

    let agent = Arc::new(node::NodeAgent::new(&config, client.clone(), cri.clone(), host_ip.clone(), kubelet_port)?);
    loop {
        match agent.register().await {
            Ok(()) => break,
            Err(e) => {
                tracing::warn!(node = %node_name, error = %e, "registering the node failed; retrying");
                tokio::select! {
                    _ = token.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                }
            }
        }
    }
    let (a, t) = (agent.clone(), token.clone());
    tokio::spawn(async move { a.run_status(t).await });
    let (a, t) = (agent.clone(), token.clone());
    tokio::spawn(async move { a.run_lease(t).await });

    let recorder = EventRecorder::new(&client, "kubelet", &node_name);
    let manager_slot: Arc<std::sync::OnceLock<Arc<pods::PodManager>>> = Arc::default();
    let slot = manager_slot.clone();
    let probes = probes::ProbeManager::new(
        cri.clone(),
        recorder.clone(),
        Arc::new(move |uid: &str| {
            if let Some(m) = slot.get() {
                m.poke(uid);
            }
        }),
    );
    let shared = Arc::new(pods::Shared {
        client: client.clone(),
        cri: cri.clone(),
        host_ip,
        settings: pods::spec::NodeSettings {
            cluster_dns: config.cluster_dns.clone(),
            cluster_domain: config.cluster_domain.clone(),
            resolv_conf: config.resolv_conf.clone(),
            pod_logs_dir: config.pod_logs_dir.clone(),
        },
        root_dir: config.root_dir.clone(),
        recorder: recorder.clone(),
        images: images::ImageManager::new(cri.clone(), config.max_parallel_image_pulls),
        probes,
        volumes: Arc::new(volumes::VolumeManager::new(client.clone(), config.root_dir.clone(), node_name.clone())),
        http: handlers::http_client(),
        sync_frequency: config.sync_frequency,
    });
    // The built-in local-path provisioner: its StorageClass, and the clean-up of released volumes.
    if let Err(e) = provisioner::ensure_storage_class(&client).await {
        tracing::warn!(error = %e, "creating the local-path StorageClass failed");
    }
    tokio::spawn(provisioner::run(client.clone(), node_name.clone(), config.root_dir.clone(), token.clone()));
    let manager = pods::PodManager::new(shared, &node_name, token.clone());
    let _ = manager_slot.set(manager.clone());
    tokio::spawn(eviction::run(
        client.clone(),
        recorder,
        manager.pods(),
        agent.pressure.clone(),
        Duration::from_secs(10),
        token.clone(),
    ));
    readiness.set(true);
    tracing::info!(node = %node_name, port = kubelet_port, "kubelet running");
    tokio::select! {
        _ = token.cancelled() => {}
        _ = manager.run() => {}
    }
    Ok(())
}
