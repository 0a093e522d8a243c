//! Where a job's events come from and go to: the [`Source`] and [`Sink`] traits, and
//! [`open_source`] / [`open_sink`], which turn an `--input` / `--output` argument (a path, `-`,
//! or a `nats://` URL) into one.
//!
//! **Sources.** A source hands out events one at a time and says where it stands as an opaque
//! [`SourcePosition`] that checkpoints carry; restoring reopens it there. A bounded source (a
//! file) ends; an unbounded one (a broker stream) says when it has *caught up* with what is
//! available, so that a batch can be cut short of its size (`--batch-wait`). A record that is
//! not an event is refused without being consumed ([`SourceError::Malformed`]); under the skip
//! error policy the job then calls [`Source::skip`] and dead-letters it.
//!
//! **Sinks** take part in checkpoints in two phases (Flink's two-phase sink):
//! [`Sink::prepare`] before the checkpoint is written (make what was written so far part of
//! the cut, and say what the checkpoint must keep of it), [`Sink::commit`] once it is durable.
//! A JSON Lines file writes at once and is truncated back to the checkpoint's length on
//! restore; a broker sink keeps its output until the commit and publishes it then, so that
//! no consumer ever sees output a crash would take back.

use std::fs::File;
use std::time::Duration;

use super::{InputLimits, JsonlSink, JsonlSource, SinkError, SourceError};
use crate::Batch;
use crate::checkpoint::{HostState, SinkPosition, SourcePosition};

/// What [`Source::next_into`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pull {
    /// An event, appended to the batch.
    Event,
    /// Nothing arrived within the wait and the source has caught up with everything available
    /// (an unbounded source only; a file never says this).
    CaughtUp,
    /// Nothing arrived within the wait, though more is available (a broker that is slow or
    /// away): the batch waits on.
    Waiting,
    /// The end of the input.
    End,
}

/// A source of events.
pub trait Source: Send {
    /// The name logs and errors show (a path, or a URL without its credentials).
    fn name(&self) -> &str;

    /// Where the source stands: just after the last event (or skipped record) it handed out.
    fn position(&self) -> SourcePosition;

    /// How far it has read, in its own unit (bytes of a file, a stream's sequence), for
    /// progress and metrics.
    fn progress(&self) -> u64;

    /// Append the next event to `batch`. An unbounded source waits up to `wait` for one before
    /// answering [`Pull::CaughtUp`]; a bounded one blocks until it has one or the input ends.
    fn next_into(&mut self, batch: &mut Batch, wait: Duration) -> Result<Pull, SourceError>;

    /// Consume the record that the last call refused as [`SourceError::Malformed`], returning
    /// its bytes (for the dead-letter file).
    fn skip(&mut self) -> Result<Vec<u8>, SourceError>;

    /// Whether the source is unbounded (a job over it runs until stopped).
    fn is_unbounded(&self) -> bool {
        false
    }
}

/// A sink of output events.
pub trait Sink: Send {
    /// The name logs and errors show (a path, or a URL without its credentials).
    fn name(&self) -> &str;

    /// Write (or hold) a batch's output events.
    fn write_batch(&mut self, out: Batch) -> Result<(), SinkError>;

    /// Phase one of a checkpoint: everything written so far belongs to the cut. Returns the
    /// output length to record (bytes of a file; 0 when not a file) and the record the
    /// checkpoint keeps for [`Sink::commit`] after a restore.
    fn prepare(&mut self) -> Result<(u64, SinkPosition), SinkError>;

    /// A file the checkpoint must fsync before it commits (a file sink's).
    fn durable_file(&self) -> Option<File> {
        None
    }

    /// Phase two: the checkpoint of the last [`Sink::prepare`] is durable; make its output
    /// visible. A checkpoint that failed gets no commit: the next prepare covers its output too.
    fn commit(&mut self) -> Result<(), SinkError> {
        Ok(())
    }

    /// Whether it holds output that only a checkpoint makes visible (a job then checkpoints
    /// as soon as its source has caught up, so that the output does not wait for more input).
    fn holds_output(&self) -> bool {
        false
    }

    /// Push buffered output out (at the end of a job without checkpoints).
    fn flush(&mut self) -> Result<(), SinkError>;
}

