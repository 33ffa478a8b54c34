//! Errors of rkube-proxy.

/// What can go wrong while proxying.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// `nft` could not be run at all.
    #[error("cannot run nft (is the nftables package installed?): {message}")]
    NftMissing {
        /// The OS error.
        message: String,
    },
    /// `nft` rejected a command or script.
    #[error("{command} failed: {message}")]
    Nft {
        /// The command line.
        command: String,
        /// What nft printed.
        message: String,
    },
    /// A flag has a value the proxy cannot use.
    #[error("invalid --{flag} {value:?}: {reason}")]
    Flag {
        /// The flag's name.
        flag: &'static str,
        /// The value given.
        value: String,
        /// Why it is unusable.
        reason: String,
    },
    /// The API server could not be reached or refused a request.
    #[error(transparent)]
    Client(#[from] rkube_client::ClientError),
    /// The health endpoint could not be served.
    #[error("serving health on {address}: {source}")]
    Health {
        /// The address.
        address: String,
        /// The OS error.
        source: std::io::Error,
    },
}
