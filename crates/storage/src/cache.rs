//! The watch cache: one etcd watch over the whole registry prefix feeds per-resource
//! in-memory state plus a bounded window of recent events, so lists and thousands of API
//! watches are served from memory at the cost of a single etcd watch stream.
//!
//! Ordering guarantee: events are appended to a resource's window and broadcast while its
//! mutex is held, and watchers take their replay snapshot and subscribe under that same
//! mutex, so replay and live stream meet without a gap or a duplicate.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use etcd_client::{EventType as EtcdEventType, WatchOptions};
use futures::Stream;
use serde_json::Value;
use tokio::sync::{Notify, broadcast, watch};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;

use crate::error::{Result, StorageError};
use crate::store::{KeyValue, Store, map_err, timed};

/// Page size for the initial list and relists; keeps each etcd response well under limits.
const LIST_PAGE: i64 = 1000;
/// How long a quiet resource goes without a progress item while the cache advances.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);
/// How long `wait_for_revision` waits for ordinary traffic before asking etcd for progress.
const PROGRESS_GRACE: Duration = Duration::from_millis(20);
/// Re-ask interval: etcd 3.4 drops progress requests while the watch is catching up.
const PROGRESS_RETRY: Duration = Duration::from_millis(250);
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// A resource type the cache keeps, registered by the API server at startup.
#[derive(Clone)]
pub struct ResourceSpec {
    /// Key prefix of the resource including the trailing slash, e.g. `/registry/core/pods/`.
    pub prefix: String,
    /// Extracts the field-selector values of an object (e.g. `spec.nodeName`), computed once
    /// per event so field selectors on watches never re-parse JSON.
    pub index: fn(&Value) -> Vec<(&'static str, String)>,
}

/// Bounds on the per-resource event window.
#[derive(Debug, Clone, Copy)]
pub struct CacheLimits {
    /// Maximum bytes of object data held in one resource's event window.
    pub window_bytes: usize,
    /// Maximum number of events held in one resource's event window.
    pub window_events: usize,
    /// Items a watcher may be behind the live stream before it is dropped with `Lagged`.
    pub watcher_buffer: usize,
}

impl Default for CacheLimits {
    fn default() -> Self {
        CacheLimits { window_bytes: 64 << 20, window_events: 100_000, watcher_buffer: 8192 }
    }
}

/// One object as the API server will serve it.
#[derive(Debug, Clone)]
pub struct CachedObject {
    /// Full etcd key.
    pub key: String,
    /// The stored JSON with `metadata.resourceVersion` set to `revision`.
    pub bytes: Bytes,
    /// The mod revision (for a deleted object: the delete revision).
    pub revision: i64,
    /// `metadata.labels`, for label selectors.
    pub labels: BTreeMap<String, String>,
    /// Values produced by the resource's `index` function, for field selectors.
    pub fields: Vec<(&'static str, String)>,
}

/// What happened to an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// The object appeared.
    Added,
    /// The object changed.
    Modified,
    /// The object is gone.
    Deleted,
}

/// One change to one object.
#[derive(Debug, Clone)]
pub struct CacheEvent {
    /// The kind of change.
    pub kind: EventType,
    /// New state; for `Deleted`, the last state with resourceVersion = the delete revision.
    pub object: Arc<CachedObject>,
    /// State before the change, when the cache had one (lets watchers with selectors turn
    /// a Modified that leaves their selection into a Deleted).
    pub prev: Option<Arc<CachedObject>>,
    /// Revision of the change (for synthetic initial/relist events: the snapshot revision).
    pub revision: i64,
}

/// An item delivered to a watcher.
#[derive(Debug, Clone)]
pub enum WatchItem {
    /// An event under the watcher's prefix.
    Event(Arc<CacheEvent>),
    /// Every event up to this revision has been delivered to this watcher; safe to bookmark.
    Progress(i64),
}

/// Result of a cache list: one consistent snapshot.
#[derive(Debug, Clone)]
pub struct CacheList {
    /// Matching objects sorted by key.
    pub items: Vec<Arc<CachedObject>>,
    /// The revision the snapshot reflects.
    pub revision: i64,
    /// Whether further matching objects exist after `last_key`.
    pub more: bool,
    /// Key of the last returned item, for continuation.
    pub last_key: Option<String>,
}

/// Size of one resource's cached state, for /metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceStats {
    /// Resource key prefix.
    pub prefix: String,
    /// Number of current objects.
    pub objects: usize,
    /// Bytes of current objects.
    pub bytes: usize,
    /// Events in the replay window.
    pub window_events: usize,
    /// Bytes of objects referenced by the window.
    pub window_bytes: usize,
    /// Watches from a revision below this are `Expired`.
    pub oldest_revision: i64,
}

