//! rkube-apiserver: the only component that talks to etcd. Serves Kubernetes' REST API (for
//! kubectl, helm, client libraries) and the daemons' gRPC ResourceService on one listener,
//! both over one registry of objects backed by etcd and a shared watch cache.

pub mod access;
pub mod codec;
pub mod config;
pub mod crds;
pub mod csr;
pub mod discovery;
pub mod encryption;
pub mod error;
pub mod eviction;
pub mod grpc;
pub mod kubeletclient;
pub mod meta;
pub mod metrics;
pub mod mirror;
pub mod namespace;
pub mod negotiate;
pub mod nodeproxy;
pub mod objects;
pub mod openapi;
pub mod patch;
pub mod podproxy;
pub mod requestinfo;
pub mod rest;
pub mod reviews;
pub mod services;
pub mod strategy;
pub mod tokenrequest;
pub mod watch;

pub use config::Config;
pub use objects::Registry;

use rkube_api::registry::{self, RESOURCES};
use rkube_daemon::serve::{Connection, connection_builder};
use rkube_storage::{CacheLimits, DbStatus, ResourceSpec, Store, WatchCache};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Request counters for /metrics.
#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, u16), (u64, f64)>>,
}

impl Metrics {
    /// Counts one request by verb and code with its duration.
    pub fn observe(&self, verb: &str, code: u16, elapsed: Duration) {
        if let Ok(mut m) = self.requests.lock() {
            let e = m.entry((verb.to_string(), code)).or_insert((0, 0.0));
            e.0 += 1;
            e.1 += elapsed.as_secs_f64();
        }
    }
}

/// Everything a request handler needs.
pub struct Server {
    /// Objects in etcd and the watch cache.
    pub registry: Registry,
    /// Flags.
    pub config: Config,
    /// Cancelled on shutdown; ends open watches.
    pub shutdown: CancellationToken,
    /// Counters.
    pub metrics: Metrics,
    /// host:port clients are told to use (discovery's serverAddressByClientCIDRs).
    pub advertise_address: String,
    /// Dials kubelets for logs, streams and stats.
    pub kubelet: kubeletclient::KubeletClient,
    /// Authentication and authorization.
    pub access: access::Access,
    /// Signs TokenRequests; None without `--service-account-signing-key-file`.
    pub tokens: Option<tokenrequest::TokenIssuer>,
    db_status: tokio::sync::watch::Receiver<Option<DbStatus>>,
}

impl Server {
    /// Whether the server can answer from a primed cache.
    pub fn ready(&self) -> bool {
        self.registry.cache.revision() > 0
    }

    /// Prometheus text exposition of the server's counters, watch cache and etcd size.
    pub async fn metrics_text(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        out.push_str("# TYPE apiserver_request_total counter\n");
        if let Ok(m) = self.metrics.requests.lock() {
            for ((verb, code), (n, _)) in m.iter() {
                let _ = writeln!(out, "apiserver_request_total{{verb=\"{verb}\",code=\"{code}\"}} {n}");
            }
            out.push_str("# TYPE apiserver_request_duration_seconds_sum counter\n");
            for ((verb, code), (_, secs)) in m.iter() {
                let _ =
                    writeln!(out, "apiserver_request_duration_seconds_sum{{verb=\"{verb}\",code=\"{code}\"}} {secs}");
            }
        }
        out.push_str("# TYPE apiserver_watch_cache_objects gauge\n");
        let stats = self.registry.cache.stats();
        for s in &stats {
            let _ = writeln!(out, "apiserver_watch_cache_objects{{prefix=\"{}\"}} {}", s.prefix, s.objects);
        }
        out.push_str("# TYPE apiserver_watch_cache_bytes gauge\n");
        for s in &stats {
            let _ = writeln!(out, "apiserver_watch_cache_bytes{{prefix=\"{}\"}} {}", s.prefix, s.bytes);
        }
        out.push_str("# TYPE apiserver_watch_cache_window_bytes gauge\n");
        for s in &stats {
            let _ = writeln!(out, "apiserver_watch_cache_window_bytes{{prefix=\"{}\"}} {}", s.prefix, s.window_bytes);
        }
        let _ = writeln!(
            out,
            "# TYPE apiserver_watch_cache_revision gauge\napiserver_watch_cache_revision {}",
            self.registry.cache.revision()
        );
        if let Some(db) = *self.db_status.borrow() {
            let _ =
                writeln!(out, "# TYPE etcd_db_total_size_in_bytes gauge\netcd_db_total_size_in_bytes {}", db.db_size);
            let _ = writeln!(
                out,
                "# TYPE etcd_db_total_size_in_use_in_bytes gauge\netcd_db_total_size_in_use_in_bytes {}",
                db.db_size_in_use
            );
        }
        out
    }
}

