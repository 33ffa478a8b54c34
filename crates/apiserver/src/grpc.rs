//! The daemons' gRPC front end: the generic ResourceService over the same registry as REST,
//! with errors as gRPC statuses carrying the Kubernetes Status.

use crate::error::to_grpc;
use crate::objects::{DeleteOptions, FieldValidation, ListOptions, Outcome, Part, WriteOptions};
use crate::requestinfo::RequestInfo;
use crate::{Server, codec, watch};
use futures::{Stream, StreamExt};
use rkube_api::{ApiError, ResourceInfo, registry};
use rkube_rpc::v1::{self as pb, resource_service_server::ResourceService};
use serde_json::Value;
use std::pin::Pin;
use std::sync::Arc;
use tonic::{Request, Response, Status};

/// The ResourceService implementation.
#[derive(Clone)]
pub struct Service(pub Arc<Server>);

type Result<T> = std::result::Result<T, Status>;

fn resolve(r: Option<&pb::ResourceRef>) -> std::result::Result<(&'static ResourceInfo, Option<String>), ApiError> {
    let r = r.ok_or_else(|| ApiError::BadRequest("ref is required".into()))?;
    let res = registry::lookup(&r.group, &r.version, &r.resource).ok_or_else(|| ApiError::NotFound {
        resource: String::new(),
        name: format!("{}/{}/{}", r.group, r.version, r.resource),
    })?;
    let ns = if res.namespaced && !r.namespace.is_empty() { Some(r.namespace.clone()) } else { None };
    Ok((res, ns))
}

fn object_response(v: &Value, warnings: Vec<String>) -> pb::ObjectResponse {
    pb::ObjectResponse {
        object: Some(pb::Object {
            data: serde_json::to_vec(v).unwrap_or_default(),
            content_type: "application/json".into(),
        }),
        warnings,
    }
}

fn outcome(o: Outcome) -> pb::ObjectResponse {
    object_response(&o.object, o.warnings)
}

fn decode_object(o: Option<&pb::Object>) -> std::result::Result<Value, ApiError> {
    let o = o.ok_or_else(|| ApiError::BadRequest("object is required".into()))?;
    let format = codec::BodyFormat::from_content_type(&o.content_type)?;
    codec::decode(&o.data, format)
}

fn write_options(o: Option<&pb::WriteOptions>) -> std::result::Result<WriteOptions, ApiError> {
    let o = o.cloned().unwrap_or_default();
    Ok(WriteOptions {
        dry_run: o.dry_run,
        field_manager: o.field_manager,
        field_validation: FieldValidation::parse(&o.field_validation, FieldValidation::Ignore)?,
        ..Default::default()
    })
}

fn list_options(o: Option<&pb::ListOptions>) -> ListOptions {
    let o = o.cloned().unwrap_or_default();
    ListOptions {
        label_selector: o.label_selector,
        field_selector: o.field_selector,
        resource_version: o.resource_version,
        resource_version_match: o.resource_version_match,
        limit: o.limit,
        continue_token: o.r#continue,
        allow_watch_bookmarks: o.allow_watch_bookmarks,
        send_initial_events: o.send_initial_events.then_some(true),
        timeout_seconds: (o.timeout_seconds > 0).then_some(o.timeout_seconds as u64),
    }
}

fn part(res: &ResourceInfo, sub: &str) -> std::result::Result<Part, ApiError> {
    match sub {
        "" => Ok(Part::Main),
        "status" if res.has_status => Ok(Part::Status),
        "scale" if res.has_scale => Ok(Part::Scale),
        other => Err(ApiError::NotFound { resource: String::new(), name: format!("{}/{other}", res.plural) }),
    }
}

fn err(e: ApiError) -> Status {
    to_grpc(&e)
}

