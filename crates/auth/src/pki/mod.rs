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

/// Kubernetes' backdating of issued certificates, for clocks a little behind the signer's.
const SIGNING_BACKDATE: std::time::Duration = std::time::Duration::from_secs(5 * 60);

/// What a PEM certificate request (PKCS#10) asks for, read after its signature checked out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CertificateRequest {
    /// The subject's common name (the user, for client certificates).
    pub common_name: String,
    /// The subject's organizations (the groups, for client certificates), in order.
    pub organizations: Vec<String>,
    /// Requested DNS subject alternative names.
    pub dns_names: Vec<String>,
    /// Requested IP address subject alternative names.
    pub ip_addresses: Vec<IpAddr>,
    /// Requested email subject alternative names.
    pub emails: Vec<String>,
    /// Requested URI subject alternative names.
    pub uris: Vec<String>,
    /// Whether the key is ECDSA (P-256 or P-384).
    pub ecdsa_key: bool,
}

/// The DER of the first PEM block labelled `CERTIFICATE REQUEST`.
fn first_request_der(pem: &str) -> Result<Vec<u8>> {
    for section in <(SectionKind, Vec<u8>)>::pem_slice_iter(pem.as_bytes()) {
        let (kind, der) = section.map_err(|e| AuthError::invalid("certificate request", e))?;
        if kind == SectionKind::Csr {
            return Ok(der);
        }
    }
    Err(AuthError::invalid("certificate request", "no CERTIFICATE REQUEST PEM block"))
}

/// Parses a PEM certificate request and checks its self-signature (proof the requester holds
/// the key); any malformed input is an error, never a panic.
pub fn parse_certificate_request(pem: &str) -> Result<CertificateRequest> {
    use x509_parser::extensions::{GeneralName, ParsedExtension};
    use x509_parser::prelude::FromDer as _;
    let der = first_request_der(pem)?;
    let (_, csr) = x509_parser::certification_request::X509CertificationRequest::from_der(&der)
        .map_err(|e| AuthError::invalid("certificate request", e))?;
    csr.verify_signature().map_err(|e| AuthError::invalid("certificate request", format!("bad signature: {e}")))?;
    let info = &csr.certification_request_info;
    let text = |a: &x509_parser::x509::AttributeTypeAndValue| a.as_str().map(str::to_string);
    let mut out = CertificateRequest {
        common_name: info.subject.iter_common_name().find_map(|a| text(a).ok()).unwrap_or_default(),
        organizations: info.subject.iter_organization().filter_map(|a| text(a).ok()).collect(),
        ecdsa_key: info.subject_pki.algorithm.algorithm == x509_parser::oid_registry::OID_KEY_TYPE_EC_PUBLIC_KEY,
        ..CertificateRequest::default()
    };
    for ext in csr.requested_extensions().into_iter().flatten() {
        if let ParsedExtension::SubjectAlternativeName(san) = ext {
            for name in &san.general_names {
                match name {
                    GeneralName::DNSName(d) => out.dns_names.push(d.to_string()),
                    GeneralName::RFC822Name(e) => out.emails.push(e.to_string()),
                    GeneralName::URI(u) => out.uris.push(u.to_string()),
                    GeneralName::IPAddress(ip) => match ip.len() {
                        4 => out.ip_addresses.push(IpAddr::from(<[u8; 4]>::try_from(*ip).unwrap_or_default())),
                        16 => out.ip_addresses.push(IpAddr::from(<[u8; 16]>::try_from(*ip).unwrap_or_default())),
                        _ => return Err(AuthError::invalid("certificate request", "an IP address SAN of odd length")),
                    },
                    other => {
                        return Err(AuthError::invalid("certificate request", format!("unsupported SAN {other:?}")));
                    }
                }
            }
        }
    }
    Ok(out)
}

/// A fresh ECDSA P-256 key and a certificate request signed with it for `common_name` in
/// `organization` (if any) with the given SANs: `(key PEM (PKCS#8), request PEM)`.
pub fn generate_request(
    common_name: &str,
    organization: Option<&str>,
    dns_names: &[String],
    ip_addresses: &[IpAddr],
) -> Result<(String, String)> {
    let key = rcgen::KeyPair::generate()?;
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    if let Some(o) = organization {
        params.distinguished_name.push(DnType::OrganizationName, o);
    }
    params.distinguished_name.push(DnType::CommonName, common_name);
    for name in dns_names {
        let name = name.clone().try_into().map_err(|e| AuthError::invalid("DNS name", e))?;
        params.subject_alt_names.push(SanType::DnsName(name));
    }
    params.subject_alt_names.extend(ip_addresses.iter().copied().map(SanType::IpAddress));
    let request = params.serialize_request(&key)?;
    Ok((key.serialize_pem(), request.pem()?))
}