/// How a job reads and writes streams (`--batch-wait`, `--nats-creds`, `--nats-retry`).
#[derive(Debug, Clone)]
pub struct IoOptions {
    /// How long an unbounded source that has caught up is waited for before a batch is cut
    /// short of its size.
    pub batch_wait: Duration,
    /// A NATS credentials file, for `nats://` inputs and outputs.
    pub nats_creds: Option<std::path::PathBuf>,
    /// How long a broker may stay unreachable before the job fails (keeping its last
    /// checkpoint).
    pub retry_for: Duration,
    /// With a stream input: after this long without events, event time follows the wall clock
    /// (the watermark moves on by the wall time since the last event, closing windows and
    /// firing timers) — only when asked (`--idle-event-time`); event time otherwise moves only
    /// with events.
    pub idle_event_time: Option<Duration>,
    /// Exactly once (a broker sink publishes when a checkpoint is durable), or at least once
    /// (it publishes each batch at once: lower latency, duplicates after a crash).
    pub delivery: Delivery,
}

/// What a broker sink promises (`--delivery`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Delivery {
    /// Output published once its checkpoint is durable, fenced against other runs.
    #[default]
    ExactlyOnce,
    /// Output published as it is made; a restart may publish some again.
    AtLeastOnce,
}

/// `--batch-wait`'s default.
pub const DEFAULT_BATCH_WAIT: Duration = Duration::from_millis(100);
/// `--nats-retry`'s default.
pub const DEFAULT_RETRY_FOR: Duration = Duration::from_secs(60);

impl Default for IoOptions {
    fn default() -> Self {
        Self {
            batch_wait: DEFAULT_BATCH_WAIT,
            nats_creds: None,
            retry_for: DEFAULT_RETRY_FOR,
            idle_event_time: None,
            delivery: Delivery::ExactlyOnce,
        }
    }
}

/// What opening a job's source or sink needs besides its name.
#[derive(Debug, Clone, Copy)]
pub struct Opening<'a> {
    /// Bounds on input lines and messages.
    pub limits: InputLimits,
    /// The job's name (a broker sink's commit subject is the job's own).
    pub job: &'a str,
    /// Events per batch, recorded in the source's position.
    pub batch_size: u64,
    /// Connection settings.
    pub io: &'a IoOptions,
}

/// Where a job reads and writes. [`Named`] opens `--input` / `--output` names (files, `-`,
/// `nats://` URLs); an embedder passes its own ([`super::JobSpec::endpoints`]) to read or write
/// anything else with the same checkpoints and guarantees.
pub trait Endpoints: Send {
    /// The kind of source position the source writes (a restore refuses another kind).
    fn source_kind(&self) -> String;

    /// Open the source, positioned at `at` when resuming.
    fn open_source(
        &self,
        at: Option<&SourcePosition>,
        how: Opening<'_>,
    ) -> Result<Box<dyn Source>, SourceError>;

    /// Open the sink, resumed from a restored checkpoint's host state.
    fn open_sink(&self, restored: Option<&HostState>, how: Opening<'_>) -> Result<Box<dyn Sink>, SinkError>;

    /// Why the sink cannot work without checkpoints, if it cannot (a job without a store is
    /// then refused with this).
    fn needs_checkpoints(&self, io: &IoOptions) -> Option<String> {
        let _ = io;
        None
    }

    /// The input file, when the source reads one (its size feeds progress, and a restore
    /// checks that a closed input did not grow).
    fn input_file(&self) -> Option<&str> {
        None
    }
}

/// The endpoints `cairn run --input … --output …` names.
#[derive(Debug, Clone)]
pub struct Named {
    /// A JSON Lines file, `-`, or a `nats://` URL.
    pub input: String,
    /// A JSON Lines file, `-`, or a `nats://` URL.
    pub output: String,
}

impl Endpoints for Named {
    fn source_kind(&self) -> String {
        source_kind(&self.input).to_string()
    }

    fn open_source(
        &self,
        at: Option<&SourcePosition>,
        how: Opening<'_>,
    ) -> Result<Box<dyn Source>, SourceError> {
        open_source(&self.input, at, how)
    }

    fn open_sink(&self, restored: Option<&HostState>, how: Opening<'_>) -> Result<Box<dyn Sink>, SinkError> {
        open_sink(&self.output, restored, how)
    }

    fn needs_checkpoints(&self, io: &IoOptions) -> Option<String> {
        needs_checkpoints(&self.output, io).then(|| {
            "exactly-once output to a broker is published when a checkpoint is durable: pass --store \
             (or --delivery at-least-once)"
                .to_string()
        })
    }

    fn input_file(&self) -> Option<&str> {
        (self.input != "-" && !is_unbounded(&self.input)).then_some(self.input.as_str())
    }
}

/// The kind of source position `input` reads and writes.
pub fn source_kind(input: &str) -> &'static str {
    #[cfg(feature = "nats")]
    if super::nats::is_url(input) {
        return super::nats::KIND;
    }
    let _ = input;
    crate::checkpoint::JsonlPosition::KIND
}