/// Field-selector index of a stored object, found from its own apiVersion and kind.
fn index_fields(obj: &Value) -> Vec<(&'static str, String)> {
    let api_version = obj["apiVersion"].as_str().unwrap_or("");
    let kind = obj["kind"].as_str().unwrap_or("");
    registry::lookup_kind(api_version, kind).map(|r| rkube_api::selector::field_values(r, obj)).unwrap_or_default()
}

/// The TLS material of `--etcd-cafile`/`--etcd-certfile`/`--etcd-keyfile`, if any.
fn etcd_tls(config: &Config) -> anyhow::Result<Option<rkube_storage::EtcdTls>> {
    let read = |p: &std::path::PathBuf| std::fs::read(p).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()));
    let Some(ca) = &config.etcd_cafile else {
        if config.etcd_certfile.is_some() || config.etcd_keyfile.is_some() {
            anyhow::bail!("--etcd-certfile and --etcd-keyfile need --etcd-cafile");
        }
        return Ok(None);
    };
    let (cert_pem, key_pem) = match (&config.etcd_certfile, &config.etcd_keyfile) {
        (Some(c), Some(k)) => (Some(read(c)?), Some(read(k)?)),
        (None, None) => (None, None),
        _ => anyhow::bail!("--etcd-certfile and --etcd-keyfile go together"),
    };
    Ok(Some(rkube_storage::EtcdTls { ca_pem: read(ca)?, cert_pem, key_pem }))
}

/// Connects to etcd, retrying until it answers or shutdown is requested, with the
/// `--encryption-provider-config` transformers installed before anything is read or written.
async fn connect(config: &Config, shutdown: &CancellationToken) -> anyhow::Result<Store> {
    // Read before waiting for etcd, so a bad file stops the server at once.
    let encryption = match &config.encryption_provider_config {
        Some(path) => Some(encryption::load(path, &config.etcd_prefix)?),
        None => None,
    };
    let tls = etcd_tls(config)?;
    let mut delay = Duration::from_millis(200);
    loop {
        match Store::connect_with(&config.etcd_servers, tls.as_ref()).await {
            Ok(s) => {
                if let Some(e) = &encryption {
                    e.install(&s);
                }
                return Ok(s);
            }
            Err(e) => tracing::warn!(endpoints = ?config.etcd_servers, error = %e, "etcd not reachable yet"),
        }
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shutdown.cancelled() => anyhow::bail!("shut down before etcd was reachable"),
        }
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

/// Creates the namespaces every cluster has, if missing.
async fn bootstrap(registry: &Registry) {
    let res = registry::lookup("", "v1", "namespaces").expect("namespaces are served");
    for name in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        let obj = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
        match registry.create(res, None, obj, &objects::WriteOptions::default()).await {
            Ok(_) => tracing::info!(namespace = name, "created system namespace"),
            Err(rkube_api::ApiError::AlreadyExists { .. }) => {}
            Err(e) => tracing::warn!(namespace = name, error = %e, "could not create system namespace"),
        }
    }
}

/// Creates the default ClusterRoles and ClusterRoleBindings that are missing (those present
/// are left as they are, so an administrator's edits survive restarts).
async fn bootstrap_rbac(registry: &Registry) {
    let (roles, bindings) = rkube_auth::rbac::bootstrap_policy();
    let group = "rbac.authorization.k8s.io";
    let objects = roles
        .iter()
        .map(|r| ("clusterroles", serde_json::to_value(r)))
        .chain(bindings.iter().map(|b| ("clusterrolebindings", serde_json::to_value(b))));
    for (plural, obj) in objects {
        let Some(res) = registry::lookup(group, "v1", plural) else { continue };
        let Ok(obj) = obj else { continue };
        let name = obj["metadata"]["name"].as_str().unwrap_or_default().to_string();
        match registry.create(res, None, obj, &objects::WriteOptions::default()).await {
            Ok(_) => tracing::info!(kind = res.kind, name, "created default RBAC object"),
            Err(rkube_api::ApiError::AlreadyExists { .. }) => {}
            Err(e) => tracing::warn!(kind = res.kind, name, error = %e, "could not create default RBAC object"),
        }
    }
}