/// The key usages and extended key usages of Kubernetes' `spec.usages` names; CA usages
/// (`cert sign`, `crl sign`) and names rcgen cannot express are refused.
fn usages_to_x509(usages: &[String]) -> Result<(Vec<KeyUsagePurpose>, Vec<ExtendedKeyUsagePurpose>)> {
    let (mut key, mut extended) = (Vec::new(), Vec::new());
    for usage in usages {
        match usage.as_str() {
            "signing" | "digital signature" => key.push(KeyUsagePurpose::DigitalSignature),
            "content commitment" => key.push(KeyUsagePurpose::ContentCommitment),
            "key encipherment" => key.push(KeyUsagePurpose::KeyEncipherment),
            "key agreement" => key.push(KeyUsagePurpose::KeyAgreement),
            "data encipherment" => key.push(KeyUsagePurpose::DataEncipherment),
            "encipher only" => key.push(KeyUsagePurpose::EncipherOnly),
            "decipher only" => key.push(KeyUsagePurpose::DecipherOnly),
            "any" => extended.push(ExtendedKeyUsagePurpose::Any),
            "server auth" => extended.push(ExtendedKeyUsagePurpose::ServerAuth),
            "client auth" => extended.push(ExtendedKeyUsagePurpose::ClientAuth),
            "code signing" => extended.push(ExtendedKeyUsagePurpose::CodeSigning),
            "email protection" | "s/mime" => extended.push(ExtendedKeyUsagePurpose::EmailProtection),
            "timestamping" => extended.push(ExtendedKeyUsagePurpose::TimeStamping),
            "ocsp signing" => extended.push(ExtendedKeyUsagePurpose::OcspSigning),
            other => return Err(AuthError::invalid("certificate usages", format!("{other:?} cannot be issued"))),
        }
    }
    key.dedup();
    extended.dedup();
    Ok((key, extended))
}

