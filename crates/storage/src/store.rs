//! The etcd layer: every write is a single-round-trip transaction guarded by a revision
//! compare, which is what gives the API server optimistic concurrency.

use std::future::Future;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, GetOptions, KvClient, MaintenanceClient, PutOptions, SortOrder,
    SortTarget, Txn, TxnOp, TxnOpResponse, WatchClient, WatchOptions,
};
use tonic::Code;

use crate::error::{Result, StorageError};
use crate::transform::Transformer;

/// Per-request deadline; a hung etcd must surface as `Unavailable`, not a stuck request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Defragmentation rewrites the whole bbolt file, so it gets a much longer deadline.
const DEFRAG_TIMEOUT: Duration = Duration::from_secs(120);
/// Large lists and watch batches easily exceed tonic's 4 MiB default.
pub(crate) const MAX_MESSAGE_BYTES: usize = 512 << 20;

/// One key as stored in etcd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    /// Full etcd key, e.g. `/registry/core/pods/default/web-0`.
    pub key: String,
    /// The stored value, after the key's transformer (decryption) if one is configured.
    pub value: Bytes,
    /// Revision of the last write to this key (the object's resourceVersion).
    pub mod_revision: i64,
    /// Revision at which the key was created.
    pub create_revision: i64,
}

impl KeyValue {
    fn from_etcd(kv: etcd_client::KeyValue) -> KeyValue {
        let mod_revision = kv.mod_revision();
        let create_revision = kv.create_revision();
        let (key, value) = kv.into_key_value();
        KeyValue {
            // Keys are always written by us as UTF-8; lossy keeps a foreign key visible
            // instead of failing a whole list over it.
            key: String::from_utf8(key).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
            value: Bytes::from(value),
            mod_revision,
            create_revision,
        }
    }
}

/// One page of a range read.
#[derive(Debug, Clone)]
pub struct ListPage {
    /// Items in key order.
    pub items: Vec<KeyValue>,
    /// The revision the page was read at; pass it back to read the next page consistently.
    pub revision: i64,
    /// Whether more keys exist after the last item.
    pub more: bool,
}

/// Backend size as reported by etcd's status call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DbStatus {
    /// Physical size of the database file.
    pub db_size: i64,
    /// Bytes actually holding data; the difference to `db_size` is reclaimable by defrag.
    pub db_size_in_use: i64,
}

/// Handle to etcd. Cheap to clone: clones share one HTTP/2 channel, which reconnects on its
/// own after etcd restarts, so a `Store` never has to be rebuilt.
#[derive(Clone)]
pub struct Store {
    client: Client,
    expiry: Arc<Expiry>,
    transforms: Arc<Transforms>,
}

/// Key prefixes whose values pass through a transformer (encryption at rest).
type Transforms = RwLock<Vec<(String, Arc<dyn Transformer>)>>;

/// Writes share one etcd lease for up to this share of the TTL (at most a minute), so an
/// expiring key costs no LeaseGrant of its own; the shared lease lives that much longer.
fn lease_reuse(ttl: Duration) -> Duration {
    (ttl / 20).min(Duration::from_secs(60))
}

/// Key prefixes whose keys expire (Kubernetes' `--event-ttl`), and the lease being shared.
#[derive(Default)]
struct Expiry {
    rules: Mutex<Vec<(String, Duration)>>,
    /// ttl -> (lease id, when it was granted).
    current: Mutex<Vec<(Duration, i64, Instant)>>,
}

/// PEM material for reaching etcd over TLS.
#[derive(Clone, Default)]
pub struct EtcdTls {
    /// CA bundle etcd's serving certificate must chain to.
    pub ca_pem: Vec<u8>,
    /// Client certificate, when etcd requires one.
    pub cert_pem: Option<Vec<u8>>,
    /// Its private key.
    pub key_pem: Option<Vec<u8>>,
}

impl std::fmt::Debug for EtcdTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdTls").field("client_certificate", &self.cert_pem.is_some()).finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

impl Store {
    /// Connects to etcd and checks it answers, so a wrong endpoint fails at startup
    /// rather than on the first request.
    pub async fn connect(endpoints: &[String]) -> Result<Store> {
        Store::connect_with(endpoints, None).await
    }

