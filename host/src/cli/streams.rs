//! `cairn cat` (copy events between any input and output) and `cairn stream create`.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::{Context, Result};
use cairn::runtime::io::{Delivery, IoOptions, Opening, copy, shown};
use clap::{Args, Subcommand};

#[derive(Debug, Args)]
pub struct CatArgs {
    /// Where to read: a JSON Lines file, `-` for stdin, or `nats://HOST:PORT/STREAM[?subject=…]`.
    #[arg(long)]
    input: String,
    /// Where to write: a JSON Lines file, `-` for stdout, or `nats://HOST:PORT/SUBJECT`
    /// (each event published and acknowledged).
    #[arg(long)]
    output: String,
    /// With a stream input: keep reading once caught up, until SIGINT/SIGTERM.
    #[arg(long)]
    follow: bool,
    /// Events read before each write (1: publish every line as it comes from a pipe).
    #[arg(long, default_value_t = 1000)]
    batch_size: u64,
    /// With a stream input that has caught up: how long to wait for more before writing.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "100ms")]
    batch_wait: Duration,
    /// A NATS credentials file.
    #[arg(long, env = "CAIRN_NATS_CREDS")]
    nats_creds: Option<std::path::PathBuf>,
}

#[derive(Debug, Args)]
pub struct StreamArgs {
    #[command(subcommand)]
    command: StreamCommand,
}

#[derive(Debug, Subcommand)]
enum StreamCommand {
    /// Create a JetStream stream (or update it to these settings).
    Create(CreateArgs),
}

#[derive(Debug, Args)]
struct CreateArgs {
    /// The stream: `nats://HOST:PORT/NAME`.
    url: String,
    /// The subjects it captures, comma-separated (for a job's output: `OUT,OUT.commit.>`).
    #[arg(long, value_delimiter = ',', required = true)]
    subjects: Vec<String>,
    /// Allow atomic batch publishes (an exactly-once output needs them).
    #[arg(long)]
    allow_atomic: bool,
    /// The server's duplicate window (e.g. 2m) [default: the server's].
    #[arg(long, value_parser = humantime::parse_duration)]
    duplicate_window: Option<Duration>,
    /// Keep messages in memory instead of files.
    #[arg(long)]
    memory: bool,
    /// Keep at most this many messages (the oldest are removed) [default: no limit].
    #[arg(long)]
    max_messages: Option<i64>,
    /// A NATS credentials file.
    #[arg(long, env = "CAIRN_NATS_CREDS")]
    nats_creds: Option<std::path::PathBuf>,
}

pub fn cat(args: CatArgs) -> Result<ExitCode> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone()).context("could not install the signal handler")?;
    }
    let io = IoOptions {
        nats_creds: args.nats_creds,
        delivery: Delivery::AtLeastOnce,
        batch_wait: args.batch_wait,
        ..IoOptions::default()
    };
    let how = Opening {
        limits: Default::default(),
        job: "cat",
        batch_size: args.batch_size.max(1),
        io: &io,
    };
    let n = copy(&args.input, &args.output, how, args.follow, &stop)?;
    eprintln!("{n} events: {} -> {}", shown(&args.input), shown(&args.output));
    Ok(ExitCode::SUCCESS)
}

#[cfg(feature = "nats")]
pub fn stream(args: StreamArgs) -> Result<ExitCode> {
    match args.command {
        StreamCommand::Create(a) => {
            let io = IoOptions {
                nats_creds: a.nats_creds,
                retry_for: Duration::from_secs(10),
                ..IoOptions::default()
            };
            let spec = cairn::runtime::nats::StreamSpec {
                subjects: a.subjects,
                allow_atomic: a.allow_atomic,
                duplicate_window: a.duplicate_window,
                memory: a.memory,
                max_messages: a.max_messages,
            };
            let line = cairn::runtime::nats::create_stream(&a.url, &spec, &io).map_err(anyhow::Error::msg)?;
            println!("{line}");
            Ok(ExitCode::SUCCESS)
        }
    }
}
