//! Starting and stopping this machine's rkube daemons from the `--config` files in its config
//! directory: through systemd when it runs the machine, else as detached processes that leave a
//! pid file and a log each, so `cluster down` (or an administrator) finds them again.

use crate::{ClusterOpsError, Result};
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The daemons `cluster up` runs, in start order: the API server first (the others wait for
/// it anyway, but start quicker once it answers), the node's daemons last.
pub const DAEMONS: [&str; 6] = ["apiserver", "controller-manager", "scheduler", "ingress", "kubelet", "proxy"];

/// Who keeps the daemons running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Supervisor {
    /// systemd units `rkube-<daemon>.service` (as `cluster init --units-dir` writes them).
    Systemd,
    /// Detached processes with pid files, for machines without systemd (containers, CI).
    Processes,
}

impl Supervisor {
    /// systemd when it is the machine's init (it then owns `/run/systemd/system`).
    pub fn detect() -> Supervisor {
        if Path::new("/run/systemd/system").is_dir() { Supervisor::Systemd } else { Supervisor::Processes }
    }
}

/// One machine's daemons: where their configs, pid files, logs and binaries are.
#[derive(Debug, Clone)]
pub struct MachineDaemons {
    /// The `--config` files, `<daemon>.yaml` (`/etc/rkube`).
    pub config_dir: PathBuf,
    /// Pid files, `rkube-<daemon>.pid` (`/run/rkube`).
    pub run_dir: PathBuf,
    /// Logs, `rkube-<daemon>.log` (`/var/log/rkube`).
    pub log_dir: PathBuf,
    /// Where `rkube-<daemon>` binaries are; `None` looks them up on `$PATH`.
    pub bin_dir: Option<PathBuf>,
}

/// What `start` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Started {
    /// It was running already, with this pid.
    AlreadyRunning(u32),
    /// Started now, with this pid.
    Spawned(u32),
}