    /// [`Store::connect`] over TLS when `tls` is given: etcd's certificate is checked against
    /// its CA and this client presents its certificate (etcd's `--client-cert-auth`).
    pub async fn connect_with(endpoints: &[String], tls: Option<&EtcdTls>) -> Result<Store> {
        let mut opts = ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(5))
            // HTTP/2 pings detect a silently dead peer on long-lived watch streams, which
            // otherwise would never see an error and stall the cache forever.
            .with_keep_alive(Duration::from_secs(10), Duration::from_secs(5))
            .with_keep_alive_while_idle(true);
        if let Some(tls) = tls {
            let mut options =
                etcd_client::TlsOptions::new().ca_certificate(etcd_client::Certificate::from_pem(&tls.ca_pem));
            if let (Some(cert), Some(key)) = (&tls.cert_pem, &tls.key_pem) {
                options = options.identity(etcd_client::Identity::from_pem(cert, key));
            }
            opts = opts.with_tls(options);
        }
        let client = timed("connect", REQUEST_TIMEOUT, Client::connect(endpoints, Some(opts))).await?;
        let store = Store { client, expiry: Arc::default(), transforms: Arc::default() };
        store.current_revision().await?;
        tracing::info!(?endpoints, "connected to etcd");
        Ok(store)
    }

    fn kv(&self) -> KvClient {
        self.client.kv_client().max_decoding_message_size(MAX_MESSAGE_BYTES)
    }

    fn maintenance(&self) -> MaintenanceClient {
        self.client.maintenance_client()
    }

    pub(crate) fn watch_client(&self) -> WatchClient {
        self.client.watch_client().max_decoding_message_size(MAX_MESSAGE_BYTES)
    }

    /// Makes every key under `prefix` expire `ttl` after its last write (up to 5% later), as
    /// Kubernetes does for Events: they are attached to a shared etcd lease.
    pub fn expire_under(&self, prefix: &str, ttl: Duration) {
        let mut rules = self.expiry.rules.lock().unwrap_or_else(|e| e.into_inner());
        rules.retain(|(p, _)| p != prefix);
        rules.push((prefix.to_string(), ttl));
    }

    /// Makes every value under `prefix` pass through `transformer` on its way to etcd and
    /// back (encryption at rest). Reads, lists, CAS conflicts and the watch cache all see the
    /// plaintext; etcd sees only what the transformer writes. The longest matching prefix wins.
    pub fn transform_under(&self, prefix: &str, transformer: Arc<dyn Transformer>) {
        let mut t = self.transforms.write().unwrap_or_else(|e| e.into_inner());
        t.retain(|(p, _)| p != prefix);
        t.push((prefix.to_string(), transformer));
    }

    fn transformer_for(&self, key: &str) -> Option<Arc<dyn Transformer>> {
        let t = self.transforms.read().unwrap_or_else(|e| e.into_inner());
        t.iter().filter(|(p, _)| key.starts_with(p.as_str())).max_by_key(|(p, _)| p.len()).map(|(_, t)| t.clone())
    }

    /// The bytes etcd should hold for `value` at `key`.
    fn encode_value(&self, key: &str, value: Vec<u8>) -> Result<Vec<u8>> {
        match self.transformer_for(key) {
            Some(t) => t
                .transform_to_storage(key, &value)
                .map_err(|e| StorageError::Transform { key: key.to_string(), reason: e.to_string() }),
            None => Ok(value),
        }
    }

    /// The plaintext of a value read from etcd at `key`.
    pub(crate) fn decode_value(&self, key: &str, stored: Bytes) -> Result<Bytes> {
        match self.transformer_for(key) {
            Some(t) => t.transform_from_storage(key, &stored).map(Bytes::from).map_err(|e| {
                tracing::error!(key, error = %e, "stored value cannot be read");
                StorageError::Transform { key: key.to_string(), reason: e.to_string() }
            }),
            None => Ok(stored),
        }
    }

    /// `kv` with its value turned back into plaintext.
    fn decoded(&self, mut kv: KeyValue) -> Result<KeyValue> {
        kv.value = self.decode_value(&kv.key, kv.value)?;
        Ok(kv)
    }

    /// The put options of a write of `key`: a lease when the key expires.
    async fn put_options(&self, key: &str) -> Result<Option<PutOptions>> {
        let ttl = {
            let rules = self.expiry.rules.lock().unwrap_or_else(|e| e.into_inner());
            rules.iter().find(|(p, _)| key.starts_with(p.as_str())).map(|(_, ttl)| *ttl)
        };
        let Some(ttl) = ttl else { return Ok(None) };
        let reusable = {
            let current = self.expiry.current.lock().unwrap_or_else(|e| e.into_inner());
            current.iter().find(|(t, _, at)| *t == ttl && at.elapsed() < lease_reuse(ttl)).map(|(_, id, _)| *id)
        };
        let id = match reusable {
            Some(id) => id,
            None => {
                let seconds = i64::try_from((ttl + lease_reuse(ttl)).as_secs_f64().ceil() as u64).unwrap_or(i64::MAX);
                let mut lease = self.client.lease_client();
                let granted = timed("lease grant", REQUEST_TIMEOUT, lease.grant(seconds, None)).await?;
                let mut current = self.expiry.current.lock().unwrap_or_else(|e| e.into_inner());
                current.retain(|(t, _, _)| *t != ttl);
                current.push((ttl, granted.id(), Instant::now()));
                granted.id()
            }
        };
        Ok(Some(PutOptions::new().with_lease(id)))
    }

    /// Creates `key` only if it does not exist. Returns the revision of the write.
    pub async fn create(&self, key: &str, value: Vec<u8>) -> Result<i64> {
        let value = self.encode_value(key, value)?;
        let put = self.put_options(key).await?;
        let txn = Txn::new()
            .when([Compare::create_revision(key, CompareOp::Equal, 0)])
            .and_then([TxnOp::put(key, value, put)]);
        let resp = timed("create", REQUEST_TIMEOUT, self.kv().txn(txn)).await?;
        if !resp.succeeded() {
            return Err(StorageError::AlreadyExists { key: key.to_string() });
        }
        header_revision(resp.header())
    }

    /// Reads the latest value of `key`.
    pub async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        self.get_at(key, 0).await
    }

    /// Reads `key` as of `revision` (0 = latest); a compacted revision gives `Expired`.
    pub async fn get_at(&self, key: &str, revision: i64) -> Result<Option<KeyValue>> {
        let opts = GetOptions::new().with_revision(revision);
        let r = timed("get", REQUEST_TIMEOUT, self.kv().get(key, Some(opts))).await;
        let mut resp = self.fill_expired(r, revision).await?;
        resp.take_kvs().into_iter().next().map(|kv| self.decoded(KeyValue::from_etcd(kv))).transpose()
    }

    /// Replaces `key` only if its mod revision is still `expected_mod_revision`.
    /// Returns the revision of the write.
    pub async fn update(&self, key: &str, value: Vec<u8>, expected_mod_revision: i64) -> Result<i64> {
        let value = self.encode_value(key, value)?;
        // A put without a lease would detach the key from its lease, so updates renew it.
        let put = self.put_options(key).await?;
        let txn = Txn::new()
            .when([Compare::mod_revision(key, CompareOp::Equal, expected_mod_revision)])
            .and_then([TxnOp::put(key, value, put)])
            .or_else([TxnOp::get(key, None)]);
        let resp = timed("update", REQUEST_TIMEOUT, self.kv().txn(txn)).await?;
        if resp.succeeded() {
            return header_revision(resp.header());
        }
        Err(self.cas_failure(key, resp))
    }

    /// Deletes `key` only if its mod revision is still `expected_mod_revision`.
    /// Returns the revision of the delete.
    pub async fn delete(&self, key: &str, expected_mod_revision: i64) -> Result<i64> {
        let txn = Txn::new()
            .when([Compare::mod_revision(key, CompareOp::Equal, expected_mod_revision)])
            .and_then([TxnOp::delete(key, None)])
            .or_else([TxnOp::get(key, None)]);
        let resp = timed("delete", REQUEST_TIMEOUT, self.kv().txn(txn)).await?;
        if resp.succeeded() {
            return header_revision(resp.header());
        }
        Err(self.cas_failure(key, resp))
    }

    /// Reads keys under `prefix` in key order, after `start_after` (exclusive), at most
    /// `limit` of them (0 = all), as of `revision` (0 = latest). Reuse the returned
    /// revision for the following pages so the whole list is one snapshot. One unreadable
    /// value fails the whole page with `Transform`, naming its key.
    pub async fn list(&self, prefix: &str, start_after: Option<&str>, limit: i64, revision: i64) -> Result<ListPage> {
        let mut page = self.list_stored(prefix, start_after, limit, revision).await?;
        page.items = page.items.into_iter().map(|kv| self.decoded(kv)).collect::<Result<_>>()?;
        Ok(page)
    }

    /// Like [`Store::list`] but with values as etcd holds them, for callers that transform
    /// (and tolerate failures) item by item.
    pub(crate) async fn list_stored(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: i64,
        revision: i64,
    ) -> Result<ListPage> {
        let start: Vec<u8> = match start_after {
            // The smallest key strictly greater than `after` is `after\0`.
            Some(after) => {
                let mut k = after.as_bytes().to_vec();
                k.push(0);
                k
            }
            None => prefix.as_bytes().to_vec(),
        };
        let opts = GetOptions::new()
            .with_range(prefix_end(prefix.as_bytes()))
            .with_limit(limit.max(0))
            .with_revision(revision);
        let r = timed("list", REQUEST_TIMEOUT, self.kv().get(start, Some(opts))).await;
        let mut resp = self.fill_expired(r, revision).await?;
        let read_at = if revision > 0 { revision } else { header_revision(resp.header())? };
        let more = resp.more();
        let items = resp.take_kvs().into_iter().map(KeyValue::from_etcd).collect();
        Ok(ListPage { items, revision: read_at, more })
    }

    /// The current store-wide revision, via a linearizable count-only read of one key.
    pub async fn current_revision(&self) -> Result<i64> {
        let opts = GetOptions::new().with_count_only();
        let resp = timed("current_revision", REQUEST_TIMEOUT, self.kv().get("/", Some(opts))).await?;
        header_revision(resp.header())
    }

    /// Discards history before `revision`. Compacting to an already compacted revision
    /// gives `Expired`.
    pub async fn compact(&self, revision: i64) -> Result<()> {
        let r = timed("compact", REQUEST_TIMEOUT, self.kv().compact(revision, None)).await;
        self.fill_expired(r, revision).await?;
        Ok(())
    }

    /// Number of keys under `prefix` as of `revision`.
    pub(crate) async fn count_under(&self, prefix: &str, revision: i64) -> Result<i64> {
        let opts =
            GetOptions::new().with_range(prefix_end(prefix.as_bytes())).with_count_only().with_revision(revision);
        let resp = timed("count", REQUEST_TIMEOUT, self.kv().get(prefix, Some(opts))).await?;
        Ok(resp.count())
    }

    /// The highest mod revision of any key under `prefix` as of `revision` (0 if none).
    // etcd applies min/max_mod_revision filters after counting, so a count-only read cannot
    // answer this; sorting by mod revision with limit 1 can.
    pub(crate) async fn max_mod_revision_under(&self, prefix: &str, revision: i64) -> Result<i64> {
        let opts = GetOptions::new()
            .with_range(prefix_end(prefix.as_bytes()))
            .with_keys_only()
            .with_sort(SortTarget::Mod, SortOrder::Descend)
            .with_limit(1)
            .with_revision(revision);
        let resp = timed("max_mod_revision", REQUEST_TIMEOUT, self.kv().get(prefix, Some(opts))).await?;
        Ok(resp.kvs().first().map_or(0, |kv| kv.mod_revision()))
    }

    /// The etcd server version, e.g. `3.4.23`.
    pub(crate) async fn server_version(&self) -> Result<String> {
        let resp = timed("status", REQUEST_TIMEOUT, self.maintenance().status()).await?;
        Ok(resp.version().to_string())
    }

    /// Database file size and the part of it in use.
    pub async fn status(&self) -> Result<DbStatus> {
        let resp = timed("status", REQUEST_TIMEOUT, self.maintenance().status()).await?;
        let in_use = resp.raft_used_db_size();
        Ok(DbStatus {
            db_size: resp.db_size(),
            // Servers before 3.4 do not report it; "nothing reclaimable" is the safe reading.
            db_size_in_use: if in_use > 0 { in_use } else { resp.db_size() },
        })
    }

    /// Rewrites the database file to release space freed by compaction. The member
    /// blocks reads and writes while this runs.
    pub async fn defragment(&self) -> Result<()> {
        timed("defragment", DEFRAG_TIMEOUT, self.maintenance().defragment()).await?;
        Ok(())
    }

    /// Fills in `requested`/`oldest` on an `Expired` error; etcd's message carries neither.
    async fn fill_expired<T>(&self, r: Result<T>, requested: i64) -> Result<T> {
        match r {
            Err(StorageError::Expired { .. }) => {
                let oldest = self.oldest_revision().await.unwrap_or(0);
                Err(StorageError::Expired { requested, oldest })
            }
            other => other,
        }
    }

    /// The oldest revision etcd can still serve (its last compaction point, or 1).
    pub async fn oldest_revision(&self) -> Result<i64> {
        let mut wc = self.watch_client();
        let opts = WatchOptions::new().with_start_revision(1);
        let stream = timed("watch", REQUEST_TIMEOUT, wc.watch("/", Some(opts))).await?;
        let (_sender, mut responses) = stream.split();
        let found = tokio::time::timeout(REQUEST_TIMEOUT, async {
            loop {
                match responses.message().await {
                    Ok(Some(resp)) if resp.compact_revision() > 0 => {
                        return Ok(resp.compact_revision());
                    }
                    // Created-ack without a cancel means nothing was compacted: all history
                    // is there. Wait briefly for the cancel that follows a compacted start.
                    Ok(Some(resp)) if resp.canceled() => return Ok(1),
                    Ok(Some(_)) => continue,
                    Ok(None) => return Ok(1),
                    Err(e) => return Err(map_err("watch", e)),
                }
            }
        });
        match tokio::time::timeout(Duration::from_millis(500), found).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(StorageError::Unavailable("oldest_revision timed out".into())),
            // No cancel within the grace period: start revision 1 is still watchable.
            Err(_) => Ok(1),
        }
    }
}

