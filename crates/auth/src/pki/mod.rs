//! The cluster's PKI: a CA that issues serving and client certificates, the CA hash joining
//! nodes pin (`sha256:<hex>` of the CA's SubjectPublicKeyInfo, like kubeadm's
//! `--discovery-token-ca-cert-hash`), kubeconfig files with inline credentials, and a
//! `write_pki` that lays the files out once in a directory.
//!
//! Keys are ECDSA P-256: ring, our only crypto backend, cannot generate RSA keys.

use crate::der;
use crate::error::{AuthError, Result};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
    KeyUsagePurpose, PublicKeyData as _, SanType, SerialNumber,
};
use ring::rand::SecureRandom as _;
use rustls_pki_types::pem::{PemObject as _, SectionKind};
use std::io::Write as _;
use std::net::IpAddr;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

/// How long a CA certificate is valid, in days (10 years, like kubeadm).
pub const CA_VALIDITY_DAYS: i64 = 3650;
/// How long a leaf certificate is valid, in days (1 year, like kubeadm).
pub const LEAF_VALIDITY_DAYS: i64 = 365;

/// The DNS names every API server certificate carries, so in-cluster clients reach it by
/// the `kubernetes` Service under any of its names.
pub const APISERVER_DEFAULT_DNS_NAMES: [&str; 5] =
    ["kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local", "localhost"];

/// A PEM certificate with its PEM (PKCS#8) private key.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyPair {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The private key, PEM (`PRIVATE KEY`, PKCS#8).
    pub key_pem: String,
}

impl std::fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key never goes into logs.
        f.debug_struct("KeyPair").field("cert_pem", &self.cert_pem).finish_non_exhaustive()
    }
}

/// A certificate authority that can sign leaf certificates.
pub struct CertificateAuthority {
    issuer: Issuer<'static, rcgen::KeyPair>,
    cert_pem: String,
    key_pem: String,
}

impl std::fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateAuthority").field("cert_pem", &self.cert_pem).finish_non_exhaustive()
    }
}

impl CertificateAuthority {
    /// A new self-signed CA with a fresh key, valid for [`CA_VALIDITY_DAYS`].
    pub fn generate(common_name: &str) -> Result<Self> {
        let key = rcgen::KeyPair::generate()?;
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, common_name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        set_validity(&mut params, CA_VALIDITY_DAYS)?;
        params.serial_number = Some(random_serial()?);
        let cert = params.self_signed(&key)?;
        let key_pem = key.serialize_pem();
        Ok(CertificateAuthority { cert_pem: cert.pem(), key_pem, issuer: Issuer::new(params, key) })
    }

    /// Loads a CA from its PEM certificate and PEM (PKCS#8) private key.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self> {
        let key = rcgen::KeyPair::from_pem(key_pem).map_err(|e| AuthError::invalid("CA private key", e))?;
        let cert_der = first_certificate_der(cert_pem)?;
        let (_, parsed) =
            x509_parser::parse_x509_certificate(&cert_der).map_err(|e| AuthError::invalid("CA certificate", e))?;
        if parsed.tbs_certificate.subject_pki.raw != key.subject_public_key_info().as_slice() {
            return Err(AuthError::invalid("CA private key", "does not match the CA certificate"));
        }
        let issuer = Issuer::from_ca_cert_der(&cert_der.clone().into(), key)
            .map_err(|e| AuthError::invalid("CA certificate", e))?;
        Ok(CertificateAuthority {
            issuer,
            cert_pem: pem_encode("CERTIFICATE", &cert_der),
            key_pem: key_pem.to_string(),
        })
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA private key, PEM.
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// A serving certificate (server-auth EKU) for `common_name` valid for the given DNS names
    /// and IP addresses, with a fresh key, valid for [`LEAF_VALIDITY_DAYS`].
    pub fn issue_serving(&self, common_name: &str, dns_names: &[String], ip_addresses: &[IpAddr]) -> Result<KeyPair> {
        let key = rcgen::KeyPair::generate()?;
        let cert_pem = self.issue_serving_for_key(&key, common_name, dns_names, ip_addresses)?;
        Ok(KeyPair { cert_pem, key_pem: key.serialize_pem() })
    }

