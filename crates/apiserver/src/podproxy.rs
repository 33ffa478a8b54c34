//! The pod subresources served by the pod's kubelet: `log`, `exec`, `attach` and
//! `portforward` under `/api/v1/namespaces/{ns}/pods/{name}/`.
//!
//! The API server checks the request as Kubernetes does (the container, that the pod is bound,
//! for logs that the container has started), finds the kubelet's address in the Node's
//! `status.addresses` and `status.daemonEndpoints.kubeletEndpoint.Port`, and forwards:
//! logs as a streamed GET, the others as the client's HTTP upgrade relayed byte for byte (the
//! kubelet relays it on to containerd's stream server; see `rkube_kubelet::streaming`). A
//! kubectl WebSocket (v5) attempt is refused by the kubelet with a 400, upon which kubectl falls
//! back to SPDY/3.1 by itself. Errors are Status objects; the kubelet's own are passed on.

use crate::Server;
use crate::rest::error_response;
use axum::body::Body;
use axum::extract::{Query, Request};
use axum::response::Response;
use futures::StreamExt;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use rkube_api::{ApiError, FieldError, registry};
use serde_json::Value;
use std::sync::Arc;

/// Annotation naming the container kubectl (and, here, the server) picks by default.
pub const DEFAULT_CONTAINER_ANNOTATION: &str = "kubectl.kubernetes.io/default-container";
/// The kubelet port when the Node does not publish one.
const DEFAULT_KUBELET_PORT: i64 = 10250;
/// How long dialling a kubelet may take.
/// Request headers that carry an upgrade's negotiation to the kubelet.
const UPGRADE_HEADERS: [&str; 7] = [
    "upgrade",
    "connection",
    "x-stream-protocol-version",
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-protocol",
    "sec-websocket-extensions",
];

/// Which node-served subresource a request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sub {
    Log,
    Exec,
    Attach,
    PortForward,
}

/// `(namespace, pod, subresource)` when `path` is one of the node-served pod subresources.
fn parse(path: &str) -> Option<(&str, &str, Sub)> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    match segs.as_slice() {
        ["api", "v1", "namespaces", ns, "pods", name, sub] if !ns.is_empty() && !name.is_empty() => {
            let sub = match *sub {
                "log" => Sub::Log,
                "exec" => Sub::Exec,
                "attach" => Sub::Attach,
                "portforward" => Sub::PortForward,
                _ => return None,
            };
            Some((ns, name, sub))
        }
        _ => None,
    }
}

/// Whether `path` is served here rather than by the object handlers.
pub fn matches(path: &str) -> bool {
    parse(path).is_some()
}

/// Serves a request whose path [`matches`].
pub async fn handle(server: &Arc<Server>, req: Request) -> Response {
    match serve(server, req).await {
        Ok(r) => r,
        Err(e) => error_response(&e),
    }
}

fn q<'a>(query: &'a [(String, String)], key: &str) -> Option<&'a str> {
    query.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// A boolean parameter spelled any way Go's strconv.ParseBool accepts.
fn flag(query: &[(String, String)], key: &str) -> Result<bool, ApiError> {
    match q(query, key) {
        None => Ok(false),
        Some("1" | "t" | "T" | "true" | "TRUE" | "True") => Ok(true),
        Some("" | "0" | "f" | "F" | "false" | "FALSE" | "False") => Ok(false),
        Some(v) => Err(ApiError::BadRequest(format!("invalid value for {key}: {v:?}"))),
    }
}

fn int(query: &[(String, String)], key: &str) -> Result<Option<i64>, ApiError> {
    match q(query, key) {
        None | Some("") => Ok(None),
        Some(v) => v.parse().map(Some).map_err(|_| ApiError::BadRequest(format!("invalid value for {key}: {v:?}"))),
    }
}

fn container_names(pod: &Value) -> Vec<String> {
    // Kubernetes lists init containers, then containers, then ephemeral containers.
    ["initContainers", "containers", "ephemeralContainers"]
        .iter()
        .flat_map(|k| pod["spec"][k].as_array().into_iter().flatten())
        .filter_map(|c| c["name"].as_str().map(str::to_string))
        .collect()
}

