//! `backup` and `restore`: an etcd snapshot of the cluster's state through etcd's maintenance
//! API, checked before it is trusted, and a restore into a fresh data dir with etcd's own tool.
//! These talk to etcd, not to the API server: a snapshot is below what the REST API can see.

use crate::ctx::Ctx;
use crate::error::{Error, Result};
use clap::Args;
use etcd_client::{Certificate, ConnectOptions, GetOptions, Identity, TlsOptions};
use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// etcd appends a SHA-256 of the database to a snapshot streamed over the maintenance API.
const HASH_LEN: usize = 32;

/// `backup`.
#[derive(Debug, Clone, Args)]
pub struct BackupArgs {
    /// Where to write the snapshot.
    pub file: PathBuf,
    /// etcd client URLs, comma separated.
    #[arg(long, default_value = "http://127.0.0.1:2379", value_delimiter = ',')]
    pub etcd_servers: Vec<String>,
    /// CA bundle that signed etcd's serving certificate.
    #[arg(long)]
    pub etcd_cafile: Option<PathBuf>,
    /// Client certificate for etcd.
    #[arg(long)]
    pub etcd_certfile: Option<PathBuf>,
    /// Client key for etcd.
    #[arg(long)]
    pub etcd_keyfile: Option<PathBuf>,
}

/// `restore`.
#[derive(Debug, Clone, Args)]
pub struct RestoreArgs {
    /// The snapshot written by `backup`.
    pub file: PathBuf,
    /// The new etcd data dir; must not exist or be empty.
    #[arg(long)]
    pub data_dir: PathBuf,
}

fn etcd_error(e: etcd_client::Error) -> Error {
    Error::usage(format!("etcd: {e}"))
}

async fn connect(a: &BackupArgs) -> Result<etcd_client::Client> {
    let mut options = ConnectOptions::new().with_connect_timeout(std::time::Duration::from_secs(10));
    if a.etcd_cafile.is_some() || a.etcd_certfile.is_some() {
        let mut tls = TlsOptions::new();
        if let Some(ca) = &a.etcd_cafile {
            tls = tls.ca_certificate(Certificate::from_pem(std::fs::read(ca)?));
        }
        match (&a.etcd_certfile, &a.etcd_keyfile) {
            (Some(cert), Some(key)) => {
                tls = tls.identity(Identity::from_pem(std::fs::read(cert)?, std::fs::read(key)?))
            }
            (None, None) => {}
            _ => return Err(Error::usage("--etcd-certfile and --etcd-keyfile go together")),
        }
        options = options.with_tls(tls);
    }
    etcd_client::Client::connect(&a.etcd_servers, Some(options)).await.map_err(etcd_error)
}

/// Streams a snapshot; returns its bytes and the revision it was taken at.
async fn snapshot(client: &etcd_client::Client) -> Result<(Vec<u8>, i64)> {
    // etcd 3.4 leaves the snapshot's response header empty, so the revision read just before
    // stands in for it (later writes are not in what we count, at worst a few are missing).
    let before = client
        .kv_client()
        .get("/registry/", Some(GetOptions::new().with_prefix().with_count_only()))
        .await
        .map_err(etcd_error)?;
    let mut revision = before.header().map(|h| h.revision()).unwrap_or(0);
    let mut stream = client.maintenance_client().snapshot().await.map_err(etcd_error)?;
    let mut data = Vec::new();
    while let Some(msg) = stream.message().await.map_err(etcd_error)? {
        if let Some(h) = msg.header().filter(|h| h.revision() > 0) {
            revision = h.revision();
        }
        data.extend_from_slice(msg.blob());
    }
    Ok((data, revision))
}

/// Checks a snapshot's trailing SHA-256 against the rest of it.
pub fn verify_snapshot(data: &[u8]) -> Result<()> {
    if data.len() <= HASH_LEN {
        return Err(Error::usage(format!("the snapshot is too small ({} bytes)", data.len())));
    }
    let (db, hash) = data.split_at(data.len() - HASH_LEN);
    let digest = ring::digest::digest(&ring::digest::SHA256, db);
    if digest.as_ref() != hash {
        return Err(Error::usage("the snapshot's sha256 does not match its content"));
    }
    Ok(())
}

/// Writes through a temp file in the same dir and renames, so `file` is whole or absent.
fn write_atomically(file: &Path, data: &[u8]) -> Result<()> {
    let dir = file.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new().prefix(".rkubectl-backup-").tempfile_in(dir)?;
    tmp.write_all(data)?;
    tmp.as_file().sync_all()?;
    tmp.persist(file).map_err(|e| Error::Io(e.error))?;
    Ok(())
}

