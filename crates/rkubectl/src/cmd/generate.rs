//! `create <kind>` generators: the objects kubectl v1.33's `create namespace|deployment|configmap|
//! secret|serviceaccount|token|role|clusterrole|rolebinding|clusterrolebinding|job|cronjob|service|
//! ingress|poddisruptionbudget|priorityclass|quota` build, field for field (including the
//! `creationTimestamp: null` and empty `status` a client-side dry run prints), kubectl's flag
//! checks with its error texts, then the same create/print path as `create -f`.

use crate::cli::CreateArgs;
use crate::ctx::{Ctx, parse_duration};
use crate::discovery::ApiResource;
use crate::error::{Error, Result};
use crate::print::Format;
use crate::resource::enc;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{Map, Value, json};
use std::path::Path;

/// Flags every generator takes besides its own (kubectl accepts them after the kind too).
#[derive(Debug, Clone, Default, Args)]
pub struct GenFlags {
    /// Output format: json, yaml, name.
    #[arg(short = 'o', long = "output")]
    pub output: Option<String>,
    /// Must be "none", "server", or "client".
    #[arg(long, num_args = 0..=1, default_missing_value = "client", require_equals = true)]
    pub dry_run: Option<String>,
    /// Field manager name.
    #[arg(long)]
    pub field_manager: Option<String>,
}

/// `create <kind>` generators.
#[derive(Debug, Clone, Subcommand)]
pub enum CreateWhat {
    /// Create a namespace with the specified name.
    #[command(alias = "ns")]
    Namespace {
        /// NAME.
        names: Vec<String>,
        /// Common flags.
        #[command(flatten)]
        flags: GenFlags,
    },
    /// Create a deployment with the specified name.
    #[command(alias = "deploy")]
    Deployment {
        /// NAME.
        names: Vec<String>,
        /// Image names to run.
        #[arg(long)]
        image: Vec<String>,
        /// Number of replicas.
        #[arg(short = 'r', long, default_value_t = 1, allow_negative_numbers = true)]
        replicas: i32,
        /// The containerPort this deployment exposes.
        #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
        port: i32,
        /// Command and arguments after `--`.
        #[arg(last = true)]
        command: Vec<String>,
        /// Common flags.
        #[command(flatten)]
        flags: GenFlags,
    },
    /// Create a config map from files, directories, env files or literal values.
    #[command(alias = "cm")]
    Configmap {
        /// NAME.
        names: Vec<String>,
        /// Sources: literals, files and env files.
        #[command(flatten)]
        sources: Sources,
        /// Common flags.
        #[command(flatten)]
        flags: GenFlags,
    },
    /// Create a secret using a specified subcommand.
    #[command(subcommand)]
    Secret(SecretWhat),
    /// Create a service account with the specified name.
    #[command(alias = "sa")]
    Serviceaccount {
        /// NAME.
        names: Vec<String>,
        /// Common flags.
        #[command(flatten)]
        flags: GenFlags,
    },
    /// Request a service account token.
    Token {
        /// SERVICE_ACCOUNT_NAME.
        names: Vec<String>,
        /// Intended audience of the token (repeatable).
        #[arg(long)]
        audience: Vec<String>,
        /// Requested lifetime of the issued token.
        #[arg(long, default_value = "0s")]
        duration: String,
        /// Kind of an object to bind the token to (Pod, Secret, Node).
        #[arg(long)]
        bound_object_kind: Option<String>,
        /// Name of the object to bind the token to.
        #[arg(long)]
        bound_object_name: Option<String>,
        /// UID of the object to bind the token to.
        #[arg(long)]
        bound_object_uid: Option<String>,
        /// Output format: json, yaml, name.
        #[arg(short = 'o', long = "output")]
        output: Option<String>,
    },
    /// Create a role with single rule.
    Role {
        /// NAME.
        names: Vec<String>,
        /// The rule's flags.
        #[command(flatten)]
        rule: RuleFlags,
        /// Common flags.
        #[command(flatten)]
        flags: GenFlags,
    },
    /// Create a cluster role.
    Clusterrole {
        /// NAME.
        names: Vec<String>,
        /// The rule's flags.
        #[command(flatten)]
        rule: RuleFlags,
        /// A partial URL that user should have access to.
        #[arg(long, value_delimiter = ',')]
        non_resource_url: Vec<String>,
        /// An aggregation label selector for combining ClusterRoles.
        #[arg(long)]
        aggregation_rule: Option<String>,
        /// Common flags.
        #[command(flatten)]
        flags: GenFlags,
    },
    /// Create a role binding for a particular role or cluster role.
    Rolebinding {
        /// NAME.
        names: Vec<String>,
        /// Role this RoleBinding should reference.
        #[arg(long)]
        role: Option<String>,
        /// ClusterRole this RoleBinding should reference.
        #[arg(long)]
        clusterrole: Option<String>,
        /// Subjects.
        #[command(flatten)]
        subjects: SubjectFlags,
        /// Common flags.
        #[command(flatten)]
        flags: GenFlags,
    },
    /// Create a cluster role binding for a particular cluster role.
    Clusterrolebinding {
        /// NAME.
        names: Vec<String>,
        /// ClusterRole this ClusterRoleBinding should reference.
        #[arg(long)]
        clusterrole: Option<String>,
        /// Subjects.
        #[command(flatten)]
        subjects: SubjectFlags,
        /// Common flags.
        #[command(flatten)]
        flags: GenFlags,
    },
    /// Create a job with the specified name.
    Job {
        /// NAME.
        names: Vec<String>,
        /// Image name to run.
        #[arg(long)]
        image: Option<String>,
        /// The name of the resource to create a Job from (only cronjob is supported).
        #[arg(long)]
        from: Option<String>,
        /// Command and arguments after `--`.
        #[arg(last = true)]
        command: Vec<String>,
        /// Common flags.
        #[command(flatten)]
        flags: GenFlags,
    },
    /// Create a cron job with the specified name.
    #[command(alias = "cj")]
    Cronjob {
        /// NAME.
        names: Vec<String>,
        /// Image name to run.
        #[arg(long)]
        image: Option<String>,
        /// A schedule in the Cron format the job should be run with.
        #[arg(long)]
        schedule: Option<String>,
        /// job's restart policy. supported values: OnFailure, Never.
        #[arg(long)]
        restart: Option<String>,
        /// Command and arguments after `--`.
        #[arg(last = true)]
        command: Vec<String>,
        /// Common flags.
        #[command(flatten)]
        flags: GenFlags,
    },
    /// Create a service using a specified subcommand.
    #[command(subcommand, alias = "svc")]
    Service(ServiceWhat),
    /// Create an ingress with the specified name.
    #[command(alias = "ing")]
    Ingress {
        /// NAME.
        names: Vec<String>,
        /// Rule in format host/path=service:port[,tls=secretname].
        #[arg(long)]
        rule: Vec<String>,
        /// Ingress Class to be used.
        #[arg(long)]
        class: Option<String>,
        /// Default service for backend, in format of svcname:port.
        #[arg(long)]
        default_backend: Option<String>,
        /// Annotation to insert in the ingress object, in the format annotation=value.
        #[arg(long)]
        annotation: Vec<String>,
        /// Common flags.
        #[command(flatten)]
        flags: GenFlags,
    },
    /// Create a pod disruption budget with the specified name.
    #[command(alias = "pdb")]
    Poddisruptionbudget {
        /// NAME.
        names: Vec<String>,
        /// A label selector to use for this budget.
        #[arg(long)]
        selector: Option<String>,
        /// The minimum number or percentage of available pods this budget requires.
        #[arg(long)]
        min_available: Option<String>,
        /// The maximum number or percentage of unavailable pods this budget requires.
        #[arg(long)]
        max_unavailable: Option<String>,
        /// Common flags.
        #[command(flatten)]
        flags: GenFlags,
    },
    /// Create a priority class with the specified name.
    #[command(alias = "pc")]
    Priorityclass {
        /// NAME.
        names: Vec<String>,
        /// The value of this priority class.
        #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
        value: i32,
        /// Whether this priority class should be the cluster's default.
        #[arg(long)]
        global_default: bool,
        /// Description for this priority class.
        #[arg(long)]
        description: Option<String>,
        /// The policy for preempting pods with lower priority.
        #[arg(long, default_value = "PreemptLowerPriority")]
        preemption_policy: String,
        /// Common flags.
        #[command(flatten)]
        flags: GenFlags,
    },
    /// Create a quota with the specified name.
    #[command(alias = "resourcequota")]
    Quota {
        /// NAME.
        names: Vec<String>,
        /// A comma-delimited set of resource=quantity pairs.
        #[arg(long)]
        hard: Option<String>,
        /// A comma-delimited set of quota scopes.
        #[arg(long)]
        scopes: Option<String>,
        /// Common flags.
        #[command(flatten)]
        flags: GenFlags,
    },
}

