//! `exec`, `attach` and `cp`: remote-command sessions over the `pods/{name}/exec|attach`
//! WebSocket (see [`crate::ws`]). `cp` runs `tar` in the container like kubectl, packing and
//! unpacking locally with the `tar` crate.

use crate::ctx::Ctx;
use crate::error::{Error, Result};
use crate::resource::{enc, name_of};
use crate::ws::{self, Outcome, Session};
use clap::Args;
use serde_json::Value;
use std::io::{Read as _, Write};
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

/// `exec`.
#[derive(Debug, Clone, Args)]
pub struct ExecArgs {
    /// POD | TYPE/NAME
    pub target: String,
    /// Container name; defaults to the `kubectl.kubernetes.io/default-container` annotation or the first one.
    #[arg(short = 'c', long)]
    pub container: Option<String>,
    /// Pass stdin to the container.
    #[arg(short = 'i', long)]
    pub stdin: bool,
    /// Stdin is a TTY.
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Only print output from the remote session.
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// The command and its arguments, after `--`.
    #[arg(last = true)]
    pub command: Vec<String>,
}

/// `attach`.
#[derive(Debug, Clone, Args)]
pub struct AttachArgs {
    /// POD | TYPE/NAME
    pub target: String,
    /// Container name.
    #[arg(short = 'c', long)]
    pub container: Option<String>,
    /// Pass stdin to the container.
    #[arg(short = 'i', long)]
    pub stdin: bool,
    /// Stdin is a TTY.
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Only print output from the remote session.
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

/// `cp`.
#[derive(Debug, Clone, Args)]
pub struct CpArgs {
    /// Source: a local path or [NAMESPACE/]POD:PATH.
    pub src: String,
    /// Destination: a local path or [NAMESPACE/]POD:PATH.
    pub dest: String,
    /// Container name.
    #[arg(short = 'c', long)]
    pub container: Option<String>,
    /// Don't keep ownership and permissions of copied files.
    #[arg(long)]
    pub no_preserve: bool,
}

/// The pod a streaming verb addresses: `NAME`, `pod/NAME`, or `TYPE/NAME` of an object with a
/// selector (Deployment, ReplicaSet, Service, ...), whose first running pod is picked.
pub fn target_pod(ctx: &mut Ctx, arg: &str) -> Result<(String, Value)> {
    let ns = ctx.namespace()?;
    let client = ctx.client()?;
    let pods = ctx.resource("pods")?;
    let name = match arg.split_once('/') {
        None => arg.to_string(),
        Some((ty, name)) => {
            let r = ctx.resource(ty)?;
            if r.kind == "Pod" {
                name.to_string()
            } else {
                let selector = controller_selector(&client, &r, &ns, name)?;
                if selector.is_empty() {
                    return Err(Error::usage(format!("cannot attach to {}: selector for {ty} is empty", r.kind)));
                }
                let (items, _) =
                    crate::resource::list_all(ctx, &pods, Some(&ns), &[("labelSelector".into(), selector)])?;
                let chosen = items
                    .iter()
                    .find(|p| p["status"]["phase"] == "Running" && p["metadata"]["deletionTimestamp"].is_null())
                    .or(items.first());
                let Some(p) = chosen else {
                    return Err(Error::usage(format!("no pods found for {ty}/{name}")));
                };
                name_of(p).to_string()
            }
        }
    };
    let pod = client
        .get(&pods.item(&ns, &name))
        .map_err(|e| if e.is_not_found() { crate::resource::not_found(&pods, &name) } else { e })?;
    Ok((ns, pod))
}

/// The label selector (`k=v,...`) of the controller `r`/`name` (a Deployment, ReplicaSet,
/// ReplicationController, Service, ...), whose pods `logs` and the streaming verbs pick from.
pub fn controller_selector(
    client: &crate::client::Client,
    r: &crate::discovery::ApiResource,
    ns: &str,
    name: &str,
) -> Result<String> {
    let obj = client.get(&r.item(ns, name))?;
    let selector = match r.kind.as_str() {
        "ReplicationController" | "Service" => &obj["spec"]["selector"],
        _ => &obj["spec"]["selector"]["matchLabels"],
    };
    let pairs: Vec<String> =
        selector.as_object().into_iter().flatten().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or(""))).collect();
    Ok(pairs.join(","))
}

