//! Value transformers: what turns an object's bytes into the bytes etcd holds and back,
//! chosen per key prefix. This is where encryption at rest lives (Kubernetes'
//! `EncryptionConfiguration`): above the store every value is plaintext, in etcd a value
//! under an encrypted prefix is `k8s:enc:aesgcm:v1:<key name>:` + nonce + ciphertext + tag.

use aes_gcm::aead::consts::U12;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::aes::Aes192;
use aes_gcm::{Aes128Gcm, Aes256Gcm, AesGcm, Nonce};
use rand::RngCore;

/// Every encrypting provider's prefix starts with this; plaintext JSON never does, which is
/// how the identity provider tells it is looking at a value it cannot read.
pub const ENCRYPTED_PREFIX: &[u8] = b"k8s:enc:";
/// GCM's standard nonce size; random per write.
const NONCE_LEN: usize = 12;
/// GCM's authentication tag size.
const TAG_LEN: usize = 16;

/// Why a value could not be transformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransformError {
    /// The value was written by a provider or key that is not configured (any more).
    #[error("no configured encryption provider can read a value stored as {stored_as:?}")]
    NoProvider {
        /// The value's leading bytes up to and including the key name, e.g. `k8s:enc:aesgcm:v1:key1:`.
        stored_as: String,
    },
    /// The value is plaintext but the identity provider is not configured to read it.
    #[error("value is not encrypted and the identity provider is not configured")]
    Unencrypted,
    /// Authentication failed: wrong key material, tampered bytes, or a value copied from
    /// another etcd key.
    #[error(
        "{provider} key {key_name:?} failed to decrypt the value (wrong key, tampered data or copied from another key)"
    )]
    Decrypt {
        /// Provider kind, e.g. `aesgcm`.
        provider: &'static str,
        /// The configured key name.
        key_name: String,
    },
    /// The value is shorter than a nonce plus a tag.
    #[error("{provider} value for key {key_name:?} is truncated ({len} bytes)")]
    Truncated {
        /// Provider kind, e.g. `aesgcm`.
        provider: &'static str,
        /// The configured key name.
        key_name: String,
        /// Bytes after the prefix.
        len: usize,
    },
    /// A key has a size the cipher does not accept.
    #[error("{provider} key {key_name:?} is {len} bytes; it must be 16, 24 or 32")]
    KeySize {
        /// Provider kind, e.g. `aesgcm`.
        provider: &'static str,
        /// The configured key name.
        key_name: String,
        /// The decoded key length.
        len: usize,
    },
    /// A key name that cannot be part of the stored prefix.
    #[error("key name {0:?} must be non-empty and must not contain ':'")]
    KeyName(String),
    /// Encryption itself failed (the plaintext exceeds what GCM can encrypt in one go).
    #[error("{provider} key {key_name:?} failed to encrypt the value")]
    Encrypt {
        /// Provider kind, e.g. `aesgcm`.
        provider: &'static str,
        /// The configured key name.
        key_name: String,
    },
    /// A provider chain without any provider.
    #[error("a provider list needs at least one provider")]
    Empty,
}

/// Turns values into their stored form and back. `key` is the full etcd key, so a
/// transformer can bind the ciphertext to it.
pub trait Transformer: Send + Sync + 'static {
    /// The bytes to store in etcd for `plain` at `key`.
    fn transform_to_storage(&self, key: &str, plain: &[u8]) -> Result<Vec<u8>, TransformError>;
    /// The plaintext of `stored` read from `key`.
    fn transform_from_storage(&self, key: &str, stored: &[u8]) -> Result<Vec<u8>, TransformError>;
}

/// AES-GCM with one of the three AES key sizes.
#[derive(Clone)]
enum Gcm {
    A128(Box<Aes128Gcm>),
    A192(Box<AesGcm<Aes192, U12>>),
    A256(Box<Aes256Gcm>),
}

impl Gcm {
    fn encrypt(&self, nonce: &[u8], payload: Payload<'_, '_>) -> Result<Vec<u8>, aes_gcm::Error> {
        let nonce = Nonce::from_slice(nonce);
        match self {
            Gcm::A128(c) => c.encrypt(nonce, payload),
            Gcm::A192(c) => c.encrypt(nonce, payload),
            Gcm::A256(c) => c.encrypt(nonce, payload),
        }
    }

