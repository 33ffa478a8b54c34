//! Custom resources: what CustomResourceDefinitions (apiextensions.k8s.io/v1) define, turned
//! into served resources beside the built-in ones, with what writes of their objects need per
//! version (structural schema, scale paths, printer columns). Also validates CRDs themselves.

use crate::FieldError;
use crate::registry::{self, CUSTOM_STORAGE_GROUP, ResourceInfo, intern_str};
use crate::structural::Structural;
use crate::validation::{is_dns1035_label, is_dns1123_label, is_dns1123_subdomain};
use serde_json::{Value, json};
use std::cmp::Ordering;
use std::sync::atomic::{self, AtomicU64};
use std::sync::{Arc, Mutex, RwLock};

/// The group CustomResourceDefinitions belong to.
pub const GROUP: &str = "apiextensions.k8s.io";

/// The finalizer that holds a CRD back until every object of its resource is deleted.
pub const CLEANUP_FINALIZER: &str = "customresourcecleanup.apiextensions.k8s.io";

/// The `.spec.replicas`-style paths of a version's scale subresource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScalePaths {
    /// Where the desired replica count lives, e.g. `.spec.replicas`.
    pub spec_replicas: String,
    /// Where the observed replica count lives, e.g. `.status.replicas`.
    pub status_replicas: String,
    /// Where the serialized label selector lives, if anywhere.
    pub label_selector: Option<String>,
}

impl ScalePaths {
    /// Splits a `.a.b` path into its field names.
    pub fn fields(path: &str) -> Vec<&str> {
        path.trim_start_matches('.').split('.').filter(|s| !s.is_empty()).collect()
    }
}

/// One served version of a custom resource and what writes of its objects need.
#[derive(Debug)]
pub struct CustomVersion {
    /// The served resource.
    pub info: &'static ResourceInfo,
    /// The version objects of this resource are stored in.
    pub storage: &'static ResourceInfo,
    /// The version's openAPIV3Schema.
    pub schema: Structural,
    /// The same schema as written in the CRD, for the OpenAPI documents.
    pub openapi_schema: Value,
    /// The scale subresource, when the version has one.
    pub scale: Option<ScalePaths>,
    /// `additionalPrinterColumns` as written in the CRD (null when absent).
    pub columns: Value,
    /// The warning a request to a deprecated version gets.
    pub deprecation: Option<String>,
    /// The name of the CRD defining it.
    pub definition: String,
    /// The CRD is being deleted: its objects are going, and no new ones may be created.
    pub terminating: bool,
}

static VERSIONS: RwLock<Vec<Arc<CustomVersion>>> = RwLock::new(Vec::new());

/// The storage resource of every installed definition, by CRD name.
static DEFINITIONS: RwLock<Vec<(String, &'static ResourceInfo)>> = RwLock::new(Vec::new());

/// The resource (in its storage version) an installed definition's objects are stored as.
pub fn definition_storage(name: &str) -> Option<&'static ResourceInfo> {
    let definitions = DEFINITIONS.read().unwrap_or_else(|e| e.into_inner());
    definitions.iter().find(|(n, _)| n == name).map(|(_, r)| *r)
}

/// Every custom version served now.
pub fn versions() -> Vec<Arc<CustomVersion>> {
    VERSIONS.read().unwrap_or_else(|e| e.into_inner()).clone()
}

/// The warning requests to a deprecated custom group version get, if any of its resources is
/// deprecated there.
pub fn deprecation_of(group: &str, version: &str) -> Option<String> {
    let versions = VERSIONS.read().unwrap_or_else(|e| e.into_inner());
    versions
        .iter()
        .find(|v| (v.info.group, v.info.version) == (group, version) && v.deprecation.is_some())
        .and_then(|v| v.deprecation.clone())
}

/// The custom version `res` is, if it is one being served.
pub fn version_of(res: &ResourceInfo) -> Option<Arc<CustomVersion>> {
    if !res.custom {
        return None;
    }
    let versions = VERSIONS.read().unwrap_or_else(|e| e.into_inner());
    versions
        .iter()
        .find(|v| (v.info.group, v.info.version, v.info.plural) == (res.group, res.version, res.plural))
        .cloned()
}

