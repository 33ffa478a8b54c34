//! Informers: list, then watch from the list's resourceVersion, keeping a [`Store`] in step
//! and telling handlers what changed. A watch that ends is resumed from the last
//! resourceVersion seen; one that answers 410 Expired (compacted) is replaced by a relist.

use crate::client::{Api, ListParams, WatchEvent};
use crate::{Backoff, Result, Store, object_key};
use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::{Metadata, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// A change an informer saw, after it has been applied to the store.
#[derive(Debug)]
pub enum Event<K> {
    /// A new object.
    Added(Arc<K>),
    /// An object changed (also sent for every object a relist finds changed).
    Updated {
        /// The cached state before.
        old: Arc<K>,
        /// The state now.
        new: Arc<K>,
    },
    /// An object is gone; its last known state.
    Deleted(Arc<K>),
}

type Handler<K> = Arc<dyn Fn(&Event<K>) + Send + Sync>;

/// Keeps a [`Store`] of the objects `params` selects in step with the API server.
pub struct Informer<K> {
    api: Api<K>,
    params: ListParams,
    store: Store<K>,
    handlers: Vec<Handler<K>>,
}

/// Why a watch ended.
enum WatchEnd {
    /// Normally (server timeout) or by a transport failure: resume from the last resourceVersion.
    Resume { failed: bool },
    /// 410 Expired: relist.
    Relist,
    /// The informer is shutting down.
    Cancelled,
}

impl<K> Informer<K>
where
    K: Resource + Metadata<Ty = ObjectMeta> + Serialize + DeserializeOwned + Send + Sync + 'static,
{
    /// An informer over what `api` addresses, narrowed by `params` selectors.
    pub fn new(api: Api<K>, params: ListParams) -> Self {
        Informer { api, params, store: Store::new(), handlers: Vec::new() }
    }

    /// The cache this informer fills; clones share it.
    pub fn store(&self) -> Store<K> {
        self.store.clone()
    }

    /// Calls `handler` for every change, after the store has applied it. Handlers run on the
    /// informer's task, so they should only queue work.
    pub fn on_event(&mut self, handler: impl Fn(&Event<K>) + Send + Sync + 'static) {
        self.handlers.push(Arc::new(handler));
    }

    fn emit(&self, event: Event<K>) {
        for h in &self.handlers {
            h(&event);
        }
    }

    /// Lists and watches until `cancel` fires, reconnecting with back-off when the API server
    /// is away and relisting when the watch position has been compacted.
    pub async fn run(self, cancel: CancellationToken) {
        let mut resource_version: Option<String> = None;
        let mut backoff = Backoff::default();
        while !cancel.is_cancelled() {
            let rv = match resource_version.clone() {
                Some(rv) => rv,
                None => match self.relist().await {
                    Ok(rv) => {
                        resource_version = Some(rv.clone());
                        rv
                    }
                    Err(e) => {
                        tracing::warn!(kind = self.api.kind(), error = %e, "list failed; retrying");
                        sleep_or_cancel(&cancel, backoff.next_delay()).await;
                        continue;
                    }
                },
            };
            match self.watch(&rv, &mut resource_version, &cancel).await {
                WatchEnd::Cancelled => break,
                WatchEnd::Relist => {
                    tracing::info!(kind = self.api.kind(), resource_version = %rv, "watch position expired; relisting");
                    resource_version = None;
                }
                WatchEnd::Resume { failed: false } => backoff.reset(),
                WatchEnd::Resume { failed: true } => sleep_or_cancel(&cancel, backoff.next_delay()).await,
            }
        }
    }

    /// Replaces the store's content with a fresh list; returns the list's resourceVersion.
    async fn relist(&self) -> Result<String> {
        let list =
            self.api.list(&ListParams { limit: 0, continue_token: String::new(), ..self.params.clone() }).await?;
        let rv = list.resource_version.clone();
        for event in self.store.replace(list.items) {
            self.emit(event);
        }
        tracing::debug!(kind = self.api.kind(), objects = self.store.len(), resource_version = %rv, "listed");
        Ok(rv)
    }

    /// One watch from `from`, applying events until it ends; `latest` follows every
    /// resourceVersion seen so the next watch resumes exactly there.
    async fn watch(&self, from: &str, latest: &mut Option<String>, cancel: &CancellationToken) -> WatchEnd {
        let stream = tokio::select! {
            s = self.api.watch(&self.params, from) => s,
            _ = cancel.cancelled() => return WatchEnd::Cancelled,
        };
        let mut stream = match stream {
            Ok(s) => Box::pin(s),
            Err(e) if e.is_expired() => return WatchEnd::Relist,
            Err(e) => {
                tracing::warn!(kind = self.api.kind(), error = %e, "watch failed; retrying");
                return WatchEnd::Resume { failed: true };
            }
        };
        loop {
            let item = tokio::select! {
                item = stream.next() => item,
                _ = cancel.cancelled() => return WatchEnd::Cancelled,
            };
            let event = match item {
                None => return WatchEnd::Resume { failed: false },
                Some(Ok(event)) => event,
                Some(Err(e)) => {
                    tracing::warn!(kind = self.api.kind(), error = %e, "watch broke; resuming");
                    return WatchEnd::Resume { failed: true };
                }
            };
            match event {
                WatchEvent::Added(obj) | WatchEvent::Modified(obj) => {
                    *latest = obj.metadata().resource_version.clone().or(latest.take());
                    let new = Arc::new(obj);
                    match self.store.insert(new.clone()) {
                        Some(old) => self.emit(Event::Updated { old, new }),
                        None => self.emit(Event::Added(new)),
                    }
                }
                WatchEvent::Deleted(obj) => {
                    *latest = obj.metadata().resource_version.clone().or(latest.take());
                    let old = self.store.remove(&object_key(obj.metadata())).unwrap_or_else(|| Arc::new(obj));
                    self.emit(Event::Deleted(old));
                }
                WatchEvent::Bookmark(rv) => {
                    if !rv.is_empty() {
                        *latest = Some(rv);
                    }
                }
                WatchEvent::Error(e) if e.code() == 410 => return WatchEnd::Relist,
                WatchEvent::Error(e) => {
                    tracing::warn!(kind = self.api.kind(), error = %e, "watch ended with an error; resuming");
                    return WatchEnd::Resume { failed: true };
                }
            }
        }
    }
}

async fn sleep_or_cancel(cancel: &CancellationToken, delay: std::time::Duration) {
    tokio::select! {
        _ = tokio::time::sleep(delay) => {}
        _ = cancel.cancelled() => {}
    }
}
