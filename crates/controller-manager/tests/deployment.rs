//! The Deployment controller against a real API server, with the ReplicaSet controller making
//! the pods and the test playing the kubelet: ReplicaSets per template with their hash and
//! revision annotations, status and conditions, rolling updates within maxSurge /
//! maxUnavailable (checked continuously while they run), rollback, Recreate, history
//! pruning, pause, scaling mid-rollout and the progress deadline.

mod common;

use common::Cluster;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, ReplicaSet};
use k8s_openapi::api::core::v1::{Event, Pod};
use rkube_client::{ListParams, PatchType};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

const NS: &str = "default";
const REVISION: &str = "deployment.kubernetes.io/revision";

/// A Deployment `name` (pods labelled `app: name`) of `replicas` running `image`, with
/// `spec` merged over the defaults.
fn deployment(name: &str, replicas: i32, image: &str, spec: Value) -> Deployment {
    let mut v = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                         "spec": {"containers": [{"name": "c", "image": image}]}},
        },
    });
    if let (Some(base), Some(extra)) = (v["spec"].as_object_mut(), spec.as_object()) {
        for (k, val) in extra {
            base.insert(k.clone(), val.clone());
        }
    }
    serde_json::from_value(v).expect("a valid Deployment")
}

fn rolling(surge: Value, unavailable: Value) -> Value {
    json!({"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}}})
}

fn ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn active(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none()
        && !matches!(pod.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Succeeded" | "Failed"))
}

fn hash_of(pod: &Pod) -> String {
    pod.metadata.labels.as_ref().and_then(|l| l.get("pod-template-hash")).cloned().unwrap_or_default()
}

/// The live pods of the Deployment `app`.
async fn pods(c: &Cluster, app: &str) -> Vec<Pod> {
    let list = c.api::<Pod>(Some(NS)).list(&ListParams::labels(&format!("app={app}"))).await.expect("pods listed");
    list.items.into_iter().filter(active).collect()
}

/// The ReplicaSets of the Deployment `app`, oldest first.
async fn replica_sets(c: &Cluster, app: &str) -> Vec<ReplicaSet> {
    let mut items =
        c.api::<ReplicaSet>(Some(NS)).list(&ListParams::labels(&format!("app={app}"))).await.expect("listed").items;
    items.sort_by_key(|rs| rs.metadata.creation_timestamp.as_ref().map(|t| t.0));
    items
}

/// Plays the kubelet: the pod runs and is Ready. A pod deleted meanwhile is fine.
async fn mark_ready(c: &Cluster, pod: &Pod) {
    let now = jiff::Timestamp::now().to_string();
    let patch = json!({"status": {"phase": "Running", "podIP": "10.244.0.10", "startTime": now, "conditions": [
        {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
        {"type": "Initialized", "status": "True", "lastTransitionTime": now},
        {"type": "ContainersReady", "status": "True", "lastTransitionTime": now},
        {"type": "Ready", "status": "True", "lastTransitionTime": now}]}});
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    let _ = c.api::<Pod>(Some(NS)).patch_status(name, PatchType::StrategicMerge, &patch).await;
}

fn replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0)
}

fn annotation<'a>(meta: &'a k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta, key: &str) -> Option<&'a str> {
    meta.annotations.as_ref()?.get(key).map(String::as_str)
}

fn condition(d: &Deployment, type_: &str) -> Option<DeploymentCondition> {
    d.status.as_ref()?.conditions.as_ref()?.iter().find(|c| c.type_ == type_).cloned()
}

/// What `kubectl rollout status` waits for.
fn rolled_out(d: &Deployment) -> bool {
    let Some(s) = d.status.as_ref() else { return false };
    let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    s.observed_generation >= d.metadata.generation
        && s.updated_replicas.unwrap_or(0) == want
        && s.replicas.unwrap_or(0) == want
        && s.available_replicas.unwrap_or(0) == want
}

/// Plays the kubelet (every pod of `app` becomes Ready) until the rollout is complete.
async fn roll_out(c: &Cluster, app: &str) -> Deployment {
    let api = c.api::<Deployment>(Some(NS));
    c.eventually(40, &format!("rollout of {app}"), || async {
        for pod in pods(c, app).await.iter().filter(|p| !ready(p)) {
            mark_ready(c, pod).await;
        }
        let d = api.get(app).await.ok()?;
        rolled_out(&d).then_some(d)
    })
    .await
}

/// Changes the image of the Deployment's only container.
async fn set_image(c: &Cluster, app: &str, image: &str) {
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": image}]}}}});
    c.api::<Deployment>(Some(NS)).patch(app, PatchType::StrategicMerge, &patch).await.expect("image changed");
}

