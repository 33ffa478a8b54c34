use super::*;
use crate::error::AuthError;
use crate::pki::{CertificateAuthority, generate_service_account_key};
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use std::sync::Arc;

const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

// ---- static token file ----

#[test]
fn token_file_parses_quoted_groups_and_skips_blank_lines() {
    let text = "\u{feff}abc123,alice,uid-1,\"system:masters,dev , ops\"\n\
                \n\
                def456,bob,uid-2\r\n\
                \"q,uoted\",\"carol \"\"c\"\"\",uid-3,solo\n\
                ,nobody,uid-4\n";
    let file = TokenFile::parse(text).unwrap();
    assert_eq!(file.len(), 3);
    let alice = file.authenticate("abc123").unwrap();
    assert_eq!(alice.name, "alice");
    assert_eq!(alice.uid, "uid-1");
    assert_eq!(alice.groups, ["system:masters", "dev", "ops", AUTHENTICATED_GROUP]);
    let bob = file.authenticate("def456").unwrap();
    assert_eq!((bob.name.as_str(), bob.groups.as_slice()), ("bob", &[AUTHENTICATED_GROUP.to_string()][..]));
    let carol = file.authenticate("q,uoted").unwrap();
    assert_eq!(carol.name, "carol \"c\"");
    assert_eq!(carol.groups, ["solo", AUTHENTICATED_GROUP]);
    assert_eq!(file.authenticate(""), None);
    assert_eq!(file.authenticate("abc12"), None);
    // Tokens never show up in Debug output.
    assert!(!format!("{file:?}").contains("abc123"));
}

#[test]
fn token_file_errors_name_the_line() {
    let cases = [
        ("a,b,c\nshort,line\n", 2, "at least 3 columns"),
        ("a,b,c\n\n\"open,b,c\n", 3, "unterminated"),
        ("to\"ken,b,c\n", 1, "bare \""),
        ("\"tok\"x,b,c\n", 1, "after a quoted field"),
    ];
    for (text, line, message) in cases {
        match TokenFile::parse(text) {
            Err(AuthError::TokenFile { line: l, reason }) => {
                assert_eq!(l, line, "{text:?}");
                assert!(reason.contains(message), "{text:?}: {reason}");
            }
            other => panic!("{text:?}: {other:?}"),
        }
    }
    let err = TokenFile::parse("x,y\n").unwrap_err().to_string();
    assert!(err.starts_with("token file line 1: "), "{err}");
    // A repeated token keeps its last line.
    let file = TokenFile::parse("t,first,1\nt,second,2\n").unwrap();
    assert_eq!(file.authenticate("t").unwrap().name, "second");
}

#[test]
fn token_file_loads_from_disk() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokens.csv");
    std::fs::write(&path, "s3cret,admin,1,system:masters\n").unwrap();
    let file = TokenFile::load(&path).unwrap();
    assert!(file.authenticate("s3cret").unwrap().in_group("system:masters"));
    let missing = TokenFile::load(&dir.path().join("nope")).unwrap_err().to_string();
    assert!(missing.contains("nope"), "{missing}");
}

// ---- ServiceAccount tokens ----

fn claims(now: Timestamp) -> ServiceAccountClaims {
    ServiceAccountClaims {
        namespace: "team-a".into(),
        name: "builder".into(),
        uid: "sa-uid".into(),
        pod: Some(("builder-0".into(), "pod-uid".into())),
        node: None,
        audiences: vec![ISSUER.into()],
        expiration: now + SignedDuration::from_hours(1),
        token_id: None,
    }
}

fn es256_pair() -> (ServiceAccountTokenSigner, ServiceAccountTokenVerifier, String) {
    let (private, public) = generate_service_account_key().unwrap();
    let signer = ServiceAccountTokenSigner::new(&private, ISSUER).unwrap();
    let verifier = ServiceAccountTokenVerifier::new(&public, ISSUER, vec![ISSUER.into(), "vault".into()]).unwrap();
    (signer, verifier, public)
}

