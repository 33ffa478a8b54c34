//! Authentication: who is making a request. Each credential kind has its own module; the
//! [`Authenticator`] chains them in Kubernetes' order (client certificate, then bearer token:
//! static token file, bootstrap token, ServiceAccount JWT) and falls back to the anonymous
//! user only when no credential was presented at all.

mod bootstrap;
mod serviceaccount;
mod token_file;
mod x509;

pub use bootstrap::{
    BOOTSTRAP_TOKEN_SECRET_TYPE, BootstrapSecrets, BootstrapToken, authenticate_bootstrap, bootstrap_token_secret_name,
};
pub use serviceaccount::{
    ServiceAccountClaims, ServiceAccountTokenSigner, ServiceAccountTokenVerifier, ServiceAccountValidator,
};
pub use token_file::TokenFile;
pub use x509::from_client_certificate;

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The user every unauthenticated request runs as.
pub const ANONYMOUS_USER: &str = "system:anonymous";
/// The group of the anonymous user.
pub const UNAUTHENTICATED_GROUP: &str = "system:unauthenticated";
/// The group every authenticated user is in.
pub const AUTHENTICATED_GROUP: &str = "system:authenticated";
/// The group whose members are cluster administrators (bound to `cluster-admin`).
pub const MASTERS_GROUP: &str = "system:masters";
/// The group of kubelets; members are named `system:node:<node name>`.
pub const NODES_GROUP: &str = "system:nodes";
/// The user-name prefix of kubelets.
pub const NODE_USER_PREFIX: &str = "system:node:";
/// The group of every ServiceAccount.
pub const SERVICE_ACCOUNTS_GROUP: &str = "system:serviceaccounts";
/// The user-name prefix of ServiceAccounts: `system:serviceaccount:<namespace>:<name>`.
pub const SERVICE_ACCOUNT_USER_PREFIX: &str = "system:serviceaccount:";
/// The group of every bootstrap-token user.
pub const BOOTSTRAPPERS_GROUP: &str = "system:bootstrappers";
/// The user-name prefix of bootstrap-token users: `system:bootstrap:<token id>`.
pub const BOOTSTRAP_USER_PREFIX: &str = "system:bootstrap:";
/// Extra key naming the pod a ServiceAccount token is bound to.
pub const EXTRA_POD_NAME: &str = "authentication.kubernetes.io/pod-name";
/// Extra key with the UID of the pod a ServiceAccount token is bound to.
pub const EXTRA_POD_UID: &str = "authentication.kubernetes.io/pod-uid";
/// Extra key naming the node a ServiceAccount token is bound to.
pub const EXTRA_NODE_NAME: &str = "authentication.kubernetes.io/node-name";
/// Extra key with the UID of the node a ServiceAccount token is bound to.
pub const EXTRA_NODE_UID: &str = "authentication.kubernetes.io/node-uid";
/// Extra key identifying the credential (`JTI=<token id>`), for audit.
pub const EXTRA_CREDENTIAL_ID: &str = "authentication.kubernetes.io/credential-id";

/// An authenticated identity, as Kubernetes' `user.Info`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct UserInfo {
    /// The user name (`alice`, `system:node:n1`, `system:serviceaccount:ns:sa`).
    pub name: String,
    /// A unique ID, when the authenticator knows one.
    pub uid: String,
    /// Groups, including `system:authenticated` once authenticated.
    pub groups: Vec<String>,
    /// Authenticator-specific extra attributes (bound pod, credential ID, ...).
    pub extra: BTreeMap<String, Vec<String>>,
}

impl UserInfo {
    /// A user with a name and groups, no UID and no extras.
    pub fn new(name: impl Into<String>, groups: impl IntoIterator<Item = impl Into<String>>) -> Self {
        UserInfo {
            name: name.into(),
            uid: String::new(),
            groups: groups.into_iter().map(Into::into).collect(),
            extra: BTreeMap::new(),
        }
    }

    /// `system:anonymous` in `system:unauthenticated`.
    pub fn anonymous() -> Self {
        UserInfo::new(ANONYMOUS_USER, [UNAUTHENTICATED_GROUP])
    }

