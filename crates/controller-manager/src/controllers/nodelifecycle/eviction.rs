//! Taint eviction controller (Kubernetes' taint-eviction-controller, formerly the node
//! lifecycle controller's taint manager): a pod on a node with a NoExecute taint it does not
//! tolerate is deleted at once; one that tolerates every such taint for a limited
//! tolerationSeconds is deleted when the shortest of them has passed since the controller
//! first saw the pod exposed, unless the taint goes away first. Deletion is a plain DELETE,
//! so the pod's owner replaces it elsewhere.

use super::taints::{NO_EXECUTE, toleration_time};
use crate::informers::SharedInformers;
use crate::{Action, Context, Controller, Error, Registration};
use k8s_openapi::api::core::v1::{Node, Pod, PodCondition, Taint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use rkube_client::store::{NODE_NAME_INDEX, pod_node_name};
use rkube_client::{DeleteParams, Event, EventType, Store, WorkQueue, object_key};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Evicts pods from nodes with NoExecute taints they do not tolerate (long enough).
pub struct TaintEvictionController {
    ctx: Context,
    nodes: Store<Node>,
    pods: Store<Pod>,
    /// Pods with a pending timed eviction: pod key -> (uid, when the countdown started).
    scheduled: Mutex<HashMap<String, (String, jiff::Timestamp)>>,
}

fn no_execute_taints(node: &Node) -> Vec<Taint> {
    let taints = node.spec.as_ref().and_then(|s| s.taints.as_deref()).unwrap_or_default();
    taints.iter().filter(|t| t.effect == NO_EXECUTE).cloned().collect()
}

/// Queues a pod when it lands on a node or its tolerations change, and every pod of a node
/// whose NoExecute taints change.
pub fn register(ctx: &Context, informers: &SharedInformers) -> Registration {
    let queue = WorkQueue::new();
    let pods: Store<Pod> = informers.store();
    pods.add_index(NODE_NAME_INDEX, pod_node_name);
    let q = queue.clone();
    informers.on_event::<Pod>(move |e| match e {
        Event::Added(p) if !pod_node_name(p).is_empty() => q.add(object_key(&p.metadata)),
        Event::Updated { old, new } => {
            let spec = |p: &Pod| p.spec.as_ref().map(|s| (s.node_name.clone(), s.tolerations.clone()));
            if spec(old) != spec(new) || old.metadata.deletion_timestamp != new.metadata.deletion_timestamp {
                q.add(object_key(&new.metadata));
            }
        }
        Event::Deleted(p) => q.add(object_key(&p.metadata)),
        Event::Added(_) => {}
    });
    let q = queue.clone();
    let by_node = pods.clone();
    informers.on_event::<Node>(move |e| {
        let (node, changed) = match e {
            Event::Added(n) => (n, !no_execute_taints(n).is_empty()),
            Event::Updated { old, new } => (new, no_execute_taints(old) != no_execute_taints(new)),
            Event::Deleted(n) => (n, !no_execute_taints(n).is_empty()),
        };
        if changed {
            for pod in by_node.by_index(NODE_NAME_INDEX, node.metadata.name.as_deref().unwrap_or_default()) {
                q.add(object_key(&pod.metadata));
            }
        }
    });
    let controller =
        TaintEvictionController { ctx: ctx.clone(), nodes: informers.store(), pods, scheduled: Mutex::default() };
    Registration::new(Arc::new(controller), queue)
}

impl Controller for TaintEvictionController {
    fn name(&self) -> &'static str {
        "taint-eviction-controller"
    }

    async fn reconcile(&self, key: &str) -> Result<Action, Error> {
        let pod = self.pods.get(key);
        let exposed = pod.as_ref().filter(|p| p.metadata.deletion_timestamp.is_none()).and_then(|p| {
            let node = self.nodes.get(p.spec.as_ref()?.node_name.as_deref()?)?;
            let taints = no_execute_taints(&node);
            (!taints.is_empty()).then_some((p.clone(), taints))
        });
        let Some((pod, taints)) = exposed else {
            self.cancel(key, pod.as_deref());
            return Ok(Action::Done);
        };
        let tolerations = pod.spec.as_ref().and_then(|s| s.tolerations.as_deref()).unwrap_or_default();
        let wait = match toleration_time(tolerations, &taints) {
            // A taint it does not tolerate: now.
            None => Duration::ZERO,
            // Tolerated for ever.
            Some(None) => {
                self.cancel(key, Some(&pod));
                return Ok(Action::Done);
            }
            Some(Some(d)) => d,
        };
        let now = jiff::Timestamp::now();
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let started = self.with_scheduled(|s| {
            let entry = s.entry(key.to_string()).or_insert_with(|| (uid.clone(), now));
            if entry.0 != uid {
                *entry = (uid.clone(), now);
            }
            entry.1
        });
        let elapsed = now.duration_since(started).unsigned_abs();
        if elapsed < wait {
            tracing::debug!(pod = key, in_secs = (wait - elapsed).as_secs_f64(), "eviction scheduled");
            return Ok(Action::RequeueAfter(wait - elapsed));
        }
        self.evict(key, &pod, &taints).await?;
        self.with_scheduled(|s| s.remove(key));
        Ok(Action::Done)
    }
}

