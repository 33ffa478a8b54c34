//! Command-line definition (clap derive): kubectl's verbs and flags, global flags accepted
//! before or after the verb.

use clap::{ArgAction, Args, Parser, Subcommand};
use std::path::PathBuf;

/// rkubectl controls a Kubernetes (or rkube) cluster.
#[derive(Debug, Parser)]
#[command(name = "rkubectl", version, about = "rkubectl controls the Kubernetes cluster manager (rkube's kubectl).")]
pub struct Cli {
    /// Flags every command accepts.
    #[command(flatten)]
    pub global: Global,
    /// The verb.
    #[command(subcommand)]
    pub command: Command,
}

/// Connection and kubeconfig flags.
#[derive(Debug, Clone, Default, Args)]
pub struct Global {
    /// Path to the kubeconfig file to use for CLI requests.
    #[arg(long, global = true)]
    pub kubeconfig: Option<PathBuf>,
    /// The name of the kubeconfig context to use.
    #[arg(long, global = true)]
    pub context: Option<String>,
    /// The name of the kubeconfig cluster to use.
    #[arg(long, global = true)]
    pub cluster: Option<String>,
    /// The name of the kubeconfig user to use.
    #[arg(long, global = true)]
    pub user: Option<String>,
    /// If present, the namespace scope for this CLI request.
    #[arg(short = 'n', long, global = true)]
    pub namespace: Option<String>,
    /// The address and port of the Kubernetes API server.
    #[arg(short = 's', long, global = true)]
    pub server: Option<String>,
    /// Bearer token for authentication to the API server.
    #[arg(long, global = true)]
    pub token: Option<String>,
    /// Username for basic authentication to the API server.
    #[arg(long, global = true)]
    pub username: Option<String>,
    /// Password for basic authentication to the API server.
    #[arg(long, global = true)]
    pub password: Option<String>,
    /// If true, the server's certificate will not be checked for validity.
    #[arg(long, global = true, action = ArgAction::Set, num_args = 0..=1, default_value = "false", default_missing_value = "true", require_equals = true)]
    pub insecure_skip_tls_verify: bool,
    /// Path to a cert file for the certificate authority.
    #[arg(long, global = true)]
    pub certificate_authority: Option<String>,
    /// Path to a client certificate file for TLS.
    #[arg(long, global = true)]
    pub client_certificate: Option<String>,
    /// Path to a client key file for TLS.
    #[arg(long, global = true)]
    pub client_key: Option<String>,
    /// Server name to use for server certificate validation.
    #[arg(long, global = true)]
    pub tls_server_name: Option<String>,
    /// Default cache directory.
    #[arg(long, global = true)]
    pub cache_dir: Option<PathBuf>,
    /// The length of time to wait before giving up on a single server request (e.g. 5s, 1m).
    #[arg(long, global = true)]
    pub request_timeout: Option<String>,
    /// Log level verbosity.
    #[arg(short = 'v', long = "v", global = true)]
    pub verbosity: Option<u8>,
}

/// Output flags shared by many commands.
#[derive(Debug, Clone, Default, Args)]
pub struct OutputArgs {
    /// Output format: json, yaml, name, wide, jsonpath=..., custom-columns=...
    #[arg(short = 'o', long = "output")]
    pub output: Option<String>,
}

/// Manifest flags.
#[derive(Debug, Clone, Default, Args)]
pub struct FileArgs {
    /// Files, directories or `-` (stdin) with manifests.
    #[arg(short = 'f', long = "filename")]
    pub filename: Vec<String>,
    /// Process the directory used in -f recursively.
    #[arg(short = 'R', long)]
    pub recursive: bool,
}

