//! The single error type every storage call returns.

use crate::store::KeyValue;

/// Result alias used throughout the crate.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// Everything that can go wrong in storage, shaped so the API server can map each
/// variant to exactly one HTTP status without inspecting strings.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StorageError {
    /// A create found the key already present (409 AlreadyExists).
    #[error("key {key} already exists")]
    AlreadyExists {
        /// The key that was being created.
        key: String,
    },
    /// The key does not exist (404).
    #[error("key {key} not found")]
    NotFound {
        /// The key that was looked up.
        key: String,
    },
    /// A compare-and-swap failed because the stored mod revision differs (409 Conflict).
    #[error("key {key} was modified concurrently")]
    Conflict {
        /// The key being written.
        key: String,
        /// What is stored now, so the caller can retry without another round trip.
        current: Option<KeyValue>,
    },
    /// The requested revision is no longer available (410 Gone).
    #[error("revision {requested} is too old; oldest available is {oldest}")]
    Expired {
        /// The revision the caller asked for.
        requested: i64,
        /// The oldest revision that can still be served (0 if unknown).
        oldest: i64,
    },
    /// A watcher fell too far behind the live stream and was dropped; the client
    /// should watch again from `revision` (the last revision it was sent).
    #[error("watcher fell behind; last delivered revision {revision}")]
    Lagged {
        /// Every event up to this revision was delivered before the watcher was dropped.
        revision: i64,
    },
    /// The prefix does not belong to any resource registered with the watch cache.
    #[error("no cached resource covers {prefix}")]
    UnknownResource {
        /// The prefix or key that was asked for.
        prefix: String,
    },
    /// A stored value could not be turned back into an object: no configured encryption
    /// key reads it, or it fails authentication (500; never served as garbage).
    #[error("unable to read the stored value of key {key}: {reason}")]
    Transform {
        /// The etcd key whose value is unreadable.
        key: String,
        /// What went wrong, without any key material.
        reason: String,
    },
    /// etcd could not be reached or did not answer in time (503 / 504).
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// Anything else; a bug or an unexpected answer from etcd (500).
    #[error("storage internal error: {0}")]
    Internal(String),
}
