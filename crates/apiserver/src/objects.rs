//! The operations every resource supports (get, list, create, update, patch, delete, watch),
//! shared by the REST and gRPC front ends. Writes go decode -> default -> validate -> etcd CAS;
//! reads of collections and watches come from the watch cache.

use crate::error::storage_error;
use crate::meta::{self, meta_mut, meta_str, name_of};
use crate::strategy;
use bytes::Bytes;
use rkube_api::{
    ApiError, FieldError, FieldSelector, LabelSelector, ResourceInfo, conversion, registry, schema, validation,
};
use rkube_storage::{CachedObject, StorageError, Store, WatchCache};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

/// How unknown fields in a write are treated (`fieldValidation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FieldValidation {
    /// Reject the request with 400.
    Strict,
    /// Accept and answer with a warning per field.
    Warn,
    /// Drop silently.
    #[default]
    Ignore,
}

impl FieldValidation {
    /// Parses the query parameter; empty means the given default.
    pub fn parse(s: &str, default: FieldValidation) -> Result<Self, ApiError> {
        match s {
            "" => Ok(default),
            "Strict" => Ok(FieldValidation::Strict),
            "Warn" => Ok(FieldValidation::Warn),
            "Ignore" => Ok(FieldValidation::Ignore),
            other => Err(ApiError::BadRequest(format!(
                "fieldValidation parameter unsupported: {other:?}; valid values are Ignore, Warn and Strict"
            ))),
        }
    }
}

/// Options common to writes.
#[derive(Debug, Clone, Default)]
pub struct WriteOptions {
    /// `dryRun=All`: run every step but do not persist.
    pub dry_run: bool,
    /// `fieldManager`.
    pub field_manager: String,
    /// `fieldValidation`.
    pub field_validation: FieldValidation,
    /// `force` of a server-side apply: take over fields other managers own.
    pub force: bool,
    /// Set when managedFields were already computed by a server-side apply.
    pub(crate) applied: bool,
}

impl WriteOptions {
    /// managedFields bookkeeping of an ordinary write (operation Update); writes without a
    /// field manager (the server's own) are not tracked.
    fn track_fields(&self, res: &ResourceInfo, old: Option<&Value>, new: Value, part: Part) -> Result<Value, ApiError> {
        if self.applied || self.field_manager.is_empty() {
            return Ok(new);
        }
        let api_version = res.api_version();
        let manager = rkube_fieldmanager::Manager {
            name: &self.field_manager,
            operation: rkube_fieldmanager::Operation::Update,
            api_version: &api_version,
            subresource: part.subresource(),
        };
        let name = meta_str(&new, "name").unwrap_or_default().to_string();
        rkube_fieldmanager::update(old, new, &manager, jiff::Timestamp::now())
            .map_err(|e| crate::error::field_manager_error(res, &name, e))
    }
}

/// Options of a delete.
#[derive(Debug, Clone, Default)]
pub struct DeleteOptions {
    /// `gracePeriodSeconds`.
    pub grace_period_seconds: Option<i64>,
    /// `propagationPolicy`: Orphan, Background or Foreground.
    pub propagation_policy: Option<String>,
    /// Precondition on metadata.uid.
    pub precondition_uid: Option<String>,
    /// Precondition on metadata.resourceVersion.
    pub precondition_resource_version: Option<String>,
    /// `dryRun=All`.
    pub dry_run: bool,
}

/// Options of a list or watch.
#[derive(Debug, Clone, Default)]
pub struct ListOptions {
    /// `labelSelector`.
    pub label_selector: String,
    /// `fieldSelector`.
    pub field_selector: String,
    /// `resourceVersion`.
    pub resource_version: String,
    /// `resourceVersionMatch`.
    pub resource_version_match: String,
    /// `limit` (0 = no limit).
    pub limit: i64,
    /// `continue`.
    pub continue_token: String,
    /// `allowWatchBookmarks`.
    pub allow_watch_bookmarks: bool,
    /// `sendInitialEvents`.
    pub send_initial_events: Option<bool>,
    /// `timeoutSeconds`.
    pub timeout_seconds: Option<u64>,
}

/// The result of a write.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The object as stored (or as it would be, on dry run).
    pub object: Value,
    /// HTTP status: 200, 201 or 202.
    pub code: u16,
    /// Warnings for `Warning:` headers.
    pub warnings: Vec<String>,
}

/// Which part of an object a write addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The object itself.
    Main,
    /// The `status` subresource.
    Status,
    /// The `scale` subresource (autoscaling/v1 Scale in and out).
    Scale,
    /// Spec and status together, for server-side writes such as a pod binding.
    Whole,
}

impl Part {
    /// The subresource name managedFields records for writes to this part.
    fn subresource(self) -> &'static str {
        match self {
            Part::Status => "status",
            Part::Scale => "scale",
            Part::Main | Part::Whole => "",
        }
    }
}

/// Parsed label and field selectors of one request.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Label selector.
    pub labels: LabelSelector,
    /// Field selector.
    pub fields: FieldSelector,
}

impl ListOptions {
    /// Narrows a collection watch or list to one object, as a watch on an object's path does.
    pub fn narrow_to_name(&mut self, name: &str) {
        let by_name = format!("metadata.name={name}");
        self.field_selector =
            if self.field_selector.is_empty() { by_name } else { format!("{},{by_name}", self.field_selector) };
    }
}

impl Filter {
    /// Parses both selectors for a resource.
    pub fn parse(res: &ResourceInfo, opts: &ListOptions) -> Result<Self, ApiError> {
        let mut fields = FieldSelector::parse(&opts.field_selector, res)?;
        // The cache indexes fields as the storage version names them.
        for (field, _, _) in &mut fields.0 {
            *field = conversion::storage_field(res, field);
        }
        Ok(Filter { labels: LabelSelector::parse(&opts.label_selector)?, fields })
    }

    /// Whether a cached object passes both selectors.
    pub fn matches(&self, obj: &CachedObject) -> bool {
        self.labels.matches(&obj.labels) && self.fields.matches(&obj.fields)
    }

    /// Whether the filter selects everything.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty() && self.fields.is_empty()
    }
}

