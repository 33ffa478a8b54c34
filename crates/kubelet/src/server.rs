//! The kubelet's HTTP API on the paths Kubernetes' API server dials (HTTPS with
//! `--tls-cert-file`, restricted to the client CA's certificates with `--client-ca-file`):
//!
//! - `GET /containerLogs/{namespace}/{pod}/{container}` with PodLogOptions' query
//!   (`follow`, `tailLines`, `sinceSeconds`, `sinceTime`, `timestamps`, `previous`,
//!   `limitBytes`, `stream`), served from the CRI log file ([`crate::logs`]);
//! - `/exec/{namespace}/{pod}[/{uid}]/{container}?command=..&input=1&output=1&error=1&tty=1`,
//!   `/attach/...` and `/portForward/{namespace}/{pod}[/{uid}]`, relayed to containerd's stream
//!   server ([`crate::streaming`]);
//! - `POST /images/load`: an image archive imported into containerd ([`crate::imageload`], merged
//!   into this router by [`crate::run`]);
//! - `GET /healthz`.
//!
//! Containers are found through the CRI labels the pod workers set
//! (`io.kubernetes.pod.{name,namespace,uid}`, `io.kubernetes.container.name`): the pod's newest
//! sandbox names the current pod UID, and among that UID's containers of the name the highest
//! `attempt` is the current one and the one before it is `previous`.
//! Errors are Kubernetes Status objects, which the API server passes on to the client.

use crate::cri::{Cri, CriError, api};
use crate::logs::{LogError, LogOptions};
use crate::pods::spec::{LABEL_CONTAINER_NAME, LABEL_POD_NAME, LABEL_POD_NAMESPACE, LABEL_POD_UID};
use crate::streaming::{self, StreamError};
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use bytes::Bytes;
use futures::StreamExt;
use http::{HeaderValue, StatusCode, header};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often a followed container is checked for having exited.
const EXIT_POLL: Duration = Duration::from_secs(1);

