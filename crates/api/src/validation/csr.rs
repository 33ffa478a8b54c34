//! certificates.k8s.io CertificateSigningRequests: the request must be a PEM certificate
//! request for a named signer, the spec never changes after create, and the Approved, Denied
//! and Failed conditions follow their lifecycle (once set they stay; Approved and Denied
//! exclude each other). Parsing the request's ASN.1 and checking its signature is the API
//! server's job (it has the crypto); here only the shape is checked.

use super::meta::{immutable, is_dns1123_subdomain};
use super::{Errs, arr_at, at, index, int_at, join, str_at};
use crate::FieldError;
use serde_json::Value;

/// Condition types with a fixed meaning.
const APPROVED: &str = "Approved";
const DENIED: &str = "Denied";
const FAILED: &str = "Failed";

/// Every key usage Kubernetes accepts in `spec.usages`.
pub const KEY_USAGES: &[&str] = &[
    "signing",
    "digital signature",
    "content commitment",
    "key encipherment",
    "key agreement",
    "data encipherment",
    "cert sign",
    "crl sign",
    "encipher only",
    "decipher only",
    "any",
    "server auth",
    "client auth",
    "code signing",
    "email protection",
    "s/mime",
    "ipsec end system",
    "ipsec tunnel",
    "ipsec user",
    "timestamping",
    "ocsp signing",
    "microsoft sgc",
    "netscape sgc",
];

/// The shortest certificate lifetime a request may ask for (10 minutes).
const MIN_EXPIRATION_SECONDS: i64 = 600;
/// Kubernetes' limit on the length of a signer name.
const MAX_SIGNER_NAME: usize = 571;

/// The bytes of a base64 `[]byte` field, or `None` when absent or not base64.
fn bytes_at(v: &Value, k: &str) -> Option<Vec<u8>> {
    let s = v.get(k)?;
    serde_json::from_value::<k8s_openapi::ByteString>(s.clone()).ok().map(|b| b.0)
}

/// Whether `data` holds a PEM block with `label` (armour lines only; the DER inside is for
/// the caller to parse).
pub fn has_pem_block(data: &[u8], label: &str) -> bool {
    let Ok(text) = std::str::from_utf8(data) else { return false };
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    text.find(&begin).is_some_and(|start| text[start + begin.len()..].contains(&end))
}

/// Problems with a signer name: `<DNS subdomain>/<path>`, e.g. `kubernetes.io/kubelet-serving`.
fn signer_name_problems(name: &str) -> Vec<String> {
    let mut msgs = Vec::new();
    if name.len() > MAX_SIGNER_NAME {
        msgs.push(format!("must be no more than {MAX_SIGNER_NAME} characters"));
    }
    match name.split_once('/') {
        None => msgs.push("must be a fully qualified domain and path of the form 'example.com/signer-name'".into()),
        Some((domain, path)) => {
            for m in is_dns1123_subdomain(domain) {
                msgs.push(format!("the domain part {m}"));
            }
            if path.is_empty() || path.chars().any(|c| c.is_whitespace() || c.is_control()) {
                msgs.push("the path part must be non-empty and contain no whitespace".into());
            }
        }
    }
    msgs
}

/// Checks made on every write.
pub(super) fn validate_csr(obj: &Value, errs: &mut Errs) {
    let spec = at(obj, "spec");
    match bytes_at(spec, "request").filter(|b| !b.is_empty()) {
        None => errs.push(FieldError::required("spec.request", "")),
        Some(b) if !has_pem_block(&b, "CERTIFICATE REQUEST") => errs.push(FieldError::invalid(
            "spec.request",
            &Value::from("<binary>"),
            "must be a PEM-encoded CERTIFICATE REQUEST",
        )),
        Some(_) => {}
    }
    let signer = str_at(spec, "signerName");
    if signer.is_empty() {
        errs.push(FieldError::required("spec.signerName", ""));
    } else {
        let msgs = signer_name_problems(signer);
        if !msgs.is_empty() {
            errs.push(FieldError::invalid("spec.signerName", &Value::from(signer), &msgs.join("; ")));
        }
    }
    if let Some(secs) = int_at(spec, "expirationSeconds")
        && secs < MIN_EXPIRATION_SECONDS
    {
        errs.push(FieldError::invalid(
            "spec.expirationSeconds",
            &Value::from(secs),
            &format!("may not specify a duration less than {MIN_EXPIRATION_SECONDS} seconds (10 minutes)"),
        ));
    }
    let mut seen = Vec::new();
    for (i, usage) in arr_at(spec, "usages").iter().enumerate() {
        let path = index("spec.usages", i);
        let u = usage.as_str().unwrap_or_default();
        if !KEY_USAGES.contains(&u) {
            errs.push(FieldError::not_supported(path, usage, KEY_USAGES));
        } else if seen.contains(&u) {
            errs.push(FieldError::duplicate(path, usage));
        } else {
            seen.push(u);
        }
    }
    validate_status(at(obj, "status"), errs);
}

