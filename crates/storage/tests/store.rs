//! `Store` against a real etcd.

mod common;

use std::sync::Arc;

use common::{PODS, etcd_and_store, pod, retry};
use rkube_storage::StorageError;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_get_update_delete_cas() {
    let (_etcd, store) = etcd_and_store().await;
    let key = format!("{PODS}default/a");
    let r1 = store.create(&key, pod("a", 1)).await.unwrap();
    assert!(matches!(
        store.create(&key, pod("a", 2)).await,
        Err(StorageError::AlreadyExists { key: k }) if k == key
    ));
    let kv = store.get(&key).await.unwrap().unwrap();
    assert_eq!(kv.mod_revision, r1);
    assert_eq!(kv.create_revision, r1);
    assert_eq!(&kv.value[..], &pod("a", 1)[..]);

    let r2 = store.update(&key, pod("a", 2), r1).await.unwrap();
    assert!(r2 > r1);
    // Stale update reports what is stored now.
    match store.update(&key, pod("a", 3), r1).await {
        Err(StorageError::Conflict { current: Some(cur), .. }) => assert_eq!(cur.mod_revision, r2),
        other => panic!("expected conflict, got {other:?}"),
    }
    // Reading the old revision still works before compaction.
    let old = store.get_at(&key, r1).await.unwrap().unwrap();
    assert_eq!(&old.value[..], &pod("a", 1)[..]);

    assert!(matches!(store.delete(&key, r1).await, Err(StorageError::Conflict { .. })));
    let r3 = store.delete(&key, r2).await.unwrap();
    assert!(r3 > r2);
    assert!(store.get(&key).await.unwrap().is_none());
    assert!(matches!(store.update(&key, pod("a", 4), r2).await, Err(StorageError::NotFound { .. })));
    assert!(matches!(store.delete(&key, r2).await, Err(StorageError::NotFound { .. })));
    assert_eq!(store.current_revision().await.unwrap(), r3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_updates_exactly_one_wins() {
    let (_etcd, store) = etcd_and_store().await;
    let key = format!("{PODS}default/contended");
    let rev = store.create(&key, pod("c", 0)).await.unwrap();
    let barrier = Arc::new(tokio::sync::Barrier::new(10));
    let mut tasks = Vec::new();
    for i in 0..10u64 {
        let (store, key, barrier) = (store.clone(), key.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            store.update(&key, pod("c", i + 1), rev).await
        }));
    }
    let mut ok = 0;
    let mut conflicts = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(StorageError::Conflict { current: Some(_), .. }) => conflicts += 1,
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!((ok, conflicts), (1, 9));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paginated_list_is_one_snapshot() {
    let (_etcd, store) = etcd_and_store().await;
    for i in 0..25 {
        store.create(&format!("{PODS}default/p{i:02}"), pod("p", i)).await.unwrap();
    }
    // Keys outside the prefix must not leak in.
    store.create("/registry/core/podsx/x", pod("x", 0)).await.unwrap();
    store.create("/registry/core/pod", pod("x", 0)).await.unwrap();

    let first = store.list(PODS, None, 10, 0).await.unwrap();
    assert_eq!(first.items.len(), 10);
    assert!(first.more);
    let at = first.revision;
    let mut keys: Vec<String> = first.items.iter().map(|kv| kv.key.clone()).collect();
    let mut after = keys.last().cloned();
    // Concurrent writes between pages: new keys, updates and deletes of unread keys.
    let mut writes = 0;
    loop {
        store.create(&format!("{PODS}default/p{:02}x", writes), pod("n", 0)).await.unwrap();
        let victim = format!("{PODS}default/p{:02}", 20 + writes);
        if let Some(kv) = store.get(&victim).await.unwrap() {
            store.delete(&victim, kv.mod_revision).await.unwrap();
        }
        writes += 1;
        let page = store.list(PODS, after.as_deref(), 10, at).await.unwrap();
        assert_eq!(page.revision, at);
        keys.extend(page.items.iter().map(|kv| kv.key.clone()));
        after = keys.last().cloned();
        if !page.more {
            break;
        }
    }
    let expected: Vec<String> = (0..25).map(|i| format!("{PODS}default/p{i:02}")).collect();
    assert_eq!(keys, expected);
    // The latest state differs, proving the pages really were read in the past.
    let now = store.list(PODS, None, 0, 0).await.unwrap();
    assert_ne!(now.items.iter().map(|kv| kv.key.clone()).collect::<Vec<_>>(), expected);
    assert!(now.revision > at);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compacted_revision_is_expired() {
    let (_etcd, store) = etcd_and_store().await;
    let key = format!("{PODS}default/a");
    let r1 = store.create(&key, pod("a", 1)).await.unwrap();
    let r2 = store.update(&key, pod("a", 2), r1).await.unwrap();
    let r3 = store.update(&key, pod("a", 3), r2).await.unwrap();
    store.compact(r3).await.unwrap();
    match store.list(PODS, None, 0, r1).await {
        Err(StorageError::Expired { requested, oldest }) => {
            assert_eq!(requested, r1);
            assert_eq!(oldest, r3);
        }
        other => panic!("expected Expired, got {other:?}"),
    }
    assert!(matches!(store.get_at(&key, r2).await, Err(StorageError::Expired { .. })));
    // The compaction point itself is still readable.
    assert_eq!(store.list(PODS, None, 0, r3).await.unwrap().items.len(), 1);
    assert!(matches!(store.compact(r2).await, Err(StorageError::Expired { .. })));
    let status = store.status().await.unwrap();
    assert!(status.db_size > 0 && status.db_size_in_use > 0 && status.db_size_in_use <= status.db_size);
    store.defragment().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_survives_etcd_restart() {
    let (mut etcd, store) = etcd_and_store().await;
    let key = format!("{PODS}default/a");
    let r1 = store.create(&key, pod("a", 1)).await.unwrap();
    etcd.stop();
    assert!(matches!(store.get(&key).await, Err(StorageError::Unavailable(_))));
    etcd.restart().unwrap();
    let r2 = retry(|| store.update(&key, pod("a", 2), r1)).await.unwrap();
    assert!(r2 > r1);
    assert_eq!(store.get(&key).await.unwrap().unwrap().mod_revision, r2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_to_nothing_is_unavailable() {
    let r = rkube_storage::Store::connect(&["http://127.0.0.1:1".to_string()]).await;
    assert!(matches!(r, Err(StorageError::Unavailable(_))), "{:?}", r.err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_under_an_expiring_prefix_vanish_after_their_ttl() {
    let (_etcd, store) = etcd_and_store().await;
    store.expire_under("/registry/core/events/", std::time::Duration::from_secs(2));
    let event = "/registry/core/events/default/e1";
    let lasting = format!("{PODS}default/stays");
    let rev = store.create(event, pod("e1", 1)).await.unwrap();
    store.create(&lasting, pod("stays", 1)).await.unwrap();
    // An update keeps the key on a lease (a plain put would detach it and keep it forever).
    store.update(event, pod("e1", 2), rev).await.unwrap();
    assert!(store.get(event).await.unwrap().is_some());
    let started = std::time::Instant::now();
    while store.get(event).await.unwrap().is_some() {
        assert!(started.elapsed() < std::time::Duration::from_secs(15), "the event never expired");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert!(started.elapsed() >= std::time::Duration::from_secs(1), "expired too early: {:?}", started.elapsed());
    assert!(store.get(&lasting).await.unwrap().is_some(), "keys outside the prefix never expire");
}