impl MachineDaemons {
    /// The daemons that have a config file here, in start order.
    pub fn configured(&self) -> Vec<&'static str> {
        DAEMONS.into_iter().filter(|d| self.config_file(d).is_file()).collect()
    }

    /// `<config_dir>/<daemon>.yaml`.
    pub fn config_file(&self, daemon: &str) -> PathBuf {
        self.config_dir.join(format!("{daemon}.yaml"))
    }

    /// `<run_dir>/rkube-<daemon>.pid`.
    pub fn pid_file(&self, daemon: &str) -> PathBuf {
        self.run_dir.join(format!("rkube-{daemon}.pid"))
    }

    /// `<log_dir>/rkube-<daemon>.log`.
    pub fn log_file(&self, daemon: &str) -> PathBuf {
        self.log_dir.join(format!("rkube-{daemon}.log"))
    }

    /// The binary: `<bin_dir>/rkube-<daemon>`, or the bare name for `$PATH`.
    pub fn binary(&self, daemon: &str) -> PathBuf {
        let name = format!("rkube-{daemon}");
        match &self.bin_dir {
            Some(dir) => dir.join(name),
            None => PathBuf::from(name),
        }
    }

    /// The pid of the daemon's process when its pid file names a live `rkube-<daemon>`;
    /// a pid reused by another program, or a zombie, does not count.
    pub fn running(&self, daemon: &str) -> Option<u32> {
        let pid: u32 = std::fs::read_to_string(self.pid_file(daemon)).ok()?.trim().parse().ok()?;
        is_daemon_process(pid, daemon).then_some(pid)
    }

    /// Starts the daemon as a detached process (own process group, stdin closed, output
    /// appended to its log) unless it runs already.
    pub fn start(&self, daemon: &str) -> Result<Started> {
        if let Some(pid) = self.running(daemon) {
            return Ok(Started::AlreadyRunning(pid));
        }
        let config = self.config_file(daemon);
        if !config.is_file() {
            return Err(ClusterOpsError::Invalid(format!("{daemon}: no config file {}", config.display())));
        }
        for dir in [&self.run_dir, &self.log_dir] {
            std::fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
        }
        let log_path = self.log_file(daemon);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| io_error(&log_path, e))?;
        let log_err = log.try_clone().map_err(|e| io_error(&log_path, e))?;
        let binary = self.binary(daemon);
        let child = Command::new(&binary)
            .arg("--config")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            // Its own process group: a Ctrl-C meant for the shell that ran `cluster up` must not
            // reach the daemons.
            .process_group(0)
            .spawn()
            .map_err(|e| ClusterOpsError::Invalid(format!("starting {}: {e}", binary.display())))?;
        let mut child = child;
        let pid = child.id();
        // The parent resumes once exec has begun, before the kernel has set up the new
        // program's arguments: until then /proc shows no command line, and `running` would not
        // recognise the daemon. Wait for it (or for an early exit, which `up` reports).
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        while !is_daemon_process(pid, daemon)
            && std::time::Instant::now() < deadline
            && matches!(child.try_wait(), Ok(None))
        {
            std::thread::sleep(Duration::from_millis(5));
        }
        let pid_path = self.pid_file(daemon);
        std::fs::write(&pid_path, format!("{pid}\n")).map_err(|e| io_error(&pid_path, e))?;
        tracing::info!(daemon, pid, log = %log_path.display(), "started");
        // The child is not waited for: it outlives this process and is reaped by init.
        drop(child);
        Ok(Started::Spawned(pid))
    }

    /// Stops the daemon (SIGTERM, then SIGKILL after `grace`) and removes its pid file; the
    /// pid it had, or `None` when it was not running.
    pub fn stop(&self, daemon: &str, grace: Duration) -> Result<Option<u32>> {
        let pid_path = self.pid_file(daemon);
        let Some(pid) = self.running(daemon) else {
            let _ = std::fs::remove_file(&pid_path);
            return Ok(None);
        };
        signal(pid, rustix::process::Signal::TERM);
        let deadline = Instant::now() + grace;
        while is_daemon_process(pid, daemon) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        if is_daemon_process(pid, daemon) {
            tracing::warn!(daemon, pid, "did not stop in time; killing it");
            signal(pid, rustix::process::Signal::KILL);
            let deadline = Instant::now() + Duration::from_secs(5);
            while is_daemon_process(pid, daemon) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        std::fs::remove_file(&pid_path).map_err(|e| io_error(&pid_path, e))?;
        Ok(Some(pid))
    }

    /// The last `lines` lines of the daemon's log, to explain why it stopped.
    pub fn log_tail(&self, daemon: &str, lines: usize) -> String {
        let text = std::fs::read_to_string(self.log_file(daemon)).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

/// The systemd unit of a daemon.
pub fn unit(daemon: &str) -> String {
    format!("rkube-{daemon}.service")
}

/// The `systemctl` argument lists that start the daemons and enable them at boot.
pub fn systemctl_start(daemons: &[&str]) -> Vec<Vec<String>> {
    let mut enable = vec!["enable".to_string(), "--now".to_string()];
    enable.extend(daemons.iter().map(|d| unit(d)));
    vec![vec!["daemon-reload".to_string()], enable]
}

/// The `systemctl` argument list that stops the daemons (they stay enabled for the next boot).
pub fn systemctl_stop(daemons: &[&str]) -> Vec<String> {
    let mut stop = vec!["stop".to_string()];
    stop.extend(daemons.iter().rev().map(|d| unit(d)));
    stop
}

/// Runs `systemctl ARGS`, failing with its stderr.
pub fn systemctl(args: &[String]) -> Result<()> {
    let out = Command::new("systemctl")
        .args(args)
        .output()
        .map_err(|e| ClusterOpsError::Invalid(format!("running systemctl: {e}")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(ClusterOpsError::Invalid(format!(
            "systemctl {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

fn io_error(path: &Path, source: std::io::Error) -> ClusterOpsError {
    ClusterOpsError::Io { path: path.display().to_string(), source }
}

fn signal(pid: u32, sig: rustix::process::Signal) {
    if let Some(pid) = i32::try_from(pid).ok().and_then(rustix::process::Pid::from_raw) {
        let _ = rustix::process::kill_process(pid, sig);
    }
}

/// Whether `pid` is a live (not zombie) process running the `rkube-<daemon>` binary.
fn is_daemon_process(pid: u32, daemon: &str) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return false };
    // The state follows the parenthesised command name, which may itself hold spaces or ')'.
    let state = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next());
    if matches!(state, None | Some("Z" | "X")) {
        return false;
    }
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else { return false };
    let name = format!("rkube-{daemon}");
    // argv[0], or argv[1] when an interpreter runs a wrapper script of that name.
    cmdline
        .split(|b| *b == 0)
        .take(2)
        .any(|arg| Path::new(std::ffi::OsStr::from_bytes(arg)).file_name().is_some_and(|f| f == name.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn machine(dir: &Path) -> MachineDaemons {
        MachineDaemons {
            config_dir: dir.join("etc"),
            run_dir: dir.join("run"),
            log_dir: dir.join("log"),
            bin_dir: Some(dir.join("bin")),
        }
    }

    #[test]
    fn configured_daemons_follow_the_config_files_in_start_order() {
        let dir = tempfile::tempdir().unwrap();
        let m = machine(dir.path());
        std::fs::create_dir_all(&m.config_dir).unwrap();
        for d in ["proxy", "apiserver", "kubelet"] {
            std::fs::write(m.config_file(d), "").unwrap();
        }
        assert_eq!(m.configured(), vec!["apiserver", "kubelet", "proxy"]);
        assert_eq!(
            systemctl_start(&m.configured())[1],
            ["enable", "--now", "rkube-apiserver.service", "rkube-kubelet.service", "rkube-proxy.service"]
        );
        assert_eq!(
            systemctl_stop(&["apiserver", "kubelet"]),
            ["stop", "rkube-kubelet.service", "rkube-apiserver.service"]
        );
    }

    #[test]
    fn a_pid_file_counts_only_for_a_live_process_of_that_daemon() {
        let dir = tempfile::tempdir().unwrap();
        let m = machine(dir.path());
        std::fs::create_dir_all(&m.run_dir).unwrap();
        assert_eq!(m.running("scheduler"), None, "no pid file");
        // This test process is alive but is not rkube-scheduler: a reused pid.
        std::fs::write(m.pid_file("scheduler"), format!("{}\n", std::process::id())).unwrap();
        assert_eq!(m.running("scheduler"), None);
        std::fs::write(m.pid_file("scheduler"), "garbage").unwrap();
        assert_eq!(m.running("scheduler"), None);
        assert_eq!(m.stop("scheduler", Duration::from_secs(1)).unwrap(), None);
        assert!(!m.pid_file("scheduler").exists(), "a stale pid file is removed");
    }

    #[test]
    fn starts_a_daemon_detached_and_stops_it_by_its_pid_file() {
        let dir = tempfile::tempdir().unwrap();
        let m = machine(dir.path());
        std::fs::create_dir_all(m.bin_dir.as_ref().unwrap()).unwrap();
        std::fs::create_dir_all(&m.config_dir).unwrap();
        // A stand-in daemon: a script named like one that logs its arguments and runs until
        // SIGTERM.
        let bin = m.binary("scheduler");
        std::fs::write(&bin, "#!/bin/sh\ntrap 'exit 0' TERM\necho \"args: $*\"\nwhile :; do sleep 0.1; done\n")
            .unwrap();
        std::fs::set_permissions(&bin, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        std::fs::write(m.config_file("scheduler"), "v: 1\n").unwrap();
        assert!(m.start("apiserver").unwrap_err().to_string().contains("no config file"));
        let Started::Spawned(pid) = m.start("scheduler").unwrap() else { panic!("not spawned") };
        assert_eq!(m.running("scheduler"), Some(pid));
        assert_eq!(m.start("scheduler").unwrap(), Started::AlreadyRunning(pid));
        let deadline = Instant::now() + Duration::from_secs(5);
        while !m.log_tail("scheduler", 5).contains("args:") && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(m.log_tail("scheduler", 5), format!("args: --config {}", m.config_file("scheduler").display()));
        assert_eq!(m.stop("scheduler", Duration::from_secs(5)).unwrap(), Some(pid));
        assert_eq!(m.running("scheduler"), None);
        assert!(!m.pid_file("scheduler").exists());
    }
}
