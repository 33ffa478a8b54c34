//! The plumbing every rkube daemon's `main` shares, so mains stay thin: flags that may also
//! come from a YAML config file, the tracing subscriber, SIGTERM/SIGINT handling, Go-style
//! durations, the `/healthz`, `/readyz` and `/metrics` endpoints, and HTTP(S) serving.

pub mod serve;
pub mod upgrade;

use serde_json::Value;
use std::ffi::OsString;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Why a daemon's configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("reading {path}: {message}")]
    Read {
        /// The file.
        path: String,
        /// The OS error.
        message: String,
    },
    /// The config file is not a YAML mapping of flag names to values.
    #[error("parsing {path}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// A flag (from the command line or the file) was rejected.
    #[error("{0}")]
    Flags(#[from] clap::Error),
}

/// Parses the command line into `C`; when it names a YAML file with `--config`, that file's
/// keys are read as flags (`secure-port: 7443` is `--secure-port=7443`), and flags given on the
/// command line win over the file. Unknown keys are errors, as unknown flags are.
/// `--help` and `--version` print and exit here, as clap does.
pub fn load_config<C: clap::Parser>() -> Result<C, ConfigError> {
    match load_config_from::<C>(std::env::args_os().collect()) {
        Err(ConfigError::Flags(e))
            if matches!(e.kind(), clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion) =>
        {
            e.exit()
        }
        other => other,
    }
}

/// [`load_config`] over explicit arguments (the first is the program name).
pub fn load_config_from<C: clap::Parser>(args: Vec<OsString>) -> Result<C, ConfigError> {
    // `args_override_self` makes the later occurrence of a flag win, so the file's flags go
    // first and the command line's after them.
    let command = || C::command().args_override_self(true);
    let first = command().try_get_matches_from(&args)?;
    let file = first.try_get_one::<std::path::PathBuf>("config").ok().flatten().cloned();
    let Some(path) = file else { return Ok(C::from_arg_matches(&first)?) };
    let mut merged = vec![args.first().cloned().unwrap_or_else(|| OsString::from("daemon"))];
    merged.extend(file_flags(&path)?.into_iter().map(OsString::from));
    merged.extend(args.into_iter().skip(1));
    let matches = command().try_get_matches_from(merged)?;
    Ok(C::from_arg_matches(&matches)?)
}

/// The flags a config file stands for.
fn file_flags(path: &Path) -> Result<Vec<String>, ConfigError> {
    let shown = path.display().to_string();
    let text =
        std::fs::read_to_string(path).map_err(|e| ConfigError::Read { path: shown.clone(), message: e.to_string() })?;
    let parse_error = |message: String| ConfigError::Parse { path: shown.clone(), message };
    let doc: Value = serde_saphyr::from_str(&text).map_err(|e| parse_error(e.to_string()))?;
    let map = match doc {
        Value::Object(m) => m,
        Value::Null => return Ok(Vec::new()),
        _ => return Err(parse_error("expected a mapping of flag names to values".into())),
    };
    let mut flags = Vec::new();
    for (key, value) in map {
        if key == "config" {
            return Err(parse_error("a config file cannot name another config file".into()));
        }
        let text = match value {
            Value::String(s) => s,
            Value::Bool(b) => b.to_string(),
            Value::Number(n) => n.to_string(),
            Value::Array(items) => items
                .iter()
                .map(|v| match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect::<Vec<_>>()
                .join(","),
            Value::Null => continue,
            Value::Object(_) => return Err(parse_error(format!("{key}: expected a value, not a mapping"))),
        };
        flags.push(format!("--{key}={text}"));
    }
    Ok(flags)
}

/// Parses "300ms", "10s", "5m", "1h" or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().map_err(|_| format!("invalid duration {s:?}"))?;
    let secs = match unit {
        "" | "s" => n,
        "ms" => n / 1000.0,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("invalid duration unit in {s:?}")),
    };
    Duration::try_from_secs_f64(secs).map_err(|e| format!("invalid duration {s:?}: {e}"))
}

/// Installs the tracing subscriber (logs to stderr, colour only on a terminal).
pub fn init_tracing(filter: &str) {
    let filter =
        tracing_subscriber::EnvFilter::try_new(filter).unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init();
}

/// Completes on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

/// A token cancelled on SIGTERM or SIGINT.
pub fn shutdown_token() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        t.cancel();
    });
    token
}

/// The flags every daemon that talks to the API server shares (flattened into its own).
#[derive(Debug, Clone, clap::Args)]
pub struct ApiServerFlags {
    /// YAML file whose keys are these flags' long names (flags on the command line win).
    #[arg(long)]
    pub config: Option<std::path::PathBuf>,
    /// API server URL; overrides the kubeconfig's server.
    #[arg(long)]
    pub master: Option<String>,
    /// kubeconfig for the API server address (default: $KUBECONFIG, then ~/.kube/config, then
    /// http://127.0.0.1:6443).
    #[arg(long)]
    pub kubeconfig: Option<std::path::PathBuf>,
}

