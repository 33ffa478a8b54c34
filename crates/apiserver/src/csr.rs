//! What the API server itself does for certificates.k8s.io CertificateSigningRequests, beyond
//! generic storage: on create it records who asked (`spec.username`, `uid`, `groups`,
//! `extra`, overwriting whatever the client sent) and checks that `spec.request` is a
//! certificate request whose signature verifies; the `approval` subresource changes only the
//! conditions and needs the `approve` verb on the signer; the `status` subresource cannot
//! touch the Approved/Denied conditions, and setting a certificate needs the `sign` verb on
//! the signer (Kubernetes' CertificateApproval and CertificateSigning admission).

use crate::Server;
use crate::meta::meta_mut;
use crate::objects::{Outcome, Part, WriteOptions};
use base64::Engine as _;
use rkube_api::{ApiError, FieldError, ResourceInfo};
use rkube_auth::{Attributes, Decision, UserInfo};
use serde_json::{Value, json};

const GROUP: &str = "certificates.k8s.io";
/// The condition types the approval subresource owns.
const APPROVAL_CONDITIONS: &[&str] = &["Approved", "Denied"];

/// Whether `res` is the CertificateSigningRequest resource.
pub fn is_csr(res: &ResourceInfo) -> bool {
    res.group == GROUP && res.kind == "CertificateSigningRequest"
}

fn invalid(name: &str, field: &str, detail: &str) -> ApiError {
    ApiError::Invalid {
        kind: "CertificateSigningRequest".into(),
        group: GROUP.into(),
        name: name.to_string(),
        causes: vec![FieldError::invalid(field, &Value::from("<binary>"), detail)],
    }
}

/// Fills the requester into a new CSR's spec and checks its request; an unparsable request is
/// 422 on `spec.request` (a missing one is left to validation, which says "Required").
pub fn prepare_create(obj: &mut Value, user: Option<&UserInfo>) -> Result<(), ApiError> {
    let name = obj.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default().to_string();
    let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) else { return Ok(()) };
    for field in ["username", "uid", "groups", "extra"] {
        spec.remove(field);
    }
    if let Some(user) = user {
        spec.insert("username".into(), json!(user.name));
        if !user.uid.is_empty() {
            spec.insert("uid".into(), json!(user.uid));
        }
        if !user.groups.is_empty() {
            spec.insert("groups".into(), json!(user.groups));
        }
        if !user.extra.is_empty() {
            spec.insert("extra".into(), json!(user.extra));
        }
    }
    let Some(encoded) = spec.get("request").and_then(Value::as_str).filter(|s| !s.is_empty()) else { return Ok(()) };
    let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(encoded) else {
        // Bad base64 is reported by decoding, as for any []byte field.
        return Ok(());
    };
    let pem = String::from_utf8_lossy(&bytes);
    if !rkube_api::validation::has_pem_block(&bytes, "CERTIFICATE REQUEST") {
        return Ok(());
    }
    rkube_auth::pki::parse_certificate_request(&pem)
        .map(|_| ())
        .map_err(|e| invalid(&name, "spec.request", &format!("could not parse the certificate request: {e}")))
}

/// Whether `user` may `verb` (approve, sign) for `signer`: on the signer's own name or on
/// `<domain>/*`, as Kubernetes' admission asks.
fn may_for_signer(server: &Server, user: Option<&UserInfo>, verb: &str, signer: &str) -> Result<(), ApiError> {
    let Some(user) = user else { return Ok(()) };
    let wildcard = signer.split_once('/').map(|(domain, _)| format!("{domain}/*"));
    for name in std::iter::once(signer.to_string()).chain(wildcard) {
        let attrs = Attributes {
            user: user.clone(),
            verb: verb.into(),
            namespace: String::new(),
            api_group: GROUP.into(),
            api_version: "*".into(),
            resource: "signers".into(),
            subresource: String::new(),
            name,
            path: String::new(),
            resource_request: true,
        };
        if let Decision::Allow(_) = server.access.decide(&attrs) {
            return Ok(());
        }
    }
    Err(ApiError::Forbidden {
        message: format!("user not permitted to {verb} requests with signerName {signer:?}"),
        target: None,
    })
}