/// The container to use: the flag, else the default-container annotation, else the first one
/// (saying so on stderr when there was a choice, as kubectl does).
pub fn pick_container(ctx: &mut Ctx, pod: &Value, flag: Option<&str>, quiet: bool) -> Result<String> {
    if let Some(c) = flag {
        return Ok(c.to_string());
    }
    let names = |field: &str| -> Vec<String> {
        pod["spec"][field]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["name"].as_str().map(str::to_string))
            .collect()
    };
    let containers = names("containers");
    if let Some(d) = pod["metadata"]["annotations"]["kubectl.kubernetes.io/default-container"].as_str()
        && containers.iter().any(|c| c == d)
    {
        return Ok(d.to_string());
    }
    let Some(first) = containers.first().cloned() else {
        return Err(Error::usage(format!("pod {} does not have any containers", name_of(pod))));
    };
    let mut all: Vec<String> = containers.clone();
    all.extend(names("initContainers").into_iter().map(|n| format!("{n} (init)")));
    all.extend(names("ephemeralContainers").into_iter().map(|n| format!("{n} (ephem)")));
    if all.len() > 1 && !quiet {
        ctx.eprintln(&format!("Defaulted container \"{first}\" out of: {}", all.join(", ")));
    }
    Ok(first)
}

fn check_not_completed(pod: &Value, verb: &str) -> Result<()> {
    let phase = pod["status"]["phase"].as_str().unwrap_or("");
    if phase == "Succeeded" || phase == "Failed" {
        return Err(Error::usage(format!("cannot {verb} a container in a completed pod; current phase is {phase}")));
    }
    Ok(())
}

/// Runs one async session on a fresh runtime. REST calls (blocking reqwest) must all happen
/// before, since the blocking client cannot be used inside a runtime.
pub fn block_on<F: std::future::Future>(f: F) -> Result<F::Output> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::usage(format!("starting the I/O runtime: {e}")))?;
    let out = rt.block_on(f);
    // The stdin reader thread may still be blocked in read(2): do not wait for it.
    rt.shutdown_background();
    Ok(out)
}

/// Local stdin, read on its own thread (reads block) and handed over in chunks.
fn stdin_channel() -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel(16);
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match stdin.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx.blocking_send(buf[..n].to_vec()).is_err() {
                        break;
                    }
                }
            }
        }
    });
    rx
}

/// The terminal size now and on every SIGWINCH.
fn resize_channel() -> mpsc::Receiver<(u16, u16)> {
    let (tx, rx) = mpsc::channel(4);
    if let Some(size) = crate::term::size() {
        let _ = tx.try_send(size);
    }
    tokio::spawn(async move {
        let Ok(mut winch) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change()) else {
            return;
        };
        while winch.recv().await.is_some() {
            if let Some(size) = crate::term::size()
                && tx.send(size).await.is_err()
            {
                break;
            }
        }
    });
    rx
}

/// Turns a session's outcome into the result kubectl reports.
fn finish(outcome: Outcome) -> Result<()> {
    match outcome {
        Outcome::Success => Ok(()),
        Outcome::Exit(code) => Err(Error::Exit { code, message: format!("command terminated with exit code {code}") }),
        Outcome::Failure(msg) => Err(Error::usage(msg)),
    }
}

/// Whether a TTY is used: asked for with stdin, and stdin is a terminal (else kubectl's warning).
fn use_tty(ctx: &mut Ctx, tty: bool, stdin: bool, quiet: bool) -> bool {
    if !(tty && stdin) {
        return false;
    }
    if !crate::term::stdin_is_terminal() {
        if !quiet {
            ctx.eprintln("Unable to use a TTY - input is not a terminal or the right kind of file");
        }
        return false;
    }
    true
}

