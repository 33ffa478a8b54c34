//! rkube-proxy: makes Services work on a node. Informers on Services and EndpointSlices feed
//! an I/O-free model ([`model`]) and ruleset ([`rules`]); [`nft`] moves one nftables table
//! owned by the proxy to that ruleset with one atomic transaction per sync, rewriting only
//! what changed. The same process hosts the cluster DNS server (crate `rkube-dns`) and routes
//! the cluster DNS Service IP to it, and enforces NetworkPolicies for the node's pods in a
//! second table ([`netpol`]).

pub mod config;
pub mod conntrack;
pub mod dns;
pub mod error;
pub mod metrics;
pub mod model;
pub mod netpol;
pub mod nft;
pub mod pacer;
pub mod proxier;
pub mod rules;
pub mod run;
pub mod sysctl;

pub use config::Config;
pub use error::ProxyError;
pub use proxier::{Proxier, SyncStats};
pub use rules::RulesConfig;
pub use run::run;
