//! The Kubernetes REST front end: path and query parsing, verbs, content types, and Status
//! errors. Everything object-related is delegated to [`crate::objects::Registry`].

use crate::access::RequestUser;
use crate::codec::{self, BodyFormat};
use crate::negotiate::{self, Output};
use crate::objects::{DeleteOptions, FieldValidation, ListOptions, Outcome, Part, WriteOptions};
use crate::requestinfo::RequestInfo;
use crate::{Server, discovery, watch};
use axum::body::Body;
use axum::extract::{Query, Request, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::StreamExt;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use rkube_api::{ApiError, ResourceInfo, registry};
use rkube_auth::UserInfo;
use rkube_daemon::serve::Connection;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;

/// A JSON response with a status code.
fn json_response(code: u16, body: Bytes, warnings: &[String]) -> Response {
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::OK);
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    add_warnings(&mut resp, warnings);
    resp
}

fn add_warnings(resp: &mut Response, warnings: &[String]) {
    for w in warnings {
        // RFC 7234 warning format, as kube-apiserver sends them and kubectl prints them.
        if let Ok(v) = HeaderValue::from_str(&format!("299 - {}", serde_json::to_string(w).unwrap_or_default())) {
            resp.headers_mut().append(header::WARNING, v);
        }
    }
}

/// The warning every request to a deprecated custom resource version gets.
fn deprecation_warning(path: &str) -> Option<String> {
    let mut segs = path.trim_matches('/').split('/');
    // Resource requests only: /apis/<group>/<version>/<resource or namespaces>/...
    let (Some("apis"), Some(group), Some(version), Some(_)) = (segs.next(), segs.next(), segs.next(), segs.next())
    else {
        return None;
    };
    rkube_api::custom::deprecation_of(group, version)
}

fn value_response(code: u16, v: &Value) -> Response {
    json_response(code, Bytes::from(serde_json::to_vec(v).unwrap_or_default()), &[])
}

/// Renders an API error as a Status response.
pub fn error_response(err: &ApiError) -> Response {
    value_response(err.code(), &err.to_status())
}

/// A response in the negotiated representation.
fn rendered_response(code: u16, r: negotiate::Rendered, warnings: &[String]) -> Response {
    let mut resp = json_response(code, r.body, warnings);
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(r.content_type));
    resp
}

fn outcome_response(out: Output, res: &ResourceInfo, o: Outcome) -> Result<Response, ApiError> {
    Ok(rendered_response(o.code, negotiate::object(out, res, &o.object)?, &o.warnings))
}

