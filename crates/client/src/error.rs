//! Errors of client calls: either the API server's own Status, or the reason none came back.

use rkube_api::ApiError;

/// What went wrong with a request to the API server.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with a Kubernetes Status (404, 409, 410, 422, ...).
    #[error(transparent)]
    Api(#[from] ApiError),
    /// No answer: the server is down, restarting or unreachable. Safe to retry reads.
    #[error("API server unavailable: {0}")]
    Unavailable(String),
    /// The answer was not the object the request expected.
    #[error("decoding {what}: {message}")]
    Decode {
        /// What was being decoded, e.g. "Pod".
        what: String,
        /// The decoder's message.
        message: String,
    },
    /// Another holder took the leader Lease, or it could not be renewed in time.
    #[error("lost leadership of Lease {0}")]
    LeaseLost(String),
    /// The server address or the kubeconfig is unusable.
    #[error("client configuration: {0}")]
    Config(String),
}

impl ClientError {
    /// The HTTP status code Kubernetes would have answered, when the server answered.
    pub fn code(&self) -> Option<u16> {
        match self {
            ClientError::Api(e) => Some(e.code()),
            _ => None,
        }
    }

    /// 404 NotFound.
    pub fn is_not_found(&self) -> bool {
        matches!(self, ClientError::Api(ApiError::NotFound { .. }))
    }

    /// 409 AlreadyExists.
    pub fn is_already_exists(&self) -> bool {
        matches!(self, ClientError::Api(ApiError::AlreadyExists { .. }))
    }

    /// 409 Conflict: a stale resourceVersion or failed precondition.
    pub fn is_conflict(&self) -> bool {
        matches!(self, ClientError::Api(ApiError::Conflict { .. }))
    }

    /// 410 Expired: the resourceVersion asked for was compacted; relist.
    pub fn is_expired(&self) -> bool {
        matches!(self, ClientError::Api(ApiError::Expired(_)))
    }

    /// Worth retrying the same request later (server down, overloaded or timing out).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            ClientError::Unavailable(_)
                | ClientError::Api(ApiError::ServiceUnavailable(_) | ApiError::Timeout(_) | ApiError::Internal(_))
        )
    }

    pub(crate) fn decode(what: &str, err: impl std::fmt::Display) -> Self {
        ClientError::Decode { what: what.to_string(), message: err.to_string() }
    }
}

/// Recovers the API error a gRPC status carries: the API server puts the Kubernetes Status
/// JSON in the details. A status without one never reached the API server's handlers.
pub fn from_grpc(status: &tonic::Status) -> ClientError {
    match serde_json::from_slice::<serde_json::Value>(status.details()) {
        Ok(s) if s["kind"] == "Status" => ClientError::Api(ApiError::from_status(&s)),
        _ => ClientError::Unavailable(format!("{:?}: {}", status.code(), status.message())),
    }
}