struct ResourceState {
    objects: BTreeMap<String, Arc<CachedObject>>,
    bytes: usize,
    window: VecDeque<Arc<CacheEvent>>,
    window_bytes: usize,
    /// Every event with a revision above this is in `window`.
    oldest: i64,
    /// Revision this resource's state reflects.
    revision: i64,
    /// Highest revision for which an event or progress item was broadcast.
    last_sent: i64,
    last_progress_at: Instant,
    /// Keys present in etcd whose value cannot be read (decryption failed), with the reason;
    /// they are absent from `objects` so nothing garbled is ever served.
    unreadable: BTreeMap<String, String>,
}

struct Resource {
    prefix: String,
    index: fn(&Value) -> Vec<(&'static str, String)>,
    state: Mutex<ResourceState>,
    tx: broadcast::Sender<WatchItem>,
}

impl Resource {
    fn lock(&self) -> MutexGuard<'_, ResourceState> {
        // A panic while holding the lock can only come from a bug in this module; the state
        // is still structurally valid, so keep serving rather than poisoning every caller.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

struct Inner {
    root: String,
    resources: Vec<Resource>,
    limits: CacheLimits,
    revision: AtomicI64,
    rev_tx: watch::Sender<i64>,
    progress_wanted: Notify,
    /// Whether etcd orders requested progress notifications after pending events.
    /// Before 3.4.31 / 3.5.13 it does not (etcd issue 15220): the notification can
    /// overtake events, so it must be verified before the cache may advance on it.
    trust_progress: bool,
    /// Keys under the root (registered or not, decodable or not) as of `revision`; used
    /// to verify untrusted progress notifications.
    raw_keys: AtomicI64,
}

/// The shared watch cache. Create with [`WatchCache::start`]; dropping the last `Arc`
/// stops the background etcd watch.
pub struct WatchCache {
    inner: Arc<Inner>,
    store: Store,
    task: JoinHandle<()>,
}

impl Drop for WatchCache {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A change read from etcd, decoupled from etcd-client types so relists and watch events
/// share one apply path.
struct RawChange {
    key: String,
    /// The plaintext of a put, or why it could not be read; `None` for a delete.
    put: Option<std::result::Result<Bytes, String>>,
    revision: i64,
    /// The put created the key (as opposed to overwriting it).
    created: bool,
}

impl WatchCache {
    /// Lists everything under `root_prefix` at one revision, then watches from the next
    /// revision in a background task that reconnects and relists as needed.
    pub async fn start(
        store: Store,
        root_prefix: &str,
        resources: Vec<ResourceSpec>,
        limits: CacheLimits,
    ) -> Result<Arc<WatchCache>> {
        let resources = resources
            .into_iter()
            .map(|spec| Resource {
                prefix: spec.prefix,
                index: spec.index,
                state: Mutex::new(ResourceState {
                    objects: BTreeMap::new(),
                    bytes: 0,
                    window: VecDeque::new(),
                    window_bytes: 0,
                    oldest: 0,
                    revision: 0,
                    last_sent: 0,
                    last_progress_at: Instant::now(),
                    unreadable: BTreeMap::new(),
                }),
                tx: broadcast::channel(limits.watcher_buffer.max(16)).0,
            })
            .collect();
        let (rev_tx, _) = watch::channel(0);
        let version = store.server_version().await?;
        let trust_progress = progress_is_ordered(&version);
        if !trust_progress {
            tracing::info!(%version, "etcd progress notifications are unordered; verifying them with reads");
        }
        let inner = Arc::new(Inner {
            root: root_prefix.to_string(),
            resources,
            limits,
            revision: AtomicI64::new(0),
            rev_tx,
            progress_wanted: Notify::new(),
            trust_progress,
            raw_keys: AtomicI64::new(0),
        });
        let rev = relist(&inner, &store).await?;
        tracing::info!(root = root_prefix, revision = rev, "watch cache primed");
        let task = tokio::spawn(watch_loop(inner.clone(), store.clone()));
        Ok(Arc::new(WatchCache { inner, store, task }))
    }

