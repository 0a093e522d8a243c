use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use cairn::runtime::{self, JsonlSink, JsonlSource, Pipeline, RunOptions};
use cairn::{Engine, Plugin};
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

pub fn run(args: RunArgs) -> Result<ExitCode> {
    let config = read_config(&args.config)?;
    let engine = Engine::new()?;
    let plugin = Plugin::load(&engine, &args.plugin)?;
    let op = plugin.operator().config(config).build()?;
    let mut pipeline = Pipeline::new(vec![op]);
    let mut source = JsonlSource::open(&args.input)?;
    let mut sink = JsonlSink::create(&args.output)?;
    let options = RunOptions {
        batch_size: args.batch_size,
    };
    let stats = runtime::run(&mut pipeline, &mut source, &mut sink, &options)?;
    tracing::info!(
        events_in = stats.events_in,
        events_out = stats.events_out,
        "{} -> {} -> {}: done",
        source.name(),
        plugin.name(),
        sink.name()
    );
    Ok(ExitCode::SUCCESS)
}