#[test]
fn service_account_token_round_trips() {
    let (signer, verifier, _) = es256_pair();
    let now = Timestamp::now();
    let token = signer.issue_at(&claims(now), now).unwrap();
    let got = verifier.verify_at(&token, now).unwrap();
    assert_eq!(got.namespace, "team-a");
    assert_eq!(got.name, "builder");
    assert_eq!(got.uid, "sa-uid");
    assert_eq!(got.pod, Some(("builder-0".into(), "pod-uid".into())));
    assert_eq!(got.audiences, [ISSUER]);
    assert_eq!(got.expiration.as_second(), (now + SignedDuration::from_hours(1)).as_second());
    let jti = got.token_id.clone().unwrap();
    assert_eq!(jti.len(), 36);

    let user = got.user_info();
    assert_eq!(user.name, "system:serviceaccount:team-a:builder");
    assert_eq!(user.uid, "sa-uid");
    assert_eq!(user.groups, ["system:serviceaccounts", "system:serviceaccounts:team-a", AUTHENTICATED_GROUP]);
    assert_eq!(user.extra[EXTRA_POD_NAME], ["builder-0"]);
    assert_eq!(user.extra[EXTRA_POD_UID], ["pod-uid"]);
    assert_eq!(user.extra[EXTRA_CREDENTIAL_ID], [format!("JTI={jti}")]);

    // The wire format is Kubernetes': ES256 with the key's kid, and the kubernetes.io claim.
    let mut parts = token.split('.');
    let header: serde_json::Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, parts.next().unwrap()).unwrap(),
    )
    .unwrap();
    assert_eq!(header["alg"], "ES256");
    assert_eq!(header["kid"], signer.key_id());
    let payload: serde_json::Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, parts.next().unwrap()).unwrap(),
    )
    .unwrap();
    assert_eq!(payload["sub"], "system:serviceaccount:team-a:builder");
    assert_eq!(payload["iss"], ISSUER);
    assert_eq!(payload["kubernetes.io"]["serviceaccount"]["uid"], "sa-uid");
    assert_eq!(payload["kubernetes.io"]["pod"]["name"], "builder-0");
    assert_eq!(payload["nbf"], now.as_second());

    // The verifier's kid for the public key equals the signer's for the private key.
    let jwks = verifier.jwks().unwrap();
    assert_eq!(jwks["keys"][0]["kid"], signer.key_id());
    assert_eq!(jwks["keys"][0]["kty"], "EC");
}

