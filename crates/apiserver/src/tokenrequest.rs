//! ServiceAccount tokens this server issues: the TokenRequest API
//! (`POST serviceaccounts/{name}/token`, REST and gRPC) and Kubernetes' "ServiceAccount"
//! admission of pods, which gives every pod that does not opt out a projected
//! `kube-api-access-*` volume (token, cluster CA, namespace) mounted in each container.
//!
//! Both are on only with `--service-account-signing-key-file`: without a signer the
//! subresource is not served (404, as in Kubernetes) and pods are admitted unchanged.

use crate::Server;
use crate::config::Config;
use crate::meta::{self, meta_str};
use crate::objects::Registry;
use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest};
use rkube_api::{ApiError, FieldError, ResourceInfo, registry};
use rkube_auth::authn::{ServiceAccountClaims, ServiceAccountTokenSigner};
use serde_json::{Value, json};

/// Where the admission mounts the token volume in every container.
pub const TOKEN_MOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// Name prefix of the volume the admission adds.
pub const TOKEN_VOLUME_PREFIX: &str = "kube-api-access-";
/// ConfigMap with the cluster CA that the root-ca-cert-publisher keeps in every namespace.
pub const ROOT_CA_CONFIG_MAP: &str = "kube-root-ca.crt";
/// expirationSeconds of the projected token: Kubernetes asks for one hour and seven seconds,
/// an odd value that marks tokens of auto-mounted volumes.
pub const PROJECTED_TOKEN_SECONDS: i64 = 3607;

/// Default lifetime of a requested token.
const DEFAULT_EXPIRATION_SECONDS: i64 = 3600;
/// Shortest lifetime a client may ask for.
const MIN_EXPIRATION_SECONDS: i64 = 600;
/// Longest lifetime a client may ask for (Kubernetes' validation limit).
const MAX_EXPIRATION_SECONDS: i64 = 1 << 32;
/// Marks a static pod's mirror: those are never changed by admission.
const MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";

/// Why the token issuer could not be set up at start.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The signing key file could not be read.
    #[error("--service-account-signing-key-file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The key is not one the signer takes.
    #[error("--service-account-signing-key-file {path}: {source}")]
    Key {
        /// The file.
        path: String,
        /// What is wrong with it.
        source: rkube_auth::AuthError,
    },
}

/// Signs the tokens of TokenRequests with the cluster's ServiceAccount key.
pub struct TokenIssuer {
    signer: ServiceAccountTokenSigner,
    /// Audiences a request without any gets: `--api-audiences`, else the issuer.
    audiences: Vec<String>,
}

impl TokenIssuer {
    /// The issuer `--service-account-signing-key-file` and `--service-account-issuer` ask for,
    /// or None when no signing key is configured.
    pub fn from_config(config: &Config) -> Result<Option<TokenIssuer>, TokenError> {
        let Some(path) = &config.service_account_signing_key_file else { return Ok(None) };
        let shown = path.display().to_string();
        let pem = std::fs::read_to_string(path).map_err(|source| TokenError::Read { path: shown.clone(), source })?;
        let signer = ServiceAccountTokenSigner::new(&pem, config.service_account_issuer.clone())
            .map_err(|source| TokenError::Key { path: shown, source })?;
        let audiences = if config.api_audiences.is_empty() {
            vec![config.service_account_issuer.clone()]
        } else {
            config.api_audiences.clone()
        };
        Ok(Some(TokenIssuer { signer, audiences }))
    }

    /// The audiences tokens get when the request names none.
    pub fn default_audiences(&self) -> &[String] {
        &self.audiences
    }
}

fn resource(plural: &str) -> &'static ResourceInfo {
    registry::lookup("", "v1", plural).unwrap_or_else(|| panic!("v1 {plural} are served"))
}

/// `TokenRequest` as a kind, for 422 details.
fn token_request_kind() -> ResourceInfo {
    ResourceInfo { kind: "TokenRequest", group: "authentication.k8s.io", ..*resource("serviceaccounts") }
}

