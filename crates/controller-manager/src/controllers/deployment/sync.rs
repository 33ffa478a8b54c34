//! The ReplicaSets of a Deployment as Kubernetes keeps them: the template hash that names the
//! new one, finding it again (also after a rollback), creating it, revision numbers and the
//! annotations copied from the Deployment, proportional scaling when the Deployment is scaled
//! mid-rollout, and pruning old ReplicaSets beyond `revisionHistoryLimit`.

use super::{
    DESIRED_REPLICAS_ANNOTATION, DeploymentController, HASH_LABEL, MAX_REPLICAS_ANNOTATION, REVISION_ANNOTATION,
    REVISION_HISTORY_ANNOTATION, annotation, desired, is_paused, replace, rolling, rs_available, rs_replicas, status,
};
use crate::{Action, Error};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, ReplicaSetSpec};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use rkube_client::{EventType, object_key};
use serde_json::Value;
use std::cmp::Ordering;
use std::collections::BTreeMap;

/// Annotations of the Deployment that are not copied to its ReplicaSets.
const NOT_COPIED: &[&str] = &[
    "kubectl.kubernetes.io/last-applied-configuration",
    REVISION_ANNOTATION,
    REVISION_HISTORY_ANNOTATION,
    DESIRED_REPLICAS_ANNOTATION,
    MAX_REPLICAS_ANNOTATION,
    "deprecated.deployment.rollback.to",
];

/// Longest revision-history annotation kept, in characters (as Kubernetes).
const MAX_REVISION_HISTORY_CHARS: usize = 2000;

/// Characters of Kubernetes' safe encoding: no vowels (no words) and no look-alikes.
const SAFE_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// 32-bit FNV-1a.
struct Fnv32a(u32);

impl Fnv32a {
    fn new() -> Self {
        Fnv32a(0x811c_9dc5)
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u32::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0193);
        }
    }
}

/// Writes `v` as JSON with object keys sorted, so equal templates hash equal.
fn canonical(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Object(m) => {
            out.push(b'{');
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(Value::String(k.clone()).to_string().as_bytes());
                out.push(b':');
                canonical(&m[k], out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                canonical(item, out);
            }
            out.push(b']');
        }
        other => out.extend_from_slice(other.to_string().as_bytes()),
    }
}

/// Kubernetes' `rand.SafeEncodeString`: each byte mapped into [`SAFE_ALPHABET`].
fn safe_encode(s: &str) -> String {
    s.bytes().map(|b| char::from(SAFE_ALPHABET[usize::from(b) % SAFE_ALPHABET.len()])).collect()
}

/// The `pod-template-hash` of a template: FNV-1a over its canonical JSON (plus the
/// collision count, which moves the hash off a name another object took), safe-encoded.
pub(super) fn template_hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    let value = serde_json::to_value(template).unwrap_or(Value::Null);
    let mut bytes = Vec::new();
    canonical(&value, &mut bytes);
    let mut h = Fnv32a::new();
    h.write(&bytes);
    if let Some(c) = collision_count {
        // Eight bytes with the count little-endian in the first four, as Kubernetes writes it.
        let mut buf = [0u8; 8];
        buf[..4].copy_from_slice(&(c as u32).to_le_bytes());
        h.write(&buf);
    }
    safe_encode(&h.0.to_string())
}

/// Drops what serialization may or may not spell out (nulls, empty lists, empty label and
/// annotation maps), so that equal templates compare equal.
fn prune(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|_, x| !x.is_null() && !x.as_array().is_some_and(Vec::is_empty));
            for x in m.values_mut() {
                prune(x);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(prune),
        _ => {}
    }
}

/// A template as compared by [`equal_ignore_hash`].
fn comparable_template(t: &PodTemplateSpec) -> Value {
    let mut v = serde_json::to_value(t).unwrap_or(Value::Null);
    if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        for key in ["labels", "annotations"] {
            if let Some(map) = meta.get_mut(key).and_then(Value::as_object_mut) {
                if key == "labels" {
                    map.remove(HASH_LABEL);
                }
                if map.is_empty() {
                    meta.remove(key);
                }
            }
        }
    }
    prune(&mut v);
    v
}

/// Whether two templates are the same apart from the `pod-template-hash` label.
pub(super) fn equal_ignore_hash(a: &PodTemplateSpec, b: &PodTemplateSpec) -> bool {
    comparable_template(a) == comparable_template(b)
}

