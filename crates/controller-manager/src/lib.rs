//! rkube-controller-manager: the controllers that make declared state true and keep it so.
//! Each controller is informer -> work queue -> `reconcile(key)` on the shared runtime here
//! (`runtime`, `informers`, `expectations`); the controllers themselves live in `controllers/`.

pub mod config;
pub mod controllers;
pub mod expectations;
pub mod http;
pub mod informers;
pub mod manager;
pub mod objects;
pub mod runtime;

pub use config::Config;
pub use manager::run;
pub use runtime::{Action, Controller, Registration};

use rkube_client::{Client, ClientError, EventRecorder};
use std::sync::Arc;

/// Why a reconcile or the controller-manager failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request to the API server failed (retried by the work queue).
    #[error(transparent)]
    Client(#[from] ClientError),
    /// An object cannot be reconciled as it is (reported, retried with back-off).
    #[error("{0}")]
    Invalid(String),
    /// The health endpoint could not listen.
    #[error("serving health endpoints on {address}: {source}")]
    Health {
        /// The address.
        address: String,
        /// The OS error.
        source: std::io::Error,
    },
}

impl Error {
    /// A 409 Conflict: another writer got there first; retrying sees its change.
    pub fn is_conflict(&self) -> bool {
        matches!(self, Error::Client(e) if e.is_conflict())
    }
}

/// What every controller gets: the API client, an event recorder and the flags.
#[derive(Clone)]
pub struct Context {
    /// The API client (field manager "rkube-controller-manager").
    pub client: Client,
    /// Events about the objects controllers act on.
    pub recorder: EventRecorder,
    /// The daemon's flags.
    pub config: Arc<Config>,
}
