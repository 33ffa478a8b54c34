//! The CSR signer (`csrsigning`): issues approved requests of Kubernetes' built-in signers
//! with the cluster CA (`--cluster-signing-cert-file`, `--cluster-signing-key-file`) for
//! `--cluster-signing-duration` (or the request's shorter `expirationSeconds`). A request the
//! signer's rules forbid gets a Failed condition instead. Without both files it does not run.

use super::{APISERVER_CLIENT_SIGNER, KUBELET_CLIENT_SIGNER, KUBELET_SERVING_SIGNER};
use super::{has_condition, is_issued, kubelet_client_node, kubelet_serving_node};
use crate::informers::SharedInformers;
use crate::{Action, Context, Controller, Error, Registration};
use k8s_openapi::ByteString;
use k8s_openapi::api::certificates::v1::{CertificateSigningRequest, CertificateSigningRequestCondition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use rkube_auth::pki::CertificateAuthority;
use rkube_client::{Event, Store, WorkQueue};
use std::sync::Arc;
use std::time::Duration;

/// The shortest lifetime issued, whatever the request asks (Kubernetes' minimum).
const MIN_DURATION: Duration = Duration::from_secs(600);

/// Signs approved CSRs.
pub struct CsrSigner {
    ctx: Context,
    store: Store<CertificateSigningRequest>,
    /// The CA, or why the flags' files could not be loaded.
    ca: Result<CertificateAuthority, String>,
}

/// Whether the signer can run: only with both signing files.
pub fn configured(ctx: &Context) -> bool {
    ctx.config.cluster_signing_cert_file.is_some() && ctx.config.cluster_signing_key_file.is_some()
}

fn load_ca(ctx: &Context) -> Result<CertificateAuthority, String> {
    let (Some(cert), Some(key)) = (&ctx.config.cluster_signing_cert_file, &ctx.config.cluster_signing_key_file) else {
        return Err("--cluster-signing-cert-file and --cluster-signing-key-file are not set".into());
    };
    let read = |p: &std::path::Path| std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()));
    CertificateAuthority::from_pem(&read(cert)?, &read(key)?).map_err(|e| e.to_string())
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
    let ca = load_ca(ctx);
    if let Err(e) = &ca {
        tracing::error!(error = %e, "the CSR signer cannot load the cluster CA");
    }
    Registration::new(Arc::new(CsrSigner { ctx: ctx.clone(), store: informers.store(), ca }), queue)
}

/// How long the certificate for `csr` lives: the flag's duration, or the request's
/// `expirationSeconds` when shorter, never under ten minutes.
pub fn duration_for(csr: &CertificateSigningRequest, configured: Duration) -> Duration {
    let asked = csr.spec.expiration_seconds.and_then(|s| u64::try_from(s).ok()).map(Duration::from_secs);
    asked.map_or(configured, |a| a.min(configured)).max(MIN_DURATION)
}

/// Why the built-in signer refuses `csr` (its rules, checked on the parsed request), or
/// `Ok(false)` for a signer that is not ours to handle.
pub fn check_signer_rules(csr: &CertificateSigningRequest) -> Result<bool, String> {
    let signer = csr.spec.signer_name.as_str();
    if ![KUBELET_CLIENT_SIGNER, KUBELET_SERVING_SIGNER, APISERVER_CLIENT_SIGNER].contains(&signer) {
        return Ok(false);
    }
    let request = super::parse(csr)?;
    match signer {
        KUBELET_CLIENT_SIGNER => kubelet_client_node(csr, &request).map(|_| true),
        KUBELET_SERVING_SIGNER => kubelet_serving_node(csr, &request).map(|_| true),
        _ => {
            let usages: Vec<&str> = csr.spec.usages.iter().flatten().map(String::as_str).collect();
            let allowed = ["digital signature", "key encipherment", "client auth"];
            if usages.contains(&"client auth") && usages.iter().all(|u| allowed.contains(u)) {
                Ok(true)
            } else {
                Err(format!("usages {usages:?} are not a client certificate's"))
            }
        }
    }
}

impl CsrSigner {
    fn condition(kind: &str, reason: &str, message: String) -> CertificateSigningRequestCondition {
        let now = Time(jiff::Timestamp::now());
        CertificateSigningRequestCondition {
            type_: kind.into(),
            status: "True".into(),
            reason: Some(reason.into()),
            message: Some(message),
            last_update_time: Some(now.clone()),
            last_transition_time: Some(now),
        }
    }

