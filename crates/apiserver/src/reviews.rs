//! The create-only review APIs that ask the API server about the caller:
//! `authorization.k8s.io/v1` SelfSubjectAccessReview (`kubectl auth can-i`),
//! SelfSubjectRulesReview (`kubectl auth can-i --list`) and
//! `authentication.k8s.io/v1` SelfSubjectReview (`kubectl auth whoami`), and for kubelets'
//! webhook authentication and authorization TokenReview (who is this bearer token?) and
//! SubjectAccessReview (may this user do that?).
//! Nothing is stored.

use crate::access::{Access, attributes};
use crate::requestinfo::RequestInfo;
use rkube_api::ApiError;
use rkube_auth::{Decision, UserInfo};
use serde_json::{Value, json};

/// Path of SelfSubjectAccessReviews.
pub const ACCESS_REVIEWS: &str = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews";
/// Path of SubjectAccessReviews.
pub const SUBJECT_ACCESS_REVIEWS: &str = "/apis/authorization.k8s.io/v1/subjectaccessreviews";
/// Path of TokenReviews.
pub const TOKEN_REVIEWS: &str = "/apis/authentication.k8s.io/v1/tokenreviews";
/// Path of SelfSubjectRulesReviews.
pub const RULES_REVIEWS: &str = "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews";
/// Path of SelfSubjectReviews.
pub const SUBJECT_REVIEWS: &str = "/apis/authentication.k8s.io/v1/selfsubjectreviews";

fn text(v: &Value, field: &str) -> String {
    v[field].as_str().unwrap_or_default().to_string()
}

/// The request a review's `spec` asks about: exactly one of resourceAttributes and
/// nonResourceAttributes.
fn reviewed_request(kind: &str, spec: &Value) -> Result<RequestInfo, ApiError> {
    let (resource, non_resource) = (&spec["resourceAttributes"], &spec["nonResourceAttributes"]);
    match (resource.is_object(), non_resource.is_object()) {
        (true, false) => Ok(RequestInfo {
            resource_request: true,
            verb: text(resource, "verb"),
            api_group: text(resource, "group"),
            api_version: text(resource, "version"),
            namespace: text(resource, "namespace"),
            resource: text(resource, "resource"),
            subresource: text(resource, "subresource"),
            name: text(resource, "name"),
            path: String::new(),
        }),
        (false, true) => Ok(RequestInfo {
            verb: text(non_resource, "verb"),
            path: text(non_resource, "path"),
            ..RequestInfo::default()
        }),
        _ => Err(ApiError::Invalid {
            kind: kind.into(),
            group: "authorization.k8s.io".into(),
            name: String::new(),
            causes: vec![rkube_api::FieldError::required(
                "spec.resourceAttributes",
                "exactly one of nonResourceAttributes or resourceAttributes must be specified",
            )],
        }),
    }
}

/// The review with `status` filled from `decision`.
fn review_answer(kind: &str, spec: &Value, decision: &Decision) -> Value {
    let mut status = json!({"allowed": decision.is_allowed()});
    if !decision.reason().is_empty() {
        status["reason"] = json!(decision.reason());
    }
    if matches!(decision, Decision::Deny(_)) {
        status["denied"] = json!(true);
    }
    json!({
        "kind": kind,
        "apiVersion": "authorization.k8s.io/v1",
        "metadata": {"creationTimestamp": null},
        "spec": spec,
        "status": status,
    })
}

/// Answers a SelfSubjectAccessReview for `user` (None: authorization is off, all allowed).
pub fn access_review(access: &Access, user: Option<&UserInfo>, review: Value) -> Result<Value, ApiError> {
    const KIND: &str = "SelfSubjectAccessReview";
    if review["kind"].as_str().is_some_and(|k| k != KIND) {
        return Err(ApiError::BadRequest(format!("expected a {KIND}, got {}", review["kind"])));
    }
    let info = reviewed_request(KIND, &review["spec"])?;
    let decision = match user {
        Some(user) => access.decide(&attributes(user, &info)),
        None => Decision::Allow(String::new()),
    };
    Ok(review_answer(KIND, &review["spec"], &decision))
}

/// Answers a SubjectAccessReview: may the user in `spec` (name, uid, groups, extra) do what it
/// describes? Kubelets ask this for every request to their API (webhook authorization).
pub fn subject_access_review(access: &Access, review: Value) -> Result<Value, ApiError> {
    const KIND: &str = "SubjectAccessReview";
    if review["kind"].as_str().is_some_and(|k| k != KIND) {
        return Err(ApiError::BadRequest(format!("expected a {KIND}, got {}", review["kind"])));
    }
    let spec = &review["spec"];
    let info = reviewed_request(KIND, spec)?;
    let strings = |v: &Value| -> Vec<String> {
        v.as_array().into_iter().flatten().filter_map(|s| s.as_str().map(str::to_string)).collect()
    };
    let user = UserInfo {
        name: text(spec, "user"),
        uid: text(spec, "uid"),
        groups: strings(&spec["groups"]),
        extra: spec["extra"].as_object().into_iter().flatten().map(|(k, v)| (k.clone(), strings(v))).collect(),
    };
    if user.name.is_empty() && user.groups.is_empty() {
        return Err(ApiError::Invalid {
            kind: KIND.into(),
            group: "authorization.k8s.io".into(),
            name: String::new(),
            causes: vec![rkube_api::FieldError::invalid(
                "spec.user",
                &json!(""),
                "at least one of user or group must be specified",
            )],
        });
    }
    Ok(review_answer(KIND, spec, &access.decide(&attributes(&user, &info))))
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

/// Answers a TokenReview: the user `spec.token` authenticates as, or the reason it does not.
/// `spec.audiences` is echoed when the token is valid; tokens are checked against the API
/// server's own audiences only.
pub fn token_review(access: &Access, review: Value) -> Result<Value, ApiError> {
    const KIND: &str = "TokenReview";
    if review["kind"].as_str().is_some_and(|k| k != KIND) {
        return Err(ApiError::BadRequest(format!("expected a {KIND}, got {}", review["kind"])));
    }
    let spec = &review["spec"];
    let token = text(spec, "token");
    if token.is_empty() {
        return Err(ApiError::Invalid {
            kind: KIND.into(),
            group: "authentication.k8s.io".into(),
            name: String::new(),
            causes: vec![rkube_api::FieldError::required("spec.token", "token must not be empty")],
        });
    }
    let status = match access.review_token(&token) {
        Ok(user) => {
            let mut status = json!({
                "authenticated": true,
                "user": {"username": user.name, "groups": user.groups},
            });
            if !user.uid.is_empty() {
                status["user"]["uid"] = json!(user.uid);
            }
            if !user.extra.is_empty() {
                status["user"]["extra"] = json!(user.extra);
            }
            if spec["audiences"].is_array() {
                status["audiences"] = spec["audiences"].clone();
            }
            status
        }
        Err(reason) => json!({"authenticated": false, "user": {}, "error": reason}),
    };
    // The token is not echoed back.
    let mut spec = spec.clone();
    if let Some(s) = spec.as_object_mut() {
        s.remove("token");
    }
    Ok(json!({
        "kind": KIND,
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"creationTimestamp": null},
        "spec": spec,
        "status": status,
    }))
}
