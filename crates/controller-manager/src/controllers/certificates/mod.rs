//! certificates.k8s.io: the CSR approver (`csrapproving`) and signer (`csrsigning`), and what
//! both know about Kubernetes' built-in signers and kubelet requests.

pub mod approver;
pub mod signer;

use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use rkube_auth::pki::CertificateRequest;

/// Signer of kubelet client certificates (`system:node:<name>` in `system:nodes`).
pub const KUBELET_CLIENT_SIGNER: &str = "kubernetes.io/kube-apiserver-client-kubelet";
/// Signer of kubelet serving certificates.
pub const KUBELET_SERVING_SIGNER: &str = "kubernetes.io/kubelet-serving";
/// Signer of any client certificate the API server trusts.
pub const APISERVER_CLIENT_SIGNER: &str = "kubernetes.io/kube-apiserver-client";
/// Group of bootstrap-token users.
pub const BOOTSTRAPPERS_GROUP: &str = "system:bootstrappers";
/// Group of kubelets.
pub const NODES_GROUP: &str = "system:nodes";
/// Prefix of kubelet user names.
pub const NODE_USER_PREFIX: &str = "system:node:";

/// Whether the CSR carries a condition of `kind` (Approved, Denied, Failed).
pub fn has_condition(csr: &CertificateSigningRequest, kind: &str) -> bool {
    csr.status.as_ref().and_then(|s| s.conditions.as_ref()).is_some_and(|cs| cs.iter().any(|c| c.type_ == kind))
}

/// Whether a certificate has been issued.
pub fn is_issued(csr: &CertificateSigningRequest) -> bool {
    csr.status.as_ref().and_then(|s| s.certificate.as_ref()).is_some_and(|c| !c.0.is_empty())
}

/// The request of a CSR, parsed and its signature verified.
pub fn parse(csr: &CertificateSigningRequest) -> Result<CertificateRequest, String> {
    let pem = std::str::from_utf8(&csr.spec.request.0).map_err(|_| "the request is not PEM text".to_string())?;
    rkube_auth::pki::parse_certificate_request(pem).map_err(|e| e.to_string())
}

fn usages(csr: &CertificateSigningRequest) -> Vec<&str> {
    csr.spec.usages.iter().flatten().map(String::as_str).collect()
}

/// `usages` has `required` and nothing outside `allowed` ∪ {required}.
fn usages_fit(usages: &[&str], required: &str, allowed: &[&str]) -> bool {
    usages.contains(&required) && usages.iter().all(|u| *u == required || allowed.contains(u))
}

/// Why the CSR is not a kubelet client request (CN `system:node:<name>`, O exactly
/// `system:nodes`, no SANs, usages client auth plus at most digital signature and key
/// encipherment), or the node name.
pub fn kubelet_client_node(csr: &CertificateSigningRequest, req: &CertificateRequest) -> Result<String, String> {
    if csr.spec.signer_name != KUBELET_CLIENT_SIGNER {
        return Err(format!("signer is {:?}", csr.spec.signer_name));
    }
    let node = node_name(req)?;
    if !req.dns_names.is_empty() || !req.ip_addresses.is_empty() || !req.emails.is_empty() || !req.uris.is_empty() {
        return Err("a kubelet client certificate has no subject alternative names".into());
    }
    if !usages_fit(&usages(csr), "client auth", &["digital signature", "key encipherment"]) {
        return Err(format!("usages {:?} are not a kubelet client's", usages(csr)));
    }
    Ok(node)
}

/// Why the CSR is not a kubelet serving request (CN `system:node:<name>`, O exactly
/// `system:nodes`, at least one DNS or IP SAN and no others, usages server auth plus at most
/// digital signature and key encipherment), or the node name.
pub fn kubelet_serving_node(csr: &CertificateSigningRequest, req: &CertificateRequest) -> Result<String, String> {
    if csr.spec.signer_name != KUBELET_SERVING_SIGNER {
        return Err(format!("signer is {:?}", csr.spec.signer_name));
    }
    let node = node_name(req)?;
    if req.dns_names.is_empty() && req.ip_addresses.is_empty() {
        return Err("a kubelet serving certificate names at least one DNS name or IP address".into());
    }
    if !req.emails.is_empty() || !req.uris.is_empty() {
        return Err("a kubelet serving certificate has no email or URI names".into());
    }
    if !usages_fit(&usages(csr), "server auth", &["digital signature", "key encipherment"]) {
        return Err(format!("usages {:?} are not a kubelet server's", usages(csr)));
    }
    Ok(node)
}