/// Why a request to the kubelet API failed.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The request is malformed or asks for something that cannot be given.
    #[error("{0}")]
    BadRequest(String),
    /// The pod or container is not on this node.
    #[error("{0}")]
    NotFound(String),
    /// The container runtime failed.
    #[error(transparent)]
    Runtime(#[from] CriError),
    /// Reading the log failed.
    #[error(transparent)]
    Log(#[from] LogError),
    /// Relaying a stream failed.
    #[error(transparent)]
    Stream(#[from] StreamError),
    /// The client presented no certificate of the client CA.
    #[error("Unauthorized")]
    Unauthorized,
}

impl ServerError {
    fn status(&self) -> StatusCode {
        match self {
            ServerError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ServerError::NotFound(_) | ServerError::Runtime(CriError::NotFound(_)) => StatusCode::NOT_FOUND,
            ServerError::Runtime(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ServerError::Log(LogError::BadOption(_)) => StatusCode::BAD_REQUEST,
            ServerError::Log(LogError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                StatusCode::NOT_FOUND
            }
            ServerError::Log(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ServerError::Stream(e) => e.status(),
            ServerError::Unauthorized => StatusCode::UNAUTHORIZED,
        }
    }
}

impl IntoResponse for ServerError {
    fn into_response(self) -> Response {
        let code = self.status();
        let reason = match code {
            StatusCode::BAD_REQUEST => "BadRequest",
            StatusCode::NOT_FOUND => "NotFound",
            StatusCode::UNAUTHORIZED => "Unauthorized",
            _ => "InternalError",
        };
        tracing::debug!(code = code.as_u16(), error = %self, "kubelet API request failed");
        failure_response(code, reason, &self.to_string())
    }
}

/// A failure as a Kubernetes Status object, as every kubelet API error is answered.
pub(crate) fn failure_response(code: StatusCode, reason: &str, message: &str) -> Response {
    let status = serde_json::json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code.as_u16(),
    });
    let mut resp = (code, status.to_string()).into_response();
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

struct AppState {
    cri: Cri,
    token: CancellationToken,
}

type Shared = State<Arc<AppState>>;

/// The kubelet API's routes over `cri`; `token` ends follows and open streams on shutdown.
pub fn router(cri: Cri, token: CancellationToken) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/containerLogs/{namespace}/{pod}/{container}", get(container_logs))
        .route("/exec/{namespace}/{pod}/{container}", any(exec))
        .route("/exec/{namespace}/{pod}/{uid}/{container}", any(exec))
        .route("/attach/{namespace}/{pod}/{container}", any(attach))
        .route("/attach/{namespace}/{pod}/{uid}/{container}", any(attach))
        .route("/portForward/{namespace}/{pod}", any(port_forward))
        .route("/portForward/{namespace}/{pod}/{uid}", any(port_forward))
        .with_state(Arc::new(AppState { cri, token }))
}

/// Who may use the kubelet API beyond `/healthz`, which stays open.
#[derive(Clone, Default)]
pub enum Access {
    /// Anyone who reaches the port.
    #[default]
    Open,
    /// Clients with a certificate of the client CA (checked by the TLS layer).
    ClientCertificate,
    /// Those clients, each request also authorized by the API server.
    Webhook(Arc<crate::authz::WebhookAuthorizer>),
}

/// Serves `app` on `listener` until `token` is cancelled: HTTPS with `tls`, to the clients
/// `access` admits.
pub async fn serve_app(
    listener: tokio::net::TcpListener,
    app: Router,
    tls: Option<rkube_daemon::serve::TlsAcceptor>,
    access: Access,
    token: CancellationToken,
) {
    let local = listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
    tracing::info!(address = %local, tls = tls.is_some(), "serving the kubelet API");
    let handler = move |req: hyper::Request<hyper::body::Incoming>,
                        connection: Arc<rkube_daemon::serve::Connection>| {
        let (app, access) = (app.clone(), access.clone());
        async move {
            if req.uri().path() != "/healthz"
                && let Err(refusal) = admit(&access, &connection, &req).await
            {
                return refusal;
            }
            match tower::ServiceExt::oneshot(app, req).await {
                Ok(response) => response,
                Err(never) => match never {},
            }
        }
    };
    rkube_daemon::serve::serve(listener, tls, rkube_daemon::serve::connection_builder(true), handler, token).await;
}

/// Checks one request against `access`: 401 without a client certificate (or, when the
/// webhook authenticates tokens, a valid bearer token), 403 (in the kubelet's words) when the
/// API server says no.
async fn admit<B>(
    access: &Access,
    connection: &rkube_daemon::serve::Connection,
    req: &hyper::Request<B>,
) -> Result<(), Response> {
    let unauthorized = || ServerError::Unauthorized.into_response();
    let authorizer = match access {
        Access::Open => return Ok(()),
        Access::ClientCertificate => {
            return if connection.client_certificate.is_some() { Ok(()) } else { Err(unauthorized()) };
        }
        Access::Webhook(authorizer) => authorizer,
    };
    let user = match connection.client_certificate.as_ref() {
        Some(certificate) => rkube_auth::authn::from_client_certificate(certificate).map_err(|_| unauthorized())?,
        None => {
            let token = req
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .unwrap_or_default();
            authorizer.authenticate_token(token.trim()).await.ok_or_else(unauthorized)?
        }
    };
    let attributes = crate::authz::attributes(req.method(), req.uri().path());
    if authorizer.allowed(&user, &attributes).await {
        Ok(())
    } else {
        tracing::info!(user = %user.name, verb = attributes.verb, subresource = attributes.subresource, "kubelet API request forbidden");
        Err((StatusCode::FORBIDDEN, crate::authz::forbidden_message(&user, &attributes)).into_response())
    }
}

/// Serves the kubelet API over plain HTTP on `listener` until `token` is cancelled.
pub async fn serve(listener: tokio::net::TcpListener, cri: Cri, token: CancellationToken) {
    let app = router(cri, token.clone());
    serve_app(listener, app, None, Access::Open, token).await;
}

/// Which pod (and container) a path names.
struct Target {
    namespace: String,
    pod: String,
    uid: Option<String>,
    container: String,
}

impl Target {
    fn from_path(p: HashMap<String, String>) -> Target {
        let mut p = p;
        Target {
            namespace: p.remove("namespace").unwrap_or_default(),
            pod: p.remove("pod").unwrap_or_default(),
            uid: p.remove("uid"),
            container: p.remove("container").unwrap_or_default(),
        }
    }
}

fn query(req: &Request) -> Result<Vec<(String, String)>, ServerError> {
    Query::<Vec<(String, String)>>::try_from_uri(req.uri())
        .map(|Query(q)| q)
        .map_err(|e| ServerError::BadRequest(format!("invalid query: {e}")))
}

/// `1` or `true` (the API server sends `1`; Go's ParseBool spellings are accepted too).
fn truthy(q: &[(String, String)], keys: &[&str]) -> bool {
    q.iter()
        .any(|(k, v)| keys.contains(&k.as_str()) && matches!(v.as_str(), "1" | "t" | "T" | "true" | "TRUE" | "True"))
}

fn selector(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// The pod's sandboxes on this node, newest first.
async fn sandboxes(cri: &Cri, t: &Target) -> Result<Vec<api::PodSandbox>, ServerError> {
    let mut labels = selector(&[(LABEL_POD_NAME, &t.pod), (LABEL_POD_NAMESPACE, &t.namespace)]);
    if let Some(uid) = &t.uid {
        labels.insert(LABEL_POD_UID.into(), uid.clone());
    }
    let filter = api::PodSandboxFilter { label_selector: labels, ..Default::default() };
    let mut items = cri
        .runtime
        .clone()
        .list_pod_sandbox(api::ListPodSandboxRequest { filter: Some(filter) })
        .await
        .map_err(CriError::from)?
        .into_inner()
        .items;
    items.sort_by_key(|s| std::cmp::Reverse(s.created_at));
    if items.is_empty() {
        return Err(ServerError::NotFound(format!(
            "pod {:?} in namespace {:?} is not on this node",
            t.pod, t.namespace
        )));
    }
    Ok(items)
}

/// The instances of the target container of the pod's current UID, newest attempt first.
async fn containers(cri: &Cri, t: &Target) -> Result<Vec<api::Container>, ServerError> {
    let newest = sandboxes(cri, t).await?;
    let uid = newest[0].labels.get(LABEL_POD_UID).cloned().unwrap_or_default();
    let labels = selector(&[
        (LABEL_POD_NAME, &t.pod),
        (LABEL_POD_NAMESPACE, &t.namespace),
        (LABEL_POD_UID, &uid),
        (LABEL_CONTAINER_NAME, &t.container),
    ]);
    let filter = api::ContainerFilter { label_selector: labels, ..Default::default() };
    let mut items = cri
        .runtime
        .clone()
        .list_containers(api::ListContainersRequest { filter: Some(filter) })
        .await
        .map_err(CriError::from)?
        .into_inner()
        .containers;
    items.sort_by_key(|c| std::cmp::Reverse((c.metadata.as_ref().map_or(0, |m| m.attempt), c.created_at)));
    Ok(items)
}

/// The current instance of the container (or, with `previous`, the one before it).
async fn find_container(cri: &Cri, t: &Target, previous: bool) -> Result<api::Container, ServerError> {
    let mut all = containers(cri, t).await?;
    if previous {
        if all.len() < 2 {
            return Err(ServerError::BadRequest(format!(
                "previous terminated container {:?} in pod {:?} not found",
                t.container, t.pod
            )));
        }
        return Ok(all.swap_remove(1));
    }
    all.into_iter()
        .next()
        .ok_or_else(|| ServerError::NotFound(format!("container {:?} in pod {:?} not found", t.container, t.pod)))
}

/// The current instance, which must be running (exec and attach need a live process).
async fn running_container(cri: &Cri, t: &Target) -> Result<api::Container, ServerError> {
    let c = find_container(cri, t, false).await?;
    if c.state != api::ContainerState::ContainerRunning as i32 {
        return Err(ServerError::BadRequest(format!("container {:?} in pod {:?} is not running", t.container, t.pod)));
    }
    Ok(c)
}

/// The container's log file. containerd reports the absolute path (the sandbox's log
/// directory joined with the container's `log_path`); a relative one cannot be resolved here.
fn log_path(c: &api::Container, status: &api::ContainerStatus) -> Result<PathBuf, ServerError> {
    let p = PathBuf::from(&status.log_path);
    if p.is_absolute() {
        return Ok(p);
    }
    Err(ServerError::NotFound(format!("container {} has no log file (log path {:?})", c.id, status.log_path)))
}

async fn container_logs(State(s): Shared, Path(p): Path<HashMap<String, String>>, req: Request) -> Response {
    // The request itself is not Sync, so only its query travels into the future.
    let q = match query(&req) {
        Ok(q) => q,
        Err(e) => return e.into_response(),
    };
    match logs(&s, Target::from_path(p), q).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn logs(s: &Arc<AppState>, t: Target, q: Vec<(String, String)>) -> Result<Response, ServerError> {
    let opts = LogOptions::from_query(&q, jiff::Timestamp::now())?;
    let c = find_container(&s.cri, &t, opts.previous).await?;
    let status = s.cri.container_status(&c.id).await?;
    let path = log_path(&c, &status)?;
    // Fail before answering 200 when the file is not there.
    tokio::fs::metadata(&path).await.map_err(|source| LogError::Io { path: path.clone(), source })?;
    let running = status.state == api::ContainerState::ContainerRunning as i32;
    let done = s.token.child_token();
    if !running {
        done.cancel();
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(8);
    let follow = opts.follow;
    let cri = s.cri.clone();
    let id = c.id.clone();
    tracing::debug!(namespace = %t.namespace, pod = %t.pod, container = %t.container, id = %id, follow, "serving logs");
    tokio::spawn(async move {
        let watcher_stop = CancellationToken::new();
        if follow && running {
            tokio::spawn(watch_exit(cri, id.clone(), done.clone(), watcher_stop.clone()));
        }
        if let Err(e) = crate::logs::stream_logs(&path, opts, done, tx).await {
            tracing::warn!(container = %id, error = %e, "log stream failed");
        }
        watcher_stop.cancel();
    });
    let body =
        Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx).map(Ok::<_, std::convert::Infallible>));
    let mut resp = Response::new(body);
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    Ok(resp)
}

/// Cancels `done` once the container is no longer running (or gone); stops with `stop`.
async fn watch_exit(cri: Cri, id: String, done: CancellationToken, stop: CancellationToken) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = done.cancelled() => return,
            _ = tokio::time::sleep(EXIT_POLL) => {}
        }
        match cri.container_status(&id).await {
            Ok(st) if st.state == api::ContainerState::ContainerRunning as i32 => {}
            Ok(_) | Err(CriError::NotFound(_)) => {
                done.cancel();
                return;
            }
            // A runtime hiccup does not end the follow; the next poll decides.
            Err(e) => tracing::debug!(container = %id, error = %e, "checking a followed container"),
        }
    }
}