/// The container a request addresses: the one named, else the only one, else (when
/// `use_default`) the one the default-container annotation names.
fn pick_container(pod: &Value, name: &str, wanted: Option<&str>, use_default: bool) -> Result<String, ApiError> {
    let all = container_names(pod);
    if let Some(c) = wanted.filter(|c| !c.is_empty()) {
        if all.iter().any(|n| n == c) {
            return Ok(c.to_string());
        }
        return Err(ApiError::BadRequest(format!("container {c} is not valid for pod {name}")));
    }
    let regular: Vec<&str> =
        pod["spec"]["containers"].as_array().into_iter().flatten().filter_map(|c| c["name"].as_str()).collect();
    match regular.as_slice() {
        [only] => return Ok(only.to_string()),
        [] => return Err(ApiError::BadRequest(format!("a container name must be specified for pod {name}"))),
        _ => {}
    }
    if use_default
        && let Some(d) = pod["metadata"]["annotations"][DEFAULT_CONTAINER_ANNOTATION].as_str()
        && all.iter().any(|n| n == d)
    {
        return Ok(d.to_string());
    }
    Err(ApiError::BadRequest(format!(
        "a container name must be specified for pod {name}, choose one of: [{}]",
        all.join(" ")
    )))
}

/// The container's status among the pod's regular, init and ephemeral container statuses.
fn container_status<'a>(pod: &'a Value, container: &str) -> Option<&'a Value> {
    ["containerStatuses", "initContainerStatuses", "ephemeralContainerStatuses"]
        .iter()
        .flat_map(|k| pod["status"][k].as_array().into_iter().flatten())
        .find(|s| s["name"] == container)
}

/// Refuses logs of a container that has none yet, with the kubelet's wording.
fn check_has_logs(pod: &Value, name: &str, container: &str, previous: bool) -> Result<(), ApiError> {
    let waiting = |reason: &str| {
        let why = match reason {
            "ErrImagePull" => "image can't be pulled".to_string(),
            "ImagePullBackOff" => "trying and failing to pull image".to_string(),
            "" => "ContainerCreating".to_string(),
            r => r.to_string(),
        };
        ApiError::BadRequest(format!("container {container:?} in pod {name:?} is waiting to start: {why}"))
    };
    let Some(st) = container_status(pod, container) else {
        // The kubelet has not reported the container yet: it is being created.
        return Err(waiting(""));
    };
    let last_terminated = st["lastState"]["terminated"].is_object();
    if previous {
        if !last_terminated && st["restartCount"].as_i64().unwrap_or(0) == 0 {
            return Err(ApiError::BadRequest(format!(
                "previous terminated container {container:?} in pod {name:?} not found"
            )));
        }
        return Ok(());
    }
    let state = &st["state"];
    if state["running"].is_object() || state["terminated"].is_object() || last_terminated {
        return Ok(());
    }
    match state["waiting"]["reason"].as_str() {
        Some(reason) => Err(waiting(reason)),
        None => Err(ApiError::BadRequest(format!(
            "container {container:?} in pod {name:?} is waiting to start - no logs yet"
        ))),
    }
}