/// Runs an interactive or plain session on the terminal's own stdin/stdout/stderr.
fn terminal_session(
    path: String,
    target: crate::client::UpgradeTarget,
    stdin: bool,
    tty: bool,
    end_after_stdin: Option<std::time::Duration>,
) -> Result<()> {
    let outcome = block_on(async move {
        let socket = ws::connect(&target, &path).await?;
        // Raw mode only once the session exists, so connection errors print normally.
        let raw = if tty { crate::term::RawMode::enter() } else { None };
        let session = Session {
            stdin: stdin.then(stdin_channel),
            resize: tty.then(resize_channel),
            stdout: Box::new(std::io::stdout()),
            stderr: Box::new(std::io::stderr()),
            end_after_stdin,
        };
        let outcome = ws::run_session(socket, session).await;
        drop(raw);
        outcome
    })??;
    finish(outcome)
}

/// Runs `exec`.
pub fn exec(ctx: &mut Ctx, a: ExecArgs) -> Result<()> {
    if a.command.is_empty() {
        return Err(Error::usage("you must specify at least one command for the container"));
    }
    let (ns, pod) = target_pod(ctx, &a.target)?;
    check_not_completed(&pod, "exec into")?;
    let container = pick_container(ctx, &pod, a.container.as_deref(), a.quiet)?;
    let tty = use_tty(ctx, a.tty, a.stdin, a.quiet);
    let mut q: Vec<String> = a.command.iter().map(|c| format!("command={}", enc(c))).collect();
    q.push(format!("container={}", enc(&container)));
    q.push(format!("stdin={}", a.stdin));
    q.push("stdout=true".into());
    // With a TTY the remote merges stderr into the terminal stream.
    q.push(format!("stderr={}", !tty));
    q.push(format!("tty={tty}"));
    let path = format!("/api/v1/namespaces/{}/pods/{}/exec?{}", enc(&ns), enc(name_of(&pod)), q.join("&"));
    let target = ctx.client()?.upgrade_target();
    ctx.flush();
    terminal_session(path, target, a.stdin, tty, None)
}

