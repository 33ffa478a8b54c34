//! The REST operations of each served resource, as a format-neutral model that the v2 and v3
//! renderers turn into documents.
//!
//! Paths, operation ids and actions follow Kubernetes' own documents, because clients key on
//! them: kubectl looks for the `fieldValidation` parameter of the PATCH operation carrying an
//! object's group-version-kind to decide whether the server validates fields.

use rkube_api::registry::ResourceInfo;

/// Where a parameter goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum In {
    /// A `{name}` segment of the path.
    Path,
    /// A query parameter.
    Query,
}

/// One request parameter.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Param {
    pub name: &'static str,
    pub location: In,
    /// JSON type: "string", "boolean" or "integer".
    pub ty: &'static str,
    pub description: &'static str,
    pub required: bool,
}

const fn query(name: &'static str, ty: &'static str, description: &'static str) -> Param {
    Param { name, location: In::Query, ty, description, required: false }
}

const NAMESPACE: Param = Param {
    name: "namespace",
    location: In::Path,
    ty: "string",
    description: "object name and auth scope, such as for teams and projects",
    required: true,
};
const NAME: Param =
    Param { name: "name", location: In::Path, ty: "string", description: "name of the object", required: true };
const PRETTY: Param = query("pretty", "string", "If 'true', then the output is pretty printed.");
const DRY_RUN: Param = query(
    "dryRun",
    "string",
    "When present, indicates that modifications should not be persisted. Valid value: All (process the request fully without persisting it).",
);
const FIELD_MANAGER: Param = query(
    "fieldManager",
    "string",
    "Name of the actor making the change, recorded for field ownership tracking. Must be printable, at most 128 characters.",
);
const FIELD_VALIDATION: Param = query(
    "fieldValidation",
    "string",
    "How the server treats unknown or duplicate fields in the request body: Ignore (drop them silently), Warn (drop them and return a warning per field) or Strict (fail the request).",
);
const FORCE: Param = query(
    "force",
    "boolean",
    "Force an apply request through, taking ownership of fields other managers hold. Only valid for apply patches.",
);
const GRACE_PERIOD: Param = query(
    "gracePeriodSeconds",
    "integer",
    "Seconds the object gets before it is deleted; zero means immediately. Defaults to the kind's own default.",
);
const IGNORE_STORE_READ_ERROR: Param = query(
    "ignoreStoreReadErrorWithClusterBreakingPotential",
    "boolean",
    "Delete even an object that cannot be read from storage (corrupt or undecryptable). Dangerous.",
);
const ORPHAN: Param = query(
    "orphanDependents",
    "boolean",
    "Deprecated, use propagationPolicy: whether dependents are orphaned rather than garbage collected.",
);
const PROPAGATION: Param = query(
    "propagationPolicy",
    "string",
    "Whether and how garbage collection removes dependents: Orphan, Background or Foreground.",
);

/// The query parameters of list, watch and deletecollection.
const LIST_PARAMS: &[Param] = &[
    query("allowWatchBookmarks", "boolean", "Ask a watch for BOOKMARK events; the server may still send none."),
    query(
        "continue",
        "string",
        "The continue token of a previous chunked list response, to fetch the next chunk.",
    ),
    query(
        "fieldSelector",
        "string",
        "Restrict the returned objects by their fields. Defaults to everything.",
    ),
    query(
        "labelSelector",
        "string",
        "Restrict the returned objects by their labels. Defaults to everything.",
    ),
    query(
        "limit",
        "integer",
        "Maximum number of objects in one response; a continue token is returned when more remain.",
    ),
    query(
        "resourceVersion",
        "string",
        "Which version of the data the response must be at least as recent as; see resourceVersionMatch.",
    ),
    query(
        "resourceVersionMatch",
        "string",
        "How resourceVersion applies to list calls: Exact or NotOlderThan.",
    ),
    query(
        "sendInitialEvents",
        "boolean",
        "With watch=true, start the watch with synthetic ADDED events for the current state, ended by a bookmark.",
    ),
    query(
        "timeoutSeconds",
        "integer",
        "Time limit of the list/watch call, regardless of activity.",
    ),
    query(
        "watch",
        "boolean",
        "Watch for changes to the described resources and return them as a stream of add, update and remove notifications.",
    ),
];