/// `POST /api/v1/namespaces/{namespace}/serviceaccounts/{name}/token`: a signed token for the
/// ServiceAccount, bound to a pod when the request names one; answers the TokenRequest with
/// `status.token` and `status.expirationTimestamp` (201).
pub async fn create_token(
    server: &Server,
    requester: Option<&rkube_auth::UserInfo>,
    namespace: &str,
    name: &str,
    body: Value,
) -> Result<Value, ApiError> {
    let Some(issuer) = server.tokens.as_ref() else {
        // Kubernetes serves the subresource only when it can sign.
        return Err(ApiError::NotFound { resource: String::new(), name: "serviceaccounts/token".into() });
    };
    let registry = &server.registry;
    let request = decode_request(body)?;
    let mut spec = request.spec;
    let expiration_seconds = spec.expiration_seconds.unwrap_or(DEFAULT_EXPIRATION_SECONDS);
    let mut errors = Vec::new();
    if expiration_seconds < MIN_EXPIRATION_SECONDS {
        errors.push(FieldError::invalid(
            "spec.expirationSeconds",
            &json!(expiration_seconds),
            "may not specify a duration less than 10 minutes",
        ));
    } else if expiration_seconds > MAX_EXPIRATION_SECONDS {
        errors.push(FieldError::invalid(
            "spec.expirationSeconds",
            &json!(expiration_seconds),
            "may not specify a duration larger than 2^32 seconds",
        ));
    }
    if let Some(r) = &spec.bound_object_ref
        && r.kind.as_deref() != Some("Pod")
    {
        let kind = json!(r.kind.clone().unwrap_or_default());
        errors.push(FieldError::not_supported("spec.boundObjectRef.kind", &kind, &["Pod"]));
    }
    if !errors.is_empty() {
        return Err(ApiError::invalid(&token_request_kind(), name, errors));
    }

    let accounts = resource("serviceaccounts");
    let account = registry.get(accounts, Some(namespace), name).await?;
    if account.pointer("/metadata/deletionTimestamp").is_some() {
        return Err(ApiError::not_found(accounts, name));
    }
    let account_uid = meta_str(&account, "uid").unwrap_or_default().to_string();

    let mut pod_claim = None;
    let mut node_claim = None;
    if let Some(r) = &mut spec.bound_object_ref {
        let (pod_name, uid, node) = bound_pod(registry, namespace, name, r).await?;
        crate::access::admit_node_token(requester, node.as_deref())?;
        node_claim = node.and_then(|n| node_uid(registry, &n));
        r.uid = Some(uid.clone());
        r.api_version.get_or_insert_with(|| "v1".into());
        pod_claim = Some((pod_name, uid));
    }

    if spec.audiences.is_empty() {
        spec.audiences = issuer.audiences.clone();
    }
    spec.expiration_seconds = Some(expiration_seconds);
    let now = jiff::Timestamp::now();
    let expiration = now
        .checked_add(jiff::SignedDuration::from_secs(expiration_seconds))
        .map_err(|e| ApiError::Internal(format!("token expiration out of range: {e}")))?;
    let claims = ServiceAccountClaims {
        namespace: namespace.to_string(),
        name: name.to_string(),
        uid: account_uid,
        pod: pod_claim.clone(),
        node: node_claim,
        audiences: spec.audiences.clone(),
        expiration,
        token_id: None,
    };
    let token =
        issuer.signer.issue_at(&claims, now).map_err(|e| ApiError::Internal(format!("signing the token: {e}")))?;
    tracing::info!(
        namespace,
        serviceaccount = name,
        pod = pod_claim.as_ref().map(|(p, _)| p.as_str()).unwrap_or(""),
        expiration_seconds,
        "issued a ServiceAccount token"
    );
    let seconds = jiff::Timestamp::from_second(expiration.as_second()).unwrap_or(expiration);
    Ok(json!({
        "kind": "TokenRequest",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"name": name, "namespace": namespace, "creationTimestamp": meta::now()},
        "spec": spec,
        "status": {"token": token, "expirationTimestamp": seconds.to_string()},
    }))
}

