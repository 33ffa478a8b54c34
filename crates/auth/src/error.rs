//! The one error type of this crate.

use std::path::PathBuf;

/// Everything that can go wrong while building credentials or checking them.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Certificate or key generation / parsing failed inside rcgen.
    #[error("certificate: {0}")]
    Certificate(#[from] rcgen::Error),
    /// A PEM or DER blob could not be decoded.
    #[error("invalid {what}: {reason}")]
    Invalid {
        /// What was being decoded ("CA certificate", "private key", ...).
        what: &'static str,
        /// Why it failed.
        reason: String,
    },
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A static token file line is malformed.
    #[error("token file line {line}: {reason}")]
    TokenFile {
        /// 1-based line number.
        line: usize,
        /// Why the line was rejected.
        reason: String,
    },
    /// A ServiceAccount JWT was rejected.
    #[error("invalid service account token: {0}")]
    Token(String),
    /// A key could not sign (ring refused it).
    #[error("signing failed: {0}")]
    Signing(String),
}

impl AuthError {
    /// Shorthand for [`AuthError::Invalid`].
    pub(crate) fn invalid(what: &'static str, reason: impl std::fmt::Display) -> Self {
        AuthError::Invalid { what, reason: reason.to_string() }
    }

    /// Shorthand for [`AuthError::Io`].
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        AuthError::Io { path: path.into(), source }
    }
}

/// Result alias of this crate.
pub type Result<T, E = AuthError> = std::result::Result<T, E>;
