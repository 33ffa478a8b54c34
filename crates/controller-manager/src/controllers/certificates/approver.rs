//! The CSR approver (`csrapproving`): approves what a kubelet needs to join and to renew,
//! and nothing else (everything else waits for a person or another approver).
//!
//! - `kubernetes.io/kube-apiserver-client-kubelet` requests for `system:node:<name>` in
//!   exactly `system:nodes`, without SANs, asking for client auth: from a bootstrap-token
//!   user (`system:bootstrappers`, joining) or from that node itself (renewal).
//! - `kubernetes.io/kubelet-serving` requests from the node itself whose DNS names are at most
//!   the node's own name. Kubernetes leaves these to a person because a node could claim
//!   any address; rkube approves them so `rkubectl cluster join` needs no second step, and
//!   limits the DNS names so a node cannot claim a Service's (the API server's) name.
//!
//! Approval goes through the `approval` subresource over REST, as `kubectl certificate
//! approve` does, with the controller-manager's own credentials.

use super::{BOOTSTRAPPERS_GROUP, NODE_USER_PREFIX, NODES_GROUP};
use super::{KUBELET_CLIENT_SIGNER, KUBELET_SERVING_SIGNER, has_condition, kubelet_client_node, kubelet_serving_node};
use crate::informers::SharedInformers;
use crate::{Action, Context, Controller, Error, Registration};
use k8s_openapi::api::certificates::v1::{CertificateSigningRequest, CertificateSigningRequestCondition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use rkube_client::{Event, Store, WorkQueue};
use std::sync::Arc;
use std::time::Duration;

/// Approves kubelet CSRs.
pub struct CsrApprover {
    store: Store<CertificateSigningRequest>,
    rest: Result<Rest, String>,
}

/// The API server over REST with the controller-manager's credentials.
pub(crate) struct Rest {
    base: String,
    http: reqwest::Client,
}

impl Rest {
    /// A client for the kubeconfig's server with its CA, client certificate and token.
    pub(crate) fn new(credentials: &rkube_client::Kubeconfig) -> Result<Rest, String> {
        let http = crate::http::client(credentials, Duration::from_secs(15))?;
        Ok(Rest { base: credentials.server.trim_end_matches('/').to_string(), http })
    }

    /// PUT the CSR to its `approval` subresource; a 409 (someone else wrote first) is an
    /// error the queue retries.
    async fn put_approval(&self, csr: &CertificateSigningRequest) -> Result<(), Error> {
        let name = csr.metadata.name.as_deref().unwrap_or_default();
        let url = format!("{}/apis/certificates.k8s.io/v1/certificatesigningrequests/{name}/approval", self.base);
        let response =
            self.http.put(&url).json(csr).send().await.map_err(|e| Error::Invalid(format!("PUT {url}: {e}")))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let body = response.text().await.unwrap_or_default();
        let message = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["message"].as_str().map(str::to_string))
            .unwrap_or(body);
        Err(Error::Invalid(format!("approving {name}: {status}: {message}")))
    }
}

/// Queues every CSR that appears or changes.
pub fn register(ctx: &Context, informers: &SharedInformers) -> Registration {
    let queue = WorkQueue::new();
    let q = queue.clone();
    informers.on_event::<CertificateSigningRequest>(move |e| {
        if let Event::Added(csr) | Event::Updated { new: csr, .. } = e {
            q.add(csr.metadata.name.clone().unwrap_or_default());
        }
    });
    let rest = ctx.config.api.kubeconfig().map_err(|e| e.to_string()).and_then(|k| Rest::new(&k));
    if let Err(e) = &rest {
        tracing::error!(error = %e, "the CSR approver cannot reach the API server over REST");
    }
    Registration::new(Arc::new(CsrApprover { store: informers.store(), rest }), queue)
}

/// Why the approver approves `csr`, or None to leave it alone.
pub fn approval_reason(csr: &CertificateSigningRequest) -> Option<String> {
    let spec = &csr.spec;
    let username = spec.username.as_deref().unwrap_or_default();
    let in_group = |g: &str| spec.groups.iter().flatten().any(|x| x == g);
    let request = match super::parse(csr) {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!(error = %e, "CSR request does not parse; not approving");
            return None;
        }
    };
    match spec.signer_name.as_str() {
        KUBELET_CLIENT_SIGNER => {
            let node = kubelet_client_node(csr, &request)
                .map_err(|e| tracing::debug!(reason = %e, "not a kubelet client CSR"))
                .ok()?;
            if in_group(BOOTSTRAPPERS_GROUP) {
                Some(format!(
                    "Auto-approved: a bootstrap token ({username}) asked for node {node}'s client certificate"
                ))
            } else if username == format!("{NODE_USER_PREFIX}{node}") && in_group(NODES_GROUP) {
                Some(format!("Auto-approved: node {node} renews its own client certificate"))
            } else {
                None
            }
        }
        KUBELET_SERVING_SIGNER => {
            let node = kubelet_serving_node(csr, &request)
                .map_err(|e| tracing::debug!(reason = %e, "not a kubelet serving CSR"))
                .ok()?;
            let own = username == format!("{NODE_USER_PREFIX}{node}") && in_group(NODES_GROUP);
            let names_ok = request.dns_names.iter().all(|d| *d == node);
            (own && names_ok).then(|| format!("Auto-approved: node {node} asked for its own serving certificate"))
        }
        _ => None,
    }
}

