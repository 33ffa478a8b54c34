//! `POST /api/v1/namespaces/{ns}/pods/{name}/eviction`: a pod deletion that honours the
//! PodDisruptionBudget selecting the pod, as Kubernetes' eviction subresource does.
//!
//! A pod that has already disrupted its application (finished, still Pending, or being
//! deleted) is deleted at once. Otherwise the one budget selecting it must allow a disruption:
//! the budget's `status.disruptionsAllowed` is decremented and the pod recorded in
//! `status.disruptedPods` (a compare-and-swap on the budget, retried on conflict), so that two
//! evictions racing for the last allowed disruption cannot both win; the disruption controller
//! recomputes the budget afterwards. Then the pod gets the `DisruptionTarget` condition and is
//! deleted with the Eviction's deleteOptions. A budget that says no is a 429 TooManyRequests,
//! which clients (kubectl drain) retry.

use crate::Server;
use crate::meta::{self, meta_str};
use crate::objects::{DeleteOptions, ListOptions, Part, WriteOptions};
use axum::body::Body;
use axum::response::Response;
use http::{HeaderValue, StatusCode, header};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use rkube_api::{ApiError, ResourceInfo, registry};
use serde_json::{Value, json};
use std::time::Duration;

/// The message of every refusal by a budget, which kubectl drain prints while it retries.
pub const BUDGET_VIOLATION: &str = "Cannot evict pod as it would violate the pod's disruption budget.";
/// The message when more than one budget selects the pod.
pub const MULTIPLE_BUDGETS: &str =
    "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.";
/// Status cause type of a budget refusal.
pub const DISRUPTION_BUDGET_CAUSE: &str = "DisruptionBudget";
/// Most pods a budget may list as disrupted but not yet gone before evictions stop.
const MAX_DISRUPTED_PODS: usize = 2000;
/// Attempts at a write that keeps conflicting (Kubernetes: 20 steps of 500 ms).
const RETRIES: usize = 20;
const RETRY_PAUSE: Duration = Duration::from_millis(500);

/// Why an eviction was not carried out.
#[derive(Debug, thiserror::Error)]
pub enum EvictionError {
    /// An ordinary API error (404 for a missing pod, 400 for a bad body, conflicts...).
    #[error(transparent)]
    Api(#[from] ApiError),
    /// 429: the pod's budget allows no disruption now (or has not been computed yet).
    #[error("{BUDGET_VIOLATION}")]
    Budget {
        /// The `details.causes[0].message`.
        cause: String,
        /// Seconds the client should wait (`Retry-After`, `details.retryAfterSeconds`); 0: none.
        retry_after: u32,
    },
    /// 500: more than one budget selects the pod.
    #[error("{MULTIPLE_BUDGETS}")]
    MultipleBudgets,
}

impl EvictionError {
    /// HTTP status code.
    pub fn code(&self) -> u16 {
        match self {
            EvictionError::Api(e) => e.code(),
            EvictionError::Budget { .. } => 429,
            EvictionError::MultipleBudgets => 500,
        }
    }

    /// The metav1.Status Kubernetes answers with.
    pub fn to_status(&self) -> Value {
        match self {
            EvictionError::Api(e) => e.to_status(),
            EvictionError::Budget { cause, retry_after } => {
                let mut details = json!({"causes": [{"reason": DISRUPTION_BUDGET_CAUSE, "message": cause}]});
                if *retry_after > 0 {
                    details["retryAfterSeconds"] = json!(retry_after);
                }
                json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                       "message": BUDGET_VIOLATION, "reason": "TooManyRequests", "details": details, "code": 429})
            }
            // Kubernetes returns this as a Status object, not an error, so it has no reason.
            EvictionError::MultipleBudgets => json!({"kind": "Status", "apiVersion": "v1", "metadata": {},
                "status": "Failure", "message": MULTIPLE_BUDGETS, "code": 500}),
        }
    }

    fn budget(pdb: &PodDisruptionBudget) -> EvictionError {
        let status = pdb.status.clone().unwrap_or_default();
        EvictionError::Budget {
            cause: format!(
                "The disruption budget {} needs {} healthy pods and has {} currently",
                pdb_name(pdb),
                status.desired_healthy,
                status.current_healthy
            ),
            retry_after: 0,
        }
    }

    fn still_processing(pdb_name: &str) -> EvictionError {
        EvictionError::Budget {
            cause: format!("The disruption budget {pdb_name} is still being processed by the server."),
            retry_after: 10,
        }
    }
}

