//! API errors in Kubernetes' vocabulary, rendered as `metav1.Status`.

use serde_json::{Value, json};

/// One field-level problem, as in a Status' `details.causes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Cause type, e.g. "FieldValueRequired", "FieldValueInvalid".
    pub reason: &'static str,
    /// Field path such as `spec.containers[0].image`.
    pub field: String,
    /// Human-readable detail, e.g. "Required value" or `Invalid value: "x": must be ...`.
    pub message: String,
}

impl FieldError {
    /// A required field is missing.
    pub fn required(field: impl Into<String>, detail: &str) -> Self {
        let message = if detail.is_empty() { "Required value".to_string() } else { format!("Required value: {detail}") };
        FieldError { reason: "FieldValueRequired", field: field.into(), message }
    }

    /// A field has a value that is not allowed.
    pub fn invalid(field: impl Into<String>, value: &Value, detail: &str) -> Self {
        let shown = match value {
            Value::String(s) => format!("{s:?}"),
            other => other.to_string(),
        };
        FieldError { reason: "FieldValueInvalid", field: field.into(), message: format!("Invalid value: {shown}: {detail}") }
    }

    /// A value is not one of the supported ones.
    pub fn not_supported(field: impl Into<String>, value: &Value, supported: &[&str]) -> Self {
        let list: Vec<String> = supported.iter().map(|s| format!("{s:?}")).collect();
        FieldError {
            reason: "FieldValueNotSupported",
            field: field.into(),
            message: format!("Unsupported value: {value}: supported values: {}", list.join(", ")),
        }
    }

    /// A value appears twice where it must be unique.
    pub fn duplicate(field: impl Into<String>, value: &Value) -> Self {
        FieldError { reason: "FieldValueDuplicate", field: field.into(), message: format!("Duplicate value: {value}") }
    }

    /// A field may not be set (or changed) here.
    pub fn forbidden(field: impl Into<String>, detail: &str) -> Self {
        FieldError { reason: "FieldValueForbidden", field: field.into(), message: format!("Forbidden: {detail}") }
    }

    /// A value exceeds its size limit.
    pub fn too_long(field: impl Into<String>, max: usize) -> Self {
        FieldError {
            reason: "FieldValueTooLong",
            field: field.into(),
            message: format!("Too long: may not be more than {max} bytes"),
        }
    }
}

/// An error the API answers with; each variant is one Kubernetes `reason`.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    /// 400: the request itself is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// 401.
    #[error("{0}")]
    Unauthorized(String),
    /// 403, with an optional cause type for `details.causes`.
    #[error("{message}")]
    Forbidden {
        /// Full message.
        message: String,
        /// Resource info for `details`.
        target: Option<Target>,
    },
    /// 404; an empty `resource` means the path itself is not served.
    #[error("{}", not_found_message(resource, name))]
    NotFound {
        /// Group-qualified resource, e.g. "deployments.apps".
        resource: String,
        /// Object name.
        name: String,
    },
    /// 405.
    #[error("{0}")]
    MethodNotAllowed(String),
    /// 409 on create of an existing name.
    #[error("{resource} {name:?} already exists")]
    AlreadyExists {
        /// Group-qualified resource.
        resource: String,
        /// Object name.
        name: String,
    },
    /// 409 on a stale resourceVersion or failed precondition.
    #[error("Operation cannot be fulfilled on {resource} {name:?}: {detail}")]
    Conflict {
        /// Group-qualified resource.
        resource: String,
        /// Object name.
        name: String,
        /// Why, e.g. "the object has been modified; please apply your changes to the latest version and try again".
        detail: String,
    },
    /// 409 from server-side apply: fields the request sets are owned by other managers.
    #[error("{message}")]
    ApplyConflict {
        /// "Apply failed with N conflicts: ...".
        message: String,
        /// One cause per conflicting field (reason FieldManagerConflict).
        causes: Vec<FieldError>,
    },
    /// 410: the requested resourceVersion was compacted away.
    #[error("{0}")]
    Expired(String),
    /// 413.
    #[error("{0}")]
    RequestEntityTooLarge(String),
    /// 415.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 406.
    #[error("{0}")]
    NotAcceptable(String),
    /// 422 with field causes.
    #[error("{kind} {name:?} is invalid: {}", summarize(causes))]
    Invalid {
        /// Kind of the object, e.g. "Pod".
        kind: String,
        /// Group of the kind.
        group: String,
        /// Object name.
        name: String,
        /// Field errors.
        causes: Vec<FieldError>,
    },
    /// 500.
    #[error("{0}")]
    Internal(String),
    /// 503.
    #[error("{0}")]
    ServiceUnavailable(String),
    /// 504.
    #[error("{0}")]
    Timeout(String),
}

