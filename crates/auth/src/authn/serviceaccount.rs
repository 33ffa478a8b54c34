//! ServiceAccount tokens: JWTs the API server signs (TokenRequest, projected volumes) and
//! verifies on every request. Signed with `ring` directly, no JWT library: ES256 with the
//! ECDSA P-256 keys `pki` generates, or RS256 when given an RSA key (kubeadm's `sa.key`).
//! Only bound tokens (with the `kubernetes.io` claim) are accepted, not legacy Secret tokens.
//!
//! The signature, issuer, audience and validity window are checked here; whether the
//! ServiceAccount and the pod the token is bound to still exist (with the UIDs in the token)
//! is the caller's check, through [`ServiceAccountValidator`].

use super::{
    EXTRA_CREDENTIAL_ID, EXTRA_NODE_NAME, EXTRA_NODE_UID, EXTRA_POD_NAME, EXTRA_POD_UID, UserInfo,
    service_account_username,
};
use crate::der::{self, KeyKind};
use crate::error::{AuthError, Result};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use ring::rand::SecureRandom as _;
use ring::signature::{self, EcdsaKeyPair, KeyPair as _, RsaKeyPair};
use rustls_pki_types::pem::{PemObject as _, SectionKind};
use serde::{Deserialize, Serialize};

/// How far a token's `nbf`/`iat` may be in the future: API servers' clocks differ a little.
const CLOCK_SKEW: jiff::SignedDuration = jiff::SignedDuration::from_secs(60);

/// What a ServiceAccount token says about its bearer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceAccountClaims {
    /// The ServiceAccount's namespace.
    pub namespace: String,
    /// The ServiceAccount's name.
    pub name: String,
    /// The ServiceAccount's UID.
    pub uid: String,
    /// `(name, uid)` of the pod the token is bound to.
    pub pod: Option<(String, String)>,
    /// `(name, uid)` of the node the token is bound to.
    pub node: Option<(String, String)>,
    /// Who the token is for (`aud`).
    pub audiences: Vec<String>,
    /// When the token stops being valid (`exp`).
    pub expiration: jiff::Timestamp,
    /// The token's unique ID (`jti`); [`ServiceAccountTokenSigner::issue`] fills it when empty.
    pub token_id: Option<String>,
}

impl ServiceAccountClaims {
    /// `system:serviceaccount:<ns>:<name>` in `system:serviceaccounts`,
    /// `system:serviceaccounts:<ns>` and `system:authenticated`, with the bound pod, node and
    /// token ID as extras.
    pub fn user_info(&self) -> UserInfo {
        let mut user = UserInfo::service_account(&self.namespace, &self.name);
        user.uid = self.uid.clone();
        if let Some((name, uid)) = &self.pod {
            user.extra.insert(EXTRA_POD_NAME.into(), vec![name.clone()]);
            user.extra.insert(EXTRA_POD_UID.into(), vec![uid.clone()]);
        }
        if let Some((name, uid)) = &self.node {
            user.extra.insert(EXTRA_NODE_NAME.into(), vec![name.clone()]);
            user.extra.insert(EXTRA_NODE_UID.into(), vec![uid.clone()]);
        }
        if let Some(id) = &self.token_id {
            user.extra.insert(EXTRA_CREDENTIAL_ID.into(), vec![format!("JTI={id}")]);
        }
        user
    }
}

/// Checks, after the signature verified, that the objects a token names still exist.
/// Implemented for closures.
pub trait ServiceAccountValidator: Send + Sync {
    /// `Ok` if the ServiceAccount (and bound pod/node) still exist with the token's UIDs;
    /// otherwise the reason the token is no longer valid.
    fn validate(&self, claims: &ServiceAccountClaims) -> std::result::Result<(), String>;
}

impl<F> ServiceAccountValidator for F
where
    F: Fn(&ServiceAccountClaims) -> std::result::Result<(), String> + Send + Sync,
{
    fn validate(&self, claims: &ServiceAccountClaims) -> std::result::Result<(), String> {
        self(claims)
    }
}

