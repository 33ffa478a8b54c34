//! `POST /images/load[?name=REF]`: imports an uploaded image archive into containerd's `k8s.io`
//! namespace, where the CRI plugin (and so pods with imagePullPolicy Never or IfNotPresent) sees
//! it. Nodes here have no registry on the internet; `rkubectl image load` sends archives through
//! the API server's node proxy to this endpoint.
//!
//! The body is an OCI image layout in a tar (`oci-layout`, `index.json`, `blobs/sha256/...`: what
//! `skopeo copy ... oci-archive:` writes) or a `docker save` archive (`manifest.json`, config and
//! layer files), either one optionally gzip-compressed. It is streamed: tar entries go straight
//! into containerd's content store through its native API (Content.Write) as they arrive, each
//! hashed on the way and refused when its content does not match its name; blobs the node already
//! has are only hashed. Nothing larger than a chunk is held in memory but the small JSON files.
//!
//! Everything written is held by a containerd lease (which expires by itself should the kubelet
//! die mid-import), so the garbage collector cannot take blobs before an image refers to them.
//! Only once the whole graph checks out (every manifest's config and layers present, sizes
//! right) do manifests get containerd's `containerd.io/gc.ref.content.*` labels (what the
//! collector follows from an image to its blobs) and the image records get created or updated;
//! then the lease goes. A bad archive therefore leaves no image record, and its blobs are
//! collected. Last, the CRI plugin, which learns of images from containerd's events, is polled
//! (ImageStatus) until it sees each image.

use crate::cri::Cri;
use axum::Router;
use axum::extract::{Query, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bytes::{Buf, Bytes};
use containerd_client::services::v1::content_client::ContentClient;
use containerd_client::services::v1::images_client::ImagesClient;
use containerd_client::services::v1::leases_client::LeasesClient;
use containerd_client::services::v1::{
    AbortRequest, AddResourceRequest, CreateImageRequest, CreateRequest as CreateLeaseRequest,
    DeleteRequest as DeleteLeaseRequest, Image, Info, InfoRequest, ReadContentRequest, Resource, UpdateImageRequest,
    UpdateRequest as UpdateContentRequest, WriteAction, WriteContentRequest, WriteContentResponse,
};
use containerd_client::types::Descriptor as ContainerdDescriptor;
use futures::{Stream, StreamExt};
use http::{HeaderValue, StatusCode, header};
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{self, Read};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, Endpoint, Uri};

/// The containerd namespace the CRI plugin keeps Kubernetes' images and containers in.
pub const NAMESPACE: &str = "k8s.io";
/// Annotation of an index entry: the image's name, or only its tag (OCI image layout).
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";
/// Annotation of an index entry: the image's full name (containerd's export and our test images).
pub const ANNOTATION_IMAGE_NAME: &str = "io.containerd.image.name";

const MEDIA_OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const MEDIA_OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const MEDIA_OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const MEDIA_OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
const MEDIA_OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const MEDIA_DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const MEDIA_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// The label prefix containerd's garbage collector follows from one blob to the blobs it needs.
const GC_REF: &str = "containerd.io/gc.ref.content";
/// The lease label after which containerd drops a lease its owner forgot (the kubelet died).
const GC_EXPIRE: &str = "containerd.io/gc.expire";
/// How long a lease lives if the import never ends it: longer than any sane upload.
const LEASE_TTL: Duration = Duration::from_secs(6 * 3600);
/// Bytes per Content.Write message (containerd accepts up to 16 MiB).
const CHUNK: usize = 1 << 20;
/// Largest JSON file (index.json, manifest.json, a manifest) read into memory.
const MAX_JSON: u64 = 4 << 20;
/// How long the CRI plugin gets to notice a new image.
const CRI_WAIT: Duration = Duration::from_secs(10);
/// After a refusal, how much of the rest of the upload is read (and dropped) so the client sees
/// the answer rather than a reset connection; past this it gets the reset.
const DRAIN_LIMIT: u64 = 1 << 30;
/// ... and for how long.
const DRAIN_TIME: Duration = Duration::from_secs(60);

/// Why an import failed.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The archive is malformed, truncated, or does not match its own digests (400).
    #[error("{0}")]
    BadArchive(String),
    /// The request is wrong, e.g. an invalid `name` (400).
    #[error("{0}")]
    BadRequest(String),
    /// The upload is in a format this endpoint does not read (415).
    #[error("{0}")]
    Unsupported(String),
    /// containerd failed (500).
    #[error("containerd: {0}")]
    Runtime(String),
}

impl LoadError {
    fn status(&self) -> (StatusCode, &'static str) {
        match self {
            LoadError::BadArchive(_) | LoadError::BadRequest(_) => (StatusCode::BAD_REQUEST, "BadRequest"),
            LoadError::Unsupported(_) => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "UnsupportedMediaType"),
            LoadError::Runtime(_) => (StatusCode::INTERNAL_SERVER_ERROR, "InternalError"),
        }
    }
}

impl IntoResponse for LoadError {
    fn into_response(self) -> Response {
        let (code, reason) = self.status();
        crate::server::failure_response(code, reason, &self.to_string())
    }
}

fn runtime(what: &str) -> impl FnOnce(tonic::Status) -> LoadError + '_ {
    move |s| LoadError::Runtime(format!("{what}: {}: {}", s.code(), s.message()))
}

/// One image the import created or updated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoadedImage {
    /// The normalised reference, e.g. `docker.io/library/busybox:1`.
    pub name: String,
    /// Digest of the image's manifest (or index).
    pub digest: String,
    /// Bytes of the manifest, config and layers (of every platform present for an index).
    pub size: u64,
}

/// The answer of `POST /images/load`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LoadResponse {
    /// The images, in archive order.
    pub images: Vec<LoadedImage>,
}

/// Imports archives into one containerd; cheap to clone.
#[derive(Clone)]
pub struct ImageLoader {
    channel: Channel,
    cri: Cri,
}

impl ImageLoader {
    /// Connects (lazily) to containerd's socket `endpoint` (`unix:///path` or a bare path; the
    /// CRI endpoint: one socket serves both), confirming images through `cri`.
    pub fn connect(endpoint: &str, cri: Cri) -> Result<ImageLoader, LoadError> {
        let path = PathBuf::from(endpoint.strip_prefix("unix://").unwrap_or(endpoint));
        // tonic needs a URI; every connection goes to the socket regardless.
        let channel = Endpoint::try_from("http://[::1]:50051")
            .map_err(|e| LoadError::Runtime(format!("containerd endpoint {endpoint}: {e}")))?
            .connect_timeout(Duration::from_secs(5))
            .connect_with_connector_lazy(tower::service_fn(move |_: Uri| {
                let path = path.clone();
                async move { Ok::<_, io::Error>(TokioIo::new(tokio::net::UnixStream::connect(path).await?)) }
            }));
        Ok(ImageLoader { channel, cri })
    }

    fn content(&self) -> ContentClient<Channel> {
        ContentClient::new(self.channel.clone()).max_decoding_message_size(16 << 20)
    }

    /// Imports the archive streamed in `body`; `name` names its single image instead of the
    /// archive's own annotations.
    pub async fn load<S, E>(&self, name: Option<&str>, body: S) -> Result<Vec<LoadedImage>, LoadError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send + 'static,
        E: std::fmt::Display + Send + 'static,
    {
        let started = Instant::now();
        let name = name.map(|n| normalize_reference(n).map_err(LoadError::BadRequest)).transpose()?;
        let (rx, pump) = pump(body);
        let result = match self.create_lease().await {
            Ok(lease) => {
                let result = self.load_leased(&lease, name.as_deref(), rx).await;
                self.delete_lease(&lease).await;
                result
            }
            Err(e) => Err(e),
        };
        // The rest of the body (tar padding, or everything after a refusal) is read before
        // answering, so the client gets the answer rather than a reset connection.
        let _ = pump.await;
        let images = result?;
        let images = self.confirm(images).await?;
        tracing::info!(
            images = images.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "image archive loaded"
        );
        Ok(images)
    }

    async fn create_lease(&self) -> Result<String, LoadError> {
        let id = format!("rkube-image-load-{:016x}", rand::random::<u64>());
        let now = jiff::Timestamp::now();
        let expires = now.checked_add(jiff::SignedDuration::from_secs(LEASE_TTL.as_secs() as i64)).unwrap_or(now);
        let labels = [(GC_EXPIRE.to_string(), expires.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())].into();
        let req = namespaced(CreateLeaseRequest { id: id.clone(), labels });
        LeasesClient::new(self.channel.clone()).create(req).await.map_err(runtime("creating a lease"))?;
        Ok(id)
    }

