//! Serves the OpenAPI v2 and v3 documents of the served types (rendered by rkube-openapi once
//! per process, on a background thread at start-up so the first kubectl call does not wait).

use bytes::Bytes;
use rkube_api::ApiError;
use rkube_api::custom::CustomVersion;
use rkube_openapi::Documents;
use std::sync::{Arc, Mutex, OnceLock};

static DOCUMENTS: OnceLock<Documents> = OnceLock::new();

fn documents() -> &'static Documents {
    DOCUMENTS.get_or_init(Documents::build)
}

/// Starts rendering the documents in the background.
pub fn warm_up() {
    std::thread::spawn(|| {
        documents();
    });
}

/// An OpenAPI response: body and ETag (the content hash, when the document has one).
pub struct Document {
    /// JSON body.
    pub body: Bytes,
    /// Content hash for ETag and `Cache-Control: immutable` of hashed v3 URLs.
    pub hash: Option<String>,
}

/// The document for a path under `/openapi/`, or None if the path is not one.
pub async fn document(path: &str, accept: &str) -> Option<Result<Document, ApiError>> {
    let docs = match DOCUMENTS.get() {
        Some(docs) => docs,
        // Still rendering (the first request after start-up): wait off the async workers.
        None => tokio::task::spawn_blocking(documents).await.ok()?,
    };
    lookup(docs, path, accept)
}

/// The v3 documents of the served custom group versions: (key `apis/<group>/<version>`,
/// body, hash), with the root that lists them beside the built-in ones.
struct CustomDocuments {
    generation: u64,
    documents: Vec<(String, Bytes, String)>,
    root: Bytes,
}

/// Rendered once per set of served custom resources, not per request: kubectl reads the root
/// on every validated write, and the root needs every custom document's hash.
fn custom_documents(docs: &'static Documents) -> Arc<CustomDocuments> {
    static CACHE: Mutex<Option<Arc<CustomDocuments>>> = Mutex::new(None);
    let generation = rkube_api::custom::generation();
    if let Some(cached) = CACHE.lock().unwrap_or_else(|e| e.into_inner()).as_ref()
        && cached.generation == generation
    {
        return cached.clone();
    }
    let mut groups: Vec<(String, Vec<Arc<CustomVersion>>)> = Vec::new();
    for v in rkube_api::custom::versions() {
        let key = format!("apis/{}/{}", v.info.group, v.info.version);
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, list)) => list.push(v),
            None => groups.push((key, vec![v])),
        }
    }
    let documents: Vec<(String, Bytes, String)> = groups
        .into_iter()
        .map(|(key, versions)| {
            let resources: Vec<(&rkube_api::ResourceInfo, &serde_json::Value)> =
                versions.iter().map(|v| (v.info, &v.openapi_schema)).collect();
            let (body, hash) = docs.custom_group_version(&resources);
            (key, Bytes::from(body), hash)
        })
        .collect();
    let hashes: Vec<(String, String)> = documents.iter().map(|(key, _, hash)| (key.clone(), hash.clone())).collect();
    let root = if documents.is_empty() {
        Bytes::from_static(docs.v3_root_json())
    } else {
        Bytes::from(docs.v3_root_with(&hashes))
    };
    let rendered = Arc::new(CustomDocuments { generation, documents, root });
    // A set installed meanwhile is rendered by the next request instead.
    if rkube_api::custom::generation() == generation {
        *CACHE.lock().unwrap_or_else(|e| e.into_inner()) = Some(rendered.clone());
    }
    rendered
}

fn lookup(docs: &'static Documents, path: &str, accept: &str) -> Option<Result<Document, ApiError>> {
    // The documents live for the whole process, so responses share their bytes.
    let plain = |b: &'static [u8]| Some(Ok(Document { body: Bytes::from_static(b), hash: None }));
    match path.trim_end_matches('/') {
        "/openapi/v2" => {
            // kubectl's fallback asks for the protobuf form only; we render JSON.
            let json_ok = accept.is_empty()
                || accept.split(',').any(|r| {
                    matches!(r.split(';').next().unwrap_or("").trim(), "application/json" | "*/*" | "application/*")
                });
            if !json_ok {
                return Some(Err(ApiError::NotAcceptable(format!(
                    "/openapi/v2 is served as application/json only (asked for {accept})"
                ))));
            }
            plain(docs.v2_json())
        }
        "/openapi/v3" => Some(Ok(Document { body: custom_documents(docs).root.clone(), hash: None })),
        p => {
            let gv = p.strip_prefix("/openapi/v3/")?;
            if let Some((body, hash)) = docs.v3_group_version(gv) {
                return Some(Ok(Document { body: Bytes::from_static(body), hash: Some(hash.to_string()) }));
            }
            let gv = gv.trim_matches('/');
            match custom_documents(docs).documents.iter().find(|(key, _, _)| key == gv) {
                Some((_, body, hash)) => Some(Ok(Document { body: body.clone(), hash: Some(hash.clone()) })),
                None => Some(Err(ApiError::NotFound { resource: String::new(), name: p.to_string() })),
            }
        }
    }
}