/// Shared state of the server: etcd and the watch cache.
#[derive(Clone)]
pub struct Registry {
    /// etcd.
    pub store: Store,
    /// The watch cache fed by one etcd watch.
    pub cache: Arc<WatchCache>,
    /// Wakes the namespace finalizer when a namespace starts terminating.
    pub(crate) namespace_deleted: tokio::sync::mpsc::UnboundedSender<String>,
    /// Namespaces this server has set terminating and not yet seen finish: creates into them
    /// are refused even while the watch cache still shows them active (Kubernetes'
    /// NamespaceLifecycle admission keeps such a set too).
    pub(crate) terminating: Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
    /// Service ClusterIP and NodePort allocation.
    pub services: Arc<crate::services::Allocator>,
    /// Whether new pods go through the ServiceAccount admission (token volume), which is on
    /// when this server can sign tokens.
    pub service_account_admission: bool,
}

fn is_service(res: &ResourceInfo) -> bool {
    res.group.is_empty() && res.kind == "Service"
}

const CONFLICT_DETAIL: &str =
    "the object has been modified; please apply your changes to the latest version and try again";

/// Builds the JSON of a list from already-encoded items without decoding them again.
pub fn list_body(res: &ResourceInfo, revision: i64, continue_token: Option<&str>, items: &[Bytes]) -> Bytes {
    let size: usize = items.iter().map(|b| b.len() + 1).sum::<usize>() + 256;
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(b"{\"kind\":\"");
    out.extend_from_slice(res.list_kind().as_bytes());
    out.extend_from_slice(b"\",\"apiVersion\":\"");
    out.extend_from_slice(res.api_version().as_bytes());
    out.extend_from_slice(b"\",\"metadata\":{\"resourceVersion\":\"");
    out.extend_from_slice(revision.to_string().as_bytes());
    out.push(b'"');
    if let Some(token) = continue_token {
        out.extend_from_slice(b",\"continue\":");
        out.extend_from_slice(serde_json::to_string(token).unwrap_or_default().as_bytes());
    }
    out.extend_from_slice(b"},\"items\":[");
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(item);
    }
    out.extend_from_slice(b"]}");
    Bytes::from(out)
}

/// A continue token: the revision of the first page and the last key returned.
fn encode_continue(revision: i64, last_key: &str) -> String {
    use base64::Engine;
    let raw = json!({"v": "rkube/v1", "rv": revision, "start": last_key}).to_string();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

fn decode_continue(token: &str, prefix: &str) -> Result<(i64, String), ApiError> {
    use base64::Engine;
    let bad = || ApiError::BadRequest(format!("continue key is not valid: {token:?}"));
    let raw =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token.trim_end_matches('=')).map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
    let rv = v["rv"].as_i64().filter(|r| *r > 0).ok_or_else(bad)?;
    let start = v["start"].as_str().ok_or_else(bad)?.to_string();
    // A token from another collection must not read keys outside this one.
    if !start.starts_with(prefix) {
        return Err(bad());
    }
    Ok((rv, start))
}

fn expired_continue() -> ApiError {
    ApiError::Expired(
        "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.".into(),
    )
}

impl Registry {
    /// Reads a key from etcd and decodes it in the version of `res`; 404 when absent.
    async fn load(
        &self,
        res: &ResourceInfo,
        key: &str,
        name: &str,
    ) -> Result<(rkube_storage::KeyValue, Value), ApiError> {
        let kv = self.store.get(key).await.map_err(|e| storage_error(res, name, e))?;
        let Some(kv) = kv else { return Err(ApiError::not_found(res, name)) };
        let obj = conversion::from_storage(res, &meta::decode_stored(&kv.value, kv.mod_revision)?);
        Ok((kv, obj))
    }

    /// The watch cache's copy of the object at `key`, shaped like a read from etcd; `None`
    /// when the cache has none (it may trail a create that just happened).
    fn cached(&self, res: &ResourceInfo, key: &str) -> Option<(rkube_storage::KeyValue, Value)> {
        let cached = self.cache.get(key)?;
        let stored = meta::decode_stored(&cached.bytes, cached.revision).ok()?;
        let kv = rkube_storage::KeyValue {
            key: key.to_string(),
            value: cached.bytes.clone(),
            mod_revision: cached.revision,
            create_revision: 0,
        };
        Some((kv, conversion::from_storage(res, &stored)))
    }

    /// Reads one object from etcd (a linearizable read).
    pub async fn get(
        &self,
        res: &'static ResourceInfo,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Value, ApiError> {
        Ok(self.load(res, &res.key(namespace, name), name).await?.1)
    }

    /// Reads one object as the requested part (the object, or its Scale).
    pub async fn get_part(
        &self,
        res: &'static ResourceInfo,
        namespace: Option<&str>,
        name: &str,
        part: Part,
    ) -> Result<Value, ApiError> {
        let obj = self.get(res, namespace, name).await?;
        Ok(if part == Part::Scale { to_scale(res, &obj) } else { obj })
    }

    /// Lists a collection, from the watch cache or, for continuations and exact old
    /// revisions, from etcd at the revision of the first page.
    pub async fn list(
        &self,
        res: &'static ResourceInfo,
        namespace: Option<&str>,
        opts: &ListOptions,
    ) -> Result<Bytes, ApiError> {
        let filter = Filter::parse(res, opts)?;
        let prefix = res.namespace_prefix(namespace);
        let limit = usize::try_from(opts.limit.max(0)).unwrap_or(0);
        if !opts.continue_token.is_empty() {
            let (revision, start) = decode_continue(&opts.continue_token, &prefix)?;
            return self.list_from_etcd(res, &prefix, &filter, revision, Some(start), limit).await;
        }
        let requested = meta::parse_resource_version(&opts.resource_version)?;
        match (opts.resource_version_match.as_str(), requested) {
            ("Exact", Some(rv)) if rv > 0 => return self.list_from_etcd(res, &prefix, &filter, rv, None, limit).await,
            ("Exact", _) => {
                return Err(ApiError::BadRequest(
                    "resourceVersionMatch=Exact requires a non-zero resourceVersion".into(),
                ));
            }
            ("NotOlderThan", None) => {
                return Err(ApiError::BadRequest(
                    "resourceVersionMatch=NotOlderThan requires a resourceVersion".into(),
                ));
            }
            ("" | "NotOlderThan", _) => {}
            (other, _) => return Err(ApiError::BadRequest(format!("unsupported resourceVersionMatch {other:?}"))),
        }
        match requested {
            // Unset: the list must reflect every write acknowledged before it started.
            None => {
                self.cache.consistent_revision().await.map_err(|e| storage_error(res, "", e))?;
            }
            Some(0) => {}
            Some(rv) => self.wait_for(res, rv).await?,
        }
        // A value no configured key can read fails the list, as in Kubernetes, rather than
        // vanishing from it (the watch cache keeps such keys aside).
        if let Some((key, reason)) = self.cache.unreadable(&prefix).into_iter().next() {
            return Err(ApiError::Internal(format!("unable to transform key {key:?}: {reason}")));
        }
        let page = self.cache.list(&prefix, None, limit, &|o| filter.matches(o));
        let token = if page.more { page.last_key.as_deref().map(|k| encode_continue(page.revision, k)) } else { None };
        let items: Vec<Bytes> = page.items.iter().map(|o| served_bytes(res, &o.bytes)).collect();
        Ok(list_body(res, page.revision, token.as_deref(), &items))
    }