/// What an error is about, for the `details` of a Status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Object name.
    pub name: String,
    /// API group.
    pub group: String,
    /// Plural resource (or kind, for Invalid).
    pub kind: String,
}

fn not_found_message(resource: &str, name: &str) -> String {
    if resource.is_empty() {
        "the server could not find the requested resource".to_string()
    } else {
        format!("{resource} {name:?} not found")
    }
}

fn summarize(causes: &[FieldError]) -> String {
    let parts: Vec<String> = causes.iter().map(|c| format!("{}: {}", c.field, c.message)).collect();
    if parts.len() == 1 { parts[0].clone() } else { format!("[{}]", parts.join(", ")) }
}

fn split_qualified(resource: &str) -> (String, String) {
    match resource.split_once('.') {
        Some((r, g)) => (r.to_string(), g.to_string()),
        None => (resource.to_string(), String::new()),
    }
}

impl ApiError {
    /// HTTP status code.
    pub fn code(&self) -> u16 {
        match self {
            ApiError::BadRequest(_) => 400,
            ApiError::Unauthorized(_) => 401,
            ApiError::Forbidden { .. } => 403,
            ApiError::NotFound { .. } => 404,
            ApiError::MethodNotAllowed(_) => 405,
            ApiError::NotAcceptable(_) => 406,
            ApiError::AlreadyExists { .. } | ApiError::Conflict { .. } | ApiError::ApplyConflict { .. } => 409,
            ApiError::Expired(_) => 410,
            ApiError::RequestEntityTooLarge(_) => 413,
            ApiError::UnsupportedMediaType(_) => 415,
            ApiError::Invalid { .. } => 422,
            ApiError::Internal(_) => 500,
            ApiError::ServiceUnavailable(_) => 503,
            ApiError::Timeout(_) => 504,
        }
    }

