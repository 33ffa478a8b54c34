//! Value transformers (encryption at rest) between `Store` / `WatchCache` and a real etcd.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{CONFIGMAPS, PODS, etcd_and_store, pod, resources};
use rkube_storage::{
    AesGcmKey, CacheLimits, EventType, Provider, Providers, StorageError, Store, WatchCache, WatchItem,
};

fn providers(keys: &[(&str, u8)], identity: bool) -> Arc<Providers> {
    let mut list: Vec<Provider> =
        keys.iter().map(|(name, fill)| Provider::AesGcm(AesGcmKey::new(name, &[*fill; 32]).expect("key"))).collect();
    if identity {
        list.push(Provider::Identity);
    }
    Arc::new(Providers::new(list).expect("providers"))
}

/// A second store on the same etcd without transformers: sees what etcd really holds.
async fn raw_store(store_endpoint: &str) -> Store {
    Store::connect(&[store_endpoint.to_string()]).await.expect("connect")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_reads_plaintext_while_etcd_holds_ciphertext() {
    let (etcd, store) = etcd_and_store().await;
    store.transform_under(PODS, providers(&[("key1", 1)], true));
    let raw = raw_store(&etcd.endpoint()).await;
    let key = format!("{PODS}default/a");
    let r1 = store.create(&key, pod("a", 1)).await.unwrap();

    let stored = raw.get(&key).await.unwrap().expect("present");
    assert!(stored.value.starts_with(b"k8s:enc:aesgcm:v1:key1:"));
    assert!(!stored.value.windows(4).any(|w| w == b"node"), "plaintext leaked");
    assert_eq!(store.get(&key).await.unwrap().expect("present").value, pod("a", 1));

    // Lists and CAS conflicts carry plaintext too.
    let page = store.list(PODS, None, 0, 0).await.unwrap();
    assert_eq!(page.items.len(), 1);
    assert_eq!(page.items[0].value, pod("a", 1));
    let r2 = store.update(&key, pod("a", 2), r1).await.unwrap();
    match store.update(&key, pod("a", 3), r1).await {
        Err(StorageError::Conflict { current: Some(kv), .. }) => {
            assert_eq!(kv.value, pod("a", 2));
            assert_eq!(kv.mod_revision, r2);
        }
        other => panic!("expected a conflict, got {other:?}"),
    }

    // Other prefixes are untouched.
    let cm = format!("{CONFIGMAPS}default/c");
    store.create(&cm, b"{\"kind\":\"ConfigMap\"}".to_vec()).await.unwrap();
    assert_eq!(raw.get(&cm).await.unwrap().expect("present").value.as_ref(), b"{\"kind\":\"ConfigMap\"}");

    // Without the key, reads fail naming the key instead of returning ciphertext.
    let keyless = raw_store(&etcd.endpoint()).await;
    keyless.transform_under(PODS, providers(&[("key2", 2)], true));
    match keyless.get(&key).await {
        Err(StorageError::Transform { key: k, reason }) => {
            assert_eq!(k, key);
            assert!(reason.contains("k8s:enc:aesgcm:v1:key1:"), "{reason}");
        }
        other => panic!("expected a transform error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_cache_decrypts_and_sets_aside_what_it_cannot_read() {
    let (etcd, store) = etcd_and_store().await;
    store.transform_under(PODS, providers(&[("key1", 1)], false));
    let a = format!("{PODS}default/a");
    store.create(&a, pod("a", 1)).await.unwrap();

    // A reader that lacks key1 but has key2: "a" is unreadable, the rest is fine.
    let reader = raw_store(&etcd.endpoint()).await;
    reader.transform_under(PODS, providers(&[("key2", 2), ("key1", 9)], false));
    let cache = WatchCache::start(reader.clone(), "/registry/", resources(), CacheLimits::default()).await.unwrap();
    assert!(cache.get(&a).is_none(), "never served garbled");
    let unreadable = cache.unreadable(PODS);
    assert_eq!(unreadable.len(), 1);
    assert_eq!(unreadable[0].0, a);
    assert!(unreadable[0].1.contains("failed to decrypt"), "{}", unreadable[0].1);
    assert!(cache.unreadable(CONFIGMAPS).is_empty());

    // Live events are decrypted; a write with the reader's key makes "a" readable again.
    let mut w = cache.watch(PODS, 0, false).unwrap();
    let b = format!("{PODS}default/b");
    reader.create(&b, pod("b", 1)).await.unwrap();
    let current = reader.list(&b, None, 0, 0).await.unwrap();
    assert_eq!(current.items[0].value, pod("b", 1));
    let ev = next_event(&mut w).await;
    assert_eq!(ev.kind, EventType::Added);
    assert_eq!(ev.object.key, b);
    assert!(String::from_utf8_lossy(&ev.object.bytes).contains("\"node-1\""));

    let stale = store.get(&a).await.unwrap().expect("present").mod_revision;
    reader.update(&a, pod("a", 2), stale).await.unwrap();
    let ev = next_event(&mut w).await;
    assert_eq!((ev.kind, ev.object.key.as_str()), (EventType::Added, a.as_str()));
    assert!(cache.unreadable(PODS).is_empty());
    // And now the writer without key2 is the one that cannot read it.
    assert!(matches!(store.get(&a).await, Err(StorageError::Transform { .. })));
    // A list from etcd fails whole on one unreadable value rather than skipping it.
    assert!(matches!(store.list(PODS, None, 0, 0).await, Err(StorageError::Transform { .. })));
}

async fn next_event(w: &mut rkube_storage::CacheWatcher) -> Arc<rkube_storage::CacheEvent> {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), w.recv()).await {
            Ok(Some(Ok(WatchItem::Event(e)))) => return e,
            Ok(Some(Ok(WatchItem::Progress(_)))) => continue,
            other => panic!("expected an event, got {other:?}"),
        }
    }
}