/// kubectl's verbs.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Display one or many resources.
    Get(GetArgs),
    /// Show details of a specific resource or group of resources.
    Describe(DescribeArgs),
    /// Create a resource from a file or from stdin.
    Create(CreateArgs),
    /// Apply a configuration to a resource by file name or stdin.
    Apply(ApplyArgs),
    /// Replace a resource by file name or stdin.
    Replace(CreateArgs),
    /// Edit a resource on the server with the default editor.
    Edit(crate::cmd::edit::EditArgs),
    /// Diff the live version against a would-be applied version.
    Diff(crate::cmd::edit::DiffArgs),
    /// Save an etcd snapshot of the cluster's state to a file and verify it (rkube only).
    Backup(crate::cmd::backup::BackupArgs),
    /// Restore an etcd snapshot into a new etcd data dir (rkube only).
    Restore(crate::cmd::backup::RestoreArgs),
    /// Delete resources by file names, stdin, resources and names, or by resources and label selector.
    Delete(DeleteArgs),
    /// Run a particular image on the cluster.
    Run(RunArgs),
    /// Take a replication controller, service, deployment or pod and expose it as a new Kubernetes service.
    Expose(ExposeArgs),
    /// Set a new size for a deployment, replica set, or replication controller.
    Scale(ScaleArgs),
    /// Update the labels on a resource.
    Label(MetaArgs),
    /// Update the annotations on a resource.
    Annotate(MetaArgs),
    /// Update the taints on one or more nodes.
    Taint(TaintArgs),
    /// Mark node as unschedulable.
    Cordon(NodeArgs),
    /// Mark node as schedulable.
    Uncordon(NodeArgs),
    /// Update a resource using a JSON merge patch.
    Patch(PatchArgs),
    /// Set specific features on objects.
    #[command(subcommand)]
    Set(SetCommand),
    /// Manage the rollout of a resource.
    #[command(subcommand)]
    Rollout(RolloutCommand),
    /// Wait for a specific condition on one or many resources.
    Wait(WaitArgs),
    /// Modify certificate resources (approve or deny CertificateSigningRequests).
    #[command(subcommand)]
    Certificate(crate::cmd::certificate::CertificateCommand),
    /// List events.
    Events(crate::cmd::events::EventsArgs),
    /// Print the logs for a container in a pod.
    Logs(LogsArgs),
    /// Execute a command in a container.
    Exec(crate::cmd::stream::ExecArgs),
    /// Attach to a running container.
    Attach(crate::cmd::stream::AttachArgs),
    /// Copy files and directories to and from containers.
    Cp(crate::cmd::stream::CpArgs),
    /// Forward one or more local ports to a pod.
    PortForward(crate::cmd::portforward::PortForwardArgs),
    /// Display resource (CPU/memory) usage.
    #[command(subcommand)]
    Top(crate::cmd::top::TopCommand),
    /// Drain node in preparation for maintenance.
    Drain(crate::cmd::drain::DrainArgs),
    /// Inspect authorization.
    #[command(subcommand)]
    Auth(crate::cmd::auth::AuthCommand),
    /// Auto-scale a deployment, replica set, stateful set, or replication controller.
    Autoscale(crate::cmd::misc::AutoscaleArgs),
    /// Output shell completion code for the specified shell (bash, zsh, fish).
    Completion(crate::cmd::misc::CompletionArgs),
    /// Modify kubeconfig files.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Print the supported API resources on the server.
    ApiResources(ApiResourcesArgs),
    /// Print the supported API versions on the server, in the form of "group/version".
    ApiVersions,
    /// Print the client and server version information.
    Version(VersionArgs),
    /// Display cluster information.
    ClusterInfo,
    /// Get documentation for a resource.
    Explain(ExplainArgs),
    /// rkube cluster operations kubectl lacks (`cluster init`).
    #[command(subcommand)]
    Cluster(crate::cmd::cluster::ClusterCommand),
    /// Load image archives into nodes' container runtimes (rkube only).
    #[command(subcommand)]
    Image(crate::cmd::image::ImageCommand),
}

/// `get`.
#[derive(Debug, Clone, Default, Args)]
pub struct GetArgs {
    /// TYPE[.VERSION][.GROUP] [NAME ...] | TYPE/NAME ...
    pub resources: Vec<String>,
    /// Output format.
    #[command(flatten)]
    pub output: OutputArgs,
    /// List the requested object(s) across all namespaces.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// Selector (label query) to filter on.
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// Selector (field query) to filter on.
    #[arg(long)]
    pub field_selector: Option<String>,
    /// When printing, show all labels as the last column.
    #[arg(long)]
    pub show_labels: bool,
    /// When using the default or custom-column output format, don't print headers.
    #[arg(long)]
    pub no_headers: bool,
    /// After listing/getting the requested object, watch for changes.
    #[arg(short = 'w', long)]
    pub watch: bool,
    /// Watch for changes to the requested object(s), without listing/getting first.
    #[arg(long)]
    pub watch_only: bool,
    /// Sort list types using this field specification (a JSONPath expression).
    #[arg(long)]
    pub sort_by: Option<String>,
    /// Label keys to print as columns.
    #[arg(short = 'L', long = "label-columns", value_delimiter = ',')]
    pub label_columns: Vec<String>,
    /// If the requested object does not exist the command will return exit code 0.
    #[arg(long)]
    pub ignore_not_found: bool,
    /// If present, list the resource type for the requested object(s).
    #[arg(long)]
    pub show_kind: bool,
    /// Keep managedFields in json/yaml output.
    #[arg(long)]
    pub show_managed_fields: bool,
    /// Return large lists in chunks rather than all at once.
    #[arg(long, default_value_t = 500)]
    pub chunk_size: u32,
    /// Files naming the objects to get.
    #[command(flatten)]
    pub files: FileArgs,
}

