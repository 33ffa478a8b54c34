//! The create-only review APIs that ask the API server about the caller:
//! `authorization.k8s.io/v1` SelfSubjectAccessReview (`kubectl auth can-i`),
//! SelfSubjectRulesReview (`kubectl auth can-i --list`) and
//! `authentication.k8s.io/v1` SelfSubjectReview (`kubectl auth whoami`). Nothing is stored.

use crate::access::{Access, attributes};
use crate::requestinfo::RequestInfo;
use rkube_api::ApiError;
use rkube_auth::{Decision, UserInfo};
use serde_json::{Value, json};

/// Path of SelfSubjectAccessReviews.
pub const ACCESS_REVIEWS: &str = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews";
/// Path of SelfSubjectRulesReviews.
pub const RULES_REVIEWS: &str = "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews";
/// Path of SelfSubjectReviews.
pub const SUBJECT_REVIEWS: &str = "/apis/authentication.k8s.io/v1/selfsubjectreviews";

fn text(v: &Value, field: &str) -> String {
    v[field].as_str().unwrap_or_default().to_string()
}

/// Answers a SelfSubjectAccessReview for `user` (None: authorization is off, all allowed).
pub fn access_review(access: &Access, user: Option<&UserInfo>, review: Value) -> Result<Value, ApiError> {
    if review["kind"].as_str().is_some_and(|k| k != "SelfSubjectAccessReview") {
        return Err(ApiError::BadRequest(format!("expected a SelfSubjectAccessReview, got {}", review["kind"])));
    }
    let spec = &review["spec"];
    let (resource, non_resource) = (&spec["resourceAttributes"], &spec["nonResourceAttributes"]);
    let info = match (resource.is_object(), non_resource.is_object()) {
        (true, false) => RequestInfo {
            resource_request: true,
            verb: text(resource, "verb"),
            api_group: text(resource, "group"),
            api_version: text(resource, "version"),
            namespace: text(resource, "namespace"),
            resource: text(resource, "resource"),
            subresource: text(resource, "subresource"),
            name: text(resource, "name"),
            path: String::new(),
        },
        (false, true) => {
            RequestInfo { verb: text(non_resource, "verb"), path: text(non_resource, "path"), ..RequestInfo::default() }
        }
        _ => {
            return Err(ApiError::Invalid {
                kind: "SelfSubjectAccessReview".into(),
                group: "authorization.k8s.io".into(),
                name: String::new(),
                causes: vec![rkube_api::FieldError::required(
                    "spec.resourceAttributes",
                    "exactly one of nonResourceAttributes or resourceAttributes must be specified",
                )],
            });
        }
    };
    let decision = match user {
        Some(user) => access.decide(&attributes(user, &info)),
        None => Decision::Allow(String::new()),
    };
    let mut status = json!({"allowed": decision.is_allowed()});
    if !decision.reason().is_empty() {
        status["reason"] = json!(decision.reason());
    }
    if matches!(decision, Decision::Deny(_)) {
        status["denied"] = json!(true);
    }
    Ok(json!({
        "kind": "SelfSubjectAccessReview",
        "apiVersion": "authorization.k8s.io/v1",
        "metadata": {"creationTimestamp": null},
        "spec": spec,
        "status": status,
    }))
}

/// Answers a SelfSubjectRulesReview: the RBAC rules `user` has in `spec.namespace`.
/// Without RBAC (or authorization off) the answer is marked incomplete, as Kubernetes does for
/// authorizers that cannot list rules.
pub fn rules_review(access: &Access, user: Option<&UserInfo>, review: Value) -> Result<Value, ApiError> {
    if review["kind"].as_str().is_some_and(|k| k != "SelfSubjectRulesReview") {
        return Err(ApiError::BadRequest(format!("expected a SelfSubjectRulesReview, got {}", review["kind"])));
    }
    let namespace = text(&review["spec"], "namespace");
    let listed = user.and_then(|u| access.rules_for(u, &namespace));
    let (mut resource_rules, mut non_resource_rules) = (Vec::new(), Vec::new());
    let (errors, incomplete) = match &listed {
        Some((rules, errors)) => {
            for rule in rules {
                if let Some(urls) = rule.non_resource_urls.as_ref().filter(|u| !u.is_empty()) {
                    non_resource_rules.push(json!({"verbs": rule.verbs, "nonResourceURLs": urls}));
                } else {
                    let mut r = json!({"verbs": rule.verbs, "apiGroups": rule.api_groups, "resources": rule.resources});
                    if let Some(names) = rule.resource_names.as_ref().filter(|n| !n.is_empty()) {
                        r["resourceNames"] = json!(names);
                    }
                    resource_rules.push(r);
                }
            }
            (errors.join("; "), !errors.is_empty())
        }
        None => (String::new(), true),
    };
    let mut status =
        json!({"resourceRules": resource_rules, "nonResourceRules": non_resource_rules, "incomplete": incomplete});
    if !errors.is_empty() {
        status["evaluationError"] = json!(errors);
    }
    Ok(json!({
        "kind": "SelfSubjectRulesReview",
        "apiVersion": "authorization.k8s.io/v1",
        "metadata": {"creationTimestamp": null},
        "spec": review["spec"],
        "status": status,
    }))
}

/// Answers a SelfSubjectReview: who the server takes the caller for.
pub fn subject_review(user: Option<&UserInfo>) -> Value {
    let anonymous = UserInfo::anonymous();
    let user = user.unwrap_or(&anonymous);
    let mut info = json!({"username": user.name, "groups": user.groups});
    if !user.uid.is_empty() {
        info["uid"] = json!(user.uid);
    }
    if !user.extra.is_empty() {
        info["extra"] = json!(user.extra);
    }
    json!({
        "kind": "SelfSubjectReview",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"creationTimestamp": null},
        "status": {"userInfo": info},
    })
}
