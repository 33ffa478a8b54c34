use super::*;
use crate::authn::{AUTHENTICATED_GROUP, ServiceAccountClaims, ServiceAccountTokenSigner, ServiceAccountTokenVerifier};
use rustls::client::danger::ServerCertVerifier as _;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use std::os::unix::fs::PermissionsExt as _;
use std::sync::Arc;

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn roots(ca_pem: &str) -> Arc<rustls::RootCertStore> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from(first_certificate_der(ca_pem).unwrap())).unwrap();
    Arc::new(roots)
}

fn leaf(pem: &str) -> CertificateDer<'static> {
    CertificateDer::from(first_certificate_der(pem).unwrap())
}

/// What a rustls client trusting only `ca_pem` says about `cert_pem` served for `name`.
fn server_check(ca_pem: &str, cert_pem: &str, name: &str) -> std::result::Result<(), rustls::Error> {
    let verifier =
        rustls::client::WebPkiServerVerifier::builder_with_provider(roots(ca_pem), provider()).build().unwrap();
    let name = ServerName::try_from(name.to_string()).unwrap();
    verifier.verify_server_cert(&leaf(cert_pem), &[], &name, &[], UnixTime::now()).map(|_| ())
}

/// What a rustls server trusting only `ca_pem` for client certificates says about `cert_pem`.
fn client_check(ca_pem: &str, cert_pem: &str) -> std::result::Result<(), rustls::Error> {
    let verifier =
        rustls::server::WebPkiClientVerifier::builder_with_provider(roots(ca_pem), provider()).build().unwrap();
    verifier.verify_client_cert(&leaf(cert_pem), &[], UnixTime::now()).map(|_| ())
}

#[test]
fn serving_certificate_is_accepted_for_its_names_only() {
    let ca = CertificateAuthority::generate("test-ca").unwrap();
    let ips = [IpAddr::from([10, 96, 0, 1]), "fd00::1".parse().unwrap()];
    let pair =
        ca.issue_serving("kube-apiserver", &["kubernetes.default.svc".into(), "api.example".into()], &ips).unwrap();

    server_check(ca.cert_pem(), &pair.cert_pem, "kubernetes.default.svc").unwrap();
    server_check(ca.cert_pem(), &pair.cert_pem, "api.example").unwrap();
    server_check(ca.cert_pem(), &pair.cert_pem, "10.96.0.1").unwrap();
    server_check(ca.cert_pem(), &pair.cert_pem, "fd00::1").unwrap();
    let wrong = server_check(ca.cert_pem(), &pair.cert_pem, "evil.example").unwrap_err();
    assert!(format!("{wrong:?}").contains("NotValidForName"), "{wrong:?}");
    assert!(server_check(ca.cert_pem(), &pair.cert_pem, "10.96.0.2").is_err());

    if let Some(ok) = openssl_verify(ca.cert_pem(), &pair.cert_pem, "sslserver") {
        assert!(ok, "openssl rejects the serving certificate");
        assert_eq!(openssl_verify(ca.cert_pem(), &pair.cert_pem, "sslclient"), Some(false));
    }
    // Another CA's client does not trust it, and a serving cert is no client cert.
    let other = CertificateAuthority::generate("other-ca").unwrap();
    assert!(server_check(other.cert_pem(), &pair.cert_pem, "kubernetes.default.svc").is_err());
    assert!(client_check(ca.cert_pem(), &pair.cert_pem).is_err());
    // The key in the pair is the certificate's.
    let key = rcgen::KeyPair::from_pem(&pair.key_pem).unwrap();
    let der = first_certificate_der(&pair.cert_pem).unwrap();
    let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
    assert_eq!(cert.tbs_certificate.subject_pki.raw, key.subject_public_key_info().as_slice());
}

