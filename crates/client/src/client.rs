//! Typed requests to the resource service: [`Client`] holds one HTTP/2 channel (reconnected on
//! demand), [`Api`] addresses one resource type in one namespace or in all of them.

use crate::dynamic::{ApiResource, DynamicObject};
use crate::error::from_grpc;
use crate::rest::Rest;
use crate::{Backoff, ClientError, Kubeconfig, Result};
use futures::{Stream, StreamExt};
use k8s_openapi::api::autoscaling::v1::Scale;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::{Metadata, Resource};
use rkube_rpc::v1::{self as pb, resource_service_client::ResourceServiceClient};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::{Interceptor, interceptor::InterceptedService};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

const JSON: &str = "application/json";

/// Largest response a client accepts: a full list of a big cluster's pods is tens of MiB,
/// far above tonic's 4 MiB default.
const MAX_RESPONSE_BYTES: usize = 1 << 30;

/// How often reads are tried before a transport failure is returned.
const READ_ATTEMPTS: u32 = 4;

/// The gRPC stub every call goes through: the channel plus the bearer token, if any.
type Grpc = ResourceServiceClient<InterceptedService<Channel, BearerToken>>;

/// Adds `authorization: Bearer <token>` to every call when the kubeconfig has a token.
#[derive(Clone)]
struct BearerToken(Option<MetadataValue<Ascii>>);

impl Interceptor for BearerToken {
    fn call(&mut self, mut request: tonic::Request<()>) -> std::result::Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request.metadata_mut().insert("authorization", value.clone());
        }
        Ok(request)
    }
}

/// A connection to one API server, cheap to clone (clones share the HTTP/2 channel).
#[derive(Clone)]
pub struct Client {
    grpc: Grpc,
    /// The REST transport of dynamic requests (see [`Client::dynamic`]).
    rest: Rest,
    field_manager: String,
}

impl Client {
    /// A client of the API server at `server` (`http://host:port`), without credentials.
    /// Connects lazily and reconnects by itself after the server restarts.
    pub fn new(server: &str) -> Result<Client> {
        Client::from_kubeconfig(&Kubeconfig::insecure(server))
    }