    /// Highest revision the cache has applied to every resource.
    pub fn revision(&self) -> i64 {
        self.inner.revision.load(Ordering::Acquire)
    }

    /// Waits until the cache has applied `rev`. If ordinary traffic does not get there
    /// quickly, asks etcd for a progress notification so a quiet prefix still advances.
    pub async fn wait_for_revision(&self, rev: i64, timeout: Duration) -> Result<()> {
        let mut rx = self.inner.rev_tx.subscribe();
        let start = Instant::now();
        let deadline = start + timeout;
        let mut next_ask = start + PROGRESS_GRACE;
        loop {
            let current = *rx.borrow_and_update();
            if current >= rev {
                return Ok(());
            }
            let now = Instant::now();
            if now >= deadline {
                tracing::warn!(wanted = rev, current, ?timeout, "watch cache did not catch up");
                return Err(StorageError::Unavailable(format!(
                    "watch cache at revision {current} did not reach {rev} within {timeout:?}"
                )));
            }
            if now >= next_ask {
                self.inner.progress_wanted.notify_one();
                next_ask = now + PROGRESS_RETRY;
            }
            let wake = tokio::time::Instant::from_std(deadline.min(next_ask));
            tokio::select! {
                _ = rx.changed() => {}
                _ = tokio::time::sleep_until(wake) => {}
            }
        }
    }

    /// Reads etcd's current revision and waits for the cache to reach it, so a list served
    /// from memory afterwards reflects every write that completed before this call.
    pub async fn consistent_revision(&self) -> Result<i64> {
        let rev = self.store.current_revision().await?;
        self.wait_for_revision(rev, Duration::from_secs(10)).await?;
        Ok(rev)
    }

    /// The cached object at `key`, if any.
    pub fn get(&self, key: &str) -> Option<Arc<CachedObject>> {
        let res = self.inner.resource_for(key)?;
        res.lock().objects.get(key).cloned()
    }

    /// Objects under `prefix` (a resource prefix, or resource + namespace prefix) after
    /// `start_after`, at most `limit` (0 = all) that pass `filter`, all from one snapshot.
    pub fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
        filter: &dyn Fn(&CachedObject) -> bool,
    ) -> CacheList {
        let Some(res) = self.inner.resource_for(prefix) else {
            tracing::debug!(prefix, "list of a prefix no cached resource covers");
            return CacheList { items: Vec::new(), revision: self.revision(), more: false, last_key: None };
        };
        let state = res.lock();
        let range = match start_after {
            Some(after) if after >= prefix => {
                state.objects.range::<str, _>((std::ops::Bound::Excluded(after), std::ops::Bound::Unbounded))
            }
            _ => state.objects.range::<str, _>((std::ops::Bound::Included(prefix), std::ops::Bound::Unbounded)),
        };
        let mut items = Vec::new();
        let mut more = false;
        for (key, obj) in range {
            if !key.starts_with(prefix) {
                break;
            }
            if !filter(obj) {
                continue;
            }
            if limit > 0 && items.len() == limit {
                more = true;
                break;
            }
            items.push(obj.clone());
        }
        let last_key = items.last().map(|o| o.key.clone());
        CacheList { items, revision: state.revision, more, last_key }
    }

