//! `image load FILE... [--node N]... [--name REF]` (rkube only; kubectl has no such verb): loads
//! image archives into nodes' container runtimes, for clusters whose nodes pull from no registry.
//!
//! Each file goes, streamed from disk, to `POST /api/v1/nodes/{node}/proxy/images/load` (the API
//! server's node proxy, so it needs `create nodes/proxy`), where the node's kubelet imports it
//! into containerd and answers with the images it made. Files are OCI image layouts in a tar
//! (skopeo's `oci-archive:`) or `docker save` archives, plain or gzip-compressed. A status line
//! shows the upload on a terminal. A node that fails is reported in kubectl's style and the others
//! still get the file; the command then exits 1.

use crate::client::Client;
use crate::ctx::Ctx;
use crate::error::{Error, Result};
use crate::progress::Progress;
use crate::resource::enc;
use clap::{Args, Subcommand};
use serde_json::Value;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// `image`.
#[derive(Debug, Clone, Subcommand)]
pub enum ImageCommand {
    /// Load image archives (OCI layout or docker save; .tar or .tar.gz) into nodes' container runtimes.
    Load(LoadArgs),
}

/// `image load`.
#[derive(Debug, Clone, Args)]
pub struct LoadArgs {
    /// Image archives: OCI image layouts in a tar (skopeo's oci-archive) or `docker save` output.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Node to load into (repeatable); default: every Ready node.
    #[arg(long = "node")]
    pub nodes: Vec<String>,
    /// Name for the archive's single image, e.g. registry.local/app:1 (instead of its own names).
    #[arg(long)]
    pub name: Option<String>,
}

/// Runs an `image` subcommand.
pub fn run(ctx: &mut Ctx, cmd: ImageCommand) -> Result<()> {
    match cmd {
        ImageCommand::Load(a) => load(ctx, a),
    }
}

fn load(ctx: &mut Ctx, a: LoadArgs) -> Result<()> {
    if a.name.is_some() && a.files.len() > 1 {
        return Err(Error::usage("--name names one image: give a single file with it"));
    }
    let mut files = Vec::new();
    for file in &a.files {
        match std::fs::metadata(file) {
            Ok(m) if m.is_file() => files.push((file.clone(), m.len())),
            Ok(_) => return Err(Error::usage(format!("{} is not a file", file.display()))),
            Err(_) => return Err(Error::usage(format!("the path \"{}\" does not exist", file.display()))),
        }
    }
    let client = ctx.client()?;
    let nodes = if a.nodes.is_empty() { ready_nodes(ctx, &client)? } else { a.nodes.clone() };
    for (file, len) in &files {
        for node in &nodes {
            match load_one(&client, file, *len, node, a.name.as_deref()) {
                Ok(images) => {
                    for (name, digest) in images {
                        ctx.println(&format!("image \"{name}\" loaded on node {node} ({digest})"));
                    }
                    ctx.flush();
                }
                Err(Error::Api(e)) => {
                    let context = format!("error when loading \"{}\" into node {node}: ", file.display());
                    ctx.report(&Error::Api(e.with_context(context)));
                }
                Err(e) => ctx.report(&e),
            }
        }
    }
    Ok(())
}

/// The nodes whose Ready condition is True; the others are named on stderr.
fn ready_nodes(ctx: &mut Ctx, client: &Client) -> Result<Vec<String>> {
    let list = client.get("/api/v1/nodes")?;
    let mut ready = Vec::new();
    for node in list["items"].as_array().into_iter().flatten() {
        let name = node["metadata"]["name"].as_str().unwrap_or_default().to_string();
        let is_ready = node["status"]["conditions"]
            .as_array()
            .is_some_and(|cs| cs.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"));
        if is_ready {
            ready.push(name);
        } else {
            ctx.eprintln(&format!("warning: node {name} is not Ready; not loading images into it"));
        }
    }
    if ready.is_empty() {
        return Err(Error::usage("no Ready node to load images into (name nodes with --node)"));
    }
    Ok(ready)
}

/// Counts the bytes read, for the status line.
struct Counting<R> {
    inner: R,
    done: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.done.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Uploads `file` to `node`'s kubelet: the (name, digest) of each image it loaded.
fn load_one(client: &Client, file: &Path, len: u64, node: &str, name: Option<&str>) -> Result<Vec<(String, String)>> {
    let reader = std::fs::File::open(file).map_err(|e| Error::usage(format!("open {}: {e}", file.display())))?;
    let done = Arc::new(AtomicU64::new(0));
    let body = Counting { inner: std::io::BufReader::with_capacity(1 << 20, reader), done: done.clone() };
    let mut path = format!("/api/v1/nodes/{}/proxy/images/load", enc(node));
    if let Some(n) = name {
        path.push_str(&format!("?name={}", enc(n)));
    }
    let progress = Progress::start(format!("loading {} into node {node}", file.display()));
    let result = std::thread::scope(|s| {
        let upload = s.spawn(|| -> Result<Value> {
            let bytes = client.upload(&path, "application/x-tar", body, len)?;
            serde_json::from_slice(&bytes).map_err(|e| Error::usage(format!("node {node} answered no JSON ({e})")))
        });
        let mut importing = false;
        while !upload.is_finished() {
            let sent = done.load(Ordering::Relaxed);
            progress.set_bytes(sent, Some(len));
            if sent >= len && !importing {
                importing = true;
                progress.set_message(format!("importing {} on node {node}", file.display()));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        upload.join().unwrap_or_else(|_| Err(Error::usage("the upload thread panicked")))
    });
    progress.clear();
    drop(progress);
    let answer = result?;
    let images = answer["images"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|i| {
            (i["name"].as_str().unwrap_or_default().to_string(), i["digest"].as_str().unwrap_or_default().to_string())
        })
        .collect();
    Ok(images)
}