    async fn delete_lease(&self, lease: &str) {
        let req = namespaced(DeleteLeaseRequest { id: lease.to_string(), sync: false });
        if let Err(e) = LeasesClient::new(self.channel.clone()).delete(req).await {
            // It expires by itself; until then it only keeps blobs from the collector.
            tracing::warn!(lease, error = %e, "deleting the image import lease failed");
        }
    }

    async fn load_leased(
        &self,
        lease: &str,
        name: Option<&str>,
        rx: mpsc::Receiver<Result<Bytes, String>>,
    ) -> Result<Vec<LoadedImage>, LoadError> {
        let store = Store {
            handle: tokio::runtime::Handle::current(),
            content: self.content(),
            leases: LeasesClient::new(self.channel.clone()),
            lease: lease.to_string(),
            seq: Arc::new(AtomicU64::new(0)),
        };
        let scan_store = store.clone();
        let reader = BodyReader { rx, current: Bytes::new() };
        let scan = tokio::task::spawn_blocking(move || scan(reader, &scan_store))
            .await
            .map_err(|e| LoadError::Runtime(format!("the import task failed: {e}")))??;
        let targets = if let Some(index) = &scan.index {
            oci_targets(index, name)?
        } else if let Some(manifest) = &scan.docker_manifest {
            self.docker_targets(&store, &scan, manifest, name).await?
        } else if scan.entries == 0 {
            return Err(LoadError::BadArchive("the upload is empty or not a tar archive".into()));
        } else {
            return Err(LoadError::BadArchive(
                "the archive has no index.json (an OCI image layout) and no manifest.json (a docker save archive)"
                    .into(),
            ));
        };
        // Check every image's graph before any image record changes, so a bad archive leaves none.
        let mut checked: HashMap<String, Checked> = HashMap::new();
        let mut planned = Vec::new();
        for (image, target) in targets {
            let c = match checked.get(&target.digest) {
                Some(c) => c.clone(),
                None => {
                    let c = store.check(&target, &format!("image {image:?}"), 0).await?;
                    checked.insert(target.digest.clone(), c.clone());
                    c
                }
            };
            planned.push((image, target, c));
        }
        for c in checked.values() {
            for (digest, labels) in &c.labels {
                store.set_labels(digest, labels).await?;
            }
        }
        let mut images = ImagesClient::new(self.channel.clone());
        let mut out = Vec::new();
        for (image, target, c) in planned {
            let descriptor = ContainerdDescriptor {
                media_type: c.media_type.clone(),
                digest: target.digest.clone(),
                size: target.size,
                annotations: HashMap::new(),
            };
            let record = Image { name: image.clone(), target: Some(descriptor), ..Default::default() };
            let create = namespaced(CreateImageRequest { image: Some(record.clone()), source_date_epoch: None });
            match images.create(create).await {
                Ok(_) => {}
                Err(s) if s.code() == tonic::Code::AlreadyExists => {
                    let mut update = UpdateImageRequest { image: Some(record), ..Default::default() };
                    let mut mask = update.update_mask.take().unwrap_or_default();
                    mask.paths = vec!["target".into()];
                    update.update_mask = Some(mask);
                    images.update(namespaced(update)).await.map_err(runtime(&format!("updating image {image}")))?;
                }
                Err(s) => return Err(runtime(&format!("creating image {image}"))(s)),
            }
            tracing::info!(image = %image, digest = %target.digest, size = c.size, "image stored");
            out.push(LoadedImage { name: image, digest: target.digest, size: c.size });
        }
        Ok(out)
    }

    /// The images of a `docker save` archive: an OCI manifest per entry of manifest.json, written
    /// to the content store (docker's own format has none).
    async fn docker_targets(
        &self,
        store: &Store,
        scan: &Scan,
        manifest: &[u8],
        name: Option<&str>,
    ) -> Result<Vec<(String, Descriptor)>, LoadError> {
        let plan = docker_plan(manifest, scan, name)?;
        let mut out = Vec::new();
        for (names, bytes) in plan {
            let digest = sha256_digest(&bytes);
            store.put_bytes(&bytes, &digest).await?;
            let target = Descriptor {
                media_type: MEDIA_OCI_MANIFEST.into(),
                digest,
                size: bytes.len() as i64,
                annotations: BTreeMap::new(),
            };
            out.extend(names.into_iter().map(|n| (n, target.clone())));
        }
        Ok(out)
    }

    /// Waits until the CRI plugin sees every image.
    async fn confirm(&self, images: Vec<LoadedImage>) -> Result<Vec<LoadedImage>, LoadError> {
        let deadline = Instant::now() + CRI_WAIT;
        for image in &images {
            loop {
                match self.cri.image_status(&image.name).await {
                    Ok(Some(_)) => break,
                    Ok(None) if Instant::now() < deadline => {}
                    Ok(None) => {
                        return Err(LoadError::Runtime(format!(
                            "image {} is stored, but the CRI plugin did not see it within {}s",
                            image.name,
                            CRI_WAIT.as_secs()
                        )));
                    }
                    Err(e) => return Err(LoadError::Runtime(format!("CRI ImageStatus of {}: {e}", image.name))),
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        Ok(images)
    }
}

/// A request in containerd's `k8s.io` namespace.
fn namespaced<T>(msg: T) -> tonic::Request<T> {
    let mut req = tonic::Request::new(msg);
    req.metadata_mut().insert("containerd-namespace", MetadataValue::from_static(NAMESPACE));
    req
}

/// The kubelet API route `POST /images/load` over `loader`.
pub fn router(loader: ImageLoader) -> Router {
    Router::new().route("/images/load", post(load)).with_state(Arc::new(loader))
}

async fn load(State(loader): State<Arc<ImageLoader>>, req: Request) -> Response {
    let query = match Query::<Vec<(String, String)>>::try_from_uri(req.uri()) {
        Ok(Query(q)) => q,
        Err(e) => return LoadError::BadRequest(format!("invalid query: {e}")).into_response(),
    };
    let name = query.iter().rev().find(|(k, _)| k == "name").map(|(_, v)| v.clone()).filter(|v| !v.is_empty());
    let body = req.into_body().into_data_stream();
    match loader.load(name.as_deref(), body).await {
        Ok(images) => {
            let body = serde_json::to_string(&LoadResponse { images }).unwrap_or_default();
            let mut resp = (StatusCode::OK, body).into_response();
            resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            resp
        }
        Err(e) => {
            tracing::warn!(error = %e, "image load refused");
            e.into_response()
        }
    }
}

/// Moves the body into a channel a blocking reader drains; once the reader is gone, reads and
/// drops the rest (within [`DRAIN_LIMIT`] and [`DRAIN_TIME`]).
fn pump<S, E>(body: S) -> (mpsc::Receiver<Result<Bytes, String>>, tokio::task::JoinHandle<()>)
where
    S: Stream<Item = Result<Bytes, E>> + Send + 'static,
    E: std::fmt::Display + Send + 'static,
{
    let (tx, rx) = mpsc::channel::<Result<Bytes, String>>(8);
    let task = tokio::spawn(async move {
        let mut body = Box::pin(body);
        let mut dropped = 0u64;
        let mut since: Option<Instant> = None;
        while let Some(item) = body.next().await {
            let item = item.map_err(|e| e.to_string());
            let failed = item.is_err();
            let len = item.as_ref().map_or(0, |b| b.len() as u64);
            if since.is_none() && tx.send(item).await.is_ok() {
                if failed {
                    return;
                }
                continue;
            }
            if failed {
                return;
            }
            let since = *since.get_or_insert_with(Instant::now);
            dropped += len;
            if dropped > DRAIN_LIMIT || since.elapsed() > DRAIN_TIME {
                return;
            }
        }
    });
    (rx, task)
}

/// The body as a blocking [`Read`].
struct BodyReader {
    rx: mpsc::Receiver<Result<Bytes, String>>,
    current: Bytes,
}

impl Read for BodyReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(b)) => self.current = b,
                Some(Err(e)) => return Err(io::Error::other(format!("reading the upload: {e}"))),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        self.current.advance(n);
        Ok(n)
    }
}

/// Reads until `buf` is full or the input ends.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// The compression of a stream, from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// A plain tar.
    None,
    /// gzip (`1f 8b`).
    Gzip,
    /// zstd, bzip2 or xz, which are not read here.
    Other(&'static str),
}

/// Sniffs the compression from the first (up to 6) bytes.
pub fn sniff(head: &[u8]) -> Compression {
    match head {
        [0x1f, 0x8b, ..] => Compression::Gzip,
        [0x28, 0xb5, 0x2f, 0xfd, ..] => Compression::Other("zstd"),
        [b'B', b'Z', b'h', ..] => Compression::Other("bzip2"),
        [0xfd, b'7', b'z', b'X', b'Z', 0x00, ..] => Compression::Other("xz"),
        _ => Compression::None,
    }
}

