//! Client certificate authentication: the subject's CN is the user, each O a group.
//! The TLS layer has already verified the chain against the client CA; this only reads names.

use super::UserInfo;
use crate::error::{AuthError, Result};

/// The user a verified client certificate (DER) names, with `system:authenticated` added.
/// A certificate without a common name is an error here; the [`super::Authenticator`] treats
/// it as "no certificate" and goes on to the bearer token, as Kubernetes does.
pub fn from_client_certificate(der: &[u8]) -> Result<UserInfo> {
    user_from_certificate(der)?.ok_or_else(|| AuthError::invalid("client certificate", "subject has no common name"))
}

/// `Ok(None)` when the subject has no (or an empty) CN.
pub(super) fn user_from_certificate(der: &[u8]) -> Result<Option<UserInfo>> {
    let (_, cert) =
        x509_parser::parse_x509_certificate(der).map_err(|e| AuthError::invalid("client certificate", e))?;
    let subject = cert.subject();
    let Some(cn) = subject.iter_common_name().next() else {
        return Ok(None);
    };
    let name = cn.as_str().map_err(|e| AuthError::invalid("client certificate common name", e))?;
    if name.is_empty() {
        return Ok(None);
    }
    let mut groups = Vec::new();
    for o in subject.iter_organization() {
        let group = o.as_str().map_err(|e| AuthError::invalid("client certificate organization", e))?;
        groups.push(group.to_string());
    }
    Ok(Some(UserInfo::new(name, groups).with_authenticated_group()))
}
