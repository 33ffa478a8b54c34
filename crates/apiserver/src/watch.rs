//! Watches served from the watch cache: resourceVersion semantics, selector filtering (an
//! object leaving the selection is a DELETED event, entering it an ADDED), bookmarks, timeouts.

use crate::error::storage_error;
use crate::objects::{Filter, ListOptions, Registry, served_bytes};
use bytes::Bytes;
use futures::{Stream, StreamExt};
use rkube_api::{ApiError, ResourceInfo};
use rkube_storage::{CacheEvent, EventType, StorageError, WatchItem};
use serde_json::json;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// One event of a watch as Kubernetes sends it: a type and an encoded object.
#[derive(Debug, Clone)]
pub struct WatchEvent {
    /// ADDED, MODIFIED, DELETED, BOOKMARK or ERROR.
    pub kind: &'static str,
    /// The object (a Status for ERROR).
    pub object: Bytes,
}

impl WatchEvent {
    /// The newline-terminated JSON line of the REST watch stream.
    pub fn to_json_line(&self) -> Bytes {
        let mut out = Vec::with_capacity(self.object.len() + 32);
        out.extend_from_slice(b"{\"type\":\"");
        out.extend_from_slice(self.kind.as_bytes());
        out.extend_from_slice(b"\",\"object\":");
        out.extend_from_slice(&self.object);
        out.extend_from_slice(b"}\n");
        Bytes::from(out)
    }

    fn error(err: &ApiError) -> Self {
        WatchEvent { kind: "ERROR", object: Bytes::from(serde_json::to_vec(&err.to_status()).unwrap_or_default()) }
    }
}

/// Decides what a cache event looks like to a watcher with this filter.
fn classify(res: &ResourceInfo, ev: &CacheEvent, filter: &Filter) -> Option<WatchEvent> {
    let now = filter.matches(&ev.object);
    let before = ev.prev.as_ref().is_some_and(|p| filter.matches(p));
    let kind = match ev.kind {
        EventType::Added if now => "ADDED",
        EventType::Modified if now && before => "MODIFIED",
        EventType::Modified if now => "ADDED",
        EventType::Modified if before => "DELETED",
        EventType::Deleted if now || before => "DELETED",
        _ => return None,
    };
    Some(WatchEvent { kind, object: served_bytes(res, &ev.object.bytes) })
}

fn bookmark(res: &ResourceInfo, revision: i64, initial_events_end: bool) -> WatchEvent {
    let mut meta = json!({"resourceVersion": revision.to_string()});
    if initial_events_end {
        meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    let obj = json!({"kind": res.kind, "apiVersion": res.api_version(), "metadata": meta});
    WatchEvent { kind: "BOOKMARK", object: Bytes::from(serde_json::to_vec(&obj).unwrap_or_default()) }
}

/// Starts a watch. Errors before the stream starts (bad selectors, bad parameters) are
/// returned; a too-old resourceVersion becomes an ERROR event with a 410 Status, as Kubernetes
/// sends it.
pub async fn watch(
    registry: &Registry,
    res: &'static ResourceInfo,
    namespace: Option<&str>,
    opts: &ListOptions,
    bookmark_interval: Duration,
    shutdown: CancellationToken,
) -> Result<impl Stream<Item = WatchEvent> + Send + 'static, ApiError> {
    let filter = Filter::parse(res, opts)?;
    let prefix = res.namespace_prefix(namespace);
    let requested = crate::meta::parse_resource_version(&opts.resource_version)?;
    let send_initial = match opts.send_initial_events {
        Some(true) => {
            if !opts.allow_watch_bookmarks {
                return Err(ApiError::Invalid {
                    kind: "ListOptions".into(),
                    group: "meta.k8s.io".into(),
                    name: String::new(),
                    causes: vec![rkube_api::FieldError::forbidden("allowWatchBookmarks", "sendInitialEvents requires setting allowWatchBookmarks to true")],
                });
            }
            true
        }
        Some(false) => false,
        // Without a resourceVersion (or with "0") a watch starts with the current state.
        None => matches!(requested, None | Some(0)),
    };
    let timeout = match opts.timeout_seconds {
        Some(s) if s > 0 => Duration::from_secs(s),
        // Like kube-apiserver: spread long watches between 30 and 60 minutes so clients don't
        // all reconnect at once.
        _ => Duration::from_secs(1800 + rand::random::<u64>() % 1800),
    };

    let mut initial = Vec::new();
    let start = if send_initial {
        if requested.is_none() {
            registry.cache.consistent_revision().await.map_err(|e| storage_error(res, "", e))?;
        }
        let page = registry.cache.list(&prefix, None, 0, &|o| filter.matches(o));
        initial = page.items.iter().map(|o| WatchEvent { kind: "ADDED", object: served_bytes(res, &o.bytes) }).collect();
        page.revision
    } else {
        let rv = requested.unwrap_or(0);
        if rv > registry.cache.revision() {
            registry
                .cache
                .wait_for_revision(rv, Duration::from_secs(3))
                .await
                .map_err(|_| ApiError::Timeout(format!("Too large resource version: {rv}, current: {}", registry.cache.revision())))?;
        }
        rv
    };
    let watcher = match registry.cache.watch(&prefix, start, false) {
        Ok(w) => w,
        Err(StorageError::Expired { requested, oldest }) => {
            let err = ApiError::Expired(format!("too old resource version: {requested} ({oldest})"));
            return Ok(futures::stream::iter(vec![WatchEvent::error(&err)]).boxed());
        }
        Err(e) => return Err(storage_error(res, "", e)),
    };
    let bookmarks = opts.allow_watch_bookmarks;
    let initial_end = send_initial && opts.send_initial_events == Some(true);
    let stream = async_stream::stream! {
        let mut last = start;
        for ev in initial {
            yield ev;
        }
        if initial_end {
            yield bookmark(res, start, true);
        }
        let mut watcher = watcher;
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + bookmark_interval, bookmark_interval);
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                item = watcher.recv() => match item {
                    Some(Ok(WatchItem::Event(ev))) => {
                        last = ev.revision;
                        if let Some(out) = classify(res, &ev, &filter) {
                            yield out;
                        }
                    }
                    Some(Ok(WatchItem::Progress(rev))) => last = last.max(rev),
                    Some(Err(e)) => {
                        // A watcher that fell behind is closed; the client re-watches from
                        // its last resourceVersion.
                        tracing::debug!(resource = res.plural, error = %e, "closing watch");
                        break;
                    }
                    None => break,
                },
                _ = ticker.tick(), if bookmarks => yield bookmark(res, last, false),
                _ = &mut deadline => break,
                _ = shutdown.cancelled() => break,
            }
        }
    };
    Ok(stream.boxed())
}