/// The revision a ReplicaSet records (0 when missing or not a number).
pub(super) fn revision(rs: &ReplicaSet) -> i64 {
    annotation(&rs.metadata, REVISION_ANNOTATION).and_then(|r| r.parse().ok()).unwrap_or(0)
}

/// Order by creation time, then name (oldest first).
pub(super) fn by_creation(a: &ReplicaSet, b: &ReplicaSet) -> Ordering {
    let t = |rs: &ReplicaSet| rs.metadata.creation_timestamp.as_ref().map(|t| t.0);
    t(a).cmp(&t(b)).then_with(|| a.metadata.name.cmp(&b.metadata.name))
}

/// The ReplicaSet whose template is the Deployment's (the oldest, should there be several).
pub(super) fn find_new<'a>(d: &Deployment, rss: &'a [ReplicaSet]) -> Option<&'a ReplicaSet> {
    let template = &d.spec.as_ref()?.template;
    let mut sorted: Vec<&ReplicaSet> = rss.iter().collect();
    sorted.sort_by(|a, b| by_creation(a, b));
    sorted
        .into_iter()
        .find(|rs| rs.spec.as_ref().and_then(|s| s.template.as_ref()).is_some_and(|t| equal_ignore_hash(t, template)))
}

/// Splits `rss` into the one named `new` and the old ones (copies).
pub(super) fn parts(rss: &[ReplicaSet], new: Option<&str>) -> (Option<ReplicaSet>, Vec<ReplicaSet>) {
    let is_new = |rs: &ReplicaSet| new.is_some() && rs.metadata.name.as_deref() == new;
    (rss.iter().find(|rs| is_new(rs)).cloned(), rss.iter().filter(|rs| !is_new(rs)).cloned().collect())
}

/// Sets the desired / max replicas annotations; true if they changed.
pub(super) fn set_replicas_annotations(rs: &mut ReplicaSet, desired: i32, max: i32) -> bool {
    let annotations = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
    let mut changed = false;
    for (key, value) in [(DESIRED_REPLICAS_ANNOTATION, desired), (MAX_REPLICAS_ANNOTATION, max)] {
        let value = value.to_string();
        if annotations.get(key) != Some(&value) {
            annotations.insert(key.to_string(), value);
            changed = true;
        }
    }
    changed
}

/// Whether the desired / max replicas annotations differ from these values.
pub(super) fn replicas_annotations_need_update(rs: &ReplicaSet, desired: i32, max: i32) -> bool {
    annotation(&rs.metadata, DESIRED_REPLICAS_ANNOTATION) != Some(desired.to_string().as_str())
        || annotation(&rs.metadata, MAX_REPLICAS_ANNOTATION) != Some(max.to_string().as_str())
}

/// The desired-replicas annotation, if it is a number.
fn desired_annotation(rs: &ReplicaSet) -> Option<i32> {
    annotation(&rs.metadata, DESIRED_REPLICAS_ANNOTATION)?.parse().ok()
}

/// Copies the Deployment's annotations (but the controller's own) to the new ReplicaSet,
/// raises its revision to `new_revision` (remembering the one it had in the revision
/// history: that is a rollback), and for a ReplicaSet about to be created adds the replicas
/// annotations. True when anything changed.
pub(super) fn set_new_rs_annotations(d: &Deployment, rs: &mut ReplicaSet, new_revision: i64, exists: bool) -> bool {
    let annotations = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
    let mut changed = false;
    for (k, v) in d.metadata.annotations.iter().flatten() {
        if NOT_COPIED.contains(&k.as_str()) || annotations.get(k) == Some(v) {
            continue;
        }
        annotations.insert(k.clone(), v.clone());
        changed = true;
    }
    let old = annotations.get(REVISION_ANNOTATION).cloned();
    let old_number = match old.as_deref().map(str::parse::<i64>) {
        None => 0,
        Some(Ok(n)) => n,
        // Not a number: leave the ReplicaSet alone, as Kubernetes does.
        Some(Err(_)) => return false,
    };
    if old_number < new_revision {
        annotations.insert(REVISION_ANNOTATION.to_string(), new_revision.to_string());
        changed = true;
        if let Some(old) = old {
            let history = annotations.get(REVISION_HISTORY_ANNOTATION).cloned().unwrap_or_default();
            let mut revisions: Vec<&str> = history.split(',').filter(|s| !s.is_empty()).collect();
            // Forget the oldest entries rather than grow past the limit.
            let mut len = history.len() + old.len() + 1;
            while len > MAX_REVISION_HISTORY_CHARS && !revisions.is_empty() {
                len -= revisions[0].len() + 1;
                revisions.remove(0);
            }
            if len <= MAX_REVISION_HISTORY_CHARS {
                revisions.push(&old);
                annotations.insert(REVISION_HISTORY_ANNOTATION.to_string(), revisions.join(","));
            }
        }
    }
    if !exists && set_replicas_annotations(rs, desired(d), desired(d) + rolling::max_surge(d)) {
        changed = true;
    }
    changed
}