    async fn write_status(&self, csr: CertificateSigningRequest) -> Result<(), Error> {
        let api = self.ctx.client.api::<CertificateSigningRequest>(None);
        match api.update_status(&csr).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

impl Controller for CsrSigner {
    fn name(&self) -> &'static str {
        "csrsigning"
    }

    async fn reconcile(&self, name: &str) -> Result<Action, Error> {
        let Some(csr) = self.store.get(name) else { return Ok(Action::Done) };
        let pending = has_condition(&csr, "Approved") && !has_condition(&csr, "Denied");
        if !pending || has_condition(&csr, "Failed") || is_issued(&csr) {
            return Ok(Action::Done);
        }
        let mut updated = (*csr).clone();
        match check_signer_rules(&csr) {
            Ok(false) => return Ok(Action::Done),
            Ok(true) => {
                let ca = self.ca.as_ref().map_err(|e| Error::Invalid(e.clone()))?;
                let duration = duration_for(&csr, self.ctx.config.cluster_signing_duration);
                let pem = std::str::from_utf8(&csr.spec.request.0).unwrap_or_default();
                let usages: Vec<String> = csr.spec.usages.clone().unwrap_or_default();
                match ca.sign_request(pem, &usages, duration) {
                    Ok(cert) => {
                        updated.status.get_or_insert_with(Default::default).certificate =
                            Some(ByteString(cert.into_bytes()));
                        self.write_status(updated).await?;
                        tracing::info!(csr = name, signer = %csr.spec.signer_name, ?duration, "issued certificate");
                    }
                    Err(e) => {
                        let status = updated.status.get_or_insert_with(Default::default);
                        let failed = Self::condition("Failed", "SignerValidationFailure", e.to_string());
                        status.conditions.get_or_insert_with(Vec::new).push(failed);
                        self.write_status(updated).await?;
                        tracing::warn!(csr = name, error = %e, "could not sign CSR");
                    }
                }
            }
            Err(why) => {
                let status = updated.status.get_or_insert_with(Default::default);
                let failed = Self::condition("Failed", "SignerValidationFailure", why.clone());
                status.conditions.get_or_insert_with(Vec::new).push(failed);
                self.write_status(updated).await?;
                tracing::warn!(csr = name, reason = %why, "CSR breaks its signer's rules; marked Failed");
            }
        }
        Ok(Action::Done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::certificates::v1::CertificateSigningRequestSpec;

    fn csr(signer: &str, cn: &str, usages: &[&str], expiration: Option<i32>) -> CertificateSigningRequest {
        let (_, pem) = rkube_auth::pki::generate_request(cn, Some("system:nodes"), &[], &[]).unwrap();
        CertificateSigningRequest {
            spec: CertificateSigningRequestSpec {
                request: ByteString(pem.into_bytes()),
                signer_name: signer.into(),
                usages: Some(usages.iter().map(|u| u.to_string()).collect()),
                expiration_seconds: expiration,
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn durations_follow_the_flag_and_the_request() {
        let year = Duration::from_secs(365 * 86400);
        let c = |e| csr(KUBELET_CLIENT_SIGNER, "system:node:n", &["client auth"], e);
        assert_eq!(duration_for(&c(None), year), year);
        assert_eq!(duration_for(&c(Some(3600)), year), Duration::from_secs(3600));
        assert_eq!(duration_for(&c(Some(i32::MAX)), year), year);
        assert_eq!(duration_for(&c(Some(-5)), year), year);
        assert_eq!(duration_for(&c(None), Duration::from_secs(1)), MIN_DURATION);
    }

    #[test]
    fn built_in_signers_enforce_their_rules_and_others_are_ignored() {
        assert_eq!(check_signer_rules(&csr(KUBELET_CLIENT_SIGNER, "system:node:n", &["client auth"], None)), Ok(true));
        assert!(check_signer_rules(&csr(KUBELET_CLIENT_SIGNER, "alice", &["client auth"], None)).is_err());
        assert!(check_signer_rules(&csr(APISERVER_CLIENT_SIGNER, "alice", &["server auth"], None)).is_err());
        assert_eq!(check_signer_rules(&csr(APISERVER_CLIENT_SIGNER, "alice", &["client auth"], None)), Ok(true));
        assert_eq!(check_signer_rules(&csr("example.com/mine", "alice", &["client auth"], None)), Ok(false));
    }
}