/// `reader` decompressed as its first bytes say.
fn decompress<R: Read + Send + 'static>(mut reader: R) -> Result<Box<dyn Read + Send>, LoadError> {
    let mut head = [0u8; 6];
    let n = read_full(&mut reader, &mut head).map_err(bad_read)?;
    let chained = Read::chain(io::Cursor::new(head[..n].to_vec()), reader);
    match sniff(&head[..n]) {
        Compression::None => Ok(Box::new(chained)),
        Compression::Gzip => Ok(Box::new(flate2::read::MultiGzDecoder::new(chained))),
        Compression::Other(kind) => Err(LoadError::Unsupported(format!(
            "the archive is {kind}-compressed; only plain or gzip-compressed tar archives can be loaded"
        ))),
    }
}

fn bad_read(e: io::Error) -> LoadError {
    match e.kind() {
        io::ErrorKind::UnexpectedEof => LoadError::BadArchive(format!("the archive is truncated: {e}")),
        _ => LoadError::BadArchive(format!("reading the archive: {e}")),
    }
}

/// What a tar entry is, by its path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    /// `index.json` of an OCI layout.
    Index,
    /// `manifest.json` of a docker save archive.
    DockerManifest,
    /// `oci-layout`.
    Layout,
    /// `blobs/sha256/<hex>`: a blob named by its digest.
    Blob(String),
    /// A file a docker save archive may refer to (`*.json`, `*.tar`): stored by its content's digest.
    File,
    /// Anything else (directories' metadata, docker's legacy `json`/`VERSION`/`repositories`).
    Skip,
}

/// Classifies a cleaned archive path.
pub fn classify(path: &str) -> Result<EntryKind, LoadError> {
    match path {
        "index.json" => return Ok(EntryKind::Index),
        "manifest.json" => return Ok(EntryKind::DockerManifest),
        "oci-layout" => return Ok(EntryKind::Layout),
        _ => {}
    }
    if let Some(rest) = path.strip_prefix("blobs/") {
        let Some((alg, hex)) = rest.split_once('/') else { return Ok(EntryKind::Skip) };
        if alg != "sha256" {
            return Err(LoadError::Unsupported(format!("blob {path}: only sha256 digests are supported, not {alg}")));
        }
        let digest = format!("sha256:{hex}");
        if !valid_digest(&digest) {
            return Err(LoadError::BadArchive(format!("blob {path} is not named by a sha256 digest")));
        }
        return Ok(EntryKind::Blob(digest));
    }
    if path.ends_with(".json") || path.ends_with(".tar") {
        return Ok(EntryKind::File);
    }
    Ok(EntryKind::Skip)
}

/// `sha256:` and 64 lower-case hex digits.
pub fn valid_digest(d: &str) -> bool {
    d.strip_prefix("sha256:")
        .is_some_and(|h| h.len() == 64 && h.bytes().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref()))
}

/// An archive path without `./` and leading `/`, `.` and `..` resolved.
pub fn clean_path(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for p in path.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    parts.join("/")
}

/// What the tar stream held, once every blob is in the content store.
#[derive(Debug, Default)]
struct Scan {
    /// Entries read (of any kind).
    entries: usize,
    index: Option<Vec<u8>>,
    docker_manifest: Option<Vec<u8>>,
    /// Files outside `blobs/` by path: their content's digest and size, and whether gzip.
    files: HashMap<String, (String, i64, bool)>,
    /// Symbolic and hard links: path to the (cleaned) path they point at.
    links: HashMap<String, String>,
}

impl Scan {
    /// The stored file at `path`, following links.
    fn file(&self, path: &str) -> Option<&(String, i64, bool)> {
        let mut path = clean_path(path);
        for _ in 0..8 {
            if let Some(f) = self.files.get(&path) {
                return Some(f);
            }
            path = self.links.get(&path)?.clone();
        }
        None
    }
}

/// Reads the tar stream, storing blobs (and docker files) in containerd as they come.
fn scan(reader: impl Read + Send + 'static, store: &Store) -> Result<Scan, LoadError> {
    let count = Arc::new(AtomicU64::new(0));
    let counted = Counted { inner: decompress(reader)?, count: count.clone() };
    let mut archive = tar::Archive::new(counted);
    let mut scan = Scan::default();
    // Where the last entry's data (padded to whole blocks) ends, and its name.
    let mut last_end = 0u64;
    let mut last_path = String::new();
    for entry in archive.entries().map_err(bad_read)? {
        let mut entry = entry.map_err(bad_read)?;
        scan.entries += 1;
        let path = clean_path(&String::from_utf8_lossy(&entry.path_bytes()));
        last_end = entry.raw_file_position() + entry.size().div_ceil(512) * 512;
        last_path.clone_from(&path);
        let kind = entry.header().entry_type();
        if kind.is_symlink() || kind.is_hard_link() {
            if let Some(target) = entry.link_name_bytes() {
                let target = String::from_utf8_lossy(&target).into_owned();
                // Symbolic links are relative to their directory, hard links to the archive root.
                let resolved = if kind.is_symlink() && !target.starts_with('/') {
                    let dir = path.rsplit_once('/').map_or("", |(d, _)| d);
                    clean_path(&format!("{dir}/{target}"))
                } else {
                    clean_path(&target)
                };
                scan.links.insert(path, resolved);
            }
            continue;
        }
        if !(kind.is_file() || kind.is_contiguous()) {
            continue;
        }
        let size = entry.size();
        match classify(&path)? {
            EntryKind::Index => scan.index = Some(read_small(&mut entry, size, &path)?),
            EntryKind::DockerManifest => scan.docker_manifest = Some(read_small(&mut entry, size, &path)?),
            EntryKind::Layout => {
                let layout = read_small(&mut entry, size, &path)?;
                let version = serde_json::from_slice::<Value>(&layout)
                    .ok()
                    .and_then(|v| v["imageLayoutVersion"].as_str().map(str::to_string));
                if version.as_deref() != Some("1.0.0") {
                    return Err(LoadError::Unsupported(format!(
                        "oci-layout says imageLayoutVersion {version:?}; only 1.0.0 is supported"
                    )));
                }
            }
            EntryKind::Blob(digest) => {
                store.put(&mut entry, size, Some(&digest), &path)?;
            }
            EntryKind::File => {
                let (digest, gzip) = store.put(&mut entry, size, None, &path)?;
                scan.files.insert(path, (digest, size as i64, gzip));
            }
            EntryKind::Skip => {}
        }
    }
    // A tar ends with zero blocks; a stream that stops right after an entry was cut short
    // there (the reader found no header, not the end marker).
    if scan.entries > 0 && count.load(Ordering::Relaxed) < last_end + 512 {
        return Err(LoadError::BadArchive(format!(
            "the archive is truncated: it stops after {last_path} without tar's end-of-archive marker"
        )));
    }
    Ok(scan)
}

/// A reader that counts the bytes it hands out.
struct Counted<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

fn read_small(entry: &mut impl Read, size: u64, path: &str) -> Result<Vec<u8>, LoadError> {
    if size > MAX_JSON {
        return Err(LoadError::BadArchive(format!("{path} is {size} bytes; more than {MAX_JSON} is not plausible")));
    }
    let mut buf = Vec::with_capacity(size as usize);
    entry.take(size).read_to_end(&mut buf).map_err(bad_read)?;
    if (buf.len() as u64) < size {
        return Err(LoadError::BadArchive(format!(
            "the archive is truncated: {path} ends after {} of {size} bytes",
            buf.len()
        )));
    }
    Ok(buf)
}

/// An OCI descriptor as JSON has it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Descriptor {
    /// The content's media type (may be missing in old index entries).
    #[serde(rename = "mediaType", default, skip_serializing_if = "String::is_empty")]
    pub media_type: String,
    /// `sha256:<hex>`.
    pub digest: String,
    /// Bytes.
    pub size: i64,
    /// Annotations (index entries carry the image names here).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
struct Index {
    #[serde(default)]
    manifests: Vec<Descriptor>,
}

#[derive(Debug, Deserialize)]
struct Manifest {
    config: Descriptor,
    #[serde(default)]
    layers: Vec<Descriptor>,
}