#[derive(Serialize, Deserialize)]
struct Header {
    alg: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    kid: Option<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

#[derive(Serialize, Deserialize)]
struct Payload {
    aud: Audience,
    exp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    iat: Option<i64>,
    iss: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    jti: Option<String>,
    #[serde(rename = "kubernetes.io", default, skip_serializing_if = "Option::is_none")]
    kubernetes: Option<KubernetesClaim>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    nbf: Option<i64>,
    sub: String,
}

#[derive(Serialize, Deserialize)]
struct KubernetesClaim {
    namespace: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    node: Option<ObjectRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pod: Option<ObjectRef>,
    serviceaccount: ObjectRef,
}

#[derive(Serialize, Deserialize)]
struct ObjectRef {
    name: String,
    uid: String,
}

enum Signer {
    Es256(EcdsaKeyPair),
    Rs256(RsaKeyPair),
}

/// Signs ServiceAccount tokens with the cluster's private key.
pub struct ServiceAccountTokenSigner {
    key: Signer,
    key_id: String,
    issuer: String,
    rng: ring::rand::SystemRandom,
}

impl std::fmt::Debug for ServiceAccountTokenSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceAccountTokenSigner")
            .field("key_id", &self.key_id)
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

impl ServiceAccountTokenSigner {
    /// A signer from a PEM private key (`PRIVATE KEY` PKCS#8 ECDSA P-256 or RSA, or
    /// `RSA PRIVATE KEY`) and the issuer URL tokens carry (`--service-account-issuer`).
    pub fn new(private_key_pem: &str, issuer: impl Into<String>) -> Result<Self> {
        let rng = ring::rand::SystemRandom::new();
        let mut found = None;
        for section in <(SectionKind, Vec<u8>)>::pem_slice_iter(private_key_pem.as_bytes()) {
            let (kind, der) = section.map_err(|e| AuthError::invalid("ServiceAccount private key", e))?;
            found = match kind {
                SectionKind::PrivateKey => Some(signer_from_pkcs8(&der, &rng)?),
                SectionKind::RsaPrivateKey => Some(Signer::Rs256(
                    RsaKeyPair::from_der(&der).map_err(|e| AuthError::invalid("ServiceAccount private key", e))?,
                )),
                SectionKind::EcPrivateKey => {
                    return Err(AuthError::invalid(
                        "ServiceAccount private key",
                        "SEC1 \"EC PRIVATE KEY\" is not supported; convert it to PKCS#8 (openssl pkcs8 -topk8 -nocrypt)",
                    ));
                }
                _ => continue,
            };
            break;
        }
        let key = found.ok_or_else(|| AuthError::invalid("ServiceAccount private key", "no private key in PEM"))?;
        let spki = match &key {
            Signer::Es256(k) => der::spki(KeyKind::EcP256, k.public_key().as_ref()),
            Signer::Rs256(k) => der::spki(KeyKind::Rsa, k.public().as_ref()),
        };
        Ok(ServiceAccountTokenSigner { key, key_id: key_id(&spki), issuer: issuer.into(), rng })
    }

    /// The `kid` tokens carry: base64url(SHA-256(SubjectPublicKeyInfo DER)), as Kubernetes.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The issuer tokens carry.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// A signed token for `claims`, issued now.
    pub fn issue(&self, claims: &ServiceAccountClaims) -> Result<String> {
        self.issue_at(claims, jiff::Timestamp::now())
    }

    /// A signed token for `claims` with `iat` and `nbf` set to `now`.
    pub fn issue_at(&self, claims: &ServiceAccountClaims, now: jiff::Timestamp) -> Result<String> {
        let token_id = match &claims.token_id {
            Some(id) => id.clone(),
            None => random_id(&self.rng)?,
        };
        let payload = Payload {
            aud: Audience::Many(claims.audiences.clone()),
            exp: claims.expiration.as_second(),
            iat: Some(now.as_second()),
            iss: self.issuer.clone(),
            jti: Some(token_id),
            kubernetes: Some(KubernetesClaim {
                namespace: claims.namespace.clone(),
                node: claims.node.as_ref().map(|(name, uid)| ObjectRef { name: name.clone(), uid: uid.clone() }),
                pod: claims.pod.as_ref().map(|(name, uid)| ObjectRef { name: name.clone(), uid: uid.clone() }),
                serviceaccount: ObjectRef { name: claims.name.clone(), uid: claims.uid.clone() },
            }),
            nbf: Some(now.as_second()),
            sub: service_account_username(&claims.namespace, &claims.name),
        };
        let alg = match self.key {
            Signer::Es256(_) => "ES256",
            Signer::Rs256(_) => "RS256",
        };
        let header = Header { alg: alg.to_string(), kid: Some(self.key_id.clone()) };
        let signing_input = format!("{}.{}", b64_json(&header)?, b64_json(&payload)?);
        let signature = match &self.key {
            Signer::Es256(k) => k
                .sign(&self.rng, signing_input.as_bytes())
                .map_err(|_| AuthError::Signing("ECDSA signing failed".into()))?
                .as_ref()
                .to_vec(),
            Signer::Rs256(k) => {
                let mut sig = vec![0u8; k.public().modulus_len()];
                k.sign(&signature::RSA_PKCS1_SHA256, &self.rng, signing_input.as_bytes(), &mut sig)
                    .map_err(|_| AuthError::Signing("RSA signing failed".into()))?;
                sig
            }
        };
        Ok(format!("{signing_input}.{}", B64URL.encode(signature)))
    }
}

fn b64_json(value: &impl Serialize) -> Result<String> {
    Ok(B64URL.encode(serde_json::to_vec(value).map_err(|e| AuthError::Signing(e.to_string()))?))
}

fn signer_from_pkcs8(der: &[u8], rng: &ring::rand::SystemRandom) -> Result<Signer> {
    if let Ok(k) = EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, der, rng) {
        return Ok(Signer::Es256(k));
    }
    RsaKeyPair::from_pkcs8(der)
        .map(Signer::Rs256)
        .map_err(|e| AuthError::invalid("ServiceAccount private key", format!("not ECDSA P-256 or RSA: {e}")))
}