    /// Watches `prefix` for events with a revision above `from_revision` (0 = from now).
    /// With `initial_state`, first delivers a synthetic `Added` for every current object
    /// followed by `Progress` at the snapshot revision, and `from_revision` is ignored.
    pub fn watch(&self, prefix: &str, from_revision: i64, initial_state: bool) -> Result<CacheWatcher> {
        let res = self
            .inner
            .resource_for(prefix)
            .ok_or_else(|| StorageError::UnknownResource { prefix: prefix.to_string() })?;
        let state = res.lock();
        let mut replay = VecDeque::new();
        let after = if initial_state {
            for (key, obj) in
                state.objects.range::<str, _>((std::ops::Bound::Included(prefix), std::ops::Bound::Unbounded))
            {
                if !key.starts_with(prefix) {
                    break;
                }
                replay.push_back(WatchItem::Event(Arc::new(CacheEvent {
                    kind: EventType::Added,
                    object: obj.clone(),
                    prev: None,
                    revision: state.revision,
                })));
            }
            replay.push_back(WatchItem::Progress(state.revision));
            state.revision
        } else if from_revision == 0 {
            state.revision
        } else {
            if from_revision < state.oldest {
                return Err(StorageError::Expired { requested: from_revision, oldest: state.oldest });
            }
            // The window is in revision order, so skip to the first event we need.
            let start = state.window.partition_point(|e| e.revision <= from_revision);
            replay.extend(
                state
                    .window
                    .range(start..)
                    .filter(|e| e.object.key.starts_with(prefix))
                    .map(|e| WatchItem::Event(e.clone())),
            );
            from_revision
        };
        // Subscribing under the lock is what makes replay + live gapless.
        let rx = res.tx.subscribe();
        drop(state);
        Ok(CacheWatcher {
            prefix: prefix.to_string(),
            replay,
            live: BroadcastStream::new(rx),
            floor: after,
            last: after,
            done: false,
        })
    }

    /// Keys under `prefix` that exist in etcd but whose values cannot be read (e.g. encrypted
    /// with a key that is no longer configured), with the reason. Lists from the cache leave
    /// them out, so a caller that must not hide them checks here.
    pub fn unreadable(&self, prefix: &str) -> Vec<(String, String)> {
        let Some(res) = self.inner.resource_for(prefix) else { return Vec::new() };
        let state = res.lock();
        state
            .unreadable
            .range::<str, _>((std::ops::Bound::Included(prefix), std::ops::Bound::Unbounded))
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, why)| (k.clone(), why.clone()))
            .collect()
    }

    /// Per-resource sizes, for /metrics.
    pub fn stats(&self) -> Vec<ResourceStats> {
        self.inner
            .resources
            .iter()
            .map(|r| {
                let s = r.lock();
                ResourceStats {
                    prefix: r.prefix.clone(),
                    objects: s.objects.len(),
                    bytes: s.bytes,
                    window_events: s.window.len(),
                    window_bytes: s.window_bytes,
                    oldest_revision: s.oldest,
                }
            })
            .collect()
    }
}

/// A stream of [`WatchItem`]s for one prefix, in revision order with no gaps. Ends after
/// yielding an error (`Lagged` if it fell behind, `Unavailable` if the cache stopped).
pub struct CacheWatcher {
    prefix: String,
    replay: VecDeque<WatchItem>,
    live: BroadcastStream<WatchItem>,
    /// Live events at or below this were covered by the replay (or predate a future
    /// `from_revision`). Several events can share a revision (one etcd txn, or a relist),
    /// so this must stay fixed rather than follow `last`.
    floor: i64,
    /// Highest revision delivered (or known to need no delivery).
    last: i64,
    done: bool,
}

impl CacheWatcher {
    /// Next item; `None` after the stream has ended.
    pub async fn recv(&mut self) -> Option<Result<WatchItem>> {
        futures::StreamExt::next(self).await
    }

    /// Highest revision up to which this watcher has delivered everything.
    pub fn last_revision(&self) -> i64 {
        self.last
    }
}