/// The batch size a source position records (every kind records it).
pub fn recorded_batch_size(p: &SourcePosition) -> Option<u64> {
    #[cfg(feature = "nats")]
    if p.kind == super::nats::KIND {
        return super::nats::recorded_batch_size(p);
    }
    crate::checkpoint::JsonlPosition::from_source(p).and_then(|p| p.batch_size)
}

/// The source `input` names (a JSON Lines path, `-` for stdin, or a `nats://` URL), positioned
/// at `at` when resuming.
pub fn open_source(
    input: &str,
    at: Option<&SourcePosition>,
    how: Opening<'_>,
) -> Result<Box<dyn Source>, SourceError> {
    #[cfg(feature = "nats")]
    if super::nats::is_url(input) {
        return Ok(Box::new(super::nats::NatsSource::open(input, at, how)?));
    }
    #[cfg(not(feature = "nats"))]
    if input.starts_with("nats://") || input.starts_with("tls://") {
        return Err(SourceError::Io {
            input: input.to_string(),
            source: std::io::Error::other("this build of cairn has no NATS support (cargo feature `nats`)"),
        });
    }
    let src = match at.and_then(crate::checkpoint::JsonlPosition::from_source) {
        Some(p) => JsonlSource::open_at(input, p.offset, p.line)?,
        None => JsonlSource::open(input)?,
    };
    Ok(Box::new(
        src.with_limits(how.limits).with_batch_size(how.batch_size),
    ))
}

/// The sink `output` names (a JSON Lines path, `-` for stdout, or a `nats://` URL), resumed
/// from the host state of a restored checkpoint.
pub fn open_sink(
    output: &str,
    restored: Option<&HostState>,
    how: Opening<'_>,
) -> Result<Box<dyn Sink>, SinkError> {
    #[cfg(feature = "nats")]
    if super::nats::is_url(output) {
        return Ok(Box::new(super::nats::NatsSink::open(output, restored, how)?));
    }
    #[cfg(not(feature = "nats"))]
    if output.starts_with("nats://") || output.starts_with("tls://") {
        return Err(SinkError {
            output: output.to_string(),
            source: std::io::Error::other("this build of cairn has no NATS support (cargo feature `nats`)"),
        });
    }
    let _ = how;
    let sink = match restored {
        Some(h) => JsonlSink::open_at(output, h.output_len)?,
        None => JsonlSink::create(output)?,
    };
    Ok(Box::new(sink.in_background()?))
}

/// Whether writing `output` exactly once needs checkpoints (a broker sink publishes when one
/// is durable).
pub fn needs_checkpoints(output: &str, io: &IoOptions) -> bool {
    is_unbounded(output) && io.delivery == Delivery::ExactlyOnce
}

/// `name` as logs, errors and summaries show it: a URL without its user, password or token.
pub fn shown(name: &str) -> String {
    match name.split_once("://") {
        Some((scheme, rest)) => {
            // Each server of a seed list may carry credentials.
            let servers: Vec<&str> = rest
                .split(',')
                .map(|s| s.rsplit_once('@').map_or(s, |(_, host)| host))
                .collect();
            format!("{scheme}://{}", servers.join(","))
        }
        None => name.to_string(),
    }
}

/// Whether `name` is read as a stream that never ends (a broker URL).
pub fn is_unbounded(name: &str) -> bool {
    #[cfg(feature = "nats")]
    if super::nats::is_url(name) {
        return true;
    }
    let _ = name;
    false
}

/// Copy events from `input` to `output` (any source and sink) without operators or
/// checkpoints, until the input ends — or, for a stream, until it has caught up (unless
/// `follow`) or `stop` is set. Malformed records stop the copy. Returns the events copied.
pub fn copy(
    input: &str,
    output: &str,
    how: Opening<'_>,
    follow: bool,
    stop: &std::sync::atomic::AtomicBool,
) -> Result<u64, super::RunError> {
    use std::sync::atomic::Ordering;
    let mut source = open_source(input, None, how)?;
    let mut sink = open_sink(output, None, how)?;
    let mut n = 0;
    loop {
        let mut batch = Batch::new();
        let mut done = false;
        while batch.len() < how.batch_size as usize {
            match source.next_into(&mut batch, how.io.batch_wait)? {
                Pull::Event => {}
                Pull::CaughtUp if !follow => {
                    done = true;
                    break;
                }
                Pull::CaughtUp | Pull::Waiting => {
                    if !batch.is_empty() || stop.load(Ordering::Relaxed) {
                        break;
                    }
                }
                Pull::End => {
                    done = true;
                    break;
                }
            }
        }
        n += batch.len() as u64;
        sink.write_batch(batch)?;
        sink.flush()?;
        if done || stop.load(Ordering::Relaxed) {
            return Ok(n);
        }
    }
}
