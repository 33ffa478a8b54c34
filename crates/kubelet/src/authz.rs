//! Authorization of requests to the kubelet API (`--authorization-mode=Webhook`): the user of
//! the verified client certificate is checked with a SubjectAccessReview on this Node's
//! `nodes/<subresource>`, as Kubernetes' kubelet does, so a certificate of the cluster CA alone
//! no longer opens exec, logs or stats to anyone. Answers are cached (5 minutes when allowed,
//! 30 seconds when not). With `--authentication-token-webhook`, a bearer token (a
//! ServiceAccount's, say) names the caller instead, found by TokenReview (cached 2 minutes).

use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::authorization::v1::{ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec};
use rkube_auth::UserInfo;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const ALLOWED_TTL: Duration = Duration::from_secs(300);
const TOKEN_TTL: Duration = Duration::from_secs(120);
const DENIED_TTL: Duration = Duration::from_secs(30);
/// Entries kept at most, so that many callers cannot grow the cache without bound.
const CACHE_LIMIT: usize = 4096;

/// What the kubelet asks about a request: the verb and `nodes` subresource.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Attributes {
    /// `get`, `create`, `update`, `patch` or `delete`, from the HTTP method.
    pub verb: &'static str,
    /// `stats`, `metrics`, `log`, `spec`, else `proxy`.
    pub subresource: &'static str,
}

/// Kubernetes' mapping of a kubelet request to attributes on its Node.
pub fn attributes(method: &http::Method, path: &str) -> Attributes {
    let verb = match *method {
        http::Method::POST => "create",
        http::Method::PUT => "update",
        http::Method::PATCH => "patch",
        http::Method::DELETE => "delete",
        _ => "get",
    };
    let under = |prefix: &str| path == prefix || path.starts_with(&format!("{prefix}/"));
    let subresource = if under("/stats") {
        "stats"
    } else if under("/metrics") {
        "metrics"
    } else if under("/logs") {
        "log"
    } else if under("/spec") {
        "spec"
    } else {
        "proxy"
    };
    Attributes { verb, subresource }
}

/// Why a request was refused, as the kubelet words it.
pub fn forbidden_message(user: &UserInfo, a: &Attributes) -> String {
    format!("Forbidden (user={}, verb={}, resource=nodes, subresource={})", user.name, a.verb, a.subresource)
}

/// Who asked what: user name, groups and the attributes.
type CacheKey = (String, Vec<String>, Attributes);

/// Asks the API server, through SubjectAccessReviews, whether callers may use this node's API
/// (and, when it authenticates tokens, through TokenReviews who they are).
pub struct WebhookAuthorizer {
    client: rkube_client::Client,
    node: String,
    /// Whether bearer tokens are accepted (`--authentication-token-webhook`).
    tokens: bool,
    /// The answer and until when it holds.
    cache: Mutex<HashMap<CacheKey, (bool, Instant)>>,
    /// Reviewed tokens: the user (None: invalid) and until when that holds.
    token_cache: Mutex<HashMap<String, (Option<UserInfo>, Instant)>>,
}

impl WebhookAuthorizer {
    /// An authorizer for node `node` asking through `client`; `tokens` also authenticates
    /// bearer tokens.
    pub fn new(client: rkube_client::Client, node: String, tokens: bool) -> WebhookAuthorizer {
        WebhookAuthorizer { client, node, tokens, cache: Mutex::default(), token_cache: Mutex::default() }
    }