/// What a path addresses.
#[derive(Debug)]
enum Target {
    Discovery(Value),
    Collection { res: &'static ResourceInfo, namespace: Option<String>, watch: bool },
    Object { res: &'static ResourceInfo, namespace: Option<String>, name: String, sub: Option<String>, watch: bool },
}

fn not_found_path(path: &str) -> ApiError {
    ApiError::NotFound { resource: String::new(), name: path.to_string() }
}

/// Parses `/api/v1/...` and `/apis/{group}/{version}/...`.
fn parse_path(path: &str) -> Result<Target, ApiError> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').filter(|s| !s.is_empty()).collect();
    let (group, version, rest) = match segs.as_slice() {
        ["api", version, rest @ ..] => ("", *version, rest),
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => return Err(not_found_path(path)),
    };
    if rest.is_empty() {
        return discovery::resource_list(group, version).map(Target::Discovery).ok_or_else(|| not_found_path(path));
    }
    // The deprecated `/watch/` path prefix is the same as `?watch=true`.
    let (watch, rest) = match rest {
        ["watch", tail @ ..] => (true, tail),
        _ => (false, rest),
    };
    let lookup = |plural: &str| registry::lookup(group, version, plural).ok_or_else(|| not_found_path(path));
    let namespaces = |sub: Option<&str>| -> Result<Target, ApiError> {
        let res = lookup("namespaces")?;
        match (rest, sub) {
            ([_, name], None) => Ok(Target::Object { res, namespace: None, name: name.to_string(), sub: None, watch }),
            ([_, name, s], Some(_)) => {
                Ok(Target::Object { res, namespace: None, name: name.to_string(), sub: Some(s.to_string()), watch })
            }
            _ => Err(not_found_path(path)),
        }
    };
    match rest {
        ["namespaces", _] if group.is_empty() => namespaces(None),
        ["namespaces", _, s @ ("status" | "finalize")] if group.is_empty() => namespaces(Some(s)),
        ["namespaces", ns, plural, tail @ ..] => {
            let res = lookup(plural)?;
            if !res.namespaced {
                return Err(not_found_path(path));
            }
            let namespace = Some(ns.to_string());
            match tail {
                [] => Ok(Target::Collection { res, namespace, watch }),
                [name] => Ok(Target::Object { res, namespace, name: name.to_string(), sub: None, watch }),
                [name, sub] => {
                    Ok(Target::Object { res, namespace, name: name.to_string(), sub: Some(sub.to_string()), watch })
                }
                _ => Err(not_found_path(path)),
            }
        }
        [plural, tail @ ..] => {
            let res = lookup(plural)?;
            match tail {
                [] => Ok(Target::Collection { res, namespace: None, watch }),
                // Namespaced objects are only addressable inside their namespace.
                _ if res.namespaced => Err(not_found_path(path)),
                [name] => Ok(Target::Object { res, namespace: None, name: name.to_string(), sub: None, watch }),
                [name, sub] => Ok(Target::Object {
                    res,
                    namespace: None,
                    name: name.to_string(),
                    sub: Some(sub.to_string()),
                    watch,
                }),
                _ => Err(not_found_path(path)),
            }
        }
        [] => Err(not_found_path(path)),
    }
}

fn q<'a>(query: &'a HashMap<String, String>, key: &str) -> &'a str {
    query.get(key).map(String::as_str).unwrap_or("")
}

/// A boolean query parameter, spelled any way Go's strconv.ParseBool accepts (the Python client
/// sends `watch=True`).
fn flag(query: &HashMap<String, String>, key: &str) -> bool {
    matches!(q(query, key), "1" | "t" | "T" | "true" | "TRUE" | "True")
}

fn int(query: &HashMap<String, String>, key: &str) -> Result<Option<i64>, ApiError> {
    match q(query, key) {
        "" => Ok(None),
        s => s.parse().map(Some).map_err(|_| ApiError::BadRequest(format!("invalid value for {key}: {s:?}"))),
    }
}

fn list_options(query: &HashMap<String, String>) -> Result<ListOptions, ApiError> {
    Ok(ListOptions {
        label_selector: q(query, "labelSelector").to_string(),
        field_selector: q(query, "fieldSelector").to_string(),
        resource_version: q(query, "resourceVersion").to_string(),
        resource_version_match: q(query, "resourceVersionMatch").to_string(),
        limit: int(query, "limit")?.unwrap_or(0),
        continue_token: q(query, "continue").to_string(),
        allow_watch_bookmarks: flag(query, "allowWatchBookmarks"),
        send_initial_events: match q(query, "sendInitialEvents") {
            "" => None,
            _ => Some(flag(query, "sendInitialEvents")),
        },
        timeout_seconds: int(query, "timeoutSeconds")?.map(|t| t.max(0) as u64),
    })
}

fn dry_run(query: &HashMap<String, String>) -> Result<bool, ApiError> {
    match q(query, "dryRun") {
        "" => Ok(false),
        "All" => Ok(true),
        other => {
            Err(ApiError::BadRequest(format!("unsupported dryRun value {other:?}; the only supported value is All")))
        }
    }
}

