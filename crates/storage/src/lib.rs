//! Object storage for rkube: a thin CAS layer over etcd (`Store`), the shared in-memory
//! watch cache that turns one etcd watch into any number of API watches (`WatchCache`),
//! the background compactor / defragmenter that keep etcd's history and disk bounded, and
//! the per-prefix value transformers that encrypt resources at rest.

mod cache;
mod compact;
mod error;
mod store;
mod transform;

pub use cache::{
    CacheEvent, CacheLimits, CacheList, CacheWatcher, CachedObject, EventType, ResourceSpec, ResourceStats, WatchCache,
    WatchItem,
};
pub use compact::{COMPACT_KEY, DefragHandle, spawn_compactor, spawn_defragmenter};
pub use error::{Result, StorageError};
pub use store::{DbStatus, EtcdTls, KeyValue, ListPage, Store};
pub use transform::{AesGcmKey, ENCRYPTED_PREFIX, Provider, Providers, TransformError, Transformer};
