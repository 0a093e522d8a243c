//! `cairn job create|status|export`, `cairn ingest` and `cairn worker`: sharded jobs on NATS
//! JetStream (docs/cluster.md).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::{Context, Result};
use cairn::cluster::{self, WorkerOptions};
use cairn::runtime::IoOptions;
use clap::{Args, Subcommand};

use super::store_args::KeyArgs;

/// Where the coordinator is and how to reach it.
#[derive(Debug, Args, Clone)]
pub struct Coordinator {
    /// The NATS servers that coordinate the job: `nats://[USER:PASS@]HOST:PORT[,HOST:PORT…]`
    /// (`tls://` for TLS).
    #[arg(long)]
    coordinator: String,
    /// A NATS credentials file (.creds), so that no secret is on the command line.
    #[arg(long, env = "CAIRN_NATS_CREDS")]
    nats_creds: Option<PathBuf>,
    /// How long the NATS servers may stay unreachable before the command fails; meanwhile it
    /// retries with back-off.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "60s")]
    nats_retry: Duration,
}

impl Coordinator {
    fn io(&self) -> IoOptions {
        IoOptions {
            nats_creds: self.nats_creds.clone(),
            retry_for: self.nats_retry,
            ..Default::default()
        }
    }
}

#[derive(Debug, Args)]
pub struct JobArgs {
    #[command(subcommand)]
    command: JobCommand,
}

#[derive(Debug, Subcommand)]
enum JobCommand {
    /// Create a sharded job from a job file (name, shards, store, pipeline): its plugins and
    /// record go to the coordinator, with its streams and buckets.
    Create {
        #[command(flatten)]
        at: Coordinator,
        /// The job file (TOML: a pipeline with `name`, `shards`, `store`; examples/job.toml).
        #[arg(long)]
        job: PathBuf,
    },
    /// Per shard: owner, epoch, input position, lag, outputs, and whether it is done.
    Status {
        #[command(flatten)]
        at: Coordinator,
        /// The job's name.
        #[arg(long)]
        name: String,
        /// One JSON object per shard, in an array.
        #[arg(long)]
        json: bool,
    },
    /// Write the job's committed output, shard by shard, as JSON Lines.
    Export {
        #[command(flatten)]
        at: Coordinator,
        /// The job's name.
        #[arg(long)]
        name: String,
        /// The file to write (`-`: stdout).
        #[arg(long)]
        output: PathBuf,
    },
}

#[derive(Debug, Args)]
pub struct IngestArgs {
    #[command(flatten)]
    at: Coordinator,
    /// The job's name.
    #[arg(long)]
    name: String,
    /// A JSON Lines file of events; re-running after a crash adds none twice.
    #[arg(long)]
    input: PathBuf,
    /// More input will follow: do not end the job's input (a later run with the file grown
    /// goes on after the lines stored so far; the run without this flag ends it).
    #[arg(long)]
    keep_open: bool,
}

#[derive(Debug, Args)]
pub struct WorkerArgs {
    #[command(flatten)]
    at: Coordinator,
    /// The job's name.
    #[arg(long)]
    name: String,
    /// This worker's id, unique among the job's workers [default: <host name>-<process id>].
    #[arg(long)]
    worker_id: Option<String>,
    /// How long a shard's lease lasts unless renewed (every third of it); a worker that stops
    /// answering loses its shards after this long.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "5s")]
    lease_ttl: Duration,
    /// Leave once every shard of the job is done (else run until SIGINT/SIGTERM).
    #[arg(long)]
    exit_when_done: bool,
    #[command(flatten)]
    key: KeyArgs,
}

pub fn job(args: JobArgs) -> Result<ExitCode> {
    match args.command {
        JobCommand::Create { at, job } => {
            let line = cluster::create_job(&at.coordinator, &job, &at.io(), super::component_cache())?;
            println!("{line}");
        }
        JobCommand::Status { at, name, json } => {
            let shards = cluster::status(&at.coordinator, &name, &at.io())?;
            if json {
                println!("{}", serde_json::to_string_pretty(&shards)?);
            } else {
                println!(
                    "shard  groups    owner                 epoch  position  events_in  outputs  lag  done"
                );
                for s in &shards {
                    println!(
                        "{:>5}  {:>4}-{:<4} {:<20} {:>6} {:>9} {:>10} {:>8} {:>4}  {}",
                        s.shard,
                        s.groups.0,
                        s.groups.1,
                        s.owner.as_deref().unwrap_or("-"),
                        s.epoch,
                        s.position,
                        s.events_in,
                        s.outputs,
                        s.lag,
                        if s.done { "yes" } else { "no" }
                    );
                }
            }
        }
        JobCommand::Export { at, name, output } => {
            let counts = if output.as_os_str() == "-" {
                cluster::export(&at.coordinator, &name, &mut std::io::stdout().lock(), &at.io())?
            } else {
                let file = std::fs::File::create(&output)
                    .with_context(|| format!("creating {}", output.display()))?;
                let mut w = std::io::BufWriter::new(file);
                let c = cluster::export(&at.coordinator, &name, &mut w, &at.io())?;
                std::io::Write::flush(&mut w)?;
                c
            };
            eprintln!(
                "exported {} outputs of job {name} ({} shards)",
                counts.iter().sum::<u64>(),
                counts.len()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn ingest(args: IngestArgs) -> Result<ExitCode> {
    let r = cluster::ingest(
        &args.at.coordinator,
        &args.name,
        &args.input,
        !args.keep_open,
        &args.at.io(),
    )?;
    eprintln!(
        "ingested {} events into job {} ({} lines were there already){}",
        r.published,
        args.name,
        r.skipped,
        match (r.ended, args.keep_open) {
            (true, _) => "; every key group's subject ended",
            (false, true) => "; the input stays open",
            (false, false) => "; the input had already ended",
        }
    );
    Ok(ExitCode::SUCCESS)
}

pub fn worker(args: WorkerArgs) -> Result<ExitCode> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone()).context("could not install the signal handler")?;
    }
    let key = args.key.source()?;
    if matches!(key, cairn::checkpoint::KeySource::Passphrase { .. }) {
        anyhow::bail!(
            "a sharded job's checkpoints are encrypted with a key (--encryption-key-env), not a passphrase: each \
             owner's checkpoints would get a salt of their own"
        );
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_else(|_| "worker".into());
    let worker_id = args
        .worker_id
        .unwrap_or_else(|| format!("{}-{}", host.trim(), std::process::id()));
    let plugin_dir = std::env::var_os("CAIRN_CACHE_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/cairn")))
        .unwrap_or_else(std::env::temp_dir)
        .join("jobs");
    let report = cluster::run_worker(WorkerOptions {
        coordinator: args.at.coordinator.clone(),
        job: args.name,
        worker_id,
        lease_ttl: args.lease_ttl,
        io: args.at.io(),
        key,
        plugin_dir,
        cache: super::component_cache(),
        stop,
        exit_when_done: args.exit_when_done,
    })?;
    eprintln!(
        "worker done: finished shards {:?}, fenced {} times",
        report.finished, report.fenced
    );
    Ok(ExitCode::SUCCESS)
}