/// Evicts the pod and renders the answer: 201 with a Success Status, or the error's Status
/// (with `Retry-After` when the Status suggests a wait).
pub async fn respond(server: &Server, namespace: &str, name: &str, body: Value, dry_run: bool) -> Response {
    let (code, status, retry_after) = match evict(server, namespace, name, body, dry_run).await {
        Ok(()) => {
            (201, json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}), 0)
        }
        Err(e) => {
            let retry_after = if let EvictionError::Budget { retry_after, .. } = &e { *retry_after } else { 0 };
            tracing::debug!(namespace, pod = name, code = e.code(), error = %e, "eviction refused");
            (e.code(), e.to_status(), retry_after)
        }
    };
    let mut resp = Response::new(Body::from(serde_json::to_vec(&status).unwrap_or_default()));
    *resp.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if retry_after > 0 {
        resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
    }
    resp
}

/// The parts of an Eviction that matter: its deleteOptions and whether it is a dry run.
#[derive(Debug, Clone, Default)]
struct Request {
    delete: DeleteOptions,
    /// Whether the client set a resourceVersion precondition (then conflicts are not retried).
    client_resource_version: bool,
}

/// Checks an Eviction body against the URL and reads its deleteOptions.
fn parse_request(namespace: &str, name: &str, body: &Value, dry_run: bool) -> Result<Request, ApiError> {
    let api_version = body.get("apiVersion").and_then(Value::as_str).unwrap_or("policy/v1");
    let kind = body.get("kind").and_then(Value::as_str).unwrap_or("Eviction");
    if kind != "Eviction" || !matches!(api_version, "policy/v1" | "policy/v1beta1") {
        return Err(ApiError::BadRequest(format!(
            "expected an Eviction (policy/v1 or policy/v1beta1), got {kind} in {api_version}"
        )));
    }
    if meta_str(body, "name") != Some(name) {
        return Err(ApiError::BadRequest("name in URL does not match name in Eviction object".into()));
    }
    if let Some(ns) = meta_str(body, "namespace").filter(|ns| !ns.is_empty())
        && ns != namespace
    {
        return Err(ApiError::BadRequest(
            "the namespace of the provided object does not match the namespace sent on the request".into(),
        ));
    }
    let opts = body.get("deleteOptions").filter(|o| o.is_object()).cloned().unwrap_or_else(|| json!({}));
    let body_dry_run = match opts.get("dryRun").and_then(Value::as_array) {
        None => None,
        Some(values) if values.is_empty() => None,
        Some(values) if values.iter().all(|v| v == "All") => Some(true),
        Some(values) => {
            return Err(ApiError::BadRequest(format!(
                "unsupported dryRun value {}; the only supported value is All",
                Value::Array(values.clone())
            )));
        }
    };
    let precondition_resource_version = opts
        .pointer("/preconditions/resourceVersion")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(String::from);
    let delete = DeleteOptions {
        grace_period_seconds: opts.get("gracePeriodSeconds").and_then(Value::as_i64),
        propagation_policy: opts.get("propagationPolicy").and_then(Value::as_str).map(String::from),
        precondition_uid: opts
            .pointer("/preconditions/uid")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(String::from),
        precondition_resource_version,
        dry_run: dry_run || body_dry_run == Some(true),
    };
    Ok(Request { client_resource_version: delete.precondition_resource_version.is_some(), delete })
}

fn pods_resource() -> &'static ResourceInfo {
    registry::lookup("", "v1", "pods").expect("pods are served")
}

fn budgets_resource() -> &'static ResourceInfo {
    registry::lookup("policy", "v1", "poddisruptionbudgets").expect("poddisruptionbudgets are served")
}

fn pdb_name(pdb: &PodDisruptionBudget) -> &str {
    pdb.metadata.name.as_deref().unwrap_or_default()
}

fn phase(pod: &Value) -> &str {
    pod.pointer("/status/phase").and_then(Value::as_str).unwrap_or_default()
}

fn deleting(pod: &Value) -> bool {
    pod.pointer("/metadata/deletionTimestamp").is_some_and(|t| !t.is_null())
}