fn conditions(status: &Value) -> Vec<Value> {
    status.get("conditions").and_then(Value::as_array).cloned().unwrap_or_default()
}

fn condition_type(c: &Value) -> &str {
    c.get("type").and_then(Value::as_str).unwrap_or_default()
}

/// Sets lastUpdateTime/lastTransitionTime on conditions that lack them (Kubernetes defaults
/// them to now), keeping the transition time of a condition whose status did not change.
fn stamp_conditions(conds: &mut [Value], old: &[Value]) {
    let now = jiff::Timestamp::now().round(jiff::Unit::Second).unwrap_or_else(|_| jiff::Timestamp::now()).to_string();
    for c in conds.iter_mut() {
        let Some(m) = c.as_object_mut() else { continue };
        let before =
            old.iter().find(|o| condition_type(o) == m.get("type").and_then(Value::as_str).unwrap_or_default());
        m.entry("lastUpdateTime").or_insert_with(|| json!(now));
        if m.get("lastTransitionTime").is_none_or(Value::is_null) {
            let kept = before
                .filter(|b| b.get("status") == m.get("status"))
                .and_then(|b| b.get("lastTransitionTime"))
                .cloned()
                .unwrap_or_else(|| json!(now));
            m.insert("lastTransitionTime".into(), kept);
        }
    }
}

/// Carries the client's resourceVersion (its precondition) onto `merged`.
fn keep_precondition(merged: &mut Value, body: &Value) {
    if let Some(rv) = body.pointer("/metadata/resourceVersion").filter(|v| v.as_str().is_some_and(|s| !s.is_empty())) {
        meta_mut(merged).insert("resourceVersion".into(), rv.clone());
    }
}

/// PUT `certificatesigningrequests/{name}/approval`: only `status.conditions` is taken from
/// the body; adding Approved or Denied needs `approve` on the signer.
pub async fn update_approval(
    server: &Server,
    res: &'static ResourceInfo,
    name: &str,
    body: Value,
    user: Option<&UserInfo>,
    opts: &WriteOptions,
) -> Result<Outcome, ApiError> {
    let old = server.registry.get(res, None, name).await?;
    let old_conditions = conditions(old.get("status").unwrap_or(&Value::Null));
    let mut new_conditions = conditions(body.get("status").unwrap_or(&Value::Null));
    let adds_decision = new_conditions.iter().any(|c| {
        APPROVAL_CONDITIONS.contains(&condition_type(c))
            && !old_conditions.iter().any(|o| condition_type(o) == condition_type(c))
    });
    if adds_decision {
        let signer = old.pointer("/spec/signerName").and_then(Value::as_str).unwrap_or_default();
        may_for_signer(server, user, "approve", signer)?;
    }
    stamp_conditions(&mut new_conditions, &old_conditions);
    let mut merged = old.clone();
    merged["status"]["conditions"] = Value::Array(new_conditions);
    keep_precondition(&mut merged, &body);
    tracing::info!(csr = name, user = user.map(|u| u.name.as_str()).unwrap_or_default(), "approval updated");
    server.registry.update(res, None, name, merged, Part::Status, opts).await
}