/// Sets the Deployment's revision annotation; true if it changed.
fn set_deployment_revision(d: &mut Deployment, revision: &str) -> bool {
    let annotations = d.metadata.annotations.get_or_insert_with(BTreeMap::new);
    if annotations.get(REVISION_ANNOTATION).map(String::as_str) == Some(revision) {
        return false;
    }
    annotations.insert(REVISION_ANNOTATION.to_string(), revision.to_string());
    true
}

/// One ReplicaSet size to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ScaleTo {
    /// The ReplicaSet.
    pub name: String,
    /// Its new `spec.replicas`.
    pub replicas: i32,
    /// Also write the replicas annotations if only they are stale.
    pub refresh: bool,
}

/// Whether `rs` has every replica of the Deployment, with the Deployment's current size
/// recorded, and all of them available.
fn is_saturated(d: &Deployment, rs: Option<&ReplicaSet>) -> bool {
    let Some(rs) = rs else { return false };
    rs_replicas(rs) == desired(d) && desired_annotation(rs) == Some(desired(d)) && rs_available(rs) == desired(d)
}

/// Order for scaling up: bigger first, then newer first.
fn by_size_newer(a: &ReplicaSet, b: &ReplicaSet) -> Ordering {
    rs_replicas(b).cmp(&rs_replicas(a)).then_with(|| by_creation(b, a))
}

/// Order for scaling down: bigger first, then older first.
fn by_size_older(a: &ReplicaSet, b: &ReplicaSet) -> Ordering {
    rs_replicas(b).cmp(&rs_replicas(a)).then_with(|| by_creation(a, b))
}

/// How many replicas `rs` gains (or loses) of `to_add` in proportion to its size against
/// the Deployment size it was last scaled for (its max-replicas annotation).
fn rs_fraction(d: &Deployment, rs: &ReplicaSet) -> i32 {
    if desired(d) == 0 {
        return -rs_replicas(rs);
    }
    let max = desired(d) + rolling::max_surge(d);
    let annotated = annotation(&rs.metadata, MAX_REPLICAS_ANNOTATION)
        .and_then(|v| v.parse::<i32>().ok())
        .filter(|v| *v != 0)
        .unwrap_or_else(|| d.status.as_ref().and_then(|s| s.replicas).unwrap_or(0));
    if annotated == 0 {
        return 0;
    }
    let size = f64::from(rs_replicas(rs)) * f64::from(max) / f64::from(annotated);
    size.round() as i32 - rs_replicas(rs)
}

/// The share of `to_add` (of which `added` are handed out already) that `rs` gets.
fn proportion(d: &Deployment, rs: &ReplicaSet, to_add: i32, added: i32) -> i32 {
    if rs_replicas(rs) == 0 || to_add == 0 || to_add == added {
        return 0;
    }
    let fraction = rs_fraction(d, rs);
    let allowed = to_add - added;
    if to_add > 0 { fraction.min(allowed) } else { fraction.max(allowed) }
}

