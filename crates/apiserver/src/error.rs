//! The one place storage errors become API errors, and API errors become gRPC statuses.

use rkube_api::{ApiError, ResourceInfo};
use rkube_storage::StorageError;

/// Maps a storage error on one object of `res` to the API error Kubernetes would answer.
pub fn storage_error(res: &ResourceInfo, name: &str, err: StorageError) -> ApiError {
    match err {
        StorageError::AlreadyExists { .. } => ApiError::AlreadyExists { resource: res.qualified(), name: name.into() },
        StorageError::NotFound { .. } => ApiError::not_found(res, name),
        StorageError::Conflict { .. } => ApiError::Conflict {
            resource: res.qualified(),
            name: name.into(),
            detail: "the object has been modified; please apply your changes to the latest version and try again".into(),
        },
        StorageError::Expired { requested, oldest } => {
            ApiError::Expired(format!("too old resource version: {requested} ({oldest})"))
        }
        StorageError::Unavailable(msg) => ApiError::ServiceUnavailable(format!("etcd is unavailable: {msg}")),
        other => ApiError::Internal(other.to_string()),
    }
}

/// gRPC code for each Kubernetes reason; the full Status travels in the details bytes.
pub fn grpc_code(err: &ApiError) -> tonic::Code {
    use tonic::Code;
    match err {
        ApiError::BadRequest(_) => Code::InvalidArgument,
        ApiError::Invalid { .. } => Code::InvalidArgument,
        ApiError::Unauthorized(_) => Code::Unauthenticated,
        ApiError::Forbidden { .. } => Code::PermissionDenied,
        ApiError::NotFound { .. } => Code::NotFound,
        ApiError::AlreadyExists { .. } => Code::AlreadyExists,
        ApiError::Conflict { .. } | ApiError::ApplyConflict { .. } => Code::Aborted,
        ApiError::Expired(_) => Code::OutOfRange,
        ApiError::RequestEntityTooLarge(_) => Code::ResourceExhausted,
        ApiError::MethodNotAllowed(_) | ApiError::UnsupportedMediaType(_) | ApiError::NotAcceptable(_) => Code::Unimplemented,
        ApiError::Internal(_) => Code::Internal,
        ApiError::ServiceUnavailable(_) => Code::Unavailable,
        ApiError::Timeout(_) => Code::DeadlineExceeded,
    }
}

/// A gRPC status carrying the Kubernetes Status JSON in its details and the reason in the
/// `x-k8s-reason` metadata, so clients can tell 400 from 422 (both InvalidArgument).
pub fn to_grpc(err: &ApiError) -> tonic::Status {
    let details = serde_json::to_vec(&err.to_status()).unwrap_or_default();
    let mut status = tonic::Status::with_details(grpc_code(err), err.to_string(), details.into());
    if let Ok(v) = err.reason().parse() {
        status.metadata_mut().insert("x-k8s-reason", v);
    }
    status
}

/// Maps a server-side apply / managedFields error to its Kubernetes Status: conflicts are 409
/// with one FieldManagerConflict cause per field, bad applied configurations 422.
pub fn field_manager_error(res: &ResourceInfo, name: &str, err: rkube_fieldmanager::FieldManagerError) -> ApiError {
    use rkube_fieldmanager::FieldManagerError as E;
    match &err {
        E::Conflicts(conflicts) => ApiError::ApplyConflict {
            message: err.to_string(),
            causes: conflicts
                .iter()
                .map(|c| rkube_api::FieldError { reason: "FieldManagerConflict", field: c.field.clone(), message: c.message() })
                .collect(),
        },
        E::Invalid { path, message } => ApiError::invalid(
            res,
            name,
            vec![rkube_api::FieldError { reason: "FieldValueInvalid", field: path.clone(), message: message.clone() }],
        ),
        E::InvalidManagedFields(_) => ApiError::BadRequest(err.to_string()),
    }
}
