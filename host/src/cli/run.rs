use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use cairn::Limits;
use cairn::checkpoint::{CheckpointConfig, Compression, open_store};
use cairn::runtime::{CheckpointSpec, ErrorPolicy, InputLimits, JobSpec, PipelineFile, Triggers, run_job};
use cairn::sandbox::ByteSize;
use clap::Args;

use super::store_args::KeyArgs;

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The operator: a WebAssembly component of any language (cairn-sdk in Rust, or `cairn build` for Python, JavaScript or C).
    #[arg(long, required_unless_present = "pipeline", conflicts_with = "pipeline")]
    plugin: Option<PathBuf>,
    /// A pipeline file (TOML) chaining several operators, each with its plugin, config and
    /// limits; replaces --plugin, --config and the limit flags.
    #[arg(long)]
    pipeline: Option<PathBuf>,
    /// Input: a JSON Lines file, `-` for stdin, or a NATS JetStream stream
    /// `nats://[USER:PASS@]HOST:PORT/STREAM[?subject=FILTER&start=first|new]` (read until stopped).
    #[arg(long)]
    input: String,
    /// Output: a JSON Lines file, `-` for stdout, or a NATS subject `nats://HOST:PORT/SUBJECT`
    /// (published exactly once, when each checkpoint is durable).
    #[arg(long)]
    output: String,
    /// With a stream input that has caught up: how long to wait for more events before
    /// processing a batch smaller than --batch-size (a file is never cut by time).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "100ms")]
    batch_wait: Duration,
    /// A NATS credentials file (.creds) for nats:// inputs and outputs, so that no secret is on
    /// the command line.
    #[arg(long, env = "CAIRN_NATS_CREDS")]
    nats_creds: Option<PathBuf>,
    /// How long a NATS server may stay unreachable before the job fails (keeping its last
    /// checkpoint); meanwhile it retries with back-off.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "60s")]
    nats_retry: Duration,
    /// With a stream input: after this long without events, let event time follow the wall
    /// clock (windows close and timers fire on an idle stream). Without it, event time moves
    /// only with events.
    #[arg(long, value_parser = humantime::parse_duration)]
    idle_event_time: Option<Duration>,
    /// For a broker output: `exactly-once` (published when each checkpoint is durable; needs
    /// --store) or `at-least-once` (published batch by batch: lower latency, duplicates after a
    /// crash).
    #[arg(long, default_value = "exactly-once", value_parser = ["exactly-once", "at-least-once"])]
    delivery: String,
    /// The operator's configuration: a JSON text, or `@file.json`.
    #[arg(long, default_value = "{}", conflicts_with = "pipeline")]
    config: String,
    /// Events per call into the operator [default: the pipeline file's batch_size, else the
    /// batch size of the checkpoint resumed from, else 1024]. A job resumes only with the batch
    /// size its checkpoints were taken with: results depend on batch boundaries.
    #[arg(long)]
    batch_size: Option<usize>,
    /// Instances of each operator, each owning a range of the key groups and running on its own
    /// thread [default: the pipeline file's, else 1]. A job restores at any parallelism.
    #[arg(long)]
    parallelism: Option<u32>,
    /// Key groups keyed state is split into (1 to 32768), fixed when the job first starts
    /// [default: the checkpoint's, else the pipeline file's, else 128]. At most this many
    /// instances can share an operator.
    #[arg(long)]
    key_groups: Option<u32>,
    /// The job's name, recorded in its checkpoints [default: the pipeline's name, or "default"].
    #[arg(long)]
    name: Option<String>,
    /// Serve /metrics (Prometheus), /healthz and /readyz on this address while the job runs
    /// (e.g. 127.0.0.1:9464; port 0 picks a free one, the log says which).
    #[arg(long)]
    admin: Option<String>,
    /// Keep the admin server up this long after the job ends, so that a scraper reads the
    /// final values (e.g. 15s).
    #[arg(long, value_parser = humantime::parse_duration, requires = "admin")]
    admin_linger: Option<Duration>,
    /// No summary line at the end, and no progress bar.
    #[arg(long, short)]
    quiet: bool,
    /// At the end of the input, keep event time open (windows stay open, timers unfired), for an
    /// input that will grow and be resumed. Without it the job ends with a final watermark that
    /// closes every window, and its store refuses to resume over an input that grew.
    #[arg(long)]
    keep_open: bool,
    #[command(flatten)]
    checkpoint: CheckpointArgs,
    #[command(flatten)]
    limits: LimitArgs,
    /// What to do when the operator fails a batch: `fail` (stop with the error after a final
    /// checkpoint) or `skip` (retry the batch event by event; failing events go to --dead-letter).
    #[arg(long, default_value = "fail", value_parser = ["fail", "skip"])]
    on_error: String,
    /// With --on-error skip: the JSON Lines file that receives each failing event and its error.
    #[arg(long)]
    dead_letter: Option<String>,
    /// Longest input line accepted; a longer one stops the run like a malformed line
    /// [default: 16MiB, or the pipeline file's max_line_bytes].
    #[arg(long)]
    max_line_bytes: Option<ByteSize>,
    /// Longest event key accepted [default: 64KiB, or the pipeline file's max_key_bytes].
    #[arg(long)]
    max_key_bytes: Option<ByteSize>,
}