impl Stream for CacheWatcher {
    type Item = Result<WatchItem>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        if let Some(item) = this.replay.pop_front() {
            if let WatchItem::Event(e) = &item {
                this.last = this.last.max(e.revision);
            }
            return Poll::Ready(Some(Ok(item)));
        }
        loop {
            match Pin::new(&mut this.live).poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => {
                    this.done = true;
                    return Poll::Ready(Some(Err(StorageError::Unavailable("watch cache stopped".into()))));
                }
                Poll::Ready(Some(Err(BroadcastStreamRecvError::Lagged(skipped)))) => {
                    tracing::info!(prefix = %this.prefix, last = this.last, skipped, "cache watcher lagged, closing");
                    this.done = true;
                    return Poll::Ready(Some(Err(StorageError::Lagged { revision: this.last })));
                }
                Poll::Ready(Some(Ok(WatchItem::Event(e)))) => {
                    // Other prefixes (namespaces) of the same resource are not ours.
                    if e.revision <= this.floor || !e.object.key.starts_with(&this.prefix) {
                        continue;
                    }
                    this.last = e.revision;
                    return Poll::Ready(Some(Ok(WatchItem::Event(e))));
                }
                Poll::Ready(Some(Ok(WatchItem::Progress(rev)))) => {
                    if rev <= this.last {
                        continue;
                    }
                    this.last = rev;
                    return Poll::Ready(Some(Ok(WatchItem::Progress(rev))));
                }
            }
        }
    }
}

impl Inner {
    /// The registered resource whose prefix is the longest prefix of `key`.
    fn resource_for(&self, key: &str) -> Option<&Resource> {
        self.resources.iter().filter(|r| key.starts_with(r.prefix.as_str())).max_by_key(|r| r.prefix.len())
    }

    fn resource_index(&self, key: &str) -> Option<usize> {
        self.resources
            .iter()
            .enumerate()
            .filter(|(_, r)| key.starts_with(r.prefix.as_str()))
            .max_by_key(|(_, r)| r.prefix.len())
            .map(|(i, _)| i)
    }

    fn publish_revision(&self, rev: i64) {
        self.revision.fetch_max(rev, Ordering::AcqRel);
        self.rev_tx.send_if_modified(|cur| {
            if rev > *cur {
                *cur = rev;
                true
            } else {
                false
            }
        });
    }

    /// Applies one etcd watch response (all events of one or more whole revisions).
    fn apply_batch(&self, changes: Vec<RawChange>) {
        let Some(batch_rev) = changes.iter().map(|c| c.revision).max() else {
            return;
        };
        let mut groups: HashMap<usize, Vec<RawChange>> = HashMap::new();
        let delta: i64 = changes
            .iter()
            .map(|c| match (&c.put, c.created) {
                (None, _) => -1,
                (Some(_), true) => 1,
                (Some(_), false) => 0,
            })
            .sum();
        self.raw_keys.fetch_add(delta, Ordering::AcqRel);
        for c in changes {
            match self.resource_index(&c.key) {
                Some(i) => groups.entry(i).or_default().push(c),
                None => tracing::trace!(key = %c.key, "event for an uncached key"),
            }
        }
        let now = Instant::now();
        for (i, res) in self.resources.iter().enumerate() {
            let mut state = res.lock();
            if state.revision >= batch_rev {
                // Replayed after a reconnect that raced a relist; already applied.
                continue;
            }
            if let Some(changes) = groups.remove(&i) {
                for c in changes {
                    if let Some(ev) = apply_change(res, &mut state, c) {
                        push_window(&mut state, &self.limits, ev.clone());
                        state.last_sent = ev.revision;
                        let _ = res.tx.send(WatchItem::Event(ev));
                    }
                }
            } else if state.last_sent < batch_rev && now.duration_since(state.last_progress_at) >= PROGRESS_EVERY {
                state.last_sent = batch_rev;
                state.last_progress_at = now;
                let _ = res.tx.send(WatchItem::Progress(batch_rev));
            }
            state.revision = batch_rev;
        }
        self.publish_revision(batch_rev);
    }

    /// Applies an etcd progress notification: nothing changed under the root up to `rev`.
    fn apply_progress(&self, rev: i64) {
        let now = Instant::now();
        for res in &self.resources {
            let mut state = res.lock();
            if state.revision < rev {
                state.revision = rev;
            }
            if state.last_sent < rev {
                state.last_sent = rev;
                state.last_progress_at = now;
                let _ = res.tx.send(WatchItem::Progress(rev));
            }
        }
        self.publish_revision(rev);
    }
}