/// Serves exactly the served versions of `crds` (established, non-conflicting definitions, as
/// stored). A definition that does not parse is skipped, since validation kept it out already.
pub fn install(crds: &[Value]) {
    // One install at a time (under this lock), so the registry and the versions table change
    // together. The lock keeps what the served set depends on, per definition, as last
    // installed: the many passes that change none of it (status writes, clean-up retries)
    // parse nothing.
    static INSTALLED: Mutex<Option<Vec<Value>>> = Mutex::new(None);
    let mut installed = INSTALLED.lock().unwrap_or_else(|e| e.into_inner());
    let key: Vec<Value> = crds
        .iter()
        .map(|c| json!([c.pointer("/metadata/uid"), c.get("spec"), c.pointer("/metadata/deletionTimestamp").is_some()]))
        .collect();
    if installed.as_ref() == Some(&key) {
        return;
    }
    *installed = Some(key);
    let mut parsed: Vec<Parsed> = crds.iter().filter_map(|crd| parse(crd).ok()).collect();
    parsed.sort_by(|a, b| (a.group.as_str(), a.plural.as_str()).cmp(&(b.group.as_str(), b.plural.as_str())));
    let mut infos = Vec::new();
    for p in &parsed {
        infos.extend(p.versions.iter().filter(|v| v.served).map(|v| p.info(v)));
    }
    let served = registry::set_custom(infos);
    let mut versions = Vec::new();
    let mut definitions = Vec::new();
    for p in parsed {
        let storage_info = p.info(&p.versions[p.storage]);
        let storage = registry::intern(storage_info);
        definitions.push((p.name.clone(), storage));
        for v in p.versions.into_iter().filter(|v| v.served) {
            let Some(info) = served
                .iter()
                .copied()
                .find(|i| (i.group, i.version, i.plural) == (p.group.as_str(), v.name.as_str(), p.plural.as_str()))
            else {
                continue;
            };
            versions.push(Arc::new(CustomVersion {
                info,
                storage,
                schema: v.schema,
                openapi_schema: v.openapi_schema,
                scale: v.scale,
                columns: v.columns,
                deprecation: v.deprecation,
                definition: p.name.clone(),
                terminating: p.terminating,
            }));
        }
    }
    *VERSIONS.write().unwrap_or_else(|e| e.into_inner()) = versions;
    *DEFINITIONS.write().unwrap_or_else(|e| e.into_inner()) = definitions;
    GENERATION.fetch_add(1, atomic::Ordering::Release);
}

/// Counts installs, so what is derived from the served custom resources (their OpenAPI
/// documents) is computed again only after a change.
static GENERATION: AtomicU64 = AtomicU64::new(0);

/// The number of installs so far.
pub fn generation() -> u64 {
    GENERATION.load(atomic::Ordering::Acquire)
}

/// A CRD read into the parts serving needs.
struct Parsed {
    name: String,
    group: String,
    plural: String,
    singular: String,
    kind: String,
    short_names: Vec<String>,
    categories: Vec<String>,
    namespaced: bool,
    /// In Kubernetes' version priority order (the preferred version first).
    versions: Vec<ParsedVersion>,
    /// Index of the storage version in `versions`.
    storage: usize,
    /// The CRD has a deletionTimestamp.
    terminating: bool,
}

struct ParsedVersion {
    name: String,
    served: bool,
    schema: Structural,
    openapi_schema: Value,
    status: bool,
    scale: Option<ScalePaths>,
    columns: Value,
    deprecation: Option<String>,
}