/// Runs `attach`.
pub fn attach(ctx: &mut Ctx, a: AttachArgs) -> Result<()> {
    let (ns, pod) = target_pod(ctx, &a.target)?;
    check_not_completed(&pod, "attach to")?;
    let container = pick_container(ctx, &pod, a.container.as_deref(), a.quiet)?;
    let spec = pod["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["name"] == container.as_str())
        .cloned()
        .unwrap_or(Value::Null);
    // A container started with a TTY must be attached with one (else its output is garbled).
    let mut want_tty = a.tty || spec["tty"] == true;
    if a.tty && spec["tty"] != true {
        if !a.quiet {
            ctx.eprintln(&format!("error: Unable to use a TTY - container {container} did not allocate one"));
        }
        want_tty = false;
    }
    let tty = use_tty(ctx, want_tty, a.stdin, a.quiet);
    if !a.quiet {
        ctx.eprintln("If you don't see a command prompt, try pressing enter.");
    }
    // stdin is always requested: containerd ends an attach as soon as its stdin ends, and an
    // attach without stdin gets an empty one that ends at once. Without -i nothing is sent.
    let q = [
        format!("container={}", enc(&container)),
        "stdin=true".into(),
        "stdout=true".into(),
        format!("stderr={}", !tty),
        format!("tty={tty}"),
    ];
    let path = format!("/api/v1/namespaces/{}/pods/{}/attach?{}", enc(&ns), enc(name_of(&pod)), q.join("&"));
    let target = ctx.client()?.upgrade_target();
    ctx.flush();
    // Output still in flight when the local stdin ends gets a moment to arrive.
    terminal_session(path, target, a.stdin, tty, Some(std::time::Duration::from_millis(300)))
}

/// A `Write` into shared memory (cp's tar stream from the pod).
#[derive(Clone, Default)]
struct Collect(Arc<Mutex<Vec<u8>>>);

impl Write for Collect {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().map_err(|_| std::io::Error::other("poisoned"))?.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// One side of `cp`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Location {
    Local(PathBuf),
    Remote { namespace: Option<String>, pod: String, path: String },
}

fn parse_location(arg: &str) -> Location {
    // `pod:path` unless the part before the colon looks like a path itself.
    if let Some((left, path)) = arg.split_once(':')
        && !left.is_empty()
        && !left.starts_with('.')
        && !left.starts_with('/')
    {
        let (namespace, pod) = match left.split_once('/') {
            Some((ns, pod)) => (Some(ns.to_string()), pod.to_string()),
            None => (None, left.to_string()),
        };
        return Location::Remote { namespace, pod, path: path.to_string() };
    }
    Location::Local(PathBuf::from(arg))
}

/// The result of one non-interactive exec: outcome, stdout, stderr.
fn exec_capture(
    ctx: &mut Ctx,
    ns: &str,
    pod: &str,
    container: &str,
    command: &[&str],
    input: Option<Vec<u8>>,
) -> Result<(Outcome, Vec<u8>, Vec<u8>)> {
    let mut q: Vec<String> = command.iter().map(|c| format!("command={}", enc(c))).collect();
    q.push(format!("container={}", enc(container)));
    q.push(format!("stdin={}", input.is_some()));
    q.extend(["stdout=true".into(), "stderr=true".into(), "tty=false".into()]);
    let path = format!("/api/v1/namespaces/{}/pods/{}/exec?{}", enc(ns), enc(pod), q.join("&"));
    let target = ctx.client()?.upgrade_target();
    let (out, err) = (Collect::default(), Collect::default());
    let (o, e) = (out.clone(), err.clone());
    let outcome = block_on(async move {
        let socket = ws::connect(&target, &path).await?;
        let stdin = input.map(|bytes| {
            let (tx, rx) = mpsc::channel(1);
            // Dropping the sender sends nothing: v4 cannot signal the end of stdin anyway.
            let _ = tx.try_send(bytes);
            rx
        });
        let session = Session { stdin, resize: None, stdout: Box::new(o), stderr: Box::new(e), end_after_stdin: None };
        ws::run_session(socket, session).await
    })??;
    let take = |c: Collect| c.0.lock().map(|mut v| std::mem::take(&mut *v)).unwrap_or_default();
    Ok((outcome, take(out), take(err)))
}

/// Runs `cp`.
pub fn cp(ctx: &mut Ctx, a: CpArgs) -> Result<()> {
    match (parse_location(&a.src), parse_location(&a.dest)) {
        (Location::Local(src), Location::Remote { namespace, pod, path }) => {
            copy_to_pod(ctx, &a, &src, namespace, &pod, &path)
        }
        (Location::Remote { namespace, pod, path }, Location::Local(dest)) => {
            copy_from_pod(ctx, &a, namespace, &pod, &path, &dest)
        }
        (Location::Local(_), Location::Local(_)) => {
            Err(Error::usage("one of src or dest must be a remote file specification"))
        }
        _ => Err(Error::usage("one of src or dest must be a local file specification")),
    }
}

fn cp_pod(ctx: &mut Ctx, a: &CpArgs, namespace: Option<String>, pod: &str) -> Result<(String, String)> {
    if let Some(ns) = namespace {
        ctx.global.namespace = Some(ns);
    }
    let (ns, pod) = target_pod(ctx, pod)?;
    check_not_completed(&pod, "exec into")?;
    let container = pick_container(ctx, &pod, a.container.as_deref(), false)?;
    Ok((ns, container))
}

fn copy_to_pod(ctx: &mut Ctx, a: &CpArgs, src: &Path, namespace: Option<String>, pod: &str, dest: &str) -> Result<()> {
    let meta = std::fs::metadata(src)
        .map_err(|_| Error::usage(format!("{} doesn't exist in local filesystem", src.display())))?;
    if dest.is_empty() {
        return Err(Error::usage("remote path cannot be empty"));
    }
    let (ns, container) = cp_pod(ctx, a, namespace, pod)?;
    // Copying onto an existing directory puts the source inside it, as cp(1) does.
    let (is_dir, _, _) = exec_capture(ctx, &ns, pod, &container, &["test", "-d", dest], None)?;
    let src_name = src.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| ".".into());
    let dest = dest.trim_end_matches('/');
    let (dir, name) = if is_dir == Outcome::Success || dest.is_empty() {
        (if dest.is_empty() { "/".to_string() } else { dest.to_string() }, src_name)
    } else {
        match dest.rsplit_once('/') {
            Some((d, n)) => (if d.is_empty() { "/".to_string() } else { d.to_string() }, n.to_string()),
            None => (".".to_string(), dest.to_string()),
        }
    };
    let mut builder = tar::Builder::new(Vec::new());
    builder.follow_symlinks(false);
    let packed =
        if meta.is_dir() { builder.append_dir_all(&name, src) } else { builder.append_path_with_name(src, &name) };
    packed.map_err(|e| Error::usage(format!("packing {}: {e}", src.display())))?;
    let archive = builder.into_inner().map_err(|e| Error::usage(format!("packing {}: {e}", src.display())))?;
    // head bounds the input: the channel protocol cannot tell tar that stdin ended.
    let mut script = format!("head -c {} | tar -xmf -", archive.len());
    if a.no_preserve {
        script.push_str(" --no-same-permissions --no-same-owner");
    }
    script.push_str(" -C \"$1\"");
    let (outcome, out, err) =
        exec_capture(ctx, &ns, pod, &container, &["sh", "-c", &script, "sh", &dir], Some(archive))?;
    ctx.print(&String::from_utf8_lossy(&out));
    ctx.flush();
    let _ = std::io::stderr().write_all(&err);
    finish(outcome)
}