/// A pod whose eviction disrupts nothing more: finished, not yet running, or already going.
fn can_ignore_budget(pod: &Value) -> bool {
    matches!(phase(pod), "Succeeded" | "Failed" | "Pending") || deleting(pod)
}

/// Whether deleting a budget-exempt pod must pin the version just read: a Pending pod might
/// become Ready (and so guarded by its budget) in the meantime.
fn must_pin_version(pod: &Value) -> bool {
    !matches!(phase(pod), "Succeeded" | "Failed") && !deleting(pod)
}

/// Whether the pod's Ready condition is True (Kubernetes' notion of a healthy pod here).
fn pod_ready(pod: &Value) -> bool {
    pod.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| cs.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
}

/// Whether an unready pod may go without spending a disruption: the budget says so
/// (AlwaysAllow), or (IfHealthyBudget, the default) the guarded application is healthy anyway.
fn unready_pod_may_go(pdb: &PodDisruptionBudget) -> bool {
    let always = pdb.spec.as_ref().and_then(|s| s.unhealthy_pod_eviction_policy.as_deref()) == Some("AlwaysAllow");
    let status = pdb.status.clone().unwrap_or_default();
    always || (status.current_healthy >= status.desired_healthy && status.desired_healthy > 0)
}

/// Whether the budget's selector selects the pod: a missing (or unparsable) selector selects
/// nothing, an empty one every pod of the namespace (policy/v1).
fn selects(pdb: &PodDisruptionBudget, pod: &Value) -> bool {
    let Some(selector) = pdb.spec.as_ref().and_then(|s| s.selector.as_ref()) else { return false };
    let Ok(value) = serde_json::to_value(selector) else { return false };
    rkube_api::selector::LabelSelector::from_object(&value)
        .is_ok_and(|s| s.matches(&rkube_api::selector::labels_of(pod)))
}

/// Sets the DisruptionAllowed condition from `disruptionsAllowed`, moving its transition
/// time only when its status changes.
pub fn set_disruption_allowed_condition(
    status: &mut k8s_openapi::api::policy::v1::PodDisruptionBudgetStatus,
    now: jiff::Timestamp,
) {
    let (value, reason) =
        if status.disruptions_allowed > 0 { ("True", "SufficientPods") } else { ("False", "InsufficientPods") };
    let observed_generation = status.observed_generation;
    let conditions = status.conditions.get_or_insert_with(Vec::new);
    match conditions.iter_mut().find(|c| c.type_ == "DisruptionAllowed") {
        Some(c) => {
            if c.status != value {
                c.status = value.into();
                c.last_transition_time = Time(now);
            }
            c.reason = reason.into();
            c.message = String::new();
            c.observed_generation = observed_generation;
        }
        None => conditions.push(Condition {
            type_: "DisruptionAllowed".into(),
            status: value.into(),
            reason: reason.into(),
            message: String::new(),
            last_transition_time: Time(now),
            observed_generation,
        }),
    }
}

fn forbidden(pdb: &PodDisruptionBudget, why: &str) -> EvictionError {
    EvictionError::Api(ApiError::Forbidden {
        message: format!("poddisruptionbudget.policy {:?} is forbidden: {why}", pdb_name(pdb)),
        target: Some(rkube_api::error::Target {
            name: pdb_name(pdb).into(),
            group: "policy".into(),
            kind: "poddisruptionbudget".into(),
        }),
    })
}

/// The budget after spending one disruption on `pod`, or why it cannot be spent.
fn check_and_decrement(
    pdb: &PodDisruptionBudget,
    pod: &str,
    now: jiff::Timestamp,
) -> Result<PodDisruptionBudget, EvictionError> {
    let status = pdb.status.clone().unwrap_or_default();
    if status.observed_generation.unwrap_or(0) < pdb.metadata.generation.unwrap_or(0) {
        return Err(EvictionError::still_processing(pdb_name(pdb)));
    }
    if status.disruptions_allowed < 0 {
        return Err(forbidden(pdb, "pdb disruptions allowed is negative"));
    }
    if status.disrupted_pods.as_ref().map_or(0, |d| d.len()) > MAX_DISRUPTED_PODS {
        return Err(forbidden(pdb, "DisruptedPods map too big - too many evictions not confirmed by PDB controller"));
    }
    if status.disruptions_allowed == 0 {
        return Err(EvictionError::budget(pdb));
    }
    let mut new = pdb.clone();
    let s = new.status.get_or_insert_with(Default::default);
    s.disruptions_allowed -= 1;
    if s.disruptions_allowed == 0 {
        set_disruption_allowed_condition(s, now);
    }
    // The disruption controller leaves this pod out of currentHealthy until it is gone (or
    // two minutes have passed), so the budget is not handed out twice.
    s.disrupted_pods.get_or_insert_with(Default::default).insert(pod.to_string(), Time(now));
    Ok(new)
}