/// `describe`.
#[derive(Debug, Clone, Args)]
pub struct DescribeArgs {
    /// TYPE [NAME_PREFIX] | TYPE/NAME
    pub resources: Vec<String>,
    /// If present, list across all namespaces.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// Selector (label query) to filter on.
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// If true, display events related to the described object.
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, default_value = "true", default_missing_value = "true", require_equals = true)]
    pub show_events: bool,
}

/// `create`/`replace`.
#[derive(Debug, Clone, Args)]
pub struct CreateArgs {
    /// Manifests.
    #[command(flatten)]
    pub files: FileArgs,
    /// Output format (name, json, yaml).
    #[command(flatten)]
    pub output: OutputArgs,
    /// Must be "none", "server", or "client".
    #[arg(long, num_args = 0..=1, default_missing_value = "client", require_equals = true)]
    pub dry_run: Option<String>,
    /// Field manager name.
    #[arg(long)]
    pub field_manager: Option<String>,
    /// Create/replace subcommands (`create namespace x`, `create deployment x --image`).
    #[command(subcommand)]
    pub what: Option<CreateWhat>,
}

/// `create <kind>` generators, in their own module.
pub use crate::cmd::generate::CreateWhat;

/// `apply`.
#[derive(Debug, Clone, Args)]
pub struct ApplyArgs {
    /// Manifests.
    #[command(flatten)]
    pub files: FileArgs,
    /// Output format.
    #[command(flatten)]
    pub output: OutputArgs,
    /// Run the apply on the server (server-side apply) and print serverside-applied.
    #[arg(long)]
    pub server_side: bool,
    /// Take ownership of conflicting fields (server-side apply).
    #[arg(long)]
    pub force_conflicts: bool,
    /// Field manager name.
    #[arg(long, default_value = "rkubectl")]
    pub field_manager: String,
    /// Must be "none", "server", or "client".
    #[arg(long, num_args = 0..=1, default_missing_value = "client", require_equals = true)]
    pub dry_run: Option<String>,
}

/// `delete`.
#[derive(Debug, Clone, Default, Args)]
pub struct DeleteArgs {
    /// TYPE NAME... | TYPE/NAME...
    pub resources: Vec<String>,
    /// Manifests naming the objects.
    #[command(flatten)]
    pub files: FileArgs,
    /// Selector (label query) to filter on.
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// Selector (field query) to filter on.
    #[arg(long)]
    pub field_selector: Option<String>,
    /// Delete all resources of the given types in the namespace.
    #[arg(long)]
    pub all: bool,
    /// Across all namespaces.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// background, foreground or orphan.
    #[arg(long, num_args = 0..=1, default_missing_value = "background", require_equals = true)]
    pub cascade: Option<String>,
    /// Seconds given to the resource to terminate gracefully (-1: the object's default).
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    pub grace_period: i64,
    /// Signal resources for immediate shutdown (grace period 1).
    #[arg(long)]
    pub now: bool,
    /// Immediately remove resources from the API (with --grace-period=0).
    #[arg(long)]
    pub force: bool,
    /// Wait for the resources to be gone before returning.
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, default_value = "true", default_missing_value = "true", require_equals = true)]
    pub wait: bool,
    /// Treat "resource not found" as a successful delete.
    #[arg(long)]
    pub ignore_not_found: bool,
    /// How long to wait (e.g. 30s); 0 means a week.
    #[arg(long)]
    pub timeout: Option<String>,
    /// Output mode: `name` prints kind/name only.
    #[command(flatten)]
    pub output: OutputArgs,
}