impl Parsed {
    fn info(&self, v: &ParsedVersion) -> ResourceInfo {
        ResourceInfo {
            group: intern_str(&self.group),
            version: intern_str(&v.name),
            kind: intern_str(&self.kind),
            plural: intern_str(&self.plural),
            singular: intern_str(&self.singular),
            namespaced: self.namespaced,
            short_names: registry::intern_strs(&self.short_names),
            categories: registry::intern_strs(&self.categories),
            has_status: v.status,
            has_scale: v.scale.is_some(),
            tracks_generation: true,
            storage: (CUSTOM_STORAGE_GROUP, intern_str(&format!("{}/{}", self.group, self.plural))),
            custom: true,
        }
    }
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or_default()
}

fn strings_at(v: &Value, pointer: &str) -> Vec<String> {
    v.pointer(pointer)
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(String::from).collect())
        .unwrap_or_default()
}

/// Reads and validates a CRD's spec; the errors are those `validate` reports.
fn parse(crd: &Value) -> Result<Parsed, Vec<FieldError>> {
    let mut errs = Vec::new();
    let group = str_at(crd, "/spec/group").to_string();
    if group.is_empty() {
        errs.push(FieldError::required("spec.group", ""));
    } else if let Some(problem) = is_dns1123_subdomain(&group).first() {
        errs.push(FieldError::invalid("spec.group", &json!(group), problem));
    } else if !group.contains('.') {
        errs.push(FieldError::invalid("spec.group", &json!(group), "should be a domain with at least one dot"));
    }
    let plural = str_at(crd, "/spec/names/plural").to_string();
    let kind = str_at(crd, "/spec/names/kind").to_string();
    let singular = match str_at(crd, "/spec/names/singular") {
        "" => kind.to_lowercase(),
        s => s.to_string(),
    };
    let list_kind = match str_at(crd, "/spec/names/listKind") {
        "" => format!("{kind}List"),
        s => s.to_string(),
    };
    for (field, value) in [("plural", &plural), ("singular", &singular)] {
        let path = format!("spec.names.{field}");
        if value.is_empty() {
            errs.push(FieldError::required(path, ""));
        } else if let Some(problem) = is_dns1123_label(value).first() {
            errs.push(FieldError::invalid(path, &json!(value), problem));
        }
    }
    for (field, value) in [("kind", &kind), ("listKind", &list_kind)] {
        let path = format!("spec.names.{field}");
        if value.is_empty() {
            errs.push(FieldError::required(path, ""));
        } else if !is_kind_name(value) {
            errs.push(FieldError::invalid(
                path,
                &json!(value),
                "may have mixed case, but should otherwise match: [a-z]([-a-z0-9]*[a-z0-9])?",
            ));
        }
    }
    if !kind.is_empty() && kind == list_kind {
        errs.push(FieldError::invalid(
            "spec.names.listKind",
            &json!(list_kind),
            "kind and listKind may not be the same",
        ));
    }
    let short_names = strings_at(crd, "/spec/names/shortNames");
    for (i, s) in short_names.iter().enumerate() {
        if let Some(problem) = is_dns1123_label(s).first() {
            errs.push(FieldError::invalid(format!("spec.names.shortNames[{i}]"), &json!(s), problem));
        }
    }
    let categories = strings_at(crd, "/spec/names/categories");
    let name = str_at(crd, "/metadata/name").to_string();
    if !plural.is_empty() && !group.is_empty() && name != format!("{plural}.{group}") {
        errs.push(FieldError::invalid("metadata.name", &json!(name), "must be spec.names.plural+\".\"+spec.group"));
    }
    let scope = str_at(crd, "/spec/scope");
    let namespaced = match scope {
        "Namespaced" => true,
        "Cluster" => false,
        "" => {
            errs.push(FieldError::required("spec.scope", ""));
            false
        }
        other => {
            errs.push(FieldError::not_supported("spec.scope", &json!(other), &["Cluster", "Namespaced"]));
            false
        }
    };
    if crd.pointer("/spec/preserveUnknownFields").and_then(Value::as_bool) == Some(true) {
        errs.push(FieldError::invalid(
            "spec.preserveUnknownFields",
            &json!(true),
            "must be false in order to use defaults in the schema",
        ));
    }
    match str_at(crd, "/spec/conversion/strategy") {
        "" | "None" => {}
        "Webhook" => errs.push(FieldError::forbidden(
            "spec.conversion.strategy",
            "Webhook conversion is not supported by this server",
        )),
        other => errs.push(FieldError::not_supported("spec.conversion.strategy", &json!(other), &["None", "Webhook"])),
    }

    let raw_versions = crd.pointer("/spec/versions").and_then(Value::as_array).cloned().unwrap_or_default();
    if raw_versions.is_empty() {
        errs.push(FieldError::required("spec.versions", "must have exactly one version marked as storage version"));
    }
    let mut versions = Vec::new();
    let mut storage = Vec::new();
    let mut seen = Vec::new();
    for (i, v) in raw_versions.iter().enumerate() {
        let base = format!("spec.versions[{i}]");
        let vname = str_at(v, "/name").to_string();
        if vname.is_empty() {
            errs.push(FieldError::required(format!("{base}.name"), ""));
        } else if let Some(problem) = is_dns1035_label(&vname).first() {
            errs.push(FieldError::invalid(format!("{base}.name"), &json!(vname), problem));
        } else if seen.contains(&vname) {
            errs.push(FieldError::duplicate(format!("{base}.name"), &json!(vname)));
        }
        seen.push(vname.clone());
        if v.get("storage").and_then(Value::as_bool) == Some(true) {
            storage.push(i);
        }
        let schema_path = format!("{base}.schema.openAPIV3Schema");
        let schema = match v.pointer("/schema/openAPIV3Schema") {
            None | Some(Value::Null) => {
                errs.push(FieldError::required(schema_path, "schemas are required"));
                None
            }
            Some(s) => match Structural::new(s, &schema_path) {
                Ok(s) => Some(s),
                Err(e) => {
                    errs.extend(e);
                    None
                }
            },
        };
        let status = v.pointer("/subresources/status").is_some_and(|s| !s.is_null());
        let scale = match v.pointer("/subresources/scale") {
            None | Some(Value::Null) => None,
            Some(s) => {
                let sbase = format!("{base}.subresources.scale");
                let spec_replicas = str_at(s, "/specReplicasPath").to_string();
                let status_replicas = str_at(s, "/statusReplicasPath").to_string();
                let label_selector = s.get("labelSelectorPath").and_then(Value::as_str).map(String::from);
                check_scale_path(&mut errs, &format!("{sbase}.specReplicasPath"), &spec_replicas, ".spec.");
                check_scale_path(&mut errs, &format!("{sbase}.statusReplicasPath"), &status_replicas, ".status.");
                if let Some(l) = &label_selector
                    && !l.starts_with(".spec.")
                    && !l.starts_with(".status.")
                {
                    errs.push(FieldError::invalid(
                        format!("{sbase}.labelSelectorPath"),
                        &json!(l),
                        "should be a json path under either .spec or .status",
                    ));
                }
                Some(ScalePaths { spec_replicas, status_replicas, label_selector })
            }
        };
        let columns = v.get("additionalPrinterColumns").cloned().unwrap_or(Value::Null);
        if let Some(cols) = columns.as_array() {
            for (c, col) in cols.iter().enumerate() {
                let cbase = format!("{base}.additionalPrinterColumns[{c}]");
                if str_at(col, "/name").is_empty() {
                    errs.push(FieldError::required(format!("{cbase}.name"), ""));
                }
                if str_at(col, "/jsonPath").is_empty() {
                    errs.push(FieldError::required(format!("{cbase}.jsonPath"), ""));
                }
                let ty = str_at(col, "/type");
                if !["integer", "number", "string", "boolean", "date"].contains(&ty) {
                    errs.push(FieldError::not_supported(
                        format!("{cbase}.type"),
                        &json!(ty),
                        &["boolean", "date", "integer", "number", "string"],
                    ));
                }
            }
        }
        let deprecated = v.get("deprecated").and_then(Value::as_bool) == Some(true);
        let deprecation = deprecated.then(|| match v.get("deprecationWarning").and_then(Value::as_str) {
            Some(w) => w.to_string(),
            None => format!("{group}/{vname} {kind} is deprecated"),
        });
        if let Some(schema) = schema {
            versions.push(ParsedVersion {
                name: vname,
                served: v.get("served").and_then(Value::as_bool).unwrap_or(false),
                schema,
                openapi_schema: v.pointer("/schema/openAPIV3Schema").cloned().unwrap_or(Value::Null),
                status,
                scale,
                columns,
                deprecation,
            });
        }
    }
    if !raw_versions.is_empty() && storage.len() != 1 {
        errs.push(FieldError::invalid(
            "spec.versions",
            &json!(seen),
            "must have exactly one version marked as storage version",
        ));
    }
    if !errs.is_empty() {
        return Err(errs);
    }
    let storage_name = seen[storage[0]].clone();
    versions.sort_by(|a, b| compare_versions(&a.name, &b.name));
    let storage = versions.iter().position(|v| v.name == storage_name).unwrap_or(0);
    let terminating = crd.pointer("/metadata/deletionTimestamp").is_some();
    Ok(Parsed {
        name,
        group,
        plural,
        singular,
        kind,
        short_names,
        categories,
        namespaced,
        versions,
        storage,
        terminating,
    })
}

