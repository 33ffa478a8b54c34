//! Authorization: the request [`Attributes`], the [`Decision`] authorizers return, RBAC
//! ([`RbacAuthorizer`] over an [`RbacSource`]), aggregated ClusterRoles ([`aggregate`]),
//! the default policy ([`bootstrap_policy`]) and Kubernetes' exact 403 wording
//! ([`forbidden_message`]).
//!
//! The API server's chain is, like Kubernetes': [`PrivilegedGroups`] (`system:masters`),
//! then [`crate::node::NodeAuthorizer`], then [`RbacAuthorizer`], combined with [`Union`].

mod aggregate;
mod bootstrap;
mod rules;

pub use aggregate::{aggregate, aggregate_in_place, label_selector_matches};
pub use bootstrap::{
    AGGREGATE_TO_ADMIN, AGGREGATE_TO_EDIT, AGGREGATE_TO_VIEW, AUTOUPDATE_ANNOTATION, BOOTSTRAPPING_LABEL,
    KUBELET_API_CLIENT, bootstrap_policy, node_rules,
};
pub use rules::{rule_allows, rules_allow};

use crate::authn::{MASTERS_GROUP, UserInfo, service_account_username};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, Subject};
use std::collections::BTreeMap;
use std::sync::Arc;

/// What a request wants to do, as Kubernetes' `authorizer.Attributes`. Empty strings mean
/// "not set" (cluster scope, core group, no name...).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attributes {
    /// Who asks.
    pub user: UserInfo,
    /// The Kubernetes verb: get, list, watch, create, update, patch, delete, deletecollection,
    /// or a special one (impersonate, bind, escalate, use); for non-resource requests the
    /// lower-case HTTP method (get, post, put, delete...).
    pub verb: String,
    /// The namespace, empty for cluster-scoped requests and lists across namespaces.
    pub namespace: String,
    /// The API group, empty for the core group.
    pub api_group: String,
    /// The API version (informational; RBAC ignores it).
    pub api_version: String,
    /// The resource, e.g. `pods`.
    pub resource: String,
    /// The subresource, e.g. `status`, `log`.
    pub subresource: String,
    /// The object name, empty for list/create/deletecollection.
    pub name: String,
    /// The URL path, for non-resource requests.
    pub path: String,
    /// Whether this is a resource request (`/api/...`, `/apis/...` on a resource) or a
    /// non-resource URL (`/healthz`, `/version`, discovery).
    pub resource_request: bool,
}

impl Attributes {
    /// A resource request: `verb` on `resource` in `api_group` (cluster scope, no name;
    /// chain [`Attributes::in_namespace`], [`Attributes::named`], [`Attributes::with_subresource`]).
    pub fn resource(user: UserInfo, verb: &str, api_group: &str, resource: &str) -> Self {
        Attributes {
            user,
            verb: verb.into(),
            api_group: api_group.into(),
            resource: resource.into(),
            resource_request: true,
            ..Default::default()
        }
    }

    /// A non-resource request: `verb` (lower-case HTTP method) on `path`.
    pub fn non_resource(user: UserInfo, verb: &str, path: &str) -> Self {
        Attributes { user, verb: verb.into(), path: path.into(), resource_request: false, ..Default::default() }
    }

    /// The same request in `namespace`.
    pub fn in_namespace(mut self, namespace: &str) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// The same request on the object `name`.
    pub fn named(mut self, name: &str) -> Self {
        self.name = name.into();
        self
    }

    /// The same request on `subresource`.
    pub fn with_subresource(mut self, subresource: &str) -> Self {
        self.subresource = subresource.into();
        self
    }

    /// `resource` or `resource/subresource`, the form RBAC rules name.
    pub fn combined_resource(&self) -> String {
        if self.subresource.is_empty() {
            self.resource.clone()
        } else {
            format!("{}/{}", self.resource, self.subresource)
        }
    }
}

/// An authorizer's answer. The string is a reason for logs and audit; for a request that ends
/// up not allowed, a non-empty reason is appended to the 403 message
/// (see [`forbidden_status_message`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Allowed; the reason names what allowed it.
    Allow(String),
    /// Explicitly denied; later authorizers are not asked.
    Deny(String),
    /// This authorizer has no say; ask the next one (not allowed if none allows).
    NoOpinion(String),
}

impl Decision {
    /// Whether the request may proceed.
    pub fn is_allowed(&self) -> bool {
        matches!(self, Decision::Allow(_))
    }

    /// The reason text.
    pub fn reason(&self) -> &str {
        match self {
            Decision::Allow(r) | Decision::Deny(r) | Decision::NoOpinion(r) => r,
        }
    }
}