/// The sandbox's limits for the operator (defaults from `cairn::Limits`).
#[derive(Debug, Args)]
pub struct LimitArgs {
    /// Deadline of one call into the plugin (e.g. 10s, 250ms).
    #[arg(long, default_value_t = humantime::Duration::from(Limits::default().timeout))]
    timeout: humantime::Duration,
    /// Fuel (about one unit per wasm instruction) per call; unbounded when absent.
    #[arg(long)]
    fuel: Option<u64>,
    /// Maximum linear memory of the plugin, per instance (e.g. 256MiB, 64M, 1G).
    #[arg(long, default_value_t = ByteSize(Limits::default().memory_bytes as u64))]
    memory_limit: ByteSize,
    /// Maximum total bytes of the operator's state (keys + values).
    #[arg(long, default_value_t = ByteSize(Limits::default().max_state_bytes))]
    max_state_bytes: ByteSize,
    /// Maximum number of keys in the operator's state.
    #[arg(long, default_value_t = Limits::default().max_keys)]
    max_keys: u64,
    /// Maximum size of one state value.
    #[arg(long, default_value_t = ByteSize(Limits::default().max_value_bytes))]
    max_value_bytes: ByteSize,
    /// Maximum number of event-time timers registered and not yet fired.
    #[arg(long, default_value_t = Limits::default().max_timers)]
    max_timers: u64,
    /// Expire a stream key's state once the watermark is this far (event time, e.g. 1h, 30s)
    /// past its last write. Default: never.
    #[arg(long)]
    state_ttl: Option<humantime::Duration>,
}

impl LimitArgs {
    fn limits(&self) -> Limits {
        Limits::default()
            .with_timeout(self.timeout.into())
            .with_fuel(self.fuel)
            .with_memory_bytes(self.memory_limit.0 as usize)
            .with_state_quotas(self.max_keys, self.max_state_bytes.0, self.max_value_bytes.0)
            .with_max_timers(self.max_timers)
            .with_state_ttl(self.state_ttl.map(Into::into))
    }
}