    /// Like [`CertificateAuthority::issue_serving`] for an existing private key (PEM), so a
    /// lost certificate can be re-issued without replacing its key.
    pub fn issue_serving_for_key_pem(
        &self,
        key_pem: &str,
        common_name: &str,
        dns_names: &[String],
        ip_addresses: &[IpAddr],
    ) -> Result<String> {
        let key = rcgen::KeyPair::from_pem(key_pem).map_err(|e| AuthError::invalid("private key", e))?;
        self.issue_serving_for_key(&key, common_name, dns_names, ip_addresses)
    }

    fn issue_serving_for_key(
        &self,
        key: &rcgen::KeyPair,
        common_name: &str,
        dns_names: &[String],
        ip_addresses: &[IpAddr],
    ) -> Result<String> {
        let mut params = self.leaf_params(common_name)?;
        for name in dns_names {
            let name = name.clone().try_into().map_err(|e| AuthError::invalid("DNS name", e))?;
            params.subject_alt_names.push(SanType::DnsName(name));
        }
        params.subject_alt_names.extend(ip_addresses.iter().copied().map(SanType::IpAddress));
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        Ok(params.signed_by(key, &self.issuer)?.pem())
    }

    /// A client certificate (client-auth EKU) for `user` in `groups`: CN=user and one O per
    /// group, which is how Kubernetes' x509 authenticator reads identities.
    pub fn issue_client(&self, user: &str, groups: &[String]) -> Result<KeyPair> {
        let mut params = self.leaf_params(user)?;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let key = rcgen::KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        // rcgen keeps one value per attribute type in a subject, but a user in several groups
        // needs several O attributes: write the subject ourselves and sign again.
        let mut subject = Vec::with_capacity(groups.len() + 1);
        for group in groups {
            subject.push((der::OID_ORGANIZATION, group.as_str()));
        }
        subject.push((der::OID_COMMON_NAME, user));
        let der = der::replace_subject(cert.der(), &der::name(&subject), self.issuer.key())?;
        Ok(KeyPair { cert_pem: pem_encode("CERTIFICATE", &der), key_pem: key.serialize_pem() })
    }

    fn leaf_params(&self, common_name: &str) -> Result<CertificateParams> {
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, common_name);
        params.is_ca = IsCa::ExplicitNoCa;
        params.use_authority_key_identifier_extension = true;
        set_validity(&mut params, LEAF_VALIDITY_DAYS)?;
        params.serial_number = Some(random_serial()?);
        Ok(params)
    }
}

/// `sha256:<hex>` of the SubjectPublicKeyInfo of the first certificate in `ca_pem`: the value
/// kubeadm's `--discovery-token-ca-cert-hash` pins. It survives CA re-issuance with the same key.
pub fn ca_cert_hash(ca_pem: &str) -> Result<String> {
    let der = first_certificate_der(ca_pem)?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der).map_err(|e| AuthError::invalid("CA certificate", e))?;
    let digest = ring::digest::digest(&ring::digest::SHA256, cert.tbs_certificate.subject_pki.raw);
    Ok(format!("sha256:{}", hex(digest.as_ref())))
}

/// The credential a kubeconfig user presents.
#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    /// A client certificate and its key, both PEM.
    ClientCert {
        /// The certificate, PEM.
        cert_pem: String,
        /// The private key, PEM.
        key_pem: String,
    },
    /// A bearer token.
    Token(String),
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credential::ClientCert { .. } => f.write_str("ClientCert(..)"),
            Credential::Token(_) => f.write_str("Token(..)"),
        }
    }
}