/// What a request body holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Body {
    /// An object of this definition.
    Object(String),
    /// A patch in any of the four patch content types.
    Patch,
}

/// One HTTP operation.
#[derive(Clone, Debug)]
pub(crate) struct Operation {
    /// Lowercase HTTP method.
    pub method: &'static str,
    pub operation_id: String,
    pub description: String,
    /// `x-kubernetes-action`.
    pub action: &'static str,
    /// `x-kubernetes-group-version-kind`.
    pub gvk: (String, String, String),
    pub params: Vec<Param>,
    pub body: Option<Body>,
    /// Status code and the definition of the response body.
    pub responses: Vec<(u16, String)>,
    /// Whether the response may be a watch stream (list and watch operations).
    pub streams: bool,
    pub tag: String,
}

/// One path with its operations.
#[derive(Clone, Debug)]
pub(crate) struct PathItem {
    pub path: String,
    /// Parameters shared by every operation of the path.
    pub params: Vec<Param>,
    pub operations: Vec<Operation>,
}

/// Names the definitions operations use for a resource.
pub(crate) struct Defs<'a> {
    /// The resource's kind.
    pub object: &'a str,
    /// Its list kind.
    pub list: &'a str,
}

/// "Core", "Apps", "Networking", "RbacAuthorization": the group as operation ids spell it.
fn group_word(group: &str) -> String {
    if group.is_empty() {
        return "Core".to_string();
    }
    let trimmed = group.strip_suffix(".k8s.io").unwrap_or(group);
    trimmed.split('.').map(capitalize).collect()
}

/// "core_v1", "apps_v1", "rbacAuthorization_v1": the tag Kubernetes gives a group version.
fn tag(group: &str, version: &str) -> String {
    let word = group_word(group);
    let mut chars = word.chars();
    let lower: String = chars.next().map(|c| c.to_ascii_lowercase()).into_iter().chain(chars).collect();
    format!("{lower}_{version}")
}

fn capitalize(s: &str) -> String {
    let mut chars = s.chars();
    chars.next().map(|c| c.to_ascii_uppercase()).into_iter().chain(chars).collect()
}

/// The `/api/v1` or `/apis/<group>/<version>` prefix of a group version.
pub(crate) fn prefix(group: &str, version: &str) -> String {
    if group.is_empty() { format!("/api/{version}") } else { format!("/apis/{group}/{version}") }
}

/// Builds one resource's operations.
struct Builder<'a> {
    res: &'a ResourceInfo,
    defs: &'a Defs<'a>,
    /// "CoreV1" in operation ids.
    gv_word: String,
    tag: String,
    gvk: (String, String, String),
}