/// The exclusive upper bound of all keys starting with `prefix`.
pub(crate) fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // All 0xff (or empty): the range extends to the end of the keyspace.
    vec![0]
}

fn header_revision(h: Option<&etcd_client::ResponseHeader>) -> Result<i64> {
    h.map(|h| h.revision()).ok_or_else(|| StorageError::Internal("etcd response without header".into()))
}

impl Store {
    fn cas_failure(&self, key: &str, resp: etcd_client::TxnResponse) -> StorageError {
        let current = resp.op_responses().into_iter().find_map(|op| match op {
            TxnOpResponse::Get(mut g) => g.take_kvs().into_iter().next().map(KeyValue::from_etcd),
            _ => None,
        });
        match current.map(|kv| self.decoded(kv)) {
            Some(Ok(kv)) => StorageError::Conflict { key: key.to_string(), current: Some(kv) },
            Some(Err(e)) => e,
            None => StorageError::NotFound { key: key.to_string() },
        }
    }
}

/// Runs one etcd call under a deadline and maps its error.
pub(crate) async fn timed<T>(
    op: &'static str,
    limit: Duration,
    fut: impl Future<Output = Result<T, etcd_client::Error>>,
) -> Result<T> {
    match tokio::time::timeout(limit, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(map_err(op, e)),
        Err(_) => {
            tracing::warn!(op, timeout = ?limit, "etcd request timed out");
            Err(StorageError::Unavailable(format!("etcd {op} timed out after {limit:?}")))
        }
    }
}

pub(crate) fn map_err(op: &'static str, e: etcd_client::Error) -> StorageError {
    use etcd_client::Error as E;
    match e {
        E::GRpcStatus(s) => {
            if s.message().contains("compacted") {
                return StorageError::Expired { requested: 0, oldest: 0 };
            }
            match s.code() {
                Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Aborted => {
                    StorageError::Unavailable(format!("etcd {op}: {}", s.message()))
                }
                // Transport failures underneath tonic surface as Unknown with an h2/io message.
                Code::Unknown if s.message().contains("transport") || s.message().contains("connect") => {
                    StorageError::Unavailable(format!("etcd {op}: {}", s.message()))
                }
                _ => StorageError::Internal(format!("etcd {op}: {:?}: {}", s.code(), s.message())),
            }
        }
        E::TransportError(e) => StorageError::Unavailable(format!("etcd {op}: {e}")),
        E::IoError(e) => StorageError::Unavailable(format!("etcd {op}: {e}")),
        E::WatchError(e) => StorageError::Unavailable(format!("etcd {op}: {e}")),
        other => StorageError::Internal(format!("etcd {op}: {other}")),
    }
}