/// The sizes that bring the ReplicaSets to the Deployment's replica count when it changed:
/// the only active ReplicaSet (or the newest) takes it all; a saturated new one means old
/// ones go to zero; mid-rollout the difference is spread over the active ReplicaSets in
/// proportion to their sizes, leftovers to the biggest.
pub(super) fn plan_scale(d: &Deployment, new: Option<&ReplicaSet>, olds: &[ReplicaSet]) -> Vec<ScaleTo> {
    let to = |rs: &ReplicaSet, replicas: i32, refresh: bool| ScaleTo {
        name: rs.metadata.name.clone().unwrap_or_default(),
        replicas,
        refresh,
    };
    let mut olds: Vec<&ReplicaSet> = olds.iter().collect();
    olds.sort_by(|a, b| by_creation(b, a));
    let mut active: Vec<&ReplicaSet> = olds.iter().copied().chain(new).filter(|rs| rs_replicas(rs) > 0).collect();
    if new.is_none() && olds.is_empty() {
        return Vec::new();
    }
    if active.len() <= 1 {
        let target = match active.first() {
            Some(rs) => *rs,
            None => match new {
                Some(rs) => rs,
                None => olds[0],
            },
        };
        if rs_replicas(target) == desired(d) {
            return Vec::new();
        }
        return vec![to(target, desired(d), false)];
    }
    if is_saturated(d, new) {
        return olds.iter().filter(|rs| rs_replicas(rs) > 0).map(|rs| to(rs, 0, false)).collect();
    }
    if super::is_recreate(d) {
        return Vec::new();
    }
    let current: i32 = active.iter().map(|rs| rs_replicas(rs)).sum();
    let allowed = if desired(d) > 0 { desired(d) + rolling::max_surge(d) } else { 0 };
    let to_add = allowed - current;
    match to_add.cmp(&0) {
        Ordering::Greater => active.sort_by(|a, b| by_size_newer(a, b)),
        Ordering::Less => active.sort_by(|a, b| by_size_older(a, b)),
        Ordering::Equal => {}
    }
    let mut added = 0;
    let mut sizes: Vec<i32> = Vec::with_capacity(active.len());
    for rs in &active {
        let p = if to_add != 0 { proportion(d, rs, to_add, added) } else { 0 };
        sizes.push(rs_replicas(rs) + p);
        added += p;
    }
    if to_add != 0
        && let Some(first) = sizes.first_mut()
    {
        *first = (*first + to_add - added).max(0);
    }
    active.iter().zip(sizes).map(|(rs, size)| to(rs, size, true)).collect()
}

/// Old ReplicaSets to delete so at most `revisionHistoryLimit` remain: the lowest revisions
/// first, and only those fully scaled down and settled.
pub(super) fn plan_cleanup(d: &Deployment, olds: &[ReplicaSet]) -> Vec<String> {
    let Some(limit) = d.spec.as_ref().and_then(|s| s.revision_history_limit) else { return Vec::new() };
    if limit == i32::MAX {
        return Vec::new();
    }
    let mut alive: Vec<&ReplicaSet> = olds.iter().filter(|rs| rs.metadata.deletion_timestamp.is_none()).collect();
    let excess = alive.len() as i64 - i64::from(limit);
    if excess <= 0 {
        return Vec::new();
    }
    alive.sort_by(|a, b| revision(a).cmp(&revision(b)).then_with(|| by_creation(a, b)));
    alive
        .into_iter()
        .take(excess as usize)
        .filter(|rs| {
            let observed = rs.status.as_ref().and_then(|s| s.observed_generation).unwrap_or(0);
            super::rs_actual(rs) == 0 && rs_replicas(rs) == 0 && rs.metadata.generation.unwrap_or(0) <= observed
        })
        .filter_map(|rs| rs.metadata.name.clone())
        .collect()
}