    /// Waits until the cache has seen `rv`, as `resourceVersion=N` (NotOlderThan) requires.
    async fn wait_for(&self, res: &ResourceInfo, rv: i64) -> Result<(), ApiError> {
        if self.cache.revision() >= rv {
            return Ok(());
        }
        self.cache.wait_for_revision(rv, Duration::from_secs(3)).await.map_err(|_| {
            ApiError::Timeout(format!(
                "Too large resource version: {rv}, current: {} (for {})",
                self.cache.revision(),
                res.plural
            ))
        })
    }

    async fn list_from_etcd(
        &self,
        res: &'static ResourceInfo,
        prefix: &str,
        filter: &Filter,
        revision: i64,
        start_after: Option<String>,
        limit: usize,
    ) -> Result<Bytes, ApiError> {
        let mut items = Vec::new();
        let mut cursor = start_after;
        loop {
            let want = if limit == 0 { 0 } else { (limit - items.len()).max(1) as i64 };
            let page = self.store.list(prefix, cursor.as_deref(), want, revision).await.map_err(|e| match e {
                StorageError::Expired { .. } => expired_continue(),
                e => storage_error(res, "", e),
            })?;
            let mut last = None;
            for kv in &page.items {
                last = Some(kv.key.clone());
                let obj = meta::decode_stored(&kv.value, kv.mod_revision)?;
                let cached = CachedObject {
                    key: kv.key.clone(),
                    bytes: Bytes::new(),
                    revision: kv.mod_revision,
                    labels: rkube_api::selector::labels_of(&obj),
                    fields: rkube_api::selector::field_values(conversion::storage_resource(res), &obj),
                };
                if filter.matches(&cached) {
                    items.push(Bytes::from(
                        serde_json::to_vec(&conversion::from_storage(res, &obj)).unwrap_or_default(),
                    ));
                    if limit > 0 && items.len() == limit {
                        break;
                    }
                }
            }
            let full = limit > 0 && items.len() == limit;
            let token =
                match (&last, page.more || (full && last.as_deref() != page.items.last().map(|kv| kv.key.as_str()))) {
                    (Some(k), true) => Some(encode_continue(revision, k)),
                    _ => None,
                };
            if full || !page.more || last.is_none() {
                return Ok(list_body(res, revision, token.as_deref(), &items));
            }
            cursor = last;
        }
    }

    /// Checks that a namespaced object's namespace exists and is not terminating.
    async fn check_namespace(&self, namespace: &str, res: &ResourceInfo) -> Result<(), ApiError> {
        let ns_res = registry::lookup("", "v1", "namespaces").expect("namespaces are served");
        let key = ns_res.key(None, namespace);
        let stored = match self.cache.get(&key) {
            Some(o) => Some(serde_json::from_slice::<Value>(&o.bytes).unwrap_or_default()),
            // The cache may trail a namespace created a moment ago (one `kubectl apply -f` with
            // the namespace first), so ask etcd before refusing.
            None => self
                .store
                .get(&key)
                .await
                .map_err(|e| storage_error(ns_res, namespace, e))?
                .and_then(|kv| serde_json::from_slice::<Value>(&kv.value).ok()),
        };
        let Some(ns) = stored else { return Err(ApiError::not_found(ns_res, namespace)) };
        let recently_deleted = self.terminating.lock().unwrap_or_else(|e| e.into_inner()).contains(namespace);
        if recently_deleted || ns.pointer("/metadata/deletionTimestamp").is_some() {
            return Err(ApiError::Forbidden {
                message: format!(
                    "{} is forbidden: unable to create new content in namespace {namespace} because it is being terminated",
                    res.plural
                ),
                target: None,
            });
        }
        Ok(())
    }

    /// Creates an object (POST to a collection).
    pub async fn create(
        &self,
        res: &'static ResourceInfo,
        namespace: Option<&str>,
        body: Value,
        opts: &WriteOptions,
    ) -> Result<Outcome, ApiError> {
        if rkube_api::custom::version_of(res).is_some_and(|v| v.terminating) {
            return Err(ApiError::MethodNotAllowed(
                "create not allowed while custom resource definition is terminating".into(),
            ));
        }
        let (mut obj, warnings) = decode_body(res, body, opts.field_validation)?;
        check_namespace_field(res, &mut obj, namespace)?;
        let generate = meta_str(&obj, "generateName").map(String::from);
        if meta_str(&obj, "name").is_none() && generate.is_none() {
            return Err(ApiError::invalid(
                res,
                "",
                vec![FieldError::required("metadata.name", "name or generateName is required")],
            ));
        }
        {
            let m = meta_mut(&mut obj);
            m.insert("uid".into(), Value::String(meta::new_uid()));
            m.insert("creationTimestamp".into(), Value::String(meta::now()));
            for field in ["resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds", "selfLink"] {
                m.remove(field);
            }
        }
        strategy::prepare_for_create(res, &mut obj);
        schema::apply_defaults(res, &mut obj);
        let ns = if res.namespaced { meta_str(&obj, "namespace").map(String::from) } else { None };
        if let Some(ns) = &ns {
            self.check_namespace(ns, res).await?;
        }
        if self.service_account_admission && res.group.is_empty() && res.kind == "Pod" {
            crate::tokenrequest::admit_pod(self, &mut obj).await?;
        }
        for attempt in 0..4 {
            if let Some(prefix) = &generate
                && (attempt > 0 || meta_str(&obj, "name").is_none())
            {
                meta_mut(&mut obj).insert("name".into(), Value::String(meta::generate_name(prefix)));
            }
            let name = name_of(&obj).to_string();
            strategy::prepare_named(res, &mut obj);
            let errors = validation::validate_create(res, &obj);
            if !errors.is_empty() {
                return Err(ApiError::invalid(res, &name, errors));
            }
            if attempt == 0 {
                obj = opts.track_fields(res, None, obj, Part::Main)?;
            }
            if opts.dry_run {
                if is_service(res) {
                    self.services.check(res, &obj)?;
                }
                return Ok(Outcome { object: obj, code: 201, warnings });
            }
            let allocated =
                if is_service(res) { Some(self.services.allocate(res, &mut obj, None).await?) } else { None };
            let key = res.key(ns.as_deref(), &name);
            let result = self.store.create(&key, encode(res, &obj)).await;
            if let (Err(_), Some(allocated)) = (&result, allocated) {
                self.services.release_allocated(allocated).await;
            }
            match result {
                Ok(rev) => {
                    meta::set_resource_version(&mut obj, rev);
                    return Ok(Outcome { object: obj, code: 201, warnings });
                }
                // A generated name that collides is retried with a fresh suffix.
                Err(StorageError::AlreadyExists { .. }) if generate.is_some() && attempt < 3 => continue,
                Err(e) => return Err(storage_error(res, &name, e)),
            }
        }
        unreachable!("the loop returns on its last attempt")
    }

