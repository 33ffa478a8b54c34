//! TLS termination: certificates from `kubernetes.io/tls` Secrets (PEM `tls.crt` chain and
//! `tls.key`), parsed once per Secret resourceVersion, and the rustls resolver that picks one
//! per handshake by SNI from the current routing table. A client no Ingress names a
//! certificate for gets the default one (a `spec.tls` entry without hosts,
//! `--default-ssl-certificate`, else a self-signed certificate made at start, as other
//! ingress controllers do) rather than a failed handshake.

use crate::routes::Router;
use k8s_openapi::api::core::v1::Secret;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::collections::HashMap;
use std::sync::Arc;

/// Why a Secret does not yield a certificate.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CertError {
    /// A key the Secret must have is missing.
    #[error("secret has no {0}")]
    Missing(&'static str),
    /// `tls.crt` holds no PEM certificate.
    #[error("tls.crt: {0}")]
    Chain(String),
    /// `tls.key` holds no usable PEM private key.
    #[error("tls.key: {0}")]
    Key(String),
    /// The key does not belong to the certificate, or rustls cannot use it.
    #[error("certificate and key: {0}")]
    Mismatch(String),
    /// The fallback certificate could not be made.
    #[error("generating the default certificate: {0}")]
    Generate(String),
}

/// The crypto provider for every TLS use here: ring, the one the workspace already builds.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A certificate and key from PEM text.
pub fn certified_key(chain_pem: &[u8], key_pem: &[u8], provider: &CryptoProvider) -> Result<CertifiedKey, CertError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(chain_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| CertError::Chain(e.to_string()))?;
    if chain.is_empty() {
        return Err(CertError::Chain("no CERTIFICATE block".into()));
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| CertError::Key(e.to_string()))?;
    CertifiedKey::from_der(chain, key, provider).map_err(|e| CertError::Mismatch(e.to_string()))
}

/// A parsed Secret: the resourceVersion it was parsed at and the outcome.
type CacheEntry = (Option<String>, Result<Arc<CertifiedKey>, CertError>);

/// Parsed certificates by Secret key, reused while the Secret's resourceVersion stays.
pub struct CertCache {
    provider: Arc<CryptoProvider>,
    entries: HashMap<String, CacheEntry>,
}

impl CertCache {
    /// An empty cache.
    pub fn new(provider: Arc<CryptoProvider>) -> CertCache {
        CertCache { provider, entries: HashMap::new() }
    }

    /// The certificate in `secret` (stored under `key`, its `namespace/name`).
    pub fn get(&mut self, key: &str, secret: &Secret) -> Result<Arc<CertifiedKey>, CertError> {
        let rv = secret.metadata.resource_version.clone();
        if let Some((cached_rv, parsed)) = self.entries.get(key)
            && rv.is_some()
            && *cached_rv == rv
        {
            return parsed.clone();
        }
        let parsed = parse_secret(secret, &self.provider).map(Arc::new);
        self.entries.insert(key.to_string(), (rv, parsed.clone()));
        parsed
    }

    /// Drops entries for Secrets not in `keep`.
    pub fn retain(&mut self, keep: &std::collections::HashSet<String>) {
        self.entries.retain(|k, _| keep.contains(k));
    }
}

fn parse_secret(secret: &Secret, provider: &CryptoProvider) -> Result<CertifiedKey, CertError> {
    let data = secret.data.as_ref();
    let field = |name: &'static str| -> Result<&[u8], CertError> {
        data.and_then(|d| d.get(name)).map(|b| b.0.as_slice()).ok_or(CertError::Missing(name))
    };
    certified_key(field("tls.crt")?, field("tls.key")?, provider)
}

/// A self-signed certificate for clients no Ingress has a certificate for.
pub fn self_signed(provider: &CryptoProvider) -> Result<CertifiedKey, CertError> {
    let generated = rcgen::generate_simple_self_signed(vec!["rkube-ingress.invalid".to_string()])
        .map_err(|e| CertError::Generate(e.to_string()))?;
    let key =
        PrivateKeyDer::try_from(generated.signing_key.serialize_der()).map_err(|e| CertError::Generate(e.into()))?;
    CertifiedKey::from_der(vec![generated.cert.der().clone()], key, provider)
        .map_err(|e| CertError::Generate(e.to_string()))
}

/// Picks the certificate for each handshake from the router's current table.
#[derive(Debug)]
pub struct Resolver {
    router: Arc<Router>,
    fallback: Arc<CertifiedKey>,
}

impl Resolver {
    /// A resolver over `router`'s certificates, `fallback` when none fits.
    pub fn new(router: Arc<Router>, fallback: Arc<CertifiedKey>) -> Resolver {
        Resolver { router, fallback }
    }
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let table = self.router.table();
        Some(table.certs.lookup(hello.server_name()).cloned().unwrap_or_else(|| self.fallback.clone()))
    }
}

/// The rustls server configuration: certificates by SNI, ALPN `h2` (when enabled) and
/// `http/1.1`.
pub fn server_config(resolver: Arc<Resolver>, http2: bool) -> Result<rustls::ServerConfig, CertError> {
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| CertError::Generate(e.to_string()))?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = if http2 { vec![b"h2".to_vec(), b"http/1.1".to_vec()] } else { vec![b"http/1.1".to_vec()] };
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;
    use std::collections::BTreeMap;

    fn secret(rv: &str, crt: &str, key: &str) -> Secret {
        let mut s = Secret::default();
        s.metadata.resource_version = Some(rv.into());
        s.data = Some(BTreeMap::from([
            ("tls.crt".to_string(), ByteString(crt.as_bytes().to_vec())),
            ("tls.key".to_string(), ByteString(key.as_bytes().to_vec())),
        ]));
        s
    }

    fn generated(name: &str) -> (String, String) {
        let c = rcgen::generate_simple_self_signed(vec![name.to_string()]).unwrap();
        (c.cert.pem(), c.signing_key.serialize_pem())
    }

    #[test]
    fn secrets_parse_once_per_resource_version_and_bad_ones_say_why() {
        let mut cache = CertCache::new(provider());
        let (crt, key) = generated("a.example");
        let first = cache.get("ns/a", &secret("1", &crt, &key)).unwrap();
        let again = cache.get("ns/a", &secret("1", &crt, &key)).unwrap();
        assert!(Arc::ptr_eq(&first, &again));
        let (crt2, key2) = generated("b.example");
        let changed = cache.get("ns/a", &secret("2", &crt2, &key2)).unwrap();
        assert_ne!(changed.cert, first.cert);

        assert!(matches!(cache.get("ns/b", &secret("1", "junk", &key)), Err(CertError::Chain(_))));
        assert!(matches!(cache.get("ns/b", &secret("2", &crt, "junk")), Err(CertError::Key(_))));
        assert!(matches!(cache.get("ns/b", &secret("3", &crt, &key2)), Err(CertError::Mismatch(_))));
        assert!(matches!(cache.get("ns/b", &Secret::default()), Err(CertError::Missing("tls.crt"))));
        cache.retain(&["ns/a".to_string()].into());
        assert_eq!(cache.entries.len(), 1);
    }

    #[test]
    fn the_fallback_certificate_is_usable() {
        let key = self_signed(&provider()).unwrap();
        assert!(key.keys_match().is_ok());
    }
}
