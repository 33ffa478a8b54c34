//! Who is asking, and whether they may: every REST and gRPC request is authenticated (client
//! certificate, static token, bootstrap token, ServiceAccount JWT) and authorized (the modes
//! of `--authorization-mode`: AlwaysAllow, AlwaysDeny, Node, RBAC) before it reaches the
//! registry. Decisions read only memory: RBAC objects and the node graph are mirrored from the
//! watch cache.

use crate::config::Config;
use crate::mirror::Mirror;
use crate::requestinfo::RequestInfo;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding};
use rkube_api::ApiError;
use rkube_api::registry::{self, ResourceInfo};
use rkube_auth::authn::{ServiceAccountClaims, ServiceAccountTokenVerifier, TokenFile};
use rkube_auth::node::{NodeAuthorizer, NodeGraph, PodReferences, pod_references};
use rkube_auth::rbac::{self, PrivilegedGroups, RbacAuthorizer, RbacSource, Union};
use rkube_auth::{Attributes, Authentication, Authenticator, Authorizer, Decision, UserInfo};
use rkube_storage::WatchCache;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Paths anyone may read, credentials or not (Kubernetes' system:public-info-viewer).
const PUBLIC_PATHS: &[&str] = &["/healthz", "/livez", "/readyz", "/version"];

/// Why the authentication or authorization settings are unusable.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    /// A file named by a flag could not be read or parsed.
    #[error("{flag}: {message}")]
    Flag {
        /// The flag.
        flag: &'static str,
        /// What is wrong.
        message: String,
    },
}

/// The request's authenticated user, put on REST requests for handlers that need it
/// (SelfSubjectAccessReview).
#[derive(Debug, Clone)]
pub struct RequestUser(pub UserInfo);

/// Authentication and authorization of every request.
pub struct Access {
    authenticator: Authenticator,
    authorizer: Box<dyn Authorizer>,
    /// The RBAC authorizer of the chain, for SelfSubjectRulesReview.
    rbac: Option<Arc<RbacAuthorizer<RbacMirror>>>,
    /// Nothing to check: no credential is configured and every mode is AlwaysAllow.
    open: bool,
}

fn resource(plural: &str, group: &str, version: &str) -> &'static ResourceInfo {
    registry::lookup(group, version, plural).unwrap_or_else(|| panic!("{group}/{version} {plural} are served"))
}

impl Access {
    /// Builds the authenticator and the authorizer chain from the flags; mirrors start on
    /// `cache` and stop with `cancel`.
    pub fn new(config: &Config, cache: &Arc<WatchCache>, cancel: &CancellationToken) -> Result<Access, AccessError> {
        let flag =
            |flag: &'static str| move |e: &dyn std::fmt::Display| AccessError::Flag { flag, message: e.to_string() };
        let mut authenticator = Authenticator::new();
        let mut configured = config.tls.client_ca_file.is_some();
        if let Some(path) = &config.token_auth_file {
            let tokens = TokenFile::load(path).map_err(|e| flag("--token-auth-file")(&e))?;
            authenticator = authenticator.with_token_file(tokens);
            configured = true;
        }
        if !config.service_account_key_file.is_empty() {
            let mut pem = String::new();
            for path in &config.service_account_key_file {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| flag("--service-account-key-file")(&format!("{}: {e}", path.display())))?;
                pem.push_str(&text);
                pem.push('\n');
            }
            let verifier = ServiceAccountTokenVerifier::new(
                &pem,
                config.service_account_issuer.clone(),
                config.api_audiences.clone(),
            )
            .map_err(|e| flag("--service-account-key-file")(&e))?;
            let validator_cache = cache.clone();
            authenticator = authenticator.with_service_account_tokens(verifier).with_service_account_validator(
                move |claims: &ServiceAccountClaims| service_account_still_valid(&validator_cache, claims),
            );
            configured = true;
        }
        if config.enable_bootstrap_token_auth {
            let secrets_cache = cache.clone();
            let secrets = resource("secrets", "", "v1");
            authenticator = authenticator.with_bootstrap_tokens(move |id: &str| {
                let key = secrets.key(Some("kube-system"), &rkube_auth::authn::bootstrap_token_secret_name(id));
                let obj = secrets_cache.get(&key)?;
                serde_json::from_slice::<Secret>(&obj.bytes).ok().map(Arc::new)
            });
            configured = true;
        }
        authenticator = authenticator.allow_anonymous(config.anonymous_auth.unwrap_or(!configured));