    /// Replaces an object (PUT), or its status or scale.
    pub async fn update(
        &self,
        res: &'static ResourceInfo,
        namespace: Option<&str>,
        name: &str,
        body: Value,
        part: Part,
        opts: &WriteOptions,
    ) -> Result<Outcome, ApiError> {
        if part == Part::Scale {
            return self.update_scale(res, namespace, name, body, opts).await;
        }
        let (mut obj, warnings) = decode_body(res, body, opts.field_validation)?;
        check_namespace_field(res, &mut obj, namespace)?;
        check_url_name(&mut obj, name, true)?;
        let mut outcome = self.write(res, namespace, name, part, opts, move |_| Ok(obj.clone())).await?;
        outcome.warnings.extend(warnings);
        Ok(outcome)
    }

    /// The guaranteed-update loop: read, compute the new object, validate, CAS; retried on a
    /// conflict unless the new object carries the resourceVersion it was based on.
    pub(crate) async fn write(
        &self,
        res: &'static ResourceInfo,
        namespace: Option<&str>,
        name: &str,
        part: Part,
        opts: &WriteOptions,
        compute: impl Fn(&Value) -> Result<Value, ApiError>,
    ) -> Result<Outcome, ApiError> {
        let key = res.key(namespace, name);
        // The watch cache's copy is the first guess, as Kubernetes' cacher does it: the
        // compare-and-swap on its revision catches a stale copy, and only then (or when the
        // guess makes the update fail) is the object read from etcd. This saves an etcd read
        // on nearly every update.
        let mut guess = self.cached(res, &key);
        loop {
            let guessed = guess.is_some();
            let (kv, old) = match guess.take() {
                Some(cached) => cached,
                None => self.load(res, &key, name).await?,
            };
            // Anything but a successful write decided on the cached guess is decided again on
            // a fresh read: errors, conflicts, no-ops and dry runs alike.
            let prepared = self.prepare_update(res, name, part, opts, &compute, &kv, &old);
            let (new, precondition) = match prepared {
                Ok(Prepared::Write { new, precondition }) if !opts.dry_run => (new, precondition),
                _ if guessed => continue,
                Ok(Prepared::Write { new, .. }) => return Ok(Outcome { object: new, code: 200, warnings: vec![] }),
                Ok(Prepared::Unchanged) => return Ok(Outcome { object: old, code: 200, warnings: vec![] }),
                Err(e) => return Err(e),
            };
            let mut new = new;
            let finalizing = new.pointer("/metadata/deletionTimestamp").is_some() && meta::finalizers(&new).is_empty();
            let removing = finalizing && !namespace_holds_deletion(res, &new);
            let allocated = if is_service(res) && !removing {
                Some(self.services.allocate(res, &mut new, Some(&old)).await?)
            } else {
                None
            };
            let result = if removing {
                self.store.delete(&key, kv.mod_revision).await
            } else {
                self.store.update(&key, encode(res, &new), kv.mod_revision).await
            };
            match (&result, allocated) {
                (Err(_), Some(allocated)) => self.services.release_allocated(allocated).await,
                (Ok(_), _) if is_service(res) => self.services.release(&old, (!removing).then_some(&new)).await,
                _ => {}
            }
            match result {
                Ok(rev) => {
                    meta::set_resource_version(&mut new, rev);
                    return Ok(Outcome { object: new, code: 200, warnings: vec![] });
                }
                Err(StorageError::Conflict { .. }) if precondition.is_none() || guessed => continue,
                Err(StorageError::Conflict { .. }) => {
                    return Err(ApiError::Conflict {
                        resource: res.qualified(),
                        name: name.into(),
                        detail: CONFLICT_DETAIL.into(),
                    });
                }
                Err(e) => return Err(storage_error(res, name, e)),
            }
        }
    }

    /// One update attempt's new object, computed from `old` (read at `kv`'s revision),
    /// normalized, defaulted, validated and with managedFields tracked.
    #[allow(clippy::too_many_arguments)]
    fn prepare_update(
        &self,
        res: &'static ResourceInfo,
        name: &str,
        part: Part,
        opts: &WriteOptions,
        compute: &impl Fn(&Value) -> Result<Value, ApiError>,
        kv: &rkube_storage::KeyValue,
        old: &Value,
    ) -> Result<Prepared, ApiError> {
        let mut new = compute(old)?;
        // A patch or update may not turn the object into another type.
        if new["kind"].as_str() != Some(res.kind) || new["apiVersion"].as_str() != Some(res.api_version().as_str()) {
            return Err(ApiError::BadRequest(format!(
                "the API version ({}) and kind ({}) of the object may not change from {} {}",
                new["apiVersion"],
                new["kind"],
                res.api_version(),
                res.kind
            )));
        }
        let precondition = meta::parse_resource_version(meta_str(&new, "resourceVersion").unwrap_or(""))?;
        if let Some(rv) = precondition
            && rv != kv.mod_revision
        {
            return Err(ApiError::Conflict {
                resource: res.qualified(),
                name: name.into(),
                detail: CONFLICT_DETAIL.into(),
            });
        }
        strategy::prepare_for_update(res, &mut new, old, part);
        // Normalize again: patches may introduce unknown fields or wrong types.
        new = schema::normalize(res, &new)?.object;
        schema::apply_defaults(res, &mut new);
        // Server-side writes (a binding) set fields users may not change, so they skip
        // update validation.
        let errors = if part == Part::Whole { Vec::new() } else { validation::validate_update(res, &new, old) };
        if !errors.is_empty() {
            return Err(ApiError::invalid(res, name, errors));
        }
        new = opts.track_fields(res, Some(old), new, part)?;
        meta::set_resource_version(&mut new, kv.mod_revision);
        if meta::without_volatile(&new) == meta::without_volatile(old) {
            // Kubernetes does not write no-op updates: the resourceVersion stays.
            return Ok(Prepared::Unchanged);
        }
        Ok(Prepared::Write { new, precondition })
    }