/// `run`.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Pod name.
    pub name: String,
    /// The image for the container to run.
    #[arg(long)]
    pub image: String,
    /// The restart policy for this Pod: Always, OnFailure, Never.
    #[arg(long, default_value = "Always")]
    pub restart: String,
    /// Comma separated labels to apply to the pod.
    #[arg(short = 'l', long)]
    pub labels: Option<String>,
    /// The port that this container exposes.
    #[arg(long)]
    pub port: Option<String>,
    /// Environment variables to set in the container.
    #[arg(long)]
    pub env: Vec<String>,
    /// Annotations to apply to the pod.
    #[arg(long)]
    pub annotations: Vec<String>,
    /// Use the extra arguments as the command instead of args.
    #[arg(long)]
    pub command: bool,
    /// The image pull policy for the container.
    #[arg(long)]
    pub image_pull_policy: Option<String>,
    /// Must be "none", "server", or "client".
    #[arg(long, num_args = 0..=1, default_missing_value = "client", require_equals = true)]
    pub dry_run: Option<String>,
    /// Output format.
    #[command(flatten)]
    pub output: OutputArgs,
    /// Arguments (or the command with --command) after `--`.
    #[arg(last = true)]
    pub args: Vec<String>,
}

/// `expose`.
#[derive(Debug, Clone, Args)]
pub struct ExposeArgs {
    /// TYPE NAME | TYPE/NAME
    pub resources: Vec<String>,
    /// The port that the service should serve on.
    #[arg(long)]
    pub port: Option<String>,
    /// Name or number of the port on the container the service directs traffic to.
    #[arg(long)]
    pub target_port: Option<String>,
    /// The name for the newly created service.
    #[arg(long)]
    pub name: Option<String>,
    /// Type for this service: ClusterIP, NodePort, LoadBalancer, or ExternalName.
    #[arg(long = "type")]
    pub service_type: Option<String>,
    /// The network protocol for the service to be created.
    #[arg(long, default_value = "TCP")]
    pub protocol: String,
    /// A label selector to use for this service instead of the object's.
    #[arg(long)]
    pub selector: Option<String>,
    /// Output format.
    #[command(flatten)]
    pub output: OutputArgs,
}

/// `scale`.
#[derive(Debug, Clone, Args)]
pub struct ScaleArgs {
    /// TYPE NAME | TYPE/NAME
    pub resources: Vec<String>,
    /// The new desired number of replicas.
    #[arg(long)]
    pub replicas: i64,
    /// Precondition for current size.
    #[arg(long)]
    pub current_replicas: Option<i64>,
    /// Manifests.
    #[command(flatten)]
    pub files: FileArgs,
}

/// `label` / `annotate`.
#[derive(Debug, Clone, Args)]
pub struct MetaArgs {
    /// TYPE NAME KEY=VAL... KEY-...
    pub args: Vec<String>,
    /// Allow existing keys to be overwritten.
    #[arg(long)]
    pub overwrite: bool,
    /// Selector (label query) to filter on.
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// Select all resources of the type.
    #[arg(long)]
    pub all: bool,
    /// Only print the object's current labels/annotations.
    #[arg(long)]
    pub list: bool,
    /// Manifests.
    #[command(flatten)]
    pub files: FileArgs,
}

/// `taint`.
#[derive(Debug, Clone, Args)]
pub struct TaintArgs {
    /// nodes NAME KEY=VAL:EFFECT... | KEY:EFFECT-
    pub args: Vec<String>,
    /// Select all nodes.
    #[arg(long)]
    pub all: bool,
    /// Selector (label query) to filter on.
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// Allow taints to be overwritten.
    #[arg(long)]
    pub overwrite: bool,
}

/// `cordon` / `uncordon`.
#[derive(Debug, Clone, Args)]
pub struct NodeArgs {
    /// Node names.
    pub nodes: Vec<String>,
    /// Selector (label query) to filter on.
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
}

/// `patch`.
#[derive(Debug, Clone, Args)]
pub struct PatchArgs {
    /// TYPE NAME | TYPE/NAME
    pub resources: Vec<String>,
    /// The patch to apply.
    #[arg(short = 'p', long)]
    pub patch: String,
    /// json, merge or strategic.
    #[arg(long = "type", default_value = "strategic")]
    pub patch_type: String,
    /// Output format.
    #[command(flatten)]
    pub output: OutputArgs,
    /// Must be "none", "server", or "client".
    #[arg(long, num_args = 0..=1, default_missing_value = "client", require_equals = true)]
    pub dry_run: Option<String>,
}