/// One look at the pods: each pod's template hash and whether it is Ready.
type Sample = Vec<(String, bool)>;

/// A task sampling the Deployment's pods every 20 ms until stopped: each sample is the pods'
/// (template hash, ready) pairs.
fn sample_pods(c: &Cluster, app: &str) -> (Arc<AtomicBool>, tokio::task::JoinHandle<Vec<Sample>>) {
    let stop = Arc::new(AtomicBool::new(false));
    let (flag, api, selector) = (stop.clone(), c.api::<Pod>(Some(NS)), ListParams::labels(&format!("app={app}")));
    let task = tokio::spawn(async move {
        let mut samples = Vec::new();
        while !flag.load(Ordering::SeqCst) {
            if let Ok(list) = api.list(&selector).await {
                samples.push(list.items.iter().filter(|p| active(p)).map(|p| (hash_of(p), ready(p))).collect());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        samples
    });
    (stop, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creates_a_replica_set_per_template_with_status_and_conditions() {
    let c = Cluster::start("deployment,replicaset", &[]);
    let mut d = deployment("web", 3, "nginx:1", json!({}));
    d.metadata.annotations = Some([("kubernetes.io/change-cause".to_string(), "first".to_string())].into());
    let created = c.api::<Deployment>(Some(NS)).create(&d).await.unwrap();

    let rs = c.eventually(20, "the ReplicaSet", || async { replica_sets(&c, "web").await.into_iter().next() }).await;
    let hash = rs.metadata.labels.as_ref().and_then(|l| l.get("pod-template-hash")).cloned().expect("hash label");
    assert_eq!(rs.metadata.name.as_deref(), Some(format!("web-{hash}").as_str()));
    let spec = rs.spec.as_ref().unwrap();
    assert_eq!(spec.selector.match_labels.as_ref().unwrap()["pod-template-hash"], hash);
    assert_eq!(
        spec.template.as_ref().unwrap().metadata.as_ref().unwrap().labels.as_ref().unwrap()["pod-template-hash"],
        hash
    );
    assert_eq!(replicas(&rs), 3);
    let owner = &rs.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!((owner.kind.as_str(), owner.controller), ("Deployment", Some(true)));
    assert_eq!(Some(&owner.uid), created.metadata.uid.as_ref());
    for (key, want) in [
        (REVISION, "1"),
        ("deployment.kubernetes.io/desired-replicas", "3"),
        // The default maxSurge of 25% of 3 rounds up to 1.
        ("deployment.kubernetes.io/max-replicas", "4"),
        ("kubernetes.io/change-cause", "first"),
    ] {
        assert_eq!(annotation(&rs.metadata, key), Some(want), "{key}");
    }

    // Pods carry the hash; until they are ready the Deployment is not available.
    let api = c.api::<Deployment>(Some(NS));
    c.eventually(20, "3 pods and an unavailable Deployment", || async {
        let ps = pods(&c, "web").await;
        let d = api.get("web").await.ok()?;
        let available = condition(&d, "Available")?;
        (ps.len() == 3
            && ps.iter().all(|p| hash_of(p) == hash)
            && available.status == "False"
            && available.reason.as_deref() == Some("MinimumReplicasUnavailable")
            && annotation(&d.metadata, REVISION) == Some("1"))
        .then_some(())
    })
    .await;

    let d = roll_out(&c, "web").await;
    let s = d.status.as_ref().unwrap();
    assert_eq!(s.observed_generation, d.metadata.generation);
    assert_eq!(
        (s.replicas, s.updated_replicas, s.ready_replicas, s.available_replicas),
        (Some(3), Some(3), Some(3), Some(3))
    );
    assert_eq!(s.unavailable_replicas.unwrap_or(0), 0);
    let available = condition(&d, "Available").unwrap();
    assert_eq!((available.status.as_str(), available.reason.as_deref()), ("True", Some("MinimumReplicasAvailable")));
    assert_eq!(available.message.as_deref(), Some("Deployment has minimum availability."));
    let progressing = c
        .eventually(20, "Progressing NewReplicaSetAvailable", || async {
            let d = api.get("web").await.ok()?;
            condition(&d, "Progressing").filter(|p| p.reason.as_deref() == Some("NewReplicaSetAvailable"))
        })
        .await;
    assert_eq!(progressing.status, "True");
    assert_eq!(progressing.message, Some(format!("ReplicaSet \"web-{hash}\" has successfully progressed.")));

    let message = format!("Scaled up replica set web-{hash} from 0 to 3");
    c.eventually(20, "a ScalingReplicaSet event", || async {
        let events = c.api::<Event>(Some(NS)).list(&ListParams::default()).await.ok()?.items;
        events
            .iter()
            .find(|e| e.reason.as_deref() == Some("ScalingReplicaSet") && e.message.as_deref() == Some(&message))
            .cloned()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_update_stays_within_max_surge_and_max_unavailable() {
    let c = Cluster::start("deployment,replicaset", &[]);
    c.api::<Deployment>(Some(NS)).create(&deployment("web", 3, "nginx:1", rolling(json!(1), json!(0)))).await.unwrap();
    let first = roll_out(&c, "web").await;
    let old_hash = hash_of(&pods(&c, "web").await[0]);

    let (stop, sampler) = sample_pods(&c, "web");
    set_image(&c, "web", "nginx:2").await;
    let d = roll_out(&c, "web").await;
    stop.store(true, Ordering::SeqCst);
    let samples = sampler.await.unwrap();

    assert!(samples.len() > 10, "the checker ran throughout ({} samples)", samples.len());
    for s in &samples {
        let ready = s.iter().filter(|(_, r)| *r).count();
        assert!(ready >= 3, "availability fell below replicas - maxUnavailable: {s:?}");
        assert!(s.len() <= 4, "more than replicas + maxSurge pods: {s:?}");
    }
    assert!(samples.iter().any(|s| s.iter().any(|(h, _)| *h != old_hash)), "new pods were seen");

    let rss = replica_sets(&c, "web").await;
    assert_eq!(rss.len(), 2);
    assert_eq!((replicas(&rss[0]), replicas(&rss[1])), (0, 3));
    assert_eq!(annotation(&rss[1].metadata, REVISION), Some("2"));
    assert_eq!(annotation(&d.metadata, REVISION), Some("2"));
    assert!(d.metadata.generation > first.metadata.generation);
    assert!(pods(&c, "web").await.iter().all(|p| hash_of(p) != old_hash), "no old pods remain");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_reuses_the_old_replica_set_with_a_new_revision() {
    let c = Cluster::start("deployment,replicaset", &[]);
    let api = c.api::<Deployment>(Some(NS));
    api.create(&deployment("web", 2, "nginx:1", json!({}))).await.unwrap();
    roll_out(&c, "web").await;
    set_image(&c, "web", "nginx:2").await;
    roll_out(&c, "web").await;
    let rss = replica_sets(&c, "web").await;
    assert_eq!(rss.len(), 2);
    let (v1, v2) = (rss[0].clone(), rss[1].clone());
    assert_eq!(annotation(&v1.metadata, REVISION), Some("1"));

    // What `kubectl rollout undo` sends: the old ReplicaSet's template without the hash label.
    let mut template = serde_json::to_value(v1.spec.as_ref().unwrap().template.as_ref().unwrap()).unwrap();
    template["metadata"]["labels"].as_object_mut().unwrap().remove("pod-template-hash");
    let patch = json!([{"op": "replace", "path": "/spec/template", "value": template}]);
    api.patch("web", PatchType::Json, &patch).await.unwrap();

    roll_out(&c, "web").await;
    let rss = c
        .eventually(20, "v1 scaled up again as revision 3", || async {
            let rss = replica_sets(&c, "web").await;
            (rss.len() == 2
                && annotation(&rss[0].metadata, REVISION) == Some("3")
                && replicas(&rss[0]) == 2
                && replicas(&rss[1]) == 0)
                .then_some(rss)
        })
        .await;
    assert_eq!(rss[0].metadata.uid, v1.metadata.uid, "the old ReplicaSet was reused");
    assert_eq!(rss[1].metadata.uid, v2.metadata.uid);
    assert_eq!(annotation(&rss[0].metadata, "deployment.kubernetes.io/revision-history"), Some("1"));
    let d = c
        .eventually(20, "the Deployment at revision 3", || async {
            let d = api.get("web").await.ok()?;
            (annotation(&d.metadata, REVISION) == Some("3")).then_some(d)
        })
        .await;
    let v1_hash = v1.metadata.labels.as_ref().unwrap()["pod-template-hash"].clone();
    assert!(pods(&c, "web").await.iter().all(|p| hash_of(p) == v1_hash));
    assert!(rolled_out(&d));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recreate_removes_old_pods_before_new_ones_exist() {
    let c = Cluster::start("deployment,replicaset", &[]);
    let spec = json!({"strategy": {"type": "Recreate"}});
    c.api::<Deployment>(Some(NS)).create(&deployment("web", 2, "nginx:1", spec)).await.unwrap();
    roll_out(&c, "web").await;
    let old_hash = hash_of(&pods(&c, "web").await[0]);

    let (stop, sampler) = sample_pods(&c, "web");
    set_image(&c, "web", "nginx:2").await;
    roll_out(&c, "web").await;
    stop.store(true, Ordering::SeqCst);
    let samples = sampler.await.unwrap();

    for s in &samples {
        let old = s.iter().filter(|(h, _)| *h == old_hash).count();
        assert!(old == 0 || old == s.len(), "old and new pods side by side: {s:?}");
    }
    assert!(samples.iter().any(|s| s.iter().any(|(h, _)| *h == old_hash)), "old pods were seen");
    assert!(samples.iter().any(|s| s.iter().any(|(h, _)| *h != old_hash)), "new pods were seen");
    let rss = replica_sets(&c, "web").await;
    assert_eq!((replicas(&rss[0]), replicas(&rss[1])), (0, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revision_history_limit_prunes_the_oldest_replica_sets() {
    let c = Cluster::start("deployment,replicaset", &[]);
    let spec = json!({"revisionHistoryLimit": 1});
    c.api::<Deployment>(Some(NS)).create(&deployment("web", 1, "nginx:1", spec)).await.unwrap();
    roll_out(&c, "web").await;
    for image in ["nginx:2", "nginx:3", "nginx:4"] {
        set_image(&c, "web", image).await;
        roll_out(&c, "web").await;
    }
    let rss = c
        .eventually(20, "one old ReplicaSet left", || async {
            let rss = replica_sets(&c, "web").await;
            (rss.len() == 2).then_some(rss)
        })
        .await;
    let mut revisions: Vec<&str> = rss.iter().filter_map(|rs| annotation(&rs.metadata, REVISION)).collect();
    revisions.sort();
    assert_eq!(revisions, ["3", "4"], "the newest old revision is kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_deployment_scales_but_does_not_roll_out() {
    let c = Cluster::start("deployment,replicaset", &[]);
    let api = c.api::<Deployment>(Some(NS));
    api.create(&deployment("web", 2, "nginx:1", json!({}))).await.unwrap();
    roll_out(&c, "web").await;

    api.patch("web", PatchType::Merge, &json!({"spec": {"paused": true}})).await.unwrap();
    c.eventually(20, "Progressing DeploymentPaused", || async {
        let d = api.get("web").await.ok()?;
        let p = condition(&d, "Progressing")?;
        (p.reason.as_deref() == Some("DeploymentPaused") && p.status == "Unknown").then_some(())
    })
    .await;
    set_image(&c, "web", "nginx:2").await;
    api.patch("web", PatchType::Merge, &json!({"spec": {"replicas": 3}})).await.unwrap();
    // Once the controller has seen both changes the scale is applied, the template is not.
    c.eventually(20, "scaled while paused", || async {
        let d = api.get("web").await.ok()?;
        let rss = replica_sets(&c, "web").await;
        (d.status.as_ref()?.observed_generation == d.metadata.generation && rss.len() == 1 && replicas(&rss[0]) == 3)
            .then_some(())
    })
    .await;
    let rss = replica_sets(&c, "web").await;
    assert_eq!(rss.len(), 1, "no rollout while paused");
    assert_eq!(annotation(&api.get("web").await.unwrap().metadata, REVISION), Some("1"));

    api.patch("web", PatchType::Merge, &json!({"spec": {"paused": false}})).await.unwrap();
    let d = c
        .eventually(40, "the rollout after resuming", || async {
            for pod in pods(&c, "web").await.iter().filter(|p| !ready(p)) {
                mark_ready(&c, pod).await;
            }
            let d = api.get("web").await.ok()?;
            (rolled_out(&d) && annotation(&d.metadata, REVISION) == Some("2")).then_some(d)
        })
        .await;
    let rss = replica_sets(&c, "web").await;
    assert_eq!((rss.len(), replicas(&rss[1])), (2, 3));
    assert_ne!(condition(&d, "Progressing").unwrap().reason.as_deref(), Some("DeploymentPaused"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scaling_mid_rollout_is_proportional() {
    let c = Cluster::start("deployment,replicaset", &[]);
    let api = c.api::<Deployment>(Some(NS));
    api.create(&deployment("web", 4, "nginx:1", rolling(json!(1), json!(1)))).await.unwrap();
    roll_out(&c, "web").await;

    // New pods never become ready: the rollout stops at 3 old + 2 new (5 = 4 + maxSurge, and
    // the unready new ones hold the availability floor).
    set_image(&c, "web", "nginx:2").await;
    c.eventually(30, "the rollout stuck at 3 old and 2 new", || async {
        let rss = replica_sets(&c, "web").await;
        let settled = rss.len() == 2
            && replicas(&rss[0]) == 3
            && rss[0].status.as_ref()?.replicas == 3
            && replicas(&rss[1]) == 2
            && rss[1].status.as_ref()?.replicas == 2;
        settled.then_some(())
    })
    .await;

    // 8 replicas + 1 surge = 9, spread 3:2 -> 5:4.
    api.patch("web", PatchType::Merge, &json!({"spec": {"replicas": 8}})).await.unwrap();
    let rss = c
        .eventually(20, "proportional sizes", || async {
            let rss = replica_sets(&c, "web").await;
            (replicas(&rss[0]) == 5 && replicas(&rss[1]) == 4).then_some(rss)
        })
        .await;
    for rs in &rss {
        assert_eq!(annotation(&rs.metadata, "deployment.kubernetes.io/desired-replicas"), Some("8"));
        assert_eq!(annotation(&rs.metadata, "deployment.kubernetes.io/max-replicas"), Some("9"));
    }

    roll_out(&c, "web").await;
    let rss = replica_sets(&c, "web").await;
    assert_eq!((replicas(&rss[0]), replicas(&rss[1])), (0, 8));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_deadline_exceeded_when_pods_never_become_ready() {
    let c = Cluster::start("deployment,replicaset", &[]);
    let api = c.api::<Deployment>(Some(NS));
    api.create(&deployment("web", 1, "nginx:1", json!({"progressDeadlineSeconds": 2}))).await.unwrap();
    let p = c
        .eventually(20, "Progressing ProgressDeadlineExceeded", || async {
            let d = api.get("web").await.ok()?;
            condition(&d, "Progressing").filter(|p| p.reason.as_deref() == Some("ProgressDeadlineExceeded"))
        })
        .await;
    assert_eq!(p.status, "False");
    let rs = replica_sets(&c, "web").await.remove(0);
    let name = rs.metadata.name.unwrap();
    assert_eq!(p.message, Some(format!("ReplicaSet \"{name}\" has timed out progressing.")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adopts_matching_orphan_replica_sets_and_releases_mismatched_ones() {
    let c = Cluster::start("deployment,replicaset", &[]);
    let labels = json!({"app": "web", "pod-template-hash": "x1"});
    let orphan: ReplicaSet = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": "orphan", "namespace": NS, "labels": labels},
        "spec": {"replicas": 2, "selector": {"matchLabels": labels},
                 "template": {"metadata": {"labels": labels},
                              "spec": {"containers": [{"name": "c", "image": "nginx:1"}]}}},
    }))
    .unwrap();
    let rs_api = c.api::<ReplicaSet>(Some(NS));
    rs_api.create(&orphan).await.unwrap();
    let d = c.api::<Deployment>(Some(NS)).create(&deployment("web", 2, "nginx:1", json!({}))).await.unwrap();

    // Same template (but for the hash label): adopted and used as the new ReplicaSet.
    let adopted = c
        .eventually(20, "the orphan adopted", || async {
            let rs = rs_api.get("orphan").await.ok()?;
            let owner = rs.metadata.owner_references.as_ref()?.iter().find(|r| r.controller == Some(true))?.clone();
            (annotation(&rs.metadata, REVISION) == Some("1")).then_some((rs, owner))
        })
        .await;
    assert_eq!(Some(&adopted.1.uid), d.metadata.uid.as_ref());
    roll_out(&c, "web").await;
    assert_eq!(replica_sets(&c, "web").await.len(), 1, "no second ReplicaSet for the same template");

    // Its labels no longer match: released, and a ReplicaSet of the Deployment's own replaces it.
    let patch = json!({"metadata": {"labels": {"app": "other"}}});
    rs_api.patch("orphan", PatchType::Merge, &patch).await.unwrap();
    let released = c
        .eventually(20, "the ReplicaSet released", || async {
            let rs = rs_api.get("orphan").await.ok()?;
            let owned = rs.metadata.owner_references.iter().flatten().any(|r| r.controller == Some(true));
            (!owned).then_some(rs)
        })
        .await;
    assert_eq!(replicas(&released), 2, "a released ReplicaSet is left as it was");
    // The Deployment's status may still describe the released ReplicaSet: wait for the
    // controller to create its own before the rollout counts.
    c.eventually(20, "a ReplicaSet of the Deployment's own", || async {
        (!replica_sets(&c, "web").await.is_empty()).then_some(())
    })
    .await;
    roll_out(&c, "web").await;
    let rss = replica_sets(&c, "web").await;
    assert_eq!(rss.len(), 1);
    assert!(rss[0].metadata.name.as_deref().unwrap().starts_with("web-"));
}