/// `create secret` subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum SecretWhat {
    /// Create a secret from a local file, directory, or literal value.
    Generic {
        /// NAME.
        names: Vec<String>,
        /// Sources: literals, files and env files.
        #[command(flatten)]
        sources: Sources,
        /// The type of secret to create.
        #[arg(long = "type")]
        kind: Option<String>,
        /// Common flags.
        #[command(flatten)]
        flags: GenFlags,
    },
    /// Create a TLS secret.
    Tls {
        /// NAME.
        names: Vec<String>,
        /// Path to PEM encoded public key certificate.
        #[arg(long)]
        cert: Option<String>,
        /// Path to private key associated with given certificate.
        #[arg(long)]
        key: Option<String>,
        /// Append a hash of the secret to its name.
        #[arg(long)]
        append_hash: bool,
        /// Common flags.
        #[command(flatten)]
        flags: GenFlags,
    },
    /// Create a secret for use with a Docker registry.
    DockerRegistry {
        /// NAME.
        names: Vec<String>,
        /// Server location for Docker registry.
        #[arg(long, default_value = "https://index.docker.io/v1/")]
        docker_server: String,
        /// Username for Docker registry authentication.
        #[arg(long, default_value = "")]
        docker_username: String,
        /// Password for Docker registry authentication.
        #[arg(long, default_value = "")]
        docker_password: String,
        /// Email for Docker registry.
        #[arg(long, default_value = "")]
        docker_email: String,
        /// Key files: `[key=]path`.
        #[arg(long)]
        from_file: Vec<String>,
        /// Append a hash of the secret to its name.
        #[arg(long)]
        append_hash: bool,
        /// Common flags.
        #[command(flatten)]
        flags: GenFlags,
    },
}

/// `create service` subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum ServiceWhat {
    /// Create a ClusterIP service.
    Clusterip {
        /// NAME.
        names: Vec<String>,
        /// Port pairs.
        #[command(flatten)]
        ports: PortFlags,
        /// Assign your own ClusterIP or set to 'None' for a 'headless' service.
        #[arg(long)]
        clusterip: Option<String>,
        /// Common flags.
        #[command(flatten)]
        flags: GenFlags,
    },
    /// Create a NodePort service.
    Nodeport {
        /// NAME.
        names: Vec<String>,
        /// Port pairs.
        #[command(flatten)]
        ports: PortFlags,
        /// Port used to expose the service on each node in a cluster.
        #[arg(long, default_value_t = 0)]
        node_port: i32,
        /// Common flags.
        #[command(flatten)]
        flags: GenFlags,
    },
    /// Create a LoadBalancer service.
    Loadbalancer {
        /// NAME.
        names: Vec<String>,
        /// Port pairs.
        #[command(flatten)]
        ports: PortFlags,
        /// Common flags.
        #[command(flatten)]
        flags: GenFlags,
    },
    /// Create an ExternalName service.
    Externalname {
        /// NAME.
        names: Vec<String>,
        /// Port pairs.
        #[command(flatten)]
        ports: PortFlags,
        /// External name of service.
        #[arg(long)]
        external_name: Option<String>,
        /// Common flags.
        #[command(flatten)]
        flags: GenFlags,
    },
}

/// `--tcp` port pairs of `create service`.
#[derive(Debug, Clone, Default, Args)]
pub struct PortFlags {
    /// Port pairs can be specified as '<port>:<targetPort>'.
    #[arg(long, value_delimiter = ',')]
    pub tcp: Vec<String>,
}

/// Data sources of `create configmap` and `create secret generic`.
#[derive(Debug, Clone, Default, Args)]
pub struct Sources {
    /// Specify a key and literal value to insert (i.e. mykey=somevalue).
    #[arg(long)]
    pub from_literal: Vec<String>,
    /// Key files: `[key=]path`, a directory adds each regular file in it.
    #[arg(long, value_delimiter = ',')]
    pub from_file: Vec<String>,
    /// Path to a file to read lines of key=val pairs.
    #[arg(long)]
    pub from_env_file: Vec<String>,
    /// Append a hash of the object to its name.
    #[arg(long)]
    pub append_hash: bool,
}

/// The rule flags of `create role|clusterrole`.
#[derive(Debug, Clone, Default, Args)]
pub struct RuleFlags {
    /// Verb that applies to the resources contained in the rule.
    #[arg(long, value_delimiter = ',')]
    pub verb: Vec<String>,
    /// Resource that the rule applies to.
    #[arg(long, value_delimiter = ',')]
    pub resource: Vec<String>,
    /// Resource in the white list that the rule applies to, repeat this flag for multiple items.
    #[arg(long, value_delimiter = ',')]
    pub resource_name: Vec<String>,
}

/// The subject flags of `create rolebinding|clusterrolebinding`.
#[derive(Debug, Clone, Default, Args)]
pub struct SubjectFlags {
    /// Usernames to bind to the role.
    #[arg(long, value_delimiter = ',')]
    pub user: Vec<String>,
    /// Groups to bind to the role.
    #[arg(long, value_delimiter = ',')]
    pub group: Vec<String>,
    /// Service accounts to bind to the role, in the format <namespace>:<name>.
    #[arg(long, value_delimiter = ',')]
    pub serviceaccount: Vec<String>,
}

/// What a generator made: the object and where it goes.
struct Made {
    obj: Value,
    res: ApiResource,
}

/// What kubectl puts before a server error when this generator's create fails (`failed to
/// create deployment: `), or `None` where kubectl prints the plain `Error from server`.
fn failure_prefix(what: &CreateWhat) -> Option<String> {
    let p = match what {
        CreateWhat::Namespace { .. } | CreateWhat::Role { .. } | CreateWhat::Clusterrole { .. } => return None,
        CreateWhat::Secret(_) => return Some("failed to create secret ".into()),
        CreateWhat::Service(s) => {
            let kind = match s {
                ServiceWhat::Clusterip { .. } => "ClusterIP",
                ServiceWhat::Nodeport { .. } => "NodePort",
                ServiceWhat::Loadbalancer { .. } => "LoadBalancer",
                ServiceWhat::Externalname { .. } => "ExternalName",
            };
            return Some(format!("failed to create {kind} service: "));
        }
        CreateWhat::Deployment { .. } => "deployment",
        CreateWhat::Configmap { .. } => "configmap",
        CreateWhat::Serviceaccount { .. } => "serviceaccount",
        CreateWhat::Token { .. } => "token",
        CreateWhat::Rolebinding { .. } => "rolebinding",
        CreateWhat::Clusterrolebinding { .. } => "clusterrolebinding",
        CreateWhat::Job { .. } => "job",
        CreateWhat::Cronjob { .. } => "cronjob",
        CreateWhat::Ingress { .. } => "ingress",
        CreateWhat::Poddisruptionbudget { .. } => "poddisruptionbudgets",
        CreateWhat::Priorityclass { .. } => "priorityclass",
        CreateWhat::Quota { .. } => "quota",
    };
    Some(format!("failed to create {p}: "))
}

/// Rewords a server error the way kubectl reports it for this generator.
fn reword(e: Error, prefix: Option<&str>) -> Error {
    match (e, prefix) {
        (Error::Api(api), Some(p)) => Error::usage(format!("{p}{}", api.message)),
        (other, _) => other,
    }
}

fn res(group: &str, version: &str, kind: &str, plural: &str, namespaced: bool) -> ApiResource {
    ApiResource {
        group: group.into(),
        version: version.into(),
        kind: kind.into(),
        plural: plural.into(),
        singular: kind.to_lowercase(),
        namespaced,
        short_names: Vec::new(),
        verbs: Vec::new(),
        categories: Vec::new(),
    }
}