/// The validated PodLogOptions, re-encoded for the kubelet.
fn log_query(query: &[(String, String)], name: &str) -> Result<String, ApiError> {
    let invalid = |field: &str, value: Value, detail: &str| ApiError::Invalid {
        kind: "PodLogOptions".into(),
        group: String::new(),
        name: name.to_string(),
        causes: vec![FieldError::invalid(field, &value, detail)],
    };
    let mut out = Vec::new();
    for key in ["follow", "previous", "timestamps"] {
        if flag(query, key)? {
            out.push(format!("{key}=true"));
        }
    }
    let since_seconds = int(query, "sinceSeconds")?;
    if let Some(s) = since_seconds {
        if s < 1 {
            return Err(invalid("sinceSeconds", s.into(), "must be greater than 0"));
        }
        out.push(format!("sinceSeconds={s}"));
    }
    if let Some(t) = q(query, "sinceTime").filter(|t| !t.is_empty()) {
        if since_seconds.is_some() {
            return Err(ApiError::Invalid {
                kind: "PodLogOptions".into(),
                group: String::new(),
                name: name.to_string(),
                causes: vec![FieldError::forbidden(
                    "",
                    "at most one of `sinceTime` or `sinceSeconds` may be specified",
                )],
            });
        }
        let ts: jiff::Timestamp = t
            .parse()
            .map_err(|_| ApiError::BadRequest(format!("invalid value for sinceTime: {t:?} is not an RFC 3339 time")))?;
        out.push(format!("sinceTime={}", ts.strftime("%Y-%m-%dT%H:%M:%SZ")));
    }
    if let Some(n) = int(query, "tailLines")? {
        if n < 0 {
            return Err(invalid("tailLines", n.into(), "must be greater than or equal to 0"));
        }
        out.push(format!("tailLines={n}"));
    }
    if let Some(n) = int(query, "limitBytes")? {
        if n < 1 {
            return Err(invalid("limitBytes", n.into(), "must be greater than 0"));
        }
        out.push(format!("limitBytes={n}"));
    }
    match q(query, "stream") {
        None | Some("") => {}
        Some(s @ ("All" | "Stdout" | "Stderr")) => out.push(format!("stream={s}")),
        Some(other) => {
            return Err(ApiError::Invalid {
                kind: "PodLogOptions".into(),
                group: String::new(),
                name: name.to_string(),
                causes: vec![FieldError::not_supported("stream", &Value::from(other), &["All", "Stderr", "Stdout"])],
            });
        }
    }
    Ok(out.join("&"))
}

/// Percent-encodes a query value.
fn encode(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The kubelet query of exec and attach: `command`s and `input`/`output`/`error`/`tty` as `1`.
fn stream_query(query: &[(String, String)], exec: bool) -> Result<String, ApiError> {
    let mut out = Vec::new();
    if exec {
        let commands: Vec<&str> = query.iter().filter(|(k, _)| k == "command").map(|(_, v)| v.as_str()).collect();
        if commands.is_empty() {
            return Err(ApiError::BadRequest("you must specify at least one command for the container".into()));
        }
        out.extend(commands.iter().map(|c| format!("command={}", encode(c))));
    }
    for (theirs, kubelet) in [("stdin", "input"), ("stdout", "output"), ("stderr", "error"), ("tty", "tty")] {
        if flag(query, theirs)? {
            out.push(format!("{kubelet}=1"));
        }
    }
    Ok(out.join("&"))
}

/// The `ports` of a port-forward, checked, as the kubelet's `port` parameter.
fn port_query(query: &[(String, String)]) -> Result<String, ApiError> {
    let mut ports = Vec::new();
    for (_, v) in query.iter().filter(|(k, _)| k == "ports") {
        for p in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match p.parse::<u16>() {
                Ok(n) if n > 0 => ports.push(n.to_string()),
                _ => return Err(ApiError::BadRequest(format!("invalid port {p:?}: must be between 1 and 65535"))),
            }
        }
    }
    Ok(if ports.is_empty() { String::new() } else { format!("port={}", ports.join(",")) })
}

