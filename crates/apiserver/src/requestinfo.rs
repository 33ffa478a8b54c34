//! What a request asks to do, in the terms authorization decides on: a verb on a resource
//! (group, resource, subresource, namespace, name) or on a non-resource path. Derived from the
//! REST method and path the way Kubernetes does, and from the gRPC method and resource ref.

use http::Method;

/// The authorization attributes of one request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestInfo {
    /// True for `/api/...` and `/apis/...` paths that name a resource.
    pub resource_request: bool,
    /// get, list, watch, create, update, patch, delete, deletecollection (resources) or the
    /// lower-case HTTP method (non-resource paths).
    pub verb: String,
    /// API group ("" for core).
    pub api_group: String,
    /// API version.
    pub api_version: String,
    /// Namespace, empty for cluster-scoped requests.
    pub namespace: String,
    /// Plural resource name.
    pub resource: String,
    /// Subresource, e.g. "status", "log", "exec".
    pub subresource: String,
    /// Object name, empty for collections.
    pub name: String,
    /// The request path.
    pub path: String,
}

/// Subresources under `/namespaces/{name}/` that belong to the Namespace itself.
const NAMESPACE_SUBRESOURCES: &[&str] = &["status", "finalize"];

/// Kubernetes' streaming connect subresources, authorized as `create` whatever the HTTP method
/// (a WebSocket exec is a GET, and must not pass with only `get` rights). `proxy` is not one:
/// like Kubernetes, its verb follows the method (`get nodes/proxy` reads through the proxy,
/// `create nodes/proxy` posts through it).
const CONNECT_SUBRESOURCES: &[&str] = &["exec", "attach", "portforward"];

impl RequestInfo {
    /// The attributes of a REST request. `query` is the raw query string.
    pub fn from_rest(method: &Method, path: &str, query: &str) -> RequestInfo {
        let non_resource = || RequestInfo {
            verb: method.as_str().to_ascii_lowercase(),
            path: path.to_string(),
            ..RequestInfo::default()
        };
        let segments: Vec<&str> = path.trim_matches('/').split('/').filter(|s| !s.is_empty()).collect();
        let (api_group, api_version, mut rest) = match segments.as_slice() {
            ["api", version, rest @ ..] => ("", *version, rest),
            ["apis", group, version, rest @ ..] => (*group, *version, rest),
            _ => return non_resource(),
        };
        if rest.is_empty() {
            // Discovery of a group version.
            return non_resource();
        }
        let mut verb = match *method {
            Method::GET | Method::HEAD => "get",
            Method::POST => "create",
            Method::PUT => "update",
            Method::PATCH => "patch",
            Method::DELETE => "delete",
            _ => "",
        }
        .to_string();
        if let ["watch", tail @ ..] = rest {
            verb = "watch".to_string();
            rest = tail;
        }
        let mut info = RequestInfo {
            resource_request: true,
            api_group: api_group.to_string(),
            api_version: api_version.to_string(),
            path: path.to_string(),
            ..RequestInfo::default()
        };
        if let ["namespaces", namespace, tail @ ..] = rest {
            info.namespace = namespace.to_string();
            if let [next, ..] = tail
                && !NAMESPACE_SUBRESOURCES.contains(next)
            {
                rest = tail;
            }
        }
        match rest {
            [resource] => info.resource = resource.to_string(),
            [resource, name] => (info.resource, info.name) = (resource.to_string(), name.to_string()),
            [resource, name, subresource, ..] => {
                (info.resource, info.name, info.subresource) =
                    (resource.to_string(), name.to_string(), subresource.to_string());
            }
            [] => {}
        }
        let params = || url_params(query);
        if info.name.is_empty() {
            match verb.as_str() {
                "get" if params().any(|(k, v)| k == "watch" && (v == "true" || v == "1")) => verb = "watch".into(),
                "get" => verb = "list".into(),
                "delete" => verb = "deletecollection".into(),
                _ => {}
            }
            // A list or watch narrowed to one name is authorized as that name (Kubernetes does too).
            if verb == "list" || verb == "watch" {
                info.name = params()
                    .find(|(k, _)| k == "fieldSelector")
                    .and_then(|(_, v)| v.strip_prefix("metadata.name=").map(str::to_string))
                    .filter(|n| !n.contains(','))
                    .unwrap_or_default();
            }
        } else if verb == "get" && info.subresource.is_empty() && params().any(|(k, v)| k == "watch" && v == "true") {
            verb = "watch".into();
        }
        if CONNECT_SUBRESOURCES.contains(&info.subresource.as_str()) {
            verb = "create".into();
        }
        info.verb = verb;
        info
    }