/// Write options from the query; `apply` marks a server-side apply patch, which must name its
/// field manager. Other writes default it from the User-Agent, as Kubernetes does.
fn write_options(
    query: &HashMap<String, String>,
    headers: &HeaderMap,
    default_validation: FieldValidation,
    apply: bool,
) -> Result<WriteOptions, ApiError> {
    use rkube_api::FieldError;
    let options_invalid = |cause: FieldError| ApiError::Invalid {
        kind: "PatchOptions".into(),
        group: "meta.k8s.io".into(),
        name: String::new(),
        causes: vec![cause],
    };
    let mut field_manager = q(query, "fieldManager").to_string();
    if field_manager.chars().count() > 128 || field_manager.chars().any(char::is_control) {
        let value = Value::String(field_manager);
        return Err(options_invalid(FieldError::invalid(
            "fieldManager",
            &value,
            "must be at most 128 printable characters",
        )));
    }
    if field_manager.is_empty() {
        if apply {
            return Err(options_invalid(FieldError::required("fieldManager", "is required for apply patch")));
        }
        field_manager =
            rkube_fieldmanager::default_manager_name(headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()));
    }
    let force = flag(query, "force");
    if force && !apply {
        return Err(options_invalid(FieldError::forbidden("force", "may not be specified for non-apply patch")));
    }
    Ok(WriteOptions {
        dry_run: dry_run(query)?,
        field_manager,
        field_validation: FieldValidation::parse(q(query, "fieldValidation"), default_validation)?,
        force,
        ..Default::default()
    })
}

/// DeleteOptions from the query string and, if present, the body.
fn delete_options(query: &HashMap<String, String>, body: &[u8], format: BodyFormat) -> Result<DeleteOptions, ApiError> {
    let mut opts = DeleteOptions {
        grace_period_seconds: int(query, "gracePeriodSeconds")?,
        propagation_policy: Some(q(query, "propagationPolicy").to_string()).filter(|s| !s.is_empty()),
        dry_run: dry_run(query)?,
        ..Default::default()
    };
    if flag(query, "orphanDependents") && opts.propagation_policy.is_none() {
        opts.propagation_policy = Some("Orphan".into());
    }
    if !body.iter().all(u8::is_ascii_whitespace) {
        let v = codec::decode(body, format)?;
        if let Some(g) = v.get("gracePeriodSeconds").and_then(Value::as_i64) {
            opts.grace_period_seconds = Some(g);
        }
        if let Some(p) = v.get("propagationPolicy").and_then(Value::as_str) {
            opts.propagation_policy = Some(p.to_string());
        }
        if v.get("orphanDependents").and_then(Value::as_bool) == Some(true) && opts.propagation_policy.is_none() {
            opts.propagation_policy = Some("Orphan".into());
        }
        if let Some(uid) = v.pointer("/preconditions/uid").and_then(Value::as_str) {
            opts.precondition_uid = Some(uid.to_string());
        }
        if let Some(rv) = v.pointer("/preconditions/resourceVersion").and_then(Value::as_str) {
            opts.precondition_resource_version = Some(rv.to_string());
        }
        if v.get("dryRun").and_then(Value::as_array).is_some_and(|d| d.iter().any(|x| x == "All")) {
            opts.dry_run = true;
        }
    }
    Ok(opts)
}

fn part_of(res: &ResourceInfo, sub: Option<&str>, path: &str) -> Result<Part, ApiError> {
    match sub {
        None => Ok(Part::Main),
        Some("status") if res.has_status => Ok(Part::Status),
        Some("scale") if res.has_scale => Ok(Part::Scale),
        _ => Err(not_found_path(path)),
    }
}

fn method_not_allowed(method: &Method, path: &str) -> ApiError {
    ApiError::MethodNotAllowed(format!(
        "the server does not allow this method on the requested resource ({method} {path})"
    ))
}

