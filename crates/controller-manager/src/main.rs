//! rkube-controller-manager: parses flags (or the `--config` YAML) and runs the controllers
//! until SIGTERM/SIGINT; exits non-zero when it loses the leader Lease, so systemd restarts it
//! as a clean standby.

// Allocation dominates the daemons' CPU under load; see the README's Performance section.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config: rkube_controller_manager::Config = match rkube_daemon::load_config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("rkube-controller-manager: {e}");
            std::process::exit(64);
        }
    };
    rkube_daemon::init_tracing(&config.log_level);
    rkube_controller_manager::run(config, rkube_daemon::shutdown_token()).await?;
    Ok(())
}
