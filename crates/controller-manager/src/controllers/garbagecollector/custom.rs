//! Custom resources in the collector: a CustomResourceDefinition informer says which resources
//! exist; for each Established definition a dynamic informer on its resource (the storage
//! version, else a served one) feeds the same graph as the built-in kinds, and its kind joins
//! the [`Kinds`] table so owner references to it resolve. When the definition goes (or stops
//! being Established, or moves to another version) that informer stops, the kind is marked
//! gone and its nodes leave the graph, queueing their dependents as any removal does.

use super::apply;
use super::graph::Graph;
use super::kinds::{Change, Dynamic, Kind, Kinds};
use crate::informers::SharedInformers;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use rkube_client::{ApiResource, Client, DynamicObject, Event, Informer, ListParams, WorkQueue};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// What the definition informer saw.
enum Message {
    /// A definition exists in this state.
    Upsert(Arc<CustomResourceDefinition>),
    /// The definition with this name is gone.
    Remove(String),
}

/// The dynamic informer of one definition's resource.
struct Running {
    resource: ApiResource,
    index: usize,
    cancel: CancellationToken,
}

/// Starts and stops the dynamic informers as definitions come and go.
struct Custom {
    client: Client,
    kinds: Arc<Kinds>,
    graph: Arc<Mutex<Graph>>,
    queue: WorkQueue<String>,
    /// By definition name.
    running: HashMap<String, Running>,
    /// Slots of resources no longer watched, reused when the same resource comes back.
    retired: HashMap<ApiResource, usize>,
}

/// Watches CustomResourceDefinitions (through the shared informers) and, once the informers
/// start, runs a dynamic informer per established definition until they stop.
pub fn watch(
    informers: &SharedInformers,
    client: Client,
    kinds: Arc<Kinds>,
    graph: Arc<Mutex<Graph>>,
    queue: WorkQueue<String>,
) {
    let (tx, rx) = mpsc::unbounded_channel();
    informers.on_event::<CustomResourceDefinition>(move |e| {
        // The receiver only goes when the controller-manager stops leading.
        let _ = match e {
            Event::Added(crd) => tx.send(Message::Upsert(crd.clone())),
            Event::Updated { old, new } => {
                if old.metadata.uid != new.metadata.uid {
                    let _ = tx.send(Message::Remove(old.metadata.name.clone().unwrap_or_default()));
                }
                tx.send(Message::Upsert(new.clone()))
            }
            Event::Deleted(crd) => tx.send(Message::Remove(crd.metadata.name.clone().unwrap_or_default())),
        };
    });
    let custom = Custom { client, kinds, graph, queue, running: HashMap::new(), retired: HashMap::new() };
    informers.on_start(move |cancel| {
        tokio::spawn(custom.run(rx, cancel));
    });
}