    /// The attributes of a gRPC resource call (`verb` from the method name).
    pub fn from_grpc(
        verb: &str,
        res: &rkube_api::registry::ResourceInfo,
        namespace: &str,
        name: &str,
        sub: &str,
    ) -> RequestInfo {
        RequestInfo {
            resource_request: true,
            verb: verb.to_string(),
            api_group: res.group.to_string(),
            api_version: res.version.to_string(),
            namespace: namespace.to_string(),
            resource: res.plural.to_string(),
            subresource: sub.to_string(),
            name: name.to_string(),
            path: String::new(),
        }
    }
}

/// Decoded `key=value` pairs of a query string.
fn url_params(query: &str) -> impl Iterator<Item = (String, String)> + '_ {
    form_urlencoded::parse(query.as_bytes()).map(|(k, v)| (k.into_owned(), v.into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(method: Method, path: &str, query: &str) -> (String, String, String, String, String, String) {
        let i = RequestInfo::from_rest(&method, path, query);
        (i.verb, i.api_group, i.namespace, i.resource, i.subresource, i.name)
    }

    fn t(v: [&str; 6]) -> (String, String, String, String, String, String) {
        (v[0].into(), v[1].into(), v[2].into(), v[3].into(), v[4].into(), v[5].into())
    }

    #[test]
    fn rest_paths_map_to_kubernetes_verbs_and_resources() {
        assert_eq!(info(Method::GET, "/api/v1/namespaces/d/pods", ""), t(["list", "", "d", "pods", "", ""]));
        assert_eq!(info(Method::GET, "/api/v1/namespaces/d/pods", "watch=true"), t(["watch", "", "d", "pods", "", ""]));
        assert_eq!(info(Method::GET, "/api/v1/watch/namespaces/d/pods", ""), t(["watch", "", "d", "pods", "", ""]));
        assert_eq!(info(Method::GET, "/api/v1/namespaces/d/pods/p", ""), t(["get", "", "d", "pods", "", "p"]));
        assert_eq!(
            info(Method::PUT, "/api/v1/namespaces/d/pods/p/status", ""),
            t(["update", "", "d", "pods", "status", "p"])
        );
        assert_eq!(
            info(Method::GET, "/api/v1/namespaces/d/pods/p/exec", ""),
            t(["create", "", "d", "pods", "exec", "p"])
        );
        assert_eq!(info(Method::GET, "/api/v1/namespaces/d/pods/p/log", ""), t(["get", "", "d", "pods", "log", "p"]));
        assert_eq!(info(Method::GET, "/api/v1/nodes/n/proxy/healthz", ""), t(["get", "", "", "nodes", "proxy", "n"]));
        assert_eq!(
            info(Method::POST, "/api/v1/nodes/n/proxy/images/load", ""),
            t(["create", "", "", "nodes", "proxy", "n"])
        );
        assert_eq!(info(Method::PUT, "/api/v1/nodes/n/proxy", ""), t(["update", "", "", "nodes", "proxy", "n"]));
        assert_eq!(info(Method::DELETE, "/api/v1/nodes/n/proxy/x", ""), t(["delete", "", "", "nodes", "proxy", "n"]));
        assert_eq!(
            info(Method::DELETE, "/apis/apps/v1/namespaces/d/deployments", ""),
            t(["deletecollection", "apps", "d", "deployments", "", ""])
        );
        assert_eq!(info(Method::GET, "/api/v1/nodes", ""), t(["list", "", "", "nodes", "", ""]));
        assert_eq!(info(Method::PATCH, "/api/v1/nodes/n/status", ""), t(["patch", "", "", "nodes", "status", "n"]));
        assert_eq!(info(Method::GET, "/api/v1/namespaces/d", ""), t(["get", "", "d", "namespaces", "", "d"]));
        assert_eq!(
            info(Method::PUT, "/api/v1/namespaces/d/finalize", ""),
            t(["update", "", "d", "namespaces", "finalize", "d"])
        );
        assert_eq!(info(Method::GET, "/api/v1/namespaces", ""), t(["list", "", "", "namespaces", "", ""]));
        assert_eq!(
            info(Method::GET, "/api/v1/namespaces/d/secrets", "fieldSelector=metadata.name%3Ds1&watch=1"),
            t(["watch", "", "d", "secrets", "", "s1"])
        );
    }

    #[test]
    fn discovery_and_other_paths_are_non_resource() {
        for path in ["/api", "/apis", "/apis/apps/v1", "/api/v1", "/healthz", "/version", "/openapi/v2"] {
            let i = RequestInfo::from_rest(&Method::GET, path, "");
            assert!(!i.resource_request, "{path}");
            assert_eq!((i.verb.as_str(), i.path.as_str()), ("get", path));
        }
    }
}
