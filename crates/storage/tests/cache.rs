//! `WatchCache` against a real etcd.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{CONFIGMAPS, PODS, etcd_and_store, pod, resources, retry};
use rkube_storage::{CacheLimits, CacheWatcher, EventType, StorageError, Store, WatchCache, WatchItem};

async fn cache(store: &Store, limits: CacheLimits) -> Arc<WatchCache> {
    WatchCache::start(store.clone(), "/registry/", resources(), limits).await.unwrap()
}

fn rv(bytes: &[u8]) -> String {
    let v: serde_json::Value = serde_json::from_slice(bytes).unwrap();
    v["metadata"]["resourceVersion"].as_str().unwrap().to_string()
}

/// Next event, skipping progress items, failing the test after 10 s.
async fn next_event(w: &mut CacheWatcher) -> Arc<rkube_storage::CacheEvent> {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), w.recv()).await {
            Ok(Some(Ok(WatchItem::Event(e)))) => return e,
            Ok(Some(Ok(WatchItem::Progress(_)))) => continue,
            other => panic!("expected an event, got {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn primes_from_existing_data_and_injects_resource_version() {
    let (_etcd, store) = etcd_and_store().await;
    let key = format!("{PODS}default/a");
    let r1 = store.create(&key, pod("a", 1)).await.unwrap();
    // Garbage in etcd must be skipped, not crash or poison the cache.
    store.create(&format!("{PODS}default/garbage"), b"not json".to_vec()).await.unwrap();
    store.create(&format!("{PODS}default/array"), b"[1,2]".to_vec()).await.unwrap();
    let c = cache(&store, CacheLimits::default()).await;
    assert!(c.revision() >= r1);
    let obj = c.get(&key).unwrap();
    assert_eq!(obj.revision, r1);
    assert_eq!(rv(&obj.bytes), r1.to_string());
    assert_eq!(obj.labels.get("app").map(String::as_str), Some("web"));
    assert_eq!(obj.fields, vec![("spec.nodeName", "node-1".to_string())]);
    assert!(c.get(&format!("{PODS}default/garbage")).is_none());

    let mut w = c.watch(PODS, 0, false).unwrap();
    let r2 = store.update(&key, pod("a", 2), r1).await.unwrap();
    store.update(&format!("{PODS}default/garbage"), b"{still not".to_vec(), r1 + 1).await.ok();
    let ev = next_event(&mut w).await;
    assert_eq!(ev.kind, EventType::Modified);
    assert_eq!(ev.revision, r2);
    assert_eq!(rv(&ev.object.bytes), r2.to_string());
    assert_eq!(rv(&ev.prev.as_ref().unwrap().bytes), r1.to_string());
    let r3 = store.delete(&key, r2).await.unwrap();
    let ev = next_event(&mut w).await;
    assert_eq!(ev.kind, EventType::Deleted);
    assert_eq!(ev.revision, r3);
    // The tombstone carries the delete revision, like Kubernetes' watch cache.
    assert_eq!(rv(&ev.object.bytes), r3.to_string());
    assert!(c.get(&key).is_none());
    let stats = c.stats();
    let pods = stats.iter().find(|s| s.prefix == PODS).unwrap();
    assert_eq!(pods.objects, 0);
    assert_eq!(pods.window_events, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consistent_revision_covers_prior_writes_even_on_quiet_prefix() {
    let (_etcd, store) = etcd_and_store().await;
    let c = cache(&store, CacheLimits::default()).await;
    for i in 0..20 {
        let key = format!("{PODS}default/p{i}");
        let r = store.create(&key, pod("p", i)).await.unwrap();
        let seen = c.consistent_revision().await.unwrap();
        assert!(seen >= r);
        assert!(c.get(&key).is_some(), "write at {r} not visible after consistent_revision");
        let l = c.list(PODS, None, 0, &|_| true);
        assert_eq!(l.items.len() as u64, i + 1);
        assert!(l.revision >= r);
    }
    // Writes outside the cached root move etcd's revision without any event for the
    // cache; only a progress notification lets it catch up.
    let mut w = c.watch(CONFIGMAPS, 0, false).unwrap();
    let mut outside = 0;
    for i in 0..5 {
        outside = store.create(&format!("/elsewhere/{i}"), b"{}".to_vec()).await.unwrap();
    }
    let start = Instant::now();
    let seen = c.consistent_revision().await.unwrap();
    assert!(seen >= outside && c.revision() >= outside);
    eprintln!("consistent_revision on a quiet prefix took {:?}", start.elapsed());
    // And the quiet resource's watchers get a progress item at that revision.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match tokio::time::timeout_at(deadline.into(), w.recv()).await {
            Ok(Some(Ok(WatchItem::Progress(r)))) if r >= outside => break,
            Ok(Some(Ok(WatchItem::Progress(_)))) => continue,
            other => panic!("expected progress, got {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_storm_is_delivered_in_order_without_gaps() {
    let (_etcd, store) = etcd_and_store().await;
    let c = cache(&store, CacheLimits::default()).await;
    for i in 0..5 {
        store.create(&format!("{PODS}default/seed{i}"), pod("s", i)).await.unwrap();
    }
    let start_rev = c.consistent_revision().await.unwrap();
    let initial: BTreeMap<String, i64> =
        c.list(PODS, None, 0, &|_| true).items.iter().map(|o| (o.key.clone(), o.revision)).collect();
    let mut w = c.watch(PODS, start_rev, false).unwrap();
    // A namespace-scoped watcher must see only its namespace.
    let mut ns_w = c.watch(&format!("{PODS}ns1/"), start_rev, false).unwrap();

    let mut tasks = Vec::new();
    for t in 0..8u64 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut x = t * 7919 + 1;
            for _ in 0..60 {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                let ns = if (x >> 40) % 2 == 0 { "default" } else { "ns1" };
                let key = format!("{PODS}{ns}/k{}", (x >> 33) % 12);
                let r = match store.get(&key).await.unwrap() {
                    None => store.create(&key, pod("k", x % 100)).await.map(|_| ()),
                    Some(kv) if (x >> 20) % 4 == 0 => store.delete(&key, kv.mod_revision).await.map(|_| ()),
                    Some(kv) => store.update(&key, pod("k", x % 100), kv.mod_revision).await.map(|_| ()),
                };
                match r {
                    Ok(()) | Err(StorageError::Conflict { .. } | StorageError::NotFound { .. } | StorageError::AlreadyExists { .. }) => {}
                    Err(e) => panic!("{e:?}"),
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let end_rev = store.current_revision().await.unwrap();
    assert!(end_rev > start_rev + 50, "storm produced too few writes");

    // Every write is a single-key txn, so revisions start_rev+1..=end_rev each carry
    // exactly one event: any gap or duplicate shows up here.
    let mut state = initial;
    let mut expect = start_rev + 1;
    while expect <= end_rev {
        let ev = next_event(&mut w).await;
        assert_eq!(ev.revision, expect, "gap or duplicate");
        match ev.kind {
            EventType::Added => assert!(state.insert(ev.object.key.clone(), ev.revision).is_none()),
            EventType::Modified => assert!(state.insert(ev.object.key.clone(), ev.revision).is_some()),
            EventType::Deleted => assert!(state.remove(&ev.object.key).is_some()),
        }
        expect += 1;
    }
    let mut ns_events = 0;
    loop {
        match tokio::time::timeout(Duration::from_millis(300), ns_w.recv()).await {
            Ok(Some(Ok(WatchItem::Event(e)))) => {
                assert!(e.object.key.starts_with(&format!("{PODS}ns1/")));
                ns_events += 1;
            }
            Ok(Some(Ok(WatchItem::Progress(_)))) => {}
            Ok(other) => panic!("{other:?}"),
            Err(_) => break,
        }
    }
    assert!(ns_events > 0);

    let fresh = store.list(PODS, None, 0, 0).await.unwrap();
    let etcd_state: BTreeMap<String, i64> = fresh.items.iter().map(|kv| (kv.key.clone(), kv.mod_revision)).collect();
    assert_eq!(state, etcd_state, "replayed events disagree with etcd");
    c.wait_for_revision(end_rev, Duration::from_secs(10)).await.unwrap();
    let cached = c.list(PODS, None, 0, &|_| true);
    let cache_state: BTreeMap<String, i64> = cached.items.iter().map(|o| (o.key.clone(), o.revision)).collect();
    assert_eq!(cache_state, etcd_state, "cache disagrees with etcd");
    for (o, kv) in cached.items.iter().zip(&fresh.items) {
        let mut stored: serde_json::Value = serde_json::from_slice(&kv.value).unwrap();
        stored["metadata"]["resourceVersion"] = kv.mod_revision.to_string().into();
        assert_eq!(serde_json::from_slice::<serde_json::Value>(&o.bytes).unwrap(), stored);
    }

    // Paging and filtering over the snapshot.
    let on_node0 = c.list(PODS, None, 0, &|o| o.fields.iter().any(|(f, v)| *f == "spec.nodeName" && v == "node-0"));
    let mut paged = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = c.list(PODS, after.as_deref(), 2, &|o| o.fields.iter().any(|(f, v)| *f == "spec.nodeName" && v == "node-0"));
        paged.extend(page.items.iter().map(|o| o.key.clone()));
        after = page.last_key.clone();
        if !page.more {
            break;
        }
    }
    assert_eq!(paged, on_node0.items.iter().map(|o| o.key.clone()).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_watchers_fan_out() {
    let (_etcd, store) = etcd_and_store().await;
    let c = cache(&store, CacheLimits::default()).await;
    let mut tasks = Vec::new();
    for _ in 0..1000 {
        let mut w = c.watch(PODS, 0, false).unwrap();
        tasks.push(tokio::spawn(async move {
            let ev = next_event(&mut w).await;
            (Instant::now(), ev.revision)
        }));
    }
    let t0 = Instant::now();
    let rev = store.create(&format!("{PODS}default/fan"), pod("fan", 1)).await.unwrap();
    let mut latest = t0;
    for t in tasks {
        let (at, r) = t.await.unwrap();
        assert_eq!(r, rev);
        latest = latest.max(at);
    }
    eprintln!("fan-out to 1000 watchers: last delivery {:?} after the write was issued", latest - t0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_older_than_window_is_expired() {
    let (_etcd, store) = etcd_and_store().await;
    let limits = CacheLimits { window_events: 10, ..CacheLimits::default() };
    store.create(&format!("{CONFIGMAPS}default/x"), b"{}".to_vec()).await.unwrap();
    let c = cache(&store, limits).await;
    let start = c.revision();
    assert!(matches!(c.watch(PODS, start - 1, false), Err(StorageError::Expired { .. })));
    let mut revs = Vec::new();
    for i in 0..30 {
        revs.push(store.create(&format!("{PODS}default/p{i}"), pod("p", i)).await.unwrap());
    }
    c.wait_for_revision(*revs.last().unwrap(), Duration::from_secs(10)).await.unwrap();
    match c.watch(PODS, start, false) {
        Err(StorageError::Expired { requested, oldest }) => {
            assert_eq!(requested, start);
            assert_eq!(oldest, revs[19]);
        }
        other => panic!("expected Expired, got {:?}", other.err()),
    }
    // The last 10 events are still replayable, in order.
    let mut w = c.watch(PODS, revs[19], false).unwrap();
    for r in &revs[20..] {
        assert_eq!(next_event(&mut w).await.revision, *r);
    }
    let st = c.stats().into_iter().find(|s| s.prefix == PODS).unwrap();
    assert_eq!(st.window_events, 10);
    assert_eq!(st.oldest_revision, revs[19]);
    // Initial state: synthetic Added for all 30, then a progress marker at the snapshot.
    let mut w = c.watch(&format!("{PODS}default/"), 0, true).unwrap();
    for _ in 0..30 {
        match w.recv().await {
            Some(Ok(WatchItem::Event(e))) => assert_eq!(e.kind, EventType::Added),
            other => panic!("{other:?}"),
        }
    }
    assert!(matches!(w.recv().await, Some(Ok(WatchItem::Progress(r))) if r >= revs[29]));
    assert!(matches!(c.watch("/registry/nope/", 0, false), Err(StorageError::UnknownResource { .. })));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_watcher_is_dropped_with_lagged() {
    let (_etcd, store) = etcd_and_store().await;
    let limits = CacheLimits { watcher_buffer: 16, ..CacheLimits::default() };
    let c = cache(&store, limits).await;
    let mut w = c.watch(PODS, 0, false).unwrap();
    let mut last = 0;
    for i in 0..40 {
        last = store.create(&format!("{PODS}default/p{i}"), pod("p", i)).await.unwrap();
    }
    c.wait_for_revision(last, Duration::from_secs(10)).await.unwrap();
    match w.recv().await {
        Some(Err(StorageError::Lagged { revision })) => assert!(revision < last),
        other => panic!("expected Lagged, got {other:?}"),
    }
    assert!(w.recv().await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_survives_etcd_restart_and_compaction() {
    let (mut etcd, store) = etcd_and_store().await;
    let c = cache(&store, CacheLimits::default()).await;
    let key = format!("{PODS}default/a");
    let mut w = c.watch(PODS, 0, false).unwrap();
    let r1 = store.create(&key, pod("a", 1)).await.unwrap();
    assert_eq!(next_event(&mut w).await.revision, r1);

    etcd.restart().unwrap();
    let r2 = retry(|| store.update(&key, pod("a", 2), r1)).await.unwrap();
    let ev = next_event(&mut w).await;
    assert_eq!((ev.kind, ev.revision), (EventType::Modified, r2));
    assert_eq!(retry(|| c.consistent_revision()).await.unwrap(), r2);

    // While etcd is down, writes happen "behind the cache's back" via a second etcd life
    // that also compacts past them: the cache must relist and emit the differences.
    etcd.stop();
    etcd.restart().unwrap();
    let other = format!("{PODS}default/b");
    let rb = retry(|| store.create(&other, pod("b", 1))).await.unwrap();
    let r3 = store.delete(&key, r2).await.unwrap();
    store.compact(r3).await.unwrap();
    let mut kinds = Vec::new();
    while kinds.len() < 2 {
        let ev = next_event(&mut w).await;
        kinds.push((ev.kind, ev.object.key.clone()));
    }
    kinds.sort_by(|a, b| a.1.cmp(&b.1));
    assert_eq!(kinds, vec![(EventType::Deleted, key.clone()), (EventType::Added, other.clone())]);
    c.wait_for_revision(r3, Duration::from_secs(10)).await.unwrap();
    assert!(c.get(&key).is_none());
    assert_eq!(c.get(&other).unwrap().revision, rb);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relists_when_resume_revision_was_compacted() {
    let (etcd, writer) = etcd_and_store().await;
    let proxy = common::Proxy::start(&etcd.endpoint()).await;
    let via_proxy = Store::connect(std::slice::from_ref(&proxy.endpoint)).await.unwrap();
    let (a, b, k) = (format!("{PODS}default/a"), format!("{PODS}default/b"), format!("{PODS}default/keep"));
    let ra = writer.create(&a, pod("a", 1)).await.unwrap();
    let rk = writer.create(&k, pod("k", 1)).await.unwrap();
    let c = cache(&via_proxy, CacheLimits::default()).await;
    let before = c.revision();
    let mut w = c.watch(PODS, 0, false).unwrap();

    // The cache loses etcd; meanwhile history it never saw is written and compacted away.
    proxy.cut();
    let rb = writer.create(&b, pod("b", 1)).await.unwrap();
    writer.delete(&a, ra).await.unwrap();
    let rk2 = writer.update(&k, pod("k", 2), rk).await.unwrap();
    writer.compact(rk2).await.unwrap();
    proxy.heal();

    let mut seen = BTreeMap::new();
    let mut at = 0;
    while seen.len() < 3 {
        let ev = next_event(&mut w).await;
        at = ev.revision;
        seen.insert(ev.object.key.clone(), ev.kind);
    }
    assert_eq!(seen.get(&a), Some(&EventType::Deleted));
    assert_eq!(seen.get(&b), Some(&EventType::Added));
    assert_eq!(seen.get(&k), Some(&EventType::Modified));
    assert!(at >= rk2);
    assert_eq!(c.get(&b).unwrap().revision, rb);
    assert_eq!(c.get(&k).unwrap().revision, rk2);
    assert!(c.get(&a).is_none());
    // History before the relist is gone from the window too.
    assert!(matches!(c.watch(PODS, before, false), Err(StorageError::Expired { .. })));
    // And the cache is live again afterwards.
    let rc = writer.create(&format!("{PODS}default/c"), pod("c", 1)).await.unwrap();
    assert_eq!(next_event(&mut w).await.revision, rc);
}