/// The request body as a TokenRequest; 400 when it is another kind or does not decode.
fn decode_request(body: Value) -> Result<TokenRequest, ApiError> {
    if !body.is_object() {
        return Err(ApiError::BadRequest("the body of a token request must be a TokenRequest object".into()));
    }
    let kind = body["kind"].as_str().unwrap_or("TokenRequest");
    let api_version = body["apiVersion"].as_str().unwrap_or("authentication.k8s.io/v1");
    if (kind, api_version) != ("TokenRequest", "authentication.k8s.io/v1") {
        return Err(ApiError::BadRequest(format!(
            "expected authentication.k8s.io/v1 TokenRequest, got {api_version} {kind}"
        )));
    }
    let mut body = body;
    // The status is the server's to fill; clients (kubectl) send an empty one.
    if let Some(m) = body.as_object_mut() {
        m.remove("status");
    }
    // A client may leave out the spec altogether; every field of it has a default.
    if body.get("spec").is_none_or(Value::is_null) {
        body["spec"] = json!({"audiences": []});
    } else if body["spec"].get("audiences").is_none_or(Value::is_null) {
        body["spec"]["audiences"] = json!([]);
    }
    serde_json::from_value::<TokenRequest>(body)
        .map_err(|e| ApiError::BadRequest(format!("decoding the TokenRequest: {e}")))
}

/// The pod a token is bound to: it must exist, run as this ServiceAccount, and have the uid
/// the reference names (when it names one). Returns its name, uid and node.
async fn bound_pod(
    registry: &Registry,
    namespace: &str,
    account: &str,
    r: &BoundObjectReference,
) -> Result<(String, String, Option<String>), ApiError> {
    let pods = resource("pods");
    let pod_name = r.name.clone().unwrap_or_default();
    if pod_name.is_empty() {
        return Err(ApiError::invalid(
            &token_request_kind(),
            account,
            vec![FieldError::required("spec.boundObjectRef.name", "")],
        ));
    }
    if let Some(v) = r.api_version.as_deref().filter(|v| !v.is_empty() && *v != "v1") {
        return Err(ApiError::BadRequest(format!("boundObjectRef.apiVersion {v:?} is not v1, the version of Pod")));
    }
    let pod = registry.get(pods, Some(namespace), &pod_name).await?;
    let uid = meta_str(&pod, "uid").unwrap_or_default().to_string();
    if let Some(want) = r.uid.as_deref().filter(|u| !u.is_empty())
        && want != uid
    {
        return Err(ApiError::Conflict {
            resource: "Pod".into(),
            name: pod_name,
            detail: format!(
                "the UID in the bound object reference ({want}) does not match the UID in record. The object might have been deleted and then recreated"
            ),
        });
    }
    let runs_as = pod.pointer("/spec/serviceAccountName").and_then(Value::as_str).unwrap_or("default");
    if runs_as != account {
        return Err(ApiError::BadRequest(format!(
            "cannot bind token for serviceaccount {account:?} to pod running with different serviceaccount name."
        )));
    }
    if pod.pointer("/metadata/deletionTimestamp").is_some() {
        return Err(ApiError::BadRequest(format!("cannot bind token to pod {pod_name:?}: it is being deleted")));
    }
    let node = pod.pointer("/spec/nodeName").and_then(Value::as_str).filter(|n| !n.is_empty()).map(String::from);
    Ok((pod_name, uid, node))
}

/// The node claim (name, uid) of a token bound to a pod on `node`, as Kubernetes adds it;
/// None when the Node is not known.
fn node_uid(registry: &Registry, node: &str) -> Option<(String, String)> {
    let cached = registry.cache.get(&resource("nodes").key(None, node))?;
    let obj = serde_json::from_slice::<Value>(&cached.bytes).ok()?;
    Some((node.to_string(), meta_str(&obj, "uid")?.to_string()))
}