impl Controller for CsrApprover {
    fn name(&self) -> &'static str {
        "csrapproving"
    }

    async fn reconcile(&self, name: &str) -> Result<Action, Error> {
        let Some(csr) = self.store.get(name) else { return Ok(Action::Done) };
        if has_condition(&csr, "Approved") || has_condition(&csr, "Denied") {
            return Ok(Action::Done);
        }
        let Some(message) = approval_reason(&csr) else { return Ok(Action::Done) };
        let rest = self.rest.as_ref().map_err(|e| Error::Invalid(e.clone()))?;
        let mut approved = (*csr).clone();
        let now = Time(jiff::Timestamp::now());
        let status = approved.status.get_or_insert_with(Default::default);
        status.conditions.get_or_insert_with(Vec::new).push(CertificateSigningRequestCondition {
            type_: "Approved".into(),
            status: "True".into(),
            reason: Some("AutoApproved".into()),
            message: Some(message.clone()),
            last_update_time: Some(now.clone()),
            last_transition_time: Some(now),
        });
        rest.put_approval(&approved).await?;
        tracing::info!(csr = name, signer = %csr.spec.signer_name, %message, "approved CSR");
        Ok(Action::Done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;
    use k8s_openapi::api::certificates::v1::CertificateSigningRequestSpec;

    fn csr(
        signer: &str,
        cn: &str,
        dns: &[String],
        user: &str,
        groups: &[&str],
        usages: &[&str],
    ) -> CertificateSigningRequest {
        let (_, pem) = rkube_auth::pki::generate_request(cn, Some("system:nodes"), dns, &[]).unwrap();
        CertificateSigningRequest {
            spec: CertificateSigningRequestSpec {
                request: ByteString(pem.into_bytes()),
                signer_name: signer.into(),
                usages: Some(usages.iter().map(|u| u.to_string()).collect()),
                username: Some(user.into()),
                groups: Some(groups.iter().map(|g| g.to_string()).collect()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn only_bootstrappers_and_the_node_itself_get_client_certificates() {
        let client = ["digital signature", "client auth"];
        let boot = ["system:bootstrappers", "system:bootstrappers:rkube:default-node-token", "system:authenticated"];
        let joining = csr(KUBELET_CLIENT_SIGNER, "system:node:n1", &[], "system:bootstrap:abcdef", &boot, &client);
        assert!(approval_reason(&joining).unwrap().contains("bootstrap token"));
        let renewal = csr(KUBELET_CLIENT_SIGNER, "system:node:n1", &[], "system:node:n1", &["system:nodes"], &client);
        assert!(approval_reason(&renewal).unwrap().contains("renews"));
        let other_node =
            csr(KUBELET_CLIENT_SIGNER, "system:node:n2", &[], "system:node:n1", &["system:nodes"], &client);
        assert_eq!(approval_reason(&other_node), None);
        let stranger = csr(KUBELET_CLIENT_SIGNER, "system:node:n1", &[], "alice", &["system:authenticated"], &client);
        assert_eq!(approval_reason(&stranger), None);
        let generic = csr("example.com/signer", "system:node:n1", &[], "system:bootstrap:abcdef", &boot, &client);
        assert_eq!(approval_reason(&generic), None);
    }

    #[test]
    fn serving_certificates_only_for_the_node_itself_and_its_own_name() {
        let serving = ["digital signature", "server auth"];
        let own = csr(
            KUBELET_SERVING_SIGNER,
            "system:node:n1",
            &["n1".into()],
            "system:node:n1",
            &["system:nodes"],
            &serving,
        );
        assert!(approval_reason(&own).is_some());
        let boot = csr(
            KUBELET_SERVING_SIGNER,
            "system:node:n1",
            &["n1".into()],
            "system:bootstrap:x",
            &["system:bootstrappers"],
            &serving,
        );
        assert_eq!(approval_reason(&boot), None);
        let api_name = csr(
            KUBELET_SERVING_SIGNER,
            "system:node:n1",
            &["kubernetes.default.svc".into()],
            "system:node:n1",
            &["system:nodes"],
            &serving,
        );
        assert_eq!(approval_reason(&api_name), None);
    }
}