        let mut chain: Vec<Box<dyn Authorizer>> = Vec::new();
        let mut rbac = None;
        let mut open = !configured;
        for mode in &config.authorization_mode {
            match mode.as_str() {
                "AlwaysAllow" => chain.push(Box::new(AlwaysAllow)),
                "AlwaysDeny" => {
                    open = false;
                    chain.push(Box::new(AlwaysDeny));
                }
                "RBAC" => {
                    open = false;
                    chain.push(Box::new(PrivilegedGroups::default()));
                    let authorizer = Arc::new(RbacAuthorizer::new(RbacMirror::spawn(cache, cancel)));
                    rbac = Some(authorizer.clone());
                    chain.push(Box::new(Shared(authorizer)));
                }
                "Node" => {
                    open = false;
                    chain.push(Box::new(NodeAuthorizer::new(PodGraph::spawn(cache, cancel))));
                }
                other => {
                    return Err(flag("--authorization-mode")(&format!(
                        "unknown mode {other:?} (AlwaysAllow, AlwaysDeny, Node and RBAC are supported)"
                    )));
                }
            }
        }
        Ok(Access { authenticator, authorizer: Box::new(Union(chain)), rbac, open })
    }

    /// Whether requests go unchecked (no credential configured, AlwaysAllow only).
    pub fn is_open(&self) -> bool {
        self.open
    }

    /// The user behind a request: 401 when a credential is presented but invalid, or none is
    /// and anonymous requests are off.
    pub fn authenticate(
        &self,
        client_certificate: Option<&[u8]>,
        authorization: Option<&str>,
    ) -> Result<UserInfo, ApiError> {
        match self.authenticator.authenticate(client_certificate, authorization) {
            Authentication::Rejected(reason) => {
                tracing::debug!(%reason, "request not authenticated");
                Err(ApiError::Unauthorized("Unauthorized".into()))
            }
            auth => Ok(auth.user().unwrap_or_else(UserInfo::anonymous)),
        }
    }

    /// The user a bearer token names, or why it names nobody (TokenReview).
    pub fn review_token(&self, token: &str) -> Result<UserInfo, String> {
        match self.authenticator.authenticate_token(token, jiff::Timestamp::now()) {
            Authentication::Authenticated(user) => Ok(user),
            Authentication::Rejected(reason) => Err(reason),
            Authentication::Anonymous => Err("invalid bearer token".into()),
        }
    }

    /// Whether `user` may do what `info` asks: Ok, or 403 naming the verb and resource.
    pub fn authorize(&self, user: &UserInfo, info: &RequestInfo) -> Result<(), ApiError> {
        if is_public(info) {
            return Ok(());
        }
        let attrs = attributes(user, info);
        match self.authorizer.authorize(&attrs) {
            Decision::Allow(_) => Ok(()),
            Decision::Deny(reason) | Decision::NoOpinion(reason) => {
                tracing::debug!(user = %user.name, verb = %info.verb, resource = %info.resource, path = %info.path, %reason, "request forbidden");
                Err(ApiError::Forbidden { message: rbac::forbidden_status_message(&attrs, &reason), target: None })
            }
        }
    }

    /// The RBAC rules that apply to `user` in `namespace`, and the errors met collecting them
    /// (SelfSubjectRulesReview); None without the RBAC mode.
    pub fn rules_for(&self, user: &UserInfo, namespace: &str) -> Option<(Vec<PolicyRule>, Vec<String>)> {
        self.rbac.as_ref().map(|r| r.rules_for(user, namespace))
    }

    /// Whether `user` may do `attrs` (SelfSubjectAccessReview).
    pub fn decide(&self, attrs: &Attributes) -> Decision {
        self.authorizer.authorize(attrs)
    }

    /// Authenticates and authorizes in one step.
    pub fn check(
        &self,
        client_certificate: Option<&[u8]>,
        authorization: Option<&str>,
        info: &RequestInfo,
    ) -> Result<UserInfo, ApiError> {
        if is_public(info) {
            return Ok(UserInfo::anonymous());
        }
        let user = self.authenticate(client_certificate, authorization)?;
        self.authorize(&user, info)?;
        Ok(user)
    }
}

