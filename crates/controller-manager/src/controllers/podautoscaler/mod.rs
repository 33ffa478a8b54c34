//! HorizontalPodAutoscaler controller (autoscaling/v2): every sync period it reads the scale
//! target's replicas and selector, the selected pods and their resource metrics, computes the
//! replica count the metrics ask for, stabilizes and rate-limits it with the HPA's behavior,
//! sets the target's replicas, and reports status, conditions and events as Kubernetes does.
//!
//! Resource and ContainerResource metrics (cpu, memory; Utilization and AverageValue targets)
//! are supported; Pods, Object and External metrics need a custom/external metrics API that
//! rkube does not have, and are reported as failed metrics.
//!
//! The target is read and rescaled through its `scale` subresource, as Kubernetes' HPA does,
//! so any scalable kind works; the pods are those its `status.selector` selects.

pub mod behavior;
pub mod metrics;
pub mod replicas;

use crate::informers::SharedInformers;
use crate::objects::Selector;
use crate::{Action, Context, Controller, Error, Registration};
use behavior::{Behavior, History};
use k8s_openapi::api::autoscaling::v2::{
    ContainerResourceMetricStatus, CrossVersionObjectReference, HorizontalPodAutoscaler,
    HorizontalPodAutoscalerCondition, HorizontalPodAutoscalerStatus, MetricSpec, MetricStatus, MetricValueStatus,
    ResourceMetricStatus,
};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use metrics::{HttpMetrics, MetricsSource, Unavailable};
use replicas::{Measured, Readiness, Target};
use rkube_client::{Event, EventType, PatchType, Store, WorkQueue};
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The store index of objects by namespace (every rkube Store has it).
const NAMESPACE_INDEX: &str = "namespace";

/// Tunables from kube-controller-manager's `--horizontal-pod-autoscaler-*` flags.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// How often each HPA is evaluated.
    pub sync_period: Duration,
    /// Usage-ratio deviation from 1.0 that does not cause scaling.
    pub tolerance: f64,
    /// Scale-down stabilization window when the HPA sets none.
    pub downscale_window: Duration,
    /// How CPU samples of starting pods are filtered.
    pub readiness: Readiness,
}

/// Scales workloads to their HorizontalPodAutoscalers' metric targets.
pub struct PodAutoscalerController {
    ctx: Context,
    hpas: Store<HorizontalPodAutoscaler>,
    pods: Store<Pod>,
    metrics: Arc<dyn MetricsSource>,
    settings: Settings,
    /// Recommendations and scale events per HPA key, for stabilization and rate policies.
    histories: Mutex<HashMap<String, History>>,
}

/// Queues an HPA when it appears, when its spec changes and when it goes (to forget it); the
/// periodic resync does the rest.
pub fn register(ctx: &Context, informers: &SharedInformers) -> Registration {
    let c = &ctx.config;
    let credentials = c.api.kubeconfig().unwrap_or_else(|e| {
        tracing::warn!(error = %e, "no API server credentials for the metrics API");
        rkube_client::Kubeconfig::insecure("http://127.0.0.1:6443")
    });
    let base = if c.metrics_api_url.is_empty() { credentials.server.clone() } else { c.metrics_api_url.clone() };
    let settings = Settings {
        sync_period: c.horizontal_pod_autoscaler_sync_period,
        tolerance: c.horizontal_pod_autoscaler_tolerance,
        downscale_window: c.horizontal_pod_autoscaler_downscale_stabilization,
        readiness: Readiness {
            cpu_initialization_period: c.horizontal_pod_autoscaler_cpu_initialization_period,
            initial_readiness_delay: c.horizontal_pod_autoscaler_initial_readiness_delay,
        },
    };
    let metrics: Arc<dyn MetricsSource> = match HttpMetrics::new(&base, &credentials) {
        Ok(m) => Arc::new(m),
        Err(e) => {
            tracing::error!(error = %e, "cannot reach the metrics API; the HPA will see no metrics");
            Arc::new(Unavailable(e))
        }
    };
    register_with(ctx, informers, metrics, settings)
}

