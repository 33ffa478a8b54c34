//! Bootstrap tokens (`abcdef.0123456789abcdef`): short-lived credentials a joining node uses
//! before it has a certificate. Each lives in a Secret `bootstrap-token-<id>` of type
//! `bootstrap.kubernetes.io/token` in `kube-system`.

use super::{AUTHENTICATED_GROUP, BOOTSTRAP_USER_PREFIX, BOOTSTRAPPERS_GROUP, UserInfo, constant_time_eq};
use k8s_openapi::api::core::v1::Secret;
use std::sync::Arc;

/// The Secret type of bootstrap tokens.
pub const BOOTSTRAP_TOKEN_SECRET_TYPE: &str = "bootstrap.kubernetes.io/token";
/// The namespace bootstrap token Secrets live in.
pub const BOOTSTRAP_TOKEN_NAMESPACE: &str = "kube-system";

/// A parsed bootstrap token.
#[derive(Clone, PartialEq, Eq)]
pub struct BootstrapToken {
    /// The public part, `[a-z0-9]{6}`.
    pub id: String,
    /// The secret part, `[a-z0-9]{16}`.
    pub secret: String,
}

impl std::fmt::Debug for BootstrapToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BootstrapToken").field("id", &self.id).finish_non_exhaustive()
    }
}

impl BootstrapToken {
    /// Parses `<id>.<secret>`; `None` unless it has exactly that shape.
    pub fn parse(token: &str) -> Option<Self> {
        let (id, secret) = token.split_once('.')?;
        let ok =
            |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        (ok(id, 6) && ok(secret, 16)).then(|| BootstrapToken { id: id.to_string(), secret: secret.to_string() })
    }

    /// A fresh random token.
    pub fn generate() -> crate::error::Result<Self> {
        use ring::rand::SecureRandom as _;
        const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
        let mut bytes = [0u8; 22];
        let rng = ring::rand::SystemRandom::new();
        let mut out = String::with_capacity(22);
        while out.len() < 22 {
            rng.fill(&mut bytes).map_err(|_| crate::error::AuthError::Signing("no randomness".into()))?;
            // 252 = 7 * 36: reject the top values so every character is equally likely.
            out.extend(bytes.iter().filter(|b| **b < 252).map(|b| ALPHABET[(*b % 36) as usize] as char));
        }
        Ok(BootstrapToken { id: out[..6].to_string(), secret: out[6..22].to_string() })
    }

    /// The name of the Secret holding this token.
    pub fn secret_name(&self) -> String {
        bootstrap_token_secret_name(&self.id)
    }

    /// `<id>.<secret>`, what the client presents.
    pub fn token(&self) -> String {
        format!("{}.{}", self.id, self.secret)
    }
}

/// `bootstrap-token-<id>`.
pub fn bootstrap_token_secret_name(id: &str) -> String {
    format!("bootstrap-token-{id}")
}

/// Looks up the Secret of a bootstrap token id (in `kube-system`). Implemented for closures.
pub trait BootstrapSecrets: Send + Sync {
    /// The Secret `bootstrap-token-<token_id>` in `kube-system`, if it exists.
    fn bootstrap_token_secret(&self, token_id: &str) -> Option<Arc<Secret>>;
}

impl<F> BootstrapSecrets for F
where
    F: Fn(&str) -> Option<Arc<Secret>> + Send + Sync,
{
    fn bootstrap_token_secret(&self, token_id: &str) -> Option<Arc<Secret>> {
        self(token_id)
    }
}

/// The user of `token` if `secret` is its valid, unexpired bootstrap token Secret allowed for
/// authentication: `system:bootstrap:<id>` in `system:bootstrappers`, the Secret's
/// `auth-extra-groups` and `system:authenticated`. Any mismatch gives `None` (a 401).
pub fn authenticate_bootstrap(token: &str, secret: &Secret, now: jiff::Timestamp) -> Option<UserInfo> {
    let parsed = BootstrapToken::parse(token)?;
    let reject = |why: &str| {
        tracing::debug!(token_id = %parsed.id, reason = why, "bootstrap token rejected");
    };
    if secret.type_.as_deref() != Some(BOOTSTRAP_TOKEN_SECRET_TYPE) {
        reject("secret has the wrong type");
        return None;
    }
    if secret.metadata.name.as_deref() != Some(parsed.secret_name().as_str())
        || secret.metadata.namespace.as_deref().is_some_and(|ns| ns != BOOTSTRAP_TOKEN_NAMESPACE)
    {
        reject("secret has the wrong name or namespace");
        return None;
    }
    if secret.metadata.deletion_timestamp.is_some() {
        reject("secret is being deleted");
        return None;
    }
    let data = secret.data.as_ref()?;
    let field = |key: &str| data.get(key).map(|v| v.0.as_slice());
    if field("token-id") != Some(parsed.id.as_bytes()) {
        reject("token-id does not match");
        return None;
    }
    if !constant_time_eq(field("token-secret").unwrap_or_default(), parsed.secret.as_bytes()) {
        reject("token-secret does not match");
        return None;
    }
    if let Some(expiration) = field("expiration") {
        let Some(expires) = std::str::from_utf8(expiration).ok().and_then(|s| s.parse::<jiff::Timestamp>().ok()) else {
            reject("expiration is not RFC 3339");
            return None;
        };
        if now >= expires {
            reject("token expired");
            return None;
        }
    }
    if field("usage-bootstrap-authentication") != Some(b"true") {
        reject("token is not for authentication");
        return None;
    }
    let mut groups = vec![BOOTSTRAPPERS_GROUP.to_string()];
    if let Some(extra) = field("auth-extra-groups") {
        let extra = std::str::from_utf8(extra).ok()?;
        for group in extra.split(',').map(str::trim).filter(|g| !g.is_empty()) {
            if !valid_extra_group(group) {
                reject("auth-extra-groups has an invalid group");
                return None;
            }
            if !groups.iter().any(|g| g == group) {
                groups.push(group.to_string());
            }
        }
    }
    groups.push(AUTHENTICATED_GROUP.to_string());
    Some(UserInfo::new(format!("{BOOTSTRAP_USER_PREFIX}{}", parsed.id), groups))
}

/// `system:bootstrappers:[a-z0-9:-]{0,255}[a-z0-9]`.
fn valid_extra_group(group: &str) -> bool {
    let Some(rest) = group.strip_prefix("system:bootstrappers:") else {
        return false;
    };
    let allowed = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    !rest.is_empty()
        && rest.len() <= 256
        && rest.bytes().all(|b| allowed(b) || b == b':' || b == b'-')
        && rest.bytes().last().is_some_and(allowed)
}