/// `host:port` of the node's kubelet, from the watch cache (etcd when the cache lacks it).
pub(crate) async fn kubelet_address(server: &Server, node: &str) -> Result<String, ApiError> {
    let res = registry::lookup("", "v1", "nodes").ok_or_else(|| ApiError::Internal("nodes are not served".into()))?;
    let obj = match server.registry.cache.get(&res.key(None, node)) {
        Some(o) => serde_json::from_slice::<Value>(&o.bytes)
            .map_err(|e| ApiError::Internal(format!("stored node is not JSON: {e}")))?,
        None => server.registry.get(res, None, node).await?,
    };
    let addresses = obj["status"]["addresses"].as_array().cloned().unwrap_or_default();
    let find =
        |t: &str| addresses.iter().find(|a| a["type"] == t).and_then(|a| a["address"].as_str()).map(str::to_string);
    let host = find("InternalIP").or_else(|| find("ExternalIP")).or_else(|| find("Hostname")).ok_or_else(|| {
        ApiError::Internal(format!("node {node:?} has no address in status.addresses to reach its kubelet at"))
    })?;
    let port = obj["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"]
        .as_i64()
        .filter(|p| *p > 0)
        .unwrap_or(DEFAULT_KUBELET_PORT);
    Ok(if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") })
}

async fn serve(server: &Arc<Server>, req: Request) -> Result<Response, ApiError> {
    let path = req.uri().path().to_string();
    let (namespace, name, sub) =
        parse(&path).ok_or_else(|| ApiError::NotFound { resource: String::new(), name: path.clone() })?;
    let (namespace, name) = (namespace.to_string(), name.to_string());
    let method = req.method().clone();
    let allowed = match sub {
        Sub::Log => method == Method::GET,
        _ => method == Method::GET || method == Method::POST,
    };
    if !allowed {
        return Err(ApiError::MethodNotAllowed(format!(
            "the server does not allow this method on the requested resource ({method} {path})"
        )));
    }
    let query: Vec<(String, String)> = Query::try_from_uri(req.uri())
        .map(|Query(q)| q)
        .map_err(|e| ApiError::BadRequest(format!("invalid query: {e}")))?;
    let pods = registry::lookup("", "v1", "pods").ok_or_else(|| ApiError::Internal("pods are not served".into()))?;
    let pod = server.registry.get(pods, Some(&namespace), &name).await?;
    let container = match sub {
        Sub::PortForward => String::new(),
        _ => pick_container(&pod, &name, q(&query, "container"), true)?,
    };
    let kubelet_query = match sub {
        Sub::Log => log_query(&query, &name)?,
        Sub::Exec => stream_query(&query, true)?,
        Sub::Attach => stream_query(&query, false)?,
        Sub::PortForward => port_query(&query)?,
    };
    let node = pod["spec"]["nodeName"].as_str().unwrap_or_default();
    if node.is_empty() {
        return Err(ApiError::BadRequest(format!("pod {name} does not have a host assigned")));
    }
    if sub == Sub::Log {
        check_has_logs(&pod, &name, &container, flag(&query, "previous")?)?;
    }
    let address = kubelet_address(server, node).await?;
    let kubelet_path = match sub {
        Sub::Log => format!("/containerLogs/{namespace}/{name}/{container}"),
        Sub::Exec => format!("/exec/{namespace}/{name}/{container}"),
        Sub::Attach => format!("/attach/{namespace}/{name}/{container}"),
        Sub::PortForward => format!("/portForward/{namespace}/{name}"),
    };
    let target = if kubelet_query.is_empty() { kubelet_path } else { format!("{kubelet_path}?{kubelet_query}") };
    tracing::debug!(namespace = %namespace, pod = %name, node, kubelet = %address, target = %target, "forwarding to the kubelet");
    match sub {
        Sub::Log => forward_log(server, &address, &target).await,
        _ => forward_upgrade(server, req, &address, &target).await,
    }
}

/// A kubelet refusal as the client's Status: the kubelet's own Status when it sent one.
async fn refusal(resp: hyper::Response<hyper::body::Incoming>) -> Response {
    let code = resp.status();
    let body = axum::body::to_bytes(Body::new(resp.into_body()), 64 << 10).await.unwrap_or_default();
    let parsed: Option<Value> = serde_json::from_slice(&body).ok().filter(|v: &Value| v["kind"] == "Status");
    let status = parsed.unwrap_or_else(|| {
        let reason = match code {
            StatusCode::BAD_REQUEST => "BadRequest",
            StatusCode::UNAUTHORIZED => "Unauthorized",
            StatusCode::FORBIDDEN => "Forbidden",
            StatusCode::NOT_FOUND => "NotFound",
            _ => "InternalError",
        };
        let text = String::from_utf8_lossy(&body).trim().to_string();
        let message = if text.is_empty() { format!("the kubelet answered {code}") } else { text };
        serde_json::json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code.as_u16(),
        })
    });
    let mut out = Response::new(Body::from(serde_json::to_vec(&status).unwrap_or_default()));
    *out.status_mut() = code;
    out.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    out
}

