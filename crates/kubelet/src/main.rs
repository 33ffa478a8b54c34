//! rkube-kubelet: parses flags (or the `--config` YAML) and runs the kubelet until SIGTERM/SIGINT.
//! A stopped kubelet leaves its containers running; the next start adopts them.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config: rkube_kubelet::Config = match rkube_daemon::load_config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("rkube-kubelet: {e}");
            std::process::exit(64);
        }
    };
    rkube_daemon::init_tracing(&config.log_level);
    rkube_kubelet::run(config, rkube_daemon::shutdown_token()).await?;
    Ok(())
}