/// `set ...`.
#[derive(Debug, Subcommand)]
pub enum SetCommand {
    /// Update the image of a pod template.
    Image(SetImageArgs),
    /// Update environment variables on a pod template.
    Env(crate::cmd::set::SetEnvArgs),
    /// Update resource requests/limits on objects with pod templates.
    Resources(crate::cmd::set::SetResourcesArgs),
    /// Update the service account of a resource.
    #[command(alias = "sa")]
    Serviceaccount(crate::cmd::set::SetServiceAccountArgs),
}

/// `set image`.
#[derive(Debug, Clone, Args)]
pub struct SetImageArgs {
    /// TYPE NAME CONTAINER=IMAGE... | TYPE/NAME CONTAINER=IMAGE...
    pub args: Vec<String>,
}

/// `rollout ...`.
#[derive(Debug, Subcommand)]
pub enum RolloutCommand {
    /// Show the status of the rollout.
    Status(RolloutArgs),
    /// Restart a resource.
    Restart(RolloutArgs),
    /// View rollout history.
    History(RolloutArgs),
    /// Undo a previous rollout.
    Undo(RolloutArgs),
    /// Mark the provided resource as paused.
    Pause(crate::cmd::rollout_pause::PauseArgs),
    /// Resume a paused resource.
    Resume(crate::cmd::rollout_pause::PauseArgs),
}

/// Arguments of `rollout` verbs.
#[derive(Debug, Clone, Args)]
pub struct RolloutArgs {
    /// TYPE NAME | TYPE/NAME
    pub resources: Vec<String>,
    /// Revision for history/undo.
    #[arg(long, default_value_t = 0)]
    pub to_revision: i64,
    /// Revision to show (history).
    #[arg(long, default_value_t = 0)]
    pub revision: i64,
    /// Watch the status until done (status).
    #[arg(short = 'w', long, action = ArgAction::Set, num_args = 0..=1, default_value = "true", default_missing_value = "true", require_equals = true)]
    pub watch: bool,
    /// How long to wait (status), e.g. 5m.
    #[arg(long)]
    pub timeout: Option<String>,
}

/// `wait`.
#[derive(Debug, Clone, Args)]
pub struct WaitArgs {
    /// TYPE NAME | TYPE/NAME...
    pub resources: Vec<String>,
    /// condition=NAME[=VALUE], delete, jsonpath={...}=VALUE, create.
    #[arg(long = "for")]
    pub for_: String,
    /// How long to wait (default 30s).
    #[arg(long, default_value = "30s")]
    pub timeout: String,
    /// Selector (label query) to filter on.
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// Select all resources of the type.
    #[arg(long)]
    pub all: bool,
}

/// `logs`.
#[derive(Debug, Clone, Args)]
pub struct LogsArgs {
    /// POD | TYPE/NAME [CONTAINER]
    pub args: Vec<String>,
    /// Container name.
    #[arg(short = 'c', long)]
    pub container: Option<String>,
    /// Stream the logs.
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Lines of recent log file to display (-1: all; 10 with a selector).
    #[arg(long, allow_negative_numbers = true)]
    pub tail: Option<i64>,
    /// Print the logs of the previous instance of the container.
    #[arg(short = 'p', long)]
    pub previous: bool,
    /// Only return logs newer than a relative duration like 5s, 2m, or 3h.
    #[arg(long)]
    pub since: Option<String>,
    /// Include timestamps on each line.
    #[arg(long)]
    pub timestamps: bool,
    /// Only return logs after a specific date (RFC3339).
    #[arg(long)]
    pub since_time: Option<String>,
    /// Maximum bytes of logs to return.
    #[arg(long)]
    pub limit_bytes: Option<i64>,
    /// Selector (label query) to filter on (pods of several objects).
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// Get all containers' logs in the pod(s).
    #[arg(long, action = clap::ArgAction::Set, num_args = 0..=1, default_value = "false", default_missing_value = "true", require_equals = true)]
    pub all_containers: bool,
    /// Prefix each log line with the log source (pod name and container name).
    #[arg(long, action = clap::ArgAction::Set, num_args = 0..=1, default_value = "false", default_missing_value = "true", require_equals = true)]
    pub prefix: bool,
    /// Maximum number of concurrent logs to follow when using a selector.
    #[arg(long, default_value_t = 5)]
    pub max_log_requests: usize,
}

