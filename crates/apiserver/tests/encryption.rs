//! Secrets encryption at rest (`--encryption-provider-config`) against a real etcd and real
//! API server processes: what etcd holds, what the API serves, key rotation, a missing key,
//! watches, and refusing a bad configuration at start.

mod common;

use base64::Engine;
use common::{Cluster, WatchReader, configmap};
use rkube_testkit::{ApiServer, Etcd};
use serde_json::{Value, json};
use std::path::PathBuf;

const SECRETS: &str = "/api/v1/namespaces/default/secrets";
const CM: &str = "/api/v1/namespaces/default/configmaps";
const KEY_PREFIX: &str = "/registry/core/secrets/default/";

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A 32-byte key, base64 as the config file wants it.
fn key(fill: u8) -> String {
    b64(&[fill; 32])
}

/// A config file for secrets whose providers are the given aesgcm keys, then identity.
fn config(keys: &[(&str, String)]) -> String {
    let mut text = String::from(
        "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n  - resources:\n      - secrets\n    providers:\n",
    );
    if !keys.is_empty() {
        text.push_str("      - aesgcm:\n          keys:\n");
        for (name, secret) in keys {
            text.push_str(&format!("            - name: {name}\n              secret: {secret}\n"));
        }
    }
    text.push_str("      - identity: {}\n");
    text
}

/// A temporary directory removed on drop (tempfile is not a dependency of this crate).
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let unique = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
        let dir = std::env::temp_dir().join(format!("rkube-encryption-{tag}-{}-{unique}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn write(&self, name: &str, text: &str) -> String {
        let path = self.0.join(name);
        std::fs::write(&path, text).unwrap();
        path.to_string_lossy().into_owned()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn secret(name: &str, value: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "type": "Opaque",
        "data": {"password": b64(value.as_bytes())}})
}

/// The raw bytes etcd holds at `key`.
async fn raw(etcd: &Etcd, key: &str) -> Vec<u8> {
    let mut client = etcd_client::Client::connect([etcd.endpoint()], None).await.expect("etcd client");
    let resp = client.get(key, None).await.expect("etcd get");
    resp.kvs().first().map(|kv| kv.value().to_vec()).unwrap_or_else(|| panic!("{key} is not in etcd"))
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}

fn cluster_with(etcd: Etcd, config_path: &str) -> Cluster {
    let api = ApiServer::start_with(&etcd, &["--encryption-provider-config", config_path]).expect("apiserver starts");
    Cluster { api, etcd, http: reqwest::Client::new() }
}

