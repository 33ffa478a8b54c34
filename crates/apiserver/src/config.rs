//! Flags of rkube-apiserver, each also settable from a YAML config file (`--config`), with
//! kube-apiserver's names where the meaning is the same.

use clap::Parser;
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

/// Command-line flags; every flag may also be given as a key of the `--config` file.
#[derive(Debug, Clone, Parser, Deserialize)]
#[command(name = "rkube-apiserver", version, about = "rkube API server: Kubernetes REST and gRPC API over etcd")]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct Config {
    /// YAML file whose keys are these flags' long names (flags on the command line win).
    #[arg(long)]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// etcd client URLs.
    #[arg(long, value_delimiter = ',', default_value = "http://127.0.0.1:2379")]
    pub etcd_servers: Vec<String>,
    /// Key prefix of every object in etcd.
    #[arg(long, default_value = "/registry")]
    pub etcd_prefix: String,
    /// How often etcd is compacted (history older than one interval is dropped); 0 disables.
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    #[serde(deserialize_with = "de_duration")]
    pub etcd_compaction_interval: Duration,
    /// Address to listen on.
    #[arg(long, default_value = "0.0.0.0")]
    pub bind_address: String,
    /// Port serving REST and gRPC (plain HTTP until TLS is configured).
    #[arg(long, default_value_t = 6443)]
    pub secure_port: u16,
    /// CIDR Service ClusterIPs are allocated from.
    #[arg(long, default_value = "10.96.0.0/12")]
    pub service_cluster_ip_range: String,
    /// Largest accepted request body.
    #[arg(long, default_value_t = 3 * 1024 * 1024)]
    pub max_request_body_bytes: usize,
    /// Bytes of recent events the watch cache keeps per resource.
    #[arg(long, default_value_t = 64 * 1024 * 1024)]
    pub watch_cache_window_bytes: usize,
    /// Interval between watch bookmarks for watchers that allow them.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    #[serde(deserialize_with = "de_duration")]
    pub watch_bookmark_interval: Duration,
    /// Log filter (tracing EnvFilter syntax), e.g. "info" or "rkube_apiserver=debug".
    #[arg(long, default_value = "info")]
    pub log_level: String,
}

impl Default for Config {
    fn default() -> Self {
        Config::parse_from(["rkube-apiserver"])
    }
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
    Ok(Duration::from_secs_f64(secs))
}

fn de_duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    parse_duration(&s).map_err(serde::de::Error::custom)
}

impl Config {
    /// Parses flags, then fills every flag not given on the command line from the config file.
    pub fn load() -> anyhow::Result<Config> {
        let matches = <Config as clap::CommandFactory>::command().get_matches();
        let cli = <Config as clap::FromArgMatches>::from_arg_matches(&matches)?;
        let Some(path) = cli.config.clone() else { return Ok(cli) };
        let text = std::fs::read_to_string(&path).map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
        let mut file: Config =
            serde_saphyr::from_str(&text).map_err(|e| anyhow::anyhow!("parsing {}: {e}", path.display()))?;
        file.config = Some(path);
        // A flag given on the command line overrides the file; defaults do not.
        macro_rules! cli_wins {
            ($($field:ident),*) => {$(
                if matches.value_source(stringify!($field)) == Some(clap::parser::ValueSource::CommandLine) {
                    file.$field = cli.$field.clone();
                }
            )*};
        }
        cli_wins!(
            etcd_servers,
            etcd_prefix,
            etcd_compaction_interval,
            bind_address,
            secure_port,
            service_cluster_ip_range,
            max_request_body_bytes,
            watch_cache_window_bytes,
            watch_bookmark_interval,
            log_level
        );
        Ok(file)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("7").unwrap(), Duration::from_secs(7));
        assert!(parse_duration("5x").is_err());
    }

    #[test]
    fn config_file_keys_are_flag_names() {
        let cfg: Config = serde_saphyr::from_str(
            "etcd-servers: [\"http://10.0.0.1:2379\"]\nsecure-port: 7443\netcd-compaction-interval: 1m\n",
        )
        .unwrap();
        assert_eq!(cfg.etcd_servers, vec!["http://10.0.0.1:2379".to_string()]);
        assert_eq!(cfg.secure_port, 7443);
        assert_eq!(cfg.etcd_compaction_interval, Duration::from_secs(60));
        assert_eq!(cfg.bind_address, "0.0.0.0");
        assert!(serde_saphyr::from_str::<Config>("bogus: 1\n").is_err());
    }
}