/// The fallback handler for every REST path.
pub async fn handle(State(server): State<Arc<Server>>, mut req: Request) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let started = std::time::Instant::now();
    let resp = match authenticate_and_authorize(&server, &req) {
        Err(e) if crate::nodeproxy::matches(&path) => crate::nodeproxy::refuse(req, &e).await,
        Err(e) => error_response(&e),
        Ok(user) => {
            if let Some(user) = user {
                req.extensions_mut().insert(RequestUser(user));
            }
            if crate::podproxy::matches(&path) {
                crate::podproxy::handle(&server, req).await
            } else if crate::nodeproxy::matches(&path) {
                crate::nodeproxy::handle(&server, req).await
            } else if crate::metrics::matches(&path) {
                serve_metrics(&server, req).await
            } else {
                let mut resp = match dispatch(&server, req).await {
                    Ok(r) => r,
                    Err(e) => error_response(&e),
                };
                if let Some(warning) = deprecation_warning(&path) {
                    add_warnings(&mut resp, &[warning]);
                }
                resp
            }
        }
    };
    server.metrics.observe(method.as_str(), resp.status().as_u16(), started.elapsed());
    tracing::debug!(%method, %path, code = resp.status().as_u16(), elapsed_ms = started.elapsed().as_millis() as u64, "request");
    resp
}

/// The request's user, when authentication is on; 401 or 403 when it may not proceed.
fn authenticate_and_authorize(server: &Server, req: &Request) -> Result<Option<UserInfo>, ApiError> {
    if server.access.is_open() {
        return Ok(None);
    }
    let connection = req.extensions().get::<Arc<Connection>>();
    let certificate = connection.and_then(|c| c.client_certificate.as_ref()).map(|c| c.as_ref());
    let authorization = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    let info = RequestInfo::from_rest(req.method(), req.uri().path(), req.uri().query().unwrap_or_default());
    server.access.check(certificate, authorization, &info).map(Some)
}

/// `metrics.k8s.io` reads (GET only).
async fn serve_metrics(server: &Arc<Server>, req: Request) -> Response {
    if req.method() != Method::GET {
        return error_response(&method_not_allowed(req.method(), req.uri().path()));
    }
    let query: HashMap<String, String> = Query::try_from_uri(req.uri()).map(|Query(q)| q).unwrap_or_default();
    let selector = query.get("labelSelector").cloned().unwrap_or_default();
    let path = req.uri().path().to_string();
    drop(req);
    match crate::metrics::serve(server, &path, &selector).await {
        Ok(v) => value_response(200, &v),
        Err(e) => error_response(&e),
    }
}

async fn read_body(server: &Server, body: Body) -> Result<Bytes, ApiError> {
    let limit = server.config.max_request_body_bytes;
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        let too_large = std::error::Error::source(&e).is_some_and(|s| s.to_string().contains("length limit"))
            || e.to_string().contains("length limit");
        if too_large {
            ApiError::RequestEntityTooLarge(format!("Request entity too large: limit is {limit}"))
        } else {
            ApiError::BadRequest(format!("reading the request body: {e}"))
        }
    })
}