impl ApiServerFlags {
    /// The API server URL: `--master`, else the kubeconfig's server, else the local default.
    pub fn server(&self) -> Result<String, rkube_client::ClientError> {
        Ok(self.kubeconfig()?.server)
    }

    /// Server and credentials: the kubeconfig's context with `--master` as its server.
    pub fn kubeconfig(&self) -> Result<rkube_client::Kubeconfig, rkube_client::ClientError> {
        rkube_client::Kubeconfig::for_daemon(self.master.as_deref(), self.kubeconfig.as_deref())
    }

    /// A client of the API server with this daemon's credentials.
    pub fn client(&self) -> Result<rkube_client::Client, rkube_client::ClientError> {
        rkube_client::Client::from_kubeconfig(&self.kubeconfig()?)
    }
}

/// This machine's IPv4 address towards other machines: the source address the kernel would
/// pick for an outside destination (no packet is sent); loopback when there is no route.
pub fn node_address() -> std::net::Ipv4Addr {
    let probe = || -> std::io::Result<std::net::IpAddr> {
        let s = std::net::UdpSocket::bind("0.0.0.0:0")?;
        s.connect("10.255.255.255:9")?;
        Ok(s.local_addr()?.ip())
    };
    match probe() {
        Ok(std::net::IpAddr::V4(ip)) => ip,
        _ => std::net::Ipv4Addr::LOCALHOST,
    }
}

/// Whether the daemon is ready (`/readyz`); `/healthz` answers ok while the process serves.
#[derive(Clone, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    /// Marks the daemon ready or not.
    pub fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::Relaxed);
    }

    /// True when ready.
    pub fn get(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// Serves `/healthz`, `/livez`, `/readyz` and `/metrics` (Prometheus text from `metrics`) on
/// `address` until `cancel` fires. Returns the bound address (port 0 picks a free one).
pub async fn serve_health(
    address: &str,
    readiness: Readiness,
    metrics: impl Fn() -> String + Send + Sync + 'static,
    cancel: CancellationToken,
) -> std::io::Result<std::net::SocketAddr> {
    use axum::routing::get;
    let listener = tokio::net::TcpListener::bind(address).await?;
    let local = listener.local_addr()?;
    let metrics = Arc::new(metrics);
    let app = axum::Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/livez", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(move || {
                let ready = readiness.get();
                async move {
                    if ready {
                        (axum::http::StatusCode::OK, "ok")
                    } else {
                        (axum::http::StatusCode::SERVICE_UNAVAILABLE, "not ready")
                    }
                }
            }),
        )
        .route(
            "/metrics",
            get(move || {
                let body = metrics();
                async move { ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], body) }
            }),
        );
    tokio::spawn(async move {
        let served = axum::serve(listener, app).with_graceful_shutdown(async move { cancel.cancelled().await }).await;
        if let Err(e) = served {
            tracing::error!(error = %e, "health server failed");
        }
    });
    Ok(local)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser, Debug)]
    struct Flags {
        #[arg(long)]
        config: Option<std::path::PathBuf>,
        #[arg(long, default_value_t = 1)]
        port: u16,
        #[arg(long, default_value = "a")]
        name: String,
        #[arg(long, value_delimiter = ',')]
        servers: Vec<String>,
        #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
        leader_elect: bool,
        #[arg(long, default_value = "10s", value_parser = parse_duration)]
        period: Duration,
    }

    fn args(list: &[&str]) -> Vec<OsString> {
        std::iter::once("prog").chain(list.iter().copied()).map(OsString::from).collect()
    }

    #[test]
    fn file_values_apply_and_command_line_wins() {
        let dir = std::env::temp_dir().join(format!("rkube-daemon-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("c.yaml");
        std::fs::write(&file, "port: 7\nname: fromfile\nservers: [x, z]\nleader-elect: false\nperiod: 2m\n").unwrap();
        let f: Flags = load_config_from(args(&["--config", file.to_str().unwrap(), "--name", "cli"])).unwrap();
        assert_eq!(f.port, 7);
        assert_eq!(f.name, "cli");
        assert_eq!(f.servers, vec!["x", "z"]);
        assert!(!f.leader_elect);
        assert_eq!(f.period, Duration::from_secs(120));

        std::fs::write(&file, "bogus: 1\n").unwrap();
        let e = load_config_from::<Flags>(args(&["--config", file.to_str().unwrap()])).unwrap_err();
        assert!(e.to_string().contains("bogus"), "{e}");
        std::fs::write(&file, "port: [1\n").unwrap();
        assert!(matches!(
            load_config_from::<Flags>(args(&["--config", file.to_str().unwrap()])),
            Err(ConfigError::Parse { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn without_a_file_flags_parse_as_usual() {
        let f: Flags = load_config_from(args(&["--port", "9"])).unwrap();
        assert_eq!((f.port, f.name.as_str()), (9, "a"));
        assert!(load_config_from::<Flags>(args(&["--port", "x"])).is_err());
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("7").unwrap(), Duration::from_secs(7));
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("1e400").is_err());
    }
}