#[derive(Debug, Args)]
pub struct CheckpointArgs {
    /// Keep checkpoints here and resume from them: memory:, file:<dir>, rocksdb:<dir>,
    /// redis://<host>:<port>[/<db>][?prefix=<p>&ttl=<secs>], s3://<bucket>[/<prefix>][?...].
    /// Without it a run keeps no checkpoints.
    #[arg(long)]
    store: Option<String>,
    #[command(flatten)]
    key: KeyArgs,
    /// Checkpoint at this interval (e.g. 10s, 500ms). Default 10s when no trigger is given.
    #[arg(long, value_parser = humantime::parse_duration)]
    checkpoint_interval: Option<Duration>,
    /// Checkpoint every this many input events.
    #[arg(long)]
    checkpoint_every: Option<u64>,
    /// Write a full checkpoint after this many deltas.
    #[arg(long, default_value_t = 10)]
    full_every: u32,
    /// How hard checkpoints are compressed: `high` (LZ4 HC level 4; `high:<1-9>` for
    /// another level) writes smaller checkpoints, `fast` (plain LZ4) writes them faster.
    /// Either is read by any Cairn since format 1's LZ4.
    #[arg(long, default_value_t = Compression::default())]
    checkpoint_compression: Compression,
    /// Keep this many restorable checkpoints (and the bases they need).
    #[arg(long, default_value_t = 3)]
    max_retained: usize,
    /// Resume from this checkpoint id instead of the newest (point-in-time restore), or from
    /// the savepoint of this name (`cairn checkpoints pin`).
    #[arg(long)]
    restore_from: Option<String>,
    /// Resume even though an operator's plugin changed since the checkpoint (a plugin that
    /// declares a state version needs no flag: the same version resumes, a newer migrates).
    #[arg(long)]
    accept_plugin_change: bool,
    /// Resume even though an operator's configuration changed since the checkpoint.
    #[arg(long)]
    accept_config_change: bool,
    /// Resume although the checkpoint holds the state of operators the job no longer has
    /// (that state is left behind).
    #[arg(long)]
    allow_dropped_state: bool,
    /// An operator renamed since the checkpoint: its state carries over (repeat for several).
    #[arg(long, value_name = "OLD=NEW", value_parser = parse_rename)]
    rename_operator: Vec<(String, String)>,
    /// How long migrating a checkpoint's state to a plugin's newer state version may take in
    /// all, e.g. `90s`, `10m` (each call also keeps the plugin's --timeout).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "10m")]
    migration_timeout: std::time::Duration,
}

fn parse_rename(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((old, new)) if !old.is_empty() && !new.is_empty() => Ok((old.to_string(), new.to_string())),
        _ => Err(format!(
            "{s:?} is not OLD=NEW (the operator's name in the checkpoint, then its name now)"
        )),
    }
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
        if args.key.encryption_key_env.is_some() || args.key.passphrase_env.is_some() {
            bail!("an encryption key was given without --store: there is nothing to encrypt");
        }
        return Ok(None);
    };
    let (store, codec) = open_store(url, &args.key.source()?)?;
    let codec = codec.with_compression(args.checkpoint_compression);
    // A checkpoint id (digits) or a savepoint's name.
    let (restore_from, restore_savepoint) = match &args.restore_from {
        None => (None, None),
        Some(at) => match at.parse::<u64>() {
            Ok(id) => (Some(id), None),
            Err(_) if cairn::checkpoint::savepoint::valid_name(at) => (None, Some(at.clone())),
            Err(_) => {
                bail!("--restore-from {at:?} is neither a checkpoint id (a number) nor a savepoint's name")
            }
        },
    };
    let mut triggers = Triggers {
        interval: args.checkpoint_interval,
        every_events: args.checkpoint_every,
    };
    if triggers.interval.is_none() && triggers.every_events.is_none() {
        triggers.interval = Some(Duration::from_secs(10));
    }
    Ok(Some(CheckpointSpec {
        store,
        codec,
        config: CheckpointConfig {
            full_every: args.full_every,
            max_retained: args.max_retained,
        },
        triggers,
        restore_from,
        restore_savepoint,
        accept_plugin_change: args.accept_plugin_change,
        accept_config_change: args.accept_config_change,
        allow_dropped_state: args.allow_dropped_state,
        renames: args.rename_operator.clone(),
        migration_timeout: args.migration_timeout,
    }))
}

