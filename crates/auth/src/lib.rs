//! rkube-auth: the API server's security decisions as a pure library (no I/O beyond reading
//! and writing PKI files). [`pki`] creates the cluster CA, certificates and kubeconfigs;
//! [`authn`] turns a request's client certificate or bearer token into a [`UserInfo`];
//! [`rbac`] and [`node`] decide whether that user may do what the request asks.
//! Objects the decisions depend on (Secrets, RBAC objects, pods) come from the caller
//! through small synchronous traits, which the API server backs with its watch cache.

pub mod authn;
mod der;
pub mod error;
pub mod node;
pub mod pki;
pub mod rbac;

pub use authn::{Authentication, Authenticator, UserInfo};
pub use error::{AuthError, Result};
pub use rbac::{Attributes, Authorizer, Decision};