fn key_id(spki: &[u8]) -> String {
    B64URL.encode(ring::digest::digest(&ring::digest::SHA256, spki))
}

fn random_id(rng: &ring::rand::SystemRandom) -> Result<String> {
    let mut b = [0u8; 16];
    rng.fill(&mut b).map_err(|_| AuthError::Signing("no randomness".into()))?;
    // Shaped like a UUID v4, which is what Kubernetes puts in `jti`.
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = crate::pki::hex(&b);
    Ok(format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..]))
}

#[derive(Clone)]
struct VerifyingKey {
    kind: KeyKind,
    key_id: String,
    public: Vec<u8>,
}

/// Verifies ServiceAccount tokens against the cluster's public key(s).
#[derive(Clone)]
pub struct ServiceAccountTokenVerifier {
    keys: Vec<VerifyingKey>,
    issuer: String,
    audiences: Vec<String>,
}

impl std::fmt::Debug for ServiceAccountTokenVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceAccountTokenVerifier")
            .field("key_ids", &self.keys.iter().map(|k| k.key_id.as_str()).collect::<Vec<_>>())
            .field("issuer", &self.issuer)
            .field("audiences", &self.audiences)
            .finish()
    }
}

impl ServiceAccountTokenVerifier {
    /// A verifier trusting every key in `public_keys_pem` (concatenate files to trust several:
    /// `PUBLIC KEY`, `CERTIFICATE`, or private keys whose public half is used), accepting tokens
    /// from `issuer` for any of `audiences` (empty: the issuer itself, as Kubernetes defaults).
    pub fn new(public_keys_pem: &str, issuer: impl Into<String>, audiences: Vec<String>) -> Result<Self> {
        let what = "ServiceAccount public key";
        let rng = ring::rand::SystemRandom::new();
        let mut keys = Vec::new();
        for section in <(SectionKind, Vec<u8>)>::pem_slice_iter(public_keys_pem.as_bytes()) {
            let (kind, der) = section.map_err(|e| AuthError::invalid(what, e))?;
            let spki = match kind {
                SectionKind::PublicKey => der,
                SectionKind::Certificate => {
                    let (_, cert) =
                        x509_parser::parse_x509_certificate(&der).map_err(|e| AuthError::invalid(what, e))?;
                    cert.tbs_certificate.subject_pki.raw.to_vec()
                }
                SectionKind::PrivateKey => match signer_from_pkcs8(&der, &rng)? {
                    Signer::Es256(k) => der::spki(KeyKind::EcP256, k.public_key().as_ref()),
                    Signer::Rs256(k) => der::spki(KeyKind::Rsa, k.public().as_ref()),
                },
                SectionKind::RsaPrivateKey => {
                    let k = RsaKeyPair::from_der(&der).map_err(|e| AuthError::invalid(what, e))?;
                    der::spki(KeyKind::Rsa, k.public().as_ref())
                }
                _ => continue,
            };
            let (kind, public) = der::parse_spki(&spki)?;
            keys.push(VerifyingKey { kind, key_id: key_id(&spki), public });
        }
        if keys.is_empty() {
            return Err(AuthError::invalid(what, "no key in PEM"));
        }
        let issuer = issuer.into();
        let audiences = if audiences.is_empty() { vec![issuer.clone()] } else { audiences };
        Ok(ServiceAccountTokenVerifier { keys, issuer, audiences })
    }

    /// The issuer this verifier accepts.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Verifies `token` now.
    pub fn verify(&self, token: &str) -> Result<ServiceAccountClaims> {
        self.verify_at(token, jiff::Timestamp::now())
    }

