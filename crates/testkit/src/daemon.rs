//! Any rkube daemon other than the API server (scheduler, controller-manager, ...) as a real
//! process pointed at a testkit API server, logging into its own temp dir.

use crate::ApiServer;
use crate::apiserver::bin_dir;
use anyhow::{Context, bail};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

/// A running daemon process; killed (SIGKILL) and reaped on drop.
pub struct Daemon {
    child: Option<Child>,
    binary: PathBuf,
    args: Vec<String>,
    dir: tempfile::TempDir,
}

impl Daemon {
    /// Starts `binary` (e.g. "rkube-scheduler") with `--master <api url>`, its health port
    /// disabled, and `extra` flags.
    pub fn start(binary: &str, api: &ApiServer, extra: &[&str]) -> anyhow::Result<Daemon> {
        let path = bin_dir().join(binary);
        if !path.exists() {
            bail!("{} does not exist: run `cargo build --workspace --bins` first (scripts/test does)", path.display());
        }
        let mut args: Vec<String> =
            vec!["--master".into(), api.url(), "--secure-port".into(), "0".into(), "--log-level".into(), "info".into()];
        args.extend(extra.iter().map(|s| s.to_string()));
        let dir = tempfile::Builder::new().prefix(&format!("{binary}-")).tempdir()?;
        let mut daemon = Daemon { child: None, binary: path, args, dir };
        daemon.spawn()?;
        Ok(daemon)
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.log_path())?;
        let child = Command::new(&self.binary)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", self.binary.display()))?;
        self.child = Some(child);
        Ok(())
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("daemon.log")
    }

    /// The last lines the daemon logged.
    pub fn log_tail(&self) -> String {
        crate::tail(&self.log_path(), 40)
    }

    /// PID of the process.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// True while the process has not exited.
    pub fn is_running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }

    /// Kills the process (SIGKILL: no clean shutdown, as when a machine dies) and reaps it.
    pub fn kill(&mut self) {
        crate::kill_and_reap(&mut self.child);
    }

    /// Stops the process with SIGTERM, letting it shut down cleanly, and reaps it.
    pub fn terminate(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill").arg("-TERM").arg(c.id().to_string()).status();
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while std::time::Instant::now() < deadline {
                if c.try_wait().ok().flatten().is_some() {
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the process again with the same flags.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.kill();
        self.spawn()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
    }
}