/// Keys under `/registry/` at `revision`, counted by resource.
async fn count_keys(client: &etcd_client::Client, revision: i64) -> Result<BTreeMap<String, u64>> {
    let resp = client
        .kv_client()
        .get("/registry/", Some(GetOptions::new().with_prefix().with_keys_only().with_revision(revision)))
        .await
        .map_err(etcd_error)?;
    let mut counts = BTreeMap::new();
    for kv in resp.kvs() {
        let key = String::from_utf8_lossy(kv.key());
        *counts.entry(resource_of_key(&key)).or_insert(0) += 1;
    }
    Ok(counts)
}

/// The resource a `/registry/` key belongs to, named like kubectl (`configmaps`,
/// `deployments.apps`): rkube keys are `/registry/{group}/{resource}/[{namespace}/]{name}`
/// with `core` for the core group; a shorter key (an allocator's own record) counts under its
/// 3rd segment.
pub fn resource_of_key(key: &str) -> String {
    let parts: Vec<&str> = key.split('/').skip(2).collect();
    match parts.as_slice() {
        ["core", resource, _, ..] => resource.to_string(),
        [group, resource, _, ..] => format!("{resource}.{group}"),
        [first, ..] => first.to_string(),
        [] => String::new(),
    }
}

/// Runs `backup`.
pub fn backup(ctx: &mut Ctx, a: BackupArgs) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::usage(format!("starting the runtime: {e}")))?;
    let (data, revision, counts) = rt.block_on(async {
        let client = connect(&a).await?;
        let (data, revision) = snapshot(&client).await?;
        verify_snapshot(&data)?;
        let counts = count_keys(&client, revision).await?;
        Ok::<_, Error>((data, revision, counts))
    })?;
    write_atomically(&a.file, &data)?;
    // Read back what landed on disk: that is the file a restore will use.
    let written = std::fs::read(&a.file)?;
    verify_snapshot(&written)?;
    tracing::info!(file = %a.file.display(), bytes = written.len(), revision, "snapshot written");
    ctx.println(&format!(
        "Snapshot saved to {} ({} bytes, revision {revision}, sha256 verified)",
        a.file.display(),
        written.len()
    ));
    let mut rows = vec![vec!["RESOURCE".to_string(), "KEYS".to_string()]];
    for (resource, n) in &counts {
        rows.push(vec![resource.clone(), n.to_string()]);
    }
    ctx.print(&crate::print::table::align(&rows));
    Ok(())
}

/// Whether a program is on `PATH`.
fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
}

/// Runs `restore`.
pub fn restore(ctx: &mut Ctx, a: RestoreArgs) -> Result<()> {
    if a.data_dir.exists() {
        let mut entries = std::fs::read_dir(&a.data_dir)?;
        if entries.next().is_some() {
            return Err(Error::usage(format!("data dir {} exists and is not empty", a.data_dir.display())));
        }
        // etcd's restore creates the dir itself and refuses one that exists.
        std::fs::remove_dir(&a.data_dir)?;
    }
    let data = std::fs::read(&a.file)?;
    verify_snapshot(&data)?;
    let (tool, mut cmd) = if on_path("etcdutl") {
        ("etcdutl", Command::new("etcdutl"))
    } else {
        let mut cmd = Command::new("etcdctl");
        cmd.env("ETCDCTL_API", "3");
        ("etcdctl", cmd)
    };
    ctx.println(&format!("Restoring {} into {} with {tool}", a.file.display(), a.data_dir.display()));
    ctx.flush();
    let out = cmd
        .args(["snapshot", "restore"])
        .arg(&a.file)
        .arg("--data-dir")
        .arg(&a.data_dir)
        .output()
        .map_err(|e| Error::usage(format!("running {tool}: {e}")))?;
    if !out.status.success() {
        return Err(Error::usage(format!(
            "{tool} snapshot restore failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    ctx.println(&format!("Restored: start etcd with --data-dir {}", a.data_dir.display()));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_count_under_their_resource() {
        assert_eq!(resource_of_key("/registry/core/configmaps/ns/cfg"), "configmaps");
        assert_eq!(resource_of_key("/registry/core/namespaces/ns"), "namespaces");
        assert_eq!(resource_of_key("/registry/apps/deployments/ns/d"), "deployments.apps");
        assert_eq!(
            resource_of_key("/registry/discovery.k8s.io/endpointslices/ns/e"),
            "endpointslices.discovery.k8s.io"
        );
        assert_eq!(resource_of_key("/registry/ipaddresses/10.0.0.1"), "ipaddresses");
        assert_eq!(resource_of_key("/registry/"), "");
    }

    #[test]
    fn a_snapshot_must_end_with_its_sha256() {
        let db = b"some bolt database bytes".to_vec();
        let mut snap = db.clone();
        snap.extend_from_slice(ring::digest::digest(&ring::digest::SHA256, &db).as_ref());
        assert!(verify_snapshot(&snap).is_ok());
        snap[0] ^= 1;
        assert!(verify_snapshot(&snap).is_err());
        assert!(verify_snapshot(&[0; 32]).is_err());
    }
}