#[test]
fn client_certificate_carries_user_and_every_group() {
    let ca = CertificateAuthority::generate("test-ca").unwrap();
    let groups = vec!["system:masters".to_string(), "team-a".to_string(), "team, b".to_string()];
    let pair = ca.issue_client("alice", &groups).unwrap();
    // The re-signed certificate still verifies as a client certificate of this CA ...
    client_check(ca.cert_pem(), &pair.cert_pem).unwrap();
    // ... and not of another CA, nor as a serving certificate.
    let other = CertificateAuthority::generate("other-ca").unwrap();
    assert!(client_check(other.cert_pem(), &pair.cert_pem).is_err());
    assert!(server_check(ca.cert_pem(), &pair.cert_pem, "alice").is_err());

    let user = crate::authn::from_client_certificate(&first_certificate_der(&pair.cert_pem).unwrap()).unwrap();
    assert_eq!(user.name, "alice");
    assert_eq!(user.groups, ["system:masters", "team-a", "team, b", AUTHENTICATED_GROUP]);

    // openssl agrees, independently of rustls/webpki, when installed.
    match openssl_verify(ca.cert_pem(), &pair.cert_pem, "sslclient") {
        Some(ok) => {
            assert!(ok, "openssl rejects the client certificate");
            assert_eq!(openssl_verify(other.cert_pem(), &pair.cert_pem, "sslclient"), Some(false));
            let subject = openssl_subject(&pair.cert_pem).unwrap();
            assert!(subject.contains("O=system:masters") && subject.contains("O=team-a"), "{subject}");
            assert!(subject.contains("CN=alice"), "{subject}");
        }
        None => eprintln!("openssl not found: skipped the openssl verification"),
    }

    let solo = ca.issue_client("system:node:n1", &["system:nodes".into()]).unwrap();
    let user = crate::authn::from_client_certificate(&first_certificate_der(&solo.cert_pem).unwrap()).unwrap();
    assert_eq!(
        (user.name.as_str(), user.groups.as_slice()),
        ("system:node:n1", &["system:nodes".to_string(), AUTHENTICATED_GROUP.to_string()][..])
    );
}

#[test]
fn ca_round_trips_through_pem_and_rejects_a_foreign_key() {
    let ca = CertificateAuthority::generate("test-ca").unwrap();
    let loaded = CertificateAuthority::from_pem(ca.cert_pem(), ca.key_pem()).unwrap();
    let pair = loaded.issue_serving("x", &["x.example".into()], &[]).unwrap();
    // Issued by the reloaded CA, trusted through the original certificate.
    server_check(ca.cert_pem(), &pair.cert_pem, "x.example").unwrap();
    let client = loaded.issue_client("bob", &[]).unwrap();
    client_check(ca.cert_pem(), &client.cert_pem).unwrap();

    let other = CertificateAuthority::generate("other").unwrap();
    let err = CertificateAuthority::from_pem(ca.cert_pem(), other.key_pem()).unwrap_err();
    assert!(err.to_string().contains("does not match"), "{err}");
    assert!(CertificateAuthority::from_pem("garbage", ca.key_pem()).is_err());
}

