//! A throwaway single-member etcd cluster for tests.
//!
//! Uses `std::process` rather than tokio so the same helper works from sync tests,
//! `#[tokio::test]` on any flavour, and `Drop` (which cannot await).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tempfile::TempDir;

/// How long `start`/`restart` wait for etcd to report healthy before giving up.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// A real `etcd` process listening on loopback, with its data in a private temp dir.
///
/// The process is killed (and reaped) on drop; the data dir is removed with the struct.
pub struct Etcd {
    child: Option<Child>,
    client_port: u16,
    peer_port: u16,
    /// With TLS: the certificate files, and the plain-HTTP metrics port health is read from.
    tls: Option<(EtcdTlsFiles, u16)>,
    // Held only so the directory lives exactly as long as the process using it.
    dir: TempDir,
    binary: PathBuf,
}

impl Etcd {
    /// Starts etcd on two free loopback ports and waits until it serves requests.
    ///
    /// The binary is `$RKUBE_ETCD_BIN` if set, else `etcd` from `PATH`.
    pub fn start() -> anyhow::Result<Etcd> {
        Self::start_inner(None)
    }

    /// Like [`Etcd::start`], serving clients over TLS with a certificate from `pki` and
    /// requiring client certificates of its CA (`--client-cert-auth`).
    pub fn start_tls(pki: &crate::TestPki) -> anyhow::Result<Etcd> {
        let (cert, key) = pki.serving_files("etcd", &[std::net::Ipv4Addr::LOCALHOST.into()])?;
        let (client_cert, client_key) = pki.client_files("etcd-client", &[])?;
        Self::start_inner(Some(EtcdTlsFiles { ca: pki.paths.ca_cert.clone(), cert, key, client_cert, client_key }))
    }

