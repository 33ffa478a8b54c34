//! One informer per kind, shared by every controller that reads the kind: controllers ask for
//! a kind's [`Store`] and register handlers before [`SharedInformers::start`], so N controllers
//! watching pods cost one watch and one cache.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::{Metadata, Resource};
use rkube_client::{Client, Event, Informer, ListParams, Store};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;

/// A Kubernetes object kind an informer can watch.
pub trait Object: Resource + Metadata<Ty = ObjectMeta> + Serialize + DeserializeOwned + Send + Sync + 'static {}
impl<K: Resource + Metadata<Ty = ObjectMeta> + Serialize + DeserializeOwned + Send + Sync + 'static> Object for K {}

type Pending<K> = Arc<Mutex<Option<Informer<K>>>>;
type Starter = Box<dyn FnOnce(CancellationToken) + Send>;
type SyncWait = Box<dyn Fn() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

struct Entry {
    /// `Pending<K>` until started.
    informer: Box<dyn Any + Send + Sync>,
    /// `Store<K>`.
    store: Box<dyn Any + Send + Sync>,
}

/// The informers of one controller-manager, created on first use.
pub struct SharedInformers {
    client: Client,
    entries: Mutex<HashMap<TypeId, Entry>>,
    starters: Mutex<Vec<Starter>>,
    waits: Mutex<Vec<SyncWait>>,
}

impl SharedInformers {
    /// No informers yet; they list and watch through `client` once started.
    pub fn new(client: Client) -> Self {
        SharedInformers { client, entries: Mutex::default(), starters: Mutex::default(), waits: Mutex::default() }
    }

    fn entry<K: Object, T>(&self, f: impl FnOnce(&Entry) -> T) -> T {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let entry = entries.entry(TypeId::of::<K>()).or_insert_with(|| {
            let informer = Informer::new(self.client.api::<K>(None), ListParams::default());
            let store = informer.store();
            let pending: Pending<K> = Arc::new(Mutex::new(Some(informer)));
            let p = pending.clone();
            self.starters.lock().unwrap_or_else(|e| e.into_inner()).push(Box::new(move |cancel| {
                if let Some(informer) = p.lock().unwrap_or_else(|e| e.into_inner()).take() {
                    tokio::spawn(informer.run(cancel));
                }
            }));
            let s = store.clone();
            self.waits.lock().unwrap_or_else(|e| e.into_inner()).push(Box::new(move || {
                let s = s.clone();
                Box::pin(async move { s.wait_synced().await })
            }));
            Entry { informer: Box::new(pending), store: Box::new(store) }
        });
        f(entry)
    }

    /// The cache of every `K` in the cluster.
    pub fn store<K: Object>(&self) -> Store<K> {
        self.entry::<K, _>(|e| e.store.downcast_ref::<Store<K>>().cloned())
            .expect("an entry holds the Store of its own type")
    }

    /// Calls `handler` on every change to a `K`. Register before [`SharedInformers::start`];
    /// a handler added later is ignored with a warning.
    pub fn on_event<K: Object>(&self, handler: impl Fn(&Event<K>) + Send + Sync + 'static) {
        self.entry::<K, _>(|e| {
            let pending = e.informer.downcast_ref::<Pending<K>>().expect("an entry holds the Informer of its own type");
            match pending.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
                Some(informer) => informer.on_event(handler),
                None => tracing::warn!(kind = K::KIND, "handler registered after the informer started; ignored"),
            }
        });
    }

    /// Runs `start` with the informers' cancellation token when they start: for a controller
    /// that starts informers of its own later, on kinds only known at run time.
    pub fn on_start(&self, start: impl FnOnce(CancellationToken) + Send + 'static) {
        self.starters.lock().unwrap_or_else(|e| e.into_inner()).push(Box::new(start));
    }

    /// Starts every informer asked for so far.
    pub fn start(&self, cancel: &CancellationToken) {
        let starters: Vec<Starter> = std::mem::take(&mut *self.starters.lock().unwrap_or_else(|e| e.into_inner()));
        for start in starters {
            start(cancel.clone());
        }
    }

    /// Waits until every started informer has loaded its first list.
    pub async fn wait_synced(&self) {
        let waits: Vec<_> = self.waits.lock().unwrap_or_else(|e| e.into_inner()).iter().map(|w| w()).collect();
        futures::future::join_all(waits).await;
    }
}