/// A kubeconfig with one cluster, one user and one context (`<user>@<cluster>`, current),
/// credentials inline as base64 `*-data` fields so the file is self-contained.
pub fn kubeconfig_yaml(
    cluster_name: &str,
    server: &str,
    ca_pem: &str,
    user_name: &str,
    credential: &Credential,
    namespace: Option<&str>,
) -> String {
    // JSON strings are valid YAML double-quoted scalars, which escapes any odd name safely.
    let q = |s: &str| serde_json::Value::from(s).to_string();
    let context = format!("{user_name}@{cluster_name}");
    let mut out = String::new();
    out.push_str("apiVersion: v1\nkind: Config\nclusters:\n");
    out.push_str(&format!("- name: {}\n  cluster:\n    server: {}\n", q(cluster_name), q(server)));
    out.push_str(&format!("    certificate-authority-data: {}\n", B64.encode(ca_pem)));
    out.push_str(&format!("users:\n- name: {}\n  user:\n", q(user_name)));
    match credential {
        Credential::ClientCert { cert_pem, key_pem } => {
            out.push_str(&format!("    client-certificate-data: {}\n", B64.encode(cert_pem)));
            out.push_str(&format!("    client-key-data: {}\n", B64.encode(key_pem)));
        }
        Credential::Token(token) => out.push_str(&format!("    token: {}\n", q(token))),
    }
    out.push_str(&format!(
        "contexts:\n- name: {}\n  context:\n    cluster: {}\n    user: {}\n",
        q(&context),
        q(cluster_name),
        q(user_name)
    ));
    if let Some(ns) = namespace {
        out.push_str(&format!("    namespace: {}\n", q(ns)));
    }
    out.push_str(&format!("current-context: {}\npreferences: {{}}\n", q(&context)));
    out
}

/// A fresh ServiceAccount token signing key: `(private PEM (PKCS#8), public PEM (SPKI))`,
/// ECDSA P-256, used for ES256 tokens.
pub fn generate_service_account_key() -> Result<(String, String)> {
    let key = rcgen::KeyPair::generate()?;
    Ok((key.serialize_pem(), key.public_key_pem()))
}

/// The first address of a Service CIDR (`10.96.0.0/12` -> `10.96.0.1`): the ClusterIP of the
/// `kubernetes` Service, which the API server certificate must name.
pub fn first_service_ip(cidr: &str) -> Result<IpAddr> {
    let (addr, prefix) = cidr.split_once('/').ok_or_else(|| AuthError::invalid("service CIDR", cidr))?;
    let addr: IpAddr = addr.parse().map_err(|e| AuthError::invalid("service CIDR", format!("{cidr}: {e}")))?;
    let prefix: u32 = prefix.parse().map_err(|e| AuthError::invalid("service CIDR", format!("{cidr}: {e}")))?;
    match addr {
        IpAddr::V4(v4) if prefix <= 31 => {
            let mask = if prefix == 0 { 0 } else { u32::MAX << (32 - prefix) };
            Ok(IpAddr::V4(((u32::from(v4) & mask) + 1).into()))
        }
        IpAddr::V6(v6) if prefix <= 127 => {
            let mask = if prefix == 0 { 0 } else { u128::MAX << (128 - prefix) };
            Ok(IpAddr::V6(((u128::from(v6) & mask) + 1).into()))
        }
        _ => Err(AuthError::invalid("service CIDR", format!("{cidr}: prefix too long"))),
    }
}

/// What [`write_pki`] issues.
#[derive(Debug, Clone)]
pub struct PkiOptions {
    /// The CA's common name (kubeadm uses `kubernetes`).
    pub ca_common_name: String,
    /// Extra DNS names for the API server certificate (host names, load balancer names).
    pub apiserver_dns_names: Vec<String>,
    /// Extra IP addresses for the API server certificate (node and advertise addresses).
    pub apiserver_ips: Vec<IpAddr>,
    /// The first IP of the Service CIDR (see [`first_service_ip`]).
    pub service_ip: IpAddr,
}

