//! The errors of the cluster DNS server.

use std::net::SocketAddr;

/// Why the DNS server could not be configured or started.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `--cluster-domain` is not a DNS name.
    #[error("invalid cluster domain {domain:?}: {message}")]
    Domain {
        /// The value given.
        domain: String,
        /// What is wrong with it.
        message: String,
    },
    /// An upstream resolver is neither `ip` nor `ip:port`.
    #[error("invalid upstream resolver {0:?}: expected an IP address, optionally with :port")]
    Upstream(String),
    /// A listen address could not be bound.
    #[error("binding {protocol} {addr}: {source}")]
    Bind {
        /// "udp" or "tcp".
        protocol: &'static str,
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// No listen address was given.
    #[error("no listen address for the DNS server")]
    NoListenAddress,
    /// The server's sockets failed while serving.
    #[error("serving DNS: {0}")]
    Serve(String),
}

/// Why a query could not be forwarded to an upstream resolver.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// There are no upstream resolvers.
    #[error("no upstream resolvers configured")]
    NoUpstreams,
    /// The upstream did not answer in time.
    #[error("upstream {0} timed out")]
    Timeout(SocketAddr),
    /// Sending or receiving failed.
    #[error("upstream {upstream}: {source}")]
    Io {
        /// The upstream.
        upstream: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The query could not be encoded or the reply decoded.
    #[error("upstream {upstream}: bad message: {message}")]
    Message {
        /// The upstream.
        upstream: SocketAddr,
        /// What is wrong.
        message: String,
    },
}