/// Kubernetes' ServiceAccount admission of a new pod (`pod` already defaulted): copies the
/// account's imagePullSecrets when the pod has none and, unless automounting is off (on the
/// pod, else on the account), adds the `kube-api-access-*` projected volume and mounts it
/// read-only at [`TOKEN_MOUNT_PATH`] in every container that has nothing mounted there.
///
/// A missing ServiceAccount refuses the pod (403), except `default`: the ServiceAccount
/// controller creates that one moments after its namespace, and the kubelet retries the
/// token until it exists, so a pod racing the controller is not refused.
pub async fn admit_pod(registry: &Registry, pod: &mut Value) -> Result<(), ApiError> {
    if pod.pointer(&format!("/metadata/annotations/{}", MIRROR_ANNOTATION.replace('/', "~1"))).is_some() {
        return Ok(());
    }
    let namespace = meta_str(pod, "namespace").unwrap_or("default").to_string();
    let account_name = match pod.pointer("/spec/serviceAccountName").and_then(Value::as_str) {
        Some(n) if !n.is_empty() => n.to_string(),
        _ => {
            pod["spec"]["serviceAccountName"] = json!("default");
            "default".to_string()
        }
    };
    let account = lookup_account(registry, &namespace, &account_name).await?;
    if account.is_none() && account_name != "default" {
        let pod_name = meta_str(pod, "name").or(meta_str(pod, "generateName")).unwrap_or_default();
        return Err(ApiError::Forbidden {
            message: format!(
                "pods {pod_name:?} is forbidden: error looking up service account {namespace}/{account_name}: serviceaccount {account_name:?} not found"
            ),
            target: None,
        });
    }
    if let Some(account) = &account {
        let pod_secrets =
            pod.pointer("/spec/imagePullSecrets").and_then(Value::as_array).is_some_and(|s| !s.is_empty());
        if !pod_secrets
            && let Some(secrets) = account.get("imagePullSecrets").and_then(Value::as_array).filter(|s| !s.is_empty())
        {
            pod["spec"]["imagePullSecrets"] = json!(secrets);
        }
    }
    let automount = pod
        .pointer("/spec/automountServiceAccountToken")
        .and_then(Value::as_bool)
        .or_else(|| account.as_ref().and_then(|a| a.get("automountServiceAccountToken")).and_then(Value::as_bool))
        .unwrap_or(true);
    if automount {
        mount_token_volume(pod);
    }
    Ok(())
}

