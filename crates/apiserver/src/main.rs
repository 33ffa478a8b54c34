//! rkube-apiserver: parses flags and runs the server library until SIGTERM/SIGINT.

// Allocation is a third of the daemon's CPU under load; mimalloc cut it by a fifth
// (README, Performance).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = match rkube_apiserver::Config::load() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("rkube-apiserver: {e}");
            std::process::exit(64);
        }
    };
    rkube_daemon::init_tracing(&config.log_level);
    rkube_apiserver::run(config, rkube_daemon::shutdown_signal()).await
}
