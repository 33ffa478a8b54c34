//! Node lifecycle controller: notices nodes whose kubelet stopped renewing its Lease in
//! `kube-node-lease` and posting Ready heartbeats, marks their conditions Unknown
//! ("Kubelet stopped posting node status."), marks their pods not ready, and keeps the
//! condition taints (`node.kubernetes.io/unreachable`, `not-ready`, the pressure taints,
//! `unschedulable`) in step with the node's conditions, removing them when it recovers.
//! Pods are evicted from NoExecute-tainted nodes by the taint eviction controller
//! ([`eviction`]), as in Kubernetes since the two were split.
//!
//! A stopped heartbeat produces no event, so every node is re-checked each
//! `--node-monitor-period`. Like Kubernetes, the controller times heartbeats by when *it* saw
//! them change, not by the timestamps written in them, so clock skew does not matter and a
//! freshly started controller gives every node a full grace period.

pub mod eviction;
pub mod taints;

use crate::informers::SharedInformers;
use crate::objects::pod_ready;
use crate::{Action, Context, Controller, Error, Registration};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, NodeCondition, Pod, PodCondition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use rkube_client::store::{NODE_NAME_INDEX, pod_node_name};
use rkube_client::{Event, EventType, Store, WorkQueue};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Namespace of the kubelets' heartbeat Leases, one per node, named like the node.
pub const NODE_LEASE_NAMESPACE: &str = "kube-node-lease";
/// Conditions set to Unknown when the kubelet stops reporting.
const UNKNOWN_WHEN_SILENT: &[&str] = &["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"];

/// What the controller last saw of a node's heartbeats, and when it saw them change.
#[derive(Debug, Clone)]
struct Health {
    /// When a heartbeat was last seen to change (the controller's clock).
    probe: jiff::Timestamp,
    /// The Ready condition's lastHeartbeatTime when last seen (None: no Ready condition).
    heartbeat: Option<Option<jiff::Timestamp>>,
    /// The Lease's renewTime when last seen.
    renewed: Option<jiff::Timestamp>,
}

/// Watches node heartbeats and keeps node conditions and taints honest.
pub struct NodeLifecycleController {
    ctx: Context,
    nodes: Store<Node>,
    leases: Store<Lease>,
    pods: Store<Pod>,
    health: Mutex<HashMap<String, Health>>,
}

/// Queues a node on its own changes and its Lease's renewals.
pub fn register(ctx: &Context, informers: &SharedInformers) -> Registration {
    let queue = WorkQueue::new();
    let q = queue.clone();
    informers.on_event::<Node>(move |e| {
        let (Event::Added(n) | Event::Updated { new: n, .. } | Event::Deleted(n)) = e;
        q.add(n.metadata.name.clone().unwrap_or_default());
    });
    let q = queue.clone();
    informers.on_event::<Lease>(move |e| {
        let (Event::Added(l) | Event::Updated { new: l, .. } | Event::Deleted(l)) = e;
        if l.metadata.namespace.as_deref() == Some(NODE_LEASE_NAMESPACE) {
            q.add(l.metadata.name.clone().unwrap_or_default());
        }
    });
    let pods: Store<Pod> = informers.store();
    pods.add_index(NODE_NAME_INDEX, pod_node_name);
    let controller = NodeLifecycleController {
        ctx: ctx.clone(),
        nodes: informers.store(),
        leases: informers.store(),
        pods,
        health: Mutex::default(),
    };
    Registration::new(Arc::new(controller), queue)
}

