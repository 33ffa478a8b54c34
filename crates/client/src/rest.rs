//! The REST transport: the same resource-service requests the gRPC stub takes, sent as
//! Kubernetes REST calls. Only the dynamic (untyped) path uses it, because the API server's
//! gRPC front end resolves resources in its built-in registry alone, while resources that
//! CustomResourceDefinitions add at run time are served over REST only.

use crate::{ClientError, Kubeconfig, Result};
use futures::{Stream, StreamExt};
use reqwest::{Method, Url};
use rkube_rpc::v1 as pb;
use serde_json::{Value, json};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

const JSON: &str = "application/json";

/// A lazily built HTTP client of one API server with the kubeconfig's credentials; clones share it.
#[derive(Clone)]
pub(crate) struct Rest {
    config: Arc<Kubeconfig>,
    http: Arc<OnceLock<std::result::Result<reqwest::Client, String>>>,
}

impl Rest {
    /// A transport for `config`'s server; nothing is built or connected until the first call.
    pub(crate) fn new(config: &Kubeconfig) -> Rest {
        Rest { config: Arc::new(config.clone()), http: Arc::default() }
    }

    fn http(&self) -> Result<&reqwest::Client> {
        self.http.get_or_init(|| build(&self.config)).as_ref().map_err(|e| ClientError::Config(e.clone()))
    }

    /// The URL of `r` (`/api/v1/...` for the core group, `/apis/<group>/<version>/...` else).
    fn url(&self, r: Option<&pb::ResourceRef>) -> Result<Url> {
        let r = r.ok_or_else(|| ClientError::Config("a request without a resource reference".into()))?;
        let mut url = Url::parse(&self.config.server)
            .map_err(|e| ClientError::Config(format!("server address {:?}: {e}", self.config.server)))?;
        {
            let mut path = url
                .path_segments_mut()
                .map_err(|_| ClientError::Config(format!("server address {:?} has no path", self.config.server)))?;
            path.pop_if_empty();
            if r.group.is_empty() {
                path.extend(["api", r.version.as_str()]);
            } else {
                path.extend(["apis", r.group.as_str(), r.version.as_str()]);
            }
            if !r.namespace.is_empty() {
                path.extend(["namespaces", r.namespace.as_str()]);
            }
            path.push(&r.resource);
            if !r.name.is_empty() {
                path.push(&r.name);
            }
            if !r.subresource.is_empty() {
                path.push(&r.subresource);
            }
        }
        Ok(url)
    }

    /// Sends one request; a non-2xx answer becomes the API error its Status describes.
    async fn send(&self, method: Method, url: Url, body: Option<(Vec<u8>, String)>) -> Result<reqwest::Response> {
        let mut request = self.http()?.request(method, url).header(reqwest::header::ACCEPT, JSON);
        if let Some((data, content_type)) = body {
            request = request.header(reqwest::header::CONTENT_TYPE, content_type).body(data);
        }
        let response = request.send().await.map_err(|e| ClientError::Unavailable(e.to_string()))?;
        if response.status().is_success() {
            return Ok(response);
        }
        let code = response.status().as_u16();
        let bytes = response.bytes().await.map_err(|e| ClientError::Unavailable(e.to_string()))?;
        Err(status_error(code, &bytes))
    }