impl CertificateAuthority {
    /// Issues a certificate for a PEM certificate request: the request's subject (copied
    /// byte for byte, so several organizations survive), public key and SANs, with exactly
    /// the Kubernetes `usages` asked for (never a CA), valid from five minutes ago for
    /// `validity` but never beyond the CA's own expiry. Returns the certificate PEM.
    pub fn sign_request(&self, request_pem: &str, usages: &[String], validity: std::time::Duration) -> Result<String> {
        use x509_parser::prelude::FromDer as _;
        let der = first_request_der(request_pem)?;
        let (_, parsed) = x509_parser::certification_request::X509CertificationRequest::from_der(&der)
            .map_err(|e| AuthError::invalid("certificate request", e))?;
        let subject = parsed.certification_request_info.subject.as_raw().to_vec();
        let mut csr = rcgen::CertificateSigningRequestParams::from_der(&der.clone().into())
            .map_err(|e| AuthError::invalid("certificate request", e))?;
        let (key_usages, extended) = usages_to_x509(usages)?;
        let params = &mut csr.params;
        params.key_usages = key_usages;
        params.extended_key_usages = extended;
        params.is_ca = IsCa::ExplicitNoCa;
        params.use_authority_key_identifier_extension = true;
        params.serial_number = Some(random_serial()?);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_err(|e| AuthError::invalid("system clock", e))?;
        let ca_not_after = {
            let ca_der = first_certificate_der(&self.cert_pem)?;
            let (_, ca) =
                x509_parser::parse_x509_certificate(&ca_der).map_err(|e| AuthError::invalid("CA certificate", e))?;
            u64::try_from(ca.validity().not_after.timestamp()).unwrap_or(0)
        };
        let end = now.saturating_add(validity).as_secs().min(ca_not_after);
        let start = now.saturating_sub(SIGNING_BACKDATE).as_secs();
        if end <= now.as_secs() {
            return Err(AuthError::invalid("CA certificate", "expired"));
        }
        let epoch = rcgen::date_time_ymd(1970, 1, 1);
        params.not_before = epoch + std::time::Duration::from_secs(start);
        params.not_after = epoch + std::time::Duration::from_secs(end);
        let cert = csr.signed_by(&self.issuer)?;
        let der = der::replace_subject(cert.der(), &subject, self.issuer.key())?;
        Ok(pem_encode("CERTIFICATE", &der))
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
        // The file holds the leaf and then the CA: the server sends the whole chain, so a
        // joining node that pins the CA's key hash finds the CA in the handshake.
        if paths.apiserver_key.exists() {
            let cert = ca.issue_serving_for_key_pem(&read(&paths.apiserver_key)?, "kube-apiserver", &dns, &ips)?;
            write_new(&paths.apiserver_cert, format!("{cert}{}", ca.cert_pem()).as_bytes(), 0o644)?;
        } else if paths.apiserver_cert.exists() {
            return Err(AuthError::invalid(
                "PKI directory",
                format!("{}: apiserver.crt exists without apiserver.key", dir.display()),
            ));
        } else {
            let pair = ca.issue_serving("kube-apiserver", &dns, &ips)?;
            write_new(&paths.apiserver_key, pair.key_pem.as_bytes(), 0o600)?;
            write_new(&paths.apiserver_cert, format!("{}{}", pair.cert_pem, ca.cert_pem()).as_bytes(), 0o644)?;
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

#[cfg(test)]
mod request_tests {
    use super::*;

    fn parse_cert(pem: &str) -> Vec<u8> {
        first_certificate_der(pem).unwrap()
    }

    #[test]
    fn a_generated_request_parses_back_and_a_tampered_one_does_not() {
        let ip: IpAddr = "10.0.0.7".parse().unwrap();
        let (key, pem) = generate_request("system:node:n1", Some("system:nodes"), &["n1".into()], &[ip]).unwrap();
        assert!(key.contains("PRIVATE KEY"));
        let req = parse_certificate_request(&pem).unwrap();
        assert_eq!(req.common_name, "system:node:n1");
        assert_eq!(req.organizations, vec!["system:nodes".to_string()]);
        assert_eq!((req.dns_names, req.ip_addresses), (vec!["n1".to_string()], vec![ip]));
        assert!(req.ecdsa_key && req.emails.is_empty() && req.uris.is_empty());

        // Flip one byte of the signed content: the self-signature no longer verifies.
        let mut der = first_request_der(&pem).unwrap();
        let at = der.len() / 3;
        der[at] ^= 0x01;
        assert!(parse_certificate_request(&pem_encode("CERTIFICATE REQUEST", &der)).is_err());
        assert!(parse_certificate_request("not pem at all").is_err());
        assert!(parse_certificate_request(&pem_encode("CERTIFICATE REQUEST", b"\x30\x03\x02\x01")).is_err());
    }

    #[test]
    fn sign_request_copies_the_subject_and_applies_exactly_the_usages() {
        let ca = CertificateAuthority::generate("test-ca").unwrap();
        let (_, pem) = generate_request("system:node:n1", Some("system:nodes"), &[], &[]).unwrap();
        let usages = vec!["digital signature".to_string(), "client auth".to_string()];
        let hour = std::time::Duration::from_secs(3600);
        let cert_pem = ca.sign_request(&pem, &usages, hour).unwrap();
        let der = parse_cert(&cert_pem);
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        let cn: Vec<_> = cert.subject().iter_common_name().map(|a| a.as_str().unwrap().to_string()).collect();
        let orgs: Vec<_> = cert.subject().iter_organization().map(|a| a.as_str().unwrap().to_string()).collect();
        assert_eq!((cn, orgs), (vec!["system:node:n1".to_string()], vec!["system:nodes".to_string()]));
        let eku = cert.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.client_auth && !eku.server_auth);
        assert!(!cert.is_ca());
        let lifetime = cert.validity().not_after.timestamp() - cert.validity().not_before.timestamp();
        assert_eq!(lifetime, 3600 + 300, "an hour plus the five minutes of backdating");
        let ca_der = parse_cert(ca.cert_pem());
        let (_, ca_cert) = x509_parser::parse_x509_certificate(&ca_der).unwrap();
        cert.verify_signature(Some(ca_cert.public_key())).unwrap();

        // Never longer than the CA lives.
        let forever = std::time::Duration::from_secs(100 * 365 * 86400);
        let long_der = parse_cert(&ca.sign_request(&pem, &usages, forever).unwrap());
        let (_, long) = x509_parser::parse_x509_certificate(&long_der).unwrap();
        assert!(long.validity().not_after.timestamp() <= ca_cert.validity().not_after.timestamp());

        for bad in ["cert sign", "crl sign", "netscape sgc"] {
            assert!(ca.sign_request(&pem, &[bad.to_string()], hour).is_err(), "{bad}");
        }
        assert!(ca.sign_request("garbage", &usages, hour).is_err());
    }
}
