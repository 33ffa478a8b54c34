//! A throwaway cluster PKI for tests of the secure paths: a CA, the API server's serving
//! certificate, ServiceAccount keys, and client kubeconfigs for any user, all in a temp dir.

use rkube_auth::pki::{self, CertificateAuthority, Credential, PkiOptions, PkiPaths};
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

/// The PKI of one test cluster; removed on drop.
pub struct TestPki {
    dir: tempfile::TempDir,
    /// The files `write_pki` made.
    pub paths: PkiPaths,
    ca: CertificateAuthority,
}

impl TestPki {
    /// A fresh CA and API server certificate for 127.0.0.1 / localhost.
    pub fn new() -> anyhow::Result<TestPki> {
        let dir = tempfile::Builder::new().prefix("rkube-pki-").tempdir()?;
        let options = PkiOptions {
            ca_common_name: "rkube-test-ca".into(),
            apiserver_dns_names: vec![],
            apiserver_ips: vec![IpAddr::V4(Ipv4Addr::LOCALHOST)],
            service_ip: pki::first_service_ip("10.96.0.0/12")?,
        };
        let paths = pki::write_pki(dir.path(), &options)?;
        let ca = CertificateAuthority::from_pem(
            &std::fs::read_to_string(&paths.ca_cert)?,
            &std::fs::read_to_string(&paths.ca_key)?,
        )?;
        Ok(TestPki { dir, paths, ca })
    }

    /// The CA certificate (PEM).
    pub fn ca_pem(&self) -> &str {
        self.ca.cert_pem()
    }

    /// The API server flags that turn on TLS, client certificates and ServiceAccount tokens.
    pub fn apiserver_args(&self) -> Vec<String> {
        let p = |path: &PathBuf| path.display().to_string();
        vec![
            "--tls-cert-file".into(),
            p(&self.paths.apiserver_cert),
            "--tls-private-key-file".into(),
            p(&self.paths.apiserver_key),
            "--client-ca-file".into(),
            p(&self.paths.ca_cert),
            "--service-account-key-file".into(),
            p(&self.paths.sa_pub),
            "--service-account-signing-key-file".into(),
            p(&self.paths.sa_key),
        ]
    }

    /// A certificate of `user` in `groups` signed by the CA: (cert PEM, key PEM) file paths.
    pub fn client_files(&self, user: &str, groups: &[&str]) -> anyhow::Result<(PathBuf, PathBuf)> {
        let groups: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
        let pair = self.ca.issue_client(user, &groups)?;
        let stem = user.replace(':', "_");
        let (cert, key) = (self.dir.path().join(format!("{stem}.crt")), self.dir.path().join(format!("{stem}.key")));
        std::fs::write(&cert, pair.cert_pem)?;
        std::fs::write(&key, pair.key_pem)?;
        Ok((cert, key))
    }

    /// A serving certificate named `name` for `ips` signed by the CA: (cert, key) file paths.
    pub fn serving_files(&self, name: &str, ips: &[IpAddr]) -> anyhow::Result<(PathBuf, PathBuf)> {
        let pair = self.ca.issue_serving(name, &["localhost".to_string()], ips)?;
        let (cert, key) = (self.dir.path().join(format!("{name}.crt")), self.dir.path().join(format!("{name}.key")));
        std::fs::write(&cert, pair.cert_pem)?;
        std::fs::write(&key, pair.key_pem)?;
        Ok((cert, key))
    }

    /// A kubeconfig for `server` that authenticates as `user` in `groups` with a client
    /// certificate.
    pub fn kubeconfig(&self, server: &str, user: &str, groups: &[&str]) -> anyhow::Result<PathBuf> {
        let groups: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
        let pair = self.ca.issue_client(user, &groups)?;
        let credential = Credential::ClientCert { cert_pem: pair.cert_pem, key_pem: pair.key_pem };
        self.write_kubeconfig(server, user, &credential)
    }

    /// A kubeconfig for `server` that presents the bearer `token` (named `label` on disk).
    pub fn token_kubeconfig(&self, server: &str, label: &str, token: &str) -> anyhow::Result<PathBuf> {
        self.write_kubeconfig(server, label, &Credential::Token(token.to_string()))
    }

    fn write_kubeconfig(&self, server: &str, user: &str, credential: &Credential) -> anyhow::Result<PathBuf> {
        let text = pki::kubeconfig_yaml("rkube", server, self.ca.cert_pem(), user, credential, None);
        let path = self.dir.path().join(format!("{}.kubeconfig", user.replace(':', "_")));
        std::fs::write(&path, text)?;
        Ok(path)
    }

    /// The directory holding every file.
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }
}