/// `config ...`.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Display merged kubeconfig settings or a specified kubeconfig file.
    View(ConfigViewArgs),
    /// Describe one or many contexts.
    GetContexts(GetContextsArgs),
    /// Display the clusters defined in the kubeconfig.
    GetClusters,
    /// Display the users defined in the kubeconfig.
    GetUsers,
    /// Display the current-context.
    CurrentContext,
    /// Set the current-context in a kubeconfig file.
    #[command(alias = "use")]
    UseContext {
        /// Context name.
        name: String,
    },
    /// Set a context entry in kubeconfig.
    SetContext(SetContextArgs),
    /// Set a cluster entry in kubeconfig.
    SetCluster(SetClusterArgs),
    /// Set a user entry in kubeconfig.
    SetCredentials(SetCredentialsArgs),
    /// Delete the specified context from the kubeconfig.
    DeleteContext {
        /// Context name.
        name: String,
    },
    /// Rename a context from the kubeconfig file.
    RenameContext {
        /// Old name.
        old: String,
        /// New name.
        new: String,
    },
}

/// `config view`.
#[derive(Debug, Clone, Args)]
pub struct ConfigViewArgs {
    /// Remove all information not used by current-context from the output.
    #[arg(long)]
    pub minify: bool,
    /// Display raw byte data and sensitive data.
    #[arg(long)]
    pub raw: bool,
    /// Flatten the resulting kubeconfig file into self-contained output.
    #[arg(long)]
    pub flatten: bool,
    /// Output format (yaml, json, jsonpath=...).
    #[command(flatten)]
    pub output: OutputArgs,
}

/// `config get-contexts`.
#[derive(Debug, Clone, Args)]
pub struct GetContextsArgs {
    /// Context names.
    pub names: Vec<String>,
    /// Output format: name.
    #[command(flatten)]
    pub output: OutputArgs,
    /// Don't print headers.
    #[arg(long)]
    pub no_headers: bool,
}

/// `config set-context` (`--cluster`, `--user`, `--namespace` are the global flags).
#[derive(Debug, Clone, Args)]
pub struct SetContextArgs {
    /// Context name (omit with --current).
    pub name: Option<String>,
    /// Modify the current context.
    #[arg(long)]
    pub current: bool,
}

/// `config set-cluster` (`--server`, `--certificate-authority`, `--insecure-skip-tls-verify`,
/// `--tls-server-name` are the global flags).
#[derive(Debug, Clone, Args)]
pub struct SetClusterArgs {
    /// Cluster name.
    pub name: String,
    /// Embed certificate data.
    #[arg(long)]
    pub embed_certs: bool,
}

/// `config set-credentials` (`--token`, `--client-certificate`, `--client-key`, `--username`,
/// `--password` are the global flags).
#[derive(Debug, Clone, Args)]
pub struct SetCredentialsArgs {
    /// User name.
    pub name: String,
    /// Embed certificate data.
    #[arg(long)]
    pub embed_certs: bool,
}

/// `api-resources`.
#[derive(Debug, Clone, Args)]
pub struct ApiResourcesArgs {
    /// Output format: wide or name.
    #[command(flatten)]
    pub output: OutputArgs,
    /// true: only namespaced resources; false: only cluster-scoped.
    #[arg(long)]
    pub namespaced: Option<bool>,
    /// Limit to resources in the specified API group.
    #[arg(long)]
    pub api_group: Option<String>,
    /// Limit to resources that support the specified verbs.
    #[arg(long, value_delimiter = ',')]
    pub verbs: Vec<String>,
    /// Don't print headers.
    #[arg(long)]
    pub no_headers: bool,
    /// Sort by name or kind.
    #[arg(long)]
    pub sort_by: Option<String>,
}

/// `version`.
#[derive(Debug, Clone, Args)]
pub struct VersionArgs {
    /// Only print the client version.
    #[arg(long)]
    pub client: bool,
    /// Output format: json or yaml.
    #[command(flatten)]
    pub output: OutputArgs,
}

/// `explain`.
#[derive(Debug, Clone, Args)]
pub struct ExplainArgs {
    /// TYPE[.FIELD...]; exactly one, counted when run so the errors read as kubectl's.
    pub resource: Vec<String>,
    /// Print only the names and types of all fields, all levels deep.
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, default_value = "false", default_missing_value = "true", require_equals = true)]
    pub recursive: bool,
    /// Use this api-version (group/version) of the resource.
    #[arg(long)]
    pub api_version: Option<String>,
    /// Format: plaintext (plaintext-openapiv2 asks the server for OpenAPI v2 protobuf).
    #[arg(short = 'o', long, default_value = "plaintext")]
    pub output: String,
}
