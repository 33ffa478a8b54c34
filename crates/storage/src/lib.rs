//! Object storage for rkube: a thin CAS layer over etcd (`Store`), the shared in-memory
//! watch cache that turns one etcd watch into any number of API watches (`WatchCache`),
//! and the background compactor / defragmenter that keep etcd's history and disk bounded.

mod cache;
mod compact;
mod error;
mod store;

pub use cache::{
    CacheEvent, CacheLimits, CacheList, CacheWatcher, CachedObject, EventType, ResourceSpec,
    ResourceStats, WatchCache, WatchItem,
};
pub use compact::{COMPACT_KEY, DefragHandle, spawn_compactor, spawn_defragmenter};
pub use error::{Result, StorageError};
pub use store::{DbStatus, KeyValue, ListPage, Store};
