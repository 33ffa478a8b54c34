//! rkube-proxy: parses flags (or the `--config` YAML) and routes Services on this node until
//! SIGTERM/SIGINT. The nftables table stays when it exits, so Services keep working across a
//! restart; `--cleanup` removes it.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config: rkube_proxy::Config = match rkube_daemon::load_config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("rkube-proxy: {e}");
            std::process::exit(64);
        }
    };
    rkube_daemon::init_tracing(&config.log_level);
    if let Err(e) = rkube_proxy::run(config, rkube_daemon::shutdown_token()).await {
        tracing::error!(error = %e, "rkube-proxy failed");
        if matches!(e, rkube_proxy::ProxyError::Flag { .. }) {
            std::process::exit(64);
        }
        return Err(e.into());
    }
    Ok(())
}
