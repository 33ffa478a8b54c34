//! Records core/v1 Events about objects (`kubectl describe` shows them) without slowing the
//! caller: events go through a bounded channel and are dropped when it is full, as Kubernetes'
//! event broadcaster does, and a repeat of the same reason and message for the same object
//! bumps the existing Event's count instead of creating another.

use crate::{Client, PatchType};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use k8s_openapi::{Metadata, Resource};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

/// Events waiting to be written; beyond this, new ones are dropped.
const QUEUE: usize = 1000;
/// Events written at once.
const CONCURRENCY: usize = 16;
/// Repeats remembered for aggregation; the memory is cleared beyond this.
const REMEMBERED: usize = 4096;

/// `Normal` or `Warning`, as Kubernetes' Event type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// Something expected happened.
    Normal,
    /// Something a user may need to act on.
    Warning,
}

impl EventType {
    fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

struct Pending {
    component: Arc<str>,
    regarding: ObjectReference,
    event_type: EventType,
    reason: String,
    message: String,
}

/// A cheap, cloneable handle that queues Events for writing.
#[derive(Clone)]
pub struct EventRecorder {
    tx: mpsc::Sender<Pending>,
    component: Arc<str>,
}

/// Where an earlier Event with the same object, reason and message lives, and its count.
type Seen = Arc<Mutex<HashMap<(String, String, String), (String, i32)>>>;

impl EventRecorder {
    /// A recorder writing as `component` (e.g. "default-scheduler") from `instance` (this
    /// process's identity); the writer task runs until every recorder clone is dropped.
    pub fn new(client: &Client, component: &str, instance: &str) -> EventRecorder {
        let (tx, rx) = mpsc::channel(QUEUE);
        let writer = Writer { client: client.clone(), instance: instance.to_string(), seen: Seen::default() };
        tokio::spawn(async move {
            ReceiverStream::new(rx).for_each_concurrent(CONCURRENCY, |p| writer.write(p)).await;
        });
        EventRecorder { tx, component: Arc::from(component) }
    }

    /// The same recorder (one queue, one writer) reporting as another component, e.g. one
    /// recorder per controller ("replicaset-controller") as Kubernetes' events name them.
    pub fn for_component(&self, component: &str) -> EventRecorder {
        EventRecorder { tx: self.tx.clone(), component: Arc::from(component) }
    }

    /// Queues an Event about `object`; dropped (with a debug log) when the queue is full.
    pub fn record<K: Resource + Metadata<Ty = ObjectMeta>>(
        &self,
        object: &K,
        event_type: EventType,
        reason: &str,
        message: &str,
    ) {
        self.record_about(K::API_VERSION, K::KIND, object.metadata(), event_type, reason, message);
    }

    /// Queues an Event about the object of `api_version`/`kind` with metadata `meta`, for
    /// objects whose type does not carry those (such as a `DynamicObject`).
    pub fn record_about(
        &self,
        api_version: &str,
        kind: &str,
        meta: &ObjectMeta,
        event_type: EventType,
        reason: &str,
        message: &str,
    ) {
        let regarding = ObjectReference {
            api_version: Some(api_version.to_string()),
            kind: Some(kind.to_string()),
            namespace: meta.namespace.clone(),
            name: meta.name.clone(),
            uid: meta.uid.clone(),
            resource_version: meta.resource_version.clone(),
            ..Default::default()
        };
        let pending = Pending {
            component: self.component.clone(),
            regarding,
            event_type,
            reason: reason.to_string(),
            message: message.to_string(),
        };
        if self.tx.try_send(pending).is_err() {
            tracing::debug!(reason, "event queue full; event dropped");
        }
    }
}

struct Writer {
    client: Client,
    instance: String,
    seen: Seen,
}

impl Writer {
    async fn write(&self, p: Pending) {
        let namespace = p.regarding.namespace.clone().filter(|n| !n.is_empty()).unwrap_or_else(|| "default".into());
        let api = self.client.api::<Event>(Some(&namespace));
        let correlation = (p.regarding.uid.clone().unwrap_or_default(), p.reason.clone(), p.message.clone());
        let now = jiff::Timestamp::now();
        let repeat = self.seen.lock().unwrap_or_else(|e| e.into_inner()).get(&correlation).cloned();
        if let Some((name, count)) = repeat {
            let patch = serde_json::json!({"count": count + 1, "lastTimestamp": Time(now)});
            match api.patch(&name, PatchType::Merge, &patch).await {
                Ok(_) => {
                    self.remember(correlation, name, count + 1);
                    return;
                }
                Err(e) if e.is_not_found() => {}
                Err(e) => {
                    tracing::warn!(event = %name, error = %e, "updating an event failed");
                    return;
                }
            }
        }
        let object_name = p.regarding.name.clone().unwrap_or_default();
        let event = Event {
            metadata: ObjectMeta {
                // Kubernetes names events `<object>.<unique hex>`.
                name: Some(format!("{object_name}.{:016x}", rand::random::<u64>())),
                namespace: Some(namespace),
                ..Default::default()
            },
            involved_object: p.regarding,
            reason: Some(p.reason),
            message: Some(p.message),
            type_: Some(p.event_type.as_str().to_string()),
            count: Some(1),
            first_timestamp: Some(Time(now)),
            last_timestamp: Some(Time(now)),
            event_time: Some(MicroTime(now)),
            source: Some(EventSource { component: Some(p.component.to_string()), host: None }),
            reporting_component: Some(p.component.to_string()),
            reporting_instance: Some(self.instance.clone()),
            ..Default::default()
        };
        match api.create(&event).await {
            Ok(created) => self.remember(correlation, created.metadata.name.unwrap_or_default(), 1),
            Err(e) => tracing::warn!(error = %e, "recording an event failed"),
        }
    }

    fn remember(&self, key: (String, String, String), name: String, count: i32) {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if seen.len() >= REMEMBERED {
            seen.clear();
        }
        seen.insert(key, (name, count));
    }
}
