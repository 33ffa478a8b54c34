//! Compactor and defragmenter against a real etcd.

mod common;

use std::time::{Duration, Instant};

use common::{PODS, etcd_and_store, pod};
use rkube_storage::{COMPACT_KEY, StorageError, spawn_compactor, spawn_defragmenter};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compactor_compacts_and_old_lists_expire() {
    let (_etcd, store) = etcd_and_store().await;
    let key = format!("{PODS}default/a");
    let mut rev = store.create(&key, pod("a", 0)).await.unwrap();
    let old = rev;
    // Two compactors, as two API servers would run.
    let a = spawn_compactor(store.clone(), Duration::from_millis(200));
    let b = spawn_compactor(store.clone(), Duration::from_millis(200));
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut i = 1;
    loop {
        rev = store.update(&key, pod("a", i), rev).await.unwrap();
        i += 1;
        match store.list(PODS, None, 0, old).await {
            Err(StorageError::Expired { requested, oldest }) => {
                assert_eq!(requested, old);
                assert!(oldest > old);
                break;
            }
            Ok(_) if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(50)).await,
            other => panic!("expected Expired eventually, got {other:?}"),
        }
    }
    // The CAS key records the last compacted revision, and history newer than it remains.
    let compacted: i64 = std::str::from_utf8(&store.get(COMPACT_KEY).await.unwrap().unwrap().value)
        .unwrap()
        .parse()
        .unwrap();
    assert!(compacted > old && compacted <= rev);
    a.abort();
    b.abort();
    assert!(store.list(PODS, None, 0, rev).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn defragmenter_reports_status() {
    let (_etcd, store) = etcd_and_store().await;
    let big = vec![b'x'; 256 << 10];
    let mut rev = store.create("/registry/blob", big.clone()).await.unwrap();
    for _ in 0..20 {
        rev = store.update("/registry/blob", big.clone(), rev).await.unwrap();
    }
    store.compact(rev).await.unwrap();
    let mut h = spawn_defragmenter(store.clone(), Duration::from_millis(200), 0, 0.0);
    let deadline = Instant::now() + Duration::from_secs(10);
    while h.status.borrow().is_none() {
        assert!(Instant::now() < deadline, "no status reported");
        tokio::time::timeout(Duration::from_secs(10), h.status.changed()).await.unwrap().unwrap();
    }
    let st = h.status.borrow().unwrap();
    assert!(st.db_size > 0 && st.db_size_in_use <= st.db_size);
    eprintln!("etcd db status: {st:?}");
    h.task.abort();
}
