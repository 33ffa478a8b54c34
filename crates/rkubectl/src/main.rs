//! rkubectl: parses the command line and runs it (see the library for everything else).

use clap::Parser;

fn main() {
    let cli = rkubectl::cli::Cli::parse();
    if let Some(level) = cli.global.verbosity.filter(|v| *v > 0) {
        let filter = if level >= 6 { "rkubectl=debug" } else { "rkubectl=info" };
        tracing_subscriber::fmt().with_writer(std::io::stderr).with_env_filter(filter).init();
    }
    std::process::exit(rkubectl::run(cli));
}