fn copy_from_pod(
    ctx: &mut Ctx,
    a: &CpArgs,
    namespace: Option<String>,
    pod: &str,
    src: &str,
    dest: &Path,
) -> Result<()> {
    if src.is_empty() {
        return Err(Error::usage("remote path cannot be empty"));
    }
    let (ns, container) = cp_pod(ctx, a, namespace, pod)?;
    let trimmed = src.trim_end_matches('/');
    let (dir, name) = match trimmed.rsplit_once('/') {
        Some((d, n)) => (if d.is_empty() { "/" } else { d }, n),
        None if trimmed.is_empty() => ("/", "."),
        None => (".", trimmed),
    };
    let (outcome, tarball, err) = exec_capture(ctx, &ns, pod, &container, &["tar", "cf", "-", "-C", dir, name], None)?;
    let _ = std::io::stderr().write_all(&err);
    finish(outcome)?;
    // Into an existing directory the source keeps its name; elsewhere it takes dest's.
    let root = if dest.is_dir() && name != "." { dest.join(name) } else { dest.to_path_buf() };
    let warnings = unpack(&tarball, name, &root, !a.no_preserve)?;
    for w in warnings {
        ctx.eprintln(&w);
    }
    Ok(())
}

/// Unpacks `tarball` whose entries start with `prefix` under `root`; returns warnings for
/// entries it refuses (links, paths escaping the destination).
fn unpack(tarball: &[u8], prefix: &str, root: &Path, preserve: bool) -> Result<Vec<String>> {
    let mut warnings = Vec::new();
    let mut archive = tar::Archive::new(tarball);
    let entries = archive.entries().map_err(|e| Error::usage(format!("reading the archive: {e}")))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| Error::usage(format!("reading the archive: {e}")))?;
        let path = entry.path().map_err(|e| Error::usage(format!("reading the archive: {e}")))?.into_owned();
        let rel: PathBuf = if prefix == "." {
            path.clone()
        } else {
            match path.strip_prefix(prefix) {
                Ok(r) => r.to_path_buf(),
                Err(_) => {
                    warnings.push(format!("warning: skipping {}: outside of {prefix}", path.display()));
                    continue;
                }
            }
        };
        if rel.components().any(|c| !matches!(c, Component::Normal(_) | Component::CurDir)) {
            warnings.push(format!("warning: skipping {}: it points outside the destination", path.display()));
            continue;
        }
        let target = if rel.as_os_str().is_empty() { root.to_path_buf() } else { root.join(&rel) };
        let kind = entry.header().entry_type();
        let io = |e: std::io::Error| Error::usage(format!("{}: {}", target.display(), io_message(&e)));
        if kind.is_dir() {
            std::fs::create_dir_all(&target).map_err(io)?;
        } else if kind.is_file() {
            if let Some(parent) = target.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent).map_err(io)?;
            }
            let mut file = std::fs::File::create(&target).map_err(io)?;
            std::io::copy(&mut entry, &mut file).map_err(io)?;
            if preserve && let Ok(mode) = entry.header().mode() {
                use std::os::unix::fs::PermissionsExt as _;
                let _ = std::fs::set_permissions(&target, std::fs::Permissions::from_mode(mode & 0o7777));
            }
        } else {
            warnings.push(format!("warning: skipping {}: links and special files are not copied", path.display()));
        }
    }
    Ok(warnings)
}