/// Something that decides on requests.
pub trait Authorizer: Send + Sync {
    /// The decision on `attrs`.
    fn authorize(&self, attrs: &Attributes) -> Decision;
}

/// Asks each authorizer in order; the first Allow or Deny wins, otherwise NoOpinion with the
/// non-empty reasons joined by newlines (Kubernetes' union authorizer).
pub struct Union(pub Vec<Box<dyn Authorizer>>);

impl Authorizer for Union {
    fn authorize(&self, attrs: &Attributes) -> Decision {
        let mut reasons = Vec::new();
        for authorizer in &self.0 {
            match authorizer.authorize(attrs) {
                Decision::NoOpinion(reason) => {
                    if !reason.is_empty() {
                        reasons.push(reason);
                    }
                }
                decided => return decided,
            }
        }
        Decision::NoOpinion(reasons.join("\n"))
    }
}

/// Allows everything for members of the given groups (`system:masters` by default): the
/// break-glass path that works even when RBAC objects are broken.
#[derive(Debug, Clone)]
pub struct PrivilegedGroups(pub Vec<String>);

impl Default for PrivilegedGroups {
    fn default() -> Self {
        PrivilegedGroups(vec![MASTERS_GROUP.to_string()])
    }
}

impl Authorizer for PrivilegedGroups {
    fn authorize(&self, attrs: &Attributes) -> Decision {
        match self.0.iter().find(|g| attrs.user.in_group(g)) {
            Some(group) => Decision::Allow(format!("user is in privileged group {group:?}")),
            None => Decision::NoOpinion(String::new()),
        }
    }
}

/// Where RBAC objects come from; the API server backs it with its watch cache. Lookups are
/// synchronous and called on every request, so they must be in-memory.
pub trait RbacSource: Send + Sync {
    /// The Role `namespace/name`.
    fn role(&self, namespace: &str, name: &str) -> Option<Arc<Role>>;
    /// All RoleBindings in `namespace`.
    fn role_bindings(&self, namespace: &str) -> Vec<Arc<RoleBinding>>;
    /// The ClusterRole `name`.
    fn cluster_role(&self, name: &str) -> Option<Arc<ClusterRole>>;
    /// All ClusterRoleBindings.
    fn cluster_role_bindings(&self) -> Vec<Arc<ClusterRoleBinding>>;
}

/// A fixed in-memory [`RbacSource`], for tests and for a server without a cache yet.
#[derive(Debug, Clone, Default)]
pub struct StaticRbacSource {
    roles: BTreeMap<(String, String), Arc<Role>>,
    role_bindings: BTreeMap<String, Vec<Arc<RoleBinding>>>,
    cluster_roles: BTreeMap<String, Arc<ClusterRole>>,
    cluster_role_bindings: Vec<Arc<ClusterRoleBinding>>,
}

impl StaticRbacSource {
    /// A source holding these objects (Roles and RoleBindings without a namespace are ignored).
    pub fn new(
        roles: Vec<Role>,
        role_bindings: Vec<RoleBinding>,
        cluster_roles: Vec<ClusterRole>,
        cluster_role_bindings: Vec<ClusterRoleBinding>,
    ) -> Self {
        let mut source = StaticRbacSource::default();
        for role in roles {
            if let (Some(ns), Some(name)) = (role.metadata.namespace.clone(), role.metadata.name.clone()) {
                source.roles.insert((ns, name), Arc::new(role));
            }
        }
        for binding in role_bindings {
            if let Some(ns) = binding.metadata.namespace.clone() {
                source.role_bindings.entry(ns).or_default().push(Arc::new(binding));
            }
        }
        for role in cluster_roles {
            if let Some(name) = role.metadata.name.clone() {
                source.cluster_roles.insert(name, Arc::new(role));
            }
        }
        source.cluster_role_bindings = cluster_role_bindings.into_iter().map(Arc::new).collect();
        source
    }
}

impl RbacSource for StaticRbacSource {
    fn role(&self, namespace: &str, name: &str) -> Option<Arc<Role>> {
        self.roles.get(&(namespace.to_string(), name.to_string())).cloned()
    }
    fn role_bindings(&self, namespace: &str) -> Vec<Arc<RoleBinding>> {
        self.role_bindings.get(namespace).cloned().unwrap_or_default()
    }
    fn cluster_role(&self, name: &str) -> Option<Arc<ClusterRole>> {
        self.cluster_roles.get(name).cloned()
    }
    fn cluster_role_bindings(&self) -> Vec<Arc<ClusterRoleBinding>> {
        self.cluster_role_bindings.clone()
    }
}

