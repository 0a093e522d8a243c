//! Commands of the `cairn` binary.

mod checkpoints;
mod inspect;
mod new;
mod run;
mod store_args;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

/// Cairn runs stateful stream operators compiled to WebAssembly components.
#[derive(Debug, Parser)]
#[command(name = "cairn", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run an operator over a JSON Lines input, writing its output as JSON Lines.
    Run(Box<run::RunArgs>),
    /// Show what a WebAssembly file imports and exports, and whether it fits Cairn's world.
    Inspect(inspect::InspectArgs),
    /// List, show and verify the checkpoints of a store.
    Checkpoints(checkpoints::CheckpointsArgs),
    /// Create a new plugin crate (an operator with a native test) ready to build for wasm32-wasip2.
    New(new::NewArgs),
}

/// Parse the command line, run the command, and turn an error into a message and exit code 1.
pub fn main() -> ExitCode {
    // Die quietly on a closed pipe (`cairn checkpoints show … | head`) like other CLI tools.
    // SAFETY: setting a signal disposition to the default before any thread is started.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_env("CAIRN_LOG").unwrap_or_else(|_| EnvFilter::new("info")))
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
    let result = match cli.command {
        Command::Run(args) => run::run(*args),
        Command::Inspect(args) => inspect::inspect(args),
        Command::Checkpoints(args) => checkpoints::checkpoints(args),
        Command::New(args) => new::new(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