/// kubectl's NAME check: exactly one positional argument.
fn one_name(names: &[String], cmd: &str) -> Result<String> {
    match names {
        [one] => Ok(one.clone()),
        _ => Err(Error::usage(format!(
            "exactly one NAME is required, got {}\nSee 'rkubectl create {cmd} -h' for help and examples",
            names.len()
        ))),
    }
}

/// `metadata` as kubectl's typed objects serialise it: the name, `creationTimestamp: null`, and
/// the namespace only when one was given explicitly (kubectl's EnforceNamespace).
fn meta(name: &str, ns: Option<&str>) -> Value {
    let mut m = json!({"name": name, "creationTimestamp": null});
    if let Some(ns) = ns {
        m["namespace"] = json!(ns);
    }
    m
}

fn required(flag: &str) -> Error {
    Error::usage(format!("required flag(s) \"{flag}\" not set"))
}

/// Runs `create <kind>`.
pub fn run(ctx: &mut Ctx, what: CreateWhat, parent: &CreateArgs) -> Result<()> {
    if let CreateWhat::Token {
        names,
        audience,
        duration,
        bound_object_kind,
        bound_object_name,
        bound_object_uid,
        output,
    } = &what
    {
        let bound = (bound_object_kind.as_deref(), bound_object_name.as_deref(), bound_object_uid.as_deref());
        return token(ctx, names, audience, duration, bound, output.as_deref().or(parent.output.output.as_deref()));
    }
    let client = ctx.client()?;
    let explicit_ns = client.namespace_explicit.then(|| client.namespace.clone());
    let ns = explicit_ns.as_deref();
    let prefix = failure_prefix(&what);
    let (made, flags) = build(ctx, what, ns)?;
    let output = flags.output.clone().or_else(|| parent.output.output.clone());
    let dry_run = flags.dry_run.clone().or_else(|| parent.dry_run.clone());
    let manager = flags.field_manager.clone().or_else(|| parent.field_manager.clone());
    let format = Format::parse(output.as_deref())?;
    let (client_dry, server_dry, suffix) = match dry_run.as_deref() {
        None | Some("none") => (false, false, ""),
        Some("client") => (true, false, " (dry run)"),
        Some("server") => (false, true, " (server dry run)"),
        Some(o) => {
            return Err(Error::usage(format!(
                "Invalid dry-run value ({o}). Must be \"none\", \"server\", or \"client\"."
            )));
        }
    };
    let created = if client_dry {
        made.obj
    } else {
        let mut q = vec![format!("fieldManager={}", enc(manager.as_deref().unwrap_or("rkubectl-create")))];
        if server_dry {
            q.push("dryRun=All".into());
        }
        let path = format!("{}?{}", made.res.collection(Some(&client.namespace)), q.join("&"));
        tracing::debug!(path = %path, "creating generated object");
        client
            .json(Method::POST, &path, "application/json", Some(("application/json", &made.obj)))
            .map_err(|e| reword(e, prefix.as_deref()))?
    };
    crate::cmd::write::report_written(
        ctx,
        &format,
        output.as_deref(),
        &created,
        &made.res,
        &format!("created{suffix}"),
    );
    Ok(())
}

fn build(ctx: &mut Ctx, what: CreateWhat, ns: Option<&str>) -> Result<(Made, GenFlags)> {
    Ok(match what {
        CreateWhat::Namespace { names, flags } => {
            let name = one_name(&names, "namespace")?;
            let obj = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": meta(&name, None),
                "spec": {}, "status": {}});
            (Made { obj, res: res("", "v1", "Namespace", "namespaces", false) }, flags)
        }
        CreateWhat::Deployment { names, image, replicas, port, command, flags } => {
            let name = one_name(&names, "deployment")?;
            (Made { obj: deployment(&name, ns, &image, replicas, port, &command)?, res: apps("Deployment") }, flags)
        }
        CreateWhat::Configmap { names, sources, flags } => {
            let name = one_name(&names, "configmap")?;
            (Made { obj: configmap(&name, ns, &sources)?, res: res("", "v1", "ConfigMap", "configmaps", true) }, flags)
        }
        CreateWhat::Secret(s) => secret(s, ns)?,
        CreateWhat::Serviceaccount { names, flags } => {
            let name = one_name(&names, "serviceaccount")?;
            let obj = json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta(&name, ns)});
            (Made { obj, res: res("", "v1", "ServiceAccount", "serviceaccounts", true) }, flags)
        }
        CreateWhat::Token { .. } => return Err(Error::usage("create token is handled apart")),
        CreateWhat::Role { names, rule, flags } => {
            let name = one_name(&names, "role")?;
            let rules = role_rules(ctx, &rule, &[], false)?;
            let obj = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                "metadata": meta(&name, ns), "rules": rules});
            (Made { obj, res: rbac("Role", "roles", true) }, flags)
        }
        CreateWhat::Clusterrole { names, rule, non_resource_url, aggregation_rule, flags } => {
            let name = one_name(&names, "clusterrole")?;
            let mut obj = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                "metadata": meta(&name, None)});
            if let Some(agg) = aggregation_rule.filter(|a| !a.is_empty()) {
                if !non_resource_url.is_empty()
                    || !rule.verb.is_empty()
                    || !rule.resource.is_empty()
                    || !rule.resource_name.is_empty()
                {
                    return Err(Error::usage(
                        "aggregation rule must be specified without nonResourceURLs, verbs, resources or resourceNames",
                    ));
                }
                let labels = key_values(&agg, "aggregation-rule")?;
                obj["aggregationRule"] = json!({"clusterRoleSelectors": [{"matchLabels": labels}]});
                obj["rules"] = Value::Null;
            } else {
                obj["rules"] = role_rules(ctx, &rule, &non_resource_url, true)?;
            }
            (Made { obj, res: rbac("ClusterRole", "clusterroles", false) }, flags)
        }
        CreateWhat::Rolebinding { names, role, clusterrole, subjects, flags } => {
            let name = one_name(&names, "rolebinding")?;
            let role_ref = match (role.filter(|r| !r.is_empty()), clusterrole.filter(|r| !r.is_empty())) {
                (Some(r), None) => json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": r}),
                (None, Some(c)) => json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": c}),
                _ => return Err(Error::usage("exactly one of clusterrole or role must be specified")),
            };
            let mut obj = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                "metadata": meta(&name, ns), "roleRef": role_ref});
            add_subjects(&mut obj, &subjects)?;
            (Made { obj, res: rbac("RoleBinding", "rolebindings", true) }, flags)
        }
        CreateWhat::Clusterrolebinding { names, clusterrole, subjects, flags } => {
            let name = one_name(&names, "clusterrolebinding")?;
            let c = clusterrole.ok_or_else(|| required("clusterrole"))?;
            let mut obj = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                "metadata": meta(&name, None),
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": c}});
            add_subjects(&mut obj, &subjects)?;
            (Made { obj, res: rbac("ClusterRoleBinding", "clusterrolebindings", false) }, flags)
        }
        CreateWhat::Job { names, image, from, command, flags } => {
            let name = one_name(&names, "job")?;
            let obj = match (image.filter(|i| !i.is_empty()), from.filter(|f| !f.is_empty())) {
                (Some(image), None) => json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": meta(&name, ns),
                    "spec": {"template": {"metadata": {"creationTimestamp": null},
                        "spec": {"containers": [container(&name, &image, &command)], "restartPolicy": "Never"}}},
                    "status": {}}),
                (None, Some(from)) => job_from_cronjob(ctx, &name, ns, &from)?,
                _ => return Err(Error::usage("either --image or --from must be specified")),
            };
            (Made { obj, res: res("batch", "v1", "Job", "jobs", true) }, flags)
        }
        CreateWhat::Cronjob { names, image, schedule, restart, command, flags } => {
            let name = one_name(&names, "cronjob")?;
            let image = image.ok_or_else(|| required("image"))?;
            let schedule = schedule.ok_or_else(|| required("schedule"))?;
            let restart = restart.filter(|r| !r.is_empty()).unwrap_or_else(|| "OnFailure".into());
            let obj = json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": meta(&name, ns),
                "spec": {"schedule": schedule, "jobTemplate": {"metadata": {"name": name, "creationTimestamp": null},
                    "spec": {"template": {"metadata": {"creationTimestamp": null},
                        "spec": {"containers": [container(&name, &image, &command)], "restartPolicy": restart}}}}},
                "status": {}});
            (Made { obj, res: res("batch", "v1", "CronJob", "cronjobs", true) }, flags)
        }
        CreateWhat::Service(s) => service(s, ns)?,
        CreateWhat::Ingress { names, rule, class, default_backend, annotation, flags } => {
            let name = one_name(&names, "ingress")?;
            let obj = ingress(&name, ns, &rule, class.as_deref(), default_backend.as_deref(), &annotation)?;
            (Made { obj, res: res("networking.k8s.io", "v1", "Ingress", "ingresses", true) }, flags)
        }
        CreateWhat::Poddisruptionbudget { names, selector, min_available, max_unavailable, flags } => {
            let name = one_name(&names, "poddisruptionbudget")?;
            let selector =
                selector.filter(|s| !s.is_empty()).ok_or_else(|| Error::usage("a selector must be specified"))?;
            let min = min_available.filter(|s| !s.is_empty());
            let max = max_unavailable.filter(|s| !s.is_empty());
            let mut spec = json!({"selector": label_selector(&selector)?});
            match (min, max) {
                (None, None) => {
                    return Err(Error::usage("one of min-available or max-unavailable must be specified"));
                }
                (Some(_), Some(_)) => {
                    return Err(Error::usage("min-available and max-unavailable cannot be both specified"));
                }
                (Some(m), None) => spec["minAvailable"] = int_or_string(&m),
                (None, Some(m)) => spec["maxUnavailable"] = int_or_string(&m),
            }
            let obj = json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": meta(&name, ns),
                "spec": spec,
                "status": {"currentHealthy": 0, "desiredHealthy": 0, "disruptionsAllowed": 0, "expectedPods": 0}});
            (Made { obj, res: res("policy", "v1", "PodDisruptionBudget", "poddisruptionbudgets", true) }, flags)
        }
        CreateWhat::Priorityclass { names, value, global_default, description, preemption_policy, flags } => {
            let name = one_name(&names, "priorityclass")?;
            let mut obj = json!({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
                "metadata": meta(&name, None), "value": value, "preemptionPolicy": preemption_policy});
            if global_default {
                obj["globalDefault"] = json!(true);
            }
            if let Some(d) = description.filter(|d| !d.is_empty()) {
                obj["description"] = json!(d);
            }
            (Made { obj, res: res("scheduling.k8s.io", "v1", "PriorityClass", "priorityclasses", false) }, flags)
        }
        CreateWhat::Quota { names, hard, scopes, flags } => {
            let name = one_name(&names, "quota")?;
            let mut spec = json!({});
            if let Some(hard) = hard.filter(|h| !h.is_empty()) {
                let mut m = Map::new();
                for pair in hard.split(',') {
                    let (k, v) = pair.split_once('=').ok_or_else(|| {
                        Error::usage(format!("Invalid argument syntax {pair}, expected <resource>=<value>"))
                    })?;
                    m.insert(k.to_string(), json!(crate::cmd::describe::quantity::canonical(v)));
                }
                spec["hard"] = Value::Object(m);
            }
            if let Some(scopes) = scopes.filter(|s| !s.is_empty()) {
                spec["scopes"] = json!(scopes.split(',').collect::<Vec<_>>());
            }
            let obj = json!({"apiVersion": "v1", "kind": "ResourceQuota", "metadata": meta(&name, ns),
                "spec": spec, "status": {}});
            (Made { obj, res: res("", "v1", "ResourceQuota", "resourcequotas", true) }, flags)
        }
    })
}