/// `(image name, target)` for each named entry of an OCI layout's index.json; `name` (already
/// normalised) names the only entry instead.
///
/// An entry's name is its `org.opencontainers.image.ref.name` when that is a full reference;
/// a bare tag there goes with the repository of `io.containerd.image.name`; else
/// `io.containerd.image.name` alone. Entries without either are skipped.
pub fn oci_targets(index_json: &[u8], name: Option<&str>) -> Result<Vec<(String, Descriptor)>, LoadError> {
    let index: Index = serde_json::from_slice(index_json)
        .map_err(|e| LoadError::BadArchive(format!("index.json is not an OCI image index: {e}")))?;
    if index.manifests.is_empty() {
        return Err(LoadError::BadArchive("index.json lists no manifests".into()));
    }
    for d in &index.manifests {
        if !valid_digest(&d.digest) {
            return Err(LoadError::BadArchive(format!("index.json lists an invalid digest {:?}", d.digest)));
        }
    }
    if let Some(name) = name {
        return match index.manifests.as_slice() {
            [only] => Ok(vec![(name.to_string(), only.clone())]),
            many => Err(LoadError::BadRequest(format!(
                "a name names one image, but the archive holds {}; load it without a name",
                many.len()
            ))),
        };
    }
    let mut out = Vec::new();
    for d in &index.manifests {
        let ref_name = d.annotations.get(ANNOTATION_REF_NAME).map(String::as_str).unwrap_or_default();
        let image_name = d.annotations.get(ANNOTATION_IMAGE_NAME).map(String::as_str).unwrap_or_default();
        let full = if ref_name.contains(['/', ':', '@']) {
            ref_name.to_string()
        } else if !ref_name.is_empty() && !image_name.is_empty() {
            let repo = normalize_reference(image_name).map(|n| repository(&n).to_string()).map_err(|e| {
                LoadError::BadArchive(format!("manifest {}: {ANNOTATION_IMAGE_NAME} {image_name:?}: {e}", d.digest))
            })?;
            format!("{repo}:{ref_name}")
        } else if !image_name.is_empty() {
            image_name.to_string()
        } else if !ref_name.is_empty() {
            return Err(LoadError::BadArchive(format!(
                "manifest {} is tagged {ref_name:?} but the archive names no repository; give the image a name \
                 (rkubectl image load --name, or ?name=)",
                d.digest
            )));
        } else {
            continue;
        };
        let normalized = normalize_reference(&full)
            .map_err(|e| LoadError::BadArchive(format!("manifest {}: image name {full:?}: {e}", d.digest)))?;
        out.push((normalized, d.clone()));
    }
    if out.is_empty() {
        return Err(LoadError::BadArchive(format!(
            "the archive names no image (no {ANNOTATION_REF_NAME} or {ANNOTATION_IMAGE_NAME} annotation in \
             index.json); give it a name (rkubectl image load --name, or ?name=)"
        )));
    }
    Ok(out)
}

#[derive(Debug, Deserialize)]
struct DockerEntry {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers", default)]
    layers: Vec<String>,
}

/// Names of one image and the bytes of its manifest.
type NamedManifest = (Vec<String>, Vec<u8>);

/// For each entry of a docker save archive's manifest.json: its names and the OCI manifest
/// (bytes) that describes its config and layers as stored.
fn docker_plan(manifest_json: &[u8], scan: &Scan, name: Option<&str>) -> Result<Vec<NamedManifest>, LoadError> {
    let entries: Vec<DockerEntry> = serde_json::from_slice(manifest_json)
        .map_err(|e| LoadError::BadArchive(format!("manifest.json is not a docker save manifest: {e}")))?;
    if entries.is_empty() {
        return Err(LoadError::BadArchive("manifest.json lists no images".into()));
    }
    if name.is_some() && entries.len() > 1 {
        return Err(LoadError::BadRequest(format!(
            "a name names one image, but the archive holds {}; load it without a name",
            entries.len()
        )));
    }
    let stored = |path: &str| {
        scan.file(path)
            .cloned()
            .ok_or_else(|| LoadError::BadArchive(format!("manifest.json names {path}, which is not in the archive")))
    };
    let mut out = Vec::new();
    for entry in entries {
        let names = match name {
            Some(n) => vec![n.to_string()],
            None => entry
                .repo_tags
                .iter()
                .flatten()
                .map(|t| normalize_reference(t).map_err(|e| LoadError::BadArchive(format!("RepoTags {t:?}: {e}"))))
                .collect::<Result<Vec<_>, _>>()?,
        };
        if names.is_empty() {
            continue;
        }
        let (config_digest, config_size, _) = stored(&entry.config)?;
        let mut layers = Vec::new();
        for layer in &entry.layers {
            let (digest, size, gzip) = stored(layer)?;
            let media_type = if gzip { MEDIA_OCI_LAYER_GZIP } else { MEDIA_OCI_LAYER };
            layers.push(serde_json::json!({"mediaType": media_type, "digest": digest, "size": size}));
        }
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": MEDIA_OCI_MANIFEST,
            "config": {"mediaType": MEDIA_OCI_CONFIG, "digest": config_digest, "size": config_size},
            "layers": layers,
        });
        let bytes =
            serde_json::to_vec(&manifest).map_err(|e| LoadError::Runtime(format!("encoding a manifest: {e}")))?;
        out.push((names, bytes));
    }
    if out.is_empty() {
        return Err(LoadError::BadArchive(
            "the archive names no image (every RepoTags in manifest.json is empty); give it a name \
             (rkubectl image load --name, or ?name=)"
                .into(),
        ));
    }
    Ok(out)
}

/// The repository part of a normalised reference (without tag and digest).
fn repository(reference: &str) -> &str {
    let without_digest = reference.split_once('@').map_or(reference, |(n, _)| n);
    match without_digest.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => repo,
        _ => without_digest,
    }
}

/// Normalises an image reference as containerd's CRI plugin (docker's reference grammar) does:
/// `busybox` → `docker.io/library/busybox:latest`, `me/app:1` → `docker.io/me/app:1`,
/// `localhost:5000/app` → `localhost:5000/app:latest`; a digest stays, without an added tag.
pub fn normalize_reference(reference: &str) -> Result<String, String> {
    let reference = reference.trim();
    if reference.is_empty() {
        return Err("the image name is empty".into());
    }
    let (name_tag, digest) = match reference.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (reference, None),
    };
    if let Some(d) = digest
        && !valid_digest(d)
    {
        return Err(format!("invalid digest {d:?}"));
    }
    let (name, tag) = match name_tag.rsplit_once(':') {
        Some((n, t)) if !t.contains('/') => (n, Some(t)),
        _ => (name_tag, None),
    };
    if let Some(t) = tag {
        let valid = !t.is_empty()
            && t.len() <= 128
            && !t.starts_with(['.', '-'])
            && t.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
        if !valid {
            return Err(format!("invalid tag {t:?}"));
        }
    }
    let (domain, path) = match name.split_once('/') {
        Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" => {
            (first.to_string(), rest.to_string())
        }
        _ => ("docker.io".to_string(), name.to_string()),
    };
    let domain = if domain == "index.docker.io" { "docker.io".to_string() } else { domain };
    let path = if domain == "docker.io" && !path.contains('/') { format!("library/{path}") } else { path };
    if path.is_empty() {
        return Err(format!("invalid reference format: {reference:?}"));
    }
    for component in path.split('/') {
        let valid = !component.is_empty()
            && component.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
            && component.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
            && component.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'));
        if !valid {
            return Err(if component.chars().any(|c| c.is_ascii_uppercase()) {
                format!("invalid reference format: repository name must be lowercase: {reference:?}")
            } else {
                format!("invalid reference format: {reference:?}")
            });
        }
    }
    let mut out = format!("{domain}/{path}");
    match (tag, digest) {
        (Some(t), _) => out.push_str(&format!(":{t}")),
        (None, None) => out.push_str(":latest"),
        (None, Some(_)) => {}
    }
    if let Some(d) = digest {
        out.push_str(&format!("@{d}"));
    }
    Ok(out)
}

/// What checking one image's graph found: its media type, total size, and the gc labels each
/// manifest or index needs.
#[derive(Debug, Clone, Default)]
struct Checked {
    media_type: String,
    size: u64,
    labels: Vec<(String, BTreeMap<String, String>)>,
}

/// containerd's content store, for both the blocking tar reader and the async checks.
#[derive(Clone)]
struct Store {
    handle: tokio::runtime::Handle,
    content: ContentClient<Channel>,
    leases: LeasesClient<Channel>,
    lease: String,
    seq: Arc<AtomicU64>,
}

impl Store {
    /// A request in the `k8s.io` namespace under the import's lease.
    fn leased<T>(&self, msg: T) -> Result<tonic::Request<T>, LoadError> {
        let mut req = namespaced(msg);
        let lease = MetadataValue::try_from(self.lease.as_str())
            .map_err(|e| LoadError::Runtime(format!("lease id {:?}: {e}", self.lease)))?;
        req.metadata_mut().insert("containerd-lease", lease);
        Ok(req)
    }