impl DeploymentController {
    /// Finds the new ReplicaSet (creating it when `create`), brings its revision and
    /// annotations up to date and copies its revision to the Deployment. Returns its name.
    pub(super) async fn sync_revision(
        &self,
        d: &mut Deployment,
        rss: &mut Vec<ReplicaSet>,
        create: bool,
    ) -> Result<Option<String>, Error> {
        let now = status::now();
        let existing = find_new(d, rss).cloned();
        let existing_name = existing.as_ref().and_then(|rs| rs.metadata.name.clone());
        let max_old = rss
            .iter()
            .filter(|rs| existing_name.is_none() || rs.metadata.name != existing_name)
            .map(revision)
            .max()
            .unwrap_or(0);
        let new_revision = max_old + 1;
        let min_ready = d.spec.as_ref().and_then(|s| s.min_ready_seconds);
        let api = self.ctx.client.api::<ReplicaSet>(d.metadata.namespace.as_deref());

        if let Some(existing) = existing {
            let mut rs = existing.clone();
            let annotations_changed = set_new_rs_annotations(d, &mut rs, new_revision, true);
            let spec = rs.spec.get_or_insert_with(Default::default);
            let min_ready_changed = spec.min_ready_seconds.unwrap_or(0) != min_ready.unwrap_or(0);
            if annotations_changed || min_ready_changed {
                spec.min_ready_seconds = min_ready;
                rs = api.update(&rs).await?;
                replace(rss, rs.clone());
            }
            let revision = annotation(&rs.metadata, REVISION_ANNOTATION).unwrap_or_default().to_string();
            set_deployment_revision(d, &revision);
            if status::has_progress_deadline(d) && status::condition(d, status::PROGRESSING).is_none() {
                let name = rs.metadata.name.as_deref().unwrap_or_default();
                let c = status::new_condition(
                    status::PROGRESSING,
                    "True",
                    status::FOUND_NEW_RS,
                    &format!("Found new replica set \"{name}\""),
                    now,
                );
                status::set_condition(d, c);
            }
            return Ok(rs.metadata.name);
        }
        if !create {
            return Ok(None);
        }

        let Some(spec) = d.spec.clone() else { return Ok(None) };
        let collision_count = d.status.as_ref().and_then(|s| s.collision_count);
        let hash = template_hash(&spec.template, collision_count);
        let mut template = spec.template.clone();
        let meta = template.metadata.get_or_insert_with(ObjectMeta::default);
        meta.labels.get_or_insert_with(BTreeMap::new).insert(HASH_LABEL.to_string(), hash.clone());
        let labels = meta.labels.clone();
        let mut selector = spec.selector.clone();
        selector.match_labels.get_or_insert_with(BTreeMap::new).insert(HASH_LABEL.to_string(), hash.clone());
        let name = format!("{}-{hash}", d.metadata.name.as_deref().unwrap_or_default());
        let mut new_rs = ReplicaSet {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: d.metadata.namespace.clone(),
                owner_references: Some(vec![super::owner_ref(d)]),
                labels,
                ..Default::default()
            },
            spec: Some(ReplicaSetSpec {
                replicas: Some(0),
                min_ready_seconds: min_ready,
                selector,
                template: Some(template),
            }),
            status: None,
        };
        let all: Vec<&ReplicaSet> = rss.iter().chain(std::iter::once(&new_rs)).collect();
        let replicas = rolling::new_rs_new_replicas(d, &all, &new_rs);
        if let Some(s) = new_rs.spec.as_mut() {
            s.replicas = Some(replicas);
        }
        set_new_rs_annotations(d, &mut new_rs, new_revision, false);

