//! Commands of the `cairn` binary.

mod build;
mod checkpoints;
mod componentize;
mod hints;
mod inspect;
#[cfg(feature = "nats")]
mod job;
mod new;
mod run;
mod state;
mod store_args;
mod streams;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

/// Cairn runs stateful stream operators compiled to WebAssembly components.
#[derive(Debug, Parser)]
#[command(name = "cairn", version, about)]
struct Cli {
    /// How the log (stderr) is written: `text` for people, `json` (one object per line, the
    /// same fields) for log shippers.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

/// The log's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run operators over an input (a JSON Lines file, stdin, a NATS stream), writing their
    /// output (a file, stdout, a NATS subject).
    Run(Box<run::RunArgs>),
    /// Copy events from any input to any output (e.g. a JSON Lines file into a NATS stream, or
    /// a stream's messages into a file).
    Cat(streams::CatArgs),
    /// Manage NATS JetStream streams (create one for a job's input or output).
    #[cfg(feature = "nats")]
    Stream(streams::StreamArgs),
    /// Sharded jobs on NATS JetStream: create one, see where its shards stand, export its output.
    #[cfg(feature = "nats")]
    Job(job::JobArgs),
    /// Route a JSON Lines file's events to a sharded job's input (safe to re-run).
    #[cfg(feature = "nats")]
    Ingest(job::IngestArgs),
    /// Run shards of a sharded job: take leases, process, commit; hand over and fail over.
    #[cfg(feature = "nats")]
    Worker(job::WorkerArgs),
    /// Show what a WebAssembly file imports and exports, and whether it fits Cairn's world.
    Inspect(inspect::InspectArgs),
    /// List, show and verify the checkpoints of a store; pin savepoints.
    Checkpoints(checkpoints::CheckpointsArgs),
    /// An operator's state: export it from a checkpoint or savepoint as JSON Lines, import such
    /// lines as a checkpoint, get one entry.
    State(state::StateArgs),
    /// Create a new plugin crate (an operator with a native test) ready to build for wasm32-wasip2.
    New(new::NewArgs),
    /// Build the operator project in a directory (its cairn.toml says how); prints the
    /// component's path as the last line.
    Build(build::BuildArgs),
    /// Make a component of a core WebAssembly module that carries its component type (what a
    /// C project's build does after clang; like `wasm-tools component new`).
    Componentize(componentize::ComponentizeArgs),
}

/// The compiled-component cache the binary uses: `$CAIRN_CACHE_DIR`, else
/// `$XDG_CACHE_HOME/cairn/components`, else `$HOME/.cache/cairn/components`; none when
/// `CAIRN_CACHE=off` or no location is known.
pub fn component_cache() -> Option<cairn::engine::ComponentCache> {
    use std::path::{Path, PathBuf};
    if std::env::var("CAIRN_CACHE").is_ok_and(|v| v == "off") {
        return None;
    }
    if let Some(d) = std::env::var_os("CAIRN_CACHE_DIR") {
        return Some(cairn::engine::ComponentCache::new(d));
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache")))?;
    Some(cairn::engine::ComponentCache::new(base.join("cairn/components")))
}

/// Parse the command line, run the command, and turn an error into a message and exit code 1.
pub fn main() -> ExitCode {
    // Die quietly on a closed pipe (`cairn checkpoints show … | head`) like other CLI tools.
    // SAFETY: setting a signal disposition to the default before any thread is started.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    // Colour only on a terminal, and never when NO_COLOR is set (https://no-color.org).
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    // The NATS client logs every (re)connect at info: our own messages say what matters.
    let filter =
        EnvFilter::try_from_env("CAIRN_LOG").unwrap_or_else(|_| EnvFilter::new("info,async_nats=warn"));
    let log = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    match cli.log_format {
        LogFormat::Text => log.with_ansi(colour).init(),
        LogFormat::Json => log.json().flatten_event(true).init(),
    }
    let format = cli.log_format;
    let result = match cli.command {
        Command::Run(args) => run::run(*args, format),
        Command::Inspect(args) => inspect::inspect(args),
        #[cfg(feature = "nats")]
        Command::Job(args) => job::job(args),
        #[cfg(feature = "nats")]
        Command::Ingest(args) => job::ingest(args),
        #[cfg(feature = "nats")]
        Command::Worker(args) => job::worker(args),
        Command::Cat(args) => streams::cat(args),
        #[cfg(feature = "nats")]
        Command::Stream(args) => streams::stream(args),
        Command::Checkpoints(args) => checkpoints::checkpoints(args),
        Command::State(args) => state::state(args),
        Command::New(args) => new::new(args),
        Command::Build(args) => build::build(args),
        Command::Componentize(args) => componentize::componentize(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            let hint = hints::hint(&e);
            match format {
                LogFormat::Text => {
                    eprintln!("error: {e:#}");
                    if let Some(h) = hint {
                        eprintln!("hint: {h}");
                    }
                }
                LogFormat::Json => eprintln!(
                    "{}",
                    serde_json::json!({"level": "ERROR", "error": format!("{e:#}"), "hint": hint})
                ),
            }
            ExitCode::FAILURE
        }
    }
}