    async fn object(&self, method: Method, url: Url, body: Option<(Vec<u8>, String)>) -> Result<pb::ObjectResponse> {
        let response = self.send(method, url, body).await?;
        let warnings = response
            .headers()
            .get_all(reqwest::header::WARNING)
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_string))
            .collect();
        let data = response.bytes().await.map_err(|e| ClientError::Unavailable(e.to_string()))?.to_vec();
        Ok(pb::ObjectResponse { object: Some(pb::Object { data, content_type: JSON.to_string() }), warnings })
    }

    /// GET one object.
    pub(crate) async fn get(&self, request: pb::GetRequest) -> Result<pb::ObjectResponse> {
        let mut url = self.url(request.r#ref.as_ref())?;
        if !request.resource_version.is_empty() {
            url.query_pairs_mut().append_pair("resourceVersion", &request.resource_version);
        }
        self.object(Method::GET, url, None).await
    }

    /// LIST objects.
    pub(crate) async fn list(&self, request: pb::ListRequest) -> Result<pb::ObjectResponse> {
        let mut url = self.url(request.r#ref.as_ref())?;
        list_query(&mut url, request.options.as_ref(), false);
        self.object(Method::GET, url, None).await
    }

    /// POST an object (to a collection, or to a subresource when the reference names one).
    pub(crate) async fn create(&self, request: pb::CreateRequest) -> Result<pb::ObjectResponse> {
        let mut url = self.url(request.r#ref.as_ref())?;
        write_query(&mut url, request.options.as_ref());
        self.object(Method::POST, url, body(request.object)).await
    }

    /// PUT an object, or its status subresource when `status`.
    pub(crate) async fn update(&self, mut request: pb::UpdateRequest, status: bool) -> Result<pb::ObjectResponse> {
        if status && let Some(r) = request.r#ref.as_mut() {
            r.subresource = "status".to_string();
        }
        let mut url = self.url(request.r#ref.as_ref())?;
        write_query(&mut url, request.options.as_ref());
        self.object(Method::PUT, url, body(request.object)).await
    }

    /// PATCH an object (or a subresource).
    pub(crate) async fn patch(&self, request: pb::PatchRequest) -> Result<pb::ObjectResponse> {
        let mut url = self.url(request.r#ref.as_ref())?;
        write_query(&mut url, request.options.as_ref());
        if request.force {
            url.query_pairs_mut().append_pair("force", "true");
        }
        self.object(Method::PATCH, url, Some((request.patch, request.patch_type))).await
    }

    /// DELETE an object with DeleteOptions in the body.
    pub(crate) async fn delete(&self, request: pb::DeleteRequest) -> Result<()> {
        let url = self.url(request.r#ref.as_ref())?;
        let mut options = json!({"kind": "DeleteOptions", "apiVersion": "v1"});
        if let Some(seconds) = request.grace_period_seconds {
            options["gracePeriodSeconds"] = json!(seconds);
        }
        if !request.propagation_policy.is_empty() {
            options["propagationPolicy"] = json!(request.propagation_policy);
        }
        if !request.precondition_uid.is_empty() {
            options["preconditions"]["uid"] = json!(request.precondition_uid);
        }
        if !request.precondition_resource_version.is_empty() {
            options["preconditions"]["resourceVersion"] = json!(request.precondition_resource_version);
        }
        if request.dry_run {
            options["dryRun"] = json!(["All"]);
        }
        let data = serde_json::to_vec(&options).map_err(|e| ClientError::decode("DeleteOptions", e))?;
        self.send(Method::DELETE, url, Some((data, JSON.to_string()))).await?;
        Ok(())
    }

    /// WATCH: the server's stream of JSON events, one per line, as the gRPC stub's messages.
    pub(crate) async fn watch(
        &self,
        request: pb::ListRequest,
    ) -> Result<impl Stream<Item = Result<pb::WatchEvent>> + Send + 'static> {
        let mut url = self.url(request.r#ref.as_ref())?;
        list_query(&mut url, request.options.as_ref(), true);
        let response = self.send(Method::GET, url, None).await?;
        let state = (response.bytes_stream(), Vec::<u8>::new(), false);
        Ok(futures::stream::unfold(state, |(mut bytes, mut buffer, mut done)| async move {
            loop {
                if let Some(end) = buffer.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = buffer.drain(..=end).collect();
                    if line.iter().all(u8::is_ascii_whitespace) {
                        continue;
                    }
                    return Some((watch_event(&line), (bytes, buffer, done)));
                }
                if done {
                    // A last event without its newline still counts.
                    if buffer.iter().all(u8::is_ascii_whitespace) {
                        return None;
                    }
                    let line = std::mem::take(&mut buffer);
                    return Some((watch_event(&line), (bytes, buffer, done)));
                }
                match bytes.next().await {
                    Some(Ok(chunk)) => buffer.extend_from_slice(&chunk),
                    Some(Err(e)) => {
                        return Some((Err(ClientError::Unavailable(e.to_string())), (bytes, Vec::new(), true)));
                    }
                    None => done = true,
                }
            }
        }))
    }
}

fn build(config: &Kubeconfig) -> std::result::Result<reqwest::Client, String> {
    // No overall timeout: watches stay open for minutes. TCP keepalive instead finds a
    // connection that died silently under a watch.
    let mut builder = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .tcp_keepalive(Duration::from_secs(30))
        .tcp_nodelay(true)
        .tls_built_in_root_certs(false);
    if let Some(ca) = &config.certificate_authority {
        let ca = reqwest::Certificate::from_pem(ca).map_err(|e| format!("certificate-authority: {e}"))?;
        builder = builder.add_root_certificate(ca);
    }
    match (&config.client_certificate, &config.client_key) {
        (Some(cert), Some(key)) => {
            let pem = [cert.as_slice(), b"\n", key.as_slice()].concat();
            let identity = reqwest::Identity::from_pem(&pem).map_err(|e| format!("client certificate: {e}"))?;
            builder = builder.identity(identity);
        }
        (None, None) => {}
        _ => return Err("client-certificate and client-key go together".into()),
    }
    if let Some(token) = &config.token {
        let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| "the bearer token is not a valid header value".to_string())?;
        value.set_sensitive(true);
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(reqwest::header::AUTHORIZATION, value);
        builder = builder.default_headers(headers);
    }
    builder.build().map_err(|e| e.to_string())
}

fn body(object: Option<pb::Object>) -> Option<(Vec<u8>, String)> {
    object.map(|o| {
        let content_type = if o.content_type.is_empty() { JSON.to_string() } else { o.content_type };
        (o.data, content_type)
    })
}

fn list_query(url: &mut Url, options: Option<&pb::ListOptions>, watch: bool) {
    let mut q = url.query_pairs_mut();
    if watch {
        q.append_pair("watch", "1");
    }
    let Some(o) = options else { return };
    let pairs = [
        ("labelSelector", o.label_selector.as_str()),
        ("fieldSelector", o.field_selector.as_str()),
        ("resourceVersion", o.resource_version.as_str()),
        ("resourceVersionMatch", o.resource_version_match.as_str()),
        ("continue", o.r#continue.as_str()),
    ];
    for (name, value) in pairs.into_iter().filter(|(_, v)| !v.is_empty()) {
        q.append_pair(name, value);
    }
    if o.limit > 0 {
        q.append_pair("limit", &o.limit.to_string());
    }
    if o.timeout_seconds > 0 {
        q.append_pair("timeoutSeconds", &o.timeout_seconds.to_string());
    }
    if watch && o.allow_watch_bookmarks {
        q.append_pair("allowWatchBookmarks", "true");
    }
    if o.send_initial_events {
        q.append_pair("sendInitialEvents", "true");
    }
}

fn write_query(url: &mut Url, options: Option<&pb::WriteOptions>) {
    let Some(o) = options else { return };
    let mut q = url.query_pairs_mut();
    if o.dry_run {
        q.append_pair("dryRun", "All");
    }
    if !o.field_manager.is_empty() {
        q.append_pair("fieldManager", &o.field_manager);
    }
    if !o.field_validation.is_empty() {
        q.append_pair("fieldValidation", &o.field_validation);
    }
}

/// One line of a REST watch (`{"type": ..., "object": ...}`) as the gRPC stub's message.
fn watch_event(line: &[u8]) -> Result<pb::WatchEvent> {
    let mut event: Value = serde_json::from_slice(line).map_err(|e| ClientError::decode("watch event", e))?;
    let r#type = event["type"].as_str().unwrap_or_default().to_string();
    let data = serde_json::to_vec(&event["object"].take()).map_err(|e| ClientError::decode("watch event", e))?;
    Ok(pb::WatchEvent { r#type, object: Some(pb::Object { data, content_type: JSON.to_string() }) })
}

/// The error a non-2xx answer stands for: its Status when the body is one, else a Status
/// made up from the code (a proxy's or a crashed handler's answer).
fn status_error(code: u16, body: &[u8]) -> ClientError {
    match serde_json::from_slice::<Value>(body) {
        Ok(s) if s["kind"] == "Status" => ClientError::Api(rkube_api::ApiError::from_status(&s)),
        // A gateway's or proxy's answer while the API server is away: retryable, like no answer.
        _ if matches!(code, 502..=504) => {
            ClientError::Unavailable(format!("HTTP {code}: {}", String::from_utf8_lossy(body).trim()))
        }
        _ => {
            let message = String::from_utf8_lossy(body).trim().to_string();
            let reason = match code {
                400 => "BadRequest",
                401 => "Unauthorized",
                403 => "Forbidden",
                404 => "NotFound",
                405 => "MethodNotAllowed",
                409 => "Conflict",
                410 => "Expired",
                415 => "UnsupportedMediaType",
                422 => "Invalid",
                429 => "TooManyRequests",
                _ => "InternalError",
            };
            let status =
                json!({"kind": "Status", "status": "Failure", "code": code, "reason": reason, "message": message});
            ClientError::Api(rkube_api::ApiError::from_status(&status))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(group: &str, ns: &str, name: &str, sub: &str) -> Option<pb::ResourceRef> {
        Some(pb::ResourceRef {
            group: group.into(),
            version: "v1".into(),
            resource: "widgets".into(),
            namespace: ns.into(),
            name: name.into(),
            subresource: sub.into(),
        })
    }

    #[test]
    fn paths_follow_kubernetes_rest_layout() {
        let rest = Rest::new(&Kubeconfig::insecure("http://127.0.0.1:6443"));
        let url = |r: Option<pb::ResourceRef>| rest.url(r.as_ref()).unwrap().to_string();
        assert_eq!(url(reference("", "", "", "")), "http://127.0.0.1:6443/api/v1/widgets");
        assert_eq!(
            url(reference("example.com", "shop", "w1", "status")),
            "http://127.0.0.1:6443/apis/example.com/v1/namespaces/shop/widgets/w1/status"
        );
        let mut u = rest.url(reference("example.com", "", "", "").as_ref()).unwrap();
        let options = pb::ListOptions {
            label_selector: "a=b".into(),
            resource_version: "12".into(),
            allow_watch_bookmarks: true,
            ..Default::default()
        };
        list_query(&mut u, Some(&options), true);
        assert_eq!(u.query(), Some("watch=1&labelSelector=a%3Db&resourceVersion=12&allowWatchBookmarks=true"));
    }

    #[test]
    fn error_answers_keep_their_status() {
        let status = br#"{"kind":"Status","code":404,"reason":"NotFound","message":"widgets.example.com \"w\" not found","details":{"name":"w","group":"example.com","kind":"widgets"}}"#;
        assert!(status_error(404, status).is_not_found());
        assert!(status_error(404, b"404 page not found").is_not_found());
        assert!(matches!(status_error(503, b"down"), ClientError::Unavailable(_)));
        let event = watch_event(br#"{"type":"ADDED","object":{"kind":"Widget"}}"#).unwrap();
        assert_eq!(event.r#type, "ADDED");
        assert_eq!(event.object.unwrap().data, br#"{"kind":"Widget"}"#);
    }
}