fn apps(kind: &str) -> ApiResource {
    res("apps", "v1", kind, &format!("{}s", kind.to_lowercase()), true)
}

fn rbac(kind: &str, plural: &str, namespaced: bool) -> ApiResource {
    res("rbac.authorization.k8s.io", "v1", kind, plural, namespaced)
}

/// A container as kubectl's job/cronjob generators write it: named after the object.
fn container(name: &str, image: &str, command: &[String]) -> Value {
    let mut c = json!({"name": name, "image": image, "resources": {}});
    if !command.is_empty() {
        c["command"] = json!(command);
    }
    c
}

/// kubectl's container name for an image: the last path element without tag or digest, with
/// `_` and `.` made `-` plus a random suffix (kubectl does that to stay a DNS label).
fn container_name(image: &str) -> String {
    let mut name = image.rsplit('/').next().unwrap_or(image);
    name = name.split(':').next().unwrap_or(name);
    name = name.split('@').next().unwrap_or(name);
    if name.contains(['_', '.']) {
        format!("{}-{}", name.replace(['_', '.'], "-"), random_suffix(5))
    } else {
        name.to_string()
    }
}

/// Random lower-case alphanumerics from apimachinery's alphabet (no vowels, no look-alikes).
fn random_suffix(n: usize) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut bytes = vec![0u8; n];
    let rng = ring::rand::SystemRandom::new();
    if ring::rand::SecureRandom::fill(&rng, &mut bytes).is_err() {
        // Fall back to the clock: uniqueness, not secrecy, is what matters here.
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
        bytes.iter_mut().enumerate().for_each(|(i, b)| *b = (nanos >> (i * 5)) as u8);
    }
    bytes.iter().map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char).collect()
}

fn deployment(
    name: &str,
    ns: Option<&str>,
    images: &[String],
    replicas: i32,
    port: i32,
    cmd: &[String],
) -> Result<Value> {
    if images.is_empty() {
        return Err(required("image"));
    }
    if images.len() > 1 && !cmd.is_empty() {
        return Err(Error::usage("cannot specify multiple --image options and command"));
    }
    let mut containers: Vec<Value> = images
        .iter()
        .map(|img| {
            let mut c = json!({"name": container_name(img), "image": img, "resources": {}});
            if !cmd.is_empty() {
                c["command"] = json!(cmd);
            }
            c
        })
        .collect();
    // kubectl exposes --port on the first container only.
    if port >= 0
        && let Some(first) = containers.first_mut()
    {
        first["ports"] = json!([{"containerPort": port}]);
    }
    let mut metadata = meta(name, ns);
    metadata["labels"] = json!({"app": name});
    Ok(json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": metadata,
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}}, "strategy": {},
            "template": {"metadata": {"labels": {"app": name}, "creationTimestamp": null},
                "spec": {"containers": containers}}},
        "status": {}}))
}

/// Whether `key` is a valid ConfigMap/Secret key (`[-._a-zA-Z0-9]+`, not `.` or `..`).
fn key_error(key: &str) -> Option<String> {
    let chars_ok = !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !chars_ok {
        return Some("a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')".into());
    }
    if key == "." {
        return Some("must not be '.'".into());
    }
    if key == ".." {
        return Some("must not be '..'".into());
    }
    if key.starts_with("..") {
        return Some("must not start with '..'".into());
    }
    if key.len() > 253 {
        return Some("must be no more than 253 characters".into());
    }
    None
}

/// One `key=value` entry read from any source, with its bytes.
type Entry = (String, Vec<u8>);

/// Expands `--from-file` sources into entries: `[key=]path`, a directory giving its regular files.
fn file_entries(sources: &[String], what: &str) -> Result<Vec<Entry>> {
    let mut out = Vec::new();
    for s in sources {
        let (key, path) = match s.split_once('=') {
            Some((k, p)) => {
                if k.is_empty() {
                    return Err(Error::usage(format!("key name for file path {p} missing")));
                }
                if p.is_empty() {
                    return Err(Error::usage(format!("file path for key name {k} missing")));
                }
                (Some(k.to_string()), p.to_string())
            }
            None => (None, s.clone()),
        };
        let p = Path::new(&path);
        let meta = std::fs::metadata(p).map_err(|e| Error::usage(format!("error reading {path}: {}", io_text(&e))))?;
        if meta.is_dir() {
            if key.is_some() {
                return Err(Error::usage("cannot give a key name for a directory path"));
            }
            let mut items: Vec<_> = std::fs::read_dir(p)?.filter_map(|e| e.ok()).collect();
            items.sort_by_key(|e| e.file_name());
            for item in items {
                if item.file_type().is_ok_and(|t| t.is_file()) {
                    let k = item.file_name().to_string_lossy().into_owned();
                    if let Some(e) = key_error(&k) {
                        return Err(Error::usage(format!("{k:?} is not a valid key name for a {what}: {e}")));
                    }
                    out.push((k, std::fs::read(item.path())?));
                }
            }
        } else {
            let k = key.unwrap_or_else(|| p.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default());
            let data = std::fs::read(p).map_err(|e| Error::usage(format!("error reading {path}: {}", io_text(&e))))?;
            out.push((k, data));
        }
    }
    Ok(out)
}