    /// Verifies signature, issuer, audience, `exp` (no leeway) and `nbf`/`iat` (60 s leeway for
    /// clock skew) at `now`, and returns the claims.
    pub fn verify_at(&self, token: &str, now: jiff::Timestamp) -> Result<ServiceAccountClaims> {
        let bad = |why: &str| AuthError::Token(why.to_string());
        let mut parts = token.split('.');
        let (Some(h64), Some(p64), Some(s64), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            return Err(bad("not a JWT"));
        };
        let header: Header = serde_json::from_slice(&B64URL.decode(h64).map_err(|_| bad("header is not base64url"))?)
            .map_err(|_| bad("header is not JSON"))?;
        let kind = match header.alg.as_str() {
            "ES256" => KeyKind::EcP256,
            "RS256" => KeyKind::Rsa,
            other => return Err(AuthError::Token(format!("unsupported algorithm {other:?}"))),
        };
        let signature = B64URL.decode(s64).map_err(|_| bad("signature is not base64url"))?;
        let signing_input = &token.as_bytes()[..h64.len() + 1 + p64.len()];
        let known_kid = header.kid.as_deref().filter(|kid| self.keys.iter().any(|k| k.key_id == *kid));
        let verified =
            self.keys.iter().filter(|k| k.kind == kind && known_kid.is_none_or(|kid| k.key_id == kid)).any(|k| {
                let alg: &dyn signature::VerificationAlgorithm = match k.kind {
                    KeyKind::EcP256 => &signature::ECDSA_P256_SHA256_FIXED,
                    KeyKind::Rsa => &signature::RSA_PKCS1_2048_8192_SHA256,
                };
                signature::UnparsedPublicKey::new(alg, &k.public).verify(signing_input, &signature).is_ok()
            });
        if !verified {
            return Err(bad("signature does not verify with any trusted key"));
        }

        let payload: Payload =
            serde_json::from_slice(&B64URL.decode(p64).map_err(|_| bad("payload is not base64url"))?)
                .map_err(|e| AuthError::Token(format!("payload: {e}")))?;
        if payload.iss != self.issuer {
            return Err(AuthError::Token(format!("issuer {:?} is not trusted", payload.iss)));
        }
        let audiences = match payload.aud {
            Audience::One(a) => vec![a],
            Audience::Many(a) => a,
        };
        if !audiences.iter().any(|a| self.audiences.contains(a)) {
            return Err(bad("token audience does not match"));
        }
        let expiration = jiff::Timestamp::from_second(payload.exp).map_err(|_| bad("exp out of range"))?;
        if now >= expiration {
            return Err(bad("token has expired"));
        }
        let skewed_now = now.checked_add(CLOCK_SKEW).map_err(|_| bad("time out of range"))?;
        for (claim, value) in [("nbf", payload.nbf), ("iat", payload.iat)] {
            if let Some(v) = value
                && jiff::Timestamp::from_second(v).map_err(|_| bad("time out of range"))? > skewed_now
            {
                return Err(AuthError::Token(format!("token is not valid yet ({claim} in the future)")));
            }
        }
        let kube = payload.kubernetes.ok_or_else(|| bad("no kubernetes.io claim (legacy tokens are not accepted)"))?;
        if payload.sub != service_account_username(&kube.namespace, &kube.serviceaccount.name) {
            return Err(bad("sub does not match the kubernetes.io claim"));
        }
        Ok(ServiceAccountClaims {
            namespace: kube.namespace,
            name: kube.serviceaccount.name,
            uid: kube.serviceaccount.uid,
            pod: kube.pod.map(|p| (p.name, p.uid)),
            node: kube.node.map(|n| (n.name, n.uid)),
            audiences,
            expiration,
            token_id: payload.jti,
        })
    }

    /// The trusted keys as a JSON Web Key Set, for `/openid/v1/jwks`.
    pub fn jwks(&self) -> Result<serde_json::Value> {
        let mut keys = Vec::new();
        for k in &self.keys {
            keys.push(match k.kind {
                KeyKind::EcP256 => {
                    // Uncompressed point: 0x04 || X (32 bytes) || Y (32 bytes).
                    if k.public.len() != 65 || k.public[0] != 4 {
                        return Err(AuthError::invalid("ServiceAccount public key", "not an uncompressed P-256 point"));
                    }
                    serde_json::json!({
                        "use": "sig", "kty": "EC", "kid": k.key_id, "crv": "P-256", "alg": "ES256",
                        "x": B64URL.encode(&k.public[1..33]), "y": B64URL.encode(&k.public[33..]),
                    })
                }
                KeyKind::Rsa => {
                    let (n, e) = der::rsa_public_numbers(&k.public)?;
                    serde_json::json!({
                        "use": "sig", "kty": "RSA", "kid": k.key_id, "alg": "RS256",
                        "n": B64URL.encode(n), "e": B64URL.encode(e),
                    })
                }
            });
        }
        Ok(serde_json::json!({ "keys": keys }))
    }
}