impl Service {
    /// Authenticates the caller (client certificate, bearer token) and authorizes `verb` on
    /// the resource `r` names (`sub` overriding its subresource), before anything else runs.
    fn allow<T>(
        &self,
        req: &Request<T>,
        verb: &str,
        r: Option<&pb::ResourceRef>,
        sub: Option<&str>,
    ) -> Result<Option<rkube_auth::UserInfo>> {
        if self.0.access.is_open() {
            return Ok(None);
        }
        let (res, ns) = resolve(r).map_err(err)?;
        let r = r.cloned().unwrap_or_default();
        let info = RequestInfo::from_grpc(
            verb,
            res,
            ns.as_deref().unwrap_or_default(),
            &r.name,
            sub.unwrap_or(&r.subresource),
        );
        self.check(req, &info)
    }

    /// Authenticates the caller and authorizes `info`; `None` when access control is off.
    fn check<T>(&self, req: &Request<T>, info: &RequestInfo) -> Result<Option<rkube_auth::UserInfo>> {
        let access = &self.0.access;
        if access.is_open() {
            return Ok(None);
        }
        let connection = req.extensions().get::<Arc<rkube_daemon::serve::Connection>>();
        let certificate = connection.and_then(|c| c.client_certificate.as_ref()).map(|c| c.as_ref());
        let authorization = req.metadata().get("authorization").and_then(|v| v.to_str().ok());
        let user = access.authenticate(certificate, authorization).map_err(err)?;
        access.authorize(&user, info).map_err(err)?;
        Ok(Some(user))
    }

    /// A SubjectAccessReview or TokenReview (a kubelet asking about a caller of its API):
    /// answered, never stored, so it bypasses the registry; `None` for anything else.
    fn review(&self, req: &Request<pb::CreateRequest>) -> Option<Result<Response<pb::ObjectResponse>>> {
        let r = req.get_ref().r#ref.as_ref().filter(|r| r.subresource.is_empty())?;
        let answer: fn(&crate::access::Access, Value) -> std::result::Result<Value, ApiError> =
            match (r.group.as_str(), r.resource.as_str()) {
                ("authorization.k8s.io", "subjectaccessreviews") => crate::reviews::subject_access_review,
                ("authentication.k8s.io", "tokenreviews") => crate::reviews::token_review,
                _ => return None,
            };
        let info = RequestInfo {
            resource_request: true,
            verb: "create".into(),
            api_group: r.group.clone(),
            api_version: r.version.clone(),
            resource: r.resource.clone(),
            ..RequestInfo::default()
        };
        Some((|| {
            self.check(req, &info)?;
            let review = decode_object(req.get_ref().object.as_ref()).map_err(err)?;
            let answer = answer(&self.0.access, review).map_err(err)?;
            Ok(Response::new(object_response(&answer, vec![])))
        })())
    }
}