/// Updates the state for one change and returns the event to publish, if any.
fn apply_change(res: &Resource, state: &mut ResourceState, c: RawChange) -> Option<Arc<CacheEvent>> {
    let prev = state.objects.get(&c.key).cloned();
    match &c.put {
        Some(Err(reason)) => {
            state.unreadable.insert(c.key.clone(), reason.clone());
        }
        _ => {
            state.unreadable.remove(&c.key);
        }
    }
    let decoded = c.put.as_ref().map(|value| match value {
        Ok(value) => decode(res.index, &c.key, value, c.revision),
        Err(_) => None,
    });
    match decoded {
        Some(Some(obj)) => {
            let obj = Arc::new(obj);
            state.bytes += obj.bytes.len();
            if let Some(p) = &prev {
                state.bytes = state.bytes.saturating_sub(p.bytes.len());
            }
            state.objects.insert(c.key, obj.clone());
            let kind = if prev.is_some() { EventType::Modified } else { EventType::Added };
            Some(Arc::new(CacheEvent { kind, object: obj, prev, revision: c.revision }))
        }
        // A delete, or a put of something we cannot serve: either way the object is gone
        // from the API's point of view.
        Some(None) | None => {
            let prev = prev?;
            state.objects.remove(&c.key);
            state.bytes = state.bytes.saturating_sub(prev.bytes.len());
            let gone = tombstone(res.index, &prev, c.revision)?;
            Some(Arc::new(CacheEvent {
                kind: EventType::Deleted,
                object: Arc::new(gone),
                prev: Some(prev),
                revision: c.revision,
            }))
        }
    }
}

fn push_window(state: &mut ResourceState, limits: &CacheLimits, ev: Arc<CacheEvent>) {
    state.window_bytes += ev.object.bytes.len();
    state.window.push_back(ev);
    while state.window.len() > limits.window_events || state.window_bytes > limits.window_bytes {
        let Some(old) = state.window.pop_front() else { break };
        state.window_bytes = state.window_bytes.saturating_sub(old.object.bytes.len());
        state.oldest = state.oldest.max(old.revision);
    }
}

/// Parses a stored value once: injects resourceVersion and extracts labels and fields.
/// Returns `None` (after logging) for anything that is not a JSON object.
fn decode(
    index: fn(&Value) -> Vec<(&'static str, String)>,
    key: &str,
    value: &[u8],
    revision: i64,
) -> Option<CachedObject> {
    let mut json: Value = match serde_json::from_slice(value) {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!(key, revision, error = %e, "skipping undecodable value in etcd");
            return None;
        }
    };
    let Some(obj) = json.as_object_mut() else {
        tracing::warn!(key, revision, "skipping value in etcd that is not a JSON object");
        return None;
    };
    let meta = obj.entry("metadata").or_insert_with(|| Value::Object(Default::default()));
    if !meta.is_object() {
        tracing::warn!(key, revision, "skipping object whose metadata is not an object");
        return None;
    }
    if let Some(m) = meta.as_object_mut() {
        m.insert("resourceVersion".into(), Value::String(revision.to_string()));
    }
    let labels = json
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|l| l.iter().filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string()))).collect())
        .unwrap_or_default();
    let fields = index(&json);
    let bytes = match serde_json::to_vec(&json) {
        Ok(b) => Bytes::from(b),
        Err(e) => {
            tracing::warn!(key, revision, error = %e, "skipping value that does not re-encode");
            return None;
        }
    };
    Some(CachedObject { key: key.to_string(), bytes, revision, labels, fields })
}

