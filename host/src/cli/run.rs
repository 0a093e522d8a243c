use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use cairn::checkpoint::{CheckpointConfig, Codec};
use cairn::runtime::{CheckpointSpec, JobSpec, Triggers, run_job};
use cairn::{Engine, Plugin, store};
use clap::Args;

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The operator: a .wasm component built with cairn-sdk.
    #[arg(long)]
    plugin: PathBuf,
    /// JSON Lines input file, or `-` for stdin.
    #[arg(long)]
    input: String,
    /// JSON Lines output file, or `-` for stdout.
    #[arg(long)]
    output: String,
    /// The operator's configuration: a JSON text, or `@file.json`.
    #[arg(long, default_value = "{}")]
    config: String,
    /// Events per call into the operator.
    #[arg(long, default_value_t = 256)]
    batch_size: usize,
    /// The job's name, recorded in its checkpoints.
    #[arg(long, default_value = "default")]
    name: String,
    #[command(flatten)]
    checkpoint: CheckpointArgs,
}

#[derive(Debug, Args)]
pub struct CheckpointArgs {
    /// Keep checkpoints here (memory:, file:<dir>) and resume from them. Without it a run keeps
    /// no checkpoints.
    #[arg(long)]
    store: Option<String>,
    /// Checkpoint at this interval (e.g. 10s, 500ms). Default 10s when no trigger is given.
    #[arg(long, value_parser = humantime::parse_duration)]
    checkpoint_interval: Option<Duration>,
    /// Checkpoint every this many input events.
    #[arg(long)]
    checkpoint_every: Option<u64>,
    /// Write a full checkpoint after this many deltas.
    #[arg(long, default_value_t = 10)]
    full_every: u32,
    /// Keep this many restorable checkpoints (and the bases they need).
    #[arg(long, default_value_t = 3)]
    max_retained: usize,
    /// Resume from this checkpoint id instead of the newest (point-in-time restore).
    #[arg(long)]
    restore_from: Option<u64>,
    /// Resume even though the plugin or its configuration changed since the checkpoint.
    #[arg(long)]
    accept_plugin_change: bool,
}

/// Read `--config`: inline JSON or `@path`; it must be valid JSON.
pub fn read_config(text: &str) -> Result<String> {
    let json = match text.strip_prefix('@') {
        Some(path) => {
            std::fs::read_to_string(path).with_context(|| format!("could not read --config file {path}"))?
        }
        None => text.to_string(),
    };
    if let Err(e) = serde_json::from_str::<serde_json::Value>(&json) {
        bail!("--config is not valid JSON ({e}); pass a JSON text like '{{\"field\": \"v\"}}' or @file.json");
    }
    Ok(json)
}

fn checkpoint_spec(args: &CheckpointArgs) -> Result<Option<CheckpointSpec>> {
    let Some(url) = &args.store else {
        if args.restore_from.is_some() {
            bail!("--restore-from needs --store: the store that holds the checkpoint");
        }
        return Ok(None);
    };
    let store = store::open(url)?;
    let mut triggers = Triggers {
        interval: args.checkpoint_interval,
        every_events: args.checkpoint_every,
    };
    if triggers.interval.is_none() && triggers.every_events.is_none() {
        triggers.interval = Some(Duration::from_secs(10));
    }
    Ok(Some(CheckpointSpec {
        store,
        codec: Codec::plain(),
        config: CheckpointConfig {
            full_every: args.full_every,
            max_retained: args.max_retained,
        },
        triggers,
        restore_from: args.restore_from,
        accept_plugin_change: args.accept_plugin_change,
    }))
}

pub fn run(args: RunArgs) -> Result<ExitCode> {
    // First, so that a signal during start-up also ends in a clean stop.
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone()).context("could not install the signal handler")?;
    }
    let config = read_config(&args.config)?;
    let checkpoint = checkpoint_spec(&args.checkpoint)?;
    let engine = Engine::new()?;
    let plugin = Plugin::load(&engine, &args.plugin)?;
    let spec = JobSpec {
        name: args.name,
        input: args.input.clone(),
        output: args.output.clone(),
        operators: vec![plugin.operator().config(config)],
        batch_size: args.batch_size,
        checkpoint,
        stop,
    };
    let report = run_job(spec)?;
    let last = report.checkpoints.last().map(|c| c.id);
    tracing::info!(
        events_in = report.stats.events_in,
        events_out = report.stats.events_out,
        restored_from = report.restored_from,
        checkpoints = report.checkpoints.len(),
        last_checkpoint = last,
        "{} -> {} -> {}: {}",
        args.input,
        plugin.name(),
        args.output,
        if report.stopped {
            "stopped on signal"
        } else {
            "done"
        }
    );
    Ok(ExitCode::SUCCESS)
}