    /// The stored size of `digest`, or None when the node lacks it.
    async fn info(&self, digest: &str) -> Result<Option<Info>, LoadError> {
        match self.content.clone().info(namespaced(InfoRequest { digest: digest.to_string() })).await {
            Ok(r) => Ok(r.into_inner().info),
            Err(s) if s.code() == tonic::Code::NotFound => Ok(None),
            Err(s) => Err(runtime(&format!("content info of {digest}"))(s)),
        }
    }

    /// Puts content the node already has under the lease, so the collector leaves it until an
    /// image refers to it.
    async fn hold(&self, digest: &str) -> Result<(), LoadError> {
        let resource = Resource { id: digest.to_string(), r#type: "content".into() };
        let req = namespaced(AddResourceRequest { id: self.lease.clone(), resource: Some(resource) });
        self.leases.clone().add_resource(req).await.map_err(runtime(&format!("leasing {digest}")))?;
        Ok(())
    }

    fn block<T>(&self, f: impl std::future::Future<Output = T>) -> T {
        self.handle.block_on(f)
    }

    /// Streams `size` bytes of `reader` (the tar entry at `what`) into the content store,
    /// hashing them; with `expected`, refuses content of another digest, and only hashes content
    /// the node already has. Returns the digest and whether the content is gzip.
    fn put(
        &self,
        reader: &mut impl Read,
        size: u64,
        expected: Option<&str>,
        what: &str,
    ) -> Result<(String, bool), LoadError> {
        let present = match expected {
            Some(d) if self.block(self.info(d))?.is_some() => {
                self.block(self.hold(d))?;
                true
            }
            _ => false,
        };
        let mut ingest = if present {
            None
        } else {
            let n = self.seq.fetch_add(1, Ordering::Relaxed);
            Some(Ingest::new(self, format!("{}-{n}", self.lease), size as i64, expected))
        };
        let result = self.copy(reader, size, expected, what, &mut ingest);
        if result.is_err()
            && let Some(i) = ingest.take()
        {
            self.block(i.abort());
        }
        result
    }

    fn copy(
        &self,
        reader: &mut impl Read,
        size: u64,
        expected: Option<&str>,
        what: &str,
        ingest: &mut Option<Ingest>,
    ) -> Result<(String, bool), LoadError> {
        let mut hasher = ring::digest::Context::new(&ring::digest::SHA256);
        let mut buf = vec![0u8; CHUNK];
        let mut done = 0u64;
        let mut gzip = false;
        loop {
            let n = read_full(reader, &mut buf).map_err(bad_read)?;
            if n == 0 {
                break;
            }
            if done == 0 {
                gzip = sniff(&buf[..n]) == Compression::Gzip;
            }
            hasher.update(&buf[..n]);
            if let Some(i) = ingest {
                let stored = self.block(i.write(buf[..n].to_vec()))?;
                if !stored {
                    // Someone else stored it meanwhile: hashing is all that is left to do.
                    *ingest = None;
                }
            }
            done += n as u64;
        }
        if done < size {
            return Err(LoadError::BadArchive(format!(
                "the archive is truncated: {what} ends after {done} of {size} bytes"
            )));
        }
        let digest = format!("sha256:{}", hex(hasher.finish().as_ref()));
        if let Some(e) = expected
            && e != digest
        {
            return Err(LoadError::BadArchive(format!(
                "{what} does not match its digest {e}: its content hashes to {digest}"
            )));
        }
        if let Some(i) = ingest.take() {
            self.block(i.commit(&digest))?;
        }
        Ok((digest, gzip))
    }

    /// Stores `bytes` (a manifest made here) under `digest`.
    async fn put_bytes(&self, bytes: &[u8], digest: &str) -> Result<(), LoadError> {
        if self.info(digest).await?.is_some() {
            return self.hold(digest).await;
        }
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        let mut ingest = Ingest::new(self, format!("{}-{n}", self.lease), bytes.len() as i64, Some(digest));
        if ingest.write(bytes.to_vec()).await? {
            ingest.commit(digest).await?;
        }
        Ok(())
    }

    /// Reads a JSON blob (a manifest or an index) of at most [`MAX_JSON`] bytes.
    async fn read_json(&self, digest: &str, size: i64) -> Result<Value, LoadError> {
        if size as u64 > MAX_JSON {
            return Err(LoadError::BadArchive(format!("{digest} is {size} bytes, too large for a manifest")));
        }
        let req = namespaced(ReadContentRequest { digest: digest.to_string(), offset: 0, size: 0 });
        let mut stream =
            self.content.clone().read(req).await.map_err(runtime(&format!("reading {digest}")))?.into_inner();
        let mut bytes = Vec::new();
        while let Some(chunk) = stream.message().await.map_err(runtime(&format!("reading {digest}")))? {
            bytes.extend_from_slice(&chunk.data);
            if bytes.len() as u64 > MAX_JSON {
                return Err(LoadError::BadArchive(format!("{digest} is too large for a manifest")));
            }
        }
        serde_json::from_slice(&bytes).map_err(|e| LoadError::BadArchive(format!("{digest} is not JSON: {e}")))
    }

    /// Checks that `d` (a manifest or an index, reached from `from`) and everything it needs is
    /// stored with the sizes the descriptors say, and works out the gc labels.
    async fn check(&self, d: &Descriptor, from: &str, depth: usize) -> Result<Checked, LoadError> {
        if depth > 4 {
            return Err(LoadError::BadArchive(format!("{from}: image indexes nest too deep")));
        }
        self.require(d, from, "manifest").await?;
        let json = self.read_json(&d.digest, d.size).await?;
        let media_type = match (d.media_type.as_str(), json["mediaType"].as_str()) {
            ("", Some(m)) | (m, _) if !m.is_empty() => m.to_string(),
            _ if json.get("manifests").is_some() => MEDIA_OCI_INDEX.to_string(),
            _ => MEDIA_OCI_MANIFEST.to_string(),
        };
        let here = format!("manifest {}", d.digest);
        match media_type.as_str() {
            MEDIA_OCI_MANIFEST | MEDIA_DOCKER_MANIFEST => {
                let m: Manifest = serde_json::from_value(json)
                    .map_err(|e| LoadError::BadArchive(format!("{here} is not an image manifest: {e}")))?;
                self.require(&m.config, &here, "config").await?;
                let mut labels = BTreeMap::from([(format!("{GC_REF}.config"), m.config.digest.clone())]);
                let mut size = d.size as u64 + m.config.size as u64;
                for (i, layer) in m.layers.iter().enumerate() {
                    self.require(layer, &here, &format!("layer {i}")).await?;
                    labels.insert(format!("{GC_REF}.l.{i}"), layer.digest.clone());
                    size += layer.size as u64;
                }
                Ok(Checked { media_type, size, labels: vec![(d.digest.clone(), labels)] })
            }
            MEDIA_OCI_INDEX | MEDIA_DOCKER_LIST => {
                let index: Index = serde_json::from_value(json)
                    .map_err(|e| LoadError::BadArchive(format!("{here} is not an image index: {e}")))?;
                let mut out = Checked { media_type, size: d.size as u64, labels: Vec::new() };
                let mut own = BTreeMap::new();
                let mut seen = HashSet::new();
                for (i, child) in index.manifests.iter().enumerate() {
                    if !valid_digest(&child.digest) {
                        return Err(LoadError::BadArchive(format!(
                            "{here} lists an invalid digest {:?}",
                            child.digest
                        )));
                    }
                    // An archive of one platform of a multi-platform image has only that one's manifest.
                    if self.info(&child.digest).await?.is_none() || !seen.insert(child.digest.clone()) {
                        continue;
                    }
                    let c = Box::pin(self.check(child, &here, depth + 1)).await?;
                    own.insert(format!("{GC_REF}.m.{i}"), child.digest.clone());
                    out.size += c.size;
                    out.labels.extend(c.labels);
                }
                if own.is_empty() {
                    return Err(LoadError::BadArchive(format!(
                        "{here} is an index, but none of the manifests it lists is in the archive or on the node"
                    )));
                }
                out.labels.push((d.digest.clone(), own));
                Ok(out)
            }
            other => Err(LoadError::Unsupported(format!("{here} has media type {other}, which cannot be loaded"))),
        }
    }

    /// Refuses a blob that is missing or of another size than its descriptor says.
    async fn require(&self, d: &Descriptor, from: &str, what: &str) -> Result<(), LoadError> {
        if !valid_digest(&d.digest) {
            return Err(LoadError::BadArchive(format!("{from} lists {what} with invalid digest {:?}", d.digest)));
        }
        match self.info(&d.digest).await? {
            None => Err(LoadError::BadArchive(format!(
                "{from} lists {what} {}, which is neither in the archive nor on the node",
                d.digest
            ))),
            Some(info) if info.size != d.size => Err(LoadError::BadArchive(format!(
                "{from} lists {what} {} of {} bytes, but it has {}",
                d.digest, d.size, info.size
            ))),
            Some(_) => Ok(()),
        }
    }

    /// Sets gc labels on a stored blob, leaving its other labels alone.
    async fn set_labels(&self, digest: &str, labels: &BTreeMap<String, String>) -> Result<(), LoadError> {
        let info = Info {
            digest: digest.to_string(),
            labels: labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            ..Default::default()
        };
        let mut req = UpdateContentRequest { info: Some(info), ..Default::default() };
        let mut mask = req.update_mask.take().unwrap_or_default();
        mask.paths = labels.keys().map(|k| format!("labels.{k}")).collect();
        req.update_mask = Some(mask);
        self.content.clone().update(namespaced(req)).await.map_err(runtime(&format!("labelling {digest}")))?;
        Ok(())
    }
}

/// One Content.Write stream, used in lock-step: each message is answered before the next goes.
struct Ingest {
    store: Store,
    r#ref: String,
    total: i64,
    expected: String,
    offset: i64,
    tx: Option<mpsc::Sender<WriteContentRequest>>,
    responses: Option<tonic::Streaming<WriteContentResponse>>,
}

impl Ingest {
    fn new(store: &Store, r#ref: String, total: i64, expected: Option<&str>) -> Ingest {
        Ingest {
            store: store.clone(),
            r#ref,
            total,
            expected: expected.unwrap_or_default().to_string(),
            offset: 0,
            tx: None,
            responses: None,
        }
    }

