//! A real `rkube-apiserver` process against a testkit etcd, on a free loopback port.

use crate::Etcd;
use anyhow::{Context, bail};
use rustls::pki_types::pem::PemObject;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A running API server process; killed and reaped on drop.
pub struct ApiServer {
    child: Option<Child>,
    port: u16,
    etcd_endpoint: String,
    extra_args: Vec<String>,
    dir: tempfile::TempDir,
    /// With TLS: the client settings trusting the test CA, and a system:masters kubeconfig.
    tls: Option<(Arc<rustls::ClientConfig>, String)>,
}

/// Where the daemon binaries are: `$RKUBE_BIN_DIR`, else the cargo target dir this test
/// binary was built into (`target/debug/deps/<test>` -> `target/debug`).
pub fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("RKUBE_BIN_DIR") {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().unwrap_or_default();
    let mut dir = exe.parent().map(PathBuf::from).unwrap_or_default();
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl ApiServer {
    /// Starts an API server against `etcd` and waits until /readyz answers ok.
    pub fn start(etcd: &Etcd) -> anyhow::Result<ApiServer> {
        Self::start_with(etcd, &[])
    }

    /// Like [`ApiServer::start`] with extra flags.
    pub fn start_with(etcd: &Etcd, extra_args: &[&str]) -> anyhow::Result<ApiServer> {
        let dir = tempfile::Builder::new().prefix("rkube-apiserver-").tempdir()?;
        let mut server = ApiServer {
            child: None,
            port: free_port()?,
            etcd_endpoint: etcd.endpoint(),
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
            dir,
            tls: None,
        };
        server.spawn_and_wait()?;
        Ok(server)
    }

    /// Starts an API server serving HTTPS with `pki`'s certificates (client certificates and
    /// ServiceAccount tokens accepted), plus `extra_args`; [`ApiServer::kubeconfig`] is then
    /// an admin (system:masters) client-certificate kubeconfig.
    pub fn start_secure(etcd: &Etcd, pki: &crate::TestPki, extra_args: &[&str]) -> anyhow::Result<ApiServer> {
        let dir = tempfile::Builder::new().prefix("rkube-apiserver-").tempdir()?;
        let port = free_port()?;
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls::pki_types::CertificateDer::pem_slice_iter(pki.ca_pem().as_bytes()) {
            roots.add(cert?)?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let client = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let admin = pki.kubeconfig(&format!("https://127.0.0.1:{port}"), "admin", &["system:masters"])?;
        let mut args = pki.apiserver_args();
        args.extend(extra_args.iter().map(|s| s.to_string()));
        let mut server = ApiServer {
            child: None,
            port,
            etcd_endpoint: etcd.endpoint(),
            extra_args: args,
            dir,
            tls: Some((Arc::new(client), std::fs::read_to_string(admin)?)),
        };
        server.spawn_and_wait()?;
        Ok(server)
    }

    fn spawn_and_wait(&mut self) -> anyhow::Result<()> {
        let binary = bin_dir().join("rkube-apiserver");
        if !binary.exists() {
            bail!(
                "{} does not exist: run `cargo build --workspace --bins` first (scripts/test does)",
                binary.display()
            );
        }
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.log_path())?;
        let child = Command::new(&binary)
            .args(["--etcd-servers", &self.etcd_endpoint, "--bind-address", "127.0.0.1"])
            .args(["--secure-port", &self.port.to_string(), "--log-level", "warn"])
            .args(&self.extra_args)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                bail!("rkube-apiserver exited with {status}: {}", self.log_tail());
            }
            if self.get("/readyz").map(|(code, _)| code == 200).unwrap_or(false) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!("rkube-apiserver did not become ready: {}", self.log_tail())
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("apiserver.log")
    }

    /// The last lines the server logged.
    pub fn log_tail(&self) -> String {
        crate::tail(&self.log_path(), 30)
    }

    /// `http://127.0.0.1:PORT` (`https` when started secure).
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// The listening port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// PID of the server process.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Writes a kubeconfig for this server (no credentials; an admin client certificate when
    /// started secure) and returns its path.
    pub fn kubeconfig(&self) -> anyhow::Result<PathBuf> {
        let path = self.dir.path().join("admin.kubeconfig");
        if let Some((_, admin)) = &self.tls {
            std::fs::write(&path, admin)?;
            return Ok(path);
        }
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: rkube\n  cluster:\n    server: {}\nusers:\n- name: admin\n  user: {{}}\ncontexts:\n- name: rkube\n  context:\n    cluster: rkube\n    user: admin\ncurrent-context: rkube\n",
            self.url()
        );
        std::fs::write(&path, text)?;
        Ok(path)
    }

    /// Stops the process (SIGKILL, then reap).
    pub fn stop(&mut self) {
        crate::kill_and_reap(&mut self.child);
    }

    /// Stops and starts the server again on the same port.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.stop();
        self.spawn_and_wait()
    }

    /// A minimal blocking HTTP(S) GET without credentials, enough for health checks:
    /// (status code, body).
    pub fn get(&self, path: &str) -> anyhow::Result<(u16, String)> {
        let tcp = TcpStream::connect(("127.0.0.1", self.port))?;
        tcp.set_read_timeout(Some(Duration::from_secs(5)))?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
        let mut response = String::new();
        match &self.tls {
            None => {
                let mut stream = tcp;
                stream.write_all(request.as_bytes())?;
                stream.read_to_string(&mut response)?;
            }
            Some((config, _)) => {
                let name = rustls::pki_types::ServerName::IpAddress(std::net::Ipv4Addr::LOCALHOST.into());
                let connection = rustls::ClientConnection::new(config.clone(), name)?;
                let mut stream = rustls::StreamOwned::new(connection, tcp);
                stream.write_all(request.as_bytes())?;
                // The server may close without close_notify; what arrived is the answer.
                if let Err(e) = stream.read_to_string(&mut response)
                    && response.is_empty()
                {
                    return Err(e.into());
                }
            }
        }
        let code = response.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
        let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
        Ok((code, body))
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.stop();
    }
}