    fn decrypt(&self, nonce: &[u8], payload: Payload<'_, '_>) -> Result<Vec<u8>, aes_gcm::Error> {
        let nonce = Nonce::from_slice(nonce);
        match self {
            Gcm::A128(c) => c.decrypt(nonce, payload),
            Gcm::A192(c) => c.decrypt(nonce, payload),
            Gcm::A256(c) => c.decrypt(nonce, payload),
        }
    }
}

/// One named `aesgcm` key. Stored values are `k8s:enc:aesgcm:v1:<name>:` + a random 12-byte
/// nonce + ciphertext + 16-byte tag, with the etcd key as additional authenticated data (as
/// Kubernetes does), so a value copied under another key fails to decrypt.
#[derive(Clone)]
pub struct AesGcmKey {
    name: String,
    prefix: Vec<u8>,
    cipher: Gcm,
}

impl std::fmt::Debug for AesGcmKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key material.
        f.debug_struct("AesGcmKey").field("name", &self.name).finish_non_exhaustive()
    }
}

impl AesGcmKey {
    /// A key named `name` with 16, 24 or 32 bytes of `secret` (AES-128/192/256).
    pub fn new(name: &str, secret: &[u8]) -> Result<AesGcmKey, TransformError> {
        if name.is_empty() || name.contains(':') {
            return Err(TransformError::KeyName(name.to_string()));
        }
        let size_err = || TransformError::KeySize { provider: "aesgcm", key_name: name.to_string(), len: secret.len() };
        let cipher = match secret.len() {
            16 => Gcm::A128(Box::new(Aes128Gcm::new_from_slice(secret).map_err(|_| size_err())?)),
            24 => Gcm::A192(Box::new(AesGcm::<Aes192, U12>::new_from_slice(secret).map_err(|_| size_err())?)),
            32 => Gcm::A256(Box::new(Aes256Gcm::new_from_slice(secret).map_err(|_| size_err())?)),
            _ => return Err(size_err()),
        };
        Ok(AesGcmKey { name: name.to_string(), prefix: format!("k8s:enc:aesgcm:v1:{name}:").into_bytes(), cipher })
    }

    /// The key's name as configured.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The prefix of every value this key writes.
    pub fn prefix(&self) -> &[u8] {
        &self.prefix
    }

    fn encrypt(&self, key: &str, plain: &[u8]) -> Result<Vec<u8>, TransformError> {
        let mut nonce = [0u8; NONCE_LEN];
        // ThreadRng is a CSPRNG seeded from the OS; a repeated nonce under one key would
        // break GCM, which is why Kubernetes asks for rotation every 200k writes.
        rand::rng().fill_bytes(&mut nonce);
        let sealed = self
            .cipher
            .encrypt(&nonce, Payload { msg: plain, aad: key.as_bytes() })
            .map_err(|_| TransformError::Encrypt { provider: "aesgcm", key_name: self.name.clone() })?;
        let mut out = Vec::with_capacity(self.prefix.len() + NONCE_LEN + sealed.len());
        out.extend_from_slice(&self.prefix);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// Decrypts `data`, the bytes after this key's prefix.
    fn decrypt(&self, key: &str, data: &[u8]) -> Result<Vec<u8>, TransformError> {
        if data.len() < NONCE_LEN + TAG_LEN {
            return Err(TransformError::Truncated { provider: "aesgcm", key_name: self.name.clone(), len: data.len() });
        }
        let (nonce, sealed) = data.split_at(NONCE_LEN);
        self.cipher
            .decrypt(nonce, Payload { msg: sealed, aad: key.as_bytes() })
            .map_err(|_| TransformError::Decrypt { provider: "aesgcm", key_name: self.name.clone() })
    }
}

/// One entry of a provider list.
#[derive(Debug, Clone)]
pub enum Provider {
    /// Stores plaintext; reads anything that is not marked as encrypted.
    Identity,
    /// Encrypts with one named AES-GCM key.
    AesGcm(AesGcmKey),
}

/// An ordered provider list, Kubernetes-style: the first provider writes, every provider may
/// read the values it recognises by their prefix. Putting a new key first and keeping the old
/// one listed is what makes rotation possible without downtime.
#[derive(Debug, Clone)]
pub struct Providers {
    list: Vec<Provider>,
}

impl Providers {
    /// A provider list; the first one writes.
    pub fn new(list: Vec<Provider>) -> Result<Providers, TransformError> {
        if list.is_empty() {
            return Err(TransformError::Empty);
        }
        Ok(Providers { list })
    }