fn validate_status(status: &Value, errs: &mut Errs) {
    let mut types: Vec<&str> = Vec::new();
    for (i, c) in arr_at(status, "conditions").iter().enumerate() {
        let path = index("status.conditions", i);
        let t = str_at(c, "type");
        let s = str_at(c, "status");
        if t.is_empty() {
            errs.push(FieldError::required(join(&path, "type"), ""));
        }
        if [APPROVED, DENIED, FAILED].contains(&t) {
            if types.contains(&t) {
                errs.push(FieldError::duplicate(join(&path, "type"), &Value::from(t)));
            }
            if s != "True" {
                errs.push(FieldError::not_supported(join(&path, "status"), &Value::from(s), &["True"]));
            }
        } else if !["True", "False", "Unknown"].contains(&s) {
            errs.push(FieldError::not_supported(join(&path, "status"), &Value::from(s), &["False", "True", "Unknown"]));
        }
        types.push(t);
    }
    if types.contains(&APPROVED) && types.contains(&DENIED) {
        errs.push(FieldError::invalid(
            "status.conditions",
            &Value::from(DENIED),
            "Approved and Denied conditions are mutually exclusive",
        ));
    }
    if let Some(cert) = bytes_at(status, "certificate").filter(|c| !c.is_empty()) {
        if !has_pem_block(&cert, "CERTIFICATE") {
            errs.push(FieldError::invalid(
                "status.certificate",
                &Value::from("<certificate data>"),
                "must contain at least one PEM-encoded CERTIFICATE",
            ));
        }
        if !types.contains(&APPROVED) || types.contains(&FAILED) {
            errs.push(FieldError::invalid(
                "status.certificate",
                &Value::from("<certificate data>"),
                "may only be set on an Approved request that has not Failed",
            ));
        }
    }
}

/// The types of the conditions in `status`.
fn condition_types(status: &Value) -> Vec<&str> {
    arr_at(status, "conditions").iter().map(|c| str_at(c, "type")).collect()
}