pub(crate) fn kubelet_request(
    method: Method,
    address: &str,
    target: &str,
    headers: HeaderMap,
) -> Result<hyper::Request<Body>, ApiError> {
    let mut req = hyper::Request::builder()
        .method(method)
        .uri(target)
        .body(Body::empty())
        .map_err(|e| ApiError::Internal(format!("building the kubelet request: {e}")))?;
    *req.headers_mut() = headers;
    if let Ok(host) = HeaderValue::from_str(address) {
        req.headers_mut().insert(header::HOST, host);
    }
    Ok(req)
}

/// Streams the kubelet's log answer to the client as it comes; a follow ends with the kubelet's
/// stream or at shutdown (which would otherwise wait for it).
async fn forward_log(server: &Server, address: &str, target: &str) -> Result<Response, ApiError> {
    let mut sender = server.kubelet.dial(address).await?;
    let shutdown = server.shutdown.clone();
    let req = kubelet_request(Method::GET, address, target, HeaderMap::new())?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| ApiError::Internal(format!("Get \"{}://{address}{target}\": {e}", server.kubelet.scheme())))?;
    if resp.status() != StatusCode::OK {
        return Ok(refusal(resp).await);
    }
    let chunks = http_body_util::BodyStream::new(resp.into_body())
        .filter_map(|frame| async move {
            match frame {
                Ok(f) => f.into_data().ok().map(Ok),
                Err(e) => Some(Err(e)),
            }
        })
        .take_until(shutdown.cancelled_owned());
    let mut out = Response::new(Body::from_stream(chunks));
    out.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    Ok(out)
}