impl Controller for NodeLifecycleController {
    fn name(&self) -> &'static str {
        "nodelifecycle"
    }

    async fn reconcile(&self, name: &str) -> Result<Action, Error> {
        let Some(cached) = self.nodes.get(name) else {
            self.with_health(|h| h.remove(name));
            return Ok(Action::Done);
        };
        let now = jiff::Timestamp::now();
        let (probe, grace) = self.observe(&cached, now);
        let mut node = (*cached).clone();
        let was = taints::condition_status(&node, "Ready").unwrap_or("Unknown").to_string();
        let silent_for = now.duration_since(probe);
        if silent_for > jiff::SignedDuration::try_from(grace).unwrap_or(jiff::SignedDuration::MAX)
            && mark_unknown(&mut node, now)
        {
            node = self.ctx.client.api::<Node>(None).update_status(&node).await?;
            self.remember_written(&node);
            tracing::info!(
                node = name,
                silent_secs = silent_for.as_secs(),
                "node stopped posting status; marked Unknown"
            );
            if was == "True" {
                self.ctx.recorder.record(
                    &node,
                    EventType::Normal,
                    "NodeNotReady",
                    &format!("Node {name} status is now: NodeNotReady"),
                );
            }
        }
        if taints::condition_status(&node, "Ready") == Some("Unknown") {
            // Nobody else will: the kubelet that would report these pods is silent.
            self.mark_pods_not_ready(name, now).await?;
        }
        if let Some(wanted) = taints::desired_taints(&node, now) {
            let before: Vec<String> = taint_names(node.spec.as_ref().and_then(|s| s.taints.as_deref()));
            node.spec.get_or_insert_with(Default::default).taints = (!wanted.is_empty()).then_some(wanted);
            let written = self.ctx.client.api::<Node>(None).update(&node).await?;
            let after = taint_names(written.spec.as_ref().and_then(|s| s.taints.as_deref()));
            tracing::info!(node = name, ?before, ?after, "updated node taints");
        }
        Ok(Action::RequeueAfter(self.ctx.config.node_monitor_period))
    }
}