/// stdin/stdout/stderr/tty from the query, under the kubelet's names (`input`, `output`,
/// `error`) or PodExecOptions' (`stdin`, `stdout`, `stderr`).
struct StreamOpts {
    stdin: bool,
    stdout: bool,
    stderr: bool,
    tty: bool,
}

impl StreamOpts {
    fn from_query(q: &[(String, String)]) -> Result<StreamOpts, ServerError> {
        let tty = truthy(q, &["tty"]);
        let o = StreamOpts {
            stdin: truthy(q, &["input", "stdin"]),
            stdout: truthy(q, &["output", "stdout"]),
            // With a TTY stderr is merged into stdout, as the kubelet does.
            stderr: truthy(q, &["error", "stderr"]) && !tty,
            tty,
        };
        if !o.stdin && !o.stdout && !o.stderr {
            return Err(ServerError::BadRequest("you must specify at least 1 of stdin, stdout, stderr".into()));
        }
        Ok(o)
    }
}

async fn exec(State(s): Shared, Path(p): Path<HashMap<String, String>>, req: Request) -> Response {
    session(&s, Target::from_path(p), req, true).await.unwrap_or_else(IntoResponse::into_response)
}

async fn attach(State(s): Shared, Path(p): Path<HashMap<String, String>>, req: Request) -> Response {
    session(&s, Target::from_path(p), req, false).await.unwrap_or_else(IntoResponse::into_response)
}