/// PUT `certificatesigningrequests/{name}/status`: the body's status, except that the
/// Approved/Denied conditions stay as they are; a new certificate needs `sign` on the signer.
pub async fn update_status(
    server: &Server,
    res: &'static ResourceInfo,
    name: &str,
    body: Value,
    user: Option<&UserInfo>,
    opts: &WriteOptions,
) -> Result<Outcome, ApiError> {
    let old = server.registry.get(res, None, name).await?;
    let null = Value::Null;
    let old_status = old.get("status").unwrap_or(&null);
    let new_status = body.get("status").unwrap_or(&null);
    let old_conditions = conditions(old_status);
    let mut merged_conditions: Vec<Value> =
        old_conditions.iter().filter(|c| APPROVAL_CONDITIONS.contains(&condition_type(c))).cloned().collect();
    merged_conditions
        .extend(conditions(new_status).into_iter().filter(|c| !APPROVAL_CONDITIONS.contains(&condition_type(c))));
    stamp_conditions(&mut merged_conditions, &old_conditions);
    let certificate = new_status.get("certificate").filter(|c| c.as_str().is_some_and(|s| !s.is_empty()));
    if certificate.is_some() && certificate != old_status.get("certificate") {
        let signer = old.pointer("/spec/signerName").and_then(Value::as_str).unwrap_or_default();
        may_for_signer(server, user, "sign", signer)?;
    }
    let mut status = serde_json::Map::new();
    if !merged_conditions.is_empty() {
        status.insert("conditions".into(), Value::Array(merged_conditions));
    }
    if let Some(c) = certificate {
        status.insert("certificate".into(), c.clone());
    }
    let mut merged = old.clone();
    merged["status"] = Value::Object(status);
    keep_precondition(&mut merged, &body);
    server.registry.update(res, None, name, merged, Part::Status, opts).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_records_the_requester_and_checks_the_request() {
        let (_, pem) = rkube_auth::pki::generate_request("system:node:n1", Some("system:nodes"), &[], &[]).unwrap();
        let encoded = base64::engine::general_purpose::STANDARD.encode(&pem);
        let mut obj = json!({"metadata": {"name": "c"}, "spec": {"request": encoded, "username": "forged",
                             "groups": ["system:masters"], "signerName": "kubernetes.io/kube-apiserver-client-kubelet"}});
        let mut user = UserInfo::new("system:bootstrap:abcdef", ["system:bootstrappers", "system:authenticated"]);
        user.extra.insert("k".into(), vec!["v".into()]);
        prepare_create(&mut obj, Some(&user)).unwrap();
        assert_eq!(obj["spec"]["username"], "system:bootstrap:abcdef");
        assert_eq!(obj["spec"]["groups"], json!(["system:bootstrappers", "system:authenticated"]));
        assert_eq!(obj["spec"]["extra"], json!({"k": ["v"]}));
        assert!(obj["spec"].get("uid").is_none());

        // Anonymous (no authentication configured): nothing claimed is kept.
        let mut open = json!({"spec": {"request": encoded, "username": "forged"}});
        prepare_create(&mut open, None).unwrap();
        assert!(open["spec"].get("username").is_none());

        // A PEM block whose contents are not a signed request is a 422 on spec.request.
        let bogus = "-----BEGIN CERTIFICATE REQUEST-----\nMIIBAA==\n-----END CERTIFICATE REQUEST-----\n";
        let mut bad = json!({"metadata": {"name": "c"}, "spec": {"request": base64::engine::general_purpose::STANDARD.encode(bogus)}});
        let err = prepare_create(&mut bad, Some(&user)).unwrap_err();
        assert_eq!(err.code(), 422);
        assert!(err.to_string().contains("spec.request") || format!("{:?}", err.to_status()).contains("spec.request"));
    }

    #[test]
    fn condition_times_are_stamped_and_kept_when_unchanged() {
        let old = vec![json!({"type": "Approved", "status": "True", "lastTransitionTime": "2020-01-01T00:00:00Z"})];
        let mut new = vec![json!({"type": "Approved", "status": "True"}), json!({"type": "Failed", "status": "True"})];
        stamp_conditions(&mut new, &old);
        assert_eq!(new[0]["lastTransitionTime"], "2020-01-01T00:00:00Z");
        assert!(new[1]["lastTransitionTime"].is_string() && new[1]["lastUpdateTime"].is_string());
    }
}