fn check_scale_path(errs: &mut Vec<FieldError>, field: &str, path: &str, under: &str) {
    if path.is_empty() {
        errs.push(FieldError::required(field.to_string(), ""));
    } else if !path.starts_with(under) {
        errs.push(FieldError::invalid(
            field.to_string(),
            &json!(path),
            &format!("should be a json path under {}", under.trim_end_matches('.')),
        ));
    }
}

/// A Kind: mixed case letters, digits and '-', starting with a letter.
fn is_kind_name(s: &str) -> bool {
    is_dns1035_label(&s.to_lowercase()).is_empty()
}

/// Validates a CustomResourceDefinition on create.
pub fn validate(crd: &Value) -> Vec<FieldError> {
    parse(crd).err().unwrap_or_default()
}

/// What an update of a CustomResourceDefinition must keep beyond `validate`: its scope.
pub fn validate_scope_update(crd: &Value, old: &Value) -> Vec<FieldError> {
    let (scope, old_scope) = (str_at(crd, "/spec/scope"), str_at(old, "/spec/scope"));
    if scope != old_scope {
        return vec![FieldError::invalid("spec.scope", &json!(scope), "field is immutable")];
    }
    Vec::new()
}

/// Fills in what Kubernetes defaults in a CRD: singular and listKind names, the conversion
/// strategy.
pub fn apply_defaults(crd: &mut Value) {
    let kind = str_at(crd, "/spec/names/kind").to_string();
    if let Some(names) = crd.pointer_mut("/spec/names").and_then(Value::as_object_mut)
        && !kind.is_empty()
    {
        names.entry("singular").or_insert_with(|| json!(kind.to_lowercase()));
        names.entry("listKind").or_insert_with(|| json!(format!("{kind}List")));
    }
    if let Some(spec) = crd.get_mut("spec").and_then(Value::as_object_mut) {
        let conversion = spec.entry("conversion").or_insert_with(|| json!({}));
        if let Some(c) = conversion.as_object_mut() {
            c.entry("strategy").or_insert_with(|| json!("None"));
        }
    }
}