    async fn update_scale(
        &self,
        res: &'static ResourceInfo,
        namespace: Option<&str>,
        name: &str,
        body: Value,
        opts: &WriteOptions,
    ) -> Result<Outcome, ApiError> {
        if body["kind"].as_str().is_some_and(|k| k != "Scale") {
            return Err(ApiError::BadRequest(format!("expected kind Scale, got {}", body["kind"])));
        }
        let replicas = body.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(0);
        if replicas < 0 {
            let scale_res = ResourceInfo { kind: "Scale", group: "autoscaling", ..*res };
            return Err(ApiError::invalid(
                &scale_res,
                name,
                vec![FieldError::invalid("spec.replicas", &json!(replicas), "must be greater than or equal to 0")],
            ));
        }
        let rv = body.pointer("/metadata/resourceVersion").cloned();
        let outcome = self
            .write(res, namespace, name, Part::Scale, opts, move |old| {
                let mut new = old.clone();
                set_spec_replicas(res, &mut new, json!(replicas));
                let m = meta_mut(&mut new);
                match &rv {
                    Some(rv) => m.insert("resourceVersion".into(), rv.clone()),
                    None => m.remove("resourceVersion"),
                };
                Ok(new)
            })
            .await?;
        Ok(Outcome { object: to_scale(res, &outcome.object), ..outcome })
    }

    /// Applies a patch to an object (or its status or scale) and writes the result.
    #[allow(clippy::too_many_arguments)]
    pub async fn patch(
        &self,
        res: &'static ResourceInfo,
        namespace: Option<&str>,
        name: &str,
        patch_type: &str,
        patch: &[u8],
        part: Part,
        opts: &WriteOptions,
    ) -> Result<Outcome, ApiError> {
        let kind = crate::patch::PatchKind::from_content_type(patch_type)?;
        if res.custom && kind == crate::patch::PatchKind::Strategic {
            // Custom resources have no patch strategies, so Kubernetes refuses this type for them.
            return Err(ApiError::UnsupportedMediaType(
                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml".into(),
            ));
        }
        if kind == crate::patch::PatchKind::Apply {
            return self.apply(res, namespace, name, patch, part, opts).await;
        }
        let patch_value: Value = crate::codec::decode_patch(patch)?;
        let outcome = self
            .write(res, namespace, name, part, opts, |old| {
                let base = if part == Part::Scale { to_scale(res, old) } else { old.clone() };
                let mut patched = crate::patch::apply(kind, &base, &patch_value)?;
                if part == Part::Scale {
                    let replicas = patched.pointer("/spec/replicas").cloned().unwrap_or(json!(0));
                    let mut new = old.clone();
                    set_spec_replicas(res, &mut new, replicas);
                    patched = new;
                }
                // A patch is based on the object it was applied to, unless it names a version.
                if patch_value.pointer("/metadata/resourceVersion").is_none() {
                    meta_mut(&mut patched).remove("resourceVersion");
                }
                if part == Part::Main {
                    strict_unknown_fields(res, &patched, opts.field_validation)?;
                }
                Ok(patched)
            })
            .await?;
        Ok(if part == Part::Scale { Outcome { object: to_scale(res, &outcome.object), ..outcome } } else { outcome })
    }

    /// Server-side apply (`application/apply-patch+yaml`): merges the applied configuration
    /// into the object, owning its fields for the field manager; creates the object if absent.
    async fn apply(
        &self,
        res: &'static ResourceInfo,
        namespace: Option<&str>,
        name: &str,
        body: &[u8],
        part: Part,
        opts: &WriteOptions,
    ) -> Result<Outcome, ApiError> {
        if part == Part::Scale {
            return Err(ApiError::UnsupportedMediaType(
                "server-side apply to the scale subresource is not supported".into(),
            ));
        }
        let mut config = crate::codec::decode_patch(body)?;
        if config["kind"].as_str() != Some(res.kind)
            || config["apiVersion"].as_str() != Some(res.api_version().as_str())
        {
            return Err(ApiError::BadRequest(format!(
                "the applied configuration must have apiVersion {} and kind {} (got {} {})",
                res.api_version(),
                res.kind,
                config["apiVersion"],
                config["kind"]
            )));
        }
        check_url_name(&mut config, name, false)?;
        let (config, warnings) = decode_body(res, config, opts.field_validation)?;
        let api_version = res.api_version();
        let manager = rkube_fieldmanager::Manager {
            name: &opts.field_manager,
            operation: rkube_fieldmanager::Operation::Apply,
            api_version: &api_version,
            subresource: part.subresource(),
        };
        let applied_opts = WriteOptions { applied: true, ..opts.clone() };
        let names_version = config.pointer("/metadata/resourceVersion").is_some();
        let merged = self
            .write(res, namespace, name, part, &applied_opts, |old| {
                let mut new =
                    rkube_fieldmanager::apply(Some(old), &config, &manager, opts.force, jiff::Timestamp::now())
                        .map_err(|e| crate::error::field_manager_error(res, name, e))?
                        .object;
                if !names_version {
                    meta_mut(&mut new).remove("resourceVersion");
                }
                Ok(new)
            })
            .await;
        let mut outcome = match merged {
            Err(ApiError::NotFound { .. }) if part == Part::Main => {
                let created = rkube_fieldmanager::apply(None, &config, &manager, opts.force, jiff::Timestamp::now())
                    .map_err(|e| crate::error::field_manager_error(res, name, e))?
                    .object;
                self.create(res, namespace, created, &applied_opts).await?
            }
            other => other?,
        };
        outcome.warnings.extend(warnings);
        Ok(outcome)
    }