#[tokio::test]
async fn secrets_are_ciphertext_in_etcd_and_plaintext_through_the_api() {
    let dir = TempDir::new("basic");
    let path = dir.write("enc.yaml", &config(&[("key1", key(1))]));
    let c = cluster_with(Etcd::start().expect("etcd starts"), &path);

    // A watch opened before the write must deliver the decrypted object.
    let list = c.get(SECRETS).await;
    assert_eq!(list.code, 200, "{}", list.body);
    let rv = list.body["metadata"]["resourceVersion"].as_str().unwrap().to_string();
    let mut watch: WatchReader = c.watch(&format!("{SECRETS}?watch=1&resourceVersion={rv}")).await;

    let value = "hunter2-at-rest";
    let created = c.post(SECRETS, &secret("db", value)).await;
    assert_eq!(created.code, 201, "{}", created.body);

    let stored = raw(&c.etcd, &format!("{KEY_PREFIX}db")).await;
    assert!(stored.starts_with(b"k8s:enc:aesgcm:v1:key1:"), "{:?}", String::from_utf8_lossy(&stored));
    assert!(!contains(&stored, &b64(value.as_bytes())) && !contains(&stored, value), "secret value leaked into etcd");
    assert!(!contains(&stored, "\"db\""), "object metadata is encrypted too");

    let got = c.get(&format!("{SECRETS}/db")).await;
    assert_eq!(got.code, 200, "{}", got.body);
    assert_eq!(got.body["data"]["password"], b64(value.as_bytes()));
    assert_eq!(got.body, created.body);

    let event = watch.next(10).await.expect("watch event");
    assert_eq!(event["type"], "ADDED");
    assert_eq!(event["object"]["data"]["password"], b64(value.as_bytes()));

    // The list from the watch cache and a continued list read from etcd both decrypt.
    let second = c.post(SECRETS, &secret("db2", "other")).await;
    assert_eq!(second.code, 201, "{}", second.body);
    let page1 = c.get(&format!("{SECRETS}?limit=1")).await;
    assert_eq!(page1.body["items"][0]["data"]["password"], b64(value.as_bytes()), "{}", page1.body);
    let token = page1.body["metadata"]["continue"].as_str().expect("continue token").to_string();
    let page2 = c.get(&format!("{SECRETS}?limit=1&continue={token}")).await;
    assert_eq!(page2.code, 200, "{}", page2.body);
    assert_eq!(page2.body["items"][0]["metadata"]["name"], "db2");
    assert_eq!(page2.body["items"][0]["data"]["password"], b64(b"other"));

    // An update is encrypted again (with a fresh nonce), and a stale one still conflicts.
    let mut changed = got.body.clone();
    changed["data"]["password"] = json!(b64(b"rotated-password"));
    let updated = c.put(&format!("{SECRETS}/db"), &changed).await;
    assert_eq!(updated.code, 200, "{}", updated.body);
    let restored = raw(&c.etcd, &format!("{KEY_PREFIX}db")).await;
    assert!(restored.starts_with(b"k8s:enc:aesgcm:v1:key1:") && restored != stored);
    assert!(!contains(&restored, "cm90YXRlZC1wYXNzd29yZA"), "updated value leaked");
    let stale = c.put(&format!("{SECRETS}/db"), &got.body).await;
    assert_eq!(stale.code, 409, "{}", stale.body);
    let event = watch.next(10).await.expect("watch event");
    assert_eq!(event["type"], "ADDED", "db2");
    let event = watch.next(10).await.expect("watch event");
    assert_eq!(event["type"], "MODIFIED");
    assert_eq!(event["object"]["data"]["password"], b64(b"rotated-password"));

    // Resources the config does not name stay plaintext.
    let cm = c.post(CM, &configmap("plain", &[("k", "visible-value")])).await;
    assert_eq!(cm.code, 201, "{}", cm.body);
    let cm_stored = raw(&c.etcd, "/registry/core/configmaps/default/plain").await;
    assert!(cm_stored.starts_with(b"{") && contains(&cm_stored, "visible-value"));
}