    /// Sends one message and waits for its answer; false when the content already exists.
    async fn exchange(&mut self, msg: WriteContentRequest) -> Result<bool, LoadError> {
        let failed = runtime("writing content");
        if let Some(tx) = &self.tx {
            if tx.send(msg).await.is_err() {
                // The stream ended; its status says why.
                return match self.responses.as_mut() {
                    Some(r) => match r.message().await {
                        Err(s) if s.code() == tonic::Code::AlreadyExists => Ok(false),
                        Err(s) => Err(failed(s)),
                        Ok(_) => Err(LoadError::Runtime("containerd closed the content write".into())),
                    },
                    None => Err(LoadError::Runtime("containerd closed the content write".into())),
                };
            }
        } else {
            // The call answers (with headers) only once the first message is processed, so that
            // message must be queued before the call is awaited.
            let (tx, rx) = mpsc::channel(2);
            let _ = tx.send(msg).await;
            self.tx = Some(tx);
            let req = self.store.leased(tokio_stream::wrappers::ReceiverStream::new(rx))?;
            match self.store.content.clone().write(req).await {
                Ok(r) => self.responses = Some(r.into_inner()),
                Err(s) if s.code() == tonic::Code::AlreadyExists => return Ok(false),
                Err(s) => return Err(failed(s)),
            }
        }
        let Some(responses) = self.responses.as_mut() else {
            return Err(LoadError::Runtime("no content write stream".into()));
        };
        match responses.message().await {
            Ok(Some(_)) => Ok(true),
            Ok(None) => Err(LoadError::Runtime("containerd ended the content write early".into())),
            Err(s) if s.code() == tonic::Code::AlreadyExists => Ok(false),
            Err(s) => Err(failed(s)),
        }
    }

    /// Appends `data`; false when the content turned out to exist already.
    async fn write(&mut self, data: Vec<u8>) -> Result<bool, LoadError> {
        let len = data.len() as i64;
        let msg = WriteContentRequest {
            action: WriteAction::Write as i32,
            r#ref: self.r#ref.clone(),
            total: self.total,
            expected: self.expected.clone(),
            offset: self.offset,
            data,
            labels: HashMap::new(),
        };
        let stored = self.exchange(msg).await?;
        self.offset += len;
        Ok(stored)
    }

    /// Commits what was written as `digest`; content that already exists counts as committed.
    async fn commit(mut self, digest: &str) -> Result<(), LoadError> {
        let msg = WriteContentRequest {
            action: WriteAction::Commit as i32,
            r#ref: self.r#ref.clone(),
            total: self.offset,
            expected: digest.to_string(),
            offset: self.offset,
            data: Vec::new(),
            labels: HashMap::new(),
        };
        self.exchange(msg).await?;
        Ok(())
    }