/// The ServiceAccount from the watch cache, or from etcd when the cache trails a create.
async fn lookup_account(registry: &Registry, namespace: &str, name: &str) -> Result<Option<Value>, ApiError> {
    let accounts = resource("serviceaccounts");
    if let Some(o) = registry.cache.get(&accounts.key(Some(namespace), name))
        && let Ok(v) = serde_json::from_slice::<Value>(&o.bytes)
    {
        return Ok(Some(v));
    }
    match registry.get(accounts, Some(namespace), name).await {
        Ok(v) => Ok(Some(v)),
        Err(ApiError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The projected volume of an auto-mounted token, as Kubernetes writes it.
pub fn token_volume(name: &str) -> Value {
    json!({
        "name": name,
        "projected": {
            "defaultMode": 420,
            "sources": [
                {"serviceAccountToken": {"expirationSeconds": PROJECTED_TOKEN_SECONDS, "path": "token"}},
                {"configMap": {"name": ROOT_CA_CONFIG_MAP, "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {"downwardAPI": {"items": [
                    {"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}
                ]}},
            ],
        },
    })
}

/// Adds the token volume (unless the pod has one already) and its mount in every container
/// and init container without a mount at [`TOKEN_MOUNT_PATH`].
pub fn mount_token_volume(pod: &mut Value) {
    let volumes: Vec<String> = pod
        .pointer("/spec/volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|v| v["name"].as_str().map(String::from))
        .collect();
    let existing = volumes.iter().find(|v| v.starts_with(TOKEN_VOLUME_PREFIX)).cloned();
    let volume_name = existing.clone().unwrap_or_else(|| {
        let mut name = meta::generate_name(TOKEN_VOLUME_PREFIX);
        while volumes.contains(&name) {
            name = meta::generate_name(TOKEN_VOLUME_PREFIX);
        }
        name
    });
    let mut mounted = false;
    for list in ["initContainers", "containers"] {
        let Some(containers) = pod.pointer_mut(&format!("/spec/{list}")).and_then(Value::as_array_mut) else {
            continue;
        };
        for c in containers {
            let has_mount = c["volumeMounts"]
                .as_array()
                .is_some_and(|m| m.iter().any(|m| m["mountPath"].as_str() == Some(TOKEN_MOUNT_PATH)));
            if has_mount {
                continue;
            }
            if !c["volumeMounts"].is_array() {
                c["volumeMounts"] = json!([]);
            }
            if let Some(mounts) = c["volumeMounts"].as_array_mut() {
                mounts.push(json!({"name": volume_name, "readOnly": true, "mountPath": TOKEN_MOUNT_PATH}));
                mounted = true;
            }
        }
    }
    if mounted && existing.is_none() {
        if !pod["spec"]["volumes"].is_array() {
            pod["spec"]["volumes"] = json!([]);
        }
        if let Some(v) = pod["spec"]["volumes"].as_array_mut() {
            v.push(token_volume(&volume_name));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_container_gets_the_token_mount_and_one_volume_is_added() {
        let mut pod = json!({"spec": {
            "initContainers": [{"name": "init"}],
            "containers": [
                {"name": "a"},
                {"name": "b", "volumeMounts": [{"name": "own", "mountPath": TOKEN_MOUNT_PATH}]},
            ],
            "volumes": [{"name": "own", "emptyDir": {}}],
        }});
        mount_token_volume(&mut pod);
        let volumes = pod["spec"]["volumes"].as_array().unwrap();
        assert_eq!(volumes.len(), 2);
        let name = volumes[1]["name"].as_str().unwrap().to_string();
        assert!(name.starts_with(TOKEN_VOLUME_PREFIX) && name.len() == TOKEN_VOLUME_PREFIX.len() + 5, "{name}");
        let sources = &volumes[1]["projected"]["sources"];
        assert_eq!(sources[0]["serviceAccountToken"]["expirationSeconds"], 3607);
        assert_eq!(sources[1]["configMap"]["name"], ROOT_CA_CONFIG_MAP);
        assert_eq!(sources[2]["downwardAPI"]["items"][0]["fieldRef"]["fieldPath"], "metadata.namespace");
        let mount = json!({"name": name, "readOnly": true, "mountPath": TOKEN_MOUNT_PATH});
        assert_eq!(pod["spec"]["initContainers"][0]["volumeMounts"], json!([mount]));
        assert_eq!(pod["spec"]["containers"][0]["volumeMounts"], json!([mount]));
        assert_eq!(pod["spec"]["containers"][1]["volumeMounts"].as_array().unwrap().len(), 1, "its own mount stays");

        // Admitting again (an apply re-creating it, say) adds nothing.
        let before = pod.clone();
        mount_token_volume(&mut pod);
        assert_eq!(pod, before);
    }

    #[test]
    fn no_volume_when_every_container_mounts_something_there() {
        let mut pod = json!({"spec": {
            "containers": [{"name": "a", "volumeMounts": [{"name": "x", "mountPath": TOKEN_MOUNT_PATH}]}],
        }});
        mount_token_volume(&mut pod);
        assert!(pod["spec"].get("volumes").is_none(), "{pod}");
    }

    #[test]
    fn token_requests_decode_with_defaults_and_refuse_other_kinds() {
        let r = decode_request(json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest"})).unwrap();
        assert!(r.spec.audiences.is_empty() && r.spec.expiration_seconds.is_none());
        let r =
            decode_request(json!({"spec": {"expirationSeconds": 700, "boundObjectRef": {"kind": "Pod", "name": "p"}}}))
                .unwrap();
        assert_eq!(r.spec.expiration_seconds, Some(700));
        assert_eq!(r.spec.bound_object_ref.unwrap().name.as_deref(), Some("p"));
        let kubectl = json!({"kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1", "metadata": {},
            "spec": {"audiences": null, "expirationSeconds": null, "boundObjectRef": null},
            "status": {"token": "", "expirationTimestamp": null}});
        assert!(decode_request(kubectl).is_ok(), "kubectl's request, status and all");
        assert_eq!(decode_request(json!({"kind": "Pod", "apiVersion": "v1"})).unwrap_err().code(), 400);
        assert_eq!(decode_request(json!({"spec": {"expirationSeconds": "x"}})).unwrap_err().code(), 400);
        assert_eq!(decode_request(json!([])).unwrap_err().code(), 400);
    }
}