#[tokio::test]
async fn rotation_keeps_old_secrets_readable_and_a_missing_key_is_an_error_not_garbage() {
    let dir = TempDir::new("rotation");
    let etcd = Etcd::start().expect("etcd starts");

    // Written before encryption was turned on: identity still reads it.
    let plain = {
        let api = ApiServer::start(&etcd).expect("apiserver starts");
        let c = Cluster { api, etcd, http: reqwest::Client::new() };
        let r = c.post(SECRETS, &secret("legacy", "from-before")).await;
        assert_eq!(r.code, 201, "{}", r.body);
        assert!(raw(&c.etcd, &format!("{KEY_PREFIX}legacy")).await.starts_with(b"{"));
        let Cluster { api, etcd, .. } = c;
        drop(api);
        etcd
    };

    let path = dir.write("enc.yaml", &config(&[("key1", key(1))]));
    let mut c = cluster_with(plain, &path);
    let legacy = c.get(&format!("{SECRETS}/legacy")).await;
    assert_eq!(legacy.code, 200, "{}", legacy.body);
    assert_eq!(legacy.body["data"]["password"], b64(b"from-before"));
    for name in ["a", "b"] {
        let r = c.post(SECRETS, &secret(name, &format!("value-{name}"))).await;
        assert_eq!(r.code, 201, "{}", r.body);
        assert!(raw(&c.etcd, &format!("{KEY_PREFIX}{name}")).await.starts_with(b"k8s:enc:aesgcm:v1:key1:"));
    }

    // Step 1 of a rotation: the new key first, the old one still listed.
    std::fs::write(&path, config(&[("key2", key(2)), ("key1", key(1))])).unwrap();
    c.restart_api();
    let a = c.get(&format!("{SECRETS}/a")).await;
    assert_eq!(a.code, 200, "{}", a.body);
    assert_eq!(a.body["data"]["password"], b64(b"value-a"));
    assert!(
        raw(&c.etcd, &format!("{KEY_PREFIX}a")).await.starts_with(b"k8s:enc:aesgcm:v1:key1:"),
        "reads do not rewrite"
    );
    // Step 2: re-write the Secret; it is stored with the new key.
    let mut touched = a.body.clone();
    touched["metadata"]["annotations"] = json!({"rotated": "yes"});
    let r = c.put(&format!("{SECRETS}/a"), &touched).await;
    assert_eq!(r.code, 200, "{}", r.body);
    assert!(raw(&c.etcd, &format!("{KEY_PREFIX}a")).await.starts_with(b"k8s:enc:aesgcm:v1:key2:"));
    let created = c.post(SECRETS, &secret("c", "value-c")).await;
    assert_eq!(created.code, 201, "{}", created.body);
    assert!(raw(&c.etcd, &format!("{KEY_PREFIX}c")).await.starts_with(b"k8s:enc:aesgcm:v1:key2:"));

    // Dropping key1 too early: "b" was never re-written. Reading it is a clear server error
    // naming the key, the server keeps running, and nothing garbled is ever served.
    std::fs::write(&path, config(&[("key2", key(2))])).unwrap();
    c.restart_api();
    let b = c.get(&format!("{SECRETS}/b")).await;
    assert_eq!(b.code, 500, "{}", b.body);
    assert_eq!(b.body["kind"], "Status");
    assert_eq!(b.body["reason"], "InternalError");
    let message = b.body["message"].as_str().unwrap_or_default();
    assert!(message.contains(&format!("{KEY_PREFIX}b")) && message.contains("k8s:enc:aesgcm:v1:key1:"), "{message}");
    assert_eq!(c.api.get("/readyz").expect("readyz").0, 200, "still serving: {}", c.api.log_tail());
    let a = c.get(&format!("{SECRETS}/a")).await;
    assert_eq!(a.body["data"]["password"], b64(b"value-a"), "key2 secrets still read");
    // A list fails on the unreadable value, from the watch cache and from etcd alike,
    // naming the key, rather than leaving the Secret out or serving it garbled.
    let list = c.get(SECRETS).await;
    assert_eq!(list.code, 500, "{}", list.body);
    let message = list.body["message"].as_str().unwrap_or_default();
    assert!(message.contains(&format!("{KEY_PREFIX}b")), "{message}");
    // ConfigMaps are not encrypted and list as before.
    let configmaps = c.get(CM).await;
    assert_eq!(configmaps.code, 200);
    let revision = configmaps.body["metadata"]["resourceVersion"].as_str().unwrap_or_default().to_string();
    let from_etcd = c.get(&format!("{SECRETS}?resourceVersionMatch=Exact&resourceVersion={revision}")).await;
    assert_eq!(from_etcd.code, 500, "a list read from etcd fails on the unreadable value: {}", from_etcd.body);
}

/// Runs the server binary with `--encryption-provider-config path` and returns its exit
/// status and stderr; it must exit on its own, before touching etcd.
fn start_failure(etcd: &Etcd, path: &str) -> (std::process::ExitStatus, String) {
    let out = std::process::Command::new(rkube_testkit::apiserver::bin_dir().join("rkube-apiserver"))
        .args(["--etcd-servers", &etcd.endpoint(), "--bind-address", "127.0.0.1", "--secure-port", "0"])
        .args(["--encryption-provider-config", path])
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("apiserver runs");
    (out.status, String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn a_bad_encryption_config_stops_the_server_at_start() {
    let dir = TempDir::new("bad");
    let etcd = Etcd::start().expect("etcd starts");
    let aescbc = format!("      - aescbc:\n          keys:\n            - name: k\n              secret: {}\n", key(1));
    let cases = [
        (
            "cbc.yaml",
            config(&[]).replace("      - identity: {}\n", &aescbc),
            "the aescbc provider is not supported by rkube",
        ),
        ("short.yaml", config(&[("k", b64(b"too-short"))]), "is 9 bytes; it must be 16, 24 or 32"),
        ("kind.yaml", config(&[]).replace("EncryptionConfiguration", "EncryptionConfig"), "apiVersion/kind must be"),
    ];
    for (name, text, expected) in cases {
        let path = dir.write(name, &text);
        let (status, stderr) = start_failure(&etcd, &path);
        assert!(!status.success(), "{name}: {stderr}");
        assert!(stderr.contains(expected) && stderr.contains(&path), "{name}: {stderr}");
    }
    let missing = dir.0.join("missing.yaml").to_string_lossy().into_owned();
    let (status, stderr) = start_failure(&etcd, &missing);
    assert!(!status.success() && stderr.contains("reading encryption provider config"), "{stderr}");
}
