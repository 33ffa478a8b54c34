//! Joining a machine to a running cluster with a bootstrap token, as `kubeadm join` does:
//!
//! 1. Connect to the API server over TLS, trusting it only if its chain carries a CA whose
//!    SubjectPublicKeyInfo hashes to the pinned `sha256:<hex>` and the server certificate
//!    verifies against that CA (for the server's name, in its validity window). The bootstrap
//!    token is sent only over that connection.
//! 2. With the token, create a CSR for `system:node:<name>` in `system:nodes` (signer
//!    `kubernetes.io/kube-apiserver-client-kubelet`, fresh ECDSA key) and watch it until the
//!    controller-manager approved and signed it.
//! 3. With the new client certificate, do the same for a kubelet serving certificate
//!    (`kubernetes.io/kubelet-serving`); if nobody approves it in time the kubelet serves
//!    with its own self-signed certificate, and the join says so.
//! 4. Only then write `<dir>/kubelet-<name>.kubeconfig`, `<dir>/pki/ca.crt` and the serving
//!    pair `<dir>/pki/kubelet-<name>.{crt,key}`: a failed join writes nothing.
//!
//! [`bootstrap_token_secret`] and [`join_command`] are the control-plane side: the Secret
//! that makes a token valid and the command line that uses it.

use crate::{ClusterFiles, ClusterOpsError, Result};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use rkube_auth::authn::BootstrapToken;
use rkube_auth::pki::{self, Credential};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use serde_json::{Value, json};
use std::io::BufRead as _;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Signer of kubelet client certificates.
pub const KUBELET_CLIENT_SIGNER: &str = "kubernetes.io/kube-apiserver-client-kubelet";
/// Signer of kubelet serving certificates.
pub const KUBELET_SERVING_SIGNER: &str = "kubernetes.io/kubelet-serving";
/// The extra group rkube's bootstrap tokens put their users in (kubeadm's is
/// `system:bootstrappers:kubeadm:default-node-token`).
pub const DEFAULT_TOKEN_GROUP: &str = "system:bootstrappers:rkube:default-node-token";

/// What [`join`] needs.
#[derive(Debug, Clone)]
pub struct JoinOptions {
    /// The API server, `https://host:port`.
    pub server: String,
    /// The bootstrap token, `<id>.<secret>`.
    pub token: String,
    /// The pinned CA hash, `sha256:<64 hex digits>`.
    pub ca_cert_hash: String,
    /// The Node name.
    pub node_name: String,
    /// Extra IP addresses for the kubelet serving certificate.
    pub node_ips: Vec<IpAddr>,
    /// Where the files go.
    pub dir: PathBuf,
    /// How long to wait for each certificate.
    pub timeout: Duration,
}

/// What [`join`] wrote.
#[derive(Debug, Clone)]
pub struct Joined {
    /// The kubelet's kubeconfig.
    pub kubeconfig: PathBuf,
    /// The cluster CA.
    pub ca_file: PathBuf,
    /// The kubelet serving certificate and key, when that CSR was issued in time.
    pub serving: Option<(PathBuf, PathBuf)>,
    /// The names of the CSRs created (client, then serving).
    pub csrs: Vec<String>,
}

/// A checked `sha256:<hex>` pin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaHash(String);

impl std::str::FromStr for CaHash {
    type Err = ClusterOpsError;

    /// `sha256:` and 64 hex digits (either case, kept lower-case).
    fn from_str(s: &str) -> Result<CaHash> {
        let hex = s.strip_prefix("sha256:").ok_or_else(|| {
            ClusterOpsError::Invalid(format!("the CA hash {s:?} must have the form sha256:<64 hex digits>"))
        })?;
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ClusterOpsError::Invalid(format!(
                "the CA hash {s:?} must have the form sha256:<64 hex digits>"
            )));
        }
        Ok(CaHash(format!("sha256:{}", hex.to_ascii_lowercase())))
    }
}

