//! Object metadata the server owns: uid, timestamps, generated names, resourceVersion, and the
//! encoding of objects for etcd (stored without resourceVersion, which is the etcd revision).

use rand::Rng;
use serde_json::{Value, json};

/// Current time as Kubernetes writes metav1.Time: RFC 3339, seconds, UTC.
pub fn now() -> String {
    jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Time `secs` seconds from now, as metav1.Time.
pub fn now_plus(secs: i64) -> String {
    let t = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(secs);
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// A fresh object UID.
pub fn new_uid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// `generateName` plus five random characters from Kubernetes' alphabet (no vowels, no
/// look-alike digits, so generated names never spell words).
pub fn generate_name(prefix: &str) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    let suffix: String = (0..5).map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char).collect();
    // Kubernetes trims the prefix so the result stays within 63 characters.
    let keep = prefix.len().min(58);
    format!("{}{suffix}", &prefix[..keep])
}

/// `metadata` of an object, created if missing.
pub fn meta_mut(obj: &mut Value) -> &mut serde_json::Map<String, Value> {
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = json!({});
    }
    obj["metadata"].as_object_mut().expect("metadata is an object")
}

/// A string field of `metadata`.
pub fn meta_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    obj.get("metadata")?.get(field)?.as_str().filter(|s| !s.is_empty())
}

/// metadata.name.
pub fn name_of(obj: &Value) -> &str {
    meta_str(obj, "name").unwrap_or("")
}

/// metadata.finalizers.
pub fn finalizers(obj: &Value) -> Vec<String> {
    obj.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|f| f.as_str().map(String::from)).collect())
        .unwrap_or_default()
}

/// Sets metadata.resourceVersion to an etcd revision.
pub fn set_resource_version(obj: &mut Value, revision: i64) {
    meta_mut(obj).insert("resourceVersion".into(), Value::String(revision.to_string()));
}

/// Parses a resourceVersion given by a client; "" is None.
pub fn parse_resource_version(rv: &str) -> Result<Option<i64>, rkube_api::ApiError> {
    if rv.is_empty() {
        return Ok(None);
    }
    rv.parse::<i64>()
        .ok()
        .filter(|v| *v >= 0)
        .map(Some)
        .ok_or_else(|| rkube_api::ApiError::BadRequest(format!("invalid resource version {rv:?}")))
}

/// Bytes stored in etcd: the object without resourceVersion (the key's revision is the truth).
pub fn encode_for_storage(obj: &Value) -> Vec<u8> {
    let mut copy = obj.clone();
    if let Some(m) = copy.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("resourceVersion");
    }
    serde_json::to_vec(&copy).expect("serializing a JSON value cannot fail")
}

/// Decodes bytes read from etcd and stamps the revision they were written at.
pub fn decode_stored(bytes: &[u8], mod_revision: i64) -> Result<Value, rkube_api::ApiError> {
    let mut obj: Value = serde_json::from_slice(bytes)
        .map_err(|e| rkube_api::ApiError::Internal(format!("stored object is not valid JSON: {e}")))?;
    set_resource_version(&mut obj, mod_revision);
    Ok(obj)
}

/// The object without fields that change on every write, to tell no-op updates apart.
pub fn without_volatile(obj: &Value) -> Value {
    let mut copy = obj.clone();
    if let Some(m) = copy.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("resourceVersion");
        m.remove("managedFields");
    }
    copy
}

/// The object minus metadata and status: what a generation bump tracks.
pub fn spec_part(obj: &Value) -> Value {
    let mut copy = obj.clone();
    if let Some(m) = copy.as_object_mut() {
        m.remove("metadata");
        m.remove("status");
    }
    copy
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_names_keep_prefix_and_length() {
        let n = generate_name("web-");
        assert!(n.starts_with("web-") && n.len() == 9, "{n}");
        assert!(generate_name(&"a".repeat(80)).len() <= 63);
    }

    #[test]
    fn storage_encoding_drops_resource_version() {
        let obj = json!({"metadata": {"name": "a", "resourceVersion": "5"}});
        let bytes = encode_for_storage(&obj);
        let back = decode_stored(&bytes, 9).unwrap();
        assert_eq!(back["metadata"]["resourceVersion"], "9");
        assert!(!String::from_utf8(bytes).unwrap().contains("resourceVersion"));
    }
}
