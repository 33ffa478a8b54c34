//! How the API server reaches kubelets (pod logs, exec/attach/port-forward, stats): plain
//! HTTP, or HTTPS with the server's client certificate (`--kubelet-client-certificate`), the
//! kubelet's serving certificate checked against `--kubelet-certificate-authority`.

use axum::body::Body;
use hyper_util::rt::TokioIo;
use rkube_api::ApiError;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A request sender on one HTTP/1.1 connection to a kubelet (upgrades allowed).
pub type KubeletConnection = hyper::client::conn::http1::SendRequest<Body>;

/// Dials kubelets; TLS when configured.
#[derive(Clone, Default)]
pub struct KubeletClient {
    tls: Option<tokio_rustls::TlsConnector>,
}

/// Why the kubelet client settings are unusable.
#[derive(Debug, thiserror::Error)]
#[error("kubelet client TLS: {0}")]
pub struct KubeletClientError(String);

impl KubeletClient {
    /// Plain HTTP without `cert`; with it (and `key`), HTTPS verified against `ca`.
    pub fn new(
        cert: Option<&Path>,
        key: Option<&Path>,
        ca: Option<&Path>,
    ) -> Result<KubeletClient, KubeletClientError> {
        let err = |what: &Path, e: &dyn std::fmt::Display| KubeletClientError(format!("{}: {e}", what.display()));
        let (cert, key) = match (cert, key) {
            (None, None) => return Ok(KubeletClient::default()),
            (Some(c), Some(k)) => (c, k),
            _ => {
                return Err(KubeletClientError(
                    "--kubelet-client-certificate and --kubelet-client-key go together".into(),
                ));
            }
        };
        let ca = ca.ok_or_else(|| {
            KubeletClientError("--kubelet-client-certificate needs --kubelet-certificate-authority".into())
        })?;
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_file_iter(ca).map_err(|e| err(ca, &e))? {
            roots.add(c.map_err(|e| err(ca, &e))?).map_err(|e| err(ca, &e))?;
        }
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
            .map_err(|e| err(cert, &e))?
            .collect::<Result<_, _>>()
            .map_err(|e| err(cert, &e))?;
        let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| err(key, &e))?;
        let config = rustls::ClientConfig::builder_with_provider(rkube_daemon::serve::crypto_provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| KubeletClientError(e.to_string()))?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key_der)
            .map_err(|e| KubeletClientError(e.to_string()))?;
        Ok(KubeletClient { tls: Some(tokio_rustls::TlsConnector::from(Arc::new(config))) })
    }

    /// `http` or `https`, for messages.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }

    /// An HTTP/1.1 connection to the kubelet at `address` (`host:port`).
    pub async fn dial(&self, address: &str) -> Result<KubeletConnection, ApiError> {
        let unreachable = |e: String| ApiError::Internal(format!("error dialing backend: dial tcp {address}: {e}"));
        let tcp = tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(address))
            .await
            .map_err(|_| unreachable("i/o timeout".into()))?
            .map_err(|e| unreachable(e.to_string()))?;
        let _ = tcp.set_nodelay(true);
        let Some(tls) = &self.tls else { return handshake(tcp).await.map_err(unreachable) };
        let host = address.rsplit_once(':').map_or(address, |(h, _)| h).trim_start_matches('[').trim_end_matches(']');
        let name = ServerName::try_from(host.to_string()).map_err(|e| unreachable(e.to_string()))?;
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, tls.connect(name, tcp))
            .await
            .map_err(|_| unreachable("TLS handshake timeout".into()))?
            .map_err(|e| unreachable(format!("TLS handshake: {e}")))?;
        handshake(stream).await.map_err(unreachable)
    }
}

async fn handshake<S: AsyncRead + AsyncWrite + Send + Unpin + 'static>(io: S) -> Result<KubeletConnection, String> {
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await.map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        if let Err(e) = conn.with_upgrades().await {
            tracing::debug!(error = %e, "kubelet connection ended");
        }
    });
    Ok(sender)
}