    fn start_inner(tls: Option<EtcdTlsFiles>) -> anyhow::Result<Etcd> {
        let binary = std::env::var_os("RKUBE_ETCD_BIN").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("etcd"));
        let mut dir = tempfile::Builder::new().prefix("rkube-etcd-").tempdir().context("creating etcd temp dir")?;
        // Ports are picked by binding to :0 and releasing; another process could grab one
        // in between, so retry a few times with fresh ports rather than failing the test.
        let mut last_err = None;
        for _ in 0..3 {
            let client_port = free_port()?;
            let peer_port = free_port()?;
            if client_port == peer_port {
                continue;
            }
            let tls = match &tls {
                Some(files) => Some((files.clone(), free_port()?)),
                None => None,
            };
            let mut etcd = Etcd { child: None, client_port, peer_port, tls, dir, binary: binary.clone() };
            match etcd.spawn_and_wait() {
                Ok(()) => return Ok(etcd),
                Err(e) => {
                    etcd.stop();
                    last_err = Some(e);
                    dir = etcd.take_dir()?;
                    // A half-initialised member dir would pin the old peer URL.
                    let _ = std::fs::remove_dir_all(dir.path().join("data"));
                }
            }
        }
        Err(last_err.unwrap_or_else(|| anyhow::anyhow!("could not find two free ports")))
    }

    /// The client URL, e.g. `http://127.0.0.1:23790` (`https` with TLS).
    pub fn endpoint(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.client_port)
    }

    /// The TLS files (CA, and a client certificate etcd accepts), when started with TLS.
    pub fn tls_files(&self) -> Option<&EtcdTlsFiles> {
        self.tls.as_ref().map(|(f, _)| f)
    }

    /// PID of the running etcd process, or `None` while stopped.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The data directory (kept across `restart`).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Kills the process and reaps it. Idempotent; data stays on disk for `restart`.
    pub fn stop(&mut self) {
        crate::kill_and_reap(&mut self.child);
    }

    /// Stops (if running) and starts etcd again on the same data dir and ports,
    /// so clients holding the old endpoint can reconnect.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.stop();
        // The kernel may still hold the old listening sockets briefly; retry the spawn.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self.spawn_and_wait() {
                Ok(()) => return Ok(()),
                Err(e) if Instant::now() < deadline => {
                    tracing::debug!(error = %e, "etcd restart attempt failed, retrying");
                    self.stop();
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn take_dir(self) -> anyhow::Result<TempDir> {
        // Moving out of a Drop type needs a swap; the placeholder dir is removed right away.
        let mut this = self;
        let placeholder = tempfile::tempdir().context("creating placeholder dir")?;
        Ok(std::mem::replace(&mut this.dir, placeholder))
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("etcd.log")
    }

    fn spawn_and_wait(&mut self) -> anyhow::Result<()> {
        let client = self.endpoint();
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let log_path = self.log_path();
        let mut log = File::options()
            .create(true)
            .append(true)
            .open(&log_path)
            .with_context(|| format!("opening {}", log_path.display()))?;
        let log_start = log.seek(SeekFrom::End(0)).unwrap_or(0);
        let _ = writeln!(log, "--- starting etcd on {client} ---");
        let stderr = log.try_clone().context("cloning log file handle")?;
        let data_dir = self.data_dir();
        let mut command = Command::new(&self.binary);
        if let Some((files, metrics_port)) = &self.tls {
            command
                .arg("--cert-file")
                .arg(&files.cert)
                .arg("--key-file")
                .arg(&files.key)
                .arg("--trusted-ca-file")
                .arg(&files.ca)
                .arg("--client-cert-auth")
                .arg("--listen-metrics-urls")
                .arg(format!("http://127.0.0.1:{metrics_port}"));
        }
        let child = command
            .arg("--name")
            .arg("rkube-test")
            .arg("--data-dir")
            .arg(&data_dir)
            .arg("--listen-client-urls")
            .arg(&client)
            .arg("--advertise-client-urls")
            .arg(&client)
            .arg("--listen-peer-urls")
            .arg(&peer)
            .arg("--initial-advertise-peer-urls")
            .arg(&peer)
            .arg("--initial-cluster")
            .arg(format!("rkube-test={peer}"))
            .arg("--initial-cluster-state")
            .arg("new")
            .arg("--quota-backend-bytes")
            .arg((4u64 << 30).to_string())
            // Tests that wait on a quiet prefix should not depend on the 10 min default.
            .arg("--experimental-watch-progress-notify-interval")
            .arg("5s")
            .arg("--logger")
            .arg("zap")
            .arg("--log-level")
            .arg("error")
            .arg("--log-outputs")
            .arg("stderr")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(stderr)
            .spawn()
            .with_context(|| format!("spawning {}", self.binary.display()))?;
        self.child = Some(child);
        let ready = self.wait_ready();
        if let Err(e) = ready {
            let tail = log_tail(&log_path, log_start);
            self.stop();
            bail!("etcd did not become ready on {client}: {e:#}\n--- etcd log tail ---\n{tail}");
        }
        Ok(())
    }

    fn wait_ready(&mut self) -> anyhow::Result<()> {
        // With TLS, /health is also served in plain HTTP on the metrics port.
        let port = self.tls.as_ref().map_or(self.client_port, |(_, metrics)| *metrics);
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + READY_TIMEOUT;
        let mut last = String::from("not probed yet");
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                bail!("etcd exited early with {status}");
            }
            match health(addr) {
                Ok(true) => return Ok(()),
                Ok(false) => last = "health endpoint reports unhealthy".into(),
                Err(e) => last = e.to_string(),
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!("timed out after {READY_TIMEOUT:?}: {last}")
    }
}

/// The PEM files of a TLS etcd and of a client it accepts.
#[derive(Debug, Clone)]
pub struct EtcdTlsFiles {
    /// The CA of both certificates.
    pub ca: PathBuf,
    /// etcd's serving certificate.
    pub cert: PathBuf,
    /// Its key.
    pub key: PathBuf,
    /// A client certificate signed by the CA.
    pub client_cert: PathBuf,
    /// Its key.
    pub client_key: PathBuf,
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.stop();
    }
}

fn free_port() -> anyhow::Result<u16> {
    let l = TcpListener::bind(("127.0.0.1", 0)).context("binding probe socket")?;
    Ok(l.local_addr()?.port())
}

/// Asks etcd's `/health` endpoint (served on the client port next to gRPC), which only
/// answers true once the member has a leader and can serve a linearizable read.
fn health(addr: SocketAddr) -> anyhow::Result<bool> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(500))?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    s.set_write_timeout(Some(Duration::from_secs(2)))?;
    write!(s, "GET /health HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")?;
    let mut body = String::new();
    s.read_to_string(&mut body)?;
    Ok(body.starts_with("HTTP/1.1 200") && body.contains("\"health\":\"true\""))
}

fn log_tail(path: &Path, from: u64) -> String {
    let mut buf = String::new();
    if let Ok(mut f) = File::open(path) {
        let _ = f.seek(SeekFrom::Start(from));
        let _ = f.read_to_string(&mut buf);
    }
    let lines: Vec<&str> = buf.lines().collect();
    let start = lines.len().saturating_sub(40);
    lines[start..].join("\n")
}