    /// Deletes an object, gracefully or behind finalizers where that applies.
    pub async fn delete(
        &self,
        res: &'static ResourceInfo,
        namespace: Option<&str>,
        name: &str,
        opts: &DeleteOptions,
    ) -> Result<Outcome, ApiError> {
        let key = res.key(namespace, name);
        loop {
            let (kv, old) = self.load(res, &key, name).await?;
            check_preconditions(res, name, &old, opts)?;
            let mut finalizers = meta::finalizers(&old);
            match opts.propagation_policy.as_deref().or(strategy::default_propagation(res)) {
                Some("Orphan") if !finalizers.iter().any(|f| f == "orphan") => finalizers.push("orphan".into()),
                Some("Foreground") if !finalizers.iter().any(|f| f == "foregroundDeletion") => {
                    finalizers.push("foregroundDeletion".into())
                }
                None | Some("Orphan" | "Foreground" | "Background") => {}
                Some(other) => {
                    return Err(ApiError::BadRequest(format!(
                        "propagationPolicy {other:?} is not one of Orphan, Background, Foreground"
                    )));
                }
            }
            let grace = self.grace_period(res, &old, opts);
            let is_namespace = res.kind == "Namespace" && res.group.is_empty();
            let hold = !finalizers.is_empty() || grace > 0 || is_namespace;
            if !hold {
                if opts.dry_run {
                    return Ok(Outcome { object: old, code: 200, warnings: vec![] });
                }
                match self.store.delete(&key, kv.mod_revision).await {
                    Ok(_) => {
                        if is_service(res) {
                            self.services.release(&old, None).await;
                        }
                        return Ok(Outcome { object: old, code: 200, warnings: vec![] });
                    }
                    Err(StorageError::Conflict { .. }) => continue,
                    Err(StorageError::NotFound { .. }) => return Err(ApiError::not_found(res, name)),
                    Err(e) => return Err(storage_error(res, name, e)),
                }
            }
            let mut new = old.clone();
            let already = old.pointer("/metadata/deletionTimestamp").is_some();
            {
                let m = meta_mut(&mut new);
                let shorter = m.get("deletionGracePeriodSeconds").and_then(Value::as_i64).is_none_or(|g| grace < g);
                if !already || (grace > 0 && shorter) {
                    m.insert("deletionTimestamp".into(), Value::String(meta::now_plus(grace)));
                    m.insert("deletionGracePeriodSeconds".into(), json!(grace));
                }
                m.insert("finalizers".into(), json!(finalizers));
            }
            if is_namespace {
                new["status"]["phase"] = json!("Terminating");
            }
            if opts.dry_run {
                return Ok(Outcome { object: new, code: 202, warnings: vec![] });
            }
            if meta::without_volatile(&new) == meta::without_volatile(&old) {
                return Ok(Outcome { object: old, code: 202, warnings: vec![] });
            }
            match self.store.update(&key, encode(res, &new), kv.mod_revision).await {
                Ok(rev) => {
                    meta::set_resource_version(&mut new, rev);
                    if is_namespace {
                        self.terminating.lock().unwrap_or_else(|e| e.into_inner()).insert(name.to_string());
                        let _ = self.namespace_deleted.send(name.to_string());
                    }
                    return Ok(Outcome { object: new, code: 202, warnings: vec![] });
                }
                Err(StorageError::Conflict { .. }) => continue,
                Err(e) => return Err(storage_error(res, name, e)),
            }
        }
    }

    /// Seconds a deletion waits: only Pods bound to a node get a grace period (their kubelet
    /// ends it); everything else goes at once.
    fn grace_period(&self, res: &ResourceInfo, obj: &Value, opts: &DeleteOptions) -> i64 {
        if !(res.group.is_empty() && res.kind == "Pod") {
            return 0;
        }
        let bound = obj.pointer("/spec/nodeName").and_then(Value::as_str).is_some_and(|n| !n.is_empty());
        let finished = matches!(obj.pointer("/status/phase").and_then(Value::as_str), Some("Succeeded" | "Failed"));
        if !bound || finished {
            return 0;
        }
        opts.grace_period_seconds
            .or_else(|| obj.pointer("/spec/terminationGracePeriodSeconds").and_then(Value::as_i64))
            .unwrap_or(30)
            .max(0)
    }