    /// A client for a kubeconfig context: an `https` server is verified against the
    /// context's CA, and the client presents its certificate and/or bearer token.
    pub fn from_kubeconfig(config: &Kubeconfig) -> Result<Client> {
        let server = &config.server;
        let mut endpoint = Endpoint::from_shared(server.clone())
            .map_err(|e| ClientError::Config(format!("server address {server:?}: {e}")))?
            // Without it, HTTP/2's small frames wait out Nagle and delayed ACKs (~40 ms each).
            .tcp_nodelay(true)
            .connect_timeout(Duration::from_secs(5))
            .http2_keep_alive_interval(Duration::from_secs(30))
            .keep_alive_timeout(Duration::from_secs(10))
            .keep_alive_while_idle(true);
        if server.starts_with("https://") {
            let ca = config.certificate_authority.as_ref().ok_or_else(|| {
                ClientError::Config(format!("{server} is https but the kubeconfig names no certificate-authority"))
            })?;
            let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca));
            match (&config.client_certificate, &config.client_key) {
                (Some(cert), Some(key)) => tls = tls.identity(Identity::from_pem(cert, key)),
                (None, None) => {}
                _ => return Err(ClientError::Config("client-certificate and client-key go together".into())),
            }
            endpoint =
                endpoint.tls_config(tls).map_err(|e| ClientError::Config(format!("TLS settings for {server}: {e}")))?;
        }
        let token = match &config.token {
            Some(t) => Some(
                format!("Bearer {t}")
                    .parse::<MetadataValue<Ascii>>()
                    .map_err(|_| ClientError::Config("the bearer token is not a valid header value".into()))?,
            ),
            None => None,
        };
        let grpc = ResourceServiceClient::with_interceptor(endpoint.connect_lazy(), BearerToken(token))
            .max_decoding_message_size(MAX_RESPONSE_BYTES)
            .max_encoding_message_size(MAX_RESPONSE_BYTES);
        Ok(Client { grpc, rest: Rest::new(config), field_manager: String::new() })
    }

    /// Names this client in managedFields (`fieldManager`), e.g. "rkube-scheduler".
    pub fn with_field_manager(mut self, name: &str) -> Client {
        self.field_manager = name.to_string();
        self
    }

    /// Requests on `K` in `namespace`; `None` means all namespaces (or a cluster-scoped kind).
    pub fn api<K: Resource>(&self, namespace: Option<&str>) -> Api<K> {
        let target = Target {
            group: K::GROUP.to_string(),
            version: K::VERSION.to_string(),
            plural: K::URL_PATH_SEGMENT.to_string(),
            kind: K::KIND.to_string(),
            rest: false,
        };
        Api {
            client: self.clone(),
            namespace: namespace.unwrap_or_default().to_string(),
            target: Arc::new(target),
            kind: PhantomData,
        }
    }

    /// Requests on the run-time resource `resource` in `namespace` (`None`: all namespaces, or
    /// a cluster-scoped resource), with objects as [`DynamicObject`]s.
    ///
    /// These go over REST, not gRPC: the API server's gRPC front end resolves only its built-in
    /// resources, and the resources this exists for (those of CustomResourceDefinitions) are
    /// registered at run time and served over REST alone.
    pub fn dynamic(&self, resource: &ApiResource, namespace: Option<&str>) -> Api<DynamicObject> {
        let target = Target {
            group: resource.group.clone(),
            version: resource.version.clone(),
            plural: resource.plural.clone(),
            kind: resource.kind.clone(),
            rest: true,
        };
        let namespace = if resource.namespaced { namespace.unwrap_or_default() } else { "" };
        Api { client: self.clone(), namespace: namespace.to_string(), target: Arc::new(target), kind: PhantomData }
    }

    /// The `scale` subresource (autoscaling/v1 Scale) of any scalable object, named by its
    /// apiVersion and kind as a `scaleTargetRef` names it.
    pub async fn get_scale(&self, api_version: &str, kind: &str, namespace: &str, name: &str) -> Result<Scale> {
        let r = scale_ref(api_version, kind, namespace, name)?;
        let response = self
            .grpc
            .clone()
            .get(pb::GetRequest { r#ref: Some(r), resource_version: String::new() })
            .await
            .map_err(|s| from_grpc(&s))?
            .into_inner();
        decode_object(response, "Scale")
    }

    /// Writes `scale.spec.replicas` through the `scale` subresource; a compare-and-swap when
    /// the Scale carries the resourceVersion it was read at.
    pub async fn update_scale(&self, api_version: &str, kind: &str, scale: &Scale) -> Result<Scale> {
        let namespace = scale.metadata.namespace.as_deref().unwrap_or_default();
        let name = scale.metadata.name.as_deref().unwrap_or_default();
        let r = scale_ref(api_version, kind, namespace, name)?;
        let data = serde_json::to_vec(scale).map_err(|e| ClientError::decode("Scale", e))?;
        let request = pb::UpdateRequest {
            r#ref: Some(r),
            object: Some(pb::Object { data, content_type: JSON.to_string() }),
            options: self.write_options(false),
        };
        let response = self.grpc.clone().update(request).await.map_err(|s| from_grpc(&s))?.into_inner();
        decode_object(response, "Scale")
    }

    fn write_options(&self, dry_run: bool) -> Option<pb::WriteOptions> {
        Some(pb::WriteOptions { dry_run, field_manager: self.field_manager.clone(), field_validation: String::new() })
    }
}

/// Which resourceVersion and objects a list or watch asks for.
#[derive(Debug, Clone, Default)]
pub struct ListParams {
    /// Label selector, e.g. `app=web,tier!=db`.
    pub label_selector: String,
    /// Field selector, e.g. `spec.nodeName=node-1`.
    pub field_selector: String,
    /// Page size; 0 for everything at once.
    pub limit: i64,
    /// The continue token of the previous page.
    pub continue_token: String,
    /// resourceVersion semantics as in Kubernetes: "" (consistent), "0" (any), or a revision.
    pub resource_version: String,
    /// "", "Exact" or "NotOlderThan".
    pub resource_version_match: String,
    /// Ends a watch after this many seconds; 0 for the server's default.
    pub timeout_seconds: i64,
}

impl ListParams {
    /// Objects whose labels match `selector`.
    pub fn labels(selector: &str) -> Self {
        ListParams { label_selector: selector.to_string(), ..Default::default() }
    }

    /// Objects whose fields match `selector`.
    pub fn fields(selector: &str) -> Self {
        ListParams { field_selector: selector.to_string(), ..Default::default() }
    }

    fn to_proto(&self, resource_version: &str, bookmarks: bool) -> pb::ListOptions {
        pb::ListOptions {
            label_selector: self.label_selector.clone(),
            field_selector: self.field_selector.clone(),
            resource_version: resource_version.to_string(),
            resource_version_match: self.resource_version_match.clone(),
            limit: self.limit,
            r#continue: self.continue_token.clone(),
            allow_watch_bookmarks: bookmarks,
            send_initial_events: false,
            timeout_seconds: self.timeout_seconds,
        }
    }
}

/// How to delete: grace period, propagation and preconditions, as metav1.DeleteOptions.
#[derive(Debug, Clone, Default)]
pub struct DeleteParams {
    /// Seconds a pod gets to stop; 0 deletes at once.
    pub grace_period_seconds: Option<i64>,
    /// "Orphan", "Background" or "Foreground".
    pub propagation_policy: Option<String>,
    /// Delete only the object with this uid.
    pub precondition_uid: Option<String>,
    /// Delete only at this resourceVersion.
    pub precondition_resource_version: Option<String>,
    /// Validate without writing.
    pub dry_run: bool,
}

/// The patch formats the API server accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    /// RFC 6902 JSON patch.
    Json,
    /// RFC 7386 merge patch.
    Merge,
    /// Kubernetes' strategic merge patch.
    StrategicMerge,
    /// Server-side apply; `force` takes fields over from other managers.
    Apply {
        /// Override conflicts.
        force: bool,
    },
}