/// The files [`write_pki`] manages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PkiPaths {
    /// `ca.crt`
    pub ca_cert: PathBuf,
    /// `ca.key` (0600)
    pub ca_key: PathBuf,
    /// `apiserver.crt`
    pub apiserver_cert: PathBuf,
    /// `apiserver.key` (0600)
    pub apiserver_key: PathBuf,
    /// `sa.key` (0600): signs ServiceAccount tokens.
    pub sa_key: PathBuf,
    /// `sa.pub`: verifies ServiceAccount tokens.
    pub sa_pub: PathBuf,
}

impl PkiPaths {
    /// The file names under `dir`.
    pub fn in_dir(dir: &Path) -> Self {
        PkiPaths {
            ca_cert: dir.join("ca.crt"),
            ca_key: dir.join("ca.key"),
            apiserver_cert: dir.join("apiserver.crt"),
            apiserver_key: dir.join("apiserver.key"),
            sa_key: dir.join("sa.key"),
            sa_pub: dir.join("sa.pub"),
        }
    }
}

/// Creates the cluster PKI in `dir` (created 0700 if missing): CA, API server serving
/// certificate and ServiceAccount key pair. Files that exist are kept as they are, so running
/// it again never rotates anything; key files are written mode 0600.
pub fn write_pki(dir: &Path, options: &PkiOptions) -> Result<PkiPaths> {
    std::fs::DirBuilder::new().recursive(true).mode_if_unix(0o700).create(dir).map_err(|e| AuthError::io(dir, e))?;
    let paths = PkiPaths::in_dir(dir);

    let ca = match (paths.ca_cert.exists(), paths.ca_key.exists()) {
        (true, true) => CertificateAuthority::from_pem(&read(&paths.ca_cert)?, &read(&paths.ca_key)?)?,
        (false, false) => {
            let ca = CertificateAuthority::generate(&options.ca_common_name)?;
            // Key first: a crash between the two writes leaves a key without a cert, which
            // the next run reports instead of silently pairing a new cert with nothing.
            write_new(&paths.ca_key, ca.key_pem().as_bytes(), 0o600)?;
            write_new(&paths.ca_cert, ca.cert_pem().as_bytes(), 0o644)?;
            tracing::info!(dir = %dir.display(), "generated cluster CA");
            ca
        }
        _ => {
            return Err(AuthError::invalid(
                "PKI directory",
                format!("{}: ca.crt and ca.key must both exist or both be absent", dir.display()),
            ));
        }
    };

    if !paths.apiserver_cert.exists() || !paths.apiserver_key.exists() {
        let mut dns: Vec<String> = APISERVER_DEFAULT_DNS_NAMES.iter().map(|s| s.to_string()).collect();
        for name in &options.apiserver_dns_names {
            if !dns.contains(name) {
                dns.push(name.clone());
            }
        }
        let mut ips = vec![IpAddr::from([127, 0, 0, 1]), options.service_ip];
        for ip in &options.apiserver_ips {
            if !ips.contains(ip) {
                ips.push(*ip);
            }
        }
        // A kept key gets a new certificate; a certificate without its key is useless, so
        // that case (like a half CA) is reported rather than papered over.
        if paths.apiserver_key.exists() {
            let cert = ca.issue_serving_for_key_pem(&read(&paths.apiserver_key)?, "kube-apiserver", &dns, &ips)?;
            write_new(&paths.apiserver_cert, cert.as_bytes(), 0o644)?;
        } else if paths.apiserver_cert.exists() {
            return Err(AuthError::invalid(
                "PKI directory",
                format!("{}: apiserver.crt exists without apiserver.key", dir.display()),
            ));
        } else {
            let pair = ca.issue_serving("kube-apiserver", &dns, &ips)?;
            write_new(&paths.apiserver_key, pair.key_pem.as_bytes(), 0o600)?;
            write_new(&paths.apiserver_cert, pair.cert_pem.as_bytes(), 0o644)?;
        }
        tracing::info!(dir = %dir.display(), dns = ?dns, ips = ?ips, "issued API server certificate");
    }

    if !paths.sa_key.exists() {
        let (private, _) = generate_service_account_key()?;
        write_new(&paths.sa_key, private.as_bytes(), 0o600)?;
        tracing::info!(dir = %dir.display(), "generated ServiceAccount signing key");
    }
    if !paths.sa_pub.exists() {
        let key = rcgen::KeyPair::from_pem(&read(&paths.sa_key)?)
            .map_err(|e| AuthError::invalid("ServiceAccount private key", e))?;
        write_new(&paths.sa_pub, key.public_key_pem().as_bytes(), 0o644)?;
    }
    Ok(paths)
}