/// An exec (a new process, `command` from the query) or an attach (to the container's own
/// process) in the current, running instance of the container.
async fn session(s: &AppState, t: Target, req: Request, exec: bool) -> Result<Response, ServerError> {
    streaming::check(req.headers())?;
    let q = query(&req)?;
    let o = StreamOpts::from_query(&q)?;
    let cmd: Vec<String> = q.iter().filter(|(k, _)| k == "command").map(|(_, v)| v.clone()).collect();
    if exec && cmd.is_empty() {
        return Err(ServerError::BadRequest("you must specify at least one command for the container".into()));
    }
    let c = running_container(&s.cri, &t).await?;
    tracing::debug!(namespace = %t.namespace, pod = %t.pod, container = %t.container, exec, ?cmd, tty = o.tty, "stream session");
    let mut runtime = s.cri.runtime.clone();
    let (container_id, tty, stdin, stdout, stderr) = (c.id, o.tty, o.stdin, o.stdout, o.stderr);
    let url = if exec {
        let r = api::ExecRequest { container_id, cmd, tty, stdin, stdout, stderr };
        runtime.exec(r).await.map_err(CriError::from)?.into_inner().url
    } else {
        let r = api::AttachRequest { container_id, stdin, tty, stdout, stderr };
        runtime.attach(r).await.map_err(CriError::from)?.into_inner().url
    };
    Ok(streaming::relay(req, &url, None, s.token.clone()).await?)
}