pub fn run(args: RunArgs, format: super::LogFormat) -> Result<ExitCode> {
    let started = std::time::Instant::now();
    // First, so that a signal during start-up also ends in a clean stop.
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone()).context("could not install the signal handler")?;
    }
    let config = read_config(&args.config)?;
    let on_error = match (args.on_error.as_str(), &args.dead_letter) {
        ("skip", Some(file)) => ErrorPolicy::Skip {
            dead_letter: file.clone(),
        },
        ("skip", None) => bail!("--on-error skip needs --dead-letter <file> to keep the events it skips"),
        (_, Some(_)) => bail!("--dead-letter is only used with --on-error skip"),
        _ => ErrorPolicy::Fail,
    };
    let checkpoint = checkpoint_spec(&args.checkpoint)?;
    // `--plugin` is a pipeline of one operator: every rule exists once.
    let spec = match (&args.pipeline, &args.plugin) {
        (Some(file), _) => PipelineFile::load(file)?,
        (None, Some(plugin)) => {
            let config = serde_json::from_str(&config).context("--config is not valid JSON")?;
            PipelineFile::single(plugin.clone(), config, args.limits.limits())?
        }
        (None, None) => bail!("pass --plugin <file.wasm> or --pipeline <file.toml>"),
    };
    let mut spec = spec;
    if let Some(n) = args.parallelism {
        if n == 0 {
            bail!("--parallelism must be at least 1");
        }
        spec.parallelism = Some(n);
        for op in &mut spec.operators {
            op.parallelism = None;
        }
    }
    let engine = spec.engine()?.with_cache(super::component_cache());
    let operators = spec.builders(&engine)?;
    let shown = operators
        .iter()
        .map(|o| o.name_or_plugin().to_string())
        .collect::<Vec<_>>()
        .join(" -> ");
    let (name, batch) = (spec.name.clone(), spec.batch_size);
    let defaults = InputLimits::default();
    let input_limits = InputLimits {
        max_line_bytes: args
            .max_line_bytes
            .or(spec.max_line_bytes)
            .unwrap_or(defaults.max_line_bytes),
        max_key_bytes: args
            .max_key_bytes
            .or(spec.max_key_bytes)
            .unwrap_or(defaults.max_key_bytes),
    };
    let admin = match &args.admin {
        Some(addr) => {
            let server = cairn::admin::AdminServer::start(addr)?;
            tracing::info!("admin server listening on http://{}", server.addr());
            Some(server)
        }
        None => None,
    };
    let spec = JobSpec {
        name: args.name.clone().or(name).unwrap_or_else(|| "default".into()),
        input: args.input.clone(),
        output: args.output.clone(),
        endpoints: None,
        operators,
        key_groups: args.key_groups.or(spec.key_groups),
        owned_groups: None,
        batch_size: args.batch_size.or(batch),
        checkpoint,
        stop,
        on_error,
        input_limits,
        io: cairn::runtime::IoOptions {
            batch_wait: args.batch_wait,
            nats_creds: args.nats_creds.clone(),
            retry_for: args.nats_retry,
            idle_event_time: args.idle_event_time,
            delivery: match args.delivery.as_str() {
                "at-least-once" => cairn::runtime::io::Delivery::AtLeastOnce,
                _ => cairn::runtime::io::Delivery::ExactlyOnce,
            },
        },
        keep_open: args.keep_open,
        ready: admin.as_ref().map(|a| a.readiness()),
        progress: progress_bar(&args),
    };
    let result = run_job(spec);
    let wall = started.elapsed();
    // The progress bar (if any) was dropped with the job: the summary takes its place.
    if let Ok(report) = &result
        && !args.quiet
    {
        let route = format!(
            "{} -> {shown} -> {}",
            cairn::runtime::io::shown(&args.input),
            cairn::runtime::io::shown(&args.output)
        );
        eprintln!("{}", summary(&route, report, wall, format));
        let cpu: Vec<String> = report
            .thread_cpu
            .iter()
            .map(|(n, d)| format!("{n} {:.2} s", d.as_secs_f64()))
            .collect();
        tracing::debug!("CPU time per thread: {}", cpu.join(", "));
    }
    if let (Some(_), Some(d)) = (&admin, args.admin_linger) {
        tracing::info!(
            "job ended; admin server stays up for {}",
            humantime::format_duration(d)
        );
        std::thread::sleep(d);
    }
    drop(admin);
    let report = result?;
    if report.dead_lettered > 0 {
        tracing::warn!(
            "{} events failed and went to {}",
            report.dead_lettered,
            args.dead_letter.as_deref().unwrap_or("the dead-letter file")
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The line a run ends with: events in and out, time, rate, checkpoints, final state, failures.
fn summary(route: &str, r: &cairn::runtime::JobReport, wall: Duration, format: super::LogFormat) -> String {
    use cairn::checkpoint::Kind;
    let full = r.checkpoints.iter().filter(|c| c.kind == Kind::Full).count();
    let delta = r.checkpoints.len() - full;
    let secs = wall.as_secs_f64();
    // This run's events (a resumed job's counters include the runs before).
    let events = r.stats.events_in - r.events_in_at_start;
    let rate = if secs > 0.0 { events as f64 / secs } else { 0.0 };
    let failures = r.dead_lettered + r.checkpoint_failures;
    match format {
        super::LogFormat::Json => serde_json::json!({
            "summary": {
                "route": route,
                "events_in": r.stats.events_in,
                "events_out": r.stats.events_out,
                "events_this_run": events,
                "wall_s": secs,
                "events_per_s": rate.round(),
                "checkpoints_full": full,
                "checkpoints_delta": delta,
                "state_keys": r.state_keys,
                "state_bytes": r.state_bytes,
                "dead_lettered": r.dead_lettered,
                "checkpoint_failures": r.checkpoint_failures,
                "stopped": r.stopped,
                "thread_cpu_s": r.thread_cpu.iter()
                    .map(|(n, d)| (n.clone(), serde_json::json!(d.as_secs_f64())))
                    .collect::<serde_json::Map<_, _>>(),
            }
        })
        .to_string(),
        super::LogFormat::Text => format!(
            "{route}: {} events in, {} out; {events} this run in {secs:.2} s ({:.0} events/s); \
             checkpoints {full} full, {delta} delta; state {} keys, {} bytes; {failures} failures{}",
            r.stats.events_in,
            r.stats.events_out,
            rate,
            r.state_keys,
            r.state_bytes,
            if r.stopped { " (stopped on signal)" } else { "" }
        ),
    }
}

/// A progress bar on stderr for a file input, when stderr is a terminal and not `--quiet`:
/// bytes done of total, events/s, ETA, state size, last checkpoint.
fn progress_bar(args: &RunArgs) -> Option<cairn::runtime::ProgressHook> {
    use std::io::IsTerminal;
    let len = std::fs::metadata(&args.input).ok().filter(|m| m.is_file())?.len();
    if args.quiet || !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new(len);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:30} {bytes}/{total_bytes} {msg} ETA {eta}").ok()?,
    );
    let started = std::time::Instant::now();
    let bar = ProgressGuard(bar);
    let mut first: Option<u64> = None;
    Some(Box::new(move |p: &cairn::runtime::Progress| {
        bar.0.set_position(p.input_offset);
        let secs = started.elapsed().as_secs_f64().max(1e-3);
        // Events of this run (a resumed job's count starts where it stopped).
        let from = *first.get_or_insert(p.events_in);
        let last = p.last_checkpoint.map_or("none".to_string(), |c| c.to_string());
        bar.0.set_message(format!(
            "{:.0} ev/s, state {} keys {}, last checkpoint {last}",
            (p.events_in - from) as f64 / secs,
            p.state_keys,
            indicatif::HumanBytes(p.state_bytes)
        ));
    }))
}

/// Clears the bar when the job drops it.
struct ProgressGuard(indicatif::ProgressBar);

impl Drop for ProgressGuard {
    fn drop(&mut self) {
        self.0.finish_and_clear();
    }
}
