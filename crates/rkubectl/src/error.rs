//! The crate's error type and how each error reads on stderr (kubectl's wording).

use serde_json::Value;

/// Everything a command can fail with; `Display` is the exact line kubectl would print.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A `metav1.Status` failure from the API server.
    #[error("{0}")]
    Api(ApiError),
    /// A client-side failure printed as `error: ...`.
    #[error("error: {0}")]
    Usage(String),
    /// The server could not be reached.
    #[error("{0}")]
    Connect(String),
    /// The kubeconfig could not be read or written.
    #[error("error: {0}")]
    Config(String),
    /// Local I/O failed (reading manifests, writing the cache).
    #[error("error: {0}")]
    Io(#[from] std::io::Error),
    /// The command ends with this exit code after printing `message` on stderr (if any):
    /// a remote command's code (`exec`), or "different"/"no" answers (`diff`, `auth can-i`).
    #[error("{message}")]
    Exit {
        /// The process exit code.
        code: i32,
        /// What to print first; may be empty.
        message: String,
    },
    /// Errors were already printed (several objects failed); exit 1 without another line.
    #[error("")]
    Reported,
}

impl Error {
    /// A usage error from anything printable.
    pub fn usage(msg: impl Into<String>) -> Error {
        Error::Usage(msg.into())
    }

    /// The API error, when this is one.
    pub fn api(&self) -> Option<&ApiError> {
        match self {
            Error::Api(e) => Some(e),
            _ => None,
        }
    }

    /// Whether the server answered 404 NotFound.
    pub fn is_not_found(&self) -> bool {
        self.api().is_some_and(|e| e.code == 404)
    }

    /// Whether the server answered 409 AlreadyExists.
    pub fn is_already_exists(&self) -> bool {
        self.api().is_some_and(|e| e.reason == "AlreadyExists")
    }
}

/// A failed API call: HTTP code, Status reason and message.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status code.
    pub code: u16,
    /// `Status.reason` (NotFound, AlreadyExists, ...), possibly empty.
    pub reason: String,
    /// `Status.message`, or the body when it was no Status.
    pub message: String,
    /// Text kubectl puts in front of the message (`error when creating "f.yaml": `).
    pub context: String,
    /// `Status.details` (kind, name, causes), `null` when absent.
    pub details: Value,
}

impl ApiError {
    /// Builds the error from a response code and body, as client-go does.
    pub fn from_response(code: u16, body: &[u8]) -> ApiError {
        let parsed: Option<Value> = serde_json::from_slice(body).ok();
        if let Some(status) = parsed.filter(|v| v["kind"] == "Status") {
            let reason = status["reason"].as_str().unwrap_or("").to_string();
            let message = status["message"].as_str().unwrap_or("").to_string();
            return ApiError { code, reason, message, context: String::new(), details: status["details"].clone() };
        }
        // client-go's wording for codes that arrive without a Status body.
        let (reason, message) = match code {
            400 => ("BadRequest", "the server rejected our request for an unknown reason".to_string()),
            401 => ("Unauthorized", "the server has asked for the client to provide credentials".to_string()),
            403 => ("Forbidden", String::from_utf8_lossy(body).trim().to_string()),
            404 => ("NotFound", "the server could not find the requested resource".to_string()),
            405 => ("MethodNotAllowed", "the server does not allow this method on the requested resource".to_string()),
            409 => ("Conflict", "the server reported a conflict".to_string()),
            422 => ("Invalid", "the server rejected our request due to an error in our request".to_string()),
            429 => (
                "TooManyRequests",
                "the server has received too many requests and has asked us to try again later".to_string(),
            ),
            500 => ("InternalError", "an error on the server has prevented the request from succeeding".to_string()),
            503 => ("ServiceUnavailable", "the server is currently unable to handle the request".to_string()),
            504 => ("Timeout", "the server was unable to return a response in the time allotted".to_string()),
            _ => (
                "Unknown",
                format!(
                    "an error on the server (\"{}\") has prevented the request from succeeding",
                    String::from_utf8_lossy(body).trim()
                ),
            ),
        };
        ApiError { code, reason: reason.to_string(), message, context: String::new(), details: Value::Null }
    }

    /// The same error with kubectl's "error when ..." prefix.
    pub fn with_context(mut self, context: impl Into<String>) -> ApiError {
        self.context = context.into();
        self
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // kubectl words an invalid object from the Status details alone: "The Kind "name" is
        // invalid" and one `field: message` per cause (a `* ` list when there are several).
        if self.reason == "Invalid" && self.details.is_object() {
            let d = &self.details;
            let (kind, name) = (d["kind"].as_str().unwrap_or(""), d["name"].as_str().unwrap_or(""));
            let head = if kind.is_empty() && name.is_empty() {
                "The request is invalid".to_string()
            } else {
                format!("The {kind} {name:?} is invalid")
            };
            let causes: Vec<String> = d["causes"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|c| format!("{}: {}", c["field"].as_str().unwrap_or(""), c["message"].as_str().unwrap_or("")))
                .collect();
            return match causes.as_slice() {
                [] => write!(f, "{head}"),
                [one] => write!(f, "{head}: {one}"),
                many => write!(f, "{head}: \n{}", many.iter().map(|c| format!("* {c}")).collect::<Vec<_>>().join("\n")),
            };
        }
        if self.reason.is_empty() {
            write!(f, "Error from server: {}{}", self.context, self.message)
        } else {
            write!(f, "Error from server ({}): {}{}", self.reason, self.context, self.message)
        }
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