/// An I/O error as Go words it (`no such file or directory`), without Rust's `(os error 2)`.
fn io_text(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

/// Reads kubectl's env files: `KEY=value` lines, `#` comments, a bare `KEY` taking the value
/// from rkubectl's own environment.
fn env_entries(files: &[String]) -> Result<Vec<Entry>> {
    let mut out = Vec::new();
    for f in files {
        let data = std::fs::read(f).map_err(|e| Error::usage(format!("error reading {f}: {}", io_text(&e))))?;
        for (n, raw) in data.split(|b| *b == b'\n').enumerate() {
            let line = std::str::from_utf8(raw)
                .map_err(|_| Error::usage(format!("env file {f} contains invalid utf8 bytes at line {}", n + 1)))?;
            let line = if n == 0 { line.trim_start_matches('\u{feff}') } else { line };
            let line = line.trim_start();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (key, value) = match line.split_once('=') {
                Some((k, v)) => (k, Some(v.to_string())),
                None => (line, None),
            };
            if !valid_env_name(key) {
                return Err(Error::usage(format!(
                    "{key:?} is not a valid key name: a valid environment variable name must consist of alphabetic characters, digits, '_', '-', or '.', and must not start with a digit (e.g. 'my.env-name',  or 'MY_ENV.NAME',  or 'MyEnvName1', regex used for validation is '[-._a-zA-Z][-._a-zA-Z0-9]*')"
                )));
            }
            let value = value.unwrap_or_else(|| std::env::var(key).unwrap_or_default());
            out.push((key.to_string(), value.into_bytes()));
        }
    }
    Ok(out)
}

fn valid_env_name(key: &str) -> bool {
    let mut chars = key.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || matches!(c, '-' | '.' | '_'))
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
}

fn literal_entries(literals: &[String]) -> Result<Vec<Entry>> {
    literals
        .iter()
        .map(|l| match l.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.as_bytes().to_vec())),
            _ => Err(Error::usage(format!("invalid literal source {l}, expected key=value"))),
        })
        .collect()
}

/// All entries of `--from-literal`, `--from-file`, `--from-env-file`, in kubectl's order.
fn source_entries(s: &Sources, what: &str) -> Result<Vec<Entry>> {
    if !s.from_env_file.is_empty() && (!s.from_file.is_empty() || !s.from_literal.is_empty()) {
        return Err(Error::usage("from-env-file cannot be combined with from-file or from-literal"));
    }
    let mut all = literal_entries(&s.from_literal)?;
    all.extend(file_entries(&s.from_file, what)?);
    all.extend(env_entries(&s.from_env_file)?);
    Ok(all)
}

fn configmap(name: &str, ns: Option<&str>, s: &Sources) -> Result<Value> {
    let mut data = Map::new();
    let mut binary = Map::new();
    for (k, v) in source_entries(s, "ConfigMap")? {
        if let Some(e) = key_error(&k) {
            return Err(Error::usage(format!("{k:?} is not a valid key name for a ConfigMap: {e}")));
        }
        if data.contains_key(&k) || binary.contains_key(&k) {
            return Err(Error::usage(format!(
                "cannot add key {k:?}, another key by that name already exists in Data for ConfigMap {name:?}"
            )));
        }
        match String::from_utf8(v) {
            Ok(text) => data.insert(k, json!(text)),
            Err(e) => binary.insert(k, json!(B64.encode(e.into_bytes()))),
        };
    }
    let mut obj = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta(name, ns)});
    if !data.is_empty() {
        obj["data"] = Value::Object(data);
    }
    if !binary.is_empty() {
        obj["binaryData"] = Value::Object(binary);
    }
    if s.append_hash {
        let mut m = json!({"kind": "ConfigMap", "name": name, "data": obj.get("data").cloned().unwrap_or(json!({}))});
        if let Some(b) = obj.get("binaryData") {
            m["binaryData"] = b.clone();
        }
        obj["metadata"]["name"] = json!(format!("{name}-{}", content_hash(&m)));
    }
    Ok(obj)
}

/// kubectl's name hash: SHA-256 of Go's JSON encoding (sorted keys, HTML characters escaped),
/// the first ten hex digits with 0,1,3,a,e swapped for letters so it never looks like a number.
fn content_hash(v: &Value) -> String {
    let text = serde_json::to_string(v)
        .unwrap_or_default()
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029");
    let digest = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
    let hex: String = digest.as_ref().iter().take(5).map(|b| format!("{b:02x}")).collect();
    hex.chars()
        .map(|c| match c {
            '0' => 'g',
            '1' => 'h',
            '3' => 'k',
            'a' => 'm',
            'e' => 't',
            o => o,
        })
        .collect()
}

/// A Secret with `data` from entries; `kind` is its `type` (omitted when empty).
fn secret_object(name: &str, ns: Option<&str>, entries: Vec<Entry>, kind: &str, append_hash: bool) -> Result<Value> {
    let mut data = Map::new();
    for (k, v) in entries {
        if let Some(e) = key_error(&k) {
            return Err(Error::usage(format!("{k:?} is not a valid key name for a Secret: {e}")));
        }
        if data.contains_key(&k) {
            return Err(Error::usage(format!("cannot add key {k}, another key by that name already exists")));
        }
        data.insert(k, json!(B64.encode(v)));
    }
    let mut obj = json!({"apiVersion": "v1", "kind": "Secret", "metadata": meta(name, ns)});
    if !data.is_empty() {
        obj["data"] = Value::Object(data.clone());
    }
    if !kind.is_empty() {
        obj["type"] = json!(kind);
    }
    if append_hash {
        let m = json!({"kind": "Secret", "type": kind, "name": name, "data": Value::Object(data)});
        obj["metadata"]["name"] = json!(format!("{name}-{}", content_hash(&m)));
    }
    Ok(obj)
}

fn secret(s: SecretWhat, ns: Option<&str>) -> Result<(Made, GenFlags)> {
    let r = res("", "v1", "Secret", "secrets", true);
    Ok(match s {
        SecretWhat::Generic { names, sources, kind, flags } => {
            let name = one_name(&names, "secret generic")?;
            let entries = source_entries(&sources, "Secret")?;
            let obj = secret_object(&name, ns, entries, kind.as_deref().unwrap_or(""), sources.append_hash)?;
            (Made { obj, res: r }, flags)
        }
        SecretWhat::Tls { names, cert, key, append_hash, flags } => {
            let name = one_name(&names, "secret tls")?;
            let (Some(cert), Some(key)) = (cert.filter(|c| !c.is_empty()), key.filter(|k| !k.is_empty())) else {
                return Err(Error::usage("key and cert must be specified"));
            };
            let read = |p: &str| std::fs::read(p).map_err(|e| Error::usage(format!("open {p}: {}", io_text(&e))));
            let (cert_pem, key_pem) = (read(&cert)?, read(&key)?);
            if !has_pem(&cert_pem, "CERTIFICATE") {
                return Err(Error::usage("tls: failed to find any PEM data in certificate input"));
            }
            if !has_pem(&key_pem, "PRIVATE KEY") {
                return Err(Error::usage("tls: failed to find any PEM data in key input"));
            }
            let entries = vec![("tls.crt".to_string(), cert_pem), ("tls.key".to_string(), key_pem)];
            (Made { obj: secret_object(&name, ns, entries, "kubernetes.io/tls", append_hash)?, res: r }, flags)
        }
        SecretWhat::DockerRegistry {
            names,
            docker_server,
            docker_username,
            docker_password,
            docker_email,
            from_file,
            append_hash,
            flags,
        } => {
            let name = one_name(&names, "secret docker-registry")?;
            let entries = if from_file.is_empty() {
                if docker_username.is_empty() || docker_password.is_empty() || docker_server.is_empty() {
                    return Err(Error::usage(
                        "either --from-file or the combination of --docker-username, --docker-password and --docker-server is required",
                    ));
                }
                let mut entry = Map::new();
                entry.insert("username".into(), json!(docker_username));
                entry.insert("password".into(), json!(docker_password));
                if !docker_email.is_empty() {
                    entry.insert("email".into(), json!(docker_email));
                }
                entry.insert("auth".into(), json!(B64.encode(format!("{docker_username}:{docker_password}"))));
                // Go marshals the struct in field order (username, password, email, auth), not sorted.
                let body: Vec<String> =
                    entry.iter().map(|(k, v)| format!("{}:{}", go_json(&json!(k)), go_json(v))).collect();
                let order = ["username", "password", "email", "auth"];
                let mut ordered: Vec<(usize, String)> =
                    entry.keys().zip(body).map(|(k, b)| (order.iter().position(|o| o == k).unwrap_or(9), b)).collect();
                ordered.sort();
                let inner: Vec<String> = ordered.into_iter().map(|(_, b)| b).collect();
                let config = format!("{{\"auths\":{{{}:{{{}}}}}}}", go_json(&json!(docker_server)), inner.join(","));
                vec![(".dockerconfigjson".to_string(), config.into_bytes())]
            } else {
                file_entries(&from_file, "Secret")?
            };
            let obj = secret_object(&name, ns, entries, "kubernetes.io/dockerconfigjson", append_hash)?;
            (Made { obj, res: r }, flags)
        }
    })
}