/// The last state of a deleted object, re-stamped with the delete revision.
fn tombstone(
    index: fn(&Value) -> Vec<(&'static str, String)>,
    prev: &CachedObject,
    revision: i64,
) -> Option<CachedObject> {
    decode(index, &prev.key, &prev.bytes, revision)
}

/// Lists the whole root at one revision and makes every resource equal to it, emitting
/// synthetic events for the differences (used at start and after the watch start revision
/// was compacted). Returns the revision listed at.
async fn relist(inner: &Inner, store: &Store) -> Result<i64> {
    let mut all: Vec<KeyValue> = Vec::new();
    let mut revision = 0;
    let mut after: Option<String> = None;
    loop {
        // Values are transformed one by one below: one unreadable Secret must not keep the
        // whole cache (and so the server) from starting.
        let page = store.list_stored(&inner.root, after.as_deref(), LIST_PAGE, revision).await?;
        revision = page.revision;
        after = page.items.last().map(|kv| kv.key.clone());
        all.extend(page.items);
        if !page.more || after.is_none() {
            break;
        }
    }
    inner.raw_keys.store(all.len() as i64, Ordering::Release);
    let mut per_resource: Vec<BTreeMap<String, KeyValue>> = vec![BTreeMap::new(); inner.resources.len()];
    for kv in all {
        if let Some(i) = inner.resource_index(&kv.key) {
            per_resource[i].insert(kv.key.clone(), kv);
        }
    }
    let mut emitted = 0usize;
    for (res, listed) in inner.resources.iter().zip(per_resource) {
        let mut state = res.lock();
        let mut changes = Vec::new();
        for key in state.objects.keys() {
            if !listed.contains_key(key) {
                changes.push(RawChange { key: key.clone(), put: None, revision, created: false });
            }
        }
        state.unreadable.retain(|key, _| listed.contains_key(key));
        for (key, kv) in listed {
            let unchanged = state.objects.get(&key).is_some_and(|o| o.revision == kv.mod_revision);
            if !unchanged {
                let put = store.decode_value(&key, kv.value).map_err(|e| e.to_string());
                changes.push(RawChange { key, put: Some(put), revision: kv.mod_revision, created: false });
            }
        }
        for c in changes {
            if let Some(ev) = apply_change(res, &mut state, c) {
                // Watchers need a revision they can resume from; the object keeps its own
                // resourceVersion but the event is stamped with the snapshot revision.
                let ev = Arc::new(CacheEvent { revision, ..(*ev).clone() });
                emitted += 1;
                let _ = res.tx.send(WatchItem::Event(ev));
            }
        }
        // History before the snapshot is unknown, so nothing older can be replayed.
        state.window.clear();
        state.window_bytes = 0;
        state.oldest = revision;
        state.revision = revision;
        state.last_sent = revision;
    }
    if emitted > 0 {
        tracing::info!(revision, emitted, "relist produced synthetic events");
    }
    inner.publish_revision(revision);
    Ok(revision)
}

enum WatchEnd {
    Compacted(i64),
    Failed(StorageError),
}

async fn watch_loop(inner: Arc<Inner>, store: Store) {
    let mut backoff = BACKOFF_MIN;
    loop {
        let from = inner.revision.load(Ordering::Acquire) + 1;
        let started = Instant::now();
        match watch_once(&inner, &store, from).await {
            WatchEnd::Compacted(compacted) => {
                tracing::warn!(from, compacted, "watch start revision compacted; relisting");
                loop {
                    match relist(&inner, &store).await {
                        Ok(_) => break,
                        Err(e) => {
                            tracing::warn!(error = %e, ?backoff, "relist failed");
                            tokio::time::sleep(backoff).await;
                            backoff = (backoff * 2).min(BACKOFF_MAX);
                        }
                    }
                }
                backoff = BACKOFF_MIN;
            }
            WatchEnd::Failed(e) => {
                // A stream that ran a while was healthy; don't punish its successor.
                if started.elapsed() > Duration::from_secs(10) {
                    backoff = BACKOFF_MIN;
                }
                tracing::warn!(from, error = %e, ?backoff, "etcd watch broke; reconnecting");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
        }
    }
}

async fn watch_once(inner: &Inner, store: &Store, from: i64) -> WatchEnd {
    let mut client = store.watch_client();
    let opts = WatchOptions::new().with_prefix().with_start_revision(from).with_progress_notify();
    let stream = match timed("watch", Duration::from_secs(10), client.watch(inner.root.as_str(), Some(opts))).await {
        Ok(s) => s,
        Err(e) => return WatchEnd::Failed(e),
    };
    let (mut sender, mut responses) = stream.split();
    loop {
        tokio::select! {
            msg = responses.message() => {
                let resp = match msg {
                    Ok(Some(r)) => r,
                    Ok(None) => return WatchEnd::Failed(StorageError::Unavailable("etcd closed the watch stream".into())),
                    Err(e) => return WatchEnd::Failed(map_err("watch", e)),
                };
                if resp.compact_revision() > 0 {
                    return WatchEnd::Compacted(resp.compact_revision());
                }
                if resp.canceled() {
                    return WatchEnd::Failed(StorageError::Unavailable(format!(
                        "etcd cancelled the watch: {}", resp.cancel_reason()
                    )));
                }
                if resp.created() {
                    continue;
                }
                if resp.events().is_empty() {
                    // Only an empty response's header revision means "caught up to here";
                    // with events it may run ahead of what was sent (etcd batches catch-up).
                    let Some(rev) = resp.header().map(|h| h.revision()) else { continue };
                    // Requested notifications carry watch id -1; the periodic ones are sent
                    // through the watcher's own channel and are always ordered.
                    if resp.watch_id() == -1 && !inner.trust_progress {
                        match progress_verified(inner, store, rev).await {
                            Ok(true) => {}
                            Ok(false) => {
                                tracing::debug!(rev, "progress notification ahead of events; ignored");
                                continue;
                            }
                            Err(e) => return WatchEnd::Failed(e),
                        }
                    }
                    inner.apply_progress(rev);
                    continue;
                }
                let mut changes = Vec::with_capacity(resp.events().len());
                for ev in resp.events() {
                    let Some(kv) = ev.kv() else { continue };
                    let key = match std::str::from_utf8(kv.key()) {
                        Ok(k) => k.to_string(),
                        Err(_) => {
                            tracing::warn!(revision = kv.mod_revision(), "skipping non-UTF-8 key");
                            continue;
                        }
                    };
                    let put = match ev.event_type() {
                        EtcdEventType::Put => Some(
                            store.decode_value(&key, Bytes::copy_from_slice(kv.value())).map_err(|e| e.to_string()),
                        ),
                        EtcdEventType::Delete => None,
                    };
                    let created = put.is_some() && kv.create_revision() == kv.mod_revision();
                    changes.push(RawChange { key, put, revision: kv.mod_revision(), created });
                }
                inner.apply_batch(changes);
            }
            _ = inner.progress_wanted.notified() => {
                if let Err(e) = sender.request_progress().await {
                    return WatchEnd::Failed(map_err("watch progress", e));
                }
            }
        }
    }
}

/// Whether this etcd version sends requested progress notifications in order with events.
fn progress_is_ordered(version: &str) -> bool {
    let mut parts = version.split('.').map(|p| p.parse::<u64>().unwrap_or(0));
    let (major, minor, patch) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    match (major, minor) {
        (3, 4) => patch >= 31,
        (3, 5) => patch >= 13,
        (3, m) => m >= 6,
        (m, _) => m > 3,
    }
}

/// Checks with two count-only reads that nothing under the root changed between the
/// cache's revision and `rev` that the watch has not delivered yet: no surviving key was
/// written in that range, and the number of keys is unchanged (so nothing was deleted).
/// The one change this cannot see is a key both created and deleted in the range; the
/// cache state is still right then, only that short-lived object's events are skipped.
async fn progress_verified(inner: &Inner, store: &Store, rev: i64) -> Result<bool> {
    let applied = inner.revision.load(Ordering::Acquire);
    if rev <= applied {
        return Ok(true);
    }
    if store.max_mod_revision_under(&inner.root, rev).await? > applied {
        return Ok(false);
    }
    let total = store.count_under(&inner.root, rev).await?;
    Ok(total == inner.raw_keys.load(Ordering::Acquire))
}

#[cfg(test)]
mod tests {
    use super::progress_is_ordered;

    #[test]
    fn progress_ordering_by_version() {
        assert!(!progress_is_ordered("3.4.23"));
        assert!(progress_is_ordered("3.4.31"));
        assert!(!progress_is_ordered("3.5.12"));
        assert!(progress_is_ordered("3.5.13"));
        assert!(progress_is_ordered("3.6.0"));
        assert!(!progress_is_ordered("garbage"));
    }
}
