//! rkubectl owns rkube's command-line client: kubectl's verbs, kubeconfig handling and output
//! shapes over the Kubernetes REST API (HTTP/JSON, never rkube's gRPC), so it works against any
//! Kubernetes API server. `main.rs` only parses flags; everything else lives here.

pub mod cli;
pub mod client;
pub mod cmd;
pub mod ctx;
pub mod discovery;
pub mod error;
pub mod kubeconfig;
pub mod manifest;
pub mod policy;
pub mod print;
pub mod progress;
pub mod resource;
pub mod term;
pub mod ws;

use std::io::Write as _;

/// Runs one parsed command line and returns the process exit code (0 ok, 1 on errors).
pub fn run(cli: cli::Cli) -> i32 {
    let mut ctx = ctx::Ctx::new(cli.global);
    let result = cmd::dispatch(&mut ctx, cli.command);
    ctx.flush();
    match result {
        Ok(()) => {
            if ctx.failed {
                1
            } else {
                0
            }
        }
        Err(error::Error::Reported) => 1,
        Err(error::Error::Exit { code, message }) => {
            if !message.is_empty() {
                let _ = writeln!(std::io::stderr(), "{message}");
            }
            code
        }
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "{e}");
            1
        }
    }
}
