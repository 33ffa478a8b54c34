//! The REST client: HTTP/JSON to the Kubernetes API like client-go (bearer token, basic auth,
//! client certificates, custom CA or no verification over rustls with the ring provider), with
//! API errors turned into [`ApiError`] and connection failures into kubectl's wording.

use crate::error::{ApiError, Error, Result};
use crate::kubeconfig::Resolved;
use reqwest::Method;
use reqwest::blocking::{Client as Http, Response};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// `Accept` for server-side printing (Table first, plain JSON as fallback).
pub const TABLE_ACCEPT: &str =
    "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";

/// A REST client bound to one server and credential set.
#[derive(Clone)]
pub struct Client {
    http: Http,
    streaming: Http,
    base: String,
    auth: Option<String>,
    impersonate: Option<String>,
    /// Namespace of the context or `-n`.
    pub namespace: String,
    /// Whether `-n` was given explicitly.
    pub namespace_explicit: bool,
    /// TLS for connections rkubectl upgrades itself (WebSocket streams), HTTP/1.1 only.
    upgrade_tls: Arc<rustls::ClientConfig>,
    tls_server_name: Option<String>,
}

impl Client {
    /// Builds a client from resolved kubeconfig settings.
    pub fn new(cfg: &Resolved, timeout: Option<Duration>) -> Result<Client> {
        // Installing fails only when a provider is already installed, which is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let build = |timeout: Option<Duration>| -> Result<Http> {
            let mut b = Http::builder().user_agent(format!("rkubectl/{}", env!("CARGO_PKG_VERSION"))).timeout(timeout);
            // Always hand reqwest our config: its own default needs a process-wide provider.
            b = b.use_preconfigured_tls(tls_config(cfg)?);
            b.build().map_err(|e| Error::Config(format!("building the HTTP client: {e}")))
        };
        let auth = if let Some(t) = &cfg.token {
            Some(format!("Bearer {t}"))
        } else {
            cfg.basic.as_ref().map(|(u, p)| {
                use base64::Engine as _;
                format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}")))
            })
        };
        // An HTTP upgrade exists only in HTTP/1.1, so the stream connections never offer h2.
        let mut upgrade_tls = tls_config(cfg)?;
        upgrade_tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Client {
            upgrade_tls: Arc::new(upgrade_tls),
            tls_server_name: cfg.tls_server_name.clone(),
            http: build(Some(timeout.unwrap_or(Duration::from_secs(60))))?,
            streaming: build(timeout)?,
            base: cfg.server.clone(),
            auth,
            impersonate: cfg.impersonate.clone(),
            namespace: cfg.namespace.clone(),
            namespace_explicit: cfg.namespace_explicit,
        })
    }

    /// The server URL.
    pub fn server(&self) -> &str {
        &self.base
    }

    /// Sends a request; non-2xx answers become errors.
    pub fn send(
        &self,
        method: Method,
        path: &str,
        accept: &str,
        body: Option<(&str, Vec<u8>)>,
        stream: bool,
    ) -> Result<Response> {
        let url = format!("{}{}", self.base, path);
        tracing::debug!(%method, %url, "request");
        let client = if stream { &self.streaming } else { &self.http };
        let mut req = client.request(method, &url).header("Accept", accept);
        if let Some(a) = &self.auth {
            req = req.header("Authorization", a);
        }
        if let Some(u) = &self.impersonate {
            req = req.header("Impersonate-User", u);
        }
        if let Some((ct, bytes)) = body {
            req = req.header("Content-Type", ct).body(bytes);
        }
        let resp = req.send().map_err(|e| self.connect_error(e))?;
        let code = resp.status().as_u16();
        if (200..300).contains(&code) {
            return Ok(resp);
        }
        let bytes = resp.bytes().map(|b| b.to_vec()).unwrap_or_default();
        Err(Error::Api(ApiError::from_response(code, &bytes)))
    }

    fn connect_error(&self, e: reqwest::Error) -> Error {
        let hostport = self.base.split("://").nth(1).unwrap_or(&self.base).to_string();
        let text = format!("{e:?}");
        if text.contains("ConnectionRefused") || text.contains("Connection refused") {
            Error::Connect(format!(
                "The connection to the server {hostport} was refused - did you specify the right host or port?"
            ))
        } else if e.is_timeout() {
            Error::Connect(format!(
                "Unable to connect to the server: net/http: request canceled (Client.Timeout exceeded while awaiting headers) ({hostport})"
            ))
        } else {
            Error::Connect(format!("Unable to connect to the server: {}", error_chain(&e)))
        }
    }

    /// What a connection that rkubectl upgrades itself needs: base URL, credentials, TLS.
    pub fn upgrade_target(&self) -> UpgradeTarget {
        UpgradeTarget {
            base: self.base.clone(),
            auth: self.auth.clone(),
            impersonate: self.impersonate.clone(),
            tls: self.upgrade_tls.clone(),
            tls_server_name: self.tls_server_name.clone(),
        }
    }

    /// GET as JSON.
    pub fn get(&self, path: &str) -> Result<Value> {
        self.json(Method::GET, path, "application/json", None)
    }

    /// Any method with an optional JSON body of a given content type; the answer as JSON.
    pub fn json(&self, method: Method, path: &str, accept: &str, body: Option<(&str, &Value)>) -> Result<Value> {
        let body = body.map(|(ct, v)| (ct, serde_json::to_vec(v).unwrap_or_default()));
        self.json_from_bytes(method, path, accept, body)
    }

    /// Like [`Client::json`] with a body of raw bytes.
    pub fn json_from_bytes(
        &self,
        method: Method,
        path: &str,
        accept: &str,
        body: Option<(&str, Vec<u8>)>,
    ) -> Result<Value> {
        let resp = self.send(method, path, accept, body, false)?;
        let bytes = resp.bytes().map_err(|e| Error::Connect(format!("reading the response: {e}")))?;
        if bytes.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&bytes).map_err(|e| Error::usage(format!("the server answered no JSON ({e})")))
    }

    /// A streaming GET (watch, logs -f) without a timeout.
    pub fn stream(&self, path: &str, accept: &str) -> Result<Response> {
        self.send(Method::GET, path, accept, None, true)
    }

    /// POSTs `len` bytes of `body` to `path`, streamed as they are read (an image archive is
    /// never held whole), without a timeout; the answer's body, non-2xx answers as errors.
    ///
    /// Runs reqwest's async client (HTTP/1.1) on a private runtime: the blocking client pushes
    /// the whole body before it looks at the answer, so a server that refuses early (403, 404)
    /// would surface as a broken upload instead of its Status.
    pub fn upload(
        &self,
        path: &str,
        content_type: &str,
        body: impl std::io::Read + Send + 'static,
        len: u64,
    ) -> Result<Vec<u8>> {
        let url = format!("{}{}", self.base, path);
        tracing::debug!(%url, len, "upload");
        let http = reqwest::Client::builder()
            .user_agent(format!("rkubectl/{}", env!("CARGO_PKG_VERSION")))
            .use_preconfigured_tls((*self.upgrade_tls).clone())
            .build()
            .map_err(|e| Error::Config(format!("building the HTTP client: {e}")))?;
        let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Vec<u8>>>(4);
        // File reads block: a thread of their own feeds the body.
        std::thread::spawn(move || {
            let mut body = body;
            loop {
                let mut buf = vec![0u8; 256 << 10];
                match body.read(&mut buf) {
                    Ok(0) => return,
                    Ok(n) => {
                        buf.truncate(n);
                        if tx.blocking_send(Ok(buf)).is_err() {
                            return;
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        let _ = tx.blocking_send(Err(e));
                        return;
                    }
                }
            }
        });
        let chunks = futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) });
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        runtime.block_on(async {
            let mut req = http
                .post(&url)
                .header("Accept", "application/json")
                .header("Content-Type", content_type)
                .header("Content-Length", len)
                .body(reqwest::Body::wrap_stream(chunks));
            if let Some(a) = &self.auth {
                req = req.header("Authorization", a);
            }
            if let Some(u) = &self.impersonate {
                req = req.header("Impersonate-User", u);
            }
            let resp = req.send().await.map_err(|e| self.connect_error(e))?;
            let code = resp.status().as_u16();
            let bytes = resp.bytes().await.map_err(|e| Error::Connect(format!("reading the response: {e}")))?;
            if (200..300).contains(&code) {
                return Ok(bytes.to_vec());
            }
            Err(Error::Api(ApiError::from_response(code, &bytes)))
        })
    }

    /// Raw GET body as text.
    pub fn text(&self, path: &str) -> Result<String> {
        let resp = self.send(Method::GET, path, "*/*", None, false)?;
        resp.text().map_err(|e| Error::Connect(format!("reading the response: {e}")))
    }
}

