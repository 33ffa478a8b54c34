//! REST clients for the few controller paths the gRPC client does not carry (the metrics API,
//! a CSR's approval subresource), with the controller-manager's kubeconfig credentials.

use std::time::Duration;

/// An HTTP client trusting the kubeconfig's CA and presenting its client certificate and
/// bearer token.
pub fn client(credentials: &rkube_client::Kubeconfig, timeout: Duration) -> Result<reqwest::Client, String> {
    let mut builder = reqwest::Client::builder().timeout(timeout);
    if let Some(ca) = &credentials.certificate_authority {
        let ca = reqwest::Certificate::from_pem(ca).map_err(|e| format!("certificate-authority: {e}"))?;
        builder = builder.tls_built_in_root_certs(false).add_root_certificate(ca);
    }
    if let (Some(cert), Some(key)) = (&credentials.client_certificate, &credentials.client_key) {
        let pem = [cert.as_slice(), b"\n", key.as_slice()].concat();
        builder = builder.identity(reqwest::Identity::from_pem(&pem).map_err(|e| format!("client certificate: {e}"))?);
    }
    if let Some(token) = &credentials.token {
        let mut headers = reqwest::header::HeaderMap::new();
        let value = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| "the bearer token is not a valid header value".to_string())?;
        headers.insert(reqwest::header::AUTHORIZATION, value);
        builder = builder.default_headers(headers);
    }
    builder.build().map_err(|e| e.to_string())
}