/// Runs the API server until `shutdown` completes.
pub async fn run(config: Config, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
    openapi::warm_up();
    let token = CancellationToken::new();
    {
        let token = token.clone();
        tokio::spawn(async move {
            shutdown.await;
            token.cancel();
        });
    }
    rkube_api::schema::set_default_toleration_seconds(
        config.default_not_ready_toleration_seconds,
        config.default_unreachable_toleration_seconds,
    );
    let store = connect(&config, &token).await?;
    if !config.event_ttl.is_zero() {
        let events = registry::lookup("", "v1", "events").expect("events are served");
        store.expire_under(&events.key_prefix(), config.event_ttl);
    }
    let root = format!("{}/", config.etcd_prefix.trim_end_matches('/'));
    let mut specs: Vec<ResourceSpec> = Vec::new();
    for r in RESOURCES {
        let prefix = r.key_prefix().replacen("/registry/", &root, 1);
        if !specs.iter().any(|s| s.prefix == prefix) {
            specs.push(ResourceSpec { prefix, index: index_fields });
        }
    }
    // Every custom resource lives under one prefix, so resources defined later are cached too.
    specs.push(ResourceSpec {
        prefix: registry::CUSTOM_KEY_PREFIX.replacen("/registry/", &root, 1),
        index: index_fields,
    });
    let limits = CacheLimits { window_bytes: config.watch_cache_window_bytes, ..CacheLimits::default() };
    let cache = WatchCache::start(store.clone(), &root, specs, limits).await?;
    if !config.etcd_compaction_interval.is_zero() {
        rkube_storage::spawn_compactor(store.clone(), config.etcd_compaction_interval);
    }
    let defrag = rkube_storage::spawn_defragmenter(store.clone(), Duration::from_secs(300), 256 << 20, 0.5);
    let (ns_tx, ns_rx) = tokio::sync::mpsc::unbounded_channel();
    let allocator = Arc::new(services::Allocator::new(
        store.clone(),
        &config.service_cluster_ip_range,
        &config.service_node_port_range,
    )?);
    // Read before anything is served, so a bad key stops the server at once.
    let tokens = tokenrequest::TokenIssuer::from_config(&config)?;
    let registry = Registry {
        store,
        cache,
        namespace_deleted: ns_tx,
        terminating: Arc::default(),
        services: allocator.clone(),
        service_account_admission: tokens.is_some(),
    };
    bootstrap(&registry).await;
    if config.authorization_mode.iter().any(|m| m == "RBAC") {
        bootstrap_rbac(&registry).await;
    }
    namespace::spawn(registry.clone(), ns_rx, token.clone());
    // Custom resources are served before the first request, so none gets a 404 after a restart.
    crds::reconcile(&registry).await;
    crds::spawn(registry.clone(), token.clone());

    let addr = format!("{}:{}", config.bind_address, config.secure_port);
    let tls = config.tls.acceptor()?;
    let access = access::Access::new(&config, &registry.cache, &token)?;
    let kubelet = kubeletclient::KubeletClient::new(
        config.kubelet_client_certificate.as_deref(),
        config.kubelet_client_key.as_deref(),
        config.kubelet_certificate_authority.as_deref(),
    )?;
    let listener = tokio::net::TcpListener::bind(&addr).await.map_err(|e| anyhow::anyhow!("binding {addr}: {e}"))?;
    let local = listener.local_addr()?;
    let advertise_ip = match &config.advertise_address {
        Some(ip) => ip.clone(),
        None if config.bind_address == "0.0.0.0" => "127.0.0.1".to_string(),
        None => local.ip().to_string(),
    };
    let advertise_address = format!("{advertise_ip}:{}", local.port());
    services::bootstrap(&registry, &allocator, &advertise_ip, local.port()).await;
    allocator.spawn_repair(token.clone());
    let server = Arc::new(Server {
        registry,
        config,
        shutdown: token.clone(),
        metrics: Metrics::default(),
        advertise_address,
        kubelet,
        access,
        tokens,
        db_status: defrag.status,
    });
    let grpc = rkube_rpc::v1::resource_service_server::ResourceServiceServer::new(grpc::Service(server.clone()))
        .max_decoding_message_size(server.config.max_request_body_bytes + 4096)
        .max_encoding_message_size(usize::MAX);
    let app = axum::Router::new()
        .route_service("/rkube.v1.ResourceService/{*method}", grpc)
        .fallback(rest::handle)
        .with_state(server.clone());
    tracing::info!(address = %local, tls = tls.is_some(), "serving REST and gRPC");
    let handler = move |mut req: http::Request<hyper::body::Incoming>, connection: Arc<Connection>| {
        req.extensions_mut().insert(connection);
        let app = app.clone();
        async move {
            match tower::ServiceExt::oneshot(app, req).await {
                Ok(response) => response,
                Err(never) => match never {},
            }
        }
    };
    rkube_daemon::serve::serve(listener, tls, connection_builder(true), handler, token).await;
    tracing::info!("shut down");
    Ok(())
}