impl Builder<'_> {
    fn op(&self, method: &'static str, verb: &str, scope: &str, suffix: &str, action: &'static str) -> Operation {
        Operation {
            method,
            operation_id: format!("{verb}{}{scope}{}{suffix}", self.gv_word, self.res.kind),
            description: String::new(),
            action,
            gvk: self.gvk.clone(),
            params: Vec::new(),
            body: None,
            responses: Vec::new(),
            streams: false,
            tag: self.tag.clone(),
        }
    }

    /// "Namespaced" for namespaced resources, as in `listCoreV1NamespacedPod`.
    fn scope(&self) -> &'static str {
        if self.res.namespaced { "Namespaced" } else { "" }
    }

    fn list(&self, all_namespaces: bool) -> Operation {
        let (scope, suffix) = if all_namespaces { ("", "ForAllNamespaces") } else { (self.scope(), "") };
        let mut op = self.op("get", "list", scope, suffix, "list");
        op.description = format!("list or watch objects of kind {}", self.res.kind);
        op.params = LIST_PARAMS.to_vec();
        op.responses = vec![(200, self.defs.list.to_string())];
        op.streams = true;
        op
    }

    fn create(&self) -> Operation {
        let mut op = self.op("post", "create", self.scope(), "", "post");
        op.description = format!("create a {}", self.res.kind);
        op.params = vec![DRY_RUN, FIELD_MANAGER, FIELD_VALIDATION];
        op.body = Some(Body::Object(self.defs.object.to_string()));
        op.responses = [200, 201, 202].iter().map(|c| (*c, self.defs.object.to_string())).collect();
        op
    }

    fn delete_collection(&self) -> Operation {
        let mut op = self.op("delete", "delete", "", "", "deletecollection");
        op.operation_id = format!("delete{}Collection{}{}", self.gv_word, self.scope(), self.res.kind);
        op.description = format!("delete collection of {}", self.res.kind);
        op.params = LIST_PARAMS.iter().filter(|p| p.name != "watch" && p.name != "allowWatchBookmarks").copied().collect();
        op.params.extend([DRY_RUN, GRACE_PERIOD, IGNORE_STORE_READ_ERROR, ORPHAN, PROPAGATION]);
        op.body = Some(Body::Object(crate::schemas::DELETE_OPTIONS.to_string()));
        op.responses = vec![(200, crate::schemas::STATUS.to_string())];
        op
    }

    /// read/replace/patch of the object or of a subresource (`sub` is "" or "Status"/"Scale").
    fn read(&self, sub: &str, what: &str, def: &str) -> Operation {
        let mut op = self.op("get", "read", self.scope(), sub, "get");
        op.description = format!("read {what} of the specified {}", self.res.kind);
        op.responses = vec![(200, def.to_string())];
        op
    }

    fn replace(&self, sub: &str, what: &str, def: &str) -> Operation {
        let mut op = self.op("put", "replace", self.scope(), sub, "put");
        op.description = format!("replace {what} of the specified {}", self.res.kind);
        op.params = vec![DRY_RUN, FIELD_MANAGER, FIELD_VALIDATION];
        op.body = Some(Body::Object(def.to_string()));
        op.responses = vec![(200, def.to_string()), (201, def.to_string())];
        op
    }

    fn patch(&self, sub: &str, what: &str, def: &str) -> Operation {
        let mut op = self.op("patch", "patch", self.scope(), sub, "patch");
        op.description = format!("partially update {what} of the specified {}", self.res.kind);
        op.params = vec![DRY_RUN, FIELD_MANAGER, FIELD_VALIDATION, FORCE];
        op.body = Some(Body::Patch);
        op.responses = vec![(200, def.to_string()), (201, def.to_string())];
        op
    }

    fn delete(&self) -> Operation {
        let mut op = self.op("delete", "delete", self.scope(), "", "delete");
        op.description = format!("delete a {}", self.res.kind);
        op.params = vec![DRY_RUN, GRACE_PERIOD, IGNORE_STORE_READ_ERROR, ORPHAN, PROPAGATION];
        op.body = Some(Body::Object(crate::schemas::DELETE_OPTIONS.to_string()));
        op.responses = vec![(200, self.defs.object.to_string()), (202, self.defs.object.to_string())];
        op
    }

    fn watch(&self, list: bool, all_namespaces: bool) -> Operation {
        let (scope, suffix) = match (list, all_namespaces) {
            (true, true) => ("", "ListForAllNamespaces"),
            (true, false) => (self.scope(), "List"),
            (false, _) => (self.scope(), ""),
        };
        let action = if list { "watchlist" } else { "watch" };
        let mut op = self.op("get", "watch", scope, suffix, action);
        op.description = if list {
            format!("watch individual changes to a list of {}. deprecated: use the 'watch' parameter with a list operation instead.", self.res.kind)
        } else {
            format!("watch changes to an object of kind {}. deprecated: use the 'watch' parameter with a list operation instead, filtered to a single item with the 'fieldSelector' parameter.", self.res.kind)
        };
        op.params = LIST_PARAMS.to_vec();
        op.responses = vec![(200, crate::schemas::WATCH_EVENT.to_string())];
        op.streams = true;
        op
    }
}