/// The annotation that marks a mirror pod (a static pod's copy in the API).
const MIRROR_POD_ANNOTATION: &str = "kubernetes.io/config.mirror";

/// Kubernetes' NodeRestriction admission, for what the Node authorizer cannot see (request
/// bodies): a kubelet may create only mirror pods, bound to its own node.
pub fn admit_node_create(user: Option<&UserInfo>, res: &ResourceInfo, obj: &serde_json::Value) -> Result<(), ApiError> {
    let Some(node) = user.and_then(|u| u.node_name()) else { return Ok(()) };
    if res.group.is_empty() && res.kind == "Pod" {
        let forbidden = |message: String| Err(ApiError::Forbidden { message, target: None });
        if obj.pointer(&format!("/metadata/annotations/{}", MIRROR_POD_ANNOTATION.replace('/', "~1"))).is_none() {
            return forbidden(format!(
                "pod does not have \"{MIRROR_POD_ANNOTATION}\" annotation, node \"{node}\" can only create mirror pods"
            ));
        }
        if obj.pointer("/spec/nodeName").and_then(|n| n.as_str()) != Some(node) {
            return forbidden(format!("node \"{node}\" can only create pods with spec.nodeName set to itself"));
        }
    }
    Ok(())
}

/// NodeRestriction for TokenRequest: a kubelet may get tokens bound only to pods on its node.
pub fn admit_node_token(user: Option<&UserInfo>, pod_node: Option<&str>) -> Result<(), ApiError> {
    match user.and_then(|u| u.node_name()) {
        Some(node) if pod_node != Some(node) => Err(ApiError::Forbidden {
            message: format!("node \"{node}\" can only request tokens bound to pods scheduled on itself"),
            target: None,
        }),
        _ => Ok(()),
    }
}

/// Health and version paths, open to anyone with or without credentials.
fn is_public(info: &RequestInfo) -> bool {
    !info.resource_request
        && info.verb == "get"
        && PUBLIC_PATHS
            .iter()
            .any(|p| info.path == *p || info.path.strip_prefix(p).is_some_and(|rest| rest.starts_with('/')))
}

/// The authorization attributes of `info` for `user`.
pub fn attributes(user: &UserInfo, info: &RequestInfo) -> Attributes {
    Attributes {
        user: user.clone(),
        verb: info.verb.clone(),
        namespace: info.namespace.clone(),
        api_group: info.api_group.clone(),
        api_version: info.api_version.clone(),
        resource: info.resource.clone(),
        subresource: info.subresource.clone(),
        name: info.name.clone(),
        path: info.path.clone(),
        resource_request: info.resource_request,
    }
}

/// A ServiceAccount token stays valid while its ServiceAccount (and the pod it is bound to)
/// exist with the UIDs it names: deleting either revokes it.
fn service_account_still_valid(cache: &WatchCache, claims: &ServiceAccountClaims) -> Result<(), String> {
    let accounts = resource("serviceaccounts", "", "v1");
    let account = cache
        .get(&accounts.key(Some(&claims.namespace), &claims.name))
        .and_then(|o| serde_json::from_slice::<ServiceAccount>(&o.bytes).ok())
        .ok_or_else(|| format!("serviceaccounts \"{}\" not found", claims.name))?;
    if !claims.uid.is_empty() && account.metadata.uid.as_deref() != Some(claims.uid.as_str()) {
        return Err(format!("the ServiceAccount {} was recreated", claims.name));
    }
    if let Some((pod, uid)) = &claims.pod {
        let pods = resource("pods", "", "v1");
        let found = cache
            .get(&pods.key(Some(&claims.namespace), pod))
            .and_then(|o| serde_json::from_slice::<Pod>(&o.bytes).ok())
            .ok_or_else(|| format!("pods \"{pod}\" not found"))?;
        if found.metadata.uid.as_deref() != Some(uid.as_str()) {
            return Err(format!("the pod {pod} the token is bound to was recreated"));
        }
    }
    Ok(())
}

