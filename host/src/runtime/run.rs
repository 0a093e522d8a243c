use thiserror::Error;

use super::ahead::{Cut, read_batch};
use super::io::{Sink, Source};
use super::{Pipeline, SinkError, SourceError};
use crate::{Batch, CallError};

/// Why a run stopped early.
#[derive(Debug, Error)]
pub enum RunError {
    /// Reading the input failed or a line was malformed.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// Writing the output failed.
    #[error(transparent)]
    Sink(#[from] SinkError),
    /// An operator failed.
    #[error(transparent)]
    Operator(#[from] CallError),
}

/// How a run batches events.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Events per `process` call.
    pub batch_size: usize,
    /// At the end of the input, leave event time open instead of ending it with a final
    /// watermark (`FINAL_WATERMARK`) that fires every timer and closes every window.
    pub keep_open: bool,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            batch_size: 256,
            keep_open: false,
        }
    }
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunStats {
    /// Events read.
    pub events_in: u64,
    /// Events written.
    pub events_out: u64,
    /// `process` batches.
    pub batches: u64,
    /// Highest event time seen (the watermark), if any event was seen.
    pub watermark: Option<i64>,
}

/// Read every event of `source`, run it through `pipeline` in batches and write the results
/// to `sink`. After each batch the watermark (the highest ts seen) is advanced if it moved; at
/// the end of the input, event time ends (unless `keep_open`).
///
/// A malformed line stops the run with an error naming the line, after the events before it
/// were processed and written: nothing is lost and nothing is written past the last good event.
/// An unbounded source is read until it ends (use [`super::run_job`] to stop one).
pub fn run_pipeline(
    pipeline: &mut Pipeline,
    source: &mut dyn Source,
    sink: &mut dyn Sink,
    options: &RunOptions,
) -> Result<RunStats, RunError> {
    let mut stats = RunStats::default();
    let cut = Cut {
        size: options.batch_size.max(1),
        wait: std::time::Duration::from_millis(50),
        skip_bad: false,
    };
    let never = std::sync::atomic::AtomicBool::new(false);
    loop {
        let taken = read_batch(source, cut, &never, false);
        let (batch, failure, done) = (taken.batch, taken.failure, taken.end);
        if !batch.is_empty() {
            feed_batch(pipeline, sink, &batch, &mut stats)?;
        }
        if let Some(e) = failure {
            sink.flush()?;
            return Err(e.into());
        }
        if done {
            if !options.keep_open && stats.watermark != Some(super::FINAL_WATERMARK) {
                let out = pipeline.step(&Batch::new(), Some(super::FINAL_WATERMARK))?;
                stats.events_out += out.len() as u64;
                sink.write_batch(out)?;
                stats.watermark = Some(super::FINAL_WATERMARK);
            }
            sink.flush()?;
            return Ok(stats);
        }
    }
}

/// Process one batch as one transaction across the pipeline (process, then the watermark if
/// it advanced), then write its output. On failure nothing of the batch is kept or written.
pub(crate) fn feed_batch(
    pipeline: &mut Pipeline,
    sink: &mut dyn Sink,
    batch: &Batch,
    stats: &mut RunStats,
) -> Result<(), RunError> {
    let max_ts = batch.iter().map(|e| e.ts).max();
    let n = batch.len() as u64;
    let advanced = max_ts.filter(|&ts| stats.watermark.is_none_or(|w| ts > w));
    let out = pipeline.step(batch, advanced)?;
    let n_out = out.len() as u64;
    sink.write_batch(out)?;
    stats.events_in += n;
    stats.batches += 1;
    stats.events_out += n_out;
    if advanced.is_some() {
        stats.watermark = advanced;
    }
    Ok(())
}