async fn port_forward(State(s): Shared, Path(p): Path<HashMap<String, String>>, req: Request) -> Response {
    let t = Target::from_path(p);
    let run = async {
        streaming::check(req.headers())?;
        let q = query(&req)?;
        let mut ports = Vec::new();
        for (_, v) in q.iter().filter(|(k, _)| k == "port" || k == "ports") {
            for p in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                match p.parse::<u16>() {
                    Ok(n) if n > 0 => ports.push(i32::from(n)),
                    _ => return Err(ServerError::BadRequest(format!("invalid port {p:?}"))),
                }
            }
        }
        let sandbox = sandboxes(&s.cri, &t)
            .await?
            .into_iter()
            .find(|sb| sb.state == api::PodSandboxState::SandboxReady as i32)
            .ok_or_else(|| ServerError::BadRequest(format!("pod {:?} has no running sandbox on this node", t.pod)))?;
        tracing::debug!(namespace = %t.namespace, pod = %t.pod, ?ports, "port-forward");
        let url = s
            .cri
            .runtime
            .clone()
            .port_forward(api::PortForwardRequest { pod_sandbox_id: sandbox.id, port: ports })
            .await
            .map_err(CriError::from)?
            .into_inner()
            .url;
        // A WebSocket port-forward names its ports in the query, which the stream server reads.
        let raw_query = req.uri().query().map(str::to_string);
        Ok(streaming::relay(req, &url, raw_query.as_deref(), s.token.clone()).await?)
    };
    run.await.unwrap_or_else(|e: ServerError| e.into_response())
}