/// Like [`register`], with another metrics source.
pub fn register_with(
    ctx: &Context,
    informers: &SharedInformers,
    metrics: Arc<dyn MetricsSource>,
    settings: Settings,
) -> Registration {
    let queue = WorkQueue::new();
    let q = queue.clone();
    informers.on_event::<HorizontalPodAutoscaler>(move |e| {
        let hpa = match e {
            Event::Added(h) | Event::Deleted(h) => h,
            // Our own status writes do not need a sync; spec changes do.
            Event::Updated { old, new } if old.spec != new.spec => new,
            Event::Updated { .. } => return,
        };
        q.add(key_of(&hpa.metadata));
    });
    let controller = PodAutoscalerController {
        ctx: ctx.clone(),
        hpas: informers.store(),
        pods: informers.store(),
        metrics,
        settings,
        histories: Mutex::default(),
    };
    Registration::new(Arc::new(controller), queue)
}

fn key_of(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> String {
    format!("{}/{}", meta.namespace.as_deref().unwrap_or_default(), meta.name.as_deref().unwrap_or_default())
}

/// The target's current size and the selector of its pods, from its scale subresource.
struct Scale {
    replicas: i32,
    /// `status.selector`: a label selector in its query-string form.
    selector: Option<String>,
    /// The Scale as read, for the write-back.
    object: k8s_openapi::api::autoscaling::v1::Scale,
}

/// Why computing the metrics' proposal failed: the condition to report and the error.
struct MetricFailure {
    reason: String,
    message: String,
}

/// The metrics' combined proposal.
struct Proposal {
    replicas: i32,
    metric: String,
    statuses: Vec<MetricStatus>,
}

fn milli_quantity(milli: i64) -> Quantity {
    if milli % 1000 == 0 { Quantity((milli / 1000).to_string()) } else { Quantity(format!("{milli}m")) }
}

/// Sets a condition, moving its lastTransitionTime only when its status changes.
fn set_condition(
    conditions: &mut Vec<HorizontalPodAutoscalerCondition>,
    type_: &str,
    status: bool,
    reason: &str,
    message: &str,
    now: jiff::Timestamp,
) {
    let status = if status { "True" } else { "False" };
    let new = || HorizontalPodAutoscalerCondition {
        type_: type_.to_string(),
        status: status.to_string(),
        reason: Some(reason.to_string()),
        message: Some(message.to_string()),
        last_transition_time: Some(Time(now)),
    };
    match conditions.iter_mut().find(|c| c.type_ == type_) {
        Some(c) if c.status == status => {
            c.reason = Some(reason.to_string());
            c.message = Some(message.to_string());
        }
        Some(c) => *c = new(),
        None => conditions.push(new()),
    }
}

impl PodAutoscalerController {
    /// The target's `scale` subresource: its replicas and the selector of its pods, for any
    /// kind that has one (Deployment, ReplicaSet, StatefulSet, ReplicationController).
    async fn get_scale(&self, namespace: &str, target: &CrossVersionObjectReference) -> Result<Scale, String> {
        let api_version = target.api_version.as_deref().unwrap_or_default();
        let scale = self
            .ctx
            .client
            .get_scale(api_version, &target.kind, namespace, &target.name)
            .await
            .map_err(|e| format!("{}/scale \"{}\": {e}", target.kind, target.name))?;
        let replicas = scale.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0);
        let selector = scale.status.as_ref().and_then(|s| s.selector.clone()).filter(|s| !s.is_empty());
        Ok(Scale { replicas, selector, object: scale })
    }

    /// Sets the target's replicas through its `scale` subresource, as read by `get_scale`
    /// (a compare-and-swap on that read).
    async fn set_scale(
        &self,
        target: &CrossVersionObjectReference,
        scale: &Scale,
        replicas: i32,
    ) -> Result<(), String> {
        let mut object = scale.object.clone();
        object.spec.get_or_insert_with(Default::default).replicas = Some(replicas);
        let api_version = target.api_version.as_deref().unwrap_or_default();
        self.ctx.client.update_scale(api_version, &target.kind, &object).await.map(drop).map_err(|e| e.to_string())
    }

    /// The proposal of every metric, the highest winning, as Kubernetes'
    /// computeReplicasForMetrics: failures are reported, and stop scaling when every metric
    /// failed or when the valid ones would scale down.
    async fn compute(
        &self,
        hpa: &HorizontalPodAutoscaler,
        scale: &Scale,
        conditions: &mut Vec<HorizontalPodAutoscalerCondition>,
        now: jiff::Timestamp,
    ) -> Result<Proposal, (Vec<MetricStatus>, String)> {
        let namespace = hpa.metadata.namespace.as_deref().unwrap_or_default();
        let Some(selector) = scale.selector.as_ref() else {
            let message = "the HPA target's scale is missing a selector";
            self.ctx.recorder.record(hpa, EventType::Warning, "SelectorRequired", "selector is required");
            set_condition(conditions, "ScalingActive", false, "InvalidSelector", message, now);
            return Err((Vec::new(), message.to_string()));
        };
        let default_metric = [MetricSpec {
            type_: "Resource".into(),
            resource: Some(k8s_openapi::api::autoscaling::v2::ResourceMetricSource {
                name: "cpu".into(),
                target: k8s_openapi::api::autoscaling::v2::MetricTarget {
                    type_: "Utilization".into(),
                    average_utilization: Some(80),
                    ..Default::default()
                },
            }),
            ..Default::default()
        }];
        let specs = match hpa.spec.as_ref().and_then(|s| s.metrics.as_deref()) {
            Some(m) if !m.is_empty() => m,
            _ => &default_metric[..],
        };
        let matcher = Selector::parse(selector);
        let pods: Vec<Arc<Pod>> = self
            .pods
            .by_index(NAMESPACE_INDEX, namespace)
            .into_iter()
            .filter(|p| matcher.matches(p.metadata.labels.as_ref()))
            .collect();
        let pods: Vec<&Pod> = pods.iter().map(|p| p.as_ref()).collect();
        let selector_text = selector.clone();

        let mut statuses = Vec::new();
        let mut best: Option<(i32, String)> = None;
        let mut first_failure: Option<MetricFailure> = None;
        let mut invalid = 0;
        for spec in specs {
            match self.metric_proposal(hpa, spec, scale.replicas, &pods, &selector_text, now).await {
                Ok((replicas, name, status)) => {
                    statuses.push(status);
                    if best.as_ref().is_none_or(|(r, _)| replicas > *r) {
                        best = Some((replicas, name));
                    }
                }
                Err(f) => {
                    invalid += 1;
                    first_failure.get_or_insert(f);
                }
            }
        }
        let (replicas, metric) = best.unwrap_or((0, String::new()));
        if invalid >= specs.len() || (invalid > 0 && replicas < scale.replicas) {
            let failure = first_failure
                .unwrap_or(MetricFailure { reason: "FailedGetResourceMetric".into(), message: String::new() });
            set_condition(conditions, "ScalingActive", false, &failure.reason, &failure.message, now);
            let error = format!(
                "invalid metrics ({invalid} invalid out of {}), first error is: {}",
                specs.len(),
                failure.message
            );
            return Err((statuses, error));
        }
        let message = format!("the HPA was able to successfully calculate a replica count from {metric}");
        set_condition(conditions, "ScalingActive", true, "ValidMetricFound", &message, now);
        Ok(Proposal { replicas, metric, statuses })
    }

    /// One metric's proposal: replicas, the metric's name for events, its current value.
    async fn metric_proposal(
        &self,
        hpa: &HorizontalPodAutoscaler,
        spec: &MetricSpec,
        current: i32,
        pods: &[&Pod],
        selector: &str,
        now: jiff::Timestamp,
    ) -> Result<(i32, String, MetricStatus), MetricFailure> {
        let fail = |reason: &str, error: String| {
            self.ctx.recorder.record(hpa, EventType::Warning, reason, &error);
            MetricFailure {
                reason: reason.to_string(),
                message: format!("the HPA was unable to compute the replica count: {error}"),
            }
        };
        // Resource metrics measure whole pods, ContainerResource ones a named container.
        let (source_target, measured, kind) = match (spec.type_.as_str(), &spec.resource, &spec.container_resource) {
            ("Resource", Some(r), _) => (&r.target, Measured { resource: &r.name, container: None }, ""),
            ("ContainerResource", _, Some(r)) => {
                (&r.target, Measured { resource: &r.name, container: Some(&r.container) }, "Container")
            }
            (other, _, _) => {
                let reason = format!("FailedGet{other}Metric");
                let error =
                    format!("{other} metrics are not supported by rkube yet (no custom or external metrics API)");
                return Err(fail(&reason, error));
            }
        };
        let reason = format!("FailedGet{kind}ResourceMetric");
        let resource = measured.resource;
        let target = match (source_target.type_.as_str(), source_target) {
            ("Utilization", t) if t.average_utilization.is_some() => {
                Target::Utilization(t.average_utilization.unwrap_or(0))
            }
            ("AverageValue", t) if t.average_value.is_some() => {
                let q = t.average_value.as_ref().map(|q| q.0.as_str()).unwrap_or_default();
                let milli =
                    rkube_api::validation::quantity::parse_quantity(q).unwrap_or(0).clamp(0, i128::from(i64::MAX));
                Target::AverageValue(milli as i64)
            }
            _ => {
                let error = "invalid resource metric source: neither a utilization target nor a value target was set";
                return Err(fail(&reason, error.to_string()));
            }
        };
        let namespace = hpa.metadata.namespace.as_deref().unwrap_or_default();
        let samples =
            self.metrics.resource_metrics(namespace, selector, measured).await.map_err(|e| fail(&reason, e))?;
        let p = replicas::resource_replicas(
            current,
            pods,
            samples,
            measured,
            target,
            self.settings.tolerance,
            self.settings.readiness,
            now,
        )
        .map_err(|e| fail(&reason, format!("failed to get {resource} utilization: {e}")))?;
        // The metric's name in events: "cpu resource", "cpu container resource".
        let what = if measured.container.is_some() { "container resource" } else { "resource" };
        let name = match target {
            Target::Utilization(_) => format!("{resource} {what} utilization (percentage of request)"),
            Target::AverageValue(_) => format!("{resource} {what}"),
        };
        let current = MetricValueStatus {
            average_utilization: p.utilization,
            average_value: Some(milli_quantity(p.average)),
            value: None,
        };
        let status = match measured.container {
            None => MetricStatus {
                type_: "Resource".into(),
                resource: Some(ResourceMetricStatus { name: resource.to_string(), current }),
                ..Default::default()
            },
            Some(container) => MetricStatus {
                type_: "ContainerResource".into(),
                container_resource: Some(ContainerResourceMetricStatus {
                    name: resource.to_string(),
                    container: container.to_string(),
                    current,
                }),
                ..Default::default()
            },
        };
        Ok((p.replicas, name, status))
    }

    /// Writes `status` when it differs from what the HPA shows.
    async fn write_status(
        &self,
        hpa: &HorizontalPodAutoscaler,
        status: HorizontalPodAutoscalerStatus,
    ) -> Result<(), Error> {
        if hpa.status.as_ref() == Some(&status) {
            return Ok(());
        }
        let mut value =
            serde_json::to_value(&status).map_err(|e| Error::Invalid(format!("encoding HPA status: {e}")))?;
        if let Some(map) = value.as_object_mut() {
            // A merge patch leaves absent fields alone; say null to clear them.
            map.entry("currentMetrics").or_insert(serde_json::Value::Null);
        }
        let namespace = hpa.metadata.namespace.as_deref().unwrap_or_default();
        let name = hpa.metadata.name.as_deref().unwrap_or_default();
        let api = self.ctx.client.api::<HorizontalPodAutoscaler>(Some(namespace));
        match api.patch_status(name, PatchType::Merge, &json!({"status": value})).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    fn with_history<T>(&self, key: &str, f: impl FnOnce(&mut History) -> T) -> T {
        let mut histories = self.histories.lock().unwrap_or_else(|e| e.into_inner());
        f(histories.entry(key.to_string()).or_default())
    }
}

impl Controller for PodAutoscalerController {
    fn name(&self) -> &'static str {
        "horizontalpodautoscaling"
    }

    async fn reconcile(&self, key: &str) -> Result<Action, Error> {
        let Some(hpa) = self.hpas.get(key) else {
            self.histories.lock().unwrap_or_else(|e| e.into_inner()).remove(key);
            return Ok(Action::Done);
        };
        let resync = Action::RequeueAfter(self.settings.sync_period);
        let Some(spec) = hpa.spec.as_ref() else { return Ok(Action::Done) };
        let namespace = hpa.metadata.namespace.as_deref().unwrap_or_default();
        let now = jiff::Timestamp::now();
        let mut status = hpa.status.clone().unwrap_or_default();
        status.observed_generation = hpa.metadata.generation;
        let mut conditions = status.conditions.take().unwrap_or_default();

        let scale = match self.get_scale(namespace, &spec.scale_target_ref).await {
            Ok(s) => s,
            Err(e) => {
                self.ctx.recorder.record(hpa.as_ref(), EventType::Warning, "FailedGetScale", &e);
                let message = format!("the HPA controller was unable to get the target's current scale: {e}");
                set_condition(&mut conditions, "AbleToScale", false, "FailedGetScale", &message, now);
                status.conditions = Some(conditions);
                self.write_status(&hpa, status).await?;
                tracing::debug!(hpa = key, error = %e, "cannot read the scale target");
                return Ok(resync);
            }
        };
        let message = "the HPA controller was able to get the target's current scale";
        set_condition(&mut conditions, "AbleToScale", true, "SucceededGetScale", message, now);
        let current = scale.replicas;
        self.with_history(key, |h| h.record_initial(current, now));
        let min = spec.min_replicas.unwrap_or(1);
        let max = spec.max_replicas;
        let behavior = Behavior::new(spec.behavior.as_ref(), self.settings.downscale_window);

        let mut statuses = Vec::new();
        let (desired, reason) = if current == 0 && min != 0 {
            let message = "scaling is disabled since the replica count of the target is zero";
            set_condition(&mut conditions, "ScalingActive", false, "ScalingDisabled", message, now);
            (current, String::new())
        } else if current > max {
            (max, "Current number of replicas above Spec.MaxReplicas".to_string())
        } else if current < min {
            (min, "Current number of replicas below Spec.MinReplicas".to_string())
        } else {
            let proposal = match self.compute(&hpa, &scale, &mut conditions, now).await {
                Ok(p) => p,
                Err((metric_statuses, error)) => {
                    self.ctx.recorder.record(hpa.as_ref(), EventType::Warning, "FailedComputeMetricsReplicas", &error);
                    status.current_replicas = Some(current);
                    status.current_metrics = (!metric_statuses.is_empty()).then_some(metric_statuses);
                    status.conditions = Some(conditions);
                    self.write_status(&hpa, status).await?;
                    tracing::debug!(hpa = key, error, "no replica count from the metrics");
                    return Ok(resync);
                }
            };
            statuses = proposal.statuses;
            let reason = match proposal.replicas.cmp(&current) {
                std::cmp::Ordering::Greater => format!("{} above target", proposal.metric),
                std::cmp::Ordering::Less => "All metrics below target".to_string(),
                std::cmp::Ordering::Equal => String::new(),
            };
            let outcome =
                self.with_history(key, |h| h.normalize(&behavior, current, proposal.replicas, (min, max), now));
            set_condition(&mut conditions, "AbleToScale", true, outcome.able_reason, outcome.able_message, now);
            let (r, m) = (outcome.limited_reason, outcome.limited_message);
            set_condition(&mut conditions, "ScalingLimited", outcome.limited, r, m, now);
            (outcome.desired, reason)
        };

        if desired != current {
            if let Err(e) = self.set_scale(&spec.scale_target_ref, &scale, desired).await {
                let message = format!("New size: {desired}; reason: {reason}; error: {e}");
                self.ctx.recorder.record(hpa.as_ref(), EventType::Warning, "FailedRescale", &message);
                let message = format!("the HPA controller was unable to update the target scale: {e}");
                set_condition(&mut conditions, "AbleToScale", false, "FailedUpdateScale", &message, now);
                status.current_replicas = Some(current);
                status.current_metrics = (!statuses.is_empty()).then_some(statuses);
                status.conditions = Some(conditions);
                self.write_status(&hpa, status).await?;
                return Ok(resync);
            }
            let message = format!("the HPA controller was able to update the target scale to {desired}");
            set_condition(&mut conditions, "AbleToScale", true, "SucceededRescale", &message, now);
            let message = format!("New size: {desired}; reason: {reason}");
            self.ctx.recorder.record(hpa.as_ref(), EventType::Normal, "SuccessfulRescale", &message);
            self.with_history(key, |h| h.record_scale(&behavior, current, desired, now));
            status.last_scale_time = Some(Time(now));
            tracing::info!(hpa = key, from = current, to = desired, reason, "rescaled");
        }
        status.current_replicas = Some(current);
        status.desired_replicas = desired;
        status.current_metrics = (!statuses.is_empty()).then_some(statuses);
        status.conditions = Some(conditions);
        self.write_status(&hpa, status).await?;
        Ok(resync)
    }
}