    /// The user of ServiceAccount `namespace/name`, with its two groups and `system:authenticated`.
    pub fn service_account(namespace: &str, name: &str) -> Self {
        UserInfo::new(
            service_account_username(namespace, name),
            [SERVICE_ACCOUNTS_GROUP.to_string(), format!("{SERVICE_ACCOUNTS_GROUP}:{namespace}")],
        )
        .with_authenticated_group()
    }

    /// Whether this is a real (not anonymous) identity.
    pub fn is_authenticated(&self) -> bool {
        self.name != ANONYMOUS_USER && !self.in_group(UNAUTHENTICATED_GROUP)
    }

    /// Whether the user is in `group`.
    pub fn in_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == group)
    }

    /// Adds `system:authenticated` unless already present, as Kubernetes does for every
    /// user an authenticator vouches for.
    pub fn with_authenticated_group(mut self) -> Self {
        if !self.in_group(AUTHENTICATED_GROUP) {
            self.groups.push(AUTHENTICATED_GROUP.to_string());
        }
        self
    }

    /// The node name, if this is a kubelet identity (`system:node:<name>` in `system:nodes`).
    pub fn node_name(&self) -> Option<&str> {
        if !self.in_group(NODES_GROUP) {
            return None;
        }
        self.name.strip_prefix(NODE_USER_PREFIX).filter(|n| !n.is_empty())
    }
}

/// `system:serviceaccount:<namespace>:<name>`.
pub fn service_account_username(namespace: &str, name: &str) -> String {
    format!("{SERVICE_ACCOUNT_USER_PREFIX}{namespace}:{name}")
}

/// `(namespace, name)` of a ServiceAccount user name, or `None` for other users.
pub fn split_service_account_username(user: &str) -> Option<(&str, &str)> {
    let rest = user.strip_prefix(SERVICE_ACCOUNT_USER_PREFIX)?;
    let (namespace, name) = rest.split_once(':')?;
    (!namespace.is_empty() && !name.is_empty() && !name.contains(':')).then_some((namespace, name))
}

/// The outcome of authenticating one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Authentication {
    /// A credential identified this user (`system:authenticated` included).
    Authenticated(UserInfo),
    /// No credential was presented and anonymous requests are allowed: run as
    /// [`UserInfo::anonymous`].
    Anonymous,
    /// A credential was presented but is not valid (or anonymous requests are disabled):
    /// answer 401. The reason is for logs, not for the client.
    Rejected(String),
}

impl Authentication {
    /// The user to authorize as, if the request may proceed.
    pub fn user(&self) -> Option<UserInfo> {
        match self {
            Authentication::Authenticated(u) => Some(u.clone()),
            Authentication::Anonymous => Some(UserInfo::anonymous()),
            Authentication::Rejected(_) => None,
        }
    }
}

/// The chain of authenticators the API server runs on each request.
///
/// Lookups (bootstrap Secrets, ServiceAccount existence) are synchronous: back them with an
/// in-memory cache, never a remote call per request.
pub struct Authenticator {
    token_file: Option<TokenFile>,
    bootstrap: Option<Box<dyn BootstrapSecrets>>,
    service_accounts: Option<ServiceAccountTokenVerifier>,
    service_account_validator: Option<Box<dyn ServiceAccountValidator>>,
    anonymous: bool,
}

impl Default for Authenticator {
    fn default() -> Self {
        Authenticator::new()
    }
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("token_file", &self.token_file.is_some())
            .field("bootstrap", &self.bootstrap.is_some())
            .field("service_accounts", &self.service_accounts.is_some())
            .field("anonymous", &self.anonymous)
            .finish()
    }
}

impl Authenticator {
    /// Client certificates only, anonymous requests allowed (Kubernetes' default).
    pub fn new() -> Self {
        Authenticator {
            token_file: None,
            bootstrap: None,
            service_accounts: None,
            service_account_validator: None,
            anonymous: true,
        }
    }

    /// Accept the tokens of a static token file.
    pub fn with_token_file(mut self, tokens: TokenFile) -> Self {
        self.token_file = Some(tokens);
        self
    }

    /// Accept bootstrap tokens, looking their Secrets up with `secrets`.
    pub fn with_bootstrap_tokens(mut self, secrets: impl BootstrapSecrets + 'static) -> Self {
        self.bootstrap = Some(Box::new(secrets));
        self
    }

