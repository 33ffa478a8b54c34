//! rkube-ingress: an Ingress controller. It watches networking.k8s.io/v1 Ingresses of its
//! IngressClass with the Services, EndpointSlices and TLS Secrets they name, keeps a routing
//! table built from them in memory ([`routes`], [`table`], [`controller`]), and proxies
//! HTTP and HTTPS by Host and path straight to the ready endpoints ([`server`], [`proxy`],
//! [`pool`], [`tls`]), bypassing Service VIPs. `main.rs` only parses flags and calls [`run`].

pub mod config;
pub mod controller;
pub mod metrics;
pub mod pool;
pub mod proxy;
pub mod routes;
pub mod server;
pub mod table;
pub mod tls;

pub use config::{CONTROLLER_NAME, Config};

use crate::controller::{Controller, ControllerConfig, load_balancer_status};
use crate::metrics::Metrics;
use crate::pool::{Pool, PoolConfig};
use crate::proxy::{Proxy, ProxyConfig};
use crate::routes::Router;
use crate::table::ClassPolicy;
use rkube_client::ClientError;
use rkube_daemon::Readiness;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Why the ingress controller could not start.
#[derive(Debug, thiserror::Error)]
pub enum IngressError {
    /// The API server address is unusable.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// A listener could not bind.
    #[error("listening on {address}: {source}")]
    Bind {
        /// The address.
        address: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// TLS could not be set up.
    #[error(transparent)]
    Tls(#[from] tls::CertError),
}

/// A started ingress controller.
pub struct Running {
    /// Where plain HTTP is served.
    pub http: SocketAddr,
    /// Where HTTPS is served.
    pub https: SocketAddr,
    /// Where /healthz, /readyz and /metrics are served, if enabled.
    pub health: Option<SocketAddr>,
    /// The counters served on /metrics.
    pub metrics: Arc<Metrics>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Waits until the controller has shut down (after its cancel token fired and open
    /// connections drained).
    pub async fn wait(self) {
        let _ = self.task.await;
    }
}

async fn bind(address: &str, port: u16) -> Result<TcpListener, IngressError> {
    let address = if address.contains(':') && !address.starts_with('[') {
        format!("[{address}]:{port}")
    } else {
        format!("{address}:{port}")
    };
    TcpListener::bind(&address).await.map_err(|source| IngressError::Bind { address, source })
}

/// Binds the listeners and starts the controller; requests are served once the first
/// routing table has been built from the API server's objects. Stops when `cancel` fires.
pub async fn start(config: Config, cancel: CancellationToken) -> Result<Running, IngressError> {
    let client = config.api.client()?.with_field_manager("rkube-ingress");
    let http = bind(&config.listen_address, config.http_port).await?;
    let https = bind(&config.listen_address, config.https_port).await?;
    let (http_addr, https_addr) = (local(&http)?, local(&https)?);
    let metrics = Arc::new(Metrics::default());
    let readiness = Readiness::default();
    let health = if config.secure_port != 0 {
        let address = format!("{}:{}", config.bind_address, config.secure_port);
        let m = metrics.clone();
        let bound = rkube_daemon::serve_health(&address, readiness.clone(), move || m.render(), cancel.clone())
            .await
            .map_err(|source| IngressError::Bind { address, source })?;
        Some(bound)
    } else {
        None
    };

    let router = Arc::new(Router::default());
    let provider = tls::provider();
    let fallback = Arc::new(tls::self_signed(&provider)?);
    let resolver = Arc::new(tls::Resolver::new(router.clone(), fallback));
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls::server_config(resolver, config.enable_http2)?));
    let pool = Pool::new(PoolConfig {
        connect_timeout: config.upstream_connect_timeout,
        max_idle_per_endpoint: config.upstream_keepalive_connections,
        idle_timeout: config.upstream_keepalive_timeout,
        fail_timeout: config.upstream_fail_timeout,
    });
    let proxy = Arc::new(Proxy::new(
        router.clone(),
        pool,
        metrics.clone(),
        ProxyConfig {
            response_timeout: config.upstream_response_timeout,
            max_attempts: config.upstream_max_attempts as usize,
            trust_forwarded_headers: config.use_forwarded_headers,
        },
    ));
    let publish = config.update_status.then(|| load_balancer_status(&config.publish_addresses()));
    let controller = Controller::start(
        client,
        ControllerConfig {
            policy: ClassPolicy {
                class_name: config.ingress_class.clone(),
                controller: config.controller_class.clone(),
            },
            namespace: config.namespace().map(str::to_string),
            publish,
            default_cert: config.default_ssl_certificate.clone(),
        },
        router,
        metrics.clone(),
        cancel.clone(),
    );
    tracing::info!(http = %http_addr, https = %https_addr, class = %config.ingress_class, "rkube-ingress starting");
    let http2 = config.enable_http2;
    let task = tokio::spawn(async move {
        tokio::select! {
            _ = controller.wait_built() => {}
            _ = cancel.cancelled() => return,
        }
        readiness.set(true);
        tracing::info!("routing table built; serving");
        let plain = server::serve(http, proxy.clone(), None, http2, cancel.clone());
        let secure = server::serve(https, proxy, Some(acceptor), http2, cancel);
        tokio::join!(plain, secure);
    });
    Ok(Running { http: http_addr, https: https_addr, health, metrics, task })
}

fn local(listener: &TcpListener) -> Result<SocketAddr, IngressError> {
    listener.local_addr().map_err(|source| IngressError::Bind { address: "listener".into(), source })
}

/// Runs the ingress controller until `cancel` fires.
pub async fn run(config: Config, cancel: CancellationToken) -> Result<(), IngressError> {
    start(config, cancel).await?.wait().await;
    Ok(())
}
