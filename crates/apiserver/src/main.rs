//! rkube-apiserver: parses flags and runs the server library until SIGTERM/SIGINT.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = match rkube_apiserver::Config::load() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("rkube-apiserver: {e}");
            std::process::exit(64);
        }
    };
    rkube_apiserver::init_tracing(&config.log_level);
    rkube_apiserver::run(config, rkube_apiserver::shutdown_signal()).await
}