/// Every path of one served resource.
pub(crate) fn resource_paths(res: &ResourceInfo, defs: &Defs<'_>) -> Vec<PathItem> {
    let b = Builder {
        res,
        defs,
        gv_word: format!("{}{}", group_word(res.group), capitalize(res.version)),
        tag: tag(res.group, res.version),
        gvk: (res.group.to_string(), res.version.to_string(), res.kind.to_string()),
    };
    let base = prefix(res.group, res.version);
    let (collection, scope_params) = if res.namespaced {
        (format!("{base}/namespaces/{{namespace}}/{}", res.plural), vec![NAMESPACE, PRETTY])
    } else {
        (format!("{base}/{}", res.plural), vec![PRETTY])
    };
    let watch_collection = if res.namespaced {
        format!("{base}/watch/namespaces/{{namespace}}/{}", res.plural)
    } else {
        format!("{base}/watch/{}", res.plural)
    };
    let with_name = |params: &[Param]| {
        let mut p = vec![NAME];
        p.extend_from_slice(params);
        p
    };

    let mut out = vec![
        PathItem {
            path: collection.clone(),
            params: scope_params.clone(),
            operations: vec![b.list(false), b.create(), b.delete_collection()],
        },
        PathItem {
            path: format!("{collection}/{{name}}"),
            params: with_name(&scope_params),
            operations: vec![
                b.read("", "the", defs.object),
                b.replace("", "the", defs.object),
                b.patch("", "the", defs.object),
                b.delete(),
            ],
        },
        PathItem {
            path: watch_collection.clone(),
            params: scope_params.clone(),
            operations: vec![b.watch(true, false)],
        },
        PathItem {
            path: format!("{watch_collection}/{{name}}"),
            params: with_name(&scope_params),
            operations: vec![b.watch(false, false)],
        },
    ];
    if res.namespaced {
        out.push(PathItem { path: format!("{base}/{}", res.plural), params: vec![PRETTY], operations: vec![b.list(true)] });
        out.push(PathItem {
            path: format!("{base}/watch/{}", res.plural),
            params: vec![PRETTY],
            operations: vec![b.watch(true, true)],
        });
    }
    for sub in res.subresources() {
        let path = format!("{collection}/{{name}}/{sub}");
        let params = with_name(&scope_params);
        let operations = match sub {
            "status" => vec![
                b.read("Status", "status", defs.object),
                b.replace("Status", "status", defs.object),
                b.patch("Status", "status", defs.object),
            ],
            "scale" => {
                let scale = "io.k8s.api.autoscaling.v1.Scale";
                let mut ops =
                    vec![b.read("Scale", "scale", scale), b.replace("Scale", "scale", scale), b.patch("Scale", "scale", scale)];
                for op in &mut ops {
                    op.gvk = ("autoscaling".into(), "v1".into(), "Scale".into());
                }
                ops
            }
            "binding" => {
                let binding = "io.k8s.api.core.v1.Binding";
                let mut op = b.op("post", "create", b.scope(), "Binding", "post");
                op.description = format!("create binding of a {}", res.kind);
                op.params = vec![DRY_RUN, FIELD_MANAGER, FIELD_VALIDATION];
                op.body = Some(Body::Object(binding.into()));
                op.responses = [200, 201, 202].iter().map(|c| (*c, binding.to_string())).collect();
                op.gvk = (String::new(), "v1".into(), "Binding".into());
                vec![op]
            }
            "finalize" => {
                let mut op = b.replace("Finalize", "finalize", defs.object);
                op.description = format!("replace finalize of the specified {}", res.kind);
                vec![op]
            }
            _ => continue,
        };
        out.push(PathItem { path, params, operations });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words() {
        assert_eq!(group_word(""), "Core");
        assert_eq!(group_word("rbac.authorization.k8s.io"), "RbacAuthorization");
        assert_eq!(group_word("networking.k8s.io"), "Networking");
        assert_eq!(tag("rbac.authorization.k8s.io", "v1"), "rbacAuthorization_v1");
        assert_eq!(tag("", "v1"), "core_v1");
    }

    #[test]
    fn pod_paths() {
        let pods = rkube_api::registry::lookup("", "v1", "pods").unwrap();
        let defs = Defs { object: "io.k8s.api.core.v1.Pod", list: "io.k8s.api.core.v1.PodList" };
        let items = resource_paths(pods, &defs);
        let ids: Vec<&str> = items.iter().flat_map(|p| p.operations.iter().map(|o| o.operation_id.as_str())).collect();
        for id in [
            "listCoreV1NamespacedPod",
            "createCoreV1NamespacedPod",
            "deleteCoreV1CollectionNamespacedPod",
            "readCoreV1NamespacedPod",
            "patchCoreV1NamespacedPodStatus",
            "listCoreV1PodForAllNamespaces",
            "createCoreV1NamespacedPodBinding",
            "watchCoreV1NamespacedPodList",
        ] {
            assert!(ids.contains(&id), "{id} missing from {ids:?}");
        }
        assert!(items.iter().any(|p| p.path == "/api/v1/namespaces/{namespace}/pods/{name}/binding"));
    }
}