#[test]
fn ca_cert_hash_is_the_spki_sha256() {
    let ca = CertificateAuthority::generate("hash-ca").unwrap();
    let hash = ca_cert_hash(ca.cert_pem()).unwrap();
    assert_eq!(hash, ca_cert_hash(ca.cert_pem()).unwrap());
    let hex_part = hash.strip_prefix("sha256:").unwrap();
    assert_eq!(hex_part.len(), 64);
    assert!(hex_part.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
    // Reloading the CA keeps the key, so the hash.
    let reloaded = CertificateAuthority::from_pem(ca.cert_pem(), ca.key_pem()).unwrap();
    assert_eq!(ca_cert_hash(reloaded.cert_pem()).unwrap(), hash);
    // Another CA has another hash.
    assert_ne!(ca_cert_hash(CertificateAuthority::generate("hash-ca").unwrap().cert_pem()).unwrap(), hash);

    // The same value computed independently: the public key's DER as rcgen encodes it, and
    // kubeadm's documented openssl pipeline when openssl is installed.
    let key = rcgen::KeyPair::from_pem(ca.key_pem()).unwrap();
    let digest = ring::digest::digest(&ring::digest::SHA256, &key.subject_public_key_info());
    assert_eq!(hash, format!("sha256:{}", hex(digest.as_ref())));
    if let Some(openssl_hash) = openssl_spki_sha256(ca.cert_pem()) {
        assert_eq!(hex_part, openssl_hash);
    } else {
        eprintln!("openssl not found: skipped the openssl comparison");
    }
}

/// `openssl verify -purpose <purpose>` of `cert_pem` against `ca_pem`; `None` without openssl.
fn openssl_verify(ca_pem: &str, cert_pem: &str, purpose: &str) -> Option<bool> {
    let dir = tempfile::tempdir().ok()?;
    let (ca, cert) = (dir.path().join("ca.crt"), dir.path().join("cert.crt"));
    std::fs::write(&ca, ca_pem).ok()?;
    std::fs::write(&cert, cert_pem).ok()?;
    let out = std::process::Command::new("openssl")
        .args(["verify", "-purpose", purpose, "-CAfile"])
        .arg(&ca)
        .arg(&cert)
        .output()
        .ok()?;
    Some(out.status.success())
}

fn openssl_subject(cert_pem: &str) -> Option<String> {
    use std::process::{Command, Stdio};
    let mut child = Command::new("openssl")
        .args(["x509", "-noout", "-subject", "-nameopt", "RFC2253"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .ok()?;
    child.stdin.take()?.write_all(cert_pem.as_bytes()).ok()?;
    String::from_utf8(child.wait_with_output().ok()?.stdout).ok()
}

fn openssl_spki_sha256(ca_pem: &str) -> Option<String> {
    use std::process::{Command, Stdio};
    let run = |args: &[&str], input: &[u8]| -> Option<Vec<u8>> {
        let mut child = Command::new("openssl").args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().ok()?;
        child.stdin.take()?.write_all(input).ok()?;
        let out = child.wait_with_output().ok()?;
        out.status.success().then_some(out.stdout)
    };
    let pubkey = run(&["x509", "-pubkey", "-noout"], ca_pem.as_bytes())?;
    let der = run(&["pkey", "-pubin", "-outform", "der"], &pubkey)?;
    let digest = run(&["dgst", "-sha256", "-hex"], &der)?;
    let text = String::from_utf8(digest).ok()?;
    Some(text.trim().rsplit(' ').next()?.to_string())
}

#[test]
fn kubeconfig_parses_with_the_client_and_carries_inline_data() {
    let ca = CertificateAuthority::generate("kc-ca").unwrap();
    let pair = ca.issue_client("kubernetes-admin", &["system:masters".into()]).unwrap();
    let credential = Credential::ClientCert { cert_pem: pair.cert_pem.clone(), key_pem: pair.key_pem.clone() };
    let yaml =
        kubeconfig_yaml("rkube", "https://127.0.0.1:6443", ca.cert_pem(), "kubernetes-admin", &credential, Some("dev"));

    let parsed = rkube_client::kubeconfig::Kubeconfig::parse(&yaml, None).unwrap();
    assert_eq!(parsed.server, "https://127.0.0.1:6443");
    assert_eq!(parsed.namespace.as_deref(), Some("dev"));
    assert_eq!(parsed.token, None);
    assert_eq!(parsed.certificate_authority.as_deref(), Some(ca.cert_pem().as_bytes()));
    assert_eq!(parsed.client_certificate.as_deref(), Some(pair.cert_pem.as_bytes()));
    assert_eq!(parsed.client_key.as_deref(), Some(pair.key_pem.as_bytes()));

    // The field names are the standard ones, holding base64 data rather than file paths.
    let raw: serde_json::Value = serde_saphyr::from_str(&yaml).unwrap();
    assert_eq!(raw["current-context"], "kubernetes-admin@rkube");
    let user = &raw["users"][0]["user"];
    assert_eq!(B64.decode(user["client-certificate-data"].as_str().unwrap()).unwrap(), pair.cert_pem.as_bytes());
    assert_eq!(B64.decode(user["client-key-data"].as_str().unwrap()).unwrap(), pair.key_pem.as_bytes());
    let cluster = &raw["clusters"][0]["cluster"];
    assert_eq!(B64.decode(cluster["certificate-authority-data"].as_str().unwrap()).unwrap(), ca.cert_pem().as_bytes());

    let token_yaml = kubeconfig_yaml(
        "c\"x",
        "https://10.0.0.1:6443",
        ca.cert_pem(),
        "bot",
        &Credential::Token("abc.def:ghi".into()),
        None,
    );
    let parsed = rkube_client::kubeconfig::Kubeconfig::parse(&token_yaml, None).unwrap();
    assert_eq!(parsed.token.as_deref(), Some("abc.def:ghi"));
    assert_eq!(parsed.namespace, None);
    assert_eq!(parsed.client_certificate, None);

    // Real kubectl reads it too, when installed.
    if let Some(data) = kubectl_view(&yaml, "{.users[0].user.client-certificate-data}") {
        assert_eq!(B64.decode(data.trim()).unwrap(), pair.cert_pem.as_bytes());
        assert_eq!(kubectl_view(&yaml, "{.contexts[0].context.namespace}").as_deref(), Some("dev"));
    } else {
        eprintln!("kubectl not found: skipped the kubectl check");
    }
}

fn kubectl_view(yaml: &str, jsonpath: &str) -> Option<String> {
    let dir = tempfile::tempdir().ok()?;
    let path = dir.path().join("config");
    std::fs::write(&path, yaml).ok()?;
    let out = std::process::Command::new("kubectl")
        .args(["config", "view", "--raw", "-o"])
        .arg(format!("jsonpath={jsonpath}"))
        .arg("--kubeconfig")
        .arg(&path)
        .output()
        .ok()?;
    assert!(out.status.success(), "kubectl: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).ok()
}

#[test]
fn first_service_ip_of_cidrs() {
    assert_eq!(first_service_ip("10.96.0.0/12").unwrap(), IpAddr::from([10, 96, 0, 1]));
    assert_eq!(first_service_ip("10.96.5.7/16").unwrap(), IpAddr::from([10, 96, 0, 1]));
    assert_eq!(first_service_ip("fd00:10:96::/108").unwrap(), "fd00:10:96::1".parse::<IpAddr>().unwrap());
    assert!(first_service_ip("10.96.0.0").is_err());
    assert!(first_service_ip("10.96.0.0/32").is_err());
    assert!(first_service_ip("nope/12").is_err());
}

#[test]
fn write_pki_creates_once_and_never_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    let pki_dir = dir.path().join("pki");
    let options = PkiOptions {
        ca_common_name: "kubernetes".into(),
        apiserver_dns_names: vec!["node-1".into()],
        apiserver_ips: vec![IpAddr::from([192, 168, 1, 10])],
        service_ip: first_service_ip("10.96.0.0/12").unwrap(),
    };
    let paths = write_pki(&pki_dir, &options).unwrap();
    assert_eq!(paths, PkiPaths::in_dir(&pki_dir));
    let files =
        [&paths.ca_cert, &paths.ca_key, &paths.apiserver_cert, &paths.apiserver_key, &paths.sa_key, &paths.sa_pub];
    let before: Vec<String> = files.iter().map(|p| std::fs::read_to_string(p).unwrap()).collect();
    for key in [&paths.ca_key, &paths.apiserver_key, &paths.sa_key] {
        assert_eq!(std::fs::metadata(key).unwrap().permissions().mode() & 0o777, 0o600, "{}", key.display());
    }
    assert_eq!(std::fs::metadata(&pki_dir).unwrap().permissions().mode() & 0o777, 0o700);

    let ca = read(&paths.ca_cert).unwrap();
    let server = read(&paths.apiserver_cert).unwrap();
    for name in [
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
        "localhost",
        "node-1",
        "127.0.0.1",
        "10.96.0.1",
        "192.168.1.10",
    ] {
        server_check(&ca, &server, name).unwrap_or_else(|e| panic!("{name}: {e:?}"));
    }
    assert!(server_check(&ca, &server, "node-2").is_err());

    // sa.pub is the public half of sa.key.
    let signer =
        ServiceAccountTokenSigner::new(&read(&paths.sa_key).unwrap(), "https://kubernetes.default.svc").unwrap();
    let verifier =
        ServiceAccountTokenVerifier::new(&read(&paths.sa_pub).unwrap(), "https://kubernetes.default.svc", vec![])
            .unwrap();
    let claims = ServiceAccountClaims {
        namespace: "default".into(),
        name: "default".into(),
        uid: "u".into(),
        pod: None,
        node: None,
        audiences: vec!["https://kubernetes.default.svc".into()],
        expiration: jiff::Timestamp::now() + jiff::SignedDuration::from_hours(1),
        token_id: None,
    };
    verifier.verify(&signer.issue(&claims).unwrap()).unwrap();

    // A second run changes nothing; a lost apiserver.crt is re-issued by the same CA.
    write_pki(&pki_dir, &options).unwrap();
    let after: Vec<String> = files.iter().map(|p| std::fs::read_to_string(p).unwrap()).collect();
    assert_eq!(before, after);
    std::fs::remove_file(&paths.apiserver_cert).unwrap();
    std::fs::remove_file(&paths.sa_pub).unwrap();
    write_pki(&pki_dir, &options).unwrap();
    assert_eq!(read(&paths.ca_cert).unwrap(), before[0]);
    assert_eq!(read(&paths.apiserver_key).unwrap(), before[3], "an existing key is kept");
    assert_eq!(read(&paths.sa_pub).unwrap(), before[5], "sa.pub is derived again from sa.key");
    let reissued = read(&paths.apiserver_cert).unwrap();
    assert_ne!(reissued, before[2]);
    server_check(&ca, &reissued, "kubernetes.default.svc").unwrap();
    let key = rcgen::KeyPair::from_pem(&before[3]).unwrap();
    let der = first_certificate_der(&reissued).unwrap();
    let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
    assert_eq!(
        cert.tbs_certificate.subject_pki.raw,
        key.subject_public_key_info().as_slice(),
        "cert is for the kept key"
    );

    // Half a CA is an error, not a silent new CA.
    std::fs::remove_file(&paths.ca_key).unwrap();
    let err = write_pki(&pki_dir, &options).unwrap_err();
    assert!(err.to_string().contains("must both exist"), "{err}");
    assert_eq!(read(&paths.ca_cert).unwrap(), before[0]);
}