impl std::fmt::Display for CaHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn der_to_pem(der: &[u8]) -> String {
    let b64 = B64.encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

/// Accepts a server only through a CA it sent whose key hash is pinned; then verifies the
/// server certificate against that CA as any TLS client would. Remembers the CA it trusted
/// (to write it out) and why it refused (to say so).
#[derive(Debug)]
pub struct PinnedCaVerifier {
    pin: CaHash,
    provider: Arc<rustls::crypto::CryptoProvider>,
    trusted: Mutex<Option<String>>,
    refused: Mutex<Option<String>>,
}

impl PinnedCaVerifier {
    /// A verifier for `pin`.
    pub fn new(pin: CaHash) -> PinnedCaVerifier {
        PinnedCaVerifier {
            pin,
            provider: Arc::new(rustls::crypto::ring::default_provider()),
            trusted: Mutex::new(None),
            refused: Mutex::new(None),
        }
    }

    /// The PEM of the CA a handshake was accepted through.
    pub fn trusted_ca(&self) -> Option<String> {
        self.trusted.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Why the last handshake was refused.
    pub fn refusal(&self) -> Option<String> {
        self.refused.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn refuse(&self, why: String) -> rustls::Error {
        *self.refused.lock().unwrap_or_else(|e| e.into_inner()) = Some(why.clone());
        rustls::Error::General(why)
    }
}

impl ServerCertVerifier for PinnedCaVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        let mut seen = Vec::new();
        for candidate in intermediates {
            let pem = der_to_pem(candidate);
            let Ok(hash) = pki::ca_cert_hash(&pem) else { continue };
            if hash != self.pin.0 {
                seen.push(hash);
                continue;
            }
            let mut roots = rustls::RootCertStore::empty();
            roots.add(candidate.clone().into_owned()).map_err(|e| self.refuse(format!("the pinned CA: {e}")))?;
            let verifier =
                rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), self.provider.clone())
                    .build()
                    .map_err(|e| self.refuse(format!("the pinned CA: {e}")))?;
            return match verifier.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
                Ok(v) => {
                    *self.trusted.lock().unwrap_or_else(|e| e.into_inner()) = Some(pem);
                    Ok(v)
                }
                Err(e) => {
                    Err(self.refuse(format!("the server certificate does not verify against the pinned CA: {e}")))
                }
            };
        }
        Err(self.refuse(if seen.is_empty() {
            format!("the server sent no CA certificate, so none can match the pinned hash {}", self.pin)
        } else {
            format!("the server's CA has hash {} but the pinned hash is {}", seen.join(", "), self.pin)
        }))
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

/// Why a join failed where the caller may want to react (exit code, message).
fn failed(message: impl Into<String>) -> ClusterOpsError {
    ClusterOpsError::Invalid(message.into())
}

/// One HTTPS client to the API server with one credential.
struct Api {
    http: reqwest::blocking::Client,
    server: String,
    verifier: Arc<PinnedCaVerifier>,
    bearer: Option<String>,
}

