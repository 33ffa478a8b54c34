//! rkube-dns: the cluster DNS server, hosted by rkube-proxy on every node. It answers the
//! names of Services, their endpoints and pods under the cluster domain from memory — a
//! [`Zone`] kept in step by informers on Services and EndpointSlices ([`sync_zone`]), never a
//! per-query API call — and forwards every other name to the node's upstream resolvers
//! ([`Forwarder`]). Served by hickory-server over UDP and TCP ([`DnsServer`]).
//!
//! hickory-server logs every response at INFO under the `hickory_server` target; hosts should
//! filter it (e.g. `info,hickory_server=warn`).

mod config;
mod error;
mod forward;
mod server;
mod sync;
mod zone;

pub use config::{Config, parse_upstream, resolv_conf_nameservers};
pub use error::{Error, ForwardError};
pub use forward::{Forwarder, QueryFlags};
pub use server::{DnsServer, MAX_UDP_PAYLOAD};
pub use sync::{SERVICE_NAME_LABEL, sync_zone};
pub use zone::{Answer, Zone, ZoneSettings, dashed};

use tokio_util::sync::CancellationToken;

/// Serves cluster DNS as `config` says until `token` is cancelled: binds the listeners first
/// (a bad address fails at once), then fills the zone from the API server behind `client`.
/// Cluster names answer SERVFAIL until the first lists have arrived.
pub async fn run(config: Config, client: rkube_client::Client, token: CancellationToken) -> anyhow::Result<()> {
    let zone = Zone::new(zone_settings(&config)?);
    let upstreams = config.upstreams()?;
    if upstreams.is_empty() {
        tracing::warn!("no upstream resolvers: names outside the cluster domain answer SERVFAIL");
    } else {
        tracing::info!(upstreams = ?upstreams, "forwarding names outside the cluster domain");
    }
    let forwarder = Forwarder::new(upstreams, config.dns_forward_timeout);
    let server = DnsServer::start(&config.dns_listen, zone.clone(), forwarder, token.clone()).await?;
    let sync = tokio::spawn({
        let (client, token) = (client.clone(), token.clone());
        async move { sync_zone(&client, zone, token).await }
    });
    let served = server.wait().await;
    // The server only stops early when its sockets fail: stop syncing too.
    token.cancel();
    let _ = sync.await;
    served?;
    Ok(())
}

/// The zone settings `config` describes.
pub fn zone_settings(config: &Config) -> Result<ZoneSettings, Error> {
    let secs = |d: std::time::Duration| u32::try_from(d.as_secs()).unwrap_or(u32::MAX);
    ZoneSettings::new(&config.cluster_domain, secs(config.dns_ttl), secs(config.dns_negative_ttl))
}