    /// Kubernetes' `reason` string.
    pub fn reason(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "BadRequest",
            ApiError::Unauthorized(_) => "Unauthorized",
            ApiError::Forbidden { .. } => "Forbidden",
            ApiError::NotFound { .. } => "NotFound",
            ApiError::MethodNotAllowed(_) => "MethodNotAllowed",
            ApiError::NotAcceptable(_) => "NotAcceptable",
            ApiError::AlreadyExists { .. } => "AlreadyExists",
            ApiError::Conflict { .. } | ApiError::ApplyConflict { .. } => "Conflict",
            ApiError::Expired(_) => "Expired",
            ApiError::RequestEntityTooLarge(_) => "RequestEntityTooLarge",
            ApiError::UnsupportedMediaType(_) => "UnsupportedMediaType",
            ApiError::Invalid { .. } => "Invalid",
            ApiError::Internal(_) => "InternalError",
            ApiError::ServiceUnavailable(_) => "ServiceUnavailable",
            ApiError::Timeout(_) => "Timeout",
        }
    }

    /// The `metav1.Status` object for this error.
    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.to_string(),
            "reason": self.reason(),
            "code": self.code(),
        });
        let details = match self {
            ApiError::NotFound { resource, .. } if resource.is_empty() => None,
            ApiError::NotFound { resource, name }
            | ApiError::AlreadyExists { resource, name }
            | ApiError::Conflict { resource, name, .. } => {
                let (kind, group) = split_qualified(resource);
                let mut d = json!({"name": name, "kind": kind});
                if !group.is_empty() {
                    d["group"] = json!(group);
                }
                Some(d)
            }
            ApiError::Forbidden { target: Some(t), .. } => {
                let mut d = json!({"name": t.name, "kind": t.kind});
                if !t.group.is_empty() {
                    d["group"] = json!(t.group);
                }
                Some(d)
            }
            ApiError::ApplyConflict { causes, .. } => {
                let causes: Vec<Value> =
                    causes.iter().map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field})).collect();
                Some(json!({"causes": causes}))
            }
            ApiError::Invalid { kind, group, name, causes } => {
                let causes: Vec<Value> =
                    causes.iter().map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field})).collect();
                let mut d = json!({"name": name, "kind": kind, "causes": causes});
                if !group.is_empty() {
                    d["group"] = json!(group);
                }
                Some(d)
            }
            _ => None,
        };
        if let Some(d) = details {
            status["details"] = d;
        }
        status
    }

    /// Rebuilds an error from a Status object (the inverse of [`ApiError::to_status`], as far
    /// as a client needs it).
    pub fn from_status(status: &Value) -> ApiError {
        let message = status["message"].as_str().unwrap_or_default().to_string();
        let details = &status["details"];
        let name = details["name"].as_str().unwrap_or_default().to_string();
        let resource = match details["group"].as_str() {
            Some(g) if !g.is_empty() => format!("{}.{g}", details["kind"].as_str().unwrap_or_default()),
            _ => details["kind"].as_str().unwrap_or_default().to_string(),
        };
        match status["reason"].as_str().unwrap_or_default() {
            "NotFound" => ApiError::NotFound { resource, name },
            "AlreadyExists" => ApiError::AlreadyExists { resource, name },
            "Conflict" if details["causes"].as_array().is_some_and(|c| !c.is_empty()) => ApiError::ApplyConflict {
                message,
                causes: details["causes"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|c| FieldError {
                        reason: "FieldManagerConflict",
                        field: c["field"].as_str().unwrap_or_default().to_string(),
                        message: c["message"].as_str().unwrap_or_default().to_string(),
                    })
                    .collect(),
            },
            "Conflict" => {
                let detail = message.rsplit_once(": ").map(|(_, d)| d.to_string()).unwrap_or(message);
                ApiError::Conflict { resource, name, detail }
            }
            "Expired" | "Gone" => ApiError::Expired(message),
            "Invalid" => {
                let causes = details["causes"]
                    .as_array()
                    .map(|cs| {
                        cs.iter()
                            .map(|c| FieldError {
                                reason: "FieldValueInvalid",
                                field: c["field"].as_str().unwrap_or_default().to_string(),
                                message: c["message"].as_str().unwrap_or_default().to_string(),
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                ApiError::Invalid {
                    kind: details["kind"].as_str().unwrap_or_default().to_string(),
                    group: details["group"].as_str().unwrap_or_default().to_string(),
                    name,
                    causes,
                }
            }
            "Forbidden" => ApiError::Forbidden { message, target: None },
            "Unauthorized" => ApiError::Unauthorized(message),
            "MethodNotAllowed" => ApiError::MethodNotAllowed(message),
            "RequestEntityTooLarge" => ApiError::RequestEntityTooLarge(message),
            "UnsupportedMediaType" => ApiError::UnsupportedMediaType(message),
            "NotAcceptable" => ApiError::NotAcceptable(message),
            "ServiceUnavailable" => ApiError::ServiceUnavailable(message),
            "Timeout" => ApiError::Timeout(message),
            "BadRequest" => ApiError::BadRequest(message),
            _ => ApiError::Internal(message),
        }
    }

    /// Shorthand for a 404 on one object.
    pub fn not_found(resource: &crate::ResourceInfo, name: &str) -> Self {
        ApiError::NotFound { resource: resource.qualified(), name: name.to_string() }
    }

    /// Shorthand for 422 on one object.
    pub fn invalid(resource: &crate::ResourceInfo, name: &str, causes: Vec<FieldError>) -> Self {
        ApiError::Invalid { kind: resource.kind.to_string(), group: resource.group.to_string(), name: name.to_string(), causes }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_status_lists_causes_with_field_paths() {
        let pods = crate::registry::lookup("", "v1", "pods").unwrap();
        let err = ApiError::invalid(pods, "web", vec![FieldError::required("spec.containers[0].image", "")]);
        let s = err.to_status();
        assert_eq!(s["code"], 422);
        assert_eq!(s["reason"], "Invalid");
        assert_eq!(s["message"], "Pod \"web\" is invalid: spec.containers[0].image: Required value");
        assert_eq!(s["details"]["causes"][0]["field"], "spec.containers[0].image");
        assert_eq!(s["details"]["causes"][0]["reason"], "FieldValueRequired");
    }

    #[test]
    fn not_found_round_trips_through_status() {
        let err = ApiError::NotFound { resource: "deployments.apps".into(), name: "web".into() };
        let s = err.to_status();
        assert_eq!(s["message"], "deployments.apps \"web\" not found");
        assert_eq!(s["details"]["group"], "apps");
        let back = ApiError::from_status(&s);
        assert_eq!(back.to_string(), err.to_string());
        assert_eq!(back.code(), 404);
    }
}