impl Custom {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Message>, cancel: CancellationToken) {
        loop {
            let message = tokio::select! {
                m = rx.recv() => m,
                _ = cancel.cancelled() => None,
            };
            match message {
                None => break,
                Some(Message::Upsert(crd)) => {
                    let name = crd.metadata.name.clone().unwrap_or_default();
                    let desired = served_resource(&crd);
                    if self.running.get(&name).map(|r| &r.resource) == desired.as_ref() {
                        continue;
                    }
                    if let Some(r) = self.running.remove(&name) {
                        self.stop(&name, r);
                    }
                    if let Some(resource) = desired {
                        let running = self.start(&name, resource, &cancel);
                        self.running.insert(name, running);
                    }
                }
                Some(Message::Remove(name)) => {
                    if let Some(r) = self.running.remove(&name) {
                        self.stop(&name, r);
                    }
                }
            }
        }
        // Every dynamic informer's token is a child of `cancel`: they stop with it.
    }

    fn start(&mut self, name: &str, resource: ApiResource, cancel: &CancellationToken) -> Running {
        let index = match self.retired.remove(&resource) {
            Some(index) => {
                self.kinds.set_present(index, true);
                index
            }
            None => self.kinds.add(Arc::new(Dynamic::new(resource.clone()))),
        };
        let info = Dynamic::new(resource.clone()).info();
        let token = cancel.child_token();
        let mut informer = Informer::new(self.client.dynamic(&resource, None), ListParams::default());
        let (graph, queue, alive) = (self.graph.clone(), self.queue.clone(), token.clone());
        informer.on_event(move |e: &Event<DynamicObject>| {
            let feed = |change| apply(&graph, &queue, index, info, change, Some(&alive));
            match e {
                Event::Added(o) => feed(Change::Upsert(&o.metadata)),
                Event::Updated { old, new } => {
                    // A relist may show a new object where an unseen delete removed the old one.
                    if old.metadata.uid != new.metadata.uid {
                        feed(Change::Remove(&old.metadata));
                    }
                    feed(Change::Upsert(&new.metadata));
                }
                Event::Deleted(o) => feed(Change::Remove(&o.metadata)),
            }
        });
        tokio::spawn(informer.run(token.clone()));
        // Until now an owner of this kind counted as present unseen: its dependents look again.
        let keys = self.graph.lock().unwrap_or_else(|e| e.into_inner()).referring_to(&resource.group, &resource.kind);
        for key in keys {
            self.queue.add(key);
        }
        tracing::info!(crd = name, group = %resource.group, version = %resource.version, kind = %resource.kind, index, "watching custom resource");
        Running { resource, index, cancel: token }
    }

    fn stop(&mut self, name: &str, running: Running) {
        running.cancel.cancel();
        // Gone from lookups first, so the dependents queued below find their owner's kind unknown.
        self.kinds.set_present(running.index, false);
        let keys = self.graph.lock().unwrap_or_else(|e| e.into_inner()).remove_kind(running.index);
        for key in keys {
            self.queue.add(key);
        }
        tracing::info!(crd = name, kind = %running.resource.kind, index = running.index, "stopped watching custom resource");
        self.retired.insert(running.resource, running.index);
    }
}

/// The resource an Established definition serves, in its storage version if that one is
/// served, else in any served version; `None` for a definition not (or no longer) Established.
pub fn served_resource(crd: &CustomResourceDefinition) -> Option<ApiResource> {
    let status = crd.status.as_ref()?;
    let established = status.conditions.iter().flatten().any(|c| c.type_ == "Established" && c.status == "True");
    if !established {
        return None;
    }
    let spec = &crd.spec;
    let version =
        spec.versions.iter().find(|v| v.storage && v.served).or_else(|| spec.versions.iter().find(|v| v.served))?;
    // The names the API server accepted are the ones it serves.
    let names = status.accepted_names.as_ref().filter(|n| !n.kind.is_empty()).unwrap_or(&spec.names);
    Some(ApiResource {
        group: spec.group.clone(),
        version: version.name.clone(),
        kind: names.kind.clone(),
        plural: names.plural.clone(),
        namespaced: spec.scope == "Namespaced",
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn crd(versions: serde_json::Value, established: &str) -> CustomResourceDefinition {
        serde_json::from_value(json!({
            "metadata": {"name": "widgets.example.com"},
            "spec": {
                "group": "example.com", "scope": "Namespaced",
                "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
                "versions": versions,
            },
            "status": {
                "conditions": [{"type": "Established", "status": established}],
                "acceptedNames": {"plural": "widgets", "kind": "Widget"},
                "storedVersions": ["v1"],
            },
        }))
        .expect("a valid CRD")
    }

    #[test]
    fn the_storage_version_is_watched_when_served() {
        let v = |name: &str, served: bool, storage: bool| json!({"name": name, "served": served, "storage": storage});
        let r = served_resource(&crd(json!([v("v1", true, false), v("v2", true, true)]), "True")).unwrap();
        assert_eq!((r.group.as_str(), r.version.as_str(), r.kind.as_str()), ("example.com", "v2", "Widget"));
        assert_eq!((r.plural.as_str(), r.namespaced), ("widgets", true));
        let r = served_resource(&crd(json!([v("v1", true, false), v("v2", false, true)]), "True")).unwrap();
        assert_eq!(r.version, "v1", "an unserved storage version falls back to a served one");
        assert!(served_resource(&crd(json!([v("v1", false, true)]), "True")).is_none());
        assert!(served_resource(&crd(json!([v("v1", true, true)]), "False")).is_none());
    }
}