/// Go's time.ParseDuration complaint for a duration it cannot read.
fn go_duration_error(text: &str) -> String {
    let unit: String =
        text.chars().skip_while(|c| c.is_ascii_digit() || *c == '.').take_while(|c| !c.is_ascii_digit()).collect();
    if unit.is_empty() || text.starts_with(|c: char| !c.is_ascii_digit() && c != '.') {
        format!("time: invalid duration \"{text}\"")
    } else {
        format!("time: unknown unit \"{unit}\" in duration \"{text}\"")
    }
}

/// A JSON value as Go's encoder writes it (HTML characters escaped).
fn go_json(v: &Value) -> String {
    serde_json::to_string(v).unwrap_or_default().replace('<', "\\u003c").replace('>', "\\u003e").replace('&', "\\u0026")
}

fn has_pem(data: &[u8], label_end: &str) -> bool {
    let text = String::from_utf8_lossy(data);
    text.lines().any(|l| l.starts_with("-----BEGIN ") && l.trim_end().ends_with(&format!("{label_end}-----")))
}

/// Key=value pairs separated by commas (`a=b,c=d`) as a string map.
fn key_values(text: &str, flag: &str) -> Result<Map<String, Value>> {
    let mut m = Map::new();
    for pair in text.split(',') {
        let (k, v) = pair
            .split_once('=')
            .ok_or_else(|| Error::usage(format!("invalid {flag} {text:?}: expected key=value pairs")))?;
        m.insert(k.to_string(), json!(v));
    }
    Ok(m)
}

const RESOURCE_VERBS: &[&str] = &[
    "*",
    "get",
    "delete",
    "list",
    "create",
    "update",
    "patch",
    "watch",
    "proxy",
    "deletecollection",
    "use",
    "bind",
    "escalate",
    "impersonate",
];
const NON_RESOURCE_VERBS: &[&str] = &["*", "get", "post", "put", "delete", "patch", "head", "options"];

/// The (group, resource) pairs a verb with special meaning may only be used on.
fn special_verb_targets(verb: &str) -> Option<&'static [(&'static str, &'static str)]> {
    match verb {
        "use" => Some(&[("policy", "podsecuritypolicies"), ("extensions", "podsecuritypolicies")]),
        "bind" | "escalate" => {
            Some(&[("rbac.authorization.k8s.io", "roles"), ("rbac.authorization.k8s.io", "clusterroles")])
        }
        "impersonate" => Some(&[
            ("", "users"),
            ("", "serviceaccounts"),
            ("", "groups"),
            ("authentication.k8s.io", "userextras"),
            ("authentication.k8s.io", "uids"),
        ]),
        _ => None,
    }
}

/// kubectl's rules for `create role|clusterrole`: one rule per API group (groups sorted) with
/// the deduplicated verbs, plus one rule for the non-resource URLs.
fn role_rules(ctx: &mut Ctx, rule: &RuleFlags, urls: &[String], cluster: bool) -> Result<Value> {
    let mut verbs: Vec<String> = Vec::new();
    for v in &rule.verb {
        if v == "*" {
            verbs = vec!["*".into()];
            break;
        }
        if !verbs.contains(v) {
            verbs.push(v.clone());
        }
    }
    // (group, resource, subresource) as written.
    let mut wanted: Vec<(String, String, String)> = Vec::new();
    for r in &rule.resource {
        let (main, sub) = r.split_once('/').map_or((r.as_str(), ""), |(m, s)| (m, s));
        let (resource, group) = main.split_once('.').map_or((main, ""), |(r, g)| (r, g));
        if resource == "*" && group.is_empty() && sub.is_empty() {
            wanted = vec![("".into(), "*".into(), "".into())];
            break;
        }
        wanted.push((group.into(), resource.into(), sub.into()));
    }
    if rule.verb.is_empty() {
        return Err(Error::usage("at least one verb must be specified"));
    }
    if !cluster && wanted.is_empty() {
        return Err(Error::usage("at least one resource must be specified"));
    }
    if cluster && wanted.is_empty() && urls.is_empty() {
        return Err(Error::usage("one of resource or nonResourceURL must be specified"));
    }
    if !wanted.is_empty() {
        for v in &verbs {
            if !RESOURCE_VERBS.contains(&v.as_str()) {
                ctx.eprintln(&format!("Warning: '{v}' is not a standard resource verb"));
            }
        }
    }
    if !urls.is_empty() {
        for v in &verbs {
            if !NON_RESOURCE_VERBS.contains(&v.as_str()) {
                return Err(Error::usage(format!("invalid verb: '{v}' for nonResourceURL")));
            }
        }
        for u in urls {
            if u == "*" {
                continue;
            }
            if !u.starts_with('/') {
                return Err(Error::usage("nonResourceURL should start with /"));
            }
            if u[..u.len() - 1].contains('*') {
                return Err(Error::usage("nonResourceURL only supports wildcard matches when '*' is at the end"));
            }
        }
    }
    let mut by_group: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for (group, resource, sub) in &wanted {
        if resource.is_empty() {
            return Err(Error::usage("resource must be specified if apiGroup/subresource specified"));
        }
        let (mut g, mut r, mut err) = (group.clone(), resource.clone(), None);
        if resource != "*" {
            let arg = if group.is_empty() { resource.clone() } else { format!("{resource}.{group}") };
            match ctx.resource(&arg) {
                Ok(found) => (g, r) = (found.group, found.plural),
                // kubectl prints the RESTMapper's error bare, without `error: `.
                Err(_) => {
                    err = Some(Error::Exit {
                        code: 1,
                        message: format!("the server doesn't have a resource type \"{arg}\""),
                    })
                }
            }
        }
        for v in &verbs {
            if let Some(targets) = special_verb_targets(v) {
                if targets.iter().any(|(tg, tr)| *tg == g && *tr == r) {
                    err = None;
                } else {
                    return Err(Error::usage(format!("can not perform '{v}' on '{r}' in group '{g}'")));
                }
            }
        }
        if let Some(e) = err {
            return Err(e);
        }
        if !sub.is_empty() {
            r = format!("{r}/{sub}");
        }
        let list = by_group.entry(g).or_default();
        if !list.contains(&r) {
            list.push(r);
        }
    }
    let mut rules: Vec<Value> = by_group
        .into_iter()
        .map(|(g, rs)| {
            let mut rule_obj = json!({"verbs": verbs, "apiGroups": [g], "resources": rs});
            if !rule.resource_name.is_empty() {
                rule_obj["resourceNames"] = json!(rule.resource_name);
            }
            rule_obj
        })
        .collect();
    if !urls.is_empty() {
        rules.push(json!({"verbs": verbs, "nonResourceURLs": urls}));
    }
    Ok(Value::Array(rules))
}