    /// The providers in order.
    pub fn providers(&self) -> &[Provider] {
        &self.list
    }
}

impl Transformer for Providers {
    fn transform_to_storage(&self, key: &str, plain: &[u8]) -> Result<Vec<u8>, TransformError> {
        match self.list.first() {
            Some(Provider::AesGcm(k)) => k.encrypt(key, plain),
            Some(Provider::Identity) => Ok(plain.to_vec()),
            None => Err(TransformError::Empty),
        }
    }

    fn transform_from_storage(&self, key: &str, stored: &[u8]) -> Result<Vec<u8>, TransformError> {
        let encrypted = stored.starts_with(ENCRYPTED_PREFIX);
        let mut first_err = None;
        for p in &self.list {
            match p {
                Provider::Identity if !encrypted => return Ok(stored.to_vec()),
                Provider::Identity => {}
                Provider::AesGcm(k) => {
                    let Some(data) = stored.strip_prefix(k.prefix.as_slice()) else { continue };
                    // Two providers may carry keys of one name; the later one may be the
                    // right one, so only give up once every candidate has failed.
                    match k.decrypt(key, data) {
                        Ok(plain) => return Ok(plain),
                        Err(e) => {
                            first_err.get_or_insert(e);
                        }
                    }
                }
            }
        }
        if let Some(e) = first_err {
            return Err(e);
        }
        if encrypted {
            return Err(TransformError::NoProvider { stored_as: stored_as(stored) });
        }
        Err(TransformError::Unencrypted)
    }
}

/// The readable head of an encrypted value: `k8s:enc:<provider>:<version>:<key name>:`.
fn stored_as(stored: &[u8]) -> String {
    let mut colons = 0;
    let mut end = 0;
    for (i, b) in stored.iter().enumerate().take(64) {
        if !b.is_ascii_graphic() {
            break;
        }
        end = i + 1;
        if *b == b':' {
            colons += 1;
            if colons == 5 {
                break;
            }
        }
    }
    String::from_utf8_lossy(&stored[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str, byte: u8, len: usize) -> AesGcmKey {
        AesGcmKey::new(name, &vec![byte; len]).expect("valid key")
    }

    fn chain(list: Vec<Provider>) -> Providers {
        Providers::new(list).expect("non-empty")
    }

    const KEY: &str = "/registry/core/secrets/default/s";
    const PLAIN: &[u8] = br#"{"data":{"password":"aHVudGVyMg=="}}"#;

    #[test]
    fn round_trip_with_every_key_size() {
        for len in [16, 24, 32] {
            let t = chain(vec![Provider::AesGcm(key("key1", 7, len))]);
            let stored = t.transform_to_storage(KEY, PLAIN).expect("encrypts");
            assert!(stored.starts_with(b"k8s:enc:aesgcm:v1:key1:"), "{len}-byte key");
            assert_eq!(stored.len(), b"k8s:enc:aesgcm:v1:key1:".len() + NONCE_LEN + PLAIN.len() + TAG_LEN);
            assert!(!stored.windows(8).any(|w| w == b"aHVudGVy"), "plaintext leaked");
            assert_eq!(t.transform_from_storage(KEY, &stored).expect("decrypts"), PLAIN);
        }
    }

    #[test]
    fn every_write_gets_a_fresh_nonce() {
        let t = chain(vec![Provider::AesGcm(key("key1", 7, 32))]);
        let a = t.transform_to_storage(KEY, PLAIN).expect("encrypts");
        let b = t.transform_to_storage(KEY, PLAIN).expect("encrypts");
        assert_ne!(a, b);
    }

    #[test]
    fn wrong_key_material_fails_authentication() {
        let writer = chain(vec![Provider::AesGcm(key("key1", 7, 32))]);
        let reader = chain(vec![Provider::AesGcm(key("key1", 8, 32))]);
        let stored = writer.transform_to_storage(KEY, PLAIN).expect("encrypts");
        let err = reader.transform_from_storage(KEY, &stored).expect_err("wrong key");
        assert_eq!(err, TransformError::Decrypt { provider: "aesgcm", key_name: "key1".into() });
    }

    #[test]
    fn missing_key_name_is_reported_with_the_stored_prefix() {
        let writer = chain(vec![Provider::AesGcm(key("key1", 7, 32))]);
        let reader = chain(vec![Provider::AesGcm(key("key2", 7, 32)), Provider::Identity]);
        let stored = writer.transform_to_storage(KEY, PLAIN).expect("encrypts");
        let err = reader.transform_from_storage(KEY, &stored).expect_err("no key1");
        assert_eq!(err, TransformError::NoProvider { stored_as: "k8s:enc:aesgcm:v1:key1:".into() });
    }

    #[test]
    fn tampering_anywhere_is_detected() {
        let t = chain(vec![Provider::AesGcm(key("key1", 7, 32))]);
        let stored = t.transform_to_storage(KEY, PLAIN).expect("encrypts");
        let start = b"k8s:enc:aesgcm:v1:key1:".len();
        // Nonce, ciphertext and tag positions.
        for i in [start, start + NONCE_LEN, stored.len() - 1] {
            let mut bad = stored.clone();
            bad[i] ^= 1;
            assert!(matches!(t.transform_from_storage(KEY, &bad), Err(TransformError::Decrypt { .. })), "flip at {i}");
        }
        let truncated = &stored[..start + NONCE_LEN + 3];
        assert!(matches!(t.transform_from_storage(KEY, truncated), Err(TransformError::Truncated { len: 15, .. })));
    }

    #[test]
    fn value_copied_to_another_key_does_not_decrypt() {
        let t = chain(vec![Provider::AesGcm(key("key1", 7, 32))]);
        let stored = t.transform_to_storage(KEY, PLAIN).expect("encrypts");
        let err = t.transform_from_storage("/registry/core/secrets/default/other", &stored).expect_err("AAD mismatch");
        assert!(matches!(err, TransformError::Decrypt { .. }));
    }

    #[test]
    fn rotation_reads_old_and_new_keys_and_writes_the_first() {
        let old = chain(vec![Provider::AesGcm(key("key1", 1, 32)), Provider::Identity]);
        let rotated =
            chain(vec![Provider::AesGcm(key("key2", 2, 32)), Provider::AesGcm(key("key1", 1, 32)), Provider::Identity]);
        let by_old = old.transform_to_storage(KEY, PLAIN).expect("encrypts");
        assert_eq!(rotated.transform_from_storage(KEY, &by_old).expect("old key still reads"), PLAIN);
        assert_eq!(rotated.transform_from_storage(KEY, PLAIN).expect("identity reads plaintext"), PLAIN);
        let by_new = rotated.transform_to_storage(KEY, PLAIN).expect("encrypts");
        assert!(by_new.starts_with(b"k8s:enc:aesgcm:v1:key2:"));
    }

    #[test]
    fn identity_first_writes_plaintext_but_still_decrypts() {
        let t = chain(vec![Provider::Identity, Provider::AesGcm(key("key1", 1, 16))]);
        assert_eq!(t.transform_to_storage(KEY, PLAIN).expect("identity"), PLAIN);
        let enc = chain(vec![Provider::AesGcm(key("key1", 1, 16))]).transform_to_storage(KEY, PLAIN).expect("encrypts");
        assert_eq!(t.transform_from_storage(KEY, &enc).expect("decrypts"), PLAIN);
    }

    #[test]
    fn plaintext_without_identity_is_refused() {
        let t = chain(vec![Provider::AesGcm(key("key1", 1, 32))]);
        assert_eq!(t.transform_from_storage(KEY, PLAIN), Err(TransformError::Unencrypted));
    }

    #[test]
    fn bad_keys_are_rejected() {
        assert!(matches!(AesGcmKey::new("k", &[0; 20]), Err(TransformError::KeySize { len: 20, .. })));
        assert!(matches!(AesGcmKey::new("", &[0; 32]), Err(TransformError::KeyName(_))));
        assert!(matches!(AesGcmKey::new("a:b", &[0; 32]), Err(TransformError::KeyName(_))));
        assert!(matches!(Providers::new(vec![]), Err(TransformError::Empty)));
    }

    #[test]
    fn debug_does_not_print_key_material() {
        let k = AesGcmKey::new("key1", &[0xAB; 32]).expect("valid");
        let shown = format!("{k:?}");
        assert!(shown.contains("key1") && !shown.contains("171") && !shown.to_lowercase().contains("ab, "), "{shown}");
    }
}