/// Role-based access control over an [`RbacSource`]. Allows what some binding of the user
/// grants; otherwise NoOpinion (RBAC never denies), with a reason only when a binding refers
/// to a role that does not exist, as Kubernetes.
///
/// ClusterRoles with an `aggregationRule` are used with the rules they hold: keeping those
/// up to date is [`aggregate`]'s job, run by a controller.
#[derive(Debug, Clone)]
pub struct RbacAuthorizer<S> {
    source: S,
}

impl<S: RbacSource> RbacAuthorizer<S> {
    /// An authorizer reading `source`.
    pub fn new(source: S) -> Self {
        RbacAuthorizer { source }
    }

    /// The source.
    pub fn source(&self) -> &S {
        &self.source
    }

    /// Every rule that applies to `user` in `namespace` (cluster-wide bindings included; an
    /// empty namespace gives only those), for SelfSubjectRulesReview. Also returns the
    /// errors met (missing roles).
    pub fn rules_for(&self, user: &UserInfo, namespace: &str) -> (Vec<PolicyRule>, Vec<String>) {
        let mut rules = Vec::new();
        let mut errors = Vec::new();
        self.visit(user, namespace, &mut |_, rule_set| {
            match rule_set {
                Ok(set) => rules.extend(set.iter().cloned()),
                Err(e) => errors.push(e),
            }
            false
        });
        (rules, errors)
    }

    /// Calls `f(source description, rules or error)` for each binding that applies to `user`,
    /// cluster-wide first; stops when `f` returns true.
    fn visit(&self, user: &UserInfo, namespace: &str, f: &mut BindingVisitor<'_>) {
        for binding in self.source.cluster_role_bindings() {
            let Some(subject) = applies_to(user, binding.subjects.as_deref(), "") else {
                continue;
            };
            let role_ref = &binding.role_ref;
            let rules = if role_ref.kind == "ClusterRole" {
                self.source.cluster_role(&role_ref.name).ok_or_else(|| not_found("clusterrole", &role_ref.name))
            } else {
                Err(format!("invalid ClusterRoleBinding roleRef kind {:?}", role_ref.kind))
            };
            let describe = || {
                format!(
                    "ClusterRoleBinding {} of ClusterRole {} to {}",
                    go_quote(binding.metadata.name.as_deref().unwrap_or_default()),
                    go_quote(&role_ref.name),
                    describe_subject(subject, "")
                )
            };
            let rules = rules.as_ref().map(|r| r.rules.as_deref().unwrap_or_default()).map_err(Clone::clone);
            if f(&describe, rules) {
                return;
            }
        }
        if namespace.is_empty() {
            return;
        }
        for binding in self.source.role_bindings(namespace) {
            let Some(subject) = applies_to(user, binding.subjects.as_deref(), namespace) else {
                continue;
            };
            let role_ref = &binding.role_ref;
            let role = if role_ref.kind == "Role" { self.source.role(namespace, &role_ref.name) } else { None };
            let cluster_role =
                if role_ref.kind == "ClusterRole" { self.source.cluster_role(&role_ref.name) } else { None };
            let rules: Result<&[PolicyRule], String> = match role_ref.kind.as_str() {
                "Role" => role
                    .as_ref()
                    .map(|r| r.rules.as_deref().unwrap_or_default())
                    .ok_or_else(|| not_found("role", &role_ref.name)),
                "ClusterRole" => cluster_role
                    .as_ref()
                    .map(|r| r.rules.as_deref().unwrap_or_default())
                    .ok_or_else(|| not_found("clusterrole", &role_ref.name)),
                other => Err(format!("invalid RoleBinding roleRef kind {other:?}")),
            };
            let describe = || {
                format!(
                    "RoleBinding {} of {} {} to {}",
                    go_quote(&format!("{}/{}", binding.metadata.name.as_deref().unwrap_or_default(), namespace)),
                    role_ref.kind,
                    go_quote(&role_ref.name),
                    describe_subject(subject, namespace)
                )
            };
            if f(&describe, rules) {
                return;
            }
        }
    }
}