#[test]
fn service_account_token_rejections() {
    let (signer, verifier, _) = es256_pair();
    let now = Timestamp::now();
    let token = signer.issue_at(&claims(now), now).unwrap();
    let reason = |r: crate::error::Result<ServiceAccountClaims>| match r {
        Err(AuthError::Token(reason)) => reason,
        other => panic!("expected a token error, got {other:?}"),
    };

    // Signed by another key.
    let (other_signer, _, _) = es256_pair();
    let foreign = other_signer.issue_at(&claims(now), now).unwrap();
    assert!(reason(verifier.verify_at(&foreign, now)).contains("signature"));

    // For another audience.
    let mut c = claims(now);
    c.audiences = vec!["someone-else".into()];
    assert!(reason(verifier.verify_at(&signer.issue_at(&c, now).unwrap(), now)).contains("audience"));

    // Expired, at and after exp.
    let exp = now + SignedDuration::from_hours(1);
    assert!(reason(verifier.verify_at(&token, exp)).contains("expired"));
    assert!(verifier.verify_at(&token, exp - SignedDuration::from_secs(1)).is_ok());

    // Not valid yet (beyond the clock-skew allowance), but fine within it.
    assert!(reason(verifier.verify_at(&token, now - SignedDuration::from_secs(120))).contains("not valid yet"));
    assert!(verifier.verify_at(&token, now - SignedDuration::from_secs(30)).is_ok());

    // Tampered payload: same signature, namespace changed.
    let parts: Vec<&str> = token.split('.').collect();
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let payload = String::from_utf8(base64::Engine::decode(&b64, parts[1]).unwrap()).unwrap();
    let forged = payload.replace("\"team-a\"", "\"kube-system\"");
    assert_ne!(forged, payload);
    let tampered = format!("{}.{}.{}", parts[0], base64::Engine::encode(&b64, forged), parts[2]);
    assert!(reason(verifier.verify_at(&tampered, now)).contains("signature"));

    // alg none, garbage and truncated tokens.
    let none_header = base64::Engine::encode(&b64, r#"{"alg":"none"}"#);
    assert!(reason(verifier.verify_at(&format!("{none_header}.{}.", parts[1]), now)).contains("unsupported"));
    assert!(verifier.verify_at("a.b.c", now).is_err());
    assert!(verifier.verify_at(&format!("{}.{}", parts[0], parts[1]), now).is_err());
    assert!(verifier.verify_at(&format!("{token}.x"), now).is_err());
}

#[test]
fn service_account_issuer_must_match() {
    let (private, public) = generate_service_account_key().unwrap();
    let signer = ServiceAccountTokenSigner::new(&private, "https://elsewhere").unwrap();
    let verifier = ServiceAccountTokenVerifier::new(&public, ISSUER, vec![]).unwrap();
    let now = Timestamp::now();
    let err = verifier.verify_at(&signer.issue_at(&claims(now), now).unwrap(), now).unwrap_err();
    assert!(err.to_string().contains("issuer"), "{err}");
}

#[test]
fn rs256_with_an_openssl_rsa_key() {
    use std::process::Command;
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("sa.key");
    let generated = Command::new("openssl")
        .args(["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out"])
        .arg(&key)
        .output();
    let Ok(out) = generated else {
        eprintln!("openssl not found: skipped the RSA key test");
        return;
    };
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let public = Command::new("openssl").args(["pkey", "-pubout", "-in"]).arg(&key).output().unwrap();
    assert!(public.status.success());
    let private = std::fs::read_to_string(&key).unwrap();
    let public = String::from_utf8(public.stdout).unwrap();

    let signer = ServiceAccountTokenSigner::new(&private, ISSUER).unwrap();
    let verifier = ServiceAccountTokenVerifier::new(&public, ISSUER, vec![]).unwrap();
    let now = Timestamp::now();
    let token = signer.issue_at(&claims(now), now).unwrap();
    assert_eq!(verifier.verify_at(&token, now).unwrap().name, "builder");
    let jwks = verifier.jwks().unwrap();
    assert_eq!(jwks["keys"][0]["kid"], signer.key_id());
    assert_eq!(jwks["keys"][0]["e"], "AQAB");

    // An ES256 verifier trusting a different key list rejects it; a verifier trusting both accepts both.
    let (es_signer, _, es_public) = es256_pair();
    let both = ServiceAccountTokenVerifier::new(&format!("{public}{es_public}"), ISSUER, vec![]).unwrap();
    assert!(both.verify_at(&token, now).is_ok());
    assert!(both.verify_at(&es_signer.issue_at(&claims(now), now).unwrap(), now).is_ok());
    assert!(verifier.verify_at(&es_signer.issue_at(&claims(now), now).unwrap(), now).is_err());
}

// ---- bootstrap tokens ----

fn bootstrap_secret(id: &str, secret: &str, extra: &[(&str, &str)]) -> Secret {
    let mut data = std::collections::BTreeMap::from([
        ("token-id".to_string(), ByteString(id.as_bytes().to_vec())),
        ("token-secret".to_string(), ByteString(secret.as_bytes().to_vec())),
        ("usage-bootstrap-authentication".to_string(), ByteString(b"true".to_vec())),
    ]);
    for (k, v) in extra {
        data.insert(k.to_string(), ByteString(v.as_bytes().to_vec()));
    }
    Secret {
        metadata: ObjectMeta {
            name: Some(bootstrap_token_secret_name(id)),
            namespace: Some("kube-system".into()),
            ..Default::default()
        },
        type_: Some(BOOTSTRAP_TOKEN_SECRET_TYPE.into()),
        data: Some(data),
        ..Default::default()
    }
}

#[test]
fn bootstrap_token_parse() {
    let t = BootstrapToken::parse("abcdef.0123456789abcdef").unwrap();
    assert_eq!((t.id.as_str(), t.secret.as_str()), ("abcdef", "0123456789abcdef"));
    assert_eq!(t.secret_name(), "bootstrap-token-abcdef");
    assert!(!format!("{t:?}").contains("0123456789abcdef"));
    for bad in [
        "abcdef0123456789abcdef",
        "ABCDEF.0123456789abcdef",
        "abcde.0123456789abcdef",
        "abcdef.0123456789abcde",
        "abcdef.0123456789abcdeff",
        "abc-ef.0123456789abcdef",
    ] {
        assert_eq!(BootstrapToken::parse(bad), None, "{bad}");
    }
    let generated = BootstrapToken::generate().unwrap();
    assert_eq!(BootstrapToken::parse(&generated.token()), Some(generated.clone()));
    assert_ne!(BootstrapToken::generate().unwrap(), generated);
}

#[test]
fn bootstrap_token_authentication() {
    let now: Timestamp = "2030-01-01T00:00:00Z".parse().unwrap();
    let token = "abcdef.0123456789abcdef";
    let valid = bootstrap_secret(
        "abcdef",
        "0123456789abcdef",
        &[
            ("expiration", "2030-01-02T00:00:00Z"),
            ("auth-extra-groups", "system:bootstrappers:kubeadm:default-node-token"),
        ],
    );
    let user = authenticate_bootstrap(token, &valid, now).unwrap();
    assert_eq!(user.name, "system:bootstrap:abcdef");
    assert_eq!(
        user.groups,
        ["system:bootstrappers", "system:bootstrappers:kubeadm:default-node-token", AUTHENTICATED_GROUP]
    );

    // Expired (at the expiration instant and after).
    assert_eq!(authenticate_bootstrap(token, &valid, "2030-01-02T00:00:00Z".parse().unwrap()), None);
    let bad_date = bootstrap_secret("abcdef", "0123456789abcdef", &[("expiration", "tomorrow")]);
    assert_eq!(authenticate_bootstrap(token, &bad_date, now), None);
    // Wrong secret.
    assert_eq!(authenticate_bootstrap("abcdef.0123456789abcdee", &valid, now), None);
    // Not for authentication.
    let mut signing_only = bootstrap_secret("abcdef", "0123456789abcdef", &[]);
    signing_only.data.as_mut().unwrap().remove("usage-bootstrap-authentication");
    assert_eq!(authenticate_bootstrap(token, &signing_only, now), None);
    let mut not_true = bootstrap_secret("abcdef", "0123456789abcdef", &[]);
    not_true.data.as_mut().unwrap().insert("usage-bootstrap-authentication".into(), ByteString(b"false".to_vec()));
    assert_eq!(authenticate_bootstrap(token, &not_true, now), None);
    // Wrong type, wrong name, being deleted, group outside system:bootstrappers:.
    let mut wrong_type = valid.clone();
    wrong_type.type_ = Some("Opaque".into());
    assert_eq!(authenticate_bootstrap(token, &wrong_type, now), None);
    let other = bootstrap_secret("zzzzzz", "0123456789abcdef", &[]);
    assert_eq!(authenticate_bootstrap(token, &other, now), None);
    let mut deleting = valid.clone();
    deleting.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now));
    assert_eq!(authenticate_bootstrap(token, &deleting, now), None);
    let escalating = bootstrap_secret("abcdef", "0123456789abcdef", &[("auth-extra-groups", "system:masters")]);
    assert_eq!(authenticate_bootstrap(token, &escalating, now), None);
    // No expiration: valid.
    assert!(authenticate_bootstrap(token, &bootstrap_secret("abcdef", "0123456789abcdef", &[]), now).is_some());
}