        let created = match api.create(&new_rs).await {
            Ok(created) => {
                if replicas > 0 {
                    let message = format!("Scaled up replica set {name} from 0 to {replicas}");
                    self.ctx.recorder.record(d, EventType::Normal, "ScalingReplicaSet", &message);
                }
                let deployment = object_key(&d.metadata);
                tracing::info!(%deployment, replicaset = %name, replicas, "created new ReplicaSet");
                if status::has_progress_deadline(d) {
                    let message = format!("Created new replica set \"{name}\"");
                    let c = status::new_condition(status::PROGRESSING, "True", status::NEW_RS_CREATED, &message, now);
                    status::set_condition(d, c);
                }
                created
            }
            Err(e) if e.is_already_exists() => {
                let found = match self.replica_sets.get(&format!("{}/{name}", api.namespace())) {
                    Some(rs) => (*rs).clone(),
                    None => api.get(&name).await?,
                };
                let ours =
                    super::controller_of(&found.metadata).is_some_and(|r| Some(&r.uid) == d.metadata.uid.as_ref());
                let same = found
                    .spec
                    .as_ref()
                    .and_then(|s| s.template.as_ref())
                    .is_some_and(|t| equal_ignore_hash(t, &spec.template));
                if !(ours && same) {
                    // Another object has this name: move the hash on and try again.
                    let st = d.status.get_or_insert_with(Default::default);
                    st.collision_count = Some(st.collision_count.unwrap_or(0).saturating_add(1));
                    self.ctx
                        .client
                        .api::<k8s_openapi::api::apps::v1::Deployment>(d.metadata.namespace.as_deref())
                        .update_status(d)
                        .await?;
                    let deployment = object_key(&d.metadata);
                    tracing::info!(%deployment, replicaset = %name, "hash collision; bumped collisionCount");
                    return Err(Error::Invalid(format!("ReplicaSet {name} exists and is not this Deployment's")));
                }
                found
            }
            Err(e) => {
                let message = format!("Failed to create new replica set \"{name}\": {e}");
                if status::has_progress_deadline(d) {
                    let c =
                        status::new_condition(status::PROGRESSING, "False", status::FAILED_RS_CREATE, &message, now);
                    status::set_condition(d, c);
                    let api = self.ctx.client.api::<Deployment>(d.metadata.namespace.as_deref());
                    // The creation error is the one to report; a failed status write is not.
                    let _ = api.update_status(d).await;
                }
                self.ctx.recorder.record(d, EventType::Warning, status::FAILED_RS_CREATE, &message);
                return Err(e.into());
            }
        };
        set_deployment_revision(d, &new_revision.to_string());
        replace(rss, created);
        Ok(Some(name))
    }

    /// Whether the Deployment's replica count changed since its active ReplicaSets were
    /// last sized (their desired-replicas annotation says otherwise).
    pub(super) fn is_scaling_event(&self, d: &Deployment, rss: &[ReplicaSet]) -> bool {
        rss.iter().filter(|rs| rs_replicas(rs) > 0).any(|rs| desired_annotation(rs).is_some_and(|n| n != desired(d)))
    }

    /// Scaling only (paused Deployments and replica count changes): resize the ReplicaSets
    /// and refresh status, without rolling out.
    pub(super) async fn sync(&self, d: &mut Deployment, rss: &mut Vec<ReplicaSet>) -> Result<Action, Error> {
        let new_name = self.sync_revision(d, rss, false).await?;
        let (new, olds) = parts(rss, new_name.as_deref());
        for step in plan_scale(d, new.as_ref(), &olds) {
            let Some(rs) = rss.iter().find(|r| r.metadata.name.as_deref() == Some(step.name.as_str())).cloned() else {
                continue;
            };
            if let Some(updated) = self.scale_rs(d, &rs, step.replicas, step.refresh).await? {
                replace(rss, updated);
            }
        }
        if is_paused(d) {
            let (_, olds) = parts(rss, new_name.as_deref());
            self.cleanup(d, &olds).await?;
        }
        let (new, _) = parts(rss, new_name.as_deref());
        let all: Vec<&ReplicaSet> = rss.iter().collect();
        d.status = Some(status::calculate_status(d, &all, new.as_ref()));
        Ok(Action::Done)
    }

    /// A Deployment being deleted gets its status refreshed and nothing else.
    pub(super) async fn sync_status_only(
        &self,
        d: &mut Deployment,
        rss: &mut Vec<ReplicaSet>,
    ) -> Result<Action, Error> {
        let new_name = self.sync_revision(d, rss, false).await?;
        let (new, _) = parts(rss, new_name.as_deref());
        let all: Vec<&ReplicaSet> = rss.iter().collect();
        d.status = Some(status::calculate_status(d, &all, new.as_ref()));
        Ok(Action::Done)
    }

    /// Deletes old ReplicaSets beyond the revision history limit.
    pub(super) async fn cleanup(&self, d: &Deployment, olds: &[ReplicaSet]) -> Result<(), Error> {
        let api = self.ctx.client.api::<ReplicaSet>(d.metadata.namespace.as_deref());
        for name in plan_cleanup(d, olds) {
            let deployment = object_key(&d.metadata);
            tracing::info!(%deployment, replicaset = %name, "deleting an old ReplicaSet beyond the history limit");
            match api.delete(&name, &Default::default()).await {
                Ok(()) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use serde_json::json;

    /// A Deployment from JSON.
    pub fn deployment(v: Value) -> Deployment {
        serde_json::from_value(v).unwrap()
    }

    /// A ReplicaSet with a name, size, availability, creation second and annotations.
    pub fn rs(name: &str, replicas: i32, available: i32, created: i64, annotations: Value) -> ReplicaSet {
        let ts = jiff::Timestamp::from_second(1_700_000_000 + created).unwrap().to_string();
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "ns", "creationTimestamp": ts, "annotations": annotations},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}}},
            "status": {"replicas": replicas, "availableReplicas": available, "readyReplicas": available},
        }))
        .unwrap()
    }

    fn template(image: &str) -> PodTemplateSpec {
        serde_json::from_value(json!({"metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": image}]}}))
        .unwrap()
    }

    #[test]
    fn the_hash_is_stable_safe_and_moved_by_collisions() {
        let a = template("nginx:1");
        let h = template_hash(&a, None);
        assert_eq!(h, template_hash(&a.clone(), None));
        assert!(!h.is_empty() && h.bytes().all(|b| SAFE_ALPHABET.contains(&b)), "{h}");
        assert_ne!(h, template_hash(&template("nginx:2"), None));
        assert_ne!(h, template_hash(&a, Some(1)));
        assert_ne!(template_hash(&a, Some(1)), template_hash(&a, Some(2)));
        // The same template with its keys in another order hashes the same.
        let reordered: PodTemplateSpec = serde_json::from_value(json!({
            "spec": {"containers": [{"image": "nginx:1", "name": "c"}]}, "metadata": {"labels": {"app": "web"}}}))
        .unwrap();
        assert_eq!(h, template_hash(&reordered, None));
        // Kubernetes' safe encoding of the decimal digits.
        assert_eq!(safe_encode("0123456789"), "456789bcdf");
    }

    #[test]
    fn templates_compare_without_the_hash_label() {
        let a = template("nginx:1");
        let mut b = a.clone();
        b.metadata.as_mut().unwrap().labels.as_mut().unwrap().insert(HASH_LABEL.into(), "abc".into());
        assert!(equal_ignore_hash(&a, &b));
        assert!(!equal_ignore_hash(&a, &template("nginx:2")));
    }

    #[test]
    fn rollback_moves_the_revision_and_keeps_history() {
        let d = deployment(json!({"metadata": {"name": "web", "annotations": {
            "kubernetes.io/change-cause": "v1", REVISION_ANNOTATION: "2",
            "kubectl.kubernetes.io/last-applied-configuration": "{}"}},
            "spec": {"replicas": 3, "selector": {}, "template": {}}}));
        let mut old = rs("web-a", 0, 0, 0, json!({REVISION_ANNOTATION: "1"}));
        assert!(set_new_rs_annotations(&d, &mut old, 3, true));
        let a = old.metadata.annotations.as_ref().unwrap();
        assert_eq!(a[REVISION_ANNOTATION], "3");
        assert_eq!(a[REVISION_HISTORY_ANNOTATION], "1");
        assert_eq!(a["kubernetes.io/change-cause"], "v1");
        assert!(!a.contains_key("kubectl.kubernetes.io/last-applied-configuration"));
        assert!(!a.contains_key(DESIRED_REPLICAS_ANNOTATION), "only new ReplicaSets get replicas annotations here");
        assert!(!set_new_rs_annotations(&d, &mut old, 3, true), "idempotent");
        assert!(set_new_rs_annotations(&d, &mut old, 5, true));
        assert_eq!(old.metadata.annotations.as_ref().unwrap()[REVISION_HISTORY_ANNOTATION], "1,3");

        let mut fresh = rs("web-b", 0, 0, 0, json!({}));
        set_new_rs_annotations(&d, &mut fresh, 1, false);
        let a = fresh.metadata.annotations.as_ref().unwrap();
        assert_eq!((a[REVISION_ANNOTATION].as_str(), a[DESIRED_REPLICAS_ANNOTATION].as_str()), ("1", "3"));
        // 25% of 3 rounds up to a surge of 1.
        assert_eq!(a[MAX_REPLICAS_ANNOTATION], "4");
        assert!(!a.contains_key(REVISION_HISTORY_ANNOTATION));
    }

    #[test]
    fn the_new_replica_set_is_the_oldest_with_the_template() {
        let d = deployment(json!({"metadata": {"name": "web"},
            "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": template("nginx:2")}}));
        let with = |mut r: ReplicaSet, image: &str| {
            r.spec.as_mut().unwrap().template = Some(template(image));
            r
        };
        let rss = vec![
            with(rs("c", 1, 1, 30, json!({})), "nginx:2"),
            with(rs("a", 1, 1, 10, json!({})), "nginx:1"),
            with(rs("b", 1, 1, 20, json!({})), "nginx:2"),
        ];
        assert_eq!(find_new(&d, &rss).and_then(|r| r.metadata.name.as_deref()), Some("b"));
        let (new, olds) = parts(&rss, Some("b"));
        assert_eq!(new.unwrap().metadata.name.as_deref(), Some("b"));
        assert_eq!(olds.len(), 2);
    }

    /// A RollingUpdate Deployment of `replicas` with these maxSurge / maxUnavailable.
    pub fn rolling(replicas: i32, surge: Value, unavailable: Value) -> Deployment {
        let strategy = json!({"type": "RollingUpdate",
            "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}});
        deployment(json!({"metadata": {"name": "web"}, "spec": {"replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}}, "template": {}, "strategy": strategy}}))
    }

    fn sizes(plan: &[ScaleTo]) -> Vec<(&str, i32)> {
        plan.iter().map(|s| (s.name.as_str(), s.replicas)).collect()
    }

    #[test]
    fn scaling_mid_rollout_is_proportional() {
        // 10 replicas, surge 3: old at 8 and new at 5 (13 = 10 + 3) when scaled to 15.
        let d = rolling(15, json!(3), json!(2));
        let annotations = json!({DESIRED_REPLICAS_ANNOTATION: "10", MAX_REPLICAS_ANNOTATION: "13"});
        let old = rs("old", 8, 8, 0, annotations.clone());
        let new = rs("new", 5, 0, 10, annotations);
        let plan = plan_scale(&d, Some(&new), std::slice::from_ref(&old));
        // 18 allowed: 8 * 18 / 13 = 11.08 -> 11, 5 * 18 / 13 = 6.9 -> 7.
        assert_eq!(sizes(&plan), vec![("old", 11), ("new", 7)]);
        assert!(plan.iter().all(|s| s.refresh));

        // Scaling down: 18 -> 5 + 3 = 8 allowed; leftovers go to the biggest, older first.
        let d = rolling(5, json!(3), json!(2));
        let annotations = json!({DESIRED_REPLICAS_ANNOTATION: "15", MAX_REPLICAS_ANNOTATION: "18"});
        let plan =
            plan_scale(&d, Some(&rs("new", 7, 0, 10, annotations.clone())), &[rs("old", 11, 11, 0, annotations)]);
        let total: i32 = plan.iter().map(|s| s.replicas).sum();
        assert_eq!(total, 8, "{plan:?}");
        assert_eq!(sizes(&plan), vec![("old", 5), ("new", 3)]);
    }

    #[test]
    fn scaling_a_single_active_replica_set_gives_it_everything() {
        let d = rolling(5, json!(1), json!(0));
        let plan = plan_scale(&d, Some(&rs("new", 3, 3, 10, json!({}))), &[rs("old", 0, 0, 0, json!({}))]);
        assert_eq!(sizes(&plan), vec![("new", 5)]);
        // Nothing active: the new one gets them.
        let plan = plan_scale(&d, Some(&rs("new", 0, 0, 10, json!({}))), &[rs("old", 0, 0, 0, json!({}))]);
        assert_eq!(sizes(&plan), vec![("new", 5)]);
        // Already right: nothing to write.
        assert!(plan_scale(&d, Some(&rs("new", 5, 5, 10, json!({}))), &[]).is_empty());
        // A saturated new ReplicaSet takes the old ones to zero.
        let sat = rs("new", 5, 5, 10, json!({DESIRED_REPLICAS_ANNOTATION: "5"}));
        assert_eq!(sizes(&plan_scale(&d, Some(&sat), &[rs("old", 2, 2, 0, json!({}))])), vec![("old", 0)]);
    }

    #[test]
    fn history_keeps_the_newest_revisions_that_are_settled() {
        let d = deployment(json!({"metadata": {"name": "web"}, "spec": {"revisionHistoryLimit": 1,
            "selector": {}, "template": {}}}));
        let settled = |name: &str, rev: &str, replicas: i32| {
            let mut r = rs(name, replicas, replicas, 0, json!({REVISION_ANNOTATION: rev}));
            r.status.as_mut().unwrap().observed_generation = Some(1);
            r.metadata.generation = Some(1);
            r
        };
        let olds = vec![settled("r3", "3", 0), settled("r1", "1", 0), settled("r2", "2", 0)];
        assert_eq!(plan_cleanup(&d, &olds), vec!["r1", "r2"]);
        // One still has replicas: it is kept (and does not make room for another).
        let olds = vec![settled("r3", "3", 0), settled("r1", "1", 2), settled("r2", "2", 0)];
        assert_eq!(plan_cleanup(&d, &olds), vec!["r2"]);
        let unlimited = deployment(json!({"spec": {"selector": {}, "template": {}}}));
        assert!(plan_cleanup(&unlimited, &olds).is_empty());
    }
}