impl NodeLifecycleController {
    fn with_health<T>(&self, f: impl FnOnce(&mut HashMap<String, Health>) -> T) -> T {
        f(&mut self.health.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Notes the node's heartbeats; returns when one was last seen to change and the grace
    /// period that applies (the startup grace for a node that never reported Ready).
    fn observe(&self, node: &Node, now: jiff::Timestamp) -> (jiff::Timestamp, Duration) {
        let name = node.metadata.name.clone().unwrap_or_default();
        let ready = ready_condition(node);
        let heartbeat = ready.map(|c| c.last_heartbeat_time.as_ref().map(|t| t.0));
        let lease = self.leases.get(&format!("{NODE_LEASE_NAMESPACE}/{name}"));
        let renewed = lease.as_ref().and_then(|l| l.spec.as_ref()).and_then(|s| s.renew_time.as_ref()).map(|t| t.0);
        let config = &self.ctx.config;
        let grace = if ready.is_some() { config.node_monitor_grace_period } else { config.node_startup_grace_period };
        let probe = self.with_health(|all| {
            let health = all.entry(name).or_insert_with(|| Health {
                // A node that never reported is timed from its creation, as in Kubernetes.
                probe: match ready {
                    None => node.metadata.creation_timestamp.as_ref().map_or(now, |t| t.0),
                    Some(_) => now,
                },
                heartbeat,
                renewed: None,
            });
            if health.heartbeat != heartbeat {
                health.heartbeat = heartbeat;
                health.probe = now;
            }
            if renewed.is_some() && renewed > health.renewed {
                health.renewed = renewed;
                health.probe = now;
            }
            health.probe
        });
        (probe, grace)
    }

    /// After writing the node's status, its Ready heartbeat is ours, not a sign of life.
    fn remember_written(&self, node: &Node) {
        let name = node.metadata.name.clone().unwrap_or_default();
        let heartbeat = ready_condition(node).map(|c| c.last_heartbeat_time.as_ref().map(|t| t.0));
        self.with_health(|all| {
            if let Some(h) = all.get_mut(&name) {
                h.heartbeat = heartbeat;
            }
        });
    }

    /// Sets the Ready condition of every pod on the node to False (Kubernetes'
    /// MarkPodsNotReady), so Services stop sending them traffic.
    async fn mark_pods_not_ready(&self, node: &str, now: jiff::Timestamp) -> Result<(), Error> {
        for pod in self.pods.by_index(NODE_NAME_INDEX, node) {
            let Some(ready) = pod
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
            else {
                continue;
            };
            if ready.status == "False" {
                continue;
            }
            let mut updated = (*pod).clone();
            let was_ready = pod_ready(&pod);
            if let Some(c) = updated
                .status
                .as_mut()
                .and_then(|s| s.conditions.as_mut())
                .and_then(|cs| cs.iter_mut().find(|c| c.type_ == "Ready"))
            {
                *c = PodCondition { status: "False".into(), last_transition_time: Some(Time(now)), ..c.clone() };
            }
            let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
            match self.ctx.client.api::<Pod>(Some(namespace)).update_status(&updated).await {
                Ok(_) => {
                    tracing::info!(node, pod = ?pod.metadata.name, was_ready, "marked pod not ready");
                    self.ctx.recorder.record(&*pod, EventType::Warning, "NodeNotReady", "Node is not ready");
                }
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}

fn ready_condition(node: &Node) -> Option<&NodeCondition> {
    node.status.as_ref()?.conditions.as_ref()?.iter().find(|c| c.type_ == "Ready")
}

fn taint_names(taints: Option<&[k8s_openapi::api::core::v1::Taint]>) -> Vec<String> {
    taints.unwrap_or_default().iter().map(|t| format!("{}:{}", t.key, t.effect)).collect()
}

/// Sets Ready and the pressure conditions to Unknown as Kubernetes does for a silent
/// kubelet; returns whether anything changed.
fn mark_unknown(node: &mut Node, now: jiff::Timestamp) -> bool {
    let created = node.metadata.creation_timestamp.clone();
    let conditions = node.status.get_or_insert_with(Default::default).conditions.get_or_insert_with(Vec::new);
    let mut changed = false;
    for type_ in UNKNOWN_WHEN_SILENT {
        match conditions.iter_mut().find(|c| c.type_ == *type_) {
            None => {
                conditions.push(NodeCondition {
                    type_: type_.to_string(),
                    status: "Unknown".into(),
                    reason: Some("NodeStatusNeverUpdated".into()),
                    message: Some("Kubelet never posted node status.".into()),
                    last_heartbeat_time: created.clone(),
                    last_transition_time: Some(Time(now)),
                });
                changed = true;
            }
            Some(c) if c.status != "Unknown" => {
                c.status = "Unknown".into();
                c.reason = Some("NodeStatusUnknown".into());
                c.message = Some("Kubelet stopped posting node status.".into());
                c.last_transition_time = Some(Time(now));
                changed = true;
            }
            Some(_) => {}
        }
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn silent_nodes_get_unknown_conditions_once() {
        let mut node: Node = serde_json::from_value(json!({"metadata": {"name": "n"}, "status": {"conditions": [
            {"type": "Ready", "status": "True", "lastHeartbeatTime": "2026-01-01T00:00:00Z"},
            {"type": "MemoryPressure", "status": "False"}]}}))
        .unwrap();
        let now = jiff::Timestamp::now();
        assert!(mark_unknown(&mut node, now));
        let conditions = node.status.as_ref().unwrap().conditions.clone().unwrap();
        let ready = &conditions[0];
        assert_eq!((ready.status.as_str(), ready.reason.as_deref()), ("Unknown", Some("NodeStatusUnknown")));
        assert_eq!(ready.message.as_deref(), Some("Kubelet stopped posting node status."));
        assert_eq!(ready.last_heartbeat_time.as_ref().unwrap().0.to_string(), "2026-01-01T00:00:00Z");
        let disk = conditions.iter().find(|c| c.type_ == "DiskPressure").unwrap();
        assert_eq!(disk.reason.as_deref(), Some("NodeStatusNeverUpdated"));
        assert_eq!(conditions.len(), 4);
        assert!(!mark_unknown(&mut node, now), "already Unknown: nothing to write");
    }
}
