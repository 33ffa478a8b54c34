//! rkube-ingress: parses flags (or the `--config` YAML) and runs the ingress controller until
//! SIGTERM/SIGINT, then lets open requests finish.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config: rkube_ingress::Config = match rkube_daemon::load_config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("rkube-ingress: {e}");
            std::process::exit(64);
        }
    };
    rkube_daemon::init_tracing(&config.log_level);
    rkube_ingress::run(config, rkube_daemon::shutdown_token()).await?;
    Ok(())
}