/// What an update may not change: the spec, an issued certificate, and the Approved, Denied
/// and Failed conditions once they are set.
pub(super) fn validate_csr_update(obj: &Value, old: &Value, errs: &mut Errs) {
    immutable(at(obj, "spec"), at(old, "spec"), "spec", errs);
    let (new_status, old_status) = (at(obj, "status"), at(old, "status"));
    let new_types = condition_types(new_status);
    for t in condition_types(old_status) {
        if [APPROVED, DENIED, FAILED].contains(&t) && !new_types.contains(&t) {
            errs.push(FieldError::forbidden(
                "status.conditions",
                &format!("updates may not remove a condition of type {t:?}"),
            ));
        }
    }
    let old_cert = bytes_at(old_status, "certificate").unwrap_or_default();
    if !old_cert.is_empty() && bytes_at(new_status, "certificate").unwrap_or_default() != old_cert {
        errs.push(FieldError::invalid(
            "status.certificate",
            &Value::from("<certificate data>"),
            "updates may not modify existing certificate content",
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::lookup;
    use crate::schema::normalize;
    use crate::validation::{validate_create, validate_update};
    use serde_json::json;

    const REQUEST: &str = "-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n-----END CERTIFICATE REQUEST-----\n";
    const CERT: &str = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";

    fn b64(s: &str) -> Value {
        serde_json::to_value(k8s_openapi::ByteString(s.as_bytes().to_vec())).unwrap()
    }

    fn csr(spec: Value, status: Value) -> Value {
        let res = lookup("certificates.k8s.io", "v1", "certificatesigningrequests").unwrap();
        let obj = json!({"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
                         "metadata": {"name": "node-csr-1"}, "spec": spec, "status": status});
        let d = normalize(res, &obj).unwrap();
        assert_eq!(d.unknown_fields, Vec::<String>::new());
        d.object
    }

    fn good_spec() -> Value {
        json!({"request": b64(REQUEST), "signerName": "kubernetes.io/kube-apiserver-client-kubelet",
               "usages": ["digital signature", "client auth"], "expirationSeconds": 3600})
    }

    fn fields(errs: &[FieldError]) -> Vec<String> {
        errs.iter().map(|e| format!("{}: {}", e.field, e.reason)).collect()
    }

    #[test]
    fn a_kubelet_client_request_is_valid() {
        let res = lookup("certificates.k8s.io", "v1", "certificatesigningrequests").unwrap();
        assert!(res.has_status && res.subresources().contains(&"approval"));
        assert_eq!(validate_create(res, &csr(good_spec(), json!({}))), vec![]);
    }

    #[test]
    fn request_signer_usages_and_expiration_are_checked() {
        let res = lookup("certificates.k8s.io", "v1", "certificatesigningrequests").unwrap();
        let errs = validate_create(res, &csr(json!({"usages": ["client auth"]}), json!({})));
        assert_eq!(fields(&errs), ["spec.request: FieldValueRequired", "spec.signerName: FieldValueRequired"]);

        let spec = json!({"request": b64("not pem"), "signerName": "no-slash",
                          "usages": ["client auth", "client auth", "world domination"], "expirationSeconds": 60});
        let errs = validate_create(res, &csr(spec, json!({})));
        assert_eq!(
            fields(&errs),
            [
                "spec.request: FieldValueInvalid",
                "spec.signerName: FieldValueInvalid",
                "spec.expirationSeconds: FieldValueInvalid",
                "spec.usages[1]: FieldValueDuplicate",
                "spec.usages[2]: FieldValueNotSupported",
            ]
        );
        let spec = json!({"request": b64(REQUEST), "signerName": "Not_A_Domain/x"});
        assert_eq!(fields(&validate_create(res, &csr(spec, json!({})))), ["spec.signerName: FieldValueInvalid"]);
    }

    #[test]
    fn conditions_and_certificate_follow_the_lifecycle() {
        let res = lookup("certificates.k8s.io", "v1", "certificatesigningrequests").unwrap();
        let approved = json!({"type": "Approved", "status": "True", "reason": "AutoApproved"});
        let denied = json!({"type": "Denied", "status": "True"});
        let both = csr(good_spec(), json!({"conditions": [approved.clone(), denied]}));
        assert_eq!(fields(&validate_create(res, &both)), ["status.conditions: FieldValueInvalid"]);
        let not_true = csr(good_spec(), json!({"conditions": [{"type": "Approved", "status": "False"}]}));
        assert_eq!(fields(&validate_create(res, &not_true)), ["status.conditions[0].status: FieldValueNotSupported"]);
        let unapproved_cert = csr(good_spec(), json!({"certificate": b64(CERT)}));
        assert_eq!(fields(&validate_create(res, &unapproved_cert)), ["status.certificate: FieldValueInvalid"]);

        let old = csr(good_spec(), json!({"conditions": [approved.clone()]}));
        let issued = csr(good_spec(), json!({"conditions": [approved.clone()], "certificate": b64(CERT)}));
        assert_eq!(validate_update(res, &issued, &old), vec![]);
        let removed = csr(good_spec(), json!({}));
        assert_eq!(fields(&validate_update(res, &removed, &old)), ["status.conditions: FieldValueForbidden"]);
        let changed = csr(
            good_spec(),
            json!({"conditions": [approved.clone()], "certificate": b64(&CERT.replace("MIIB", "MIIC"))}),
        );
        assert_eq!(fields(&validate_update(res, &changed, &issued)), ["status.certificate: FieldValueInvalid"]);
        let mut other_spec = good_spec();
        other_spec["signerName"] = json!("kubernetes.io/kubelet-serving");
        let respec = csr(other_spec, json!({"conditions": [approved]}));
        assert_eq!(fields(&validate_update(res, &respec, &old)), ["spec: FieldValueInvalid"]);
    }
}