    /// Deletes every object of a collection that matches the selectors; answers the list of
    /// what was deleted.
    pub async fn delete_collection(
        &self,
        res: &'static ResourceInfo,
        namespace: Option<&str>,
        list_opts: &ListOptions,
        opts: &DeleteOptions,
    ) -> Result<Bytes, ApiError> {
        let filter = Filter::parse(res, list_opts)?;
        let revision = self.cache.consistent_revision().await.map_err(|e| storage_error(res, "", e))?;
        let page = self.cache.list(&res.namespace_prefix(namespace), None, 0, &|o| filter.matches(o));
        let mut deleted = Vec::new();
        for item in page.items {
            let obj: Value = serde_json::from_slice(&item.bytes).unwrap_or_default();
            let ns = meta_str(&obj, "namespace").map(String::from);
            match self.delete(res, ns.as_deref(), name_of(&obj), opts).await {
                Ok(o) => deleted.push(Bytes::from(serde_json::to_vec(&o.object).unwrap_or_default())),
                Err(ApiError::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(list_body(res, revision, None, &deleted))
    }

    /// `pods/{name}/binding`: assigns a Pod to a node, once.
    pub async fn bind(&self, namespace: &str, name: &str, body: Value, opts: &WriteOptions) -> Result<Value, ApiError> {
        let pods = registry::lookup("", "v1", "pods").expect("pods are served");
        if body["kind"].as_str().is_some_and(|k| k != "Binding") {
            return Err(ApiError::BadRequest(format!("expected kind Binding, got {}", body["kind"])));
        }
        let node = body.pointer("/target/name").and_then(Value::as_str).unwrap_or("").to_string();
        if node.is_empty() {
            let binding = ResourceInfo { kind: "Binding", ..*pods };
            return Err(ApiError::invalid(&binding, name, vec![FieldError::required("target.name", "")]));
        }
        let uid = body.pointer("/metadata/uid").and_then(Value::as_str).map(String::from);
        self.write(pods, Some(namespace), name, Part::Whole, opts, |old| {
            if let Some(uid) = &uid
                && meta_str(old, "uid") != Some(uid)
            {
                return Err(ApiError::Conflict {
                    resource: "pods".into(),
                    name: name.into(),
                    detail: format!("Precondition failed: UID in precondition: {uid}, UID in object meta: {}", meta_str(old, "uid").unwrap_or("")),
                });
            }
            if old.pointer("/metadata/deletionTimestamp").is_some() {
                return Err(ApiError::Conflict { resource: "pods".into(), name: name.into(), detail: "pod is being deleted, cannot be assigned to a host".into() });
            }
            if let Some(current) = old.pointer("/spec/nodeName").and_then(Value::as_str).filter(|n| !n.is_empty()) {
                return Err(ApiError::Conflict {
                    resource: "pods".into(),
                    name: name.into(),
                    detail: format!("pod {name} is already assigned to node {current:?}"),
                });
            }
            let mut new = old.clone();
            new["spec"]["nodeName"] = json!(node);
            let mut conditions = old.pointer("/status/conditions").and_then(Value::as_array).cloned().unwrap_or_default();
            conditions.retain(|c| c["type"] != "PodScheduled");
            conditions.push(json!({"type": "PodScheduled", "status": "True", "lastTransitionTime": meta::now(), "lastProbeTime": null}));
            new["status"]["conditions"] = json!(conditions);
            Ok(new)
        })
        .await?;
        Ok(json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}))
    }
}

/// What an update attempt comes to before it is written.
enum Prepared {
    /// Write `new`; `precondition` is the resourceVersion the client required, if any.
    Write { new: Value, precondition: Option<i64> },
    /// The update changes nothing, so nothing is written.
    Unchanged,
}

/// Checks the object's name against the name in the URL; a missing name is filled in when
/// `fill` (PUT), and is an error otherwise (an applied configuration must name its object).
fn check_url_name(obj: &mut Value, name: &str, fill: bool) -> Result<(), ApiError> {
    match meta_str(obj, "name") {
        Some(n) if n == name => Ok(()),
        None if fill => {
            meta_mut(obj).insert("name".into(), Value::String(name.into()));
            Ok(())
        }
        other => Err(ApiError::BadRequest(format!(
            "the name of the object ({}) does not match the name on the URL ({name})",
            other.unwrap_or("")
        ))),
    }
}

/// The bytes etcd holds for an object of `res`: converted to the storage version.
fn encode(res: &ResourceInfo, obj: &Value) -> Vec<u8> {
    meta::encode_for_storage(&conversion::to_storage(res, obj))
}

/// Items of a list or watch in the version of `res` (cached bytes are in the storage version).
pub fn served_bytes(res: &ResourceInfo, stored: &Bytes) -> Bytes {
    if !conversion::converts(res) {
        return stored.clone();
    }
    match serde_json::from_slice::<Value>(stored) {
        Ok(v) => Bytes::from(serde_json::to_vec(&conversion::from_storage(res, &v)).unwrap_or_default()),
        Err(_) => stored.clone(),
    }
}

/// Whether a namespace with empty metadata.finalizers must still wait for its content to go
/// (spec.finalizers holds "kubernetes" until the namespace finalizer is done).
fn namespace_holds_deletion(res: &ResourceInfo, obj: &Value) -> bool {
    res.kind == "Namespace"
        && res.group.is_empty()
        && obj.pointer("/spec/finalizers").and_then(Value::as_array).is_some_and(|f| !f.is_empty())
}

fn check_preconditions(res: &ResourceInfo, name: &str, obj: &Value, opts: &DeleteOptions) -> Result<(), ApiError> {
    if let Some(uid) = &opts.precondition_uid
        && meta_str(obj, "uid") != Some(uid.as_str())
    {
        return Err(ApiError::Conflict {
            resource: res.qualified(),
            name: name.into(),
            detail: format!(
                "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                meta_str(obj, "uid").unwrap_or("")
            ),
        });
    }
    if let Some(rv) = &opts.precondition_resource_version
        && meta_str(obj, "resourceVersion") != Some(rv.as_str())
    {
        return Err(ApiError::Conflict {
            resource: res.qualified(),
            name: name.into(),
            detail: format!(
                "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                meta_str(obj, "resourceVersion").unwrap_or("")
            ),
        });
    }
    Ok(())
}

/// Checks apiVersion/kind against the path, decodes through the typed struct, and applies
/// fieldValidation; returns the canonical object and any warnings.
fn decode_body(res: &ResourceInfo, body: Value, validation: FieldValidation) -> Result<(Value, Vec<String>), ApiError> {
    if !body.is_object() {
        return Err(ApiError::BadRequest(format!(
            "the body of the request was not a JSON object: {}",
            truncate(&body.to_string())
        )));
    }
    // Like Kubernetes, a body without type information takes it from the endpoint (the Python
    // client sends models without apiVersion/kind).
    let mut body = body;
    for (field, value) in [("kind", res.kind.to_string()), ("apiVersion", res.api_version())] {
        if body.get(field).is_none_or(|v| v.as_str() == Some("")) {
            body[field] = Value::String(value);
        }
    }
    let kind = body["kind"].as_str().unwrap_or("");
    let api_version = body["apiVersion"].as_str().unwrap_or("");
    if kind != res.kind || api_version != res.api_version() {
        return Err(ApiError::BadRequest(format!(
            "the API version in the data ({api_version}) and kind ({kind}) do not match the expected API version ({}) and kind ({}) of {}",
            res.api_version(),
            res.kind,
            res.qualified()
        )));
    }
    let decoded = schema::normalize(res, &body)?;
    let warnings = unknown_field_outcome(&decoded.unknown_fields, validation)?;
    Ok((decoded.object, warnings))
}

fn unknown_field_outcome(unknown: &[String], validation: FieldValidation) -> Result<Vec<String>, ApiError> {
    if unknown.is_empty() {
        return Ok(vec![]);
    }
    let messages: Vec<String> = unknown.iter().map(|f| format!("unknown field {f:?}")).collect();
    match validation {
        FieldValidation::Strict => Err(ApiError::BadRequest(format!("strict decoding error: {}", messages.join(", ")))),
        FieldValidation::Warn => Ok(messages),
        FieldValidation::Ignore => Ok(vec![]),
    }
}

fn strict_unknown_fields(res: &ResourceInfo, obj: &Value, validation: FieldValidation) -> Result<(), ApiError> {
    if validation == FieldValidation::Strict {
        let decoded = schema::normalize(res, obj)?;
        unknown_field_outcome(&decoded.unknown_fields, validation)?;
    }
    Ok(())
}

fn truncate(s: &str) -> String {
    if s.len() <= 200 { s.to_string() } else { format!("{}...", &s[..s.floor_char_boundary(200)]) }
}

/// Fills metadata.namespace from the path, and refuses a body naming another namespace.
fn check_namespace_field(res: &ResourceInfo, obj: &mut Value, namespace: Option<&str>) -> Result<(), ApiError> {
    if !res.namespaced {
        meta_mut(obj).remove("namespace");
        return Ok(());
    }
    let Some(ns) = namespace else {
        return Err(ApiError::BadRequest(format!("{} is namespaced: a namespace is required in the path", res.plural)));
    };
    match meta_str(obj, "namespace") {
        Some(body_ns) if body_ns != ns => Err(ApiError::BadRequest(
            "the namespace of the provided object does not match the namespace sent on the request".into(),
        )),
        _ => {
            meta_mut(obj).insert("namespace".into(), Value::String(ns.into()));
            Ok(())
        }
    }
}

/// Where a scalable resource keeps its desired and observed replica counts: `spec.replicas`
/// and `status.replicas` for built-in kinds, the CRD's paths for a custom resource.
fn replica_fields(res: &ResourceInfo) -> (Vec<String>, Vec<String>) {
    let fields = |p: &str| rkube_api::custom::ScalePaths::fields(p).into_iter().map(String::from).collect::<Vec<_>>();
    match rkube_api::custom::version_of(res).and_then(|v| v.scale.clone()) {
        Some(paths) => (fields(&paths.spec_replicas), fields(&paths.status_replicas)),
        None => (fields(".spec.replicas"), fields(".status.replicas")),
    }
}

fn value_at<'a>(obj: &'a Value, fields: &[String]) -> Option<&'a Value> {
    fields.iter().try_fold(obj, |v, f| v.get(f))
}

