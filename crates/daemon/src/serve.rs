//! Serving HTTP for the daemons that face clients (API server, kubelet, ingress): plain or
//! TLS connections, each served by hyper with upgrades allowed, the handler told who is on the
//! other end (addresses and, with client-certificate authentication, the verified certificate).
//! On shutdown the listener closes and open connections get a grace period to finish.

use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
pub use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

/// How long a TLS handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long open connections get to finish after shutdown starts.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// How long a client may take to send a request head (also bounds idle keep-alive).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(60);

/// Why a TLS serving configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A certificate or key file is missing or not PEM.
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: String,
        /// What is wrong with it.
        message: String,
    },
    /// rustls refused the certificate, key or CA.
    #[error("TLS configuration: {0}")]
    Config(String),
}

/// One accepted connection, as its handler sees it.
#[derive(Debug, Clone)]
pub struct Connection {
    /// The client's address.
    pub remote: SocketAddr,
    /// The address the client connected to.
    pub local: SocketAddr,
    /// Whether the connection is TLS.
    pub tls: bool,
    /// The client certificate, already verified against the client CA.
    pub client_certificate: Option<CertificateDer<'static>>,
}

/// The process's rustls crypto: ring, the one provider built in.
pub fn crypto_provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A TLS server configuration from PEM files, offering HTTP/2 and HTTP/1.1 by ALPN. With
/// `client_ca`, clients may present a certificate signed by it (others may still connect and
/// authenticate otherwise; a certificate that does not verify fails the handshake).
pub fn server_config(cert: &Path, key: &Path, client_ca: Option<&Path>) -> Result<rustls::ServerConfig, TlsError> {
    let file_error = |path: &Path, e: &dyn std::fmt::Display| TlsError::File {
        path: path.display().to_string(),
        message: e.to_string(),
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| file_error(cert, &e))?
        .collect::<Result<_, _>>()
        .map_err(|e| file_error(cert, &e))?;
    if chain.is_empty() {
        return Err(file_error(cert, &"no certificate in the file"));
    }
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| file_error(key, &e))?;
    let provider = crypto_provider();
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_file_iter(ca).map_err(|e| file_error(ca, &e))? {
                roots.add(c.map_err(|e| file_error(ca, &e))?).map_err(|e| file_error(ca, &e))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .allow_unauthenticated()
                .build()
                .map_err(|e| TlsError::Config(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_single_cert(chain, key_der).map_err(|e| TlsError::Config(e.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// The serving TLS flags of the daemons that face clients, with Kubernetes' names.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TlsFlags {
    /// PEM certificate (chain) to serve; with `--tls-private-key-file` the port speaks HTTPS.
    #[arg(long)]
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key of `--tls-cert-file`.
    #[arg(long)]
    pub tls_private_key_file: Option<PathBuf>,
    /// PEM CA bundle client certificates are verified against (CN is the user, O the groups).
    #[arg(long)]
    pub client_ca_file: Option<PathBuf>,
}

impl TlsFlags {
    /// The TLS acceptor these flags describe, or None to serve plain HTTP when neither the
    /// certificate nor the key is given.
    pub fn acceptor(&self) -> Result<Option<TlsAcceptor>, TlsError> {
        match (&self.tls_cert_file, &self.tls_private_key_file) {
            (Some(cert), Some(key)) => {
                let config = server_config(cert, key, self.client_ca_file.as_deref())?;
                Ok(Some(TlsAcceptor::from(Arc::new(config))))
            }
            (None, None) => Ok(None),
            _ => Err(TlsError::Config("--tls-cert-file and --tls-private-key-file go together".into())),
        }
    }
}

/// Connection settings: HTTP/1.1 with keep-alive and a header timeout, plus HTTP/2 (by ALPN
/// or prior knowledge) unless `http2` is false.
pub fn connection_builder(http2: bool) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(HEADER_READ_TIMEOUT).keep_alive(true);
    builder.http2().timer(TokioTimer::new());
    if http2 { builder } else { builder.http1_only() }
}

/// Accepts connections on `listener` until `cancel` fires, then drains them. With `tls`,
/// connections are TLS first. Every request goes to `handler` with its connection.
pub async fn serve<H, F, B>(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    builder: auto::Builder<TokioExecutor>,
    handler: H,
    cancel: CancellationToken,
) where
    H: Fn(Request<Incoming>, Arc<Connection>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<B>> + Send + 'static,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let builder = Arc::new(builder);
    let graceful = GracefulShutdown::new();
    let is_tls = tls.is_some();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = cancel.cancelled() => break,
        };
        let (stream, remote) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and the like: pause rather than spin.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let Ok(local) = stream.local_addr() else { continue };
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let tls = tls.clone();
        let handler = handler.clone();
        tokio::spawn(async move {
            let mut connection = Connection { remote, local, tls: is_tls, client_certificate: None };
            let serve_with = |connection: Connection| {
                let connection = Arc::new(connection);
                service_fn(move |req| {
                    let response = handler(req, connection.clone());
                    async move { Ok::<_, Infallible>(response.await) }
                })
            };
            let served = match tls {
                None => {
                    let service = serve_with(connection);
                    watcher.watch(builder.serve_connection_with_upgrades(TokioIo::new(stream), service)).await
                }
                Some(acceptor) => {
                    let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => {
                            tracing::debug!(client = %remote, error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(client = %remote, "TLS handshake timed out");
                            return;
                        }
                    };
                    connection.client_certificate =
                        stream.get_ref().1.peer_certificates().and_then(|c| c.first()).map(|c| c.clone().into_owned());
                    let service = serve_with(connection);
                    watcher.watch(builder.serve_connection_with_upgrades(TokioIo::new(stream), service)).await
                }
            };
            if let Err(e) = served {
                tracing::debug!(client = %remote, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown()).await.is_err() {
        tracing::warn!(tls = is_tls, "connections still open after the shutdown grace period; closing them");
    }
}