    /// Accept ServiceAccount JWTs that `verifier` accepts.
    pub fn with_service_account_tokens(mut self, verifier: ServiceAccountTokenVerifier) -> Self {
        self.service_accounts = Some(verifier);
        self
    }

    /// After a ServiceAccount JWT verifies, also ask `validator` whether the ServiceAccount
    /// (and the pod the token is bound to) still exist with the UIDs the token names.
    pub fn with_service_account_validator(mut self, validator: impl ServiceAccountValidator + 'static) -> Self {
        self.service_account_validator = Some(Box::new(validator));
        self
    }

    /// Whether requests without any credential run as `system:anonymous` (`true`) or get a 401.
    pub fn allow_anonymous(mut self, allow: bool) -> Self {
        self.anonymous = allow;
        self
    }

    /// Authenticates a request from its verified TLS peer certificate (DER, leaf first) and its
    /// `Authorization` header.
    pub fn authenticate(&self, peer_certificate: Option<&[u8]>, authorization: Option<&str>) -> Authentication {
        self.authenticate_at(peer_certificate, authorization, jiff::Timestamp::now())
    }

    /// [`Authenticator::authenticate`] at a given time (for expiry checks).
    pub fn authenticate_at(
        &self,
        peer_certificate: Option<&[u8]>,
        authorization: Option<&str>,
        now: jiff::Timestamp,
    ) -> Authentication {
        if let Some(der) = peer_certificate {
            match x509::user_from_certificate(der) {
                Ok(Some(user)) => return Authentication::Authenticated(user),
                // A verified certificate without a CN names nobody: fall through to the token.
                Ok(None) => {}
                Err(e) => return Authentication::Rejected(e.to_string()),
            }
        }
        match bearer_token(authorization) {
            Bearer::None => {
                if self.anonymous {
                    Authentication::Anonymous
                } else {
                    Authentication::Rejected("no credentials and anonymous requests are disabled".into())
                }
            }
            Bearer::Empty => Authentication::Rejected("invalid bearer token".into()),
            Bearer::Token(token) => self.authenticate_token(token, now),
        }
    }

    /// Authenticates a bearer token alone (TokenReview uses this).
    pub fn authenticate_token(&self, token: &str, now: jiff::Timestamp) -> Authentication {
        if let Some(user) = self.token_file.as_ref().and_then(|f| f.authenticate(token)) {
            return Authentication::Authenticated(user);
        }
        if let Some(secrets) = &self.bootstrap
            && let Some(parsed) = BootstrapToken::parse(token)
        {
            if let Some(secret) = secrets.bootstrap_token_secret(&parsed.id)
                && let Some(user) = authenticate_bootstrap(token, &secret, now)
            {
                return Authentication::Authenticated(user);
            }
            // A well-formed bootstrap token cannot also be a JWT.
            return Authentication::Rejected("invalid bootstrap token".into());
        }
        if let Some(verifier) = &self.service_accounts
            && token.split('.').count() == 3
        {
            let claims = match verifier.verify_at(token, now) {
                Ok(c) => c,
                Err(e) => return Authentication::Rejected(e.to_string()),
            };
            if let Some(validator) = &self.service_account_validator
                && let Err(reason) = validator.validate(&claims)
            {
                tracing::debug!(namespace = %claims.namespace, name = %claims.name, %reason, "service account token no longer valid");
                return Authentication::Rejected(reason);
            }
            return Authentication::Authenticated(claims.user_info());
        }
        Authentication::Rejected("invalid bearer token".into())
    }
}

enum Bearer<'a> {
    None,
    Empty,
    Token(&'a str),
}

/// Kubernetes' reading of `Authorization`: `Bearer <token>` (scheme case-insensitive);
/// another scheme counts as no credential, an empty token as a bad one.
fn bearer_token(header: Option<&str>) -> Bearer<'_> {
    let Some(value) = header.map(str::trim).filter(|v| !v.is_empty()) else {
        return Bearer::None;
    };
    let mut parts = value.splitn(3, ' ');
    let scheme = parts.next().unwrap_or_default();
    let Some(token) = parts.next() else {
        return Bearer::None;
    };
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Bearer::None;
    }
    if token.is_empty() { Bearer::Empty } else { Bearer::Token(token) }
}

/// Byte comparison whose time does not depend on where the inputs differ.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests;