impl PatchType {
    fn content_type(self) -> &'static str {
        match self {
            PatchType::Json => "application/json-patch+json",
            PatchType::Merge => "application/merge-patch+json",
            PatchType::StrategicMerge => "application/strategic-merge-patch+json",
            PatchType::Apply { .. } => "application/apply-patch+yaml",
        }
    }
}

/// One page of a list: the objects and the resourceVersion to watch from.
#[derive(Debug, Clone)]
pub struct ObjectList<K> {
    /// The objects.
    pub items: Vec<K>,
    /// The list's resourceVersion (the revision it was read at).
    pub resource_version: String,
    /// Token for the next page, when `limit` cut the list.
    pub continue_token: Option<String>,
}

/// One change a watch reports.
#[derive(Debug, Clone)]
pub enum WatchEvent<K> {
    /// An object was created (or entered the selection).
    Added(K),
    /// An object changed.
    Modified(K),
    /// An object was deleted (or left the selection); its last state.
    Deleted(K),
    /// No change, but the watch has seen everything up to this resourceVersion.
    Bookmark(String),
    /// The server ended the watch with an error (410 Expired when the position was compacted).
    Error(rkube_api::ApiError),
}

/// The resource an [`Api`] addresses, fixed when it is made (from `K`'s constants, or from an
/// [`ApiResource`] for dynamic objects), and the transport its requests take.
#[derive(Debug)]
struct Target {
    group: String,
    version: String,
    plural: String,
    kind: String,
    /// REST instead of gRPC (dynamic resources only; see [`Client::dynamic`]).
    rest: bool,
}

/// Requests on one resource type `K` in one namespace (or all, or none for cluster scope).
pub struct Api<K> {
    client: Client,
    namespace: String,
    target: Arc<Target>,
    kind: PhantomData<fn() -> K>,
}