impl Api {
    fn new(server: &str, pin: &CaHash, bearer: Option<String>, identity: Option<(&str, &str)>) -> Result<Api> {
        let verifier = Arc::new(PinnedCaVerifier::new(pin.clone()));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| failed(format!("TLS: {e}")))?
            .dangerous()
            .with_custom_certificate_verifier(verifier.clone());
        let config = match identity {
            None => builder.with_no_client_auth(),
            Some((cert_pem, key_pem)) => {
                use rustls::pki_types::PrivateKeyDer;
                use rustls::pki_types::pem::PemObject as _;
                let chain = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
                    .collect::<std::result::Result<Vec<_>, _>>()
                    .map_err(|e| failed(format!("the issued certificate: {e}")))?;
                let key =
                    PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|e| failed(format!("the key: {e}")))?;
                builder.with_client_auth_cert(chain, key).map_err(|e| failed(format!("the client certificate: {e}")))?
            }
        };
        let http = reqwest::blocking::Client::builder()
            .user_agent(format!("rkubectl-join/{}", env!("CARGO_PKG_VERSION")))
            .use_preconfigured_tls(config)
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| failed(format!("building the HTTP client: {e}")))?;
        Ok(Api { http, server: server.trim_end_matches('/').to_string(), verifier, bearer })
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::blocking::RequestBuilder {
        let req = self.http.request(method, format!("{}{path}", self.server));
        match &self.bearer {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    }

    /// Sends, turning TLS refusals and non-2xx answers into clear errors.
    fn send(&self, req: reqwest::blocking::RequestBuilder, what: &str) -> Result<reqwest::blocking::Response> {
        let resp = req.send().map_err(|e| match self.verifier.refusal() {
            Some(why) => failed(format!("refusing the server {}: {why}", self.server)),
            None => failed(format!("{what}: cannot reach {}: {}", self.server, error_chain(&e))),
        })?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let body = resp.text().unwrap_or_default();
        let message = serde_json::from_str::<Value>(&body)
            .ok()
            .and_then(|v| v["message"].as_str().map(str::to_string))
            .unwrap_or(body);
        if status == reqwest::StatusCode::UNAUTHORIZED {
            return Err(failed(format!(
                "{what}: the API server refused the bootstrap token (401 Unauthorized): it is unknown, expired or not for authentication"
            )));
        }
        Err(failed(format!("{what}: {status}: {message}")))
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// Creates a CSR and waits until it is issued, denied or failed, or the timeout passes
/// (`Ok(None)`). Returns the CSR name and the certificate PEM.
fn request_certificate(
    api: &Api,
    request_pem: &str,
    signer: &str,
    usages: &[&str],
    timeout: Duration,
) -> Result<(String, Option<String>)> {
    const PATH: &str = "/apis/certificates.k8s.io/v1/certificatesigningrequests";
    let body = json!({
        "apiVersion": "certificates.k8s.io/v1",
        "kind": "CertificateSigningRequest",
        "metadata": {"generateName": "node-csr-"},
        "spec": {"request": B64.encode(request_pem), "signerName": signer, "usages": usages},
    });
    let created: Value = api
        .send(api.request(reqwest::Method::POST, PATH).json(&body), "creating the CSR")?
        .json()
        .map_err(|e| failed(format!("creating the CSR: the answer is no CSR: {e}")))?;
    let name = created["metadata"]["name"].as_str().unwrap_or_default().to_string();
    let mut version = created["metadata"]["resourceVersion"].as_str().unwrap_or_default().to_string();
    tracing::info!(csr = %name, signer, "created CSR; waiting for approval and signing");
    if let Some(cert) = outcome(&created)? {
        return Ok((name, Some(cert)));
    }
    let deadline = Instant::now() + timeout;
    while let Some(left) = deadline.checked_duration_since(Instant::now()).filter(|d| !d.is_zero()) {
        let secs = left.as_secs().max(1);
        let path = format!(
            "{PATH}?watch=1&fieldSelector=metadata.name%3D{name}&resourceVersion={version}&timeoutSeconds={secs}&allowWatchBookmarks=true"
        );
        let resp = api.send(
            api.request(reqwest::Method::GET, &path).timeout(left + Duration::from_secs(5)),
            "watching the CSR",
        )?;
        for line in std::io::BufReader::new(resp).lines() {
            let Ok(line) = line else { break };
            let Ok(event) = serde_json::from_str::<Value>(&line) else { continue };
            let object = &event["object"];
            if let Some(rv) = object["metadata"]["resourceVersion"].as_str() {
                version = rv.to_string();
            }
            match event["type"].as_str() {
                Some("ERROR") => {
                    // An expired resourceVersion: start over from the object as it is now.
                    let now: Value = api
                        .send(api.request(reqwest::Method::GET, &format!("{PATH}/{name}")), "reading the CSR")?
                        .json()
                        .map_err(|e| failed(format!("reading the CSR: {e}")))?;
                    if let Some(cert) = outcome(&now)? {
                        return Ok((name, Some(cert)));
                    }
                    version = now["metadata"]["resourceVersion"].as_str().unwrap_or_default().to_string();
                    break;
                }
                Some("DELETED") => return Err(failed(format!("the CSR {name} was deleted before it was issued"))),
                Some("ADDED" | "MODIFIED") => {
                    if let Some(cert) = outcome(object)? {
                        return Ok((name, Some(cert)));
                    }
                }
                _ => {}
            }
        }
    }
    Ok((name, None))
}

/// The issued certificate, nothing yet (`None`), or why the CSR will never be issued.
fn outcome(csr: &Value) -> Result<Option<String>> {
    let name = csr["metadata"]["name"].as_str().unwrap_or_default();
    for c in csr["status"]["conditions"].as_array().into_iter().flatten() {
        if let t @ ("Denied" | "Failed") = c["type"].as_str().unwrap_or_default() {
            let message = c["message"].as_str().or(c["reason"].as_str()).unwrap_or_default();
            return Err(failed(format!("the CSR {name} was {}: {message}", t.to_lowercase())));
        }
    }
    match csr["status"]["certificate"].as_str().filter(|c| !c.is_empty()) {
        None => Ok(None),
        Some(b64) => {
            let bytes = B64.decode(b64).map_err(|e| failed(format!("the CSR {name}'s certificate: {e}")))?;
            String::from_utf8(bytes).map(Some).map_err(|_| failed(format!("the CSR {name}'s certificate is not PEM")))
        }
    }
}

/// Joins this machine as node `options.node_name` (see the module docs).
pub fn join(options: &JoinOptions) -> Result<Joined> {
    if !options.server.starts_with("https://") {
        return Err(failed(format!("the server {:?} must be an https:// URL", options.server)));
    }
    let pin: CaHash = options.ca_cert_hash.parse()?;
    let token = BootstrapToken::parse(&options.token)
        .ok_or_else(|| failed("the token must have the form <6 characters>.<16 characters> of [a-z0-9]"))?;
    if options.node_name.is_empty() {
        return Err(failed("the node name is empty"));
    }
    let files = ClusterFiles::in_dir(&options.dir);
    let user = format!("system:node:{}", options.node_name);

    // Trust first: /version needs no credential, so nothing secret goes out before the
    // handshake proved the server holds a certificate from the pinned CA.
    let bootstrap = Api::new(&options.server, &pin, Some(token.token()), None)?;
    bootstrap.send(bootstrap.http.get(format!("{}/version", bootstrap.server)), "checking the server")?;
    let ca_pem = bootstrap.verifier.trusted_ca().ok_or_else(|| failed("the handshake trusted no CA"))?;
    tracing::info!(server = %options.server, ca = %pin, "the server's CA matches the pinned hash");

    let (client_key, client_request) = pki::generate_request(&user, Some("system:nodes"), &[], &[])?;
    let client_usages = ["digital signature", "client auth"];
    let (client_csr, client_cert) =
        request_certificate(&bootstrap, &client_request, KUBELET_CLIENT_SIGNER, &client_usages, options.timeout)?;
    let client_cert = client_cert.ok_or_else(|| {
        failed(format!(
            "the CSR {client_csr} was not issued within {:?}: is the controller-manager running csrapproving and csrsigning (--cluster-signing-cert-file)?",
            options.timeout
        ))
    })?;

    let node = Api::new(&options.server, &pin, None, Some((&client_cert, &client_key)))?;
    let (serving_key, serving_request) = pki::generate_request(
        &user,
        Some("system:nodes"),
        std::slice::from_ref(&options.node_name),
        &options.node_ips,
    )?;
    let serving_usages = ["digital signature", "server auth"];
    let (serving_csr, serving_cert) =
        request_certificate(&node, &serving_request, KUBELET_SERVING_SIGNER, &serving_usages, options.timeout)?;

    // Everything is in hand: write it.
    std::fs::create_dir_all(options.dir.join("pki"))
        .map_err(|source| ClusterOpsError::Io { path: options.dir.join("pki").display().to_string(), source })?;
    let ca_file = files.pki.ca_cert.clone();
    match std::fs::read_to_string(&ca_file) {
        Ok(existing) if existing.trim() == ca_pem.trim() => {}
        Ok(_) => {
            return Err(failed(format!(
                "{} holds a different CA than the server's; not overwriting it",
                ca_file.display()
            )));
        }
        Err(_) => super::write(&ca_file, &ca_pem, 0o644)?,
    }
    let kubeconfig = files.node_kubeconfig(&options.node_name);
    let credential = Credential::ClientCert { cert_pem: client_cert, key_pem: client_key };
    super::write(
        &kubeconfig,
        &pki::kubeconfig_yaml("rkube", &options.server, &ca_pem, &user, &credential, None),
        0o600,
    )?;
    let serving = match serving_cert {
        Some(cert) => {
            let (cert_path, key_path) = files.kubelet_serving(&options.node_name);
            super::write(&key_path, &serving_key, 0o600)?;
            super::write(&cert_path, &cert, 0o644)?;
            Some((cert_path, key_path))
        }
        None => None,
    };
    Ok(Joined { kubeconfig, ca_file, serving, csrs: vec![client_csr, serving_csr] })
}

/// A new bootstrap token valid for `ttl` (forever with `None`) and its Secret for
/// `kube-system`, for authentication and signing, in `system:bootstrappers` and
/// [`DEFAULT_TOKEN_GROUP`]: `(token, Secret JSON)`.
pub fn bootstrap_token_secret(ttl: Option<Duration>, description: &str) -> Result<(String, Value)> {
    let token = BootstrapToken::generate()?;
    let mut data = json!({
        "token-id": token.id,
        "token-secret": token.secret,
        "usage-bootstrap-authentication": "true",
        "usage-bootstrap-signing": "true",
        "auth-extra-groups": DEFAULT_TOKEN_GROUP,
        "description": description,
    });
    if let Some(ttl) = ttl {
        let span = jiff::SignedDuration::try_from(ttl).map_err(|e| failed(format!("the TTL: {e}")))?;
        let expires = jiff::Timestamp::now()
            .checked_add(span)
            .map_err(|e| failed(format!("the TTL: {e}")))?
            .round(jiff::Unit::Second)
            .map_err(|e| failed(format!("the TTL: {e}")))?;
        data["expiration"] = json!(expires.to_string());
    }
    let secret = json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": token.secret_name(), "namespace": "kube-system"},
        "type": "bootstrap.kubernetes.io/token",
        "stringData": data,
    });
    Ok((token.token(), secret))
}