/// An authorizer the chain shares with [`Access`] itself.
struct Shared<A>(Arc<A>);

impl<A: Authorizer> Authorizer for Shared<A> {
    fn authorize(&self, attrs: &Attributes) -> Decision {
        self.0.authorize(attrs)
    }
}

struct AlwaysAllow;

impl Authorizer for AlwaysAllow {
    fn authorize(&self, _: &Attributes) -> Decision {
        Decision::Allow(String::new())
    }
}

struct AlwaysDeny;

impl Authorizer for AlwaysDeny {
    fn authorize(&self, _: &Attributes) -> Decision {
        Decision::Deny("Everything is forbidden.".into())
    }
}

/// RBAC objects from the watch cache.
struct RbacMirror {
    roles: Mirror<Role>,
    role_bindings: Mirror<RoleBinding>,
    cluster_roles: Mirror<ClusterRole>,
    cluster_role_bindings: Mirror<ClusterRoleBinding>,
}

impl RbacMirror {
    fn spawn(cache: &Arc<WatchCache>, cancel: &CancellationToken) -> RbacMirror {
        let group = "rbac.authorization.k8s.io";
        RbacMirror {
            roles: Mirror::spawn(cache.clone(), resource("roles", group, "v1"), cancel.clone()),
            role_bindings: Mirror::spawn(cache.clone(), resource("rolebindings", group, "v1"), cancel.clone()),
            cluster_roles: Mirror::spawn(cache.clone(), resource("clusterroles", group, "v1"), cancel.clone()),
            cluster_role_bindings: Mirror::spawn(
                cache.clone(),
                resource("clusterrolebindings", group, "v1"),
                cancel.clone(),
            ),
        }
    }
}

impl RbacSource for RbacMirror {
    fn role(&self, namespace: &str, name: &str) -> Option<Arc<Role>> {
        self.roles.get(Some(namespace), name)
    }

    fn role_bindings(&self, namespace: &str) -> Vec<Arc<RoleBinding>> {
        self.role_bindings.in_namespace(namespace)
    }

    fn cluster_role(&self, name: &str) -> Option<Arc<ClusterRole>> {
        self.cluster_roles.get(None, name)
    }

    fn cluster_role_bindings(&self) -> Vec<Arc<ClusterRoleBinding>> {
        self.cluster_role_bindings.all()
    }
}

/// A pod as the Node authorizer sees it: its node and what it references.
struct PodEntry {
    node: String,
    references: Arc<PodReferences>,
}

fn pod_entry(bytes: &[u8]) -> Result<PodEntry, String> {
    let pod: Pod = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    let node = pod.spec.as_ref().and_then(|s| s.node_name.clone()).unwrap_or_default();
    Ok(PodEntry { node, references: Arc::new(pod_references(&pod)) })
}

fn claim_volume(bytes: &[u8]) -> Result<String, String> {
    let claim: PersistentVolumeClaim = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    Ok(claim.spec.and_then(|s| s.volume_name).unwrap_or_default())
}

/// The node graph from the watch cache: pods with their node, claims with their volume.
struct PodGraph {
    pods: Mirror<PodEntry>,
    claims: Mirror<String>,
}

impl PodGraph {
    fn spawn(cache: &Arc<WatchCache>, cancel: &CancellationToken) -> PodGraph {
        PodGraph {
            pods: Mirror::spawn_with(
                cache.clone(),
                resource("pods", "", "v1"),
                pod_entry,
                Some(|p: &PodEntry| p.node.clone()),
                cancel.clone(),
            ),
            claims: Mirror::spawn_with(
                cache.clone(),
                resource("persistentvolumeclaims", "", "v1"),
                claim_volume,
                None,
                cancel.clone(),
            ),
        }
    }
}

impl NodeGraph for PodGraph {
    fn pods_on_node(&self, node: &str) -> Vec<Arc<PodReferences>> {
        self.pods.indexed(node).into_iter().map(|p| p.references.clone()).collect()
    }

    fn persistent_volume_of_claim(&self, namespace: &str, claim: &str) -> Option<String> {
        self.claims.get(Some(namespace), claim).map(|v| (*v).clone()).filter(|v| !v.is_empty())
    }
}