impl<K> Clone for Api<K> {
    fn clone(&self) -> Self {
        Api {
            client: self.client.clone(),
            namespace: self.namespace.clone(),
            target: self.target.clone(),
            kind: PhantomData,
        }
    }
}

impl<K> Api<K>
where
    K: Resource + Metadata<Ty = ObjectMeta> + Serialize + DeserializeOwned + Send + 'static,
{
    /// The namespace this Api addresses ("" for all namespaces or cluster scope).
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The kind of the objects this Api addresses.
    pub fn kind(&self) -> &str {
        &self.target.kind
    }

    fn reference(&self, namespace: &str, name: &str, subresource: &str) -> Option<pb::ResourceRef> {
        Some(pb::ResourceRef {
            group: self.target.group.clone(),
            version: self.target.version.clone(),
            resource: self.target.plural.clone(),
            namespace: namespace.to_string(),
            name: name.to_string(),
            subresource: subresource.to_string(),
        })
    }

    /// The namespace a write of `obj` goes to: this Api's, else the object's own.
    fn namespace_of<'a>(&'a self, obj: &'a K) -> &'a str {
        if self.namespace.is_empty() {
            obj.metadata().namespace.as_deref().unwrap_or_default()
        } else {
            &self.namespace
        }
    }

    fn encode(&self, obj: &impl Serialize) -> Result<Option<pb::Object>> {
        let data = serde_json::to_vec(obj).map_err(|e| ClientError::decode(&self.target.kind, e))?;
        Ok(Some(pb::Object { data, content_type: JSON.to_string() }))
    }

    fn decode<T: DeserializeOwned>(response: pb::ObjectResponse, what: &str) -> Result<T> {
        decode_object(response, what)
    }

    /// Runs a read, retrying transport failures with a short back-off, since a read repeated
    /// after an API server restart is harmless.
    async fn read<F, Fut>(&self, mut call: F) -> Result<pb::ObjectResponse>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<pb::ObjectResponse>>,
    {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        let mut attempt = 1;
        loop {
            match call().await {
                Ok(r) => return Ok(r),
                Err(e) => {
                    if attempt >= READ_ATTEMPTS || !matches!(e, ClientError::Unavailable(_)) {
                        return Err(e);
                    }
                }
            }
            attempt += 1;
            tokio::time::sleep(backoff.next_delay()).await;
        }
    }

    // One method per call of the resource service, each sent over this Api's transport.

    async fn send_get(&self, request: pb::GetRequest) -> Result<pb::ObjectResponse> {
        if self.target.rest {
            return self.client.rest.get(request).await;
        }
        grpc_answer(self.client.grpc.clone().get(request).await)
    }

    async fn send_list(&self, request: pb::ListRequest) -> Result<pb::ObjectResponse> {
        if self.target.rest {
            return self.client.rest.list(request).await;
        }
        grpc_answer(self.client.grpc.clone().list(request).await)
    }

    async fn send_create(&self, request: pb::CreateRequest) -> Result<pb::ObjectResponse> {
        if self.target.rest {
            return self.client.rest.create(request).await;
        }
        grpc_answer(self.client.grpc.clone().create(request).await)
    }

    async fn send_update(&self, request: pb::UpdateRequest, status: bool) -> Result<pb::ObjectResponse> {
        if self.target.rest {
            return self.client.rest.update(request, status).await;
        }
        let mut grpc = self.client.grpc.clone();
        grpc_answer(if status { grpc.update_status(request).await } else { grpc.update(request).await })
    }

    async fn send_patch(&self, request: pb::PatchRequest) -> Result<pb::ObjectResponse> {
        if self.target.rest {
            return self.client.rest.patch(request).await;
        }
        grpc_answer(self.client.grpc.clone().patch(request).await)
    }

    /// GET one object.
    pub async fn get(&self, name: &str) -> Result<K> {
        let request =
            pb::GetRequest { r#ref: self.reference(&self.namespace, name, ""), resource_version: String::new() };
        let response = self.read(|| self.send_get(request.clone())).await?;
        Self::decode(response, &self.target.kind)
    }

    /// GET one object, `None` when it does not exist.
    pub async fn get_opt(&self, name: &str) -> Result<Option<K>> {
        match self.get(name).await {
            Ok(o) => Ok(Some(o)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// LIST objects.
    pub async fn list(&self, params: &ListParams) -> Result<ObjectList<K>> {
        #[derive(serde::Deserialize)]
        struct Raw<K> {
            #[serde(default)]
            metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ListMeta,
            #[serde(default = "Vec::new")]
            items: Vec<K>,
        }
        let request = pb::ListRequest {
            r#ref: self.reference(&self.namespace, "", ""),
            options: Some(params.to_proto(&params.resource_version, false)),
        };
        let response = self.read(|| self.send_list(request.clone())).await?;
        let raw: Raw<K> = Self::decode(response, &format!("{}List", self.target.kind))?;
        Ok(ObjectList {
            items: raw.items,
            resource_version: raw.metadata.resource_version.unwrap_or_default(),
            continue_token: raw.metadata.continue_.filter(|c| !c.is_empty()),
        })
    }

    /// POST a new object.
    pub async fn create(&self, obj: &K) -> Result<K> {
        let request = pb::CreateRequest {
            r#ref: self.reference(self.namespace_of(obj), "", ""),
            object: self.encode(obj)?,
            options: self.client.write_options(false),
        };
        Self::decode(self.send_create(request).await?, &self.target.kind)
    }

    /// POST to a subresource such as `binding`, returning what the server answers (a Status
    /// for a binding).
    pub async fn create_subresource<B: Serialize>(&self, name: &str, subresource: &str, body: &B) -> Result<Value> {
        let data = serde_json::to_vec(body).map_err(|e| ClientError::decode(subresource, e))?;
        let request = pb::CreateRequest {
            r#ref: self.reference(&self.namespace, name, subresource),
            object: Some(pb::Object { data, content_type: JSON.to_string() }),
            options: self.client.write_options(false),
        };
        Self::decode(self.send_create(request).await?, subresource)
    }

    async fn put(&self, obj: &K, status: bool) -> Result<K> {
        let name = obj.metadata().name.as_deref().unwrap_or_default();
        let request = pb::UpdateRequest {
            r#ref: self.reference(self.namespace_of(obj), name, ""),
            object: self.encode(obj)?,
            options: self.client.write_options(false),
        };
        Self::decode(self.send_update(request, status).await?, &self.target.kind)
    }

    /// PUT the object (a compare-and-swap when it carries a resourceVersion).
    pub async fn update(&self, obj: &K) -> Result<K> {
        self.put(obj, false).await
    }

    /// PUT the object's status subresource.
    pub async fn update_status(&self, obj: &K) -> Result<K> {
        self.put(obj, true).await
    }

    async fn patch_part(&self, name: &str, subresource: &str, patch_type: PatchType, patch: &Value) -> Result<K> {
        let request = pb::PatchRequest {
            r#ref: self.reference(&self.namespace, name, subresource),
            patch_type: patch_type.content_type().to_string(),
            patch: serde_json::to_vec(patch).map_err(|e| ClientError::decode("patch", e))?,
            options: self.client.write_options(false),
            force: matches!(patch_type, PatchType::Apply { force: true }),
        };
        Self::decode(self.send_patch(request).await?, &self.target.kind)
    }

    /// PATCH the object.
    pub async fn patch(&self, name: &str, patch_type: PatchType, patch: &Value) -> Result<K> {
        self.patch_part(name, "", patch_type, patch).await
    }

    /// PATCH the object's status subresource.
    pub async fn patch_status(&self, name: &str, patch_type: PatchType, patch: &Value) -> Result<K> {
        self.patch_part(name, "status", patch_type, patch).await
    }

    /// DELETE the object.
    pub async fn delete(&self, name: &str, params: &DeleteParams) -> Result<()> {
        let request = pb::DeleteRequest {
            r#ref: self.reference(&self.namespace, name, ""),
            grace_period_seconds: params.grace_period_seconds,
            propagation_policy: params.propagation_policy.clone().unwrap_or_default(),
            precondition_uid: params.precondition_uid.clone().unwrap_or_default(),
            precondition_resource_version: params.precondition_resource_version.clone().unwrap_or_default(),
            dry_run: params.dry_run,
            list_options: None,
        };
        if self.target.rest {
            return self.client.rest.delete(request).await;
        }
        self.client.grpc.clone().delete(request).await.map_err(|s| from_grpc(&s))?;
        Ok(())
    }

    /// WATCH from `resource_version` (bookmarks on). The stream ends when the server's watch
    /// timeout passes or the connection drops; resume from the last resourceVersion seen.
    pub async fn watch(
        &self,
        params: &ListParams,
        resource_version: &str,
    ) -> Result<impl Stream<Item = Result<WatchEvent<K>>> + Send + 'static> {
        let request = pb::ListRequest {
            r#ref: self.reference(&self.namespace, "", ""),
            options: Some(params.to_proto(resource_version, true)),
        };
        let kind = self.target.kind.clone();
        let events = if self.target.rest {
            self.client.rest.watch(request).await?.boxed()
        } else {
            let stream = self.client.grpc.clone().watch(request).await.map_err(|s| from_grpc(&s))?.into_inner();
            stream.map(|item| item.map_err(|status| from_grpc(&status))).boxed()
        };
        Ok(events.map(move |item| item.and_then(|event| decode_event::<K>(event, &kind))))
    }
}

/// The reference to the `scale` subresource of the kind `api_version`/`kind`.
fn scale_ref(api_version: &str, kind: &str, namespace: &str, name: &str) -> Result<pb::ResourceRef> {
    let res = rkube_api::registry::lookup_kind(api_version, kind).filter(|r| r.has_scale).ok_or_else(|| {
        ClientError::Api(rkube_api::ApiError::NotFound {
            resource: String::new(),
            name: format!("{api_version} {kind}/scale"),
        })
    })?;
    Ok(pb::ResourceRef {
        group: res.group.to_string(),
        version: res.version.to_string(),
        resource: res.plural.to_string(),
        namespace: namespace.to_string(),
        name: name.to_string(),
        subresource: "scale".to_string(),
    })
}

fn decode_object<T: DeserializeOwned>(response: pb::ObjectResponse, what: &str) -> Result<T> {
    let object = response.object.ok_or_else(|| ClientError::decode(what, "the response carries no object"))?;
    serde_json::from_slice(&object.data).map_err(|e| ClientError::decode(what, e))
}

fn grpc_answer(
    answer: std::result::Result<tonic::Response<pb::ObjectResponse>, tonic::Status>,
) -> Result<pb::ObjectResponse> {
    answer.map(tonic::Response::into_inner).map_err(|s| from_grpc(&s))
}

fn decode_event<K: DeserializeOwned>(event: pb::WatchEvent, kind: &str) -> Result<WatchEvent<K>> {
    let data = event.object.map(|o| o.data).unwrap_or_default();
    let object = || serde_json::from_slice::<K>(&data).map_err(|e| ClientError::decode(kind, e));
    match event.r#type.as_str() {
        "ADDED" => Ok(WatchEvent::Added(object()?)),
        "MODIFIED" => Ok(WatchEvent::Modified(object()?)),
        "DELETED" => Ok(WatchEvent::Deleted(object()?)),
        // A bookmark carries only metadata, which need not decode as a whole K.
        "BOOKMARK" => {
            let v: Value = serde_json::from_slice(&data).map_err(|e| ClientError::decode("bookmark", e))?;
            let rv = v.pointer("/metadata/resourceVersion").and_then(Value::as_str).unwrap_or_default();
            Ok(WatchEvent::Bookmark(rv.to_string()))
        }
        "ERROR" => {
            let status: Value = serde_json::from_slice(&data).map_err(|e| ClientError::decode("Status", e))?;
            Ok(WatchEvent::Error(rkube_api::ApiError::from_status(&status)))
        }
        other => Err(ClientError::decode("watch event", format!("unknown event type {other:?}"))),
    }
}