/// An I/O error without Rust's "(os error N)" suffix, as Go prints it.
fn io_message(e: &std::io::Error) -> String {
    let text = e.to_string();
    match text.find(" (os error") {
        Some(i) => text[..i].to_lowercase(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations() {
        assert_eq!(
            parse_location("web:/tmp/x"),
            Location::Remote { namespace: None, pod: "web".into(), path: "/tmp/x".into() }
        );
        assert_eq!(
            parse_location("ns1/web:x"),
            Location::Remote { namespace: Some("ns1".into()), pod: "web".into(), path: "x".into() }
        );
        assert_eq!(parse_location("./a:b"), Location::Local("./a:b".into()));
        assert_eq!(parse_location("/tmp/file"), Location::Local("/tmp/file".into()));
    }

    #[test]
    fn unpack_maps_the_prefix_and_refuses_escapes() {
        let mut b = tar::Builder::new(Vec::new());
        let mut add = |name: &str, data: &[u8]| {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o640);
            h.set_entry_type(tar::EntryType::Regular);
            h.set_cksum();
            b.append_data(&mut h, name, data).expect("appended");
        };
        add("dir/a.txt", b"A");
        add("dir/sub/b.txt", b"B");
        add("other/c.txt", b"C");
        let mut bytes = b.into_inner().expect("tar");
        // A hand-made entry named "dir/../../evil": append_data refuses such names.
        let mut h = tar::Header::new_old();
        h.as_old_mut().name[..14].copy_from_slice(b"dir/../../evil");
        h.set_size(1);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_cksum();
        let end = bytes.len() - 1024;
        let mut evil = h.as_bytes().to_vec();
        evil.extend_from_slice(&[b'E'; 512][..512]);
        bytes.splice(end..end, evil);
        let tmp = tempfile::tempdir().expect("tmp");
        let root = tmp.path().join("out");
        let warnings = unpack(&bytes, "dir", &root, true).expect("unpacked");
        assert_eq!(std::fs::read(root.join("a.txt")).ok(), Some(b"A".to_vec()));
        assert_eq!(std::fs::read(root.join("sub/b.txt")).ok(), Some(b"B".to_vec()));
        assert!(!tmp.path().join("evil").exists() && !root.join("c.txt").exists());
        assert_eq!(warnings.len(), 2, "{warnings:?}");
    }
}