/// The status Kubernetes' naming and establishing controllers give `crd`, among `others`
/// (every other stored CRD): its names accepted unless another CRD of the group holds them.
/// A condition keeps its transition time while its status stays; `now` dates new ones.
pub fn status_for(crd: &Value, others: &[Value], now: &str) -> Value {
    let group = str_at(crd, "/spec/group");
    let names = crd.pointer("/spec/names").cloned().unwrap_or_else(|| json!({}));
    let taken = |field: &str, value: &str| {
        !value.is_empty()
            && others.iter().any(|o| {
                str_at(o, "/spec/group") == group
                    && str_at(o, "/metadata/name") != str_at(crd, "/metadata/name")
                    && (str_at(o, &format!("/status/acceptedNames/{field}")) == value
                        || (field == "plural" && str_at(o, "/status/acceptedNames/singular") == value))
            })
    };
    let plural = str_at(&names, "/plural");
    let kind = str_at(&names, "/kind");
    let conflict = if taken("plural", plural) {
        Some(format!("\"{plural}\" is already in use"))
    } else if taken("kind", kind) {
        Some(format!("\"{kind}\" is already in use"))
    } else {
        None
    };
    let now = json!(now);
    let old_conditions = crd.pointer("/status/conditions").and_then(Value::as_array).cloned().unwrap_or_default();
    let condition = |ty: &str, status: bool, reason: &str, message: &str| {
        let status = if status { "True" } else { "False" };
        // The transition time stays while the condition's status does not change.
        let since = old_conditions
            .iter()
            .find(|c| str_at(c, "/type") == ty && str_at(c, "/status") == status)
            .and_then(|c| c.get("lastTransitionTime").cloned())
            .unwrap_or_else(|| now.clone());
        json!({"type": ty, "status": status, "lastTransitionTime": since, "reason": reason, "message": message})
    };
    let terminating = crd.pointer("/metadata/deletionTimestamp").is_some();
    let mut conditions = Vec::new();
    let accepted_names = match &conflict {
        None => {
            conditions.push(condition("NamesAccepted", true, "NoConflicts", "no conflicts found"));
            conditions.push(condition(
                "Established",
                true,
                "InitialNamesAccepted",
                "the initial names have been accepted",
            ));
            names.clone()
        }
        Some(message) => {
            conditions.push(condition("NamesAccepted", false, "AllNamesAccepted", message));
            conditions.push(condition("Established", false, "NotAccepted", "not all names are accepted"));
            crd.pointer("/status/acceptedNames").cloned().unwrap_or_else(|| json!({"plural": "", "kind": ""}))
        }
    };
    if terminating {
        conditions.push(condition(
            "Terminating",
            true,
            "InstanceDeletionInProgress",
            "CustomResource deletion is in progress",
        ));
    }
    let mut stored: Vec<String> = strings_at(crd, "/status/storedVersions");
    if let Some(v) = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .and_then(|vs| vs.iter().find(|v| v.get("storage").and_then(Value::as_bool) == Some(true)))
        .and_then(|v| v.get("name"))
        .and_then(Value::as_str)
        && !stored.iter().any(|s| s == v)
    {
        stored.push(v.to_string());
    }
    json!({"conditions": conditions, "acceptedNames": accepted_names, "storedVersions": stored})
}