/// `DirBuilder::mode` spelled so the call chain above reads top to bottom.
trait DirBuilderExt {
    fn mode_if_unix(&mut self, mode: u32) -> &mut Self;
}

impl DirBuilderExt for std::fs::DirBuilder {
    fn mode_if_unix(&mut self, mode: u32) -> &mut Self {
        std::os::unix::fs::DirBuilderExt::mode(self, mode)
    }
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| AuthError::io(path, e))
}

/// Writes `contents` to `path` only if `path` does not exist. The data goes to a temporary
/// file first and is hard-linked into place, so `path` never exists half-written and a
/// concurrent writer never gets overwritten. Returns whether this call created the file.
fn write_new(path: &Path, contents: &[u8], mode: u32) -> Result<bool> {
    let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = path.with_file_name(format!(".{file_name}.tmp.{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(|e| AuthError::io(&tmp, e))?;
    file.write_all(contents).and_then(|()| file.sync_all()).map_err(|e| AuthError::io(&tmp, e))?;
    drop(file);
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(AuthError::io(path, e)),
    }
}

/// The DER of the first `CERTIFICATE` block in `pem`.
pub(crate) fn first_certificate_der(pem: &str) -> Result<Vec<u8>> {
    for section in <(SectionKind, Vec<u8>)>::pem_slice_iter(pem.as_bytes()) {
        let (kind, der) = section.map_err(|e| AuthError::invalid("PEM", e))?;
        if kind == SectionKind::Certificate {
            return Ok(der);
        }
    }
    Err(AuthError::invalid("PEM", "no CERTIFICATE block"))
}

/// PEM armour around `der`, 64 base64 characters a line.
pub(crate) fn pem_encode(label: &str, der: &[u8]) -> String {
    let b64 = B64.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// Lower-case hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A random positive 20-byte serial number (RFC 5280's maximum).
fn random_serial() -> Result<SerialNumber> {
    let mut bytes = [0u8; 20];
    ring::rand::SystemRandom::new().fill(&mut bytes).map_err(|_| AuthError::Signing("no randomness".into()))?;
    bytes[0] &= 0x7f;
    bytes[0] |= 0x01;
    Ok(SerialNumber::from_slice(&bytes))
}

/// From yesterday (tolerates clocks a little behind ours) to `days` from now, in whole UTC
/// days: rcgen takes calendar dates, which spares this crate a second time library.
fn set_validity(params: &mut CertificateParams, days: i64) -> Result<()> {
    let today = jiff::Timestamp::now().to_zoned(jiff::tz::TimeZone::UTC).date();
    let start = today.checked_sub(jiff::Span::new().days(1)).map_err(|e| AuthError::invalid("validity", e))?;
    let end = today.checked_add(jiff::Span::new().days(days)).map_err(|e| AuthError::invalid("validity", e))?;
    let ymd = |d: jiff::civil::Date| {
        // jiff's month and day are 1-based and small, so the conversions cannot fail.
        rcgen::date_time_ymd(i32::from(d.year()), d.month().unsigned_abs(), d.day().unsigned_abs())
    };
    params.not_before = ymd(start);
    params.not_after = ymd(end);
    Ok(())
}

#[cfg(test)]
mod tests;
