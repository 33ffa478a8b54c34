//! A real containerd (with its CRI plugin) in a private temp dir (under `/dev/shm` when that is
//! a tmpfs, for speed), one "node runtime" per instance, for tests of the kubelet and of whole
//! clusters.
//!
//! Each instance has its own root, state, gRPC and ttrpc sockets, runc root, CRI stream port,
//! CNI config dir and network: a bridge `rkb<N>` with pods on `10.250.<N>.0/24`, where `N` is a
//! slot held through a lock file in `/run/rkube-testkit/`, so instances in parallel test
//! processes never share a bridge or subnet. Several instances side by side are several nodes
//! (pods reach each other by pod IP across them: `ipMasq` is off and IP forwarding on).
//!
//! The test images [`BUSYBOX_IMAGE`](crate::images::BUSYBOX_IMAGE) and
//! [`PAUSE_IMAGE`](crate::images::PAUSE_IMAGE) (the `sandbox_image`) are imported at start, so
//! nothing needs a registry unless a test wants to exercise pulls ([`crate::Registry`]).
//!
//! Dropping the instance leaves nothing behind: its tasks, shims and containerd are killed,
//! pods' network is torn down (CNI DEL), mounts under the temp dir are unmounted, the bridge and
//! container cgroups are removed, then the temp dir. What a test process that died without
//! dropping left (its slot's lock file names its dir) is cleaned up by the next `start`.
//!
//! Uses `std::process` rather than tokio so it works from sync tests, any tokio flavour and
//! `Drop`. Needs root, containerd 1.6, runc and the CNI plugins in `/usr/lib/cni`
//! (`scripts/install-deps --runtime`).

use std::collections::{BTreeSet, HashMap};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use tempfile::TempDir;

use crate::images;

/// How long `start`/`restart` wait for the CRI plugin to serve before giving up.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// Where slot lock files live. A slot is free when no process holds its lock, whatever the file
/// says: the kernel drops a `flock` when its holder dies.
const SLOT_DIR: &str = "/run/rkube-testkit";

/// Number of slots: `N` is the third octet of the pod subnet and the suffix of the bridge name.
const SLOTS: u16 = 250;

/// Where the CNI plugins are on Debian (`containernetworking-plugins`).
const CNI_BIN_DIR: &str = "/usr/lib/cni";

/// Where libcni (inside containerd) caches each attachment's result; entries are
/// `<network>-<container id>-<ifname>`.
const CNI_CACHE_DIR: &str = "/var/lib/cni/results";

/// Plugins this environment never uses; not loading them keeps start-up quick and the log clean.
const DISABLED_PLUGINS: &[&str] = &[
    "io.containerd.snapshotter.v1.aufs",
    "io.containerd.snapshotter.v1.btrfs",
    "io.containerd.snapshotter.v1.devmapper",
    "io.containerd.snapshotter.v1.zfs",
    "io.containerd.tracing.processor.v1.otlp",
    "io.containerd.internal.v1.tracing",
];

/// A running containerd with the CRI plugin, its state in a temp dir. See the module docs.
pub struct Containerd {
    child: Option<Child>,
    // `Option` so that `Drop` can clean up inside the dir before it is removed.
    dir: Option<TempDir>,
    slot: Slot,
    stream_port: u16,
    subnet: String,
}