/// Sets the desired replica count of a scalable object, creating the parents it lacks.
fn set_spec_replicas(res: &ResourceInfo, obj: &mut Value, replicas: Value) {
    let (spec, _) = replica_fields(res);
    let Some((last, parents)) = spec.split_last() else { return };
    let mut at = obj;
    for f in parents {
        if !at.get(f).is_some_and(Value::is_object) {
            at[f.as_str()] = json!({});
        }
        at = &mut at[f.as_str()];
    }
    at[last.as_str()] = replicas;
}

/// The autoscaling/v1 Scale view of a scalable object.
pub fn to_scale(res: &ResourceInfo, obj: &Value) -> Value {
    let custom_selector = rkube_api::custom::version_of(res).and_then(|v| v.scale.clone()).map(|s| s.label_selector);
    let selector = match custom_selector {
        // A custom resource keeps its selector already serialized.
        Some(path) => path
            .and_then(|p| {
                let fields: Vec<String> =
                    rkube_api::custom::ScalePaths::fields(&p).into_iter().map(String::from).collect();
                value_at(obj, &fields).and_then(Value::as_str).map(String::from)
            })
            .unwrap_or_default(),
        None => match obj.pointer("/spec/selector") {
            // ReplicationControllers select with a plain map.
            Some(Value::Object(m)) if res.kind == "ReplicationController" => {
                m.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or(""))).collect::<Vec<_>>().join(",")
            }
            Some(sel) => selector_string(sel),
            None => String::new(),
        },
    };
    let (spec, status) = replica_fields(res);
    let meta = obj.get("metadata").cloned().unwrap_or_default();
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": meta["name"],
            "namespace": meta["namespace"],
            "uid": meta["uid"],
            "resourceVersion": meta["resourceVersion"],
            "creationTimestamp": meta["creationTimestamp"],
        },
        "spec": {"replicas": value_at(obj, &spec).cloned().unwrap_or(json!(0))},
        "status": {
            "replicas": value_at(obj, &status).cloned().unwrap_or(json!(0)),
            "selector": selector,
        },
    })
}

/// Renders a metav1.LabelSelector in the query-string syntax.
fn selector_string(sel: &Value) -> String {
    let mut parts: Vec<String> = Vec::new();
    if let Some(m) = sel.get("matchLabels").and_then(Value::as_object) {
        parts.extend(m.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or(""))));
    }
    for e in sel.get("matchExpressions").and_then(Value::as_array).into_iter().flatten() {
        let key = e["key"].as_str().unwrap_or("");
        let values: Vec<&str> = e["values"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        parts.push(match e["operator"].as_str().unwrap_or("") {
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" => key.to_string(),
            _ => format!("!{key}"),
        });
    }
    parts.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_body_is_valid_json_with_continue() {
        let res = registry::lookup("", "v1", "configmaps").unwrap();
        let items = vec![Bytes::from_static(b"{\"a\":1}"), Bytes::from_static(b"{\"b\":2}")];
        let body = list_body(res, 42, Some("tok"), &items);
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["kind"], "ConfigMapList");
        assert_eq!(v["metadata"]["resourceVersion"], "42");
        assert_eq!(v["metadata"]["continue"], "tok");
        assert_eq!(v["items"][1]["b"], 2);
    }

    #[test]
    fn continue_tokens_round_trip_and_stay_in_their_collection() {
        let token = encode_continue(7, "/registry/core/pods/default/b");
        assert_eq!(
            decode_continue(&token, "/registry/core/pods/").unwrap(),
            (7, "/registry/core/pods/default/b".into())
        );
        assert!(decode_continue(&token, "/registry/core/secrets/").is_err());
        assert!(decode_continue("garbage!", "/registry/").is_err());
    }

    #[test]
    fn scale_view_of_a_deployment() {
        let res = registry::lookup("apps", "v1", "deployments").unwrap();
        let d = json!({"metadata": {"name": "w", "namespace": "n", "resourceVersion": "3"},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "w"}}}, "status": {"replicas": 1}});
        let s = to_scale(res, &d);
        assert_eq!(s["spec"]["replicas"], 2);
        assert_eq!(s["status"]["selector"], "app=w");
        assert_eq!(s["metadata"]["resourceVersion"], "3");
    }

    #[test]
    fn wrong_kind_for_path_is_bad_request() {
        let res = registry::lookup("", "v1", "configmaps").unwrap();
        let err = decode_body(
            res,
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "a"}}),
            FieldValidation::Strict,
        )
        .unwrap_err();
        assert_eq!(err.code(), 400);
        assert_eq!(decode_body(res, json!([1]), FieldValidation::Strict).unwrap_err().code(), 400);
    }
}