/// Everything needed to open an upgraded (WebSocket) connection to the API server.
#[derive(Clone)]
pub struct UpgradeTarget {
    /// The server URL (`https://host:port[/prefix]`).
    pub base: String,
    /// The `Authorization` header value, if any.
    pub auth: Option<String>,
    /// The `Impersonate-User` header value, if any.
    pub impersonate: Option<String>,
    /// TLS settings (CA, client certificate) offering only HTTP/1.1.
    pub tls: Arc<rustls::ClientConfig>,
    /// `--tls-server-name`: the name checked against the certificate instead of the host.
    pub tls_server_name: Option<String>,
}

/// Joins an error with its sources, as Go prints wrapped errors.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(s) = cur {
        parts.push(s.to_string());
        cur = s.source();
    }
    parts.join(": ")
}

fn tls_config(cfg: &Resolved) -> Result<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Config(format!("TLS: {e}")))?;
    let builder = if cfg.insecure {
        builder.dangerous().with_custom_certificate_verifier(Arc::new(CustomVerify { provider, chain: None }))
    } else {
        let mut roots = rustls::RootCertStore::empty();
        if let Some(pem) = &cfg.ca_pem {
            for cert in CertificateDer::pem_slice_iter(pem) {
                let cert = cert.map_err(|e| Error::Config(format!("unable to load root certificates: {e}")))?;
                roots.add(cert).map_err(|e| Error::Config(format!("unable to load root certificates: {e}")))?;
            }
        } else {
            // No CA in the kubeconfig: trust the system bundle, as Go's x509 does.
            for path in ["/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt"] {
                if let Ok(pem) = std::fs::read(path) {
                    for cert in CertificateDer::pem_slice_iter(&pem).flatten() {
                        let _ = roots.add(cert);
                    }
                    break;
                }
            }
        }
        match cfg.tls_server_name.as_deref().filter(|n| !n.is_empty()) {
            None => builder.with_root_certificates(roots),
            Some(name) => {
                let name = ServerName::try_from(name.to_string())
                    .map_err(|e| Error::Config(format!("tls-server-name {name:?}: {e}")))?;
                let inner =
                    rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                        .build()
                        .map_err(|e| Error::Config(format!("unable to load root certificates: {e}")))?;
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(CustomVerify { provider, chain: Some((inner, name)) }))
            }
        }
    };
    let mut config = match (&cfg.client_cert_pem, &cfg.client_key_pem) {
        (Some(cert), Some(key)) => {
            let certs = CertificateDer::pem_slice_iter(cert)
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(|e| Error::Config(format!("tls: failed to load client certificate: {e}")))?;
            let key = PrivateKeyDer::from_pem_slice(key)
                .map_err(|e| Error::Config(format!("tls: failed to load client key: {e}")))?;
            builder
                .with_client_auth_cert(certs, key)
                .map_err(|e| Error::Config(format!("tls: client certificate: {e}")))?
        }
        _ => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// The server certificate check when it is not reqwest's (the CA chain for the URL's host):
/// `insecure-skip-tls-verify` accepts any certificate, `tls-server-name` checks the CA chain
/// for that name instead of the URL's host (an API server reached by IP or a tunnel).
/// Handshake signatures are always checked.
#[derive(Debug)]
struct CustomVerify {
    provider: Arc<rustls::crypto::CryptoProvider>,
    /// `None`: accept any certificate; else the CA chain's verifier and the name to check.
    chain: Option<(Arc<rustls::client::WebPkiServerVerifier>, ServerName<'static>)>,
}

impl ServerCertVerifier for CustomVerify {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        match &self.chain {
            None => Ok(ServerCertVerified::assertion()),
            Some((chain, name)) => chain.verify_server_cert(end_entity, intermediates, name, ocsp, now),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}
