//! Per-invocation state: global flags, the kubeconfig (loaded once), the REST client, the
//! discovery mapper, buffered stdout and whether an error was already reported.

use crate::cli::Global;
use crate::client::Client;
use crate::discovery::{ApiResource, Mapper};
use crate::error::{Error, Result};
use crate::kubeconfig::{Loaded, Overrides, Resolved};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::Duration;

/// State shared by the verbs of one invocation.
pub struct Ctx {
    /// Global flags.
    pub global: Global,
    loaded: Option<Loaded>,
    client: Option<Client>,
    discovery: Option<crate::discovery::Discovery>,
    out: std::io::BufWriter<std::io::Stdout>,
    /// Set when an error was printed and the command should exit 1 at the end.
    pub failed: bool,
}

impl Ctx {
    /// Fresh state for the given flags.
    pub fn new(global: Global) -> Ctx {
        Ctx {
            global,
            loaded: None,
            client: None,
            discovery: None,
            out: std::io::BufWriter::new(std::io::stdout()),
            failed: false,
        }
    }

    /// Flag overrides for kubeconfig resolution.
    pub fn overrides(&self) -> Overrides {
        let g = &self.global;
        // An empty flag value (`--certificate-authority=`) means unset, as in kubectl.
        let set = |v: &Option<String>| v.clone().filter(|s| !s.is_empty());
        Overrides {
            kubeconfig: g.kubeconfig.clone(),
            context: set(&g.context),
            cluster: set(&g.cluster),
            user: set(&g.user),
            namespace: g.namespace.clone(),
            server: set(&g.server),
            token: set(&g.token),
            insecure: g.insecure_skip_tls_verify,
            certificate_authority: set(&g.certificate_authority),
            client_certificate: set(&g.client_certificate),
            client_key: set(&g.client_key),
            tls_server_name: set(&g.tls_server_name),
            username: g.username.clone(),
            password: g.password.clone(),
        }
    }

    /// The kubeconfig chain, loaded on first use.
    pub fn kubeconfig(&mut self) -> Result<&Loaded> {
        if self.loaded.is_none() {
            self.loaded = Some(Loaded::load(self.global.kubeconfig.as_deref())?);
        }
        self.loaded.as_ref().ok_or(Error::Reported)
    }

    /// Forgets the loaded kubeconfig (after writing it).
    pub fn reload_kubeconfig(&mut self) {
        self.loaded = None;
    }

    /// Resolved connection settings.
    pub fn resolved(&mut self) -> Result<Resolved> {
        let ov = self.overrides();
        self.kubeconfig()?.resolve(&ov)
    }

    /// The REST client, built on first use.
    pub fn client(&mut self) -> Result<Client> {
        if let Some(c) = &self.client {
            return Ok(c.clone());
        }
        let resolved = self.resolved()?;
        let timeout = match self.global.request_timeout.as_deref() {
            None | Some("0") | Some("") => None,
            Some(t) => Some(parse_duration(t)?),
        };
        let c = Client::new(&resolved, timeout)?;
        self.client = Some(c.clone());
        Ok(c)
    }

    /// The namespace for namespaced requests (`-n`, the context's, or `default`).
    pub fn namespace(&mut self) -> Result<String> {
        Ok(self.client()?.namespace)
    }

    /// `--cache-dir`, else `~/.kube/cache`.
    pub fn cache_dir(&self) -> PathBuf {
        self.global.cache_dir.clone().unwrap_or_else(|| crate::kubeconfig::home().join(".kube").join("cache"))
    }

    /// Resolves a type argument through discovery (cached across calls in this run).
    pub fn resource(&mut self, arg: &str) -> Result<ApiResource> {
        let client = self.client()?;
        let mut mapper = Mapper::new(&client, Some(self.cache_dir()));
        if let Some(d) = self.discovery.take() {
            mapper = mapper.with(d);
        }
        let r = mapper.resource(arg);
        self.discovery = mapper.into_discovery();
        r
    }

    /// Resolves an object's apiVersion + kind.
    pub fn resource_for_kind(&mut self, api_version: &str, kind: &str) -> Result<ApiResource> {
        let client = self.client()?;
        let mut mapper = Mapper::new(&client, Some(self.cache_dir()));
        if let Some(d) = self.discovery.take() {
            mapper = mapper.with(d);
        }
        let r = mapper.for_kind(api_version, kind);
        self.discovery = mapper.into_discovery();
        r
    }

    /// Full discovery (api-resources, api-versions, `all`).
    pub fn discovery(&mut self, fresh: bool) -> Result<crate::discovery::Discovery> {
        let client = self.client()?;
        let d = if fresh {
            crate::discovery::Discovery::refresh(&client, Some(&self.cache_dir()))?
        } else if let Some(d) = &self.discovery {
            d.clone()
        } else {
            crate::discovery::Discovery::load(&client, Some(&self.cache_dir()))?
        };
        self.discovery = Some(d.clone());
        Ok(d)
    }

    /// Writes to stdout (buffered).
    pub fn print(&mut self, text: &str) {
        let _ = self.out.write_all(text.as_bytes());
    }

    /// Writes a line to stdout.
    pub fn println(&mut self, text: &str) {
        let _ = self.out.write_all(text.as_bytes());
        let _ = self.out.write_all(b"\n");
    }

    /// Flushes stdout (before blocking waits and at exit).
    pub fn flush(&mut self) {
        let _ = self.out.flush();
    }

    /// Prints an error line on stderr now and remembers to exit 1.
    pub fn report(&mut self, e: &Error) {
        self.flush();
        if !matches!(e, Error::Reported) {
            let _ = writeln!(std::io::stderr(), "{e}");
        }
        self.failed = true;
    }

    /// Prints a warning/info line on stderr.
    pub fn eprintln(&mut self, text: &str) {
        self.flush();
        let _ = writeln!(std::io::stderr(), "{text}");
    }

    /// Whether stdout is a terminal (colour, watch refresh).
    pub fn is_terminal(&self) -> bool {
        std::io::stdout().is_terminal()
    }
}

/// Parses Go-style durations: `30s`, `5m`, `1h30m`, `250ms`, a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration> {
    if let Ok(secs) = text.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    rkube_api::duration::parse_go_duration(text).ok_or_else(|| Error::usage(format!("invalid duration \"{text}\"")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s").ok(), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("1h30m").ok(), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("250ms").ok(), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("12").ok(), Some(Duration::from_secs(12)));
        assert!(parse_duration("abc").is_err());
    }
}