    /// The user a bearer token names, by TokenReview; None when tokens are not accepted or
    /// the token names nobody.
    pub async fn authenticate_token(&self, token: &str) -> Option<UserInfo> {
        if !self.tokens || token.is_empty() {
            return None;
        }
        if let Ok(cache) = self.token_cache.lock()
            && let Some((user, until)) = cache.get(token)
            && Instant::now() < *until
        {
            return user.clone();
        }
        let review = TokenReview {
            spec: TokenReviewSpec { token: Some(token.to_string()), ..Default::default() },
            ..Default::default()
        };
        let user = match self.client.api::<TokenReview>(None).create(&review).await {
            Ok(answer) => {
                answer.status.filter(|s| s.authenticated == Some(true)).and_then(|s| s.user).map(|u| UserInfo {
                    name: u.username.unwrap_or_default(),
                    uid: u.uid.unwrap_or_default(),
                    groups: u.groups.unwrap_or_default(),
                    extra: u.extra.unwrap_or_default().into_iter().collect(),
                })
            }
            Err(e) => {
                tracing::warn!(error = %e, "TokenReview failed");
                return None;
            }
        };
        if let Ok(mut cache) = self.token_cache.lock() {
            let now = Instant::now();
            if cache.len() >= CACHE_LIMIT {
                cache.retain(|_, (_, until)| *until > now);
            }
            if cache.len() < CACHE_LIMIT {
                cache.insert(token.to_string(), (user.clone(), now + TOKEN_TTL));
            }
        }
        user
    }

    /// Whether `user` may do `a` on this node; a failed review counts as a refusal.
    pub async fn allowed(&self, user: &UserInfo, a: &Attributes) -> bool {
        let key = (user.name.clone(), user.groups.clone(), a.clone());
        if let Ok(cache) = self.cache.lock()
            && let Some((allowed, until)) = cache.get(&key)
            && Instant::now() < *until
        {
            return *allowed;
        }
        let review = SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: Some(user.name.clone()),
                uid: (!user.uid.is_empty()).then(|| user.uid.clone()),
                groups: Some(user.groups.clone()),
                extra: (!user.extra.is_empty()).then(|| user.extra.clone()),
                resource_attributes: Some(ResourceAttributes {
                    verb: Some(a.verb.into()),
                    version: Some("v1".into()),
                    resource: Some("nodes".into()),
                    subresource: Some(a.subresource.into()),
                    name: Some(self.node.clone()),
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..Default::default()
        };
        let allowed = match self.client.api::<SubjectAccessReview>(None).create(&review).await {
            Ok(answer) => answer.status.is_some_and(|s| s.allowed),
            Err(e) => {
                // Not cached: the next request asks again.
                tracing::warn!(user = %user.name, verb = a.verb, subresource = a.subresource, error = %e, "SubjectAccessReview failed");
                return false;
            }
        };
        if let Ok(mut cache) = self.cache.lock() {
            let now = Instant::now();
            if cache.len() >= CACHE_LIMIT {
                cache.retain(|_, (_, until)| *until > now);
            }
            if cache.len() < CACHE_LIMIT {
                cache.insert(key, (allowed, now + if allowed { ALLOWED_TTL } else { DENIED_TTL }));
            }
        }
        allowed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_map_to_node_subresources_as_in_kubernetes() {
        let a = |m: http::Method, p: &str| {
            let a = attributes(&m, p);
            (a.verb, a.subresource)
        };
        assert_eq!(a(http::Method::GET, "/stats/summary"), ("get", "stats"));
        assert_eq!(a(http::Method::GET, "/metrics/cadvisor"), ("get", "metrics"));
        assert_eq!(a(http::Method::GET, "/logs/"), ("get", "log"));
        assert_eq!(a(http::Method::GET, "/spec"), ("get", "spec"));
        assert_eq!(a(http::Method::POST, "/exec/default/web/main"), ("create", "proxy"));
        assert_eq!(a(http::Method::GET, "/containerLogs/default/web/main"), ("get", "proxy"));
        assert_eq!(a(http::Method::POST, "/images/load"), ("create", "proxy"));
        assert_eq!(a(http::Method::GET, "/statsfoo"), ("get", "proxy"));
        let alice = UserInfo::new("alice", ["devs"]);
        assert_eq!(
            forbidden_message(&alice, &attributes(&http::Method::POST, "/exec/x")),
            "Forbidden (user=alice, verb=create, resource=nodes, subresource=proxy)"
        );
    }
}