impl<S: RbacSource> Authorizer for RbacAuthorizer<S> {
    fn authorize(&self, attrs: &Attributes) -> Decision {
        let mut allowed_by = None;
        let mut errors = Vec::new();
        self.visit(&attrs.user, &attrs.namespace, &mut |describe, rules| match rules {
            Ok(rules) if rules_allow(attrs, rules) => {
                allowed_by = Some(describe());
                true
            }
            Ok(_) => false,
            Err(e) => {
                errors.push(e);
                false
            }
        });
        if let Some(source) = allowed_by {
            return Decision::Allow(format!("RBAC: allowed by {source}"));
        }
        let reason = match errors.len() {
            0 => String::new(),
            1 => format!("RBAC: {}", errors[0]),
            _ => format!("RBAC: [{}]", errors.join(", ")),
        };
        tracing::debug!(user = %attrs.user.name, verb = %attrs.verb, resource = %attrs.combined_resource(),
            namespace = %attrs.namespace, path = %attrs.path, %reason, "RBAC: no rule allows");
        Decision::NoOpinion(reason)
    }
}

/// Called per applicable binding with a lazy description of it and its rules (or the error
/// resolving its role); returns true to stop.
type BindingVisitor<'a> = dyn FnMut(&dyn Fn() -> String, Result<&[PolicyRule], String>) -> bool + 'a;

fn not_found(kind: &str, name: &str) -> String {
    format!("{kind}.rbac.authorization.k8s.io {} not found", go_quote(name))
}

/// The first subject of a binding (in `namespace`, empty for cluster bindings) that is `user`.
fn applies_to<'a>(user: &UserInfo, subjects: Option<&'a [Subject]>, namespace: &str) -> Option<&'a Subject> {
    subjects?.iter().find(|s| subject_matches(user, s, namespace))
}

/// Whether `subject` names `user`; a ServiceAccount subject without a namespace means the
/// binding's own namespace.
pub fn subject_matches(user: &UserInfo, subject: &Subject, binding_namespace: &str) -> bool {
    match subject.kind.as_str() {
        "User" => user.name == subject.name,
        "Group" => user.in_group(&subject.name),
        "ServiceAccount" => {
            let ns = subject.namespace.as_deref().filter(|ns| !ns.is_empty()).unwrap_or(binding_namespace);
            !ns.is_empty() && user.name == service_account_username(ns, &subject.name)
        }
        _ => false,
    }
}

fn describe_subject(subject: &Subject, namespace: &str) -> String {
    match subject.kind.as_str() {
        "ServiceAccount" => {
            let ns = subject.namespace.as_deref().filter(|ns| !ns.is_empty()).unwrap_or(namespace);
            format!("ServiceAccount {}", go_quote(&format!("{}/{}", subject.name, ns)))
        }
        kind => format!("{kind} {}", go_quote(&subject.name)),
    }
}

/// Kubernetes' 403 text for `attrs`, exactly:
/// `User "u" cannot list resource "pods" in API group "" in the namespace "default"`,
/// `... at the cluster scope`, or `User "u" cannot get path "/metrics"`.
pub fn forbidden_message(attrs: &Attributes) -> String {
    let user = go_quote(&attrs.user.name);
    if !attrs.resource_request {
        return format!("User {user} cannot {} path {}", attrs.verb, go_quote(&attrs.path));
    }
    let resource = go_quote(&attrs.combined_resource());
    let group = go_quote(&attrs.api_group);
    if attrs.namespace.is_empty() {
        format!("User {user} cannot {} resource {resource} in API group {group} at the cluster scope", attrs.verb)
    } else {
        format!(
            "User {user} cannot {} resource {resource} in API group {group} in the namespace {}",
            attrs.verb,
            go_quote(&attrs.namespace)
        )
    }
}

/// The whole `message` of the 403 Status, as Kubernetes builds it: `<resource>[.<group>]
/// ["<name>"] is forbidden: <forbidden_message>[: <reason>]` (or `forbidden: ...` for
/// non-resource requests), with `&`, `<`, `>` escaped so it never looks like HTML.
pub fn forbidden_status_message(attrs: &Attributes, reason: &str) -> String {
    let mut detail = forbidden_message(attrs).replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
    if !reason.is_empty() {
        detail = format!("{detail}: {reason}");
    }
    if attrs.resource.is_empty() {
        return format!("forbidden: {detail}");
    }
    let qualified = if attrs.api_group.is_empty() {
        attrs.resource.clone()
    } else {
        format!("{}.{}", attrs.resource, attrs.api_group)
    };
    if attrs.name.is_empty() {
        format!("{qualified} is forbidden: {detail}")
    } else {
        format!("{qualified} {} is forbidden: {detail}", go_quote(&attrs.name))
    }
}

/// Go's `%q`: double quotes, with backslash escapes for quotes, backslashes and control
/// characters (other printable text, Unicode included, as is).
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests;