impl Containerd {
    /// Starts containerd, waits until its CRI plugin serves with the network configured, and
    /// imports the test images (busybox and pause) into the `k8s.io` namespace.
    pub fn start() -> anyhow::Result<Containerd> {
        let started = Instant::now();
        let images_dir = images::test_images_dir()?;
        let slot = Slot::acquire()?;
        let dir = tempfile::Builder::new()
            .prefix(&format!("rkube-containerd-{}-", slot.n))
            .tempdir_in(base_dir())
            .context("creating containerd temp dir")?;
        slot.record_owner(dir.path());
        enable_ip_forward();
        let subnet = format!("10.250.{}.0/24", slot.n);
        // From here on a failure drops `c`, whose `Drop` cleans up whatever was started.
        let mut c = Containerd { child: None, dir: Some(dir), slot, stream_port: 0, subnet };
        c.write_config_files()?;
        let mut attempt = 1;
        loop {
            c.stream_port = free_port()?;
            c.write_containerd_config()?;
            match c.spawn_and_wait() {
                Ok(()) => break,
                // The stream port was free when picked, but another process may have taken it
                // since: try again with a fresh one.
                Err(e) if attempt < 3 => {
                    tracing::debug!(error = %e, attempt, "containerd start failed, retrying");
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
        // One after the other: both hold the same layer, and concurrent ingests of one blob
        // make the second wait on a lock with back-off.
        c.import(&images_dir.join(images::BUSYBOX_ARCHIVE))?;
        c.import(&images_dir.join(images::PAUSE_ARCHIVE))?;
        tracing::debug!(slot = c.slot.n, elapsed = ?started.elapsed(), socket = %c.socket().display(), "containerd ready");
        Ok(c)
    }

    /// The CRI endpoint, `unix:///tmp/rkube-containerd-.../containerd.sock`.
    pub fn endpoint(&self) -> String {
        format!("unix://{}", self.socket().display())
    }

    /// The gRPC socket (CRI and containerd's own API).
    pub fn socket(&self) -> PathBuf {
        self.path().join("containerd.sock")
    }

    /// PID of the containerd process, or `None` while killed.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The pod subnet of this instance's bridge, e.g. `10.250.3.0/24`.
    pub fn subnet(&self) -> &str {
        &self.subnet
    }

    /// The bridge pods attach to, e.g. `rkb3` (also the CNI network name).
    pub fn bridge(&self) -> String {
        bridge_name(self.slot.n)
    }

    /// The port of containerd's CRI stream server (exec, attach, port-forward URLs).
    pub fn stream_port(&self) -> u16 {
        self.stream_port
    }

    /// A directory inside the temp dir for the kubelet's pod logs (the kubelet chooses log
    /// directories and hands them to RunPodSandbox).
    pub fn logs_dir(&self) -> PathBuf {
        self.path().join("pod-logs")
    }

    /// The instance's temp dir (config, log, root, state).
    pub fn path(&self) -> &Path {
        // `dir` is only `None` inside `drop`.
        self.dir.as_ref().map_or(Path::new("/nonexistent"), TempDir::path)
    }

    /// The last lines containerd logged.
    pub fn log_tail(&self) -> String {
        crate::tail(&self.log_path(), 40)
    }

    /// Imports an OCI or Docker image archive into the `k8s.io` namespace (what the CRI sees).
    pub fn import(&self, archive: &Path) -> anyhow::Result<()> {
        let mut args = vec!["images", "import"];
        let archive_text = archive.to_string_lossy();
        args.push(&archive_text);
        self.ctr(&args).map(drop)
    }

    /// Runs `ctr -a <socket> -n k8s.io ARGS` and returns its stdout.
    pub fn ctr(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = ctr_command(&self.socket(), args).output().context("running ctr")?;
        check_output("ctr", args, &out)
    }

    /// Kills containerd with SIGKILL, as when it crashes: containers and their shims keep
    /// running, as on a real node. Idempotent.
    pub fn kill(&mut self) {
        crate::kill_and_reap(&mut self.child);
    }

    /// Kills containerd (if running) and starts it again with the same state, sockets and
    /// stream port; it reconnects to the shims of running containers.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.kill();
        // The old listener may linger for a moment; retry instead of failing on the port.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self.spawn_and_wait() {
                Ok(()) => return Ok(()),
                Err(e) if Instant::now() < deadline => {
                    tracing::debug!(error = %e, "containerd restart attempt failed, retrying");
                    self.kill();
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn log_path(&self) -> PathBuf {
        self.path().join("containerd.log")
    }

    fn config_path(&self) -> PathBuf {
        self.path().join("config.toml")
    }

    /// Writes the CNI conflist and creates the dirs the config points at.
    fn write_config_files(&self) -> anyhow::Result<()> {
        let dir = self.path();
        for sub in ["cni", "pod-logs", "opt"] {
            std::fs::create_dir_all(dir.join(sub)).with_context(|| format!("creating {sub} dir"))?;
        }
        let name = self.bridge();
        let conflist = serde_json::json!({
            "cniVersion": "1.0.0",
            "name": name,
            "plugins": cni_plugins(&name, &self.subnet, &dir.join("cni-ipam")),
        });
        let path = dir.join("cni").join(format!("10-{name}.conflist"));
        std::fs::write(&path, serde_json::to_vec_pretty(&conflist)?)
            .with_context(|| format!("writing {}", path.display()))?;
        Ok(())
    }

    /// Writes config.toml: `containerd config default` with this instance's paths and the
    /// settings RUNTIME.md found to be required on these machines.
    fn write_containerd_config(&self) -> anyhow::Result<()> {
        let dir = self.path();
        let q = |p: &Path| toml_string(&p.to_string_lossy());
        let cri = r#"plugins."io.containerd.grpc.v1.cri""#;
        let disabled = format!("[{}]", DISABLED_PLUGINS.iter().map(|p| toml_string(p)).collect::<Vec<_>>().join(", "));
        let mut config = DefaultConfig::load()?;
        config.set("", "root", &q(&dir.join("root")))?;
        config.set("", "state", &q(&dir.join("state")))?;
        config.set("", "disabled_plugins", &disabled)?;
        config.set("grpc", "address", &q(&self.socket()))?;
        config.set("ttrpc", "address", &q(&dir.join("containerd.sock.ttrpc")))?;
        config.set(r#"plugins."io.containerd.internal.v1.opt""#, "path", &q(&dir.join("opt")))?;
        // Without it every RunPodSandbox fails: root lacks CAP_SYS_RESOURCE here, so runc's
        // write of a negative oom_score_adj is refused.
        config.set(cri, "restrict_oom_score_adj", "true")?;
        config.set(cri, "sandbox_image", &toml_string(images::PAUSE_IMAGE))?;
        config.set(cri, "stream_server_address", &toml_string("127.0.0.1"))?;
        config.set(cri, "stream_server_port", &toml_string(&self.stream_port.to_string()))?;
        // Pod network namespaces under our state dir rather than the shared /run/netns, so
        // cleanup finds exactly this instance's.
        config.set(cri, "netns_mounts_under_state_dir", "true")?;
        config.set(cri, "systemd_cgroup", "false")?;
        config.set(&format!("{cri}.cni"), "bin_dir", &toml_string(CNI_BIN_DIR))?;
        config.set(&format!("{cri}.cni"), "conf_dir", &q(&dir.join("cni")))?;
        let runc = format!("{cri}.containerd.runtimes.runc.options");
        // runc's state would otherwise be shared by every containerd on the machine.
        config.set(&runc, "Root", &q(&dir.join("runc")))?;
        // The systemd cgroup driver fails here (no systemd); cgroupfs works.
        config.set(&runc, "SystemdCgroup", "false")?;
        let path = self.config_path();
        std::fs::write(&path, config.text()).with_context(|| format!("writing {}", path.display()))?;
        Ok(())
    }

    fn spawn_and_wait(&mut self) -> anyhow::Result<()> {
        let log_path = self.log_path();
        let mut log = File::options()
            .create(true)
            .append(true)
            .open(&log_path)
            .with_context(|| format!("opening {}", log_path.display()))?;
        let log_start = log.seek(SeekFrom::End(0)).unwrap_or(0);
        let _ = writeln!(log, "--- starting containerd (stream port {}) ---", self.stream_port);
        let stderr = log.try_clone().context("cloning log file handle")?;
        let child = Command::new("containerd")
            .arg("--config")
            .arg(self.config_path())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(stderr)
            .spawn()
            .context("spawning containerd (install it with scripts/install-deps --runtime)")?;
        self.child = Some(child);
        if let Err(e) = self.wait_ready(&log_path, log_start) {
            let tail = log_tail_from(&log_path, log_start);
            self.kill();
            bail!("containerd did not become ready: {e:#}\n--- containerd log tail ---\n{tail}");
        }
        Ok(())
    }

    /// Ready = the CRI plugin runs (its stream server listens, which happens after it loaded,
    /// recovered state and subscribed to events) and it loaded our CNI config at init, which is
    /// what makes CRI Status report RuntimeReady and NetworkReady.
    fn wait_ready(&mut self, log_path: &Path, log_start: u64) -> anyhow::Result<()> {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.stream_port));
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                bail!("containerd exited early with {status}");
            }
            let log = log_tail_from(log_path, log_start);
            if let Some(line) = log.lines().find(|l| l.contains("failed to load plugin io.containerd.grpc.v1.cri")) {
                bail!("the CRI plugin did not load: {line}");
            }
            if let Some(line) = log.lines().find(|l| l.contains("failed to load cni during init")) {
                bail!("the CRI plugin did not load the CNI config: {line}");
            }
            if self.socket().exists()
                && log.contains("containerd successfully booted")
                && TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
            {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!("timed out after {READY_TIMEOUT:?} waiting for the CRI stream server on {addr}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let Some(dir) = self.dir.take() else { return };
        let started = Instant::now();
        if self.child.is_some() {
            kill_tasks_via_ctr(&dir.path().join("containerd.sock"));
        }
        self.kill();
        cleanup_instance(Some(dir.path()), self.slot.n);
        if let Err(e) = dir.close() {
            tracing::warn!(error = %e, "removing the containerd temp dir failed");
        }
        tracing::debug!(slot = self.slot.n, elapsed = ?started.elapsed(), "containerd cleaned up");
    }
}

/// A held slot `N` (bridge `rkb<N>`, subnet `10.250.<N>.0/24`): an exclusive `flock` on
/// `/run/rkube-testkit/slot-<N>.lock`, released by the kernel when the process dies.
struct Slot {
    n: u16,
    lock: Option<File>,
}

impl Slot {
    /// Takes the first free slot, starting from one derived from the PID so that parallel
    /// processes rarely contend. First cleans up after every dead holder that left a record.
    fn acquire() -> anyhow::Result<Slot> {
        std::fs::create_dir_all(SLOT_DIR).with_context(|| format!("creating {SLOT_DIR}"))?;
        Self::reap_dead_holders();
        let first = (std::process::id() % u32::from(SLOTS)) as u16;
        for i in 0..SLOTS {
            let n = (first + i) % SLOTS;
            let Some(file) = Self::try_lock(n)? else { continue };
            // Cheap when there is nothing to do; a crash before the owner was recorded may
            // have left the bridge.
            cleanup_instance(None, n);
            return Ok(Slot { n, lock: Some(file) });
        }
        bail!("all {SLOTS} containerd slots in {SLOT_DIR} are taken")
    }

    /// The lock file of slot `n`, locked, or `None` if a live process holds it.
    fn try_lock(n: u16) -> anyhow::Result<Option<File>> {
        let path = Path::new(SLOT_DIR).join(format!("slot-{n}.lock"));
        let file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        Ok(file.try_lock().is_ok().then_some(file))
    }

    /// A lock file that names a dir but is not locked belongs to a test process that died
    /// without dropping its instance: clean up after it (once; the record is then cleared).
    fn reap_dead_holders() {
        let Ok(entries) = std::fs::read_dir(SLOT_DIR) else { return };
        for entry in entries.flatten() {
            if entry.metadata().map_or(true, |m| m.len() == 0) {
                continue;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(n) = name.strip_prefix("slot-").and_then(|r| r.strip_suffix(".lock")) else { continue };
            let Ok(n) = n.parse::<u16>() else { continue };
            let Ok(Some(mut file)) = Self::try_lock(n) else { continue };
            let mut previous = String::new();
            let _ = file.read_to_string(&mut previous);
            let previous = PathBuf::from(previous.trim());
            if instance_dir(&previous) {
                tracing::info!(slot = n, dir = %previous.display(), "cleaning up after a containerd whose test process died");
                cleanup_instance(Some(&previous), n);
                let _ = std::fs::remove_dir_all(&previous);
            }
            let _ = file.set_len(0);
            let _ = file.unlock();
        }
    }

    /// Records the instance dir in the lock file for the cleanup after a crash.
    fn record_owner(&self, dir: &Path) {
        if let Some(mut file) = self.lock.as_ref() {
            let _ = file.set_len(0);
            let _ = file.seek(SeekFrom::Start(0));
            let _ = writeln!(file, "{}", dir.display());
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        // Runs after `Containerd::drop` cleaned up: forget the dir, then release the lock.
        if let Some(file) = self.lock.take() {
            let _ = file.set_len(0);
            let _ = file.unlock();
        }
    }
}

fn bridge_name(slot: u16) -> String {
    format!("rkb{slot}")
}

/// The CNI plugin chain: bridge + host-local IPAM, portmap (hostPort), loopback.
fn cni_plugins(bridge: &str, subnet: &str, ipam_dir: &Path) -> serde_json::Value {
    serde_json::json!([
        {
            "type": "bridge",
            "bridge": bridge,
            "isGateway": true,
            // Pods see each other's real IPs, also across instances (nodes).
            "ipMasq": false,
            "hairpinMode": true,
            "ipam": {
                "type": "host-local",
                "ranges": [[{ "subnet": subnet }]],
                "routes": [{ "dst": "0.0.0.0/0" }],
                "dataDir": ipam_dir,
            },
        },
        { "type": "portmap", "capabilities": { "portMappings": true } },
        { "type": "loopback" },
    ])
}

/// `containerd config default`, printed once per process, edited line by line.
///
/// That output has every key of every section, one `key = value` per line under `[section]`
/// headers, so a key is replaced in place without a TOML library.
struct DefaultConfig {
    lines: Vec<String>,
}

impl DefaultConfig {
    fn load() -> anyhow::Result<DefaultConfig> {
        static TEXT: OnceLock<Result<String, String>> = OnceLock::new();
        let text = TEXT
            .get_or_init(|| {
                let out = Command::new("containerd")
                    .args(["config", "default"])
                    .output()
                    .map_err(|e| format!("running `containerd config default`: {e}"))?;
                if !out.status.success() {
                    return Err(format!(
                        "`containerd config default` failed ({}): {}",
                        out.status,
                        String::from_utf8_lossy(&out.stderr).trim()
                    ));
                }
                Ok(String::from_utf8_lossy(&out.stdout).into_owned())
            })
            .clone()
            .map_err(|e| anyhow!(e))?;
        Ok(DefaultConfig { lines: text.lines().map(str::to_string).collect() })
    }

    /// Sets `key = value` (value already in TOML syntax) in `[section]` ("" = top level).
    fn set(&mut self, section: &str, key: &str, value: &str) -> anyhow::Result<()> {
        let (start, end) = self.section(section)?;
        let prefix = format!("{key} =");
        for line in &mut self.lines[start..end] {
            let trimmed = line.trim_start();
            if trimmed.starts_with(&prefix) {
                let indent = line.len() - trimmed.len();
                *line = format!("{}{key} = {value}", &line[..indent]);
                return Ok(());
            }
        }
        // A key this containerd version does not print: add it right under the header.
        self.lines.insert(start, format!("{key} = {value}"));
        Ok(())
    }

    /// The line range of a section's own keys (up to the next header).
    fn section(&self, section: &str) -> anyhow::Result<(usize, usize)> {
        let start = if section.is_empty() {
            0
        } else {
            let header = format!("[{section}]");
            self.lines
                .iter()
                .position(|l| l.trim() == header)
                .map(|i| i + 1)
                .ok_or_else(|| anyhow!("`containerd config default` has no section {header}"))?
        };
        let end = self.lines[start..]
            .iter()
            .position(|l| l.trim_start().starts_with('['))
            .map_or(self.lines.len(), |i| start + i);
        Ok((start, end))
    }

    fn text(&self) -> String {
        let mut text = self.lines.join("\n");
        text.push('\n');
        text
    }
}

/// A TOML basic string (JSON string escapes are valid TOML).
fn toml_string(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

fn ctr_command(socket: &Path, args: &[&str]) -> Command {
    // `timeout`: a wedged containerd must not hang a test (or its Drop) forever.
    let mut cmd = Command::new("timeout");
    cmd.arg("30").arg("ctr").arg("-a").arg(socket).args(["-n", "k8s.io"]).args(args);
    cmd
}

fn check_output(what: &str, args: &[&str], out: &Output) -> anyhow::Result<String> {
    if !out.status.success() {
        bail!("{what} {} failed ({}): {}", args.join(" "), out.status, String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Kills and deletes every task through containerd, so runc removes the containers' cgroups
/// and the shims exit (removing their sockets) the normal way.
fn kill_tasks_via_ctr(socket: &Path) {
    let ids = match ctr_command(socket, &["tasks", "ls", "-q"]).output() {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).into_owned(),
        Ok(out) => {
            tracing::debug!(stderr = %String::from_utf8_lossy(&out.stderr).trim(), "ctr tasks ls failed");
            return;
        }
        Err(e) => {
            tracing::debug!(error = %e, "ctr tasks ls failed");
            return;
        }
    };
    let ids: Vec<&str> = ids.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    if ids.is_empty() {
        return;
    }
    for id in &ids {
        let _ = ctr_command(socket, &["tasks", "kill", "--all", "--signal", "SIGKILL", id])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
    let mut args = vec!["tasks", "delete", "--force"];
    args.extend(ids.iter().copied());
    match ctr_command(socket, &args).output() {
        Ok(out) if !out.status.success() => {
            tracing::debug!(stderr = %String::from_utf8_lossy(&out.stderr).trim(), "ctr tasks delete failed");
        }
        Err(e) => tracing::debug!(error = %e, "ctr tasks delete failed"),
        Ok(_) => {}
    }
}

/// What the runtime state of an instance dir says about its containers, read from the task
/// bundles on disk (so it works whether or not containerd still runs).
#[derive(Default)]
struct Leftovers {
    /// Sandbox id -> its network namespace path.
    sandboxes: HashMap<String, PathBuf>,
    /// Cgroup paths (relative to each hierarchy) of every container.
    cgroups: BTreeSet<String>,
    /// Shim sockets (`/run/containerd/s/<hash>`), which live outside the dir.
    shim_sockets: Vec<PathBuf>,
}

fn read_leftovers(dir: &Path) -> Leftovers {
    let mut found = Leftovers::default();
    let bundles = dir.join("state/io.containerd.runtime.v2.task/k8s.io");
    let Ok(entries) = std::fs::read_dir(&bundles) else { return found };
    for entry in entries.flatten() {
        let bundle = entry.path();
        let id = entry.file_name().to_string_lossy().into_owned();
        if let Ok(address) = std::fs::read_to_string(bundle.join("address")) {
            let address = address.trim();
            let path = address.strip_prefix("unix://").unwrap_or(address);
            // Only ever a socket file under containerd's shim dir, never anything else.
            if path.starts_with("/run/containerd/s/") && !path.contains("..") {
                found.shim_sockets.push(PathBuf::from(path));
            }
        }
        let Ok(spec) = std::fs::read(bundle.join("config.json")) else { continue };
        let Ok(spec) = serde_json::from_slice::<serde_json::Value>(&spec) else { continue };
        let linux = &spec["linux"];
        if let Some(cg) = linux["cgroupsPath"].as_str()
            && cg.starts_with('/')
            && !cg.contains("..")
        {
            found.cgroups.insert(cg.to_string());
        }
        // A sandbox owns its netns (a file under our state dir); containers join it via /proc.
        let netns = linux["namespaces"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|ns| ns["type"] == "network")
            .filter_map(|ns| ns["path"].as_str())
            .find(|p| Path::new(p).starts_with(dir));
        if let Some(netns) = netns {
            found.sandboxes.insert(id, PathBuf::from(netns));
        }
    }
    found
}

/// Removes everything an instance with slot `slot` living in `dir` may have left on the
/// machine, short of the dir itself. Best effort: every step runs even if an earlier one failed.
/// `dir` is `None` when unknown (only slot-named things are cleaned then).
fn cleanup_instance(dir: Option<&Path>, slot: u16) {
    let dir = dir.filter(|d| instance_dir(d));
    let leftovers = dir.map(read_leftovers).unwrap_or_default();
    let cache = cni_cache_entries(dir, slot);

    // Pod networks, as the CRI would on StopPodSandbox (portmap's iptables rules live outside the
    // netns and would otherwise stay). Sandboxes whose task is gone are found in libcni's cache.
    let mut sandboxes: HashMap<String, (PathBuf, serde_json::Value)> =
        leftovers.sandboxes.iter().map(|(id, netns)| (id.clone(), (netns.clone(), serde_json::Value::Null))).collect();
    for entry in cache.iter().filter(|e| e.network == bridge_name(slot)) {
        sandboxes.entry(entry.container_id.clone()).or_default().1 = entry.capability_args.clone();
    }
    if let Some(dir) = dir {
        for (id, (netns, capability_args)) in &sandboxes {
            cni_del(&dir.join("cni"), slot, id, netns, capability_args);
        }
        kill_processes_under(dir);
    }
    for socket in &leftovers.shim_sockets {
        let _ = std::fs::remove_file(socket);
    }
    if let Some(dir) = dir {
        unmount_under(dir);
    }
    delete_bridge(slot);
    for entry in &cache {
        let _ = std::fs::remove_file(&entry.path);
    }
    remove_cgroups(&leftovers.cgroups);
}

/// True for a path that can only be an instance dir: absolute, at least two levels deep.
/// Guards the cleanup, which kills processes and unmounts everything under the dir.
fn instance_dir(dir: &Path) -> bool {
    dir.is_absolute()
        && dir.components().count() >= 3
        && dir.file_name().is_some_and(|n| n.to_string_lossy().starts_with("rkube-containerd-"))
}

/// Runs the conflist's plugins with `CNI_COMMAND=DEL` in reverse order for one sandbox, handing
/// each plugin the capability arguments it declares from those of the ADD (libcni's cache):
/// portmap removes a sandbox's rules only when told its port mappings.
fn cni_del(conf_dir: &Path, slot: u16, id: &str, netns: &Path, capability_args: &serde_json::Value) {
    let name = bridge_name(slot);
    let path = conf_dir.join(format!("10-{name}.conflist"));
    let Ok(text) = std::fs::read(&path) else { return };
    let Ok(conflist) = serde_json::from_slice::<serde_json::Value>(&text) else { return };
    let Some(plugins) = conflist["plugins"].as_array() else { return };
    for plugin in plugins.iter().rev() {
        let Some(kind) = plugin["type"].as_str() else { continue };
        if kind.contains('/') {
            continue;
        }
        let mut conf = plugin.clone();
        conf["name"] = conflist["name"].clone();
        conf["cniVersion"] = conflist["cniVersion"].clone();
        let mut runtime_config = serde_json::Map::new();
        for (capability, on) in plugin["capabilities"].as_object().into_iter().flatten() {
            if on.as_bool() == Some(true)
                && let Some(arg) = capability_args.get(capability)
            {
                runtime_config.insert(capability.clone(), arg.clone());
            }
        }
        if !runtime_config.is_empty() {
            conf["runtimeConfig"] = serde_json::Value::Object(runtime_config);
        }
        let child = Command::new(Path::new(CNI_BIN_DIR).join(kind))
            .env("CNI_COMMAND", "DEL")
            .env("CNI_CONTAINERID", id)
            .env("CNI_NETNS", if netns.exists() { netns.as_os_str() } else { "".as_ref() })
            .env("CNI_IFNAME", "eth0")
            .env("CNI_PATH", CNI_BIN_DIR)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn();
        let Ok(mut child) = child else { continue };
        if let Some(mut stdin) = child.stdin.take() {
            let _ = stdin.write_all(conf.to_string().as_bytes());
        }
        match child.wait_with_output() {
            Ok(out) if !out.status.success() => tracing::debug!(
                plugin = kind,
                sandbox = id,
                output = %String::from_utf8_lossy(&out.stdout).trim(),
                "CNI DEL failed"
            ),
            _ => {}
        }
    }
}

/// An entry of libcni's result cache (`<network>-<container id>-<ifname>`).
struct CacheEntry {
    path: PathBuf,
    container_id: String,
    network: String,
    /// What the runtime passed as `runtimeConfig` at ADD time, e.g. `portMappings`.
    capability_args: serde_json::Value,
}

/// The cache entries of an instance: those on its network, and those of other networks (the
/// CRI's built-in `cni-loopback`) whose netns lies in its dir.
fn cni_cache_entries(dir: Option<&Path>, slot: u16) -> Vec<CacheEntry> {
    let network = bridge_name(slot);
    let Ok(entries) = std::fs::read_dir(CNI_CACHE_DIR) else { return Vec::new() };
    entries
        .flatten()
        .filter_map(|e| {
            let text = std::fs::read(e.path()).ok()?;
            let v: serde_json::Value = serde_json::from_slice(&text).ok()?;
            let entry = CacheEntry {
                path: e.path(),
                container_id: v["containerId"].as_str()?.to_string(),
                network: v["networkName"].as_str()?.to_string(),
                capability_args: v["capabilityArgs"].clone(),
            };
            let in_dir = v["result"]["interfaces"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|i| i["sandbox"].as_str())
                .any(|netns| dir.is_some_and(|d| Path::new(netns).starts_with(d)));
            (entry.network == network || in_dir).then_some(entry)
        })
        .collect()
}

/// SIGKILLs the containerd and shims of the instance in `dir` (containerd names it in its
/// config path, the shims in `-address <dir>/containerd.sock`) and all their descendants (the
/// containers), then waits until they are gone. Other processes pointed at the socket (a
/// kubelet under test) are left to their owners.
fn kill_processes_under(dir: &Path) {
    let dir = dir.to_string_lossy().into_owned();
    let me = std::process::id();
    let procs = list_processes();
    let mut doomed: BTreeSet<u32> =
        procs.iter().filter(|p| p.pid != me && p.is_containerd() && p.cmdline.contains(&dir)).map(|p| p.pid).collect();
    // Descendants, found by walking parent links until nothing new turns up.
    loop {
        let before = doomed.len();
        for p in &procs {
            if doomed.contains(&p.ppid) && p.pid != me {
                doomed.insert(p.pid);
            }
        }
        if doomed.len() == before {
            break;
        }
    }
    if doomed.is_empty() {
        return;
    }
    tracing::debug!(pids = ?doomed, "killing leftover containerd, shim and container processes");
    let _ = Command::new("kill")
        .arg("-KILL")
        .args(doomed.iter().map(u32::to_string))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline && doomed.iter().any(|pid| is_alive(*pid)) {
        std::thread::sleep(Duration::from_millis(10));
    }
}

struct Proc {
    pid: u32,
    ppid: u32,
    cmdline: String,
}

impl Proc {
    /// containerd itself or one of its shims (by program name).
    fn is_containerd(&self) -> bool {
        let program = self.cmdline.split(' ').next().unwrap_or("");
        let name = program.rsplit('/').next().unwrap_or("");
        name == "containerd" || name.starts_with("containerd-shim")
    }
}

fn list_processes() -> Vec<Proc> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .flatten()
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            // `pid (comm) state ppid ...`; comm may hold spaces and parentheses.
            let after = &stat[stat.rfind(')')? + 1..];
            let ppid = after.split_whitespace().nth(1)?.parse().ok()?;
            let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            Some(Proc { pid, ppid, cmdline })
        })
        .collect()
}

/// True while the process exists and is not a zombie.
fn is_alive(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return false };
    let state = stat.rfind(')').and_then(|i| stat[i + 1..].split_whitespace().next());
    !matches!(state, None | Some("Z") | Some("X"))
}

/// Lazily unmounts every mount point under `dir`, deepest first (rootfs overlays, sandbox
/// shm, netns bind mounts).
pub(crate) fn unmount_under(dir: &Path) {
    let mut targets: Vec<PathBuf> = mount_points().into_iter().filter(|m| m.starts_with(dir)).collect();
    if targets.is_empty() {
        return;
    }
    targets.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    targets.dedup();
    for target in &targets {
        let _ = Command::new("umount").arg("-l").arg(target).stderr(Stdio::null()).status();
    }
    let left: Vec<PathBuf> = mount_points().into_iter().filter(|m| m.starts_with(dir)).collect();
    if !left.is_empty() {
        tracing::warn!(mounts = ?left, "mounts left under the containerd dir");
    }
}

/// Mount points of this mount namespace, from /proc/self/mountinfo (field 5, octal-escaped).
fn mount_points() -> Vec<PathBuf> {
    let Ok(text) = std::fs::read_to_string("/proc/self/mountinfo") else { return Vec::new() };
    text.lines().filter_map(|l| l.split(' ').nth(4)).map(|m| PathBuf::from(unescape_octal(m))).collect()
}

fn unescape_octal(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 3 < bytes.len() && bytes[i + 1..i + 4].iter().all(|b| (b'0'..=b'7').contains(b)) {
            let v = (bytes[i + 1] - b'0') * 64 + (bytes[i + 2] - b'0') * 8 + (bytes[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn delete_bridge(slot: u16) {
    let name = bridge_name(slot);
    if Path::new("/sys/class/net").join(&name).exists() {
        let _ = Command::new("ip").args(["link", "delete", &name]).stderr(Stdio::null()).status();
    }
}

/// Removes the containers' cgroups (runc removes them when a task is deleted, not when its
/// shim is killed) and their parent when that is a per-pod dir below a top-level one; shared
/// top-level parents (`/k8s.io`, `/kubepods`) stay, as another instance may be using them.
fn remove_cgroups(paths: &BTreeSet<String>) {
    if paths.is_empty() {
        return;
    }
    let Ok(hierarchies) = std::fs::read_dir("/sys/fs/cgroup") else { return };
    // Skip the `cpu -> cpu,cpuacct` style aliases: they are symlinks to the same hierarchy.
    let hierarchies: Vec<PathBuf> =
        hierarchies.flatten().filter(|e| e.file_type().is_ok_and(|t| t.is_dir())).map(|e| e.path()).collect();
    for path in paths {
        let rel = Path::new(path.trim_start_matches('/'));
        let mut dirs = vec![rel.to_path_buf()];
        if let Some(parent) = rel.parent()
            && parent.components().count() >= 2
        {
            dirs.push(parent.to_path_buf());
        }
        for hierarchy in &hierarchies {
            for d in &dirs {
                // rmdir only succeeds on an empty cgroup: never removes one still in use.
                let _ = std::fs::remove_dir(hierarchy.join(d));
            }
        }
    }
}

fn enable_ip_forward() {
    let path = "/proc/sys/net/ipv4/ip_forward";
    if std::fs::read_to_string(path).is_ok_and(|v| v.trim() == "1") {
        return;
    }
    // Pods on different instances (nodes) reach each other through the host.
    if let Err(e) = std::fs::write(path, "1") {
        tracing::warn!(error = %e, "could not enable net.ipv4.ip_forward");
    }
}

/// Where instance dirs go: `$RKUBE_CONTAINERD_TMPDIR`, else `/dev/shm` when it is a tmpfs that
/// allows exec, else the system temp dir. Unpacking an image means hundreds of symlinks, each
/// an inode and a journal write on a disk file system; on tmpfs start-up is several times faster.
fn base_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("RKUBE_CONTAINERD_TMPDIR") {
        return PathBuf::from(dir);
    }
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    // `id parent dev root mountpoint options ... - fstype source superoptions`; the last line
    // for a mount point is the mount on top.
    let shm = mountinfo.lines().rfind(|l| l.split(' ').nth(4) == Some("/dev/shm"));
    let usable = shm.is_some_and(|l| {
        let options = l.split(' ').nth(5).unwrap_or("");
        let fstype = l.split(" - ").nth(1).and_then(|t| t.split(' ').next());
        fstype == Some("tmpfs") && !options.split(',').any(|o| o == "noexec" || o == "ro")
    });
    if usable { PathBuf::from("/dev/shm") } else { std::env::temp_dir() }
}

/// A loopback port that was free a moment ago.
pub(crate) fn free_port() -> anyhow::Result<u16> {
    let l = TcpListener::bind(("127.0.0.1", 0)).context("binding probe socket")?;
    Ok(l.local_addr()?.port())
}

fn log_tail_from(path: &Path, from: u64) -> String {
    let mut buf = String::new();
    if let Ok(mut f) = File::open(path) {
        let _ = f.seek(SeekFrom::Start(from));
        let _ = f.read_to_string(&mut buf);
    }
    buf
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edits_keys_in_place_within_their_section() {
        let mut c = DefaultConfig {
            lines: [
                "root = \"/a\"",
                "",
                "[grpc]",
                "  address = \"/x\"",
                "  tcp_address = \"\"",
                "[ttrpc]",
                "  address = \"\"",
            ]
            .map(String::from)
            .to_vec(),
        };
        c.set("grpc", "address", "\"/y\"").expect("grpc");
        c.set("", "root", "\"/b\"").expect("root");
        c.set("ttrpc", "uid", "0").expect("new key");
        let text = c.text();
        assert!(text.contains("[grpc]\n  address = \"/y\"\n  tcp_address = \"\""), "{text}");
        assert!(text.starts_with("root = \"/b\""), "{text}");
        assert!(text.contains("[ttrpc]\nuid = 0\n  address = \"\""), "{text}");
        assert!(c.set("nope", "x", "1").is_err());
    }

    #[test]
    fn unescapes_mountinfo_paths() {
        assert_eq!(unescape_octal(r"/tmp/a\040b"), "/tmp/a b");
        assert_eq!(unescape_octal(r"/plain\0"), r"/plain\0");
    }
}