    /// Drops what was written.
    async fn abort(self) {
        let Ingest { store, r#ref, tx, responses, .. } = self;
        // Ending the stream first releases containerd's lock on the ref.
        drop((tx, responses));
        let req = namespaced(AbortRequest { r#ref: r#ref.clone() });
        if let Err(s) = store.content.clone().abort(req).await
            && s.code() != tonic::Code::NotFound
        {
            tracing::debug!(r#ref = %r#ref, error = %s, "aborting a content write failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_normalised_like_containerd() {
        let n = |r: &str| normalize_reference(r);
        assert_eq!(n("busybox").unwrap(), "docker.io/library/busybox:latest");
        assert_eq!(n("busybox:1").unwrap(), "docker.io/library/busybox:1");
        assert_eq!(n("rkube/busybox").unwrap(), "docker.io/rkube/busybox:latest");
        assert_eq!(n("docker.io/rkube/loaded:v1").unwrap(), "docker.io/rkube/loaded:v1");
        assert_eq!(n("index.docker.io/busybox:1").unwrap(), "docker.io/library/busybox:1");
        assert_eq!(n("localhost:5000/app").unwrap(), "localhost:5000/app:latest");
        assert_eq!(n("localhost/app:2").unwrap(), "localhost/app:2");
        assert_eq!(n("127.0.0.1:5000/rkube/pause:3.9").unwrap(), "127.0.0.1:5000/rkube/pause:3.9");
        let digest = format!("sha256:{}", "a".repeat(64));
        assert_eq!(n(&format!("busybox@{digest}")).unwrap(), format!("docker.io/library/busybox@{digest}"));
        assert_eq!(n(&format!("busybox:1@{digest}")).unwrap(), format!("docker.io/library/busybox:1@{digest}"));
        assert!(n("Busybox").unwrap_err().contains("must be lowercase"));
        assert!(n("").is_err());
        assert!(n("busybox:").is_err());
        assert!(n("busybox:bad/tag!").is_err());
        assert!(n("busybox@sha256:short").is_err());
        assert!(n("a//b").is_err());
        assert_eq!(repository("docker.io/library/busybox:1"), "docker.io/library/busybox");
        assert_eq!(repository("localhost:5000/app"), "localhost:5000/app");
    }

    fn index(entries: &[&[(&str, &str)]]) -> Vec<u8> {
        let manifests: Vec<Value> = entries
            .iter()
            .enumerate()
            .map(|(i, annotations)| {
                let annotations: BTreeMap<&str, &str> = annotations.iter().copied().collect();
                serde_json::json!({
                    "mediaType": MEDIA_OCI_MANIFEST,
                    "digest": format!("sha256:{}", format!("{i}").repeat(64)),
                    "size": 405,
                    "annotations": annotations,
                })
            })
            .collect();
        serde_json::to_vec(&serde_json::json!({"schemaVersion": 2, "manifests": manifests})).unwrap()
    }

    fn names(targets: Result<Vec<(String, Descriptor)>, LoadError>) -> Result<Vec<String>, String> {
        targets.map(|t| t.into_iter().map(|(n, _)| n).collect()).map_err(|e| e.to_string())
    }

    #[test]
    fn index_entries_are_named_like_containerd_import() {
        // Our test images: a tag in ref.name, the full name in io.containerd.image.name.
        let busybox =
            index(&[&[(ANNOTATION_IMAGE_NAME, "docker.io/rkube/busybox:latest"), (ANNOTATION_REF_NAME, "latest")]]);
        assert_eq!(names(oci_targets(&busybox, None)).unwrap(), ["docker.io/rkube/busybox:latest"]);
        // A full ref.name wins over io.containerd.image.name (a renamed copy).
        let renamed = index(&[&[
            (ANNOTATION_IMAGE_NAME, "docker.io/rkube/busybox:latest"),
            (ANNOTATION_REF_NAME, "docker.io/rkube/loaded:v1"),
        ]]);
        assert_eq!(names(oci_targets(&renamed, None)).unwrap(), ["docker.io/rkube/loaded:v1"]);
        // A tag goes with the image name's repository.
        let tagged = index(&[&[(ANNOTATION_IMAGE_NAME, "busybox:1"), (ANNOTATION_REF_NAME, "1.36")]]);
        assert_eq!(names(oci_targets(&tagged, None)).unwrap(), ["docker.io/library/busybox:1.36"]);
        // skopeo's `oci-archive:f.tar:app:1` and docker 25's save.
        let skopeo = index(&[&[(ANNOTATION_REF_NAME, "app:1")], &[(ANNOTATION_REF_NAME, "quay.io/x/y:2")]]);
        assert_eq!(names(oci_targets(&skopeo, None)).unwrap(), ["docker.io/library/app:1", "quay.io/x/y:2"]);
        // A bare tag without a repository cannot name an image.
        let bare = index(&[&[(ANNOTATION_REF_NAME, "latest")]]);
        assert!(names(oci_targets(&bare, None)).unwrap_err().contains("names no repository"));
        assert_eq!(names(oci_targets(&bare, Some("docker.io/me/app:3"))).unwrap(), ["docker.io/me/app:3"]);
        // Nothing named at all: the error says how to name it.
        let unnamed = index(&[&[]]);
        assert!(names(oci_targets(&unnamed, None)).unwrap_err().contains("--name"));
        // A name for several images is refused.
        let two = index(&[&[], &[]]);
        let err = oci_targets(&two, Some("docker.io/me/app:3")).unwrap_err();
        assert!(matches!(err, LoadError::BadRequest(_)), "{err}");
        // Broken index.json files.
        assert!(names(oci_targets(b"{", None)).unwrap_err().contains("not an OCI image index"));
        assert!(names(oci_targets(br#"{"manifests":[]}"#, None)).unwrap_err().contains("no manifests"));
        let bad_digest = br#"{"manifests":[{"digest":"sha256:xyz","size":1}]}"#;
        assert!(names(oci_targets(bad_digest, None)).unwrap_err().contains("invalid digest"));
        let bad_name = index(&[&[(ANNOTATION_REF_NAME, "Docker.io/UPPER:1")]]);
        assert!(names(oci_targets(&bad_name, None)).unwrap_err().contains("lowercase"));
    }

    #[test]
    fn archive_paths_are_classified() {
        let hex = "ab".repeat(32);
        assert_eq!(classify("index.json").unwrap(), EntryKind::Index);
        assert_eq!(classify("manifest.json").unwrap(), EntryKind::DockerManifest);
        assert_eq!(classify("oci-layout").unwrap(), EntryKind::Layout);
        assert_eq!(classify(&format!("blobs/sha256/{hex}")).unwrap(), EntryKind::Blob(format!("sha256:{hex}")));
        assert!(matches!(classify(&format!("blobs/sha512/{hex}")), Err(LoadError::Unsupported(_))));
        assert!(matches!(classify("blobs/sha256/nothex"), Err(LoadError::BadArchive(_))));
        assert_eq!(classify("0123abcd.json").unwrap(), EntryKind::File);
        assert_eq!(classify("0123abcd/layer.tar").unwrap(), EntryKind::File);
        assert_eq!(classify("0123abcd/VERSION").unwrap(), EntryKind::Skip);
        assert_eq!(classify("repositories").unwrap(), EntryKind::Skip);
        assert_eq!(clean_path("./blobs/sha256/x"), "blobs/sha256/x");
        assert_eq!(clean_path("/a/b/../c/./d"), "a/c/d");
    }

    #[test]
    fn compression_is_sniffed() {
        assert_eq!(sniff(&[0x1f, 0x8b, 8, 0]), Compression::Gzip);
        assert_eq!(sniff(b"oci-layout\0"), Compression::None);
        assert_eq!(sniff(&[0x28, 0xb5, 0x2f, 0xfd]), Compression::Other("zstd"));
        assert_eq!(sniff(b"BZh9"), Compression::Other("bzip2"));
        assert_eq!(sniff(&[0xfd, b'7', b'z', b'X', b'Z', 0]), Compression::Other("xz"));
        assert_eq!(sniff(&[]), Compression::None);
    }

    #[test]
    fn docker_save_entries_become_oci_manifests() {
        let config = format!("sha256:{}", "c".repeat(64));
        let layer = format!("sha256:{}", "d".repeat(64));
        let mut scan = Scan::default();
        scan.files.insert("cfg.json".into(), (config.clone(), 100, false));
        scan.files.insert("aaa/layer.tar".into(), (layer.clone(), 2048, false));
        // Legacy docker saves link a repeated layer to its first copy.
        scan.links.insert("bbb/layer.tar".into(), "aaa/layer.tar".into());
        let manifest = br#"[{"Config":"cfg.json","RepoTags":["busybox:1","me/app"],"Layers":["aaa/layer.tar","./bbb/layer.tar"]}]"#;
        let plan = docker_plan(manifest, &scan, None).unwrap();
        assert_eq!(plan.len(), 1);
        assert_eq!(plan[0].0, ["docker.io/library/busybox:1", "docker.io/me/app:latest"]);
        let m: Value = serde_json::from_slice(&plan[0].1).unwrap();
        assert_eq!(m["mediaType"], MEDIA_OCI_MANIFEST);
        assert_eq!(m["config"]["digest"], config.as_str());
        assert_eq!(m["config"]["size"], 100);
        assert_eq!(m["layers"][0]["mediaType"], MEDIA_OCI_LAYER);
        assert_eq!(m["layers"][1]["digest"], layer.as_str());
        // --name replaces the tags; a missing layer is named.
        let plan = docker_plan(manifest, &scan, Some("docker.io/x/y:z")).unwrap();
        assert_eq!(plan[0].0, ["docker.io/x/y:z"]);
        let missing = br#"[{"Config":"cfg.json","RepoTags":["a:1"],"Layers":["zzz/layer.tar"]}]"#;
        let err = docker_plan(missing, &scan, None).unwrap_err().to_string();
        assert!(err.contains("zzz/layer.tar, which is not in the archive"), "{err}");
        let untagged = br#"[{"Config":"cfg.json","RepoTags":null,"Layers":[]}]"#;
        assert!(docker_plan(untagged, &scan, None).unwrap_err().to_string().contains("--name"));
    }

    /// Real containerd: what the endpoint does over HTTP, bad archives included.
    mod containerd {
        use super::*;
        use rkube_testkit::Containerd;
        use std::io::Write as _;

        fn tar_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
            let mut b = tar::Builder::new(Vec::new());
            for (path, data) in entries {
                let mut h = tar::Header::new_ustar();
                h.set_size(data.len() as u64);
                h.set_mode(0o644);
                h.set_entry_type(tar::EntryType::Regular);
                b.append_data(&mut h, path, *data).expect("tar entry");
            }
            b.into_inner().expect("tar")
        }

        fn gzip(data: &[u8]) -> Vec<u8> {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(data).expect("gzip");
            e.finish().expect("gzip")
        }

        fn arch() -> &'static str {
            match std::env::consts::ARCH {
                "aarch64" => "arm64",
                _ => "amd64",
            }
        }

        /// A one-layer image whose layer holds `payload`: (config, layer, manifest) blobs.
        struct TestImage {
            config: (String, Vec<u8>),
            layer: (String, Vec<u8>),
            manifest: (String, Vec<u8>),
        }

        fn test_image(payload: &[u8]) -> TestImage {
            let layer_tar = tar_of(&[("hello.txt", payload)]);
            let layer = gzip(&layer_tar);
            let config = serde_json::to_vec(&serde_json::json!({
                "architecture": arch(), "os": "linux", "config": {"Cmd": ["/hello.txt"]},
                "rootfs": {"type": "layers", "diff_ids": [sha256_digest(&layer_tar)]},
            }))
            .expect("config");
            let manifest = serde_json::to_vec(&serde_json::json!({
                "schemaVersion": 2, "mediaType": MEDIA_OCI_MANIFEST,
                "config": {"mediaType": MEDIA_OCI_CONFIG, "digest": sha256_digest(&config), "size": config.len()},
                "layers": [{"mediaType": MEDIA_OCI_LAYER_GZIP, "digest": sha256_digest(&layer), "size": layer.len()}],
            }))
            .expect("manifest");
            TestImage {
                config: (sha256_digest(&config), config),
                layer: (sha256_digest(&layer), layer),
                manifest: (sha256_digest(&manifest), manifest),
            }
        }

        /// An OCI layout tar of `image` named `ref_name`, without the blobs in `omit`.
        fn oci_archive(image: &TestImage, ref_name: &str, omit: &[&str]) -> Vec<u8> {
            let index = serde_json::to_vec(&serde_json::json!({
                "schemaVersion": 2, "mediaType": MEDIA_OCI_INDEX,
                "manifests": [{"mediaType": MEDIA_OCI_MANIFEST, "digest": image.manifest.0,
                    "size": image.manifest.1.len(), "annotations": {ANNOTATION_REF_NAME: ref_name}}],
            }))
            .expect("index");
            let paths: Vec<(String, &[u8])> = [&image.layer, &image.config, &image.manifest]
                .into_iter()
                .filter(|(d, _)| !omit.contains(&d.as_str()))
                .map(|(d, b)| (format!("blobs/sha256/{}", &d["sha256:".len()..]), b.as_slice()))
                .collect();
            let mut entries: Vec<(&str, &[u8])> = vec![("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)];
            entries.extend(paths.iter().map(|(p, b)| (p.as_str(), *b)));
            entries.push(("index.json", &index));
            tar_of(&entries)
        }

        struct Node {
            containerd: Containerd,
            rt: tokio::runtime::Runtime,
            cri: Cri,
            loader: ImageLoader,
            url: String,
            _token: tokio_util::sync::CancellationToken,
        }

        impl Node {
            fn start() -> Node {
                let containerd = Containerd::start().expect("containerd starts");
                let rt =
                    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("rt");
                let (cri, loader) = rt.block_on(async {
                    let cri = Cri::connect(&containerd.endpoint()).expect("CRI");
                    let loader = ImageLoader::connect(&containerd.endpoint(), cri.clone()).expect("loader");
                    (cri, loader)
                });
                let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).expect("bind");
                let url = format!("http://{}/images/load", listener.local_addr().expect("address"));
                let token = tokio_util::sync::CancellationToken::new();
                rt.spawn(crate::server::serve_app(
                    listener,
                    router(loader.clone()),
                    None,
                    crate::server::Access::Open,
                    token.clone(),
                ));
                Node { containerd, rt, cri, loader, url, _token: token }
            }

            /// POSTs `archive` in small chunks (so entries straddle them): (status, body).
            fn post(&self, archive: Vec<u8>, query: &str) -> (u16, Value) {
                let url = format!("{}{query}", self.url);
                self.rt.block_on(async move {
                    let chunks: Vec<Result<Bytes, io::Error>> =
                        archive.chunks(7001).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
                    let body = reqwest::Body::wrap_stream(futures::stream::iter(chunks));
                    let resp = reqwest::Client::new().post(&url).body(body).send().await.expect("POST");
                    let code = resp.status().as_u16();
                    (code, resp.json::<Value>().await.unwrap_or(Value::Null))
                })
            }

            fn images(&self) -> String {
                self.containerd.ctr(&["images", "ls", "-q"]).expect("ctr images ls")
            }

            fn refused(&self, archive: Vec<u8>, code: u16, message: &str, absent: &str) {
                let before = self.images();
                let (got, body) = self.post(archive, "");
                assert_eq!(got, code, "{body}");
                assert_eq!(body["kind"], "Status", "{body}");
                let text = body["message"].as_str().unwrap_or_default();
                assert!(text.contains(message), "{text:?} lacks {message:?}");
                assert!(absent.is_empty() || !self.images().contains(absent), "{absent} was created");
                assert_eq!(self.images(), before);
                // No write is left half-done in the ingest area.
                let active = self.containerd.ctr(&["content", "active"]).expect("ctr content active");
                assert_eq!(active.lines().count(), 1, "{active}");
            }

            /// Runs containerd's garbage collector now (a lease deleted synchronously does).
            fn collect_garbage(&self) {
                self.rt.block_on(async {
                    let mut leases = LeasesClient::new(self.loader.channel.clone());
                    let id = "rkube-test-gc".to_string();
                    leases
                        .create(namespaced(CreateLeaseRequest { id: id.clone(), labels: HashMap::new() }))
                        .await
                        .expect("lease");
                    leases.delete(namespaced(DeleteLeaseRequest { id, sync: true })).await.expect("gc");
                });
            }
        }

        #[test]
        fn archives_load_into_containerd_and_bad_ones_leave_nothing() {
            let node = Node::start();
            let image = test_image(format!("hello {}\n", rand::random::<u64>()).as_bytes());

            // A gzip-compressed OCI layout, named by a full ref.name.
            let archive = oci_archive(&image, "docker.io/rkube/unit:v1", &[]);
            let (code, body) = node.post(gzip(&archive), "");
            assert_eq!(code, 200, "{body}");
            let size = image.manifest.1.len() + image.config.1.len() + image.layer.1.len();
            assert_eq!(
                body,
                serde_json::json!({"images": [{"name": "docker.io/rkube/unit:v1", "digest": image.manifest.0, "size": size}]})
            );
            assert!(node.images().lines().any(|l| l == "docker.io/rkube/unit:v1"), "{}", node.images());
            let cri_image = node.rt.block_on(node.cri.image_status("docker.io/rkube/unit:v1")).expect("CRI");
            assert_eq!(cri_image.map(|i| i.id), Some(image.config.0.clone()));
            // The lease is gone, and the collector keeps every blob: the gc labels lead to them.
            assert!(!node.containerd.ctr(&["leases", "ls"]).expect("leases").contains("rkube-image-load"));
            node.collect_garbage();
            let content = node.containerd.ctr(&["content", "ls", "-q"]).expect("content ls");
            for digest in [&image.manifest.0, &image.config.0, &image.layer.0] {
                assert!(content.contains(digest.as_str()), "{digest} was collected");
            }

            // Again, uncompressed, under another name given in the query: every blob is present.
            let (code, body) = node.post(archive.clone(), "?name=me/again:2");
            assert_eq!(code, 200, "{body}");
            assert_eq!(body["images"][0]["name"], "docker.io/me/again:2");
            assert!(node.images().contains("docker.io/me/again:2"));

            // Bad archives: each refused with a clear message, no image record made.
            let bad = test_image(format!("bad {}\n", rand::random::<u64>()).as_bytes());
            let mut corrupt = oci_archive(&bad, "docker.io/rkube/corrupt:v1", &[]);
            let at = corrupt.windows(5).position(|w| w == b"hello").or_else(|| {
                // The config names the file; flip a byte of it.
                corrupt.windows(9).position(|w| w == b"hello.txt")
            });
            let at = at.expect("config in the archive");
            corrupt[at] = b'j';
            node.refused(corrupt, 400, "does not match its digest", "corrupt");

            let whole = oci_archive(&bad, "docker.io/rkube/truncated:v1", &[]);
            let cut = whole[..whole.len() / 2].to_vec();
            node.refused(cut, 400, "truncated", "truncated");
            let cut_gzip = gzip(&whole);
            node.refused(cut_gzip[..cut_gzip.len() - 40].to_vec(), 400, "", "truncated");

            let no_layer = oci_archive(&bad, "docker.io/rkube/nolayer:v1", &[&bad.layer.0]);
            node.refused(no_layer, 400, "neither in the archive nor on the node", "nolayer");

            let no_index = tar_of(&[("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)]);
            node.refused(no_index, 400, "no index.json", "");
            node.refused(b"not a tar at all, clearly".repeat(100), 400, "reading the archive", "");
            node.refused(vec![0x28, 0xb5, 0x2f, 0xfd, 0, 0, 0, 0], 415, "zstd", "");
            node.refused(Vec::new(), 400, "empty", "");

            // A docker save archive: manifest.json, the config and an uncompressed layer.
            let layer_tar = tar_of(&[("hi.txt", format!("hi {}\n", rand::random::<u64>()).as_bytes())]);
            let config = serde_json::to_vec(&serde_json::json!({
                "architecture": arch(), "os": "linux", "config": {"Cmd": ["/hi.txt"]},
                "rootfs": {"type": "layers", "diff_ids": [sha256_digest(&layer_tar)]},
            }))
            .expect("config");
            let config_name = format!("{}.json", &sha256_digest(&config)["sha256:".len()..]);
            let manifest = serde_json::to_vec(&serde_json::json!([
                {"Config": config_name, "RepoTags": ["dockersave:1"], "Layers": ["abc/layer.tar"]}
            ]))
            .expect("manifest.json");
            let docker = tar_of(&[
                ("abc/VERSION", b"1.0"),
                ("abc/layer.tar", &layer_tar),
                (&config_name, &config),
                ("manifest.json", &manifest),
                ("repositories", b"{}"),
            ]);
            let (code, body) = node.post(docker, "");
            assert_eq!(code, 200, "{body}");
            assert_eq!(body["images"][0]["name"], "docker.io/library/dockersave:1");
            let cri_image = node.rt.block_on(node.cri.image_status("docker.io/library/dockersave:1")).expect("CRI");
            assert_eq!(cri_image.map(|i| i.id), Some(sha256_digest(&config)));
        }
    }
}