// ---- the chain ----

#[test]
fn authenticator_chain_follows_kubernetes_order() {
    let now = Timestamp::now();
    let ca = CertificateAuthority::generate("ca").unwrap();
    let cert = ca.issue_client("carol", &["devs".into()]).unwrap();
    let cert_der = crate::pki::first_certificate_der(&cert.cert_pem).unwrap();
    let (signer, verifier, _) = es256_pair();
    let sa_token = signer.issue_at(&claims(now), now).unwrap();
    let secret = Arc::new(bootstrap_secret("abcdef", "0123456789abcdef", &[]));
    let lookup = move |id: &str| (id == "abcdef").then(|| secret.clone());
    let auth = Authenticator::new()
        .with_token_file(TokenFile::parse("static-token,dave,1,ops\n").unwrap())
        .with_bootstrap_tokens(lookup)
        .with_service_account_tokens(verifier.clone());

    let name = |a: Authentication| match a {
        Authentication::Authenticated(u) => u.name,
        other => panic!("{other:?}"),
    };
    // A client certificate wins over a bearer token.
    assert_eq!(name(auth.authenticate_at(Some(&cert_der), Some("Bearer static-token"), now)), "carol");
    assert_eq!(name(auth.authenticate_at(None, Some("Bearer static-token"), now)), "dave");
    assert_eq!(
        name(auth.authenticate_at(None, Some("bearer abcdef.0123456789abcdef"), now)),
        "system:bootstrap:abcdef"
    );
    assert_eq!(
        name(auth.authenticate_at(None, Some(&format!("Bearer {sa_token}")), now)),
        "system:serviceaccount:team-a:builder"
    );

    // A bearer token that matches nothing is a 401, not anonymous.
    // ("Bearer  x" has an empty token between the two spaces, which Kubernetes also rejects.)
    for bad in ["Bearer nope", "Bearer abcdef.0000000000000000", "Bearer a.b.c", "Bearer  x"] {
        assert!(matches!(auth.authenticate_at(None, Some(bad), now), Authentication::Rejected(_)), "{bad}");
    }
    // No credential, or another scheme: anonymous, unless disabled.
    assert_eq!(auth.authenticate_at(None, None, now), Authentication::Anonymous);
    assert_eq!(auth.authenticate_at(None, Some("Basic Zm9vOmJhcg=="), now), Authentication::Anonymous);
    // A trimmed "Bearer " has no token part at all: no credential, as in Kubernetes.
    assert_eq!(auth.authenticate_at(None, Some("Bearer "), now), Authentication::Anonymous);
    assert_eq!(Authentication::Anonymous.user().unwrap(), UserInfo::anonymous());
    assert!(!UserInfo::anonymous().is_authenticated());
    let strict = Authenticator::new().allow_anonymous(false);
    assert!(matches!(strict.authenticate_at(None, None, now), Authentication::Rejected(_)));
    // Garbage as a certificate is rejected.
    assert!(matches!(auth.authenticate_at(Some(b"junk"), None, now), Authentication::Rejected(_)));

    // The caller's existence check can still turn a valid JWT down.
    let checked = Authenticator::new().with_service_account_tokens(verifier).with_service_account_validator(
        |c: &ServiceAccountClaims| {
            if c.uid == "sa-uid" { Err("service account team-a/builder has been deleted".to_string()) } else { Ok(()) }
        },
    );
    assert_eq!(
        checked.authenticate_at(None, Some(&format!("Bearer {sa_token}")), now),
        Authentication::Rejected("service account team-a/builder has been deleted".into())
    );
}

#[test]
fn user_info_helpers() {
    let node = UserInfo::new("system:node:n1", [NODES_GROUP]);
    assert_eq!(node.node_name(), Some("n1"));
    assert_eq!(UserInfo::new("system:node:n1", ["other"]).node_name(), None);
    assert_eq!(UserInfo::new("system:node:", [NODES_GROUP]).node_name(), None);
    assert_eq!(split_service_account_username("system:serviceaccount:ns:sa"), Some(("ns", "sa")));
    assert_eq!(split_service_account_username("system:serviceaccount:ns"), None);
    assert_eq!(split_service_account_username("alice"), None);
    let u = UserInfo::new("x", [AUTHENTICATED_GROUP]).with_authenticated_group();
    assert_eq!(u.groups, [AUTHENTICATED_GROUP]);
    assert!(u.is_authenticated());
}

#[test]
fn shared_across_request_tasks() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Authenticator>();
    send_sync::<ServiceAccountTokenSigner>();
    send_sync::<ServiceAccountTokenVerifier>();
    send_sync::<crate::rbac::RbacAuthorizer<crate::rbac::StaticRbacSource>>();
    send_sync::<crate::pki::CertificateAuthority>();
}