fn decode_budget(v: Value) -> Result<PodDisruptionBudget, ApiError> {
    serde_json::from_value(v).map_err(|e| ApiError::Internal(format!("decoding a stored PodDisruptionBudget: {e}")))
}

/// The budgets in the pod's namespace that select it.
async fn matching_budgets(server: &Server, namespace: &str, pod: &Value) -> Result<Vec<PodDisruptionBudget>, ApiError> {
    let list = server.registry.list(budgets_resource(), Some(namespace), &ListOptions::default()).await?;
    let list: Value =
        serde_json::from_slice(&list).map_err(|e| ApiError::Internal(format!("decoding PodDisruptionBudgets: {e}")))?;
    let mut out = Vec::new();
    for item in list["items"].as_array().into_iter().flatten() {
        let pdb = decode_budget(item.clone())?;
        if selects(&pdb, pod) {
            out.push(pdb);
        }
    }
    Ok(out)
}

/// Spends one disruption of `pdb` on the pod (a compare-and-swap on the budget's status,
/// retried on a fresh read after a conflict); a dry run only checks.
async fn spend_disruption(
    server: &Server,
    namespace: &str,
    pod: &str,
    mut pdb: PodDisruptionBudget,
    dry_run: bool,
) -> Result<(), EvictionError> {
    let budgets = budgets_resource();
    let pdb_name = pdb_name(&pdb).to_string();
    for attempt in 0..RETRIES {
        if attempt > 0 {
            tokio::time::sleep(RETRY_PAUSE).await;
            pdb = decode_budget(server.registry.get(budgets, Some(namespace), &pdb_name).await?)?;
        }
        let updated = check_and_decrement(&pdb, pod, jiff::Timestamp::now())?;
        if dry_run {
            return Ok(());
        }
        let body = serde_json::to_value(&updated).map_err(|e| ApiError::Internal(format!("encoding a budget: {e}")))?;
        match server
            .registry
            .update(budgets, Some(namespace), &pdb_name, body, Part::Status, &WriteOptions::default())
            .await
        {
            Ok(_) => {
                tracing::debug!(namespace, pod, pdb = %pdb_name, "disruption spent");
                return Ok(());
            }
            Err(ApiError::Conflict { .. }) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::Timeout(format!("Timeout: couldn't update PodDisruptionBudget {pdb_name:?} due to conflicts")).into())
}

/// Marks the pod with the `DisruptionTarget` condition (so its controllers and the kubelet see
/// why it goes), then deletes it with `opts`. The mark checks `opts`' preconditions itself;
/// a resourceVersion precondition then moves on to the version the mark wrote.
async fn mark_and_delete(
    server: &Server,
    namespace: &str,
    name: &str,
    mut opts: DeleteOptions,
) -> Result<(), ApiError> {
    let pods = pods_resource();
    if !opts.dry_run {
        let (uid, rv) = (opts.precondition_uid.clone(), opts.precondition_resource_version.clone());
        let marked = server
            .registry
            .write(pods, Some(namespace), name, Part::Status, &WriteOptions::default(), |old| {
                check_preconditions(old, name, uid.as_deref(), rv.as_deref())?;
                let mut new = old.clone();
                set_disruption_target(&mut new);
                Ok(new)
            })
            .await?;
        if rv.is_some() {
            opts.precondition_resource_version = meta_str(&marked.object, "resourceVersion").map(String::from);
        }
    }
    server.registry.delete(pods, Some(namespace), name, &opts).await?;
    Ok(())
}

/// The eviction's preconditions: the pod must still have this uid and resourceVersion (a 409
/// in Kubernetes' words otherwise).
fn check_preconditions(pod: &Value, name: &str, uid: Option<&str>, rv: Option<&str>) -> Result<(), ApiError> {
    let conflict = |detail: String| ApiError::Conflict { resource: "Pod".into(), name: name.into(), detail };
    let actual = |field: &str| meta_str(pod, field).unwrap_or_default().to_string();
    if let Some(uid) = uid
        && actual("uid") != uid
    {
        return Err(conflict(format!(
            "the UID in the precondition ({uid}) does not match the UID in record ({}). The object might have been deleted and then recreated",
            actual("uid")
        )));
    }
    if let Some(rv) = rv
        && actual("resourceVersion") != rv
    {
        return Err(conflict(format!(
            "the ResourceVersion in the precondition ({rv}) does not match the ResourceVersion in record ({}). The object might have been modified",
            actual("resourceVersion")
        )));
    }
    Ok(())
}

/// Adds (or refreshes) the pod condition `DisruptionTarget=True` that Kubernetes' eviction sets.
fn set_disruption_target(pod: &mut Value) {
    let now = meta::now();
    if !pod["status"].is_object() {
        pod["status"] = json!({});
    }
    let mut conditions = pod["status"]["conditions"].as_array().cloned().unwrap_or_default();
    let mut condition = json!({"type": "DisruptionTarget", "status": "True", "lastProbeTime": null,
        "lastTransitionTime": now, "reason": "EvictionByEvictionAPI", "message": "Eviction API: evicting"});
    match conditions.iter_mut().find(|c| c["type"] == "DisruptionTarget") {
        Some(old) => {
            if old["status"] == "True" {
                condition["lastTransitionTime"] = old["lastTransitionTime"].clone();
            }
            *old = condition;
        }
        None => conditions.push(condition),
    }
    pod["status"]["conditions"] = Value::Array(conditions);
}

fn is_conflict(e: &ApiError) -> bool {
    matches!(e, ApiError::Conflict { .. })
}

/// Carries out one eviction of pod `namespace/name` as the Eviction `body` asks.
pub async fn evict(
    server: &Server,
    namespace: &str,
    name: &str,
    body: Value,
    dry_run: bool,
) -> Result<(), EvictionError> {
    let request = parse_request(namespace, name, &body, dry_run)?;
    let pods = pods_resource();
    let mut attempt = 0;
    let pod = loop {
        attempt += 1;
        let pod = server.registry.get(pods, Some(namespace), name).await?;
        if !can_ignore_budget(&pod) {
            break pod;
        }
        let mut opts = request.delete.clone();
        if must_pin_version(&pod) && !request.client_resource_version {
            opts.precondition_resource_version = meta_str(&pod, "resourceVersion").map(String::from);
        }
        match mark_and_delete(server, namespace, name, opts).await {
            Err(e) if is_conflict(&e) && !request.client_resource_version && attempt < RETRIES => {
                tokio::time::sleep(RETRY_PAUSE).await;
            }
            other => return other.map_err(Into::into),
        }
    };

    // A precondition that already fails would fail the deletion after the budget was spent:
    // refuse before spending it.
    let delete = &request.delete;
    check_preconditions(
        &pod,
        name,
        delete.precondition_uid.as_deref(),
        delete.precondition_resource_version.as_deref(),
    )?;
    let mut budgets = matching_budgets(server, namespace, &pod).await?;
    if budgets.len() > 1 {
        return Err(EvictionError::MultipleBudgets);
    }
    let mut opts = request.delete.clone();
    // Set when an unready pod goes without spending a disruption: it must still be the pod
    // that was judged unready when it is deleted.
    let mut pinned_to: Option<String> = None;
    if let Some(pdb) = budgets.pop() {
        let pdb_name = pdb_name(&pdb).to_string();
        if !pod_ready(&pod) && unready_pod_may_go(&pdb) {
            opts.precondition_resource_version = meta_str(&pod, "resourceVersion").map(String::from);
            pinned_to = Some(pdb_name);
        } else {
            spend_disruption(server, namespace, name, pdb, request.delete.dry_run).await?;
        }
    }
    match mark_and_delete(server, namespace, name, opts).await {
        // The unready pod changed (it may have become Ready): let the client try again.
        Err(e) if is_conflict(&e) && !request.client_resource_version && pinned_to.is_some() => {
            Err(EvictionError::still_processing(pinned_to.as_deref().unwrap_or_default()))
        }
        other => other.map_err(Into::into),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::requestinfo::RequestInfo;
    use http::Method;

    fn budget(spec: Value, status: Value) -> PodDisruptionBudget {
        serde_json::from_value(json!({"metadata": {"name": "web", "namespace": "ns", "generation": 1},
            "spec": spec, "status": status}))
        .unwrap()
    }

    fn at(s: &str) -> jiff::Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn eviction_bodies_are_checked_against_the_url() {
        let body = json!({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "p", "namespace": "ns"},
            "deleteOptions": {"gracePeriodSeconds": 5, "preconditions": {"uid": "u1", "resourceVersion": "7"}}});
        let r = parse_request("ns", "p", &body, false).unwrap();
        assert_eq!(r.delete.grace_period_seconds, Some(5));
        assert_eq!(r.delete.precondition_uid.as_deref(), Some("u1"));
        assert_eq!(r.delete.precondition_resource_version.as_deref(), Some("7"));
        assert!(r.client_resource_version && !r.delete.dry_run);

        let beta = json!({"apiVersion": "policy/v1beta1", "kind": "Eviction", "metadata": {"name": "p"},
            "deleteOptions": {"dryRun": ["All"]}});
        let r = parse_request("ns", "p", &beta, false).unwrap();
        assert!(r.delete.dry_run && !r.client_resource_version);
        assert!(parse_request("ns", "p", &json!({"metadata": {"name": "p"}}), true).unwrap().delete.dry_run);

        let wrong_name = parse_request("ns", "q", &body, false).unwrap_err();
        assert_eq!(
            (wrong_name.code(), wrong_name.to_string().as_str()),
            (400, "name in URL does not match name in Eviction object")
        );
        assert_eq!(parse_request("other", "p", &body, false).unwrap_err().code(), 400);
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}});
        assert_eq!(parse_request("ns", "p", &pod, false).unwrap_err().code(), 400);
        let bad_dry = json!({"kind": "Eviction", "metadata": {"name": "p"}, "deleteOptions": {"dryRun": ["Some"]}});
        assert_eq!(parse_request("ns", "p", &bad_dry, false).unwrap_err().code(), 400);
    }

    #[test]
    fn a_budget_with_room_is_decremented_and_records_the_pod() {
        let pdb = budget(
            json!({"minAvailable": 2}),
            json!({"disruptionsAllowed": 1, "currentHealthy": 3, "desiredHealthy": 2, "expectedPods": 3,
                   "observedGeneration": 1, "conditions": [{"type": "DisruptionAllowed", "status": "True",
                   "reason": "SufficientPods", "message": "", "lastTransitionTime": "2025-01-01T00:00:00Z", "observedGeneration": 1}]}),
        );
        let now = at("2025-06-01T12:00:00Z");
        let new = check_and_decrement(&pdb, "web-1", now).unwrap();
        let s = new.status.unwrap();
        assert_eq!(s.disruptions_allowed, 0);
        assert_eq!(s.disrupted_pods.unwrap().get("web-1").map(|t| t.0), Some(now));
        let c = &s.conditions.unwrap()[0];
        assert_eq!(
            (c.status.as_str(), c.reason.as_str(), c.last_transition_time.0),
            ("False", "InsufficientPods", now)
        );
    }

    #[test]
    fn an_exhausted_or_unprocessed_budget_refuses_with_kubernetes_status() {
        let now = at("2025-06-01T12:00:00Z");
        let spent = budget(
            json!({"minAvailable": 2}),
            json!({"disruptionsAllowed": 0, "currentHealthy": 2, "desiredHealthy": 2, "expectedPods": 3, "observedGeneration": 1}),
        );
        let err = check_and_decrement(&spent, "web-1", now).unwrap_err();
        assert_eq!(err.code(), 429);
        assert_eq!(
            err.to_status(),
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                   "message": "Cannot evict pod as it would violate the pod's disruption budget.",
                   "reason": "TooManyRequests", "code": 429,
                   "details": {"causes": [{"reason": "DisruptionBudget",
                       "message": "The disruption budget web needs 2 healthy pods and has 2 currently"}]}})
        );
        // A budget the controller has not seen yet (no status, or an older generation).
        let fresh = budget(json!({"maxUnavailable": 1}), Value::Null);
        let err = check_and_decrement(&fresh, "web-1", now).unwrap_err();
        let status = err.to_status();
        assert_eq!(status["details"]["retryAfterSeconds"], 10);
        assert_eq!(
            status["details"]["causes"][0]["message"],
            "The disruption budget web is still being processed by the server."
        );
        let negative = budget(
            json!({}),
            json!({"disruptionsAllowed": -1, "observedGeneration": 1, "currentHealthy": 0,
            "desiredHealthy": 0, "expectedPods": 0}),
        );
        assert_eq!(check_and_decrement(&negative, "p", now).unwrap_err().code(), 403);
        assert_eq!(EvictionError::MultipleBudgets.to_status()["code"], 500);
        assert!(EvictionError::MultipleBudgets.to_status().get("reason").is_none());
    }

    #[test]
    fn which_pods_skip_the_budget() {
        let pod = |phase: &str, deleting: bool| {
            let mut p = json!({"metadata": {"name": "p", "labels": {"app": "web"}}, "status": {"phase": phase}});
            if deleting {
                p["metadata"]["deletionTimestamp"] = json!("2025-01-01T00:00:00Z");
            }
            p
        };
        assert!(can_ignore_budget(&pod("Succeeded", false)) && !must_pin_version(&pod("Succeeded", false)));
        assert!(can_ignore_budget(&pod("Pending", false)) && must_pin_version(&pod("Pending", false)));
        assert!(can_ignore_budget(&pod("Running", true)) && !must_pin_version(&pod("Running", true)));
        assert!(!can_ignore_budget(&pod("Running", false)));

        let running = pod("Running", false);
        assert!(selects(&budget(json!({"selector": {"matchLabels": {"app": "web"}}}), Value::Null), &running));
        assert!(!selects(&budget(json!({"selector": {"matchLabels": {"app": "db"}}}), Value::Null), &running));
        // policy/v1: an empty selector selects every pod, a missing one none.
        assert!(selects(&budget(json!({"selector": {}}), Value::Null), &running));
        assert!(!selects(&budget(json!({}), Value::Null), &running));
    }

    #[test]
    fn unready_pods_go_when_the_policy_or_the_budget_allows() {
        let healthy = json!({"disruptionsAllowed": 0, "currentHealthy": 2, "desiredHealthy": 2, "expectedPods": 3});
        let unhealthy = json!({"disruptionsAllowed": 0, "currentHealthy": 1, "desiredHealthy": 2, "expectedPods": 3});
        assert!(unready_pod_may_go(&budget(json!({}), healthy.clone())));
        assert!(!unready_pod_may_go(&budget(json!({}), unhealthy.clone())));
        assert!(!unready_pod_may_go(&budget(
            json!({"unhealthyPodEvictionPolicy": "IfHealthyBudget"}),
            unhealthy.clone()
        )));
        assert!(unready_pod_may_go(&budget(json!({"unhealthyPodEvictionPolicy": "AlwaysAllow"}), unhealthy)));
        let nothing_desired =
            json!({"disruptionsAllowed": 0, "currentHealthy": 0, "desiredHealthy": 0, "expectedPods": 0});
        assert!(!unready_pod_may_go(&budget(json!({}), nothing_desired)));
        assert!(pod_ready(&json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}})));
        assert!(!pod_ready(&json!({"status": {"conditions": [{"type": "Ready", "status": "False"}]}})));
    }

    #[test]
    fn the_disruption_target_condition_is_added_once() {
        let mut pod = json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}});
        set_disruption_target(&mut pod);
        let first = pod["status"]["conditions"][1].clone();
        assert_eq!(
            (first["type"].as_str(), first["reason"].as_str()),
            (Some("DisruptionTarget"), Some("EvictionByEvictionAPI"))
        );
        set_disruption_target(&mut pod);
        assert_eq!(pod["status"]["conditions"].as_array().unwrap().len(), 2);
        assert_eq!(pod["status"]["conditions"][1]["lastTransitionTime"], first["lastTransitionTime"]);
    }

    #[test]
    fn evictions_are_authorized_as_create_on_pods_eviction() {
        let info = RequestInfo::from_rest(&Method::POST, "/api/v1/namespaces/ns/pods/web-1/eviction", "");
        assert_eq!(
            (
                info.verb.as_str(),
                info.resource.as_str(),
                info.subresource.as_str(),
                info.name.as_str(),
                info.namespace.as_str()
            ),
            ("create", "pods", "eviction", "web-1", "ns")
        );
    }
}