impl TaintEvictionController {
    fn with_scheduled<T>(&self, f: impl FnOnce(&mut HashMap<String, (String, jiff::Timestamp)>) -> T) -> T {
        f(&mut self.scheduled.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Drops a pending eviction (taint gone, pod tolerates it, or pod gone), with the event
    /// Kubernetes records when a live pod is spared.
    fn cancel(&self, key: &str, pod: Option<&Pod>) {
        if self.with_scheduled(|s| s.remove(key)).is_some()
            && let Some(pod) = pod.filter(|p| p.metadata.deletion_timestamp.is_none())
        {
            self.ctx.recorder.record(
                pod,
                EventType::Normal,
                "TaintManagerEviction",
                &format!("Cancelling deletion of Pod {key}"),
            );
        }
    }

    /// Marks the pod with the DisruptionTarget condition and deletes it.
    async fn evict(&self, key: &str, pod: &Pod, taints: &[Taint]) -> Result<(), Error> {
        let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
        let name = pod.metadata.name.as_deref().unwrap_or_default();
        let api = self.ctx.client.api::<Pod>(Some(namespace));
        let has_condition = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "DisruptionTarget" && c.status == "True"));
        if !has_condition {
            let mut marked = pod.clone();
            let conditions = marked.status.get_or_insert_with(Default::default).conditions.get_or_insert_with(Vec::new);
            conditions.retain(|c| c.type_ != "DisruptionTarget");
            conditions.push(PodCondition {
                type_: "DisruptionTarget".into(),
                status: "True".into(),
                reason: Some("DeletionByTaintManager".into()),
                message: Some("Taint manager: deleting due to NoExecute taint".into()),
                last_transition_time: Some(Time(jiff::Timestamp::now())),
                ..Default::default()
            });
            match api.update_status(&marked).await {
                Ok(_) => {}
                Err(e) if e.is_not_found() => return Ok(()),
                Err(e) => return Err(e.into()),
            }
        }
        self.ctx.recorder.record(
            pod,
            EventType::Normal,
            "TaintManagerEviction",
            &format!("Marking for deletion Pod {key}"),
        );
        let params = DeleteParams { precondition_uid: pod.metadata.uid.clone(), ..Default::default() };
        match api.delete(name, &params).await {
            Ok(()) => {
                let taints: Vec<String> = taints.iter().map(|t| t.key.clone()).collect();
                tracing::info!(pod = key, ?taints, "evicted pod from a NoExecute-tainted node");
                Ok(())
            }
            Err(e) if e.is_not_found() || e.is_conflict() => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}