async fn dispatch(server: &Arc<Server>, req: Request) -> Result<Response, ApiError> {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_string();
    match (parts.method.clone(), path.as_str()) {
        (Method::GET, "/healthz" | "/livez") => return Ok(text(200, "ok")),
        (Method::GET, "/readyz") => {
            return Ok(if server.ready() { text(200, "ok") } else { text(503, "etcd watch cache not ready") });
        }
        (Method::GET, "/version") => return Ok(value_response(200, &discovery::version())),
        (Method::GET, p @ ("/api" | "/apis"))
            if discovery::wants_aggregated(header_str(&parts.headers, header::ACCEPT)) =>
        {
            let mut resp = value_response(200, &discovery::aggregated(p == "/api"));
            resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(discovery::AGGREGATED_MEDIA_TYPE));
            return Ok(resp);
        }
        (
            Method::POST,
            crate::reviews::ACCESS_REVIEWS
            | crate::reviews::RULES_REVIEWS
            | crate::reviews::SUBJECT_REVIEWS
            | crate::reviews::SUBJECT_ACCESS_REVIEWS
            | crate::reviews::TOKEN_REVIEWS,
        ) => {
            let user = parts.extensions.get::<RequestUser>().map(|u| &u.0);
            let body = read_body(server, body).await?;
            let format = BodyFormat::from_content_type(header_str(&parts.headers, header::CONTENT_TYPE))?;
            let review = codec::decode(&body, format)?;
            let answer = match path.as_str() {
                crate::reviews::ACCESS_REVIEWS => crate::reviews::access_review(&server.access, user, review)?,
                crate::reviews::RULES_REVIEWS => crate::reviews::rules_review(&server.access, user, review)?,
                crate::reviews::SUBJECT_ACCESS_REVIEWS => {
                    crate::reviews::subject_access_review(&server.access, review)?
                }
                crate::reviews::TOKEN_REVIEWS => crate::reviews::token_review(&server.access, review)?,
                _ => crate::reviews::subject_review(user),
            };
            return Ok(value_response(201, &answer));
        }
        (Method::GET, "/api") => {
            return Ok(value_response(200, &discovery::legacy_versions(&server.advertise_address)));
        }
        (Method::GET, "/apis") => return Ok(value_response(200, &discovery::group_list())),
        (Method::GET, "/metrics") => return Ok(text(200, &server.metrics_text().await)),
        (Method::GET, p) if p.starts_with("/openapi/") => {
            let doc = crate::openapi::document(p, header_str(&parts.headers, header::ACCEPT))
                .await
                .ok_or_else(|| not_found_path(p))??;
            let mut resp = json_response(200, doc.body, &[]);
            if let Some(hash) = doc.hash
                && let Ok(etag) = HeaderValue::from_str(&format!("\"{hash}\""))
            {
                resp.headers_mut().insert(header::ETAG, etag);
                resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("public, immutable"));
            }
            return Ok(resp);
        }
        (Method::GET, p) if p.starts_with("/apis/") && p.trim_matches('/').split('/').count() == 2 => {
            let group = p.trim_matches('/').split('/').nth(1).unwrap_or("");
            return discovery::group(group).map(|g| value_response(200, &g)).ok_or_else(|| not_found_path(p));
        }
        _ => {}
    }
    let query: HashMap<String, String> = Query::try_from_uri(&parts.uri)
        .map(|Query(q)| q)
        .map_err(|e| ApiError::BadRequest(format!("invalid query: {e}")))?;
    let target = parse_path(&path)?;
    let headers = &parts.headers;
    // PATCH bodies are typed by their patch media type, checked where the patch is applied.
    let format = if parts.method == Method::PATCH {
        BodyFormat::Json
    } else {
        BodyFormat::from_content_type(header_str(headers, header::CONTENT_TYPE))?
    };
    let registry = &server.registry;
    // kubectl asks for Strict itself; other clients get Kubernetes' server default, Warn.
    let default_validation = FieldValidation::Warn;
    let method = parts.method;
    let out = match &target {
        Target::Discovery(_) => Output::Json,
        // Custom resources have no protobuf form; Kubernetes answers JSON for them.
        Target::Collection { res, .. } | Target::Object { res, .. } if res.custom => {
            match negotiate::output(header_str(headers, header::ACCEPT), q(&query, "includeObject"))? {
                Output::Protobuf => Output::Json,
                other => other,
            }
        }
        _ => negotiate::output(header_str(headers, header::ACCEPT), q(&query, "includeObject"))?,
    };
    match target {
        Target::Discovery(doc) if method == Method::GET => Ok(value_response(200, &doc)),
        Target::Discovery(_) => Err(method_not_allowed(&method, &path)),
        Target::Collection { res, namespace, watch: path_watch } => {
            let ns = namespace.as_deref();
            match method {
                Method::GET if path_watch || flag(&query, "watch") => {
                    let opts = list_options(&query)?;
                    watch_response(server, res, ns, &opts, out).await
                }
                Method::GET => {
                    let body = registry.list(res, ns, &list_options(&query)?).await?;
                    Ok(rendered_response(200, negotiate::list(out, res, body)?, &[]))
                }
                Method::POST => {
                    if res.namespaced && ns.is_none() {
                        return Err(method_not_allowed(&method, &path));
                    }
                    let body = read_body(server, body).await?;
                    let mut obj = codec::decode(&body, format)?;
                    crate::access::admit_node_create(parts.extensions.get::<RequestUser>().map(|u| &u.0), res, &obj)?;
                    if crate::csr::is_csr(res) {
                        crate::csr::prepare_create(&mut obj, parts.extensions.get::<RequestUser>().map(|u| &u.0))?;
                    }
                    outcome_response(
                        out,
                        res,
                        registry
                            .create(res, ns, obj, &write_options(&query, headers, default_validation, false)?)
                            .await?,
                    )
                }
                Method::DELETE => {
                    let body = read_body(server, body).await?;
                    let opts = delete_options(&query, &body, format)?;
                    Ok(json_response(
                        200,
                        registry.delete_collection(res, ns, &list_options(&query)?, &opts).await?,
                        &[],
                    ))
                }
                _ => Err(method_not_allowed(&method, &path)),
            }
        }
        Target::Object { res, namespace, name, sub, watch: path_watch } => {
            let ns = namespace.as_deref();
            if path_watch || (method == Method::GET && sub.is_none() && flag(&query, "watch")) {
                // A watch on one object is a collection watch narrowed to its name.
                let mut opts = list_options(&query)?;
                opts.narrow_to_name(&name);
                return watch_response(server, res, ns, &opts, out).await;
            }
            let sub_ref = sub.as_deref();
            match (method.clone(), sub_ref) {
                (Method::POST, Some("binding")) if res.kind == "Pod" && res.group.is_empty() => {
                    let body = read_body(server, body).await?;
                    let binding = codec::decode(&body, format)?;
                    let status = registry
                        .bind(
                            ns.unwrap_or("default"),
                            &name,
                            binding,
                            &write_options(&query, headers, default_validation, false)?,
                        )
                        .await?;
                    Ok(value_response(201, &status))
                }
                (Method::POST, Some("eviction")) if res.kind == "Pod" && res.group.is_empty() => {
                    let body = read_body(server, body).await?;
                    let eviction = codec::decode(&body, format)?;
                    Ok(crate::eviction::respond(server, ns.unwrap_or("default"), &name, eviction, dry_run(&query)?)
                        .await)
                }
                (Method::POST, Some("token")) if res.kind == "ServiceAccount" && res.group.is_empty() => {
                    let body = read_body(server, body).await?;
                    let request = codec::decode(&body, format)?;
                    let user = parts.extensions.get::<RequestUser>().map(|u| &u.0);
                    let answer =
                        crate::tokenrequest::create_token(server, user, ns.unwrap_or("default"), &name, request)
                            .await?;
                    Ok(value_response(201, &answer))
                }
                (Method::PUT, Some("finalize")) if res.kind == "Namespace" && res.group.is_empty() => {
                    let body = read_body(server, body).await?;
                    let obj = codec::decode(&body, format)?;
                    outcome_response(out, res, crate::namespace::finalize(registry, &name, obj).await?)
                }
                (Method::PUT, Some(sub @ ("approval" | "status"))) if crate::csr::is_csr(res) => {
                    let body = read_body(server, body).await?;
                    let obj = codec::decode(&body, format)?;
                    let user = parts.extensions.get::<RequestUser>().map(|u| &u.0);
                    let opts = write_options(&query, headers, default_validation, false)?;
                    let outcome = if sub == "approval" {
                        crate::csr::update_approval(server, res, &name, obj, user, &opts).await?
                    } else {
                        crate::csr::update_status(server, res, &name, obj, user, &opts).await?
                    };
                    outcome_response(out, res, outcome)
                }
                (Method::GET, Some("approval")) if crate::csr::is_csr(res) => {
                    let obj = registry.get_part(res, ns, &name, Part::Main).await?;
                    Ok(rendered_response(200, negotiate::object(out, res, &obj)?, &[]))
                }
                (Method::GET, s) => {
                    let part = part_of(res, s, &path)?;
                    let obj = registry.get_part(res, ns, &name, part).await?;
                    Ok(rendered_response(200, negotiate::object(out, res, &obj)?, &[]))
                }
                (Method::PUT, s) => {
                    let part = part_of(res, s, &path)?;
                    let body = read_body(server, body).await?;
                    let obj = codec::decode(&body, format)?;
                    outcome_response(
                        out,
                        res,
                        registry
                            .update(
                                res,
                                ns,
                                &name,
                                obj,
                                part,
                                &write_options(&query, headers, default_validation, false)?,
                            )
                            .await?,
                    )
                }
                (Method::PATCH, s) => {
                    let part = part_of(res, s, &path)?;
                    let body = read_body(server, body).await?;
                    let ct = header_str(headers, header::CONTENT_TYPE);
                    let apply = ct.split(';').next().is_some_and(|t| t.trim() == "application/apply-patch+yaml");
                    let opts = write_options(&query, headers, default_validation, apply)?;
                    outcome_response(out, res, registry.patch(res, ns, &name, ct, &body, part, &opts).await?)
                }
                (Method::DELETE, None) => {
                    let body = read_body(server, body).await?;
                    let opts = delete_options(&query, &body, format)?;
                    outcome_response(out, res, registry.delete(res, ns, &name, &opts).await?)
                }
                _ => Err(method_not_allowed(&method, &path)),
            }
        }
    }
}

