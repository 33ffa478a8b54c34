//! A throwaway OCI registry (`docker-registry`, Debian's distribution 2.8) on a free loopback
//! port, plain HTTP, storage in a temp dir; for tests that exercise image pulls.
//!
//! containerd's CRI pulls from `127.0.0.1:<any port>` over plain HTTP without registry config
//! (it treats loopback hosts as insecure), so `format!("{}/rkube/busybox:1.0", reg.host())`
//! works as a pod's image once [`Registry::push`] put it there.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tempfile::TempDir;

use crate::containerd::free_port;

/// How long `start` waits for the registry to answer `/v2/`.
const READY_TIMEOUT: Duration = Duration::from_secs(15);

/// A running `docker-registry serve` process; killed (by PID) and reaped on drop, its storage
/// removed with the temp dir.
pub struct Registry {
    child: Option<Child>,
    port: u16,
    dir: TempDir,
}

impl Registry {
    /// Starts a registry on a free loopback port and waits until it serves `/v2/`.
    pub fn start() -> anyhow::Result<Registry> {
        let dir = tempfile::Builder::new().prefix("rkube-registry-").tempdir().context("creating registry temp dir")?;
        let mut registry = Registry { child: None, port: 0, dir };
        let mut attempt = 1;
        loop {
            registry.port = free_port()?;
            match registry.spawn_and_wait() {
                Ok(()) => return Ok(registry),
                // The port was free when picked; another process may have taken it since.
                Err(e) if attempt < 3 => {
                    tracing::debug!(error = %e, attempt, "registry start failed, retrying");
                    crate::kill_and_reap(&mut registry.child);
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// `127.0.0.1:<port>`, the registry part of image names.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The full image name of `name_tag` in this registry, e.g. `127.0.0.1:40123/rkube/busybox:1.0`.
    pub fn image(&self, name_tag: &str) -> String {
        format!("{}/{name_tag}", self.host())
    }

    /// PID of the registry process.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Pushes an OCI archive (e.g. [`images::archive`](crate::images::archive)`(BUSYBOX_ARCHIVE)`)
    /// as `name_tag` (e.g. `rkube/busybox:1.0`), with skopeo over plain HTTP.
    pub fn push(&self, archive: &Path, name_tag: &str) -> anyhow::Result<()> {
        let dest = format!("docker://{}", self.image(name_tag));
        // --insecure-policy: no /etc/containers/policy.json is needed for a test registry.
        let out = Command::new("skopeo")
            .args(["--insecure-policy", "copy", "--quiet", "--dest-tls-verify=false"])
            .arg(format!("oci-archive:{}", archive.display()))
            .arg(&dest)
            .stdin(Stdio::null())
            .output()
            .context("running skopeo (install it with scripts/install-deps --runtime)")?;
        if !out.status.success() {
            bail!(
                "skopeo copy {} {dest} failed ({}): {}",
                archive.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(())
    }

    /// The last lines the registry logged.
    pub fn log_tail(&self) -> String {
        crate::tail(&self.log_path(), 40)
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("registry.log")
    }

    fn spawn_and_wait(&mut self) -> anyhow::Result<()> {
        let config = self.dir.path().join("config.yml");
        // Not the package's /etc/docker/registry/config.yml: that one turns on htpasswd auth.
        let yaml = format!(
            "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{}\n",
            serde_json::Value::String(self.dir.path().join("data").to_string_lossy().into_owned()),
            self.port
        );
        std::fs::write(&config, yaml).with_context(|| format!("writing {}", config.display()))?;
        let log = File::options().create(true).append(true).open(self.log_path()).context("opening registry log")?;
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().context("cloning log file handle")?)
            .stderr(log)
            .spawn()
            .context("spawning docker-registry (install it with scripts/install-deps --runtime)")?;
        self.child = Some(child);
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                bail!("docker-registry exited early with {status}: {}", self.log_tail());
            }
            if v2_ok(addr) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!("docker-registry did not answer on {addr} within {READY_TIMEOUT:?}: {}", self.log_tail());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        crate::kill_and_reap(&mut self.child);
    }
}

/// True when `GET /v2/` answers 200 (the registry API's version check).
fn v2_ok(addr: SocketAddr) -> bool {
    let probe = || -> std::io::Result<bool> {
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(200))?;
        s.set_read_timeout(Some(Duration::from_secs(2)))?;
        write!(s, "GET /v2/ HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")?;
        let mut head = [0u8; 12];
        s.read_exact(&mut head)?;
        Ok(&head == b"HTTP/1.1 200")
    };
    probe().unwrap_or(false)
}