#[tonic::async_trait]
impl ResourceService for Service {
    async fn get(&self, req: Request<pb::GetRequest>) -> Result<Response<pb::ObjectResponse>> {
        self.allow(&req, "get", req.get_ref().r#ref.as_ref(), None)?;
        let req = req.into_inner();
        let (res, ns) = resolve(req.r#ref.as_ref()).map_err(err)?;
        let r = req.r#ref.unwrap_or_default();
        let p = part(res, &r.subresource).map_err(err)?;
        let obj = self.0.registry.get_part(res, ns.as_deref(), &r.name, p).await.map_err(err)?;
        Ok(Response::new(object_response(&obj, vec![])))
    }

    async fn list(&self, req: Request<pb::ListRequest>) -> Result<Response<pb::ObjectResponse>> {
        self.allow(&req, "list", req.get_ref().r#ref.as_ref(), None)?;
        let req = req.into_inner();
        let (res, ns) = resolve(req.r#ref.as_ref()).map_err(err)?;
        let body = self.0.registry.list(res, ns.as_deref(), &list_options(req.options.as_ref())).await.map_err(err)?;
        Ok(Response::new(pb::ObjectResponse {
            object: Some(pb::Object { data: body.to_vec(), content_type: "application/json".into() }),
            warnings: vec![],
        }))
    }

    async fn create(&self, req: Request<pb::CreateRequest>) -> Result<Response<pb::ObjectResponse>> {
        if let Some(answer) = self.review(&req) {
            return answer;
        }
        let user = self.allow(&req, "create", req.get_ref().r#ref.as_ref(), None)?;
        let req = req.into_inner();
        let (res, ns) = resolve(req.r#ref.as_ref()).map_err(err)?;
        let mut obj = decode_object(req.object.as_ref()).map_err(err)?;
        let opts = write_options(req.options.as_ref()).map_err(err)?;
        let r = req.r#ref.unwrap_or_default();
        if crate::csr::is_csr(res) && r.subresource.is_empty() {
            crate::csr::prepare_create(&mut obj, user.as_ref()).map_err(err)?;
        }
        match r.subresource.as_str() {
            "" => {}
            "binding" if res.kind == "Pod" && res.group.is_empty() => {
                let status =
                    self.0.registry.bind(ns.as_deref().unwrap_or("default"), &r.name, obj, &opts).await.map_err(err)?;
                return Ok(Response::new(object_response(&status, vec![])));
            }
            "token" if res.kind == "ServiceAccount" && res.group.is_empty() => {
                let namespace = ns.as_deref().unwrap_or("default");
                let answer = crate::tokenrequest::create_token(&self.0, user.as_ref(), namespace, &r.name, obj)
                    .await
                    .map_err(err)?;
                return Ok(Response::new(object_response(&answer, vec![])));
            }
            other => {
                return Err(err(ApiError::NotFound {
                    resource: String::new(),
                    name: format!("{}/{other}", res.plural),
                }));
            }
        }
        crate::access::admit_node_create(user.as_ref(), res, &obj).map_err(err)?;
        let o = self.0.registry.create(res, ns.as_deref(), obj, &opts).await.map_err(err)?;
        Ok(Response::new(outcome(o)))
    }

    async fn update(&self, req: Request<pb::UpdateRequest>) -> Result<Response<pb::ObjectResponse>> {
        let user = self.allow(&req, "update", req.get_ref().r#ref.as_ref(), None)?;
        let req = req.into_inner();
        let (res, ns) = resolve(req.r#ref.as_ref()).map_err(err)?;
        let r = req.r#ref.clone().unwrap_or_default();
        if crate::csr::is_csr(res) && matches!(r.subresource.as_str(), "approval" | "status") {
            let obj = decode_object(req.object.as_ref()).map_err(err)?;
            let opts = write_options(req.options.as_ref()).map_err(err)?;
            let o = if r.subresource == "approval" {
                crate::csr::update_approval(&self.0, res, &r.name, obj, user.as_ref(), &opts).await
            } else {
                crate::csr::update_status(&self.0, res, &r.name, obj, user.as_ref(), &opts).await
            };
            return Ok(Response::new(outcome(o.map_err(err)?)));
        }
        let p = part(res, &r.subresource).map_err(err)?;
        let obj = decode_object(req.object.as_ref()).map_err(err)?;
        let opts = write_options(req.options.as_ref()).map_err(err)?;
        let o = self.0.registry.update(res, ns.as_deref(), &r.name, obj, p, &opts).await.map_err(err)?;
        Ok(Response::new(outcome(o)))
    }

    async fn update_status(&self, req: Request<pb::UpdateRequest>) -> Result<Response<pb::ObjectResponse>> {
        let user = self.allow(&req, "update", req.get_ref().r#ref.as_ref(), Some("status"))?;
        let req = req.into_inner();
        let (res, ns) = resolve(req.r#ref.as_ref()).map_err(err)?;
        if !res.has_status {
            return Err(err(ApiError::NotFound { resource: String::new(), name: format!("{}/status", res.plural) }));
        }
        let r = req.r#ref.clone().unwrap_or_default();
        let obj = decode_object(req.object.as_ref()).map_err(err)?;
        let opts = write_options(req.options.as_ref()).map_err(err)?;
        if crate::csr::is_csr(res) {
            let o = crate::csr::update_status(&self.0, res, &r.name, obj, user.as_ref(), &opts).await.map_err(err)?;
            return Ok(Response::new(outcome(o)));
        }
        let o = self.0.registry.update(res, ns.as_deref(), &r.name, obj, Part::Status, &opts).await.map_err(err)?;
        Ok(Response::new(outcome(o)))
    }

    async fn patch(&self, req: Request<pb::PatchRequest>) -> Result<Response<pb::ObjectResponse>> {
        self.allow(&req, "patch", req.get_ref().r#ref.as_ref(), None)?;
        let req = req.into_inner();
        let (res, ns) = resolve(req.r#ref.as_ref()).map_err(err)?;
        let r = req.r#ref.clone().unwrap_or_default();
        let p = part(res, &r.subresource).map_err(err)?;
        let opts = write_options(req.options.as_ref()).map_err(err)?;
        let o = self
            .0
            .registry
            .patch(res, ns.as_deref(), &r.name, &req.patch_type, &req.patch, p, &opts)
            .await
            .map_err(err)?;
        Ok(Response::new(outcome(o)))
    }

    async fn delete(&self, req: Request<pb::DeleteRequest>) -> Result<Response<pb::ObjectResponse>> {
        self.allow(&req, "delete", req.get_ref().r#ref.as_ref(), None)?;
        let req = req.into_inner();
        let (res, ns) = resolve(req.r#ref.as_ref()).map_err(err)?;
        let r = req.r#ref.clone().unwrap_or_default();
        let o = self.0.registry.delete(res, ns.as_deref(), &r.name, &delete_options(&req)).await.map_err(err)?;
        Ok(Response::new(outcome(o)))
    }

    async fn delete_collection(&self, req: Request<pb::DeleteRequest>) -> Result<Response<pb::ObjectResponse>> {
        self.allow(&req, "deletecollection", req.get_ref().r#ref.as_ref(), None)?;
        let req = req.into_inner();
        let (res, ns) = resolve(req.r#ref.as_ref()).map_err(err)?;
        let list_opts = list_options(req.list_options.as_ref());
        let body = self
            .0
            .registry
            .delete_collection(res, ns.as_deref(), &list_opts, &delete_options(&req))
            .await
            .map_err(err)?;
        Ok(Response::new(pb::ObjectResponse {
            object: Some(pb::Object { data: body.to_vec(), content_type: "application/json".into() }),
            warnings: vec![],
        }))
    }

    type WatchStream = Pin<Box<dyn Stream<Item = Result<pb::WatchEvent>> + Send + 'static>>;

    async fn watch(&self, req: Request<pb::ListRequest>) -> Result<Response<Self::WatchStream>> {
        self.allow(&req, "watch", req.get_ref().r#ref.as_ref(), None)?;
        let req = req.into_inner();
        let (res, ns) = resolve(req.r#ref.as_ref()).map_err(err)?;
        let mut opts = list_options(req.options.as_ref());
        let name = req.r#ref.as_ref().map(|r| r.name.clone()).unwrap_or_default();
        if !name.is_empty() {
            opts.narrow_to_name(&name);
        }
        let server = &self.0;
        let stream = watch::watch(
            &server.registry,
            res,
            ns.as_deref(),
            &opts,
            server.config.watch_bookmark_interval,
            server.shutdown.clone(),
        )
        .await
        .map_err(err)?;
        let out = stream.map(|ev| {
            Ok(pb::WatchEvent {
                r#type: ev.kind.to_string(),
                object: Some(pb::Object { data: ev.object.to_vec(), content_type: "application/json".into() }),
            })
        });
        Ok(Response::new(Box::pin(out)))
    }
}

fn delete_options(req: &pb::DeleteRequest) -> DeleteOptions {
    DeleteOptions {
        grace_period_seconds: req.grace_period_seconds,
        propagation_policy: Some(req.propagation_policy.clone()).filter(|s| !s.is_empty()),
        precondition_uid: Some(req.precondition_uid.clone()).filter(|s| !s.is_empty()),
        precondition_resource_version: Some(req.precondition_resource_version.clone()).filter(|s| !s.is_empty()),
        dry_run: req.dry_run,
    }
}