fn add_subjects(obj: &mut Value, s: &SubjectFlags) -> Result<()> {
    let mut subjects: Vec<Value> = Vec::new();
    for u in &s.user {
        subjects.push(json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": u}));
    }
    for g in &s.group {
        subjects.push(json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": g}));
    }
    for sa in &s.serviceaccount {
        let (ns, name) = sa
            .split_once(':')
            .filter(|(ns, name)| !ns.is_empty() && !name.is_empty() && !name.contains(':'))
            .ok_or_else(|| Error::usage("serviceaccount must be <namespace>:<name>"))?;
        subjects.push(json!({"kind": "ServiceAccount", "namespace": ns, "name": name}));
    }
    if !subjects.is_empty() {
        obj["subjects"] = Value::Array(subjects);
    }
    Ok(())
}

/// The Job `create job --from=cronjob/NAME` makes: the CronJob's job template, owned by it.
fn job_from_cronjob(ctx: &mut Ctx, name: &str, ns: Option<&str>, from: &str) -> Result<Value> {
    let (kind, source) = from
        .split_once('/')
        .ok_or_else(|| Error::usage(format!("from must be of the form TYPE/NAME, got {from:?}")))?;
    let r = ctx.resource(kind)?;
    if r.kind != "CronJob" {
        return Err(Error::usage(format!("unknown object type *{}.{}", r.version, r.kind)));
    }
    let client = ctx.client()?;
    let cj = client.get(&r.item(&client.namespace, source))?;
    let template = &cj["spec"]["jobTemplate"];
    let mut annotations = json!({"cronjob.kubernetes.io/instantiate": "manual"});
    if let Some(a) = template["metadata"]["annotations"].as_object() {
        for (k, v) in a {
            annotations[k] = v.clone();
        }
    }
    let mut metadata = meta(name, ns);
    metadata["annotations"] = annotations;
    if let Some(labels) = template["metadata"]["labels"].as_object() {
        metadata["labels"] = Value::Object(labels.clone());
    }
    metadata["ownerReferences"] = json!([{"apiVersion": "batch/v1", "kind": "CronJob",
        "name": cj["metadata"]["name"], "uid": cj["metadata"]["uid"], "controller": true}]);
    let spec = template.get("spec").cloned().unwrap_or(json!({}));
    Ok(json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": metadata, "spec": spec, "status": {}}))
}

fn service(s: ServiceWhat, ns: Option<&str>) -> Result<(Made, GenFlags)> {
    let (name, kind, ports, cluster_ip, node_port, external, flags) = match s {
        ServiceWhat::Clusterip { names, ports, clusterip, flags } => {
            (one_name(&names, "service clusterip")?, "ClusterIP", ports, clusterip, 0, None, flags)
        }
        ServiceWhat::Nodeport { names, ports, node_port, flags } => {
            (one_name(&names, "service nodeport")?, "NodePort", ports, None, node_port, None, flags)
        }
        ServiceWhat::Loadbalancer { names, ports, flags } => {
            (one_name(&names, "service loadbalancer")?, "LoadBalancer", ports, None, 0, None, flags)
        }
        ServiceWhat::Externalname { names, ports, external_name, flags } => {
            let name = one_name(&names, "service externalname")?;
            let ext = external_name.ok_or_else(|| required("external-name"))?;
            (name, "ExternalName", ports, None, 0, Some(ext), flags)
        }
    };
    let headless = cluster_ip.as_deref() == Some("None");
    if ports.tcp.is_empty() && !headless && external.is_none() {
        return Err(Error::usage("at least one tcp port specifier must be provided"));
    }
    if let Some(ext) = &external
        && !valid_dns1123_subdomain(ext)
    {
        return Err(Error::usage(format!("invalid service external name {ext}")));
    }
    let mut port_list = Vec::new();
    for spec in &ports.tcp {
        let (port_text, target) = spec.split_once(':').map_or((spec.as_str(), None), |(p, t)| (p, Some(t)));
        let port: u16 = port_text
            .parse()
            .map_err(|_| Error::usage(format!("strconv.ParseUint: parsing {port_text:?}: invalid syntax")))?;
        let target_value = match target {
            Some(t) => int_or_string(t),
            None => json!(port),
        };
        let pname = match target {
            Some(t) => format!("{port_text}-{t}"),
            None => port_text.to_string(),
        };
        let mut p = json!({"name": pname, "port": port, "targetPort": target_value, "protocol": "TCP"});
        if node_port > 0 {
            p["nodePort"] = json!(node_port);
        }
        port_list.push(p);
    }
    let mut metadata = meta(&name, ns);
    metadata["labels"] = json!({"app": name});
    let mut spec = json!({"type": kind, "selector": {"app": name}});
    if !port_list.is_empty() {
        spec["ports"] = Value::Array(port_list);
    }
    if let Some(ip) = cluster_ip.filter(|i| !i.is_empty()) {
        spec["clusterIP"] = json!(ip);
    }
    if let Some(ext) = external {
        spec["externalName"] = json!(ext);
    }
    let obj = json!({"apiVersion": "v1", "kind": "Service", "metadata": metadata, "spec": spec,
        "status": {"loadBalancer": {}}});
    Ok((Made { obj, res: res("", "v1", "Service", "services", true) }, flags))
}

fn valid_dns1123_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

/// intstr.Parse: a number when the text is one, else the text.
fn int_or_string(text: &str) -> Value {
    text.parse::<i32>().map_or_else(|_| json!(text), |n| json!(n))
}

fn is_word(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

/// Whether `rule` has kubectl's shape `host/path=svc:port[,tls[=secret]]` (host of word
/// characters, `*`, `.`; service and port of word characters and `-`).
fn valid_rule(rule: &str) -> bool {
    let host_end = rule.find(|c: char| !(is_word(c) || c == '*' || c == '.')).unwrap_or(rule.len());
    let rest = &rule[host_end..];
    if !rest.starts_with('/') {
        return false;
    }
    // The path is greedy: try every '=' from the right as the path's end.
    rest.match_indices('=').rev().any(|(i, _)| {
        let tail = &rest[i + 1..];
        let (svc_port, tls) = match tail.split_once(',') {
            Some((a, b)) => (a, Some(b)),
            None => (tail, None),
        };
        let svc_ok = svc_port
            .split_once(':')
            .is_some_and(|(s, p)| !s.is_empty() && s.chars().all(is_word) && !p.is_empty() && p.chars().all(is_word));
        let tls_ok = match tls {
            None => true,
            Some(t) => t.strip_prefix("tls").is_some_and(|s| {
                let s = s.strip_prefix('=').unwrap_or(s);
                s.chars().all(is_word)
            }),
        };
        svc_ok && tls_ok
    })
}

fn backend(service: &str) -> Value {
    let mut parts = service.split(':');
    let name = parts.next().unwrap_or("");
    let port = parts.next().unwrap_or("");
    let port_value = match port.parse::<i32>() {
        Ok(n) => json!({"number": n}),
        Err(_) => json!({"name": port}),
    };
    json!({"service": {"name": name, "port": port_value}})
}

fn ingress(
    name: &str,
    ns: Option<&str>,
    rules: &[String],
    class: Option<&str>,
    default_backend: Option<&str>,
    annotations: &[String],
) -> Result<Value> {
    let default_backend = default_backend.filter(|d| !d.is_empty());
    if default_backend.is_none() && rules.is_empty() {
        return Err(Error::usage(
            "not enough information provided: every ingress has to either specify a default-backend (which catches all traffic) or a list of rules (which catch specific paths)",
        ));
    }
    for r in rules {
        if !valid_rule(r) {
            return Err(Error::usage(format!(
                "rule {r} is invalid and should be in format host/path=svcname:svcport[,tls[=secret]]"
            )));
        }
    }
    let mut annotation_map = Map::new();
    for a in annotations {
        let (k, v) = a
            .split_once('=')
            .ok_or_else(|| Error::usage(format!("annotation {a} is invalid and should be in format key=[value]")))?;
        annotation_map.insert(k.to_string(), json!(v));
    }
    if let Some(d) = default_backend
        && d.split(':').count() != 2
    {
        return Err(Error::usage("default-backend should be in format servicename:serviceport"));
    }
    let mut spec = json!({});
    if let Some(c) = class.filter(|c| !c.is_empty()) {
        spec["ingressClassName"] = json!(c);
    }
    if let Some(d) = default_backend {
        spec["defaultBackend"] = backend(d);
    }
    // Rules: one per host, in order of first appearance, paths appended.
    let mut ingress_rules: Vec<(String, Vec<Value>)> = Vec::new();
    for r in rules {
        let no_tls = r.split(',').next().unwrap_or(r);
        let (host, pathsvc) = no_tls.split_once('/').unwrap_or((no_tls, ""));
        let (path_part, svc) = pathsvc.rsplit_once('=').unwrap_or((pathsvc, ""));
        let mut path = format!("/{path_part}");
        let mut path_type = "Exact";
        if path.ends_with('*') {
            path_type = "Prefix";
            path.pop();
        }
        let p = json!({"path": path, "pathType": path_type, "backend": backend(svc)});
        match ingress_rules.iter_mut().find(|(h, _)| h == host) {
            Some((_, paths)) => paths.push(p),
            None => ingress_rules.push((host.to_string(), vec![p])),
        }
    }
    if !ingress_rules.is_empty() {
        let list: Vec<Value> = ingress_rules
            .into_iter()
            .map(|(host, paths)| {
                let mut rule = json!({"http": {"paths": paths}});
                if !host.is_empty() {
                    rule["host"] = json!(host);
                }
                rule
            })
            .collect();
        spec["rules"] = Value::Array(list);
    }
    // TLS: each host once (its first `,tls` rule counts), grouped into one entry per secret.
    let mut tls: Vec<(String, Vec<String>)> = Vec::new();
    let mut seen_hosts: Vec<String> = Vec::new();
    for r in rules {
        let parts: Vec<&str> = r.split(',').collect();
        if parts.len() == 1 {
            continue;
        }
        let host = parts[0].split('/').next().unwrap_or("").to_string();
        if seen_hosts.contains(&host) {
            continue;
        }
        seen_hosts.push(host.clone());
        let secret = parts.get(1).and_then(|p| p.split_once('=')).map(|(_, s)| s.to_string()).unwrap_or_default();
        match tls.iter_mut().find(|(s, _)| *s == secret) {
            Some((_, hosts)) => hosts.push(host),
            None => tls.push((secret, vec![host])),
        }
    }
    let tls: Vec<Value> = tls
        .into_iter()
        .map(|(secret, hosts)| {
            let mut entry = json!({"hosts": hosts});
            if !secret.is_empty() {
                entry["secretName"] = json!(secret);
            }
            entry
        })
        .collect();
    if !tls.is_empty() {
        spec["tls"] = Value::Array(tls);
    }
    let mut metadata = meta(name, ns);
    if !annotation_map.is_empty() {
        metadata["annotations"] = Value::Object(annotation_map);
    }
    Ok(json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": metadata, "spec": spec,
        "status": {"loadBalancer": {}}}))
}

/// A label selector string as metav1.LabelSelector: equalities in `matchLabels`, the rest in
/// `matchExpressions` (sorted by key, values sorted, as the label parser leaves them).
fn label_selector(text: &str) -> Result<Value> {
    let bad = |why: &str| Error::usage(format!("couldn't parse the selector string \"{text}\": {why}"));
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0i32, 0usize);
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    let mut labels = Map::new();
    let mut exprs: Vec<(String, Value)> = Vec::new();
    for part in parts.into_iter().map(str::trim) {
        if part.is_empty() {
            return Err(bad("found '', expected: identifier"));
        }
        let set_op = |op: &str, rest: &str| -> Result<Option<(String, Vec<String>)>> {
            let Some(idx) = rest.find(&format!(" {op} ")).or_else(|| rest.find(&format!(" {op}("))) else {
                return Ok(None);
            };
            let key = rest[..idx].trim().to_string();
            let vals = rest[idx + op.len() + 1..].trim();
            let inner = vals
                .strip_prefix('(')
                .and_then(|v| v.strip_suffix(')'))
                .ok_or_else(|| bad("expected a parenthesised value list"))?;
            let mut values: Vec<String> =
                inner.split(',').map(|v| v.trim().to_string()).filter(|v| !v.is_empty()).collect();
            values.sort();
            values.dedup();
            Ok(Some((key, values)))
        };
        if let Some((k, vs)) = set_op("notin", part)? {
            exprs.push((k.clone(), json!({"key": k, "operator": "NotIn", "values": vs})));
        } else if let Some((k, vs)) = set_op("in", part)? {
            exprs.push((k.clone(), json!({"key": k, "operator": "In", "values": vs})));
        } else if let Some((k, v)) = part.split_once("!=") {
            let k = k.trim().to_string();
            exprs.push((k.clone(), json!({"key": k, "operator": "NotIn", "values": [v.trim()]})));
        } else if let Some((k, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
            labels.insert(k.trim().to_string(), json!(v.trim()));
        } else if let Some(k) = part.strip_prefix('!') {
            let k = k.trim().to_string();
            exprs.push((k.clone(), json!({"key": k, "operator": "DoesNotExist"})));
        } else {
            exprs.push((part.to_string(), json!({"key": part, "operator": "Exists"})));
        }
    }
    exprs.sort_by(|a, b| a.0.cmp(&b.0));
    let mut sel = json!({});
    if !labels.is_empty() {
        sel["matchLabels"] = Value::Object(labels);
    }
    if !exprs.is_empty() {
        sel["matchExpressions"] = Value::Array(exprs.into_iter().map(|(_, e)| e).collect());
    }
    Ok(sel)
}

/// `create token`: a TokenRequest for the service account, printing the token (or the whole
/// TokenRequest with `-o`).
fn token(
    ctx: &mut Ctx,
    names: &[String],
    audiences: &[String],
    duration: &str,
    bound: (Option<&str>, Option<&str>, Option<&str>),
    output: Option<&str>,
) -> Result<()> {
    let sa = one_name(names, "token")?;
    let format = match output {
        Some(o) => Some(Format::parse(Some(o))?),
        None => None,
    };
    for a in audiences {
        if a.is_empty() {
            return Err(Error::usage("--audience must not be an empty string"));
        }
    }
    let negative = duration.starts_with('-');
    let secs = if negative {
        0
    } else {
        parse_duration(duration).map_err(|_| {
            Error::usage(format!(
                "invalid argument \"{duration}\" for \"--duration\" flag: {}\nSee 'rkubectl create token --help' for usage.",
                go_duration_error(duration)
            ))
        })?
        .as_secs()
    };
    if negative {
        return Err(Error::usage("--duration must be greater than or equal to 0"));
    }
    let (kind, name, uid) = bound;
    let kind = kind.filter(|k| !k.is_empty());
    let mut spec = json!({});
    if !audiences.is_empty() {
        spec["audiences"] = json!(audiences);
    }
    if secs > 0 {
        spec["expirationSeconds"] = json!(secs);
    }
    match kind {
        None => {
            if name.is_some_and(|n| !n.is_empty()) {
                return Err(Error::usage("--bound-object-name can only be set if --bound-object-kind is provided"));
            }
            if uid.is_some_and(|u| !u.is_empty()) {
                return Err(Error::usage("--bound-object-uid can only be set if --bound-object-kind is provided"));
            }
        }
        Some(k) => {
            if !matches!(k, "Pod" | "Secret" | "Node") {
                return Err(Error::usage("supported --bound-object-kind values are Node, Pod, Secret"));
            }
            let n = name
                .filter(|n| !n.is_empty())
                .ok_or_else(|| Error::usage("--bound-object-name is required if --bound-object-kind is provided"))?;
            let mut r = json!({"kind": k, "apiVersion": "v1", "name": n});
            if let Some(u) = uid.filter(|u| !u.is_empty()) {
                r["uid"] = json!(u);
            }
            spec["boundObjectRef"] = r;
        }
    }
    let body = json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
        "metadata": {"creationTimestamp": null}, "spec": spec, "status": {"token": "", "expirationTimestamp": null}});
    let client = ctx.client()?;
    let path = format!("/api/v1/namespaces/{}/serviceaccounts/{}/token", enc(&client.namespace), enc(&sa));
    let resp = client
        .json(Method::POST, &path, "application/json", Some(("application/json", &body)))
        .map_err(|e| reword(e, Some("failed to create token: ")))?;
    match format {
        None => {
            let t = resp["status"]["token"].as_str().unwrap_or("").to_string();
            ctx.println(&t);
        }
        Some(f) => {
            let r = res("authentication.k8s.io", "v1", "TokenRequest", "tokenrequests", true);
            crate::cmd::write::report_written(ctx, &f, output, &resp, &r, "created");
        }
    }
    Ok(())
}