/// A watch as a stream of newline-delimited JSON events (or protobuf frames).
async fn watch_response(
    server: &Server,
    res: &'static ResourceInfo,
    ns: Option<&str>,
    opts: &ListOptions,
    out: Output,
) -> Result<Response, ApiError> {
    let stream =
        watch::watch(&server.registry, res, ns, opts, server.config.watch_bookmark_interval, server.shutdown.clone())
            .await?;
    let body = Body::from_stream(
        stream.map(move |ev| Ok::<_, std::convert::Infallible>(negotiate::watch_frame(out, res, &ev))),
    );
    let mut resp = Response::new(body);
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(negotiate::watch_content_type(out)));
    Ok(resp)
}

fn header_str(headers: &HeaderMap, name: header::HeaderName) -> &str {
    headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
}

fn text(code: u16, body: &str) -> Response {
    let mut resp = (StatusCode::from_u16(code).unwrap_or(StatusCode::OK), body.to_string()).into_response();
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_resolve_like_kubernetes() {
        match parse_path("/api/v1/namespaces/default/pods/web/status").unwrap() {
            Target::Object { res, namespace, name, sub, .. } => {
                assert_eq!(
                    (res.plural, namespace.as_deref(), name.as_str(), sub.as_deref()),
                    ("pods", Some("default"), "web", Some("status"))
                );
            }
            other => panic!("{other:?}"),
        }
        match parse_path("/api/v1/namespaces/kube-system").unwrap() {
            Target::Object { res, namespace, name, .. } => {
                assert_eq!((res.plural, namespace, name.as_str()), ("namespaces", None, "kube-system"))
            }
            other => panic!("{other:?}"),
        }
        match parse_path("/api/v1/namespaces/x/finalize").unwrap() {
            Target::Object { sub, .. } => assert_eq!(sub.as_deref(), Some("finalize")),
            other => panic!("{other:?}"),
        }
        assert!(matches!(parse_path("/apis/apps/v1/deployments").unwrap(), Target::Collection { namespace: None, .. }));
        assert!(matches!(
            parse_path("/api/v1/watch/namespaces/a/pods").unwrap(),
            Target::Collection { watch: true, .. }
        ));
        assert!(matches!(parse_path("/apis/apps/v1").unwrap(), Target::Discovery(_)));
        assert_eq!(parse_path("/api/v1/pods/web").unwrap_err().code(), 404);
        assert_eq!(parse_path("/apis/apps/v1/namespaces/a/nodes").unwrap_err().code(), 404);
        assert_eq!(parse_path("/apis/nope/v1/things").unwrap_err().code(), 404);
    }
}