/// Whether the CRD's status says it is established (its resource may be served).
pub fn is_established(crd: &Value) -> bool {
    crd.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| cs.iter().any(|c| str_at(c, "/type") == "Established" && str_at(c, "/status") == "True"))
}

/// Kubernetes' version priority: GA before beta before alpha, higher numbers first; names
/// that do not look like `v<N>[alpha|beta<M>]` sort after, alphabetically.
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    fn parse(v: &str) -> Option<(u8, u64, u64)> {
        let rest = v.strip_prefix('v')?;
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        let major: u64 = rest[..digits].parse().ok()?;
        if major == 0 {
            return None;
        }
        let tail = &rest[digits..];
        if tail.is_empty() {
            return Some((2, major, 0));
        }
        let (stage, minor) = if let Some(m) = tail.strip_prefix("beta") {
            (1, m)
        } else if let Some(m) = tail.strip_prefix("alpha") {
            (0, m)
        } else {
            return None;
        };
        let minor: u64 = minor.parse().ok()?;
        Some((stage, major, minor))
    }
    match (parse(a), parse(b)) {
        (Some(x), Some(y)) => y.cmp(&x),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => a.cmp(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crd() -> Value {
        json!({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "widgets.example.com"},
            "spec": {
                "group": "example.com", "scope": "Namespaced",
                "names": {"plural": "widgets", "kind": "Widget", "shortNames": ["wd"]},
                "versions": [
                    {"name": "v1beta1", "served": true, "storage": false,
                     "schema": {"openAPIV3Schema": {"type": "object"}}},
                    {"name": "v1", "served": true, "storage": true,
                     "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                         "spec": {"type": "object", "properties": {"replicas": {"type": "integer"}}}}}},
                     "subresources": {"status": {}, "scale": {"specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.replicas"}}}
                ]
            }
        })
    }

    #[test]
    fn version_priority() {
        let mut vs = vec!["v1alpha1", "foo", "v2", "v1beta2", "v1", "v1beta1", "v10", "bar"];
        vs.sort_by(|a, b| compare_versions(a, b));
        assert_eq!(vs, ["v10", "v2", "v1", "v1beta2", "v1beta1", "v1alpha1", "bar", "foo"]);
    }

    #[test]
    fn a_valid_definition_parses_with_the_preferred_version_first() {
        let mut c = crd();
        apply_defaults(&mut c);
        assert!(validate(&c).is_empty(), "{:?}", validate(&c));
        let p = parse(&c).unwrap();
        assert_eq!(p.versions.iter().map(|v| v.name.as_str()).collect::<Vec<_>>(), ["v1", "v1beta1"]);
        assert_eq!(p.versions[p.storage].name, "v1");
        assert_eq!((p.singular.as_str(), p.namespaced), ("widget", true));
        let info = p.info(&p.versions[0]);
        assert_eq!(info.key(Some("ns"), "w"), "/registry/customresources/example.com/widgets/ns/w");
        assert!(info.has_status && info.has_scale && info.custom);
        assert_eq!(c.pointer("/spec/names/listKind"), Some(&json!("WidgetList")));
    }

    #[test]
    fn bad_definitions_name_their_fields() {
        let mut c = crd();
        c["metadata"]["name"] = json!("things.example.com");
        c["spec"]["group"] = json!("example");
        c["spec"]["scope"] = json!("Global");
        c["spec"]["versions"][0]["storage"] = json!(true);
        c["spec"]["versions"][1]["schema"] = json!(null);
        let fields: Vec<String> = validate(&c).iter().map(|e| format!("{}: {}", e.field, e.message)).collect();
        assert!(
            fields.iter().any(|f| f.starts_with("spec.group: Invalid value: \"example\": should be a domain")),
            "{fields:?}"
        );
        assert!(fields.iter().any(|f| f.starts_with("spec.scope: Unsupported value: \"Global\"")), "{fields:?}");
        assert!(
            fields.iter().any(|f| f == "spec.versions[1].schema.openAPIV3Schema: Required value: schemas are required"),
            "{fields:?}"
        );
        assert!(
            fields.iter().any(|f| f.contains("must have exactly one version marked as storage version")),
            "{fields:?}"
        );
        let mut c = crd();
        c["metadata"]["name"] = json!("things.example.com");
        let fields: Vec<String> = validate(&c).iter().map(|e| e.field.clone()).collect();
        assert_eq!(fields, ["metadata.name"]);
        let mut moved = crd();
        moved["spec"]["scope"] = json!("Cluster");
        assert!(
            validate_scope_update(&moved, &crd())
                .iter()
                .any(|e| e.field == "spec.scope" && e.message.ends_with("field is immutable"))
        );
    }

    #[test]
    fn names_taken_in_the_group_are_not_accepted() {
        let mut first = crd();
        first["status"] = status_for(&first, &[], "2026-11-29T00:00:00Z");
        assert!(is_established(&first));
        let mut second = crd();
        second["metadata"]["name"] = json!("widgets2.example.com");
        second["spec"]["names"]["plural"] = json!("widgets2");
        let status = status_for(&second, std::slice::from_ref(&first), "2026-11-29T00:00:00Z");
        second["status"] = status;
        assert!(!is_established(&second), "{second}");
        assert_eq!(second.pointer("/status/conditions/0/message"), Some(&json!("\"Widget\" is already in use")));
        assert_eq!(first.pointer("/status/storedVersions"), Some(&json!(["v1"])));
    }
}
