//! Informers against a real rkube-apiserver and etcd: the cache converges to the store after a
//! storm of concurrent writes, across an API server restart, and after the watch position has
//! been compacted away (relist on 410).

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use rkube_client::{Api, Client, DeleteParams, Event, Informer, ListParams, Store};
use rkube_testkit::{ApiServer, Etcd};
use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

fn configmap(ns: &str, name: &str, value: &str) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta { name: Some(name.into()), namespace: Some(ns.into()), ..Default::default() },
        data: Some(BTreeMap::from([("v".to_string(), value.to_string())])),
        ..Default::default()
    }
}

/// key -> resourceVersion, of the store and of a fresh list.
fn snapshot(store: &Store<ConfigMap>) -> BTreeMap<String, String> {
    store
        .list()
        .iter()
        .map(|c| (rkube_client::object_key(&c.metadata), c.metadata.resource_version.clone().unwrap_or_default()))
        .collect()
}

async fn truth(api: &Api<ConfigMap>) -> BTreeMap<String, String> {
    let list = api.list(&ListParams::default()).await.expect("list");
    list.items
        .iter()
        .map(|c| (rkube_client::object_key(&c.metadata), c.metadata.resource_version.clone().unwrap_or_default()))
        .collect()
}

/// Waits until the informer's cache equals a fresh list, or fails with the difference.
async fn assert_converges(store: &Store<ConfigMap>, api: &Api<ConfigMap>) {
    let mut last = (BTreeMap::new(), BTreeMap::new());
    for _ in 0..200 {
        let want = truth(api).await;
        let have = snapshot(store);
        if want == have {
            return;
        }
        last = (want, have);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (want, have) = last;
    let missing: Vec<_> = want.iter().filter(|(k, v)| have.get(*k) != Some(v)).collect();
    let extra: Vec<_> = have.keys().filter(|k| !want.contains_key(*k)).collect();
    panic!(
        "cache did not converge: {} stale or missing (e.g. {:?}), {} extra (e.g. {:?})",
        missing.len(),
        missing.first(),
        extra.len(),
        extra.first()
    );
}

struct Seen {
    deleted: Mutex<HashSet<String>>,
}

fn start_informer(client: &Client, cancel: &CancellationToken) -> (Store<ConfigMap>, Arc<Seen>) {
    let mut informer = Informer::new(client.api::<ConfigMap>(None), ListParams::default());
    let seen = Arc::new(Seen { deleted: Mutex::new(HashSet::new()) });
    let s = seen.clone();
    informer.on_event(move |e| {
        if let Event::Deleted(c) = e {
            s.deleted.lock().unwrap().insert(rkube_client::object_key(&c.metadata));
        }
    });
    let store = informer.store();
    tokio::spawn(informer.run(cancel.clone()));
    (store, seen)
}

async fn storm(api: &Api<ConfigMap>, writer: usize, count: usize) {
    for i in 0..count {
        let name = format!("w{writer}-{i}");
        let mut cm = api.create(&configmap("default", &name, "0")).await.expect("create");
        if i % 2 == 0 {
            cm.data = Some(BTreeMap::from([("v".to_string(), "1".to_string())]));
            api.update(&cm).await.expect("update");
        }
        if i % 3 == 0 {
            api.delete(&name, &DeleteParams::default()).await.expect("delete");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_converges_after_a_storm_of_writes() {
    let etcd = Etcd::start().expect("etcd");
    let server = ApiServer::start(&etcd).expect("apiserver");
    let client = Client::new(&server.url()).unwrap();
    let api = client.api::<ConfigMap>(Some("default"));
    api.create(&configmap("default", "before", "x")).await.unwrap();
    let cancel = CancellationToken::new();
    let (store, seen) = start_informer(&client, &cancel);
    tokio::time::timeout(Duration::from_secs(10), store.wait_synced()).await.expect("informer syncs");
    assert!(store.get("default/before").is_some(), "the initial list is cached");

    let writers: Vec<_> = (0..4)
        .map(|w| {
            tokio::spawn({
                let api = api.clone();
                async move { storm(&api, w, 60).await }
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    assert_converges(&store, &api).await;
    assert_eq!(store.len(), 1 + 4 * 40, "60 per writer, every third deleted");
    assert_eq!(seen.deleted.lock().unwrap().len(), 4 * 20, "every delete was seen as an event");
    let updated = store.get("default/w0-2").expect("w0-2 exists");
    assert_eq!(updated.data.as_ref().unwrap()["v"], "1", "the cache holds the latest state");
    cancel.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_converges_across_an_api_server_restart() {
    let etcd = Etcd::start().expect("etcd");
    let mut server = ApiServer::start(&etcd).expect("apiserver");
    let client = Client::new(&server.url()).unwrap();
    let api = client.api::<ConfigMap>(Some("default"));
    let cancel = CancellationToken::new();
    let (store, _) = start_informer(&client, &cancel);
    store.wait_synced().await;
    storm(&api, 0, 30).await;
    assert_converges(&store, &api).await;

    tokio::task::block_in_place(|| server.restart()).expect("apiserver restarts");
    storm(&api, 1, 30).await;
    api.delete("w0-1", &DeleteParams::default()).await.unwrap();
    assert_converges(&store, &api).await;
    assert!(store.get("default/w1-29").is_some());
    assert!(store.get("default/w0-1").is_none());
    cancel.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_relists_after_its_watch_position_is_compacted() {
    let etcd = Etcd::start().expect("etcd");
    let mut watched = ApiServer::start(&etcd).expect("apiserver A");
    let other = ApiServer::start(&etcd).expect("apiserver B");
    let client = Client::new(&watched.url()).unwrap();
    let writer = Client::new(&other.url()).unwrap().api::<ConfigMap>(Some("default"));
    for i in 0..10 {
        writer.create(&configmap("default", &format!("old-{i}"), "0")).await.unwrap();
    }
    let cancel = CancellationToken::new();
    let (store, seen) = start_informer(&client, &cancel);
    store.wait_synced().await;
    assert_converges(&store, &client.api(Some("default"))).await;

    // While the informer's API server is down, the world moves on and history is compacted.
    watched.stop();
    for i in 0..5 {
        writer.delete(&format!("old-{i}"), &DeleteParams::default()).await.unwrap();
    }
    for i in 0..20 {
        writer.create(&configmap("default", &format!("new-{i}"), "0")).await.unwrap();
    }
    let revision = writer.list(&ListParams::default()).await.unwrap().resource_version.parse::<i64>().unwrap();
    let mut etcd_client = etcd_client::Client::connect([etcd.endpoint()], None).await.expect("etcd client");
    etcd_client.compact(revision, None).await.expect("compaction");
    tokio::task::block_in_place(|| watched.restart()).expect("apiserver A restarts");

    assert_converges(&store, &writer).await;
    assert_eq!(store.len(), 25);
    let deleted = seen.deleted.lock().unwrap().clone();
    for i in 0..5 {
        assert!(deleted.contains(&format!("default/old-{i}")), "the relist reported old-{i} as deleted: {deleted:?}");
    }
    cancel.cancel();
}