fn node_name(req: &CertificateRequest) -> Result<String, String> {
    let node = req.common_name.strip_prefix(NODE_USER_PREFIX).unwrap_or_default();
    if node.is_empty() {
        return Err(format!("the common name {:?} is not system:node:<name>", req.common_name));
    }
    if req.organizations != [NODES_GROUP] {
        return Err(format!("the organizations {:?} are not exactly [system:nodes]", req.organizations));
    }
    Ok(node.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;
    use k8s_openapi::api::certificates::v1::CertificateSigningRequestSpec;

    fn csr(signer: &str, pem: &str, usages: &[&str]) -> CertificateSigningRequest {
        CertificateSigningRequest {
            spec: CertificateSigningRequestSpec {
                request: ByteString(pem.as_bytes().to_vec()),
                signer_name: signer.into(),
                usages: Some(usages.iter().map(|u| u.to_string()).collect()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn kubelet_client_requests_are_recognised_exactly() {
        let request =
            |cn: &str, o: Option<&str>, dns: &[String]| rkube_auth::pki::generate_request(cn, o, dns, &[]).unwrap().1;
        let good = request("system:node:n1", Some("system:nodes"), &[]);
        let c = csr(KUBELET_CLIENT_SIGNER, &good, &["digital signature", "key encipherment", "client auth"]);
        assert_eq!(kubelet_client_node(&c, &parse(&c).unwrap()), Ok("n1".into()));

        let cases = [
            (csr(KUBELET_SERVING_SIGNER, &good, &["client auth"]), "signer"),
            (csr(KUBELET_CLIENT_SIGNER, &good, &["server auth"]), "usages"),
            (csr(KUBELET_CLIENT_SIGNER, &good, &["client auth", "cert sign"]), "usages"),
            (csr(KUBELET_CLIENT_SIGNER, &request("alice", Some("system:nodes"), &[]), &["client auth"]), "common name"),
            (
                csr(KUBELET_CLIENT_SIGNER, &request("system:node:n1", Some("system:masters"), &[]), &["client auth"]),
                "organizations",
            ),
            (csr(KUBELET_CLIENT_SIGNER, &request("system:node:n1", None, &[]), &["client auth"]), "organizations"),
            (
                csr(
                    KUBELET_CLIENT_SIGNER,
                    &request("system:node:n1", Some("system:nodes"), &["x".into()]),
                    &["client auth"],
                ),
                "alternative",
            ),
        ];
        for (c, why) in cases {
            let err = kubelet_client_node(&c, &parse(&c).unwrap()).unwrap_err();
            assert!(err.contains(why), "{err} should mention {why}");
        }
        let garbage = csr(
            KUBELET_CLIENT_SIGNER,
            "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
            &[],
        );
        assert!(parse(&garbage).is_err());
    }

    #[test]
    fn kubelet_serving_requests_need_a_name_and_server_auth() {
        let ip = "10.0.0.5".parse().unwrap();
        let (_, pem) =
            rkube_auth::pki::generate_request("system:node:n1", Some("system:nodes"), &["n1".into()], &[ip]).unwrap();
        let c = csr(KUBELET_SERVING_SIGNER, &pem, &["digital signature", "server auth"]);
        assert_eq!(kubelet_serving_node(&c, &parse(&c).unwrap()), Ok("n1".into()));
        let c = csr(KUBELET_SERVING_SIGNER, &pem, &["client auth"]);
        assert!(kubelet_serving_node(&c, &parse(&c).unwrap()).is_err());
        let (_, bare) = rkube_auth::pki::generate_request("system:node:n1", Some("system:nodes"), &[], &[]).unwrap();
        let c = csr(KUBELET_SERVING_SIGNER, &bare, &["server auth"]);
        assert!(kubelet_serving_node(&c, &parse(&c).unwrap()).unwrap_err().contains("at least one"));
    }
}