/// The `rkubectl cluster join` line for `server` with `token`, pinning the CA in `ca_pem`.
pub fn join_command(server: &str, token: &str, ca_pem: &str) -> Result<String> {
    let hash = pki::ca_cert_hash(ca_pem)?;
    Ok(format!(
        "rkubectl cluster join {server} --token {token} --discovery-token-ca-cert-hash {hash} --node-name <name>"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rkube_auth::pki::CertificateAuthority;
    use rustls::pki_types::pem::PemObject as _;

    fn der(pem: &str) -> CertificateDer<'static> {
        CertificateDer::from_pem_slice(pem.as_bytes()).unwrap()
    }

    /// A CA and a server certificate for 127.0.0.1 it issued.
    fn server() -> (CertificateAuthority, String) {
        let ca = CertificateAuthority::generate("join-test-ca").unwrap();
        let leaf = ca.issue_serving("kube-apiserver", &["localhost".into()], &["127.0.0.1".parse().unwrap()]).unwrap();
        (ca, leaf.cert_pem)
    }

    fn check(pin: &str, leaf: &str, chain: &[&str], name: &str) -> std::result::Result<(), String> {
        let verifier = PinnedCaVerifier::new(pin.parse().map_err(|e: ClusterOpsError| e.to_string())?);
        let intermediates: Vec<_> = chain.iter().map(|p| der(p)).collect();
        let name = ServerName::try_from(name.to_string()).unwrap();
        verifier
            .verify_server_cert(&der(leaf), &intermediates, &name, &[], UnixTime::now())
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn the_right_hash_is_accepted_and_its_ca_remembered() {
        let (ca, leaf) = server();
        let hash = pki::ca_cert_hash(ca.cert_pem()).unwrap();
        let verifier = PinnedCaVerifier::new(hash.parse().unwrap());
        let name = ServerName::try_from("127.0.0.1".to_string()).unwrap();
        verifier.verify_server_cert(&der(&leaf), &[der(ca.cert_pem())], &name, &[], UnixTime::now()).unwrap();
        assert_eq!(verifier.trusted_ca().map(|p| der(&p)), Some(der(ca.cert_pem())));
        // Upper-case hex is the same pin.
        check(&hash.to_uppercase().replace("SHA256:", "sha256:"), &leaf, &[ca.cert_pem()], "127.0.0.1").unwrap();
    }

    #[test]
    fn a_wrong_hash_or_a_foreign_chain_is_refused() {
        let (ca, leaf) = server();
        let (other, other_leaf) = server();
        let wrong = pki::ca_cert_hash(other.cert_pem()).unwrap();
        let err = check(&wrong, &leaf, &[ca.cert_pem()], "127.0.0.1").unwrap_err();
        assert!(err.contains("pinned hash"), "{err}");
        // A leaf alone offers no CA to pin.
        let right = pki::ca_cert_hash(ca.cert_pem()).unwrap();
        assert!(check(&right, &leaf, &[], "127.0.0.1").unwrap_err().contains("no CA"));
        // The pinned CA sent along with a leaf it did not issue: the chain does not verify.
        let err = check(&right, &other_leaf, &[ca.cert_pem()], "127.0.0.1").unwrap_err();
        assert!(err.contains("does not verify"), "{err}");
        // The right CA, but the certificate is not for this name.
        assert!(check(&right, &leaf, &[ca.cert_pem()], "10.1.2.3").is_err());
    }

    #[test]
    fn malformed_hashes_are_refused() {
        for bad in ["", "sha256:", "sha256:abc", "md5:00", &format!("sha256:{}", "g".repeat(64)), &"a".repeat(71)] {
            assert!(bad.parse::<CaHash>().is_err(), "{bad:?}");
        }
        assert!(format!("sha256:{}", "A".repeat(64)).parse::<CaHash>().is_ok());
    }

    #[test]
    fn token_secrets_carry_what_the_authenticator_checks() {
        let (token, secret) = bootstrap_token_secret(Some(Duration::from_secs(3600)), "test").unwrap();
        let parsed = BootstrapToken::parse(&token).unwrap();
        assert_eq!(secret["metadata"]["name"], format!("bootstrap-token-{}", parsed.id));
        assert_eq!(secret["type"], "bootstrap.kubernetes.io/token");
        let data = &secret["stringData"];
        assert_eq!(
            (data["token-id"].as_str(), data["token-secret"].as_str()),
            (Some(&*parsed.id), Some(&*parsed.secret))
        );
        assert_eq!(data["usage-bootstrap-authentication"], "true");
        assert_eq!(data["auth-extra-groups"], DEFAULT_TOKEN_GROUP);
        let expires: jiff::Timestamp = data["expiration"].as_str().unwrap().parse().unwrap();
        let left = expires.as_second() - jiff::Timestamp::now().as_second();
        assert!((3590..=3601).contains(&left), "{left}");
        let (_, forever) = bootstrap_token_secret(None, "").unwrap();
        assert!(forever["stringData"].get("expiration").is_none());

        let (ca, _) = server();
        let line = join_command("https://10.0.0.1:6443", &token, ca.cert_pem()).unwrap();
        assert!(line.contains(&pki::ca_cert_hash(ca.cert_pem()).unwrap()) && line.contains(&token), "{line}");
    }

    #[test]
    fn bad_join_options_fail_before_any_connection() {
        let dir = tempfile::tempdir().unwrap();
        let base = JoinOptions {
            server: "https://127.0.0.1:1".into(),
            token: "abcdef.0123456789abcdef".into(),
            ca_cert_hash: format!("sha256:{}", "0".repeat(64)),
            node_name: "n1".into(),
            node_ips: vec![],
            dir: dir.path().to_path_buf(),
            timeout: Duration::from_secs(1),
        };
        let with = |f: &dyn Fn(&mut JoinOptions)| {
            let mut o = base.clone();
            f(&mut o);
            join(&o).unwrap_err().to_string()
        };
        assert!(with(&|o| o.server = "http://x".into()).contains("https://"));
        assert!(with(&|o| o.token = "nope".into()).contains("token"));
        assert!(with(&|o| o.ca_cert_hash = "sha256:12".into()).contains("64 hex"));
        // Nothing listens on port 1: a connection error, and no file written.
        assert!(with(&|_| {}).contains("cannot reach"));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
