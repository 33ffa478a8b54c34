//! rkube-scheduler: parses flags (or the `--config` YAML) and runs the scheduler until
//! SIGTERM/SIGINT; exits non-zero when it loses the leader Lease, so systemd restarts it as a
//! clean standby.

// Allocation is a third of the daemon's CPU under load; mimalloc cut it by a fifth
// (README, Performance).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config: rkube_scheduler::Config = match rkube_daemon::load_config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("rkube-scheduler: {e}");
            std::process::exit(64);
        }
    };
    rkube_daemon::init_tracing(&config.log_level);
    rkube_scheduler::run(config, rkube_daemon::shutdown_token()).await?;
    Ok(())
}