/// Relays the client's upgrade to the kubelet; on 101 splices the two connections.
async fn forward_upgrade(server: &Server, mut req: Request, address: &str, target: &str) -> Result<Response, ApiError> {
    let upgrading = req.headers().contains_key(header::UPGRADE);
    if !upgrading {
        return Err(ApiError::BadRequest("Upgrade request required".into()));
    }
    let client_upgrade = req
        .extensions_mut()
        .remove::<hyper::upgrade::OnUpgrade>()
        .ok_or_else(|| ApiError::BadRequest("this connection cannot be upgraded (use HTTP/1.1)".into()))?;
    let mut headers = HeaderMap::new();
    for name in UPGRADE_HEADERS {
        for v in req.headers().get_all(name) {
            headers.append(header::HeaderName::from_static(name), v.clone());
        }
    }
    let mut sender = server.kubelet.dial(address).await?;
    let upstream_req = kubelet_request(req.method().clone(), address, target, headers)?;
    let mut resp = sender
        .send_request(upstream_req)
        .await
        .map_err(|e| ApiError::Internal(format!("error upgrading connection to the kubelet at {address}: {e}")))?;
    if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
        return Ok(refusal(resp).await);
    }
    Ok(rkube_daemon::upgrade::splice(client_upgrade, &mut resp, server.shutdown.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pairs(q: &[(&str, &str)]) -> Vec<(String, String)> {
        q.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn only_node_served_pod_subresources_match() {
        assert_eq!(parse("/api/v1/namespaces/a/pods/web/log"), Some(("a", "web", Sub::Log)));
        assert_eq!(parse("/api/v1/namespaces/a/pods/web/portforward"), Some(("a", "web", Sub::PortForward)));
        assert!(parse("/api/v1/namespaces/a/pods/web/status").is_none());
        assert!(parse("/api/v1/namespaces/a/pods/web").is_none());
        assert!(parse("/apis/apps/v1/namespaces/a/pods/web/log").is_none());
        assert!(parse("/api/v1/namespaces/a/services/web/exec").is_none());
    }

    #[test]
    fn containers_are_picked_like_kubernetes() {
        let one = json!({"spec": {"containers": [{"name": "main"}]}});
        assert_eq!(pick_container(&one, "p", None, true).unwrap(), "main");
        assert_eq!(pick_container(&one, "p", Some("main"), true).unwrap(), "main");
        assert_eq!(
            pick_container(&one, "p", Some("c"), true).unwrap_err().to_string(),
            "container c is not valid for pod p"
        );
        let two = json!({"spec": {"initContainers": [{"name": "init"}], "containers": [{"name": "a"}, {"name": "b"}]}});
        let err = pick_container(&two, "p", None, true).unwrap_err();
        assert_eq!(
            (err.code(), err.to_string()),
            (400, "a container name must be specified for pod p, choose one of: [init a b]".into())
        );
        assert_eq!(pick_container(&two, "p", Some("init"), true).unwrap(), "init");
        let mut annotated = two.clone();
        annotated["metadata"] = json!({"annotations": {DEFAULT_CONTAINER_ANNOTATION: "b"}});
        assert_eq!(pick_container(&annotated, "p", None, true).unwrap(), "b");
        assert!(pick_container(&annotated, "p", None, false).is_err());
        annotated["metadata"]["annotations"][DEFAULT_CONTAINER_ANNOTATION] = json!("gone");
        assert!(pick_container(&annotated, "p", None, true).is_err());
    }

    #[test]
    fn logs_need_a_started_container() {
        let pod = |statuses: Value| json!({"spec": {"containers": [{"name": "c"}]}, "status": {"containerStatuses": statuses}});
        let msg = |p: &Value, previous| check_has_logs(p, "web", "c", previous).err().map(|e| e.to_string());
        assert_eq!(
            msg(&pod(json!([])), false).as_deref(),
            Some("container \"c\" in pod \"web\" is waiting to start: ContainerCreating")
        );
        let waiting =
            pod(json!([{"name": "c", "state": {"waiting": {"reason": "ImagePullBackOff"}}, "restartCount": 0}]));
        assert_eq!(
            msg(&waiting, false).as_deref(),
            Some("container \"c\" in pod \"web\" is waiting to start: trying and failing to pull image")
        );
        let running = pod(json!([{"name": "c", "state": {"running": {}}, "restartCount": 0}]));
        assert_eq!(msg(&running, false), None);
        assert_eq!(
            msg(&running, true).as_deref(),
            Some("previous terminated container \"c\" in pod \"web\" not found")
        );
        let crashed = pod(
            json!([{"name": "c", "state": {"waiting": {"reason": "CrashLoopBackOff"}}, "lastState": {"terminated": {"exitCode": 1}}, "restartCount": 2}]),
        );
        assert_eq!(msg(&crashed, false), None);
        assert_eq!(msg(&crashed, true), None);
    }

    #[test]
    fn log_options_are_validated_and_reencoded() {
        let q = log_query(
            &pairs(&[
                ("follow", "true"),
                ("tailLines", "10"),
                ("sinceTime", "2024-05-01T10:00:00+02:00"),
                ("container", "x"),
            ]),
            "p",
        )
        .unwrap();
        assert_eq!(q, "follow=true&sinceTime=2024-05-01T08:00:00Z&tailLines=10");
        for (bad, code) in [
            (&[("tailLines", "-1")][..], 422),
            (&[("limitBytes", "0")], 422),
            (&[("sinceSeconds", "0")], 422),
            (&[("sinceSeconds", "5"), ("sinceTime", "2024-05-01T10:00:00Z")], 422),
            (&[("tailLines", "x")], 400),
            (&[("follow", "maybe")], 400),
        ] {
            assert_eq!(log_query(&pairs(bad), "p").unwrap_err().code(), code, "{bad:?}");
        }
    }

    #[test]
    fn exec_options_become_kubelet_parameters() {
        let q = stream_query(
            &pairs(&[
                ("command", "sh"),
                ("command", "-c"),
                ("command", "echo a&b"),
                ("stdin", "true"),
                ("stdout", "true"),
                ("tty", "false"),
            ]),
            true,
        )
        .unwrap();
        assert_eq!(q, "command=sh&command=-c&command=echo%20a%26b&input=1&output=1");
        assert!(stream_query(&pairs(&[("stdout", "true")]), true).is_err());
        assert_eq!(stream_query(&pairs(&[("stdout", "1"), ("stderr", "1")]), false).unwrap(), "output=1&error=1");
        assert_eq!(port_query(&pairs(&[("ports", "8080"), ("ports", "9090,1")])).unwrap(), "port=8080,9090,1");
        assert!(port_query(&pairs(&[("ports", "0")])).is_err());
    }
}
